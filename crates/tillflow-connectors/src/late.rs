//! The late-data file: records a window dropped as late, one NDJSON line each:
//! `{"table": …, "reason": …, "row": {…}}`, where `row` holds the values the window operator saw
//! (its grouping keys, aggregate arguments and time attribute, named as in the query).

use crate::format::json::JsonEncoder;
use crate::format::text::write_json_string;
use crate::{ConnectorError, TableSpec};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use tillflow_runtime::late::{LateSink, SharedLateSink};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{Row, Schema};

/// Writes late records to a file, opened (and truncated) when the first one arrives.
pub struct LateFile {
    path: String,
    table: String,
    encoder: JsonEncoder,
    out: Option<BufWriter<File>>,
    line: String,
}

impl LateFile {
    /// A late-data file for records of `schema` dropped from queries over `table`.
    pub fn shared(
        path: &str,
        table: &str,
        schema: &Schema,
    ) -> std::result::Result<SharedLateSink, ConnectorError> {
        let spec = TableSpec {
            name: table.to_owned(),
            schema: schema.clone(),
            options: Default::default(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        };
        let local = crate::local_path(path).map_err(|m| ConnectorError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        })?;
        Ok(Arc::new(Mutex::new(LateFile {
            path: local.to_string_lossy().into_owned(),
            table: table.to_owned(),
            encoder: JsonEncoder::new(&spec, "json")?,
            out: None,
            line: String::new(),
        })))
    }
}

impl LateFile {
    /// The file cannot be created: the error names the table and the option.
    fn cannot(&self, e: std::io::Error) -> RuntimeError {
        RuntimeError::Sink(format!(
            "table `{}`: option 'late-data.path' = '{}': {e}",
            self.table, self.path
        ))
    }
}

impl LateSink for LateFile {
    fn write_late(&mut self, row: &Row, reason: &str) -> Result<()> {
        if self.out.is_none() {
            if let Some(parent) = std::path::Path::new(&self.path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|e| self.cannot(e))?;
            }
            let f = File::create(&self.path).map_err(|e| self.cannot(e))?;
            self.out = Some(BufWriter::new(f));
        }
        self.line.clear();
        self.line.push_str("{\"table\":");
        write_json_string(&mut self.line, &self.table);
        self.line.push_str(",\"reason\":");
        write_json_string(&mut self.line, reason);
        self.line.push_str(",\"row\":");
        let mut line = std::mem::take(&mut self.line);
        self.encoder.write_object(row, &mut line);
        line.push_str("}\n");
        self.line = line;
        if let Some(out) = self.out.as_mut() {
            out.write_all(self.line.as_bytes())
                .map_err(|e| RuntimeError::Sink(format!("late-data {}: {e}", self.path)))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.flush()
                .map_err(|e| RuntimeError::Sink(format!("late-data {}: {e}", self.path)))?;
        }
        Ok(())
    }
}
