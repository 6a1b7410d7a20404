//! The shared ureq agent and its connector chain: ureq's own (CONNECT proxy, then TCP),
//! a probe of pooled connections at checkout only, steady socket timeouts, and TLS with our
//! `ClientConfig`.
//!
//! Why a connector of our own: ureq 3's `TlsConfig` only chooses among root
//! stores. It accepts neither a custom `ServerCertVerifier` nor a ready
//! `rustls::ClientConfig`, so pinning cannot be plugged in there. ureq does
//! let an agent be built from a connector chain, though. Ours is ureq's
//! default chain (CONNECT proxy, then TCP) ending in [`PinnedTls`], a copy of
//! ureq's own `src/tls/rustls.rs` that takes our `ClientConfig` as is. ureq
//! is built without TLS features, so rustls (ring provider) is our direct
//! dependency and its version is not tied to ureq's. The connector API is
//! `ureq::unversioned`: it may change in a ureq minor release, hence
//! `ureq = "~3.5"` and the tests below, which drive it end to end.

use crate::time_limits::POOLED_CONNECTION_TRUSTED_FOR;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::bare_host;
use crate::upstream::resolve::CachingResolver;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::config::{AutoHeaderValue, Config};
use ureq::unversioned::transport::time::{Duration as UDuration, Instant as UInstant};
use ureq::unversioned::transport::{Buffers, ConnectProxyConnector, ConnectionDetails, Connector};
use ureq::unversioned::transport::{Either, LazyBuffers, NextTimeout, TcpConnector};
use ureq::unversioned::transport::{Transport, TransportAdapter};

/// The one shared ureq agent: clones share its keep-alive pool.
///
/// Never follows redirects (a 3xx comes back as a response, so our
/// Authorization header never goes elsewhere), ignores proxy environment
/// variables, returns 4xx/5xx as responses, and sends no User-Agent of its
/// own. Plain `http://` stays allowed for loopback test upstreams; the caller
/// enforces the https policy.
///
/// Each call has one `deadline` for all of it: name lookup, connect (itself
/// at most `connect`), TLS handshake, request, answer head and body. An
/// upstream that sends a byte now and then is cut off at the deadline like
/// one that sends nothing. Names go through [`CachingResolver`], which keeps
/// that deadline without a thread per request.
pub fn agent(
    tls: Arc<ClientConfig>,
    connect: Duration,
    deadline: Duration,
    pool_size: usize,
) -> ureq::Agent {
    let config = Config::builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .https_only(false)
        .user_agent(AutoHeaderValue::None)
        .timeout_global(Some(deadline))
        .timeout_connect(Some(connect))
        .max_idle_connections(pool_size)
        .max_idle_connections_per_host(pool_size)
        .max_idle_age(Duration::from_secs(30))
        .input_buffer_size(64 * 1024)
        .output_buffer_size(32 * 1024)
        .build();
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(ProbeOnCheckout)
            .chain(PinnedTls(tls));
    ureq::Agent::with_parts(config, connector, CachingResolver::default())
}

/// The time left before a call's deadline, rounded down to a tenth of a
/// second (when it is longer than that). ureq hands each socket operation
/// the exact time left, which differs from one read to the next, and the TCP
/// transport re-sets SO_RCVTIMEO/SO_SNDTIMEO whenever the value changes (two
/// syscalls per request). Rounded, the value stays the same across the
/// reads and requests of a quiet period. The deadline may fire up to 100 ms
/// early, never late.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let UDuration::Exact(left) = timeout.after {
        let tenths = left.as_millis() / 100;
        if tenths > 0 {
            let millis = u64::try_from(tenths * 100).unwrap_or(u64::MAX);
            timeout.after = UDuration::Exact(Duration::from_millis(millis));
        }
    }
    timeout
}

/// ureq probes a pooled TCP connection twice per request: when it goes
/// back to the pool and again when it comes out (non-blocking mode on, a
/// one-byte read, blocking mode off: three syscalls each time). Only the
/// probe at checkout tells something the request needs (did the server
/// close the idle connection, or send stray bytes?), and it sees whatever
/// the first one would have seen. So the probe right after a response is
/// skipped; the one before reuse runs, except for a [`repeatable`] call on
/// a connection that answered less than [`POOLED_CONNECTION_TRUSTED_FOR`] ago.
#[derive(Debug)]
struct ProbeOnCheckout;

impl<In: Transport> Connector<In> for ProbeOnCheckout {
    type Out = CheckoutProbed<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| CheckoutProbed {
            inner,
            returned: None,
        }))
    }
}

/// A transport that knows whether, and since when, it has been back in the
/// pool.
#[derive(Debug)]
struct CheckoutProbed<T> {
    inner: T,
    /// When the first `is_open` after I/O (the return to the pool) came.
    returned: Option<std::time::Instant>,
}

impl<T: Transport> Transport for CheckoutProbed<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.returned = None;
        self.inner.transmit_output(amount, steady(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.returned = None;
        self.inner.await_input(steady(timeout))
    }

    fn is_open(&mut self) -> bool {
        match self.returned {
            // Checkout of a connection that answered a moment ago, for a
            // call that is sent again if the connection turns out dead.
            Some(at) if REPEATABLE.get() && at.elapsed() < POOLED_CONNECTION_TRUSTED_FOR => true,
            // Checkout: probe for real.
            Some(_) => self.inner.is_open(),
            None => {
                self.returned = Some(std::time::Instant::now());
                true
            }
        }
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

thread_local! {
    /// Whether this thread's current upstream call is [`repeatable`].
    static REPEATABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `call`, an upstream request that its caller sends again (on a
/// probed connection) when it fails before any answer: it may take a pooled
/// connection that answered within [`POOLED_CONNECTION_TRUSTED_FOR`] without the liveness
/// probe (three syscalls). A dead one then fails at once, and the repeat
/// pays for the probe. Only for requests that are safe to send twice
/// (GET): a write whose fate is unknown is never repeated, so a write
/// always gets a probed connection.
pub(crate) fn repeatable<T>(call: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            REPEATABLE.set(false);
        }
    }
    REPEATABLE.set(true);
    let _reset = Reset;
    call()
}

/// Last link of the connector chain: wraps the TCP transport in TLS with our
/// `ClientConfig` (modelled on ureq's `RustlsConnector`).
#[derive(Debug)]
struct PinnedTls(Arc<ClientConfig>);

/// rustls errors travel as `io::Error` so `classify` can find them (ureq's
/// `From<rustls::Error>` exists only with its TLS features).
fn tls_error(e: rustls::Error) -> ureq::Error {
    ureq::Error::Io(io::Error::other(e))
}

impl<In: Transport> Connector<In> for PinnedTls {
    type Out = Either<In, PinnedTlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        // IPv6 literals come bracketed in URIs.
        let host = bare_host(details.uri.host().unwrap_or_default());
        let name = ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("invalid TLS server name"))?
            .to_owned();
        let conn = ClientConnection::new(self.0.clone(), name).map_err(tls_error)?;
        let boxed: Box<dyn Transport> = Box::new(transport);
        let mut sock = TransportAdapter::new(boxed, details.current_time.clone());
        // The handshake gets what TCP connect left of the connect budget.
        sock.set_timeout(remaining(details));
        let mut stream = StreamOwned::new(conn, sock);
        // An io::Error from here carries either a rustls::Error or a wrapped
        // ureq::Error (timeout), which From unwraps.
        stream.conn.complete_io(&mut stream.sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(PinnedTlsTransport { buffers, stream })))
    }
}

fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    let now = (details.current_time)();
    if let (UInstant::Exact(start), UInstant::Exact(now), UDuration::Exact(after)) =
        (details.now, now, timeout.after)
    {
        timeout.after =
            UDuration::Exact(after.saturating_sub(now.saturating_duration_since(start)));
    }
    timeout
}

/// A TLS connection as ureq sees it.
struct PinnedTlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for PinnedTlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedTlsTransport")
    }
}

impl Transport for PinnedTlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::failure::FailureKind::{Network, Timeout};
    use crate::upstream::tls::tests::{CHAIN, KEY, config, get, get_with};
    use fakes::tls_server::TlsServer;
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::Instant;

    #[test]
    fn refused_and_timeouts() {
        let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let got = get(
            config("ca.pem", &[]),
            &format!("https://{closed}/x"),
            Duration::from_secs(1),
        );
        assert_eq!(got, Err((Network, "connection refused".into())));

        // Handshake done, the response never comes: read timeout (300 ms).
        let slow = |_: &str| {
            std::thread::sleep(Duration::from_millis(1500));
            Vec::new()
        };
        let server = TlsServer::start(CHAIN, KEY, slow);
        let (url, started) = (
            format!("https://localhost:{}/x", server.port),
            Instant::now(),
        );
        let got = get(config("ca.pem", &[]), &url, Duration::from_millis(300));
        let Err((Timeout, reason)) = got else {
            panic!("{got:?}")
        };
        assert!(reason.starts_with("timed out"), "{reason}");
        assert!(started.elapsed() < Duration::from_millis(1200));

        // TCP accepted by the backlog but no TLS ever: the connect timeout
        // must bound the handshake. Run aside, so a hang fails the test.
        let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("https://{}/x", silent.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(get(config("ca.pem", &[]), &url, Duration::from_secs(5)))
        });
        let got = rx
            .recv_timeout(Duration::from_secs(2))
            .expect("handshake must time out");
        assert_eq!(got, Err((Timeout, "timed out (connect)".into())));
    }

    #[test]
    fn a_dripping_upstream_is_cut_off_at_the_deadline() {
        // One byte every 100 ms: no single read ever waits long, only the
        // whole call's deadline can stop it.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let upstream = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0; 2048];
            let _ = s.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
                "x".repeat(100)
            );
            for b in answer.bytes() {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let started = Instant::now();
        let got = get(config("ca.pem", &[]), &url, Duration::from_millis(800));
        let elapsed = started.elapsed();
        let Err((Timeout, reason)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(reason, "timed out (global)");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        upstream.join().unwrap();
    }

    #[test]
    fn socket_timeouts_round_down_to_tenths() {
        let t = |ms: u64| NextTimeout {
            after: UDuration::from_millis(ms),
            ..NextTimeout::default()
        };
        assert_eq!(steady(t(29_999)).after, UDuration::from_millis(29_900));
        assert_eq!(steady(t(29_950)).after, UDuration::from_millis(29_900));
        assert_eq!(steady(t(150)).after, UDuration::from_millis(100));
        assert_eq!(steady(t(99)).after, UDuration::from_millis(99));
        let never = NextTimeout::default();
        assert_eq!(steady(never), never);
    }

    #[test]
    fn pooled_connection_closed_by_server_is_not_reused() {
        let keep_alive = |_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec();
        let server = TlsServer::start(CHAIN, KEY, keep_alive);
        let agent = agent(
            config("ca.pem", &[]),
            Duration::from_secs(1),
            Duration::from_secs(1),
            4,
        );
        let url = format!("https://localhost:{}/x", server.port);
        for i in 1..=3 {
            assert_eq!(get_with(&agent, &url), Ok((200, "hi".into())));
            // The server has sent close_notify and closed: the pooled connection is dead.
            wait_until("the server closed the connection", || server.closed() == i);
        }
        assert_eq!(server.closed(), 3, "three connections, none reused");
    }

    /// Wait (bounded) for something a test can observe, instead of sleeping.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A node that answers each connection's first request, then closes it
    /// without saying so (no `Connection: close`). Returns its URL and the
    /// number of requests it answered, counted once their connection is closed.
    fn answer_once_per_connection() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let answered = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&answered);
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten().take(8) {
                let mut buf = [0; 2048];
                if s.read(&mut buf).unwrap_or(0) > 0 {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
                    drop(s);
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        (url, answered)
    }

    #[test]
    fn a_repeatable_call_skips_the_probe_of_a_fresh_connection_and_others_do_not() {
        use std::sync::atomic::Ordering;
        let (url, answered) = answer_once_per_connection();
        let agent = agent(
            config("ca.pem", &[]),
            Duration::from_secs(1),
            Duration::from_secs(5),
            4,
        );
        // The node has closed the connection of its `n`th answer.
        let closed = |n: usize| {
            wait_until("the node closed the connection", || {
                answered.load(Ordering::SeqCst) == n
            })
        };
        assert_eq!(get_with(&agent, &url), Ok((200, "hi".into())));
        closed(1);
        // Probed: the closed connection is left, a new one answers.
        assert_eq!(get_with(&agent, &url), Ok((200, "hi".into())));
        closed(2);
        // Not probed: the closed connection is used and fails at once,
        // before any answer (the caller then sends it again).
        let started = std::time::Instant::now();
        let got = repeatable(|| get_with(&agent, &url));
        assert!(matches!(got, Err((Network, _))), "{got:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(answered.load(Ordering::SeqCst), 2);
        // After the call, probing is back.
        assert_eq!(get_with(&agent, &url), Ok((200, "hi".into())));
        closed(3);
        // A connection that answered more than POOLED_CONNECTION_TRUSTED_FOR ago is probed
        // even for a repeatable call.
        std::thread::sleep(POOLED_CONNECTION_TRUSTED_FOR);
        assert_eq!(
            repeatable(|| get_with(&agent, &url)),
            Ok((200, "hi".into()))
        );
    }

    #[test]
    fn plain_http_redirect_is_returned_without_user_agent() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let upstream = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0; 2048];
            let n = s.read(&mut buf).unwrap();
            s.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://e.invalid/\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_lowercase()
        });
        let got = get(config("ca.pem", &[]), &url, Duration::from_secs(5));
        assert_eq!(got, Ok((302, String::new())));
        assert!(!upstream.join().unwrap().contains("user-agent"));
    }
}
