//! Typed configuration, read once from the environment (and an optional `.env` file) and
//! validated before anything starts. An error names the variable and what is wrong with it,
//! never its value: URLs carry passwords.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Everything the server needs to start. Secrets are wrapped so `{:?}` cannot leak them.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens (`LEPTOS_SITE_ADDR`, the name cargo-leptos sets too).
    pub site_addr: SocketAddr,
    /// Built assets: `LEPTOS_SITE_ROOT` / `LEPTOS_SITE_PKG_DIR` / `LEPTOS_OUTPUT_NAME`.
    pub site_root: String,
    pub site_pkg_dir: String,
    pub output_name: String,
    /// PostgreSQL `main`, the system of record (`DATABASE_URL`).
    pub database_url: SecretString,
    /// PostgreSQL `analytics`, the remote node (`ANALYTICS_DATABASE_URL`).
    pub analytics_database_url: SecretString,
    /// How `main`'s own server process reaches the analytics node for postgres_fdw
    /// (`ANALYTICS_FDW_HOST` / `ANALYTICS_FDW_PORT`, default: the host and port of
    /// `ANALYTICS_DATABASE_URL`); database, user and password come from that URL.
    pub analytics_fdw: FdwTarget,
    /// The second analytics node, `analytics-2` (`ANALYTICS_2_DATABASE_URL`, with
    /// `ANALYTICS_2_FDW_HOST` / `_PORT` like the first). Unset: every partition of the
    /// plays stays on `analytics`.
    pub analytics_2: Option<NodeConfig>,
    /// The read replica of the analytics nodes (`ANALYTICS_REPLICA_DATABASE_URL`): a
    /// PostgreSQL server that subscribes to each node (database D for `analytics`, D_2 for
    /// `analytics-2`). Unset: instance-wide reads go to the nodes.
    pub analytics_replica: Option<SecretString>,
    /// The replica serves reads while every node's data there is at most this old
    /// (`REPLICA_MAX_LAG_SECS`, default 30).
    pub replica_max_lag: Duration,
    pub mongodb_url: SecretString,
    pub mongodb_database: String,
    pub redis_url: SecretString,
    /// Prefix for every Redis key (`REDIS_KEY_PREFIX`, default empty).
    pub redis_key_prefix: String,
    pub spotify: SpotifyMode,
    /// Demo mode: the simulator names everything with hostile and unusual strings
    /// (`DEMO_HOSTILE_NAMES`, default false), to see that every page escapes them.
    pub demo_hostile_names: bool,
    /// The address people use to reach this server (`PUBLIC_URL`); https makes cookies
    /// Secure. Unset: the listener's own address (see [`Config::public_url_for`]).
    pub public_url: Option<url::Url>,
    /// Keys that encrypt Spotify tokens at rest (`TOKEN_ENCRYPTION_KEYS`), current first.
    /// Empty in demo mode without the variable: an ephemeral key is made at start-up.
    pub token_keys: Vec<TokenKey>,
    /// Per-request timeout and the longest `Retry-After` we wait out before giving up.
    pub spotify_timeout: Duration,
    pub spotify_max_retry_after: Duration,
    /// Lifetime of the dashboard cache entries `top:{spotify_id}:{time_range}`.
    pub cache_ttl: Duration,
    /// Data older than this is synced again by the scheduler; it looks every `sync_check_every`.
    pub sync_max_age: Duration,
    pub sync_check_every: Duration,
    /// A sync still running after this is stopped and recorded as failed
    /// (`SYNC_TIMEOUT_SECS`, default 300).
    pub sync_timeout: Duration,
    /// A user may start a sync by hand this long after their last one started
    /// (`SYNC_COOLDOWN_SECS`, default 300; 0: no cooldown).
    pub sync_cooldown: Duration,
    /// Spotify Web API calls per minute for the whole instance (`SPOTIFY_CALLS_PER_MINUTE`,
    /// default 180; 0: no budget).
    pub spotify_calls_per_minute: u32,
    /// Per client address and minute: `/auth/login` + `/auth/demo`
    /// (`SIGN_IN_RATE_PER_MINUTE`, default 20) and `/readyz` (`READYZ_RATE_PER_MINUTE`,
    /// default 60); 0: no limit.
    pub sign_in_rate_per_minute: u32,
    pub readyz_rate_per_minute: u32,
    /// How often each listener's recently played is polled (`PLAYS_POLL_SECS`, default 300;
    /// 0: not at all). Spotify keeps 50 plays, so at most 3600.
    pub plays_poll_every: Duration,
    /// Where uploads of privacy exports wait while they are imported (`IMPORT_DIR`, an
    /// absolute path; default `$XDG_STATE_HOME/personalify/imports`, else
    /// `~/.local/state/personalify/imports`: a folder of the app's own, made 0700, never
    /// the shared temporary folder), and the largest upload taken (`IMPORT_MAX_MB`,
    /// default 256).
    pub import_dir: std::path::PathBuf,
    pub import_max_bytes: u64,
    /// Uploads taken at once by this server (`IMPORT_MAX_UPLOADS`, default 4); more wait
    /// for a 503 and a sentence.
    pub import_max_uploads: usize,
    /// An upload is refused (507) unless the import folder's disk keeps this much free
    /// beside it (`IMPORT_MIN_FREE_MB`, default 512).
    pub import_min_free_bytes: u64,
    /// How long an import waits for stores that do not answer before it fails with a
    /// sentence (`IMPORT_STORE_WAIT_SECS`, default 3600).
    pub import_store_wait: Duration,
    /// Start a sync right after each sign-in (`SYNC_ON_LOGIN`, default true).
    pub sync_on_login: bool,
    /// How long a looked-up session is reused without asking PostgreSQL again
    /// (`SESSION_CACHE_SECS`, default 5; zero: ask every time).
    pub session_cache_ttl: Duration,
    /// Memory for rendered pages kept per sync (`PAGE_CACHE_MB`, default 32; zero: off).
    pub page_cache_bytes: usize,
    /// How long start-up keeps retrying stores that are not answering yet.
    pub startup_timeout: Duration,
    /// After SIGTERM / Ctrl-C, how long open requests may finish before their connections
    /// are dropped (`SHUTDOWN_TIMEOUT_SECS`, default 10).
    pub shutdown_timeout: Duration,
    /// Time a client has to send a request's line and headers, and the longest a kept-alive
    /// connection may sit idle (`HEADER_TIMEOUT_SECS`, default 15).
    pub header_timeout: Duration,
    /// A request still unanswered after this gets a 503 and its work is dropped
    /// (`REQUEST_TIMEOUT_SECS`, default 15): the backstop for a store that accepts and
    /// never answers on a path without a deadline of its own.
    pub request_timeout: Duration,
    pub log_format: LogFormat,
}

/// Real Spotify when an app is configured; otherwise the built-in simulator (demo mode).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per process, built once
pub enum SpotifyMode {
    Demo,
    Spotify {
        client_id: String,
        client_secret: SecretString,
        redirect_uri: url::Url,
        /// Accounts service and Web API roots (overridable to point at a simulator).
        accounts_url: url::Url,
        api_url: url::Url,
    },
}

/// An analytics node beyond the first: how this process reaches it, and how `main` does.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub database_url: SecretString,
    pub fdw: FdwTarget,
}

/// Where the foreign server on `main` points, and as whom it signs in. The address is the
/// one `main`'s server process sees (a compose service name in containers), which need not
/// be the one this process uses.
#[derive(Debug, Clone)]
pub struct FdwTarget {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: SecretString,
}

/// One AES-256 key for tokens at rest, with the id stored beside each ciphertext.
#[derive(Clone)]
pub struct TokenKey {
    pub id: String,
    pub key: std::sync::Arc<secrecy::SecretBox<[u8; 32]>>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({}, [REDACTED])", self.id)
    }
}

impl SpotifyMode {
    pub fn is_demo(&self) -> bool {
        matches!(self, SpotifyMode::Demo)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn problem(variable: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_string(),
        problem: problem.into(),
    }
}

/// Reads variables from some source; the process environment in production, a map in tests.
struct Source<F>(F);

impl<F: Fn(&str) -> Result<Option<String>, ConfigError>> Source<F> {
    /// A set, non-blank value, trimmed.
    fn optional(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok((self.0)(name)?
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()))
    }

    fn required(&self, name: &str, what: &str) -> Result<String, ConfigError> {
        self.optional(name)?
            .ok_or_else(|| problem(name, format!("is not set; it must hold {what}")))
    }

    fn or_default(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self.optional(name)?.unwrap_or_else(|| default.to_string()))
    }

    fn parsed<T: FromStr>(&self, name: &str, default: T, expected: &str) -> Result<T, ConfigError> {
        match self.optional(name)? {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| problem(name, format!("is malformed; expected {expected}"))),
        }
    }
}

/// The import folder when `IMPORT_DIR` is unset: the app's own state folder (XDG), not
/// the temporary folder every user of the machine can list.
fn default_import_dir() -> std::path::PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".local/state"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from("/var/lib"));
    state.join("personalify").join("imports")
}

impl Config {
    /// Load `.env` if there is one (without overriding the real environment), then read
    /// and validate every variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(err) if err.not_found() => {}
            Err(dotenvy::Error::LineParse(_, index)) => {
                return Err(problem(
                    ".env",
                    format!("line {} cannot be parsed (expected NAME=value)", index + 1),
                ))
            }
            Err(_) => return Err(problem(".env", "exists but cannot be read")),
        }
        Self::from_lookup(|name| match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(problem(name, "is not valid UTF-8")),
        })
    }

    /// Build from any lookup function (tests pass a map).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let env = Source(lookup);

        let site_addr = env.parsed(
            "LEPTOS_SITE_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 3000)),
            "host:port, e.g. 127.0.0.1:3000",
        )?;

        let database_url = postgres_url(&env, "DATABASE_URL")?;
        let analytics_database_url = postgres_url(&env, "ANALYTICS_DATABASE_URL")?;
        let analytics_fdw = fdw_target(&env, "ANALYTICS", &analytics_database_url)?;
        let analytics_replica = match env.optional("ANALYTICS_REPLICA_DATABASE_URL")? {
            None => None,
            Some(_) => Some(postgres_url(&env, "ANALYTICS_REPLICA_DATABASE_URL")?),
        };
        let replica_max_lag = Duration::from_secs(env.parsed(
            "REPLICA_MAX_LAG_SECS",
            30u64,
            "a whole number of seconds",
        )?);
        let analytics_2 = match env.optional("ANALYTICS_2_DATABASE_URL")? {
            None => None,
            Some(_) => {
                let url = postgres_url(&env, "ANALYTICS_2_DATABASE_URL")?;
                let fdw = fdw_target(&env, "ANALYTICS_2", &url)?;
                Some(NodeConfig {
                    database_url: url.into(),
                    fdw,
                })
            }
        };

        let mongodb_url = env.required(
            "MONGODB_URL",
            "a MongoDB URL like mongodb://127.0.0.1:27017",
        )?;
        if mongodb::options::ConnectionString::parse(&mongodb_url).is_err() {
            return Err(problem(
                "MONGODB_URL",
                "is not a valid MongoDB URL (expected mongodb://host:port or mongodb+srv://host)",
            ));
        }
        let mongodb_database = env.or_default("MONGODB_DATABASE", "personalify")?;
        if mongodb_database.contains(['/', '\\', '.', ' ', '"', '$']) || mongodb_database.len() > 63
        {
            return Err(problem(
                "MONGODB_DATABASE",
                "is not a valid MongoDB database name (letters, digits, - and _, at most 63)",
            ));
        }

        let redis_url = env.required("REDIS_URL", "a Redis URL like redis://127.0.0.1:6379")?;
        let redis_scheme = [
            "redis://",
            "rediss://",
            "redis-cluster://",
            "redis-sentinel://",
        ]
        .iter()
        .any(|scheme| redis_url.starts_with(scheme));
        if !redis_scheme || fred::types::config::Config::from_url(&redis_url).is_err() {
            return Err(problem(
                "REDIS_URL",
                "is not a valid Redis URL (expected redis://[:password@]host:port[/db] or rediss://...)",
            ));
        }

        let redis_key_prefix = env.or_default("REDIS_KEY_PREFIX", "")?;
        if redis_key_prefix.len() > 64
            || redis_key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(problem(
                "REDIS_KEY_PREFIX",
                "must be at most 64 characters without spaces",
            ));
        }
        let spotify = spotify_mode(&env)?;
        demo_mode_allowed(&env, &spotify, site_addr)?;
        let token_keys = token_keys(&env)?;
        if token_keys.is_empty() && !spotify.is_demo() {
            return Err(problem(
                "TOKEN_ENCRYPTION_KEYS",
                "is not set; with real Spotify it must hold at least one key, id:base64 of 32 bytes (e.g. k1:$(openssl rand -base64 32))",
            ));
        }

        let public_url = match env.optional("PUBLIC_URL")? {
            Some(raw) => {
                let url = url::Url::parse(&raw).map_err(|_| {
                    problem(
                        "PUBLIC_URL",
                        "is not a valid URL (expected e.g. https://music.example.com)",
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(problem(
                        "PUBLIC_URL",
                        "must be an http:// or https:// URL with a host",
                    ));
                }
                Some(url)
            }
            None => None,
        };
        let cache_ttl = Duration::from_secs(env.parsed(
            "CACHE_TTL_SECS",
            6 * 3600u64,
            "a whole number of seconds",
        )?);
        let sync_max_age = Duration::from_secs(
            env.parsed("SYNC_MAX_AGE_HOURS", 24u64, "a whole number of hours")? * 3600,
        );
        let sync_check_every = Duration::from_secs(env.parsed(
            "SYNC_CHECK_SECS",
            300u64,
            "a whole number of seconds",
        )?);
        let sync_timeout = Duration::from_secs(env.parsed(
            "SYNC_TIMEOUT_SECS",
            300u64,
            "a whole number of seconds",
        )?);
        let sync_cooldown = Duration::from_secs(env.parsed(
            "SYNC_COOLDOWN_SECS",
            300u64,
            "a whole number of seconds (0 turns the cooldown off)",
        )?);
        if sync_cooldown > Duration::from_secs(86_400) {
            return Err(problem(
                "SYNC_COOLDOWN_SECS",
                "must be at most 86400 (a day)",
            ));
        }
        let spotify_calls_per_minute: u32 = env.parsed(
            "SPOTIFY_CALLS_PER_MINUTE",
            180u32,
            "a whole number of calls (0 turns the budget off)",
        )?;
        if spotify_calls_per_minute != 0 && spotify_calls_per_minute < 12 {
            return Err(problem(
                "SPOTIFY_CALLS_PER_MINUTE",
                "must be 0 (no budget) or at least 12, the calls of one sync",
            ));
        }
        let sign_in_rate_per_minute: u32 = env.parsed(
            "SIGN_IN_RATE_PER_MINUTE",
            20u32,
            "a whole number of requests (0 turns the limit off)",
        )?;
        let readyz_rate_per_minute: u32 = env.parsed(
            "READYZ_RATE_PER_MINUTE",
            60u32,
            "a whole number of requests (0 turns the limit off)",
        )?;
        let plays_poll_every = Duration::from_secs(env.parsed(
            "PLAYS_POLL_SECS",
            300u64,
            "a whole number of seconds (0 turns polling off)",
        )?);
        if plays_poll_every > Duration::from_secs(3600) {
            return Err(problem(
                "PLAYS_POLL_SECS",
                "must be at most 3600: Spotify keeps a listener's last 50 plays only, and a longer wait loses plays",
            ));
        }
        let import_dir = match env.optional("IMPORT_DIR")? {
            Some(dir) => {
                let dir = std::path::PathBuf::from(dir);
                if !dir.is_absolute() {
                    return Err(problem("IMPORT_DIR", "must be an absolute path"));
                }
                dir
            }
            None => default_import_dir(),
        };
        let import_max_mb: u64 =
            env.parsed("IMPORT_MAX_MB", 256u64, "a whole number of megabytes")?;
        if !(1..=4096).contains(&import_max_mb) {
            return Err(problem("IMPORT_MAX_MB", "must be between 1 and 4096"));
        }
        let import_max_uploads: usize =
            env.parsed("IMPORT_MAX_UPLOADS", 4usize, "a whole number of uploads")?;
        if !(1..=64).contains(&import_max_uploads) {
            return Err(problem("IMPORT_MAX_UPLOADS", "must be between 1 and 64"));
        }
        let import_min_free_mb: u64 =
            env.parsed("IMPORT_MIN_FREE_MB", 512u64, "a whole number of megabytes")?;
        let import_store_wait = Duration::from_secs(env.parsed(
            "IMPORT_STORE_WAIT_SECS",
            3600u64,
            "a whole number of seconds",
        )?);
        if !(Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(&import_store_wait)
        {
            return Err(problem(
                "IMPORT_STORE_WAIT_SECS",
                "must be between 1 and 604800 (a week)",
            ));
        }
        let sync_on_login = env.parsed("SYNC_ON_LOGIN", true, "true or false")?;
        let demo_hostile_names = env.parsed("DEMO_HOSTILE_NAMES", false, "true or false")?;
        let session_cache_ttl = Duration::from_secs(env.parsed(
            "SESSION_CACHE_SECS",
            5u64,
            "a whole number of seconds (0 turns the cache off)",
        )?);
        if session_cache_ttl > Duration::from_secs(60) {
            return Err(problem(
                "SESSION_CACHE_SECS",
                "must be at most 60: a signed-out session may be honoured that long by another server process",
            ));
        }
        let page_cache_mb: usize = env.parsed(
            "PAGE_CACHE_MB",
            32usize,
            "a whole number of megabytes (0 turns the cache off)",
        )?;
        let shutdown_timeout = Duration::from_secs(env.parsed(
            "SHUTDOWN_TIMEOUT_SECS",
            10u64,
            "a whole number of seconds",
        )?);
        if shutdown_timeout > Duration::from_secs(3600) {
            return Err(problem("SHUTDOWN_TIMEOUT_SECS", "must be at most 3600"));
        }
        let request_timeout = Duration::from_secs(env.parsed(
            "REQUEST_TIMEOUT_SECS",
            15u64,
            "a whole number of seconds",
        )?);
        if request_timeout.is_zero() || request_timeout > Duration::from_secs(600) {
            return Err(problem(
                "REQUEST_TIMEOUT_SECS",
                "must be between 1 and 600 seconds",
            ));
        }
        let header_timeout = Duration::from_secs(env.parsed(
            "HEADER_TIMEOUT_SECS",
            15u64,
            "a whole number of seconds",
        )?);
        if header_timeout.is_zero() || header_timeout > Duration::from_secs(300) {
            return Err(problem(
                "HEADER_TIMEOUT_SECS",
                "must be between 1 and 300 seconds",
            ));
        }
        if page_cache_mb > 4096 {
            return Err(problem("PAGE_CACHE_MB", "must be at most 4096"));
        }
        for (name, value) in [
            ("CACHE_TTL_SECS", cache_ttl),
            ("SYNC_MAX_AGE_HOURS", sync_max_age),
            ("SYNC_CHECK_SECS", sync_check_every),
            ("SYNC_TIMEOUT_SECS", sync_timeout),
        ] {
            if value.is_zero() {
                return Err(problem(name, "must be greater than zero"));
            }
        }
        let spotify_timeout = Duration::from_secs(env.parsed(
            "SPOTIFY_TIMEOUT_SECS",
            10u64,
            "a whole number of seconds",
        )?);
        let spotify_max_retry_after = Duration::from_secs(env.parsed(
            "SPOTIFY_MAX_RETRY_AFTER_SECS",
            10u64,
            "a whole number of seconds",
        )?);

        let startup_timeout = Duration::from_secs(env.parsed(
            "STARTUP_TIMEOUT_SECS",
            30u64,
            "a whole number of seconds",
        )?);

        let log_format = match env.or_default("LOG_FORMAT", "pretty")?.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(problem("LOG_FORMAT", "must be \"pretty\" or \"json\"")),
        };

        Ok(Config {
            site_addr,
            site_root: env.or_default("LEPTOS_SITE_ROOT", "target/site")?,
            site_pkg_dir: env.or_default("LEPTOS_SITE_PKG_DIR", "pkg")?,
            output_name: env.or_default("LEPTOS_OUTPUT_NAME", "personalify")?,
            database_url: database_url.into(),
            analytics_database_url: analytics_database_url.into(),
            analytics_fdw,
            analytics_2,
            analytics_replica: analytics_replica.map(Into::into),
            replica_max_lag,
            mongodb_url: mongodb_url.into(),
            mongodb_database,
            redis_url: redis_url.into(),
            redis_key_prefix,
            spotify,
            demo_hostile_names,
            public_url,
            token_keys,
            spotify_timeout,
            spotify_max_retry_after,
            cache_ttl,
            sync_max_age,
            sync_check_every,
            sync_timeout,
            sync_cooldown,
            spotify_calls_per_minute,
            sign_in_rate_per_minute,
            readyz_rate_per_minute,
            session_cache_ttl,
            page_cache_bytes: page_cache_mb * 1024 * 1024,
            shutdown_timeout,
            header_timeout,
            request_timeout,
            sync_on_login,
            plays_poll_every,
            import_dir,
            import_max_bytes: import_max_mb * 1024 * 1024,
            import_max_uploads,
            import_min_free_bytes: import_min_free_mb.saturating_mul(1024 * 1024),
            import_store_wait,
            startup_timeout,
            log_format,
        })
    }

    /// `PUBLIC_URL`, or else the address the server actually listens on (0.0.0.0 and [::]
    /// mean this machine, reached as 127.0.0.1).
    pub fn public_url_for(&self, listening: SocketAddr) -> url::Url {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let ip = if listening.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            listening.ip()
        };
        url::Url::parse(&format!("http://{}", SocketAddr::new(ip, listening.port())))
            .expect("a socket address makes a URL")
    }

    /// The Leptos options derived from this configuration.
    pub fn leptos_options(&self) -> leptos::config::LeptosOptions {
        leptos::config::LeptosOptions::builder()
            .output_name(self.output_name.as_str())
            .site_root(self.site_root.as_str())
            .site_pkg_dir(self.site_pkg_dir.as_str())
            .site_addr(self.site_addr)
            .build()
    }
}

fn postgres_url<F>(env: &Source<F>, name: &str) -> Result<String, ConfigError>
where
    F: Fn(&str) -> Result<Option<String>, ConfigError>,
{
    let value = env.required(
        name,
        "a PostgreSQL URL like postgres://user:password@127.0.0.1:5432/db",
    )?;
    let well_formed = (value.starts_with("postgres://") || value.starts_with("postgresql://"))
        && sqlx::postgres::PgConnectOptions::from_str(&value).is_ok();
    if !well_formed {
        return Err(problem(
            name,
            "is not a valid PostgreSQL URL (expected postgres://user:password@host:port/database)",
        ));
    }
    Ok(value)
}

/// A node's foreign server address and credentials: host and port from `{prefix}_FDW_HOST` /
/// `{prefix}_FDW_PORT` when set (the address as `main`'s server sees it), else from
/// `{prefix}_DATABASE_URL`, like the database, user and password.
fn fdw_target<F>(
    env: &Source<F>,
    prefix: &str,
    analytics_url: &str,
) -> Result<FdwTarget, ConfigError>
where
    F: Fn(&str) -> Result<Option<String>, ConfigError>,
{
    let url_var = format!("{prefix}_DATABASE_URL");
    let host_var = format!("{prefix}_FDW_HOST");
    let port_var = format!("{prefix}_FDW_PORT");
    let url_name = url_var.as_str();
    let url = url::Url::parse(analytics_url).map_err(|_| {
        problem(
            url_name,
            "is not a valid PostgreSQL URL (expected postgres://user:password@host:port/database)",
        )
    })?;
    let decode = |raw: &str| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| {
                problem(
                    url_name,
                    "has a user, password or database that is not UTF-8",
                )
            })
    };
    let dbname = decode(url.path().trim_start_matches('/'))?;
    let user = decode(url.username())?;
    let password = decode(url.password().unwrap_or(""))?;
    if dbname.is_empty() || user.is_empty() {
        return Err(problem(
            url_name,
            "must name the database and the user (postgres://user:password@host:port/database): main's postgres_fdw signs in with them",
        ));
    }
    let host = match env.optional(&host_var)? {
        Some(host) => host,
        None => url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .ok_or_else(|| problem(url_name, "has no host"))?,
    };
    let host_ok = host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'));
    if !host_ok {
        return Err(problem(
            &host_var,
            "must be a host name, an IP address or a socket directory (letters, digits, . - _ : /)",
        ));
    }
    let port = env.parsed(
        &port_var,
        url.port().unwrap_or(5432),
        "a port number between 1 and 65535",
    )?;
    if port == 0 {
        return Err(problem(
            &port_var,
            "is malformed; expected a port number between 1 and 65535",
        ));
    }
    Ok(FdwTarget {
        host,
        port,
        dbname,
        user,
        password: password.into(),
    })
}

/// `DEMO_MODE`: unset, demo mode follows from having no Spotify credentials, but only on a
/// loopback address; anywhere else anyone who reaches the server could sign in as a demo
/// listener, so it must be asked for with `DEMO_MODE=true`. `true` with credentials, or
/// `false` without, is a contradiction and named as such.
fn demo_mode_allowed<F>(
    env: &Source<F>,
    spotify: &SpotifyMode,
    site_addr: SocketAddr,
) -> Result<(), ConfigError>
where
    F: Fn(&str) -> Result<Option<String>, ConfigError>,
{
    let asked = match env.optional("DEMO_MODE")?.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(problem("DEMO_MODE", "must be true or false")),
    };
    match (asked, spotify.is_demo()) {
        (Some(true), false) => Err(problem(
            "DEMO_MODE",
            "is true but SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are set; unset DEMO_MODE for real Spotify, or the credentials for demo mode",
        )),
        (Some(false), true) => Err(problem(
            "DEMO_MODE",
            "is false but SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are not set; real Spotify needs both",
        )),
        (None, true) if !site_addr.ip().is_loopback() => Err(problem(
            "DEMO_MODE",
            format!(
                "is not set, and without Spotify credentials this server would run in demo mode on {site_addr}, where anyone who reaches it can sign in as a demo listener; set DEMO_MODE=true if that is what you want, or set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"
            ),
        )),
        _ => Ok(()),
    }
}

fn spotify_mode<F>(env: &Source<F>) -> Result<SpotifyMode, ConfigError>
where
    F: Fn(&str) -> Result<Option<String>, ConfigError>,
{
    let id = env.optional("SPOTIFY_CLIENT_ID")?;
    let secret = env.optional("SPOTIFY_CLIENT_SECRET")?;
    let (client_id, client_secret) = match (id, secret) {
        (None, None) => return Ok(SpotifyMode::Demo),
        (Some(id), Some(secret)) => (id, secret),
        (Some(_), None) => {
            return Err(problem(
                "SPOTIFY_CLIENT_SECRET",
                "is not set but SPOTIFY_CLIENT_ID is; set both (real Spotify) or neither (demo mode)",
            ))
        }
        (None, Some(_)) => {
            return Err(problem(
                "SPOTIFY_CLIENT_ID",
                "is not set but SPOTIFY_CLIENT_SECRET is; set both (real Spotify) or neither (demo mode)",
            ))
        }
    };
    if !client_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(problem(
            "SPOTIFY_CLIENT_ID",
            "is malformed; a Spotify client ID is letters and digits (copy it from the Spotify developer dashboard)",
        ));
    }

    let raw = env.required(
        "SPOTIFY_REDIRECT_URI",
        "the callback URL registered for your Spotify app, e.g. http://127.0.0.1:3000/auth/callback",
    )?;
    let redirect_uri =
        url::Url::parse(&raw).map_err(|_| problem("SPOTIFY_REDIRECT_URI", "is not a valid URL"))?;
    // Spotify (2025+) accepts https, or http only on a loopback IP literal; never `localhost`.
    let loopback_ip = matches!(
        redirect_uri.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(redirect_uri.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match redirect_uri.scheme() {
        "https" => {}
        "http" if loopback_ip => {}
        "http" if redirect_uri.host_str() == Some("localhost") => {
            return Err(problem(
                "SPOTIFY_REDIRECT_URI",
                "uses localhost, which Spotify rejects; use http://127.0.0.1:PORT/auth/callback",
            ))
        }
        _ => {
            return Err(problem(
                "SPOTIFY_REDIRECT_URI",
                "must be https, or http on 127.0.0.1 / [::1] (Spotify's rule for redirect URIs)",
            ))
        }
    }
    if redirect_uri.path() != "/auth/callback" {
        return Err(problem(
            "SPOTIFY_REDIRECT_URI",
            "must end in /auth/callback, the path Personalify serves the sign-in callback on",
        ));
    }

    let base = |name: &str, default: &str| -> Result<url::Url, ConfigError> {
        let raw = env.or_default(name, default)?;
        let url = url::Url::parse(raw.trim_end_matches('/'))
            .map_err(|_| problem(name, "is not a valid URL"))?;
        // Tokens and the client secret travel to these URLs: plain http only to a simulator
        // on this machine.
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(problem(
                    name,
                    "must be https: tokens and the client secret travel to it (http only for a simulator on 127.0.0.1)",
                ))
            }
            _ => return Err(problem(name, "must be an https:// URL")),
        }
        Ok(url)
    };
    Ok(SpotifyMode::Spotify {
        client_id,
        client_secret: client_secret.into(),
        redirect_uri,
        accounts_url: base("SPOTIFY_ACCOUNTS_URL", "https://accounts.spotify.com")?,
        api_url: base("SPOTIFY_API_URL", "https://api.spotify.com")?,
    })
}

/// `TOKEN_ENCRYPTION_KEYS=k2:BASE64,k1:BASE64`: the first key encrypts, all decrypt.
fn token_keys<F>(env: &Source<F>) -> Result<Vec<TokenKey>, ConfigError>
where
    F: Fn(&str) -> Result<Option<String>, ConfigError>,
{
    use base64::Engine;
    const NAME: &str = "TOKEN_ENCRYPTION_KEYS";
    let Some(raw) = env.optional(NAME)? else {
        return Ok(Vec::new());
    };
    let mut keys: Vec<TokenKey> = Vec::new();
    for (i, entry) in raw.split(',').map(str::trim).enumerate() {
        let malformed = || {
            problem(
                NAME,
                format!("entry {} is malformed; expected id:base64 of 32 bytes, entries separated by commas", i + 1),
            )
        };
        let (id, b64) = entry.split_once(':').ok_or_else(malformed)?;
        let id_ok = !id.is_empty()
            && id.len() <= 32
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(malformed());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| malformed())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        if keys.iter().any(|k| k.id == id) {
            return Err(problem(NAME, format!("key id {id:?} appears twice")));
        }
        keys.push(TokenKey {
            id: id.to_string(),
            key: std::sync::Arc::new(secrecy::SecretBox::new(Box::new(key))),
        });
    }
    Ok(keys)
}

/// Lets a secret cross into a driver's API without being formatted anywhere on the way.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:55432/personalify"),
            (
                "ANALYTICS_DATABASE_URL",
                "postgres://u:p@127.0.0.1:55433/analytics",
            ),
            ("MONGODB_URL", "mongodb://127.0.0.1:57017"),
            ("REDIS_URL", "redis://127.0.0.1:56379"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| Ok(vars.get(name).map(|v| v.to_string())))
    }

    fn error_for(overrides: &[(&'static str, Option<&'static str>)]) -> ConfigError {
        let mut vars = base();
        for (name, value) in overrides {
            match value {
                Some(v) => vars.insert(name, v),
                None => vars.remove(name),
            };
        }
        load(&vars).expect_err("configuration should be rejected")
    }

    #[test]
    fn minimal_environment_gives_demo_mode_with_defaults() {
        let config = load(&base()).unwrap();
        assert!(config.spotify.is_demo());
        assert_eq!(config.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.mongodb_database, "personalify");
        assert_eq!(config.startup_timeout, Duration::from_secs(30));
        assert_eq!(config.log_format, LogFormat::Pretty);
    }

    #[test]
    fn each_missing_store_url_is_named() {
        for name in [
            "DATABASE_URL",
            "ANALYTICS_DATABASE_URL",
            "MONGODB_URL",
            "REDIS_URL",
        ] {
            let err = error_for(&[(name, None)]);
            assert_eq!(err.variable, name);
            assert!(err.problem.starts_with("is not set"), "{err}");
        }
        // Blank counts as missing.
        assert_eq!(
            error_for(&[("REDIS_URL", Some("   "))]).variable,
            "REDIS_URL"
        );
    }

    #[test]
    fn malformed_urls_are_named_without_echoing_the_value() {
        let cases = [
            ("REDIS_URL", "not-a-url"),
            ("REDIS_URL", "http://secret-pass@127.0.0.1:6379"),
            ("DATABASE_URL", "mysql://secret-pass@127.0.0.1/x"),
            ("ANALYTICS_DATABASE_URL", "not a url"),
            ("MONGODB_URL", "mongo://secret-pass@127.0.0.1"),
            ("LEPTOS_SITE_ADDR", "port-eighty"),
            ("STARTUP_TIMEOUT_SECS", "soon"),
            ("LOG_FORMAT", "xml"),
            ("MONGODB_DATABASE", "a.b"),
        ];
        for (name, value) in cases {
            let err = error_for(&[(name, Some(value))]);
            assert_eq!(err.variable, name, "{err}");
            assert!(!err.to_string().contains(value), "value leaked: {err}");
            assert!(
                !err.to_string().contains("secret-pass"),
                "secret leaked: {err}"
            );
        }
    }

    #[test]
    fn the_fdw_target_defaults_to_the_analytics_url_and_takes_the_overrides() {
        let mut vars = base();
        vars.insert(
            "ANALYTICS_DATABASE_URL",
            "postgres://an%40lyst:p%3Ass@10.0.0.7:6543/plays_db",
        );
        let fdw = load(&vars).unwrap().analytics_fdw;
        assert_eq!(
            (fdw.host.as_str(), fdw.port, fdw.dbname.as_str()),
            ("10.0.0.7", 6543, "plays_db")
        );
        assert_eq!(fdw.user, "an@lyst");
        assert_eq!(expose(&fdw.password), "p:ss");
        assert!(!format!("{fdw:?}").contains("p:ss"), "password in Debug");

        vars.insert("ANALYTICS_FDW_HOST", "postgres-analytics");
        vars.insert("ANALYTICS_FDW_PORT", "5432");
        let fdw = load(&vars).unwrap().analytics_fdw;
        assert_eq!((fdw.host.as_str(), fdw.port), ("postgres-analytics", 5432));
    }

    #[test]
    fn a_bad_fdw_setting_is_named() {
        for (name, value) in [
            ("ANALYTICS_FDW_PORT", "0"),
            ("ANALYTICS_FDW_PORT", "70000"),
            ("ANALYTICS_FDW_PORT", "five"),
            ("ANALYTICS_FDW_HOST", "db' OPTIONS (x"),
            ("ANALYTICS_FDW_HOST", "two words"),
        ] {
            let err = error_for(&[(name, Some(value))]);
            assert_eq!(err.variable, name, "{value}: {err}");
        }
        // main's foreign server signs in with the URL's database and user: both are needed.
        let err = error_for(&[("ANALYTICS_DATABASE_URL", Some("postgres://127.0.0.1:5433"))]);
        assert_eq!(err.variable, "ANALYTICS_DATABASE_URL");
        assert!(err.problem.contains("database and the user"), "{err}");
    }

    #[test]
    fn spotify_urls_must_be_https_unless_on_this_machine() {
        let with = |name: &str, value: &str| {
            let mut vars = vec![
                ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
                ("ANALYTICS_DATABASE_URL", "postgres://u:p@127.0.0.1:5433/db"),
                ("MONGODB_URL", "mongodb://127.0.0.1:27017"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("SPOTIFY_CLIENT_ID", "id"),
                ("SPOTIFY_CLIENT_SECRET", "secret"),
                (
                    "SPOTIFY_REDIRECT_URI",
                    "http://127.0.0.1:3000/auth/callback",
                ),
                (
                    "TOKEN_ENCRYPTION_KEYS",
                    "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
            ];
            vars.push((name, value));
            let map: std::collections::HashMap<String, String> = vars
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::from_lookup(|n| Ok(map.get(n).cloned()))
        };
        let err = with("SPOTIFY_API_URL", "http://api.example.org").unwrap_err();
        assert_eq!(err.variable, "SPOTIFY_API_URL");
        assert!(err.problem.contains("https"), "{}", err.problem);
        let err = with("SPOTIFY_ACCOUNTS_URL", "http://10.0.0.5:9000").unwrap_err();
        assert_eq!(err.variable, "SPOTIFY_ACCOUNTS_URL");
        assert!(with("SPOTIFY_API_URL", "http://127.0.0.1:9000/sim").is_ok());
        assert!(with("SPOTIFY_API_URL", "https://api.example.org").is_ok());
    }

    #[test]
    fn spotify_credentials_come_as_a_pair_with_a_valid_redirect() {
        let err = error_for(&[("SPOTIFY_CLIENT_ID", Some("abc123"))]);
        assert_eq!(err.variable, "SPOTIFY_CLIENT_SECRET");
        let err = error_for(&[("SPOTIFY_CLIENT_SECRET", Some("s3cret"))]);
        assert_eq!(err.variable, "SPOTIFY_CLIENT_ID");

        let pair = [
            ("SPOTIFY_CLIENT_ID", Some("abc123")),
            ("SPOTIFY_CLIENT_SECRET", Some("s3cret")),
        ];
        let with_redirect = |uri: &'static str| {
            let mut o = pair.to_vec();
            o.push(("SPOTIFY_REDIRECT_URI", Some(uri)));
            o
        };
        assert_eq!(error_for(&pair).variable, "SPOTIFY_REDIRECT_URI");
        for bad in [
            "http://localhost:3000/auth/callback",
            "http://example.com/auth/callback",
            "https://example.com/wrong",
            "not a url",
        ] {
            let err = error_for(&with_redirect(bad));
            assert_eq!(err.variable, "SPOTIFY_REDIRECT_URI", "{bad}: {err}");
        }

        for good in [
            "http://127.0.0.1:3000/auth/callback",
            "http://[::1]:3000/auth/callback",
            "https://music.example.com/auth/callback",
        ] {
            let mut vars = base();
            vars.insert("SPOTIFY_CLIENT_ID", "abc123");
            vars.insert("SPOTIFY_CLIENT_SECRET", "s3cret");
            vars.insert("SPOTIFY_REDIRECT_URI", good);
            vars.insert(
                "TOKEN_ENCRYPTION_KEYS",
                "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            );
            let config = load(&vars).unwrap();
            assert!(!config.spotify.is_demo());
            assert!(
                !format!("{config:?}").contains("s3cret"),
                "secret in Debug output"
            );
        }
    }

    #[test]
    fn token_keys_parse_with_rotation_and_reject_bad_entries() {
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
        let mut vars = base();
        let both = format!("k2:{key}, k1:{key}");
        vars.insert("TOKEN_ENCRYPTION_KEYS", Box::leak(both.into_boxed_str()));
        let config = load(&vars).unwrap();
        let ids: Vec<&str> = config.token_keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["k2", "k1"]);
        assert!(!format!("{config:?}").contains(key));

        for bad in ["k1", "k1:short", ":MDEy", "k 1:MDEy", "k1:!!!"] {
            let err = error_for(&[("TOKEN_ENCRYPTION_KEYS", Some(bad))]);
            assert_eq!(err.variable, "TOKEN_ENCRYPTION_KEYS", "{bad}");
        }
        // Real Spotify requires a key.
        let err = error_for(&[
            ("SPOTIFY_CLIENT_ID", Some("abc123")),
            ("SPOTIFY_CLIENT_SECRET", Some("s3cret")),
            (
                "SPOTIFY_REDIRECT_URI",
                Some("http://127.0.0.1:3000/auth/callback"),
            ),
        ]);
        assert_eq!(err.variable, "TOKEN_ENCRYPTION_KEYS");
    }

    #[test]
    fn demo_mode_off_loopback_must_be_asked_for() {
        // Loopback: demo mode without asking.
        assert!(load(&base()).unwrap().spotify.is_demo());
        for addr in ["0.0.0.0:3000", "192.168.1.20:3000", "[::]:3000"] {
            let err = error_for(&[("LEPTOS_SITE_ADDR", Some(addr))]);
            assert_eq!(err.variable, "DEMO_MODE", "{addr}");
            assert!(err.problem.contains("set DEMO_MODE=true"), "{err}");
        }
        let mut vars = base();
        vars.insert("LEPTOS_SITE_ADDR", "0.0.0.0:3000");
        vars.insert("DEMO_MODE", "true");
        assert!(load(&vars).unwrap().spotify.is_demo());
        // Contradictions and typos are named.
        assert_eq!(
            error_for(&[("DEMO_MODE", Some("yes"))]).variable,
            "DEMO_MODE"
        );
        let err = error_for(&[("DEMO_MODE", Some("false"))]);
        assert!(err.problem.contains("real Spotify needs both"), "{err}");
        let err = error_for(&[
            ("DEMO_MODE", Some("true")),
            ("SPOTIFY_CLIENT_ID", Some("abc123")),
            ("SPOTIFY_CLIENT_SECRET", Some("s3cret")),
            (
                "SPOTIFY_REDIRECT_URI",
                Some("http://127.0.0.1:3000/auth/callback"),
            ),
        ]);
        assert_eq!(err.variable, "DEMO_MODE");
    }

    #[test]
    fn public_url_defaults_to_the_listen_address_and_is_validated() {
        let mut vars = base();
        let listening: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            load(&vars).unwrap().public_url_for(listening).as_str(),
            "http://127.0.0.1:8080/"
        );
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(
            load(&vars).unwrap().public_url_for(v6).as_str(),
            "http://[::1]:8080/"
        );
        vars.insert("PUBLIC_URL", "https://music.example.com");
        assert_eq!(
            load(&vars).unwrap().public_url_for(listening).scheme(),
            "https"
        );
        let err = error_for(&[("PUBLIC_URL", Some("ftp://x"))]);
        assert_eq!(err.variable, "PUBLIC_URL");
    }

    #[test]
    fn debug_output_hides_urls_with_passwords() {
        let config = load(&base()).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("u:p@"), "{debug}");
    }
}
