//! MongoDB: the sync history (`user_syncs` and the append-only snapshots, issue #4).
//!
//! Both collections hold the [`TopPayload`] fields as they are (`spotify_id`, `time_range`
//! as `"short_term"` etc., `sync_id`, `artists`, `tracks`, `genres`) plus `snapshot_id`,
//! with `synced_at` as a BSON date, so `db.user_syncs.find({spotify_id: ...})` in mongosh
//! reads like the dashboard. Snapshots arrive through the PostgreSQL outbox, at least once
//! and in any order; [`Mongo::write_snapshot`] turns that into exactly once, newest wins.

use super::breaker::Breaker;
use super::StoreError;
use crate::domain::{TimeRange, TopPayload};
use crate::server::config::expose;
use crate::server::retry::with_backoff;
use chrono::{DateTime, SecondsFormat, Utc};
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Collection, IndexModel};
use secrecy::SecretString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The latest snapshot per (spotify_id, time_range), upserted. The seed design's name.
pub const USER_SYNCS: &str = "user_syncs";
/// Every snapshot, append-only, `_id` = the snapshot id.
pub const HISTORY: &str = "user_sync_history";

/// The longest wait for one MongoDB operation. The driver fails fast when the server is
/// gone (server selection, connect: 2 s), but a server that accepts connections and stops
/// answering (paused, overloaded, a half-open network) would hold a read forever: every
/// operation here is cut off at this deadline instead, and its caller degrades.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Run one MongoDB operation within [`OP_TIMEOUT`], unless `breaker` has MongoDB marked
/// down (then at once); a missed deadline marks it down.
async fn bounded<T>(
    breaker: &Breaker,
    what: &str,
    operation: impl std::future::IntoFuture<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let outcome = match breaker.call(OP_TIMEOUT, operation.into_future()).await {
        Ok(result) => result,
        Err(down) => Err(Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{down} ({what})"),
        ))),
    };
    // A server that cannot be reached at all is down as surely as one that does not answer.
    if let Err(err) = &outcome {
        if matches!(err.kind.as_ref(), ErrorKind::ServerSelection { .. }) {
            breaker.trip();
        }
    }
    // MongoDB not answering, as `/metrics` counts it (a duplicate key is not a failure).
    if let Err(err) = &outcome {
        if matches!(
            err.kind.as_ref(),
            ErrorKind::Io(_)
                | ErrorKind::ServerSelection { .. }
                | ErrorKind::ConnectionPoolCleared { .. }
        ) {
            crate::server::metrics::record_store_error("mongo");
        }
    }
    outcome
}

/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Clone)]
pub struct Mongo {
    pub client: mongodb::Client,
    pub db: mongodb::Database,
    /// Set once the indexes exist. `write_snapshot` relies on the unique index of
    /// `user_syncs` (without it, an out-of-order snapshot would insert a second "latest"
    /// document), so it makes sure of them itself whether or not start-up could.
    indexes: Arc<OnceCell<()>>,
    /// Commands sent to the server since start (not the driver's own monitoring): which
    /// paths reach MongoDB, observed rather than assumed (the dashboard must not).
    commands: Arc<AtomicU64>,
    /// Marked down after a missed deadline, probed back up ([`super::breaker`]).
    pub breaker: Breaker,
}

impl Mongo {
    /// Build the client (the driver connects lazily and reconnects by itself) and wait,
    /// within `budget`, for the server to answer a ping. A server that stays silent is
    /// logged and reported down by `/readyz`; start-up goes on.
    pub async fn connect(
        url: &SecretString,
        database: &str,
        budget: Duration,
    ) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(expose(url))
            .await
            .map_err(|e| StoreError::MongoClient(e.kind.to_string()))?;
        options.app_name = Some("personalify".into());
        // Fail an operation within seconds when the server is gone, instead of the 30 s default.
        options.server_selection_timeout = Some(Duration::from_secs(2));
        options.connect_timeout = Some(Duration::from_secs(2));
        let commands = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commands);
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(_) = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
        let client = mongodb::Client::with_options(options)
            .map_err(|e| StoreError::MongoClient(e.kind.to_string()))?;
        let db = client.database(database);
        let probed = db.clone();
        let breaker = Breaker::new(
            "The sync history (MongoDB)",
            Arc::new(move || {
                let db = probed.clone();
                Box::pin(async move { db.run_command(doc! { "ping": 1 }).await.is_ok() })
            }),
        );
        let mongo = Mongo {
            db,
            client,
            indexes: Arc::new(OnceCell::new()),
            commands,
            breaker,
        };
        match with_backoff("mongodb", budget, || mongo.ping()).await {
            Ok(()) => tracing::info!(database, "mongodb ready"),
            Err(err) => tracing::warn!(error = %err, "mongodb not reachable; starting without it"),
        }
        Ok(mongo)
    }

    /// Commands this process has sent MongoDB so far (pings included).
    pub fn commands_sent(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    pub async fn ping(&self) -> Result<(), String> {
        bounded(
            &self.breaker,
            "a ping",
            self.db.run_command(doc! { "ping": 1 }),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.kind.to_string())
    }

    fn user_syncs(&self) -> Collection<Document> {
        self.db.collection(USER_SYNCS)
    }

    fn snapshots(&self) -> Collection<Document> {
        self.db.collection(HISTORY)
    }

    /// The unique (spotify_id, time_range) index of `user_syncs` and the history index that
    /// serves "the latest N snapshots of a user's range". Idempotent: creating an index that
    /// exists with the same keys and options is a no-op.
    pub async fn ensure_indexes(&self) -> Result<(), Error> {
        let latest = IndexModel::builder()
            .keys(doc! { "spotify_id": 1, "time_range": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("spotify_id_time_range".to_string())
                    .build(),
            )
            .build();
        self.user_syncs().create_index(latest).await?;
        // sync_id breaks ties between snapshots of the same millisecond, as the newest-wins
        // rule of `write_snapshot` does, so the sort is the index order.
        let history = IndexModel::builder()
            .keys(doc! { "spotify_id": 1, "time_range": 1, "synced_at": -1, "sync_id": -1 })
            .options(
                IndexOptions::builder()
                    .name("spotify_id_time_range_synced_at".to_string())
                    .build(),
            )
            .build();
        self.snapshots().create_index(history).await?;
        Ok(())
    }

    async fn indexes_ready(&self) -> Result<(), Error> {
        self.indexes
            .get_or_try_init(|| self.ensure_indexes())
            .await
            .map(|_| ())
    }

    /// Store one snapshot, exactly once per `snapshot_id` however often it is delivered:
    /// the history insert is keyed by the id, and `user_syncs` is replaced only by a newer
    /// snapshot (later `synced_at`, or the same millisecond and a later `sync_id`).
    pub async fn write_snapshot(
        &self,
        snapshot_id: &str,
        payload: &TopPayload,
    ) -> Result<(), Error> {
        bounded(
            &self.breaker,
            "a snapshot write",
            self.write_snapshot_unbounded(snapshot_id, payload),
        )
        .await
    }

    async fn write_snapshot_unbounded(
        &self,
        snapshot_id: &str,
        payload: &TopPayload,
    ) -> Result<(), Error> {
        self.indexes_ready().await?;
        let synced_at = parse_synced_at(&payload.synced_at)?;
        let mut document = bson::to_document(payload)?;
        document.insert("synced_at", synced_at);
        document.insert("snapshot_id", snapshot_id);

        let mut entry = document.clone();
        entry.insert("_id", snapshot_id);
        match self.snapshots().insert_one(entry).await {
            Ok(_) => {}
            // Delivered before. Go on anyway: that delivery may have stopped before the
            // `user_syncs` write, which is itself idempotent.
            Err(err) if is_duplicate_key(&err) => {
                tracing::debug!(snapshot_id, "snapshot already in the history");
            }
            Err(err) => return Err(err),
        }

        // Matches only an older latest snapshot. When there is none (or a newer one), the
        // upsert tries to insert and the unique index refuses: a newer snapshot is there.
        let filter = doc! {
            "spotify_id": &payload.spotify_id,
            "time_range": payload.time_range.as_str(),
            "$or": [
                { "synced_at": { "$lt": synced_at } },
                { "synced_at": synced_at, "sync_id": { "$lt": payload.sync_id } },
            ],
        };
        match self
            .user_syncs()
            .replace_one(filter, document)
            .upsert(true)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_duplicate_key(&err) => {
                tracing::debug!(
                    snapshot_id,
                    "user_syncs already holds this or a newer snapshot"
                );
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Exactly the snapshots `ids` (history `_id`s), in no particular order, with only the
    /// fields in `projection` (plus `_id`, and `synced_at` turned back into RFC 3339), each
    /// decoded as `T`. An `_id` lookup: its cost follows the number of ids, never the length
    /// of the history (a sort over a user's snapshots would, on servers that sort in memory).
    pub async fn snapshots_by_id<T: serde::de::DeserializeOwned>(
        &self,
        ids: &[String],
        projection: Document,
    ) -> Result<Vec<T>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        bounded(
            &self.breaker,
            "a history read",
            self.snapshots_by_id_unbounded(ids, projection),
        )
        .await
    }

    async fn snapshots_by_id_unbounded<T: serde::de::DeserializeOwned>(
        &self,
        ids: &[String],
        projection: Document,
    ) -> Result<Vec<T>, Error> {
        let mut cursor = self
            .snapshots()
            .find(doc! { "_id": { "$in": ids } })
            .projection(projection)
            .await?;
        let mut found = Vec::with_capacity(ids.len());
        while cursor.advance().await? {
            let mut document: Document = cursor.deserialize_current()?;
            restore_synced_at(&mut document)?;
            found.push(bson::from_document(document)?);
        }
        Ok(found)
    }

    /// The latest snapshot of a user's range, from `user_syncs`.
    pub async fn latest(
        &self,
        spotify_id: &str,
        range: TimeRange,
    ) -> Result<Option<TopPayload>, Error> {
        bounded(
            &self.breaker,
            "a latest-snapshot read",
            self.user_syncs()
                .find_one(doc! { "spotify_id": spotify_id, "time_range": range.as_str() }),
        )
        .await?
        .map(from_stored)
        .transpose()
    }
}

impl Mongo {
    /// Every history snapshot of a user, oldest first, as stored (for their data export).
    pub async fn history_of(&self, spotify_id: &str) -> Result<Vec<Document>, Error> {
        bounded(&self.breaker, "an export read", async {
            let mut cursor = self
                .snapshots()
                .find(doc! { "spotify_id": spotify_id })
                .sort(doc! { "synced_at": 1, "sync_id": 1 })
                .await?;
            let mut found = Vec::new();
            while cursor.advance().await? {
                let mut document: Document = cursor.deserialize_current()?;
                restore_synced_at(&mut document)?;
                found.push(document);
            }
            Ok(found)
        })
        .await
    }

    /// Remove a user's history and latest snapshots; how many documents went.
    pub async fn delete_user(&self, spotify_id: &str) -> Result<u64, Error> {
        let history = bounded(
            &self.breaker,
            "a history delete",
            self.snapshots()
                .delete_many(doc! { "spotify_id": spotify_id }),
        )
        .await?;
        let latest = bounded(
            &self.breaker,
            "a latest-snapshot delete",
            self.user_syncs()
                .delete_many(doc! { "spotify_id": spotify_id }),
        )
        .await?;
        Ok(history.deleted_count + latest.deleted_count)
    }
}

/// True for MongoDB's duplicate key error, however the server reports it.
fn is_duplicate_key(err: &Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn parse_synced_at(text: &str) -> Result<bson::DateTime, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| bson::DateTime::from_millis(at.timestamp_millis()))
        .map_err(|e| Error::custom(format!("synced_at {text:?} is not RFC 3339: {e}")))
}

/// A stored document back into the payload it was written from.
fn from_stored(mut document: Document) -> Result<TopPayload, Error> {
    restore_synced_at(&mut document)?;
    // `_id` and `snapshot_id` are not payload fields; serde ignores them.
    Ok(bson::from_document(document)?)
}

/// `synced_at` is stored as a BSON date; payloads carry it as RFC 3339 with milliseconds.
fn restore_synced_at(document: &mut Document) -> Result<(), Error> {
    let synced_at = match document.get("synced_at") {
        Some(Bson::DateTime(at)) => {
            DateTime::<Utc>::from_timestamp_millis(at.timestamp_millis())
                .ok_or_else(|| Error::custom(format!("synced_at {at} is out of range")))?
        }
        other => return Err(Error::custom(format!("synced_at is not a date: {other:?}"))),
    };
    document.insert(
        "synced_at",
        synced_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    Ok(())
}
