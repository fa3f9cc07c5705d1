//! Circuit breakers, one per store that a page may wait on (each analytics node, MongoDB,
//! Redis). A store that misses a deadline is marked down, and every caller after that is
//! told so at once ([`Breaker::check`]) instead of waiting out a deadline of its own; a
//! background probe, every [`PROBE_EVERY`] and itself bounded, marks it up again as soon as
//! it answers. So a hung store costs one wait, and the pages after it answer at once with
//! their "unavailable" sentence.
//!
//! Only a missed deadline (or a store that refuses outright) opens a breaker; an error the
//! store answered with (a bad statement, a duplicate key) says the store is there.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Between probes of a store marked down.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe that takes longer than this failed.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// Asks the store a trivial question; whether it answered.
pub type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A store marked down: its name, as the pages say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not answering")]
pub struct Down(pub &'static str);

#[derive(Clone)]
pub struct Breaker(Arc<Inner>);

struct Inner {
    store: &'static str,
    probe: Probe,
    /// Since when it is marked down.
    down_since: Mutex<Option<Instant>>,
    /// A probe task runs.
    probing: AtomicBool,
}

impl Breaker {
    pub fn new(store: &'static str, probe: Probe) -> Self {
        Breaker(Arc::new(Inner {
            store,
            probe,
            down_since: Mutex::new(None),
            probing: AtomicBool::new(false),
        }))
    }

    pub fn store(&self) -> &'static str {
        self.0.store
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.down_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long it has been marked down, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.since().map(|at| at.elapsed())
    }

    /// `Err` at once while the store is marked down.
    pub fn check(&self) -> Result<(), Down> {
        match self.down_for() {
            Some(_) => Err(Down(self.0.store)),
            None => Ok(()),
        }
    }

    /// The store missed a deadline: mark it down (if it is not yet) and probe it until it
    /// answers.
    pub fn trip(&self) {
        {
            let mut since = self.since();
            if since.is_none() {
                *since = Some(Instant::now());
                tracing::warn!(
                    store = self.0.store,
                    "store marked down: it missed a deadline; probing it every second"
                );
            }
        }
        if self.0.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.0.probing.store(false, Ordering::SeqCst);
            return;
        };
        let breaker = self.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let answered = matches!(
                    tokio::time::timeout(PROBE_DEADLINE, (breaker.0.probe)()).await,
                    Ok(true)
                );
                if answered {
                    let was = breaker.since().take();
                    breaker.0.probing.store(false, Ordering::SeqCst);
                    tracing::info!(
                        store = breaker.0.store,
                        down_ms = was.map(|at| at.elapsed().as_millis() as u64),
                        "store answers again"
                    );
                    return;
                }
            }
        });
    }

    /// Ask the store now (bounded by [`PROBE_DEADLINE`]) and mark it down if it does not
    /// answer: for a read over several stores that missed its deadline without saying which
    /// store held it up.
    pub async fn probe_now(&self) {
        if self.check().is_err() {
            return;
        }
        let answered = matches!(
            tokio::time::timeout(PROBE_DEADLINE, (self.0.probe)()).await,
            Ok(true)
        );
        if !answered {
            self.trip();
        }
    }

    /// Run `operation` within `deadline` unless the store is marked down (then `Err` at
    /// once); a missed deadline marks it down.
    pub async fn call<T>(
        &self,
        deadline: Duration,
        operation: impl Future<Output = T>,
    ) -> Result<T, Down> {
        self.check()?;
        match tokio::time::timeout(deadline, operation).await {
            Ok(value) => Ok(value),
            Err(_) => {
                self.trip();
                Err(Down(self.0.store))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn probe_answering(from_try: u32) -> (Probe, Arc<AtomicU32>) {
        let tries = Arc::new(AtomicU32::new(0));
        let counted = tries.clone();
        let probe: Probe = Arc::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move { n >= from_try })
        });
        (probe, tries)
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_deadline_marks_the_store_down_until_a_probe_answers() {
        let (probe, tries) = probe_answering(3);
        let breaker = Breaker::new("Test store", probe);
        assert_eq!(
            breaker.call(Duration::from_secs(1), async { 7 }).await,
            Ok(7)
        );
        let hung = breaker
            .call(Duration::from_secs(1), std::future::pending::<()>())
            .await;
        assert_eq!(hung, Err(Down("Test store")));
        // Down: answered at once, without running the operation.
        let started = tokio::time::Instant::now();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let refused = breaker
            .call(Duration::from_secs(5), async move {
                flag.store(true, Ordering::SeqCst)
            })
            .await;
        assert_eq!(refused, Err(Down("Test store")));
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(started.elapsed(), Duration::ZERO);
        // The probe answers at its third try: up again.
        tokio::time::sleep(PROBE_EVERY * 3 + Duration::from_millis(10)).await;
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(breaker.check(), Ok(()));
        tokio::time::sleep(PROBE_EVERY * 3).await;
        assert_eq!(tries.load(Ordering::SeqCst), 3, "no probing while up");
    }

    #[tokio::test(start_paused = true)]
    async fn probe_now_marks_down_only_a_store_that_does_not_answer() {
        let (answering, _) = probe_answering(1);
        let up = Breaker::new("Up", answering);
        up.probe_now().await;
        assert_eq!(up.check(), Ok(()));
        let silent: Probe = Arc::new(|| Box::pin(std::future::pending::<bool>()));
        let hung = Breaker::new("Hung", silent);
        hung.probe_now().await;
        assert_eq!(hung.check(), Err(Down("Hung")));
    }
}
