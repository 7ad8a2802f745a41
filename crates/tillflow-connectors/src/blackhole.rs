//! The `blackhole` connector: accepts every row and discards it (for benchmarks and tests).

use crate::{Connector, ConnectorError, OptionSpec, TableSpec};
use tillflow_runtime::operator::{Sink, Source};
use tillflow_runtime::Result;
use tillflow_types::Row;

/// The `blackhole` connector.
pub struct Blackhole;

impl Connector for Blackhole {
    fn name(&self) -> &'static str {
        "blackhole"
    }
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Err(table.error("the blackhole connector can only be written to"))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(BlackholeSink {
            table: table.name.clone(),
            rows: 0,
        }))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        true
    }
    fn sink_per_worker(&self, _table: &TableSpec) -> bool {
        true
    }
}

/// Counts rows and drops them.
pub struct BlackholeSink {
    table: String,
    rows: u64,
}

impl Sink for BlackholeSink {
    fn describe(&self) -> String {
        format!("blackhole table `{}`", self.table)
    }
    fn write(&mut self, row: &Row) -> Result<()> {
        std::hint::black_box(row);
        self.rows += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn rows_written(&self) -> u64 {
        self.rows
    }
}
