#!/usr/bin/env bash
# The whole suite (Rust and Playwright) at a chosen wall-clock time, to test midnight and
# week boundaries on purpose:
#   bash scripts/test-at.sh "2026-12-13 23:59:30"     # a Sunday, 30 s before midnight UTC
# Each phase (the Rust tests, then the Playwright suite) starts at that time on a fake
# clock (libfaketime) that then runs on; its own stores (a separate data folder and ports,
# so the usual ones keep running) restart on that clock before it. Builds run on the
# real clock. Otherwise the same checks as `make test`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# == 1)) || die "usage: scripts/test-at.sh 'YYYY-MM-DD HH:MM:SS' (UTC)"
date -u -d "$1" >/dev/null 2>&1 || die "'$1' is not a time date(1) reads"
if ! [[ -r /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]]; then
  SUDO=()
  ((EUID == 0)) || SUDO=(sudo)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime
fi
export PERSONALIFY_FAKE_TIME="$1"
export PERSONALIFY_DATA_DIR=${PERSONALIFY_AT_DATA_DIR:-$ROOT/.data-at}
# The usual ports plus 1000, unless set.
export PERSONALIFY_PG_MAIN_PORT=$((PG_MAIN_PORT + 1000))
export PERSONALIFY_PG_ANALYTICS_PORT=$((PG_ANALYTICS_PORT + 1000))
export PERSONALIFY_PG_ANALYTICS_2_PORT=$((PG_ANALYTICS_2_PORT + 1000))
export PERSONALIFY_PG_ANALYTICS_REPLICA_PORT=$((PG_ANALYTICS_REPLICA_PORT + 1000))
export PERSONALIFY_REDIS_PORT=$((REDIS_PORT + 1000))
export PERSONALIFY_MONGO_PORT=$((MONGO_PORT + 1000))
export E2E_PORT=${E2E_PORT:-3300}
exec bash "$ROOT/scripts/test.sh"
