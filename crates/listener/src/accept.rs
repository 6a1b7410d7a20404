//! The accept thread: takes connections, makes room past `max_connections`
//! by evicting one that only waits on its client, refuses the rest with the
//! busy answer, and gives each connection taken to a thread of the pool.

use std::collections::VecDeque;
use std::io::ErrorKind;
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
/// yet may take the count.
const EVICTION_SLACK: usize = 64;

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

/// Accept connections until the server is dropped (`close`).
pub(crate) fn accept_loop(
    listener: Listener,
    limits: Limits,
    handler: Arc<dyn Handler>,
    close: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
) {
    let tasks_pool = TaskPool::new();
    let failures = Throttle::default();
    let refusals = Throttle::default();
    let evictions = Throttle::default();
    // The connections, oldest first (only this thread touches the list).
    let mut open_sockets: VecDeque<Weak<Socket>> = VecDeque::new();

    while !close.load(Relaxed) {
        let (conn, remote_addr) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                failures.event(|n| log::error!("cannot accept connections ({n} times): {e}"));
                match e.kind() {
                    ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionReset
                    | ErrorKind::Interrupted => {}
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
        let socket = Arc::new(Socket::new(conn, &limits, live.clone(), close.clone()));
        open_sockets.push_back(Arc::downgrade(&socket));
        if open_sockets.len() > 2 * limits.max_connections.min(1 << 20) + 64 {
            open_sockets.retain(|s| s.strong_count() > 0);
        }
        let client = ClientConnection::new(socket.clone(), remote_addr, handler.clone());
        let handler = handler.clone();
        let mut task = Some((client, socket));
        tasks_pool.spawn(Box::new(move || {
            if let Some((mut client, socket)) = task.take() {
                client.by_ref().for_each(|rq| handler.handle(rq));
                client.wait_answers();
                let linger = client.lingers();
                drop(client);
                if linger {
                    socket.linger();
                }
            }
        }));
    }
}
