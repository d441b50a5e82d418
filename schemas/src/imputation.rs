//! Missing attributes: which ones a record lacks ([`FieldSet`]), and which a scorer may fill in
//! with the statistics the model was trained on ([`ImputationPolicy`]).
//!
//! The model artifact carries a fitted imputer for every attribute (the training median of a
//! measurement, the most frequent code of a category), so any attribute *can* be imputed. How
//! many *should* be is a clinical choice: each imputed value replaces a measurement with the
//! training population's typical one, pulling the prediction towards the average patient. The
//! defaults, justified in docs/missing-data.md from the trainer's masked-field table:
//! at most [`ImputationPolicy::DEFAULT_MAX_IMPUTED`] attributes, and never
//! [`ImputationPolicy::DEFAULT_NEVER`].

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::patient::{FIELDS, N_FIELDS};

/// A set of the 13 attributes, in [`FIELDS`] order (a bit each): copied freely, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FieldSet(u16);

impl FieldSet {
    /// No attributes.
    pub const EMPTY: Self = Self(0);

    /// The attributes that are `None` in `features`.
    pub fn missing(features: &[Option<f64>; N_FIELDS]) -> Self {
        features
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none())
            .fold(Self::EMPTY, |set, (i, _)| set.with(i))
    }

    /// The attributes named; `Err` with the first name that is not one.
    ///
    /// # Errors
    /// The unknown name.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = Self::EMPTY;
        for name in names {
            let i = FIELDS
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| name.to_owned())?;
            set = set.with(i);
        }
        Ok(set)
    }

    /// This set and attribute `index`.
    #[must_use]
    pub const fn with(self, index: usize) -> Self {
        Self(self.0 | (1 << index))
    }

    /// Whether attribute `index` is in the set.
    pub const fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    /// The attributes in both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// How many attributes.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether there are none.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The indices into [`FIELDS`], ascending.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..N_FIELDS).filter(move |&i| self.contains(i))
    }

    /// The attribute names, in [`FIELDS`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.indices().map(|i| FIELDS[i].name)
    }
}

impl fmt::Display for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl Serialize for FieldSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for name in self.names() {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for FieldSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = FieldSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of UCI attribute names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldSet, A::Error> {
                let mut set = FieldSet::EMPTY;
                while let Some(name) = seq.next_element::<String>()? {
                    set =
                        set.union(FieldSet::from_names([name.as_str()]).map_err(|n| {
                            de::Error::custom(format!("{n:?} is not a UCI attribute"))
                        })?);
                }
                Ok(set)
            }
        }
        deserializer.deserialize_seq(Names)
    }
}

impl FieldSet {
    /// The attributes in either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// A record the policy will not score: it lacks too many attributes, or one that is never
/// imputed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TooManyMissing {
    /// Every missing attribute.
    pub missing: FieldSet,
    /// The missing ones that may never be imputed (may be empty).
    pub never_imputed: FieldSet,
    /// The most that may be imputed.
    pub max_imputed: usize,
}

impl fmt::Display for TooManyMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "missing {} ({} of 13)", self.missing, self.missing.len())?;
        if !self.never_imputed.is_empty() {
            write!(f, "; {} may never be imputed", self.never_imputed)?;
        }
        if self.missing.len() > self.max_imputed {
            write!(f, "; at most {} may be imputed", self.max_imputed)?;
        }
        Ok(())
    }
}

/// Which missing attributes a scorer imputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImputationPolicy {
    max_imputed: usize,
    never: FieldSet,
}

impl Default for ImputationPolicy {
    fn default() -> Self {
        Self {
            max_imputed: Self::DEFAULT_MAX_IMPUTED,
            never: FieldSet::from_names(Self::DEFAULT_NEVER.iter().copied())
                .unwrap_or(FieldSet::EMPTY),
        }
    }
}

impl ImputationPolicy {
    /// The most attributes imputed in one record by default: slope, ca, thal, cholesterol, fasting
    /// blood sugar and one more, which is what records from the Hungarian, Swiss and VA sites lack
    /// at worst short of the exercise test.
    pub const DEFAULT_MAX_IMPUTED: usize = 6;
    /// Attributes never imputed by default: age and sex are known for every patient who is
    /// admitted (a record without them is a broken feed, not a missing test), and the chest pain
    /// type is the presenting complaint, whose loss raises the Brier score most of any single
    /// attribute in the trainer's masked-field table.
    pub const DEFAULT_NEVER: [&'static str; 3] = ["age", "sex", "cp"];

    /// A policy imputing at most `max_imputed` attributes and never those in `never`.
    pub const fn new(max_imputed: usize, never: FieldSet) -> Self {
        Self { max_imputed, never }
    }

    /// The most attributes imputed in one record.
    pub const fn max_imputed(&self) -> usize {
        self.max_imputed
    }

    /// The attributes never imputed.
    pub const fn never(&self) -> FieldSet {
        self.never
    }

    /// The attributes to impute in a record with these `features`.
    ///
    /// # Errors
    /// [`TooManyMissing`] beyond the policy.
    pub fn check(&self, features: &[Option<f64>; N_FIELDS]) -> Result<FieldSet, TooManyMissing> {
        let missing = FieldSet::missing(features);
        let never_imputed = missing.intersection(self.never);
        if missing.len() > self.max_imputed || !never_imputed.is_empty() {
            return Err(TooManyMissing {
                missing,
                never_imputed,
                max_imputed: self.max_imputed,
            });
        }
        Ok(missing)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn features(missing: &[&str]) -> [Option<f64>; N_FIELDS] {
        std::array::from_fn(|i| (!missing.contains(&FIELDS[i].name)).then_some(1.0))
    }

    #[test]
    fn the_set_lists_names_in_field_order() {
        let set = FieldSet::missing(&features(&["thal", "chol", "ca"]));
        assert_eq!(set.names().collect::<Vec<_>>(), ["chol", "ca", "thal"]);
        assert_eq!(set.to_string(), "chol, ca, thal");
        assert_eq!(set.len(), 3);
        assert_eq!(FieldSet::from_names(["ca", "thal", "chol"]), Ok(set));
        assert_eq!(
            FieldSet::from_names(["cholesterol"]),
            Err("cholesterol".into())
        );
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["chol","ca","thal"]"#);
        assert_eq!(serde_json::from_str::<FieldSet>(&json).unwrap(), set);
        assert!(serde_json::from_str::<FieldSet>(r#"["x"]"#).is_err());
    }

    #[test]
    fn the_default_policy_imputes_up_to_six_but_never_age_sex_or_cp() {
        let p = ImputationPolicy::default();
        let six = ["chol", "fbs", "slope", "ca", "thal", "trestbps"];
        assert_eq!(p.check(&features(&six)).unwrap().len(), 6);
        assert_eq!(p.check(&features(&[])), Ok(FieldSet::EMPTY));

        let seven = [&six[..], &["oldpeak"]].concat();
        let err = p.check(&features(&seven)).unwrap_err();
        assert_eq!(err.missing.len(), 7);
        assert_eq!(
            err.to_string(),
            "missing trestbps, chol, fbs, oldpeak, slope, ca, thal (7 of 13); at most 6 may be imputed"
        );

        let err = p.check(&features(&["cp", "ca"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing cp, ca (2 of 13); cp may never be imputed"
        );
    }

    #[test]
    fn a_policy_of_zero_imputes_nothing() {
        let p = ImputationPolicy::new(0, FieldSet::EMPTY);
        assert!(p.check(&features(&["ca"])).is_err());
        assert_eq!(p.check(&features(&[])), Ok(FieldSet::EMPTY));
    }
}
