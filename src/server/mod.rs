//! Server-only code (feature `ssr`): configuration, stores, HTTP wiring.

pub mod access;
pub mod account;
pub mod artist;
pub mod auth;
pub mod bench;
pub mod charts;
pub mod config;
pub mod distributed;
pub mod health;
pub mod imports;
pub mod listener;
pub mod listening;
pub mod metrics;
pub mod page_cache;
pub mod plays;
pub mod rate_limit;
pub mod retry;
pub mod security;
pub mod sim;
pub mod spotify;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod telemetry;
