#!/usr/bin/env bash
# SOAK (a benchmark with faults, not part of `make test`): N simulated listeners sign in,
# browse and sync for M minutes against the release server while each store is stopped and
# started in turn and the simulated Spotify answers 429s, 5xx and slowly; then it checks
# that nothing was lost or doubled and prints what it saw. Options pass through:
#   scripts/soak.sh --users 50 --minutes 10 [--no-store-faults]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/services.sh up >/dev/null
# shellcheck source=scripts/env.sh
source scripts/env.sh
step "release build" cargo build --release --features ssr --bin personalify
# Its own databases, so the soak's listeners and syncs are counted alone.
export MONGODB_DATABASE=personalify_soak REDIS_KEY_PREFIX=soak:
soak_main="${DATABASE_URL%/*}/personalify_soak"
psql "${DATABASE_URL%/*}/postgres" -qc 'DROP DATABASE IF EXISTS personalify_soak WITH (FORCE)' \
  -c 'CREATE DATABASE personalify_soak' >/dev/null
export DATABASE_URL=$soak_main
# And its own plays on the analytics node (it checks every listener's plays for gaps).
soak_analytics="${ANALYTICS_DATABASE_URL%/*}/analytics_soak"
psql "${ANALYTICS_DATABASE_URL%/*}/postgres" -qc 'DROP DATABASE IF EXISTS analytics_soak WITH (FORCE)' \
  -c 'CREATE DATABASE analytics_soak' >/dev/null
export ANALYTICS_DATABASE_URL=$soak_analytics
# Likewise on the second node, when there is one (half the listeners' plays are there).
if [[ -n ${ANALYTICS_2_DATABASE_URL:-} ]]; then
  psql "${ANALYTICS_2_DATABASE_URL%/*}/postgres" -qc 'DROP DATABASE IF EXISTS analytics_soak WITH (FORCE)' \
    -c 'CREATE DATABASE analytics_soak' >/dev/null
  export ANALYTICS_2_DATABASE_URL="${ANALYTICS_2_DATABASE_URL%/*}/analytics_soak"
fi
# No read replica: its subscriptions would hold slots on the soak's node databases, which
# the next soak drops.
unset ANALYTICS_REPLICA_DATABASE_URL
RUST_LOG=${RUST_LOG:-error} "$(cargo_target_dir)/release/personalify" soak "$@"
