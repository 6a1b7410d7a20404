//! Batched writes: the consecutive record writes of one `POST /v1/batch` to one user's
//! collection collapse into multi-record Sync calls, with every sub-response exactly what
//! the one-by-one path answers.
//!
//! One record per paced Sync call caps a user's collection at about 80 writes a second
//! (the node refuses two writes of a user to a collection in one 10 ms tick). Kinto.js
//! pushes a whole sync as batches of writes to one collection; collapsed, a batch of 100
//! is one read and one or two writes.
//!
//! **Segments.** A segment is a run of consecutive sub-requests that are record PUTs or
//! DELETEs (no query string) of one user (the same credential headers and User-Agent),
//! bucket and collection, the collection's writes enabled and not `crypto` (the node
//! checks every record of a POST there and refuses the whole POST for one), with ids that
//! an `ids=` list can address (no `,`, no leading or trailing space), all distinct (a
//! second write to an id starts a new segment, so the order of writes to one record
//! holds), no DELETE with `If-None-Match` (for a record expired but still stored the
//! node answers 412, which no read can tell), at most [`MAX_IDS`] writes and about 4 KB
//! of ids in the query, and answers that fit the batch's. Sub-requests answered without
//! any upstream call (a disabled write, bad credentials, a bad body or precondition
//! header) are answered in place and don't end a segment. A segment of a single write
//! runs one by one, as does everything else.
//!
//! **A segment**, holding the collection's write gate ([`Storage::session`]):
//! 1. read the records: `GET /storage/{c}?ids=…&full=1`; its `X-Last-Modified` is the
//!    *collection's* timestamp T;
//! 2. decide each write from what was read, with the same [`decide`] as the one-by-one
//!    path: answer the refusals (412, 404) at once;
//! 3. `DELETE /storage/{c}?ids=…` and `POST /storage/{c}` (cut to the node's limits) with
//!    `X-If-Unmodified-Since: T`: the node checks it against the collection after taking
//!    the collection's lock, so a write succeeds only if nothing reached the collection
//!    since the read, and every decision still holds;
//! 4. after a POST that created records, read them back (see F6 below).
//!
//! **Answers** (the node's → the sub-requests'): success → the write's answer, built as
//! the one-by-one path builds it (all records of one call share their `last_modified`, as
//! Firefox's own uploads do); 412 (the collection moved) → read again, at most twice
//! more, then one by one; a record the node lists in `failed`, or in neither list, was not
//! written → one by one (which gives today's answer, e.g. the 400 for an oversized
//! payload); a 400 for the whole call (excluded by the planning: a bug) → one by one; a
//! conflict 503 is repeated by the pacer within `write_conflict_budget_ms`, past it every
//! write not yet answered gets it; a 401 fetches a fresh token once (nothing was
//! written); a failure whose fate is unknown (timeout, dropped connection, an unusable
//! answer) is never repeated and is the answer of every write it covered; any other
//! status is the answer of every write not yet answered. Past the batch's deadline no
//! new call starts (the writes not made get 503), except the read-back of records a POST
//! just created, which completes their answers. One by one means through `dispatch`,
//! after the segment let go of the write gate, in batch order.
//!
//! **Races** (each one exists on the one-by-one path too, unless said):
//! - (a) a whole-collection delete between the read and the write: the collection's
//!   timestamp reads 0 and the write goes through, re-creating records an `If-Match`
//!   named; the one-by-one path's read-then-write has the same window;
//! - (b) a user's first write to a collection (or the first after it was deleted)
//!   racing another device's: there is no collection row to lock, so neither sees the
//!   other; the same for one PUT;
//! - (c, F6, the only new one) a record expired but still stored, under a create-only
//!   precondition: the read does not see it, the POST's merge updates the invisible row
//!   (not its expiry) and lists it in `success`, while the one-by-one PUT gets 412. So
//!   after a POST that created records they are read back: present → 201; missing while
//!   the collection's timestamp is still the POST's (nothing else wrote since) → the
//!   expired row → 412 without `existing`, as one by one (its `ETag`, the expired
//!   record's timestamp, can't be reproduced); missing after the collection moved on →
//!   another device may have deleted it in between → 201 (a done write is never hidden),
//!   counted in `batch.collapse.unverified`;
//! - (d) a ttl expiring between the read and the write: as one by one.

use super::error::Error;
use super::precondition::{Decision, Known, Method, Since, decide};
use super::query::{Precondition, QUERY_VALUE};
use super::records::{self, WriteRequest};
use super::route::{Route, Routed, route};
use super::translate::rewrite_list;
use super::{App, Memo, Request, Response, Work, work};
use crate::app::CallError;
use crate::auth;
use crate::sync15::limits::{Limits, MAX_IDS};
use crate::sync15::storage::{Call, Session};
use crate::sync15::{self, Reply, Upstream, timestamp};
use percent_encoding::utf8_percent_encode;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Most bytes of ids in one `ids=` query: front-end proxies often cap a request line at
/// 8 KiB (nginx's default), so the ids stay well below. 100 Kinto.js ids (UUIDs) take
/// about 3.7 KB.
const MAX_QUERY_IDS_BYTES: usize = 4096;

/// Reads of a segment's records at most (the first and two more after a 412).
const MAX_READS: usize = 3;

/// One record write of a segment.
struct Write {
    /// Its position in the segment.
    at: usize,
    method: Method,
    id: String,
    pre: Precondition,
    /// A PUT's Sync fields.
    fields: Option<Map<String, Value>>,
    state: State,
}

enum State {
    /// Not answered yet.
    Pending,
    /// To run one by one after the segment.
    OneByOne,
    /// Answered.
    Done(Result<Response, Error>),
}

/// A segment found by [`plan`]: the sub-requests it spans and its writes.
pub(super) struct Segment {
    /// Sub-requests from the first (its first write) to its last write.
    pub(super) len: usize,
    writes: Vec<Write>,
}

/// Who a write is for and where it goes: writes of one segment share it.
#[derive(PartialEq, Eq)]
struct Target<'r> {
    authorization: Option<&'r str>,
    key_id: Option<&'r str>,
    client_state: Option<&'r str>,
    user_agent: Option<&'r str>,
    bucket: String,
    collection: String,
}

enum Member<'r> {
    /// A record write that can be collapsed.
    Write(Box<(Target<'r>, Write)>),
    /// Answered without any upstream call.
    Local,
    /// Anything else: ends a segment.
    Other,
}

/// The segment starting at `subs[0]`, if it holds two writes or more; `room`: the bytes
/// left in the batch's answer (a segment's bodies take at most half of it, so its answers
/// fit as the one-by-one path's "a write whose answer could not fit is not run" rule
/// wants).
pub(super) fn plan(app: &App, subs: &[Request<'_>], room: usize) -> Option<Segment> {
    if !app.config.batch_collapse {
        return None;
    }
    let mut target = None;
    let mut ids = HashSet::new();
    let mut writes = Vec::new();
    let mut query = 0;
    let mut bodies = 0;
    let mut len = 0;
    for (at, sub) in subs.iter().enumerate() {
        match member(app, sub, at) {
            Member::Local if !writes.is_empty() => continue,
            Member::Write(tw) => {
                let (t, w) = *tw;
                if target.as_ref().is_some_and(|first| *first != t)
                    || ids.contains(&w.id)
                    || writes.len() == MAX_IDS
                {
                    break;
                }
                // Its bytes as the query carries it (percent-encoded), and a comma.
                let q = utf8_percent_encode(&w.id, QUERY_VALUE)
                    .map(str::len)
                    .sum::<usize>()
                    + 1;
                let b = sub.body.len();
                if query + q > MAX_QUERY_IDS_BYTES || 2 * (bodies + b) > room {
                    break;
                }
                query += q;
                bodies += b;
                ids.insert(w.id.clone());
                target.get_or_insert(t);
                writes.push(w);
                len = at + 1;
            }
            _ => break,
        }
    }
    (writes.len() >= 2).then_some(Segment { len, writes })
}

fn member<'r>(app: &App, sub: &'r Request<'_>, at: usize) -> Member<'r> {
    if !matches!(sub.method, "PUT" | "DELETE") || !sub.query.is_empty() {
        return Member::Other;
    }
    let Ok(Routed::To(route)) = route(sub.path) else {
        return Member::Other;
    };
    let Route::Record(bucket, coll, id) = &route else {
        return Member::Other;
    };
    match work(app, sub, &route) {
        Work::Upstream { .. } => {}
        Work::Refused(_) => return Member::Local,
        Work::Local => return Member::Other,
    }
    let WriteRequest { pre, fields } = match records::write_request(sub, coll, id) {
        Ok(w) => w,
        Err(_) => return Member::Local,
    };
    let method = match sub.method {
        "PUT" => Method::Put,
        _ => Method::Delete,
    };
    let collection = coll.to_ascii_lowercase();
    let addressable = !id.contains(',') && id.trim() == id.as_ref();
    let delete_none_match = method == Method::Delete
        && matches!(pre, Precondition::Absent | Precondition::NoneMatch(_));
    if collection == "crypto" || !addressable || delete_none_match {
        return Member::Other;
    }
    let target = Target {
        authorization: sub.header("authorization"),
        key_id: sub.header("x-keyid"),
        client_state: sub.header("x-client-state"),
        user_agent: sub.header("user-agent"),
        bucket: bucket.clone().into_owned(),
        collection,
    };
    let write = Write {
        at,
        method,
        id: id.clone().into_owned(),
        pre,
        fields,
        state: State::Pending,
    };
    Member::Write(Box::new((target, write)))
}

/// Run a segment planned over `subs` (its `len` sub-requests); one answer per
/// sub-request, in order.
pub(super) fn run(
    app: &App,
    subs: &[Request<'_>],
    segment: Segment,
    memo: &mut Memo,
) -> Vec<Response> {
    let subs = &subs[..segment.len];
    let mut answers: Vec<Option<Response>> = (0..subs.len()).map(|_| None).collect();
    let mut writes = segment.writes;
    let first = &subs[writes[0].at];
    // `plan` only makes segments of record writes of an identified user; were it
    // otherwise, each sub-request runs one by one.
    let (bucket, collection) = match route(first.path) {
        Ok(Routed::To(Route::Record(b, c, _))) => (b, c.to_ascii_lowercase()),
        _ => (Default::default(), String::new()),
    };
    let who = auth::identify(
        first.header("authorization"),
        first.header("x-keyid"),
        first.header("x-client-state"),
        &bucket,
    );
    let metrics = &app.metrics;
    if let (Ok(who), false) = (who, collection.is_empty()) {
        metrics.incr("batch.collapse.segments");
        let ua = super::user_agent(first);
        let mut runner = Runner {
            app,
            collection: &collection,
            ua: &ua,
            deadline: memo.deadline,
            writes: &mut writes,
            reads: 0,
        };
        let done = app.with_storage(&who, &ua, memo, |storage, creds| {
            storage
                .session(creds, &collection, |s| runner.attempts(s))
                .and_then(|attempts| attempts)
        });
        if let Err(e) = done {
            for w in writes.iter_mut() {
                if let State::Pending = w.state {
                    w.state = State::Done(Err(call_error(&e)));
                }
            }
        }
    } else {
        for w in writes.iter_mut() {
            w.state = State::OneByOne;
        }
    }
    for w in writes {
        let sub = &subs[w.at];
        answers[w.at] = match w.state {
            State::Done(result) => {
                let routed = route(sub.path).ok();
                match routed {
                    Some(Routed::To(r)) => Some(super::answer(app, sub, &r, || result)),
                    _ => None,
                }
            }
            State::Pending | State::OneByOne => {
                metrics.incr("batch.collapse.one_by_one");
                None
            }
        };
    }
    // What is left: answered without upstream calls, or one by one, in batch order.
    subs.iter()
        .zip(answers)
        .map(|(sub, answer)| answer.unwrap_or_else(|| super::dispatch(app, sub, memo).0))
        .collect()
}

/// The error of a [`CallError`] for each write it stands for.
fn call_error(e: &CallError) -> Error {
    match e {
        CallError::Upstream(u) => Error::Upstream(u.clone()),
        CallError::TooManyTokenCalls => Error::from(CallError::TooManyTokenCalls),
        CallError::HeldBack(wait) => Error::from(CallError::HeldBack(*wait)),
    }
}

/// A failure that leaves a write's fate unknown: never repeated.
fn unknown_fate(e: &sync15::Error) -> bool {
    matches!(
        e,
        sync15::Error::Timeout(..)
            | sync15::Error::Unreachable(..)
            | sync15::Error::Tls(..)
            | sync15::Error::BadAnswer(..)
            | sync15::Error::TooLarge(..)
    )
}

fn status_of(e: &sync15::Error) -> Option<u16> {
    match e {
        sync15::Error::Status(_, r) => Some(r.status),
        _ => None,
    }
}

/// The segment's records as read.
struct Snapshot {
    /// The read's answer, its body dropped.
    reply: Reply,
    /// The collection's timestamp (ms).
    collection: u64,
    /// Each record present: its `last_modified` and Kinto JSON.
    records: HashMap<String, (u64, Value)>,
}

struct Runner<'a> {
    app: &'a App,
    collection: &'a str,
    ua: &'a str,
    deadline: Option<Instant>,
    writes: &'a mut Vec<Write>,
    reads: usize,
}

/// What a phase of an attempt leaves to do.
enum Next {
    /// Go on.
    Go,
    /// Read the records again and decide again.
    ReadAgain,
    /// The segment is over.
    Stop,
}

impl Runner<'_> {
    /// The attempts of a segment inside its session: `Err` only for a 401 (nothing
    /// written; the caller fetches a fresh token and runs them again for what is left).
    fn attempts(&mut self, s: &mut Session<'_, '_>) -> Result<(), sync15::Error> {
        loop {
            let pending = self.pending();
            if pending.is_empty() {
                return Ok(());
            }
            if self.reads == MAX_READS {
                self.app.metrics.incr("batch.collapse.stale");
                self.set(&pending, || None);
                return Ok(());
            }
            if self.out_of_time(&pending) {
                return Ok(());
            }
            self.reads += 1;
            let snapshot = match self.read(s, &pending) {
                Ok(snap) => snap,
                Err(e) if status_of(&e) == Some(401) => return Err(e),
                // Larger than Syncto reads, or not understood: one by one reads each.
                Err(sync15::Error::TooLarge(..) | sync15::Error::BadAnswer(..)) => {
                    self.set(&pending, || None);
                    return Ok(());
                }
                Err(e) => {
                    self.set(&pending, || Some(Err(Error::Upstream(e.clone()))));
                    return Ok(());
                }
            };
            let mut deletes = Vec::new();
            let mut puts = Vec::new();
            for &i in &pending {
                let w = &mut self.writes[i];
                let known = Known::of(snapshot.records.get(&w.id));
                w.state = match (w.method, decide(w.method, w.pre, known)) {
                    (Method::Delete, Decision::Send { since, .. }) if since != Since::Absent => {
                        deletes.push(i);
                        State::Pending
                    }
                    (Method::Put, Decision::Send { creates, .. }) => {
                        puts.push((i, creates));
                        State::Pending
                    }
                    (_, Decision::Send { .. } | Decision::Read) => State::OneByOne,
                    (_, refused) => {
                        State::Done(Err(records::refusal(refused, &w.id, &snapshot.reply)))
                    }
                };
            }
            let hook = crate::concurrency::lock(&self.app.collapse_hook).clone();
            if let Some(hook) = hook {
                hook(self.collection);
            }
            let mut since = snapshot.collection;
            drop(snapshot);
            match self.delete(s, &deletes, &puts, &mut since)? {
                Next::Go => {}
                Next::ReadAgain => continue,
                Next::Stop => return Ok(()),
            }
            match self.post(s, &puts, since)? {
                Next::ReadAgain => continue,
                Next::Go | Next::Stop => return Ok(()),
            }
        }
    }

    fn pending(&self) -> Vec<usize> {
        (0..self.writes.len())
            .filter(|&i| matches!(self.writes[i].state, State::Pending))
            .collect()
    }

    /// Answer the writes `which`: `Some(result)`, or `None` for one by one.
    fn set(&mut self, which: &[usize], answer: impl Fn() -> Option<Result<Response, Error>>) {
        for &i in which {
            self.writes[i].state = match answer() {
                Some(result) => State::Done(result),
                None => State::OneByOne,
            };
        }
    }

    /// Past the batch's deadline, the writes `which` are answered that nothing was written
    /// for them: no new call starts.
    fn out_of_time(&mut self, which: &[usize]) -> bool {
        if self.deadline.is_none_or(|d| Instant::now() < d) {
            return false;
        }
        let seconds = self.app.config.batch_timeout.as_secs();
        self.set(which, || Some(Err(Error::BatchTimeUp(seconds))));
        true
    }

    fn call<'c>(
        &'c self,
        method: &'static str,
        path: &'c str,
        headers: &'c [(&'static str, String)],
        body: Option<&'c [u8]>,
        metric: &'static str,
    ) -> Call<'c> {
        Call {
            method,
            path,
            collection: (method != "GET").then_some(self.collection),
            headers,
            body,
            user_agent: self.ua,
            metric,
        }
    }

    /// `/storage/{c}?ids=…` of the writes `which`.
    fn ids_path(&self, which: impl Iterator<Item = usize>) -> String {
        let mut path = format!("/storage/{}?ids=", self.collection);
        for (n, i) in which.enumerate() {
            if n > 0 {
                path.push(',');
            }
            path.extend(utf8_percent_encode(&self.writes[i].id, QUERY_VALUE));
        }
        path
    }

    /// Read the records of the writes `which`.
    fn read(&self, s: &mut Session<'_, '_>, which: &[usize]) -> Result<Snapshot, sync15::Error> {
        let mut path = self.ids_path(which.iter().copied());
        path.push_str("&full=1");
        let mut reply = s.read(&self.call("GET", &path, &[], None, "snapshot_records"))?;
        read_records(&mut reply)
    }

    /// The deletes of an attempt, as one `DELETE ?ids=`; `since` becomes its timestamp.
    fn delete(
        &mut self,
        s: &mut Session<'_, '_>,
        deletes: &[usize],
        puts: &[(usize, bool)],
        since: &mut u64,
    ) -> Result<Next, sync15::Error> {
        if deletes.is_empty() {
            return Ok(Next::Go);
        }
        let later: Vec<usize> = deletes
            .iter()
            .copied()
            .chain(puts.iter().map(|p| p.0))
            .collect();
        if self.out_of_time(&later) {
            return Ok(Next::Stop);
        }
        let path = self.ids_path(deletes.iter().copied());
        let headers = [unmodified_since(*since)];
        let call = self.call("DELETE", &path, &headers, None, "delete_records");
        match s.write(&call) {
            Ok(reply) => {
                let deleted = deleted_at(&reply);
                for &i in deletes {
                    let w = &mut self.writes[i];
                    w.state = State::Done(match deleted {
                        Some(t) => Ok(records::deleted(&w.id, t, &reply)),
                        None => Err(no_timestamp("DELETE")),
                    });
                }
                match deleted {
                    Some(t) => {
                        *since = t;
                        Ok(Next::Go)
                    }
                    // Deleted, but when is unknown: read again for the rest.
                    None => Ok(Next::ReadAgain),
                }
            }
            Err(e) => self.failed(e, deletes, &later),
        }
    }

    /// What a failed write call leaves: `covered` are the writes it carried, `later` all
    /// those not answered yet (`covered` among them). `Err` for a 401: nothing written,
    /// the caller fetches a fresh token.
    fn failed(
        &mut self,
        e: sync15::Error,
        covered: &[usize],
        later: &[usize],
    ) -> Result<Next, sync15::Error> {
        Ok(match status_of(&e) {
            Some(401) => return Err(e),
            // Nothing written: the collection moved since the read.
            Some(412) => {
                self.app.metrics.incr("batch.collapse.stale_read");
                Next::ReadAgain
            }
            // Nothing written: the planning let through what the node refuses whole.
            Some(400) => {
                log::error!("sync node refused a collapsed write whole: {e}");
                self.set(covered, || None);
                Next::Go
            }
            _ if unknown_fate(&e) => {
                // Never repeated; the writes not sent are read again.
                self.set(covered, || Some(Err(Error::Upstream(e.clone()))));
                Next::ReadAgain
            }
            // A conflict past the budget, a busy gate, 413, 415, 429, 5xx: nothing written,
            // and the same for every write not sent yet.
            _ => {
                self.set(later, || Some(Err(Error::Upstream(e.clone()))));
                Next::Stop
            }
        })
    }

    /// The PUTs of an attempt as POSTs within the node's limits, each conditional on the
    /// collection's timestamp `since` (then on the previous POST's).
    fn post(
        &mut self,
        s: &mut Session<'_, '_>,
        puts: &[(usize, bool)],
        mut since: u64,
    ) -> Result<Next, sync15::Error> {
        if puts.is_empty() {
            return Ok(Next::Go);
        }
        let all: Vec<usize> = puts.iter().map(|p| p.0).collect();
        if self.out_of_time(&all) {
            return Ok(Next::Stop);
        }
        let limits = s.limits(self.ua);
        let bsos: Vec<Vec<u8>> = puts.iter().map(|&(i, _)| self.bso(i)).collect();
        let payloads: Vec<usize> = puts.iter().map(|&(i, _)| self.payload_len(i)).collect();
        let (chunks, alone) = chunks(&bsos, &payloads, &limits);
        let alone: Vec<usize> = alone.into_iter().map(|k| puts[k].0).collect();
        self.set(&alone, || None);
        for (n, chunk) in chunks.iter().enumerate() {
            let covered: Vec<usize> = chunk.iter().map(|&k| puts[k].0).collect();
            let later: Vec<usize> = chunks[n..].iter().flatten().map(|&k| puts[k].0).collect();
            if self.out_of_time(&later) {
                return Ok(Next::Stop);
            }
            let mut body = Vec::with_capacity(chunk.iter().map(|&k| bsos[k].len() + 1).sum());
            body.push(b'[');
            for (m, &k) in chunk.iter().enumerate() {
                if m > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&bsos[k]);
            }
            body.push(b']');
            let headers = [unmodified_since(since)];
            let path = format!("/storage/{}", self.collection);
            let call = self.call("POST", &path, &headers, Some(&body), "post_records");
            let reply = match s.write(&call) {
                Ok(reply) => reply,
                Err(e) => match self.failed(e, &covered, &later)? {
                    Next::Go => continue,
                    next => return Ok(next),
                },
            };
            let Some(posted) = Posted::parse(&reply.body) else {
                // Written or not, nobody knows: never repeated.
                self.set(&covered, || Some(Err(no_timestamp("POST"))));
                return Ok(Next::ReadAgain);
            };
            let mut created = Vec::new();
            for &k in chunk {
                let (i, creates) = puts[k];
                if !posted.success.contains(self.writes[i].id.as_str()) {
                    // Listed in `failed`, or nowhere: not written.
                    self.writes[i].state = State::OneByOne;
                    continue;
                }
                if creates {
                    created.push(i);
                }
                let w = &mut self.writes[i];
                let fields = w.fields.take().unwrap_or_default();
                let answer = records::written(&w.id, fields, posted.modified, creates, &reply);
                w.state = State::Done(Ok(answer));
            }
            self.verify(s, &created, posted.modified, &reply);
            since = posted.modified;
        }
        Ok(Next::Go)
    }

    /// The BSO of a PUT as a POST carries it: `id` and its fields.
    fn bso(&self, i: usize) -> Vec<u8> {
        let w = &self.writes[i];
        let mut bso = Map::with_capacity(4);
        bso.insert("id".into(), Value::String(w.id.clone()));
        if let Some(fields) = &w.fields {
            bso.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        serde_json::to_vec(&bso).unwrap_or_default()
    }

    fn payload_len(&self, i: usize) -> usize {
        self.writes[i]
            .fields
            .as_ref()
            .and_then(|f| f.get("payload"))
            .and_then(Value::as_str)
            .map_or(0, str::len)
    }

    /// F6: the records a POST created, read back (even past the deadline: this completes
    /// the answers of writes made). See the module doc, race (c).
    fn verify(&mut self, s: &mut Session<'_, '_>, created: &[usize], modified: u64, post: &Reply) {
        if created.is_empty() {
            return;
        }
        let mut path = self.ids_path(created.iter().copied());
        path.push_str("&full=1");
        let read = s
            .read(&self.call("GET", &path, &[], None, "snapshot_records"))
            .and_then(|mut reply| read_records(&mut reply));
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                log::info!("{e}: records a batch created could not be read back");
                self.app.metrics.incr("batch.collapse.unverified");
                return;
            }
        };
        for &i in created {
            if read.records.contains_key(&self.writes[i].id) {
                continue;
            }
            if read.collection == modified {
                // Nothing wrote since the POST: it merged into a record expired but still
                // stored, which stays invisible. One by one answers 412.
                self.app.metrics.incr("batch.collapse.expired");
                let reply = Reply {
                    status: 412,
                    quota_remaining: post.quota_remaining.clone(),
                    alert: post.alert.clone(),
                    backoff: post.backoff.clone(),
                    ..Reply::default()
                };
                self.writes[i].state =
                    State::Done(Err(Error::PreconditionFailed(None, Some(Box::new(reply)))));
            } else {
                // Another write came after: perhaps a delete of this record. Ours was
                // made, and is answered so.
                self.app.metrics.incr("batch.collapse.unverified");
            }
        }
    }
}

/// `X-If-Unmodified-Since` at a collection timestamp (ms, a whole tick).
fn unmodified_since(ms: u64) -> (&'static str, String) {
    ("X-If-Unmodified-Since", timestamp::ms_to_seconds(ms))
}

fn no_timestamp(what: &str) -> Error {
    Error::Upstream(sync15::Error::BadAnswer(
        Upstream::Storage,
        format!("{what} answer has no timestamp"),
    ))
}

/// A `DELETE ?ids=` answer's timestamp: its body (the bare timestamp), else its
/// `X-Last-Modified`.
fn deleted_at(reply: &Reply) -> Option<u64> {
    std::str::from_utf8(&reply.body)
        .ok()
        .and_then(|b| timestamp::seconds_to_ms(b.trim()))
        .or(reply.last_modified)
}

/// A read of records by id: the records present and the collection's timestamp.
fn read_records(reply: &mut Reply) -> Result<Snapshot, sync15::Error> {
    let bad = |why: String| sync15::Error::BadAnswer(Upstream::Storage, why);
    let collection = reply
        .last_modified
        .ok_or_else(|| bad("records read without X-Last-Modified".into()))?;
    let body = std::mem::take(&mut reply.body);
    let mut kinto = Vec::with_capacity(body.len() + body.len() / 16 + 64);
    rewrite_list(&body, &[], None, &mut kinto).map_err(bad)?;
    drop(body);
    let list: Vec<Value> =
        serde_json::from_slice(&kinto).map_err(|_| bad("records list".into()))?;
    drop(kinto);
    let mut records = HashMap::with_capacity(list.len());
    for record in list {
        let id = record["id"].as_str().map(str::to_owned);
        let lm = record["last_modified"].as_u64();
        let (Some(id), Some(lm)) = (id, lm) else {
            return Err(bad("record without id or modified".into()));
        };
        records.insert(id, (lm, record));
    }
    Ok(Snapshot {
        reply: std::mem::take(reply),
        collection,
        records,
    })
}

/// A POST's answer: `{"modified", "success": [ids], "failed": {id: why}}`.
struct Posted {
    modified: u64,
    success: HashSet<String>,
}

impl Posted {
    fn parse(body: &[u8]) -> Option<Posted> {
        #[derive(serde::Deserialize)]
        struct Answer<'a> {
            #[serde(borrow)]
            modified: &'a RawValue,
            success: Vec<String>,
        }
        let a: Answer<'_> = serde_json::from_slice(body).ok()?;
        Some(Posted {
            modified: timestamp::seconds_to_ms(a.modified.get())?,
            success: a.success.into_iter().collect(),
        })
    }
}

/// Cut BSOs (serialized, with their payload sizes) into POSTs within `limits`, in order:
/// at most `max_post_records` each, their payloads within `max_post_bytes`, the body
/// (`[` BSOs `,` … `]`) within `max_request_bytes`. Returns the POSTs (indices) and the
/// BSOs no POST can carry (their payload over `max_record_payload_bytes`, or too large
/// alone), which go one by one.
fn chunks(bsos: &[Vec<u8>], payloads: &[usize], limits: &Limits) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut alone = Vec::new();
    let (mut body, mut payload) = (0, 0);
    for (k, (bso, &p)) in bsos.iter().zip(payloads).enumerate() {
        let size = bso.len() + 1;
        if p > limits.max_record_payload_bytes
            || p > limits.max_post_bytes
            || size + 1 > limits.max_request_bytes
        {
            alone.push(k);
            continue;
        }
        let fits = out.last().is_some_and(|c| {
            c.len() < limits.max_post_records
                && payload + p <= limits.max_post_bytes
                && body + size <= limits.max_request_bytes
        });
        if fits {
            if let Some(c) = out.last_mut() {
                c.push(k);
            }
            payload += p;
            body += size;
        } else {
            out.push(vec![k]);
            // `[` and `]` for a comma each BSO but one carries.
            payload = p;
            body = size + 1;
        }
    }
    (out, alone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(records: usize, bytes: usize, request: usize, record: usize) -> Limits {
        Limits {
            max_post_records: records,
            max_post_bytes: bytes,
            max_request_bytes: request,
            max_record_payload_bytes: record,
        }
    }

    #[test]
    fn posts_are_cut_to_the_limits() {
        let bso = |n: usize| vec![b'x'; n];
        // 250 small records, 100 per POST.
        let bsos: Vec<Vec<u8>> = (0..250).map(|_| bso(10)).collect();
        let (c, alone) = chunks(&bsos, &[5; 250], &Limits::default());
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        assert!(alone.is_empty());
        assert_eq!(c.concat(), (0..250).collect::<Vec<_>>());
        // Payload bytes: 3 of 40 per POST of at most 100.
        let (c, _) = chunks(&bsos[..7], &[40; 7], &limits(100, 100, 10_000, 100));
        assert_eq!(c, [vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]);
        // Body bytes: `[` + 10 + `,` + 10 + `]` = 23 fits 23, not 22.
        let (c, _) = chunks(&bsos[..2], &[1; 2], &limits(100, 100, 23, 100));
        assert_eq!(c, [vec![0, 1]]);
        let (c, _) = chunks(&bsos[..2], &[1; 2], &limits(100, 100, 22, 100));
        assert_eq!(c, [vec![0], vec![1]]);
        // A record over the record limit, or too large alone, goes one by one; the others
        // keep their order around it.
        let bsos = vec![bso(10), bso(50), bso(10), bso(29)];
        let (c, alone) = chunks(&bsos, &[1, 1, 60, 1], &limits(100, 100, 31, 50));
        assert_eq!(alone, [1, 2]);
        assert_eq!(c, [vec![0], vec![3]]);
        // At the limits: a payload of exactly max_record_payload_bytes and max_post_bytes is
        // carried; one over max_post_bytes (within the record limit) goes alone; a BSO whose
        // `[` … `]` is exactly max_request_bytes is carried, one byte more goes alone.
        let (c, alone) = chunks(&[bso(10)], &[50], &limits(100, 50, 1000, 50));
        assert_eq!((c, alone), (vec![vec![0]], vec![]));
        let bsos = vec![bso(10), bso(10), bso(29), bso(30)];
        let (c, alone) = chunks(&bsos, &[50, 51, 1, 1], &limits(100, 50, 31, 100));
        assert_eq!(c, [vec![0], vec![2]]);
        assert_eq!(alone, [1, 3]);
        // Never an empty POST.
        let (c, alone) = chunks(&[], &[], &Limits::default());
        assert!(c.is_empty() && alone.is_empty());
    }

    #[test]
    fn a_post_answer() {
        let p = Posted::parse(
            br#"{"failed": {"b": "retry bso"}, "modified": 1796579520.34, "success": ["a"]}"#,
        )
        .unwrap();
        assert_eq!(p.modified, 1_796_579_520_340);
        assert!(p.success.contains("a") && !p.success.contains("b"));
        assert!(Posted::parse(b"0").is_none());
        assert!(Posted::parse(br#"{"modified": "x", "success": []}"#).is_none());
    }
}
