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

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use crate::client::ClientConnection;
use crate::connection::Listener;
use crate::socket::{self, Limits, Shared, Socket};
use crate::util::TaskPool;
use crate::{Handler, Throttle};

/// How far past `max_connections` evicted connections that have not ended
/// yet may take the count: a quarter of the limit, at least 1, at most 64.
pub(crate) fn eviction_slack(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, 64)
}

/// The open connections, oldest first, with the number each address holds
/// (only the accept thread touches them). Entries of connections that ended
/// are pruned once they are a quarter of the list.
#[derive(Default)]
struct Room {
    open: VecDeque<(Option<IpAddr>, Weak<Socket>)>,
    per_address: HashMap<Option<IpAddr>, usize>,
}

impl Room {
    fn add(&mut self, socket: &Arc<Socket>) {
        let addr = socket.remote();
        *self.per_address.entry(addr).or_default() += 1;
        self.open.push_back((addr, Arc::downgrade(socket)));
    }

    /// Forget connections that ended, when they are a quarter of the list.
    fn prune(&mut self, live: usize) {
        if self.open.len() - live.min(self.open.len()) < self.open.len() / 4 + 1 {
            return;
        }
        let per_address = &mut self.per_address;
        self.open.retain(|(addr, s)| {
            let alive = s.strong_count() > 0;
            if !alive {
                if let Some(n) = per_address.get_mut(addr) {
                    *n -= 1;
                    if *n == 0 {
                        per_address.remove(addr);
                    }
                }
            }
            alive
        });
    }

    /// Evict one connection that only waits on its client and makes no
    /// progress (see `Socket::evictable`), as [`pick`] chooses. False if
    /// none can be.
    fn evict_one(&mut self, live: usize) -> bool {
        self.prune(live);
        let chosen = pick(&self.open, &self.per_address, |(_, s)| {
            s.upgrade().is_some_and(|s| s.evictable())
        });
        chosen
            .and_then(|i| self.open[i].1.upgrade())
            .is_some_and(|s| s.evict())
    }
}

/// The connection to evict among `open` (oldest first, each with its
/// address; `per_address` counts each address's connections): one that
/// `evictable` accepts, of the address that holds the most connections (one
/// client opening many loses its own first), the oldest among equals. Stops
/// at the first one of the busiest address, so evicting from a single
/// attacker's many connections costs little.
fn pick<T>(
    open: &VecDeque<(Option<IpAddr>, T)>,
    per_address: &HashMap<Option<IpAddr>, usize>,
    mut evictable: impl FnMut(&(Option<IpAddr>, T)) -> bool,
) -> Option<usize> {
    let most = per_address.values().copied().max().unwrap_or(0);
    let mut best: Option<(usize, usize)> = None;
    for (i, entry) in open.iter().enumerate() {
        let n = per_address.get(&entry.0).copied().unwrap_or(0);
        if best.is_some_and(|(b, _)| b >= n) || !evictable(entry) {
            continue;
        }
        best = Some((n, i));
        if n == most {
            break;
        }
    }
    best.map(|(_, i)| i)
}

/// Exits the process if the accept thread ends while the server exists.
struct Watch(Arc<Shared>);

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.0.stopping.load(Relaxed) {
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
    shared: Arc<Shared>,
    pool: TaskPool,
    failures: Throttle,
    refusals: Throttle,
    evictions: Throttle,
    no_thread: Throttle,
    /// The connections open, for eviction.
    room: Room,
}

/// Accept connections until the server is dropped (`shared.stopping`).
pub(crate) fn accept_loop(
    listener: Listener,
    limits: Limits,
    handler: Arc<dyn Handler>,
    shared: Arc<Shared>,
) {
    let _watch = Watch(shared.clone());
    let mut acceptor = Acceptor {
        listener,
        limits,
        handler,
        shared,
        pool: TaskPool::new(),
        failures: Throttle::default(),
        refusals: Throttle::default(),
        evictions: Throttle::default(),
        no_thread: Throttle::default(),
        room: Room::default(),
    };
    while !acceptor.shared.stopping.load(Relaxed) {
        if catch_unwind(AssertUnwindSafe(|| acceptor.run())).is_err() {
            log::error!("the accept loop panicked; it goes on");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Acceptor {
    fn run(&mut self) {
        while !self.shared.stopping.load(Relaxed) {
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
        if self.shared.stopping.load(Relaxed) {
            return;
        }
        let open = self.shared.live.load(Relaxed);
        if open >= limits.max_connections {
            // Make room by closing a connection that only waits on its
            // client and makes no progress; refuse if none can be closed (or
            // too many evicted ones have not ended yet).
            let room = open < limits.max_connections + eviction_slack(limits.max_connections)
                && self.room.evict_one(open);
            if room {
                self.evictions.event(|n| {
                    log::warn!(
                        "{n} idle or stalled connection(s) closed to make room: \
                         max_connections ({}) are open",
                        limits.max_connections
                    )
                });
            } else {
                self.refusals.event(|n| {
                    log::warn!(
                        "{n} connection(s) refused: max_connections ({}) are open, \
                         served or making progress",
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
            remote_addr.map(|a| a.ip()),
            limits,
            self.shared.clone(),
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
                self.room.add(&socket);
                self.room.prune(self.shared.live.load(Relaxed));
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

#[cfg(test)]
mod tests {
    use super::pick;
    use std::collections::{HashMap, VecDeque};
    use std::net::IpAddr;

    /// The order `pick` evicts in, given each connection's address and
    /// whether it can be evicted (oldest first).
    fn order(connections: &[(Option<IpAddr>, bool)]) -> Vec<usize> {
        let mut open: VecDeque<(Option<IpAddr>, bool)> = connections.iter().copied().collect();
        let mut index: Vec<usize> = (0..open.len()).collect();
        let mut per_address: HashMap<Option<IpAddr>, usize> = HashMap::new();
        for (addr, _) in connections {
            *per_address.entry(*addr).or_default() += 1;
        }
        let mut out = Vec::new();
        while let Some(i) = pick(&open, &per_address, |(_, e)| *e) {
            out.push(index.remove(i));
            let (addr, _) = open.remove(i).unwrap();
            *per_address.get_mut(&addr).unwrap() -= 1;
        }
        out
    }

    #[test]
    fn the_address_with_the_most_connections_loses_one_first() {
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        let c: Option<IpAddr> = Some("2001:db8::1".parse().unwrap());
        // Oldest first: b (busy), a, c, b, b (busy), a, b.
        let open = [
            (b, false),
            (a, true),
            (c, true),
            (b, true),
            (b, false),
            (a, true),
            (b, true),
        ];
        // b holds 4, a 2, c 1: b's evictable ones oldest first; then a and b
        // hold 2 each (a's oldest is older), then c and a 1 each...; never
        // one that can't be evicted.
        assert_eq!(order(&open), [3, 6, 1, 2, 5]);
        // All from one address (behind a proxy, or a unix socket): oldest first.
        let one = [(None, true), (None, false), (None, true)];
        assert_eq!(order(&one), [0, 2]);
        assert!(order(&[(a, false)]).is_empty());
    }
}
