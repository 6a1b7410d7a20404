//! Kinto query parameters and precondition headers → Sync ones
//! (syncto-original.md §6 with the CONTRACT §5 changes).

use super::error::Error;
use crate::sync::timestamp::ms_to_seconds;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::borrow::Cow;
use std::fmt::Write;

/// What stays unescaped in a query value we build.
pub const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Iterate `key=value` pairs of a raw query string, form-decoded.
pub fn pairs(query: &str) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), Error>> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Ok((form_decode(k)?, form_decode(v)?))
    })
}

fn form_decode(s: &str) -> Result<Cow<'_, str>, Error> {
    let bad = || {
        Error::param(
            "querystring",
            "querystring",
            "Invalid percent-encoding or non UTF-8 query string",
        )
    };
    if s.contains('%') && !super::well_formed_escapes(s) {
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
    /// `_since` / `gt_last_modified`, ms.
    pub since: Option<u64>,
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
}

const SORTS: &str = "_sort should be one of ('-last_modified', 'newest', '-sortindex', 'index', 'last_modified', 'oldest')";

/// Parse the list query. Unknown parameters (`_expected`, `_fields`…) are
/// ignored, as Kinto ignores unknown `_` parameters.
pub fn parse_list(query: &str) -> Result<ListQuery, Error> {
    let mut q = ListQuery::default();
    for pair in pairs(query) {
        let (k, v) = pair?;
        match &*k {
            "_since" | "gt_last_modified" => {
                let n = v.trim_matches('"');
                q.since = Some(n.parse::<u64>().map_err(|_| {
                    let message = format!("{k} should be a number.");
                    Error::param("querystring", k.into_owned(), message)
                })?);
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
            "in_ids" | "in_id" => q.ids = Some(id_list(&v)),
            "exclude_id" => q.exclude = id_list(&v),
            _ => {}
        }
    }
    Ok(q)
}

fn id_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ListQuery {
    /// The Sync query string (`full=1&ids=…&newer=…&limit=…&offset=…&sort=…`).
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
        if let Some(since) = self.since {
            let _ = write!(s, "&newer={}", ms_to_seconds(since));
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

/// Preconditions → Sync headers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// Headers to send upstream.
    pub headers: Vec<(&'static str, String)>,
    /// `If-None-Match: *`: create only.
    pub create_only: bool,
}

/// `If-Match: "<ms>"` → `X-If-Unmodified-Since`; `If-None-Match: "<ms>"` →
/// `X-If-Modified-Since`; `If-None-Match: *` or `"*"` → create-only
/// (`X-If-Unmodified-Since: 0`).
pub fn preconditions(
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<Preconditions, Error> {
    let mut p = Preconditions::default();
    if let Some(v) = if_match {
        let ms = quoted_ms(v).ok_or_else(|| {
            Error::param("headers", "If-Match", "headers: Invalid value for If-Match")
        })?;
        p.headers.push(("X-If-Unmodified-Since", ms_to_seconds(ms)));
    }
    if let Some(v) = if_none_match {
        let v = v.trim();
        if v == "*" || v == "\"*\"" {
            p.headers.clear();
            p.headers.push(("X-If-Unmodified-Since", "0".to_owned()));
            p.create_only = true;
        } else {
            let ms = quoted_ms(v).ok_or_else(|| {
                Error::param(
                    "headers",
                    "If-None-Match",
                    "headers: Invalid value for If-None-Match",
                )
            })?;
            if !p.headers.is_empty() {
                return Err(Error::param(
                    "headers",
                    "If-None-Match",
                    "headers: If-Match and If-None-Match with a timestamp can't be combined",
                ));
            }
            p.headers.push(("X-If-Modified-Since", ms_to_seconds(ms)));
        }
    }
    Ok(p)
}

/// `"123"` → 123.
fn quoted_ms(v: &str) -> Option<u64> {
    let inner = v.trim().strip_prefix('"')?.strip_suffix('"')?;
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    inner.parse().ok()
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
        assert!(parse_list("_since=%").is_err());
    }

    #[test]
    fn precondition_headers() {
        let p = preconditions(None, Some("\"14377478425700\"")).unwrap();
        assert_eq!(
            p.headers,
            vec![("X-If-Modified-Since", "14377478425.70".to_owned())]
        );
        let p = preconditions(Some("\"14377478425700\""), None).unwrap();
        assert_eq!(
            p.headers,
            vec![("X-If-Unmodified-Since", "14377478425.70".to_owned())]
        );
        for star in ["*", "\"*\""] {
            let p = preconditions(Some("\"1\""), Some(star)).unwrap();
            assert!(p.create_only);
            assert_eq!(p.headers, vec![("X-If-Unmodified-Since", "0".to_owned())]);
        }
        assert_eq!(
            message(preconditions(Some("42"), None).unwrap_err()),
            "headers: Invalid value for If-Match"
        );
        assert_eq!(
            message(preconditions(Some("*"), None).unwrap_err()),
            "headers: Invalid value for If-Match"
        );
        assert_eq!(
            message(preconditions(None, Some("abc")).unwrap_err()),
            "headers: Invalid value for If-None-Match"
        );
        assert_eq!(
            message(preconditions(None, Some("\"\"")).unwrap_err()),
            "headers: Invalid value for If-None-Match"
        );
    }
}
