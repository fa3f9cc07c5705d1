//! The Accounts service: `GET /authorize` (auto-consent as a demo user) and `POST
//! /api/token` (authorization code with PKCE, refresh token), with Spotify's validation
//! order and error shapes.

use super::tastes::{user_index, LISTENERS};
use super::tokens::{CodeGrant, GrantError, Issued};
use super::{Params, Shared};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Spotify's scopes; anything else is `error=invalid_scope`.
const KNOWN_SCOPES: [&str; 19] = [
    "ugc-image-upload",
    "user-read-playback-state",
    "user-modify-playback-state",
    "user-read-currently-playing",
    "app-remote-control",
    "streaming",
    "playlist-read-private",
    "playlist-read-collaborative",
    "playlist-modify-private",
    "playlist-modify-public",
    "user-follow-modify",
    "user-follow-read",
    "user-read-playback-position",
    "user-top-read",
    "user-read-recently-played",
    "user-library-modify",
    "user-library-read",
    "user-read-email",
    "user-read-private",
];

/// An S256 challenge is a base64url SHA-256 digest: 43 characters, no padding.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Errors Spotify shows on its own page, because the redirect target cannot be trusted.
fn page_error(message: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// 303 to `redirect_uri` with `pairs` (and `state`, when there is one) added to its query.
fn back_to(mut target: url::Url, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    {
        let mut query = target.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    Redirect::to(target.as_str()).into_response()
}

pub(crate) async fn authorize(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::query(query.as_deref());
    let config = &sim.config;
    if params.get("client_id") != Some(config.client_id.as_str()) {
        return page_error("INVALID_CLIENT: Invalid client");
    }
    let Some(redirect_uri) = params
        .get("redirect_uri")
        .filter(|r| config.redirect_uris.iter().any(|allowed| allowed == r))
    else {
        return page_error("INVALID_CLIENT: Invalid redirect URI");
    };
    // Allow-listed but not a URL: a misconfiguration, and nowhere to send the user back to.
    let Ok(target) = url::Url::parse(redirect_uri) else {
        return page_error("INVALID_CLIENT: Invalid redirect URI");
    };
    let state = params.get("state").filter(|s| !s.is_empty());
    let fail = |error: &str| back_to(target.clone(), &[("error", error)], state);

    if params.get("response_type") != Some("code") {
        return fail("unsupported_response_type");
    }
    // Stricter than Spotify, which makes state optional: a login without state cannot be
    // protected against CSRF, so the simulator refuses it and a client bug shows in tests.
    if state.is_none() {
        return fail("invalid_request");
    }
    let challenge = params
        .get("code_challenge")
        .filter(|c| is_s256_challenge(c));
    let Some(challenge) = challenge.filter(|_| params.get("code_challenge_method") == Some("S256"))
    else {
        return fail("invalid_request");
    };
    let scope: Vec<&str> = params
        .get("scope")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if scope.iter().any(|s| !KNOWN_SCOPES.contains(s)) {
        return fail("invalid_scope");
    }
    let user = match params.get("demo_user") {
        None => 0,
        Some(id) => match user_index(id) {
            Some(user) => user,
            None => return fail("invalid_request"),
        },
    };
    if sim.deny_next_consent.swap(false, Ordering::Relaxed) {
        tracing::debug!(user = LISTENERS[user].id, "simulated consent denied");
        return fail("access_denied");
    }

    let code = sim.tokens.issue_code(CodeGrant {
        client_id: config.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        code_challenge: challenge.to_string(),
        user,
        scope: scope.join(" "),
    });
    tracing::debug!(user = LISTENERS[user].id, "simulated consent given");
    back_to(target, &[("code", &code)], state)
}

#[derive(Debug, thiserror::Error)]
enum TokenError {
    #[error("Invalid client")]
    InvalidClient,
    #[error("grant_type parameter is missing")]
    MissingGrantType,
    #[error("grant_type must be authorization_code or refresh_token")]
    UnsupportedGrantType,
    #[error("Content-Type must be application/x-www-form-urlencoded")]
    NotAForm,
    #[error("refresh_token must be supplied")]
    MissingRefreshToken,
    #[error(transparent)]
    Grant(#[from] GrantError),
}

impl TokenError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::MissingGrantType | Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::NotAForm | Self::MissingRefreshToken => "invalid_request",
            Self::Grant(_) => "invalid_grant",
        }
    }
}

#[derive(Serialize)]
struct OAuthErrorBody {
    error: &'static str,
    error_description: String,
}

#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    token_type: &'static str,
    scope: String,
    expires_in: u64,
    refresh_token: String,
}

/// Token responses must not be cached (RFC 6749 5.1), errors included.
fn no_store(status: StatusCode, body: impl IntoResponse) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        body,
    )
        .into_response()
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.code(),
            error_description: self.to_string(),
        };
        no_store(StatusCode::BAD_REQUEST, Json(body))
    }
}

/// The client, from HTTP Basic (id and secret) or the form's `client_id` (public PKCE
/// client). With both, they must agree.
fn authenticate_client(
    sim: &Shared,
    headers: &HeaderMap,
    form_client_id: Option<&str>,
) -> Result<(), TokenError> {
    let config = &sim.config;
    let Some(header) = headers.get(AUTHORIZATION) else {
        return match form_client_id {
            Some(id) if id == config.client_id => Ok(()),
            _ => Err(TokenError::InvalidClient),
        };
    };
    let credentials = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .ok_or(TokenError::InvalidClient)?;
    let (id, secret) = credentials
        .split_once(':')
        .ok_or(TokenError::InvalidClient)?;
    let secret_ok = config
        .client_secret
        .as_deref()
        .is_some_and(|expected| expected == secret);
    if id == config.client_id && secret_ok && form_client_id.is_none_or(|f| f == id) {
        Ok(())
    } else {
        Err(TokenError::InvalidClient)
    }
}

pub(crate) async fn token(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match exchange(&sim, &headers, &body) {
        Ok(issued) => {
            let body = TokenBody {
                access_token: issued.access_token,
                token_type: "Bearer",
                scope: issued.scope,
                expires_in: sim.config.access_token_ttl.as_secs(),
                refresh_token: issued.refresh_token,
            };
            no_store(StatusCode::OK, Json(body))
        }
        Err(err) => {
            tracing::debug!(error = %err, "simulated token request refused");
            err.into_response()
        }
    }
}

fn exchange(sim: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Issued, TokenError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(TokenError::NotAForm);
    }
    let form = Params::parse(body);
    let grant_type = form.get("grant_type").ok_or(TokenError::MissingGrantType)?;
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(TokenError::UnsupportedGrantType);
    }
    authenticate_client(sim, headers, form.get("client_id"))?;
    let client_id = sim.config.client_id.as_str();
    if grant_type == "authorization_code" {
        let code = form.get("code").unwrap_or("");
        Ok(sim.tokens.redeem_code(
            code,
            client_id,
            form.get("redirect_uri"),
            form.get("code_verifier"),
        )?)
    } else {
        let refresh_token = form
            .get("refresh_token")
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::MissingRefreshToken)?;
        Ok(sim.tokens.refresh(refresh_token, client_id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenges_are_43_url_safe_chars() {
        // RFC 7636, appendix B.
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+/"
        ));
    }
}
