//! The two primitives shared state is built from, each written once:
//!
//! - [`lock`]: a mutex lock that tolerates poisoning. A panic costs one request (it is
//!   caught and answered 500), so a lock it poisoned must not take every later request
//!   down with it. Every critical section in Syncto is written so that a panic cannot leave
//!   its data half-updated (single inserts, removes and field writes; the callers say why
//!   at each mutex).
//! - [`Flight`]: one computation whose result every caller that asked for it meanwhile
//!   waits for ("single flight"), so that N requests missing the same thing at once cost
//!   one upstream call: the credentials cache (one Token Server exchange per user) and the
//!   resolver (one lookup per name). Its owner lands it whatever happens (the callers use
//!   a drop guard), so waiters never wait for a flight that will not end.
//!
//! (The listener crate and the test fakes keep their own one-line `lock`: they are separate
//! crates and must not depend on this one.)

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks `m`, taking the data of a poisoned mutex as it is (see the module doc).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A result that one caller computes and others wait for.
#[derive(Debug)]
pub(crate) struct Flight<T> {
    result: Mutex<Option<T>>,
    done: Condvar,
}

impl<T> Default for Flight<T> {
    fn default() -> Flight<T> {
        Flight {
            result: Mutex::new(None),
            done: Condvar::new(),
        }
    }
}

impl<T: Clone> Flight<T> {
    /// Ends the flight with `value` and wakes every waiter. Only the first landing counts.
    pub(crate) fn land(&self, value: T) {
        let mut result = lock(&self.result);
        if result.is_none() {
            *result = Some(value);
        }
        drop(result);
        self.done.notify_all();
    }

    /// The result, once landed: waits for it at most `wait` when given (None if it has not
    /// landed by then), else as long as it takes.
    pub(crate) fn wait(&self, wait: Option<Duration>) -> Option<T> {
        let result = lock(&self.result);
        let result = match wait {
            Some(d) => {
                self.done
                    .wait_timeout_while(result, d, |r| r.is_none())
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => self
                .done
                .wait_while(result, |r| r.is_none())
                .unwrap_or_else(PoisonError::into_inner),
        };
        result.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_get_the_first_landing_and_a_deadline_bounds_the_wait() {
        let flight: Arc<Flight<u32>> = Arc::default();
        assert_eq!(flight.wait(Some(Duration::from_millis(1))), None);
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let f = Arc::clone(&flight);
                std::thread::spawn(move || f.wait(None))
            })
            .collect();
        flight.land(7);
        flight.land(8);
        for w in waiters {
            assert_eq!(w.join().unwrap(), Some(7));
        }
        assert_eq!(flight.wait(Some(Duration::ZERO)), Some(7));
    }

    #[test]
    fn a_poisoned_lock_still_locks() {
        let m = Arc::new(Mutex::new(1));
        let m2 = Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
