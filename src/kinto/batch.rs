//! `POST /v1/batch`, as Kinto: `defaults` merged, `/v1` prefixed, the outer
//! Authorization / X-KeyID / X-Client-State / User-Agent inherited, every
//! sub-response returned in order (4xx and 5xx too: nothing already done is
//! hidden). The whole batch is validated before anything runs, so a bad
//! batch never writes upstream.
//!
//! One batch may not cost much more than the requests it holds:
//! - the health routes (`__heartbeat__`, `__lbheartbeat__`, `__version__`)
//!   are refused: they are for load balancers, and the Token Server heartbeat
//!   25 times over would pin a worker for minutes;
//! - one deadline, `batch_timeout_seconds` after the batch began: a
//!   sub-request not started by then is answered 503 without being run (one
//!   already running finishes);
//! - the Token Server is asked at most [`super::MAX_TOKEN_CALLS`] times;
//! - the answer holds at most [`MAX_ANSWER_BYTES`]: a read whose answer would
//!   not fit is answered 400 instead (reading changed nothing), a write whose
//!   body could not fit is not run;
//! - bodies are never copied: each sub-request's body, or the one of
//!   `defaults`, is a slice of the batch's own body, and must be an object;
//! - the outer `Host` is the only one: a sub-request can't change the host of
//!   the URLs Syncto writes;
//! - a panic in one sub-request is that sub-request's 500; the others keep
//!   their answers.

use super::collapse;
use super::error::Error;
use super::route::{Route, Routed, route};
use super::{App, Request, Response};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

const METHODS: [&str; 7] = ["GET", "HEAD", "DELETE", "TRACE", "POST", "PUT", "PATCH"];
/// Outer headers a sub-request inherits unless it sets them itself.
const INHERITED: [&str; 5] = [
    "authorization",
    "x-keyid",
    "x-client-state",
    "user-agent",
    "origin",
];

/// Most bytes of sub-response bodies one batch answer holds (16 MiB, one
/// full storage-node read): with the upstream read limit, what one worker
/// holds for a batch stays within about three times this.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The fields of a JSON object, each value left unparsed (a slice of the
/// batch body).
type Fields<'a> = BTreeMap<String, &'a RawValue>;

struct Sub<'a> {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<&'a [u8]>,
}

/// Run a batch.
pub fn batch(app: &App, req: &Request<'_>) -> Result<Response, Error> {
    let deadline = Instant::now() + app.config.batch_timeout;
    let subs = parse(req, app.config.batch_max_requests)?;
    let outer: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| INHERITED.iter().any(|i| n.eq_ignore_ascii_case(i)))
        .copied()
        .collect();
    let host = req.header("host");
    let headers: Vec<Vec<(&str, &str)>> = subs
        .iter()
        .map(|sub| sub_headers(&outer, sub, host))
        .collect();
    let reqs: Vec<Request<'_>> = subs
        .iter()
        .zip(&headers)
        .map(|(sub, headers)| {
            let (path, query) = sub.path.split_once('?').unwrap_or((&sub.path, ""));
            Request {
                method: &sub.method,
                path,
                query,
                headers,
                body: sub.body.unwrap_or_default(),
                peer: req.peer,
            }
        })
        .collect();
    let mut memo = super::memo_for(app, req);
    memo.deadline = Some(deadline);
    let mut out = Vec::with_capacity(256 * subs.len());
    out.extend_from_slice(b"{\"responses\":[");
    let mut i = 0;
    while i < reqs.len() {
        let room = MAX_ANSWER_BYTES.saturating_sub(out.len());
        let segment = if Instant::now() < deadline {
            collapse::plan(app, &reqs[i..], room)
        } else {
            None
        };
        if let Some(segment) = segment {
            let len = segment.len;
            let answers = contained_segment(app, len, || {
                collapse::run(app, &reqs[i..], segment, &mut memo)
            });
            for (k, resp) in answers.iter().enumerate() {
                write_sub_response(&mut out, i + k, reqs[i + k].path, resp, false);
            }
            i += len;
            continue;
        }
        let sub = &reqs[i];
        let head = sub.method == "HEAD";
        let is_write = matches!(sub.method, "PUT" | "DELETE" | "POST" | "PATCH");
        let resp = if Instant::now() >= deadline {
            super::error(app, Error::BatchTimeUp(app.config.batch_timeout.as_secs()))
        } else if is_write && out.len() + sub.body.len() > MAX_ANSWER_BYTES {
            super::error(app, too_large(i, "This write was not run"))
        } else {
            let resp = contained(app.config.retry_after_seconds, || {
                super::dispatch(app, sub, &mut memo).0
            });
            let shown = if head { 0 } else { resp.body.len() };
            if !is_write && out.len() + shown > MAX_ANSWER_BYTES {
                super::error(app, too_large(i, "This answer was left out"))
            } else {
                resp
            }
        };
        write_sub_response(&mut out, i, sub.path, &resp, head);
        i += 1;
    }
    out.extend_from_slice(b"]}");
    let mut r = Response::new(200);
    r.set_json_body(out);
    Ok(r)
}

/// A sub-request's headers: the outer ones it inherits, its own (never `Host`: the
/// outer one is the only one), and a JSON `Content-Type` for a body without one.
fn sub_headers<'a>(
    outer: &[(&'a str, &'a str)],
    sub: &'a Sub<'_>,
    host: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut headers: Vec<(&str, &str)> = outer.to_vec();
    for (n, v) in sub
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
    {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(n));
        headers.push((n.as_str(), v.as_str()));
    }
    if let Some(h) = host {
        headers.push(("host", h));
    }
    if sub.body.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type", "application/json"));
    }
    headers
}

/// Run a segment of collapsed writes ([`collapse`]); a panic makes each of its `len`
/// sub-requests a 500/999 (the panic itself is logged by the panic hook).
fn contained_segment(app: &App, len: usize, run: impl FnOnce() -> Vec<Response>) -> Vec<Response> {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(answers) if answers.len() == len => answers,
        _ => {
            log::error!("a batch's collapsed writes panicked; answered 500");
            let retry_after = app.config.retry_after_seconds;
            (0..len)
                .map(|_| Error::Internal.parts().into_response(retry_after))
                .collect()
        }
    }
}

/// Run one sub-request; a panic becomes its own 500/999 document and the
/// batch goes on (the panic itself is logged by the panic hook).
fn contained(retry_after_seconds: u32, run: impl FnOnce() -> Response) -> Response {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => {
            log::error!("a batch sub-request panicked; answered 500");
            Error::Internal.parts().into_response(retry_after_seconds)
        }
    }
}

fn too_large(i: usize, what: &str) -> Error {
    Error::param(
        "body",
        format!("requests.{i}"),
        format!(
            "{what}: the answers of one batch may hold at most {MAX_ANSWER_BYTES} bytes; send this request on its own or in another batch."
        ),
    )
}

/// The `i`-th sub-response, appended to the answer's list.
fn write_sub_response(out: &mut Vec<u8>, i: usize, path: &str, resp: &Response, head: bool) {
    if i > 0 {
        out.push(b',');
    }
    let mut headers = Map::new();
    for (n, v) in &resp.headers {
        headers.insert((*n).to_owned(), Value::String(v.to_string()));
    }
    let body: Option<&RawValue> = if head || resp.body.is_empty() {
        None
    } else {
        std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
    };
    #[derive(serde::Serialize)]
    struct SubResponse<'a> {
        status: u16,
        path: &'a str,
        headers: Map<String, Value>,
        body: Option<&'a RawValue>,
    }
    let doc = SubResponse {
        status: resp.status,
        path,
        headers,
        body,
    };
    // Serializing plain strings, numbers and valid raw JSON can't fail.
    let _ = serde_json::to_writer(out, &doc);
}

fn invalid(
    name: impl Into<std::borrow::Cow<'static, str>>,
    message: impl Into<std::borrow::Cow<'static, str>>,
) -> Error {
    Error::param("body", name, message)
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Validate the whole batch document, without building a tree of its
/// values (a 2 MiB array would be tens of MB as `serde_json::Value`s).
fn parse<'a>(req: &Request<'a>, max: usize) -> Result<Vec<Sub<'a>>, Error> {
    super::body::json_content_type(req)?;
    let top: Fields<'a> = match serde_json::from_slice(req.body) {
        Ok(top) => top,
        Err(e) if e.is_data() => {
            return Err(invalid(
                "requests",
                "The batch should be a JSON object with a `requests` list",
            ));
        }
        Err(e) => return Err(Error::InvalidJson(e.to_string())),
    };
    if let Some(k) = top.keys().find(|k| *k != "defaults" && *k != "requests") {
        return Err(invalid(k.clone(), format!("{k} is not allowed")));
    }
    let defaults: Fields<'a> = match top.get("defaults") {
        None => Fields::new(),
        Some(raw) if is_null(raw) => Fields::new(),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| invalid("defaults", "defaults should be an object"))?,
    };
    if defaults
        .get("body")
        .is_some_and(|b| !is_null(b) && !is_object(b))
    {
        return Err(invalid(
            "defaults.body",
            "defaults.body should be an object",
        ));
    }
    let requests: Vec<&'a RawValue> = top
        .get("requests")
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or_else(|| invalid("requests", "requests is missing or not a list"))?;
    if requests.is_empty() {
        return Err(invalid("requests", "requests should not be empty"));
    }
    if requests.len() > max {
        return Err(invalid(
            "requests",
            format!("Number of requests is limited to {max}"),
        ));
    }
    requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| sub_request(i, r, &defaults))
        .collect()
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

fn sub_request<'a>(i: usize, r: &'a RawValue, defaults: &Fields<'a>) -> Result<Sub<'a>, Error> {
    let r: Fields<'a> = serde_json::from_str(r.get()).map_err(|_| {
        invalid(
            format!("requests.{i}"),
            format!("requests.{i} should be an object"),
        )
    })?;
    for k in r.keys() {
        if !matches!(k.as_str(), "method" | "path" | "headers" | "body") {
            return Err(invalid(
                format!("requests.{i}.{k}"),
                format!("requests.{i}.{k} is not allowed"),
            ));
        }
    }
    let field = |name: &str| r.get(name).or_else(|| defaults.get(name)).copied();
    let string = |raw: &RawValue| serde_json::from_str::<String>(raw.get()).ok();
    let method = match field("method") {
        None => "GET".to_owned(),
        Some(raw) => string(raw)
            .map(|m| m.to_ascii_uppercase())
            .filter(|m| METHODS.contains(&m.as_str()))
            .ok_or_else(|| {
                invalid(
                    format!("requests.{i}.method"),
                    format!(
                        "requests.{i}.method should be one of {}",
                        METHODS.join(", ")
                    ),
                )
            })?,
    };
    let path = field("path")
        .and_then(string)
        .filter(|p| {
            p.starts_with('/') && p.len() <= 8192 && p.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            invalid(
                format!("requests.{i}.path"),
                format!("requests.{i}.path should be a path starting with /"),
            )
        })?;
    let path = if path == "/v1" || path.starts_with("/v1/") {
        path
    } else {
        format!("/v1{path}")
    };
    let bare = path.split('?').next().unwrap_or("");
    // Only what routes to the batch endpoint: a record or collection named `batch` is a
    // record or a collection.
    if matches!(route(bare), Ok(Routed::To(Route::Batch))) {
        return Err(invalid(
            format!("requests.{i}.path"),
            "Recursive call on /batch endpoint is forbidden.",
        ));
    }
    if matches!(
        route(bare),
        Ok(Routed::To(
            Route::Heartbeat | Route::LbHeartbeat | Route::Version
        ))
    ) {
        return Err(invalid(
            format!("requests.{i}.path"),
            "Health checks (__heartbeat__, __lbheartbeat__, __version__) are not allowed in a batch: call them directly.",
        ));
    }
    let mut headers = Vec::new();
    for source in [defaults.get("headers"), r.get("headers")]
        .into_iter()
        .flatten()
    {
        let h: Fields<'a> = serde_json::from_str(source.get()).map_err(|_| {
            invalid(
                format!("requests.{i}.headers"),
                "headers should be an object",
            )
        })?;
        for (n, v) in h {
            let Some(v) = string(v) else {
                return Err(invalid(
                    format!("requests.{i}.headers.{n}"),
                    format!("requests.{i}.headers.{n} should be a string"),
                ));
            };
            let name_ok = !n.is_empty()
                && n.len() <= 256
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let value_ok =
                v.len() <= 16384 && v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            if !name_ok || !value_ok {
                return Err(invalid(
                    format!("requests.{i}.headers.{n}"),
                    format!("requests.{i}.headers.{n} is not a valid HTTP header"),
                ));
            }
            headers.retain(|(h, _): &(String, String)| !h.eq_ignore_ascii_case(&n));
            headers.push((n, v));
        }
    }
    let body = match field("body") {
        None => None,
        Some(raw) if is_null(raw) => None,
        Some(raw) if is_object(raw) => Some(raw.get().as_bytes()),
        Some(_) => {
            return Err(invalid(
                format!("requests.{i}.body"),
                format!("requests.{i}.body should be an object"),
            ));
        }
    };
    Ok(Sub {
        method,
        path,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_sub_request_is_its_own_500() {
        let r = contained(30, || panic!("bug"));
        assert_eq!((r.status, r.errno), (500, Some(999)));
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["errno"], 999);
        assert_eq!(contained(30, || Response::new(201)).status, 201);
    }

    fn parsed(body: &str) -> Result<Vec<Sub<'_>>, Error> {
        let req = Request {
            method: "POST",
            path: "/v1/batch",
            query: "",
            headers: &[],
            body: body.as_bytes(),
            peer: None,
        };
        parse(&req, 25)
    }

    #[test]
    fn bodies_are_slices_of_the_batch_body() {
        let text = r#"{"defaults": {"body": {"data": {"payload": "D"}}},
            "requests": [{"path": "/a"}, {"path": "/b?x=1", "body": {"data": {}}}, {"path": "/c", "body": null}]}"#;
        let subs = parsed(text).unwrap();
        let range = text.as_bytes().as_ptr_range();
        assert_eq!(subs[0].body, Some(&br#"{"data": {"payload": "D"}}"#[..]));
        assert!(
            range.contains(&subs[0].body.unwrap().as_ptr()),
            "not copied"
        );
        assert_eq!(subs[1].body, Some(&br#"{"data": {}}"#[..]));
        assert_eq!(subs[1].path, "/v1/b?x=1");
        assert_eq!(subs[2].body, None);
    }

    #[test]
    fn bodies_must_be_objects() {
        for (text, name) in [
            (
                r#"{"defaults": {"body": [1]}, "requests": [{"path": "/"}]}"#,
                "defaults.body",
            ),
            (
                r#"{"requests": [{"path": "/", "body": "x"}]}"#,
                "requests.0.body",
            ),
            (
                r#"{"requests": [{"path": "/", "body": 1}]}"#,
                "requests.0.body",
            ),
        ] {
            match parsed(text) {
                Err(Error::InvalidParameter { name: Some(n), .. }) => assert_eq!(n, name),
                Err(other) => panic!("{text}: {other:?}"),
                Ok(_) => panic!("{text}: accepted"),
            }
        }
    }
}
