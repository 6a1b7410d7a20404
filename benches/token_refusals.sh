#!/usr/bin/env bash
# Made-up tokens from one client address: how many Token Server calls they cost (issue 17
# item 11). Not part of `cargo test` (tests/security.rs holds the rule).
#
#   benches/token_refusals.sh [N]      # N different made-up tokens, default 200
#
# Runs Syncto (release build, or SYNCTO=<binary> for another build) in front of the fake
# Token Server (examples/fake_upstream, which refuses tokens named invalid-*), sends N
# records requests with N different tokens and key ids from 127.0.0.1, one after the other,
# and prints the answers by status and the Token Server exchanges the fake received.
# Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
cargo build --release --quiet --bin syncto --example fake_upstream
SYNCTO=${SYNCTO:-target/release/syncto}
tmp=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  exec 3>&- 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkfifo "$tmp/fake.in"
target/release/examples/fake_upstream --seconds 300 <"$tmp/fake.in" >"$tmp/fake.out" 2>&1 &
PIDS+=($!)
exec 3>"$tmp/fake.in"
for _ in $(seq 100); do grep -q '^STATS_URL=' "$tmp/fake.out" && break; sleep 0.05; done
TOKEN_URL=$(sed -n 's/^TOKEN_URL=//p' "$tmp/fake.out")
STATS_URL=$(sed -n 's/^STATS_URL=//p' "$tmp/fake.out")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SYNCTO_TOKEN_SERVER_URL=$TOKEN_URL SYNCTO_LOG_LEVEL=warning "$SYNCTO" --bind "127.0.0.1:$port" 2>"$tmp/syncto.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/__lbheartbeat__" && break; sleep 0.05; done
calls() { curl -s "$STATS_URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_calls_total"])'; }
before=$(calls)
for i in $(seq "$N"); do
  curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer invalid-$i" -H "X-KeyID: $i-AAAAAAAAAAAAAAAAAAAAAA" \
    "http://127.0.0.1:$port/v1/buckets/syncto/collections/tabs/records"
done | sort | uniq -c | awk '{printf "%s answers %s\n", $1, $2}'
echo "syncto: $SYNCTO"
echo "Token Server exchanges for $N made-up tokens: $(($(calls) - before))"
