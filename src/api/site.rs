//! Facts about this installation that pages need (demo mode, version).

use super::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// True when no Spotify app is configured and the built-in simulator stands in.
    pub demo_mode: bool,
    pub version: String,
}

#[server(prefix = "/api", endpoint = "site_info")]
pub async fn get_site_info() -> Result<SiteInfo, ApiError> {
    let state = super::ctx::state()?;
    Ok(SiteInfo {
        demo_mode: state.config.spotify.is_demo(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}
