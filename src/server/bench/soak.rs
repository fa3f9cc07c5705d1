//! `personalify soak` (`make soak`): a benchmark with faults, not a test. N simulated
//! listeners sign in, browse every page and sync for M minutes against this (release)
//! server and its background tasks, while each store in turn is stopped and started again
//! (`scripts/services.sh`) and the simulator answers with 429s, 5xx and slow responses.
//! Then every store is back, the outbox drains, and it checks that every sync that
//! finished is in PostgreSQL, in MongoDB's history exactly once per range, and in Redis or
//! rebuildable from PostgreSQL; that nothing is left in the outbox; and that no page took
//! longer than its deadline plus a margin. It prints what it saw.

use super::load::percentile;
use crate::domain::TimeRange;
use crate::server::config::{Config, SpotifyMode};
use crate::server::sim::Simulator;
use crate::server::startup::{self, Application};
use crate::server::state::AppState;
use crate::server::sync::read;
use rand::Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SoakOptions {
    pub users: usize,
    pub minutes: f64,
    /// Stop and start stores (needs `scripts/services.sh`, i.e. the project's own stores).
    pub store_faults: bool,
}

/// A page's answer must come within the slowest store deadline on its path (MongoDB's 3 s,
/// PostgreSQL's pool wait of 3 s) plus this margin.
const PAGE_DEADLINE: Duration = Duration::from_secs(3);
const MARGIN: Duration = Duration::from_secs(2);
/// The client gives up here (well past the deadline: a page that slow is counted, not lost).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped store stays down.
const OUTAGE: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Seen {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// (page, kind) → count: `5xx`, `4xx`, `timeout`, `no answer` (closed or refused).
    errors: BTreeMap<(&'static str, String), u64>,
    syncs_started: u64,
    syncs_refused: u64,
    over_deadline: BTreeMap<&'static str, u64>,
    sign_ins: u64,
}

type Shared = Arc<Mutex<Seen>>;

fn record(seen: &Shared, page: &'static str, elapsed: Duration, outcome: Result<u16, String>) {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.latencies.entry(page).or_default().push(elapsed);
    if elapsed > PAGE_DEADLINE + MARGIN {
        *seen.over_deadline.entry(page).or_default() += 1;
    }
    let kind = match outcome {
        Ok(status) if status >= 500 => Some(format!("{status}")),
        Ok(429) if page == "POST /api/sync" => None,
        Ok(status) if status >= 400 && status != 404 => Some(format!("{status}")),
        Ok(_) => None,
        Err(kind) => Some(kind),
    };
    if let Some(kind) = kind {
        *seen.errors.entry((page, kind)).or_default() += 1;
    }
}

/// The kind of a request that got no HTTP answer: `timeout`, or `no answer` (the
/// connection was closed or refused).
fn unanswered_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout"
    } else {
        "no answer"
    }
    .to_string()
}

/// A client that sends `cookie` (the session) with every request.
fn browser(cookie: &str) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        reqwest::header::HeaderValue::from_str(cookie).map_err(|e| e.to_string())?,
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CLIENT_TIMEOUT)
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())
}

/// Sign in through the demo flow, following the redirects and carrying the cookies by hand
/// (as a browser would); returns the session cookie (`name=value`).
async fn sign_in(base: &str, listener: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CLIENT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut url = format!("{base}/auth/demo?user={listener}");
    let mut jar: Vec<String> = Vec::new();
    for _ in 0..3 {
        let response = http
            .get(&url)
            .header(reqwest::header::COOKIE, jar.join("; "))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        for cookie in response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            if let Some(pair) = cookie.split(';').next() {
                jar.push(pair.to_string());
            }
        }
        if !response.status().is_redirection() {
            return Err(format!("sign-in of {listener}: {}", response.status()));
        }
        url = super::location(&response)?;
        if url == "/dashboard" {
            return jar
                .iter()
                .rev()
                .find(|c| c.starts_with("pfy_session=") && c.len() > "pfy_session=".len())
                .cloned()
                .ok_or_else(|| format!("sign-in of {listener}: no session cookie"));
        }
        if url.starts_with('/') {
            url = format!("{base}{url}");
        }
    }
    Err(format!(
        "sign-in of {listener} did not land on the dashboard"
    ))
}

async fn timed(
    seen: &Shared,
    page: &'static str,
    request: reqwest::RequestBuilder,
) -> Option<String> {
    let started = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.ok();
            record(seen, page, started.elapsed(), Ok(status));
            (status == 200).then_some(body).flatten()
        }
        Err(e) => {
            record(seen, page, started.elapsed(), Err(unanswered_kind(&e)));
            None
        }
    }
}

/// One listener's session: browse and sync until `end`.
async fn listener(base: String, id: &'static str, end: Instant, seen: Shared) {
    // Sign in, retrying through outages.
    let http = loop {
        if Instant::now() >= end {
            return;
        }
        if let Ok(http) = sign_in(&base, id).await.and_then(|cookie| browser(&cookie)) {
            seen.lock().unwrap_or_else(|e| e.into_inner()).sign_ins += 1;
            break http;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut artists: Vec<String> = Vec::new();
    while Instant::now() < end {
        let roll: u32 = rand::rng().random_range(0..100);
        let range = ["short_term", "medium_term", "long_term"][rand::rng().random_range(0..3)];
        match roll {
            0..40 => {
                let url = format!("{base}/dashboard?range={range}");
                if let Some(html) = timed(&seen, "/dashboard", http.get(url)).await {
                    artists = html
                        .split("href=\"/artist/")
                        .skip(1)
                        .filter_map(|rest| rest.split('"').next())
                        .take(10)
                        .map(str::to_string)
                        .collect();
                }
            }
            40..60 => {
                let url = format!("{base}/history?range={range}");
                timed(&seen, "/history", http.get(url)).await;
            }
            60..75 => {
                if let Some(artist) = artists.first().cloned() {
                    let url = format!("{base}/artist/{artist}");
                    timed(&seen, "/artist/{id}", http.get(url)).await;
                }
            }
            75..87 => {
                let request = http
                    .post(format!("{base}/api/sync"))
                    .header("sec-fetch-site", "same-origin");
                let started = Instant::now();
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        record(&seen, "POST /api/sync", started.elapsed(), Ok(status));
                        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                        match status {
                            200 => s.syncs_started += 1,
                            429 => s.syncs_refused += 1,
                            _ => {}
                        }
                    }
                    Err(e) => {
                        record(
                            &seen,
                            "POST /api/sync",
                            started.elapsed(),
                            Err(unanswered_kind(&e)),
                        );
                    }
                }
            }
            87..91 => {
                timed(&seen, "/settings", http.get(format!("{base}/settings"))).await;
            }
            91..95 => {
                let url = format!("{base}/listening?range={range}");
                timed(&seen, "/listening", http.get(url)).await;
            }
            _ => {
                timed(&seen, "/readyz", http.get(format!("{base}/readyz"))).await;
            }
        }
        let think = rand::rng().random_range(200..1200);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
}

/// Spotify's bad days, in turn, until `end`: 429s, 5xx, slow answers.
async fn spotify_faults(sim: Simulator, end: Instant, log: Arc<Mutex<Vec<String>>>) {
    let mut turn = 0;
    while Instant::now() + Duration::from_secs(15) < end {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let what = match turn % 3 {
            0 => {
                sim.rate_limit_next(2, 6);
                "6 answers 429 (Retry-After 2 s)"
            }
            1 => {
                sim.fail_next(503, 8);
                "8 answers 503"
            }
            _ => {
                sim.set_latency(Duration::from_millis(1500));
                tokio::time::sleep(Duration::from_secs(8)).await;
                sim.set_latency(Duration::ZERO);
                "every answer 1.5 s slower for 8 s"
            }
        };
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("Spotify: {what}"));
        turn += 1;
    }
    sim.clear_faults();
    sim.set_latency(Duration::ZERO);
}

fn services(command: &str, store: &str) -> Result<(), String> {
    let status = std::process::Command::new("bash")
        .args(["scripts/services.sh", command, store])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("scripts/services.sh {command} {store} failed"))
}

/// Each store in turn: stopped for [`OUTAGE`], then started again.
async fn store_faults(end: Instant, log: Arc<Mutex<Vec<String>>>) {
    let stores = ["redis", "mongo", "analytics", "main"];
    let total = end.saturating_duration_since(Instant::now());
    let gap = total / (stores.len() as u32 + 1);
    for store in stores {
        tokio::time::sleep(gap.saturating_sub(OUTAGE)).await;
        if Instant::now() + OUTAGE >= end {
            break;
        }
        let stopped = tokio::task::spawn_blocking(move || services("stop", store)).await;
        let line = match stopped {
            Ok(Ok(())) => {
                tokio::time::sleep(OUTAGE).await;
                let started = tokio::task::spawn_blocking(move || services("start", store)).await;
                format!(
                    "{store}: stopped for {} s, started again ({})",
                    OUTAGE.as_secs(),
                    if matches!(started, Ok(Ok(()))) {
                        "ok"
                    } else {
                        "FAILED"
                    }
                )
            }
            other => format!("{store}: could not be stopped ({other:?})"),
        };
        log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

/// What the stores hold for the soak's listeners, checked against each other.
async fn verify(state: &AppState, ids: &[&'static str], out: &mut String) -> bool {
    let pool = &state.stores.main;
    let mut ok = true;
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    // Syncs asked for at the very end finish first (each within SYNC_TIMEOUT_SECS).
    for _ in 0..120 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sync_runs r JOIN users u ON u.id = r.user_id
              WHERE u.spotify_id = ANY($1) AND r.status = 'running'",
        )
        .bind(&ids)
        .fetch_one(pool)
        .await
        .unwrap_or(0);
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the outbox drain (MongoDB is back), up to 90 s: rows whose delete failed while
    // PostgreSQL was down wait out their 60 s lease first.
    let mut depth = crate::server::sync::outbox::depth(pool)
        .await
        .unwrap_or_default();
    for _ in 0..180 {
        if depth.pending == 0 {
            break;
        }
        state.outbox.notify();
        tokio::time::sleep(Duration::from_millis(500)).await;
        depth = crate::server::sync::outbox::depth(pool)
            .await
            .unwrap_or_default();
    }
    let _ = writeln!(
        out,
        "outbox after the run: {} pending, {} parked",
        depth.pending, depth.parked
    );
    ok &= depth.pending == 0 && depth.parked == 0;

    let runs: Vec<(i64, String, String)> = match sqlx::query_as(
        "SELECT r.id, u.spotify_id, r.status FROM sync_runs r JOIN users u ON u.id = r.user_id
          WHERE u.spotify_id = ANY($1) ORDER BY r.id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    {
        Ok(runs) => runs,
        Err(e) => {
            let _ = writeln!(out, "cannot read sync_runs: {e}");
            return false;
        }
    };
    let succeeded: Vec<&(i64, String, String)> =
        runs.iter().filter(|r| r.2 == "succeeded").collect();
    let failed = runs.iter().filter(|r| r.2 == "failed").count();
    let running = runs.iter().filter(|r| r.2 == "running").count();
    let _ = writeln!(
        out,
        "syncs recorded: {} ({} succeeded, {failed} failed, {running} still running)",
        runs.len(),
        succeeded.len()
    );
    // MongoDB: exactly one history document per succeeded run and range, and nothing else.
    let history = state
        .stores
        .mongo
        .db
        .collection::<mongodb::bson::Document>(crate::server::store::mongo::HISTORY);
    let mut missing = 0;
    for (run_id, _, _) in &succeeded {
        for range in TimeRange::ALL {
            let id = crate::server::sync::snapshot_id(*run_id, range);
            match history
                .count_documents(mongodb::bson::doc! { "_id": &id })
                .await
            {
                Ok(1) => {}
                _ => missing += 1,
            }
        }
    }
    let total = history
        .count_documents(mongodb::bson::doc! { "spotify_id": { "$in": &ids } })
        .await
        .unwrap_or(u64::MAX);
    let expected = succeeded.len() as u64 * 3;
    let _ = writeln!(
        out,
        "MongoDB history: {total} documents for {expected} expected (3 per succeeded sync), {missing} missing"
    );
    ok &= missing == 0 && total == expected;
    // PostgreSQL holds each listener's latest lists; Redis has them or they rebuild.
    let mut unreadable = 0;
    let mut from_cache = 0;
    let mut synced_listeners = 0;
    for id in &ids {
        if !succeeded.iter().any(|r| &r.1 == id) {
            continue;
        }
        synced_listeners += 1;
        for range in TimeRange::ALL {
            match read::top_payload(state, id, range).await {
                Ok(Some((_, read::Source::Cache))) => from_cache += 1,
                Ok(Some((_, read::Source::Database))) => {}
                _ => unreadable += 1,
            }
        }
    }
    let _ = writeln!(
        out,
        "dashboards: {} of {} readable ({synced_listeners} listeners × 3 ranges): {from_cache} straight from Redis, the rest rebuilt from PostgreSQL",
        synced_listeners * 3 - unreadable,
        synced_listeners * 3
    );
    ok &= unreadable == 0;
    ok &= verify_plays(state, &ids, out).await;
    ok
}

/// Plays: the stash delivered, each listener's stored plays exactly the simulator's
/// between their first and last (nothing lost between, nothing doubled), and the rollups
/// equal to the plays.
async fn verify_plays(state: &AppState, ids: &[String], out: &mut String) -> bool {
    let Some(sim) = state.sim.as_ref() else {
        return true;
    };
    let mut ok = true;
    let delivered = crate::server::plays::ingest::deliver_stash(state).await;
    let stashed: i64 = sqlx::query_scalar("SELECT count(*) FROM play_stash")
        .fetch_one(&state.stores.main)
        .await
        .unwrap_or(-1);
    let _ = writeln!(
        out,
        "plays: {} delivered from the stash at the end, {stashed} still waiting",
        delivered
            .as_ref()
            .map_or_else(|e| format!("none ({e})"), |n| n.to_string()),
    );
    ok &= stashed == 0;
    let (mut listeners, mut plays, mut wrong) = (0, 0usize, Vec::new());
    for id in ids {
        // On the listener's node (with two nodes, half of them are on analytics-2).
        let node =
            match crate::server::shards::pool_of(&state.stores.analytics, &state.stores.main, id)
                .await
            {
                Ok(node) => node,
                Err(e) => {
                    let _ = writeln!(out, "cannot find {id}'s node: {e}");
                    return false;
                }
            };
        let stored: Vec<(Option<String>, i64)> = match sqlx::query_as(
            "SELECT track_id, (extract(epoch FROM played_at) * 1000)::bigint
               FROM plays WHERE spotify_id = $1 AND source = 'recent' ORDER BY played_at",
        )
        .bind(id)
        .fetch_all(&node)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                let _ = writeln!(out, "cannot read plays: {e}");
                return false;
            }
        };
        let (Some(first), Some(last)) = (stored.first(), stored.last()) else {
            continue;
        };
        listeners += 1;
        plays += stored.len();
        let expected: Vec<(Option<String>, i64)> = sim
            .plays_between(id, first.1 - 1, last.1)
            .into_iter()
            .map(|(track, at)| (Some(track), at))
            .collect();
        if stored != expected {
            wrong.push(format!(
                "{id} ({} stored, {} played)",
                stored.len(),
                expected.len()
            ));
        }
    }
    let _ = writeln!(
        out,
        "plays: {plays} over {listeners} listeners, each exactly the simulator's between its \
         first and last: {}",
        if wrong.is_empty() {
            "yes".to_string()
        } else {
            format!("NO: {}", wrong.join(", "))
        }
    );
    ok &= wrong.is_empty() && listeners > 0;
    // Every rollup against the plays, exactly (both ways), on every node.
    let mut drift: Result<i64, sqlx::Error> = Ok(0);
    for node in state.stores.analytics.nodes() {
        drift = match (drift, crate::server::plays::rollup_drift(&node.pool).await) {
            (Ok(n), Ok(d)) => Ok(n + d.iter().map(|(_, n)| n).sum::<i64>()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    }
    let _ = writeln!(
        out,
        "rollups differing from the plays: {}",
        drift
            .as_ref()
            .map_or_else(|e| format!("unknown ({e})"), |n| n.to_string())
    );
    ok &= matches!(drift, Ok(0));
    ok
}

async fn forget_previous_runs(state: &AppState) -> Result<(), String> {
    let db = &state.stores.mongo.db;
    // Never an instance's own data: scripts/soak.sh names the soak's database and prefix.
    if !db.name().contains("soak") || state.stores.cache.prefix.is_empty() {
        return Err(format!(
            "the soak empties its MongoDB database and Redis keys first: run it through \
             `make soak`, or set MONGODB_DATABASE to a name with \"soak\" in it (now {:?}) \
             and a REDIS_KEY_PREFIX (now {:?})",
            db.name(),
            state.stores.cache.prefix
        ));
    }
    let names = db
        .list_collection_names()
        .await
        .map_err(|e| format!("MongoDB: {e}"))?;
    for name in names {
        db.collection::<mongodb::bson::Document>(&name)
            .delete_many(mongodb::bson::doc! {})
            .await
            .map_err(|e| format!("MongoDB {name}: {e}"))?;
    }
    state
        .stores
        .cache
        .delete_matching("*")
        .await
        .map_err(|e| format!("Redis: {e}"))?;
    Ok(())
}

/// Panics anywhere in the process while the soak runs (the server's, Leptos' tasks
/// included): each is a bug, whether or not a response was cut off.
static PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        report(info);
    }));
}

pub async fn run(mut config: Config, options: SoakOptions) -> Result<String, String> {
    count_panics();
    config.spotify = SpotifyMode::Demo;
    config.site_addr = ([127, 0, 0, 1], 0).into();
    config.public_url = None;
    config.sync_on_login = false;
    config.sign_in_rate_per_minute = 0;
    config.readyz_rate_per_minute = 0;
    config.sync_cooldown = Duration::from_secs(60);
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let sim = state.sim.clone().ok_or("demo mode has a simulator")?;
    // The soak's PostgreSQL database is new (scripts/soak.sh); its MongoDB database and Redis
    // keys are emptied here, so that what `verify` counts is this run's alone (sync ids
    // start again at 1 and would match a previous run's history documents).
    forget_previous_runs(&state).await?;
    startup::spawn_background(&state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));

    let listeners: Vec<&'static str> = Simulator::listeners()
        .iter()
        .cycle()
        .take(options.users.min(Simulator::listeners().len()))
        .map(|l| l.id)
        .collect();
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(options.minutes * 60.0);
    let seen: Shared = Arc::default();
    let faults_log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for id in &listeners {
        tasks.push(tokio::spawn(listener(base.clone(), id, end, seen.clone())));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spotify = tokio::spawn(spotify_faults(sim.clone(), end, faults_log.clone()));
    let stores = options
        .store_faults
        .then(|| tokio::spawn(store_faults(end, faults_log.clone())));
    for task in tasks {
        let _ = task.await;
    }
    let _ = spotify.await;
    if let Some(stores) = stores {
        let _ = stores.await;
    }
    // Every store up again (a failed start above would otherwise spoil the checks).
    if options.store_faults {
        let _ = tokio::task::spawn_blocking(|| {
            std::process::Command::new("bash")
                .args(["scripts/services.sh", "up"])
                .stdout(std::process::Stdio::null())
                .status()
        })
        .await;
    }
    let wall = started.elapsed();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "soak: {} listeners, {:.1} min, store faults {}",
        listeners.len(),
        wall.as_secs_f64() / 60.0,
        if options.store_faults { "on" } else { "off" }
    );
    for line in faults_log.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(out, "  fault: {line}");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let requests: usize = seen.latencies.values().map(Vec::len).sum();
    let _ = writeln!(out, "sign-ins: {}; requests: {requests}", seen.sign_ins);
    let _ = writeln!(
        out,
        "{:<16} {:>8} {:>9} {:>9} {:>9} {:>7}",
        "page", "requests", "p50 ms", "p95 ms", "max ms", "> 5 s"
    );
    let mut deadline_ok = true;
    for (page, mut samples) in seen.latencies {
        samples.sort_unstable();
        let over = seen.over_deadline.get(page).copied().unwrap_or(0);
        // The sync request starts a sync and returns; pages are what must be fast.
        deadline_ok &= over == 0;
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            page,
            samples.len(),
            super::ms(percentile(&samples, 0.50)),
            super::ms(percentile(&samples, 0.95)),
            super::ms(samples.last().copied().unwrap_or_default()),
            over
        );
    }
    let _ = writeln!(out, "errors by page and kind:");
    if seen.errors.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for ((page, kind), n) in &seen.errors {
        let _ = writeln!(out, "  {page} {kind}: {n}");
    }
    // An HTTP status is an answer; a connection closed or timed out without one is not.
    let unanswered: u64 = seen
        .errors
        .iter()
        .filter(|((_, kind), _)| kind == "no answer" || kind == "timeout")
        .map(|(_, n)| n)
        .sum();
    let panics = PANICS.load(std::sync::atomic::Ordering::Relaxed);
    let all_answered = unanswered == 0 && panics == 0;
    let _ = writeln!(
        out,
        "requests left without an answer: {unanswered}; panics in the server: {panics}"
    );
    let _ = writeln!(
        out,
        "syncs asked for: {} started, {} refused (cooldown or Spotify budget)",
        seen.syncs_started, seen.syncs_refused
    );
    let consistent = verify(&state, &listeners, &mut out).await;
    let _ = writeln!(
        out,
        "verdict: {} (nothing lost, nothing doubled: {}; every page within {} s + {} s: {}; \
         every request answered, no panic: {})",
        if consistent && deadline_ok && all_answered {
            "PASS"
        } else {
            "FAIL"
        },
        if consistent { "yes" } else { "NO" },
        PAGE_DEADLINE.as_secs(),
        MARGIN.as_secs(),
        if deadline_ok { "yes" } else { "NO" },
        if all_answered { "yes" } else { "NO" },
    );
    let _ = stop.send(());
    let _ = server.await;
    Ok(out)
}
