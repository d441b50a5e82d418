//! Noticing that the cluster refuses this client — wrong SASL credentials, an untrusted broker
//! certificate, a TLS or protocol mismatch — and saying which setting to fix.
//!
//! librdkafka treats these as transient: it logs them and reconnects with backoff, forever. A
//! one-shot tool would wait out its whole timeout and then report "no broker answered"; a
//! long-running replica would log the same line every few seconds. A [`ConnectionWatch`] is the
//! clients' context: it classifies each error librdkafka reports, keeps the latest refusal for
//! the caller to act on ([`ConnectionWatch::failure`]) and logs it at error once per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use crate::connection::KafkaArgs;
use crate::telemetry::Throttle;

/// How long a refusal counts as current: librdkafka retries a refused connection at most every
/// `reconnect.backoff.max.ms` (10 s by default), so a refusal that persists is seen again well
/// within this.
const CURRENT_FOR: Duration = Duration::from_secs(30);

/// How often a persisting refusal is logged at error.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// What the cluster refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// SASL authentication failed: unknown user, wrong password or mechanism.
    Credentials,
    /// The broker's certificate does not chain to a trusted CA.
    UntrustedCertificate,
    /// Another TLS failure (a TLS client on a plaintext listener, a protocol mismatch, ...).
    Tls,
    /// The broker closed the connection during the handshake: usually a plaintext client on a
    /// TLS or SASL listener.
    Protocol,
}

impl FailureKind {
    /// A stable snake_case name (log field, metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Credentials => "credentials",
            FailureKind::UntrustedCertificate => "untrusted_certificate",
            FailureKind::Tls => "tls",
            FailureKind::Protocol => "protocol",
        }
    }

    /// Classifies an error librdkafka reported (error callback or log line); `None` for the
    /// errors that are not a refusal of this client (a broker down, a timeout, ...).
    pub fn classify(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<Self> {
        let lower = reason.to_ascii_lowercase();
        if code == Some(RDKafkaErrorCode::Authentication)
            || lower.contains("sasl authentication error")
            || lower.contains("authentication failed")
            || lower.contains("unsupported sasl mechanism")
        {
            return Some(FailureKind::Credentials);
        }
        if lower.contains("certificate verify failed") || lower.contains("could not be verified") {
            return Some(FailureKind::UntrustedCertificate);
        }
        if code == Some(RDKafkaErrorCode::SSL) || lower.contains("ssl handshake failed") {
            return Some(FailureKind::Tls);
        }
        if lower.contains("incorrect security.protocol") {
            return Some(FailureKind::Protocol);
        }
        None
    }
}

/// The cluster refused this client; the message names the setting to fix.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{}", self.describe())]
pub struct ConnectionFailure {
    /// What was refused.
    pub kind: FailureKind,
    /// librdkafka's reason (never holds a secret: librdkafka does not print credentials).
    pub reason: String,
    /// `user X (MECHANISM)`, for the credentials message.
    pub who: String,
}

impl ConnectionFailure {
    fn describe(&self) -> String {
        let reason = self.reason.trim();
        match self.kind {
            FailureKind::Credentials => format!(
                "Kafka refused the SASL credentials of {}: {reason}; check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (--sasl-username / --sasl-password), and KAFKA_SASL_MECHANISM if the broker expects another mechanism",
                self.who
            ),
            FailureKind::UntrustedCertificate => format!(
                "the Kafka broker's TLS certificate is not trusted: {reason}; set KAFKA_SSL_CA_LOCATION (--ssl-ca-location) to the PEM file of the CA that signed the brokers' certificates"
            ),
            FailureKind::Tls => format!(
                "TLS with the Kafka broker failed: {reason}; check that KAFKA_SECURITY_PROTOCOL (ssl, sasl_ssl) matches the listener at KAFKA_BOOTSTRAP_SERVERS and KAFKA_SSL_CA_LOCATION names the right CA"
            ),
            FailureKind::Protocol => format!(
                "the Kafka broker closed the connection during the handshake: {reason}; check that KAFKA_SECURITY_PROTOCOL matches the listener at KAFKA_BOOTSTRAP_SERVERS"
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    who: OnceLock<String>,
    latest: Mutex<Option<(Instant, ConnectionFailure)>>,
    throttle: Mutex<Option<Throttle>>,
    failures: AtomicU64,
}

/// The context of every client a process builds (clone it into each: clones share one state).
/// It logs librdkafka's messages as rdkafka's default context does, except refusals, which it
/// keeps and logs once per interval with the setting to fix.
#[derive(Debug, Clone, Default)]
pub struct ConnectionWatch {
    inner: Arc<Inner>,
}

impl ConnectionWatch {
    /// A watch for clients built from `args` (its messages name the SASL user and mechanism).
    pub fn new(args: &KafkaArgs) -> Self {
        let watch = Self::default();
        watch.identify(args);
        watch
    }

    /// Names the SASL user and mechanism in later messages (the first call wins).
    pub fn identify(&self, args: &KafkaArgs) {
        let non_empty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let user = non_empty(&args.sasl_username).unwrap_or_else(|| "(none)".into());
        let mechanism = non_empty(&args.sasl_mechanism).unwrap_or_else(|| "GSSAPI".into());
        let _ = self.inner.who.set(format!("user {user:?} ({mechanism})"));
    }

    /// The latest refusal, while it is current (seen within the last 30 s).
    pub fn failure(&self) -> Option<ConnectionFailure> {
        let latest = self
            .inner
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        latest
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CURRENT_FOR)
            .map(|(_, f)| f.clone())
    }

    /// Refusals seen since the watch was made.
    pub fn failures_total(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Records a refusal (and logs it, at most once per interval); false if `reason` is not one.
    pub fn observe(&self, code: Option<RDKafkaErrorCode>, reason: &str) -> bool {
        let Some(kind) = FailureKind::classify(code, reason) else {
            return false;
        };
        let failure = ConnectionFailure {
            kind,
            reason: reason.to_owned(),
            who: self
                .inner
                .who
                .get()
                .cloned()
                .unwrap_or_else(|| "this client".into()),
        };
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        let suppressed = self
            .inner
            .throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(|| Throttle::new(LOG_EVERY))
            .allow();
        match suppressed {
            Some(suppressed) => tracing::error!(
                kind = kind.as_str(),
                suppressed,
                error = %failure,
                "kafka refused the connection"
            ),
            None => tracing::debug!(
                kind = kind.as_str(),
                reason,
                "kafka refused the connection again"
            ),
        }
        *self
            .inner
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), failure));
        true
    }

    /// [`ClientContext::log`] for contexts that wrap a watch.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let severe = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        );
        // The same refusal also arrives through `error`, which records it: here it is detail.
        if severe && FailureKind::classify(None, message).is_some() {
            tracing::debug!(target: "librdkafka", fac, message, "librdkafka");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, message, "librdkafka")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", fac, message, "librdkafka")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, message, "librdkafka");
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", fac, message, "librdkafka")
            }
        }
    }

    /// [`ClientContext::error`] for contexts that wrap a watch.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if self.observe(code, reason) {
            return;
        }
        // "All brokers are down" follows every refusal: the refusal already says why. The end
        // of a partition reaches the context when a consumer is served through its main
        // queue (a metadata wait): it is news, not an error.
        if (code == Some(RDKafkaErrorCode::AllBrokersDown) && self.failure().is_some())
            || is_partition_end(error)
        {
            tracing::debug!(target: "librdkafka", error = %error, reason, "kafka client error");
            return;
        }
        tracing::error!(target: "librdkafka", error = %error, reason, "kafka client error");
    }
}

/// The end of a partition, however librdkafka reports it: per partition, or as a global error
/// ("Global error: PartitionEOF") when it surfaces on the main queue.
fn is_partition_end(error: &KafkaError) -> bool {
    matches!(error, KafkaError::PartitionEOF(_))
        || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
}

impl ClientContext for ConnectionWatch {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        ConnectionWatch::log(self, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ConnectionWatch::error(self, &error, reason);
    }
}

impl ConsumerContext for ConnectionWatch {}

/// Waits for a client's metadata (of `topic`, or of the cluster) up to `timeout`, asking in
/// short slices so that a refusal the watch sees ends the wait at once. `serve` runs between
/// slices: librdkafka hands errors to the context only when the client is polled, so a
/// consumer or a `BaseProducer` that nothing polls yet passes a zero-timeout poll here (a
/// `FutureProducer` polls itself and passes `&|| {}`).
///
/// # Errors
/// [`MetadataError::Refused`] as soon as the cluster refuses the client,
/// [`MetadataError::Unreachable`] when no broker answered within `timeout`.
pub fn fetch_metadata<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: Option<&str>,
    timeout: Duration,
    watch: &ConnectionWatch,
    serve: &dyn Fn(),
) -> Result<rdkafka::metadata::Metadata, MetadataError> {
    const SLICE: Duration = Duration::from_millis(250);
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.fetch_metadata(topic, left.min(SLICE)) {
            Ok(m) => return Ok(m),
            Err(error) => {
                serve();
                if let Some(failure) = watch.failure() {
                    return Err(MetadataError::Refused(failure));
                }
                if Instant::now() >= deadline {
                    return Err(MetadataError::Unreachable(error));
                }
            }
        }
    }
}

/// Why [`fetch_metadata`] got no metadata.
#[derive(Debug, Error)]
pub enum MetadataError {
    /// The cluster refused this client.
    #[error(transparent)]
    Refused(ConnectionFailure),
    /// No broker answered in time.
    #[error("no broker answered: {0}")]
    Unreachable(KafkaError),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // librdkafka 2.12's texts for the three refusals the SASL_SSL broker tests provoke.
    const WRONG_PASSWORD: &str = "sasl_ssl://127.0.0.1:19094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 12ms in state AUTH_REQ)";
    const UNTRUSTED: &str = "sasl_ssl://127.0.0.1:19094/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 4ms in state SSL_HANDSHAKE)";
    const PLAINTEXT_ON_TLS: &str = "127.0.0.1:19094/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 2ms in state APIVERSION_QUERY)";

    #[test]
    fn refusals_are_told_apart_from_outages() {
        let cases = [
            (
                Some(RDKafkaErrorCode::Authentication),
                WRONG_PASSWORD,
                Some(FailureKind::Credentials),
            ),
            (
                Some(RDKafkaErrorCode::SSL),
                UNTRUSTED,
                Some(FailureKind::UntrustedCertificate),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                PLAINTEXT_ON_TLS,
                Some(FailureKind::Protocol),
            ),
            (
                Some(RDKafkaErrorCode::SSL),
                "SSL handshake failed: wrong version number",
                Some(FailureKind::Tls),
            ),
            (
                Some(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
                None,
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
                None,
            ),
        ];
        for (code, reason, kind) in cases {
            assert_eq!(FailureKind::classify(code, reason), kind, "{reason}");
        }
    }

    #[test]
    fn the_end_of_a_partition_is_not_an_error_however_it_is_reported() {
        assert!(is_partition_end(&KafkaError::PartitionEOF(3)));
        assert!(is_partition_end(&KafkaError::Global(
            RDKafkaErrorCode::PartitionEOF
        )));
        assert!(!is_partition_end(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }

    #[test]
    fn each_refusal_names_the_setting_to_fix() {
        let mut args = KafkaArgs::plaintext("b:1");
        args.sasl_username = Some("heart-scorer".into());
        args.sasl_mechanism = Some("SCRAM-SHA-512".into());
        args.sasl_password = Some("hunter2".into());
        let watch = ConnectionWatch::new(&args);
        assert_eq!(watch.failure(), None);
        for (reason, setting) in [
            (WRONG_PASSWORD, "KAFKA_SASL_PASSWORD"),
            (UNTRUSTED, "KAFKA_SSL_CA_LOCATION"),
            (PLAINTEXT_ON_TLS, "KAFKA_SECURITY_PROTOCOL"),
        ] {
            assert!(watch.observe(None, reason));
            let message = watch.failure().unwrap().to_string();
            assert!(message.contains(setting), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        assert!(
            watch
                .failure()
                .is_some_and(|f| f.kind == FailureKind::Protocol)
        );
        assert!(!watch.observe(None, "1/1 brokers are down"));
        assert_eq!(watch.failures_total(), 3);
    }

    #[test]
    fn the_credentials_message_names_the_user_and_mechanism() {
        let mut args = KafkaArgs::plaintext("b:1");
        args.sasl_username = Some("heart-producer".into());
        args.sasl_mechanism = Some("SCRAM-SHA-512".into());
        let watch = ConnectionWatch::new(&args);
        watch.observe(Some(RDKafkaErrorCode::Authentication), WRONG_PASSWORD);
        let message = watch.failure().unwrap().to_string();
        assert!(
            message.contains("user \"heart-producer\" (SCRAM-SHA-512)"),
            "{message}"
        );
    }
}
