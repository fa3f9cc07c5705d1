//! One module per store. [`Stores::connect`] brings them all up at start-up, each with
//! bounded retry: the record (PostgreSQL `main`) is required to start; the others may come
//! later, and `/readyz` reports them down until they do.

pub mod breaker;
pub mod cache;
pub mod fdw;
pub mod mongo;
pub mod pg;
pub mod replica;

use super::config::Config;

#[derive(Clone)]
pub struct Stores {
    pub main: sqlx::PgPool,
    /// `main` again, for queries over the foreign tables (see [`pg::remote_reader`]).
    pub remote: sqlx::PgPool,
    pub analytics: pg::Analytics,
    /// The analytics nodes' read replica, when configured.
    pub replica: Option<replica::Replica>,
    pub mongo: mongo::Mongo,
    pub cache: cache::Cache,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("PostgreSQL main (DATABASE_URL) is not reachable: {0}")]
    MainUnreachable(String),
    #[error("PostgreSQL main migrations failed: {0}")]
    MainMigrations(String),
    #[error("MongoDB client could not be created: {0}")]
    MongoClient(String),
    #[error("Redis client could not be created: {0}")]
    RedisClient(String),
}

impl Stores {
    /// Connect to all four stores concurrently, so start-up waits for the slowest, not the sum.
    pub async fn connect(config: &Config) -> Result<Self, StoreError> {
        let budget = config.startup_timeout;
        let mut nodes = vec![(
            config.analytics_database_url.clone(),
            config.analytics_fdw.clone(),
        )];
        if let Some(second) = &config.analytics_2 {
            nodes.push((second.database_url.clone(), second.fdw.clone()));
        }
        let (main, analytics, mongo, cache) = tokio::join!(
            pg::connect_main(&config.database_url, budget),
            pg::Analytics::connect(&nodes, budget),
            mongo::Mongo::connect(&config.mongodb_url, &config.mongodb_database, budget),
            cache::Cache::connect(&config.redis_url, &config.redis_key_prefix, budget),
        );
        let main = main?;
        analytics.link(main.clone()).await;
        let replica = config
            .analytics_replica
            .as_ref()
            .and_then(|url| replica::Replica::new(url, &analytics, config.replica_max_lag));
        if let Some(replica) = replica.clone() {
            // Set up in the background, retried until it is (the nodes may come later).
            let analytics = analytics.clone();
            tokio::spawn(async move {
                let mut delay = std::time::Duration::from_secs(1);
                loop {
                    // Bounded: a replica host that takes the connection and never answers
                    // must not stop the retries (a database and its migrations take
                    // seconds).
                    let attempt = replica.ensure(&analytics);
                    match tokio::time::timeout(std::time::Duration::from_secs(60), attempt).await {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "read replica not set up yet; retrying")
                        }
                        Err(_) => {
                            tracing::warn!(
                                "read replica not set up yet (no answer in 60 s); retrying"
                            )
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(60));
                }
            });
        }
        Ok(Stores {
            replica,
            remote: pg::remote_reader(&config.database_url, crate::server::listening::DEADLINE),
            main,
            analytics,
            mongo: mongo?,
            cache: cache?,
        })
    }
}
