//! The transactional outbox between PostgreSQL (the record) and MongoDB (the history).
//!
//! A sync enqueues its snapshots in its own transaction, so they exist exactly when the sync
//! does, and wakes the worker. Only the worker delivers, as often as it takes (MongoDB may
//! be down for hours), and never with a transaction open across a MongoDB write:
//!
//! 1. **lease**: one short `UPDATE … FOR UPDATE SKIP LOCKED` marks up to [`BATCH`] due rows
//!    `leased_until` now + [`LEASE`], so two deliverers (two servers) never take the same
//!    row, and a deliverer that dies frees its rows when the lease ends;
//! 2. **write** each row to MongoDB (idempotent: the row's snapshot id is the document's
//!    `_id`, so a row written whose delete then fails is harmless when written again);
//! 3. **delete** the delivered rows; a failed row gets `attempts + 1`, its reason and a
//!    later `next_attempt_at`.
//!
//! MongoDB unreachable (no server, a timeout, a broken connection) ends the round: the rows
//! are fine, MongoDB is not, and nothing is parked for it. Any other failure belongs to the
//! row (a payload that no longer decodes, a write MongoDB refuses): the rows behind it go
//! on, and after [`PARK_AFTER`] such failures (a payload that cannot decode: at once) the row
//! is parked — kept for a person to look at, counted in `/readyz`, never retried.

use crate::domain::TopPayload;
use crate::server::store::mongo::Mongo;
use mongodb::error::{ErrorKind, WriteFailure};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Rows per lease: bounds what one round holds (each write is bounded by MongoDB's 3 s, so
/// a round takes at most ~30 s).
const BATCH: i64 = 10;
/// How long a leased row is left to its deliverer: above a round's worst case, and short,
/// because rows written to MongoDB whose delete then failed (PostgreSQL down) wait this
/// long before they are delivered again (harmlessly: the write is idempotent) and removed.
const LEASE: Duration = Duration::from_secs(60);
/// Failures of a row's own making after which it is parked.
pub const PARK_AFTER: i32 = 5;
/// Retry delay after the n-th failure: 2^n seconds, at most this.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// `last_error` is for a person reading the table; keep it to a line.
const MAX_ERROR_CHARS: usize = 200;

/// What one [`deliver_pending`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    pub delivered: usize,
    pub failed: usize,
    /// Rows parked by this call.
    pub parked: usize,
    /// Rows still to deliver afterwards (by anyone), parked ones not included.
    pub pending: i64,
}

/// The outbox as `/readyz` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Depth {
    pub pending: i64,
    pub parked: i64,
    /// Age of the oldest row waiting, in seconds (0 when none waits).
    pub oldest_pending_secs: i64,
}

/// A payload the outbox refuses to hold: it could never be delivered.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {snapshot_id}: synced_at {synced_at:?} is not RFC 3339")]
pub struct UndeliverablePayload {
    pub snapshot_id: String,
    pub synced_at: String,
}

/// Wakes the worker when a sync has enqueued something, so history follows a sync within
/// moments rather than at the next tick. Cheap to clone.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Queue a snapshot for MongoDB. The caller runs it inside the sync's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    snapshot_id: &str,
    payload: &TopPayload,
) -> Result<(), sqlx::Error> {
    // Refuse here what MongoDB would refuse later: a bad row would only ever be parked.
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

/// Deliver every row that is due, a leased batch at a time, oldest first. Stops when
/// MongoDB is unreachable (the next run retries). PostgreSQL errors are returned (rows
/// leased by this call are then freed when their lease ends); MongoDB errors are recorded
/// on the row and counted in `failed`.
pub async fn deliver_pending(pool: &PgPool, mongo: &Mongo) -> Result<Delivery, sqlx::Error> {
    let mut delivery = Delivery::default();
    loop {
        let rows = lease(pool).await?;
        let leased = rows.len();
        if leased == 0 {
            break;
        }
        let (mut delivered, mut untried) = (Vec::new(), Vec::new());
        let mut mongo_down = false;
        for Leased {
            id,
            snapshot_id,
            payload,
            attempts,
        } in rows
        {
            if mongo_down {
                untried.push(id);
                continue;
            }
            let payload: TopPayload = match serde_json::from_str(&payload) {
                Ok(payload) => payload,
                Err(err) => {
                    // Only a change of the payload's shape gets here, and no retry mends it.
                    tracing::error!(outbox_id = id, snapshot_id, error = %err, "outbox payload cannot be decoded; parked");
                    let reason = format!("payload cannot be decoded: {err}");
                    record_failure(pool, id, &reason, Duration::ZERO, true).await?;
                    delivery.failed += 1;
                    delivery.parked += 1;
                    continue;
                }
            };
            match mongo.write_snapshot(&snapshot_id, &payload).await {
                Ok(()) => delivered.push(id),
                Err(err) => {
                    let reason = describe(&err);
                    delivery.failed += 1;
                    if is_unreachable(&err) {
                        // MongoDB's failure, not the row's: keep it due, end the round.
                        tracing::warn!(outbox_id = id, snapshot_id, error = %reason, "MongoDB unreachable; history waits in the outbox");
                        record_failure(pool, id, &reason, Duration::ZERO, false).await?;
                        mongo_down = true;
                    } else {
                        let park = attempts + 1 >= PARK_AFTER;
                        tracing::warn!(outbox_id = id, snapshot_id, error = %reason, attempts = attempts + 1, parked = park, "MongoDB refused a snapshot");
                        record_failure(pool, id, &reason, retry_delay(attempts + 1), park).await?;
                        delivery.parked += usize::from(park);
                    }
                }
            }
        }
        if !delivered.is_empty() {
            sqlx::query("DELETE FROM mongo_outbox WHERE id = ANY($1)")
                .bind(&delivered)
                .execute(pool)
                .await?;
            delivery.delivered += delivered.len();
        }
        if !untried.is_empty() {
            sqlx::query("UPDATE mongo_outbox SET leased_until = NULL WHERE id = ANY($1)")
                .bind(&untried)
                .execute(pool)
                .await?;
        }
        if mongo_down || (leased as i64) < BATCH {
            break;
        }
    }
    delivery.pending = depth(pool).await?.pending;
    if delivery.failed > 0 {
        tracing::warn!(
            delivered = delivery.delivered,
            failed = delivery.failed,
            parked = delivery.parked,
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

struct Leased {
    id: i64,
    snapshot_id: String,
    payload: String,
    attempts: i32,
}

/// Take up to [`BATCH`] due rows nobody holds, for [`LEASE`], in one statement (no
/// transaction stays open).
async fn lease(pool: &PgPool) -> Result<Vec<Leased>, sqlx::Error> {
    let mut rows: Vec<(i64, String, String, i32)> = sqlx::query_as(
        "UPDATE mongo_outbox o SET leased_until = now() + make_interval(secs => $2)
          WHERE o.id IN (SELECT id FROM mongo_outbox
                          WHERE parked_at IS NULL AND next_attempt_at <= now()
                            AND (leased_until IS NULL OR leased_until < now())
                          ORDER BY id
                          LIMIT $1
                          FOR UPDATE SKIP LOCKED)
         RETURNING o.id, o.snapshot_id, o.payload::text, o.attempts",
    )
    .bind(BATCH)
    .bind(LEASE.as_secs_f64())
    .fetch_all(pool)
    .await?;
    rows.sort_unstable_by_key(|row| row.0);
    Ok(rows
        .into_iter()
        .map(|(id, snapshot_id, payload, attempts)| Leased {
            id,
            snapshot_id,
            payload,
            attempts,
        })
        .collect())
}

/// Count a failure on the row, free its lease, and make it due again after `retry`, or
/// park it.
async fn record_failure(
    pool: &PgPool,
    id: i64,
    reason: &str,
    retry: Duration,
    park: bool,
) -> Result<(), sqlx::Error> {
    let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
    sqlx::query(
        "UPDATE mongo_outbox
            SET attempts = attempts + 1, last_error = $2, leased_until = NULL,
                next_attempt_at = now() + make_interval(secs => $3),
                parked_at = CASE WHEN $4 THEN now() END
          WHERE id = $1",
    )
    .bind(id)
    .bind(reason)
    .bind(retry.as_secs_f64())
    .bind(park)
    .execute(pool)
    .await?;
    Ok(())
}

/// 2^attempts seconds, at most [`MAX_RETRY_DELAY`].
fn retry_delay(attempts: i32) -> Duration {
    let secs = 1_u64 << attempts.clamp(0, 16);
    Duration::from_secs(secs).min(MAX_RETRY_DELAY)
}

/// Rows waiting and parked, and how long the oldest has waited.
pub async fn depth(pool: &PgPool) -> Result<Depth, sqlx::Error> {
    let (pending, parked, oldest_pending_secs): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE parked_at IS NULL),
                count(*) FILTER (WHERE parked_at IS NOT NULL),
                COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)::bigint
           FROM mongo_outbox",
    )
    .fetch_one(pool)
    .await?;
    Ok(Depth {
        pending,
        parked,
        oldest_pending_secs,
    })
}

/// MongoDB itself is not answering (rather than refusing this row).
fn is_unreachable(err: &mongodb::error::Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
    )
}

/// A short description of a MongoDB error for `last_error`. Server-selection errors carry
/// the whole topology description, so the common kinds get a fixed line; none of them
/// carries the connection string's credentials.
fn describe(err: &mongodb::error::Error) -> String {
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            "MongoDB unreachable (server selection timed out)".into()
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            "MongoDB unreachable (no answer in time, or marked down after one)".into()
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

/// Deliver the outbox when a sync wakes it and every `every` besides (to catch up after
/// MongoDB comes back), forever. Errors are logged; the loop goes on. Ends when the pool is
/// closed (server shutdown).
pub fn spawn_worker(
    pool: PgPool,
    mongo: Mongo,
    every: Duration,
    wake: Wake,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_worker(pool, mongo, every, wake))
}

/// The worker's loop, for a supervisor to run (see `server::tasks`).
pub async fn run_worker(pool: PgPool, mongo: Mongo, every: Duration, wake: Wake) {
    // `interval` panics on a zero period.
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = wake.0.notified() => {}
        }
        match deliver_pending(&pool, &mongo).await {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => {
                tracing::info!("outbox worker stopped: the database pool is closed");
                return;
            }
            Err(err) => tracing::warn!(error = %err, "outbox delivery failed; retrying later"),
        }
    }
}
