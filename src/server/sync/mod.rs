//! The sync pipeline: Spotify's top artists and tracks for the three ranges, written to
//! PostgreSQL (the record, one transaction), MongoDB (history, through an outbox) and
//! Redis (the dashboard cache), and the read path that serves them.

pub mod fair;
pub mod history;
pub mod outbox;
pub mod read;
pub mod records;
pub mod run;
pub mod schedule;

pub use run::{snapshot_id, Started, SyncError, SyncReport, SyncUser, Syncs, Trigger};
