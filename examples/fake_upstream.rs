//! The test fakes (Token Server + Sync 1.5 node, see tests/support/fake.rs)
//! as a process, for the real Kinto clients under tests/clients and for
//! benches. Prints `TOKEN_URL=…` and `SYNC_URL=…`, then serves until its
//! standard input closes or `--seconds` pass (default 600): it always
//! stops by itself.
//!
//! `--open` skips the Hawk check so a load tool can call the node directly.
//! `--seed N` stores N records in collection `bench` for every user key id
//! `1234-Yw3NKWbEM2aRElRIu7JbTw` (used by the load benchmark).

#[path = "../tests/support/fake.rs"]
mod fake;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn main() {
    let mut seconds = 600u64;
    let mut seed = 0usize;
    let mut open = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--open" => open = true,
            other => {
                eprintln!("fake_upstream: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let f = fake::Fake::start();
    f.state().open = open;
    for i in 0..seed {
        let payload = format!(
            "{{\"ciphertext\":\"{}\",\"IV\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"hmac\":\"{:064x}\"}}",
            "Q".repeat(160),
            i
        );
        f.put(
            "1234-Yw3NKWbEM2aRElRIu7JbTw",
            "bench",
            &format!("record{i:07}"),
            &payload,
            170_000_000_000 + i as u64,
        );
    }
    println!("TOKEN_URL={}", f.token_url);
    println!("SYNC_URL={}", f.sync_url);
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
