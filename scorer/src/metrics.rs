//! Every Prometheus metric the scorer exports, on one registry held in the app state.

use heart_schemas::{Reason, RiskLevel};
use prometheus::{
    Counter, CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec,
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Explained predictions and the sum of their |contributions| per field (in `FIELDS` order),
/// added up per batch so that the shared counters are touched once a batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExplanationSums {
    /// Predictions explained.
    pub explained: u64,
    /// Σ |contribution| per field.
    pub abs_contributions: [f64; heart_schemas::N_FIELDS],
}

impl ExplanationSums {
    /// Adds one prediction's |contributions|, if it was explained.
    pub fn add(&mut self, abs_contributions: Option<&[f64; heart_schemas::N_FIELDS]>) {
        if let Some(abs) = abs_contributions {
            self.explained += 1;
            for (sum, a) in self.abs_contributions.iter_mut().zip(abs) {
                *sum += a;
            }
        }
    }
}

/// The scorer's metrics. Label values come from closed sets only.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Records read from the patients topic.
    pub records_consumed: IntCounter,
    /// Predictions written (committed or acknowledged).
    pub records_produced: IntCounter,
    /// Dead letters written, by reason.
    pub records_dead_lettered: IntCounterVec,
    /// Predictions by risk level.
    pub predictions: IntCounterVec,
    /// Time to decode, validate and score one batch.
    pub score_duration: Histogram,
    /// Records per batch.
    pub batch_size: Histogram,
    /// From the record's event time to its prediction being produced.
    pub end_to_end_latency: Histogram,
    /// 1 for the active model's name and version.
    pub model_info: IntGaugeVec,
    /// The active model's version, 0 when none.
    pub model_version: IntGauge,
    /// 1 when a model is active.
    pub model_active: IntGauge,
    /// Model versions activated or rejected.
    pub model_swaps: IntCounterVec,
    /// One-hot fields whose category was unseen in training.
    pub unseen_categories: IntCounter,
    /// Predictions that imputed each attribute, by field.
    pub imputed_fields: IntCounterVec,
    /// Population stability index of each field over the drift window, against training.
    pub feature_psi: GaugeVec,
    /// Share of the drift window's records in which each field was missing (and imputed).
    pub feature_missing_ratio: GaugeVec,
    /// Predictions explained.
    pub explanations: IntCounter,
    /// Sum of |contribution| per field over the explained predictions.
    pub explanation_abs_contribution: CounterVec,
    /// Records in the drift window.
    pub drift_window_records: IntGauge,
    /// The shadow model's version, 0 while none is loaded.
    pub shadow_model_version: IntGauge,
    /// Records scored by both models.
    pub shadow_predictions: IntCounter,
    /// `--shadow-from-mlflow` lookups or downloads that failed.
    pub shadow_refresh_failures: IntCounter,
    /// Shadow predictions with the active model's label.
    pub shadow_label_agreements: IntCounter,
    /// Shadow predictions with the active model's risk level.
    pub shadow_risk_level_agreements: IntCounter,
    /// Sum of |shadow probability − active probability|.
    pub shadow_abs_probability_difference: Counter,
    /// shadow probability − active probability.
    pub shadow_probability_difference: Histogram,
    /// Consumer lag per assigned partition, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// Partitions of the patients topic assigned to this replica.
    pub assigned_partitions: IntGauge,
    /// Bytes fetched from the patients topic and not yet handed to the pipeline.
    pub fetch_queue_bytes: IntGauge,
    /// 1 while fetching is paused because the output stage is behind.
    pub fetch_paused: IntGauge,
    /// Records read under the fingerprint earlier builds wrote (see `heart_schemas::Framed::Legacy`).
    pub legacy_fingerprint_records: IntCounter,
    /// Writer-schema lookups in the Schema Registry, by outcome.
    pub schema_lookups: IntCounterVec,
    /// Partitions whose next record waits for the Schema Registry to answer.
    pub schema_registry_waiting_partitions: IntGauge,
    /// Kafka transactions by outcome.
    pub transactions: IntCounterVec,
    /// Batches that failed and were retried from the committed offsets, by what was done.
    pub batch_failures: IntCounterVec,
    /// Output producers recreated after a fatal error.
    pub producer_resets: IntCounter,
    /// HTTP requests by method, route and status.
    pub http_requests: IntCounterVec,
    /// HTTP request duration by method and route.
    pub http_duration: HistogramVec,
    /// HTTP requests being served.
    pub http_in_flight: Gauge,
    /// Requests turned away for want of an accepted bearer token, by reason.
    pub http_auth_failures: IntCounterVec,
    /// Requests answered 429 by the per-client rate limit.
    pub http_rate_limited: IntCounter,
    /// Changes of the sidecar's TLS or token files, by file and outcome.
    pub http_reloads: IntCounterVec,
    /// TLS handshakes by outcome.
    pub http_tls_handshakes: IntCounterVec,
}

/// Latency buckets from 10 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Creates and registers every metric on a fresh registry.
    ///
    /// # Errors
    /// A registration error, which only a duplicate or malformed name could cause.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| IntCounter::with_opts(Opts::new(name, help));
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        };
        let m = Self {
            records_consumed: counter(
                "scorer_records_consumed_total",
                "Records read from the patients topic.",
            )?,
            records_produced: counter(
                "scorer_records_produced_total",
                "Predictions written to the predictions topic.",
            )?,
            records_dead_lettered: counter_vec(
                "scorer_records_dead_lettered_total",
                "Records written to the dead-letter topic, by reason.",
                &["reason"],
            )?,
            predictions: counter_vec(
                "scorer_predictions_total",
                "Predictions by risk level.",
                &["risk_level"],
            )?,
            score_duration: histogram(
                "scorer_score_duration_seconds",
                "Time to decode, validate, score and encode one batch (one record in 32 timed, scaled up).",
                LATENCY_BUCKETS.to_vec(),
            )?,
            batch_size: histogram(
                "scorer_batch_size_records",
                "Records per scored batch.",
                vec![
                    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0,
                ],
            )?,
            end_to_end_latency: histogram(
                "scorer_end_to_end_latency_seconds",
                "From a record's event time to its prediction being produced.",
                LATENCY_BUCKETS.to_vec(),
            )?,
            model_info: IntGaugeVec::new(
                Opts::new("scorer_model_info", "1 for the active model."),
                &["name", "version"],
            )?,
            model_version: IntGauge::new(
                "scorer_model_version",
                "Version of the active model, 0 when none.",
            )?,
            model_active: IntGauge::new("scorer_model_active", "1 when a model is active.")?,
            model_swaps: counter_vec(
                "scorer_model_swaps_total",
                "Model versions activated or rejected.",
                &["outcome"],
            )?,
            unseen_categories: counter(
                "scorer_unseen_categories_total",
                "One-hot fields whose category was not seen in training (encoded as all zeros).",
            )?,
            imputed_fields: counter_vec(
                "scorer_imputed_fields_total",
                "Predictions whose input lacked this attribute, filled in with the model's training statistics.",
                &["field"],
            )?,
            feature_psi: GaugeVec::new(
                Opts::new(
                    "scorer_feature_psi",
                    "Population stability index of each field over the last --drift-window-records predictions' inputs, against the model's training data (0.1: a shift worth a look, 0.25: a large one).",
                ),
                &["field"],
            )?,
            feature_missing_ratio: GaugeVec::new(
                Opts::new(
                    "scorer_feature_missing_ratio",
                    "Share of the drift window's records in which each field was missing and imputed.",
                ),
                &["field"],
            )?,
            explanations: counter(
                "scorer_explanations_total",
                "Predictions explained: every prediction of the stream with --explain-stream, and /predict calls with ?explain=true.",
            )?,
            explanation_abs_contribution: CounterVec::new(
                Opts::new(
                    "scorer_explanation_abs_contribution_total",
                    "Sum of |contribution| of each field over the explained predictions, in the model's output space (log-odds for logistic regression and boosting, probability for trees and forests); its rate over scorer_explanations_total's is the mean per prediction.",
                ),
                &["field"],
            )?,
            drift_window_records: IntGauge::new(
                "scorer_drift_window_records",
                "Records in the drift window (at most --drift-window-records).",
            )?,
            shadow_model_version: IntGauge::new(
                "scorer_shadow_model_version",
                "Version of the shadow (challenger) model, 0 while none is loaded.",
            )?,
            shadow_predictions: counter(
                "scorer_shadow_predictions_total",
                "Records scored by both the active and the shadow model.",
            )?,
            shadow_refresh_failures: counter(
                "scorer_shadow_refresh_failures_total",
                "Lookups of the --shadow-from-mlflow alias (or downloads of the version it names) that failed; the loaded shadow stays. The log says why.",
            )?,
            shadow_label_agreements: counter(
                "scorer_shadow_label_agreements_total",
                "Shadow predictions whose label equals the active model's.",
            )?,
            shadow_risk_level_agreements: counter(
                "scorer_shadow_risk_level_agreements_total",
                "Shadow predictions whose risk level equals the active model's.",
            )?,
            shadow_abs_probability_difference: Counter::new(
                "scorer_shadow_abs_probability_difference_total",
                "Sum of |shadow probability - active probability|; over scorer_shadow_predictions_total, the mean difference.",
            )?,
            shadow_probability_difference: Histogram::with_opts(
                HistogramOpts::new(
                    "scorer_shadow_probability_difference",
                    "Shadow probability minus the active model's, per record.",
                )
                .buckets(vec![
                    -0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
                ]),
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "scorer_consumer_lag_records",
                    "Records behind the end of each assigned partition.",
                ),
                &["topic", "partition"],
            )?,
            assigned_partitions: IntGauge::new(
                "scorer_assigned_partitions",
                "Partitions of the patients topic assigned to this replica.",
            )?,
            fetch_queue_bytes: IntGauge::new(
                "scorer_fetch_queue_bytes",
                "Bytes fetched from the patients topic and not yet scored (bounded by --max-queued-kbytes).",
            )?,
            fetch_paused: IntGauge::new(
                "scorer_fetch_paused",
                "1 while fetching is paused because the output stage is behind (backpressure: the backlog stays on the broker).",
            )?,
            legacy_fingerprint_records: IntCounter::new(
                "scorer_legacy_fingerprint_records_total",
                "Records read whose single-object header carries the fingerprint builds before the Avro-specification fix wrote; 0 for long means they are gone.",
            )?,
            schema_lookups: counter_vec(
                "scorer_schema_registry_lookups_total",
                "Writer-schema lookups in the Schema Registry by outcome (found, not_found, incompatible, unavailable, rejected); each id is looked up once.",
                &["outcome"],
            )?,
            schema_registry_waiting_partitions: IntGauge::new(
                "scorer_schema_registry_waiting_partitions",
                "Partitions paused because their next record's schema id cannot be looked up while the registry is unavailable (the records wait; none is dead-lettered).",
            )?,
            transactions: counter_vec(
                "scorer_transactions_total",
                "Kafka transactions by outcome.",
                &["outcome"],
            )?,
            batch_failures: counter_vec(
                "scorer_batch_failures_total",
                "Batches not committed and retried from the committed offsets, by action (retry, reset = producer recreated).",
                &["action"],
            )?,
            producer_resets: counter(
                "scorer_producer_resets_total",
                "Output producers recreated after a fatal error (fenced, invalid state, epoch errors).",
            )?,
            http_requests: counter_vec(
                "scorer_http_requests_total",
                "HTTP requests by method, route and status.",
                &["method", "route", "status"],
            )?,
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scorer_http_request_duration_seconds",
                    "HTTP request duration by method and route.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route"],
            )?,
            http_in_flight: Gauge::new(
                "scorer_http_requests_in_flight",
                "HTTP requests being served.",
            )?,
            http_auth_failures: counter_vec(
                "scorer_http_auth_failures_total",
                "Requests answered 401 (reason missing or malformed: no `Authorization: Bearer` token) or 403 (rejected: a token not accepted).",
                &["reason"],
            )?,
            http_rate_limited: counter(
                "scorer_http_requests_rate_limited_total",
                "Requests answered 429 by the per-client rate limit (--http-rate-limit-per-s).",
            )?,
            http_reloads: counter_vec(
                "scorer_http_reloads_total",
                "Changes of the sidecar's files (file: tls, auth_tokens) applied (reloaded) or refused (failed: the previous files keep serving; see the log).",
                &["file", "outcome"],
            )?,
            http_tls_handshakes: counter_vec(
                "scorer_http_tls_handshakes_total",
                "TLS handshakes of the sidecar by outcome (ok, failed: e.g. a client that does not trust the certificate, timeout).",
                &["outcome"],
            )?,
            registry,
        };
        m.register_all()?;
        // Pre-create label values so dashboards and alerts see zeros rather than nothing.
        for reason in Reason::ALL {
            m.records_dead_lettered.with_label_values(&[reason.code()]);
        }
        for field in &heart_schemas::FIELDS {
            m.imputed_fields.with_label_values(&[field.name]);
            m.explanation_abs_contribution
                .with_label_values(&[field.name]);
        }
        for level in RiskLevel::ALL {
            m.predictions.with_label_values(&[level.as_str()]);
        }
        for outcome in ["activated", "rejected"] {
            m.model_swaps.with_label_values(&[outcome]);
        }
        for outcome in ["committed", "aborted"] {
            m.transactions.with_label_values(&[outcome]);
        }
        for action in ["retry", "reset"] {
            m.batch_failures.with_label_values(&[action]);
        }
        for failure in crate::http::auth::AuthFailure::ALL {
            m.http_auth_failures.with_label_values(&[failure.code()]);
        }
        Ok(m)
    }

    /// Exports a drift window's numbers; a field without a value in the window keeps no PSI.
    pub fn set_drift(&self, drift: &crate::drift::Drift) {
        self.drift_window_records
            .set(i64::try_from(drift.records).unwrap_or(i64::MAX));
        for (field, spec) in heart_schemas::FIELDS.iter().enumerate() {
            match drift.psi[field] {
                Some(psi) => self.feature_psi.with_label_values(&[spec.name]).set(psi),
                None => {
                    let _ = self.feature_psi.remove_label_values(&[spec.name]);
                }
            }
            self.feature_missing_ratio
                .with_label_values(&[spec.name])
                .set(drift.missing_ratio[field]);
        }
    }

    /// Adds `counts` (predictions per attribute, in `FIELDS` order) to `scorer_imputed_fields_total`.
    pub fn count_imputed(&self, counts: &[u64; heart_schemas::N_FIELDS]) {
        for (field, &n) in heart_schemas::FIELDS.iter().zip(counts) {
            if n > 0 {
                self.imputed_fields
                    .with_label_values(&[field.name])
                    .inc_by(n);
            }
        }
    }

    /// Adds a batch's explanations to `scorer_explanations_total` and
    /// `scorer_explanation_abs_contribution_total`.
    pub fn count_explanations(&self, sums: &ExplanationSums) {
        if sums.explained == 0 {
            return;
        }
        self.explanations.inc_by(sums.explained);
        for (field, &sum) in heart_schemas::FIELDS.iter().zip(&sums.abs_contributions) {
            self.explanation_abs_contribution
                .with_label_values(&[field.name])
                .inc_by(sum);
        }
    }

    fn register_all(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.records_consumed.clone()))?;
        r.register(Box::new(self.records_produced.clone()))?;
        r.register(Box::new(self.records_dead_lettered.clone()))?;
        r.register(Box::new(self.predictions.clone()))?;
        r.register(Box::new(self.score_duration.clone()))?;
        r.register(Box::new(self.batch_size.clone()))?;
        r.register(Box::new(self.end_to_end_latency.clone()))?;
        r.register(Box::new(self.model_info.clone()))?;
        r.register(Box::new(self.model_version.clone()))?;
        r.register(Box::new(self.model_active.clone()))?;
        r.register(Box::new(self.model_swaps.clone()))?;
        r.register(Box::new(self.unseen_categories.clone()))?;
        r.register(Box::new(self.imputed_fields.clone()))?;
        r.register(Box::new(self.feature_psi.clone()))?;
        r.register(Box::new(self.feature_missing_ratio.clone()))?;
        r.register(Box::new(self.explanations.clone()))?;
        r.register(Box::new(self.explanation_abs_contribution.clone()))?;
        r.register(Box::new(self.drift_window_records.clone()))?;
        r.register(Box::new(self.shadow_model_version.clone()))?;
        r.register(Box::new(self.shadow_predictions.clone()))?;
        r.register(Box::new(self.shadow_refresh_failures.clone()))?;
        r.register(Box::new(self.shadow_label_agreements.clone()))?;
        r.register(Box::new(self.shadow_risk_level_agreements.clone()))?;
        r.register(Box::new(self.shadow_abs_probability_difference.clone()))?;
        r.register(Box::new(self.shadow_probability_difference.clone()))?;
        r.register(Box::new(self.consumer_lag.clone()))?;
        r.register(Box::new(self.assigned_partitions.clone()))?;
        r.register(Box::new(self.fetch_queue_bytes.clone()))?;
        r.register(Box::new(self.fetch_paused.clone()))?;
        r.register(Box::new(self.legacy_fingerprint_records.clone()))?;
        r.register(Box::new(self.schema_lookups.clone()))?;
        r.register(Box::new(self.schema_registry_waiting_partitions.clone()))?;
        r.register(Box::new(self.transactions.clone()))?;
        r.register(Box::new(self.batch_failures.clone()))?;
        r.register(Box::new(self.producer_resets.clone()))?;
        r.register(Box::new(self.http_requests.clone()))?;
        r.register(Box::new(self.http_duration.clone()))?;
        r.register(Box::new(self.http_in_flight.clone()))?;
        r.register(Box::new(self.http_auth_failures.clone()))?;
        r.register(Box::new(self.http_rate_limited.clone()))?;
        r.register(Box::new(self.http_reloads.clone()))?;
        r.register(Box::new(self.http_tls_handshakes.clone()))?;
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_conventions_and_render() {
        let m = Metrics::new().unwrap();
        m.records_consumed.inc();
        let text = m.render();
        assert!(text.contains("scorer_records_consumed_total 1"));
        assert!(text.contains("scorer_records_dead_lettered_total{reason=\"malformed_avro\"} 0"));
        for family in m.registry.gather() {
            let name = family.name();
            if name.starts_with("process_") {
                continue;
            }
            assert!(name.starts_with("scorer_"), "{name}");
            assert!(!name.ends_with("_ms"), "{name}: use base units");
            if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                assert!(name.ends_with("_total"), "{name}: counters end in _total");
            }
        }
    }
}
