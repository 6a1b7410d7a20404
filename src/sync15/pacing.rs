//! One user's writes to one collection: one at a time, a clock tick apart,
//! and repeated when the storage node certainly refused them.
//!
//! A Sync storage node stamps each write with its clock in 10 ms ticks. It
//! refuses a write to a collection whose last write carries the same tick,
//! and a write that meets another write of the same user to the same
//! collection still in progress: `503`, `Retry-After`, body `0`, and nothing
//! written (syncstorage-rs calls it a conflict). That is an artefact of its
//! clock, not an outage, so a client must never see it for an ordinary
//! sequence of writes:
//!
//! - writes of one user to one collection go out one at a time from this
//!   process, each at least [`WRITE_SPACING`] after the previous answer arrived
//!   (the node's clock has then moved on by at least one tick);
//! - a conflict answer (and only that: a timeout or a dropped connection
//!   leaves the write's fate unknown) is repeated after the spacing plus a
//!   little jitter, which covers other processes writing for the same user;
//! - all of it within a budget per write; past it the conflict answer (503
//!   with `Retry-After`) goes to the client.
//!
//! The repeated request is the same request: a precondition it carries is
//! checked again by the node, so a write that another device overtook in
//! between still fails with 412.
//!
//! A [`Pacer::session`] holds the gate of one (user, collection) for several calls: the
//! read of a batch's records, then the multi-record writes made from it, each spaced and
//! repeated like a single write. Holding it keeps this process's other writes to that
//! collection from making the read stale in between (they wait, within their budget).

use super::{Error, Reply, Upstream};
use crate::concurrency::lock;
use crate::time_limits::WRITE_SPACING;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Gates kept before idle ones are swept.
const SWEEP_AT: usize = 4096;

/// The pacing of every (user, collection) this process writes to.
pub struct Pacer {
    gates: Mutex<HashMap<u64, Arc<Gate>>>,
    hasher: RandomState,
    budget: Duration,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    free: Condvar,
}

#[derive(Default)]
struct GateState {
    busy: bool,
    last_answer: Option<Instant>,
}

impl Pacer {
    /// A pacer giving each write at most `budget` (zero: no waiting and no
    /// repeat, conflicts go straight to the client).
    pub fn new(budget: Duration) -> Pacer {
        Pacer {
            gates: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
            budget,
        }
    }

    /// Run the write `send` for the user at `endpoint` (the `api_endpoint`,
    /// which names the user on its node) to `collection`.
    pub fn write(
        &self,
        endpoint: &str,
        collection: &str,
        mut send: impl FnMut() -> Result<Reply, Error>,
    ) -> Result<Reply, Error> {
        if self.budget.is_zero() {
            return send();
        }
        let deadline = Instant::now() + self.budget;
        let gate = self.gate(endpoint, collection);
        let mut attempt: u32 = 0;
        let mut refused: Option<Box<Reply>> = None;
        loop {
            if let Err(busy) = gate.enter(deadline, jitter(&self.hasher, attempt)) {
                // Out of time: the node's own refusal, if there was one, is
                // the truest answer (its Retry-After included).
                return Err(match refused {
                    Some(reply) => Error::Status(Upstream::Storage, reply),
                    None => busy,
                });
            }
            let result = send();
            gate.leave();
            match result {
                Err(Error::Status(Upstream::Storage, reply)) if is_conflict(&reply) => {
                    attempt += 1;
                    log::debug!("sync node refused a write as a conflict; repeating it");
                    refused = Some(reply);
                }
                other => return other,
            }
        }
    }

    /// Run `f` holding the gate of (`endpoint`, `collection`): no other write of this
    /// process to that collection starts until `f` returns. Inside, [`Held::write`] sends
    /// writes spaced and repeated as [`Pacer::write`] does, each within the budget; reads
    /// need no pacing. [`Error::Busy`] when the gate did not come free within the budget.
    pub fn session<T>(
        &self,
        endpoint: &str,
        collection: &str,
        f: impl FnOnce(&mut Held<'_>) -> T,
    ) -> Result<T, Error> {
        if self.budget.is_zero() {
            let mut held = Held {
                pacer: self,
                gate: None,
                last_answer: None,
            };
            return Ok(f(&mut held));
        }
        let gate = self.gate(endpoint, collection);
        let last_answer = gate.take(Instant::now() + self.budget)?;
        let mut held = Held {
            pacer: self,
            gate: Some(&gate),
            last_answer,
        };
        Ok(f(&mut held))
    }

    fn gate(&self, endpoint: &str, collection: &str) -> Arc<Gate> {
        let key = self
            .hasher
            .hash_one((endpoint, collection.to_ascii_lowercase()));
        let mut gates = lock(&self.gates);
        if gates.len() >= SWEEP_AT {
            let now = Instant::now();
            gates.retain(|_, g| kept(Arc::strong_count(g) > 1, lock(&g.state).last_answer, now));
        }
        Arc::clone(gates.entry(key).or_default())
    }

    /// Gates currently kept (for tests and leak checks).
    pub fn len(&self) -> usize {
        lock(&self.gates).len()
    }
}

/// A gate held by a [`Pacer::session`]; let go when dropped.
pub struct Held<'p> {
    pacer: &'p Pacer,
    /// `None`: no pacing (a zero budget).
    gate: Option<&'p Gate>,
    /// When the last write's answer arrived, this session's or the one before.
    last_answer: Option<Instant>,
}

impl Held<'_> {
    /// Send the write `send`, at least [`WRITE_SPACING`] after the previous write's answer, and
    /// again (with jitter) while the node refuses it as a conflict, within the budget: as
    /// [`Pacer::write`], without letting go of the gate in between.
    pub fn write(
        &mut self,
        mut send: impl FnMut() -> Result<Reply, Error>,
    ) -> Result<Reply, Error> {
        if self.gate.is_none() {
            return send();
        }
        let deadline = Instant::now() + self.pacer.budget;
        let mut attempt: u32 = 0;
        let mut refused: Option<Box<Reply>> = None;
        loop {
            let now = Instant::now();
            let jitter = jitter(&self.pacer.hasher, attempt);
            let ready = self.last_answer.map_or(now, |t| t + WRITE_SPACING + jitter);
            if ready > now {
                if ready >= deadline {
                    return Err(match refused {
                        Some(reply) => Error::Status(Upstream::Storage, reply),
                        None => busy(),
                    });
                }
                std::thread::sleep(ready - now);
            }
            let result = send();
            self.last_answer = Some(Instant::now());
            match result {
                Err(Error::Status(Upstream::Storage, reply)) if is_conflict(&reply) => {
                    attempt += 1;
                    log::debug!("sync node refused a write as a conflict; repeating it");
                    refused = Some(reply);
                }
                other => return other,
            }
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.gate {
            gate.give_back(self.last_answer);
        }
    }
}

impl Gate {
    /// Wait until no write is in progress, then mark one in progress (a session's);
    /// returns when the last write's answer arrived.
    fn take(&self, deadline: Instant) -> Result<Option<Instant>, Error> {
        let mut st = lock(&self.state);
        loop {
            if !st.busy {
                st.busy = true;
                return Ok(st.last_answer);
            }
            st = self.wait_for_free(st, deadline)?;
        }
    }

    /// The end of a session: free, the last write's answer at `last_answer`.
    fn give_back(&self, last_answer: Option<Instant>) {
        let mut st = lock(&self.state);
        st.busy = false;
        st.last_answer = last_answer;
        drop(st);
        self.free.notify_one();
    }

    /// Wait until no write is in progress and the spacing (plus `jitter`)
    /// since the last answer has passed, then mark a write in progress.
    fn enter(&self, deadline: Instant, jitter: Duration) -> Result<(), Error> {
        let mut st = lock(&self.state);
        loop {
            let now = Instant::now();
            if !st.busy {
                let ready = st.last_answer.map_or(now, |t| t + WRITE_SPACING + jitter);
                if ready <= now {
                    st.busy = true;
                    return Ok(());
                }
                if ready >= deadline {
                    return Err(busy());
                }
                drop(st);
                std::thread::sleep(ready - now);
                st = lock(&self.state);
                continue;
            }
            st = self.wait_for_free(st, deadline)?;
        }
    }

    /// Wait for a write in progress to end (the gate's `free` signal), at most until
    /// `deadline`: the busy answer when it has passed.
    fn wait_for_free<'a>(
        &self,
        st: std::sync::MutexGuard<'a, GateState>,
        deadline: Instant,
    ) -> Result<std::sync::MutexGuard<'a, GateState>, Error> {
        let now = Instant::now();
        if now >= deadline {
            return Err(busy());
        }
        Ok(self
            .free
            .wait_timeout(st, deadline - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0))
    }

    fn leave(&self) {
        let mut st = lock(&self.state);
        st.busy = false;
        st.last_answer = Some(Instant::now());
        drop(st);
        self.free.notify_one();
    }
}

/// Whether a sweep at `now` keeps a gate. Only the map holds an idle gate (not `in_use`),
/// and its pacing no longer matters once its last answer is the spacing or more ago.
fn kept(in_use: bool, last_answer: Option<Instant>, now: Instant) -> bool {
    in_use || last_answer.is_some_and(|t| now.saturating_duration_since(t) < WRITE_SPACING)
}

fn busy() -> Error {
    Error::Busy(
        Upstream::Storage,
        "other writes to this collection did not leave room in time".into(),
    )
}

/// The node's "conflict": `503` with `Retry-After` and the bare error code
/// `0` as body. Nothing else proves the write was not applied.
pub fn is_conflict(reply: &Reply) -> bool {
    reply.status == 503 && reply.retry_after.is_some() && reply.body.trim_ascii() == b"0"
}

/// 0–4 ms more per repeat, so two processes refused together don't collide
/// again in the next tick.
fn jitter(hasher: &RandomState, attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let r = hasher.hash_one((Instant::now(), std::thread::current().id()));
    Duration::from_micros(r % 4000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn conflict() -> Error {
        Error::Status(
            Upstream::Storage,
            Box::new(Reply {
                status: 503,
                retry_after: Some("10".into()),
                body: b"0".to_vec(),
                ..Reply::default()
            }),
        )
    }

    fn ok() -> Result<Reply, Error> {
        Ok(Reply {
            status: 200,
            ..Reply::default()
        })
    }

    #[test]
    fn a_conflict_is_repeated_until_it_passes() {
        let p = Pacer::new(Duration::from_secs(2));
        let calls = AtomicUsize::new(0);
        let r = p.write("http://n/1.5/1", "tabs", || {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(conflict()),
                _ => ok(),
            }
        });
        assert_eq!(r.unwrap().status, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn only_a_conflict_is_repeated() {
        let p = Pacer::new(Duration::from_secs(2));
        let other_status = |status: u16, body: &[u8], retry_after: Option<&str>| {
            Error::Status(
                Upstream::Storage,
                Box::new(Reply {
                    status,
                    retry_after: retry_after.map(str::to_owned),
                    body: body.to_vec(),
                    ..Reply::default()
                }),
            )
        };
        let other_503 =
            |body: &[u8], retry_after: Option<&str>| other_status(503, body, retry_after);
        for e in [
            Error::Timeout(Upstream::Storage, "slow".into()),
            Error::Unreachable(Upstream::Storage, "reset".into()),
            other_503(b"0", None),
            other_503(b"<html>busy</html>", Some("10")),
            // Exactly the conflict's headers and body, but not its status.
            other_status(500, b"0", Some("10")),
            other_status(502, b"0", Some("10")),
            other_status(504, b"0", Some("10")),
        ] {
            let calls = AtomicUsize::new(0);
            let r = p.write("http://n/1.5/1", "tabs", || {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(e.clone())
            });
            assert!(r.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{e}");
        }
    }

    #[test]
    fn past_the_budget_the_conflict_goes_to_the_client() {
        let p = Pacer::new(Duration::from_millis(100));
        let calls = AtomicUsize::new(0);
        let r = p.write("http://n/1.5/1", "tabs", || {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(conflict())
        });
        match r {
            Err(Error::Status(_, reply)) => assert!(is_conflict(&reply)),
            other => panic!("{other:?}"),
        }
        // About budget / spacing attempts, and never unbounded.
        let n = calls.load(Ordering::SeqCst);
        assert!((1..=10).contains(&n), "{n} attempts");
    }

    #[test]
    fn writes_of_one_collection_never_overlap_and_are_spaced() {
        let p = Arc::new(Pacer::new(Duration::from_secs(5)));
        let log = Arc::new(Mutex::new(Vec::<(Instant, Instant)>::new()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (p, log) = (Arc::clone(&p), Arc::clone(&log));
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        p.write("http://n/1.5/7", "History", || {
                            let start = Instant::now();
                            std::thread::sleep(Duration::from_millis(1));
                            lock(&log).push((start, Instant::now()));
                            ok()
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut spans = lock(&log).clone();
        spans.sort();
        assert_eq!(spans.len(), 20);
        // At least the node's 10 ms tick between one answer and the next write (a lower
        // bound: a loaded machine only makes the gaps longer).
        let tick = Duration::from_millis(10);
        for w in spans.windows(2) {
            let gap = w[1].0.saturating_duration_since(w[0].1);
            assert!(gap >= tick, "overlapping or too close: {gap:?}");
        }
        // The collection name is case-insensitive: one gate.
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn other_users_and_collections_are_not_held_up() {
        let p = Arc::new(Pacer::new(Duration::from_millis(50)));
        let p2 = Arc::clone(&p);
        let (tx, rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            p2.write("http://n/1.5/1", "tabs", || {
                tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
                ok()
            })
        });
        rx.recv().unwrap();
        // User 1's tabs write is in progress; these never wait for it.
        p.write("http://n/1.5/1", "history", ok).unwrap();
        p.write("http://n/1.5/2", "tabs", ok).unwrap();
        release_tx.send(()).unwrap();
        holder.join().unwrap().unwrap();
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn a_session_spaces_its_writes_and_holds_off_other_writers() {
        let p = Arc::new(Pacer::new(Duration::from_secs(5)));
        let log = Arc::new(Mutex::new(Vec::<(&str, Instant, Instant)>::new()));
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let session = {
            let (p, log) = (Arc::clone(&p), Arc::clone(&log));
            std::thread::spawn(move || {
                p.session("http://n/1.5/7", "tabs", |held| {
                    inside_tx.send(()).unwrap();
                    for _ in 0..3 {
                        held.write(|| {
                            let start = Instant::now();
                            std::thread::sleep(Duration::from_millis(1));
                            lock(&log).push(("session", start, Instant::now()));
                            ok()
                        })
                        .unwrap();
                    }
                })
                .unwrap();
            })
        };
        inside_rx.recv().unwrap();
        // Started while the session holds the gate: it goes after all of the session's.
        p.write("http://n/1.5/7", "TABS", || {
            let start = Instant::now();
            lock(&log).push(("other", start, Instant::now()));
            ok()
        })
        .unwrap();
        session.join().unwrap();
        let spans = lock(&log).clone();
        let who: Vec<&str> = spans.iter().map(|s| s.0).collect();
        assert_eq!(who, ["session", "session", "session", "other"]);
        // The node's 10 ms tick, not the constant under test (a lower bound: load only
        // makes the gaps longer).
        let tick = Duration::from_millis(10);
        for w in spans.windows(2) {
            assert!(w[1].1 >= w[0].2 + tick, "too close: {spans:?}");
        }
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn a_first_attempt_has_no_jitter_and_a_repeat_up_to_4_ms() {
        let hasher = RandomState::new();
        assert_eq!(jitter(&hasher, 0), Duration::ZERO);
        let repeats: Vec<Duration> = (1..=50).map(|a| jitter(&hasher, a)).collect();
        assert!(
            repeats.iter().all(|j| *j < Duration::from_millis(4)),
            "{repeats:?}"
        );
        // Spread, not one value (50 draws of 4,000 values all alike: about never).
        assert!(repeats.iter().any(|j| *j != repeats[0]), "{repeats:?}");
    }

    #[test]
    fn a_sweep_keeps_the_gates_in_use_or_answered_less_than_a_spacing_ago() {
        let now = Instant::now();
        let ago = |d: Duration| Some(now.checked_sub(d).unwrap());
        let just_under = WRITE_SPACING - Duration::from_micros(1);
        assert!(kept(true, None, now));
        assert!(kept(true, ago(Duration::from_secs(60)), now));
        assert!(kept(false, ago(Duration::ZERO), now));
        assert!(kept(false, ago(just_under), now));
        assert!(!kept(false, ago(WRITE_SPACING), now));
        assert!(!kept(false, ago(Duration::from_secs(60)), now));
        assert!(!kept(false, None, now));
    }

    #[test]
    fn idle_gates_are_swept_only_once_there_are_many() {
        let p = Arc::new(Pacer::new(Duration::from_secs(5)));
        // Time passing is the rule under test here: a gate answered a spacing ago is idle
        // (a loaded machine only makes these waits longer, never shorter).
        let idle = || std::thread::sleep(WRITE_SPACING * 2);
        p.write("http://n/1.5/1", "a", ok).unwrap();
        p.write("http://n/1.5/1", "b", ok).unwrap();
        idle();
        p.write("http://n/1.5/1", "c", ok).unwrap();
        assert_eq!(p.len(), 3, "a few idle gates stay");
        // One gate stays in use throughout.
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                p.write("http://n/1.5/1", "held", || {
                    inside_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(30));
                    ok()
                })
            })
        };
        inside_rx.recv().unwrap();
        for i in 4..SWEEP_AT {
            p.write(&format!("http://n/1.5/{i}"), "tabs", ok).unwrap();
        }
        assert_eq!(p.len(), SWEEP_AT);
        idle();
        // At SWEEP_AT gates, the next write sweeps the idle ones away first: the one in use
        // stays.
        p.write("http://n/1.5/1", "d", ok).unwrap();
        assert_eq!(p.len(), 2);
        release_tx.send(()).unwrap();
        assert_eq!(holder.join().unwrap().unwrap().status, 200);
    }

    #[test]
    fn a_session_repeats_a_conflict_and_gives_up_past_the_budget() {
        let p = Pacer::new(Duration::from_millis(100));
        let calls = AtomicUsize::new(0);
        let r = p
            .session("http://n/1.5/1", "tabs", |held| {
                let first = held.write(|| match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(conflict()),
                    _ => ok(),
                });
                let second = held.write(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(conflict())
                });
                (first, second)
            })
            .unwrap();
        assert_eq!(r.0.unwrap().status, 200);
        match r.1 {
            Err(Error::Status(_, reply)) => assert!(is_conflict(&reply)),
            other => panic!("{other:?}"),
        }
        let n = calls.load(Ordering::SeqCst);
        assert!((3..=12).contains(&n), "{n} attempts");
        // Let go: the next write does not wait for a budget to run out.
        let start = Instant::now();
        p.write("http://n/1.5/1", "tabs", ok).unwrap();
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn a_session_waits_for_the_gate_within_the_budget() {
        let p = Arc::new(Pacer::new(Duration::from_millis(50)));
        let p2 = Arc::clone(&p);
        let (tx, rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            p2.session("http://n/1.5/1", "tabs", |_| {
                tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
            })
        });
        rx.recv().unwrap();
        let r = p.session("http://n/1.5/1", "tabs", |_| ());
        assert!(matches!(r, Err(Error::Busy(..))), "{r:?}");
        release_tx.send(()).unwrap();
        holder.join().unwrap().unwrap();
        p.session("http://n/1.5/1", "tabs", |_| ()).unwrap();
    }

    #[test]
    fn a_gate_held_past_the_budget_is_a_busy_error() {
        let p = Arc::new(Pacer::new(Duration::from_millis(50)));
        let p2 = Arc::clone(&p);
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            p2.write("http://n/1.5/1", "tabs", || {
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                ok()
            })
        });
        rx.recv().unwrap();
        let r = p.write("http://n/1.5/1", "tabs", ok);
        assert!(matches!(r, Err(Error::Busy(..))), "{r:?}");
        assert_eq!(holder.join().unwrap().unwrap().status, 200);
    }
}
