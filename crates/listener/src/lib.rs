//! Syncto's HTTP/1.1 listener: it accepts a bounded number of connections,
//! reads each one's requests on a thread of its own under a deadline per
//! phase, refuses what is malformed or ambiguous, and writes the answers its
//! [`Handler`] gives, from whichever thread gives them.
//!
//! It grew out of tiny_http 0.12.0 by Pierre Krieger, Corey Farwell and the
//! tiny-http contributors (<https://github.com/tiny-http/tiny-http>,
//! MIT OR Apache-2.0: see `LICENSE-MIT` and `LICENSE-APACHE`), whose request
//! types, head parsing and turn-taking of pipelined requests it keeps. What
//! it adds is what a server on a small box facing hostile clients needs:
//! descriptors, threads, memory and time each bounded per connection and in
//! all.
//!
//! # Threads
//!
//! Every thread of the Syncto process (the rows marked *Syncto* are started
//! by `src/server/`, `src/upstream/` and `src/main.rs`; keep them true when
//! those change):
//!
//! | thread | spawned by | how many, bounded by | reads the client | writes the client | calls upstream |
//! |---|---|---|---|---|---|
//! | `main` | the OS (*Syncto* `main.rs`) | 1: waits for signals, then drains | no | no | no |
//! | `accept` | [`Server::new`] | 1; never ends while the server exists (the process exits 70 if it does) | only to drain what a refused connection sent | the busy answer to a connection it can't take or gets no thread for, one non-blocking write | no |
//! | `connection` | the accept thread, through its pool (`util/task_pool.rs`) | one per open connection: at most [`Limits::max_connections`] plus a quarter of it (at most 64) evicted ones not ended yet, plus idle ones kept 5 s for reuse (4 always) | request heads and bodies, under the phase deadlines | refusals (400, 408, 417, 431, 505), `100 Continue`, and what the handler answers on it (*Syncto*: what needs no upstream call) | no (*Syncto*: only if its `classify` is right; debug builds check) |
//! | `worker-N` | *Syncto* `server::start` | `workers`; one user (an account) holds at most `max_workers_per_user` of them | no | each answer of a request that needed upstream: a small one within 1 s, a large one for 20 ms, then hands the rest over | yes, and only these; never waiting on another request's turn (a queued write waits for its turn in the queue) |
//! | `shedder` | *Syncto* `server::start` | 1 | no | 503 to a request no worker took within `queue_timeout_milliseconds` of being queued, for 10 ms, then hands the rest over | no |
//! | `answer` | [`Unsent::finish_elsewhere`] (*Syncto*: a worker after 20 ms of a large answer, the shedder after 10 ms of its 503) | at most one per connection; the bytes they hold at most [`Limits::max_unsent_bytes`] | no | the rest of a large answer its client takes slowly | no |
//! | `resolve` | *Syncto* `upstream/resolve.rs` | at most 16 | no | no | DNS lookups only |
//!
//! # A connection's life
//!
//! The accept thread takes a connection (see *Room* below) and gives it to
//! a connection thread, which reads requests from it one at a time:
//!
//! 1. **Head.** The request line and header fields, read from a 1 KiB buffer
//!    and parsed strictly (`client.rs`). What can't be read is answered with
//!    [`Handler::refused`] and the connection is closed.
//! 2. **Body framing.** `Content-Length` or `chunked`, nothing ambiguous
//!    (`request.rs`); an `Expect` other than `100-continue` is a 417.
//! 3. **Handling.** The [`Request`] goes to [`Handler::handle`] on the
//!    connection's thread. The handler reads the body, and answers there or
//!    sends the request to another thread. Once the body has been read
//!    whole, [`Request::release_body`] gives the connection's input back:
//!    the thread then reads the next request's head while the answer is
//!    prepared elsewhere, but serves that request only once this answer is
//!    out (`util/sequential.rs`), so a connection has one request in service
//!    at a time, and one closed by its answer reads nothing further.
//! 4. **Answer.** Head and body leave in one `writev`, with the body's
//!    `Content-Length` (`response.rs`). An answer not written whole ends the
//!    connection at once (`Socket::abort`); a body not read to its end makes
//!    the answer say `Connection: close` (what is left of it is never parsed
//!    as a request).
//! 5. **End.** After the last answer, a connection that may still have input
//!    on the way (a refused head, an unread body) stops writing and discards
//!    what comes for up to 2 s or 1 MiB before it closes (`Socket::linger`),
//!    so that the kernel does not reset it before the client has read the
//!    answer.
//!
//! # Deadlines
//!
//! Each phase has a deadline ([`Limits`], `socket.rs`): the request head
//! (from the accept for a connection's first request, from its first byte for
//! the next ones), the body (from the end of the head), keep-alive idle
//! between two requests (from the moment the previous answer is out, however
//! long it took to prepare), and writing one answer ([`Limits::send_timeout`],
//! or less with [`Request::set_send_limit`]; more for a large answer whose
//! client keeps taking it, see *The hand-over*). A client that drips a byte a
//! second is cut off by the head deadline, not by a per-read timeout. The
//! socket's own timeouts are set once at accept and lowered only when less
//! is left before a deadline, so a request that arrives in one piece costs
//! no system call for them.
//!
//! # Who writes an answer
//!
//! Writes to one connection never interleave: each request's writer waits
//! for the previous one's to be dropped. Five kinds of thread can write:
//!
//! - the accept thread, the busy answer ([`Limits::busy_response`]) to a
//!   connection it can't take, in one non-blocking write before closing it;
//! - the connection thread: refusals, `100 Continue`, and whatever the
//!   handler answers on it;
//! - any thread the handler sends a request to (Syncto's workers and its
//!   shedder), with [`Request::respond`] or [`Request::respond_or_hand_over`];
//! - the thread that finishes an [`Unsent`]: the rest of an answer its
//!   client did not take within the first writer's limit.
//!
//! # The hand-over
//!
//! [`Request::respond_or_hand_over`] writes within the request's send
//! limit; if the client has not taken the whole answer by then, the rest
//! comes back as an [`Unsent`] (the writer, the head and body, the bytes
//! already out) for another thread to finish ([`Unsent::finish_elsewhere`]
//! starts one). The writer of a large answer thus goes back to its work at
//! once and only a slow client's connection waits.
//!
//! What a slow client can hold is bounded (`unsent.rs`): all answers handed
//! over hold at most [`Limits::max_unsent_bytes`]. Past it, a new hand-over
//! first drops the answers whose clients have taken nothing for 2 s
//! ([`Limits::stalled_after`]; longest stalled first, their connections
//! closed); if that is not enough, the new answer is dropped instead, so
//! clients that keep taking their answers keep them. An answer handed over has the listener's send
//! limit from the hand-over, and every byte its client takes from then on
//! earns `1 / min_send_rate` seconds more ([`Limits::min_send_rate`]): a
//! client taking a 14 MB page at that rate or faster gets all of it, one
//! that stalls loses the connection once its credit is spent. The kernel's
//! buffers take some of every answer at once; what they take before the
//! hand-over earns nothing, so a client that reads nothing is cut one send
//! limit after the hand-over. A write returns at least every second with
//! what the kernel took, which is how a client's progress is seen.
//!
//! # Room
//!
//! At most [`Limits::max_connections`] connections are open. Past it, a
//! connection that only waits on its client and makes no progress is shut
//! down to make room, so clients that hold connections open can't lock
//! others out: one waiting for (or receiving) its head, or idle between
//! requests, or taking an answer but stalled (nothing taken for 2 s); never
//! one whose request is being served, nor one whose client is taking its
//! answer. Among those, one of the address that holds the most connections
//! goes first (a client that opens many loses its own), the oldest first
//! among equals (`accept.rs`: the number each address holds is kept as
//! connections come, and the search stops at the first connection of the
//! busiest address, so a flood from one address costs little per accept).
//! Evicted connections not ended yet may take the count a quarter (at most
//! 64) past the limit. When none can be evicted, the new connection is answered [`Limits::busy_response`] and closed,
//! without a thread; so is one the system refuses a thread for (a task
//! limit). The accept loop never ends while the [`Server`] exists: a failed
//! accept (out of descriptors, a connection aborted before it was taken…) is
//! logged at most once every 10 s with a count, and waited out; a panic is
//! logged and the loop goes on; and if the thread ended anyway the process
//! would exit with status 70, so that its supervisor restarts it.

#![forbid(unsafe_code)]

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;
use std::time::Duration;

use connection::Connection;
use socket::Shared;
use unsent::Budget;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ListenAddr, Listener};
pub use request::{Request, Unsent};
pub use response::Response;
pub use socket::Limits;
pub use throttle::Throttle;

mod accept;
mod client;
mod common;
mod connection;
mod request;
mod response;
mod socket;
mod throttle;
mod unsent;
mod util;

/// What the listener does with the requests it reads.
pub trait Handler: Send + Sync + 'static {
    /// A request, on its connection's thread, which serves the
    /// connection's next request only once this one has been answered
    /// (here, or by another thread the request was sent to).
    fn handle(&self, rq: Request);

    /// The answer to a request the listener refused before it could be
    /// handed over (see [`Rejected`]); the connection is closed after it.
    /// Plain text by default.
    fn refused(&self, refused: &Rejected<'_>) -> Response {
        refused.plain_response()
    }
}

/// A request the listener refused: a malformed head (400, 431, 505),
/// invalid body framing (400), a head or body not received in time (408),
/// an `Expect` other than `100-continue` (417).
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The status to answer.
    pub status: StatusCode,
    /// What was wrong, as a sentence for the client.
    pub reason: &'static str,
    /// The method, when the request line was read whole and well-formed.
    pub method: Option<&'a str>,
    /// The request target (path and query), likewise.
    pub target: Option<&'a str>,
    /// The client's address.
    pub remote_addr: Option<&'a std::net::SocketAddr>,
    /// Time since the request's first byte arrived.
    pub elapsed: Duration,
}

impl Rejected<'_> {
    /// A plain-text answer: the status and the reason.
    pub fn plain_response(&self) -> Response {
        Response::from_string(self.reason).with_status_code(self.status)
    }
}

/// A listening server. Dropping it closes the listening socket (and removes
/// a unix socket's file); connections already accepted are served to the
/// end of the request in progress, idle ones are closed.
pub struct Server {
    /// What the accept thread and the connections share: the count of open
    /// connections, the flag set when the server is dropped (the accept loop
    /// ends, idle connections close), the answers handed over.
    shared: Arc<Shared>,
    listening_addr: ListenAddr,
}

impl Server {
    /// Serves `listener` with `limits`, each request handed to `handler`
    /// on its connection's thread.
    pub fn new<L: Into<Listener>>(
        listener: L,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        let listener = listener.into();
        let listening_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            live: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            budget: Budget::new(limits.max_unsent_bytes, limits.stalled_after),
        });
        let theirs = Arc::clone(&shared);
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept::accept_loop(listener, limits, handler, theirs))?;
        Ok(Server {
            shared,
            listening_addr,
        })
    }

    /// The number of connections currently open.
    pub fn connections(&self) -> usize {
        self.shared.live.load(Relaxed)
    }

    /// Bytes held by answers handed over to finish for slow clients.
    pub fn unsent_bytes(&self) -> usize {
        self.shared.budget.held()
    }

    /// Answers dropped so far to keep [`Limits::max_unsent_bytes`] (their
    /// connections closed).
    pub fn answers_dropped(&self) -> u64 {
        self.shared.budget.dropped()
    }

    /// The address the server listens on.
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Relaxed);
        // A connection to ourselves wakes the accept thread up.
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(path) => {
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        #[cfg(unix)]
        if let ListenAddr::Unix(path) = &self.listening_addr {
            let _ = std::fs::remove_file(path);
        }
    }
}
