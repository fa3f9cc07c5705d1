//! The sync pipeline: Spotify's top artists and tracks for the three ranges, written to
//! PostgreSQL (the record, one transaction), MongoDB (history, through an outbox) and
//! Redis (the dashboard cache).

pub mod history;
pub mod outbox;
