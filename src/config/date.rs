//! The `eos` (end of service) date: a calendar date, or a date and time, turned into Unix
//! seconds once at start-up so that each request only compares two integers.

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

#[cfg(test)]
mod tests {
    use super::*;

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
