//! Sign-in with Spotify: OAuth2 authorization code + PKCE (oauth2 crate), a single-use
//! `state` bound to the browser, tokens encrypted at rest, server-side sessions.

pub mod crypto;
pub mod pages;
mod routes;
pub mod session;
pub mod tokens;

use crate::server::spotify::SpotifyClient;
pub use pages::problem;
pub use routes::router;

/// What sign-in needs, shared through `AppState`.
#[derive(Clone)]
pub struct Auth {
    pub spotify: SpotifyClient,
    pub cipher: crypto::TokenCipher,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
    /// Demo mode: Spotify is the in-process simulator.
    pub demo: bool,
}
