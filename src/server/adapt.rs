//! Conversions between the listener's requests and responses and the ones the
//! service sees, and reading a request's body.

use crate::message::{Request, Response};
use std::io::{self, Read};

/// The complete HTTP answer written to a connection past `max_connections`.
pub(super) fn busy_response(r: &Response) -> Vec<u8> {
    let mut out = String::from("HTTP/1.1 503 Service Unavailable\r\n");
    for (name, value) in &r.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        r.body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&r.body);
    bytes
}

/// Whatever a handler needs to see of a request, borrowed from it.
pub(super) fn with_view<T>(
    rq: &listener::Request,
    body: &[u8],
    f: impl FnOnce(&Request<'_>) -> T,
) -> T {
    let method = rq.method().as_str();
    let method = if method.bytes().any(|b| b.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(method.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(method)
    };
    let url = rq.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query = query.split('#').next().unwrap_or("");
    let headers: Vec<(&str, &str)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str(), h.value.as_str()))
        .collect();
    f(&Request {
        method: &method,
        path,
        query,
        headers: &headers,
        body,
        peer: rq.remote_addr().map(|a| a.ip()),
    })
}

/// Why a body could not be taken.
pub(super) enum BodyError {
    /// Over `max_body_bytes`.
    TooLarge,
    /// Not received in time, malformed (chunked) or cut short.
    Unreadable(io::Error),
}

/// Read the body, at most `max` bytes. What is left unread makes the
/// listener close the connection after the answer.
pub(super) fn read_body(rq: &mut listener::Request, max: usize) -> Result<Vec<u8>, BodyError> {
    let announced = rq.body_length().unwrap_or(0);
    if announced > max {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(announced);
    match rq.as_reader().take(max as u64 + 1).read_to_end(&mut body) {
        Err(e) => Err(BodyError::Unreadable(e)),
        Ok(_) if body.len() > max => Err(BodyError::TooLarge),
        Ok(_) => Ok(body),
    }
}

/// The listener's headers of a response (it never writes one with control
/// characters: CR, LF…).
pub(super) fn tiny_headers(r: &Response) -> Vec<listener::Header> {
    r.headers
        .iter()
        .filter_map(|(n, v)| listener::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect()
}

/// A response as the listener writes it: head and body in one `writev`.
pub(super) fn into_tiny(r: Response) -> listener::Response {
    let headers = tiny_headers(&r);
    // The body's buffer is kept for another request once written.
    let body = crate::buffers::Recycled(r.body);
    listener::Response::new(listener::StatusCode(r.status), headers, body)
}
