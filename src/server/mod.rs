//! The listener and the worker pool.
//!
//! The listener (`crates/listener`) accepts at most `max_connections` connections (closing idle or
//! slow ones to make room, else answering 503), each served by its own
//! thread under per-phase deadlines (request head, body, keep-alive idle,
//! response). That thread reads a request and its body, then:
//!
//! - answers itself what needs no upstream call (hello, `__lbheartbeat__`,
//!   `__version__`, CORS preflights, 401s, 405s, 404s, redirects, 413s), so
//!   those are answered at once however busy the workers are;
//! - hands the rest to a fixed pool of workers, the only threads that call
//!   the Token Server and the Sync node, and goes back to reading the
//!   client's next request (the listener starts serving it once this answer
//!   is out: one request in service per connection).
//!
//! The service decides which (`Service::classify`), and names the lane of a
//! request for a worker: its user and what it writes. A free worker takes the
//! oldest queued request whose lane lets it run (`schedule.rs`): its user holds
//! fewer than `max_workers_per_user` workers, and a write waits for the previous
//! write of its user and collection to be answered and one tick of the Sync
//! node's clock to pass. So a request that cannot run yet waits in the queue,
//! never on a worker. A request that no worker takes within
//! `queue_timeout_milliseconds` of being queued is answered 503 with
//! `Retry-After` by the shedder thread instead of waiting behind a slow
//! upstream or a greedy user.
//!
//! A worker never reads from a client. It writes the answer itself, a large
//! one for at most `WORKER_WRITES_LARGE_FOR`: what a client that reads
//! slowly has not taken by then is finished by a thread of its own, so such
//! a client holds no worker. Nobody waits for a worker's answer: a request
//! costs its connection's thread one wake-up (its bytes arriving), not two.
//! A panic in one request becomes a 500 for that request only, and shutdown
//! drains what is in flight.

mod adapt;
mod pool;
mod schedule;

use crate::config::{Config, TrustedProxies};
use crate::listen::Listen;
use crate::logging::{self, RequestId, RequestScope};
use crate::message::{Request, Response};
use crate::startup::{StartupError, default_max_connections, open_files_limit, task_limit};
use adapt::{BodyError, busy_response, into_tiny, read_body, with_view};
use listener::Throttle;
use pool::{Job, Pool, shedder, worker};
use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the listener serves (the Kinto protocol implements it): the listener reads
/// requests and writes answers, the service decides what they are.
pub(crate) trait Service: Send + Sync + 'static {
    /// Where `req` is answered, decided on its connection's thread before its answer is
    /// made: a request that may call the Token Server or a Sync node goes to a worker, in
    /// its lane; any other is answered on its connection's thread, at once however busy
    /// the workers are.
    fn classify(&self, req: &Request<'_>) -> Class;
    /// The answer to `req`.
    fn handle(&self, req: &Request<'_>) -> Response;
    /// The answer to a request the listener turned down without handling it; `req` is
    /// what was read of it, if anything.
    fn refuse(&self, req: Option<&Request<'_>>, why: Refusal) -> Response;
    /// The request's path as its log line shows it (the service may hide what identifies
    /// a user in it).
    fn log_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(path)
    }
}

/// Where a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// On its connection's thread: nothing upstream is needed.
    Here,
    /// By a worker, when its lane lets it run.
    Worker(Lane),
}

/// Whom a worker's job is for, so that the pool shares the workers between users and runs
/// one user's writes to a collection one at a time, spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Lane {
    /// The user: a keyed hash of the credential (collisions only make two users share a
    /// lane), or [`Lane::ANONYMOUS`] for upstream work on nobody's behalf.
    pub user: u64,
    /// What the job writes.
    pub writes: Writes,
}

impl Lane {
    /// The lane of upstream work without a user (the Token Server heartbeat, a batch
    /// without credentials of its own).
    pub(crate) const ANONYMOUS: Lane = Lane {
        user: 0,
        writes: Writes::Nothing,
    };
}

/// What a job writes upstream, as far as its lane tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Writes {
    /// Nothing: it reads.
    Nothing,
    /// One collection (a keyed hash of its lower-cased name).
    Collection(u64),
    /// Any collection of the user (a batch).
    All,
}

/// Why the listener turned a request down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The body is over `max_body_bytes` (413).
    BodyTooLarge,
    /// The body did not arrive within `request_body_timeout_seconds` (408).
    BodyTimeout,
    /// The body's chunked framing is broken, or the connection ended before its end (400).
    BodyUnreadable,
    /// No worker was free within `queue_timeout_milliseconds` (503).
    Overloaded,
    /// `max_connections` are open and serving: a new connection is answered this and closed
    /// before anything is read from it (503).
    TooManyConnections,
    /// The handler panicked (500); the other requests carry on.
    Panicked,
    /// The request's head or framing is invalid, or it did not arrive in time: the status
    /// (400, 408, 417, 431 or 505) and what was wrong. The connection is closed after it.
    Malformed(u16, &'static str),
}

/// What the server itself needs to know: where to listen, its threads, the limits of a
/// connection and of the queue, and whose forwarding headers the request log believes.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// `host:port` or a unix socket.
    pub listen: Listen,
    /// Permissions of a unix socket.
    pub unix_socket_mode: Option<u32>,
    /// Worker threads (the only ones that call upstream).
    pub workers: usize,
    /// Connections open at once; `None`: derived from the open-files limit.
    pub max_connections: Option<usize>,
    /// How long a request head may take to arrive.
    pub head_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// How long an answer may take to be written, or the next
    /// `min_send_rate × send_timeout` bytes of a large one.
    pub send_timeout: Duration,
    /// The rate at which a client taking a large answer may go on.
    pub min_send_rate: u64,
    /// Bytes held by answers handed over for slow clients, all together.
    pub max_unsent_bytes: usize,
    /// How long a request may wait for a worker before it is answered 503.
    pub queue_timeout: Duration,
    /// Largest request body read.
    pub max_body_bytes: usize,
    /// Workers one user's requests may hold at once (at least 1).
    pub max_workers_per_user: usize,
    /// Time between the answer to one user's write to a collection and the next write of
    /// that user to that collection (see `time_limits::WRITE_SPACING`).
    pub write_spacing: Duration,
    /// Peers whose forwarding headers name the client in the request log.
    pub trusted_proxies: TrustedProxies,
}

impl ListenerSettings {
    /// The server's part of the configuration.
    pub fn from_config(config: &Config) -> ListenerSettings {
        ListenerSettings {
            listen: config.listen.clone(),
            unix_socket_mode: config.unix_socket_mode,
            workers: config.workers,
            max_connections: config.max_connections,
            head_timeout: config.request_head_timeout,
            body_timeout: config.request_body_timeout,
            idle_timeout: config.keepalive_timeout,
            send_timeout: config.response_timeout,
            min_send_rate: config.response_min_bytes_per_second,
            max_unsent_bytes: config.max_unsent_bytes,
            queue_timeout: config.queue_timeout,
            max_body_bytes: config.max_body_bytes,
            max_workers_per_user: config.max_workers_per_user(),
            write_spacing: crate::time_limits::WRITE_SPACING,
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }
}

/// A running server. Dropping it without [`Running::shutdown`] stops
/// accepting connections but leaves the workers running until the process
/// ends.
pub struct Running {
    server: Option<listener::Server>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    addr: String,
    port: Option<u16>,
    max_connections: usize,
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

    /// Connections open at once, at most (`max_connections` or its default).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.server.as_ref().map_or(0, |s| s.connections())
    }

    /// Requests waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.shared.pool.queued()
    }

    /// Stop taking connections, finish the requests in flight (their
    /// answers close the connection), join the workers.
    pub fn shutdown(mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Closes the listener; idle keep-alive connections end at their
        // next wake-up.
        drop(self.server.take());
        self.shared.in_flight.wait_none();
        self.shared.pool.stop();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// What connection threads and workers share.
struct Shared {
    service: Arc<dyn Service>,
    pool: Pool,
    queue_timeout: Duration,
    max_body_bytes: usize,
    trusted_proxies: TrustedProxies,
    stopping: AtomicBool,
    /// Requests read and not yet answered.
    in_flight: Arc<Flights>,
    shed: Throttle,
}

/// Bind and start `settings.workers` threads serving `service`.
pub(crate) fn start(
    settings: ListenerSettings,
    service: Arc<dyn Service>,
) -> Result<Running, StartupError> {
    let max_connections = settings.max_connections.unwrap_or_else(|| {
        default_max_connections(open_files_limit(), task_limit(), settings.workers)
    });
    let limits = listener::Limits {
        max_connections,
        head_timeout: settings.head_timeout,
        body_timeout: settings.body_timeout,
        idle_timeout: settings.idle_timeout,
        send_timeout: settings.send_timeout,
        min_send_rate: settings.min_send_rate,
        max_unsent_bytes: settings.max_unsent_bytes,
        stalled_after: listener::Limits::default().stalled_after,
        busy_response: busy_response(&service.refuse(None, Refusal::TooManyConnections)),
    };
    let shared = Arc::new(Shared {
        service,
        pool: Pool::new(settings.max_workers_per_user, settings.write_spacing),
        queue_timeout: settings.queue_timeout,
        max_body_bytes: settings.max_body_bytes,
        trusted_proxies: settings.trusted_proxies,
        stopping: AtomicBool::new(false),
        in_flight: Arc::default(),
        shed: Throttle::default(),
    });
    let listen = settings.listen;
    let cannot =
        |e: &dyn fmt::Display| StartupError::new(format!("cannot listen on {listen}: {e}"));
    let listener = listen
        .bind(settings.unix_socket_mode)
        .map_err(|e| crate::startup::cannot_listen(&listen, &e))?;
    let handler: Arc<dyn listener::Handler> = shared.clone();
    let server = listener::Server::new(listener, limits, handler).map_err(|e| cannot(&e))?;
    let (addr, port) = match server.server_addr() {
        listener::ListenAddr::IP(a) => (a.to_string(), Some(a.port())),
        listener::ListenAddr::Unix(_) => (listen.to_string(), None),
    };
    let mut workers = Vec::with_capacity(settings.workers + 1);
    for i in 0..settings.workers {
        let shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || worker(&shared))
            .map_err(|e| StartupError::new(format!("cannot start worker threads: {e}")))?;
        workers.push(handle);
    }
    let shedder_shared = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name("shedder".into())
        .spawn(move || shedder(&shedder_shared))
        .map_err(|e| StartupError::new(format!("cannot start worker threads: {e}")))?;
    workers.push(handle);
    Ok(Running {
        server: Some(server),
        shared,
        workers,
        addr,
        port,
        max_connections,
    })
}

impl listener::Handler for Shared {
    fn handle(&self, rq: listener::Request) {
        handle(self, rq);
    }

    /// The document of a request the listener refused, and its summary line.
    fn refused(&self, r: &listener::Rejected<'_>) -> listener::Response {
        let mut resp = self
            .service
            .refuse(None, Refusal::Malformed(r.status.0, r.reason));
        // Its headers were not read whole: no proxy's id can be trusted.
        let id = RequestId::fresh();
        resp.header("X-Request-Id", id.to_string());
        let target = r.target.unwrap_or("-");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let remote = r.remote_addr.map(|a| a.ip().to_string());
        logging::summary(&logging::Summary {
            method: r.method.unwrap_or("-"),
            path: &self.service.log_path(path),
            query: query.split('#').next().unwrap_or(""),
            status: resp.status,
            errno: resp.errno,
            duration: r.elapsed,
            user_agent: None,
            remote: remote.as_deref(),
            request_id: Some(id),
        });
        into_tiny(resp)
    }
}

/// The requests read and not yet answered, for the shutdown drain.
#[derive(Default)]
struct Flights {
    count: AtomicUsize,
    /// Taken to say that the count fell to zero, and to wait for it.
    lock: Mutex<()>,
    none: Condvar,
}

impl Flights {
    /// Wait until no request is being served.
    fn wait_none(&self) {
        let mut guard = crate::concurrency::lock(&self.lock);
        while self.count.load(Ordering::SeqCst) > 0 {
            guard = self.none.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Counts a request being served (for the shutdown drain) until dropped:
/// it goes with the request from its connection's thread to a worker, and
/// to the thread that finishes a slow reader's answer.
struct InFlight(Arc<Flights>);

impl InFlight {
    fn enter(f: &Arc<Flights>) -> InFlight {
        f.count.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(f))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Under the lock, so that a drain checking the count cannot miss it.
            let _guard = crate::concurrency::lock(&self.0.lock);
            self.0.none.notify_all();
        }
    }
}

/// One request, on its connection's thread.
fn handle(shared: &Shared, mut rq: listener::Request) {
    let started = Instant::now();
    let in_flight = InFlight::enter(&shared.in_flight);
    let id = request_id(shared, &rq);
    let _scope = RequestScope::enter(id);
    let service = &*shared.service;
    let resp = match read_body(&mut rq, shared.max_body_bytes) {
        Err(e) => body_error(service, &rq, e),
        Ok(body) => match with_view(&rq, &[], |req| service.classify(req)) {
            Class::Worker(lane) => {
                // A worker answers it. The body has been read whole: the
                // connection's input goes back to this thread, which reads the
                // next request (the listener starts serving it once this
                // answer is out).
                rq.release_body();
                shared.pool.push(
                    lane,
                    Job {
                        rq,
                        body,
                        started,
                        in_flight,
                        id,
                    },
                );
                return;
            }
            Class::Here => answer(service, &rq, &body),
        },
    };
    finish(shared, rq, resp, started);
}

fn body_error(service: &dyn Service, rq: &listener::Request, e: BodyError) -> Response {
    let why = match e {
        BodyError::TooLarge => Refusal::BodyTooLarge,
        BodyError::Unreadable(e) if e.kind() == io::ErrorKind::TimedOut => Refusal::BodyTimeout,
        BodyError::Unreadable(_) => Refusal::BodyUnreadable,
    };
    with_view(rq, &[], |req| service.refuse(Some(req), why))
}

/// 503 + Retry-After for a request no worker could take in time.
fn shed(service: &dyn Service, rq: &listener::Request) -> Response {
    with_view(rq, &[], |req| {
        service.refuse(Some(req), Refusal::Overloaded)
    })
}

/// Run the application on a request.
fn answer(service: &dyn Service, rq: &listener::Request, body: &[u8]) -> Response {
    with_view(rq, body, |req| contain(service, || service.handle(req)))
}

/// Log the request and write its answer.
fn finish(shared: &Shared, rq: listener::Request, mut resp: Response, started: Instant) {
    let rq = log_answer(shared, rq, &mut resp, started);
    let _ = rq.respond(into_tiny(resp));
}

/// The request's id: a trusted proxy's `X-Request-Id` when it is a well-formed id (nginx's
/// `$request_id`), else a new one. Anyone else's header is ignored: a client must not be
/// able to give its request the id of another's.
fn request_id(shared: &Shared, rq: &listener::Request) -> RequestId {
    let peer = rq.remote_addr().map(|a| a.ip());
    crate::forwarded::trusted_peer(&shared.trusted_proxies, peer)
        .then(|| {
            rq.headers()
                .iter()
                .find(|h| {
                    h.field
                        .as_str()
                        .as_str()
                        .eq_ignore_ascii_case("x-request-id")
                })
                .and_then(|h| RequestId::parse(h.value.as_str().trim()))
        })
        .flatten()
        .unwrap_or_else(RequestId::fresh)
}

/// Log the request and its answer (before it is written), and give the answer the request's
/// id, the one its log line carries.
fn log_answer(
    shared: &Shared,
    mut rq: listener::Request,
    resp: &mut Response,
    started: Instant,
) -> listener::Request {
    let id = logging::current_request();
    if let Some(id) = id {
        resp.header("X-Request-Id", id.to_string());
    }
    if shared.stopping.load(Ordering::SeqCst) {
        rq.set_close();
    }
    let peer = rq.remote_addr().map(|a| a.ip());
    with_view(&rq, &[], |req| {
        let remote = crate::forwarded::client(&shared.trusted_proxies, peer, req.headers)
            .map(|ip| ip.to_string());
        logging::summary(&logging::Summary {
            method: req.method,
            path: &shared.service.log_path(req.path),
            query: req.query,
            status: resp.status,
            errno: resp.errno,
            duration: started.elapsed(),
            user_agent: req.header("user-agent"),
            remote: remote.as_deref(),
            request_id: id,
        })
    });
    rq
}

/// Run a handler; a panic becomes a 500 for this request only (the thread, the cache
/// and the other requests carry on).
fn contain(service: &dyn Service, handler: impl FnOnce() -> Response) -> Response {
    match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(r) => r,
        Err(_) => {
            log::error!("a request handler panicked; answered 500");
            service.refuse(None, Refusal::Panicked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;

    /// The state of a server whose upstreams are never called.
    fn app(retry_after_seconds: u32) -> App {
        let config = crate::config::Config {
            retry_after_seconds,
            token_server_url: "http://127.0.0.1:9/".into(),
            ..Default::default()
        };
        App::new(config).unwrap()
    }

    #[test]
    fn a_panicking_handler_is_a_500_document() {
        let app = app(30);
        let r = contain(&app, || panic!("bug"));
        assert_eq!((r.status, r.errno), (500, Some(999)));
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["code"], 500);
        assert_eq!(doc["errno"], 999);
        assert_eq!(doc["error"], "Internal Server Error");
        assert!(doc["message"].is_string());
        // No `info` link: the original's pointed at its own issue tracker, not this project's.
        assert!(doc.get("info").is_none(), "{doc}");
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Content-Type" && v.starts_with("application/json"))
        );
        // A handler that works is passed through untouched.
        assert_eq!(contain(&app, || Response::new(204)).status, 204);
    }

    #[test]
    fn the_busy_answer_is_a_complete_kinto_error() {
        let bytes = busy_response(&app(7).refuse(None, Refusal::TooManyConnections));
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nRetry-After: 7\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{head}"
        );
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (doc["code"].as_u64(), doc["errno"].as_u64()),
            (Some(503), Some(201))
        );
    }
}
