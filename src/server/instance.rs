//! This instance in three numbers: its listeners, their plays and their hours, over every
//! partition of every node. Read from the per-listener rollup the nodes keep by trigger
//! (`plays_by_listener`: one row per listener), through main's partitioned table: eight
//! async foreign scans that return a row per listener, whatever the number of plays. Not
//! from the read replica: it holds the plays only (not the rollups), and a scan of the
//! plays there would cost more than this costs on the nodes. Not cached either: it is
//! cheaper than a Redis round trip would save.

use crate::domain::trending::InstanceTotals;
use crate::server::store::Stores;
use std::time::Duration;

/// The whole answer: below the Listening page's own panels (5 s).
pub const DEADLINE: Duration = Duration::from_secs(4);

/// The query, on main.
pub const SQL: &str = "SELECT count(*)::bigint, COALESCE(sum(plays), 0)::bigint,
                              COALESCE(sum(ms) / 60000, 0)::bigint
                         FROM analytics.plays_by_listener";

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("the analytics nodes did not answer")]
    Nodes(String),
    #[error("counting took longer than {} s", DEADLINE.as_secs())]
    TimedOut,
    #[error("{0}")]
    Down(#[from] crate::server::store::breaker::Down),
}

/// The instance's totals, now.
pub async fn load(stores: &Stores) -> Result<InstanceTotals, InstanceError> {
    let counted = async {
        let counted = sqlx::query_as::<_, (i64, i64, i64)>(SQL).fetch_one(&stores.remote);
        tokio::time::timeout(DEADLINE, counted)
            .await
            .map_err(|_| InstanceError::TimedOut)?
            .map_err(|e| InstanceError::Nodes(e.to_string()))
    };
    let (listeners, plays, minutes) =
        crate::server::listening::on_every_node(stores, counted, |e| {
            !matches!(e, InstanceError::Down(_))
        })
        .await?;
    Ok(InstanceTotals {
        listeners,
        plays,
        minutes,
    })
}
