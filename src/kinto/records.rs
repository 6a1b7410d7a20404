//! The records endpoints: collection metadata, list, one record, PUT and
//! DELETE. Each handler reads top-down: identity → preconditions and
//! parameters → credentials → Sync call → translation.

use super::error::Error;
use super::query::{self, QUERY_VALUE, preconditions};
use super::{App, Memo, Request, Response, translate_headers};
use crate::auth::{self, Identity};
use crate::sync::storage::Call;
use crate::sync::{self, Upstream, timestamp};
use percent_encoding::utf8_percent_encode;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

fn identity<'a>(req: &Request<'a>, bucket: &'a str) -> Result<Identity<'a>, Error> {
    auth::identify(
        req.header("authorization"),
        req.header("x-keyid"),
        req.header("x-client-state"),
        bucket,
    )
}

/// Sync's collection rule: `[a-zA-Z0-9._-]{1,32}`.
fn check_collection(c: &str) -> Result<(), Error> {
    let ok = (1..=32).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::param(
            "path",
            "collection_id",
            "Invalid collection name: expected 1 to 32 characters of [a-zA-Z0-9._-]",
        ))
    }
}

/// Sync's BSO id rule: 1–64 printable ASCII characters.
fn check_id(id: &str) -> Result<(), Error> {
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Ok(())
    } else {
        Err(Error::param(
            "path",
            "id",
            "Invalid record id: expected 1 to 64 printable ASCII characters",
        ))
    }
}

fn record_path(collection: &str, id: &str) -> String {
    format!(
        "/storage/{}/{}",
        collection.to_ascii_lowercase(),
        utf8_percent_encode(id, QUERY_VALUE)
    )
}

/// `GET …/collections/{c}`: `{"data": {"id", "last_modified"}}` from
/// Sync's `info/collections` (Kinto.js reads it first on every sync).
pub fn collection(
    app: &App,
    req: &Request<'_>,
    bucket: &str,
    coll: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let who = identity(req, bucket)?;
    check_collection(coll)?;
    let ua = super::user_agent(req);
    let reply = app.with_storage(&who, &ua, memo, |s, c| {
        s.call(
            c,
            &Call {
                method: "GET",
                path: "/info/collections",
                headers: &[],
                body: None,
                user_agent: &ua,
                metric: "info_collections",
            },
        )
    })?;
    let map: std::collections::HashMap<Cow<'_, str>, &RawValue> =
        serde_json::from_slice(&reply.body).map_err(|_| {
            sync::Error::BadAnswer(
                Upstream::Storage,
                "info/collections is not a JSON object".into(),
            )
        })?;
    let lower = coll.to_ascii_lowercase();
    let last_modified = match map.get(lower.as_str()) {
        Some(raw) => timestamp::seconds_to_ms(raw.get()).ok_or_else(|| {
            sync::Error::BadAnswer(
                Upstream::Storage,
                "bad timestamp in info/collections".into(),
            )
        })?,
        None => 0,
    };
    let etag = format!("\"{last_modified}\"");
    if let Some(inm) = req.header("if-none-match") {
        if inm.trim() == etag {
            let mut r = Response::new(304);
            r.header("ETag", etag);
            r.header("Cache-Control", "no-cache");
            return Ok(r);
        }
    }
    if let Some(im) = req.header("if-match") {
        if im.trim() != etag {
            return Err(Error::PreconditionFailed(None, None));
        }
    }
    let mut r = Response::new(200);
    r.json(&serde_json::json!({"data": {"id": coll, "last_modified": last_modified}}));
    r.header("Cache-Control", "no-cache");
    r.header("ETag", etag);
    r.header("Last-Modified", timestamp::http_date(last_modified));
    Ok(r)
}

/// `GET/HEAD …/records`.
pub fn list(
    app: &App,
    req: &Request<'_>,
    bucket: &str,
    coll: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let who = identity(req, bucket)?;
    check_collection(coll)?;
    let pre = preconditions(req.header("if-match"), req.header("if-none-match"))?;
    let q = query::parse_list(req.query)?;
    let path = format!("/storage/{}?{}", coll.to_ascii_lowercase(), q.upstream());
    let ua = super::user_agent(req);
    let reply = app.with_storage(&who, &ua, memo, |s, c| {
        s.call(
            c,
            &Call {
                method: "GET",
                path: &path,
                headers: &pre.headers,
                body: None,
                user_agent: &ua,
                metric: "get_records",
            },
        )
    })?;
    let mut out = Vec::with_capacity(reply.body.len() + 64);
    out.extend_from_slice(b"{\"data\":");
    let (kept, dropped) = rewrite_list(&reply.body, &q.exclude, &mut out)
        .map_err(|why| sync::Error::BadAnswer(Upstream::Storage, why))?;
    out.push(b'}');
    let mut r = Response::new(200);
    r.set_json_body(out);
    translate_headers(&mut r, &reply);
    // Sync deletes for good: an empty `_since` answer must not announce a
    // newer timestamp, or Kinto.js concludes the server was flushed.
    if let Some(since) = q.since {
        if kept + dropped == 0 {
            r.set("ETag", format!("\"{since}\""));
            r.set("Last-Modified", timestamp::http_date(since));
        }
    }
    if q.limit.is_none() {
        if let Some(total) = reply.records {
            r.header(
                "Total-Records",
                total.saturating_sub(dropped as u64).to_string(),
            );
        }
    }
    if let Some(offset) = &reply.next_offset {
        r.header("Next-Page", next_page(app, req, offset));
    }
    Ok(r)
}

/// The absolute URL of the next page: same path and query, new `_token`.
fn next_page(app: &App, req: &Request<'_>, offset: &str) -> String {
    let mut url = app.base_url(req);
    url.push_str(req.path);
    url.push('?');
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if key != "_token" {
            url.push_str(pair);
            url.push('&');
        }
    }
    url.push_str("_token=");
    url.extend(utf8_percent_encode(offset, QUERY_VALUE));
    url
}

/// `GET/HEAD/PUT/DELETE …/records/{id}`.
pub fn record(
    app: &App,
    req: &Request<'_>,
    bucket: &str,
    coll: &str,
    id: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    match req.method {
        "PUT" if !app.config.put_enabled(coll) => return Err(Error::WriteDisabled),
        "DELETE" if !app.config.delete_enabled(coll) => return Err(Error::WriteDisabled),
        _ => {}
    }
    let who = identity(req, bucket)?;
    check_collection(coll)?;
    check_id(id)?;
    let pre = preconditions(req.header("if-match"), req.header("if-none-match"))?;
    let path = record_path(coll, id);
    let ua = super::user_agent(req);
    let result = match req.method {
        "PUT" => put(app, req, &who, &path, id, &pre, &ua, memo),
        "DELETE" => delete(app, &who, &path, id, &pre.headers, &ua, memo),
        _ => get(app, &who, &path, &pre.headers, &ua, memo),
    };
    match result {
        Err(Error::Upstream(sync::Error::Status(Upstream::Storage, reply))) => match reply.status {
            404 => Err(Error::RecordNotFound(id.to_owned(), Some(reply))),
            412 => {
                // Kinto.js builds its conflict from details.existing.
                let existing = fetch_record(app, &who, &path, &[], &ua, memo)
                    .ok()
                    .and_then(|(_, record)| serde_json::from_slice::<Value>(&record).ok());
                Err(Error::PreconditionFailed(existing, Some(reply)))
            }
            _ => Err(Error::Upstream(sync::Error::Status(
                Upstream::Storage,
                reply,
            ))),
        },
        other => other,
    }
}

fn get(
    app: &App,
    who: &Identity<'_>,
    path: &str,
    headers: &[(&'static str, String)],
    ua: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let (reply, record) = fetch_record(app, who, path, headers, ua, memo)?;
    let mut out = Vec::with_capacity(record.len() + 10);
    out.extend_from_slice(b"{\"data\":");
    out.extend_from_slice(&record);
    out.push(b'}');
    let mut r = Response::new(200);
    r.set_json_body(out);
    translate_headers(&mut r, &reply);
    Ok(r)
}

/// One record from Sync, translated to Kinto JSON (no envelope).
fn fetch_record(
    app: &App,
    who: &Identity<'_>,
    path: &str,
    headers: &[(&'static str, String)],
    ua: &str,
    memo: &mut Memo,
) -> Result<(sync::Reply, Vec<u8>), Error> {
    let reply = app.with_storage(who, ua, memo, |s, c| {
        s.call(
            c,
            &Call {
                method: "GET",
                path,
                headers,
                body: None,
                user_agent: ua,
                metric: "get_record",
            },
        )
    })?;
    let mut record = Vec::with_capacity(reply.body.len() + 8);
    rewrite_record(&reply.body, &mut record)
        .map_err(|why| sync::Error::BadAnswer(Upstream::Storage, why))?;
    Ok((reply, record))
}

#[allow(clippy::too_many_arguments)]
fn put(
    app: &App,
    req: &Request<'_>,
    who: &Identity<'_>,
    path: &str,
    id: &str,
    pre: &query::Preconditions,
    ua: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let fields = put_fields(req, id)?;
    let body = serde_json::to_vec(&fields).map_err(|_| Error::Internal)?;
    let reply = app.with_storage(who, ua, memo, |s, c| {
        s.call(
            c,
            &Call {
                method: "PUT",
                path,
                headers: &pre.headers,
                body: Some(&body),
                user_agent: ua,
                metric: "put_record",
            },
        )
    })?;
    let modified = std::str::from_utf8(&reply.body)
        .ok()
        .and_then(timestamp::seconds_to_ms)
        .or(reply.last_modified)
        .ok_or_else(|| {
            sync::Error::BadAnswer(Upstream::Storage, "PUT answer has no timestamp".into())
        })?;
    let mut data = Map::with_capacity(fields.len() + 2);
    data.insert("id".into(), Value::String(id.to_owned()));
    data.extend(fields);
    data.insert("last_modified".into(), modified.into());
    let mut r = Response::new(if pre.create_only { 201 } else { 200 });
    r.json(&serde_json::json!({ "data": data }));
    translate_headers(&mut r, &reply);
    r.set("ETag", format!("\"{modified}\""));
    r.set("Last-Modified", timestamp::http_date(modified));
    Ok(r)
}

/// Validate a PUT body (`{"data": {...}, "permissions"?: ...}`) into the
/// Sync BSO fields to send.
fn put_fields(req: &Request<'_>, id: &str) -> Result<Map<String, Value>, Error> {
    let body = req.json_body()?;
    let Value::Object(mut top) = body else {
        return Err(Error::InvalidParameter {
            location: "body",
            name: None,
            message: "body: The request body should be a JSON object with a `data` object".into(),
        });
    };
    for key in top.keys() {
        if key != "data" && key != "permissions" {
            return Err(Error::param(
                "body",
                key.clone(),
                format!("{key} is not allowed"),
            ));
        }
    }
    let Some(data) = top.remove("data") else {
        return Err(Error::param("body", "data", "data is missing"));
    };
    let Value::Object(data) = data else {
        return Err(Error::InvalidData {
            name: "data".into(),
            message: "data should be an object".into(),
        });
    };
    let invalid = |name: &str, message: String| Error::InvalidData {
        name: format!("data.{name}").into(),
        message: message.into(),
    };
    let mut fields = Map::new();
    for (k, v) in data {
        match k.as_str() {
            "id" => {
                if v.as_str() != Some(id) {
                    return Err(invalid(
                        "id",
                        "data.id does not match the record id of the URL".into(),
                    ));
                }
            }
            // Kinto.js sends the previous last_modified on updates.
            "last_modified" => {}
            "payload" => {
                if !v.is_string() {
                    return Err(invalid("payload", "payload should be a string".into()));
                }
                fields.insert(k, v);
            }
            "sortindex" => {
                if !v
                    .as_i64()
                    .is_some_and(|n| (-999_999_999..=999_999_999).contains(&n))
                {
                    return Err(invalid(
                        "sortindex",
                        "sortindex should be an integer between -999999999 and 999999999".into(),
                    ));
                }
                fields.insert(k, v);
            }
            "ttl" => {
                if v.as_u64().is_none_or(|n| n > 999_999_999) {
                    return Err(invalid(
                        "ttl",
                        "ttl should be an integer between 0 and 999999999 (seconds)".into(),
                    ));
                }
                fields.insert(k, v);
            }
            other => {
                return Err(invalid(
                    other,
                    format!("{other} is not a field of a Sync record (payload, sortindex, ttl)"),
                ));
            }
        }
    }
    Ok(fields)
}

fn delete(
    app: &App,
    who: &Identity<'_>,
    path: &str,
    id: &str,
    headers: &[(&'static str, String)],
    ua: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let reply = app.with_storage(who, ua, memo, |s, c| {
        s.call(
            c,
            &Call {
                method: "DELETE",
                path,
                headers,
                body: None,
                user_agent: ua,
                metric: "delete_record",
            },
        )
    })?;
    #[derive(serde::Deserialize)]
    struct Deleted<'a> {
        #[serde(borrow)]
        modified: &'a RawValue,
    }
    // ss-rs answers {"modified": ts}; a bare number is accepted too.
    let modified = serde_json::from_slice::<Deleted<'_>>(&reply.body)
        .ok()
        .and_then(|d| timestamp::seconds_to_ms(d.modified.get()))
        .or_else(|| {
            std::str::from_utf8(&reply.body)
                .ok()
                .and_then(timestamp::seconds_to_ms)
        })
        .or(reply.last_modified)
        .ok_or_else(|| {
            sync::Error::BadAnswer(Upstream::Storage, "DELETE answer has no timestamp".into())
        })?;
    let mut r = Response::new(200);
    r.json(&serde_json::json!({"data": {"id": id, "last_modified": modified, "deleted": true}}));
    translate_headers(&mut r, &reply);
    r.set("ETag", format!("\"{modified}\""));
    r.set("Last-Modified", timestamp::http_date(modified));
    Ok(r)
}

// ---------------------------------------------------------------------------
// One pass over Sync's JSON: records are copied field by field as raw JSON
// text, `modified` (seconds) becomes `last_modified` (ms). Payloads are never
// unescaped or re-encoded.

/// Rewrite a Sync list body into `out`; returns (records kept, excluded).
pub fn rewrite_list(
    body: &[u8],
    exclude: &[String],
    out: &mut Vec<u8>,
) -> Result<(usize, usize), String> {
    let mut w = ListWriter {
        out,
        exclude,
        kept: 0,
        dropped: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut w)
        .deserialize(&mut de)
        .map_err(|e| format!("records list: {e}"))?;
    de.end().map_err(|e| format!("records list: {e}"))?;
    Ok((w.kept, w.dropped))
}

/// Rewrite one Sync record into `out`.
pub fn rewrite_record(body: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    RecordWriter { out, exclude: &[] }
        .deserialize(&mut de)
        .map_err(|e| format!("record: {e}"))?;
    de.end().map_err(|e| format!("record: {e}"))
}

struct ListWriter<'o> {
    out: &'o mut Vec<u8>,
    exclude: &'o [String],
    kept: usize,
    dropped: usize,
}

impl<'de> DeserializeSeed<'de> for &mut ListWriter<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut ListWriter<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        loop {
            let start = self.out.len();
            if self.kept > 0 {
                self.out.push(b',');
            }
            let seed = RecordWriter {
                out: self.out,
                exclude: self.exclude,
            };
            match seq.next_element_seed(seed)? {
                None => {
                    self.out.truncate(start);
                    break;
                }
                Some(true) => self.kept += 1,
                Some(false) => {
                    self.out.truncate(start);
                    self.dropped += 1;
                }
            }
        }
        self.out.push(b']');
        Ok(())
    }
}

/// Writes one record; yields false when its id is excluded.
struct RecordWriter<'o> {
    out: &'o mut Vec<u8>,
    exclude: &'o [String],
}

impl<'de> DeserializeSeed<'de> for RecordWriter<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordWriter<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let out = self.out;
        out.push(b'{');
        let mut first = true;
        let mut keep = true;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            if !first {
                out.push(b',');
            }
            first = false;
            if key.0 == "modified" {
                let ms = timestamp::seconds_to_ms(value.get())
                    .ok_or_else(|| de::Error::custom("modified is not a timestamp"))?;
                out.extend_from_slice(b"\"last_modified\":");
                out.extend_from_slice(ms.to_string().as_bytes());
                continue;
            }
            if !self.exclude.is_empty() && key.0 == "id" {
                let id: Cow<'_, str> =
                    serde_json::from_str::<Cow<'_, str>>(value.get()).unwrap_or_default();
                keep = !self.exclude.iter().any(|e| *e == id);
            }
            // Keys of Sync records are plain; serializing escapes any oddity.
            serde_json::to_writer(&mut *out, &*key.0).map_err(de::Error::custom)?;
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        Ok(keep)
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(body: &str, exclude: &[&str]) -> (String, usize, usize) {
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let (k, d) = rewrite_list(body.as_bytes(), &exclude, &mut out).unwrap();
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
        ] {
            assert!(
                rewrite_list(bad.as_bytes(), &[], &mut out).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn record_rewrite() {
        let mut out = Vec::new();
        rewrite_record(br#"{"id":"x","modified":1.5,"payload":"p"}"#, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"x","last_modified":1500,"payload":"p"}"#
        );
    }
}
