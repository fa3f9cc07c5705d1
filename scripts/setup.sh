#!/usr/bin/env bash
# Install what Personalify needs to build, run and test on a Debian 12 machine, and only
# what is missing: safe to run again (a second run takes about a second).
#   Debian packages  PostgreSQL (+ contrib for postgres_fdw), Redis, Chromium (Playwright),
#                    docker-compose (v1, only to validate docker-compose.yml), Node.js/npm,
#                    python3-venv
#   Rust             the wasm32 target, cargo-leptos, wasm-bindgen-cli matching Cargo.lock
#   Python venv      SecantusDB (MongoDB wire protocol) in $TOOLS_DIR/venv, unless mongod exists
#   npm              ./node_modules (wasm-opt from binaryen; echarts + esbuild for
#                    public/echarts.js) and end2end/node_modules (Playwright)
# PERSONALIFY_SKIP_CARGO_TOOLS=1 skips cargo-leptos and wasm-bindgen-cli (slow builds).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUDO=()
((EUID == 0)) || SUDO=(sudo)

ok() { log "    ok: already installed ($*)"; }

# ---------------------------------------------------------------------------------------
# Debian packages

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# What is installed, for the "ok" line: the Debian version, else where the command is.
installed_version() {
  if have_pkg "$1"; then
    printf '%s %s' "$1" "$(dpkg-query -W -f='${Version}' "$1")"
  else
    printf '%s at %s' "$1" "$(command -v "${2:-$1}")"
  fi
}

# is_present PACKAGE: whether what we need from PACKAGE is on this machine.
is_present() {
  case $1 in
    postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
    postgresql-contrib) compgen -G '/usr/share/postgresql/*/extension/postgres_fdw.control' >/dev/null ;;
    nodejs) command -v node >/dev/null ;;
    # Debian splits `python3 -m venv` out of python3; not needed once the venv exists.
    python3-venv) [[ -x $VENV_DIR/bin/python ]] || have_pkg python3-venv ;;
    *) command -v "$1" >/dev/null ;; # redis-server, chromium, docker-compose, npm
  esac
}

apt_packages() {
  local pkgs=(postgresql postgresql-contrib redis-server chromium docker-compose nodejs npm)
  local missing=() pkg
  # The venv is only needed when there is no real mongod.
  command -v mongod >/dev/null || pkgs+=(python3-venv)
  for pkg in "${pkgs[@]}"; do
    if is_present "$pkg"; then
      case $pkg in
        postgresql-contrib) ok "postgres_fdw: $(compgen -G '/usr/share/postgresql/*/extension/postgres_fdw.control' | head -n 1)" ;;
        nodejs) ok "$(installed_version nodejs node), node $(node --version)" ;;
        npm) ok "npm $(npm --version)" ;;
        python3-venv)
          if have_pkg python3-venv; then
            ok "$(installed_version python3-venv)"
          else
            log "    ok: not needed, $VENV_DIR exists"
          fi
          ;;
        *) ok "$(installed_version "$pkg")" ;;
      esac
    else
      missing+=("$pkg")
    fi
  done
  ((${#missing[@]})) || return 0
  log "    installing: ${missing[*]}"
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ---------------------------------------------------------------------------------------
# Rust tools

require_cargo() {
  if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
    die "cargo and rustup are needed first: https://rustup.rs"
  fi
}

wasm_target() {
  require_cargo
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    ok "wasm32-unknown-unknown"
  else
    rustup target add wasm32-unknown-unknown
  fi
}

INCOMPLETE=()

# busy_installing CRATE: true (with a warning) when a `cargo install CRATE` already runs,
# e.g. from another terminal; a second one would build it all again side by side.
busy_installing() {
  local pids
  pids=$(pgrep -f "cargo install .*$1" | paste -sd ' ') || return 1
  warn "cargo install $1 is already running (pid $pids): not starting another; run setup again when it ends"
  INCOMPLETE+=("$1")
}

skip_cargo_tools() {
  if [[ ${PERSONALIFY_SKIP_CARGO_TOOLS:-} == 1 ]]; then
    log "    skipped: PERSONALIFY_SKIP_CARGO_TOOLS=1"
    return 0
  fi
  return 1
}

cargo_leptos() {
  local version
  skip_cargo_tools && return 0
  require_cargo
  if version=$(cargo leptos --version 2>/dev/null); then
    ok "$version"
    [[ $version == *" $CARGO_LEPTOS_VERSION" ]] ||
      warn "the toolchain is verified with cargo-leptos $CARGO_LEPTOS_VERSION"
    return 0
  fi
  busy_installing cargo-leptos && return 0
  log "    building cargo-leptos $CARGO_LEPTOS_VERSION from source: about 30 minutes on 2 cores"
  # --ignore-rust-version: with plain --locked a dependency asks for a newer rustc.
  cargo install --locked --ignore-rust-version "cargo-leptos@$CARGO_LEPTOS_VERSION"
}

# The wasm-bindgen version Cargo.lock resolved; the CLI must be exactly that version.
locked_wasm_bindgen() {
  awk '$1 == "name" && $3 == "\"wasm-bindgen\"" { found = 1; next }
       found && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock"
}

wasm_bindgen_cli() {
  local want have=
  skip_cargo_tools && return 0
  if [[ ! -f $ROOT/Cargo.lock ]]; then
    log "    skipped: no Cargo.lock yet (run again after the first cargo build)"
    return 0
  fi
  want=$(locked_wasm_bindgen)
  [[ -n $want ]] || die "no wasm-bindgen package in Cargo.lock"
  require_cargo
  have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
  if [[ $have == "$want" ]]; then
    ok "wasm-bindgen $have, as in Cargo.lock"
    return 0
  fi
  busy_installing wasm-bindgen-cli && return 0
  log "    installing wasm-bindgen-cli $want (Cargo.lock) over ${have:-nothing}: about 4 minutes"
  # Not --locked: the CLI's own lock file references an index entry that is missing.
  cargo install wasm-bindgen-cli --version "$want" --force
}

# ---------------------------------------------------------------------------------------
# Python venv with SecantusDB, shared by every clone (see TOOLS_DIR in lib.sh)

secantus_venv() {
  local have=
  if command -v mongod >/dev/null; then
    log "    skipped: mongod is on PATH ($(command -v mongod))"
    return 0
  fi
  if [[ -x $VENV_DIR/bin/pip ]]; then
    have=$("$VENV_DIR/bin/pip" show SecantusDB 2>/dev/null | awk '$1 == "Version:" { print $2 }') || true
  fi
  if [[ $have == "$SECANTUSDB_VERSION" ]]; then
    ok "SecantusDB $have in $VENV_DIR"
    return 0
  fi
  [[ -x $VENV_DIR/bin/python ]] || python3 -m venv "$VENV_DIR"
  "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "SecantusDB==$SECANTUSDB_VERSION"
}

# ---------------------------------------------------------------------------------------
# npm: `npm ci` when node_modules doesn't match package-lock.json (a stamp holds its hash)

# npm_deps DIR BIN: install DIR's npm packages unless done for this lock file and
# node_modules/.bin/BIN exists.
npm_deps() {
  local dir=$1 bin=$2 stamp=$1/node_modules/.personalify-stamp lock_hash
  if [[ ! -f $dir/package.json ]]; then
    log "    skipped: no ${dir#"$ROOT"/}/package.json yet"
    return 0
  fi
  if [[ ! -f $dir/package-lock.json ]]; then
    warn "no package-lock.json in $dir: running npm install, commit the lock file it writes"
    (cd "$dir" && npm install --no-audit --no-fund)
  else
    lock_hash=$(sha256sum "$dir/package-lock.json" | cut -d ' ' -f 1)
    if [[ -x $dir/node_modules/.bin/$bin && -f $stamp && $(<"$stamp") == "$lock_hash" ]]; then
      ok "${dir#"$ROOT"/}/node_modules matches package-lock.json"
      return 0
    fi
    # Browsers come from Debian (chromium); Playwright must not try to download any.
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
  sha256sum "$dir/package-lock.json" | cut -d ' ' -f 1 >"$stamp"
}

# The ECharts bundle the pages load (/echarts.js): built from the npm package by esbuild,
# again whenever its entry file or the lock file is newer than it.
echarts_bundle() {
  local out=$ROOT/public/echarts.js entry=$ROOT/scripts/echarts-entry.mjs
  if [[ -s $out && $out -nt $entry && $out -nt $ROOT/package-lock.json ]]; then
    ok "public/echarts.js is up to date"
    return 0
  fi
  (cd "$ROOT" && npm run --silent build:echarts)
  [[ -s $out ]] || die "npm run build:echarts did not write $out"
}

# ---------------------------------------------------------------------------------------

main() {
  local start
  start=$(_now_us)
  step "Debian packages" apt_packages
  step "Rust target wasm32-unknown-unknown" wasm_target
  step "cargo-leptos" cargo_leptos
  step "wasm-bindgen-cli" wasm_bindgen_cli
  step "Python venv with SecantusDB ($VENV_DIR)" secantus_venv
  step "npm packages (wasm-opt)" npm_deps "$ROOT" wasm-opt
  step "ECharts bundle (public/echarts.js)" echarts_bundle
  step "npm packages for end2end (Playwright)" npm_deps "$ROOT/end2end" playwright
  if ((${#INCOMPLETE[@]})); then
    die "setup incomplete after $(elapsed_since "$start"): ${INCOMPLETE[*]} still being installed elsewhere"
  fi
  log "setup finished in $(elapsed_since "$start")"
}

main "$@"
