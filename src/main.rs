//! Server entry: configuration, telemetry, then hand over to `server::startup`.

/// Page rendering allocates many small, short-lived strings on every worker thread; glibc's
/// malloc spent ~40% of a dashboard's CPU on them (measured with `make bench-pages`).
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use personalify::server::{config::Config, startup, telemetry};
    use std::process::ExitCode;

    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sim") {
        return simulator::run(&args[1..]).await;
    }
    let command = args.first().map(String::as_str);

    // A bad environment stops the process with one line naming the variable (never its value).
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("personalify: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    match command {
        Some("bench-sync") => return bench_sync(config, &args[1..]).await,
        Some("bench-pages") => return bench_pages(config, &args[1..]).await,
        Some("bench-listening") => return bench_listening(config, &args[1..]).await,
        Some("bench-import") => return bench_import(config, &args[1..]).await,
        Some("bench-shards") => return bench_shards(config, &args[1..]).await,
        Some("soak") => return soak(config, &args[1..]).await,
        Some("shards") => return shards(config, &args[1..]).await,
        _ => {}
    }

    match startup::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "personalify stopped");
            eprintln!("personalify: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify bench-shards [--plays N] [--users U] [--heavy H] [--runs R] [--ingest I]`.
#[cfg(feature = "ssr")]
async fn bench_shards(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::bench::shards::{self, ShardsBenchOptions};
    use std::process::ExitCode;
    const USAGE: &str = "usage: personalify bench-shards [--plays 4000000] [--users 200] [--heavy 200000] [--runs 20] [--ingest 200000] [--keep]";
    let mut options = ShardsBenchOptions::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            options.keep = true;
            continue;
        }
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--plays", Some(n)) if n > 0 => options.plays = n,
            ("--users", Some(n)) if (2..=10_000).contains(&n) => options.users = n as u32,
            ("--heavy", Some(n)) => options.heavy = n,
            ("--runs", Some(n)) if (1..=1000).contains(&n) => options.runs = n as u32,
            ("--ingest", Some(n)) if n > 0 => options.ingest = n,
            _ => {
                eprintln!("personalify bench-shards: bad option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if options.heavy >= options.plays {
        eprintln!("personalify bench-shards: --heavy must be less than --plays\n{USAGE}");
        return ExitCode::from(2);
    }
    match shards::run(config, options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("personalify bench-shards: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify shards status` / `personalify shards move P --to NODE`: where the plays'
/// partitions are, and moving one to another analytics node.
#[cfg(feature = "ssr")]
async fn shards(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::shards;
    use personalify::server::store::pg;
    use std::process::ExitCode;
    use std::time::Duration;
    const USAGE: &str =
        "usage: personalify shards status | personalify shards move PARTITION --to NODE";
    enum Command {
        Status,
        Move(i64, String),
    }
    let command = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["status"] => Command::Status,
        ["move", part, "--to", node] => match part.trim_start_matches('p').parse::<i64>() {
            Ok(part) => Command::Move(part, node.to_string()),
            Err(_) => {
                eprintln!("personalify shards: {part} is not a partition number (0 to 7)\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let budget = config.startup_timeout;
    let main = match pg::connect_main(&config.database_url, budget).await {
        Ok(main) => main,
        Err(e) => {
            eprintln!("personalify shards: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut nodes = vec![(
        config.analytics_database_url.clone(),
        config.analytics_fdw.clone(),
    )];
    if let Some(second) = &config.analytics_2 {
        nodes.push((second.database_url.clone(), second.fdw.clone()));
    }
    let analytics = pg::Analytics::connect(&nodes, budget).await;
    analytics.link(main.clone()).await;
    let names: Vec<&'static str> = analytics.nodes().iter().map(|n| n.name).collect();
    let outcome = match command {
        Command::Status => shards::status(&analytics, &main)
            .await
            .map(|s| shards::render_status(&s, &names))
            .map_err(|e| e.to_string()),
        Command::Move(part, node) => {
            let moving = shards::move_partition(&analytics, &main, part, &node);
            match tokio::time::timeout(Duration::from_secs(3600), moving).await {
                Ok(Ok(m)) if m.from == m.to => Ok(format!(
                    "partition {} is on {} already; {} plays a stopped move had left elsewhere removed\n",
                    m.part, m.to, m.removed
                )),
                Ok(Ok(m)) => Ok(format!(
                    "partition {} moved from {} to {}: {} plays copied, {} listeners copied again after \
                     changing meanwhile, writers held for {} ms, {} plays removed from {}\n",
                    m.part,
                    m.from,
                    m.to,
                    m.copied,
                    m.recopied.len(),
                    m.locked_ms,
                    m.removed,
                    m.from
                )),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the move did not finish within an hour; run it again".into()),
            }
        }
    };
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("personalify shards: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify soak [--users 50] [--minutes 10] [--no-store-faults]`.
#[cfg(feature = "ssr")]
async fn soak(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::bench::soak::{self, SoakOptions};
    use std::process::ExitCode;
    const USAGE: &str = "usage: personalify soak [--users 50] [--minutes 10] [--no-store-faults]";
    let mut options = SoakOptions {
        users: 50,
        minutes: 10.0,
        store_faults: true,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-store-faults" => options.store_faults = false,
            "--users" | "--minutes" => {
                let value = it.next().and_then(|v| v.parse::<f64>().ok());
                match (flag.as_str(), value) {
                    ("--users", Some(n)) if (1.0..=204.0).contains(&n) => {
                        options.users = n as usize
                    }
                    ("--minutes", Some(m)) if m > 0.0 => options.minutes = m,
                    _ => {
                        eprintln!("personalify soak: bad value for {flag} (users 1..=204, minutes > 0)\n{USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            _ => {
                eprintln!("personalify soak: unknown option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match soak::run(config, options).await {
        Ok(report) => {
            print!("{report}");
            if report.contains("verdict: PASS") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("personalify soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify bench-sync [--syncs N] [--latency-ms L] [--concurrency C]`.
#[cfg(feature = "ssr")]
async fn bench_sync(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::bench::sync::{self as bench, BenchOptions};
    use std::process::ExitCode;
    const USAGE: &str =
        "usage: personalify bench-sync [--syncs 40] [--latency-ms 30] [--concurrency 4]";
    let mut options = BenchOptions {
        syncs: 40,
        latency: std::time::Duration::from_millis(30),
        concurrency: 4,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--syncs", Some(n)) if n > 0 => options.syncs = n as usize,
            ("--latency-ms", Some(n)) => options.latency = std::time::Duration::from_millis(n),
            ("--concurrency", Some(n)) if n > 0 => options.concurrency = n as usize,
            _ => {
                eprintln!("personalify bench-sync: bad option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match bench::run(config, options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("personalify bench-sync: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify bench-listening [--plays 2000000] [--users 50] [--heavy 200000] [--runs 40]
/// [--import-plays 250000]`.
#[cfg(feature = "ssr")]
async fn bench_listening(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::bench::listening::{self, ListeningBenchOptions};
    use std::process::ExitCode;
    const USAGE: &str = "usage: personalify bench-listening [--plays 2000000] [--users 50] [--heavy 200000] [--runs 40] [--import-plays 250000]";
    let mut options = ListeningBenchOptions::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--plays", Some(n)) if (1..=100_000_000).contains(&n) => options.plays = n,
            ("--users", Some(n)) if (2..=10_000).contains(&n) => options.users = n as u32,
            ("--heavy", Some(n)) => options.heavy = n,
            ("--runs", Some(n)) if (1..=10_000).contains(&n) => options.runs = n as u32,
            ("--import-plays", Some(n)) if n <= 10_000_000 => options.import_plays = n,
            _ => {
                eprintln!("personalify bench-listening: bad option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if options.heavy > options.plays {
        eprintln!("personalify bench-listening: --heavy must not exceed --plays\n{USAGE}");
        return ExitCode::from(2);
    }
    match listening::run(config, options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("personalify bench-listening: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify bench-import [--plays 2000000] [--runs 2]`.
#[cfg(feature = "ssr")]
async fn bench_import(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::bench::import::{self, ImportBenchOptions};
    use std::process::ExitCode;
    const USAGE: &str = "usage: personalify bench-import [--plays 2000000] [--runs 2]";
    let mut options = ImportBenchOptions::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--plays", Some(n)) if (1..=3_000_000).contains(&n) => options.plays = n,
            ("--runs", Some(n)) if (1..=10).contains(&n) => options.runs = n as u32,
            _ => {
                eprintln!("personalify bench-import: bad option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match import::run(config, options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("personalify bench-import: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `personalify bench-pages [--connections 16] [--seconds 5] [--warmup 1] [--syncs 365]
/// [--only PAGE]`.
#[cfg(feature = "ssr")]
async fn bench_pages(
    config: personalify::server::config::Config,
    args: &[String],
) -> std::process::ExitCode {
    use personalify::server::bench::pages::{self, PageBenchOptions};
    use std::process::ExitCode;
    use std::time::Duration;
    const USAGE: &str =
        "usage: personalify bench-pages [--connections 16] [--seconds 5] [--warmup 1] [--syncs 365] [--only PAGE]";
    let mut options = PageBenchOptions {
        connections: 16,
        warmup: Duration::from_secs(1),
        measure: Duration::from_secs(5),
        long_history: 365,
        only: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let text = it.next();
        if flag == "--only" {
            options.only = text.cloned();
            continue;
        }
        let value = text.and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--connections", Some(n)) if (1..=1024).contains(&n) => {
                options.connections = n as usize
            }
            ("--seconds", Some(n)) if n > 0 => options.measure = Duration::from_secs(n),
            ("--warmup", Some(n)) => options.warmup = Duration::from_secs(n),
            ("--syncs", Some(n)) if (1..=10_000).contains(&n) => options.long_history = n as usize,
            _ => {
                eprintln!("personalify bench-pages: bad option {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match pages::run(config, options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("personalify bench-pages: {e}");
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
