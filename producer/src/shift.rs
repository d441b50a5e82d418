//! `--shift FIELD=DELTA`: moves one numeric attribute of every valid record, to try the scorer's
//! drift detection on a population that differs from training in a known way.

use std::str::FromStr;

use heart_schemas::PatientRecord;
use heart_schemas::patient::{FIELDS, FieldKind};
use thiserror::Error;

/// Adds `delta` to a numeric field, kept within the field's allowed range (so a shifted record
/// stays valid) and rounded for a whole-number field. A missing value stays missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Index into [`FIELDS`].
    pub field: usize,
    /// Added to the value.
    pub delta: f64,
}

/// Why a `--shift` value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShiftError {
    /// Not `FIELD=DELTA`.
    #[error("--shift {0:?}: expected FIELD=DELTA, e.g. age=+15 or chol=-20")]
    Syntax(String),
    /// The field is not a numeric UCI attribute.
    #[error(
        "--shift {0:?}: only a numeric attribute can be shifted (age, trestbps, chol, thalach, oldpeak, ca)"
    )]
    NotNumeric(String),
}

impl FromStr for Shift {
    type Err = ShiftError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, delta) = s
            .split_once('=')
            .ok_or_else(|| ShiftError::Syntax(s.to_owned()))?;
        let delta: f64 = delta
            .trim()
            .parse()
            .ok()
            .filter(|d: &f64| d.is_finite())
            .ok_or_else(|| ShiftError::Syntax(s.to_owned()))?;
        let field = FIELDS
            .iter()
            .position(|f| f.name == name.trim() && matches!(f.kind, FieldKind::Numeric { .. }))
            .ok_or_else(|| ShiftError::NotNumeric(s.to_owned()))?;
        Ok(Self { field, delta })
    }
}

impl Shift {
    /// `record` with the shift applied.
    pub fn apply(&self, record: PatientRecord) -> PatientRecord {
        let spec = FIELDS[self.field];
        let FieldKind::Numeric { min, max } = spec.kind else {
            return record;
        };
        let mut values = record.features();
        values[self.field] = values[self.field].map(|v| {
            let moved = (v + self.delta).clamp(min, max);
            if spec.integer { moved.round() } else { moved }
        });
        PatientRecord::from_features(record.patient_id, record.event_time, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(age: Option<i32>) -> PatientRecord {
        let mut v = [Some(1.0); 13];
        v[0] = age.map(f64::from);
        v[3] = Some(130.0);
        v[4] = Some(240.0);
        v[7] = Some(150.0);
        v[12] = Some(3.0);
        PatientRecord::from_features("p".into(), 5, &v)
    }

    #[test]
    fn parses_field_and_signed_delta_and_names_what_is_wrong() {
        assert_eq!(
            "age=+15".parse(),
            Ok(Shift {
                field: 0,
                delta: 15.0
            })
        );
        assert_eq!(
            "chol=-20.5".parse(),
            Ok(Shift {
                field: 4,
                delta: -20.5
            })
        );
        assert!(matches!("age".parse::<Shift>(), Err(ShiftError::Syntax(_))));
        assert!(matches!(
            "age=lots".parse::<Shift>(),
            Err(ShiftError::Syntax(_))
        ));
        let err = "sex=+1".parse::<Shift>().unwrap_err();
        assert!(
            err.to_string().contains("only a numeric attribute"),
            "{err}"
        );
    }

    #[test]
    fn shifts_within_the_allowed_range_and_keeps_missing_values() {
        let up: Shift = "age=+15".parse().unwrap();
        assert_eq!(up.apply(record(Some(60))).age, Some(75));
        assert_eq!(
            up.apply(record(Some(110))).age,
            Some(120),
            "clamped to 1..=120"
        );
        assert_eq!(up.apply(record(None)).age, None);
        let shifted = up.apply(record(Some(60)));
        assert_eq!(shifted.chol, Some(240.0), "other fields are untouched");
        assert_eq!((shifted.patient_id.as_str(), shifted.event_time), ("p", 5));
        assert!(shifted.validate().is_ok());
    }
}
