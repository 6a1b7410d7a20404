#!/usr/bin/env bash
# Load benchmark (not part of `cargo test`): Syncto and Debian's nginx as a
# plain reverse proxy configured at its cheapest (the reference proxy
# configuration below, and glibc's heap trimming raised so that its worker
# does not give back and regrow its heap around every big answer: 10-29 `brk`
# per 1,000-record page otherwise), side by side in one run, in front of the SAME fake
# Sync node (a second nginx serving static files: the Token Server answer
# and Sync answers written by benches/pages.py).
#
#   benches/load.sh [seconds per run]          # default 5
#
# Cases (CASES, default all): page10 = a list of 10 records (~5 KB),
# page1000 = a list of 1,000 records (~516 KB), one = one record, put = a
# PUT of one record (to examples/fake_upstream, which checks Hawk and refuses
# same-tick writes like the real node; spread over many users and
# collections by benches/put.lua; no nginx reference). Each case runs at
# CONNS connections (default "1 16 64"), Syncto then nginx, REPEAT times.
#
# Per run: requests/s (wrk), CPU per request of the proxy process only
# (utime+stime delta from /proc/PID/stat / requests completed, so wrk and the
# fake upstream don't count), Syncto/nginx ratios, and peak RSS (VmHWM).
#
# Options (env):
#   PROFILE=profiling     build with symbols (needed for PERF)
#   PERF=<case>           afterwards, `perf record -g` of Syncto on that case (16 conns;
#                         PERF_ARGS replaces `-F 2000 -g`)
#   STRACE=<case>         afterwards, syscalls per request of Syncto on that case
#                         (nginx-<case>: of the nginx proxy worker instead)
#   STAT=<case>           afterwards, page faults and context switches per request
#                         (perf stat; nginx-<case> as above)
#   WORKERS=4             Syncto's workers
#   SYNCTO=path           another syncto binary to measure (A/B runs of two builds)
#   BROWSER=1             each request also carries the ~500 bytes of headers a browser adds
#   NGINX_ENV=...         the nginx proxy's environment (default
#                         MALLOC_TRIM_THRESHOLD_=16777216; NGINX_ENV= for glibc's defaults)
#   SYNCTO_ENV=...        Syncto's environment (e.g. MALLOC_TRIM_THRESHOLD_=16777216)
#
# Needs wrk, nginx (apt-get install wrk nginx-light), perf and strace for the
# options. Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
CASES=${CASES:-page10 page1000 one put}
CONNS=${CONNS:-1 16 64}
REPEAT=${REPEAT:-1}
WORKERS=${WORKERS:-4}
KID=1234-Yw3NKWbEM2aRElRIu7JbTw
AUTH="Authorization: Bearer bench-token"
# BROWSER=1: every request (to Syncto and to nginx) also carries the headers a
# browser adds to a kinto-http.js call, about 600 bytes of head instead of 100.
EXTRA=()
if [[ -n "${BROWSER:-}" ]]; then
  EXTRA=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0"
    -H "Accept: application/json" -H "Accept-Language: en-GB,en;q=0.7,fr;q=0.3"
    -H "Accept-Encoding: gzip, deflate, br, zstd" -H "Origin: https://app.example.org"
    -H "Referer: https://app.example.org/notes/" -H "Sec-Fetch-Dest: empty"
    -H "Sec-Fetch-Mode: cors" -H "Sec-Fetch-Site: cross-site" -H "Priority: u=4"
    -H "Content-Type: application/json" -H "Cache-Control: no-cache" -H "Pragma: no-cache")
fi

for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install wrk nginx-light python3 curl)" >&2; exit 2; }
done
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --quiet --bin syncto --example fake_upstream
BIN=target/$PROFILE

tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx workers (user nobody when started as root) read the files
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for conf in upstream proxy; do
    [[ -f "$tmp/$conf.pid" ]] && nginx -q -c "$tmp/$conf.conf" -p "$tmp" -s stop 2>/dev/null || true
  done
  exec 3>&- 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

# --- the fake Sync node and Token Server: nginx serving static files --------
UPORT=$(free_port)
mkdir -p "$tmp/www"
python3 benches/pages.py "$tmp/www" "$UPORT" >"$tmp/sizes"
chmod -R a+rX "$tmp/www"
NGINX_ENV=${NGINX_ENV-MALLOC_TRIM_THRESHOLD_=16777216}
nginx_conf() { # name worker_processes server-block (the proxy: with NGINX_ENV)
  cat >"$tmp/$1.conf" <<NGINX
worker_processes $2;
pid $tmp/$1.pid;
error_log $tmp/$1.err;
events { worker_connections 8192; }
http {
  client_body_temp_path $tmp/$1.body; proxy_temp_path $tmp/$1.proxy;
  fastcgi_temp_path $tmp/$1.fcgi; uwsgi_temp_path $tmp/$1.uwsgi; scgi_temp_path $tmp/$1.scgi;
  keepalive_requests 1000000;
  $3
}
NGINX
  if [[ $1 == proxy ]]; then
    # shellcheck disable=SC2086
    env $NGINX_ENV nginx -q -c "$tmp/$1.conf" -p "$tmp"
  else
    nginx -q -c "$tmp/$1.conf" -p "$tmp"
  fi
}
nginx_conf upstream 1 "
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on; etag off;
  default_type application/json;
  server {
    listen 127.0.0.1:$UPORT;
    root $tmp/www;
    location = /1.0/sync/1.5 { }
    location /1.5/1/storage/ {
      add_header X-Last-Modified 1700000370.00;
      add_header X-Weave-Timestamp 1700000400.00;
    }
  }"
wait_http "http://127.0.0.1:$UPORT/1.0/sync/1.5"

# --- the reference: nginx as a plain reverse proxy, at its cheapest ---------
# One worker (its CPU is what is measured; one process has no cross-worker
# wake-ups), a buffered access log (one line per request, as a production
# proxy), keep-alive upstream connections, and proxy buffers that hold a
# whole 1,000-record page (64 x 16 KiB): with nginx's default 8 x 4 KiB it
# reads and writes such a page in small pieces. NGINX_ENV is put in its
# environment: glibc reads MALLOC_* when nginx starts and its workers
# inherit the setting (NGINX_ENV= runs nginx with glibc's defaults).
NPORT=$(free_port)
nginx_conf proxy 1 "
  access_log $tmp/proxy.access combined buffer=64k flush=5s;
  tcp_nodelay on;
  server_tokens off;
  upstream fake { server 127.0.0.1:$UPORT; keepalive 128; keepalive_requests 1000000; }
  proxy_http_version 1.1;
  proxy_set_header Connection \"\";
  proxy_buffer_size 16k;
  proxy_buffers 64 16k;
  proxy_busy_buffers_size 64k;
  proxy_max_temp_file_size 0;
  server {
    listen 127.0.0.1:$NPORT backlog=4096;
    location / { proxy_pass http://fake; ${NGINX_EXTRA:-} }
  }"
wait_http "http://127.0.0.1:$NPORT/1.0/sync/1.5"
NGINX_WORKER=$(pgrep -P "$(cat "$tmp/proxy.pid")" | head -1)

# --- Syncto in front of the static node --------------------------------------
start_syncto() { # name token-url [ini lines]
  local port; port=$(free_port)
  printf '[app:main]\ntoken_server_url = %s\nworkers = %s\n%s\n' "$2" "$WORKERS" "${3:-}" >"$tmp/$1.ini"
  # shellcheck disable=SC2086
  env SYNCTO_LOG_LEVEL=info ${SYNCTO_ENV:-} "${SYNCTO:-$BIN/syncto}" --config "$tmp/$1.ini" --bind "127.0.0.1:$port" 2>"$tmp/$1.log" &
  PIDS+=($!)
  eval "${1}_PID=$!; ${1}_PORT=$port"
  wait_http "http://127.0.0.1:$port/v1/__lbheartbeat__"
}
start_syncto syncto "http://127.0.0.1:$UPORT/"
SBASE="http://127.0.0.1:$syncto_PORT/v1/buckets/$KID/collections"
NBASE="http://127.0.0.1:$NPORT/1.5/1/storage"
declare -A SURL NURL
SURL[page10]="$SBASE/page10/records";     NURL[page10]="$NBASE/page10?full=1&limit=1000&sort=newest"
SURL[page1000]="$SBASE/page1000/records"; NURL[page1000]="$NBASE/page1000?full=1&limit=1000&sort=newest"
SURL[one]="$SBASE/one/records/rec";       NURL[one]="$NBASE/one/rec"

# Check what each answers before measuring it.
count() { curl -fs -H "$AUTH" "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["data"]) if isinstance(d, list) or isinstance(d.get("data"), list) else 1)'; }
[[ $(count "${SURL[page10]}") == 10 ]] || { echo "page10: expected 10 records" >&2; exit 1; }
[[ $(count "${SURL[page1000]}") == 1000 ]] || { echo "page1000: expected 1000 records" >&2; exit 1; }
curl -fs -H "$AUTH" "${SURL[one]}" | grep -q '"last_modified"' || { echo "one: no record" >&2; exit 1; }
curl -fs "${NURL[page1000]}" | cmp -s - "$tmp/www/1.5/1/storage/page1000" || { echo "nginx proxy: wrong page" >&2; exit 1; }
SIZE_SYNCTO=$(curl -fs -H "$AUTH" "${SURL[page1000]}" | wc -c)

# --- PUT: Syncto in front of the Rust fake (Hawk checked, same-tick writes refused)
if [[ " $CASES " == *" put "* ]]; then
  mkfifo "$tmp/in"
  "$BIN/examples/fake_upstream" --seconds 1800 <"$tmp/in" >"$tmp/fake.out" &
  PIDS+=($!)
  exec 3>"$tmp/in"
  for _ in $(seq 100); do grep -q SYNC_URL "$tmp/fake.out" 2>/dev/null && break; sleep 0.05; done
  start_syncto writer "$(sed -n 's/^TOKEN_URL=//p' "$tmp/fake.out")" \
    "$(for c in 0 1 2 3; do echo "record_bench${c}_put_enabled = true"; done)"
  SURL[put]="http://127.0.0.1:$writer_PORT/"
fi

# run PID URL CONNS [wrk args...] → "req/s µs/req non2xx"
run() {
  local pid=$1 url=$2 c=$3; shift 3
  local t=$((c < 2 ? 1 : 2)) before after total rps bad
  before=$(cpu_ticks "$pid")
  wrk -t"$t" -c"$c" -d"${SECS}s" "$@" "$url" >"$tmp/wrk.out" 2>"$tmp/wrk.err" || true
  after=$(cpu_ticks "$pid")
  total=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
  bad=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
  [[ -n "$total" && "$total" -gt 0 ]] || { cat "$tmp/wrk.out" "$tmp/wrk.err" >&2; echo "0 0 0"; return; }
  python3 -c "print('%.0f %.1f %s' % ($rps, ($after-$before)/$HZ*1e6/$total, '${bad:-0}'))"
}

echo "# $(date -u +%F) $(nproc) cores, $(uname -r), $(nginx -v 2>&1 | sed 's/.*: //'), wrk -d${SECS}s, Syncto $WORKERS workers, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src vendor || echo '+dirty')"
echo "# pages: $(cat "$tmp/sizes") bytes upstream; Syncto's page1000 answer $SIZE_SYNCTO bytes"
echo "# environment: nginx proxy ${NGINX_ENV:-(glibc defaults)}; Syncto ${SYNCTO_ENV:-(glibc defaults)}"
printf '%-9s %5s | %9s %9s | %9s %9s | %6s %6s %s\n' case conns "syncto/s" "µs/req" "nginx/s" "µs/req" "CPU×" "rps×" ""
for r in $(seq "$REPEAT"); do
  for case in $CASES; do
    for c in $CONNS; do
      if [[ $case == put ]]; then
        wrk -t1 -c8 -d1s -s benches/put.lua "${SURL[put]}" >/dev/null 2>&1 || true # credentials of every user cached
        read -r s_rps s_us s_bad < <(run "$writer_PID" "${SURL[put]}" "$c" -s benches/put.lua)
        printf '%-9s %5s | %9s %9s | %9s %9s | %6s %6s %s\n' put "$c" "$s_rps" "$s_us" - - - - \
          "$([[ $s_bad != 0 ]] && echo "($s_bad not 200/201)")"
        continue
      fi
      wrk -t1 -c2 -d1s -H "$AUTH" "${SURL[$case]}" >/dev/null # warm: credentials cached, pools filled
      read -r s_rps s_us s_bad < <(run "$syncto_PID" "${SURL[$case]}" "$c" -H "$AUTH" "${EXTRA[@]}")
      wrk -t1 -c2 -d1s "${NURL[$case]}" >/dev/null
      read -r n_rps n_us n_bad < <(run "$NGINX_WORKER" "${NURL[$case]}" "$c" "${EXTRA[@]}")
      printf '%-9s %5s | %9s %9s | %9s %9s | %6s %6s %s\n' "$case" "$c" "$s_rps" "$s_us" "$n_rps" "$n_us" \
        "$(python3 -c "print('%.2f' % ($s_us/$n_us) if $n_us else '-')")" \
        "$(python3 -c "print('%.2f' % ($s_rps/$n_rps) if $n_rps else '-')")" \
        "$([[ $s_bad != 0 || $n_bad != 0 ]] && echo "(non-2xx: syncto $s_bad, nginx $n_bad)")"
    done
  done
done
echo "# peak RSS (VmHWM): Syncto $(hwm "$syncto_PID") kB$([[ -n "${writer_PID:-}" ]] && echo ", Syncto under PUTs $(hwm "$writer_PID") kB"), nginx proxy worker $(hwm "$NGINX_WORKER") kB"
echo "# binary: $(stat -c %s "$BIN/syncto") bytes ($PROFILE)"

# --- options: a profile or syscall counts of one case (16 connections) -------
target() { # case → pid url wrk-args; nginx-<case> is the nginx worker on that case
  if [[ $1 == put ]]; then echo "$writer_PID ${SURL[put]} -s benches/put.lua"
  elif [[ $1 == nginx-* ]]; then echo "$NGINX_WORKER ${NURL[${1#nginx-}]}"
  else echo "$syncto_PID ${SURL[$1]}"; fi
}
if [[ -n "${PERF:-}" ]]; then
  read -r pid url args < <(target "$PERF")
  out=${PERF_OUT:-/tmp/syncto-$PERF.perf}
  # shellcheck disable=SC2086
  perf record ${PERF_ARGS:--F 2000 -g} -p "$pid" -o "$out" -- sleep "$SECS" >/dev/null 2>&1 &
  perf_pid=$!
  # shellcheck disable=SC2086
  wrk -t2 -c16 -d"${SECS}s" -H "$AUTH" $args "$url" >/dev/null
  wait "$perf_pid" || true
  echo "# perf profile of $PERF: $out (perf report -i $out --no-children)"
fi
if [[ -n "${STAT:-}" ]]; then
  read -r pid url args < <(target "$STAT")
  perf stat -e page-faults,context-switches,cpu-migrations -p "$pid" -o "$tmp/stat" -- sleep "$SECS" &
  stat_pid=$!
  # shellcheck disable=SC2086
  wrk -t2 -c16 -d"${SECS}s" -H "$AUTH" $args "$url" >"$tmp/wrk.out"
  wait "$stat_pid" || true
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  echo "# per request of $STAT ($n requests, 16 connections):"
  awk -v n="$n" '$2 ~ /^(page-faults|context-switches|cpu-migrations)$/ {gsub(",", "", $1); printf "  %-16s %.2f\n", $2, $1/n}' "$tmp/stat"
fi
if [[ -n "${STRACE:-}" ]]; then
  read -r pid url args < <(target "$STRACE")
  timeout -s INT $((SECS + 2)) strace -c -f -p "$pid" -o "$tmp/strace" 2>/dev/null &
  strace_pid=$!
  sleep 0.5
  # shellcheck disable=SC2086
  wrk -t2 -c16 -d"${SECS}s" -H "$AUTH" $args "$url" >"$tmp/wrk.out"
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  wait "$strace_pid" || true
  echo "# syscalls per request of $STRACE ($n requests under strace):"
  awk -v n="$n" 'NR>2 && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "  %-14s %.2f\n", $NF, $4/n}' "$tmp/strace" | sort -k2 -nr | head -14
fi
