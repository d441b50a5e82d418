//! The scorer's output: probability, label, risk level and the model version that made it.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::binary::{Reader, Writer};
use crate::codec::{AvroRecord, FieldReader, SchemaInfo, record};
use crate::error::DecodeError;
use crate::explanation::Explanation;
use crate::imputation::FieldSet;

static SCHEMA: LazyLock<SchemaInfo> = LazyLock::new(|| {
    // Versions 1 (before imputed_fields) and 2 (before explanation) still decode: predictions
    // already on the topic.
    SchemaInfo::parse(include_str!("../avro/prediction.avsc")).with_earlier(&[
        include_str!("../avro/prediction_v1.avsc"),
        include_str!("../avro/prediction_v2.avsc"),
    ])
});

/// Probability at or above which the label is 1 (disease predicted).
pub const LABEL_THRESHOLD: f64 = 0.5;

/// Coarse risk band for a probability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    /// Below the medium threshold.
    Low,
    /// Between the thresholds.
    Medium,
    /// At or above the high threshold.
    High,
}

impl RiskLevel {
    /// Every level, lowest first.
    pub const ALL: [Self; 3] = [Self::Low, Self::Medium, Self::High];

    /// The Avro enum symbol and JSON spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }

    const fn index(self) -> u32 {
        match self {
            Self::Low => 0,
            Self::Medium => 1,
            Self::High => 2,
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RiskLevel {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or(DecodeError::FieldType {
                record: "Prediction",
                field: "risk_level",
            })
    }
}

/// Why a pair of thresholds is unusable.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ThresholdError {
    /// Not `0 <= medium < high <= 1`.
    #[error(
        "risk thresholds must satisfy 0 <= medium < high <= 1, got medium = {medium}, high = {high}"
    )]
    NotOrdered {
        /// Lower threshold.
        medium: f64,
        /// Upper threshold.
        high: f64,
    },
}

/// Maps a probability to a [`RiskLevel`]: `p < medium` is LOW, `p >= high` is HIGH.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RiskThresholds {
    medium: f64,
    high: f64,
}

impl Default for RiskThresholds {
    /// 0.3 and 0.7: a third of the probability range each side of the label threshold.
    fn default() -> Self {
        Self {
            medium: 0.3,
            high: 0.7,
        }
    }
}

impl RiskThresholds {
    /// Checked constructor.
    ///
    /// # Errors
    /// [`ThresholdError::NotOrdered`] unless `0 <= medium < high <= 1`.
    pub fn new(medium: f64, high: f64) -> Result<Self, ThresholdError> {
        if (0.0..=1.0).contains(&medium) && (0.0..=1.0).contains(&high) && medium < high {
            Ok(Self { medium, high })
        } else {
            Err(ThresholdError::NotOrdered { medium, high })
        }
    }

    /// The level for probability `p`.
    pub fn level(&self, p: f64) -> RiskLevel {
        if p >= self.high {
            RiskLevel::High
        } else if p >= self.medium {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }
}

/// One scored patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// From the input record.
    pub patient_id: String,
    /// From the input record, ms since the epoch.
    pub event_time: i64,
    /// When the scorer computed this, ms since the epoch.
    pub scored_at: i64,
    /// Probability of heart disease, in [0, 1].
    pub probability: f64,
    /// 1 when `probability >= 0.5`.
    pub label: i32,
    /// Risk band.
    pub risk_level: RiskLevel,
    /// Name of the model that made it.
    pub model_name: String,
    /// Version of the model that made it.
    pub model_version: i64,
    /// The input's missing attributes the model imputed (empty for a complete record).
    #[serde(default)]
    pub imputed_fields: FieldSet,
    /// Why the model answered so, when the scorer was asked to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl Prediction {
    /// The label for a probability.
    pub fn label_for(probability: f64) -> i32 {
        i32::from(probability >= LABEL_THRESHOLD)
    }
}

impl AvroRecord for Prediction {
    const NAME: &'static str = "Prediction";

    fn schema_info() -> &'static SchemaInfo {
        &SCHEMA
    }

    fn to_value(&self) -> Value {
        record(vec![
            ("patient_id", Value::String(self.patient_id.clone())),
            ("event_time", Value::TimestampMillis(self.event_time)),
            ("scored_at", Value::TimestampMillis(self.scored_at)),
            ("probability", Value::Double(self.probability)),
            ("label", Value::Int(self.label)),
            (
                "risk_level",
                Value::Enum(self.risk_level.index(), self.risk_level.as_str().to_owned()),
            ),
            ("model_name", Value::String(self.model_name.clone())),
            ("model_version", Value::Long(self.model_version)),
            (
                "imputed_fields",
                Value::Array(
                    self.imputed_fields
                        .names()
                        .map(|n| Value::String(n.to_owned()))
                        .collect(),
                ),
            ),
            (
                "explanation",
                Explanation::to_value(self.explanation.as_ref()),
            ),
        ])
    }

    fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::NAME, body);
        let p = Self {
            patient_id: r.string("patient_id")?,
            event_time: r.long("event_time")?,
            scored_at: r.long("scored_at")?,
            probability: r.double("probability")?,
            label: r.int("label")?,
            risk_level: RiskLevel::ALL[r.enum_index("risk_level", RiskLevel::ALL.len())?],
            model_name: r.string("model_name")?,
            model_version: r.long("model_version")?,
            imputed_fields: r.field_set("imputed_fields")?,
            explanation: Explanation::decode(&mut r)?,
        };
        r.finish()?;
        Ok(p)
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), crate::EncodeError> {
        let mut w = Writer(out);
        w.string(&self.patient_id);
        w.long(self.event_time);
        w.long(self.scored_at);
        w.double(self.probability);
        w.int(self.label);
        w.long(i64::from(self.risk_level.index()));
        w.string(&self.model_name);
        w.long(self.model_version);
        w.field_set(self.imputed_fields);
        Explanation::encode(self.explanation.as_ref(), &mut w);
        Ok(())
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut r = FieldReader::new(Self::NAME, value)?;
        Ok(Self {
            patient_id: r.string("patient_id")?,
            event_time: r.long("event_time")?,
            scored_at: r.long("scored_at")?,
            probability: r.double("probability")?,
            label: r.int("label")?,
            risk_level: r.enum_symbol("risk_level")?.parse()?,
            model_name: r.string("model_name")?,
            model_version: r.long("model_version")?,
            imputed_fields: FieldSet::from_names(
                r.strings("imputed_fields")?.iter().map(String::as_str),
            )
            .map_err(|_| DecodeError::FieldType {
                record: "Prediction",
                field: "imputed_fields",
            })?,
            explanation: Explanation::from_value(r.value("explanation")?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_split_probability_range() {
        let t = RiskThresholds::default();
        assert_eq!(t.level(0.0), RiskLevel::Low);
        assert_eq!(t.level(0.299), RiskLevel::Low);
        assert_eq!(t.level(0.3), RiskLevel::Medium);
        assert_eq!(t.level(0.699), RiskLevel::Medium);
        assert_eq!(t.level(0.7), RiskLevel::High);
        assert_eq!(t.level(1.0), RiskLevel::High);
    }

    #[test]
    fn thresholds_must_be_ordered_and_within_unit_interval() {
        assert!(RiskThresholds::new(0.2, 0.8).is_ok());
        assert_eq!(
            RiskThresholds::new(0.8, 0.2),
            Err(ThresholdError::NotOrdered {
                medium: 0.8,
                high: 0.2
            })
        );
        assert!(RiskThresholds::new(0.5, 0.5).is_err());
        assert!(RiskThresholds::new(-0.1, 0.5).is_err());
        assert!(RiskThresholds::new(0.1, 1.5).is_err());
    }

    #[test]
    fn label_flips_at_one_half() {
        assert_eq!(Prediction::label_for(0.4999), 0);
        assert_eq!(Prediction::label_for(0.5), 1);
    }

    #[test]
    fn avro_round_trip() {
        let p = Prediction {
            patient_id: "p-1".into(),
            event_time: 1,
            scored_at: 2,
            probability: 0.8125,
            label: 1,
            risk_level: RiskLevel::High,
            model_name: "heart".into(),
            model_version: 7,
            imputed_fields: FieldSet::from_names(["chol", "thal"]).unwrap(),
            explanation: None,
        };
        assert_eq!(Prediction::decode(&p.encode().unwrap()).unwrap(), p);
    }

    #[test]
    fn fast_codec_matches_apache_avro_both_ways() {
        use apache_avro::{from_avro_datum, to_avro_datum};
        let schema = &Prediction::schema_info().schema;
        for (i, level) in RiskLevel::ALL.into_iter().cycle().take(30).enumerate() {
            let i = i as i64;
            let p = Prediction {
                patient_id: format!("p-{i}"),
                event_time: i * 1_000_000_007,
                scored_at: -i,
                probability: i as f64 / 29.0,
                label: (i % 2) as i32,
                risk_level: level,
                model_name: "heart".repeat(i as usize % 3),
                model_version: i << 33,
                imputed_fields: FieldSet::EMPTY.with(i as usize % 13).with(12),
                explanation: None,
            };
            let ours = p.encode().unwrap();
            assert_eq!(
                &ours[10..],
                to_avro_datum(schema, p.to_value()).unwrap().as_slice()
            );
            let value = from_avro_datum(schema, &mut &ours[10..], None).unwrap();
            assert_eq!(Prediction::from_value(value).unwrap(), p);
            assert_eq!(Prediction::decode(&ours).unwrap(), p);
        }
    }

    #[test]
    fn a_version_1_prediction_decodes_with_no_imputed_fields() {
        use apache_avro::to_avro_datum;
        let v1 = &Prediction::schema_info().earlier[0];
        let p = Prediction {
            patient_id: "p-1".into(),
            event_time: 1,
            scored_at: 2,
            probability: 0.25,
            label: 0,
            risk_level: RiskLevel::Low,
            model_name: "heart".into(),
            model_version: 3,
            imputed_fields: FieldSet::EMPTY,
            explanation: None,
        };
        let Value::Record(mut fields) = p.to_value() else {
            unreachable!()
        };
        fields.retain(|(name, _)| name != "imputed_fields" && name != "explanation");
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&v1.fingerprint);
        bytes.extend(to_avro_datum(&v1.schema, Value::Record(fields)).unwrap());
        assert_eq!(Prediction::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn a_version_2_prediction_decodes_with_no_explanation() {
        use apache_avro::to_avro_datum;
        let v2 = &Prediction::schema_info().earlier[1];
        let p = Prediction {
            explanation: None,
            ..explained(4)
        };
        let Value::Record(mut fields) = p.to_value() else {
            unreachable!()
        };
        fields.retain(|(name, _)| name != "explanation");
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&v2.fingerprint);
        bytes.extend(to_avro_datum(&v2.schema, Value::Record(fields)).unwrap());
        assert_eq!(Prediction::decode(&bytes).unwrap(), p);
    }

    /// A prediction with an explanation of `k` contributions.
    fn explained(k: usize) -> Prediction {
        Prediction {
            patient_id: "p-9".into(),
            event_time: 10,
            scored_at: 11,
            probability: 0.75,
            label: 1,
            risk_level: RiskLevel::High,
            model_name: "heart".into(),
            model_version: 2,
            imputed_fields: FieldSet::from_names(["ca"]).unwrap(),
            explanation: Some(Explanation {
                space: crate::OutputSpace::LogOdds,
                base: -0.25,
                output: 1.0986,
                contributions: (0..k)
                    .map(|i| crate::Contribution {
                        field: 12 - i,
                        value: i as f64,
                        contribution: 0.5 / (i as f64 + 1.0),
                    })
                    .collect(),
                other: 0.125,
            }),
        }
    }

    #[test]
    fn explanations_round_trip_through_both_codecs_and_json() {
        use apache_avro::{from_avro_datum, to_avro_datum};
        let schema = &Prediction::schema_info().schema;
        for k in [0, 1, 5, 13] {
            let p = explained(k);
            let ours = p.encode().unwrap();
            assert_eq!(
                &ours[10..],
                to_avro_datum(schema, p.to_value()).unwrap().as_slice(),
                "{k} contributions"
            );
            let value = from_avro_datum(schema, &mut &ours[10..], None).unwrap();
            assert_eq!(Prediction::from_value(value).unwrap(), p);
            assert_eq!(Prediction::decode(&ours).unwrap(), p);
        }
        let json = serde_json::to_value(explained(2)).unwrap();
        assert_eq!(json["explanation"]["space"], "log_odds");
        assert_eq!(json["explanation"]["contributions"][0]["field"], "thal");
        assert_eq!(json["explanation"]["contributions"][1]["field"], "ca");
        let back: Prediction = serde_json::from_value(json).unwrap();
        assert_eq!(back, explained(2));
        let plain = serde_json::to_value(Prediction {
            explanation: None,
            ..explained(0)
        })
        .unwrap();
        assert!(
            plain.get("explanation").is_none(),
            "absent unless asked for"
        );
    }

    #[test]
    fn risk_level_json_is_upper_case() {
        assert_eq!(
            serde_json::to_string(&RiskLevel::Medium).unwrap(),
            "\"MEDIUM\""
        );
    }
}
