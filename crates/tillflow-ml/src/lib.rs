//! Models for `CREATE MODEL` and `ML_PREDICT`. This crate owns what a model computes, apart
//! from SQL and from the runtime: the typed configuration parsed from a model's `WITH` options
//! without I/O ([`spec`]), learners that learn on the stream one row at a time with river's
//! update rules ([`online`]: linear and logistic regression, and the Hoeffding tree regressor),
//! and their features ([`features`]). The runtime's `ML_PREDICT`
//! operator holds one learner per `PARTITION BY` key in keyed state and calls
//! [`online::Learner::predict`] then [`online::Learner::learn`] on each row (prequential:
//! every row is scored by the model as it was before the row).

pub mod features;
pub mod online;
pub mod onnx;
pub mod spec;
pub mod tree;

pub use spec::{
    Algorithm, LeafPrediction, ModelSpec, OnlineSpec, Optimizer, Provider, SpecError, TreeSpec,
};
