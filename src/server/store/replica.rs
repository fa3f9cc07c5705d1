//! The read replica of the analytics tier, by logical replication: a PostgreSQL server
//! (`ANALYTICS_REPLICA_DATABASE_URL`, database D) holding one database per node (D for
//! `analytics`, D_2 for `analytics-2`), each subscribed to its node's publication
//! `personalify_replica` (the plays, leaf by leaf, and `replica_heartbeat`). One database
//! per node, because a partition being moved is on both nodes for a moment: in one
//! database its rows would collide, and logical replication stops at the first conflict.
//!
//! The app sets it up ([`Replica::ensure`]): the replica's databases (created when
//! missing, with the nodes' schema), on each node a logical replication slot, and the
//! subscriptions (their connection's password never in a statement's text nor in the
//! replica server's log, [`subscribe`]). It renews each node's heartbeat row every few
//! seconds ([`beat`]); a replica database's lag is the age of its node's row there. Instance-wide reads ask [`Replica::usable`] first: every
//! replica database answers, none lags more than `REPLICA_MAX_LAG_SECS`, no partition is
//! being moved, and the replica has caught up with the last move; else they read the
//! nodes through main.

use super::pg::Analytics;
use crate::server::config::{expose, FdwTarget};
use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The publication on each node (migrations/analytics/20261129000011_replica.sql).
pub const PUBLICATION: &str = "personalify_replica";
/// Each replica question gets this long: a read asks before it reads, and must not wait
/// long for a replica that is down (it then reads the nodes).
const DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("the read replica is not reachable: {0}")]
    Unreachable(String),
    #[error("analytics node {0} is not reachable, so its subscription cannot be set up")]
    NodeDown(&'static str),
    #[error("setting up the read replica failed: {0}")]
    Sql(String),
}

impl From<sqlx::Error> for ReplicaError {
    fn from(e: sqlx::Error) -> Self {
        ReplicaError::Sql(e.to_string())
    }
}

/// The replica's database for one node.
#[derive(Clone)]
pub struct ReplicaDb {
    pub node: &'static str,
    pub database: String,
    pub pool: PgPool,
}

#[derive(Clone)]
pub struct Replica {
    pub dbs: Vec<ReplicaDb>,
    admin: PgConnectOptions,
    pub max_lag: Duration,
}

/// A replica database's state, for `/readyz` and [`Replica::usable`].
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    pub node: &'static str,
    /// Seconds since the node's last heartbeat arrived; `None`: none arrived yet.
    pub secs: Option<f64>,
    /// When that heartbeat was written on the node.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Lag {
    /// Its node's heartbeat arrived, at most `max_lag` ago.
    pub fn within(&self, max_lag: Duration) -> bool {
        self.secs.is_some_and(|s| s <= max_lag.as_secs_f64())
    }
}

fn options(url: &SecretString) -> Option<PgConnectOptions> {
    PgConnectOptions::from_str(expose(url))
        .ok()
        .map(|o| o.application_name("personalify-replica"))
}

impl Replica {
    /// Lazy pools to the replica's databases, one per node of `analytics`.
    pub fn new(url: &SecretString, analytics: &Analytics, max_lag: Duration) -> Option<Self> {
        let base = options(url)?;
        let first = base.get_database().unwrap_or("analytics").to_string();
        let dbs = analytics
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let database = if i == 0 {
                    first.clone()
                } else {
                    format!("{first}_{}", i + 1)
                };
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(DEADLINE)
                    .connect_lazy_with(base.clone().database(&database));
                ReplicaDb {
                    node: node.name,
                    database,
                    pool,
                }
            })
            .collect();
        Some(Replica {
            dbs,
            admin: base.database("postgres"),
            max_lag,
        })
    }

    /// Set up what is missing: the replica's databases with the nodes' schema, a slot on
    /// each node, and each database's subscription. Changes nothing when all is there.
    pub async fn ensure(&self, analytics: &Analytics) -> Result<(), ReplicaError> {
        let mut admin = sqlx::PgConnection::connect_with(&self.admin)
            .await
            .map_err(|e| ReplicaError::Unreachable(e.to_string()))?;
        // One set-up at a time (the background one at start-up and any other caller, in this
        // process or another): each looks for its subscription and makes it if missing, and
        // two at once both made it, one of them dropping the other's slot. The session's lock
        // goes with the connection at the end.
        let first = self
            .dbs
            .first()
            .map(|db| db.database.as_str())
            .unwrap_or("");
        sqlx::query("SELECT pg_advisory_lock(hashtextextended('replica-setup:' || $1, 0))")
            .bind(first)
            .execute(&mut admin)
            .await?;
        for (db, node) in self.dbs.iter().zip(analytics.nodes()) {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&db.database)
                    .fetch_one(&mut admin)
                    .await?;
            if !exists {
                sqlx::query(&format!(
                    "CREATE DATABASE \"{}\"",
                    db.database.replace('"', "")
                ))
                .execute(&mut admin)
                .await?;
            }
            super::pg::ANALYTICS_MIGRATIONS
                .run(&db.pool)
                .await
                .map_err(|e| ReplicaError::Sql(e.to_string()))?;
            if !node.is_migrated() {
                return Err(ReplicaError::NodeDown(node.name));
            }
            let slot = slot_name(&node.target.dbname, node.name);
            let has_slot: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            )
            .bind(&slot)
            .fetch_one(&node.pool)
            .await?;
            let subscribed: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_subscription s
                                  JOIN pg_database d ON d.oid = s.subdbid
                                 WHERE s.subname = $1 AND d.datname = current_database())",
            )
            .bind(&slot)
            .fetch_one(&db.pool)
            .await?;
            if subscribed {
                continue;
            }
            if !has_slot {
                sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
                    .bind(&slot)
                    .execute(&node.pool)
                    .await?;
            }
            subscribe(&db.pool, &slot, &node.target).await?;
            tracing::info!(node = node.name, database = %db.database, "read replica subscribed");
        }
        Ok(())
    }

    /// Each replica database's lag behind its node.
    pub async fn lags(&self) -> Vec<Result<Lag, String>> {
        let mut out = Vec::with_capacity(self.dbs.len());
        for db in &self.dbs {
            let asked = sqlx::query_as::<_, (Option<f64>, Option<chrono::DateTime<chrono::Utc>>)>(
                "SELECT extract(epoch FROM now() - max(at))::float8, max(at)
                   FROM replica_heartbeat WHERE node = $1",
            )
            .bind(db.node)
            .fetch_one(&db.pool);
            out.push(match tokio::time::timeout(DEADLINE, asked).await {
                Ok(Ok((secs, at))) => Ok(Lag {
                    node: db.node,
                    secs,
                    at,
                }),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer".into()),
            });
        }
        out
    }

    /// Whether instance-wide reads may go to the replica now (see the module's doc).
    pub async fn usable(&self, main: &PgPool) -> bool {
        let moves: Result<(bool, Option<chrono::DateTime<chrono::Utc>>), _> = sqlx::query_as(
            "SELECT bool_or(moving_since IS NOT NULL), max(moved_at) FROM shard_placements",
        )
        .fetch_one(main)
        .await;
        let Ok((moving, last_move)) = moves else {
            return false;
        };
        if moving {
            return false;
        }
        self.lags().await.into_iter().all(|lag| match lag {
            Ok(lag) => {
                lag.within(self.max_lag)
                    && lag
                        .at
                        .is_some_and(|at| last_move.is_none_or(|moved| at > moved))
            }
            Err(_) => false,
        })
    }
}

/// The slot (and subscription) name for a node's database: unique per cluster, as test
/// databases share clusters.
pub fn slot_name(dbname: &str, node: &str) -> String {
    let clean: String = format!("pfy_{dbname}_{node}")
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    clean.chars().take(63).collect()
}

/// `CREATE SUBSCRIPTION` `name` in the replica database of `replica`, to `node`, with the
/// node's password read from a transaction-local setting (bound as a parameter), so it is
/// in no statement's text. Nor does it reach the replica server's log: parameter logging
/// is off for the transaction (a superuser may turn it off, and on PostgreSQL 15 only a
/// superuser creates subscriptions), and a failing `CREATE SUBSCRIPTION` is re-raised
/// with its message alone: as it was, its context quoted the statement `EXECUTE` ran,
/// connection string and all, into the log.
pub async fn subscribe(replica: &PgPool, name: &str, node: &FdwTarget) -> Result<(), ReplicaError> {
    let mut tx = replica.begin().await?;
    sqlx::query(
        "SELECT set_config('log_parameter_max_length', '0', true),
                set_config('log_parameter_max_length_on_error', '0', true)
          WHERE current_setting('is_superuser') = 'on'",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "SELECT set_config('personalify.sub_conn', $1, true), set_config('personalify.sub_name', $2, true)",
    )
    .bind(format!(
        "host={} port={} dbname={} user={} password={} connect_timeout=5",
        conn_value(&node.host),
        node.port,
        conn_value(&node.dbname),
        conn_value(&node.user),
        conn_value(expose(&node.password)),
    ))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "DO $$ BEGIN EXECUTE format(
             'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION {PUBLICATION}
              WITH (create_slot = false, slot_name = %L, copy_data = true)',
             current_setting('personalify.sub_name'), current_setting('personalify.sub_conn'),
             current_setting('personalify.sub_name'));
           EXCEPTION WHEN OTHERS THEN
             RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
           END $$"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT set_config('personalify.sub_conn', '', true)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A libpq connection-string value, quoted.
fn conn_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Renew each node's heartbeat row (what the replica's lag is measured by).
pub async fn beat(analytics: &Analytics) {
    for node in analytics.nodes().iter().filter(|n| n.is_migrated()) {
        let _ = tokio::time::timeout(
            DEADLINE,
            sqlx::query(
                "INSERT INTO replica_heartbeat (node, at) VALUES ($1, now())
                 ON CONFLICT (node) DO UPDATE SET at = excluded.at",
            )
            .bind(node.name)
            .execute(&node.pool),
        )
        .await;
    }
}
