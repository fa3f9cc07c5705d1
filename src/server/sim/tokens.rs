//! Authorization codes, access tokens and refresh tokens, in memory. Every token is an
//! opaque random string (32 bytes, base64url: 43 characters); none is ever logged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Spotify's codes live about ten minutes.
const CODE_TTL: Duration = Duration::from_secs(600);

/// Refresh tokens kept per user; a long-running demo refreshes hourly and Spotify keeps the
/// old ones valid, so without a cap the map would only grow. The oldest go first.
const REFRESH_TOKENS_PER_USER: usize = 50;

/// Why `/api/token` refuses a grant; the text is Spotify's `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GrantError {
    #[error("Invalid authorization code")]
    InvalidCode,
    #[error("Invalid redirect URI")]
    RedirectMismatch,
    #[error("code_verifier was incorrect")]
    VerifierIncorrect,
    #[error("Invalid refresh token")]
    InvalidRefreshToken,
    #[error("Refresh token revoked")]
    RefreshTokenRevoked,
}

/// Why `/v1` refuses a bearer token; the text is Spotify's error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AccessError {
    #[error("Invalid access token")]
    Invalid,
    #[error("The access token expired")]
    Expired,
}

/// What `/authorize` bound a code to.
pub(crate) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub user: usize,
    pub scope: String,
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    pub user: usize,
    pub scope: String,
}

pub(crate) struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: String,
}

struct Code {
    grant: CodeGrant,
    expires_at: Instant,
}

struct Access {
    principal: Principal,
    expires_at: Instant,
    /// Set by `expire_all`: expired regardless of the clock.
    expired: bool,
}

struct Refresh {
    principal: Principal,
    client_id: String,
    revoked: bool,
    /// Issue order, to drop a user's oldest tokens past the cap.
    serial: u64,
}

#[derive(Default)]
struct Tokens {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    serial: u64,
}

pub(crate) struct TokenStore {
    access_ttl: Duration,
    tokens: Mutex<Tokens>,
}

/// 32 random bytes from the OS-seeded thread RNG, base64url without padding.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 S256: BASE64URL-NOPAD(SHA256(verifier)) == challenge. A verifier outside the
/// RFC's alphabet or length (43-128 of `A-Z a-z 0-9 - . _ ~`) never matches.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    // Constant-time comparison: cheap, and the habit is worth keeping even in a simulator.
    computed.len() == challenge.len()
        && computed
            .bytes()
            .zip(challenge.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl TokenStore {
    pub(crate) fn new(access_ttl: Duration) -> Self {
        TokenStore {
            access_ttl,
            tokens: Mutex::new(Tokens::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        // A panic while holding the lock leaves plain maps behind; they are still usable.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn issue_code(&self, grant: CodeGrant) -> String {
        let code = random_token();
        let now = Instant::now();
        let mut tokens = self.lock();
        tokens.codes.retain(|_, c| c.expires_at > now);
        tokens.codes.insert(
            code.clone(),
            Code {
                grant,
                expires_at: now + CODE_TTL,
            },
        );
        code
    }

    /// Exchange a code. The code is gone after the first attempt, whatever its outcome:
    /// codes are single use, and a failed attempt may be an attacker's.
    pub(crate) fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<Issued, GrantError> {
        let mut tokens = self.lock();
        let Some(stored) = tokens.codes.remove(code) else {
            return Err(GrantError::InvalidCode);
        };
        let grant = stored.grant;
        if stored.expires_at <= Instant::now() || grant.client_id != client_id {
            return Err(GrantError::InvalidCode);
        }
        if redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(GrantError::RedirectMismatch);
        }
        if !code_verifier.is_some_and(|v| pkce_matches(v, &grant.code_challenge)) {
            return Err(GrantError::VerifierIncorrect);
        }
        let principal = Principal {
            user: grant.user,
            scope: grant.scope,
        };
        Ok(self.issue(&mut tokens, principal, client_id))
    }

    /// Refresh: a new access token and a new refresh token; the old refresh token stays
    /// valid, as Spotify's do.
    pub(crate) fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
    ) -> Result<Issued, GrantError> {
        let mut tokens = self.lock();
        let principal = match tokens.refresh.get(refresh_token) {
            None => return Err(GrantError::InvalidRefreshToken),
            Some(r) if r.client_id != client_id => return Err(GrantError::InvalidRefreshToken),
            Some(r) if r.revoked => return Err(GrantError::RefreshTokenRevoked),
            Some(r) => r.principal.clone(),
        };
        Ok(self.issue(&mut tokens, principal, client_id))
    }

    fn issue(&self, tokens: &mut Tokens, principal: Principal, client_id: &str) -> Issued {
        let now = Instant::now();
        tokens
            .access
            .retain(|_, a| !a.expired && a.expires_at > now);
        let access_token = random_token();
        let refresh_token = random_token();
        tokens.serial += 1;
        let serial = tokens.serial;
        tokens.access.insert(
            access_token.clone(),
            Access {
                principal: principal.clone(),
                expires_at: now + self.access_ttl,
                expired: false,
            },
        );
        let user = principal.user;
        let scope = principal.scope.clone();
        tokens.refresh.insert(
            refresh_token.clone(),
            Refresh {
                principal,
                client_id: client_id.to_string(),
                revoked: false,
                serial,
            },
        );
        let mut mine: Vec<(u64, String)> = tokens
            .refresh
            .iter()
            .filter(|(_, r)| r.principal.user == user)
            .map(|(t, r)| (r.serial, t.clone()))
            .collect();
        if mine.len() > REFRESH_TOKENS_PER_USER {
            mine.sort_unstable();
            for (_, old) in &mine[..mine.len() - REFRESH_TOKENS_PER_USER] {
                tokens.refresh.remove(old);
            }
        }
        Issued {
            access_token,
            refresh_token,
            scope,
        }
    }

    pub(crate) fn check_access(&self, token: &str) -> Result<Principal, AccessError> {
        let tokens = self.lock();
        let access = tokens.access.get(token).ok_or(AccessError::Invalid)?;
        if access.expired || access.expires_at <= Instant::now() {
            return Err(AccessError::Expired);
        }
        Ok(access.principal.clone())
    }

    /// Every access token issued so far answers "expired" from now on. They are kept (not
    /// dropped) so the error says "expired" rather than "invalid", as Spotify's does.
    pub(crate) fn expire_all(&self) {
        for access in self.lock().access.values_mut() {
            access.expired = true;
        }
    }

    /// Whether any refresh token (valid or revoked) was issued to `user` since start-up.
    pub(crate) fn knows_user(&self, user: usize) -> bool {
        self.lock()
            .refresh
            .values()
            .any(|r| r.principal.user == user)
    }

    /// Tokens for `user` as if they had just consented (demo mode re-signs its listeners
    /// after a restart, when the simulator has forgotten what it issued).
    pub(crate) fn issue_direct(&self, user: usize, client_id: &str, scope: &str) -> Issued {
        let mut tokens = self.lock();
        let principal = Principal {
            user,
            scope: scope.to_string(),
        };
        self.issue(&mut tokens, principal, client_id)
    }

    /// Revoke the user's refresh tokens issued so far; a later login gets working ones.
    pub(crate) fn revoke_user(&self, user: usize) {
        for refresh in self.lock().refresh.values_mut() {
            if refresh.principal.user == user {
                refresh.revoked = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_accepts_the_rfc_7636_example() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
    }

    #[test]
    fn pkce_rejects_wrong_short_or_odd_verifiers() {
        assert!(!pkce_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
        assert!(!pkce_matches("short", CHALLENGE));
        assert!(!pkce_matches(&format!("{VERIFIER}!"), CHALLENGE));
        assert!(!pkce_matches(VERIFIER, &CHALLENGE[1..]));
    }

    fn grant() -> CodeGrant {
        CodeGrant {
            client_id: "client".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: CHALLENGE.into(),
            user: 1,
            scope: "user-top-read".into(),
        }
    }

    #[test]
    fn tokens_are_43_url_safe_chars_and_unique() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn codes_expire_after_ten_minutes() {
        let store = TokenStore::new(Duration::from_secs(3600));
        let code = store.issue_code(grant());
        tokio::time::advance(CODE_TTL).await;
        let redeemed =
            store.redeem_code(&code, "client", Some("http://127.0.0.1/cb"), Some(VERIFIER));
        assert_eq!(redeemed.err(), Some(GrantError::InvalidCode));
    }

    #[tokio::test(start_paused = true)]
    async fn access_tokens_expire_with_their_ttl_and_refresh_tokens_rotate() {
        let store = TokenStore::new(Duration::from_secs(60));
        let code = store.issue_code(grant());
        let issued = store
            .redeem_code(&code, "client", Some("http://127.0.0.1/cb"), Some(VERIFIER))
            .expect("a fresh code redeems");
        assert_eq!(
            store.check_access(&issued.access_token).map(|p| p.user),
            Ok(1)
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            store.check_access(&issued.access_token),
            Err(AccessError::Expired)
        );
        let renewed = store
            .refresh(&issued.refresh_token, "client")
            .expect("refresh works");
        assert_ne!(renewed.refresh_token, issued.refresh_token);
        assert!(store.refresh(&issued.refresh_token, "client").is_ok());
        assert_eq!(
            store.refresh(&issued.refresh_token, "other").err(),
            Some(GrantError::InvalidRefreshToken)
        );
    }

    #[test]
    fn refresh_tokens_per_user_are_capped_oldest_first() {
        let store = TokenStore::new(Duration::from_secs(60));
        let code = store.issue_code(grant());
        let first = store
            .redeem_code(&code, "client", Some("http://127.0.0.1/cb"), Some(VERIFIER))
            .expect("a fresh code redeems");
        let mut latest = first.refresh_token.clone();
        for _ in 0..REFRESH_TOKENS_PER_USER {
            latest = store
                .refresh(&latest, "client")
                .expect("refresh works")
                .refresh_token;
        }
        assert_eq!(
            store.refresh(&first.refresh_token, "client").err(),
            Some(GrantError::InvalidRefreshToken)
        );
        assert!(store.refresh(&latest, "client").is_ok());
    }
}
