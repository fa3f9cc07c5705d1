//! Spotify tokens per user: stored encrypted, refreshed shortly before they expire, one
//! refresh at a time per user (the row is locked `FOR UPDATE` while refreshing, which holds
//! across requests, tasks and server processes). `invalid_grant` marks the connection as
//! needing a new sign-in and touches nobody else.

use super::crypto::{CryptoError, Sealed, TokenCipher};
use crate::server::spotify::{SpotifyClient, SpotifyError, TokenSet};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use std::future::Future;
use std::time::Duration;

/// Refresh this long before the stated expiry, so a token never dies mid-sync.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(120);

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
           expires_at = EXCLUDED.expires_at, needs_relogin = false, updated_at = now()",
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

    // Slow path: lock the row, look again (another request may have refreshed while we
    // waited), refresh only if still needed.
    let mut tx = pool.begin().await?;
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} FOR UPDATE"))
        .bind(user_id)
        .bind(margin)
        .fetch_optional(&mut *tx)
        .await?;
    let (key_id, access, refresh, needs_relogin, fresh) = row.ok_or(TokenError::NotConnected)?;
    if needs_relogin {
        return Err(TokenError::NeedsRelogin);
    }
    // Both tokens are opened here (microseconds): an unreadable one is marked in this
    // transaction, on the row it holds locked.
    let opened = open(cipher, &key_id, access, &owner)
        .and_then(|access| Ok((access, open(cipher, &key_id, refresh, &owner)?)));
    let (access_token, refresh_token) = match opened {
        Ok(tokens) => tokens,
        Err(err) => {
            let err = mark_unreadable(&mut *tx, user_id, err).await;
            if let Err(e) = tx.commit().await {
                tracing::warn!(user_id, error = %e, "cannot mark the token as needing a new sign-in");
            }
            return Err(err);
        }
    };
    let was_rejected = rejected.is_some_and(|r| r.expose_secret() == access_token.expose_secret());
    if fresh && !was_rejected {
        return Ok(access_token);
    }
    match spotify.refresh(&refresh_token).await {
        Ok(tokens) => {
            store(&mut tx, cipher, user_id, &tokens, Some(&refresh_token)).await?;
            tx.commit().await?;
            tracing::info!(user_id, "Spotify access token refreshed");
            Ok(tokens.access_token)
        }
        Err(SpotifyError::InvalidGrant(reason)) => {
            sqlx::query("UPDATE spotify_tokens SET needs_relogin = true, updated_at = now() WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::warn!(
                user_id,
                reason,
                "Spotify refused the refresh token; the user must sign in again"
            );
            Err(TokenError::NeedsRelogin)
        }
        Err(other) => Err(other.into()),
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
