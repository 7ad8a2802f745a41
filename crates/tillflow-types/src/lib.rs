//! Data types, values, rows and the text forms of values shared by every tillflow crate.
//!
//! This crate owns the in-memory representation of a record: a [`Row`] is a vector of small,
//! copyable [`Value`]s plus a byte heap that holds the row's strings, so that decoding, evaluating
//! and encoding a record reuses buffers instead of allocating. It also owns Flink's SQL types
//! ([`DataType`]), table schemas ([`Schema`]) and the exact text forms Flink uses for timestamps
//! and floating-point numbers ([`temporal`], [`javafmt`]).

pub mod datatype;
pub mod javafmt;
pub mod map;
pub mod nested;
pub mod schema;
pub mod temporal;
pub mod units;
pub mod value;

pub use datatype::{DataType, RowType};
pub use schema::{Field, Schema, TimeAttribute};
pub use value::{Row, RowKind, StrRef, Value};
