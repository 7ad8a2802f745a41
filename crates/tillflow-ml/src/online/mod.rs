//! Learners that learn on the stream, one row at a time, with river's update rules (river
//! 0.26), so the same rows in the same order give river's predictions.
//!
//! The linear models (`linear_model.LinearRegression` and `LogisticRegression` with
//! `optim.SGD` or `optim.AdaGrad`, [`linear`]):
//!
//! - the raw score is `Σ w_k·x_k + b` over the row's features (an absent feature counts 0);
//! - learning a row computes the loss gradient `g` at that score (squared loss `2(z − y)`;
//!   log loss as river's `optim.losses.Log`), clips it to ±`clip-gradient`, and moves the
//!   intercept by `intercept-learning-rate · g` and each present feature's weight by the
//!   optimizer's step on `x_k·g + l2·w_k` (L2 only on the features of the row, as river);
//! - SGD steps by `lr·grad`; AdaGrad adds `grad²` to the feature's sum `G` and steps by
//!   `lr / sqrt(G + eps) · grad`.
//!
//! The Hoeffding tree regressor (`tree.HoeffdingTreeRegressor`, [`hoeffding`]) grows a
//! regression tree on the stream; its leaves' records of the features are `ebst`'s, its
//! label statistics `stats`'s.
//!
//! A learner is a plain value: the runtime keeps one per `PARTITION BY` key in keyed state,
//! written with [`Learner::encode`] (every float as its bits, so a restore predicts exactly as
//! before).

mod ebst;
pub mod hoeffding;
pub mod linear;
mod stats;

pub use hoeffding::HoeffdingTree;
pub use linear::{Linear, LinearParams};

use crate::features::Features;
use crate::spec::{Algorithm, OnlineSpec};

/// What a learner says of a row before learning from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The regression's value, or the classifier's P(true).
    pub value: f64,
    /// Rows learned before this one.
    pub learned: u64,
}

/// A learner's state could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a model's learned state does not read: {0}")]
pub struct DecodeError(pub String);

/// An online learner (one per key).
#[derive(Debug, Clone, PartialEq)]
pub enum Learner {
    /// Linear or logistic regression.
    Linear(Linear),
    /// A Hoeffding tree regressor.
    HoeffdingTree(HoeffdingTree),
}

impl Learner {
    /// A learner that has learned nothing, for rows of `slots` numeric features.
    pub fn new(spec: &OnlineSpec, slots: usize) -> Learner {
        match spec.algorithm {
            Algorithm::LinearRegression | Algorithm::LogisticRegression => {
                Learner::Linear(Linear::new(spec, slots))
            }
            Algorithm::HoeffdingTreeRegressor => {
                Learner::HoeffdingTree(HoeffdingTree::new(&spec.tree, slots))
            }
        }
    }

    /// The prediction for `x`.
    pub fn predict(&self, spec: &OnlineSpec, x: &Features) -> Prediction {
        match self {
            Learner::Linear(l) => l.predict(spec, x),
            Learner::HoeffdingTree(t) => t.predict(x),
        }
    }

    /// Learns from `x` with label `y` (for a classifier, 1.0 is true and 0.0 false).
    pub fn learn(&mut self, spec: &OnlineSpec, x: &Features, y: f64) {
        match self {
            Learner::Linear(l) => l.learn(spec, x, y),
            Learner::HoeffdingTree(t) => t.learn(&spec.tree, x, y),
        }
    }

    /// The numeric features the learner reads (its model's INPUT had as many).
    pub fn slots(&self) -> usize {
        match self {
            Learner::Linear(l) => l.slots(),
            Learner::HoeffdingTree(t) => t.slots(),
        }
    }

    /// Rows learned.
    pub fn learned(&self) -> u64 {
        match self {
            Learner::Linear(l) => l.learned,
            Learner::HoeffdingTree(t) => t.learned,
        }
    }

    /// Appends the learner's state to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Learner::Linear(l) => {
                out.push(1);
                l.encode(out);
            }
            Learner::HoeffdingTree(t) => {
                out.push(2);
                t.encode(out);
            }
        }
    }

    /// Reads a learner written by [`Learner::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Learner, DecodeError> {
        match bytes.split_first() {
            Some((1, rest)) => Ok(Learner::Linear(Linear::decode(rest)?)),
            Some((2, rest)) => Ok(Learner::HoeffdingTree(HoeffdingTree::decode(rest)?)),
            Some((v, _)) => Err(DecodeError(format!("unknown learner kind {v}"))),
            None => Err(DecodeError("empty".into())),
        }
    }
}

/// A little-endian reader over a learner's bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self
            .bytes
            .get(self.at..self.at + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| DecodeError(format!("truncated at byte {}", self.at)))?;
        self.at += N;
        Ok(b)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }

    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{} bytes left over",
                self.bytes.len() - self.at
            )))
        }
    }
}
