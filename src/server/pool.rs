//! The worker pool: the queue of requests handed over by connection threads, the
//! workers, the shedder, and the threads that finish a slow reader's answer.
//!
//! A free worker takes the oldest queued job whose lane lets it run ([`Schedule`]). Idle
//! workers wait for a job to be queued or a running one to end; when queued jobs wait only
//! for a write spacing to pass, one of the idle workers (the watch) waits until the
//! earliest ends. So no worker ever sleeps holding a job, and a job that can run never
//! waits while a worker is idle.

use super::adapt::into_tiny;
use super::schedule::{Schedule, Verdict};
use super::{InFlight, Lane, Shared, answer, finish, log_answer, shed};
use crate::concurrency::lock;
use crate::logging::{RequestId, RequestScope};
use crate::time_limits::{
    SHEDDER_AWAKE, SHEDDER_WRITES_FOR, WORKER_SEND_LIMIT, WORKER_WRITES_LARGE_FOR,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The workers' queue: requests handed over by connection threads (generic only for
/// its tests).
pub(super) struct Pool<J = Job> {
    queue: Mutex<Queue<J>>,
    /// Idle workers wait here.
    ready: Condvar,
    /// The shedder waits here when it has been idle a while.
    wake_shedder: Condvar,
    stop: AtomicBool,
}

struct Queue<J> {
    jobs: Schedule<J>,
    /// Workers waiting for a job: one is woken when a job may run, and none
    /// (no system call) when all are busy.
    idle_workers: usize,
    /// When the idle worker that waits with a time limit (for the end of a write
    /// spacing) wakes up, if one does.
    watch: Option<Instant>,
    /// The shedder waits for a job without a time limit.
    shedder_asleep: bool,
}

/// One request handed to the pool, its body read.
pub(super) struct Job {
    pub(super) rq: listener::Request,
    pub(super) body: Vec<u8>,
    /// When its request began (for the request log).
    pub(super) started: Instant,
    pub(super) in_flight: InFlight,
    /// The request's id, for the lines logged while it is served and its answer.
    pub(super) id: RequestId,
}

/// A worker writes every answer itself. One whose body is at most this long
/// fits, with its head, in one write into a send buffer that a client which
/// read its previous answer has drained, so the write doesn't wait for the
/// client.
const WORKER_WRITES_UP_TO: usize = 12 * 1024;

impl<J> Pool<J> {
    /// A pool giving one user at most `per_user` workers and spacing its writes of one
    /// collection by `spacing`.
    pub(super) fn new(per_user: usize, spacing: Duration) -> Pool<J> {
        Pool {
            queue: Mutex::new(Queue {
                jobs: Schedule::new(per_user, spacing),
                idle_workers: 0,
                watch: None,
                shedder_asleep: false,
            }),
            ready: Condvar::new(),
            wake_shedder: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Queue a request of `lane` for a worker.
    pub(super) fn push(&self, lane: Lane, job: J) {
        let mut queue = lock(&self.queue);
        let verdict = queue.jobs.push(lane, Instant::now(), job);
        let wake_worker = queue.idle_workers > 0
            && match verdict {
                Verdict::Now => true,
                // An idle worker then watches for it, unless one wakes up before.
                Verdict::At(t) => queue.watch.is_none_or(|w| t < w),
                Verdict::Later => false,
            };
        let wake_shedder = std::mem::take(&mut queue.shedder_asleep);
        drop(queue);
        if wake_worker {
            self.ready.notify_one();
        }
        if wake_shedder {
            self.wake_shedder.notify_one();
        }
    }

    /// The next job a worker may run, or None once stopped. `done`: the lane of the job
    /// the worker has just finished, and when its upstream answer arrived.
    fn next(&self, done: Option<(Lane, Instant)>) -> Option<(Lane, J)> {
        let mut queue = lock(&self.queue);
        if let Some((lane, answered)) = done {
            queue.jobs.done(&lane, answered);
        }
        loop {
            let now = Instant::now();
            let others_idle = queue.idle_workers > 0;
            let picked = queue.jobs.pick(now, others_idle);
            if let Some(q) = picked.job {
                // Hand on what this worker leaves: a job that may run now, or the watch
                // for the next spacing.
                let unwatched = picked.at.is_some_and(|t| queue.watch.is_none_or(|w| t < w));
                if others_idle && (picked.another || unwatched) {
                    self.ready.notify_one();
                }
                return Some((q.lane, q.job));
            }
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            queue.idle_workers += 1;
            match picked.at {
                Some(t) if queue.watch.is_none_or(|w| t < w) => {
                    queue.watch = Some(t);
                    queue = self
                        .ready
                        .wait_timeout(queue, t.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if queue.watch == Some(t) {
                        queue.watch = None;
                    }
                }
                _ => queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner()),
            }
            queue.idle_workers -= 1;
        }
    }

    /// Jobs queued now.
    pub(super) fn queued(&self) -> usize {
        lock(&self.queue).jobs.len()
    }

    /// When the watch wakes up (for tests).
    #[cfg(test)]
    fn watch(&self) -> Option<Instant> {
        lock(&self.queue).watch
    }

    pub(super) fn stop(&self) {
        let _queue = lock(&self.queue);
        self.stop.store(true, Ordering::SeqCst);
        self.ready.notify_all();
        self.wake_shedder.notify_all();
    }
}

pub(super) fn worker(shared: &Shared) {
    crate::upstream::mark_worker_thread();
    let mut done = None;
    while let Some((lane, job)) = shared.pool.next(done.take()) {
        let Job {
            mut rq,
            body,
            started,
            in_flight,
            id,
        } = job;
        let _scope = RequestScope::enter(id);
        let mut resp = answer(&*shared.service, &rq, &body);
        done = Some((lane, Instant::now()));
        drop(body);
        if resp.body.len() <= WORKER_WRITES_UP_TO {
            rq.set_send_limit(WORKER_SEND_LIMIT);
            finish(shared, rq, resp, started);
            continue;
        }
        rq.set_send_limit(WORKER_WRITES_LARGE_FOR);
        let rq = log_answer(shared, rq, &mut resp, started);
        if let Err(unsent) = rq.respond_or_hand_over(into_tiny(resp)) {
            // The rest on a thread of its own (the listener's `answer`),
            // so that the client holds no worker.
            unsent.finish_elsewhere(move || drop(in_flight));
        }
    }
}

/// Answers 503 + `Retry-After` to the requests no worker has taken within
/// `queue_timeout` of being queued (all workers are busy with slow upstream calls, or
/// their lane did not let them run: their user held its share of the workers, or wrote
/// the same collection), so that they don't wait behind those.
pub(super) fn shedder(shared: &Shared) {
    let pool = &shared.pool;
    let tick =
        (shared.queue_timeout / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut last_busy = Instant::now();
    let mut queue = lock(&pool.queue);
    while !pool.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let late = match now.checked_sub(shared.queue_timeout) {
            Some(before) => queue.jobs.take_queued_before(before),
            None => Vec::new(),
        };
        if !late.is_empty() {
            drop(queue);
            for q in late {
                shed_job(shared, q.job);
            }
            queue = lock(&pool.queue);
            continue;
        }
        if !queue.jobs.is_empty() {
            last_busy = now;
        } else if now.duration_since(last_busy) >= SHEDDER_AWAKE {
            queue.shedder_asleep = true;
            queue = pool
                .wake_shedder
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
            last_busy = Instant::now();
            continue;
        }
        let wait = queue.jobs.oldest().map_or(tick, |t| {
            (t + shared.queue_timeout).saturating_duration_since(now)
        });
        queue = pool
            .wake_shedder
            .wait_timeout(queue, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The 503 of a request no worker took in time. It is written as a worker writes a large
/// answer: for a moment, and what a client that does not read has not taken by then is
/// finished by a thread of its own, so that such a client cannot hold up the other 503s.
fn shed_job(shared: &Shared, job: Job) {
    shared.shed.event(|n| {
        log::warn!(
            "{n} request(s) answered 503: no free worker within {} ms \
             (upstream calls are slow, workers too few, or one user sent more than its share)",
            shared.queue_timeout.as_millis()
        )
    });
    let Job {
        mut rq,
        started,
        id,
        in_flight,
        ..
    } = job;
    let _scope = RequestScope::enter(id);
    let mut resp = shed(&*shared.service, &rq);
    rq.set_send_limit(SHEDDER_WRITES_FOR);
    let rq = log_answer(shared, rq, &mut resp, started);
    if let Err(unsent) = rq.respond_or_hand_over(into_tiny(resp)) {
        unsent.finish_elsewhere(move || drop(in_flight));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Writes;
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, Sender, channel};

    /// A spacing long enough that the workers of these tests are all waiting again before
    /// it ends, whatever the load: if one is not, a test only checks less, never fails.
    const SPACING: Duration = Duration::from_millis(400);

    fn write(user: u64) -> Lane {
        Lane {
            user,
            writes: Writes::Collection(user),
        }
    }

    fn read(user: u64) -> Lane {
        Lane {
            user,
            writes: Writes::Nothing,
        }
    }

    /// Workers that report each job they take, and end it when told, with the instant its
    /// upstream answer is to have arrived.
    struct Workers {
        pool: Arc<Pool<&'static str>>,
        taken: Receiver<(usize, &'static str)>,
        end: Vec<Sender<Instant>>,
    }

    impl Workers {
        fn start(n: usize, per_user: usize) -> Workers {
            let pool = Arc::new(Pool::<&'static str>::new(per_user, SPACING));
            let (tx, taken) = channel();
            let end = (0..n)
                .map(|i| {
                    let (end_tx, end_rx) = channel::<Instant>();
                    let (pool, tx) = (Arc::clone(&pool), tx.clone());
                    std::thread::spawn(move || {
                        let mut done = None;
                        while let Some((lane, job)) = pool.next(done.take()) {
                            tx.send((i, job)).unwrap();
                            let Ok(answered) = end_rx.recv() else { return };
                            done = Some((lane, answered));
                        }
                    });
                    end_tx
                })
                .collect();
            Workers { pool, taken, end }
        }

        /// Three workers, each user given one: writes `a1` (user 1) and `b1` (user 2) and a
        /// read of user 3 taken, then `a2` and `b2` queued behind the writes; which worker
        /// took each job.
        fn two_writes_waiting() -> (Workers, std::collections::HashMap<&'static str, usize>) {
            let w = Workers::start(3, 1);
            w.pool.push(write(1), "a1");
            w.pool.push(write(2), "b1");
            w.pool.push(read(3), "held");
            let mut by = std::collections::HashMap::new();
            for _ in 0..3 {
                let (i, job) = w.taken();
                by.insert(job, i);
            }
            w.pool.push(write(1), "a2");
            w.pool.push(write(2), "b2");
            (w, by)
        }

        /// The next job taken, and by whom (a job that may run and is never taken fails
        /// the test here).
        fn taken(&self) -> (usize, &'static str) {
            self.taken
                .recv_timeout(Duration::from_secs(20))
                .expect("a job that may run was left waiting")
        }
    }

    impl Drop for Workers {
        fn drop(&mut self) {
            self.pool.stop();
            self.end.clear();
        }
    }

    /// Two writes of two users become free to go at the same instant: the worker that takes
    /// the first wakes another for the second.
    #[test]
    fn two_jobs_free_at_once_are_taken_by_two_workers() {
        let (w, by) = Workers::two_writes_waiting();
        assert_eq!(w.pool.queued(), 2);
        // Both answers at the same instant: both waiting writes may go one spacing later.
        let t = Instant::now();
        w.end[by["a1"]].send(t).unwrap();
        w.end[by["b1"]].send(t).unwrap();
        let mut next = [w.taken().1, w.taken().1];
        next.sort();
        assert_eq!(next, ["a2", "b2"]);
    }

    /// The idle worker that waits for a spacing to end takes the job, and hands the watch
    /// for the next spacing to another idle worker.
    #[test]
    fn the_watch_for_the_next_spacing_is_handed_on() {
        let (w, by) = Workers::two_writes_waiting();
        let t = Instant::now();
        w.end[by["a1"]].send(t).unwrap();
        // a1's worker, idle, waits for a2's spacing; then b1's answer comes, and its
        // worker leaves the watch to it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.pool.watch() != Some(t + SPACING) {
            assert!(Instant::now() < deadline, "nobody watches for a2's spacing");
            std::thread::yield_now();
        }
        w.end[by["b1"]].send(t + SPACING / 2).unwrap();
        assert_eq!(w.taken().1, "a2");
        assert_eq!(w.taken().1, "b2");
    }

    #[test]
    fn a_job_that_may_run_wakes_an_idle_worker_and_one_that_may_not_waits() {
        let w = Workers::start(2, 1);
        w.pool.push(read(1), "a1");
        let (first, _) = w.taken();
        // User 1 holds its one worker: its next job waits although a worker is idle...
        w.pool.push(read(1), "a2");
        w.pool.push(read(2), "b1");
        assert_eq!(w.taken(), (1 - first, "b1"));
        assert_eq!(w.pool.queued(), 1);
        // ...until its first ends.
        w.end[first].send(Instant::now()).unwrap();
        assert_eq!(w.taken(), (first, "a2"));
    }
}
