//! The runtime's error type.

use thiserror::Error;

/// An error raised while a job runs.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// An expression could not be evaluated for a record (division by zero, bad cast, ...).
    #[error("{0}")]
    Eval(String),
    /// A source could not read or decode its input.
    #[error("{0}")]
    Source(String),
    /// A sink could not write its output.
    #[error("{0}")]
    Sink(String),
    /// Operator state could not be restored.
    #[error("state: {0}")]
    State(String),
    /// A checkpoint could not be written, read or used (the message names it and says why).
    #[error("{0}")]
    Checkpoint(String),
    /// A worker of a parallel job failed (the message names the worker and the fault).
    #[error("{0}")]
    Worker(String),
}

/// Result alias for the runtime.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
