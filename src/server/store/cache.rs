//! Redis (fred): the dashboard cache `top:{spotify_id}:{time_range}`, sessions, progress.
//! Redis is a cache: when it is down, callers fall back to PostgreSQL, so every command
//! here fails fast instead of queueing until a reconnect.

use super::breaker::Breaker;
use super::StoreError;
use crate::server::config::expose;
use fred::prelude::*;
use fred::types::config::Options;
use secrecy::SecretString;
use std::time::Duration;

#[derive(Clone)]
pub struct Cache {
    pub client: Client,
    /// Prepended to every key (`REDIS_KEY_PREFIX`, default none), so several installations
    /// (or test runs) can share one Redis without reading each other's entries.
    pub prefix: String,
    /// Marked down when a command times out, probed back up ([`super::breaker`]).
    pub breaker: Breaker,
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
    pub async fn connect(
        url: &SecretString,
        prefix: &str,
        budget: Duration,
    ) -> Result<Self, StoreError> {
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
        let probed = client.clone();
        let breaker = Breaker::new(
            "The cache (Redis)",
            std::sync::Arc::new(move || {
                let client = probed.clone();
                Box::pin(async move {
                    client
                        .with_options(&fail_fast())
                        .ping::<String>(None)
                        .await
                        .is_ok()
                })
            }),
        );
        Ok(Cache {
            client,
            prefix: prefix.to_string(),
            breaker,
        })
    }

    pub async fn ping(&self) -> Result<(), String> {
        self.fast()
            .map_err(|e| self.failed(e))?
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| self.failed(e))
    }

    /// The client for one command that fails fast; `Err` at once while Redis is marked
    /// down.
    pub fn fast(&self) -> Result<fred::clients::WithOptions<Client>, fred::error::Error> {
        match self.breaker.check() {
            Ok(()) => Ok(self.client.with_options(&fail_fast())),
            Err(down) => Err(fred::error::Error::new(
                fred::error::ErrorKind::Canceled,
                down.to_string(),
            )),
        }
    }

    /// A failed command, as text: counted for `/metrics`, and a timeout marks Redis down.
    pub fn failed(&self, err: fred::error::Error) -> String {
        if *err.kind() == fred::error::ErrorKind::Timeout {
            self.breaker.trip();
        }
        if *err.kind() != fred::error::ErrorKind::Canceled {
            crate::server::metrics::record_store_error("redis");
        }
        err.to_string()
    }
}

impl Cache {
    /// A key in this installation's namespace (`REDIS_KEY_PREFIX` + `name`).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The seed design's cache key for a dashboard payload, `top:{spotify_id}:{time_range}`.
    pub fn top_key(&self, spotify_id: &str, range: crate::domain::TimeRange) -> String {
        format!("{}top:{spotify_id}:{}", self.prefix, range.as_str())
    }

    /// The cached dashboard payload; `Ok(None)` on a miss (or an entry that no longer
    /// parses, which the caller then rebuilds and overwrites).
    pub async fn get_top(
        &self,
        spotify_id: &str,
        range: crate::domain::TimeRange,
    ) -> Result<Option<crate::domain::TopPayload>, String> {
        self.get_json(&self.top_key(spotify_id, range)).await
    }

    /// The sync a cached payload comes from, read without building its lists; `Ok(None)`
    /// on a miss.
    pub async fn top_sync_id(
        &self,
        spotify_id: &str,
        range: crate::domain::TimeRange,
    ) -> Result<Option<i64>, String> {
        #[derive(serde::Deserialize)]
        struct SyncOnly {
            sync_id: i64,
        }
        let only: Option<SyncOnly> = self.get_json(&self.top_key(spotify_id, range)).await?;
        Ok(only.map(|s| s.sync_id))
    }

    pub async fn set_top(
        &self,
        payload: &crate::domain::TopPayload,
        ttl: Duration,
    ) -> Result<(), String> {
        let json = serde_json::to_string(payload).map_err(|e| e.to_string())?;
        self.set_top_json(&payload.spotify_id, payload.time_range, &json, ttl)
            .await
    }

    /// Cache a payload that is already JSON (as PostgreSQL stores it).
    pub async fn set_top_json(
        &self,
        spotify_id: &str,
        range: crate::domain::TimeRange,
        json: &str,
        ttl: Duration,
    ) -> Result<(), String> {
        self.set_json(&self.top_key(spotify_id, range), json, ttl)
            .await
    }

    /// `SET key json EX ttl`, failing fast.
    pub async fn set_json(&self, key: &str, json: &str, ttl: Duration) -> Result<(), String> {
        self.fast()
            .map_err(|e| self.failed(e))?
            .set::<(), _, _>(
                key,
                json,
                Some(fred::types::Expiration::EX(ttl.as_secs().max(1) as i64)),
                None,
                false,
            )
            .await
            .map_err(|e| self.failed(e))
    }

    /// A cached JSON value parsed as `T`; `Ok(None)` on a miss or an entry that no longer
    /// parses (the caller rebuilds and overwrites it).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, String> {
        let raw: Option<String> = self
            .fast()
            .map_err(|e| self.failed(e))?
            .get(key)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(raw.and_then(|json| serde_json::from_str(&json).ok()))
    }
}

impl Cache {
    /// The seed design's view counter (`content:views:<id>` there), per artist and server:
    /// counts one view and returns the new total.
    pub async fn count_artist_view(&self, artist_id: &str) -> Result<i64, String> {
        self.fast()
            .map_err(|e| self.failed(e))?
            .incr(format!("{}artist:views:{artist_id}", self.prefix))
            .await
            .map_err(|e| self.failed(e))
    }
}

impl Cache {
    /// Add `n` to a counter that lives `ttl` (set when it is created): a fixed window shared
    /// by every server process. Returns the new total.
    pub async fn add_to_window(&self, name: &str, n: i64, ttl: Duration) -> Result<i64, String> {
        let key = self.key(name);
        let client = self.fast().map_err(|e| self.failed(e))?;
        let total: i64 = client.incr_by(&key, n).await.map_err(|e| self.failed(e))?;
        if total == n {
            // First in this window: the counter must not outlive it.
            let _: bool = client
                .expire(&key, ttl.as_secs().max(1) as i64, None)
                .await
                .map_err(|e| self.failed(e))?;
        }
        Ok(total)
    }
}

impl Cache {
    /// Delete every key of this installation matching `pattern` (a `SCAN` glob after the
    /// prefix); how many went.
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64, String> {
        let client = self.fast().map_err(|e| self.failed(e))?;
        let pattern = format!("{}{pattern}", glob_escape(&self.prefix));
        let mut cursor = "0".to_string();
        let mut deleted = 0;
        loop {
            let (next, keys): (String, Vec<String>) = client
                .scan_page(cursor, pattern.clone(), Some(500), None)
                .await
                .map_err(|e| self.failed(e))?;
            if !keys.is_empty() {
                let n: u64 = client.del(keys).await.map_err(|e| self.failed(e))?;
                deleted += n;
            }
            if next == "0" {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// `text` matched literally in a `SCAN` glob.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
