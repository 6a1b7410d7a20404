//! Which queued job a free worker takes: the oldest one whose lane lets it run.
//!
//! Every job handed to the workers carries a [`Lane`]: its user (a keyed hash of the
//! credential) and what it writes. A job may run when
//!
//! - its user holds fewer than `per_user` workers, so that one user's requests, however
//!   many, leave the other workers to everyone else;
//! - for a write of one collection: no other write of that user to that collection and no
//!   batch of that user is running, and one `spacing` has passed since the last one got
//!   its answer (the Sync node refuses a write that meets another of the same user and
//!   collection, or one stamped with the same 10 ms tick: see `sync15::pacing`);
//! - for a batch (it may write any collection of its user): no other write of that user
//!   is running, and one `spacing` has passed since the last one got its answer.
//!
//! So a write waits for its turn in the queue, holding no worker; a worker never sleeps
//! on another request's gate. A job that cannot run stays queued, in order, until it can
//! or until the shedder answers it 503 at its queue deadline (it never ran, so nothing
//! happened). This is pure bookkeeping, kept apart from the threads so that its rules can
//! be tested one by one.
//!
//! A write's collection is named per token (a keyed hash of token and collection), and
//! its turn is kept across users: the same token's writes wait for each other even when the
//! first one ran before its account was known (the service names a user by its account once
//! the credentials cache knows the token, by the token before). Writes of one account
//! through two tokens are two such keys; the storage client's pacer keeps those apart.
//!
//! What it holds: the queued jobs (at most one per connection: a connection's next
//! request is read once its answer is out), a few words per user with a job running or a
//! write answered within the last `spacing`, and per write key running or answered within
//! it; the rest is swept.

use super::{Lane, Writes};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The queue and the lanes' state.
pub(super) struct Schedule<J> {
    queue: VecDeque<Queued<J>>,
    users: HashMap<u64, User>,
    /// The writes running or answered within the last spacing, by write key.
    writes: HashMap<u64, Write>,
    per_user: usize,
    spacing: Duration,
    /// Users and write keys kept before the idle ones are swept.
    sweep_at: usize,
}

/// A job waiting for a worker.
pub(super) struct Queued<J> {
    pub(super) lane: Lane,
    /// When it was queued: its queue deadline counts from here (not from when its
    /// request began: a slow upload is not time spent waiting for a worker).
    pub(super) queued_at: Instant,
    pub(super) job: J,
}

/// What one user's running jobs hold.
#[derive(Default, Debug)]
struct User {
    /// Workers running its jobs.
    running: usize,
    /// Its record writes running now.
    writing: usize,
    /// A batch of its is running.
    batch: bool,
    /// When its last record write got its answer.
    write_answered: Option<Instant>,
    /// When its last batch got its answer.
    batch_answered: Option<Instant>,
}

/// One write key's turn.
#[derive(Default, Debug)]
struct Write {
    running: bool,
    answered: Option<Instant>,
}

/// Whether a job may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Now.
    Now,
    /// Not before this instant (the spacing after a write of its lane).
    At(Instant),
    /// Once a running job of its user ends.
    Later,
}

/// What [`Schedule::pick`] found.
pub(super) struct Picked<J> {
    /// The oldest job that may run now, taken out of the queue.
    pub(super) job: Option<Queued<J>>,
    /// Whether another queued job may run now too.
    pub(super) another: bool,
    /// The earliest instant a queued job waits for (the end of a spacing), if any.
    pub(super) at: Option<Instant>,
}

const SWEEP_MIN: usize = 64;

impl<J> Schedule<J> {
    /// A schedule giving one user at most `per_user` workers (at least 1) and spacing its
    /// writes of one collection by `spacing`.
    pub(super) fn new(per_user: usize, spacing: Duration) -> Schedule<J> {
        Schedule {
            queue: VecDeque::new(),
            users: HashMap::new(),
            writes: HashMap::new(),
            per_user: per_user.max(1),
            spacing,
            sweep_at: SWEEP_MIN,
        }
    }

    /// Queue a job; says whether it may run at once. `queued_at` is never earlier than the
    /// previous job's.
    pub(super) fn push(&mut self, lane: Lane, queued_at: Instant, job: J) -> Verdict {
        debug_assert!(self.queue.back().is_none_or(|q| q.queued_at <= queued_at));
        let verdict = self.verdict(&lane, queued_at);
        self.queue.push_back(Queued {
            lane,
            queued_at,
            job,
        });
        verdict
    }

    /// Take the oldest job that may run at `now`, and mark its lane running. `look_further`:
    /// also say whether another may run and when the next spacing ends (a full look at
    /// the queue, needed only when idle workers could take them).
    pub(super) fn pick(&mut self, now: Instant, look_further: bool) -> Picked<J> {
        let mut found = None;
        let mut another = false;
        let mut at: Option<Instant> = None;
        for (i, q) in self.queue.iter().enumerate() {
            match self.verdict(&q.lane, now) {
                Verdict::Now if found.is_none() => {
                    found = Some(i);
                    if !look_further {
                        break;
                    }
                }
                Verdict::Now => {
                    // Another job of the same user or write key may not run beside the
                    // one found (its user at its cap, the same collection): ask again
                    // once the first is marked running. Other lanes are independent.
                    let first = self.queue[found.unwrap_or(i)].lane;
                    let same_write = matches!(q.lane.writes, Writes::Collection(_))
                        && q.lane.writes == first.writes;
                    if q.lane.user != first.user && !same_write {
                        another = true;
                        break;
                    }
                }
                Verdict::At(t) => at = Some(at.map_or(t, |a| a.min(t))),
                Verdict::Later => {}
            }
        }
        let job = found.and_then(|i| self.queue.remove(i));
        if let Some(q) = &job {
            self.start(&q.lane);
            if look_further && !another {
                // Jobs of the same user as the one taken were left aside above.
                another = self
                    .queue
                    .iter()
                    .any(|o| self.verdict(&o.lane, now) == Verdict::Now);
            }
        }
        Picked { job, another, at }
    }

    /// A job of `lane` is over; its upstream answer arrived at `answered`.
    pub(super) fn done(&mut self, lane: &Lane, answered: Instant) {
        if let Some(user) = self.users.get_mut(&lane.user) {
            user.running = user.running.saturating_sub(1);
            match lane.writes {
                Writes::Nothing => {}
                Writes::Collection(_) => {
                    user.writing = user.writing.saturating_sub(1);
                    user.write_answered = user.write_answered.max(Some(answered));
                }
                Writes::All => {
                    user.batch = false;
                    user.batch_answered = Some(answered);
                }
            }
        }
        if let Writes::Collection(key) = lane.writes {
            let write = self.writes.entry(key).or_default();
            write.running = false;
            write.answered = Some(answered);
        }
        if self.users.len() + self.writes.len() >= self.sweep_at {
            let spacing = self.spacing;
            let recent = |t: &Option<Instant>| t.is_some_and(|t| answered < t + spacing);
            self.users.retain(|_, u| {
                u.running > 0 || recent(&u.write_answered) || recent(&u.batch_answered)
            });
            self.writes.retain(|_, w| w.running || recent(&w.answered));
            self.sweep_at = (2 * (self.users.len() + self.writes.len())).max(SWEEP_MIN);
        }
    }

    /// Take out the jobs queued at or before `before`, oldest first: a prefix of the queue,
    /// since jobs are queued in the order of their `queued_at` (the caller stamps them under
    /// one lock, with a monotonic clock).
    pub(super) fn take_queued_before(&mut self, before: Instant) -> Vec<Queued<J>> {
        let late = self.queue.partition_point(|q| q.queued_at <= before);
        self.queue.drain(..late).collect()
    }

    /// When the longest-queued job was queued.
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.queue.front().map(|q| q.queued_at)
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Users and write keys whose state is kept (for tests of the sweep).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.users.len() + self.writes.len()
    }

    fn verdict(&self, lane: &Lane, now: Instant) -> Verdict {
        let user = self.users.get(&lane.user);
        if user.is_some_and(|u| u.running >= self.per_user) {
            return Verdict::Later;
        }
        let batch = user.is_some_and(|u| u.batch);
        let batch_answered = user.and_then(|u| u.batch_answered);
        let last = match lane.writes {
            Writes::Nothing => return Verdict::Now,
            Writes::Collection(key) => {
                let write = self.writes.get(&key);
                if batch || write.is_some_and(|w| w.running) {
                    return Verdict::Later;
                }
                write.and_then(|w| w.answered).max(batch_answered)
            }
            Writes::All => {
                if batch || user.is_some_and(|u| u.writing > 0) {
                    return Verdict::Later;
                }
                user.and_then(|u| u.write_answered).max(batch_answered)
            }
        };
        match last.map(|t| t + self.spacing) {
            Some(t) if t > now => Verdict::At(t),
            _ => Verdict::Now,
        }
    }

    fn start(&mut self, lane: &Lane) {
        let user = self.users.entry(lane.user).or_default();
        user.running += 1;
        match lane.writes {
            Writes::Nothing => {}
            Writes::Collection(key) => {
                user.writing += 1;
                self.writes.entry(key).or_default().running = true;
            }
            Writes::All => user.batch = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Duration = Duration::from_millis(11);

    fn read(user: u64) -> Lane {
        Lane {
            user,
            writes: Writes::Nothing,
        }
    }

    fn write(user: u64, collection: u64) -> Lane {
        Lane {
            user,
            writes: Writes::Collection(collection),
        }
    }

    fn batch(user: u64) -> Lane {
        Lane {
            user,
            writes: Writes::All,
        }
    }

    /// The job taken at `now`, if any.
    fn take(s: &mut Schedule<&'static str>, now: Instant) -> Option<&'static str> {
        s.pick(now, true).job.map(|q| q.job)
    }

    #[test]
    fn a_user_over_its_share_waits_while_another_is_served() {
        let t0 = Instant::now();
        let mut s = Schedule::new(2, SPACING);
        for job in ["a1", "a2", "a3", "a4"] {
            s.push(read(1), t0, job);
        }
        assert_eq!(s.push(read(2), t0, "b1"), Verdict::Now);
        assert_eq!(take(&mut s, t0), Some("a1"));
        assert_eq!(take(&mut s, t0), Some("a2"));
        // User 1 holds its two workers: its older jobs wait, user 2's is served.
        assert_eq!(s.push(read(1), t0, "a5"), Verdict::Later);
        assert_eq!(take(&mut s, t0), Some("b1"));
        assert_eq!(take(&mut s, t0), None);
        // One of user 1's jobs ends: its oldest waiting one goes next.
        s.done(&read(1), t0);
        assert_eq!(take(&mut s, t0), Some("a3"));
        assert_eq!(take(&mut s, t0), None);
    }

    #[test]
    fn a_write_lane_is_never_dispatched_twice_at_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(4, SPACING);
        s.push(write(1, 7), t0, "w1");
        s.push(write(1, 7), t0, "w2");
        s.push(write(1, 8), t0, "other collection");
        s.push(read(1), t0, "read");
        s.push(write(2, 17), t0, "other user");
        assert_eq!(take(&mut s, t0), Some("w1"));
        // w2 waits for w1; the rest of the same user and the other user go by.
        assert_eq!(take(&mut s, t0), Some("other collection"));
        assert_eq!(take(&mut s, t0), Some("read"));
        assert_eq!(take(&mut s, t0), Some("other user"));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(take(&mut s, later), None, "w1 is still running");
        s.done(&write(1, 7), later);
        // Its answer has just arrived: the next write waits one spacing...
        let p = s.pick(later, true);
        assert!(p.job.is_none());
        assert_eq!(p.at, Some(later + SPACING));
        assert_eq!(
            take(&mut s, later + SPACING - Duration::from_millis(1)),
            None
        );
        // ...then goes.
        assert_eq!(take(&mut s, later + SPACING), Some("w2"));
    }

    #[test]
    fn writes_are_spaced_from_the_previous_answer_not_its_start() {
        let t0 = Instant::now();
        let mut s = Schedule::new(4, SPACING);
        s.push(write(1, 7), t0, "w1");
        assert_eq!(take(&mut s, t0), Some("w1"));
        let answered = t0 + Duration::from_millis(500);
        s.done(&write(1, 7), answered);
        assert_eq!(
            s.push(write(1, 7), answered, "w2"),
            Verdict::At(answered + SPACING)
        );
        assert_eq!(take(&mut s, answered + Duration::from_millis(5)), None);
        assert_eq!(take(&mut s, answered + SPACING), Some("w2"));
        // A write of another collection never waited.
        s.done(&write(1, 7), answered + SPACING);
        assert_eq!(s.push(write(1, 9), answered + SPACING, "w3"), Verdict::Now);
    }

    #[test]
    fn a_batch_excludes_every_write_of_its_user() {
        let t0 = Instant::now();
        let mut s = Schedule::new(4, SPACING);
        s.push(write(1, 7), t0, "w1");
        s.push(batch(1), t0, "batch");
        s.push(write(1, 8), t0, "w2");
        s.push(read(1), t0, "read");
        s.push(batch(2), t0, "other user's batch");
        assert_eq!(take(&mut s, t0), Some("w1"));
        // The batch waits for w1; w2 (another collection) may go meanwhile.
        assert_eq!(take(&mut s, t0), Some("w2"));
        assert_eq!(take(&mut s, t0), Some("read"));
        assert_eq!(take(&mut s, t0), Some("other user's batch"));
        assert_eq!(take(&mut s, t0), None);
        s.done(&write(1, 7), t0);
        s.done(&write(1, 8), t0);
        assert_eq!(take(&mut s, t0), None, "one spacing after the writes");
        assert_eq!(take(&mut s, t0 + SPACING), Some("batch"));
        // While it runs, no write of its user starts, in any collection.
        assert_eq!(s.push(write(1, 9), t0 + SPACING, "w3"), Verdict::Later);
        assert_eq!(s.push(read(1), t0 + SPACING, "read 2"), Verdict::Now);
        assert_eq!(take(&mut s, t0 + SPACING), Some("read 2"));
        let end = t0 + Duration::from_secs(1);
        s.done(&batch(1), end);
        assert_eq!(take(&mut s, end), None);
        assert_eq!(take(&mut s, end + SPACING), Some("w3"));
    }

    #[test]
    fn pick_says_whether_idle_workers_have_work_and_when() {
        let t0 = Instant::now();
        let mut s = Schedule::new(1, SPACING);
        s.push(read(1), t0, "a1");
        s.push(read(1), t0, "a2");
        s.push(read(2), t0, "b1");
        let p = s.pick(t0, true);
        assert_eq!(p.job.map(|q| q.job), Some("a1"));
        // a2 waits for a1 (one worker per user), b1 may go.
        assert!(p.another);
        let p = s.pick(t0, true);
        assert_eq!(p.job.map(|q| q.job), Some("b1"));
        assert!(!p.another);
        assert_eq!(p.at, None);
    }

    #[test]
    fn another_job_of_the_same_user_counts_once_it_may_run_beside() {
        let t0 = Instant::now();
        let mut s = Schedule::new(2, SPACING);
        s.push(read(1), t0, "a1");
        s.push(read(1), t0, "a2");
        let p = s.pick(t0, true);
        assert_eq!(p.job.map(|q| q.job), Some("a1"));
        assert!(p.another, "a second worker may take a2");
        let p = s.pick(t0, true);
        assert_eq!(p.job.map(|q| q.job), Some("a2"));
        assert!(!p.another);
    }

    #[test]
    fn late_jobs_come_out_in_order_whatever_their_lane() {
        let t0 = Instant::now();
        let mut s = Schedule::new(1, SPACING);
        s.push(read(1), t0, "a1");
        assert_eq!(take(&mut s, t0), Some("a1"));
        let t1 = t0 + Duration::from_millis(10);
        s.push(read(1), t0, "a2");
        s.push(read(2), t1, "b1");
        s.push(read(1), t1 + Duration::from_millis(1), "a3");
        assert_eq!(s.oldest(), Some(t0));
        let late: Vec<_> = s
            .take_queued_before(t1)
            .into_iter()
            .map(|q| q.job)
            .collect();
        assert_eq!(late, ["a2", "b1"]);
        assert_eq!(s.oldest(), Some(t1 + Duration::from_millis(1)));
    }

    #[test]
    fn the_state_of_idle_users_is_swept() {
        let t0 = Instant::now();
        let mut s = Schedule::new(1, SPACING);
        for user in 1..=1000u32 {
            // Each user writes once, two spacings after the previous one: only the last
            // one's state is still needed.
            let t = t0 + 2 * SPACING * user;
            let lane = write(user.into(), (user + 5000).into());
            s.push(lane, t, "w");
            assert!(take(&mut s, t).is_some());
            s.done(&lane, t);
            assert!(
                s.kept() <= SWEEP_MIN,
                "{} users and write keys kept",
                s.kept()
            );
        }
    }

    /// A token's first write runs in the lane of its token, the next one in the lane of
    /// its account (once the credentials cache knows it): they still wait for each other.
    #[test]
    fn a_write_key_waits_for_itself_across_user_lanes() {
        let t0 = Instant::now();
        let mut s = Schedule::new(4, SPACING);
        s.push(write(1, 7), t0, "by token");
        assert_eq!(take(&mut s, t0), Some("by token"));
        assert_eq!(s.push(write(2, 7), t0, "by account"), Verdict::Later);
        assert_eq!(take(&mut s, t0), None);
        s.done(&write(1, 7), t0);
        assert_eq!(take(&mut s, t0), None);
        assert_eq!(take(&mut s, t0 + SPACING), Some("by account"));
    }
}
