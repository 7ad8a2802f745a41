//! Flink's `debezium-json` format (writing): every change as `{"before":…,"after":…,"op":…}`.
//!
//! As Flink writes it: `+I` and `+U` become `op: "c"` with `after`; `-U` and `-D` become
//! `op: "d"` with `before`. This is how an updating result (a non-windowed GROUP BY) reaches a file
//! or a topic so that a consumer can replay it.

use super::json::JsonEncoder;
use super::Encoder;
use crate::{ConnectorError, TableSpec};
use tillflow_types::{Row, RowKind};

/// Encoder for `debezium-json`.
pub struct DebeziumEncoder {
    inner: JsonEncoder,
    line: String,
}

impl DebeziumEncoder {
    /// An encoder for the table's columns and `debezium-json.*` options.
    pub fn new(table: &TableSpec) -> Result<Self, ConnectorError> {
        if table.bool_option("debezium-json.schema-include", false)? {
            return Err(table
                .error("'debezium-json.schema-include' = 'true' is not supported when writing"));
        }
        Ok(DebeziumEncoder {
            inner: JsonEncoder::new(table, "debezium-json")?,
            line: String::with_capacity(256),
        })
    }
}

impl Encoder for DebeziumEncoder {
    fn encode(&mut self, row: &Row, out: &mut Vec<u8>) -> Result<(), String> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match row.kind {
            RowKind::Insert | RowKind::UpdateAfter => {
                line.push_str("{\"before\":null,\"after\":");
                self.inner.write_object(row, &mut line);
                line.push_str(",\"op\":\"c\"}\n");
            }
            RowKind::UpdateBefore | RowKind::Delete => {
                line.push_str("{\"before\":");
                self.inner.write_object(row, &mut line);
                line.push_str(",\"after\":null,\"op\":\"d\"}\n");
            }
        }
        out.extend_from_slice(line.as_bytes());
        self.line = line;
        Ok(())
    }

    fn accepts_changes(&self) -> bool {
        true
    }
}

/// The `debezium-json` format in the registry (written only).
pub struct DebeziumJsonFormat;

/// The registry's `debezium-json`.
pub static DEBEZIUM_JSON: DebeziumJsonFormat = DebeziumJsonFormat;

impl super::Format for DebeziumJsonFormat {
    fn name(&self) -> &'static str {
        "debezium-json"
    }
    fn options(&self) -> &'static [crate::OptionSpec] {
        super::DEBEZIUM_OPTIONS
    }
    fn check(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        DebeziumEncoder::new(table).map(drop)
    }
    fn decoder(&self, table: &TableSpec) -> Result<Box<dyn super::Decoder>, ConnectorError> {
        Err(table.error("format 'debezium-json' can only be written by tillflow so far"))
    }
    fn encoder(&self, table: &TableSpec) -> Result<Box<dyn super::Encoder>, ConnectorError> {
        Ok(Box::new(DebeziumEncoder::new(table)?))
    }
    fn accepts_changes(&self) -> bool {
        true
    }
}
