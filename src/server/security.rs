//! Request guards shared by every route.
//!
//! - [`api_body_limit`]: server functions (`/api/…`) take a few small arguments; a body
//!   larger than [`API_BODY_LIMIT`] is refused with 413 before any of it is parsed, so a
//!   large upload can neither fill memory nor reach a parser.

use crate::api::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::middleware::Next;
use http_body_util::BodyExt;

/// Largest request body a server function accepts.
pub const API_BODY_LIMIT: usize = 64 * 1024;

pub async fn api_body_limit(request: Request<Body>, next: Next) -> Response<Body> {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > API_BODY_LIMIT as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    // Bodies without a length (chunked) are read up to the limit, never past it.
    let bytes = match http_body_util::Limited::new(body, API_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large();
            }
            tracing::debug!(error = %err, "request body could not be read");
            return api_error(
                StatusCode::BAD_REQUEST,
                ApiError::BadRequest("The request's body could not be read.".into()),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large() -> Response<Body> {
    api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::BadRequest(format!(
            "This request is too large (at most {} KB).",
            API_BODY_LIMIT / 1024
        )),
    )
}

/// A server function's error answer: the JSON the browser's code decodes, which also reads
/// as a sentence to a person.
pub fn api_error(status: StatusCode, error: ApiError) -> Response<Body> {
    let body = serde_json::to_string(&error).unwrap_or_else(|_| String::from("{}"));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
