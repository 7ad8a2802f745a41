//! tillflow's retail event generator.
//!
//! One simulation of a retail chain produces four streams that agree with each other: POS sales
//! (receipt lines), e-commerce clickstream, inventory movements and promotions. The model is
//! written down in `docs/generator.md` and implemented here as stated: non-homogeneous Poisson
//! arrivals with diurnal and weekly seasonality, Zipf SKU popularity inside categories, a basket
//! size distribution, promotions whose discount lifts demand by a price elasticity, clickstream
//! sessions as a Markov chain, inventory depleted by sales and refilled by an (s, S) reorder policy,
//! an injectable trend and anomaly, and disorder knobs (out-of-order, late, duplicate and malformed
//! events). The same seed gives the same events.

pub mod config;
pub mod generator;
pub mod model;
pub mod streams;

pub use config::{Config, ConfigError};
pub use generator::{Event, Generator};
pub use streams::Stream;
