//! Kinto counts in milliseconds, Sync in 10 ms ticks: preconditions and
//! time filters keep the client's exact meaning (never rounded to the
//! nearest tick), and the Kinto reads that Sync has no direct word for
//! (`_fields`, the bucket, its collections).

use crate::support::*;
use serde_json::{Value, json};

/// Three records 10 ms apart in `tabs`: r0 < r1 < r2 (ms).
fn three(s: &Syncto) -> [u64; 3] {
    let base_cs = 179_000_000_000;
    for (i, id) in ["r0", "r1", "r2"].iter().enumerate() {
        s.fake.put(KID, "tabs", id, "x", base_cs + i as u64);
    }
    [0, 1, 2].map(|i| (base_cs + i) * 10)
}

/// The ids of a 200 answer's `data`, in the answer's order.
fn ids_in_order(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(r: &Resp) -> Vec<String> {
    let mut v = ids_in_order(r);
    v.sort();
    v
}

#[test]
fn time_filters_select_exactly() {
    let s = Syncto::start();
    let [_, t1, _] = three(&s);
    let q = |query: String| ids(&s.auth_get(&format!("{}?{query}", records("tabs"))));
    for name in ["_since", "gt_last_modified"] {
        assert_eq!(q(format!("{name}={}", t1 - 1)), ["r1", "r2"], "{name}");
        assert_eq!(q(format!("{name}={t1}")), ["r2"], "{name}");
        assert_eq!(q(format!("{name}={}", t1 + 1)), ["r2"], "{name}");
    }
    for name in ["_before", "lt_last_modified"] {
        assert_eq!(q(format!("{name}={}", t1 + 1)), ["r0", "r1"], "{name}");
        assert_eq!(q(format!("{name}={t1}")), ["r0"], "{name}");
        assert_eq!(q(format!("{name}={}", t1 - 1)), ["r0"], "{name}");
    }
    assert_eq!(q(format!("min_last_modified={t1}")), ["r1", "r2"]);
    assert_eq!(q(format!("min_last_modified={}", t1 + 1)), ["r2"]);
    assert_eq!(q(format!("max_last_modified={t1}")), ["r0", "r1"]);
    assert_eq!(q(format!("max_last_modified={}", t1 - 1)), ["r0"]);
    assert_eq!(q(format!("_since={}&_before={}", t1 - 1, t1 + 1)), ["r1"]);
    // Empty `_since` answer: the ETag is the client's value.
    let r = s.auth_get(&format!("{}?_since={}", records("tabs"), t1 + 15));
    assert_eq!(ids(&r), Vec::<String>::new());
    assert_eq!(r.header("ETag"), Some(format!("\"{}\"", t1 + 15).as_str()));
    for bad in ["_before=-1", "min_last_modified=abc", "_since=1.5"] {
        s.auth_get(&format!("{}?{bad}", records("tabs")))
            .assert_error(400, 107);
    }
}

#[test]
fn if_match_holds_only_for_the_exact_timestamp() {
    let s = writable();
    let [_, t1, t2] = three(&s);
    for other in [t1 - 1, t1 + 1, t1 - 10, t1 + 10] {
        let etag = format!("\"{other}\"");
        let r = s.req(
            "PUT",
            &record("tabs", "r1"),
            &[BEARER, JSON, ("If-Match", &etag)],
            Some(r#"{"data": {"payload": "new"}}"#),
        );
        let j = r.assert_error(412, 114);
        assert_eq!(j["details"]["existing"]["last_modified"], t1, "{other}");
        let r = s.req(
            "DELETE",
            &record("tabs", "r1"),
            &[BEARER, ("If-Match", &etag)],
            None,
        );
        r.assert_error(412, 114);
        // GET of the record with that If-Match: 412 too.
        s.req(
            "GET",
            &record("tabs", "r1"),
            &[BEARER, ("If-Match", &etag)],
            None,
        )
        .assert_error(412, 114);
    }
    // The list's ETag is the collection's timestamp (r2's).
    for other in [t2 - 1, t2 + 1, t2 - 10, t2 + 10] {
        let etag = format!("\"{other}\"");
        s.req(
            "GET",
            &records("tabs"),
            &[BEARER, ("If-Match", &etag)],
            None,
        )
        .assert_error(412, 114);
    }
    let etag = format!("\"{t2}\"");
    let r = s.req(
        "GET",
        &records("tabs"),
        &[BEARER, ("If-Match", &etag)],
        None,
    );
    assert_eq!(ids(&r).len(), 3);
    assert_eq!(s.fake.record(KID, "tabs", "r1").unwrap().payload, "x");
    // The exact value passes.
    let etag = format!("\"{t1}\"");
    let r = s.req(
        "GET",
        &record("tabs", "r1"),
        &[BEARER, ("If-Match", &etag)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.req(
        "PUT",
        &record("tabs", "r1"),
        &[BEARER, JSON, ("If-Match", &etag)],
        Some(r#"{"data": {"payload": "new"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let lm = r.json()["data"]["last_modified"].as_u64().unwrap();
    let etag = format!("\"{lm}\"");
    let r = s.req(
        "DELETE",
        &record("tabs", "r1"),
        &[BEARER, ("If-Match", &etag)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // If-Match on a record that does not exist: PUT 412 (Kinto), DELETE 404.
    let r = s.req(
        "PUT",
        &record("tabs", "r1"),
        &[BEARER, JSON, ("If-Match", &etag)],
        Some(r#"{"data": {"payload": "again"}}"#),
    );
    r.assert_error(412, 114);
    assert!(s.fake.record(KID, "tabs", "r1").is_none(), "not recreated");
    s.req(
        "DELETE",
        &record("tabs", "r1"),
        &[BEARER, ("If-Match", &etag)],
        None,
    )
    .assert_error(404, 110);
}

#[test]
fn if_none_match_is_304_only_for_the_exact_timestamp() {
    let s = Syncto::start();
    let [_, t1, t2] = three(&s);
    let get = |path: &str, v: u64| {
        s.req(
            "GET",
            path,
            &[BEARER, ("If-None-Match", &format!("\"{v}\""))],
            None,
        )
    };
    assert_eq!(get(&record("tabs", "r1"), t1).status, 304);
    for other in [t1 - 1, t1 + 1, t1 + 10] {
        let r = get(&record("tabs", "r1"), other);
        assert_eq!(r.status, 200, "{other}: {}", r.body);
        assert_eq!(r.json()["data"]["id"], "r1");
    }
    assert_eq!(get(&records("tabs"), t2).status, 304);
    for other in [t2 - 1, t2 + 1, t2 + 10] {
        let r = get(&records("tabs"), other);
        assert_eq!(ids(&r).len(), 3, "{other}");
    }
}

#[test]
fn fields_keep_only_what_was_asked() {
    let s = Syncto::start();
    s.fake
        .put(KID, "tabs", "a", "secret-payload", 179_000_000_000);
    let r = s.auth_get(&format!("{}?_fields=sortindex", records("tabs")));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"],
        json!([{"id": "a", "last_modified": 1_790_000_000_000u64}])
    );
    let r = s.auth_get(&format!("{}?_fields=payload", record("tabs", "a")));
    assert_eq!(
        r.json()["data"],
        json!({"id": "a", "last_modified": 1_790_000_000_000u64, "payload": "secret-payload"})
    );
    // One record alike: a field it does not name is left out.
    let r = s.auth_get(&format!("{}?_fields=sortindex", record("tabs", "a")));
    assert_eq!(
        r.json()["data"],
        json!({"id": "a", "last_modified": 1_790_000_000_000u64})
    );
}

#[test]
fn the_bucket_and_its_collections() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 179_000_000_000);
    s.fake.put(KID, "history", "h", "x", 179_000_000_500);
    let r = s.auth_get(&format!("/v1/buckets/{KID}/collections"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"data": [
            {"id": "history", "last_modified": 1_790_000_005_000u64},
            {"id": "tabs", "last_modified": 1_790_000_000_000u64},
        ]})
    );
    assert_eq!(r.header("Total-Records"), Some("2"));
    assert_eq!(r.header("ETag"), Some("\"1790000005000\""));
    let r = s.auth_get(&format!(
        "/v1/buckets/{KID}/collections?_sort=id&_since=1790000000000"
    ));
    assert_eq!(
        r.json()["data"],
        json!([{"id": "history", "last_modified": 1_790_000_005_000u64}])
    );
    let r = s.auth_get(&format!("/v1/buckets/{KID}"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"data": {"id": KID, "last_modified": 1_790_000_005_000u64}})
    );
    let r = s.req(
        "GET",
        &format!("/v1/buckets/{KID}"),
        &[BEARER, ("If-None-Match", "\"1790000005000\"")],
        None,
    );
    assert_eq!(r.status, 304);
    // Both need the user's credentials; other methods are 405 with Allow.
    s.get(&format!("/v1/buckets/{KID}"), &[])
        .assert_error(401, 104);
    let r = s.req(
        "DELETE",
        &format!("/v1/buckets/{KID}/collections"),
        &[BEARER],
        None,
    );
    r.assert_error(405, 115);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    let _: Value = r.json();
}

#[test]
fn collections_before_is_exclusive_like_since() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 179_000_000_000);
    s.fake.put(KID, "history", "h", "x", 179_000_000_500);
    s.fake.put(KID, "forms", "f", "x", 179_000_001_000);
    let ids = |query: &str| {
        let r = s.auth_get(&format!("/v1/buckets/{KID}/collections?{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let ids = ids_in_order(&r);
        assert_eq!(
            r.header("Total-Records"),
            Some(ids.len().to_string().as_str()),
            "{query}"
        );
        ids
    };
    // A collection stamped exactly at the bound is outside it, on either side.
    for name in ["_before", "lt_last_modified"] {
        assert_eq!(ids(&format!("{name}=1790000005000")), ["tabs"], "{name}");
        assert_eq!(ids(&format!("{name}=1790000005001")), ["history", "tabs"]);
    }
    for name in ["_since", "gt_last_modified"] {
        assert_eq!(ids(&format!("{name}=1790000005000")), ["forms"], "{name}");
    }
    assert_eq!(
        ids("_since=1790000000000&_before=1790000010000"),
        ["history"]
    );
}

#[test]
fn if_match_is_honoured_on_the_bucket_and_collection_metadata() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 179_000_000_000);
    s.fake.put(KID, "history", "h", "x", 179_000_000_500);
    let bucket = format!("/v1/buckets/{KID}");
    let collections = format!("{bucket}/collections");
    let tabs = format!("{bucket}/collections/tabs");
    for (path, current) in [
        (&bucket, "\"1790000005000\""),
        (&collections, "\"1790000005000\""),
        (&tabs, "\"1790000000000\""),
    ] {
        let get = |if_match: &str| s.req("GET", path, &[BEARER, ("If-Match", if_match)], None);
        // Another value, even one tick away: 412 with Kinto's message, no data.
        for stale in ["\"1790000004990\"", "\"1\""] {
            let r = get(stale);
            let j = r.assert_error(412, 114);
            assert_eq!(j["message"], "Resource was modified meanwhile", "{path}");
            assert!(j.get("data").is_none(), "{path}: {j}");
        }
        // The current value: the answer, with that ETag.
        let r = get(current);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("ETag"), Some(current), "{path}");
    }
}

#[test]
fn if_none_match_on_a_missing_record_is_404_as_kinto() {
    // The node answers any X-If-Modified-Since on a missing record with 304 at 0.00 (it checks
    // the precondition first, against 0): Kinto's answer is still 404.
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "other", "x", 179_000_000_000);
    for etag in ["\"0\"", "\"1790000000000\"", "\"1790000000001\""] {
        let before = s.fake.sync_seen().len();
        let r = s.req(
            "GET",
            &record("tabs", "missing"),
            &[BEARER, ("If-None-Match", etag)],
            None,
        );
        let j = r.assert_error(404, 110);
        assert_eq!(
            j["details"],
            json!({"id": "missing", "resource_name": "record"}),
            "{etag}"
        );
        // What the node was asked: a whole tick is tried as a precondition first.
        let asked: Vec<Option<String>> = s.fake.sync_seen()[before..]
            .iter()
            .filter(|x| x.url.contains("/storage/tabs/missing"))
            .map(|x| x.header("x-if-modified-since").map(str::to_owned))
            .collect();
        let want = match etag {
            "\"0\"" => vec![Some("0.00".to_owned()), None],
            "\"1790000000000\"" => vec![Some("1790000000.00".to_owned()), None],
            _ => vec![None],
        };
        assert_eq!(asked, want, "{etag}");
    }
}

#[test]
fn collections_are_sorted_as_asked() {
    let s = Syncto::start();
    // Names and timestamps in different orders.
    s.fake.put(KID, "history", "h", "x", 179_000_000_000);
    s.fake.put(KID, "tabs", "t", "x", 179_000_000_500);
    s.fake.put(KID, "forms", "f", "x", 179_000_001_000);
    let ids = |sort: &str| {
        let path = format!("/v1/buckets/{KID}/collections{sort}");
        let r = s.auth_get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        ids_in_order(&r)
    };
    let newest_first = ["forms", "tabs", "history"];
    assert_eq!(ids(""), newest_first);
    assert_eq!(ids("?_sort=-last_modified"), newest_first);
    assert_eq!(ids("?_sort=last_modified"), ["history", "tabs", "forms"]);
    assert_eq!(ids("?_sort=id"), ["forms", "history", "tabs"]);
    assert_eq!(ids("?_sort=-id"), ["tabs", "history", "forms"]);
    let j = s
        .auth_get(&format!("/v1/buckets/{KID}/collections?_sort=title"))
        .assert_error(400, 107);
    assert_eq!(j["details"][0]["name"], "_sort");
}
