//! Answers handed over to finish for clients that take them slowly hold
//! their whole buffer until the last byte is out. Their bytes, all together,
//! are bounded ([`crate::Limits::max_unsent_bytes`]): a new hand-over that
//! would pass the bound drops the answers whose clients have taken nothing
//! for [`crate::Limits::stalled_after`] (2 s by default), longest stalled
//! first (closing their connections), if that makes room; otherwise the new
//! answer is dropped (its connection closed) and the answers whose clients
//! are taking them go on. A client
//! that never reads thus holds memory for a couple of seconds at most once
//! others need it, and no number of them takes memory past the bound.
//!
//! An answer counts from its hand-over until its buffer has been freed; a
//! dropped one stops counting against new hand-overs at once (its thread
//! wakes on the closed socket and frees it right after), so for that moment
//! the memory held can pass the bound by what is being dropped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::Throttle;
use crate::socket::Socket;

/// The answers handed over, and their bound.
pub(crate) struct Budget {
    max: usize,
    /// How long a client must have taken nothing to be dropped for room.
    stalled: Duration,
    held: Mutex<Vec<Held>>,
    next: AtomicU64,
    /// Answers dropped so far (new ones refused and stalled ones).
    dropped: AtomicU64,
    drops: Throttle,
}

struct Held {
    id: u64,
    bytes: usize,
    socket: Weak<Socket>,
    /// Dropped to make room; its bytes are on their way out.
    dropped: bool,
}

/// An answer counted in the budget, until dropped.
pub(crate) struct Ticket {
    socket: Arc<Socket>,
    id: u64,
}

impl Ticket {
    /// The connection of the answer.
    pub(crate) fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.socket.budget().release(self.id);
    }
}

impl Budget {
    /// A bound of `max` bytes; a client that has taken nothing for
    /// `stalled` may lose its answer to make room.
    pub(crate) fn new(max: usize, stalled: Duration) -> Budget {
        Budget {
            max,
            stalled,
            held: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            drops: Throttle::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers dropped so far to keep within the bound.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Bytes of the answers handed over and not freed yet.
    pub(crate) fn held(&self) -> usize {
        self.lock().iter().map(|h| h.bytes).sum()
    }

    /// Count an answer of `bytes` for `socket`'s client, making room as the
    /// module says; None if it is dropped instead (the caller closes the
    /// connection).
    pub(crate) fn admit(&self, socket: &Arc<Socket>, bytes: usize) -> Option<Ticket> {
        let mut held = self.lock();
        let counted: usize = held.iter().filter(|h| !h.dropped).map(|h| h.bytes).sum();
        if let Some(over) = (counted + bytes).checked_sub(self.max).filter(|&o| o > 0) {
            // The stalled ones, longest stalled first, while they make room.
            let mut stalled: Vec<(Duration, usize)> = held
                .iter()
                .enumerate()
                .filter(|(_, h)| !h.dropped)
                .filter_map(|(i, h)| Some((h.socket.upgrade()?.stalled_for(), i)))
                .filter(|&(d, _)| d >= self.stalled)
                .collect();
            stalled.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut victims = Vec::new();
            let mut freed = 0;
            for (_, i) in stalled {
                if freed >= over {
                    break;
                }
                freed += held[i].bytes;
                victims.push(i);
            }
            if freed < over {
                drop(held);
                self.dropped.fetch_add(1, Relaxed);
                self.drops.event(|n| {
                    log::warn!(
                        "{n} answer(s) dropped: max_unsent_bytes ({}) are held by \
                         clients still taking theirs",
                        self.max
                    )
                });
                return None;
            }
            self.dropped.fetch_add(victims.len() as u64, Relaxed);
            for i in victims {
                held[i].dropped = true;
                if let Some(s) = held[i].socket.upgrade() {
                    s.abort();
                }
            }
            self.drops.event(|n| {
                log::warn!(
                    "{n} stalled answer(s) dropped to make room: max_unsent_bytes ({}) \
                     are held by slow clients",
                    self.max
                )
            });
        }
        let id = self.next.fetch_add(1, Relaxed);
        held.push(Held {
            id,
            bytes,
            socket: Arc::downgrade(socket),
            dropped: false,
        });
        Some(Ticket {
            socket: Arc::clone(socket),
            id,
        })
    }

    fn release(&self, id: u64) {
        self.lock().retain(|h| h.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::socket::STALLED;
    use crate::socket::tests::{shared, socket};
    use std::io::Write;

    /// A socket of the server `shared`, whose client takes an answer as
    /// `stalled` says.
    fn answering(
        shared: &Arc<crate::socket::Shared>,
        stalled: Option<Duration>,
    ) -> (Arc<Socket>, std::net::TcpStream) {
        let (s, client) = socket(&Limits::default(), shared);
        s.start_send(None);
        (&*s).write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        if let Some(ago) = stalled {
            s.took_last(ago);
        }
        (s, client)
    }

    #[test]
    fn within_the_bound_every_answer_is_counted_until_dropped() {
        let server = shared(Budget::new(1000, STALLED));
        let budget = &server.budget;
        let (a, _ca) = answering(&server, None);
        let (b, _cb) = answering(&server, None);
        let ta = budget.admit(&a, 600).unwrap();
        let tb = budget.admit(&b, 400).unwrap();
        assert_eq!(budget.held(), 1000);
        drop(ta);
        assert_eq!(budget.held(), 400);
        drop(tb);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn past_the_bound_stalled_answers_go_first_else_the_new_one() {
        let server = shared(Budget::new(1000, STALLED));
        let budget = &server.budget;
        // Two clients taking their answers, one stalled 5 s, one 3 s.
        let (taking, _c1) = answering(&server, None);
        let (stalled_5, _c2) = answering(&server, Some(Duration::from_secs(5)));
        let (stalled_3, _c3) = answering(&server, Some(Duration::from_secs(3)));
        let _t1 = budget.admit(&taking, 400).unwrap();
        let _t2 = budget.admit(&stalled_5, 300).unwrap();
        let _t3 = budget.admit(&stalled_3, 300).unwrap();
        // 200 more: the longest stalled one makes room, and only it.
        let (new, _c4) = answering(&server, None);
        let _t4 = budget.admit(&new, 200).expect("room made");
        assert!(stalled_5.closing(), "the longest stalled one is dropped");
        assert!(!stalled_3.closing() && !taking.closing());
        // Its bytes count until freed, but no longer against new answers.
        assert_eq!(budget.held(), 1200);
        // 500 more: the other stalled one is not enough; nobody is dropped
        // but the new answer.
        let (big, _c5) = answering(&server, None);
        assert!(budget.admit(&big, 500).is_none());
        assert!(!stalled_3.closing() && !taking.closing());
        // An answer larger than the bound never fits.
        let small = shared(Budget::new(100, STALLED));
        let (s, _c6) = answering(&small, None);
        assert!(small.budget.admit(&s, 101).is_none());
    }
}
