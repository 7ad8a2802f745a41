//! The dead-letter output: malformed records, with where they came from and why they were rejected.
//!
//! Configured per table with `'dead-letter.path' = 'file'`; each rejected record becomes one NDJSON
//! line `{"table", "source", "position", "field", "error", "raw"}`.

use crate::ConnectorError;
use std::fs::File;
use std::io::{BufWriter, Write};

/// Appends rejected records to a file.
pub struct DeadLetter {
    path: String,
    out: BufWriter<File>,
    count: u64,
}

impl DeadLetter {
    /// Opens (creating or truncating) the dead-letter file.
    pub fn open(path: &str) -> Result<Self, ConnectorError> {
        let local = crate::local_path(path).map_err(|m| ConnectorError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        })?;
        let path = local.to_str().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| ConnectorError::Io {
                    path: parent.display().to_string(),
                    source: e,
                })?;
            }
        }
        let f = File::create(path).map_err(|e| ConnectorError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Ok(DeadLetter {
            path: path.to_owned(),
            out: BufWriter::new(f),
            count: 0,
        })
    }

    /// Records one rejected input.
    pub fn write(
        &mut self,
        table: &str,
        source: &str,
        position: &str,
        field: Option<&str>,
        error: &str,
        raw: &[u8],
    ) -> std::io::Result<()> {
        let line = serde_json::json!({
            "table": table,
            "source": source,
            "position": position,
            "field": field,
            "error": error,
            "raw": String::from_utf8_lossy(raw),
        });
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Flushes the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Where it writes.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records written.
    pub fn count(&self) -> u64 {
        self.count
    }
}
