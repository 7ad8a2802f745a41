//! A model's `WITH` options parsed into a typed configuration, without I/O, so `CREATE MODEL`
//! and `tillflow validate` catch a bad value before a job runs. `provider` picks the kind:
//! `online` (a model that learns on the stream: [`OnlineSpec`]) or `onnx` (a model file run
//! in process). Option names follow Flink's style (`-` between words); the learners' knobs and
//! defaults are river's, so a river pipeline with the same settings gives the same numbers.

use std::collections::BTreeMap;

/// A bad model option: which, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// A required option is missing.
    #[error("model option '{0}' is required{1}")]
    Missing(&'static str, String),
    /// An option's value is not one it takes.
    #[error("model option '{key}' = '{value}' is not valid: {why}")]
    Invalid {
        /// The option.
        key: String,
        /// Its value (shortened).
        value: String,
        /// What it takes.
        why: String,
    },
    /// An option no provider of this kind reads (Flink would ignore it; tillflow says so).
    #[error("model option '{0}' is not known to provider '{1}' (known: {2})")]
    Unknown(String, String, String),
    /// A provider tillflow does not have.
    #[error("model provider '{0}' is not supported: tillflow runs models in process ('provider' = 'onnx' for a model file, 'online' for a model that learns on the stream); remote providers (openai, triton) are not available")]
    Provider(String),
}

/// Which provider runs a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// A model that learns on the stream.
    Online(OnlineSpec),
    /// An ONNX model file run in process.
    Onnx(OnnxSpec),
}

/// A model's typed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The provider and its settings.
    pub provider: Provider,
}

/// The learning algorithm of an online model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Linear regression (squared loss), river's `linear_model.LinearRegression`.
    LinearRegression,
    /// Binary logistic regression (log loss), river's `linear_model.LogisticRegression`.
    LogisticRegression,
}

impl Algorithm {
    /// The option value naming it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::LinearRegression => "linear_regression",
            Algorithm::LogisticRegression => "logistic_regression",
        }
    }

    /// True for a classifier (a BOOLEAN prediction and a probability).
    pub fn classifies(self) -> bool {
        matches!(self, Algorithm::LogisticRegression)
    }
}

/// How weights are updated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Plain stochastic gradient descent, river's `optim.SGD(lr)`.
    Sgd,
    /// AdaGrad, river's `optim.AdaGrad(lr, eps)`.
    AdaGrad {
        /// Added to the squared gradients' sum under the square root.
        eps: f64,
    },
}

/// An online model's settings (river's names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineSpec {
    /// The learner.
    pub algorithm: Algorithm,
    /// The input column the model learns from (`'label'`); a row whose label is NULL is only
    /// predicted.
    pub label: String,
    /// The weights' optimizer.
    pub optimizer: Optimizer,
    /// Its learning rate (`'learning-rate'`; river: 0.01 for SGD, 0.1 for AdaGrad).
    pub learning_rate: f64,
    /// The intercept's learning rate, whatever the optimizer (`'intercept-learning-rate'`, 0.01).
    pub intercept_learning_rate: f64,
    /// L2 penalty (`'l2'`, 0).
    pub l2: f64,
    /// The loss gradient is clipped to ± this (`'clip-gradient'`, 1e12).
    pub clip_gradient: f64,
    /// Buckets STRING features are hashed into (`'features.hash-buckets'`, 2^20 as river's).
    pub hash_buckets: u32,
    /// The hash's seed (`'features.hash-seed'`, 0).
    pub hash_seed: u32,
}

/// An ONNX model's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxSpec {
    /// The model file (`'path'`).
    pub path: String,
}

const ONLINE_KEYS: &[&str] = &[
    "provider",
    "task",
    "algorithm",
    "label",
    "optimizer",
    "learning-rate",
    "intercept-learning-rate",
    "l2",
    "clip-gradient",
    "adagrad.eps",
    "features.hash-buckets",
    "features.hash-seed",
];
const ONNX_KEYS: &[&str] = &["provider", "task", "path"];

/// Shortens a user's value for an error message.
fn shown(v: &str) -> String {
    if v.len() <= 200 {
        return v.to_owned();
    }
    let mut end = 200;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end])
}

fn invalid(key: &str, value: &str, why: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        key: key.to_owned(),
        value: shown(value),
        why: why.into(),
    }
}

fn number(options: &BTreeMap<String, String>, key: &str, default: f64) -> Result<f64, SpecError> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(invalid(key, v, "a number, zero or more")),
        },
    }
}

fn unsigned(options: &BTreeMap<String, String>, key: &str, default: u32) -> Result<u32, SpecError> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| invalid(key, v, "a whole number from 0 to 4294967295")),
    }
}

fn check_known(
    options: &BTreeMap<String, String>,
    provider: &str,
    known: &[&str],
) -> Result<(), SpecError> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(SpecError::Unknown(
            shown(k),
            provider.to_owned(),
            known.join(", "),
        )),
        None => Ok(()),
    }
}

impl ModelSpec {
    /// Parses a model's `WITH` options.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<ModelSpec, SpecError> {
        let provider = options
            .get("provider")
            .ok_or_else(|| SpecError::Missing("provider", " ('onnx' or 'online')".into()))?;
        let provider = match provider.to_ascii_lowercase().as_str() {
            "online" => {
                check_known(options, "online", ONLINE_KEYS)?;
                Provider::Online(OnlineSpec::from_options(options)?)
            }
            "onnx" => {
                check_known(options, "onnx", ONNX_KEYS)?;
                let path = options.get("path").ok_or_else(|| {
                    SpecError::Missing("path", " (the .onnx file) for provider 'onnx'".into())
                })?;
                Provider::Onnx(OnnxSpec { path: path.clone() })
            }
            _ => return Err(SpecError::Provider(shown(provider))),
        };
        if let Some(task) = options.get("task") {
            let expected = match &provider {
                Provider::Online(o) if o.algorithm.classifies() => &["classification"][..],
                Provider::Online(_) => &["regression"][..],
                Provider::Onnx(_) => {
                    &["regression", "classification", "clustering", "embedding"][..]
                }
            };
            if !expected.contains(&task.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    "task",
                    task,
                    format!("this model's task is {}", expected.join(" or ")),
                ));
            }
        }
        Ok(ModelSpec { provider })
    }
}

impl OnlineSpec {
    fn from_options(options: &BTreeMap<String, String>) -> Result<OnlineSpec, SpecError> {
        let algorithm = match options.get("algorithm").map(|a| a.to_ascii_lowercase()) {
            None => {
                return Err(SpecError::Missing(
                    "algorithm",
                    " for provider 'online' ('linear_regression' or 'logistic_regression')".into(),
                ))
            }
            Some(a) => match a.as_str() {
                "linear_regression" => Algorithm::LinearRegression,
                "logistic_regression" => Algorithm::LogisticRegression,
                _ => {
                    return Err(invalid(
                        "algorithm",
                        &a,
                        "'linear_regression' or 'logistic_regression'",
                    ))
                }
            },
        };
        let label = options
            .get("label")
            .ok_or_else(|| {
                SpecError::Missing(
                    "label",
                    " for provider 'online': the input column the model learns from".into(),
                )
            })?
            .clone();
        let optimizer = match options
            .get("optimizer")
            .map(|o| o.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("sgd") => Optimizer::Sgd,
            Some("adagrad") => Optimizer::AdaGrad {
                eps: number(options, "adagrad.eps", 1e-8)?,
            },
            Some(other) => return Err(invalid("optimizer", other, "'sgd' or 'adagrad'")),
        };
        if optimizer == Optimizer::Sgd && options.contains_key("adagrad.eps") {
            return Err(invalid(
                "adagrad.eps",
                &options["adagrad.eps"],
                "it is read only with 'optimizer' = 'adagrad'",
            ));
        }
        let default_lr = match optimizer {
            Optimizer::Sgd => 0.01,
            Optimizer::AdaGrad { .. } => 0.1,
        };
        let hash_buckets = unsigned(options, "features.hash-buckets", 1 << 20)?;
        if hash_buckets == 0 || hash_buckets > i32::MAX as u32 {
            return Err(invalid(
                "features.hash-buckets",
                &hash_buckets.to_string(),
                "from 1 to 2147483647",
            ));
        }
        Ok(OnlineSpec {
            algorithm,
            label,
            optimizer,
            learning_rate: number(options, "learning-rate", default_lr)?,
            intercept_learning_rate: number(options, "intercept-learning-rate", 0.01)?,
            l2: number(options, "l2", 0.0)?,
            clip_gradient: number(options, "clip-gradient", 1e12)?,
            hash_buckets,
            hash_seed: unsigned(options, "features.hash-seed", 0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn online_options_take_rivers_defaults() {
        let s = ModelSpec::from_options(&opts(&[
            ("provider", "online"),
            ("algorithm", "linear_regression"),
            ("label", "units"),
        ]))
        .unwrap();
        let Provider::Online(o) = s.provider else {
            panic!("online")
        };
        assert_eq!(o.optimizer, Optimizer::Sgd);
        assert_eq!(o.learning_rate, 0.01);
        assert_eq!(o.intercept_learning_rate, 0.01);
        assert_eq!(o.hash_buckets, 1 << 20);
        let s = ModelSpec::from_options(&opts(&[
            ("provider", "online"),
            ("algorithm", "logistic_regression"),
            ("label", "bought"),
            ("optimizer", "AdaGrad"),
        ]))
        .unwrap();
        let Provider::Online(o) = s.provider else {
            panic!("online")
        };
        assert_eq!(o.optimizer, Optimizer::AdaGrad { eps: 1e-8 });
        assert_eq!(o.learning_rate, 0.1);
    }

    #[test]
    fn bad_options_are_refused_naming_them() {
        let base = [
            ("provider", "online"),
            ("algorithm", "linear_regression"),
            ("label", "y"),
        ];
        let with = |k: &str, v: &str| {
            let mut o = opts(&base);
            o.insert(k.into(), v.into());
            ModelSpec::from_options(&o).unwrap_err().to_string()
        };
        assert!(with("learning-rate", "fast").contains("'learning-rate' = 'fast'"));
        assert!(with("l2", "-1").contains("'l2'"));
        assert!(with("optimizer", "adam").contains("'sgd' or 'adagrad'"));
        assert!(with("algorithm", "svm").contains("'linear_regression'"));
        assert!(with("lerning-rate", "0.1").contains("'lerning-rate' is not known"));
        assert!(with("task", "classification").contains("regression"));
        assert!(with("adagrad.eps", "1e-6").contains("'optimizer' = 'adagrad'"));
        let e = ModelSpec::from_options(&opts(&[("provider", "openai")])).unwrap_err();
        assert!(e.to_string().contains("'openai' is not supported"));
        let e =
            ModelSpec::from_options(&opts(&[("provider", "online"), ("label", "y")])).unwrap_err();
        assert!(e.to_string().contains("'algorithm' is required"));
        let e = ModelSpec::from_options(&opts(&[("provider", "onnx")])).unwrap_err();
        assert!(e.to_string().contains("'path' is required"));
        let long = "x".repeat(5000);
        assert!(with("learning-rate", &long).len() < 600);
    }
}
