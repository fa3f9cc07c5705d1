//! `GET /healthz`: the process is alive. `GET /readyz`: every store answers, with latencies,
//! and the MongoDB outbox's depth; 503 naming what is down. Probes run concurrently, each bounded by a timeout, so a dead
//! store cannot hang the check.

use super::state::AppState;
use super::store::breaker::Breaker;
use super::store::pg;
use super::sync::outbox;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, Instant};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// "ok" when every store answers, else "unavailable".
    pub status: &'static str,
    /// Names of the stores that are down, for humans and scripts.
    pub down: Vec<&'static str>,
    pub stores: Stores,
    /// `main`'s postgres_fdw link to the analytics node: "ready", "pending" (the node's
    /// migrations come first) or "failed" (the reason is in the log; retried).
    pub analytics_link: &'static str,
    /// The analytics nodes' read replica, when one is configured: per node's database
    /// there, "ok", "behind" (lagging more than `REPLICA_MAX_LAG_SECS`, or nothing arrived
    /// yet) or "down", and its lag. Instance-wide reads fall back to the nodes meanwhile,
    /// so it does not make the server unready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<Vec<ReplicaProbe>>,
    /// Sync history waiting for MongoDB, and rows parked (absent when `main` is down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox: Option<outbox::Depth>,
    /// Supervised background tasks: running or not, restarts (none in a process that runs
    /// no background work, like the tests' in-process servers).
    pub tasks: Vec<super::tasks::TaskInfo>,
}

#[derive(Debug, Serialize)]
pub struct Stores {
    pub main: Probe,
    pub analytics: Probe,
    /// The second analytics node, when one is configured.
    #[serde(rename = "analytics-2", skip_serializing_if = "Option::is_none")]
    pub analytics_2: Option<Probe>,
    pub mongo: Probe,
    pub redis: Probe,
}

#[derive(Debug, Serialize)]
pub struct ReplicaProbe {
    pub node: &'static str,
    pub status: &'static str,
    pub lag_secs: Option<f64>,
}

/// One store's state. The driver's error goes to the log only: `/readyz` answers anyone,
/// so it carries names and states, never a host, a user name or a driver's message.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub status: &'static str,
    pub latency_ms: f64,
    #[serde(skip)]
    pub error: Option<String>,
}

async fn probe(check: impl Future<Output = Result<(), String>>) -> Probe {
    probe_marked(None, check).await
}

/// [`probe`] of a store with a circuit breaker: marked down, it is reported down at once
/// (its own probe decides when it is back); not answering in time, it is marked down.
async fn probe_marked(
    breaker: Option<&Breaker>,
    check: impl Future<Output = Result<(), String>>,
) -> Probe {
    if let Some(down_for) = breaker.and_then(Breaker::down_for) {
        return Probe {
            status: "down",
            latency_ms: 0.0,
            error: Some(format!(
                "marked down {} s ago after a missed deadline; probed every second",
                down_for.as_secs()
            )),
        };
    }
    let started = Instant::now();
    let outcome = match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(result) => result,
        Err(_) => {
            if let Some(breaker) = breaker {
                breaker.trip();
            }
            Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis()))
        }
    };
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    match outcome {
        Ok(()) => Probe {
            status: "ok",
            latency_ms,
            error: None,
        },
        Err(error) => Probe {
            status: "down",
            latency_ms,
            error: Some(error),
        },
    }
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let stores = &state.stores;
    let node_check = |node: Option<pg::Node>| async move {
        let Some(node) = node else {
            return Ok(());
        };
        pg::ping(&node.pool).await?;
        if !node.is_migrated() {
            return Err("reachable, migrations not applied yet".to_string());
        }
        match stores.analytics.link_state() {
            pg::LinkState::Ready => Ok(()),
            pg::LinkState::Pending => {
                Err("reachable; main's postgres_fdw link not set up yet".to_string())
            }
            pg::LinkState::Failed(why) => {
                Err(format!("reachable, but main cannot query it: {why}"))
            }
        }
    };
    let depth = async {
        match tokio::time::timeout(PROBE_TIMEOUT, outbox::depth(&stores.main)).await {
            Ok(Ok(depth)) => Some(depth),
            _ => None,
        }
    };
    let first = stores.analytics.nodes().first().cloned();
    let second = stores.analytics.nodes().get(1).cloned();
    let has_second = second.is_some();
    let breaker = |node: &Option<pg::Node>| node.as_ref().map(|n| n.breaker.clone());
    let (first_breaker, second_breaker) = (breaker(&first), breaker(&second));
    let (main, analytics, analytics_2, mongo, redis, outbox) = tokio::join!(
        probe(pg::ping(&stores.main)),
        probe_marked(first_breaker.as_ref(), node_check(first)),
        probe_marked(second_breaker.as_ref(), node_check(second)),
        probe_marked(Some(&stores.mongo.breaker), stores.mongo.ping()),
        probe_marked(Some(&stores.cache.breaker), stores.cache.ping()),
        depth,
    );
    let stores = Stores {
        main,
        analytics,
        analytics_2: has_second.then_some(analytics_2),
        mongo,
        redis,
    };
    let mut named: Vec<(&'static str, &Probe)> =
        vec![("main", &stores.main), ("analytics", &stores.analytics)];
    if let Some(probe) = &stores.analytics_2 {
        named.push(("analytics-2", probe));
    }
    named.extend([("mongo", &stores.mongo), ("redis", &stores.redis)]);
    let down: Vec<&'static str> = named
        .iter()
        .filter(|(_, p)| p.status != "ok")
        .map(|(name, _)| *name)
        .collect();
    if !down.is_empty() {
        let why: Vec<String> = named
            .iter()
            .filter_map(|(name, p)| p.error.as_ref().map(|e| format!("{name}: {e}")))
            .collect();
        tracing::warn!(?down, ?why, "readiness check: stores down");
    }
    let (code, status) = if down.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Json(Readiness {
            status,
            down,
            stores,
            analytics_link: match state.stores.analytics.link_state() {
                pg::LinkState::Ready => "ready",
                pg::LinkState::Pending => "pending",
                pg::LinkState::Failed(_) => "failed",
            },
            replica: match &state.stores.replica {
                None => None,
                Some(replica) => Some(
                    replica
                        .lags()
                        .await
                        .into_iter()
                        .zip(&replica.dbs)
                        .map(|(lag, db)| match lag {
                            Ok(lag) => ReplicaProbe {
                                node: db.node,
                                status: if lag.within(replica.max_lag) {
                                    "ok"
                                } else {
                                    "behind"
                                },
                                lag_secs: lag.secs.map(|s| (s * 10.0).round() / 10.0),
                            },
                            Err(_) => ReplicaProbe {
                                node: db.node,
                                status: "down",
                                lag_secs: None,
                            },
                        })
                        .collect(),
                ),
            },
            outbox,
            tasks: state.tasks.snapshot(),
        }),
    )
}
