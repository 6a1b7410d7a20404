//! Hawk request signing (SHA-256), as Sync 1.5 storage nodes verify it.
//!
//! Written by hand: the `hawk` crate pulls `url`/ICU and an older base64.
//! The key is the token's `key` string taken as bytes, never decoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt::Write;

type HmacSha256 = Hmac<Sha256>;

/// What is signed: everything the server re-derives from the request.
pub struct Signed<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// Path plus `?query`, exactly as sent on the wire.
    pub resource: &'a str,
    /// Host, lower-case, without port.
    pub host: &'a str,
    /// Explicit port or the scheme's default.
    pub port: u16,
    /// Unix seconds.
    pub ts: u64,
    /// Random string without `"`.
    pub nonce: &'a str,
    /// Base64 payload hash, when a body is sent.
    pub hash: Option<&'a str>,
    /// Application data (Sync never uses it).
    pub ext: Option<&'a str>,
}

/// The MAC of a request: base64(HMAC-SHA256(key, normalized string)).
pub(crate) fn mac(key: &[u8], s: &Signed<'_>) -> String {
    let mut normalized = String::with_capacity(96 + s.resource.len());
    // Writing into a String cannot fail.
    let _ = write!(
        normalized,
        "hawk.1.header\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        s.ts,
        s.nonce,
        s.method,
        s.resource,
        s.host.to_ascii_lowercase(),
        s.port,
        s.hash.unwrap_or(""),
        escape_ext(s.ext.unwrap_or("")),
    );
    STANDARD.encode(hmac_sha256(key, &[normalized.as_bytes()]))
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length: the error arm is unreachable, but a
    // zero MAC is a safer answer than a panic on the request path.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The full `Authorization` header value for `id`/`key`.
pub fn header(id: &str, key: &[u8], s: &Signed<'_>) -> String {
    let mac = mac(key, s);
    let mut h = String::with_capacity(64 + id.len() + mac.len());
    let _ = write!(
        h,
        "Hawk id=\"{id}\", ts=\"{}\", nonce=\"{}\"",
        s.ts, s.nonce
    );
    if let Some(hash) = s.hash {
        let _ = write!(h, ", hash=\"{hash}\"");
    }
    if let Some(ext) = s.ext {
        let _ = write!(h, ", ext=\"{}\"", escape_ext(ext));
    }
    let _ = write!(h, ", mac=\"{mac}\"");
    h
}

/// Payload hash: base64(SHA-256("hawk.1.payload\n" + content type without
/// parameters, lower-case + "\n" + body + "\n")).
pub fn payload_hash(content_type: &str, body: &[u8]) -> String {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut d = Sha256::new();
    d.update(b"hawk.1.payload\n");
    d.update(ct.as_bytes());
    d.update(b"\n");
    d.update(body);
    d.update(b"\n");
    STANDARD.encode(d.finalize())
}

/// A fresh nonce: 12 base64 characters, unique per request. Each thread
/// draws a random 48-bit prefix once and appends a counter, which saves a
/// getrandom call per request (Hawk nonces need uniqueness, not secrecy).
pub(crate) fn nonce() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<Option<([u8; 6], u32)>> = const { Cell::new(None) };
    }
    STATE.with(|state| {
        let (prefix, counter) = state.get().unwrap_or_else(|| {
            let mut p = [0u8; 6];
            if getrandom::getrandom(&mut p).is_err() {
                // No OS randomness: the clock still separates threads.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                p.copy_from_slice(&(t as u64).to_le_bytes()[..6]);
            }
            (p, 0)
        });
        let counter = counter.wrapping_add(1);
        // After 2^24 nonces a thread draws a new prefix.
        let next = if counter >= 1 << 24 {
            None
        } else {
            Some((prefix, counter))
        };
        state.set(next);
        let mut raw = [0u8; 9];
        raw[..6].copy_from_slice(&prefix);
        raw[6..].copy_from_slice(&counter.to_be_bytes()[1..]);
        STANDARD.encode(raw)
    })
}

fn escape_ext(ext: &str) -> std::borrow::Cow<'_, str> {
    if ext.contains(['\\', '\n']) {
        ext.replace('\\', "\\\\").replace('\n', "\\n").into()
    } else {
        ext.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn";

    fn spec(
        method: &'static str,
        hash: Option<&'static str>,
        ext: Option<&'static str>,
    ) -> Signed<'static> {
        Signed {
            method,
            resource: "/resource/1?b=1&a=2",
            host: "example.com",
            port: 8000,
            ts: 1353832234,
            nonce: "j4h3g2",
            hash,
            ext,
        }
    }

    #[test]
    fn h1_get_with_ext() {
        let s = spec("GET", None, Some("some-app-ext-data"));
        assert_eq!(mac(KEY, &s), "6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE=");
        assert_eq!(
            header("dh37fgj492je", KEY, &s),
            "Hawk id=\"dh37fgj492je\", ts=\"1353832234\", nonce=\"j4h3g2\", ext=\"some-app-ext-data\", mac=\"6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE=\""
        );
        assert_eq!(
            mac(KEY, &spec("GET", None, None)),
            "nfp3t5BVkMvjhU3PrD0ftTp7NcVpETEX2HEi/Fo4S2g="
        );
    }

    #[test]
    fn h2_post_payload() {
        let hash = payload_hash("text/plain", b"Thank you for flying Hawk");
        assert_eq!(hash, "Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY=");
        let s = Signed {
            hash: Some(&hash),
            ..spec("POST", None, Some("some-app-ext-data"))
        };
        assert_eq!(mac(KEY, &s), "aSe1DERmZuRl3pI36/9BdZmnErTw3sNzOOAUlfeKjVw=");
        assert_eq!(
            header("dh37fgj492je", KEY, &s),
            format!(
                "Hawk id=\"dh37fgj492je\", ts=\"1353832234\", nonce=\"j4h3g2\", hash=\"{hash}\", ext=\"some-app-ext-data\", mac=\"aSe1DERmZuRl3pI36/9BdZmnErTw3sNzOOAUlfeKjVw=\""
            )
        );
    }

    #[test]
    fn h3_content_type_normalisation() {
        let hash = payload_hash(
            "application/json; charset=utf-8",
            br#"{"test": "just some text"}"#,
        );
        assert_eq!(hash, "Lj826IMSgrm1vnCFQNxaXasE8zHBXSWq2pPtnHEmaO8=");
        let s = Signed {
            hash: Some(&hash),
            ..spec("POST", None, Some("some-app-ext-data"))
        };
        assert_eq!(mac(KEY, &s), "Tx7PoLWYtn3VJEc0GdkguHkEB281grYEtFycPhtln9w=");
        let s = spec("POST", None, Some("some-app-ext-data"));
        assert_eq!(mac(KEY, &s), "56wgBMHr4oIwA/dGZspMm6Zk4rnf3aiwwVeL0VtWoGo=");
    }

    #[test]
    fn h4_real_sync_token() {
        let key = b"dSi3EoZyHwgDp-O9OG1jRHtmbGl2M1bwcWsi04C4F58=";
        let get = Signed {
            method: "GET",
            resource: "/storage/1.5/1/storage/col2",
            host: "localhost",
            port: 5000,
            ts: 1569608439,
            nonce: "h1Ch4vo=",
            hash: None,
            ext: None,
        };
        assert_eq!(
            mac(key, &get),
            "UwDpC+DSrHCSTQSfMOWlueB6kM6gHb0Hsv8eU9ZcTVs="
        );
        let post = Signed {
            method: "POST",
            resource: "/storage/1.5/1/storage/col2?batch=MTUzNjE5ODk3NjkyMQ==&commit=true",
            nonce: "4Rj7c+0=",
            ..get
        };
        assert_eq!(
            mac(key, &post),
            "E7j1UjN7//mh7pYXsgGi3n0KGR+sUPpuyogDVzJWaHg="
        );
    }

    // Payload hashes seen on the wire between the original Syncto and a Sync node: the
    // empty payload without a content type, and a JSON record.
    #[test]
    fn original_payload_hashes() {
        assert_eq!(
            payload_hash("", b""),
            "B0weSUXsMcb5UhL41FZbrUJCAotzSI3HawE1NPLRUz8="
        );
        assert_eq!(
            payload_hash(
                "application/json",
                br#"{"payload": "zz", "sortindex": 3, "ttl": 100}"#
            ),
            "xRDCR0yvEFcz6E+ds1dfV51yuJ47aAVTfm/57ZlHwmw="
        );
    }

    #[test]
    fn host_is_lower_cased_and_nonce_is_fresh() {
        let a = Signed {
            host: "EXAMPLE.com",
            ..spec("GET", None, None)
        };
        assert_eq!(mac(KEY, &a), "nfp3t5BVkMvjhU3PrD0ftTp7NcVpETEX2HEi/Fo4S2g=");
        let (n1, n2) = (nonce(), nonce());
        assert_ne!(n1, n2);
        assert!(!n1.contains('"'));
    }

    #[test]
    fn a_threads_nonces_share_one_random_prefix_and_count_up() {
        // One getrandom per thread, not per request: 6 random bytes, then a 3-byte counter.
        let raw = |n: String| {
            assert_eq!(n.len(), 12, "{n}");
            STANDARD.decode(n).unwrap()
        };
        let nonces: Vec<Vec<u8>> = (0..4).map(|_| raw(nonce())).collect();
        let counter = |r: &[u8]| u32::from_be_bytes([0, r[6], r[7], r[8]]);
        for w in nonces.windows(2) {
            assert_eq!(w[0][..6], w[1][..6], "one prefix");
            assert_eq!(counter(&w[1]), counter(&w[0]) + 1, "counting up");
        }
        // Another thread has its own prefix.
        let other = raw(std::thread::spawn(nonce).join().unwrap());
        assert_ne!(other[..6], nonces[0][..6]);
    }
}
