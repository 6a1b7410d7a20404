//! Routing errors, CORS, upstream error mapping, timeouts and bad input:
//! every failure is a Kinto error document, never a panic or a bare 5xx.

use crate::support::*;
use fakes::Canned;
use std::time::{Duration, Instant};

#[test]
fn unknown_paths_versions_and_redirects() {
    let s = Syncto::start();
    for path in [
        "/v1",
        "/v1/buckets",
        "/v1/nope",
        "/v1/buckets/x/collections/y/records/z/w",
    ] {
        let j = s.get(path, &[]).assert_error(404, 111);
        assert_eq!(
            j["message"], "The resource you are looking for could not be found.",
            "{path}"
        );
    }
    let j = s.get("/v2/foo", &[]).assert_error(404, 116);
    assert_eq!(
        j["message"],
        "The requested protocol version is not available on this server."
    );
    let r = s.get(
        "/buckets/syncto/collections/tabs/records?_limit=2",
        &[("Host", "h.example")],
    );
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("Location"),
        Some("http://h.example/v1/buckets/syncto/collections/tabs/records?_limit=2")
    );
    let r = s.get("/__heartbeat__", &[("Host", "h.example")]);
    assert_eq!(
        r.header("Location"),
        Some("http://h.example/v1/__heartbeat__")
    );
    let r = s.get(
        &format!("{}/?_since=1", records("tabs")),
        &[("Host", "h.example")],
    );
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("Location"),
        Some(format!("http://h.example{}?_since=1", records("tabs")).as_str())
    );
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let s = Syncto::start();
    for method in ["POST", "PATCH", "DELETE", "PUT"] {
        let r = s.req(method, &records("tabs"), &[BEARER], Some("{}"));
        assert_eq!(
            r.assert_error(405, 115)["message"],
            "Method not allowed on this endpoint."
        );
        assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    }
    for method in ["POST", "PATCH"] {
        let r = s.req(method, &record("tabs", "a"), &[BEARER], Some("{}"));
        r.assert_error(405, 115);
        assert_eq!(r.header("Allow"), Some("GET, HEAD, PUT, DELETE, OPTIONS"));
    }
    let r = s.get("/v1/batch", &[]);
    assert_eq!(r.header("Allow"), Some("POST, OPTIONS"));
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn cors_on_errors_and_preflights() {
    let s = Syncto::start();
    let r = s.get("/v1/unknown", &[("Origin", "http://localhost:8000")]);
    r.assert_error(404, 111);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let r = s.req(
        "OPTIONS",
        &records("tabs"),
        &[
            ("Origin", "http://localhost:8000"),
            ("Access-Control-Request-Method", "GET"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type,x-custom",
            ),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(r.header("Access-Control-Max-Age"), Some("3600"));
    let allowed = r.header("Access-Control-Allow-Headers").unwrap();
    for h in [
        "Authorization",
        "Content-Type",
        "If-Match",
        "If-None-Match",
        "X-KeyID",
        "X-Client-State",
        "x-custom",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    let r = s.req(
        "OPTIONS",
        &record("tabs", "a"),
        &[
            ("Origin", "http://x"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        None,
    );
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("GET, HEAD, PUT, DELETE, OPTIONS")
    );
    let r = s.req(
        "OPTIONS",
        &records("tabs"),
        &[
            ("Origin", "http://x"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        None,
    );
    r.assert_error(400, 107);
    let r = s.req("OPTIONS", &records("tabs"), &[("Origin", "http://x")], None);
    assert!(
        r.assert_error(400, 107)["message"]
            .as_str()
            .unwrap()
            .contains("Access-Control-Request-Method")
    );
    // Restricted origins are echoed, others get nothing.
    let s = Syncto::with(|c| c.cors_origins = vec!["https://app.example".into()]);
    let r = s.get("/v1/", &[("Origin", "https://app.example")]);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("Vary"), Some("Origin"));
    assert_eq!(
        s.get("/v1/", &[("Origin", "https://evil.example")])
            .header("Access-Control-Allow-Origin"),
        None
    );
}

#[test]
fn a_restricted_cors_origin_matches_exactly() {
    let s = Syncto::with(|c| c.cors_origins = vec!["https://app.example".into()]);
    // Only the listed origin itself: not one it is a prefix of, nor one that is a prefix of
    // it, nor another scheme or port.
    for origin in [
        "https://app.example.evil",
        "https://app.example:8443",
        "https://app.exampl",
        "http://app.example",
        "https://app.example/",
    ] {
        let r = s.get("/v1/", &[("Origin", origin)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Access-Control-Allow-Origin"), None, "{origin}");
        assert_eq!(r.header("Access-Control-Expose-Headers"), None, "{origin}");
    }
    let r = s.get("/v1/", &[("Origin", "https://app.example")]);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
}

#[test]
fn a_disallowed_origins_preflight_is_refused_without_cors_headers() {
    let s = Syncto::with(|c| c.cors_origins = vec!["https://app.example".into()]);
    let preflight = |origin: &str| {
        s.req(
            "OPTIONS",
            &records("tabs"),
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            None,
        )
    };
    for origin in ["https://evil.example", "https://app.example.evil"] {
        let r = preflight(origin);
        let j = r.assert_error(400, 107);
        assert_eq!(
            j["details"][0],
            serde_json::json!({"location": "header", "name": "Origin", "description": "Origin is not allowed"}),
            "{origin}"
        );
        for h in [
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
            "Access-Control-Max-Age",
        ] {
            assert_eq!(r.header(h), None, "{origin}: {h}");
        }
    }
    // The allowed one gets its own origin back, never `*`.
    let r = preflight("https://app.example");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("Vary"), Some("Origin"));
    assert_eq!(
        r.header("Access-Control-Allow-Methods"),
        Some("GET, HEAD, OPTIONS")
    );
}

#[test]
fn sync_errors_are_mapped() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let cases = [
        (400, "0", 400, 107, Some("400 Bad Request: 0")),
        (403, "14", 403, 121, Some("403 Forbidden: 14")),
        (404, "0", 404, 110, None),
        (413, "17", 413, 113, None),
        (415, "0", 415, 107, None),
        (429, "0", 429, 117, None),
        (
            405,
            "0",
            503,
            201,
            Some(
                "Service temporary unavailable due to overloading or maintenance, please retry later.",
            ),
        ),
        (409, "0", 503, 201, None),
        (500, "0", 503, 201, None),
        (502, "bad gateway", 503, 201, None),
        (513, "0", 503, 201, None),
    ];
    for (up, body, status, errno, message) in cases {
        s.fake
            .script_sync([Canned::new(up, body).with("X-Weave-Backoff", "60")]);
        let r = s.auth_get(&records("tabs"));
        let j = r.assert_error(status, errno);
        if let Some(m) = message {
            assert_eq!(j["message"], m);
        }
        assert_eq!(r.header("Backoff"), Some("60"), "upstream {up}");
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
        if matches!(status, 503 | 429) {
            assert_eq!(r.header("Retry-After"), Some("30"), "upstream {up}");
        }
    }
    // An upstream Retry-After is kept.
    s.fake
        .script_sync([Canned::new(503, "0").with("Retry-After", "10")]);
    assert_eq!(
        s.auth_get(&records("tabs")).header("Retry-After"),
        Some("10")
    );
    // Unusable answers are a 503, not a 500.
    s.fake
        .script_sync([Canned::new(200, "{\"not\": \"a list\"}")]);
    s.auth_get(&records("tabs")).assert_error(503, 201);
    s.fake.script_sync([Canned::new(
        200,
        "[{\"id\":\"a\",\"modified\":\"yesterday\"}]",
    )]);
    s.auth_get(&records("tabs")).assert_error(503, 201);
}

#[test]
fn an_unreachable_node_is_503_and_a_silent_one_504() {
    let s = Syncto::with(|c| c.upstream_timeout = Duration::from_secs(1));
    s.fake.hang_sync(Duration::from_secs(4));
    let started = Instant::now();
    let r = s.auth_get(&records("tabs"));
    let elapsed = started.elapsed();
    let j = r.assert_error(504, 201);
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time")
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    assert!(r.header("Retry-After").is_some());
}

#[test]
fn malformed_input_is_a_4xx_document() {
    let s = Syncto::start();
    // Each names what is wrong, where, as Kinto does: 400/107 with one detail.
    let encoding = ("path", "Invalid percent-encoding or non UTF-8 path segment");
    let collection = (
        "collection_id",
        "Invalid collection name: expected 1 to 32 characters of [a-zA-Z0-9._-]",
    );
    let id = (
        "id",
        "Invalid record id: expected 1 to 64 printable ASCII characters",
    );
    let bad_paths = [
        (
            format!("/v1/buckets/{KID}/collections/ta%ffbs/records"),
            encoding,
        ),
        (
            format!("/v1/buckets/{KID}/collections/ta%zzbs/records"),
            encoding,
        ),
        (
            format!("/v1/buckets/{KID}/collections/ta%4zbs/records"),
            encoding,
        ),
        (
            format!("/v1/buckets/{KID}/collections/ta%z4bs/records"),
            encoding,
        ),
        (
            format!("/v1/buckets/{KID}/collections/tabs%/records"),
            encoding,
        ),
        (
            format!("/v1/buckets/{KID}/collections/{}/records", "x".repeat(33)),
            collection,
        ),
        (
            format!("/v1/buckets/{KID}/collections/ta.b$s/records"),
            collection,
        ),
        (format!("{}/{}", records("tabs"), "i".repeat(65)), id),
        (format!("{}/%E2%82%AC", records("tabs")), id),
    ];
    for (p, (name, description)) in &bad_paths {
        let j = s.auth_get(p).assert_error(400, 107);
        assert_eq!(
            j["details"],
            serde_json::json!([{"location": "path", "name": name, "description": description}]),
            "{p}"
        );
    }
    for q in [
        "?_since=%ff",
        "?_limit=%",
        "?_sort=%C3%28",
        "?_token=",
        "?in_ids=%",
    ] {
        let r = s.auth_get(&format!("{}{q}", records("tabs")));
        r.assert_error(400, 107);
    }
    // Raw bytes: non-UTF-8 in the request line, a bare CR, an absurd method.
    for bytes in [
        &b"GET /v1/buckets/\xff\xfe/collections/tabs/records HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        &b"BREW /v1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        &b"GET /v1/?a=\x80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
    ] {
        let answer = raw(&s.base, bytes);
        let status: u16 = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{answer}");
    }
    assert!(s.fake.sync_seen().is_empty());
    // Still serving.
    assert_eq!(s.get("/v1/", &[]).status, 200);
}

#[test]
fn oversized_bodies_are_413() {
    let s = Syncto::with(|c| c.max_body_bytes = 1024);
    let big = format!("{{\"data\":{{\"payload\":\"{}\"}}}}", "x".repeat(2000));
    let r = s.req(
        "PUT",
        &record("tabs", "a"),
        &[BEARER, ("Content-Type", "application/json")],
        Some(&big),
    );
    r.assert_error(413, 113);
    let r = s.req(
        "POST",
        "/v1/batch",
        &[("Content-Type", "application/json")],
        Some(&big),
    );
    r.assert_error(413, 113);
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn no_secret_in_error_bodies() {
    let s = Syncto::with(|c| {
        c.cache_hmac_secret = Some(syncto::secret::Secret::new("super-secret-value"))
    });
    s.fake
        .script_token([Canned::new(401, "{\"status\": \"invalid-credentials\"}")]);
    let r = s.get(
        &records("tabs"),
        &[("Authorization", "Bearer TOPSECRET-TOKEN")],
    );
    assert!(!r.body.contains("TOPSECRET") && !r.body.contains("super-secret"));
    let r = s.get(
        &records("tabs"),
        &[("Authorization", "Digest TOPSECRET-TOKEN")],
    );
    assert!(!r.body.contains("TOPSECRET"));
    // The Hawk key the node uses never shows up in an answer either.
    assert_eq!(s.auth_get(&records("tabs")).status, 200);
    let keys = s.fake.hawk_keys();
    s.fake.script_sync([Canned::new(500, "0")]);
    let r = s.auth_get(&records("tabs"));
    for k in keys {
        assert!(!r.body.contains(&k));
    }
}

#[test]
fn an_absurd_content_length_is_413_and_the_server_lives_on() {
    let s = Syncto::start();
    for (len, sent) in [
        ("1000000000000", 10),
        ("18446744073709551615", 10),
        ("5000000", 5000),
    ] {
        let mut bytes = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n",
            record("tabs", "a")
        )
        .into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', sent));
        let answer = raw(&s.base, &bytes);
        assert!(answer.starts_with("HTTP/1.1 413"), "{len}: {answer}");
        assert!(answer.contains("\"errno\":113"), "{answer}");
    }
    assert_eq!(s.get("/v1/", &[]).status, 200);
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn in_ids_the_node_would_refuse_or_read_as_every_record_is_a_400() {
    // Sync refuses more than 100 ids, or one that is not a BSO id, with a bare 400; and it
    // reads an empty `ids=` as no filter (every record). Each is a 400 naming in_ids here,
    // before any call to the node.
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let hundred: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    for (query, why) in [
        ("in_ids=".to_owned(), "give at least one record id"),
        ("in_id=,%20,".to_owned(), "give at least one record id"),
        (
            format!("in_ids={},x", hundred.join(",")),
            "at most 100 record ids (a Sync node takes no more at once)",
        ),
        (
            format!("in_ids=a,{}", "i".repeat(65)),
            "each record id must be 1 to 64 printable ASCII characters",
        ),
        (
            "in_ids=a%01b".to_owned(),
            "each record id must be 1 to 64 printable ASCII characters",
        ),
    ] {
        let name = query.split('=').next().unwrap();
        let j = s
            .auth_get(&format!("{}?{query}", records("tabs")))
            .assert_error(400, 107);
        assert_eq!(
            j["details"],
            serde_json::json!([{"location": "querystring", "name": name, "description": why}]),
            "{query}"
        );
    }
    assert!(s.fake.sync_seen().is_empty());
    // The longest list Sync takes goes through.
    let r = s.auth_get(&format!(
        "{}?in_ids={},a",
        records("tabs"),
        hundred[1..].join(",")
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"][0]["id"], "a");
}

#[test]
fn every_header_a_script_reads_is_exposed_on_each_endpoint() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 179_000_000_000);
    s.fake.put(KID, "tabs", "b", "x", 179_000_000_100);
    // What Kinto clients read from an answer, when the answer carries it.
    let read = [
        "ETag",
        "Last-Modified",
        "Total-Records",
        "Next-Page",
        "Cache-Control",
        "Alert",
        "Backoff",
        "Retry-After",
        "Quota-Remaining",
        "X-Request-Id",
    ];
    for path in [
        format!("/v1/buckets/{KID}"),
        format!("/v1/buckets/{KID}/collections"),
        format!("/v1/buckets/{KID}/collections/tabs"),
        format!("{}?_limit=1", records("tabs")),
        record("tabs", "a"),
    ] {
        let r = s.get(&path, &[BEARER, ("Origin", "https://app.example")]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let exposed: Vec<&str> = r
            .header("Access-Control-Expose-Headers")
            .unwrap_or_else(|| panic!("{path}: no Expose-Headers"))
            .split(", ")
            .collect();
        let carried: Vec<&str> = read.into_iter().filter(|h| r.header(h).is_some()).collect();
        assert!(carried.contains(&"ETag"), "{path}: {:?}", r.headers);
        for h in carried {
            assert!(exposed.contains(&h), "{path}: {h} not in {exposed:?}");
        }
    }
}

#[test]
fn a_preflight_adds_only_the_unknown_valid_header_names_asked_for() {
    let s = Syncto::start();
    let r = s.req(
        "OPTIONS",
        &records("tabs"),
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
            (
                "Access-Control-Request-Headers",
                "authorization, X-KeyID,x-custom, bad header,, if-match",
            ),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some(
            "Authorization, Content-Type, Accept, If-Match, If-None-Match, X-KeyID, \
             X-Client-State, User-Agent, x-custom"
        )
    );
}
