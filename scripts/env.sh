# shellcheck shell=bash
# The app's environment for the project-local services started by scripts/services.sh.
# Source it (`source scripts/env.sh`); a variable that is already set wins, so a .env
# file, CI or your shell can point any store elsewhere.

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${DATABASE_URL:=postgres://personalify:personalify@127.0.0.1:$PG_MAIN_PORT/personalify}"
export DATABASE_URL
: "${ANALYTICS_DATABASE_URL:=postgres://personalify:personalify@127.0.0.1:$PG_ANALYTICS_PORT/analytics}"
export ANALYTICS_DATABASE_URL
# directConnection: SecantusDB advertises itself as a one-node replica set; talk to it
# directly instead of running replica-set discovery (harmless with a real mongod).
: "${MONGODB_URL:=mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true}"
export MONGODB_URL
: "${MONGODB_DATABASE:=personalify}"
export MONGODB_DATABASE
: "${REDIS_URL:=redis://127.0.0.1:$REDIS_PORT}"
export REDIS_URL
# How the main PostgreSQL server reaches the analytics server (postgres_fdw): both run
# on this machine, so loopback. In docker-compose it is the service name.
: "${ANALYTICS_FDW_HOST:=127.0.0.1}"
export ANALYTICS_FDW_HOST
: "${ANALYTICS_FDW_PORT:=$PG_ANALYTICS_PORT}"
export ANALYTICS_FDW_PORT
: "${ANALYTICS_2_DATABASE_URL:=postgres://personalify:personalify@127.0.0.1:$PG_ANALYTICS_2_PORT/analytics}"
export ANALYTICS_2_DATABASE_URL
: "${ANALYTICS_2_FDW_HOST:=127.0.0.1}"
export ANALYTICS_2_FDW_HOST
: "${ANALYTICS_2_FDW_PORT:=$PG_ANALYTICS_2_PORT}"
export ANALYTICS_2_FDW_PORT
: "${ANALYTICS_REPLICA_DATABASE_URL:=postgres://personalify:personalify@127.0.0.1:$PG_ANALYTICS_REPLICA_PORT/analytics}"
export ANALYTICS_REPLICA_DATABASE_URL
# Uploaded exports wait here while they are imported (the app's default is its XDG state
# folder; the local run keeps them with the stores' data).
: "${IMPORT_DIR:=$DATA_DIR/imports}"
export IMPORT_DIR
# The WASM's file name. cargo-leptos sets it for its own builds; leptos also reads it when
# the server is *compiled* (without it the page asks for personalify_bg.wasm), so a plain
# `cargo build`/`cargo test` of the server must see the same value, or its pages do not
# hydrate and cargo rebuilds leptos each time the variable comes and goes.
: "${LEPTOS_OUTPUT_NAME:=personalify}"
export LEPTOS_OUTPUT_NAME
