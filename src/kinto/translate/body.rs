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
