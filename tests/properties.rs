//! Properties (proptest): query parsing and the Next-Page round trip,
//! milliseconds ↔ Sync seconds, Hawk headers that parse back and verify,
//! the INI reader, and batch bodies. Each case count scales with
//! `PROPTEST_CASES` (default 256; the ones that go through the server run
//! an eighth of it), which is how `benches/properties.sh` runs them longer.

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fakes::Canned;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, FileFailurePersistence};
use sha2::{Digest, Sha256};
use std::path::Path;
use syncto::app::App;
use syncto::config::Config;
use syncto::kinto::query::{ListQuery, parse_list};
use syncto::message::Request;
use syncto::sync15::hawk;
use syncto::sync15::timestamp::{MAX_MS, ceil_tick, floor_tick, ms_to_seconds, seconds_to_ms};

/// The default case count (`PROPTEST_CASES` or 256) divided by `div`.
/// A failing case is saved (and replayed first from then on) in
/// tests/proptest-regressions/properties.txt.
fn cases(div: u32) -> Cases {
    let base = Cases::default();
    Cases {
        cases: (base.cases / div).max(8),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/properties.txt",
        ))),
        ..base
    }
}

// ---- Query parsing and Next-Page ----

/// The time filters of a list query.
const BOUNDS: [&str; 6] = [
    "_since",
    "gt_last_modified",
    "_before",
    "lt_last_modified",
    "min_last_modified",
    "max_last_modified",
];

/// A list query as a client would write it.
#[derive(Debug, Clone)]
struct Written {
    /// (filter, value in ms, written in quotes)
    bounds: Vec<(&'static str, u64, bool)>,
    sort: Option<(&'static str, &'static str)>,
    limit: Option<u64>,
    token: Option<String>,
    ids: Option<Vec<String>>,
    ids_name: &'static str,
    exclude: Vec<String>,
    fields: Option<Vec<String>>,
    unknown: Vec<(String, String)>,
}

/// Form-encode a value: percent-encode everything but `[A-Za-z0-9]`, and
/// write spaces either as `+` or as `%20`.
fn form(value: &str, plus: bool) -> String {
    let encoded = utf8_percent_encode(value, NON_ALPHANUMERIC).to_string();
    if plus {
        encoded.replace("%20", "+")
    } else {
        encoded
    }
}

impl Written {
    fn query(&self, plus: bool) -> String {
        let mut pairs: Vec<String> = Vec::new();
        for (name, ms, quoted) in &self.bounds {
            let v = if *quoted {
                format!("%22{ms}%22")
            } else {
                ms.to_string()
            };
            pairs.push(format!("{name}={v}"));
        }
        if let Some((written, _)) = self.sort {
            pairs.push(format!("_sort={}", form(written, plus)));
        }
        if let Some(limit) = self.limit {
            pairs.push(format!("_limit={limit}"));
        }
        if let Some(token) = &self.token {
            pairs.push(format!("_token={}", form(token, plus)));
        }
        if let Some(ids) = &self.ids {
            pairs.push(format!("{}={}", self.ids_name, form(&ids.join(","), plus)));
        }
        if !self.exclude.is_empty() {
            pairs.push(format!(
                "exclude_id={}",
                form(&self.exclude.join(","), plus)
            ));
        }
        if let Some(fields) = &self.fields {
            pairs.push(format!("_fields={}", form(&fields.join(","), plus)));
        }
        for (k, v) in &self.unknown {
            pairs.push(format!("{}={}", form(k, plus), form(v, plus)));
        }
        pairs.join("&")
    }

    /// Whether a record stamped `t` passes the Kinto time filters.
    fn keeps(&self, t: u64) -> bool {
        self.bounds.iter().all(|(name, x, _)| match *name {
            "_since" | "gt_last_modified" => t > *x,
            "_before" | "lt_last_modified" => t < *x,
            "min_last_modified" => t >= *x,
            _ => t <= *x,
        })
    }

    /// The parsed query, except the Sync time bounds (which [`Written::keeps`]
    /// checks by what they select).
    fn check(&self, q: &ListQuery) -> Result<(), TestCaseError> {
        let since = self
            .bounds
            .iter()
            .rev()
            .find(|(n, _, _)| matches!(*n, "_since" | "gt_last_modified"))
            .map(|(_, x, _)| *x);
        prop_assert_eq!(q.since, since);
        prop_assert_eq!(q.sort, self.sort.map(|(_, sync)| sync));
        prop_assert_eq!(q.limit, self.limit);
        prop_assert_eq!(&q.token, &self.token);
        prop_assert_eq!(&q.ids, &self.ids);
        prop_assert_eq!(&q.exclude, &self.exclude);
        prop_assert_eq!(&q.fields, &self.fields);
        Ok(())
    }
}

/// Record ids: non-empty, no comma, no surrounding spaces (a list trims).
fn an_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_{}~ .-]{0,10}[a-zA-Z0-9_{}~.-]"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn written() -> impl Strategy<Value = Written> {
    let sorts = prop::sample::select(vec![
        ("-last_modified", "newest"),
        ("newest", "newest"),
        ("-sortindex", "index"),
        ("index", "index"),
        ("last_modified", "oldest"),
        ("oldest", "oldest"),
    ]);
    let unknown_key = "[a-z][a-z_]{0,7}".prop_filter("not a known parameter", |k| {
        !BOUNDS.contains(&k.as_str())
            && ![
                "_fields",
                "_sort",
                "_limit",
                "_token",
                "in_ids",
                "in_id",
                "exclude_id",
            ]
            .contains(&k.as_str())
    });
    let bound = (
        prop::sample::select(BOUNDS.to_vec()),
        prop_oneof![
            0..=MAX_MS,
            1_000_000_000_000u64..2_000_000_000_000,
            0u64..100
        ],
        any::<bool>(),
    );
    (
        (
            prop::collection::vec(bound, 0..4),
            prop::option::of(sorts),
            prop::option::of(1u64..=1_000_000),
            prop::option::of(prop::collection::vec(an_id(), 1..4)),
        ),
        (
            prop::option::of("\\PC{1,40}"),
            prop::option::of(prop::collection::vec(an_id(), 1..5)),
            prop::sample::select(vec!["in_ids", "in_id"]),
            prop::collection::vec(an_id(), 0..4),
            prop::collection::vec((unknown_key, "\\PC{0,12}"), 0..3),
        ),
    )
        .prop_map(
            |((bounds, sort, limit, fields), (token, ids, ids_name, exclude, unknown))| Written {
                bounds,
                sort,
                limit,
                token,
                ids,
                ids_name,
                exclude,
                fields,
                unknown,
            },
        )
}

proptest! {
    #![proptest_config(cases(1))]

    #[test]
    fn list_queries_parse_to_what_was_written(w in written(), plus in any::<bool>()) {
        let query = w.query(plus);
        let parsed = parse_list(&query);
        prop_assert!(parsed.is_ok(), "{query}: {:?}", parsed.err());
        w.check(&parsed.unwrap())?;
    }

    /// Sync's `newer`/`older` (exclusive, whole 10 ms ticks) select exactly
    /// the records the Kinto filters select: checked on every tick near
    /// each bound, and at the ends.
    #[test]
    fn time_filters_select_exactly_the_same_records(w in written()) {
        let q = parse_list(&w.query(false)).unwrap();
        for bound in [q.newer, q.older].into_iter().flatten() {
            prop_assert_eq!(bound % 10, 0, "Sync bounds are whole ticks");
        }
        let mut ticks = vec![0, MAX_MS + 100];
        for (_, x, _) in &w.bounds {
            let base = x - x % 10;
            ticks.extend((0..6).map(|i| (base + i * 10).saturating_sub(20)));
        }
        for t in ticks {
            let sync = q.newer.is_none_or(|n| t > n) && q.older.is_none_or(|o| t < o);
            prop_assert_eq!(sync, w.keeps(t), "t = {}, newer {:?}, older {:?}", t, q.newer, q.older);
        }
    }

    /// Past year 9999 (the last HTTP date), a time filter is a 400/107
    /// that names it.
    #[test]
    fn timestamps_past_the_range_are_refused(
        name in prop::sample::select(BOUNDS.to_vec()),
        ms in MAX_MS + 1..=u64::MAX,
        quoted in any::<bool>(),
    ) {
        let v = if quoted { format!("%22{ms}%22") } else { ms.to_string() };
        let e = parse_list(&format!("{name}={v}")).err();
        prop_assert!(e.is_some(), "{}={} accepted", name, ms);
        let parts = e.unwrap().parts();
        prop_assert_eq!((parts.status, parts.errno), (400, Some(107)));
        let details = parts.details.unwrap_or_default();
        prop_assert_eq!(&details[0]["name"], name);
    }

    #[test]
    fn list_query_parsing_never_panics(query in "\\PC{0,80}") {
        // Ok or a 400/107 on the query string: nothing else.
        if let Err(e) = parse_list(&query) {
            let parts = e.parts();
            prop_assert_eq!((parts.status, parts.errno), (400, Some(107)));
        }
    }
}

/// Sync offset tokens: opaque, printable, at most 1024 bytes (longer
/// ones are not passed on).
fn an_offset() -> impl Strategy<Value = String> {
    "[!-~]{1,60}"
}

proptest! {
    #![proptest_config(cases(8))]

    /// The Next-Page URL is absolute, keeps the path and every parameter but
    /// `_token`, and carries the node's offset exactly: following it sends
    /// Sync that very offset with the same other parameters.
    #[test]
    fn next_page_round_trips(w in written(), offset in an_offset()) {
        let s = shared_server();
        let path = records("tabs");
        let query = w.query(false);
        // (A case that failed half-way may have left its answers.)
        s.fake.clear_sync_script();
        s.fake.script_sync([
            Canned::new(200, "[]").with("X-Weave-Next-Offset", &offset),
            Canned::new(200, "[]"),
        ]);
        let r = s.get(&format!("{path}?{query}"), &[BEARER, ("Host", "h.example:8000")]);
        prop_assert_eq!(r.status, 200, "{}", r.body);
        let first_upstream = s.fake.last_sync().url;
        let next = r.header("Next-Page").map(str::to_owned);
        prop_assert!(next.is_some(), "no Next-Page for {}", query);
        let next = next.unwrap();
        let prefix = format!("http://h.example:8000{path}?");
        prop_assert!(next.starts_with(&prefix), "{}", next);
        let next_query = &next[prefix.len()..];
        let expected = ListQuery { token: Some(offset.clone()), ..parse_list(&query).unwrap() };
        prop_assert_eq!(parse_list(next_query).unwrap(), expected);
        // Follow it: Sync gets the offset, and otherwise the same request.
        let r = s.get(&next["http://h.example:8000".len()..], &[BEARER]);
        prop_assert_eq!(r.status, 200, "{}", r.body);
        let second_upstream = s.fake.last_sync().url;
        prop_assert_eq!(without_offset(&second_upstream), without_offset(&first_upstream));
        prop_assert_eq!(upstream_offset(&second_upstream), Some(offset));
    }
}

/// One server for every case of a property (starting one per case would
/// dominate the run).
fn shared_server() -> &'static Syncto {
    use std::sync::OnceLock;
    static SERVER: OnceLock<Syncto> = OnceLock::new();
    SERVER.get_or_init(Syncto::start)
}

fn upstream_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn without_offset(url: &str) -> Vec<(String, String)> {
    let mut pairs = upstream_pairs(url);
    pairs.retain(|(k, _)| k != "offset");
    pairs
}

fn upstream_offset(url: &str) -> Option<String> {
    upstream_pairs(url)
        .into_iter()
        .find(|(k, _)| k == "offset")
        .map(|(_, v)| v)
}

// ---- Milliseconds ↔ Sync seconds ----

/// Sync timestamps: 10 ms ticks up to the year ~5000.
const MAX_TICKS: u64 = 10_000_000_000_000 / 10;

proptest! {
    #![proptest_config(cases(1))]

    #[test]
    fn ticks_round_trip_exactly(ticks in 0..MAX_TICKS) {
        let ms = ticks * 10;
        let text = ms_to_seconds(ms);
        prop_assert_eq!(seconds_to_ms(&text), Some(ms), "{}", text);
        // Two decimals, never more, never an exponent.
        let (int, frac) = text.split_once('.').unwrap();
        prop_assert!(!int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()));
        prop_assert!(frac.len() == 2 && frac.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn any_ms_maps_to_its_nearest_tick(ms in 0..MAX_TICKS * 10) {
        let back = seconds_to_ms(&ms_to_seconds(ms)).unwrap();
        prop_assert_eq!(back % 10, 0);
        prop_assert!(back.abs_diff(ms) <= 5, "{} -> {}", ms, back);
        // Half a tick goes up; less goes down.
        prop_assert_eq!(back, (ms + 5) / 10 * 10);
    }

    /// The ticks around a millisecond value bracket it, and the Sync text of
    /// either says exactly that tick.
    #[test]
    fn ticks_bracket_every_ms(ms in 0..MAX_TICKS * 10) {
        let (lo, hi) = (floor_tick(ms), ceil_tick(ms));
        prop_assert!(lo <= ms && ms <= hi);
        prop_assert_eq!((lo % 10, hi % 10), (0, 0));
        prop_assert_eq!(hi - lo, if ms % 10 == 0 { 0 } else { 10 });
        prop_assert_eq!(seconds_to_ms(&ms_to_seconds(lo)), Some(lo));
        prop_assert_eq!(seconds_to_ms(&ms_to_seconds(hi)), Some(hi));
    }

    #[test]
    fn the_mapping_keeps_order(a in 0..MAX_TICKS * 10, b in 0..MAX_TICKS * 10) {
        let map = |ms| seconds_to_ms(&ms_to_seconds(ms)).unwrap();
        if a <= b {
            prop_assert!(map(a) <= map(b));
        } else {
            prop_assert!(map(a) >= map(b));
        }
    }

    #[test]
    fn decimal_seconds_parse_exactly(int in 0u64..10_000_000_000, frac in "[0-9]{0,3}") {
        let text = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
        let padded: u64 = format!("{frac:0<3}").parse().unwrap();
        prop_assert_eq!(seconds_to_ms(&text), Some(int * 1000 + padded), "{}", text);
    }

    #[test]
    fn seconds_parsing_never_panics(text in "\\PC{0,30}|[0-9.eE+-]{0,30}") {
        if let Some(ms) = seconds_to_ms(&text) {
            // Whatever parses is digits and at most one dot.
            let t = text.trim();
            prop_assert!(t.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{:?} -> {}", text, ms);
            prop_assert!(t.matches('.').count() <= 1);
        }
    }
}

// ---- Hawk ----

/// Attributes of a `Hawk k="v", …` header (values hold no `"`).
fn hawk_attributes(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.strip_prefix("Hawk ")?;
    rest.split(", ")
        .map(|part| {
            let (k, v) = part.split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Signing {
    id: String,
    key: Vec<u8>,
    method: &'static str,
    resource: String,
    host: String,
    port: u16,
    ts: u64,
    nonce: String,
    body: Option<(String, Vec<u8>)>,
    ext: Option<String>,
}

fn signing() -> impl Strategy<Value = Signing> {
    // Token ids and Hawk attribute values: printable, no `"`, no `\`,
    // no ", " (the attribute separator).
    let attr = "[!#-\\[\\]-~]{1,40}";
    (
        (
            attr,
            prop::collection::vec(any::<u8>(), 0..64),
            prop::sample::select(vec!["GET", "PUT", "DELETE", "POST"]),
            "/[!-~]{0,60}",
            "[a-zA-Z0-9.-]{1,30}",
        ),
        (
            any::<u16>(),
            any::<u64>(),
            "[A-Za-z0-9+/=]{1,16}",
            prop::option::of((
                "[a-zA-Z/+.-]{1,20}(; ?charset=[a-z0-9-]{1,8})?",
                prop::collection::vec(any::<u8>(), 0..200),
            )),
            prop::option::of(attr),
        ),
    )
        .prop_map(
            |((id, key, method, resource, host), (port, ts, nonce, body, ext))| Signing {
                id,
                key,
                method,
                resource,
                host,
                port,
                ts,
                nonce,
                body,
                ext,
            },
        )
}

proptest! {
    #![proptest_config(cases(1))]

    /// The header carries every attribute unchanged, and its MAC is the
    /// HMAC-SHA256 of Hawk's normalized string, computed here independently.
    #[test]
    fn hawk_headers_parse_back_and_verify(s in signing()) {
        let hash = s.body.as_ref().map(|(ct, body)| hawk::payload_hash(ct, body));
        let header = hawk::header(&s.id, &s.key, &hawk::Signed {
            method: s.method,
            resource: &s.resource,
            host: &s.host,
            port: s.port,
            ts: s.ts,
            nonce: &s.nonce,
            hash: hash.as_deref(),
            ext: s.ext.as_deref(),
        });
        let attrs = hawk_attributes(&header);
        prop_assert!(attrs.is_some(), "{}", header);
        let attrs = attrs.unwrap();
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let names: Vec<&str> = attrs.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = vec!["id", "ts", "nonce"];
        if hash.is_some() { want.push("hash"); }
        if s.ext.is_some() { want.push("ext"); }
        want.push("mac");
        prop_assert_eq!(names, want);
        prop_assert_eq!(get("id"), Some(s.id.clone()));
        prop_assert_eq!(get("ts"), Some(s.ts.to_string()));
        prop_assert_eq!(get("nonce"), Some(s.nonce.clone()));
        prop_assert_eq!(get("ext"), s.ext.clone());
        // The payload hash, computed independently.
        if let Some((ct, body)) = &s.body {
            let bare = ct.split(';').next().unwrap().trim().to_ascii_lowercase();
            let mut d = Sha256::new();
            d.update(format!("hawk.1.payload\n{bare}\n").as_bytes());
            d.update(body);
            d.update(b"\n");
            prop_assert_eq!(get("hash"), Some(STANDARD.encode(d.finalize())));
        }
        let normalized = format!(
            "hawk.1.header\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            s.ts,
            s.nonce,
            s.method,
            s.resource,
            s.host.to_ascii_lowercase(),
            s.port,
            get("hash").unwrap_or_default(),
            s.ext.clone().unwrap_or_default(),
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&s.key).unwrap();
        mac.update(normalized.as_bytes());
        prop_assert_eq!(get("mac"), Some(STANDARD.encode(mac.finalize().into_bytes())));
    }
}

// ---- The INI reader ----

/// A setting, how it is written, and what it must become.
#[derive(Debug, Clone)]
enum Setting {
    Number(&'static str, u64),
    Write(String, bool, &'static str),
}

fn setting() -> impl Strategy<Value = Setting> {
    let number = prop_oneof![
        (1u64..=86_400).prop_map(|n| Setting::Number("upstream_timeout_seconds", n)),
        (1u64..=1000).prop_map(|n| Setting::Number("batch_max_requests", n)),
        (1u64..=10_000_000).prop_map(|n| Setting::Number("cache_max_entries", n)),
        (1u64..=1024).prop_map(|n| Setting::Number("workers", n)),
        (1u64..=86_400).prop_map(|n| Setting::Number("cache_credentials_ttl_seconds", n)),
    ];
    let switch = ("[a-z0-9._-]{1,32}", any::<bool>(), any::<bool>(), 0usize..4).prop_map(
        |(coll, put, on, spelling)| {
            let word = match (on, spelling) {
                (true, 0) => "true",
                (true, 1) => "yes",
                (true, 2) => "On",
                (true, _) => "1",
                (false, 0) => "false",
                (false, 1) => "no",
                (false, 2) => "OFF",
                (false, _) => "0",
            };
            let kind = if put { "put" } else { "delete" };
            Setting::Write(format!("record_{coll}_{kind}_enabled"), on, word)
        },
    );
    prop_oneof![number, switch]
}

/// One line of a generated file.
#[derive(Debug, Clone)]
enum Line {
    Setting(Setting, usize, &'static str, String),
    Comment(String),
    Blank,
    Other(String, String),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => (
            setting(),
            0usize..3,
            prop::sample::select(vec!["=", ":", " = ", " : ", "\t=\t"]),
            "[ \t]{0,3}",
        )
            .prop_map(|(s, prefix, sep, trail)| Line::Setting(s, prefix, sep, trail)),
        1 => "[#;][^\r\n]{0,30}".prop_map(Line::Comment),
        1 => Just(Line::Blank),
        1 => (
            "[a-z:_]{1,12}".prop_filter("another section", |s| s != "app:main" && s != "server:main"),
            "[a-z_]{1,8} = [^\r\n]{0,20}",
        )
            .prop_map(|(section, item)| Line::Other(section, item)),
    ]
}

fn ini_text(lines: &[Line], crlf: bool, bom: bool) -> (String, Vec<Setting>) {
    let mut text = String::new();
    if bom {
        text.push('\u{feff}');
    }
    text.push_str("[app:main]\n");
    let mut last: Vec<Setting> = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    for l in lines {
        match l {
            Line::Setting(s, prefix, sep, trail) => {
                let (name, value) = match s {
                    Setting::Number(n, v) => ((*n).to_owned(), v.to_string()),
                    Setting::Write(n, _, word) => (n.clone(), (*word).to_owned()),
                };
                // The same setting twice with different values is a start-up
                // error by design: keep the first value of each.
                if seen.get(&name).is_some_and(|v| *v != value) {
                    continue;
                }
                seen.insert(name.clone(), value.clone());
                let prefix = ["", "syncto.", "cliquet."][*prefix];
                // (Not indented: an indented line continues the previous value.)
                text.push_str(&format!("{prefix}{name}{sep}{value}{trail}\n"));
                last.push(s.clone());
            }
            Line::Comment(c) => {
                text.push_str(c);
                text.push('\n');
            }
            Line::Blank => text.push('\n'),
            Line::Other(section, item) => {
                // Another section's content is ignored, then app:main resumes.
                text.push_str(&format!("[{section}]\n{item}\n[app:main]\n"));
            }
        }
    }
    if crlf {
        text = text.replace('\n', "\r\n");
    }
    (text, last)
}

const NO_ENV: &[(&str, &str)] = &[];

proptest! {
    #![proptest_config(cases(1))]

    /// Written in any of the accepted ways, every setting comes back.
    #[test]
    fn ini_settings_come_back(lines in prop::collection::vec(line(), 0..20), crlf in any::<bool>(), bom in any::<bool>()) {
        let (text, settings) = ini_text(&lines, crlf, bom);
        let loaded = Config::from_ini(&text, Path::new("gen.ini"), NO_ENV);
        prop_assert!(loaded.is_ok(), "{}\n{:?}", text, loaded.err().map(|e| e.to_string()));
        let c = loaded.unwrap();
        for s in &settings {
            match s {
                Setting::Number(name, v) => {
                    let got = match *name {
                        "upstream_timeout_seconds" => c.upstream_timeout.as_secs(),
                        "batch_max_requests" => c.batch_max_requests as u64,
                        "cache_max_entries" => c.cache_max_entries as u64,
                        "workers" => c.workers as u64,
                        _ => c.cache_credentials_ttl.as_secs(),
                    };
                    prop_assert_eq!(got, *v, "{}", name);
                }
                Setting::Write(name, on, _) => {
                    let coll = name
                        .strip_prefix("record_")
                        .and_then(|r| r.strip_suffix("_put_enabled").or_else(|| r.strip_suffix("_delete_enabled")))
                        .unwrap();
                    let got = if name.ends_with("_put_enabled") {
                        c.put_enabled(coll)
                    } else {
                        c.delete_enabled(coll)
                    };
                    prop_assert_eq!(got, *on, "{}", name);
                }
            }
        }
    }

    /// Any text: a configuration or a start-up error that names the file,
    /// never a panic.
    #[test]
    fn the_ini_reader_never_panics(text in "(\\PC|[\r\n\t\u{feff}\\[\\]=:#;]){0,200}") {
        if let Err(e) = Config::from_ini(&text, Path::new("fuzz.ini"), NO_ENV) {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz.ini"), "{}", message);
        }
    }
}

// ---- Batch bodies ----

fn app() -> &'static App {
    use std::sync::OnceLock;
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let config = Config {
            // Nothing here may reach an upstream: a refused port if it did.
            token_server_url: "http://127.0.0.1:9/".into(),
            ..Config::default()
        };
        syncto::build(config).expect("app builds")
    })
}

fn post_batch(body: &[u8]) -> syncto::message::Response {
    let headers = [("content-type", "application/json")];
    syncto::kinto::handle(
        app(),
        &Request {
            method: "POST",
            path: "/v1/batch",
            query: "",
            headers: &headers,
            body,
            peer: None,
        },
    )
}

/// Sub-requests that need no upstream, with the status each must get.
fn sub_request() -> impl Strategy<Value = (String, String, u16)> {
    prop::sample::select(vec![
        ("GET", "/", 200),
        ("get", "/v1/", 200),
        ("HEAD", "/", 200),
        ("GET", "/buckets/syncto/collections/tabs/records", 401),
        ("GET", "/buckets/syncto/collections/tabs/records/a", 401),
        ("GET", "/nope", 404),
        ("GET", "/v1/buckets", 404),
        ("TRACE", "/", 405),
    ])
    .prop_map(|(m, p, s)| (m.to_owned(), p.to_owned(), s))
}

proptest! {
    #![proptest_config(cases(1))]

    /// A valid batch answers 200 with one sub-response per request, in
    /// order, each with its own path and status.
    #[test]
    fn batches_answer_each_sub_request_in_order(subs in prop::collection::vec(sub_request(), 1..=25)) {
        let requests: Vec<_> = subs
            .iter()
            .map(|(m, p, _)| serde_json::json!({"method": m, "path": p}))
            .collect();
        let body = serde_json::json!({ "requests": requests }).to_string();
        let r = post_batch(body.as_bytes());
        prop_assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let answers = doc["responses"].as_array().unwrap();
        prop_assert_eq!(answers.len(), subs.len());
        for ((_, path, status), answer) in subs.iter().zip(answers) {
            let full = if path.starts_with("/v1") { path.clone() } else { format!("/v1{path}") };
            prop_assert_eq!(&answer["path"], &serde_json::json!(full));
            prop_assert_eq!(&answer["status"], &serde_json::json!(status));
        }
    }

    /// Any bytes: a batch answer or a Kinto 4xx document, never a panic.
    #[test]
    fn batch_bodies_never_panic(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| serde_json::json!({"requests": [v]}).to_string().into_bytes()),
        json_value().prop_map(|v| serde_json::json!({"defaults": v, "requests": [{"path": "/"}]}).to_string().into_bytes()),
    ]) {
        let r = post_batch(&body);
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        match r.status {
            200 => prop_assert!(doc["responses"].is_array()),
            400 => {
                prop_assert!(matches!(r.errno, Some(106 | 107)), "{:?}", r.errno);
                prop_assert_eq!(&doc["code"], &serde_json::json!(400));
                prop_assert!(doc["message"].is_string());
            }
            other => prop_assert!(false, "status {}", other),
        }
    }
}

/// Arbitrary JSON, a few levels deep, with the batch's own field names
/// mixed in so that the validation paths are reached.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            "\\PC{0,12}",
            prop::sample::select(vec![
                "GET",
                "PUT",
                "/",
                "/batch",
                "/v1/batch",
                "/buckets/a/collections/b/records"
            ])
            .prop_map(str::to_owned),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            "\\PC{0,6}",
            prop::sample::select(vec![
                "method", "path", "headers", "body", "requests", "defaults"
            ])
            .prop_map(str::to_owned),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
