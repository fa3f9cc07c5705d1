//! A sync's progress and outcome, as the UI reads it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    pub run_id: i64,
    pub status: SyncStatus,
    /// Lists fetched so far out of `total_steps` (artists and tracks for three ranges),
    /// plus the final write.
    pub done_steps: u8,
    pub total_steps: u8,
    /// What is happening now, in words ("Top tracks, 6 months").
    pub current: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Why it failed, fit to show a person.
    pub error: Option<String>,
    pub artists: Option<u32>,
    pub tracks: Option<u32>,
}
