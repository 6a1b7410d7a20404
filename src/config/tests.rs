//! The configuration's tests: loading files, the environment, defaults, checks.

use super::*;
use base64::Engine as _;

const DEV: &str = include_str!("../../tests/data/fixtures/syncto-1.5.0-development.ini");
const PROD: &str = include_str!("../../tests/data/fixtures/syncto-production-style.ini");
const DEV_SECRET: &str = "70a73e5719a5f844cfb5dc02d8b370f718ced6fe9b93d81b8c42c5ee417b6bbb";
const PROD_SECRET: &str = "b0ed4b1a9c2b4a3e8f1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f70819";

const NO_ENV: &[(&str, &str)] = &[];

fn ini_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, StartupError> {
    Config::from_ini(text, Path::new("test.ini"), vars)
}

fn ini(text: &str) -> Result<Config, StartupError> {
    ini_env(text, &[])
}

/// `[app:main]` followed by `lines`: the first of them is line 2.
fn app(lines: &str) -> Result<Config, StartupError> {
    ini(&format!("[app:main]\n{lines}\n"))
}

fn app_err(lines: &str) -> String {
    app(lines).unwrap_err().message
}

#[test]
fn development_fixture_loads() {
    let c = Config::from_ini(DEV, Path::new("dev.ini"), NO_ENV).unwrap();
    assert_eq!(
        c.cache_hmac_secret.as_ref().map(Secret::expose),
        Some(DEV_SECRET.as_bytes())
    );
    assert_eq!(c.listen, Listen::Tcp("0.0.0.0:8000".into()));
    assert!(c.put_enabled("history") && c.delete_enabled("history"));
    assert!(c.put_enabled("HISTORY"));
    assert!(!c.put_enabled("tabs") && !c.delete_enabled("bookmarks"));
    assert_eq!((c.log_format, c.statsd_url), (LogFormat::Text, None));
    assert_eq!(c.source, Some(PathBuf::from("dev.ini")));
    let [warning] = c.warnings.as_slice() else {
        panic!("{:?}", c.warnings)
    };
    assert!(
        warning.starts_with("dev.ini:4: `syncto.cache_backend`"),
        "{warning}"
    );
    assert!(warning.contains("cached in process"), "{warning}");
}

#[test]
fn production_fixture_loads() {
    let c = Config::from_ini(PROD, Path::new("prod.ini"), NO_ENV).unwrap();
    assert_eq!(
        c.cache_hmac_secret.as_ref().map(Secret::expose),
        Some(PROD_SECRET.as_bytes())
    );
    assert_eq!(c.listen, Listen::Tcp("127.0.0.1:8000".into()));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.statsd_url.as_deref(), Some("127.0.0.1:8125"));
    assert_eq!(c.statsd_prefix, "syncto");
    assert_eq!(c.http_scheme.as_deref(), Some("https"));
    assert_eq!(c.http_host.as_deref(), Some("syncto.example.org"));
    assert_eq!(c.token_server_heartbeat_timeout.as_secs(), 5);
    assert_eq!(c.cache_credentials_ttl.as_secs(), 300);
    for name in ["tabs", "passwords", "bookmarks", "history"] {
        assert!(c.put_enabled(name) && c.delete_enabled(name), "{name}");
    }
    assert!(!c.put_enabled("forms"));
    // `workers = 14` lives in [uwsgi], which must be ignored.
    assert_eq!(c.workers, Config::default().workers);
    let warnings = c.warnings.join("\n");
    assert!(warnings.contains("`syncto.cache_backend`"), "{warnings}");
    assert!(warnings.contains("`syncto.cache_url`"), "{warnings}");
    assert_eq!(c.warnings.len(), 2, "{warnings}");
}

#[test]
fn defaults_without_a_file() {
    let c = ini("").unwrap();
    assert_eq!(c.listen, Listen::Tcp("127.0.0.1:8000".into()));
    assert_eq!(c.cache_hmac_secret, None);
    assert_eq!(c.token_server_url, "https://token.services.mozilla.com/");
    assert_eq!(c.cache_credentials_ttl.as_secs(), 300);
    assert_eq!((c.batch_max_requests, c.max_body_bytes), (100, 2_097_152));
    assert_eq!(c.cors_origins, ["*"]);
    assert!(c.workers >= 2 && c.warnings.is_empty() && c.write_switches.is_empty());
    assert_eq!(c.log_level, log::LevelFilter::Info);
    assert_eq!(c.max_connections, None);
    assert_eq!(
        (
            c.request_head_timeout.as_secs(),
            c.request_body_timeout.as_secs(),
            c.keepalive_timeout.as_secs(),
            c.response_timeout.as_secs(),
            c.queue_timeout.as_millis()
        ),
        (5, 30, 20, 30, 2000)
    );
}

#[test]
fn every_prefix_is_accepted() {
    for prefix in ["", "syncto.", "cliquet."] {
        let c = app(&format!("{prefix}cache_credentials_ttl_seconds = 42")).unwrap();
        assert_eq!(c.cache_credentials_ttl.as_secs(), 42, "{prefix}");
    }
    let c = app("cliquet.record_tabs_put_enabled = yes\nrecord_tabs_delete_enabled: on");
    let c = c.unwrap();
    assert!(c.put_enabled("tabs") && c.delete_enabled("tabs"));
}

#[test]
fn conflicting_duplicates_name_both_lines() {
    let e = app_err("use = x\nsyncto.batch_max_requests = 10\n\ncliquet.batch_max_requests = 20");
    assert_eq!(
        e,
        "test.ini:5: `batch_max_requests` is set twice with different values (lines 3 and 5); \
             keep one"
    );
    // The same value twice is harmless.
    let c = app("batch_max_requests = 10\nsyncto.batch_max_requests = 10").unwrap();
    assert_eq!(c.batch_max_requests, 10);
}

#[test]
fn environment_beats_the_file() {
    let text = "[app:main]\ncache_credentials_ttl_seconds = 100\n\
                    record_custom-1_put_enabled = false\n[server:main]\nport = 8080";
    let vars = [
        ("SYNCTO_CACHE_CREDENTIALS_TTL_SECONDS", "600"),
        ("SYNCTO_RECORD_TABS_PUT_ENABLED", "true"),
        ("SYNCTO_RECORD_CUSTOM_1_PUT_ENABLED", "true"),
        ("SYNCTO_PORT", "9000"),
        ("SYNCTO_HOST", "::1"),
    ];
    let c = ini_env(text, &vars).unwrap();
    assert_eq!(c.cache_credentials_ttl.as_secs(), 600);
    assert!(c.put_enabled("tabs") && !c.delete_enabled("tabs"));
    assert!(c.put_enabled("custom-1"));
    assert_eq!(c.listen, Listen::Tcp("[::1]:9000".into()));
}

#[test]
fn every_syncto_variable_is_applied_or_named_in_a_warning() {
    let vars = [
        ("SYNCTO_LOG_LEVL", "value-of-a-typo"),
        ("SYNCTO_RECORD_MYCOLL_PUT_ENABLED", "true"),
        ("SYNCTO_RECORD_MY_COLL_DELETE_ENABLED", "on"),
        ("SYNCTO_CACHE_BACKEND", "value-of-cliquet"),
    ];
    let c = ini_env("", &vars).unwrap();
    // The collection is in the variable's name: the file need not name it.
    assert!(c.put_enabled("mycoll") && !c.delete_enabled("mycoll"));
    assert!(c.delete_enabled("my_coll") && !c.put_enabled("my_coll"));
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings
            .contains(&"environment variable SYNCTO_LOG_LEVL: unknown setting, ignored".into()),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings.iter().any(|w| w.starts_with(
            "environment variable SYNCTO_CACHE_BACKEND: a cliquet setting with no effect here"
        )),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings.iter().all(|w| !w.contains("value-of")));
}

#[test]
fn bad_environment_value_names_the_variable() {
    for (var, value) in [
        ("SYNCTO_BATCH_MAX_REQUESTS", "lots"),
        ("SYNCTO_RECORD_HISTORY_DELETE_ENABLED", "enabled"),
        ("SYNCTO_PORT", "80000"),
    ] {
        let e = ini_env("", &[(var, value)]).unwrap_err().message;
        assert!(
            e.starts_with(&format!("environment variable {var}: invalid value")),
            "{e}"
        );
    }
}

#[test]
fn bad_values_name_file_line_key_and_expectation() {
    assert_eq!(
        app_err("\nsyncto.cache_credentials_ttl_seconds = abc"),
        "test.ini:3: invalid value for `syncto.cache_credentials_ttl_seconds`: expected a \
             whole number of seconds between 1 and 86400, got \"abc\""
    );
    for bad in "0 86401 -5 +5 1.5 99999999999999999999999 0x10".split(' ') {
        let e = app_err(&format!("cache_credentials_ttl_seconds = {bad}"));
        assert!(e.starts_with("test.ini:2: invalid value"), "{bad}: {e}");
    }
    let e = app_err("syncto.record_tabs_put_enabled = enabled");
    assert!(e.starts_with("test.ini:2: invalid value for `syncto.record_tabs_put_enabled`"));
    assert!(e.contains("expected true or false"), "{e}");
    for (line, needle) in [
        ("record_Tabs!_put_enabled = true", "the collection must be"),
        ("record__delete_enabled = true", "the collection must be"),
        ("batch_max_requests = 1001", "between 1 and 1000"),
        ("max_body_bytes = 1000", "`max_body_bytes`"),
        ("http_scheme = ftp", "http or https"),
        ("http_host = a/b", "`http_host`"),
        (
            "allow_insecure_upstream = maybe",
            "`allow_insecure_upstream`",
        ),
        ("log_level = loud", "`log_level`"),
        ("logging_renderer = my.Renderer", "`logging_renderer`"),
        ("workers = 0", "`workers`"),
        ("max_connections = 0", "`max_connections`"),
        ("request_head_timeout_seconds = 0", "between 1 and 86400"),
        (
            "keepalive_timeout_seconds = soon",
            "`keepalive_timeout_seconds`",
        ),
        ("queue_timeout_milliseconds = 5", "between 10 and 600000"),
        ("statsd_url = tcp://127.0.0.1:8125", "udp://HOST:PORT"),
        ("statsd_url = udp://127.0.0.1", "udp://HOST:PORT"),
    ] {
        let e = app_err(line);
        assert!(
            e.starts_with("test.ini:2: ") && e.contains(needle),
            "{line}: {e}"
        );
    }
    assert!(
        ini("[server:main]\nport = http")
            .unwrap_err()
            .message
            .starts_with("test.ini:2:")
    );
}

#[test]
fn token_server_must_not_leak_tokens_over_http() {
    let e = app_err("token_server_url = http://token.example.com/");
    assert!(
        e.starts_with("test.ini:2: token_server_url uses plain http://"),
        "{e}"
    );
    assert!(e.contains("set allow_insecure_upstream = true"), "{e}");
    for url in
        "http://localhost:5000/ http://127.0.0.2/ http://[::1]:8080/t https://a.example".split(' ')
    {
        let c = app(&format!("token_server_url = {url}")).unwrap();
        assert_eq!(c.token_server_url, url);
    }
    let c = app("token_server_url = http://token.example.com/\nallow_insecure_upstream = yes");
    let c = c.unwrap();
    assert!(c.allow_insecure_upstream);
    assert!(c.warnings.iter().any(|w| w.contains("plain http://")));
    for bad in "ftp://x/ https:// https:///p example.com https://[::1 https://a:x/".split(' ') {
        let e = app_err(&format!("token_server_url = {bad}"));
        assert!(
            e.contains("expected an http:// or https:// URL"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn token_server_url_has_no_userinfo_query_or_fragment() {
    for bad in [
        "https://user:pw@token.example/",
        "https://token.example/?a=1",
        "https://token.example?a=1",
        "https://token.example/#f",
        "http://user@localhost:5000/",
    ] {
        let e = app_err(&format!("token_server_url = {bad}"));
        assert!(
            e.starts_with("test.ini:2: invalid value for `token_server_url`"),
            "{bad}: {e}"
        );
        // A password in the URL is never repeated.
        assert!(!e.contains("pw@"), "{e}");
    }
}

#[test]
fn certificate_pins() {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (a, b, short) = (b64(&[7; 32]), b64(&[9; 32]), b64(&[1; 31]));
    let c = app(&format!("certificate_pins = sha256/{a}, {b}\n  {a}")).unwrap();
    assert_eq!(c.certificate_pins, [[7; 32], [9; 32], [7; 32]]);
    for bad in [
        "!notbase64!notbase64!notbase64!notbase64!xxx",
        &short,
        "sha256/AAAA",
    ] {
        let e = app_err(&format!("certificate_pins = {a} {bad}"));
        assert!(
            e.starts_with("test.ini:2:") && e.contains(&format!("{bad:?}")),
            "{e}"
        );
    }
}

#[test]
fn certificate_ca_bundle() {
    let e = app_err("certificate_ca_bundle = no/such/bundle.pem");
    let abs = std::env::current_dir().unwrap().join("no/such/bundle.pem");
    assert!(
        e.contains(&format!("file {} cannot be found", abs.display())),
        "{e}"
    );
    let path = app("certificate_ca_bundle = Cargo.toml")
        .unwrap()
        .certificate_ca_bundle;
    let path = path.unwrap();
    assert!(
        path.is_absolute() && path.ends_with("Cargo.toml"),
        "{path:?}"
    );
    let empty = std::env::temp_dir().join(format!("syncto-empty-{}.pem", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let e = app_err(&format!("certificate_ca_bundle = {}", empty.display()));
    std::fs::remove_file(&empty).unwrap();
    assert!(
        e.contains(&format!("file {} is empty", empty.display())),
        "{e}"
    );
}

#[test]
fn cliquet_and_unknown_settings_only_warn() {
    let c = app(
        "storage_backend = x\ncliquet.multiauth.policies = basicauth\n\
             pyramid.includes = a\nfrobnicate = 1\nnewrelic_env = prod-2030\nuse = egg:syncto",
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 5, "{:?}", c.warnings);
    let storage = "test.ini:2: `storage_backend` is a cliquet setting with no effect here";
    assert!(c.warnings[0].starts_with(storage), "{}", c.warnings[0]);
    assert_eq!(
        c.warnings[3],
        "test.ini:5: `frobnicate`: unknown setting, ignored"
    );
    assert!(
        c.warnings
            .iter()
            .all(|w| !w.contains("basicauth") && !w.contains("2030"))
    );
}

#[test]
fn a_key_in_the_wrong_section_is_named_as_such() {
    let c = ini(
        "[server:main]\nhost = ::1\ntoken_server_url = http://127.0.0.1:5000/\n\
         syncto.record_tabs_put_enabled = true\nthreads = 4\n\
         [app:main]\nport = 9000\nproject_name = demo\n",
    )
    .unwrap();
    assert_eq!(
        c.warnings,
        [
            "test.ini:7: `port` belongs in [server:main], not [app:main]: wrong section, ignored",
            "test.ini:3: `token_server_url` belongs in [app:main], not [server:main]: wrong \
             section, ignored",
            "test.ini:4: `syncto.record_tabs_put_enabled` belongs in [app:main], not \
             [server:main]: wrong section, ignored",
        ]
    );
    // Ignored, as the original Syncto ignored them: the defaults stand.
    assert_eq!(c.token_server_url, Config::default().token_server_url);
    assert_eq!(c.listen, Listen::Tcp("[::1]:8000".into()));
    assert!(!c.put_enabled("tabs"));
}

#[test]
fn a_misspelt_section_is_named_and_foreign_ones_are_quiet() {
    let c = ini(
        "[app:mian]\ntoken_server_url = http://127.0.0.1:5000/\nworkers = 3\n\
         [Server:Main]\nport = 9000\n\
         [uwsgi]\nworkers = 14\n[loggers]\nkeys = root\n[handler_console]\nlevel = INFO\n\
         [pipeline:main]\npipeline = syncto\n[app:syncto]\nuse = egg:syncto\n\
         [alembic]\nscript_location = x\n\
         [DEFAULT]\ncache_max_entries = 5\n",
    )
    .unwrap();
    assert_eq!(
        c.warnings,
        [
            "test.ini:1: section [app:mian] is not read (did you mean [app:main]?): its 2 \
             key(s) are ignored",
            "test.ini:4: section [Server:Main] is not read (did you mean [server:main]?): its 1 \
             key(s) are ignored",
            "test.ini:19: `cache_max_entries` is in section [DEFAULT], which is not read: \
             Syncto reads [app:main] and [server:main]; ignored",
        ]
    );
    assert_eq!(c.cache_max_entries, Config::default().cache_max_entries);
}

#[test]
fn end_of_service() {
    let c = app("eos = 2030-01-01\neos_message = \"Moving, see the URL\"\n\
                     eos_url = https://example.org/moved")
    .unwrap();
    let eos = c.eos.unwrap();
    assert_eq!((eos.date.as_str(), eos.at), ("2030-01-01", 1_893_456_000));
    assert_eq!(c.eos_message.as_deref(), Some("Moving, see the URL"));
    assert_eq!(c.eos_url.as_deref(), Some("https://example.org/moved"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = app("cliquet.eos = 2030-01-01T12:00:00+01:00").unwrap();
    assert_eq!(c.eos.unwrap().at, 1_893_495_600);
    assert_eq!(app("eos =").unwrap().eos, None);
    for bad in ["next year", "2030-02-30", "01/01/2030"] {
        let e = app_err(&format!("syncto.eos = {bad}"));
        assert!(
            e.starts_with("test.ini:2: invalid value for `syncto.eos`: expected a date"),
            "{e}"
        );
    }
    let e = ini_env("", &[("SYNCTO_EOS", "soon")]).unwrap_err().message;
    assert!(
        e.starts_with("environment variable SYNCTO_EOS: invalid value"),
        "{e}"
    );
    // A message without a date does nothing, and says so.
    let c = app("eos_message = bye").unwrap();
    assert_eq!(
        c.warnings,
        ["test.ini:2: `eos_message` has no effect without `eos`"]
    );
}

#[test]
fn trusted_proxies() {
    let c = app("trusted_proxies = 127.0.0.1, 10.0.0.0/8\n  ::1 unix").unwrap();
    let t = &c.trusted_proxies;
    assert!(t.unix && t.trusts("10.9.8.7".parse().unwrap()));
    assert!(!t.trusts("192.0.2.1".parse().unwrap()));
    assert!(
        c.summary()
            .contains("from the X-Forwarded-For header of 127.0.0.1/32")
    );
    let c = app("trusted_proxies_header = Forwarded\ntrusted_proxies = 127.0.0.1").unwrap();
    assert_eq!(c.trusted_proxies.header, ForwardedHeader::Forwarded);
    assert!(
        c.summary()
            .contains("from the Forwarded header of 127.0.0.1/32")
    );
    // Unsetting the proxies keeps the header: the two settings are independent.
    let c = app("trusted_proxies_header = forwarded\ntrusted_proxies =").unwrap();
    assert_eq!(c.trusted_proxies.header, ForwardedHeader::Forwarded);
    assert!(app_err("trusted_proxies_header = x-real-ip").contains("x-forwarded-for or forwarded"));
    assert!(app("").unwrap().trusted_proxies.is_empty());
    assert!(app("trusted_proxies =").unwrap().trusted_proxies.is_empty());
    let e = app_err("trusted_proxies = 127.0.0.1 nginx.local");
    assert!(
        e.starts_with("test.ini:2: invalid value for `trusted_proxies`")
            && e.contains("\"nginx.local\""),
        "{e}"
    );
    assert!(app_err("trusted_proxies = 10.0.0.1/8").contains("\"10.0.0.1/8\""));
}

#[test]
fn unix_socket_settings() {
    let c = ini(
        "[server:main]\nhost = 0.0.0.0\nunix_socket = /run/syncto/syncto.sock\n\
                     unix_socket_mode = 0660",
    )
    .unwrap();
    assert_eq!(
        c.listen,
        Listen::Unix(PathBuf::from("/run/syncto/syncto.sock"))
    );
    assert_eq!(c.unix_socket_mode, Some(0o660));
    assert_eq!(
        c.warnings,
        ["test.ini:2: `host` is ignored: unix_socket is set"]
    );
    assert!(c.summary().contains("unix:/run/syncto/syncto.sock"));
    assert!(c.summary().contains("socket mode 0660"));
    // waitress's spelling, and the environment.
    let c = ini("[server:main]\nunix_socket = /s\nunix_socket_perms = 600").unwrap();
    assert_eq!(c.unix_socket_mode, Some(0o600));
    let env = [
        ("SYNCTO_UNIX_SOCKET", "/run/x.sock"),
        ("SYNCTO_UNIX_SOCKET_MODE", "0666"),
    ];
    let c = ini_env("", &env).unwrap();
    assert_eq!(c.listen, Listen::Unix(PathBuf::from("/run/x.sock")));
    assert_eq!(c.unix_socket_mode, Some(0o666));
    // Empty means unset: TCP as usual.
    let c = ini("[server:main]\nunix_socket =\nport = 9000").unwrap();
    assert_eq!(c.listen, Listen::Tcp("127.0.0.1:9000".into()));
    for (text, needle) in [
        (
            "unix_socket = run/s.sock",
            "`unix_socket`: expected an absolute path",
        ),
        (
            "unix_socket_mode = rw-rw----",
            "`unix_socket_mode`: expected octal",
        ),
        (
            "unix_socket_perms = 999",
            "`unix_socket_perms`: expected octal",
        ),
    ] {
        let e = ini(&format!("[server:main]\n{text}")).unwrap_err().message;
        assert!(
            e.starts_with("test.ini:2: ") && e.contains(needle),
            "{text}: {e}"
        );
    }
    let e = ini("[server:main]\nunix_socket_mode = 600\nunix_socket_perms = 660")
        .unwrap_err()
        .message;
    assert!(e.contains("set twice"), "{e}");
}

#[test]
fn other_settings() {
    let c = app("statsd_prefix = sync.to\nlog_level = WARNING\n\
             logging_renderer = cliquet.logs.MozillaHekaRenderer\nlog_format = text\n\
             backoff = 60\ncors_origins = https://a.example https://b.example\nworkers = 3\n\
             upstream_timeout_seconds = 10\nupstream_connect_timeout_seconds = 2\n\
             cache_max_entries = 5\nretry_after_seconds = 0\ncors_max_age_seconds = 60\n\
             max_connections = 300\nrequest_head_timeout_seconds = 2\n\
             request_body_timeout_seconds = 3\nkeepalive_timeout_seconds = 4\n\
             response_timeout_seconds = 6\nqueue_timeout_milliseconds = 250")
    .unwrap();
    assert_eq!(c.max_connections, Some(300));
    assert_eq!(
        (
            c.request_head_timeout.as_secs(),
            c.request_body_timeout.as_secs(),
            c.keepalive_timeout.as_secs(),
            c.response_timeout.as_secs(),
            c.queue_timeout.as_millis()
        ),
        (2, 3, 4, 6, 250)
    );
    assert_eq!(app("max_connections =").unwrap().max_connections, None);
    assert_eq!(c.statsd_prefix, "sync.to");
    assert_eq!(c.log_level, log::LevelFilter::Warn);
    assert_eq!(
        c.log_format,
        LogFormat::Text,
        "explicit log_format beats logging_renderer"
    );
    assert_eq!(c.backoff, Some(60));
    assert_eq!(c.cors_origins.len(), 2);
    assert_eq!((c.workers, c.upstream_timeout.as_secs()), (3, 10));
    assert_eq!(c.upstream_connect_timeout.as_secs(), 2);
    assert_eq!(
        (
            c.cache_max_entries,
            c.retry_after_seconds,
            c.cors_max_age_seconds
        ),
        (5, 0, 60)
    );
    assert_eq!(
        app("log_level = critical").unwrap().log_level,
        log::LevelFilter::Error
    );
    let c = app("batch_timeout_seconds = 5\ncliquet.paginate_by = 50").unwrap();
    assert_eq!((c.batch_timeout.as_secs(), c.paginate_by), (5, 50));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let d = Config::default();
    assert_eq!((d.batch_timeout.as_secs(), d.paginate_by), (30, 1000));
    assert!(app_err("paginate_by = 0").contains("`paginate_by`"));
    assert!(app_err("paginate_by = 10001").contains("`paginate_by`"));
    assert!(app_err("batch_timeout_seconds = 0").contains("`batch_timeout_seconds`"));
    assert!(app_err("http_host = user@evil.example").contains("`http_host`"));
}

#[test]
fn the_secret_never_leaks() {
    let secret = "s3cr3t-value-that-must-not-leak";
    let base = format!("cache_hmac_secret = \"{secret}\"");
    let c = app(&base).unwrap();
    assert_eq!(
        c.cache_hmac_secret.as_ref().map(Secret::expose),
        Some(secret.as_bytes())
    );
    assert!(!c.summary().contains(secret));
    assert!(!format!("{c:?}").contains(secret));
    let errors = [
        app_err(&format!("{base}\ncliquet.cache_hmac_secret = {secret}2")),
        app_err(&format!("{base}\ncache_credentials_ttl_seconds = x")),
        app_err(&format!("{base}\ntoken_server_url = http://example.com/")),
    ];
    for e in &errors {
        assert!(!e.contains(secret), "{e}");
    }
    // An empty value means unset: a random per-process secret.
    assert_eq!(
        app("cache_hmac_secret = \"\"").unwrap().cache_hmac_secret,
        None
    );
    let env_empty = [("SYNCTO_CACHE_HMAC_SECRET", "")];
    let c = ini_env(&format!("[app:main]\n{base}"), &env_empty).unwrap();
    assert_eq!(c.cache_hmac_secret, None);
    assert_eq!(app("http_scheme =\nhttp_host =").unwrap().http_scheme, None);
}

#[test]
fn summary_mentions_the_essentials() {
    let s = Config::from_ini(PROD, Path::new("prod.ini"), NO_ENV)
        .unwrap()
        .summary();
    for needle in [
        "Configuration from prod.ini: listening on 127.0.0.1:8000",
        "token server https://token.services.mozilla.com/",
        "for up to 300 s",
        "writes enabled: bookmarks (put, delete), history (put, delete)",
        "built-in Mozilla roots",
        "statsd to 127.0.0.1:8125",
    ] {
        assert!(s.contains(needle), "{needle}: {s}");
    }
    assert!(!s.contains(PROD_SECRET));
    let s = ini("").unwrap().summary();
    assert!(s.contains("writes disabled for every collection"), "{s}");
}

#[test]
fn load_search_order_and_flags() {
    let dir = std::env::temp_dir().join(format!("syncto-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("syncto.ini");
    std::fs::write(&path, DEV).unwrap();
    let flags = ["--bind", "unix:/run/s.sock", "--log-format", "json"];
    let mut args = crate::cli::parse(flags.map(Into::into)).unwrap();
    let env_path = path.display().to_string();
    let env = [("SYNCTO_INI", env_path.as_str())];
    let c = Config::load(&args, &env).unwrap();
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    assert_eq!(c.listen, Listen::Unix(PathBuf::from("/run/s.sock")));
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(c.put_enabled("history"));

    // --config wins over SYNCTO_INI.
    args.config = Some(dir.join("missing.ini"));
    let e = Config::load(&args, &env).unwrap_err().message;
    assert!(e.starts_with("cannot read configuration file") && e.contains("missing.ini"));
    std::fs::remove_dir_all(&dir).unwrap();

    if !Path::new(DEFAULT_CONFIG_PATH).exists() {
        let c = Config::load(&crate::cli::parse([]).unwrap(), NO_ENV).unwrap();
        assert_eq!(c.source, None);
        assert_eq!(c.listen, Listen::Tcp("127.0.0.1:8000".into()));
    }
}
