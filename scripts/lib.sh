# shellcheck shell=bash disable=SC2034 # variables here are used by the scripts that source it
# Shared helpers for the scripts in this folder. Source it, don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It only defines variables and functions (no side effects), so env.sh can source it
# from an interactive shell too.

# Repository root, from this file's location (works from any working directory).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Project-local service data (git-ignored) and tools shared by every clone on the
# machine (the Python venv), so a CI job's fresh clone reuses what setup.sh installed.
DATA_DIR=${PERSONALIFY_DATA_DIR:-$ROOT/.data}
[[ $DATA_DIR == /* ]] || DATA_DIR=$PWD/$DATA_DIR
TOOLS_DIR=${PERSONALIFY_TOOLS_DIR:-${HOME:?HOME is not set}/.local/share/personalify}
VENV_DIR=$TOOLS_DIR/venv

# Fixed loopback ports, away from the services' defaults so a system-wide
# PostgreSQL/Redis/MongoDB can keep running beside ours. Overridable per machine.
PG_MAIN_PORT=${PERSONALIFY_PG_MAIN_PORT:-55432}
PG_ANALYTICS_PORT=${PERSONALIFY_PG_ANALYTICS_PORT:-55433}
# The second analytics node (plays sharded over both: issue 13).
PG_ANALYTICS_2_PORT=${PERSONALIFY_PG_ANALYTICS_2_PORT:-55434}
# The read replica of the analytics nodes (logical replication).
PG_ANALYTICS_REPLICA_PORT=${PERSONALIFY_PG_ANALYTICS_REPLICA_PORT:-55435}
REDIS_PORT=${PERSONALIFY_REDIS_PORT:-56379}
MONGO_PORT=${PERSONALIFY_MONGO_PORT:-57017}

# The release build that run, test and bench-pages serve: the server binary, and the WASM
# split at its lazy routes (--split: /history and /artist load their own chunks), static
# assets precompressed (--precompress). The Dockerfile runs the same command.
RELEASE_BUILD=(cargo leptos build --release --precompress --split)
# What the Playwright suite loads: the same release WASM, CSS and assets, without the
# release server (the suite serves the debug server that `cargo test` already built).
FRONTEND_BUILD=(cargo leptos build --release --precompress --split --frontend-only)

# Versions the toolchain is pinned to (see /work/shared/TOOLCHAIN.md).
CARGO_LEPTOS_VERSION=0.3.11
SECANTUSDB_VERSION=0.7.0b3

log() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Microseconds since the epoch ($EPOCHREALTIME without its decimal separator).
_now_us() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%s' "$t"
}

# "12.3s" for a start time taken with _now_us.
elapsed_since() {
  local ds=$((($(_now_us) - $1) / 100000))
  printf '%d.%ds' $((ds / 10)) $((ds % 10))
}

# step "name" cmd [args...]: announce a step, run it, report how long it took.
# A failing command stops the calling script (set -e); its own message says why.
step() {
  local name=$1 start
  shift
  start=$(_now_us)
  log "==> $name"
  "$@"
  log "    done in $(elapsed_since "$start")"
}

# Where cargo puts build output: $CARGO_TARGET_DIR (relative to the repo root when
# relative), else ./target.
cargo_target_dir() {
  local dir=${CARGO_TARGET_DIR:-target}
  [[ $dir == /* ]] || dir=$ROOT/$dir
  printf '%s\n' "$dir"
}
