//! The latest rows of every result table, kept for the HTTP API.
//!
//! [`Recent`] wraps a sink: each row written is also copied into a ring of the last
//! [`KEEP`] rows (into reused rows: no allocation once the ring is full) and passed on. On request
//! the ring is rendered as Flink JSON lines, with the row kind as `"op"` for changelogs.

use crate::format::json::JsonEncoder;
use crate::format::Encoder;
use crate::{ConnectorError, TableSpec};
use tillflow_runtime::operator::Sink;
use tillflow_runtime::Result;
use tillflow_types::{Row, RowKind};

/// How many rows are kept per table.
pub const KEEP: usize = 100;

/// A sink that remembers the last rows written through it.
pub struct Recent {
    inner: Box<dyn Sink>,
    table: String,
    encoder: JsonEncoder,
    ring: Vec<Row>,
    next: usize,
    changelog: bool,
}

impl Recent {
    /// Wraps `inner`, the sink of `table`.
    pub fn new(
        inner: Box<dyn Sink>,
        table: &TableSpec,
    ) -> std::result::Result<Self, ConnectorError> {
        let mut spec = table.clone();
        spec.options.clear();
        Ok(Recent {
            inner,
            table: table.name.clone(),
            encoder: JsonEncoder::new(&spec, "json")?,
            ring: Vec::with_capacity(KEEP),
            next: 0,
            changelog: false,
        })
    }
}

impl Sink for Recent {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        self.changelog |= row.kind != RowKind::Insert;
        if self.ring.len() < KEEP {
            self.ring.push(row.clone());
        } else {
            self.ring[self.next].clone_from(row);
        }
        self.next = (self.next + 1) % KEEP;
        self.inner.write(row)
    }

    fn watermark(&mut self, wm: i64) -> Result<()> {
        self.inner.watermark(wm)
    }

    fn finish(&mut self) -> Result<()> {
        self.inner.finish()
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }

    fn rows_written(&self) -> u64 {
        self.inner.rows_written()
    }

    fn prepare_checkpoint(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.inner.prepare_checkpoint(out)
    }

    fn commit_checkpoint(&mut self, run: u64, id: u64) -> Result<()> {
        self.inner.commit_checkpoint(run, id)
    }

    fn restore_checkpoint(&mut self, run: u64, id: u64, input: &[u8]) -> Result<()> {
        self.inner.restore_checkpoint(run, id, input)
    }

    fn restore_checkpoint_from(
        &mut self,
        writer: &str,
        run: u64,
        id: u64,
        input: &[u8],
    ) -> Result<()> {
        self.inner.restore_checkpoint_from(writer, run, id, input)
    }

    fn end_of_job(&mut self) -> Result<()> {
        self.inner.end_of_job()
    }

    fn checkpoint_obstacle(&self) -> Option<String> {
        self.inner.checkpoint_obstacle()
    }

    fn wrapped_mut(&mut self) -> Option<&mut Box<dyn Sink>> {
        Some(&mut self.inner)
    }

    fn recent_rows(&mut self, out: &mut Vec<String>) -> Option<String> {
        let n = self.ring.len();
        let start = if n < KEEP { 0 } else { self.next };
        let mut buf = Vec::new();
        for i in 0..n {
            let row = &self.ring[(start + i) % n.max(1)];
            buf.clear();
            if self.encoder.encode(row, &mut buf).is_err() {
                continue;
            }
            let mut line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            if self.changelog && line.starts_with('{') {
                line.insert_str(1, &format!("\"op\":\"{}\",", row.kind.short()));
            }
            out.push(line);
        }
        Some(self.table.clone())
    }
}
