//! Online forecasting and anomaly models behind the aggregate functions `EWMA`, `EWMVAR`,
//! `HOLT_WINTERS` (`HW_FORECAST`), `HW_LEVEL`, `HW_TREND`, `ANOMALY_SCORE` and `IS_ANOMALY`.
//!
//! Each model is the keyed state of one aggregate call for one group: O(1) work per value (a
//! Holt-Winters model also keeps one seasonal term per season position), no allocation after its
//! warm-up, NULL inputs skipped, and a byte form for checkpoints ([`StateValue`]). The recurrences are written down
//! in docs/forecasting.md and checked against statsmodels (Holt-Winters) and pandas (EWMA) by the
//! test suite.

use crate::error::{Result, RuntimeError};
use crate::state::{read_u64, StateValue};

/// Which model, with its constant parameters (validated by [`ModelSpec::validate`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ModelSpec {
    /// `EWMA(x, alpha)`: m ← αx + (1−α)m, starting at the first value.
    Ewma {
        /// Smoothing factor in (0, 1].
        alpha: f64,
    },
    /// `EWMVAR(x, alpha)`: the exponentially weighted variance that goes with `EWMA`.
    EwmVar {
        /// Smoothing factor in (0, 1].
        alpha: f64,
    },
    /// Additive Holt-Winters; `out` says which figure the call returns.
    HoltWinters {
        /// Level smoothing α in [0, 1].
        alpha: f64,
        /// Trend smoothing β in [0, 1].
        beta: f64,
        /// Seasonal smoothing γ in [0, 1].
        gamma: f64,
        /// Values per season m ≥ 1.
        season: u32,
        /// What the call returns.
        out: HwOut,
    },
    /// `ANOMALY_SCORE(x [, alpha])` / `IS_ANOMALY(x [, threshold [, alpha]])`: a robust z-score of x
    /// against the running EW mean and variance of the values before it.
    Anomaly {
        /// Smoothing factor of the baseline.
        alpha: f64,
        /// `Some(t)`: the call returns `|score| > t` (IS_ANOMALY); `None`: the score.
        threshold: Option<f64>,
    },
}

/// The figure a Holt-Winters call returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HwOut {
    /// The forecast `h` steps after the current value (h = 0: the forecast of the current value
    /// made before it was seen, i.e. what was expected).
    Forecast(u32),
    /// The current level.
    Level,
    /// The current trend (per step).
    Trend,
}

/// Minimum number of values before an anomaly score is given.
pub const ANOMALY_WARMUP: u64 = 10;
/// A value further than this many standard deviations from the baseline moves the baseline only
/// as far as this bound (so a spike does not teach the baseline to expect spikes).
pub const ANOMALY_CLIP: f64 = 3.0;
/// `IS_ANOMALY`'s threshold when none is given.
pub const DEFAULT_THRESHOLD: f64 = 4.0;
/// `ANOMALY_SCORE`'s smoothing factor when none is given.
pub const DEFAULT_ANOMALY_ALPHA: f64 = 0.05;

impl ModelSpec {
    /// The model of aggregate `kind` called with the constant parameters `p` (after the value
    /// argument), validated; the error names the function, its signature and the bad parameter.
    pub fn from_call(kind: crate::agg::AggKind, p: &[f64]) -> std::result::Result<Self, String> {
        use crate::agg::AggKind as K;
        let int = |name: &str, what: &str, v: f64| {
            if v.fract() == 0.0 && v >= 0.0 && v <= u32::MAX as f64 {
                Ok(v as u32)
            } else {
                Err(format!(
                    "{name}: {what} must be a whole number ≥ 0, got {v}"
                ))
            }
        };
        let (name, spec) = match (kind, p) {
            (K::Ewma, [a]) => ("EWMA", ModelSpec::Ewma { alpha: *a }),
            (K::EwmVar, [a]) => ("EWMVAR", ModelSpec::EwmVar { alpha: *a }),
            (K::HoltWinters | K::HwLevel | K::HwTrend, [a, b, g, m, rest @ ..])
                if rest.len() <= usize::from(kind == K::HoltWinters) =>
            {
                let name = match kind {
                    K::HwLevel => "HW_LEVEL",
                    K::HwTrend => "HW_TREND",
                    _ => "HOLT_WINTERS",
                };
                let out = match (kind, rest.first()) {
                    (K::HwLevel, _) => HwOut::Level,
                    (K::HwTrend, _) => HwOut::Trend,
                    (_, Some(h)) => HwOut::Forecast(int(name, "horizon", *h)?),
                    (_, None) => HwOut::Forecast(1),
                };
                let spec = ModelSpec::HoltWinters {
                    alpha: *a,
                    beta: *b,
                    gamma: *g,
                    season: int(name, "season_length", *m)?,
                    out,
                };
                (name, spec)
            }
            (K::AnomalyScore, [] | [_]) => (
                "ANOMALY_SCORE",
                ModelSpec::Anomaly {
                    alpha: p.first().copied().unwrap_or(DEFAULT_ANOMALY_ALPHA),
                    threshold: None,
                },
            ),
            (K::IsAnomaly, [] | [_] | [_, _]) => (
                "IS_ANOMALY",
                ModelSpec::Anomaly {
                    alpha: p.get(1).copied().unwrap_or(DEFAULT_ANOMALY_ALPHA),
                    threshold: Some(p.first().copied().unwrap_or(DEFAULT_THRESHOLD)),
                },
            ),
            _ => {
                let sig = match kind {
                    K::Ewma => "EWMA(x, alpha)",
                    K::EwmVar => "EWMVAR(x, alpha)",
                    K::HoltWinters => {
                        "HOLT_WINTERS(x, alpha, beta, gamma, season_length [, horizon])"
                    }
                    K::HwLevel => "HW_LEVEL(x, alpha, beta, gamma, season_length)",
                    K::HwTrend => "HW_TREND(x, alpha, beta, gamma, season_length)",
                    K::AnomalyScore => "ANOMALY_SCORE(x [, alpha])",
                    K::IsAnomaly => "IS_ANOMALY(x [, threshold [, alpha]])",
                    _ => "an aggregate",
                };
                return Err(format!("wrong number of arguments: the function is {sig}"));
            }
        };
        spec.validate(name)?;
        Ok(spec)
    }

    /// Checks the parameters; the message names the function and the bad parameter.
    pub fn validate(&self, name: &str) -> std::result::Result<(), String> {
        let unit = |p: &str, v: f64, open_zero: bool| {
            let ok = if open_zero {
                v > 0.0 && v <= 1.0
            } else {
                (0.0..=1.0).contains(&v)
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{name}: {p} must be in {}0, 1], got {v}",
                    if open_zero { "(" } else { "[" }
                ))
            }
        };
        match *self {
            ModelSpec::Ewma { alpha } | ModelSpec::EwmVar { alpha } => unit("alpha", alpha, true),
            ModelSpec::HoltWinters {
                alpha,
                beta,
                gamma,
                season,
                ..
            } => {
                unit("alpha", alpha, false)?;
                unit("beta", beta, false)?;
                unit("gamma", gamma, false)?;
                if season == 0 || season > 100_000 {
                    return Err(format!(
                        "{name}: season_length must be between 1 and 100000, got {season}"
                    ));
                }
                Ok(())
            }
            ModelSpec::Anomaly { alpha, threshold } => {
                unit("alpha", alpha, true)?;
                match threshold {
                    Some(t) if !(t > 0.0 && t.is_finite()) => {
                        Err(format!("{name}: threshold must be positive, got {t}"))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// The state of one model for one group.
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    /// EWMA, EWMVAR and the anomaly baseline: values seen, mean, variance.
    Ew {
        /// Values seen.
        n: u64,
        /// Weighted mean.
        mean: f64,
        /// Weighted variance.
        var: f64,
        /// The anomaly score the latest value got (before it joined the baseline).
        score: Option<f64>,
    },
    /// Holt-Winters.
    Hw(Box<HoltWinters>),
}

/// Additive Holt-Winters state.
#[derive(Clone, Debug, PartialEq)]
pub struct HoltWinters {
    /// Values seen.
    pub n: u64,
    /// Level (valid once `n ≥ m`).
    pub level: f64,
    /// Trend.
    pub trend: f64,
    /// Seasonal terms, indexed by season position (`n mod m` of the value they belong to); during
    /// warm-up the first season's raw values.
    pub season: Vec<f64>,
    /// The one-step forecast made before the latest value (for horizon 0).
    pub expected: Option<f64>,
}

impl Model {
    /// A fresh model for `spec`.
    pub fn new(spec: &ModelSpec) -> Model {
        match spec {
            ModelSpec::HoltWinters { season, .. } => Model::Hw(Box::new(HoltWinters {
                n: 0,
                level: 0.0,
                trend: 0.0,
                season: Vec::with_capacity(*season as usize),
                expected: None,
            })),
            _ => Model::Ew {
                n: 0,
                mean: 0.0,
                var: 0.0,
                score: None,
            },
        }
    }

    /// Takes the next value.
    #[inline]
    pub fn push(&mut self, spec: &ModelSpec, x: f64) {
        match (self, spec) {
            (Model::Ew { n, mean, var, .. }, ModelSpec::Ewma { alpha })
            | (Model::Ew { n, mean, var, .. }, ModelSpec::EwmVar { alpha }) => {
                if *n == 0 {
                    *mean = x;
                    *var = 0.0;
                } else {
                    // West / Finch: the exponentially weighted mean and (biased) variance
                    let d = x - *mean;
                    let inc = alpha * d;
                    *mean += inc;
                    *var = (1.0 - alpha) * (*var + d * inc);
                }
                *n += 1;
            }
            (me @ Model::Ew { .. }, ModelSpec::Anomaly { alpha, .. }) => {
                let z = me.score(x);
                let Model::Ew {
                    n,
                    mean,
                    var,
                    score,
                } = me
                else {
                    return;
                };
                *score = z;
                if *n == 0 {
                    *mean = x;
                    *var = 0.0;
                } else {
                    // robust: after warm-up, a far value moves the baseline as if it were at the
                    // clip bound
                    let sd = var.sqrt();
                    let y = if *n >= ANOMALY_WARMUP && sd > 0.0 {
                        x.clamp(*mean - ANOMALY_CLIP * sd, *mean + ANOMALY_CLIP * sd)
                    } else {
                        x
                    };
                    let d = y - *mean;
                    let inc = alpha * d;
                    *mean += inc;
                    *var = (1.0 - alpha) * (*var + d * inc);
                }
                *n += 1;
            }
            (
                Model::Hw(hw),
                ModelSpec::HoltWinters {
                    alpha,
                    beta,
                    gamma,
                    season,
                    ..
                },
            ) => hw.push(*alpha, *beta, *gamma, *season as usize, x),
            _ => {}
        }
    }

    /// The z-score `x` would get against the current baseline (before pushing it).
    pub fn score(&self, x: f64) -> Option<f64> {
        match self {
            Model::Ew { n, mean, var, .. } if *n >= ANOMALY_WARMUP => {
                let sd = var.sqrt();
                if sd > 0.0 {
                    Some((x - mean) / sd)
                } else if x == *mean {
                    Some(0.0)
                } else {
                    Some(f64::INFINITY.copysign(x - mean))
                }
            }
            _ => None,
        }
    }

    /// The call's current result; None = NULL. For the anomaly functions: the latest value's score.
    pub fn value(&self, spec: &ModelSpec) -> Option<f64> {
        match (self, spec) {
            (Model::Ew { n, mean, .. }, ModelSpec::Ewma { .. }) => (*n > 0).then_some(*mean),
            (Model::Ew { n, var, .. }, ModelSpec::EwmVar { .. }) => (*n > 1).then_some(*var),
            (Model::Ew { score, .. }, ModelSpec::Anomaly { .. }) => *score,
            (Model::Hw(hw), ModelSpec::HoltWinters { season, out, .. }) => {
                let m = *season as usize;
                if (hw.n as usize) < m {
                    return None;
                }
                match out {
                    HwOut::Level => Some(hw.level),
                    HwOut::Trend => Some(hw.trend),
                    HwOut::Forecast(0) => hw.expected,
                    HwOut::Forecast(h) => Some(hw.forecast(*h as usize, m)),
                }
            }
            _ => None,
        }
    }

    /// Approximate bytes this state holds (for the cost figures).
    pub fn bytes(&self) -> usize {
        match self {
            Model::Ew { .. } => std::mem::size_of::<Model>(),
            Model::Hw(hw) => {
                std::mem::size_of::<Model>()
                    + std::mem::size_of::<HoltWinters>()
                    + hw.season.capacity() * 8
            }
        }
    }
}

impl HoltWinters {
    fn push(&mut self, alpha: f64, beta: f64, gamma: f64, m: usize, x: f64) {
        let n = self.n as usize;
        if n < m {
            // warm-up: the first season's values; at its end level = their mean, trend = 0,
            // seasonal terms = value − level
            self.season.push(x);
            if n + 1 == m {
                let mean = self.season.iter().sum::<f64>() / m as f64;
                for s in &mut self.season {
                    *s -= mean;
                }
                self.level = mean;
                self.trend = 0.0;
            }
            self.n += 1;
            return;
        }
        let i = n % m;
        let s_old = self.season[i];
        self.expected = Some(self.level + self.trend + s_old);
        let prev_level = self.level;
        let prev_trend = self.trend;
        self.level = alpha * (x - s_old) + (1.0 - alpha) * (prev_level + prev_trend);
        self.trend = beta * (self.level - prev_level) + (1.0 - beta) * prev_trend;
        self.season[i] = gamma * (x - prev_level - prev_trend) + (1.0 - gamma) * s_old;
        self.n += 1;
    }

    /// The forecast `h ≥ 1` steps after the latest value.
    fn forecast(&self, h: usize, m: usize) -> f64 {
        // the value h steps ahead has index n − 1 + h, its season position (n − 1 + h) mod m
        let i = (self.n as usize + h - 1) % m;
        self.level + h as f64 * self.trend + self.season[i]
    }
}

const M_EW: u8 = 0;
const M_HW: u8 = 1;

fn corrupt(what: &str) -> RuntimeError {
    RuntimeError::State(format!("corrupt forecasting state: {what}"))
}

fn f64_at(input: &[u8], at: &mut usize) -> Result<f64> {
    read_u64(input, at).map(f64::from_bits)
}

impl StateValue for Model {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Model::Ew {
                n,
                mean,
                var,
                score,
            } => {
                out.push(M_EW);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&mean.to_bits().to_le_bytes());
                out.extend_from_slice(&var.to_bits().to_le_bytes());
                // NaN stands for "no score"
                out.extend_from_slice(&score.unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
            Model::Hw(hw) => {
                out.push(M_HW);
                out.extend_from_slice(&hw.n.to_le_bytes());
                out.extend_from_slice(&hw.level.to_bits().to_le_bytes());
                out.extend_from_slice(&hw.trend.to_bits().to_le_bytes());
                match hw.expected {
                    Some(e) => {
                        out.push(1);
                        out.extend_from_slice(&e.to_bits().to_le_bytes());
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&(hw.season.len() as u64).to_le_bytes());
                for s in &hw.season {
                    out.extend_from_slice(&s.to_bits().to_le_bytes());
                }
            }
        }
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Model> {
        let tag = *input.get(*at).ok_or_else(|| corrupt("tag"))?;
        *at += 1;
        match tag {
            M_EW => Ok(Model::Ew {
                n: read_u64(input, at)?,
                mean: f64_at(input, at)?,
                var: f64_at(input, at)?,
                score: Some(f64_at(input, at)?).filter(|s| !s.is_nan()),
            }),
            M_HW => {
                let n = read_u64(input, at)?;
                let level = f64_at(input, at)?;
                let trend = f64_at(input, at)?;
                let has = *input.get(*at).ok_or_else(|| corrupt("expected"))?;
                *at += 1;
                let expected = if has == 1 {
                    Some(f64_at(input, at)?)
                } else {
                    None
                };
                let len = read_u64(input, at)? as usize;
                if len > 100_000 {
                    return Err(corrupt("season length"));
                }
                let mut season = Vec::with_capacity(len);
                for _ in 0..len {
                    season.push(f64_at(input, at)?);
                }
                Ok(Model::Hw(Box::new(HoltWinters {
                    n,
                    level,
                    trend,
                    season,
                    expected,
                })))
            }
            _ => Err(corrupt("unknown tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_and_variance_follow_their_recurrences() {
        let spec = ModelSpec::Ewma { alpha: 0.5 };
        let mut m = Model::new(&spec);
        assert_eq!(m.value(&spec), None);
        for x in [2.0, 4.0, 8.0] {
            m.push(&spec, x);
        }
        // 2 → 3 → 5.5
        assert_eq!(m.value(&spec), Some(5.5));
        let var = ModelSpec::EwmVar { alpha: 0.5 };
        assert!(m.value(&var).is_some_and(|v| v > 0.0));
        assert!(var.validate("EWMVAR").is_ok());
        assert!(ModelSpec::Ewma { alpha: 0.0 }
            .validate("EWMA")
            .unwrap_err()
            .contains("alpha must be in (0, 1]"));
    }

    #[test]
    fn holt_winters_warms_up_then_forecasts_the_season() {
        let spec = |out| ModelSpec::HoltWinters {
            alpha: 0.3,
            beta: 0.1,
            gamma: 0.2,
            season: 4,
            out,
        };
        let f1 = spec(HwOut::Forecast(1));
        let mut m = Model::new(&f1);
        let series = [10.0, 20.0, 30.0, 20.0, 10.0, 20.0, 30.0, 20.0];
        for (i, x) in series.iter().enumerate() {
            m.push(&f1, *x);
            if i < 3 {
                assert_eq!(m.value(&f1), None, "warm-up at {i}");
            }
        }
        // a perfectly seasonal series is forecast exactly: next is 10, then 20
        assert!((m.value(&f1).unwrap() - 10.0).abs() < 1e-12);
        assert!((m.value(&spec(HwOut::Forecast(2))).unwrap() - 20.0).abs() < 1e-12);
        assert!((m.value(&spec(HwOut::Forecast(0))).unwrap() - 20.0).abs() < 1e-12);
        assert!((m.value(&spec(HwOut::Level)).unwrap() - 20.0).abs() < 1e-12);
        assert!(m.value(&spec(HwOut::Trend)).unwrap().abs() < 1e-12);
        let mut bytes = Vec::new();
        m.write(&mut bytes);
        assert_eq!(Model::read(&bytes, &mut 0).unwrap(), m);
    }

    #[test]
    fn anomaly_scores_are_robust_to_the_spike_itself() {
        let spec = ModelSpec::Anomaly {
            alpha: 0.1,
            threshold: None,
        };
        let mut m = Model::new(&spec);
        for i in 0..50 {
            let x = 100.0 + if i % 2 == 0 { 5.0 } else { -5.0 };
            assert!(i >= ANOMALY_WARMUP as usize || m.score(x).is_none());
            m.push(&spec, x);
        }
        let z = m.score(200.0).unwrap();
        assert!(z > 10.0, "{z}");
        m.push(&spec, 200.0);
        assert_eq!(m.value(&spec), Some(z));
        // the baseline moved by at most alpha · 3 σ
        assert!(m.score(100.0).unwrap().abs() < 1.0);
    }
}
