//! A fault-injecting upstream: a raw TCP server on 127.0.0.1:0 in front of
//! one of the fakes (Token Server or Sync node). Requests pass through
//! unchanged unless a rule matches them; then the proxy plays a fault
//! instead, and the fake never sees the request (so a faulted write was
//! certainly not made). It can also refuse connections altogether.
//!
//! Rules match a substring of the request head (request line and headers):
//! a path (`storage/tabs/b`), a key id, or a marker that a client put in its
//! `User-Agent` (Syncto forwards it upstream: `fault=sync-reset`).
//!
//! Written with std only, one thread per connection; every thread ends when
//! its client goes away, when a fault is played out, or when the proxy is
//! dropped.

#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does instead of forwarding a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection without answering.
    Close,
    /// Read the request, wait this long, then close without answering.
    CloseAfter(Duration),
    /// Send the answer head and part of the body, then reset the connection.
    ResetMidBody,
    /// Read the request and never answer.
    Hang,
    /// Send a valid answer, one byte a second.
    Drip,
    /// 200 with a JSON content type and a body cut short.
    InvalidJson,
    /// 200 with an HTML page, as a captive portal or a misrouted proxy.
    Html,
    /// 200 with a body of this many bytes.
    Oversized(u64),
    /// This status, with these headers and body.
    Status(u16, Vec<(String, String)>, String),
    /// Forward the request and its answer, then close the connection
    /// without saying so (no `Connection: close`), as a node that ends
    /// keep-alive connections on its own terms.
    ForwardThenClose,
}

impl Fault {
    /// A status answer with a JSON body and the given headers.
    pub fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Fault {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Fault::Status(code, headers, body.to_owned())
    }
}

/// How long a held connection (hang, drip) is kept at most.
const HOLD_MAX: Duration = Duration::from_secs(120);
/// A connection idle this long is closed.
const IDLE_MAX: Duration = Duration::from_secs(60);
/// Request and answer heads larger than this are refused.
const HEAD_MAX: usize = 64 * 1024;

struct Rule {
    marker: String,
    fault: Fault,
    left: usize,
}

struct Shared {
    backend: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    rewrite: Mutex<Option<(String, String)>>,
    stop: AtomicBool,
    /// Faults played so far.
    played: AtomicUsize,
    /// Requests forwarded so far.
    forwarded: AtomicUsize,
    /// Bumped by [`Faulty::refuse`]: connections of an older epoch close,
    /// as after a server restart.
    epoch: AtomicUsize,
}

/// The proxy. Dropping it stops it.
pub struct Faulty {
    /// `http://127.0.0.1:port`
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faulty {
    /// Listen on 127.0.0.1:0 in front of `backend` (`http://host:port/…`).
    pub fn start(backend: &str) -> Faulty {
        let authority = backend
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let backend: SocketAddr = authority.parse().expect("backend is http://ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            backend,
            rules: Mutex::new(Vec::new()),
            rewrite: Mutex::new(None),
            stop: AtomicBool::new(false),
            played: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
        });
        let mut f = Faulty {
            url: format!("http://{addr}"),
            addr,
            shared,
            acceptor: None,
        };
        f.acceptor = Some(accept_loop(listener, &f.shared));
        f
    }

    /// Play `fault` on the next `times` requests whose head contains
    /// `marker` (`usize::MAX`: until [`Faulty::clear`]).
    pub fn inject(&self, marker: &str, fault: Fault, times: usize) {
        lock(&self.shared.rules).push(Rule {
            marker: marker.to_owned(),
            fault,
            left: times,
        });
    }

    /// Forget every rule.
    pub fn clear(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Replace `from` with `to` in every forwarded answer body (e.g. the
    /// fake node's URL in Token Server answers with this proxy's URL).
    pub fn rewrite(&self, from: &str, to: &str) {
        *lock(&self.shared.rewrite) = Some((from.to_owned(), to.to_owned()));
    }

    /// Faults played so far.
    pub fn played(&self) -> usize {
        self.shared.played.load(Ordering::SeqCst)
    }

    /// Requests forwarded to the fake so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Stop listening and close every open connection: connections are
    /// refused until [`Faulty::listen`].
    pub fn refuse(&mut self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some((stop, handle)) = self.acceptor.take() {
            stop.store(true, Ordering::SeqCst);
            // Wake the blocked accept; the loop then drops the listener.
            let _ = TcpStream::connect(self.addr);
            let _ = handle.join();
        }
    }

    /// Listen again on the same port.
    pub fn listen(&mut self) {
        if self.acceptor.is_none() {
            let listener = TcpListener::bind(self.addr).expect("rebind the proxy port");
            self.acceptor = Some(accept_loop(listener, &self.shared));
        }
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.refuse();
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = std::thread::spawn({
        let (stop, shared) = (Arc::clone(&stop), Arc::clone(shared));
        move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
        }
    });
    (stop, handle)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Wait until a whole request head is in the socket, without taking it
/// out (so that a reset can leave it unread). `None`: the client went away,
/// or the connection must close.
fn peek_head(conn: &TcpStream, shared: &Shared, epoch: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; HEAD_MAX];
    let started = Instant::now();
    loop {
        if shared.stop.load(Ordering::SeqCst)
            || shared.epoch.load(Ordering::SeqCst) != epoch
            || started.elapsed() > IDLE_MAX
        {
            return None;
        }
        match conn.peek(&mut buf) {
            Ok(0) => return None,
            Ok(_) if shared.epoch.load(Ordering::SeqCst) != epoch => return None,
            Ok(n) => {
                if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
                    buf.truncate(end + 4);
                    return Some(buf);
                }
                if n == buf.len() {
                    return None;
                }
                // Part of a head: wait for the rest.
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

fn serve(mut conn: TcpStream, shared: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    conn.set_nodelay(true)?;
    let mut backend: Option<TcpStream> = None;
    let epoch = shared.epoch.load(Ordering::SeqCst);
    loop {
        let Some(head) = peek_head(&conn, shared, epoch) else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        let fault = {
            let mut rules = lock(&shared.rules);
            let hit = rules
                .iter_mut()
                .find(|r| r.left > 0 && text.contains(&r.marker));
            hit.map(|r| {
                r.left = r.left.saturating_sub(1);
                r.fault.clone()
            })
        };
        if fault == Some(Fault::ResetMidBody) {
            shared.played.fetch_add(1, Ordering::SeqCst);
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"id\": \"a\", \"payload\": \"",
            )?;
            // The request is still unread: closing now sends a reset.
            drop(conn);
            return Ok(());
        }
        // Take the head and the body out of the socket.
        let mut request = vec![0u8; head.len()];
        read_fully(&mut conn, &mut request, shared)?;
        let mut body = vec![0u8; content_length(&text).unwrap_or(0)];
        read_fully(&mut conn, &mut body, shared)?;
        request.extend_from_slice(&body);
        match fault {
            Some(Fault::ForwardThenClose) => {
                shared.played.fetch_add(1, Ordering::SeqCst);
                shared.forwarded.fetch_add(1, Ordering::SeqCst);
                let answer = forward(&mut backend, shared, &request)?;
                conn.write_all(&answer)?;
                return Ok(());
            }
            Some(fault) => {
                shared.played.fetch_add(1, Ordering::SeqCst);
                if !play(&mut conn, &fault, shared)? {
                    return Ok(());
                }
            }
            None => {
                shared.forwarded.fetch_add(1, Ordering::SeqCst);
                let answer = forward(&mut backend, shared, &request)?;
                conn.write_all(&answer)?;
            }
        }
    }
}

/// Read exactly `buf.len()` bytes, through read timeouts, until stopped.
fn read_fully(conn: &mut TcpStream, buf: &mut [u8], shared: &Shared) -> io::Result<()> {
    let started = Instant::now();
    let mut got = 0;
    while got < buf.len() {
        if shared.stop.load(Ordering::SeqCst) || started.elapsed() > IDLE_MAX {
            return Err(ErrorKind::TimedOut.into());
        }
        match conn.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Play a fault; `Ok(true)` when the connection can serve another request.
fn play(conn: &mut TcpStream, fault: &Fault, shared: &Shared) -> io::Result<bool> {
    let answer = |status: &str, ctype: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    match fault {
        Fault::Close | Fault::ResetMidBody => {
            let _ = conn.shutdown(Shutdown::Both);
            Ok(false)
        }
        Fault::CloseAfter(wait) => {
            let until = Instant::now() + *wait;
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = conn.shutdown(Shutdown::Both);
            Ok(false)
        }
        Fault::Hang => {
            // Hold the connection until the client gives up.
            let started = Instant::now();
            let mut sink = [0u8; 1024];
            while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < HOLD_MAX {
                match conn.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            Ok(false)
        }
        Fault::Drip => {
            let text = answer("200 OK", "application/json", "[]");
            let started = Instant::now();
            for b in text.bytes() {
                if shared.stop.load(Ordering::SeqCst) || started.elapsed() > HOLD_MAX {
                    break;
                }
                if conn.write_all(&[b]).is_err() {
                    return Ok(false);
                }
                // Sleep a second, in steps, so that a stop is noticed.
                for _ in 0..10 {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Ok(false)
        }
        Fault::InvalidJson => {
            let body = "{\"id\": \"x\", \"key\": \"k\", \"api_endpoint\": [{\"id\":";
            conn.write_all(answer("200 OK", "application/json", body).as_bytes())?;
            Ok(true)
        }
        Fault::Html => {
            let body = "<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>";
            conn.write_all(answer("200 OK", "text/html; charset=utf-8", body).as_bytes())?;
            Ok(true)
        }
        Fault::Oversized(n) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
            );
            conn.write_all(head.as_bytes())?;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = *n;
            while left > 0 && !shared.stop.load(Ordering::SeqCst) {
                let k = left.min(chunk.len() as u64) as usize;
                if conn.write_all(&chunk[..k]).is_err() {
                    return Ok(false);
                }
                left -= k as u64;
            }
            Ok(false)
        }
        // Played by `serve`, which forwards it.
        Fault::ForwardThenClose => Ok(false),
        Fault::Status(code, headers, body) => {
            let mut text = format!("HTTP/1.1 {code} Fault\r\n");
            for (n, v) in headers {
                text.push_str(&format!("{n}: {v}\r\n"));
            }
            text.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
            conn.write_all(text.as_bytes())?;
            Ok(true)
        }
    }
}

/// Send `request` to the fake and return its whole answer (head and body),
/// with the body rewritten if asked. One backend connection per client
/// connection, opened again if the fake closed it.
fn forward(
    backend: &mut Option<TcpStream>,
    shared: &Shared,
    request: &[u8],
) -> io::Result<Vec<u8>> {
    for attempt in 0..2 {
        if backend.is_none() {
            let s = TcpStream::connect(shared.backend)?;
            s.set_read_timeout(Some(IDLE_MAX))?;
            s.set_nodelay(true)?;
            *backend = Some(s);
        }
        let Some(s) = backend.as_mut() else { continue };
        match exchange(s, request) {
            Ok((answer, keep)) => {
                if !keep {
                    *backend = None;
                }
                return Ok(rewrite(answer, shared));
            }
            Err(e) => {
                *backend = None;
                if attempt == 1 {
                    return Err(e);
                }
            }
        }
    }
    Err(ErrorKind::ConnectionAborted.into())
}

/// One request/answer on a backend connection; the bool says whether the
/// connection can be used again.
fn exchange(s: &mut TcpStream, request: &[u8]) -> io::Result<(Vec<u8>, bool)> {
    s.write_all(request)?;
    let mut data = Vec::with_capacity(4096);
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&data, b"\r\n\r\n") {
            break i + 4;
        }
        if data.len() > HEAD_MAX {
            return Err(ErrorKind::InvalidData.into());
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let no_body = matches!(status, 100..=199 | 204 | 304);
    let close = head.to_ascii_lowercase().contains("\r\nconnection: close");
    match content_length(&head) {
        _ if no_body => data.truncate(head_end),
        Some(len) => {
            while data.len() < head_end + len {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                data.extend_from_slice(&buf[..n]);
            }
            data.truncate(head_end + len);
        }
        None => {
            // Delimited by the end of the connection.
            s.read_to_end(&mut data)?;
            return Ok((with_length(&data, head_end), false));
        }
    }
    Ok((data, !close))
}

/// An answer whose body ended with the connection, given a Content-Length.
fn with_length(data: &[u8], head_end: usize) -> Vec<u8> {
    let head = String::from_utf8_lossy(&data[..head_end - 2]);
    let body = &data[head_end..];
    let mut out = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

fn rewrite(answer: Vec<u8>, shared: &Shared) -> Vec<u8> {
    let Some((from, to)) = lock(&shared.rewrite).clone() else {
        return answer;
    };
    let Some(head_end) = find(&answer, b"\r\n\r\n").map(|i| i + 4) else {
        return answer;
    };
    let body = String::from_utf8_lossy(&answer[head_end..]);
    if !body.contains(&from) {
        return answer;
    }
    let body = body.replace(&from, &to);
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let mut out = String::with_capacity(answer.len() + 64);
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let is_length = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"));
        if is_length {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}
