//! Servers for the tests, and reading what they answer off the wire.

#![allow(dead_code)]

use listener::{Handler, Limits, Request, Response, Server};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// A handler that is a function.
pub struct Serve<F>(pub F);

impl<F: Fn(Request) + Send + Sync + 'static> Handler for Serve<F> {
    fn handle(&self, rq: Request) {
        (self.0)(rq)
    }
}

/// A handler that sends each request to a channel, for the test to answer.
pub struct Queue(pub mpsc::Sender<Request>);

impl Handler for Queue {
    fn handle(&self, rq: Request) {
        let _ = self.0.send(rq);
    }
}

/// A server on 127.0.0.1 with `limits`, serving with `handler`.
pub fn server(limits: Limits, handler: impl Handler) -> (Server, SocketAddr) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let server = Server::new(socket, limits, std::sync::Arc::new(handler)).unwrap();
    (server, addr)
}

/// A server whose requests the test takes from the receiver.
pub fn queue(limits: Limits) -> (Server, mpsc::Receiver<Request>, SocketAddr) {
    let (tx, rx) = mpsc::channel();
    let (server, addr) = server(limits, Queue(tx));
    (server, rx, addr)
}

/// A server that answers `hello world` to everything.
pub fn hello_world(limits: Limits) -> (Server, SocketAddr) {
    server(
        limits,
        Serve(|rq: Request| {
            let _ = rq.respond(Response::from_string("hello world"));
        }),
    )
}

/// Limits short enough that no test waits for the defaults.
pub fn short() -> Limits {
    Limits {
        head_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// A client connection that gives up reading after 10 s.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// What came back on a connection, and whether the server closed it (EOF
/// or reset) rather than leaving it open until our 10 s read timeout.
pub struct Wire {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

impl Wire {
    pub fn answers(&self) -> Vec<Answer> {
        answers(&self.bytes)
    }

    /// Exactly one answer, and the connection closed after it.
    #[track_caller]
    pub fn only_answer_then_close(&self) -> Answer {
        let all = self.answers();
        assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(&self.bytes));
        assert!(self.closed, "the connection must be closed");
        all.into_iter().next().unwrap()
    }
}

/// Read until the server closes the connection, or 10 s without a byte.
pub fn read_until_close(stream: &mut TcpStream) -> Wire {
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
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Wire {
    use std::io::Write;
    let mut stream = connect(addr);
    // The server may close before taking everything (that is the point of
    // some tests): what it answered is still there to read.
    let _ = stream.write_all(bytes);
    read_until_close(&mut stream)
}

/// Read from `stream` until `n` whole answers have arrived.
#[track_caller]
pub fn read_answers(stream: &mut TcpStream, n: usize) -> Vec<Answer> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    while answers(&got).len() < n || !complete(&got) {
        let read = stream.read(&mut buf).unwrap_or(0);
        assert!(read > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..read]);
    }
    answers(&got)
}

/// Whether the last answer in `bytes` has its whole body.
fn complete(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let len = content_length(&String::from_utf8_lossy(&rest[..end]));
        if rest.len() < end + 4 + len {
            return false;
        }
        rest = &rest[end + 4 + len..];
    }
    true
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The HTTP answers in a byte stream (each with a Content-Length body).
pub fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len = content_length(&head);
        let rest = &bytes[end + 4..];
        let body = String::from_utf8_lossy(&rest[..len.min(rest.len())]).into_owned();
        bytes = &rest[len.min(rest.len())..];
        out.push(Answer { status, head, body });
    }
    out
}
