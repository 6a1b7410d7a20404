//! The Token Server client: trades the client's OAuth token (or legacy
//! BrowserID assertion) for Hawk credentials and the user's storage node.

use super::{Credentials, Error, Reply, Upstream};
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::http;

/// The Token Server, as configured.
#[derive(Clone)]
pub struct TokenServer {
    agent: ureq::Agent,
    /// `…/1.0/sync/1.5`
    url: String,
    /// `…/__heartbeat__`
    heartbeat_url: String,
    /// `host:port/…/1.0/sync/1.5`, for errors.
    at: String,
    /// `host:port/…/__heartbeat__`, for errors.
    heartbeat_at: String,
    heartbeat_timeout: Duration,
    /// The last heartbeat check, shared by the clones.
    beat: Arc<super::heartbeat::Beat>,
    allow_insecure: bool,
    metrics: Metrics,
}

/// A successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What signing needs.
    pub credentials: Credentials,
    /// Token lifetime the server granted, in seconds.
    pub duration: Option<u64>,
}

#[derive(Deserialize)]
struct TokenJson {
    id: String,
    key: String,
    api_endpoint: String,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    hashalg: Option<String>,
}

const SUFFIX: &str = "/1.0/sync/1.5";

impl TokenServer {
    /// `base` is the configured `token_server_url`; `/1.0/sync/1.5` is
    /// appended unless it is already there (self-hosters often configure
    /// the full URL).
    pub fn new(
        agent: ureq::Agent,
        base: &str,
        heartbeat_timeout: Duration,
        allow_insecure: bool,
        metrics: Metrics,
    ) -> TokenServer {
        let root = base.trim_end_matches('/');
        let root = root.strip_suffix(SUFFIX).unwrap_or(root);
        let at =
            |path: &str| Endpoint::parse(root).map_or_else(|_| path.to_owned(), |e| e.at(path));
        TokenServer {
            agent,
            url: format!("{root}{SUFFIX}"),
            heartbeat_url: format!("{root}/__heartbeat__"),
            at: at(SUFFIX),
            heartbeat_at: at("/__heartbeat__"),
            heartbeat_timeout,
            beat: Arc::default(),
            allow_insecure,
            metrics,
        }
    }

    /// Ask for credentials. `authorization` is the full header value to
    /// send (`Bearer …` / `BrowserID …`), `key` the `X-KeyID` or
    /// `X-Client-State` header, `duration` the lifetime asked for (seconds).
    pub fn fetch(
        &self,
        authorization: &str,
        key: (&'static str, &str),
        duration: u64,
        user_agent: &str,
    ) -> Result<Token, Error> {
        debug_assert!(
            crate::upstream::on_worker_thread(),
            "a Token Server call off a worker thread"
        );
        let started = Instant::now();
        let result = self.exchange(authorization, key, duration, user_agent);
        if self.metrics.is_enabled() {
            self.metrics.timing(
                "tokenserver.tokenserverclient.get_hawk_credentials",
                started.elapsed(),
            );
            if let Err(Error::Status(_, r)) = &result {
                self.metrics
                    .incr(&format!("syncclient.status_code.{}", r.status));
            }
        }
        result
    }

    fn exchange(
        &self,
        authorization: &str,
        key: (&'static str, &str),
        duration: u64,
        user_agent: &str,
    ) -> Result<Token, Error> {
        let url = format!("{}?duration={duration}", self.url);
        let at = self.at.as_str();
        let rq = http::Request::builder()
            .method("GET")
            .uri(&url)
            .header("authorization", authorization)
            .header(key.0, key.1)
            .header("user-agent", user_agent)
            .header("accept", "application/json")
            .body(())
            .map_err(|e| Error::BadAnswer(Upstream::TokenServer, e.to_string()))?;
        let resp = self
            .agent
            .run(rq)
            .map_err(|e| Error::transport(Upstream::TokenServer, at, &e))?;
        let mut reply = Reply::read(resp, 64 * 1024)
            .map_err(|e| Error::transport(Upstream::TokenServer, at, &e))?;
        if !(200..300).contains(&reply.status) {
            reply.at = at.to_owned();
            return Err(Error::Status(Upstream::TokenServer, Box::new(reply)));
        }
        let bad = |why: &str| Error::BadAnswer(Upstream::TokenServer, format!("{at}: {why}"));
        let json: TokenJson = serde_json::from_slice(&reply.body)
            .map_err(|_| bad("the token answer is not the expected JSON"))?;
        if let Some(alg) = &json.hashalg {
            if alg != "sha256" {
                return Err(bad("unsupported hashalg"));
            }
        }
        // id and key go into a quoted Hawk attribute and a HMAC key.
        let header_safe = |s: &str| {
            !s.is_empty()
                && s.len() <= 4096
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        };
        if !header_safe(&json.id) || !header_safe(&json.key) {
            return Err(bad(
                "token id or key has characters a Hawk header can't carry",
            ));
        }
        let endpoint = json.api_endpoint.trim_end_matches('/').to_owned();
        let target =
            Endpoint::parse(&endpoint).map_err(|_| bad("api_endpoint is not an http(s) URL"))?;
        // The node's origin only: the rest of the endpoint is the user's (`/1.5/<uid>`).
        if target.in_clear() && !self.allow_insecure {
            return Err(bad(&format!(
                "api_endpoint {} is plain http:// to a non-loopback host; refusing to send credentials in clear (set allow_insecure_upstream = true to allow)",
                target.origin()
            )));
        }
        Ok(Token {
            credentials: Credentials {
                id: json.id,
                key: json.key,
                endpoint,
            },
            duration: json
                .duration
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map(|d| d as u64),
        })
    }

    /// Whether the Token Server is healthy, as `__heartbeat__` reports it: the result of a
    /// check at most a second old, one check at a time (see [`super::heartbeat`]).
    pub fn heartbeat(&self) -> bool {
        debug_assert!(
            crate::upstream::on_worker_thread(),
            "a Token Server heartbeat off a worker thread"
        );
        // A check ends within its timeout; waiting a second more covers the rest of the call.
        let wait = self.heartbeat_timeout + Duration::from_secs(1);
        self.beat
            .get(&Instant::now, wait, || self.check_heartbeat())
    }

    /// `GET …/__heartbeat__` within the heartbeat timeout: true on 2xx.
    fn check_heartbeat(&self) -> bool {
        let Ok(rq) = http::Request::builder()
            .method("GET")
            .uri(&self.heartbeat_url)
            .body(())
        else {
            return false;
        };
        let rq = self
            .agent
            .configure_request(rq)
            .timeout_global(Some(self.heartbeat_timeout))
            .build();
        match self.agent.run(rq) {
            Ok(resp) => resp.status().is_success(),
            Err(e) => {
                log::warn!(
                    "heartbeat: {}",
                    Error::transport(Upstream::TokenServer, &self.heartbeat_at, &e)
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> TokenServer {
        let agent = ureq::Agent::config_builder().build().new_agent();
        // Port 9 (discard): nothing is expected to answer, and nothing is reached.
        TokenServer::new(
            agent,
            "http://127.0.0.1:9/",
            Duration::from_millis(100),
            true,
            Metrics::disabled(),
        )
    }

    /// The guard that keeps upstream calls on workers: a request classified as answered on
    /// its connection's thread that still reaches the Token Server fails in debug builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "off a worker thread")]
    fn a_token_server_call_off_a_worker_is_a_bug() {
        let _ = client().fetch("Bearer t", ("X-KeyID", "k"), 3600, "test");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "off a worker thread")]
    fn a_heartbeat_off_a_worker_is_a_bug() {
        client().heartbeat();
    }
}
