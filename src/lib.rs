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

pub mod app;
pub(crate) mod auth;
pub(crate) mod buffers;
pub mod cli;
pub(crate) mod concurrency;
pub mod config;
pub(crate) mod credentials;
pub(crate) mod endpoint;
pub(crate) mod forwarded;
pub mod kinto;
pub mod listen;
pub mod logging;
pub mod message;
pub(crate) mod metrics;
pub mod secret;
pub mod server;
pub mod startup;
pub mod sync15;
pub mod systemd;
pub(crate) mod time;
pub mod time_limits;
pub(crate) mod token_budget;
pub(crate) mod upstream;

use app::App;
use config::Config;
use startup::StartupError;
use std::sync::Arc;

/// The server's version, as shown in hello and sent upstream.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Build the shared state from a validated configuration and start
/// listening; the state is returned too, for tests that look at the cache.
pub fn start(config: Config) -> Result<(server::Running, Arc<App>), StartupError> {
    let settings = server::ListenerSettings::from_config(&config);
    let app = Arc::new(build(config)?);
    let running = server::start(settings, Arc::clone(&app) as Arc<dyn server::Service>)?;
    Ok((running, app))
}

/// The shared state without a listener (also what `--check-config` builds,
/// so that TLS material is validated too).
pub fn build(config: Config) -> Result<App, StartupError> {
    if let Some(warning) = kinto::eos::passed(&config, std::time::SystemTime::now()) {
        log::warn!("{warning}");
    }
    App::new(config)
}
