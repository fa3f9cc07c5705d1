//! What every handler and server function can reach.

use super::auth::session::SessionCache;
use super::auth::Auth;
use super::config::Config;
use super::page_cache::PageCache;
use super::sim::Simulator;
use super::store::Stores;
use super::sync::outbox;
use super::sync::Syncs;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

/// The application's state, shared: cloned for every request and server function, so a
/// clone is one reference count, not a copy of every handle.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub stores: Stores,
    pub auth: Auth,
    /// The in-process Spotify simulator, in demo mode.
    pub sim: Option<Simulator>,
    /// Syncs running in this process.
    pub syncs: Syncs,
    /// Sessions looked up in the last seconds (`SESSION_CACHE_SECS`).
    pub sessions: SessionCache,
    /// Rendered pages kept per sync (`PAGE_CACHE_MB`).
    pub pages: PageCache,
    /// Wakes the outbox worker after a sync enqueued its history.
    pub outbox: outbox::Wake,
    /// Spotify calls per minute for the whole instance (`SPOTIFY_CALLS_PER_MINUTE`).
    pub budget: super::sync::fair::Budget,
    /// Per-client limits on sign-in starts and `/readyz`.
    pub limiter: super::rate_limit::RateLimiter,
    /// Supervised background tasks (started by `startup::run`).
    pub tasks: super::tasks::Tasks,
    /// Time zone changes: how often, how many at once.
    pub zone_changes: super::time_zone::Gate,
    /// The Distributed page's instance-wide query: kept a minute, one run at a time.
    pub instance_runs: super::distributed::InstanceRuns,
    /// Import jobs running in this process (to cancel, and to run each once).
    pub imports: super::plays::import::Jobs,
    /// Uploads under way (`IMPORT_MAX_UPLOADS`, one per person).
    pub uploads: super::imports::Uploads,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
