//! Recently-played ingest: each connected listener's `/v1/me/player/recently-played` is
//! polled every `PLAYS_POLL_SECS` with the `after` cursor kept per listener on `main`
//! (`play_cursors`). Spotify keeps the last 50 plays only, so the interval must be shorter
//! than 50 plays of listening (about two and a half hours); the default is five minutes.
//!
//! Exactly once: the plays go to the analytics node first, the cursor moves after. A
//! crash between the two makes the next poll fetch them again, and the node ignores what
//! it has (see [`super::store`]). With the analytics node down the poll goes on: the plays
//! wait on `main` (`play_stash`, in the transaction that moves the cursor) and are
//! delivered by [`deliver_stash`] when it is back — so an outage longer than 50 plays
//! loses none.

use super::{store_routed, Play, Source};
use crate::domain::names;
use crate::server::auth::tokens;
use crate::server::spotify::models::PlayHistory;
use crate::server::state::AppState;
use crate::server::sync::{SyncError, SyncUser};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Plays per request: Spotify's maximum.
const PAGE: u8 = 50;
/// Pages per poll: Spotify has 50 plays, so one page; more only if it ever keeps more.
const MAX_PAGES: usize = 10;
/// A store that does not answer in this long is treated as down.
const STORE_DEADLINE: Duration = Duration::from_secs(10);
/// Stashed batches delivered per call of [`deliver_stash`].
const STASH_BATCH: i64 = 50;
/// The longest a listener's polls are spaced after failures in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    /// Plays Spotify returned after the cursor.
    pub fetched: usize,
    /// Of them, new on the analytics node.
    pub stored: u64,
    /// Kept on `main` because the analytics node did not answer.
    pub stashed: usize,
}

/// The listener's plays after their cursor: fetched, stored (or stashed), cursor moved.
pub async fn poll_user(state: &AppState, user: &SyncUser) -> Result<Polled, SyncError> {
    let main = &state.stores.main;
    let (cipher, spotify) = (&state.auth.cipher, &state.auth.spotify);
    if let Some(sim) = &state.sim {
        crate::server::sync::run::resign_demo_listener(state, sim, user).await?;
    }
    let after: i64 = sqlx::query_scalar("SELECT after_ms FROM play_cursors WHERE user_id = $1")
        .bind(user.user_id)
        .fetch_optional(main)
        .await?
        .unwrap_or(0);

    let mut cursor = after;
    let mut fetched: Vec<PlayHistory> = Vec::new();
    for _ in 0..MAX_PAGES {
        state
            .budget
            .take(state, 1)
            .await
            .map_err(SyncError::BudgetSpent)?;
        let page = tokens::with_token(main, cipher, spotify, user.user_id, |t| {
            let spotify = spotify.clone();
            async move { spotify.recently_played(&t, PAGE, Some(cursor)).await }
        })
        .await?;
        let newest = page.items.iter().filter_map(played_at_ms).max();
        let more = page.next.is_some();
        fetched.extend(page.items);
        match newest {
            Some(newest) if newest > cursor => cursor = newest,
            _ => break,
        }
        if !more {
            break;
        }
    }
    let plays: Vec<Play> = fetched
        .iter()
        .filter(|p| played_at_ms(p).is_some_and(|t| t > after))
        .filter_map(to_play)
        .collect();
    let mut polled = Polled {
        fetched: plays.len(),
        ..Polled::default()
    };

    let stored = if plays.is_empty() {
        None
    } else {
        let attempt = store_routed(&state.stores, &user.spotify_id, &plays);
        match tokio::time::timeout(STORE_DEADLINE, attempt).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                tracing::warn!(spotify_id = %user.spotify_id, error = %e, "plays kept on main: the analytics node failed");
                None
            }
            Err(_) => {
                tracing::warn!(spotify_id = %user.spotify_id, "plays kept on main: the analytics node did not answer");
                None
            }
        }
    };
    let mut tx = main.begin().await?;
    match stored {
        Some(n) => polled.stored = n,
        None if plays.is_empty() => {}
        None => {
            let json =
                serde_json::to_string(&plays).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO play_stash (user_id, spotify_id, plays) VALUES ($1, $2, $3::jsonb)",
            )
            .bind(user.user_id)
            .bind(&user.spotify_id)
            .bind(json)
            .execute(&mut *tx)
            .await?;
            polled.stashed = plays.len();
        }
    }
    sqlx::query(
        "INSERT INTO play_cursors (user_id, after_ms, polled_at, failures, last_error)
         VALUES ($1, $2, now(), 0, NULL)
         ON CONFLICT (user_id) DO UPDATE
            SET after_ms = GREATEST(play_cursors.after_ms, EXCLUDED.after_ms),
                polled_at = now(), failures = 0, last_error = NULL",
    )
    .bind(user.user_id)
    .bind(cursor)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(polled)
}

fn played_at_ms(p: &PlayHistory) -> Option<i64> {
    DateTime::parse_from_rfc3339(&p.played_at)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Spotify's play as ours. Recently played says when, not how long: the track's length is
/// taken as listened (Spotify lists a play only after 30 s of it).
fn to_play(p: &PlayHistory) -> Option<Play> {
    let played_at = DateTime::parse_from_rfc3339(&p.played_at)
        .ok()?
        .with_timezone(&Utc);
    let artist = p.track.artists.first();
    // Names bounded and ids checked here, at the edge, as for an import.
    Some(Play {
        played_at,
        track_id: Some(p.track.id.clone()).filter(|id| names::is_spotify_id(id)),
        track_name: names::bounded_name(p.track.name.clone()),
        artist_name: artist
            .map(|a| names::bounded_name(a.name.clone()))
            .unwrap_or_default(),
        artist_id: artist
            .map(|a| a.id.clone())
            .filter(|id| names::is_spotify_id(id)),
        album_name: p
            .track
            .album
            .as_ref()
            .and_then(|a| names::bounded_optional(Some(a.name.clone()))),
        ms_played: p
            .track
            .duration_ms
            .and_then(|d| i32::try_from(d).ok())
            .unwrap_or(0),
        source: Source::Recent,
    })
}

/// Move plays kept on `main` during an analytics outage to their nodes, oldest first; each
/// batch is deleted once stored (stored twice after a crash between: harmless). Returns
/// how many batches were delivered. A listener whose node fails is skipped with the rest
/// of their batches (kept in order), and the others go on.
pub async fn deliver_stash(state: &AppState) -> Result<usize, sqlx::Error> {
    let main = &state.stores.main;
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, spotify_id, plays::text FROM play_stash ORDER BY id LIMIT $1")
            .bind(STASH_BATCH)
            .fetch_all(main)
            .await?;
    let mut delivered = 0;
    let mut waiting: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (id, spotify_id, json) in rows {
        if waiting.contains(&spotify_id) {
            continue;
        }
        match serde_json::from_str::<Vec<Play>>(&json) {
            Ok(plays) => {
                // A node that was down leaves broken connections in the pool, as many as
                // it held; each fails the one query that finds it. Try until a live one
                // answers, within the deadline.
                let attempt = crate::server::retry::until_live(
                    STORE_DEADLINE,
                    super::RoutedError::is_disconnect,
                    || store_routed(&state.stores, &spotify_id, &plays),
                );
                let stored = match tokio::time::timeout(STORE_DEADLINE, attempt).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "a stashed batch of plays waits for its node");
                        false
                    }
                    Err(_) => false,
                };
                if !stored {
                    waiting.insert(spotify_id);
                    continue;
                }
            }
            // Written by this module from the same type: only a bug gets here. Keep the
            // row for a person; the rows behind it go on.
            Err(e) => {
                tracing::error!(id, error = %e, "a stashed batch of plays does not decode; left in play_stash");
                continue;
            }
        }
        sqlx::query("DELETE FROM play_stash WHERE id = $1")
            .bind(id)
            .execute(main)
            .await?;
        delivered += 1;
    }
    Ok(delivered)
}

/// Listeners whose next poll is due: connected, and polled longer ago than the interval
/// (× 2^failures after failed polls in a row, at most [`MAX_BACKOFF`]).
pub async fn due(state: &AppState) -> Result<Vec<SyncUser>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT u.id, u.spotify_id
           FROM users u
           JOIN spotify_tokens t ON t.user_id = u.id AND NOT t.needs_relogin
           LEFT JOIN play_cursors c ON c.user_id = u.id
          WHERE c.user_id IS NULL
             OR c.polled_at + make_interval(secs =>
                    least($2, $1 * power(2, least(c.failures, 20)))) <= now()
          ORDER BY c.polled_at NULLS FIRST, u.id",
    )
    .bind(state.config.plays_poll_every.as_secs_f64())
    .bind(MAX_BACKOFF.as_secs_f64())
    .fetch_all(&state.stores.main)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, spotify_id)| SyncUser {
            user_id,
            spotify_id,
        })
        .collect())
}

/// A failed poll: counted (the next waits longer) with its reason for a person.
async fn record_failure(state: &AppState, user: &SyncUser, err: &SyncError) {
    let reason: String = err.to_string().chars().take(200).collect();
    let recorded = sqlx::query(
        "INSERT INTO play_cursors (user_id, polled_at, failures, last_error)
         VALUES ($1, now(), 1, $2)
         ON CONFLICT (user_id) DO UPDATE
            SET polled_at = now(), failures = play_cursors.failures + 1, last_error = $2",
    )
    .bind(user.user_id)
    .bind(reason)
    .execute(&state.stores.main)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "cannot record a failed poll");
    }
}

/// One poll right after a sync, bounded; its failure only logged (the poller tries again).
pub async fn poll_after_sync(state: &AppState, user: &SyncUser) {
    match tokio::time::timeout(poll_deadline(state), poll_user(state, user)).await {
        Ok(Ok(polled)) => {
            tracing::debug!(spotify_id = %user.spotify_id, ?polled, "recently played polled after a sync")
        }
        Ok(Err(e)) => {
            tracing::debug!(spotify_id = %user.spotify_id, error = %e, "recently played not polled after a sync")
        }
        Err(_) => {
            tracing::debug!(spotify_id = %user.spotify_id, "recently played poll after a sync timed out")
        }
    }
}

/// A poll's bound: a few Spotify calls (each bounded, retried) and two store writes.
fn poll_deadline(state: &AppState) -> Duration {
    state.config.spotify_timeout * 3 + STORE_DEADLINE * 2
}

/// The poller's loop, for a supervisor to run: deliver what waits on `main`, then poll
/// every listener who is due, one at a time. Off when `PLAYS_POLL_SECS` is 0.
pub async fn run_poller(state: AppState) {
    let every = state.config.plays_poll_every;
    if every.is_zero() {
        return std::future::pending().await;
    }
    // Look often enough that a listener is polled close to their interval.
    let tick = (every / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticks = tokio::time::interval(tick);
    ticks.tick().await; // the first tick is immediate: let start-up finish first
    loop {
        ticks.tick().await;
        match deliver_stash(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                batches = n,
                "plays kept on main delivered to the analytics node"
            ),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::debug!(error = %e, "plays kept on main wait for the analytics node"),
        }
        let users = match due(&state).await {
            Ok(users) => users,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the plays poller cannot list listeners");
                continue;
            }
        };
        for user in users {
            let poll = tokio::time::timeout(poll_deadline(&state), poll_user(&state, &user));
            match poll.await {
                Ok(Ok(polled)) => {
                    if polled.fetched > 0 {
                        tracing::debug!(spotify_id = %user.spotify_id, ?polled, "recently played polled");
                    }
                }
                Ok(Err(e @ SyncError::BudgetSpent(_))) => {
                    tracing::info!(error = %e, "the plays poller pauses until its next round");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(spotify_id = %user.spotify_id, error = %e, "recently played poll failed");
                    record_failure(&state, &user, &e).await;
                }
                Err(_) => {
                    let e = SyncError::Spotify("the poll took too long and was stopped".into());
                    tracing::warn!(spotify_id = %user.spotify_id, "recently played poll did not end by its deadline");
                    record_failure(&state, &user, &e).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recently_played_play_is_checked_at_the_edge() {
        let json = format!(
            r#"{{"played_at":"2026-11-21T10:15:00.000Z","track":{{"id":"{}","name":"{}",
                "artists":[{{"id":"short","name":"Band\u0000"}}],"album":{{"id":"a","name":" "}},
                "duration_ms":200000}}}}"#,
            "t".repeat(5_000),
            "n".repeat(600)
        );
        let history: PlayHistory = serde_json::from_str(&json).unwrap();
        let play = to_play(&history).unwrap();
        assert_eq!(play.track_id, None, "keyed by its names");
        assert_eq!(play.track_name.chars().count(), 512);
        assert_eq!(play.artist_name, "Band");
        assert_eq!(play.artist_id, None);
        assert_eq!(play.album_name, None);
    }
}
