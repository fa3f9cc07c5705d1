//! `POST /listening/time-zone` (form field `time_zone`, an IANA name such as
//! `Europe/Berlin`): the signed-in listener's days and hours are counted in it from now
//! on, and their past plays are recounted in it (`set_listener_zone` on the analytics
//! node, one transaction). A form post is answered with a redirect to `/listening`; a
//! script asking for JSON (`public/enhance.js`, which saves the browser's zone while none
//! was chosen) gets `{"time_zone": …}` or `{"error": …}`.

use super::reply::Reply;
use super::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use std::time::Duration;

/// Recounting a heavy listener's plays takes well under a second; past this the node is
/// taken to be stalled (the change rolls back: it is one statement).
pub const DEADLINE: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new().route("/listening/time-zone", post(change))
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error(
        "“{0}” is not a time zone name. Use a name like Europe/Berlin, America/New_York or UTC."
    )]
    Malformed(String),
    #[error(
        "“{0}” is not a time zone this server knows. Use a name like Europe/Berlin, \
         America/New_York or UTC."
    )]
    Unknown(String),
    #[error(
        "Personalify's analytics node is not answering, so your time zone cannot be changed \
         right now. Try again in a minute."
    )]
    Unavailable,
}

/// A zone name's shape (what IANA names are made of), before the database is asked.
fn well_formed(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() <= 64
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
}

/// Set `spotify_id`'s zone to `zone` on the analytics node and recount their days and
/// hours in it. Returns the hours with plays it now holds for them.
pub async fn set(analytics: &PgPool, spotify_id: &str, zone: &str) -> Result<i64, ZoneError> {
    let zone = zone.trim();
    if !well_formed(zone) {
        return Err(ZoneError::Malformed(zone.chars().take(64).collect()));
    }
    let call = sqlx::query_scalar::<_, i64>("SELECT set_listener_zone($1, $2)")
        .bind(spotify_id)
        .bind(zone)
        .fetch_one(analytics);
    match tokio::time::timeout(DEADLINE, call).await {
        Ok(Ok(hours)) => {
            tracing::info!(
                time_zone = zone,
                hours,
                "a listener's time zone was changed"
            );
            Ok(hours)
        }
        Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("22023") => {
            Err(ZoneError::Unknown(zone.to_string()))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot change a listener's time zone");
            Err(ZoneError::Unavailable)
        }
        Err(_) => Err(ZoneError::Unavailable),
    }
}

/// [`set`] on the listener's node, held against a move of their partition.
pub async fn set_routed(state: &AppState, spotify_id: &str, zone: &str) -> Result<i64, ZoneError> {
    if !well_formed(zone.trim()) {
        return Err(ZoneError::Malformed(zone.trim().chars().take(64).collect()));
    }
    let stores = &state.stores;
    let shard = match tokio::time::timeout(
        DEADLINE,
        stores.analytics.shard(&stores.main, spotify_id),
    )
    .await
    {
        Ok(Ok(shard)) => shard,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot change a listener's time zone");
            return Err(ZoneError::Unavailable);
        }
        Err(_) => return Err(ZoneError::Unavailable),
    };
    let result = set(&shard.pool, spotify_id, zone).await;
    shard.release().await;
    result
}

#[derive(Debug, Deserialize)]
struct ZoneForm {
    time_zone: String,
}

async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ZoneForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let reply = Reply::to(&headers);
    let user = match reply
        .user(&state, &headers, "Sign in to choose your time zone.")
        .await
    {
        Ok(user) => user,
        Err(response) => return response,
    };
    let Ok(Form(form)) = form else {
        return reply.error(
            StatusCode::BAD_REQUEST,
            "Send the time zone as a form field named time_zone.",
        );
    };
    match set_routed(&state, &user.spotify_id, &form.time_zone).await {
        Ok(_) if reply.json => {
            Json(serde_json::json!({ "time_zone": form.time_zone.trim() })).into_response()
        }
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/listening")]).into_response(),
        Err(e @ (ZoneError::Malformed(_) | ZoneError::Unknown(_))) => {
            reply.error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ ZoneError::Unavailable) => {
            reply.error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn zone_names_are_checked_for_shape_first() {
        for ok in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(well_formed(ok), "{ok}");
        }
        for bad in [
            "",
            "Europe/Berlin; DROP TABLE plays",
            "../etc",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
