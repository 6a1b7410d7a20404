//! What a handler is given of a request (its head, its body's announced
//! length, its client), and what answering it does: a body released early
//! lets the connection read the next head while the answer is prepared
//! elsewhere; an answer to a client that left is no error, and is never
//! handed over.

use crate::support::*;
use listener::{HTTPVersion, Handler, Limits, Method, Rejected, Request, Response};
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// The handler is given the head as it was sent: method, target, version,
/// the header fields in their order and with their names as sent, the
/// announced body length, the client's address (also in the request's
/// `Debug`, which logs show).
#[test]
fn the_handler_is_given_the_head_as_it_was_sent() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut c = connect(addr);
    let client = c.local_addr().unwrap();
    c.write_all(
        b"POST /a?b=c HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    let mut rq = rx.recv().unwrap();
    assert_eq!(*rq.method(), Method::Post);
    assert_eq!(rq.url(), "/a?b=c");
    assert_eq!(*rq.http_version(), HTTPVersion(1, 1));
    let headers: Vec<String> = rq
        .headers()
        .iter()
        .map(|h| format!("{}: {}", h.field.as_str(), h.value))
        .collect();
    assert_eq!(
        headers,
        ["Host: x", "X-Two: 1", "x-two: 2", "Content-Length: 5"]
    );
    assert_eq!(rq.body_length(), Some(5));
    assert_eq!(rq.remote_addr(), Some(&client));
    assert_eq!(
        format!("{rq:?}"),
        format!("Request(POST /a?b=c from {:?})", Some(client))
    );
    // A read into no room reads nothing and does not end the body.
    assert_eq!(rq.as_reader().read(&mut []).unwrap(), 0);
    assert!(!rq.body_finished());
    let mut body = String::new();
    rq.as_reader().read_to_string(&mut body).unwrap();
    assert_eq!(body, "hello");
    assert!(rq.body_finished());
    rq.respond(Response::empty(204)).unwrap();
}

/// An HTTP/1.0 client that asks to keep the connection gets it kept; one
/// that does not ask gets it closed after the answer.
#[test]
fn http_1_0_keeps_the_connection_only_when_asked() {
    let (_server, addr) = hello_world(Limits::default());
    let mut c = connect(addr);
    for _ in 0..2 {
        c.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        assert_eq!(read_answers(&mut c, 1)[0].body, "hello world");
    }
    let wire = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(wire.only_answer_then_close().status, 200);
}

/// The announced body length: none when chunked or absent, leading zeros
/// ignored, and a length too large for memory given as `usize::MAX` (for
/// the handler to refuse as too large).
#[test]
fn a_body_length_is_none_when_chunked_or_absent_and_saturates_when_too_large() {
    let (_server, rx, addr) = queue(Limits::default());
    for (framing, body, length) in [
        ("Content-Length: 0\r\n", "", Some(0)),
        ("Content-Length: 007\r\n", "1234567", Some(7)),
        ("Transfer-Encoding: chunked\r\n", "0\r\n\r\n", None),
        ("", "", None),
        (
            "Content-Length: 99999999999999999999999\r\n",
            "",
            Some(usize::MAX),
        ),
    ] {
        let mut c = connect(addr);
        c.write_all(format!("POST / HTTP/1.1\r\nHost: x\r\n{framing}\r\n{body}").as_bytes())
            .unwrap();
        let rq = rx.recv().unwrap();
        assert_eq!(rq.body_length(), length, "{framing:?}");
        rq.respond(Response::empty(204)).unwrap();
    }
}

/// Sends each request, and the status of each refusal, to the test.
struct Both(mpsc::Sender<Request>, mpsc::Sender<u16>);

impl Handler for Both {
    fn handle(&self, rq: Request) {
        let _ = self.0.send(rq);
    }

    fn refused(&self, r: &Rejected<'_>) -> Response {
        let _ = self.1.send(r.status.0);
        r.plain_response()
    }
}

/// Once its body (here chunked) is read and released, a request is
/// answered elsewhere while the connection's thread reads the next head: a
/// malformed one is refused before the answer is out, and the refusal
/// follows the answer on the wire.
#[test]
fn a_released_body_lets_the_next_head_be_read_while_the_answer_is_prepared() {
    let (requests, rx) = mpsc::channel();
    let (refusals, refused) = mpsc::channel();
    let (_server, addr) = server(Limits::default(), Both(requests, refusals));
    let mut c = connect(addr);
    c.write_all(
        b"PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    .unwrap();
    let mut rq = rx.recv().unwrap();
    let mut body = Vec::new();
    rq.as_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, b"{}");
    rq.release_body();
    c.write_all(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Refused while the first request is held here, unanswered.
    assert_eq!(refused.recv_timeout(Duration::from_secs(20)), Ok(400));
    rq.respond(Response::from_string("first")).unwrap();
    let wire = read_until_close(&mut c);
    let all = wire.answers();
    assert_eq!(all.len(), 2, "{:?}", String::from_utf8_lossy(&wire.bytes));
    assert_eq!((all[0].status, all[0].body.as_str()), (200, "first"));
    assert_eq!(all[1].status, 400);
    assert!(wire.closed);
}

/// An answer to a client that left is no error, and is not handed over to
/// be finished later (nobody would take it), though its send limit leaves
/// it time.
#[test]
fn an_answer_to_a_client_that_left_is_not_handed_over() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut rq = rx.recv().unwrap();
    drop(c);
    rq.set_send_limit(Duration::from_secs(30));
    match rq.respond_or_hand_over(Response::from_data(vec![b'A'; 16 << 20])) {
        Ok(written) => written.expect("a client that left is no error"),
        Err(unsent) => panic!("handed over: {unsent:?}"),
    }
}
