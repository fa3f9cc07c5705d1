//! How the signed-in person's top lists moved between syncs, from the MongoDB history.
//! Like every server function, it reads the user from the session and never takes an id.

use super::ApiError;
use crate::domain::history::HistoryView;
use crate::domain::{ChartSpec, TimeRange};
use leptos::prelude::*;

/// The latest `limit` syncs (default 10, 2 to 50) of `range`: the latest against the one
/// before, and rank over time of the top 10. `None` when nobody is signed in.
#[server(prefix = "/api", endpoint = "history")]
pub async fn get_history(
    range: TimeRange,
    limit: Option<u32>,
) -> Result<Option<HistoryView>, ApiError> {
    use crate::server::sync::history;
    let state = super::ctx::state()?;
    let user = super::ctx::session_user(&state).await?;
    let Some(user) = user else {
        return Ok(None);
    };
    // History is an extra: when MongoDB is away the dashboard (PostgreSQL, Redis) still works.
    history::load_view(
        &state.stores.mongo,
        &user.spotify_id,
        range,
        history::snapshot_limit(limit),
    )
    .await
    .map(Some)
    .map_err(|err| {
        tracing::warn!(error = %err, "cannot read the sync history from MongoDB");
        ApiError::Unavailable(
            "Sync history is unavailable right now; your top lists still work.".into(),
        )
    })
}

/// The history page: [`get_history`] for the latest 10 syncs, plus its two rank charts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryPage {
    pub view: HistoryView,
    pub artists_chart: Option<ChartSpec>,
    pub tracks_chart: Option<ChartSpec>,
}

#[server(prefix = "/api", endpoint = "history_page")]
pub async fn get_history_page(range: TimeRange) -> Result<Option<HistoryPage>, ApiError> {
    use crate::server::charts::rank_chart;
    let Some(view) = get_history(range, Some(10)).await? else {
        return Ok(None);
    };
    let history = &view.history;
    Ok(Some(HistoryPage {
        artists_chart: rank_chart("artist", &history.synced_at, &history.artists),
        tracks_chart: rank_chart("track", &history.synced_at, &history.tracks),
        view,
    }))
}
