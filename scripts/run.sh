#!/usr/bin/env bash
# RUN: install what is missing, start the local stores, build the release and serve it on
# http://127.0.0.1:3000 (demo mode unless SPOTIFY_CLIENT_ID/SECRET are set). Ctrl-C stops
# the server; `scripts/services.sh down` stops the stores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/services.sh up
source scripts/env.sh
step "release build (${RELEASE_BUILD[*]})" "${RELEASE_BUILD[@]}"

export LEPTOS_OUTPUT_NAME=personalify LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg
: "${LEPTOS_SITE_ADDR:=127.0.0.1:3000}"
export LEPTOS_SITE_ADDR
log "serving on http://$LEPTOS_SITE_ADDR (Ctrl-C to stop)"
exec "$(cargo_target_dir)/release/personalify"
