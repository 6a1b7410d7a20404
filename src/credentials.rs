//! The credentials cache: Token Server answers kept in process, encrypted,
//! for at most the TTL, in a bounded LRU, with one Token Server call per
//! user however many requests miss at once.
//!
//! - Lookup key: HMAC-SHA256(secret, scheme ‖ credential ‖ key id/client
//!   state), NUL-separated (header values can't hold NUL, so the encoding is
//!   unambiguous). Two users, or one user with two client states, never share
//!   an entry.
//! - Value: AES-256-GCM under HMAC-SHA256(secret, "encrypt" ‖ the same
//!   fields), fresh random nonce per entry, the lookup key as associated
//!   data. The client's own token is needed to derive the key, so a memory
//!   dump without it gives nothing usable.
//! - The mutex guards lookups and inserts only: no lock is held across a
//!   Token Server call.
//! - Beside each entry, in clear, a 64-bit keyed hash of the account's storage endpoint
//!   ([`Cache::account`]): the worker pool shares its workers per account, and one account
//!   with many tokens is one account. Without the secret it names nobody; it only tells
//!   that two entries are for the same account.
//! - Refusals: a Token Server 401 (this credential is not valid) is kept too,
//!   under the same lookup key, for at most [`REFUSAL_TTL`], in a small LRU
//!   of its own, so one bad token sent again and again costs one call.
//!   Nothing else is kept: a 5xx, 429, timeout or unreachable Token Server
//!   says nothing about the credential, and the next request tries again.

use crate::auth::{Identity, Scheme};
use crate::concurrency::{Flight, lock};
use crate::sync15::hawk::hmac_sha256;
use crate::sync15::tokenserver::Token;
use crate::sync15::{self, Credentials, Reply, Upstream};
use crate::time_limits::REFUSAL_TTL;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A lookup key (HMAC-SHA256).
pub type Key = [u8; 32];
type Outcome = Result<Arc<Credentials>, sync15::Error>;

/// Most refusals remembered; the least recently used goes first.
pub const MAX_REFUSALS: usize = 1024;

/// Bytes of a refusal's body kept (error messages quote at most 200
/// characters of it).
const REFUSAL_BODY_BYTES: usize = 512;

/// The cache. Shared by all workers.
pub struct Cache {
    secret: Vec<u8>,
    ttl: Duration,
    state: Mutex<State>,
}

struct State {
    lru: LruCache<Key, Entry>,
    refused: LruCache<Key, RememberedRefusal>,
    inflight: HashMap<Key, Arc<Flight<Outcome>>>,
}

/// A Token Server 401, as it will be answered again.
struct RememberedRefusal {
    expires: Instant,
    reply: Box<Reply>,
}

struct Entry {
    expires: Instant,
    nonce: [u8; 12],
    sealed: Vec<u8>,
    /// Keyed hash of the storage endpoint: the account on its node.
    account: u64,
}

impl Cache {
    /// `secret`: `cache_hmac_secret`, or random bytes drawn at start-up.
    pub fn new(secret: Vec<u8>, ttl: Duration, max_entries: usize) -> Cache {
        let cap = NonZeroUsize::new(max_entries).unwrap_or(NonZeroUsize::MIN);
        Cache {
            secret,
            ttl,
            state: Mutex::new(State {
                lru: LruCache::new(cap),
                refused: LruCache::new(
                    NonZeroUsize::new(MAX_REFUSALS).unwrap_or(NonZeroUsize::MIN),
                ),
                inflight: HashMap::new(),
            }),
        }
    }

    /// The lookup key of an identity.
    pub fn key(&self, who: &Identity<'_>) -> Key {
        hmac_sha256(&self.secret, &fields(b"", who))
    }

    /// A stable, unguessable tag of the user behind `who`, for the statsd `users` set:
    /// HMAC-SHA256(secret, "users" ‖ scheme ‖ key id or client state), 128 bits in hex. The
    /// token is left out (it changes every hour, the user does not); without the secret the
    /// tag reveals nothing, and it is never a lookup or encryption key.
    pub fn user_tag(&self, who: &Identity<'_>) -> String {
        self.tag(who.scheme, who.key)
    }

    /// [`Cache::user_tag`] of the user with this scheme and key id (or client state).
    pub fn tag(&self, scheme: Scheme, key: &str) -> String {
        self.user_id(scheme, key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The 128 bits of [`Cache::tag`]: the user, keyed, without the token.
    pub fn user_id(&self, scheme: Scheme, key: &str) -> [u8; 16] {
        let mac = hmac_sha256(
            &self.secret,
            &[b"users\0", scheme.word().as_bytes(), b"\0", key.as_bytes()],
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&mac[..16]);
        id
    }

    fn cipher(&self, who: &Identity<'_>) -> Aes256Gcm {
        let k = hmac_sha256(&self.secret, &fields(b"encrypt\0", who));
        Aes256Gcm::new(&k.into())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere can't leave the map half-updated in a way that
        // matters: every critical section is a single insert or remove.
        lock(&self.state)
    }

    /// Credentials for `who`: from the cache, or from `fetch(duration)`.
    /// Concurrent misses for one key wait for the first caller's fetch.
    pub fn get(
        &self,
        who: &Identity<'_>,
        fetch: impl FnOnce(u64) -> Result<Token, sync15::Error>,
    ) -> Outcome {
        self.get_keyed(self.key(who), who, fetch)
    }

    /// [`Cache::get`] with the lookup key already computed by [`Cache::key`].
    pub fn get_keyed(
        &self,
        key: Key,
        who: &Identity<'_>,
        fetch: impl FnOnce(u64) -> Result<Token, sync15::Error>,
    ) -> Outcome {
        let flight = {
            let mut state = self.lock();
            let now = Instant::now();
            match state.refused.get(&key) {
                Some(r) if r.expires > now => {
                    return Err(sync15::Error::Status(
                        Upstream::TokenServer,
                        r.reply.clone(),
                    ));
                }
                Some(_) => {
                    state.refused.pop(&key);
                }
                None => {}
            }
            match state.lru.get(&key) {
                Some(e) if e.expires > now => {
                    let (nonce, sealed) = (e.nonce, e.sealed.clone());
                    drop(state);
                    if let Some(c) = self.open(who, &key, &nonce, &sealed) {
                        return Ok(Arc::new(c));
                    }
                    // Undecryptable: fall through to a fresh exchange.
                    state = self.lock();
                    state.lru.pop(&key);
                }
                Some(_) => {
                    state.lru.pop(&key);
                }
                None => {}
            }
            if let Some(f) = state.inflight.get(&key) {
                let f = Arc::clone(f);
                drop(state);
                return wait(&f);
            }
            let f = Arc::new(Flight::default());
            state.inflight.insert(key, Arc::clone(&f));
            f
        };
        // From here on this caller owns the flight; the guard completes it
        // even if `fetch` panics, so waiters never hang.
        let mut guard = FlightGuard {
            cache: self,
            key,
            flight,
            outcome: None,
        };
        let ttl = self.ttl_for(who);
        let outcome = fetch(ttl.as_secs().max(1)).map(|token| {
            let ttl = match token.duration {
                Some(d) => ttl.min(Duration::from_secs(d)),
                None => ttl,
            };
            let creds = Arc::new(token.credentials);
            if !ttl.is_zero() {
                self.store(who, key, &creds, ttl);
            }
            creds
        });
        if let Err(sync15::Error::Status(Upstream::TokenServer, reply)) = &outcome {
            // The settings TTL, not the credential's expiry: an expired
            // token is refused for good, and that is the common repeat.
            let ttl = self.ttl.min(REFUSAL_TTL);
            if reply.status == 401 {
                let mut reply = reply.clone();
                reply.body.truncate(REFUSAL_BODY_BYTES);
                let refusal = RememberedRefusal {
                    expires: Instant::now() + ttl,
                    reply,
                };
                self.lock().refused.put(key, refusal);
            }
        }
        guard.outcome = Some(outcome.clone());
        drop(guard);
        outcome
    }

    /// Forget `who`'s entry (after the Sync node refused its token).
    pub fn invalidate(&self, key: &Key) {
        self.lock().lru.pop(key);
    }

    /// Whether a lookup of `key` would be answered without a new Token
    /// Server call of its own: a live entry, a live refusal, or an exchange
    /// already in flight.
    pub fn knows(&self, key: &Key) -> bool {
        let state = self.lock();
        let now = Instant::now();
        state.lru.peek(key).is_some_and(|e| e.expires > now)
            || state.refused.peek(key).is_some_and(|r| r.expires > now)
            || state.inflight.contains_key(key)
    }

    /// The account of the live entry under `key`, as a keyed hash of its storage endpoint
    /// (the same for every token of one account on one node), without decrypting anything.
    pub fn account(&self, key: &Key) -> Option<u64> {
        let state = self.lock();
        let now = Instant::now();
        state
            .lru
            .peek(key)
            .filter(|e| e.expires > now)
            .map(|e| e.account)
    }

    /// Number of refusals remembered (live or not yet evicted).
    pub fn refusals(&self) -> usize {
        self.lock().refused.len()
    }

    /// Number of live entries (for tests and heartbeat).
    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// min(settings TTL, expiry of the credential when it can be read).
    fn ttl_for(&self, who: &Identity<'_>) -> Duration {
        match credential_expiry(who.scheme, who.credential) {
            Some(exp) => {
                let left = exp
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                self.ttl.min(left)
            }
            None => self.ttl,
        }
    }

    fn store(&self, who: &Identity<'_>, key: Key, c: &Credentials, ttl: Duration) {
        let mut nonce = [0u8; 12];
        if getrandom::getrandom(&mut nonce).is_err() {
            // No randomness: don't cache rather than risk a nonce reuse.
            return;
        }
        let plain = format!("{}\n{}\n{}", c.id, c.key, c.endpoint);
        let Ok(sealed) = self.cipher(who).encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: &key,
            },
        ) else {
            return;
        };
        let mac = hmac_sha256(&self.secret, &[b"account\0", c.endpoint.as_bytes()]);
        let mut account = [0u8; 8];
        account.copy_from_slice(&mac[..8]);
        let entry = Entry {
            expires: Instant::now() + ttl,
            nonce,
            sealed,
            account: u64::from_le_bytes(account),
        };
        self.lock().lru.put(key, entry);
    }

    fn open(
        &self,
        who: &Identity<'_>,
        key: &Key,
        nonce: &[u8; 12],
        sealed: &[u8],
    ) -> Option<Credentials> {
        let plain = self
            .cipher(who)
            .decrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: sealed,
                    aad: key,
                },
            )
            .ok()?;
        let text = String::from_utf8(plain).ok()?;
        let mut parts = text.splitn(3, '\n');
        Some(Credentials {
            id: parts.next()?.to_owned(),
            key: parts.next()?.to_owned(),
            endpoint: parts.next()?.to_owned(),
        })
    }
}

fn fields<'a>(label: &'a [u8], who: &Identity<'a>) -> [&'a [u8]; 6] {
    [
        label,
        who.scheme.word().as_bytes(),
        b"\0",
        who.credential.as_bytes(),
        b"\0",
        who.key.as_bytes(),
    ]
}

fn wait(f: &Flight<Outcome>) -> Outcome {
    // The owner's guard always lands the flight: None cannot come back from an unbounded wait.
    f.wait(None).unwrap_or_else(|| {
        Err(sync15::Error::BadAnswer(
            sync15::Upstream::TokenServer,
            "credentials exchange abandoned".into(),
        ))
    })
}

struct FlightGuard<'c> {
    cache: &'c Cache,
    key: Key,
    flight: Arc<Flight<Outcome>>,
    outcome: Option<Outcome>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.cache.lock().inflight.remove(&self.key);
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(sync15::Error::BadAnswer(
                sync15::Upstream::TokenServer,
                "credentials exchange failed".into(),
            ))
        });
        self.flight.land(outcome);
    }
}

/// When the credential stops being valid, if it says so: the smallest
/// `exp` found in its dot-separated base64url JSON fragments (BrowserID:
/// milliseconds; an OAuth JWT: seconds).
pub fn credential_expiry(scheme: Scheme, credential: &str) -> Option<SystemTime> {
    let mut best: Option<u64> = None;
    for fragment in credential.split('.').take(8) {
        let fragment = fragment.trim_end_matches('=');
        if fragment.len() > 8192 {
            continue;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(fragment) else {
            continue;
        };
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&raw) else {
            continue;
        };
        let Some(exp) = map.get("exp").and_then(serde_json::Value::as_f64) else {
            continue;
        };
        if !exp.is_finite() || exp < 0.0 {
            continue;
        }
        let ms = match scheme {
            Scheme::BrowserId => exp as u64,
            Scheme::Bearer => (exp * 1000.0) as u64,
        };
        best = Some(best.map_or(ms, |b| b.min(ms)));
    }
    best.map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn who<'a>(cred: &'a str, key: &'a str) -> Identity<'a> {
        Identity {
            scheme: Scheme::Bearer,
            credential: cred,
            key,
        }
    }

    fn token(n: usize) -> Token {
        Token {
            credentials: Credentials {
                id: format!("id{n}"),
                key: format!("key{n}"),
                endpoint: "http://127.0.0.1:1/1.5/1".into(),
            },
            duration: None,
        }
    }

    #[test]
    fn user_tags_follow_the_user_not_the_token() {
        let cache = Cache::new(b"secret".to_vec(), Duration::from_secs(60), 10);
        let kid = "1234-Yw3NKWbEM2aRElRIu7JbTw";
        let tag = cache.user_tag(&who("token-of-this-hour", kid));
        assert_eq!(tag.len(), 32);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, cache.user_tag(&who("token-of-next-hour", kid)));
        assert_ne!(
            tag,
            cache.user_tag(&who("t", "1235-Yw3NKWbEM2aRElRIu7JbTw"))
        );
        let browserid = Identity {
            scheme: Scheme::BrowserId,
            ..who("t", kid)
        };
        assert_ne!(tag, cache.user_tag(&browserid));
        let other_secret = Cache::new(b"other".to_vec(), Duration::from_secs(60), 10);
        assert_ne!(tag, other_secret.user_tag(&who("t", kid)));
        // Neither the lookup key nor anything the client sent.
        let hex = |k: Key| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert!(!hex(cache.key(&who("t", kid))).starts_with(&tag));
        assert!(!tag.contains("Yw3NKW"));
    }

    // The original Syncto's own test vector for its cache key: HMAC-SHA256 with the key
    // "This is not a secret" over the assertion "1234".
    #[test]
    fn hmac_vector_of_the_original() {
        let mac = hmac_sha256(b"This is not a secret", &[b"1234"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "636130e072155efd00d8e27196500d29110fb2e8e93bcedb2a30e0aa0e5ccf61"
        );
    }

    #[test]
    fn second_lookup_is_a_hit_and_keys_are_separate() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        assert!(cache.is_empty());
        let calls = AtomicUsize::new(0);
        let fetch = |_| Ok(token(calls.fetch_add(1, Ordering::SeqCst)));
        let a = cache.get(&who("tok", "1-a"), fetch).unwrap();
        let b = cache.get(&who("tok", "1-a"), fetch).unwrap();
        assert_eq!(a, b);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Other client state, other scheme, other token: other entries.
        cache.get(&who("tok", "1-b"), fetch).unwrap();
        let mut bid = who("tok", "1-a");
        bid.scheme = Scheme::BrowserId;
        cache.get(&bid, fetch).unwrap();
        cache.get(&who("tok2", "1-a"), fetch).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(cache.len(), 4);
        assert!(!cache.is_empty());
    }

    #[test]
    fn entries_are_encrypted_and_bound_to_the_token() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        cache.get(&who("tok", "1-a"), |_| Ok(token(7))).unwrap();
        let key = cache.key(&who("tok", "1-a"));
        let (nonce, sealed) = {
            let mut st = cache.lock();
            let e = st.lru.get(&key).unwrap();
            (e.nonce, e.sealed.clone())
        };
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("key7") && !text.contains("id7"));
        // The same sealed value can't be opened with another token's key.
        assert!(
            cache
                .open(&who("other", "1-a"), &key, &nonce, &sealed)
                .is_none()
        );
        assert_eq!(
            cache
                .open(&who("tok", "1-a"), &key, &nonce, &sealed)
                .unwrap()
                .key,
            "key7"
        );
    }

    #[test]
    fn pairs_that_concatenate_alike_share_no_entry_and_no_cipher_key() {
        // "tok1" ‖ "2-a" and "tok" ‖ "12-a" are the same bytes without separators.
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        let (a, b) = (who("tok1", "2-a"), who("tok", "12-a"));
        assert_ne!(cache.key(&a), cache.key(&b));
        cache.get(&a, |_| Ok(token(1))).unwrap();
        let calls = AtomicUsize::new(0);
        let got = cache
            .get(&b, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(token(2))
            })
            .unwrap();
        assert_eq!(
            (calls.load(Ordering::SeqCst), got.key.as_str()),
            (1, "key2")
        );
        // Even handed a's entry under a's own lookup key, b's cipher can't open it.
        let key = cache.key(&a);
        let (nonce, sealed) = {
            let mut st = cache.lock();
            let e = st.lru.get(&key).unwrap();
            (e.nonce, e.sealed.clone())
        };
        assert!(cache.open(&a, &key, &nonce, &sealed).is_some());
        assert!(cache.open(&b, &key, &nonce, &sealed).is_none());
    }

    #[test]
    fn ttl_rules() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        // A token duration of 0 means: don't cache.
        let calls = AtomicUsize::new(0);
        let fetch = |d: u64| {
            assert_eq!(d, 300);
            calls.fetch_add(1, Ordering::SeqCst);
            let mut t = token(0);
            t.duration = Some(0);
            Ok(t)
        };
        cache.get(&who("a", "k"), fetch).unwrap();
        cache.get(&who("a", "k"), fetch).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A JWT expiring in ~60 s asks for a 60 s token.
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
        let jwt = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        let mut asked = 0;
        cache
            .get(&who(&jwt, "k"), |d| {
                asked = d;
                Ok(token(1))
            })
            .unwrap();
        assert!((58..=60).contains(&asked), "{asked}");
    }

    #[test]
    fn expiry_of_browserid_assertions_is_in_ms() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"exp": 1444385059190}"#);
        let exp = credential_expiry(Scheme::BrowserId, &format!("x.{payload}.y~z")).unwrap();
        assert_eq!(exp, UNIX_EPOCH + Duration::from_millis(1444385059190));
        assert!(credential_expiry(Scheme::Bearer, "opaque-token").is_none());
    }

    #[test]
    fn an_expiry_is_read_from_a_fragment_of_up_to_8_kib_and_never_below_zero() {
        let jwt = |claims: &str| format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims));
        let at = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(
            credential_expiry(Scheme::Bearer, &jwt(r#"{"exp": 0}"#)),
            at(0)
        );
        assert_eq!(
            credential_expiry(Scheme::Bearer, &jwt(r#"{"exp": -5}"#)),
            None
        );
        // The smallest of several.
        let two = format!("{}{}", jwt(r#"{"exp": 90}"#), jwt(r#"{"exp": 60}"#));
        assert_eq!(credential_expiry(Scheme::Bearer, &two), at(60));
        // A fragment of 8,192 base64 characters (6,144 bytes) is read, a longer one is not.
        let padded = |n: usize| {
            let head = r#"{"exp": 60, "pad": ""#;
            format!("{head}{}\"}}", "x".repeat(n - head.len() - 2))
        };
        let fragment = URL_SAFE_NO_PAD.encode(padded(6144));
        assert_eq!(fragment.len(), 8192);
        assert_eq!(credential_expiry(Scheme::Bearer, &fragment), at(60));
        let fragment = URL_SAFE_NO_PAD.encode(padded(6147));
        assert_eq!(fragment.len(), 8196);
        assert_eq!(credential_expiry(Scheme::Bearer, &fragment), None);
    }

    #[test]
    fn lru_bound_and_invalidate() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 2);
        for k in ["a", "b", "c"] {
            cache.get(&who("t", k), |_| Ok(token(0))).unwrap();
        }
        assert_eq!(cache.len(), 2);
        cache.invalidate(&cache.key(&who("t", "c")));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn concurrent_misses_make_one_call_and_errors_are_shared() {
        let cache = Arc::new(Cache::new(b"s".to_vec(), Duration::from_secs(300), 10));
        let calls = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    cache
                        .get(&who("t", "k"), |_| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            Err(sync15::Error::Unreachable(
                                sync15::Upstream::TokenServer,
                                "down".into(),
                            ))
                        })
                        .is_err()
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Errors are not cached: the next call tries again.
        cache.get(&who("t", "k"), |_| Ok(token(1))).unwrap();
        assert_eq!(cache.len(), 1);
    }

    fn refused(status: u16) -> sync15::Error {
        sync15::Error::Status(
            Upstream::TokenServer,
            Box::new(Reply {
                status,
                body: vec![b'x'; 4096],
                ..Reply::default()
            }),
        )
    }

    #[test]
    fn refusals_are_remembered_and_faults_are_not() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        let calls = AtomicUsize::new(0);
        let fetch = |status: u16| {
            let calls = &calls;
            move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(refused(status))
            }
        };
        // A 401: once asked, then answered from memory (body cut).
        for i in 0..3 {
            match cache.get(&who("bad", "k"), fetch(401)) {
                Err(sync15::Error::Status(Upstream::TokenServer, r)) => {
                    assert_eq!(r.status, 401);
                    let kept = if i == 0 { 4096 } else { REFUSAL_BODY_BYTES };
                    assert_eq!(r.body.len(), kept);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cache.knows(&cache.key(&who("bad", "k"))));
        assert_eq!((cache.refusals(), cache.len()), (1, 0));
        assert!(cache.is_empty());
        // Another key id is another credential.
        assert!(cache.get(&who("bad", "k2"), fetch(401)).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.refusals(), 2);
        // Faults and other statuses say nothing about the credential.
        calls.store(0, Ordering::SeqCst);
        for status in [400, 403, 429, 500, 503] {
            assert!(cache.get(&who("flaky", "k"), fetch(status)).is_err());
            assert!(cache.get(&who("flaky", "k"), fetch(status)).is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 10);
        assert!(!cache.knows(&cache.key(&who("flaky", "k"))));
        let down = |_| -> Result<Token, sync15::Error> {
            Err(sync15::Error::Timeout(Upstream::TokenServer, "slow".into()))
        };
        assert!(cache.get(&who("slow", "k"), down).is_err());
        assert!(cache.get(&who("slow", "k"), |_| Ok(token(1))).is_ok());
        // Kept under the HMAC lookup key only; bounded in number.
        let state = cache.lock();
        assert!(state.refused.iter().all(|(k, _)| k.len() == 32));
        assert_eq!(state.refused.cap().get(), MAX_REFUSALS);
    }

    #[test]
    fn refusals_expire() {
        // A 1 s settings TTL bounds the refusal TTL too.
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(1), 10);
        let calls = AtomicUsize::new(0);
        let fetch = |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(refused(401))
        };
        assert!(cache.get(&who("bad", "k"), fetch).is_err());
        {
            let mut state = cache.lock();
            let key = cache.key(&who("bad", "k"));
            state.refused.get_mut(&key).unwrap().expires = Instant::now();
        }
        assert!(cache.get(&who("bad", "k"), fetch).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_expired_entry_is_neither_used_nor_known() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        let calls = AtomicUsize::new(0);
        let fetch = |_| Ok(token(calls.fetch_add(1, Ordering::SeqCst)));
        let key = cache.key(&who("t", "k"));
        assert!(!cache.knows(&key));
        assert_eq!(cache.get(&who("t", "k"), fetch).unwrap().key, "key0");
        assert!(cache.knows(&key), "a live entry");
        cache.lock().lru.get_mut(&key).unwrap().expires = Instant::now();
        assert!(!cache.knows(&key), "an expired entry");
        assert_eq!(cache.get(&who("t", "k"), fetch).unwrap().key, "key1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A refusal alike.
        let bad = cache.key(&who("bad", "k"));
        assert!(cache.get(&who("bad", "k"), |_| Err(refused(401))).is_err());
        assert!(cache.knows(&bad), "a live refusal");
        cache.lock().refused.get_mut(&bad).unwrap().expires = Instant::now();
        assert!(!cache.knows(&bad), "an expired refusal");
    }

    #[test]
    fn a_panicking_fetch_releases_waiters() {
        let cache = Cache::new(b"s".to_vec(), Duration::from_secs(300), 10);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = cache.get(&who("t", "k"), |_| panic!("boom"));
        }));
        assert!(r.is_err());
        assert!(cache.lock().inflight.is_empty());
        assert!(cache.get(&who("t", "k"), |_| Ok(token(2))).is_ok());
    }
}
