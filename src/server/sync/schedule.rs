//! Background work: re-sync users whose data is older than `SYNC_MAX_AGE_HOURS`, one user
//! at a time, and deliver the MongoDB outbox.

use super::run::{SyncUser, Trigger};
use crate::server::state::AppState;

/// Users due for a sync: connected (not waiting for a new sign-in), and whose last
/// successful sync is older than the maximum age, or who never synced.
pub async fn due_users(state: &AppState) -> Result<Vec<SyncUser>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT u.id, u.spotify_id
           FROM users u
           JOIN spotify_tokens t ON t.user_id = u.id AND NOT t.needs_relogin
          WHERE NOT EXISTS (
                SELECT 1 FROM sync_runs r
                 WHERE r.user_id = u.id
                   AND (r.status = 'running'
                        OR (r.status = 'succeeded' AND r.finished_at > now() - make_interval(secs => $1))))
          ORDER BY u.id",
    )
    .bind(state.config.sync_max_age.as_secs_f64())
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
    tokio::spawn(async move {
        let mut every = tokio::time::interval(state.config.sync_check_every);
        every.tick().await; // the first tick is immediate: let start-up finish first
        loop {
            every.tick().await;
            let users = match due_users(&state).await {
                Ok(users) => users,
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
                    Err(e) => {
                        tracing::warn!(spotify_id = %user.spotify_id, error = %e, "scheduled sync not started")
                    }
                }
            }
        }
    })
}
