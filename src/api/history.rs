//! How the signed-in person's top lists moved between syncs, from the MongoDB history.
//! Like every server function, it reads the user from the session and never takes an id.

use super::ApiError;
use crate::domain::history::HistoryView;
use crate::domain::TimeRange;
use leptos::prelude::*;

/// The latest `limit` syncs (default 10, 2 to 50) of `range`: the latest against the one
/// before, and rank over time of the top 10. `None` when nobody is signed in.
#[server(prefix = "/api", endpoint = "history")]
pub async fn get_history(
    range: TimeRange,
    limit: Option<u32>,
) -> Result<Option<HistoryView>, ApiError> {
    use crate::server::sync::history::{self, HistoryError};
    let state = super::ctx::state()?;
    let Some(user) = super::ctx::session_user(&state).await? else {
        return Ok(None);
    };
    history::load_view(
        &state.stores,
        state.config.cache_ttl,
        user.user_id,
        &user.spotify_id,
        range,
        history::snapshot_limit(limit),
    )
    .await
    .map(|view| {
        if let Some(sync_id) = view.sync_id {
            super::ctx::shown_sync(sync_id);
        }
        Some(view)
    })
    .map_err(|err| match err {
        HistoryError::Database(e) => super::ctx::store_down(e),
        // History is an extra: when MongoDB is away the dashboard (PostgreSQL, Redis) still works.
        HistoryError::History(e) => {
            tracing::warn!(error = %e, "cannot read the sync history from MongoDB");
            ApiError::Unavailable(
                "Sync history is unavailable right now; your top lists still work.".into(),
            )
        }
    })
}
