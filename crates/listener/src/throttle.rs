//! One log line per period for an event that repeats, with how many times it
//! happened, so that a flood of errors can't flood the log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts a repeated event and lets one log line through per period.
pub struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
    count: AtomicU64,
}

impl Throttle {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: Mutex::new(None),
            count: AtomicU64::new(0),
        }
    }

    /// Count one event; `log` is called with the number of events since the
    /// previous line when a line is due (the first event always has one).
    pub fn event(&self, log: impl FnOnce(u64)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= self.every) {
            *last = Some(Instant::now());
            log(self.count.swap(0, Ordering::Relaxed));
        }
    }
}

/// One line per 10 s.
impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;
    use std::time::Duration;

    #[test]
    fn one_line_per_period_with_the_count_since_the_last() {
        let t = Throttle::new(Duration::from_secs(3600));
        let mut lines = Vec::new();
        for _ in 0..5 {
            t.event(|n| lines.push(n));
        }
        assert_eq!(lines, [1]);
        let t = Throttle::new(Duration::ZERO);
        t.event(|n| lines.push(n));
        t.event(|n| lines.push(n));
        assert_eq!(lines, [1, 1, 1]);
    }
}
