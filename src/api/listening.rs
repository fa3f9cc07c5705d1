//! The signed-in person's plays: the Listening page's panels, computed on the analytics node
//! and read through `main`'s foreign tables.

use super::ApiError;
use crate::domain::listening::ListeningView;
use crate::domain::TimeRange;
use leptos::prelude::*;

/// `None` when nobody is signed in. The analytics node down or slow: an `Unavailable`
/// saying so in words (the rest of the site does not need it).
#[server(prefix = "/api", endpoint = "listening")]
pub async fn get_listening(range: TimeRange) -> Result<Option<ListeningView>, ApiError> {
    let state = super::ctx::state()?;
    let Some(user) = super::ctx::session_user(&state).await? else {
        return Ok(None);
    };
    match crate::server::listening::load(&state.stores, &user.spotify_id, range).await {
        Ok(view) => Ok(Some(view)),
        Err(err) => {
            tracing::warn!(error = %err, "listening panels unavailable");
            crate::server::metrics::record_store_error("analytics");
            Err(ApiError::Unavailable(
                "Your listening history is unavailable right now: Personalify's analytics node \
                 is not answering. Your top lists and history still work; try this page again \
                 in a minute."
                    .into(),
            ))
        }
    }
}
