//! Clients that take their answers slowly, or not at all: the send deadline
//! that moves on with progress, the bound on memory held by answers waiting
//! for them, and eviction that spares a download in progress.

use crate::support::*;
use listener::{Limits, Request, Response, Server, StatusCode};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// A server that answers every request with `size` bytes the way Syncto's
/// workers do: written for 20 ms, the rest handed over to a thread of its
/// own.
fn large_answers(limits: Limits, size: usize) -> (Server, SocketAddr) {
    let answer = expected(size);
    server(
        limits,
        Serve(move |mut rq: Request| {
            rq.set_send_limit(Duration::from_millis(20));
            let body = answer.clone();
            if let Err(unsent) =
                rq.respond_or_hand_over(Response::new(StatusCode(200), vec![], body))
            {
                unsent.finish_elsewhere(|| {});
            }
        }),
    )
}

const GET: &[u8] = b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads one answer, `chunk` bytes at a time with `pause` between reads,
/// stopping after `stop_after` bytes if given; returns the body read and
/// whether the server closed the connection.
fn take(
    c: &mut TcpStream,
    chunk: usize,
    pause: Duration,
    stop_after: Option<usize>,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    let mut body_at = None;
    let mut want = usize::MAX;
    loop {
        if let Some(at) = body_at {
            if got.len() - at >= want || stop_after.is_some_and(|n| got.len() - at >= n) {
                return (got[at..].to_vec(), false);
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => {
                return (
                    got[body_at.unwrap_or(got.len()).min(got.len())..].to_vec(),
                    true,
                );
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if body_at.is_none() {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                want = head
                    .split("content-length: ")
                    .nth(1)
                    .and_then(|v| v.split("\r\n").next())
                    .and_then(|v| v.parse().ok())
                    .unwrap();
                body_at = Some(end + 4);
            }
        }
        thread::sleep(pause);
    }
}

fn expected(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// A client that takes a large answer steadily (64 KiB every 50 ms, at
/// most 1.3 MB/s) gets all of it, though that takes several times the send
/// limit (1 s): each 64 KiB it takes moves the deadline on by a second, so
/// that a reader that a loaded machine leaves waiting for its turn is not
/// cut. (With a fixed limit on the whole answer it was cut after 1 s; with
/// a second per 512 KiB, the reader of a loaded test run was.)
#[test]
fn a_client_that_keeps_taking_a_large_answer_gets_it_past_the_send_limit() {
    let size = 6_000_000;
    let limits = Limits {
        send_timeout: Duration::from_secs(1),
        min_send_rate: 64 * 1024,
        ..Limits::default()
    };
    let (_server, addr) = large_answers(limits, size);
    let mut c = connect(addr);
    c.write_all(GET).unwrap();
    let started = Instant::now();
    let (body, closed) = take(&mut c, 64 * 1024, Duration::from_millis(50), None);
    assert!(
        !closed,
        "cut after {} bytes in {:?}",
        body.len(),
        started.elapsed()
    );
    assert_eq!(body, expected(size));
    // The connection goes on.
    c.write_all(GET).unwrap();
    let (body, _) = take(&mut c, 1 << 20, Duration::ZERO, None);
    assert_eq!(body.len(), size);
}

/// A client that stops taking its answer loses the connection once the
/// time its bytes earned is spent, long before its answer could be out.
#[test]
fn a_client_that_stops_taking_its_answer_is_cut() {
    let size = 8_000_000;
    let limits = Limits {
        send_timeout: Duration::from_secs(1),
        min_send_rate: 4 * 1024 * 1024,
        ..Limits::default()
    };
    let (server, addr) = large_answers(limits, size);
    let mut c = connect(addr);
    c.write_all(GET).unwrap();
    let (first, closed) = take(&mut c, 64 * 1024, Duration::ZERO, Some(1_000_000));
    assert!(!closed);
    // Nothing more read for a while: the server gives up and frees the answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.unsent_bytes() > 0 {
        assert!(Instant::now() < deadline, "still held");
        thread::sleep(Duration::from_millis(50));
    }
    let (rest, closed) = take(&mut c, 1 << 20, Duration::ZERO, None);
    assert!(closed, "the connection must end");
    assert!(first.len() + rest.len() < size, "the whole answer went out");
}

/// Three answers of 8 MB held for clients that never read, under a bound of 25 MB, by a
/// server that answers as [`large_answers`] does; and how to wait on it.
struct Held {
    server: Server,
    addr: SocketAddr,
    held: Vec<TcpStream>,
}

const HELD: usize = 8_000_000;
const BOUND: usize = 25_000_000;

impl Held {
    /// `stalled_after` as given; a send limit longer than any test, so that only the
    /// bound ever cuts an answer.
    fn start(stalled_after: Duration) -> Held {
        let limits = Limits {
            max_unsent_bytes: BOUND,
            stalled_after,
            send_timeout: Duration::from_secs(600),
            ..Limits::default()
        };
        let (server, addr) = large_answers(limits, HELD);
        let mut held = Held {
            server,
            addr,
            held: Vec::new(),
        };
        for n in 1..=3 {
            let c = held.ask();
            held.held.push(c);
            held.wait_for("handed over", &|s| s.unsent_bytes() >= n * HELD);
        }
        held
    }

    fn ask(&self) -> TcpStream {
        let mut c = connect(self.addr);
        c.write_all(GET).unwrap();
        c
    }

    fn wait_for(&self, what: &str, ok: &dyn Fn(&Server) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok(&self.server) {
            assert!(
                Instant::now() < deadline,
                "{what}: {} bytes held",
                self.server.unsent_bytes()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Answers waiting for clients that never read hold at most
/// `max_unsent_bytes`: past it a new one is dropped (its connection closed)
/// while the others are not stalled. (They count as stalled after an hour
/// here: with the default 2 s, a loaded machine made the newcomers arrive
/// after the held ones had stalled, and they were rightly let in.)
#[test]
fn answers_held_for_clients_that_do_not_read_stay_within_the_bound() {
    let mut h = Held::start(Duration::from_secs(3600));
    // A fourth, fifth, sixth: dropped, their connections closed (the server
    // is back to three), the three kept.
    for n in 1..=3 {
        let mut c = h.ask();
        h.wait_for("the new one dropped", &|s| s.answers_dropped() == n);
        let (body, closed) = take(&mut c, 1 << 20, Duration::ZERO, None);
        assert!(closed && body.len() < HELD, "{} bytes", body.len());
        assert!(
            h.server.unsent_bytes() <= BOUND,
            "{}",
            h.server.unsent_bytes()
        );
    }
    // The three are whole.
    for c in &mut h.held {
        let (body, closed) = take(c, 1 << 20, Duration::ZERO, None);
        assert!(!closed, "cut after {} bytes", body.len());
        assert_eq!(body, expected(HELD));
    }
    h.wait_for("freed", &|s| s.unsent_bytes() == 0);
}

/// Once clients have taken nothing for 2 s (the default `stalled_after`), a
/// stalled one gives way to a newcomer (the longest stalled: see the unit
/// tests), one only.
#[test]
fn a_stalled_answer_gives_way_to_a_new_one() {
    let mut h = Held::start(Limits::default().stalled_after);
    // The kernel may still take a few bytes of the answers for a while: a
    // new one is tried each second until one gets in.
    let mut dropped = 0;
    let mut admitted = false;
    for _ in 0..30 {
        thread::sleep(Duration::from_secs(1));
        let mut newcomer = h.ask();
        h.wait_for("a decision", &|s| s.answers_dropped() > dropped);
        dropped = h.server.answers_dropped();
        assert!(
            h.server.unsent_bytes() <= BOUND,
            "{}",
            h.server.unsent_bytes()
        );
        let (body, closed) = take(&mut newcomer, 1 << 20, Duration::ZERO, None);
        if !closed {
            assert_eq!(body, expected(HELD));
            admitted = true;
            break;
        }
    }
    assert!(admitted, "no stalled answer ever gave way");
    let mut cut = 0;
    for c in &mut h.held {
        let (body, closed) = take(c, 1 << 20, Duration::ZERO, None);
        if closed {
            assert!(body.len() < HELD);
            cut += 1;
        } else {
            assert_eq!(body, expected(HELD));
        }
    }
    assert_eq!(cut, 1);
    // Every answer taken or dropped: nothing is held.
    h.wait_for("freed", &|s| s.unsent_bytes() == 0);
}

/// Past max_connections, a connection whose client is taking its answer is
/// not evicted: a download at about 4 MB/s survives 40 bare connections
/// arriving at max_connections = 16 (they evict each other). It used to be
/// the first to go, as the oldest connection not being served. (Its client
/// counts as stalled only after 30 s without taking anything, not 2 s: a
/// loaded machine may leave the reader waiting for its turn.)
#[test]
fn a_download_in_progress_survives_a_flood_of_bare_connections() {
    let size = 14_700_000;
    let limits = Limits {
        max_connections: 16,
        stalled_after: Duration::from_secs(30),
        ..Limits::default()
    };
    let (server, addr) = large_answers(limits, size);
    let mut download = connect(addr);
    download.write_all(GET).unwrap();
    let reader = thread::spawn(move || {
        let got = take(&mut download, 64 * 1024, Duration::from_millis(16), None);
        (got, download)
    });
    // The download is under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.unsent_bytes() == 0 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(10));
    }
    let mut bare: Vec<TcpStream> = Vec::new();
    for _ in 0..40 {
        bare.push(connect(addr));
        thread::sleep(Duration::from_millis(20));
    }
    let ((body, closed), _download) = reader.join().unwrap();
    assert!(!closed, "the download was cut after {} bytes", body.len());
    assert_eq!(body.len(), size);
    assert_eq!(body, expected(size));
    // The newest bare ones are open, the oldest were evicted.
    let mut oldest = bare.remove(0);
    oldest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(oldest.read(&mut buf), Ok(0)),
        "the oldest bare one is evicted"
    );
    let _ = ErrorKind::WouldBlock;
}
