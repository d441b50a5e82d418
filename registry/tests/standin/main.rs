//! The client against the stand-in registry, `scripts/schema-registry`: needs `python3` on the
//! PATH, nothing else. Each test starts its own stand-in on a free port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use heart_registry::{RegistryArgs, RegistryError, StandIn, value_subject};

const V1: &str = r#"{"type":"record","name":"Patient","namespace":"heart","fields":[{"name":"age","type":"int"}]}"#;
/// V1 plus a field with a default, and `age` promoted to long: BACKWARD compatible.
const V2: &str = r#"{"type":"record","name":"Patient","namespace":"heart","fields":[{"name":"age","type":"long"},{"name":"sex","type":"string","default":"unknown"}]}"#;
/// V1 plus a required field: a V3 reader cannot read V1 data.
const V3_BREAKING: &str = r#"{"type":"record","name":"Patient","namespace":"heart","fields":[{"name":"age","type":"int"},{"name":"chol","type":"double"}]}"#;

fn same_json(a: &str, b: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(a).unwrap()
        == serde_json::from_str::<serde_json::Value>(b).unwrap()
}

#[test]
fn register_lookup_and_read_back_by_id_and_latest() {
    let standin = StandIn::start();
    let registry = standin.registry();
    let subject = value_subject("patients");

    let v1 = registry.register(&subject, V1).unwrap();
    assert_eq!(registry.register(&subject, V1).unwrap(), v1, "idempotent");
    let v2 = registry.register(&subject, V2).unwrap();
    assert_ne!(v1, v2);
    // Ids are global: the same text under another subject gets the same id.
    assert_eq!(registry.register("other-value", V2).unwrap(), v2);

    let fresh = standin.registry();
    assert_eq!(fresh.lookup(&subject, V1).unwrap(), v1);
    assert!(same_json(&fresh.schema(v1).unwrap(), V1));
    assert_eq!(fresh.versions(&subject).unwrap(), vec![1, 2]);
    let latest = fresh.latest(&subject).unwrap();
    assert_eq!((latest.id, latest.version), (v2, 2));
    assert!(same_json(&latest.schema, V2));
}

#[test]
fn unknown_ids_subjects_and_schemas_are_not_found() {
    let standin = StandIn::start();
    let registry = standin.registry();
    let err = registry.schema(4242).unwrap_err();
    assert!(
        matches!(&err, RegistryError::NotFound { code: 40403, what, .. } if what == "schema id 4242"),
        "{err}"
    );
    assert!(!err.is_transient());

    let err = registry.latest("nobody-value").unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { code: 40401, .. }),
        "{err}"
    );
    registry.register("patients-value", V1).unwrap();
    let err = registry.lookup("patients-value", V2).unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { code: 40403, .. }),
        "{err}"
    );
}

#[test]
fn a_breaking_schema_is_reported_incompatible_and_rejected() {
    let standin = StandIn::start();
    let registry = standin.registry();
    registry.register("patients-value", V1).unwrap();
    assert!(registry.is_compatible("patients-value", V2).unwrap());
    assert!(
        !registry
            .is_compatible("patients-value", V3_BREAKING)
            .unwrap()
    );

    let err = registry
        .register("patients-value", V3_BREAKING)
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Rejected { status: 409, code: 409, message } if message.contains("chol")),
        "{err}"
    );
    assert!(!err.is_transient());
    let err = registry
        .register("patients-value", "{not json")
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Rejected {
                status: 422,
                code: 42201,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_second_read_of_an_id_is_served_from_the_cache() {
    let standin = StandIn::start();
    let id = standin.registry().register("patients-value", V1).unwrap();
    let registry = standin.registry();
    let before = standin.requests();
    registry.schema(id).unwrap();
    assert_eq!(standin.requests(), before + 1);
    registry.schema(id).unwrap();
    registry.lookup("patients-value", V1).unwrap();
    registry.lookup("patients-value", V1).unwrap();
    assert_eq!(
        standin.requests(),
        before + 2,
        "one request per id and per lookup"
    );
}

#[test]
fn an_outage_is_unavailable_and_passes() {
    let standin = StandIn::start();
    let id = standin.registry().register("patients-value", V1).unwrap();
    let registry = standin.registry();

    standin.set_outage(true);
    let err = registry.schema(id).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unavailable { detail, .. } if detail.contains("503")),
        "{err}"
    );
    assert!(err.is_transient());

    standin.set_outage(false);
    assert!(same_json(&registry.schema(id).unwrap(), V1));
}

#[test]
fn nothing_listening_is_unavailable_within_the_timeout() {
    let standin = StandIn::start();
    let url = standin.url().to_owned();
    drop(standin); // the port is now closed
    let mut args = RegistryArgs::plain(&url);
    args.schema_registry_timeout_ms = 1000;
    let registry = heart_registry::Registry::new(args.validate().unwrap().unwrap());

    let started = Instant::now();
    let err = registry.schema(1).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains(&format!("{url}/schemas/ids/1")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn basic_auth_is_sent_and_bad_credentials_are_rejected() {
    let standin = StandIn::with_basic_auth("alice:s3cret");

    let err = standin
        .registry()
        .register("patients-value", V1)
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Rejected { status: 401, message, .. } if message.contains("--schema-registry-basic-auth")),
        "{err}"
    );

    let mut args = standin.args();
    args.schema_registry_basic_auth = Some("alice:wrong".into());
    let wrong = heart_registry::Registry::new(args.validate().unwrap().unwrap());
    let err = wrong.register("patients-value", V1).unwrap_err();
    assert!(
        matches!(err, RegistryError::Rejected { status: 401, .. }),
        "{err}"
    );
    assert!(!format!("{err:?} {wrong:?}").contains("wrong"));

    args.schema_registry_basic_auth = Some("alice:s3cret".into());
    let right = heart_registry::Registry::new(args.validate().unwrap().unwrap());
    let id = right.register("patients-value", V1).unwrap();
    assert!(same_json(&right.schema(id).unwrap(), V1));
}

#[test]
fn a_registry_that_never_answers_is_unavailable_after_the_timeout() {
    // The kernel completes the handshake for a listener nobody accepts from: the request is
    // sent and no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut args = RegistryArgs::plain(format!("http://{}", silent.local_addr().unwrap()));
    args.schema_registry_timeout_ms = 300;
    let registry = heart_registry::Registry::new(args.validate().unwrap().unwrap());

    let started = Instant::now();
    let err = registry.schema(1).unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(2)).contains(&elapsed),
        "{elapsed:?}"
    );
}
