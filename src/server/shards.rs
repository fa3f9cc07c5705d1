//! The plays' partitions on the analytics nodes: which node holds a listener's rows, and
//! the lock that keeps a write and a move of the partition apart.
//!
//! Every table keyed by listener is hash-partitioned on `spotify_id` into
//! [`PARTITIONS`] partitions, on main and on every node alike
//! (migrations/analytics/20261129000010_shards.sql); main's `shard_placements` says which
//! node each partition is on, and main's partitioned tables in schema `analytics` read
//! partition P from that node ([`crate::server::store::fdw`]).
//!
//! The app writes a listener's plays on their node directly, not through main's
//! partitioned table: a write checks the listener's plays for the same play from the other
//! source ([`crate::server::plays::store`]), which on the node is an index probe, while
//! through main it would be a remote query per play; and the rollup triggers run where the
//! rows are either way. docs/ARCHITECTURE.md has the measurements.
//!
//! A writer holds its partition's `shard_placements` row `FOR SHARE` on main while it
//! writes ([`Shard::lock`]); `personalify shards move` takes the row `FOR UPDATE` before
//! its last copy and the switch, so every write lands before the move's last look at the
//! old node, or after the switch on the new one.

use crate::server::store::fdw::PARTITIONS;
use crate::server::store::pg::Analytics;
use sqlx::{PgPool, Postgres, Transaction};

/// A writer waits this long for a move's last step (the copy of what changed during the
/// move and the switch) before giving up; the caller retries later (ingest: the next poll).
pub const LOCK_WAIT: &str = "5s";

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("main did not answer: {0}")]
    Main(#[from] sqlx::Error),
    #[error("the plays' partitions are not placed yet (main's link to the analytics nodes is not set up)")]
    NotPlaced,
    #[error("partition {part} is on {node}, which this server is not configured to reach")]
    NotConfigured { part: i16, node: String },
    #[error("analytics node {0} is unreachable (its migrations are not applied yet, or it missed a deadline and has not answered since)")]
    NodeDown(&'static str),
    #[error("the listener's partition is being moved to another node; try again in a few seconds")]
    Moving,
    #[error("this listener's account is being deleted: nothing more is written for them")]
    Deleted,
}

/// A listener's partition and node, held against a move until [`Shard::release`] (or
/// drop, which rolls back main's transaction and frees the lock just the same).
pub struct Shard {
    pub part: i16,
    pub node: &'static str,
    /// This process's pool to the node.
    pub pool: PgPool,
    tx: Transaction<'static, Postgres>,
}

impl Shard {
    pub async fn lock(
        analytics: &Analytics,
        main: &PgPool,
        listener: &str,
    ) -> Result<Shard, ShardError> {
        let mut tx = main.begin().await?;
        // A write through a big import takes seconds; the lock must outlive it, and the
        // pool's 60 s idle-in-transaction limit is for transactions left open by mistake.
        // The listener's own lock, shared: a deletion takes it exclusively once it has
        // written its row (see server::deletion), and the next statement, on a snapshot
        // taken after this lock, sees that row.
        sqlx::query(
            "SELECT set_config('lock_timeout', $1, true),
                    set_config('idle_in_transaction_session_timeout', '15min', true),
                    pg_advisory_xact_lock_shared(hashtextextended('listener:' || $2, 0))",
        )
        .bind(LOCK_WAIT)
        .bind(listener)
        .execute(&mut *tx)
        .await?;
        let placed: Option<(i16, String, bool)> = sqlx::query_as(
            "SELECT part, node,
                    EXISTS (SELECT 1 FROM listener_deletions WHERE listener_key = md5($1))
               FROM shard_placements
              WHERE satisfies_hash_partition('shard_key'::regclass, $2, part, $1::text)
              FOR SHARE OF shard_placements",
        )
        .bind(listener)
        .bind(i32::from(PARTITIONS))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
            // 55P03 lock_not_available: a move holds the row.
            Some(code) if code == "55P03" => ShardError::Moving,
            _ => ShardError::Main(e),
        })?;
        let (part, name, deleted) = placed.ok_or(ShardError::NotPlaced)?;
        if deleted {
            return Err(ShardError::Deleted);
        }
        let node = analytics
            .node(&name)
            .ok_or_else(|| ShardError::NotConfigured {
                part,
                node: name.clone(),
            })?;
        // Not migrated yet, or marked down after a missed deadline (its probe will say when
        // it is back): the writer keeps its plays for later at once instead of waiting.
        if !node.is_migrated() || node.breaker.check().is_err() {
            return Err(ShardError::NodeDown(node.name));
        }
        Ok(Shard {
            part,
            node: node.name,
            pool: node.pool.clone(),
            tx,
        })
    }

    /// The transaction on `main` that holds the partition: a writer records what it
    /// wrote on the node in it (an import's progress), committed by [`Shard::commit`].
    pub fn main(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// Commit what was written on `main` in [`Shard::main`] and let a move go on.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Let a move of the partition go on.
    pub async fn release(self) {
        if let Err(e) = self.tx.commit().await {
            // The lock went with the session; nothing was written on main.
            tracing::debug!(error = %e, "releasing a partition lock");
        }
    }
}

/// `listener`'s partition, as PostgreSQL's hash partitioning computes it.
pub async fn part_of(main: &PgPool, listener: &str) -> Result<i16, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT p::smallint FROM generate_series(0, $2 - 1) p
          WHERE satisfies_hash_partition('shard_key'::regclass, $2, p, $1::text)",
    )
    .bind(listener)
    .bind(i32::from(PARTITIONS))
    .fetch_one(main)
    .await
}

/// The node holding `listener`'s partition now (no lock: for a read, or to wait on the node
/// before taking [`Shard::lock`]).
pub async fn node_of<'a>(
    analytics: &'a Analytics,
    main: &PgPool,
    listener: &str,
) -> Result<&'a crate::server::store::pg::Node, ShardError> {
    let name: Option<(i16, String)> = sqlx::query_as(
        "SELECT part, node FROM shard_placements
          WHERE satisfies_hash_partition('shard_key'::regclass, $2, part, $1::text)",
    )
    .bind(listener)
    .bind(i32::from(PARTITIONS))
    .fetch_optional(main)
    .await?;
    let (part, name) = name.ok_or(ShardError::NotPlaced)?;
    analytics
        .node(&name)
        .ok_or(ShardError::NotConfigured { part, node: name })
}

/// The pool of the node holding `listener`'s rows, without holding it against a move: for
/// reads (the account export) and tests.
pub async fn pool_of(
    analytics: &Analytics,
    main: &PgPool,
    listener: &str,
) -> Result<PgPool, ShardError> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT node FROM shard_placements
          WHERE satisfies_hash_partition('shard_key'::regclass, $2, part, $1::text)",
    )
    .bind(listener)
    .bind(i32::from(PARTITIONS))
    .fetch_optional(main)
    .await?;
    let name = name.ok_or(ShardError::NotPlaced)?;
    analytics
        .node(&name)
        .map(|n| n.pool.clone())
        .ok_or(ShardError::NotConfigured {
            part: part_of(main, listener).await?,
            node: name,
        })
}

/// The tables of one partition, moved together (colocated by listener). `listener_zones`
/// first: a play copied to a node is counted in its listener's zone there.
pub const MOVED_TABLES: [&str; 6] = [
    "listener_zones",
    "plays",
    "plays_by_hour",
    "plays_by_track",
    "plays_by_artist",
    "plays_by_listener",
];

/// Plays copied per statement while moving a partition.
const COPY_BATCH: i64 = 5_000;

/// One partition on one node: its plays and the bytes of its six leaves there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCopy {
    pub node: &'static str,
    pub plays: i64,
    pub bytes: i64,
}

/// A partition: where it is placed, and what each node holds of it (a node it is not
/// placed on holds nothing, unless a move stopped midway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub part: i16,
    pub node: String,
    pub moved_at: Option<String>,
    /// Per reachable node; a node that is down is missing.
    pub copies: Vec<NodeCopy>,
}

/// Every partition, read from main and from each node.
pub async fn status(
    analytics: &Analytics,
    main: &PgPool,
) -> Result<Vec<PartitionStatus>, ShardError> {
    let placed: Vec<(i16, String, Option<String>)> = sqlx::query_as(
        "SELECT part, node, to_char(moved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
           FROM shard_placements ORDER BY part",
    )
    .fetch_all(main)
    .await?;
    if placed.is_empty() {
        return Err(ShardError::NotPlaced);
    }
    let mut out: Vec<PartitionStatus> = placed
        .into_iter()
        .map(|(part, node, moved_at)| PartitionStatus {
            part,
            node,
            moved_at,
            copies: Vec::new(),
        })
        .collect();
    for node in analytics.nodes() {
        for p in out.iter_mut() {
            let part = p.part;
            let bytes = MOVED_TABLES
                .iter()
                .map(|t| format!("pg_total_relation_size('{t}_p{part}')"))
                .collect::<Vec<_>>()
                .join(" + ");
            let sizes: Result<(i64, i64), sqlx::Error> = sqlx::query_as(&format!(
                "SELECT (SELECT count(*) FROM plays_p{part}), ({bytes})::bigint"
            ))
            .fetch_one(&node.pool)
            .await;
            if let Ok((plays, bytes)) = sizes {
                p.copies.push(NodeCopy {
                    node: node.name,
                    plays,
                    bytes,
                });
            }
        }
    }
    Ok(out)
}

/// [`status`] as the `personalify shards status` table.
pub fn render_status(partitions: &[PartitionStatus], nodes: &[&'static str]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = write!(out, "{:<10} {:<12}", "partition", "placed on");
    for node in nodes {
        let _ = write!(out, " {:>14} {:>10}", format!("{node} plays"), "bytes");
    }
    let _ = writeln!(out, "  moved");
    for p in partitions {
        let _ = write!(out, "{:<10} {:<12}", format!("p{}", p.part), p.node);
        for node in nodes {
            match p.copies.iter().find(|c| c.node == *node) {
                Some(c) => {
                    let _ = write!(out, " {:>14} {:>10}", c.plays, human_bytes(c.bytes));
                }
                None => {
                    let _ = write!(out, " {:>14} {:>10}", "down", "-");
                }
            }
        }
        let _ = writeln!(out, "  {}", p.moved_at.as_deref().unwrap_or("-"));
    }
    for node in nodes {
        let placed: Vec<&PartitionStatus> = partitions.iter().filter(|p| p.node == *node).collect();
        let plays: i64 = placed
            .iter()
            .filter_map(|p| p.copies.iter().find(|c| c.node == *node))
            .map(|c| c.plays)
            .sum();
        let bytes: i64 = partitions
            .iter()
            .filter_map(|p| p.copies.iter().find(|c| c.node == *node))
            .map(|c| c.bytes)
            .sum();
        let left: Vec<String> = partitions
            .iter()
            .filter(|p| p.node != *node)
            .filter(|p| p.copies.iter().any(|c| c.node == *node && c.plays > 0))
            .map(|p| {
                format!(
                    "p{} (`personalify shards move {} --to {}` removes them)",
                    p.part, p.part, p.node
                )
            })
            .collect();
        let _ = write!(
            out,
            "\n{node}: {} partitions, {plays} plays, {} on disk",
            placed.len(),
            human_bytes(bytes)
        );
        if !left.is_empty() {
            let _ = write!(
                out,
                "; a stopped move left rows here of {}",
                left.join(", ")
            );
        }
    }
    out.push('\n');
    out
}

fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.0} kB", b / 1024.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("there are partitions 0 to 7; {0} is not one")]
    NoSuchPartition(i64),
    #[error("{0} is not a node this server is configured with (nodes: {1})")]
    NoSuchNode(String, String),
    #[error("node {0} is not reachable or has not applied its migrations")]
    NodeDown(&'static str),
    #[error("partition {part} has an import in progress (import {import}); move it when the import is done")]
    ImportRunning { part: i16, import: i64 },
    #[error(
        "writers of partition {0} did not finish within 30 s; nothing was switched, try again"
    )]
    Busy(i16),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What [`move_partition`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    pub part: i16,
    pub from: String,
    pub to: String,
    /// Plays copied in the first pass, while writes went on.
    pub copied: u64,
    /// Listeners whose plays changed during that pass, copied again under the lock.
    pub recopied: Vec<String>,
    /// Plays left behind on the old node, removed after the switch.
    pub removed: i64,
    /// How long writers to the partition waited (the lock), in milliseconds.
    pub locked_ms: u128,
}

/// An import of a listener of `part` still running: the partition cannot move while its
/// plays are staged on the old node.
async fn import_in(main: &mut sqlx::PgConnection, part: i16) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT i.id FROM imports i JOIN users u ON u.id = i.user_id
          WHERE i.status IN ('reading', 'storing')
            AND satisfies_hash_partition('shard_key'::regclass, $2, $1, u.spotify_id)
          LIMIT 1",
    )
    .bind(i32::from(part))
    .bind(i32::from(PARTITIONS))
    .fetch_optional(main)
    .await
}

/// Move partition `part` to node `to`: copy its rows there while writes go on, then, with
/// writers to it held off (the placement row `FOR UPDATE`), copy again the listeners whose
/// plays changed meanwhile, point main's six foreign partitions at the new node and update
/// the placement in one transaction on main, and empty the old node's leaves. Run again
/// after a stop, it starts over (or, if the switch happened, removes what was left).
pub async fn move_partition(
    analytics: &Analytics,
    main: &PgPool,
    part: i64,
    to: &str,
) -> Result<Moved, MoveError> {
    use crate::server::store::fdw;
    let part = i16::try_from(part)
        .ok()
        .filter(|p| (0..PARTITIONS).contains(p))
        .ok_or(MoveError::NoSuchPartition(part))?;
    let names: Vec<&str> = analytics.nodes().iter().map(|n| n.name).collect();
    let target = analytics
        .node(to)
        .ok_or_else(|| MoveError::NoSuchNode(to.to_string(), names.join(", ")))?;
    let placed: String = sqlx::query_scalar("SELECT node FROM shard_placements WHERE part = $1")
        .bind(part)
        .fetch_optional(main)
        .await?
        .ok_or(ShardError::NotPlaced)?;
    let source = analytics
        .node(&placed)
        .ok_or_else(|| ShardError::NotConfigured {
            part,
            node: placed.clone(),
        })?;
    for node in [source, target] {
        if !node.is_migrated() || crate::server::store::pg::ping(&node.pool).await.is_err() {
            return Err(MoveError::NodeDown(node.name));
        }
    }
    let mut moved = Moved {
        part,
        from: source.name.to_string(),
        to: target.name.to_string(),
        ..Moved::default()
    };
    if source.name == target.name {
        // Already there: only remove what a stopped move left on the other nodes.
        for other in analytics.nodes().iter().filter(|n| n.name != target.name) {
            moved.removed += empty_leaves(&other.pool, part).await?;
        }
        return Ok(moved);
    }
    if let Some(import) = import_in(&mut *main.acquire().await?, part).await? {
        return Err(MoveError::ImportRunning { part, import });
    }

    // 1. Copy, while writers go on writing on the source. Instance-wide reads leave the
    //    read replica meanwhile (it will hold the partition in both nodes' databases).
    sqlx::query("UPDATE shard_placements SET moving_since = now() WHERE part = $1")
        .bind(part)
        .execute(main)
        .await?;
    let outcome = copy_and_switch(main, part, source, target, &mut moved).await;
    sqlx::query("UPDATE shard_placements SET moving_since = NULL WHERE part = $1")
        .bind(part)
        .execute(main)
        .await?;
    outcome?;

    // 3. The old copy goes; main's planner learns the new partitions' sizes.
    moved.removed = empty_leaves(&source.pool, part).await?;
    for table in MOVED_TABLES {
        let _ = sqlx::query(&format!("ANALYZE {}.{table}_p{part}", fdw::SCHEMA))
            .execute(main)
            .await;
    }
    tracing::info!(
        part,
        from = %moved.from,
        to = %moved.to,
        copied = moved.copied,
        recopied = moved.recopied.len(),
        locked_ms = moved.locked_ms as u64,
        "partition moved"
    );
    Ok(moved)
}

/// Steps 1 and 2 of [`move_partition`]: the copy, and the switch under the lock.
async fn copy_and_switch(
    main: &PgPool,
    part: i16,
    source: &crate::server::store::pg::Node,
    target: &crate::server::store::pg::Node,
    moved: &mut Moved,
) -> Result<(), MoveError> {
    use crate::server::store::fdw;
    empty_leaves(&target.pool, part).await?;
    copy_zones(&source.pool, &target.pool, part, None).await?;
    moved.copied = copy_plays(&source.pool, &target.pool, part, None).await?;

    // 2. Hold writers off, catch up, switch.
    let mut tx = main.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', '30s', true)")
        .execute(&mut *tx)
        .await?;
    let waited = std::time::Instant::now();
    let still: String =
        sqlx::query_scalar("SELECT node FROM shard_placements WHERE part = $1 FOR UPDATE")
            .bind(part)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
                Some(code) if code == "55P03" => MoveError::Busy(part),
                _ => MoveError::Database(e),
            })?;
    if still != source.name {
        return Err(MoveError::Busy(part));
    }
    if let Some(import) = import_in(&mut tx, part).await? {
        return Err(MoveError::ImportRunning { part, import });
    }
    let changed = changed_listeners(&source.pool, &target.pool, part).await?;
    for listener in &changed {
        sqlx::query("DELETE FROM plays WHERE spotify_id = $1")
            .bind(listener)
            .execute(&target.pool)
            .await?;
        sqlx::query("DELETE FROM listener_zones WHERE spotify_id = $1")
            .bind(listener)
            .execute(&target.pool)
            .await?;
        copy_zones(&source.pool, &target.pool, part, Some(listener)).await?;
        copy_plays(&source.pool, &target.pool, part, Some(listener)).await?;
    }
    moved.recopied = changed;
    for table in MOVED_TABLES {
        sqlx::query(&format!(
            "DROP FOREIGN TABLE {}.{table}_p{part}",
            fdw::SCHEMA
        ))
        .execute(&mut *tx)
        .await?;
        fdw::create_partition(&mut tx, table, part, target.server).await?;
    }
    sqlx::query("UPDATE shard_placements SET node = $2, moved_at = now() WHERE part = $1")
        .bind(part)
        .bind(target.name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    moved.locked_ms = waited.elapsed().as_millis();
    Ok(())
}

/// Empty partition `part`'s leaves on a node (the rollups go with `plays_pN` by trigger);
/// returns the plays there were.
async fn empty_leaves(node: &PgPool, part: i16) -> Result<i64, sqlx::Error> {
    let mut tx = node.begin().await?;
    let plays: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM plays_p{part}"))
        .fetch_one(&mut *tx)
        .await?;
    // The leaf's TRUNCATE trigger empties the partition's rollups.
    sqlx::query(&format!("TRUNCATE plays_p{part}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("TRUNCATE listener_zones_p{part}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(plays)
}

/// Copy the zones of partition `part` (or of one listener in it) to `to`.
async fn copy_zones(
    from: &PgPool,
    to: &PgPool,
    part: i16,
    listener: Option<&str>,
) -> Result<(), sqlx::Error> {
    let zones: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT spotify_id, time_zone FROM listener_zones_p{part}
          WHERE $1::text IS NULL OR spotify_id = $1"
    ))
    .bind(listener)
    .fetch_all(from)
    .await?;
    let (ids, names): (Vec<String>, Vec<String>) = zones.into_iter().unzip();
    sqlx::query(
        "INSERT INTO listener_zones (spotify_id, time_zone)
         SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (spotify_id) DO UPDATE SET time_zone = excluded.time_zone",
    )
    .bind(&ids)
    .bind(&names)
    .execute(to)
    .await?;
    Ok(())
}

/// Copy the plays of partition `part` (or of one listener in it) to `to`, through its
/// parent table (so its triggers build the rollups there), in batches by key.
async fn copy_plays(
    from: &PgPool,
    to: &PgPool,
    part: i16,
    listener: Option<&str>,
) -> Result<u64, sqlx::Error> {
    type Row = (
        String,
        chrono::DateTime<chrono::Utc>,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<String>,
        i32,
        String,
    );
    type Columns = (
        Vec<String>,
        Vec<chrono::DateTime<chrono::Utc>>,
        Vec<String>,
        Vec<Option<String>>,
        Vec<String>,
        Vec<String>,
        Vec<Option<String>>,
        Vec<Option<String>>,
        Vec<i32>,
        Vec<String>,
    );
    let mut after: Option<(String, chrono::DateTime<chrono::Utc>, String)> = None;
    let mut copied = 0;
    loop {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT spotify_id, played_at, track_key, track_id, track_name, artist_name,
                    artist_id, album_name, ms_played, source
               FROM plays_p{part}
              WHERE ($1::text IS NULL OR spotify_id = $1)
                AND ($2::text IS NULL OR (spotify_id, played_at, track_key) > ($2, $3, $4))
              ORDER BY spotify_id, played_at, track_key
              LIMIT $5"
        ))
        .bind(listener)
        .bind(after.as_ref().map(|a| a.0.clone()))
        .bind(after.as_ref().map(|a| a.1))
        .bind(after.as_ref().map(|a| a.2.clone()))
        .bind(COPY_BATCH)
        .fetch_all(from)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(copied);
        };
        after = Some((last.0.clone(), last.1, last.2.clone()));
        let n = rows.len();
        let mut cols: Columns = Default::default();
        for r in rows {
            cols.0.push(r.0);
            cols.1.push(r.1);
            cols.2.push(r.2);
            cols.3.push(r.3);
            cols.4.push(r.4);
            cols.5.push(r.5);
            cols.6.push(r.6);
            cols.7.push(r.7);
            cols.8.push(r.8);
            cols.9.push(r.9);
        }
        let done = sqlx::query(
            "INSERT INTO plays (spotify_id, played_at, track_key, track_id, track_name,
                                artist_name, artist_id, album_name, ms_played, source)
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[],
                                  $5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
                                  $10::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .bind(&cols.5)
        .bind(&cols.6)
        .bind(&cols.7)
        .bind(&cols.8)
        .bind(&cols.9)
        .execute(to)
        .await?;
        copied += done.rows_affected();
        if n < COPY_BATCH as usize {
            return Ok(copied);
        }
    }
}

/// Listeners of partition `part` whose plays or zone differ between the two nodes: a
/// count and a sum of row hashes per listener on each side (each computed on its node).
async fn changed_listeners(
    from: &PgPool,
    to: &PgPool,
    part: i16,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT COALESCE(p.spotify_id, z.spotify_id),
                COALESCE(p.n, 0), COALESCE(p.h, 0)::text, COALESCE(z.time_zone, '')
           FROM (SELECT spotify_id, count(*) AS n, sum(hashtextextended(p::text, 0)) AS h
                   FROM plays_p{part} p GROUP BY 1) p
           FULL JOIN listener_zones_p{part} z USING (spotify_id)"
    );
    let side = |pool: &PgPool| {
        let sql = sql.clone();
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, i64, String, String)>(&sql)
                .fetch_all(&pool)
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|(id, n, h, z)| (id, (n, h, z)))
                        .collect::<std::collections::BTreeMap<_, _>>()
                })
        }
    };
    let (a, b) = tokio::try_join!(side(from), side(to))?;
    let mut changed: Vec<String> = a
        .iter()
        .filter(|(id, v)| b.get(*id) != Some(v))
        .map(|(id, _)| id.clone())
        .collect();
    changed.extend(b.keys().filter(|id| !a.contains_key(*id)).cloned());
    changed.sort();
    changed.dedup();
    Ok(changed)
}
