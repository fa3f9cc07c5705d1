//! The Web API (`/v1/...`): `/me`, top artists and tracks, recently played, one artist.
//! Bearer token first, then parameters, as Spotify checks them; errors are Spotify's
//! `{"error":{"status":N,"message":"..."}}`.

use super::objects::{self, CursorPaging, Cursors, Paging, PlayHistory};
use super::tastes::{self, plays_on};
use super::tokens::{AccessError, Principal};
use super::{Fault, Params, Shared, DAY_MS};
use crate::domain::TimeRange;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;

/// The scopes Spotify requires for these endpoints; a token without it gets 403.
const TOP_READ: &str = "user-top-read";
const RECENTLY_PLAYED: &str = "user-read-recently-played";

/// Plays are looked for this far back; of them only the newest [`RECENT_LIMIT`] are
/// visible, as on Spotify, which keeps a listener's last 50 plays.
const HISTORY_DAYS: i64 = 7;
const RECENT_LIMIT: usize = 50;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("No token provided")]
    NoToken,
    #[error("Only valid bearer authentication supported")]
    NotBearer,
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("Insufficient client scope")]
    InsufficientScope,
    #[error("Invalid limit")]
    InvalidLimit,
    #[error("Invalid offset")]
    InvalidOffset,
    #[error("Invalid time range")]
    InvalidTimeRange,
    #[error("Invalid before")]
    InvalidBefore,
    #[error("Invalid after")]
    InvalidAfter,
    #[error("Only one of before or after may be specified")]
    BothCursors,
    #[error("Invalid base62 id")]
    InvalidId,
    #[error("Resource not found")]
    NotFound,
    #[error("Service not found")]
    NoService,
    #[error("{message}")]
    Injected {
        status: StatusCode,
        message: &'static str,
        retry_after_secs: Option<u64>,
    },
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NoToken | Self::Access(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::NotFound | Self::NoService => StatusCode::NOT_FOUND,
            Self::Injected { status, .. } => *status,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<Fault> for ApiError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::RateLimit { retry_after_secs } => ApiError::Injected {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "API rate limit exceeded",
                retry_after_secs: Some(retry_after_secs),
            },
            // The messages Spotify sends with these statuses.
            Fault::Status(status) => ApiError::Injected {
                status,
                message: match status.as_u16() {
                    400 => "Bad request",
                    401 => "Invalid access token",
                    403 => "Forbidden",
                    404 => "Resource not found",
                    429 => "API rate limit exceeded",
                    500 => "Server error.",
                    502 => "Bad gateway.",
                    503 => "Service unavailable",
                    _ => status.canonical_reason().unwrap_or("Error"),
                },
                retry_after_secs: None,
            },
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize)]
struct ErrorDetail {
    status: u16,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let ApiError::Injected {
            retry_after_secs: Some(secs),
            ..
        } = self
        {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Access(err) = self {
            // Spotify names the problem in the challenge too (RFC 6750).
            let challenge = format!(
                "Bearer realm=\"spotify\", error=\"invalid_token\", error_description=\"{err}\""
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl Shared {
    /// The bearer token's principal, or Spotify's refusal.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let value = headers.get(AUTHORIZATION).ok_or(ApiError::NoToken)?;
        let value = value.to_str().map_err(|_| ApiError::NotBearer)?;
        let (scheme, token) = value.split_once(' ').ok_or(ApiError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::NotBearer);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::NoToken);
        }
        let principal = self.tokens.check_access(token)?;
        if let Some(needed) = scope {
            if !principal.scope.split(' ').any(|s| s == needed) {
                return Err(ApiError::InsufficientScope);
            }
        }
        Ok(principal)
    }
}

/// `limit`: 1..=50, default 20.
fn parse_limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(20),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=50).contains(l))
            .ok_or(ApiError::InvalidLimit),
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NoService
}

pub(crate) async fn me(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = sim.authenticate(&headers, None)?;
    Ok(Json(objects::user(sim.shape(), principal.user)).into_response())
}

pub(crate) async fn artist(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    sim.authenticate(&headers, None)?;
    if !super::rng::is_base62_id(&id) {
        return Err(ApiError::InvalidId);
    }
    let artist = sim.catalogue.artist_by_id(&id).ok_or(ApiError::NotFound)?;
    Ok(Json(objects::artist(sim.shape(), artist)).into_response())
}

pub(crate) async fn top(
    State(sim): State<Arc<Shared>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    // An unknown type is an unknown endpoint: 404 before the token is even looked at.
    if kind != "artists" && kind != "tracks" {
        return Err(ApiError::NoService);
    }
    let principal = sim.authenticate(&headers, Some(TOP_READ))?;
    let params = Params::query(query.as_deref());
    let range = match params.get("time_range") {
        None => TimeRange::MediumTerm,
        Some(raw) => raw.parse().map_err(|_| ApiError::InvalidTimeRange)?,
    };
    let limit = parse_limit(&params)?;
    let offset = match params.get("offset") {
        None => 0,
        Some(raw) => raw.parse::<u32>().map_err(|_| ApiError::InvalidOffset)? as usize,
    };

    let (c, shape, day) = (&sim.catalogue, sim.shape(), sim.day());
    let new_listener = range == TimeRange::ShortTerm && sim.is_new_listener(principal.user);
    let list = if new_listener {
        Vec::new()
    } else if kind == "artists" {
        tastes::top_artists(c, principal.user, range, day)
    } else {
        tastes::top_tracks(c, principal.user, range, day)
    };
    let total = list.len();
    let page_url = |offset: usize| {
        format!(
            "{}/v1/me/top/{kind}?time_range={range}&limit={limit}&offset={offset}",
            shape.base
        )
    };
    let page = list.iter().skip(offset).take(limit);
    let links = PageLinks {
        href: page_url(offset),
        next: (offset + limit < total).then(|| page_url(offset + limit)),
        previous: (offset > 0).then(|| page_url(offset.saturating_sub(limit))),
        // Fit u32: limit <= 50, offset was parsed as u32, total <= 99.
        limit: limit as u32,
        offset: offset as u32,
        total: total as u32,
    };
    Ok(if kind == "artists" {
        let items = page
            .map(|&a| objects::artist(shape, &c.artists[a]))
            .collect();
        Json(links.with(items)).into_response()
    } else {
        let items = page
            .map(|&t| objects::track(shape, c, &c.tracks[t]))
            .collect();
        Json(links.with(items)).into_response()
    })
}

/// A paging object without its items (artists or tracks).
struct PageLinks {
    href: String,
    next: Option<String>,
    previous: Option<String>,
    limit: u32,
    offset: u32,
    total: u32,
}

impl PageLinks {
    fn with<T>(self, items: Vec<T>) -> Paging<T> {
        Paging {
            href: self.href,
            items,
            limit: self.limit,
            next: self.next,
            offset: self.offset,
            previous: self.previous,
            total: self.total,
        }
    }
}

fn parse_cursor(raw: Option<&str>, err: ApiError) -> Result<Option<i64>, ApiError> {
    raw.map(|r| r.parse::<i64>().ok().filter(|ms| *ms >= 0).ok_or(err))
        .transpose()
}

fn played_at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The listener's last 50 plays, newest first. Without a cursor, or with `before`, the
/// newest of them older than it; with
/// `after`, the plays right after it (the oldest newer ones), so a client can page forward
/// from its last sync with `next` without gaps.
pub(crate) async fn recently_played(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let principal = sim.authenticate(&headers, Some(RECENTLY_PLAYED))?;
    let params = Params::query(query.as_deref());
    let limit = parse_limit(&params)?;
    let before = parse_cursor(params.get("before"), ApiError::InvalidBefore)?;
    let after = parse_cursor(params.get("after"), ApiError::InvalidAfter)?;
    if before.is_some() && after.is_some() {
        return Err(ApiError::BothCursors);
    }

    let (c, shape) = (&sim.catalogue, sim.shape());
    let now = sim.now_ms();
    let today = now.div_euclid(DAY_MS);
    let oldest_visible = now - HISTORY_DAYS * DAY_MS;
    // Oldest first; the last 50 only.
    let mut history: Vec<tastes::Play> = (today - HISTORY_DAYS..=today)
        .flat_map(|day| plays_on(c, principal.user, day))
        .filter(|p| p.played_at_ms > oldest_visible && p.played_at_ms <= now)
        .collect();
    history.drain(..history.len().saturating_sub(RECENT_LIMIT));

    let (mut window, more) = match after {
        Some(after) => {
            let newer: Vec<_> = history.iter().filter(|p| p.played_at_ms > after).collect();
            let more = newer.len() > limit;
            (newer.into_iter().take(limit).collect::<Vec<_>>(), more)
        }
        None => {
            let before = before.unwrap_or(i64::MAX);
            let older: Vec<_> = history.iter().filter(|p| p.played_at_ms < before).collect();
            let more = older.len() > limit;
            let skip = older.len().saturating_sub(limit);
            (older.into_iter().skip(skip).collect::<Vec<_>>(), more)
        }
    };
    window.reverse();

    let base = format!("{}/v1/me/player/recently-played?limit={limit}", shape.base);
    let href = match (before, after) {
        (Some(b), _) => format!("{base}&before={b}"),
        (_, Some(a)) => format!("{base}&after={a}"),
        _ => base.clone(),
    };
    let cursors = match (window.first(), window.last()) {
        (Some(newest), Some(oldest)) => Some(Cursors {
            after: newest.played_at_ms.to_string(),
            before: oldest.played_at_ms.to_string(),
        }),
        _ => None,
    };
    let next = match (&cursors, more) {
        (Some(cursors), true) if after.is_some() => Some(format!("{base}&after={}", cursors.after)),
        (Some(cursors), true) => Some(format!("{base}&before={}", cursors.before)),
        _ => None,
    };
    let items = window
        .iter()
        .map(|p| PlayHistory {
            track: objects::track(shape, c, &c.tracks[p.track]),
            played_at: played_at(p.played_at_ms),
            context: None,
        })
        .collect();
    Ok(Json(CursorPaging {
        items,
        next,
        cursors,
        limit: limit as u32,
        href,
    })
    .into_response())
}
