//! `POST /v1/batch`: `defaults` merged, `/v1` prefixed, the outer Authorization,
//! X-KeyID, X-Client-State and User-Agent inherited, more than `batch_max_requests` or a
//! nested batch refused (400/107), and always a 200 with every sub-response in order,
//! errors included, as the Kinto clients expect.

use crate::support::*;
use fakes::Canned;
use serde_json::{Value, json};

fn batch(s: &Syncto, outer: &[(&str, &str)], body: &Value) -> Resp {
    let mut headers = vec![JSON];
    headers.extend_from_slice(outer);
    s.req("POST", "/v1/batch", &headers, Some(&body.to_string()))
}

fn coll() -> String {
    format!("/buckets/{KID}/collections/tabs")
}

#[test]
fn kinto_http_js_style_batch_with_defaults() {
    let s = writable();
    let body = json!({
        "defaults": {"headers": {"Authorization": "Bearer good-token"}},
        "requests": [
            {"method": "PUT", "path": format!("{}/records/a", coll()), "headers": {"If-None-Match": "*"}, "body": {"data": {"payload": "A"}}},
            {"method": "PUT", "path": format!("{}/records/b", coll()), "headers": {}, "body": {"data": {"payload": "B"}}},
            {"path": format!("/v1{}/records", coll())},
            {"method": "HEAD", "path": format!("{}/records", coll())},
        ]
    });
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0]["status"], 201);
    assert_eq!(responses[0]["path"], format!("/v1{}/records/a", coll()));
    assert_eq!(responses[0]["body"]["data"]["payload"], "A");
    assert!(responses[0]["headers"]["ETag"].is_string());
    assert_eq!(responses[1]["status"], 200);
    assert_eq!(responses[2]["status"], 200);
    assert_eq!(responses[2]["body"]["data"].as_array().unwrap().len(), 2);
    assert_eq!(responses[3]["status"], 200);
    assert_eq!(responses[3]["body"], Value::Null);
    assert_eq!(responses[3]["headers"]["Total-Records"], "2");
    assert_eq!(s.fake.hawk_failures(), 0);
}

#[test]
fn kinto_http_py_style_batch_inherits_outer_auth() {
    let s = writable();
    let body = json!({"requests": [
        {"method": "PUT", "path": format!("{}/records/a", coll()), "body": {"data": {"payload": "A"}}},
        {"method": "DELETE", "path": format!("{}/records/a", coll()), "body": {}},
    ]});
    let r = batch(&s, &[BEARER, ("User-Agent", "kinto_http/11.11.0")], &body);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(responses[0]["status"], 200, "{responses:?}");
    assert_eq!(responses[1]["status"], 200, "{responses:?}");
    assert_eq!(responses[1]["body"]["data"]["deleted"], true);
    assert!(
        s.fake
            .last_sync()
            .header("user-agent")
            .unwrap()
            .ends_with("(on behalf of kinto_http/11.11.0)")
    );
    // Without any Authorization, each sub-request is a 401 of its own.
    let r = batch(&s, &[], &body);
    assert_eq!(r.status, 200);
    for sub in r.json()["responses"].as_array().unwrap() {
        assert_eq!(sub["status"], 401);
        assert_eq!(sub["body"]["errno"], 104);
    }
}

#[test]
fn a_failing_sub_request_between_two_successful_ones() {
    let s = writable_one_by_one();
    s.fake.put(KID, "tabs", "x", "old", 100);
    let body = json!({"requests": [
        {"method": "PUT", "path": format!("{}/records/a", coll()), "body": {"data": {"payload": "A"}}},
        {"method": "PUT", "path": format!("{}/records/x", coll()), "headers": {"If-Match": "\"10\""}, "body": {"data": {"payload": "X"}}},
        {"method": "PUT", "path": format!("{}/records/c", coll()), "body": {"data": {"payload": "C"}}},
    ]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(r.status, 200);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    let statuses: Vec<_> = responses
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 412, 200]);
    assert_eq!(responses[1]["body"]["errno"], 114);
    assert_eq!(
        responses[1]["body"]["details"]["existing"]["payload"],
        "old"
    );
    assert!(s.fake.record(KID, "tabs", "a").is_some() && s.fake.record(KID, "tabs", "c").is_some());
    // A 5xx in the middle is reported too; what was done before it stays visible.
    s.fake
        .script_sync([Canned::new(200, "1.00"), Canned::new(500, "0")]);
    let r = batch(&s, &[BEARER], &body);
    let statuses: Vec<_> = r.json()["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses[..2], [200, 503]);
}

#[test]
fn disabled_collection_inside_a_batch() {
    let s = writable();
    let body = json!({"requests": [
        {"method": "PUT", "path": format!("/buckets/{KID}/collections/passwords/records/p"), "body": {"data": {"payload": "secret"}}},
        {"method": "DELETE", "path": format!("/buckets/{KID}/collections/passwords/records/p")},
        {"method": "PUT", "path": format!("{}/records/ok", coll()), "body": {"data": {"payload": "fine"}}},
    ]});
    let r = batch(&s, &[BEARER], &body);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(responses[0]["status"], 405);
    assert_eq!(responses[0]["body"]["errno"], 115);
    assert_eq!(
        responses[0]["body"]["message"],
        "Endpoint disabled for this collection in configuration."
    );
    assert_eq!(responses[1]["status"], 405);
    assert_eq!(responses[2]["status"], 200);
    assert!(
        s.fake
            .sync_seen()
            .iter()
            .all(|x| !x.url.contains("/passwords")),
        "nothing sent upstream for passwords"
    );
}

#[test]
fn credentials_are_looked_up_once_per_batch() {
    let s = writable();
    // Tokens of duration 0 are never cached: every lookup outside a batch
    // is an exchange. A batch of five makes one.
    s.fake.grant_tokens_for(0);
    let requests: Vec<Value> = (0..5)
        .map(|i| json!({"path": format!("{}/records/r{i}", coll())}))
        .collect();
    let r = batch(&s, &[BEARER], &json!({"requests": requests}));
    assert_eq!(r.status, 200);
    assert_eq!(s.fake.token_calls(), 1);
    s.auth_get(&records("tabs"));
    s.auth_get(&records("tabs"));
    assert_eq!(s.fake.token_calls(), 3);
}

#[test]
fn back_to_back_writes_are_spaced_for_sync() {
    // syncstorage-rs (and the fake, like it) answers 503 to two writes of
    // one user to one collection within 10 ms.
    let s = writable();
    let requests: Vec<Value> = (0..6)
        .map(|i| json!({"method": "PUT", "path": format!("{}/records/w{i}", coll()), "body": {"data": {"payload": "x"}}}))
        .collect();
    let r = batch(&s, &[BEARER], &json!({"requests": requests}));
    assert_eq!(r.status, 200, "{}", r.body);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(responses.len(), 6);
    for sub in &responses {
        assert_eq!(sub["status"], 200, "{sub}");
    }
    // Spaced before they left, not repeated after the node refused them.
    assert_eq!(s.fake.conflicts(), 0, "the node refused none");
    for i in 0..6 {
        assert!(
            s.fake.record(KID, "tabs", &format!("w{i}")).is_some(),
            "w{i}"
        );
    }
}

#[test]
fn a_record_or_collection_named_batch_is_not_a_recursive_call() {
    let s = Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.write_switches.insert("batch".into(), on);
    });
    let body = json!({"requests": [
        {"method": "PUT", "path": format!("{}/records/batch", coll()), "body": {"data": {"payload": "r"}}},
        {"method": "PUT", "path": format!("/buckets/{KID}/collections/batch/records/a"), "body": {"data": {"payload": "c"}}},
        {"path": format!("/buckets/{KID}/collections/batch/records?_since=0")},
        {"path": "/batch/"},
    ]});
    let r = batch(&s, &[BEARER], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<u64> = r.json()["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    // The trailing slash is the redirect every route gets, answered, not followed.
    assert_eq!(statuses, [200, 200, 200, 307], "{}", r.body);
    assert_eq!(s.fake.record(KID, "tabs", "batch").unwrap().payload, "r");
    assert_eq!(s.fake.record(KID, "batch", "a").unwrap().payload, "c");
    for path in ["/batch", "/v1/batch", "/v1/batch?x=1", "/batch?x=1"] {
        let body = json!({"requests": [{"path": format!("{}/records/a", coll())}, {"method": "POST", "path": path}]});
        let r = batch(&s, &[BEARER], &body);
        let j = r.assert_error(400, 107);
        assert_eq!(j["details"][0]["name"], "requests.1.path", "{path}: {j}");
        assert!(
            j["message"].as_str().unwrap().contains("Recursive call"),
            "{path}: {j}"
        );
    }
}

#[test]
fn invalid_batches_are_refused_whole() {
    let s = writable();
    let put = |id: &str| json!({"method": "PUT", "path": format!("{}/records/{id}", coll()), "body": {"data": {"payload": "x"}}});
    let many: Vec<Value> = (0..101).map(|i| put(&format!("m{i}"))).collect();
    let huge: Vec<Value> = (0..20_000).map(|_| json!({"path": "/"})).collect();
    let cases: Vec<(String, u64, &str)> = vec![
        (
            json!({"requests": many}).to_string(),
            107,
            "Number of requests is limited to 100",
        ),
        (
            json!({"requests": huge}).to_string(),
            107,
            "Number of requests is limited to 100",
        ),
        (
            json!({"requests": [put("a"), {"path": "/batch"}]}).to_string(),
            107,
            "Recursive call on /batch endpoint is forbidden.",
        ),
        (
            json!({"requests": [put("a"), {"path": "/v1/batch"}]}).to_string(),
            107,
            "Recursive call",
        ),
        (
            json!({"requests": [put("a"), {"path": "buckets/x"}]}).to_string(),
            107,
            "path starting with /",
        ),
        (
            json!({"requests": [put("a"), {"path": "http://evil.example/v1/"}]}).to_string(),
            107,
            "path starting with /",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "headers": {"X-N": 5}}]}).to_string(),
            107,
            "should be a string",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "headers": {"X-N": "a\r\nInjected: 1"}}]})
                .to_string(),
            107,
            "not a valid HTTP header",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "headers": {"X N": "v"}}]}).to_string(),
            107,
            "not a valid HTTP header",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "headers": {"X:N": "v"}}]}).to_string(),
            107,
            "not a valid HTTP header",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "headers": {"X".repeat(257): "v"}}]})
                .to_string(),
            107,
            "not a valid HTTP header",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "headers": {"X-N": "v".repeat(16385)}}]})
                .to_string(),
            107,
            "not a valid HTTP header",
        ),
        (
            json!({"requests": [put("a"), {"path": "/", "method": "CONNECT"}]}).to_string(),
            107,
            "method should be one of",
        ),
        (
            json!({"requests": []}).to_string(),
            107,
            "should not be empty",
        ),
        (
            json!({"requests": "all"}).to_string(),
            107,
            "requests is missing or not a list",
        ),
        (json!([put("a")]).to_string(), 107, "JSON object"),
        ("{oops".to_string(), 106, "Invalid JSON"),
    ];
    for (body, errno, message) in cases {
        let r = s.req("POST", "/v1/batch", &[JSON, BEARER], Some(&body));
        let j = r.assert_error(400, errno);
        assert!(j["message"].as_str().unwrap().contains(message), "{j}");
    }
    let r = s.req(
        "POST",
        "/v1/batch",
        &[("Content-Type", "text/plain")],
        Some("{}"),
    );
    r.assert_error(415, 107);
    assert!(s.fake.sync_seen().is_empty(), "no write upstream");
    assert_eq!(s.fake.token_calls(), 0);
}

#[test]
fn null_defaults_and_null_bodies_are_taken_as_absent() {
    // JSON clients often write an absent field as null.
    let s = writable();
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let r = batch(
        &s,
        &[BEARER],
        &json!({
            "defaults": null,
            "requests": [
                {"method": "GET", "path": format!("{}/records/a", coll()), "body": null},
                {"path": format!("{}/records", coll())},
            ],
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let subs = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(subs[0]["status"], 200, "{}", subs[0]);
    assert_eq!(subs[0]["body"]["data"]["payload"], "x");
    assert_eq!(subs[1]["status"], 200, "{}", subs[1]);
    let r = batch(
        &s,
        &[BEARER],
        &json!({"defaults": {"body": null}, "requests": [{"path": format!("{}/records/a", coll())}]}),
    );
    assert_eq!(r.json()["responses"][0]["status"], 200, "{}", r.body);
}

#[test]
fn sub_request_headers_up_to_their_limits_are_taken() {
    // A name of 256 token characters, a value of 16 KiB.
    let s = Syncto::start();
    let headers = json!({"X".repeat(256): "v".repeat(16384), "X_Under-Dash9": "a\tb"});
    let r = batch(
        &s,
        &[],
        &json!({"requests": [{"path": "/", "headers": headers}]}),
    );
    assert_eq!(r.json()["responses"][0]["status"], 200, "{}", r.body);
}

#[test]
fn a_collapsed_writes_refusal_carries_the_nodes_headers_from_its_read() {
    // Two create-only PUTs of records that exist collapse into one read, and both are refused
    // from what it said: each answer carries that read's Backoff, Alert and quota, as the
    // node's own 412 would.
    let s = writable();
    let read = r#"[{"id":"a","modified":1790000000.00,"payload":"x"},{"id":"b","modified":1790000000.00,"payload":"x"}]"#;
    s.fake.script_sync([Canned::new(200, read)
        .with("X-Last-Modified", "1790000000.00")
        .with("X-Weave-Backoff", "30")
        .with("X-Weave-Quota-Remaining", "1000")
        .with("X-Weave-Alert", "node going away")
        .for_method("GET")]);
    let put = |id: &str| json!({"method": "PUT", "path": format!("{}/records/{id}", coll()), "headers": {"If-None-Match": "*"}, "body": {"data": {"payload": "y"}}});
    let r = batch(&s, &[BEARER], &json!({"requests": [put("a"), put("b")]}));
    assert_eq!(r.status, 200, "{}", r.body);
    let subs = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 2);
    for sub in &subs {
        assert_eq!(sub["status"], 412, "{sub}");
        assert_eq!(sub["body"]["errno"], 114, "{sub}");
        assert_eq!(sub["headers"]["Backoff"], "30", "{sub}");
        assert_eq!(sub["headers"]["Quota-Remaining"], "1000", "{sub}");
        assert_eq!(sub["headers"]["Alert"], "node going away", "{sub}");
    }
    // One read, nothing written.
    let methods: Vec<String> = s
        .fake
        .sync_seen()
        .iter()
        .map(|x| x.method.clone())
        .collect();
    assert_eq!(methods, ["GET"]);
}
