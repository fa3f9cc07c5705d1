//! `personalify bench-listening` (`make bench-listening`): the Listening panels' queries,
//! run on `main` through postgres_fdw against plays on the analytics node, in databases of
//! its own: N plays over U listeners, one of them heavy. Prints p50/p95 per query for the
//! heavy listener and for a typical one, and the whole page's load. Asserts nothing.

use super::{drop_database, ms, recreate_database, with_database};
use crate::domain::TimeRange;
use crate::server::config::{expose, Config};
use crate::server::listening::{self, NamedQuery};
use crate::server::store::{fdw, pg};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::{Duration, Instant};

const MAIN_DB: &str = "personalify_listening_bench";
const ANALYTICS_DB: &str = "analytics_listening_bench";

#[derive(Debug, Clone, Copy)]
pub struct ListeningBenchOptions {
    /// Plays in the whole table.
    pub plays: u64,
    pub users: u32,
    /// Plays of the heavy listener (part of `plays`).
    pub heavy: u64,
    /// Timed runs of each query.
    pub runs: u32,
    /// Plays in the export the import benchmark reads (0: skip it).
    pub import_plays: u64,
}

impl Default for ListeningBenchOptions {
    fn default() -> Self {
        ListeningBenchOptions {
            plays: 2_000_000,
            users: 50,
            heavy: 200_000,
            runs: 40,
            import_plays: 250_000,
        }
    }
}

pub async fn run(config: Config, options: ListeningBenchOptions) -> Result<String, String> {
    let main_admin = with_database(expose(&config.database_url), "postgres")?;
    let analytics_admin = with_database(expose(&config.analytics_database_url), "postgres")?;
    recreate_database(&main_admin, MAIN_DB).await?;
    recreate_database(&analytics_admin, ANALYTICS_DB).await?;
    let outcome = measure(&config, options).await;
    drop_database(&main_admin, MAIN_DB).await;
    drop_database(&analytics_admin, ANALYTICS_DB).await;
    outcome
}

async fn measure(config: &Config, options: ListeningBenchOptions) -> Result<String, String> {
    let main_url: secrecy::SecretString =
        with_database(expose(&config.database_url), MAIN_DB)?.into();
    let analytics_url = with_database(expose(&config.analytics_database_url), ANALYTICS_DB)?;
    let main = pg::connect_main(&main_url, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let analytics = PgPoolOptions::new()
        .max_connections(4)
        .connect(&analytics_url)
        .await
        .map_err(|e| e.to_string())?;
    pg::ANALYTICS_MIGRATIONS
        .run(&analytics)
        .await
        .map_err(|e| e.to_string())?;
    let mut target = config.analytics_fdw.clone();
    target.dbname = ANALYTICS_DB.into();
    fdw::ensure(&main, &[fdw::Link::first(&analytics, &target)])
        .await
        .map_err(|e| e.to_string())?;

    let started = Instant::now();
    seed(&main, &analytics, options).await?;
    let seeded = started.elapsed();

    let remote = pg::remote_reader(&main_url, Duration::from_secs(60));
    let mut report = format!(
        "bench-listening: {} plays over {} listeners (the heavy one: {}), seeded in {:.1} s\n\
         each query {} times on main through postgres_fdw (after one warm-up run)\n\n\
         {:<17} {:>12} {:>10} {:>10} {:>10} {:>10}\n",
        options.plays,
        options.users,
        options.heavy,
        seeded.as_secs_f64(),
        options.runs,
        "query",
        "listener",
        "rows",
        "p50 ms",
        "p95 ms",
        "max ms"
    );
    let typical_plays = (options.plays - options.heavy) / u64::from(options.users.max(2) - 1);
    for (who, label) in [("bench-000", options.heavy), ("bench-001", typical_plays)] {
        let artist = [listening::ARTIST_DAYS, listening::ARTIST_LISTENERS];
        for query in listening::QUERIES.into_iter().chain(artist) {
            let (rows, times) = time_query(&remote, query, who, options.runs).await?;
            report.push_str(&format!(
                "{:<17} {:>12} {:>10} {:>10.1} {:>10.1} {:>10.1}\n",
                query.name,
                format!("{label} plays"),
                rows,
                percentile(&times, 0.50),
                percentile(&times, 0.95),
                percentile(&times, 1.0),
            ));
        }
    }
    // The whole page: every panel concurrently, as /listening loads them.
    let stores_like = PageStores {
        main: main.clone(),
        remote: remote.clone(),
    };
    let mut page = Vec::new();
    for _ in 0..options.runs.max(1) {
        let t = Instant::now();
        stores_like.load("bench-000").await?;
        page.push(ms(t.elapsed()));
    }
    report.push_str(&format!(
        "\nthe whole page (all panels at once), heavy listener: p50 {:.1} ms, p95 {:.1} ms\n",
        percentile(&page, 0.50),
        percentile(&page, 0.95)
    ));
    if options.import_plays > 0 {
        report.push_str(&import_bench(&analytics, options.import_plays).await?);
    }
    Ok(report)
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

/// An export of about `plays` plays (the simulator's, a year per file), imported as the
/// import job does it: read and staged batch by batch, then moved into `plays` at once.
async fn import_bench(analytics: &PgPool, plays: u64) -> Result<String, String> {
    use crate::server::plays::export::{self, Limits};
    use crate::server::plays::{import, Play};
    use crate::server::sim::{SimConfig, Simulator};
    let sim = Simulator::new(SimConfig::new(
        "bench",
        Vec::new(),
        "http://127.0.0.1:9/sim",
    ));
    // About 50 plays a day, every 37th an episode and every 23rd a skip.
    let days = i64::try_from(plays * 100 / 4_600)
        .unwrap_or(i64::MAX)
        .max(1);
    let made = Instant::now();
    let zip = tokio::task::spawn_blocking(move || sim.sample_export("demo-alex", days))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the simulator made no export")?;
    let made = made.elapsed();
    let size_mb = zip.len() as f64 / 1_048_576.0;
    // Reading alone (nothing stored), to tell parsing from storing.
    let parse = Instant::now();
    let copy = zip.clone();
    let read = tokio::task::spawn_blocking(move || {
        export::read_zip(
            std::io::Cursor::new(copy),
            Limits::default(),
            0,
            &mut |_, _| Ok(()),
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let parse = parse.elapsed();
    let (entries, kept) = (read.entries, read.plays);
    let mut runs = Vec::new();
    let mut lines = String::new();
    // Three imports, each of the whole export for a listener of its own, into the same
    // table (its plays and indexes growing): one run says little on a machine whose disk
    // time varies by a second between identical inserts.
    for run in 1..=3i64 {
        checkpoint(analytics).await;
        reset_peak_rss();
        let before = peak_rss_mb().unwrap_or(0.0);
        let listener = format!("import-{run}");
        let started = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Play>>(2);
        let copy = zip.clone();
        let reader = tokio::task::spawn_blocking(move || {
            export::read_zip(
                std::io::Cursor::new(copy),
                Limits::default(),
                0,
                &mut |batch, _| tx.blocking_send(batch).map_err(|_| "stopped".to_string()),
            )
        });
        while let Some(batch) = rx.recv().await {
            import::stage(analytics, run, &listener, &batch)
                .await
                .map_err(|e| e.to_string())?;
        }
        let counts = reader
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let staged = started.elapsed();
        let stored = import::finalize(analytics, run)
            .await
            .map_err(|e| e.to_string())?;
        let total = started.elapsed();
        let peak = peak_rss_mb().unwrap_or(0.0);
        let rate = counts.plays as f64 / total.as_secs_f64();
        runs.push(rate);
        lines.push_str(&format!(
            "  run {run}: read and staged in {:.1} s, moved into plays in {:.1} s ({} new): \
             {:.0} plays/s parse to committed; peak RSS {:.0} MB ({:.0} MB before, the ZIP \
             in memory included)\n",
            staged.as_secs_f64(),
            (total - staged).as_secs_f64(),
            stored,
            rate,
            peak,
            before
        ));
    }
    Ok(format!(
        "\nimport: an export of {:.1} MB ({} entries, {} plays kept) made in {:.1} s; reading it \
         alone takes {:.1} s; imported 3 times:\n{lines}  median {:.0} plays/s\n",
        size_mb,
        entries,
        kept,
        made.as_secs_f64(),
        parse.as_secs_f64(),
        percentile(&runs, 0.5),
    ))
}

/// What `listening::load` needs, without the rest of the stores.
struct PageStores {
    main: PgPool,
    remote: PgPool,
}

impl PageStores {
    async fn load(&self, spotify_id: &str) -> Result<(), String> {
        listening::load_from(&self.main, &self.remote, spotify_id, TimeRange::ShortTerm)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

async fn time_query(
    remote: &PgPool,
    query: NamedQuery,
    spotify_id: &str,
    runs: u32,
) -> Result<(usize, Vec<f64>), String> {
    let range = TimeRange::ShortTerm;
    let today = chrono::Utc::now().date_naive();
    let args = listening::Args {
        spotify_id,
        since: chrono::Utc::now() - listening::window(range),
        from_day: listening::from_day(today, range),
        // The most played artist of the seed.
        artist: "Artist 0",
        time_zone: "UTC",
    };
    let once = || async {
        let (bound, _) = listening::arguments(query, &args);
        sqlx::query_with(query.sql, bound)
            .fetch_all(remote)
            .await
            .map(|rows| rows.len())
    };
    let rows = once().await.map_err(|e| format!("{}: {e}", query.name))?;
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let t = Instant::now();
        once().await.map_err(|e| format!("{}: {e}", query.name))?;
        times.push(ms(t.elapsed()));
    }
    Ok((rows, times))
}

pub(super) fn percentile(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Listeners `bench-000` … on main (this bench and bench-shards).
pub(super) async fn seed_users(main: &PgPool, users: u32) -> Result<(), String> {
    sqlx::query(
        "INSERT INTO users (spotify_id, display_name)
         SELECT 'bench-' || lpad(g::text, 3, '0'), 'Listener ' || g
           FROM generate_series(0, $1 - 1) g",
    )
    .bind(i64::from(users))
    .execute(main)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// `$2` plays of listener `$1`, generated on the node: 500 artists with 10 tracks each,
/// weighted towards the first ones, spread over three years (this bench and bench-shards).
pub(super) const SEED_PLAYS: &str = "
    INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name, artist_name,
                       artist_id, album_name, ms_played, source)
    SELECT $1, now() - (random() * interval '1095 days'),
           't' || a || '-' || t, 't' || a || '-' || t, 'Track ' || a || '-' || t,
           'Artist ' || a, 'a' || a, 'Album ' || a, 120000 + (random() * 180000)::int, 'recent'
      FROM (SELECT (power(random(), 2) * 500)::int AS a, (random() * 10)::int AS t
              FROM generate_series(1, $2)) g
    ON CONFLICT DO NOTHING";

/// Listeners on main; plays on the analytics node, generated there: 500 artists with 10
/// tracks each, weighted towards the first ones, spread over three years.
async fn seed(main: &PgPool, analytics: &PgPool, o: ListeningBenchOptions) -> Result<(), String> {
    seed_users(main, o.users).await?;
    let others = o.plays.saturating_sub(o.heavy);
    let each = others / u64::from(o.users.max(2) - 1);
    for user in 0..o.users {
        let n = if user == 0 { o.heavy } else { each };
        sqlx::query(SEED_PLAYS)
            .bind(format!("bench-{user:03}"))
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(analytics)
            .await
            .map_err(|e| e.to_string())?;
    }
    sqlx::query("ANALYZE")
        .execute(analytics)
        .await
        .map_err(|e| e.to_string())?;
    checkpoint(analytics).await;
    Ok(())
}

/// Write out what seeding left in memory now, so the timings do not include the
/// checkpoint it would cause (a superuser's right; skipped otherwise).
async fn checkpoint(pool: &PgPool) {
    if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
        tracing::info!(error = %e, "bench-listening: no CHECKPOINT before timing");
    }
}
