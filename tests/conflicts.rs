//! Writes that succeed although the storage node refuses a user's writes
//! to one collection within one 10 ms tick, or while another is in
//! progress (the fake does both by default, as syncstorage-rs). Writes are
//! paced and serialised per user and collection, a refused write is
//! repeated within a budget, and only a certain refusal is ever repeated.

use crate::support::*;
use fakes::Canned;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use syncto::config::WriteSwitch;

fn put_body(i: usize) -> String {
    json!({"data": {"payload": format!("p{i}")}}).to_string()
}

fn listed_ids(s: &Syncto) -> BTreeSet<String> {
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rec| rec["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn forty_sequential_writes_of_one_user_all_succeed() {
    let s = writable();
    for i in 0..40 {
        let r = s.req(
            "PUT",
            &record("tabs", &format!("seq{i}")),
            &[BEARER, JSON],
            Some(&put_body(i)),
        );
        assert_eq!(r.status, 200, "write {i}: {}", r.body);
    }
    assert_eq!(listed_ids(&s).len(), 40);
    // Paced in this process: the node never had to refuse one.
    assert_eq!(s.fake.conflicts(), 0);
    // Deletes go through the same gate.
    for i in 0..10 {
        let r = s.req(
            "DELETE",
            &record("tabs", &format!("seq{i}")),
            &[BEARER],
            None,
        );
        assert_eq!(r.status, 200, "delete {i}: {}", r.body);
    }
    assert_eq!(listed_ids(&s).len(), 30);
}

/// `writers` threads, each with its own connection to one of `bases`, each
/// writing `n` records of the same user.
fn concurrent_writers(bases: &[String], writers: usize, n: usize) -> Vec<(String, Resp)> {
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let base = bases[w % bases.len()].clone();
            std::thread::spawn(move || {
                let agent = client();
                (0..n)
                    .map(|i| {
                        let id = format!("w{w}-{i}");
                        let r = request(
                            &agent,
                            "PUT",
                            &format!("{base}{}", record("tabs", &id)),
                            &[BEARER, JSON],
                            Some(&put_body(i)),
                        );
                        (id, r)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn four_concurrent_writers_of_one_user_lose_nothing() {
    let s = Syncto::with(|c| {
        c.workers = 8;
        c.write_switches.insert(
            "tabs".into(),
            WriteSwitch {
                put: true,
                delete: true,
            },
        );
    });
    let results = concurrent_writers(std::slice::from_ref(&s.base), 4, 10);
    for (id, r) in &results {
        assert_eq!(r.status, 200, "{id}: {}", r.body);
    }
    let expected: BTreeSet<String> = results.into_iter().map(|(id, _)| id).collect();
    assert_eq!(listed_ids(&s), expected);
    assert_eq!(s.fake.conflicts(), 0, "serialised in process");
}

#[test]
fn two_processes_writing_for_one_user_lose_nothing() {
    // Two servers with their own caches and pacing, one storage node:
    // their writes meet on the node, which refuses some; those are
    // repeated.
    let s = writable();
    let mut config = test_config(&s.fake);
    config.write_switches = s.app().config.write_switches.clone();
    let (other, _other_app) = syncto::start(config).expect("second server");
    let other_base = format!("http://127.0.0.1:{}", other.port().unwrap());
    let results = concurrent_writers(&[s.base.clone(), other_base], 4, 10);
    other.shutdown();
    for (id, r) in &results {
        assert_eq!(r.status, 200, "{id}: {}", r.body);
    }
    let expected: BTreeSet<String> = results.into_iter().map(|(id, _)| id).collect();
    assert_eq!(listed_ids(&s), expected);
}

#[test]
fn a_refused_write_is_repeated_and_the_client_sees_one_success() {
    let s = writable();
    s.fake.script_sync([Canned::conflict(), Canned::conflict()]);
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let puts = s
        .fake
        .sync_seen()
        .iter()
        .filter(|x| x.method == "PUT")
        .count();
    assert_eq!(puts, 3, "two refusals, then the write");
    assert_eq!(s.fake.record(KID, "tabs", "r").unwrap().payload, "p1");
}

#[test]
fn past_the_budget_the_client_gets_503_with_retry_after() {
    let s = Syncto::with(|c| {
        c.write_conflict_budget = Duration::from_millis(150);
        c.write_switches.insert(
            "tabs".into(),
            WriteSwitch {
                put: true,
                delete: true,
            },
        );
    });
    s.fake.clear_sync_script();
    s.fake.script_sync(vec![Canned::conflict(); 100]);
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    r.assert_error(503, 201);
    assert_eq!(r.header("Retry-After"), Some("10"));
    let puts = s
        .fake
        .sync_seen()
        .iter()
        .filter(|x| x.method == "PUT")
        .count();
    assert!((1..=20).contains(&puts), "bounded repeats, saw {puts}");
    assert!(s.fake.record(KID, "tabs", "r").is_none(), "nothing written");
    // The budget is per write: the next one, once the node accepts, works.
    s.fake.clear_sync_script();
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON],
        Some(&put_body(2)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_write_of_unknown_fate_is_never_repeated() {
    // A 503 that is not the conflict answer, or a timeout: the write may
    // have happened, so it is not sent again.
    let s = writable();
    s.fake
        .script_sync([Canned::new(503, "{\"error\": \"overloaded\"}").with("Retry-After", "10")]);
    let r = s.req(
        "PUT",
        &record("tabs", "a"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    r.assert_error(503, 201);
    s.fake.script_sync([Canned::new(503, "0")]);
    let r = s.req(
        "PUT",
        &record("tabs", "b"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    r.assert_error(503, 201);
    let puts = s
        .fake
        .sync_seen()
        .iter()
        .filter(|x| x.method == "PUT")
        .count();
    assert_eq!(puts, 2, "each sent once");

    let s = Syncto::with(|c| {
        c.upstream_timeout = Duration::from_secs(1);
        c.write_switches.insert(
            "tabs".into(),
            WriteSwitch {
                put: true,
                delete: true,
            },
        );
    });
    s.auth_get(&records("tabs")); // credentials cached before the node hangs
    s.fake.hang_sync(std::time::Duration::from_secs(3));
    let r = s.req(
        "PUT",
        &record("tabs", "c"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    r.assert_error(504, 201);
    let puts = s
        .fake
        .sync_seen()
        .iter()
        .filter(|x| x.method == "PUT")
        .count();
    assert_eq!(puts, 1, "a timed-out write is not repeated");
}

#[test]
fn only_a_503_is_a_conflict_not_a_5xx_that_looks_like_one() {
    // A 500 or 502 with the conflict's Retry-After and body `0` says nothing about whether the
    // write happened: the client gets the error, and the write is sent once.
    let s = writable();
    for (i, status) in [500u16, 502].into_iter().enumerate() {
        s.fake.script_sync([Canned::new(status, "0")
            .with("Retry-After", "10")
            .for_method("PUT")]);
        let id = format!("r{i}");
        let r = s.req(
            "PUT",
            &record("tabs", &id),
            &[BEARER, JSON],
            Some(&put_body(i)),
        );
        r.assert_error(503, 201);
        let puts = s
            .fake
            .sync_seen()
            .iter()
            .filter(|x| x.method == "PUT" && x.url.ends_with(&format!("/tabs/{id}")))
            .count();
        assert_eq!(puts, 1, "a {status} is not repeated");
        assert!(s.fake.record(KID, "tabs", &id).is_none());
    }
}

#[test]
fn a_repeated_conditional_write_still_fails_when_overtaken() {
    // The write is refused as a conflict; meanwhile another device changes
    // the record. The repeat carries the same precondition: 412, and the
    // client's write did not happen.
    let s = writable();
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    assert_eq!(r.status, 200);
    let etag = format!("\"{}\"", r.json()["data"]["last_modified"]);
    s.fake
        .script_sync([Canned::conflict().touching("tabs", "r").for_method("PUT")]);
    let before = s.fake.sync_seen().len();
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON, ("If-Match", &etag)],
        Some(&put_body(2)),
    );
    let j = r.assert_error(412, 114);
    assert_eq!(
        j["details"]["existing"]["payload"], "p1 (changed elsewhere)",
        "{j}"
    );
    let seen: Vec<String> = s.fake.sync_seen()[before..]
        .iter()
        .map(|x| x.method.clone())
        .collect();
    // Read of the current record, refused PUT, repeated PUT (412), read of
    // the record for details.existing.
    assert_eq!(seen, ["GET", "PUT", "PUT", "GET"]);
    assert_eq!(
        s.fake.record(KID, "tabs", "r").unwrap().payload,
        "p1 (changed elsewhere)"
    );

    // Without the other device, the repeat of the same conditional write
    // passes (and the If-None-Match case below starts from here).
    let etag = format!("\"{}\"", j["details"]["existing"]["last_modified"]);
    s.fake.script_sync([Canned::conflict().for_method("PUT")]);
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON, ("If-Match", &etag)],
        Some(&put_body(3)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.fake.record(KID, "tabs", "r").unwrap().payload, "p3");
}

#[test]
fn an_if_none_match_write_stays_conditional_on_the_record_it_read() {
    // `If-None-Match: "X"` on a record at another timestamp: the record is read, and the write
    // is made conditional on what was read. Another device changing the record in between
    // (here while the first attempt is refused) makes it fail with 412, never overwrite.
    let s = writable();
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON],
        Some(&put_body(1)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let read = fakes::fmt_cs(s.fake.record(KID, "tabs", "r").unwrap().modified);
    s.fake
        .script_sync([Canned::conflict().touching("tabs", "r").for_method("PUT")]);
    let before = s.fake.sync_seen().len();
    let r = s.req(
        "PUT",
        &record("tabs", "r"),
        &[BEARER, JSON, ("If-None-Match", "\"1000\"")],
        Some(&put_body(2)),
    );
    let j = r.assert_error(412, 114);
    assert_eq!(
        j["details"]["existing"]["payload"], "p1 (changed elsewhere)",
        "{j}"
    );
    let seen = &s.fake.sync_seen()[before..];
    let puts: Vec<Option<&str>> = seen
        .iter()
        .filter(|x| x.method == "PUT")
        .map(|x| x.header("x-if-unmodified-since"))
        .collect();
    assert_eq!(puts, [Some(read.as_str()); 2], "both attempts conditional");
    assert_eq!(
        s.fake.record(KID, "tabs", "r").unwrap().payload,
        "p1 (changed elsewhere)"
    );
}
