//! `personalify bench-sync`: sync simulated users against the real stores and report
//! per-sync wall time, PostgreSQL round trips and the floor set by Spotify's latency.
//! A measurement, not a test: it prints numbers and asserts nothing.

use super::load::percentile;
use super::{ms, sign_in};
use crate::server::config::{Config, SpotifyMode};
use crate::server::sim::Simulator;
use crate::server::startup::Application;
use crate::server::sync::run::{run_inline, SyncReport, SyncUser, Trigger};
use std::time::{Duration, Instant};

pub struct BenchOptions {
    pub syncs: usize,
    pub latency: Duration,
    /// Users synced at once (each user's syncs run one after another).
    pub concurrency: usize,
}

pub async fn run(mut config: Config, options: BenchOptions) -> Result<String, String> {
    // Demo mode (the simulator is Spotify), a private port, no syncs behind our back.
    config.spotify = SpotifyMode::Demo;
    config.site_addr = ([127, 0, 0, 1], 0).into();
    config.public_url = None;
    config.sync_on_login = false;
    // The simulator is Spotify here: no budget, no cooldown, no sign-in limit.
    config.spotify_calls_per_minute = 0;
    config.sync_cooldown = std::time::Duration::ZERO;
    config.sign_in_rate_per_minute = 0;
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let sim = state.sim.clone().ok_or("demo mode has a simulator")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let demo = Simulator::demo_users();
    let workers = options.concurrency.clamp(1, demo.len());
    let mut users = Vec::new();
    for listener in &demo[..workers] {
        sign_in(&base, &http, listener.id).await?;
        let user_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE spotify_id = $1")
            .bind(listener.id)
            .fetch_one(&state.stores.main)
            .await
            .map_err(|e| e.to_string())?;
        users.push(SyncUser {
            user_id,
            spotify_id: listener.id.to_string(),
        });
    }

    sim.set_latency(options.latency);
    let calls_before = sim.request_count("/v1/");
    let started = Instant::now();
    let per_worker = options.syncs.div_ceil(workers);
    let mut tasks = Vec::new();
    for (i, user) in users.into_iter().enumerate() {
        let state = state.clone();
        let count = per_worker.min(options.syncs.saturating_sub(i * per_worker));
        tasks.push(tokio::spawn(async move {
            let mut reports: Vec<Result<SyncReport, String>> = Vec::new();
            for _ in 0..count {
                reports.push(
                    run_inline(&state, &user, Trigger::Bench)
                        .await
                        .map_err(|e| e.to_string()),
                );
            }
            reports
        }));
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        for r in task.await.map_err(|e| e.to_string())? {
            match r {
                Ok(report) => reports.push(report),
                Err(e) => failures.push(e),
            }
        }
    }
    let total = started.elapsed();
    let calls = sim.request_count("/v1/") - calls_before;
    sim.set_latency(Duration::ZERO);
    let _ = stop.send(());
    let _ = server.await;

    if reports.is_empty() {
        return Err(format!("no sync succeeded: {failures:?}"));
    }
    let mut walls: Vec<Duration> = reports.iter().map(|r| r.wall).collect();
    walls.sort();
    let trips: Vec<u32> = reports.iter().map(|r| r.pg_round_trips).collect();
    let calls_per_sync = calls as f64 / reports.len() as f64;
    // Per sync: 6 lists fetched concurrently, each ~99 items = 2 pages one after another.
    let sequential_pages = crate::server::sync::run::MAX_ITEMS.div_ceil(50) as u32;
    let floor = options.latency * sequential_pages;
    let p50 = percentile(&walls, 0.5);
    Ok(format!(
        "Personalify sync benchmark\n\
         syncs: {} ok, {} failed; {} users at once; simulator latency {} ms per request\n\
         per-sync wall time: min {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms\n\
         PostgreSQL round trips per sync: {} (min {}, max {}), one transaction\n\
         Spotify calls per sync: {:.1} (3 ranges x artists+tracks x {} pages), 6 lists at once\n\
         floor (unavoidable Spotify wait at this concurrency): {} sequential pages x {} ms = {:.1} ms\n\
         p50 above the floor: {:.1} ms (JSON, PostgreSQL, MongoDB, Redis, scheduling)\n\
         total {:.2} s, {:.1} syncs/s\n",
        reports.len(),
        failures.len(),
        workers,
        options.latency.as_millis(),
        ms(walls[0]),
        ms(p50),
        ms(percentile(&walls, 0.95)),
        ms(walls[walls.len() - 1]),
        trips[0],
        trips.iter().min().copied().unwrap_or(0),
        trips.iter().max().copied().unwrap_or(0),
        calls_per_sync,
        sequential_pages,
        sequential_pages,
        options.latency.as_millis(),
        ms(floor),
        ms(p50.saturating_sub(floor)),
        total.as_secs_f64(),
        reports.len() as f64 / total.as_secs_f64(),
    ))
}
