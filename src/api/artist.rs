//! One artist as the signed-in person knows them. The user comes from the session; the id
//! only picks the artist, and an artist outside that person's lists is a 404.

use super::ApiError;
use crate::domain::artist::ArtistPage;
use leptos::prelude::*;

/// `None` when nobody is signed in.
#[server(prefix = "/api", endpoint = "artist")]
pub async fn get_artist(id: String) -> Result<Option<ArtistPage>, ApiError> {
    let state = super::ctx::state()?;
    let Some(user) = super::ctx::session_user(&state).await? else {
        return Ok(None);
    };
    match crate::server::artist::load(&state, user.user_id, &user.spotify_id, &id).await {
        Ok(Some(page)) => Ok(Some(page)),
        Ok(None) => {
            super::ctx::set_status(axum::http::StatusCode::NOT_FOUND);
            Err(ApiError::NotFound(
                "That artist is not in your top artists or top tracks.".into(),
            ))
        }
        Err(err) => Err(super::ctx::store_down(err)),
    }
}
