//! What the pipeline tells the sidecar's `/readyz`: whether it runs, and why it is not healthy.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use heart_kafka::ConnectionWatch;

/// The parts of the pipeline that can get stuck, each reporting its own problem so that one
/// recovering does not hide another that has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Finding the topics the pipeline writes, before it starts.
    Topics,
    /// Reaching a broker at all, checked while no records arrive (a busy pipeline finds out
    /// through its batches).
    Broker,
    /// Writing and committing batches.
    Output,
    /// Fetching writer schemas from the Schema Registry.
    Registry,
    /// Getting the assigned partitions' committed offsets from the group coordinator.
    Offsets,
}

/// Pipeline state shared with the HTTP sidecar.
#[derive(Debug, Default)]
pub struct PipelineStatus {
    running: AtomicBool,
    /// Why the pipeline cannot make progress, per stage, while it cannot.
    problems: Mutex<BTreeMap<Stage, String>>,
    /// The context of every Kafka client of the replica: whether the cluster refuses it.
    connection: ConnectionWatch,
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

    /// Records why `stage` is stuck (`None` once it makes progress again).
    pub fn set_problem(&self, stage: Stage, problem: Option<String>) {
        let mut problems = self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match problem {
            Some(p) => problems.insert(stage, p),
            None => problems.remove(&stage),
        };
    }

    /// The watch every Kafka client of the replica reports refusals to.
    pub fn connection(&self) -> &ConnectionWatch {
        &self.connection
    }

    /// Why the pipeline is stuck, if it is (a refusal by the cluster first, then every stuck
    /// stage, `; `-separated).
    pub fn problem(&self) -> Option<String> {
        let problems = self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let all: Vec<String> = self
            .connection
            .failure()
            .map(|f| f.to_string())
            .into_iter()
            .chain(problems.values().cloned())
            .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stage_recovering_does_not_hide_another() {
        let status = PipelineStatus::default();
        status.set_problem(Stage::Output, Some("no batch committed".into()));
        status.set_problem(Stage::Registry, Some("registry down".into()));
        assert_eq!(
            status.problem().as_deref(),
            Some("no batch committed; registry down")
        );
        status.set_problem(Stage::Output, None);
        assert_eq!(status.problem().as_deref(), Some("registry down"));
        status.set_problem(Stage::Registry, None);
        assert_eq!(status.problem(), None);
    }

    #[test]
    fn a_refusal_by_the_cluster_comes_first() {
        let status = PipelineStatus::default();
        status.set_problem(Stage::Output, Some("no batch committed".into()));
        status.connection().observe(
            None,
            "SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
        );
        let problem = status.problem().unwrap_or_default();
        assert!(
            problem.starts_with("Kafka refused the SASL credentials"),
            "{problem}"
        );
        assert!(problem.ends_with("; no batch committed"), "{problem}");
    }
}
