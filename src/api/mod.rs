//! `#[server]` functions and the DTOs they exchange, one module per feature.
//!
//! A server function is thin: it reads the request's context, calls into `crate::server`,
//! and maps failures to an [`ApiError`] a person can read.

pub mod history;
pub mod site;
pub mod top;
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
    #[error("the request could not be sent: {0}")]
    Transport(String),
}

impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        ApiError::Transport(value.to_string())
    }
}
