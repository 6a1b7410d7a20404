#!/usr/bin/env bash
# The property tests of tests/properties.rs run longer (not part of `cargo
# test`): round after round, each with fresh random inputs and
# PROPTEST_CASES cases per property, until the time is up. Reports rounds,
# cases run and failures; a failing round's output is kept, and proptest
# saves the failing input in tests/proptest-regressions/properties.txt.
#
#   benches/properties.sh [minutes] [cases per property per round]
#
# Debug build (the one `cargo test` builds): no extra compile.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
CASES=${2:-20000}
# Properties that go through the HTTP server run an eighth of the cases.
SLOW="properties::next_page_round_trips"

cargo test --quiet --test tests --no-run 2>/dev/null
list=$(cargo test --quiet --test tests properties:: -- --list 2>/dev/null | sed -n 's/: test$//p')
total_props=$(grep -c . <<<"$list")
slow_props=$(grep -cxF "$SLOW" <<<"$list" || true)
per_round=$(( (total_props - slow_props) * CASES + slow_props * (CASES / 8) ))

out=$(mktemp -d)
end=$(( $(date +%s) + MINUTES * 60 ))
started=$(date +%s)
rounds=0 failed=0 cases=0
while (( $(date +%s) < end )); do
  rounds=$((rounds + 1))
  if PROPTEST_CASES=$CASES cargo test --quiet --test tests properties:: >"$out/round-$rounds.log" 2>&1; then
    rm "$out/round-$rounds.log"
    cases=$((cases + per_round))
  else
    failed=$((failed + 1))
    echo "round $rounds failed: $out/round-$rounds.log" >&2
    grep -E "^test .* FAILED|minimal failing input" "$out/round-$rounds.log" >&2 || true
  fi
done
elapsed=$(( $(date +%s) - started ))
echo "properties: $total_props; rounds: $rounds in ${elapsed}s; cases run: $cases (of the passing rounds); failed rounds: $failed"
[[ $failed == 0 ]] && rmdir "$out" 2>/dev/null || true
(( failed == 0 ))
