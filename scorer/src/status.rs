//! What the pipeline tells the sidecar's `/readyz`: whether it runs, and why it is not healthy.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Pipeline state shared with the HTTP sidecar.
#[derive(Debug, Default)]
pub struct PipelineStatus {
    running: AtomicBool,
    /// Why the pipeline cannot make progress, while it cannot.
    problem: Mutex<Option<String>>,
}

impl PipelineStatus {
    /// Marks the consumer as subscribed and polling (or not).
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    /// Whether the consumer is subscribed and polling.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Records why the pipeline is stuck (`None` once it makes progress again).
    pub fn set_problem(&self, problem: Option<String>) {
        *self
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    /// Why the pipeline is stuck, if it is.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
