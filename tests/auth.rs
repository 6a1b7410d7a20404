//! Who the user is: OAuth (bucket or X-KeyID header), legacy BrowserID
//! (32-char bucket or X-Client-State, the header with a deprecation Alert), and the
//! 401s with `WWW-Authenticate` that name what is missing, as the original Syncto.

use crate::support::*;
use fakes::Canned;

#[test]
fn oauth_key_id_from_the_bucket() {
    let s = Syncto::start();
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 200, "{}", r.body);
    let token_seen = s.fake.token_seen();
    assert_eq!(token_seen[0].header("x-keyid"), Some(KID));
    assert_eq!(
        token_seen[0].header("authorization"),
        Some("Bearer good-token")
    );
    assert_eq!(token_seen[0].header("x-client-state"), None);
}

#[test]
fn oauth_key_id_from_the_header_with_the_syncto_bucket() {
    let s = Syncto::start();
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let r = s.get(
        "/v1/buckets/syncto/collections/tabs/records",
        &[("Authorization", "bearer good-token"), ("X-KeyID", KID)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"][0]["id"], "a");
    assert_eq!(s.fake.token_seen()[0].header("x-keyid"), Some(KID));
    assert_eq!(r.header("Alert"), None);
}

#[test]
fn browserid_client_state_from_the_bucket() {
    let s = Syncto::start();
    let r = s.get(
        &format!("/v1/buckets/{CS}/collections/tabs/records"),
        &[("Authorization", "BrowserID abcd")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token_seen = s.fake.token_seen();
    assert_eq!(
        token_seen[0].header("authorization"),
        Some("BrowserID abcd")
    );
    assert_eq!(token_seen[0].header("x-client-state"), Some(CS));
    assert_eq!(r.header("Alert"), None);
}

#[test]
fn browserid_client_state_header_is_deprecated_with_an_alert() {
    let s = Syncto::start();
    let r = s.get(
        "/v1/buckets/syncto/collections/tabs/records",
        &[
            ("Authorization", "BrowserID abcd"),
            ("X-Client-State", "1234"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.fake.token_seen()[0].header("x-client-state"),
        Some("1234")
    );
    let alert: serde_json::Value = serde_json::from_str(r.header("Alert").unwrap()).unwrap();
    assert_eq!(alert["code"], "soft-eol");
    assert_eq!(
        alert["message"],
        "X-Client-State header is deprecated and should not be provided anymore."
    );
    assert_eq!(
        alert["url"],
        "https://docs.kinto-storage.org/en/stable/api/"
    );
}

#[test]
fn one_credential_two_client_states_are_two_users() {
    let s = Syncto::start();
    let other = "0123456789abcdef0123456789abcdef";
    for bucket in [CS, other, CS] {
        let r = s.get(
            &format!("/v1/buckets/{bucket}/collections/tabs/records"),
            &[("Authorization", "BrowserID same")],
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(s.fake.token_calls(), 2);
}

#[test]
fn token_and_key_id_pairs_that_concatenate_alike_are_two_users() {
    // ("tok1", "2-…") and ("tok", "12-…") spell the same bytes end to end: the credentials
    // cache must still keep them apart, or the second user reads the first one's data.
    let s = Syncto::start();
    let first = "2-Yw3NKWbEM2aRElRIu7JbTw";
    let second = "12-Yw3NKWbEM2aRElRIu7JbTw";
    s.fake.put(first, "tabs", "mine", "first", 1000);
    s.fake.put(second, "tabs", "yours", "second", 1000);
    let ids = |token: &str, kid: &str| {
        let r = s.get(
            &format!("/v1/buckets/{kid}/collections/tabs/records"),
            &[("Authorization", token)],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rec| rec["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("Bearer tok1", first), ["mine"]);
    assert_eq!(ids("Bearer tok", second), ["yours"]);
    assert_eq!(ids("Bearer tok1", first), ["mine"]);
    assert_eq!(s.fake.token_calls(), 2, "one exchange per user, then hits");
}

#[test]
fn unauthenticated_requests_get_401_104_naming_what_is_missing() {
    let s = Syncto::start();
    let list = "/v1/buckets/syncto/collections/tabs/records";
    let one = "/v1/buckets/syncto/collections/tabs/records/abc";
    for path in [list, one] {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[], "Provide an Authorization header"),
            (
                &[("Authorization", "Basic dXNlcjpwYXNz")],
                "Unsupported authorization scheme",
            ),
            (&[("Authorization", "Bearer")], "no token"),
            (
                &[("Authorization", "Bearer tok")],
                "Provide the tokenserver X-KeyID header",
            ),
            (
                &[("Authorization", "Bearer tok"), ("X-KeyID", "12-short")],
                "X-KeyID header is malformed",
            ),
            (
                &[("Authorization", "BrowserID abcd")],
                "Provide the tokenserver X-Client-State header.",
            ),
        ];
        for (headers, message) in cases {
            let r = s.get(path, headers);
            let j = r.assert_error(401, 104);
            assert!(
                j["message"].as_str().unwrap().contains(message),
                "{path} {headers:?}: {j}"
            );
            // The scheme in use, never Basic (a browser would open a password dialog).
            let legacy = headers.iter().any(|(_, v)| v.starts_with("BrowserID"));
            let challenge = if legacy { "BrowserID" } else { "Bearer" };
            assert_eq!(
                r.header("WWW-Authenticate"),
                Some(format!("{challenge} realm=\"Syncto\"").as_str()),
                "{path} {headers:?}"
            );
        }
    }
    for bucket in ["12345", "not-a-key-id"] {
        let r = s.get(
            &format!("/v1/buckets/{bucket}/collections/tabs/records"),
            &[("Authorization", "BrowserID a")],
        );
        assert_eq!(
            r.assert_error(401, 104)["message"],
            "The provided bucket ID is incorrect."
        );
    }
    assert_eq!(s.fake.token_calls(), 0);
}

#[test]
fn token_server_refusal_is_401_105_with_its_message() {
    let s = Syncto::start();
    let r = s.get(&records("tabs"), &[("Authorization", "Bearer invalid")]);
    let j = r.assert_error(401, 105);
    let m = j["message"].as_str().unwrap();
    assert!(
        m.starts_with("401 Unauthorized: {\"status\": \"invalid-credentials\""),
        "{m}"
    );
    assert!(!m.contains("invalid\""), "the token is never echoed: {m}");
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"Syncto\"")
    );
    // A refusal is remembered for a short while: the same answer, no call.
    let again = s.get(&records("tabs"), &[("Authorization", "Bearer invalid")]);
    assert_eq!(again.assert_error(401, 105)["message"], j["message"]);
    assert_eq!(s.fake.token_calls(), 1);
}

#[test]
fn token_server_errors_are_mapped() {
    let s = Syncto::start();
    let cases = [
        (Canned::new(400, "{\"status\":\"error\"}"), 400, 107),
        (
            Canned::new(403, "{\"status\":\"new-users-disabled\"}"),
            403,
            121,
        ),
        (Canned::new(404, "{}"), 404, 110),
        (Canned::new(429, "{}").with("Retry-After", "7"), 429, 117),
        (Canned::new(500, "{}"), 503, 201),
        (Canned::new(503, "{}").with("Retry-After", "120"), 503, 201),
        (Canned::new(200, "not json"), 503, 201),
        (
            Canned::new(
                200,
                "{\"id\":\"a\",\"key\":\"b\",\"api_endpoint\":\"http://sync.example.com/1.5/1\"}",
            ),
            503,
            201,
        ),
    ];
    for (canned, status, errno) in cases {
        s.fake.script_token([canned.clone()]);
        let r = s.auth_get(&records("tabs"));
        r.assert_error(status, errno);
        if status == 503 || status == 429 {
            let expected = canned
                .headers
                .iter()
                .find(|(n, _)| n == "Retry-After")
                .map_or("30", |(_, v)| v.as_str());
            assert_eq!(r.header("Retry-After"), Some(expected), "{canned:?}");
        }
    }
    // A plain-http node that isn't loopback is refused: credentials never travel in clear.
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn token_server_outage_is_503_with_retry_after() {
    let s = Syncto::with(|c| c.token_server_url = "http://127.0.0.1:9/".into());
    s.auth_get(&records("tabs")).assert_unreachable();
}

#[test]
fn a_batch_sub_request_refused_401_challenges_with_its_own_scheme() {
    let s = Syncto::start();
    let body = serde_json::json!({"requests": [
        {"path": "/buckets/syncto/collections/tabs/records",
         "headers": {"Authorization": "BrowserID assertion"}},
        {"path": "/buckets/syncto/collections/tabs/records",
         "headers": {"Authorization": "Bearer tok"}},
    ]});
    let r = s.req("POST", "/v1/batch", &[JSON], Some(&body.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    let subs = r.json()["responses"].as_array().unwrap().clone();
    let challenges: Vec<_> = subs
        .iter()
        .map(|sub| {
            assert_eq!(sub["status"], 401, "{sub}");
            sub["headers"]["WWW-Authenticate"].clone()
        })
        .collect();
    assert_eq!(
        challenges,
        ["BrowserID realm=\"Syncto\"", "Bearer realm=\"Syncto\""]
    );
    // The batch itself was served: no challenge on its 200.
    assert_eq!(r.header("WWW-Authenticate"), None);
}
