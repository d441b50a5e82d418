//! Errors of the Avro codec.

use thiserror::Error;

/// Why bytes could not be turned into a typed record.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The value was absent (a tombstone or an empty message).
    #[error("empty value: expected an Avro single-object encoded {record}")]
    Empty {
        /// The record type that was expected.
        record: &'static str,
    },
    /// The value starts with neither the Avro single-object marker `C3 01` nor the Confluent
    /// magic byte `00`.
    #[error(
        "not Avro single-object encoding: expected marker c3 01 (or the confluent magic byte 00), found {found} (is the producer using heart-risk's codec?)"
    )]
    BadMarker {
        /// The first bytes found, as hex.
        found: String,
    },
    /// The schema fingerprint in the header is not the one this build knows for the record.
    #[error("unknown schema for {record}: fingerprint {found}, expected {expected}")]
    UnknownSchema {
        /// The record type that was expected.
        record: &'static str,
        /// Fingerprint found in the header, hex.
        found: String,
        /// Fingerprint of the schema this build was compiled with, hex.
        expected: String,
    },
    /// The record is in the Confluent wire format, which names its writer's schema by a Schema
    /// Registry id, and it was decoded without a registry.
    #[error(
        "{record} is framed for a schema registry (magic byte 00, schema id {id}): decoding it needs a registry, and none is configured"
    )]
    NeedsRegistry {
        /// The record type that was expected.
        record: &'static str,
        /// The registry id in the header.
        id: u32,
    },
    /// A writer schema (from a registry) is not an Avro schema.
    #[error("writer schema for {record} is not a valid Avro schema: {detail}")]
    InvalidWriterSchema {
        /// The record type that was expected.
        record: &'static str,
        /// What the parser reported.
        detail: String,
    },
    /// A writer schema is a valid schema, but Avro schema resolution cannot read its records
    /// as this build's schema (a field we need is missing and has no default, a type cannot be
    /// promoted, the names differ).
    #[error("writer schema cannot be resolved to this build's {record} schema: {detail}")]
    IncompatibleSchema {
        /// The record type that was expected.
        record: &'static str,
        /// What schema resolution reported.
        detail: String,
    },
    /// The body does not decode against the schema.
    #[error("malformed Avro body for {record}: {detail}")]
    Malformed {
        /// The record type that was expected.
        record: &'static str,
        /// What the Avro reader reported.
        detail: String,
    },
    /// Bytes were left over after the record.
    #[error("{extra} trailing bytes after the {record} record")]
    TrailingBytes {
        /// The record type that was decoded.
        record: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// The body decoded but a field had an unexpected Avro type.
    #[error("field {field} of {record} has an unexpected Avro value")]
    FieldType {
        /// The record type.
        record: &'static str,
        /// The field.
        field: &'static str,
    },
}

/// Why a typed record could not be written as Avro. Only reachable if a record holds a value its
/// own schema cannot represent, which is a bug, not bad input.
#[derive(Debug, Error)]
#[error("cannot encode {record} as Avro: {detail}")]
pub struct EncodeError {
    /// The record type.
    pub record: &'static str,
    /// What the Avro writer reported.
    pub detail: String,
}
