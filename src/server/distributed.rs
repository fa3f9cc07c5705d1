//! The Distributed query page's data: every cross-node query of the Listening page
//! ([`listening::QUERIES`]) run for the signed-in person, its first rows, and its
//! `EXPLAIN (VERBOSE)` from `main` (whose `Remote SQL:` lines are what the analytics node
//! is sent); the foreign server's options and the foreign tables' columns.
//!
//! The instance-wide query ([`listening::INSTANCE`]) reads every play: its result is kept
//! [`INSTANCE_KEPT`] and shared ([`InstanceRuns`]), and it runs once at a time.
//!
//! A plan needs no remote connection (postgres_fdw does not connect for a plain `EXPLAIN`
//! without remote estimates), so with the analytics node down the plans still show and
//! each result says it is unavailable.

use super::listening::{self, arguments, Args, NamedQuery, DEADLINE};
use super::store::breaker::Down;
use super::store::pg::Analytics;
use super::store::{fdw, Stores};
use crate::domain::distributed::{DistributedView, ForeignTable, QueryRun};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Column, PgPool, Row, TypeInfo};
use std::time::{Duration, Instant};

/// Rows of each result shown.
pub const ROWS_SHOWN: usize = 10;
/// The instance-wide query reads every play on every node: its result is kept this long and
/// shared by everyone who opens the page.
pub const INSTANCE_KEPT: Duration = Duration::from_secs(60);

/// The instance-wide query's last result and when it was counted; its lock is held while it
/// runs, so it runs once at a time in this process, and those who come meanwhile get that
/// run's result.
#[derive(Default)]
pub struct InstanceRuns(tokio::sync::Mutex<Option<(Instant, QueryRun)>>);

impl InstanceRuns {
    /// The kept result if it is recent, else a new run (kept if it succeeded).
    async fn get(&self, remote: &PgPool, analytics: &Analytics, args: &Args<'_>) -> QueryRun {
        let Ok(mut kept) = tokio::time::timeout(DEADLINE, self.0.lock()).await else {
            let mut busy = blank(listening::INSTANCE, Vec::new());
            busy.error = Some(
                "The instance-wide count is being made for someone else; reload in a moment."
                    .into(),
            );
            return busy;
        };
        if let Some((at, run)) = kept.as_ref().filter(|(at, _)| at.elapsed() < INSTANCE_KEPT) {
            let mut run = run.clone();
            run.counted_secs_ago = Some(at.elapsed().as_secs());
            return run;
        }
        let run = run(remote, listening::INSTANCE, args, analytics.down()).await;
        if run.error.is_none() {
            *kept = Some((Instant::now(), run.clone()));
        } else if run.ms.is_none() && analytics.down().is_none() {
            // It missed its deadline on some node: find out which.
            let analytics = analytics.clone();
            tokio::spawn(async move { analytics.probe_all().await });
        }
        run
    }
}

pub async fn load(
    stores: &Stores,
    instance: &InstanceRuns,
    spotify_id: &str,
) -> Result<DistributedView, sqlx::Error> {
    let range = crate::domain::TimeRange::ShortTerm;
    let since = Utc::now() - listening::window(range);
    let server = server_options(&stores.main).await?;
    let tables = foreign_tables(&stores.main).await?;
    let placements: Vec<(i16, String)> =
        sqlx::query_as("SELECT part, node FROM shard_placements ORDER BY part")
            .fetch_all(&stores.main)
            .await?;
    let your_partition = crate::server::shards::part_of(&stores.main, spotify_id)
        .await
        .ok();
    // Their node marked down: the plans show, the queries are not sent.
    let node = crate::server::shards::node_of(&stores.analytics, &stores.main, spotify_id)
        .await
        .ok();
    let down = node.and_then(|n| n.breaker.check().err());
    // The week grid's first day is in the listener's zone; with the node down, UTC's.
    let zone = match down {
        Some(_) => None,
        None => {
            let asked =
                tokio::time::timeout(DEADLINE, listening::zone(&stores.remote, spotify_id)).await;
            if asked.is_err() {
                if let Some(node) = node {
                    node.breaker.trip();
                }
            }
            asked.ok().and_then(Result::ok)
        }
    };
    // (Marked down by that lookup, the queries after it need not wait too.)
    let down = node.and_then(|n| n.breaker.check().err());
    let (time_zone, today) = match zone {
        Some(zone) => (zone.name, zone.today),
        None => ("UTC".to_string(), Utc::now().date_naive()),
    };
    let from_day = listening::from_day(today, range);
    // Concurrently: with the node stalled, each waits out its deadline at the same time.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, query) in listening::QUERIES.into_iter().enumerate() {
        let (remote, spotify_id, time_zone) = (
            stores.remote.clone(),
            spotify_id.to_string(),
            time_zone.clone(),
        );
        tasks.spawn(async move {
            let args = Args {
                spotify_id: &spotify_id,
                since,
                from_day,
                artist: "",
                time_zone: &time_zone,
            };
            (i, run(&remote, query, &args, down).await)
        });
    }
    let args = Args {
        spotify_id,
        since,
        from_day,
        artist: "",
        time_zone: &time_zone,
    };
    let (mut queries, everyone) = tokio::join!(
        tasks.join_all(),
        instance.get(&stores.remote, &stores.analytics, &args)
    );
    queries.sort_by_key(|(i, _)| *i);
    queries.push((queries.len(), everyone));
    let queries = queries
        .into_iter()
        .map(|(_, mut q)| {
            q.ran_on = crate::domain::distributed::ran_on(&q.plan, &placements);
            q
        })
        .collect();
    Ok(DistributedView {
        server,
        tables,
        placements,
        your_partition,
        queries,
    })
}

/// `query`'s plan (which needs no node) and, unless a node it reads is marked `down`, its
/// result.
async fn run(remote: &PgPool, query: NamedQuery, args: &Args<'_>, down: Option<Down>) -> QueryRun {
    let (plan_args, params) = arguments(query, args);
    let explain = format!("EXPLAIN (VERBOSE, COSTS OFF) {}", query.sql);
    let plan = tokio::time::timeout(
        DEADLINE,
        sqlx::query_scalar_with::<_, String, _>(&explain, plan_args).fetch_all(remote),
    )
    .await;
    let plan = match plan {
        Ok(Ok(lines)) => lines,
        Ok(Err(e)) => {
            tracing::warn!(query = query.name, error = %e, "EXPLAIN failed");
            vec!["(the plan is unavailable: Personalify's database did not answer)".into()]
        }
        Err(_) => vec!["(the plan is unavailable: no answer in time)".into()],
    };
    if let Some(down) = down {
        let mut out = blank(query, plan);
        out.params = params;
        out.error = Some(format!(
            "{down} right now, so this query was not sent; its plan is still shown."
        ));
        return out;
    }
    let (args, _) = arguments(query, args);
    let started = Instant::now();
    let rows = tokio::time::timeout(
        DEADLINE,
        sqlx::query_with(query.sql, args).fetch_all(remote),
    )
    .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut out = blank(query, plan);
    out.params = params;
    match rows {
        Ok(Ok(rows)) => {
            out.columns = rows
                .first()
                .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
                .unwrap_or_default();
            out.row_count = rows.len();
            out.rows = rows.iter().take(ROWS_SHOWN).map(cells).collect();
            out.ms = Some((ms * 10.0).round() / 10.0);
        }
        Ok(Err(e)) => {
            tracing::warn!(query = query.name, error = %e, "distributed query failed");
            out.error = Some(
                "The analytics node did not answer, so this query could not run; its plan is \
                 still shown."
                    .into(),
            );
        }
        Err(_) => {
            out.error = Some(format!(
                "No answer from the analytics node within {} s.",
                DEADLINE.as_secs()
            ))
        }
    }
    out
}

/// `query` with no result yet.
fn blank(query: NamedQuery, plan: Vec<String>) -> QueryRun {
    QueryRun {
        name: query.name.into(),
        title: query.title.into(),
        about: query.about.into(),
        sql: query.sql.into(),
        params: Vec::new(),
        columns: Vec::new(),
        rows: Vec::new(),
        row_count: 0,
        ms: None,
        error: None,
        plan,
        ran_on: Vec::new(),
        counted_secs_ago: None,
    }
}

/// A row as text, whatever the columns' types.
fn cells(row: &PgRow) -> Vec<String> {
    (0..row.columns().len())
        .map(|i| {
            let kind = row.columns()[i].type_info().name().to_string();
            let text = match kind.as_str() {
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)
                    .map(|v| v.map(|v| v.to_string())),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)
                    .map(|v| v.map(|v| v.to_string())),
                "INT8" => row
                    .try_get::<Option<i64>, _>(i)
                    .map(|v| v.map(|v| v.to_string())),
                "TIMESTAMPTZ" => row
                    .try_get::<Option<DateTime<Utc>>, _>(i)
                    .map(|v| v.map(|v| v.format("%Y-%m-%d %H:%M:%S UTC").to_string())),
                "DATE" => row
                    .try_get::<Option<NaiveDate>, _>(i)
                    .map(|v| v.map(|v| v.to_string())),
                _ => row.try_get::<Option<String>, _>(i),
            };
            match text {
                Ok(Some(v)) => v,
                Ok(None) => "NULL".into(),
                Err(_) => format!("({kind})"),
            }
        })
        .collect()
}

/// The foreign server's options, in the order `main` keeps them.
async fn server_options(main: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    let options: Vec<String> =
        sqlx::query_scalar("SELECT unnest(srvoptions) FROM pg_foreign_server WHERE srvname = $1")
            .bind(fdw::SERVER)
            .fetch_all(main)
            .await?;
    Ok(options
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect())
}

/// main's partitioned tables over the nodes (their partitions are the foreign tables).
async fn foreign_tables(main: &PgPool) -> Result<Vec<ForeignTable>, sqlx::Error> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text,
                array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                          ORDER BY a.attnum)
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE n.nspname = $1 AND c.relkind = 'p'
          GROUP BY c.relname ORDER BY 1",
    )
    .bind(fdw::SCHEMA)
    .fetch_all(main)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, columns)| ForeignTable {
            name: format!("{}.{name}", fdw::SCHEMA),
            columns,
        })
        .collect())
}
