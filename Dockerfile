# Personalify: server binary + hydrated site, built by cargo-leptos, run on a slim Debian.
#   docker build -t personalify .        (or: docker compose up --build)

# ---- build --------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# Node/npm to install binaryen's wasm-opt from npm and to bundle ECharts (Debian's binaryen is too old:
# its output makes Chromium reject the WASM).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*

RUN rustup target add wasm32-unknown-unknown

# Tools first, in their own layers: they change far less often than the code.
# --ignore-rust-version: with plain --locked a dependency asks for a newer rustc.
RUN cargo install --locked --ignore-rust-version cargo-leptos@0.3.11

WORKDIR /app

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
# Not --locked: the CLI's own lock file references an index entry that is missing.
COPY Cargo.lock ./
RUN version=$(awk '$1 == "name" && $3 == "\"wasm-bindgen\"" { found = 1; next } \
                   found && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.lock) \
 && test -n "$version" \
 && cargo install wasm-bindgen-cli --version "$version"

# cargo-leptos puts ./node_modules/.bin (wasm-opt) first on PATH.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY . .
# public/echarts.js: the ECharts parts the charts use, bundled from the npm package.
RUN npm run --silent build:echarts \
 && cargo leptos build --release --precompress --split

# ---- run ----------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates for Spotify over TLS; curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin personalify \
 && mkdir -p /var/lib/personalify/imports \
 && chown personalify:personalify /var/lib/personalify/imports

WORKDIR /app
# Migrations are embedded in the binary; the site holds the WASM, JS and CSS.
COPY --from=builder /app/target/release/personalify /app/personalify
COPY --from=builder /app/target/site /app/site

ENV LEPTOS_OUTPUT_NAME=personalify \
    LEPTOS_SITE_ROOT=site \
    LEPTOS_SITE_PKG_DIR=pkg \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    RUST_LOG=info

USER personalify
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:3000/healthz || exit 1
CMD ["/app/personalify"]
