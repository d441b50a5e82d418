//! A seeded generator of realistic patients, for load tests and demos without a file.
//!
//! Each patient first draws a diagnosis (disease present in 139 of 303 Cleveland rows), then every
//! attribute from the Cleveland distribution *for that diagnosis*, so a trained model sees
//! familiar inputs and a realistic mix of risk levels. The parameters below were measured on
//! `processed.cleveland.data`, split by `num > 0`. A few dependencies the data show are kept:
//! older patients reach a lower maximum heart rate and have higher blood pressure, cholesterol
//! and vessel counts; exercise angina goes with asymptomatic chest pain; ST depression
//! (`oldpeak`) goes with the ST slope. Every value is clamped to the range the data span, which
//! lies inside the allowed range of [`heart_schemas::FIELDS`], so every record validates.

use heart_schemas::PatientRecord;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Share of Cleveland patients with disease (num > 0): 139 / 303.
const P_DISEASE: f64 = 139.0 / 303.0;

/// A normal distribution, clamped.
#[derive(Debug, Clone, Copy)]
struct Normal {
    mean: f64,
    sd: f64,
    min: f64,
    max: f64,
}

/// The distribution of every attribute for one diagnosis.
#[derive(Debug)]
struct ClassParams {
    age: Normal,
    p_male: f64,
    /// P(cp = 1..=4).
    cp: [f64; 4],
    trestbps: Normal,
    /// Correlation of blood pressure with age.
    trestbps_age: f64,
    chol: Normal,
    chol_age: f64,
    p_fbs: f64,
    /// P(restecg = 0..=2).
    restecg: [f64; 3],
    thalach: Normal,
    /// Correlation of maximum heart rate with age (negative).
    thalach_age: f64,
    /// P(exang = 1) for asymptomatic chest pain (cp = 4) and for the others.
    p_exang_cp4: f64,
    p_exang_other: f64,
    /// P(slope = 1..=3).
    slope: [f64; 3],
    /// Per slope: P(oldpeak = 0), and the mean of a positive oldpeak.
    oldpeak_zero: [f64; 3],
    oldpeak_mean: [f64; 3],
    /// P(ca = 0..=3).
    ca: [f64; 4],
    /// P(thal = 3, 6, 7).
    thal: [f64; 3],
}

const HEALTHY: ClassParams = ClassParams {
    age: normal(52.6, 9.5, 29.0, 77.0),
    p_male: 0.561,
    cp: [0.098, 0.250, 0.415, 0.237],
    trestbps: normal(129.3, 16.2, 94.0, 200.0),
    trestbps_age: 0.28,
    chol: normal(242.6, 53.5, 126.0, 564.0),
    chol_age: 0.25,
    p_fbs: 0.140,
    restecg: [0.579, 0.006, 0.415],
    thalach: normal(158.4, 19.2, 71.0, 202.0),
    thalach_age: -0.52,
    p_exang_cp4: 0.26,
    p_exang_other: 0.08,
    slope: [0.646, 0.299, 0.055],
    oldpeak_zero: [0.60, 0.16, 0.11],
    oldpeak_mean: [0.88, 1.02, 2.06],
    ca: [0.807, 0.130, 0.044, 0.019],
    thal: [0.791, 0.037, 0.172],
};

const DISEASED: ClassParams = ClassParams {
    age: normal(56.6, 7.9, 29.0, 77.0),
    p_male: 0.820,
    cp: [0.050, 0.065, 0.129, 0.756],
    trestbps: normal(134.6, 18.8, 94.0, 200.0),
    trestbps_age: 0.24,
    chol: normal(251.5, 49.5, 126.0, 564.0),
    chol_age: 0.12,
    p_fbs: 0.158,
    restecg: [0.403, 0.022, 0.575],
    thalach: normal(139.3, 22.6, 71.0, 202.0),
    thalach_age: -0.13,
    p_exang_cp4: 0.67,
    p_exang_other: 0.18,
    slope: [0.259, 0.655, 0.086],
    oldpeak_zero: [0.56, 0.07, 0.0],
    oldpeak_mean: [1.30, 1.86, 3.38],
    ca: [0.333, 0.319, 0.225, 0.123],
    thal: [0.268, 0.087, 0.645],
};

/// Share of rows with `ca` (4 of 303) and `thal` (2 of 303) missing, as in the file.
const P_CA_MISSING: f64 = 4.0 / 303.0;
const P_THAL_MISSING: f64 = 2.0 / 303.0;

const fn normal(mean: f64, sd: f64, min: f64, max: f64) -> Normal {
    Normal { mean, sd, min, max }
}

/// Makes patients from a seed: the same seed gives the same patients.
#[derive(Debug)]
pub(crate) struct Generator {
    rng: StdRng,
    prefix: String,
    /// Number of the next patient, from 1; its id is `<prefix><n>`.
    next: u64,
}

impl Generator {
    /// A generator whose ids are `<prefix>1`, `<prefix>2`, ….
    pub(crate) fn new(seed: u64, prefix: &str) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            prefix: prefix.to_owned(),
            next: 1,
        }
    }

    /// The next patient; `event_time` is 0 (the send time is stamped later).
    pub(crate) fn next_record(&mut self) -> PatientRecord {
        let id = format!("{}{}", self.prefix, self.next);
        self.next += 1;
        let rng = &mut self.rng;
        let p = if rng.gen_bool(P_DISEASE) {
            &DISEASED
        } else {
            &HEALTHY
        };
        // One standard-normal age score drives the age-correlated measurements.
        let z_age = standard_normal(rng);
        let age = draw(p.age, z_age).round();
        let cp = 1 + categorical(rng, &p.cp);
        let p_exang = if cp == 4 {
            p.p_exang_cp4
        } else {
            p.p_exang_other
        };
        let slope = categorical(rng, &p.slope);
        let oldpeak = if rng.gen_bool(p.oldpeak_zero[slope]) {
            0.0
        } else {
            // Exponential with the slope's mean, to one decimal like the file; never 0.0 here.
            let x = -p.oldpeak_mean[slope] * (1.0 - rng.r#gen::<f64>()).ln();
            (x * 10.0).round().clamp(1.0, 62.0) / 10.0
        };
        let ca = categorical(rng, &p.ca);
        let ca = shift_by_age(rng, ca, z_age);
        PatientRecord {
            patient_id: id,
            event_time: 0,
            age: Some(code(age)),
            sex: Some(i32::from(rng.gen_bool(p.p_male))),
            cp: Some(code_of(cp)),
            trestbps: Some(draw(p.trestbps, correlated(rng, z_age, p.trestbps_age)).round()),
            chol: Some(draw(p.chol, correlated(rng, z_age, p.chol_age)).round()),
            fbs: Some(i32::from(rng.gen_bool(p.p_fbs))),
            restecg: Some(code_of(categorical(rng, &p.restecg))),
            thalach: Some(draw(p.thalach, correlated(rng, z_age, p.thalach_age)).round()),
            exang: Some(i32::from(rng.gen_bool(p_exang))),
            oldpeak: Some(oldpeak),
            slope: Some(code_of(slope + 1)),
            ca: (!rng.gen_bool(P_CA_MISSING)).then(|| code_of(ca)),
            thal: (!rng.gen_bool(P_THAL_MISSING)).then(|| [3, 6, 7][categorical(rng, &p.thal)]),
        }
    }
}

/// A standard normal variate (Box–Muller).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.r#gen::<f64>(); // (0, 1]: ln is finite
    let u2 = rng.r#gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A standard normal score with correlation `r` to `z`.
fn correlated(rng: &mut StdRng, z: f64, r: f64) -> f64 {
    r * z + (1.0 - r * r).sqrt() * standard_normal(rng)
}

fn draw(n: Normal, z: f64) -> f64 {
    (n.mean + n.sd * z).clamp(n.min, n.max)
}

/// Index drawn with the given probabilities (which sum to about 1; the last takes the rest).
fn categorical(rng: &mut StdRng, probabilities: &[f64]) -> usize {
    let mut u = rng.r#gen::<f64>();
    for (i, p) in probabilities.iter().enumerate() {
        if u < *p {
            return i;
        }
        u -= p;
    }
    probabilities.len().saturating_sub(1)
}

/// Vessel counts rise with age: nudge one step with the age score's sign for the oldest and
/// youngest patients.
fn shift_by_age(rng: &mut StdRng, ca: usize, z_age: f64) -> usize {
    if z_age > 1.0 && rng.gen_bool(0.3) {
        (ca + 1).min(3)
    } else if z_age < -1.0 && rng.gen_bool(0.3) {
        ca.saturating_sub(1)
    } else {
        ca
    }
}

#[allow(clippy::cast_possible_truncation)] // clamped to 29..=77 by `draw`
fn code(x: f64) -> i32 {
    x as i32
}

fn code_of(i: usize) -> i32 {
    // Indices into arrays of at most 4 entries.
    i32::try_from(i).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64, n: usize) -> Vec<PatientRecord> {
        let mut g = Generator::new(seed, "s-");
        (0..n).map(|_| g.next_record()).collect()
    }

    fn mean(xs: impl Iterator<Item = f64>) -> f64 {
        let v: Vec<f64> = xs.collect();
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn the_same_seed_gives_the_same_patients() {
        assert_eq!(sample(7, 50), sample(7, 50));
        assert_ne!(sample(7, 50), sample(8, 50));
    }

    #[test]
    fn ids_count_from_one() {
        let ids: Vec<String> = sample(1, 3).into_iter().map(|r| r.patient_id).collect();
        assert_eq!(ids, ["s-1", "s-2", "s-3"]);
    }

    #[test]
    fn every_generated_patient_is_valid() {
        for seed in 0..5 {
            for r in sample(seed, 5_000) {
                assert_eq!(r.validate(), Ok(()), "{r:?}");
                assert!((0.0..=6.2).contains(&r.oldpeak.unwrap()));
            }
        }
    }

    #[test]
    fn marginals_are_close_to_cleveland() {
        // Cleveland: age 54.4, male 68 %, thalach 149.6, oldpeak 1.04, cp = 4 in 47.5 %.
        let rs = sample(42, 20_000);
        let age = mean(rs.iter().map(|r| f64::from(r.age.unwrap())));
        let male = mean(rs.iter().map(|r| f64::from(r.sex.unwrap())));
        let thalach = mean(rs.iter().map(|r| r.thalach.unwrap()));
        let oldpeak = mean(rs.iter().map(|r| r.oldpeak.unwrap()));
        let cp4 = mean(rs.iter().map(|r| f64::from(u8::from(r.cp == Some(4)))));
        assert!((age - 54.4).abs() < 1.0, "age {age}");
        assert!((male - 0.68).abs() < 0.03, "male {male}");
        assert!((thalach - 149.6).abs() < 2.5, "thalach {thalach}");
        assert!((oldpeak - 1.04).abs() < 0.15, "oldpeak {oldpeak}");
        assert!((cp4 - 0.475).abs() < 0.03, "cp4 {cp4}");
        let missing = rs
            .iter()
            .filter(|r| r.ca.is_none() || r.thal.is_none())
            .count();
        assert!((100..=500).contains(&missing), "missing {missing}");
    }

    #[test]
    fn older_patients_reach_a_lower_heart_rate() {
        let rs = sample(3, 20_000);
        let (old, young): (Vec<_>, Vec<_>) = rs.iter().partition(|r| r.age >= Some(60));
        let old = mean(old.iter().map(|r| r.thalach.unwrap()));
        let young = mean(young.iter().map(|r| r.thalach.unwrap()));
        assert!(young - old > 8.0, "young {young} old {old}");
    }

    #[test]
    fn categorical_takes_the_last_index_for_the_remainder() {
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(categorical(&mut rng, &[0.0, 0.0]), 1);
        assert_eq!(categorical(&mut rng, &[1.0, 0.0]), 0);
    }
}
