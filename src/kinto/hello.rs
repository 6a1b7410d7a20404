//! The unauthenticated endpoints: hello, heartbeats, version.

use super::error::Error;
use super::{App, Request, Response};
use crate::VERSION;
use serde_json::json;

/// `GET /v1/`: what the clients read before a batch (`settings`).
pub fn hello(app: &App, req: &Request<'_>) -> Result<Response, Error> {
    let c = &app.config;
    let readonly = c.write_switches.values().all(|w| !w.put && !w.delete);
    let mut doc = json!({
        "project_name": c.project_name,
        "project_version": VERSION,
        "http_api_version": "1.5",
        "cliquet_protocol_version": "2",
        "project_docs": c.project_docs,
        "url": format!("{}/v1/", super::route::base_url(app, req)),
        "settings": {
            "batch_max_requests": c.batch_max_requests,
            "cliquet.batch_max_requests": c.batch_max_requests,
            "readonly": readonly,
        },
        "capabilities": {},
    });
    if let Some(eos) = &c.eos {
        doc["eos"] = json!(eos.date);
    }
    let mut r = Response::new(200);
    r.json(&doc);
    Ok(r)
}

/// `GET /v1/__heartbeat__`: `{"cache", "sync"}`; 503 unless all true. An
/// unreachable token server is `"sync": false`, never an error document.
pub fn heartbeat(app: &App) -> Result<Response, Error> {
    let sync = app.tokens.heartbeat();
    let mut r = Response::new(if sync { 200 } else { 503 });
    r.json(&json!({"cache": true, "sync": sync}));
    if !sync {
        r.header("Retry-After", app.config.retry_after_seconds.to_string());
    }
    Ok(r)
}

/// `GET /v1/__lbheartbeat__`: the process answers.
pub fn lbheartbeat() -> Result<Response, Error> {
    let mut r = Response::new(200);
    r.set_json_body(b"{}".to_vec());
    Ok(r)
}

/// Where this build's source is: `SYNCTO_SOURCE` at build time, else the package's
/// `repository`, else "unknown" (never the original Python project's: this is not it).
fn source() -> &'static str {
    match (option_env!("SYNCTO_SOURCE"), env!("CARGO_PKG_REPOSITORY")) {
        (Some(s), _) => s,
        (None, "") => "unknown",
        (None, repository) => repository,
    }
}

/// `GET /v1/__version__` (Dockerflow).
pub fn version() -> Result<Response, Error> {
    let mut r = Response::new(200);
    r.json(&json!({
        "name": "syncto",
        "version": VERSION,
        "source": source(),
        "commit": option_env!("SYNCTO_COMMIT").unwrap_or("unknown"),
    }));
    Ok(r)
}
