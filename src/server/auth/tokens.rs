//! Spotify tokens per user: stored encrypted, refreshed shortly before they expire, one
//! refresh at a time per user across requests, tasks and server processes. The refresher
//! takes a lease on the row (`refreshing_until`, one short UPDATE), calls Spotify holding
//! no connection and no lock, then stores the new tokens and frees the lease; the others
//! wait by looking at the row now and then. A refresher that dies frees the row when its
//! lease ends. `invalid_grant` marks the connection as needing a new sign-in and touches
//! nobody else.

use super::crypto::{CryptoError, Sealed, TokenCipher};
use crate::server::spotify::{SpotifyClient, SpotifyError, TokenSet};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use std::future::Future;
use std::time::{Duration, Instant};

/// Refresh this long before the stated expiry, so a token never dies mid-sync.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// A call to Spotify's token endpoint (its own retries included) is cut off here...
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(45);
/// ...well within the lease it runs under, so two refreshes of one user never overlap.
const REFRESH_LEASE: Duration = Duration::from_secs(60);
/// How often a request waiting for another's refresh looks at the row again.
const REFRESH_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("Spotify needs you to sign in again")]
    NeedsRelogin,
    #[error("this account has no Spotify connection")]
    NotConnected,
    #[error(transparent)]
    Spotify(#[from] SpotifyError),
    #[error("token store: {0}")]
    Store(#[from] sqlx::Error),
    /// The stored token cannot be decrypted with any configured key (the key changed, or
    /// demo mode's start-up key is gone); the connection is marked as needing a new sign-in.
    #[error("the stored Spotify token cannot be read with the configured keys")]
    Unreadable,
}

/// Save a user's tokens (after sign-in or refresh), sealed under the current key.
/// A refresh that returned no new refresh token keeps `previous_refresh`.
pub async fn store(
    conn: &mut sqlx::PgConnection,
    cipher: &TokenCipher,
    user_id: i64,
    tokens: &TokenSet,
    previous_refresh: Option<&SecretString>,
) -> Result<(), TokenError> {
    let owner = owner(user_id);
    let refresh = tokens
        .refresh_token
        .as_ref()
        .or(previous_refresh)
        .ok_or(TokenError::NotConnected)?;
    let access = cipher.seal(tokens.access_token.expose_secret(), &owner);
    let refresh = cipher.seal(refresh.expose_secret(), &owner);
    sqlx::query(
        "INSERT INTO spotify_tokens (user_id, key_id, access_token, refresh_token, scope, expires_at, needs_relogin, updated_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), false, now())
         ON CONFLICT (user_id) DO UPDATE SET
           key_id = EXCLUDED.key_id, access_token = EXCLUDED.access_token,
           refresh_token = EXCLUDED.refresh_token, scope = EXCLUDED.scope,
           expires_at = EXCLUDED.expires_at, needs_relogin = false, updated_at = now(),
           refreshing_until = NULL",
    )
    .bind(user_id)
    .bind(&access.key_id)
    .bind(&access.bytes)
    .bind(&refresh.bytes)
    .bind(&tokens.scope)
    .bind(tokens.expires_in.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// Associated data binding a ciphertext to its row's user.
fn owner(user_id: i64) -> String {
    format!("user:{user_id}")
}

type Row = (String, Vec<u8>, Vec<u8>, bool, bool);

/// A valid access token for `user_id`, refreshing it first if it is (nearly) expired.
/// `rejected` is a token Spotify just refused although our clock says it is valid: refresh
/// unless another request already replaced it.
pub async fn access_token(
    pool: &PgPool,
    cipher: &TokenCipher,
    spotify: &SpotifyClient,
    user_id: i64,
    rejected: Option<&SecretString>,
) -> Result<SecretString, TokenError> {
    const SELECT: &str = "SELECT key_id, access_token, refresh_token, needs_relogin,
                                 expires_at > now() + make_interval(secs => $2) AS fresh
                            FROM spotify_tokens WHERE user_id = $1";
    let margin = REFRESH_MARGIN.as_secs_f64();
    let owner = owner(user_id);

    if rejected.is_none() {
        // Fast path without a lock.
        let row: Option<Row> = sqlx::query_as(SELECT)
            .bind(user_id)
            .bind(margin)
            .fetch_optional(pool)
            .await?;
        let (key_id, access, _, needs_relogin, fresh) = row.ok_or(TokenError::NotConnected)?;
        if needs_relogin {
            return Err(TokenError::NeedsRelogin);
        }
        if fresh {
            return match open(cipher, &key_id, access, &owner) {
                Ok(token) => Ok(token),
                Err(err) => Err(mark_unreadable(pool, user_id, err).await),
            };
        }
    }

    // Slow path: take the refresh lease, or wait for whoever holds it.
    let waited = Instant::now();
    loop {
        match take_lease(pool, user_id).await? {
            Some(row) => {
                return refresh_holding_lease(pool, cipher, spotify, user_id, rejected, row).await
            }
            None => {
                // Someone else refreshes (or the row is gone, or needs a new sign-in).
                let row: Option<Row> = sqlx::query_as(SELECT)
                    .bind(user_id)
                    .bind(margin)
                    .fetch_optional(pool)
                    .await?;
                let (key_id, access, _, needs_relogin, fresh) =
                    row.ok_or(TokenError::NotConnected)?;
                if needs_relogin {
                    return Err(TokenError::NeedsRelogin);
                }
                if fresh {
                    let token = match open(cipher, &key_id, access, &owner) {
                        Ok(token) => token,
                        Err(err) => return Err(mark_unreadable(pool, user_id, err).await),
                    };
                    if rejected.is_none_or(|r| r.expose_secret() != token.expose_secret()) {
                        return Ok(token);
                    }
                }
                if waited.elapsed() > REFRESH_LEASE + REFRESH_POLL * 5 {
                    return Err(SpotifyError::Timeout(REFRESH_LEASE).into());
                }
                tokio::time::sleep(REFRESH_POLL).await;
            }
        }
    }
}

/// The row, if this caller now holds its refresh lease (nobody held it, or their lease
/// ended); `None` if someone else holds it, or there is nothing to refresh.
async fn take_lease(pool: &PgPool, user_id: i64) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE spotify_tokens SET refreshing_until = now() + make_interval(secs => $3)
          WHERE user_id = $1 AND NOT needs_relogin
            AND (refreshing_until IS NULL OR refreshing_until < now())
         RETURNING key_id, access_token, refresh_token, needs_relogin,
                   expires_at > now() + make_interval(secs => $2) AS fresh",
    )
    .bind(user_id)
    .bind(REFRESH_MARGIN.as_secs_f64())
    .bind(REFRESH_LEASE.as_secs_f64())
    .fetch_optional(pool)
    .await
}

/// Free the lease without changing the tokens.
async fn release_lease(pool: &PgPool, user_id: i64) {
    if let Err(e) =
        sqlx::query("UPDATE spotify_tokens SET refreshing_until = NULL WHERE user_id = $1")
            .bind(user_id)
            .execute(pool)
            .await
    {
        // The lease ends by itself; waiters go on then.
        tracing::warn!(user_id, error = %e, "cannot free the token refresh lease");
    }
}

/// Holding the lease: refresh if the token still needs it, store the result, free the
/// lease on every path.
async fn refresh_holding_lease(
    pool: &PgPool,
    cipher: &TokenCipher,
    spotify: &SpotifyClient,
    user_id: i64,
    rejected: Option<&SecretString>,
    (key_id, access, refresh, _, fresh): Row,
) -> Result<SecretString, TokenError> {
    let owner = owner(user_id);
    let opened = open(cipher, &key_id, access, &owner)
        .and_then(|access| Ok((access, open(cipher, &key_id, refresh, &owner)?)));
    let (access_token, refresh_token) = match opened {
        Ok(tokens) => tokens,
        Err(err) => {
            let err = mark_unreadable(pool, user_id, err).await;
            release_lease(pool, user_id).await;
            return Err(err);
        }
    };
    let was_rejected = rejected.is_some_and(|r| r.expose_secret() == access_token.expose_secret());
    if fresh && !was_rejected {
        // Another request refreshed while this one waited for the lease.
        release_lease(pool, user_id).await;
        return Ok(access_token);
    }
    let refreshed = tokio::time::timeout(REFRESH_DEADLINE, spotify.refresh(&refresh_token))
        .await
        .unwrap_or(Err(SpotifyError::Timeout(REFRESH_DEADLINE)));
    match refreshed {
        Ok(tokens) => {
            let stored = async {
                let mut conn = pool.acquire().await?;
                store(&mut conn, cipher, user_id, &tokens, Some(&refresh_token)).await
            }
            .await;
            if let Err(err) = stored {
                release_lease(pool, user_id).await;
                return Err(err);
            }
            tracing::info!(user_id, "Spotify access token refreshed");
            Ok(tokens.access_token)
        }
        Err(SpotifyError::InvalidGrant(reason)) => {
            sqlx::query(
                "UPDATE spotify_tokens SET needs_relogin = true, refreshing_until = NULL, updated_at = now()
                  WHERE user_id = $1",
            )
            .bind(user_id)
            .execute(pool)
            .await?;
            tracing::warn!(
                user_id,
                reason,
                "Spotify refused the refresh token; the user must sign in again"
            );
            Err(TokenError::NeedsRelogin)
        }
        Err(other) => {
            release_lease(pool, user_id).await;
            Err(other.into())
        }
    }
}

fn open(
    cipher: &TokenCipher,
    key_id: &str,
    bytes: Vec<u8>,
    owner: &str,
) -> Result<SecretString, CryptoError> {
    let sealed = Sealed {
        key_id: key_id.to_string(),
        bytes,
    };
    cipher.open(&sealed, owner).map(SecretString::from)
}

/// A stored token no configured key opens: mark the connection as needing a new sign-in
/// (so every page says so), log why without the token, and report it.
async fn mark_unreadable<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    user_id: i64,
    err: CryptoError,
) -> TokenError {
    tracing::warn!(
        user_id,
        error = %err,
        "stored Spotify token cannot be decrypted (TOKEN_ENCRYPTION_KEYS changed?); the user must sign in again"
    );
    if let Err(e) = sqlx::query(
        "UPDATE spotify_tokens SET needs_relogin = true, updated_at = now() WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(conn)
    .await
    {
        tracing::warn!(user_id, error = %e, "cannot mark the token as needing a new sign-in");
    }
    TokenError::Unreadable
}

/// Call Spotify as `user_id`. If Spotify says the token is no longer valid although our
/// clock disagrees (revoked, or expired early), refresh once and try again.
pub async fn with_token<T, F, Fut>(
    pool: &PgPool,
    cipher: &TokenCipher,
    spotify: &SpotifyClient,
    user_id: i64,
    call: F,
) -> Result<T, TokenError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, SpotifyError>>,
{
    let token = access_token(pool, cipher, spotify, user_id, None).await?;
    match call(token.clone()).await {
        Err(SpotifyError::Unauthorized(_)) => {
            let token = access_token(pool, cipher, spotify, user_id, Some(&token)).await?;
            Ok(call(token).await?)
        }
        other => Ok(other?),
    }
}
