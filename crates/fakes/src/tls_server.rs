//! A tiny HTTPS server for tests: rustls + std only, one request per
//! connection.
//!
//! Used by the unit tests in `src/upstream/` (a dev-dependency) and by the
//! integration tests, to play a Token Server or Sync node with a chosen
//! certificate chain (see `tests/data/tls/gen-certs.sh`).
//!
//! Each accepted connection gets its own thread, so a deliberately slow
//! `respond` (to provoke client timeouts) does not hold up other requests.
//! The server reads the request head, reads and discards a `Content-Length`
//! body, writes whatever `respond` returns, sends a TLS close_notify and
//! closes. Responses should carry `Connection: close` so that the client does
//! not try to reuse the connection. The server stops when dropped, or after
//! 10 000 connections.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Upper bound on connections served, so a runaway test cannot spin forever.
const MAX_CONNECTIONS: usize = 10_000;
/// Upper bound on a request head or body the server is willing to buffer.
const MAX_REQUEST: usize = 1 << 20;
/// Socket timeout, so a client that vanishes cannot pin a thread forever.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running test server on `127.0.0.1:port`. Stops on drop.
pub struct TlsServer {
    /// The port it listens on (loopback only).
    pub port: u16,
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicUsize>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    /// Start serving `chain_pem` (leaf first, then intermediates) with the
    /// private key in `key_pem`. `respond` gets the request head (request
    /// line and headers, as text) and returns the full raw HTTP response.
    ///
    /// Panics if the certificate material is unusable: this is test code.
    pub fn start(
        chain_pem: &[u8],
        key_pem: &[u8],
        respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) -> TlsServer {
        let respond: Responder = Arc::new(respond);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .expect("certificate chain PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem).expect("private key PEM");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate and key");
        let config = Arc::new(config);

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let closed = Arc::new(AtomicUsize::new(0));
        let closed_count = Arc::clone(&closed);
        let accept_thread = thread::spawn(move || {
            for stream in listener.incoming().take(MAX_CONNECTIONS) {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let config = Arc::clone(&config);
                let respond = Arc::clone(&respond);
                let closed = Arc::clone(&closed_count);
                thread::spawn(move || {
                    serve_one(config, stream, &*respond);
                    // The socket was dropped on the way out: closed for the client too.
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        TlsServer {
            port,
            stop,
            closed,
            accept_thread: Some(accept_thread),
        }
    }

    /// Connections served and closed so far (what a test waits on instead of sleeping).
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Handle one connection. Errors (handshake failures provoked by the tests,
/// clients giving up on purpose) just end the connection.
type Responder = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

fn serve_one(
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    respond: &(dyn Fn(&str) -> Vec<u8> + Send + Sync),
) {
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);

    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(&request, b"\r\n\r\n") {
            break pos + 4;
        }
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) if request.len() + n > MAX_REQUEST => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();

    // Drain the body, so closing does not reset the connection under the
    // client while it still writes.
    let body_len = content_length(&head).min(MAX_REQUEST);
    let mut have = request.len() - head_end;
    while have < body_len {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }

    let response = respond(&head);
    if tls.write_all(&response).is_ok() {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
    let _ = tls.sock.shutdown(Shutdown::Write);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// A canned `200 OK` with a small text body, for `respond`.
pub fn ok_response(_head: &str) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        .to_vec()
}
