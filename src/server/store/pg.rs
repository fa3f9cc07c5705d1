//! PostgreSQL: `main` (the record) and `analytics` (the remote node), each with its own
//! embedded migrations applied at start-up.

use super::breaker::{Breaker, Down};
use super::{fdw, StoreError};
use crate::server::config::{expose, FdwTarget};
use crate::server::retry::with_backoff;
use secrecy::SecretString;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub static MAIN_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");
pub static ANALYTICS_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/analytics");

fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(10)
        // Fail a request quickly when the node is down rather than hanging the page.
        .acquire_timeout(Duration::from_secs(3))
        // No ping before every query: it doubled the round trips of a page's reads
        // (measured with `make bench-pages`). A connection that broke while idle (the
        // server restarted) fails the one query that finds out, and is then discarded.
        .test_before_acquire(false)
}

fn connect_options(url: &SecretString) -> PgConnectOptions {
    // The URL was validated by `Config`; a failure here would be a bug, not bad input.
    PgConnectOptions::from_str(expose(url))
        .expect("validated PostgreSQL URL")
        .application_name("personalify")
        // The server ends a statement stuck on a lock or a runaway plan, and a transaction
        // left open by a task that stopped, instead of letting it hold a pooled connection
        // (and its locks) forever. Far above any statement the app runs (milliseconds).
        .options([
            ("statement_timeout", "30s"),
            ("idle_in_transaction_session_timeout", "60s"),
            // main's tables in `analytics` are partitioned over the analytics nodes: with
            // this on, a GROUP BY holding the partition key runs on the nodes, one
            // aggregate per partition (off by default in PostgreSQL for its planning cost,
            // which over eight partitions is small). Harmless on the nodes themselves.
            ("enable_partitionwise_aggregate", "on"),
        ])
}

/// Connect to `main` (retrying within `budget`) and apply its migrations. Start-up stops
/// if this fails: without the record nothing else is safe to do.
pub async fn connect_main(url: &SecretString, budget: Duration) -> Result<PgPool, StoreError> {
    let options = connect_options(url);
    let pool = with_backoff("postgres main", budget, || {
        pool_options().connect_with(options.clone())
    })
    .await
    .map_err(|e| StoreError::MainUnreachable(e.to_string()))?;
    MAIN_MIGRATIONS
        .run(&pool)
        .await
        .map_err(|e| StoreError::MainMigrations(e.to_string()))?;
    tracing::info!("postgres main ready, migrations applied");
    Ok(pool)
}

/// A second, small pool to `main` for the queries that read the analytics node through
/// the foreign tables (the Listening panels, the Distributed query page). Its statements
/// end on the server after `deadline` (postgres_fdw then cancels the remote query), so a
/// node that stops answering frees main's backend instead of holding it for 30 s; and at
/// most [`REMOTE_READERS`] of them run at once, which bounds the connections main opens to
/// the node. Lazy: nothing is opened before the first query.
pub fn remote_reader(url: &SecretString, deadline: Duration) -> PgPool {
    let timeout = format!("{}ms", deadline.as_millis());
    let options = connect_options(url).options([("statement_timeout", timeout.as_str())]);
    pool_options()
        .max_connections(REMOTE_READERS)
        .connect_lazy_with(options)
}

/// Connections of [`remote_reader`].
pub const REMOTE_READERS: u32 = 5;

/// The analytics tier: one or two nodes (`analytics`, `analytics-2`), each holding the
/// partitions of the plays that main's `shard_placements` puts on it. A node may be down
/// at start-up: its pool is then lazy, and [`Analytics::link`] keeps trying in the
/// background, first to apply each node's migrations, then to set up `main`'s
/// postgres_fdw link to them ([`fdw::ensure`]). Until both are done it reports down, with
/// the reason.
#[derive(Clone)]
pub struct Analytics {
    /// The first node, `analytics`. With one node every partition is there; with two, a
    /// listener's rows are on [`Analytics::shard`]'s node, and this pool is for what is
    /// not a listener's (the node's own health).
    pub pool: PgPool,
    nodes: Arc<[Node]>,
    link: Arc<Mutex<LinkState>>,
}

/// One analytics node: its name in config, docs and `personalify shards`, the foreign
/// server on main that reaches it, and this process's pool to it.
#[derive(Clone)]
pub struct Node {
    pub name: &'static str,
    pub server: &'static str,
    pub pool: PgPool,
    pub target: FdwTarget,
    /// Marked down after a missed deadline, probed back up ([`super::breaker`]).
    pub breaker: Breaker,
    migrated: Arc<AtomicBool>,
}

impl Node {
    /// This node as the FDW set-up takes it (its pool only once migrated: the set-up reads
    /// the node's tables).
    pub fn link(&self) -> fdw::Link<'_> {
        fdw::Link {
            node: self.name,
            server: self.server,
            pool: self.is_migrated().then_some(&self.pool),
            target: &self.target,
        }
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::SeqCst)
    }

    async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        ANALYTICS_MIGRATIONS.run(&self.pool).await?;
        if !self.migrated.swap(true, Ordering::SeqCst) {
            tracing::info!(
                node = self.name,
                "postgres analytics node ready, migrations applied"
            );
        }
        Ok(())
    }
}

/// The nodes' names and foreign servers, in order.
pub const NODES: [(&str, &str); 2] = [
    ("analytics", "analytics_node"),
    ("analytics-2", "analytics_2_node"),
];

/// Each node as pages name it when it does not answer.
const SAID: [&str; 2] = [
    "Personalify's analytics node (analytics)",
    "Personalify's analytics node (analytics-2)",
];

/// `main`'s postgres_fdw link to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Not tried yet (the node's migrations come first).
    Pending,
    Ready,
    /// The last attempt failed, and why (retried in the background).
    Failed(String),
}

/// Start-up waits this long for the FDW set-up before going on without it.
const LINK_DEADLINE: Duration = Duration::from_secs(10);

impl Analytics {
    /// Connect (lazily) to each node and apply its migrations, retrying within `budget`.
    pub async fn connect(nodes: &[(SecretString, FdwTarget)], budget: Duration) -> Self {
        let nodes: Vec<Node> = nodes
            .iter()
            .zip(NODES)
            .zip(SAID)
            .map(|(((url, target), (name, server)), said)| {
                let pool = pool_options().connect_lazy_with(connect_options(url));
                let probed = pool.clone();
                Node {
                    name,
                    server,
                    breaker: Breaker::new(
                        said,
                        Arc::new(move || {
                            let pool = probed.clone();
                            Box::pin(async move { ping(&pool).await.is_ok() })
                        }),
                    ),
                    pool,
                    target: target.clone(),
                    migrated: Arc::new(AtomicBool::new(false)),
                }
            })
            .collect();
        let analytics = Analytics {
            pool: nodes[0].pool.clone(),
            nodes: nodes.into(),
            link: Arc::new(Mutex::new(LinkState::Pending)),
        };
        let migrate = |node: &Node| {
            let node = node.clone();
            async move {
                if let Err(err) = with_backoff(node.name, budget, || node.migrate()).await {
                    tracing::warn!(node = node.name, error = %err, "postgres analytics node not reachable; starting without it and retrying in the background");
                }
            }
        };
        match &analytics.nodes[..] {
            [first, second] => {
                tokio::join!(migrate(first), migrate(second));
            }
            nodes => {
                for node in nodes {
                    migrate(node).await;
                }
            }
        }
        analytics
    }

    /// The nodes, `analytics` first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node as the FDW set-up and the statistics refresh take it.
    pub fn links(&self) -> Vec<fdw::Link<'_>> {
        self.nodes.iter().map(Node::link).collect()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A node marked down, if any (an instance-wide read needs every node).
    pub fn down(&self) -> Option<Down> {
        self.nodes.iter().find_map(|n| n.breaker.check().err())
    }

    /// An instance-wide read missed its deadline without saying which node held it up: ask
    /// each node now, and mark down those that do not answer.
    pub async fn probe_all(&self) {
        match &self.nodes[..] {
            [first, second] => {
                tokio::join!(first.breaker.probe_now(), second.breaker.probe_now());
            }
            nodes => {
                for node in nodes {
                    node.breaker.probe_now().await;
                }
            }
        }
    }

    /// Set up `main`'s FDW link once now (bounded), and keep trying in the background
    /// until every node is migrated and the link is up.
    pub async fn link(&self, main: PgPool) {
        if self.nodes.iter().any(Node::is_migrated) {
            let _ = tokio::time::timeout(LINK_DEADLINE, self.try_link(&main)).await;
        }
        if self.is_complete() {
            return;
        }
        let background = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(2);
            loop {
                for node in background.nodes.iter().filter(|n| !n.is_migrated()) {
                    if let Err(err) = node.migrate().await {
                        tracing::debug!(node = node.name, error = %err, "postgres analytics node still not reachable");
                    }
                }
                if background.nodes.iter().any(Node::is_migrated) && !background.is_ready() {
                    let attempt = background.try_link(&main);
                    let _ = tokio::time::timeout(LINK_DEADLINE, attempt).await;
                }
                if background.is_complete() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        });
    }

    /// Every node migrated and the link up: nothing left for the background to do.
    fn is_complete(&self) -> bool {
        self.nodes.iter().all(Node::is_migrated) && self.is_ready()
    }

    async fn try_link(&self, main: &PgPool) {
        let links = self.links();
        let linked = async {
            let changes = fdw::ensure(main, &links).await?;
            fdw::check_reachable(main, &links).await?;
            if let Err(e) = fdw::refresh_statistics(main, &links).await {
                tracing::warn!(error = %e, "cannot refresh main's statistics of the analytics partitions");
            }
            Ok::<_, fdw::FdwError>(changes)
        };
        let state = match linked.await {
            Ok(changes) => {
                if changes.is_empty() {
                    tracing::info!("postgres_fdw link to the analytics nodes ready, unchanged");
                } else {
                    tracing::info!(?changes, "postgres_fdw link to the analytics nodes ready");
                }
                LinkState::Ready
            }
            Err(err) => {
                let first = !matches!(self.link_state(), LinkState::Failed(_));
                if first {
                    tracing::error!(error = %err, "postgres_fdw link to the analytics nodes failed; retrying in the background");
                } else {
                    tracing::debug!(error = %err, "postgres_fdw link to the analytics nodes still failing");
                }
                LinkState::Failed(err.to_string())
            }
        };
        *self.link.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn link_state(&self) -> LinkState {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Some node migrated and main's foreign tables set up over the nodes.
    pub fn is_ready(&self) -> bool {
        self.link_state() == LinkState::Ready
    }

    /// The node holding `listener`'s partition, locked against a move for as long as the
    /// returned [`Shard`] lives (see [`crate::server::shards`]).
    pub async fn shard(
        &self,
        main: &PgPool,
        listener: &str,
    ) -> Result<crate::server::shards::Shard, crate::server::shards::ShardError> {
        crate::server::shards::Shard::lock(self, main, listener).await
    }
}

/// A round trip to the server.
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether `e` says a deadline passed: the statement was cancelled by `statement_timeout`
/// (on main, or on a node through postgres_fdw), or no connection came in time.
pub fn missed_deadline(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c == "57014"),
        _ => false,
    }
}

/// Whether `e` says the connection failed (broken, refused, closed by the server or not
/// had from the pool in time) rather than the statement: trying again, on another
/// connection, may succeed.
pub fn is_disconnect(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception) and 57P01-03 (the server shutting down or
        // starting).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}
