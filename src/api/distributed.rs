//! The Distributed query page: the cross-node queries the app runs for the signed-in
//! person, with their results and plans.

use super::ApiError;
use crate::domain::distributed::DistributedView;
use leptos::prelude::*;

/// `None` when nobody is signed in. Each query's failure is in its own part of the view;
/// only `main` itself failing fails the whole.
#[server(prefix = "/api", endpoint = "distributed")]
pub async fn get_distributed() -> Result<Option<DistributedView>, ApiError> {
    let state = super::ctx::state()?;
    let Some(user) = super::ctx::session_user(&state).await? else {
        return Ok(None);
    };
    crate::server::distributed::load(&state.stores, &state.instance_runs, &user.spotify_id)
        .await
        .map(Some)
        .map_err(super::ctx::store_down)
}
