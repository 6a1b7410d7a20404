//! The read path: list, one record, collection metadata, translation of
//! parameters (`_since`, `_before`, `_limit`, `_token`, `_sort`, `in_ids`, `exclude_id`,
//! `_fields`), exact preconditions and headers (ETag, Last-Modified, Next-Page as an
//! absolute URL, Total-Records, Backoff), as the original Syncto and the Kinto clients.

use crate::support::*;
use fakes::{Canned, fmt_cs};
use std::time::Duration;

const T1: u64 = 144_377_478_425; // centiseconds
const UA: (&str, &str) = ("User-Agent", "HTTPie/0.9.2");

fn seeded() -> Syncto {
    let s = Syncto::start();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        s.fake.put(
            KID,
            "tabs",
            id,
            &format!("{{\"ciphertext\":\"p{i}\"}}"),
            T1 + i as u64,
        );
    }
    s
}

#[test]
fn list_translates_records_and_headers() {
    let s = seeded();
    let r = s.req(
        "GET",
        &records("tabs"),
        &[BEARER, UA, ("Origin", "http://localhost:8000")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    let data = j["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    // Newest first by default, modified → last_modified in ms, payload untouched.
    assert_eq!(data[0]["id"], "c");
    assert_eq!(data[0]["last_modified"], (T1 + 2) * 10);
    assert_eq!(data[0]["payload"], "{\"ciphertext\":\"p2\"}");
    assert!(data[0].get("modified").is_none());
    assert_eq!(
        r.header("ETag"),
        Some(format!("\"{}\"", (T1 + 2) * 10).as_str())
    );
    assert!(r.header("Last-Modified").unwrap().ends_with(" GMT"));
    assert_eq!(r.header("Total-Records"), Some("3"));
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let exposed = r.header("Access-Control-Expose-Headers").unwrap();
    for h in [
        "ETag",
        "Next-Page",
        "Total-Records",
        "Backoff",
        "Retry-After",
        "Alert",
        "Last-Modified",
        "Quota-Remaining",
    ] {
        assert!(exposed.contains(h), "{exposed}");
    }
    // What the node saw: Hawk verified, the UA on behalf of the client.
    let seen = s.fake.last_sync();
    // Pages are bounded by `paginate_by` (1000) even without `_limit`.
    assert_eq!(
        seen.url,
        "/1.5/1/storage/tabs?full=1&limit=1000&sort=newest"
    );
    assert_eq!(
        seen.header("user-agent"),
        Some(
            format!(
                "Syncto/{} (on behalf of HTTPie/0.9.2)",
                env!("CARGO_PKG_VERSION")
            )
            .as_str()
        )
    );
    assert_eq!(s.fake.hawk_failures(), 0);
    assert!(
        seen.header("authorization")
            .unwrap()
            .starts_with("Hawk id=")
    );
}

#[test]
fn empty_and_unknown_collection_is_an_empty_list() {
    let s = Syncto::start();
    let r = s.auth_get(&records("history"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"data": []}));
    assert_eq!(r.header("ETag"), Some("\"0\""));
    assert_eq!(r.header("Total-Records"), Some("0"));
}

#[test]
fn query_parameters_are_translated() {
    let s = seeded();
    let cases = [
        (
            "?_since=14377478425700&_sort=newest",
            "full=1&newer=14377478425.70&limit=1000&sort=newest",
        ),
        (
            "?_limit=2&_token=1&_sort=index",
            "full=1&limit=2&offset=1&sort=index",
        ),
        ("?_sort=oldest", "full=1&limit=1000&sort=oldest"),
        ("?_sort=last_modified", "full=1&limit=1000&sort=oldest"),
        ("?_sort=-sortindex", "full=1&limit=1000&sort=index"),
        (
            "?gt_last_modified=14377478425700",
            "full=1&newer=14377478425.70&limit=1000&sort=newest",
        ),
        (
            "?in_ids=a,b,%20c,&_expected=123&_fields=x",
            "full=1&ids=a,b,c&limit=1000&sort=newest",
        ),
        ("?in_id=a", "full=1&ids=a&limit=1000&sort=newest"),
    ];
    for (q, upstream) in cases {
        let r = s.auth_get(&format!("{}{q}", records("tabs")));
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        assert_eq!(
            s.fake.last_sync().url,
            format!("/1.5/1/storage/tabs?{upstream}"),
            "{q}"
        );
    }
    let r = s.auth_get(&format!("{}?_sort=oldest", records("tabs")));
    let ids: Vec<_> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let r = s.auth_get(&format!("{}?in_ids=a,c", records("tabs")));
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
}

#[test]
fn exclude_id_is_applied_by_the_server() {
    let s = seeded();
    let r = s.auth_get(&format!("{}?exclude_id=a,c", records("tabs")));
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], "b");
    assert_eq!(r.header("Total-Records"), Some("1"));
}

#[test]
fn bad_parameters_are_400_before_any_upstream_call() {
    let s = seeded();
    let cases = [
        ("?_since=abc", "_since should be a number."),
        ("?_since=1.5", "_since should be a number."),
        (
            "?_sort=unknown",
            "_sort should be one of ('-last_modified', 'newest', '-sortindex', 'index', 'last_modified', 'oldest')",
        ),
        ("?_limit=0", "_limit should be a positive integer."),
        ("?_limit=-3", "_limit should be a positive integer."),
        ("?_limit=ten", "_limit should be a positive integer."),
    ];
    for (q, message) in cases {
        let r = s.auth_get(&format!("{}{q}", records("tabs")));
        let j = r.assert_error(400, 107);
        assert_eq!(j["message"], message, "{q}");
        assert_eq!(j["error"], "Invalid parameters");
        assert_eq!(j["details"][0]["location"], "querystring");
    }
    assert_eq!(
        s.fake.token_calls(),
        0,
        "no token exchange for an invalid request"
    );
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn preconditions_on_lists() {
    let s = seeded();
    let etag = format!("\"{}\"", (T1 + 2) * 10);
    let r = s.get(&records("tabs"), &[BEARER, ("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(r.body, "");
    assert_eq!(
        s.fake.last_sync().header("x-if-modified-since"),
        Some(fmt_cs(T1 + 2).as_str())
    );
    let r = s.get(&records("tabs"), &[BEARER, ("If-None-Match", "\"1000\"")]);
    assert_eq!(r.status, 200);
    let r = s.get(&records("tabs"), &[BEARER, ("If-Match", "\"1000\"")]);
    let j = r.assert_error(412, 114);
    assert_eq!(j["message"], "Resource was modified meanwhile");
    assert_eq!(
        s.fake.last_sync().header("x-if-unmodified-since"),
        Some("1.00")
    );
    let r = s.get(&records("tabs"), &[BEARER, ("If-None-Match", "abc")]);
    assert_eq!(
        r.assert_error(400, 107)["message"],
        "Invalid value for If-None-Match"
    );
    let r = s.get(&records("tabs"), &[BEARER, ("If-Match", "42")]);
    assert_eq!(
        r.assert_error(400, 107)["message"],
        "Invalid value for If-Match"
    );
}

#[test]
fn pagination_keeps_the_query_in_an_absolute_next_page() {
    let s = seeded();
    let r = s.get(
        &format!("{}?_limit=2&sort=index&_sort=oldest", records("tabs")),
        &[BEARER, ("Host", "syncto.example:8443")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.header("Total-Records"),
        None,
        "no Total-Records when paginating"
    );
    let next = r.header("Next-Page").unwrap().to_owned();
    assert_eq!(
        next,
        format!(
            "http://syncto.example:8443{}?_limit=2&sort=index&_sort=oldest&_token=2",
            records("tabs")
        )
    );
    // Follow it (as kinto-http.js does, verbatim, but to our address).
    let path = next.trim_start_matches("http://syncto.example:8443");
    let r = s.auth_get(path);
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], "c");
    assert_eq!(r.header("Next-Page"), None);
    assert_eq!(
        s.fake.last_sync().url,
        "/1.5/1/storage/tabs?full=1&limit=2&offset=2&sort=oldest"
    );
}

#[test]
fn next_page_uses_configured_public_url() {
    let s = Syncto::with(|c| {
        c.http_scheme = Some("https".into());
        c.http_host = Some("sync.example.org".into());
    });
    for id in ["a", "b"] {
        s.fake.put(KID, "tabs", id, "x", T1);
    }
    let r = s.auth_get(&format!("{}?_limit=1", records("tabs")));
    assert_eq!(
        r.header("Next-Page").unwrap(),
        format!(
            "https://sync.example.org{}?_limit=1&_token=1",
            records("tabs")
        )
    );
}

#[test]
fn empty_since_answer_does_not_run_ahead() {
    // Sync deletes for good: after a remote delete the collection timestamp
    // moves but `_since` returns nothing. The ETag must stay at `_since`, or
    // Kinto.js throws "Server has been flushed".
    let s = seeded();
    s.fake.delete(KID, "tabs", "a", T1 + 10);
    let since = (T1 + 2) * 10;
    let r = s.auth_get(&format!(
        "{}?_since={since}&_sort=-last_modified",
        records("tabs")
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 0);
    assert_eq!(r.header("ETag"), Some(format!("\"{since}\"").as_str()));
    // A non-empty answer carries the collection timestamp.
    let r = s.auth_get(&format!("{}?_since={}", records("tabs"), T1 * 10));
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.header("ETag"),
        Some(format!("\"{}\"", (T1 + 10) * 10).as_str())
    );
    // So does one Sync answered with records that `exclude_id` then left out, one or all:
    // the collection did change since.
    for exclude in ["b", "b,c"] {
        let r = s.auth_get(&format!(
            "{}?_since={}&exclude_id={exclude}",
            records("tabs"),
            T1 * 10
        ));
        assert_eq!(r.status, 200, "{exclude}: {}", r.body);
        assert_eq!(
            r.header("ETag"),
            Some(format!("\"{}\"", (T1 + 10) * 10).as_str()),
            "{exclude}"
        );
    }
}

#[test]
fn head_runs_the_view_and_drops_the_body() {
    let s = seeded();
    let r = s.req("HEAD", &records("tabs"), &[BEARER], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "");
    assert_eq!(r.header("Total-Records"), Some("3"));
    assert_eq!(
        r.header("ETag"),
        Some(format!("\"{}\"", (T1 + 2) * 10).as_str())
    );
}

#[test]
fn one_record() {
    let s = seeded();
    let r = s.req(
        "GET",
        &record("tabs", "b"),
        &[BEARER, ("Origin", "http://x")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"data": {"id": "b", "last_modified": (T1 + 1) * 10, "payload": "{\"ciphertext\":\"p1\"}"}})
    );
    assert_eq!(
        r.header("ETag"),
        Some(format!("\"{}\"", (T1 + 1) * 10).as_str())
    );
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let r = s.get(
        &record("tabs", "b"),
        &[BEARER, ("If-None-Match", &format!("\"{}\"", (T1 + 1) * 10))],
    );
    assert_eq!(r.status, 304);
    let r = s.auth_get(&record("tabs", "missing"));
    let j = r.assert_error(404, 110);
    assert_eq!(
        j["details"],
        serde_json::json!({"id": "missing", "resource_name": "record"})
    );
    let r = s.req("HEAD", &record("tabs", "b"), &[BEARER], None);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
}

#[test]
fn record_ids_are_encoded_for_the_node() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a b/c", "x", T1);
    let r = s.auth_get(&record("tabs", "a%20b%2Fc"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["id"], "a b/c");
    assert_eq!(s.fake.last_sync().url, "/1.5/1/storage/tabs/a%20b%2Fc");
}

#[test]
fn collection_names_are_lower_cased_upstream() {
    let s = seeded();
    let r = s.auth_get(&records("TABS"));
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 3);
    assert!(s.fake.last_sync().url.starts_with("/1.5/1/storage/tabs?"));
}

#[test]
fn collection_metadata() {
    let s = seeded();
    let r = s.auth_get(&format!("/v1/buckets/{KID}/collections/tabs?_expected=1"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"data": {"id": "tabs", "last_modified": (T1 + 2) * 10}})
    );
    assert_eq!(
        r.header("ETag"),
        Some(format!("\"{}\"", (T1 + 2) * 10).as_str())
    );
    assert_eq!(s.fake.last_sync().url, "/1.5/1/info/collections");
    let r = s.auth_get(&format!("/v1/buckets/{KID}/collections/passwords"));
    assert_eq!(r.json()["data"]["last_modified"], 0);
    let r = s.get(
        &format!("/v1/buckets/{KID}/collections/tabs"),
        &[BEARER, ("If-None-Match", &format!("\"{}\"", (T1 + 2) * 10))],
    );
    assert_eq!(r.status, 304);
}

#[test]
fn upstream_headers_are_translated() {
    let s = seeded();
    s.fake.script_sync([Canned::new(200, "[]")
        .with("X-Last-Modified", "1444385059.19")
        .with("X-Weave-Records", "0")
        .with("X-Weave-Quota-Remaining", "125")
        .with(
            "X-Weave-Alert",
            "{\"code\":\"soft-eol\",\"message\":\"m\",\"url\":\"u\"}",
        )
        .with("X-Weave-Backoff", "3600")]);
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ETag"), Some("\"1444385059190\""));
    assert_eq!(
        r.header("Last-Modified"),
        Some("Fri, 09 Oct 2015 10:04:19 GMT")
    );
    assert_eq!(r.header("Quota-Remaining"), Some("125"));
    assert_eq!(
        r.header("Alert"),
        Some("{\"code\":\"soft-eol\",\"message\":\"m\",\"url\":\"u\"}")
    );
    assert_eq!(r.header("Backoff"), Some("3600"));
    assert_eq!(
        r.header("Retry-After"),
        None,
        "never Retry-After on a success"
    );
    s.fake
        .script_sync([Canned::new(200, "[]").with("X-Backoff", "60")]);
    assert_eq!(s.auth_get(&records("tabs")).header("Backoff"), Some("60"));
}

#[test]
fn backoff_setting_is_sent_on_every_response() {
    let s = Syncto::with(|c| c.backoff = Some(10));
    assert_eq!(s.get("/v1/", &[]).header("Backoff"), Some("10"));
    assert_eq!(s.auth_get(&records("tabs")).header("Backoff"), Some("10"));
}

#[test]
fn credentials_are_cached() {
    let s = seeded();
    for _ in 0..3 {
        assert_eq!(s.auth_get(&records("tabs")).status, 200);
    }
    assert_eq!(s.fake.token_calls(), 1);
    // A cache hit is served from the encrypted entry: still one entry.
    assert_eq!(s.app().cache.len(), 1);
    // Another key id is another user: another exchange.
    let other = "99-AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        s.auth_get(&format!("/v1/buckets/{other}/collections/tabs/records"))
            .status,
        200
    );
    assert_eq!(s.fake.token_calls(), 2);
}

#[test]
fn token_server_request_carries_duration_and_user_agent() {
    let s = Syncto::with(|c| c.cache_credentials_ttl = Duration::from_secs(120));
    s.get(&records("tabs"), &[BEARER, UA]);
    let token_seen = s.fake.token_seen();
    let t = token_seen.last().unwrap();
    assert_eq!(t.url, "/1.0/sync/1.5?duration=120");
    assert_eq!(t.header("authorization"), Some("Bearer good-token"));
    assert_eq!(t.header("x-keyid"), Some(KID));
    assert!(
        t.header("user-agent")
            .unwrap()
            .ends_with("(on behalf of HTTPie/0.9.2)")
    );
}

#[test]
fn token_server_url_with_full_path_is_not_doubled() {
    let fake = fakes::Fake::start();
    let mut c = test_config(&fake);
    c.token_server_url = format!("{}1.0/sync/1.5", fake.token_url);
    let s = Syncto::on(fake, c);
    assert_eq!(s.auth_get(&records("tabs")).status, 200);
    assert_eq!(
        s.fake.token_seen()[0].url.split('?').next(),
        Some("/1.0/sync/1.5")
    );
}

#[test]
fn sixty_four_concurrent_first_requests_make_one_token_call() {
    let s = Syncto::with(|c| c.workers = 16);
    s.fake.delay_tokens(std::time::Duration::from_millis(300));
    let base = s.base.clone();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (base, barrier) = (base.clone(), barrier.clone());
            std::thread::spawn(move || {
                let agent = client();
                barrier.wait();
                request(
                    &agent,
                    "GET",
                    &format!("{base}{}", records("tabs")),
                    &[BEARER],
                    None,
                )
                .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(s.fake.token_calls(), 1);
    assert_eq!(s.fake.sync_seen().len(), 64);
}

#[test]
fn a_sync_401_refreshes_the_token_once() {
    let s = seeded();
    assert_eq!(s.auth_get(&records("tabs")).status, 200);
    // The node stops accepting the cached token (expired / reassigned).
    s.fake.revoke_tokens();
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 3);
    assert_eq!(s.fake.token_calls(), 2);
    // A node that keeps refusing: one retry only, then the 401 is reported.
    s.fake
        .script_sync([Canned::new(401, "0"), Canned::new(401, "0")]);
    let r = s.auth_get(&records("tabs"));
    let j = r.assert_error(401, 105);
    assert_eq!(j["message"], "401 Unauthorized: 0");
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"Syncto\"")
    );
    assert_eq!(s.fake.token_calls(), 3);
}

#[test]
fn hello_and_utility_endpoints() {
    let s = Syncto::with(|c| {
        c.write_switches.insert(
            "history".into(),
            syncto::config::WriteSwitch {
                put: true,
                delete: false,
            },
        );
    });
    let r = s.get("/v1/", &[("Host", "localhost:8000")]);
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["project_name"], "syncto");
    assert_eq!(j["project_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(j["url"], "http://localhost:8000/v1/");
    assert_eq!(j["settings"]["batch_max_requests"], 100);
    assert_eq!(j["settings"]["cliquet.batch_max_requests"], 100);
    assert_eq!(j["settings"]["readonly"], false);
    assert_eq!(j["capabilities"], serde_json::json!({}));
    assert!(j["http_api_version"].is_string());
    let r = s.get("/v1/__lbheartbeat__", &[]);
    assert_eq!((r.status, r.json()), (200, serde_json::json!({})));
    let j = s.get("/v1/__version__", &[]).json();
    assert_eq!(j["name"], "syncto");
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    assert!(j["source"].is_string() && j["commit"].is_string());
}

#[test]
fn heartbeat_probes_the_token_server() {
    let s = Syncto::start();
    let r = s.get("/v1/__heartbeat__", &[]);
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"cache": true, "sync": true}))
    );
    assert_eq!(s.fake.token_seen().last().unwrap().url, "/__heartbeat__");
    // A check's result answers for a second: the change shows at a later heartbeat.
    s.fake.set_heartbeat(503);
    let waited = std::time::Instant::now();
    let r = loop {
        let r = s.get("/v1/__heartbeat__", &[]);
        if r.status != 200 || waited.elapsed() > std::time::Duration::from_secs(30) {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        (r.status, r.json()),
        (503, serde_json::json!({"cache": true, "sync": false}))
    );
    // Unreachable: still the map, never an error document.
    let s = Syncto::with(|c| c.token_server_url = "http://127.0.0.1:9/".into());
    let r = s.get("/v1/__heartbeat__", &[]);
    assert_eq!(
        (r.status, r.json()),
        (503, serde_json::json!({"cache": true, "sync": false}))
    );
}

#[test]
fn concurrent_heartbeats_make_one_token_server_check() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const N: usize = 24;
    let s = Syncto::start();
    // The first check hangs until every heartbeat has been sent.
    s.fake.hold_heartbeat(true);
    let sent = Arc::new(AtomicUsize::new(0));
    let port = s.base.rsplit(':').next().unwrap().to_owned();
    let clients: Vec<_> = (0..N)
        .map(|_| {
            let (sent, port) = (sent.clone(), port.clone());
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
                c.write_all(
                    b"GET /v1/__heartbeat__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
                let mut answer = String::new();
                c.read_to_string(&mut answer).unwrap();
                answer
            })
        })
        .collect();
    let waited = std::time::Instant::now();
    while (sent.load(Ordering::SeqCst) < N || s.fake.heartbeats() == 0)
        && waited.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    s.fake.hold_heartbeat(false);
    for c in clients {
        let answer = c.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(r#"{"cache":true,"sync":true}"#),
            "{answer}"
        );
    }
    assert_eq!(s.fake.heartbeats(), 1);
}

#[test]
fn statsd_metrics_use_the_original_names() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    let s = Syncto::with(|c| c.statsd_url = Some(addr));
    s.fake.put(KID, "tabs", "a", "x", T1);
    assert_eq!(s.auth_get(&records("tabs")).status, 200);
    assert_eq!(s.auth_get(&record("tabs", "zz")).status, 404);
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if lines
            .iter()
            .any(|l| l.starts_with("syncto.syncclient.status_code.404:"))
        {
            break;
        }
    }
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    assert!(has("syncto.view.collection.GET:1|c"), "{lines:?}");
    assert!(
        has("syncto.tokenserver.tokenserverclient.get_hawk_credentials:"),
        "{lines:?}"
    );
    assert!(
        has("syncto.syncclient.syncclient.get_records:"),
        "{lines:?}"
    );
    assert!(has("syncto.syncclient.status_code.200:1|c"), "{lines:?}");
    assert!(has("syncto.syncclient.status_code.404:1|c"), "{lines:?}");
}

/// The longest id list Sync takes (100 ids of 64 characters, with `a`) is
/// passed to the node whole: the upstream request head fits the upstream
/// client's output buffer.
#[test]
fn a_long_id_list_reaches_the_node_whole() {
    let s = seeded();
    let ids: Vec<String> = (0..99).map(|i| format!("{i:064}")).collect();
    let list = ids.join(",");
    let r = s.auth_get(&format!("{}?in_ids={list},a", records("tabs")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.fake.last_sync().url,
        format!("/1.5/1/storage/tabs?full=1&ids={list},a&limit=1000&sort=newest")
    );
}
