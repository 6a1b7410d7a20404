//! The Kinto error type: every failure a client can see, mapped to status,
//! errno and message in one exhaustive match.

use super::Response;
use crate::auth;
use crate::sync15::{self, Reply, Upstream};
use serde_json::{Value, json};
use std::borrow::Cow;

/// A request that could not be served.
#[derive(Debug)]
pub enum Error {
    /// 404/111: no such endpoint.
    NotFound,
    /// 404/116: another API version.
    VersionNotAvailable,
    /// 405/115: the endpoint exists, the method doesn't (`Allow` value).
    MethodNotAllowed(&'static str),
    /// 405/115: writes to this collection are not enabled.
    WriteDisabled,
    /// 400/107: a query parameter, header, path segment or batch field is
    /// invalid.
    InvalidParameter {
        /// Where, as Kinto says it: `querystring`, `header`, `body`, `path`.
        location: &'static str,
        /// The parameter, if any.
        name: Option<Cow<'static, str>>,
        /// What is wrong (the `description` of `details`, without the
        /// location: the document's `message` adds it as Kinto does).
        message: Cow<'static, str>,
    },
    /// 400/106: the body is not JSON.
    InvalidJson(String),
    /// 400/109: the posted record is not acceptable.
    InvalidData {
        /// The field, e.g. `data.payload`.
        name: Cow<'static, str>,
        /// What is wrong.
        message: Cow<'static, str>,
    },
    /// 415/107: the body is not `application/json`.
    UnsupportedMediaType,
    /// 413/113: the body is over `max_body_bytes`.
    TooLarge(usize),
    /// 401/104: who the user is can't be worked out.
    Unauthenticated(&'static str),
    /// 404/110: the record does not exist.
    RecordNotFound(String, Option<Box<Reply>>),
    /// 412/114: a precondition failed; `existing` is the current record
    /// (Kinto JSON) when it exists.
    PreconditionFailed(Option<Value>, Option<Box<Reply>>),
    /// An upstream failure (mapped by [`Error::parts`]).
    Upstream(sync15::Error),
    /// 410/202: the end-of-service date (`eos`) has passed.
    ServiceDeprecated,
    /// 503/201: a batch sub-request not run, or stopped before its next upstream call,
    /// because the batch's time (`batch_timeout_seconds`) was up; nothing was written for
    /// it.
    BatchTimeUp(u64),
    /// 429/117: the client's address has caused its share of Token Server refusals; retry
    /// after this many seconds.
    HeldBack(u64),
    /// 500/999: a bug.
    Internal,
}

impl From<auth::Unauthenticated> for Error {
    fn from(r: auth::Unauthenticated) -> Error {
        Error::Unauthenticated(r.0)
    }
}

impl From<sync15::Error> for Error {
    fn from(e: sync15::Error) -> Error {
        Error::Upstream(e)
    }
}

pub(super) const OVERLOADED: &str =
    "Service temporary unavailable due to overloading or maintenance, please retry later.";
const UNREACHABLE: &str =
    "Unable to reach the service. Check your internet connection or firewall configuration.";

/// What an error becomes on the wire.
pub struct Parts {
    /// HTTP status.
    pub status: u16,
    /// Kinto errno (None for a 304).
    pub errno: Option<u16>,
    /// Message.
    pub message: Cow<'static, str>,
    /// `details`, if any.
    pub details: Option<Value>,
    /// Add `Retry-After`.
    pub retry_after: bool,
    /// The upstream reply whose headers are translated too.
    pub reply: Option<Box<Reply>>,
}

impl Error {
    /// Shorthand for a 400/107 on a named parameter.
    pub fn param(
        location: &'static str,
        name: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Error {
        Error::InvalidParameter {
            location,
            name: Some(name.into()),
            message: message.into(),
        }
    }

    /// The one mapping from error to status, errno and message.
    pub fn parts(self) -> Parts {
        let p = |status, errno, message: Cow<'static, str>| Parts {
            status,
            errno: Some(errno),
            message,
            details: None,
            retry_after: status == 503 || status == 504 || status == 429,
            reply: None,
        };
        match self {
            Error::NotFound => p(
                404,
                111,
                "The resource you are looking for could not be found.".into(),
            ),
            Error::VersionNotAvailable => p(
                404,
                116,
                "The requested protocol version is not available on this server.".into(),
            ),
            Error::MethodNotAllowed(_) => {
                p(405, 115, "Method not allowed on this endpoint.".into())
            }
            Error::WriteDisabled => p(
                405,
                115,
                "Endpoint disabled for this collection in configuration.".into(),
            ),
            Error::InvalidParameter {
                location,
                name,
                message,
            } => {
                let details = json!([{"location": location, "name": name.as_deref(), "description": &*message}]);
                Parts {
                    details: Some(details),
                    ..p(400, 107, kinto_message(location, name.as_deref(), message))
                }
            }
            Error::InvalidJson(why) => {
                let description = format!("Invalid JSON request body: {why}");
                let details =
                    json!([{"location": "body", "name": null, "description": &description}]);
                Parts {
                    details: Some(details),
                    ..p(400, 106, format!("body: {description}").into())
                }
            }
            Error::InvalidData { name, message } => {
                let details =
                    json!([{"location": "body", "name": &*name, "description": &*message}]);
                Parts {
                    details: Some(details),
                    ..p(400, 109, message)
                }
            }
            Error::UnsupportedMediaType => {
                p(415, 107, "Content-Type should be application/json".into())
            }
            Error::TooLarge(max) => p(
                413,
                113,
                format!("Request body is larger than the {max} bytes this server accepts.").into(),
            ),
            Error::Unauthenticated(m) => p(401, 104, m.into()),
            Error::RecordNotFound(id, reply) => Parts {
                details: Some(json!({"id": id, "resource_name": "record"})),
                reply,
                ..p(
                    404,
                    110,
                    "The resource you are looking for could not be found.".into(),
                )
            },
            Error::PreconditionFailed(existing, reply) => Parts {
                details: existing.map(|e| json!({ "existing": e })),
                reply,
                ..p(412, 114, "Resource was modified meanwhile".into())
            },
            Error::ServiceDeprecated => p(
                410,
                202,
                "The service you are trying to connect no longer exists at this location.".into(),
            ),
            Error::BatchTimeUp(seconds) => p(
                503,
                201,
                format!(
                    "This batch ran out of time ({seconds} s) before this request started or made its next call to Firefox Sync: it was not run (or not to its end), and nothing was written for it."
                )
                .into(),
            ),
            Error::HeldBack(seconds) => Parts {
                reply: Some(Box::new(Reply {
                    status: 429,
                    retry_after: Some(seconds.to_string()),
                    ..Reply::default()
                })),
                ..p(
                    429,
                    117,
                    "Too many credentials from this address were refused by the Token Server: \
                     retry later."
                        .into(),
                )
            },
            Error::Internal => p(
                500,
                999,
                "A programmatic error occured, developers have been informed.".into(),
            ),
            Error::Upstream(e) => upstream(e),
        }
    }
}

/// Kinto's `message` of a validation error: the description itself when it
/// names the parameter, else `<name> in <location>: <description>`, or
/// `<location>: <description>` without a name.
fn kinto_message(
    location: &str,
    name: Option<&str>,
    description: Cow<'static, str>,
) -> Cow<'static, str> {
    match name {
        Some(n) if description.contains(n) => description,
        Some(n) => format!("{n} in {location}: {description}").into(),
        None => format!("{location}: {description}").into(),
    }
}

fn upstream(e: sync15::Error) -> Parts {
    let base = |status, errno, message: Cow<'static, str>| Parts {
        status,
        errno: Some(errno),
        message,
        details: None,
        retry_after: matches!(status, 429 | 503 | 504),
        reply: None,
    };
    match e {
        sync15::Error::Status(_, reply) => {
            let status = reply.status;
            let quoted = || -> Cow<'static, str> {
                format!("{} {}: {}", status, reason(status), reply.body_excerpt()).into()
            };
            let mut parts = match status {
                304 => Parts {
                    errno: None,
                    ..base(304, 0, "".into())
                },
                400 => base(400, 107, quoted()),
                401 => base(401, 105, quoted()),
                403 => base(403, 121, quoted()),
                404 => base(404, 110, quoted()),
                412 => base(412, 114, "Resource was modified meanwhile".into()),
                413 => base(413, 113, quoted()),
                415 => base(415, 107, quoted()),
                429 => base(429, 117, quoted()),
                _ => base(503, 201, OVERLOADED.into()),
            };
            parts.reply = Some(reply);
            parts
        }
        sync15::Error::Unreachable(..) | sync15::Error::Tls(..) => {
            base(503, 201, UNREACHABLE.into())
        }
        sync15::Error::Timeout(u, _) => base(
            504,
            201,
            match u {
                Upstream::TokenServer => {
                    "The token server did not answer in time, please retry later."
                }
                Upstream::Storage => "The Sync server did not answer in time, please retry later.",
            }
            .into(),
        ),
        sync15::Error::BadAnswer(..) | sync15::Error::Busy(..) => base(503, 201, OVERLOADED.into()),
        // A page of records over the read limit: the client can ask for a
        // smaller one. Repeating the same request would not help, so this is
        // not a 503.
        sync15::Error::TooLarge(Upstream::Storage, limit) => {
            let description = format!(
                "The answer is larger than the {limit} bytes this server reads at once: ask for fewer records with _limit."
            );
            let details =
                json!([{"location": "querystring", "name": "_limit", "description": &description}]);
            Parts {
                details: Some(details),
                ..base(400, 107, description.into())
            }
        }
        sync15::Error::TooLarge(Upstream::TokenServer, _) => base(503, 201, OVERLOADED.into()),
    }
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

impl Parts {
    /// The Kinto error document.
    pub fn into_response(self, retry_after_seconds: u32) -> Response {
        let mut r = Response::new(self.status);
        if let Some(errno) = self.errno {
            let error = if self.status == 400 && matches!(errno, 107 | 109) && self.reply.is_none()
            {
                "Invalid parameters"
            } else {
                reason(self.status)
            };
            let mut doc = json!({
                "code": self.status,
                "errno": errno,
                "error": error,
                "message": self.message,
            });
            if let Some(d) = self.details {
                doc["details"] = d;
            }
            r.json(&doc);
            r.errno = Some(errno);
        }
        if let Some(reply) = &self.reply {
            super::translate::translate_headers(&mut r, reply);
        }
        if self.retry_after && !r.has("Retry-After") {
            r.header("Retry-After", retry_after_seconds.to_string());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(e: Error) -> Value {
        serde_json::from_slice(&e.parts().into_response(30).body).unwrap()
    }

    #[test]
    fn validation_messages_follow_kinto() {
        let j = doc(Error::param(
            "querystring",
            "_since",
            "_since should be a number.",
        ));
        assert_eq!(j["message"], "_since should be a number.");
        let j = doc(Error::param("header", "Origin", "this header is mandatory"));
        assert_eq!(j["message"], "Origin in header: this header is mandatory");
        assert_eq!(
            j["details"],
            json!([{"location": "header", "name": "Origin", "description": "this header is mandatory"}])
        );
        let j = doc(Error::InvalidParameter {
            location: "body",
            name: None,
            message: "The request body should be a JSON object".into(),
        });
        assert_eq!(
            j["message"],
            "body: The request body should be a JSON object"
        );
        assert_eq!(
            j["details"][0]["description"],
            "The request body should be a JSON object"
        );
        let j = doc(Error::InvalidJson("EOF".into()));
        assert_eq!(j["message"], "body: Invalid JSON request body: EOF");
        assert_eq!(
            j["details"][0]["description"],
            "Invalid JSON request body: EOF"
        );
    }

    #[test]
    fn an_answer_too_large_names_limit_and_is_not_a_retry() {
        let e = Error::Upstream(sync15::Error::TooLarge(Upstream::Storage, 16));
        let r = e.parts().into_response(30);
        assert_eq!((r.status, r.errno), (400, Some(107)));
        assert!(!r.has("Retry-After"));
        let j: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(j["details"][0]["name"], "_limit");
        assert_eq!(j["details"][0]["location"], "querystring");
        let e = Error::Upstream(sync15::Error::TooLarge(Upstream::TokenServer, 16));
        assert_eq!(e.parts().status, 503);
        let r = Error::BatchTimeUp(30).parts().into_response(7);
        assert_eq!((r.status, r.errno), (503, Some(201)));
        assert!(r.has("Retry-After"));
    }
}
