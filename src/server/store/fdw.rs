//! postgres_fdw from `main` to the analytics nodes, owned by the app: [`ensure`] creates
//! what is missing and corrects what differs, and changes nothing when all is as
//! configured.
//!
//! On `main`: extension `postgres_fdw`; per node a foreign server ([`SERVER`] for
//! `analytics`, `analytics_2_node` for `analytics-2`) at the address `main`'s server
//! process reaches it by (`ANALYTICS_FDW_HOST` / `_PORT`, `ANALYTICS_2_FDW_...`), and a
//! user mapping for the app's role (the node URL's user and password); the placement of
//! each of the [`PARTITIONS`] partitions on a node (`shard_placements`, filled on first
//! run); and in schema [`SCHEMA`], per table in [`TABLES`], a table `PARTITION BY HASH
//! (spotify_id)` whose partitions are foreign tables, partition P on the server of the node
//! it is placed on, pointing at that node's leaf `<table>_pP`. The nodes partition the same
//! tables the same way (migrations/analytics/20261129000010_shards.sql), so each leaf
//! holds exactly the rows main's partition stands for. A table whose columns changed on
//! the nodes is created again; a partition on the wrong server is pointed at the right one.
//!
//! Foreign servers are `async_capable`, so a query over every partition (an instance-wide
//! aggregate) scans the nodes concurrently, and `batch_size` 1000, so an `INSERT` through
//! main sends rows to a node in batches.
//!
//! The server's options are chosen, not left to defaults (docs/ARCHITECTURE.md says why):
//! - `connect_timeout` 5 s: libpq waits forever for a host that does not answer; a panel
//!   over a node that is down must fail in seconds, not hang its page.
//! - `fetch_size` 1000: panels aggregate on the remote side and get a few hundred rows
//!   back, but the account export and the Distributed query page read plays row by row;
//!   1000 rows per round trip instead of 100 cuts those round trips tenfold.
//! - `use_remote_estimate` false: true costs a remote `EXPLAIN` per foreign scan while
//!   planning (0.5 ms for one listener's query, ~12 ms for one over all eight partitions,
//!   measured on loopback), and a plan could then not be shown while a node is down.
//!   Instead main keeps statistics of its foreign partitions ([`analyze`], after the set-up
//!   and hourly): without any, the planner takes a listener's partition for a few rows and
//!   groups them on main (a `count(*)` fetched every row of the listener); with them it
//!   sends the aggregate. The plan tests check the push-down stays.
//! - `fdw_tuple_cost` 0.2: what each row fetched from a node costs the planner.
//!   PostgreSQL 15's default (0.01) makes shipping rows look nearly free, so grouping on
//!   main wins ties it should lose; PostgreSQL 17 raised the default to 0.2 for this reason.
//! - `options` `-c cursor_tuple_fraction=1` for the sessions main opens on a node:
//!   postgres_fdw reads every remote query through a cursor, and a cursor is planned for
//!   its first 10% of rows (the default 0.1), so a node answered a listener's top artists
//!   by walking the artist index of their whole partition for a quickly first group
//!   (110 ms for a 200,000-play listener) instead of reading their 5,000 plays of the
//!   window by the primary key (4.5 ms). main always reads a remote result to its end.
//! - `extensions` empty: the panels filter and group on plain columns and use only
//!   built-in aggregates, which ship without it; nothing of an extension is to be run
//!   remotely.
//!
//! The password never appears in a statement's text (so in no log of either server's or
//! this process's): it goes to the server as a bound parameter into a transaction-local
//! setting, which a `DO` block reads. Concurrent processes serialise on an advisory lock.

use crate::server::config::{expose, FdwTarget};
use sqlx::{PgConnection, PgPool, Row};
use std::collections::BTreeMap;

/// The foreign server on `main` for the first node, `analytics`.
pub const SERVER: &str = "analytics_node";
/// The schema on `main` that holds the partitioned tables over the nodes.
pub const SCHEMA: &str = "analytics";
/// Hash partitions of every table in [`TABLES`], on main and on every node.
pub const PARTITIONS: i16 = 8;
/// The tables keyed by listener (schema `public` of each node), partitioned the same way
/// on main and on the nodes. `plays` (every play) and its rollups (kept by triggers on
/// the nodes; see migrations/analytics/20261129000004_rollups.sql), which the panels read.
pub const TABLES: &[&str] = &[
    "plays",
    "plays_by_hour",
    "plays_by_track",
    "plays_by_artist",
    "plays_by_listener",
    "listener_zones",
];

/// Transaction-scoped advisory lock key: one set-up at a time across processes.
const LOCK_KEY: i64 = 0x7065_7266_6477; // "perfdw"

/// One node as [`ensure`] sets it up.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// `analytics`, `analytics-2`: what `shard_placements` names.
    pub node: &'static str,
    pub server: &'static str,
    /// This process's pool to the node; `None` while it is unreachable.
    pub pool: Option<&'a PgPool>,
    pub target: &'a FdwTarget,
}

impl<'a> Link<'a> {
    /// The first node, reached by `pool`.
    pub fn first(pool: &'a PgPool, target: &'a FdwTarget) -> Self {
        Link {
            node: "analytics",
            server: SERVER,
            pool: Some(pool),
            target,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FdwError {
    #[error(
        "the role of DATABASE_URL may not create extension postgres_fdw on main; \
         run `CREATE EXTENSION postgres_fdw;` there as a superuser once"
    )]
    ExtensionPrivilege,
    #[error(
        "postgres_fdw is not installed on main's PostgreSQL server \
         (Debian: package postgresql-contrib)"
    )]
    ExtensionMissing,
    #[error(
        "main could not reach the analytics node {node} at {host}:{port} \
         ({prefix}_FDW_HOST / {prefix}_FDW_PORT: the address as main's server sees it): {reason}"
    )]
    Unreachable {
        node: &'static str,
        prefix: &'static str,
        host: String,
        port: u16,
        reason: String,
    },
    #[error("remote table {0} does not exist on the analytics node (its migrations have not run)")]
    RemoteTableMissing(String),
    #[error("no analytics node has its migrations applied yet")]
    NoNode,
    #[error(
        "partition {part} of the plays is placed on {node}, which is not configured \
         (set {prefix}_DATABASE_URL, or move the partition back with `personalify shards move`)"
    )]
    NodeNotConfigured {
        part: i16,
        node: String,
        prefix: &'static str,
    },
    #[error(
        "the partitions cannot be placed while {0} is unreachable (a partition's rows may be there)"
    )]
    PlacementUnknown(&'static str),
    #[error("postgres_fdw set-up on main failed: {0}")]
    Sql(String),
}

impl From<sqlx::Error> for FdwError {
    fn from(e: sqlx::Error) -> Self {
        FdwError::Sql(e.to_string())
    }
}

/// What one [`ensure`] changed; empty when everything was already as configured.
/// Option names only, never values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub created_extension: bool,
    pub created_server: bool,
    pub server_options: Vec<String>,
    pub created_mapping: bool,
    pub mapping_options: Vec<String>,
    /// Partitions placed on a node for the first time, as `P -> node`.
    pub placed: Vec<String>,
    pub imported: Vec<String>,
    pub reimported: Vec<String>,
    /// Foreign partitions created or pointed at another node, as `table_pN -> server`.
    pub partitions: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// The server options [`ensure`] sets, in order.
pub fn server_options(target: &FdwTarget) -> Vec<(&'static str, String)> {
    vec![
        ("host", target.host.clone()),
        ("port", target.port.to_string()),
        ("dbname", target.dbname.clone()),
        ("connect_timeout", "5".into()),
        ("fetch_size", "1000".into()),
        ("use_remote_estimate", "false".into()),
        ("fdw_tuple_cost", "0.2".into()),
        ("extensions", String::new()),
        ("async_capable", "true".into()),
        ("batch_size", "1000".into()),
        ("options", "-c cursor_tuple_fraction=1".into()),
    ]
}

/// Make `main`'s postgres_fdw link to the analytics nodes what `nodes` say (the first is
/// `analytics`). Each node's pool, when it has one, is used to read the tables' columns
/// and, on the first run only, to find which node holds a partition's rows.
pub async fn ensure(main: &PgPool, nodes: &[Link<'_>]) -> Result<Changes, FdwError> {
    let source = nodes.iter().find_map(|n| n.pool).ok_or(FdwError::NoNode)?;
    let remote = remote_columns(source).await?;
    let mut tx = main.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::default();

    let installed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgres_fdw')",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !installed {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
            .execute(&mut *tx)
            .await
            .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
                Some(code) if code == "42501" => FdwError::ExtensionPrivilege,
                Some(code) if code == "58P01" || code == "0A000" => FdwError::ExtensionMissing,
                _ => FdwError::from(e),
            })?;
        changes.created_extension = true;
    }

    for (i, node) in nodes.iter().enumerate() {
        let mut node_changes = Changes::default();
        ensure_server(&mut tx, node.server, node.target, &mut node_changes).await?;
        ensure_mapping(&mut tx, node.server, node.target, &mut node_changes).await?;
        // The first node's option names as they are; another's prefixed with its name.
        let name = |key: String| {
            if i == 0 {
                key
            } else {
                format!("{}.{key}", node.node)
            }
        };
        changes.created_server |= node_changes.created_server;
        changes.created_mapping |= node_changes.created_mapping;
        changes
            .server_options
            .extend(node_changes.server_options.into_iter().map(name));
        changes
            .mapping_options
            .extend(node_changes.mapping_options.into_iter().map(name));
    }
    let placements = ensure_placements(&mut tx, nodes, &mut changes).await?;
    ensure_tables(&mut tx, nodes, &remote, &placements, &mut changes).await?;
    tx.commit().await?;
    Ok(changes)
}

/// Refresh main's statistics of its partitioned tables over the nodes (postgres_fdw
/// samples each foreign partition), which the planner needs to see that grouping a
/// listener's rows on their node beats fetching them. A node that is down fails it; the
/// statistics it had stay.
pub async fn analyze(main: &PgPool) -> Result<(), sqlx::Error> {
    for table in TABLES {
        sqlx::query(&format!("ANALYZE {SCHEMA}.{table}"))
            .execute(main)
            .await?;
    }
    Ok(())
}

/// How far a node's count of a leaf may move from what main's statistics say before the
/// leaf is analyzed again: 50 rows plus a tenth, autovacuum's defaults for ANALYZE
/// (autovacuum never analyzes foreign tables, so the app does it for them).
const STALE_ROWS: f64 = 50.0;
const STALE_FRACTION: f64 = 0.1;
/// A node's count of its leaves must come back within this, or that node is skipped.
const COUNT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Analyze, on main, each foreign partition whose rows on its node have moved well away
/// from main's statistics of it ([`STALE_ROWS`], [`STALE_FRACTION`]), and none else:
/// postgres_fdw on PG 15 reads a whole partition to sample it, so this analyzes only
/// what changed. A partition never analyzed and still empty is left so: the planner's
/// guess for a table it knows nothing of favours grouping on the node, where "known
/// empty" (one row) makes grouping here and there a tie — which is how a fresh instance
/// came to ship a listener's rollup rows to main to count them. A node that is down or
/// slow is skipped (its statistics stay); the others go on. Returns the partitions
/// analyzed.
pub async fn refresh_statistics(
    main: &PgPool,
    nodes: &[Link<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let known: Vec<(String, f32)> = sqlx::query_as(
        "SELECT c.relname::text, c.reltuples FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind = 'f'",
    )
    .bind(SCHEMA)
    .fetch_all(main)
    .await?;
    let known: BTreeMap<String, f64> = known
        .into_iter()
        .map(|(leaf, rows)| (leaf, f64::from(rows)))
        .collect();
    let placements: Vec<(i16, String)> =
        sqlx::query_as("SELECT part, node FROM shard_placements ORDER BY part")
            .fetch_all(main)
            .await?;
    let mut stale = Vec::new();
    for node in nodes {
        let Some(pool) = node.pool else { continue };
        let leaves: Vec<String> = placements
            .iter()
            .filter(|(_, n)| n == node.node)
            .flat_map(|(part, _)| TABLES.iter().map(move |t| format!("{t}_p{part}")))
            .collect();
        if leaves.is_empty() {
            continue;
        }
        let counted = sqlx::query_as::<_, (String, i64)>(
            "SELECT relname::text, n_live_tup FROM pg_stat_user_tables
              WHERE schemaname = 'public' AND relname = ANY($1)",
        )
        .bind(&leaves)
        .fetch_all(pool);
        let counts = match tokio::time::timeout(COUNT_DEADLINE, counted).await {
            Ok(Ok(counts)) => counts,
            Ok(Err(e)) => {
                tracing::debug!(node = node.node, error = %e, "statistics: node skipped");
                continue;
            }
            Err(_) => {
                tracing::debug!(
                    node = node.node,
                    "statistics: node skipped (no answer in 5 s)"
                );
                continue;
            }
        };
        for (leaf, live) in counts {
            let live = live as f64;
            let Some(&rows) = known.get(&leaf) else {
                continue;
            };
            let due = if rows < 0.0 {
                live > 0.0
            } else {
                (live - rows).abs() > STALE_ROWS + STALE_FRACTION * rows
            };
            if due {
                stale.push(leaf);
            }
        }
    }
    for leaf in &stale {
        sqlx::query(&format!("ANALYZE {SCHEMA}.{leaf}"))
            .execute(main)
            .await?;
    }
    Ok(stale)
}

/// Ask each node holding a partition for one row through main, so a wrong address or
/// password is named at start-up rather than by the first panel. Run after [`ensure`]:
/// what it set up stays either way (a node that is down does not undo the others' link).
pub async fn check_reachable(main: &PgPool, nodes: &[Link<'_>]) -> Result<(), FdwError> {
    let placements: Vec<(i16, String)> =
        sqlx::query_as("SELECT part, node FROM shard_placements ORDER BY part")
            .fetch_all(main)
            .await?;
    for node in nodes {
        let Some((part, _)) = placements.iter().find(|(_, n)| n == node.node) else {
            continue;
        };
        sqlx::query(&format!(
            "SELECT 1 FROM {SCHEMA}.listener_zones_p{part} LIMIT 1"
        ))
        .fetch_optional(main)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
            // 08001 / 08006: postgres_fdw could not connect (wrong host or port, node down).
            Some(code) if code.starts_with("08") => FdwError::Unreachable {
                node: node.node,
                prefix: prefix_of(node.node),
                host: node.target.host.clone(),
                port: node.target.port,
                reason: e
                    .as_database_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default(),
            },
            _ => FdwError::from(e),
        })?;
    }
    Ok(())
}

/// The prefix of the variables that configure a node (`{prefix}_DATABASE_URL`, …).
fn prefix_of(node: &str) -> &'static str {
    match node {
        "analytics" => "ANALYTICS",
        _ => "ANALYTICS_2",
    }
}

/// Each partition's node (index = partition), placing the partitions not placed yet: on
/// the node whose leaves already hold rows of it (an instance that had one node), else
/// partition P on node P mod the number of nodes.
async fn ensure_placements(
    tx: &mut PgConnection,
    nodes: &[Link<'_>],
    changes: &mut Changes,
) -> Result<Vec<&'static str>, FdwError> {
    let placed: BTreeMap<i16, String> =
        sqlx::query_as::<_, (i16, String)>("SELECT part, node FROM shard_placements")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let mut out = Vec::with_capacity(PARTITIONS as usize);
    for part in 0..PARTITIONS {
        let node = match placed.get(&part) {
            Some(name) => nodes
                .iter()
                .find(|n| n.node == name)
                .map(|n| n.node)
                .ok_or_else(|| FdwError::NodeNotConfigured {
                    part,
                    node: name.clone(),
                    prefix: prefix_of(name),
                })?,
            None => {
                let mut holder = None;
                for node in nodes {
                    let pool = node.pool.ok_or(FdwError::PlacementUnknown(node.node))?;
                    let has_rows: bool = sqlx::query_scalar(&format!(
                        "SELECT EXISTS (SELECT 1 FROM plays_p{part}) OR EXISTS (SELECT 1 FROM listener_zones_p{part})"
                    ))
                    .fetch_one(pool)
                    .await
                    .map_err(|_| FdwError::PlacementUnknown(node.node))?;
                    if has_rows && holder.is_none() {
                        holder = Some(node.node);
                    }
                }
                let node = holder.unwrap_or(nodes[part as usize % nodes.len()].node);
                sqlx::query(
                    "INSERT INTO shard_placements (part, node) VALUES ($1, $2)
                     ON CONFLICT (part) DO NOTHING",
                )
                .bind(part)
                .bind(node)
                .execute(&mut *tx)
                .await?;
                changes.placed.push(format!("{part} -> {node}"));
                node
            }
        };
        out.push(node);
    }
    Ok(out)
}

/// `key=value` option strings (pg_foreign_server.srvoptions, umoptions) as a map.
fn parse_options(raw: Option<Vec<String>>) -> BTreeMap<String, String> {
    raw.unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

async fn ensure_server(
    tx: &mut PgConnection,
    server: &str,
    target: &FdwTarget,
    changes: &mut Changes,
) -> Result<(), FdwError> {
    let wanted = server_options(target);
    let current: Option<Option<Vec<String>>> =
        sqlx::query_scalar("SELECT srvoptions FROM pg_foreign_server WHERE srvname = $1")
            .bind(server)
            .fetch_optional(&mut *tx)
            .await?;
    match current {
        None => {
            let options: Vec<String> = wanted
                .iter()
                .map(|(k, v)| format!("{k} {}", literal(v)))
                .collect();
            sqlx::query(&format!(
                "CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({})",
                options.join(", ")
            ))
            .execute(&mut *tx)
            .await?;
            changes.created_server = true;
        }
        Some(options) => {
            let current = parse_options(options);
            let mut edits = Vec::new();
            for (key, value) in &wanted {
                let verb = match current.get(*key) {
                    Some(v) if v == value => continue,
                    Some(_) => "SET",
                    None => "ADD",
                };
                edits.push(format!("{verb} {key} {}", literal(value)));
                changes.server_options.push(key.to_string());
            }
            if !edits.is_empty() {
                sqlx::query(&format!(
                    "ALTER SERVER {server} OPTIONS ({})",
                    edits.join(", ")
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(())
}

async fn ensure_mapping(
    tx: &mut PgConnection,
    server: &str,
    target: &FdwTarget,
    changes: &mut Changes,
) -> Result<(), FdwError> {
    let current: Option<Option<Vec<String>>> = sqlx::query_scalar(
        "SELECT umoptions FROM pg_user_mappings WHERE srvname = $1 AND usename = current_user",
    )
    .bind(server)
    .fetch_optional(&mut *tx)
    .await?;
    // The user and password travel as bound parameters into transaction-local settings;
    // the DDL that needs them as literals is built on the server by format(%L). So a
    // server logging DDL or writes (log_statement = ddl / mod) logs no password; one
    // logging every statement with its parameters would, unless told not to, which a
    // superuser may do for this transaction.
    sqlx::query(
        "SELECT set_config('log_parameter_max_length', '0', true),
                set_config('log_parameter_max_length_on_error', '0', true)
          WHERE current_setting('is_superuser') = 'on'",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "SELECT set_config('personalify.fdw_user', $1, true),
                set_config('personalify.fdw_password', $2, true)",
    )
    .bind(&target.user)
    .bind(expose(&target.password))
    .execute(&mut *tx)
    .await?;
    let statement = match current {
        None => {
            changes.created_mapping = true;
            format!(
                "format('CREATE USER MAPPING FOR CURRENT_USER SERVER {server} \
                 OPTIONS (user %L, password %L)', \
                 current_setting('personalify.fdw_user'), \
                 current_setting('personalify.fdw_password'))"
            )
        }
        Some(options) => {
            let current = parse_options(options);
            let mut edits = Vec::new();
            for (key, value) in [
                ("user", target.user.as_str()),
                ("password", expose(&target.password)),
            ] {
                let setting = format!("current_setting('personalify.fdw_{key}')");
                match current.get(key) {
                    Some(v) if v == value => continue,
                    Some(_) => edits.push(format!("'SET {key} ' || quote_literal({setting})")),
                    None => edits.push(format!("'ADD {key} ' || quote_literal({setting})")),
                }
                changes.mapping_options.push(key.to_string());
            }
            if edits.is_empty() {
                String::new()
            } else {
                format!(
                    "'ALTER USER MAPPING FOR CURRENT_USER SERVER {server} OPTIONS (' || {} || ')'",
                    edits.join(" || ', ' || ")
                )
            }
        }
    };
    if !statement.is_empty() {
        sqlx::query(&format!("DO $$ BEGIN EXECUTE {statement}; END $$"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("SELECT set_config('personalify.fdw_password', '', true)")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Each remote table's columns, as `name type [not null]` joined: what a foreign table
/// imported from it must show.
async fn remote_columns(analytics: &PgPool) -> Result<BTreeMap<String, String>, FdwError> {
    let rows = sqlx::query(COLUMNS_SQL)
        .bind("public")
        .bind(TABLES)
        .bind(["p"])
        .fetch_all(analytics)
        .await?;
    let columns: BTreeMap<String, String> = rows
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    if let Some(missing) = TABLES.iter().find(|t| !columns.contains_key(**t)) {
        return Err(FdwError::RemoteTableMissing(missing.to_string()));
    }
    Ok(columns)
}

/// Per table: its column definitions as `CREATE TABLE` takes them (a generated column
/// with its expression: `plays.played_hour`, which an insert through main computes).
const COLUMNS_SQL: &str = "
    SELECT c.relname::text,
           string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                      || CASE WHEN a.attgenerated = 's'
                              THEN ' GENERATED ALWAYS AS (' || pg_get_expr(d.adbin, d.adrelid) || ') STORED'
                              ELSE '' END
                      || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                      ', ' ORDER BY a.attnum)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = ANY($3)
     GROUP BY c.relname";

async fn ensure_tables(
    tx: &mut PgConnection,
    nodes: &[Link<'_>],
    remote: &BTreeMap<String, String>,
    placements: &[&'static str],
    changes: &mut Changes,
) -> Result<(), FdwError> {
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        .execute(&mut *tx)
        .await?;
    // main's partitioned tables ('p'); an earlier version's plain foreign tables ('f') are
    // replaced.
    let local: BTreeMap<String, String> = sqlx::query(COLUMNS_SQL)
        .bind(SCHEMA)
        .bind(TABLES)
        .bind(["p"])
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    let kinds: BTreeMap<String, String> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = ANY($2)",
    )
    .bind(SCHEMA)
    .bind(TABLES)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    for table in TABLES {
        let columns = remote
            .get(*table)
            .ok_or_else(|| FdwError::RemoteTableMissing(table.to_string()))?;
        let fresh = match (local.get(*table), kinds.get(*table).map(String::as_str)) {
            (Some(here), _) if here == columns => false,
            (_, Some(kind)) => {
                let what = if kind == "f" {
                    "FOREIGN TABLE"
                } else {
                    "TABLE"
                };
                sqlx::query(&format!("DROP {what} {SCHEMA}.{table} CASCADE"))
                    .execute(&mut *tx)
                    .await?;
                changes.reimported.push(table.to_string());
                true
            }
            (_, None) => {
                changes.imported.push(table.to_string());
                true
            }
        };
        if fresh {
            sqlx::query(&format!(
                "CREATE TABLE {SCHEMA}.{table} ({columns}) PARTITION BY HASH (spotify_id)"
            ))
            .execute(&mut *tx)
            .await?;
        }
        let current: BTreeMap<String, String> = sqlx::query_as(
            "SELECT c.relname::text, s.srvname::text
               FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_foreign_table f ON f.ftrelid = c.oid
               JOIN pg_foreign_server s ON s.oid = f.ftserver
              WHERE i.inhparent = format('%I.%I', $1::text, $2::text)::regclass",
        )
        .bind(SCHEMA)
        .bind(*table)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        for (part, node) in placements.iter().enumerate() {
            let server = nodes
                .iter()
                .find(|n| n.node == *node)
                .map(|n| n.server)
                .unwrap_or(SERVER);
            let leaf = format!("{table}_p{part}");
            match current.get(&leaf) {
                Some(on) if on == server => continue,
                Some(_) => {
                    sqlx::query(&format!("DROP FOREIGN TABLE {SCHEMA}.{leaf}"))
                        .execute(&mut *tx)
                        .await?;
                }
                None => {}
            }
            create_partition(&mut *tx, table, part as i16, server).await?;
            changes.partitions.push(format!("{leaf} -> {server}"));
        }
    }
    Ok(())
}

/// Partition `part` of main's `table`: a foreign table on `server`, reading that node's leaf.
pub async fn create_partition(
    tx: &mut PgConnection,
    table: &str,
    part: i16,
    server: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "CREATE FOREIGN TABLE {SCHEMA}.{table}_p{part} PARTITION OF {SCHEMA}.{table}
           FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {part})
           SERVER {server} OPTIONS (schema_name 'public', table_name '{table}_p{part}')"
    ))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
