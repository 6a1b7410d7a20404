//! How the workers are shared, as clients see it: one user's requests hold at most its
//! share of the workers; one user's writes to a collection run one at a time and a tick
//! apart without any worker waiting on another's; a request's time in the queue counts
//! from when it was queued, not from when its upload began.

use crate::support::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use syncto::config::WriteSwitch;

/// A second user: its own token and key id.
const KID_B: &str = "5678-Yw3NKWbEM2aRElRIu7JbTw";
const BEARER_B: (&str, &str) = ("Authorization", "Bearer token-of-b");

fn records_of(kid: &str, coll: &str) -> String {
    format!("/v1/buckets/{kid}/collections/{coll}/records")
}

/// Wait until `done` holds (checked every few milliseconds, for at most 20 s).
#[track_caller]
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn writable_tabs(c: &mut syncto::config::Config) {
    c.write_switches.insert(
        "tabs".into(),
        WriteSwitch {
            put: true,
            delete: true,
        },
    );
}

#[test]
fn a_user_over_its_share_of_workers_waits_while_another_is_served() {
    // Two workers: one user may hold one.
    let s = Syncto::with(|c| {
        c.workers = 2;
        c.queue_timeout = Duration::from_millis(5000);
    });
    // Both users have their credentials already: only storage calls follow.
    assert_eq!(s.auth_get(&records("tabs")).status, 200);
    assert_eq!(s.get(&records_of(KID_B, "tabs"), &[BEARER_B]).status, 200);
    s.fake.hold_sync("/storage/slow");
    let heavy: Vec<_> = (0..3)
        .map(|_| {
            let base = s.base.clone();
            std::thread::spawn(move || {
                request(
                    &client(),
                    "GET",
                    &format!("{base}{}", records("slow")),
                    &[BEARER],
                    None,
                )
            })
        })
        .collect();
    // All three are inside Syncto: at the node, or waiting for a worker.
    wait_for("the heavy user's requests are in", || {
        s.fake.held_sync() + s.running().queued() == 3
    });
    let r = s.get(&records_of(KID_B, "tabs"), &[BEARER_B]);
    assert_eq!(r.status, 200, "{}", r.body);
    // The heavy user still holds one worker, and its other requests wait.
    assert_eq!(s.fake.held_sync(), 1);
    assert_eq!(s.running().queued(), 2);
    s.fake.release_sync();
    for t in heavy {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// One account through several tokens is one user, once the credentials of each token are
/// known: it cannot take more than its share by sending each request with another token.
#[test]
fn several_tokens_of_one_account_hold_one_share_of_workers() {
    let s = Syncto::with(|c| {
        c.workers = 2;
        c.queue_timeout = Duration::from_millis(5000);
    });
    // Three tokens of one account (one key id): the fake Token Server gives each its own
    // Hawk credentials for the same user on the node.
    let tokens = ["Bearer first", "Bearer second", "Bearer third"];
    for t in tokens {
        let r = s.get(&records("tabs"), &[("Authorization", t)]);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(s.get(&records_of(KID_B, "tabs"), &[BEARER_B]).status, 200);
    s.fake.hold_sync("/storage/slow");
    let heavy: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let base = s.base.clone();
            std::thread::spawn(move || {
                request(
                    &client(),
                    "GET",
                    &format!("{base}{}", records("slow")),
                    &[("Authorization", t)],
                    None,
                )
            })
        })
        .collect();
    wait_for("the account's requests are in", || {
        s.fake.held_sync() + s.running().queued() == 3
    });
    let r = s.get(&records_of(KID_B, "tabs"), &[BEARER_B]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.fake.held_sync(), 1);
    s.fake.release_sync();
    for t in heavy {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn writes_of_one_user_to_a_collection_go_one_at_a_time_and_a_tick_apart_without_the_pacer() {
    // The pacer inside the storage client off: only the pool keeps these writes apart,
    // and the fake node refuses (503, as syncstorage-rs) a write that meets another of
    // the same user and collection, or falls in the same 10 ms tick as the last one.
    let s = Syncto::with(|c| {
        c.workers = 8;
        c.write_conflict_budget = Duration::ZERO;
        writable_tabs(c);
    });
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let base = s.base.clone();
            std::thread::spawn(move || {
                let agent = client();
                (0..10)
                    .map(|i| {
                        let id = format!("w{w}-{i}");
                        let body = json!({"data": {"payload": format!("p{i}")}}).to_string();
                        let url = format!("{base}{}", record("tabs", &id));
                        (
                            id,
                            request(&agent, "PUT", &url, &[BEARER, JSON], Some(&body)),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(String, Resp)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    for (id, r) in &results {
        assert_eq!(r.status, 200, "{id}: {}", r.body);
    }
    assert_eq!(s.fake.conflicts(), 0, "no write met another");
    let listed = s.auth_get(&records("tabs")).json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect::<BTreeSet<_>>();
    let written: BTreeSet<String> = results.into_iter().map(|(id, _)| id).collect();
    assert_eq!(listed, written);
}

#[test]
fn a_body_slower_than_the_queue_timeout_is_served_once_a_worker_is_free() {
    let s = Syncto::with(|c| {
        c.workers = 1;
        c.queue_timeout = Duration::from_millis(2000);
        writable_tabs(c);
    });
    assert_eq!(s.auth_get(&records("tabs")).status, 200);
    assert_eq!(s.get(&records_of(KID_B, "tabs"), &[BEARER_B]).status, 200);
    // The only worker is busy with another user's read.
    s.fake.hold_sync("/storage/slow");
    let base = s.base.clone();
    let busy = std::thread::spawn(move || {
        request(
            &client(),
            "GET",
            &format!("{base}{}", records_of(KID_B, "slow")),
            &[BEARER_B],
            None,
        )
    });
    wait_for("the worker is busy", || s.fake.held_sync() == 1);
    // A write whose body takes 3 s to arrive, longer than the queue timeout (and longer
    // than 1 KiB: the listener reads smaller bodies with the head).
    let payload = "slow upload ".repeat(700);
    let body = json!({"data": {"payload": payload}}).to_string();
    let mut c = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    write!(
        c,
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        record("tabs", "up"),
        BEARER.1,
        body.len()
    )
    .unwrap();
    let quarter = body.len() / 4;
    for i in 0..3 {
        c.write_all(&body.as_bytes()[i * quarter..(i + 1) * quarter])
            .unwrap();
        std::thread::sleep(Duration::from_millis(1000));
    }
    c.write_all(&body.as_bytes()[3 * quarter..]).unwrap();
    // Queued now, for less than the queue timeout: no answer yet (a queue time counted
    // from the start of the upload would have passed, and a 503 would come within a
    // quarter of the queue timeout).
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut first = [0u8; 1];
    match c.read(&mut first) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => {
            let mut rest = String::new();
            let _ = c.read_to_string(&mut rest);
            panic!(
                "answered while queued: {other:?} {}{rest}",
                first[0] as char
            );
        }
    }
    // The worker is free: the write is served.
    s.fake.release_sync();
    assert_eq!(busy.join().unwrap().status, 200);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = c.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(
        s.fake.record(KID, "tabs", "up").map(|b| b.payload),
        Some(payload)
    );
}

/// Answers read from `c` until the server closes it (each counted by its status line).
fn answers_until_closed(c: &mut UnixStream) -> usize {
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    text.matches("HTTP/1.1 200 ").count()
}

/// Write as much of `bytes` as the socket takes without waiting.
fn write_what_fits(c: &mut UnixStream, bytes: &[u8]) -> usize {
    c.set_nonblocking(true).unwrap();
    let mut sent = 0;
    while sent < bytes.len() {
        match c.write(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    sent
}

/// A client that sends requests without reading the answers can leave its connection
/// with no room for one more: the 503 the shedder owes it then cannot be written. The
/// shedder leaves it to a thread of its own at once instead of waiting (up to a second
/// each, before), so the other requests past their queue deadline get their 503 in time.
#[test]
fn clients_that_do_not_read_do_not_hold_up_the_503s_of_others() {
    let dir = std::env::temp_dir().join(format!("syncto-shed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("syncto.sock");
    let _ = std::fs::remove_file(&path);
    let fake = fakes::Fake::start();
    let config = syncto::config::Config {
        listen: syncto::listen::Listen::Unix(path.clone()),
        workers: 1,
        queue_timeout: Duration::from_millis(200),
        response_timeout: Duration::from_secs(3),
        ..test_config(&fake)
    };
    let (running, _app) = syncto::start(config).expect("server starts");
    let heartbeat = b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: s\r\n\r\n";

    // How many answers a connection takes before a client that reads none leaves no room
    // for another: its thread then waits on the next one until the response limit, and
    // closes it. (On a unix socket an answer is queued whole or not at all, and the room
    // counts queued answers, so every connection stops at the same count.)
    let mut probe = UnixStream::connect(&path).unwrap();
    let sent = write_what_fits(&mut probe, &heartbeat.repeat(4000));
    wait_for("the probe's connection is open", || {
        running.connections() == 1
    });
    wait_for("the probe's connection is closed", || {
        running.connections() == 0
    });
    let room = answers_until_closed(&mut probe);
    assert!(
        room > 0 && room < sent / heartbeat.len(),
        "{room} of {sent} bytes"
    );

    // The only worker is busy: every upstream request queues, and is shed after 200 ms.
    fake.hold_sync("/storage/slow");
    let busy_path = path.clone();
    let busy = std::thread::spawn(move || {
        let mut c = UnixStream::connect(&busy_path).unwrap();
        let kid_b = "5678-Yw3NKWbEM2aRElRIu7JbTw";
        write!(
            c,
            "GET /v1/buckets/{kid_b}/collections/slow/records HTTP/1.1\r\nHost: s\r\n\
             Authorization: Bearer token-of-b\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    });
    wait_for("the worker is busy", || fake.held_sync() == 1);

    // Ten clients fill their connections with answers, then ask for records.
    let upstream = format!(
        "GET {} HTTP/1.1\r\nHost: s\r\nAuthorization: {}\r\n\r\n",
        records("tabs"),
        BEARER.1
    );
    let mut stuck = Vec::new();
    for _ in 0..10 {
        let mut c = UnixStream::connect(&path).unwrap();
        let mut bytes = heartbeat.repeat(room);
        bytes.extend_from_slice(upstream.as_bytes());
        assert_eq!(write_what_fits(&mut c, &bytes), bytes.len());
        stuck.push(c);
    }
    wait_for("their requests are queued", || running.queued() == 10);

    // Another client's request is queued behind them: its 503 comes at its deadline, not
    // after ten seconds of writes that cannot go through.
    let mut victim = UnixStream::connect(&path).unwrap();
    victim
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    victim.write_all(upstream.as_bytes()).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = victim.read(&mut answer).expect("the 503 in time");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("Retry-After: "), "{answer}");

    fake.release_sync();
    assert!(busy.join().unwrap().starts_with("HTTP/1.1 200 "));
    drop(stuck);
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
