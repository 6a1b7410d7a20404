//! The Token Server's health as `__heartbeat__` reports it: one check at a time, its result
//! reused for [`HEARTBEAT_FRESH`].
//!
//! `__heartbeat__` needs no credentials, so without this every request to it would be a
//! Token Server call: a client could turn Syncto into a free amplifier against the Token
//! Server (and get the instance rate-limited by it). Here a check's result answers every
//! heartbeat for [`HEARTBEAT_FRESH`] after it; once it is older, the first heartbeat makes the next
//! check and the others meanwhile get the previous result without waiting. Only before the
//! first result do heartbeats wait for the check in flight (at most its own timeout and a
//! second). So whatever the request rate, there is at most one check in flight and about
//! one per [`HEARTBEAT_FRESH`].

use crate::concurrency::lock;
use crate::time_limits::HEARTBEAT_FRESH;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The last check and whether one is in flight, shared by every worker.
#[derive(Debug, Default)]
pub struct Beat {
    state: Mutex<State>,
    done: Condvar,
}

/// Two fields set together: a panic cannot leave it half-written.
#[derive(Debug, Default)]
struct State {
    /// When the last check ended, and whether the Token Server was healthy.
    last: Option<(Instant, bool)>,
    /// A check is in flight.
    checking: bool,
    /// Heartbeats waiting for the first result (observed by the tests).
    waiting: usize,
}

/// Clears `checking` however the check ends (a panic included), so that the next heartbeat
/// checks again instead of waiting for a check that will never end.
struct InFlight<'a>(&'a Beat);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).checking = false;
        self.0.done.notify_all();
    }
}

impl Beat {
    /// The Token Server's health: a result younger than [`HEARTBEAT_FRESH`], else the result of
    /// `check`, run here when no check is in flight. While another caller's check is in
    /// flight, the previous result, or, before there is one, the in-flight check's (waiting
    /// for it at most `wait`, then false). `clock` reads the time.
    pub fn get(
        &self,
        clock: &dyn Fn() -> Instant,
        wait: Duration,
        check: impl FnOnce() -> bool,
    ) -> bool {
        let mut st = lock(&self.state);
        let deadline = clock() + wait;
        loop {
            if let Some((at, healthy)) = st.last {
                if clock().saturating_duration_since(at) < HEARTBEAT_FRESH || st.checking {
                    return healthy;
                }
            }
            if !st.checking {
                break;
            }
            let left = deadline.saturating_duration_since(clock());
            if left.is_zero() {
                return false;
            }
            st.waiting += 1;
            st = self
                .done
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.waiting -= 1;
        }
        st.checking = true;
        drop(st);
        let in_flight = InFlight(self);
        let healthy = check();
        lock(&self.state).last = Some((clock(), healthy));
        drop(in_flight);
        healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};

    const WAIT: Duration = Duration::from_secs(30);

    fn waiting(beat: &Beat) -> usize {
        lock(&beat.state).waiting
    }

    fn checking(beat: &Beat) -> bool {
        lock(&beat.state).checking
    }

    /// Waits (bounded) until `cond` holds.
    fn until(what: &str, cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(started.elapsed() < WAIT, "never: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_result_answers_for_a_second_then_the_next_heartbeat_checks() {
        let beat = Beat::default();
        let t0 = Instant::now();
        let at = |ms: u64| move || t0 + Duration::from_millis(ms);
        assert!(beat.get(&at(0), WAIT, || true));
        assert!(beat.get(&at(999), WAIT, || panic!("no check within a second")));
        assert!(!beat.get(&at(1000), WAIT, || false));
        assert!(!beat.get(&at(1999), WAIT, || panic!("no check within a second")));
    }

    #[test]
    fn concurrent_first_heartbeats_share_one_check() {
        let beat = Arc::new(Beat::default());
        let checks = Arc::new(AtomicUsize::new(0));
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (beat, checks, gate) = (beat.clone(), checks.clone(), gate.clone());
                std::thread::spawn(move || {
                    beat.get(&Instant::now, WAIT, || {
                        checks.fetch_add(1, Ordering::SeqCst);
                        gate.lock().unwrap().recv().unwrap();
                        true
                    })
                })
            })
            .collect();
        // One check in flight, seven heartbeats waiting for it.
        until("7 waiting", || waiting(&beat) == 7);
        release.send(()).unwrap();
        for c in callers {
            assert!(c.join().unwrap());
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn while_a_check_runs_the_others_get_the_previous_result_at_once() {
        let beat = Arc::new(Beat::default());
        let t0 = Instant::now();
        assert!(beat.get(&|| t0, WAIT, || true));
        let (release, gate) = mpsc::channel::<()>();
        let checker = {
            let beat = beat.clone();
            std::thread::spawn(move || {
                beat.get(&|| t0 + HEARTBEAT_FRESH * 2, WAIT, move || {
                    gate.recv().unwrap();
                    false
                })
            })
        };
        until("the check is in flight", || checking(&beat));
        // Past HEARTBEAT_FRESH, but a check is in flight: the previous result, no second check.
        let later = t0 + HEARTBEAT_FRESH * 5;
        assert!(beat.get(&|| later, WAIT, || panic!("a second check")));
        assert_eq!(waiting(&beat), 0);
        release.send(()).unwrap();
        assert!(!checker.join().unwrap());
        assert!(!beat.get(&Instant::now, WAIT, || panic!("fresh")));
    }

    #[test]
    fn a_first_check_that_never_ends_is_waited_for_at_most_wait() {
        let beat = Arc::new(Beat::default());
        let (release, gate) = mpsc::channel::<()>();
        let checker = {
            let beat = beat.clone();
            std::thread::spawn(move || {
                beat.get(&Instant::now, WAIT, move || {
                    gate.recv().unwrap();
                    true
                })
            })
        };
        until("the check is in flight", || checking(&beat));
        assert!(!beat.get(&Instant::now, Duration::from_millis(1), || panic!()));
        release.send(()).unwrap();
        assert!(checker.join().unwrap());
    }

    #[test]
    fn a_check_that_panics_leaves_no_check_in_flight() {
        let beat = Beat::default();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            beat.get(&Instant::now, WAIT, || panic!("check panics"))
        }));
        assert!(panicked.is_err());
        assert!(!checking(&beat));
        assert!(beat.get(&Instant::now, WAIT, || true));
    }
}
