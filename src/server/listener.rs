//! The HTTP listener: accepts connections and serves the router on each, with the limits a
//! server on the open internet needs and `axum::serve` does not set (it has no timer, so a
//! client that never finishes its headers held a connection and a task forever):
//!
//! - a request head (request line and headers) must arrive within `HEADER_TIMEOUT_SECS`,
//!   which also closes kept-alive connections idle that long;
//! - a request target longer than [`MAX_URI_BYTES`] answers 414 and headers larger than
//!   [`MAX_HEADER_BYTES`] answer 431, at once, before any handler runs; hyper's read buffer
//!   ([`MAX_BUF_BYTES`]) answers 431 for anything larger still;
//! - shutdown stops accepting, lets requests in flight finish, and drops whatever is still
//!   open after the configured deadline (`SHUTDOWN_TIMEOUT_SECS`).
//!
//! Accepted sockets get `TCP_NODELAY` (a large page on a kept-alive connection otherwise
//! waited ~15 ms for Nagle against delayed ACKs) and each request carries the peer's address
//! as `axum::extract::ConnectInfo<SocketAddr>`.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Longest request target (path and query) served; longer is 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest sum of header names and values served; larger is 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's read buffer per connection: a head that does not fit is 431 before parsing ends.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// Serve `router` on `listener` until `shutdown` resolves, then give open connections up to
/// `deadline` to finish. `header_timeout`: see the module.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    header_timeout: Duration,
    deadline: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_BUF_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(Some(64));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning; a
                    // connection that failed its handshake costs nothing.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                if let Some(refused) = over_limits(&request) {
                    return Ok::<_, std::convert::Infallible>(refused);
                }
                router.oneshot(request.map(Body::new)).await
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            if let Err(err) = connection.await {
                // Clients that go away mid-request, header timeouts and malformed requests.
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    while connections.try_join_next().is_some() {}
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            deadline_secs = deadline.as_secs_f64(),
            "waiting for open connections to finish"
        );
    }
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_ok()
    {
        return;
    }
    while connections.try_join_next().is_some() {}
    let dropped = connections.len();
    tracing::warn!(
        dropped,
        deadline_secs = deadline.as_secs_f64(),
        "shutdown deadline passed: dropping the connections still open"
    );
    connections.shutdown().await;
}

/// 414 or 431 for a request whose target or headers are larger than we serve.
fn over_limits<B>(request: &Request<B>) -> Option<Response<Body>> {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some(plain(
            StatusCode::URI_TOO_LONG,
            format!(
                "This address is too long ({uri_len} bytes; at most {MAX_URI_BYTES} are served)."
            ),
        ));
    }
    let header_len: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_len > MAX_HEADER_BYTES {
        return Some(plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request headers are too large ({header_len} bytes; at most \
                 {MAX_HEADER_BYTES} are served). Clearing this site's cookies may help."
            ),
        ));
    }
    None
}

/// The refusal in plain text; the connection closes after it (the rest of an oversized
/// request is not worth reading).
fn plain(status: StatusCode, message: String) -> Response<Body> {
    let mut response = super::security::plain_text(status, message);
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_and_large_headers_are_refused() {
        let ok = Request::get("/dashboard?x=1").body(()).unwrap();
        assert!(over_limits(&ok).is_none());
        let long = Request::get(format!("/dashboard?q={}", "a".repeat(MAX_URI_BYTES)))
            .body(())
            .unwrap();
        assert_eq!(
            over_limits(&long).map(|r| r.status()),
            Some(StatusCode::URI_TOO_LONG)
        );
        let mut big = Request::get("/").body(()).unwrap();
        for i in 0..40 {
            big.headers_mut().insert(
                axum::http::HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                axum::http::HeaderValue::from_str(&"b".repeat(1000)).unwrap(),
            );
        }
        assert_eq!(
            over_limits(&big).map(|r| r.status()),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }
}
