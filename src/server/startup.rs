//! Builds the application (stores, router, listener) and serves it until SIGTERM / Ctrl-C.

use super::auth::session::SessionCache;
use super::auth::{self, crypto::TokenCipher, Auth};
use super::config::{Config, SpotifyMode};
use super::health;
use super::sim::{SimConfig, Simulator};
use super::spotify::{Endpoints, SpotifyClient};
use super::state::{AppState, Shared};
use super::store::{StoreError, Stores};
use crate::app::{shell, App};
use axum::routing::get;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr} (LEPTOS_SITE_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("IMPORT_DIR ({}) cannot hold uploads: {why}", dir.display())]
    ImportDir {
        dir: std::path::PathBuf,
        why: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Bind first (a taken port fails at once), then connect the stores.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(config.site_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.site_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.site_addr,
            source,
        })?;
        super::imports::prepare_dir(&config.import_dir)
            .await
            .map_err(|why| StartupError::ImportDir {
                dir: config.import_dir.clone(),
                why,
            })?;
        let config_uploads = config.import_max_uploads;
        let stores = Stores::connect(&config).await?;
        let (auth, sim) = spotify_side(&config, local_addr);
        let sessions = SessionCache::new(config.session_cache_ttl).secure(auth.secure_cookies);
        let pages = super::page_cache::PageCache::new(config.page_cache_bytes);
        let budget = super::sync::fair::Budget::new(config.spotify_calls_per_minute);
        let limiter = super::rate_limit::RateLimiter::new(
            config.sign_in_rate_per_minute,
            config.readyz_rate_per_minute,
        );
        let state = AppState::new(Shared {
            leptos_options: config.leptos_options(),
            config: Arc::new(config),
            stores,
            auth,
            sim,
            syncs: Default::default(),
            sessions,
            pages,
            outbox: Default::default(),
            budget,
            limiter,
            tasks: Default::default(),
            zone_changes: Default::default(),
            instance_runs: Default::default(),
            imports: Default::default(),
            uploads: super::imports::Uploads::new(config_uploads),
        });
        Ok(Application {
            router: router(state.clone()),
            listener,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; requests in flight get `SHUTDOWN_TIMEOUT_SECS` to
    /// finish, then their connections are dropped (see [`super::listener`]).
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let deadline = self.state.config.shutdown_timeout;
        let header_timeout = self.state.config.header_timeout;
        super::listener::serve(
            self.listener,
            self.router,
            shutdown,
            header_timeout,
            deadline,
        )
        .await;
        // Closing a pool waits for its connections to come back; a request dropped at the
        // deadline gives its connection back as it is dropped.
        let close = async {
            self.state.stores.main.close().await;
            self.state.stores.remote.close().await;
            for node in self.state.stores.analytics.nodes() {
                node.pool.close().await;
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(5), close)
            .await
            .is_err()
        {
            tracing::warn!("PostgreSQL pools did not close within 5 s");
        }
        Ok(())
    }
}

/// The Spotify client and, in demo mode, the simulator it talks to. In demo mode the
/// browser reaches the simulator through the public URL and this server reaches it over
/// loopback, like two different hosts.
fn spotify_side(config: &Config, local_addr: SocketAddr) -> (Auth, Option<Simulator>) {
    let cipher = TokenCipher::new(&config.token_keys);
    let public_url = config.public_url_for(local_addr);
    let public = public_url.as_str().trim_end_matches('/').to_string();
    let secure_cookies = public_url.scheme() == "https";
    // (endpoints, client id, client secret, redirect URI, simulator) for each mode.
    let (endpoints, client_id, client_secret, redirect_uri, sim) = match &config.spotify {
        SpotifyMode::Spotify {
            client_id,
            client_secret,
            redirect_uri,
            accounts_url,
            api_url,
        } => (
            Endpoints {
                accounts_public: accounts_url.clone(),
                accounts_internal: accounts_url.clone(),
                api: api_url.clone(),
            },
            client_id.clone(),
            client_secret.clone(),
            redirect_uri.clone(),
            None,
        ),
        SpotifyMode::Demo => {
            let loopback = if local_addr.ip().is_unspecified() {
                SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), local_addr.port())
            } else {
                local_addr
            };
            let internal =
                url::Url::parse(&format!("http://{loopback}/sim")).expect("an address makes a URL");
            let public_sim =
                url::Url::parse(&format!("{public}/sim")).expect("public URL plus a path is a URL");
            let callback = url::Url::parse(&format!("{public}/auth/callback"))
                .expect("public URL plus a path is a URL");
            let client_secret = auth::crypto::random_token();
            let mut sim_config = SimConfig::new(
                "personalify-demo",
                vec![callback.to_string()],
                public_sim.as_str().trim_end_matches('/'),
            );
            sim_config.client_secret = Some(client_secret.clone());
            sim_config.hostile_names = config.demo_hostile_names;
            (
                Endpoints {
                    accounts_public: public_sim,
                    accounts_internal: internal.clone(),
                    api: internal,
                },
                "personalify-demo".to_string(),
                client_secret.into(),
                callback,
                Some(Simulator::new(sim_config)),
            )
        }
    };
    let spotify = SpotifyClient::new(
        &endpoints,
        &client_id,
        &client_secret,
        &redirect_uri,
        config.spotify_timeout,
        config.spotify_max_retry_after,
    );
    let demo = sim.is_some();
    (
        Auth {
            spotify,
            cipher,
            secure_cookies,
            demo,
        },
        sim,
    )
}

/// Compression of responses built per request: gzip level 1, measured with
/// `make bench-pages` (README, "Page speed").
pub const COMPRESSION_LEVEL: tower_http::CompressionLevel =
    tower_http::CompressionLevel::Precise(1);

/// The app's routes, listed once per process. Listing them renders the app under a flag
/// that is global to the process (Leptos' `SuppressResourceLoad`): a resource first polled
/// meanwhile, in a page another `Router` of the same process is rendering, waits forever
/// (leptos-rs/leptos#4773). Tests run many apps in one process: their pages hung until the
/// request deadline, now and then; listed once, before any router exists, nothing renders
/// meanwhile.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

pub fn router(state: AppState) -> Router {
    let routes = route_list();
    let context_state = state.clone();
    let shell_options = state.leptos_options.clone();
    let mut router = Router::new();
    if let Some(sim) = &state.sim {
        router = router.nest_service("/sim", sim.router());
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(super::metrics::metrics))
        .merge(auth::router())
        .merge(super::account::router())
        .merge(super::charts::router())
        .merge(super::imports::router())
        .merge(super::time_zone::router())
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(context_state.clone());
                provide_context(crate::api::ctx::RequestSession::default());
                super::security::provide_script_nonce();
            },
            move || shell(shell_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(super::security::provide_script_nonce, shell))
        .layer(axum::middleware::from_fn(super::security::api_body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::rate_limit::limit,
        ))
        // Cross-site POSTs refused; security headers; CSP by the hashes of each page's inline
        // scripts. Inside the page cache, so kept pages keep their policy.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::security::guard,
        ))
        // Dashboard and history pages rendered once per sync (see server::page_cache).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::page_cache::serve,
        ))
        // Responses built per request shrink several times on the wire with gzip at a fast
        // level (COMPRESSION_LEVEL). Not brotli: its per-response set-up made a 10 KB page
        // cost ~20% more CPU than gzip for 5% fewer bytes. Static assets (cargo leptos
        // --precompress) and kept pages (server::page_cache) arrive already brotli-encoded
        // and pass through.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(COMPRESSION_LEVEL)
                .no_br(),
        )
        // One access-log line per request, with a request id (and no query string: OAuth
        // codes and state travel there); request metrics.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::access::log,
        ))
        .with_state(state)
}

/// Start from configuration and serve until SIGTERM or Ctrl-C, with the background work
/// (MongoDB outbox delivery, scheduled syncs) running beside it.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let app = Application::build(config).await?;
    let state = app.state().clone();
    spawn_background(&state);
    tracing::info!(addr = %app.local_addr(), "personalify listening on http://{}", app.local_addr());
    app.serve(shutdown_signal()).await?;
    tracing::info!("personalify stopped cleanly");
    Ok(())
}

/// The outbox worker, the scheduler, the plays poller and the sweeper of expired sessions, supervised (restarted if they stop while the
/// database pool is open, i.e. until shutdown).
pub fn spawn_background(state: &AppState) {
    let (pool, mongo, wake) = (
        state.stores.main.clone(),
        state.stores.mongo.clone(),
        state.outbox.clone(),
    );
    let open = {
        let pool = pool.clone();
        move || !pool.is_closed()
    };
    state.tasks.supervise(
        "outbox",
        move || {
            super::sync::outbox::run_worker(
                pool.clone(),
                mongo.clone(),
                std::time::Duration::from_secs(10),
                wake.clone(),
            )
        },
        open.clone(),
    );
    let scheduled = state.clone();
    state.tasks.supervise(
        "scheduler",
        move || super::sync::schedule::run_scheduler(scheduled.clone()),
        open.clone(),
    );
    let polled = state.clone();
    state.tasks.supervise(
        "plays",
        move || super::plays::ingest::run_poller(polled.clone()),
        open.clone(),
    );
    // Imports left unfinished go on (at start-up and every minute), and what no running
    // import owns (staging, uploads, .part leftovers) is removed.
    let swept = state.clone();
    state.tasks.supervise(
        "imports",
        move || super::plays::import::run_sweeper(swept.clone()),
        open.clone(),
    );
    if state.stores.replica.is_some() {
        let beating = state.stores.analytics.clone();
        state.tasks.supervise(
            "replica",
            move || {
                let analytics = beating.clone();
                async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        super::store::replica::beat(&analytics).await;
                    }
                }
            },
            open.clone(),
        );
    }
    let analyzed = state.clone();
    state.tasks.supervise(
        "statistics",
        move || run_statistics(analyzed.clone()),
        open.clone(),
    );
    let deleting = state.clone();
    state.tasks.supervise(
        "deletions",
        move || super::deletion::run_sweeper(deleting.clone()),
        open.clone(),
    );
    let swept = state.stores.main.clone();
    state.tasks.supervise(
        "sweeper",
        move || super::account::run_sweeper(swept.clone()),
        open,
    );
}

/// Every 30 s: main's statistics of the partitions whose rows changed
/// ([`super::store::fdw::refresh_statistics`]), so the planner keeps seeing that grouping
/// a listener's rows on their node beats shipping them.
async fn run_statistics(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if !state.stores.analytics.is_ready() {
            continue;
        }
        let main = &state.stores.main;
        let links = state.stores.analytics.links();
        let analyzed = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            super::store::fdw::refresh_statistics(main, &links),
        );
        match analyzed.await {
            Ok(Ok(leaves)) if leaves.is_empty() => {}
            Ok(Ok(leaves)) => tracing::debug!(
                ?leaves,
                "main's statistics of the analytics partitions refreshed"
            ),
            Ok(Err(sqlx::Error::PoolClosed)) => return,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot refresh main's statistics of the analytics partitions")
            }
            Err(_) => {
                tracing::warn!("main's statistics of the analytics partitions: no answer in 5 min")
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
