//! The transactional outbox between PostgreSQL (the record) and MongoDB (the history).
//!
//! A sync enqueues its snapshots in its own transaction, so they exist exactly when the sync
//! does. Delivery happens afterwards, right after the sync and from a background worker, as
//! often as it takes: MongoDB may be down for hours. Rows are locked with `FOR UPDATE SKIP
//! LOCKED`, so two deliverers (two servers, or the worker and a sync) never take the same
//! row at once, and `Mongo::write_snapshot` is idempotent, so a row delivered to MongoDB
//! whose commit then fails is harmless when delivered again.

use crate::domain::TopPayload;
use crate::server::store::mongo::Mongo;
use mongodb::error::{ErrorKind, WriteFailure};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// Rows per transaction: bounds how long one transaction holds its row locks.
const BATCH: i64 = 100;
/// `last_error` is for a person reading the table; keep it to a line.
const MAX_ERROR_CHARS: usize = 200;

/// What one [`deliver_pending`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    pub delivered: usize,
    pub failed: usize,
    /// Rows still undelivered afterwards (by anyone).
    pub pending: i64,
}

/// A payload the outbox refuses to hold: it could never be delivered.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {snapshot_id}: synced_at {synced_at:?} is not RFC 3339")]
pub struct UndeliverablePayload {
    pub snapshot_id: String,
    pub synced_at: String,
}

/// Queue a snapshot for MongoDB. The caller runs it inside the sync's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    snapshot_id: &str,
    payload: &TopPayload,
) -> Result<(), sqlx::Error> {
    // Refuse here what MongoDB would refuse later: a bad row would be retried forever.
    if chrono::DateTime::parse_from_rfc3339(&payload.synced_at).is_err() {
        return Err(sqlx::Error::Encode(Box::new(UndeliverablePayload {
            snapshot_id: snapshot_id.to_string(),
            synced_at: payload.synced_at.chars().take(40).collect(),
        })));
    }
    let json = serde_json::to_string(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // Text cast to jsonb: the crate's sqlx has no `json` feature, and needs none for this.
    sqlx::query("INSERT INTO mongo_outbox (snapshot_id, payload) VALUES ($1, $2::jsonb)")
        .bind(snapshot_id)
        .bind(json)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deliver every pending snapshot, a batch per transaction, oldest first. Stops at the
/// first MongoDB error (MongoDB is most likely down; the next run retries). PostgreSQL
/// errors are returned; MongoDB errors are recorded on the row and counted in `failed`.
pub async fn deliver_pending(pool: &PgPool, mongo: &Mongo) -> Result<Delivery, sqlx::Error> {
    let mut delivery = Delivery::default();
    // Each batch starts after the previous one, so a row that failed to decode is not
    // picked again by this call.
    let mut after = 0_i64;
    loop {
        let batch = deliver_batch(pool, mongo, after).await?;
        delivery.delivered += batch.delivered;
        delivery.failed += batch.failed;
        match batch.last_id {
            Some(last) if !batch.mongo_failed => after = last,
            _ => break,
        }
    }
    delivery.pending =
        sqlx::query_scalar("SELECT count(*) FROM mongo_outbox WHERE delivered_at IS NULL")
            .fetch_one(pool)
            .await?;
    if delivery.failed > 0 {
        tracing::warn!(
            delivered = delivery.delivered,
            failed = delivery.failed,
            pending = delivery.pending,
            "sync history delivery to MongoDB incomplete"
        );
    } else if delivery.delivered > 0 {
        tracing::info!(
            delivered = delivery.delivered,
            pending = delivery.pending,
            "sync history delivered to MongoDB"
        );
    }
    Ok(delivery)
}

struct Batch {
    delivered: usize,
    failed: usize,
    last_id: Option<i64>,
    mongo_failed: bool,
}

async fn deliver_batch(pool: &PgPool, mongo: &Mongo, after: i64) -> Result<Batch, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, snapshot_id, payload::text FROM mongo_outbox
          WHERE delivered_at IS NULL AND id > $1
          ORDER BY id
          LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind(after)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut batch = Batch {
        delivered: 0,
        failed: 0,
        last_id: rows.last().map(|row| row.0),
        mongo_failed: false,
    };
    for (id, snapshot_id, json) in rows {
        let payload: TopPayload = match serde_json::from_str(&json) {
            Ok(payload) => payload,
            Err(err) => {
                // Only a change of the payload's shape gets here. Record it and go on:
                // the rows behind it are fine.
                tracing::error!(outbox_id = id, snapshot_id, error = %err, "outbox payload cannot be decoded");
                record_failure(&mut tx, id, &format!("payload cannot be decoded: {err}")).await?;
                batch.failed += 1;
                continue;
            }
        };
        match mongo.write_snapshot(&snapshot_id, &payload).await {
            Ok(()) => {
                sqlx::query("UPDATE mongo_outbox SET delivered_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                batch.delivered += 1;
            }
            Err(err) => {
                let reason = describe(&err);
                tracing::warn!(outbox_id = id, snapshot_id, error = %reason, "cannot write the snapshot to MongoDB");
                record_failure(&mut tx, id, &reason).await?;
                batch.failed += 1;
                batch.mongo_failed = true;
                break;
            }
        }
    }
    tx.commit().await?;
    Ok(batch)
}

async fn record_failure(conn: &mut PgConnection, id: i64, reason: &str) -> Result<(), sqlx::Error> {
    let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
    sqlx::query("UPDATE mongo_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// A short description of a MongoDB error for `last_error`. Server-selection errors carry
/// the whole topology description, so the common kinds get a fixed line; none of them
/// carries the connection string's credentials.
fn describe(err: &mongodb::error::Error) -> String {
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            "MongoDB unreachable (server selection timed out)".into()
        }
        ErrorKind::Io(io) => format!("MongoDB connection error: {}", io.kind()),
        ErrorKind::Authentication { .. } => "MongoDB authentication failed".into(),
        ErrorKind::Command(e) => format!("MongoDB command failed: {} ({})", e.code, e.code_name),
        ErrorKind::Write(WriteFailure::WriteError(e)) => {
            format!("MongoDB write failed: code {}", e.code)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => {
            format!("MongoDB write concern failed: code {}", e.code)
        }
        other => other.to_string(),
    }
}

/// Deliver the outbox every `every`, forever: catches up after MongoDB comes back and
/// after a sync whose own delivery failed. Errors are logged; the loop goes on. Ends when
/// the pool is closed (server shutdown).
pub fn spawn_worker(pool: PgPool, mongo: Mongo, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // `interval` panics on a zero period.
        let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match deliver_pending(&pool, &mongo).await {
                Ok(_) => {}
                Err(sqlx::Error::PoolClosed) => {
                    tracing::info!("outbox worker stopped: the database pool is closed");
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "outbox delivery failed; retrying later"),
            }
        }
    })
}
