//! Hostile clients at the listener: slow drips, silence, ambiguous framing,
//! control bytes, HTTP/2, Upgrade, bodies not read, connections past the
//! limit. What is asserted is what crosses the wire: status, headers, and
//! whether the connection was closed.

use crate::support::*;
use listener::{Limits, Request, Response};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

const HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_slow_drip_head_is_cut_off_by_the_head_limit() {
    let (_server, addr) = hello_world(short());
    let mut stream = connect(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        .unwrap();
    // One byte every 100 ms for 8 s: each read gets a byte long before any
    // per-read timeout, only a limit on the whole head stops it.
    let done = Arc::new(AtomicBool::new(false));
    let (mut writer, d) = (stream.try_clone().unwrap(), done.clone());
    let dripper = thread::spawn(move || {
        for _ in 0..80 {
            if writer.write_all(b"a").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        d.store(true, Ordering::SeqCst);
    });
    let wire = read_until_close(&mut stream);
    assert!(
        !done.load(Ordering::SeqCst),
        "the head limit must end the drip"
    );
    assert_eq!(wire.only_answer_then_close().status, 408);
    dripper.join().unwrap();
}

#[test]
fn idle_and_silent_connections_are_closed_without_an_answer() {
    let (_server, addr) = hello_world(short());
    // Connected, nothing sent: closed by the head limit.
    let mut silent = connect(addr);
    let wire = read_until_close(&mut silent);
    assert!(wire.closed && wire.bytes.is_empty());
    // Idle after one request: closed by the keep-alive limit.
    let mut idle = connect(addr);
    idle.write_all(HELLO).unwrap();
    let wire = read_until_close(&mut idle);
    assert!(
        wire.closed,
        "the keep-alive limit must close the connection"
    );
    assert_eq!(wire.answers().len(), 1);
    assert_eq!(wire.answers()[0].status, 200);
}

#[test]
fn ambiguous_framing_is_400_and_closes_the_connection() {
    let (_server, rx, addr) = queue(Limits::default());
    // Whatever is handed over is answered with its body.
    thread::spawn(move || {
        for mut rq in rx {
            let mut body = Vec::new();
            let _ = rq.as_reader().read_to_end(&mut body);
            let _ = rq.respond(Response::from_data(body));
        }
    });
    let post =
        |headers: &str, body: &str| format!("POST /p HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}");
    let body = r#"{"requests":[{"path":"/"}]}"#;
    let n = body.len();
    for (case, bytes) in [
        (
            "two Content-Length values",
            post(
                &format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1),
                body,
            ),
        ),
        (
            "a list of two values",
            post(&format!("Content-Length: {n}, {}\r\n", n + 1), body),
        ),
        ("a word", post("Content-Length: abc\r\n", body)),
        ("a sign", post(&format!("Content-Length: +{n}\r\n"), body)),
        ("a negative", post("Content-Length: -1\r\n", body)),
        ("empty", post("Content-Length: \r\n", body)),
        (
            "Content-Length with Transfer-Encoding",
            post(
                &format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
                "0\r\n\r\n",
            ),
        ),
        (
            "gzip",
            post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        ),
        ("identity", post("Transfer-Encoding: identity\r\n", body)),
        (
            "chunked twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "chunked in HTTP/1.0",
            post("Transfer-Encoding: chunked\r\n", "0\r\n\r\n").replace("HTTP/1.1", "HTTP/1.0"),
        ),
        (
            "an unknown expectation",
            post("Expect: money\r\nContent-Length: 2\r\n", "{}"),
        ),
    ] {
        let mut bytes = bytes.into_bytes();
        bytes.extend_from_slice(HELLO);
        let wire = exchange(addr, &bytes);
        let answer = wire.only_answer_then_close();
        let status = if case == "an unknown expectation" {
            417
        } else {
            400
        };
        assert_eq!(answer.status, status, "{case}");
        assert_eq!(answer.header("Connection"), Some("close"), "{case}");
    }
    // The same length twice is one length: served, and kept alive.
    let mut stream = connect(addr);
    let bytes = post(
        &format!("Content-Length: {n}\r\nContent-Length: {n}\r\n"),
        body,
    );
    stream.write_all(bytes.as_bytes()).unwrap();
    stream.write_all(HELLO).unwrap();
    let all = read_answers(&mut stream, 2);
    assert_eq!((all[0].status, all[1].status), (200, 200));
    assert_eq!(all[0].body, body);
}

#[test]
fn control_bytes_in_the_head_are_400_and_never_reach_a_header() {
    // The handler copies the path into a header, as a redirect would.
    let (_server, addr) = server(
        Limits::default(),
        Serve(|rq: Request| {
            let location = listener::Header::from_bytes("Location", rq.url()).unwrap();
            let _ = rq.respond(Response::empty(307).with_header(location));
        }),
    );
    for bytes in [
        // The injection of a response header through the path.
        &b"GET /x\nSet-Cookie:session=attacker HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET /x\rSet-Cookie:session=attacker HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /x\0y HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /x\x7fy HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /x\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x1bb\r\n\r\n",
        // Obsolete line folding (with a space, with a tab), a space before
        // the colon, no name; a request line that starts with a tab.
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n",
        b"\tGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n: a\r\n\r\n",
        // Malformed request lines.
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
        b"GET\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        let mut bytes = bytes.to_vec();
        bytes.extend_from_slice(HELLO);
        let wire = exchange(addr, &bytes);
        let answer = wire.only_answer_then_close();
        let shown = String::from_utf8_lossy(&bytes);
        assert_eq!(answer.status, 400, "{shown:?}");
        assert!(answer.header("Set-Cookie").is_none(), "{shown:?}");
        assert!(answer.header("Location").is_none(), "{shown:?}");
    }
    // A tab in a value is kept; what is percent-encoded stays one value.
    let wire = exchange(
        addr,
        b"GET /x%0D%0ASet-Cookie:%20a=b HTTP/1.1\r\nHost: a\r\nX-Tab: a\tb\r\nConnection: close\r\n\r\n",
    );
    let answer = wire.only_answer_then_close();
    assert_eq!(answer.status, 307);
    assert_eq!(answer.header("Location"), Some("/x%0D%0ASet-Cookie:%20a=b"));
    assert!(answer.header("Set-Cookie").is_none());
}

#[test]
fn bare_lf_heads_and_http2_are_refused_at_once() {
    let (_server, addr) = hello_world(Limits::default());
    // Without a close from the server these would wait for our read
    // timeout: the answer must come at once.
    for (bytes, status) in [
        (&b"GET / HTTP/1.1\nHost: a\n\n"[..], 400),
        (b"GET / HTTP/1.1\r\nHost: a\n\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    ] {
        let wire = exchange(addr, bytes);
        assert_eq!(wire.only_answer_then_close().status, status);
    }
    // A later HTTP/1.x is served as HTTP/1.1.
    let wire = exchange(
        addr,
        b"GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let answer = wire.only_answer_then_close();
    assert_eq!(answer.status, 200);
    assert!(answer.head.starts_with("HTTP/1.1 200"), "{}", answer.head);
}

#[test]
fn upgrade_is_an_ordinary_header() {
    let (_server, addr) = hello_world(Limits::default());
    let upgrade = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut c = connect(addr);
    c.write_all(upgrade).unwrap();
    let answer = read_answers(&mut c, 1).remove(0);
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(answer.header("Upgrade").is_none());
    // The connection goes on being HTTP.
    c.write_all(HELLO).unwrap();
    assert_eq!(read_answers(&mut c, 1)[0].body, "hello world");
}

/// A head line may be 16 KiB long, not a byte more (431, closed), and a
/// request may have 100 header fields, not 101. A head that arrives a few
/// bytes at a time is read as one.
#[test]
fn head_lines_and_fields_have_exact_limits() {
    let (_server, addr) = hello_world(short());
    let head = |line: &str| format!("GET / HTTP/1.1\r\n{line}\r\nConnection: close\r\n\r\n");
    let longest = format!("X-Long: {}", "a".repeat(16 * 1024 - 8));
    assert_eq!(longest.len(), 16 * 1024);
    let ok = exchange(addr, head(&longest).as_bytes()).only_answer_then_close();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let over = format!("{longest}a");
    assert_eq!(
        exchange(addr, head(&over).as_bytes())
            .only_answer_then_close()
            .status,
        431
    );
    // The same limit for the request line.
    let path = format!("/?{}", "q".repeat(16 * 1024));
    let wire = exchange(addr, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
    assert_eq!(wire.only_answer_then_close().status, 431);

    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("X-F{i}: v\t{i}"))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    // Connection: close is the 101st field here.
    let ok = exchange(addr, head(&fields(99)).as_bytes()).only_answer_then_close();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let wire = exchange(addr, head(&fields(100)).as_bytes());
    assert_eq!(wire.only_answer_then_close().status, 431);

    // Three bytes at a time.
    let mut stream = connect(addr);
    for piece in head("X-Tab: a\tb").as_bytes().chunks(3) {
        stream.write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let answer = read_until_close(&mut stream).only_answer_then_close();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// A body not read to its end is never parsed as requests: the answer
/// closes the connection.
#[test]
fn a_body_not_read_to_its_end_closes_the_connection() {
    // At most 1 KiB of a body is read, as a server with a size limit does.
    let (_server, addr) = server(
        Limits::default(),
        Serve(|mut rq: Request| {
            let mut body = Vec::new();
            let _ = rq.as_reader().take(1024).read_to_end(&mut body);
            let status = if rq.body_finished() { 200 } else { 413 };
            let _ = rq.respond(Response::empty(status));
        }),
    );
    // The "body" is requests: none of them may be answered.
    let smuggled: Vec<u8> = HELLO.repeat(400);
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
        let mut bytes = format!("PUT /r HTTP/1.1\r\nHost: x\r\n{framing}\r\n").into_bytes();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(HELLO);
        let answer = exchange(addr, &bytes).only_answer_then_close();
        assert_eq!(answer.status, 413, "{framing}");
        assert_eq!(answer.header("Connection"), Some("close"), "{framing}");
    }
    // A body read whole keeps the connection.
    let mut stream = connect(addr);
    stream
        .write_all(b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    stream.write_all(HELLO).unwrap();
    let all = read_answers(&mut stream, 2);
    assert_eq!((all[0].status, all[1].status), (200, 200));
}

#[test]
fn past_max_connections_idle_ones_make_room_and_busy_ones_get_a_quick_503() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let (server, rx, addr) = queue(limits);
    // Four connections, each with a request being served (held here).
    let mut busy: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut c = connect(addr);
            c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            c
        })
        .collect();
    let held: Vec<Request> = (0..4).map(|_| rx.recv().unwrap()).collect();
    // The fifth gets the busy answer and is closed, without a request.
    let mut fifth = connect(addr);
    let answer = read_until_close(&mut fifth).only_answer_then_close();
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("Retry-After"), Some("30"));
    assert_eq!(answer.header("Connection"), Some("close"));
    assert_eq!(server.connections(), 4);
    // The busy ones are answered, and stay open.
    for rq in held {
        rq.respond(Response::from_string("done")).unwrap();
    }
    for c in &mut busy {
        assert_eq!(read_answers(c, 1)[0].body, "done");
    }
    // Now they are idle: a new connection closes the oldest to make room.
    let answerer = thread::spawn(move || {
        for rq in rx {
            let _ = rq.respond(Response::from_string("hello world"));
        }
    });
    let mut newcomer = connect(addr);
    newcomer.write_all(HELLO).unwrap();
    assert_eq!(read_answers(&mut newcomer, 1)[0].status, 200);
    let oldest = read_until_close(&mut busy[0]);
    assert!(oldest.closed && oldest.bytes.is_empty());
    // The others are still served.
    busy[1].write_all(HELLO).unwrap();
    assert_eq!(read_answers(&mut busy[1], 1)[0].status, 200);
    drop(server);
    drop(answerer);
}

/// A keep-alive connection whose answer took longer than the keep-alive
/// limit is still open for the next request: the idle limit counts from
/// the answer, not from when the request was handed over.
#[test]
fn a_slow_answer_does_not_use_up_the_keep_alive_limit() {
    let (_server, rx, addr) = queue(short());
    thread::spawn(move || {
        for mut rq in rx {
            rq.release_body();
            // Prepared elsewhere for longer than the 1 s idle limit.
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(1500));
                let _ = rq.respond(Response::from_string("slow"));
            });
        }
    });
    let mut stream = connect(addr);
    for round in 0..2 {
        stream.write_all(HELLO).unwrap();
        let answer = read_answers(&mut stream, 1).remove(0);
        assert_eq!(answer.status, 200, "round {round}: {}", answer.body);
        assert_eq!(answer.header("connection"), None, "{}", answer.head);
    }
}
