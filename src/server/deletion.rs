//! Deleting an account from every store, as a job that finishes even when it cannot finish
//! at once: `POST /account/delete` ([`super::account`]) starts it and waits a few seconds;
//! a listener with millions of plays, or a store that is down, gets a truthful answer
//! (signed out everywhere already, what is still being removed) and the job goes on in the
//! background, taken up again by the `deletions` task ([`sweep`]) until it is done.
//!
//! Order, each step safe to run again:
//! 1. A row in main's `listener_deletions`, and the person's sessions and Spotify tokens
//!    deleted: signed out everywhere at once, and no sync or poll can start ([`begin`]).
//! 2. Their imports: a running one canceled (its job stopped, its staging gone), and the
//!    uploads (which hold IP addresses) go from `IMPORT_DIR`. First, as an import's final
//!    move holds the listener's lock that the fence waits for.
//! 3. The fence: every writer of a listener's plays, zone or imports holds a shared lock on
//!    the listener while it writes and then looks for that row ([`super::shards::Shard::lock`]);
//!    the deletion takes the lock exclusively once, so a poll, a stash delivery or an
//!    import's batch either landed before (and is deleted below) or finds the row and
//!    writes nothing.
//! 4. The copies: the outbox rows, MongoDB's two collections, Redis's keys of theirs.
//! 5. Every analytics node, not only theirs (a stopped partition move leaves rows on the
//!    other): plays in chunks of [`CHUNK`] (the rollups follow by trigger), staging, zone.
//!    The read replica follows by logical replication.
//! 6. Trending's recent days are marked to be counted again, without their plays.
//! 7. The record on main: the lists, then the user (tokens, sessions, syncs, cursors,
//!    stash and imports go with it).
//! 8. MongoDB and Redis once more (a snapshot or page written meanwhile), this process's
//!    caches; then the row keeps only the md5 of their id, for [`KEEP_DONE`] (so a writer
//!    that began before is still refused), and goes.
//!
//! Main (the job's own record) and the fence must answer, or the run stops there; a copy
//! store or a node that does not answer is passed over, the others are cleared, and the
//! run ends unfinished, to be taken up again.

use super::state::AppState;
use std::time::Duration;

/// Plays deleted per statement: each is well under the nodes' statement timeout (30 s),
/// with the rollup triggers' work included.
pub const CHUNK: i64 = 20_000;
/// How long a finished deletion's row (the md5 of the id, nothing else) is kept: longer
/// than any write that began before it (a poll's deadline is under two minutes).
pub const KEEP_DONE: Duration = Duration::from_secs(600);
/// A job not renewed for this long is taken over by the `deletions` task.
const LEASE_SECS: f64 = 120.0;
/// Each store's step gets this long before the job stops and says what is left.
const STEP_DEADLINE: Duration = Duration::from_secs(30);
/// How often the `deletions` task looks for deletions to resume and rows to drop.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// This process, as the holder of deletion leases.
static RUNNER: std::sync::LazyLock<i64> =
    std::sync::LazyLock::new(|| (rand::random::<u64>() >> 1) as i64);

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("{0} does not answer")]
    StoreDown(&'static str),
    #[error("a sync for this account is running")]
    SyncRunning,
    #[error("there is no such account")]
    NoAccount,
}

/// Where a deletion stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing of the person is left.
    Done,
    /// Still being removed (in the background): what is left, in words, and why it stopped
    /// if a store did not answer.
    Continuing {
        remaining: String,
        waiting_for: Option<String>,
    },
}

/// Start deleting `user_id`: the deletion's row, and their sessions gone. Returns their
/// Spotify id, for [`run`]. Refused (nothing changed) while a sync of theirs runs.
pub async fn begin(state: &AppState, user_id: i64) -> Result<String, DeleteError> {
    if state.syncs.progress(user_id).await.is_some() {
        return Err(DeleteError::SyncRunning);
    }
    let main = &state.stores.main;
    let started = async {
        let spotify_id: Option<String> =
            sqlx::query_scalar("SELECT spotify_id FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(main)
                .await?;
        let Some(spotify_id) = spotify_id else {
            return Ok(None);
        };
        let mut tx = main.begin().await?;
        sqlx::query(
            "INSERT INTO listener_deletions
                    (listener_key, spotify_id, user_id, status, leased_by, leased_until)
             VALUES (md5($1), $1, $2, 'deleting', $3, now() + make_interval(secs => $4))
             ON CONFLICT (listener_key) DO UPDATE
                SET spotify_id = EXCLUDED.spotify_id, user_id = EXCLUDED.user_id,
                    status = 'deleting', finished_at = NULL, last_error = NULL,
                    leased_by = EXCLUDED.leased_by, leased_until = EXCLUDED.leased_until",
        )
        .bind(&spotify_id)
        .bind(user_id)
        .bind(*RUNNER)
        .bind(LEASE_SECS)
        .execute(&mut *tx)
        .await?;
        // Signed out everywhere, and no Spotify token left for a scheduled sync or a poll
        // to start with while the rest is deleted.
        for table in ["sessions", "spotify_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(spotify_id))
    };
    let spotify_id = match tokio::time::timeout(Duration::from_secs(5), started).await {
        Ok(Ok(Some(id))) => id,
        Ok(Ok(None)) => return Err(DeleteError::NoAccount),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "account deletion: database error");
            return Err(DeleteError::StoreDown("The database"));
        }
        Err(_) => return Err(DeleteError::StoreDown("The database")),
    };
    state.sessions.forget_user(user_id);
    state.pages.forget_user(user_id);
    Ok(spotify_id)
}

/// A step that did not finish: which store, and the error for the log.
struct Stopped {
    store: &'static str,
    error: String,
}

/// Run `step` within [`STEP_DEADLINE`], as `store`'s.
async fn bounded<T>(
    store: &'static str,
    step: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, Stopped> {
    match tokio::time::timeout(STEP_DEADLINE, step).await {
        Ok(result) => result.map_err(|error| Stopped { store, error }),
        Err(_) => Err(Stopped {
            store,
            error: format!("no answer in {} s", STEP_DEADLINE.as_secs()),
        }),
    }
}

/// A step on main, the job's own record: within [`STEP_DEADLINE`], and if it fails, the run
/// stops there.
async fn on_main<T>(
    step: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Vec<Stopped>> {
    bounded("The database", async {
        step.await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|stop| vec![stop])
}

/// Run (or resume) the deletion of `spotify_id` to its end. Returns where it stands: done,
/// or what is left because a store did not answer (the `deletions` task tries again; what
/// the other stores held is gone meanwhile).
pub async fn run(state: &AppState, spotify_id: &str) -> Outcome {
    let stops = match steps(state, spotify_id).await {
        Ok(()) => return Outcome::Done,
        Err(stops) => stops,
    };
    for stop in &stops {
        tracing::warn!(store = stop.store, error = %stop.error, "account deletion waits for a store");
    }
    let mut stores: Vec<&str> = stops.iter().map(|s| s.store).collect();
    stores.dedup();
    let waiting_for = stores.join(" and ");
    let remaining = remaining(state, spotify_id).await;
    let recorded = sqlx::query(
        "UPDATE listener_deletions
            SET remaining = $2, last_error = $3, leased_until = now()
          WHERE listener_key = md5($1) AND status = 'deleting'",
    )
    .bind(spotify_id)
    .bind(&remaining)
    .bind(format!("{waiting_for}: no answer"))
    .execute(&state.stores.main)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "account deletion: cannot record where it stopped");
    }
    Outcome::Continuing {
        remaining,
        waiting_for: Some(waiting_for),
    }
}

/// What of `spotify_id` is still stored, in words, as far as the stores answer in a few
/// seconds (a store that does not answer is named as such).
pub async fn remaining(state: &AppState, spotify_id: &str) -> String {
    let stores = &state.stores;
    let within = Duration::from_secs(2);
    let mut parts = Vec::new();
    let mut plays = 0i64;
    let mut unknown = Vec::new();
    for node in stores.analytics.nodes() {
        let counted = tokio::time::timeout(
            within,
            sqlx::query_scalar::<_, i64>(
                "SELECT COALESCE(sum(plays), 0)::bigint FROM plays_by_listener
                  WHERE spotify_id = $1",
            )
            .bind(spotify_id)
            .fetch_one(&node.pool),
        )
        .await;
        match counted {
            Ok(Ok(n)) => plays += n,
            _ => unknown.push(node.name),
        }
    }
    if plays > 0 {
        parts.push(format!(
            "{} plays on the analytics nodes",
            crate::domain::trending::thousands(plays)
        ));
    }
    for name in unknown {
        parts.push(format!(
            "whatever analytics node {name} holds (it does not answer)"
        ));
    }
    let record = tokio::time::timeout(
        within,
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM users WHERE spotify_id = $1)")
            .bind(spotify_id)
            .fetch_one(&stores.main),
    )
    .await;
    if !matches!(record, Ok(Ok(false))) {
        parts.push("your profile, top lists and sync history".to_string());
    }
    if parts.is_empty() {
        "the last copies (sync history, cache)".to_string()
    } else {
        parts.join(", ")
    }
}

/// Every step; main's (the job's own record) and the fence stop the run at once, while a
/// copy or a node that does not answer is passed over (and the run ends unfinished) so the
/// other stores are cleared meanwhile.
async fn steps(state: &AppState, spotify_id: &str) -> Result<(), Vec<Stopped>> {
    let stores = &state.stores;
    let main = &stores.main;
    let mut passed_over: Vec<Stopped> = Vec::new();
    let user_id: Option<i64> = on_main(async {
        sqlx::query_scalar("SELECT id FROM users WHERE spotify_id = $1")
            .bind(spotify_id)
            .fetch_optional(main)
            .await
    })
    .await?;

    // 2. Their imports: a running one canceled first (its job stopped, its staging and
    //    upload gone; its final move may hold the listener's lock, which the fence waits
    //    for), and any upload left of the others.
    if let Some(user_id) = user_id {
        let imports: Vec<(i64, bool)> = on_main(async {
            sqlx::query_as(
                "SELECT id, status IN ('reading', 'storing') FROM imports WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_all(main)
            .await
        })
        .await?;
        for (id, running) in imports {
            if running {
                match super::plays::import::cancel(state, id, None).await {
                    Ok(_) => {}
                    Err(super::plays::import::CancelError::Main(error)) => {
                        return Err(vec![Stopped {
                            store: "The database",
                            error,
                        }])
                    }
                    Err(e) => passed_over.push(Stopped {
                        store: "An import of theirs",
                        error: e.to_string(),
                    }),
                }
            }
            let path = super::plays::import::upload_path(&state.config.import_dir, id);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => passed_over.push(Stopped {
                    store: "The import folder",
                    error: e.to_string(),
                }),
            }
        }
        // Nothing more goes to MongoDB for them.
        on_main(async {
            sqlx::query(
                "DELETE FROM mongo_outbox WHERE snapshot_id IN (
                     SELECT r.id || '-' || t FROM sync_runs r,
                            unnest(ARRAY['short_term', 'medium_term', 'long_term']) AS t
                      WHERE r.user_id = $1)",
            )
            .bind(user_id)
            .execute(main)
            .await
        })
        .await?;
    }
    // 3. The fence.
    on_main(async {
        let mut tx = main.begin().await?;
        sqlx::query(
            "SELECT set_config('lock_timeout', '25s', true),
                    pg_advisory_xact_lock(hashtextextended('listener:' || $1, 0))",
        )
        .bind(spotify_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await?;

    // 4. The copies.
    delete_copies(state, spotify_id, &mut passed_over).await;

    // 5. Every node.
    for node in stores.analytics.nodes() {
        if node.breaker.check().is_err() {
            passed_over.push(Stopped {
                store: "An analytics node",
                error: "marked down".into(),
            });
            continue;
        }
        if let Err(stop) = clear_node(state, &node.pool, spotify_id).await {
            passed_over.push(stop);
        }
    }

    // 6. Trending, counted again without them.
    on_main(async {
        sqlx::query(
            "INSERT INTO trending_dirty (day) SELECT unnest($1::date[]) ON CONFLICT DO NOTHING",
        )
        .bind(super::trending::recent_window())
        .execute(main)
        .await
    })
    .await?;

    // 7. The record.
    on_main(async {
        let mut tx = main.begin().await?;
        for table in ["user_artists", "user_tracks", "top_payloads"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE spotify_id = $1"))
                .bind(spotify_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM users WHERE spotify_id = $1")
            .bind(spotify_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
    .await?;

    // 8. The copies again, this process's caches, and the row.
    let mut last = Vec::new();
    delete_copies(state, spotify_id, &mut last).await;
    passed_over.retain(|stop| {
        !stop.store.starts_with("The sync history") && !stop.store.starts_with("The cache")
    });
    passed_over.extend(last);
    if let Some(user_id) = user_id {
        state.sessions.forget_user(user_id);
        state.pages.forget_user(user_id);
    }
    if !passed_over.is_empty() {
        return Err(passed_over);
    }
    on_main(async {
        sqlx::query(
            "UPDATE listener_deletions
                SET status = 'done', spotify_id = NULL, user_id = NULL, remaining = NULL,
                    last_error = NULL, leased_by = NULL, leased_until = NULL,
                    finished_at = now()
              WHERE listener_key = md5($1)",
        )
        .bind(spotify_id)
        .execute(main)
        .await
    })
    .await?;
    tracing::info!("account deleted");
    Ok(())
}

/// One node: the listener's plays in chunks of [`CHUNK`] (the rollups follow by trigger),
/// what an import staged, their zone.
async fn clear_node(
    state: &AppState,
    node: &sqlx::PgPool,
    spotify_id: &str,
) -> Result<(), Stopped> {
    let store = "An analytics node";
    let db = |e: sqlx::Error| e.to_string();
    loop {
        let deleted = bounded(store, async {
            sqlx::query(
                "DELETE FROM plays
                  WHERE (spotify_id, played_at, track_key) IN (
                        SELECT spotify_id, played_at, track_key FROM plays
                         WHERE spotify_id = $1 LIMIT $2)",
            )
            .bind(spotify_id)
            .bind(CHUNK)
            .execute(node)
            .await
            .map(|done| done.rows_affected())
            .map_err(db)
        })
        .await?;
        if deleted == 0 {
            break;
        }
        renew(state, spotify_id).await;
    }
    for statement in [
        "DELETE FROM import_staging WHERE spotify_id = $1",
        "DELETE FROM listener_zones WHERE spotify_id = $1",
    ] {
        bounded(store, async {
            sqlx::query(statement)
                .bind(spotify_id)
                .execute(node)
                .await
                .map_err(db)
        })
        .await?;
    }
    Ok(())
}

/// MongoDB's snapshots and latest snapshots of `spotify_id`, and their keys in Redis; a
/// store that does not answer is added to `passed_over`.
async fn delete_copies(state: &AppState, spotify_id: &str, passed_over: &mut Vec<Stopped>) {
    let stores = &state.stores;
    let mongo = bounded("The sync history (MongoDB)", async {
        stores
            .mongo
            .delete_user(spotify_id)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    if let Err(stop) = mongo {
        passed_over.push(stop);
    }
    let id = super::store::cache::glob_escape(spotify_id);
    for pattern in [
        format!("top:{id}:*"),
        format!("history:{id}:*"),
        format!("artist:history:{id}:*"),
    ] {
        if let Err(stop) =
            bounded("The cache (Redis)", stores.cache.delete_matching(&pattern)).await
        {
            passed_over.push(stop);
            break;
        }
    }
}

/// The job still runs: keep its lease.
async fn renew(state: &AppState, spotify_id: &str) {
    let _ = sqlx::query(
        "UPDATE listener_deletions SET leased_by = $2,
                leased_until = now() + make_interval(secs => $3)
          WHERE listener_key = md5($1) AND status = 'deleting'",
    )
    .bind(spotify_id)
    .bind(*RUNNER)
    .bind(LEASE_SECS)
    .execute(&state.stores.main)
    .await;
}

/// Deletions whose lease ended (a process stopped, or a store did not answer): run them
/// again, one at a time; and drop the rows of deletions done longer than [`KEEP_DONE`] ago.
/// Returns how many deletions it ran.
pub async fn sweep(state: &AppState) -> Result<usize, sqlx::Error> {
    let main = &state.stores.main;
    sqlx::query(
        "DELETE FROM listener_deletions
          WHERE status = 'done' AND finished_at < now() - make_interval(secs => $1)",
    )
    .bind(KEEP_DONE.as_secs_f64())
    .execute(main)
    .await?;
    let due: Vec<String> = sqlx::query_scalar(
        "UPDATE listener_deletions
            SET leased_by = $1, leased_until = now() + make_interval(secs => $2)
          WHERE status = 'deleting' AND (leased_until IS NULL OR leased_until < now())
         RETURNING spotify_id",
    )
    .bind(*RUNNER)
    .bind(LEASE_SECS)
    .fetch_all(main)
    .await?;
    for spotify_id in &due {
        run(state, spotify_id).await;
    }
    Ok(due.len())
}

/// The `deletions` task: [`sweep`] every [`SWEEP_EVERY`].
pub async fn run_sweeper(state: AppState) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        match sweep(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deletions = n, "unfinished account deletions resumed"),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot look for unfinished account deletions"),
        }
    }
}
