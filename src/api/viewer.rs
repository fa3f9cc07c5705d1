//! Who is signed in. The user comes from the session cookie only: no server function takes
//! a user id, so nobody can ask for someone else's data by changing one.

use super::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub spotify_id: String,
    pub display_name: String,
    /// Spotify refused our refresh token (revoked, or the 6-month expiry).
    pub needs_relogin: bool,
    pub demo_mode: bool,
}

#[server(prefix = "/api", endpoint = "viewer")]
pub async fn get_viewer() -> Result<Option<Viewer>, ApiError> {
    let state = super::ctx::state()?;
    let user = super::ctx::session_user(&state).await?;
    Ok(user.map(|u| Viewer {
        display_name: u.display_name.unwrap_or_else(|| u.spotify_id.clone()),
        spotify_id: u.spotify_id,
        needs_relogin: u.needs_relogin,
        demo_mode: state.auth.demo,
    }))
}
