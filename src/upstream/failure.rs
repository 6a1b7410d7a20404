//! What kind of failure an upstream call met (timeout, TLS, unusable answer, network), and a
//! one-line reason for the log, from ureq's error and the rustls error inside it.

use rustls::CertificateError;
use std::error::Error as StdError;
use std::io::{self, ErrorKind};

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

/// A certificate signed by a CA Syncto does not trust: what to do.
pub const UNKNOWN_ISSUER: &str = "unknown issuer: the certificate is not signed by a CA \
    Syncto trusts (the built-in Mozilla roots, or certificate_ca_bundle when it is set); for a \
    private CA or a self-signed certificate, name that CA or certificate in \
    certificate_ca_bundle, which replaces the built-in roots (so include the CAs of the Token \
    Server and of every Sync node)";

/// A CA certificate presented as the server's own (what `openssl req -x509` makes by
/// default): refused even when it is trusted.
pub const CA_AS_SERVER: &str = "the server presents a CA certificate as its own \
    (CaUsedAsEndEntity: a self-signed certificate with CA:TRUE, as `openssl req -x509` makes \
    by default), which TLS refuses even from certificate_ca_bundle: give the server a \
    certificate signed by your CA, or a self-signed one with \
    `-addext basicConstraints=critical,CA:FALSE`, and name that CA or certificate in \
    certificate_ca_bundle";

fn classify_rustls(e: &rustls::Error) -> (FailureKind, String) {
    use CertificateError as C;
    let reason = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            // Only our PinnedVerifier produces this one.
            C::ApplicationVerificationFailure => "certificate pin mismatch",
            C::UnknownIssuer => UNKNOWN_ISSUER,
            // webpki's error, which rustls carries without a variant of its own.
            C::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => CA_AS_SERVER,
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
