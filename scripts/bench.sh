#!/usr/bin/env bash
# BENCH: sync N simulated users against the real local stores with a realistic Spotify
# latency and print per-sync wall time, PostgreSQL round trips and the floor.
# Options pass through, e.g. scripts/bench.sh --syncs 100 --latency-ms 50 --concurrency 4
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/services.sh up >/dev/null
source scripts/env.sh
step "release build" cargo build --release --features ssr --bin personalify
RUST_LOG=${RUST_LOG:-warn} "$(cargo_target_dir)/release/personalify" bench-sync "$@"
