//! The Sync 1.5 storage-node client: one Hawk-signed request per call,
//! through the shared agent.

use super::pacing::Pacer;
use super::{Credentials, Error, MAX_UPSTREAM_BODY, Reply, Upstream, hawk};
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ureq::http;

/// One call to the storage node.
pub struct Call<'a> {
    /// `GET`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// Path and query relative to the `api_endpoint`, starting with `/`,
    /// already percent-encoded: it is signed and sent exactly as given.
    pub path: &'a str,
    /// Extra headers (`X-If-Modified-Since`, …).
    pub headers: &'a [(&'static str, String)],
    /// A JSON body.
    pub body: Option<&'a [u8]>,
    /// The `User-Agent` to send.
    pub user_agent: &'a str,
    /// Timer name, as the original's `syncclient.syncclient.<call>`.
    pub metric: &'static str,
}

/// A GET that failed on a connection within this time is sent again.
const RETRY_WITHIN: Duration = Duration::from_secs(1);

/// Storage-node client.
#[derive(Clone)]
pub struct Storage {
    agent: ureq::Agent,
    metrics: Metrics,
    pacer: Arc<Pacer>,
}

impl Storage {
    /// A client over the shared agent; `write_budget` bounds the pacing and
    /// repeats of one write (see [`Pacer`]).
    pub fn new(agent: ureq::Agent, metrics: Metrics, write_budget: Duration) -> Storage {
        Storage {
            agent,
            metrics,
            pacer: Arc::new(Pacer::new(write_budget)),
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
        if call.method != "GET" {
            if let Some(collection) = written_collection(call.path) {
                return self
                    .pacer
                    .write(&creds.endpoint, collection, || self.call_once(creds, call));
            }
        }
        let started = Instant::now();
        let result = if call.method == "GET" {
            crate::upstream::agent::repeatable(|| self.call_once(creds, call))
        } else {
            self.call_once(creds, call)
        };
        // A pooled keep-alive connection the node had closed fails at once,
        // before any answer (one taken without the liveness probe, or closed
        // between the probe and our request): a GET is safe to send again,
        // once, on a probed or new connection. Only a failure that quick is
        // repeated, so the repeat never stretches a call by more than
        // [`RETRY_WITHIN`] past its deadline.
        match result {
            Err(Error::Unreachable(..))
                if call.method == "GET" && started.elapsed() < RETRY_WITHIN =>
            {
                self.call_once(creds, call)
            }
            other => other,
        }
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
        let failed = |e: ureq::Error| Error::transport(Upstream::Storage, &target.at(path), &e);
        let resp = self.agent.run(rq).map_err(failed)?;
        let mut reply = Reply::read(resp, MAX_UPSTREAM_BODY).map_err(failed)?;
        match reply.status {
            200..=299 => Ok(reply),
            304 => Err(Error::Status(Upstream::Storage, Box::new(reply))),
            400.. => {
                reply.at = target.at(path);
                Err(Error::Status(Upstream::Storage, Box::new(reply)))
            }
            _ => Err(Error::BadAnswer(
                Upstream::Storage,
                format!("{}: unexpected status {}", target.at(path), reply.status),
            )),
        }
    }
}

/// The collection a write path (`/storage/<collection>[/<id>][?…]`) changes.
fn written_collection(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/storage/")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|c| !c.is_empty())
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
        let storage = Storage::new(agent, Metrics::disabled(), Duration::ZERO);
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
                headers: &[],
                body: None,
                user_agent: "test",
                metric: "info_collections",
            },
        );
    }

    #[test]
    fn the_collection_of_a_write() {
        assert_eq!(written_collection("/storage/tabs/abc"), Some("tabs"));
        assert_eq!(written_collection("/storage/tabs?ids=a,b"), Some("tabs"));
        assert_eq!(written_collection("/storage/tabs"), Some("tabs"));
        assert_eq!(written_collection("/storage/"), None);
        assert_eq!(written_collection("/info/collections"), None);
    }
}
