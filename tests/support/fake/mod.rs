//! A fake Token Server and a fake Sync 1.5 storage node that behave like
//! syncstorage-rs where a Kinto front can tell:
//! two-decimal seconds, bare-number error bodies, `X-Weave-Next-Offset`,
//! 200 `[]` for an unknown collection, 304/412 rules, `{"modified": ts}` on
//! DELETE. Every storage request's Hawk header is verified; a bad one is a
//! 401 `0`, as on a real node.
//!
//! Written independently of the server's own code (its own Hawk check and
//! timestamp parsing), so the tests compare two implementations.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
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
    /// Heartbeat status of the token server.
    pub heartbeat_status: u16,
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
}

pub struct Fake {
    pub token_url: String,
    pub sync_url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    servers: Vec<(Arc<tiny_http::Server>, Vec<JoinHandle<()>>)>,
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
        let token = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let sync = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let token_port = token.server_addr().to_ip().unwrap().port();
        let sync_port = sync.server_addr().to_ip().unwrap().port();
        let sync_url = format!("http://127.0.0.1:{sync_port}");
        let mut servers = vec![];
        for (server, is_token) in [(token, true), (sync, false)] {
            let handles = (0..16)
                .map(|_| {
                    let (server, state, stop, sync_url) = (
                        server.clone(),
                        state.clone(),
                        stop.clone(),
                        sync_url.clone(),
                    );
                    std::thread::spawn(move || {
                        while let Ok(mut rq) = server.recv() {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            let seen = seen(&mut rq);
                            let canned = if is_token {
                                token_answer(&state, &seen, &sync_url)
                            } else {
                                sync_answer(&state, &seen, &stop)
                            };
                            let _ = rq.respond(to_response(canned));
                        }
                    })
                })
                .collect();
            servers.push((server, handles));
        }
        Fake {
            token_url: format!("http://127.0.0.1:{token_port}/"),
            sync_url,
            state,
            stop,
            servers,
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

    /// The node refuses every token issued so far (as after a node reassignment or an
    /// expiry): the next storage call of each user is a 401.
    pub fn revoke_tokens(&self) {
        let mut st = self.state();
        let ids: Vec<String> = st.tokens.keys().cloned().collect();
        st.revoked.extend(ids);
    }

    /// The Token Server's heartbeat answers `status`.
    pub fn set_heartbeat(&self, status: u16) {
        self.state().heartbeat_status = status;
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
        self.stop.store(true, Ordering::SeqCst);
        for (server, handles) in &self.servers {
            for _ in handles {
                server.unblock();
            }
        }
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

fn seen(rq: &mut tiny_http::Request) -> Seen {
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

fn to_response(c: Canned) -> tiny_http::Response<Cursor<Vec<u8>>> {
    let mut headers: Vec<tiny_http::Header> = c
        .headers
        .iter()
        .map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).unwrap())
        .collect();
    if !c.body.is_empty() {
        headers.push(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        );
    }
    let len = c.body.len();
    tiny_http::Response::new(
        tiny_http::StatusCode(c.status),
        headers,
        Cursor::new(c.body.into_bytes()),
        Some(len),
        None,
    )
}

fn json_err(status: u16, name: &str, description: &str) -> Canned {
    Canned::new(
        status,
        &format!(
            r#"{{"status": "{name}", "errors": [{{"location": "body", "name": "", "description": "{description}"}}]}}"#
        ),
    )
}

fn token_answer(state: &Mutex<State>, seen: &Seen, sync_url: &str) -> Canned {
    let delay = {
        let mut st = lock(state);
        st.token_seen.push(seen.clone());
        st.token_delay
    };
    let path = seen.url.split('?').next().unwrap_or("");
    if path == "/__heartbeat__" {
        let status = lock(state).heartbeat_status;
        return Canned::new(status, "{}");
    }
    if path != "/1.0/sync/1.5" {
        return json_err(404, "error", "Unsupported application");
    }
    std::thread::sleep(delay);
    let mut st = lock(state);
    st.token_calls += 1;
    if !st.token_script.is_empty() {
        return st.token_script.remove(0);
    }
    let auth = seen.header("authorization").unwrap_or("");
    let (scheme, credential) = auth.split_once(' ').unwrap_or((auth, ""));
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        match seen.header("x-keyid") {
            Some(k) => k.to_owned(),
            None => return json_err(401, "invalid-key-id", "Missing X-KeyID header"),
        }
    } else if scheme.eq_ignore_ascii_case("browserid") {
        match seen.header("x-client-state") {
            Some(k) => k.to_owned(),
            None => return json_err(401, "invalid-credentials", "Unauthorized"),
        }
    } else {
        return json_err(401, "error", "Unsupported");
    };
    if credential.is_empty() || credential == "invalid" {
        return json_err(401, "invalid-credentials", "Unauthorized");
    }
    let requested: u64 = seen
        .url
        .split_once("duration=")
        .and_then(|(_, d)| d.split('&').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(u64::MAX);
    let uid = uid_for(&mut st, &key);
    let n = st.tokens.len();
    let id = format!("tok{n}-{uid}-{}", random_b64(9));
    let hawk_key = random_b64(32);
    st.tokens.insert(id.clone(), (hawk_key.clone(), uid));
    let duration = st.duration.min(requested);
    Canned::new(
        200,
        &format!(
            r#"{{"id": "{id}", "key": "{hawk_key}", "uid": {uid}, "api_endpoint": "{sync_url}/1.5/{uid}", "duration": {duration}, "hashalg": "sha256", "hashed_fxa_uid": "0123456789abcdef0123456789abcdef", "node_type": "postgres"}}"#
        ),
    )
    .with("X-Timestamp", &now_s().to_string())
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).unwrap();
    base64::engine::general_purpose::URL_SAFE.encode(b)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

fn attrs(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.strip_prefix("Hawk ")?;
    let mut m = HashMap::new();
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=')?;
        m.insert(
            k.to_owned(),
            v.strip_prefix('"')?.strip_suffix('"')?.to_owned(),
        );
    }
    Some(m)
}

/// Check the Hawk header as a storage node does; returns the uid.
fn verify_hawk(st: &State, seen: &Seen) -> Result<u64, &'static str> {
    let a = attrs(seen.header("authorization").ok_or("no authorization")?).ok_or("not hawk")?;
    let id = a.get("id").ok_or("no id")?;
    if st.revoked.contains(id) {
        return Err("revoked");
    }
    let (key, uid) = st.tokens.get(id).ok_or("unknown token")?;
    let host_header = seen.header("host").ok_or("no host")?;
    let (host, port) = host_header.rsplit_once(':').ok_or("no port in host")?;
    let mut normalized = format!(
        "hawk.1.header\n{}\n{}\n{}\n{}\n{}\n{}\n",
        a.get("ts").ok_or("no ts")?,
        a.get("nonce").ok_or("no nonce")?,
        seen.method,
        seen.url,
        host.to_ascii_lowercase(),
        port
    );
    normalized.push_str(a.get("hash").map(String::as_str).unwrap_or(""));
    normalized.push('\n');
    normalized.push_str(a.get("ext").map(String::as_str).unwrap_or(""));
    normalized.push('\n');
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(normalized.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    if a.get("mac") != Some(&expected) {
        return Err("bad mac");
    }
    if let Some(hash) = a.get("hash") {
        // ss-rs doesn't check payload hashes; this fake does, to prove ours.
        let ct = seen
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let mut d = <Sha256 as sha2::Digest>::new();
        sha2::Digest::update(
            &mut d,
            format!("hawk.1.payload\n{ct}\n{}\n", seen.body).as_bytes(),
        );
        if STANDARD.encode(sha2::Digest::finalize(d)) != *hash {
            return Err("bad payload hash");
        }
    }
    Ok(*uid)
}

fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn bso_json(id: &str, b: &Bso) -> String {
    let mut s = format!(
        r#"{{"id":{},"modified":{},"payload":{}"#,
        serde_json::to_string(id).unwrap(),
        fmt_cs(b.modified),
        serde_json::to_string(&b.payload).unwrap()
    );
    if let Some(si) = b.sortindex {
        s.push_str(&format!(r#","sortindex":{si}"#));
    }
    s.push('}');
    s
}

/// The node's preconditions, parsed from `X-If-Modified-Since` and
/// `X-If-Unmodified-Since` (centiseconds).
#[derive(Clone, Copy, Default)]
struct Pre {
    modified_since: Option<u64>,
    unmodified_since: Option<u64>,
}

impl Pre {
    /// Both headers, or one that is not a timestamp: 400, as syncstorage-rs.
    fn parse(seen: &Seen) -> Result<Pre, Canned> {
        let ims = seen.header("x-if-modified-since").map(parse_cs);
        let iums = seen.header("x-if-unmodified-since").map(parse_cs);
        if matches!(ims, Some(None))
            || matches!(iums, Some(None))
            || (ims.is_some() && iums.is_some())
        {
            return Err(Canned::new(400, "0"));
        }
        Ok(Pre {
            modified_since: ims.flatten(),
            unmodified_since: iums.flatten(),
        })
    }

    /// Whether a resource last modified at `modified` (centiseconds) may be served: 304
    /// when not modified since `X-If-Modified-Since`, 412 when modified since
    /// `X-If-Unmodified-Since`, each with its `X-Last-Modified`.
    fn check(self, modified: u64) -> Result<(), Canned> {
        let status = if self.modified_since.is_some_and(|t| modified <= t) {
            304
        } else if self.unmodified_since.is_some_and(|t| modified > t) {
            412
        } else {
            return Ok(());
        };
        Err(Canned::new(status, "").with("X-Last-Modified", &fmt_cs(modified)))
    }

    /// A write looks at `X-If-Unmodified-Since` only.
    fn for_write(self) -> Pre {
        Pre {
            modified_since: None,
            ..self
        }
    }
}

fn sync_answer(state: &Mutex<State>, seen: &Seen, stop: &AtomicBool) -> Canned {
    let stamp = |c: Canned| c.with("X-Weave-Timestamp", &fmt_cs(now_cs()));
    let hang = {
        let mut st = lock(state);
        st.sync_seen.push(seen.clone());
        st.sync_hang
    };
    if let Some(d) = hang {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut st = lock(state);
    let uid = match authenticate(&st, seen) {
        Ok(uid) => uid,
        Err(_) => {
            st.hawk_failures += 1;
            return stamp(Canned::new(401, "0"));
        }
    };
    if let Some(canned) = scripted(&mut st, uid, seen) {
        return stamp(canned);
    }
    let path = seen.url.split('?').next().unwrap_or("").to_owned();
    let Some(rest) = path.strip_prefix(&format!("/1.5/{uid}/")) else {
        return stamp(Canned::new(400, "0"));
    };
    let (st, tick) = write_tick(state, st, uid, &seen.method, rest);
    let mut st = st;
    let answer = tick.and_then(|tick| {
        let pre = Pre::parse(seen)?;
        let segments: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let user = st.users.entry(uid).or_default();
        match (seen.method.as_str(), segments.as_slice()) {
            ("GET", ["info", "collections"]) => Ok(info_collections(user)),
            ("GET", ["storage", coll]) => list(user, coll, &query_of(&seen.url), pre),
            ("GET", ["storage", coll, id]) => get_record(user, coll, id, pre),
            ("PUT", ["storage", coll, id]) => put_record(user, coll, id, &seen.body, pre, tick),
            ("DELETE", ["storage", coll, id]) => delete_record(user, coll, id, pre, tick),
            _ => Ok(Canned::new(404, "0")),
        }
    });
    stamp(answer.unwrap_or_else(|refused| refused))
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The user whose token signed the request, after checking its Hawk header (or, with
/// [`Fake::open`], the user in the path).
fn authenticate(st: &State, seen: &Seen) -> Result<u64, &'static str> {
    let open_uid = || {
        seen.url
            .strip_prefix("/1.5/")?
            .split('/')
            .next()?
            .parse()
            .ok()
    };
    match (st.open, open_uid()) {
        (true, Some(uid)) => Ok(uid),
        _ => verify_hawk(st, seen),
    }
}

/// The next scripted answer, if it is for this request's method; an answer that
/// `touches` a record changes it as another device would, at the same moment.
fn scripted(st: &mut State, uid: u64, seen: &Seen) -> Option<Canned> {
    let first = st.sync_script.first()?;
    if first.method.is_some_and(|m| m != seen.method) {
        return None;
    }
    let canned = st.sync_script.remove(0);
    if let Some((coll, id)) = &canned.touch {
        let c = st
            .users
            .entry(uid)
            .or_default()
            .entry(coll.clone())
            .or_default();
        let t = now_cs().max(c.modified + 1);
        if let Some(b) = c.bsos.get_mut(id) {
            b.payload.push_str(" (changed elsewhere)");
            b.modified = t;
            c.modified = t;
        }
    }
    Some(canned)
}

/// The tick of a request: now; a write takes it when it starts and holds the (user,
/// collection) lock while it works, as syncstorage-rs does, and is refused (503,
/// `Retry-After: 10`, nothing written) when another write of the user to the collection
/// is in progress or the collection's last write was in the same tick.
fn write_tick<'a>(
    state: &'a Mutex<State>,
    mut st: MutexGuard<'a, State>,
    uid: u64,
    method: &str,
    rest: &str,
) -> (MutexGuard<'a, State>, Result<u64, Canned>) {
    let tick = now_cs();
    let coll = match method {
        "PUT" | "DELETE" | "POST" => rest
            .strip_prefix("storage/")
            .map(|r| r.split('/').next().unwrap_or("").to_owned()),
        _ => None,
    };
    let Some(coll) = coll else {
        return (st, Ok(tick));
    };
    let last = st
        .users
        .get(&uid)
        .and_then(|u| u.get(&coll))
        .map_or(0, |c| c.modified);
    if st.lenient_writes {
        // As if every write came a tick later than the last one.
        return (st, Ok(tick.max(last + 1)));
    }
    let key = (uid, coll);
    if st.writing.contains(&key) || tick <= last {
        st.conflicts += 1;
        return (st, Err(Canned::conflict()));
    }
    st.writing.insert(key.clone());
    let work = st.write_work;
    drop(st);
    std::thread::sleep(work);
    let mut st = lock(state);
    st.writing.remove(&key);
    (st, Ok(tick))
}

/// `GET info/collections`: each collection's timestamp.
fn info_collections(user: &BTreeMap<String, Collection>) -> Canned {
    let body = user
        .iter()
        .map(|(k, c)| {
            format!(
                "{}:{}",
                serde_json::to_string(k).unwrap(),
                fmt_cs(c.modified)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let newest = user.values().map(|c| c.modified).max().unwrap_or(0);
    Canned::new(200, &format!("{{{body}}}"))
        .with("X-Last-Modified", &fmt_cs(newest))
        .with("X-Weave-Records", &user.len().to_string())
}

/// `GET storage/<coll>`: `newer`, `older`, `ids` (at most 100), `sort`, `offset`, `limit`,
/// `full`; `X-Weave-Next-Offset` when a page is not the last.
fn list(
    user: &BTreeMap<String, Collection>,
    coll: &str,
    q: &HashMap<String, String>,
    pre: Pre,
) -> Result<Canned, Canned> {
    let bad = || Canned::new(400, "0");
    let empty = Collection::default();
    let c = user.get(coll).unwrap_or(&empty);
    pre.check(c.modified)?;
    let time = |name: &str| match q.get(name).map(|n| parse_cs(n)) {
        Some(None) => Err(bad()),
        Some(Some(n)) => Ok(Some(n)),
        None => Ok(None),
    };
    let (newer, older) = (time("newer")?, time("older")?);
    let ids: Option<Vec<String>> = q.get("ids").map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if ids.as_ref().is_some_and(|i| i.len() > 100) {
        return Err(bad());
    }
    let mut items: Vec<(&String, &Bso)> = c
        .bsos
        .iter()
        .filter(|(_, b)| newer.is_none_or(|n| b.modified > n))
        .filter(|(_, b)| older.is_none_or(|o| b.modified < o))
        .filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id)))
        .collect();
    match q.get("sort").map(String::as_str) {
        Some("oldest") => items.sort_by(|a, b| a.1.modified.cmp(&b.1.modified).then(a.0.cmp(b.0))),
        Some("index") => items.sort_by(|a, b| b.1.sortindex.cmp(&a.1.sortindex).then(b.0.cmp(a.0))),
        _ => items.sort_by(|a, b| b.1.modified.cmp(&a.1.modified).then(b.0.cmp(a.0))),
    }
    let number = |name: &str| match q.get(name).map(|o| o.parse::<usize>()) {
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(_)) => Err(bad()),
        None => Ok(None),
    };
    let offset = number("offset")?.unwrap_or(0);
    let limit = number("limit")?;
    let total = items.len();
    let page: Vec<_> = items
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let body = if q.contains_key("full") {
        page.iter()
            .map(|(id, b)| bso_json(id, b))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        page.iter()
            .map(|(id, _)| serde_json::to_string(id).unwrap())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut canned = Canned::new(200, &format!("[{body}]"))
        .with("X-Last-Modified", &fmt_cs(c.modified))
        .with("X-Weave-Records", &page.len().to_string());
    if offset + page.len() < total {
        canned = canned.with("X-Weave-Next-Offset", &(offset + page.len()).to_string());
    }
    Ok(canned)
}

/// `GET storage/<coll>/<id>`.
fn get_record(
    user: &BTreeMap<String, Collection>,
    coll: &str,
    id: &str,
    pre: Pre,
) -> Result<Canned, Canned> {
    let b = user.get(coll).and_then(|c| c.bsos.get(id));
    let b = b.ok_or_else(|| Canned::new(404, "0"))?;
    pre.check(b.modified)?;
    Ok(Canned::new(200, &bso_json(id, b)).with("X-Last-Modified", &fmt_cs(b.modified)))
}

/// `PUT storage/<coll>/<id>`: only `id`, `payload`, `sortindex` and `ttl` (else 400 `8`);
/// answers the new timestamp.
fn put_record(
    user: &mut BTreeMap<String, Collection>,
    coll: &str,
    id: &str,
    body: &str,
    pre: Pre,
    tick: u64,
) -> Result<Canned, Canned> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(body)
    else {
        return Err(Canned::new(400, "8"));
    };
    if fields
        .keys()
        .any(|k| !matches!(k.as_str(), "id" | "payload" | "sortindex" | "ttl"))
    {
        return Err(Canned::new(400, "8"));
    }
    let c = user.entry(coll.to_owned()).or_default();
    let existing = c.bsos.get(id);
    pre.for_write()
        .check(existing.map(|b| b.modified).unwrap_or(0))?;
    let mut b = existing.cloned().unwrap_or(Bso {
        payload: String::new(),
        sortindex: None,
        modified: tick,
    });
    if let Some(p) = fields.get("payload").and_then(|p| p.as_str()) {
        b.payload = p.to_owned();
    }
    if let Some(s) = fields.get("sortindex").and_then(|s| s.as_i64()) {
        b.sortindex = Some(s);
    }
    b.modified = tick;
    c.bsos.insert(id.to_owned(), b);
    c.modified = tick;
    Ok(Canned::new(200, &fmt_cs(tick)).with("X-Last-Modified", &fmt_cs(tick)))
}

/// `DELETE storage/<coll>/<id>`: answers `{"modified": …}` and the collection's previous
/// `X-Last-Modified`.
fn delete_record(
    user: &mut BTreeMap<String, Collection>,
    coll: &str,
    id: &str,
    pre: Pre,
    tick: u64,
) -> Result<Canned, Canned> {
    let c = user.get_mut(coll).ok_or_else(|| Canned::new(404, "0"))?;
    let b = c.bsos.get(id).ok_or_else(|| Canned::new(404, "0"))?;
    pre.for_write().check(b.modified)?;
    let previous = c.modified;
    c.bsos.remove(id);
    c.modified = tick;
    Ok(
        Canned::new(200, &format!(r#"{{"modified":{}}}"#, fmt_cs(tick)))
            .with("X-Last-Modified", &fmt_cs(previous)),
    )
}
