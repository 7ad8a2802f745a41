//! tillflow's streaming runtime: typed expressions, aggregate accumulators, keyed state, the
//! operator/source/sink contracts and the operators themselves (calc, watermarks, windows, group
//! aggregation, Top-N), and the job loop that drives sources through pipelines.
//!
//! It knows nothing of SQL text or connectors: the SQL crate plans into these operators and the
//! connectors crate implements [`operator::Source`] and [`operator::Sink`].

pub mod agg;
pub mod cast;
pub mod checkpoint;
pub mod error;
pub mod exchange;
pub mod expr;
pub mod forecast;
pub mod functions;
pub mod job;
pub mod jregex;
pub mod json;
pub mod keys;
pub mod late;
pub mod nested_fn;
pub mod operator;
pub mod ops;
pub mod python;
pub mod state;
pub mod strfn;
pub mod ttl;
pub mod tzfn;
pub mod window;

pub use error::{Result, RuntimeError};

/// The stack of every thread that runs operators (a stage's workers, a source's decoding
/// threads): evaluating an expression recurses over it, and expressions may nest as deep as the
/// SQL front end allows (1,000 levels). Only the pages used are ever committed.
pub const WORKER_STACK: usize = 64 << 20;
