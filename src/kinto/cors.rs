//! CORS: preflights and the headers added to actual responses, so that
//! browser clients (kinto-http.js, Kinto.js) can call and read everything.

use super::error::Error;
use super::route::Route;
use super::{Request, Response};
use crate::config::Config;

/// Headers every browser request may carry (clients send Content-Type and
/// Accept even on GETs, so every request is preflighted).
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Accept, If-Match, If-None-Match, X-KeyID, X-Client-State, User-Agent";
const BASE_EXPOSED: &str =
    "Alert, Backoff, Retry-After, Content-Length, Content-Type, X-Request-Id";

fn origin_allowed<'a>(config: &Config, origin: &'a str) -> Option<&'a str> {
    if config.cors_origins.iter().any(|o| o == "*") {
        Some("*")
    } else if config.cors_origins.iter().any(|o| o == origin) {
        Some(origin)
    } else {
        None
    }
}

/// Headers scripts may read on each endpoint.
fn exposed(route: Option<&Route<'_>>) -> String {
    let extra = match route {
        Some(Route::Records(..)) => {
            ", Cache-Control, ETag, Last-Modified, Next-Page, Quota-Remaining, Total-Records"
        }
        Some(Route::Collections(..)) => ", Cache-Control, ETag, Last-Modified, Total-Records",
        Some(Route::Record(..) | Route::Collection(..) | Route::Bucket(..)) => {
            ", Cache-Control, ETag, Last-Modified, Quota-Remaining"
        }
        _ => "",
    };
    format!("{BASE_EXPOSED}{extra}")
}

/// Add `Access-Control-Allow-Origin` / `-Expose-Headers` to a response of
/// a request that carried an allowed `Origin`.
pub fn decorate(
    config: &Config,
    req: &Request<'_>,
    route: Option<&Route<'_>>,
    resp: &mut Response,
) {
    let Some(origin) = req.header("origin") else {
        return;
    };
    if resp.has("Access-Control-Allow-Origin") {
        return;
    }
    let Some(allowed) = origin_allowed(config, origin) else {
        return;
    };
    if allowed != "*" {
        resp.header("Vary", "Origin");
    }
    resp.header("Access-Control-Allow-Origin", allowed.to_owned());
    resp.header("Access-Control-Expose-Headers", exposed(route));
}

/// Answer an `OPTIONS` preflight for `route`.
pub fn preflight(config: &Config, req: &Request<'_>, route: &Route<'_>) -> Result<Response, Error> {
    let mandatory = |name: &'static str| Error::param("header", name, "this header is mandatory");
    let origin = req.header("origin").ok_or_else(|| mandatory("Origin"))?;
    let method = req
        .header("access-control-request-method")
        .ok_or_else(|| mandatory("Access-Control-Request-Method"))?;
    let allowed = origin_allowed(config, origin)
        .ok_or_else(|| Error::param("header", "Origin", "Origin is not allowed"))?;
    let allow = route.allow();
    if !route.allows(method.trim()) {
        return Err(Error::param(
            "header",
            "Access-Control-Request-Method",
            format!("Method not allowed on this endpoint (allowed: {allow})"),
        ));
    }
    let mut headers = String::from(ALLOWED_HEADERS);
    if let Some(requested) = req.header("access-control-request-headers") {
        for h in requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            let known = headers.split(", ").any(|k| k.eq_ignore_ascii_case(h));
            if !known && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                headers.push_str(", ");
                headers.push_str(h);
            }
        }
    }
    let mut r = Response::new(200);
    r.set_json_body(b"null".to_vec());
    if allowed != "*" {
        r.header("Vary", "Origin");
    }
    r.header("Access-Control-Allow-Origin", allowed.to_owned());
    r.header("Access-Control-Allow-Methods", allow);
    r.header("Access-Control-Allow-Headers", headers);
    r.header(
        "Access-Control-Max-Age",
        config.cors_max_age_seconds.to_string(),
    );
    Ok(r)
}
