//! The settings: which keys exist, how each value is checked and applied, the environment
//! overlay, and the checks across settings, from INI text to one [`Config`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;

use super::ini::{Raw, Whence, read_ini, unquote};
use super::{Config, Eos, TrustedProxies, date, net};
use crate::endpoint::{Endpoint, is_authority};
use crate::listen::{Listen, valid_host};
use crate::logging::LogFormat;
use crate::secret::Secret;
use crate::startup::StartupError;

/// One `[app:main]` setting: its key, what an empty value means, and how a value is checked
/// and stored. Adding a setting is a field of [`Config`], its default, and one entry here.
pub(super) struct Setting {
    /// The key, without its `syncto.` or `cliquet.` prefix.
    pub(super) name: &'static str,
    /// What an empty value does instead of `store`: the setting is optional and becomes
    /// unset (Syncto's ini files sometimes carry `http_scheme =` with nothing after it).
    /// `None`: an empty value is checked like any other.
    unset: Option<fn(&mut Config)>,
    /// Checks the value and stores it.
    store: fn(&mut Config, &Raw) -> Result<(), StartupError>,
}

impl Setting {
    /// Applies one value; the empty-value rule is here and nowhere else.
    fn apply(&self, c: &mut Config, raw: &Raw) -> Result<(), StartupError> {
        match self.unset {
            Some(unset) if raw.value.is_empty() => {
                unset(c);
                Ok(())
            }
            _ => (self.store)(c, raw),
        }
    }
}

/// A setting whose every value, the empty one included, is checked.
const fn required(
    name: &'static str,
    store: fn(&mut Config, &Raw) -> Result<(), StartupError>,
) -> Setting {
    Setting {
        name,
        unset: None,
        store,
    }
}

/// A setting that an empty value unsets.
const fn optional(
    name: &'static str,
    unset: fn(&mut Config),
    store: fn(&mut Config, &Raw) -> Result<(), StartupError>,
) -> Setting {
    Setting {
        name,
        unset: Some(unset),
        store,
    }
}

/// The setting named `name` (without prefix), if there is one.
pub(super) fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Every `[app:main]` setting that has an effect, in the order they are applied
/// (`logging_renderer` before `log_format`, so the explicit `log_format` wins). The write
/// switches `record_<collection>_{put,delete}_enabled` are not here: their names vary.
pub(super) const SETTINGS: &[Setting] = &[
    required("workers", |c, r| {
        c.workers = r.number(1, 1024, "a whole number of worker threads")? as usize;
        Ok(())
    }),
    optional(
        "max_connections",
        |c| c.max_connections = None,
        |c, r| {
            c.max_connections =
                Some(r.number(1, 1_000_000, "a whole number of connections")? as usize);
            Ok(())
        },
    ),
    required("request_head_timeout_seconds", |c, r| {
        c.request_head_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("request_body_timeout_seconds", |c, r| {
        c.request_body_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("keepalive_timeout_seconds", |c, r| {
        c.keepalive_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("response_timeout_seconds", |c, r| {
        c.response_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("queue_timeout_milliseconds", |c, r| {
        c.queue_timeout_milliseconds = r.number(10, 600_000, "a whole number of milliseconds")?;
        Ok(())
    }),
    // Never echo this value: nothing in it can be wrong but its absence, which unsets it.
    optional(
        "cache_hmac_secret",
        |c| c.cache_hmac_secret = None,
        |c, r| {
            c.cache_hmac_secret = Some(Secret::new(r.value.as_bytes()));
            Ok(())
        },
    ),
    required("cache_credentials_ttl_seconds", |c, r| {
        c.cache_credentials_ttl_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    // Capped because the LRU allocates its table up front.
    required("cache_max_entries", |c, r| {
        c.cache_max_entries = r.number(1, 10_000_000, "a whole number of entries")? as usize;
        Ok(())
    }),
    // Never echo this value: a URL may hold a password.
    required("token_server_url", |c, r| {
        if let Err(why) = Endpoint::parse(&r.value) {
            return Err(StartupError::new(format!(
                "{}: invalid value for `{}`: expected an http:// or https:// URL with a host \
                 and no user name, password, query or fragment, but {why}",
                r.whence, r.key
            )));
        }
        c.token_server_url = r.value.clone();
        Ok(())
    }),
    required("token_server_heartbeat_timeout_seconds", |c, r| {
        c.token_server_heartbeat_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("upstream_timeout_seconds", |c, r| {
        c.upstream_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("upstream_connect_timeout_seconds", |c, r| {
        c.upstream_connect_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    optional(
        "certificate_ca_bundle",
        |c| c.certificate_ca_bundle = None,
        |c, r| {
            c.certificate_ca_bundle = Some(ca_bundle(r)?);
            Ok(())
        },
    ),
    optional(
        "certificate_pins",
        |c| c.certificate_pins.clear(),
        |c, r| {
            c.certificate_pins = pins(r)?;
            Ok(())
        },
    ),
    required("allow_insecure_upstream", |c, r| {
        c.allow_insecure_upstream = r.boolean()?;
        Ok(())
    }),
    required("project_name", |c, r| {
        let v = r.value.as_str();
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(r.invalid("a non-empty name without spaces"));
        }
        c.project_name = v.to_string();
        Ok(())
    }),
    required("project_docs", |c, r| {
        if r.value.is_empty() {
            return Err(r.invalid("a URL"));
        }
        c.project_docs = r.value.clone();
        Ok(())
    }),
    optional(
        "http_scheme",
        |c| c.http_scheme = None,
        |c, r| match r.value.to_ascii_lowercase().as_str() {
            scheme @ ("http" | "https") => {
                c.http_scheme = Some(scheme.to_string());
                Ok(())
            }
            _ => Err(r.invalid("http or https")),
        },
    ),
    optional(
        "http_host",
        |c| c.http_host = None,
        |c, r| {
            if !is_authority(&r.value) {
                return Err(r.invalid("a host name or address with an optional :port"));
            }
            c.http_host = Some(r.value.clone());
            Ok(())
        },
    ),
    required("retry_after_seconds", |c, r| {
        c.retry_after_seconds = r.seconds(0, u32::MAX.into())? as u32;
        Ok(())
    }),
    optional(
        "backoff",
        |c| c.backoff = None,
        |c, r| {
            c.backoff = Some(r.seconds(0, u32::MAX.into())? as u32);
            Ok(())
        },
    ),
    required("batch_max_requests", |c, r| {
        c.batch_max_requests = r.number(1, 1000, "a whole number of requests")? as usize;
        Ok(())
    }),
    required("batch_timeout_seconds", |c, r| {
        c.batch_timeout_seconds = r.seconds(1, MAX_SECONDS)?;
        Ok(())
    }),
    required("paginate_by", |c, r| {
        c.paginate_by = r.number(1, 10_000, "a whole number of records")?;
        Ok(())
    }),
    required("max_body_bytes", |c, r| {
        c.max_body_bytes = r.number(1024, 64 * 1024 * 1024, "a number of bytes")? as usize;
        Ok(())
    }),
    required("write_conflict_budget_ms", |c, r| {
        c.write_conflict_budget_ms = r.number(0, 60_000, "a whole number of milliseconds")?;
        Ok(())
    }),
    required("cors_origins", |c, r| {
        c.cors_origins = r.list();
        Ok(())
    }),
    required("cors_max_age_seconds", |c, r| {
        c.cors_max_age_seconds = r.seconds(0, u32::MAX.into())? as u32;
        Ok(())
    }),
    optional(
        "statsd_url",
        |c| c.statsd_url = None,
        |c, r| {
            let addr = r
                .value
                .strip_prefix("udp://")
                .map(|a| a.strip_suffix('/').unwrap_or(a));
            let valid = addr.is_some_and(|a| {
                matches!(a.parse(), Ok(Listen::Tcp(_)))
                    && a.rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0))
            });
            match addr {
                Some(addr) if valid => {
                    c.statsd_url = Some(addr.to_string());
                    Ok(())
                }
                _ => Err(r.invalid("udp://HOST:PORT")),
            }
        },
    ),
    required("statsd_prefix", |c, r| {
        let v = r.value.as_str();
        if v.is_empty() || v.contains(|c: char| c.is_whitespace() || ":|@".contains(c)) {
            return Err(r.invalid("a non-empty metric prefix without spaces, ':', '|' or '@'"));
        }
        c.statsd_prefix = v.to_string();
        Ok(())
    }),
    required("logging_renderer", |c, r| {
        c.log_format = if r.value.ends_with("MozillaHekaRenderer") {
            LogFormat::Json
        } else if r.value.ends_with("ClassicLogRenderer") {
            LogFormat::Text
        } else {
            return Err(
                r.invalid("cliquet.logs.ClassicLogRenderer or cliquet.logs.MozillaHekaRenderer")
            );
        };
        Ok(())
    }),
    required("log_format", |c, r| {
        c.log_format = LogFormat::from_name(&r.value).ok_or_else(|| r.invalid("text or json"))?;
        Ok(())
    }),
    required("log_level", |c, r| {
        c.log_level = match r.value.to_ascii_lowercase().as_str() {
            "trace" => log::LevelFilter::Trace,
            "debug" => log::LevelFilter::Debug,
            "info" => log::LevelFilter::Info,
            "warning" | "warn" => log::LevelFilter::Warn,
            "error" | "critical" => log::LevelFilter::Error,
            _ => return Err(r.invalid("debug, info, warning, error or critical")),
        };
        Ok(())
    }),
    optional(
        "eos",
        |c| c.eos = None,
        |c, r| {
            let at = date::parse_utc(&r.value).ok_or_else(|| {
                r.invalid(
                    "a date YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] with an optional Z or ±HH:MM \
                     (UTC when no offset is given)",
                )
            })?;
            c.eos = Some(Eos {
                date: r.value.clone(),
                at,
            });
            Ok(())
        },
    ),
    optional(
        "eos_message",
        |c| c.eos_message = None,
        |c, r| {
            c.eos_message = Some(r.value.clone());
            Ok(())
        },
    ),
    optional(
        "eos_url",
        |c| c.eos_url = None,
        |c, r| {
            c.eos_url = Some(r.value.clone());
            Ok(())
        },
    ),
    optional(
        "trusted_proxies",
        |c| c.trusted_proxies = TrustedProxies::default(),
        |c, r| {
            c.trusted_proxies = TrustedProxies::parse(&r.list()).map_err(|item| {
                StartupError::new(format!(
                    "{}: invalid value for `{}`: expected IP addresses, CIDR networks \
                     (10.0.0.0/8) or `unix`, got {item:?}",
                    r.whence, r.key
                ))
            })?;
            Ok(())
        },
    ),
];

/// `certificate_ca_bundle`: the absolute path of a readable, non-empty file.
fn ca_bundle(raw: &Raw) -> Result<PathBuf, StartupError> {
    let cwd = std::env::current_dir().map_err(|e| {
        StartupError::new(format!("{}: cannot resolve `{}`: {e}", raw.whence, raw.key))
    })?;
    let path = cwd.join(&raw.value);
    let problem = match std::fs::metadata(&path) {
        Err(_) => Some("cannot be found".to_string()),
        Ok(meta) if !meta.is_file() => Some("is not a regular file".to_string()),
        Ok(meta) if meta.len() == 0 => Some("is empty".to_string()),
        Ok(_) => std::fs::File::open(&path)
            .err()
            .map(|e| format!("cannot be read: {e}")),
    };
    match problem {
        Some(problem) => Err(StartupError::new(format!(
            "{}: `{}`: file {} {problem}",
            raw.whence,
            raw.key,
            path.display()
        ))),
        None => Ok(path),
    }
}

/// `certificate_pins`: base64 SHA-256 hashes, each optionally prefixed with `sha256/`.
fn pins(raw: &Raw) -> Result<Vec<[u8; 32]>, StartupError> {
    let mut pins = Vec::new();
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
        pins.push(hash);
    }
    Ok(pins)
}

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
pub(super) fn read(
    text: &str,
    file: &str,
    source: Option<PathBuf>,
    env: &[(&str, &str)],
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
        } else if setting(name).is_some() || write_switch(name).is_some() {
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

    // The environment: each `SYNCTO_*` variable is a setting, a write switch or a
    // `[server:main]` key, and wins over the file; any other is named in a warning.
    for &(var, value) in env {
        let Some(rest) = var.strip_prefix(super::ENV_PREFIX) else {
            continue;
        };
        if var == "SYNCTO_INI" {
            continue;
        }
        let name = rest.to_ascii_lowercase();
        let raw = |key: &str| Raw {
            key: key.to_string(),
            value: unquote(value).to_string(),
            whence: Whence::Env(var.to_string()),
        };
        if SERVER_SETTINGS.contains(&name.as_str()) {
            server.insert(name.clone(), raw(&name));
        } else if setting(&name).is_some() {
            app.insert(name.clone(), raw(&name));
        } else if write_switch(&name).is_some() {
            // The variable sets the collection the file spells with `-` or `.` where the
            // variable has `_` (`record_custom-1_put_enabled`); one the file does not name
            // is spelled as in the variable, lower-cased.
            let named: Vec<String> = app
                .keys()
                .filter(|k| write_switch(k).is_some() && env_name(k) == var)
                .cloned()
                .collect();
            if named.is_empty() {
                app.insert(name.clone(), raw(&name));
            }
            for key in named {
                app.insert(key.clone(), raw(&key));
            }
        } else if let Some(why) = cliquet_only(&name) {
            config.warnings.push(format!(
                "environment variable {var}: a cliquet setting with no effect here ({why})"
            ));
        } else {
            config.warnings.push(format!(
                "environment variable {var}: unknown setting, ignored"
            ));
        }
    }

    for setting in SETTINGS {
        if let Some(raw) = app.get(setting.name) {
            setting.apply(&mut config, raw)?;
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
    if Endpoint::parse(&config.token_server_url).is_ok_and(|e| e.in_clear()) {
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
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid value for every setting, different from its default.
    const SAMPLES: &[(&str, &str)] = &[
        ("workers", "1"),
        ("max_connections", "1"),
        ("request_head_timeout_seconds", "1"),
        ("request_body_timeout_seconds", "1"),
        ("keepalive_timeout_seconds", "1"),
        ("response_timeout_seconds", "1"),
        ("queue_timeout_milliseconds", "10"),
        ("cache_hmac_secret", "s"),
        ("cache_credentials_ttl_seconds", "1"),
        ("cache_max_entries", "1"),
        ("token_server_url", "https://token.example/"),
        ("token_server_heartbeat_timeout_seconds", "1"),
        ("upstream_timeout_seconds", "1"),
        ("upstream_connect_timeout_seconds", "1"),
        ("certificate_ca_bundle", "Cargo.toml"),
        (
            "certificate_pins",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        ("allow_insecure_upstream", "true"),
        ("project_name", "demo"),
        ("project_docs", "https://docs.example/"),
        ("http_scheme", "https"),
        ("http_host", "h.example"),
        ("retry_after_seconds", "1"),
        ("backoff", "1"),
        ("batch_max_requests", "1"),
        ("batch_timeout_seconds", "1"),
        ("paginate_by", "1"),
        ("max_body_bytes", "1024"),
        ("write_conflict_budget_ms", "0"),
        ("cors_origins", "https://a.example"),
        ("cors_max_age_seconds", "1"),
        ("statsd_url", "udp://127.0.0.1:8125"),
        ("statsd_prefix", "s"),
        ("logging_renderer", "cliquet.logs.MozillaHekaRenderer"),
        ("log_format", "json"),
        ("log_level", "debug"),
        ("eos", "2030-01-01"),
        ("eos_message", "bye"),
        ("eos_url", "https://example.org/moved"),
        ("trusted_proxies", "127.0.0.1"),
    ];

    fn read_with(text: &str, env: &[(&str, &str)]) -> Config {
        read(text, "test.ini", None, env).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_setting_is_read_from_the_file_and_the_environment() {
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        let sampled: Vec<&str> = SAMPLES.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names, sampled,
            "one sample per setting, in the table's order"
        );
        let default = format!("{:?}", read_with("", &[]));
        for (name, value) in SAMPLES {
            let from_file = read_with(&format!("[app:main]\n{name} = {value}\n"), &[]);
            assert!(
                from_file.warnings.iter().all(|w| !w.contains("unknown")),
                "{name}: {:?}",
                from_file.warnings
            );
            let from_file = format!("{from_file:?}");
            assert_ne!(from_file, default, "{name} = {value} changed nothing");
            let var = env_name(name);
            let from_env = format!("{:?}", read_with("", &[(&var, value)]));
            // Only `source` and the warnings' origins may differ.
            let strip = |s: &str| s.split(", source:").next().unwrap_or(s).to_string();
            assert_eq!(strip(&from_env), strip(&from_file), "{var}");
        }
    }
}
