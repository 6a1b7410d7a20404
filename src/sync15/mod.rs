//! What Firefox Sync sees: the Token Server client, the storage-node client,
//! Hawk signing and timestamp conversion.
//!
//! Everything here speaks HTTP through one shared ureq agent (its keep-alive
//! pool is shared by all workers) and reports failures as [`Error`], which
//! the Kinto side maps to status codes and errnos in one place.

pub mod hawk;
pub(crate) mod heartbeat;
pub(crate) mod limits;
pub(crate) mod pacing;
pub(crate) mod storage;
pub mod timestamp;
pub(crate) mod tokenserver;

use std::fmt;
use std::io::Read;
use ureq::http;

/// Where and how to reach one user's storage, from a Token Server answer.
/// Its `Debug` leaves the Hawk id and key out.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Hawk id (the opaque token).
    pub id: String,
    /// Hawk key (used as its UTF-8 bytes).
    pub key: String,
    /// The `api_endpoint`, without trailing slash.
    pub endpoint: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &"<redacted>")
            .field("key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// An upstream answer, with the headers Syncto translates.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `X-Last-Modified`, in ms.
    pub last_modified: Option<u64>,
    /// `X-Weave-Records`.
    pub records: Option<u64>,
    /// `X-Weave-Next-Offset` (opaque).
    pub next_offset: Option<String>,
    /// `X-Weave-Quota-Remaining`.
    pub quota_remaining: Option<String>,
    /// `X-Weave-Alert`.
    pub alert: Option<String>,
    /// `X-Weave-Backoff`, else `X-Backoff` (seconds).
    pub backoff: Option<String>,
    /// `Retry-After`.
    pub retry_after: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Where an error status came from (`host:port/path`, for the log); empty otherwise.
    pub at: String,
}

impl Reply {
    /// Read the translated headers and the body (at most `limit` bytes).
    ///
    /// A body over `limit` is [`ureq::Error::BodyExceedsLimit`] (refused
    /// before reading when its `Content-Length` says so); an
    /// `X-Last-Modified` that is not a timestamp Syncto can represent makes
    /// the whole answer unusable. [`Error::transport`] maps both.
    fn read(mut resp: http::Response<ureq::Body>, limit: u64) -> Result<Reply, ureq::Error> {
        let h = resp.headers();
        let text = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        // Only well-formed values are passed on to clients.
        let number = |name: &str| {
            text(name)
                .filter(|v| v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .map(str::to_owned)
        };
        let last_modified = match h.get("x-last-modified") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(timestamp::seconds_to_ms)
                    .ok_or_else(|| unusable("X-Last-Modified is not a timestamp"))?,
            ),
        };
        let mut reply = Reply {
            status: resp.status().as_u16(),
            last_modified,
            records: text("x-weave-records").and_then(|v| v.parse().ok()),
            next_offset: text("x-weave-next-offset")
                .filter(|v| v.len() <= 1024)
                .map(str::to_owned),
            quota_remaining: number("x-weave-quota-remaining"),
            alert: text("x-weave-alert")
                .filter(|v| v.len() <= 4096)
                .map(str::to_owned),
            backoff: number("x-weave-backoff").or_else(|| number("x-backoff")),
            retry_after: number("retry-after"),
            body: Vec::new(),
            at: String::new(),
        };
        // Sized once from Content-Length: no doubling of a large buffer.
        let declared = resp.body().content_length();
        if declared.is_some_and(|n| n > limit) {
            return Err(ureq::Error::BodyExceedsLimit(limit));
        }
        let mut body = crate::buffers::take(declared.unwrap_or(0) as usize);
        resp.body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut body)
            .map_err(ureq::Error::from)?;
        reply.body = body;
        Ok(reply)
    }

    /// The body as text for error messages: short, printable, never huge.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut out: String = text
            .chars()
            .take(200)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.chars().count() > 200 {
            out.push('…');
        }
        out
    }
}

/// Which upstream a failure came from (for messages and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The Token Server.
    TokenServer,
    /// A Sync storage node.
    Storage,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Upstream::TokenServer => "token server",
            Upstream::Storage => "sync node",
        })
    }
}

/// A failed upstream exchange.
#[derive(Debug, Clone)]
pub enum Error {
    /// The upstream answered with a 304 or an error status.
    Status(Upstream, Box<Reply>),
    /// The upstream could not be reached (DNS, connect, reset).
    Unreachable(Upstream, String),
    /// The TLS connection failed: a certificate refused (untrusted, expired, misnamed, a pin
    /// mismatch) or a TLS protocol error.
    Tls(Upstream, String),
    /// The upstream did not answer in time.
    Timeout(Upstream, String),
    /// The upstream answered something unusable (bad JSON, bad token fields,
    /// an endpoint our policy forbids, a timestamp out of range).
    BadAnswer(Upstream, String),
    /// The request could not be sent in time because others of the same
    /// user had to go first (write pacing).
    Busy(Upstream, String),
    /// The answer's body is larger than the limit (bytes) Syncto reads.
    TooLarge(Upstream, u64),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(u, r) if r.at.is_empty() => write!(f, "{u} answered {}", r.status),
            Error::Status(u, r) => write!(f, "{u} answered {}: {}", r.status, r.at),
            Error::Unreachable(u, why) => write!(f, "{u} unreachable: {why}"),
            Error::Tls(u, why) => write!(f, "{u} TLS failure: {why}"),
            Error::Timeout(u, why) => write!(f, "{u} timed out: {why}"),
            Error::BadAnswer(u, why) => write!(f, "{u} gave an unusable answer: {why}"),
            Error::Busy(u, why) => write!(f, "{u} write not sent: {why}"),
            Error::TooLarge(u, limit) => write!(f, "{u} answer is larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// From a transport error of ureq (or of [`Reply::read`]) of a call to `at`
    /// (`host:port/path`, see [`crate::endpoint::Endpoint::at`]).
    pub(crate) fn transport(upstream: Upstream, at: &str, e: &ureq::Error) -> Error {
        use crate::upstream::failure::{FailureKind, classify};
        match e {
            ureq::Error::BodyExceedsLimit(limit) => return Error::TooLarge(upstream, *limit),
            ureq::Error::Other(inner) => {
                if let Some(Unusable(why)) = inner.downcast_ref::<Unusable>() {
                    return Error::BadAnswer(upstream, format!("{at}: {why}"));
                }
            }
            _ => {}
        }
        let (kind, reason) = classify(e);
        let why = format!("{at}: {reason}");
        match kind {
            FailureKind::Timeout => Error::Timeout(upstream, why),
            FailureKind::Unusable => Error::BadAnswer(upstream, why),
            FailureKind::Tls => Error::Tls(upstream, why),
            FailureKind::Network => Error::Unreachable(upstream, why),
        }
    }
}

/// An answer [`Reply::read`] refuses, and why.
#[derive(Debug)]
struct Unusable(&'static str);

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Unusable {}

fn unusable(why: &'static str) -> ureq::Error {
    ureq::Error::Other(Box::new(Unusable(why)))
}

/// Most bytes read from one storage-node answer: 16 MiB.
///
/// Sync refuses a record whose payload is over 2.5 MiB (a PUT body is at
/// most 2.5 MiB + 4 KiB), so one record always fits, and so does a page of
/// `paginate_by` records of ordinary size (Sync pages are otherwise only
/// bounded by the `limit` asked for). A larger page is refused with a clear
/// error naming `_limit`, instead of holding whatever a user has stored.
pub const MAX_UPSTREAM_BODY: u64 = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_hawk_credentials() {
        let creds = Credentials {
            id: "hawk-id-x".into(),
            key: "hawk-key-y".into(),
            endpoint: "https://node/1.5/1".into(),
        };
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("hawk-id-x") && !shown.contains("hawk-key-y"),
            "{shown}"
        );
        assert!(shown.contains("https://node/1.5/1"), "{shown}");
    }
}
