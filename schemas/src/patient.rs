//! The patient record: 13 UCI Heart Disease attributes, their allowed values, and validation.

use std::fmt;
use std::sync::LazyLock;

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};

use crate::binary::{Reader, Writer};
use crate::codec::{AvroRecord, FieldReader, SchemaInfo, nullable, record};
use crate::error::DecodeError;

static SCHEMA: LazyLock<SchemaInfo> = LazyLock::new(|| {
    // Version 1 (only ca and thal nullable) still decodes, by fingerprint and by registry id.
    SchemaInfo::parse(include_str!("../avro/patient_record.avsc"))
        .with_earlier(&[include_str!("../avro/patient_record_v1.avsc")])
});

/// Longest accepted patient id, in bytes.
pub const MAX_PATIENT_ID_BYTES: usize = 128;

/// One patient as sent on the patients topic and to `POST /predict`.
///
/// JSON and Avro use the UCI attribute names. Categorical codes are integers; measurements are
/// floating point. Any attribute may be missing (`None`, JSON `null` or absent): the scorer
/// imputes it within its [`crate::ImputationPolicy`] and names it in the prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientRecord {
    /// Caller-assigned id; the Kafka key.
    pub patient_id: String,
    /// When the measurements were taken, ms since the Unix epoch.
    pub event_time: i64,
    /// Age, years.
    pub age: Option<i32>,
    /// 0 = female, 1 = male.
    pub sex: Option<i32>,
    /// Chest pain type, 1..=4.
    pub cp: Option<i32>,
    /// Resting blood pressure, mm Hg.
    pub trestbps: Option<f64>,
    /// Serum cholesterol, mg/dl.
    pub chol: Option<f64>,
    /// Fasting blood sugar > 120 mg/dl, 0/1.
    pub fbs: Option<i32>,
    /// Resting ECG, 0..=2.
    pub restecg: Option<i32>,
    /// Maximum heart rate achieved, beats/min.
    pub thalach: Option<f64>,
    /// Exercise-induced angina, 0/1.
    pub exang: Option<i32>,
    /// ST depression induced by exercise, mm.
    pub oldpeak: Option<f64>,
    /// Slope of the peak-exercise ST segment, 1..=3.
    pub slope: Option<i32>,
    /// Major vessels coloured by fluoroscopy, 0..=3.
    pub ca: Option<i32>,
    /// Thallium stress test: 3, 6 or 7.
    pub thal: Option<i32>,
}

/// What values a clinical field accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldKind {
    /// A measurement within an inclusive range.
    Numeric {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A code from a closed set.
    Categorical {
        /// The allowed codes.
        allowed: &'static [i32],
    },
}

/// How the model's preprocessing treats a field (fixed here so trainer and scorer agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Median imputation, then standardisation.
    Scaled,
    /// Most-frequent imputation, then one-hot encoding.
    OneHot,
}

/// One of the 13 clinical attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldSpec {
    /// UCI attribute name, as used in JSON, Avro and CSV headers.
    pub name: &'static str,
    /// Allowed values.
    pub kind: FieldKind,
    /// A value some sources write for "not measured" (the Hungarian, Swiss and VA files write
    /// 0 for a cholesterol or resting blood pressure nobody took): read as missing wherever a
    /// record enters (producer, trainer, scorer), never as a measurement.
    pub not_measured: Option<f64>,
    /// Whether values are whole numbers (Avro `int`).
    pub integer: bool,
    /// How the model encodes it.
    pub encoding: Encoding,
    /// Unit or meaning, for help texts and plots.
    pub unit: &'static str,
}

impl FieldSpec {
    /// `value` as the contract reads it: the field's "not measured" placeholder is missing.
    pub fn normalize(&self, value: Option<f64>) -> Option<f64> {
        value.filter(|v| Some(*v) != self.not_measured)
    }
}

const fn numeric(name: &'static str, min: f64, max: f64, unit: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind: FieldKind::Numeric { min, max },
        not_measured: None,
        integer: false,
        encoding: Encoding::Scaled,
        unit,
    }
}

const fn categorical(name: &'static str, allowed: &'static [i32], unit: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind: FieldKind::Categorical { allowed },
        not_measured: None,
        integer: true,
        encoding: Encoding::OneHot,
        unit,
    }
}

/// The 13 clinical attributes in UCI column order, which is also the model's feature order.
pub const FIELDS: [FieldSpec; 13] = [
    FieldSpec {
        integer: true,
        ..numeric("age", 1.0, 120.0, "years")
    },
    categorical("sex", &[0, 1], "0 = female, 1 = male"),
    categorical("cp", &[1, 2, 3, 4], "chest pain type"),
    FieldSpec {
        not_measured: Some(0.0),
        ..numeric("trestbps", 50.0, 250.0, "mm Hg")
    },
    FieldSpec {
        not_measured: Some(0.0),
        ..numeric("chol", 50.0, 700.0, "mg/dl")
    },
    categorical("fbs", &[0, 1], "fasting blood sugar > 120 mg/dl"),
    categorical("restecg", &[0, 1, 2], "resting ECG"),
    numeric("thalach", 50.0, 250.0, "beats/min"),
    categorical("exang", &[0, 1], "exercise-induced angina"),
    numeric("oldpeak", -3.0, 10.0, "mm"),
    categorical("slope", &[1, 2, 3], "peak-exercise ST slope"),
    FieldSpec {
        name: "ca",
        kind: FieldKind::Numeric { min: 0.0, max: 3.0 },
        not_measured: None,
        integer: true,
        encoding: Encoding::Scaled,
        unit: "vessels",
    },
    FieldSpec {
        name: "thal",
        kind: FieldKind::Categorical {
            allowed: &[3, 6, 7],
        },
        not_measured: None,
        integer: true,
        encoding: Encoding::OneHot,
        unit: "thallium test",
    },
];

/// Number of clinical attributes.
pub const N_FIELDS: usize = FIELDS.len();

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The field has the wrong JSON type.
    WrongType {
        /// What was expected, e.g. "integer".
        expected: &'static str,
    },
    /// A measurement outside its range.
    OutOfRange {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A code outside its set.
    NotAllowed {
        /// The allowed codes.
        allowed: &'static [i32],
    },
    /// NaN or infinite.
    NotFinite,
    /// A text field that is empty or too long.
    BadLength {
        /// Longest allowed, in bytes.
        max_bytes: usize,
    },
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The field's name.
    pub field: &'static str,
    /// The offending value as text (`null` when missing).
    pub value: String,
    /// What is wrong.
    #[serde(flatten)]
    pub problem: Problem,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, value) = (self.field, &self.value);
        match &self.problem {
            Problem::WrongType { expected } => {
                write!(f, "{field} = {value} is not {expected}")
            }
            Problem::OutOfRange { min, max } => {
                write!(
                    f,
                    "{field} = {value} is outside the allowed range {min}..={max}"
                )
            }
            Problem::NotAllowed { allowed } => {
                write!(
                    f,
                    "{field} = {value} is not one of the allowed codes {allowed:?}"
                )
            }
            Problem::NotFinite => write!(f, "{field} = {value} is not a finite number"),
            Problem::BadLength { max_bytes } => {
                write!(f, "{field} must be 1 to {max_bytes} bytes long")
            }
        }
    }
}

/// Every field of a record that failed validation; never empty.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Invalid {
    /// The violations, in field order.
    pub violations: Vec<Violation>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl PatientRecord {
    /// The 13 attributes in [`FIELDS`] order, `None` where missing (a field's "not measured"
    /// placeholder, such as `chol = 0`, is missing too).
    pub fn features(&self) -> [Option<f64>; N_FIELDS] {
        let int = |v: Option<i32>| v.map(f64::from);
        let raw = [
            int(self.age),
            int(self.sex),
            int(self.cp),
            self.trestbps,
            self.chol,
            int(self.fbs),
            int(self.restecg),
            self.thalach,
            int(self.exang),
            self.oldpeak,
            int(self.slope),
            int(self.ca),
            int(self.thal),
        ];
        std::array::from_fn(|i| FIELDS[i].normalize(raw[i]))
    }

    /// Checks every field against [`FIELDS`] and the patient id's length.
    ///
    /// # Errors
    /// [`Invalid`] listing every field that is out of range, not an allowed code or not finite.
    /// Missing fields are not violations: whether a record has too many is the scorer's
    /// [`crate::ImputationPolicy`].
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut violations = Vec::new();
        if self.patient_id.is_empty() || self.patient_id.len() > MAX_PATIENT_ID_BYTES {
            violations.push(Violation {
                field: "patient_id",
                value: format!("{:?}", truncate(&self.patient_id, 32)),
                problem: Problem::BadLength {
                    max_bytes: MAX_PATIENT_ID_BYTES,
                },
            });
        }
        for (spec, value) in FIELDS.iter().zip(self.features()) {
            if let Some(problem) = check(spec, value) {
                violations.push(Violation {
                    field: spec.name,
                    value: value.map_or_else(|| "null".to_owned(), |v| v.to_string()),
                    problem,
                });
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid { violations })
        }
    }

    /// Builds a record from a JSON object with the UCI field names, checking every field.
    ///
    /// `patient_id` and `event_time` are optional here (defaults: `"anonymous"` and
    /// `default_event_time`), since a synchronous caller may not have them.
    ///
    /// # Errors
    /// [`Invalid`] naming every field that is missing, of the wrong type or out of range.
    pub fn from_json(
        object: &serde_json::Map<String, serde_json::Value>,
        default_event_time: i64,
    ) -> Result<Self, Invalid> {
        let mut violations = Vec::new();
        let patient_id = match object.get("patient_id") {
            None | Some(serde_json::Value::Null) => "anonymous".to_owned(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                violations.push(wrong_type("patient_id", other, "a string"));
                String::new()
            }
        };
        let event_time = match object.get("event_time") {
            None | Some(serde_json::Value::Null) => default_event_time,
            Some(v) => v.as_i64().unwrap_or_else(|| {
                violations.push(wrong_type("event_time", v, "an integer (ms since epoch)"));
                0
            }),
        };
        let mut values = [None; N_FIELDS];
        for (slot, spec) in values.iter_mut().zip(FIELDS.iter()) {
            match object.get(spec.name) {
                None | Some(serde_json::Value::Null) => {}
                Some(v) => {
                    let ok = if spec.integer {
                        is_integral(v)
                    } else {
                        v.is_number()
                    };
                    if ok {
                        *slot = v.as_f64();
                    } else {
                        violations.push(wrong_type(spec.name, v, expected_type(spec)));
                    }
                }
            }
        }
        let record = Self::from_features(patient_id, event_time, &values);
        if let Err(mut invalid) = record.validate() {
            // Mistyped fields were left missing: report the type, not a second error.
            let reported: Vec<&str> = violations.iter().map(|v| v.field).collect();
            invalid.violations.retain(|v| !reported.contains(&v.field));
            violations.extend(invalid.violations);
        }
        if violations.is_empty() {
            Ok(record)
        } else {
            violations.sort_by_key(|v| field_position(v.field));
            Err(Invalid { violations })
        }
    }

    /// Builds a record from attributes in [`FIELDS`] order, normalized by the contract (a
    /// field's "not measured" placeholder becomes `None`); codes are rounded to the nearest
    /// integer. Callers validate.
    pub fn from_features(patient_id: String, event_time: i64, v: &[Option<f64>; N_FIELDS]) -> Self {
        let v: [Option<f64>; N_FIELDS] = std::array::from_fn(|i| FIELDS[i].normalize(v[i]));
        let code = |x: Option<f64>| x.map(round_code);
        Self {
            patient_id,
            event_time,
            age: code(v[0]),
            sex: code(v[1]),
            cp: code(v[2]),
            trestbps: v[3],
            chol: v[4],
            fbs: code(v[5]),
            restecg: code(v[6]),
            thalach: v[7],
            exang: code(v[8]),
            oldpeak: v[9],
            slope: code(v[10]),
            ca: code(v[11]),
            thal: code(v[12]),
        }
    }

    /// The names of the missing attributes, in [`FIELDS`] order.
    pub fn missing_fields(&self) -> Vec<&'static str> {
        self.features()
            .iter()
            .zip(FIELDS.iter())
            .filter(|(v, _)| v.is_none())
            .map(|(_, spec)| spec.name)
            .collect()
    }
}

#[allow(clippy::cast_possible_truncation)] // codes are small integers; validation bounds them
fn round_code(x: f64) -> i32 {
    x.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

fn is_integral(v: &serde_json::Value) -> bool {
    v.as_f64().is_some_and(|x| x.fract() == 0.0)
}

fn expected_type(spec: &FieldSpec) -> &'static str {
    if spec.integer {
        "an integer"
    } else {
        "a number"
    }
}

fn wrong_type(field: &'static str, v: &serde_json::Value, expected: &'static str) -> Violation {
    Violation {
        field,
        value: truncate(&v.to_string(), 32).to_owned(),
        problem: Problem::WrongType { expected },
    }
}

fn field_position(field: &str) -> usize {
    match field {
        "patient_id" => 0,
        "event_time" => 1,
        f => 2 + FIELDS.iter().position(|s| s.name == f).unwrap_or(N_FIELDS),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn check(spec: &FieldSpec, value: Option<f64>) -> Option<Problem> {
    let x = value?;
    if !x.is_finite() {
        return Some(Problem::NotFinite);
    }
    match spec.kind {
        FieldKind::Numeric { min, max } => {
            (!(min..=max).contains(&x)).then_some(Problem::OutOfRange { min, max })
        }
        FieldKind::Categorical { allowed } => {
            (!allowed.iter().any(|&a| f64::from(a) == x)).then_some(Problem::NotAllowed { allowed })
        }
    }
}

impl AvroRecord for PatientRecord {
    const NAME: &'static str = "PatientRecord";

    fn schema_info() -> &'static SchemaInfo {
        &SCHEMA
    }

    fn to_value(&self) -> Value {
        record(vec![
            ("patient_id", Value::String(self.patient_id.clone())),
            ("event_time", Value::TimestampMillis(self.event_time)),
            ("age", nullable(self.age.map(Value::Int))),
            ("sex", nullable(self.sex.map(Value::Int))),
            ("cp", nullable(self.cp.map(Value::Int))),
            ("trestbps", nullable(self.trestbps.map(Value::Double))),
            ("chol", nullable(self.chol.map(Value::Double))),
            ("fbs", nullable(self.fbs.map(Value::Int))),
            ("restecg", nullable(self.restecg.map(Value::Int))),
            ("thalach", nullable(self.thalach.map(Value::Double))),
            ("exang", nullable(self.exang.map(Value::Int))),
            ("oldpeak", nullable(self.oldpeak.map(Value::Double))),
            ("slope", nullable(self.slope.map(Value::Int))),
            ("ca", nullable(self.ca.map(Value::Int))),
            ("thal", nullable(self.thal.map(Value::Int))),
        ])
    }

    fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::NAME, body);
        let record = Self {
            patient_id: r.string("patient_id")?,
            event_time: r.long("event_time")?,
            age: r.opt_int("age")?,
            sex: r.opt_int("sex")?,
            cp: r.opt_int("cp")?,
            trestbps: r.opt_double("trestbps")?,
            chol: r.opt_double("chol")?,
            fbs: r.opt_int("fbs")?,
            restecg: r.opt_int("restecg")?,
            thalach: r.opt_double("thalach")?,
            exang: r.opt_int("exang")?,
            oldpeak: r.opt_double("oldpeak")?,
            slope: r.opt_int("slope")?,
            ca: r.opt_int("ca")?,
            thal: r.opt_int("thal")?,
        };
        r.finish()?;
        Ok(record)
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), crate::EncodeError> {
        let mut w = Writer(out);
        w.string(&self.patient_id);
        w.long(self.event_time);
        w.opt_int(self.age);
        w.opt_int(self.sex);
        w.opt_int(self.cp);
        w.opt_double(self.trestbps);
        w.opt_double(self.chol);
        w.opt_int(self.fbs);
        w.opt_int(self.restecg);
        w.opt_double(self.thalach);
        w.opt_int(self.exang);
        w.opt_double(self.oldpeak);
        w.opt_int(self.slope);
        w.opt_int(self.ca);
        w.opt_int(self.thal);
        Ok(())
    }

    /// Version 1's body (every field but ca and thal required): what records already on the
    /// topics hold, read without schema resolution.
    fn decode_earlier(index: usize, body: &[u8]) -> Result<Self, DecodeError> {
        if index != 0 {
            return Err(DecodeError::Malformed {
                record: Self::NAME,
                detail: format!("no earlier schema {index}"),
            });
        }
        let mut r = Reader::new(Self::NAME, body);
        let record = Self {
            patient_id: r.string("patient_id")?,
            event_time: r.long("event_time")?,
            age: Some(r.int("age")?),
            sex: Some(r.int("sex")?),
            cp: Some(r.int("cp")?),
            trestbps: Some(r.double("trestbps")?),
            chol: Some(r.double("chol")?),
            fbs: Some(r.int("fbs")?),
            restecg: Some(r.int("restecg")?),
            thalach: Some(r.double("thalach")?),
            exang: Some(r.int("exang")?),
            oldpeak: Some(r.double("oldpeak")?),
            slope: Some(r.int("slope")?),
            ca: r.opt_int("ca")?,
            thal: r.opt_int("thal")?,
        };
        r.finish()?;
        Ok(record)
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut r = FieldReader::new(Self::NAME, value)?;
        Ok(Self {
            patient_id: r.string("patient_id")?,
            event_time: r.long("event_time")?,
            age: r.opt_int("age")?,
            sex: r.opt_int("sex")?,
            cp: r.opt_int("cp")?,
            trestbps: r.opt_double("trestbps")?,
            chol: r.opt_double("chol")?,
            fbs: r.opt_int("fbs")?,
            restecg: r.opt_int("restecg")?,
            thalach: r.opt_double("thalach")?,
            exang: r.opt_int("exang")?,
            oldpeak: r.opt_double("oldpeak")?,
            slope: r.opt_int("slope")?,
            ca: r.opt_int("ca")?,
            thal: r.opt_int("thal")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Framed;

    /// The first row of the Cleveland file.
    pub(crate) fn first_cleveland_row() -> PatientRecord {
        PatientRecord {
            patient_id: "cleveland-1".to_owned(),
            event_time: 1_700_000_000_000,
            age: Some(63),
            sex: Some(1),
            cp: Some(1),
            trestbps: Some(145.0),
            chol: Some(233.0),
            fbs: Some(1),
            restecg: Some(2),
            thalach: Some(150.0),
            exang: Some(0),
            oldpeak: Some(2.3),
            slope: Some(3),
            ca: Some(0),
            thal: Some(6),
        }
    }

    #[test]
    fn avro_round_trip_keeps_every_field() {
        let mut rec = first_cleveland_row();
        let bytes = rec.encode().unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(PatientRecord::decode(&bytes).unwrap(), rec);
        rec.ca = None;
        rec.thal = None;
        assert_eq!(PatientRecord::decode(&rec.encode().unwrap()).unwrap(), rec);
    }

    /// The hand-written codec and apache-avro's generic one agree byte for byte.
    #[test]
    fn fast_codec_matches_apache_avro_both_ways() {
        use apache_avro::{from_avro_datum, to_avro_datum};
        let schema = &PatientRecord::schema_info().schema;
        let mut variants = vec![first_cleveland_row()];
        for i in 0..200i32 {
            variants.push(PatientRecord {
                patient_id: "é".repeat((i % 7) as usize) + &i.to_string(),
                event_time: i64::from(i) * -7_919_000_003 + 1,
                age: Some(i * 1_000_003 - 5),
                sex: Some(-i),
                cp: Some(i << 20),
                trestbps: Some(f64::from(i) * 1.5e10),
                chol: Some(-f64::from(i) / 3.0),
                fbs: Some(i),
                restecg: Some(i32::MAX - i),
                thalach: Some(f64::from(i).sqrt()),
                exang: Some(i32::MIN + i),
                oldpeak: Some(f64::from(i) * 1e-300),
                slope: Some(i % 3),
                ca: (i % 3 != 0).then_some(i - 100),
                thal: (i % 5 != 0).then_some(i * 31),
            });
        }
        for rec in variants {
            let ours = rec.encode().unwrap();
            let theirs = to_avro_datum(schema, rec.to_value()).unwrap();
            assert_eq!(&ours[10..], theirs.as_slice(), "{rec:?}");
            let value = from_avro_datum(schema, &mut &ours[10..], None).unwrap();
            assert_eq!(PatientRecord::from_value(value).unwrap(), rec);
            assert_eq!(PatientRecord::decode(&ours).unwrap(), rec);
        }
    }

    /// A record as builds before schema version 2 wrote it: every field but ca and thal a plain
    /// (non-union) value, under version 1's fingerprint.
    fn version_1_bytes(rec: &PatientRecord) -> Vec<u8> {
        let v1 = &PatientRecord::schema_info().earlier[0];
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&v1.fingerprint);
        let mut w = Writer(&mut bytes);
        w.string(&rec.patient_id);
        w.long(rec.event_time);
        let f = rec.features();
        for (i, spec) in FIELDS.iter().enumerate().take(11) {
            let v = f[i].unwrap();
            if spec.integer {
                w.int(v as i32);
            } else {
                w.double(v);
            }
        }
        w.opt_int(rec.ca);
        w.opt_int(rec.thal);
        bytes
    }

    #[test]
    fn a_version_1_record_decodes_by_fingerprint_fast_and_by_resolution_alike() {
        let rec = first_cleveland_row();
        let bytes = version_1_bytes(&rec);
        assert!(matches!(
            PatientRecord::frame(&bytes),
            Ok(Framed::Earlier { index: 0, .. })
        ));
        assert_eq!(PatientRecord::decode(&bytes).unwrap(), rec);
        // The generic path (what a registry id naming version 1 would take without the fast
        // decoder) agrees.
        let v1 = &PatientRecord::schema_info().earlier[0];
        let value = crate::codec::decode_value("PatientRecord", &v1.schema, &bytes[10..]).unwrap();
        let resolved = value.resolve(&PatientRecord::schema_info().schema).unwrap();
        assert_eq!(PatientRecord::from_value(resolved).unwrap(), rec);
        // Version 1's legacy (apache-avro) fingerprint is accepted too.
        let mut legacy = bytes.clone();
        legacy[2..10].copy_from_slice(&v1.legacy_fingerprint);
        assert_eq!(PatientRecord::decode(&legacy).unwrap(), rec);
        // A version 1 body cut short is still an error.
        assert!(PatientRecord::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn every_field_may_be_missing_and_round_trips_as_null() {
        let rec = PatientRecord::from_features("p".into(), 1, &[None; N_FIELDS]);
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(rec.missing_fields().len(), 13);
        assert_eq!(PatientRecord::decode(&rec.encode().unwrap()).unwrap(), rec);
        let json = serde_json::json!({ "age": 63, "cp": null });
        let rec = PatientRecord::from_json(json.as_object().unwrap(), 0).unwrap();
        assert_eq!(rec.age, Some(63));
        assert_eq!(rec.missing_fields().len(), 12);
    }

    #[test]
    fn a_zero_cholesterol_or_blood_pressure_is_not_measured() {
        let rec = PatientRecord {
            chol: Some(0.0),
            trestbps: Some(0.0),
            ..first_cleveland_row()
        };
        assert_eq!(rec.missing_fields(), ["trestbps", "chol"]);
        assert_eq!(rec.validate(), Ok(()), "0 is missing, not out of range");
        let mut row = first_cleveland_row().features();
        row[4] = Some(0.0);
        assert_eq!(PatientRecord::from_features("p".into(), 0, &row).chol, None);
        // Other fields keep their zeros.
        assert_eq!(first_cleveland_row().features()[8], Some(0.0));
    }

    #[test]
    fn a_valid_row_passes_validation() {
        assert_eq!(first_cleveland_row().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_measurement_names_field_value_and_range() {
        let rec = PatientRecord {
            trestbps: Some(400.0),
            ..first_cleveland_row()
        };
        let err = rec.validate().unwrap_err();
        assert_eq!(err.violations.len(), 1);
        assert_eq!(
            err.to_string(),
            "trestbps = 400 is outside the allowed range 50..=250"
        );
    }

    #[test]
    fn unknown_code_lists_allowed_codes() {
        let rec = PatientRecord {
            cp: Some(5),
            thal: Some(4),
            ..first_cleveland_row()
        };
        let err = rec.validate().unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["cp", "thal"]);
        assert_eq!(
            err.violations[0].to_string(),
            "cp = 5 is not one of the allowed codes [1, 2, 3, 4]"
        );
    }

    #[test]
    fn nan_is_not_finite() {
        let rec = PatientRecord {
            oldpeak: Some(f64::NAN),
            ..first_cleveland_row()
        };
        assert_eq!(
            rec.validate().unwrap_err().violations[0].problem,
            Problem::NotFinite
        );
    }

    #[test]
    fn empty_patient_id_is_rejected() {
        let rec = PatientRecord {
            patient_id: String::new(),
            ..first_cleveland_row()
        };
        assert_eq!(
            rec.validate().unwrap_err().violations[0].field,
            "patient_id"
        );
    }

    #[test]
    fn json_missing_and_mistyped_fields_are_each_named() {
        let json = serde_json::json!({
            "age": 63, "sex": "male", "cp": 1, "trestbps": 145, "fbs": 1,
            "restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 9
        });
        let err = PatientRecord::from_json(json.as_object().unwrap(), 0).unwrap_err();
        let got: Vec<_> = err
            .violations
            .iter()
            .map(|v| (v.field, v.problem.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "sex",
                    Problem::WrongType {
                        expected: "an integer"
                    }
                ),
                (
                    "thal",
                    Problem::NotAllowed {
                        allowed: &[3, 6, 7]
                    }
                ),
            ]
        );
    }

    #[test]
    fn json_accepts_uci_float_codes_and_defaults_id() {
        let json = serde_json::json!({
            "age": 63.0, "sex": 1.0, "cp": 1.0, "trestbps": 145.0, "chol": 233.0, "fbs": 1.0,
            "restecg": 2.0, "thalach": 150.0, "exang": 0.0, "oldpeak": 2.3, "slope": 3.0, "ca": null
        });
        let rec = PatientRecord::from_json(json.as_object().unwrap(), 42).unwrap();
        assert_eq!(rec.patient_id, "anonymous");
        assert_eq!(rec.event_time, 42);
        assert_eq!((rec.ca, rec.thal), (None, None));
        assert_eq!(rec.cp, Some(1));
    }

    #[test]
    fn json_fractional_code_is_wrong_type() {
        let mut json = serde_json::to_value(first_cleveland_row()).unwrap();
        json["cp"] = serde_json::json!(1.5);
        let err = PatientRecord::from_json(json.as_object().unwrap(), 0).unwrap_err();
        assert_eq!(err.violations[0].field, "cp");
    }

    #[test]
    fn features_follow_field_order() {
        let f = first_cleveland_row().features();
        assert_eq!(f[0], Some(63.0));
        assert_eq!(f[9], Some(2.3));
        assert_eq!(FIELDS[9].name, "oldpeak");
        assert_eq!(f[12], Some(6.0));
    }

    /// Found by fuzzing (`scripts/fuzz patient_avro`). The generic decode path, which DeadLetter
    /// and ModelVersion use, told a truncated body by its re-encoded length alone; apache-avro
    /// reads a union cut off by the end of the input as null, and one overlong varint earlier in
    /// the body made up the missing length, so a record that lost its last field decoded.
    #[test]
    fn generic_decoder_rejects_a_truncated_body_padded_by_an_overlong_varint() {
        /// PatientRecord through `AvroRecord`'s default, apache-avro-based `decode_body`.
        #[derive(Debug)]
        struct Generic(PatientRecord);
        impl AvroRecord for Generic {
            const NAME: &'static str = PatientRecord::NAME;
            fn schema_info() -> &'static SchemaInfo {
                PatientRecord::schema_info()
            }
            fn to_value(&self) -> Value {
                self.0.to_value()
            }
            fn from_value(value: Value) -> Result<Self, DecodeError> {
                PatientRecord::from_value(value).map(Generic)
            }
        }
        let rec = first_cleveland_row();
        let whole = rec.encode().unwrap();
        assert_eq!(Generic::decode(&whole).unwrap().0, rec);

        let mut crafted = whole[..10].to_vec();
        let mut w = Writer(&mut crafted);
        w.string(&rec.patient_id);
        w.long(rec.event_time);
        w.opt_int(rec.age);
        w.0.extend_from_slice(&[0x02, 0x82, 0x00]); // sex = Some(1), the 1 in two bytes, not one (02)
        w.opt_int(rec.cp);
        w.opt_double(rec.trestbps);
        w.opt_double(rec.chol);
        w.opt_int(rec.fbs);
        w.opt_int(rec.restecg);
        w.opt_double(rec.thalach);
        w.opt_int(rec.exang);
        w.opt_double(rec.oldpeak);
        w.opt_int(rec.slope);
        w.opt_int(rec.ca);
        // thal = Some(6), two bytes (02 0c), is cut off: the body is one byte short of whole,
        // which is what it re-encodes to with thal = null (00) and sex in one byte.
        assert_eq!(crafted.len() + 1, whole.len());

        assert!(PatientRecord::decode(&crafted).is_err());
        let decoded = Generic::decode(&crafted).map(|g| g.0);
        assert!(decoded.is_err(), "a truncated body decoded: {decoded:?}");
    }
}
