//! `personalify bench-shards` (`make bench-shards`): the sharded analytics tier, in
//! databases of its own on `main`, `analytics` and `analytics-2`: N plays over U listeners
//! (one heavy) spread over the two nodes. Measures
//! - an instance-wide aggregate through main with async foreign scans on and off, and
//!   each node's share of it run on the node alone;
//! - ingest: plays/s written through main's partitioned table (batched), and routed to the
//!   listener's node as the app writes them;
//! - one listener's Listening page, sharded, then with every partition moved onto
//!   `analytics` (the single-node layout), then sharded again (moved back), each after
//!   the nodes settle; the moves are timed too.
//!
//! Prints numbers; asserts nothing.

use super::{drop_database, ms, recreate_database, with_database};
use crate::domain::TimeRange;
use crate::server::config::{expose, Config, FdwTarget};
use crate::server::listening;
use crate::server::plays::{self, Play, Source};
use crate::server::shards;
use crate::server::store::{fdw, pg};
use sqlx::PgPool;
use std::time::{Duration, Instant};

const MAIN_DB: &str = "personalify_shards_bench";
const NODE_DB: &str = "analytics_shards_bench";

#[derive(Debug, Clone, Copy)]
pub struct ShardsBenchOptions {
    pub plays: u64,
    pub users: u32,
    /// Plays of the heavy listener (part of `plays`).
    pub heavy: u64,
    /// Timed runs of each measurement.
    pub runs: u32,
    /// Plays written by each ingest measurement.
    pub ingest: u64,
    /// Keep the bench databases afterwards (to look at plans by hand).
    pub keep: bool,
}

impl Default for ShardsBenchOptions {
    fn default() -> Self {
        ShardsBenchOptions {
            plays: 4_000_000,
            users: 200,
            heavy: 200_000,
            runs: 20,
            ingest: 200_000,
            keep: false,
        }
    }
}

pub async fn run(config: Config, options: ShardsBenchOptions) -> Result<String, String> {
    let second = config
        .analytics_2
        .clone()
        .ok_or("bench-shards needs the second node: set ANALYTICS_2_DATABASE_URL")?;
    let main_admin = with_database(expose(&config.database_url), "postgres")?;
    let node_admins = [
        with_database(expose(&config.analytics_database_url), "postgres")?,
        with_database(expose(&second.database_url), "postgres")?,
    ];
    recreate_database(&main_admin, MAIN_DB).await?;
    for admin in &node_admins {
        recreate_database(admin, NODE_DB).await?;
    }
    let outcome = measure(&config, options).await;
    if !options.keep {
        drop_database(&main_admin, MAIN_DB).await;
        for admin in &node_admins {
            drop_database(admin, NODE_DB).await;
        }
    }
    outcome
}

async fn measure(config: &Config, o: ShardsBenchOptions) -> Result<String, String> {
    let second = config.analytics_2.as_ref().ok_or("no second node")?;
    let main_url: secrecy::SecretString =
        with_database(expose(&config.database_url), MAIN_DB)?.into();
    let node = |url: &secrecy::SecretString, target: &FdwTarget| -> Result<_, String> {
        let mut target = target.clone();
        target.dbname = NODE_DB.into();
        Ok((with_database(expose(url), NODE_DB)?.into(), target))
    };
    let nodes = [
        node(&config.analytics_database_url, &config.analytics_fdw)?,
        node(&second.database_url, &second.fdw)?,
    ];
    let main = pg::connect_main(&main_url, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let analytics = pg::Analytics::connect(&nodes, Duration::from_secs(10)).await;
    analytics.link(main.clone()).await;
    if !analytics.is_ready() {
        return Err(format!(
            "the FDW set-up failed: {:?}",
            analytics.link_state()
        ));
    }
    let remote = pg::remote_reader(&main_url, Duration::from_secs(120));
    let node_pools: Vec<PgPool> = analytics.nodes().iter().map(|n| n.pool.clone()).collect();

    let started = Instant::now();
    let per_node = seed(&main, &analytics, o).await?;
    let mut report = format!(
        "bench-shards: {} plays over {} listeners (the heavy one: {}), 8 partitions over 2 \
         nodes ({} plays on analytics, {} on analytics-2), seeded in {:.1} s\n",
        o.plays,
        o.users,
        o.heavy,
        per_node[0],
        per_node[1],
        started.elapsed().as_secs_f64()
    );

    // What a play costs on disk (heap, indexes, TOAST), the plays and their rollups, both
    // nodes: what the projections in the README scale from.
    let (mut plays_bytes, mut rollup_bytes) = (0i64, 0i64);
    let leaves: Vec<String> = fdw::TABLES
        .iter()
        .flat_map(|t| (0..fdw::PARTITIONS).map(move |p| format!("{t}_p{p}")))
        .collect();
    for pool in &node_pools {
        let (a, b): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid))
                              FILTER (WHERE c.relname LIKE 'plays\\_p%'), 0)::bigint,
                    COALESCE(sum(pg_total_relation_size(c.oid))
                              FILTER (WHERE c.relname NOT LIKE 'plays\\_p%'), 0)::bigint
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relname = ANY($1)",
        )
        .bind(&leaves)
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
        plays_bytes += a;
        rollup_bytes += b;
    }
    let seeded = (per_node[0] + per_node[1]).max(1) as f64;
    report.push_str(&format!(
        "on disk: plays {:.0} MB ({:.0} bytes a play), rollups {:.0} MB ({:.0} bytes a play)\n",
        plays_bytes as f64 / 1e6,
        plays_bytes as f64 / seeded,
        rollup_bytes as f64 / 1e6,
        rollup_bytes as f64 / seeded,
    ));

    // 1. Instance-wide: plays and minutes per listener, every partition; after the nodes
    //    settle, so autovacuum of the rows just seeded does not run while it is measured.
    settle(&main, &node_pools).await?;
    const WIDE: &str =
        "SELECT spotify_id, count(*), sum(ms_played) FROM analytics.plays GROUP BY spotify_id";
    const NODE_WIDE: &str =
        "SELECT spotify_id, count(*), sum(ms_played) FROM plays GROUP BY spotify_id";
    let on = time(&remote, WIDE, o.runs).await?;
    set_async(&main, false).await?;
    let off = time(&remote, WIDE, o.runs).await?;
    set_async(&main, true).await?;
    // Each node's share alone, as main's remote queries run there: postgres_fdw reads
    // through a cursor, which runs without parallel workers, so the node alone is timed
    // without them too; and the node's partitions through main, one after another.
    let alone_1 = time_serial(&node_pools[0], NODE_WIDE, o.runs).await?;
    let alone_2 = time_serial(&node_pools[1], NODE_WIDE, o.runs).await?;
    let placed: Vec<(i16, String)> =
        sqlx::query_as("SELECT part, node FROM shard_placements ORDER BY part")
            .fetch_all(&main)
            .await
            .map_err(|e| e.to_string())?;
    let mut through = Vec::new();
    for node in ["analytics", "analytics-2"] {
        let sql = placed
            .iter()
            .filter(|(_, n)| n == node)
            .map(|(part, _)| {
                format!(
                    "SELECT spotify_id, count(*), sum(ms_played) FROM analytics.plays_p{part} GROUP BY spotify_id"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        through.push(time(&remote, &sql, o.runs).await?);
    }
    let slower = p(&through[0], 0.5).max(p(&through[1], 0.5));
    report.push_str(&format!(
        "\ninstance-wide aggregate (plays and minutes per listener, {} runs; p50 / p95 ms):\n\
         \x20 async foreign scans on   {:>8.1} / {:>8.1}\n\
         \x20 async foreign scans off  {:>8.1} / {:>8.1}   (sequential: on is {:.2}x faster)\n\
         \x20 analytics's partitions through main    {:>8.1} / {:>8.1}\n\
         \x20 analytics-2's partitions through main  {:>8.1} / {:>8.1}\n\
         \x20 analytics alone, on the node (no parallel workers)    {:>8.1} / {:>8.1}\n\
         \x20 analytics-2 alone, on the node (no parallel workers)  {:>8.1} / {:>8.1}\n\
         \x20 async on / the slower node's partitions through main: {:.2}\n",
        o.runs,
        p(&on, 0.5),
        p(&on, 0.95),
        p(&off, 0.5),
        p(&off, 0.95),
        p(&off, 0.5) / p(&on, 0.5),
        p(&through[0], 0.5),
        p(&through[0], 0.95),
        p(&through[1], 0.5),
        p(&through[1], 0.95),
        p(&alone_1, 0.5),
        p(&alone_1, 0.95),
        p(&alone_2, 0.5),
        p(&alone_2, 0.95),
        p(&on, 0.5) / slower,
    ));

    // 2. Ingest, both ways, into listeners spread over every partition.
    let through_main = ingest_through_main(&main, o.ingest).await?;
    let routed = ingest_routed(&main, &analytics, o.ingest).await?;
    report.push_str(&format!(
        "\ningest of {} plays in batches of {INGEST_BATCH}:\n\
         \x20 through main's partitioned table (INSERT ... ON CONFLICT DO NOTHING, batch_size 1000): {:.0} plays/s\n\
         \x20 routed to the listener's node (the app's way: placement lock, overlap check, rollups): {:.0} plays/s\n",
        o.ingest, through_main, routed
    ));
    // 3. One listener's page: sharded; with every partition on analytics (moved there);
    //    sharded again (moved back). Each after the nodes settle (vacuum, statistics,
    //    checkpoint), so writes before it do not weigh on it.
    settle(&main, &node_pools).await?;
    let sharded = page_times(&main, &remote, o.runs).await?;
    let placed: Vec<(i16, String)> =
        sqlx::query_as("SELECT part, node FROM shard_placements ORDER BY part")
            .fetch_all(&main)
            .await
            .map_err(|e| e.to_string())?;
    let away: Vec<i16> = placed
        .iter()
        .filter(|(_, n)| n != "analytics")
        .map(|(p, _)| *p)
        .collect();
    let (copied, took) = move_all(&analytics, &main, &away, "analytics").await?;
    settle(&main, &node_pools).await?;
    let single = page_times(&main, &remote, o.runs).await?;
    move_all(&analytics, &main, &away, "analytics-2").await?;
    settle(&main, &node_pools).await?;
    let again = page_times(&main, &remote, o.runs).await?;
    let line = |label: &str, a: &[f64], b: &[f64], c: &[f64]| {
        format!(
            "  {label:<22} sharded {:>7.1} / {:>7.1}   single node {:>7.1} / {:>7.1}   sharded again {:>7.1} / {:>7.1}   ratio {:.2}\n",
            p(a, 0.5),
            p(a, 0.95),
            p(b, 0.5),
            p(b, 0.95),
            p(c, 0.5),
            p(c, 0.95),
            (p(a, 0.5) + p(c, 0.5)) / 2.0 / p(b, 0.5),
        )
    };
    report.push_str("\none listener's Listening page (every panel at once; p50 / p95 ms; ratio: sharded p50s' mean / single node p50):\n");
    report.push_str(&line(
        &format!("heavy ({} plays)", o.heavy),
        &sharded.0,
        &single.0,
        &again.0,
    ));
    report.push_str(&line("typical", &sharded.1, &single.1, &again.1));
    report.push_str(&format!(
        "(single node: the {} partitions of analytics-2 moved to analytics, {} plays in {:.1} s, {:.0} plays/s; then moved back)\n",
        away.len(),
        copied,
        took.as_secs_f64(),
        copied as f64 / took.as_secs_f64(),
    ));
    Ok(report)
}

/// Move `parts` to `to`; the plays copied and the time it took.
async fn move_all(
    analytics: &pg::Analytics,
    main: &PgPool,
    parts: &[i16],
    to: &str,
) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let mut copied = 0;
    for part in parts {
        copied += shards::move_partition(analytics, main, i64::from(*part), to)
            .await
            .map_err(|e| e.to_string())?
            .copied;
    }
    Ok((copied, started.elapsed()))
}

/// Vacuum and analyze the nodes, write their checkpoints, refresh main's statistics.
async fn settle(main: &PgPool, nodes: &[PgPool]) -> Result<(), String> {
    for pool in nodes {
        for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
            let _ = sqlx::query(statement).execute(pool).await;
        }
    }
    fdw::analyze(main).await.map_err(|e| e.to_string())?;
    // A read replica subscribed to a node (the dev instance's, say) decodes every byte
    // of WAL the writes above made, other databases' included: wait until it has (at
    // most two minutes), so that work is not measured with what follows.
    let until = Instant::now() + Duration::from_secs(120);
    for pool in nodes {
        while Instant::now() < until {
            let behind: Option<i64> = sqlx::query_scalar(
                "SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn))::bigint
                   FROM pg_stat_replication",
            )
            .fetch_one(pool)
            .await
            .map_err(|e| e.to_string())?;
            if behind.unwrap_or(0) <= 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn set_async(main: &PgPool, on: bool) -> Result<(), String> {
    for server in [fdw::SERVER, "analytics_2_node"] {
        sqlx::query(&format!(
            "ALTER SERVER {server} OPTIONS (SET async_capable '{on}')"
        ))
        .execute(main)
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// [`time`] on one connection of `pool` with parallel query off.
async fn time_serial(pool: &PgPool, sql: &str, runs: u32) -> Result<Vec<f64>, String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    sqlx::query("SET max_parallel_workers_per_gather = 0")
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for run in 0..=runs.max(1) {
        let t = Instant::now();
        sqlx::query(sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        if run > 0 {
            times.push(ms(t.elapsed()));
        }
    }
    Ok(times)
}

async fn time(pool: &PgPool, sql: &str, runs: u32) -> Result<Vec<f64>, String> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        sqlx::query(sql)
            .fetch_all(pool)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        times.push(ms(t.elapsed()));
    }
    Ok(times)
}

/// The heavy listener's and a typical one's whole Listening page, `runs` times each.
async fn page_times(
    main: &PgPool,
    remote: &PgPool,
    runs: u32,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut out = (Vec::new(), Vec::new());
    for (who, times) in [("bench-000", &mut out.0), ("bench-001", &mut out.1)] {
        listening::load_from(main, remote, who, TimeRange::ShortTerm)
            .await
            .map_err(|e| e.to_string())?;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            listening::load_from(main, remote, who, TimeRange::ShortTerm)
                .await
                .map_err(|e| e.to_string())?;
            times.push(ms(t.elapsed()));
        }
    }
    Ok(out)
}

fn p(times: &[f64], q: f64) -> f64 {
    super::listening::percentile(times, q)
}

/// Listeners on main; each one's plays generated on their node. Returns plays per node.
async fn seed(
    main: &PgPool,
    analytics: &pg::Analytics,
    o: ShardsBenchOptions,
) -> Result<[u64; 2], String> {
    super::listening::seed_users(main, o.users).await?;
    let each = o.plays.saturating_sub(o.heavy) / u64::from(o.users.max(2) - 1);
    let mut per_node = [0u64; 2];
    for user in 0..o.users {
        let who = format!("bench-{user:03}");
        let n = if user == 0 { o.heavy } else { each };
        let shard = analytics
            .shard(main, &who)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query(super::listening::SEED_PLAYS)
            .bind(&who)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(&shard.pool)
            .await
            .map_err(|e| e.to_string())?;
        per_node[usize::from(shard.node != "analytics")] += n;
        shard.release().await;
    }
    for node in analytics.nodes() {
        for statement in ["ANALYZE", "CHECKPOINT"] {
            let _ = sqlx::query(statement).execute(&node.pool).await;
        }
    }
    fdw::analyze(main).await.map_err(|e| e.to_string())?;
    Ok(per_node)
}

const INGEST_BATCH: usize = 5_000;

/// New plays for `listeners` listeners named `prefix-N`, `n` in all, in batches, each
/// batch one listener's.
fn ingest_batches(prefix: &str, n: u64) -> Vec<(String, Vec<Play>)> {
    let start = chrono::Utc::now() - chrono::Duration::days(400);
    let batches = (n as usize).div_ceil(INGEST_BATCH);
    (0..batches)
        .map(|b| {
            let who = format!("{prefix}-{}", b % 40);
            let plays = (0..INGEST_BATCH)
                .map(|i| Play {
                    played_at: start
                        + chrono::Duration::seconds((b * INGEST_BATCH + i) as i64 * 97),
                    track_id: Some(format!("t{}", i % 300)),
                    track_name: format!("Track {}", i % 300),
                    artist_name: format!("Artist {}", i % 60),
                    artist_id: None,
                    album_name: None,
                    ms_played: 180_000,
                    source: Source::Recent,
                })
                .collect();
            (who, plays)
        })
        .collect()
}

async fn ingest_through_main(main: &PgPool, n: u64) -> Result<f64, String> {
    let batches = ingest_batches("ingest-main", n);
    let started = Instant::now();
    let mut written = 0u64;
    for (who, batch) in &batches {
        let c = plays::Columns::of(batch);
        let done = sqlx::query(
            "INSERT INTO analytics.plays (spotify_id, played_at, track_key, track_id,
                    track_name, artist_name, artist_id, album_name, ms_played, source)
             SELECT $1, x.played_at, x.track_id, x.track_id, x.track_name, x.artist_name,
                    x.artist_id, x.album_name, x.ms_played, x.source
               FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::int[], $9::text[])
                    AS x(played_at, track_id, track_name, artist_name, artist_id, album_name,
                         ms_played, source)
             ON CONFLICT DO NOTHING",
        )
        .bind(who)
        .bind(&c.at)
        .bind(&c.track_id)
        .bind(&c.track_name)
        .bind(&c.artist_name)
        .bind(&c.artist_id)
        .bind(&c.album_name)
        .bind(&c.ms_played)
        .bind(&c.source)
        .execute(main)
        .await
        .map_err(|e| format!("insert through main: {e}"))?;
        written += done.rows_affected();
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

async fn ingest_routed(main: &PgPool, analytics: &pg::Analytics, n: u64) -> Result<f64, String> {
    let batches = ingest_batches("ingest-routed", n);
    let started = Instant::now();
    let mut written = 0u64;
    for (who, batch) in &batches {
        let shard = analytics
            .shard(main, who)
            .await
            .map_err(|e| e.to_string())?;
        written += plays::store(&shard.pool, who, batch)
            .await
            .map_err(|e| e.to_string())?;
        shard.release().await;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}
