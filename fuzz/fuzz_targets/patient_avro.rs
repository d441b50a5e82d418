//! Fuzzes the PatientRecord Avro decoder, which reads every message on the patients topic, and
//! with it the crate's generic apache-avro decode path (which DeadLetter and ModelVersion use).
//!
//! For any input bytes, against `decode_reference` (apache-avro, read strictly):
//! 1. The hand-written decoder never accepts what the reference rejects, and reads the same
//!    record as it. It may reject what the reference accepts only from a non-minimal encoding
//!    (an int varint longer than 5 bytes), never from the canonical one.
//! 2. The generic path accepts every canonical encoding the reference accepts, and nothing
//!    longer than the canonical encoding (it tells non-minimal ones by their length).
//! 3. A decoded record re-encodes canonically (`check_avro_round_trip`), in no more bytes than it
//!    was read from, and `validate` accepts it exactly when every field is within its spec.
#![no_main]

use heart_fuzz::{Generic, check_avro_round_trip, check_validation, decode_reference, same_record};
use heart_schemas::{AvroRecord, PatientRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = PatientRecord::decode(data);
    let reference = decode_reference(data);
    let canonical = reference.as_ref().ok().map(check_avro_round_trip);
    let is_canonical = canonical.as_deref() == Some(data);

    match (&decoded, &reference) {
        (Ok(rec), Ok(reference)) => assert!(
            same_record(rec, reference),
            "decoded {rec:?}, apache-avro decoded {reference:?}"
        ),
        (Ok(rec), Err(e)) => panic!("decoded {rec:?} from bytes apache-avro rejects: {e}"),
        (Err(e), Ok(reference)) => assert!(
            !is_canonical,
            "apache-avro decodes {reference:?} from its canonical encoding, the decoder fails: {e}"
        ),
        (Err(e), Err(_)) => {
            // The message goes into the dead-letter record and the log line.
            let _ = e.to_string();
        }
    }

    match (Generic::decode(data), &reference) {
        (Ok(Generic(rec)), Ok(reference)) => {
            // Same length, not same bytes: a 10-byte varint's bits past 64 are dropped by every
            // decoder here (as by apache-avro and Java's), and the length check cannot see them.
            assert_eq!(
                canonical.as_ref().map(Vec::len),
                Some(data.len()),
                "the generic path accepts a non-minimal encoding of {rec:?}"
            );
            assert!(
                same_record(&rec, reference),
                "the generic path decoded {rec:?}, apache-avro {reference:?}"
            );
        }
        (Ok(Generic(rec)), Err(e)) => {
            panic!("the generic path decoded {rec:?} from bytes apache-avro rejects: {e}")
        }
        (Err(e), Ok(reference)) => assert!(
            !is_canonical,
            "the generic path fails on the canonical encoding of {reference:?}: {e}"
        ),
        (Err(_), Err(_)) => {}
    }

    let Ok(rec) = decoded else {
        return;
    };
    let reencoded = check_avro_round_trip(&rec);
    assert!(
        reencoded.len() <= data.len(),
        "{rec:?} re-encodes to {} bytes, read from {}",
        reencoded.len(),
        data.len()
    );
    check_validation(&rec);
});
