//! A fake Token Server and a fake Sync 1.5 storage node that behave like
//! syncstorage-rs where a Kinto front can tell:
//! two-decimal seconds, bare-number error bodies, `X-Weave-Next-Offset`,
//! 200 `[]` for an unknown collection, 304/412 rules, `{"modified": ts}` on
//! DELETE. Every storage request's Hawk header is verified; a bad one is a
//! 401 `0`, as on a real node.
//!
//! Written independently of the server's own code (its own Hawk check and
//! timestamp parsing), so the tests compare two implementations.

//!
//! Also here: [`faulty`], a proxy that injects network faults, and [`tls_server`], a TLS
//! server with the test certificates. A dev-only crate: the tests, the soak bench and the
//! `fake_upstream` example use it.

#![allow(dead_code)]

pub mod faulty;
mod node;
pub mod tls_server;
mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as received.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When served from the script: another device rewrites this record
    /// (collection, id) of the requesting user at the same moment.
    pub touch: Option<(String, String)>,
    /// In the script: answers only a request of this method (the others
    /// pass it by and are served normally).
    pub method: Option<&'static str>,
}

impl Canned {
    pub fn new(status: u16, body: &str) -> Canned {
        Canned {
            status,
            headers: vec![],
            body: body.to_owned(),
            touch: None,
            method: None,
        }
    }

    pub fn for_method(mut self, method: &'static str) -> Canned {
        self.method = Some(method);
        self
    }

    /// The node's write conflict: 503, `Retry-After: 10`, body `0`.
    pub fn conflict() -> Canned {
        Canned::new(503, "0").with("Retry-After", "10")
    }

    pub fn touching(mut self, coll: &str, id: &str) -> Canned {
        self.touch = Some((coll.to_owned(), id.to_owned()));
        self
    }
    pub fn with(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Bso {
    pub payload: String,
    pub sortindex: Option<i64>,
    /// Centiseconds.
    pub modified: u64,
}

#[derive(Default)]
pub struct Collection {
    pub modified: u64,
    pub bsos: BTreeMap<String, Bso>,
}

/// What one POST of records may carry (the node's `info/configuration`).
#[derive(Debug, Clone, Copy)]
pub struct PostLimits {
    /// `max_post_records`.
    pub records: usize,
    /// `max_post_bytes`: payload bytes of one POST.
    pub bytes: usize,
    /// `max_record_payload_bytes`.
    pub record_bytes: usize,
    /// `max_request_bytes`: the whole body.
    pub request_bytes: usize,
}

impl Default for PostLimits {
    /// syncstorage-rs's defaults.
    fn default() -> PostLimits {
        PostLimits {
            records: 100,
            bytes: 2_621_440,
            record_bytes: 2_621_440,
            request_bytes: 2_625_536,
        }
    }
}

#[derive(Default)]
struct State {
    /// Token Server exchanges made.
    pub token_calls: usize,
    /// Requests the token server saw.
    pub token_seen: Vec<Seen>,
    /// Requests the storage node saw (Hawk verified or not).
    pub sync_seen: Vec<Seen>,
    /// Hawk failures seen by the node.
    pub hawk_failures: usize,
    /// token id → (key, uid).
    pub tokens: HashMap<String, (String, u64)>,
    /// key material (X-KeyID or client state) → uid.
    pub uids: HashMap<String, u64>,
    /// uid → collections.
    pub users: HashMap<u64, BTreeMap<String, Collection>>,
    /// Next answers of the token server, before its normal behaviour.
    pub token_script: Vec<Canned>,
    /// Next answers of the node (after the Hawk check).
    pub sync_script: Vec<Canned>,
    /// Delay of each token exchange.
    pub token_delay: Duration,
    /// The node never answers (until this long has passed).
    pub sync_hang: Option<Duration>,
    /// Requests whose path contains this wait until it is cleared.
    pub sync_hold: Option<String>,
    /// Requests waiting on `sync_hold` now.
    pub sync_held: usize,
    /// Heartbeat status of the token server.
    pub heartbeat_status: u16,
    /// The token server's heartbeat answers only once this is false again.
    pub heartbeat_held: bool,
    /// Token duration granted.
    pub duration: u64,
    /// Reject every token id issued so far (as after a node reassignment
    /// or expiry): the next storage call is a 401.
    pub revoked: Vec<String>,
    /// Like syncstorage-rs, writes are refused with 503 + Retry-After: 10
    /// (body `0`, nothing written) when they fall in the same 10 ms tick as
    /// the collection's last write, or meet another write of the same user
    /// to the same collection in progress. This switches that off.
    pub lenient_writes: bool,
    /// How long a write holds its (user, collection) "lock" (default 2 ms),
    /// so that concurrent writes can meet as on a real node.
    pub write_work: Duration,
    /// (uid, collection) with a write in progress.
    pub writing: std::collections::HashSet<(u64, String)>,
    /// Writes refused as conflicts so far.
    pub conflicts: usize,
    /// Skip the Hawk check (benchmarks hit the node directly with wrk);
    /// the uid then comes from the path.
    pub open: bool,
    pub next_uid: u64,
    /// The limits of one POST of records.
    pub post_limits: PostLimits,
}

pub struct Fake {
    pub token_url: String,
    pub sync_url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// The Token Server and the node, which stop listening with the fake.
    _servers: Vec<listener::Server>,
}

/// The Token Server or the node, answering each request on its connection's
/// thread.
struct Upstream {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    sync_url: String,
    is_token: bool,
}

impl listener::Handler for Upstream {
    fn handle(&self, mut rq: listener::Request) {
        let seen = seen(&mut rq);
        let canned = if self.is_token {
            token::answer(&self.state, &seen, &self.sync_url)
        } else {
            node::answer(&self.state, &seen, &self.stop)
        };
        let _ = rq.respond(to_response(canned));
    }
}

impl Fake {
    pub fn start() -> Fake {
        let state = Arc::new(Mutex::new(State {
            heartbeat_status: 200,
            duration: 3600,
            write_work: Duration::from_millis(2),
            next_uid: 1,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (token, sync) = (bind(), bind());
        let token_port = token.local_addr().unwrap().port();
        let sync_port = sync.local_addr().unwrap().port();
        let sync_url = format!("http://127.0.0.1:{sync_port}");
        let servers = [(token, true), (sync, false)]
            .into_iter()
            .map(|(socket, is_token)| {
                let upstream = Upstream {
                    state: state.clone(),
                    stop: stop.clone(),
                    sync_url: sync_url.clone(),
                    is_token,
                };
                listener::Server::new(socket, listener::Limits::default(), Arc::new(upstream))
                    .unwrap()
            })
            .collect();
        Fake {
            token_url: format!("http://127.0.0.1:{token_port}/"),
            sync_url,
            state,
            stop,
            _servers: servers,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The node's next answers, in order, given after the Hawk check instead of its
    /// normal behaviour (a [`Canned::for_method`] one waits for a request of its method).
    pub fn script_sync(&self, answers: impl IntoIterator<Item = Canned>) {
        self.state().sync_script.extend(answers);
    }

    /// Forget the node's scripted answers not given yet.
    pub fn clear_sync_script(&self) {
        self.state().sync_script.clear();
    }

    /// The Token Server's next answers, in order, instead of its normal behaviour.
    pub fn script_token(&self, answers: impl IntoIterator<Item = Canned>) {
        self.state().token_script.extend(answers);
    }

    /// The node takes `d` before answering anything (a hung node; never longer than the
    /// fake lives).
    pub fn hang_sync(&self, d: Duration) {
        self.state().sync_hang = Some(d);
    }

    /// The node's requests whose path contains `fragment` (e.g. `/storage/slow`) wait until
    /// [`Fake::release_sync`] (never longer than the fake lives).
    pub fn hold_sync(&self, fragment: &str) {
        self.state().sync_hold = Some(fragment.to_owned());
    }

    /// The requests held by [`Fake::hold_sync`] go on, and no more are held.
    pub fn release_sync(&self) {
        self.state().sync_hold = None;
    }

    /// Requests waiting in [`Fake::hold_sync`] now.
    pub fn held_sync(&self) -> usize {
        self.state().sync_held
    }

    /// The node refuses every token issued so far (as after a node reassignment or an
    /// expiry): the next storage call of each user is a 401.
    pub fn revoke_tokens(&self) {
        let mut st = self.state();
        let ids: Vec<String> = st.tokens.keys().cloned().collect();
        st.revoked.extend(ids);
    }

    /// The node's limits on one POST of records (and its `info/configuration`).
    pub fn limit_posts(&self, limits: PostLimits) {
        self.state().post_limits = limits;
    }

    /// The Token Server's heartbeat answers `status`.
    pub fn set_heartbeat(&self, status: u16) {
        self.state().heartbeat_status = status;
    }

    /// While `held`, the Token Server's heartbeat does not answer (it answers when released,
    /// or after a minute at most).
    pub fn hold_heartbeat(&self, held: bool) {
        self.state().heartbeat_held = held;
    }

    /// Heartbeat checks the Token Server has received.
    pub fn heartbeats(&self) -> usize {
        self.state()
            .token_seen
            .iter()
            .filter(|s| s.url == "/__heartbeat__")
            .count()
    }

    /// Each token exchange takes `d`.
    pub fn delay_tokens(&self, d: Duration) {
        self.state().token_delay = d;
    }

    /// Tokens are granted for `seconds` at most.
    pub fn grant_tokens_for(&self, seconds: u64) {
        self.state().duration = seconds;
    }

    /// A token the node accepts for user `uid`, as if the Token Server had issued it.
    pub fn issue_token(&self, id: &str, hawk_key: &str, uid: u64) {
        let value = (hawk_key.to_owned(), uid);
        self.state().tokens.insert(id.to_owned(), value);
    }

    /// The Hawk keys of the tokens issued so far.
    pub fn hawk_keys(&self) -> Vec<String> {
        self.state()
            .tokens
            .values()
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The node skips the Hawk check and takes the user from the path (benchmarks call it
    /// directly).
    pub fn open(&self) {
        self.state().open = true;
    }

    /// What the fakes see, readable from another thread while they run.
    pub fn observer(&self) -> Observer {
        Observer(Arc::clone(&self.state))
    }

    /// Token exchanges made.
    pub fn token_calls(&self) -> usize {
        self.state().token_calls
    }

    /// The requests the Token Server saw.
    pub fn token_seen(&self) -> Vec<Seen> {
        self.state().token_seen.clone()
    }

    /// Storage requests whose Hawk header the node refused.
    pub fn hawk_failures(&self) -> usize {
        self.state().hawk_failures
    }

    /// Writes the node refused as conflicts (same tick, or another write in progress).
    pub fn conflicts(&self) -> usize {
        self.state().conflicts
    }

    /// The storage requests seen so far.
    pub fn sync_seen(&self) -> Vec<Seen> {
        self.state().sync_seen.clone()
    }

    pub fn last_sync(&self) -> Seen {
        self.state()
            .sync_seen
            .last()
            .cloned()
            .expect("no storage request seen")
    }

    /// Change one user's collection straight in storage (as another device
    /// would); the collection timestamp moves to at least `modified_cs`.
    fn with_collection(
        &self,
        key: &str,
        coll: &str,
        modified_cs: u64,
        f: impl FnOnce(&mut Collection),
    ) {
        let mut st = self.state();
        let uid = uid_for(&mut st, key);
        let c = st
            .users
            .entry(uid)
            .or_default()
            .entry(coll.to_owned())
            .or_default();
        f(c);
        c.modified = c.modified.max(modified_cs);
    }

    /// Put a record straight into storage.
    pub fn put(&self, key: &str, coll: &str, id: &str, payload: &str, modified_cs: u64) {
        self.with_collection(key, coll, modified_cs, |c| {
            let bso = Bso {
                payload: payload.to_owned(),
                sortindex: None,
                modified: modified_cs,
            };
            c.bsos.insert(id.to_owned(), bso);
        });
    }

    /// Delete a record straight from storage (collection timestamp bumps).
    pub fn delete(&self, key: &str, coll: &str, id: &str, modified_cs: u64) {
        self.with_collection(key, coll, modified_cs, |c| {
            c.bsos.remove(id);
        });
    }

    pub fn record(&self, key: &str, coll: &str, id: &str) -> Option<Bso> {
        let mut st = self.state();
        let uid = uid_for(&mut st, key);
        st.users.get(&uid)?.get(coll)?.bsos.get(id).cloned()
    }
}

/// What the fakes see (see [`Fake::observer`]).
#[derive(Clone)]
pub struct Observer(Arc<Mutex<State>>);

impl Observer {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// The requests the Token Server saw.
    pub fn token_seen(&self) -> Vec<Seen> {
        self.state().token_seen.clone()
    }

    /// Token exchanges made.
    pub fn token_calls(&self) -> usize {
        self.state().token_calls
    }

    /// Storage requests received.
    pub fn sync_requests(&self) -> usize {
        self.state().sync_seen.len()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // A hung node gives up; the servers close with the fake.
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn uid_for(st: &mut State, key: &str) -> u64 {
    if let Some(u) = st.uids.get(key) {
        return *u;
    }
    let u = st.next_uid;
    st.next_uid += 1;
    st.uids.insert(key.to_owned(), u);
    u
}

fn seen(rq: &mut listener::Request) -> Seen {
    let mut body = String::new();
    let _ = rq.as_reader().read_to_string(&mut body);
    Seen {
        method: rq.method().as_str().to_owned(),
        url: rq.url().to_owned(),
        headers: rq
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_owned(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect(),
        body,
    }
}

fn to_response(c: Canned) -> listener::Response {
    let mut headers: Vec<listener::Header> = c
        .headers
        .iter()
        .map(|(n, v)| listener::Header::from_bytes(n.as_bytes(), v.as_bytes()).unwrap())
        .collect();
    if !c.body.is_empty() {
        headers.push(
            listener::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        );
    }
    listener::Response::new(listener::StatusCode(c.status), headers, c.body.into_bytes())
}

fn now_cs() -> u64 {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        / 10) as u64
}

/// `12.34` (centiseconds → text).
pub fn fmt_cs(cs: u64) -> String {
    format!("{}.{:02}", cs / 100, cs % 100)
}

/// Parse seconds text into centiseconds (truncating beyond), as ss-rs does.
fn parse_cs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let i: u64 = i.parse().ok()?;
    let f2: String = f.chars().chain("00".chars()).take(2).collect();
    if !f.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(i * 100 + f2.parse::<u64>().ok()?)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
