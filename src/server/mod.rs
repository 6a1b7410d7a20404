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
//!   is out: one request in service per connection). A request that finds
//!   no free worker within `queue_timeout_milliseconds` is answered 503
//!   with `Retry-After` by the shedder thread instead of waiting behind a
//!   slow upstream.
//!
//! A worker never reads from a client. It writes the answer itself, a large
//! one for at most `WORKER_WRITES_LARGE_FOR`: what a client that reads
//! slowly has not taken by then is finished by a thread of its own, so such
//! a client holds no worker. Nobody waits for a worker's answer: a request
//! costs its connection's thread one wake-up (its bytes arriving), not two.
//! A panic in one request becomes a 500 for that request only, and shutdown
//! drains what is in flight.

use crate::app::App;
use crate::http::{Request, Response};
use crate::logging;
use crate::startup::StartupError;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the listener serves (the Kinto protocol implements it): the listener reads
/// requests and writes answers, the service decides what they are.
pub(crate) trait Service: Send + Sync + 'static {
    /// Whether answering `req` may call the Token Server or a Sync node: such a request
    /// is handed to a worker; any other is answered on its connection's thread, at once
    /// however busy the workers are.
    fn needs_upstream(&self, req: &Request<'_>) -> bool;
    /// The answer to `req`.
    fn handle(&self, req: &Request<'_>) -> Response;
    /// The answer to a request the listener turned down without handling it; `req` is
    /// what was read of it, if anything.
    fn refuse(&self, req: Option<&Request<'_>>, why: Refusal) -> Response;
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

    /// Connections open at once, at most (`max_connections` or its default).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.server.as_ref().map_or(0, |s| s.connections())
    }

    /// Stop taking connections, finish the requests in flight (their
    /// answers close the connection), join the workers.
    pub fn shutdown(mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Closes the listener; idle keep-alive connections end at their
        // next wake-up.
        drop(self.server.take());
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared.pool.stop();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// What connection threads and workers share.
struct Shared {
    app: Arc<App>,
    pool: Pool,
    queue_timeout: Duration,
    stopping: AtomicBool,
    /// Requests read and not yet answered.
    in_flight: Arc<AtomicUsize>,
    shed: Throttle,
}

/// Bind and start `workers` threads serving `app`.
pub(crate) fn start(app: Arc<App>) -> Result<Running, StartupError> {
    let config = &app.config;
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| default_max_connections(open_files_limit(), config.workers));
    let limits = listener::Limits {
        max_connections,
        head_timeout: Duration::from_secs(config.request_head_timeout_seconds),
        body_timeout: Duration::from_secs(config.request_body_timeout_seconds),
        idle_timeout: Duration::from_secs(config.keepalive_timeout_seconds),
        send_timeout: Duration::from_secs(config.response_timeout_seconds),
        busy_response: busy_response(&app.refuse(None, Refusal::TooManyConnections)),
    };
    let shared = Arc::new(Shared {
        app: Arc::clone(&app),
        pool: Pool::default(),
        queue_timeout: Duration::from_millis(config.queue_timeout_milliseconds),
        stopping: AtomicBool::new(false),
        in_flight: Arc::default(),
        shed: Throttle::default(),
    });
    let listen = config.listen.clone();
    let cannot =
        |e: &dyn fmt::Display| StartupError::new(format!("cannot listen on {listen}: {e}"));
    let listener = listen
        .bind(config.unix_socket_mode)
        .map_err(|e| cannot(&e))?;
    let handler: Arc<dyn listener::Handler> = shared.clone();
    let server = listener::Server::from_listener_with(listener, limits, Some(handler))
        .map_err(|e| cannot(&e))?;
    let (addr, port) = match server.server_addr() {
        listener::ListenAddr::IP(a) => (a.to_string(), Some(a.port())),
        listener::ListenAddr::Unix(_) => (listen.to_string(), None),
    };
    let mut workers = Vec::with_capacity(config.workers);
    for i in 0..config.workers {
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
        app,
    })
}

/// The default `max_connections`: each connection holds one descriptor,
/// and 64 plus 2 per worker are kept for upstream connections, the
/// listener, logs and statsd. At least 16; at most 1024, since each
/// connection also holds a thread.
pub(crate) fn default_max_connections(open_files: u64, workers: usize) -> usize {
    let reserve = 64 + 2 * workers as u64;
    open_files.saturating_sub(reserve).clamp(16, 1024) as usize
}

/// The soft open-files limit (1024 if it can't be read).
fn open_files_limit() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(soft, _)| soft)
}

/// The open-files limits of the process, for the start-up log.
pub struct OpenFiles {
    /// Soft limit before [`raise_open_files_limit`].
    pub before: u64,
    /// Soft limit now.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
    /// Why raising failed, if it did.
    pub error: Option<String>,
}

impl fmt::Display for OpenFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |n: u64| {
            if n == rlimit::INFINITY {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        write!(f, "open files limit {}", show(self.soft))?;
        if self.before != self.soft {
            write!(f, " (raised from {})", show(self.before))?;
        }
        write!(f, ", hard limit {}", show(self.hard))?;
        if let Some(e) = &self.error {
            write!(f, "; cannot raise the soft limit: {e}")?;
        }
        Ok(())
    }
}

/// Raise the soft open-files limit to the hard one: every connection costs
/// a descriptor, and services often start with a soft limit of 1024 and a
/// much higher hard one.
pub fn raise_open_files_limit() -> OpenFiles {
    let nofile = rlimit::Resource::NOFILE;
    let (before, hard) = match nofile.get() {
        Ok(limits) => limits,
        Err(e) => {
            return OpenFiles {
                before: 0,
                soft: 0,
                hard: 0,
                error: Some(e.to_string()),
            };
        }
    };
    // An unlimited hard limit is not a valid soft limit for descriptors.
    let target = if hard == rlimit::INFINITY {
        1 << 20
    } else {
        hard
    };
    let mut files = OpenFiles {
        before,
        soft: before,
        hard,
        error: None,
    };
    if before < target {
        match nofile.set(target, hard) {
            Ok(()) => files.soft = target,
            Err(e) => files.error = Some(e.to_string()),
        }
    }
    files
}

/// The complete HTTP answer written to a connection past `max_connections`.
fn busy_response(r: &Response) -> Vec<u8> {
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

impl listener::Handler for Shared {
    fn handle(&self, rq: listener::Request) {
        handle(self, rq);
    }

    /// The document of a request the listener refused, and its summary line.
    fn refused(&self, r: &listener::Refused<'_>) -> listener::Response<io::Cursor<Vec<u8>>> {
        let resp = self
            .app
            .refuse(None, Refusal::Malformed(r.status.0, r.reason));
        let target = r.target.unwrap_or("-");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let remote = r.remote_addr.map(|a| a.ip().to_string());
        logging::summary(&logging::Summary {
            method: r.method.unwrap_or("-"),
            path,
            query: query.split('#').next().unwrap_or(""),
            status: resp.status,
            errno: resp.errno,
            duration: r.elapsed,
            user_agent: None,
            remote: remote.as_deref(),
        });
        into_tiny_reader(resp)
    }
}

/// Counts a request being served (for the shutdown drain) until dropped:
/// it goes with the request from its connection's thread to a worker, and
/// to the thread that finishes a slow reader's answer.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(n: &Arc<AtomicUsize>) -> InFlight {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(n))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One request, on its connection's thread.
fn handle(shared: &Shared, mut rq: listener::Request) {
    let started = Instant::now();
    let in_flight = InFlight::enter(&shared.in_flight);
    let app = &*shared.app;
    let resp = match read_body(&mut rq, app.config.max_body_bytes) {
        Err(e) => body_error(app, &rq, e),
        Ok(body) if with_view(&rq, &[], |req| app.needs_upstream(req)) => {
            // A worker answers it. The body has been read whole: the
            // connection's input goes back to this thread, which reads the
            // next request (the listener starts serving it once this
            // answer is out).
            rq.release_body();
            shared.pool.push(Job {
                rq,
                body,
                started,
                in_flight,
            });
            return;
        }
        Ok(body) => answer(app, &rq, &body),
    };
    finish(shared, rq, resp, started);
}

/// Whatever a handler needs to see of a request, borrowed from it.
fn with_view<T>(rq: &listener::Request, body: &[u8], f: impl FnOnce(&Request<'_>) -> T) -> T {
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
    })
}

/// Why a body could not be taken.
enum BodyError {
    /// Over `max_body_bytes`.
    TooLarge,
    /// Not received in time, malformed (chunked) or cut short.
    Unreadable(io::Error),
}

/// Read the body, at most `max` bytes. What is left unread makes the
/// listener close the connection after the answer.
fn read_body(rq: &mut listener::Request, max: usize) -> Result<Vec<u8>, BodyError> {
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

fn body_error(app: &App, rq: &listener::Request, e: BodyError) -> Response {
    let why = match e {
        BodyError::TooLarge => Refusal::BodyTooLarge,
        BodyError::Unreadable(e) if e.kind() == io::ErrorKind::TimedOut => Refusal::BodyTimeout,
        BodyError::Unreadable(_) => Refusal::BodyUnreadable,
    };
    with_view(rq, &[], |req| app.refuse(Some(req), why))
}

/// 503 + Retry-After for a request no worker could take in time.
fn shed(app: &App, rq: &listener::Request) -> Response {
    with_view(rq, &[], |req| app.refuse(Some(req), Refusal::Overloaded))
}

/// Run the application on a request.
fn answer(app: &App, rq: &listener::Request, body: &[u8]) -> Response {
    with_view(rq, body, |req| contain(app, || app.handle(req)))
}

/// Log the request and write its answer.
fn finish(shared: &Shared, rq: listener::Request, resp: Response, started: Instant) {
    let rq = log_answer(shared, rq, &resp, started);
    let _ = rq.respond(into_tiny(resp));
}

/// Log the request and its answer (before it is written).
fn log_answer(
    shared: &Shared,
    mut rq: listener::Request,
    resp: &Response,
    started: Instant,
) -> listener::Request {
    if shared.stopping.load(Ordering::SeqCst) {
        rq.set_close();
    }
    let peer = rq.remote_addr().map(|a| a.ip());
    with_view(&rq, &[], |req| {
        let remote =
            crate::forwarded::client(&shared.app.config.trusted_proxies, peer, req.headers)
                .map(|ip| ip.to_string());
        logging::summary(&logging::Summary {
            method: req.method,
            path: req.path,
            query: req.query,
            status: resp.status,
            errno: resp.errno,
            duration: started.elapsed(),
            user_agent: req.header("user-agent"),
            remote: remote.as_deref(),
        })
    });
    rq
}

/// Run a handler; a panic becomes a 500 for this request only (the thread, the cache
/// and the other requests carry on).
fn contain(app: &App, handler: impl FnOnce() -> Response) -> Response {
    match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(r) => r,
        Err(_) => {
            log::error!("a request handler panicked; answered 500");
            app.refuse(None, Refusal::Panicked)
        }
    }
}

/// The listener's headers of a response (it never writes one with control
/// characters: CR, LF…).
fn tiny_headers(r: &Response) -> Vec<listener::Header> {
    r.headers
        .iter()
        .filter_map(|(n, v)| listener::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect()
}

/// A response as the listener writes it: head and body in one `writev`.
fn into_tiny(r: Response) -> listener::Response<io::Empty> {
    let headers = tiny_headers(&r);
    // The body's buffer is kept for another request once written.
    let body = crate::buffers::Recycled(r.body);
    listener::Response::from_bytes(listener::StatusCode(r.status), headers, body)
}

/// A refused request's document, in the form the listener's handler gives it.
fn into_tiny_reader(r: Response) -> listener::Response<io::Cursor<Vec<u8>>> {
    let headers = tiny_headers(&r);
    let len = r.body.len();
    listener::Response::new(
        listener::StatusCode(r.status),
        headers,
        io::Cursor::new(r.body),
        Some(len),
        None,
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workers' queue: requests handed over by connection threads.
#[derive(Default)]
struct Pool {
    queue: Mutex<Queue>,
    /// Idle workers wait here.
    ready: Condvar,
    /// The shedder waits here when it has been idle a while.
    wake_shedder: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers waiting for a job: one is woken per job, and none (no system
    /// call) when all are busy.
    idle_workers: usize,
    /// The shedder waits for a job without a time limit.
    shedder_asleep: bool,
}

/// One request handed to the pool, its body read.
struct Job {
    rq: listener::Request,
    body: Vec<u8>,
    started: Instant,
    in_flight: InFlight,
}

/// A worker writes every answer itself. One whose body is at most this long
/// fits, with its head, in one write into a send buffer that a client which
/// read its previous answer has drained, so the write doesn't wait for the
/// client.
const WORKER_WRITES_UP_TO: usize = 12 * 1024;

/// How long a worker may take to write a small answer. Only a client that
/// sends requests without reading the answers fills its send buffer; it is
/// disconnected rather than allowed to hold a worker.
const WORKER_SEND_LIMIT: Duration = Duration::from_secs(1);

/// How long a worker writes a larger answer (a page of records) before it
/// leaves the rest to a thread of its own. A client that reads as fast as
/// the answer is written (a local reverse proxy, a client on a fast
/// network) gets it all from the worker, whose buffers are then reused at
/// once; one that reads slowly holds a worker this long at most.
const WORKER_WRITES_LARGE_FOR: Duration = Duration::from_millis(20);

/// How long the shedder keeps checking the queue on its own after it was
/// last found empty, before it sleeps until a request is queued.
const SHEDDER_AWAKE: Duration = Duration::from_secs(3);

impl Pool {
    /// Queue a request for the next free worker.
    fn push(&self, job: Job) {
        let mut queue = lock(&self.queue);
        queue.jobs.push_back(job);
        let wake_worker = queue.idle_workers > 0;
        let wake_shedder = std::mem::take(&mut queue.shedder_asleep);
        drop(queue);
        if wake_worker {
            self.ready.notify_one();
        }
        if wake_shedder {
            self.wake_shedder.notify_one();
        }
    }

    /// The next job, or None once stopped and empty.
    fn next(&self) -> Option<Job> {
        let mut queue = lock(&self.queue);
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            queue.idle_workers += 1;
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            queue.idle_workers -= 1;
        }
    }

    fn stop(&self) {
        let _queue = lock(&self.queue);
        self.stop.store(true, Ordering::SeqCst);
        self.ready.notify_all();
        self.wake_shedder.notify_all();
    }
}

fn worker(shared: &Shared) {
    while let Some(Job {
        mut rq,
        body,
        started,
        in_flight,
    }) = shared.pool.next()
    {
        let resp = answer(&shared.app, &rq, &body);
        drop(body);
        if resp.body.len() <= WORKER_WRITES_UP_TO {
            rq.set_send_limit(WORKER_SEND_LIMIT);
            finish(shared, rq, resp, started);
            continue;
        }
        rq.set_send_limit(WORKER_WRITES_LARGE_FOR);
        let rq = log_answer(shared, rq, &resp, started);
        if let Err(unsent) = rq.respond_or_hand_over(into_tiny(resp)) {
            finish_elsewhere(unsent, in_flight);
        }
    }
}

/// The rest of an answer a client is taking slowly, on a thread of its own
/// (at most one per connection: the connection's next request waits for
/// it), so that the client holds no worker.
fn finish_elsewhere(unsent: listener::Unsent, in_flight: InFlight) {
    // Shared with the thread only so that it can be taken back if no
    // thread can be had.
    let unsent = Arc::new(Mutex::new(Some(unsent)));
    let theirs = Arc::clone(&unsent);
    let spawned = std::thread::Builder::new()
        .name("answer".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Some(unsent) = lock(&theirs).take() {
                let _ = unsent.finish();
            }
            drop(in_flight);
        });
    if spawned.is_err() {
        // No thread to be had: finish it here.
        if let Some(unsent) = lock(&unsent).take() {
            let _ = unsent.finish();
        }
    }
}

/// Answers 503 + `Retry-After` to the requests no worker has taken within
/// `queue_timeout` (all of them are busy with slow upstream calls), so that
/// they don't wait behind those.
fn shedder(shared: &Shared) {
    let pool = &shared.pool;
    let tick =
        (shared.queue_timeout / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut last_busy = Instant::now();
    let mut queue = lock(&pool.queue);
    while !pool.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let mut late = Vec::new();
        let mut i = 0;
        let mut next_deadline: Option<Instant> = None;
        while i < queue.jobs.len() {
            let deadline = queue.jobs[i].started + shared.queue_timeout;
            if deadline <= now {
                late.extend(queue.jobs.remove(i));
            } else {
                next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
                i += 1;
            }
        }
        if !late.is_empty() {
            drop(queue);
            for job in late {
                shed_job(shared, job);
            }
            queue = lock(&pool.queue);
            continue;
        }
        if !queue.jobs.is_empty() {
            last_busy = now;
        } else if now.duration_since(last_busy) >= SHEDDER_AWAKE {
            queue.shedder_asleep = true;
            queue = pool
                .wake_shedder
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
            last_busy = Instant::now();
            continue;
        }
        let wait = next_deadline.map_or(tick, |d| d.saturating_duration_since(now));
        queue = pool
            .wake_shedder
            .wait_timeout(queue, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The 503 of a request no worker took in time.
fn shed_job(shared: &Shared, job: Job) {
    shared.shed.event(|n| {
        log::warn!(
            "{n} request(s) answered 503: no free worker within {} ms \
             (upstream calls are slow or workers too few)",
            shared.queue_timeout.as_millis()
        )
    });
    let Job {
        mut rq, started, ..
    } = job;
    let resp = shed(&shared.app, &rq);
    rq.set_send_limit(WORKER_SEND_LIMIT);
    finish(shared, rq, resp, started);
}

/// At most one log line per 10 s for a repeated event, with its count.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    count: AtomicU64,
}

impl Throttle {
    fn event(&self, log: impl FnOnce(u64)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = lock(&self.last);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            log(self.count.swap(0, Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Content-Type" && v.starts_with("application/json"))
        );
        // A handler that works is passed through untouched.
        assert_eq!(contain(&app, || Response::new(204)).status, 204);
    }

    #[test]
    fn max_connections_follows_the_open_files_limit() {
        assert_eq!(default_max_connections(1024, 4), 952);
        assert_eq!(default_max_connections(20_000, 4), 1024);
        assert_eq!(default_max_connections(100, 8), 20);
        assert_eq!(default_max_connections(90, 8), 16);
        assert_eq!(default_max_connections(0, 1), 16);
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
