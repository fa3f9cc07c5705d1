#!/usr/bin/env bash
# BENCH-LISTENING: how fast the Listening panels are. Builds the release, starts the local
# stores, then `personalify bench-listening` seeds plays on the analytics node (default
# 2,000,000 over 50 listeners, one with 200,000) in databases of its own, links main to
# them with postgres_fdw and times each panel's query on main, for the heavy listener and
# a typical one, and the whole page. Prints numbers; asserts nothing. Options pass through:
#   scripts/bench-listening.sh --plays 500000 --users 20 --heavy 50000 --runs 20
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/services.sh up >/dev/null
source scripts/env.sh
step "release build (${RELEASE_BUILD[*]})" "${RELEASE_BUILD[@]}"
export LEPTOS_OUTPUT_NAME=personalify LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
RUST_LOG=${RUST_LOG:-warn,sqlx=error} "$(cargo_target_dir)/release/personalify" bench-listening "$@"
