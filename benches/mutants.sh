#!/usr/bin/env bash
# Mutation testing of the decision code with cargo-mutants (`cargo install --locked
# cargo-mutants`, version 25 or later): each mutant is a small deliberate bug (an operator
# flipped, a match arm deleted, a function returning a default); a mutant the tests do not
# notice ("missed") is behaviour no test pins down. Not part of `cargo test` or CI: it takes
# hours. Made feasible on 2 shared cores: one group at a time, one build at a time, `nice`,
# no debug info, a timeout per mutant, and for Syncto's own code only the tests that can
# catch these mutants (the slow end-to-end modules and the real-server tests are skipped:
# `FULL=1` runs them too).
#
# Usage: benches/mutants.sh [GROUP...]      (default: all groups, about 7 hours on 2 cores)
#   GROUP: kinto (preconditions, query mapping, routing, CORS, records, batch and its collapsed
#   writes), sync15 (pacing, Hawk, timestamps, a node's POST limits), credentials, listener
#   (request heads and body framing)
#   ITERATE=1     skip the mutants the previous run of the group caught (cargo mutants --iterate)
#   IN_DIFF=FILE  only the mutants in lines a diff touches (`git diff main > FILE`)
#   FULL=1        every test of the package for each mutant (slower; for the last survivors)
#   TIMEOUT=S     per mutant's tests (default 120)
#   LIST=1        only list the mutants (cargo mutants --list)
# Results: target/mutants/GROUP/mutants.out/{caught,missed,timeout,unviable}.txt and
# outcomes.json; the survivors and why each is left are listed in benches/mutants.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || { echo "mutants.sh: cargo-mutants is not installed" >&2; exit 1; }

# Unoptimised but without debug info: links several times faster, same code under test.
export CARGO_PROFILE_DEV_DEBUG=0

group_files() {
  case $1 in
    kinto) echo src/kinto/precondition.rs src/kinto/query.rs src/kinto/cors.rs \
      src/kinto/route.rs src/kinto/records.rs src/kinto/batch.rs src/kinto/collapse.rs ;;
    sync15) echo src/sync15/pacing.rs src/sync15/hawk.rs src/sync15/timestamp.rs \
      src/sync15/limits.rs ;;
    credentials) echo src/credentials.rs ;;
    listener) echo crates/listener/src/client.rs crates/listener/src/common.rs \
      crates/listener/src/request.rs crates/listener/src/util/chunked.rs \
      crates/listener/src/util/equal_reader.rs ;;
    *) echo "mutants.sh: unknown group $1 (kinto sync15 credentials listener)" >&2; return 1 ;;
  esac
}

run() {
  local group=$1 files args=() tests=()
  files=$(group_files "$group")
  for f in $files; do args+=(--file "$f"); done
  args+=(--jobs 1 --timeout "${TIMEOUT:-120}" --output "target/mutants/$group")
  [ -z "${ITERATE:-}" ] || args+=(--iterate)
  [ -z "${IN_DIFF:-}" ] || args+=(--in-diff "$IN_DIFF")
  [ -z "${LIST:-}" ] || args+=(--list)
  [ "$group" != listener ] || args+=(--package syncto-listener)
  if [ "$group" != listener ] && [ -z "${FULL:-}" ]; then
    # The lib's unit tests and the integration crate, without the modules that spend their
    # time on sockets and timeouts (big pages, faults, hostile clients, the binary) or need
    # the real server.
    tests=(--lib --test tests -- --skip big_pages:: --skip faults:: --skip hostile::
      --skip cli:: --skip real::)
  fi
  echo "== $group: $files"
  nice -n 10 cargo mutants "${args[@]}" -- "${tests[@]}"
}

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(kinto sync15 credentials listener)
rc=0
for g in "${groups[@]}"; do
  run "$g" || rc=$?   # cargo-mutants exits 2 when a mutant was missed, 3 on a timeout
done
exit "$rc"
