//! `#[server]` functions and the DTOs they exchange, one module per feature.
//!
//! A server function is thin: it reads the request's context, calls into `crate::server`,
//! and maps failures to an [`ApiError`] a person can read.

pub mod artist;
pub mod distributed;
pub mod history;
pub mod imports;
pub mod listening;
pub mod site;
pub mod top;
pub mod trending;
pub mod viewer;

use serde::{Deserialize, Serialize};

/// The error every server function returns to the UI: a message fit to show a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unavailable(String),
    #[error("Sign in to see this.")]
    NotSignedIn,
    #[error("Spotify needs you to sign in again.")]
    NeedsRelogin,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Too soon, or too much: the message says when to try again (HTTP 429).
    #[error("{0}")]
    TooSoon(String),
    #[error("the request could not be sent: {0}")]
    Transport(String),
}

impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        // On the server, these mean the caller sent input we cannot read: a 400 with a plain
        // message (the parser's own words go to the log, not to the caller).
        #[cfg(feature = "ssr")]
        if matches!(
            value,
            leptos::server_fn::error::ServerFnErrorErr::Args(_)
                | leptos::server_fn::error::ServerFnErrorErr::MissingArg(_)
                | leptos::server_fn::error::ServerFnErrorErr::Request(_)
        ) {
            tracing::debug!(error = %value, "server function input rejected");
            ctx::set_status(axum::http::StatusCode::BAD_REQUEST);
            return ApiError::BadRequest(
                "This request's data is missing or malformed; reload the page and try again."
                    .into(),
            );
        }
        ApiError::Transport(value.to_string())
    }
}

/// What every server function does first: reach the app's state and the session's user.
#[cfg(feature = "ssr")]
pub(crate) mod ctx {
    use super::ApiError;
    use crate::server::auth::session::{self, SessionUser};
    use crate::server::page_cache::{MainUnavailable, ResolvedSession, ShownSync};
    use crate::server::state::AppState;

    pub fn state() -> Result<AppState, ApiError> {
        leptos::prelude::use_context::<AppState>()
            .ok_or_else(|| ApiError::Unavailable("the server is not ready".into()))
    }

    /// A 429 with `Retry-After`, and the message a person reads.
    pub fn too_soon(message: String, retry_after: std::time::Duration) -> ApiError {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::TOO_MANY_REQUESTS);
            response.insert_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        ApiError::TooSoon(message)
    }

    /// Set the HTTP status of the server function's response.
    pub fn set_status(code: axum::http::StatusCode) {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(code);
        }
    }

    /// The database failed: the driver's words to the log (inside the request's span, so
    /// with its id), a plain message quoting that id to the person.
    pub fn store_down(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "database unavailable");
        crate::server::metrics::record_store_error("main");
        set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let reference = request_extension::<crate::server::access::RequestId>()
            .map(|id| format!(" (reference {})", id.0))
            .unwrap_or_default();
        ApiError::Unavailable(format!(
            "Personalify cannot reach its database right now. Try again in a minute.{reference}"
        ))
    }

    /// One request's session lookup, shared by the server functions that request runs (a
    /// page runs several): provided fresh for every request by the router. A failed
    /// lookup is kept too, so the others say so at once rather than each waiting for the
    /// database in turn (a page of three server functions took 3 × 3 s with main down).
    #[derive(Clone, Default)]
    pub struct RequestSession(
        std::sync::Arc<tokio::sync::OnceCell<Result<Option<SessionUser>, ApiError>>>,
    );

    /// The session's user, if signed in. The only way server functions learn who asks.
    /// Looked up once per request.
    pub async fn session_user(state: &AppState) -> Result<Option<SessionUser>, ApiError> {
        let lookup = || async {
            let headers: axum::http::HeaderMap = leptos_axum::extract()
                .await
                .map_err(|_| ApiError::Unavailable("the request could not be read".into()))?;
            session::current_user(&state.stores.main, &state.sessions, &headers)
                .await
                .map_err(store_down)
        };
        // The database failed earlier in this request (the page cache's session lookup or
        // its own query): every server function of the page says so at once, instead of
        // each waiting for the database again.
        if request_extension::<MainUnavailable>().is_some() {
            return Err(store_down("the database failed earlier in this request"));
        }
        // Resolved already by the page cache's lookup for this request.
        if let Some(ResolvedSession(user)) = request_extension::<ResolvedSession>() {
            return Ok(user);
        }
        match leptos::prelude::use_context::<RequestSession>() {
            Some(memo) => {
                let mut first = false;
                let found = memo
                    .0
                    .get_or_init(|| {
                        first = true;
                        lookup()
                    })
                    .await
                    .clone();
                if found.is_err() && !first {
                    // The status is the response's; the message is the first one's.
                    set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                }
                found
            }
            None => lookup().await,
        }
    }

    fn request_extension<T: Clone + Send + Sync + 'static>() -> Option<T> {
        leptos::prelude::use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<T>().cloned())
    }

    /// Tell the page cache which sync the page shows, when that is final (see
    /// `server::page_cache`): only then may the rendered page be kept for that sync.
    pub fn shown_sync(sync_id: i64) {
        if let Some(shown) = request_extension::<ShownSync>() {
            shown.report(sync_id);
        }
    }

    /// The session's user, or 401 "sign in".
    pub async fn require_user(state: &AppState) -> Result<SessionUser, ApiError> {
        session_user(state).await?.ok_or_else(|| {
            set_status(axum::http::StatusCode::UNAUTHORIZED);
            ApiError::NotSignedIn
        })
    }
}
