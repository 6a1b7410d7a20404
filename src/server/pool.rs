//! The worker pool: the queue of requests handed over by connection threads, the
//! workers, the shedder, and the threads that finish a slow reader's answer.

use super::adapt::into_tiny;
use super::{InFlight, Lane, Shared, answer, finish, log_answer, shed};
use crate::logging::{RequestId, RequestScope};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workers' queue: requests handed over by connection threads.
#[derive(Default)]
pub(super) struct Pool {
    queue: Mutex<Queue>,
    /// Idle workers wait here.
    ready: Condvar,
    /// The shedder waits here when it has been idle a while.
    wake_shedder: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers waiting for a job: one is woken per job, and none (no system
    /// call) when all are busy.
    idle_workers: usize,
    /// The shedder waits for a job without a time limit.
    shedder_asleep: bool,
}

/// One request handed to the pool, its body read.
pub(super) struct Job {
    pub(super) rq: listener::Request,
    pub(super) body: Vec<u8>,
    #[allow(dead_code)] // the pool schedules by lane in the next change
    pub(super) lane: Lane,
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

/// How long a worker may take to write a small answer. Only a client that
/// sends requests without reading the answers fills its send buffer; it is
/// disconnected rather than allowed to hold a worker.
const WORKER_SEND_LIMIT: Duration = Duration::from_secs(1);

/// How long a worker writes a larger answer (a page of records) before it
/// leaves the rest to a thread of its own. A client that reads as fast as
/// the answer is written (a local reverse proxy, a client on a fast
/// network) gets it all from the worker, whose buffers are then reused at
/// once; one that reads slowly holds a worker this long at most.
const WORKER_WRITES_LARGE_FOR: Duration = Duration::from_millis(20);

/// How long the shedder keeps checking the queue on its own after it was
/// last found empty, before it sleeps until a request is queued.
const SHEDDER_AWAKE: Duration = Duration::from_secs(3);

impl Pool {
    /// Queue a request for the next free worker.
    pub(super) fn push(&self, job: Job) {
        let mut queue = lock(&self.queue);
        queue.jobs.push_back(job);
        let wake_worker = queue.idle_workers > 0;
        let wake_shedder = std::mem::take(&mut queue.shedder_asleep);
        drop(queue);
        if wake_worker {
            self.ready.notify_one();
        }
        if wake_shedder {
            self.wake_shedder.notify_one();
        }
    }

    /// The next job, or None once stopped and empty.
    fn next(&self) -> Option<Job> {
        let mut queue = lock(&self.queue);
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            queue.idle_workers += 1;
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            queue.idle_workers -= 1;
        }
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
    while let Some(Job {
        mut rq,
        body,
        started,
        in_flight,
        id,
        ..
    }) = shared.pool.next()
    {
        let _scope = RequestScope::enter(id);
        let mut resp = answer(&*shared.service, &rq, &body);
        drop(body);
        if resp.body.len() <= WORKER_WRITES_UP_TO {
            rq.set_send_limit(WORKER_SEND_LIMIT);
            finish(shared, rq, resp, started);
            continue;
        }
        rq.set_send_limit(WORKER_WRITES_LARGE_FOR);
        let rq = log_answer(shared, rq, &mut resp, started);
        if let Err(unsent) = rq.respond_or_hand_over(into_tiny(resp)) {
            finish_elsewhere(unsent, in_flight);
        }
    }
}

/// The rest of an answer a client is taking slowly, on a thread of its own
/// (at most one per connection: the connection's next request waits for
/// it), so that the client holds no worker.
fn finish_elsewhere(unsent: listener::Unsent, in_flight: InFlight) {
    // Shared with the thread only so that it can be taken back if no
    // thread can be had.
    let unsent = Arc::new(Mutex::new(Some(unsent)));
    let theirs = Arc::clone(&unsent);
    let spawned = std::thread::Builder::new()
        .name("answer".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Some(unsent) = lock(&theirs).take() {
                let _ = unsent.finish();
            }
            drop(in_flight);
        });
    if spawned.is_err() {
        // No thread to be had: finish it here.
        if let Some(unsent) = lock(&unsent).take() {
            let _ = unsent.finish();
        }
    }
}

/// Answers 503 + `Retry-After` to the requests no worker has taken within
/// `queue_timeout` (all of them are busy with slow upstream calls), so that
/// they don't wait behind those.
pub(super) fn shedder(shared: &Shared) {
    let pool = &shared.pool;
    let tick =
        (shared.queue_timeout / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut last_busy = Instant::now();
    let mut queue = lock(&pool.queue);
    while !pool.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let mut late = Vec::new();
        let mut i = 0;
        let mut next_deadline: Option<Instant> = None;
        while i < queue.jobs.len() {
            let deadline = queue.jobs[i].started + shared.queue_timeout;
            if deadline <= now {
                late.extend(queue.jobs.remove(i));
            } else {
                next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
                i += 1;
            }
        }
        if !late.is_empty() {
            drop(queue);
            for job in late {
                shed_job(shared, job);
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
        let wait = next_deadline.map_or(tick, |d| d.saturating_duration_since(now));
        queue = pool
            .wake_shedder
            .wait_timeout(queue, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The 503 of a request no worker took in time.
fn shed_job(shared: &Shared, job: Job) {
    shared.shed.event(|n| {
        log::warn!(
            "{n} request(s) answered 503: no free worker within {} ms \
             (upstream calls are slow or workers too few)",
            shared.queue_timeout.as_millis()
        )
    });
    let Job {
        mut rq,
        started,
        id,
        ..
    } = job;
    let _scope = RequestScope::enter(id);
    let resp = shed(&*shared.service, &rq);
    rq.set_send_limit(WORKER_SEND_LIMIT);
    finish(shared, rq, resp, started);
}
