//! The `retail` connector: the built-in retail event generator as a source.
//!
//! `WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '42', …)` produces one of the
//! generator's four streams (`pos_sales`, `clickstream`, `inventory`, `promotions`); every model
//! parameter of `docs/generator.md` is an option of the same name. The table declares the columns it
//! wants, by name, from the stream's schema. `'pacing'` is `max` (as fast as possible, the
//! default), `realtime`, or `Nx` (N times faster than real time). Events the model delivers
//! malformed are bad records: written to `'dead-letter.path'` when set, else skipped and counted.

use crate::deadletter::DeadLetter;
use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use std::time::Instant;
use tillflow_retail::streams::{fill_columns, fill_row, write_json};
use tillflow_retail::{Config, Generator, Stream};
use tillflow_runtime::operator::{Poll, Sink, Source, SourceMetrics};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{Row, Schema};

/// The `retail` connector.
pub struct Retail;

const OPTIONS: &[OptionSpec] = &[req("stream"), opt("pacing")];

/// Builds a generator configuration from `key = value` options (the model's keys).
pub fn config_from(table: &TableSpec) -> std::result::Result<Config, ConnectorError> {
    let mut cfg = Config::default();
    for (k, v) in &table.options {
        if tillflow_retail::config::KEYS.contains(&k.as_str()) {
            cfg.set(k, v).map_err(|e| table.error(e.0))?;
        }
    }
    Ok(cfg)
}

impl Connector for Retail {
    fn name(&self) -> &'static str {
        "retail"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(RetailSource::new(table)?))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Err(table.error("the retail connector is a generator: it can only be read"))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        false
    }
}

/// Pacing of a generated stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// As fast as possible.
    Max,
    /// `speed` simulated seconds per wall-clock second.
    Speed(f64),
}

/// Reads a `'pacing'` value.
pub fn parse_pacing(v: &str) -> Option<Pacing> {
    match v.trim() {
        "max" | "" => Some(Pacing::Max),
        "realtime" => Some(Pacing::Speed(1.0)),
        x => x
            .strip_suffix('x')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| *n > 0.0)
            .map(Pacing::Speed),
    }
}

/// A generated stream as a source.
pub struct RetailSource {
    table: String,
    schema: Schema,
    stream: Stream,
    stream_schema: Schema,
    columns: Vec<usize>,
    generator: Generator,
    remaining: Option<u64>,
    /// The run's size: rows, or simulated time from `sim_start`.
    total_rows: Option<u64>,
    duration: Option<i64>,
    last_time: i64,
    pacing: Pacing,
    started: Instant,
    sim_start: i64,
    full: Row,
    pending: Option<tillflow_retail::Event>,
    /// Events taken from the generator and handled (the position a checkpoint records).
    consumed: u64,
    dead_letter: Option<DeadLetter>,
    text: String,
    metrics: SourceMetrics,
}

impl RetailSource {
    /// Builds the generator for the table's options and checks its columns.
    pub fn new(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let name = table.option("stream").unwrap_or_default();
        let stream = Stream::by_name(name).ok_or_else(|| {
            table.error(format!(
                "'stream' = '{name}' is not a generated stream (pos_sales, clickstream, inventory, promotions)"
            ))
        })?;
        let cfg = config_from(table)?;
        let pacing = parse_pacing(table.option("pacing").unwrap_or("max")).ok_or_else(|| {
            table.error("'pacing' must be 'max', 'realtime' or 'Nx' (e.g. '60x')")
        })?;
        let stream_schema = stream.schema();
        let mut columns = Vec::new();
        for f in &table.schema.fields {
            let Some(i) = stream_schema.index_of(&f.name) else {
                return Err(table.error(format!(
                    "column `{}` is not in the {} stream (columns: {})",
                    f.name,
                    stream.name(),
                    stream_schema.names()
                )));
            };
            let want = stream_schema.fields[i].data_type;
            if f.data_type != want {
                return Err(table.error(format!(
                    "column `{}` is {want} in the {} stream, not {}",
                    f.name,
                    stream.name(),
                    f.data_type
                )));
            }
            columns.push(i);
        }
        let dead_letter = match table.option("dead-letter.path") {
            Some(p) => Some(
                DeadLetter::open(p)
                    .map_err(|e| table.error(format!("option 'dead-letter.path' = '{p}': {e}")))?,
            ),
            None => None,
        };
        Ok(RetailSource {
            table: table.name.clone(),
            schema: table.schema.clone(),
            stream,
            stream_schema,
            columns,
            remaining: cfg.rows,
            total_rows: cfg.rows,
            duration: cfg.duration,
            last_time: cfg.start,
            sim_start: cfg.start,
            generator: Generator::new(cfg).only(&[stream]),
            pacing,
            started: Instant::now(),
            full: Row::with_capacity(12),
            pending: None,
            consumed: 0,
            dead_letter,
            text: String::new(),
            metrics: SourceMetrics::default(),
        })
    }
}

impl Source for RetailSource {
    fn describe(&self) -> String {
        format!("retail[{}] table `{}`", self.stream.name(), self.table)
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        loop {
            if self.remaining == Some(0) {
                return Ok(Poll::End);
            }
            let event = match self.pending.take() {
                Some(e) => e,
                None => match self.generator.next() {
                    Some(e) => e,
                    None => return Ok(Poll::End),
                },
            };
            if !self.stream.contains(&event) {
                self.consumed += 1;
                continue;
            }
            if let Pacing::Speed(speed) = self.pacing {
                let due = (event.time - self.sim_start) as f64 / 1e6 / speed;
                if self.started.elapsed().as_secs_f64() < due {
                    self.pending = Some(event);
                    return Ok(Poll::Idle);
                }
            }
            self.consumed += 1;
            if let Some(r) = self.remaining.as_mut() {
                *r -= 1;
            }
            if event.malformed {
                self.metrics.bad_records += 1;
                if let Some(d) = self.dead_letter.as_mut() {
                    fill_row(&event, &self.generator.catalog, &mut self.full);
                    self.text.clear();
                    write_json(&self.full, &self.stream_schema, true, &mut self.text);
                    let position =
                        format!("event at {}", tillflow_runtime::late::ts_text(event.time));
                    d.write(
                        &self.table,
                        "retail",
                        &position,
                        None,
                        "malformed record (generator disorder knob)",
                        self.text.trim_end().as_bytes(),
                    )
                    .and_then(|_| d.flush())
                    .map_err(|e| RuntimeError::Source(format!("dead-letter {}: {e}", d.path())))?;
                }
                continue;
            }
            self.last_time = event.time;
            // only the declared columns are computed, straight into the output row
            fill_columns(&event, &self.generator.catalog, &self.columns, row);
            self.metrics.records += 1;
            return Ok(Poll::Record);
        }
    }

    fn resumable(&self) -> bool {
        true
    }

    fn bounded(&self) -> bool {
        self.total_rows.is_some() || self.duration.is_some()
    }

    /// The number of generator events handled, the rows still to produce and the last event
    /// time: the generator is deterministic, so a fresh one skipping that many events stands
    /// where this one stood.
    fn snapshot_position(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.consumed.to_le_bytes());
        out.extend_from_slice(&self.remaining.map_or(u64::MAX, |r| r).to_le_bytes());
        out.extend_from_slice(&self.last_time.to_le_bytes());
        DeadLetter::snapshot(self.dead_letter.as_mut(), out)
    }

    fn restore_position(&mut self, input: &[u8]) -> Result<()> {
        let at = &mut 0;
        let consumed = tillflow_runtime::state::read_u64(input, at)?;
        let remaining = tillflow_runtime::state::read_u64(input, at)?;
        let last_time = tillflow_runtime::state::read_u64(input, at)? as i64;
        DeadLetter::restore(self.dead_letter.as_mut(), input, at)?;
        let cfg = self.generator.config().clone();
        self.generator = Generator::new(cfg).only(&[self.stream]);
        for _ in 0..consumed {
            if self.generator.next().is_none() {
                return Err(RuntimeError::Source(format!(
                    "table `{}`: the checkpoint is {consumed} events into a stream that is shorter (were the generator's options changed?)",
                    self.table
                )));
            }
        }
        self.consumed = consumed;
        self.pending = None;
        self.remaining = (remaining != u64::MAX).then_some(remaining);
        self.last_time = last_time;
        // paced runs go on at the pace from where they stood, not from the start
        if let Pacing::Speed(speed) = self.pacing {
            let due = (last_time - self.sim_start).max(0) as f64 / 1e6 / speed;
            self.started = Instant::now()
                .checked_sub(std::time::Duration::from_secs_f64(due))
                .unwrap_or_else(Instant::now);
        }
        Ok(())
    }

    fn progress(&self) -> Option<f64> {
        match (self.total_rows, self.remaining, self.duration) {
            (Some(total), Some(left), _) if total > 0 => Some(1.0 - left as f64 / total as f64),
            (_, _, Some(d)) if d > 0 => {
                Some(((self.last_time - self.sim_start) as f64 / d as f64).clamp(0.0, 1.0))
            }
            _ => None,
        }
    }

    fn metrics(&self) -> SourceMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{DataType, Field, Value};

    fn spec(opts: &[(&str, &str)], cols: Vec<Field>) -> TableSpec {
        TableSpec {
            name: "sales".into(),
            schema: Schema::new(cols),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    #[test]
    fn progress_runs_from_zero_to_one() {
        let t = spec(
            &[
                ("connector", "retail"),
                ("stream", "pos_sales"),
                ("rows", "100"),
            ],
            vec![Field::new("qty", DataType::Int)],
        );
        let mut s = RetailSource::new(&t).unwrap();
        assert_eq!(s.progress(), Some(0.0));
        let mut row = Row::default();
        for _ in 0..50 {
            row.clear();
            assert_eq!(s.poll(&mut row).unwrap(), Poll::Record);
        }
        assert_eq!(s.progress(), Some(0.5));
    }

    #[test]
    fn reads_the_declared_columns_of_a_stream() {
        let t = spec(
            &[
                ("connector", "retail"),
                ("stream", "pos_sales"),
                ("rows", "500"),
                ("seed", "3"),
            ],
            vec![
                Field::new("sku", DataType::String(None)),
                Field::new("qty", DataType::Int),
            ],
        );
        crate::validate(&t).unwrap();
        let mut src = RetailSource::new(&t).unwrap();
        let mut row = Row::default();
        let mut n = 0;
        while src.poll(&mut row).unwrap() == Poll::Record {
            n += 1;
            match (row.values[0], row.values[1]) {
                (Value::Str(s), Value::Int(q)) => {
                    assert!(row.str(s).starts_with("SKU-"));
                    assert!(q >= 1);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(n, 500);
        let bad = spec(
            &[("connector", "retail"), ("stream", "pos_sales")],
            vec![Field::new("price", DataType::Double)],
        );
        let e = RetailSource::new(&bad).err().unwrap().to_string();
        assert!(
            e.contains("`price` is not in the pos_sales stream") && e.contains("unit_price"),
            "{e}"
        );
        let e = crate::validate(&spec(
            &[("connector", "retail"), ("stream", "x"), ("zipf", "1")],
            vec![],
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("'zipf'"), "{e}");
        assert_eq!(parse_pacing("60x"), Some(Pacing::Speed(60.0)));
        assert_eq!(parse_pacing("fast"), None);
    }
}
