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
    #[error("analytics node {0} is unreachable (its migrations are not applied yet)")]
    NodeDown(&'static str),
    #[error("the listener's partition is being moved to another node; try again in a few seconds")]
    Moving,
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
        sqlx::query(
            "SELECT set_config('lock_timeout', $1, true),
                    set_config('idle_in_transaction_session_timeout', '15min', true)",
        )
        .bind(LOCK_WAIT)
        .execute(&mut *tx)
        .await?;
        let placed: Option<(i16, String)> = sqlx::query_as(
            "SELECT part, node FROM shard_placements
              WHERE satisfies_hash_partition('shard_key'::regclass, $2, part, $1::text)
              FOR SHARE",
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
        let (part, name) = placed.ok_or(ShardError::NotPlaced)?;
        let node = analytics
            .node(&name)
            .ok_or_else(|| ShardError::NotConfigured {
                part,
                node: name.clone(),
            })?;
        if !node.is_migrated() {
            return Err(ShardError::NodeDown(node.name));
        }
        Ok(Shard {
            part,
            node: node.name,
            pool: node.pool.clone(),
            tx,
        })
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
