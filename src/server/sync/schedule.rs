//! Background work: re-sync users whose data is older than `SYNC_MAX_AGE_HOURS`, one user
//! at a time, backing off per user after failures and pausing when the Spotify budget is
//! spent.

use super::run::{SyncUser, Trigger};
use crate::server::state::AppState;

/// After the n-th failure in a row, a user's next scheduled try waits
/// `SYNC_CHECK_SECS` × 2^(n-1), at most this long.
pub const MAX_BACKOFF_SECS: f64 = 86_400.0;

/// Users due for a sync: connected (not waiting for a new sign-in), whose last successful
/// sync is older than the maximum age (or who never synced), and who are not backing off:
/// after n failed syncs in a row the next try waits `SYNC_CHECK_SECS` × 2^(n-1) (at most a
/// day) from the last failure, so a user whose syncs keep failing does not spend everyone's
/// Spotify budget.
pub async fn due_users(state: &AppState) -> Result<Vec<SyncUser>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT u.id, u.spotify_id
           FROM users u
           JOIN spotify_tokens t ON t.user_id = u.id AND NOT t.needs_relogin
           LEFT JOIN LATERAL (
                SELECT count(*) AS failures, max(f.started_at) AS last_failure
                  FROM sync_runs f
                 WHERE f.user_id = u.id AND f.status = 'failed'
                   AND f.id > COALESCE((SELECT max(s.id) FROM sync_runs s
                                         WHERE s.user_id = u.id AND s.status = 'succeeded'), 0)
                ) streak ON true
          WHERE NOT EXISTS (
                SELECT 1 FROM sync_runs r
                 WHERE r.user_id = u.id
                   AND (r.status = 'running'
                        OR (r.status = 'succeeded' AND r.finished_at > now() - make_interval(secs => $1))))
            AND (streak.failures = 0
                 OR streak.last_failure + make_interval(secs =>
                        least($3, $2 * power(2, least(streak.failures, 30) - 1))) < now())
          ORDER BY u.id",
    )
    .bind(state.config.sync_max_age.as_secs_f64())
    .bind(state.config.sync_check_every.as_secs_f64())
    .bind(MAX_BACKOFF_SECS)
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

pub fn spawn_scheduler(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_scheduler(state))
}

/// The scheduler's loop, for a supervisor to run (see `server::tasks`).
pub async fn run_scheduler(state: AppState) {
    {
        let mut every = tokio::time::interval(state.config.sync_check_every);
        every.tick().await; // the first tick is immediate: let start-up finish first
        loop {
            every.tick().await;
            let users = match due_users(&state).await {
                Ok(users) => users,
                Err(sqlx::Error::PoolClosed) => return, // shutdown
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot list users due for a sync");
                    continue;
                }
            };
            for user in users {
                match state
                    .syncs
                    .start(&state, user.clone(), Trigger::Schedule)
                    .await
                {
                    Ok(started) => {
                        // The sync ends itself at its deadline; this is the backstop.
                        let waited = tokio::time::timeout(
                            state.config.sync_timeout + std::time::Duration::from_secs(30),
                            started.finished(),
                        )
                        .await;
                        if waited.is_err() {
                            tracing::error!(spotify_id = %user.spotify_id, "scheduled sync did not end by its deadline; moving on");
                        }
                    }
                    Err(e @ super::run::SyncError::BudgetSpent(_)) => {
                        // Pages' "Sync now" and sign-ins share the budget: yield to them.
                        tracing::info!(error = %e, "scheduler pauses until its next round");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(spotify_id = %user.spotify_id, error = %e, "scheduled sync not started")
                    }
                }
            }
        }
    }
}
