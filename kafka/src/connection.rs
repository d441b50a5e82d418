//! The connection and security flags every binary shares. They carry no binary prefix
//! (`KAFKA_BOOTSTRAP_SERVERS`, not `SCORER_…`), so one environment configures all three.

use crate::properties::{self, PropertyError};

/// How to reach and authenticate to the Kafka cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port].
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_servers: String,

    /// security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", global = true)]
    pub security_protocol: Option<String>,

    /// sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, env = "KAFKA_SASL_MECHANISM", global = true)]
    pub sasl_mechanism: Option<String>,

    /// sasl.username.
    #[arg(long, env = "KAFKA_SASL_USERNAME", global = true)]
    pub sasl_username: Option<String>,

    /// sasl.password (prefer the environment variable: a flag shows in `ps`).
    #[arg(
        long,
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub sasl_password: Option<String>,

    /// ssl.ca.location: CA certificate file (PEM) that signed the brokers' certificates.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION", global = true)]
    pub ssl_ca_location: Option<String>,

    /// Extra librdkafka properties, key=value (repeat the flag, or comma-separate in the env
    /// var; a piece without `=` continues the previous value, so `debug=eos,msg` works).
    /// They override this binary's defaults; the few keys a client must own (listed in the
    /// error if you set one) are refused at startup.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ',',
        global = true
    )]
    pub properties: Vec<String>,
}

impl KafkaArgs {
    /// Plain connection settings to `bootstrap` (tests and tools).
    pub fn plaintext(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap.into(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            properties: Vec::new(),
        }
    }

    /// The extra properties as key/value pairs.
    ///
    /// # Errors
    /// [`PropertyError`] for a malformed piece.
    pub fn property_pairs(&self) -> Result<Vec<(String, String)>, PropertyError> {
        properties::parse(&self.properties)
    }

    /// The flag-backed settings as librdkafka pairs. An empty value counts as unset, so a
    /// deployment can template `KAFKA_SASL_MECHANISM=` without breaking plaintext clients.
    pub(crate) fn connection_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("bootstrap.servers", self.bootstrap_servers.clone())];
        for (key, value) in [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                pairs.push((key, v.to_owned()));
            }
        }
        pairs
    }

    /// The settings worth logging at startup; credentials are never printed.
    pub fn redacted(&self) -> String {
        let keys: Vec<String> = self
            .property_pairs()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        format!(
            "bootstrap.servers={} security.protocol={} sasl.mechanism={} sasl.username={} sasl.password={} ssl.ca.location={} properties={:?}",
            self.bootstrap_servers,
            self.security_protocol.as_deref().unwrap_or("plaintext"),
            self.sasl_mechanism.as_deref().unwrap_or("-"),
            self.sasl_username.as_deref().unwrap_or("-"),
            if self.sasl_password.is_some() {
                "<set>"
            } else {
                "-"
            },
            self.ssl_ca_location.as_deref().unwrap_or("-"),
            keys,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_never_shows_the_password() {
        let mut k = KafkaArgs::plaintext("b:9092");
        k.sasl_password = Some("hunter2".into());
        k.properties = vec!["sasl.oauthbearer.client.secret=s3cret".into()];
        let s = k.redacted();
        assert!(!s.contains("hunter2") && !s.contains("s3cret"), "{s}");
        assert!(s.contains("sasl.password=<set>"), "{s}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let mut k = KafkaArgs::plaintext("b:9092");
        k.sasl_mechanism = Some(String::new());
        k.ssl_ca_location = Some(" ".into());
        k.properties = vec![String::new()];
        assert_eq!(
            k.connection_pairs(),
            vec![("bootstrap.servers", "b:9092".to_owned())]
        );
        assert_eq!(k.property_pairs().unwrap(), vec![]);
    }
}
