//! Routing: which endpoint a raw path names, the redirects of the original (missing `/v1`,
//! trailing slash), the methods each endpoint answers, and the `scheme://host` of the URLs
//! Syncto writes (with the check of the `Host` header it may come from).

use super::error::Error;
use crate::app::App;
use crate::message::{Request, Response};
use std::borrow::Cow;

/// Which endpoint a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v1/`
    Hello,
    /// `/v1/__heartbeat__`
    Heartbeat,
    /// `/v1/__lbheartbeat__`
    LbHeartbeat,
    /// `/v1/__version__`
    Version,
    /// `/v1/batch`
    Batch,
    /// `/v1/buckets/{b}`
    Bucket(Cow<'a, str>),
    /// `/v1/buckets/{b}/collections`
    Collections(Cow<'a, str>),
    /// `/v1/buckets/{b}/collections/{c}`
    Collection(Cow<'a, str>, Cow<'a, str>),
    /// `/v1/buckets/{b}/collections/{c}/records`
    Records(Cow<'a, str>, Cow<'a, str>),
    /// `/v1/buckets/{b}/collections/{c}/records/{id}`
    Record(Cow<'a, str>, Cow<'a, str>, Cow<'a, str>),
}

/// What routing gives besides an endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed<'a> {
    /// An endpoint.
    To(Route<'a>),
    /// A 307 to this path (query appended by the caller).
    Redirect(String),
}

impl Route<'_> {
    /// Methods the endpoint answers (for `Allow` and preflights).
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Batch => "POST, OPTIONS",
            Route::Record(..) => "GET, HEAD, PUT, DELETE, OPTIONS",
            _ => "GET, HEAD, OPTIONS",
        }
    }

    /// Whether the endpoint answers `method`.
    pub fn allows(&self, method: &str) -> bool {
        self.allow().split(", ").any(|m| m == method)
    }

    /// Service name for metrics (`view.<service>.<METHOD>`).
    pub fn service(&self) -> &'static str {
        match self {
            Route::Hello => "hello",
            Route::Heartbeat | Route::LbHeartbeat => "heartbeat",
            Route::Version => "version",
            Route::Batch => "batch",
            Route::Bucket(..) => "bucket",
            Route::Collections(..) => "collections",
            // The original's names: its list endpoint was "collection".
            Route::Collection(..) => "collection_info",
            Route::Records(..) => "collection",
            Route::Record(..) => "record",
        }
    }
}

/// Route a raw path.
pub fn route(path: &str) -> Result<Routed<'_>, Error> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Error::NotFound);
    };
    let (first, tail) = match rest.split_once('/') {
        Some((f, t)) => (f, Some(t)),
        None => (rest, None),
    };
    let is_version = first.len() >= 2
        && first.starts_with('v')
        && first[1..].bytes().all(|b| b.is_ascii_digit());
    if !is_version {
        return Ok(Routed::Redirect(format!("/v1{path}")));
    }
    if first != "v1" {
        return Err(Error::VersionNotAvailable);
    }
    let Some(tail) = tail else {
        // `/v1` itself: 404 as the original (a trailing slash is the hello).
        return Err(Error::NotFound);
    };
    if tail.is_empty() {
        return Ok(Routed::To(Route::Hello));
    }
    if tail.ends_with('/') {
        return Ok(Routed::Redirect(path.trim_end_matches('/').to_owned()));
    }
    let segments: Vec<&str> = tail.split('/').collect();
    let route = match segments.as_slice() {
        ["__heartbeat__"] => Route::Heartbeat,
        ["__lbheartbeat__"] => Route::LbHeartbeat,
        ["__version__"] => Route::Version,
        ["batch"] => Route::Batch,
        ["buckets", b] => Route::Bucket(decode(b)?),
        ["buckets", b, "collections"] => Route::Collections(decode(b)?),
        ["buckets", b, "collections", c] => Route::Collection(decode(b)?, decode(c)?),
        ["buckets", b, "collections", c, "records"] => Route::Records(decode(b)?, decode(c)?),
        ["buckets", b, "collections", c, "records", id] => {
            Route::Record(decode(b)?, decode(c)?, decode(id)?)
        }
        _ => return Err(Error::NotFound),
    };
    Ok(Routed::To(route))
}

/// Percent-decode a path segment; it must be valid UTF-8 and non-empty.
/// `path` with the bucket segment of `/v1/buckets/{b}...` (percent-decoded) replaced by
/// `hide(b)`, unless it is the shared `syncto` bucket; other paths as they are.
pub(crate) fn hide_bucket<'a>(path: &'a str, hide: impl FnOnce(&str) -> String) -> Cow<'a, str> {
    let Some(rest) = path.strip_prefix("/v1/buckets/") else {
        return Cow::Borrowed(path);
    };
    let (bucket, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let decoded = percent_encoding::percent_decode_str(bucket).decode_utf8_lossy();
    if decoded.is_empty() || decoded == "syncto" {
        return Cow::Borrowed(path);
    }
    Cow::Owned(format!("/v1/buckets/{}{tail}", hide(&decoded)))
}

fn decode(segment: &str) -> Result<Cow<'_, str>, Error> {
    let bad = || {
        Error::param(
            "path",
            "path",
            "Invalid percent-encoding or non UTF-8 path segment",
        )
    };
    if segment.is_empty() {
        return Err(Error::NotFound);
    }
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| bad())?;
    if segment.contains('%') && !well_formed_escapes(segment) {
        return Err(bad());
    }
    // A hop that normalises paths would turn `DELETE …/records/..` into a
    // DELETE of the whole collection (or of all storage): dot segments are
    // never ids, whether written plainly or percent-encoded.
    if decoded == "." || decoded == ".." {
        return Err(Error::param(
            "path",
            "path",
            "`.` and `..` are not valid ids in a path",
        ));
    }
    Ok(decoded)
}

/// `%` must be followed by two hex digits (percent_decode lets `%zz` pass).
pub fn well_formed_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// The answer to a path the original redirected (307).
pub(crate) fn redirect(app: &App, req: &Request<'_>, to: &str) -> Response {
    let mut r = Response::new(307);
    let mut location = format!("{}{to}", base_url(app, req));
    if !req.query.is_empty() {
        location.push('?');
        location.push_str(req.query);
    }
    r.header("Location", location);
    r
}

/// `scheme://host` clients should use: the `http_scheme`/`http_host`
/// settings, else the request's Host header (checked by [`handle`]).
pub(crate) fn base_url(app: &App, req: &Request<'_>) -> String {
    let scheme = app.config.http_scheme.as_deref().unwrap_or("http");
    let host = match &app.config.http_host {
        Some(h) => h.as_str(),
        None => req
            .header("host")
            .filter(|h| crate::endpoint::is_authority(h))
            .unwrap_or("localhost"),
    };
    format!("{scheme}://{host}")
}

/// The Host header goes into the URLs Syncto writes (`Location`, hello
/// `url`, `Next-Page`, which Kinto clients follow with their Authorization):
/// it must be a plain `host[:port]`, and only one. Absent or empty, the URLs
/// say `localhost`.
pub(crate) fn check_host(req: &Request<'_>) -> Result<(), Error> {
    let mut hosts = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"));
    let first = hosts.next().map(|(_, v)| v.trim());
    let ok = match first {
        None | Some("") => true,
        Some(h) => crate::endpoint::is_authority(h),
    };
    if ok && hosts.next().is_none() {
        Ok(())
    } else {
        Err(Error::param(
            "header",
            "Host",
            "Host should be one host name or address, with an optional :port",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(path: &str) -> Route<'_> {
        match route(path) {
            Ok(Routed::To(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn hide_bucket_replaces_only_a_users_bucket() {
        let hide = |b: &str| format!("<{b}>");
        for (path, want) in [
            (
                "/v1/buckets/1234-Yw3NKWbEM2aRElRIu7JbTw/collections/tabs/records",
                "/v1/buckets/<1234-Yw3NKWbEM2aRElRIu7JbTw>/collections/tabs/records",
            ),
            ("/v1/buckets/a%2Db", "/v1/buckets/<a-b>"),
            (
                "/v1/buckets/syncto/collections",
                "/v1/buckets/syncto/collections",
            ),
            ("/v1/buckets/", "/v1/buckets/"),
            ("/v1/batch", "/v1/batch"),
            ("/buckets/x", "/buckets/x"),
        ] {
            assert_eq!(hide_bucket(path, hide), want, "{path}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(to("/v1/"), Route::Hello);
        assert_eq!(to("/v1/__heartbeat__"), Route::Heartbeat);
        assert_eq!(
            to("/v1/buckets/syncto/collections/tabs/records/a%20b"),
            Route::Record("syncto".into(), "tabs".into(), "a b".into())
        );
        assert_eq!(route("/").unwrap(), Routed::Redirect("/v1/".into()));
        assert_eq!(
            route("/buckets/x").unwrap(),
            Routed::Redirect("/v1/buckets/x".into())
        );
        assert_eq!(
            route("/v1/buckets/x/collections/y/records/").unwrap(),
            Routed::Redirect("/v1/buckets/x/collections/y/records".into())
        );
        assert!(matches!(route("/v2/foo"), Err(Error::VersionNotAvailable)));
        assert!(matches!(route("/v1"), Err(Error::NotFound)));
        assert!(matches!(route("/v1/buckets"), Err(Error::NotFound)));
        assert_eq!(to("/v1/buckets/syncto"), Route::Bucket("syncto".into()));
        assert_eq!(
            to("/v1/buckets/syncto/collections"),
            Route::Collections("syncto".into())
        );
        assert!(matches!(
            route("/v1/buckets//collections/c"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            route("/v1/buckets/%ff/collections/c"),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            route("/v1/buckets/%zz/collections/c"),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            route("/v1/buckets/ab%2/collections/c"),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
