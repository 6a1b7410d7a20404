//! Operations: end of service (`eos`), the statsd metrics of the original's dashboards
//! (`users`, `authn_type.*`, `syncclient.start_time`, `syncclient.syncclient.auth`), client
//! addresses behind trusted proxies, and the unix socket with its mode.

use crate::cli::spawn_with;
use crate::support::child::{Child, syncto};
use crate::support::*;
use fakes::Fake;
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use syncto::config::{Eos, WriteSwitch};
use syncto::listen::Listen;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn with_eos(at: u64, message: Option<&str>) -> Syncto {
    Syncto::with(|c| {
        c.eos = Some(Eos {
            date: "2030-01-01".into(),
            at,
        });
        c.eos_message = message.map(String::from);
        c.write_switches.insert(
            "tabs".into(),
            WriteSwitch {
                put: true,
                delete: true,
            },
        );
    })
}

fn alert(r: &Resp) -> Value {
    let raw = r
        .header("Alert")
        .unwrap_or_else(|| panic!("no Alert: {:?}", r.headers));
    serde_json::from_str(raw).unwrap()
}

#[test]
fn before_end_of_service_every_response_warns() {
    let s = with_eos(now() + 86_400, Some("Syncto moves, see the URL"));
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let soft = json!({
        "code": "soft-eol",
        "message": "Syncto moves, see the URL",
        "url": "https://docs.kinto-storage.org/en/stable/api/",
    });
    let r = s.auth_get(&records("tabs"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"][0]["id"], "a");
    assert_eq!(alert(&r), soft);
    let hello = s.get("/v1/", &[]);
    assert_eq!(hello.json()["eos"], "2030-01-01");
    assert_eq!(alert(&hello), soft);
    for r in [
        s.get("/v1/__heartbeat__", &[]),
        s.get("/v1/nowhere", &[]),
        s.req("GET", &records("tabs"), &[], None),
    ] {
        assert_eq!(alert(&r), soft, "{}", r.body);
    }
    // Without the setting, no Alert and no `eos` in hello.
    let plain = Syncto::start();
    assert_eq!(plain.get("/v1/", &[]).header("Alert"), None);
    assert!(plain.get("/v1/", &[]).json().get("eos").is_none());
}

#[test]
fn after_end_of_service_everything_is_gone_but_health_checks() {
    let s = with_eos(now() - 1, None);
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let hard = json!({
        "code": "hard-eol",
        "message": null,
        "url": "https://docs.kinto-storage.org/en/stable/api/",
    });
    let origin = ("Origin", "https://app.example");
    let put_body = r#"{"data": {"payload": "overwritten"}}"#;
    let batch_body = format!(r#"{{"requests": [{{"path": "{}"}}]}}"#, records("tabs"));
    for r in [
        s.req("GET", &records("tabs"), &[BEARER, origin], None),
        s.req("HEAD", &record("tabs", "a"), &[BEARER], None),
        s.req("PUT", &record("tabs", "a"), &[BEARER, JSON], Some(put_body)),
        s.req("DELETE", &record("tabs", "a"), &[BEARER], None),
        s.req("POST", "/v1/batch", &[BEARER, JSON], Some(&batch_body)),
        s.get("/v1/", &[]),
        s.get("/", &[]),
    ] {
        assert_eq!(r.status, 410, "{:?}", r.headers);
        assert_eq!(alert(&r), hard);
        if !r.body.is_empty() {
            let j = r.assert_error(410, 202);
            assert_eq!(
                j["message"],
                "The service you are trying to connect no longer exists at this location."
            );
            assert_eq!(j["error"], "Gone");
        }
    }
    // A browser's preflight is answered as usual (a failed one is a network error to the
    // page), so that it makes the request and can read the answer and its Alert.
    for (method, path) in [
        ("GET", records("tabs")),
        ("PUT", record("tabs", "a")),
        ("POST", "/v1/batch".to_string()),
    ] {
        let r = s.req(
            "OPTIONS",
            &path,
            &[
                origin,
                ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type",
                ),
            ],
            None,
        );
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert!(
            r.header("Access-Control-Allow-Methods")
                .unwrap()
                .contains(method)
        );
        assert!(
            r.header("Access-Control-Allow-Headers")
                .unwrap()
                .contains("Authorization")
        );
        assert_eq!(alert(&r), hard);
    }
    let r = s.req("GET", &records("tabs"), &[BEARER, origin], None);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(
        r.header("Access-Control-Expose-Headers")
            .unwrap()
            .contains("Alert")
    );
    // Nothing reached the Token Server or the Sync node; the record is untouched.
    assert_eq!(s.fake.token_calls(), 0);
    assert!(s.fake.sync_seen().is_empty());
    assert_eq!(s.fake.record(KID, "tabs", "a").unwrap().payload, "x");
    // The load balancer's checks keep the node in rotation.
    for path in [
        "/v1/__heartbeat__",
        "/v1/__lbheartbeat__",
        "/v1/__version__",
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(alert(&r), hard, "{path}");
    }
}

/// What a client reads names this server's links, never the original Python project's
/// (its documentation, repository and issue tracker are not this project's): the hello's
/// `project_docs` is the Kinto HTTP API this server speaks unless the operator sets one,
/// `__version__` names no source it was not built from, a 500 sends nobody to a tracker.
#[test]
fn no_answer_points_at_the_original_python_project() {
    let s = Syncto::start();
    let hello = s.get("/v1/", &[]);
    assert_eq!(
        hello.json()["project_docs"],
        "https://docs.kinto-storage.org/en/stable/api/"
    );
    let version = s.get("/v1/__version__", &[]);
    assert_eq!(version.json()["source"], "unknown", "{}", version.body);
    for r in [&hello, &version] {
        assert!(
            !r.body.contains("mozilla-services/syncto") && !r.body.contains("syncto.readthedocs"),
            "{}",
            r.body
        );
    }
}

/// A statsd stand-in: every datagram received until `quiet` passes without one.
fn statsd_lines(socket: &UdpSocket, quiet: Duration) -> Vec<String> {
    socket.set_read_timeout(Some(quiet)).unwrap();
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    lines
}

#[test]
fn dashboard_metrics_users_authn_types_and_client_timers() {
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = statsd.local_addr().unwrap().to_string();
    let s = Syncto::with(|c| {
        c.statsd_url = Some(addr);
        c.statsd_prefix = "syncto".into();
    });
    s.fake.put(KID, "tabs", "a", "x", 1000);
    let other_kid = "99-AAAAAAAAAAAAAAAAAAAAAA";
    let other = format!("/v1/buckets/{other_kid}/collections/tabs/records");
    let browserid = format!("/v1/buckets/{CS}/collections/tabs/records");
    let preflight = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "GET"),
    ];
    let answers = [
        s.auth_get(&records("tabs")),
        // The same user with next hour's token.
        s.get(
            &records("tabs"),
            &[("Authorization", "Bearer next-hour-token")],
        ),
        s.get(&other, &[("Authorization", "bearer other-user-token")]),
        s.get(
            &browserid,
            &[("Authorization", "BrowserID an.assertion.here")],
        ),
        s.get(&records("tabs"), &[("Authorization", "Basic dXNlcjpwYXNz")]),
        s.get(&records("tabs"), &[("Authorization", "x:1|c evil")]),
        s.get(&records("tabs"), &[]),
        s.req("OPTIONS", &records("tabs"), &preflight, None),
        s.get("/v1/", &[BEARER]),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 401, 401, 401, 200, 200]);
    let lines = statsd_lines(&statsd, Duration::from_millis(500));
    let count = |line: &str| lines.iter().filter(|l| *l == line).count();

    // One count per request to a user endpoint, by scheme; unknown ones folded to `other`.
    assert_eq!(count("syncto.authn_type.Bearer:1|c"), 3, "{lines:#?}");
    assert_eq!(count("syncto.authn_type.BrowserID:1|c"), 1);
    assert_eq!(count("syncto.authn_type.other:1|c"), 2);
    let authn: Vec<&String> = lines.iter().filter(|l| l.contains("authn_type")).collect();
    assert_eq!(authn.len(), 6, "{authn:?}");

    // One set value per user: a 32-hex-digit keyed hash, the same for both of the first
    // user's tokens, never the token, key id or client state.
    let users: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("syncto.users:")?.strip_suffix("|s"))
        .collect();
    assert_eq!(users.len(), 4, "{lines:#?}");
    for u in &users {
        assert!(
            u.len() == 32 && u.bytes().all(|b| b.is_ascii_hexdigit()),
            "{u}"
        );
    }
    assert_eq!(users[0], users[1], "one user, two tokens");
    let mut distinct = users.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    for secret in [
        "good-token",
        "next-hour",
        "Yw3NKWbEM2aRElRIu7JbTw",
        CS,
        "assertion",
    ] {
        assert!(lines.iter().all(|l| !l.contains(secret)), "{secret}");
    }

    // The original's Sync client timers: ready-making per request with a user, Hawk
    // signing per Sync call; sub-millisecond values keep their precision.
    let timer = |name: &str| -> Vec<f64> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(name)?.strip_suffix("|ms")?.parse().ok())
            .collect()
    };
    assert_eq!(
        timer("syncto.syncclient.start_time:").len(),
        4,
        "{lines:#?}"
    );
    let signing = timer("syncto.syncclient.syncclient.auth:");
    assert_eq!(signing.len(), 4, "{lines:#?}");
    assert!(signing.iter().all(|ms| ms.is_finite() && *ms >= 0.0));
    let calls = timer("syncto.syncclient.syncclient.get_records:");
    assert_eq!(calls.len(), 4, "{lines:#?}");
}

#[test]
fn forwarded_addresses_are_logged_only_from_trusted_proxies() {
    let fake = Fake::start();
    let xff = ("X-Forwarded-For", "203.0.113.7, 127.0.0.1");
    let logged = |env: &[(&str, &str)], headers: &[(&str, &str)]| -> String {
        let (mut child, port, mut stderr) = spawn_with(&fake, env);
        let r = request(
            &client(),
            "GET",
            &format!("http://127.0.0.1:{port}/v1/__lbheartbeat__"),
            headers,
            None,
        );
        assert_eq!(r.status, 200);
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log.lines()
            .find(|l| l.contains("GET /v1/__lbheartbeat__"))
            .unwrap_or_else(|| panic!("no summary line: {log}"))
            .to_owned()
    };
    // Not trusted (the default): the peer, whatever the headers claim.
    let line = logged(&[], &[xff, ("Forwarded", "for=198.51.100.1")]);
    assert!(line.contains(" remote=127.0.0.1 rid="), "{line}");
    // Trusted: the first hop from the right that is not a trusted proxy.
    let trusted = [("SYNCTO_TRUSTED_PROXIES", "127.0.0.1")];
    let line = logged(&trusted, &[xff]);
    assert!(line.contains(" remote=203.0.113.7 rid="), "{line}");
    // Behind a proxy that sets X-Forwarded-For (nginx, Caddy), a client's own Forwarded
    // header passes through it untouched: it must not name the client.
    let line = logged(&trusted, &[xff, ("Forwarded", "for=6.6.6.6")]);
    assert!(line.contains(" remote=203.0.113.7 rid="), "{line}");
    // A proxy that sets Forwarded is named by trusted_proxies_header; X-Forwarded-For is
    // then the client's.
    let forwarded = [
        ("SYNCTO_TRUSTED_PROXIES", "127.0.0.1"),
        ("SYNCTO_TRUSTED_PROXIES_HEADER", "forwarded"),
    ];
    let line = logged(
        &forwarded,
        &[xff, ("Forwarded", "for=\"[2001:db8::9]:443\"")],
    );
    assert!(line.contains(" remote=2001:db8::9 rid="), "{line}");
    let line = logged(&forwarded, &[xff]);
    assert!(line.contains(" remote=127.0.0.1 rid="), "{line}");
    // A peer outside the trusted networks is logged as itself.
    let line = logged(&[("SYNCTO_TRUSTED_PROXIES", "10.0.0.0/8")], &[xff]);
    assert!(line.contains(" remote=127.0.0.1 rid="), "{line}");
    // Whatever a client writes, only an IP address is logged.
    let line = logged(&trusted, &[("X-Forwarded-For", "evil remote=1.2.3.4")]);
    assert!(line.contains(" remote=127.0.0.1 rid="), "{line}");
}

/// One request over a unix socket; the raw answer.
fn over_unix(path: &std::path::Path, head: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn unix_socket_gets_its_mode_in_process() {
    let dir = std::env::temp_dir().join(format!("syncto-ops-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("syncto.sock");
    let fake = Fake::start();
    let config = syncto::config::Config {
        listen: Listen::Unix(path.clone()),
        // An unusual mode, so that no umask could have produced it by chance.
        unix_socket_mode: Some(0o604),
        ..test_config(&fake)
    };
    let (running, _app) = syncto::start(config).expect("server starts");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o604, "{mode:o}");
    let answer = over_unix(
        &path,
        "GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A socket file left by a server that crashed (nothing answers on it) is replaced, and
/// the server starts; one something answers on, or a path that is not a socket, stops the
/// start with a message that says so, and is left as it was. (A crash used to make every
/// restart fail with "Address already in use".)
#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = std::env::temp_dir().join(format!("syncto-ops-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("syncto.sock");
    let fake = Fake::start();
    let config = || syncto::config::Config {
        listen: Listen::Unix(path.clone()),
        unix_socket_mode: Some(0o660),
        ..test_config(&fake)
    };
    let lbheartbeat = "GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n";
    // Stale: bound, then its process gone (the file stays).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (running, _app) = syncto::start(config()).expect("a stale socket is replaced");
    assert!(over_unix(&path, lbheartbeat).starts_with("HTTP/1.1 200"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");
    // Live: a second server on the same path refuses to start, and the first one
    // still answers there.
    let err = match syncto::start(config()) {
        Ok(_) => panic!("a second server started on a live socket"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("another process answers on this socket"),
        "{err}"
    );
    assert!(err.contains("stop it, or choose another path"), "{err}");
    assert!(over_unix(&path, lbheartbeat).starts_with("HTTP/1.1 200"));
    running.shutdown();
    assert!(!path.exists(), "the socket is removed on a clean stop");
    // Not a socket: left alone.
    std::fs::write(&path, "keep me").unwrap();
    let err = match syncto::start(config()) {
        Ok(_) => panic!("started over a regular file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    // Nothing of the private directories it binds in is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("syncto.sock")]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bind_unix_flag_with_mode_and_trusted_socket_peers() {
    let dir = std::env::temp_dir().join(format!("syncto-ops-bind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let mut child = Child::spawn(
        syncto()
            .env("SYNCTO_UNIX_SOCKET_MODE", "0640")
            .env("SYNCTO_TRUSTED_PROXIES", "unix")
            .arg("--bind")
            .arg(format!("unix:{}", path.display()))
            .stderr(Stdio::piped())
            .stdout(Stdio::null()),
    );
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while !line.contains("listening on unix:") {
        assert!(Instant::now() < deadline, "no 'listening on' line");
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "{mode:o}");
    let answer = over_unix(
        &path,
        "GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: s\r\nX-Forwarded-For: 192.0.2.44\r\n\
         Connection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    let summary = log
        .lines()
        .find(|l| l.contains("GET /v1/__lbheartbeat__"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(summary.contains(" remote=192.0.2.44 rid="), "{summary}");
    assert!(!path.exists(), "the socket is removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The id of a request ties its answer (`X-Request-Id`), its summary line and the error line
/// its upstream failure logged; a trusted proxy's id is kept, anyone else's is not.
#[test]
fn a_request_id_ties_the_answer_its_line_and_its_upstream_errors() {
    let fake = Fake::start();
    // Nothing listens on port 1: every Token Server exchange fails, and is logged.
    let env = [
        ("SYNCTO_TOKEN_SERVER_URL", "http://127.0.0.1:1/"),
        ("SYNCTO_TRUSTED_PROXIES", "10.0.0.0/8"),
    ];
    let (mut child, port, mut stderr) = spawn_with(&fake, &env);
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let failed = request(&client(), "GET", &url(&records("tabs")), &[BEARER], None);
    assert_eq!(failed.status, 503, "{}", failed.body);
    let rid = failed
        .header("X-Request-Id")
        .expect("X-Request-Id")
        .to_owned();
    assert_eq!(rid.len(), 16, "{rid}");
    // A client's own id is not believed from a peer outside trusted_proxies.
    let claimed = [("X-Request-Id", "chosen-by-client")];
    let other = request(
        &client(),
        "GET",
        &url("/v1/__lbheartbeat__"),
        &claimed,
        None,
    );
    let other_rid = other
        .header("X-Request-Id")
        .expect("X-Request-Id")
        .to_owned();
    assert!(
        other_rid != rid && other_rid != "chosen-by-client",
        "{other_rid}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    let tagged: Vec<&str> = log
        .lines()
        .filter(|l| l.ends_with(&format!(" rid={rid}")))
        .collect();
    assert_eq!(tagged.len(), 2, "{log}");
    assert!(
        tagged[0].contains(" ERROR token server unreachable"),
        "{log}"
    );
    assert!(
        tagged[1].contains(&format!("GET {} 503 ", records("tabs"))),
        "{log}"
    );
    assert!(log.contains("GET /v1/__lbheartbeat__ 200 "), "{log}");
    assert!(log.contains(&format!(" rid={other_rid}")), "{log}");
    assert!(!log.contains("chosen-by-client"), "{log}");

    // Behind a trusted proxy, its id (nginx's $request_id) is the request's.
    let (mut child, port, mut stderr) =
        spawn_with(&fake, &[("SYNCTO_TRUSTED_PROXIES", "127.0.0.1")]);
    let from_proxy = [("X-Request-Id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")];
    let url = format!("http://127.0.0.1:{port}/v1/__lbheartbeat__");
    let r = request(&client(), "GET", &url, &from_proxy, None);
    assert_eq!(r.header("X-Request-Id"), Some(from_proxy[0].1));
    // One that is not a plain token is replaced, not echoed.
    let r = request(&client(), "GET", &url, &[("X-Request-Id", "a b")], None);
    assert_ne!(r.header("X-Request-Id"), Some("a b"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(
        log.contains(" rid=0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        "{log}"
    );
}

/// `log_user_ids = hashed`: a user's key id is not in its request lines; the bucket shows
/// as the user's tag in the statsd `users` set instead, so logs and metrics still agree.
#[test]
fn hashed_user_ids_keep_the_key_id_out_of_the_log() {
    let fake = Fake::start();
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    let statsd_url = format!("udp://{}", statsd.local_addr().unwrap());
    let run = |hashed: bool| -> (String, Vec<String>) {
        let mut env = vec![("SYNCTO_STATSD_URL", statsd_url.as_str())];
        if hashed {
            env.push(("SYNCTO_LOG_USER_IDS", "hashed"));
        }
        let (mut child, port, mut stderr) = spawn_with(&fake, &env);
        let url = format!("http://127.0.0.1:{port}{}", records("tabs"));
        let r = request(&client(), "GET", &url, &[BEARER], None);
        assert_eq!(r.status, 200, "{}", r.body);
        let metrics = statsd_lines(&statsd, Duration::from_millis(300));
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        (log, metrics)
    };
    let (raw, _) = run(false);
    assert!(
        raw.contains(&format!("GET {} 200 ", records("tabs"))),
        "{raw}"
    );
    let (hashed, metrics) = run(true);
    assert!(!hashed.contains(KID), "{hashed}");
    let tag = metrics
        .iter()
        .find_map(|m| m.strip_prefix("syncto.users:")?.strip_suffix("|s"))
        .unwrap_or_else(|| panic!("no users set: {metrics:?}"));
    let path = format!("/v1/buckets/hmac:{tag}/collections/tabs/records");
    assert!(hashed.contains(&format!("GET {path} 200 ")), "{hashed}");
}

/// One Alert per answer, by one rule (kinto/alert.rs): the ended service, then the Sync
/// node's own alert, then the coming end of service, then the X-Client-State deprecation.
#[test]
fn one_alert_per_answer_the_most_important_one() {
    let node_alert = || {
        fakes::Canned::new(200, "[]")
            .with("X-Weave-Alert", "Server is going away")
            .with("X-Last-Modified", "1000.00")
    };
    let alerts = |r: &Resp| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("alert"))
            .map(|(_, v)| v.clone())
            .collect()
    };
    // Ahead of the end of service: the node's alert is about this very answer and wins over
    // the soft-eol every answer carries, and over the deprecation advice.
    let s = with_eos(now() + 86_400, None);
    s.fake.script_sync([node_alert()]);
    let with_cs = [BEARER, ("X-Client-State", CS)];
    let r = s.get(&records("tabs"), &with_cs);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(alerts(&r), ["Server is going away"]);
    // Without the node's: the soft-eol wins over the deprecation advice.
    let r = s.get(&records("tabs"), &with_cs);
    assert_eq!(alerts(&r).len(), 1, "{:?}", r.headers);
    assert_eq!(alert(&r)["code"], "soft-eol");
    assert!(!alerts(&r)[0].contains("X-Client-State"));
    // Without eos: the deprecation advice is the one.
    let plain = Syncto::start();
    let r = plain.get(&records("tabs"), &with_cs);
    assert_eq!(alerts(&r).len(), 1, "{:?}", r.headers);
    assert!(alerts(&r)[0].contains("X-Client-State"), "{:?}", r.headers);
    // Once ended: hard-eol and nothing else.
    let ended = with_eos(now() - 1, None);
    let r = ended.get(&records("tabs"), &with_cs);
    assert_eq!(r.status, 410);
    assert_eq!(alerts(&r).len(), 1, "{:?}", r.headers);
    assert_eq!(alert(&r)["code"], "hard-eol");
}
