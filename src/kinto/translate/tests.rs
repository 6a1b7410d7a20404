//! The translation's tests: golden pages, the oracle, refusals, properties.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use serde_json::Value;

fn list(body: &str, exclude: &[&str]) -> (String, usize, usize) {
    let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let (k, d) = rewrite_list(body.as_bytes(), &exclude, None, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), k, d)
}

#[test]
fn list_rewrite_is_exact() {
    let body = r#"[{"id":"Y_-5-LEeQBuh60IT0MyWEQ","modified":14377478425.69,"payload":"{\"ciphertext\":\"a\\u00e9\"}","sortindex":3}, {"id":"b","modified":1444385059.19}]"#;
    let (out, k, d) = list(body, &[]);
    assert_eq!(
        out,
        r#"[{"id":"Y_-5-LEeQBuh60IT0MyWEQ","last_modified":14377478425690,"payload":"{\"ciphertext\":\"a\\u00e9\"}","sortindex":3},{"id":"b","last_modified":1444385059190}]"#
    );
    assert_eq!((k, d), (2, 0));
    assert_eq!(list("[]", &[]).0, "[]");
    assert_eq!(list(" [ ] ", &[]).0, "[]");
}

#[test]
fn list_rewrite_excludes() {
    let body =
        r#"[{"id":"a","modified":1.00},{"id":"b","modified":2.00},{"id":"c","modified":3.00}]"#;
    assert_eq!(
        list(body, &["a"]).0,
        r#"[{"id":"b","last_modified":2000},{"id":"c","last_modified":3000}]"#
    );
    assert_eq!(
        list(body, &["b", "c"]).0,
        r#"[{"id":"a","last_modified":1000}]"#
    );
    let (out, k, d) = list(body, &["a", "b", "c"]);
    assert_eq!((out.as_str(), k, d), ("[]", 0, 3));
    // An id written with escapes is still the id.
    let (out, k, d) = list(r#"[{"id":"\u0061","modified":1}]"#, &["a"]);
    assert_eq!((out.as_str(), k, d), ("[]", 0, 1));
}

#[test]
fn bad_upstream_json_is_an_error() {
    let mut out = Vec::new();
    for bad in [
        r#"{"a":1}"#,
        "[1]",
        r#"[{"modified":"x"}]"#,
        "[",
        r#"[{"id":"a"}] x"#,
        "0",
        "",
        r#"[{"id":"a"},]"#,
        r#"[{"id":"a",}]"#,
        r#"[{"id":"a" "b":1}]"#,
        r#"[{"id":"a"}{"id":"b"}]"#,
        r#"[{"id":"a\x"}]"#,
        r#"[{"id":"a\u12"}]"#,
        "[{\"id\":\"a\u{1}\"}]",
        r#"[{"p":[1,2}]"#,
        r#"[{"p":{"a"}}]"#,
        r#"[{"p":01}]"#,
        r#"[{"p":1.}]"#,
        r#"[{"p":-}]"#,
        r#"[{"p":1e}]"#,
        r#"[{"p":tru}]"#,
        r#"[{"p":nul"#,
        r#"[{"\ud800":1}]"#,
    ] {
        assert!(
            rewrite_list(bad.as_bytes(), &[], None, &mut out).is_err(),
            "{bad}"
        );
        assert!(
            oracle::rewrite_list(bad.as_bytes(), &[], None, &mut out).is_err(),
            "oracle: {bad}"
        );
    }
    let invalid_utf8 = b"[{\"id\":\"\xff\"}]";
    assert!(rewrite_list(invalid_utf8, &[], None, &mut out).is_err());
    let e = rewrite_list(br#"[{"id":"a"} x"#, &[], None, &mut out).unwrap_err();
    assert_eq!(e, "records list: expected `,` or `]` at byte 12");
}

#[test]
fn record_rewrite() {
    let mut out = Vec::new();
    rewrite_record(
        br#"{"id":"x","modified":1.5,"payload":"p"}"#,
        None,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"id":"x","last_modified":1500,"payload":"p"}"#
    );
    let mut out = Vec::new();
    assert!(rewrite_record(br#"{"id":"x"} {}"#, None, &mut out).is_err());
    assert!(rewrite_record(br#"[{"id":"x"}]"#, None, &mut out).is_err());
}

#[test]
fn fields_keep_only_what_is_asked_plus_id_and_last_modified() {
    let body = r#"[{"payload":"p","id":"a","sortindex":3,"modified":1.00},{"id":"b","modified":2.00,"payload":"q"}]"#;
    let fields = ["sortindex".to_owned()];
    let mut out = Vec::new();
    rewrite_list(body.as_bytes(), &[], Some(&fields), &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"[{"id":"a","sortindex":3,"last_modified":1000},{"id":"b","last_modified":2000}]"#
    );
    let mut out = Vec::new();
    let none: [String; 0] = [];
    rewrite_record(
        br#"{"payload":"p","id":"x","modified":1.5}"#,
        Some(&none),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"id":"x","last_modified":1500}"#
    );
}

/// splitmix64: a deterministic stream for the generated pages.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A Sync page as a real node sends it: ids of 12 base64url characters,
/// two-decimal `modified`, an encrypted payload (a JSON object with
/// base64 ciphertext, IV and hex hmac, serialized into a string, so full
/// of `\"`), sortindex and sometimes ttl. A few records carry what a
/// node may also send: non-ASCII and `\u` escapes in a payload, a key
/// written with an escape, whitespace between tokens.
fn real_page(n: usize, seed: u64) -> (Vec<u8>, Vec<String>) {
    let mut rng = Rng(seed);
    let mut body = b"[".to_vec();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = URL_SAFE_NO_PAD.encode(rng.bytes(9));
        let len = 160 + rng.below(140) as usize;
        let payload = serde_json::json!({
            "ciphertext": STANDARD.encode(rng.bytes(len)),
            "IV": STANDARD.encode(rng.bytes(16)),
            "hmac": rng.bytes(32).iter().map(|b| format!("{b:02x}")).collect::<String>(),
        })
        .to_string();
        let mut payload = serde_json::to_string(&payload).unwrap();
        if i % 97 == 5 {
            payload.insert_str(1, "caf\\u00e9 été \\ud83d\\ude00 ");
        }
        let modified = 170_000_000_000 + rng.below(10_000_000);
        let modified = format!("{}.{:02}", modified / 100, modified % 100);
        if i > 0 {
            body.push(b',');
        }
        let record = match i % 50 {
            7 => format!(
                "{{ \"id\" : \"{id}\" ,\n \"modified\": {modified}, \"payload\":{payload} , \"ttl\": 2100000 }}"
            ),
            8 => format!(
                r#"{{"\u0069d":"{id}","modified":{modified},"payload":{payload},"sortindex":-3}}"#
            ),
            _ => format!(
                r#"{{"id":"{id}","modified":{modified},"payload":{payload},"sortindex":{}}}"#,
                rng.below(2000)
            ),
        };
        body.extend_from_slice(record.as_bytes());
        ids.push(id);
    }
    body.push(b']');
    (body, ids)
}

/// A translated list (after `{"data":`), with records kept and excluded.
type Listed = Result<(Vec<u8>, usize, usize), String>;
/// The signature of `rewrite_list`.
type Rewrite =
    fn(&[u8], &[String], Option<&[String]>, &mut Vec<u8>) -> Result<(usize, usize), String>;

/// The scanner's answer and the oracle's.
fn both_lists(body: &[u8], exclude: &[String], fields: Option<&[String]>) -> (Listed, Listed) {
    let run = |f: Rewrite| {
        let mut out = b"{\"data\":".to_vec();
        f(body, exclude, fields, &mut out).map(|(k, d)| (out, k, d))
    };
    (run(rewrite_list), run(oracle::rewrite_list))
}

#[test]
fn a_big_real_page_translates_byte_for_byte_as_before() {
    let (body, ids) = real_page(1000, 8);
    assert!(body.len() > 450_000, "{}", body.len());
    let (new, old) = both_lists(&body, &[], None);
    let (mut out, kept, dropped) = new.unwrap();
    assert_eq!((kept, dropped), (1000, 0));
    assert!(out == old.unwrap().0, "the translation changed");
    out.push(b'}');
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["data"].as_array().unwrap().len(), 1000);
    assert_eq!(doc["data"][8]["id"], ids[8].as_str());

    let exclude = vec![ids[3].clone(), ids[500].clone(), ids[8].clone()];
    let (new, old) = both_lists(&body, &exclude, None);
    assert_eq!(new.as_ref().map(|(_, k, d)| (*k, *d)), Ok((997, 3)));
    assert!(new == old);

    for fields in [
        vec![],
        vec!["sortindex".to_owned()],
        vec!["payload".to_owned(), "ttl".to_owned()],
    ] {
        let (new, old) = both_lists(&body, &[], Some(&fields));
        assert!(new.is_ok() && new == old, "{fields:?}");
    }

    for i in [0, 7, 8, 5] {
        let record =
            serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()[i]).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        rewrite_record(&record, None, &mut a).unwrap();
        oracle::rewrite_record(&record, None, &mut b).unwrap();
        assert_eq!(a, b);
    }
}

/// Every byte value, and the multi-byte pieces a string may hold, at each
/// offset of the words the scanner reads eight and sixteen at a time (the
/// first look at a string, the steps after it, the bytes left at the end),
/// inside a string, ending a key and after the digits of a number: the
/// scanner answers as the oracle does.
#[test]
fn every_byte_at_every_offset_agrees_with_the_oracle() {
    let mut pieces: Vec<Vec<u8>> = (0..=255u8).map(|c| vec![c]).collect();
    for piece in ["é", "😀", "\\\"", "\\\\", "\\u00e9", "\\ud83d\\ude00"] {
        pieces.push(piece.as_bytes().to_vec());
    }
    let check = |body: Vec<u8>| {
        let (new, old) = both_lists(&body, &[], None);
        assert_eq!(
            new.is_ok(),
            old.is_ok(),
            "{:?}: {new:?} {old:?}",
            String::from_utf8_lossy(&body)
        );
        if let (Ok(a), Ok(b)) = (new, old) {
            assert!(a == b, "{:?}", String::from_utf8_lossy(&body));
        }
    };
    for piece in &pieces {
        for at in 0..40 {
            let mut text = vec![b'a'; 40];
            text.splice(at..=at, piece.iter().copied());
            let mut body = br#"[{"id":"a","modified":1.00,"p":""#.to_vec();
            body.extend_from_slice(&text);
            body.extend_from_slice(br#""}]"#);
            check(body);
            // Valid only if the piece is what closes the key.
            let mut body = br#"[{"id":"a","modified":1.00,""#.to_vec();
            body.extend_from_slice(&text[..at + piece.len()]);
            body.extend_from_slice(br#":1,"z":"aaaaaaaaaaaaaaaaaaaa"}]"#);
            check(body);
            let mut body = br#"[{"id":"a","modified":1.00,"n":1"#.to_vec();
            body.extend(std::iter::repeat_n(b'2', at % 20));
            body.extend_from_slice(piece);
            body.extend_from_slice(b"3456789}]");
            check(body);
        }
    }
}

/// Pieces that change the meaning of JSON when put in the wrong place.
const SHARP: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"0",
    b"-",
    b".",
    b"e",
    b"E",
    b"u",
    b"x",
    b" ",
    b"\t",
    b"\n",
    b"\x01",
    b"\x1f",
    b"\x7f",
    b"\xc3\xa9",
    b"\xc3",
    b"\xff",
    b"\xed\xa0\x80",
    b"t",
    b"f",
    b"n",
    b"/",
    b"\\x",
    b"\\u12",
    b"\\u00e9",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"01",
    b"1.",
    b"1e",
    b"-0",
    b"1E+2",
    b"true",
    b"nul",
    b"null",
    b"[]",
    b"{}",
    b"\"\"",
    b"\"a\":",
    b",]",
    b",}",
];

/// Every kind of token in a few bytes.
const DENSE: &str = r#"[{"id":"a","modified":1.50,"p":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00é","q":[1,-2.5e+3,0.1E-2,true,false,null,{"k":"v","\u006b":{}},[]]},{"id":"b","modified":0}]"#;

fn mutated(base: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    let mut b = base;
    for (at, what, piece) in edits {
        let piece = SHARP[usize::from(piece) % SHARP.len()];
        let at = at % (b.len() + 1);
        match what % 3 {
            0 => {
                b.splice(at..(at + 1).min(b.len()), piece.iter().copied());
            }
            1 => {
                b.splice(at..at, piece.iter().copied());
            }
            _ if at < b.len() => {
                b.remove(at);
            }
            _ => {}
        }
    }
    b
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x00-\\x7f\u{e9}\u{1f600}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"\\\\\u{e9}\\x01]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn record_json() -> impl Strategy<Value = Value> {
    let modified = prop_oneof![
        (0u64..20_000_000_000u64).prop_map(|cs| serde_json::json!(cs as f64 / 100.0)),
        any_json(),
    ];
    (
        "[a-zA-Z0-9_\\-\u{e9}\"]{0,6}",
        modified,
        prop::collection::btree_map("[a-z]{1,3}|payload|sortindex|ttl", any_json(), 0..3),
    )
        .prop_map(|(id, modified, extra)| {
            let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
            m.insert("id".into(), Value::String(id));
            m.insert("modified".into(), modified);
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Valid JSON of any shape, compact or pretty: the same answer as
    /// the oracle, byte for byte, or an error from both.
    #[test]
    fn same_as_the_oracle_on_any_json(
        records in prop::collection::vec(record_json(), 0..5),
        pretty in any::<bool>(),
        exclude in prop::collection::vec("[a-c\u{e9}]{0,2}", 0..2),
        fields in prop::option::of(prop::collection::vec("[a-z]{1,3}|payload", 0..2)),
    ) {
        let value = Value::Array(records);
        let body = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        let (new, old) = both_lists(&body, &exclude, fields.as_deref());
        prop_assert_eq!(new.is_ok(), old.is_ok(), "{:?} {:?}", new, old);
        if let (Ok(a), Ok(b)) = (new, old) {
            prop_assert!(a == b);
        }
    }

    /// Broken JSON: refused exactly when the oracle refuses it, and
    /// otherwise translated to the same bytes.
    #[test]
    fn same_as_the_oracle_on_broken_json(
        seed in any::<u64>(),
        n in 0usize..4,
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        exclude in any::<bool>(),
    ) {
        // A real page, or a short one dense with every kind of token.
        let (page, ids) = if n == 0 {
            (DENSE.as_bytes().to_vec(), vec!["a".to_owned()])
        } else {
            real_page(n, seed)
        };
        let body = mutated(page, edits);
        let exclude: Vec<String> = if exclude { ids.into_iter().take(1).collect() } else { vec![] };
        let (new, old) = both_lists(&body, &exclude, None);
        prop_assert_eq!(new.is_ok(), old.is_ok(), "{:?}\nnew {:?}\nold {:?}", String::from_utf8_lossy(&body), new.as_ref().err(), old.as_ref().err());
        if let (Ok(a), Ok(b)) = (new, old) {
            prop_assert!(a == b);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let one = body.get(1..body.len().saturating_sub(1)).unwrap_or(&[]);
        let (ra, rb) = (rewrite_record(one, None, &mut a), oracle::rewrite_record(one, None, &mut b));
        prop_assert_eq!(ra.is_ok(), rb.is_ok(), "{:?}", String::from_utf8_lossy(one));
        if ra.is_ok() {
            prop_assert!(a == b);
        }
    }
}
