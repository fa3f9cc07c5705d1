#!/usr/bin/env bash
# Run the Rust test binaries again and again to catch a rare hang or flake (not part of
# `make test`): `make repeat-tests N=30 TESTS="--test auth"`. Each run gets a deadline
# (REPEAT_DEADLINE_SECS, default 900: the suite takes about 5 minutes, more beside a
# build); a run that misses it is a hang: every thread of the
# test process is dumped with gdb (if installed) to $DATA_DIR/log/hang-<run>.txt, then the
# run is killed and the script fails. Flaky failures are counted and fail it too.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

runs=${1:-30}
shift || true
tests=("$@")
deadline=${REPEAT_DEADLINE_SECS:-900}
bash scripts/services.sh up >/dev/null
# shellcheck source=scripts/env.sh
source scripts/env.sh
mkdir -p "$DATA_DIR/log"
# Build once, then run the test executables themselves: an edit made meanwhile does not
# change what is being repeated.
mapfile -t binaries < <(cargo test --features ssr --no-run --message-format=json "${tests[@]}" |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
((${#binaries[@]})) || die "no test executables were built"
log "repeating ${#binaries[@]} test executable(s) $runs times, deadline ${deadline} s per run"
run_all() {
  local bin
  for bin in "${binaries[@]}"; do
    "$bin" || return 1
  done
}

dump_threads() { # RUN: every thread of every test binary still running
  local run=$1 pid out="$DATA_DIR/log/hang-$run.txt"
  : >"$out"
  for pid in $(pgrep -f 'target/debug/deps/' || true); do
    {
      printf '=== pid %s: %s\n' "$pid" "$(tr '\0' ' ' </proc/"$pid"/cmdline)"
      if command -v gdb >/dev/null; then
        gdb -p "$pid" -batch -ex 'set pagination off' -ex 'thread apply all bt' 2>&1
      else
        printf '(gdb not installed: no thread dump)\n'
      fi
    } >>"$out"
  done
  log "    thread dump: $out"
}

failed=0
started=$SECONDS
for run in $(seq 1 "$runs"); do
  t0=$SECONDS
  log_file="$DATA_DIR/log/repeat-$run.log"
  run_all >"$log_file" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - t0 < deadline)); do sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "run $run: HANG after ${deadline} s"
    dump_threads "$run"
    pkill -KILL -f 'target/debug/deps/' || true
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    exit 1
  fi
  if wait "$pid"; then
    log "run $run: ok in $((SECONDS - t0)) s"
    rm -f "$log_file"
  else
    failed=$((failed + 1))
    log "run $run: FAILED in $((SECONDS - t0)) s (see $log_file)"
    grep -E '^test .* FAILED|panicked' "$log_file" | head -n 5 || true
  fi
done
log "$runs runs in $((SECONDS - started)) s: $((runs - failed)) passed, $failed failed, no hang"
((failed == 0))
