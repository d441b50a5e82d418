//! Drift per feature: a rolling window of the records the stream scores, binned as the model's
//! training profile bins them, and each field's population stability index against training.
//!
//! `PSI = Σ (a_i − e_i) · ln(a_i / e_i)` over a field's bins, `a` the window's shares and `e`
//! the training data's. An empty bin would make the logarithm infinite, so both sides are
//! smoothed by adding half a record to every bin (`(count + 0.5) / (total + 0.5 · bins)`), the
//! usual additive (Jeffreys) prior: a bin empty on one side then costs a finite amount that
//! shrinks as the window grows. Missing values are not binned; their share is reported on its
//! own. Pure: the output stage feeds it committed batches and reads the numbers into metrics.

use heart_model::TrainingProfile;
use heart_schemas::N_FIELDS;

/// A field's bin in a [`Located`] row when it was missing (or outside every bin).
pub const NOT_BINNED: u8 = u8::MAX;

/// Each field's bin for one record, as [`locate`] finds it.
pub type Located = [u8; N_FIELDS];

/// Added to every bin's count on both sides before shares are taken.
pub const SMOOTHING: f64 = 0.5;

/// The bins of `features` (field order, `None` for missing) in `profile`.
pub fn locate(profile: &TrainingProfile, features: &[Option<f64>; N_FIELDS]) -> Located {
    let mut out = [NOT_BINNED; N_FIELDS];
    for ((slot, value), field) in out.iter_mut().zip(features).zip(&profile.fields) {
        if let Some(bin) = value.and_then(|v| field.bins.index(v)) {
            *slot = u8::try_from(bin).unwrap_or(NOT_BINNED);
        }
    }
    out
}

/// PSI of `actual` counts against `expected` counts over the same bins, smoothed as the module
/// says; `None` when either side has no records.
pub fn psi(expected: &[u32], actual: &[u64]) -> Option<f64> {
    let bins = expected.len() as f64;
    let e_total: f64 = expected.iter().map(|&c| f64::from(c)).sum();
    let a_total: f64 = actual.iter().map(|&c| c as f64).sum();
    if e_total == 0.0 || a_total == 0.0 {
        return None;
    }
    let share = |count: f64, total: f64| (count + SMOOTHING) / (total + SMOOTHING * bins);
    Some(
        expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| {
                let (e, a) = (share(f64::from(e), e_total), share(a as f64, a_total));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The last `capacity` scored records of one model version, as bin counts per field.
#[derive(Debug)]
pub struct Window {
    model_version: i64,
    /// Per field, the training counts per bin.
    expected: Vec<Vec<u32>>,
    /// The rows in the window, oldest at `next` once full.
    ring: Vec<Located>,
    capacity: usize,
    next: usize,
    /// Per field, the window's counts per bin.
    counts: Vec<Vec<u64>>,
    missing: [u64; N_FIELDS],
}

/// What a window says, per field in [`heart_schemas::FIELDS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// Records in the window.
    pub records: usize,
    /// PSI against training; `None` while the field has no value in the window.
    pub psi: [Option<f64>; N_FIELDS],
    /// The share of the window's records in which the field was missing (and imputed).
    pub missing_ratio: [f64; N_FIELDS],
}

impl Window {
    /// An empty window of `capacity` records (at least 1) against `profile`.
    pub fn new(model_version: i64, profile: &TrainingProfile, capacity: usize) -> Self {
        let expected: Vec<Vec<u32>> = profile
            .fields
            .iter()
            .map(|f| f.bins.counts().to_vec())
            .collect();
        let counts = expected.iter().map(|e| vec![0; e.len()]).collect();
        Self {
            model_version,
            expected,
            ring: Vec::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            next: 0,
            counts,
            missing: [0; N_FIELDS],
        }
    }

    /// The model version whose profile this window compares with.
    pub fn model_version(&self) -> i64 {
        self.model_version
    }

    /// Adds a record, dropping the oldest once the window is full.
    pub fn push(&mut self, row: Located) {
        if self.ring.len() < self.capacity {
            self.ring.push(row);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], row);
            self.count(&old, false);
            self.next = (self.next + 1) % self.capacity;
        }
        self.count(&row, true);
    }

    fn count(&mut self, row: &Located, add: bool) {
        for (field, &bin) in row.iter().enumerate() {
            let slot = match self.counts[field].get_mut(usize::from(bin)) {
                Some(c) => c,
                None => &mut self.missing[field],
            };
            if add {
                *slot += 1;
            } else {
                *slot -= 1;
            }
        }
    }

    /// PSI and missing share per field over the records in the window.
    pub fn drift(&self) -> Drift {
        let records = self.ring.len();
        let mut psi = [None; N_FIELDS];
        let mut missing_ratio = [0.0; N_FIELDS];
        for field in 0..N_FIELDS {
            psi[field] = self::psi(&self.expected[field], &self.counts[field]);
            if records > 0 {
                missing_ratio[field] = self.missing[field] as f64 / records as f64;
            }
        }
        Drift {
            records,
            psi,
            missing_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use heart_model::{Bins, FieldProfile};

    use super::*;

    #[test]
    fn psi_is_hand_checked_and_zero_for_the_same_shares() {
        assert_eq!(psi(&[10, 30], &[10, 30]), Some(0.0));
        // Without smoothing (large counts make it negligible): shares 0.5/0.5 against 0.2/0.8
        // give 0.3 · ln(2.5) + (−0.3) · ln(0.625) = 0.2749 + 0.1410.
        let exact = 0.3 * 2.5f64.ln() - 0.3 * 0.625f64.ln();
        let got = psi(&[200_000, 800_000], &[500_000, 500_000]).unwrap();
        assert!((got - exact).abs() < 1e-6, "{got} vs {exact}");
        // An empty bin stays finite: (0 + 0.5) / (10 + 1) against (5.5 / 11).
        let a: [f64; 2] = [0.5 / 11.0, 10.5 / 11.0];
        let e: [f64; 2] = [5.5 / 11.0, 5.5 / 11.0];
        let smoothed: f64 = a.iter().zip(e).map(|(a, e)| (a - e) * (a / e).ln()).sum();
        assert!((psi(&[5, 5], &[0, 10]).unwrap() - smoothed).abs() < 1e-12);
        assert_eq!(psi(&[5, 5], &[0, 0]), None);
        assert_eq!(psi(&[0, 0], &[1, 0]), None);
    }

    fn profile() -> TrainingProfile {
        let field = |bins| FieldProfile { missing: 0, bins };
        let mut fields = vec![
            field(Bins::Numeric {
                edges: vec![50.0],
                counts: vec![50, 50],
            });
            N_FIELDS
        ];
        fields[1] = field(Bins::Categorical {
            codes: vec![0, 1],
            counts: vec![30, 70],
        });
        TrainingProfile {
            rows: 100,
            fields,
            column_means: vec![],
            tree_cover: vec![],
        }
    }

    fn row(age: Option<f64>, sex: f64) -> [Option<f64>; N_FIELDS] {
        let mut r = [Some(10.0); N_FIELDS];
        r[0] = age;
        r[1] = Some(sex);
        r
    }

    #[test]
    fn locate_bins_values_and_marks_missing_and_unknown_codes() {
        let p = profile();
        let at = locate(&p, &row(Some(50.0), 1.0));
        assert_eq!((at[0], at[1], at[2]), (0, 1, 0));
        assert_eq!(locate(&p, &row(Some(51.0), 0.0))[..2], [1, 0]);
        assert_eq!(locate(&p, &row(None, 5.0))[..2], [NOT_BINNED, NOT_BINNED]);
    }

    #[test]
    fn the_window_forgets_its_oldest_records_and_reports_missing_shares() {
        let p = profile();
        let mut w = Window::new(3, &p, 4);
        for _ in 0..4 {
            w.push(locate(&p, &row(Some(70.0), 1.0)));
        }
        let d = w.drift();
        assert_eq!(d.records, 4);
        assert!(
            d.psi[0].unwrap() > 0.25,
            "all ages above 50 against half: {d:?}"
        );
        // Four records like the training data push the others out: PSI falls back.
        for age in [40.0, 60.0, 40.0, 60.0] {
            w.push(locate(&p, &row(Some(age), 1.0)));
        }
        let d = w.drift();
        assert_eq!(d.records, 4);
        assert!(d.psi[0].unwrap() < 1e-12, "{d:?}");
        assert_eq!(d.missing_ratio[0], 0.0);
        w.push(locate(&p, &row(None, 0.0)));
        let d = w.drift();
        assert_eq!(d.missing_ratio[0], 0.25);
        assert_eq!(w.counts[0].iter().sum::<u64>(), 3);
        assert_eq!(w.model_version(), 3);
    }
}
