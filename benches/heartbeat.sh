#!/usr/bin/env bash
# `__heartbeat__` under load: how many Token Server checks a flood of unauthenticated
# heartbeats costs (issue 17 item 6). Not part of `cargo test`.
#
#   benches/heartbeat.sh [seconds]      # default 5
#
# Runs Syncto (release build, or SYNCTO=<binary> for another build) in front of the fake
# Token Server (examples/fake_upstream), sends `GET /v1/__heartbeat__` with wrk (16
# connections, 2 threads) for the given time, then prints the heartbeats answered (by
# status) and the Token Server heartbeat checks the fake received. Each check's result
# answers heartbeats for a second and one check runs at a time, so the checks stay about
# one per second whatever the request rate.
#
# Needs wrk, curl, python3. Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install wrk curl python3)" >&2; exit 2; }
done
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
target/release/examples/fake_upstream --seconds $((SECS + 60)) <"$tmp/fake.in" >"$tmp/fake.out" 2>&1 &
PIDS+=($!)
exec 3>"$tmp/fake.in"
for _ in $(seq 100); do grep -q '^STATS_URL=' "$tmp/fake.out" && break; sleep 0.05; done
TOKEN_URL=$(sed -n 's/^TOKEN_URL=//p' "$tmp/fake.out")
STATS_URL=$(sed -n 's/^STATS_URL=//p' "$tmp/fake.out")
[ -n "$STATS_URL" ] || { echo "the fake upstream did not start" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SYNCTO_TOKEN_SERVER_URL=$TOKEN_URL SYNCTO_LOG_LEVEL=warning \
  "$SYNCTO" --bind "127.0.0.1:$port" 2>"$tmp/syncto.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/__lbheartbeat__" && break; sleep 0.05; done

before=$(curl -s "$STATS_URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["heartbeats"])')
wrk -t2 -c16 -d"${SECS}s" "http://127.0.0.1:$port/v1/__heartbeat__" >"$tmp/wrk.out"
after=$(curl -s "$STATS_URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["heartbeats"])')
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
echo "syncto: $SYNCTO"
echo "heartbeats answered in ${SECS} s: $requests (non-2xx: ${non2xx:-0})"
echo "Token Server heartbeat checks: $((after - before))"
