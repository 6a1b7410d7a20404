//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = listener::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = listener::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = listener::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = listener::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = listener::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = listener::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

use std::collections::VecDeque;
use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{Request, Unsent};
pub use response::{Response, ResponseBox};
pub use socket::Limits;
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod socket;
mod test;
mod util;

/// Syncto patch: what the listener does with requests instead of queueing
/// them for [`Server::recv`].
pub trait Handler: Send + Sync + 'static {
    /// A request, on the connection's own thread, which reads the
    /// connection's next request only once this has returned (respond to
    /// the request or drop it).
    fn handle(&self, rq: Request);

    /// The answer to a request the listener refused before it could be
    /// handed over (see [`Rejected`]); the connection is closed after it.
    fn refused(&self, refused: &Rejected<'_>) -> Response<std::io::Cursor<Vec<u8>>>;
}

/// Syncto patch: a request the listener refused: a malformed head (400,
/// 431, 505), invalid body framing (400), a head or body not received in
/// time (408), an `Expect` other than `100-continue` (417).
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
    /// A plain-text answer: the status and the reason (what [`Server::recv`]
    /// users get).
    pub fn plain_response(&self) -> Response<std::io::Cursor<Vec<u8>>> {
        Response::from_string(self.reason).with_status_code(self.status)
    }
}

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket. Connections
/// already accepted are served to the end of the request in progress; idle ones are
/// closed.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Request>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // Syncto patch: connections currently open.
    live: Arc<AtomicUsize>,
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
#[allow(dead_code)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener)
    }

    /// Builds a new server using the specified listener, with the default
    /// [`Limits`], whose requests are taken with [`Server::recv`].
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with(listener, Limits::default(), None)
    }

    /// Syncto patch: builds a new server on `listener` with `limits`. With a
    /// `handler`, each request is handed to it on its connection's thread;
    /// without, requests are queued for [`Server::recv`].
    ///
    /// The accept loop never ends while the server exists: a failed accept
    /// (out of descriptors, a connection aborted before it was taken…) is
    /// logged, at most once every 10 s, and waited out. Past
    /// `limits.max_connections` the oldest connection that only waits on
    /// its client is closed to make room; if none can be, the new
    /// connection is answered with `limits.busy_response` and closed,
    /// without a thread.
    pub fn from_listener_with<L: Into<Listener>>(
        listener: L,
        limits: Limits,
        handler: Option<Arc<dyn Handler>>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);

        let close = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let messages = MessagesQueue::with_capacity(8);

        let (inside_close, inside_live, inside_messages) =
            (close.clone(), live.clone(), messages.clone());
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                accept_loop(
                    listener,
                    limits,
                    handler,
                    inside_close,
                    inside_live,
                    inside_messages,
                )
            })?;

        Ok(Server {
            messages,
            close,
            listening_addr: local_addr,
            live,
        })
    }

    /// Syncto patch: the number of connections currently open.
    pub fn connections(&self) -> usize {
        self.live.load(Relaxed)
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(rq) => Ok(rq),
            None => Err(IoError::other("thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        Ok(self.messages.pop_timeout(timeout))
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        Ok(self.messages.try_pop())
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Syncto patch: how far past `max_connections` evicted connections that
/// have not ended yet may take the count.
const EVICTION_SLACK: usize = 64;

/// Syncto patch: evict the oldest open connection that can be (see
/// `Socket::evict`), looking at each at most once. Connections that can't
/// be evicted go to the back of the list.
fn evict_one(open_sockets: &mut VecDeque<Weak<socket::Socket>>) -> bool {
    for _ in 0..open_sockets.len() {
        let Some(weak) = open_sockets.pop_front() else {
            break;
        };
        if let Some(socket) = weak.upgrade() {
            open_sockets.push_back(weak);
            if socket.evict() {
                return true;
            }
        }
    }
    false
}

/// Syncto patch: accept connections until the server is dropped; see
/// [`Server::from_listener_with`].
fn accept_loop(
    listener: Listener,
    limits: Limits,
    handler: Option<Arc<dyn Handler>>,
    close: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    messages: Arc<MessagesQueue<Request>>,
) {
    // a tasks pool is used to dispatch the connections into threads
    let tasks_pool = util::TaskPool::new();
    let mut failures = socket::Throttle::new(Duration::from_secs(10));
    let mut refusals = socket::Throttle::new(Duration::from_secs(10));
    let mut evictions = socket::Throttle::new(Duration::from_secs(10));
    // The connections, oldest first (only this thread touches the list).
    let mut open_sockets: VecDeque<Weak<socket::Socket>> = VecDeque::new();

    log::debug!("Running accept thread");
    while !close.load(Relaxed) {
        let (conn, remote_addr) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                failures.event(|n| log::error!("cannot accept connections ({n} times): {e}"));
                match e.kind() {
                    IoErrorKind::ConnectionAborted
                    | IoErrorKind::ConnectionReset
                    | IoErrorKind::Interrupted => {}
                    // Out of descriptors or memory: wait for connections to
                    // end instead of spinning.
                    _ => thread::sleep(Duration::from_millis(100)),
                }
                continue;
            }
        };
        if close.load(Relaxed) {
            break;
        }
        let open = live.load(Relaxed);
        if open >= limits.max_connections {
            // Make room by closing the oldest connection that only waits on
            // its client; refuse if every one is being served (or too many
            // evicted ones have not ended yet).
            let room =
                open < limits.max_connections + EVICTION_SLACK && evict_one(&mut open_sockets);
            if room {
                evictions.event(|n| {
                    log::warn!(
                        "{n} idle or slow connection(s) closed to make room: \
                         max_connections ({}) are open",
                        limits.max_connections
                    )
                });
            } else {
                refusals.event(|n| {
                    log::warn!(
                        "{n} connection(s) refused: max_connections ({}) are open and busy",
                        limits.max_connections
                    )
                });
                socket::refuse(conn, &limits.busy_response);
                continue;
            }
        }
        let remote_addr = remote_addr.or_else(|| conn.peer_addr().ok().flatten());
        let socket = Arc::new(socket::Socket::new(
            conn,
            &limits,
            live.clone(),
            close.clone(),
        ));
        open_sockets.push_back(Arc::downgrade(&socket));
        if open_sockets.len() > 2 * limits.max_connections.min(1 << 20) + 64 {
            open_sockets.retain(|s| s.strong_count() > 0);
        }
        let client = ClientConnection::new(socket.clone(), remote_addr, handler.clone());
        let messages = messages.clone();
        let handler = handler.clone();
        let mut task = Some((client, socket));
        tasks_pool.spawn(Box::new(move || {
            if let Some((mut client, socket)) = task.take() {
                match &handler {
                    Some(handler) => client.by_ref().for_each(|rq| handler.handle(rq)),
                    None => client.by_ref().for_each(|rq| messages.push(rq)),
                }
                client.wait_answers();
                let linger = client.lingers();
                drop(client);
                if linger {
                    socket.linger();
                }
            }
        }));
    }
    log::debug!("Terminating accept thread");
}
