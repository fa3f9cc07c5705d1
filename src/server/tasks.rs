//! Background tasks (the scheduler, the outbox worker), supervised: a task that stops —
//! panics, or returns while the server still runs — is started again after a pause that
//! grows from 1 s to 30 s (back to 1 s once it has run a minute). `/readyz` and `/metrics`
//! show each task's state and restarts.

use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// A task that ran this long before stopping starts again after [`FIRST_PAUSE`].
const STEADY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    pub name: &'static str,
    pub running: bool,
    pub restarts: u64,
}

#[derive(Clone, Default)]
pub struct Tasks(Arc<Mutex<BTreeMap<&'static str, TaskInfo>>>);

impl Tasks {
    fn update(&self, name: &'static str, change: impl FnOnce(&mut TaskInfo)) {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let task = tasks.entry(name).or_insert(TaskInfo {
            name,
            running: false,
            restarts: 0,
        });
        change(task);
    }

    /// Every supervised task, by name.
    pub fn snapshot(&self) -> Vec<TaskInfo> {
        let tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tasks.values().cloned().collect()
    }

    /// Run `make()` as task `name`, and again whenever it stops while `keep_going()` holds
    /// (a panic always counts as stopping; a return is the task's own way to end, at
    /// shutdown, unless `keep_going` says the server still runs).
    pub fn supervise<F, Fut>(
        &self,
        name: &'static str,
        make: F,
        keep_going: impl Fn() -> bool + Send + 'static,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let tasks = self.clone();
        tokio::spawn(async move {
            let mut pause = FIRST_PAUSE;
            loop {
                tasks.update(name, |t| t.running = true);
                let started = Instant::now();
                let outcome = tokio::spawn(make()).await;
                tasks.update(name, |t| t.running = false);
                match outcome {
                    Err(err) if err.is_panic() => {
                        tracing::error!(task = name, "background task panicked; restarting it")
                    }
                    Err(_) => return, // cancelled: the runtime is shutting down
                    Ok(()) if !keep_going() => return,
                    Ok(()) => {
                        tracing::error!(task = name, "background task stopped; restarting it")
                    }
                }
                if started.elapsed() >= STEADY {
                    pause = FIRST_PAUSE;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                tasks.update(name, |t| t.restarts += 1);
            }
        })
    }
}
