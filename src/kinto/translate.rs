//! Sync's record JSON → Kinto's, in one pass over the bytes.
//!
//! Records are copied field by field as raw JSON text; `modified` (decimal
//! seconds) becomes `last_modified` (integer ms). Values, payloads included,
//! are never unescaped or re-encoded: their bytes are checked and copied.
//!
//! The scanner accepts exactly the JSON that serde_json accepts for the same
//! shape (an array of objects, or one object, with values of any JSON type):
//! strings must close, escapes must be `\" \\ \/ \b \f \n \r \t \uXXXX`, no
//! raw control character may appear in a string, strings are valid UTF-8,
//! numbers follow the JSON grammar, and nothing but whitespace may follow.
//! Invalid upstream JSON is an error, never passed on. Keys written with
//! escapes are decoded (and their `\u` surrogates checked) by serde_json and
//! written back in its canonical form, as before; keys without escapes are
//! copied as they are.
//!
//! Strings are scanned eight bytes at a time for their end, escapes and
//! control characters (the release build is optimised for size, which
//! leaves byte loops unvectorised); a string goes through UTF-8 validation
//! only when it has non-ASCII bytes.

use crate::sync15::timestamp;
use std::borrow::Cow;

/// Rewrite a Sync list body into `out` (appended); returns (records kept,
/// records excluded). With `fields`, records keep only those fields besides
/// `id` and `last_modified` (Kinto's `_fields`).
pub fn rewrite_list(
    body: &[u8],
    exclude: &[String],
    fields: Option<&[String]>,
    out: &mut Vec<u8>,
) -> Result<(usize, usize), String> {
    let mut s = Scan { b: body, i: 0 };
    let opts = Opts { exclude, fields };
    list(&mut s, &opts, out).map_err(|e| format!("records list: {}", e.describe(&s)))
}

/// Rewrite one Sync record into `out` (appended; `fields` as in
/// [`rewrite_list`]).
pub fn rewrite_record(
    body: &[u8],
    fields: Option<&[String]>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut s = Scan { b: body, i: 0 };
    let opts = Opts {
        exclude: &[],
        fields,
    };
    record(&mut s, &opts, out)
        .and_then(|_| s.end())
        .map_err(|e| format!("record: {}", e.describe(&s)))
}

struct Opts<'o> {
    exclude: &'o [String],
    fields: Option<&'o [String]>,
}

/// Why the input was refused, and where (byte offset).
#[derive(Debug)]
struct Fail {
    why: &'static str,
    at: usize,
}

impl Fail {
    fn describe(&self, s: &Scan<'_>) -> String {
        let at = self.at.min(s.b.len());
        format!("{} at byte {at}", self.why)
    }
}

/// A cursor over the input.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn fail<T>(&self, why: &'static str) -> Result<T, Fail> {
        Err(Fail { why, at: self.i })
    }

    /// Skip JSON whitespace; the next byte, if any.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// Expect `c` (after whitespace) and step over it.
    fn eat(&mut self, c: u8, why: &'static str) -> Result<(), Fail> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.fail(why)
        }
    }

    /// Nothing but whitespace left.
    fn end(&mut self) -> Result<(), Fail> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("trailing characters"),
        }
    }

    /// A string starting at the cursor (on its `"`), checked; the cursor ends
    /// after the closing quote. Returns whether it had escapes.
    fn string(&mut self) -> Result<bool, Fail> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        // The bytes passed over, OR-ed: non-ASCII shows in the top bits.
        let mut seen = 0u64;
        loop {
            // The next `"`, `\` or control character, eight bytes at a time.
            let at = loop {
                if let Some(chunk) = b.get(i..i + 8) {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(chunk);
                    let w = u64::from_le_bytes(word);
                    let found = special(w);
                    if found != 0 {
                        let p = found.trailing_zeros() as usize / 8;
                        seen |= w & ((1u64 << (p * 8)) - 1);
                        break i + p;
                    }
                    seen |= w;
                    i += 8;
                } else {
                    let rest = &b[i..];
                    let Some(p) = rest
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                    else {
                        self.i = b.len();
                        return self.fail("end of input in a string");
                    };
                    seen |= rest[..p].iter().fold(0, |a, &c| a | u64::from(c));
                    break i + p;
                }
            };
            match b[at] {
                b'"' => {
                    i = at;
                    break;
                }
                b'\\' => {}
                _ => {
                    self.i = at;
                    return self.fail("control character in a string");
                }
            }
            escaped = true;
            match b.get(at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i = at + 2,
                Some(b'u') => {
                    let Some(hex) = b.get(at + 2..at + 6) else {
                        self.i = b.len();
                        return self.fail("end of input in a string");
                    };
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        self.i = at;
                        return self.fail("invalid escape");
                    }
                    i = at + 6;
                }
                Some(_) => {
                    self.i = at;
                    return self.fail("invalid escape");
                }
                None => {
                    self.i = b.len();
                    return self.fail("end of input in a string");
                }
            }
        }
        if seen & TOPS != 0 && std::str::from_utf8(&b[start..i]).is_err() {
            self.i = start;
            return self.fail("invalid UTF-8 in a string");
        }
        self.i = i + 1;
        Ok(escaped)
    }

    /// A number starting at the cursor, by the JSON grammar.
    fn number(&mut self) -> Result<(), Fail> {
        let digits = |s: &mut Scan<'_>| {
            let from = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            s.i > from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return self.fail("invalid number");
                }
            }
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.fail("invalid number"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return self.fail("invalid number");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    /// `true`, `false` or `null` at the cursor.
    fn literal(&mut self, word: &'static [u8]) -> Result<(), Fail> {
        for &c in word {
            if self.b.get(self.i) != Some(&c) {
                return self.fail("invalid literal");
            }
            self.i += 1;
        }
        Ok(())
    }

    /// Any JSON value after whitespace, checked and skipped; returns its
    /// bytes. Nesting is followed with a stack, not recursion, so depth
    /// costs memory, never the thread's stack.
    fn value(&mut self) -> Result<&'a [u8], Fail> {
        self.peek();
        let start = self.i;
        let mut open: Vec<u8> = Vec::new();
        'value: loop {
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'[') => {
                    self.i += 1;
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        open.push(b'[');
                        continue 'value;
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        self.key()?;
                        open.push(b'{');
                        continue 'value;
                    }
                }
                Some(_) => return self.fail("expected a value"),
                None => return self.fail("end of input where a value was expected"),
            }
            // After a value: close what it ends, or go on to the next one.
            loop {
                let Some(&frame) = open.last() else {
                    return Ok(&self.b[start..self.i]);
                };
                match (self.peek(), frame) {
                    (Some(b','), _) => {
                        self.i += 1;
                        if frame == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (Some(b']'), b'[') | (Some(b'}'), b'{') => {
                        self.i += 1;
                        open.pop();
                    }
                    (None, _) => return self.fail("end of input in an array or object"),
                    _ => return self.fail("expected `,` or the end of an array or object"),
                }
            }
        }
    }

    /// An object key and its colon, inside a skipped value.
    fn key(&mut self) -> Result<(), Fail> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a string key");
        }
        self.string()?;
        self.eat(b':', "expected `:`")
    }
}

/// 0x01 in every byte.
const ONES: u64 = u64::MAX / 255;
/// The top bit of every byte.
const TOPS: u64 = ONES << 7;

/// The top bit set in each byte of `w` that is `"`, `\\` or a control
/// character (below 0x20). Bytes above the first such byte may be flagged
/// wrongly (a borrow runs up), never below it: the lowest flag is exact.
fn special(w: u64) -> u64 {
    // x ^ 2 is below 0x21 exactly for the control characters and `"`
    // (0x22 ^ 2 = 0x20): one test for both.
    let flipped = w ^ (ONES * 0x02);
    let quote_or_control = flipped.wrapping_sub(ONES * 0x21) & !flipped;
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (quote_or_control | backslash) & TOPS
}

/// `[record, …]` → `[kinto record, …]`.
fn list(s: &mut Scan<'_>, opts: &Opts<'_>, out: &mut Vec<u8>) -> Result<(usize, usize), Fail> {
    s.eat(b'[', "expected a JSON array of records")?;
    out.push(b'[');
    let (mut kept, mut dropped) = (0, 0);
    let mut first = true;
    loop {
        match s.peek() {
            Some(b']') => break,
            Some(b',') if !first => {
                s.i += 1;
                if s.peek() == Some(b']') {
                    return s.fail("trailing comma");
                }
            }
            Some(_) if first => {}
            Some(_) => return s.fail("expected `,` or `]`"),
            None => return s.fail("end of input in the list"),
        }
        first = false;
        let start = out.len();
        if kept > 0 {
            out.push(b',');
        }
        if record(s, opts, out)? {
            kept += 1;
        } else {
            out.truncate(start);
            dropped += 1;
        }
    }
    s.i += 1;
    out.push(b']');
    s.end()?;
    Ok((kept, dropped))
}

/// One record object into `out`; false when its id is excluded.
fn record(s: &mut Scan<'_>, opts: &Opts<'_>, out: &mut Vec<u8>) -> Result<bool, Fail> {
    s.eat(b'{', "expected a record object")?;
    out.push(b'{');
    let mut first_key = true;
    let mut first_out = true;
    let mut keep = true;
    loop {
        match s.peek() {
            Some(b'}') => break,
            Some(b',') if !first_key => {
                s.i += 1;
                match s.peek() {
                    Some(b'"') => {}
                    Some(b'}') => return s.fail("trailing comma"),
                    _ => return s.fail("expected a string key"),
                }
            }
            Some(b'"') if first_key => {}
            Some(_) if first_key => return s.fail("expected a string key"),
            Some(_) => return s.fail("expected `,` or `}`"),
            None => return s.fail("end of input in a record"),
        }
        first_key = false;
        let key_start = s.i;
        let escaped = s.string()?;
        let raw_key = &s.b[key_start..s.i];
        let key: Cow<'_, [u8]> = if escaped {
            // Decoded as serde_json decodes keys (paired surrogates only).
            match serde_json::from_slice::<String>(raw_key) {
                Ok(k) => Cow::Owned(k.into_bytes()),
                Err(_) => {
                    return Err(Fail {
                        why: "invalid escape in a key",
                        at: key_start,
                    });
                }
            }
        } else {
            Cow::Borrowed(&raw_key[1..raw_key.len() - 1])
        };
        let key = &*key;
        s.eat(b':', "expected `:`")?;
        let value = s.value()?;
        let wanted = match opts.fields {
            Some(f) => matches!(key, b"id" | b"modified") || f.iter().any(|n| n.as_bytes() == key),
            None => true,
        };
        if !wanted {
            continue;
        }
        if !first_out {
            out.push(b',');
        }
        first_out = false;
        if key == b"modified" {
            out.extend_from_slice(b"\"last_modified\":");
            // Values are ASCII outside strings, checked UTF-8 inside.
            let text = std::str::from_utf8(value).unwrap_or("");
            if !timestamp::append_ms(text, out) {
                return Err(Fail {
                    why: "modified is not a timestamp",
                    at: s.i - value.len(),
                });
            }
            continue;
        }
        if !opts.exclude.is_empty() && key == b"id" {
            let id = string_value(value);
            keep = !opts.exclude.iter().any(|e| *e == id);
        }
        if escaped {
            // Writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, std::str::from_utf8(key).unwrap_or(""));
        } else {
            out.extend_from_slice(raw_key);
        }
        out.push(b':');
        out.extend_from_slice(value);
    }
    s.i += 1;
    out.push(b'}');
    Ok(keep)
}

/// A value as a string: its text when it is a JSON string, else empty.
fn string_value(raw: &[u8]) -> Cow<'_, str> {
    match raw {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
            Cow::Borrowed(std::str::from_utf8(inner).unwrap_or_default())
        }
        _ => serde_json::from_slice::<String>(raw)
            .map(Cow::Owned)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests {
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
}
