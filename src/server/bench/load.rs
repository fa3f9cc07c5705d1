//! A small HTTP/1.1 load generator, in the spirit of wrk: N keep-alive connections, each
//! sending the same GET one request after another for a fixed time, every response read
//! to its end. Latency is from sending a request to its last body byte; only requests that
//! complete inside the measured window count (a warm-up before it is not measured).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One load run: what to ask for and for how long.
#[derive(Clone)]
pub struct Load {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub requests: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Mean response body size on the wire (after any compression).
    pub body_bytes: usize,
    /// The `Content-Encoding` responses came with ("identity" without one).
    pub encoding: String,
    /// Responses other than 200, and failed connections or requests.
    pub errors: usize,
}

struct Sample {
    done_at: Instant,
    latency: Duration,
    bytes: usize,
}

struct ConnectionResult {
    samples: Vec<Sample>,
    errors: usize,
    encoding: Option<String>,
}

pub async fn run(load: &Load) -> Result<Measured, String> {
    let start = Instant::now();
    let window_start = start + load.warmup;
    let end = window_start + load.measure;
    let tasks: Vec<_> = (0..load.connections.max(1))
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move { connection(&load, end).await })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut encoding = None;
    for task in tasks {
        let result = task.await.map_err(|e| e.to_string())?;
        errors += result.errors;
        encoding = encoding.or(result.encoding);
        samples.extend(
            result
                .samples
                .into_iter()
                .filter(|s| s.done_at >= window_start && s.done_at <= end),
        );
    }
    if samples.is_empty() {
        return Err(format!(
            "{}: no request completed ({errors} errors)",
            load.path
        ));
    }
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let body_bytes = samples.iter().map(|s| s.bytes).sum::<usize>() / samples.len();
    Ok(Measured {
        requests: samples.len(),
        per_second: samples.len() as f64 / load.measure.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies[latencies.len() - 1],
        body_bytes,
        encoding: encoding.unwrap_or_else(|| "identity".into()),
        errors,
    })
}

/// The value below which a fraction `p` of the sorted `values` lie (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn connection(load: &Load, end: Instant) -> ConnectionResult {
    let mut result = ConnectionResult {
        samples: Vec::new(),
        errors: 0,
        encoding: None,
    };
    // A connection that breaks is opened again, as a browser would.
    while Instant::now() < end {
        let stream = match TcpStream::connect(load.addr).await {
            Ok(stream) => stream,
            Err(_) => {
                result.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            result.errors += 1;
            continue;
        };
        let driver = tokio::spawn(conn);
        while Instant::now() < end {
            if sender.ready().await.is_err() {
                result.errors += 1;
                break;
            }
            let mut request = Request::get(load.path.as_str())
                .header(hyper::header::HOST, load.addr.to_string())
                .body(Empty::<Bytes>::new())
                .expect("a GET with valid headers");
            for (name, value) in &load.headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            let sent = Instant::now();
            let response = match sender.send_request(request).await {
                Ok(response) => response,
                Err(_) => {
                    result.errors += 1;
                    break;
                }
            };
            let status = response.status();
            if result.encoding.is_none() {
                result.encoding = response
                    .headers()
                    .get(hyper::header::CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            let bytes = match response.into_body().collect().await {
                Ok(body) => body.to_bytes().len(),
                Err(_) => {
                    result.errors += 1;
                    break;
                }
            };
            let done_at = Instant::now();
            if status != hyper::StatusCode::OK {
                result.errors += 1;
                continue;
            }
            result.samples.push(Sample {
                done_at,
                latency: done_at - sent,
                bytes,
            });
        }
        driver.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 0.99),
            Duration::from_millis(7)
        );
    }
}
