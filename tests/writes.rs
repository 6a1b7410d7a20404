//! Writes: per-collection switches (off by default, 405/115 when off), PUT and DELETE
//! translation (201 when a create-only PUT created, `id` and `last_modified` of the body
//! ignored, DELETE answering `deleted: true`), exact preconditions, 412 with
//! `details.existing`, body validation.

use crate::support::*;
use fakes::Canned;
use syncto::config::WriteSwitch;

fn put(s: &Syncto, id: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![BEARER, JSON];
    headers.extend_from_slice(extra);
    s.req("PUT", &record("tabs", id), &headers, Some(body))
}

#[test]
fn writes_are_disabled_by_default() {
    let s = Syncto::start();
    for (method, body) in [
        ("PUT", Some("{\"data\":{\"payload\":\"x\"}}")),
        ("DELETE", None),
    ] {
        let r = s.req(method, &record("meta", "global"), &[BEARER, JSON], body);
        let j = r.assert_error(405, 115);
        assert_eq!(
            j["message"],
            "Endpoint disabled for this collection in configuration."
        );
        assert_eq!(r.header("Allow"), None);
        // Even without credentials: the answer is the switch, nothing goes upstream.
        s.req(method, &record("meta", "global"), &[JSON], body)
            .assert_error(405, 115);
    }
    // A put switch does not enable deletes, and the switch names the Sync
    // collection (case-insensitively: /TABS/ is the same collection).
    let s = Syncto::with(|c| {
        c.write_switches.insert(
            "tabs".into(),
            WriteSwitch {
                put: true,
                delete: false,
            },
        );
    });
    s.req("DELETE", &record("tabs", "a"), &[BEARER], None)
        .assert_error(405, 115);
    let r = s.req(
        "PUT",
        &format!("/v1/buckets/{KID}/collections/TABS/records/a"),
        &[BEARER, JSON],
        Some("{\"data\":{\"payload\":\"x\"}}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.fake.token_calls(), 1);
    assert_eq!(
        s.fake.sync_seen().len(),
        1,
        "only the enabled write went upstream"
    );
}

#[test]
fn put_creates_or_replaces_and_answers_the_record() {
    let s = writable();
    let r = put(
        &s,
        "rec1",
        r#"{"data": {"payload": "zz", "sortindex": 3, "ttl": 100, "id": "rec1", "last_modified": 5}, "permissions": {}}"#,
        &[("User-Agent", "Kinto.js/17")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    let lm = j["data"]["last_modified"].as_u64().unwrap();
    assert_eq!(
        j,
        serde_json::json!({"data": {"id": "rec1", "payload": "zz", "sortindex": 3, "ttl": 100, "last_modified": lm}})
    );
    assert_eq!(lm % 10, 0);
    assert_eq!(r.header("ETag"), Some(format!("\"{lm}\"").as_str()));
    assert!(r.header("Last-Modified").is_some());
    let seen = s.fake.last_sync();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.url, "/1.5/1/storage/tabs/rec1");
    // id and last_modified are not sent; the body is signed (the fake checks the hash).
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
        serde_json::json!({"payload": "zz", "sortindex": 3, "ttl": 100})
    );
    assert!(seen.header("authorization").unwrap().contains("hash=\""));
    assert_eq!(s.fake.hawk_failures(), 0);
    assert!(
        seen.header("user-agent")
            .unwrap()
            .ends_with("(on behalf of Kinto.js/17)")
    );
    assert_eq!(s.fake.record(KID, "tabs", "rec1").unwrap().payload, "zz");
    // Replace.
    let r = put(&s, "rec1", r#"{"data": {"payload": "yy"}}"#, &[]);
    assert_eq!(r.status, 200);
    assert!(r.json()["data"]["last_modified"].as_u64().unwrap() > lm);
    assert_eq!(s.fake.record(KID, "tabs", "rec1").unwrap().payload, "yy");
}

#[test]
fn create_only_with_bare_or_quoted_star() {
    let s = writable();
    for (id, star) in [("bare", "*"), ("quoted", "\"*\"")] {
        let r = put(
            &s,
            id,
            r#"{"data": {"payload": "p"}}"#,
            &[("If-None-Match", star)],
        );
        assert_eq!(r.status, 201, "{star}: {}", r.body);
        assert_eq!(r.json()["data"]["id"], id);
        assert_eq!(
            s.fake.last_sync().header("x-if-unmodified-since"),
            Some("0")
        );
        // Again: it exists now → 412 with the current record.
        let r = put(
            &s,
            id,
            r#"{"data": {"payload": "other"}}"#,
            &[("If-None-Match", star)],
        );
        let j = r.assert_error(412, 114);
        assert_eq!(j["details"]["existing"]["id"], id);
        assert_eq!(j["details"]["existing"]["payload"], "p");
        assert!(j["details"]["existing"]["last_modified"].is_u64());
    }
}

#[test]
fn if_match_guards_updates_and_deletes() {
    let s = writable();
    let lm = put(&s, "r", r#"{"data": {"payload": "v1"}}"#, &[]).json()["data"]["last_modified"]
        .as_u64()
        .unwrap();
    let stale = format!("\"{}\"", lm - 10);
    let r = put(
        &s,
        "r",
        r#"{"data": {"payload": "v2"}}"#,
        &[("If-Match", &stale)],
    );
    let j = r.assert_error(412, 114);
    assert_eq!(
        j["details"]["existing"],
        serde_json::json!({"id": "r", "payload": "v1", "last_modified": lm})
    );
    assert_eq!(s.fake.record(KID, "tabs", "r").unwrap().payload, "v1");
    let current = format!("\"{lm}\"");
    let r = put(
        &s,
        "r",
        r#"{"data": {"payload": "v2"}}"#,
        &[("If-Match", &current)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = s.fake.sync_seen();
    let put_seen = seen.iter().rev().find(|x| x.method == "PUT").unwrap();
    assert_eq!(
        put_seen.header("x-if-unmodified-since"),
        // The node's own spelling of the record's timestamp (centiseconds, two decimals).
        Some(fakes::fmt_cs(lm / 10).as_str())
    );
    let lm2 = r.json()["data"]["last_modified"].as_u64().unwrap();
    // DELETE with a stale If-Match: 412 with the record, nothing deleted.
    let r = s.req(
        "DELETE",
        &record("tabs", "r"),
        &[BEARER, ("If-Match", &current)],
        None,
    );
    assert_eq!(
        r.assert_error(412, 114)["details"]["existing"]["payload"],
        "v2"
    );
    assert!(s.fake.record(KID, "tabs", "r").is_some());
    let r = s.req(
        "DELETE",
        &record("tabs", "r"),
        &[BEARER, ("If-Match", &format!("\"{lm2}\""))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn delete_answers_a_tombstone_document() {
    let s = writable();
    s.fake.put(KID, "tabs", "gone", "x", 100);
    let r = s.req(
        "DELETE",
        &record("tabs", "gone"),
        &[BEARER, ("Origin", "http://x")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    let lm = j["data"]["last_modified"].as_u64().unwrap();
    assert_eq!(
        j,
        serde_json::json!({"data": {"id": "gone", "last_modified": lm, "deleted": true}})
    );
    assert!(lm > 1000);
    assert_eq!(r.header("ETag"), Some(format!("\"{lm}\"").as_str()));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(s.fake.record(KID, "tabs", "gone").is_none());
    let r = s.req("DELETE", &record("tabs", "gone"), &[BEARER], None);
    let j = r.assert_error(404, 110);
    assert_eq!(
        j["details"],
        serde_json::json!({"id": "gone", "resource_name": "record"})
    );
}

#[test]
fn invalid_put_bodies() {
    let s = writable();
    type Case<'a> = (&'a str, (&'a str, &'a str), u16, u64, &'a str);
    let cases: [Case; 12] = [
        (
            r#"{"payload":"foobar"}"#,
            JSON,
            400,
            107,
            "payload is not allowed",
        ),
        (r#"{}"#, JSON, 400, 107, "data is missing"),
        (
            "{not json",
            JSON,
            400,
            106,
            "body: Invalid JSON request body",
        ),
        ("", JSON, 400, 106, "body: Invalid JSON request body"),
        ("[1,2]", JSON, 400, 107, "JSON object"),
        (
            r#"{"data": "x"}"#,
            JSON,
            400,
            109,
            "data should be an object",
        ),
        (
            r#"{"data": {"payload": 5}}"#,
            JSON,
            400,
            109,
            "payload should be a string",
        ),
        (
            r#"{"data": {"sortindex": "2.6"}}"#,
            JSON,
            400,
            109,
            "sortindex should be an integer",
        ),
        (
            r#"{"data": {"ttl": -1}}"#,
            JSON,
            400,
            109,
            "ttl should be an integer",
        ),
        (
            r#"{"data": {"title": "t"}}"#,
            JSON,
            400,
            109,
            "title is not a field of a Sync record",
        ),
        (
            r#"{"data": {"id": "other"}}"#,
            JSON,
            400,
            109,
            "does not match",
        ),
        (
            r#"{"data": {"payload": "x"}}"#,
            ("Content-Type", "text/plain"),
            415,
            107,
            "application/json",
        ),
    ];
    for (body, ct, status, errno, message) in cases {
        let r = s.req("PUT", &record("tabs", "x"), &[BEARER, ct], Some(body));
        let j = r.assert_error(status, errno);
        assert!(
            j["message"].as_str().unwrap().contains(message),
            "{body}: {j}"
        );
        if status == 400 {
            assert!(j["details"].is_array(), "{j}");
        }
    }
    assert!(
        s.fake.sync_seen().iter().all(|x| x.method != "PUT"),
        "nothing was written"
    );
}

#[test]
fn upstream_errors_on_writes() {
    let s = writable();
    let cases = [
        (500, 503, 201),
        (400, 400, 107),
        (403, 403, 121),
        (404, 404, 110),
        (503, 503, 201),
    ];
    for (up, status, errno) in cases {
        s.fake.script_sync([Canned::new(up, "0")
            .with("X-Weave-Alert", "Server is going away")
            .with("X-Weave-Backoff", "3600")]);
        let r = put(&s, "e", r#"{"data": {"payload": "x"}}"#, &[]);
        r.assert_error(status, errno);
        assert_eq!(r.header("Alert"), Some("Server is going away"));
        assert_eq!(r.header("Backoff"), Some("3600"));
        s.fake.script_sync([Canned::new(up, "0")]);
        s.req("DELETE", &record("tabs", "e"), &[BEARER], None)
            .assert_error(status, errno);
    }
}

#[test]
fn sortindex_and_ttl_are_held_to_syncs_bounds() {
    // The node refuses what is past them with a bare 400 `8`; here it is a 400 naming the
    // field, and the bounds themselves are written.
    let s = writable();
    for (i, (data, field)) in [
        (r#"{"payload": "x", "sortindex": 1000000000}"#, "sortindex"),
        (r#"{"payload": "x", "sortindex": -1000000000}"#, "sortindex"),
        (r#"{"payload": "x", "ttl": 1000000000}"#, "ttl"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = put(&s, &format!("o{i}"), &format!(r#"{{"data": {data}}}"#), &[]);
        let j = r.assert_error(400, 109);
        assert_eq!(
            j["details"][0]["name"],
            format!("data.{field}"),
            "{data}: {j}"
        );
    }
    assert!(s.fake.sync_seen().iter().all(|x| x.method != "PUT"));
    for (i, data) in [
        r#"{"payload": "x", "sortindex": 999999999, "ttl": 999999999}"#,
        r#"{"payload": "x", "sortindex": -999999999, "ttl": 0}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let r = put(&s, &format!("b{i}"), &format!(r#"{{"data": {data}}}"#), &[]);
        assert_eq!(r.status, 200, "{data}: {}", r.body);
    }
}
