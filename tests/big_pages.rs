//! Big pages (a full history or bookmarks pull): 1,000 real-shaped records
//! in one answer of about half a megabyte, whole and exact, to a client
//! that reads it slowly, a client that asks for the head only, and two that
//! pipeline their requests.

use crate::support::*;
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const RECORDS: usize = 1000;

/// A payload as Firefox writes it: an encrypted JSON object (base64
/// ciphertext, IV, hex hmac) serialized into a string, so that the record's
/// `payload` is full of `\"` escapes on the wire. Deterministic.
fn payload(i: usize) -> String {
    let cipher: String = (0..300 + i % 97)
        .map(|k| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            alphabet[(k * 7 + i * 13) % 64] as char
        })
        .collect();
    serde_json::json!({
        "ciphertext": cipher,
        "IV": format!("{:022}==", i),
        "hmac": format!("{:064x}", i * 2_654_435_761),
    })
    .to_string()
}

/// A server whose `history` holds [`RECORDS`] records. Its sockets wait at
/// most a second in one write (the shortest of its limits), so that a
/// client pausing longer makes a write of the answer stop part way.
fn seeded() -> Syncto {
    let s = Syncto::with(|c| c.request_head_timeout = Duration::from_secs(1));
    for i in 0..RECORDS {
        s.fake.put(
            KID,
            "history",
            &format!("rec{i:05}"),
            &payload(i),
            170_000_000_000 + i as u64,
        );
    }
    s
}

fn request(method: &str) -> String {
    format!(
        "{method} {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow-reader\r\n\r\n",
        records("history")
    )
}

/// Read one answer: its head, and the body its Content-Length announces,
/// `chunk` bytes at a time with `pause` between reads.
fn read_answer(s: &mut TcpStream, chunk: usize, pause: Duration) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    let (head, want) = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length");
            got.drain(..end + 4);
            break (head, len);
        }
        let n = s.read(&mut buf).expect("the head");
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    };
    let mut reads = 0;
    while got.len() < want {
        std::thread::sleep(pause);
        let n = s.read(&mut buf[..chunk.min(want - got.len())]).unwrap();
        assert!(n > 0, "closed after {} of {want} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        reads += 1;
        // Part way through, the client stops reading for longer than the
        // server's socket waits in one write.
        if reads == 100 && !pause.is_zero() {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    (head, got)
}

fn check_page(body: &[u8]) {
    let doc: Value = serde_json::from_slice(body).expect("the whole page, as JSON");
    let data = doc["data"].as_array().unwrap();
    assert_eq!(data.len(), RECORDS);
    // Newest first; each record exactly as stored.
    for (k, r) in data.iter().enumerate() {
        let i = RECORDS - 1 - k;
        assert_eq!(r["id"], format!("rec{i:05}"));
        assert_eq!(r["payload"], payload(i));
        assert_eq!(r["last_modified"], 1_700_000_000_000 + 10 * i as u64);
    }
}

#[test]
fn a_big_page_reaches_a_slow_reader_whole() {
    let s = seeded();
    let normal = s.get(
        &records("history"),
        &[("Authorization", "Bearer slow-reader")],
    );
    assert_eq!(normal.status, 200, "{}", normal.body);
    assert!(normal.body.len() > 400_000, "{}", normal.body.len());
    check_page(normal.body.as_bytes());

    let addr = s.base.trim_start_matches("http://");
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    slow.write_all(request("GET").as_bytes()).unwrap();
    // 1 KiB reads, 1 ms apart, and a long pause: the server's send buffer
    // fills, and its write has to wait for the client and go on where it
    // stopped.
    let (head, body) = read_answer(&mut slow, 1024, Duration::from_millis(1));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(
        body,
        normal.body.as_bytes(),
        "not the same bytes as a fast client got"
    );

    // The connection carries on: a HEAD gets the same length and no body,
    // then a GET on the same connection gets the page again.
    slow.write_all(format!("{}{}", request("HEAD"), request("GET")).as_bytes())
        .unwrap();
    let mut head_only = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = slow.read(&mut head_only).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&head_only[..n]);
    }
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {}\r\n", body.len())),
        "{head}"
    );
    // What follows the HEAD's head is the next answer, not a body.
    let mut tail = got[end..].to_vec();
    let mut buf = vec![0u8; 64 * 1024];
    while tail.len() < 12 {
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0);
        tail.extend_from_slice(&buf[..n]);
    }
    assert!(
        tail.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&tail[..12])
    );
}

#[test]
fn pipelined_big_pages_arrive_in_order_and_whole() {
    let s = seeded();
    let addr = s.base.trim_start_matches("http://");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(request("GET").repeat(3).as_bytes()).unwrap();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let (head, body) = read_answer(&mut c, 64 * 1024, Duration::ZERO);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        check_page(&body);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

/// A payload of 8 KiB and more: 1,000 of them are more than the socket
/// buffers take while nobody reads.
fn big_payload(i: usize) -> String {
    format!("{}{}", payload(i), "x".repeat(8 * 1024))
}

fn seed_8mb(s: &Syncto) {
    for i in 0..RECORDS {
        s.fake.put(
            KID,
            "history",
            &format!("rec{i:05}"),
            &big_payload(i),
            170_000_000_000 + i as u64,
        );
    }
}

/// A client that asks for a big page and does not read it holds no worker:
/// with a single worker, another client is served three pages while the
/// first answer waits, and the first client then still gets its page whole.
/// The page (1,000 records of 8 KiB, 8 MB) is more than the socket buffers
/// take while nobody reads.
#[test]
fn a_client_not_reading_its_big_page_holds_no_worker() {
    let s = Syncto::with(|c| {
        c.workers = 1;
        c.request_head_timeout = Duration::from_secs(1);
    });
    seed_8mb(&s);
    let check = |body: &[u8]| {
        let doc: Value = serde_json::from_slice(body).expect("the whole page, as JSON");
        let data = doc["data"].as_array().unwrap();
        assert_eq!(data.len(), RECORDS);
        for (k, r) in data.iter().enumerate() {
            assert_eq!(r["payload"], big_payload(RECORDS - 1 - k));
        }
    };
    let addr = s.base.trim_start_matches("http://");
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    idle.write_all(request("GET").as_bytes()).unwrap();
    // The worker is writing this answer (its first bytes are here, unread): the other
    // client's requests come after it, and are served only if the worker lets go of it.
    let mut first = [0u8; 1];
    assert_eq!(idle.peek(&mut first).unwrap(), 1, "the answer started");

    let mut other = TcpStream::connect(addr).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    for _ in 0..3 {
        other.write_all(request("GET").as_bytes()).unwrap();
        let (head, body) = read_answer(&mut other, 64 * 1024, Duration::ZERO);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        check(&body);
    }

    let (head, body) = read_answer(&mut idle, 64 * 1024, Duration::ZERO);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    check(&body);
}

/// A client that never takes its 8 MB answer loses the connection once the
/// response limit has passed (1 s here), not at the end of the keep-alive
/// limit (20 s): the answer can't go on, and neither can the connection.
#[test]
fn an_answer_never_taken_ends_the_connection_at_the_response_limit() {
    let s = Syncto::with(|c| c.response_timeout = Duration::from_secs(1));
    seed_8mb(&s);
    let addr = s.base.trim_start_matches("http://");
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    idle.write_all(request("GET").as_bytes()).unwrap();
    // The answer started (its first bytes are here, unread), however long the page took to
    // make on a loaded machine; then the server ends the connection. Nothing is read until
    // then: a read would let the answer go on.
    let mut first = [0u8; 1];
    assert_eq!(idle.peek(&mut first).unwrap(), 1, "the answer started");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.running().connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the connection is still open a minute after its answer started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // What the socket buffers took, then the end of the connection.
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let ended = loop {
        match idle.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    assert!(ended, "still open after {got} bytes");
    assert!(got < 8_000_000, "{got} bytes: the whole answer?");
}
