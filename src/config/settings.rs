//! The settings: which keys exist, how each value is checked and applied, the environment
//! overlay, and the checks across settings, from INI text to one [`Config`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;

use super::ini::{Raw, Whence, read_ini, unquote};
use super::{Config, Eos, TrustedProxies, date, is_authority, is_loopback_host, net};
use crate::listen::{Listen, valid_host};
use crate::logging::LogFormat;
use crate::startup::StartupError;

/// Sync collections whose write switches can be set from the environment even when the file
/// never names them (an environment cannot be enumerated through a lookup function).
pub(super) const STANDARD_COLLECTIONS: &[&str] = &[
    "bookmarks",
    "history",
    "tabs",
    "passwords",
    "forms",
    "prefs",
    "addons",
    "clients",
    "crypto",
    "meta",
    "addresses",
    "creditcards",
];

/// Every `[app:main]` setting that has an effect, in the order they are applied
/// (`logging_renderer` before `log_format`, so the explicit `log_format` wins).
const SETTINGS: &[&str] = &[
    "workers",
    "max_connections",
    "request_head_timeout_seconds",
    "request_body_timeout_seconds",
    "keepalive_timeout_seconds",
    "response_timeout_seconds",
    "queue_timeout_milliseconds",
    "cache_hmac_secret",
    "cache_credentials_ttl_seconds",
    "cache_max_entries",
    "token_server_url",
    "token_server_heartbeat_timeout_seconds",
    "upstream_timeout_seconds",
    "upstream_connect_timeout_seconds",
    "certificate_ca_bundle",
    "certificate_pins",
    "allow_insecure_upstream",
    "project_name",
    "project_docs",
    "http_scheme",
    "http_host",
    "retry_after_seconds",
    "backoff",
    "batch_max_requests",
    "batch_timeout_seconds",
    "paginate_by",
    "max_body_bytes",
    "write_conflict_budget_ms",
    "cors_origins",
    "cors_max_age_seconds",
    "statsd_url",
    "statsd_prefix",
    "logging_renderer",
    "log_format",
    "log_level",
    "eos",
    "eos_message",
    "eos_url",
    "trusted_proxies",
];

/// `[server:main]` keys that are read; the others (waitress's `threads`...) are ignored.
/// `unix_socket_perms` is waitress's name for `unix_socket_mode`.
const SERVER_SETTINGS: &[&str] = &["host", "port", "unix_socket", "unix_socket_mode"];

/// Upper bound of every timeout and TTL: large enough for anything sensible, small enough
/// that `Instant + Duration` can never overflow.
const MAX_SECONDS: u64 = 86_400;

/// `record_<collection>_{put,delete}_enabled` → (collection, is_put); the collection is
/// lower-cased but not yet validated.
fn write_switch(name: &str) -> Option<(String, bool)> {
    let rest = name.strip_prefix("record_")?;
    if let Some(c) = rest.strip_suffix("_put_enabled") {
        Some((c.to_ascii_lowercase(), true))
    } else {
        rest.strip_suffix("_delete_enabled")
            .map(|c| (c.to_ascii_lowercase(), false))
    }
}

/// Why a cliquet setting has no effect here, or None when it is not one.
fn cliquet_only(name: &str) -> Option<&'static str> {
    Some(match name {
        "cache_backend"
        | "cache_url"
        | "cache_pool_size"
        | "cache_prefix"
        | "cache_max_size_bytes" => "credentials are cached in process",
        n if n.starts_with("storage_") || n.starts_with("permission_") => {
            "Firefox Sync is the only storage"
        }
        n if n == "userid_hmac_secret" || n.starts_with("multiauth.") => {
            "authentication is the Token Server's"
        }
        "newrelic_config"
        | "newrelic_env"
        | "profiler_enabled"
        | "profiler_dir"
        | "version_prefix_redirect_enabled"
        | "trailing_slash_redirect_enabled"
        | "error_info_link"
        | "readonly"
        | "http_api_version"
        | "project_version"
        | "includeme" => "not supported by this server",
        n if n.starts_with("pyramid.") => "there is no Pyramid here",
        _ => return None,
    })
}

/// `SYNCTO_<KEY>`: upper-cased, `.` and `-` → `_`.
fn env_name(setting: &str) -> String {
    format!(
        "SYNCTO_{}",
        setting.to_ascii_uppercase().replace(['.', '-'], "_")
    )
}

/// Inserts a file value, refusing the same setting twice with different values (values are
/// not shown: one of them may be the secret).
fn insert(map: &mut BTreeMap<String, Raw>, name: String, raw: Raw) -> Result<(), StartupError> {
    if let Some(old) = map.get(&name).filter(|old| old.value != raw.value) {
        let line = |w: &Whence| if let Whence::Line(_, n) = w { *n } else { 0 };
        return Err(StartupError::new(format!(
            "{}: `{name}` is set twice with different values (lines {} and {}); keep one",
            raw.whence,
            line(&old.whence),
            line(&raw.whence)
        )));
    }
    map.insert(name, raw);
    Ok(())
}

/// INI text → raw settings → environment overlay → typed, cross-checked [`Config`].
pub(super) fn build(
    text: &str,
    file: &str,
    source: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, StartupError> {
    let ini = read_ini(text, file)?;
    let mut config = Config {
        source,
        ..Config::default()
    };
    let mut app: BTreeMap<String, Raw> = BTreeMap::new();
    for (key, value, line) in &ini.app {
        let name = key
            .strip_prefix("syncto.")
            .or_else(|| key.strip_prefix("cliquet."))
            .unwrap_or(key);
        let whence = Whence::Line(file.to_string(), *line);
        if name == "use" {
            continue;
        } else if let Some(why) = cliquet_only(name) {
            config.warnings.push(format!(
                "{whence}: `{key}` is a cliquet setting with no effect here ({why})"
            ));
        } else if SETTINGS.contains(&name) || write_switch(name).is_some() {
            let raw = Raw {
                key: key.clone(),
                value: unquote(value).to_string(),
                whence,
            };
            insert(&mut app, name.to_string(), raw)?;
        } else {
            config
                .warnings
                .push(format!("{whence}: `{key}`: unknown setting, ignored"));
        }
    }
    let mut server: BTreeMap<String, Raw> = BTreeMap::new();
    for (key, value, line) in &ini.server {
        let name = if key == "unix_socket_perms" {
            "unix_socket_mode"
        } else {
            key.as_str()
        };
        if !SERVER_SETTINGS.contains(&name) {
            continue;
        }
        let raw = Raw {
            key: key.clone(),
            value: unquote(value).to_string(),
            whence: Whence::Line(file.to_string(), *line),
        };
        insert(&mut server, name.to_string(), raw)?;
    }

    // Environment overlay: every known name, and write switches of every collection we know of.
    let mut names: Vec<String> = SETTINGS.iter().map(|s| s.to_string()).collect();
    let mut collections: Vec<String> = STANDARD_COLLECTIONS.iter().map(|s| s.to_string()).collect();
    collections.extend(app.keys().filter_map(|k| write_switch(k)).map(|(c, _)| c));
    for c in &collections {
        names.push(format!("record_{c}_put_enabled"));
        names.push(format!("record_{c}_delete_enabled"));
    }
    let overlay = |map: &mut BTreeMap<String, Raw>, name: &str| {
        let var = env_name(name);
        if let Some(value) = env(&var) {
            let raw = Raw {
                key: name.to_string(),
                value: unquote(&value).to_string(),
                whence: Whence::Env(var),
            };
            map.insert(name.to_string(), raw);
        }
    };
    names.iter().for_each(|name| overlay(&mut app, name));
    for name in SERVER_SETTINGS {
        overlay(&mut server, name);
    }

    for &name in SETTINGS {
        if let Some(raw) = app.get(name) {
            apply(&mut config, name, raw)?;
        }
    }
    for (name, raw) in &app {
        if let Some((collection, put)) = write_switch(name) {
            let valid = (1..=32).contains(&collection.len())
                && collection
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !valid {
                return Err(StartupError::new(format!(
                    "{}: invalid setting name `{}`: the collection must be 1 to 32 characters among a-z 0-9 . _ -",
                    raw.whence, raw.key
                )));
            }
            let on = raw.boolean()?;
            let switch = config.write_switches.entry(collection).or_default();
            if put {
                switch.put = on
            } else {
                switch.delete = on
            }
        }
    }
    if !app.contains_key("statsd_prefix") {
        config.statsd_prefix = config.project_name.clone();
    }

    // Listen address from [server:main] (or its env overrides).
    let host = match server.get("host") {
        Some(raw) if valid_host(&raw.value) => raw.value.clone(),
        Some(raw) => return Err(raw.invalid("a host name or IP address without spaces or '/'")),
        None => "127.0.0.1".to_string(),
    };
    let port = match server.get("port") {
        Some(raw) => raw.number(0, 65_535, "a port number")?,
        None => 8000,
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    config.listen = Listen::Tcp(format!("{host}:{port}"));
    if let Some(raw) = server.get("unix_socket").filter(|r| !r.value.is_empty()) {
        if !raw.value.starts_with('/') {
            return Err(raw.invalid("an absolute path"));
        }
        config.listen = Listen::Unix(PathBuf::from(&raw.value));
        if let Some(tcp) = server.get("host").or_else(|| server.get("port")) {
            config.warnings.push(format!(
                "{}: `{}` is ignored: unix_socket is set",
                tcp.whence, tcp.key
            ));
        }
    }
    if let Some(raw) = server
        .get("unix_socket_mode")
        .filter(|r| !r.value.is_empty())
    {
        let mode = net::parse_mode(&raw.value)
            .ok_or_else(|| raw.invalid("octal permission bits such as 0660"))?;
        config.unix_socket_mode = Some(mode);
    }
    for name in ["eos_message", "eos_url"] {
        if let (Some(raw), None) = (app.get(name), &config.eos) {
            config.warnings.push(format!(
                "{}: `{}` has no effect without `eos`",
                raw.whence, raw.key
            ));
        }
    }

    // Plain http:// to anything but loopback would send bearer tokens and Hawk keys in clear.
    if let Some(rest) = config.token_server_url.strip_prefix("http://") {
        if !url_host(rest).is_some_and(is_loopback_host) {
            let whence = app
                .get("token_server_url")
                .map(|r| format!("{}: ", r.whence))
                .unwrap_or_default();
            if !config.allow_insecure_upstream {
                return Err(StartupError::new(format!(
                    "{whence}token_server_url uses plain http:// to a non-loopback host; bearer tokens would \
                     travel in clear. Use https:// or set allow_insecure_upstream = true."
                )));
            }
            config.warnings.push(format!(
                "{whence}token_server_url uses plain http:// to a non-loopback host (allow_insecure_upstream is set)"
            ));
        }
    }
    Ok(config)
}

/// The host of `rest`, a URL after its `scheme://`: the authority up to `/`, `?` or `#`,
/// without userinfo and port. None when the authority is malformed (empty host, bad port).
fn url_host(rest: &str) -> Option<&str> {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let end = match hostport.strip_prefix('[') {
        Some(v6) => v6.find(']')? + 2,
        None => hostport.find(':').unwrap_or(hostport.len()),
    };
    let (host, port) = hostport.split_at(end);
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    (!host.is_empty() && host != "[]" && port_ok).then_some(host)
}

/// Converts and validates one `[app:main]` setting into `config`.
fn apply(c: &mut Config, name: &str, raw: &Raw) -> Result<(), StartupError> {
    let v = raw.value.as_str();
    // An empty value of an optional setting means "unset", as Syncto's
    // ini files sometimes carry `http_scheme =` with nothing after it.
    if v.is_empty() {
        match name {
            "cache_hmac_secret" => c.cache_hmac_secret = None,
            "max_connections" => c.max_connections = None,
            "certificate_ca_bundle" => c.certificate_ca_bundle = None,
            "certificate_pins" => c.certificate_pins.clear(),
            "http_scheme" => c.http_scheme = None,
            "http_host" => c.http_host = None,
            "backoff" => c.backoff = None,
            "statsd_url" => c.statsd_url = None,
            "eos" => c.eos = None,
            "eos_message" => c.eos_message = None,
            "eos_url" => c.eos_url = None,
            "trusted_proxies" => c.trusted_proxies = TrustedProxies::default(),
            _ => return apply_value(c, name, raw),
        }
        return Ok(());
    }
    apply_value(c, name, raw)
}

fn apply_value(c: &mut Config, name: &str, raw: &Raw) -> Result<(), StartupError> {
    let v = raw.value.as_str();
    match name {
        "workers" => c.workers = raw.number(1, 1024, "a whole number of worker threads")? as usize,
        "max_connections" => {
            c.max_connections =
                Some(raw.number(1, 1_000_000, "a whole number of connections")? as usize);
        }
        "request_head_timeout_seconds" => {
            c.request_head_timeout_seconds = raw.seconds(1, MAX_SECONDS)?
        }
        "request_body_timeout_seconds" => {
            c.request_body_timeout_seconds = raw.seconds(1, MAX_SECONDS)?
        }
        "keepalive_timeout_seconds" => c.keepalive_timeout_seconds = raw.seconds(1, MAX_SECONDS)?,
        "response_timeout_seconds" => c.response_timeout_seconds = raw.seconds(1, MAX_SECONDS)?,
        "queue_timeout_milliseconds" => {
            c.queue_timeout_milliseconds =
                raw.number(10, 600_000, "a whole number of milliseconds")?
        }
        "cache_hmac_secret" => {
            // Never echo this value: a bad secret is reported by shape only.
            if v.is_empty() {
                return Err(StartupError::new(format!(
                    "{}: invalid value for `{}`: expected a non-empty secret, got an empty value",
                    raw.whence, raw.key
                )));
            }
            c.cache_hmac_secret = Some(v.as_bytes().to_vec());
        }
        "cache_credentials_ttl_seconds" => {
            c.cache_credentials_ttl_seconds = raw.seconds(1, MAX_SECONDS)?
        }
        "cache_max_entries" => {
            // Capped because the LRU allocates its table up front.
            c.cache_max_entries = raw.number(1, 10_000_000, "a whole number of entries")? as usize;
        }
        "token_server_url" => {
            let rest = v
                .strip_prefix("https://")
                .or_else(|| v.strip_prefix("http://"));
            let ok =
                rest.is_some_and(|r| url_host(r).is_some()) && !v.contains(char::is_whitespace);
            if !ok {
                return Err(raw.invalid("an http:// or https:// URL with a host"));
            }
            c.token_server_url = v.to_string();
        }
        "token_server_heartbeat_timeout_seconds" => {
            c.token_server_heartbeat_timeout_seconds = raw.seconds(1, MAX_SECONDS)?;
        }
        "upstream_timeout_seconds" => c.upstream_timeout_seconds = raw.seconds(1, MAX_SECONDS)?,
        "upstream_connect_timeout_seconds" => {
            c.upstream_connect_timeout_seconds = raw.seconds(1, MAX_SECONDS)?
        }
        "certificate_ca_bundle" => {
            if v.is_empty() {
                return Err(raw.invalid("the path of a PEM file of CA certificates"));
            }
            let cwd = std::env::current_dir().map_err(|e| {
                StartupError::new(format!("{}: cannot resolve `{}`: {e}", raw.whence, raw.key))
            })?;
            let path = cwd.join(v);
            let problem = match std::fs::metadata(&path) {
                Err(_) => Some("cannot be found".to_string()),
                Ok(meta) if !meta.is_file() => Some("is not a regular file".to_string()),
                Ok(meta) if meta.len() == 0 => Some("is empty".to_string()),
                Ok(_) => std::fs::File::open(&path)
                    .err()
                    .map(|e| format!("cannot be read: {e}")),
            };
            if let Some(problem) = problem {
                return Err(StartupError::new(format!(
                    "{}: `{}`: file {} {problem}",
                    raw.whence,
                    raw.key,
                    path.display()
                )));
            }
            c.certificate_ca_bundle = Some(path);
        }
        "certificate_pins" => {
            c.certificate_pins.clear();
            for pin in raw.list() {
                let b64 = pin.strip_prefix("sha256/").unwrap_or(&pin);
                let hash = (b64.len() == 44)
                    .then(|| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                    .flatten()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
                let Some(hash) = hash else {
                    return Err(StartupError::new(format!(
                        "{}: invalid value for `{}`: expected base64 SHA-256 SPKI hashes (44 characters, \
                         optionally prefixed with sha256/), got {pin:?}",
                        raw.whence, raw.key
                    )));
                };
                c.certificate_pins.push(hash);
            }
        }
        "allow_insecure_upstream" => c.allow_insecure_upstream = raw.boolean()?,
        "project_name" if v.is_empty() || v.contains(char::is_whitespace) => {
            return Err(raw.invalid("a non-empty name without spaces"));
        }
        "project_name" => c.project_name = v.to_string(),
        "project_docs" if v.is_empty() => return Err(raw.invalid("a URL")),
        "project_docs" => c.project_docs = v.to_string(),
        "http_scheme" => match v.to_ascii_lowercase().as_str() {
            scheme @ ("http" | "https") => c.http_scheme = Some(scheme.to_string()),
            _ => return Err(raw.invalid("http or https")),
        },
        "http_host" if !is_authority(v) => {
            return Err(raw.invalid("a host name or address with an optional :port"));
        }
        "http_host" => c.http_host = Some(v.to_string()),
        "retry_after_seconds" => {
            c.retry_after_seconds = raw.seconds(0, u32::MAX.into())? as u32;
        }
        "backoff" if v.is_empty() => c.backoff = None,
        "backoff" => c.backoff = Some(raw.seconds(0, u32::MAX.into())? as u32),
        "write_conflict_budget_ms" => {
            c.write_conflict_budget_ms = raw.number(0, 60_000, "a whole number of milliseconds")?;
        }
        "batch_max_requests" => {
            c.batch_max_requests = raw.number(1, 1000, "a whole number of requests")? as usize;
        }
        "batch_timeout_seconds" => c.batch_timeout_seconds = raw.seconds(1, MAX_SECONDS)?,
        "paginate_by" => c.paginate_by = raw.number(1, 10_000, "a whole number of records")?,
        "max_body_bytes" => {
            c.max_body_bytes = raw.number(1024, 64 * 1024 * 1024, "a number of bytes")? as usize
        }
        "cors_origins" => c.cors_origins = raw.list(),
        "cors_max_age_seconds" => c.cors_max_age_seconds = raw.seconds(0, u32::MAX.into())? as u32,
        "statsd_url" if v.is_empty() => c.statsd_url = None,
        "statsd_url" => {
            let addr = v
                .strip_prefix("udp://")
                .map(|a| a.strip_suffix('/').unwrap_or(a));
            let valid = addr.is_some_and(|a| {
                matches!(a.parse(), Ok(Listen::Tcp(_)))
                    && a.rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0))
            });
            match addr {
                Some(addr) if valid => c.statsd_url = Some(addr.to_string()),
                _ => return Err(raw.invalid("udp://HOST:PORT")),
            }
        }
        "statsd_prefix"
            if v.is_empty() || v.contains(|c: char| c.is_whitespace() || ":|@".contains(c)) =>
        {
            return Err(raw.invalid("a non-empty metric prefix without spaces, ':', '|' or '@'"));
        }
        "statsd_prefix" => c.statsd_prefix = v.to_string(),
        "logging_renderer" if v.ends_with("MozillaHekaRenderer") => c.log_format = LogFormat::Json,
        "logging_renderer" if v.ends_with("ClassicLogRenderer") => c.log_format = LogFormat::Text,
        "logging_renderer" => {
            return Err(
                raw.invalid("cliquet.logs.ClassicLogRenderer or cliquet.logs.MozillaHekaRenderer")
            );
        }
        "log_format" => {
            c.log_format = LogFormat::from_name(v).ok_or_else(|| raw.invalid("text or json"))?
        }
        "log_level" => {
            c.log_level = match v.to_ascii_lowercase().as_str() {
                "trace" => log::LevelFilter::Trace,
                "debug" => log::LevelFilter::Debug,
                "info" => log::LevelFilter::Info,
                "warning" | "warn" => log::LevelFilter::Warn,
                "error" | "critical" => log::LevelFilter::Error,
                _ => return Err(raw.invalid("debug, info, warning, error or critical")),
            }
        }
        "eos" => {
            let at = date::parse_utc(v).ok_or_else(|| {
                raw.invalid(
                    "a date YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] with an optional Z or ±HH:MM \
                     (UTC when no offset is given)",
                )
            })?;
            c.eos = Some(Eos {
                date: v.to_string(),
                at,
            });
        }
        "eos_message" => c.eos_message = Some(v.to_string()),
        "eos_url" => c.eos_url = Some(v.to_string()),
        "trusted_proxies" => {
            c.trusted_proxies = TrustedProxies::parse(&raw.list()).map_err(|item| {
                StartupError::new(format!(
                    "{}: invalid value for `{}`: expected IP addresses, CIDR networks \
                     (10.0.0.0/8) or `unix`, got {item:?}",
                    raw.whence, raw.key
                ))
            })?;
        }
        _ => {}
    }
    Ok(())
}
