#!/usr/bin/env bash
# CI proof of etc/nginx-syncto.conf: Debian's nginx-light runs that very file (its ports,
# certificate and log paths rewritten, nothing else) from a private prefix on 127.0.0.1,
# with TLS, in front of two Syncto instances that use the fake Token Server and Sync node
# (examples/fake_upstream.rs). 10 users make 50 requests each through it. Passes when:
#   - every answer is 2xx (one request of each user is a PUT: writes take their own
#     never-retried path through nginx);
#   - each user cost exactly one Token Server call (the credentials cache works behind the
#     balancer), and all of a user's requests reached one instance;
#   - GET /v1/ `url` and `Next-Page` name the balancer (https://127.0.0.1:<its port>),
#     and following a Next-Page through the balancer works.
# Uses target/debug/syncto and the fake_upstream example (what `cargo test` builds).
# Installs nginx-light, curl and openssl with apt-get if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=10
REQUESTS=50

echo "== nginx balancer in front of two Syncto instances"
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
nginx -v
cargo build -q --bin syncto --example fake_upstream

work=$(mktemp -d /tmp/syncto-balancer.XXXXXX)
pids=()
cleanup() {
  exec 7>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done
  exit 1
}

# Waits (at most 20 s) until file $1 has a line matching $2; prints that line.
wait_for_line() {
  local i
  for i in $(seq 200); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "no line matching '$2' in $1"
}

# A TCP port nobody listens on, below the kernel's ephemeral range (so no instance or
# client socket picks it meanwhile), other than $1. nginx then binds it, or fails loudly.
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  while :; do
    p=$((10000 + RANDOM % (low - 10000)))
    [ "$p" = "${1:-}" ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# --- the fake Token Server + Sync node, with 5 records in `bench` for every user ----------
kid() { echo "$((1000 + $1))-Yw3NKWbEM2aRElRIu7JbTw"; }
seed_args=()
for i in $(seq 0 $((USERS - 1))); do seed_args+=(--seed-key "$(kid "$i")"); done
mkfifo "$work/fake.in"
target/debug/examples/fake_upstream --seconds 300 --seed 5 "${seed_args[@]}" \
  <"$work/fake.in" >"$work/fake.log" 2>&1 &
pids+=($!)
exec 7>"$work/fake.in" # the fake stops when this closes
token_url=$(wait_for_line "$work/fake.log" '^TOKEN_URL=' | cut -d= -f2-)
stats_url=$(wait_for_line "$work/fake.log" '^STATS_URL=' | cut -d= -f2-)

# --- two Syncto instances ------------------------------------------------------------------
https_port=$(free_port)
http_port=$(free_port "$https_port")
public="https://127.0.0.1:$https_port"
printf '[app:main]\nrecord_bench_put_enabled = true\n' >"$work/syncto.ini"
ports=()
for n in 1 2; do
  SYNCTO_TOKEN_SERVER_URL="$token_url" \
    SYNCTO_HTTP_SCHEME=https \
    SYNCTO_HTTP_HOST="127.0.0.1:$https_port" \
    SYNCTO_TRUSTED_PROXIES=127.0.0.1 \
    SYNCTO_WORKERS=4 \
    target/debug/syncto --config "$work/syncto.ini" --bind 127.0.0.1:0 --log-format text \
    2>"$work/syncto$n.log" &
  pids+=($!)
  ports+=("$(wait_for_line "$work/syncto$n.log" 'listening on 127\.0\.0\.1:' |
    sed -E 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/')")
done
echo "instances on 127.0.0.1:${ports[0]} and 127.0.0.1:${ports[1]}; balancer on $public"

# --- nginx: the shipped file, with ports, certificate and log paths of this run ------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
sed -E \
  -e "s#server 127\.0\.0\.1:8000 #server 127.0.0.1:${ports[0]} #" \
  -e "s#server 127\.0\.0\.1:8001 #server 127.0.0.1:${ports[1]} #" \
  -e "s#^( *)listen 80;#\1listen 127.0.0.1:$http_port;#" \
  -e "s#^( *)listen 443 ssl#\1listen 127.0.0.1:$https_port ssl#" \
  -e '/listen \[::\]/d' \
  -e "s#ssl_certificate .*#ssl_certificate $work/cert.pem;#" \
  -e "s#ssl_certificate_key .*#ssl_certificate_key $work/key.pem;#" \
  -e "s#access_log .*#access_log $work/nginx-access.log;#" \
  etc/nginx-syncto.conf >"$work/syncto.conf"
grep -q "server 127.0.0.1:${ports[0]} " "$work/syncto.conf" && grep -q "server 127.0.0.1:${ports[1]} " "$work/syncto.conf" ||
  fail "could not rewrite the upstream"
mkdir -p "$work/tmp"
{
  if [ "$(id -u)" = 0 ]; then echo "user root root;"; fi
  cat <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 512; }
http {
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    include $work/syncto.conf;
}
EOF
} >"$work/nginx.conf"
nginx -t -q -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" ||
  fail "nginx refuses the configuration"
nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" -g 'daemon off;' &
pids+=($!)
curl_tls=(curl -sS --max-time 30 --cacert "$work/cert.pem")
for i in $(seq 100); do
  if "${curl_tls[@]}" -o /dev/null "$public/v1/__lbheartbeat__" 2>/dev/null; then break; fi
  [ "$i" = 100 ] && fail "nginx does not answer on $public"
  sleep 0.1
done

# --- 10 users, 50 requests each (49 reads, then a write), all at once -----------------------
records() { echo "$public/v1/buckets/$(kid "$1")/collections/bench/records"; }
user() {
  local i=$1 args=() r url
  for r in $(seq $((REQUESTS - 1))); do
    case $((r % 5)) in
      0) url="$public/v1/" ;;
      1) url="$(records "$i")?_limit=2" ;;
      2) url="$(records "$i")/record0000003" ;;
      3) url="$public/v1/buckets/$(kid "$i")/collections/bench" ;;
      *) url="$(records "$i")?_sort=-last_modified" ;;
    esac
    args+=(-o /dev/null "$url")
  done
  "${curl_tls[@]}" -H "Authorization: Bearer ci-user-$i-token" \
    -w '%{http_code} %{url_effective}\n' "${args[@]}"
  "${curl_tls[@]}" -H "Authorization: Bearer ci-user-$i-token" -X PUT \
    -H 'Content-Type: application/json' --data '{"data": {"payload": "written"}}' \
    -w '%{http_code} PUT %{url_effective}\n' -o /dev/null "$(records "$i")/written"
}
for i in $(seq 0 $((USERS - 1))); do
  user "$i" >"$work/user$i.codes" &
  pids+=($!)
  user_pids[i]=$!
done
for i in $(seq 0 $((USERS - 1))); do wait "${user_pids[i]}" || fail "user $i: curl failed"; done

total=$(cat "$work"/user*.codes | wc -l)
bad=$(cat "$work"/user*.codes | grep -cv '^2' || true)
[ "$total" = $((USERS * REQUESTS)) ] || fail "$total answers, expected $((USERS * REQUESTS))"
[ "$bad" = 0 ] || fail "$bad answers were not 2xx: $(cat "$work"/user*.codes | grep -v '^2' | head -3)"
echo "ok: $total answers, all 2xx"

# --- one Token Server call per user; each user on one instance ------------------------------
stats=$(curl -sS --max-time 10 "$stats_url")
for i in $(seq 0 $((USERS - 1))); do
  calls=$(grep -o "\"$(kid "$i")\":[0-9]*" <<<"$stats" | cut -d: -f2)
  [ "$calls" = 1 ] || fail "user $i made ${calls:-0} Token Server calls (stats: $stats)"
  on1=$(grep -c "/buckets/$(kid "$i")/" "$work/syncto1.log" || true)
  on2=$(grep -c "/buckets/$(kid "$i")/" "$work/syncto2.log" || true)
  if [ "$on1" != 0 ] && [ "$on2" != 0 ]; then
    fail "user $i was served by both instances ($on1 + $on2 requests)"
  fi
done
served1=$(grep -c 'remote=' "$work/syncto1.log" || true)
served2=$(grep -c 'remote=' "$work/syncto2.log" || true)
echo "ok: each of the $USERS users made 1 Token Server call and stayed on one instance" \
  "(requests served: instance 1: $served1, instance 2: $served2)"

# --- absolute URLs name the balancer ----------------------------------------------------------
auth=(-H "Authorization: Bearer ci-user-0-token")
hello=$("${curl_tls[@]}" "${auth[@]}" "$public/v1/")
grep -q "\"url\":\"$public/v1/\"" <<<"$hello" || fail "hello url: $hello"
next=$("${curl_tls[@]}" "${auth[@]}" -D - -o /dev/null "$(records 0)?_limit=2" |
  tr -d '\r' | sed -n 's/^[Nn]ext-[Pp]age: //p')
case "$next" in
  "$(records 0)?"*_limit=2*) ;;
  *) fail "Next-Page does not point at the balancer: '$next'" ;;
esac
code=$("${curl_tls[@]}" "${auth[@]}" -o /dev/null -w '%{http_code}' "$next")
[ "$code" = 200 ] || fail "following Next-Page answered $code"
echo "ok: hello url and Next-Page point at $public"

# --- nothing secret in the logs; the client address is the one nginx saw ----------------------
if grep -q 'ci-user-' "$work"/syncto*.log; then fail "a token reached a log"; fi
grep -q 'remote=127.0.0.1' "$work/syncto1.log" "$work/syncto2.log" || fail "no remote in logs"
echo "balancer: OK"
