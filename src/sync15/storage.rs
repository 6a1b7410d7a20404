//! The Sync 1.5 storage-node client: one Hawk-signed request per call,
//! through the shared agent; writes paced per user and collection
//! ([`super::pacing`]); the node's limits on multi-record writes
//! ([`super::limits`]).
//!
//! Every place an upstream call is made again, and why it is safe:
//!
//! - a GET on a pooled keep-alive connection skips the liveness probe when the connection
//!   was recently trusted, and is sent again at once if the connection turns out dead
//!   (`upstream::agent::repeatable`, here in [`Storage::call`] and [`Session::read`]); a
//!   GET that failed to connect within [`STORAGE_RETRY_WITHIN`] is sent once more: reads change
//!   nothing;
//! - a write the node refused as a conflict (503, `Retry-After`, body `0`: certainly not
//!   applied) is sent again after the spacing, within `write_conflict_budget_ms`
//!   ([`super::pacing`]); a write whose fate is unknown (timeout, dropped connection) never
//!   is;
//! - a call the node refused with 401 (nothing done) is made again once with a fresh
//!   token (`App::with_storage`);
//! - a read answered 304 for a timestamp other than the one asked is read again without
//!   condition (`kinto/records.rs`, `refetch_after_304`);
//! - after a record write refused with 412, the record is read again for the answer's
//!   `details.existing` (`kinto/records.rs`);
//! - a batch's collapsed writes refused with 412 (the collection moved since it was read)
//!   read the records again, at most twice more, then go one by one
//!   (`kinto/collapse.rs`).

use super::limits::{self, Limits};
use super::pacing::{Held, Pacer};
use super::{Credentials, Error, MAX_UPSTREAM_BODY, Reply, Upstream, hawk};
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;
use crate::time_limits::STORAGE_RETRY_WITHIN;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ureq::http;

/// One call to the storage node.
pub struct Call<'a> {
    /// `GET`, `PUT`, `POST` or `DELETE`.
    pub method: &'static str,
    /// Path and query relative to the `api_endpoint`, starting with `/`,
    /// already percent-encoded: it is signed and sent exactly as given.
    pub path: &'a str,
    /// The collection a write changes: its pacing is keyed on it (user and
    /// collection). `None` for reads.
    pub collection: Option<&'a str>,
    /// Extra headers (`X-If-Modified-Since`, …).
    pub headers: &'a [(&'static str, String)],
    /// A JSON body.
    pub body: Option<&'a [u8]>,
    /// The `User-Agent` to send.
    pub user_agent: &'a str,
    /// Timer name, as the original's `syncclient.syncclient.<call>`.
    pub metric: &'static str,
}

/// Storage-node client.
#[derive(Clone)]
pub struct Storage {
    agent: ureq::Agent,
    metrics: Metrics,
    /// `log_user_ids = hashed`: errors name a node without the user's path on it.
    hide_users: bool,
    pacer: Arc<Pacer>,
    limits: Arc<limits::Known>,
}

impl Storage {
    /// A client over the shared agent; `write_budget` bounds the pacing and
    /// repeats of one write (see [`Pacer`]); with `hide_users`, the errors name where they
    /// happened without the user's part of the path (see [`Endpoint::at_hiding_own_path`]).
    pub fn new(
        agent: ureq::Agent,
        metrics: Metrics,
        write_budget: Duration,
        hide_users: bool,
    ) -> Storage {
        Storage {
            agent,
            metrics,
            hide_users,
            pacer: Arc::new(Pacer::new(write_budget)),
            limits: Arc::default(),
        }
    }

    /// Make `call` for the user behind `creds`. 2xx → `Ok`; 304 and ≥ 400
    /// → [`Error::Status`]; transport trouble → the other variants. Writes
    /// to a collection are paced per user and collection.
    pub fn call(&self, creds: &Credentials, call: &Call<'_>) -> Result<Reply, Error> {
        debug_assert!(
            crate::upstream::on_worker_thread(),
            "a storage call off a worker thread"
        );
        match (call.method, call.collection) {
            ("GET", _) => self.read(creds, call),
            (_, Some(collection)) => self
                .pacer
                .write(&creds.endpoint, collection, || self.call_once(creds, call)),
            _ => self.call_once(creds, call),
        }
    }

    fn read(&self, creds: &Credentials, call: &Call<'_>) -> Result<Reply, Error> {
        let started = Instant::now();
        let result = crate::upstream::agent::repeatable(|| self.call_once(creds, call));
        // A pooled keep-alive connection the node had closed fails at once,
        // before any answer (one taken without the liveness probe, or closed
        // between the probe and our request): a GET is safe to send again,
        // once, on a probed or new connection. Only a failure that quick is
        // repeated, so the repeat never stretches a call by more than
        // [`STORAGE_RETRY_WITHIN`] past its deadline.
        match result {
            Err(Error::Unreachable(..)) if started.elapsed() < STORAGE_RETRY_WITHIN => {
                self.call_once(creds, call)
            }
            other => other,
        }
    }

    /// Run `f` with a [`Session`] of the user behind `creds` on `collection`: it holds
    /// the collection's write gate throughout (see [`Pacer::session`]).
    /// [`Error::Busy`] when the gate did not come free within the write budget.
    pub fn session<T>(
        &self,
        creds: &Credentials,
        collection: &str,
        f: impl FnOnce(&mut Session<'_, '_>) -> T,
    ) -> Result<T, Error> {
        debug_assert!(
            crate::upstream::on_worker_thread(),
            "a storage call off a worker thread"
        );
        self.pacer.session(&creds.endpoint, collection, |held| {
            f(&mut Session {
                storage: self,
                creds,
                held,
            })
        })
    }

    /// The node's limits on one POST of records: from its `GET /info/configuration`,
    /// read with `creds` the first time (timer `syncclient.syncclient.info_configuration`)
    /// and kept; the defaults when it does not answer.
    pub fn limits(&self, creds: &Credentials, user_agent: &str) -> Limits {
        let origin = match Endpoint::parse(&creds.endpoint) {
            Ok(e) => e.origin(),
            Err(_) => return Limits::default(),
        };
        if let Some(l) = self.limits.get(&origin) {
            return l;
        }
        let call = Call {
            method: "GET",
            path: "/info/configuration",
            collection: None,
            headers: &[],
            body: None,
            user_agent,
            metric: "info_configuration",
        };
        let answered = match self.read(creds, &call) {
            Ok(reply) => Limits::parse(&reply.body),
            Err(e) => {
                log::info!("{e}: using the default limits of a Sync node for a minute");
                None
            }
        };
        self.limits.put(&origin, answered)
    }

    /// Write gates currently kept (for leak checks).
    pub fn pacing_gates(&self) -> usize {
        self.pacer.len()
    }

    fn call_once(&self, creds: &Credentials, call: &Call<'_>) -> Result<Reply, Error> {
        let target = Endpoint::parse(&creds.endpoint)
            .map_err(|_| Error::BadAnswer(Upstream::Storage, "invalid api_endpoint".into()))?;
        let url = format!("{}{}", creds.endpoint, call.path);
        let resource = format!("{}{}", target.path, call.path);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signing = Instant::now();
        let nonce = hawk::nonce();
        let hash = call.body.map(|b| hawk::payload_hash("application/json", b));
        let auth = hawk::header(
            &creds.id,
            creds.key.as_bytes(),
            &hawk::Signed {
                method: call.method,
                resource: &resource,
                host: target.host,
                port: target.port,
                ts,
                nonce: &nonce,
                hash: hash.as_deref(),
                ext: None,
            },
        );
        // The original's `syncclient.syncclient.auth`: signing one request, payload hash included.
        self.metrics
            .timing_fine("syncclient.syncclient.auth", signing.elapsed());
        let mut builder = http::Request::builder()
            .method(call.method)
            .uri(&url)
            .header("authorization", auth)
            .header("user-agent", call.user_agent)
            .header("accept", "application/json");
        for (name, value) in call.headers {
            builder = builder.header(*name, value.as_str());
        }
        let started = Instant::now();
        let result = match call.body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(body)
                .map_err(|e| Error::BadAnswer(Upstream::Storage, e.to_string()))
                .and_then(|rq| self.run(rq, &target, call.path)),
            None => builder
                .body(())
                .map_err(|e| Error::BadAnswer(Upstream::Storage, e.to_string()))
                .and_then(|rq| self.run(rq, &target, call.path)),
        };
        // Only a page of records can be asked for smaller (`_limit`); an
        // oversized answer to a write is simply unusable.
        let result = match result {
            Err(Error::TooLarge(upstream, limit)) if call.method != "GET" => Err(Error::BadAnswer(
                upstream,
                format!("answer larger than {limit} bytes"),
            )),
            other => other,
        };
        if self.metrics.is_enabled() {
            self.metrics.timing(
                &format!("syncclient.syncclient.{}", call.metric),
                started.elapsed(),
            );
            let status = match &result {
                Ok(r) => Some(r.status),
                Err(Error::Status(_, r)) => Some(r.status),
                Err(_) => None,
            };
            if let Some(status) = status {
                self.metrics
                    .incr(&format!("syncclient.status_code.{status}"));
            }
        }
        result
    }

    /// Sends `rq` to `path` under `target` (which name where an error happened).
    fn run<B: ureq::AsSendBody>(
        &self,
        rq: http::Request<B>,
        target: &Endpoint<'_>,
        path: &str,
    ) -> Result<Reply, Error> {
        let at = || target.at_hiding_own_path(path, self.hide_users);
        let failed = |e: ureq::Error| Error::transport(Upstream::Storage, &at(), &e);
        let resp = self.agent.run(rq).map_err(failed)?;
        let mut reply = Reply::read(resp, MAX_UPSTREAM_BODY).map_err(failed)?;
        match reply.status {
            200..=299 => Ok(reply),
            304 => Err(Error::Status(Upstream::Storage, Box::new(reply))),
            400.. => {
                reply.at = at();
                Err(Error::Status(Upstream::Storage, Box::new(reply)))
            }
            _ => Err(Error::BadAnswer(
                Upstream::Storage,
                format!("{}: unexpected status {}", at(), reply.status),
            )),
        }
    }
}

/// Calls of one user on one collection with its write gate held (see
/// [`Storage::session`]).
pub struct Session<'a, 'p> {
    storage: &'a Storage,
    creds: &'a Credentials,
    held: &'a mut Held<'p>,
}

impl Session<'_, '_> {
    /// A read (`GET`), as [`Storage::call`] makes it.
    pub fn read(&mut self, call: &Call<'_>) -> Result<Reply, Error> {
        self.storage.read(self.creds, call)
    }

    /// A write, spaced after the previous one and repeated while the node refuses it as
    /// a conflict, within the budget (see [`Held::write`]).
    pub fn write(&mut self, call: &Call<'_>) -> Result<Reply, Error> {
        let (storage, creds) = (self.storage, self.creds);
        self.held.write(|| storage.call_once(creds, call))
    }

    /// The node's limits (see [`Storage::limits`]).
    pub fn limits(&self, user_agent: &str) -> Limits {
        self.storage.limits(self.creds, user_agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See `tokenserver::tests::a_token_server_call_off_a_worker_is_a_bug`.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "off a worker thread")]
    fn a_storage_call_off_a_worker_is_a_bug() {
        let agent = ureq::Agent::config_builder().build().new_agent();
        let storage = Storage::new(agent, Metrics::disabled(), Duration::ZERO, false);
        let creds = Credentials {
            id: "id".into(),
            key: "key".into(),
            endpoint: "http://127.0.0.1:9/1.5/1".into(),
        };
        let _ = storage.call(
            &creds,
            &Call {
                method: "GET",
                path: "/info/collections",
                collection: None,
                headers: &[],
                body: None,
                user_agent: "test",
                metric: "info_collections",
            },
        );
    }
}
