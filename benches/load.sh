#!/usr/bin/env bash
# Load benchmark (not part of `cargo test`): a 10-record list through
# Syncto vs the fake Sync node directly, with cached credentials.
#
#   benches/load.sh [seconds] [connections]
#
# Reports requests/s, CPU time per request of the Syncto process alone
# (utime+stime from /proc, so the load tool and the fake don't count), RSS
# idle and under load, and the release binary size. Needs wrk
# (apt-get install wrk). Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-16}
THREADS=2
KID=1234-Yw3NKWbEM2aRElRIu7JbTw

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
PROFILE=${PROFILE:-release} # `PROFILE=profiling` keeps symbols for perf
cargo build --profile "$PROFILE" --quiet --bin syncto --example fake_upstream
BIN=target/$PROFILE

tmp=$(mktemp -d)
cleanup() {
  [[ -n "${SYNCTO_PID:-}" ]] && kill "$SYNCTO_PID" 2>/dev/null || true
  exec 3>&- 2>/dev/null || true
  [[ -n "${FAKE_PID:-}" ]] && kill "$FAKE_PID" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The fake: Token Server + Sync node, 10 records in `bench`, Hawk checked
# (Syncto signs), or --open for the direct run.
mkfifo "$tmp/in"
"$BIN/examples/fake_upstream" --seconds 900 --seed 10 --open <"$tmp/in" >"$tmp/fake.out" &
FAKE_PID=$!
exec 3>"$tmp/in"
for _ in $(seq 50); do grep -q SYNC_URL "$tmp/fake.out" 2>/dev/null && break; sleep 0.1; done
TOKEN_URL=$(sed -n 's/^TOKEN_URL=//p' "$tmp/fake.out")
SYNC_URL=$(sed -n 's/^SYNC_URL=//p' "$tmp/fake.out")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SYNCTO_TOKEN_SERVER_URL=$TOKEN_URL SYNCTO_WORKERS=${SYNCTO_WORKERS:-4} SYNCTO_LOG_LEVEL=${SYNCTO_LOG_LEVEL:-info} \
  "$BIN/syncto" --bind "127.0.0.1:$PORT" 2>"$tmp/syncto.log" &
SYNCTO_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v1/__lbheartbeat__" >/dev/null && break; sleep 0.1; done

URL="http://127.0.0.1:$PORT/v1/buckets/$KID/collections/bench/records"
AUTH="Authorization: Bearer bench-token"
n=$(curl -fs -H "$AUTH" "$URL" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
[[ "$n" == 10 ]] || { echo "expected 10 records, got $n" >&2; exit 1; }

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
IDLE_RSS=$(rss "$SYNCTO_PID")

run() { # url header... → requests/s, total requests
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "$@" | tee "$tmp/wrk.out" >&2
  awk '/requests in/ {print $1}' "$tmp/wrk.out"
}

echo "== through syncto ($URL)" >&2
wrk -t1 -c2 -d2s -H "$AUTH" "$URL" >/dev/null # warm-up: credentials cached, pools filled
before=$(cpu_ticks "$SYNCTO_PID")
total=$(run -H "$AUTH" "$URL")
after=$(cpu_ticks "$SYNCTO_PID")
LOAD_RSS=$(rss "$SYNCTO_PID"); PEAK_RSS=$(hwm "$SYNCTO_PID")
reqs_syncto=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
cpu_us=$(python3 -c "print(round(($after-$before)/$HZ*1e6/$total, 1))")

echo "== fake Sync node directly" >&2
total_direct=$(run "$SYNC_URL/1.5/1/storage/bench?full=1&sort=newest")
reqs_direct=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")

# Optional: WITH_NGINX=1 puts Debian's nginx (one worker, keep-alive upstream) in
# front of the same fake node, as the reference reverse proxy.
if [[ -n "${WITH_NGINX:-}" ]] && command -v nginx >/dev/null; then
  NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$tmp/nginx.conf" <<NGINX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
  access_log $tmp/access.log;
  upstream fake { server ${SYNC_URL#http://}; keepalive 32; }
  server {
    listen 127.0.0.1:$NPORT;
    location / { proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
  nginx -c "$tmp/nginx.conf" -p "$tmp"
  sleep 0.5
  NGINX_WORKER=$(pgrep -P "$(cat "$tmp/nginx.pid")" | head -1)
  NURL="http://127.0.0.1:$NPORT/1.5/1/storage/bench?full=1&sort=newest"
  wrk -t1 -c2 -d1s "$NURL" >/dev/null
  before=$(cpu_ticks "$NGINX_WORKER")
  total_nginx=$(run "$NURL")
  after=$(cpu_ticks "$NGINX_WORKER")
  reqs_nginx=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
  nginx_us=$(python3 -c "print(round(($after-$before)/$HZ*1e6/$total_nginx, 1))")
  NGINX_RSS=$(rss "$NGINX_WORKER")
  nginx -c "$tmp/nginx.conf" -p "$tmp" -s stop
  NGINX_LINE="nginx reverse proxy: ${reqs_nginx} req/s, ${nginx_us} µs CPU per request (worker process, RSS ${NGINX_RSS} kB)"
fi

# Optional: PERF=1 records a profile of syncto during a second run.
if [[ -n "${PERF:-}" ]]; then
  perf record -F 2000 -g -p "$SYNCTO_PID" -o "${PERF_OUT:-/tmp/syncto.perf}" -- sleep "$SECONDS_PER_RUN" >/dev/null 2>&1 &
  perf_pid=$!
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -H "$AUTH" "$URL" >/dev/null
  wait "$perf_pid" || true
fi
# Optional: STRACE=1 counts syscalls per request.
if [[ -n "${STRACE:-}" ]]; then
  timeout -s INT $((SECONDS_PER_RUN + 2)) strace -c -f -p "$SYNCTO_PID" -o "$tmp/strace" 2>/dev/null &
  strace_pid=$!
  sleep 0.5
  n=$(run -H "$AUTH" "$URL" 2>/dev/null)
  wait "$strace_pid" || true
  echo "syscalls per request ($n requests):"
  awk -v n="$n" 'NR>2 && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "  %-14s %.2f\n", $NF, $4/n}' "$tmp/strace" | sort -k2 -nr | head -12
fi

SIZE=$(stat -c %s "$BIN/syncto")
cat <<REPORT
binary size (release, stripped): $SIZE bytes
idle RSS: ${IDLE_RSS} kB
RSS under load: ${LOAD_RSS} kB (peak ${PEAK_RSS} kB)
through syncto: ${reqs_syncto} req/s, ${cpu_us} µs CPU per request (syncto process only, $total requests, ${CONNECTIONS} connections)
fake node directly: ${reqs_direct} req/s ($total_direct requests)
${NGINX_LINE:-}
REPORT
