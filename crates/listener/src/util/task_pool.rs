//! The connection threads: a pool that runs each connection on a thread of
//! its own, reusing a thread that has finished its connection instead of
//! starting a new one.
//!
//! A thread left without work waits 5 s for another connection before it
//! ends (4 always stay). A new connection is queued only if an idle thread
//! is waiting for it: an idle thread already woken for an earlier
//! connection does not count, so a burst of keep-alive connections never
//! waits behind connections that never end. When the system refuses a new
//! thread (a task limit, memory), the connection is given back to the
//! caller, which refuses it: the pool itself never fails.

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Work for a connection thread.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

pub(crate) struct TaskPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Idle threads wait here.
    ready: Condvar,
}

#[derive(Default)]
struct State {
    /// Tasks queued for an idle thread.
    tasks: VecDeque<Task>,
    /// Threads waiting for a task (and not woken yet).
    idle: usize,
    /// Threads alive.
    threads: usize,
    /// The pool is gone: idle threads end.
    closed: bool,
}

/// Threads kept even when idle.
const MIN_THREADS: usize = 4;

/// How long a thread beyond [`MIN_THREADS`] waits for work before it ends.
const IDLE_FOR: Duration = Duration::from_secs(5);

/// Connection threads need little stack: a request head is parsed from the
/// read buffer and the handler's work happens in its own frames. 256 KiB
/// (of address space; only what is touched takes memory) instead of 2 MiB.
const STACK: usize = 256 * 1024;

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TaskPool {
    pub(crate) fn new() -> TaskPool {
        let pool = TaskPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
            }),
        };
        let mut state = lock(&pool.shared.state);
        for _ in 0..MIN_THREADS {
            if pool.add_thread(&mut state).is_err() {
                break;
            }
        }
        drop(state);
        pool
    }

    /// Runs `task` on a thread of the pool; gives it back, with the error,
    /// if no thread is idle and none can be started.
    pub(crate) fn spawn(&self, task: Task) -> Result<(), (Task, io::Error)> {
        let mut state = lock(&self.shared.state);
        state.tasks.push_back(task);
        if state.idle >= state.tasks.len() {
            self.shared.ready.notify_one();
            return Ok(());
        }
        match self.add_thread(&mut state) {
            Ok(()) => Ok(()),
            // Nobody could take the task meanwhile: the lock was held.
            Err(e) => Err((state.tasks.pop_back().expect("the task just queued"), e)),
        }
    }

    /// Starts a thread that takes tasks from the queue.
    fn add_thread(&self, state: &mut State) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("connection".into())
            .stack_size(STACK)
            .spawn(move || run(&shared))?;
        state.threads += 1;
        Ok(())
    }
}

/// Counts a thread out of the pool when it ends (also by a panic).
struct Alive<'a>(&'a Shared);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).threads -= 1;
    }
}

/// A pool thread: takes tasks until it has been idle too long, or the pool
/// is gone.
fn run(shared: &Shared) {
    let _alive = Alive(shared);
    loop {
        let task = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(task) = state.tasks.pop_front() {
                    break task;
                }
                if state.closed {
                    return;
                }
                state.idle += 1;
                let (next, waited) = if state.threads <= MIN_THREADS {
                    (
                        shared.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                        false,
                    )
                } else {
                    let (s, w) = shared
                        .ready
                        .wait_timeout(state, IDLE_FOR)
                        .unwrap_or_else(|e| e.into_inner());
                    (s, w.timed_out())
                };
                state = next;
                state.idle -= 1;
                if waited && state.tasks.is_empty() && state.threads > MIN_THREADS {
                    return;
                }
            }
        };
        // A panic ends the connection (its socket is dropped), not the
        // thread.
        let _ = catch_unwind(AssertUnwindSafe(task));
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn tasks_run_and_threads_are_reused() {
        let pool = TaskPool::new();
        let (tx, rx) = mpsc::channel();
        for i in 0..20 {
            let tx = tx.clone();
            pool.spawn(Box::new(move || tx.send(i).unwrap()))
                .map_err(|(_, e)| e)
                .unwrap();
        }
        let mut got: Vec<i32> = (0..20).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        // A panicking task costs its thread nothing.
        pool.spawn(Box::new(|| panic!("a bug in one connection")))
            .map_err(|(_, e)| e)
            .unwrap();
        let tx2 = tx.clone();
        pool.spawn(Box::new(move || tx2.send(99).unwrap()))
            .map_err(|(_, e)| e)
            .unwrap();
        assert_eq!(rx.recv().unwrap(), 99);
    }

    /// Tasks that never end each get a thread: none waits behind them.
    #[test]
    fn a_burst_of_long_tasks_each_gets_a_thread() {
        let pool = TaskPool::new();
        let (tx, rx) = mpsc::channel();
        let (release, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        for i in 0..12 {
            let (tx, wait) = (tx.clone(), Arc::clone(&wait));
            pool.spawn(Box::new(move || {
                tx.send(i).unwrap();
                // Hold the thread until the test ends.
                let _ = wait.lock().unwrap().recv();
            }))
            .map_err(|(_, e)| e)
            .unwrap();
        }
        for _ in 0..12 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("every task started");
        }
        drop(release);
    }
}
