//! The one place an rdkafka `ClientConfig` is built, one [`Role`] per kind of client.
//!
//! Precedence, lowest first: the role's defaults and the caller's tuning defaults, then the
//! user's `--kafka-property` pairs, then the keys the role owns. A user property never silently
//! loses: setting an owned key is refused with [`ClientConfigError::Owned`], which names what
//! owns it (a flag or a guarantee), so a misconfiguration is caught at startup.

use rdkafka::ClientConfig;
use thiserror::Error;

use crate::connection::KafkaArgs;
use crate::properties::PropertyError;

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// A consumer-group member whose offsets are committed only with the work they cover (the
    /// scorer's input): no auto-commit, no auto offset store, read_committed,
    /// cooperative-sticky assignment.
    PipelineConsumer {
        /// group.id.
        group_id: &'a str,
    },
    /// A transactional producer (the scorer, exactly-once).
    TransactionalProducer {
        /// transactional.id.
        transactional_id: &'a str,
    },
    /// An idempotent producer with acks from all in-sync replicas.
    IdempotentProducer,
    /// A read_committed group member that follows a topic (`producer tail`).
    Follower {
        /// group.id.
        group_id: &'a str,
        /// Whether offsets are auto-committed, so a restart resumes where it stopped.
        commit: bool,
    },
    /// An assign-only read_committed reader that never commits and reports the end of each
    /// partition ([`crate::read_to_end`]).
    Reader,
}

/// A client configuration that cannot be built.
#[derive(Debug, Error)]
pub enum ClientConfigError {
    /// A malformed `--kafka-property`.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// A `--kafka-property` sets a key this client must own.
    #[error("--kafka-property / KAFKA_PROPERTIES may not set {key:?}: it is owned by {owner}")]
    Owned {
        /// The key.
        key: String,
        /// What owns it.
        owner: &'static str,
    },
}

/// Keys set from [`KafkaArgs`] flags, for every role.
const CONNECTION_KEYS: [(&str, &str); 6] = [
    (
        "bootstrap.servers",
        "--bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS",
    ),
    (
        "security.protocol",
        "--security-protocol / KAFKA_SECURITY_PROTOCOL",
    ),
    ("sasl.mechanism", "--sasl-mechanism / KAFKA_SASL_MECHANISM"),
    ("sasl.username", "--sasl-username / KAFKA_SASL_USERNAME"),
    ("sasl.password", "--sasl-password / KAFKA_SASL_PASSWORD"),
    (
        "ssl.ca.location",
        "--ssl-ca-location / KAFKA_SSL_CA_LOCATION",
    ),
];

impl Role<'_> {
    /// Settings the role needs for its guarantees: (key, value, why the user may not change it).
    fn owned(&self) -> Vec<(&'static str, String, &'static str)> {
        match *self {
            Role::PipelineConsumer { group_id } => vec![
                ("group.id", group_id.to_owned(), "the --group-id flag"),
                (
                    "enable.auto.commit",
                    "false".into(),
                    "the pipeline: offsets commit with the outputs they cover",
                ),
                (
                    "enable.auto.offset.store",
                    "false".into(),
                    "the pipeline: offsets commit with the outputs they cover",
                ),
                (
                    "isolation.level",
                    "read_committed".into(),
                    "the pipeline: aborted input is never scored",
                ),
                (
                    "partition.assignment.strategy",
                    "cooperative-sticky".into(),
                    "the pipeline's incremental rebalance handling",
                ),
            ],
            Role::TransactionalProducer { transactional_id } => vec![
                (
                    "transactional.id",
                    transactional_id.to_owned(),
                    "the --transactional-id flag",
                ),
                ("enable.idempotence", "true".into(), "exactly-once delivery"),
                ("acks", "all".into(), "exactly-once delivery"),
            ],
            Role::IdempotentProducer => vec![
                (
                    "enable.idempotence",
                    "true".into(),
                    "idempotent delivery (no duplicates on retry)",
                ),
                (
                    "acks",
                    "all".into(),
                    "idempotent delivery (no duplicates on retry)",
                ),
            ],
            Role::Follower { group_id, commit } => vec![
                ("group.id", group_id.to_owned(), "the --group flag"),
                (
                    "enable.auto.commit",
                    commit.to_string(),
                    "the --commit flag",
                ),
                (
                    "isolation.level",
                    "read_committed".into(),
                    "only committed output is shown",
                ),
            ],
            Role::Reader => vec![
                (
                    "group.id",
                    "heart-risk-reader".into(),
                    "the reader (it never joins a group)",
                ),
                (
                    "enable.auto.commit",
                    "false".into(),
                    "the reader (it never commits)",
                ),
                (
                    "enable.auto.offset.store",
                    "false".into(),
                    "the reader (it never commits)",
                ),
                (
                    "enable.partition.eof",
                    "true".into(),
                    "reading a topic to its end",
                ),
                (
                    "isolation.level",
                    "read_committed".into(),
                    "reading a topic to its end",
                ),
            ],
        }
    }

    /// Defaults a user may override. Every role disables Nagle's algorithm, as the Java client
    /// does: with it, small requests wait for the previous segment's ACK (acks of a trickle of
    /// records took 76 ms at p99 with it, 44 ms without).
    fn defaults(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Role::PipelineConsumer { .. } | Role::Follower { .. } | Role::Reader => &[
                ("auto.offset.reset", "earliest"),
                ("socket.nagle.disable", "true"),
            ],
            Role::TransactionalProducer { .. } | Role::IdempotentProducer => &[
                // Hash keys as the Java client does, so a patient lands on the same partition
                // whichever client wrote it.
                ("partitioner", "murmur2_random"),
                ("socket.nagle.disable", "true"),
            ],
        }
    }
}

/// Builds the configuration of a `role` client.
///
/// `tuning` holds the caller's defaults (`linger.ms`, `fetch.wait.max.ms`, …); the user's
/// properties override them.
///
/// # Errors
/// [`ClientConfigError`] for a malformed property or one that sets an owned key.
pub fn client_config(
    args: &KafkaArgs,
    client_id: &str,
    role: Role<'_>,
    tuning: &[(&str, String)],
) -> Result<ClientConfig, ClientConfigError> {
    let owned = role.owned();
    let user = args.property_pairs()?;
    for (key, _) in &user {
        let owner = CONNECTION_KEYS
            .iter()
            .map(|&(k, owner)| (k, owner))
            .chain(owned.iter().map(|(k, _, owner)| (*k, *owner)))
            .find(|(k, _)| k == key);
        if let Some((_, owner)) = owner {
            return Err(ClientConfigError::Owned {
                key: key.clone(),
                owner,
            });
        }
    }
    let mut c = ClientConfig::new();
    c.set("client.id", client_id);
    for (key, value) in role.defaults() {
        c.set(*key, *value);
    }
    for (key, value) in tuning {
        c.set(*key, value);
    }
    for (key, value) in user {
        c.set(key, value);
    }
    for (key, value) in args.connection_pairs() {
        c.set(key, value);
    }
    for (key, value, _) in owned {
        c.set(key, value);
    }
    Ok(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(props: &[&str]) -> KafkaArgs {
        let mut a = KafkaArgs::plaintext("b:1");
        a.properties = props.iter().map(|s| (*s).to_owned()).collect();
        a
    }

    #[test]
    fn user_properties_override_defaults_and_tuning() {
        let c = client_config(
            &args(&["linger.ms=20", "auto.offset.reset=latest", "client.id=mine"]),
            "heart-x",
            Role::PipelineConsumer { group_id: "g" },
            &[("linger.ms", "5".into())],
        )
        .unwrap();
        assert_eq!(c.get("linger.ms"), Some("20"));
        assert_eq!(c.get("auto.offset.reset"), Some("latest"));
        assert_eq!(c.get("client.id"), Some("mine"));
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("bootstrap.servers"), Some("b:1"));
    }

    #[test]
    fn owned_keys_are_refused_naming_their_owner() {
        let cases = [
            (
                Role::PipelineConsumer { group_id: "g" },
                "enable.auto.commit=true",
            ),
            (
                Role::PipelineConsumer { group_id: "g" },
                "isolation.level=read_uncommitted",
            ),
            (
                Role::TransactionalProducer {
                    transactional_id: "t",
                },
                "enable.idempotence=false",
            ),
            (Role::IdempotentProducer, "acks=1"),
            (Role::Reader, "group.id=x"),
            (Role::Reader, "sasl.password=x"),
        ];
        for (role, prop) in cases {
            let err = client_config(&args(&[prop]), "c", role, &[]).unwrap_err();
            let key = prop.split('=').next().unwrap();
            assert!(
                matches!(&err, ClientConfigError::Owned { key: k, .. } if k == key),
                "{prop}: {err}"
            );
            assert!(err.to_string().contains("owned by"), "{err}");
        }
    }

    #[test]
    fn roles_set_their_guarantees() {
        let c = client_config(
            &args(&[]),
            "c",
            Role::TransactionalProducer {
                transactional_id: "t-1",
            },
            &[],
        )
        .unwrap();
        assert_eq!(c.get("transactional.id"), Some("t-1"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        let c = client_config(&args(&[]), "c", Role::Reader, &[]).unwrap();
        assert_eq!(c.get("enable.partition.eof"), Some("true"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
    }

    #[test]
    fn security_flags_reach_the_client() {
        let mut a = args(&["debug=eos", "msg"]);
        a.security_protocol = Some("sasl_ssl".into());
        a.sasl_password = Some("pw".into());
        a.ssl_ca_location = Some("/ca.pem".into());
        let c = client_config(&a, "c", Role::IdempotentProducer, &[]).unwrap();
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.password"), Some("pw"));
        assert_eq!(c.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(c.get("debug"), Some("eos,msg"));
    }
}
