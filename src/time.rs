//! Calendar time, both ways, in one place: reading the `eos` (end of service) setting, a date
//! or a date and time turned into Unix seconds once at start-up (so that each request only
//! compares two integers), and writing the log's UTC timestamps. The two directions are
//! Howard Hinnant's `days_from_civil` and `civil_from_days`, each the other's inverse, and a
//! test holds them to that. HTTP dates are `httpdate`'s (see `sync15::timestamp`).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Parses `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM[:SS]` (a space may replace the `T`),
/// optionally followed by `Z` or an offset `±HH:MM`. Without an offset the time is UTC.
/// Years 1970 to 9999. Returns seconds since the Unix epoch.
pub fn parse_utc(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let [year, month, day] = fields::<3>(date, '-', &[4, 2, 2])?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > month_days[month as usize - 1]
    {
        return None;
    }
    let mut seconds = days_since_epoch(year, month, day) * 86_400;
    if let Some(time) = time {
        let (clock, offset) = split_offset(time)?;
        let hms = match clock.len() {
            5 => fields::<2>(clock, ':', &[2, 2]).map(|[h, m]| [h, m, 0]),
            8 => fields::<3>(clock, ':', &[2, 2, 2]),
            _ => None,
        };
        let [h, m, sec] = hms?;
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        seconds = (seconds + h * 3600 + m * 60 + sec).checked_add_signed(-offset)?;
    }
    Some(seconds)
}

/// `N` numbers separated by `sep`, each exactly `widths[i]` ASCII digits.
fn fields<const N: usize>(s: &str, sep: char, widths: &[usize; N]) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut parts = s.split(sep);
    for (slot, width) in out.iter_mut().zip(widths) {
        let part = parts.next()?;
        if part.len() != *width || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `HH:MM[:SS]` and the offset east of UTC in seconds (`Z` and no suffix are 0).
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    match time.rfind(['+', '-']) {
        Some(i) => {
            let sign = if time[i..].starts_with('-') { -1 } else { 1 };
            let [h, m] = fields::<2>(&time[i + 1..], ':', &[2, 2])?;
            if h > 23 || m > 59 {
                return None;
            }
            Some((&time[..i], sign * (h * 3600 + m * 60) as i64))
        }
        None => Some((time, 0)),
    }
}

/// Days from 1970-01-01 to a valid date of the proleptic Gregorian calendar (year ≥ 1970).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    // Count from 1 March so that the leap day ends the year (H. Hinnant's `days_from_civil`).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y % 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of the proleptic Gregorian calendar for a number of days since
/// 1970-01-01, the inverse of [`days_since_epoch`] (restricted to dates after the epoch).
/// The year is counted from March, so that February 29th is the last day of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097; // 400-year cycles
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // month, March = 0, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

/// Appends `now` as `2026-11-26T06:45:39.123Z` (UTC, milliseconds). A clock before 1970
/// prints as the epoch.
pub(crate) fn push_utc_millis(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let secs_of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3_600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        since_epoch.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        // 2100 is not a leap year.
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn the_two_directions_are_inverses() {
        // Every day from 1970 to the end of 9999.
        for days in 0..=2_932_896 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_since_epoch(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn timestamps_agree_with_httpdate() {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        // Every 997,331 s (about 11.5 days, so every day of the month and hour come up) from
        // 1970 to the end of 9999, the last year HTTP dates can express.
        let mut secs = 0u64;
        while secs <= 253_402_300_799 {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let mut ours = String::new();
            push_utc_millis(&mut ours, t);
            // "1970-01-01T00:00:00.000Z" → "01 Jan 1970 00:00:00" as in "Thu, 01 Jan 1970 …".
            let month: usize = ours[5..7].parse().unwrap();
            let expected = format!(
                "{} {} {} {}",
                &ours[8..10],
                MONTHS[month - 1],
                &ours[0..4],
                &ours[11..19]
            );
            let http = httpdate::fmt_http_date(t);
            assert_eq!(&http[5..25], expected, "at {secs} s");
            assert_eq!(&ours[19..], ".000Z");
            secs += 997_331;
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_utc("1970-01-01"), Some(0));
        assert_eq!(parse_utc("2000-03-01"), Some(951_868_800));
        assert_eq!(parse_utc("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_utc("2038-01-19T03:14:08Z"), Some(2_147_483_648));
        assert_eq!(parse_utc("2038-01-19 03:14:08"), Some(2_147_483_648));
        assert_eq!(parse_utc("2038-01-19T03:14"), Some(2_147_483_640));
        // 05:14:08 two hours east of Greenwich is 03:14:08 UTC.
        assert_eq!(parse_utc("2038-01-19T05:14:08+02:00"), Some(2_147_483_648));
        assert_eq!(parse_utc("2038-01-19T01:14:08-02:00"), Some(2_147_483_648));
        assert_eq!(parse_utc(" 9999-12-31 "), Some(253_402_214_400));
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut previous = parse_utc("1970-01-01").unwrap();
        for year in 1970..2110u64 {
            for month in 1..=12u64 {
                for day in 1..=31u64 {
                    let Some(t) = parse_utc(&format!("{year:04}-{month:02}-{day:02}")) else {
                        continue;
                    };
                    if (year, month, day) != (1970, 1, 1) {
                        assert_eq!(t, previous + 86_400, "{year}-{month}-{day}");
                    }
                    previous = t;
                }
            }
        }
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            "",
            "tomorrow",
            "2030-13-01",
            "2030-02-29",
            "2100-02-29",
            "2030-04-31",
            "2030-00-10",
            "2030-1-1",
            "30-01-01",
            "1969-12-31",
            "2030-01-01T24:00",
            "2030-01-01T12:60",
            "2030-01-01T12",
            "2030-01-01T12:00:00.5",
            "2030-01-01T12:00+2",
            "2030-01-01T12:00+24:00",
            "2030-01-01Tnoon",
            "2030/01/01",
            "01/02/2030",
            "+2030-01-01",
            "1970-01-01T00:00+00:01",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad:?}");
        }
    }
}
