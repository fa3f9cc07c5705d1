//! The Spotify simulator: the slice of Spotify's Accounts service and Web API that the app
//! uses, with Spotify's JSON shapes and status codes, deterministic from a seed. It is a
//! product feature (demo mode: no Spotify app needed) and every test's Spotify.
//!
//! An axum [`Router`] with its routes at the root; the app nests it (`.nest("/sim", ...)`)
//! or `personalify sim` serves it alone. Fault knobs on [`Simulator`] (latency, 5xx, 429,
//! expired and revoked tokens, the stripped 2026 shape, time travel) take effect for the
//! next requests, so tests can script Spotify's bad days.

mod accounts;
mod catalogue;
mod images;
mod objects;
mod rng;
mod tastes;
mod tokens;
mod web_api;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use catalogue::Catalogue;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokens::TokenStore;

/// How the simulator is set up; see [`SimConfig::new`] for the defaults.
#[derive(Clone)]
pub struct SimConfig {
    /// The only client_id `/authorize` and `/api/token` accept.
    pub client_id: String,
    /// If set, `/api/token` also accepts HTTP Basic client authentication with it.
    pub client_secret: Option<String>,
    /// Exact-match allow list for `redirect_uri`.
    pub redirect_uris: Vec<String>,
    /// Absolute URL where the router is reachable, no trailing slash (one is trimmed), e.g.
    /// `http://127.0.0.1:3000/sim`; used for `href`, `next` and image URLs.
    pub base_url: String,
    /// Seeds the catalogue and the tastes.
    pub seed: u64,
    /// The "day number" (days since the Unix epoch) the tastes are computed for; `None`
    /// follows the real clock (UTC). Pinned, "now" is 20:00 UTC of that day.
    pub pinned_day: Option<i64>,
    pub access_token_ttl: Duration,
    /// Serve hostile and unusual names (markup, script, RTL, emoji, 300 characters) for
    /// every artist, album and track (`DEMO_HOSTILE_NAMES`; see `Catalogue::make_hostile`).
    pub hostile_names: bool,
}

impl SimConfig {
    /// Seed 2026, access tokens valid one hour, no client secret, following the real clock.
    pub fn new(
        client_id: impl Into<String>,
        redirect_uris: Vec<String>,
        base_url: impl Into<String>,
    ) -> Self {
        SimConfig {
            client_id: client_id.into(),
            client_secret: None,
            redirect_uris,
            base_url: base_url.into(),
            seed: 2026,
            pinned_day: None,
            access_token_ttl: Duration::from_secs(3600),
            hostile_names: false,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_uris", &self.redirect_uris)
            .field("base_url", &self.base_url)
            .field("seed", &self.seed)
            .field("pinned_day", &self.pinned_day)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("hostile_names", &self.hostile_names)
            .finish()
    }
}

/// A demo account `/authorize` can sign in as; each has a distinct taste in music.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoUser {
    pub id: &'static str,
    pub display_name: &'static str,
    pub tagline: &'static str,
}

/// A simulated Spotify. Cheap to clone; clones share state, so a test keeps one to turn
/// the knobs while the router it handed out serves requests.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Paths counted one by one; past this many distinct paths (ids made up by a client),
/// new ones are counted under their first two segments, so memory stays bounded.
const MAX_DISTINCT_PATHS: usize = 4096;

/// Time travel stays within years 1970..4700, far from any overflow.
const MAX_DAY: i64 = 1_000_000;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy)]
enum Fault {
    Status(axum::http::StatusCode),
    RateLimit { retry_after_secs: u64 },
}

/// State shared by the handlers and the knobs.
struct Shared {
    config: SimConfig,
    catalogue: Catalogue,
    tokens: TokenStore,
    latency_nanos: AtomicU64,
    /// Extra delay of the token endpoint (`/api/token`) alone.
    token_latency_nanos: AtomicU64,
    /// Listeners (by index) Spotify knows nothing recent of: their 4-week lists are empty.
    new_listeners: Mutex<std::collections::HashSet<usize>>,
    /// Queued injected failures, in the order the knobs were turned: (fault, how many
    /// left, only for paths starting with this prefix).
    faults: Mutex<VecDeque<(Fault, u32, Option<String>)>>,
    stripped: AtomicBool,
    day_offset: AtomicI64,
    /// Milliseconds added to the clock (`advance_by`).
    ms_offset: AtomicI64,
    /// The real clock's reading the simulator's clock stopped at (`freeze`); 0: running.
    frozen_ms: AtomicI64,
    deny_next_consent: AtomicBool,
    request_counts: Mutex<HashMap<String, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic; keep going with the data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn is_new_listener(&self, user: usize) -> bool {
        self.new_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&user)
    }

    /// "Now" in Unix milliseconds, on the simulator's (possibly pinned, advanced) clock.
    fn now_ms(&self) -> i64 {
        let offset = self.day_offset.load(Ordering::Relaxed);
        let ms = self.ms_offset.load(Ordering::Relaxed);
        let now = match self.config.pinned_day {
            Some(day) => day.saturating_add(offset).clamp(0, MAX_DAY) * DAY_MS + 20 * 3_600_000,
            None => {
                let frozen = self.frozen_ms.load(Ordering::Relaxed);
                let real = if frozen > 0 {
                    frozen
                } else {
                    chrono::Utc::now().timestamp_millis()
                };
                real.saturating_add(offset.clamp(-MAX_DAY, MAX_DAY) * DAY_MS)
            }
        };
        now.saturating_add(ms).clamp(0, MAX_DAY * DAY_MS)
    }

    /// The day number the tastes are computed for.
    fn day(&self) -> i64 {
        self.now_ms().div_euclid(DAY_MS)
    }

    fn shape(&self) -> objects::Shape<'_> {
        objects::Shape {
            base: &self.config.base_url,
            stripped: self.stripped.load(Ordering::Relaxed),
        }
    }

    /// The first queued fault that applies to `path`, used up by one.
    fn take_fault(&self, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|(_, _, prefix)| prefix.as_deref().is_none_or(|p| path.starts_with(p)))?;
        let (fault, left, _) = &mut faults[index];
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            faults.remove(index);
        }
        Some(fault)
    }

    fn count(&self, path: &str) {
        let mut counts = lock(&self.request_counts);
        if let Some(n) = counts.get_mut(path) {
            *n += 1;
            return;
        }
        let key = if counts.len() < MAX_DISTINCT_PATHS {
            path
        } else {
            path.match_indices('/')
                .nth(2)
                .map_or(path, |(i, _)| &path[..i])
        };
        *counts.entry(key.to_string()).or_default() += 1;
    }
}

impl Simulator {
    pub fn new(mut config: SimConfig) -> Self {
        while config.base_url.ends_with('/') {
            config.base_url.pop();
        }
        let mut catalogue = Catalogue::build(config.seed);
        if config.hostile_names {
            catalogue.make_hostile();
        }
        let tokens = TokenStore::new(config.access_token_ttl);
        Simulator {
            shared: Arc::new(Shared {
                config,
                catalogue,
                tokens,
                latency_nanos: AtomicU64::new(0),
                token_latency_nanos: AtomicU64::new(0),
                new_listeners: Mutex::new(std::collections::HashSet::new()),
                faults: Mutex::new(VecDeque::new()),
                stripped: AtomicBool::new(false),
                day_offset: AtomicI64::new(0),
                ms_offset: AtomicI64::new(0),
                frozen_ms: AtomicI64::new(0),
                deny_next_consent: AtomicBool::new(false),
                request_counts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The simulator's routes, at the root of the returned router.
    pub fn router(&self) -> Router {
        let shared = self.shared.clone();
        Router::new()
            .route("/authorize", get(accounts::authorize))
            .route("/api/token", post(accounts::token))
            .route("/v1/me", get(web_api::me))
            .route("/v1/me/top/{kind}", get(web_api::top))
            .route(
                "/v1/me/player/recently-played",
                get(web_api::recently_played),
            )
            .route("/v1/artists/{id}", get(web_api::artist))
            .route("/images/{kind}/{file}", get(images::image))
            .route("/open/{kind}/{id}", get(images::open_page))
            .fallback(web_api::not_found)
            .layer(middleware::from_fn_with_state(shared.clone(), knobs))
            .with_state(shared)
    }

    /// The demo accounts; the first is the one `/authorize` signs in as by default.
    pub fn demo_users() -> &'static [DemoUser] {
        &tastes::DEMO_USERS
    }

    /// Every listener the simulator knows: the demo users, then `demo-crowd-001` to
    /// `demo-crowd-200` (for load and soak tests; not offered on the start page).
    pub fn listeners() -> &'static [DemoUser] {
        &tastes::LISTENERS
    }

    /// Delay every response by `d` (zero turns it off).
    pub fn set_latency(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Make a demo listener new to Spotify (`on`), or not: their 4-week top lists come back
    /// empty, as Spotify's do for an account with too little recent listening.
    pub fn set_new_listener(&self, spotify_user_id: &str, on: bool) {
        let Some(index) = tastes::user_index(spotify_user_id) else {
            return;
        };
        let mut set = self
            .shared
            .new_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if on {
            set.insert(index);
        } else {
            set.remove(&index);
        }
    }

    /// Delay the token endpoint's answers (code exchange and refresh) by `d` on top of any
    /// latency set for everything: Spotify's Accounts service having a slow day.
    pub fn set_token_latency(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.shared
            .token_latency_nanos
            .store(nanos, Ordering::Relaxed);
    }

    /// The next `count` Web API (`/v1`) requests answer `status` with Spotify's error body.
    /// A status outside 400..=599 is not an error Spotify sends; it becomes 500.
    pub fn fail_next(&self, status: u16, count: u32) {
        let code = axum::http::StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or_else(|| {
                tracing::warn!(status, "fail_next: not an error status, using 500");
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            });
        self.push_fault(Fault::Status(code), count, None);
    }

    /// Like [`Simulator::fail_next`], for `/v1` requests whose path starts with `prefix`
    /// only (e.g. "/v1/me/top/tracks": fail one list while the others succeed).
    pub fn fail_next_on(&self, prefix: &str, status: u16, count: u32) {
        let code = axum::http::StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        self.push_fault(Fault::Status(code), count, Some(prefix.to_string()));
    }

    /// The next `count` `/v1` requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, retry_after_secs: u64, count: u32) {
        self.push_fault(Fault::RateLimit { retry_after_secs }, count, None);
    }

    /// Forget every queued failure.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    fn push_fault(&self, fault: Fault, count: u32, prefix: Option<String>) {
        if count > 0 {
            lock(&self.shared.faults).push_back((fault, count, prefix));
        }
    }

    /// Every access token issued so far answers 401 "The access token expired".
    pub fn expire_access_tokens(&self) {
        self.shared.tokens.expire_all();
    }

    /// Tokens for a demo listener who signed in before this process started (the simulator
    /// keeps what it issued in memory only): `None` if the simulator issued them tokens since
    /// start-up (working or revoked: those stand) or the id is no demo listener. Returns
    /// `(access token, refresh token, scope, lifetime)`.
    pub fn reissue_after_restart(
        &self,
        spotify_user_id: &str,
        scope: &str,
    ) -> Option<(String, String, String, Duration)> {
        let user = tastes::user_index(spotify_user_id)?;
        if self.shared.tokens.knows_user(user) {
            return None;
        }
        let issued = self
            .shared
            .tokens
            .issue_direct(user, &self.shared.config.client_id, scope);
        Some((
            issued.access_token,
            issued.refresh_token,
            issued.scope,
            self.shared.config.access_token_ttl,
        ))
    }

    /// The user's refresh tokens issued so far answer `invalid_grant` "Refresh token
    /// revoked". An unknown user id changes nothing.
    pub fn revoke_refresh_tokens(&self, spotify_user_id: &str) {
        match tastes::user_index(spotify_user_id) {
            Some(user) => self.shared.tokens.revoke_user(user),
            None => tracing::debug!(spotify_user_id, "revoke: no such demo user"),
        }
    }

    /// Serve the 2026 Development-Mode shape: no artist genres/popularity/followers, no
    /// track popularity, no email/country/product/followers on `/v1/me`.
    pub fn set_stripped(&self, on: bool) {
        self.shared.stripped.store(on, Ordering::Relaxed);
    }

    /// Move the simulator's clock by whole days (negative goes back): tastes drift.
    pub fn advance_days(&self, days: i64) {
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .shared
            .day_offset
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_add(days).clamp(-MAX_DAY, MAX_DAY))
            });
    }

    /// Move the simulator's clock forward by `d` (whole milliseconds): the listener goes on
    /// playing, so recently played shows newer plays.
    pub fn advance_by(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .shared
            .ms_offset
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some(m.saturating_add(ms).min(MAX_DAY * DAY_MS))
            });
    }

    /// Stop the clock where it is (it moves only by `advance_by` / `advance_days` from now
    /// on), so a test knows exactly which plays exist.
    pub fn freeze(&self) {
        let now = chrono::Utc::now().timestamp_millis().max(1);
        let _ =
            self.shared
                .frozen_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Stop the clock at `ms` (Unix milliseconds), whatever it said: a test that needs a
    /// time of day (the demo listeners listen between 07:00 and midnight UTC) picks it
    /// instead of depending on when it runs.
    pub fn freeze_at(&self, ms: i64) {
        self.shared.frozen_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// "Now" on the simulator's clock, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.shared.now_ms()
    }

    /// Every play of a listener with `from_ms < played_at <= to_ms`, oldest first, as
    /// (track id, played_at in Unix ms): what recently played has shown, or will show, for
    /// that span. Empty for an id that is no listener.
    pub fn plays_between(
        &self,
        spotify_user_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<(String, i64)> {
        let Some(user) = tastes::user_index(spotify_user_id) else {
            return Vec::new();
        };
        let c = &self.shared.catalogue;
        (from_ms.div_euclid(DAY_MS)..=to_ms.div_euclid(DAY_MS))
            .flat_map(|day| tastes::plays_on(c, user, day))
            .filter(|p| p.played_at_ms > from_ms && p.played_at_ms <= to_ms)
            .map(|p| (c.tracks[p.track].id.clone(), p.played_at_ms))
            .collect()
    }

    /// A listener's privacy export as Spotify would send it: a ZIP holding
    /// `Spotify Extended Streaming History/Streaming_History_Audio_<year>_0.json` for every
    /// year of the last `days` days (the plays recently played shows, and every one
    /// before), a ReadMe, and Userdata.json. Like real exports it also has podcast episodes
    /// (every 37th entry), plays skipped within seconds (every 23rd) and a local file a
    /// month. `None` for an id that is no listener.
    pub fn sample_export(&self, spotify_user_id: &str, days: i64) -> Option<Vec<u8>> {
        use std::io::Write;
        let user = tastes::user_index(spotify_user_id)?;
        let c = &self.shared.catalogue;
        let now = self.now_ms();
        let from = now - days * DAY_MS;
        let ts = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default()
        };
        // Written as it is generated, a year per file: memory holds the packed ZIP only.
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let folder = "Spotify Extended Streaming History";
        zip.start_file(
            format!("{folder}/ReadMeFirst_ExtendedStreamingHistory.pdf"),
            options,
        )
        .ok()?;
        zip.write_all(b"%PDF-1.4 (sample)").ok()?;
        let mut year_open: Option<i32> = None;
        let mut first_in_file = true;
        let mut n: u64 = 0;
        for day in from.div_euclid(DAY_MS)..=now.div_euclid(DAY_MS) {
            for play in tastes::plays_on(c, user, day) {
                if play.played_at_ms <= from || play.played_at_ms > now {
                    continue;
                }
                n += 1;
                let track = &c.tracks[play.track];
                let year = chrono::DateTime::from_timestamp_millis(play.played_at_ms)
                    .map(|t| chrono::Datelike::year(&t))
                    .unwrap_or(1970);
                if year_open != Some(year) {
                    if year_open.is_some() {
                        zip.write_all(b"]").ok()?;
                    }
                    zip.start_file(
                        format!("{folder}/Streaming_History_Audio_{year}_0.json"),
                        options,
                    )
                    .ok()?;
                    zip.write_all(b"[").ok()?;
                    year_open = Some(year);
                    first_in_file = true;
                }
                let entry = if n.is_multiple_of(37) {
                    serde_json::json!({
                        "ts": ts(play.played_at_ms), "platform": "android", "ms_played": 1_200_000,
                        "conn_country": "ID", "master_metadata_track_name": null,
                        "master_metadata_album_artist_name": null,
                        "master_metadata_album_album_name": null, "spotify_track_uri": null,
                        "episode_name": "Episode of the day", "episode_show_name": "A Podcast",
                        "spotify_episode_uri": "spotify:episode:5Xt5DXGzch68nYYamXrNxZ",
                        "reason_start": "clickrow", "reason_end": "endplay", "shuffle": false,
                        "skipped": null, "offline": false, "offline_timestamp": 0,
                        "incognito_mode": false,
                    })
                } else {
                    let skipped = n.is_multiple_of(23);
                    let local = n.is_multiple_of(1_500);
                    serde_json::json!({
                        "ts": ts(play.played_at_ms), "platform": "android",
                        "ms_played": if skipped { 8_000 } else { i64::from(track.duration_ms) },
                        "conn_country": "ID", "ip_addr": "203.0.113.7",
                        "master_metadata_track_name": if local { "Home Recording".to_string() } else { track.name.clone() },
                        "master_metadata_album_artist_name": c.artists[track.artist].name,
                        "master_metadata_album_album_name": c.albums[track.album].name,
                        "spotify_track_uri": if local { None } else { Some(format!("spotify:track:{}", track.id)) },
                        "episode_name": null, "episode_show_name": null, "spotify_episode_uri": null,
                        "reason_start": "trackdone", "reason_end": if skipped { "fwdbtn" } else { "trackdone" },
                        "shuffle": n.is_multiple_of(3), "skipped": skipped, "offline": false,
                        "offline_timestamp": 0, "incognito_mode": false,
                    })
                };
                if !first_in_file {
                    zip.write_all(b",").ok()?;
                }
                first_in_file = false;
                serde_json::to_writer(&mut zip, &entry).ok()?;
            }
        }
        if year_open.is_some() {
            zip.write_all(b"]").ok()?;
        }
        zip.start_file("Spotify Account Data/Userdata.json", options)
            .ok()?;
        serde_json::to_writer(
            &mut zip,
            &serde_json::json!({ "username": spotify_user_id, "country": "ID" }),
        )
        .ok()?;
        zip.finish().ok()?;
        Some(out.into_inner())
    }

    /// The next valid `/authorize` request is denied: `error=access_denied`.
    pub fn deny_next_consent(&self) {
        self.shared.deny_next_consent.store(true, Ordering::Relaxed);
    }

    /// How many requests (whatever their outcome) hit paths starting with `path_prefix`,
    /// relative to the router's root, e.g. `/v1/me/top`.
    pub fn request_count(&self, path_prefix: &str) -> u64 {
        lock(&self.shared.request_counts)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Counting, latency and injected failures, in front of every route.
async fn knobs(State(sim): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    sim.count(path);
    let is_web_api = path == "/v1" || path.starts_with("/v1/");
    let mut latency = Duration::from_nanos(sim.latency_nanos.load(Ordering::Relaxed));
    if path == "/api/token" {
        latency += Duration::from_nanos(sim.token_latency_nanos.load(Ordering::Relaxed));
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if is_web_api {
        if let Some(fault) = sim.take_fault(path) {
            return web_api::ApiError::from(fault).into_response();
        }
    }
    next.run(request).await
}

/// Query or form parameters; the first occurrence of a name wins.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn parse(encoded: &[u8]) -> Self {
        Params(url::form_urlencoded::parse(encoded).into_owned().collect())
    }

    fn query(query: Option<&str>) -> Self {
        Self::parse(query.unwrap_or("").as_bytes())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serve the simulator alone on `listener` until `shutdown` resolves (`personalify sim`).
pub async fn serve(
    sim: Simulator,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, base_url = %sim.shared.config.base_url, "Spotify simulator listening");
    }
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown)
        .await
}
