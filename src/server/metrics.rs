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

/// One metric family: its HELP and TYPE lines, then a sample per `(labels, value)`
/// (`labels` already formatted, e.g. `outcome="failed"`; empty for none).
fn family(
    w: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(w, "{name} {value}");
        } else {
            let _ = writeln!(w, "{name}{{{labels}}} {value}");
        }
    }
}

/// Counts kept by name, each of `names` shown (0 when never counted).
fn by_name(
    counts: &Mutex<BTreeMap<&'static str, u64>>,
    label: &str,
    names: &[&str],
) -> Vec<(String, String)> {
    let counts = lock(counts);
    names
        .iter()
        .map(|n| {
            let value = counts.get(n).copied().unwrap_or(0);
            (format!("{label}=\"{n}\""), value.to_string())
        })
        .collect()
}

/// The whole exposition.
pub async fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let w = &mut out;
    let requests: Vec<(String, String)> = lock(&REGISTRY.requests)
        .iter()
        .map(|((route, status), n)| {
            (
                format!("route=\"{}\",status=\"{status}\"", escape(route)),
                n.to_string(),
            )
        })
        .collect();
    family(
        w,
        "personalify_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
        requests,
    );
    let mut latency = Vec::new();
    for (route, h) in lock(&REGISTRY.latency).iter() {
        let route = escape(route);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
            cumulative += n;
            latency.push((
                format!("_bucket{{route=\"{route}\",le=\"{bound}\"}}"),
                cumulative.to_string(),
            ));
        }
        latency.push((
            format!("_bucket{{route=\"{route}\",le=\"+Inf\"}}"),
            h.count.to_string(),
        ));
        latency.push((format!("_sum{{route=\"{route}\"}}"), h.sum.to_string()));
        latency.push((format!("_count{{route=\"{route}\"}}"), h.count.to_string()));
    }
    // A histogram's samples carry suffixes, so they are written here, after its header.
    family(
        w,
        "personalify_http_request_duration_seconds",
        "histogram",
        "Time to the response's head, by route.",
        [],
    );
    for (suffix, value) in latency {
        let _ = writeln!(
            w,
            "personalify_http_request_duration_seconds{suffix} {value}"
        );
    }
    family(
        w,
        "personalify_sync_runs_total",
        "counter",
        "Syncs by outcome (refused: the Spotify budget was spent).",
        by_name(
            &REGISTRY.syncs,
            "outcome",
            &["succeeded", "failed", "refused"],
        ),
    );
    family(
        w,
        "personalify_spotify_calls_total",
        "counter",
        "Requests sent to Spotify.",
        [(
            String::new(),
            REGISTRY.spotify_calls.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        w,
        "personalify_spotify_rate_limited_total",
        "counter",
        "Spotify answers 429.",
        [(
            String::new(),
            REGISTRY
                .spotify_rate_limited
                .load(Ordering::Relaxed)
                .to_string(),
        )],
    );
    family(
        w,
        "personalify_store_errors_total",
        "counter",
        "Store calls that failed or timed out.",
        by_name(&REGISTRY.store_errors, "store", &["main", "mongo", "redis"]),
    );
    // The outbox, read now (bounded: a down database leaves these out).
    let depth = tokio::time::timeout(
        Duration::from_secs(2),
        super::sync::outbox::depth(&state.stores.main),
    )
    .await;
    if let Ok(Ok(depth)) = depth {
        for (name, help, value) in [
            (
                "personalify_outbox_pending",
                "Sync history waiting for MongoDB.",
                depth.pending,
            ),
            (
                "personalify_outbox_parked",
                "Outbox rows MongoDB refused too often.",
                depth.parked,
            ),
            (
                "personalify_outbox_oldest_pending_seconds",
                "Age of the oldest waiting row.",
                depth.oldest_pending_secs,
            ),
        ] {
            family(w, name, "gauge", help, [(String::new(), value.to_string())]);
        }
    }
    let tasks = state.tasks.snapshot();
    family(
        w,
        "personalify_task_up",
        "gauge",
        "Background task running (1) or not (0).",
        tasks.iter().map(|t| {
            (
                format!("task=\"{}\"", t.name),
                u8::from(t.running).to_string(),
            )
        }),
    );
    family(
        w,
        "personalify_task_restarts_total",
        "counter",
        "Background task restarts after it stopped.",
        tasks
            .iter()
            .map(|t| (format!("task=\"{}\"", t.name), t.restarts.to_string())),
    );
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
