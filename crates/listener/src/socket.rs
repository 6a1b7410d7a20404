//! One client socket shared by the request reader and the response writer
//! (one descriptor per connection), with a deadline for each phase of a
//! request: every read or write checks the deadline of the phase it belongs
//! to, so a client dripping one byte just before each per-read timeout is
//! still cut off:
//!
//! - the request head must arrive within `head_timeout` (counted from the
//!   accept for the first request, from its first byte for the next ones);
//! - the body within `body_timeout` of the end of the head;
//! - between two requests a connection may stay idle `idle_timeout`;
//! - a response must be taken by the client within `send_timeout`.
//!
//! The socket's own timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`) is set once at
//! accept to the shortest of those limits, and only lowered when less than
//! that is left before a deadline (or a phase has a shorter limit), so a
//! request that arrives in one piece costs no extra system call. A read
//! that times out before its deadline is simply tried again. A deadline is
//! kept to within 50 ms.

use std::convert::TryFrom;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// Limits of the listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; past it an idle or slow one is closed to
    /// make room, or, if none can be, a new connection gets
    /// `busy_response` and is closed.
    pub max_connections: usize,
    /// The whole request head (request line and headers).
    pub head_timeout: Duration,
    /// The whole request body.
    pub body_timeout: Duration,
    /// A keep-alive connection between two requests.
    pub idle_timeout: Duration,
    /// Writing one response.
    pub send_timeout: Duration,
    /// The complete HTTP answer written to connections past the limit.
    pub busy_response: Vec<u8>,
}

impl Default for Limits {
    fn default() -> Limits {
        let body = "Too many connections, please retry later.";
        Limits {
            max_connections: 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            busy_response: format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=UTF-8\r\n\
                 Retry-After: 30\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        }
    }
}

const OPEN: u8 = 0;
const SERVING: u8 = 1;
const EVICTED: u8 = 2;

/// How late past its deadline a read or write may return (nanoseconds).
const SLACK: u64 = 50_000_000;

/// Nanoseconds of a duration, saturating (a `u64` of nanoseconds is 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A deadline, and what the socket's timeout is currently set to
/// (nanoseconds since the socket's `epoch`).
struct Timer {
    deadline: AtomicU64,
    set: AtomicU64,
}

impl Timer {
    fn new(deadline: u64, set: u64) -> Timer {
        Timer {
            deadline: AtomicU64::new(deadline),
            set: AtomicU64::new(set),
        }
    }
}

/// An accepted connection: counted in the live connections until dropped.
pub(crate) struct Socket {
    conn: Connection,
    epoch: Instant,
    /// The socket timeout set at accept (the shortest phase limit).
    base: u64,
    head: u64,
    body: u64,
    idle: u64,
    send: u64,
    read: Timer,
    write: Timer,
    /// Between two requests: no byte of the next one has arrived yet.
    waiting: AtomicBool,
    /// A request is being answered (by another thread while this one may
    /// already be waiting for the next): the idle limit starts after it.
    answering: AtomicBool,
    /// The connection ends after the current response.
    close: AtomicBool,
    /// `OPEN`, `SERVING` or `EVICTED`: see [`Socket::evict`].
    state: AtomicU8,
    /// The server is stopping: idle connections end.
    stopping: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl Socket {
    /// Wraps an accepted connection (counting it in `live`) and sets its
    /// socket options. The first request's head deadline starts now.
    pub(crate) fn new(
        conn: Connection,
        limits: &Limits,
        live: Arc<AtomicUsize>,
        stopping: Arc<AtomicBool>,
    ) -> Socket {
        live.fetch_add(1, Relaxed);
        let (head, body, idle, send) = (
            nanos(limits.head_timeout),
            nanos(limits.body_timeout),
            nanos(limits.idle_timeout),
            nanos(limits.send_timeout),
        );
        let base = head.min(body).min(idle).min(send).max(1_000_000);
        conn.set_timeouts(Some(Duration::from_nanos(base)));
        Socket {
            conn,
            epoch: Instant::now(),
            base,
            head,
            body,
            idle,
            send,
            read: Timer::new(head, base),
            write: Timer::new(send, base),
            waiting: AtomicBool::new(false),
            answering: AtomicBool::new(false),
            close: AtomicBool::new(false),
            state: AtomicU8::new(OPEN),
            stopping,
            live,
        }
    }

    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    fn start(&self, timer: &Timer, limit: u64, read: bool) {
        timer
            .deadline
            .store(self.now().saturating_add(limit), Relaxed);
        // A timeout lowered for an earlier deadline goes back up, but not
        // past this phase's own limit: a connection whose responses all have
        // a short send limit (Syncto's workers) keeps its timeout at that
        // limit instead of setting it twice per request.
        let want = self.base.min(limit);
        if timer.set.load(Relaxed) < want {
            self.set_timeout(timer, want, read);
        }
    }

    fn set_timeout(&self, timer: &Timer, ns: u64, read: bool) {
        let d = Some(Duration::from_nanos(ns.max(1_000_000)));
        let _ = if read {
            self.conn.set_read_timeout(d)
        } else {
            self.conn.set_write_timeout(d)
        };
        timer.set.store(ns, Relaxed);
    }

    /// Waiting for the next request on a keep-alive connection.
    pub(crate) fn start_idle(&self) {
        self.waiting.store(true, Relaxed);
        self.start(&self.read, self.idle, true);
    }

    /// The head has been read: the body follows, and the request is served
    /// (the connection can't be evicted until its response starts). False
    /// if the connection was evicted first.
    pub(crate) fn start_body(&self) -> bool {
        self.waiting.store(false, Relaxed);
        self.answering.store(true, SeqCst);
        self.start(&self.read, self.body, true);
        self.state
            .compare_exchange(OPEN, SERVING, Relaxed, Relaxed)
            .is_ok()
    }

    /// A response is about to be written, within `limit` if it is shorter
    /// than the usual send limit.
    pub(crate) fn start_send(&self, limit: Option<Duration>) {
        let _ = self.state.compare_exchange(SERVING, OPEN, Relaxed, Relaxed);
        let send = limit.map_or(self.send, |l| nanos(l).min(self.send));
        self.start(&self.write, send, false);
    }

    /// A response has been written. The connection's thread may already be
    /// waiting for the next request (its previous one was answered by
    /// another thread): the keep-alive idle limit counts from now, not from
    /// when it started waiting. (Should the next request's first byte
    /// arrive at this very moment, its head gets the idle limit instead of
    /// the head limit, once.)
    pub(crate) fn answered(&self) {
        if self.waiting.load(Relaxed) {
            self.read
                .deadline
                .store(self.now().saturating_add(self.idle), SeqCst);
        }
        self.answering.store(false, SeqCst);
    }

    /// Close the connection to make room for a new one, unless a request
    /// on it is being served (between the end of its head and the start of
    /// its response): waiting for a head, idle between requests, or taking
    /// a response, a connection only waits on its client. The connection's
    /// thread sees its socket shut down and ends.
    pub(crate) fn evict(&self) -> bool {
        let evicted = self
            .state
            .compare_exchange(OPEN, EVICTED, Relaxed, Relaxed)
            .is_ok();
        if evicted {
            let _ = self.conn.shutdown(Shutdown::Both);
        }
        evicted
    }

    /// End the connection now, in the middle of a response that could not
    /// be written whole: whoever waits on it (the connection's thread, for
    /// the next request) sees it end.
    pub(crate) fn abort(&self) {
        self.set_close();
        let _ = self.conn.shutdown(Shutdown::Both);
    }

    /// Answer a connection that got no thread with `answer`, at once and
    /// without blocking (see [`refuse`]); it closes when dropped.
    pub(crate) fn refuse(&self, answer: &[u8]) {
        refuse(&self.conn, answer);
    }

    /// End the connection after the current response.
    pub(crate) fn set_close(&self) {
        self.close.store(true, Relaxed);
    }

    /// Whether the connection ends after the current response.
    pub(crate) fn closing(&self) -> bool {
        self.close.load(Relaxed)
    }

    /// Whether the server is stopping.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// Before closing a connection on which the client may still be
    /// sending (an unread body, a refused head): stop writing, then read and
    /// discard for a moment. Closing a socket with unread input makes the
    /// kernel reset the connection, and the client may then lose the answer
    /// it was sent. Nothing read here is ever parsed.
    ///
    /// Not inlined: its 8 KiB buffer would otherwise be part of the frame
    /// of every connection thread, and stack probes touch each of its pages
    /// (8 KiB more memory per connection).
    #[inline(never)]
    pub(crate) fn linger(&self) {
        const LINGER: Duration = Duration::from_secs(2);
        const MAX: usize = 1024 * 1024;
        let _ = self.conn.shutdown(Shutdown::Write);
        self.waiting.store(false, Relaxed);
        self.start(&self.read, nanos(LINGER), true);
        let mut buf = [0u8; 8192];
        let mut total = 0;
        let mut me = self;
        while total < MAX {
            match me.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    }

    /// Run a read or write against `timer`'s deadline.
    fn timed(
        &self,
        timer: &Timer,
        read: bool,
        mut op: impl FnMut(&Connection) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            let now = self.now();
            let deadline = timer.deadline.load(SeqCst);
            if now < deadline {
                let left = deadline - now;
                // A read may end up to SLACK after its deadline: the first
                // read of a connection starts a little after the accept that
                // started its deadline, and lowering the timeout for that
                // would cost a system call per connection.
                if timer.set.load(Relaxed) > left.saturating_add(SLACK) {
                    self.set_timeout(timer, left, read);
                }
            } else if read && self.waiting.load(Relaxed) && self.answering.load(SeqCst) {
                // Waiting for the next request while the previous one is
                // still being answered: the idle limit has not started.
                if timer.set.load(Relaxed) < self.base {
                    self.set_timeout(timer, self.base, read);
                }
            } else {
                return Err(io::Error::new(ErrorKind::TimedOut, "deadline passed"));
            }
            match op(&self.conn) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if read && self.waiting.load(Relaxed) && self.stopping() {
                        return Err(e);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s: &Socket = self;
        let n = s.timed(&s.read, true, |mut c| c.read(buf))?;
        if n > 0 && s.waiting.load(Relaxed) {
            // The first byte of the next request: its head deadline starts.
            s.waiting.store(false, Relaxed);
            s.read
                .deadline
                .store(s.now().saturating_add(s.head), Relaxed);
        }
        Ok(n)
    }
}

impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s: &Socket = self;
        s.timed(&s.write, false, |mut c| c.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let s: &Socket = self;
        s.timed(&s.write, false, |mut c| c.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Relaxed);
    }
}

/// Answer a connection that can't be served without a thread: one write on
/// a fresh socket (its send buffer is empty, so it doesn't block), then
/// close (once `conn` is dropped).
pub(crate) fn refuse(conn: &Connection, answer: &[u8]) {
    let _ = conn.set_nonblocking(true);
    let mut c = conn;
    // Take what already arrived, so that closing does not reset the
    // connection before the answer is read.
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match c.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = c.write(answer);
    let _ = conn.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn socket() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let limits = Limits {
            head_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let s = Socket::new(
            accepted.into(),
            &limits,
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        (s, client)
    }

    #[test]
    fn answers_under_a_short_send_limit_keep_the_socket_timeout_where_it_is() {
        let (s, _client) = socket();
        let secs = |ns: u64| ns / 1_000_000_000;
        assert_eq!(secs(s.write.set.load(Relaxed)), 5);
        // The first answers under a 1 s limit bring the timeout to it...
        for _ in 0..2 {
            s.start_send(Some(Duration::from_secs(1)));
            (&s).write_all(b"one").unwrap();
        }
        let lowered = s.write.set.load(Relaxed);
        assert!(lowered <= 1_000_000_000, "{}", "{lowered}");
        // ...and the next ones leave it there (no system call).
        for _ in 0..3 {
            s.start_send(Some(Duration::from_secs(1)));
            (&s).write_all(b"next").unwrap();
            assert_eq!(s.write.set.load(Relaxed), lowered);
        }
        // An answer under the usual limit raises it again.
        s.start_send(None);
        assert_eq!(secs(s.write.set.load(Relaxed)), 5);
    }
}
