//! Sync timestamps (decimal seconds with two decimals) ↔ Kinto timestamps
//! (integer milliseconds).
//!
//! Sync servers keep time in 10 ms steps and print it as `1444385059.19`.
//! Kinto clients compare integer milliseconds. Going through `f64` would be
//! fragile (`int(x * 1000)` is what the original did), so both directions
//! work on the decimal text.

use std::time::{Duration, UNIX_EPOCH};

/// The last millisecond an HTTP date can express (9999-12-31T23:59:59.999Z).
/// Every timestamp Syncto accepts, from a client or from an upstream, is at
/// most this, so `Last-Modified` can always be written.
pub const MAX_MS: u64 = 253_402_300_799_999;

/// Parse a client's millisecond timestamp (`"1444385059190"`): ASCII digits
/// only, at most [`MAX_MS`]. Signs, decimals, exponents, garbage and values
/// past year 9999 give `None`.
pub(crate) fn parse_ms(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|ms| *ms <= MAX_MS)
}

/// Parse a Sync timestamp (`"1444385059.19"`, `"0.00"`, `"12"`) into
/// integer milliseconds, exactly. More than three decimals round half up.
/// Negative numbers, exponents, garbage and values past [`MAX_MS`] give
/// `None`.
pub fn seconds_to_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms: u64 = int.parse::<u64>().ok()?.checked_mul(1000)?;
    let digits = frac.as_bytes();
    let mut scale = 100;
    for &d in digits.iter().take(3) {
        ms = ms.checked_add(u64::from(d - b'0') * scale)?;
        scale /= 10;
    }
    if digits.len() > 3 && digits[3] >= b'5' {
        ms = ms.checked_add(1)?;
    }
    (ms <= MAX_MS).then_some(ms)
}

/// Append the milliseconds of a Sync timestamp (its JSON text, as bytes) to
/// `out` as decimal digits, exactly what `seconds_to_ms` and formatting the
/// number give; false (and nothing appended) where `seconds_to_ms` gives
/// `None` (or the bytes are not UTF-8).
///
/// Lists carry one timestamp per record, nearly always in Sync's own form
/// (`1444385059.19`: no leading zero, two decimals): those become their
/// digits and a `0` without a parse or a division.
pub fn append_ms(b: &[u8], out: &mut Vec<u8>) -> bool {
    // At most 11 digits of seconds stay below MAX_MS.
    if let [first, .., dot, c, d] = *b {
        let seconds = &b[..b.len() - 3];
        if b.len() <= 14
            && first != b'0'
            && dot == b'.'
            && c.is_ascii_digit()
            && d.is_ascii_digit()
            && seconds.iter().all(u8::is_ascii_digit)
        {
            // One copy: the digits of the seconds, then "cd0".
            let mut ms = [0u8; 14];
            ms[..seconds.len()].copy_from_slice(seconds);
            ms[seconds.len()..b.len()].copy_from_slice(&[c, d, b'0']);
            out.extend_from_slice(&ms[..b.len()]);
            return true;
        }
    }
    match std::str::from_utf8(b).ok().and_then(seconds_to_ms) {
        Some(ms) => {
            out.extend_from_slice(ms.to_string().as_bytes());
            true
        }
        None => false,
    }
}

/// Format integer milliseconds as Sync seconds with exactly two decimals,
/// rounding to the nearest 10 ms (`1444385059189` → `1444385059.19`).
pub fn ms_to_seconds(ms: u64) -> String {
    let centis = ms / 10 + u64::from(ms % 10 >= 5);
    format!("{}.{:02}", centis / 100, centis % 100)
}

/// Sync's clock step, in milliseconds: every Sync timestamp is a multiple.
pub(crate) const TICK_MS: u64 = 10;

/// The Sync timestamp at or below `ms` (`1444385059189` → `1444385059180`).
pub fn floor_tick(ms: u64) -> u64 {
    ms - ms % TICK_MS
}

/// The Sync timestamp at or above `ms` (`1444385059181` → `1444385059190`),
/// saturating at the largest tick.
pub fn ceil_tick(ms: u64) -> u64 {
    match ms % TICK_MS {
        0 => ms,
        r => ms.checked_add(TICK_MS - r).unwrap_or(floor_tick(ms)),
    }
}

/// HTTP date (`Last-Modified`) of a millisecond timestamp, seconds truncated.
/// Never panics: a value past [`MAX_MS`] (which the parsers above never
/// give) is written as the last HTTP date.
pub(crate) fn http_date(ms: u64) -> String {
    let secs = ms.min(MAX_MS) / 1000;
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Conversions the original Syncto made (ms → Sync seconds rounds to the nearest 10 ms).
    #[test]
    fn ms_to_seconds_vectors() {
        assert_eq!(ms_to_seconds(14377478425700), "14377478425.70");
        assert_eq!(ms_to_seconds(1444385059189), "1444385059.19");
        assert_eq!(ms_to_seconds(1444385059185), "1444385059.19");
        assert_eq!(ms_to_seconds(1444385059184), "1444385059.18");
        assert_eq!(ms_to_seconds(0), "0.00");
        assert_eq!(ms_to_seconds(5), "0.01");
    }

    #[test]
    fn seconds_to_ms_vectors() {
        assert_eq!(seconds_to_ms("1444385059.19"), Some(1444385059190));
        assert_eq!(seconds_to_ms("1441868927.07"), Some(1441868927070));
        assert_eq!(seconds_to_ms("14377478425.69"), Some(14377478425690));
        assert_eq!(seconds_to_ms("0.00"), Some(0));
        assert_eq!(seconds_to_ms("12"), Some(12000));
        assert_eq!(seconds_to_ms("1.5"), Some(1500));
        assert_eq!(seconds_to_ms("1.2345"), Some(1235));
        assert_eq!(seconds_to_ms("-1.00"), None);
        // Rust's integer parser takes a sign; Sync's timestamps never have one.
        assert_eq!(seconds_to_ms("+1.00"), None);
        assert_eq!(seconds_to_ms("1.+5"), None);
        assert_eq!(seconds_to_ms("1e9"), None);
        assert_eq!(seconds_to_ms(""), None);
        assert_eq!(seconds_to_ms(".5"), None);
        assert_eq!(seconds_to_ms("99999999999999999999.00"), None);
    }

    #[test]
    fn append_ms_writes_what_seconds_to_ms_gives() {
        for text in [
            "1444385059.19",
            "14377478425.69",
            "99999999999.99",
            "253402300799.99",
            "253402300800.00",
            "0.00",
            "0.07",
            "007.50",
            "1.00",
            "12",
            "1.5",
            "1.2345",
            " 1.50",
            "1.50 ",
            "-1.00",
            "1e9",
            "",
            ".50",
            "1.",
            "1a.00",
            "\"1.00\"",
            "99999999999999999999.00",
        ] {
            let mut out = b"x".to_vec();
            let ok = append_ms(text.as_bytes(), &mut out);
            let want = seconds_to_ms(text).map(|ms| format!("x{ms}"));
            assert_eq!(
                ok.then(|| String::from_utf8(out.clone()).unwrap()),
                want,
                "{text:?}"
            );
            if !ok {
                assert_eq!(out, b"x", "{text:?}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn append_ms_agrees_with_seconds_to_ms(text in "[0-9]{0,13}(\\.[0-9]{0,4})?|[0-9. e+-]{0,8}") {
            let mut out = Vec::new();
            let ok = append_ms(text.as_bytes(), &mut out);
            let want = seconds_to_ms(&text).map(|ms| ms.to_string().into_bytes());
            proptest::prop_assert_eq!(ok.then_some(out), want);
        }
    }

    #[test]
    fn ticks() {
        assert_eq!(floor_tick(1444385059189), 1444385059180);
        assert_eq!(floor_tick(1444385059180), 1444385059180);
        assert_eq!(ceil_tick(1444385059181), 1444385059190);
        assert_eq!(ceil_tick(1444385059190), 1444385059190);
        assert_eq!((floor_tick(0), ceil_tick(0), ceil_tick(1)), (0, 0, 10));
        assert_eq!(ceil_tick(u64::MAX), floor_tick(u64::MAX));
    }

    #[test]
    fn http_date_vector() {
        assert_eq!(
            http_date(seconds_to_ms("1444385059.19").unwrap()),
            "Fri, 09 Oct 2015 10:04:19 GMT"
        );
    }

    #[test]
    fn the_range_ends_with_year_9999() {
        assert_eq!(http_date(MAX_MS), "Fri, 31 Dec 9999 23:59:59 GMT");
        // Past it: clamped, never the panic of httpdate.
        assert_eq!(http_date(MAX_MS + 1), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(seconds_to_ms("253402300799.99"), Some(MAX_MS - 9));
        assert_eq!(seconds_to_ms("253402300800.00"), None);
        assert_eq!(seconds_to_ms("18446744073709551.61"), None);
        assert_eq!(parse_ms("253402300799999"), Some(MAX_MS));
        assert_eq!(parse_ms("253402300800000"), None);
        assert_eq!(parse_ms("18446744073709551616"), None);
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "0x10"] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
        assert_eq!(parse_ms("0"), Some(0));
    }

    #[test]
    fn round_trip_two_decimals() {
        for s in ["1700000000.01", "1700000000.10", "1699999999.99", "0.07"] {
            assert_eq!(ms_to_seconds(seconds_to_ms(s).unwrap()), s);
        }
    }
}
