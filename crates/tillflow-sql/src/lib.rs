//! tillflow's Flink SQL front end: it reads a script, keeps the catalog of tables and views,
//! plans each query into runtime operators, and assembles the job that runs the script's INSERTs.

pub mod catalog;
pub mod config;
pub mod error;
pub mod expr;
pub mod json;
pub mod limits;
pub mod model;
pub mod nested;
pub mod paths;
pub mod physical;
pub mod plan;
pub mod planner;
pub mod scale_out;
pub mod script;
pub mod session;
pub mod state_backend;
pub mod statements;
pub mod types;
pub mod udf;

pub use error::{Result, SqlError};
