//! TLS for every upstream call (Token Server, Sync nodes, heartbeat): the trust roots (the
//! Mozilla roots or a CA bundle) and SPKI pinning, in one rustls `ClientConfig`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct};
use rustls::{RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::upstream::agent::agent;
    use crate::upstream::failure::{CA_AS_SERVER, FailureKind, UNKNOWN_ISSUER, classify};
    use fakes::tls_server::{TlsServer, ok_response};
    use std::time::Duration;

    pub(crate) const CHAIN: &[u8] = include_bytes!("../../tests/data/tls/chain.pem");
    pub(crate) const KEY: &[u8] = include_bytes!("../../tests/data/tls/leaf.key");
    const OTHER_CA: &[u8] = include_bytes!("../../tests/data/tls/other-ca.pem");
    const PINS: &str = include_str!("../../tests/data/tls/pins.txt");
    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/");
    pub(crate) type Outcome = Result<(u16, String), (FailureKind, String)>;

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

    pub(crate) fn config(bundle: &str, pins: &[[u8; 32]]) -> Arc<ClientConfig> {
        client_config(Some(Path::new(&format!("{DATA}{bundle}"))), pins).unwrap()
    }

    /// GET `url` on `agent` (connect timeout 300 ms).
    pub(crate) fn get_with(agent: &ureq::Agent, url: &str) -> Outcome {
        let call = || -> Result<_, ureq::Error> {
            let mut resp = agent.get(url).call()?;
            Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
        };
        call().map_err(|e| classify(&e))
    }

    pub(crate) fn get(tls: Arc<ClientConfig>, url: &str, read: Duration) -> Outcome {
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
        assert_eq!(untrusted, tls_err(UNKNOWN_ISSUER));
        let webpki_roots = client_config(None, &[]).unwrap();
        assert_eq!(
            fetch(webpki_roots, CHAIN, KEY, "localhost"),
            tls_err(UNKNOWN_ISSUER)
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
    fn a_self_signed_certificate_says_how_to_trust_it() {
        // `openssl req -x509` (CA:TRUE): refused even when it is the bundle itself.
        let ca_cert = include_bytes!("../../tests/data/tls/self-signed-ca.pem");
        let ca_key = include_bytes!("../../tests/data/tls/self-signed-ca.key");
        for tls in [
            config("self-signed-ca.pem", &[]),
            client_config(None, &[]).unwrap(),
        ] {
            let got = fetch(tls, ca_cert, ca_key, "localhost");
            assert_eq!(got, tls_err(CA_AS_SERVER));
        }
        // With CA:FALSE: unknown until it is in the bundle, then trusted.
        let cert = include_bytes!("../../tests/data/tls/self-signed.pem");
        let key = include_bytes!("../../tests/data/tls/self-signed.key");
        let webpki_roots = client_config(None, &[]).unwrap();
        assert_eq!(
            fetch(webpki_roots, cert, key, "localhost"),
            tls_err(UNKNOWN_ISSUER)
        );
        let ok: Outcome = Ok((200, "hello".into()));
        assert_eq!(
            fetch(config("self-signed.pem", &[]), cert, key, "localhost"),
            ok
        );
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
