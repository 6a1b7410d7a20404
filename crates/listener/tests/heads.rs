//! Request heads at their edges, as a client meets them: the empty lines
//! allowed before a request line, a CR that ends what came, the reason given
//! for a control byte and for a non-ASCII one, the head limit of a new
//! connection, a small body that stops short, what a handler is told of a
//! request it refused, and how a connection ends when its input was not all
//! read or its last answer is finished by another thread.

use crate::support::*;
use listener::{Handler, Limits, Rejected, Request, Response};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const CONTROL: &str =
    "Malformed HTTP request: control characters are not allowed in the request line or headers.";
const NON_ASCII: &str = "The request line and headers must be ASCII (percent-encode other bytes).";

/// Up to 8 empty lines before a request line are ignored (RFC 9112 §2.2);
/// a 9th is a 400.
#[test]
fn up_to_eight_empty_lines_may_come_before_a_request_line() {
    let (_server, addr) = hello_world(short());
    let request = |empty: usize| {
        let mut bytes = b"\r\n".repeat(empty);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        bytes
    };
    let served = exchange(addr, &request(8)).only_answer_then_close();
    assert_eq!((served.status, served.body.as_str()), (200, "hello world"));
    let refused = exchange(addr, &request(9)).only_answer_then_close();
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (400, "Malformed HTTP request line.")
    );
}

/// An empty line starts a request's head: a client that sends one and then
/// nothing gets a 408 at the head limit, as one that stopped within its
/// request line does, not the silent close of a connection that sent
/// nothing.
#[test]
fn an_empty_line_then_silence_is_a_head_not_received_in_time() {
    let (_server, addr) = hello_world(short());
    let mut stream = connect(addr);
    stream.write_all(b"\r\n").unwrap();
    let answer = read_until_close(&mut stream).only_answer_then_close();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (408, "The request head was not received in time.")
    );
}

/// A CR must be followed by LF: a head that stops at a CR is answered 400
/// and closed, when its client closes its side and when it goes silent (at
/// the head limit), instead of being waited on.
#[test]
fn a_cr_that_ends_what_came_is_400_whether_the_client_closes_or_goes_silent() {
    let (_server, addr) = hello_world(short());
    for client_closes in [true, false] {
        let mut stream = connect(addr);
        stream.write_all(b"GET / HTTP/1.1\r").unwrap();
        if client_closes {
            stream.shutdown(Shutdown::Write).unwrap();
        }
        let answer = read_until_close(&mut stream).only_answer_then_close();
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (400, "Malformed HTTP request: a CR must be followed by LF."),
            "client closes: {client_closes}"
        );
    }
}

/// A control byte and a non-ASCII byte, in the request line or in a header,
/// are both refused, each with its own reason: DEL (0x7f) is the last
/// control byte, 0x80 the first non-ASCII one.
#[test]
fn control_and_non_ascii_bytes_are_refused_each_with_its_reason() {
    let (_server, addr) = hello_world(short());
    for (byte, reason) in [
        (0x00u8, CONTROL),
        (0x1f, CONTROL),
        (0x7f, CONTROL),
        (0x80, NON_ASCII),
        (0xc3, NON_ASCII),
        (0xff, NON_ASCII),
    ] {
        for (before, after) in [
            (&b"GET /a"[..], &b"b HTTP/1.1\r\nHost: x\r\n\r\n"[..]),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a", b"b\r\n\r\n"),
        ] {
            let bytes = [before, &[byte][..], after].concat();
            let answer = exchange(addr, &bytes).only_answer_then_close();
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (400, reason),
                "{byte:#04x} after {:?}",
                String::from_utf8_lossy(before)
            );
        }
    }
}

/// A new connection's first head has the head limit, counted from the
/// accept, and not the keep-alive one: with a 1 s head limit and an hour of
/// keep-alive, a client that sends nothing is closed without an answer,
/// long before our 10 s read gives up.
#[test]
fn a_new_connection_that_sends_nothing_gets_the_head_limit_not_the_keep_alive_one() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(3600),
        ..short()
    };
    let (_server, addr) = hello_world(limits);
    let wire = read_until_close(&mut connect(addr));
    assert!(wire.closed, "the head limit must close the connection");
    assert!(
        wire.bytes.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&wire.bytes)
    );
}

/// A body of up to 1 KiB is read with its head: one that stops short is a
/// 408 when the client goes silent (at the body limit), and gets no answer,
/// the connection closed, when the client has closed its side. A longer one
/// is the handler's to read (this one answers without reading it, and the
/// connection closes after the answer).
#[test]
fn a_small_body_that_stops_short_is_408_or_no_answer_when_the_client_left() {
    let (_server, addr) = hello_world(short());
    let post = |length: usize| {
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nhalf.")
    };
    let mut silent = connect(addr);
    silent.write_all(post(1024).as_bytes()).unwrap();
    let answer = read_until_close(&mut silent).only_answer_then_close();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (408, "The request body was not received in time.")
    );
    let mut gone = connect(addr);
    gone.write_all(post(1024).as_bytes()).unwrap();
    gone.shutdown(Shutdown::Write).unwrap();
    let wire = read_until_close(&mut gone);
    assert!(
        wire.closed && wire.bytes.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&wire.bytes)
    );
    let mut longer = connect(addr);
    longer.write_all(post(1025).as_bytes()).unwrap();
    let answer = read_until_close(&mut longer).only_answer_then_close();
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello world"));
    assert_eq!(answer.header("Connection"), Some("close"));
}

/// What a handler is told of each request it refused: when it was told,
/// the method and target, the time the request took.
type Told = (Instant, Option<String>, Option<String>, Duration);

/// Serves every request with `served`, and sends what it is told of each
/// refusal to the test.
struct Refusals(mpsc::Sender<Told>);

impl Handler for Refusals {
    fn handle(&self, rq: Request) {
        let _ = rq.respond(Response::from_string("served"));
    }

    fn refused(&self, r: &Rejected<'_>) -> Response {
        let now = Instant::now();
        let _ = self.0.send((
            now,
            r.method.map(str::to_owned),
            r.target.map(str::to_owned),
            r.elapsed,
        ));
        r.plain_response()
    }
}

/// The time a refused request took (Syncto logs it) counts from its own
/// first byte: on a kept-alive connection, not from the request before it,
/// nor the pause between the two.
#[test]
fn a_refused_requests_time_counts_from_its_own_first_byte() {
    let (tx, rx) = mpsc::channel();
    let (_server, addr) = server(Limits::default(), Refusals(tx));
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answers(&mut stream, 1)[0].body, "served");
    // The client pauses between its requests, as a kept-alive one does. Not
    // a wait for the server (its answer is in): the time the request before
    // was read at and the time this one is sent at are 100 ms apart or more.
    thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    stream
        .write_all(b"GET /x\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_close(&mut stream).only_answer_then_close();
    assert_eq!((answer.status, answer.body.as_str()), (400, CONTROL));
    let (told_at, _, _, took) = rx.recv().unwrap();
    // Its first byte was read after `sent`, and the refusal told before
    // `told_at`: it took less than the time between the two.
    assert!(
        took < told_at - sent,
        "{took:?} counted for a request sent {:?} before it was refused",
        told_at - sent
    );
}

/// A refused request's method and target are given to the handler once its
/// request line was read whole and well-formed (a header was refused), and
/// not when the request line itself was refused.
#[test]
fn a_refusal_names_the_request_line_only_once_it_was_read() {
    let (tx, rx) = mpsc::channel();
    let (_server, addr) = server(short(), Refusals(tx));
    for (bytes, method, target) in [
        (
            &b"GET /x?q=1 HTTP/1.1\r\nX(y): z\r\n\r\n"[..],
            Some("GET"),
            Some("/x?q=1"),
        ),
        (b"GET /x\x01 HTTP/1.1\r\nHost: x\r\n\r\n", None, None),
        (b"GET  /x HTTP/1.1\r\nHost: x\r\n\r\n", None, None),
    ] {
        let shown = String::from_utf8_lossy(bytes);
        let answer = exchange(addr, bytes).only_answer_then_close();
        assert_eq!(answer.status, 400, "{shown:?}");
        let (_, told_method, told_target, _) = rx.recv().unwrap();
        assert_eq!(
            (told_method.as_deref(), told_target.as_deref()),
            (method, target),
            "{shown:?}"
        );
    }
}

/// A connection whose input was not all read (a refused head followed by
/// more bytes, a body not read to its end) ends with its one answer and
/// then a clean end of stream, never a reset: the server stops writing,
/// then takes what still comes for a moment before it closes (closing a
/// socket with input unread resets the connection, and a client may lose
/// the answer). What was not read is never parsed as a request.
#[test]
fn input_left_unread_ends_with_the_answer_and_a_clean_close_not_a_reset() {
    let (_server, addr) = server(
        short(),
        Serve(|mut rq: Request| {
            let mut body = Vec::new();
            let _ = rq.as_reader().take(1024).read_to_end(&mut body);
            let status = if rq.body_finished() { 200 } else { 413 };
            let _ = rq.respond(Response::empty(status));
        }),
    );
    // More than is read (a head is read 1 KiB at a time), and control
    // bytes: a 400 of their own if they were taken for a head.
    let rest = vec![0u8; 16 * 1024];
    for (head, status) in [
        (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            format!(
                "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                rest.len()
            )
            .into_bytes(),
            413,
        ),
    ] {
        let mut stream = connect(addr);
        stream.write_all(&[head, rest.clone()].concat()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            match stream.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e.kind()),
            }
        };
        let all = answers(&got);
        assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(&got));
        assert_eq!(all[0].status, status);
        assert_eq!(
            end,
            Ok::<(), ErrorKind>(()),
            "after the {status}: the end must be clean"
        );
    }
}

/// The last answer of a connection, handed over to another thread (a large
/// page its client takes slowly) and going on after its request is gone, is
/// not cut when the connection ends: the connection's thread waits for it
/// before it stops writing and closes.
#[test]
fn a_last_answer_finished_elsewhere_is_not_cut_by_the_connections_end() {
    let size = 8_000_000;
    let (tx, rx) = mpsc::channel();
    let (_server, addr) = server(
        Limits::default(),
        Serve(move |mut rq: Request| {
            // The connection ends after this answer.
            rq.set_close();
            rq.set_send_limit(Duration::from_millis(20));
            let handed_over = rq
                .respond_or_hand_over(Response::from_data(vec![b'x'; size]))
                .err();
            let _ = tx.send(handed_over);
        }),
    );
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Nothing is read before the rest was handed over (if the kernel's
    // buffers took it all, nothing was).
    if let Some(unsent) = rx.recv().unwrap() {
        // What the client had not taken is what is left to write.
        assert!(unsent.left() > 0, "{unsent:?}");
        thread::spawn(move || unsent.finish());
    }
    let answer = read_until_close(&mut stream).only_answer_then_close();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), size, "the answer was cut");
}
