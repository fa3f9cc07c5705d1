//! `personalify bench-pages` (`make bench-pages`): how fast the pages are, as a reader's
//! browser sees them. With the release build and the real local stores, it seeds two demo
//! listeners through the real sync pipeline, one with a single sync and one with a long
//! history (365 syncs of every range by default), starts this same binary as a server on
//! its own port, and drives `/dashboard`, `/history` and `/artist/{id}` for each, plus the
//! dashboard's own HTML served as a static file by that server (the ceiling: what a
//! precomputed page would cost), each without and with compression. It prints req/s, p50
//! and p99 and the ratio to the ceiling, and cleans up after itself (its own databases,
//! MongoDB database and Redis key prefix, so a local instance's data is never touched).

use super::load::{self, Load, Measured};
use super::{drop_database, ms, recreate_database, sign_in, with_database};
use crate::domain::TimeRange;
use crate::server::auth::session::{self, SESSION_COOKIE};
use crate::server::config::{expose, Config, SpotifyMode};
use crate::server::startup::Application;
use crate::server::store::cache::Cache;
use crate::server::store::mongo::Mongo;
use crate::server::sync::run::{run_inline, SyncUser, Trigger};
use hyper::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, COOKIE};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PageBenchOptions {
    /// Connections kept open at once (wrk's `-c`).
    pub connections: usize,
    pub warmup: Duration,
    /// How long each page is measured.
    pub measure: Duration,
    /// Syncs of the listener with a long history.
    pub long_history: usize,
    /// Measure only the pages whose name contains this (the ceiling always runs).
    pub only: Option<String>,
}

/// What a browser sends: Chromium's `Accept-Encoding`.
const BROWSER_ENCODINGS: &str = "gzip, deflate, br, zstd";
const BENCH_MAIN_DB: &str = "personalify_bench";
const BENCH_ANALYTICS_DB: &str = "analytics_bench";
/// Where the ceiling is written under the site root, and served from.
const CEILING_DIR: &str = "bench";

pub async fn run(config: Config, options: PageBenchOptions) -> Result<String, String> {
    let stores = BenchStores::create(&config).await?;
    let outcome = measure(&stores.config, &options).await;
    stores.remove().await;
    outcome
}

/// The bench's own databases and key prefix beside the local instance's.
struct BenchStores {
    config: Config,
    main_admin: String,
    analytics_admin: String,
}

impl BenchStores {
    async fn create(config: &Config) -> Result<Self, String> {
        let main_admin = with_database(expose(&config.database_url), "postgres")?;
        let analytics_admin = with_database(expose(&config.analytics_database_url), "postgres")?;
        recreate_database(&main_admin, BENCH_MAIN_DB).await?;
        recreate_database(&analytics_admin, BENCH_ANALYTICS_DB).await?;
        let mut bench = config.clone();
        bench.database_url = with_database(expose(&config.database_url), BENCH_MAIN_DB)?.into();
        bench.analytics_database_url =
            with_database(expose(&config.analytics_database_url), BENCH_ANALYTICS_DB)?.into();
        bench.mongodb_database = BENCH_MAIN_DB.into();
        bench.redis_key_prefix = format!("{}bench:", config.redis_key_prefix);
        bench.spotify = SpotifyMode::Demo;
        bench.public_url = None;
        bench.sync_on_login = false;
        Ok(BenchStores {
            config: bench,
            main_admin,
            analytics_admin,
        })
    }

    async fn remove(self) {
        let budget = Duration::from_secs(2);
        let config = &self.config;
        if let Ok(mongo) =
            Mongo::connect(&config.mongodb_url, &config.mongodb_database, budget).await
        {
            let _ = mongo.db.drop().await;
        }
        if let Ok(cache) = Cache::connect(&config.redis_url, &config.redis_key_prefix, budget).await
        {
            delete_prefixed(&cache).await;
        }
        drop_database(&self.main_admin, BENCH_MAIN_DB).await;
        drop_database(&self.analytics_admin, BENCH_ANALYTICS_DB).await;
    }
}

/// Delete every Redis key of the bench's prefix.
pub(super) async fn delete_prefixed(cache: &Cache) {
    use fred::interfaces::KeysInterface;
    let pattern = format!("{}*", cache.prefix);
    let mut cursor = "0".to_string();
    loop {
        let page: Result<(String, Vec<String>), _> = cache
            .client
            .scan_page(cursor, pattern.clone(), Some(500), None)
            .await;
        let Ok((next, keys)) = page else { return };
        if !keys.is_empty() {
            let _: Result<i64, _> = cache.client.del(keys).await;
        }
        if next == "0" {
            return;
        }
        cursor = next;
    }
}

/// A listener the bench signed in, with a session cookie for the server under test.
struct Listener {
    label: String,
    cookie: String,
    artist_id: String,
}

/// Sign in two demo listeners through an in-process copy of the app (its own simulator
/// plays Spotify), sync the first once and the second `long_history` times (a simulated
/// day apart, so the lists move), and open a session for each that any server on these
/// stores accepts.
async fn seed(config: &Config, long_history: usize) -> Result<[Listener; 2], String> {
    let mut config = config.clone();
    config.site_addr = ([127, 0, 0, 1], 0).into();
    config.spotify_calls_per_minute = 0;
    config.sign_in_rate_per_minute = 0;
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let sim = state.sim.clone().ok_or("demo mode has a simulator")?;
    let _ = state.stores.mongo.db.drop().await;
    delete_prefixed(&state.stores.cache).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let demo = crate::server::sim::Simulator::demo_users();
    let mut listeners = Vec::new();
    for (demo_user, syncs) in [(demo[0].id, 1), (demo[1].id, long_history.max(1))] {
        sign_in(&base, &http, demo_user).await?;
        let user_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE spotify_id = $1")
            .bind(demo_user)
            .fetch_one(&state.stores.main)
            .await
            .map_err(|e| e.to_string())?;
        let user = SyncUser {
            user_id,
            spotify_id: demo_user.to_string(),
        };
        let started = Instant::now();
        for n in 0..syncs {
            if n > 0 {
                sim.advance_days(1);
            }
            run_inline(&state, &user, Trigger::Bench)
                .await
                .map_err(|e| format!("seeding sync {n} of {demo_user}: {e}"))?;
            if syncs > 1 && (n + 1) % 50 == 0 {
                eprint!("  {} of {syncs} syncs\r", n + 1);
                let _ = std::io::stderr().flush();
            }
        }
        eprintln!(
            "  {demo_user}: {syncs} sync(s) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let token = session::create(&state.stores.main, user_id)
            .await
            .map_err(|e| e.to_string())?;
        let artist_id: String = sqlx::query_scalar(
            "SELECT artist_id FROM user_artists WHERE spotify_id = $1 AND time_range = $2 AND rank = 1",
        )
        .bind(demo_user)
        .bind(TimeRange::ShortTerm.as_str())
        .fetch_one(&state.stores.main)
        .await
        .map_err(|e| e.to_string())?;
        listeners.push(Listener {
            label: format!("{syncs} sync{}", if syncs == 1 { "" } else { "s" }),
            cookie: format!("{SESSION_COOKIE}={token}"),
            artist_id,
        });
    }
    // A year of daily syncs leaves the tables as autovacuum keeps them; a year seeded in
    // seconds leaves ~100k dead list rows it has not reached yet. Measure the former.
    sqlx::query("VACUUM (ANALYZE)")
        .execute(&state.stores.main)
        .await
        .map_err(|e| format!("VACUUM after seeding: {e}"))?;
    let _ = stop.send(());
    let _ = server.await;
    let [one, long] = <[Listener; 2]>::try_from(listeners).map_err(|_| "two listeners")?;
    Ok([one, long])
}

/// This binary as the server under test, on a free loopback port, with the bench's stores.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(config: &Config, log: &Path) -> Result<Self, String> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?;
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .env("DATABASE_URL", expose(&config.database_url))
            .env(
                "ANALYTICS_DATABASE_URL",
                expose(&config.analytics_database_url),
            )
            .env("MONGODB_DATABASE", &config.mongodb_database)
            .env("REDIS_KEY_PREFIX", &config.redis_key_prefix)
            .env("LEPTOS_SITE_ADDR", addr.to_string())
            .env("SYNC_ON_LOGIN", "false")
            .env("SIGN_IN_RATE_PER_MINUTE", "0")
            .env("SPOTIFY_CALLS_PER_MINUTE", "0")
            // The seeded data is fresh: the scheduler has nothing to do during the run.
            .env("SYNC_CHECK_SECS", "86400")
            .env_remove("SPOTIFY_CLIENT_ID")
            .env_remove("SPOTIFY_CLIENT_SECRET")
            .env_remove("PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut server = Server { child, addr };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(server);
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "the server exited ({status}); see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.stop();
        Err(format!("the server did not answer; see {}", log.display()))
    }

    /// Resident memory now and at its peak, from /proc (Linux), in MiB.
    fn memory(&self) -> Option<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib = |field: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        };
        Some((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
    }

    fn stop(&mut self) {
        // SIGTERM for a graceful stop, then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Write `html` as a static file under the site root, precompressed at the best levels
/// as `cargo leptos --precompress` does for the other assets; returns the files written.
fn write_ceiling(site_root: &str, html: &[u8]) -> Result<Vec<PathBuf>, String> {
    let dir = Path::new(site_root).join(CEILING_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plain = dir.join("dashboard.html");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(html).map_err(|e| e.to_string())?;
    let gzip = gzip.finish().map_err(|e| e.to_string())?;
    let mut br = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut br, 4096, 11, 22);
        writer.write_all(html).map_err(|e| e.to_string())?;
    }
    let files = [
        (plain.clone(), html.to_vec()),
        (dir.join("dashboard.html.gz"), gzip),
        (dir.join("dashboard.html.br"), br),
    ];
    for (path, bytes) in &files {
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

struct Row {
    page: String,
    encoding: &'static str,
    measured: Measured,
}

async fn measure(config: &Config, options: &PageBenchOptions) -> Result<String, String> {
    eprintln!("seeding two listeners through the sync pipeline…");
    let [one, long] = seed(config, options.long_history).await?;
    let log = PathBuf::from(&config.site_root)
        .parent()
        .map(|p| p.join("bench-pages-server.log"))
        .unwrap_or_else(|| PathBuf::from("bench-pages-server.log"));
    let mut server = Server::start(config, &log).await?;
    let addr = server.addr;
    let memory_before = server.memory();

    // The ceiling: the 1-sync listener's dashboard, as the server renders it, served back
    // by the same server as a static file.
    let html = reqwest::Client::new()
        .get(format!("http://{addr}/dashboard?range=short_term"))
        .header(reqwest::header::COOKIE, &one.cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    if !html.windows(18).any(|w| w == b"data-testid=\"top-a") {
        return Err("the dashboard did not render the lists (is the seeding broken?)".into());
    }
    let ceiling_files = write_ceiling(&config.site_root, &html)?;

    let mut pages: Vec<(String, String, Option<&str>)> = vec![(
        "static dashboard.html (ceiling)".into(),
        format!("/{CEILING_DIR}/dashboard.html"),
        None,
    )];
    for listener in [&one, &long] {
        let cookie = Some(listener.cookie.as_str());
        pages.push((
            format!("/dashboard, {}", listener.label),
            "/dashboard?range=short_term".into(),
            cookie,
        ));
        pages.push((
            format!("/history, {}", listener.label),
            "/history?range=short_term".into(),
            cookie,
        ));
        pages.push((
            format!("/artist/{{id}}, {}", listener.label),
            format!("/artist/{}", listener.artist_id),
            cookie,
        ));
    }

    if let Some(only) = &options.only {
        pages.retain(|(page, _, _)| page.starts_with("static") || page.contains(only.as_str()));
    }
    let mut rows = Vec::new();
    let result = async {
        for encoding in [None, Some(BROWSER_ENCODINGS)] {
            for (page, path, cookie) in &pages {
                let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
                if let Some(cookie) = cookie {
                    headers.push((
                        COOKIE,
                        HeaderValue::from_str(cookie).map_err(|e| e.to_string())?,
                    ));
                }
                if let Some(encoding) = encoding {
                    headers.push((ACCEPT_ENCODING, HeaderValue::from_static(encoding)));
                }
                let measured = load::run(&Load {
                    addr,
                    path: path.clone(),
                    headers,
                    connections: options.connections,
                    warmup: options.warmup,
                    measure: options.measure,
                })
                .await?;
                eprintln!(
                    "  {page:<34} {:>9} {:>8.0} req/s",
                    encoding.map_or("identity", |_| "browser"),
                    measured.per_second
                );
                rows.push(Row {
                    page: page.clone(),
                    encoding: encoding.map_or("none", |_| "browser"),
                    measured,
                });
            }
        }
        Ok::<_, String>(())
    }
    .await;
    let memory_after = server.memory();
    server.stop();
    for file in ceiling_files {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_dir(Path::new(&config.site_root).join(CEILING_DIR));
    result?;
    Ok(report(options, &rows, memory_before, memory_after))
}

fn report(
    options: &PageBenchOptions,
    rows: &[Row],
    memory_before: Option<(f64, f64)>,
    memory_after: Option<(f64, f64)>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Personalify page benchmark: {} connections, {:.0} s per page after {:.0} s warm-up, release server and real stores",
        options.connections,
        options.measure.as_secs_f64(),
        options.warmup.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Accept-Encoding: none, or a browser's ({BROWSER_ENCODINGS}); x ceiling = req/s over the static file's with the same encoding\n"
    );
    let _ = writeln!(
        out,
        "{:<34} {:<8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>6} {:>10}",
        "page", "encoding", "req/s", "p50 ms", "p99 ms", "max ms", "bytes", "sent", "x ceiling"
    );
    for encoding in ["none", "browser"] {
        let ceiling = rows
            .iter()
            .find(|r| r.encoding == encoding && r.page.starts_with("static"))
            .map(|r| r.measured.per_second);
        for row in rows.iter().filter(|r| r.encoding == encoding) {
            let m = &row.measured;
            let ratio = ceiling.map_or(f64::NAN, |c| m.per_second / c);
            let _ = writeln!(
                out,
                "{:<34} {:<8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>6} {:>9.2}x{}",
                row.page,
                row.encoding,
                m.per_second,
                ms(m.p50),
                ms(m.p99),
                ms(m.max),
                m.body_bytes,
                short_encoding(&m.encoding),
                ratio,
                if m.errors > 0 {
                    format!("  ({} errors)", m.errors)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(out);
    }
    if let (Some((rss0, _)), Some((rss1, peak))) = (memory_before, memory_after) {
        let _ = writeln!(
            out,
            "server memory: {rss0:.0} MiB resident before the load, {rss1:.0} MiB after, peak {peak:.0} MiB\n"
        );
    }
    let _ = writeln!(out, "{}", aims(rows));
    out
}

fn short_encoding(encoding: &str) -> &str {
    match encoding {
        "identity" => "-",
        other => other,
    }
}

/// The issue's aims, each met or missed, from the rows of this run.
fn aims(rows: &[Row]) -> String {
    let mut out = String::from("aims (this run):\n");
    for encoding in ["none", "browser"] {
        let Some(ceiling) = rows
            .iter()
            .find(|r| r.encoding == encoding && r.page.starts_with("static"))
            .map(|r| r.measured.per_second)
        else {
            continue;
        };
        let mut line = |ok: bool, what: String| {
            let _ = writeln!(
                out,
                "  [{}] {what} ({encoding})",
                if ok { "met" } else { "MISSED" }
            );
        };
        let dashboards: Vec<&Measured> = rows
            .iter()
            .filter(|r| r.encoding == encoding && r.page.starts_with("/dashboard"))
            .map(|r| &r.measured)
            .collect();
        for m in &dashboards {
            line(
                m.per_second >= 0.5 * ceiling && m.p99 <= Duration::from_millis(50),
                format!(
                    "dashboard >= 0.5x ceiling and p99 <= 50 ms: {:.2}x, p99 {:.1} ms",
                    m.per_second / ceiling,
                    ms(m.p99)
                ),
            );
        }
        if let [a, b] = dashboards[..] {
            let spread = (a.per_second - b.per_second).abs() / a.per_second.max(b.per_second);
            line(
                spread <= 0.10,
                format!(
                    "dashboard the same for 1 and many syncs (within 10 %): {:.1} %",
                    spread * 100.0
                ),
            );
        }
        for prefix in ["/history", "/artist"] {
            for row in rows
                .iter()
                .filter(|r| r.encoding == encoding && r.page.starts_with(prefix))
            {
                line(
                    row.measured.per_second >= 0.25 * ceiling,
                    format!(
                        "{} >= 0.25x ceiling: {:.2}x",
                        row.page,
                        row.measured.per_second / ceiling
                    ),
                );
            }
        }
    }
    out
}
