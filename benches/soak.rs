//! Soak (not part of `cargo test`): the syncto binary, as a child process,
//! against the test fakes behind fault-injecting proxies
//! (crates/fakes/src/faulty.rs), under a mixed load for a bounded time.
//!
//! Client threads share 1,000 users (each user belongs to one thread, which
//! keeps a model of its records) and make reads, lists, writes, deletes and
//! batches. About 5 % of requests carry a fault marker in their User-Agent,
//! which Syncto forwards upstream and a proxy answers with a fault:
//! closed or reset connections, invalid JSON, HTML, 5xx, a silent or
//! dripping node, a failing Token Server, a node that refuses connections
//! or whose name doesn't resolve. Every answer is checked against the model:
//! a faulted request must be the 503/504 errno 201 its fault explains (and
//! change nothing), every other one exactly what the model predicts. The
//! server's RSS, threads and descriptors are sampled from /proc.
//!
//! ```sh
//! cargo build --release --bin syncto --example soak
//! target/release/examples/soak --seconds 300            # the 5-minute soak
//! target/debug/examples/soak --seconds 30 --syncto target/debug/syncto   # CI
//! ```
//!
//! Options: `--seconds N` (300), `--clients N` (8), `--users N` (1000),
//! `--fault-percent N` (5), `--syncto PATH` (target/release/syncto).
//! Exits 1 on any unexpected answer, or when descriptors or threads grew or
//! RSS rose by more than a quarter between the first and last samples.

use fakes::faulty;

use faulty::{Fault, Faulty};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A standard collection, so that writes can be enabled from the environment.
const COLL: &str = "tabs";
/// Record ids per user: writes land on these, so collections stay small.
const IDS: u64 = 20;
/// Upstream deadline given to syncto (seconds).
const UPSTREAM_TIMEOUT: u64 = 2;

struct Options {
    seconds: u64,
    clients: usize,
    users: u64,
    fault_percent: u64,
    syncto: String,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 300,
        clients: 8,
        users: 1000,
        fault_percent: 5,
        syncto: "target/release/syncto".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        let number = |v: String| {
            v.parse::<u64>().unwrap_or_else(|_| {
                eprintln!("soak: {a} needs a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--seconds" => o.seconds = number(value()).clamp(1, 3600),
            "--clients" => o.clients = number(value()).clamp(1, 64) as usize,
            "--users" => o.users = number(value()).clamp(1, 100_000),
            "--fault-percent" => o.fault_percent = number(value()).min(100),
            "--syncto" => o.syncto = value(),
            other => {
                eprintln!("soak: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    o
}

/// The faults a request can carry, with what it must answer.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// At the node (cached credentials).
    Node(&'static str, u16),
    /// At the Token Server (a user seen only once, so an exchange happens).
    Token(&'static str, u16),
}

/// (kind, weight): the slow ones hold a worker for the whole deadline, so
/// they are rarer.
const KINDS: [(Kind, u64); 13] = [
    (Kind::Node("close", 503), 10),
    (Kind::Node("reset", 503), 10),
    (Kind::Node("invalid-json", 503), 10),
    (Kind::Node("html", 503), 10),
    (Kind::Node("503", 503), 10),
    (Kind::Node("500", 503), 10),
    (Kind::Node("hang", 504), 2),
    (Kind::Node("drip", 504), 2),
    (Kind::Token("reset", 503), 8),
    (Kind::Token("500", 503), 8),
    (Kind::Token("oversized", 503), 4),
    (Kind::Token("dead-node", 503), 4),
    (Kind::Token("lost-node", 503), 4),
];

/// Rules on the proxies: a User-Agent marker per fault.
fn install_faults(token: &Faulty, sync: &Faulty, dead_port: u16) {
    let all = usize::MAX;
    let status = Fault::status;
    for (name, fault) in [
        ("close", Fault::Close),
        ("reset", Fault::ResetMidBody),
        ("invalid-json", Fault::InvalidJson),
        ("html", Fault::Html),
        ("503", status(503, &[("Retry-After", "17")], "0")),
        ("500", status(500, &[], "0")),
        ("hang", Fault::Hang),
        ("drip", Fault::Drip),
    ] {
        sync.inject(&format!("fault=node-{name}"), fault, all);
    }
    let node = |endpoint: &str| {
        format!(
            r#"{{"id": "t", "key": "k", "uid": 1, "api_endpoint": "{endpoint}", "duration": 300}}"#
        )
    };
    let dead = node(&format!("http://127.0.0.1:{dead_port}/1.5/1"));
    let lost = node("https://node.invalid/1.5/1");
    for (name, fault) in [
        ("reset", Fault::ResetMidBody),
        ("500", status(500, &[], "{\"status\": \"error\"}")),
        ("oversized", Fault::Oversized(1024 * 1024)),
        ("dead-node", status(200, &[], &dead)),
        ("lost-node", status(200, &[], &lost)),
    ] {
        token.inject(&format!("fault=token-{name}"), fault, all);
    }
}

/// xorshift64*: enough randomness for a load mix, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn kind(&mut self) -> Kind {
        let total: u64 = KINDS.iter().map(|(_, w)| w).sum();
        let mut pick = self.below(total);
        for (k, w) in KINDS {
            if pick < w {
                return k;
            }
            pick -= w;
        }
        KINDS[0].0
    }
}

fn key_id(n: u64) -> String {
    format!("{n}-Yw3NKWbEM2aRElRIu7JbTw")
}

/// User n's token: each account has tokens of its own (the Token Server refuses a token
/// with another account's key id), and Syncto's worker pool tells users apart by token.
fn bearer(n: u64) -> String {
    format!("Bearer soak-{n}")
}

/// What a run counted.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    faulted: AtomicU64,
    unexpected: AtomicU64,
    by_op: Mutex<BTreeMap<String, u64>>,
    first_unexpected: Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, op: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self.by_op.lock().unwrap().entry(op.to_owned()).or_default() += 1;
    }
    fn unexpected(&self, what: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_unexpected.lock().unwrap();
        if first.len() < 20 {
            first.push(what);
        }
    }
}

struct Answer {
    status: u16,
    body: Value,
}

fn call(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut rq = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (n, v) in headers {
        rq = rq.header(*n, *v);
    }
    let result = match body {
        Some(b) => agent.run(
            rq.header("Content-Type", "application/json")
                .body(b.to_string())
                .unwrap(),
        ),
        None => agent.run(rq.body(()).unwrap()),
    };
    match result {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            Answer {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
            }
        }
        // No answer at all (connection refused, reset, timeout): status 0.
        Err(e) => Answer {
            status: 0,
            body: json!({ "client error": e.to_string() }),
        },
    }
}

/// One client thread's users: id → payload.
type Model = BTreeMap<u64, BTreeMap<String, String>>;

/// A single Kinto operation on one record, and what it must answer.
#[derive(Clone)]
enum Op {
    Get(String),
    Put(String, String),
    Delete(String),
}

impl Op {
    fn random(rng: &mut Rng, writes: bool) -> Op {
        let id = format!("r{}", rng.below(IDS));
        match if writes { rng.below(3) } else { 0 } {
            0 => Op::Get(id),
            1 => Op::Put(id, format!("p{:x}", rng.next())),
            _ => Op::Delete(id),
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Op::Get(_) => "GET",
            Op::Put(..) => "PUT",
            Op::Delete(_) => "DELETE",
        }
    }

    fn id(&self) -> &str {
        match self {
            Op::Get(id) | Op::Put(id, _) | Op::Delete(id) => id,
        }
    }

    /// The status the model predicts; applies the op to the model.
    fn expect(&self, records: &mut BTreeMap<String, String>) -> (u16, Option<String>) {
        match self {
            Op::Get(id) => match records.get(id) {
                Some(p) => (200, Some(p.clone())),
                None => (404, None),
            },
            Op::Put(id, payload) => {
                let created = !records.contains_key(id);
                records.insert(id.clone(), payload.clone());
                (if created { 201 } else { 200 }, Some(payload.clone()))
            }
            Op::Delete(id) => match records.remove(id) {
                Some(_) => (200, None),
                None => (404, None),
            },
        }
    }

    /// Headers for the request (a create uses `If-None-Match: *`, which
    /// Kinto answers with 201).
    fn if_none_match(&self, records: &BTreeMap<String, String>) -> bool {
        matches!(self, Op::Put(id, _) if !records.contains_key(id))
    }
}

fn record_path(key: &str, id: &str) -> String {
    format!("/v1/buckets/{key}/collections/{COLL}/records/{id}")
}

/// Check a record answer against the model's prediction.
fn record_ok(a: &Answer, want: (u16, Option<String>)) -> bool {
    if a.status != want.0 {
        return false;
    }
    match (a.status, want.1) {
        (200 | 201, Some(p)) => a.body["data"]["payload"] == p.as_str(),
        (200, None) => a.body["data"]["deleted"] == true,
        (404, _) => a.body["errno"] == 110,
        _ => true,
    }
}

/// A faulted request's answer: the status its fault explains, errno 201.
fn fault_ok(a: &Answer, status: u16) -> bool {
    a.status == status && a.body["errno"] == 201 && a.body["code"] == status
}

struct Client {
    base: String,
    agent: ureq::Agent,
    rng: Rng,
    users: Vec<u64>,
    model: Model,
    fault_percent: u64,
    tally: Arc<Tally>,
    throwaway: Arc<AtomicU64>,
}

impl Client {
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.tally.unexpected(what());
        }
    }

    /// One random request.
    fn step(&mut self) {
        let user = self.users[self.rng.below(self.users.len() as u64) as usize];
        let key = key_id(user);
        let fault = (self.rng.below(100) < self.fault_percent).then(|| self.rng.kind());
        let pick = self.rng.below(100);
        match fault {
            Some(Kind::Token(name, status)) => {
                // A user never seen before, so that a Token Server exchange
                // happens; its answer is the fault.
                let n = 1_000_000 + self.throwaway.fetch_add(1, Ordering::Relaxed);
                let ua = format!("soak fault=token-{name}");
                let path = format!("/v1/buckets/{}/collections/{COLL}/records", key_id(n));
                let a = self.get(n, &path, &ua);
                self.tally.count("token fault");
                self.tally.faulted.fetch_add(1, Ordering::Relaxed);
                self.check(fault_ok(&a, status), || {
                    format!("token fault {name}: {} {}", a.status, a.body)
                });
            }
            _ if pick < 10 => self.batch(user, &key, fault),
            _ if pick < 40 => self.list(user, &key, fault),
            _ => {
                let op = Op::random(&mut self.rng, pick >= 60);
                self.single(user, &key, op, fault);
            }
        }
    }

    fn get(&self, user: u64, path: &str, ua: &str) -> Answer {
        let token = bearer(user);
        let headers = [("Authorization", token.as_str()), ("User-Agent", ua)];
        call(&self.agent, &self.base, "GET", path, &headers, None)
    }

    fn list(&mut self, user: u64, key: &str, fault: Option<Kind>) {
        let path = format!("/v1/buckets/{key}/collections/{COLL}/records");
        self.tally.count("list");
        match fault {
            Some(Kind::Node(name, status)) => {
                self.tally.faulted.fetch_add(1, Ordering::Relaxed);
                let a = self.get(user, &path, &format!("soak fault=node-{name}"));
                self.check(fault_ok(&a, status), || {
                    format!("list, fault {name}: {} {}", a.status, a.body)
                });
            }
            _ => {
                let a = self.get(user, &path, "soak");
                let want: Vec<&String> = self.model[&user].keys().collect();
                let mut got: Vec<String> = a.body["data"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .filter_map(|r| r["id"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                got.sort();
                let ok = a.status == 200 && got.iter().eq(want.iter().copied());
                self.check(ok, || {
                    format!("list {key}: {} {} (model {want:?})", a.status, a.body)
                });
            }
        }
    }

    fn single(&mut self, user: u64, key: &str, op: Op, fault: Option<Kind>) {
        let path = record_path(key, op.id());
        let ua = match fault {
            Some(Kind::Node(name, _)) => format!("soak fault=node-{name}"),
            _ => "soak".into(),
        };
        let token = bearer(user);
        let mut headers = vec![
            ("Authorization", token.as_str()),
            ("User-Agent", ua.as_str()),
        ];
        if op.if_none_match(&self.model[&user]) {
            headers.push(("If-None-Match", "*"));
        }
        let body = match &op {
            Op::Put(_, payload) => Some(json!({"data": {"payload": payload}})),
            _ => None,
        };
        let a = call(
            &self.agent,
            &self.base,
            op.method(),
            &path,
            &headers,
            body.as_ref(),
        );
        self.tally.count(op.method());
        match fault {
            Some(Kind::Node(name, status)) => {
                self.tally.faulted.fetch_add(1, Ordering::Relaxed);
                let ok = fault_ok(&a, status);
                self.check(ok, || {
                    format!(
                        "{} {path}, fault {name}: {} {}",
                        op.method(),
                        a.status,
                        a.body
                    )
                });
            }
            _ => {
                let want = op.expect(self.model.get_mut(&user).unwrap());
                let ok = record_ok(&a, want.clone());
                self.check(ok, || {
                    format!(
                        "{} {path}: {} {} (want {want:?})",
                        op.method(),
                        a.status,
                        a.body
                    )
                });
            }
        }
    }

    /// Three sub-requests on one user; with a fault, one of them (never a
    /// slow one: a batch is not where deadlines are measured) carries it.
    fn batch(&mut self, user: u64, key: &str, fault: Option<Kind>) {
        let ops: Vec<Op> = (0..3).map(|_| Op::random(&mut self.rng, true)).collect();
        let faulted = match fault {
            Some(Kind::Node(name, 503)) => Some((self.rng.below(3) as usize, name)),
            _ => None,
        };
        let mut shadow = self.model[&user].clone();
        let mut requests = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let mut headers = serde_json::Map::new();
            if op.if_none_match(&shadow) {
                headers.insert("If-None-Match".into(), "*".into());
            }
            match faulted {
                Some((j, name)) if i == j => {
                    headers.insert(
                        "User-Agent".into(),
                        format!("soak fault=node-{name}").into(),
                    );
                }
                _ => {
                    op.expect(&mut shadow);
                }
            }
            let mut sub = json!({"method": op.method(), "path": record_path(key, op.id()), "headers": headers});
            if let Op::Put(_, payload) = op {
                sub["body"] = json!({"data": {"payload": payload}});
            }
            requests.push(sub);
        }
        let token = bearer(user);
        let headers = [("Authorization", token.as_str()), ("User-Agent", "soak")];
        let body = json!({ "requests": requests });
        let a = call(
            &self.agent,
            &self.base,
            "POST",
            "/v1/batch",
            &headers,
            Some(&body),
        );
        self.tally.count("batch");
        if faulted.is_some() {
            self.tally.faulted.fetch_add(1, Ordering::Relaxed);
        }
        let answers = a.body["responses"].as_array().cloned().unwrap_or_default();
        let mut ok = a.status == 200 && answers.len() == 3;
        for (i, op) in ops.iter().enumerate() {
            let Some(sub) = answers.get(i) else { break };
            let got = Answer {
                status: sub["status"].as_u64().unwrap_or(0) as u16,
                body: sub["body"].clone(),
            };
            ok &= match faulted {
                Some((j, _)) if i == j => fault_ok(&got, 503),
                _ => record_ok(&got, op.expect(self.model.get_mut(&user).unwrap())),
            };
        }
        self.check(ok, || format!("batch {key}: {} {}", a.status, a.body));
    }
}

/// (VmRSS kB, threads, descriptors) of a process.
fn census(pid: u32) -> (u64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:"), field("Threads:") as usize, fds)
}

fn start_syncto(o: &Options, token_url: &str, port: u16) -> Child {
    let child = Command::new(&o.syncto)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("SYNCTO_TOKEN_SERVER_URL", token_url)
        .env(
            "SYNCTO_UPSTREAM_TIMEOUT_SECONDS",
            UPSTREAM_TIMEOUT.to_string(),
        )
        .env("SYNCTO_UPSTREAM_CONNECT_TIMEOUT_SECONDS", "1")
        .env("SYNCTO_RECORD_TABS_PUT_ENABLED", "true")
        .env("SYNCTO_RECORD_TABS_DELETE_ENABLED", "true")
        .env("SYNCTO_LOG_LEVEL", "critical")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    child.unwrap_or_else(|e| {
        eprintln!("soak: cannot start {}: {e} (build it first)", o.syncto);
        std::process::exit(2)
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn main() {
    let o = options();
    let fake = fakes::Fake::start();
    let token = Faulty::start(&fake.token_url);
    let sync = Faulty::start(&fake.sync_url);
    token.rewrite(&fake.sync_url, &sync.url);
    install_faults(&token, &sync, free_port());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_syncto(&o, &format!("{}/", token.url), port);
    let agent = || {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent()
    };
    let up = Instant::now();
    while call(&agent(), &base, "GET", "/v1/__lbheartbeat__", &[], None).status != 200 {
        if up.elapsed() > Duration::from_secs(10) || child.try_wait().ok().flatten().is_some() {
            eprintln!("soak: syncto did not start");
            let _ = child.kill();
            std::process::exit(2);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let warmed = Arc::new(AtomicUsize::new(0));
    let throwaway = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..o.clients)
        .map(|t| {
            let users: Vec<u64> = (1..=o.users)
                .filter(|u| (*u as usize) % o.clients == t)
                .collect();
            let mut client = Client {
                base: base.clone(),
                agent: agent(),
                rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0x1000_0000_01B3)),
                model: users.iter().map(|u| (*u, BTreeMap::new())).collect(),
                users,
                fault_percent: o.fault_percent,
                tally: Arc::clone(&tally),
                throwaway: Arc::clone(&throwaway),
            };
            let (stop, warmed) = (Arc::clone(&stop), Arc::clone(&warmed));
            std::thread::spawn(move || {
                // Warm-up: every user's credentials cached, collections empty.
                for u in client.users.clone() {
                    let path = format!("/v1/buckets/{}/collections/{COLL}/records", key_id(u));
                    let a = client.get(u, &path, "soak");
                    client.check(a.status == 200, || format!("warm-up {u}: {}", a.status));
                }
                warmed.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::Relaxed) {
                    client.step();
                }
            })
        })
        .collect();
    while warmed.load(Ordering::SeqCst) < o.clients {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after_warmup = tally.requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let first = census(pid);
    let mut samples = vec![(0u64, first)];
    println!(
        "soak: {} s, {} clients, {} users, {} % faults; syncto pid {pid}",
        o.seconds, o.clients, o.users, o.fault_percent
    );
    println!("  t(s)   RSS(kB)  threads  fds  requests");
    println!(
        "  {:>4}  {:>8}  {:>7}  {:>3}  {}",
        0, first.0, first.1, first.2, 0
    );
    let end = started + Duration::from_secs(o.seconds);
    let mut next_print = 30;
    while Instant::now() < end {
        std::thread::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        );
        let t = started.elapsed().as_secs();
        let c = census(pid);
        samples.push((t, c));
        if t >= next_print || Instant::now() >= end {
            next_print += 30;
            let n = tally.requests.load(Ordering::Relaxed) - after_warmup;
            println!("  {t:>4}  {:>8}  {:>7}  {:>3}  {n}", c.0, c.1, c.2);
        }
        if child.try_wait().ok().flatten().is_some() {
            eprintln!("soak: syncto exited");
            break;
        }
    }
    let last = census(pid);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.join();
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let requests = tally.requests.load(Ordering::Relaxed) - after_warmup;
    let faulted = tally.faulted.load(Ordering::Relaxed);
    let unexpected = tally.unexpected.load(Ordering::Relaxed);
    let peak_rss = samples.iter().map(|(_, c)| c.0).max().unwrap_or(0);
    println!(
        "requests: {requests} in {:.0} s ({:.0}/s), faulted: {faulted} ({:.1} %), unexpected answers: {unexpected}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        100.0 * faulted as f64 / requests.max(1) as f64
    );
    println!("by operation: {:?}", tally.by_op.lock().unwrap());
    println!(
        "syncto start -> end: RSS {} -> {} kB (peak {peak_rss}), threads {} -> {}, descriptors {} -> {}",
        first.0, last.0, first.1, last.1, first.2, last.2
    );
    println!(
        "proxies: {} faults played, {} requests forwarded",
        token.played() + sync.played(),
        token.forwarded() + sync.forwarded()
    );
    for u in tally.first_unexpected.lock().unwrap().iter() {
        println!("unexpected: {u}");
    }
    // Slow faults in flight can hold a connection (and its thread) at the
    // last sample: allow for one per client.
    let slack = o.clients;
    let grew = last.1 > first.1 + slack || last.2 > first.2 + 2 * slack;
    let rss_grew = last.0 > first.0 + first.0 / 4;
    if unexpected > 0 || grew || rss_grew {
        println!("soak: FAILED");
        std::process::exit(1);
    }
    println!("soak: ok");
}
