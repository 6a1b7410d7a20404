//! The settings table: every key Syncto reads, with its section, default, range, one-line doc
//! and how a value is checked and stored. It is the one source of truth for a setting:
//! [`Config::default`] and `--list-settings` are derived from it (`derived.rs`), the reader
//! applies it, and a test holds `man/syncto.ini.5` and `etc/syncto.ini` to it (every key, in
//! its section, with its default and range). Adding a setting is a field of [`Config`] and one entry here.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use super::ini::Raw;
use super::{Config, Eos, ForwardedHeader, TrustedProxies};
use crate::endpoint::{Endpoint, is_authority};
use crate::listen::Listen;
use crate::logging::LogFormat;
use crate::secret::Secret;
use crate::startup::StartupError;

/// The INI section a key belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// `[app:main]`: everything but the listen address. Keys may carry a `syncto.` or
    /// `cliquet.` prefix.
    App,
    /// `[server:main]`: the listen address, as paste-deploy's server section had it.
    Server,
}

impl Section {
    /// The section header as written in a file.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Section::App => "[app:main]",
            Section::Server => "[server:main]",
        }
    }
}

/// What a setting is when the operator does not set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    /// This value, written as in a file, and applied through the setting's own check.
    Value(&'static str),
    /// Unset (an empty value too): the feature is off or another setting stands in.
    Unset,
    /// Worked out at start from the machine or another setting (an empty value too), as the
    /// text says.
    Computed(&'static str),
}

/// The unit of a duration setting, which is also the unit its key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Milliseconds,
}

/// How a value is checked and stored.
pub(crate) enum Kind {
    /// A whole number in `min..=max`; `what` says what it counts, for messages.
    Number {
        min: u64,
        max: u64,
        what: &'static str,
        set: fn(&mut Config, u64),
    },
    /// A time limit, a whole number of `unit`s in `min..=max`.
    Duration {
        unit: Unit,
        min: u64,
        max: u64,
        set: fn(&mut Config, Duration),
    },
    /// Anything else, checked by its own function (which states what it accepts).
    Other(fn(&mut Config, &Raw) -> Result<(), StartupError>),
    /// A `[server:main]` key: checked and combined into the listen address by the reader
    /// (host, port and unix_socket decide together); `range` bounds a number.
    Listen { range: Option<(u64, u64)> },
}

/// One setting.
pub(crate) struct Setting {
    /// The key, without its `syncto.` or `cliquet.` prefix.
    pub(crate) name: &'static str,
    pub(crate) section: Section,
    pub(crate) default: DefaultValue,
    /// What an empty value does: `None` checks it like any other value; `Some(f)` applies
    /// `f`, the setting's "unset" (Syncto's files sometimes carry `http_scheme =` with
    /// nothing after it).
    pub(crate) unset: Option<fn(&mut Config)>,
    pub(crate) kind: Kind,
    /// One line saying what it does; the man page says the rest.
    pub(crate) doc: &'static str,
}

impl Setting {
    /// Applies one value; the empty-value rule is here and nowhere else.
    pub(crate) fn apply(&self, c: &mut Config, raw: &Raw) -> Result<(), StartupError> {
        if let (Some(unset), true) = (self.unset, raw.value.is_empty()) {
            unset(c);
            return Ok(());
        }
        match &self.kind {
            Kind::Number {
                min,
                max,
                what,
                set,
            } => set(c, raw.number(*min, *max, what)?),
            Kind::Duration {
                unit,
                min,
                max,
                set,
            } => set(c, duration(raw, *unit, *min, *max)?),
            Kind::Other(store) => store(c, raw)?,
            Kind::Listen { .. } => {}
        }
        Ok(())
    }

    /// The accepted range of a number or a duration, as the man page writes it.
    pub(crate) fn range(&self) -> Option<(u64, u64)> {
        match self.kind {
            Kind::Number { min, max, .. } | Kind::Duration { min, max, .. } => Some((min, max)),
            Kind::Listen { range } => range,
            Kind::Other(_) => None,
        }
    }
}

/// A duration value in `unit`s, within `min..=max`.
fn duration(raw: &Raw, unit: Unit, min: u64, max: u64) -> Result<Duration, StartupError> {
    Ok(match unit {
        Unit::Seconds => Duration::from_secs(raw.number(min, max, "a whole number of seconds")?),
        Unit::Milliseconds => {
            Duration::from_millis(raw.number(min, max, "a whole number of milliseconds")?)
        }
    })
}

/// The setting named `name` (without prefix), in either section.
pub(crate) fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Upper bound of every timeout and TTL: large enough for anything sensible, small enough
/// that `Instant + Duration` can never overflow.
pub(crate) const MAX_SECONDS: u64 = 86_400;

/// `[app:main]` entries.
macro_rules! app {
    ($name:literal, $default:expr, $doc:literal, $kind:expr) => {
        Setting {
            name: $name,
            section: Section::App,
            default: $default,
            unset: None,
            kind: $kind,
            doc: $doc,
        }
    };
    ($name:literal, $default:expr, $doc:literal, $kind:expr, unset: $unset:expr) => {
        Setting {
            name: $name,
            section: Section::App,
            default: $default,
            unset: Some($unset),
            kind: $kind,
            doc: $doc,
        }
    };
}

/// A time limit in seconds, 1..=[`MAX_SECONDS`].
const fn seconds(set: fn(&mut Config, Duration)) -> Kind {
    Kind::Duration {
        unit: Unit::Seconds,
        min: 1,
        max: MAX_SECONDS,
        set,
    }
}

/// A header value in whole seconds, 0..=u32::MAX.
const fn header_seconds(set: fn(&mut Config, u64)) -> Kind {
    Kind::Number {
        min: 0,
        max: u32::MAX as u64,
        what: "a whole number of seconds",
        set,
    }
}

use DefaultValue::{Computed, Unset, Value};

/// Every setting that has an effect, in the order they are applied (`logging_renderer`
/// before `log_format`, so the explicit `log_format` wins). The write switches
/// `record_<collection>_{put,delete}_enabled` are not here: their names vary.
pub(crate) const SETTINGS: &[Setting] = &[
    // [server:main]
    Setting {
        name: "host",
        section: Section::Server,
        default: Value("127.0.0.1"),
        unset: None,
        kind: Kind::Listen { range: None },
        doc: "Host name or IP address to listen on.",
    },
    Setting {
        name: "port",
        section: Section::Server,
        default: Value("8000"),
        unset: None,
        kind: Kind::Listen {
            range: Some((0, 65_535)),
        },
        doc: "TCP port to listen on (0: any free port).",
    },
    Setting {
        name: "unix_socket",
        section: Section::Server,
        default: Unset,
        unset: None,
        kind: Kind::Listen { range: None },
        doc: "Absolute path of a unix socket to listen on instead of host and port.",
    },
    Setting {
        name: "unix_socket_mode",
        section: Section::Server,
        default: Unset,
        unset: None,
        kind: Kind::Listen { range: None },
        doc: "Octal permission bits given to the unix socket right after it is bound.",
    },
    // [app:main]
    app!(
        "workers",
        Computed("twice the CPUs available, at least 2"),
        "Threads that make upstream calls at the same time.",
        Kind::Number {
            min: 1,
            max: 1024,
            what: "a whole number of worker threads",
            set: |c, n| c.workers = n as usize,
        },
        unset: |c| c.workers = super::derived::default_workers()
    ),
    app!(
        "max_connections",
        Computed(
            "the open-files limit minus 64 and 2 per worker, between 16 and 1024, \
             and no more than the task limit leaves threads for"
        ),
        "Client connections open at once.",
        Kind::Number {
            min: 1,
            max: 1_000_000,
            what: "a whole number of connections",
            set: |c, n| c.max_connections = Some(n as usize),
        },
        unset: |c| c.max_connections = None
    ),
    app!(
        "max_workers_per_user",
        Computed("half the workers, at least 1"),
        "Workers the requests of one user (an account, all its tokens) may hold at once.",
        Kind::Number {
            min: 1,
            max: 1024,
            what: "a whole number of worker threads",
            set: |c, n| c.max_workers_per_user = Some(n as usize),
        },
        unset: |c| c.max_workers_per_user = None
    ),
    app!(
        "request_head_timeout_seconds",
        Value("5"),
        "Time a client has to send a request line and its headers.",
        seconds(|c, d| c.request_head_timeout = d)
    ),
    app!(
        "request_body_timeout_seconds",
        Value("30"),
        "Time a client has to send a whole request body.",
        seconds(|c, d| c.request_body_timeout = d)
    ),
    app!(
        "keepalive_timeout_seconds",
        Value("20"),
        "Time a keep-alive connection may stay idle between two requests.",
        seconds(|c, d| c.keepalive_timeout = d)
    ),
    app!(
        "response_timeout_seconds",
        Value("30"),
        "Time a client has to take a response, or the next part of a large one.",
        seconds(|c, d| c.response_timeout = d)
    ),
    app!(
        "response_min_bytes_per_second",
        Value("8192"),
        "Rate at which a client taking a large response may go on past response_timeout_seconds.",
        Kind::Number {
            min: 0,
            max: 1 << 30,
            what: "a number of bytes per second",
            set: |c, n| c.response_min_bytes_per_second = n,
        }
    ),
    app!(
        "max_unsent_bytes",
        Value("33554432"),
        "Memory held, all together, by answers waiting for clients that take them slowly.",
        Kind::Number {
            min: 0,
            max: 1 << 40,
            what: "a number of bytes",
            set: |c, n| c.max_unsent_bytes = n as usize,
        }
    ),
    app!(
        "queue_timeout_milliseconds",
        Value("2000"),
        "Time a request that needs an upstream call may wait for a free worker.",
        Kind::Duration {
            unit: Unit::Milliseconds,
            min: 10,
            max: 600_000,
            set: |c, d| c.queue_timeout = d,
        }
    ),
    // Never echo this value: nothing in it can be wrong but its absence, which unsets it.
    app!(
        "cache_hmac_secret",
        Unset,
        "Secret keying the credentials cache and the statsd users set (random per process).",
        Kind::Other(|c, r| {
            c.cache_hmac_secret = Some(Secret::new(r.value.as_bytes()));
            Ok(())
        }),
        unset: |c| c.cache_hmac_secret = None
    ),
    app!(
        "cache_credentials_ttl_seconds",
        Value("300"),
        "How long a user's Token Server credentials are kept in the process.",
        seconds(|c, d| c.cache_credentials_ttl = d)
    ),
    // Capped because the LRU allocates its table up front.
    app!(
        "cache_max_entries",
        Value("10000"),
        "Most users whose credentials are cached at once.",
        Kind::Number {
            min: 1,
            max: 10_000_000,
            what: "a whole number of entries",
            set: |c, n| c.cache_max_entries = n as usize,
        }
    ),
    // Never echo this value: a URL may hold a password.
    app!(
        "token_server_url",
        Value("https://token.services.mozilla.com/"),
        "The Token Server that exchanges a client's credentials for its Sync node's.",
        Kind::Other(|c, r| {
            if let Err(why) = Endpoint::parse(&r.value) {
                return Err(StartupError::new(format!(
                    "{}: invalid value for `{}`: expected an http:// or https:// URL with a \
                     host and no user name, password, query or fragment, but {why}",
                    r.whence, r.key
                )));
            }
            c.token_server_url = r.value.clone();
            Ok(())
        })
    ),
    app!(
        "token_refusals_per_minute",
        Value("10"),
        "Token Server refusals one client address may cause in a minute (0: no limit).",
        Kind::Number {
            min: 0,
            max: 1_000_000,
            what: "a whole number of refusals",
            set: |c, n| c.token_refusals_per_minute = n as u32,
        }
    ),
    app!(
        "token_server_heartbeat_timeout_seconds",
        Value("5"),
        "Deadline of the Token Server check made by __heartbeat__.",
        seconds(|c, d| c.token_server_heartbeat_timeout = d)
    ),
    app!(
        "upstream_timeout_seconds",
        Value("30"),
        "Deadline of each Token Server or Sync call, from lookup to the last byte.",
        seconds(|c, d| c.upstream_timeout = d)
    ),
    app!(
        "upstream_connect_timeout_seconds",
        Value("5"),
        "Deadline of a connection to the Token Server or a Sync node.",
        seconds(|c, d| c.upstream_connect_timeout = d)
    ),
    app!(
        "certificate_ca_bundle",
        Unset,
        "PEM file of the CAs trusted upstream, instead of the built-in Mozilla roots.",
        Kind::Other(|c, r| {
            c.certificate_ca_bundle = Some(ca_bundle(r)?);
            Ok(())
        }),
        unset: |c| c.certificate_ca_bundle = None
    ),
    app!(
        "certificate_pins",
        Unset,
        "SHA-256 hashes of acceptable upstream SubjectPublicKeyInfos.",
        Kind::Other(|c, r| {
            c.certificate_pins = pins(r)?;
            Ok(())
        }),
        unset: |c| c.certificate_pins.clear()
    ),
    app!(
        "allow_insecure_upstream",
        Value("false"),
        "Allow plain http:// to a Token Server that is not on loopback.",
        Kind::Other(|c, r| {
            c.allow_insecure_upstream = r.boolean()?;
            Ok(())
        })
    ),
    app!(
        "project_name",
        Value("syncto"),
        "project_name of GET /v1/ and the default statsd prefix.",
        Kind::Other(|c, r| {
            let v = r.value.as_str();
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(r.invalid("a non-empty name without spaces"));
            }
            c.project_name = v.to_string();
            Ok(())
        })
    ),
    app!(
        "project_docs",
        Value("https://docs.kinto-storage.org/en/stable/api/"),
        "project_docs of GET /v1/, and the end-of-service Alert's default url.",
        Kind::Other(|c, r| {
            if r.value.is_empty() {
                return Err(r.invalid("a URL"));
            }
            c.project_docs = r.value.clone();
            Ok(())
        })
    ),
    app!(
        "http_scheme",
        Unset,
        "Scheme of the absolute URLs in answers, instead of the request's.",
        Kind::Other(|c, r| match r.value.to_ascii_lowercase().as_str() {
            scheme @ ("http" | "https") => {
                c.http_scheme = Some(scheme.to_string());
                Ok(())
            }
            _ => Err(r.invalid("http or https")),
        }),
        unset: |c| c.http_scheme = None
    ),
    app!(
        "http_host",
        Unset,
        "Host of the absolute URLs in answers, instead of the request's Host.",
        Kind::Other(|c, r| {
            if !is_authority(&r.value) {
                return Err(r.invalid("a host name or address with an optional :port"));
            }
            c.http_host = Some(r.value.clone());
            Ok(())
        }),
        unset: |c| c.http_host = None
    ),
    app!(
        "retry_after_seconds",
        Value("30"),
        "Retry-After of every 503.",
        header_seconds(|c, n| c.retry_after_seconds = n as u32)
    ),
    app!(
        "backoff",
        Unset,
        "Backoff header sent on every response, in seconds.",
        header_seconds(|c, n| c.backoff = Some(n as u32)),
        unset: |c| c.backoff = None
    ),
    app!(
        "batch_max_requests",
        Value("100"),
        "Most sub-requests in one POST /v1/batch.",
        Kind::Number {
            min: 1,
            max: 1000,
            what: "a whole number of requests",
            set: |c, n| c.batch_max_requests = n as usize,
        }
    ),
    app!(
        "batch_timeout_seconds",
        Value("30"),
        "Sub-requests of a batch not started this long after it began are answered 503.",
        seconds(|c, d| c.batch_timeout = d)
    ),
    app!(
        "batch_collapse",
        Value("true"),
        "Consecutive record writes of a batch to one collection go to Sync as multi-record calls.",
        Kind::Other(|c, r| {
            c.batch_collapse = r.boolean()?;
            Ok(())
        })
    ),
    app!(
        "paginate_by",
        Value("1000"),
        "Most records in one page of a list.",
        Kind::Number {
            min: 1,
            max: 10_000,
            what: "a whole number of records",
            set: |c, n| c.paginate_by = n,
        }
    ),
    app!(
        "max_body_bytes",
        Value("2097152"),
        "Largest accepted request body.",
        Kind::Number {
            min: 1024,
            max: 64 * 1024 * 1024,
            what: "a number of bytes",
            set: |c, n| c.max_body_bytes = n as usize,
        }
    ),
    app!(
        "write_conflict_budget_ms",
        Value("2000"),
        "How long one write may wait for, and repeat after, the storage node's conflicts.",
        Kind::Duration {
            unit: Unit::Milliseconds,
            min: 0,
            max: 60_000,
            set: |c, d| c.write_conflict_budget = d,
        }
    ),
    app!(
        "cors_origins",
        Value("*"),
        "Origins whose web pages may call Syncto (comma or space separated).",
        Kind::Other(|c, r| {
            c.cors_origins = r.list();
            Ok(())
        })
    ),
    app!(
        "cors_max_age_seconds",
        Value("3600"),
        "Access-Control-Max-Age of a CORS preflight's answer.",
        header_seconds(|c, n| c.cors_max_age_seconds = n as u32)
    ),
    app!(
        "statsd_url",
        Unset,
        "udp://HOST:PORT of a statsd server to send metrics to.",
        Kind::Other(|c, r| {
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
        }),
        unset: |c| c.statsd_url = None
    ),
    app!(
        "statsd_prefix",
        Computed("project_name"),
        "Prefix of every metric.",
        Kind::Other(|c, r| {
            let v = r.value.as_str();
            if v.is_empty() || v.contains(|c: char| c.is_whitespace() || ":|@".contains(c)) {
                return Err(r.invalid("a non-empty metric prefix without spaces, ':', '|' or '@'"));
            }
            c.statsd_prefix = v.to_string();
            Ok(())
        }),
        unset: |c| c.statsd_prefix = c.project_name.clone()
    ),
    app!(
        "logging_renderer",
        Unset,
        "Cliquet's spelling of log_format, kept for old files.",
        Kind::Other(|c, r| {
            c.log_format = if r.value.ends_with("MozillaHekaRenderer") {
                LogFormat::Json
            } else if r.value.ends_with("ClassicLogRenderer") {
                LogFormat::Text
            } else {
                return Err(r.invalid(
                    "cliquet.logs.ClassicLogRenderer or cliquet.logs.MozillaHekaRenderer",
                ));
            };
            Ok(())
        })
    ),
    app!(
        "log_format",
        Value("text"),
        "text (one readable line) or json (MozLog).",
        Kind::Other(|c, r| {
            c.log_format =
                LogFormat::from_name(&r.value).ok_or_else(|| r.invalid("text or json"))?;
            Ok(())
        })
    ),
    app!(
        "log_level",
        Value("info"),
        "Least severe level logged: debug, info, warning, error or critical.",
        Kind::Other(|c, r| {
            c.log_level = match r.value.to_ascii_lowercase().as_str() {
                "trace" => log::LevelFilter::Trace,
                "debug" => log::LevelFilter::Debug,
                "info" => log::LevelFilter::Info,
                "warning" | "warn" => log::LevelFilter::Warn,
                "error" | "critical" => log::LevelFilter::Error,
                _ => return Err(r.invalid("debug, info, warning, error or critical")),
            };
            Ok(())
        })
    ),
    app!(
        "eos",
        Unset,
        "End-of-service date: from then on every request is answered 410.",
        Kind::Other(|c, r| {
            let at = crate::time::parse_utc(&r.value).ok_or_else(|| {
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
        }),
        unset: |c| c.eos = None
    ),
    app!(
        "eos_message",
        Unset,
        "The end-of-service Alert's message.",
        Kind::Other(|c, r| {
            c.eos_message = Some(r.value.clone());
            Ok(())
        }),
        unset: |c| c.eos_message = None
    ),
    app!(
        "eos_url",
        Unset,
        "The end-of-service Alert's url (default: project_docs).",
        Kind::Other(|c, r| {
            c.eos_url = Some(r.value.clone());
            Ok(())
        }),
        unset: |c| c.eos_url = None
    ),
    app!(
        "trusted_proxies",
        Unset,
        "Peers whose forwarding header names the client in the request log.",
        Kind::Other(|c, r| {
            let header = c.trusted_proxies.header;
            c.trusted_proxies = TrustedProxies::parse(&r.list()).map_err(|item| {
                StartupError::new(format!(
                    "{}: invalid value for `{}`: expected IP addresses, CIDR networks \
                     (10.0.0.0/8) or `unix`, got {item:?}",
                    r.whence, r.key
                ))
            })?;
            c.trusted_proxies.header = header;
            Ok(())
        }),
        unset: |c| {
            c.trusted_proxies = TrustedProxies {
                header: c.trusted_proxies.header,
                ..TrustedProxies::default()
            }
        }
    ),
    app!(
        "log_user_ids",
        Value("raw"),
        "raw, or hashed: a user's key id in a logged path becomes its statsd users tag, its uid in a Sync node's path `...`.",
        Kind::Other(|c, r| {
            c.log_user_ids_hashed = match r.value.to_ascii_lowercase().as_str() {
                "raw" => false,
                "hashed" => true,
                _ => return Err(r.invalid("raw or hashed")),
            };
            Ok(())
        })
    ),
    app!(
        "trusted_proxies_header",
        Value("x-forwarded-for"),
        "The one header trusted proxies name the client in: x-forwarded-for or forwarded.",
        Kind::Other(|c, r| {
            c.trusted_proxies.header = ForwardedHeader::from_name(&r.value)
                .ok_or_else(|| r.invalid("x-forwarded-for or forwarded"))?;
            Ok(())
        })
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
