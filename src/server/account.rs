//! Your data is yours: `GET /account/export` downloads everything this instance holds about
//! the signed-in person as one JSON file, and `POST /account/delete` removes them from
//! every store — PostgreSQL `main` and the analytics node, MongoDB, Redis, this process's
//! caches — and ends the session. Plus the sweeper that removes expired sessions and
//! sign-ins nobody finished.
//!
//! Deletion is a job ([`super::deletion`]): the person is signed out at once, and what a
//! few seconds do not finish (millions of plays, a store that is down) goes on in the
//! background; the answer says truthfully what is still being removed.

use super::auth::pages::problem;
use super::auth::session;
use super::deletion::{self, DeleteError};
use super::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/export", get(export))
        .route("/account/delete", post(delete))
}

/// How often the sweeper runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What the sweeper removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    pub sessions: u64,
    pub sign_ins: u64,
}

/// Remove expired sessions and sign-ins that were started and never finished.
pub async fn sweep(pool: &PgPool) -> Result<Swept, sqlx::Error> {
    let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected();
    let sign_ins = sqlx::query("DELETE FROM oauth_states WHERE expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected();
    if sessions + sign_ins > 0 {
        tracing::info!(sessions, sign_ins, "swept expired sessions and sign-ins");
    }
    Ok(Swept { sessions, sign_ins })
}

/// The sweeper's loop, for a supervisor to run.
pub async fn run_sweeper(pool: PgPool) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        match sweep(&pool).await {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot sweep expired sessions"),
        }
    }
}

fn not_signed_in() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Sign in first",
        "Sign in to download or delete your data.",
    )
}

fn unavailable(what: &str) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a minute",
        &format!("{what} does not answer right now, so Personalify cannot do this completely. Nothing was changed."),
    )
}

async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<session::SessionUser, Response> {
    match session::current_user(&state.stores.main, &state.sessions, headers).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(not_signed_in()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the session");
            Err(unavailable("The database"))
        }
    }
}

/// Rows PostgreSQL built as JSON text, parsed.
fn json_rows(rows: Vec<String>) -> Vec<Value> {
    rows.iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect()
}

/// Everything about one person, as JSON. Tokens are not included (they are Spotify's
/// secrets, and useless outside this server); whether the connection works is.
pub async fn export_user(state: &AppState, user_id: i64) -> Result<Value, Response> {
    let pool = &state.stores.main;
    let store_down = |e: sqlx::Error| {
        tracing::error!(error = %e, "export: database error");
        unavailable("The database")
    };
    let (spotify_id, display_name, created_at): (String, Option<String>, String) =
        sqlx::query_as(
            "SELECT spotify_id, display_name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
               FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_one(pool)
        .await
        .map_err(store_down)?;
    let connection: Option<(String, bool, String)> = sqlx::query_as(
        "SELECT scope, needs_relogin, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
           FROM spotify_tokens WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .map_err(store_down)?;
    let syncs: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_object('id', id, 'trigger', trigger, 'status', status,
                'started_at', started_at, 'finished_at', finished_at,
                'artists', artists_count, 'tracks', tracks_count, 'error', error)::text
           FROM sync_runs WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(store_down)
    .map(json_rows)?;
    let top_lists: Vec<Value> = sqlx::query_scalar(
        "SELECT payload::text FROM top_payloads WHERE spotify_id = $1 ORDER BY time_range",
    )
    .bind(&spotify_id)
    .fetch_all(pool)
    .await
    .map_err(store_down)
    .map(json_rows)?;
    // What the poller and the importer keep about them on main.
    let cursor: Option<Value> = sqlx::query_scalar(
        "SELECT json_build_object('after_ms', after_ms, 'polled_at', polled_at,
                'failures', failures, 'last_error', last_error)::text
           FROM play_cursors WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .map_err(store_down)?
    .and_then(|text: String| serde_json::from_str(&text).ok());
    let waiting: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_object('kept_at', created_at, 'plays', plays)::text
           FROM play_stash WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(store_down)
    .map(json_rows)?;
    let imports: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_object('file_name', file_name, 'bytes', bytes, 'status', status,
                'entries', entries_done, 'plays_read', plays_read, 'podcasts', podcasts,
                'unknown', unknown, 'short', short, 'stored', stored, 'error', error,
                'created_at', created_at, 'finished_at', finished_at)::text
           FROM imports WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(store_down)
    .map(json_rows)?;
    let history = match state.stores.mongo.history_of(&spotify_id).await {
        Ok(docs) => docs
            .into_iter()
            .map(|mut d| {
                d.remove("_id");
                serde_json::to_value(d).unwrap_or(Value::Null)
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            tracing::error!(error = %e, "export: MongoDB error");
            return Err(unavailable("The sync history (MongoDB)"));
        }
    };
    // The listener's node: their plays and zone are there (read as they are; a move of
    // their partition meanwhile is a copy, so the old node still answers until it ends).
    let node =
        crate::server::shards::pool_of(&state.stores.analytics, &state.stores.main, &spotify_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "export: cannot find the listener's analytics node");
                unavailable("The listening history (the analytics node)")
            })?;
    let plays: Vec<Value> = match sqlx::query_scalar(
        "SELECT json_build_object('played_at', played_at, 'track_id', track_id,
                'track_name', track_name, 'artist_name', artist_name, 'artist_id', artist_id,
                'album_name', album_name, 'ms_played', ms_played, 'source', source)::text
           FROM plays WHERE spotify_id = $1 ORDER BY played_at, track_key",
    )
    .bind(&spotify_id)
    .fetch_all(&node)
    .await
    {
        Ok(rows) => json_rows(rows),
        Err(e) => {
            tracing::error!(error = %e, "export: analytics node error");
            return Err(unavailable("The listening history (the analytics node)"));
        }
    };
    let time_zone: Option<String> =
        sqlx::query_scalar("SELECT time_zone FROM listener_zones WHERE spotify_id = $1")
            .bind(&spotify_id)
            .fetch_optional(&node)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "export: analytics node error");
                unavailable("The listening history (the analytics node)")
            })?;
    Ok(json!({
        "format": "personalify-export/1",
        "exported_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "profile": {
            "spotify_id": spotify_id,
            "display_name": display_name,
            "created_at": created_at,
            "time_zone": time_zone,
        },
        "spotify_connection": connection.map(|(scope, needs_relogin, updated_at)| json!({
            "scope": scope,
            "needs_sign_in_again": needs_relogin,
            "updated_at": updated_at,
        })),
        "syncs": syncs,
        "top_lists": top_lists,
        "history": history,
        "plays": plays,
        "recently_played_cursor": cursor,
        "plays_waiting_for_the_analytics_node": waiting,
        "imports": imports,
    }))
}

async fn export(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let data = match export_user(&state, user.user_id).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let body = match serde_json::to_vec_pretty(&data) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "export: cannot encode");
            return unavailable("The export");
        }
    };
    let day = chrono::Utc::now().format("%Y-%m-%d");
    // The id goes into a header: keep it to safe characters.
    let safe: String = user
        .spotify_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    let disposition = format!("attachment; filename=\"personalify-{safe}-{day}.json\"");
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[derive(serde::Deserialize)]
struct Confirm {
    #[serde(default)]
    confirm: String,
}

/// How long `POST /account/delete` waits for the deletion before it answers that the rest
/// goes on in the background.
pub const DELETE_WAIT: Duration = Duration::from_secs(10);

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Confirm>,
) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    if form.confirm.trim() != "delete" {
        return problem(
            StatusCode::BAD_REQUEST,
            "Your account was not deleted",
            "To delete your account, type the word delete in the box, then press the button.",
        );
    }
    let spotify_id = match deletion::begin(&state, user.user_id).await {
        Ok(id) => id,
        Err(DeleteError::SyncRunning) => {
            return problem(
                StatusCode::CONFLICT,
                "A sync is running",
                "Your account is being synced right now. Wait for it to finish (a few seconds), then delete again. Nothing was changed.",
            )
        }
        Err(DeleteError::NoAccount) => return not_signed_in(),
        Err(DeleteError::StoreDown(what)) => return unavailable(what),
    };
    // The job runs on its own: a person who stops waiting does not stop it.
    let job = {
        let (state, spotify_id) = (state.clone(), spotify_id.clone());
        tokio::spawn(async move { deletion::run(&state, &spotify_id).await })
    };
    let outcome = match tokio::time::timeout(DELETE_WAIT, job).await {
        Ok(Ok(outcome)) => outcome,
        // Panicked: the `deletions` task takes it over once its lease ends.
        Ok(Err(_)) => deletion::Outcome::Continuing {
            remaining: deletion::remaining(&state, &spotify_id).await,
            waiting_for: None,
        },
        Err(_) => deletion::Outcome::Continuing {
            remaining: deletion::remaining(&state, &spotify_id).await,
            waiting_for: None,
        },
    };
    let secure = state.auth.secure_cookies;
    let mut response = match outcome {
        deletion::Outcome::Done => problem(
            StatusCode::OK,
            "Your account is deleted",
            "Everything Personalify held about you is gone from this server: your profile, Spotify connection, top lists, sync history, plays and imports. Spotify itself still has your account; you can remove this app's access in your Spotify account settings.",
        ),
        deletion::Outcome::Continuing {
            remaining,
            waiting_for,
        } => {
            let why = match waiting_for {
                Some(store) => format!(
                    "{store} does not answer right now; the rest is removed as soon as it is back."
                ),
                None => "The rest is being removed in the background and is gone within minutes.".to_string(),
            };
            problem(
                StatusCode::ACCEPTED,
                "Your account is being deleted",
                &format!(
                    "You are signed out everywhere, and nothing new is collected for you. Still to remove: {remaining}. {why} Spotify itself still has your account; you can remove this app's access in your Spotify account settings."
                ),
            )
        }
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        session::clear_cookie(session::session_cookie(secure), "/", secure),
    );
    response
}
