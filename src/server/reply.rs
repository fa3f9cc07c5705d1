//! Answers for a form a script may post too: a plain form post gets text (or a redirect),
//! a script that asks for JSON (`Accept: application/json`, as `public/enhance.js` does)
//! gets `{"error": "…"}` with the same status. Used by the import upload and the time zone.

use super::auth::session::{self, SessionUser};
use super::state::AppState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// How the client wants to be answered.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub json: bool,
}

impl Reply {
    /// JSON when the request's `Accept` asks for it, else text.
    pub fn to(headers: &HeaderMap) -> Self {
        Reply {
            json: headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/json")),
        }
    }

    pub fn error(&self, status: StatusCode, message: impl Into<String>) -> Response {
        let message = message.into();
        if self.json {
            (status, Json(serde_json::json!({ "error": message }))).into_response()
        } else {
            super::security::plain_text(status, message)
        }
    }

    /// The signed-in person, or the answer to give: 401 saying `sign_in_to`, or 503 when
    /// the session cannot be read.
    pub async fn user(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        sign_in_to: &str,
    ) -> Result<SessionUser, Response> {
        match session::current_user(&state.stores.main, &state.sessions, headers).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(self.error(StatusCode::UNAUTHORIZED, sign_in_to)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the session");
                Err(self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Personalify cannot reach its database right now. Try again in a minute.",
                ))
            }
        }
    }
}
