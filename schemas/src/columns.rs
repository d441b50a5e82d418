//! Where a patient record's values sit in a delimited file: the UCI column order, or a header
//! row naming the attributes (any order, any case, other columns ignored) and optionally
//! `patient_id` and `event_time`. The producer's CSV source and the scorer's `score-file` read
//! rows through it, so both accept the same files.

use crate::patient::{FIELDS, N_FIELDS};

/// Column indices of the attributes (in [`FIELDS`] order) and of the optional id and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLayout {
    /// The column of each attribute.
    pub fields: [usize; N_FIELDS],
    /// The `patient_id` column, if the header has one.
    pub patient_id: Option<usize>,
    /// The `event_time` column (ms since the epoch), if the header has one.
    pub event_time: Option<usize>,
}

impl ColumnLayout {
    /// The UCI file's order, without a header; a 14th column (`num`, the diagnosis) is ignored.
    #[must_use]
    pub fn uci() -> Self {
        Self {
            fields: std::array::from_fn(|i| i),
            patient_id: None,
            event_time: None,
        }
    }

    /// The layout a header row gives, names compared ignoring ASCII case.
    ///
    /// # Errors
    /// The name of the first attribute the header lacks.
    pub fn from_header<'a>(
        header: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, &'static str> {
        let names: Vec<&str> = header.into_iter().collect();
        let find = |name: &str| names.iter().position(|h| h.eq_ignore_ascii_case(name));
        let mut fields = [0; N_FIELDS];
        for (slot, spec) in fields.iter_mut().zip(&FIELDS) {
            *slot = find(spec.name).ok_or(spec.name)?;
        }
        Ok(Self {
            fields,
            patient_id: find("patient_id"),
            event_time: find("event_time"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_in_any_order_and_case_maps_every_attribute() {
        let mut names: Vec<String> = FIELDS.iter().rev().map(|f| f.name.to_uppercase()).collect();
        names.insert(3, "Patient_ID".to_owned());
        let layout = ColumnLayout::from_header(names.iter().map(String::as_str)).unwrap();
        assert_eq!(layout.patient_id, Some(3));
        assert_eq!(layout.event_time, None);
        // age was last before the id went in at 3, so it is column 13 now; thal is column 0.
        assert_eq!(layout.fields[0], N_FIELDS);
        assert_eq!(layout.fields[N_FIELDS - 1], 0);
    }

    #[test]
    fn a_missing_attribute_is_named() {
        assert_eq!(ColumnLayout::from_header(["age", "sex", "num"]), Err("cp"));
        assert_eq!(ColumnLayout::uci().fields[12], 12);
    }
}
