//! Prints, for each compiled-in schema, one tab-separated line: the schema file's stem, the
//! fingerprint this build writes (hex of the 8 header bytes, little-endian, as fastavro and Java
//! Avro print them), the legacy fingerprint it still accepts, and the Parsing Canonical Form.
//! `interop/test_avro_spec.py` compares them with fastavro's and Java Avro's.
//!
//!     cargo run --quiet --locked -p heart-schemas --example fingerprints

use heart_schemas::codec::{SchemaInfo, hex};
use heart_schemas::{AvroRecord, DeadLetter, ModelVersion, PatientRecord, Prediction};

fn main() {
    let schemas: [(&str, &SchemaInfo); 4] = [
        ("patient_record", PatientRecord::schema_info()),
        ("prediction", Prediction::schema_info()),
        ("dead_letter", DeadLetter::schema_info()),
        ("model_version", ModelVersion::schema_info()),
    ];
    for (name, info) in schemas {
        println!(
            "{name}\t{}\t{}\t{}",
            hex(&info.fingerprint),
            hex(&info.legacy_fingerprint),
            info.canonical_form
        );
    }
}
