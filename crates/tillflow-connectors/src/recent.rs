//! The rows every result table has written since the HTTP API last looked.
//!
//! [`Recent`] wraps a sink: each row written is also copied (into reused rows: no allocation once
//! the buffer has grown, but for each new key of a keyed table between two reports) and passed
//! on. When the job reports, the rows copied since the previous
//! report are rendered as Flink JSON lines, with the row kind as `"op"` for changelogs, and the
//! buffer is emptied: the API server keeps the table's view from these (an append table's latest
//! rows, an updating table's current row per primary key). A table with a primary key keeps only
//! the latest change of each key between two reports; any other table at most [`KEEP`] rows (the
//! latest: a table written faster than that between two reports loses its oldest rows from the
//! API's view, never from the table).

use crate::format::json::JsonEncoder;
use crate::format::Encoder;
use crate::{ConnectorError, TableSpec};
use std::collections::HashMap;
use tillflow_runtime::operator::Sink;
use tillflow_runtime::Result;
use tillflow_types::{Row, RowKind};

/// How many rows of a table without a primary key are kept between two reports (the latest).
pub const KEEP: usize = 10_000;

/// A sink that remembers the rows written through it since it was last asked.
pub struct Recent {
    inner: Box<dyn Sink>,
    table: String,
    encoder: JsonEncoder,
    /// The rows since the last report: the first `len` (oldest first from `next` once all
    /// [`KEEP`] are in use: a ring); the rows beyond `len` are kept to be written over, so the
    /// copies allocate nothing once the buffer has grown.
    ring: Vec<Row>,
    len: usize,
    next: usize,
    /// A row's place in `ring` by its primary key (tables with one).
    by_key: HashMap<Vec<u8>, usize>,
    key_cols: Vec<usize>,
    key: Vec<u8>,
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
        let key_cols = table
            .primary_key
            .iter()
            .filter_map(|k| {
                table
                    .schema
                    .fields
                    .iter()
                    .position(|f| f.name.eq_ignore_ascii_case(k))
            })
            .collect();
        Ok(Recent {
            inner,
            table: table.name.clone(),
            encoder: JsonEncoder::new(&spec, "json")?,
            ring: Vec::new(),
            len: 0,
            next: 0,
            by_key: HashMap::new(),
            key_cols,
            key: Vec::new(),
            changelog: false,
        })
    }

    /// Copies `row` into the buffer: over the same key's earlier change, or as the next row.
    fn keep(&mut self, row: &Row) {
        if !self.key_cols.is_empty() {
            self.key.clear();
            for &c in &self.key_cols {
                if let Some(v) = row.values.get(c) {
                    tillflow_runtime::keys::encode_value(&mut self.key, *v, &row.heap);
                }
            }
            if let Some(&i) = self.by_key.get(&self.key) {
                self.ring[i].clone_from(row);
                return;
            }
            self.by_key.insert(self.key.clone(), self.len);
            self.push(row);
            return;
        }
        if self.len < KEEP {
            self.push(row);
        } else {
            self.ring[self.next].clone_from(row);
            self.next = (self.next + 1) % KEEP;
        }
    }

    /// Appends `row` after the first `len`, into a row kept from earlier when there is one.
    fn push(&mut self, row: &Row) {
        match self.ring.get_mut(self.len) {
            Some(slot) => slot.clone_from(row),
            None => self.ring.push(row.clone()),
        }
        self.len += 1;
    }
}

impl Sink for Recent {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        self.changelog |= row.kind != RowKind::Insert;
        self.keep(row);
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
        let n = self.len;
        let start = self.next;
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
        // handed over: the next report has only what comes after (the rows stay, to be reused)
        self.len = 0;
        self.next = 0;
        self.by_key.clear();
        Some(self.table.clone())
    }
}
