//! Reading the settings, step by step: the two sections to raw values (naming keys in the
//! wrong section and sections that look like a misspelt one), the environment overlay, the
//! table applied, the write switches, the `[server:main]` listen address, and the checks
//! across settings. What each key means and accepts is in the table ([`super::table`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ini::{Ini, Raw, Whence, read_ini, unquote};
use super::table::{SETTINGS, Section, setting};
use super::{Config, net};
use crate::endpoint::Endpoint;
use crate::listen::{Listen, valid_host};
use crate::startup::StartupError;

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
fn insert(map: &mut Values, name: String, raw: Raw) -> Result<(), StartupError> {
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
    let (mut app, mut server) = sections(&ini, file, &mut config.warnings)?;
    unread_sections(&ini, file, &mut config.warnings);
    overlay_env(env, &mut app, &mut server, &mut config.warnings);
    for setting in SETTINGS.iter().filter(|s| s.section == Section::App) {
        if let Some(raw) = app.get(setting.name) {
            setting.apply(&mut config, raw)?;
        }
    }
    if !app.contains_key("statsd_prefix") {
        config.statsd_prefix = config.project_name.clone();
    }
    apply_write_switches(&app, &mut config)?;
    apply_listen(&server, &mut config)?;
    cross_check(&app, &mut config)?;
    Ok(config)
}

/// Raw values by setting name, from one section, the environment or both.
type Values = BTreeMap<String, Raw>;

/// `[app:main]` and `[server:main]` to raw values. Cliquet settings, unknown keys and keys
/// that belong in the other section are warnings, never errors: an old Syncto file loads.
fn sections(
    ini: &Ini,
    file: &str,
    warnings: &mut Vec<String>,
) -> Result<(Values, Values), StartupError> {
    let mut app = Values::new();
    for (key, value, line) in &ini.app {
        let name = unprefixed(key);
        let whence = Whence::Line(file.to_string(), *line);
        if name == "use" {
            continue;
        } else if let Some(why) = cliquet_only(name) {
            warnings.push(format!(
                "{whence}: `{key}` is a cliquet setting with no effect here ({why})"
            ));
        } else if let Some(s) = setting(name).filter(|s| s.section == Section::Server) {
            warnings.push(wrong_section(&whence, key, s.section, Section::App));
        } else if setting(name).is_some() || write_switch(name).is_some() {
            let raw = Raw {
                key: key.clone(),
                value: unquote(value).to_string(),
                whence,
            };
            insert(&mut app, name.to_string(), raw)?;
        } else {
            warnings.push(format!("{whence}: `{key}`: unknown setting, ignored"));
        }
    }
    let mut server = Values::new();
    for (key, value, line) in &ini.server {
        let whence = Whence::Line(file.to_string(), *line);
        // waitress's name for the socket's mode
        let name = if key == "unix_socket_perms" {
            "unix_socket_mode"
        } else {
            unprefixed(key)
        };
        match setting(name) {
            Some(s) if s.section == Section::Server => {
                let raw = Raw {
                    key: key.clone(),
                    value: unquote(value).to_string(),
                    whence,
                };
                insert(&mut server, name.to_string(), raw)?;
            }
            Some(s) => warnings.push(wrong_section(&whence, key, s.section, Section::Server)),
            // The server's own keys (waitress's `threads`, `use`...) mean nothing here.
            None if write_switch(name).is_some() => {
                warnings.push(wrong_section(&whence, key, Section::App, Section::Server))
            }
            None => {}
        }
    }
    Ok((app, server))
}

/// A key without its `syncto.` or `cliquet.` prefix.
fn unprefixed(key: &str) -> &str {
    key.strip_prefix("syncto.")
        .or_else(|| key.strip_prefix("cliquet."))
        .unwrap_or(key)
}

/// The warning for a key found in the section it does not belong in.
fn wrong_section(whence: &Whence, key: &str, belongs: Section, found: Section) -> String {
    format!(
        "{whence}: `{key}` belongs in {}, not {}: wrong section, ignored",
        belongs.header(),
        found.header()
    )
}

/// Sections other than the two that are read: one whose name is close to `[app:main]` or
/// `[server:main]` is a likely misspelling, and one that holds a Syncto setting (and is not
/// one of the sections an old Syncto file has for uwsgi, Python logging or paste-deploy) is
/// a misplaced setting. Both are named in a warning; the rest is quietly ignored.
fn unread_sections(ini: &Ini, file: &str, warnings: &mut Vec<String>) {
    for other in &ini.others {
        let name = other.name.trim();
        let lower = name.to_ascii_lowercase();
        let near = [Section::App, Section::Server].into_iter().find(|s| {
            let wanted = s.header().trim_matches(['[', ']']);
            edit_distance(&lower, wanted) <= 2
        });
        if let Some(section) = near {
            warnings.push(format!(
                "{file}:{}: section [{name}] is not read (did you mean {}?): its {} key(s) are ignored",
                other.line,
                section.header(),
                other.keys.len()
            ));
            continue;
        }
        let foreign = ["uwsgi", "loggers", "handlers", "formatters"].contains(&lower.as_str())
            || [
                "logger_",
                "handler_",
                "formatter_",
                "app:",
                "server:",
                "pipeline:",
                "filter:",
                "composite:",
            ]
            .iter()
            .any(|p| lower.starts_with(p));
        if foreign {
            continue;
        }
        let misplaced = other.keys.iter().find(|(key, _)| {
            let key = unprefixed(key);
            setting(key).is_some() || write_switch(key).is_some()
        });
        if let Some((key, line)) = misplaced {
            warnings.push(format!(
                "{file}:{line}: `{key}` is in section [{name}], which is not read: \
                 Syncto reads [app:main] and [server:main]; ignored"
            ));
        }
    }
}

/// Levenshtein distance between two short ASCII names (section names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The environment: each `SYNCTO_*` variable is a setting, a write switch or a
/// `[server:main]` key, and wins over the file; any other is named in a warning.
fn overlay_env(
    env: &[(&str, &str)],
    app: &mut Values,
    server: &mut Values,
    warnings: &mut Vec<String>,
) {
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
        if let Some(s) = setting(&name) {
            let values = match s.section {
                Section::App => &mut *app,
                Section::Server => &mut *server,
            };
            values.insert(name.clone(), raw(&name));
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
            warnings.push(format!(
                "environment variable {var}: a cliquet setting with no effect here ({why})"
            ));
        } else {
            warnings.push(format!(
                "environment variable {var}: unknown setting, ignored"
            ));
        }
    }
}

/// `record_<collection>_{put,delete}_enabled`: the collection's name is checked, the value
/// is a boolean.
fn apply_write_switches(app: &Values, config: &mut Config) -> Result<(), StartupError> {
    for (name, raw) in app {
        let Some((collection, put)) = write_switch(name) else {
            continue;
        };
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
    Ok(())
}

/// The listen address from `[server:main]` (or its environment overrides): `unix_socket`
/// when set, else `host` and `port`.
fn apply_listen(server: &Values, config: &mut Config) -> Result<(), StartupError> {
    let host = match server.get("host") {
        Some(raw) if valid_host(&raw.value) => raw.value.clone(),
        Some(raw) => return Err(raw.invalid("a host name or IP address without spaces or '/'")),
        None => "127.0.0.1".to_string(),
    };
    let port = match server.get("port") {
        Some(raw) => {
            let (min, max) = setting("port")
                .and_then(|s| s.range())
                .unwrap_or((0, 65_535));
            raw.number(min, max, "a port number")?
        }
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
    Ok(())
}

/// Checks across settings: what has no effect without another, and plain http:// to a
/// Token Server that is not on loopback.
fn cross_check(app: &Values, config: &mut Config) -> Result<(), StartupError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid value for every setting, different from its default.
    const SAMPLES: &[(&str, &str)] = &[
        ("workers", "1"),
        ("max_connections", "1"),
        ("max_workers_per_user", "1"),
        ("request_head_timeout_seconds", "1"),
        ("request_body_timeout_seconds", "1"),
        ("keepalive_timeout_seconds", "1"),
        ("response_timeout_seconds", "1"),
        ("response_min_bytes_per_second", "1"),
        ("max_unsent_bytes", "1"),
        ("queue_timeout_milliseconds", "10"),
        ("cache_hmac_secret", "s"),
        ("cache_credentials_ttl_seconds", "1"),
        ("cache_max_entries", "1"),
        ("token_server_url", "https://token.example/"),
        ("token_refusals_per_minute", "0"),
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
        ("batch_collapse", "false"),
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
        ("log_user_ids", "hashed"),
        ("trusted_proxies_header", "forwarded"),
    ];

    fn read_with(text: &str, env: &[(&str, &str)]) -> Config {
        read(text, "test.ini", None, env).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_setting_is_read_from_the_file_and_the_environment() {
        let names: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.section == Section::App)
            .map(|s| s.name)
            .collect();
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
