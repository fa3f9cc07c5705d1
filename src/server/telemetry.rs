//! Tracing set-up: `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks pretty or JSON lines.

use super::config::LogFormat;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,mongodb=warn,fred=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // `try_init` so tests that start several apps in one process don't panic.
    let _ = match format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json()).try_init(),
    };
}
