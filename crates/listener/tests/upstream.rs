//! tiny_http 0.12.0's own tests (`tests/*.rs` of the crate on crates.io),
//! adapted to this listener's API: a [`Handler`](listener::Handler) instead
//! of `Server::recv` (`support::queue` gives the same shape), responses
//! with their body in memory.
//!
//! Not kept, and why:
//! - `promptness.rs` `prompt_pipelining::{empty, content_length_short,
//!   content_length_long, chunked}` and `network.rs` `responses_reordered`:
//!   they expect the next pipelined request to be handed over while the
//!   previous one is still being answered. Here a connection has one
//!   request in service at a time (its next request is read, but served
//!   only once the previous answer is out), so they wait forever by design.
//! - `network.rs` `chunked_threshold` and `non-chunked-buffering.rs`
//!   `responding_to_non_consuming_client`: there are no streamed bodies and
//!   no chunked responses (every body is in memory and leaves with its
//!   `Content-Length`).
//! - `unblock-test.rs` (2 tests): there is no `recv` queue to unblock.

use crate::support::*;
use listener::{Header, Limits, Method, Response, StatusCode};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

// ---- input-tests.rs ----

#[test]
fn basic_string_input() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut client = connect(addr);
    write!(client, "GET / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain; charset=utf8\r\nContent-Length: 5\r\n\r\nhello").unwrap();
    let mut request = rx.recv().unwrap();
    let mut output = String::new();
    request.as_reader().read_to_string(&mut output).unwrap();
    assert_eq!(output, "hello");
}

#[test]
fn wrong_content_length() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut client = connect(addr);
    write!(client, "GET / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain; charset=utf8\r\nContent-Length: 3\r\n\r\nhello").unwrap();
    let mut request = rx.recv().unwrap();
    let mut output = String::new();
    request.as_reader().read_to_string(&mut output).unwrap();
    assert_eq!(output, "hel");
}

#[test]
fn expect_100_continue() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut client = connect(addr);
    write!(client, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Type: text/plain; charset=utf8\r\nContent-Length: 5\r\n\r\n").unwrap();
    let (tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut request = rx.recv().unwrap();
        let mut output = String::new();
        request.as_reader().read_to_string(&mut output).unwrap();
        tx.send(output).unwrap();
    });
    let mut content = vec![0; 12];
    client.read_exact(&mut content).unwrap();
    assert!(content[9..].starts_with(b"100"));
    write!(client, "hello").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(done.recv().unwrap(), "hello");
}

#[test]
fn unsupported_expect_header() {
    let (_server, addr) = hello_world(Limits::default());
    let wire = exchange(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nExpect: 189-dummy\r\nContent-Type: text/plain; charset=utf8\r\n\r\n");
    assert_eq!(wire.only_answer_then_close().status, 417);
}

#[test]
fn invalid_header_name() {
    let (_server, addr) = hello_world(Limits::default());
    // The space hidden before the colon of Content-Length is invalid.
    let wire = exchange(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: text/plain; charset=utf8\r\nContent-Length : 5\r\n\r\nhello");
    let answer = wire.only_answer_then_close();
    assert!(
        answer.head.starts_with("HTTP/1.1 400 Bad Request"),
        "{}",
        answer.head
    );
}

#[test]
fn custom_content_type_response_header() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut stream = connect(addr);
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let request = rx.recv().unwrap();
    let header: Header = "Content-Type: application/json".parse().unwrap();
    request
        .respond(Response::from_string("{\"custom\": \"Content-Type\"}").with_header(header))
        .unwrap();
    let mut content = String::new();
    stream.read_to_string(&mut content).unwrap();
    assert!(content.ends_with("{\"custom\": \"Content-Type\"}"));
    assert_ne!(content.find("Content-Type: application/json"), None);
}

// ---- network.rs ----

#[test]
fn connection_close_header() {
    let (_server, addr) = hello_world(Limits::default());
    let mut client = connect(addr);
    write!(client, "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").unwrap();
    write!(client, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    // Closed after the second answer: no wait for our read timeout.
    let wire = read_until_close(&mut client);
    assert!(wire.closed);
    assert_eq!(wire.answers().len(), 2);
}

#[test]
fn http_1_0_connection_close() {
    let (_server, addr) = hello_world(Limits::default());
    let wire = exchange(addr, b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(wire.only_answer_then_close().body, "hello world");
}

/// An HTTP/1.0 client keeps its connection only by asking for it (`Connection: keep-alive`,
/// in any case); without it, the answer ends the connection.
#[test]
fn http_1_0_keep_alive_when_asked() {
    let (_server, addr) = hello_world(Limits::default());
    let mut client = connect(addr);
    write!(client, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert_eq!(read_answers(&mut client, 1)[0].body, "hello world");
    // Still open: a second request on it is answered, and without the token, closed after.
    write!(client, "GET / HTTP/1.0\r\nConnection: other\r\n\r\n").unwrap();
    assert_eq!(
        read_until_close(&mut client).only_answer_then_close().body,
        "hello world"
    );
}

#[test]
fn detect_connection_closed() {
    let (_server, addr) = hello_world(Limits::default());
    let mut client = connect(addr);
    write!(client, "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let wire = read_until_close(&mut client);
    assert!(wire.closed);
    assert_eq!(wire.answers().len(), 1);
}

#[test]
fn poor_network_test() {
    let (_server, addr) = hello_world(Limits::default());
    let mut client = connect(addr);
    for piece in [
        "G",
        "ET /he",
        "llo HT",
        "TP/1.",
        "1\r\nHo",
        "st: localho",
        "st\r\nConnec",
        "tion: close\r",
        "\n\r",
        "\n",
    ] {
        client.write_all(piece.as_bytes()).unwrap();
        // Separate segments (not a synchronisation).
        thread::sleep(Duration::from_millis(20));
    }
    let wire = read_until_close(&mut client);
    assert!(wire.only_answer_then_close().body.ends_with("hello world"));
}

#[test]
fn pipelining_test() {
    let (_server, addr) = hello_world(Limits::default());
    let wire = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /world HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(wire.closed);
    let bodies: Vec<String> = wire.answers().into_iter().map(|a| a.body).collect();
    assert_eq!(bodies, ["hello world"; 3]);
}

#[test]
fn server_crash_results_in_response() {
    let (_server, rx, addr) = queue(Limits::default());
    thread::spawn(move || {
        // Dropped unanswered, as by a handler that panicked.
        drop(rx.recv().unwrap());
    });
    let wire = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(wire.only_answer_then_close().status, 500);
}

#[test]
fn no_transfer_encoding_on_204() {
    let (_server, rx, addr) = queue(Limits::default());
    thread::spawn(move || {
        let rq = rx.recv().unwrap();
        rq.respond(Response::empty(StatusCode(204))).unwrap();
    });
    let wire = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nTE: chunked\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8(wire.bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 204"), "{text}");
    assert!(!text.contains("Transfer-Encoding"), "{text}");
    assert!(!text.contains("Content-Length"), "{text}");
}

// ---- non-chunked-buffering.rs ----

/// Answering a client that already left is not an error of the answer.
#[test]
fn responding_to_closed_client() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut stream = connect(addr);
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let request = rx.recv().unwrap();
    drop(stream);
    let big = vec![b'A'; 16 << 20];
    request
        .respond(Response::new(StatusCode(200), vec![], big))
        .expect("a client that left is no error");
}

// ---- promptness.rs, prompt_responses ----

/// A client that sends its body slowly (1,000 bytes every 100 ms): it would
/// take 100 s.
fn slow_body(mut wr: impl Write, chunked: bool) {
    for _ in 0..1000 {
        let piece = [b'A'; 1000];
        let sent = if chunked {
            write!(wr, "3E8\r\n")
                .and_then(|()| wr.write_all(&piece))
                .and_then(|()| write!(wr, "\r\n"))
        } else {
            wr.write_all(&piece)
        };
        if sent.is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The answer to a request whose handler answers at once, without reading
/// the body, arrives long before the body could have been sent.
fn assert_responds_promptly(head: &'static str, chunked: bool) {
    let (_server, addr) = server(
        Limits::default(),
        Serve(|rq: listener::Request| {
            let _ = rq.respond(Response::empty(400));
        }),
    );
    let mut client = connect(addr);
    let mut writer = client.try_clone().unwrap();
    thread::spawn(move || {
        if writer.write_all(head.as_bytes()).is_ok() {
            slow_body(writer, chunked);
        }
    });
    let mut buf = [0u8; 4096];
    let n = client
        .read(&mut buf)
        .expect("an answer before the body's end");
    assert!(n > 0);
    assert!(
        buf.starts_with(b"HTTP/1."),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let _ = client.shutdown(Shutdown::Both);
}

#[test]
fn prompt_responses_content_length_http11() {
    assert_responds_promptly("GET / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", false);
}

#[test]
fn prompt_responses_content_length_http10() {
    assert_responds_promptly("GET / HTTP/1.0\r\nContent-Length: 1000000\r\n\r\n", false);
}

#[test]
fn prompt_responses_expect_continue() {
    // `100 continue` with a space is no expectation this listener knows:
    // refused (417) at once.
    assert_responds_promptly(
        "GET / HTTP/1.1\r\nExpect: 100 continue\r\nContent-Length: 1000000\r\n\r\n",
        false,
    );
}

#[test]
fn prompt_responses_chunked() {
    assert_responds_promptly("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", true);
}

// ---- simple-test.rs ----

#[test]
fn basic_handling() {
    let (_server, rx, addr) = queue(Limits::default());
    let mut stream = connect(addr);
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let request = rx.recv().unwrap();
    assert_eq!(*request.method(), Method::Get);
    assert_eq!(request.url(), "/");
    request
        .respond(Response::from_string("hello world"))
        .unwrap();
    let mut content = String::new();
    stream.read_to_string(&mut content).unwrap();
    assert!(content.ends_with("hello world"));
}

// ---- unix-test.rs ----

#[cfg(unix)]
#[test]
fn unix_basic_handling() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("listener-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unix_basic_handling.sock");
    let _ = std::fs::remove_file(&path);
    let (tx, rx) = mpsc::channel();
    let server = listener::Server::new(
        UnixListener::bind(&path).unwrap(),
        Limits::default(),
        std::sync::Arc::new(Queue(tx)),
    )
    .unwrap();
    let mut client = UnixStream::connect(&path).unwrap();
    write!(
        client,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let request = rx.recv().unwrap();
    assert_eq!(*request.method(), Method::Get);
    assert_eq!(request.remote_addr(), None);
    request
        .respond(Response::from_string("hello world"))
        .unwrap();
    let mut content = String::new();
    client.read_to_string(&mut content).unwrap();
    assert!(content.ends_with("hello world"));
    // Dropping the server removes the socket's file.
    drop(server);
    assert!(!path.exists());
    let _ = std::fs::remove_dir(&dir);
}
