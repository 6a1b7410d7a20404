//! Kinto query parameters and precondition headers → Sync ones: `_since`,
//! `gt_last_modified` and `min_last_modified` → `newer`; `_before`, `lt_last_modified` and
//! `max_last_modified` → `older`; `_limit` → `limit` (a positive integer, else 400);
//! `_token` → `offset`; `_sort` → `sort`; `in_ids`/`in_id` → `ids`; `exclude_id` and
//! `_fields` are applied to the answer; other parameters are ignored. `If-Match` and
//! `If-None-Match` (`*` or `"*"` too) become the Sync precondition headers.

use super::error::Error;
use crate::sync15::timestamp::{TICK_MS, ceil_tick, floor_tick, ms_to_seconds, parse_ms};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::borrow::Cow;
use std::fmt::Write;

/// What stays unescaped in a query value we build.
pub(crate) const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Iterate `key=value` pairs of a raw query string, form-decoded.
pub(crate) fn pairs(
    query: &str,
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), Error>> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Ok((form_decode(k)?, form_decode(v)?))
    })
}

fn form_decode(s: &str) -> Result<Cow<'_, str>, Error> {
    let bad = || Error::InvalidParameter {
        location: "querystring",
        name: None,
        message: "Invalid percent-encoding or non UTF-8 query string".into(),
    };
    if s.contains('%') && !super::route::well_formed_escapes(s) {
        return Err(bad());
    }
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map_err(|_| bad())?;
        return Ok(Cow::Owned(decoded.into_owned()));
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| bad())
}

/// A parsed records-list query.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `_since` / `gt_last_modified`, ms, as the client gave it (the
    /// empty-answer ETag rule needs the exact value).
    pub since: Option<u64>,
    /// Sync `newer` (exclusive lower bound), ms, always a whole tick.
    pub newer: Option<u64>,
    /// Sync `older` (exclusive upper bound), ms, always a whole tick.
    pub older: Option<u64>,
    /// Sync `sort`.
    pub sort: Option<&'static str>,
    /// `_limit`.
    pub limit: Option<u64>,
    /// `_token` → `offset`.
    pub token: Option<String>,
    /// `in_ids` / `in_id` → `ids`.
    pub ids: Option<Vec<String>>,
    /// `exclude_id`: filtered out by this server.
    pub exclude: Vec<String>,
    /// `_fields`: the only fields kept (besides `id` and `last_modified`).
    pub fields: Option<Vec<String>>,
}

const SORTS: &str = "_sort should be one of ('-last_modified', 'newest', '-sortindex', 'index', 'last_modified', 'oldest')";

/// A millisecond timestamp parameter (`123` or `"123"`).
pub(crate) fn timestamp_param(name: &str, v: &str) -> Result<u64, Error> {
    parse_ms(v.trim_matches('"')).ok_or_else(|| {
        let message = format!("{name} should be a number.");
        Error::param("querystring", name.to_owned(), message)
    })
}

/// Parse the list query. Unknown parameters (`_expected`…) are ignored, as
/// Kinto ignores unknown `_` parameters.
///
/// Sync stamps records in whole 10 ms ticks and its `newer`/`older` are
/// exclusive, while Kinto compares exact milliseconds. So each bound maps to
/// the tick that selects exactly the same records: `last_modified > X` is
/// `newer = floor(X)`, `< X` is `older = ceil(X)`, `>= X` is
/// `newer = ceil(X) - 10` and `<= X` is `older = floor(X) + 10` (ticks of 10 ms).
/// Rounding to the nearest tick would be wrong both ways.
pub fn parse_list(query: &str) -> Result<ListQuery, Error> {
    let mut q = ListQuery::default();
    let lower = |q: &mut ListQuery, newer: Option<u64>| {
        if let Some(n) = newer {
            q.newer = Some(q.newer.map_or(n, |o| o.max(n)));
        }
    };
    let upper = |q: &mut ListQuery, older: u64| {
        q.older = Some(q.older.map_or(older, |o| o.min(older)));
    };
    for pair in pairs(query) {
        let (k, v) = pair?;
        match &*k {
            "_since" | "gt_last_modified" => {
                let x = timestamp_param(&k, &v)?;
                q.since = Some(x);
                lower(&mut q, Some(floor_tick(x)));
            }
            "min_last_modified" => {
                let x = timestamp_param(&k, &v)?;
                lower(&mut q, ceil_tick(x).checked_sub(TICK_MS));
            }
            "_before" | "lt_last_modified" => {
                let x = timestamp_param(&k, &v)?;
                upper(&mut q, ceil_tick(x));
            }
            "max_last_modified" => {
                let x = timestamp_param(&k, &v)?;
                upper(&mut q, floor_tick(x).saturating_add(TICK_MS));
            }
            "_sort" => {
                q.sort = Some(match &*v {
                    "-last_modified" | "newest" => "newest",
                    "-sortindex" | "index" => "index",
                    "last_modified" | "oldest" => "oldest",
                    _ => return Err(Error::param("querystring", "_sort", SORTS)),
                });
            }
            "_limit" => {
                q.limit = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                        .ok_or_else(|| {
                            Error::param(
                                "querystring",
                                "_limit",
                                "_limit should be a positive integer.",
                            )
                        })?,
                );
            }
            "_token" => {
                if v.is_empty() || v.len() > 1024 {
                    return Err(Error::param(
                        "querystring",
                        "_token",
                        "_token is not a valid pagination token.",
                    ));
                }
                q.token = Some(v.into_owned());
            }
            "in_ids" | "in_id" => q.ids = Some(sync_ids(&k, &v)?),
            "exclude_id" => q.exclude = id_list(&v),
            "_fields" => q.fields = Some(id_list(&v)),
            _ => {}
        }
    }
    Ok(q)
}

/// `_fields` of a one-record query.
pub(crate) fn parse_fields(query: &str) -> Result<Option<Vec<String>>, Error> {
    let mut fields = None;
    for pair in pairs(query) {
        let (k, v) = pair?;
        if k == "_fields" {
            fields = Some(id_list(&v));
        }
    }
    Ok(fields)
}

/// Sync's BSO id rule: 1–64 printable ASCII characters.
pub(crate) fn is_sync_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Most ids one Sync list request takes (`ids=`).
const MAX_IDS: usize = 100;

/// The ids of `in_ids`, as Sync's `ids` takes them: 1 to 100, each a Sync id. Sync refuses
/// the others with a bare 400, and reads an empty `ids=` as no filter at all (every record),
/// where Kinto's empty `in_ids` matches none: each is a 400 naming the parameter instead.
fn sync_ids(name: &str, v: &str) -> Result<Vec<String>, Error> {
    let ids = id_list(v);
    let bad = |why: &str| Error::param("querystring", name.to_owned(), why.to_owned());
    if ids.is_empty() {
        return Err(bad("give at least one record id"));
    }
    if ids.len() > MAX_IDS {
        return Err(bad(
            "at most 100 record ids (a Sync node takes no more at once)",
        ));
    }
    if !ids.iter().all(|id| is_sync_id(id)) {
        return Err(bad(
            "each record id must be 1 to 64 printable ASCII characters",
        ));
    }
    Ok(ids)
}

fn id_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ListQuery {
    /// The Sync query string (`full=1&ids=…&newer=…&older=…&limit=…&offset=…&sort=…`).
    pub fn upstream(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push_str("full=1");
        if let Some(ids) = &self.ids {
            s.push_str("&ids=");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{}", utf8_percent_encode(id, QUERY_VALUE));
            }
        }
        if let Some(newer) = self.newer {
            let _ = write!(s, "&newer={}", ms_to_seconds(newer));
        }
        if let Some(older) = self.older {
            let _ = write!(s, "&older={}", ms_to_seconds(older));
        }
        if let Some(limit) = self.limit {
            let _ = write!(s, "&limit={limit}");
        }
        if let Some(token) = &self.token {
            let _ = write!(s, "&offset={}", utf8_percent_encode(token, QUERY_VALUE));
        }
        // Kinto's default order is newest first; Sync needs an explicit
        // sort for stable pagination.
        let _ = write!(s, "&sort={}", self.sort.unwrap_or("newest"));
        s
    }
}

/// What a request's `If-Match` / `If-None-Match` ask for, exactly as Kinto
/// means them (integer milliseconds compared for equality).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// No precondition.
    #[default]
    None,
    /// `If-Match: "X"`: the current `last_modified` must be exactly X.
    Match(u64),
    /// `If-None-Match: "X"`: the current `last_modified` must not be X.
    NoneMatch(u64),
    /// `If-None-Match: *` (or `"*"`): the resource must not exist.
    Absent,
}

/// Read `If-Match` / `If-None-Match`. A star wins over `If-Match` (create
/// only); two timestamps can't be combined.
pub(crate) fn preconditions(
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<Precondition, Error> {
    let mut p = Precondition::None;
    if let Some(v) = if_match {
        let ms = quoted_ms(v)
            .ok_or_else(|| Error::param("header", "If-Match", "Invalid value for If-Match"))?;
        p = Precondition::Match(ms);
    }
    if let Some(v) = if_none_match {
        let v = v.trim();
        if v == "*" || v == "\"*\"" {
            return Ok(Precondition::Absent);
        }
        let ms = quoted_ms(v).ok_or_else(|| {
            Error::param("header", "If-None-Match", "Invalid value for If-None-Match")
        })?;
        if p != Precondition::None {
            return Err(Error::param(
                "header",
                "If-None-Match",
                "If-Match and If-None-Match with a timestamp can't be combined",
            ));
        }
        p = Precondition::NoneMatch(ms);
    }
    Ok(p)
}

/// `"123"` → 123.
fn quoted_ms(v: &str) -> Option<u64> {
    parse_ms(v.trim().strip_prefix('"')?.strip_suffix('"')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: Error) -> String {
        match e {
            Error::InvalidParameter { message, .. } => message.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_query_translation() {
        let q = parse_list("_since=14377478425700&_sort=newest").unwrap();
        assert_eq!(q.upstream(), "full=1&newer=14377478425.70&sort=newest");
        let q = parse_list("_limit=2&_token=12345&_sort=index").unwrap();
        assert_eq!(q.upstream(), "full=1&limit=2&offset=12345&sort=index");
        let q = parse_list("_sort=oldest&gt_last_modified=%2214377478425700%22").unwrap();
        assert_eq!(q.upstream(), "full=1&newer=14377478425.70&sort=oldest");
        let q = parse_list("in_ids=a,b,%20c,,&_expected=5&foo=bar").unwrap();
        assert_eq!(q.upstream(), "full=1&ids=a,b,c&sort=newest");
        let q = parse_list("in_id=abc,&exclude_id=x,y&_sort=-last_modified").unwrap();
        assert_eq!(q.ids, Some(vec!["abc".to_owned()]));
        assert_eq!(q.exclude, vec!["x", "y"]);
        let q = parse_list("_token=a%2Bb%3D").unwrap();
        assert_eq!(q.upstream(), "full=1&offset=a%2Bb%3D&sort=newest");
    }

    #[test]
    fn bad_parameters() {
        assert_eq!(
            message(parse_list("_since=abc").unwrap_err()),
            "_since should be a number."
        );
        assert_eq!(
            message(parse_list("_since=1.5").unwrap_err()),
            "_since should be a number."
        );
        assert!(
            message(parse_list("_sort=unknown").unwrap_err()).starts_with("_sort should be one of")
        );
        for bad in ["_limit=0", "_limit=-1", "_limit=abc", "_limit="] {
            assert_eq!(
                message(parse_list(bad).unwrap_err()),
                "_limit should be a positive integer."
            );
        }
        assert!(parse_list("_since=%ff").is_err());
        // Past year 9999 a timestamp has no HTTP date: refused, not a panic.
        for q in ["_since=253402300800000", "_before=253402300800000"] {
            assert!(message(parse_list(q).unwrap_err()).ends_with("should be a number."));
        }
        assert!(parse_list("_since=253402300799999").is_ok());
        assert!(preconditions(Some("\"253402300800000\""), None).is_err());
        assert!(parse_list("_since=%").is_err());
        // A pagination token is at most 1 KiB.
        assert!(parse_list(&format!("_token={}", "1".repeat(1024))).is_ok());
        assert_eq!(
            message(parse_list(&format!("_token={}", "1".repeat(1025))).unwrap_err()),
            "_token is not a valid pagination token."
        );
        // `ids=` as Sync takes it, or a 400 naming the parameter.
        let hundred: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
        assert!(parse_list(&format!("in_ids={}", hundred.join(","))).is_ok());
        assert!(parse_list(&format!("in_id={}", "i".repeat(64))).is_ok());
        for (q, why) in [
            ("in_ids=", "give at least one record id"),
            ("in_ids=,%20,", "give at least one record id"),
            (
                &*format!("in_ids={},x", hundred.join(",")),
                "at most 100 record ids (a Sync node takes no more at once)",
            ),
            (
                &*format!("in_id=a,{}", "i".repeat(65)),
                "each record id must be 1 to 64 printable ASCII characters",
            ),
            (
                "in_ids=a%01b",
                "each record id must be 1 to 64 printable ASCII characters",
            ),
            (
                "in_ids=%E2%82%AC",
                "each record id must be 1 to 64 printable ASCII characters",
            ),
        ] {
            assert_eq!(message(parse_list(q).unwrap_err()), why, "{q}");
        }
    }

    #[test]
    fn time_bounds_select_exactly_what_kinto_means() {
        // A record at ...190 ms: `_since` one below it must still include it
        // (newer = ...180 ms), `_since` at it must exclude it.
        let up = |q: &str| parse_list(q).unwrap().upstream();
        assert_eq!(
            up("_since=1444385059189"),
            "full=1&newer=1444385059.18&sort=newest"
        );
        assert_eq!(
            up("_since=1444385059190"),
            "full=1&newer=1444385059.19&sort=newest"
        );
        assert_eq!(
            up("_since=1444385059191"),
            "full=1&newer=1444385059.19&sort=newest"
        );
        assert_eq!(
            up("_before=1444385059191"),
            "full=1&older=1444385059.20&sort=newest"
        );
        assert_eq!(
            up("lt_last_modified=1444385059190"),
            "full=1&older=1444385059.19&sort=newest"
        );
        assert_eq!(
            up("_before=1444385059189"),
            "full=1&older=1444385059.19&sort=newest"
        );
        // >= and <=: inclusive of a record exactly at X.
        assert_eq!(
            up("min_last_modified=1444385059190"),
            "full=1&newer=1444385059.18&sort=newest"
        );
        assert_eq!(
            up("min_last_modified=1444385059191"),
            "full=1&newer=1444385059.19&sort=newest"
        );
        assert_eq!(
            up("max_last_modified=1444385059190"),
            "full=1&older=1444385059.20&sort=newest"
        );
        assert_eq!(
            up("max_last_modified=1444385059199"),
            "full=1&older=1444385059.20&sort=newest"
        );
        // min_last_modified=0 is every record: no bound at all.
        assert_eq!(up("min_last_modified=0"), "full=1&sort=newest");
        // Several bounds: the tightest of each side.
        assert_eq!(
            up("_since=1000&min_last_modified=2000&_before=9000&max_last_modified=5000"),
            "full=1&newer=1.99&older=5.01&sort=newest"
        );
        let q = parse_list("_since=5&_fields=payload,sortindex").unwrap();
        assert_eq!((q.since, q.newer), (Some(5), Some(0)));
        assert_eq!(
            q.fields,
            Some(vec!["payload".to_owned(), "sortindex".to_owned()])
        );
        for bad in [
            "_before=-1",
            "min_last_modified=x",
            "max_last_modified=1.5",
            "lt_last_modified=",
        ] {
            assert!(
                message(parse_list(bad).unwrap_err()).ends_with("should be a number."),
                "{bad}"
            );
        }
    }

    #[test]
    fn precondition_headers() {
        assert_eq!(
            preconditions(None, Some("\"14377478425700\"")).unwrap(),
            Precondition::NoneMatch(14377478425700)
        );
        assert_eq!(
            preconditions(Some("\"14377478425701\""), None).unwrap(),
            Precondition::Match(14377478425701)
        );
        assert_eq!(preconditions(None, None).unwrap(), Precondition::None);
        for star in ["*", "\"*\""] {
            assert_eq!(
                preconditions(Some("\"1\""), Some(star)).unwrap(),
                Precondition::Absent
            );
        }
        assert_eq!(
            message(preconditions(Some("42"), None).unwrap_err()),
            "Invalid value for If-Match"
        );
        assert_eq!(
            message(preconditions(Some("*"), None).unwrap_err()),
            "Invalid value for If-Match"
        );
        assert_eq!(
            message(preconditions(None, Some("abc")).unwrap_err()),
            "Invalid value for If-None-Match"
        );
        assert_eq!(
            message(preconditions(None, Some("\"\"")).unwrap_err()),
            "Invalid value for If-None-Match"
        );
        assert!(preconditions(Some("\"1\""), Some("\"2\"")).is_err());
    }
}
