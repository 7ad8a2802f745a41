//! The dead-letter output: malformed records, with where they came from and why they were rejected.
//!
//! Configured per table with `'dead-letter.path' = 'file'`; each rejected record becomes one NDJSON
//! line `{"table", "source", "position", "field", "error", "raw"}`.
//!
//! The file follows the source's checkpoints: a source's position holds the file's length, made
//! durable first ([`DeadLetter::snapshot`]), and a job resumed from it cuts the file back to that
//! length ([`DeadLetter::restore`]), so each rejected record is in it once, as each good record
//! reaches the sinks once. A fresh run starts the file empty, at its first write or at the end.

use crate::ConnectorError;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use tillflow_runtime::{Result, RuntimeError};

/// Appends rejected records to a file.
pub struct DeadLetter {
    path: String,
    out: BufWriter<File>,
    count: u64,
    /// Bytes written (the file's length once flushed).
    written: u64,
    /// Whether the file is still to be emptied (a fresh run, before its first write).
    fresh: bool,
}

/// The length a position records when the source has no dead-letter file.
const NONE: u64 = u64::MAX;

impl DeadLetter {
    /// Opens (creating it if need be) the dead-letter file; a fresh run empties it at its first
    /// write or flush, a resumed one ([`DeadLetter::restore`]) keeps what its checkpoint holds.
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
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| ConnectorError::Io {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(DeadLetter {
            path: path.to_owned(),
            out: BufWriter::new(f),
            count: 0,
            written: 0,
            fresh: true,
        })
    }

    /// Empties the file before a fresh run's first write.
    fn begin(&mut self) -> std::io::Result<()> {
        if self.fresh {
            self.fresh = false;
            self.out.get_ref().set_len(0)?;
            self.out.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }

    /// Appends the file's length to a source's position, after flushing the file and syncing
    /// it to disk (a checkpoint must not hold a position past what survives a crash); a source
    /// without one appends a marker.
    pub fn snapshot(dead_letter: Option<&mut DeadLetter>, out: &mut Vec<u8>) -> Result<()> {
        let len = match dead_letter {
            None => NONE,
            Some(d) => {
                d.flush()
                    .and_then(|()| d.out.get_ref().sync_data())
                    .map_err(|e| RuntimeError::Source(format!("dead-letter {}: {e}", d.path)))?;
                d.written
            }
        };
        out.extend_from_slice(&len.to_le_bytes());
        Ok(())
    }

    /// Reads what [`DeadLetter::snapshot`] appended at `at` (nothing there: a checkpoint from
    /// before it was recorded, whose file is kept whole) and cuts the file back to it: the
    /// records rejected after the checkpoint are rejected again as the job reads them again.
    pub fn restore(
        dead_letter: Option<&mut DeadLetter>,
        input: &[u8],
        at: &mut usize,
    ) -> Result<()> {
        let len = if *at < input.len() {
            tillflow_runtime::state::read_u64(input, at)?
        } else {
            NONE
        };
        let Some(d) = dead_letter else {
            return Ok(());
        };
        let fail = |e: std::io::Error| RuntimeError::Source(format!("dead-letter {}: {e}", d.path));
        let f = d.out.get_ref();
        let on_disk = f.metadata().map_err(fail)?.len();
        let keep = if len == NONE {
            on_disk
        } else {
            len.min(on_disk)
        };
        f.set_len(keep).map_err(fail)?;
        d.out
            .seek(SeekFrom::Start(keep))
            .map_err(|e| RuntimeError::Source(format!("dead-letter {}: {e}", d.path)))?;
        d.written = keep;
        d.fresh = false;
        Ok(())
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
        self.begin()?;
        let line = serde_json::json!({
            "table": table,
            "source": source,
            "position": position,
            "field": field,
            "error": error,
            "raw": String::from_utf8_lossy(raw),
        });
        let text = serde_json::to_string(&line)?;
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.written += text.len() as u64 + 1;
        self.count += 1;
        Ok(())
    }

    /// Flushes the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.begin()?;
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
