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
}
