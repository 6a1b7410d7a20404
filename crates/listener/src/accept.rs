//! The accept thread: takes connections, makes room past `max_connections`
//! by evicting one that only waits on its client, refuses the rest with the
//! busy answer, and gives each connection taken to a thread of the pool.
//!
//! It never ends while the server exists. A failed accept (out of
//! descriptors, a connection aborted before it was taken…) is logged and
//! waited out; a connection the system refuses a thread for gets the busy
//! answer; a panic (a bug) is logged and the loop starts again. Should the
//! thread end anyway, the process exits with status 70 (`EX_SOFTWARE`):
//! a process that no longer accepts must not look alive to its supervisor.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use crate::client::ClientConnection;
use crate::connection::Listener;
use crate::socket::{self, Limits, Socket};
use crate::util::TaskPool;
use crate::{Handler, Throttle};

/// How far past `max_connections` evicted connections that have not ended
/// yet may take the count: a quarter of the limit, at least 1, at most 64.
pub(crate) fn eviction_slack(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, 64)
}

/// Evict the oldest open connection that can be (see `Socket::evict`),
/// looking at each at most once. Connections that can't be evicted go to the
/// back of the list.
fn evict_one(open_sockets: &mut VecDeque<Weak<Socket>>) -> bool {
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

/// Exits the process if the accept thread ends while the server exists.
struct Watch(Arc<AtomicBool>);

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.0.load(Relaxed) {
            log::error!("the accept thread ended: exiting so that the service is restarted");
            std::process::exit(70);
        }
    }
}

/// What the accept thread works with.
struct Acceptor {
    listener: Listener,
    limits: Limits,
    handler: Arc<dyn Handler>,
    close: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    pool: TaskPool,
    failures: Throttle,
    refusals: Throttle,
    evictions: Throttle,
    no_thread: Throttle,
    /// The connections, oldest first (only this thread touches the list).
    open_sockets: VecDeque<Weak<Socket>>,
}

/// Accept connections until the server is dropped (`close`).
pub(crate) fn accept_loop(
    listener: Listener,
    limits: Limits,
    handler: Arc<dyn Handler>,
    close: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
) {
    let _watch = Watch(close.clone());
    let mut acceptor = Acceptor {
        listener,
        limits,
        handler,
        close,
        live,
        pool: TaskPool::new(),
        failures: Throttle::default(),
        refusals: Throttle::default(),
        evictions: Throttle::default(),
        no_thread: Throttle::default(),
        open_sockets: VecDeque::new(),
    };
    while !acceptor.close.load(Relaxed) {
        if catch_unwind(AssertUnwindSafe(|| acceptor.run())).is_err() {
            log::error!("the accept loop panicked; it goes on");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Acceptor {
    fn run(&mut self) {
        while !self.close.load(Relaxed) {
            self.accept_one();
        }
    }

    fn accept_one(&mut self) {
        let limits = &self.limits;
        let (conn, remote_addr) = match self.listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                self.failures
                    .event(|n| log::error!("cannot accept connections ({n} times): {e}"));
                match e.kind() {
                    ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionReset
                    | ErrorKind::Interrupted => {}
                    // Out of descriptors or memory: wait for connections to
                    // end instead of spinning.
                    _ => thread::sleep(Duration::from_millis(100)),
                }
                return;
            }
        };
        if self.close.load(Relaxed) {
            return;
        }
        let open = self.live.load(Relaxed);
        if open >= limits.max_connections {
            // Make room by closing the oldest connection that only waits on
            // its client; refuse if every one is being served (or too many
            // evicted ones have not ended yet).
            let room = open < limits.max_connections + eviction_slack(limits.max_connections)
                && evict_one(&mut self.open_sockets);
            if room {
                self.evictions.event(|n| {
                    log::warn!(
                        "{n} idle or slow connection(s) closed to make room: \
                         max_connections ({}) are open",
                        limits.max_connections
                    )
                });
            } else {
                self.refusals.event(|n| {
                    log::warn!(
                        "{n} connection(s) refused: max_connections ({}) are open and busy",
                        limits.max_connections
                    )
                });
                socket::refuse(&conn, &limits.busy_response);
                return;
            }
        }
        let remote_addr = remote_addr.or_else(|| conn.peer_addr().ok().flatten());
        let socket = Arc::new(Socket::new(
            conn,
            limits,
            self.live.clone(),
            self.close.clone(),
        ));
        let client = ClientConnection::new(socket.clone(), remote_addr, self.handler.clone());
        let handler = self.handler.clone();
        let theirs = socket.clone();
        let task = Box::new(move || {
            let mut client = client;
            client.by_ref().for_each(|rq| handler.handle(rq));
            client.wait_answers();
            let linger = client.lingers();
            drop(client);
            if linger {
                theirs.linger();
            }
        });
        match self.pool.spawn(task) {
            Ok(()) => {
                self.open_sockets.push_back(Arc::downgrade(&socket));
                if self.open_sockets.len() > 2 * limits.max_connections.min(1 << 20) + 64 {
                    self.open_sockets.retain(|s| s.strong_count() > 0);
                }
            }
            Err((task, e)) => {
                // No thread to be had (a task limit, memory): the busy
                // answer, as past max_connections.
                drop(task);
                self.no_thread.event(|n| {
                    log::error!(
                        "{n} connection(s) refused: cannot start a thread: {e} \
                         (lower max_connections or raise the task limit)"
                    )
                });
                socket.refuse(&limits.busy_response);
            }
        }
    }
}
