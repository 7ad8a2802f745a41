//! Late records: where window operators send the records they drop, with the reason.
//!
//! Dropping follows Flink (a record is late for a window only if that window has fired); beyond
//! Flink, a table can name a late-data output (`'late-data.path'`), and every dropped record is
//! written there instead of only being counted.

use crate::error::Result;
use std::sync::{Arc, Mutex};
use tillflow_types::Row;

/// Receives dropped records.
pub trait LateSink: Send {
    /// Records one dropped row (in the dropping operator's input layout) and why it was dropped.
    fn write_late(&mut self, row: &Row, reason: &str) -> Result<()>;
    /// Flushes buffered output.
    fn flush(&mut self) -> Result<()>;
}

/// A late-data output shared by the operators of one job.
pub type SharedLateSink = Arc<Mutex<dyn LateSink>>;

/// Sends a dropped row to `sink`, if there is one.
pub fn report(
    sink: &Option<SharedLateSink>,
    row: &Row,
    reason: impl FnOnce() -> String,
) -> Result<()> {
    if let Some(s) = sink {
        let mut guard = s
            .lock()
            .map_err(|_| crate::RuntimeError::Sink("late-data output poisoned".into()))?;
        guard.write_late(row, &reason())?;
    }
    Ok(())
}

/// Flushes `sink`, if there is one.
pub fn flush(sink: &Option<SharedLateSink>) -> Result<()> {
    if let Some(s) = sink {
        let mut guard = s
            .lock()
            .map_err(|_| crate::RuntimeError::Sink("late-data output poisoned".into()))?;
        guard.flush()?;
    }
    Ok(())
}

/// A timestamp (microseconds) as text, for reasons.
pub fn ts_text(t: i64) -> String {
    if t == i64::MIN {
        return "-inf".into();
    }
    let mut s = String::new();
    tillflow_types::temporal::write_timestamp_json(&mut s, t, false, false);
    s
}
