#!/usr/bin/env bash
# BENCH-SHARDS: the sharded analytics tier. Builds the release, starts the local
# stores, then `personalify bench-shards` seeds plays on both analytics nodes (default
# 4,000,000 over 200 listeners, one with 200,000) in databases of its own, and measures an
# instance-wide aggregate with async foreign scans on and off, ingest through main and
# routed, and one listener's page sharded vs with every partition moved onto one node.
# Prints numbers; asserts nothing. Options pass through:
#   scripts/bench-shards.sh --plays 1000000 --users 50 --heavy 50000 --runs 10 --ingest 100000
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/services.sh up >/dev/null
source scripts/env.sh
step "release build (${RELEASE_BUILD[*]})" "${RELEASE_BUILD[@]}"
export LEPTOS_OUTPUT_NAME=personalify LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
RUST_LOG=${RUST_LOG:-warn,sqlx=error} "$(cargo_target_dir)/release/personalify" bench-shards "$@"
