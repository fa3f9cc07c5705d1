//! Server-side sessions. The browser holds only a random token in an HttpOnly cookie; the
//! database holds its SHA-256, the user and an expiry.

use super::crypto::{random_token, sha256};
use axum::http::{header, HeaderMap, HeaderValue};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session cookie over plain http (a loopback or LAN instance).
pub const SESSION_COOKIE: &str = "pfy_session";
/// The session cookie when served over https: a browser keeps a `__Host-` cookie only if it
/// is Secure, for `Path=/` and this host alone (no Domain), so neither a page over plain
/// http nor a sibling subdomain can plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-pfy_session";

/// The session cookie's name for an instance served over https (`secure`) or not.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}
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

/// End the session the request carries, if any, here and in `cache`.
pub async fn end(
    pool: &PgPool,
    cache: &SessionCache,
    headers: &HeaderMap,
) -> Result<(), sqlx::Error> {
    if let Some(token) = read_cookie(headers, cache.cookie) {
        let hash = token_hash(&token);
        cache.forget(&hash);
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(&hash[..])
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Who the request's session belongs to; `None` for no, unknown or expired sessions.
/// Asks `cache` first, then PostgreSQL.
pub async fn current_user(
    pool: &PgPool,
    cache: &SessionCache,
    headers: &HeaderMap,
) -> Result<Option<SessionUser>, sqlx::Error> {
    let Some(token) = read_cookie(headers, cache.cookie) else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    if let Some(user) = cache.get(&hash) {
        return Ok(Some(user));
    }
    type Row = (
        i64,
        String,
        Option<String>,
        Option<bool>,
        chrono::DateTime<chrono::Utc>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.id, u.spotify_id, u.display_name, t.needs_relogin, s.expires_at
           FROM sessions s
           JOIN users u ON u.id = s.user_id
           LEFT JOIN spotify_tokens t ON t.user_id = u.id
          WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(&hash[..])
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(user_id, spotify_id, display_name, needs_relogin, expires_at)| {
            let user = SessionUser {
                user_id,
                spotify_id,
                display_name,
                // No token row at all means the connection is gone too.
                needs_relogin: needs_relogin.unwrap_or(true),
            };
            let left = (expires_at - chrono::Utc::now())
                .to_std()
                .unwrap_or_default();
            cache.keep(hash, &user, left);
            user
        },
    ))
}

/// What the database stores of a session token.
fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Sessions looked up in the last few seconds, by the SHA-256 of their token. Every page
/// asks who is signed in; this answers a repeat without a PostgreSQL round trip for up to
/// `ttl` (`SESSION_CACHE_SECS`), never past the session's own expiry. A sign-out forgets
/// the session here at once; another server process on the same database may still honour
/// that (already deleted) cookie for at most `ttl`. Unknown tokens are not remembered.
#[derive(Clone)]
pub struct SessionCache {
    ttl: Duration,
    /// The cookie sessions are read from ([`session_cookie`]).
    pub cookie: &'static str,
    entries: Arc<Mutex<Sessions>>,
}

/// Token hash -> the session's user and until when the entry may be used.
type Sessions = HashMap<[u8; 32], (SessionUser, Instant)>;

/// Sessions kept at most; past that, expired ones go, and if that is not enough, all.
const SESSION_CACHE_ENTRIES: usize = 10_000;

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        SessionCache {
            ttl,
            cookie: SESSION_COOKIE,
            entries: Arc::default(),
        }
    }

    /// Read sessions from the https cookie name (`secure`) or the plain one.
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie = session_cookie(secure);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // A panic while holding the lock cannot leave the map half-written (each operation
        // is one insert or remove), so a poisoned lock is safe to keep using.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, hash: &[u8; 32]) -> Option<SessionUser> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(hash) {
            Some((user, until)) if *until > Instant::now() => Some(user.clone()),
            Some(_) => {
                entries.remove(hash);
                None
            }
            None => None,
        }
    }

    fn keep(&self, hash: [u8; 32], user: &SessionUser, session_left: Duration) {
        let keep_for = self.ttl.min(session_left);
        if keep_for.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= SESSION_CACHE_ENTRIES {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= SESSION_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash, (user.clone(), now + keep_for));
    }

    fn forget(&self, hash: &[u8; 32]) {
        self.lock().remove(hash);
    }

    /// Forget every session of a user whose state changed (Spotify asked them to sign in
    /// again), so their pages say so at once.
    pub fn forget_user(&self, user_id: i64) {
        self.lock().retain(|_, (user, _)| user.user_id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(user_id: i64) -> SessionUser {
        SessionUser {
            user_id,
            spotify_id: format!("u{user_id}"),
            display_name: None,
            needs_relogin: false,
        }
    }

    #[test]
    fn sessions_are_kept_briefly_never_past_their_expiry_and_forgotten_on_demand() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let (a, b, c) = (token_hash("a"), token_hash("b"), token_hash("c"));
        cache.keep(a, &user(1), Duration::from_secs(3600));
        cache.keep(b, &user(1), Duration::from_secs(3600));
        cache.keep(c, &user(2), Duration::ZERO); // expires now: not kept
        assert_eq!(cache.get(&a), Some(user(1)));
        assert_eq!(cache.get(&c), None);
        cache.forget(&a);
        assert_eq!(cache.get(&a), None);
        assert_eq!(cache.get(&b), Some(user(1)));
        cache.forget_user(1);
        assert_eq!(cache.get(&b), None);

        let off = SessionCache::new(Duration::ZERO);
        off.keep(a, &user(1), Duration::from_secs(3600));
        assert_eq!(off.get(&a), None, "zero seconds: no cache");
        let brief = SessionCache::new(Duration::from_millis(1));
        brief.keep(a, &user(1), Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(brief.get(&a), None, "gone after its time");
    }
}
