//! Server entry: configuration, telemetry, then hand over to `server::startup`.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use personalify::server::{config::Config, startup, telemetry};
    use std::process::ExitCode;

    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sim") {
        return simulator::run(&args[1..]).await;
    }

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

/// `personalify sim`: the Spotify simulator on its own port, for tests and experiments.
#[cfg(feature = "ssr")]
mod simulator {
    use personalify::server::config::LogFormat;
    use personalify::server::sim::{self, SimConfig, Simulator};
    use std::process::ExitCode;

    const USAGE: &str = "usage: personalify sim [--addr 127.0.0.1:4010] [--client-id ID] [--client-secret SECRET] [--redirect-uri URI]... [--seed N]";

    pub async fn run(args: &[String]) -> ExitCode {
        personalify::server::telemetry::init(LogFormat::Pretty);
        let mut addr = "127.0.0.1:4010".to_string();
        let mut client_id = "personalify-sim".to_string();
        let mut secret = None;
        let mut redirects = Vec::new();
        let mut seed = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let Some(value) = it.next() else {
                eprintln!("personalify sim: {flag} needs a value\n{USAGE}");
                return ExitCode::from(2);
            };
            match flag.as_str() {
                "--addr" => addr = value.clone(),
                "--client-id" => client_id = value.clone(),
                "--client-secret" => secret = Some(value.clone()),
                "--redirect-uri" => redirects.push(value.clone()),
                "--seed" => match value.parse::<u64>() {
                    Ok(n) => seed = Some(n),
                    Err(_) => {
                        eprintln!("personalify sim: --seed must be a whole number\n{USAGE}");
                        return ExitCode::from(2);
                    }
                },
                _ => {
                    eprintln!("personalify sim: unknown option {flag}\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
        if redirects.is_empty() {
            redirects.push("http://127.0.0.1:3000/auth/callback".to_string());
        }
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(err) => {
                eprintln!("personalify sim: cannot listen on {addr}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let local = match listener.local_addr() {
            Ok(a) => a,
            Err(err) => {
                eprintln!("personalify sim: {err}");
                return ExitCode::FAILURE;
            }
        };
        let mut config = SimConfig::new(client_id, redirects, format!("http://{local}"));
        config.client_secret = secret;
        if let Some(seed) = seed {
            config.seed = seed;
        }
        tracing::info!(addr = %local, "Spotify simulator listening on http://{local}");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match sim::serve(Simulator::new(config), listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("personalify sim: {err}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build has no binary; `hydrate()` in lib.rs is its entry point.
}
