//! `personalify bench-import` (`make bench-import`): the import job end to end, as an
//! upload runs it (the app's own pools, so the nodes' 30 s statement timeout applies), on
//! a generated extended-history export of N plays (default 2,000,000) in databases of its
//! own: imported once (every play new), then the same file again (every play there
//! already, the case that used to wedge); then the listener deletes their account, every
//! play with it. Prints each run's time, plays/s and peak RSS, and the deletion's time.

use super::{drop_database, recreate_database, with_database};
use crate::server::config::{expose, Config, SpotifyMode};
use crate::server::plays::import;
use crate::server::startup::Application;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const MAIN_DB: &str = "personalify_import_bench";
const ANALYTICS_DB: &str = "analytics_import_bench";
/// Entries per history file (a real export's files hold ~15,000).
const PER_FILE: u64 = 20_000;

#[derive(Debug, Clone, Copy)]
pub struct ImportBenchOptions {
    /// Plays in the export.
    pub plays: u64,
    /// Imports of the same file (the first stores every play, the others none).
    pub runs: u32,
}

impl Default for ImportBenchOptions {
    fn default() -> Self {
        ImportBenchOptions {
            plays: 2_000_000,
            runs: 2,
        }
    }
}

pub async fn run(config: Config, options: ImportBenchOptions) -> Result<String, String> {
    let main_admin = with_database(expose(&config.database_url), "postgres")?;
    let analytics_admin = with_database(expose(&config.analytics_database_url), "postgres")?;
    recreate_database(&main_admin, MAIN_DB).await?;
    recreate_database(&analytics_admin, ANALYTICS_DB).await?;
    let dir = std::env::temp_dir().join(format!("personalify-import-bench-{}", std::process::id()));
    let mut bench = config.clone();
    bench.database_url = with_database(expose(&config.database_url), MAIN_DB)?.into();
    bench.analytics_database_url =
        with_database(expose(&config.analytics_database_url), ANALYTICS_DB)?.into();
    bench.analytics_fdw.dbname = ANALYTICS_DB.into();
    // One node: the second node's databases are not the bench's.
    bench.analytics_2 = None;
    bench.analytics_replica = None;
    bench.mongodb_database = MAIN_DB.into();
    bench.redis_key_prefix = format!("{}import-bench:", config.redis_key_prefix);
    bench.spotify = SpotifyMode::Demo;
    bench.site_addr = ([127, 0, 0, 1], 0).into();
    bench.import_dir = dir.join("imports");
    let outcome = measure(bench.clone(), &dir, options).await;
    // What the app left in MongoDB and Redis under the bench's names.
    let budget = Duration::from_secs(2);
    if let Ok(mongo) = crate::server::store::mongo::Mongo::connect(
        &bench.mongodb_url,
        &bench.mongodb_database,
        budget,
    )
    .await
    {
        let _ = mongo.db.drop().await;
    }
    if let Ok(cache) = crate::server::store::cache::Cache::connect(
        &bench.redis_url,
        &bench.redis_key_prefix,
        budget,
    )
    .await
    {
        super::pages::delete_prefixed(&cache).await;
    }
    drop_database(&main_admin, MAIN_DB).await;
    drop_database(&analytics_admin, ANALYTICS_DB).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn measure(
    config: Config,
    dir: &Path,
    options: ImportBenchOptions,
) -> Result<String, String> {
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let state = app.state().clone();
    let _ = state.stores.mongo.db.drop().await;
    let linked = Instant::now();
    while !state.stores.analytics.is_ready() {
        if linked.elapsed() > Duration::from_secs(60) {
            return Err("the analytics node was not linked within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (spotify_id, display_name) VALUES ('import-bench', 'Bench')
         RETURNING id",
    )
    .fetch_one(&state.stores.main)
    .await
    .map_err(|e| e.to_string())?;

    let export = dir.join("export.zip");
    let made = Instant::now();
    let plays = options.plays;
    let path = export.clone();
    let bytes = tokio::task::spawn_blocking(move || write_export(&path, plays))
        .await
        .map_err(|e| e.to_string())??;
    let made = made.elapsed();
    let mut report = format!(
        "bench-import: an extended-history export of {plays} plays ({} files, {:.0} MB packed) \
         made in {:.1} s, imported {} times by the import job (the app's pools: statement \
         timeout 30 s on the node)\n",
        plays.div_ceil(PER_FILE),
        bytes as f64 / 1_048_576.0,
        made.as_secs_f64(),
        options.runs
    );
    for run in 1..=options.runs {
        let copy = dir.join(format!("upload-run-{run}.zip"));
        std::fs::copy(&export, &copy).map_err(|e| e.to_string())?;
        reset_peak_rss();
        let started = Instant::now();
        let id = import::start(&state, user_id, "bench.zip", bytes, &copy)
            .await
            .map_err(|e| e.to_string())?;
        // When the job was first seen moving the staged plays (polled every 100 ms).
        let mut storing: Option<Duration> = None;
        let (status, stored, read, error) = loop {
            let row: (String, Option<i64>, i64, Option<String>) = sqlx::query_as(
                "SELECT status, stored, plays_read, error FROM imports WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&state.stores.main)
            .await
            .map_err(|e| e.to_string())?;
            if row.0 == "storing" && storing.is_none() {
                storing = Some(started.elapsed());
            }
            if row.0 != "reading" && row.0 != "storing" {
                break row;
            }
            if started.elapsed() > Duration::from_secs(3600) {
                return Err(format!("import {id} still {} after an hour", row.0));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let total = started.elapsed();
        let read_for = storing.unwrap_or(total);
        report.push_str(&format!(
            "  run {run}: {status} in {:.1} s (read and staged in {:.1} s, moved into plays in \
             {:.1} s), {read} plays read, {} new: {:.0} plays/s start to done; peak RSS {:.0} MB{}\n",
            total.as_secs_f64(),
            read_for.as_secs_f64(),
            (total - read_for).as_secs_f64(),
            stored.unwrap_or(0),
            read as f64 / total.as_secs_f64(),
            peak_rss_mb().unwrap_or(0.0),
            error.map(|e| format!(" ({e})")).unwrap_or_default(),
        ));
    }
    // Then the listener deletes their account: every play of theirs goes, in chunks.
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
        .bind(BENCH_LISTENER)
        .fetch_one(&state.stores.analytics.pool)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let spotify_id = crate::server::deletion::begin(&state, user_id)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = crate::server::deletion::run(&state, &spotify_id).await;
    let took = started.elapsed();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM plays WHERE spotify_id = $1")
        .bind(BENCH_LISTENER)
        .fetch_one(&state.stores.analytics.pool)
        .await
        .map_err(|e| e.to_string())?;
    report.push_str(&format!(
        "  account deleted: {held} plays in {:.1} s ({:.0} plays/s, chunks of {}), {:?}, {left} plays left\n",
        took.as_secs_f64(),
        held as f64 / took.as_secs_f64(),
        crate::server::deletion::CHUNK,
        outcome,
    ));
    Ok(report)
}

/// The bench's listener.
const BENCH_LISTENER: &str = "import-bench";

/// A ZIP of extended-history files holding `plays` plays of 10,000 tracks by 1,000
/// artists, one every 150 s back from now, with every field a real export has; returns
/// its size.
fn write_export(path: &Path, plays: u64) -> Result<u64, String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(false);
    let now = chrono::Utc::now();
    let mut written = 0;
    let mut part = 0;
    while written < plays {
        let name =
            format!("Spotify Extended Streaming History/Streaming_History_Audio_{part:04}.json");
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        let n = PER_FILE.min(plays - written);
        let mut body = String::with_capacity(n as usize * 640);
        body.push('[');
        for i in written..written + n {
            let at = now - chrono::Duration::seconds(150 * (plays - i) as i64);
            let track = (i * 7_919) % 10_000;
            let artist = track / 10;
            if i > written {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"ts":"{}","platform":"android","ms_played":{},"conn_country":"ID","ip_addr":"203.0.113.7","master_metadata_track_name":"Track {track}","master_metadata_album_artist_name":"Artist {artist}","master_metadata_album_album_name":"Album {artist}","spotify_track_uri":"spotify:track:bench{track:017}","episode_name":null,"episode_show_name":null,"spotify_episode_uri":null,"audiobook_title":null,"audiobook_uri":null,"audiobook_chapter_uri":null,"audiobook_chapter_title":null,"reason_start":"trackdone","reason_end":"trackdone","shuffle":false,"skipped":false,"offline":false,"offline_timestamp":null,"incognito_mode":false}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                120_000 + (i % 180) * 1_000,
            ));
        }
        body.push(']');
        zip.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
        written += n;
        part += 1;
    }
    zip.finish().map_err(|e| e.to_string())?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// The peak resident memory of this process since it was last reset, in MB (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Start counting the peak anew (Linux: clear_refs 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
