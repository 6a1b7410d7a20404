//! Upstream faults, played by a proxy in front of each fake: refused,
//! closed, reset mid-body, silent, dripping, invalid JSON, HTML, oversized,
//! 5xx, names that don't resolve. Each one is a Kinto error document
//! (503/201 + Retry-After when the upstream is unreachable or unusable,
//! 504/201 when it is too slow) within the configured timeout plus a second,
//! the next good request succeeds, a write that met one was not made, and a
//! thousand of them leave no descriptor, thread or cache entry behind.

use crate::support::*;
use fakes::Fake;
use fakes::faulty::{Fault, Faulty};
use std::time::{Duration, Instant};
use syncto::config::{Config, WriteSwitch};

/// Syncto whose Token Server and Sync node are reached through proxies.
struct Rig {
    s: Syncto,
    token: Faulty,
    sync: Faulty,
    timeout: Duration,
}

fn rig(timeout_seconds: u64, f: impl FnOnce(&mut Config)) -> Rig {
    let fake = Fake::start();
    let token = Faulty::start(&fake.token_url);
    let sync = Faulty::start(&fake.sync_url);
    // The Token Server hands out the node proxy's address.
    token.rewrite(&fake.sync_url, &sync.url);
    let mut config = test_config(&fake);
    config.token_server_url = format!("{}/", token.url);
    config.upstream_timeout = Duration::from_secs(timeout_seconds);
    f(&mut config);
    Rig {
        s: Syncto::on(fake, config),
        token,
        sync,
        timeout: Duration::from_secs(timeout_seconds),
    }
}

/// Writes on for `tabs`. A 503 with Retry-After looks like the node's
/// write conflict, which Syncto repeats for up to the write budget: half a
/// second here, so every fault still ends within the timeout + 1 s.
fn writable(c: &mut Config) {
    let on = WriteSwitch {
        put: true,
        delete: true,
    };
    c.write_switches.insert("tabs".into(), on);
    c.write_conflict_budget = Duration::from_millis(500);
}

/// A key id of its own for each user (so each one needs a token exchange);
/// 1234 is [`KID`]'s.
fn key_id(n: usize) -> String {
    assert_ne!(n, 1234, "that is KID");
    format!("{n}-Yw3NKWbEM2aRElRIu7JbTw")
}

/// A Token Server answer over its 64 KiB limit: unusable.
const TOKEN_OVERSIZED: (u64, Seen) = (1024 * 1024, Seen::Unusable("30"));

/// Matches the Token Server request of the user with this key id.
fn keyid_marker(key: &str) -> String {
    format!("x-keyid: {key}\r\n")
}

/// A token answer that sends the user to a node whose name doesn't resolve.
const LOST: &str = r#"{"id": "t", "key": "k", "uid": 1, "api_endpoint": "https://node.invalid/1.5/1", "duration": 300}"#;

fn records_of(key: &str) -> String {
    format!("/v1/buckets/{key}/collections/tabs/records")
}

/// What the client must see after a fault.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    /// 503/201, "Unable to reach the service…", our Retry-After.
    Unreachable,
    /// 503/201, "Service temporary unavailable…", this Retry-After.
    Unusable(&'static str),
    /// 504/201, "… did not answer in time …", our Retry-After.
    Late,
    /// 400/107 naming `_limit`: a page of records over the read limit,
    /// which a smaller `_limit` avoids (no Retry-After: repeating won't help).
    TooLarge,
}

/// Every fault a proxy can play, with what the client must see.
/// `oversized` is a body size over the upstream's limit, and what a body
/// that large must give.
fn faults(oversized: (u64, Seen)) -> Vec<(&'static str, Fault, Seen)> {
    vec![
        ("close", Fault::Close, Seen::Unreachable),
        ("reset", Fault::ResetMidBody, Seen::Unreachable),
        ("hang", Fault::Hang, Seen::Late),
        ("drip", Fault::Drip, Seen::Late),
        ("invalid-json", Fault::InvalidJson, Seen::Unusable("30")),
        ("html", Fault::Html, Seen::Unusable("30")),
        ("oversized", Fault::Oversized(oversized.0), oversized.1),
        (
            "503",
            Fault::status(503, &[("Retry-After", "17")], "0"),
            Seen::Unusable("17"),
        ),
        (
            "500",
            Fault::status(500, &[], "{\"status\": \"error\"}"),
            Seen::Unusable("30"),
        ),
    ]
}

impl Rig {
    /// Run `call`, check it met `want` in time, and return the answer.
    #[track_caller]
    fn expect(&self, what: &str, want: Seen, call: impl FnOnce() -> Resp) -> Resp {
        let started = Instant::now();
        let r = call();
        let elapsed = started.elapsed();
        println!("{what}: {} in {elapsed:?}", r.status);
        let (status, message, retry_after) = match want {
            Seen::Unreachable => (
                503,
                "Unable to reach the service. Check your internet connection or firewall configuration.",
                "30",
            ),
            Seen::Unusable(ra) => (
                503,
                "Service temporary unavailable due to overloading or maintenance, please retry later.",
                ra,
            ),
            Seen::Late => (504, "", "30"),
            Seen::TooLarge => (400, "", ""),
        };
        assert_eq!(r.status, status, "{what}: {}", r.body);
        if want == Seen::TooLarge {
            let j = r.assert_error(400, 107);
            assert_eq!(j["details"][0]["name"], "_limit", "{what}");
            assert_eq!(r.header("Retry-After"), None, "{what}");
            return r;
        }
        let j = r.assert_error(status, 201);
        if want == Seen::Late {
            let m = j["message"].as_str().unwrap_or("");
            assert!(m.contains("did not answer in time"), "{what}: {m}");
        } else {
            assert_eq!(j["message"], message, "{what}");
        }
        assert_eq!(r.header("Retry-After"), Some(retry_after), "{what}");
        assert!(
            elapsed < self.timeout + Duration::from_secs(1),
            "{what}: answered after {elapsed:?}"
        );
        r
    }
}

#[test]
fn token_server_faults() {
    let rig = rig(1, |_| {});
    for (i, (name, fault, want)) in faults(TOKEN_OVERSIZED).into_iter().enumerate() {
        // A user of its own, so that the request needs a token exchange.
        let key = key_id(100 + i);
        rig.token.inject(&keyid_marker(&key), fault, usize::MAX);
        let played = rig.token.played();
        rig.expect(name, want, || rig.s.auth_get(&records_of(&key)));
        assert!(rig.token.played() > played, "{name}: the fault was played");
        rig.token.clear();
        let r = rig.s.auth_get(&records_of(&key));
        assert_eq!(r.status, 200, "{name}: the next request: {}", r.body);
    }
    assert_eq!(rig.s.fake.hawk_failures(), 0);
}

#[test]
fn sync_node_faults() {
    let rig = rig(1, |_| {});
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    // A page of records over the limit: the client can ask for less.
    let limit = syncto::sync15::MAX_UPSTREAM_BODY + 1;
    for (name, fault, want) in faults((limit, Seen::TooLarge)) {
        let marker = format!("fault={name}");
        rig.sync.inject(&marker, fault, usize::MAX);
        let ua = ("User-Agent", marker.as_str());
        rig.expect(name, want, || rig.s.get(&records("tabs"), &[BEARER, ua]));
        rig.sync.clear();
        let r = rig.s.get(&records("tabs"), &[BEARER, ua]);
        assert_eq!(r.status, 200, "{name}: the next request: {}", r.body);
    }
    // One token exchange for the whole run: faults at the node don't cost
    // the user its credentials.
    assert_eq!(rig.s.fake.token_calls(), 1);
}

/// A GET whose connection failed at once is sent again (a pooled
/// connection the node had closed); one that failed late is not, so the
/// call ends within its deadline.
#[test]
fn only_a_quick_failure_is_retried() {
    let rig = rig(2, |_| {});
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    let ua = ("User-Agent", "fault=late-close");
    let late = Fault::CloseAfter(Duration::from_millis(1500));
    rig.sync.inject("fault=late-close", late, usize::MAX);
    let played = rig.sync.played();
    rig.expect("late close", Seen::Unreachable, || {
        rig.s.get(&records("tabs"), &[BEARER, ua])
    });
    assert_eq!(rig.sync.played() - played, 1, "not sent again");
    rig.sync.clear();
    rig.sync.inject("fault=quick-close", Fault::Close, 1);
    let ua = ("User-Agent", "fault=quick-close");
    let r = rig.s.get(&records("tabs"), &[BEARER, ua]);
    assert_eq!(r.status, 200, "sent again on a new connection: {}", r.body);
}

/// A node that closes every keep-alive connection right after answering,
/// without saying so. A GET may take a connection that answered a moment
/// ago without probing it, and is sent again when it fails; a write is
/// always sent on a probed connection, never twice.
#[test]
fn a_node_that_closes_after_each_answer() {
    let rig = rig(2, writable);
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    rig.sync.inject("", Fault::ForwardThenClose, usize::MAX);
    let body = r#"{"data": {"payload": "p"}}"#;
    let forwarded = rig.sync.forwarded();
    for i in 0..5 {
        let r = rig.s.auth_get(&records("tabs"));
        assert_eq!(r.status, 200, "GET {i}: {}", r.body);
        let id = format!("closing-{i}");
        let r = rig
            .s
            .req("PUT", &record("tabs", &id), &[BEARER, JSON], Some(body));
        assert_eq!(r.status, 200, "PUT {i}: {}", r.body);
        assert_eq!(r.json()["data"]["id"], id.as_str());
    }
    // Each request reached the node once: failed attempts on closed
    // connections never got there.
    assert_eq!(rig.sync.forwarded() - forwarded, 10);
    let puts = rig
        .s
        .fake
        .sync_seen()
        .iter()
        .filter(|s| s.method == "PUT")
        .count();
    assert_eq!(puts, 5);
}

#[test]
fn refused_connections() {
    let mut rig = rig(1, |_| {});
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    // The node goes down (its open connections too), then comes back.
    rig.sync.refuse();
    rig.expect("node refused", Seen::Unreachable, || {
        rig.s.auth_get(&records("tabs"))
    });
    rig.sync.listen();
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    // Same for the Token Server, with a user that needs an exchange.
    rig.token.refuse();
    let key = key_id(7);
    rig.expect("token server refused", Seen::Unreachable, || {
        rig.s.auth_get(&records_of(&key))
    });
    rig.token.listen();
    assert_eq!(rig.s.auth_get(&records_of(&key)).status, 200);
}

/// Without any DNS the lookup runs out of time instead of failing: both are
/// 201 errors in time, only the status differs.
fn unresolved(timeout: Duration, what: &str, call: impl FnOnce() -> Resp) {
    let started = Instant::now();
    let r = call();
    let elapsed = started.elapsed();
    assert!(matches!(r.status, 503 | 504), "{what}: {}", r.body);
    r.assert_error(r.status, 201);
    assert_eq!(r.header("Retry-After"), Some("30"), "{what}");
    assert!(
        elapsed < timeout + Duration::from_secs(1),
        "{what}: answered after {elapsed:?}"
    );
}

#[test]
fn names_that_do_not_resolve() {
    let rig = rig(1, |_| {});
    // The Token Server sends this user to a node whose name doesn't resolve.
    let lost = key_id(8);
    rig.token.inject(
        &keyid_marker(&lost),
        Fault::status(200, &[], LOST),
        usize::MAX,
    );
    unresolved(rig.timeout, "node name", || {
        rig.s.auth_get(&records_of(&lost))
    });
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    // A Token Server whose own name doesn't resolve.
    let s = Syncto::with(|c| {
        c.token_server_url = "http://token.invalid:8080/".into();
        c.upstream_timeout = Duration::from_secs(1);
    });
    unresolved(Duration::from_secs(1), "token server name", || {
        s.auth_get(&records("tabs"))
    });
    assert!(s.app().cache.is_empty());
}

#[test]
fn a_write_that_met_a_fault_was_not_made() {
    let rig = rig(1, writable);
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    let body = r#"{"data": {"payload": "p"}}"#;
    // An answer to a write over the limit is just unusable.
    let oversized = (syncto::sync15::MAX_UPSTREAM_BODY + 1, Seen::Unusable("30"));
    for (name, fault, want) in faults(oversized) {
        let marker = format!("fault=put-{name}");
        let headers = [BEARER, JSON, ("User-Agent", marker.as_str())];
        rig.sync.inject(&marker, fault, usize::MAX);
        let id = format!("put-{name}");
        rig.expect(name, want, || {
            rig.s.req("PUT", &record("tabs", &id), &headers, Some(body))
        });
        assert!(
            rig.s.fake.record(KID, "tabs", &id).is_none(),
            "{name}: the record was written"
        );
        rig.sync.clear();
        let r = rig.s.req("PUT", &record("tabs", &id), &headers, Some(body));
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.json()["data"]["payload"], "p");
        assert!(rig.s.fake.record(KID, "tabs", &id).is_some());
    }
    // A DELETE that met a fault leaves the record in place.
    rig.sync
        .inject("fault=delete", Fault::ResetMidBody, usize::MAX);
    let headers = [BEARER, ("User-Agent", "fault=delete")];
    rig.expect("delete", Seen::Unreachable, || {
        rig.s
            .req("DELETE", &record("tabs", "put-close"), &headers, None)
    });
    assert!(rig.s.fake.record(KID, "tabs", "put-close").is_some());
    rig.sync.clear();
    let r = rig
        .s
        .req("DELETE", &record("tabs", "put-close"), &headers, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(rig.s.fake.record(KID, "tabs", "put-close").is_none());
}

#[test]
fn a_batch_reports_each_sub_requests_real_outcome() {
    let rig = rig(1, |c| {
        writable(c);
        c.batch_collapse = false;
    });
    assert_eq!(rig.s.auth_get(&records("tabs")).status, 200);
    // The node drops the connection on the second write only.
    rig.sync
        .inject("storage/tabs/b", Fault::ResetMidBody, usize::MAX);
    let put = |id: &str| {
        format!(
            r#"{{"method": "PUT", "path": "/buckets/{KID}/collections/tabs/records/{id}", "body": {{"data": {{"payload": "{id}"}}}}}}"#
        )
    };
    let batch = format!(
        r#"{{"requests": [{}, {}, {}]}}"#,
        put("a"),
        put("b"),
        put("c")
    );
    let r = rig
        .s
        .req("POST", "/v1/batch", &[BEARER, JSON], Some(&batch));
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    let subs = j["responses"].as_array().unwrap();
    let statuses: Vec<_> = subs.iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 503, 200], "{j}");
    assert_eq!(subs[0]["body"]["data"]["payload"], "a");
    assert_eq!(subs[1]["body"]["errno"], 201);
    assert_eq!(subs[1]["headers"]["Retry-After"], "30");
    assert_eq!(subs[2]["body"]["data"]["payload"], "c");
    let stored = |id: &str| rig.s.fake.record(KID, "tabs", id).map(|b| b.payload);
    assert_eq!(stored("a").as_deref(), Some("a"));
    assert_eq!(stored("b"), None);
    assert_eq!(stored("c").as_deref(), Some("c"));
}

#[test]
fn a_collapsed_write_whose_fate_is_unknown_is_the_answer_of_each_write_it_carried() {
    let rig = rig(1, writable);
    rig.s.fake.put(KID, "tabs", "d", "old", 100);
    let body = serde_json::json!({"requests": [
        {"method": "PUT", "path": record("tabs", "a"), "body": {"data": {"payload": "a"}}},
        {"method": "PUT", "path": record("tabs", "b"), "body": {"data": {"payload": "b"}}},
        {"method": "DELETE", "path": record("tabs", "d")},
    ]})
    .to_string();
    let run = || {
        let r = rig.s.req("POST", "/v1/batch", &[BEARER, JSON], Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["responses"].as_array().unwrap().clone()
    };
    // The connection drops on the DELETE ?ids=: its write is unknown, reported as such
    // and never sent again; the PUTs, not sent yet, are read again and written.
    rig.sync.inject("DELETE /", Fault::ResetMidBody, usize::MAX);
    let subs = run();
    let statuses: Vec<_> = subs.iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 503], "{subs:?}");
    assert_eq!(subs[2]["body"]["errno"], 201);
    assert_eq!(rig.sync.played(), 1, "the DELETE was sent once");
    rig.sync.clear();
    let methods = |seen: &[fakes::Seen]| seen.iter().map(|s| s.method.clone()).collect::<Vec<_>>();
    assert!(!methods(&rig.s.fake.sync_seen()).contains(&"DELETE".to_owned()));
    // The same on the POST: each write it carried gets the failure; none is repeated, one
    // by one or otherwise.
    let before = rig.s.fake.sync_seen().len();
    rig.sync.inject("POST /", Fault::ResetMidBody, usize::MAX);
    let subs = run();
    let statuses: Vec<_> = subs.iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [503, 503, 200], "{subs:?}");
    for sub in &subs[..2] {
        assert_eq!(sub["body"]["errno"], 201, "{sub}");
        assert_eq!(sub["headers"]["Retry-After"], "30", "{sub}");
    }
    assert_eq!(rig.sync.played(), 2, "the POST was sent once");
    let after = methods(&rig.s.fake.sync_seen()[before..]);
    assert!(
        !after.contains(&"PUT".to_owned()) && !after.contains(&"POST".to_owned()),
        "{after:?}"
    );
    assert!(rig.s.fake.record(KID, "tabs", "d").is_none());
}

/// Descriptors and threads of this process.
fn census() -> (usize, usize) {
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
    (count("/proc/self/fd"), count("/proc/self/task"))
}

/// The leak count needs a process of its own: the other tests' threads and
/// sockets would blur it.
#[test]
fn a_thousand_faults_leak_nothing() {
    let exe = std::env::current_exe().unwrap();
    let out = crate::support::child::command(exe)
        .args([
            "faults::thousand_faults_in_this_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the check did not run: {text}");
}

#[test]
#[ignore = "run in a process of its own by a_thousand_faults_leak_nothing"]
fn thousand_faults_in_this_process() {
    let mut rig = rig(1, writable);
    let stay = records("tabs");
    // Faults that each need a fresh Token Server exchange, and faults at
    // the node for a user whose credentials are cached.
    let token_faults: Vec<Fault> = faults(TOKEN_OVERSIZED)
        .into_iter()
        .filter(|(_, _, w)| *w != Seen::Late)
        .map(|(_, f, _)| f)
        .collect();
    let sync_faults: Vec<Fault> = faults((0, Seen::TooLarge))
        .into_iter()
        .filter(|(n, _, w)| *w != Seen::Late && *n != "oversized")
        .map(|(_, f, _)| f)
        .collect();
    let mut users = 0;
    let mut next_user = || {
        users += 1;
        key_id(5000 + users)
    };
    // One round of each kind before counting, so that pools, the resolver
    // cache and lazily started threads are in their steady state.
    let mut round = |i: usize, rig: &mut Rig| -> usize {
        let kinds = token_faults.len() + sync_faults.len() + 3;
        let k = i % kinds;
        let is_fault = |r: &Resp| matches!(r.status, 503 | 504) && r.json()["errno"] == 201;
        let mut new_entries = 0;
        if k < token_faults.len() {
            let key = next_user();
            rig.token
                .inject(&keyid_marker(&key), token_faults[k].clone(), 1);
            let r = rig.s.auth_get(&records_of(&key));
            assert!(is_fault(&r), "round {i}: {} {}", r.status, r.body);
            assert_eq!(rig.s.auth_get(&records_of(&key)).status, 200, "round {i}");
            new_entries += 1;
        } else if k < token_faults.len() + sync_faults.len() {
            let f = sync_faults[k - token_faults.len()].clone();
            rig.sync.inject("fault=leak", f, usize::MAX);
            let r = rig.s.get(&stay, &[BEARER, ("User-Agent", "fault=leak")]);
            assert!(is_fault(&r), "round {i}: {} {}", r.status, r.body);
            rig.sync.clear();
            assert_eq!(rig.s.auth_get(&stay).status, 200, "round {i}");
        } else if k == token_faults.len() + sync_faults.len() {
            // A node whose name doesn't resolve (that user's credentials
            // are cached all the same: the exchange itself worked).
            let key = next_user();
            rig.token
                .inject(&keyid_marker(&key), Fault::status(200, &[], LOST), 1);
            let r = rig.s.auth_get(&records_of(&key));
            assert!(is_fault(&r), "round {i}: {} {}", r.status, r.body);
            assert_eq!(rig.s.auth_get(&stay).status, 200, "round {i}");
            new_entries += 1;
        } else if k == token_faults.len() + sync_faults.len() + 1 {
            // A write the node drops the connection on, then one it takes.
            let put = |ua: &str| {
                let headers = [BEARER, JSON, ("User-Agent", ua)];
                let body = r#"{"data": {"payload": "p"}}"#;
                rig.s.req("PUT", &record("tabs", "w"), &headers, Some(body))
            };
            rig.sync.inject("fault=leak-put", Fault::ResetMidBody, 1);
            let r = put("fault=leak-put");
            assert!(is_fault(&r), "round {i}: {} {}", r.status, r.body);
            assert_eq!(put("soak").status, 200, "round {i}");
        } else {
            rig.sync.refuse();
            let r = rig.s.auth_get(&stay);
            assert!(is_fault(&r), "round {i}: {} {}", r.status, r.body);
            rig.sync.listen();
            assert_eq!(rig.s.auth_get(&stay).status, 200, "round {i}");
        }
        new_entries
    };
    let kinds = token_faults.len() + sync_faults.len() + 3;
    assert_eq!(rig.s.auth_get(&stay).status, 200);
    let mut entries = 1;
    for i in 0..kinds {
        entries += round(i, &mut rig);
    }
    let settle = |want: (usize, usize)| {
        let started = Instant::now();
        loop {
            let now = census();
            if (now.0 <= want.0 && now.1 <= want.1) || started.elapsed() > Duration::from_secs(15) {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Let the warm-up's closed connections and lookups wind down first.
    std::thread::sleep(Duration::from_millis(500));
    let before = census();
    assert_eq!(rig.s.app().cache.len(), entries);
    let played = rig.token.played() + rig.sync.played();
    let mut faults_played = 0;
    let mut i = 0;
    while faults_played < 1000 {
        entries += round(i, &mut rig);
        i += 1;
        faults_played = rig.token.played() + rig.sync.played() - played;
    }
    // The silent and the dripping upstream, a few times each.
    for (name, fault) in [("hang", Fault::Hang), ("drip", Fault::Drip)] {
        for _ in 0..2 {
            rig.sync.inject("fault=slow", fault.clone(), usize::MAX);
            let r = rig.s.get(&stay, &[BEARER, ("User-Agent", "fault=slow")]);
            assert_eq!(r.status, 504, "{name}: {}", r.body);
            rig.sync.clear();
            assert_eq!(rig.s.auth_get(&stay).status, 200);
        }
    }
    let after = settle(before);
    println!(
        "faults played: {faults_played} in {i} rounds (+4 slow); descriptors {} -> {}, threads {} -> {}, cache entries {entries}",
        before.0, after.0, before.1, after.1
    );
    assert!(after.0 <= before.0, "descriptors {before:?} -> {after:?}");
    assert!(after.1 <= before.1, "threads {before:?} -> {after:?}");
    assert_eq!(
        rig.s.app().cache.len(),
        entries,
        "one entry per user whose exchange worked"
    );
    // One write gate: the one user and collection written to.
    assert_eq!(rig.s.app().storage.pacing_gates(), 1);
    assert_eq!(rig.s.fake.hawk_failures(), 0);
}
