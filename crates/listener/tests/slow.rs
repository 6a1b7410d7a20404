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
    server(
        limits,
        Serve(move |mut rq: Request| {
            rq.set_send_limit(Duration::from_millis(20));
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
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

/// A client that takes a large answer steadily (about 1.3 MB/s here) gets
/// all of it, though that takes several times the send limit (1 s): each
/// 512 KiB it takes moves the deadline on. (With a fixed limit on the whole
/// answer it was cut after 1 s.)
#[test]
fn a_client_that_keeps_taking_a_large_answer_gets_it_past_the_send_limit() {
    let size = 6_000_000;
    let limits = Limits {
        send_timeout: Duration::from_secs(1),
        min_send_rate: 512 * 1024,
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

/// Answers waiting for clients that never read hold at most
/// `max_unsent_bytes`: past it a new one is dropped (its connection closed)
/// while the others are young; once they have stalled 2 s, the longest
/// stalled makes room for the new one.
#[test]
fn answers_held_for_clients_that_do_not_read_stay_within_the_bound() {
    let size = 8_000_000;
    let limits = Limits {
        max_unsent_bytes: 25_000_000,
        ..Limits::default()
    };
    let (server, addr) = large_answers(limits, size);
    let ask = || {
        let mut c = connect(addr);
        c.write_all(GET).unwrap();
        c
    };
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{what}: {} bytes held",
                server.unsent_bytes()
            );
            thread::sleep(Duration::from_millis(20));
        }
    };
    // Three fit.
    let mut held: Vec<TcpStream> = Vec::new();
    for n in 1..=3 {
        held.push(ask());
        wait_for("handed over", &|| server.unsent_bytes() >= n * size);
    }
    // A fourth, fifth, sixth: dropped, their connections closed (the server
    // is back to three), the three kept.
    for n in 1..=3 {
        let mut c = ask();
        wait_for("the new one dropped", &|| server.answers_dropped() == n);
        let (body, closed) = take(&mut c, 1 << 20, Duration::ZERO, None);
        assert!(closed && body.len() < size, "{} bytes", body.len());
        assert!(
            server.unsent_bytes() <= 25_000_000,
            "{}",
            server.unsent_bytes()
        );
    }
    // Once clients have taken nothing for 2 s, a stalled one gives way to a
    // newcomer (the longest stalled: see the unit tests), one only. The
    // kernel may still take a few bytes of the answers for a while: a new
    // one is tried each second until one gets in.
    let mut dropped = 3;
    let mut admitted = false;
    for _ in 0..20 {
        thread::sleep(Duration::from_secs(1));
        let mut newcomer = ask();
        wait_for("a decision", &|| server.answers_dropped() > dropped);
        dropped = server.answers_dropped();
        assert!(
            server.unsent_bytes() <= 25_000_000,
            "{}",
            server.unsent_bytes()
        );
        let (body, closed) = take(&mut newcomer, 1 << 20, Duration::ZERO, None);
        if !closed {
            assert_eq!(body, expected(size));
            admitted = true;
            break;
        }
    }
    assert!(admitted, "no stalled answer ever gave way");
    let mut cut = 0;
    for c in &mut held {
        let (body, closed) = take(c, 1 << 20, Duration::ZERO, None);
        if closed {
            assert!(body.len() < size);
            cut += 1;
        } else {
            assert_eq!(body, expected(size));
        }
    }
    assert_eq!(cut, 1);
    // Every answer taken or dropped: nothing is held.
    wait_for("freed", &|| server.unsent_bytes() == 0);
}

/// Past max_connections, a connection whose client is taking its answer is
/// not evicted: a download at about 4 MB/s survives 40 bare connections
/// arriving at max_connections = 16 (they evict each other). It used to be
/// the first to go, as the oldest connection not being served.
#[test]
fn a_download_in_progress_survives_a_flood_of_bare_connections() {
    let size = 14_700_000;
    let limits = Limits {
        max_connections: 16,
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
