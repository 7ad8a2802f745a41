//! The `collect` connector: the rows of a query handed to a reader in this process (the SQL
//! client's result view) instead of written anywhere. A reader opens a named channel
//! ([`open`]) and plans the query into a sink table with `'connector' = 'collect'` and
//! `'channel'` naming it; the sink sends its rows there in batches, each field already written
//! as Flink's print connector writes it, so the reader only lays them out.
//!
//! Rows are gathered into a batch (one text buffer, no allocation per row) and a batch is sent
//! when it holds [`BATCH_ROWS`] rows, when [`BATCH_AGE`] has passed since its first row, and at
//! every watermark, flush and the end. The channel is bounded: a reader that falls behind holds
//! the job back (backpressure), and a reader gone ends the job with an error saying so.

use crate::print::write_java_text;
use crate::{opt, Connector, ConnectorError, OptionSpec, TableSpec};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tillflow_runtime::operator::{Sink, Source};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, RowKind, Value};

/// The `collect` connector.
pub struct Collect;

const OPTIONS: &[OptionSpec] = &[opt("channel")];

/// Rows a batch holds at most before it is sent.
pub const BATCH_ROWS: usize = 256;
/// How long a batch's first row waits at most before the batch is sent (checked as rows come).
pub const BATCH_AGE: Duration = Duration::from_millis(50);
/// Batches a channel holds before the sink waits for its reader.
const CHANNEL_BATCHES: usize = 64;

/// The open channels, by name.
static CHANNELS: Mutex<BTreeMap<String, SyncSender<Batch>>> = Mutex::new(BTreeMap::new());

/// Opens the channel `name` (replacing one of that name) and returns its receiving end. Rows of
/// every sink writing to it arrive there until [`close`] and the end of the sinks.
pub fn open(name: &str) -> Receiver<Batch> {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_BATCHES);
    CHANNELS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_owned(), tx);
    rx
}

/// Closes the channel `name`: sinks made later refuse it, and the reader's receiver ends once
/// the sinks made before are gone.
pub fn close(name: &str) {
    CHANNELS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
}

/// Rows of a result, each field written as text ([`write_java_text`]: Flink's print form).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Fields per row.
    pub width: usize,
    /// Each row's kind.
    pub kinds: Vec<RowKind>,
    /// Every field's text, end to end.
    pub text: String,
    /// Where each field ends in `text` (`width` entries per row).
    pub ends: Vec<usize>,
}

impl Batch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// True when the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Field `col` of row `row` as text.
    pub fn field(&self, row: usize, col: usize) -> &str {
        let i = row * self.width + col;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..self.ends[i]).unwrap_or_default()
    }

    /// Row `row`'s fields as text.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> + '_ {
        (0..self.width).map(move |c| self.field(row, c))
    }
}

impl Connector for Collect {
    fn name(&self) -> &'static str {
        "collect"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Err(table.error("the collect connector can only be written to"))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        let name = table
            .option("channel")
            .ok_or_else(|| table.error("the collect connector needs 'channel'"))?;
        let tx = CHANNELS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| {
                table.error(format!(
                    "no reader waits on the collect channel '{}' (the collect connector serves the SQL client's results)",
                    crate::format::clip(name)
                ))
            })?;
        let types: Vec<DataType> = table.schema.fields.iter().map(|f| f.data_type).collect();
        Ok(Box::new(CollectSink {
            table: table.name.clone(),
            tx: Some(tx),
            batch: Batch {
                width: types.len(),
                ..Batch::default()
            },
            types,
            first: None,
            rows: 0,
        }))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        true
    }
}

/// A sink sending its rows to a collect channel.
struct CollectSink {
    table: String,
    tx: Option<SyncSender<Batch>>,
    types: Vec<DataType>,
    batch: Batch,
    /// When the batch's first row came.
    first: Option<Instant>,
    rows: u64,
}

impl CollectSink {
    fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.first = None;
        let full = std::mem::replace(
            &mut self.batch,
            Batch {
                width: self.types.len(),
                ..Batch::default()
            },
        );
        let gone = || RuntimeError::Sink(format!("the reader of `{}` has gone", self.table));
        // no sender (after finish) or a receiver dropped: the reader has gone
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(full).map_err(|_| gone())
    }
}

impl Sink for CollectSink {
    fn describe(&self) -> String {
        format!("collect table `{}`", self.table)
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        self.batch.kinds.push(row.kind);
        for (i, ty) in self.types.iter().enumerate() {
            write_java_text(
                &mut self.batch.text,
                row.values.get(i).copied().unwrap_or(Value::Null),
                *ty,
                &row.heap,
            );
            self.batch.ends.push(self.batch.text.len());
        }
        self.rows += 1;
        let first = *self.first.get_or_insert_with(Instant::now);
        if self.batch.len() >= BATCH_ROWS || first.elapsed() >= BATCH_AGE {
            self.send()?;
        }
        Ok(())
    }

    fn watermark(&mut self, _wm: i64) -> Result<()> {
        self.send()
    }

    fn flush(&mut self) -> Result<()> {
        self.send()
    }

    fn finish(&mut self) -> Result<()> {
        self.send()?;
        self.tx = None;
        Ok(())
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    fn spec(channel: &str) -> TableSpec {
        TableSpec {
            name: "r".into(),
            schema: Schema::new(vec![
                Field::new("id", DataType::BigInt),
                Field::new("name", DataType::String(None)),
            ]),
            options: [
                ("connector".to_string(), "collect".to_string()),
                ("channel".to_string(), channel.to_string()),
            ]
            .into_iter()
            .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    #[test]
    fn rows_reach_the_reader_as_printed_text_in_order() {
        let rx = open("t-order");
        let mut sink = Collect.sink(&spec("t-order")).unwrap();
        for i in 0..600i64 {
            let mut row = Row {
                kind: if i % 2 == 0 {
                    RowKind::Insert
                } else {
                    RowKind::UpdateAfter
                },
                ..Row::default()
            };
            row.values.push(Value::Int(i));
            let name = row.intern(&format!("n{i}"));
            row.values.push(Value::Str(name));
            sink.write(&row).unwrap();
        }
        sink.finish().unwrap();
        drop(sink);
        close("t-order");
        let mut seen = Vec::new();
        for batch in rx.iter() {
            assert!(batch.len() <= BATCH_ROWS);
            for r in 0..batch.len() {
                let fields: Vec<&str> = batch.row(r).collect();
                seen.push(format!("{}{:?}", batch.kinds[r].short(), fields));
            }
        }
        assert_eq!(seen.len(), 600);
        assert_eq!(seen[0], "+I[\"0\", \"n0\"]");
        assert_eq!(seen[599], "+U[\"599\", \"n599\"]");
    }

    #[test]
    fn a_channel_nobody_opened_is_refused_by_name() {
        let err = Collect.sink(&spec("t-nobody")).err().unwrap().to_string();
        assert!(
            err.contains("no reader waits on the collect channel 't-nobody'"),
            "{err}"
        );
    }

    #[test]
    fn a_reader_gone_fails_the_sink() {
        let rx = open("t-gone");
        let mut sink = Collect.sink(&spec("t-gone")).unwrap();
        close("t-gone");
        drop(rx);
        let mut row = Row::default();
        row.values.push(Value::Int(1));
        let name = row.intern("a");
        row.values.push(Value::Str(name));
        sink.write(&row).unwrap();
        let err = sink.flush().unwrap_err().to_string();
        assert!(err.contains("the reader of `r` has gone"), "{err}");
    }
}
