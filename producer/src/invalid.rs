//! Malformed records for the scorer's dead-letter path (`--invalid-ratio`), made from a seed.
//!
//! Each kind exercises one decision of the scorer and maps to one [`Reason`]: bytes that are not
//! Avro at all, an Avro message cut short, a well-formed message with a value out of range, and an
//! empty value.

use std::fmt;

use heart_schemas::{AvroRecord, PatientRecord, Reason};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::SendError;

/// Mixed into the seed so the invalid mix does not replay the synthetic generator's draws.
const SEED_SALT: u64 = 0x1a2b_3c4d_5e6f_7081;

/// A kind of malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidKind {
    /// JSON text instead of Avro: no single-object marker.
    NotAvro,
    /// A valid Avro message with its tail cut off.
    TruncatedAvro,
    /// A well-formed Avro message whose value is outside the allowed range (e.g. age 500).
    OutOfRange,
    /// A zero-length value.
    EmptyValue,
}

impl InvalidKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 4] = [
        Self::NotAvro,
        Self::TruncatedAvro,
        Self::OutOfRange,
        Self::EmptyValue,
    ];

    /// The stable snake_case name used in reports and patient ids.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotAvro => "not_avro",
            Self::TruncatedAvro => "truncated_avro",
            Self::OutOfRange => "out_of_range",
            Self::EmptyValue => "empty_value",
        }
    }

    /// The dead-letter reason the scorer should give this kind.
    pub const fn expected_reason(self) -> Reason {
        match self {
            Self::NotAvro | Self::TruncatedAvro => Reason::MalformedAvro,
            Self::OutOfRange => Reason::OutOfRange,
            Self::EmptyValue => Reason::EmptyValue,
        }
    }
}

impl fmt::Display for InvalidKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One malformed message, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InvalidRecord {
    /// Its kind.
    pub(crate) kind: InvalidKind,
    /// The key: `invalid-<kind>-<n>`.
    pub(crate) key: String,
    /// The value bytes.
    pub(crate) value: Vec<u8>,
}

/// Decides, message by message, whether the next one is malformed, and makes it.
#[derive(Debug)]
pub(crate) struct InvalidMix {
    rng: StdRng,
    ratio: f64,
    /// Messages made so far, for unique keys.
    made: u64,
}

impl InvalidMix {
    /// `ratio` is the share of all messages that are malformed, in `0..1`.
    pub(crate) fn new(ratio: f64, seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed ^ SEED_SALT),
            ratio,
            made: 0,
        }
    }

    /// A malformed message with probability `ratio`, built from `template` (a valid record);
    /// `None` means send a valid one.
    ///
    /// # Errors
    /// [`SendError::Encode`] if the template cannot be encoded (a bug).
    pub(crate) fn maybe_next(
        &mut self,
        template: &PatientRecord,
    ) -> Result<Option<InvalidRecord>, SendError> {
        if self.ratio <= 0.0 || !self.rng.gen_bool(self.ratio) {
            return Ok(None);
        }
        let kind = InvalidKind::ALL[self.rng.gen_range(0..InvalidKind::ALL.len())];
        self.made += 1;
        let key = format!("invalid-{kind}-{}", self.made);
        let value = match kind {
            InvalidKind::NotAvro => serde_json::json!({ "patient_id": key, "age": 63 })
                .to_string()
                .into_bytes(),
            InvalidKind::TruncatedAvro => {
                let bytes = template.encode()?;
                // Keep the 10-byte header so the reader gets as far as the body. A cut just
                // before the trailing `ca`/`thal` unions is included on purpose: apache-avro reads
                // a union at end of input as null, and heart-schemas must still reject it.
                let cut = self.rng.gen_range(10..bytes.len().max(11));
                bytes[..cut.min(bytes.len())].to_vec()
            }
            InvalidKind::OutOfRange => {
                let mut record = PatientRecord {
                    patient_id: key.clone(),
                    ..template.clone()
                };
                match self.rng.gen_range(0..4) {
                    0 => record.age = Some(500),
                    1 => record.trestbps = Some(400.0),
                    2 => record.chol = Some(5.0),
                    _ => record.cp = Some(9),
                }
                record.encode()?
            }
            InvalidKind::EmptyValue => Vec::new(),
        };
        Ok(Some(InvalidRecord { kind, key, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> PatientRecord {
        crate::source::synthetic::Generator::new(1, "t-").next_record()
    }

    /// What the scorer does with a value: decode, then validate.
    fn reason_for(value: &[u8]) -> Option<Reason> {
        match PatientRecord::decode(value) {
            Err(e) => Some(Reason::for_decode(&e)),
            Ok(r) => r.validate().err().map(|e| Reason::for_invalid(&e)),
        }
    }

    #[test]
    fn every_kind_decodes_to_its_expected_reason() {
        let mut mix = InvalidMix::new(0.999, 5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            if let Some(bad) = mix.maybe_next(&template()).unwrap() {
                assert_eq!(
                    reason_for(&bad.value),
                    Some(bad.kind.expected_reason()),
                    "{bad:?}"
                );
                seen.insert(bad.kind);
            }
        }
        assert_eq!(seen.len(), InvalidKind::ALL.len());
    }

    #[test]
    fn the_template_itself_is_valid() {
        assert_eq!(reason_for(&template().encode().unwrap()), None);
    }

    #[test]
    fn the_ratio_is_respected_and_seeded() {
        let run = |seed| {
            let mut mix = InvalidMix::new(0.2, seed);
            (0..10_000)
                .map(|_| mix.maybe_next(&template()).unwrap().map(|b| b.kind))
                .collect::<Vec<_>>()
        };
        let a = run(9);
        assert_eq!(a, run(9));
        let bad = a.iter().flatten().count();
        assert!((1800..2200).contains(&bad), "{bad}");
    }

    #[test]
    fn ratio_zero_never_makes_one() {
        let mut mix = InvalidMix::new(0.0, 1);
        assert!((0..1000).all(|_| mix.maybe_next(&template()).unwrap().is_none()));
    }

    #[test]
    fn keys_are_unique_and_name_the_kind() {
        let mut mix = InvalidMix::new(0.999, 2);
        let keys: Vec<String> = (0..50)
            .filter_map(|_| mix.maybe_next(&template()).unwrap())
            .map(|b| {
                assert!(b.key.contains(b.kind.code()));
                b.key
            })
            .collect();
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
    }
}
