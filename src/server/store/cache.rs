//! Redis (fred): the dashboard cache `top:{spotify_id}:{time_range}`, sessions, progress.
//! Redis is a cache: when it is down, callers fall back to PostgreSQL, so every command
//! here fails fast instead of queueing until a reconnect.

use super::StoreError;
use crate::server::config::expose;
use fred::prelude::*;
use fred::types::config::Options;
use secrecy::SecretString;
use std::time::Duration;

#[derive(Clone)]
pub struct Cache {
    pub client: Client,
}

/// Options for every command: don't wait for a reconnect, give up after a second.
pub fn fail_fast() -> Options {
    Options {
        fail_fast: true,
        timeout: Some(Duration::from_secs(1)),
        max_attempts: Some(1),
        ..Default::default()
    }
}

impl Cache {
    /// Start the client; it reconnects on its own forever (exponential backoff up to 5 s).
    /// Wait within `budget` for the first connection, then go on either way.
    pub async fn connect(url: &SecretString, budget: Duration) -> Result<Self, StoreError> {
        let mut config = Config::from_url(expose(url))
            .map_err(|e| StoreError::RedisClient(format!("{:?}", e.kind())))?;
        // Keep retrying the first connection in the background instead of erroring out.
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_secs(2);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(|e| StoreError::RedisClient(format!("{:?}", e.kind())))?;
        client.connect();
        match tokio::time::timeout(budget, client.wait_for_connect()).await {
            Ok(Ok(())) => tracing::info!("redis ready"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "redis not reachable; starting without it")
            }
            Err(_) => tracing::warn!(
                "redis not reachable within the start-up budget; starting without it"
            ),
        }
        Ok(Cache { client })
    }

    pub async fn ping(&self) -> Result<(), String> {
        self.client
            .with_options(&fail_fast())
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
