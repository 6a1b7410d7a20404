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
//! - a response must be taken by the client within `send_timeout`; a large
//!   one written under the listener's own send limit may take longer, by
//!   `1 / min_send_rate` seconds for each byte the client has taken: a
//!   client that keeps taking it at that rate or faster gets all of it,
//!   however long that takes, and one that stalls is cut once its credit is
//!   spent. What the client has taken is only seen as the kernel takes more
//!   of the answer, in lumps as its buffers drain, so the rule counts bytes
//!   since the answer started rather than asking for a steady pace.
//!
//! The socket's own timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`) is set once at
//! accept to the shortest of those limits, and only lowered when less than
//! that is left before a deadline (or a phase has a shorter limit), so a
//! request that arrives in one piece costs no extra system call. A read
//! that times out before its deadline is simply tried again. A deadline is
//! kept to within 50 ms.

use std::convert::TryFrom;
use std::io::{self, ErrorKind, Read, Write};
use std::net::IpAddr;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::unsent::Budget;

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
    /// Writing one response (see `min_send_rate`).
    pub send_timeout: Duration,
    /// The rate at which a client taking an answer under the listener's send
    /// limit may go on past `send_timeout`: each byte it has taken gives it
    /// `1 / min_send_rate` seconds more. 0: every answer within
    /// `send_timeout`, whatever its size.
    pub min_send_rate: u64,
    /// Bytes of answers handed over to finish for clients that take them
    /// slowly ([`crate::Unsent`]), all together. Past it, the answers whose
    /// clients are stalled (see `stalled_after`) are dropped (their
    /// connections closed), longest stalled first, to make room; if that is
    /// not enough, the new answer is dropped instead.
    pub max_unsent_bytes: usize,
    /// How long a client taking an answer must have taken nothing to be
    /// stalled: its answer may then be dropped to make room under
    /// `max_unsent_bytes`, its connection evicted past `max_connections`.
    /// 2 s by default.
    pub stalled_after: Duration,
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
            min_send_rate: 8 * 1024,
            max_unsent_bytes: 32 * 1024 * 1024,
            stalled_after: STALLED,
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

/// The longest a write waits in the kernel before it returns what went out
/// (nanoseconds): how often a slow client's progress is seen.
const PROGRESS_TICK: u64 = 1_000_000_000;

/// A client taking an answer that has taken nothing for this long is
/// stalled: its connection may be evicted, its answer dropped to make room
/// ([`Limits::stalled_after`]'s default).
pub(crate) const STALLED: Duration = Duration::from_secs(2);

/// What the sockets of one server share.
pub(crate) struct Shared {
    /// Connections open.
    pub(crate) live: AtomicUsize,
    /// The server is stopping: idle connections end.
    pub(crate) stopping: AtomicBool,
    /// Bytes held by answers handed over to slow clients.
    pub(crate) budget: Budget,
}

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
    /// The peer's address (None for a unix socket).
    remote: Option<IpAddr>,
    epoch: Instant,
    /// The socket timeouts set at accept: the shortest phase limit, and for
    /// writes at most [`PROGRESS_TICK`].
    base_read: u64,
    base_write: u64,
    head: u64,
    body: u64,
    idle: u64,
    send: u64,
    /// [`Limits::stalled_after`].
    stalled_after: Duration,
    /// Bytes a second a client taking an answer earns more time with (0:
    /// none).
    rate: u64,
    read: Timer,
    write: Timer,
    /// An answer is being written.
    sending: AtomicBool,
    /// The answer's deadline moves on as its client takes it.
    extends: AtomicBool,
    /// Bytes of the answer written, and when it started.
    sent: AtomicU64,
    send_started: AtomicU64,
    /// When a write last moved bytes (or the answer started).
    progress: AtomicU64,
    /// Between two requests: no byte of the next one has arrived yet.
    waiting: AtomicBool,
    /// A request is being answered (by another thread while this one may
    /// already be waiting for the next): the idle limit starts after it.
    answering: AtomicBool,
    /// The connection ends after the current response.
    close: AtomicBool,
    /// `OPEN`, `SERVING` or `EVICTED`: see [`Socket::evict`].
    state: AtomicU8,
    shared: Arc<Shared>,
}

impl Socket {
    /// Wraps an accepted connection (counting it in `live`) and sets its
    /// socket options. The first request's head deadline starts now.
    pub(crate) fn new(
        conn: Connection,
        remote: Option<IpAddr>,
        limits: &Limits,
        shared: Arc<Shared>,
    ) -> Socket {
        shared.live.fetch_add(1, Relaxed);
        let (head, body, idle, send) = (
            nanos(limits.head_timeout),
            nanos(limits.body_timeout),
            nanos(limits.idle_timeout),
            nanos(limits.send_timeout),
        );
        let base_read = head.min(body).min(idle).min(send).max(1_000_000);
        let base_write = base_read.min(PROGRESS_TICK);
        conn.set_timeouts(
            Duration::from_nanos(base_read),
            Duration::from_nanos(base_write),
        );
        let epoch = Instant::now();
        // Unit tests set times in the past (`took_last`): give them room.
        #[cfg(test)]
        let epoch = epoch.checked_sub(Duration::from_secs(60)).unwrap_or(epoch);
        Socket {
            conn,
            remote,
            epoch,
            base_read,
            base_write,
            head,
            body,
            idle,
            send,
            stalled_after: limits.stalled_after,
            rate: limits.min_send_rate,
            read: Timer::new(nanos(epoch.elapsed()).saturating_add(head), base_read),
            write: Timer::new(nanos(epoch.elapsed()).saturating_add(send), base_write),
            sending: AtomicBool::new(false),
            extends: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            send_started: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            answering: AtomicBool::new(false),
            close: AtomicBool::new(false),
            state: AtomicU8::new(OPEN),
            shared,
        }
    }

    /// The peer's address (None for a unix socket).
    pub(crate) fn remote(&self) -> Option<IpAddr> {
        self.remote
    }

    /// The budget of answers handed over, shared by the server's sockets.
    pub(crate) fn budget(&self) -> &Budget {
        &self.shared.budget
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
        let base = if read {
            self.base_read
        } else {
            self.base_write
        };
        let want = base.min(limit);
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
    /// than the usual send limit; under the usual one, its deadline moves on
    /// as its client takes it (see the module's documentation).
    pub(crate) fn start_send(&self, limit: Option<Duration>) {
        let _ = self.state.compare_exchange(SERVING, OPEN, Relaxed, Relaxed);
        let send = limit.map_or(self.send, |l| nanos(l).min(self.send));
        let now = self.now();
        self.sent.store(0, Relaxed);
        self.send_started.store(now, Relaxed);
        self.extends
            .store(send == self.send && self.rate > 0, Relaxed);
        self.progress.store(now, Relaxed);
        self.sending.store(true, Relaxed);
        self.start(&self.write, send, false);
        let deadline = self.write.deadline.load(Relaxed);
        self.send_started
            .store(deadline.saturating_sub(send), Relaxed);
    }

    /// How long the client taking an answer has taken nothing; zero when no
    /// answer is being written.
    pub(crate) fn stalled_for(&self) -> Duration {
        if !self.sending.load(Relaxed) {
            return Duration::ZERO;
        }
        let since = self.now().saturating_sub(self.progress.load(Relaxed));
        Duration::from_nanos(since)
    }

    /// A response has been written. The connection's thread may already be
    /// waiting for the next request (its previous one was answered by
    /// another thread): the keep-alive idle limit counts from now, not from
    /// when it started waiting. (Should the next request's first byte
    /// arrive at this very moment, its head gets the idle limit instead of
    /// the head limit, once.)
    pub(crate) fn answered(&self) {
        self.sending.store(false, Relaxed);
        if self.waiting.load(Relaxed) {
            self.read
                .deadline
                .store(self.now().saturating_add(self.idle), SeqCst);
        }
        self.answering.store(false, SeqCst);
    }

    /// Whether the connection may be closed to make room for a new one: it
    /// only waits on its client, and makes no progress. Waiting for a head
    /// (or receiving one) or idle between requests, it may; taking an
    /// answer, only once stalled (nothing taken for `stalled_after`); never
    /// while a request on it is being served (between the end of its head
    /// and the start of its answer).
    pub(crate) fn evictable(&self) -> bool {
        self.state.load(Relaxed) == OPEN && self.stalled_for() >= self.quiet()
    }

    /// What counts as stalled for [`Socket::evictable`]: nothing taken for
    /// `stalled_after` while an answer is written; always true otherwise (a
    /// zero wait).
    fn quiet(&self) -> Duration {
        if self.sending.load(Relaxed) {
            self.stalled_after
        } else {
            Duration::ZERO
        }
    }

    /// Close the connection to make room for a new one, if it is
    /// [evictable](Socket::evictable). The connection's thread sees its
    /// socket shut down and ends.
    pub(crate) fn evict(&self) -> bool {
        let evicted = self.evictable()
            && self
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
        self.shared.stopping.load(Relaxed)
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
                if timer.set.load(Relaxed) < self.base_read {
                    self.set_timeout(timer, self.base_read, read);
                }
            } else {
                return Err(io::Error::new(ErrorKind::TimedOut, "deadline passed"));
            }
            match op(&self.conn) {
                Ok(n) if n > 0 && !read => {
                    self.took(n as u64);
                    return Ok(n);
                }
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

impl Socket {
    /// The client took `n` more bytes of the answer: that is progress, and
    /// more time (see the module's documentation).
    fn took(&self, n: u64) {
        self.progress.store(self.now(), Relaxed);
        self.count(n);
    }

    /// Counts `n` bytes of the answer as taken, for its deadline: a send
    /// limit from its start, and `1 / rate` seconds more per byte.
    pub(crate) fn count(&self, n: u64) {
        if !self.extends.load(Relaxed) {
            return;
        }
        let sent = self.sent.fetch_add(n, Relaxed) + n;
        let credit = u64::try_from(u128::from(sent) * 1_000_000_000 / u128::from(self.rate))
            .unwrap_or(u64::MAX);
        let deadline = self
            .send_started
            .load(Relaxed)
            .saturating_add(self.send)
            .saturating_add(credit);
        if self.write.deadline.fetch_max(deadline, SeqCst) < deadline
            && self.write.set.load(Relaxed) < self.base_write
        {
            // A timeout lowered as the old deadline neared goes back up.
            self.set_timeout(&self.write, self.base_write, false);
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
        self.shared.live.fetch_sub(1, Relaxed);
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
impl Socket {
    /// As if the client had last taken bytes `ago`.
    pub(crate) fn took_last(&self, ago: Duration) {
        self.progress
            .store(self.now().saturating_sub(nanos(ago)), Relaxed);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// What the sockets of a server share, with this budget.
    pub(crate) fn shared(budget: Budget) -> Arc<Shared> {
        Arc::new(Shared {
            live: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            budget,
        })
    }

    /// A socket over a loopback connection, and its client's end.
    pub(crate) fn socket(limits: &Limits, shared: &Arc<Shared>) -> (Arc<Socket>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let s = Socket::new(accepted.into(), Some(peer.ip()), limits, shared.clone());
        (Arc::new(s), client)
    }

    #[test]
    fn answers_under_a_short_send_limit_cost_no_system_call() {
        let limits = Limits {
            head_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let (s, _client) = socket(&limits, &shared(Budget::new(0, STALLED)));
        // Reads wait up to the shortest phase limit, writes up to 1 s (so
        // that a slow client's progress is seen every second).
        assert_eq!(s.read.set.load(Relaxed), 5_000_000_000);
        assert_eq!(s.write.set.load(Relaxed), 1_000_000_000);
        // Answers under a 1 s limit (a worker's) or the usual one leave it
        // there.
        for limit in [
            Some(Duration::from_secs(1)),
            None,
            Some(Duration::from_secs(1)),
        ] {
            s.start_send(limit);
            (&*s).write_all(b"answer").unwrap();
            s.answered();
            assert_eq!(s.write.set.load(Relaxed), 1_000_000_000);
        }
        // A 20 ms limit lowers it for its write; the next answer raises it.
        s.start_send(Some(Duration::from_millis(20)));
        (&*s).write_all(b"large").unwrap();
        assert!(s.write.set.load(Relaxed) <= 20_000_000);
        s.start_send(Some(Duration::from_secs(1)));
        assert_eq!(s.write.set.load(Relaxed), 1_000_000_000);
    }

    #[test]
    fn only_a_stalled_answer_or_a_waiting_connection_can_be_evicted() {
        let (s, _client) = socket(&Limits::default(), &shared(Budget::new(0, STALLED)));
        // Waiting for a head.
        assert!(s.evictable());
        // Its request served: never.
        assert!(s.start_body());
        assert!(!s.evictable());
        // Its answer taken: only once stalled.
        s.start_send(None);
        (&*s).write_all(b"part of an answer").unwrap();
        assert!(!s.evictable());
        s.took_last(STALLED);
        assert!(s.evictable());
        // Answered, idle: yes.
        s.answered();
        assert!(s.evictable());
        assert!(s.evict());
        assert!(!s.evict(), "once");
    }

    #[test]
    fn each_byte_taken_earns_time() {
        let limits = Limits {
            send_timeout: Duration::from_secs(10),
            min_send_rate: 1000,
            ..Limits::default()
        };
        let (s, _client) = socket(&limits, &shared(Budget::new(0, STALLED)));
        let deadline = || s.write.deadline.load(SeqCst);
        s.start_send(None);
        let first = deadline();
        // 500 bytes at 1,000 bytes/s: half a second more.
        (&*s).write_all(&[b'a'; 500]).unwrap();
        assert_eq!(deadline(), first + 500_000_000);
        // Bytes written before, counted when the answer goes on elsewhere.
        s.count(1500);
        assert_eq!(deadline(), first + 2_000_000_000);
        // A worker's short limit earns nothing.
        s.answered();
        s.start_send(Some(Duration::from_secs(1)));
        let short = deadline();
        (&*s).write_all(&[b'd'; 5_000]).unwrap();
        assert_eq!(deadline(), short);
    }
}
