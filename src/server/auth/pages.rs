//! Small server-rendered pages for sign-in outcomes that are not part of the app's routes:
//! a status code, a heading, one sentence a person can act on, and a way back.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title} · Personalify</title><link rel="stylesheet" href="/pkg/personalify.css"></head>
<body><main class="page page--narrow"><h1>{title}</h1><p data-testid="problem">{message}</p>
<p><a class="button button--primary" href="/">Back to the start page</a></p></main></body></html>"#,
        title = escape(title),
        message = escape(message),
    );
    (status, Html(body)).into_response()
}
