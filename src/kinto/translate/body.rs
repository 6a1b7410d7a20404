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
//! Strings are scanned sixteen bytes at a time (two words) for their end,
//! escapes, control characters and non-ASCII bytes (the release build is
//! optimised for size, which leaves byte loops unvectorised); keys and ids
//! are done in one such step without a call; a string goes through UTF-8
//! validation only when it has non-ASCII bytes. Digits go eight at a time.
//!
//! The output is not written value by value: what goes out as it came in
//! (nearly all of a page: everything but `modified`) is kept as one run of
//! the input and copied in one go when something else must be written
//! ([`Out`]), so a record costs one copy, not one per key and value.

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
    let mut out = Out::new(body, out);
    let counts =
        list(&mut s, &opts, &mut out).map_err(|e| format!("records list: {}", e.describe(&s)))?;
    out.flush();
    Ok(counts)
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
    let mut out = Out::new(body, out);
    record(&mut s, &opts, &mut out)
        .and_then(|_| s.end())
        .map_err(|e| format!("record: {}", e.describe(&s)))?;
    out.flush();
    Ok(())
}

/// The output, built from runs of the input. The bytes still to be written
/// are `src[from..to]` (nothing when `from == to`); writing input bytes that
/// follow them, or a byte equal to the input's next one, only moves `to`.
/// Anything else first copies the run. Whatever the positions, the run
/// holds exactly the bytes that were to go out, so the result is the same
/// as writing each piece when it comes.
struct Out<'o, 'a> {
    buf: &'o mut Vec<u8>,
    src: &'a [u8],
    from: usize,
    to: usize,
}

/// Where the output stood, to take back what followed ([`Out::reset`]).
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    from: usize,
    to: usize,
}

impl<'o, 'a> Out<'o, 'a> {
    fn new(src: &'a [u8], buf: &'o mut Vec<u8>) -> Self {
        Out {
            buf,
            src,
            from: 0,
            to: 0,
        }
    }

    /// `src[a..b]` goes out next.
    #[inline]
    fn copy(&mut self, a: usize, b: usize) {
        if a != self.to {
            self.flush();
            self.from = a;
        }
        self.to = b;
    }

    /// The byte `c` goes out next.
    #[inline]
    fn byte(&mut self, c: u8) {
        if self.src.get(self.to) == Some(&c) {
            self.to += 1;
        } else {
            self.flush();
            self.buf.push(c);
        }
    }

    /// The buffer, for bytes that are not the input's; the next run may
    /// start at `resume` (where the input goes on).
    fn own(&mut self, resume: usize) -> &mut Vec<u8> {
        self.flush();
        self.from = resume;
        self.to = resume;
        self.buf
    }

    /// Copy the run.
    fn flush(&mut self) {
        if self.to > self.from {
            self.buf.extend_from_slice(&self.src[self.from..self.to]);
        }
        self.from = self.to;
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            from: self.from,
            to: self.to,
        }
    }

    /// Take back everything written since `m`.
    fn reset(&mut self, m: Mark) {
        self.buf.truncate(m.len);
        self.from = m.from;
        self.to = m.to;
    }
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
    ///
    /// Keys and ids close within sixteen bytes with nothing to look at
    /// before the quote: those take two words and no call.
    #[inline(always)]
    fn string(&mut self) -> Result<bool, Fail> {
        if let Some(two) = self.b.get(self.i + 1..).and_then(<[u8]>::first_chunk::<16>) {
            let words = u128::from_le_bytes(*two);
            let (lo, hi) = (special(words as u64), special((words >> 64) as u64));
            let p = if lo != 0 {
                lo.trailing_zeros() as usize / 8
            } else {
                8 + hi.trailing_zeros() as usize / 8
            };
            if two.get(p) == Some(&b'"') {
                self.i += p + 2;
                return Ok(false);
            }
        }
        self.long_string()
    }

    /// [`Scan::string`], the general case.
    fn long_string(&mut self) -> Result<bool, Fail> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            // The next byte to look at: `"`, `\`, a control character or a
            // non-ASCII byte, sixteen then eight bytes at a time.
            let at = 'find: {
                let mut chunks = b.get(i..).unwrap_or_default().chunks_exact(16);
                for chunk in &mut chunks {
                    let two = u128::from_le_bytes(chunk.try_into().unwrap_or_default());
                    let (lo, hi) = (special(two as u64), special((two >> 64) as u64));
                    if lo | hi != 0 {
                        break 'find if lo != 0 {
                            i + lo.trailing_zeros() as usize / 8
                        } else {
                            i + 8 + hi.trailing_zeros() as usize / 8
                        };
                    }
                    i += 16;
                }
                let Some(p) = chunks
                    .remainder()
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
                else {
                    self.i = b.len();
                    return self.fail("end of input in a string");
                };
                i + p
            };
            match b[at] {
                b'"' => {
                    i = at;
                    break;
                }
                b'\\' => {}
                c if c >= 0x80 => {
                    // Checked as UTF-8 once the string is whole.
                    ascii = false;
                    i = at + 1;
                    while b.get(i).is_some_and(|&c| c >= 0x80) {
                        i += 1;
                    }
                    continue;
                }
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
        if !ascii && std::str::from_utf8(&b[start..i]).is_err() {
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
            // Eight at a time, then one by one.
            while let Some(word) = s.b.get(s.i..).and_then(<[u8]>::first_chunk::<8>) {
                let other = not_digit(u64::from_le_bytes(*word));
                if other != 0 {
                    s.i += other.trailing_zeros() as usize / 8;
                    return s.i > from;
                }
                s.i += 8;
            }
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

/// The top bit set in each byte of `w` that is `"`, `\\`, a control
/// character (below 0x20) or not ASCII (0x80 and above). Bytes above the
/// first such byte may be flagged wrongly (a borrow runs up), never below
/// it: the lowest flag is exact.
fn special(w: u64) -> u64 {
    // Per byte x, with no borrow from below: y - n has its top bit set when
    // y < n or y >= 0x80 + n. y = x ^ 2 is below 0x21 exactly for the
    // control characters and `"` (0x22 ^ 2 = 0x20); z = x ^ 0x5c is 0
    // exactly for `\\`. From ASCII, y and z stay below 0x80, so nothing else
    // is flagged; from x >= 0x80, z is 0x81 or more, but for x = 0xdc,
    // whose y is 0xde: every non-ASCII byte is flagged. A byte borrows from
    // the next only when it is flagged itself, so below the lowest flag
    // nothing borrowed.
    let quote_or_control = (w ^ (ONES * 0x02)).wrapping_sub(ONES * 0x21);
    let backslash = (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    (quote_or_control | backslash) & TOPS
}

/// The top bit set in each byte of `w` that is not an ASCII digit; as in
/// [`special`], only the lowest flag is exact.
fn not_digit(w: u64) -> u64 {
    // Below `0`: x - 0x30 borrows; above `9`: x + 0x46 reaches 0x80 (and
    // carries on only from bytes of 0xba and above, flagged by `| w`).
    (w.wrapping_sub(ONES * 0x30) | w.wrapping_add(ONES * 0x46) | w) & TOPS
}

/// `[record, …]` → `[kinto record, …]`.
fn list(s: &mut Scan<'_>, opts: &Opts<'_>, out: &mut Out<'_, '_>) -> Result<(usize, usize), Fail> {
    s.eat(b'[', "expected a JSON array of records")?;
    out.byte(b'[');
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
        let start = out.mark();
        if kept > 0 {
            out.byte(b',');
        }
        if record(s, opts, out)? {
            kept += 1;
        } else {
            out.reset(start);
            dropped += 1;
        }
    }
    s.i += 1;
    out.byte(b']');
    s.end()?;
    Ok((kept, dropped))
}

/// One record object into `out`; false when its id is excluded.
fn record(s: &mut Scan<'_>, opts: &Opts<'_>, out: &mut Out<'_, '_>) -> Result<bool, Fail> {
    s.eat(b'{', "expected a record object")?;
    out.byte(b'{');
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
        let key_end = s.i;
        s.eat(b':', "expected `:`")?;
        // Strings and numbers (nearly every value) without the general
        // walk; both start at the cursor after whitespace, as in `value`.
        s.peek();
        let value_start = s.i;
        match s.b.get(s.i) {
            Some(b'"') => {
                s.string()?;
            }
            Some(b'-' | b'0'..=b'9') => s.number()?,
            _ => {
                s.value()?;
            }
        }
        let value = &s.b[value_start..s.i];
        let wanted = match opts.fields {
            Some(f) => matches!(key, b"id" | b"modified") || f.iter().any(|n| n.as_bytes() == key),
            None => true,
        };
        if !wanted {
            continue;
        }
        if !first_out {
            out.byte(b',');
        }
        first_out = false;
        if key == b"modified" {
            let out = out.own(s.i);
            out.extend_from_slice(b"\"last_modified\":");
            if !timestamp::append_ms(value, out) {
                return Err(Fail {
                    why: "modified is not a timestamp",
                    at: value_start,
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
            let out = out.own(key_end);
            let _ = serde_json::to_writer(out, std::str::from_utf8(key).unwrap_or(""));
        } else {
            out.copy(key_start, key_end);
        }
        out.byte(b':');
        out.copy(value_start, s.i);
    }
    s.i += 1;
    out.byte(b'}');
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
