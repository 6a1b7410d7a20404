//! Every client operation against the real Firefox Sync server (syncstorage-rs run by
//! `peer.sh`), as a Kinto client sees it: status, errno, headers, body.
//!
//! Each test is `#[ignore = "needs the real Sync server: PEER_DIR"]`: a bare `cargo test` lists
//! them as ignored, and `PEER_DIR=<peer state dir> cargo test --test tests real:: -- --ignored`
//! runs them (see `support/peer.rs`); asked for without a peer, each fails saying what to set.
//! Each test uses its own fresh user, so they are independent and run in parallel.
//!
//! The real server gives every write the current time in 10 ms ticks and refuses (503) a
//! user's write to a collection in the same tick as the previous one. Tests about something
//! else (preconditions, filters, pagination…) set up their records one tick apart
//! ([`next_tick`]), so they fail only for what they test; the write tests send back to back.

mod collapse;

use crate::peer::{
    DEFAULT_KCA, ENV_DIR, ENV_SCRIPT, Form, OLD_NAMES, Real, User, call_on, jwt, next_tick, peer,
    random_hex, spawn_syncto, spawn_syncto_with,
};
use crate::support::{Resp, client, request};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};

fn data(payload: &str) -> String {
    json!({"data": {"payload": payload}}).to_string()
}

/// Set-up write, one tick after the previous one: must answer 200; returns the record.
fn seed(s: &Real, u: &User, coll: &str, id: &str, record: Value) -> Value {
    next_tick();
    let body = json!({ "data": record }).to_string();
    let r = s.call(u, "PUT", &u.record(coll, id), &[], Some(&body));
    assert_eq!(r.status, 200, "set-up PUT {coll}/{id}: {}", r.body);
    next_tick();
    r.json()["data"].clone()
}

/// All records of a collection (one GET, no `_limit`): must answer 200.
fn list(s: &Real, u: &User, coll: &str) -> Vec<Value> {
    let r = s.get(u, &u.records(coll));
    assert_eq!(r.status, 200, "list {coll}: {}", r.body);
    r.json()["data"].as_array().unwrap().clone()
}

fn ids(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `200×5, 503×35`.
fn tally(statuses: &[u16]) -> String {
    let mut n: BTreeMap<u16, usize> = BTreeMap::new();
    for s in statuses {
        *n.entry(*s).or_default() += 1;
    }
    n.iter()
        .map(|(s, c)| format!("{s}×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

fn lm(record: &Value) -> u64 {
    record["last_modified"]
        .as_u64()
        .unwrap_or_else(|| panic!("no last_modified: {record}"))
}

/// The field names of a record.
fn fields(record: &Value) -> BTreeSet<String> {
    record
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn keys(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn etag_of(r: &Resp) -> Option<String> {
    r.header("ETag").map(str::to_owned)
}

/// Not ignored: a run that still sets the real-server variables by their old names (in the
/// server's own `SYNCTO_` prefix) is told their new ones instead of listing every test as
/// ignored in silence.
#[test]
fn the_real_server_variables_go_by_their_current_names() {
    for (old, new) in OLD_NAMES {
        assert!(
            std::env::var_os(old).is_none(),
            "{old} is set: it is now called {new} (the real-server tests run with \
             `{ENV_DIR}=DIR {ENV_SCRIPT}=path/to/peer.sh cargo test --test tests real:: -- --ignored`)"
        );
    }
}

// ------------------------------------------------------------------ endpoints and statuses

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn hello_heartbeats_and_version() {
    let p = peer();
    let s = Real::start(p);
    let r = s.req("GET", "/v1/", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["project_name"], "syncto", "{j}");
    assert_eq!(j["project_version"], env!("CARGO_PKG_VERSION"), "{j}");
    assert_eq!(j["url"], format!("{}/v1/", s.base), "{j}");
    assert_eq!(j["settings"]["batch_max_requests"], 100, "{j}");
    assert_eq!(j["settings"]["cliquet.batch_max_requests"], 100, "{j}");
    assert_eq!(j["settings"]["readonly"], false, "{j}");
    assert!(j["http_api_version"].is_string() && j["project_docs"].is_string());
    assert_eq!(j["capabilities"], json!({}));

    let r = s.req("GET", "/v1/__heartbeat__", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"cache": true, "sync": true}));
    let r = s.req("GET", "/v1/__lbheartbeat__", &[], None);
    assert_eq!((r.status, r.json()), (200, json!({})));
    let r = s.req("GET", "/v1/__version__", &[], None);
    assert_eq!(r.status, 200);
    let j = r.json();
    for k in ["name", "version", "source", "commit"] {
        assert!(j[k].is_string(), "{k}: {j}");
    }
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn routing_errors_preflight_and_missing_credentials() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    for path in ["/v1/nope", "/v1/buckets/x/collections/y/records/z/w"] {
        let j = s.get(&u, path).assert_error(404, 111);
        assert_eq!(
            j["message"], "The resource you are looking for could not be found.",
            "{path}"
        );
    }
    s.get(&u, "/v2/buckets").assert_error(404, 116);
    // Wrong methods: 405/115 with Allow.
    let r = s.call(&u, "POST", &u.records("tabs"), &[], Some("{}"));
    r.assert_error(405, 115);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    let r = s.call(&u, "PATCH", &u.record("tabs", "a"), &[], Some("{}"));
    r.assert_error(405, 115);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, PUT, DELETE, OPTIONS"));
    // A collection without write switches: 405/115, nothing written.
    let r = s.call(
        &u,
        "PUT",
        &u.record("passwords", "a"),
        &[],
        Some(&data("x")),
    );
    let j = r.assert_error(405, 115);
    assert_eq!(
        j["message"],
        "Endpoint disabled for this collection in configuration."
    );
    assert_eq!(list(&s, &u, "passwords"), Vec::<Value>::new());
    // Missing /v1 and trailing slash: 307 to the canonical URL, query kept.
    let path = format!("/buckets/{}/collections/tabs/records?_limit=2", u.kid);
    let r = s.get(&u, &path);
    assert_eq!(r.status, 307, "{}", r.body);
    assert_eq!(
        r.header("Location"),
        Some(s.url(&format!("/v1{path}")).as_str())
    );
    let r = s.get(&u, &format!("{}/?_since=1", u.records("tabs")));
    assert_eq!(r.status, 307, "{}", r.body);
    let want = s.url(&format!("{}?_since=1", u.records("tabs")));
    assert_eq!(r.header("Location"), Some(want.as_str()));
    // CORS preflight: no credentials needed.
    let r = s.req(
        "OPTIONS",
        &u.record("tabs", "a"),
        &[
            ("Origin", "http://localhost:8000"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "authorization,if-match"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("GET, HEAD, PUT, DELETE, OPTIONS")
    );
    let allowed = r.header("Access-Control-Allow-Headers").unwrap_or("");
    assert!(
        allowed.contains("If-Match") && allowed.contains("X-KeyID"),
        "{allowed}"
    );
    // 401/104: no Authorization; OAuth without a key id (bucket `syncto`, no X-KeyID).
    let r = s.req("GET", &u.records("tabs"), &[], None);
    r.assert_error(401, 104);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"Syncto\"")
    );
    let r = s.req(
        "GET",
        "/v1/buckets/syncto/collections/tabs/records",
        &[("Authorization", &u.auth)],
        None,
    );
    let j = r.assert_error(401, 104);
    assert!(
        j["message"].as_str().unwrap().contains("X-KeyID"),
        "the message names what is missing: {j}"
    );
}

/// Collection metadata, list, one record, HEAD of each, in both key-id forms.
#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn reads_in_both_key_id_forms() {
    let p = peer();
    let s = Real::start(p);
    for form in [Form::Bucket, Form::Header] {
        let u = p.user().in_form(form);
        let r = s.get(&u, &u.collection("tabs"));
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        assert_eq!(
            r.json(),
            json!({"data": {"id": "tabs", "last_modified": 0}})
        );
        assert_eq!(r.header("ETag"), Some("\"0\""));
        let r = s.get(&u, &u.records("tabs"));
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        assert_eq!(r.json(), json!({"data": []}));

        let recs: Vec<Value> = (0..3)
            .map(|i| {
                let rec = json!({"payload": format!("record {i}"), "sortindex": i});
                seed(&s, &u, "tabs", &format!("r{i}"), rec)
            })
            .collect();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r["id"], format!("r{i}"));
            assert_eq!(r["payload"], format!("record {i}"));
        }
        let newest = lm(&recs[2]);
        assert!(lm(&recs[0]) < lm(&recs[1]) && lm(&recs[1]) < newest);

        let r = s.get(&u, &u.records("tabs"));
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        let mut want = recs.clone();
        want.reverse(); // default order: newest first
        assert_eq!(r.json(), json!({ "data": want }), "{form:?}");
        assert_eq!(etag_of(&r), Some(format!("\"{newest}\"")));
        assert_eq!(r.header("Total-Records"), Some("3"));
        let h = s.call(&u, "HEAD", &u.records("tabs"), &[], None);
        assert_eq!((h.status, h.body.as_str()), (200, ""));
        assert_eq!(etag_of(&h), Some(format!("\"{newest}\"")));

        let r = s.get(&u, &u.record("tabs", "r1"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), json!({"data": recs[1]}));
        assert_eq!(etag_of(&r), Some(format!("\"{}\"", lm(&recs[1]))));
        let h = s.call(&u, "HEAD", &u.record("tabs", "r1"), &[], None);
        assert_eq!((h.status, h.body.as_str()), (200, ""));
        assert_eq!(etag_of(&h), etag_of(&r));
        let j = s.get(&u, &u.record("tabs", "nope")).assert_error(404, 110);
        assert_eq!(j["details"]["id"], "nope", "{j}");

        let r = s.get(&u, &u.collection("tabs"));
        assert_eq!(r.status, 200, "{}", r.body);
        let want = json!({"data": {"id": "tabs", "last_modified": newest}});
        assert_eq!(r.json(), want);
        assert_eq!(etag_of(&r), Some(format!("\"{newest}\"")));
        let h = s.call(&u, "HEAD", &u.collection("tabs"), &[], None);
        assert_eq!((h.status, h.body.as_str()), (200, ""));
        assert_eq!(etag_of(&h), Some(format!("\"{newest}\"")));
        // A collection the user never wrote: empty, not an error.
        let r = s.get(&u, &u.records("bookmarks"));
        assert_eq!((r.status, r.json()), (200, json!({"data": []})));
    }
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn writes_and_deletes_with_and_without_preconditions() {
    let p = peer();
    let s = Real::start(p);
    for form in [Form::Bucket, Form::Header] {
        let u = p.user().in_form(form);
        let path = u.record("tabs", "w");
        // PUT without a precondition creates (200) and replaces (200).
        let first = seed(&s, &u, "tabs", "w", json!({"payload": "one"}));
        assert_eq!(first["payload"], "one");
        next_tick();
        let r = s.call(&u, "PUT", &path, &[], Some(&data("two")));
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        let second = r.json()["data"].clone();
        assert_eq!(
            second,
            json!({"id": "w", "payload": "two", "last_modified": lm(&second)})
        );
        assert!(lm(&second) > lm(&first));
        assert_eq!(etag_of(&r), Some(format!("\"{}\"", lm(&second))));

        // If-None-Match: * creates only.
        next_tick();
        let r = s.call(
            &u,
            "PUT",
            &u.record("tabs", "new"),
            &[("If-None-Match", "*")],
            Some(&data("n")),
        );
        assert_eq!(r.status, 201, "{form:?}: {}", r.body);
        assert_eq!(r.json()["data"]["payload"], "n");
        next_tick();
        let r = s.call(
            &u,
            "PUT",
            &path,
            &[("If-None-Match", "*")],
            Some(&data("x")),
        );
        let j = r.assert_error(412, 114);
        assert_eq!(j["details"]["existing"], second, "{j}");

        // If-Match: the current value writes, an older one is 412 with the current record.
        next_tick();
        let stale = format!("\"{}\"", lm(&first));
        let r = s.call(&u, "PUT", &path, &[("If-Match", &stale)], Some(&data("x")));
        let j = r.assert_error(412, 114);
        assert_eq!(j["details"]["existing"], second, "{j}");
        next_tick();
        let current = format!("\"{}\"", lm(&second));
        let r = s.call(
            &u,
            "PUT",
            &path,
            &[("If-Match", &current)],
            Some(&data("three")),
        );
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        let third = r.json()["data"].clone();
        assert_eq!(third["payload"], "three");

        // DELETE: stale If-Match → 412, nothing deleted; current → the tombstone document.
        next_tick();
        let r = s.call(&u, "DELETE", &path, &[("If-Match", &current)], None);
        let j = r.assert_error(412, 114);
        assert_eq!(j["details"]["existing"], third, "{j}");
        assert_eq!(s.get(&u, &path).json()["data"], third);
        next_tick();
        let now = format!("\"{}\"", lm(&third));
        let r = s.call(&u, "DELETE", &path, &[("If-Match", &now)], None);
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        let j = r.json();
        assert_eq!(j["data"]["id"], "w");
        assert_eq!(j["data"]["deleted"], true);
        assert!(lm(&j["data"]) >= lm(&third), "{j}");
        s.get(&u, &path).assert_error(404, 110);

        // DELETE without a precondition; then of a missing record: 404/110.
        next_tick();
        let r = s.call(&u, "DELETE", &u.record("tabs", "new"), &[], None);
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        assert_eq!(r.json()["data"]["deleted"], true);
        next_tick();
        let j = s
            .call(&u, "DELETE", &path, &[], None)
            .assert_error(404, 110);
        assert_eq!(j["details"]["id"], "w", "{j}");
        next_tick();
        s.call(&u, "DELETE", &u.record("tabs", "never"), &[], None)
            .assert_error(404, 110);
        assert_eq!(list(&s, &u, "tabs"), Vec::<Value>::new());
    }
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn pagination_sees_every_record_exactly_once() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let want: BTreeSet<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    for id in &want {
        seed(&s, &u, "tabs", id, json!({"payload": id}));
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = s.url(&format!("{}?_limit=5", u.records("tabs")));
    let agent = client();
    for _ in 0..10 {
        let r = request(&agent, "GET", &url, &u.headers(), None);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let page = r.json()["data"].as_array().unwrap().clone();
        pages.push(page.len());
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match r.header("Next-Page") {
            Some(next) => {
                assert!(
                    next.starts_with(&s.url(&format!("{}?", u.records("tabs")))),
                    "Next-Page is an absolute URL of the list: {next}"
                );
                assert!(next.contains("_limit=5"), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, [5, 5, 2], "page sizes");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        seen.len(),
        unique.len(),
        "a record was seen twice: {seen:?}"
    );
    assert_eq!(unique, want);
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn batch_answers_every_sub_request_in_order() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user().in_form(Form::Header);
    let rec = |id: &str| format!("/buckets/syncto/collections/tabs/records/{id}");
    let body = json!({"requests": [
        {"method": "PUT", "path": rec("a"), "headers": {"If-None-Match": "*"},
         "body": {"data": {"payload": "a"}}},
        {"method": "GET", "path": rec("a")},
        {"method": "GET", "path": rec("missing")},
        {"method": "PUT", "path": rec("a"), "headers": {"If-None-Match": "*"},
         "body": {"data": {"payload": "again"}}},
        {"method": "DELETE", "path": rec("a")},
        {"method": "GET", "path": "/buckets/syncto/collections/tabs/records"},
    ]})
    .to_string();
    let r = s.call(&u, "POST", "/v1/batch", &[], Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    let statuses: Vec<u64> = responses
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 200, 404, 412, 200, 200], "{}", r.body);
    let created = &responses[0]["body"]["data"];
    assert_eq!(created["payload"], "a");
    assert_eq!(responses[1]["body"]["data"], *created);
    assert_eq!(responses[2]["body"]["errno"], 110);
    assert_eq!(responses[3]["body"]["errno"], 114);
    assert_eq!(responses[3]["body"]["details"]["existing"], *created);
    assert_eq!(responses[4]["body"]["data"]["deleted"], true);
    assert_eq!(responses[5]["body"]["data"], json!([]));
    // More than batch_max_requests (100): 400/107, nothing runs.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"method": "PUT", "path": rec(&format!("m{i}")), "body": {"data": {}}}))
        .collect();
    let body = json!({ "requests": many }).to_string();
    s.call(&u, "POST", "/v1/batch", &[], Some(&body))
        .assert_error(400, 107);
    assert_eq!(list(&s, &u, "tabs"), Vec::<Value>::new());
}

// ------------------------------------------------------------------ write bursts

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn batch_of_25_writes() {
    let p = peer();
    let s = Real::start(p);
    for form in [Form::Bucket, Form::Header] {
        let u = p.user().in_form(form);
        let requests: Vec<Value> = (0..25)
            .map(|i| {
                json!({
                    "path": format!("/buckets/{}/collections/tabs/records/b{i:02}", u.bucket()),
                    "body": {"data": {"payload": format!("batched {i}")}},
                })
            })
            .collect();
        let body = json!({"defaults": {"method": "PUT"}, "requests": requests}).to_string();
        let r = s.call(&u, "POST", "/v1/batch", &[], Some(&body));
        assert_eq!(r.status, 200, "{form:?}: {}", r.body);
        let statuses: Vec<u16> = r.json()["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["status"].as_u64().unwrap() as u16)
            .collect();
        let listed = ids(&list(&s, &u, "tabs"));
        let want: BTreeSet<String> = (0..25).map(|i| format!("b{i:02}")).collect();
        assert!(
            statuses.len() == 25 && statuses.iter().all(|s| is_2xx(*s)) && listed == want,
            "{form:?}: sub-responses {} ({}); {} of 25 listed",
            statuses.len(),
            tally(&statuses),
            listed.intersection(&want).count()
        );
    }
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn forty_sequential_writes_on_one_connection() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let statuses: Vec<u16> = (0..40)
        .map(|i| {
            let path = u.record("tabs", &format!("s{i:02}"));
            s.call(
                &u,
                "PUT",
                &path,
                &[],
                Some(&data(&format!("sequential {i}"))),
            )
            .status
        })
        .collect();
    let listed = ids(&list(&s, &u, "tabs"));
    assert!(
        statuses.iter().all(|s| is_2xx(*s)) && listed.len() == 40,
        "40 sequential PUTs: {}; {} of 40 listed",
        tally(&statuses),
        listed.len()
    );
}

/// 4 writers × 10 PUTs of one user, each on its own connection, all started at once; writer
/// `w` talks to `bases[w % bases.len()]`. Returns the statuses.
fn concurrent_writers(bases: &[&str], u: &User) -> Vec<u16> {
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let base = bases[w % bases.len()].to_owned();
            let u = u.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let agent = client();
                start.wait();
                (0..10)
                    .map(|i| {
                        let path = u.record("tabs", &format!("c{w}-{i}"));
                        let body = data(&format!("writer {w} write {i}"));
                        call_on(&agent, &base, &u, "PUT", &path, &[], Some(&body)).status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn four_concurrent_writers_of_one_user() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let statuses = concurrent_writers(&[&s.base], &u);
    let listed = ids(&list(&s, &u, "tabs"));
    assert!(
        statuses.len() == 40 && statuses.iter().all(|s| is_2xx(*s)) && listed.len() == 40,
        "4 writers × 10: {}; {} of 40 listed",
        tally(&statuses),
        listed.len()
    );
}

/// The same writes with the storage client's pacer off: the worker pool alone keeps one
/// user's writes to a collection one at a time and a tick of the node's clock apart, and the
/// real node refuses none of them.
#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn four_concurrent_writers_of_one_user_kept_apart_by_the_pool_alone() {
    let p = peer();
    let s = Real::with(p, |c| c.write_conflict_budget = std::time::Duration::ZERO);
    let u = p.user();
    let statuses = concurrent_writers(&[&s.base], &u);
    let listed = ids(&list(&s, &u, "tabs"));
    assert!(
        statuses.len() == 40 && statuses.iter().all(|s| is_2xx(*s)) && listed.len() == 40,
        "4 writers × 10, no pacer: {}; {} of 40 listed",
        tally(&statuses),
        listed.len()
    );
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn four_concurrent_writers_across_two_syncto_instances() {
    let p = peer();
    // Two servers, two credential caches: as two nodes behind a load balancer.
    let a = Real::start(p);
    let b = Real::start(p);
    let u = p.user();
    // The user is known to the token server before the writers start: two concurrent first
    // token requests for a brand-new user can make it allocate two Sync uids (a race of the
    // real token server), and each instance would then write to a different storage.
    for s in [&a, &b] {
        assert_eq!(list(s, &u, "tabs"), Vec::<Value>::new());
    }
    let statuses = concurrent_writers(&[&a.base, &b.base], &u);
    let listed_a = ids(&list(&a, &u, "tabs"));
    let listed_b = ids(&list(&b, &u, "tabs"));
    assert!(
        statuses.len() == 40
            && statuses.iter().all(|s| is_2xx(*s))
            && listed_a.len() == 40
            && listed_a == listed_b,
        "4 writers × 10 over two instances: {}; {} of 40 listed by one instance, {} by the other",
        tally(&statuses),
        listed_a.len(),
        listed_b.len()
    );
}

// ------------------------------------------------------------------ exactness of ms ↔ ticks

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn if_match_holds_only_for_the_exact_last_modified() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let mut wrong = Vec::new();
    for method in ["PUT", "DELETE"] {
        for off in [-10i64, -1, 1, 10] {
            let id = format!("{}{off:+}", method.to_lowercase());
            let rec = seed(&s, &u, "tabs", &id, json!({"payload": "original"}));
            // Another write after it: the collection is newer than the record.
            seed(
                &s,
                &u,
                "tabs",
                &format!("after-{id}"),
                json!({"payload": "later"}),
            );
            let value = format!("\"{}\"", lm(&rec) as i64 + off);
            let body = (method == "PUT").then(|| data("changed"));
            let path = u.record("tabs", &id);
            let r = s.call(&u, method, &path, &[("If-Match", &value)], body.as_deref());
            let j: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            if r.status != 412 || j["errno"] != 114 || j["details"]["existing"] != rec {
                wrong.push(format!(
                    "{method} If-Match last_modified{off:+}: {} {}",
                    r.status, r.body
                ));
            }
            let now = s.get(&u, &path);
            if now.status != 200 || now.json()["data"] != rec {
                wrong.push(format!(
                    "{method} If-Match last_modified{off:+} changed the record: {} {}",
                    now.status, now.body
                ));
                continue;
            }
            // The exact value is accepted.
            next_tick();
            let exact = format!("\"{}\"", lm(&rec));
            let r = s.call(&u, method, &path, &[("If-Match", &exact)], body.as_deref());
            if r.status != 200 {
                wrong.push(format!(
                    "{method} If-Match last_modified (exact): {} {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn time_filters_are_exact() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let recs: Vec<Value> = (0..5)
        .map(|i| seed(&s, &u, "tabs", &format!("t{i}"), json!({"payload": "x"})))
        .collect();
    let mid = lm(&recs[2]);
    type Keep = fn(u64, u64) -> bool;
    let filters: [(&str, Keep); 6] = [
        ("_since", |lm, x| lm > x),
        ("gt_last_modified", |lm, x| lm > x),
        ("_before", |lm, x| lm < x),
        ("lt_last_modified", |lm, x| lm < x),
        ("min_last_modified", |lm, x| lm >= x),
        ("max_last_modified", |lm, x| lm <= x),
    ];
    let mut wrong = Vec::new();
    for x in [mid - 1, mid, mid + 1] {
        for (param, keep) in filters {
            let want: BTreeSet<String> = recs
                .iter()
                .filter(|r| keep(lm(r), x))
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            let r = s.get(&u, &format!("{}?{param}={x}", u.records("tabs")));
            if r.status != 200 {
                wrong.push(format!("{param}={x}: {} {}", r.status, r.body));
                continue;
            }
            let got = ids(r.json()["data"].as_array().unwrap());
            if got != want {
                wrong.push(format!(
                    "{param}=mid{:+}: expected {want:?}, got {got:?}",
                    x as i64 - mid as i64
                ));
            }
        }
    }
    let lms: Vec<u64> = recs.iter().map(lm).collect();
    assert!(
        wrong.is_empty(),
        "records t0..t4 at {lms:?}\n{}",
        wrong.join("\n")
    );
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn an_empty_since_answer_has_the_since_value_as_etag() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let a = seed(&s, &u, "tabs", "a", json!({"payload": "a"}));
    let b = seed(&s, &u, "tabs", "b", json!({"payload": "b"}));
    let newest = lm(&b);
    for x in [newest, newest + 3] {
        let r = s.get(&u, &format!("{}?_since={x}", u.records("tabs")));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), json!({"data": []}), "_since={x}");
        assert_eq!(etag_of(&r), Some(format!("\"{x}\"")), "_since={x}");
    }
    // Not empty: the collection's ETag.
    let r = s.get(&u, &format!("{}?_since={}", u.records("tabs"), lm(&a)));
    assert_eq!(r.json(), json!({"data": [b]}));
    assert_eq!(etag_of(&r), Some(format!("\"{newest}\"")));
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn if_none_match_on_a_missing_record_is_404_as_kinto() {
    // The node checks a precondition before it looks for the record, against 0 for a missing
    // one, so it answers X-If-Modified-Since with 304 at 0.00: Kinto's answer is still 404.
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let a = seed(&s, &u, "tabs", "a", json!({"payload": "x"}));
    for etag in [
        "\"0\"".to_owned(),
        format!("\"{}\"", lm(&a)),
        "\"1\"".to_owned(),
    ] {
        let path = u.record("tabs", "missing");
        let r = s.call(&u, "GET", &path, &[("If-None-Match", &etag)], None);
        let j = r.assert_error(404, 110);
        assert_eq!(
            j["details"],
            json!({"id": "missing", "resource_name": "record"}),
            "{etag}"
        );
    }
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn what_the_node_refuses_with_a_bare_status_is_a_named_400() {
    // Sync answers these with a bare 400 or 404 (or, for an empty `ids=`, every record):
    // each is a Kinto 400 naming the field, and nothing is written.
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let a = seed(&s, &u, "tabs", "a", json!({"payload": "x"}));
    let hundred: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    for (query, name) in [
        ("in_ids=".to_owned(), "in_ids"),
        ("in_id=,".to_owned(), "in_id"),
        (format!("in_ids={},x", hundred.join(",")), "in_ids"),
        (format!("in_ids=a,{}", "i".repeat(65)), "in_ids"),
        ("in_ids=a%01b".to_owned(), "in_ids"),
    ] {
        let j = s
            .get(&u, &format!("{}?{query}", u.records("tabs")))
            .assert_error(400, 107);
        assert_eq!(j["details"][0]["location"], "querystring", "{query}: {j}");
        assert_eq!(j["details"][0]["name"], name, "{query}: {j}");
    }
    let r = s.get(
        &u,
        &format!("{}?in_ids={},a", u.records("tabs"), hundred[1..].join(",")),
    );
    assert_eq!(
        r.json(),
        json!({"data": [a]}),
        "the longest list Sync takes"
    );
    let long_id = u.record("tabs", &"i".repeat(65));
    let j = s
        .call(&u, "PUT", &long_id, &[], Some(&data("x")))
        .assert_error(400, 107);
    assert_eq!(j["details"][0]["name"], "id", "{j}");
    let long_coll = u.record(&"c".repeat(33), "a");
    let j = s.get(&u, &long_coll).assert_error(400, 107);
    assert_eq!(j["details"][0]["name"], "collection_id", "{j}");
    for (i, (body, field)) in [
        (r#"{"payload": "x", "sortindex": 1000000000}"#, "sortindex"),
        (r#"{"payload": "x", "sortindex": -1000000000}"#, "sortindex"),
        (r#"{"payload": "x", "ttl": 1000000000}"#, "ttl"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(r#"{{"data": {body}}}"#);
        let path = u.record("tabs", &format!("o{i}"));
        let j = s
            .call(&u, "PUT", &path, &[], Some(&body))
            .assert_error(400, 109);
        assert_eq!(
            j["details"][0]["name"],
            format!("data.{field}"),
            "{body}: {j}"
        );
    }
    assert_eq!(list(&s, &u, "tabs"), [a], "nothing written");
    // The bounds themselves are written.
    for (i, body) in [
        r#"{"payload": "x", "sortindex": 999999999, "ttl": 999999999}"#,
        r#"{"payload": "x", "sortindex": -999999999}"#,
    ]
    .into_iter()
    .enumerate()
    {
        next_tick();
        let path = u.record("tabs", &format!("b{i}"));
        let r = s.call(
            &u,
            "PUT",
            &path,
            &[],
            Some(&format!(r#"{{"data": {body}}}"#)),
        );
        assert_eq!(r.status, 200, "{body}: {}", r.body);
    }
}

// ------------------------------------------------------------------ what Kinto clients use

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn fields_keeps_only_the_named_fields() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    for i in 0..2 {
        let rec = json!({"payload": format!("p{i}"), "sortindex": 5 + i});
        let full = seed(&s, &u, "tabs", &format!("f{i}"), rec);
        assert_eq!(full["sortindex"], 5 + i);
    }
    let only = keys(&["id", "last_modified", "payload"]);
    let r = s.get(&u, &format!("{}?_fields=payload", u.records("tabs")));
    assert_eq!(r.status, 200, "{}", r.body);
    let recs = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(recs.len(), 2, "{}", r.body);
    for rec in &recs {
        assert_eq!(fields(rec), only, "{rec}");
    }
    let r = s.get(&u, &format!("{}?_fields=payload", u.record("tabs", "f1")));
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = &r.json()["data"];
    assert_eq!(fields(rec), only, "one record with _fields=payload: {rec}");
    assert_eq!(rec["payload"], "p1");
}

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn bucket_and_collections_list_the_users_collections() {
    let p = peer();
    let s = Real::start(p);
    let u = p.user();
    let mut want = BTreeMap::new();
    for coll in ["tabs", "forms", "history"] {
        let rec = seed(&s, &u, coll, "x", json!({"payload": coll}));
        want.insert(coll.to_owned(), lm(&rec));
    }
    let newest = *want.values().max().unwrap();
    for form in [Form::Bucket, Form::Header] {
        let u = u.in_form(form);
        let path = format!("/v1/buckets/{}/collections", u.bucket());
        let r = s.get(&u, &path);
        assert_eq!(r.status, 200, "{form:?} {path}: {}", r.body);
        let j = r.json();
        let mut got = BTreeMap::new();
        for c in j["data"].as_array().unwrap_or(&Vec::new()) {
            assert_eq!(fields(c), keys(&["id", "last_modified"]), "{c}");
            got.insert(c["id"].as_str().unwrap().to_owned(), lm(c));
        }
        assert_eq!(got, want, "{form:?}: {j}");
        assert_eq!(r.header("Total-Records"), Some("3"), "{form:?}");

        let path = format!("/v1/buckets/{}", u.bucket());
        let r = s.get(&u, &path);
        assert_eq!(r.status, 200, "{form:?} {path}: {}", r.body);
        assert_eq!(
            r.json(),
            json!({"data": {"id": u.bucket(), "last_modified": newest}}),
            "{form:?}"
        );
    }
}

// ------------------------------------------------------------------ token server refusals

#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn token_server_refusals_are_401_and_never_show_the_token() {
    let p = peer();
    let mut s = spawn_syncto(&p.token_url);
    let agent = client();
    let get = |u: &User| call_on(&agent, &s.base, u, "GET", &u.records("tabs"), &[], None);
    let refused = |what: &str, u: &User| {
        let r = get(u);
        // As the original Syncto: a token server 401 is 401/105 "401 Unauthorized: <its body>".
        let j = r.assert_error(401, 105);
        let message = j["message"].as_str().unwrap();
        assert!(message.starts_with("401 Unauthorized"), "{what}: {j}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"Syncto\""),
            "{what}"
        );
        assert!(
            !r.body.contains(jwt(u)) && !r.body.contains("eyJ"),
            "{what}: {j}"
        );
    };

    // A token signed by a key the token server does not know.
    let bad = p.token(&random_hex(16), &random_hex(16), &["--bad-key"]);
    refused("bad token", &bad);

    // A user known with one client state, then another key id with the same keys_changed_at.
    let u = p.user();
    let r = get(&u);
    assert_eq!(r.status, 200, "{}", r.body);
    let other = p.token(&u.uid, &random_hex(16), &[]);
    assert_eq!(
        other.kid.split('-').next(),
        Some(DEFAULT_KCA.to_string().as_str())
    );
    let wrong_kid = User {
        kid: other.kid.clone(),
        ..u.clone()
    };
    refused("wrong key id (bucket)", &wrong_kid);
    refused("wrong key id (X-KeyID)", &wrong_kid.in_form(Form::Header));
    refused("other client state, same keys_changed_at", &other);

    // keys_changed_at going backwards.
    let uid = random_hex(16);
    let cs = random_hex(16);
    let later = (DEFAULT_KCA + 60_000).to_string();
    let newer = p.token(&uid, &cs, &["--keys-changed-at", &later]);
    let r = get(&newer);
    assert_eq!(r.status, 200, "{}", r.body);
    let older = p.token(&uid, &cs, &["--generation", &later]);
    assert!(
        older.kid.starts_with(&format!("{DEFAULT_KCA}-")),
        "{}",
        older.kid
    );
    refused("keys_changed_at going backwards", &older);

    let log = s.stop();
    assert!(log.contains("/v1/buckets/"), "no request summary: {log}");
    for u in [&bad, &u, &other, &newer, &older] {
        assert!(!log.contains(jwt(u)), "a token is in the log:\n{log}");
    }
    assert!(!log.contains("eyJ") && !log.contains("Bearer"), "{log}");
}

/// `log_user_ids = hashed` against the real node, whose endpoint for a user is
/// `…/1.5/<uid>`: a refusal of the node that is logged names the node and the path on it
/// as `/...`, never the uid, and the request lines name the bucket as `hmac:`, never the key
/// id. Nothing else in the log, debug lines included, holds the node path of the user.
#[test]
#[ignore = "needs the real Sync server: PEER_DIR"]
fn hashed_user_ids_keep_the_node_path_of_the_user_out_of_the_log() {
    let p = peer();
    let mut s = spawn_syncto_with(&p.token_url, &[("SYNCTO_LOG_USER_IDS", "hashed")]);
    let agent = client();
    let u = p.user();
    let get = |path: &str| call_on(&agent, &s.base, &u, "GET", path, &[], None);
    assert_eq!(get(&u.records("tabs")).status, 200);
    get(&u.record("tabs", "missing")).assert_error(404, 110);
    // A page token the node refuses.
    let refused = get(&format!(
        "{}?_limit=1&_token=not-an-offset",
        u.records("tabs")
    ));
    assert!(refused.status >= 400, "{} {}", refused.status, refused.body);
    let log = s.stop();
    let node = p.token_url.split('/').nth(2).unwrap();
    assert!(
        log.contains(&format!("sync node answered 400: {node}/.../storage/tabs")),
        "{log}"
    );
    assert!(!log.contains("/1.5/"), "a uid is in the log:\n{log}");
    assert!(!log.contains(&u.kid) && !log.contains(jwt(&u)), "{log}");
    assert!(log.contains("/v1/buckets/hmac:"), "{log}");
}
