//! Talking to Spotify (or the simulator: the base URLs come from configuration).

mod client;
pub mod models;

pub use client::{AuthorizeRequest, Endpoints, SpotifyClient, SpotifyError, TokenSet, SCOPES};
