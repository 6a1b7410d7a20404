//! The access log: one summary line per HTTP request, in the logger's format.
//!
//! It uses cliquet's field names (`method`, `path`, `querystring`, `code`, `errno`, `t`,
//! `agent`) so existing dashboards keep working, plus `remote` (the client's address) and
//! `rid` (the request's id, also in its `X-Request-Id` answer header and in every record
//! logged while it was served). `t` is in milliseconds with microsecond precision (most
//! requests that need no upstream take well under one). Request headers other than the
//! User-Agent are never logged, so no Authorization value, token or key can end up in a log.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use log::Level;
use serde::Serialize;

use super::{
    Clean, LogFormat, MAX_FIELD_BYTES, Renderer, RequestId, UNLIMITED, emit, installed,
    with_buffers,
};

/// Target (and MozLog `Type`) of the per-request summary line, as in cliquet.
pub(crate) const SUMMARY_TARGET: &str = "request.summary";

/// What one HTTP request's summary line says: method, path, query, status, errno,
/// duration, User-Agent, client address and request id; no other header, so never a
/// credential.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary<'a> {
    /// Request method, as received.
    pub method: &'a str,
    /// Request path, without the query string.
    pub path: &'a str,
    /// Raw query string without the `?`; empty when there is none.
    pub query: &'a str,
    /// Response status code.
    pub status: u16,
    /// Kinto errno of an error response.
    pub errno: Option<u16>,
    /// Time from reading the request to writing the response.
    pub duration: Duration,
    /// `User-Agent` header: the only header ever logged.
    pub user_agent: Option<&'a str>,
    /// Client address (IP, or the Unix socket's peer).
    pub remote: Option<&'a str>,
    /// The request's id.
    pub request_id: Option<RequestId>,
}

/// Logs one request summary at info level, target [`SUMMARY_TARGET`].
///
/// With Syncto's logger installed the line is structured (MozLog `Fields`); under another
/// logger (say, a test harness's) it is logged as a text message.
pub(crate) fn summary(s: &Summary<'_>) {
    // First, so a server running at `warn` pays nothing per request.
    if !log::log_enabled!(target: SUMMARY_TARGET, Level::Info) {
        return;
    }
    match installed() {
        Some(logger) => with_buffers(|line, _| {
            logger.renderer.render_summary(line, SystemTime::now(), s);
            emit(line);
        }),
        None => {
            let mut text = Vec::new();
            push_summary_text(&mut text, s);
            log::info!(target: SUMMARY_TARGET, "{}", String::from_utf8_lossy(&text));
        }
    }
}

/// The `Fields` of a summary line.
#[derive(Serialize)]
struct Fields<'a> {
    method: Clean<'a>,
    path: Clean<'a>,
    querystring: Clean<'a>,
    code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<u16>,
    /// Milliseconds, to the microsecond.
    t: f64,
    // Absent values are left out, like errno, rather than written as null.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<Clean<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<Clean<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<RequestId>,
}

/// Milliseconds to the microsecond, as a number (`1.234`).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

impl Renderer {
    /// Appends the line (with its `\n`) for a request summary to `out`.
    pub fn render_summary(&self, out: &mut Vec<u8>, now: SystemTime, s: &Summary<'_>) {
        match self.format {
            LogFormat::Text => {
                self.push_text_prefix(out, now, Level::Info);
                push_summary_text(out, s);
            }
            LogFormat::Json => {
                let fields = Fields {
                    method: Clean::new(s.method, UNLIMITED),
                    path: Clean::new(s.path, UNLIMITED),
                    querystring: Clean::new(s.query, MAX_FIELD_BYTES),
                    code: s.status,
                    errno: s.errno,
                    t: millis(s.duration),
                    agent: s.user_agent.map(|a| Clean::new(a, MAX_FIELD_BYTES)),
                    remote: s.remote.map(|r| Clean::new(r, UNLIMITED)),
                    rid: s.request_id,
                };
                self.push_json(out, now, SUMMARY_TARGET, Level::Info, fields);
            }
        }
        out.push(b'\n');
    }
}

/// `GET /v1/…/records?_limit=2 200 errno=- 1.234ms ua="Kinto.js/17" remote=127.0.0.1
/// rid=5f3a09c100000001`
fn push_summary_text(out: &mut Vec<u8>, s: &Summary<'_>) {
    let _ = write!(
        out,
        "{} {}",
        Clean::new(s.method, UNLIMITED),
        Clean::new(s.path, UNLIMITED)
    );
    if !s.query.is_empty() {
        let _ = write!(out, "?{}", Clean::new(s.query, MAX_FIELD_BYTES));
    }
    let _ = write!(out, " {} errno=", s.status);
    let _ = match s.errno {
        Some(errno) => write!(out, "{errno}"),
        None => write!(out, "-"),
    };
    let micros = s.duration.as_micros();
    let _ = write!(out, " {}.{:03}ms ua=", micros / 1000, micros % 1000);
    let _ = match s.user_agent {
        // Quoted because user agents contain spaces; quotes inside are escaped so the field
        // still ends where it seems to.
        Some(agent) => write!(out, "\"{}\"", Clean::quoted(agent, MAX_FIELD_BYTES)),
        None => write!(out, "-"),
    };
    let _ = match s.remote {
        Some(remote) => write!(out, " remote={}", Clean::new(remote, UNLIMITED)),
        None => write!(out, " remote=-"),
    };
    if let Some(rid) = s.request_id {
        let _ = write!(out, " rid={rid}");
    }
}
