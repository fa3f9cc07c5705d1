//! PostgreSQL: `main` (the record) and `analytics` (the remote node), each with its own
//! embedded migrations applied at start-up.

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

/// The analytics node. It may be down at start-up: the pool is then lazy, and
/// [`Analytics::link`] keeps trying in the background, first to apply the node's migrations,
/// then to set up `main`'s postgres_fdw link to it ([`fdw::ensure`]). Until both are done it
/// reports down, with the reason.
#[derive(Clone)]
pub struct Analytics {
    pub pool: PgPool,
    migrated: Arc<AtomicBool>,
    link: Arc<Mutex<LinkState>>,
}

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
    /// Connect (lazily) and apply the node's migrations, retrying within `budget`.
    pub async fn connect(url: &SecretString, budget: Duration) -> Self {
        let pool = pool_options().connect_lazy_with(connect_options(url));
        let analytics = Analytics {
            pool,
            migrated: Arc::new(AtomicBool::new(false)),
            link: Arc::new(Mutex::new(LinkState::Pending)),
        };
        if let Err(err) = with_backoff("postgres analytics", budget, || analytics.migrate()).await {
            tracing::warn!(error = %err, "postgres analytics not reachable; starting without it and retrying in the background");
        }
        analytics
    }

    /// Set up `main`'s FDW link once now (bounded), and keep trying in the background
    /// until the node is migrated and linked.
    pub async fn link(&self, main: PgPool, target: FdwTarget) {
        if self.is_migrated() {
            let _ = tokio::time::timeout(LINK_DEADLINE, self.try_link(&main, &target)).await;
        }
        if self.is_ready() {
            return;
        }
        let background = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(2);
            loop {
                if !background.is_migrated() {
                    if let Err(err) = background.migrate().await {
                        tracing::debug!(error = %err, "postgres analytics still not reachable");
                    }
                }
                if background.is_migrated() {
                    let attempt = background.try_link(&main, &target);
                    let _ = tokio::time::timeout(LINK_DEADLINE, attempt).await;
                }
                if background.is_ready() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        });
    }

    async fn try_link(&self, main: &PgPool, target: &FdwTarget) {
        let state = match fdw::ensure(main, &self.pool, target).await {
            Ok(changes) => {
                if changes.is_empty() {
                    tracing::info!("postgres_fdw link to analytics ready, unchanged");
                } else {
                    tracing::info!(?changes, "postgres_fdw link to analytics ready");
                }
                LinkState::Ready
            }
            Err(err) => {
                let first = !matches!(self.link_state(), LinkState::Failed(_));
                if first {
                    tracing::error!(error = %err, "postgres_fdw link to analytics failed; retrying in the background");
                } else {
                    tracing::debug!(error = %err, "postgres_fdw link to analytics still failing");
                }
                LinkState::Failed(err.to_string())
            }
        };
        *self.link.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        ANALYTICS_MIGRATIONS.run(&self.pool).await?;
        if !self.migrated.swap(true, Ordering::SeqCst) {
            tracing::info!("postgres analytics ready, migrations applied");
        }
        Ok(())
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::SeqCst)
    }

    pub fn link_state(&self) -> LinkState {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Migrated and reachable from `main` through the foreign server.
    pub fn is_ready(&self) -> bool {
        self.is_migrated() && self.link_state() == LinkState::Ready
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
