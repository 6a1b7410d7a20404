//! Settings: one validated [`Config`] from an INI file, `SYNCTO_*` environment variables and
//! the command line (later wins), or built-in defaults when there is no file.
//!
//! The INI reader is hand-written rather than a crate so that an original Python Syncto
//! `.ini` (paste-deploy style, read by Python's configparser) loads unchanged, and so that
//! every bad value is a start-up error naming the file, the line, the key and what was
//! expected. Only `[app:main]` and `[server:main]` are read. Cliquet settings that mean
//! nothing here are warned about, never fatal. The `cache_hmac_secret` value never appears
//! in a message, a warning, [`Config::summary`] or `Debug` output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Args;
use crate::listen::Listen;
use crate::logging::LogFormat;
use crate::secret::Secret;
use crate::startup::StartupError;

mod derived;
mod ini;
mod net;
mod settings;
mod table;

pub use derived::settings_list;
pub(crate) use net::canonical_ip;
pub use net::{ForwardedHeader, IpNet, TrustedProxies};

/// Read when neither `--config` nor `SYNCTO_INI` names a file, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/syncto/syncto.ini";

/// Which writes are allowed on one collection. Both default to off: nothing is written to
/// Firefox Sync unless the operator asked for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSwitch {
    /// `record_<collection>_put_enabled`
    pub put: bool,
    /// `record_<collection>_delete_enabled`
    pub delete: bool,
}

/// End of service (`eos`): from this moment on every request but the health checks is
/// answered 410; before it every response carries a `soft-eol` Alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eos {
    /// The date as written in the settings (shown in `GET /v1/`).
    pub date: String,
    /// The same moment in seconds since the Unix epoch (UTC).
    pub at: u64,
}

/// The validated settings. Each field names its INI key; defaults, ranges and what each
/// setting does are in the settings table (`config/table.rs`), the one place they are
/// written (`Config::default` is derived from it).
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server:main]` `host`/`port`, or `unix_socket` (or `--bind`).
    pub listen: Listen,
    /// `[server:main]` `unix_socket_mode`; `None`: the process umask decides.
    pub unix_socket_mode: Option<u32>,
    /// `workers`.
    pub workers: usize,
    /// `max_connections`; `None`: worked out from the open-files limit at start.
    pub max_connections: Option<usize>,
    /// `max_workers_per_user`; `None`: half the workers, at least 1 (see
    /// [`Config::max_workers_per_user`]).
    pub max_workers_per_user: Option<usize>,
    /// `request_head_timeout_seconds`.
    pub request_head_timeout: Duration,
    /// `request_body_timeout_seconds`.
    pub request_body_timeout: Duration,
    /// `keepalive_timeout_seconds`.
    pub keepalive_timeout: Duration,
    /// `response_timeout_seconds`.
    pub response_timeout: Duration,
    /// `response_min_bytes_per_second`.
    pub response_min_bytes_per_second: u64,
    /// `max_unsent_bytes`.
    pub max_unsent_bytes: usize,
    /// `queue_timeout_milliseconds`.
    pub queue_timeout: Duration,
    /// `cache_hmac_secret` as UTF-8 bytes; `None` → the server draws a random per-process secret.
    pub cache_hmac_secret: Option<Secret>,
    /// `cache_credentials_ttl_seconds`.
    pub cache_credentials_ttl: Duration,
    /// `cache_max_entries`.
    pub cache_max_entries: usize,
    /// `token_server_url`.
    pub token_server_url: String,
    /// `token_refusals_per_minute`: Token Server refusals one client address may cause in
    /// a minute; 0: no limit.
    pub token_refusals_per_minute: u32,
    /// `token_server_heartbeat_timeout_seconds`.
    pub token_server_heartbeat_timeout: Duration,
    /// `upstream_timeout_seconds`.
    pub upstream_timeout: Duration,
    /// `upstream_connect_timeout_seconds`.
    pub upstream_connect_timeout: Duration,
    /// `certificate_ca_bundle`, made absolute.
    pub certificate_ca_bundle: Option<PathBuf>,
    /// `certificate_pins`.
    pub certificate_pins: Vec<[u8; 32]>,
    /// `allow_insecure_upstream`.
    pub allow_insecure_upstream: bool,
    /// `project_name`.
    pub project_name: String,
    /// `project_docs`.
    pub project_docs: String,
    /// `http_scheme`, lower-cased.
    pub http_scheme: Option<String>,
    /// `http_host`.
    pub http_host: Option<String>,
    /// `retry_after_seconds`: a header value, written in whole seconds.
    pub retry_after_seconds: u32,
    /// `backoff`: a header value, written in whole seconds.
    pub backoff: Option<u32>,
    /// `batch_max_requests`.
    pub batch_max_requests: usize,
    /// `batch_timeout_seconds`.
    pub batch_timeout: Duration,
    /// `batch_collapse`: consecutive record writes of a batch go to Sync as multi-record
    /// calls.
    pub batch_collapse: bool,
    /// `paginate_by`.
    pub paginate_by: u64,
    /// `max_body_bytes`.
    pub max_body_bytes: usize,
    /// `write_conflict_budget_ms` (zero: conflicts go to the client at once).
    pub write_conflict_budget: Duration,
    /// `cors_origins`.
    pub cors_origins: Vec<String>,
    /// `cors_max_age_seconds`: a header value, written in whole seconds.
    pub cors_max_age_seconds: u32,
    /// `record_<collection>_{put,delete}_enabled`, keyed by the lower-cased collection.
    pub write_switches: BTreeMap<String, WriteSwitch>,
    /// `statsd_url = udp://host:port`, stored as `host:port`.
    pub statsd_url: Option<String>,
    /// `statsd_prefix`.
    pub statsd_prefix: String,
    /// `logging_renderer` (`…MozillaHekaRenderer` → JSON) or `log_format`; `--log-format` wins.
    pub log_format: LogFormat,
    /// `log_level`.
    pub log_level: log::LevelFilter,
    /// `eos`.
    pub eos: Option<Eos>,
    /// `eos_message`; `None` is `null` in the Alert.
    pub eos_message: Option<String>,
    /// `eos_url`; `None`: `project_docs` is used.
    pub eos_url: Option<String>,
    /// `trusted_proxies` and `trusted_proxies_header`.
    pub trusted_proxies: TrustedProxies,
    /// `log_user_ids = hashed`: the user's bucket in a logged path is its `users` tag.
    pub log_user_ids_hashed: bool,
    /// The file that was loaded; `None` = built-in defaults.
    pub source: Option<PathBuf>,
    /// Start-up warnings to log once the logger is up; never contain a setting's value.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        derived::defaults()
    }
}

/// The `SYNCTO_*` variables of the process, read once, as the `env` argument of
/// [`Config::load`] expects. A value that is not UTF-8 is an error naming the variable (never
/// the value: it may be the secret).
pub fn process_env() -> Result<Vec<(String, String)>, StartupError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| {
            StartupError::new(format!(
                "environment variable {name}: the value is not valid UTF-8"
            ))
        })?;
        vars.push((name, value));
    }
    Ok(vars)
}

/// The prefix of the environment variables that are settings.
pub(crate) const ENV_PREFIX: &str = "SYNCTO_";

impl Config {
    /// File search order: `args.config`; else env `SYNCTO_INI`; else
    /// [`DEFAULT_CONFIG_PATH`] if it exists; else built-in defaults. Then `SYNCTO_*`
    /// overrides, then `--bind` and `--log-format`. `env` holds the `SYNCTO_*` variables.
    pub fn load(args: &Args, env: &[(&str, &str)]) -> Result<Config, StartupError> {
        let path = args
            .config
            .clone()
            .or_else(|| {
                env.iter()
                    .find(|(name, _)| *name == "SYNCTO_INI")
                    .filter(|(_, path)| !path.is_empty())
                    .map(|(_, path)| PathBuf::from(path))
            })
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()));
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    StartupError::new(format!(
                        "cannot read configuration file {}: {e}",
                        path.display()
                    ))
                })?;
                Config::from_ini(&text, &path, env)?
            }
            None => settings::read("", "<built-in defaults>", None, env)?,
        };
        if let Some(bind) = &args.bind {
            config.listen = bind.clone();
        }
        if let Some(format) = args.log_format {
            config.log_format = format;
        }
        Ok(config)
    }

    /// Parses INI text (`origin` names it in messages and becomes [`Config::source`]) and
    /// applies the `SYNCTO_*` variables of `env` (name, value) over it.
    pub fn from_ini(
        text: &str,
        origin: &Path,
        env: &[(&str, &str)],
    ) -> Result<Config, StartupError> {
        settings::read(
            text,
            &origin.display().to_string(),
            Some(origin.to_path_buf()),
            env,
        )
    }

    /// Workers one user may hold at once: `max_workers_per_user`, or half the workers (at
    /// least 1); never more than `workers`.
    pub fn max_workers_per_user(&self) -> usize {
        self.max_workers_per_user
            .unwrap_or(self.workers / 2)
            .clamp(1, self.workers.max(1))
    }

    /// Whether `record_<collection>_put_enabled` is on. ASCII-only lower-casing, so that no
    /// Unicode case folding (e.g. KELVIN SIGN → `k`) can reach a configured collection.
    pub fn put_enabled(&self, collection: &str) -> bool {
        self.write_switches
            .get(&collection.to_ascii_lowercase())
            .is_some_and(|w| w.put)
    }

    /// Whether `record_<collection>_delete_enabled` is on (case-insensitive like `put_enabled`).
    pub fn delete_enabled(&self, collection: &str) -> bool {
        self.write_switches
            .get(&collection.to_ascii_lowercase())
            .is_some_and(|w| w.delete)
    }

    /// One-paragraph summary for `--check-config`. Never includes `cache_hmac_secret`.
    pub fn summary(&self) -> String {
        let source = match &self.source {
            Some(path) => format!("Configuration from {}", path.display()),
            None => "Built-in defaults (no configuration file)".to_string(),
        };
        let secret = if self.cache_hmac_secret.is_some() {
            "configured"
        } else {
            "random per-process"
        };
        let writes: Vec<String> = self
            .write_switches
            .iter()
            .filter(|(_, w)| w.put || w.delete)
            .map(|(name, w)| match (w.put, w.delete) {
                (true, true) => format!("{name} (put, delete)"),
                (true, false) => format!("{name} (put)"),
                _ => format!("{name} (delete)"),
            })
            .collect();
        let writes = if writes.is_empty() {
            "writes disabled for every collection".to_string()
        } else {
            format!("writes enabled: {}", writes.join(", "))
        };
        let mut tls = match &self.certificate_ca_bundle {
            Some(path) => format!("TLS trusts only the CA bundle {}", path.display()),
            None => "TLS trusts the built-in Mozilla roots".to_string(),
        };
        if !self.certificate_pins.is_empty() {
            tls.push_str(&format!(
                " with {} SPKI pin(s)",
                self.certificate_pins.len()
            ));
        }
        if self.allow_insecure_upstream {
            tls.push_str(", plain http:// upstream allowed");
        }
        let statsd = match &self.statsd_url {
            Some(addr) => format!("statsd to {addr} with prefix {}", self.statsd_prefix),
            None => "no statsd".to_string(),
        };
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "JSON",
        };
        let connections = match self.max_connections {
            Some(n) => format!("at most {n} connections"),
            None => "connections bounded by the open-files limit".to_string(),
        };
        let mut out = format!(
            "{source}: listening on {} with {} workers, {connections} (request \
             head {} s, body {} s, keep-alive {} s, response {} s or {} bytes/s, answers held \
             for slow clients at most {} bytes; a request waits at most {} ms \
             for a worker, one user holds at most {} of them); token server {} (connect timeout {} s, \
             call deadline {} s); credentials cached in process for up to {} s, at most {} \
             entries, {secret} secret; {writes}; {tls}; {statsd}; {format} logs at level {}",
            self.listen,
            self.workers,
            self.request_head_timeout.as_secs(),
            self.request_body_timeout.as_secs(),
            self.keepalive_timeout.as_secs(),
            self.response_timeout.as_secs(),
            self.response_min_bytes_per_second,
            self.max_unsent_bytes,
            self.queue_timeout.as_millis(),
            self.max_workers_per_user(),
            self.token_server_url,
            self.upstream_connect_timeout.as_secs(),
            self.upstream_timeout.as_secs(),
            self.cache_credentials_ttl.as_secs(),
            self.cache_max_entries,
            self.log_level.as_str().to_ascii_lowercase(),
        );
        if let (Listen::Unix(_), Some(mode)) = (&self.listen, self.unix_socket_mode) {
            out.push_str(&format!("; socket mode {mode:04o}"));
        }
        if !self.trusted_proxies.is_empty() {
            out.push_str(&format!(
                "; client addresses from the {} header of {}",
                self.trusted_proxies.header.name(),
                self.trusted_proxies
            ));
        }
        if self.log_user_ids_hashed {
            out.push_str("; user ids in logged paths hashed");
        }
        if let Some(eos) = &self.eos {
            out.push_str(&format!("; end of service on {}", eos.date));
        }
        if !self.warnings.is_empty() {
            out.push_str(&format!("; {} warning(s)", self.warnings.len()));
        }
        out.push('.');
        out
    }
}

#[cfg(test)]
mod documented;
#[cfg(test)]
mod tests;
