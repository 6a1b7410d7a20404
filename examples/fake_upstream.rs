//! The test fakes (Token Server + Sync 1.5 node, see crates/fakes/)
//! as a process, for the real Kinto clients under tests/clients and for
//! benches (the PUTs of benches/load.sh). Prints `TOKEN_URL=…` and
//! `SYNC_URL=…`, then serves until its standard input closes or `--seconds`
//! pass (default 600): it always stops by itself.
//!
//! `--open` skips the Hawk check so a load tool can call the node directly.
//! `--seed N` stores N records in collection `bench` for the user key id
//! `1234-Yw3NKWbEM2aRElRIu7JbTw` (used by benches/attack.py), or for each
//! `--seed-key KEYID` given instead (repeatable); `--seed-size BYTES` makes
//! each record's ciphertext that long (160 by default; benches/slow_readers.py
//! seeds 15 MB pages with it).
//!
//! It also prints `STATS_URL=…`: a GET there answers what the fakes saw, as
//! `{"token_calls": {"<X-KeyID or X-Client-State>": n, …},
//! "token_calls_total": n, "heartbeats": n, "sync_requests": n}` (used by
//! .ci/balancer.sh to prove that each user costs one Token Server call behind a
//! balancer, and by benches/heartbeat.sh).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let mut seconds = 600u64;
    let mut seed = 0usize;
    let mut open = false;
    let mut seed_keys = Vec::new();
    let mut seed_size = 160usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--open" => open = true,
            "--seed-key" => seed_keys.extend(args.next()),
            "--seed-size" => {
                seed_size = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(seed_size)
            }
            other => {
                eprintln!("fake_upstream: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let f = fakes::Fake::start();
    if open {
        f.open();
    }
    if seed_keys.is_empty() {
        seed_keys.push("1234-Yw3NKWbEM2aRElRIu7JbTw".to_string());
    }
    for key in &seed_keys {
        for i in 0..seed {
            let payload = format!(
                "{{\"ciphertext\":\"{}\",\"IV\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"hmac\":\"{:064x}\"}}",
                "Q".repeat(seed_size),
                i
            );
            f.put(
                key,
                "bench",
                &format!("record{i:07}"),
                &payload,
                170_000_000_000 + i as u64,
            );
        }
    }
    let (stats, _stats_server) = stats_server(f.observer());
    println!("TOKEN_URL={}", f.token_url);
    println!("SYNC_URL={}", f.sync_url);
    println!("STATS_URL={stats}");
    let _ = std::io::stdout().flush();
    // Stop when stdin closes (the parent went away) or the time is up.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while let Ok(n) = std::io::stdin().read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
    }
}

// ---- STATS_URL: what the fakes saw (per-user Token Server exchanges) ----------------

/// Serves the stats on 127.0.0.1:0 until the server is dropped; returns its URL.
fn stats_server(fakes: fakes::Observer) -> (String, listener::Server) {
    struct Stats(fakes::Observer);
    impl listener::Handler for Stats {
        fn handle(&self, rq: listener::Request) {
            let header =
                listener::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                    .expect("static header");
            let body = stats_json(&self.0);
            let _ = rq.respond(listener::Response::from_string(body).with_header(header));
        }
    }
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("stats listener");
    let port = socket.local_addr().map_or(0, |a| a.port());
    let server = listener::Server::new(socket, listener::Limits::default(), Arc::new(Stats(fakes)))
        .expect("stats listener");
    (format!("http://127.0.0.1:{port}/"), server)
}

/// Token Server exchanges per user (the key id or client state sent with them).
fn stats_json(fakes: &fakes::Observer) -> String {
    let mut per_user = std::collections::BTreeMap::<String, usize>::new();
    for seen in &fakes.token_seen() {
        if seen.url.split('?').next() != Some("/1.0/sync/1.5") {
            continue;
        }
        let key = seen
            .header("x-keyid")
            .or_else(|| seen.header("x-client-state"))
            .unwrap_or("");
        *per_user.entry(key.to_string()).or_default() += 1;
    }
    serde_json::json!({
        "token_calls": per_user,
        "token_calls_total": fakes.token_calls(),
        "heartbeats": fakes.token_seen().iter().filter(|s| s.url == "/__heartbeat__").count(),
        "sync_requests": fakes.sync_requests(),
    })
    .to_string()
}
