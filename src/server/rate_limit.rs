//! Per-client rate limits on the routes anyone can hit without signing in and that cost
//! something: `/auth/login` and `/auth/demo` (each starts a sign-in, stored in PostgreSQL)
//! and `/readyz` and `/metrics` (they probe stores). A fixed one-minute window per client address and
//! route group, in this process. Behind a reverse proxy every client shares the proxy's
//! address: raise the limits there, or let the proxy limit.

use super::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::middleware::Next;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at most; past it, windows that ended are forgotten first.
const MAX_CLIENTS: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    SignIn,
    Readiness,
}

pub struct RateLimiter {
    sign_in_per_minute: u32,
    readiness_per_minute: u32,
    windows: Mutex<HashMap<(Group, IpAddr), (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(sign_in_per_minute: u32, readiness_per_minute: u32) -> Self {
        RateLimiter {
            sign_in_per_minute,
            readiness_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count one request; `Err(wait)` if the client is over its limit.
    fn check(&self, group: Group, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let limit = match group {
            Group::SignIn => self.sign_in_per_minute,
            Group::Readiness => self.readiness_per_minute,
        };
        if limit == 0 {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_CLIENTS {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let window = windows.entry((group, client)).or_insert((now, 0));
        if now.duration_since(window.0) >= WINDOW {
            *window = (now, 0);
        }
        if window.1 >= limit {
            return Err(WINDOW.saturating_sub(now.duration_since(window.0)));
        }
        window.1 += 1;
        Ok(())
    }
}

/// The middleware: 429 with `Retry-After` and a plain message over the limit.
pub async fn limit(
    State(state): State<AppState>,
    request: Request<Body>,
    next: Next,
) -> Response<Body> {
    let group = match request.uri().path() {
        "/auth/login" | "/auth/demo" => Group::SignIn,
        "/readyz" | "/metrics" => Group::Readiness,
        _ => return next.run(request).await,
    };
    // Requests that did not come through the listener (none in production) are not limited.
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return next.run(request).await;
    };
    match state.limiter.check(group, peer.ip(), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            tracing::info!(client = %peer.ip(), path = %request.uri().path(), "rate limited");
            let what = match group {
                Group::SignIn => "Too many sign-in attempts from your address",
                Group::Readiness => "Too many readiness checks from your address",
            };
            let mut response = super::security::plain_text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{what}. Try again in {secs} seconds."),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_group_has_its_own_window() {
        let limiter = RateLimiter::new(2, 1);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.check(Group::SignIn, a, t0).is_ok());
        assert!(limiter.check(Group::SignIn, a, t0).is_ok());
        let wait = limiter.check(Group::SignIn, a, t0).unwrap_err();
        assert_eq!(wait, WINDOW);
        assert!(
            limiter.check(Group::SignIn, b, t0).is_ok(),
            "another client"
        );
        assert!(
            limiter.check(Group::Readiness, a, t0).is_ok(),
            "another group"
        );
        assert!(limiter.check(Group::Readiness, a, t0).is_err());
        // The next window starts afresh.
        assert!(limiter.check(Group::SignIn, a, t0 + WINDOW).is_ok());
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(limiter.check(Group::SignIn, a, Instant::now()).is_ok());
        }
    }
}
