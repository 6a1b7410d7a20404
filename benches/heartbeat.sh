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
. benches/common.sh
build_release
bench_tmp
start_fake $((SECS + 60))
start_syncto

before=$(fake_stat heartbeats)
wrk -t2 -c16 -d"${SECS}s" "http://127.0.0.1:$port/v1/__heartbeat__" >"$tmp/wrk.out"
after=$(fake_stat heartbeats)
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
echo "syncto: $SYNCTO"
echo "heartbeats answered in ${SECS} s: $requests (non-2xx: ${non2xx:-0})"
echo "Token Server heartbeat checks: $((after - before))"
