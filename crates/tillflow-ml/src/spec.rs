//! A model's `WITH` options parsed into a typed configuration, without I/O, so `CREATE MODEL`
//! and `tillflow validate` catch a bad value before a job runs. `provider` picks the kind:
//! `online` (a model that learns on the stream: [`OnlineSpec`]) or `onnx` (a model file run
//! in process). Option names follow Flink's style (`-` between words); the learners' knobs and
//! defaults are river's, so a river pipeline with the same settings gives the same numbers.
//! Each algorithm reads its own options ([`LINEAR_ONLY_KEYS`], [`TREE_ONLY_KEYS`]); one that
//! another algorithm reads is refused by name rather than ignored.

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
    /// A regression tree grown on the stream, river's `tree.HoeffdingTreeRegressor`.
    HoeffdingTreeRegressor,
}

impl Algorithm {
    /// The option value naming it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::LinearRegression => "linear_regression",
            Algorithm::LogisticRegression => "logistic_regression",
            Algorithm::HoeffdingTreeRegressor => "hoeffding_tree_regressor",
        }
    }

    /// True for a linear model (linear or logistic regression), which reads the optimizer's
    /// options and hashes STRING features.
    pub fn is_linear(self) -> bool {
        matches!(
            self,
            Algorithm::LinearRegression | Algorithm::LogisticRegression
        )
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

/// What a Hoeffding tree's leaves predict (river's `leaf_prediction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafPrediction {
    /// The mean of the labels the leaf learned (`'mean'`).
    Mean,
    /// A linear regression learned at the leaf, river's default `LinearRegression` (SGD, rate
    /// 0.01), which a leaf's children inherit when it splits (`'model'`).
    Model,
    /// Whichever of the two has the smaller decayed squared error so far (`'adaptive'`, river's
    /// default).
    Adaptive,
}

impl LeafPrediction {
    /// The option value naming it.
    pub fn name(self) -> &'static str {
        match self {
            LeafPrediction::Mean => "mean",
            LeafPrediction::Model => "model",
            LeafPrediction::Adaptive => "adaptive",
        }
    }
}

/// A Hoeffding tree regressor's settings (river's names and defaults; river's other knobs are
/// fixed at their defaults: the TEBST splitter rounding values to 1 decimal, binary splits,
/// merit pre-pruning).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeSpec {
    /// Rows a leaf learns between split attempts (`'grace-period'`, 200).
    pub grace_period: u32,
    /// The Hoeffding bound's significance (`'delta'`, 1e-7).
    pub delta: f64,
    /// Below this bound a tie is broken and the leaf splits (`'tau'`, 0.05).
    pub tau: f64,
    /// Leaves at this depth no longer split (`'max-depth'`; none by default).
    pub max_depth: Option<u32>,
    /// Rows each side of a split must have (`'min-samples-split'`, 5).
    pub min_samples_split: u32,
    /// What a leaf predicts (`'leaf-prediction'`, `adaptive`).
    pub leaf_prediction: LeafPrediction,
    /// The decay of the squared errors `adaptive` leaves compare (`'model-selector-decay'`,
    /// 0.95).
    pub model_selector_decay: f64,
}

impl Default for TreeSpec {
    fn default() -> Self {
        TreeSpec {
            grace_period: 200,
            delta: 1e-7,
            tau: 0.05,
            max_depth: None,
            min_samples_split: 5,
            leaf_prediction: LeafPrediction::Adaptive,
            model_selector_decay: 0.95,
        }
    }
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
    /// The Hoeffding tree's settings (its defaults for the linear algorithms).
    pub tree: TreeSpec,
}

/// An ONNX model's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxSpec {
    /// The model file (`'path'`).
    pub path: String,
}

/// The online options every algorithm reads (with [`LINEAR_ONLY_KEYS`] and [`TREE_ONLY_KEYS`],
/// all an online model takes).
const ONLINE_COMMON_KEYS: &[&str] = &["provider", "task", "algorithm", "label"];

/// The online options only linear and logistic regression read.
pub const LINEAR_ONLY_KEYS: &[&str] = &[
    "optimizer",
    "learning-rate",
    "intercept-learning-rate",
    "l2",
    "clip-gradient",
    "adagrad.eps",
    "features.hash-buckets",
    "features.hash-seed",
];

/// The online options only the Hoeffding tree reads.
pub const TREE_ONLY_KEYS: &[&str] = &[
    "grace-period",
    "delta",
    "tau",
    "max-depth",
    "min-samples-split",
    "leaf-prediction",
    "model-selector-decay",
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
    known: &[&[&str]],
) -> Result<(), SpecError> {
    match options
        .keys()
        .find(|k| !known.iter().any(|list| list.contains(&k.as_str())))
    {
        Some(k) => Err(SpecError::Unknown(
            shown(k),
            provider.to_owned(),
            known.concat().join(", "),
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
                check_known(
                    options,
                    "online",
                    &[ONLINE_COMMON_KEYS, LINEAR_ONLY_KEYS, TREE_ONLY_KEYS],
                )?;
                Provider::Online(OnlineSpec::from_options(options)?)
            }
            "onnx" => {
                check_known(options, "onnx", &[ONNX_KEYS])?;
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
                    " for provider 'online' ('linear_regression', 'logistic_regression' or 'hoeffding_tree_regressor')".into(),
                ))
            }
            Some(a) => match a.as_str() {
                "linear_regression" => Algorithm::LinearRegression,
                "logistic_regression" => Algorithm::LogisticRegression,
                "hoeffding_tree_regressor" => Algorithm::HoeffdingTreeRegressor,
                _ => {
                    return Err(invalid(
                        "algorithm",
                        &a,
                        "'linear_regression', 'logistic_regression' or 'hoeffding_tree_regressor'",
                    ))
                }
            },
        };
        let (theirs, why) = if algorithm.is_linear() {
            (
                TREE_ONLY_KEYS,
                "it is read only with 'algorithm' = 'hoeffding_tree_regressor'",
            )
        } else {
            (
                LINEAR_ONLY_KEYS,
                "it is read only with 'algorithm' = 'linear_regression' or 'logistic_regression'",
            )
        };
        if let Some(k) = theirs.iter().find(|k| options.contains_key(**k)) {
            return Err(invalid(k, &options[*k], why));
        }
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
            Some("adagrad") => {
                let eps = number(options, "adagrad.eps", 1e-8)?;
                if eps <= 0.0 {
                    return Err(invalid(
                        "adagrad.eps",
                        &options["adagrad.eps"],
                        "a number above 0 (the first zero gradient would divide by it)",
                    ));
                }
                Optimizer::AdaGrad { eps }
            }
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
            tree: TreeSpec::from_options(options)?,
        })
    }
}

impl TreeSpec {
    fn from_options(options: &BTreeMap<String, String>) -> Result<TreeSpec, SpecError> {
        let d = TreeSpec::default();
        let grace_period = unsigned(options, "grace-period", d.grace_period)?;
        if grace_period == 0 {
            return Err(invalid("grace-period", "0", "a whole number, 1 or more"));
        }
        let delta = number(options, "delta", d.delta)?;
        if !(delta > 0.0 && delta < 1.0) {
            return Err(invalid(
                "delta",
                &options["delta"],
                "a number greater than 0 and less than 1",
            ));
        }
        let max_depth = match options.get("max-depth") {
            None => None,
            Some(_) => Some(unsigned(options, "max-depth", 0)?),
        };
        let leaf_prediction = match options
            .get("leaf-prediction")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None => d.leaf_prediction,
            Some("mean") => LeafPrediction::Mean,
            Some("model") => LeafPrediction::Model,
            Some("adaptive") => LeafPrediction::Adaptive,
            Some(other) => {
                return Err(invalid(
                    "leaf-prediction",
                    other,
                    "'mean', 'model' or 'adaptive'",
                ))
            }
        };
        if let Some(v) = options.get("model-selector-decay") {
            if leaf_prediction != LeafPrediction::Adaptive {
                return Err(invalid(
                    "model-selector-decay",
                    v,
                    "it is read only with 'leaf-prediction' = 'adaptive'",
                ));
            }
        }
        let model_selector_decay = number(options, "model-selector-decay", d.model_selector_decay)?;
        if model_selector_decay > 1.0 {
            return Err(invalid(
                "model-selector-decay",
                &options["model-selector-decay"],
                "a number from 0 to 1",
            ));
        }
        Ok(TreeSpec {
            grace_period,
            delta,
            tau: number(options, "tau", d.tau)?,
            max_depth,
            min_samples_split: unsigned(options, "min-samples-split", d.min_samples_split)?,
            leaf_prediction,
            model_selector_decay,
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
        let mut ada = opts(&base);
        ada.insert("optimizer".into(), "adagrad".into());
        ada.insert("adagrad.eps".into(), "0".into());
        assert!(ModelSpec::from_options(&ada)
            .unwrap_err()
            .to_string()
            .contains("above 0"));
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

    #[test]
    fn the_hoeffding_tree_takes_rivers_defaults_and_only_its_own_options() {
        let base = [
            ("provider", "online"),
            ("algorithm", "hoeffding_tree_regressor"),
            ("label", "units"),
        ];
        let parse = |extra: &[(&str, &str)]| {
            let mut o = opts(&base);
            for (k, v) in extra {
                o.insert(k.to_string(), v.to_string());
            }
            ModelSpec::from_options(&o).map(|s| match s.provider {
                Provider::Online(o) => o,
                Provider::Onnx(_) => panic!("online"),
            })
        };
        let o = parse(&[]).unwrap();
        assert_eq!(o.algorithm, Algorithm::HoeffdingTreeRegressor);
        assert!(!o.algorithm.classifies() && !o.algorithm.is_linear());
        assert_eq!(o.tree, TreeSpec::default());
        assert_eq!(
            (
                o.tree.grace_period,
                o.tree.delta,
                o.tree.tau,
                o.tree.max_depth
            ),
            (200, 1e-7, 0.05, None)
        );
        assert_eq!(o.tree.min_samples_split, 5);
        assert_eq!(o.tree.leaf_prediction, LeafPrediction::Adaptive);
        assert_eq!(o.tree.model_selector_decay, 0.95);
        let o = parse(&[
            ("grace-period", "50"),
            ("delta", "0.01"),
            ("tau", "0"),
            ("max-depth", "4"),
            ("min-samples-split", "10"),
            ("leaf-prediction", "MEAN"),
            ("task", "regression"),
        ])
        .unwrap();
        assert_eq!(
            o.tree,
            TreeSpec {
                grace_period: 50,
                delta: 0.01,
                tau: 0.0,
                max_depth: Some(4),
                min_samples_split: 10,
                leaf_prediction: LeafPrediction::Mean,
                model_selector_decay: 0.95,
            }
        );
        let err = |extra: &[(&str, &str)]| parse(extra).unwrap_err().to_string();
        for k in LINEAR_ONLY_KEYS {
            let e = err(&[(k, "1")]);
            assert!(
                e.contains(&format!("'{k}' = '1'")) && e.contains("'linear_regression'"),
                "{e}"
            );
        }
        assert!(err(&[("grace-period", "0")]).contains("'grace-period'"));
        assert!(err(&[("grace-period", "-5")]).contains("'grace-period'"));
        assert!(err(&[("delta", "0")]).contains("'delta'"));
        assert!(err(&[("delta", "1.5")]).contains("less than 1"));
        assert!(err(&[("max-depth", "deep")]).contains("'max-depth'"));
        assert!(err(&[("leaf-prediction", "median")]).contains("'mean', 'model' or 'adaptive'"));
        let e = err(&[("leaf-prediction", "mean"), ("model-selector-decay", "0.5")]);
        assert!(e.contains("'leaf-prediction' = 'adaptive'"), "{e}");
        assert!(err(&[("model-selector-decay", "2")]).contains("from 0 to 1"));
        assert!(err(&[("task", "classification")]).contains("regression"));
        // and the linear models refuse the tree's options
        for k in TREE_ONLY_KEYS {
            let mut o = opts(&[
                ("provider", "online"),
                ("algorithm", "linear_regression"),
                ("label", "y"),
            ]);
            o.insert(k.to_string(), "1".into());
            let e = ModelSpec::from_options(&o).unwrap_err().to_string();
            assert!(
                e.contains(&format!("'{k}'")) && e.contains("'hoeffding_tree_regressor'"),
                "{e}"
            );
        }
    }
}
