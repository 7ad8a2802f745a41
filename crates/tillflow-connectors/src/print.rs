//! The `print` connector: every row to standard output (or error) as Flink prints it, `+I[a, b]`,
//! optionally prefixed by `'print-identifier'`.

use crate::{opt, Connector, ConnectorError, OptionSpec, TableSpec};
use std::io::Write;
use tillflow_runtime::cast::write_text;
use tillflow_runtime::operator::{Sink, Source};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, Value};

/// The `print` connector.
pub struct Print;

const OPTIONS: &[OptionSpec] = &[
    opt("print-identifier"),
    opt("standard-error"),
    opt("sink.parallelism"),
];

impl Connector for Print {
    fn name(&self) -> &'static str {
        "print"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Err(table.error("the print connector can only be written to"))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(PrintSink {
            table: table.name.clone(),
            prefix: table
                .option("print-identifier")
                .map(|p| format!("{p}> "))
                .unwrap_or_default(),
            stderr: table.bool_option("standard-error", false)?,
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            line: String::new(),
            rows: 0,
        }))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        true
    }
}

/// Writes rows as text lines.
pub struct PrintSink {
    table: String,
    prefix: String,
    stderr: bool,
    types: Vec<DataType>,
    line: String,
    rows: u64,
}

impl PrintSink {
    /// Formats a row as Flink's print connector does (`+I[1, a]`).
    pub fn format_row(&mut self, row: &Row) -> &str {
        self.line.clear();
        self.line.push_str(&self.prefix);
        self.line.push_str(row.kind.short());
        self.line.push('[');
        for (i, ty) in self.types.iter().enumerate() {
            if i > 0 {
                self.line.push_str(", ");
            }
            match row.values.get(i).copied().unwrap_or(Value::Null) {
                Value::Null => self.line.push_str("NULL"),
                v => write_text(&mut self.line, v, *ty, &row.heap),
            }
        }
        self.line.push_str("]\n");
        &self.line
    }
}

impl Sink for PrintSink {
    fn describe(&self) -> String {
        format!("print table `{}`", self.table)
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        let stderr = self.stderr;
        let line = self.format_row(row).as_bytes();
        let res = if stderr {
            std::io::stderr().lock().write_all(line)
        } else {
            std::io::stdout().lock().write_all(line)
        };
        res.map_err(|e| RuntimeError::Sink(format!("print: {e}")))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        std::io::stdout()
            .flush()
            .map_err(|e| RuntimeError::Sink(format!("print: {e}")))
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }
}
