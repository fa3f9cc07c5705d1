//! The Web API and Accounts client. Every request has a timeout; 5xx answers, timeouts and
//! connection failures are retried a bounded number of times with exponential backoff;
//! 429 waits out `Retry-After` when it is short enough, and otherwise becomes a clear
//! "rate limited, try after …" error instead of a stuck request.

use super::models::{Artist, ErrorBody, Me, Paging, RecentlyPlayed, Track};
use crate::domain::TimeRange;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use rand::Rng;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What the app asks Spotify for (read-only).
pub const SCOPES: [&str; 2] = ["user-top-read", "user-read-recently-played"];
/// Spotify's page size limit for top items.
const PAGE: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpotifyError {
    #[error("Spotify is rate limiting us; try again after {} s", .retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// The access token is invalid or expired: refresh it and try once more.
    #[error("Spotify rejected the access token: {0}")]
    Unauthorized(String),
    /// The refresh token or authorization code is no longer valid: sign in again.
    #[error("Spotify refused the grant: {0}")]
    InvalidGrant(String),
    #[error("Spotify refused access: {0}")]
    Forbidden(String),
    #[error("not found on Spotify")]
    NotFound,
    #[error("Spotify rejected the request ({status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("Spotify is having trouble ({status}) and did not recover after {attempts} tries")]
    Upstream { status: u16, attempts: u32 },
    #[error("Spotify did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot reach Spotify: {0}")]
    Connect(String),
    #[error("unexpected answer from Spotify: {0}")]
    Decode(String),
}

impl std::error::Error for TransportError {}

/// The transport's failure, as seen by the oauth2 crate.
#[derive(Debug)]
pub struct TransportError(SpotifyError);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where Spotify lives: the real services, or the simulator.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Root of the Accounts service (`/authorize`, `/api/token`), as the browser reaches it.
    pub accounts_public: url::Url,
    /// Root of the Accounts service as this server reaches it (token requests).
    pub accounts_internal: url::Url,
    /// Root of the Web API (`/v1/...`).
    pub api: url::Url,
}

/// Tokens from the token endpoint.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// Spotify may omit it on refresh: keep the old one then.
    pub refresh_token: Option<SecretString>,
    pub expires_in: Duration,
    pub scope: String,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A sign-in to start: send the browser to `url`; keep `state` and `pkce_verifier` server-side.
pub struct AuthorizeRequest {
    pub url: url::Url,
    pub state: String,
    pub pkce_verifier: String,
}

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

#[derive(Clone)]
pub struct SpotifyClient {
    http: reqwest::Client,
    oauth: OAuthClient,
    api: url::Url,
    timeout: Duration,
    max_retry_after: Duration,
    max_attempts: u32,
}

fn join(base: &url::Url, path: &str) -> String {
    format!("{}{path}", base.as_str().trim_end_matches('/'))
}

impl SpotifyClient {
    pub fn new(
        endpoints: &Endpoints,
        client_id: &str,
        client_secret: &SecretString,
        redirect_uri: &url::Url,
        timeout: Duration,
        max_retry_after: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            // Never follow redirects with a bearer token attached.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("personalify/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings builds");
        let url = |base: &url::Url, path: &str| join(base, path);
        let oauth = BasicClient::new(ClientId::new(client_id.to_string()))
            .set_client_secret(ClientSecret::new(client_secret.expose_secret().to_string()))
            .set_auth_uri(
                AuthUrl::new(url(&endpoints.accounts_public, "/authorize"))
                    .expect("configured URL plus a path is a URL"),
            )
            .set_token_uri(
                TokenUrl::new(url(&endpoints.accounts_internal, "/api/token"))
                    .expect("configured URL plus a path is a URL"),
            )
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
        SpotifyClient {
            http,
            oauth,
            api: endpoints.api.clone(),
            timeout,
            max_retry_after,
            max_attempts: 3,
        }
    }

    /// Fewer tries (tests of the failure paths).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Start a sign-in: a fresh `state` and PKCE (S256) pair. `extra` adds query parameters
    /// (the simulator's `demo_user`).
    pub fn authorize(&self, extra: &[(&str, &str)]) -> AuthorizeRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.oauth.authorize_url(CsrfToken::new_random);
        for scope in SCOPES {
            request = request.add_scope(Scope::new(scope.to_string()));
        }
        let (mut url, state) = request.set_pkce_challenge(challenge).url();
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        AuthorizeRequest {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<TokenSet, SpotifyError> {
        let request = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
        token_result(request.request_async(&TokenTransport(self)).await)
    }

    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, SpotifyError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_string());
        let request = self.oauth.exchange_refresh_token(&token);
        token_result(request.request_async(&TokenTransport(self)).await)
    }

    /// The oauth2 crate's transport: our HTTP client with the retry policy.
    async fn send_token_request(
        &self,
        req: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, TransportError> {
        let (parts, body) = req.into_parts();
        let response = self
            .send(|| {
                self.http
                    .request(parts.method.clone(), parts.uri.to_string())
                    .headers(parts.headers.clone())
                    .body(body.clone())
            })
            .await
            .map_err(TransportError)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TransportError(SpotifyError::Decode(e.without_url().to_string())))?;
        let mut out = oauth2::HttpResponse::new(bytes.to_vec());
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// Send with the retry policy. Returns any response that is not a 5xx or 429 (those are
    /// retried, then turned into errors), for the caller to interpret.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SpotifyError> {
        let mut attempt = 0u32;
        let mut rate_waits = 0u32;
        loop {
            attempt += 1;
            let outcome = build().send().await;
            crate::server::metrics::record_spotify_call(matches!(
                &outcome,
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS
            ));
            let retryable = match outcome {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let retry_after = retry_after(&response);
                    if retry_after > self.max_retry_after || rate_waits >= 3 {
                        return Err(SpotifyError::RateLimited { retry_after });
                    }
                    tracing::info!(
                        wait_s = retry_after.as_secs(),
                        "Spotify rate limit: waiting"
                    );
                    tokio::time::sleep(retry_after).await;
                    rate_waits += 1;
                    attempt -= 1; // waiting out a 429 is not a failed try
                    continue;
                }
                Ok(response) if response.status().is_server_error() => SpotifyError::Upstream {
                    status: response.status().as_u16(),
                    attempts: attempt,
                },
                Ok(response) => return Ok(response),
                Err(err) if err.is_timeout() => SpotifyError::Timeout(self.timeout),
                Err(err) => SpotifyError::Connect(err.without_url().to_string()),
            };
            if attempt >= self.max_attempts {
                return Err(retryable);
            }
            let backoff = Duration::from_millis(200 * 2u64.pow(attempt - 1))
                + Duration::from_millis(rand::rng().random_range(0..100));
            tracing::warn!(error = %retryable, attempt, backoff_ms = backoff.as_millis() as u64, "Spotify request failed; retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SpotifyError> {
        let url = join(&self.api, path);
        let response = self
            .send(|| {
                self.http
                    .request(Method::GET, &url)
                    .bearer_auth(token.expose_secret())
                    .query(query)
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<T>()
                .await
                .map_err(|e| SpotifyError::Decode(e.without_url().to_string()));
        }
        let message = response
            .json::<ErrorBody>()
            .await
            .ok()
            .and_then(|b| b.error.message)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        Err(match status {
            StatusCode::UNAUTHORIZED => SpotifyError::Unauthorized(message),
            StatusCode::FORBIDDEN => SpotifyError::Forbidden(message),
            StatusCode::NOT_FOUND => SpotifyError::NotFound,
            _ => SpotifyError::BadRequest {
                status: status.as_u16(),
                message,
            },
        })
    }

    pub async fn me(&self, token: &SecretString) -> Result<Me, SpotifyError> {
        self.get(token, "/v1/me", &[]).await
    }

    pub async fn artist(&self, token: &SecretString, id: &str) -> Result<Artist, SpotifyError> {
        // Ids are base62: anything else would change the path.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SpotifyError::BadRequest {
                status: 400,
                message: "invalid id".into(),
            });
        }
        self.get(token, &format!("/v1/artists/{id}"), &[]).await
    }

    pub async fn top_artists(
        &self,
        token: &SecretString,
        range: TimeRange,
        max: usize,
    ) -> Result<Vec<Artist>, SpotifyError> {
        self.top(token, "artists", range, max).await
    }

    pub async fn top_tracks(
        &self,
        token: &SecretString,
        range: TimeRange,
        max: usize,
    ) -> Result<Vec<Track>, SpotifyError> {
        self.top(token, "tracks", range, max).await
    }

    /// Page through `/me/top/{kind}` 50 at a time until `max` items or the end.
    async fn top<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        kind: &str,
        range: TimeRange,
        max: usize,
    ) -> Result<Vec<T>, SpotifyError> {
        let mut items = Vec::new();
        while items.len() < max {
            let limit = PAGE.min(max - items.len());
            let page: Paging<T> = self
                .get(
                    token,
                    &format!("/v1/me/top/{kind}"),
                    &[
                        ("time_range", range.as_str().to_string()),
                        ("limit", limit.to_string()),
                        ("offset", items.len().to_string()),
                    ],
                )
                .await?;
            let got = page.items.len();
            items.extend(page.items);
            if got == 0 || page.next.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// Recently played tracks, newest first; `after` is a Unix time in milliseconds.
    pub async fn recently_played(
        &self,
        token: &SecretString,
        limit: u8,
        after: Option<i64>,
    ) -> Result<RecentlyPlayed, SpotifyError> {
        let mut query = vec![("limit", limit.clamp(1, 50).to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.get(token, "/v1/me/player/recently-played", &query)
            .await
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
}

/// The oauth2 crate's HTTP transport: our client, with its retry policy. A named type
/// (not a closure) keeps the futures provably `Send` for axum handlers.
struct TokenTransport<'a>(&'a SpotifyClient);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenTransport<'_> {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, TransportError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.0.send_token_request(request))
    }
}

type OAuthResult = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<TransportError, oauth2::basic::BasicErrorResponse>,
>;

fn token_result(result: OAuthResult) -> Result<TokenSet, SpotifyError> {
    match result {
        Ok(token) => Ok(TokenSet {
            access_token: token.access_token().secret().clone().into(),
            refresh_token: token.refresh_token().map(|t| t.secret().clone().into()),
            expires_in: token.expires_in().unwrap_or(Duration::from_secs(3600)),
            scope: token
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }),
        Err(RequestTokenError::ServerResponse(err)) => {
            let description = err.error_description().cloned().unwrap_or_default();
            Err(match err.error() {
                BasicErrorResponseType::InvalidGrant => SpotifyError::InvalidGrant(description),
                other => SpotifyError::BadRequest {
                    status: 400,
                    message: format!("{}: {description}", other.as_ref()),
                },
            })
        }
        Err(RequestTokenError::Request(TransportError(err))) => Err(err),
        Err(RequestTokenError::Parse(_, _)) => Err(SpotifyError::Decode(
            "the token endpoint's answer did not parse".into(),
        )),
        Err(RequestTokenError::Other(message)) => Err(SpotifyError::Decode(message)),
    }
}
