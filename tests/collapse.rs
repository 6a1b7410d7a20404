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

/// The batch's answer bound (`MAX_ANSWER_BYTES`), as the README states it.
const ANSWER_LIMIT: usize = 16 * 1024 * 1024;

/// A server with writes on `tabs`, batches of up to 32 MiB and a node that takes records
/// as large as the answer bound and POSTs of twice that.
fn roomy() -> Syncto {
    let s = Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.max_body_bytes = 32 * 1024 * 1024;
    });
    s.fake.limit_posts(PostLimits {
        bytes: ANSWER_LIMIT,
        record_bytes: ANSWER_LIMIT,
        request_bytes: 2 * ANSWER_LIMIT,
        ..PostLimits::default()
    });
    s
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
fn writes_of_another_collection_or_user_start_a_new_segment() {
    const KID2: &str = "1234-AAAAAAAAAAAAAAAAAAAAAA";
    let s = Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.write_switches.insert("history".into(), on);
    });
    let history = |id: &str| {
        json!({"method": "PUT", "path": record("history", id),
               "body": {"data": {"payload": id}}})
    };
    let user2 = |id: &str| {
        json!({"method": "PUT", "path": format!("/v1/buckets/{KID2}/collections/tabs/records/{id}"),
               "body": {"data": {"payload": id}}})
    };
    let subs = batch(
        &s,
        vec![
            put("a", json!({}), "a"),
            put("b", json!({}), "b"),
            history("c"),
            history("d"),
            user2("e"),
            user2("f"),
        ],
    );
    assert_eq!(statuses(&subs), [200; 6], "{subs:?}");
    // Three segments, each reading its own records.
    let seen = calls(&s.fake.sync_seen());
    let reads: Vec<&String> = seen.iter().filter(|c| c.contains("ids=")).collect();
    assert_eq!(
        reads,
        [
            "GET /storage/tabs?ids=a,b&full=1",
            "GET /storage/history?ids=c,d&full=1",
            "GET /storage/tabs?ids=e,f&full=1",
        ],
        "{seen:?}"
    );
    // Each record is where its sub-request put it: its collection, its user.
    for (key, coll, id) in [
        (KID, "tabs", "a"),
        (KID, "tabs", "b"),
        (KID, "history", "c"),
        (KID, "history", "d"),
        (KID2, "tabs", "e"),
        (KID2, "tabs", "f"),
    ] {
        let stored = s.fake.record(key, coll, id).map(|b| b.payload);
        assert_eq!(stored.as_deref(), Some(id), "{key} {coll} {id}");
    }
    assert!(s.fake.record(KID, "tabs", "c").is_none());
    assert!(s.fake.record(KID, "tabs", "e").is_none());
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

#[test]
fn a_segments_bodies_take_at_most_half_the_room_left_in_the_answer() {
    let s = roomy();
    // `{"responses":[` leaves 16 MiB - 14 bytes: two bodies of exactly half of that
    // collapse; a third write, however small, does not join them.
    let half = (ANSWER_LIMIT - 14) / 2;
    let body = r#"{"data":{"payload":""}}"#.len();
    let p1 = half / 2 - body;
    let p2 = half - 2 * body - p1;
    let subs = batch(
        &s,
        vec![
            put("a", json!({}), &"a".repeat(p1)),
            put("b", json!({}), &"b".repeat(p2)),
            put("c", json!({}), "c"),
        ],
    );
    assert_eq!(statuses(&subs), [200, 200, 200]);
    assert_eq!(posted(&s), [["a", "b"]]);
    let seen = calls(&s.fake.sync_seen());
    assert_eq!(seen.last().unwrap(), "PUT /storage/tabs/c", "{seen:?}");
}

#[test]
fn a_write_whose_answer_can_not_fit_is_not_run_collapsed_or_not() {
    let s = roomy();
    // Five writes of a fifth of the answer bound (less 40 bytes): their bodies fit in it,
    // but not their answers, which are larger: one by one, the fifth is not run.
    // Collapsed, so it must stay: segments take no more than half the room left.
    let p = ANSWER_LIMIT / 5 - 40;
    let mut requests: Vec<Value> = (1..=5)
        .map(|i| put(&format!("w{i}"), json!({}), &"w".repeat(p)))
        .collect();
    // A write answered without the node, whose answer could not fit either; then two
    // writes that fit (4 KB each).
    requests.push(json!({"method": "PUT", "path": record("history", "z"),
                         "body": {"data": {"payload": "z".repeat(p)}}}));
    requests.push(put("a", json!({}), &"a".repeat(4096)));
    requests.push(put("b", json!({}), &"b".repeat(4096)));
    let subs = batch(&s, requests);
    assert_eq!(
        statuses(&subs),
        [200, 200, 200, 200, 400, 400, 200, 200],
        "{:?}",
        subs.iter()
            .map(|x| x["body"]["message"].clone())
            .collect::<Vec<_>>()
    );
    for sub in &subs[4..6] {
        assert_eq!(sub["body"]["errno"], 107, "{}", sub["body"]);
        let message = sub["body"]["message"].as_str().unwrap();
        assert!(message.contains("was not run"), "{message}");
    }
    assert!(s.fake.record(KID, "tabs", "w4").is_some());
    assert!(s.fake.record(KID, "tabs", "w5").is_none());
    // The two that fit are one segment.
    assert_eq!(posted(&s).last().unwrap(), &["a", "b"]);
}

#[test]
fn a_401_on_the_read_fetches_a_fresh_token_once() {
    let s = writable();
    s.fake
        .script_sync([Canned::new(401, "0").for_method("GET")]);
    let subs = batch(&s, vec![put("a", json!({}), "A"), put("b", json!({}), "B")]);
    assert_eq!(statuses(&subs), [200, 200], "{subs:?}");
    assert_eq!(s.fake.token_calls(), 2);
    let seen = calls(&s.fake.sync_seen());
    let reads = seen.iter().filter(|c| c.contains("ids=a,b")).count();
    assert_eq!(reads, 2, "{seen:?}");
    assert_eq!(posted(&s), [["a", "b"]]);
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "B");
}

#[test]
fn a_read_syncto_can_not_use_sends_the_writes_one_by_one() {
    let s = writable();
    s.fake.script_sync([Canned::new(200, "<html>")
        .with("X-Last-Modified", "1.00")
        .for_method("GET")]);
    let subs = batch(&s, vec![put("a", json!({}), "A"), put("b", json!({}), "B")]);
    assert_eq!(statuses(&subs), [200, 200], "{subs:?}");
    assert_eq!(
        calls(&s.fake.sync_seen()),
        [
            "GET /storage/tabs?ids=a,b&full=1",
            "PUT /storage/tabs/a",
            "PUT /storage/tabs/b"
        ]
    );
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "B");
}

#[test]
fn a_post_the_node_refuses_whole_goes_one_by_one() {
    let s = writable();
    s.fake
        .script_sync([Canned::new(400, "8").for_method("POST")]);
    let subs = batch(&s, vec![put("a", json!({}), "A"), put("b", json!({}), "B")]);
    assert_eq!(statuses(&subs), [200, 200], "{subs:?}");
    let seen = calls(&s.fake.sync_seen());
    assert_eq!(
        seen[seen.len() - 2..],
        ["PUT /storage/tabs/a", "PUT /storage/tabs/b"],
        "{seen:?}"
    );
    assert_eq!(s.fake.record(KID, "tabs", "a").unwrap().payload, "A");
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "B");
}

/// One batch: DELETE d, then PUT a and b (one segment); their sub-responses.
fn delete_d_then_put_a_and_b(s: &Syncto) -> Vec<Value> {
    batch(
        s,
        vec![
            delete("d", json!({})),
            put("a", json!({}), "A"),
            put("b", json!({}), "B"),
        ],
    )
}

#[test]
fn a_failed_delete_is_the_answer_of_every_write_not_made_yet() {
    let s = writable();
    s.fake.put(KID, "tabs", "d", "old", 100);
    // Not a conflict (never repeated), not of unknown fate: nothing was written, and
    // nothing more is sent.
    s.fake
        .script_sync([Canned::new(500, "0").for_method("DELETE")]);
    let subs = delete_d_then_put_a_and_b(&s);
    assert_eq!(statuses(&subs), [503, 503, 503], "{subs:?}");
    for sub in &subs {
        assert_eq!(sub["body"]["errno"], 201, "{sub}");
    }
    assert_eq!(
        calls(&s.fake.sync_seen()),
        [
            "GET /storage/tabs?ids=d,a,b&full=1",
            "DELETE /storage/tabs?ids=d"
        ]
    );
    assert_eq!(s.fake.record(KID, "tabs", "d").unwrap().payload, "old");
    assert!(s.fake.record(KID, "tabs", "a").is_none());
}

#[test]
fn an_unusable_answer_to_a_delete_is_its_answer_and_the_rest_is_read_again() {
    let s = writable();
    s.fake.put(KID, "tabs", "d", "old", 100);
    // A 3xx: whether the node deleted is unknown, so the DELETE is never sent again; the
    // PUTs it did not carry are read again and written.
    s.fake
        .script_sync([Canned::new(302, "").for_method("DELETE")]);
    let subs = delete_d_then_put_a_and_b(&s);
    assert_eq!(statuses(&subs), [503, 200, 200], "{subs:?}");
    assert_eq!(subs[0]["body"]["errno"], 201);
    assert_eq!(
        calls(&s.fake.sync_seen()),
        [
            "GET /storage/tabs?ids=d,a,b&full=1",
            "DELETE /storage/tabs?ids=d",
            "GET /storage/tabs?ids=a,b&full=1",
            "GET /info/configuration",
            "POST /storage/tabs",
        ]
    );
    assert_eq!(s.fake.record(KID, "tabs", "a").unwrap().payload, "A");
    assert_eq!(s.fake.record(KID, "tabs", "b").unwrap().payload, "B");
}

#[test]
fn a_create_missing_from_the_read_back_is_412_only_while_nothing_wrote_since() {
    // The node takes both creates at 5.00, but reading them back finds only b.
    let post = || {
        Canned::new(
            200,
            r#"{"modified": 5.00, "success": ["a", "b"], "failed": {}}"#,
        )
        .with("X-Last-Modified", "5.00")
        .with("X-Weave-Backoff", "30")
        .with("X-Weave-Quota-Remaining", "1000")
        .with("X-Weave-Alert", "node going away")
        .for_method("POST")
    };
    let read_back = |at: &str| {
        Canned::new(200, r#"[{"id":"b","modified":5.00,"payload":"b"}]"#)
            .with("X-Last-Modified", at)
            .for_method("GET")
    };
    let creates = || {
        vec![
            put("a", json!({"If-None-Match": "*"}), "a"),
            put("b", json!({"If-None-Match": "*"}), "b"),
        ]
    };
    let s = writable();
    // The collection is still at the POST's timestamp: a merged into a record expired but
    // still stored, which one by one answers 412 (without `existing`), with the node's
    // headers of the write.
    s.fake.script_sync([post(), read_back("5.00")]);
    let subs = batch(&s, creates());
    assert_eq!(statuses(&subs), [412, 201], "{subs:?}");
    assert_eq!(subs[0]["body"]["errno"], 114);
    assert!(subs[0]["body"]["details"].is_null(), "{}", subs[0]);
    assert_eq!(subs[0]["headers"]["Backoff"], "30", "{}", subs[0]);
    assert_eq!(subs[0]["headers"]["Quota-Remaining"], "1000", "{}", subs[0]);
    assert_eq!(
        subs[0]["headers"]["Alert"], "node going away",
        "{}",
        subs[0]
    );
    assert_eq!(lm(&subs[1]), 5000);
    // The collection moved on since: another device may have deleted a; its write was
    // made and is answered so.
    s.fake.script_sync([post(), read_back("6.00")]);
    let subs = batch(&s, creates());
    assert_eq!(statuses(&subs), [201, 201], "{subs:?}");
    assert_eq!(lm(&subs[0]), 5000);
}
