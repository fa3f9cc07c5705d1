//! PostgreSQL: `main` (the record) and `analytics` (the remote node), each with its own
//! embedded migrations applied at start-up.

use super::StoreError;
use crate::server::config::expose;
use crate::server::retry::with_backoff;
use secrecy::SecretString;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// The analytics node. It may be down at start-up: the pool is then lazy, and a background
/// task applies the migrations as soon as the node answers. Until then it reports down.
#[derive(Clone)]
pub struct Analytics {
    pub pool: PgPool,
    migrated: Arc<AtomicBool>,
}

impl Analytics {
    pub async fn connect(url: &SecretString, budget: Duration) -> Self {
        let pool = pool_options().connect_lazy_with(connect_options(url));
        let analytics = Analytics {
            pool,
            migrated: Arc::new(AtomicBool::new(false)),
        };
        let first = with_backoff("postgres analytics", budget, || analytics.migrate()).await;
        if let Err(err) = first {
            tracing::warn!(error = %err, "postgres analytics not reachable; starting without it and retrying in the background");
            let background = analytics.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(2);
                while let Err(err) = background.migrate().await {
                    tracing::debug!(error = %err, "postgres analytics still not reachable");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            });
        }
        analytics
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
}

/// A round trip to the server.
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
