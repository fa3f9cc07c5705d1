//! Server entry: configuration, telemetry, then hand over to `server::startup`.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use personalify::server::{config::Config, startup, telemetry};
    use std::process::ExitCode;

    // A bad environment stops the process with one line naming the variable (never its value).
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("personalify: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    match startup::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "personalify stopped");
            eprintln!("personalify: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build has no binary; `hydrate()` in lib.rs is its entry point.
}
