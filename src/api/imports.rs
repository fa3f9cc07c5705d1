//! The Import page's data: the signed-in person's imports and how far each has got.

use super::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the Import page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportsView {
    /// Demo mode: a sample export of the demo listener can be downloaded.
    pub sample: bool,
    /// The largest upload taken, in MB.
    pub max_mb: u64,
    pub imports: Vec<ImportRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    pub id: i64,
    pub file_name: String,
    pub megabytes: String,
    /// "reading", "storing", "done", "failed" or "canceled".
    pub status: String,
    pub entries: u64,
    pub plays: u64,
    pub podcasts: u64,
    pub unknown: u64,
    pub short: u64,
    /// Entries that could not be read as plays (a wrong kind of value), skipped.
    pub unreadable: u64,
    /// Running, but waiting for stores that do not answer.
    pub waiting: bool,
    pub stored: Option<i64>,
    pub error: Option<String>,
    pub created_at: String,
}

impl ImportRow {
    pub fn running(&self) -> bool {
        self.status == "reading" || self.status == "storing"
    }
}

/// `None` when nobody is signed in.
#[server(prefix = "/api", endpoint = "imports")]
pub async fn get_imports() -> Result<Option<ImportsView>, ApiError> {
    let state = super::ctx::state()?;
    let Some(user) = super::ctx::session_user(&state).await? else {
        return Ok(None);
    };
    let imports = crate::server::plays::import::list(&state.stores.main, user.user_id)
        .await
        .map_err(super::ctx::store_down)?;
    Ok(Some(ImportsView {
        sample: state.sim.is_some(),
        max_mb: state.config.import_max_bytes / (1024 * 1024),
        imports: imports
            .into_iter()
            .map(|i| ImportRow {
                id: i.id,
                file_name: i.file_name,
                megabytes: format!("{:.1} MB", i.bytes as f64 / 1_048_576.0),
                status: i.status,
                entries: i.counts.entries,
                plays: i.counts.plays,
                podcasts: i.counts.podcasts,
                unknown: i.counts.unknown,
                short: i.counts.short,
                unreadable: i.counts.unreadable,
                waiting: i.waiting,
                stored: i.stored,
                error: i.error,
                created_at: i.created_at,
            })
            .collect(),
    }))
}
