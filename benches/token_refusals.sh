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
. benches/common.sh
build_release
bench_tmp
start_fake 300
start_syncto
before=$(fake_stat token_calls_total)
for i in $(seq "$N"); do
  curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer invalid-$i" -H "X-KeyID: $i-AAAAAAAAAAAAAAAAAAAAAA" \
    "http://127.0.0.1:$port/v1/buckets/syncto/collections/tabs/records"
done | sort | uniq -c | awk '{printf "%s answers %s\n", $1, $2}'
echo "syncto: $SYNCTO"
echo "Token Server exchanges for $N made-up tokens: $(($(fake_stat token_calls_total) - before))"
