//! Your data is yours: `GET /account/export` downloads everything this instance holds about
//! the signed-in person as one JSON file, and `POST /account/delete` removes them from
//! every store — PostgreSQL `main` and the analytics node, MongoDB, Redis, this process's
//! caches — and ends the session. Plus the sweeper that removes expired sessions and
//! sign-ins nobody finished.
//!
//! Deletion checks every store first and stops if one does not answer (nothing deleted,
//! "try again"), then deletes the copies — MongoDB, Redis, the analytics node — and the
//! record last, so a failure part-way leaves an account that can be deleted again. The
//! outbox rows go before MongoDB's copy, and MongoDB is cleared once more at the end, so a
//! snapshot the outbox worker was delivering at that moment is not left behind.

use super::auth::pages::problem;
use super::auth::session;
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

/// What a deletion removed, store by store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deleted {
    pub main_rows: u64,
    pub analytics_rows: u64,
    pub mongo_documents: u64,
    pub redis_keys: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("{0} does not answer")]
    StoreDown(&'static str),
    #[error("a sync for this account is running")]
    SyncRunning,
}

/// Remove one person from every store. Stops before deleting anything if a store does not
/// answer or a sync of theirs runs.
pub async fn delete_user(state: &AppState, user_id: i64) -> Result<Deleted, DeleteError> {
    let stores = &state.stores;
    if state.syncs.progress(user_id).await.is_some() {
        return Err(DeleteError::SyncRunning);
    }
    let limit = Duration::from_secs(3);
    let main_down = |e: sqlx::Error| {
        tracing::error!(error = %e, "account deletion: database error");
        DeleteError::StoreDown("The database")
    };
    let spotify_id: String = tokio::time::timeout(
        limit,
        sqlx::query_scalar("SELECT spotify_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&stores.main),
    )
    .await
    .map_err(|_| DeleteError::StoreDown("The database"))?
    .map_err(main_down)?;
    // Their plays' node, held against a move of their partition until they are deleted.
    let shard = match tokio::time::timeout(limit, stores.analytics.shard(&stores.main, &spotify_id))
        .await
    {
        Ok(Ok(shard)) => Some(shard),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "account deletion: the listener's analytics node");
            None
        }
        Err(_) => None,
    };
    let shard_ping = async {
        match &shard {
            Some(shard) => super::store::pg::ping(&shard.pool).await,
            None => Err("no node".to_string()),
        }
    };
    let (main, analytics, mongo, redis) = tokio::join!(
        tokio::time::timeout(limit, super::store::pg::ping(&stores.main)),
        tokio::time::timeout(limit, shard_ping),
        tokio::time::timeout(limit, stores.mongo.ping()),
        tokio::time::timeout(limit, stores.cache.ping()),
    );
    for (name, up) in [
        ("The database", matches!(main, Ok(Ok(())))),
        ("The analytics node", matches!(analytics, Ok(Ok(())))),
        ("The sync history (MongoDB)", matches!(mongo, Ok(Ok(())))),
        ("The cache (Redis)", matches!(redis, Ok(Ok(())))),
    ] {
        if !up {
            return Err(DeleteError::StoreDown(name));
        }
    }
    let Some(shard) = shard else {
        return Err(DeleteError::StoreDown("The analytics node"));
    };
    let mut deleted = Deleted::default();

    // 1. Nothing more goes to MongoDB for them.
    deleted.main_rows += sqlx::query(
        "DELETE FROM mongo_outbox WHERE snapshot_id IN (
             SELECT r.id || '-' || t FROM sync_runs r,
                    unnest(ARRAY['short_term', 'medium_term', 'long_term']) AS t
              WHERE r.user_id = $1)",
    )
    .bind(user_id)
    .execute(&stores.main)
    .await
    .map_err(main_down)?
    .rows_affected();
    // 2. The copies.
    let mongo_down = |e: mongodb::error::Error| {
        tracing::error!(error = %e, "account deletion: MongoDB error");
        DeleteError::StoreDown("The sync history (MongoDB)")
    };
    deleted.mongo_documents += stores
        .mongo
        .delete_user(&spotify_id)
        .await
        .map_err(mongo_down)?;
    let id = super::store::cache::glob_escape(&spotify_id);
    for pattern in [
        format!("top:{id}:*"),
        format!("history:{id}:*"),
        format!("artist:history:{id}:*"),
    ] {
        deleted.redis_keys += stores.cache.delete_matching(&pattern).await.map_err(|e| {
            tracing::error!(error = %e, "account deletion: Redis error");
            DeleteError::StoreDown("The cache (Redis)")
        })?;
    }
    // Plays (their rollups go with them, by trigger), those of an import still being
    // read, and the time zone they were counted in.
    for statement in [
        "DELETE FROM plays WHERE spotify_id = $1",
        "DELETE FROM import_staging WHERE spotify_id = $1",
        "DELETE FROM listener_zones WHERE spotify_id = $1",
    ] {
        deleted.analytics_rows += sqlx::query(statement)
            .bind(&spotify_id)
            .execute(&shard.pool)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "account deletion: analytics node error");
                DeleteError::StoreDown("The analytics node")
            })?
            .rows_affected();
    }
    shard.release().await;
    // 3. The record, in one transaction: the lists (keyed by Spotify id) and the user, whose
    //    tokens, sessions and sync runs go with them (ON DELETE CASCADE).
    let mut tx = stores.main.begin().await.map_err(main_down)?;
    for table in ["user_artists", "user_tracks", "top_payloads"] {
        deleted.main_rows += sqlx::query(&format!("DELETE FROM {table} WHERE spotify_id = $1"))
            .bind(&spotify_id)
            .execute(&mut *tx)
            .await
            .map_err(main_down)?
            .rows_affected();
    }
    for table in ["sync_runs", "sessions", "spotify_tokens"] {
        deleted.main_rows += sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(main_down)?
            .rows_affected();
    }
    deleted.main_rows += sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(main_down)?
        .rows_affected();
    tx.commit().await.map_err(main_down)?;
    // 4. A snapshot delivered while this ran, and this process's caches.
    deleted.mongo_documents += stores
        .mongo
        .delete_user(&spotify_id)
        .await
        .map_err(mongo_down)?;
    state.sessions.forget_user(user_id);
    state.pages.forget_user(user_id);
    tracing::info!(
        main_rows = deleted.main_rows,
        analytics_rows = deleted.analytics_rows,
        mongo_documents = deleted.mongo_documents,
        redis_keys = deleted.redis_keys,
        "account deleted"
    );
    Ok(deleted)
}

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
    match delete_user(&state, user.user_id).await {
        Ok(_) => {
            let secure = state.auth.secure_cookies;
            let mut response = problem(
                StatusCode::OK,
                "Your account is deleted",
                "Everything Personalify held about you is gone from this server: your profile, Spotify connection, top lists, sync history and plays. Spotify itself still has your account; you can remove this app's access in your Spotify account settings.",
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                session::clear_cookie(session::session_cookie(secure), "/", secure),
            );
            response
        }
        Err(DeleteError::SyncRunning) => problem(
            StatusCode::CONFLICT,
            "A sync is running",
            "Your account is being synced right now. Wait for it to finish (a few seconds), then delete again. Nothing was changed.",
        ),
        Err(DeleteError::StoreDown(what)) => unavailable(what),
    }
}
