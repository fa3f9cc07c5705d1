//! What every handler and server function can reach.

use super::auth::Auth;
use super::config::Config;
use super::sim::Simulator;
use super::store::Stores;
use super::sync::Syncs;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub stores: Stores,
    pub auth: Auth,
    /// The in-process Spotify simulator, in demo mode.
    pub sim: Option<Simulator>,
    /// Syncs running in this process.
    pub syncs: Syncs,
}
