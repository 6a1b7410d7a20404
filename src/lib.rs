//! Syncto: Firefox Sync records served through the Kinto HTTP protocol.
//!
//! A Kinto client (kinto-http.js, Kinto.js, kinto-http.py) talks to this
//! server; it trades the client's OAuth token (or legacy BrowserID
//! assertion) at the Token Server for Hawk credentials and calls the user's
//! Sync 1.5 storage node. Records stay end-to-end encrypted: the server
//! never sees the keys.
//!
//! [`start`] runs the whole server in-process (the binary and the tests
//! use it).

#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod endpoint;
pub mod forwarded;
pub mod http;
pub mod kinto;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod resolve;
pub mod secret;
pub mod server;
pub mod startup;
pub mod sync;
pub mod systemd;
pub mod tls;

use config::Config;
use startup::StartupError;
use std::sync::Arc;
use std::time::Duration;

/// The server's version, as shown in hello and sent upstream.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Build the shared state from a validated configuration and start
/// listening.
pub fn start(config: Config) -> Result<server::Running, StartupError> {
    let app = build(config)?;
    server::start(Arc::new(app))
}

/// The shared state without a listener (also what `--check-config` builds,
/// so that TLS material is validated too).
pub fn build(config: Config) -> Result<kinto::App, StartupError> {
    let metrics = match &config.statsd_url {
        Some(addr) => metrics::Metrics::udp(addr, &config.statsd_prefix)
            .map_err(|e| StartupError::new(format!("statsd_url: {addr}: {e}")))?,
        None => metrics::Metrics::disabled(),
    };
    let tls = tls::client_config(
        config.certificate_ca_bundle.as_deref(),
        &config.certificate_pins,
    )
    .map_err(StartupError::new)?;
    let agent = tls::agent(
        tls,
        Duration::from_secs(config.upstream_connect_timeout_seconds),
        Duration::from_secs(config.upstream_timeout_seconds),
        config.workers.max(4),
    );
    let secret = match &config.cache_hmac_secret {
        Some(s) => s.expose().to_vec(),
        None => {
            let mut s = vec![0u8; 32];
            getrandom::getrandom(&mut s).map_err(|e| {
                StartupError::new(format!("no randomness for the cache secret: {e}"))
            })?;
            s
        }
    };
    let cache = credentials::Cache::new(
        secret,
        Duration::from_secs(config.cache_credentials_ttl_seconds),
        config.cache_max_entries,
    );
    let tokens = sync::tokenserver::TokenServer::new(
        agent.clone(),
        &config.token_server_url,
        Duration::from_secs(config.token_server_heartbeat_timeout_seconds),
        config.allow_insecure_upstream,
        metrics.clone(),
    );
    let storage = sync::storage::Storage::new(
        agent,
        metrics.clone(),
        Duration::from_millis(config.write_conflict_budget_ms),
    );
    Ok(kinto::App {
        config,
        cache,
        tokens,
        storage,
        metrics,
    })
}
