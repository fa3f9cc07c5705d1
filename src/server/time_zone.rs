//! `POST /listening/time-zone` (form field `time_zone`, an IANA name such as
//! `Europe/Berlin`): the signed-in listener's days and hours are counted in it from now
//! on, and their past plays are recounted in it (`set_listener_zone` on the analytics
//! node, one transaction). A form post is answered with a redirect to `/listening`; a
//! script asking for JSON (`public/enhance.js`, which saves the browser's zone while none
//! was chosen) gets `{"time_zone": …}` or `{"error": …}`.

use super::reply::Reply;
use super::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use std::time::Duration;

/// Recounting a heavy listener's plays takes well under a second; past this the node is
/// taken to be stalled (the change rolls back: it is one statement).
pub const DEADLINE: Duration = Duration::from_secs(15);
/// Zone changes running at once in this process: each recounts a listener's plays on
/// their node, and holds one of main's connections while it does.
pub const AT_ONCE: usize = 2;
/// One listener's zone changes (those made; a refused name does not count) within
/// [`WINDOW`]: each recounts every play of theirs.
pub const PER_WINDOW: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a change waits for its turn before it is turned away as busy.
const TURN_WAIT: Duration = Duration::from_secs(5);
/// Listeners remembered at most (past it, those with no change in the window go).
const REMEMBERED: usize = 10_000;

/// Who may change their zone now: [`PER_WINDOW`] changes per listener per [`WINDOW`], one
/// at a time per listener, [`AT_ONCE`] in all, so many changes at once cost other
/// listeners' pages nothing (a change never waits holding main's connections, and only
/// [`AT_ONCE`] of them run).
pub struct Gate {
    turns: tokio::sync::Semaphore,
    listeners: std::sync::Mutex<std::collections::HashMap<String, Changes>>,
}

/// One listener's changes: whether one runs, and when those in the window were made.
#[derive(Default)]
struct Changes {
    running: bool,
    made: std::collections::VecDeque<std::time::Instant>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            turns: tokio::sync::Semaphore::new(AT_ONCE),
            listeners: Default::default(),
        }
    }
}

/// A listener's turn to change their zone; [`Turn::made`] once the change is stored.
struct Turn<'a> {
    gate: &'a Gate,
    spotify_id: String,
    made: bool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Turn<'_> {
    fn made(&mut self) {
        self.made = true;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut listeners = self.gate.lock();
        let changes = listeners.entry(self.spotify_id.clone()).or_default();
        changes.running = false;
        if self.made {
            changes.made.push_back(std::time::Instant::now());
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Changes>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A turn for `spotify_id`, or why not.
    async fn enter(&self, spotify_id: &str) -> Result<Turn<'_>, ZoneError> {
        {
            let now = std::time::Instant::now();
            let mut listeners = self.lock();
            if listeners.len() >= REMEMBERED {
                listeners.retain(|_, c| {
                    c.running
                        || c.made
                            .back()
                            .is_some_and(|at| now.duration_since(*at) < WINDOW)
                });
            }
            let changes = listeners.entry(spotify_id.to_string()).or_default();
            while changes
                .made
                .front()
                .is_some_and(|at| now.duration_since(*at) >= WINDOW)
            {
                changes.made.pop_front();
            }
            if changes.running {
                return Err(ZoneError::Running);
            }
            if changes.made.len() >= PER_WINDOW {
                let oldest = changes.made.front().copied().unwrap_or(now);
                let left = WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(ZoneError::TooSoon(left.as_secs().max(1)));
            }
            changes.running = true;
        }
        match tokio::time::timeout(TURN_WAIT, self.turns.acquire()).await {
            Ok(Ok(permit)) => Ok(Turn {
                gate: self,
                spotify_id: spotify_id.to_string(),
                made: false,
                _permit: permit,
            }),
            _ => {
                if let Some(changes) = self.lock().get_mut(spotify_id) {
                    changes.running = false;
                }
                Err(ZoneError::Busy)
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/listening/time-zone", post(change))
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error(
        "“{0}” is not a time zone name. Use a name like Europe/Berlin, America/New_York or UTC."
    )]
    Malformed(String),
    #[error(
        "“{0}” is not a time zone this server knows. Use a name like Europe/Berlin, \
         America/New_York or UTC."
    )]
    Unknown(String),
    #[error(
        "Personalify's analytics node is not answering, so your time zone cannot be changed \
         right now. Try again in a minute."
    )]
    Unavailable,
    #[error("You changed your time zone several times in the last minute. Try again in {0} s.")]
    TooSoon(u64),
    #[error("A change of your time zone is being made right now. Try again in a moment.")]
    Running,
    #[error("Many time zones are being changed right now. Try again in a minute.")]
    Busy,
}

/// A zone name's shape (what IANA names are made of), before the database is asked.
fn well_formed(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() <= 64
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
}

/// Set `spotify_id`'s zone to `zone` on the analytics node and recount their days and
/// hours in it. Returns the hours with plays it now holds for them.
pub async fn set<'c>(
    analytics: impl sqlx::PgExecutor<'c>,
    spotify_id: &str,
    zone: &str,
) -> Result<i64, ZoneError> {
    let zone = zone.trim();
    if !well_formed(zone) {
        return Err(ZoneError::Malformed(zone.chars().take(64).collect()));
    }
    let call = sqlx::query_scalar::<_, i64>("SELECT set_listener_zone($1, $2)")
        .bind(spotify_id)
        .bind(zone)
        .fetch_one(analytics);
    match tokio::time::timeout(DEADLINE, call).await {
        Ok(Ok(hours)) => {
            tracing::info!(
                time_zone = zone,
                hours,
                "a listener's time zone was changed"
            );
            Ok(hours)
        }
        Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("22023") => {
            Err(ZoneError::Unknown(zone.to_string()))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot change a listener's time zone");
            Err(ZoneError::Unavailable)
        }
        Err(_) => Err(ZoneError::Unavailable),
    }
}

/// [`set`] on the listener's node, held against a move of their partition; [`PER_WINDOW`]
/// changes per listener per [`WINDOW`], [`AT_ONCE`] at a time. The node's lock on the listener's zone
/// (writers hold it while their plays are counted) is waited for first, holding nothing on
/// main; main's hold on the partition is taken only then, for the recount itself.
pub async fn set_routed(state: &AppState, spotify_id: &str, zone: &str) -> Result<i64, ZoneError> {
    if !well_formed(zone.trim()) {
        return Err(ZoneError::Malformed(zone.trim().chars().take(64).collect()));
    }
    let mut turn = state.zone_changes.enter(spotify_id).await?;
    let result = match tokio::time::timeout(
        DEADLINE,
        recount_routed(state, spotify_id, zone.trim()),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(ZoneError::Unavailable),
    };
    if result.is_ok() {
        turn.made();
    }
    result
}

async fn recount_routed(state: &AppState, spotify_id: &str, zone: &str) -> Result<i64, ZoneError> {
    let stores = &state.stores;
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "cannot change a listener's time zone");
        ZoneError::Unavailable
    };
    loop {
        let node = crate::server::shards::node_of(&stores.analytics, &stores.main, spotify_id)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut on_node = node.pool.begin().await.map_err(|e| unavailable(&e))?;
        sqlx::query(
            "SELECT set_config('lock_timeout', '10s', true),
                    pg_advisory_xact_lock(hashtextextended('plays-zone:' || $1, 0))",
        )
        .bind(spotify_id)
        .execute(&mut *on_node)
        .await
        .map_err(|e| unavailable(&e))?;
        let shard = stores
            .analytics
            .shard(&stores.main, spotify_id)
            .await
            .map_err(|e| unavailable(&e))?;
        if shard.node != node.name {
            // Moved meanwhile: again, on the node it is on now.
            shard.release().await;
            continue;
        }
        let result = set(&mut *on_node, spotify_id, zone).await;
        if result.is_ok() {
            on_node.commit().await.map_err(|e| unavailable(&e))?;
        }
        shard.release().await;
        return result;
    }
}

#[derive(Debug, Deserialize)]
struct ZoneForm {
    time_zone: String,
}

async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ZoneForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let reply = Reply::to(&headers);
    let user = match reply
        .user(&state, &headers, "Sign in to choose your time zone.")
        .await
    {
        Ok(user) => user,
        Err(response) => return response,
    };
    let Ok(Form(form)) = form else {
        return reply.error(
            StatusCode::BAD_REQUEST,
            "Send the time zone as a form field named time_zone.",
        );
    };
    match set_routed(&state, &user.spotify_id, &form.time_zone).await {
        Ok(_) if reply.json => {
            Json(serde_json::json!({ "time_zone": form.time_zone.trim() })).into_response()
        }
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/listening")]).into_response(),
        Err(e @ (ZoneError::Malformed(_) | ZoneError::Unknown(_))) => {
            reply.error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ (ZoneError::TooSoon(_) | ZoneError::Running)) => {
            reply.error(StatusCode::TOO_MANY_REQUESTS, e.to_string())
        }
        Err(e @ (ZoneError::Unavailable | ZoneError::Busy)) => {
            reply.error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn zone_names_are_checked_for_shape_first() {
        for ok in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(well_formed(ok), "{ok}");
        }
        for bad in [
            "",
            "Europe/Berlin; DROP TABLE plays",
            "../etc",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
