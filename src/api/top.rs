//! The dashboard's data and the "Sync now" action, for the session's user only.

use super::ApiError;
use crate::domain::dashboard::DashboardLists;
use crate::domain::SyncProgress;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The dashboard's data for one range: exactly what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopView {
    /// `None`: no sync has finished yet (one is started, see `sync`).
    pub lists: Option<DashboardLists>,
    /// The running sync, if any.
    pub sync: Option<SyncProgress>,
    /// A sync has finished for this user before: with no lists, Spotify has none for
    /// them (a new account), which is not "your first sync is on its way".
    pub ever_synced: bool,
    /// When "Sync now" is allowed again (Unix seconds; `None`: now). Derived from the last
    /// sync, so a page kept for that sync stays right; the browser counts down to it.
    pub next_sync_at: Option<i64>,
    /// `SYNC_COOLDOWN_SECS`, for the countdown after a sync started from the page.
    pub cooldown_secs: u32,
}

/// `range` is Spotify's spelling (`short_term`, ...); anything else is a 400. One session
/// check and one read (Redis, else PostgreSQL): the hot path touches no other store.
#[server(prefix = "/api", endpoint = "top")]
pub async fn get_top(range: String) -> Result<TopView, ApiError> {
    use crate::server::sync::{fair, read, SyncUser, Trigger};
    let range: crate::domain::TimeRange =
        range
            .parse()
            .map_err(|e: crate::domain::UnknownTimeRange| {
                super::ctx::set_status(axum::http::StatusCode::BAD_REQUEST);
                ApiError::BadRequest(e.to_string())
            })?;
    let state = super::ctx::state()?;
    let user = super::ctx::require_user(&state).await?;
    let payload = read::top_payload(&state, &user.spotify_id, range)
        .await
        .map_err(super::ctx::store_down)?
        .map(|(payload, _)| payload);
    let mut sync = state.syncs.progress(user.user_id).await;
    let ever_synced = match payload {
        Some(_) => true,
        None => fair::ever_synced(&state, user.user_id)
            .await
            .map_err(super::ctx::store_down)?,
    };
    // Never synced: start one now (the page shows its progress), unless one was tried
    // lately: a page view must not start a sync each time it is loaded.
    if payload.is_none()
        && !ever_synced
        && sync.is_none()
        && !user.needs_relogin
        && !fair::tried_lately(&state, user.user_id)
            .await
            .map_err(super::ctx::store_down)?
    {
        let sync_user = SyncUser {
            user_id: user.user_id,
            spotify_id: user.spotify_id.clone(),
        };
        match state
            .syncs
            .start(&state, sync_user, Trigger::FirstVisit)
            .await
        {
            Ok(started) => sync = Some(started.progress.borrow().clone()),
            Err(e) => tracing::warn!(error = %e, "first sync not started"),
        }
    }
    // When "Sync now" comes back: from the shown lists' sync when there are lists (the
    // latest sync that did not fail; no query on the dashboard's hot path), else asked.
    let cooldown = state.config.sync_cooldown;
    let next_sync_at = match &payload {
        _ if cooldown.is_zero() => None,
        Some(p) => chrono::DateTime::parse_from_rfc3339(&p.synced_at)
            .ok()
            .map(|at| at.timestamp() + cooldown.as_secs() as i64)
            .filter(|&at| at > chrono::Utc::now().timestamp()),
        None => next_sync_at(
            fair::cooldown_remaining(&state, user.user_id)
                .await
                .map_err(super::ctx::store_down)?,
        ),
    };
    if let (Some(payload), None) = (&payload, &sync) {
        super::ctx::shown_sync(payload.sync_id);
    }
    Ok(TopView {
        lists: payload.as_ref().map(DashboardLists::from_payload),
        sync,
        ever_synced,
        next_sync_at,
        cooldown_secs: state.config.sync_cooldown.as_secs() as u32,
    })
}

/// The Unix second a cooldown of `remaining` ends, rounded up; `None` if it has ended.
#[cfg(feature = "ssr")]
fn next_sync_at(remaining: std::time::Duration) -> Option<i64> {
    if remaining.is_zero() {
        return None;
    }
    let end = std::time::SystemTime::now() + remaining;
    let secs = end.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(secs.as_secs() as i64 + i64::from(secs.subsec_nanos() > 0))
}

/// "4 min" / "45 s": how long until a cooldown ends, for the sync button and messages.
pub fn wait_in_words(secs: u64) -> String {
    if secs > 60 {
        format!("{} min", secs.div_ceil(60))
    } else {
        format!("{} s", secs.max(1))
    }
}

/// Start a sync now, or join the one running. Returns its progress. Refused (429, with
/// when to try again) within `SYNC_COOLDOWN_SECS` of the last sync, or when the instance has
/// spent this minute's Spotify budget.
#[server(prefix = "/api", endpoint = "sync")]
pub async fn start_sync() -> Result<SyncProgress, ApiError> {
    use crate::server::sync::{fair, SyncError, SyncUser, Trigger};
    let state = super::ctx::state()?;
    let user = super::ctx::require_user(&state).await?;
    if user.needs_relogin {
        return Err(ApiError::NeedsRelogin);
    }
    let running = state
        .syncs
        .progress(user.user_id)
        .await
        .is_some_and(|p| p.status == crate::domain::SyncStatus::Running);
    if !running {
        let remaining = fair::cooldown_remaining(&state, user.user_id)
            .await
            .map_err(super::ctx::store_down)?;
        if !remaining.is_zero() {
            return Err(super::ctx::too_soon(
                format!(
                    "You synced a moment ago. You can sync again in {}.",
                    wait_in_words(remaining.as_secs_f64().ceil() as u64)
                ),
                remaining,
            ));
        }
    }
    let sync_user = SyncUser {
        user_id: user.user_id,
        spotify_id: user.spotify_id,
    };
    match state.syncs.start(&state, sync_user, Trigger::Manual).await {
        Ok(started) => Ok(started.progress.borrow().clone()),
        Err(SyncError::RunningElsewhere) => Err(ApiError::Conflict(
            "A sync for your account is already running. Its results appear when it finishes."
                .into(),
        )),
        Err(err @ SyncError::BudgetSpent(wait)) => {
            Err(super::ctx::too_soon(format!("{err}."), wait))
        }
        Err(e) => Err(super::ctx::store_down(e)),
    }
}

/// The running sync's progress, else the outcome of the last one.
#[server(prefix = "/api", endpoint = "sync_status")]
pub async fn get_sync_status() -> Result<Option<SyncProgress>, ApiError> {
    use crate::domain::SyncStatus;
    use crate::server::sync::records::format_time;
    let state = super::ctx::state()?;
    let user = super::ctx::require_user(&state).await?;
    if let Some(progress) = state.syncs.progress(user.user_id).await {
        return Ok(Some(progress));
    }
    type Row = (
        i64,
        String,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<String>,
        Option<i32>,
        Option<i32>,
    );
    let last: Option<Row> = sqlx::query_as(
        "SELECT id, status, started_at, finished_at, error, artists_count, tracks_count
           FROM sync_runs WHERE user_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(user.user_id)
    .fetch_optional(&state.stores.main)
    .await
    .map_err(super::ctx::store_down)?;
    Ok(last.map(
        |(run_id, status, started, finished, error, artists, tracks)| {
            let status = match status.as_str() {
                "succeeded" => SyncStatus::Succeeded,
                "failed" => SyncStatus::Failed,
                _ => SyncStatus::Running,
            };
            SyncProgress {
                run_id,
                status,
                done_steps: if status == SyncStatus::Succeeded {
                    7
                } else {
                    0
                },
                total_steps: 7,
                current: None,
                started_at: format_time(started),
                finished_at: finished.map(format_time),
                error,
                artists: artists.map(|n| n as u32),
                tracks: tracks.map(|n| n as u32),
            }
        },
    ))
}
