//! TLS for every upstream call (Token Server, Sync nodes, heartbeat): trust
//! roots, SPKI pinning, the shared ureq agent, and error classification.
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

use std::error::Error as StdError;
use std::io::{self, ErrorKind, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::bare_host;
use crate::resolve::CachingResolver;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};
use rustls::{RootCertStore, SignatureScheme, StreamOwned};
use sha2::{Digest, Sha256};
use ureq::config::{AutoHeaderValue, Config};
use ureq::unversioned::transport::time::{Duration as UDuration, Instant as UInstant};
use ureq::unversioned::transport::{Buffers, ConnectProxyConnector, ConnectionDetails, Connector};
use ureq::unversioned::transport::{Either, LazyBuffers, NextTimeout, TcpConnector};
use ureq::unversioned::transport::{Transport, TransportAdapter};

/// Build the rustls client config used for every upstream connection.
///
/// `ca_bundle`: `Some(path)` trusts only the CAs in that PEM file, instead of
/// the Mozilla roots from webpki-roots. `pins`: SHA-256 of SubjectPublicKeyInfo
/// DER; when non-empty, a server that passes the normal chain, name and expiry
/// checks must also present a leaf or an intermediate in its validated chain
/// whose SPKI hash is listed. ring provider, safe default protocol versions.
pub fn client_config(
    ca_bundle: Option<&Path>,
    pins: &[[u8; 32]],
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match ca_bundle {
        Some(path) => load_bundle(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS certificate verifier: {e}"))?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let config = if pins.is_empty() {
        builder.with_webpki_verifier(webpki)
    } else {
        let pinned = PinnedVerifier {
            inner: webpki,
            pins: pins.to_vec(),
            algs: provider.signature_verification_algorithms,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pinned))
    };
    Ok(Arc::new(config.with_no_client_auth()))
}

fn load_bundle(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("CA bundle {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    // Tolerate odd entries, as system bundles sometimes hold certificates
    // webpki cannot use as trust anchors; an empty result is an error.
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if ignored > 0 {
        log::warn!("CA bundle {shown}: ignored {ignored} unusable certificate(s)");
    }
    if added == 0 {
        return Err(format!("CA bundle {shown}: no usable certificate in it"));
    }
    Ok(roots)
}

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
/// skipped; the one before reuse always runs.
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
            returned: false,
        }))
    }
}

/// A transport that knows whether it was asked `is_open` since its last I/O.
#[derive(Debug)]
struct CheckoutProbed<T> {
    inner: T,
    /// The first `is_open` after I/O (the return to the pool) happened.
    returned: bool,
}

impl<T: Transport> Transport for CheckoutProbed<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.returned = false;
        self.inner.transmit_output(amount, steady(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.returned = false;
        self.inner.await_input(steady(timeout))
    }

    fn is_open(&mut self) -> bool {
        if self.returned {
            // Checkout: probe for real.
            self.inner.is_open()
        } else {
            self.returned = true;
            true
        }
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// What kind of upstream failure an error is (Timeout → 504, others → 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A connect, send or receive timeout expired.
    Timeout,
    /// The TLS handshake failed: untrusted, expired or misnamed certificate,
    /// pin mismatch, TLS alert or protocol error.
    Tls,
    /// The upstream answered something unusable: not HTTP, or a head or
    /// body over the size limit.
    Unusable,
    /// Anything else: refused, reset, closed, DNS.
    Network,
}

/// Classify a ureq error and give a one-line reason for the log. Reasons
/// are fixed phrases or rustls/OS descriptions, never request data.
pub fn classify(err: &ureq::Error) -> (FailureKind, String) {
    use FailureKind::{Network, Tls, Unusable};
    let fixed = |kind, reason: &str| (kind, reason.to_owned());
    match err {
        ureq::Error::Timeout(t) => (FailureKind::Timeout, format!("timed out ({t})")),
        ureq::Error::Io(e) => classify_io(e),
        ureq::Error::Other(e) => find_rustls(Some(&**e))
            .map_or_else(|| fixed(Network, "connection failed"), classify_rustls),
        ureq::Error::Tls(reason) => fixed(Tls, reason),
        ureq::Error::TlsRequired => fixed(Tls, "TLS required but the connection is plain"),
        ureq::Error::HostNotFound => fixed(Network, "host not found"),
        ureq::Error::Protocol(_) => fixed(Unusable, "invalid HTTP response"),
        ureq::Error::LargeResponseHeader(..) => fixed(Unusable, "response header too large"),
        ureq::Error::BodyExceedsLimit(limit) => {
            (Unusable, format!("response body over {limit} bytes"))
        }
        ureq::Error::BadUri(_) => fixed(Network, "invalid upstream URL"),
        ureq::Error::ConnectProxyFailed(_) => fixed(Network, "proxy CONNECT failed"),
        _ => fixed(Network, "upstream request failed"),
    }
}

fn classify_io(e: &io::Error) -> (FailureKind, String) {
    if let Some(inner) = e.get_ref() {
        // A ureq error travelling inside io (e.g. a timeout during handshake).
        if let Some(ureq_err) = inner.downcast_ref::<ureq::Error>() {
            return classify(ureq_err);
        }
        if let Some(tls) = find_rustls(Some(inner)) {
            return classify_rustls(tls);
        }
    }
    let reason = match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            return (FailureKind::Timeout, "timed out".into());
        }
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "connection reset",
        ErrorKind::ConnectionAborted => "connection aborted",
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => "connection closed by peer",
        ErrorKind::HostUnreachable => "host unreachable",
        ErrorKind::NetworkUnreachable => "network unreachable",
        kind => return (FailureKind::Network, format!("I/O error: {kind}")),
    };
    (FailureKind::Network, reason.into())
}

/// Walk an error's source chain to the rustls error, if any.
fn find_rustls<'a>(mut e: Option<&'a (dyn StdError + 'static)>) -> Option<&'a rustls::Error> {
    while let Some(cur) = e {
        if let Some(tls) = cur.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = cur.source();
    }
    None
}

fn classify_rustls(e: &rustls::Error) -> (FailureKind, String) {
    use CertificateError as C;
    let reason = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            // Only our PinnedVerifier produces this one.
            C::ApplicationVerificationFailure => "certificate pin mismatch",
            C::UnknownIssuer => "unknown issuer",
            C::Expired | C::ExpiredContext { .. } => "certificate expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not yet valid",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not valid for name"
            }
            C::Revoked => "certificate revoked",
            C::BadSignature => "bad certificate signature",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "certificate not valid for server authentication"
            }
            _ => return (FailureKind::Tls, format!("invalid certificate: {cert:?}")),
        },
        rustls::Error::NoCertificatesPresented => "server presented no certificate",
        _ => return (FailureKind::Tls, format!("TLS error: {e}")),
    };
    (FailureKind::Tls, reason.into())
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (certificate DER in); `Err` when the
/// certificate does not parse.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], String> {
    let der = CertificateDer::from(cert_der);
    let cert = ParsedCertificate::try_from(&der).map_err(|e| format!("certificate: {e}"))?;
    Ok(Sha256::digest(cert.subject_public_key_info().as_ref()).into())
}

/// Normal webpki verification, then SPKI pinning.
#[derive(Debug)]
struct PinnedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    fn pinned(&self, cert: &CertificateDer<'_>) -> bool {
        spki_sha256(cert).is_ok_and(|h| self.pins.contains(&h))
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.pinned(end_entity) {
            return Ok(ok);
        }
        // Intermediates are public: anyone can append a copy of the pinned
        // one to a chain from another CA. So a pinned intermediate counts
        // only if the leaf chains to it when it is the sole trust anchor.
        let leaf = ParsedCertificate::try_from(end_entity)?;
        for (i, ca) in intermediates.iter().enumerate() {
            if !self.pinned(ca) {
                continue;
            }
            let mut anchor = RootCertStore::empty();
            if anchor.add(ca.clone()).is_err() {
                continue;
            }
            let others: Vec<_> = (intermediates.iter().enumerate())
                .filter(|&(j, _)| j != i)
                .map(|(_, c)| c.clone())
                .collect();
            if verify_server_cert_signed_by_trust_anchor(
                &leaf,
                &anchor,
                &others,
                now,
                self.algs.all,
            )
            .is_ok()
            {
                return Ok(ok);
            }
        }
        log::debug!("TLS: no presented certificate matches a configured pin");
        Err(CertificateError::ApplicationVerificationFailure.into())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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

// The integration tests' server, shared. (At file level: inside `mod tests`
// the path would be relative to the nonexistent src/tls/tests/.)
#[cfg(test)]
#[path = "../../tests/support/tls_server.rs"]
mod tls_server;

#[cfg(test)]
mod tests {
    use super::tls_server::{TlsServer, ok_response};
    use super::*;
    use FailureKind::{Network, Timeout};
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::Instant;

    const CHAIN: &[u8] = include_bytes!("../../tests/data/tls/chain.pem");
    const KEY: &[u8] = include_bytes!("../../tests/data/tls/leaf.key");
    const OTHER_CA: &[u8] = include_bytes!("../../tests/data/tls/other-ca.pem");
    const PINS: &str = include_str!("../../tests/data/tls/pins.txt");
    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/");
    type Outcome = Result<(u16, String), (FailureKind, String)>;

    /// Pin from pins.txt, i.e. computed by openssl.
    fn pin(name: &str) -> [u8; 32] {
        let line = PINS
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")));
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = base64::Engine::decode(&engine, line.expect("pin in pins.txt"));
        bytes.unwrap().try_into().expect("32 bytes")
    }

    fn first_der(pem: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem).unwrap()
    }

    fn config(bundle: &str, pins: &[[u8; 32]]) -> Arc<ClientConfig> {
        client_config(Some(Path::new(&format!("{DATA}{bundle}"))), pins).unwrap()
    }

    /// GET `url` on `agent` (connect timeout 300 ms).
    fn get_with(agent: &ureq::Agent, url: &str) -> Outcome {
        let call = || -> Result<_, ureq::Error> {
            let mut resp = agent.get(url).call()?;
            Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
        };
        call().map_err(|e| classify(&e))
    }

    fn get(tls: Arc<ClientConfig>, url: &str, read: Duration) -> Outcome {
        get_with(&agent(tls, Duration::from_millis(300), read, 4), url)
    }

    /// Serve `chain`/`key` and GET `https://{host}:port/x` with `tls`.
    fn fetch(tls: Arc<ClientConfig>, chain: &[u8], key: &[u8], host: &str) -> Outcome {
        let server = TlsServer::start(chain, key, ok_response);
        get(
            tls,
            &format!("https://{host}:{}/x", server.port),
            Duration::from_secs(5),
        )
    }

    fn tls_err(reason: &str) -> Outcome {
        Err((FailureKind::Tls, reason.to_owned()))
    }

    #[test]
    fn trusted_chains_and_pins_pass() {
        let ok: Outcome = Ok((200, "hello".into()));
        assert_eq!(fetch(config("ca.pem", &[]), CHAIN, KEY, "localhost"), ok);
        assert_eq!(fetch(config("ca.pem", &[]), CHAIN, KEY, "127.0.0.1"), ok);
        let leaf_pin = config("ca.pem", &[pin("leaf")]);
        assert_eq!(fetch(leaf_pin, CHAIN, KEY, "localhost"), ok);
        let intermediate_pin = config("ca.pem", &[[7; 32], pin("intermediate")]);
        assert_eq!(fetch(intermediate_pin, CHAIN, KEY, "127.0.0.1"), ok);
    }

    #[test]
    fn pin_mismatch_fails() {
        let wrong = fetch(config("ca.pem", &[[7; 32]]), CHAIN, KEY, "localhost");
        assert_eq!(wrong, tls_err("certificate pin mismatch"));
        // The server also presents other-ca.pem, outside its real chain:
        // pinning that certificate must not let the chain through.
        let appended = [CHAIN, OTHER_CA].concat();
        let pins = [spki_sha256(&first_der(OTHER_CA)).unwrap()];
        let got = fetch(config("ca.pem", &pins), &appended, KEY, "localhost");
        assert_eq!(got, tls_err("certificate pin mismatch"));
    }

    #[test]
    fn untrusted_expired_or_misnamed_fails() {
        let untrusted = fetch(config("other-ca.pem", &[]), CHAIN, KEY, "localhost");
        assert_eq!(untrusted, tls_err("unknown issuer"));
        let webpki_roots = client_config(None, &[]).unwrap();
        assert_eq!(
            fetch(webpki_roots, CHAIN, KEY, "localhost"),
            tls_err("unknown issuer")
        );
        let expired = include_bytes!("../../tests/data/tls/expired-chain.pem");
        let key = include_bytes!("../../tests/data/tls/expired.key");
        let got = fetch(config("ca.pem", &[]), expired, key, "localhost");
        assert_eq!(got, tls_err("certificate expired"));
        let wrong = include_bytes!("../../tests/data/tls/wrong-host-chain.pem");
        let key = include_bytes!("../../tests/data/tls/wrong-host.key");
        let got = fetch(config("ca.pem", &[]), wrong, key, "localhost");
        assert_eq!(got, tls_err("certificate not valid for name"));
    }

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
        for _ in 0..3 {
            assert_eq!(get_with(&agent, &url), Ok((200, "hi".into())));
            std::thread::sleep(Duration::from_millis(100)); // let close_notify arrive
        }
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

    #[test]
    fn bundle_errors_name_the_path() {
        let err = client_config(Some(Path::new("/nonexistent/bundle.pem")), &[]).unwrap_err();
        assert!(err.contains("/nonexistent/bundle.pem"), "{err}");
        let key_file = format!("{DATA}leaf.key");
        let err = client_config(Some(Path::new(&key_file)), &[]).unwrap_err();
        assert!(
            err.contains(&key_file) && err.contains("no usable certificate"),
            "{err}"
        );
    }

    #[test]
    fn spki_pins_match_openssl() {
        let intermediate = include_bytes!("../../tests/data/tls/intermediate.pem");
        assert_eq!(spki_sha256(&first_der(CHAIN)), Ok(pin("leaf")));
        assert_eq!(
            spki_sha256(&first_der(intermediate)),
            Ok(pin("intermediate"))
        );
        assert!(spki_sha256(b"not a certificate").is_err());
    }
}
