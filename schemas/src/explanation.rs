//! A prediction's explanation on the wire: the model's output as a base plus per-field
//! contributions (how heart-model computes them: docs/explanations.md).

use apache_avro::types::Value;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::binary::{Reader, Writer};
use crate::codec::record;
use crate::error::DecodeError;
use crate::patient::FIELDS;

/// The scale of an explanation's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputSpace {
    /// Log-odds of heart disease (logistic regression, gradient boosting).
    LogOdds,
    /// Probability of heart disease (a decision tree, a random forest).
    Probability,
}

impl OutputSpace {
    /// Every space, in the Avro enum's order.
    pub const ALL: [Self; 2] = [Self::LogOdds, Self::Probability];

    /// The JSON spelling, e.g. `log_odds`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::LogOdds => "log_odds",
            Self::Probability => "probability",
        }
    }

    /// The Avro enum symbol, e.g. `LOG_ODDS`.
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::LogOdds => "LOG_ODDS",
            Self::Probability => "PROBABILITY",
        }
    }

    const fn index(self) -> u32 {
        match self {
            Self::LogOdds => 0,
            Self::Probability => 1,
        }
    }
}

/// One field's share of the output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Index into [`FIELDS`]; written as the field's name.
    #[serde(serialize_with = "field_name", deserialize_with = "field_index")]
    pub field: usize,
    /// The value the model used: as received, or the training median or mode imputed for it.
    pub value: f64,
    /// What the field added to the output (negative: it lowered it).
    pub contribution: f64,
}

/// The output split into a base and the largest contributions; `base + Σ contributions + other
/// == output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The scale of the numbers below.
    pub space: OutputSpace,
    /// The output expected over the training data.
    pub base: f64,
    /// The model's output for this record, before calibration.
    pub output: f64,
    /// The largest contributions by magnitude, largest first.
    pub contributions: Vec<Contribution>,
    /// The sum of the contributions of the fields not listed.
    pub other: f64,
}

fn field_name<S: Serializer>(field: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(FIELDS.get(*field).map_or("?", |f| f.name))
}

fn field_index<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let name = String::deserialize(d)?;
    index_of(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown field {name:?}")))
}

fn index_of(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.name == name)
}

impl Explanation {
    /// The Avro value of an optional explanation (`["null", Explanation]`).
    pub(crate) fn to_value(explanation: Option<&Self>) -> Value {
        crate::codec::nullable(explanation.map(|e| {
            record(vec![
                (
                    "space",
                    Value::Enum(e.space.index(), e.space.symbol().to_owned()),
                ),
                ("base", Value::Double(e.base)),
                ("output", Value::Double(e.output)),
                (
                    "contributions",
                    Value::Array(
                        e.contributions
                            .iter()
                            .map(|c| {
                                record(vec![
                                    ("field", Value::String(FIELDS[c.field].name.to_owned())),
                                    ("value", Value::Double(c.value)),
                                    ("contribution", Value::Double(c.contribution)),
                                ])
                            })
                            .collect(),
                    ),
                ),
                ("other", Value::Double(e.other)),
            ])
        }))
    }

    /// Reads an optional explanation from a decoded Avro value (absent in schema versions 1
    /// and 2, where resolution fills in the default `null`).
    pub(crate) fn from_value(value: Value) -> Result<Option<Self>, DecodeError> {
        let wrong = || DecodeError::FieldType {
            record: "Prediction",
            field: "explanation",
        };
        let value = match value {
            Value::Union(_, inner) => *inner,
            other => other,
        };
        let Value::Record(fields) = value else {
            return match value {
                Value::Null => Ok(None),
                _ => Err(wrong()),
            };
        };
        let mut fields = fields.into_iter().map(|(_, v)| v);
        let mut next = || fields.next().ok_or_else(wrong);
        let space = match next()? {
            Value::Enum(i, _) => *OutputSpace::ALL.get(i as usize).ok_or_else(wrong)?,
            _ => return Err(wrong()),
        };
        let double = |v: Value| match v {
            Value::Double(x) => Ok(x),
            _ => Err(wrong()),
        };
        let base = double(next()?)?;
        let output = double(next()?)?;
        let Value::Array(items) = next()? else {
            return Err(wrong());
        };
        let contributions = items
            .into_iter()
            .map(|item| {
                let Value::Record(f) = item else {
                    return Err(wrong());
                };
                match <[(String, Value); 3]>::try_from(f) {
                    Ok([(_, Value::String(name)), (_, value), (_, contribution)]) => {
                        Ok(Contribution {
                            field: index_of(&name).ok_or_else(wrong)?,
                            value: double(value)?,
                            contribution: double(contribution)?,
                        })
                    }
                    _ => Err(wrong()),
                }
            })
            .collect::<Result<_, _>>()?;
        let other = double(next()?)?;
        Ok(Some(Self {
            space,
            base,
            output,
            contributions,
            other,
        }))
    }

    /// Writes an optional explanation in Avro binary.
    pub(crate) fn encode(explanation: Option<&Self>, w: &mut Writer<'_>) {
        let Some(e) = explanation else {
            w.long(0);
            return;
        };
        w.long(1);
        w.long(i64::from(e.space.index()));
        w.double(e.base);
        w.double(e.output);
        if !e.contributions.is_empty() {
            w.long(e.contributions.len() as i64);
            for c in &e.contributions {
                w.string(FIELDS[c.field].name);
                w.double(c.value);
                w.double(c.contribution);
            }
        }
        w.long(0);
        w.double(e.other);
    }

    /// Reads an optional explanation in Avro binary.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Option<Self>, DecodeError> {
        const FIELD: &str = "explanation";
        match r.long(FIELD)? {
            0 => return Ok(None),
            1 => {}
            _ => return Err(r.malformed(FIELD, "bad union branch")),
        }
        let space = OutputSpace::ALL[r.enum_index(FIELD, OutputSpace::ALL.len())?];
        let base = r.double(FIELD)?;
        let output = r.double(FIELD)?;
        let mut contributions = Vec::new();
        r.blocks(FIELD, |r| {
            let name = r.string(FIELD)?;
            let field = index_of(&name).ok_or_else(|| r.malformed(FIELD, "unknown field"))?;
            contributions.push(Contribution {
                field,
                value: r.double(FIELD)?,
                contribution: r.double(FIELD)?,
            });
            Ok(())
        })?;
        let other = r.double(FIELD)?;
        Ok(Some(Self {
            space,
            base,
            output,
            contributions,
            other,
        }))
    }
}
