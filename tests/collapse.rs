//! Batched writes against the fake node: which Sync calls a batch's writes become, how the
//! node's answers map back to sub-requests (failed records, 412, conflicts, 401), the node's
//! limits, and the metrics. That the answers are exactly the one-by-one path's is shown
//! against the real server (`real::collapse`).

use crate::support::*;
use fakes::{Canned, PostLimits, Seen};
use serde_json::{Value, json};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn batch(s: &Syncto, requests: Vec<Value>) -> Vec<Value> {
    let body = json!({ "requests": requests }).to_string();
    let r = s.req("POST", "/v1/batch", &[BEARER, JSON], Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["responses"].as_array().unwrap().clone()
}

fn statuses(subs: &[Value]) -> Vec<u64> {
    subs.iter().map(|s| s["status"].as_u64().unwrap()).collect()
}

fn put(id: &str, headers: Value, payload: &str) -> Value {
    json!({"method": "PUT", "path": record("tabs", id), "headers": headers,
           "body": {"data": {"payload": payload}}})
}

fn delete(id: &str, headers: Value) -> Value {
    json!({"method": "DELETE", "path": record("tabs", id), "headers": headers})
}

/// The node's requests, as `METHOD path?query` without the user's prefix.
fn calls(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| {
            let url = s.url.splitn(4, '/').nth(3).unwrap_or(&s.url);
            format!("{} /{url}", s.method)
        })
        .collect()
}

fn lm(sub: &Value) -> u64 {
    sub["body"]["data"]["last_modified"].as_u64().unwrap()
}

#[test]
fn a_batch_of_writes_is_one_read_one_delete_and_one_post() {
    let s = writable();
    s.fake.put(KID, "tabs", "u1", "old u1", 100);
    s.fake.put(KID, "tabs", "d1", "old d1", 110);
    s.fake.put(KID, "tabs", "x1", "old x1", 120);
    let subs = batch(
        &s,
        vec![
            put("c1", json!({"If-None-Match": "*"}), "new c1"),
            put("u1", json!({"If-Match": "\"1000\""}), "new u1"),
            put("x1", json!({"If-Match": "\"10\""}), "lost"),
            // Answered without Sync, in place.
            json!({"method": "PUT", "path": record("tabs", "bad"), "body": {"data": {"payload": 1}}}),
            delete("d1", json!({"If-Match": "\"1100\""})),
            delete("nope", json!({})),
        ],
    );
    assert_eq!(statuses(&subs), [201, 200, 412, 400, 200, 404], "{subs:?}");
    // Written by one call each: one timestamp for the PUTs, one for the delete.
    assert_eq!(lm(&subs[0]), lm(&subs[1]));
    assert_ne!(lm(&subs[0]), lm(&subs[4]));
    for i in [0, 1, 4] {
        assert_eq!(
            subs[i]["headers"]["ETag"],
            format!("\"{}\"", lm(&subs[i])),
            "{}",
            subs[i]
        );
    }
    assert_eq!(
        subs[1]["body"]["data"],
        json!({"id": "u1", "payload": "new u1", "last_modified": lm(&subs[1])})
    );
    assert_eq!(
        subs[4]["body"]["data"],
        json!({"id": "d1", "last_modified": lm(&subs[4]), "deleted": true})
    );
    assert_eq!(subs[2]["body"]["details"]["existing"]["payload"], "old x1");
    assert_eq!(subs[5]["body"]["errno"], 110);
    assert_eq!(
        calls(&s.fake.sync_seen()),
        [
            "GET /storage/tabs?ids=c1,u1,x1,d1,nope&full=1",
            "DELETE /storage/tabs?ids=d1",
            "GET /info/configuration",
            "POST /storage/tabs",
            "GET /storage/tabs?ids=c1&full=1",
        ]
    );
    let seen = s.fake.sync_seen();
    // Conditional on the collection as read, then as the delete left it.
    assert_eq!(seen[1].header("x-if-unmodified-since"), Some("1.20"));
    let deleted = lm(&subs[4]);
    let seconds = format!("{}.{:02}", deleted / 1000, deleted % 1000 / 10);
    assert_eq!(
        seen[3].header("x-if-unmodified-since"),
        Some(seconds.as_str())
    );
    let post: Value = serde_json::from_str(&seen[3].body).unwrap();
    assert_eq!(
        post,
        json!([{"id": "c1", "payload": "new c1"}, {"id": "u1", "payload": "new u1"}])
    );
    assert_eq!(s.fake.record(KID, "tabs", "u1").unwrap().payload, "new u1");
    assert!(s.fake.record(KID, "tabs", "d1").is_none());
    assert_eq!(s.fake.record(KID, "tabs", "x1").unwrap().payload, "old x1");
    assert_eq!(s.fake.hawk_failures(), 0);
    // The node's limits are kept: the next batch does not ask again.
    let subs = batch(&s, vec![put("a", json!({}), "a"), put("b", json!({}), "b")]);
    assert_eq!(statuses(&subs), [200, 200]);
    let seen = calls(&s.fake.sync_seen());
    assert_eq!(
        seen.iter().filter(|c| c.contains("configuration")).count(),
        1
    );
}

#[test]
fn the_nodes_limits_cut_the_posts_and_one_record_over_them_goes_alone() {
    let s = writable();
    s.fake.limit_posts(PostLimits {
        records: 3,
        record_bytes: 100,
        ..PostLimits::default()
    });
    let mut requests: Vec<Value> = (0..10)
        .map(|i| put(&format!("r{i}"), json!({}), &format!("r{i}")))
        .collect();
    requests.push(put("big", json!({}), &"x".repeat(101)));
    let subs = batch(&s, requests);
    // The record over the node's limit is refused by the node itself, on its own.
    assert_eq!(
        statuses(&subs),
        [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 400]
    );
    let seen = calls(&s.fake.sync_seen());
    let posts = s
        .fake
        .sync_seen()
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| {
            serde_json::from_str::<Value>(&c.body)
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        })
        .collect::<Vec<_>>();
    assert_eq!(posts, [3, 3, 3, 1], "{seen:?}");
    assert_eq!(seen.last().unwrap(), "PUT /storage/tabs/big");
}

#[test]
fn records_the_node_did_not_write_go_one_by_one() {
    let s = writable();
    // Listed in `failed`, and listed nowhere: neither was written.
    s.fake.script_sync([Canned::new(
        200,
        r#"{"modified": 5.00, "success": ["a"], "failed": {"b": "retry bso"}}"#,
    )
    .with("X-Last-Modified", "5.00")
    .for_method("POST")]);
    let subs = batch(
        &s,
        vec![
            put("a", json!({}), "a"),
            put("b", json!({}), "b"),
            put("c", json!({}), "c"),
        ],
    );
    assert_eq!(statuses(&subs), [200, 200, 200]);
    assert_eq!(lm(&subs[0]), 5000);
    let seen = calls(&s.fake.sync_seen());
    assert_eq!(
        seen[seen.len() - 2..],
        ["PUT /storage/tabs/b", "PUT /storage/tabs/c"],
        "{seen:?}"
    );
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "b");
    assert_eq!(s.fake.record(KID, "tabs", "c").unwrap().payload, "c");
}

#[test]
fn a_412_reads_again_at_most_twice_then_goes_one_by_one() {
    let stale = || {
        Canned::new(412, "")
            .with("X-Last-Modified", "9.00")
            .for_method("POST")
    };
    let s = writable();
    s.fake.put(KID, "tabs", "a", "old", 100);
    s.fake.script_sync([stale()]);
    let subs = batch(
        &s,
        vec![
            put("a", json!({"If-Match": "\"1000\""}), "A"),
            put("b", json!({}), "B"),
        ],
    );
    assert_eq!(statuses(&subs), [200, 200]);
    let seen = calls(&s.fake.sync_seen());
    let reads = seen.iter().filter(|c| c.contains("ids=a,b")).count();
    assert_eq!(reads, 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|c| c.starts_with("POST")).count(), 2);

    let s = writable();
    s.fake.put(KID, "tabs", "a", "old", 100);
    s.fake.script_sync([stale(), stale(), stale()]);
    let subs = batch(
        &s,
        vec![
            put("a", json!({"If-Match": "\"1000\""}), "A"),
            put("b", json!({}), "B"),
        ],
    );
    assert_eq!(statuses(&subs), [200, 200]);
    let seen = calls(&s.fake.sync_seen());
    assert_eq!(
        seen.iter().filter(|c| c.contains("ids=a,b")).count(),
        3,
        "{seen:?}"
    );
    assert_eq!(
        seen[seen.len() - 3..],
        [
            "GET /storage/tabs/a",
            "PUT /storage/tabs/a",
            "PUT /storage/tabs/b"
        ],
        "one by one, as without collapsing"
    );
    assert_eq!(s.fake.record(KID, "tabs", "a").unwrap().payload, "A");
}

#[test]
fn a_conflict_past_the_budget_is_every_writes_503_and_nothing_is_written() {
    let s = Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.write_conflict_budget = Duration::from_millis(200);
    });
    s.fake
        .script_sync((0..100).map(|_| Canned::conflict().for_method("POST")));
    let subs = batch(&s, vec![put("a", json!({}), "A"), put("b", json!({}), "B")]);
    assert_eq!(statuses(&subs), [503, 503]);
    for sub in &subs {
        assert_eq!(sub["headers"]["Retry-After"], "10", "{sub}");
    }
    let seen = calls(&s.fake.sync_seen());
    let posts = seen.iter().filter(|c| c.starts_with("POST")).count();
    assert!(
        (2..=30).contains(&posts),
        "repeated within the budget: {posts}"
    );
    assert!(!seen.iter().any(|c| c.starts_with("PUT")), "{seen:?}");
    s.fake.clear_sync_script();
    assert!(s.fake.record(KID, "tabs", "a").is_none());
}

#[test]
fn a_401_on_the_post_fetches_a_fresh_token_once() {
    let s = writable();
    s.fake
        .script_sync([Canned::new(401, "0").for_method("POST")]);
    let subs = batch(&s, vec![put("a", json!({}), "A"), put("b", json!({}), "B")]);
    assert_eq!(statuses(&subs), [200, 200]);
    assert_eq!(s.fake.token_calls(), 2);
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "B");
}

#[test]
fn what_does_not_collapse() {
    let s = Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.write_switches.insert("crypto".into(), on);
    });
    s.fake.put(KID, "tabs", "d", "old", 100);
    let subs = batch(
        &s,
        vec![
            // crypto: the node refuses a whole POST there for one bad record.
            json!({"method": "PUT", "path": record("crypto", "keys"), "body": {"data": {"payload": "k"}}}),
            json!({"method": "PUT", "path": record("crypto", "k2"), "body": {"data": {"payload": "k"}}}),
            // A read between two writes.
            put("a", json!({}), "a"),
            json!({"path": record("tabs", "a")}),
            put("b", json!({}), "b"),
            // An id with a comma; a DELETE with If-None-Match; a repeated id.
            put("x,y", json!({}), "comma"),
            delete("d", json!({"If-None-Match": "*"})),
            put("c", json!({}), "c"),
            put("c", json!({}), "c again"),
        ],
    );
    assert_eq!(
        statuses(&subs),
        [200, 200, 200, 200, 200, 200, 412, 200, 200]
    );
    let seen = calls(&s.fake.sync_seen());
    assert!(!seen.iter().any(|c| c.starts_with("POST")), "{seen:?}");
}

#[test]
fn switched_off_every_write_is_its_own_call() {
    let s = writable_one_by_one();
    let subs = batch(&s, vec![put("a", json!({}), "a"), put("b", json!({}), "b")]);
    assert_eq!(statuses(&subs), [200, 200]);
    assert_eq!(
        calls(&s.fake.sync_seen()),
        ["PUT /storage/tabs/a", "PUT /storage/tabs/b"]
    );
}

#[test]
fn the_hello_offers_batches_of_100() {
    let s = Syncto::start();
    let j = s.get("/v1/", &[]).json();
    assert_eq!(j["settings"]["batch_max_requests"], 100, "{j}");
    assert_eq!(j["settings"]["cliquet.batch_max_requests"], 100, "{j}");
}

#[test]
fn timers_and_counters_of_the_collapsed_writes() {
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = statsd.local_addr().unwrap().to_string();
    let s = Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.statsd_url = Some(addr);
        c.statsd_prefix = "syncto".into();
    });
    s.fake.put(KID, "tabs", "d", "old", 100);
    let subs = batch(
        &s,
        vec![
            put("a", json!({"If-None-Match": "*"}), "a"),
            put("b", json!({}), "b"),
            delete("d", json!({})),
        ],
    );
    assert_eq!(statuses(&subs), [201, 200, 200]);
    statsd
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut lines = String::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match statsd.recv(&mut buf) {
            Ok(n) => {
                lines.push_str(&String::from_utf8_lossy(&buf[..n]));
                lines.push('\n');
            }
            Err(_) => break,
        }
    }
    for want in [
        "syncto.syncclient.syncclient.snapshot_records:",
        "syncto.syncclient.syncclient.delete_records:",
        "syncto.syncclient.syncclient.post_records:",
        "syncto.syncclient.syncclient.info_configuration:",
        "syncto.batch.collapse.segments:1|c",
        "syncto.view.record.PUT:1|c",
        "syncto.view.record.DELETE:1|c",
    ] {
        assert!(lines.contains(want), "no {want} in:\n{lines}");
    }
    assert!(!lines.contains("put_record"), "{lines}");
}

fn posted(s: &Syncto) -> Vec<Vec<String>> {
    s.fake
        .sync_seen()
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| {
            let bsos: Value = serde_json::from_str(&c.body).unwrap();
            bsos.as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_ids_of_one_read_take_at_most_4_kib_of_its_query() {
    let s = writable();
    // 63-character ids: each takes 64 bytes of the query with its comma, 64 of them
    // exactly 4 KiB, so the 65th starts a segment of its own (one write: one by one).
    let ids: Vec<String> = (0..65).map(|i| format!("r{i:062}")).collect();
    let subs = batch(&s, ids.iter().map(|id| put(id, json!({}), "x")).collect());
    assert_eq!(statuses(&subs), [200; 65]);
    let seen = calls(&s.fake.sync_seen());
    assert_eq!(
        seen[0],
        format!("GET /storage/tabs?ids={}&full=1", ids[..64].join(","))
    );
    assert_eq!(posted(&s), [ids[..64].to_vec()]);
    assert_eq!(
        seen.last().unwrap(),
        &format!("PUT /storage/tabs/{}", ids[64])
    );
    for id in &ids {
        assert_eq!(s.fake.record(KID, "tabs", id).unwrap().payload, "x");
    }
}
