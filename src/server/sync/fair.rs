//! Fair use of Spotify, whose rate limit is per app (one limit for every user of an
//! instance): a cooldown between a user's syncs, and a budget of Spotify calls per minute
//! shared by every user, the scheduler and every server process.

use crate::server::state::AppState;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Web API requests one sync makes: six lists of up to 99 entries, two pages each.
pub const CALLS_PER_SYNC: u32 = 12;
const WINDOW: Duration = Duration::from_secs(60);

/// How long until `user_id` may start another sync by hand: `SYNC_COOLDOWN_SECS` after the
/// start of their last sync that did not fail (a failed one may be retried at once; the
/// budget below keeps retries in bounds). Zero when they may.
pub async fn cooldown_remaining(state: &AppState, user_id: i64) -> Result<Duration, sqlx::Error> {
    let cooldown = state.config.sync_cooldown;
    if cooldown.is_zero() {
        return Ok(Duration::ZERO);
    }
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(started_at) + make_interval(secs => $2) - now())::float8
           FROM sync_runs WHERE user_id = $1 AND status <> 'failed'",
    )
    .bind(user_id)
    .bind(cooldown.as_secs_f64())
    .fetch_one(&state.stores.main)
    .await?;
    Ok(Duration::from_secs_f64(secs.unwrap_or(0.0).clamp(0.0, 86_400.0)).min(cooldown))
}

/// Whether `user_id` has ever finished a sync (an empty list then means Spotify has none).
pub async fn ever_synced(state: &AppState, user_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sync_runs WHERE user_id = $1 AND status = 'succeeded')",
    )
    .bind(user_id)
    .fetch_one(&state.stores.main)
    .await
}

/// Whether a sync started automatically (first visit) was already tried lately, whatever
/// its outcome: a page view must not start a sync every time it is loaded.
pub async fn tried_lately(state: &AppState, user_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sync_runs
                         WHERE user_id = $1 AND started_at > now() - make_interval(secs => $2))",
    )
    .bind(user_id)
    .bind(
        state
            .config
            .sync_cooldown
            .max(Duration::from_secs(60))
            .as_secs_f64(),
    )
    .fetch_one(&state.stores.main)
    .await
}

/// `SPOTIFY_CALLS_PER_MINUTE`, counted in Redis (`spotify:calls:{minute}`) so that every
/// server process shares it. With Redis down each process counts on its own against the
/// same limit: never unlimited, at worst the limit once per process.
pub struct Budget {
    per_minute: u32,
    /// Minute number and calls counted in it, for when Redis does not answer.
    local: Mutex<(u64, u32)>,
}

impl Budget {
    pub fn new(per_minute: u32) -> Self {
        Budget {
            per_minute,
            local: Mutex::new((0, 0)),
        }
    }

    /// Take `calls` from this minute's budget, or say how long until the next minute.
    pub async fn take(&self, state: &AppState, calls: u32) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let minute = now.as_secs() / WINDOW.as_secs();
        let until_next = Duration::from_secs((minute + 1) * WINDOW.as_secs()).saturating_sub(now);
        let cache = &state.stores.cache;
        let name = format!("spotify:calls:{minute}");
        let total = match cache
            .add_to_window(&name, i64::from(calls), WINDOW * 2)
            .await
        {
            Ok(total) => total,
            Err(e) => {
                tracing::debug!(error = %e, "Spotify budget counted in this process: Redis unavailable");
                let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
                if local.0 != minute {
                    *local = (minute, 0);
                }
                local.1 = local.1.saturating_add(calls);
                i64::from(local.1)
            }
        };
        if total > i64::from(self.per_minute) {
            tracing::warn!(
                limit = self.per_minute,
                "Spotify call budget for this minute is spent; sync refused"
            );
            return Err(until_next.max(Duration::from_secs(1)));
        }
        Ok(())
    }
}
