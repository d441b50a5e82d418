//! Avro single-object encoding for every record on the wire.
//!
//! Each message is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the
//! writer's schema, then the Avro binary body. We chose it over the Confluent wire format because
//! it names the schema without needing a schema registry: a consumer can tell a wrong or foreign
//! payload from a malformed one with nothing but this crate. A registry can still be added later by
//! mapping fingerprints to ids.

use std::collections::HashMap;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::{Schema, from_avro_datum, to_avro_datum};

use crate::error::{DecodeError, EncodeError};

const MARKER: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// A parsed schema and its single-object fingerprint.
#[derive(Debug)]
pub struct SchemaInfo {
    /// The parsed Avro schema.
    pub schema: Schema,
    /// CRC-64-AVRO fingerprint of the schema's canonical form, little-endian.
    pub fingerprint: [u8; 8],
}

impl SchemaInfo {
    /// Parses a schema that is compiled into this crate.
    ///
    /// # Panics
    /// If the text is not a valid Avro schema. The texts are `include_str!` constants that the unit
    /// tests parse, so this cannot happen in a released build.
    #[allow(clippy::expect_used)]
    pub(crate) fn parse(text: &str) -> Self {
        let schema = Schema::parse_str(text).expect("compiled-in schema is valid (unit-tested)");
        let bytes = schema.fingerprint::<Rabin>().bytes;
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[..8]);
        Self {
            schema,
            fingerprint,
        }
    }
}

/// A typed record with an Avro schema, encoded with single-object encoding.
pub trait AvroRecord: Sized {
    /// The record's Avro name, for error messages.
    const NAME: &'static str;

    /// The schema and fingerprint this build writes and expects.
    fn schema_info() -> &'static SchemaInfo;

    /// Converts to an Avro value in schema field order.
    fn to_value(&self) -> Value;

    /// Converts from an Avro value decoded with [`AvroRecord::schema_info`].
    ///
    /// # Errors
    /// [`DecodeError::FieldType`] when a field holds a value of the wrong Avro type.
    fn from_value(value: Value) -> Result<Self, DecodeError>;

    /// Encodes as an Avro single-object message.
    ///
    /// # Errors
    /// [`EncodeError`] when the record holds a value its own schema cannot represent (a bug).
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the Avro single-object message to `out` (batching writers encode many records
    /// into one buffer instead of allocating one per record).
    ///
    /// # Errors
    /// As [`AvroRecord::encode`]; `out` may then hold a partial record.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&Self::schema_info().fingerprint);
        self.encode_body(out)
    }

    /// Decodes an Avro single-object message.
    ///
    /// # Errors
    /// A [`DecodeError`] naming what is wrong: empty input, a missing marker, a schema this build
    /// does not know, a malformed body or trailing bytes.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let body = Self::body(bytes)?;
        Self::decode_body(body)
    }

    /// Checks the single-object header and returns the body.
    ///
    /// # Errors
    /// As [`AvroRecord::decode`], for the header.
    fn body(bytes: &[u8]) -> Result<&[u8], DecodeError> {
        let info = Self::schema_info();
        if bytes.is_empty() {
            return Err(DecodeError::Empty { record: Self::NAME });
        }
        if bytes.len() < HEADER_LEN || bytes[..2] != MARKER {
            return Err(DecodeError::BadMarker {
                found: hex(&bytes[..bytes.len().min(2)]),
            });
        }
        if bytes[2..HEADER_LEN] != info.fingerprint {
            return Err(DecodeError::UnknownSchema {
                record: Self::NAME,
                found: hex(&bytes[2..HEADER_LEN]),
                expected: hex(&info.fingerprint),
            });
        }
        Ok(&bytes[HEADER_LEN..])
    }

    /// Decodes an Avro binary body written with this record's schema (generic apache-avro
    /// path; hot-path records override it with a hand-written reader).
    ///
    /// # Errors
    /// [`DecodeError::Malformed`], [`DecodeError::TrailingBytes`] or a field type error.
    fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let info = Self::schema_info();
        let mut reader = BodyReader {
            rest: body,
            past_end: false,
        };
        let value = from_avro_datum(&info.schema, &mut reader, None).map_err(|e| {
            DecodeError::Malformed {
                record: Self::NAME,
                detail: e.to_string(),
            }
        })?;
        // apache-avro reads a union or string cut off by the end of input as null instead of
        // failing, so a truncated body would decode; the reader saw it ask for the missing bytes.
        if reader.past_end {
            return Err(DecodeError::Malformed {
                record: Self::NAME,
                detail: "body ends inside a field: truncated".to_owned(),
            });
        }
        if !reader.rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                record: Self::NAME,
                extra: reader.rest.len(),
            });
        }
        // A non-minimal encoding (an overlong varint) decodes too; re-encoding shows it.
        let expected = to_avro_datum(&info.schema, value.clone()).map_or(0, |b| b.len());
        if expected != body.len() {
            return Err(DecodeError::Malformed {
                record: Self::NAME,
                detail: format!(
                    "body is {} bytes, its fields re-encode to {expected}: not minimal",
                    body.len()
                ),
            });
        }
        Self::from_value(value)
    }

    /// Encodes the Avro binary body (generic apache-avro path; hot-path records override it).
    ///
    /// # Errors
    /// [`EncodeError`] when the record holds a value its own schema cannot represent (a bug).
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let body = to_avro_datum(&Self::schema_info().schema, self.to_value()).map_err(|e| {
            EncodeError {
                record: Self::NAME,
                detail: e.to_string(),
            }
        })?;
        out.extend_from_slice(&body);
        Ok(())
    }
}

/// An Avro body being read that remembers whether the decoder asked for bytes past its end.
struct BodyReader<'a> {
    rest: &'a [u8],
    past_end: bool,
}

impl std::io::Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.past_end = true;
        }
        self.rest.read(buf)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Reads a decoded record's fields in schema order, naming the field when one has the wrong type.
pub(crate) struct FieldReader {
    record: &'static str,
    fields: std::vec::IntoIter<(String, Value)>,
}

impl FieldReader {
    pub(crate) fn new(record: &'static str, value: Value) -> Result<Self, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Self {
                record,
                fields: fields.into_iter(),
            }),
            _ => Err(DecodeError::Malformed {
                record,
                detail: "top-level value is not a record".to_owned(),
            }),
        }
    }

    fn next(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        match self.fields.next() {
            Some((name, value)) if name == field => Ok(value),
            _ => Err(self.wrong(field)),
        }
    }

    fn wrong(&self, field: &'static str) -> DecodeError {
        DecodeError::FieldType {
            record: self.record,
            field,
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.next(field)? {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn int(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        match self.next(field)? {
            Value::Int(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        match self.next(field)? {
            Value::Long(v) | Value::TimestampMillis(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn double(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        match self.next(field)? {
            Value::Double(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.next(field)? {
            Value::Bytes(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn enum_symbol(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.next(field)? {
            Value::Enum(_, s) => Ok(s),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_int(&mut self, field: &'static str) -> Result<Option<i32>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Int(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_long(&mut self, field: &'static str) -> Result<Option<i64>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Long(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn opt_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.next(field)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::Bytes(v) => Ok(Some(v)),
                _ => Err(self.wrong(field)),
            },
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn double_map(
        &mut self,
        field: &'static str,
    ) -> Result<std::collections::BTreeMap<String, f64>, DecodeError> {
        match self.next(field)? {
            Value::Map(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Double(d) => Ok((k, d)),
                    _ => Err(self.wrong(field)),
                })
                .collect(),
            _ => Err(self.wrong(field)),
        }
    }

    pub(crate) fn strings(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        match self.next(field)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.wrong(field)),
                })
                .collect(),
            _ => Err(self.wrong(field)),
        }
    }
}

/// Builders for Avro values, so the `to_value` impls read as a list of fields.
pub(crate) fn record(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A `["null", T]` union value.
pub(crate) fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// An Avro map of doubles.
pub(crate) fn double_map(map: &std::collections::BTreeMap<String, f64>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::Double(*v)))
            .collect::<HashMap<_, _>>(),
    )
}
