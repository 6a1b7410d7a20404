//! The binary: flags, the original Syncto configs starting unchanged,
//! start-up errors, embedded defaults and graceful shutdown on SIGTERM.

use crate::support::child::{Child, syncto};
use crate::support::*;
use fakes::Fake;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn version_and_help() {
    let out = syncto().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("syncto {}", env!("CARGO_PKG_VERSION"))
    );
    let out = syncto().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--bind",
        "--check-config",
        "--strict",
        "--list-settings",
        "--log-format",
        "--version",
        "--help",
    ] {
        assert!(help.contains(flag), "{help}");
    }
    let out = syncto().arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

#[test]
fn strict_makes_configuration_warnings_an_exit_status() {
    let dir = std::env::temp_dir().join(format!("syncto-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mistake.ini");
    std::fs::write(&path, "[app:mian]\nworkers = 2\n[server:main]\nport = 0\n").unwrap();
    let check = |strict: bool| {
        let mut cmd = syncto();
        cmd.args(["--check-config", "--config"]).arg(&path);
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().unwrap()
    };
    let lenient = check(false);
    let stderr = String::from_utf8_lossy(&lenient.stderr);
    assert_eq!(lenient.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("did you mean [app:main]?"), "{stderr}");
    let stdout = String::from_utf8_lossy(&lenient.stdout);
    assert!(stdout.contains("with 1 warning(s)"), "{stdout}");
    let strict = check(true);
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean [app:main]?"), "{stderr}");
    assert!(stderr.contains("--strict"), "{stderr}");
    assert!(strict.stdout.is_empty());
    // A clean file passes --strict.
    std::fs::write(&path, "[app:main]\nworkers = 2\n[server:main]\nport = 0\n").unwrap();
    let clean = check(true);
    assert_eq!(clean.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("configuration OK\n"));
    // Starting (not checking) under --strict stops too, before binding anything.
    std::fs::write(&path, "[server:main]\nport = 0\nworkers = 2\n").unwrap();
    let out = syncto()
        .args(["--strict", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong section"));
}

#[test]
fn list_settings_prints_the_table() {
    let out = syncto().arg("--list-settings").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[server:main] port\n    default 8000, 0-65535\n"),
        "{text}"
    );
    assert!(text.contains("[app:main] queue_timeout_milliseconds\n    default 2000, 10-600000\n"));
}

#[test]
fn the_original_configs_start_unchanged() {
    for f in [
        "syncto-1.5.0-development.ini",
        "syncto-production-style.ini",
    ] {
        let path = format!("{}/tests/data/fixtures/{f}", env!("CARGO_MANIFEST_DIR"));
        let out = syncto()
            .args(["--check-config", "--config", &path])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{f}: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
        // cliquet-only keys are warned about, by name; the secret never shows.
        assert!(stderr.contains("cache_backend"), "{stderr}");
        assert!(!stderr.contains("70a73e5719a5f844") && !stderr.contains("b0ed4b1a9c2b4a3e"));
    }
}

#[test]
fn bad_values_are_start_up_errors_naming_key_and_line() {
    let dir = std::env::temp_dir().join(format!("syncto-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.ini");
    std::fs::write(
        &path,
        "[app:main]\nsyncto.cache_credentials_ttl_seconds = soon\n",
    )
    .unwrap();
    let out = syncto().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cache_credentials_ttl_seconds") && err.contains(":2"),
        "{err}"
    );
    std::fs::write(&path, "[app:main]\nrecord_tabs_put_enabled = sure\n").unwrap();
    let out = syncto().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("record_tabs_put_enabled"));
    let out = syncto()
        .env("SYNCTO_WORKERS", "many")
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SYNCTO_WORKERS"));
    let out = syncto()
        .args(["--config", "/nonexistent/syncto.ini"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/syncto.ini"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_names_every_unknown_syncto_variable() {
    let out = syncto()
        .env("SYNCTO_LOG_LEVL", "chatty")
        .env("SYNCTO_RECORD_MYCOLL_PUT_ENABLED", "true")
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("SYNCTO_LOG_LEVL"), "{stderr}");
    assert!(!stderr.contains("chatty"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("writes enabled: mycoll (put)"), "{stdout}");
}

#[test]
fn check_config_shows_the_warnings_a_start_would_log() {
    // A CA bundle with one usable certificate and one that is not.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
    let mut bundle = std::fs::read_to_string(format!("{dir}/ca.pem")).unwrap();
    bundle.push_str("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    let path = std::env::temp_dir().join(format!("syncto-bundle-{}.pem", std::process::id()));
    std::fs::write(&path, bundle).unwrap();
    let out = syncto()
        .env("SYNCTO_CERTIFICATE_CA_BUNDLE", &path)
        .arg("--check-config")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    assert!(
        stderr.contains("ignored 1 unusable certificate"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_a_start_up_error_that_says_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = syncto().args(["--bind", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("already in use"),
        "{stderr}"
    );
    for needle in [
        "syncstorage-rs",
        "`port` under [server:main]",
        "--bind HOST:PORT",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

#[test]
fn an_eos_already_past_is_warned_at_start_up() {
    let check = |date: &str| {
        let out = syncto()
            .env("SYNCTO_EOS", date)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = check("2001-02-03");
    assert!(
        stderr.contains("WARN") && stderr.contains("eos = 2001-02-03 is already past"),
        "{stderr}"
    );
    let stderr = check("2999-02-03");
    assert!(!stderr.contains("already past"), "{stderr}");
}

#[test]
fn check_config_refuses_a_token_server_url_with_credentials_query_or_fragment() {
    for url in [
        "https://user:pw@token.example/",
        "https://token.example/?a=1",
        "https://token.example/#f",
    ] {
        let out = syncto()
            .env("SYNCTO_TOKEN_SERVER_URL", url)
            .arg("--check-config")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.contains("SYNCTO_TOKEN_SERVER_URL"), "{stderr}");
        assert!(!stderr.contains("pw@"), "{stderr}");
    }
}

/// Start the binary on the embedded defaults (port 0), return it and its port.
pub type Spawned = (Child, u16, BufReader<std::process::ChildStderr>);

fn spawn(fake: &Fake) -> Spawned {
    spawn_with(fake, &[])
}

/// As [`spawn`], with the settings in `env` (which may replace the port, the Token Server
/// and the upstream timeout given here).
pub fn spawn_with(fake: &Fake, env: &[(&str, &str)]) -> Spawned {
    let mut command = syncto();
    command
        .env("SYNCTO_PORT", "0")
        .env("SYNCTO_TOKEN_SERVER_URL", &fake.token_url)
        .env("SYNCTO_UPSTREAM_TIMEOUT_SECONDS", "10")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = Child::spawn(&mut command);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    let port = loop {
        assert!(Instant::now() < deadline, "no 'listening on' line");
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("server exited");
        }
        if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap();
        }
    };
    (child, port, stderr)
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    let fake = Fake::start();
    fake.put(KID, "tabs", "a", "x", 1000);
    let (mut child, port, mut stderr) = spawn(&fake);
    let base = format!("http://127.0.0.1:{port}");
    // Warm the credentials, then make the node slow.
    assert_eq!(
        request(
            &client(),
            "GET",
            &format!("{base}{}", records("tabs")),
            &[BEARER],
            None
        )
        .status,
        200
    );
    fake.hang_sync(Duration::from_secs(3));
    let url = format!("{base}{}", records("tabs"));
    let seen = fake.observer();
    let slow = std::thread::spawn(move || request(&client(), "GET", &url, &[BEARER], None));
    // In flight: the node has the second request (and holds it).
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.sync_requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the node"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGHUP is not a reason to stop: the server says so and goes on.
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    assert!(hup.unwrap().success());
    let mut log = String::new();
    while !log.contains("SIGHUP ignored") {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "the server exited on SIGHUP: {log}");
        log.push_str(&line);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the server"
    );
    // Still in flight when the TERM comes, or this would not test the drain.
    assert!(!slow.is_finished(), "answered before SIGTERM was sent");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request completes: {}", r.body);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    // The log never shows the bearer token, and has a summary line.
    let rest: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    let log = format!("{log}{}", rest.join("\n"));
    assert!(!log.contains("good-token"), "{log}");
    assert!(log.contains("GET /v1/buckets/"), "{log}");
}

#[test]
fn a_pinning_failure_is_logged_with_host_and_reason_never_the_token() {
    let fake = Fake::start();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
    let tls = fakes::tls_server::TlsServer::start(
        &std::fs::read(format!("{dir}/chain.pem")).unwrap(),
        &std::fs::read(format!("{dir}/leaf.key")).unwrap(),
        |_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
    );
    let url = format!("https://localhost:{}/", tls.port);
    let bundle = format!("{dir}/ca.pem");
    let wrong_pin = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (mut child, port, mut stderr) = spawn_with(
        &fake,
        &[
            ("SYNCTO_TOKEN_SERVER_URL", url.as_str()),
            ("SYNCTO_CERTIFICATE_CA_BUNDLE", bundle.as_str()),
            ("SYNCTO_CERTIFICATE_PINS", wrong_pin),
        ],
    );
    let r = request(
        &client(),
        "GET",
        &format!("http://127.0.0.1:{port}{}", records("tabs")),
        &[("Authorization", "Bearer SECRET-OAUTH-TOKEN")],
        None,
    );
    r.assert_error(503, 201);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("localhost") && line.contains("pin"), "{line}");
    assert!(!log.contains("SECRET-OAUTH-TOKEN"), "{log}");
}

/// The log of a server run with `env` after one records request: the request's status and
/// everything the server wrote to stderr until SIGTERM.
fn log_of_one_request(fake: &Fake, env: &[(&str, &str)]) -> (u16, String) {
    let (mut child, port, mut stderr) = spawn_with(fake, env);
    let r = request(
        &client(),
        "GET",
        &format!("http://127.0.0.1:{port}{}", records("tabs")),
        &[("Authorization", "Bearer SECRET-OAUTH-TOKEN")],
        None,
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    assert!(!log.contains("SECRET-OAUTH-TOKEN"), "{log}");
    (r.status, log)
}

#[test]
fn a_self_signed_token_server_is_explained_with_what_to_do() {
    let fake = Fake::start();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
    // A certificate as `openssl req -x509` makes it (CA:TRUE), even named in the bundle.
    let tls = fakes::tls_server::TlsServer::start(
        &std::fs::read(format!("{dir}/self-signed-ca.pem")).unwrap(),
        &std::fs::read(format!("{dir}/self-signed-ca.key")).unwrap(),
        |_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
    );
    let url = format!("https://localhost:{}/", tls.port);
    let bundle = format!("{dir}/self-signed-ca.pem");
    let (status, log) = log_of_one_request(
        &fake,
        &[
            ("SYNCTO_TOKEN_SERVER_URL", url.as_str()),
            ("SYNCTO_CERTIFICATE_CA_BUNDLE", bundle.as_str()),
        ],
    );
    assert_eq!(status, 503);
    let line = log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("{log}"));
    let at = format!(
        "token server TLS failure: localhost:{}/1.0/sync/1.5: ",
        tls.port
    );
    assert!(line.contains(&at), "{line}");
    for needle in ["CaUsedAsEndEntity", "CA:FALSE", "certificate_ca_bundle"] {
        assert!(line.contains(needle), "{needle}: {line}");
    }
    assert!(!line.contains("unreachable"), "{line}");
    // Without the bundle, the built-in roots don't know it either: the other hint.
    let ee = fakes::tls_server::TlsServer::start(
        &std::fs::read(format!("{dir}/self-signed.pem")).unwrap(),
        &std::fs::read(format!("{dir}/self-signed.key")).unwrap(),
        |_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
    );
    let url = format!("https://localhost:{}/", ee.port);
    let (status, log) = log_of_one_request(&fake, &[("SYNCTO_TOKEN_SERVER_URL", url.as_str())]);
    assert_eq!(status, 503);
    let line = log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("TLS failure")
            && line.contains("unknown issuer")
            && line.contains("name that CA or certificate in certificate_ca_bundle"),
        "{line}"
    );
}

#[test]
fn upstream_errors_name_host_port_and_path() {
    let fake = Fake::start();
    fake.script_sync([fakes::Canned::new(500, "0")]);
    let (status, log) = log_of_one_request(&fake, &[]);
    assert_eq!(status, 503);
    let node = fake.sync_url.trim_start_matches("http://");
    let line = log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("sync node answered 500: {node}/1.5/"))
            && line.contains("/storage/tabs"),
        "{line}"
    );
    // A Token Server nobody listens on: its host, port and path.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/");
    let (status, log) = log_of_one_request(&fake, &[("SYNCTO_TOKEN_SERVER_URL", url.as_str())]);
    assert_eq!(status, 503);
    assert!(
        log.contains(&format!(
            "token server unreachable: 127.0.0.1:{port}/1.0/sync/1.5: connection refused"
        )),
        "{log}"
    );
}

/// With `log_user_ids = hashed`, an upstream error names the Sync node and the request's path
/// on it, never the user's part of the node's path (`/1.5/<uid>`): whether the node answered
/// an error, could not be reached, did not answer in time or failed TLS. A Token Server that
/// hands out a plain-http node is named by the node's origin in either mode.
#[test]
fn hashed_user_ids_keep_the_node_path_of_the_user_out_of_upstream_errors() {
    const UID: &str = "987654321";
    let hashed = ("SYNCTO_LOG_USER_IDS", "hashed");
    let error_line = |log: &str| -> String {
        assert!(!log.contains(UID) && !log.contains("/1.5/"), "{log}");
        log.lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_else(|| panic!("{log}"))
            .to_owned()
    };
    // The Token Server sends the next request to `endpoint`, as user UID.
    let token_for = |fake: &Fake, endpoint: &str| {
        fake.script_token([fakes::Canned::new(
            200,
            &format!(
                r#"{{"id": "i", "key": "k", "uid": {UID}, "api_endpoint": "{endpoint}/1.5/{UID}", "duration": 300}}"#
            ),
        )]);
    };

    // The node answers 500.
    let fake = Fake::start();
    fake.script_sync([fakes::Canned::new(500, "0")]);
    let (status, log) = log_of_one_request(&fake, &[hashed]);
    assert_eq!(status, 503);
    let node = fake.sync_url.trim_start_matches("http://");
    let line = error_line(&log);
    assert!(
        line.contains(&format!("sync node answered 500: {node}/.../storage/tabs")),
        "{line}"
    );

    // Nobody listens at the node.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    token_for(&fake, &format!("http://127.0.0.1:{port}"));
    let (status, log) = log_of_one_request(&fake, &[hashed]);
    assert_eq!(status, 503);
    let line = error_line(&log);
    assert!(
        line.contains(&format!(
            "sync node unreachable: 127.0.0.1:{port}/.../storage/tabs: connection refused"
        )),
        "{line}"
    );

    // The node takes longer than the upstream timeout.
    fake.hang_sync(Duration::from_secs(3));
    let (status, log) =
        log_of_one_request(&fake, &[hashed, ("SYNCTO_UPSTREAM_TIMEOUT_SECONDS", "1")]);
    assert_eq!(status, 504);
    let line = error_line(&log);
    assert!(
        line.contains(&format!("sync node timed out: {node}/.../storage/tabs")),
        "{line}"
    );
    fake.hang_sync(Duration::ZERO);

    // The node's certificate is not trusted.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
    let tls = fakes::tls_server::TlsServer::start(
        &std::fs::read(format!("{dir}/self-signed.pem")).unwrap(),
        &std::fs::read(format!("{dir}/self-signed.key")).unwrap(),
        |_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
    );
    token_for(&fake, &format!("https://localhost:{}", tls.port));
    let (status, log) = log_of_one_request(&fake, &[hashed]);
    assert_eq!(status, 503);
    let line = error_line(&log);
    assert!(
        line.contains(&format!(
            "sync node TLS failure: localhost:{}/.../storage/tabs: unknown issuer",
            tls.port
        )),
        "{line}"
    );

    // A node in clear on the network is refused, naming its origin only, in either mode.
    for env in [&[hashed][..], &[]] {
        token_for(&fake, "http://192.0.2.1:8000");
        let (status, log) = log_of_one_request(&fake, env);
        assert_eq!(status, 503);
        let line = error_line(&log);
        assert!(
            line.contains("api_endpoint http://192.0.2.1:8000 is plain http://"),
            "{line}"
        );
    }
}

/// journald style only when `$JOURNAL_STREAM` names the very stream stderr is: a variable
/// inherited by a process whose stderr goes elsewhere must not change its lines.
#[test]
fn journald_style_only_when_journal_stream_names_stderr() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("syncto-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ini = dir.join("warn.ini");
    std::fs::write(
        &ini,
        "[app:main]\nfrobnicate = 1\n[server:main]\nport = 0\n",
    )
    .unwrap();
    let run = |name: &str, journal_stream: &dyn Fn(&std::fs::Metadata) -> String| {
        let log = dir.join(name);
        let file = std::fs::File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        let status = syncto()
            .args(["--check-config", "--config"])
            .arg(&ini)
            .env("JOURNAL_STREAM", journal_stream(&meta))
            .stdout(Stdio::null())
            .stderr(file)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(&log).unwrap()
    };
    let ours = run("ours.log", &|m| format!("{}:{}", m.dev(), m.ino()));
    assert!(ours.starts_with("<4>"), "{ours}");
    assert!(ours.contains("`frobnicate`: unknown setting"), "{ours}");
    let inherited = run("inherited.log", &|m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert!(!inherited.starts_with('<'), "{inherited}");
    assert!(inherited.contains(" WARN  "), "{inherited}");
    let _ = std::fs::remove_dir_all(&dir);
}
