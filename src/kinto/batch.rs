//! `POST /v1/batch`, as Kinto: `defaults` merged, `/v1` prefixed, the outer
//! Authorization / X-KeyID / X-Client-State / User-Agent inherited, every
//! sub-response returned in order (4xx and 5xx too: nothing already done is
//! hidden). The whole batch is validated before anything runs, so a bad
//! batch never writes upstream.

use super::error::Error;
use super::{App, Memo, Request, Response};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

const METHODS: [&str; 7] = ["GET", "HEAD", "DELETE", "TRACE", "POST", "PUT", "PATCH"];
/// Outer headers a sub-request inherits unless it sets them itself.
const INHERITED: [&str; 5] = [
    "authorization",
    "x-keyid",
    "x-client-state",
    "user-agent",
    "origin",
];
/// Sync answers 503 to two writes of one user within the same 10 ms.
const WRITE_SPACING: Duration = Duration::from_millis(11);

struct Sub {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// Run a batch.
pub fn batch(app: &App, req: &Request<'_>) -> Result<Response, Error> {
    let body = req.json_body()?;
    let subs = parse(body, app.config.batch_max_requests)?;
    let outer: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| INHERITED.iter().any(|i| n.eq_ignore_ascii_case(i)))
        .copied()
        .collect();
    let mut memo = Memo::default();
    let mut last_write: Option<Instant> = None;
    let mut out = Vec::with_capacity(256 * subs.len());
    out.extend_from_slice(b"{\"responses\":[");
    for (i, sub) in subs.iter().enumerate() {
        let mut headers: Vec<(&str, &str)> = outer.clone();
        for (n, v) in &sub.headers {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(n));
            headers.push((n.as_str(), v.as_str()));
        }
        let empty: &[u8] = &[];
        if sub.body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type", "application/json"));
        }
        let (path, query) = sub.path.split_once('?').unwrap_or((&sub.path, ""));
        let is_write = matches!(sub.method.as_str(), "PUT" | "DELETE" | "POST" | "PATCH");
        if is_write {
            if let Some(t) = last_write {
                let since = t.elapsed();
                if since < WRITE_SPACING {
                    std::thread::sleep(WRITE_SPACING - since);
                }
            }
        }
        let sub_req = Request {
            method: &sub.method,
            path,
            query,
            headers: &headers,
            body: sub.body.as_deref().unwrap_or(empty),
        };
        let (resp, _) = app.dispatch(&sub_req, &mut memo);
        if is_write {
            last_write = Some(Instant::now());
        }
        if i > 0 {
            out.push(b',');
        }
        write_sub_response(&mut out, &sub.path, &resp, sub.method == "HEAD");
    }
    out.extend_from_slice(b"]}");
    let mut r = Response::new(200);
    r.set_json_body(out);
    Ok(r)
}

fn write_sub_response(out: &mut Vec<u8>, path: &str, resp: &Response, head: bool) {
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

/// Validate the whole batch document.
fn parse(body: Value, max: usize) -> Result<Vec<Sub>, Error> {
    let Value::Object(mut top) = body else {
        return Err(invalid(
            "requests",
            "body: The batch should be a JSON object with a `requests` list",
        ));
    };
    let defaults = match top.remove("defaults") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(invalid("defaults", "defaults should be an object")),
    };
    let Some(Value::Array(requests)) = top.remove("requests") else {
        return Err(invalid("requests", "requests is missing or not a list"));
    };
    if let Some(k) = top.keys().next() {
        return Err(invalid(k.clone(), format!("{k} is not allowed")));
    }
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

fn sub_request(i: usize, r: Value, defaults: &Map<String, Value>) -> Result<Sub, Error> {
    let Value::Object(r) = r else {
        return Err(invalid(
            format!("requests.{i}"),
            format!("requests.{i} should be an object"),
        ));
    };
    for k in r.keys() {
        if !matches!(k.as_str(), "method" | "path" | "headers" | "body") {
            return Err(invalid(
                format!("requests.{i}.{k}"),
                format!("requests.{i}.{k} is not allowed"),
            ));
        }
    }
    let field = |name: &str| r.get(name).or_else(|| defaults.get(name));
    let method = match field("method") {
        None => "GET".to_owned(),
        Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            m.to_ascii_uppercase()
        }
        Some(_) => {
            return Err(invalid(
                format!("requests.{i}.method"),
                format!(
                    "requests.{i}.method should be one of {}",
                    METHODS.join(", ")
                ),
            ));
        }
    };
    let path = match field("path") {
        Some(Value::String(p))
            if p.starts_with('/') && p.len() <= 8192 && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p
        }
        _ => {
            return Err(invalid(
                format!("requests.{i}.path"),
                format!("requests.{i}.path should be a path starting with /"),
            ));
        }
    };
    let path = if path == "/v1" || path.starts_with("/v1/") {
        path.clone()
    } else {
        format!("/v1{path}")
    };
    if path
        .split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .any(|s| s == "batch")
    {
        return Err(invalid(
            format!("requests.{i}.path"),
            "Recursive call on /batch endpoint is forbidden.",
        ));
    }
    let mut headers = Vec::new();
    for source in [defaults.get("headers"), r.get("headers")]
        .into_iter()
        .flatten()
    {
        let Value::Object(h) = source else {
            return Err(invalid(
                format!("requests.{i}.headers"),
                "headers should be an object",
            ));
        };
        for (n, v) in h {
            let Value::String(v) = v else {
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
            headers.retain(|(h, _): &(String, String)| !h.eq_ignore_ascii_case(n));
            headers.push((n.clone(), v.clone()));
        }
    }
    let body = match field("body") {
        None | Some(Value::Null) => None,
        Some(b) => Some(serde_json::to_vec(b).map_err(|_| Error::Internal)?),
    };
    Ok(Sub {
        method,
        path,
        headers,
        body,
    })
}
