//! Black-box test harness: start the real server on a random port against real stores,
//! with a fresh PostgreSQL database on each node and a fresh MongoDB database per test.
//!
//! The stores are the project-local services (`scripts/services.sh up`); their URLs come
//! from the same variables the server reads, defaulting to the local ports.
#![allow(dead_code)] // each test binary uses a different part of this module

use personalify::server::config::{Config, ConfigError};
use personalify::server::startup::Application;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::oneshot;

pub const MAIN_URL: &str = "postgres://personalify:personalify@127.0.0.1:55432/personalify";
pub const ANALYTICS_URL: &str = "postgres://personalify:personalify@127.0.0.1:55433/analytics";
pub const ANALYTICS_2_URL: &str = "postgres://personalify:personalify@127.0.0.1:55434/analytics";
pub const REPLICA_URL: &str = "postgres://personalify:personalify@127.0.0.1:55435/analytics";
pub const MONGO_URL: &str = "mongodb://127.0.0.1:57017/?directConnection=true";
pub const REDIS_URL: &str = "redis://127.0.0.1:56379";

/// The environment of a test server; start from [`TestEnv::new`] and override.
#[derive(Clone)]
pub struct TestEnv {
    pub vars: HashMap<String, String>,
    pub main_db: String,
    pub analytics_db: String,
    /// The second analytics node's database, when [`TestEnv::with_second_node`] made one.
    pub analytics_2_db: Option<String>,
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Replace the database name at the end of a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (server, _) = base.rsplit_once('/').expect("URL has a database path");
    format!("{server}/{db}{query}")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `t_<unix seconds>_<pid>_<n>_<random>`: the time lets a later run drop what a crashed
/// run left behind, without touching databases of tests still running.
fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}_{}",
        now_secs(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..6)
            .unwrap_or("x")
    )
}

/// Whether test database `db` (`t_<unix seconds>_<pid>_…`) was left behind: made more than
/// ten minutes ago, or by a test process on this machine that has ended (a test that
/// panicked skips its clean-up, and a replica's subscriptions left behind hold replication
/// slots the next tests need).
fn is_stale(db: &str) -> bool {
    let mut parts = db.split('_').skip(1);
    let created = parts.next().and_then(|s| s.parse::<u64>().ok());
    let pid = parts.next().and_then(|s| s.parse::<u32>().ok());
    let old = created.is_some_and(|t| t < now_secs().saturating_sub(600));
    let ended = pid.is_some_and(|pid| {
        pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    created.is_some() && (old || ended)
}

/// Create a fresh database on the server of `url` (connecting to its `postgres` database).
async fn create_database(url: &str, name: &str) {
    let mut admin = PgConnection::connect(&with_database(url, "postgres"))
        .await
        .unwrap_or_else(|e| panic!("test stores must be up (scripts/services.sh up): {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
}

/// Drop test databases created more than ten minutes ago (left by crashed runs), with
/// what would keep them: a read replica's subscriptions in them, and the replication
/// slots a crashed run left on a node for them.
async fn drop_stale_databases(url: &str) {
    let Ok(mut admin) = PgConnection::connect(&with_database(url, "postgres")).await else {
        return;
    };
    let stale = |db: &str| is_stale(db);
    let slots: Vec<(String, String)> = sqlx::query_as(
        "SELECT slot_name::text, database::text FROM pg_replication_slots
          WHERE NOT active AND database LIKE 't\\_%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for (slot, db) in slots {
        if stale(&db) {
            let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
                .bind(slot)
                .execute(&mut admin)
                .await;
        }
    }
    let with_subscriptions: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT d.datname::text FROM pg_subscription s
           JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname LIKE 't\\_%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for db in with_subscriptions.iter().filter(|db| stale(db)) {
        drop_subscriptions(&with_database(url, db)).await;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for db in names {
        if is_stale(&db) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
}

/// Drop every subscription of the database at `url`, leaving their slots (the caller
/// drops those on the nodes, which may be gone).
pub async fn drop_subscriptions(url: &str) {
    let Ok(mut conn) = PgConnection::connect(url).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT s.subname::text FROM pg_subscription s
           JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    for name in names {
        for statement in [
            format!("ALTER SUBSCRIPTION \"{name}\" DISABLE"),
            format!("ALTER SUBSCRIPTION \"{name}\" SET (slot_name = NONE)"),
            format!("DROP SUBSCRIPTION \"{name}\""),
        ] {
            let _ = sqlx::query(&statement).execute(&mut conn).await;
        }
    }
}

static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl TestEnv {
    /// Fresh databases on both PostgreSQL nodes and a fresh MongoDB database.
    pub async fn new() -> Self {
        let main = var_or("DATABASE_URL", MAIN_URL);
        let analytics = var_or("ANALYTICS_DATABASE_URL", ANALYTICS_URL);
        CLEANED
            .get_or_init(|| async {
                drop_stale_databases(&main).await;
                drop_stale_databases(&analytics).await;
            })
            .await;
        let main_db = unique_name("t");
        let analytics_db = unique_name("t");
        create_database(&main, &main_db).await;
        create_database(&analytics, &analytics_db).await;

        let vars = HashMap::from([
            ("DATABASE_URL".to_string(), with_database(&main, &main_db)),
            (
                "ANALYTICS_DATABASE_URL".to_string(),
                with_database(&analytics, &analytics_db),
            ),
            ("MONGODB_URL".to_string(), var_or("MONGODB_URL", MONGO_URL)),
            ("MONGODB_DATABASE".to_string(), unique_name("t")),
            ("REDIS_URL".to_string(), var_or("REDIS_URL", REDIS_URL)),
            // Tests share one Redis and the same demo users: keep their keys apart.
            (
                "REDIS_KEY_PREFIX".to_string(),
                format!("{}:", unique_name("t")),
            ),
            ("LEPTOS_SITE_ADDR".to_string(), "127.0.0.1:0".to_string()),
            ("STARTUP_TIMEOUT_SECS".to_string(), "5".to_string()),
            // Tests start syncs themselves, so background work doesn't race their counts.
            ("SYNC_ON_LOGIN".to_string(), "false".to_string()),
            // Likewise plays: tests poll recently played themselves (tests/plays.rs).
            ("PLAYS_POLL_SECS".to_string(), "0".to_string()),
            // Tests sync and sign in back to back; tests/fair_use.rs turns these on.
            ("SYNC_COOLDOWN_SECS".to_string(), "0".to_string()),
            ("SPOTIFY_CALLS_PER_MINUTE".to_string(), "0".to_string()),
            ("SIGN_IN_RATE_PER_MINUTE".to_string(), "0".to_string()),
            ("READYZ_RATE_PER_MINUTE".to_string(), "0".to_string()),
        ]);
        TestEnv {
            vars,
            main_db,
            analytics_db,
            analytics_2_db: None,
        }
    }

    /// A read replica of the analytics nodes, in fresh databases (the app creates them).
    pub async fn with_replica(self) -> Self {
        let replica = var_or("ANALYTICS_REPLICA_DATABASE_URL", REPLICA_URL);
        static CLEANED_3: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        CLEANED_3
            .get_or_init(|| drop_stale_databases(&replica))
            .await;
        let db = unique_name("t");
        self.set(
            "ANALYTICS_REPLICA_DATABASE_URL",
            with_database(&replica, &db),
        )
    }

    /// A fresh database on the second analytics node too, configured as `analytics-2`: the
    /// plays' partitions are then spread over two nodes.
    pub async fn with_second_node(mut self) -> Self {
        let second = var_or("ANALYTICS_2_DATABASE_URL", ANALYTICS_2_URL);
        static CLEANED_2: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        CLEANED_2
            .get_or_init(|| drop_stale_databases(&second))
            .await;
        let db = unique_name("t");
        create_database(&second, &db).await;
        let port = url_addr(&second).port();
        self.analytics_2_db = Some(db.clone());
        self.set("ANALYTICS_2_DATABASE_URL", with_database(&second, &db))
            .set("ANALYTICS_2_FDW_HOST", "127.0.0.1")
            .set("ANALYTICS_2_FDW_PORT", port.to_string())
    }

    /// This environment with the store of `variable` (a PostgreSQL URL) reached through a
    /// proxy the test controls (take it down, pause it, bring it back).
    pub async fn behind_proxy(self, variable: &str) -> (TestEnv, PausableProxy) {
        let url = self.vars[variable].clone();
        let target = url_addr(&url);
        let proxy = PausableProxy::start(target).await;
        let proxied = url.replacen(
            &format!("{}:{}", target.ip(), target.port()),
            &format!("127.0.0.1:{}", proxy.port),
            1,
        );
        (self.set(variable, proxied), proxy)
    }

    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_string(), value.into());
        self
    }

    /// Point a store's URL variable at a loopback port where nothing listens (the store is
    /// down) and keep start-up from waiting long for it.
    pub fn store_down(self, variable: &str) -> Self {
        let port = closed_port();
        let url = match variable {
            "REDIS_URL" => format!("redis://127.0.0.1:{port}"),
            "MONGODB_URL" => format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            "DATABASE_URL" => {
                format!("postgres://personalify:personalify@127.0.0.1:{port}/personalify")
            }
            "ANALYTICS_DATABASE_URL" => {
                format!("postgres://personalify:personalify@127.0.0.1:{port}/analytics")
            }
            other => panic!("{other} is not a store URL"),
        };
        self.set(variable, url).set("STARTUP_TIMEOUT_SECS", "1")
    }

    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| Ok(self.vars.get(name).cloned()))
    }

    pub fn main_url(&self) -> &str {
        &self.vars["DATABASE_URL"]
    }

    pub fn analytics_url(&self) -> &str {
        &self.vars["ANALYTICS_DATABASE_URL"]
    }

    /// Build and serve the application in this process.
    pub async fn spawn(self) -> TestApp {
        let app = Application::build(self.config().expect("valid test configuration"))
            .await
            .expect("application starts");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(async {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            env: self,
            state,
            stop: Some(stop),
            server,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub env: TestEnv,
    /// The running server's state: its stores, cipher and (demo mode) simulator.
    pub state: personalify::server::state::AppState,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), personalify::server::startup::StartupError>>,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request reaches the server")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The HTML (or any text) `browser` gets for `path`.
    pub async fn page(&self, browser: &reqwest::Client, path: &str) -> String {
        browser
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the server")
            .text()
            .await
            .expect("a text body")
    }

    /// The in-process simulator (demo mode).
    pub fn sim(&self) -> &personalify::server::sim::Simulator {
        self.state.sim.as_ref().expect("demo mode has a simulator")
    }

    /// A browser: keeps cookies, does not follow redirects (tests follow them by hand).
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client")
    }

    /// Sign in through the demo flow as `user` (default: the first demo listener), following
    /// every redirect by hand; returns the callback's response and the URLs visited.
    pub async fn demo_sign_in(&self, browser: &reqwest::Client, user: Option<&str>) -> SignIn {
        let start = match user {
            Some(u) => self.url(&format!("/auth/demo?user={u}")),
            None => self.url("/auth/demo"),
        };
        let first = browser.get(&start).send().await.expect("start sign-in");
        assert_eq!(first.status(), 303, "start of sign-in redirects to Spotify");
        let authorize = location(&first);
        let consent = browser.get(&authorize).send().await.expect("authorize");
        assert_eq!(consent.status(), 303, "the simulator redirects back");
        let callback = location(&consent);
        let response = browser.get(&callback).send().await.expect("callback");
        SignIn {
            authorize,
            callback,
            response,
        }
    }

    /// Sign in as a demo listener (default: the first) in a fresh browser; returns the
    /// browser and who that is, for starting syncs directly.
    pub async fn signed_in(
        &self,
        user: Option<&str>,
    ) -> (reqwest::Client, personalify::server::sync::SyncUser) {
        let browser = self.browser();
        self.demo_sign_in(&browser, user).await;
        let spotify_id = user
            .unwrap_or(personalify::server::sim::Simulator::demo_users()[0].id)
            .to_string();
        let user_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE spotify_id = $1")
            .bind(&spotify_id)
            .fetch_one(&self.state.stores.main)
            .await
            .expect("the demo user exists after signing in");
        (
            browser,
            personalify::server::sync::SyncUser {
                user_id,
                spotify_id,
            },
        )
    }

    /// Run a manual sync for `user`, wait for its outcome, then deliver the outbox to
    /// MongoDB as the server's worker would (tests run no background tasks).
    pub async fn sync(
        &self,
        user: &personalify::server::sync::SyncUser,
    ) -> personalify::domain::SyncProgress {
        let done = self
            .state
            .syncs
            .start(
                &self.state,
                user.clone(),
                personalify::server::sync::Trigger::Manual,
            )
            .await
            .expect("sync starts")
            .finished()
            .await;
        self.deliver_outbox().await;
        done
    }

    /// Deliver what the outbox holds to this server's MongoDB (a MongoDB that is down
    /// leaves it there).
    pub async fn deliver_outbox(&self) -> personalify::server::sync::outbox::Delivery {
        personalify::server::sync::outbox::deliver_pending(
            &self.state.stores.main,
            &self.state.stores.mongo,
        )
        .await
        .expect("the outbox is readable")
    }

    /// Stop the server gracefully and wait for it; the databases stay (to start again on them).
    pub async fn stop(mut self) -> TestEnv {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        self.env.clone()
    }

    /// Stop the server gracefully, wait for it, and drop this test's databases. Every wait
    /// is bounded: a store that stalls costs a leaked test database (dropped by a later
    /// run's clean-up), never a hung test binary.
    pub async fn shutdown(mut self) {
        const BOUND: std::time::Duration = std::time::Duration::from_secs(15);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(BOUND, &mut self.server).await.is_err() {
            self.server.abort();
            eprintln!("test server did not stop within {BOUND:?}; aborted");
        }
        let _ = tokio::time::timeout(BOUND, self.state.stores.mongo.db.drop()).await;
        // A read replica first: its subscriptions go, then their slots on the nodes
        // (which would keep the nodes' databases), then its databases.
        if let Some(replica) = self.state.stores.replica.clone() {
            let url = self.env.vars["ANALYTICS_REPLICA_DATABASE_URL"].clone();
            for db in &replica.dbs {
                let _ = tokio::time::timeout(
                    BOUND,
                    drop_subscriptions(&with_database(&url, &db.database)),
                )
                .await;
                db.pool.close().await;
            }
            let node_urls = ["ANALYTICS_DATABASE_URL", "ANALYTICS_2_DATABASE_URL"];
            for (node, var) in self.state.stores.analytics.nodes().iter().zip(node_urls) {
                let slot =
                    personalify::server::store::replica::slot_name(&node.target.dbname, node.name);
                let Some(url) = self.env.vars.get(var) else {
                    continue;
                };
                if let Ok(mut conn) = PgConnection::connect(url).await {
                    let _ = sqlx::query(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                          WHERE slot_name = $1 AND NOT active",
                    )
                    .bind(slot)
                    .execute(&mut conn)
                    .await;
                }
            }
            if let Ok(mut admin) = PgConnection::connect(&with_database(&url, "postgres")).await {
                for db in &replica.dbs {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        db.database
                    ))
                    .execute(&mut admin)
                    .await;
                }
            }
        }
        let mut databases = vec![
            (self.env.main_url().to_string(), self.env.main_db.clone()),
            (
                self.env.analytics_url().to_string(),
                self.env.analytics_db.clone(),
            ),
        ];
        if let (Some(db), Some(url)) = (
            self.env.analytics_2_db.clone(),
            self.env.vars.get("ANALYTICS_2_DATABASE_URL"),
        ) {
            databases.push((url.clone(), db));
        }
        for (url, db) in databases {
            let drop = async {
                if let Ok(mut admin) = PgConnection::connect(&with_database(&url, "postgres")).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            };
            let _ = tokio::time::timeout(BOUND, drop).await;
        }
    }
}

/// Wait until `check` holds, looking every 100 ms; fail the test, naming `what`, if it does
/// not within `secs` seconds. For a state another part reaches on its own (a replica
/// catching up, a client reconnecting), never for the test's own steps.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        assert!(
            std::time::Instant::now() < until,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Poll `check` every 200 ms for up to `secs`; whether it came to hold.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// The app's read replica, set up (the app does it in the background; asking again is
/// harmless) and with every table's first copy done (new changes to a table wait for it).
pub async fn ready_replica(app: &TestApp) -> personalify::server::store::replica::Replica {
    let stores = &app.state.stores;
    let replica = stores.replica.clone().expect("a replica is configured");
    assert!(
        eventually(30, || async {
            replica.ensure(&stores.analytics).await.is_ok()
        })
        .await,
        "the replica is set up"
    );
    assert!(
        eventually(60, || async {
            let mut ready = true;
            for db in &replica.dbs {
                let (subs, copying): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM pg_subscription s JOIN pg_database d
                               ON d.oid = s.subdbid WHERE d.datname = current_database()),
                            (SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r')",
                )
                .fetch_one(&db.pool)
                .await
                .unwrap_or((0, 1));
                ready &= subs == 1 && copying == 0;
            }
            ready
        })
        .await,
        "the replica's first copy is done"
    );
    replica
}

/// A loopback port with nothing listening on it (a store that is "down").
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub struct SignIn {
    pub authorize: String,
    pub callback: String,
    pub response: reqwest::Response,
}

/// The `Location` header of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("redirect without Location ({})", response.status()))
        .to_string()
}

/// The chart boxes of server-rendered HTML, each as its `data-testid` and the ECharts
/// option its `data-chart-src` URL answers `browser` with (parsed). The page itself holds
/// only the URL; the option is fetched, as `public/charts.js` does.
pub async fn chart_options(
    app: &TestApp,
    browser: &reqwest::Client,
    html: &str,
) -> Vec<(String, serde_json::Value)> {
    let mut charts = Vec::new();
    // A chart box has no children, so its attributes are all in its chunk.
    for tag in html.split("<div").skip(1) {
        let Some(src) = attribute(tag, "data-chart-src") else {
            continue;
        };
        let response = browser
            .get(app.url(&src))
            .send()
            .await
            .expect("chart URL answers");
        assert_eq!(response.status(), 200, "{src}");
        let body = response.text().await.expect("a body");
        let option = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{src} is not JSON ({e}): {body:.200}"));
        charts.push((attribute(tag, "data-testid").unwrap_or_default(), option));
    }
    charts
}

/// An attribute's value in a tag's text, with HTML escapes undone.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// A loopback port where something accepts connections, reads what it is sent and never
/// answers: a store that is hung from the start. Lives as long as the test's runtime.
pub async fn silent_listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind silent listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0_u8; 4096];
                use tokio::io::AsyncReadExt;
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// A TCP proxy in front of a store that can stop answering without closing anything: while
/// paused it keeps every connection open and accepts new ones, but moves no bytes (a store
/// that is paused, overloaded or behind a half-open network).
pub struct PausableProxy {
    pub port: u16,
    state: tokio::sync::watch::Sender<u8>,
    /// Client connections whose pumps still run.
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Whether the proxy's port takes connections now.
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Counts a proxied connection while its pumps run.
struct OpenConnection(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const PROXY_OPEN: u8 = 0;
const PROXY_PAUSED: u8 = 1;
const PROXY_DOWN: u8 = 2;

impl PausableProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (state, watch) = tokio::sync::watch::channel(PROXY_OPEN);
        let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (counted, up) = (open.clone(), listening.clone());
        let task = tokio::spawn(async move {
            let mut listener = Some(listener);
            let mut state = watch.clone();
            loop {
                let Some(accepting) = listener.as_ref() else {
                    // A store that is down refuses connections until it is back.
                    if state.wait_for(|s| *s != PROXY_DOWN).await.is_err() {
                        return;
                    }
                    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                        Ok(again) => listener = Some(again),
                        Err(e) => panic!("the proxy could not listen again on {port}: {e}"),
                    }
                    up.store(true, Ordering::SeqCst);
                    continue;
                };
                let client = tokio::select! {
                    accepted = accepting.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => return,
                    },
                    _ = state.wait_for(|s| *s == PROXY_DOWN) => {
                        listener = None;
                        up.store(false, Ordering::SeqCst);
                        continue;
                    }
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let guard = OpenConnection(counted.clone());
                let watch = watch.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, watch.clone()), pump(sr, cw, watch));
                });
            }
        });
        PausableProxy {
            port,
            state,
            open,
            listening,
            task,
        }
    }

    /// Wait (at most 10 s) until `done` holds: the proxy's own state, which its tasks
    /// reach soon after a change.
    async fn settle(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done(self) {
            assert!(
                std::time::Instant::now() < until,
                "the proxy did not {what} within 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Connections stay open and nothing passes: a store that stopped answering.
    pub fn pause(&self) {
        let _ = self.state.send(PROXY_PAUSED);
    }

    /// Every connection is closed and new ones are refused: a store that is down. Returns
    /// once that is so (every proxied connection closed, the port refusing).
    pub async fn take_down(&self) {
        let _ = self.state.send(PROXY_DOWN);
        self.settle("close its connections and its port", |p| {
            p.open.load(Ordering::SeqCst) == 0 && !p.listening.load(Ordering::SeqCst)
        })
        .await;
    }

    /// Bytes flow again; after [`Self::take_down`], once the port takes connections again.
    pub async fn resume(&self) {
        let _ = self.state.send(PROXY_OPEN);
        self.settle("listen again", |p| p.listening.load(Ordering::SeqCst))
            .await;
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: tokio::sync::watch::Receiver<u8>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Bytes read just before a pause are held until it ends.
        match state.wait_for(|s| *s != PROXY_PAUSED).await {
            Ok(s) if *s == PROXY_OPEN => {}
            _ => return,
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = state.wait_for(|s| *s == PROXY_DOWN) => return,
        };
        match state.wait_for(|s| *s != PROXY_PAUSED).await {
            Ok(s) if *s == PROXY_OPEN => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The host:port of a store URL (`scheme://[user@]host:port/...`).
pub fn url_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    host_port
        .parse()
        .unwrap_or_else(|e| panic!("{host_port} is not host:port: {e}"))
}

/// Send raw bytes to the server and read its answer until it closes the connection or
/// `within` passes; returns what arrived and whether the connection was closed.
pub async fn raw_exchange(
    base: &str,
    request: &[u8],
    within: std::time::Duration,
) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything (a 413 or 431).
    let _ = stream.write_all(request).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + within;
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}
