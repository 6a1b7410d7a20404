//! Who the user is: `Authorization` + key id (OAuth) or client state
//! (BrowserID) → [`Identity`]. No network here; the Token Server judges
//! the credential itself.

/// The two schemes the Token Server has spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer <FxA OAuth token>` + `X-KeyID`.
    Bearer,
    /// `Authorization: BrowserID <assertion>` + `X-Client-State` (legacy).
    BrowserId,
}

impl Scheme {
    /// The scheme word sent upstream.
    pub fn word(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::BrowserId => "BrowserID",
        }
    }

    /// The header that carries the key material upstream.
    pub fn key_header(self) -> &'static str {
        match self {
            Scheme::Bearer => "X-KeyID",
            Scheme::BrowserId => "X-Client-State",
        }
    }
}

/// An authenticated-looking request: what the Token Server will be asked.
/// Its `Debug` leaves the credential out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Which scheme.
    pub scheme: Scheme,
    /// The token or assertion (never logged).
    pub credential: &'a str,
    /// `X-KeyID` value (Bearer) or client state (BrowserID).
    pub key: &'a str,
}

impl std::fmt::Debug for Identity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("scheme", &self.scheme)
            .field("credential", &"<redacted>")
            .field("key", &self.key)
            .finish()
    }
}

/// Why the identity cannot be worked out: a sentence for the client that names what is
/// missing or malformed (the request is answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthenticated(pub &'static str);

/// The scheme and the token (or assertion) of an `Authorization` value, checked as far as
/// can be without the Token Server.
pub fn credential(authorization: Option<&str>) -> Result<(Scheme, &str), Unauthenticated> {
    let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err(Unauthenticated(
            "Provide an Authorization header: `Bearer <OAuth token>` with an X-KeyID, or `BrowserID <assertion>`.",
        ));
    };
    let (word, credential) = match value.split_once([' ', '\t']) {
        Some((w, c)) => (w, c.trim()),
        None => (value, ""),
    };
    let scheme = if word.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if word.eq_ignore_ascii_case("browserid") {
        Scheme::BrowserId
    } else {
        return Err(Unauthenticated(
            "Unsupported authorization scheme: use `Bearer <OAuth token>` (with X-KeyID) or `BrowserID <assertion>`.",
        ));
    };
    if credential.is_empty() {
        return Err(Unauthenticated(
            "The Authorization header carries no token after its scheme.",
        ));
    }
    // It goes to the Token Server in a header, where a control character
    // can't travel: no token has one (and it must not become a 503).
    if credential.chars().any(char::is_control) {
        return Err(Unauthenticated(
            "The token in the Authorization header has control characters.",
        ));
    }
    Ok((scheme, credential))
}

/// Work out the identity from the `Authorization`, `X-KeyID` and
/// `X-Client-State` header values and the bucket id of the URL.
pub fn identify<'a>(
    authorization: Option<&'a str>,
    key_id_header: Option<&'a str>,
    client_state_header: Option<&'a str>,
    bucket: &'a str,
) -> Result<Identity<'a>, Unauthenticated> {
    let (scheme, credential) = credential(authorization)?;
    let key = match scheme {
        Scheme::Bearer if is_key_id(bucket) => bucket,
        Scheme::Bearer if bucket == "syncto" => match key_id_header.map(str::trim) {
            None | Some("") => {
                return Err(Unauthenticated(
                    "Provide the tokenserver X-KeyID header (or use the key id as the bucket id).",
                ));
            }
            Some(k) if is_key_id(k) => k,
            Some(_) => {
                return Err(Unauthenticated(
                    "The X-KeyID header is malformed: expected <keys_changed_at>-<22 base64url characters>.",
                ));
            }
        },
        Scheme::BrowserId if bucket == "syncto" => match client_state_header.map(str::trim) {
            None | Some("") => {
                return Err(Unauthenticated(
                    "Provide the tokenserver X-Client-State header.",
                ));
            }
            Some(cs) if is_client_state(cs) => cs,
            Some(_) => {
                return Err(Unauthenticated(
                    "The X-Client-State header is malformed: expected 1 to 32 characters of [a-zA-Z0-9._-].",
                ));
            }
        },
        Scheme::BrowserId if bucket.len() == 32 && is_client_state(bucket) => bucket,
        _ => {
            return Err(Unauthenticated("The provided bucket ID is incorrect."));
        }
    };
    Ok(Identity {
        scheme,
        credential,
        key,
    })
}

/// The `WWW-Authenticate` challenge of a 401: the scheme the request used, `BrowserID` for
/// the legacy form and `Bearer` for everything else (no header, an unknown scheme). Never
/// `Basic`: a browser answers a Basic challenge with a password dialog that no Sync
/// credential can fill.
pub fn challenge(authorization: Option<&str>) -> &'static str {
    let word = authorization
        .map(str::trim)
        .and_then(|v| v.split([' ', '\t']).next())
        .unwrap_or("");
    if word.eq_ignore_ascii_case("browserid") {
        "BrowserID realm=\"Syncto\""
    } else {
        "Bearer realm=\"Syncto\""
    }
}

/// The statsd name of the scheme of an `Authorization` value: `Bearer`, `BrowserID`, or
/// `other` for any other word, so that clients cannot create metrics; None without one.
pub fn authn_type(authorization: Option<&str>) -> Option<&'static str> {
    let value = authorization.map(str::trim).filter(|v| !v.is_empty())?;
    let word = value.split([' ', '\t']).next().unwrap_or(value);
    Some(if word.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer.word()
    } else if word.eq_ignore_ascii_case("browserid") {
        Scheme::BrowserId.word()
    } else {
        "other"
    })
}

/// `<keys_changed_at>-<client state, 16 bytes as unpadded base64url>`.
pub fn is_key_id(s: &str) -> bool {
    let Some((kca, cs)) = s.split_once('-') else {
        return false;
    };
    !kca.is_empty()
        && kca.len() <= 20
        && kca.bytes().all(|b| b.is_ascii_digit())
        && cs.len() == 22
        && cs
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The legacy Token Server's client-state rule: `[a-zA-Z0-9._-]{1,32}`.
fn is_client_state(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str = "1234-Yw3NKWbEM2aRElRIu7JbTw";
    const CS: &str = "630dcd2966c4336691125448bbb25b4f";

    fn message(r: Result<Identity<'_>, Unauthenticated>) -> String {
        match r {
            Err(Unauthenticated(m)) => m.to_owned(),
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let who = identify(Some("Bearer s3cret-token"), None, None, KID).unwrap();
        let shown = format!("{who:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains(KID), "{shown}");
    }

    #[test]
    fn bearer_with_key_id_in_bucket_or_header() {
        let id = identify(Some("Bearer tok"), None, None, KID).unwrap();
        assert_eq!(
            (id.scheme, id.credential, id.key),
            (Scheme::Bearer, "tok", KID)
        );
        let id = identify(Some("bearer  tok "), Some(KID), None, "syncto").unwrap();
        assert_eq!((id.credential, id.key), ("tok", KID));
        // The bucket wins over the header.
        let other = "1-AAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            identify(Some("BEARER t"), Some(other), None, KID)
                .unwrap()
                .key,
            KID
        );
    }

    #[test]
    fn browserid_with_client_state_in_bucket_or_header() {
        let id = identify(Some("BrowserID abcd"), None, None, CS).unwrap();
        assert_eq!((id.scheme, id.key), (Scheme::BrowserId, CS));
        let id = identify(Some("browserid abcd"), None, Some("1234"), "syncto").unwrap();
        assert_eq!(id.key, "1234");
    }

    #[test]
    fn missing_pieces_are_named() {
        assert!(message(identify(None, None, None, "syncto")).contains("Authorization"));
        assert!(
            message(identify(Some("Basic dXNlcjpwYXNz"), None, None, "syncto"))
                .contains("Unsupported")
        );
        assert!(message(identify(Some("Bearer"), None, None, KID)).contains("no token"));
        assert!(
            message(identify(Some("Bearer a\u{1}b"), None, None, KID))
                .contains("control characters")
        );
        assert!(message(identify(Some("Bearer t"), None, None, "syncto")).contains("X-KeyID"));
        assert!(
            message(identify(Some("Bearer t"), Some("nope"), None, "syncto")).contains("malformed")
        );
        assert!(
            message(identify(Some("BrowserID a"), None, None, "syncto")).contains("X-Client-State")
        );
        assert_eq!(
            message(identify(Some("BrowserID a"), None, None, "12345")),
            "The provided bucket ID is incorrect."
        );
        assert_eq!(
            message(identify(Some("Bearer a"), None, None, CS)),
            "The provided bucket ID is incorrect."
        );
    }

    #[test]
    fn authn_types_are_a_closed_set() {
        assert_eq!(authn_type(Some("bearer abc")), Some("Bearer"));
        assert_eq!(authn_type(Some(" BEARER\tabc")), Some("Bearer"));
        assert_eq!(authn_type(Some("BrowserID a.b.c")), Some("BrowserID"));
        assert_eq!(authn_type(Some("Basic dXNlcjpwYXNz")), Some("other"));
        assert_eq!(authn_type(Some("my.own.metric:1|c")), Some("other"));
        assert_eq!(authn_type(Some("   ")), None);
        assert_eq!(authn_type(None), None);
    }

    #[test]
    fn key_id_form() {
        assert!(is_key_id(KID));
        assert!(is_key_id("1542236016429-Ox1FbJfFfwTe5t-xq4v2hQ"));
        assert!(!is_key_id("1234-qqo"));
        assert!(!is_key_id("-Yw3NKWbEM2aRElRIu7JbTw"));
        assert!(!is_key_id("12a4-Yw3NKWbEM2aRElRIu7JbTw"));
        assert!(!is_key_id("1234-Yw3NKWbEM2aRElRIu7JbT="));
    }

    #[test]
    fn a_401_challenges_with_the_scheme_in_use_never_basic() {
        assert_eq!(challenge(None), "Bearer realm=\"Syncto\"");
        assert_eq!(challenge(Some("Bearer x")), "Bearer realm=\"Syncto\"");
        assert_eq!(
            challenge(Some("Basic dXNlcjpwYXNz")),
            "Bearer realm=\"Syncto\""
        );
        assert_eq!(
            challenge(Some(" browserid\tabc")),
            "BrowserID realm=\"Syncto\""
        );
        assert_eq!(challenge(Some("BrowserID")), "BrowserID realm=\"Syncto\"");
    }
}
