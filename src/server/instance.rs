//! This instance in three numbers: its listeners, their plays and their hours, over every
//! partition of both nodes. A full scan of the plays, so it is read from the read replica
//! when that is usable ([`crate::server::store::replica::Replica::usable`]: answering,
//! within its lag bound, no partition moving) and from the nodes through main otherwise,
//! and kept in Redis for [`CACHE_SECS`] (`instance:totals`) so a busy page scans at most
//! once a minute. Redis down only costs the cache.

use crate::domain::trending::InstanceTotals;
use crate::server::listening::INSTANCE;
use crate::server::store::Stores;
use std::time::Duration;

/// The whole answer, counting included: below the Listening page's own panels (5 s).
pub const DEADLINE: Duration = Duration::from_secs(4);
/// How long a count is served from Redis.
pub const CACHE_SECS: u64 = 60;
/// Where a count was made, as the panel says it.
pub const ON_REPLICA: &str = "the read replica";
pub const ON_NODES: &str = "the analytics nodes";

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("the analytics nodes did not answer")]
    Nodes(String),
    #[error("counting took longer than {} s", DEADLINE.as_secs())]
    TimedOut,
}

/// The instance's totals: from Redis if counted in the last minute, else counted now.
pub async fn load(stores: &Stores) -> Result<InstanceTotals, InstanceError> {
    tokio::time::timeout(DEADLINE, load_now(stores))
        .await
        .map_err(|_| InstanceError::TimedOut)?
}

async fn load_now(stores: &Stores) -> Result<InstanceTotals, InstanceError> {
    let key = stores.cache.key("instance:totals");
    if let Ok(Some(cached)) = stores.cache.get_json::<InstanceTotals>(&key).await {
        return Ok(cached);
    }
    let totals = count(stores).await?;
    if let Ok(json) = serde_json::to_string(&totals) {
        if let Err(e) = stores
            .cache
            .set_json(&key, &json, Duration::from_secs(CACHE_SECS))
            .await
        {
            tracing::debug!(error = %e, "instance totals not cached");
        }
    }
    Ok(totals)
}

/// Count now: on the replica's databases (one per node, summed: a listener's plays are on
/// one node, and no partition is moving when the replica is usable), else on the nodes.
pub async fn count(stores: &Stores) -> Result<InstanceTotals, InstanceError> {
    const ON_ONE: &str = "SELECT count(DISTINCT spotify_id)::bigint, count(*)::bigint,
                                 COALESCE(sum(ms_played), 0)::bigint FROM plays";
    let counted_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if let Some(replica) = &stores.replica {
        if replica.usable(&stores.main).await {
            let mut sum = (0i64, 0i64, 0i64);
            let mut complete = true;
            for db in &replica.dbs {
                match sqlx::query_as::<_, (i64, i64, i64)>(ON_ONE)
                    .fetch_one(&db.pool)
                    .await
                {
                    Ok((l, p, ms)) => sum = (sum.0 + l, sum.1 + p, sum.2 + ms),
                    Err(e) => {
                        tracing::warn!(error = %e, "the read replica failed; counting on the nodes");
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                return Ok(InstanceTotals {
                    listeners: sum.0,
                    plays: sum.1,
                    minutes: sum.2 / 60_000,
                    counted_on: ON_REPLICA.to_string(),
                    counted_at,
                });
            }
        }
    }
    let (listeners, plays, minutes): (i64, i64, i64) = sqlx::query_as(INSTANCE.sql)
        .fetch_one(&stores.remote)
        .await
        .map_err(|e| InstanceError::Nodes(e.to_string()))?;
    Ok(InstanceTotals {
        listeners,
        plays,
        minutes,
        counted_on: ON_NODES.to_string(),
        counted_at,
    })
}
