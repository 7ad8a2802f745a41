//! The SQL front end's error type: every message names the statement (by its first line) and,
//! where it can, the table, column and position.

use thiserror::Error;
use tillflow_connectors::ConnectorError;

/// An error in a SQL script.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The text does not parse.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line in the script.
        line: u64,
        /// What the parser expected.
        message: String,
    },
    /// The statement parses but cannot be planned (unknown name, bad type, unsupported construct).
    #[error("{0}")]
    Plan(String),
    /// A table's connector options are wrong.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A `${VAR}` has no value.
    #[error("variable ${{{0}}} is not set: pass --var {0}=VALUE or set it in the environment")]
    MissingVariable(String),
}

/// Result alias for the SQL front end.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// A planning error.
pub fn plan_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(SqlError::Plan(msg.into()))
}
