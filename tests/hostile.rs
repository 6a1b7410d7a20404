//! Hostile clients against the whole server: descriptor exhaustion, busy
//! workers, slow and oversized bodies, refusals as Kinto documents. Raw
//! sockets, so that what is asserted is what crosses the wire: status,
//! errno, headers, and whether the connection was closed. What the listener
//! does on its own (deadlines, framing, head limits, eviction) is tested in
//! `crates/listener/tests`.

use crate::support::child::{Child, DIE_WITH_TEST};
use crate::support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syncto::config::Config;

/// Short listener limits, so that a test never waits for the defaults.
fn short_limits(c: &mut Config) {
    c.request_head_timeout = Duration::from_secs(1);
    c.request_body_timeout = Duration::from_secs(1);
    c.keepalive_timeout = Duration::from_secs(1);
}

fn addr(s: &Syncto) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// What came back on a connection, and whether the server closed it (EOF
/// or reset) rather than leaving it open until our 10 s read timeout.
struct Wire {
    bytes: Vec<u8>,
    closed: bool,
}

impl Wire {
    fn answers(&self) -> Vec<Answer> {
        answers(&self.bytes)
    }

    /// Exactly one answer, and the connection closed after it.
    #[track_caller]
    fn only_answer_then_close(&self) -> Answer {
        let all = self.answers();
        assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(&self.bytes));
        assert!(self.closed, "the connection must be closed");
        all.into_iter().next().unwrap()
    }
}

fn read_until_close(stream: &mut TcpStream) -> Wire {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                return Wire {
                    bytes,
                    closed: true,
                };
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Wire {
                    bytes,
                    closed: false,
                };
            }
            Err(_) => {
                return Wire {
                    bytes,
                    closed: true,
                };
            }
        }
    }
}

/// Send `bytes` on a new connection and read until the server closes it.
fn exchange(addr: &str, bytes: &[u8]) -> Wire {
    let mut stream = connect(addr);
    // The server may close before taking everything (that is the point of
    // some tests): what it answered is still there to read.
    let _ = stream.write_all(bytes);
    read_until_close(&mut stream)
}

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// A Kinto error document with this status and errno.
    #[track_caller]
    fn assert_error(&self, status: u16, errno: u64) -> Value {
        assert_eq!(self.status, status, "{}\n{}", self.head, self.body);
        let doc: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        assert_eq!(doc["code"], status, "{doc}");
        assert_eq!(doc["errno"], errno, "{doc}");
        assert!(
            doc["error"].is_string() && doc["message"].is_string(),
            "{doc}"
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{}",
            self.head
        );
        doc
    }
}

/// The HTTP answers in a byte stream (each with a Content-Length body).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let rest = &bytes[end + 4..];
        let body = String::from_utf8_lossy(&rest[..len.min(rest.len())]).into_owned();
        bytes = &rest[len.min(rest.len())..];
        out.push(Answer { status, head, body });
    }
    out
}

const LBHEARTBEAT: &[u8] = b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n";

/// A Token Server that accepts connections and never answers, until dropped.
struct BlackHole {
    url: String,
    addr: String,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (held.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    h.lock().unwrap().push(stream);
                }
            }
        });
        BlackHole {
            url: format!("http://{addr}/"),
            addr,
            held,
            stop,
        }
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Wait until `n` upstream connections are held.
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.connections() < n {
            assert!(
                Instant::now() < deadline,
                "{} upstream calls",
                self.connections()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        // Closing the held connections ends the calls that wait on them.
        self.held.lock().unwrap().clear();
    }
}

/// GET the records of `tabs` with a token of its own (no shared cache
/// entry), in the background.
fn background_list(s: &Syncto, token: &str) -> std::thread::JoinHandle<Resp> {
    let url = format!("{}{}", s.base, records("tabs"));
    let auth = format!("Bearer {token}");
    std::thread::spawn(move || request(&client(), "GET", &url, &[("Authorization", &auth)], None))
}

/// A server whose Token Server accepts and never answers (its calls last
/// 30 s), with `queue_ms` of waiting for a worker, and `f`'s settings.
fn behind_a_black_hole(queue_ms: u64, f: impl FnOnce(&mut Config)) -> (BlackHole, Syncto) {
    let hole = BlackHole::start();
    let s = Syncto::with(|c| {
        c.token_server_url = hole.url.clone();
        c.upstream_timeout = Duration::from_secs(30);
        c.queue_timeout = Duration::from_millis(queue_ms);
        f(c);
    });
    (hole, s)
}

#[test]
fn requests_that_need_no_upstream_are_answered_while_every_worker_is_stuck() {
    let (hole, s) = behind_a_black_hole(30_000, |c| c.workers = 2);
    let stuck: Vec<_> = (0..3)
        .map(|i| background_list(&s, &format!("stuck-{i}")))
        .collect();
    hole.wait_for(2);
    // A client that gives up after 5 s: the stuck calls last 30 s.
    let quick = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let url = |p: &str| format!("{}{p}", s.base);
    let get = |p: &str, h: &[(&str, &str)]| request(&quick, "GET", &url(p), h, None);
    assert_eq!(get("/v1/__lbheartbeat__", &[]).status, 200);
    assert_eq!(get("/v1/__version__", &[]).status, 200);
    assert_eq!(get("/v1/", &[]).json()["project_name"], "syncto");
    let preflight = request(
        &quick,
        "OPTIONS",
        &url(&records("tabs")),
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(
        preflight.header("Access-Control-Allow-Methods"),
        Some("GET, HEAD, OPTIONS")
    );
    get(&records("tabs"), &[]).assert_error(401, 104);
    get(&records("tabs"), &[("Authorization", "Digest x")]).assert_error(401, 104);
    let r = request(
        &quick,
        "POST",
        &url(&records("tabs")),
        &[BEARER],
        Some("{}"),
    );
    r.assert_error(405, 115);
    let r = request(
        &quick,
        "PUT",
        &url(&record("tabs", "a")),
        &[BEARER, JSON],
        Some("{}"),
    );
    r.assert_error(405, 115);
    get("/v1/nowhere", &[]).assert_error(404, 111);
    assert_eq!(get("/buckets", &[]).status, 307);
    // None of those went upstream.
    assert_eq!(hole.connections(), 2);
    drop(hole);
    for t in stuck {
        assert_eq!(t.join().unwrap().status, 503);
    }
}

#[test]
fn a_request_that_finds_no_free_worker_is_shed_with_503() {
    let (hole, s) = behind_a_black_hole(200, |c| {
        c.workers = 1;
        c.retry_after_seconds = 7;
    });
    let stuck = background_list(&s, "stuck");
    hole.wait_for(1);
    let r = s.get(&records("tabs"), &[("Authorization", "Bearer other")]);
    let doc = r.assert_error(503, 201);
    assert!(doc["message"].as_str().unwrap().contains("overloading"));
    assert_eq!(r.header("Retry-After"), Some("7"));
    // The shed request never reached upstream, and the rest is served.
    assert_eq!(hole.connections(), 1);
    assert_eq!(s.get("/v1/__lbheartbeat__", &[]).status, 200);
    drop(hole);
    assert_eq!(stuck.join().unwrap().status, 503);
    // Workers free again: requests are served, not shed.
    assert_eq!(s.get("/v1/__heartbeat__", &[]).json()["sync"], false);
}

/// As above, after the server has been idle a while (its shedder, which
/// answers the requests no worker took in time, sleeps after 3 s without
/// any): the request that queues wakes it.
#[test]
fn a_request_queued_after_a_quiet_spell_is_still_shed_in_time() {
    let (hole, s) = behind_a_black_hole(200, |c| c.workers = 1);
    std::thread::sleep(Duration::from_millis(3500));
    let stuck = background_list(&s, "stuck");
    hole.wait_for(1);
    let r = s.get(&records("tabs"), &[("Authorization", "Bearer other")]);
    r.assert_error(503, 201);
    assert_eq!(hole.connections(), 1);
    drop(hole);
    assert_eq!(stuck.join().unwrap().status, 503);
}

/// Every request the listener refuses is a Kinto error document (errno
/// 107) that closes the connection, and none reaches upstream.
#[test]
fn refusals_are_kinto_documents_that_close_the_connection() {
    let s = Syncto::with(short_limits);
    let a = addr(&s);
    let long = format!("X-Long: {}", "a".repeat(16 * 1024));
    for (bytes, status) in [
        (b"GET /x\0y HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400),
        (
            format!(
                "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\
                 Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}",
                record("tabs", "a")
            )
            .into_bytes(),
            400,
        ),
        (b"GET /v1/ HTTP/1.1\r\nExpect: money\r\n\r\n".to_vec(), 417),
        (
            format!("GET /v1/ HTTP/1.1\r\n{long}\r\n\r\n").into_bytes(),
            431,
        ),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505),
        // A head never finished: the head limit (1 s).
        (b"GET /v1/ HTTP/1.1\r\nHost: a\r\n".to_vec(), 408),
    ] {
        let answer = exchange(&a, &bytes).only_answer_then_close();
        answer.assert_error(status, 107);
        assert_eq!(answer.header("Connection"), Some("close"), "{status}");
    }
    assert!(s.fake.sync_seen().is_empty());
    assert_eq!(s.fake.token_calls(), 0);
}

/// What of a path can reach a header (a redirect's `Location`) is
/// percent-encoded, so it stays one value.
#[test]
fn a_path_reaches_a_header_percent_encoded() {
    let s = Syncto::start();
    let wire = exchange(
        &addr(&s),
        b"GET /buckets/x%0D%0ASet-Cookie:%20a=b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let answer = &wire.answers()[0];
    assert_eq!(answer.status, 307);
    assert_eq!(
        answer.header("Location"),
        Some("http://a/v1/buckets/x%0D%0ASet-Cookie:%20a=b")
    );
    assert!(answer.header("Set-Cookie").is_none());
}

#[test]
fn a_slow_body_is_408_and_never_served() {
    let s = Syncto::with(|c| {
        short_limits(c);
        c.write_switches.insert(
            "tabs".into(),
            syncto::config::WriteSwitch {
                put: true,
                delete: true,
            },
        );
    });
    let mut stream = connect(&addr(&s));
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\n\
         Content-Length: 2000\r\n\r\n{{\"data\": {{",
        record("tabs", "a")
    );
    stream.write_all(head.as_bytes()).unwrap();
    let wire = read_until_close(&mut stream);
    wire.only_answer_then_close().assert_error(408, 107);
    // Cut short: nothing is written upstream.
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\ne\r\n{{\"data\": {{}}}}  \r\n",
        record("tabs", "b")
    );
    let mut stream = connect(&addr(&s));
    stream.write_all(head.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let wire = read_until_close(&mut stream);
    wire.only_answer_then_close().assert_error(400, 107);
    assert!(s.fake.sync_seen().is_empty());
}

#[test]
fn a_body_not_read_to_its_end_closes_the_connection() {
    let s = Syncto::with(|c| c.max_body_bytes = 1024);
    let a = addr(&s);
    // The "body" is requests: none of them may be answered.
    let smuggled: Vec<u8> = LBHEARTBEAT.repeat(400);
    for (framing, body) in [
        ("Content-Length: 5000000\r\n".to_string(), smuggled.clone()),
        (
            format!("Content-Length: {}\r\n", smuggled.len()),
            smuggled.clone(),
        ),
        (
            "Transfer-Encoding: chunked\r\n".to_string(),
            [
                format!("{:x}\r\n", smuggled.len()).into_bytes(),
                smuggled.clone(),
                b"\r\n0\r\n\r\n".to_vec(),
            ]
            .concat(),
        ),
    ] {
        let mut bytes = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\
             Content-Type: application/json\r\n{framing}\r\n",
            record("tabs", "a")
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(LBHEARTBEAT);
        let wire = exchange(&a, &bytes);
        let answer = wire.only_answer_then_close();
        answer.assert_error(413, 113);
        assert_eq!(answer.header("Connection"), Some("close"), "{framing}");
    }
    assert!(s.fake.sync_seen().is_empty());
    assert_eq!(s.get("/v1/__lbheartbeat__", &[]).status, 200);
}

/// `setpriv --pdeathsig KILL`, for the shell commands below (see [`Child`]).
fn dying_with_test() -> String {
    format!("setpriv {}", DIE_WITH_TEST.join(" "))
}

/// Start the binary under a limit set by `sh`'s `ulimit`.
fn spawn_limited(ulimit: &str, env: &[(&str, &str)]) -> (Child, u16, Arc<Mutex<String>>) {
    spawn_with(
        &format!(
            "ulimit {ulimit} && exec {} \"$0\" --bind 127.0.0.1:0",
            dying_with_test()
        ),
        env!("CARGO_BIN_EXE_syncto"),
        env,
    )
}

/// Start `binary` as `$0` of the shell command `sh`; returns the child, the
/// port it listens on, and its log so far (kept up to date). The commands
/// exec it through `setpriv --pdeathsig KILL`, so that it dies with the
/// test's thread even when the test's process is killed.
fn spawn_with(sh: &str, binary: &str, env: &[(&str, &str)]) -> (Child, u16, Arc<Mutex<String>>) {
    let mut child = Child::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(sh)
            .arg(binary)
            .env_remove("SYNCTO_INI")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&line);
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                let port = rest.split_whitespace().next().unwrap_or("").parse::<u16>();
                let _ = tx.send(port.unwrap_or(0));
            }
            line.clear();
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no 'listening on' line: {}", log.lock().unwrap()));
    (child, port, log)
}

#[test]
fn the_accept_loop_survives_running_out_of_descriptors() {
    // More connections allowed than descriptors: accept itself fails.
    let (child, port, log) = spawn_limited(
        "-n 128",
        &[("SYNCTO_WORKERS", "2"), ("SYNCTO_MAX_CONNECTIONS", "1000")],
    );
    let a = format!("127.0.0.1:{port}");
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&a).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains("cannot accept connections") {
        assert!(Instant::now() < deadline, "{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(idle);
    // Once the clients are gone, the server serves again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wire = exchange(
            &a,
            b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        if wire.answers().first().is_some_and(|r| r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
}

/// Threads of the processes whose real uid is `uid`.
fn user_tasks(uid: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next())
                == Some(uid)
        })
        .map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1)
        })
        .sum()
}

/// Start the binary with 40 tasks to spare under RLIMIT_NPROC. The limit is
/// not enforced for root: as root the server runs as a uid of its own (no
/// other test or process shares its count), from a copy of the binary any
/// user can reach.
fn spawn_with_40_tasks(
    tag: &str,
    env: &[(&str, &str)],
) -> (Child, u16, Arc<Mutex<String>>, RemovedOnDrop) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("syncto-nproc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("syncto");
    std::fs::copy(env!("CARGO_BIN_EXE_syncto"), &binary).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let me = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let (limit, user) = if me.trim() == "0" {
        let uid = 60_000 + std::process::id() % 5_000 + u32::from(tag == "default");
        (40, format!("--reuid={uid} --regid={uid} --clear-groups "))
    } else {
        (user_tasks(me.trim()) + 40, String::new())
    };
    let (child, port, log) = spawn_with(
        &format!(
            "exec prlimit --nproc={limit}:{limit} {} {user}\"$0\" --bind 127.0.0.1:0",
            dying_with_test()
        ),
        binary.to_str().unwrap(),
        env,
    );
    (child, port, log, RemovedOnDrop(dir))
}

/// A directory removed with everything in it when dropped (also when a test fails).
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Past the task limit (RLIMIT_NPROC here, as systemd's TasksMax would be),
/// a connection the system refuses a thread for gets the busy answer; the
/// listener goes on, and serves again once connections end. (It used to
/// panic on the accept thread: the process stayed up refusing every
/// connection.)
#[test]
fn a_task_limit_costs_busy_answers_never_the_listener() {
    let (child, port, log, dir) = spawn_with_40_tasks(
        "busy",
        &[
            ("SYNCTO_WORKERS", "2"),
            ("SYNCTO_MAX_CONNECTIONS", "1000"),
            ("SYNCTO_REQUEST_HEAD_TIMEOUT_SECONDS", "60"),
        ],
    );
    let a = format!("127.0.0.1:{port}");
    // More connections than 40 threads can serve.
    let idle: Vec<TcpStream> = (0..60).map(|_| connect(&a)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains("cannot start a thread") {
        assert!(Instant::now() < deadline, "{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connections that got no thread got the busy answer, a Kinto document,
    // and were closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = 'found: loop {
        for c in &idle {
            c.set_nonblocking(true).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let closed = loop {
                match (&*c).read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(_) => break false,
                }
            };
            if closed && !got.is_empty() {
                break 'found answers(&got).remove(0);
            }
        }
        assert!(Instant::now() < deadline, "{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    };
    busy.assert_error(503, 201);
    assert!(busy.header("Retry-After").is_some(), "{}", busy.head);
    // Once the clients are gone, the server serves again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wire = exchange(
            &a,
            b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        if wire.answers().first().is_some_and(|r| r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = log.lock().unwrap().clone();
    assert!(!text.contains("panic"), "{text}");
    drop(child);
    drop(dir);
}

/// The default max_connections leaves threads for every connection under
/// the task limit: 40 tasks, one of them the process's first, 2 workers and
/// 25 threads of its own: (39 - 25) / 2.5 = 5 connections.
#[test]
fn the_default_connection_limit_follows_the_task_limit() {
    let (child, _, log, dir) = spawn_with_40_tasks("default", &[("SYNCTO_WORKERS", "2")]);
    // The task limit's line follows the one that says where it listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains("task limit") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = log.lock().unwrap().clone();
    drop(child);
    drop(dir);
    assert!(text.contains("at most 5 connections"), "{text}");
    assert!(text.contains("task limit: 39 more threads"), "{text}");
}

#[test]
fn the_default_connection_limit_keeps_descriptors_for_the_rest() {
    // 128 descriptors, 2 workers: at most 128 - 64 - 4 = 60 connections.
    let (child, port, log) = spawn_limited(
        "-n 128",
        &[
            ("SYNCTO_WORKERS", "2"),
            ("SYNCTO_REQUEST_HEAD_TIMEOUT_SECONDS", "60"),
        ],
    );
    assert!(
        log.lock().unwrap().contains("at most 60 connections"),
        "{}",
        log.lock().unwrap()
    );
    let a = format!("127.0.0.1:{port}");
    let mut idle: Vec<TcpStream> = (0..70).map(|_| connect(&a)).collect();
    // The ten oldest silent connections were closed to make room for the
    // ten newest, which are served.
    for c in &mut idle[..10] {
        let wire = read_until_close(c);
        assert!(wire.closed && wire.bytes.is_empty());
    }
    for c in &mut idle[60..] {
        c.write_all(LBHEARTBEAT).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    let text = log.lock().unwrap().clone();
    assert!(text.contains("closed to make room"), "{text}");
    assert!(!text.contains("cannot accept"), "{text}");
    drop(child);
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    // The shell sets both limits, so the test runs whatever this machine's are: a soft limit
    // of 128 under a hard one of at most 1024 (an unprivileged process may lower its hard
    // limit, never raise it).
    let hard: u64 = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -H -n"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .map_or(1024, |h: u64| h.min(1024));
    assert!(
        hard > 128,
        "the hard open-files limit here is {hard}: at least 129 are needed to see it raised"
    );
    let (child, _, log) = spawn_limited(&format!("-S -n 128 && ulimit -H -n {hard}"), &[]);
    let text = log.lock().unwrap().clone();
    assert!(
        text.contains(&format!(
            "open files limit {hard} (raised from 128), hard limit {hard}"
        )),
        "{text}"
    );
    drop(child);
}

#[test]
fn a_client_that_never_reads_its_answers_holds_no_worker() {
    let s = Syncto::with(|c| c.workers = 1);
    // Answers of about 9 KiB: small enough for the worker to write itself.
    for i in 0..30 {
        s.fake
            .put(KID, "tabs", &format!("r{i:02}"), &"p".repeat(260), 1000 + i);
    }
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer reader\r\n\r\n",
        records("tabs")
    );
    // Thousands of pipelined requests, answers never read: the socket
    // buffers fill and a write can't finish.
    let mut greedy = connect(&addr(&s));
    let pipelined = request.repeat(4000);
    let writer = std::thread::spawn(move || {
        let _ = greedy.write_all(pipelined.as_bytes());
        greedy
    });
    // Another client is still served by the only worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = 0;
    while Instant::now() < deadline && served < 5 {
        let r = s.auth_get(&records("tabs"));
        assert_eq!(r.status, 200, "{}", r.body);
        served += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(served, 5);
    drop(writer);
}

#[test]
fn a_refused_request_gets_a_kinto_document_and_a_summary_line() {
    let (child, port, log) = spawn_limited("-n 4096", &[]);
    let a = format!("127.0.0.1:{port}");
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} line: {}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // A malformed header: the request line was read, so the line names it.
    let wire = exchange(
        &a,
        b"GET /v1/buckets?x=1 HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n",
    );
    wire.only_answer_then_close().assert_error(400, 107);
    wait_for("GET /v1/buckets?x=1 400 errno=107");
    // A bare LF before any request line: method and path unknown.
    let wire = exchange(&a, b"GET /x HTTP/1.1\n\n");
    wire.only_answer_then_close().assert_error(400, 107);
    wait_for("- - 400 errno=107");
    // Another HTTP version.
    let wire = exchange(&a, b"GET /v1/ HTTP/2.0\r\n\r\n");
    let doc = wire.only_answer_then_close().assert_error(505, 107);
    assert_eq!(doc["error"], "HTTP Version Not Supported");
    wait_for("- - 505 errno=107");
    drop(child);
}
