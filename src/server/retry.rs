//! Bounded retry with exponential backoff, for stores that may still be starting.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Run `attempt` until it succeeds or `budget` has passed, sleeping 250 ms, 500 ms, 1 s ...
/// (capped at 4 s) between tries. Returns the last error when the budget runs out.
pub async fn with_backoff<T, E, F, Fut>(
    what: &str,
    budget: Duration,
    mut attempt: F,
) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + budget;
    let mut delay = Duration::from_millis(250);
    let mut tries = 1u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(store = what, tries, "connected after retrying");
                }
                return Ok(value);
            }
            Err(err) => {
                let now = Instant::now();
                if now + delay > deadline {
                    return Err(err);
                }
                tracing::warn!(store = what, tries, error = %err, retry_in_ms = delay.as_millis() as u64, "not answering yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(4));
                tries += 1;
            }
        }
    }
}

/// Run `attempt` again at once (then after 50, 100 … 500 ms) for as long as it fails with
/// an error `transient` accepts, until `deadline` has passed: a pool that kept connections
/// through a store's outage hands them out one by one, and each fails the one query that
/// finds it broken (and is discarded), so how many tries it takes is not known. Another
/// error, or the deadline, ends it with that error.
pub async fn until_live<T, E, F, Fut>(
    deadline: Duration,
    transient: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let until = Instant::now() + deadline;
    let mut delay = Duration::ZERO;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if !transient(&err) || Instant::now() + delay >= until => return Err(err),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).clamp(Duration::from_millis(50), Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_within_budget() {
        let calls = Cell::new(0);
        let result: Result<u32, String> = with_backoff("test", Duration::from_secs(10), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(format!("try {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_with_the_last_error_when_the_budget_runs_out() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let result: Result<(), String> = with_backoff("test", Duration::from_secs(2), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err(format!("try {n}")) }
        })
        .await;
        // 250 + 500 + 1000 ms fit in 2 s; the next 2 s sleep would not.
        assert_eq!(result, Err("try 4".to_string()));
        assert!(started.elapsed() <= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn until_live_tries_past_any_number_of_transient_failures_within_the_deadline() {
        let calls = Cell::new(0);
        let result: Result<u32, &str> = until_live(
            Duration::from_secs(10),
            |e| *e == "broken",
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n <= 12 {
                        Err("broken")
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok(13));
    }

    #[tokio::test(start_paused = true)]
    async fn until_live_stops_at_another_error_or_the_deadline() {
        let calls = Cell::new(0);
        let other: Result<(), &str> = until_live(
            Duration::from_secs(10),
            |e| *e == "broken",
            || {
                calls.set(calls.get() + 1);
                async { Err("refused") }
            },
        )
        .await;
        assert_eq!((other, calls.get()), (Err("refused"), 1));
        let started = Instant::now();
        let late: Result<(), &str> =
            until_live(Duration::from_secs(2), |_| true, || async { Err("broken") }).await;
        assert_eq!(late, Err("broken"));
        assert!(started.elapsed() <= Duration::from_secs(2));
    }
}
