//! The records endpoints: the bucket, its collections, collection metadata,
//! the records list, one record, PUT and DELETE. Each handler reads
//! top-down: identity → preconditions and parameters → Sync call(s) →
//! translation.
//!
//! Preconditions are exact: what each one decides is in [`super::precondition`], shared
//! with the collapsed writes of a batch.

use super::error::Error;
use super::precondition::{self, Decision, Known, Method, Since, decide, read_headers};
use super::query::{self, Precondition, QUERY_VALUE, preconditions};
use super::translate::{rewrite_list, rewrite_record, translate_headers};
use super::{App, Memo, Request, Response};
use crate::auth::{self, Identity};
use crate::buffers;
use crate::sync15::storage::Call;
use crate::sync15::timestamp;
use crate::sync15::{self, Reply, Upstream};
use percent_encoding::utf8_percent_encode;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::Instant;

/// What every upstream call of one request shares: who, on whose behalf,
/// and the credentials already looked up.
struct Ctx<'a> {
    app: &'a App,
    req: &'a Request<'a>,
    who: Identity<'a>,
    ua: String,
    memo: &'a mut Memo,
}

impl<'a> Ctx<'a> {
    fn new(
        app: &'a App,
        req: &'a Request<'a>,
        bucket: &'a str,
        memo: &'a mut Memo,
    ) -> Result<Ctx<'a>, Error> {
        let who = auth::identify(
            req.header("authorization"),
            req.header("x-keyid"),
            req.header("x-client-state"),
            bucket,
        )?;
        Ok(Ctx {
            app,
            req,
            who,
            ua: super::user_agent(req),
            memo,
        })
    }

    /// One Sync read with this user's credentials (see [`App::with_storage`]).
    fn call(
        &mut self,
        method: &'static str,
        path: &str,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
        metric: &'static str,
    ) -> Result<Reply, Error> {
        self.send(method, path, None, headers, body, metric)
    }

    /// One Sync call; a write names the `collection` it changes (its pacing).
    fn send(
        &mut self,
        method: &'static str,
        path: &str,
        collection: Option<&str>,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
        metric: &'static str,
    ) -> Result<Reply, Error> {
        if self.memo.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::BatchTimeUp(self.app.config.batch_timeout.as_secs()));
        }
        let ua = self.ua.as_str();
        self.app
            .with_storage(&self.who, ua, self.memo, |s, c| {
                s.call(
                    c,
                    &Call {
                        method,
                        path,
                        collection,
                        headers,
                        body,
                        user_agent: ua,
                        metric,
                    },
                )
            })
            .map_err(Error::from)
    }

    /// Sync's `info/collections`: collection → last modified (ms).
    fn collections(&mut self) -> Result<Vec<(String, u64)>, Error> {
        let reply = self.call("GET", "/info/collections", &[], None, "info_collections")?;
        let bad = |why: &str| sync15::Error::BadAnswer(Upstream::Storage, why.into());
        let map: std::collections::BTreeMap<String, &RawValue> =
            serde_json::from_slice(&reply.body)
                .map_err(|_| bad("info/collections is not a JSON object"))?;
        map.into_iter()
            .map(|(name, raw)| {
                timestamp::seconds_to_ms(raw.get())
                    .map(|ms| (name, ms))
                    .ok_or_else(|| bad("bad timestamp in info/collections").into())
            })
            .collect()
    }

    /// One record, translated to Kinto JSON (no envelope).
    fn fetch(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
        fields: Option<&[String]>,
    ) -> Result<(Reply, Vec<u8>), Error> {
        let reply = self.call("GET", path, headers, None, "get_record")?;
        // `modified` → `last_modified`: 5 bytes more.
        let mut record = Vec::with_capacity(reply.body.len() + 8);
        rewrite_record(&reply.body, fields, &mut record)
            .map_err(|why| sync15::Error::BadAnswer(Upstream::Storage, why))?;
        Ok((reply, record))
    }

    /// The record's current `last_modified` and Kinto JSON, `None` when it
    /// does not exist.
    fn current(&mut self, path: &str) -> Result<Option<(u64, Value)>, Error> {
        match self.fetch(path, &[], None) {
            Ok((reply, record)) => {
                let value: Value = serde_json::from_slice(&record).map_err(|_| Error::Internal)?;
                let lm = value["last_modified"]
                    .as_u64()
                    .or(reply.last_modified)
                    .ok_or_else(|| {
                        sync15::Error::BadAnswer(
                            Upstream::Storage,
                            "record without modified".into(),
                        )
                    })?;
                Ok(Some((lm, value)))
            }
            Err(Error::Upstream(sync15::Error::Status(Upstream::Storage, r)))
                if r.status == 404 =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The 412 of a record: Kinto.js builds its conflict from
    /// `details.existing`, the record as it is now.
    /// Past a batch's deadline the record is not read: the answer then says the batch ran
    /// out of time (nothing was written) rather than a 412 without `existing`, which
    /// Kinto.js would take for a record deleted on the server.
    fn conflict(&mut self, path: &str, reply: Option<Box<Reply>>) -> Error {
        match self.current(path) {
            Err(e @ Error::BatchTimeUp(_)) => e,
            read => Error::PreconditionFailed(read.ok().flatten().map(|(_, v)| v), reply),
        }
    }
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
    if query::is_sync_id(id) {
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

/// A metadata answer (`{"data": {...}}`) with its ETag, honouring
/// `If-None-Match` (304) and `If-Match` (412) by exact comparison.
fn metadata(req: &Request<'_>, data: Value, last_modified: u64) -> Result<Response, Error> {
    let etag = format!("\"{last_modified}\"");
    if req.header("if-none-match").map(str::trim) == Some(etag.as_str()) {
        let mut r = Response::new(304);
        r.header("ETag", etag);
        r.header("Cache-Control", "no-cache");
        return Ok(r);
    }
    if req.header("if-match").is_some_and(|im| im.trim() != etag) {
        return Err(Error::PreconditionFailed(None, None));
    }
    let mut r = Response::new(200);
    r.json(&serde_json::json!({ "data": data }));
    r.header("Cache-Control", "no-cache");
    r.header("ETag", etag);
    r.header("Last-Modified", timestamp::http_date(last_modified));
    Ok(r)
}

/// `GET …/buckets/{b}`: the bucket, last modified with its newest collection.
pub fn bucket(
    app: &App,
    req: &Request<'_>,
    bucket: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let mut cx = Ctx::new(app, req, bucket, memo)?;
    let newest = cx.collections()?.iter().map(|(_, t)| *t).max().unwrap_or(0);
    metadata(
        req,
        serde_json::json!({"id": bucket, "last_modified": newest}),
        newest,
    )
}

/// `GET …/buckets/{b}/collections`: the user's Sync collections, newest
/// first (or as `_sort` says), filtered by the time bounds of the query.
pub fn collections(
    app: &App,
    req: &Request<'_>,
    bucket: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let mut cx = Ctx::new(app, req, bucket, memo)?;
    let all = cx.collections()?;
    let newest = all.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let mut lower = None;
    let mut upper = None;
    let mut sort = "-last_modified".to_owned();
    for pair in query::pairs(req.query) {
        let (k, v) = pair?;
        let ms = || query::timestamp_param(&k, &v);
        match &*k {
            "_since" | "gt_last_modified" => lower = Some(ms()?),
            "_before" | "lt_last_modified" => upper = Some(ms()?),
            "_sort" => sort = v.into_owned(),
            _ => {}
        }
    }
    let mut kept: Vec<&(String, u64)> = all
        .iter()
        .filter(|(_, t)| lower.is_none_or(|x| *t > x) && upper.is_none_or(|x| *t < x))
        .collect();
    match sort.as_str() {
        "id" => kept.sort_by(|a, b| a.0.cmp(&b.0)),
        "-id" => kept.sort_by(|a, b| b.0.cmp(&a.0)),
        "last_modified" => kept.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))),
        "-last_modified" => kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0))),
        _ => {
            return Err(Error::param(
                "querystring",
                "_sort",
                "_sort should be one of ('id', '-id', 'last_modified', '-last_modified')",
            ));
        }
    }
    let data: Vec<Value> = kept
        .iter()
        .map(|(id, t)| serde_json::json!({"id": id, "last_modified": t}))
        .collect();
    let mut r = metadata(req, Value::Array(data), newest)?;
    if r.status == 200 {
        r.header("Total-Records", kept.len().to_string());
    }
    Ok(r)
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
    let mut cx = Ctx::new(app, req, bucket, memo)?;
    check_collection(coll)?;
    let lower = coll.to_ascii_lowercase();
    let last_modified = cx
        .collections()?
        .into_iter()
        .find(|(name, _)| *name == lower)
        .map_or(0, |(_, t)| t);
    metadata(
        req,
        serde_json::json!({"id": coll, "last_modified": last_modified}),
        last_modified,
    )
}

/// `GET/HEAD …/records`.
pub fn list(
    app: &App,
    req: &Request<'_>,
    bucket: &str,
    coll: &str,
    memo: &mut Memo,
) -> Result<Response, Error> {
    let mut cx = Ctx::new(app, req, bucket, memo)?;
    check_collection(coll)?;
    let pre = preconditions(req.header("if-match"), req.header("if-none-match"))?;
    let mut q = query::parse_list(req.query)?;
    // Pages are bounded, as Kinto's `paginate_by`: Sync would otherwise
    // answer every record at once.
    let asked = q.limit;
    q.limit = Some(asked.map_or(app.config.paginate_by, |l| l.min(app.config.paginate_by)));
    let path = format!("/storage/{}?{}", coll.to_ascii_lowercase(), q.upstream());
    let first = cx.call("GET", &path, &read_headers(pre), None, "get_records");
    let again = || cx.call("GET", &path, &[], None, "get_records");
    let mut reply = match refetch_after_304(first, pre, again) {
        Err(Error::Upstream(sync15::Error::Status(Upstream::Storage, r))) if r.status == 412 => {
            return Err(Error::PreconditionFailed(None, Some(r)));
        }
        other => other?,
    };
    if let Precondition::Match(x) = pre {
        if reply.last_modified != Some(x) {
            return Err(Error::PreconditionFailed(None, Some(Box::new(reply))));
        }
    }
    // Each record grows by 5 bytes (`modified` → `last_modified`): sized
    // for records of 80 bytes or more, so that a page is never copied into
    // a buffer twice as large halfway through.
    let mut out = buffers::take(reply.body.len() + reply.body.len() / 16 + 64);
    out.extend_from_slice(b"{\"data\":");
    let (kept, dropped) = rewrite_list(&reply.body, &q.exclude, q.fields.as_deref(), &mut out)
        .map_err(|why| sync15::Error::BadAnswer(Upstream::Storage, why))?;
    buffers::give(std::mem::take(&mut reply.body));
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
    // X-Weave-Records counts this page only: the total of all pages is
    // known when this page is the only one.
    if asked.is_none() && reply.next_offset.is_none() {
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

/// Sync's 304 means "not modified since X", Kinto's "is X": a 304 to a read under
/// `If-None-Match: "X"` for a resource at another timestamp is fetched `again`, without
/// condition.
fn refetch_after_304<T>(
    first: Result<T, Error>,
    pre: Precondition,
    again: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    match first {
        Err(Error::Upstream(sync15::Error::Status(Upstream::Storage, r)))
            if r.status == 304 && r.last_modified != Some(precondition::named(pre)) =>
        {
            again()
        }
        other => other,
    }
}

/// The absolute URL of the next page: same path and query, new `_token`.
fn next_page(app: &App, req: &Request<'_>, offset: &str) -> String {
    let mut url = super::route::base_url(app, req);
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
    let mut cx = Ctx::new(app, req, bucket, memo)?;
    let path = record_path(coll, id);
    let lower = coll.to_ascii_lowercase();
    let result = match req.method {
        "PUT" | "DELETE" => {
            let w = write_request(req, coll, id)?;
            match w.fields {
                Some(fields) => put(&mut cx, &lower, &path, id, w.pre, fields),
                None => delete(&mut cx, &lower, &path, id, w.pre),
            }
        }
        _ => {
            check_collection(coll)?;
            check_id(id)?;
            let pre = preconditions(req.header("if-match"), req.header("if-none-match"))?;
            get(&mut cx, &path, pre)
        }
    };
    match result {
        Err(Error::Upstream(sync15::Error::Status(Upstream::Storage, reply))) => match reply.status
        {
            404 => Err(Error::RecordNotFound(id.to_owned(), Some(reply))),
            412 => Err(cx.conflict(&path, Some(reply))),
            _ => Err(Error::Upstream(sync15::Error::Status(
                Upstream::Storage,
                reply,
            ))),
        },
        other => other,
    }
}

/// A record PUT or DELETE as checked before any upstream call (after the credentials).
pub(super) struct WriteRequest {
    /// Its precondition.
    pub(super) pre: Precondition,
    /// A PUT's Sync fields (`payload`, `sortindex`, `ttl`); `None` for a DELETE.
    pub(super) fields: Option<Map<String, Value>>,
}

/// The checks of a record write made before any upstream call, in the order the client
/// sees their errors: collection name, record id, precondition headers, then a PUT's body.
/// The batch's collapsed writes make the same ones, so a write refused here is answered
/// alike on both paths.
pub(super) fn write_request(
    req: &Request<'_>,
    coll: &str,
    id: &str,
) -> Result<WriteRequest, Error> {
    check_collection(coll)?;
    check_id(id)?;
    let pre = preconditions(req.header("if-match"), req.header("if-none-match"))?;
    let fields = match req.method {
        "PUT" => Some(put_fields(req, id)?),
        _ => None,
    };
    Ok(WriteRequest { pre, fields })
}

fn get(cx: &mut Ctx<'_>, path: &str, pre: Precondition) -> Result<Response, Error> {
    let fields = query::parse_fields(cx.req.query)?;
    let fields = fields.as_deref();
    let first = match cx.fetch(path, &read_headers(pre), fields) {
        // Sync checks a precondition before it looks for the record, against 0 when there is
        // none: its 304 at 0 means "no such record" (none is ever stamped 0), which Kinto
        // answers with 404 whatever `If-None-Match` says.
        Err(Error::Upstream(sync15::Error::Status(Upstream::Storage, r)))
            if r.status == 304 && r.last_modified == Some(0) =>
        {
            cx.fetch(path, &[], fields)
        }
        other => other,
    };
    let (reply, record) = refetch_after_304(first, pre, || cx.fetch(path, &[], fields))?;
    if let Precondition::Match(x) = pre {
        if reply.last_modified != Some(x) {
            let existing = serde_json::from_slice(&record).ok();
            return Err(Error::PreconditionFailed(existing, Some(Box::new(reply))));
        }
    }
    let mut out = Vec::with_capacity(record.len() + 10);
    out.extend_from_slice(b"{\"data\":");
    out.extend_from_slice(&record);
    out.push(b'}');
    let mut r = Response::new(200);
    r.set_json_body(out);
    translate_headers(&mut r, &reply);
    Ok(r)
}

/// Whether to send a write, and under which condition (see [`decide`]): the record is
/// read first when the precondition needs it; a write refused here is the error to answer.
fn write_decision(
    cx: &mut Ctx<'_>,
    path: &str,
    id: &str,
    method: Method,
    pre: Precondition,
) -> Result<(Since, bool), Error> {
    let record;
    let mut decision = decide(method, pre, Known::Unread);
    if let Decision::Read = decision {
        record = cx.current(path)?;
        decision = decide(method, pre, Known::of(record.as_ref()));
    }
    match decision {
        Decision::Send { since, creates } => Ok((since, creates)),
        refused => Err(refusal(refused, id, &Reply::default())),
    }
}

/// The answer to a write refused without sending it (a [`Decision`] other than `Send`).
/// A refusal that stands for the node's own answer carries the upstream headers of
/// `read`, the answer the record was known from, as the node's answer would.
pub(super) fn refusal(decision: Decision<'_>, id: &str, read: &Reply) -> Error {
    let node = |status| {
        Some(Box::new(Reply {
            status,
            quota_remaining: read.quota_remaining.clone(),
            alert: read.alert.clone(),
            backoff: read.backoff.clone(),
            ..Reply::default()
        }))
    };
    match decision {
        Decision::Modified(existing) => Error::PreconditionFailed(existing.cloned(), None),
        Decision::Missing => Error::RecordNotFound(id.to_owned(), None),
        Decision::Exists(lm, existing) => {
            let mut reply = node(412);
            if let Some(r) = reply.as_mut() {
                r.last_modified = Some(lm);
            }
            Error::PreconditionFailed(Some(existing.clone()), reply)
        }
        Decision::Gone => Error::RecordNotFound(id.to_owned(), node(404)),
        Decision::Read | Decision::Send { .. } => Error::Internal,
    }
}

fn put(
    cx: &mut Ctx<'_>,
    coll: &str,
    path: &str,
    id: &str,
    pre: Precondition,
    fields: Map<String, Value>,
) -> Result<Response, Error> {
    let body = serde_json::to_vec(&fields).map_err(|_| Error::Internal)?;
    let (since, creates) = write_decision(cx, path, id, Method::Put, pre)?;
    let headers: Vec<_> = since.header().into_iter().collect();
    let reply = cx.send("PUT", path, Some(coll), &headers, Some(&body), "put_record")?;
    let modified = std::str::from_utf8(&reply.body)
        .ok()
        .and_then(timestamp::seconds_to_ms)
        .or(reply.last_modified)
        .ok_or_else(|| {
            sync15::Error::BadAnswer(Upstream::Storage, "PUT answer has no timestamp".into())
        })?;
    Ok(written(id, fields, modified, creates, &reply))
}

/// The answer to a record write the node made at `modified`: `{"data": record}` with
/// `id`, the fields sent and `last_modified`; 201 when it created the record; the
/// headers of the node's answer, `ETag` and `Last-Modified` of the record.
pub(super) fn written(
    id: &str,
    fields: Map<String, Value>,
    modified: u64,
    creates: bool,
    reply: &Reply,
) -> Response {
    let mut data = Map::with_capacity(fields.len() + 2);
    data.insert("id".into(), Value::String(id.to_owned()));
    data.extend(fields);
    data.insert("last_modified".into(), modified.into());
    let mut r = Response::new(if creates { 201 } else { 200 });
    r.json(&serde_json::json!({ "data": data }));
    translate_headers(&mut r, reply);
    r.set("ETag", format!("\"{modified}\""));
    r.set("Last-Modified", timestamp::http_date(modified));
    r
}

/// Validate a PUT body (`{"data": {...}, "permissions"?: ...}`) into the
/// Sync BSO fields to send.
fn put_fields(req: &Request<'_>, id: &str) -> Result<Map<String, Value>, Error> {
    let body = super::body::json_body(req)?;
    let Value::Object(mut top) = body else {
        return Err(Error::InvalidParameter {
            location: "body",
            name: None,
            message: "The request body should be a JSON object with a `data` object".into(),
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
    cx: &mut Ctx<'_>,
    coll: &str,
    path: &str,
    id: &str,
    pre: Precondition,
) -> Result<Response, Error> {
    let (since, _) = write_decision(cx, path, id, Method::Delete, pre)?;
    let headers: Vec<_> = since.header().into_iter().collect();
    let reply = cx.send("DELETE", path, Some(coll), &headers, None, "delete_record")?;
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
            sync15::Error::BadAnswer(Upstream::Storage, "DELETE answer has no timestamp".into())
        })?;
    Ok(deleted(id, modified, &reply))
}

/// The answer to a record delete the node made at `modified`:
/// `{"data": {"id", "last_modified", "deleted": true}}`, the headers of the node's answer,
/// `ETag` and `Last-Modified` of the deletion.
pub(super) fn deleted(id: &str, modified: u64, reply: &Reply) -> Response {
    let mut r = Response::new(200);
    r.json(&serde_json::json!({"data": {"id": id, "last_modified": modified, "deleted": true}}));
    translate_headers(&mut r, reply);
    r.set("ETag", format!("\"{modified}\""));
    r.set("Last-Modified", timestamp::http_date(modified));
    r
}
