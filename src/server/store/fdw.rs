//! postgres_fdw from `main` to the analytics node, owned by the app: [`ensure`] creates
//! what is missing and corrects what differs, and changes nothing when all is as
//! configured.
//!
//! On `main`: extension `postgres_fdw`, foreign server [`SERVER`] at the address `main`'s
//! server process reaches the analytics node by (`ANALYTICS_FDW_HOST` / `_PORT`), a user
//! mapping for the app's role (the analytics URL's user and password), and in schema
//! [`SCHEMA`] one foreign table per remote table in [`TABLES`] (`IMPORT FOREIGN SCHEMA ...
//! LIMIT TO`). A remote table whose columns changed is imported again; a new one appears
//! once its migration has run on the analytics node.
//!
//! The server's options are chosen, not left to defaults (docs/ARCHITECTURE.md says why):
//! - `connect_timeout` 5 s: libpq waits forever for a host that does not answer; a panel
//!   over a node that is down must fail in seconds, not hang its page.
//! - `fetch_size` 1000: panels aggregate on the remote side and get a few hundred rows
//!   back, but the account export and the Distributed query page read plays row by row;
//!   1000 rows per round trip instead of 100 cuts those round trips tenfold.
//! - `use_remote_estimate` false: true costs a remote `EXPLAIN` per foreign table in
//!   every query plan, for queries whose shape (one foreign table, filtered by listener,
//!   grouped) leaves the planner nothing to choose; a test checks the push-down instead.
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

/// The foreign server on `main`.
pub const SERVER: &str = "analytics_node";
/// The schema on `main` that holds the foreign tables.
pub const SCHEMA: &str = "analytics";
/// The remote tables (schema `public` of the analytics database) imported into [`SCHEMA`].
/// `plays` (every play) and its rollups (kept by triggers on the analytics node; see
/// migrations/analytics/20261129000004_rollups.sql), which the panels read.
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
        "main could not reach the analytics node at {host}:{port} \
         (ANALYTICS_FDW_HOST / ANALYTICS_FDW_PORT: the address as main's server sees it): {reason}"
    )]
    Unreachable {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("remote table {0} does not exist on the analytics node (its migrations have not run)")]
    RemoteTableMissing(String),
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
    pub imported: Vec<String>,
    pub reimported: Vec<String>,
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
        ("extensions", String::new()),
    ]
}

/// Make `main`'s postgres_fdw link to the analytics node what `target` says. `analytics`
/// is the app's own pool to the node, used to read the remote tables' columns.
pub async fn ensure(
    main: &PgPool,
    analytics: &PgPool,
    target: &FdwTarget,
) -> Result<Changes, FdwError> {
    let remote = remote_columns(analytics).await?;
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

    ensure_server(&mut tx, target, &mut changes).await?;
    ensure_mapping(&mut tx, target, &mut changes).await?;
    ensure_tables(&mut tx, target, &remote, &mut changes).await?;
    tx.commit().await?;
    Ok(changes)
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
    target: &FdwTarget,
    changes: &mut Changes,
) -> Result<(), FdwError> {
    let wanted = server_options(target);
    let current: Option<Option<Vec<String>>> =
        sqlx::query_scalar("SELECT srvoptions FROM pg_foreign_server WHERE srvname = $1")
            .bind(SERVER)
            .fetch_optional(&mut *tx)
            .await?;
    match current {
        None => {
            let options: Vec<String> = wanted
                .iter()
                .map(|(k, v)| format!("{k} {}", literal(v)))
                .collect();
            sqlx::query(&format!(
                "CREATE SERVER {SERVER} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({})",
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
                    "ALTER SERVER {SERVER} OPTIONS ({})",
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
    target: &FdwTarget,
    changes: &mut Changes,
) -> Result<(), FdwError> {
    let current: Option<Option<Vec<String>>> = sqlx::query_scalar(
        "SELECT umoptions FROM pg_user_mappings WHERE srvname = $1 AND usename = current_user",
    )
    .bind(SERVER)
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
                "format('CREATE USER MAPPING FOR CURRENT_USER SERVER {SERVER} \
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
                    "'ALTER USER MAPPING FOR CURRENT_USER SERVER {SERVER} OPTIONS (' || {} || ')'",
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

const COLUMNS_SQL: &str = "
    SELECT c.relname::text,
           string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                      || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                      ', ' ORDER BY a.attnum)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE n.nspname = $1 AND c.relname = ANY($2)
     GROUP BY c.relname";

async fn ensure_tables(
    tx: &mut PgConnection,
    target: &FdwTarget,
    remote: &BTreeMap<String, String>,
    changes: &mut Changes,
) -> Result<(), FdwError> {
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        .execute(&mut *tx)
        .await?;
    let local: BTreeMap<String, String> = sqlx::query(COLUMNS_SQL)
        .bind(SCHEMA)
        .bind(TABLES)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    let mut import = Vec::new();
    for table in TABLES {
        match (local.get(*table), remote.get(*table)) {
            (Some(here), Some(there)) if here == there => {}
            (Some(_), _) => {
                sqlx::query(&format!("DROP FOREIGN TABLE {SCHEMA}.{table}"))
                    .execute(&mut *tx)
                    .await?;
                changes.reimported.push(table.to_string());
                import.push(*table);
            }
            (None, _) => {
                changes.imported.push(table.to_string());
                import.push(*table);
            }
        }
    }
    if import.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "IMPORT FOREIGN SCHEMA public LIMIT TO ({}) FROM SERVER {SERVER} INTO {SCHEMA}",
        import.join(", ")
    ))
    .execute(&mut *tx)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
        // 08001 / 08006: postgres_fdw could not connect (wrong host or port, node down).
        Some(code) if code.starts_with("08") => FdwError::Unreachable {
            host: target.host.clone(),
            port: target.port,
            reason: e
                .as_database_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default(),
        },
        _ => FdwError::from(e),
    })?;
    Ok(())
}
