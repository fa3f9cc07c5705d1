//! Importing a listener's privacy export: the upload is kept in a file while an import job
//! reads it ([`super::export`]) on a blocking thread, batch by batch into `import_staging`
//! on the listener's node, recording how far it got on `main` (`imports.entries_done`).
//! When the whole export is read, one transaction on the node moves the staged plays into
//! `plays` in chunks (each statement well under the nodes' statement timeout, whether the
//! plays are new or all there already), skipping plays it has by the same rule as the
//! poller, and records how many were new. So an import cut off midway has added no plays.
//!
//! An import can never wedge:
//! - an entry that cannot be read, or that the node refuses, is skipped and counted
//!   (`unreadable`); an export that cannot be read at all fails with the reason;
//! - stores that do not answer are waited for, at most `IMPORT_STORE_WAIT_SECS` (counted
//!   from `imports.stuck_since`, across restarts), then the import fails with a sentence;
//! - the owner can [`cancel`] it (so can an account deletion): every write of a job is
//!   fenced by its row on `main`, so once the cancel is recorded nothing of it lands;
//! - jobs run under [`Jobs`]: a job that panics fails its import instead of leaving it
//!   `reading`, and [`sweep`] (task "imports", every minute) resumes imports whose lease
//!   ended, drops staging and upload files no running import owns, and `.part` leftovers.

use super::export::{self, Counts, ExportError, Limits, Upload};
use super::{Play, OVERLAP_SECS};
use crate::server::state::AppState;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A store that does not answer a batch in this long is treated as down (the import waits).
const STORE_DEADLINE: Duration = Duration::from_secs(30);
/// One chunk of the final move (the nodes' own statement timeout is 30 s).
const CHUNK_DEADLINE: Duration = Duration::from_secs(45);
/// The final move takes this many of the staging table's blocks per statement (8 MB, some
/// 40,000 staged plays).
const CHUNK_BLOCKS: i64 = 1024;
/// The longest pause between tries while stores do not answer.
const RETRY_EVERY: Duration = Duration::from_secs(10);
/// Tries at once after broken connections (for at most [`QUICK_FOR`]), before the import
/// pauses: a node that is down fails each try only after the pool's 3 s.
const QUICK_TRIES: u32 = 12;
const QUICK_FOR: Duration = Duration::from_secs(5);
/// How often [`sweep`] runs (task "imports").
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportStatus {
    pub id: i64,
    pub file_name: String,
    pub bytes: i64,
    /// "reading", "storing", "done", "failed" or "canceled".
    pub status: String,
    pub counts: Counts,
    /// New plays, once done.
    pub stored: Option<i64>,
    pub error: Option<String>,
    pub created_at: String,
    /// A running import waiting for stores that do not answer.
    pub waiting: bool,
}

/// Where the upload of import `id` is kept.
pub fn upload_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("import-{id}.upload"))
}

/// The node refused the value itself (data exception, a constraint, a size limit): the
/// same statement would fail again, unlike a store that did not answer.
fn is_refusal(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54"))
}

const STAGE_SQL: &str = r"
    INSERT INTO import_staging (import_id, spotify_id, played_at, track_key, track_id,
                                track_name, artist_name, artist_id, album_name,
                                ms_played, source)
    SELECT $1, $2, x.played_at,
           COALESCE(x.track_id,
                    'name:' || md5(lower(x.artist_name) || E'\n' || lower(x.track_name))),
           x.track_id, x.track_name, x.artist_name, x.artist_id, x.album_name,
           x.ms_played, x.source
      FROM unnest($3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                  $8::text[], $9::int[], $10::text[])
           AS x(played_at, track_id, track_name, artist_name, artist_id, album_name,
                ms_played, source)";

/// Stage a batch of an import's plays. A batch staged again is harmless: [`finalize`]
/// stores each play once.
pub async fn stage(
    analytics: &PgPool,
    import_id: i64,
    spotify_id: &str,
    plays: &[Play],
) -> Result<(), sqlx::Error> {
    if plays.is_empty() {
        return Ok(());
    }
    let columns = super::Columns::of(plays);
    sqlx::query(STAGE_SQL)
        .bind(import_id)
        .bind(spotify_id)
        .bind(&columns.at)
        .bind(&columns.track_id)
        .bind(&columns.track_name)
        .bind(&columns.artist_name)
        .bind(&columns.artist_id)
        .bind(&columns.album_name)
        .bind(&columns.ms_played)
        .bind(&columns.source)
        .execute(analytics)
        .await?;
    Ok(())
}

/// [`stage`], and when the node refuses the batch for a value in it, each play on its own:
/// the plays it refuses are skipped. Returns how many were skipped.
pub async fn stage_skipping(
    analytics: &PgPool,
    import_id: i64,
    spotify_id: &str,
    plays: &[Play],
) -> Result<u64, sqlx::Error> {
    match stage(analytics, import_id, spotify_id, plays).await {
        Ok(()) => return Ok(0),
        Err(e) if is_refusal(&e) => {
            tracing::warn!(import = import_id, error = %e, "a batch was refused; staging its plays one by one");
        }
        Err(e) => return Err(e),
    }
    let mut skipped = 0;
    for play in plays {
        match stage(analytics, import_id, spotify_id, std::slice::from_ref(play)).await {
            Ok(()) => {}
            Err(e) if is_refusal(&e) => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(skipped)
}

/// New plays of the last days, per UTC day, artist and track (for trending).
pub type RecentCounts = Vec<(chrono::NaiveDate, String, String, i64)>;

/// The final move of an import's staged plays into `plays`: one transaction on the node,
/// a chunk of the staging table's blocks per statement. Dropped before [`FinalMove::commit`],
/// nothing of it stays.
pub struct FinalMove {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The node's process running the move: a cancel ends its statement at once.
    backend: i32,
    import_id: i64,
    listener: String,
    /// The staging table's blocks when the move began (every staged play of the import
    /// is in them), and the next block to move from.
    blocks: i64,
    next: i64,
    stored: i64,
    recent: std::collections::BTreeMap<(chrono::NaiveDate, String, String), i64>,
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// How a final move begins.
pub enum Begun {
    /// It was made already (a retry after its commit): the recorded count.
    Recorded(i64),
    Moving(FinalMove),
}

impl FinalMove {
    pub async fn begin(analytics: &PgPool, import_id: i64) -> Result<Begun, sqlx::Error> {
        let mut tx = analytics.begin().await?;
        // The overlap check must probe the listener's plays by the primary key, one
        // staged play at a time (OFFSET 0 below keeps it a subplan). Planned as an
        // anti-join on a partition never analyzed (a new node, a listener's first import),
        // it scanned all the listener's plays for each staged play, the pages this very
        // statement writes included: 50,000 plays took 56 s (the statement timeout), not
        // 1.5 s. Without a sequential scan the probe keeps to the index.
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await?;
        let recorded: Option<i64> =
            sqlx::query_scalar("SELECT stored FROM import_results WHERE import_id = $1")
                .bind(import_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(stored) = recorded {
            return Ok(Begun::Recorded(stored));
        }
        // One listener per import. Naming them in the query lets the planner look only at
        // their plays for the overlap check.
        let listener: Option<String> = sqlx::query_scalar(
            "SELECT spotify_id FROM import_staging WHERE import_id = $1 LIMIT 1",
        )
        .bind(import_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (blocks, backend): (i64, i32) = sqlx::query_as(
            "SELECT pg_relation_size('import_staging') / current_setting('block_size')::bigint,
                    pg_backend_pid()",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(Begun::Moving(FinalMove {
            tx,
            backend,
            import_id,
            listener: listener.unwrap_or_default(),
            blocks,
            next: 0,
            stored: 0,
            recent: Default::default(),
            since: (chrono::Utc::now().date_naive()
                - chrono::Duration::days(crate::server::trending::KEEP_DAYS))
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc()),
        }))
    }

    /// Move the next chunk; `false` once every block was moved.
    pub async fn chunk(&mut self) -> Result<bool, sqlx::Error> {
        if self.next >= self.blocks || self.listener.is_empty() {
            return Ok(false);
        }
        let (from, to) = (self.next, self.next + CHUNK_BLOCKS);
        let (stored, recent): (i64, String) = sqlx::query_as(
            r"WITH chunk AS (
                  DELETE FROM import_staging s
                   WHERE s.ctid >= $4::text::tid AND s.ctid < $5::text::tid
                     AND s.import_id = $1
                  RETURNING s.*),
              moved AS (
                  INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name,
                                     artist_name, artist_id, album_name, ms_played, source)
                  SELECT c.spotify_id, c.played_at, c.track_key, c.track_id, c.track_name,
                         c.artist_name, c.artist_id, c.album_name, c.ms_played, c.source
                    FROM chunk c
                   WHERE c.spotify_id = $3
                     AND NOT EXISTS (
                         SELECT 1 FROM plays p
                          WHERE p.spotify_id = $3
                            AND p.played_at BETWEEN c.played_at - make_interval(secs => $2)
                                                AND c.played_at + make_interval(secs => $2)
                            AND p.track_key = c.track_key
                            AND p.source <> c.source
                          -- A probe per staged play (a subplan, never an anti-join).
                          OFFSET 0)
                  ON CONFLICT DO NOTHING
                  RETURNING played_at, artist_name, track_name)
              SELECT (SELECT count(*) FROM moved),
                     COALESCE((SELECT json_agg(json_build_array(day, artist_name, track_name, n))
                                 FROM (SELECT (played_at AT TIME ZONE 'UTC')::date AS day,
                                              artist_name, track_name, count(*) AS n
                                         FROM moved WHERE played_at >= $6
                                        GROUP BY 1, 2, 3) r), '[]')::text",
        )
        .bind(self.import_id)
        .bind(OVERLAP_SECS)
        .bind(&self.listener)
        .bind(format!("({from},0)"))
        .bind(format!("({to},0)"))
        .bind(self.since)
        .fetch_one(&mut *self.tx)
        .await?;
        self.stored += stored;
        // Written by the statement above from typed columns: only a bug fails to decode it.
        let recent: RecentCounts = serde_json::from_str(&recent).unwrap_or_default();
        for (day, artist, track, n) in recent {
            *self.recent.entry((day, artist, track)).or_default() += n;
        }
        self.next = to;
        Ok(self.next < self.blocks)
    }

    /// Record the result and commit; returns how many plays were new and those of the
    /// recent days per day, artist and track.
    pub async fn commit(mut self) -> Result<(i64, RecentCounts), sqlx::Error> {
        // Plays of another listener an import could not hold, or staged after the move
        // began: never moved.
        sqlx::query("DELETE FROM import_staging WHERE import_id = $1")
            .bind(self.import_id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO import_results (import_id, stored) VALUES ($1, $2)")
            .bind(self.import_id)
            .bind(self.stored)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok((
            self.stored,
            self.recent
                .into_iter()
                .map(|((d, a, t), n)| (d, a, t, n))
                .collect(),
        ))
    }
}

/// Move an import's staged plays into `plays` in one transaction; returns how many were
/// new. Run again after it committed, it returns the recorded count and moves nothing.
pub async fn finalize(analytics: &PgPool, import_id: i64) -> Result<i64, sqlx::Error> {
    Ok(finalize_counted(analytics, import_id).await?.0)
}

/// [`finalize`], with the new plays of the days trending shows counted per day, artist
/// and track (none when it had run already).
pub async fn finalize_counted(
    analytics: &PgPool,
    import_id: i64,
) -> Result<(i64, RecentCounts), sqlx::Error> {
    match FinalMove::begin(analytics, import_id).await? {
        Begun::Recorded(stored) => Ok((stored, Vec::new())),
        Begun::Moving(mut moving) => {
            while moving.chunk().await? {}
            moving.commit().await
        }
    }
}

/// Remove what an import staged.
pub async fn discard(analytics: &PgPool, import_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM import_staging WHERE import_id = $1")
        .bind(import_id)
        .execute(analytics)
        .await
        .map(|_| ())
}

/// Why a run stopped short of done.
#[derive(Debug)]
enum Stop {
    /// The export cannot be read: the import failed, for this reason.
    Unreadable(ExportError),
    /// The node refused what it was given (not a store that did not answer): the import
    /// fails, for this reason.
    Refused(String),
    /// A store did not answer: the import waits and tries again.
    StoreDown(String),
    /// A connection broke (a pool that kept connections through an outage hands them out
    /// one by one, each failing once): the import tries again at once, a few times.
    Broken(String),
    /// The import was canceled, or another process took it over: this job stops.
    Gone,
}

impl Stop {
    fn of(e: impl Into<super::RoutedError>) -> Stop {
        let e = e.into();
        match &e {
            super::RoutedError::Node(db) if is_refusal(db) => Stop::Refused(e.to_string()),
            _ if e.is_disconnect() => Stop::Broken(e.to_string()),
            _ => Stop::StoreDown(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Stop {
        Stop::of(e)
    }
}

/// A store's answer within `deadline`, or [`Stop::StoreDown`].
async fn within<T, E: Into<Stop>>(
    deadline: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Stop> {
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Stop::StoreDown(format!("{what} did not answer"))),
    }
}

impl From<crate::server::shards::ShardError> for Stop {
    fn from(e: crate::server::shards::ShardError) -> Stop {
        Stop::of(e)
    }
}

impl From<super::RoutedError> for Stop {
    fn from(e: super::RoutedError) -> Stop {
        Stop::of(e)
    }
}

/// Read the upload of `id` from `skip` entries on, staging every batch on the listener's
/// node and recording the progress on `main` in the transaction that holds their
/// partition, after checking the import is still this job's (so a cancel recorded before
/// the batch keeps it out, and one after waits for it).
async fn read_and_stage(
    state: &AppState,
    id: i64,
    spotify_id: &str,
    path: PathBuf,
    skip: u64,
    cancel: &watch::Receiver<bool>,
) -> Result<(), Stop> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<Play>, Counts)>(2);
    let reader = tokio::task::spawn_blocking(move || -> Result<Counts, ExportError> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path).map_err(|_| ExportError::UploadGone)?;
        let mut head = [0u8; 8];
        let n = file.read(&mut head).unwrap_or(0);
        let kind = export::sniff(&head[..n])?;
        let file = std::fs::File::open(&path).map_err(|_| ExportError::UploadGone)?;
        let mut send = |plays: Vec<Play>, counts: Counts| {
            tx.blocking_send((plays, counts))
                .map_err(|_| "the import was stopped".to_string())
        };
        match kind {
            Upload::Zip => export::read_zip(
                std::io::BufReader::new(file),
                Limits::default(),
                skip,
                &mut send,
            ),
            Upload::Json => {
                // A JSON file alone: its shape says which history it is.
                let reader = std::io::BufReader::new(file);
                export::read_json(reader, Limits::default().max_file_bytes, skip, &mut send)
            }
        }
    });
    let main = &state.stores.main;
    while let Some((plays, mut counts)) = rx.recv().await {
        if *cancel.borrow() {
            return Err(Stop::Gone);
        }
        let mut shard = within(
            STORE_DEADLINE,
            "the listener's partition",
            state.stores.analytics.shard(main, spotify_id),
        )
        .await?;
        let live = within(
            STORE_DEADLINE,
            "main",
            sqlx::query(
                "UPDATE imports SET leased_until = now() + make_interval(secs => $3)
                  WHERE id = $1 AND leased_by = $2 AND status = 'reading'",
            )
            .bind(id)
            .bind(*RUNNER)
            .bind(LEASE_SECS)
            .execute(shard.main()),
        )
        .await?;
        if live.rows_affected() == 0 {
            // Canceled, or the lease went to another process (this one stalled past it).
            shard.release().await;
            return Err(Stop::Gone);
        }
        let skipped = within(
            STORE_DEADLINE,
            "the analytics node",
            stage_skipping(&shard.pool, id, spotify_id, &plays),
        )
        .await?;
        counts.plays -= skipped;
        counts.unreadable += skipped;
        within(
            STORE_DEADLINE,
            "main",
            sqlx::query(
                "UPDATE imports
                    SET entries_done = entries_done + $2, plays_read = plays_read + $3,
                        podcasts = podcasts + $4, unknown = unknown + $5, short = short + $6,
                        unreadable = unreadable + $7, stuck_since = NULL, error = NULL,
                        updated_at = now()
                  WHERE id = $1",
            )
            .bind(id)
            .bind(counts.entries as i64)
            .bind(counts.plays as i64)
            .bind(counts.podcasts as i64)
            .bind(counts.unknown as i64)
            .bind(counts.short as i64)
            .bind(counts.unreadable as i64)
            .execute(shard.main()),
        )
        .await?;
        within(STORE_DEADLINE, "main", shard.commit()).await?;
    }
    match reader.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(ExportError::Store(why))) => Err(Stop::StoreDown(why)),
        Ok(Err(e)) => Err(Stop::Unreadable(e)),
        Err(e) => Err(Stop::StoreDown(format!("the reader stopped: {e}"))),
    }
}

/// This process, as the holder of import leases.
static RUNNER: std::sync::LazyLock<i64> =
    std::sync::LazyLock::new(|| (rand::random::<u64>() >> 1) as i64);
/// How long a lease lasts without a batch renewing it.
const LEASE_SECS: f64 = 120.0;

/// The import jobs running in this process, each with its cancel signal and a way to wait
/// for it to stop.
#[derive(Clone, Default)]
pub struct Jobs(Arc<Mutex<HashMap<i64, Job>>>);

struct Job {
    cancel: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Job>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether import `id` runs in this process.
    pub fn running(&self, id: i64) -> bool {
        self.lock().contains_key(&id)
    }

    /// Signal import `id`'s job to stop and wait (at most `deadline`) until it has;
    /// `false` if it was still running then.
    async fn stop(&self, id: i64, deadline: Duration) -> bool {
        let stopped = {
            let jobs = self.lock();
            let Some(job) = jobs.get(&id) else {
                return true;
            };
            let _ = job.cancel.send(true);
            job.stopped.clone()
        };
        let mut stopped = stopped;
        let waited = tokio::time::timeout(deadline, stopped.wait_for(|s| *s)).await;
        // A closed channel: the supervisor is gone, so is the job.
        waited.is_ok()
    }
}

/// Run import `id` in this process unless it runs here already. Supervised: a job that
/// panics fails its import with a sentence (the same file would panic again), instead of
/// leaving it `reading`.
pub fn spawn(state: &AppState, id: i64) -> bool {
    let runner = state.clone();
    supervise(state, id, move |cancelled| run(runner, id, cancelled))
}

/// Run `job` (given its cancel signal) as import `id`'s job in this process, unless one
/// runs already: registered in [`Jobs`] while it runs, and a panic fails the import.
pub fn supervise<F, Fut>(state: &AppState, id: i64, job: F) -> bool
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (cancel, cancelled) = watch::channel(false);
    let (done, stopped) = watch::channel(false);
    {
        let mut jobs = state.imports.lock();
        if jobs.contains_key(&id) {
            return false;
        }
        jobs.insert(id, Job { cancel, stopped });
    }
    let state = state.clone();
    let job = job(cancelled);
    tokio::spawn(async move {
        let outcome = tokio::spawn(job).await;
        if let Err(e) = outcome {
            if e.is_panic() {
                tracing::error!(import = id, "an import job panicked; the import is failed");
                fail(
                    &state,
                    id,
                    "Personalify stopped this import because of an error of its own. Nothing \
                     of it was added; try uploading the file again.",
                )
                .await;
            }
        }
        state.imports.lock().remove(&id);
        let _ = done.send(true);
    });
    true
}

/// Run import `id` to its end: read and stage from where it stopped, then move the plays.
/// An export that cannot be read fails the import, with the reason; stores that do not
/// answer make it wait and try again, for at most `IMPORT_STORE_WAIT_SECS`. Returns when
/// the import is done, failed or canceled, or when another process holds it.
async fn run(state: AppState, id: i64, mut cancel: watch::Receiver<bool>) {
    let wait = state.config.import_store_wait;
    let pause = (wait / 5).clamp(Duration::from_secs(1), RETRY_EVERY);
    let mut since: Option<Instant> = None;
    // Tries at once after broken connections since the last pause, and since when.
    let mut quick: (u32, Option<Instant>) = (0, None);
    loop {
        if *cancel.borrow() {
            return;
        }
        let why = match run_once(&state, id, &cancel).await {
            Err(Stop::Broken(why))
                if quick.0 < QUICK_TRIES && quick.1.is_none_or(|t| t.elapsed() < QUICK_FOR) =>
            {
                tracing::debug!(import = id, why, "a connection broke; trying again");
                quick.0 += 1;
                quick.1.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(50) * quick.0.min(10)).await;
                continue;
            }
            Err(Stop::Broken(why)) => why,
            Ok(()) | Err(Stop::Gone) => return,
            Err(Stop::Unreadable(e)) => {
                fail(&state, id, &e.to_string()).await;
                return;
            }
            Err(Stop::Refused(why)) => {
                tracing::error!(import = id, why, "the analytics node refused an import");
                fail(
                    &state,
                    id,
                    "The analytics store refused these plays, so nothing of this import was \
                     added. Try again later, or upload the file again.",
                )
                .await;
                return;
            }
            Err(Stop::StoreDown(why)) => why,
        };
        // How long it has waited: as main recorded it (across restarts), else since this
        // job first failed.
        let first = *since.get_or_insert_with(Instant::now);
        let waited = match note_stuck(&state, id, &why).await {
            Some(waited) => {
                since = Some(Instant::now() - waited);
                waited
            }
            None => first.elapsed(),
        };
        if waited >= wait {
            tracing::warn!(
                import = id,
                why,
                "import stopped: its stores did not answer"
            );
            fail(
                &state,
                id,
                &format!(
                    "Personalify's stores did not answer for {}, so this import stopped. \
                     Nothing of it was added; upload the file again.",
                    spoken(wait)
                ),
            )
            .await;
            return;
        }
        tracing::warn!(import = id, why, "import waits for its stores");
        quick = (0, None);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.changed() => {}
        }
    }
}

/// "an hour", "90 seconds": a wait in words.
fn spoken(d: Duration) -> String {
    match d.as_secs() {
        3600 => "an hour".into(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 && s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// Record on main that import `id` could not go on (since when, and why); returns how
/// long it has been stuck, or `None` when main does not answer either.
async fn note_stuck(state: &AppState, id: i64, why: &str) -> Option<Duration> {
    let noted = sqlx::query_scalar::<_, f64>(
        "UPDATE imports SET stuck_since = COALESCE(stuck_since, now()), updated_at = now()
          WHERE id = $1 AND status IN ('reading', 'storing')
         RETURNING extract(epoch FROM now() - stuck_since)::float8",
    )
    .bind(id)
    .fetch_optional(&state.stores.main);
    match tokio::time::timeout(STORE_DEADLINE, noted).await {
        Ok(Ok(Some(secs))) => Some(Duration::from_secs_f64(secs.max(0.0))),
        Ok(Ok(None)) => Some(Duration::ZERO),
        _ => {
            tracing::debug!(import = id, why, "main did not answer either");
            None
        }
    }
}

async fn run_once(state: &AppState, id: i64, cancel: &watch::Receiver<bool>) -> Result<(), Stop> {
    let main = &state.stores.main;
    // Take (or keep) the lease; nothing comes back when the import is finished, gone, or
    // another process runs it.
    let claimed: Option<(String, String, i64)> = within(
        STORE_DEADLINE,
        "main",
        sqlx::query_as(
            "UPDATE imports i
                SET leased_by = $2, leased_until = now() + make_interval(secs => $3)
               FROM users u
              WHERE i.id = $1 AND u.id = i.user_id AND i.status IN ('reading', 'storing')
                AND (i.leased_by = $2 OR i.leased_until IS NULL OR i.leased_until < now())
             RETURNING u.spotify_id, i.status, i.entries_done",
        )
        .bind(id)
        .bind(*RUNNER)
        .bind(LEASE_SECS)
        .fetch_optional(main),
    )
    .await?;
    let Some((spotify_id, status, entries_done)) = claimed else {
        return Ok(());
    };
    let path = upload_path(&state.config.import_dir, id);
    if status == "reading" {
        read_and_stage(
            state,
            id,
            &spotify_id,
            path.clone(),
            entries_done.max(0) as u64,
            cancel,
        )
        .await?;
        let moved_on = within(
            STORE_DEADLINE,
            "main",
            sqlx::query(
                "UPDATE imports SET status = 'storing', updated_at = now()
                  WHERE id = $1 AND leased_by = $2 AND status = 'reading'",
            )
            .bind(id)
            .bind(*RUNNER)
            .execute(main),
        )
        .await?;
        if moved_on.rows_affected() == 0 {
            return Err(Stop::Gone);
        }
    }
    let stored = final_move(state, id, &spotify_id, cancel).await?;
    let _ = tokio::fs::remove_file(&path).await;
    tracing::info!(import = id, stored, "import done");
    Ok(())
}

/// Move the staged plays into `plays` (chunk by chunk, renewing the lease between), then,
/// holding the import's row on main, commit it on the node and record it done: a cancel
/// recorded before that leaves nothing moved, one after it finds the import done.
async fn final_move(
    state: &AppState,
    id: i64,
    spotify_id: &str,
    cancel: &watch::Receiver<bool>,
) -> Result<i64, Stop> {
    let main = &state.stores.main;
    let seen =
        crate::server::trending::seen_days(&state.stores, crate::server::trending::recent_window())
            .await;
    let mut shard = within(
        STORE_DEADLINE,
        "the listener's partition",
        state.stores.analytics.shard(main, spotify_id),
    )
    .await?;
    let begun = within(
        STORE_DEADLINE,
        "the analytics node",
        FinalMove::begin(&shard.pool, id),
    )
    .await?;
    let (stored, recent) = match begun {
        Begun::Recorded(stored) => (stored, Vec::new()),
        Begun::Moving(mut moving) => {
            loop {
                if *cancel.borrow() {
                    return Err(Stop::Gone);
                }
                let renewed = within(
                    STORE_DEADLINE,
                    "main",
                    sqlx::query(
                        "UPDATE imports SET leased_until = now() + make_interval(secs => $3),
                                            updated_at = now()
                          WHERE id = $1 AND leased_by = $2 AND status = 'storing'",
                    )
                    .bind(id)
                    .bind(*RUNNER)
                    .bind(LEASE_SECS)
                    .execute(main),
                )
                .await?;
                if renewed.rows_affected() == 0 {
                    return Err(Stop::Gone);
                }
                let mut canceled = cancel.clone();
                let more = tokio::select! {
                    more = within(CHUNK_DEADLINE, "the analytics node", moving.chunk()) => more?,
                    () = async { let _ = canceled.wait_for(|c| *c).await; } => {
                        // End the statement now (it may wait on a lock): the move is rolled
                        // back and its rows free for the cancel to drop.
                        let backend = moving.backend;
                        drop(moving);
                        let _ = tokio::time::timeout(
                            STORE_DEADLINE,
                            sqlx::query("SELECT pg_cancel_backend($1)")
                                .bind(backend)
                                .execute(&shard.pool),
                        )
                        .await;
                        return Err(Stop::Gone);
                    }
                };
                if !more {
                    break;
                }
            }
            let live: Option<i32> = within(
                STORE_DEADLINE,
                "main",
                sqlx::query_scalar(
                    "SELECT 1 FROM imports
                      WHERE id = $1 AND leased_by = $2 AND status = 'storing' FOR UPDATE",
                )
                .bind(id)
                .bind(*RUNNER)
                .fetch_optional(shard.main()),
            )
            .await?;
            if live.is_none() {
                return Err(Stop::Gone);
            }
            within(STORE_DEADLINE, "the analytics node", moving.commit()).await?
        }
    };
    within(
        STORE_DEADLINE,
        "main",
        sqlx::query(
            "UPDATE imports
                SET status = 'done', stored = $2, finished_at = now(), updated_at = now(),
                    leased_by = NULL, leased_until = NULL, stuck_since = NULL, error = NULL
              WHERE id = $1",
        )
        .bind(id)
        .bind(stored)
        .execute(shard.main()),
    )
    .await?;
    // Committed on the node already: if main's commit fails, the next try finds the
    // recorded count and records it.
    within(STORE_DEADLINE, "main", shard.commit()).await?;
    crate::server::trending::add(&state.stores, &seen, &recent).await;
    Ok(stored)
}

/// Drop what import `id` staged on every node (within a deadline each: a node that does
/// not answer keeps its rows until [`sweep`] finds them) and its upload.
async fn clean_up(state: &AppState, id: i64) {
    let _ = tokio::fs::remove_file(upload_path(&state.config.import_dir, id)).await;
    for node in state.stores.analytics.nodes() {
        let _ = tokio::time::timeout(STORE_DEADLINE, discard(&node.pool, id)).await;
    }
}

/// The export cannot be read (or the import cannot go on): say why on the import, drop
/// what it staged and the upload. A canceled or finished import stays as it is.
async fn fail(state: &AppState, id: i64, why: &str) {
    let recorded = sqlx::query(
        "UPDATE imports
            SET status = 'failed', error = $2, finished_at = now(), updated_at = now(),
                leased_by = NULL, leased_until = NULL, stuck_since = NULL
          WHERE id = $1 AND status IN ('reading', 'storing')",
    )
    .bind(id)
    .bind(why.chars().take(500).collect::<String>())
    .execute(&state.stores.main);
    match tokio::time::timeout(STORE_DEADLINE, recorded).await {
        Ok(Ok(done)) if done.rows_affected() == 0 => return,
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(import = id, error = %e, "cannot record a failed import"),
        Err(_) => tracing::error!(
            import = id,
            "cannot record a failed import: main did not answer"
        ),
    }
    clean_up(state, id).await;
    tracing::info!(import = id, why, "import failed");
}

/// What [`cancel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    /// It was running; it is canceled and nothing of it remains.
    Stopped,
    /// It had finished (done, failed or canceled) already: nothing changed.
    Finished,
    /// No such import (of this listener).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("main did not answer: {0}")]
    Main(String),
    #[error("the import's job did not stop within {0:?}")]
    StillRunning(Duration),
}

/// Cancel import `id` (of `user_id`, when given: the owner's button; an account deletion
/// passes none): record it canceled (once that is recorded, nothing of the job lands:
/// every write of it checks its row first, holding it), wait for this process's job to
/// stop, then drop its staging and its upload. Plays moved already (it was done) stay.
pub async fn cancel(
    state: &AppState,
    id: i64,
    user_id: Option<i64>,
) -> Result<Canceled, CancelError> {
    let main = &state.stores.main;
    let recorded: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(
        "WITH target AS (
             SELECT id, status FROM imports
              WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2) FOR UPDATE),
         canceled AS (
             UPDATE imports i
                SET status = 'canceled', finished_at = now(), updated_at = now(),
                    leased_by = NULL, leased_until = NULL, stuck_since = NULL,
                    error = NULL
               FROM target t
              WHERE i.id = t.id AND t.status IN ('reading', 'storing')
             RETURNING i.id)
         SELECT CASE WHEN EXISTS (SELECT 1 FROM canceled) THEN 'canceled' ELSE status END
           FROM target",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(main)
    .await;
    let outcome = match recorded {
        Ok(None) => return Ok(Canceled::Unknown),
        Ok(Some(status)) if status == "canceled" => Canceled::Stopped,
        Ok(Some(_)) => Canceled::Finished,
        Err(e) => return Err(CancelError::Main(e.to_string())),
    };
    if outcome == Canceled::Stopped {
        let deadline = CHUNK_DEADLINE + STORE_DEADLINE;
        if !state.imports.stop(id, deadline).await {
            // Its writes are fenced by the row, and sweep() drops its staging later.
            clean_up(state, id).await;
            return Err(CancelError::StillRunning(deadline));
        }
        clean_up(state, id).await;
        tracing::info!(import = id, "import canceled");
    }
    Ok(outcome)
}

/// Imports left unfinished (their lease ended: a process that stopped, a job that gave
/// up): run them here, unless they run here already.
pub async fn resume_unfinished(state: &AppState) -> Result<usize, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM imports
          WHERE status IN ('reading', 'storing')
            AND (leased_until IS NULL OR leased_until < now() OR leased_by = $1)
          ORDER BY id",
    )
    .bind(*RUNNER)
    .fetch_all(&state.stores.main)
    .await?;
    Ok(ids.into_iter().filter(|&id| spawn(state, id)).count())
}

/// What one [`sweep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Unfinished imports started again here.
    pub resumed: usize,
    /// Imports whose staging rows were dropped (no running import owns them).
    pub staging_dropped: usize,
    /// Files removed from the import folder: `.part` leftovers of uploads cut off, and
    /// uploads no running import owns.
    pub files_removed: usize,
}

/// Once a minute (task "imports", and at start-up): resume unfinished imports whose lease
/// ended; drop staging that no running import owns (canceled, failed, or its listener
/// deleted); remove upload leftovers (see [`crate::server::imports::sweep_parts`]) and
/// uploads of imports that are no longer running.
pub async fn sweep(state: &AppState) -> Swept {
    let mut swept = Swept::default();
    match resume_unfinished(state).await {
        Ok(n) => swept.resumed = n,
        Err(e) => tracing::warn!(error = %e, "cannot look for unfinished imports"),
    }
    for node in state.stores.analytics.nodes() {
        if node.is_migrated() {
            swept.staging_dropped += drop_orphan_staging(state, &node.pool).await;
        }
    }
    swept.files_removed += remove_orphan_uploads(state).await;
    swept.files_removed += crate::server::imports::sweep_parts(&state.config.import_dir).await;
    if swept != Swept::default() {
        tracing::info!(?swept, "imports swept");
    }
    swept
}

/// Drop the staging rows on a node of imports that are not running on main (finished,
/// or gone with their listener). Only imports found staged are asked about: an import
/// stages only once its row is on main, so one starting meanwhile is never taken.
async fn drop_orphan_staging(state: &AppState, node: &PgPool) -> usize {
    let staged = sqlx::query_scalar::<_, i64>("SELECT DISTINCT import_id FROM import_staging")
        .fetch_all(node);
    let Ok(Ok(staged)) = tokio::time::timeout(STORE_DEADLINE, staged).await else {
        return 0;
    };
    if staged.is_empty() {
        return 0;
    }
    let orphans = sqlx::query_scalar::<_, i64>(
        "SELECT s.id FROM unnest($1::bigint[]) s(id)
          WHERE NOT EXISTS (SELECT 1 FROM imports i
                             WHERE i.id = s.id AND i.status IN ('reading', 'storing'))",
    )
    .bind(&staged)
    .fetch_all(&state.stores.main);
    let Ok(Ok(orphans)) = tokio::time::timeout(STORE_DEADLINE, orphans).await else {
        return 0;
    };
    let mut dropped = 0;
    for id in orphans {
        if let Ok(Ok(())) = tokio::time::timeout(STORE_DEADLINE, discard(node, id)).await {
            dropped += 1;
        }
    }
    dropped
}

/// Remove `import-{id}.upload` files whose import is not running on main. Files are
/// listed first: an upload gets its name only once its import's row is on main.
async fn remove_orphan_uploads(state: &AppState) -> usize {
    let dir = &state.config.import_dir;
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return 0;
    };
    let mut found = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("import-"))
            .and_then(|n| n.strip_suffix(".upload"))
            .and_then(|n| n.parse::<i64>().ok())
        {
            found.push(id);
        }
    }
    if found.is_empty() {
        return 0;
    }
    let orphans = sqlx::query_scalar::<_, i64>(
        "SELECT s.id FROM unnest($1::bigint[]) s(id)
          WHERE NOT EXISTS (SELECT 1 FROM imports i
                             WHERE i.id = s.id AND i.status IN ('reading', 'storing'))",
    )
    .bind(&found)
    .fetch_all(&state.stores.main);
    let Ok(Ok(orphans)) = tokio::time::timeout(STORE_DEADLINE, orphans).await else {
        return 0;
    };
    let mut removed = 0;
    for id in orphans {
        if tokio::fs::remove_file(upload_path(dir, id)).await.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The supervised task "imports": [`sweep`] now and every [`SWEEP_EVERY`].
pub async fn run_sweeper(state: AppState) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if state.stores.main.is_closed() {
            return;
        }
        sweep(&state).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "An import of yours is already running; wait for it to finish (or cancel it), then \
         upload the next file."
    )]
    Busy,
    #[error("Personalify could not keep the upload: {0}")]
    Disk(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Whether `user_id` has an import running (checked before an upload is taken).
pub async fn has_running(main: &PgPool, user_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM imports
                         WHERE user_id = $1 AND status IN ('reading', 'storing'))",
    )
    .bind(user_id)
    .fetch_one(main)
    .await
}

/// Record an import of the file at `upload` (already checked to be a ZIP or JSON), move
/// the file where the import keeps it, and start reading it in the background.
pub async fn start(
    state: &AppState,
    user_id: i64,
    file_name: &str,
    bytes: u64,
    upload: &Path,
) -> Result<i64, StartError> {
    // The job is registered before the import's row exists, so the sweep never starts it
    // too (it would find the row before the upload is in place); it runs once the upload is.
    let id: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('imports', 'id'))")
        .fetch_one(&state.stores.main)
        .await?;
    let (ready, placed) = tokio::sync::oneshot::channel::<bool>();
    let runner = state.clone();
    supervise(state, id, move |cancel| async move {
        if placed.await == Ok(true) {
            run(runner, id, cancel).await;
        }
    });
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO imports (id, user_id, file_name, bytes, status, leased_by, leased_until)
         VALUES ($6, $1, $2, $3, 'reading', $4, now() + make_interval(secs => $5))
         RETURNING id",
    )
    .bind(user_id)
    .bind(file_name.chars().take(255).collect::<String>())
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .bind(*RUNNER)
    .bind(LEASE_SECS)
    .bind(id)
    .fetch_one(&state.stores.main)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            let _ = ready.send(false);
            return Err(StartError::Busy);
        }
        Err(e) => {
            let _ = ready.send(false);
            return Err(e.into());
        }
    }
    if let Err(e) = tokio::fs::rename(upload, upload_path(&state.config.import_dir, id)).await {
        let _ = ready.send(false);
        fail(
            state,
            id,
            "Personalify could not keep the upload on its disk",
        )
        .await;
        return Err(StartError::Disk(e.to_string()));
    }
    let _ = ready.send(true);
    Ok(id)
}

/// The person's imports, newest first.
pub async fn list(main: &PgPool, user_id: i64) -> Result<Vec<ImportStatus>, sqlx::Error> {
    type Row = (
        i64,
        String,
        i64,
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<String>,
        String,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, file_name, bytes, status, entries_done, plays_read, podcasts, unknown,
                short, unreadable, stored, error,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC',
                stuck_since IS NOT NULL AND status IN ('reading', 'storing')
           FROM imports WHERE user_id = $1 ORDER BY id DESC LIMIT 20",
    )
    .bind(user_id)
    .fetch_all(main)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                id,
                file_name,
                bytes,
                status,
                entries,
                plays,
                podcasts,
                unknown,
                short,
                unreadable,
                stored,
                error,
                created_at,
                waiting,
            )| {
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                ImportStatus {
                    id,
                    file_name,
                    bytes,
                    status,
                    counts: Counts {
                        entries: n(entries),
                        plays: n(plays),
                        podcasts: n(podcasts),
                        unknown: n(unknown),
                        short: n(short),
                        unreadable: n(unreadable),
                        files: 0,
                    },
                    stored,
                    error,
                    created_at,
                    waiting,
                }
            },
        )
        .collect())
}
