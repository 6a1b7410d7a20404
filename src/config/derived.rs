//! What is derived from the settings table rather than written again: the configuration
//! with every setting at its default ([`Config::default`]) and `syncto --list-settings`.

use std::time::Duration;

use super::ini::Raw;
use super::table::{DefaultValue, SETTINGS, Section};
use super::{Config, TrustedProxies};
use crate::listen::Listen;
use crate::logging::LogFormat;

use DefaultValue::{Computed, Unset, Value};

/// `syncto --list-settings`: one block per setting (section and key, default, range, what
/// it does), from the table itself.
pub fn settings_list() -> String {
    let mut out = String::new();
    for s in SETTINGS {
        let default = match s.default {
            Value(v) => format!("default {v}"),
            Unset => "default unset".to_string(),
            Computed(how) => format!("default {how}"),
        };
        let range = s
            .range()
            .map(|(min, max)| format!(", {min}-{max}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {}\n    {default}{range}\n    {}\n",
            s.section.header(),
            s.name,
            s.doc
        ));
    }
    out.push_str(
        "[app:main] record_<collection>_put_enabled, record_<collection>_delete_enabled\n    \
         default false\n    Allow PUT (or DELETE) of that collection's records through Syncto.\n",
    );
    out
}

/// `workers` when unset: twice the CPUs available to the process, at least 2, at most 1024.
pub(crate) fn default_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_mul(2).clamp(2, 1024)
}

/// The configuration with no file and no environment: every setting at its default.
pub(crate) fn defaults() -> Config {
    let mut c = Config {
        listen: Listen::Tcp(String::new()),
        unix_socket_mode: None,
        workers: default_workers(),
        max_connections: None,
        max_workers_per_user: None,
        request_head_timeout: Duration::ZERO,
        request_body_timeout: Duration::ZERO,
        keepalive_timeout: Duration::ZERO,
        response_timeout: Duration::ZERO,
        response_min_bytes_per_second: 0,
        max_unsent_bytes: 0,
        queue_timeout: Duration::ZERO,
        cache_hmac_secret: None,
        cache_credentials_ttl: Duration::ZERO,
        cache_max_entries: 0,
        token_server_url: String::new(),
        token_refusals_per_minute: 0,
        token_server_heartbeat_timeout: Duration::ZERO,
        upstream_timeout: Duration::ZERO,
        upstream_connect_timeout: Duration::ZERO,
        certificate_ca_bundle: None,
        certificate_pins: Vec::new(),
        allow_insecure_upstream: false,
        project_name: String::new(),
        project_docs: String::new(),
        http_scheme: None,
        http_host: None,
        retry_after_seconds: 0,
        backoff: None,
        batch_max_requests: 0,
        batch_timeout: Duration::ZERO,
        batch_collapse: false,
        paginate_by: 0,
        max_body_bytes: 0,
        write_conflict_budget: Duration::ZERO,
        cors_origins: Vec::new(),
        cors_max_age_seconds: 0,
        write_switches: std::collections::BTreeMap::new(),
        statsd_url: None,
        statsd_prefix: String::new(),
        log_format: LogFormat::Text,
        log_level: log::LevelFilter::Info,
        eos: None,
        eos_message: None,
        eos_url: None,
        trusted_proxies: TrustedProxies::default(),
        log_user_ids_hashed: false,
        source: None,
        warnings: Vec::new(),
    };
    for s in SETTINGS {
        if let (Value(value), Section::App) = (s.default, s.section) {
            let raw = Raw::builtin(s.name, value);
            if let Err(e) = s.apply(&mut c, &raw) {
                // The table's own defaults are checked by a test; this cannot happen in a
                // build that passed it.
                unreachable!("default of {}: {e}", s.name);
            }
        }
    }
    c.statsd_prefix = c.project_name.clone();
    c.listen = Listen::Tcp("127.0.0.1:8000".into());
    c
}
