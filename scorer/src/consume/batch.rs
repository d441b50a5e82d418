//! A batch: the outputs of consecutive input records, encoded into one buffer, with the input
//! offsets they cover. It is the unit of one transaction (or one offset commit).

use std::collections::BTreeMap;
use std::ops::Range;

use heart_schemas::{Reason, RiskLevel};

/// Which output topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    /// Predictions.
    Predictions,
    /// Dead letters.
    DeadLetters,
    /// The shadow model's predictions (`--shadow-model-version`).
    Shadow,
}

/// One output record; its bytes live in the batch's buffer.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub topic: Topic,
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
    /// The reason code, for dead letters (also the `heart-risk.reason` header).
    pub reason: Option<Reason>,
    /// The input record it answers.
    pub partition: i32,
    pub offset: i64,
    /// The trace context passed on (`traceparent`): the input's trace, this hop's span.
    pub trace: Option<heart_schemas::TraceParent>,
}

/// The shadow model against the active one, over a batch's records.
#[derive(Debug, Default)]
pub(crate) struct ShadowTally {
    /// Outputs on the shadow topic (not input records of their own).
    pub outputs: usize,
    pub label_agreements: u64,
    pub risk_level_agreements: u64,
    /// Shadow probability minus the active one, per record.
    pub differences: Vec<f64>,
}

impl ShadowTally {
    /// Counts one record scored by both.
    pub fn compare(
        &mut self,
        active: &heart_schemas::Prediction,
        shadow: &heart_schemas::Prediction,
    ) {
        self.outputs += 1;
        self.label_agreements += u64::from(active.label == shadow.label);
        self.risk_level_agreements += u64::from(active.risk_level == shadow.risk_level);
        self.differences
            .push(shadow.probability - active.probability);
    }
}

/// Consecutive records of one fetch, scored by one model version.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Increasing per batch; tags delivery reports.
    pub id: u64,
    /// The rewind generation it was fetched in; batches of an older one are discarded.
    pub epoch: u64,
    /// The model version every prediction of the batch names.
    pub model_version: i64,
    /// The shadow model's version, when the batch was scored by one too.
    pub shadow_version: Option<i64>,
    /// How the shadow's predictions compare with the active model's.
    pub shadow: ShadowTally,
    bytes: Vec<u8>,
    pub outputs: Vec<Output>,
    /// Per input partition, the offset after the last record of the batch: what commits.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Event times of the predictions, for the end-to-end latency once committed.
    pub event_times: Vec<i64>,
    /// Predictions by risk level (indexed as [`RiskLevel::ALL`]).
    pub levels: [u64; 3],
    pub dead_letters: Vec<Reason>,
    pub unseen_categories: u64,
    /// Predictions that imputed each attribute (indexed as `heart_schemas::FIELDS`).
    pub imputed: [u64; heart_schemas::N_FIELDS],
    /// Per attribute, the sum of |contribution| over the batch's explained predictions
    /// (`--explain-stream`), for the mean-contribution gauge.
    pub explanations: crate::metrics::ExplanationSums,
    /// Seconds spent decoding, validating, scoring and encoding.
    pub score_seconds: f64,
    /// The predictions' inputs, binned for the drift window.
    pub drift: Vec<crate::drift::Located>,
}

impl Batch {
    pub fn new(id: u64, epoch: u64, model_version: i64, capacity: usize) -> Self {
        Self {
            id,
            epoch,
            model_version,
            shadow_version: None,
            shadow: ShadowTally::default(),
            bytes: Vec::with_capacity(capacity * 96),
            outputs: Vec::with_capacity(capacity),
            next_offsets: BTreeMap::new(),
            event_times: Vec::with_capacity(capacity),
            levels: [0; 3],
            dead_letters: Vec::new(),
            unseen_categories: 0,
            imputed: [0; heart_schemas::N_FIELDS],
            explanations: crate::metrics::ExplanationSums::default(),
            score_seconds: 0.0,
            drift: Vec::with_capacity(capacity),
        }
    }

    /// Outputs: one per input record, plus one on the shadow topic per record the shadow
    /// model scored.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Input records covered.
    pub fn inputs(&self) -> usize {
        self.outputs.len() - self.shadow.outputs
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// The buffer outputs are encoded into; call [`Batch::push`] with the ranges written.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Copies `bytes` into the buffer and returns where they are.
    pub fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Adds an output for the input at `partition`/`offset`.
    pub fn push(&mut self, output: Output) {
        self.next_offsets
            .insert(output.partition, output.offset + 1);
        self.outputs.push(output);
    }

    pub fn count_prediction(&mut self, scored: &crate::score::Scored) {
        let p = &scored.prediction;
        let i = RiskLevel::ALL
            .iter()
            .position(|l| *l == p.risk_level)
            .unwrap_or(0);
        self.levels[i] += 1;
        self.event_times.push(p.event_time);
        self.unseen_categories += u64::from(scored.unseen_categories);
        for field in p.imputed_fields.indices() {
            self.imputed[field] += 1;
        }
        self.explanations.add(scored.abs_contributions.as_ref());
    }

    pub fn key(&self, output: &Output) -> Option<&[u8]> {
        output.key.clone().map(|r| &self.bytes[r])
    }

    pub fn value(&self, output: &Output) -> &[u8] {
        &self.bytes[output.value.clone()]
    }

    /// Predictions in the batch.
    pub fn predictions(&self) -> u64 {
        self.levels.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_one_past_the_last_offset_per_partition() {
        let mut b = Batch::new(1, 0, 1, 8);
        for (partition, offset) in [(0, 5), (1, 9), (0, 6), (1, 10), (0, 7)] {
            let value = b.append(b"v");
            b.push(Output {
                topic: Topic::Predictions,
                key: None,
                value,
                reason: None,
                partition,
                offset,
                trace: None,
            });
        }
        let got: Vec<_> = b.next_offsets.into_iter().collect();
        assert_eq!(got, vec![(0, 8), (1, 11)]);
    }
}
