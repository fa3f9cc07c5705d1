//! `GET /metrics` in the Prometheus text format (version 0.0.4), written by hand: requests
//! by route and status, latency histograms by route, sync runs by outcome, the MongoDB
//! outbox's depth, Spotify calls and 429s, store errors, and background tasks. Counters
//! live in this process (one registry per process, shared by the apps a test starts).

use super::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    syncs: Mutex<BTreeMap<&'static str, u64>>,
    store_errors: Mutex<BTreeMap<&'static str, u64>>,
    spotify_calls: AtomicU64,
    spotify_rate_limited: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A route label with bounded cardinality: the matched pattern, else a class of path.
fn route_label(route: Option<&str>, path: &str) -> String {
    match route {
        Some(r) => r.to_string(),
        None if path.starts_with("/pkg/") => "/pkg/*".into(),
        None if path.starts_with("/sim/") => "/sim/*".into(),
        None if path.starts_with("/api/") => "/api/*".into(),
        None => "other".into(),
    }
}

pub fn record_request(route: Option<&str>, path: &str, status: u16, elapsed: Duration) {
    let label = route_label(route, path);
    *lock(&REGISTRY.requests)
        .entry((label.clone(), status))
        .or_default() += 1;
    let secs = elapsed.as_secs_f64();
    let mut latency = lock(&REGISTRY.latency);
    let h = latency.entry(label).or_default();
    if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
        h.buckets[i] += 1;
    }
    h.count += 1;
    h.sum += secs;
}

/// A sync ended: `succeeded` or `failed`; `refused` when it never started (budget).
pub fn record_sync(outcome: &'static str) {
    *lock(&REGISTRY.syncs).entry(outcome).or_default() += 1;
}

/// A store answered with an error or not at all: `main`, `mongo`, `redis`.
pub fn record_store_error(store: &'static str) {
    *lock(&REGISTRY.store_errors).entry(store).or_default() += 1;
}

/// A request to Spotify (Accounts or Web API), and whether it was answered 429.
pub fn record_spotify_call(rate_limited: bool) {
    REGISTRY.spotify_calls.fetch_add(1, Ordering::Relaxed);
    if rate_limited {
        REGISTRY
            .spotify_rate_limited
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Label values are ours (routes, outcomes), but escape anyway.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub async fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HELP personalify_http_requests_total HTTP requests by route and status."
    );
    let _ = writeln!(w, "# TYPE personalify_http_requests_total counter");
    for ((route, status), n) in lock(&REGISTRY.requests).iter() {
        let _ = writeln!(
            w,
            "personalify_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            escape(route)
        );
    }
    let _ = writeln!(
        w,
        "# HELP personalify_http_request_duration_seconds Time to the response's head, by route."
    );
    let _ = writeln!(
        w,
        "# TYPE personalify_http_request_duration_seconds histogram"
    );
    for (route, h) in lock(&REGISTRY.latency).iter() {
        let route = escape(route);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                w,
                "personalify_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            w,
            "personalify_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            w,
            "personalify_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            w,
            "personalify_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
            h.count
        );
    }
    let _ = writeln!(w, "# HELP personalify_sync_runs_total Syncs by outcome (refused: the Spotify budget was spent).");
    let _ = writeln!(w, "# TYPE personalify_sync_runs_total counter");
    for outcome in ["succeeded", "failed", "refused"] {
        let n = lock(&REGISTRY.syncs).get(outcome).copied().unwrap_or(0);
        let _ = writeln!(
            w,
            "personalify_sync_runs_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    let _ = writeln!(
        w,
        "# HELP personalify_spotify_calls_total Requests sent to Spotify."
    );
    let _ = writeln!(w, "# TYPE personalify_spotify_calls_total counter");
    let _ = writeln!(
        w,
        "personalify_spotify_calls_total {}",
        REGISTRY.spotify_calls.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        w,
        "# HELP personalify_spotify_rate_limited_total Spotify answers 429."
    );
    let _ = writeln!(w, "# TYPE personalify_spotify_rate_limited_total counter");
    let _ = writeln!(
        w,
        "personalify_spotify_rate_limited_total {}",
        REGISTRY.spotify_rate_limited.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        w,
        "# HELP personalify_store_errors_total Store calls that failed or timed out."
    );
    let _ = writeln!(w, "# TYPE personalify_store_errors_total counter");
    for store in ["main", "mongo", "redis"] {
        let n = lock(&REGISTRY.store_errors)
            .get(store)
            .copied()
            .unwrap_or(0);
        let _ = writeln!(w, "personalify_store_errors_total{{store=\"{store}\"}} {n}");
    }
    // The outbox, read now (bounded: a down database leaves these out).
    let depth = tokio::time::timeout(
        Duration::from_secs(2),
        super::sync::outbox::depth(&state.stores.main),
    )
    .await;
    if let Ok(Ok(depth)) = depth {
        let _ = writeln!(
            w,
            "# HELP personalify_outbox_pending Sync history waiting for MongoDB."
        );
        let _ = writeln!(w, "# TYPE personalify_outbox_pending gauge");
        let _ = writeln!(w, "personalify_outbox_pending {}", depth.pending);
        let _ = writeln!(
            w,
            "# HELP personalify_outbox_parked Outbox rows MongoDB refused too often."
        );
        let _ = writeln!(w, "# TYPE personalify_outbox_parked gauge");
        let _ = writeln!(w, "personalify_outbox_parked {}", depth.parked);
        let _ = writeln!(
            w,
            "# HELP personalify_outbox_oldest_pending_seconds Age of the oldest waiting row."
        );
        let _ = writeln!(w, "# TYPE personalify_outbox_oldest_pending_seconds gauge");
        let _ = writeln!(
            w,
            "personalify_outbox_oldest_pending_seconds {}",
            depth.oldest_pending_secs
        );
    }
    let tasks = state.tasks.snapshot();
    let _ = writeln!(
        w,
        "# HELP personalify_task_up Background task running (1) or not (0)."
    );
    let _ = writeln!(w, "# TYPE personalify_task_up gauge");
    for task in &tasks {
        let _ = writeln!(
            w,
            "personalify_task_up{{task=\"{}\"}} {}",
            task.name,
            u8::from(task.running)
        );
    }
    let _ = writeln!(
        w,
        "# HELP personalify_task_restarts_total Background task restarts after it stopped."
    );
    let _ = writeln!(w, "# TYPE personalify_task_restarts_total counter");
    for task in &tasks {
        let _ = writeln!(
            w,
            "personalify_task_restarts_total{{task=\"{}\"}} {}",
            task.name, task.restarts
        );
    }
    out
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state).await,
    )
        .into_response()
}
