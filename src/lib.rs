//! Personalify: a self-hosted Spotify analytics dashboard.
//!
//! One crate, two targets (see docs/ARCHITECTURE.md): the `ssr` feature builds the server
//! binary, the `hydrate` feature builds the WASM that makes the server-rendered pages
//! interactive. `app`, `api` and `domain` compile for both; `server` only with `ssr`.

pub mod api;
pub mod app;
pub mod domain;

#[cfg(feature = "ssr")]
pub mod server;

/// Entry point of the WASM bundle: attach to the server-rendered DOM. `hydrate_lazy`: the
/// history and artist pages are lazy routes, whose code is loaded before they hydrate.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_lazy(app::App);
}
