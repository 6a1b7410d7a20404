# What the shell benches share (sourced by heartbeat.sh and token_refusals.sh; not part of
# `cargo test`): the release builds, a temporary directory and the processes that stop with
# the script, the fake upstream, free ports of 127.0.0.1, and Syncto started in front of
# the fake once it answers. Run from the checkout's root (the scripts cd there).

# The release syncto and examples/fake_upstream; SYNCTO=<binary> measures another build.
build_release() {
  cargo build --release --quiet --bin syncto --example fake_upstream
  SYNCTO=${SYNCTO:-target/release/syncto}
}

# $tmp, and PIDS: what is killed (and $tmp removed) when the script exits.
bench_tmp() {
  tmp=$(mktemp -d)
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  exec 3>&- 2>/dev/null || true
  rm -rf "$tmp"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# examples/fake_upstream for $1 seconds (or until the script ends: its stdin is fd 3);
# sets TOKEN_URL and STATS_URL.
start_fake() {
  mkfifo "$tmp/fake.in"
  target/release/examples/fake_upstream --seconds "$1" <"$tmp/fake.in" >"$tmp/fake.out" 2>&1 &
  PIDS+=($!)
  exec 3>"$tmp/fake.in"
  for _ in $(seq 100); do grep -q '^STATS_URL=' "$tmp/fake.out" && break; sleep 0.05; done
  TOKEN_URL=$(sed -n 's/^TOKEN_URL=//p' "$tmp/fake.out")
  STATS_URL=$(sed -n 's/^STATS_URL=//p' "$tmp/fake.out")
  [ -n "$STATS_URL" ] || { echo "the fake upstream did not start" >&2; exit 1; }
}

# $SYNCTO in front of the fake (log level warning, its log in $tmp/syncto.log) on a free
# port, $port, once /v1/__lbheartbeat__ answers.
start_syncto() {
  port=$(free_port)
  SYNCTO_TOKEN_SERVER_URL=$TOKEN_URL SYNCTO_LOG_LEVEL=warning \
    "$SYNCTO" --bind "127.0.0.1:$port" 2>"$tmp/syncto.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/__lbheartbeat__" && break; sleep 0.05; done
}

# A counter of the fake upstream's /stats (heartbeats, token_calls_total, …).
fake_stat() { curl -s "$STATS_URL" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
