//! The fake Sync node answers as the real one (syncstorage-rs 0.23.3 + PostgreSQL) where
//! Syncto could send it: each case below was measured on the real server first (a
//! Hawk-signed request through `peer.sh`'s client, the answers in the comments). The fake is
//! only worth its tests while this holds.

use crate::support::{client, request};
use fakes::Fake;

/// The fake with its Hawk check off (the user is the one in the path) and a request to it.
struct Node {
    fake: Fake,
    agent: ureq::Agent,
}

impl Node {
    fn start() -> Node {
        let fake = Fake::start();
        fake.open();
        Node {
            fake,
            agent: client(),
        }
    }

    /// `(status, X-Last-Modified, body)` of one request as user 1.
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, Option<String>, String) {
        let mut h = headers.to_vec();
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        let url = format!("{}/1.5/1{path}", self.fake.sync_url);
        let r = request(&self.agent, method, &url, &h, body);
        let lm = r.header("X-Last-Modified").map(str::to_owned);
        (r.status, lm, r.body)
    }
}

#[test]
fn a_precondition_on_a_missing_record_is_checked_against_zero_first() {
    let node = Node::start();
    let ims = |v| [("X-If-Modified-Since", v)];
    // 304 at 0.00 for any X-If-Modified-Since, in a known or an unknown collection.
    for (path, since) in [
        ("/storage/tabs/missing", "0.00"),
        ("/storage/tabs/missing", "1000.00"),
        ("/storage/nosuchcoll/missing", "0"),
    ] {
        let got = node.call("GET", path, &ims(since), None);
        assert_eq!(
            got,
            (304, Some("0.00".into()), String::new()),
            "{path} {since}"
        );
    }
    // X-If-Unmodified-Since passes (0 is not newer), then the record is missing.
    let got = node.call(
        "GET",
        "/storage/tabs/missing",
        &[("X-If-Unmodified-Since", "0.00")],
        None,
    );
    assert_eq!((got.0, got.2.as_str()), (404, "0"));
    // Once it exists, its own timestamp counts.
    assert_eq!(
        node.call("PUT", "/storage/tabs/a", &[], Some(r#"{"payload":"x"}"#))
            .0,
        200
    );
    let lm = node.call("GET", "/storage/tabs/a", &[], None).1.unwrap();
    assert_eq!(node.call("GET", "/storage/tabs/a", &ims(&lm), None).0, 304);
    assert_eq!(
        node.call("GET", "/storage/tabs/a", &ims("0.00"), None).0,
        200
    );
}

#[test]
fn ids_over_64_and_collection_names_over_32_have_no_route() {
    let node = Node::start();
    let long_id = format!("/storage/tabs/{}", "i".repeat(65));
    let long_coll = "c".repeat(33);
    for (method, path, body) in [
        ("GET", long_id.clone(), None),
        ("PUT", long_id.clone(), Some(r#"{"payload":"x"}"#)),
        ("DELETE", long_id.clone(), None),
        ("GET", format!("/storage/{long_coll}"), None),
        ("GET", format!("/storage/{long_coll}/a"), None),
        (
            "PUT",
            format!("/storage/{long_coll}/a"),
            Some(r#"{"payload":"x"}"#),
        ),
    ] {
        let got = node.call(method, &path, &[], body);
        assert_eq!((got.0, got.2.as_str()), (404, "0"), "{method} {path}");
    }
    // The longest of each is routed.
    let path = format!("/storage/{}/{}", "c".repeat(32), "i".repeat(64));
    assert_eq!(
        node.call("PUT", &path, &[], Some(r#"{"payload":"x"}"#)).0,
        200
    );
    assert!(node.fake.conflicts() == 0 && node.fake.hawk_failures() == 0);
}

#[test]
fn put_bodies_are_held_to_the_nodes_bounds() {
    let node = Node::start();
    // One collection per write: the node's one-write-per-tick rule stays out of the way.
    let cases: &[(&str, u16)] = &[
        (r#"{"payload":"x","sortindex":1000000000}"#, 400),
        (r#"{"payload":"x","sortindex":-1000000000}"#, 400),
        (r#"{"payload":"x","sortindex":999999999}"#, 200),
        (r#"{"payload":"x","sortindex":-999999999}"#, 200),
        (r#"{"payload":"x","sortindex":1.5}"#, 400),
        (r#"{"payload":"x","ttl":1000000000}"#, 400),
        (r#"{"payload":"x","ttl":-1}"#, 400),
        (r#"{"payload":"x","ttl":1.5}"#, 400),
        (r#"{"payload":"x","ttl":999999999}"#, 200),
        (r#"{"payload":"x","ttl":0}"#, 200),
        (r#"{"payload":null}"#, 200),
        (r#"{"payload":"x","sortindex":null,"ttl":null}"#, 200),
        (r#"{"payload":1}"#, 400),
        (r#"{"payload":"x","modified":123,"collection":"zz"}"#, 200),
        (r#"{"payload":"x","id":"other"}"#, 200),
        (r#"{"payload":"x","foo":1}"#, 400),
    ];
    for (i, (body, status)) in cases.iter().enumerate() {
        let got = node.call("PUT", &format!("/storage/c{i}/r"), &[], Some(body));
        let want = if *status == 400 { "8" } else { got.2.as_str() };
        assert_eq!((got.0, got.2.as_str()), (*status, want), "{body}");
    }
}

#[test]
fn the_ids_filter_is_read_as_the_node_reads_it() {
    let node = Node::start();
    assert_eq!(
        node.call("PUT", "/storage/tabs/a", &[], Some(r#"{"payload":"x"}"#))
            .0,
        200
    );
    let list = |query: &str| {
        let got = node.call("GET", &format!("/storage/tabs?{query}"), &[], None);
        (got.0, got.2)
    };
    // Empty, or only commas: no filter at all, every record.
    assert_eq!(list("ids="), (200, r#"["a"]"#.into()));
    assert_eq!(list("ids=,"), (200, r#"["a"]"#.into()));
    // Trimmed; an inner space is part of the id.
    assert_eq!(list("ids=%20a"), (200, r#"["a"]"#.into()));
    assert_eq!(list("ids=a%20b"), (200, "[]".into()));
    let hundred: Vec<String> = (0..100).map(|i| format!("x{i}")).collect();
    assert_eq!(
        list(&format!("ids={}", hundred.join(","))),
        (200, "[]".into())
    );
    // More than 100, or one that is not a BSO id: 400 `0`.
    for query in [
        format!("ids={},x", hundred.join(",")),
        format!("ids={}", "i".repeat(65)),
        "ids=a%01b".to_owned(),
    ] {
        assert_eq!(list(&query), (400, "0".into()), "{query}");
    }
}
