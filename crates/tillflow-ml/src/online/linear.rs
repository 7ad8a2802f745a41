//! Linear and logistic regression learned by SGD or AdaGrad, river's generalized linear model
//! (`river/linear_model/base.py` `GLM`): see the module above for the rules. Numeric features
//! have a weight each by slot; hashed STRING features a weight per bucket seen, kept sorted by
//! bucket. The settings a model learns with are [`LinearParams`], taken from the model's
//! options, or river's `LinearRegression()` defaults for a Hoeffding tree's leaf models.

use super::{DecodeError, Prediction, Reader};
use crate::features::Features;
use crate::spec::{Algorithm, OnlineSpec, Optimizer};

/// The settings a linear model learns with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearParams {
    /// Log loss and a sigmoid (logistic regression) rather than squared loss.
    pub logistic: bool,
    /// The weights' optimizer.
    pub optimizer: Optimizer,
    /// Its learning rate.
    pub learning_rate: f64,
    /// The intercept's learning rate.
    pub intercept_learning_rate: f64,
    /// L2 penalty.
    pub l2: f64,
    /// The loss gradient is clipped to ± this.
    pub clip_gradient: f64,
}

impl LinearParams {
    /// river's `linear_model.LinearRegression()` with its defaults: SGD at 0.01, intercept
    /// rate 0.01, no L2, gradient clipped at 1e12 (a Hoeffding tree's default leaf model).
    pub const RIVER_LINEAR_REGRESSION: LinearParams = LinearParams {
        logistic: false,
        optimizer: Optimizer::Sgd,
        learning_rate: 0.01,
        intercept_learning_rate: 0.01,
        l2: 0.0,
        clip_gradient: 1e12,
    };

    /// The settings of a model's options.
    pub fn of(spec: &OnlineSpec) -> LinearParams {
        LinearParams {
            logistic: spec.algorithm == Algorithm::LogisticRegression,
            optimizer: spec.optimizer,
            learning_rate: spec.learning_rate,
            intercept_learning_rate: spec.intercept_learning_rate,
            l2: spec.l2,
            clip_gradient: spec.clip_gradient,
        }
    }
}

/// A linear model's learned state.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// Weight and AdaGrad's squared-gradient sum of each numeric feature.
    dense: Vec<(f64, f64)>,
    /// The same per hashed bucket: (bucket, weight, sum), sorted by bucket.
    hashed: Vec<(u32, f64, f64)>,
    intercept: f64,
    pub(super) learned: u64,
}

/// river's `utils.math.sigmoid`.
fn sigmoid(z: f64) -> f64 {
    if z < -30.0 {
        0.0
    } else if z > 30.0 {
        1.0
    } else {
        1.0 / (1.0 + (-z).exp())
    }
}

impl Linear {
    /// A model that has learned nothing.
    pub fn new(_spec: &OnlineSpec, slots: usize) -> Linear {
        Linear::with_slots(slots)
    }

    /// A model that has learned nothing, for rows of `slots` numeric features.
    pub fn with_slots(slots: usize) -> Linear {
        Linear {
            dense: vec![(0.0, 0.0); slots],
            hashed: Vec::new(),
            intercept: 0.0,
            learned: 0,
        }
    }

    fn raw(&self, x: &Features) -> f64 {
        let mut dot = 0.0;
        for (v, (w, _)) in x.dense.iter().zip(&self.dense) {
            if let Some(v) = v {
                dot += w * v;
            }
        }
        for (bucket, v) in &x.hashed {
            if let Ok(i) = self.hashed.binary_search_by_key(bucket, |e| e.0) {
                dot += self.hashed[i].1 * v;
            }
        }
        dot + self.intercept
    }

    /// The regression's value, or the classifier's P(true), before learning `x`.
    pub fn predict(&self, spec: &OnlineSpec, x: &Features) -> Prediction {
        Prediction {
            value: self.predict_with(&LinearParams::of(spec), x),
            learned: self.learned,
        }
    }

    /// The regression's value, or the classifier's P(true), with settings `p`.
    pub fn predict_with(&self, p: &LinearParams, x: &Features) -> f64 {
        let z = self.raw(x);
        if p.logistic {
            sigmoid(z)
        } else {
            z
        }
    }

    /// Learns from `x` with label `y`.
    pub fn learn(&mut self, spec: &OnlineSpec, x: &Features, y: f64) {
        self.learn_with(&LinearParams::of(spec), x, y)
    }

    /// Learns from `x` with label `y` with settings `spec`.
    pub fn learn_with(&mut self, spec: &LinearParams, x: &Features, y: f64) {
        let z = self.raw(x);
        let g = match spec.logistic {
            false => 2.0 * (z - y),
            true => {
                // river's optim.losses.Log.gradient, y in {-1, 1}: 0 is false, anything else true
                let s = if y != 0.0 { 1.0 } else { -1.0 };
                let m = z * s;
                if m > 18.0 {
                    (-m).exp() * -s
                } else if m < -18.0 {
                    -s
                } else {
                    -s / (m.exp() + 1.0)
                }
            }
        };
        // a row that gives no finite gradient (an overflowing score) teaches nothing; f64::min
        // would turn a NaN into the clip
        if !g.is_finite() {
            return;
        }
        let g = g.min(spec.clip_gradient).max(-spec.clip_gradient);
        self.intercept -= spec.intercept_learning_rate * g;
        let step = |w: &mut f64, sum: &mut f64, v: f64| {
            let grad = v * g + spec.l2 * *w;
            match spec.optimizer {
                Optimizer::Sgd => *w -= spec.learning_rate * grad,
                Optimizer::AdaGrad { eps } => {
                    *sum += grad * grad;
                    *w -= spec.learning_rate / (*sum + eps).sqrt() * grad;
                }
            }
        };
        for (v, (w, sum)) in x.dense.iter().zip(self.dense.iter_mut()) {
            if let Some(v) = v {
                step(w, sum, *v);
            }
        }
        for &(bucket, v) in &x.hashed {
            let i = match self.hashed.binary_search_by_key(&bucket, |e| e.0) {
                Ok(i) => i,
                Err(i) => {
                    self.hashed.insert(i, (bucket, 0.0, 0.0));
                    i
                }
            };
            let e = &mut self.hashed[i];
            step(&mut e.1, &mut e.2, v);
        }
        self.learned += 1;
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.learned.to_le_bytes());
        out.extend_from_slice(&self.intercept.to_bits().to_le_bytes());
        out.extend_from_slice(&(self.dense.len() as u32).to_le_bytes());
        for (w, s) in &self.dense {
            out.extend_from_slice(&w.to_bits().to_le_bytes());
            out.extend_from_slice(&s.to_bits().to_le_bytes());
        }
        out.extend_from_slice(&(self.hashed.len() as u32).to_le_bytes());
        for (b, w, s) in &self.hashed {
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&w.to_bits().to_le_bytes());
            out.extend_from_slice(&s.to_bits().to_le_bytes());
        }
    }

    /// Numeric features.
    pub fn slots(&self) -> usize {
        self.dense.len()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Linear, DecodeError> {
        let mut r = Reader::new(bytes);
        let l = Linear::read(&mut r)?;
        r.end()?;
        Ok(l)
    }

    /// Reads a model written by `encode` from `r`.
    pub(super) fn read(r: &mut Reader) -> Result<Linear, DecodeError> {
        let room = r.remaining();
        let learned = r.u64()?;
        let intercept = r.f64()?;
        let n = r.u32()? as usize;
        let mut dense = Vec::with_capacity(n.min(room / 16));
        for _ in 0..n {
            dense.push((r.f64()?, r.f64()?));
        }
        let h = r.u32()? as usize;
        let mut hashed = Vec::with_capacity(h.min(room / 20));
        for _ in 0..h {
            hashed.push((r.u32()?, r.f64()?, r.f64()?));
        }
        if hashed.windows(2).any(|p| p[0].0 >= p[1].0) {
            return Err(DecodeError("hashed features out of order".into()));
        }
        Ok(Linear {
            dense,
            hashed,
            intercept,
            learned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Learner;
    use super::*;
    use crate::spec::ModelSpec;
    use std::collections::BTreeMap;

    fn spec(pairs: &[(&str, &str)]) -> OnlineSpec {
        let o: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match ModelSpec::from_options(&o).unwrap().provider {
            crate::spec::Provider::Online(s) => s,
            _ => panic!("online"),
        }
    }

    /// y = 3x + 1 is learned, and one SGD step is river's by hand.
    #[test]
    fn linear_regression_steps_as_river_and_converges() {
        let s = spec(&[
            ("provider", "online"),
            ("algorithm", "linear_regression"),
            ("label", "y"),
        ]);
        let mut m = Learner::new(&s, 1);
        let mut x = Features::with_slots(1);
        x.set(0, Some(2.0));
        m.learn(&s, &x, 7.0);
        // g = 2(0 - 7) = -14; b = 0.01·14; w = 0.01·2·14
        let Learner::Linear(l) = &m else {
            panic!("linear")
        };
        assert_eq!(l.intercept, 0.14);
        assert_eq!(l.dense[0].0, 0.28);
        for i in 0..20_000 {
            let v = (i % 10) as f64 / 5.0;
            x.set(0, Some(v));
            m.learn(&s, &x, 3.0 * v + 1.0);
        }
        x.set(0, Some(1.0));
        let p = m.predict(&s, &x);
        assert!((p.value - 4.0).abs() < 1e-3, "{p:?}");
        assert_eq!(p.learned, 20_001);
        // a missing feature counts nothing and is not moved
        x.set(0, None);
        let before = m.clone();
        m.learn(&s, &x, 100.0);
        let (Learner::Linear(a), Learner::Linear(b)) = (&before, &m) else {
            panic!("linear")
        };
        assert_eq!(a.dense, b.dense);
        assert_ne!(a.intercept, b.intercept);
    }

    #[test]
    fn logistic_regression_separates_and_roundtrips_its_state_exactly() {
        let s = spec(&[
            ("provider", "online"),
            ("algorithm", "logistic_regression"),
            ("label", "y"),
            ("optimizer", "adagrad"),
            ("l2", "0.001"),
            ("features.hash-buckets", "64"),
        ]);
        let mut m = Learner::new(&s, 1);
        let mut x = Features::with_slots(1);
        for i in 0..4000 {
            x.clear();
            let v = (i % 7) as f64 - 3.0;
            x.set(0, Some(v));
            x.add_hashed("store", if i % 2 == 0 { "a" } else { "b" }, 64, 0);
            m.learn(&s, &x, if v > 0.0 { 1.0 } else { 0.0 });
        }
        x.clear();
        x.set(0, Some(2.0));
        assert!(m.predict(&s, &x).value > 0.9);
        x.set(0, Some(-2.0));
        assert!(m.predict(&s, &x).value < 0.1);
        let mut bytes = Vec::new();
        m.encode(&mut bytes);
        let back = Learner::decode(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.slots(), 1);
        assert!(Learner::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Learner::decode(&[9]).is_err());
    }
}
