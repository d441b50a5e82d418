//! The two headers a record's Avro body can travel behind: Avro single-object encoding
//! (`C3 01` and the schema's 8-byte fingerprint) and the Confluent wire format (`00` and a
//! 4-byte big-endian Schema Registry id).
//!
//! A consumer tells them apart record by record by the first byte, so one topic can carry both
//! while producers migrate.

use crate::codec::SchemaInfo;
use crate::error::DecodeError;

/// The Avro single-object marker.
pub(crate) const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// Marker and fingerprint.
pub(crate) const SINGLE_OBJECT_HEADER_LEN: usize = 10;
/// The Confluent wire format's magic byte.
pub(crate) const CONFLUENT_MAGIC: u8 = 0x00;
/// Magic byte and schema id.
pub(crate) const CONFLUENT_HEADER_LEN: usize = 5;

/// A record's body, split from its header, and what the header says about the writer's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed<'a> {
    /// Single-object encoded with this build's schema (its Parsing Canonical Form fingerprint):
    /// the body decodes with the record's own decoder.
    Current(&'a [u8]),
    /// Single-object encoded with this build's schema under the fingerprint heart-risk wrote
    /// before it followed the specification (apache-avro's canonical form, see
    /// [`SchemaInfo::legacy_fingerprint`]). The body is the same; callers count these so
    /// operators see when the old records are gone.
    Legacy(&'a [u8]),
    /// Single-object encoded with an earlier version of the record's schema
    /// ([`SchemaInfo::earlier`]`[index]`): decode with
    /// [`crate::AvroRecord::decode_earlier`].
    Earlier {
        /// Index into [`SchemaInfo::earlier`].
        index: usize,
        /// The Avro body.
        body: &'a [u8],
    },
    /// Confluent wire format: the writer's schema is registry entry `id`, which the caller
    /// fetches and turns into a [`crate::WriterSchema`].
    Registry {
        /// The Schema Registry id.
        id: u32,
        /// The Avro body.
        body: &'a [u8],
    },
}

/// Which header a writer puts in front of the Avro body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Avro single-object encoding: `C3 01`, then the schema's fingerprint, little-endian.
    #[default]
    SingleObject,
    /// Confluent wire format: `00`, then the schema's registry id, big-endian.
    Confluent {
        /// The id the Schema Registry gave this build's schema for the record.
        id: u32,
    },
}

impl Framing {
    /// Appends this framing's header for a record with schema `info` to `out`.
    pub(crate) fn write_header(self, info: &SchemaInfo, out: &mut Vec<u8>) {
        match self {
            Self::SingleObject => {
                out.extend_from_slice(&SINGLE_OBJECT_MARKER);
                out.extend_from_slice(&info.fingerprint);
            }
            Self::Confluent { id } => {
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

/// Splits `bytes` into header and body for record `record` with schema `info`.
pub(crate) fn split<'a>(
    record: &'static str,
    info: &SchemaInfo,
    bytes: &'a [u8],
) -> Result<Framed<'a>, DecodeError> {
    match bytes {
        [] => Err(DecodeError::Empty { record }),
        [0xC3, 0x01, ..] => {
            let Some((fingerprint, body)) = bytes[2..].split_first_chunk::<8>() else {
                return Err(cut_short(record, bytes.len(), SINGLE_OBJECT_HEADER_LEN));
            };
            if *fingerprint == info.fingerprint {
                Ok(Framed::Current(body))
            } else if *fingerprint == info.legacy_fingerprint {
                Ok(Framed::Legacy(body))
            } else if let Some(index) = info.earlier_index(fingerprint) {
                Ok(Framed::Earlier { index, body })
            } else {
                Err(DecodeError::UnknownSchema {
                    record,
                    found: crate::codec::hex(fingerprint),
                    expected: crate::codec::hex(&info.fingerprint),
                })
            }
        }
        [CONFLUENT_MAGIC, rest @ ..] => {
            let Some((id, body)) = rest.split_first_chunk::<4>() else {
                return Err(cut_short(record, bytes.len(), CONFLUENT_HEADER_LEN));
            };
            Ok(Framed::Registry {
                id: u32::from_be_bytes(*id),
                body,
            })
        }
        _ => Err(DecodeError::BadMarker {
            found: crate::codec::hex(&bytes[..bytes.len().min(2)]),
        }),
    }
}

fn cut_short(record: &'static str, len: usize, header: usize) -> DecodeError {
    DecodeError::Malformed {
        record,
        detail: format!("header cut short: {len} bytes of a {header}-byte header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AvroRecord, PatientRecord};

    fn split_patient(bytes: &[u8]) -> Result<Framed<'_>, DecodeError> {
        split(PatientRecord::NAME, PatientRecord::schema_info(), bytes)
    }

    #[test]
    fn confluent_header_gives_the_big_endian_id_and_the_body() {
        assert_eq!(
            split_patient(&[0, 0, 0, 1, 2, 9, 8]).unwrap(),
            Framed::Registry {
                id: 258,
                body: &[9, 8]
            }
        );
        assert_eq!(
            split_patient(&[0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap(),
            Framed::Registry {
                id: u32::MAX,
                body: &[]
            }
        );
    }

    #[test]
    fn a_short_header_is_malformed_not_a_bad_marker() {
        for short in [
            &[0u8][..],
            &[0, 0, 0, 1],
            &[0xC3, 0x01],
            &[0xC3, 0x01, 1, 2, 3],
        ] {
            let err = split_patient(short).unwrap_err();
            assert!(
                matches!(err, DecodeError::Malformed { .. }),
                "{short:?}: {err}"
            );
        }
    }

    #[test]
    fn single_object_header_tells_current_from_legacy_and_unknown() {
        let info = PatientRecord::schema_info();
        let mut current = vec![0xC3, 0x01];
        current.extend_from_slice(&info.fingerprint);
        current.push(7);
        assert_eq!(split_patient(&current).unwrap(), Framed::Current(&[7]));

        let mut legacy = vec![0xC3, 0x01];
        legacy.extend_from_slice(&info.legacy_fingerprint);
        assert_eq!(split_patient(&legacy).unwrap(), Framed::Legacy(&[]));

        let foreign = [0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0];
        assert!(matches!(
            split_patient(&foreign),
            Err(DecodeError::UnknownSchema { .. })
        ));
        assert!(matches!(
            split_patient(b"{}"),
            Err(DecodeError::BadMarker { .. })
        ));
        assert!(matches!(split_patient(b""), Err(DecodeError::Empty { .. })));
    }

    #[test]
    fn headers_are_written_as_split_reads_them() {
        let info = PatientRecord::schema_info();
        let mut out = Vec::new();
        Framing::Confluent { id: 0x0102_0304 }.write_header(info, &mut out);
        assert_eq!(out, [0, 1, 2, 3, 4]);
        out.clear();
        Framing::SingleObject.write_header(info, &mut out);
        assert_eq!(out[..2], SINGLE_OBJECT_MARKER);
        assert_eq!(out[2..], info.fingerprint);
    }
}
