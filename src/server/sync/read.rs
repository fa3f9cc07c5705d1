//! The dashboard's read path: Redis first; on a miss (or with Redis down) the payload the
//! last sync stored in PostgreSQL, which then refills the cache. One read either way: the
//! payload holds everything the dashboard shows, movement included, so the page needs no
//! other store (MongoDB's history is for the history page). It never calls Spotify.

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
    let payload = match records::stored_payload(&mut conn, spotify_id, range).await? {
        Some(json) => match serde_json::from_str::<TopPayload>(&json) {
            Ok(payload) => Some((payload, json)),
            Err(e) => {
                // Only a change of the payload's shape gets here; the next sync rewrites it.
                tracing::error!(error = %e, "stored dashboard payload cannot be read; rebuilding it");
                None
            }
        },
        None => None,
    };
    let (payload, json) = match payload {
        Some(found) => found,
        // Lists synced before payloads were stored (or one that no longer parses): rebuilt
        // from the record, without movement, until the next sync stores a payload.
        None => match records::read_payload(&mut conn, spotify_id, range).await? {
            Some(payload) => {
                let json = serde_json::to_string(&payload)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                (payload, json)
            }
            None => return Ok(None),
        },
    };
    drop(conn);
    if cache_up {
        if let Err(e) = cache
            .set_top_json(spotify_id, range, &json, state.config.cache_ttl)
            .await
        {
            tracing::warn!(error = %e, "cannot refill the dashboard cache");
        }
    }
    Ok(Some((payload, Source::Database)))
}
