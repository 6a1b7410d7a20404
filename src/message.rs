//! The HTTP request and response as the handlers see them, whatever carried them (the
//! listener or a sub-request of a batch).

use std::borrow::Cow;

/// A request, whatever carried it (the listener or a batch).
pub struct Request<'a> {
    /// Method, upper-case.
    pub method: &'a str,
    /// Raw path (still percent-encoded), without the query.
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: &'a str,
    /// Header names and values.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
    /// The address of the peer that connected (None for a unix socket peer); the client's
    /// own is worked out from it and the trusted proxies' headers (`forwarded::client`).
    pub peer: Option<std::net::IpAddr>,
}

impl<'a> Request<'a> {
    /// First value of a header, case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A response before it is written.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers (names are fixed strings).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// Body bytes (JSON or empty).
    pub body: Vec<u8>,
    /// Kinto errno of an error answer, for the request log.
    pub errno: Option<u16>,
    /// The rank of what set the `Alert` header (`kinto::alert` alone writes both).
    pub alert_rank: Option<u8>,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::with_capacity(12),
            body: Vec::new(),
            errno: None,
            alert_rank: None,
        }
    }

    /// Add a header.
    pub fn header(&mut self, name: &'static str, value: impl Into<Cow<'static, str>>) {
        self.headers.push((name, value.into()));
    }

    /// Whether a header is set.
    pub fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Replace or add a header.
    pub fn set(&mut self, name: &'static str, value: impl Into<Cow<'static, str>>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.header(name, value);
    }

    /// Set a JSON body.
    pub fn json(&mut self, value: &impl serde::Serialize) {
        // Serializing our own Value/structs into a Vec can't fail.
        self.set_json_body(serde_json::to_vec(value).unwrap_or_default());
    }

    /// Set an already-serialized JSON body.
    pub fn set_json_body(&mut self, body: Vec<u8>) {
        self.body = body;
        if !self.has("Content-Type") {
            self.header("Content-Type", "application/json");
        }
    }
}
