#!/usr/bin/env bash
# BENCH-IMPORT: the import job end to end on a generated extended-history export (default
# 2,000,000 plays), in databases of its own, through the app's own pools (the nodes' 30 s
# statement timeout applies): imported once, then the same file again (every play there
# already). Builds the server in release, starts the local stores; prints numbers, asserts
# nothing. Options pass through: scripts/bench-import.sh --plays 500000 --runs 3
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/services.sh up >/dev/null
source scripts/env.sh
step "release build of the server" cargo build --release --features ssr --bin personalify
RUST_LOG=${RUST_LOG:-warn,sqlx=error} "$(cargo_target_dir)/release/personalify" bench-import "$@"
