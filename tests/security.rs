//! The security review's findings, each reproduced as the attack was made:
//! batch amplification and pinning, memory per request, large batch
//! defaults, a panic reachable from input, dot segments, the Host header,
//! control characters in User-Agent, made-up StatsD names. Plus the parity
//! points of the batch answer and error details with Kinto.

use crate::support::*;
use fakes::{Canned, Fake};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Most bytes read from one storage-node answer, and most bytes of
/// sub-response bodies in one batch answer (both 16 MiB, as documented).
const READ_LIMIT: usize = 16 * 1024 * 1024;
const ANSWER_LIMIT: usize = 16 * 1024 * 1024;

fn batch(s: &Syncto, outer: &[(&str, &str)], body: &Value) -> Resp {
    let mut headers = vec![JSON];
    headers.extend_from_slice(outer);
    s.req("POST", "/v1/batch", &headers, Some(&body.to_string()))
}

/// The start of a body, for failure messages (some answers here are 16 MB).
fn start(body: &str) -> &str {
    let mut end = body.len().min(400);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

fn responses(r: &Resp) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", start(&r.body));
    r.json()["responses"].as_array().unwrap().clone()
}

fn statuses(r: &Resp) -> Vec<u64> {
    responses(r)
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect()
}

/// `/buckets/<KID>/collections/tabs` (a batch path, without `/v1`).
fn tabs() -> String {
    format!("/buckets/{KID}/collections/tabs")
}

/// A server configured the way an operator does it: `[app:main]` lines.
fn with_ini(lines: &str) -> Syncto {
    let fake = Fake::start();
    let base = test_config(&fake);
    let text = format!(
        "[app:main]\ntoken_server_url = {}\nrecord_tabs_put_enabled = true\n{lines}\n",
        fake.token_url
    );
    let mut c = syncto::config::Config::from_ini(&text, Path::new("test.ini"), &[])
        .expect("test configuration");
    c.listen = base.listen;
    c.workers = base.workers;
    c.upstream_timeout = Duration::from_secs(base.upstream_timeout.as_secs());
    c.upstream_connect_timeout = Duration::from_secs(base.upstream_connect_timeout.as_secs());
    Syncto::on(fake, c)
}

/// The status line and the JSON body of a raw answer.
fn raw_answer(base: &str, bytes: &[u8]) -> (u16, Value) {
    let answer = raw(base, bytes);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}

// 1. Amplification and worker pinning through batch.

#[test]
fn health_routes_are_refused_in_a_batch() {
    let s = Syncto::start();
    for path in [
        "/__heartbeat__",
        "/v1/__heartbeat__",
        "/__heartbeat__?probe=1",
        "/__lbheartbeat__",
        "/__version__",
    ] {
        let body = json!({"requests": [{"path": "/"}, {"path": path}]});
        let r = batch(&s, &[], &body);
        let j = r.assert_error(400, 107);
        assert_eq!(j["details"][0]["location"], "body", "{path}");
        assert_eq!(j["details"][0]["name"], "requests.1.path", "{path}");
    }
    assert!(
        s.fake.token_seen().is_empty(),
        "no Token Server heartbeat was made"
    );
    // They still answer on their own, and the hello is fine in a batch.
    assert_eq!(s.get("/v1/__heartbeat__", &[]).status, 200);
    assert_eq!(
        statuses(&batch(&s, &[], &json!({"requests": [{"path": "/"}]}))),
        [200]
    );
}

#[test]
fn a_batch_has_one_deadline_and_hides_nothing_done() {
    let s = with_ini("batch_timeout_seconds = 1\nbatch_collapse = false");
    // The node takes 1.5 s per answer (well within the 5 s read timeout).
    s.fake.hang_sync(Duration::from_millis(1500));
    let put = |id: &str| json!({"method": "PUT", "path": format!("{}/records/{id}", tabs()), "body": {"data": {"payload": id}}});
    let body = json!({"requests": [put("a"), put("b"), {"path": format!("{}/records", tabs())}]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(statuses(&r), [200, 503, 503]);
    let subs = responses(&r);
    // The write that ran is reported as done.
    assert_eq!(subs[0]["body"]["data"]["payload"], "a");
    for sub in &subs[1..] {
        assert_eq!(sub["body"]["errno"], 201, "{sub}");
        assert!(
            sub["body"]["message"]
                .as_str()
                .unwrap()
                .contains("it was not run"),
            "{sub}"
        );
        assert!(sub["headers"]["Retry-After"].is_string(), "{sub}");
    }
    // The others were not run: one storage call, and no record b.
    assert_eq!(s.fake.sync_seen().len(), 1);
    assert!(s.fake.record(KID, "tabs", "a").is_some());
    assert!(s.fake.record(KID, "tabs", "b").is_none());
}

#[test]
fn no_upstream_call_starts_past_a_batchs_deadline() {
    let s = with_ini("batch_timeout_seconds = 1");
    s.fake.put(KID, "tabs", "x", "old", 100);
    // The node takes 1.5 s per answer: the first call of a sub-request ends past the
    // deadline, and the write it was reading for is not made.
    s.fake.hang_sync(Duration::from_millis(1500));
    let put = |id: &str, headers: Value| json!({"method": "PUT", "path": format!("{}/records/{id}", tabs()), "headers": headers, "body": {"data": {"payload": id}}});
    // One by one: If-Match reads the record first.
    let body = json!({"requests": [put("x", json!({"If-Match": "\"1000\""}))]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(statuses(&r), [503]);
    assert_eq!(responses(&r)[0]["body"]["errno"], 201);
    assert_eq!(s.fake.sync_seen().len(), 1, "the read, no write");
    assert_eq!(s.fake.record(KID, "tabs", "x").unwrap().payload, "old");
    // Collapsed: the read of the records, then no write for any of them.
    let body = json!({"requests": [put("a", json!({})), put("b", json!({})), put("c", json!({}))]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(statuses(&r), [503, 503, 503]);
    for sub in responses(&r) {
        assert_eq!(sub["body"]["errno"], 201, "{sub}");
        assert!(sub["headers"]["Retry-After"].is_string(), "{sub}");
    }
    let seen = s.fake.sync_seen();
    assert_eq!(seen.len(), 2, "one more read, no write");
    assert_eq!(seen[1].method, "GET");
    assert!(s.fake.record(KID, "tabs", "a").is_none());
}

#[test]
fn one_batch_makes_few_token_server_calls() {
    let s = Syncto::start();
    let requests: Vec<Value> = (0..25)
        .map(|i| {
            json!({"path": format!("{}/records", tabs()),
                   "headers": {"Authorization": format!("Bearer made-up-{i}")}})
        })
        .collect();
    let r = batch(&s, &[], &json!({"requests": requests}));
    let subs = responses(&r);
    assert_eq!(s.fake.token_calls(), 3, "at most three exchanges per batch");
    assert!(subs[..3].iter().all(|x| x["status"] == 200));
    for sub in &subs[3..] {
        assert_eq!(sub["status"], 400, "{sub}");
        assert_eq!(sub["body"]["errno"], 107);
        assert_eq!(sub["body"]["details"][0]["location"], "header");
        assert_eq!(sub["body"]["details"][0]["name"], "Authorization");
    }
    // One user's batch is not affected: one exchange for 25 sub-requests.
    let requests: Vec<Value> = (0..25)
        .map(|i| json!({"path": format!("{}/records/r{i}", tabs())}))
        .collect();
    let r = batch(
        &s,
        &[("Authorization", "Bearer someone")],
        &json!({"requests": requests}),
    );
    assert!(statuses(&r).iter().all(|s| *s == 404));
    assert_eq!(s.fake.token_calls(), 4);
}

#[test]
fn repeated_refusals_of_one_credential_cost_one_call() {
    let s = Syncto::start();
    let bad = ("Authorization", "Bearer invalid");
    let requests: Vec<Value> = (0..25)
        .map(|_| json!({"path": format!("{}/records", tabs())}))
        .collect();
    let r = batch(&s, &[bad], &json!({"requests": requests}));
    for sub in responses(&r) {
        assert_eq!(sub["status"], 401, "{sub}");
        assert_eq!(sub["body"]["errno"], 105, "{sub}");
    }
    assert_eq!(s.fake.token_calls(), 1);
    // Separate requests too, with the same answer as the first.
    let r = s.get(&records("tabs"), &[bad]);
    let j = r.assert_error(401, 105);
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("invalid-credentials"),
        "{j}"
    );
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"Syncto\"")
    );
    assert_eq!(s.fake.token_calls(), 1);
    // The same token with another key id is another credential.
    let r = s.get(
        "/v1/buckets/syncto/collections/tabs/records",
        &[bad, ("X-KeyID", "1-AAAAAAAAAAAAAAAAAAAAAA")],
    );
    r.assert_error(401, 105);
    assert_eq!(s.fake.token_calls(), 2);
    // A Token Server fault says nothing about the credential: not kept.
    let flaky = ("Authorization", "Bearer flaky");
    for canned in [
        Canned::new(503, "{}"),
        Canned::new(500, "{}"),
        Canned::new(429, "{}"),
    ] {
        s.fake.script_token([canned]);
        assert_ne!(s.get(&records("tabs"), &[flaky]).status, 200);
    }
    assert_eq!(s.get(&records("tabs"), &[flaky]).status, 200);
    assert_eq!(s.fake.token_calls(), 6);
}

// 2. What one request may hold.

fn page_of(payload_bytes: usize) -> String {
    format!(
        r#"[{{"id":"big","modified":1444385059.19,"payload":"{}"}}]"#,
        "x".repeat(payload_bytes)
    )
}

#[test]
fn a_page_over_the_read_limit_is_a_clear_error() {
    let s = Syncto::start();
    s.fake.script_sync([Canned::new(200, &page_of(READ_LIMIT))]);
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 400, "{}", start(&r.body));
    let j = r.assert_error(400, 107);
    assert_eq!(j["details"][0]["location"], "querystring");
    assert_eq!(j["details"][0]["name"], "_limit");
    assert!(j["message"].as_str().unwrap().contains("_limit"), "{j}");
    assert_eq!(s.fake.sync_seen().len(), 1, "not read twice");
    // Just under it is served.
    s.fake
        .script_sync([Canned::new(200, &page_of(READ_LIMIT - 100))]);
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 200, "{}", start(&r.body));
    assert_eq!(r.json()["data"][0]["id"], "big");
}

#[test]
fn a_batch_answer_is_bounded_and_writes_are_never_hidden() {
    let s = writable();
    let big = Canned::new(200, &page_of(ANSWER_LIMIT * 6 / 10));
    s.fake.script_sync([big.clone(), big]);
    let list = json!({"path": format!("{}/records", tabs())});
    let put = json!({"method": "PUT", "path": format!("{}/records/w", tabs()), "body": {"data": {"payload": "small"}}});
    let r = batch(&s, &[BEARER], &json!({"requests": [list, list, put]}));
    assert!(r.body.len() < ANSWER_LIMIT + 64 * 1024, "{}", r.body.len());
    let subs = responses(&r);
    assert_eq!(subs[0]["status"], 200);
    assert_eq!(subs[1]["status"], 400);
    assert_eq!(subs[1]["body"]["errno"], 107);
    assert_eq!(subs[1]["body"]["details"][0]["name"], "requests.1");
    // The write after it still runs and is reported.
    assert_eq!(subs[2]["status"], 200);
    assert_eq!(subs[2]["body"]["data"]["payload"], "small");
    assert_eq!(s.fake.record(KID, "tabs", "w").unwrap().payload, "small");
}

#[test]
fn a_write_whose_answer_can_not_fit_is_not_run() {
    let s = with_ini("max_body_bytes = 33554432");
    // A node that takes records this large (syncstorage-rs's default limit is 2.5 MiB).
    s.fake.limit_posts(fakes::PostLimits {
        record_bytes: ANSWER_LIMIT,
        ..fakes::PostLimits::default()
    });
    let payload = "p".repeat(ANSWER_LIMIT / 3);
    let put = |id: &str| json!({"method": "PUT", "path": format!("{}/records/{id}", tabs()), "body": {"data": {"payload": payload}}});
    let body = json!({"requests": [put("a"), put("b"), put("c"), put("d")]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(statuses(&r), [200, 200, 400, 400]);
    let subs = responses(&r);
    assert!(
        subs[2]["body"]["message"]
            .as_str()
            .unwrap()
            .contains("was not run")
    );
    assert!(s.fake.record(KID, "tabs", "b").is_some());
    assert!(s.fake.record(KID, "tabs", "c").is_none());
    assert!(s.fake.record(KID, "tabs", "d").is_none());
}

#[test]
fn pages_are_bounded_by_paginate_by() {
    let s = with_ini("paginate_by = 2");
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        s.fake.put(KID, "tabs", id, "x", 144_377_478_425 + i as u64);
    }
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.fake.last_sync().url,
        "/1.5/1/storage/tabs?full=1&limit=2&sort=newest"
    );
    assert_eq!(r.header("Total-Records"), None, "unknown past one page");
    let next = r.header("Next-Page").unwrap().to_owned();
    assert_eq!(next, format!("{}{}?_token=2", s.base, records("tabs")));
    let r = s.auth_get(next.trim_start_matches(&s.base));
    assert_eq!(r.json()["data"][0]["id"], "a");
    assert_eq!(r.header("Next-Page"), None);
    // A larger _limit is capped too.
    s.auth_get(&format!("{}?_limit=500", records("tabs")));
    assert_eq!(
        s.fake.last_sync().url,
        "/1.5/1/storage/tabs?full=1&limit=2&sort=newest"
    );
    // A page that holds everything still says how many.
    let r = s.auth_get(&format!("{}?in_ids=a", records("tabs")));
    assert_eq!(r.header("Total-Records"), Some("1"));
}

// 3. A large `defaults.body`.

#[test]
fn batch_bodies_are_objects_and_defaults_are_shared() {
    let s = writable();
    let array: Vec<u8> = vec![0; 600_000];
    let requests: Vec<Value> = (0..25)
        .map(|i| json!({"method": "PUT", "path": format!("{}/records/r{i}", tabs())}))
        .collect();
    let r = batch(
        &s,
        &[BEARER],
        &json!({"defaults": {"body": array}, "requests": requests}),
    );
    let j = r.assert_error(400, 107);
    assert_eq!(j["details"][0]["name"], "defaults.body");
    assert_eq!(s.fake.token_calls(), 0);
    assert!(s.fake.sync_seen().is_empty());
    // An object in defaults is the body of every sub-request without one.
    let body = json!({
        "defaults": {"method": "PUT", "body": {"data": {"payload": "D"}}},
        "requests": [
            {"path": format!("{}/records/a", tabs())},
            {"path": format!("{}/records/b", tabs()), "body": {"data": {"payload": "B"}}},
        ]
    });
    assert_eq!(statuses(&batch(&s, &[BEARER], &body)), [200, 200]);
    assert_eq!(s.fake.record(KID, "tabs", "a").unwrap().payload, "D");
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "B");
}

// 4. Timestamps out of range, panics.

#[test]
fn timestamps_past_year_9999_are_refused_not_a_panic() {
    let s = Syncto::start();
    for q in [
        "_since=253402300800000",
        "gt_last_modified=%22253402300800000%22",
        "_since=18446744073709551615",
    ] {
        let r = s.auth_get(&format!("{}?{q}", records("tabs")));
        let j = r.assert_error(400, 107);
        assert_eq!(j["details"][0]["location"], "querystring", "{q}");
    }
    for h in ["If-Match", "If-None-Match"] {
        let r = s.get(&records("tabs"), &[BEARER, (h, "\"253402300800000\"")]);
        r.assert_error(400, 107);
    }
    // The last representable millisecond is fine.
    let r = s.auth_get(&format!("{}?_since=253402300799999", records("tabs")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("ETag"), Some("\"253402300799999\""));
    assert_eq!(
        r.header("Last-Modified"),
        Some("Fri, 31 Dec 9999 23:59:59 GMT")
    );
    // From upstream, an unusable answer: 503, not a 500.
    s.fake
        .script_sync([Canned::new(200, "[]").with("X-Last-Modified", "253402300800.00")]);
    s.auth_get(&records("tabs")).assert_error(503, 201);
    s.fake.script_sync([Canned::new(
        200,
        r#"[{"id":"a","modified":253402300800.00,"payload":"x"}]"#,
    )]);
    s.auth_get(&records("tabs")).assert_error(503, 201);
    s.fake
        .script_sync([Canned::new(200, r#"{"tabs": 99999999999999.00}"#)]);
    s.auth_get(&format!("/v1/buckets/{KID}/collections/tabs"))
        .assert_error(503, 201);
    assert_eq!(s.get("/v1/", &[]).status, 200);
}

#[test]
fn a_malformed_since_stays_a_400() {
    let s = Syncto::start();
    for q in [
        "_since=-1",
        "_since=abc",
        "_since=1.5",
        "_since=",
        "_since=1e3",
    ] {
        let r = s.auth_get(&format!("{}?{q}", records("tabs")));
        let j = r.assert_error(400, 107);
        assert_eq!(j["message"], "_since should be a number.", "{q}");
        assert_eq!(
            j["details"],
            json!([{"location": "querystring", "name": "_since", "description": "_since should be a number."}]),
            "{q}"
        );
    }
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn a_failing_sub_request_does_not_hide_a_done_write() {
    let s = writable();
    let body = json!({"requests": [
        {"method": "PUT", "path": format!("{}/records/a", tabs()), "body": {"data": {"payload": "A"}}},
        {"path": format!("{}/records?_since=253402300800000", tabs())},
        {"method": "PUT", "path": format!("{}/records/c", tabs()), "body": {"data": {"payload": "C"}}},
    ]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(statuses(&r), [200, 400, 200]);
    assert!(s.fake.record(KID, "tabs", "a").is_some());
    assert!(s.fake.record(KID, "tabs", "c").is_some());
}

// 5. Dot segments.

#[test]
fn dot_segments_never_reach_the_node() {
    let s = writable();
    let paths = [
        record("tabs", ".."),
        record("tabs", "."),
        record("tabs", "%2e%2e"),
        record("tabs", "%2E"),
        record("tabs", ".%2e"),
        records(".."),
        records("%2e%2E"),
        format!("/v1/buckets/{KID}/collections/./records/x"),
        format!("/v1/buckets/{KID}/collections/.."),
        "/v1/buckets/../collections/tabs/records".to_owned(),
    ];
    for p in &paths {
        for method in ["GET", "DELETE", "PUT"] {
            let body = r#"{"data":{"payload":"x"}}"#;
            let head = format!(
                "{method} {p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let (status, j) = raw_answer(&s.base, head.as_bytes());
            if status == 405 {
                continue; // not a record route for this method
            }
            assert_eq!(
                (status, &j["errno"]),
                (400, &json!(107)),
                "{method} {p}: {j}"
            );
            assert_eq!(j["details"][0]["location"], "path", "{method} {p}");
        }
    }
    let body =
        json!({"requests": [{"method": "DELETE", "path": format!("{}/records/..", tabs())}]});
    assert_eq!(statuses(&batch(&s, &[BEARER], &body)), [400]);
    assert!(s.fake.sync_seen().is_empty(), "{:?}", s.fake.sync_seen());
    assert_eq!(s.fake.token_calls(), 0);
    // Dots inside an id are ordinary characters.
    s.fake.put(KID, "tabs", "...", "x", 100);
    assert_eq!(s.auth_get(&record("tabs", "...")).status, 200);
    assert_eq!(s.auth_get(&record("tabs", "a..b")).status, 404);
}

// 6. The Host header.

#[test]
fn a_host_header_that_is_not_host_and_port_is_refused() {
    let s = Syncto::start();
    for host in [
        "user@evil.example",
        "evil.example/x",
        "evil.example:99999",
        "evil.example:x",
        "[::1",
        "ev\"il.example",
        "a b",
    ] {
        let req = format!("GET /buckets/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = raw(&s.base, req.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
        assert!(!answer.contains("Location"), "{host}: {answer}");
        assert!(answer.contains("\"errno\":107"), "{host}: {answer}");
        assert!(!answer.contains("evil"), "{host}: {answer}");
    }
    let twice =
        "GET /v1/ HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n";
    assert!(raw(&s.base, twice.as_bytes()).starts_with("HTTP/1.1 400"));
    for host in ["h.example", "h.example:8443", "127.0.0.1:80", "[::1]:8000"] {
        let r = s.get("/buckets/x", &[("Host", host)]);
        assert_eq!(r.status, 307, "{host}");
        assert_eq!(
            r.header("Location"),
            Some(format!("http://{host}/v1/buckets/x").as_str())
        );
    }
}

#[test]
fn batch_sub_requests_keep_the_outer_host() {
    let s = Syncto::start();
    for id in ["a", "b"] {
        s.fake.put(KID, "tabs", id, "x", 100);
    }
    let body = json!({"requests": [
        {"path": "/"},
        {"path": "/", "headers": {"Host": "evil.example"}},
        {"path": format!("{}/records?_limit=1", tabs()), "headers": {"host": "evil.example"}},
    ]});
    let r = batch(&s, &[BEARER], &body);
    let subs = responses(&r);
    // The server's own URL, port included (the test client sends
    // `Host: 127.0.0.1:<port>`).
    assert_eq!(subs[0]["body"]["url"], format!("{}/v1/", s.base));
    assert_eq!(subs[1]["body"]["url"], format!("{}/v1/", s.base));
    let next = subs[2]["headers"]["Next-Page"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/v1/", s.base)), "{next}");
    // As Kinto: the path of a sub-response has no query string.
    assert_eq!(subs[2]["path"], format!("/v1{}/records", tabs()));
    assert_eq!(subs[0]["path"], "/v1/");
}

// 7. Control characters in User-Agent (and Authorization).

#[test]
fn control_characters_in_user_agent_are_refused_not_a_503() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 100);
    // In a request's own headers the listener refuses them (400), in the
    // User-Agent as in the token: nothing goes upstream.
    for header in ["User-Agent: a\x01b\x7fc", "Authorization: Bearer a\x01b"] {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n{header}\r\nConnection: close\r\n\r\n",
            records("tabs")
        );
        let (status, j) = raw_answer(&s.base, req.as_bytes());
        assert_eq!((status, &j["errno"]), (400, &json!(107)), "{j}");
    }
    // So does a batch for a sub-request's headers (JSON can carry them).
    let body = json!({"requests": [{
        "path": format!("{}/records", tabs()),
        "headers": {"User-Agent": "a\u{1}b\u{7f}c"},
    }]});
    batch(&s, &[BEARER], &body).assert_error(400, 107);
    assert_eq!(s.fake.token_calls(), 0);
    // A long one is cut.
    let long = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nUser-Agent: {}\r\nConnection: close\r\n\r\n",
        records("tabs"),
        "u".repeat(4000)
    );
    assert_eq!(raw_answer(&s.base, long.as_bytes()).0, 200);
    let ua = s.fake.last_sync().header("user-agent").unwrap().to_owned();
    assert!(ua.len() < 600, "{ua}");
    let token_ua = s.fake.token_seen()[0]
        .header("user-agent")
        .unwrap()
        .to_owned();
    assert_eq!(token_ua, ua);
}

// 8. StatsD names.

#[test]
fn made_up_methods_are_counted_under_one_name() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    let s = Syncto::with(|c| c.statsd_url = Some(addr));
    for method in ["X1", "A.B.C.D.E"] {
        let req = format!("{method} /v1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_answer(&s.base, req.as_bytes()).0, 405);
    }
    assert_eq!(s.get("/v1/", &[]).status, 200);
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = sock.recv(&mut buf) {
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let last = line.starts_with("syncto.view.hello.GET:");
        lines.push(line);
        if last {
            break;
        }
    }
    let others = lines
        .iter()
        .filter(|l| *l == "syncto.view.hello.OTHER:1|c")
        .count();
    assert_eq!(others, 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("X1") && !l.contains("A.B")),
        "{lines:?}"
    );
}

// Parity with Kinto: where an error is, said as Kinto says it.

#[test]
fn error_details_name_locations_as_kinto() {
    let s = writable();
    let r = s.get(&records("tabs"), &[BEARER, ("If-Match", "42")]);
    let j = r.assert_error(400, 107);
    assert_eq!(
        j["details"],
        json!([{"location": "header", "name": "If-Match", "description": "Invalid value for If-Match"}])
    );
    assert_eq!(j["message"], "Invalid value for If-Match");
    let r = s.req("OPTIONS", &records("tabs"), &[("Origin", "http://x")], None);
    let j = r.assert_error(400, 107);
    assert_eq!(
        j["details"][0],
        json!({"location": "header", "name": "Access-Control-Request-Method", "description": "this header is mandatory"})
    );
    assert_eq!(
        j["message"],
        "Access-Control-Request-Method in header: this header is mandatory"
    );
    let r = s.req("PUT", &record("tabs", "a"), &[BEARER, JSON], Some("[1]"));
    let j = r.assert_error(400, 107);
    assert_eq!(j["details"][0]["location"], "body");
    let description = j["details"][0]["description"].as_str().unwrap();
    assert!(!description.starts_with("body:"), "{description}");
    assert_eq!(j["message"], format!("body: {description}"));
    let r = s.req("PUT", &record("tabs", "a"), &[BEARER, JSON], Some("{oops"));
    let j = r.assert_error(400, 106);
    let description = j["details"][0]["description"].as_str().unwrap();
    assert!(description.starts_with("Invalid JSON request body"), "{j}");
    assert_eq!(j["message"], format!("body: {description}"));
    let r = s.auth_get(&format!("{}?_limit=x", records("tabs")));
    assert_eq!(
        r.assert_error(400, 107)["details"][0]["location"],
        "querystring"
    );
    let r = s.auth_get(&format!("/v1/buckets/{KID}/collections/ta%ffbs/records"));
    assert_eq!(r.assert_error(400, 107)["details"][0]["location"], "path");
}

#[test]
fn made_up_tokens_from_one_address_cost_a_bounded_number_of_token_server_calls() {
    // Behind a trusted proxy, so the test can speak for several client addresses.
    let s = with_ini("token_refusals_per_minute = 2\ntrusted_proxies = 127.0.0.1");
    let from = |ip: &'static str| ("X-Forwarded-For", ip);
    let attacker = from("203.0.113.66");
    // A user whose token works, from the same address, before the attack: known to work.
    let works = |token: &'static str, who: (&'static str, &'static str)| {
        let r = s.get(&records("tabs"), &[("Authorization", token), who]);
        assert_eq!(r.status, 200, "{}", r.body);
    };
    works("Bearer good-token", attacker);
    let calls_before = s.fake.token_calls();
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    let mut held_back = None;
    for i in 0..200 {
        let token = format!("Bearer invalid-{i}");
        let key = format!("{i}-AAAAAAAAAAAAAAAAAAAAAA");
        let r = s.get(
            "/v1/buckets/syncto/collections/tabs/records",
            &[("Authorization", &token), ("X-KeyID", &key), attacker],
        );
        *seen.entry(r.status).or_default() += 1;
        if r.status == 429 {
            held_back.get_or_insert(r);
        } else {
            r.assert_error(401, 105);
        }
    }
    // 2 refused credentials, then 429s that cost nothing upstream (each refusal costs 30 s
    // of the budget: the margin of this test on a slow machine).
    assert_eq!(s.fake.token_calls() - calls_before, 2, "{seen:?}");
    assert_eq!(seen, [(401, 2), (429, 198)].into_iter().collect());
    let r = held_back.unwrap();
    let j = r.assert_error(429, 117);
    assert!(j["message"].as_str().unwrap().contains("refused"), "{j}");
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=31).contains(&wait), "Retry-After {wait}");
    // The user whose token works is not held back: cached, and with a new token too (known
    // to the Token Server a moment ago).
    works("Bearer good-token", attacker);
    works("Bearer good-token-renewed", attacker);
    // Another address has its own budget.
    let r = s.get(
        "/v1/buckets/syncto/collections/tabs/records",
        &[
            ("Authorization", "Bearer invalid-x"),
            ("X-KeyID", "7-AAAAAAAAAAAAAAAAAAAAAA"),
            from("198.51.100.1"),
        ],
    );
    r.assert_error(401, 105);
    // A batch from the attacker gets the 429 per sub-request, with no call either.
    let calls = s.fake.token_calls();
    let requests: Vec<Value> = (0..5)
        .map(|i| {
            json!({"path": "/buckets/syncto/collections/tabs/records",
                   "headers": {"Authorization": format!("Bearer invalid-batch-{i}"),
                               "X-KeyID": "9-AAAAAAAAAAAAAAAAAAAAAA"}})
        })
        .collect();
    let r = batch(&s, &[attacker], &json!({"requests": requests}));
    assert!(
        statuses(&r).iter().all(|st| *st == 429),
        "{}",
        start(&r.body)
    );
    assert_eq!(s.fake.token_calls(), calls);
}
