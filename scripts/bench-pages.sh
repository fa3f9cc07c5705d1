#!/usr/bin/env bash
# BENCH-PAGES: how fast the pages are. Builds the release (as `make run` does), starts the
# local stores, then `personalify bench-pages` seeds two demo listeners (1 and 365 syncs)
# in databases of its own, serves them with the release binary on a free port and drives
# /dashboard, /history, /artist/{id} and the static ceiling with 16 connections, without
# and with compression. Prints numbers; asserts nothing. Options pass through, e.g.
#   scripts/bench-pages.sh --connections 32 --seconds 10 --syncs 100
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/services.sh up >/dev/null
source scripts/env.sh
step "release build (${RELEASE_BUILD[*]})" "${RELEASE_BUILD[@]}"
export LEPTOS_OUTPUT_NAME=personalify LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
RUST_LOG=${RUST_LOG:-warn} "$(cargo_target_dir)/release/personalify" bench-pages "$@"
