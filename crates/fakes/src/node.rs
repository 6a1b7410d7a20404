//! The fake Sync 1.5 storage node: the Hawk check, the scripted answers, the write gate of
//! syncstorage-rs, and one function per endpoint.

use super::{Bso, Canned, Collection, PostLimits, Seen, State, fmt_cs, lock, now_cs, parse_cs};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

fn attrs(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.strip_prefix("Hawk ")?;
    let mut m = HashMap::new();
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=')?;
        m.insert(
            k.to_owned(),
            v.strip_prefix('"')?.strip_suffix('"')?.to_owned(),
        );
    }
    Some(m)
}

/// Check the Hawk header as a storage node does; returns the uid.
fn verify_hawk(st: &State, seen: &Seen) -> Result<u64, &'static str> {
    let a = attrs(seen.header("authorization").ok_or("no authorization")?).ok_or("not hawk")?;
    let id = a.get("id").ok_or("no id")?;
    if st.revoked.contains(id) {
        return Err("revoked");
    }
    let (key, uid) = st.tokens.get(id).ok_or("unknown token")?;
    let host_header = seen.header("host").ok_or("no host")?;
    let (host, port) = host_header.rsplit_once(':').ok_or("no port in host")?;
    let mut normalized = format!(
        "hawk.1.header\n{}\n{}\n{}\n{}\n{}\n{}\n",
        a.get("ts").ok_or("no ts")?,
        a.get("nonce").ok_or("no nonce")?,
        seen.method,
        seen.url,
        host.to_ascii_lowercase(),
        port
    );
    normalized.push_str(a.get("hash").map(String::as_str).unwrap_or(""));
    normalized.push('\n');
    normalized.push_str(a.get("ext").map(String::as_str).unwrap_or(""));
    normalized.push('\n');
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(normalized.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    if a.get("mac") != Some(&expected) {
        return Err("bad mac");
    }
    if let Some(hash) = a.get("hash") {
        // ss-rs doesn't check payload hashes; this fake does, to prove ours.
        let ct = seen
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let mut d = <Sha256 as sha2::Digest>::new();
        sha2::Digest::update(
            &mut d,
            format!("hawk.1.payload\n{ct}\n{}\n", seen.body).as_bytes(),
        );
        if STANDARD.encode(sha2::Digest::finalize(d)) != *hash {
            return Err("bad payload hash");
        }
    }
    Ok(*uid)
}

fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
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

fn bso_json(id: &str, b: &Bso) -> String {
    let mut s = format!(
        r#"{{"id":{},"modified":{},"payload":{}"#,
        serde_json::to_string(id).unwrap(),
        fmt_cs(b.modified),
        serde_json::to_string(&b.payload).unwrap()
    );
    if let Some(si) = b.sortindex {
        s.push_str(&format!(r#","sortindex":{si}"#));
    }
    s.push('}');
    s
}

/// The node's preconditions, parsed from `X-If-Modified-Since` and
/// `X-If-Unmodified-Since` (centiseconds).
#[derive(Clone, Copy, Default)]
struct Pre {
    modified_since: Option<u64>,
    unmodified_since: Option<u64>,
}

impl Pre {
    /// Both headers, or one that is not a timestamp: 400, as syncstorage-rs.
    fn parse(seen: &Seen) -> Result<Pre, Canned> {
        let ims = seen.header("x-if-modified-since").map(parse_cs);
        let iums = seen.header("x-if-unmodified-since").map(parse_cs);
        if matches!(ims, Some(None))
            || matches!(iums, Some(None))
            || (ims.is_some() && iums.is_some())
        {
            return Err(Canned::new(400, "0"));
        }
        Ok(Pre {
            modified_since: ims.flatten(),
            unmodified_since: iums.flatten(),
        })
    }

    /// Whether a resource last modified at `modified` (centiseconds) may be served: 304
    /// when not modified since `X-If-Modified-Since`, 412 when modified since
    /// `X-If-Unmodified-Since`, each with its `X-Last-Modified`.
    fn check(self, modified: u64) -> Result<(), Canned> {
        let status = if self.modified_since.is_some_and(|t| modified <= t) {
            304
        } else if self.unmodified_since.is_some_and(|t| modified > t) {
            412
        } else {
            return Ok(());
        };
        Err(Canned::new(status, "").with("X-Last-Modified", &fmt_cs(modified)))
    }

    /// A write looks at `X-If-Unmodified-Since` only.
    fn for_write(self) -> Pre {
        Pre {
            modified_since: None,
            ..self
        }
    }
}

pub(super) fn answer(state: &Mutex<State>, seen: &Seen, stop: &AtomicBool) -> Canned {
    let stamp = |c: Canned| c.with("X-Weave-Timestamp", &fmt_cs(now_cs()));
    let hang = {
        let mut st = lock(state);
        st.sync_seen.push(seen.clone());
        st.sync_hang
    };
    if let Some(d) = hang {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let held = |st: &State| {
        st.sync_hold
            .as_ref()
            .is_some_and(|f| seen.url.contains(f.as_str()))
    };
    if held(&lock(state)) {
        lock(state).sync_held += 1;
        while held(&lock(state)) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        lock(state).sync_held -= 1;
    }
    let mut st = lock(state);
    let uid = match authenticate(&st, seen) {
        Ok(uid) => uid,
        Err(_) => {
            st.hawk_failures += 1;
            return stamp(Canned::new(401, "0"));
        }
    };
    if let Some(canned) = scripted(&mut st, uid, seen) {
        return stamp(canned);
    }
    let path = seen.url.split('?').next().unwrap_or("").to_owned();
    let Some(rest) = path.strip_prefix(&format!("/1.5/{uid}/")) else {
        return stamp(Canned::new(400, "0"));
    };
    if !routed(rest) {
        return stamp(Canned::new(404, "0"));
    }
    let (st, tick) = write_tick(state, st, uid, &seen.method, rest);
    let mut st = st;
    let answer = tick.and_then(|tick| {
        let pre = Pre::parse(seen)?;
        let segments: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let limits = st.post_limits;
        let user = st.users.entry(uid).or_default();
        match (seen.method.as_str(), segments.as_slice()) {
            ("GET", ["info", "collections"]) => Ok(info_collections(user)),
            ("GET", ["info", "configuration"]) => Ok(info_configuration(limits)),
            ("GET", ["storage", coll]) => list(user, coll, &query_of(&seen.url), pre),
            ("GET", ["storage", coll, id]) => get_record(user, coll, id, pre),
            ("PUT", ["storage", coll, id]) => {
                put_record(user, coll, id, &seen.body, pre, tick, limits)
            }
            ("POST", ["storage", coll]) => post_records(user, coll, &seen.body, pre, tick, limits),
            ("DELETE", ["storage", coll]) => {
                delete_records(user, coll, &query_of(&seen.url), pre, tick)
            }
            ("DELETE", ["storage", coll, id]) => delete_record(user, coll, id, pre, tick),
            _ => Ok(Canned::new(404, "0")),
        }
    });
    stamp(answer.unwrap_or_else(|refused| refused))
}

/// Whether the node has a route for the path after `/1.5/<uid>/`: a collection name is
/// `[a-zA-Z0-9._-]{1,32}` and a BSO id `[ -~]{1,64}` (percent-decoded); anything else is a
/// 404 `0` before any check or lock, as syncstorage-rs's router answers.
fn routed(rest: &str) -> bool {
    let mut parts = rest.split('/');
    if parts.next() != Some("storage") {
        return true;
    }
    let decoded = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let collection = parts.next().map(decoded).unwrap_or_default();
    let id = parts.next().map(decoded);
    (1..=32).contains(&collection.len())
        && collection
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        && id.is_none_or(|id| is_bso_id(&id))
}

/// syncstorage-rs's BSO id rule: `[ -~]{1,64}`.
fn is_bso_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len()) && id.iter().all(|b| (b' '..=b'~').contains(b))
}

/// The user whose token signed the request, after checking its Hawk header (or, with
/// [`super::Fake::open`], the user in the path).
fn authenticate(st: &State, seen: &Seen) -> Result<u64, &'static str> {
    let open_uid = || {
        seen.url
            .strip_prefix("/1.5/")?
            .split('/')
            .next()?
            .parse()
            .ok()
    };
    match (st.open, open_uid()) {
        (true, Some(uid)) => Ok(uid),
        _ => verify_hawk(st, seen),
    }
}

/// The next scripted answer, if it is for this request's method; an answer that
/// `touches` a record changes it as another device would, at the same moment.
fn scripted(st: &mut State, uid: u64, seen: &Seen) -> Option<Canned> {
    let first = st.sync_script.first()?;
    if first.method.is_some_and(|m| m != seen.method) {
        return None;
    }
    let canned = st.sync_script.remove(0);
    if let Some((coll, id)) = &canned.touch {
        let c = st
            .users
            .entry(uid)
            .or_default()
            .entry(coll.clone())
            .or_default();
        let t = now_cs().max(c.modified + 1);
        if let Some(b) = c.bsos.get_mut(id) {
            b.payload.push_str(" (changed elsewhere)");
            b.modified = t;
            c.modified = t;
        }
    }
    Some(canned)
}

/// The tick of a request: now; a write takes it when it starts and holds the (user,
/// collection) lock while it works, as syncstorage-rs does, and is refused (503,
/// `Retry-After: 10`, nothing written) when another write of the user to the collection
/// is in progress or the collection's last write was in the same tick.
fn write_tick<'a>(
    state: &'a Mutex<State>,
    mut st: MutexGuard<'a, State>,
    uid: u64,
    method: &str,
    rest: &str,
) -> (MutexGuard<'a, State>, Result<u64, Canned>) {
    let tick = now_cs();
    let coll = match method {
        "PUT" | "DELETE" | "POST" => rest
            .strip_prefix("storage/")
            .map(|r| r.split('/').next().unwrap_or("").to_owned()),
        _ => None,
    };
    let Some(coll) = coll else {
        return (st, Ok(tick));
    };
    let last = st
        .users
        .get(&uid)
        .and_then(|u| u.get(&coll))
        .map_or(0, |c| c.modified);
    if st.lenient_writes {
        // As if every write came a tick later than the last one.
        return (st, Ok(tick.max(last + 1)));
    }
    let key = (uid, coll);
    if st.writing.contains(&key) || tick <= last {
        st.conflicts += 1;
        return (st, Err(Canned::conflict()));
    }
    st.writing.insert(key.clone());
    let work = st.write_work;
    drop(st);
    std::thread::sleep(work);
    let mut st = lock(state);
    st.writing.remove(&key);
    (st, Ok(tick))
}

/// `GET info/collections`: each collection's timestamp.
fn info_collections(user: &BTreeMap<String, Collection>) -> Canned {
    let body = user
        .iter()
        .map(|(k, c)| {
            format!(
                "{}:{}",
                serde_json::to_string(k).unwrap(),
                fmt_cs(c.modified)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let newest = user.values().map(|c| c.modified).max().unwrap_or(0);
    Canned::new(200, &format!("{{{body}}}"))
        .with("X-Last-Modified", &fmt_cs(newest))
        .with("X-Weave-Records", &user.len().to_string())
}

/// `GET storage/<coll>`: `newer`, `older`, `ids` (at most 100), `sort`, `offset`, `limit`,
/// `full`; `X-Weave-Next-Offset` when a page is not the last.
fn list(
    user: &BTreeMap<String, Collection>,
    coll: &str,
    q: &HashMap<String, String>,
    pre: Pre,
) -> Result<Canned, Canned> {
    let bad = || Canned::new(400, "0");
    let empty = Collection::default();
    let c = user.get(coll).unwrap_or(&empty);
    pre.check(c.modified)?;
    let time = |name: &str| match q.get(name).map(|n| parse_cs(n)) {
        Some(None) => Err(bad()),
        Some(Some(n)) => Ok(Some(n)),
        None => Ok(None),
    };
    let (newer, older) = (time("newer")?, time("older")?);
    // As syncstorage-rs: split, trimmed, empty ones dropped; none left is no filter at all
    // (every record); more than 100, or one that is not a BSO id, is a 400.
    let ids: Option<Vec<String>> = q
        .get("ids")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|ids| !ids.is_empty());
    if ids
        .as_ref()
        .is_some_and(|i| i.len() > 100 || !i.iter().all(|id| is_bso_id(id.as_bytes())))
    {
        return Err(bad());
    }
    let mut items: Vec<(&String, &Bso)> = c
        .bsos
        .iter()
        .filter(|(_, b)| newer.is_none_or(|n| b.modified > n))
        .filter(|(_, b)| older.is_none_or(|o| b.modified < o))
        .filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id)))
        .collect();
    match q.get("sort").map(String::as_str) {
        Some("oldest") => items.sort_by(|a, b| a.1.modified.cmp(&b.1.modified).then(a.0.cmp(b.0))),
        Some("index") => items.sort_by(|a, b| b.1.sortindex.cmp(&a.1.sortindex).then(b.0.cmp(a.0))),
        _ => items.sort_by(|a, b| b.1.modified.cmp(&a.1.modified).then(b.0.cmp(a.0))),
    }
    let number = |name: &str| match q.get(name).map(|o| o.parse::<usize>()) {
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(_)) => Err(bad()),
        None => Ok(None),
    };
    let offset = number("offset")?.unwrap_or(0);
    let limit = number("limit")?;
    let total = items.len();
    let page: Vec<_> = items
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let body = if q.contains_key("full") {
        page.iter()
            .map(|(id, b)| bso_json(id, b))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        page.iter()
            .map(|(id, _)| serde_json::to_string(id).unwrap())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut canned = Canned::new(200, &format!("[{body}]"))
        .with("X-Last-Modified", &fmt_cs(c.modified))
        .with("X-Weave-Records", &page.len().to_string());
    if offset + page.len() < total {
        canned = canned.with("X-Weave-Next-Offset", &(offset + page.len()).to_string());
    }
    Ok(canned)
}

/// `GET storage/<coll>/<id>`.
fn get_record(
    user: &BTreeMap<String, Collection>,
    coll: &str,
    id: &str,
    pre: Pre,
) -> Result<Canned, Canned> {
    let b = user.get(coll).and_then(|c| c.bsos.get(id));
    // The precondition comes first, against 0 for a record that does not exist: any
    // `X-If-Modified-Since` on a missing record is a 304 at `0.00`, as syncstorage-rs answers.
    pre.check(b.map_or(0, |b| b.modified))?;
    let b = b.ok_or_else(|| Canned::new(404, "0"))?;
    Ok(Canned::new(200, &bso_json(id, b)).with("X-Last-Modified", &fmt_cs(b.modified)))
}

/// `PUT storage/<coll>/<id>`: `id` (a BSO id, not necessarily the path's), a string
/// `payload`, an integer `sortindex` within ±999,999,999 and an integer `ttl` from 0 to
/// 999,999,999, each also `null`; `modified` and `collection` are ignored; any other field or
/// value, or a payload over `max_record_payload_bytes`, is a 400 `8`, as syncstorage-rs
/// answers. Answers the new timestamp. (`ttl` is checked, not applied: nothing here
/// expires.)
fn put_record(
    user: &mut BTreeMap<String, Collection>,
    coll: &str,
    id: &str,
    body: &str,
    pre: Pre,
    tick: u64,
    limits: PostLimits,
) -> Result<Canned, Canned> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(body)
    else {
        return Err(Canned::new(400, "8"));
    };
    let valid = |k: &str, v: &serde_json::Value| match k {
        "id" | "payload" | "sortindex" | "ttl" if v.is_null() => true,
        "id" => v.as_str().is_some_and(|id| is_bso_id(id.as_bytes())),
        "payload" => v.is_string(),
        "sortindex" => v
            .as_i64()
            .is_some_and(|n| (-999_999_999..=999_999_999).contains(&n)),
        "ttl" => v.as_u64().is_some_and(|n| n <= 999_999_999),
        "modified" | "collection" => true,
        _ => false,
    };
    if !fields.iter().all(|(k, v)| valid(k, v)) {
        return Err(Canned::new(400, "8"));
    }
    if fields
        .get("payload")
        .and_then(|p| p.as_str())
        .is_some_and(|p| p.len() > limits.record_bytes)
    {
        return Err(Canned::new(400, "8"));
    }
    let c = user.entry(coll.to_owned()).or_default();
    let existing = c.bsos.get(id);
    pre.for_write()
        .check(existing.map(|b| b.modified).unwrap_or(0))?;
    let mut b = existing.cloned().unwrap_or(Bso {
        payload: String::new(),
        sortindex: None,
        modified: tick,
    });
    if let Some(p) = fields.get("payload").and_then(|p| p.as_str()) {
        b.payload = p.to_owned();
    }
    if let Some(s) = fields.get("sortindex").and_then(|s| s.as_i64()) {
        b.sortindex = Some(s);
    }
    b.modified = tick;
    c.bsos.insert(id.to_owned(), b);
    c.modified = tick;
    Ok(Canned::new(200, &fmt_cs(tick)).with("X-Last-Modified", &fmt_cs(tick)))
}

/// `DELETE storage/<coll>/<id>`: answers `{"modified": …}` and the collection's previous
/// `X-Last-Modified`.
fn delete_record(
    user: &mut BTreeMap<String, Collection>,
    coll: &str,
    id: &str,
    pre: Pre,
    tick: u64,
) -> Result<Canned, Canned> {
    let c = user.get_mut(coll).ok_or_else(|| Canned::new(404, "0"))?;
    let b = c.bsos.get(id).ok_or_else(|| Canned::new(404, "0"))?;
    pre.for_write().check(b.modified)?;
    let previous = c.modified;
    c.bsos.remove(id);
    c.modified = tick;
    Ok(
        Canned::new(200, &format!(r#"{{"modified":{}}}"#, fmt_cs(tick)))
            .with("X-Last-Modified", &fmt_cs(previous)),
    )
}

/// `GET info/configuration`: the limits of a POST, as syncstorage-rs names them.
fn info_configuration(limits: PostLimits) -> Canned {
    let body = serde_json::json!({
        "max_post_bytes": limits.bytes,
        "max_post_records": limits.records,
        "max_record_payload_bytes": limits.record_bytes,
        "max_request_bytes": limits.request_bytes,
        "max_total_bytes": 262_144_000,
        "max_total_records": 10_000,
        "max_quota_limit": 0,
    });
    Canned::new(200, &body.to_string())
}

/// `POST storage/<coll>`: a JSON list of BSOs, all written with the same timestamp, as
/// syncstorage-rs: not a list of objects each with a string `id`, a repeated id, or a
/// body over `max_request_bytes` → 400 (nothing written); `X-If-Unmodified-Since`
/// against the collection; per record `failed` reasons (`retry bso` past
/// `max_post_records`, `retry bytes` past the payload limits, counted cumulatively,
/// `unknown field`, `invalid json`, `invalid bso`) and the others in `success`. The
/// collection's timestamp moves even when every record failed.
fn post_records(
    user: &mut BTreeMap<String, Collection>,
    coll: &str,
    body: &str,
    pre: Pre,
    tick: u64,
    limits: PostLimits,
) -> Result<Canned, Canned> {
    if body.len() > limits.request_bytes {
        return Err(Canned::new(400, "0"));
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(body)
    else {
        return Err(Canned::new(400, "8"));
    };
    let mut seen = std::collections::HashSet::new();
    let mut bsos = Vec::with_capacity(items.len());
    for item in &items {
        let Some(fields) = item.as_object() else {
            return Err(Canned::new(400, "8"));
        };
        let Some(id) = fields.get("id").and_then(|v| v.as_str()) else {
            return Err(Canned::new(400, "8"));
        };
        if !seen.insert(id) {
            return Err(Canned::new(400, "8"));
        }
        bsos.push((id, fields));
    }
    let c = user.entry(coll.to_owned()).or_default();
    pre.for_write().check(c.modified)?;
    let mut success = Vec::new();
    let mut failed = serde_json::Map::new();
    let mut bytes = 0;
    for (i, (id, fields)) in bsos.into_iter().enumerate() {
        let mut fail = |why: String| {
            failed.insert(id.to_owned(), serde_json::Value::String(why));
        };
        if i >= limits.records {
            fail("retry bso".into());
            continue;
        }
        if let Some(k) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "id" | "payload" | "sortindex" | "ttl"))
        {
            fail(format!("unknown field {k}"));
            continue;
        }
        let payload = match fields.get("payload") {
            None => None,
            Some(serde_json::Value::String(p)) => Some(p.as_str()),
            Some(_) => {
                fail("invalid json".into());
                continue;
            }
        };
        let sortindex = match fields.get("sortindex") {
            None => None,
            Some(v) => match v.as_i64().filter(|n| n.abs() <= 999_999_999) {
                Some(n) => Some(n),
                None => {
                    fail("invalid bso: sortindex".into());
                    continue;
                }
            },
        };
        if !is_bso_id(id.as_bytes()) {
            fail("invalid bso: id".into());
            continue;
        }
        let size = payload.map_or(0, str::len);
        bytes += size;
        if size > limits.record_bytes || bytes > limits.bytes {
            fail("retry bytes".into());
            continue;
        }
        let mut b = c.bsos.get(id).cloned().unwrap_or(Bso {
            payload: String::new(),
            sortindex: None,
            modified: tick,
        });
        if let Some(p) = payload {
            b.payload = p.to_owned();
        }
        if let Some(n) = sortindex {
            b.sortindex = Some(n);
        }
        // As syncstorage-rs: `modified` moves only when payload or sortindex is given.
        if payload.is_some() || sortindex.is_some() || !c.bsos.contains_key(id) {
            b.modified = tick;
        }
        c.bsos.insert(id.to_owned(), b);
        success.push(serde_json::Value::String(id.to_owned()));
    }
    c.modified = tick;
    let body = format!(
        r#"{{"failed":{},"modified":{},"success":{}}}"#,
        serde_json::Value::Object(failed),
        fmt_cs(tick),
        serde_json::Value::Array(success)
    );
    Ok(Canned::new(200, &body).with("X-Last-Modified", &fmt_cs(tick)))
}

/// `DELETE storage/<coll>?ids=…` (at most 100 ids, each trimmed, missing ones ignored) or
/// the whole collection: `X-If-Unmodified-Since` against the collection; answers the bare
/// new timestamp, which the collection takes even when nothing was deleted (deleting the
/// whole collection removes it: its timestamp reads 0 afterwards).
fn delete_records(
    user: &mut BTreeMap<String, Collection>,
    coll: &str,
    q: &HashMap<String, String>,
    pre: Pre,
    tick: u64,
) -> Result<Canned, Canned> {
    let Some(ids) = q.get("ids") else {
        let modified = user.get(coll).map_or(0, |c| c.modified);
        pre.for_write().check(modified)?;
        user.remove(coll);
        return Ok(Canned::new(200, &fmt_cs(tick)).with("X-Last-Modified", &fmt_cs(modified)));
    };
    let ids: Vec<&str> = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.len() > 100 {
        return Err(Canned::new(400, "0"));
    }
    let c = user.entry(coll.to_owned()).or_default();
    pre.for_write().check(c.modified)?;
    for id in ids {
        c.bsos.remove(id);
    }
    c.modified = tick;
    Ok(Canned::new(200, &fmt_cs(tick)).with("X-Last-Modified", &fmt_cs(tick)))
}
