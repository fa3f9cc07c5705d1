//! Server-side sessions. The browser holds only a random token in an HttpOnly cookie; the
//! database holds its SHA-256, the user and an expiry.

use super::crypto::{random_token, sha256};
use axum::http::{header, HeaderMap, HeaderValue};
use sqlx::PgPool;
use std::time::Duration;

pub const SESSION_COOKIE: &str = "pfy_session";
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The signed-in person, as the session names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: i64,
    pub spotify_id: String,
    pub display_name: Option<String>,
    pub needs_relogin: bool,
}

/// The value of cookie `name` in the request, if any.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when served over https.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> HeaderValue {
    let cookie = cookie::Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values we build are header-safe")
}

pub fn clear_cookie(name: &str, path: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", path, Duration::ZERO, secure)
}

/// Start a session for `user_id`; returns the cookie token.
pub async fn create(pool: &PgPool, user_id: i64) -> Result<String, sqlx::Error> {
    let token = random_token();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(sha256(&token))
    .bind(user_id)
    .bind(SESSION_TTL.as_secs() as f64)
    .execute(pool)
    .await?;
    Ok(token)
}

/// End the session the request carries, if any.
pub async fn end(pool: &PgPool, headers: &HeaderMap) -> Result<(), sqlx::Error> {
    if let Some(token) = read_cookie(headers, SESSION_COOKIE) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(sha256(&token))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Who the request's session belongs to; `None` for no, unknown or expired sessions.
pub async fn current_user(
    pool: &PgPool,
    headers: &HeaderMap,
) -> Result<Option<SessionUser>, sqlx::Error> {
    let Some(token) = read_cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let row: Option<(i64, String, Option<String>, Option<bool>)> = sqlx::query_as(
        "SELECT u.id, u.spotify_id, u.display_name, t.needs_relogin
           FROM sessions s
           JOIN users u ON u.id = s.user_id
           LEFT JOIN spotify_tokens t ON t.user_id = u.id
          WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(sha256(&token))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(user_id, spotify_id, display_name, needs_relogin)| SessionUser {
            user_id,
            spotify_id,
            display_name,
            // No token row at all means the connection is gone too.
            needs_relogin: needs_relogin.unwrap_or(true),
        },
    ))
}
