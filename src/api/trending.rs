//! Trending on this instance: the most played artists and tracks of every listener here,
//! today and over seven days, from Redis (counted again from the plays when Redis lost
//! them or may be short).

use super::ApiError;
use crate::domain::trending::{InstanceTotals, TrendingView};
use leptos::prelude::*;

/// `None` when nobody is signed in (trending is for the people of this instance). Redis
/// or the analytics nodes not answering: an `Unavailable` saying so in words.
#[server(prefix = "/api", endpoint = "trending")]
pub async fn get_trending() -> Result<Option<TrendingView>, ApiError> {
    let state = super::ctx::state()?;
    if super::ctx::session_user(&state).await?.is_none() {
        return Ok(None);
    }
    match crate::server::trending::load(&state.stores).await {
        Ok(view) => Ok(Some(view)),
        Err(err) => {
            tracing::warn!(error = %err, "trending unavailable");
            Err(ApiError::Unavailable(format!(
                "Trending on this instance is unavailable right now: {err}. Everything else on \
                 this page still works."
            )))
        }
    }
}

/// This instance's listeners, plays and hours (all time), from the nodes' per-listener
/// rollup. `None` when nobody is signed in.
#[server(prefix = "/api", endpoint = "instance")]
pub async fn get_instance() -> Result<Option<InstanceTotals>, ApiError> {
    let state = super::ctx::state()?;
    if super::ctx::session_user(&state).await?.is_none() {
        return Ok(None);
    }
    match crate::server::instance::load(&state.stores).await {
        Ok(totals) => Ok(Some(totals)),
        Err(err) => {
            tracing::warn!(error = %err, "instance totals unavailable");
            Err(ApiError::Unavailable(format!(
                "This instance's totals are unavailable right now: {err}. Everything else on \
                 this page still works."
            )))
        }
    }
}
