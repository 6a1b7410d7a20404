#!/usr/bin/env bash
# A fully static glibc build of syncto, and proof that it needs nothing from the machine:
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --target x86_64-unknown-linux-gnu --bin syncto
# (the explicit --target keeps RUSTFLAGS away from build scripts and proc macros, and puts
# the binary in target/x86_64-unknown-linux-gnu/release/syncto).
#
# Checks: `ldd` finds no dynamic section; the binary runs in an empty root (a directory
# holding only the binary: no libc, no /etc, no /dev, no /proc) and there serves a Kinto
# request end to end against the fake Token Server and Sync node on 127.0.0.1.
#
# What it gives up: NSS. A static glibc can load NSS modules (libnss_*.so: systemd's
# resolve and myhostname, mdns, LDAP, sssd ...) only from the exact glibc version it was
# linked with, so elsewhere in practice none. glibc >= 2.34 builds the `files` and `dns`
# sources into libc itself, so host names still resolve through /etc/hosts and the
# nameservers of /etc/resolv.conf, and only through them. The script shows both sides: in
# the empty root a name (`upstream.test`) does not resolve (no /etc/hosts) and the upstream
# answers 503; with a one-line /etc/hosts it does. `localhost` needs no /etc/hosts: Syncto
# takes it as 127.0.0.1 / ::1 without asking the system.
#
# Then the container recipe, etc/Containerfile (FROM scratch): its COPY sources exist, and
# its ENTRYPOINT, run as its USER in a root laid out as its COPY lines say, serves a request.
#
# Prints the size and the run time; KEEP=1 keeps the work directory (logs). Needs root or
# unprivileged user namespaces (unshare -r) for the chroot; builds the fake_upstream example
# in debug.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

target=x86_64-unknown-linux-gnu
echo "== static glibc build ($target, +crt-static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --target "$target" --bin syncto
cargo build -q --example fake_upstream
bin="target/$target/release/syncto"

work=$(mktemp -d /tmp/syncto-static.XXXXXX)
pids=()
cleanup() {
  exec 7>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

# --- no dynamic linking at all --------------------------------------------------------------
ldd_out=$(ldd "$bin" 2>&1 || true)
echo "ldd: $ldd_out"
case "$ldd_out" in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) fail "the binary is dynamically linked" ;;
esac
if readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then fail "the binary NEEDs shared libraries"; fi
size=$(stat -c %s "$bin")
echo "size: $size bytes ($(stat -c %s target/release/syncto 2>/dev/null || echo '?') for the dynamic release build)"

# --- an empty root: only the binary -----------------------------------------------------------
root="$work/root"
mkdir -p "$root"
cp "$bin" "$root/syncto"
if [ "$(id -u)" = 0 ]; then
  in_root=(chroot "$root")
elif unshare -r true 2>/dev/null; then
  in_root=(unshare -r chroot "$root")
else
  fail "needs root or unprivileged user namespaces to chroot"
fi
[ "$("${in_root[@]}" /syncto --version)" = "syncto $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ] ||
  fail "--version in the empty root"
echo "ok: runs in an empty root ($(find "$root" | wc -l) entries: the directory and the binary)"

# The fake Token Server + Sync node, outside the root (same network namespace).
mkfifo "$work/fake.in"
target/debug/examples/fake_upstream --seconds 120 --seed 3 <"$work/fake.in" >"$work/fake.log" 2>&1 &
pids+=($!)
exec 7>"$work/fake.in"
for i in $(seq 100); do grep -q '^TOKEN_URL=' "$work/fake.log" && break; sleep 0.1; done
token_port=$(sed -n 's#^TOKEN_URL=http://127.0.0.1:\([0-9]*\)/#\1#p' "$work/fake.log")
[ -n "$token_port" ] || fail "the fake upstream did not start"

# Starts the static binary in the root with token server $1, then GETs records as a user;
# prints the HTTP status.
serve_once() {
  local log="$work/syncto-$2.log" port pid code
  # Plain http to a name that is not localhost must be allowed explicitly.
  env -i PATH="$PATH" SYNCTO_TOKEN_SERVER_URL="$1" SYNCTO_ALLOW_INSECURE_UPSTREAM=true \
    "${in_root[@]}" /syncto --bind 127.0.0.1:0 2>"$log" &
  pid=$!
  pids+=("$pid")
  for i in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] || fail "the static binary did not start in the empty root"
  code=$(curl -sS --max-time 30 -o "$work/body-$2" -w '%{http_code}' \
    -H "Authorization: Bearer static-check" \
    "http://127.0.0.1:$port/v1/buckets/1234-Yw3NKWbEM2aRElRIu7JbTw/collections/bench/records")
  kill -TERM "$pid"
  wait "$pid" || fail "exit status $? after SIGTERM"
  echo "$code"
}

code=$(serve_once "http://127.0.0.1:$token_port/" ip)
[ "$code" = 200 ] || fail "IP-literal upstream answered $code"
grep -q record0000002 "$work/body-ip" || fail "records missing: $(cat "$work/body-ip")"
echo "ok: serves records from the empty root (token server by IP address)"

code=$(serve_once "http://localhost:$token_port/" localhost)
[ "$code" = 200 ] || fail "localhost without /etc/hosts answered $code"
echo "ok: 'localhost' is the loopback interface without /etc/hosts"

code=$(serve_once "http://upstream.test:$token_port/" no-hosts)
[ "$code" = 503 ] || fail "upstream.test without /etc/hosts answered $code, expected 503"
grep -q "token server unreachable: upstream.test" "$work/syncto-no-hosts.log" ||
  fail "the 503 is not the failed lookup of upstream.test"
echo "ok: without /etc/hosts, a name does not resolve (503): no NSS modules to fall back on"
mkdir -p "$root/etc"
echo "127.0.0.1 upstream.test" >"$root/etc/hosts"
code=$(serve_once "http://upstream.test:$token_port/" hosts)
[ "$code" = 200 ] || fail "upstream.test with /etc/hosts answered $code"
echo "ok: with /etc/hosts it does (glibc's built-in files source)"

# --- etc/Containerfile: FROM scratch around this binary ---------------------------------------
# No container engine here: lay out the image's files as its COPY lines say in another empty
# root, and run its ENTRYPOINT there as its USER (listening on loopback for this check, where
# the image's SYNCTO_HOST says every interface).
croot="$work/image"
mkdir -p "$croot"
while read -r src dst; do
  [ -e "$src" ] || fail "etc/Containerfile: COPY $src: no such file"
  mkdir -p "$croot$(dirname "$dst")"
  cp "$src" "$croot$dst"
done < <(sed -n 's/^COPY \([^ ]*\) \([^ ]*\)$/\1 \2/p' etc/Containerfile)
read -r -a entry < <(sed -n 's/^ENTRYPOINT \[\(.*\)\]$/\1/p' etc/Containerfile | tr -d '",')
user=$(sed -n 's/^USER //p' etc/Containerfile)
[ -x "$croot${entry[0]}" ] || fail "etc/Containerfile: ENTRYPOINT ${entry[0]} is not in the image"
as_user=("${in_root[@]}")
[ "$(id -u)" = 0 ] && as_user=(chroot --userspec="$user" "$croot")
[ "$(id -u)" = 0 ] || as_user=(unshare -r chroot "$croot")
log="$work/syncto-image.log"
env -i PATH="$PATH" SYNCTO_HOST=127.0.0.1 SYNCTO_PORT=0 \
  SYNCTO_TOKEN_SERVER_URL="http://127.0.0.1:$token_port/" "${as_user[@]}" "${entry[@]}" 2>"$log" &
pid=$!
pids+=("$pid")
for i in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
[ -n "$port" ] || fail "the image's ENTRYPOINT did not start"
code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' \
  -H "Authorization: Bearer static-check" \
  "http://127.0.0.1:$port/v1/buckets/1234-Yw3NKWbEM2aRElRIu7JbTw/collections/bench/records")
kill -TERM "$pid"
wait "$pid" || fail "the image's process: exit status $? after SIGTERM"
[ "$code" = 200 ] || fail "the image's ENTRYPOINT answered $code"
echo "ok: etc/Containerfile's files exist, and its ENTRYPOINT serves from a root holding only them, as user $user"

echo "static: OK ($size bytes, $(($(date +%s) - started)) s)"
