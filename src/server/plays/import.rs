//! Importing a listener's privacy export: the upload is kept in a file while an import job
//! reads it ([`super::export`]) on a blocking thread, batch by batch into `import_staging`
//! on the analytics node, recording how far it got on `main` (`imports.entries_done`).
//! When the whole export is read, one transaction on the analytics node moves the staged
//! plays into `plays` (skipping plays it has, by the same rule as the poller) and records
//! how many were new. So an import cut off midway has added no plays; it resumes where it
//! stopped (after a restart, or when the analytics node is back), or, for an export that
//! cannot be read, fails with the reason and its staging is removed.

use super::export::{self, Counts, ExportError, Limits, Upload};
use super::{Play, OVERLAP_SECS};
use crate::server::state::AppState;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A store that does not answer a batch in this long is treated as down (the import waits).
const STORE_DEADLINE: Duration = Duration::from_secs(30);
/// Between tries while the analytics node is down.
const RETRY_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportStatus {
    pub id: i64,
    pub file_name: String,
    pub bytes: i64,
    /// "reading", "storing", "done" or "failed".
    pub status: String,
    pub counts: Counts,
    /// New plays, once done.
    pub stored: Option<i64>,
    pub error: Option<String>,
    pub created_at: String,
}

/// Where the upload of import `id` is kept.
pub fn upload_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("import-{id}.upload"))
}

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
    sqlx::query(
        r"INSERT INTO import_staging (import_id, spotify_id, played_at, track_key, track_id,
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
                      ms_played, source)",
    )
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

/// Move an import's staged plays into `plays` in one transaction; returns how many were
/// new. Run again after it committed, it returns the recorded count and moves nothing.
pub async fn finalize(analytics: &PgPool, import_id: i64) -> Result<i64, sqlx::Error> {
    Ok(finalize_counted(analytics, import_id).await?.0)
}

/// New plays of the last days, per UTC day, artist and track (for trending).
pub type RecentCounts = Vec<(chrono::NaiveDate, String, String, i64)>;

/// [`finalize`], with the new plays of the days trending shows counted per day, artist
/// and track (none when it had run already).
pub async fn finalize_counted(
    analytics: &PgPool,
    import_id: i64,
) -> Result<(i64, RecentCounts), sqlx::Error> {
    let mut tx = analytics.begin().await?;
    let recorded: Option<i64> =
        sqlx::query_scalar("SELECT stored FROM import_results WHERE import_id = $1")
            .bind(import_id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(stored) = recorded {
        return Ok((stored, Vec::new()));
    }
    // One listener per import. Naming them in the query lets the planner look only at
    // their plays for the overlap check (else it hashes every listener's: 1 s of 3.8 for
    // a 240,000-play import into a 2,000,000-play table).
    let listener: Option<String> =
        sqlx::query_scalar("SELECT spotify_id FROM import_staging WHERE import_id = $1 LIMIT 1")
            .bind(import_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (stored, recent): (i64, String) = sqlx::query_as(
        r"WITH moved AS (
              INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name,
                                 artist_name, artist_id, album_name, ms_played, source)
              SELECT s.spotify_id, s.played_at, s.track_key, s.track_id, s.track_name,
                     s.artist_name, s.artist_id, s.album_name, s.ms_played, s.source
                FROM import_staging s
               WHERE s.import_id = $1
                 AND s.spotify_id = $3
                 AND NOT EXISTS (
                     SELECT 1 FROM plays p
                      WHERE p.spotify_id = $3
                        AND p.played_at BETWEEN s.played_at - make_interval(secs => $2)
                                            AND s.played_at + make_interval(secs => $2)
                        AND p.track_key = s.track_key
                        AND p.source <> s.source)
              ON CONFLICT DO NOTHING
              RETURNING played_at, artist_name, track_name),
          result AS (
              INSERT INTO import_results (import_id, stored)
              SELECT $1, count(*) FROM moved
              RETURNING stored)
          SELECT (SELECT stored FROM result),
                 COALESCE((SELECT json_agg(json_build_array(day, artist_name, track_name, n))
                             FROM (SELECT (played_at AT TIME ZONE 'UTC')::date AS day,
                                          artist_name, track_name, count(*) AS n
                                     FROM moved WHERE played_at >= $4
                                    GROUP BY 1, 2, 3) r), '[]')::text",
    )
    .bind(import_id)
    .bind(OVERLAP_SECS)
    .bind(listener.unwrap_or_default())
    .bind(
        (chrono::Utc::now().date_naive()
            - chrono::Duration::days(crate::server::trending::KEEP_DAYS))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc()),
    )
    .fetch_one(&mut *tx)
    .await?;
    // Written by the statement above from typed columns: only a bug fails to decode it.
    let recent: RecentCounts = serde_json::from_str(&recent).unwrap_or_default();
    sqlx::query("DELETE FROM import_staging WHERE import_id = $1")
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((stored, recent))
}

/// Remove what a failed import staged.
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
    /// A store did not take a batch: the import waits and resumes.
    StoreDown(String),
}

/// Read the upload of `id` from `skip` entries on, staging every batch and recording the
/// progress (and renewing the lease) after each.
async fn read_and_stage(
    state: &AppState,
    id: i64,
    spotify_id: &str,
    path: PathBuf,
    skip: u64,
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
    while let Some((plays, counts)) = rx.recv().await {
        // On the listener's node, held against a move of their partition (which refuses
        // to move a partition with an import in progress).
        let staged = tokio::time::timeout(STORE_DEADLINE, async {
            let shard = state.stores.analytics.shard(main, spotify_id).await?;
            stage(&shard.pool, id, spotify_id, &plays).await?;
            shard.release().await;
            Ok::<_, super::RoutedError>(())
        });
        match staged.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Stop::StoreDown(e.to_string())),
            Err(_) => return Err(Stop::StoreDown("the analytics node did not answer".into())),
        }
        let recorded = sqlx::query(
            "UPDATE imports
                SET entries_done = entries_done + $2, plays_read = plays_read + $3,
                    podcasts = podcasts + $4, unknown = unknown + $5, short = short + $6,
                    updated_at = now(), leased_until = now() + make_interval(secs => $8)
              WHERE id = $1 AND leased_by = $7",
        )
        .bind(id)
        .bind(counts.entries as i64)
        .bind(counts.plays as i64)
        .bind(counts.podcasts as i64)
        .bind(counts.unknown as i64)
        .bind(counts.short as i64)
        .bind(*RUNNER)
        .bind(LEASE_SECS)
        .execute(main)
        .await;
        match recorded {
            Err(e) => return Err(Stop::StoreDown(e.to_string())),
            // The lease went to another process (this one stalled past it): that one
            // goes on; this one stops here, and the next try finds the import taken.
            Ok(done) if done.rows_affected() == 0 => {
                return Err(Stop::StoreDown(
                    "another process took the import over".into(),
                ))
            }
            Ok(_) => {}
        }
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

/// Run import `id` to its end: read and stage from where it stopped, then move the plays.
/// An export that cannot be read fails the import, with the reason; a store that is down
/// makes it wait and resume. Returns when the import is done or failed, or when another
/// process holds it.
pub async fn run(state: AppState, id: i64) {
    loop {
        match run_once(&state, id).await {
            Ok(()) => return,
            Err(Stop::Unreadable(e)) => {
                fail(&state, id, &e.to_string()).await;
                return;
            }
            Err(Stop::StoreDown(why)) => {
                tracing::warn!(import = id, why, "import waits for its stores");
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

async fn run_once(state: &AppState, id: i64) -> Result<(), Stop> {
    let main = &state.stores.main;
    let down = |e: sqlx::Error| Stop::StoreDown(e.to_string());
    // Take (or keep) the lease; nothing comes back when the import is finished, gone, or
    // another process runs it.
    let claimed: Option<(String, String, i64)> = sqlx::query_as(
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
    .fetch_optional(main)
    .await
    .map_err(down)?;
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
        )
        .await?;
        sqlx::query("UPDATE imports SET status = 'storing', updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(main)
            .await
            .map_err(down)?;
    }
    let finalized = async {
        let seen = crate::server::trending::seen_days(
            &state.stores,
            crate::server::trending::recent_window(),
        )
        .await;
        let shard = state.stores.analytics.shard(main, &spotify_id).await?;
        let (stored, recent) = finalize_counted(&shard.pool, id).await?;
        shard.release().await;
        crate::server::trending::add(&state.stores, &seen, &recent).await;
        Ok::<_, super::RoutedError>(stored)
    };
    let stored = match tokio::time::timeout(STORE_DEADLINE * 4, finalized).await {
        Ok(Ok(stored)) => stored,
        Ok(Err(e)) => return Err(Stop::StoreDown(e.to_string())),
        Err(_) => return Err(Stop::StoreDown("the analytics node did not answer".into())),
    };
    sqlx::query(
        "UPDATE imports
            SET status = 'done', stored = $2, finished_at = now(), updated_at = now(),
                leased_by = NULL, leased_until = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(stored)
    .execute(main)
    .await
    .map_err(down)?;
    let _ = tokio::fs::remove_file(&path).await;
    tracing::info!(import = id, stored, "import done");
    Ok(())
}

/// The export cannot be read: say why on the import, drop what it staged and the upload.
async fn fail(state: &AppState, id: i64, why: &str) {
    // Wherever it staged (a node it could not reach keeps the rows; they are never moved).
    for node in state.stores.analytics.nodes() {
        let _ = tokio::time::timeout(STORE_DEADLINE, discard(&node.pool, id)).await;
    }
    let recorded = sqlx::query(
        "UPDATE imports
            SET status = 'failed', error = $2, finished_at = now(), updated_at = now(),
                leased_by = NULL, leased_until = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(why.chars().take(500).collect::<String>())
    .execute(&state.stores.main)
    .await;
    if let Err(e) = recorded {
        tracing::error!(import = id, error = %e, "cannot record a failed import");
    }
    let _ = tokio::fs::remove_file(upload_path(&state.config.import_dir, id)).await;
    tracing::info!(import = id, why, "import failed");
}

/// Imports left unfinished by a process that stopped (their lease ended): run them.
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
    for &id in &ids {
        tokio::spawn(run(state.clone(), id));
    }
    Ok(ids.len())
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "An import of yours is already running; wait for it to finish, then upload the next file."
    )]
    Busy,
    #[error("Personalify could not keep the upload: {0}")]
    Disk(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO imports (user_id, file_name, bytes, status, leased_by, leased_until)
         VALUES ($1, $2, $3, 'reading', $4, now() + make_interval(secs => $5))
         RETURNING id",
    )
    .bind(user_id)
    .bind(file_name.chars().take(255).collect::<String>())
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .bind(*RUNNER)
    .bind(LEASE_SECS)
    .fetch_one(&state.stores.main)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            return Err(StartError::Busy)
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = tokio::fs::rename(upload, upload_path(&state.config.import_dir, id)).await {
        fail(
            state,
            id,
            "Personalify could not keep the upload on its disk",
        )
        .await;
        return Err(StartError::Disk(e.to_string()));
    }
    tokio::spawn(run(state.clone(), id));
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
        Option<i64>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, file_name, bytes, status, entries_done, plays_read, podcasts, unknown,
                short, stored, error,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
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
                stored,
                error,
                created_at,
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
                        unreadable: 0,
                        files: 0,
                    },
                    stored,
                    error,
                    created_at,
                }
            },
        )
        .collect())
}
