//! Rendered pages, kept per the data they show. The dashboard of one person, for one range,
//! after one sync, is the same HTML however often it is opened; rendering it with Leptos
//! costs about half a millisecond of CPU (measured with `make bench-pages`), serving the
//! kept bytes what a static file costs. So `/dashboard` and `/history` are rendered once per
//! (person, what the session says of them, URL, sync) and kept, with their brotli and gzip
//! encodings made once too.
//!
//! A page is only kept when its data says it is final: the server functions the page runs
//! report the sync they showed through a probe in the request ([`ShownSync`]), and the page
//! is stored only when that is the sync the key was made for. A running sync, a first
//! visit, an error, a store that is down: nothing reported, nothing kept. Keys hold the
//! person's user id and the session-derived fields the page shows, and a lookup needs a
//! valid session for that user, so a page is never served to anyone else. Nothing
//! per-request may appear in these pages (no CSRF token) without being part of the key;
//! `tests/pages.rs` checks that a kept page is the page a fresh render gives. The response
//! headers are kept with the page, among them the Content-Security-Policy that
//! `server::security::guard` made from the hashes of the page's own inline scripts (hashes,
//! not nonces, so a kept page's policy stays right however often it is served); the random
//! nonce leptos_axum writes into the scripts is inert, as no policy names it.

use crate::domain::TimeRange;
use crate::server::auth::session::{self, SessionUser};
use crate::server::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Pages larger than this are served but not kept.
const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The sync a page showed, reported by its server functions while it renders.
#[derive(Clone, Default)]
pub struct ShownSync(Arc<Mutex<Option<i64>>>);

impl ShownSync {
    pub fn report(&self, sync_id: i64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(sync_id);
    }

    fn get(&self) -> Option<i64> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session a page request was found to carry, resolved once by the cache's lookup and
/// reused by the server functions of the same request.
#[derive(Clone)]
pub struct ResolvedSession(pub Option<SessionUser>);

/// The main database already failed this request (the session lookup or the page cache's
/// own query did not answer): the page says so at once instead of waiting for the database
/// a second time.
#[derive(Clone, Copy, Debug)]
pub struct MainUnavailable;

struct CachedPage {
    headers: HeaderMap,
    body: Bytes,
    brotli: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
    last_used: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl CachedPage {
    fn encoded(&self, encoding: Encoding) -> &Bytes {
        match encoding {
            Encoding::Identity => &self.body,
            Encoding::Brotli => self.brotli.get_or_init(|| {
                let mut out = Vec::with_capacity(self.body.len() / 6);
                {
                    let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    let _ = writer.write_all(&self.body);
                }
                out.into()
            }),
            Encoding::Gzip => self.gzip.get_or_init(|| {
                let mut writer = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.body.len() / 5),
                    flate2::Compression::new(6),
                );
                let _ = writer.write_all(&self.body);
                writer.finish().unwrap_or_default().into()
            }),
        }
    }

    fn response(&self, encoding: Encoding) -> Response {
        let mut response = Response::new(Body::from(self.encoded(encoding).clone()));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.clone_from(&self.headers);
        match encoding {
            Encoding::Brotli => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            }
            Encoding::Gzip => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Encoding::Identity => {}
        }
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    }
}

/// The best encoding `Accept-Encoding` allows: brotli, then gzip, then none.
fn negotiate(headers: &HeaderMap) -> Encoding {
    let mut brotli = false;
    let mut gzip = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            match name {
                "br" if !refused => brotli = true,
                "gzip" if !refused => gzip = true,
                _ => {}
            }
        }
    }
    if brotli {
        Encoding::Brotli
    } else if gzip {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// Kept pages, least recently used out first, within a memory budget (`PAGE_CACHE_MB`).
#[derive(Clone)]
pub struct PageCache {
    budget: usize,
    inner: Arc<Mutex<Pages>>,
}

#[derive(Default)]
struct Pages {
    map: HashMap<String, Arc<CachedPage>>,
    bytes: usize,
    clock: u64,
}

/// What an entry is counted as: the page, its two encodings (a fifth of it, about), the key.
fn weight(key: &str, page: &CachedPage) -> usize {
    page.body.len() + page.body.len() / 4 + key.len() + 256
}

impl PageCache {
    pub fn new(budget_bytes: usize) -> Self {
        PageCache {
            budget: budget_bytes,
            inner: Arc::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.budget > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pages> {
        // Every change under the lock is one insert or remove: safe after a poisoning panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str) -> Option<Arc<CachedPage>> {
        let mut pages = self.lock();
        pages.clock += 1;
        let now = pages.clock;
        let page = pages.map.get(key)?;
        page.last_used.store(now, Ordering::Relaxed);
        Some(Arc::clone(page))
    }

    fn insert(&self, key: String, page: CachedPage) -> Arc<CachedPage> {
        let page = Arc::new(page);
        let size = weight(&key, &page);
        if size > self.budget {
            return page;
        }
        let mut pages = self.lock();
        pages.clock += 1;
        page.last_used.store(pages.clock, Ordering::Relaxed);
        if let Some(old) = pages.map.insert(key.clone(), Arc::clone(&page)) {
            pages.bytes -= weight(&key, &old);
        }
        pages.bytes += size;
        while pages.bytes > self.budget {
            let Some(oldest) = pages
                .map
                .iter()
                .min_by_key(|(_, p)| p.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = pages.map.remove(&oldest) {
                pages.bytes -= weight(&oldest, &gone);
            }
        }
        page
    }

    /// Drop every page kept for `user_id` (their account is gone).
    pub fn forget_user(&self, user_id: i64) {
        let marker = format!("|user {user_id}|");
        let mut pages = self.lock();
        let gone: Vec<String> = pages
            .map
            .keys()
            .filter(|k| k.contains(&marker))
            .cloned()
            .collect();
        for key in gone {
            if let Some(page) = pages.map.remove(&key) {
                pages.bytes -= weight(&key, &page);
            }
        }
    }

    /// Pages kept now (for tests and the benchmark).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pages kept for one user.
    pub fn len_of(&self, user_id: i64) -> usize {
        let marker = format!("|user {user_id}|");
        self.lock()
            .map
            .keys()
            .filter(|k| k.contains(&marker))
            .count()
    }
}

/// The key of a page request and the sync it must show to be kept; `Ok(None)`: not a page
/// that is kept (a sync running, the data not at hand); `Err`: the main database did not
/// answer.
async fn page_key(
    state: &AppState,
    path: &str,
    query: &str,
    user: &SessionUser,
) -> Result<Option<(String, i64)>, MainUnavailable> {
    let range = match query_param(query, "range") {
        None => TimeRange::ShortTerm,
        Some(raw) => match raw.parse() {
            Ok(range) => range,
            Err(_) => return Ok(None),
        },
    };
    let sync_id = match path {
        "/dashboard" => {
            // Its progress changes by the second while a sync runs.
            if state.syncs.progress(user.user_id).await.is_some() {
                return Ok(None);
            }
            match state
                .stores
                .cache
                .top_sync_id(&user.spotify_id, range)
                .await
            {
                Ok(Some(id)) => id,
                _ => return Ok(None),
            }
        }
        "/history" => {
            match crate::server::sync::history::recent_syncs(&state.stores.main, user.user_id, 1)
                .await
            {
                Ok(syncs) => match syncs.first() {
                    Some(id) => *id,
                    None => return Ok(None),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "page cache: the latest sync could not be read");
                    return Err(MainUnavailable);
                }
            }
        }
        _ => return Ok(None),
    };
    let key = format!(
        "{path}?{query}|user {id}|name {name:?}|relogin {relogin}|sync {sync_id}",
        id = user.user_id,
        name = user.display_name,
        relogin = user.needs_relogin,
    );
    Ok(Some((key, sync_id)))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The middleware: serve a kept page, or render it and keep it if its data is final.
pub async fn serve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let cacheable_route = matches!(request.uri().path(), "/dashboard" | "/history");
    if !cacheable_route || request.method() != Method::GET || !state.pages.enabled() {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let headers = request.headers().clone();
    let user = match session::current_user(&state.stores.main, &state.sessions, &headers).await {
        Ok(user) => user,
        // The page says what is wrong, without asking the database again.
        Err(e) => {
            tracing::warn!(error = %e, "session lookup failed");
            request.extensions_mut().insert(MainUnavailable);
            return next.run(request).await;
        }
    };
    request
        .extensions_mut()
        .insert(ResolvedSession(user.clone()));
    let Some(user) = user else {
        return next.run(request).await;
    };
    let (key, sync_id) = match page_key(&state, &path, &query, &user).await {
        Ok(Some(found)) => found,
        Ok(None) => return next.run(request).await,
        Err(down) => {
            request.extensions_mut().insert(down);
            return next.run(request).await;
        }
    };
    let encoding = negotiate(&headers);
    if let Some(page) = state.pages.get(&key) {
        return page.response(encoding);
    }

    let shown = ShownSync::default();
    request.extensions_mut().insert(shown.clone());
    let response = next.run(request).await;
    let keep = response.status() == StatusCode::OK
        && !response.headers().contains_key(header::SET_COOKIE)
        && !response.headers().contains_key(header::CONTENT_ENCODING)
        && shown.get() == Some(sync_id);
    if !keep {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "page not kept: its body could not be read");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be sent.",
            )
                .into_response();
        }
    };
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    let page = state.pages.insert(
        key,
        CachedPage {
            headers,
            body,
            brotli: OnceLock::new(),
            gzip: OnceLock::new(),
            last_used: AtomicU64::new(0),
        },
    );
    page.response(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(bytes: usize) -> CachedPage {
        CachedPage {
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; bytes]),
            brotli: OnceLock::new(),
            gzip: OnceLock::new(),
            last_used: AtomicU64::new(0),
        }
    }

    #[test]
    fn the_least_recently_used_page_goes_first_within_the_budget() {
        let cache = PageCache::new(3 * weight("k0", &page(1000)));
        for k in ["k0", "k1", "k2"] {
            cache.insert(k.into(), page(1000));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("k0").is_some()); // k1 is now the least recently used
        cache.insert("k3".into(), page(1000));
        assert_eq!(cache.len(), 3);
        assert!(cache.get("k1").is_none());
        assert!(cache.get("k0").is_some() && cache.get("k2").is_some());
        // A page larger than the whole budget is served, never kept.
        cache.insert("huge".into(), page(10_000));
        assert!(cache.get("huge").is_none());
    }

    #[test]
    fn encodings_follow_accept_encoding_and_decode_to_the_page() {
        let header = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            h
        };
        assert_eq!(
            negotiate(&header("gzip, deflate, br, zstd")),
            Encoding::Brotli
        );
        assert_eq!(negotiate(&header("gzip")), Encoding::Gzip);
        assert_eq!(negotiate(&header("br;q=0, gzip;q=0.5")), Encoding::Gzip);
        assert_eq!(negotiate(&header("identity")), Encoding::Identity);
        assert_eq!(negotiate(&HeaderMap::new()), Encoding::Identity);

        let html = "<p>the same page</p>".repeat(200);
        let cached = CachedPage {
            body: Bytes::from(html.clone()),
            ..page(0)
        };
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(&mut &cached.encoded(Encoding::Brotli)[..], &mut unbrotli)
            .unwrap();
        assert_eq!(unbrotli, html.as_bytes());
        let mut ungzip = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&cached.encoded(Encoding::Gzip)[..]),
            &mut ungzip,
        )
        .unwrap();
        assert_eq!(ungzip, html);
        assert!(cached.encoded(Encoding::Brotli).len() < html.len() / 10);
    }
}
