//! Running syncs: one at a time per user (a second request joins the running one; another
//! server process is refused by the database's one-running-sync index), progress the UI
//! can read, and the pipeline itself: fetch everything first, then write PostgreSQL in one
//! transaction (with the history for MongoDB in its outbox), then Redis.

use super::outbox;
use super::records::{self, format_time, Fetched};
use crate::domain::{SyncProgress, SyncStatus, TimeRange};
use crate::server::auth::tokens::{self, TokenError};
use crate::server::spotify::SpotifyError;
use crate::server::state::AppState;
use chrono::{DurationRound, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Spotify lets a user's top lists go to ~99 entries.
pub const MAX_ITEMS: usize = 99;
/// Six lists (artists and tracks for three ranges), then the write.
const TOTAL_STEPS: u8 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Login,
    Manual,
    Schedule,
    FirstVisit,
    Bench,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Login => "login",
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::FirstVisit => "first_visit",
            Trigger::Bench => "bench",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncUser {
    pub user_id: i64,
    pub spotify_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("a sync for this account is already running on another server")]
    RunningElsewhere,
    #[error("Spotify needs you to sign in again")]
    NeedsRelogin,
    #[error("{0}")]
    Spotify(String),
    /// The driver's words go to the log (`finish`), never to the person.
    #[error("Personalify could not reach its database; try again in a minute")]
    Store(#[from] sqlx::Error),
    #[error("Personalify has used its share of Spotify for this minute; try again in {} seconds", .0.as_secs().max(1))]
    BudgetSpent(std::time::Duration),
    #[error("the sync took longer than {} seconds and was stopped; try again later", .0.as_secs())]
    TimedOut(std::time::Duration),
}

impl From<TokenError> for SyncError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::NeedsRelogin | TokenError::NotConnected | TokenError::Unreadable => {
                SyncError::NeedsRelogin
            }
            TokenError::Spotify(e) => SyncError::Spotify(spotify_reason(&e)),
            TokenError::Store(e) => SyncError::Store(e),
        }
    }
}

/// What the person reads (in `sync_runs.error`, the sync status): Spotify's own refusals as
/// they are; a transport or decoding failure in plain words, its detail in the log.
fn spotify_reason(err: &SpotifyError) -> String {
    let plain = match err {
        SpotifyError::Connect(_) => "Personalify cannot reach Spotify right now; try again later",
        SpotifyError::Decode(_) => {
            "Spotify sent an answer Personalify could not read; try again later"
        }
        other => return other.to_string(),
    };
    tracing::warn!(error = %err, "Spotify call failed");
    plain.to_string()
}

/// What a finished sync did, for tests and the benchmark.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub run_id: i64,
    pub artists: u32,
    pub tracks: u32,
    pub spotify_calls: u64,
    pub pg_round_trips: u32,
    pub wall: std::time::Duration,
}

/// Syncs in progress in this process, by user id. Its lock is held only to look up, add or
/// remove an entry, never across a call to a store, and an entry goes when its sync's task
/// ends, however it ends ([`Registered`]).
#[derive(Clone, Default)]
pub struct Syncs {
    running: Arc<std::sync::Mutex<HashMap<i64, watch::Receiver<SyncProgress>>>>,
}

/// A sync someone asked for: new, or the one already running.
pub struct Started {
    pub joined: bool,
    pub progress: watch::Receiver<SyncProgress>,
}

impl Started {
    pub fn run_id(&self) -> i64 {
        self.progress.borrow().run_id
    }

    /// Wait until the sync ends; its last progress says how (or, if its task is gone
    /// without a word, the last it said).
    pub async fn finished(mut self) -> SyncProgress {
        let _ = self
            .progress
            .wait_for(|p| p.status != SyncStatus::Running)
            .await;
        let last = self.progress.borrow().clone();
        last
    }
}

/// A user's entry in [`Syncs`], removed when this is dropped: when the sync that made it
/// ends, fails to start, or its task panics.
struct Registered {
    syncs: Syncs,
    user_id: i64,
    progress: watch::Receiver<SyncProgress>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut running = self.syncs.lock();
        // Only this sync's entry (a later one may have taken the place).
        if running
            .get(&self.user_id)
            .is_some_and(|rx| rx.same_channel(&self.progress))
        {
            running.remove(&self.user_id);
        }
    }
}

impl Syncs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Receiver<SyncProgress>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Progress of this user's running sync, if one runs in this process.
    pub async fn progress(&self, user_id: i64) -> Option<SyncProgress> {
        self.lock().get(&user_id).map(|rx| rx.borrow().clone())
    }

    /// Take the user's place for a new sync, or return the one running.
    fn register(&self, user_id: i64) -> Result<(Registered, watch::Sender<SyncProgress>), Started> {
        let mut running = self.lock();
        if let Some(rx) = running.get(&user_id) {
            if rx.borrow().status == SyncStatus::Running {
                return Err(Started {
                    joined: true,
                    progress: rx.clone(),
                });
            }
        }
        let (tx, rx) = watch::channel(starting());
        running.insert(user_id, rx.clone());
        Ok((
            Registered {
                syncs: self.clone(),
                user_id,
                progress: rx,
            },
            tx,
        ))
    }

    /// Start a sync for `user`, or join the one already running.
    pub async fn start(
        &self,
        state: &AppState,
        user: SyncUser,
        trigger: Trigger,
    ) -> Result<Started, SyncError> {
        let (registered, tx) = match self.register(user.user_id) {
            Ok(place) => place,
            Err(running) => return Ok(running),
        };
        let failed = |tx: &watch::Sender<SyncProgress>, err: &SyncError| {
            tx.send_modify(|p| {
                p.status = SyncStatus::Failed;
                p.current = None;
                p.error = Some(err.to_string());
            })
        };
        if let Err(wait) = state.budget.take(state, super::fair::CALLS_PER_SYNC).await {
            crate::server::metrics::record_sync("refused");
            let err = SyncError::BudgetSpent(wait);
            failed(&tx, &err);
            return Err(err);
        }
        match begin(state, &user, trigger).await {
            Ok(first) => {
                tx.send_replace(first);
            }
            Err(err) => {
                failed(&tx, &err);
                return Err(err);
            }
        }
        let progress = registered.progress.clone();
        let state = state.clone();
        tokio::spawn(supervised(state, user, tx, registered));
        Ok(Started {
            joined: false,
            progress,
        })
    }
}

/// Run a registered sync to its end and record how it ended, even if it panicked (then as
/// failed); its registry entry goes with it.
async fn supervised(
    state: AppState,
    user: SyncUser,
    tx: watch::Sender<SyncProgress>,
    registered: Registered,
) {
    let tx = Arc::new(tx);
    let run_id = tx.borrow().run_id;
    let work = {
        let (state, user, tx) = (state.clone(), user.clone(), tx.clone());
        async move { bounded(&state, execute(&state, &user, run_id, &tx)).await }
    };
    let outcome = match tokio::spawn(work).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(spotify_id = %user.spotify_id, run_id, error = %e, "a sync panicked");
            Err(SyncError::Spotify(
                "the sync stopped unexpectedly; try again".into(),
            ))
        }
    };
    let succeeded = outcome.is_ok();
    finish(&state, &user, run_id, outcome, &tx).await;
    drop(registered);
    // A sync also reads recently played (once the person sees the sync done), so plays show
    // right after signing in, not at the poller's next round.
    if succeeded && !state.config.plays_poll_every.is_zero() {
        crate::server::plays::ingest::poll_after_sync(&state, &user).await;
    }
}

/// What a sync says before it has a run in the database.
fn starting() -> SyncProgress {
    SyncProgress {
        run_id: 0,
        status: SyncStatus::Running,
        done_steps: 0,
        total_steps: TOTAL_STEPS,
        current: Some("Starting".into()),
        started_at: format_time(Utc::now()),
        finished_at: None,
        error: None,
        artists: None,
        tracks: None,
    }
}

/// Run a sync to the end in the caller's task, bypassing the in-process registry (the
/// database still allows one running sync per user). For the benchmark.
pub async fn run_inline(
    state: &AppState,
    user: &SyncUser,
    trigger: Trigger,
) -> Result<SyncReport, SyncError> {
    let (tx, _rx) = watch::channel(begin(state, user, trigger).await?);
    let run_id = tx.borrow().run_id;
    let outcome = bounded(state, execute(state, user, run_id, &tx)).await;
    let report = match &outcome {
        Ok(report) => Ok(report.clone()),
        Err(e) => Err(SyncError::Spotify(e.to_string())),
    };
    finish(state, user, run_id, outcome, &tx).await;
    report
}

/// A sync within `SYNC_TIMEOUT_SECS`: whatever waits on a sync (the scheduler, a page)
/// waits no longer. Cut off, it has written nothing or everything: its PostgreSQL
/// transaction is dropped uncommitted unless it had already committed.
async fn bounded(
    state: &AppState,
    sync: impl std::future::Future<Output = Result<SyncReport, SyncError>>,
) -> Result<SyncReport, SyncError> {
    let deadline = state.config.sync_timeout;
    tokio::time::timeout(deadline, sync)
        .await
        .unwrap_or(Err(SyncError::TimedOut(deadline)))
}

/// Record a new running sync (the database refuses a second one for the same user).
async fn begin(
    state: &AppState,
    user: &SyncUser,
    trigger: Trigger,
) -> Result<SyncProgress, SyncError> {
    let pool = &state.stores.main;
    // A run left 'running' by a server that died is not running any more.
    sqlx::query(
        "UPDATE sync_runs SET status = 'failed', finished_at = now(),
                error = 'interrupted: the server stopped during the sync'
          WHERE user_id = $1 AND status = 'running' AND started_at < now() - interval '15 minutes'",
    )
    .bind(user.user_id)
    .execute(pool)
    .await?;
    let inserted: Result<(i64, chrono::DateTime<Utc>), sqlx::Error> = sqlx::query_as(
        "INSERT INTO sync_runs (user_id, trigger, status) VALUES ($1, $2, 'running') RETURNING id, started_at",
    )
    .bind(user.user_id)
    .bind(trigger.as_str())
    .fetch_one(pool)
    .await;
    let (run_id, started_at) = match inserted {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(SyncError::RunningElsewhere)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(SyncProgress {
        run_id,
        started_at: format_time(started_at),
        ..starting()
    })
}

/// Record the outcome in `sync_runs` and in the progress.
async fn finish(
    state: &AppState,
    user: &SyncUser,
    run_id: i64,
    outcome: Result<SyncReport, SyncError>,
    tx: &watch::Sender<SyncProgress>,
) {
    let now = format_time(Utc::now());
    crate::server::metrics::record_sync(if outcome.is_ok() {
        "succeeded"
    } else {
        "failed"
    });
    match outcome {
        Ok(report) => {
            tracing::info!(
                spotify_id = %user.spotify_id, run_id, artists = report.artists, tracks = report.tracks,
                wall_ms = report.wall.as_millis() as u64, pg_round_trips = report.pg_round_trips,
                "sync succeeded"
            );
            tx.send_modify(|p| {
                p.status = SyncStatus::Succeeded;
                p.done_steps = TOTAL_STEPS;
                p.current = None;
                p.finished_at = Some(now);
                p.artists = Some(report.artists);
                p.tracks = Some(report.tracks);
            });
        }
        Err(err) => {
            if matches!(err, SyncError::NeedsRelogin) {
                // Their pages must say "sign in again" now, not when a cached session expires.
                state.sessions.forget_user(user.user_id);
            }
            let reason = err.to_string();
            match &err {
                SyncError::Store(cause) => {
                    tracing::warn!(spotify_id = %user.spotify_id, run_id, error = %cause, "sync failed: database error")
                }
                _ => {
                    tracing::warn!(spotify_id = %user.spotify_id, run_id, error = %reason, "sync failed")
                }
            }
            let recorded = sqlx::query(
                "UPDATE sync_runs SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1 AND status = 'running'",
            )
            .bind(run_id)
            .bind(&reason)
            .execute(&state.stores.main)
            .await;
            if let Err(e) = recorded {
                tracing::error!(run_id, error = %e, "cannot record the failed sync");
            }
            tx.send_modify(|p| {
                p.status = SyncStatus::Failed;
                p.current = None;
                p.finished_at = Some(now);
                p.error = Some(reason);
            });
        }
    }
}

/// Demo mode: a listener who signed in before this process started holds tokens the
/// simulator no longer knows (it keeps them in memory) and, without `TOKEN_ENCRYPTION_KEYS`,
/// sealed under a key that is gone. Sign them in again silently, as their consent stands;
/// a listener whose tokens the simulator revoked since start-up is left to sign in again.
pub(crate) async fn resign_demo_listener(
    state: &AppState,
    sim: &crate::server::sim::Simulator,
    user: &SyncUser,
) -> Result<(), SyncError> {
    let scope = crate::server::spotify::SCOPES.join(" ");
    let Some((access, refresh, scope, lifetime)) =
        sim.reissue_after_restart(&user.spotify_id, &scope)
    else {
        return Ok(());
    };
    let tokens = crate::server::spotify::TokenSet {
        access_token: access.into(),
        refresh_token: Some(refresh.into()),
        expires_in: lifetime,
        scope,
    };
    let mut conn = state.stores.main.acquire().await?;
    tokens::store(&mut conn, &state.auth.cipher, user.user_id, &tokens, None)
        .await
        .map_err(SyncError::from)?;
    tracing::info!(spotify_id = %user.spotify_id, "demo listener signed in again after a restart");
    Ok(())
}

/// The pipeline. Nothing is written until every list has been fetched, so a Spotify
/// failure part-way leaves no partial sync behind.
async fn execute(
    state: &AppState,
    user: &SyncUser,
    run_id: i64,
    progress: &watch::Sender<SyncProgress>,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let calls_before = spotify_calls(state);
    let pool = &state.stores.main;
    let (cipher, spotify) = (&state.auth.cipher, &state.auth.spotify);
    if let Some(sim) = &state.sim {
        resign_demo_listener(state, sim, user).await?;
    }

    // 1. Fetch: the three ranges concurrently, artists and tracks of each concurrently.
    let step = |label: String| {
        progress.send_modify(|p| {
            p.done_steps += 1;
            p.current = Some(label);
        })
    };
    let fetch_range = |range: TimeRange| async move {
        let artists = tokens::with_token(pool, cipher, spotify, user.user_id, |t| {
            let spotify = spotify.clone();
            async move { spotify.top_artists(&t, range, MAX_ITEMS).await }
        });
        let tracks = tokens::with_token(pool, cipher, spotify, user.user_id, |t| {
            let spotify = spotify.clone();
            async move { spotify.top_tracks(&t, range, MAX_ITEMS).await }
        });
        let artists = async {
            let a = artists.await?;
            step(format!("Top artists, {}", range.label()));
            Ok::<_, TokenError>(a)
        };
        let tracks = async {
            let t = tracks.await?;
            step(format!("Top tracks, {}", range.label()));
            Ok::<_, TokenError>(t)
        };
        let (artists, tracks) = tokio::try_join!(artists, tracks)?;
        Ok::<_, TokenError>(Fetched::checked(range, artists, tracks))
    };
    let (short, medium, long) = tokio::try_join!(
        fetch_range(TimeRange::ShortTerm),
        fetch_range(TimeRange::MediumTerm),
        fetch_range(TimeRange::LongTerm),
    )?;
    let fetched = [short, medium, long];
    progress.send_modify(|p| p.current = Some("Saving".into()));

    // 2. Payloads, stamped with one sync time (milliseconds, as stored and shown).
    let synced_at = Utc::now()
        .duration_trunc(chrono::Duration::milliseconds(1))
        .unwrap_or_else(|_| Utc::now());
    let at = format_time(synced_at);
    let mut payloads: Vec<_> = fetched
        .iter()
        .map(|f| records::payload(&user.spotify_id, run_id, &at, f))
        .collect();

    // 3. PostgreSQL, one transaction: catalogue, lists, the run's outcome, the outbox.
    let mut round_trips = 1; // BEGIN
    let mut tx = pool.begin().await?;
    records::write_lists(
        &mut tx,
        &user.spotify_id,
        run_id,
        synced_at,
        &mut payloads,
        &fetched,
        &mut round_trips,
    )
    .await?;
    let artists: u32 = payloads.iter().map(|p| p.artists.len() as u32).sum();
    let tracks: u32 = payloads.iter().map(|p| p.tracks.len() as u32).sum();
    sqlx::query(
        "UPDATE sync_runs SET status = 'succeeded', finished_at = $2, artists_count = $3, tracks_count = $4
          WHERE id = $1",
    )
    .bind(run_id)
    .bind(synced_at)
    .bind(artists as i32)
    .bind(tracks as i32)
    .execute(&mut *tx)
    .await?;
    round_trips += 1;
    for p in &payloads {
        outbox::enqueue(&mut tx, &snapshot_id(run_id, p.time_range), p).await?;
        round_trips += 1;
    }
    tx.commit().await?;
    round_trips += 1;
    progress.send_modify(|p| p.done_steps = TOTAL_STEPS);

    // 4. After the commit: the outbox worker takes the history to MongoDB (never this
    //    sync: a slow MongoDB must not hold it), and the dashboard cache is filled, best
    //    effort (rebuilt from PostgreSQL on a miss).
    state.outbox.notify();
    for p in &payloads {
        if let Err(e) = state.stores.cache.set_top(p, state.config.cache_ttl).await {
            tracing::warn!(error = %e, "cannot cache the dashboard payload; it is rebuilt on the next read");
            break;
        }
    }

    Ok(SyncReport {
        run_id,
        artists,
        tracks,
        spotify_calls: spotify_calls(state).saturating_sub(calls_before),
        pg_round_trips: round_trips,
        wall: started.elapsed(),
    })
}

/// The MongoDB history document id of a sync's snapshot of one range.
pub fn snapshot_id(run_id: i64, range: TimeRange) -> String {
    format!("{run_id}-{}", range.as_str())
}

/// Web API requests made so far (known in demo mode, where the simulator counts them).
fn spotify_calls(state: &AppState) -> u64 {
    state.sim.as_ref().map_or(0, |s| s.request_count("/v1/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_start_joins_and_an_entry_goes_however_its_sync_ends() {
        let syncs = Syncs::default();
        let (registered, tx) = syncs.register(7).ok().expect("the place is free");
        assert!(syncs.register(7).is_err_and(|running| running.joined));
        assert_eq!(
            syncs.progress(7).await.map(|p| p.status),
            Some(SyncStatus::Running)
        );
        // Its task panics: the entry goes all the same, and whoever waits stops waiting.
        let waiting = tokio::spawn(
            Started {
                joined: true,
                progress: registered.progress.clone(),
            }
            .finished(),
        );
        let task = tokio::spawn(async move {
            let _registered = registered;
            let _tx = tx;
            panic!("a sync went wrong");
        });
        assert!(task.await.is_err_and(|e| e.is_panic()));
        assert_eq!(syncs.progress(7).await, None);
        assert_eq!(waiting.await.expect("no panic").status, SyncStatus::Running);
        assert!(syncs.register(7).is_ok(), "a new sync may start");
    }
}
