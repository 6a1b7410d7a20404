//! The fake Token Server: `GET /1.0/sync/1.5` trades a Bearer token with an `X-KeyID` (or a
//! BrowserID assertion with an `X-Client-State`) for a Hawk id and key and the user's node;
//! `GET /__heartbeat__`.

use super::{Canned, Seen, State, lock, uid_for};
use base64::Engine;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn answer(state: &Mutex<State>, seen: &Seen, sync_url: &str) -> Canned {
    let delay = {
        let mut st = lock(state);
        st.token_seen.push(seen.clone());
        st.token_delay
    };
    let path = seen.url.split('?').next().unwrap_or("");
    if path == "/__heartbeat__" {
        let held_since = std::time::Instant::now();
        while lock(state).heartbeat_held && held_since.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let status = lock(state).heartbeat_status;
        return Canned::new(status, "{}");
    }
    if path != "/1.0/sync/1.5" {
        return json_err(404, "error", "Unsupported application");
    }
    std::thread::sleep(delay);
    let mut st = lock(state);
    st.token_calls += 1;
    if !st.token_script.is_empty() {
        return st.token_script.remove(0);
    }
    let auth = seen.header("authorization").unwrap_or("");
    let (scheme, credential) = auth.split_once(' ').unwrap_or((auth, ""));
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        match seen.header("x-keyid") {
            Some(k) => k.to_owned(),
            None => return json_err(401, "invalid-key-id", "Missing X-KeyID header"),
        }
    } else if scheme.eq_ignore_ascii_case("browserid") {
        match seen.header("x-client-state") {
            Some(k) => k.to_owned(),
            None => return json_err(401, "invalid-credentials", "Unauthorized"),
        }
    } else {
        return json_err(401, "error", "Unsupported");
    };
    // `invalid`, or `invalid-<anything>` for tests that need many different bad tokens.
    if credential.is_empty() || credential == "invalid" || credential.starts_with("invalid-") {
        return json_err(401, "invalid-credentials", "Unauthorized");
    }
    let requested: u64 = seen
        .url
        .split_once("duration=")
        .and_then(|(_, d)| d.split('&').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(u64::MAX);
    let uid = uid_for(&mut st, &key);
    let n = st.tokens.len();
    let id = format!("tok{n}-{uid}-{}", random_b64(9));
    let hawk_key = random_b64(32);
    st.tokens.insert(id.clone(), (hawk_key.clone(), uid));
    let duration = st.duration.min(requested);
    Canned::new(
        200,
        &format!(
            r#"{{"id": "{id}", "key": "{hawk_key}", "uid": {uid}, "api_endpoint": "{sync_url}/1.5/{uid}", "duration": {duration}, "hashalg": "sha256", "hashed_fxa_uid": "0123456789abcdef0123456789abcdef", "node_type": "postgres"}}"#
        ),
    )
    .with("X-Timestamp", &now_s().to_string())
}

fn json_err(status: u16, name: &str, description: &str) -> Canned {
    Canned::new(
        status,
        &format!(
            r#"{{"status": "{name}", "errors": [{{"location": "body", "name": "", "description": "{description}"}}]}}"#
        ),
    )
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).unwrap();
    base64::engine::general_purpose::URL_SAFE.encode(b)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
