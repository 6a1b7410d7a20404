//! The listener: tiny_http accepts connections, a fixed pool of workers
//! serves requests (bounded handling concurrency), a panic in one request
//! becomes a 500 for that request only, and shutdown drains what is in
//! flight.

use crate::config::{Listen, StartupError};
use crate::kinto::error::Error;
use crate::kinto::{App, Request, Response};
use crate::logging;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// A running server. Dropping it without [`Running::shutdown`] leaves the
/// workers running until the process ends.
pub struct Running {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    addr: String,
    port: Option<u16>,
    /// Shared state, for tests that look at the cache.
    pub app: Arc<App>,
}

impl Running {
    /// `127.0.0.1:8000` or `unix:/path`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The TCP port (useful after binding port 0).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Stop taking requests, finish those in flight and queued, join the
    /// workers.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Bind and start `workers` threads serving `app`.
pub fn start(app: Arc<App>) -> Result<Running, StartupError> {
    let listen = app.config.listen.clone();
    let server = match &listen {
        Listen::Tcp(addr) => {
            let l = std::net::TcpListener::bind(addr.as_str())
                .map_err(|e| StartupError::new(format!("cannot listen on {addr}: {e}")))?;
            tiny_http::Server::from_listener(l, None)
                .map_err(|e| StartupError::new(format!("cannot listen on {addr}: {e}")))?
        }
        Listen::Unix(path) => {
            let cannot =
                |e| StartupError::new(format!("cannot listen on unix:{}: {e}", path.display()));
            let server = tiny_http::Server::http_unix(path).map_err(cannot)?;
            // Right after the bind, so no proxy needs a chmod step of its own.
            if let Some(mode) = app.config.unix_socket_mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| cannot(e.into()))?;
            }
            server
        }
    };
    let (addr, port) = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => (a.to_string(), Some(a.port())),
        tiny_http::ListenAddr::Unix(_) => (listen.to_string(), None),
    };
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(app.config.workers);
    for i in 0..app.config.workers {
        let (server, app, stop) = (Arc::clone(&server), Arc::clone(&app), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || worker(&server, &app, &stop))
            .map_err(|e| StartupError::new(format!("cannot start worker threads: {e}")))?;
        workers.push(handle);
    }
    Ok(Running {
        server,
        workers,
        stop,
        addr,
        port,
        app,
    })
}

fn worker(server: &tiny_http::Server, app: &App, stop: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(rq) => serve(app, rq),
            Err(_) if stop.load(Ordering::SeqCst) => return,
            Err(e) => log::warn!("listener: {e}"),
        }
    }
}

fn serve(app: &App, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let max = app.config.max_body_bytes;
    let mut body = Vec::new();
    // The body is read before routing, bounded by `max_body_bytes`. What is
    // left unread of an oversized one is drained (a little) or the
    // connection given up by the listener (vendor/tiny_http/PATCHES.md).
    let too_large = match rq.body_length() {
        Some(n) if n > max => true,
        // A read error (client gone) leaves a truncated body, which then
        // fails validation like any bad body would.
        _ => {
            rq.as_reader()
                .take(max as u64 + 1)
                .read_to_end(&mut body)
                .is_ok()
                && body.len() > max
        }
    };
    let method = rq.method().as_str().to_ascii_uppercase();
    let url = rq.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let query = query.split('#').next().unwrap_or("");
    let headers: Vec<(&str, &str)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str(), h.value.as_str()))
        .collect();
    let req = Request {
        method: &method,
        path,
        query,
        headers: &headers,
        body: &body,
    };
    let resp = if too_large {
        let mut r = app.error(Error::TooLarge(max));
        crate::kinto::cors::decorate(&app.config, &req, None, &mut r);
        r
    } else {
        contain(app.config.retry_after_seconds, || app.handle(&req))
    };
    let peer = rq.remote_addr().map(|a| a.ip());
    let remote = crate::forwarded::client(&app.config.trusted_proxies, peer, &headers)
        .map(|ip| ip.to_string());
    logging::summary(&logging::Summary {
        method: &method,
        path,
        query,
        status: resp.status,
        errno: resp.errno,
        duration: started.elapsed(),
        user_agent: req.header("user-agent"),
        remote: remote.as_deref(),
    });
    drop(headers);
    let _ = rq.respond(into_tiny(resp));
}

/// Run a handler; a panic becomes a 500/999 document for this request only
/// (the worker thread, the cache and the other requests carry on).
fn contain(retry_after_seconds: u32, handler: impl FnOnce() -> Response) -> Response {
    match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(r) => r,
        Err(_) => {
            log::error!("a request handler panicked; answered 500");
            Error::Internal.parts().into_response(retry_after_seconds)
        }
    }
}

fn into_tiny(r: Response) -> tiny_http::Response<Cursor<Vec<u8>>> {
    let len = r.body.len();
    let headers = r
        .headers
        .iter()
        .filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect();
    tiny_http::Response::new(
        tiny_http::StatusCode(r.status),
        headers,
        Cursor::new(r.body),
        Some(len),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_is_a_500_document() {
        let r = contain(30, || panic!("bug"));
        assert_eq!((r.status, r.errno), (500, Some(999)));
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["code"], 500);
        assert_eq!(doc["errno"], 999);
        assert_eq!(doc["error"], "Internal Server Error");
        assert!(doc["message"].is_string());
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Content-Type" && v.starts_with("application/json"))
        );
        // A handler that works is passed through untouched.
        assert_eq!(contain(30, || Response::new(204)).status, 204);
    }
}
