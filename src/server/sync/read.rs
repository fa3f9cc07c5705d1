//! The dashboard's read path: Redis first; on a miss (or with Redis down) the record in
//! PostgreSQL, which then refills the cache. It never calls Spotify.

use super::records;
use crate::domain::{TimeRange, TopPayload};
use crate::server::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Database,
}

/// The user's payload for `range`, and where it came from; `None` if never synced.
pub async fn top_payload(
    state: &AppState,
    spotify_id: &str,
    range: TimeRange,
) -> Result<Option<(TopPayload, Source)>, sqlx::Error> {
    let cache = &state.stores.cache;
    let cache_up = match cache.get_top(spotify_id, range).await {
        Ok(Some(payload)) => return Ok(Some((payload, Source::Cache))),
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Redis unavailable: serving the dashboard from PostgreSQL");
            false
        }
    };
    let mut conn = state.stores.main.acquire().await?;
    let Some(payload) = records::read_payload(&mut conn, spotify_id, range).await? else {
        return Ok(None);
    };
    if cache_up {
        if let Err(e) = cache.set_top(&payload, state.config.cache_ttl).await {
            tracing::warn!(error = %e, "cannot refill the dashboard cache");
        }
    }
    Ok(Some((payload, Source::Database)))
}
