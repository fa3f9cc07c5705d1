//! One access-log line per request, with a request id. The id comes from the request's
//! `X-Request-Id` when a proxy set a sane one, else a fresh one; it is returned in the
//! response's `X-Request-Id`, every log line written while handling the request carries it
//! (the `request` span), and a page that says something went wrong quotes it, so a person's
//! report finds the driver's error in the log. Paths are logged without their query string
//! (OAuth codes and state travel there). A request not answered within
//! `REQUEST_TIMEOUT_SECS` gets a 503 and its work is dropped.

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Request, Response};
use axum::middleware::Next;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id, in its extensions for whoever handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// An id a proxy sent: kept if it is short and plain, so it cannot forge log lines.
fn accepted(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    plain.then(|| text.to_string())
}

fn fresh() -> String {
    let mut id = super::auth::crypto::random_token();
    id.truncate(16);
    id
}

pub async fn log(
    axum::extract::State(state): axum::extract::State<super::state::AppState>,
    mut request: Request<Body>,
    next: Next,
) -> Response<Body> {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(accepted)
        .unwrap_or_else(fresh);
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // The route's pattern (`/artist/{id}`), for metrics and for grouping log lines.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let span = tracing::info_span!("request", id = %id, method = %method, path = %path);
    let started = Instant::now();
    // The demo's simulator plays Spotify, whose slowness is its own (the Spotify client
    // bounds its calls): only our own requests are cut off.
    // An upload goes at the client's pace (its handler drops one that stalls for a minute).
    let deadline = if path.starts_with("/sim/") {
        Duration::from_secs(24 * 3600)
    } else if path == "/import/upload" {
        Duration::from_secs(3600)
    } else {
        state.config.request_timeout
    };
    let handled = tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await;
    let mut response = match handled {
        Ok(response) => response,
        Err(_) => {
            span.in_scope(|| {
                tracing::error!(
                    deadline_s = deadline.as_secs(),
                    "request cut off at its deadline"
                )
            });
            super::security::plain_text(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "This took longer than {} seconds, so Personalify stopped it; a store is not answering. Try again in a minute. (reference {id})",
                    deadline.as_secs()
                ),
            )
        }
    };
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    super::metrics::record_request(route.as_deref(), &path, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            status,
            ms = (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            "request"
        )
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_outside() {
        assert_eq!(
            accepted(&HeaderValue::from_static("abc-123_x.y")),
            Some("abc-123_x.y".into())
        );
        assert_eq!(accepted(&HeaderValue::from_static("")), None);
        assert_eq!(accepted(&HeaderValue::from_static("a b")), None);
        assert_eq!(accepted(&HeaderValue::from_static("line\tbreak")), None);
        assert_eq!(
            accepted(&HeaderValue::from_str(&"x".repeat(65)).unwrap()),
            None
        );
        assert_eq!(fresh().len(), 16);
    }
}
