//! The `datagen` connector with Flink's options: `rows-per-second`, `number-of-rows`, and per field
//! `fields.<name>.kind` = `random` (`min`, `max`, `length`, `max-past`, `null-rate`) or `sequence`
//! (`start`, `end`; the source ends when a sequence is exhausted).

use crate::{opt, Connector, ConnectorError, OptionSpec, TableSpec};
use std::time::Instant;
use tillflow_runtime::operator::{Poll, Sink, Source, SourceMetrics};
use tillflow_runtime::Result;
use tillflow_types::temporal::MICROS_PER_MILLI;
use tillflow_types::value::push_str;
use tillflow_types::{DataType, Row, Schema, Value};

/// The longest string `fields.<name>.length` may ask for: 1 Mi characters (a billion would
/// exhaust memory on the first row).
const MAX_LENGTH: i64 = 1 << 20;

/// The `datagen` connector.
pub struct DataGen;

const OPTIONS: &[OptionSpec] = &[opt("rows-per-second"), opt("number-of-rows"), opt("seed")];
const FIELD_OPTIONS: &[&str] = &[
    "kind",
    "min",
    "max",
    "max-past",
    "length",
    "var-len",
    "start",
    "end",
    "null-rate",
];

impl Connector for DataGen {
    fn name(&self) -> &'static str {
        "datagen"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(DataGenSource::new(table)?))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Err(table.error("the datagen connector can only be read"))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        false
    }
}

#[derive(Debug)]
enum Gen {
    Random {
        min: f64,
        max: f64,
        length: usize,
        max_past_ms: i64,
        null_rate: f64,
    },
    Sequence {
        next: i64,
        end: i64,
    },
}

/// SplitMix64: a small, fast, well-distributed generator (deterministic with `seed`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Generates rows per the `fields.*` options.
pub struct DataGenSource {
    table: String,
    schema: Schema,
    gens: Vec<Gen>,
    rows_per_second: f64,
    remaining: Option<u64>,
    emitted: u64,
    started: Instant,
    rng: Rng,
    metrics: SourceMetrics,
}

impl DataGenSource {
    /// Builds the generator, validating each field's options.
    pub fn new(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        for key in table.options.keys().filter(|k| k.starts_with("fields.")) {
            let rest = &key["fields.".len()..];
            let (field, what) = rest.rsplit_once('.').unwrap_or((rest, ""));
            if table.schema.index_of(field).is_none() {
                return Err(table.error(format!(
                    "option '{key}' names no column (columns: {})",
                    table.schema.names()
                )));
            }
            if !FIELD_OPTIONS.contains(&what) {
                return Err(table.error(format!(
                    "unsupported option '{key}'. Field options: fields.<name>.{{{}}}",
                    FIELD_OPTIONS.join(",")
                )));
            }
        }
        let num = |k: &str, d: f64| -> std::result::Result<f64, ConnectorError> {
            match table.option(k) {
                None => Ok(d),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| table.error(format!("option '{k}' must be a number, got '{v}'"))),
            }
        };
        let mut gens = Vec::new();
        for f in &table.schema.fields {
            let p = format!("fields.{}", f.name);
            let kind = table.option(&format!("{p}.kind")).unwrap_or("random");
            let (dmin, dmax) = match f.data_type {
                DataType::TinyInt => (i8::MIN as f64, i8::MAX as f64),
                DataType::SmallInt => (i16::MIN as f64, i16::MAX as f64),
                DataType::Int => (i32::MIN as f64, i32::MAX as f64),
                DataType::BigInt => (i64::MIN as f64, i64::MAX as f64),
                _ => (f32::MIN as f64, f32::MAX as f64),
            };
            gens.push(match kind {
                "sequence" => {
                    let start = table.int_option(&format!("{p}.start"), 0)?;
                    let end = table.int_option(&format!("{p}.end"), i64::MAX)?;
                    if !f.data_type.is_integer() && !f.data_type.is_string() {
                        return Err(table.error(format!(
                            "column `{}`: sequence needs an integer or string column",
                            f.name
                        )));
                    }
                    Gen::Sequence { next: start, end }
                }
                "random" => Gen::Random {
                    min: num(&format!("{p}.min"), dmin)?,
                    max: num(&format!("{p}.max"), dmax)?,
                    length: {
                        let length = table.int_option(&format!("{p}.length"), 100)?.max(0);
                        if length > MAX_LENGTH {
                            return Err(table.error(format!(
                                "option '{p}.length' = {length} is more than the {MAX_LENGTH} characters a generated string may have (docs/limits.md)"
                            )));
                        }
                        length as usize
                    },
                    max_past_ms: table.int_option(&format!("{p}.max-past"), 0)?,
                    null_rate: num(&format!("{p}.null-rate"), 0.0)?,
                },
                other => {
                    return Err(table.error(format!(
                        "option '{p}.kind' must be 'random' or 'sequence', got '{other}'"
                    )))
                }
            });
        }
        let n = table
            .option("number-of-rows")
            .map(|_| table.int_option("number-of-rows", 0))
            .transpose()?;
        Ok(DataGenSource {
            table: table.name.clone(),
            schema: table.schema.clone(),
            gens,
            rows_per_second: num("rows-per-second", 10_000.0)?,
            remaining: n.map(|n| n.max(0) as u64),
            emitted: 0,
            started: Instant::now(),
            rng: Rng(table.int_option("seed", 0x5eed)? as u64),
            metrics: SourceMetrics::default(),
        })
    }
}

impl Source for DataGenSource {
    fn describe(&self) -> String {
        format!(
            "datagen table `{}` ({} rows/s)",
            self.table, self.rows_per_second
        )
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        if self.remaining == Some(0) {
            return Ok(Poll::End);
        }
        if self.rows_per_second > 0.0 {
            let due = self.started.elapsed().as_secs_f64() * self.rows_per_second;
            if (self.emitted as f64) >= due.max(1.0) {
                return Ok(Poll::Idle);
            }
        }
        row.clear();
        for (f, g) in self.schema.fields.iter().zip(self.gens.iter_mut()) {
            let v = match g {
                Gen::Sequence { next, end } => {
                    if *next > *end {
                        return Ok(Poll::End);
                    }
                    let v = *next;
                    *next += 1;
                    if f.data_type.is_string() {
                        Value::Str(push_str(&mut row.heap, &v.to_string()))
                    } else {
                        Value::Int(v)
                    }
                }
                Gen::Random {
                    min,
                    max,
                    length,
                    max_past_ms,
                    null_rate,
                } => {
                    if *null_rate > 0.0 && self.rng.unit() < *null_rate {
                        row.values.push(Value::Null);
                        continue;
                    }
                    let u = self.rng.unit();
                    match f.data_type {
                        t if t.is_integer() => {
                            let span = (*max - *min).max(0.0);
                            Value::Int((*min + (u * (span + 1.0)).floor()).min(*max) as i64)
                        }
                        DataType::Float | DataType::Double => {
                            Value::Float(*min + u * (*max - *min))
                        }
                        DataType::Decimal(_, s) => Value::Decimal(
                            ((*min + u * (*max - *min)) * 10f64.powi(s as i32)) as i128,
                        ),
                        DataType::Boolean => Value::Bool(u < 0.5),
                        DataType::String(_) => {
                            let start = row.heap.len();
                            for _ in 0..*length {
                                let c = b"0123456789abcdef"[(self.rng.next() & 15) as usize];
                                row.heap.push(c);
                            }
                            Value::Str(tillflow_types::StrRef {
                                off: start as u32,
                                len: *length as u32,
                            })
                        }
                        DataType::Timestamp(_) | DataType::TimestampLtz(_) => {
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_millis() as i64)
                                .unwrap_or(0);
                            let past = if *max_past_ms > 0 {
                                (u * *max_past_ms as f64) as i64
                            } else {
                                0
                            };
                            Value::Timestamp((now - past) * MICROS_PER_MILLI)
                        }
                        DataType::Date => Value::Date((u * 20_000.0) as i32),
                        _ => Value::Null,
                    }
                }
            };
            row.values.push(v);
        }
        self.emitted += 1;
        self.metrics.records += 1;
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        Ok(Poll::Record)
    }

    fn metrics(&self) -> SourceMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Field;

    fn table(opts: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "gen".into(),
            schema: Schema::new(vec![
                Field::new("id", DataType::BigInt),
                Field::new("qty", DataType::Int),
                Field::new("name", DataType::String(None)),
            ]),
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
    fn sequences_end_and_random_values_stay_in_range() {
        let t = table(&[
            ("connector", "datagen"),
            ("rows-per-second", "0"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "50"),
            ("fields.qty.min", "1"),
            ("fields.qty.max", "5"),
            ("fields.name.length", "4"),
        ]);
        crate::validate(&t).unwrap();
        let mut src = DataGenSource::new(&t).unwrap();
        let mut row = Row::default();
        let mut n = 0;
        while src.poll(&mut row).unwrap() == Poll::Record {
            n += 1;
            assert_eq!(row.values[0], Value::Int(n));
            match row.values[1] {
                Value::Int(q) => assert!((1..=5).contains(&q), "{q}"),
                ref v => panic!("{v:?}"),
            }
            match row.values[2] {
                Value::Str(s) => assert_eq!(row.str(s).len(), 4),
                ref v => panic!("{v:?}"),
            }
        }
        assert_eq!(n, 50);
    }

    #[test]
    fn bad_field_options_are_named() {
        let e = DataGenSource::new(&table(&[
            ("connector", "datagen"),
            ("fields.nope.kind", "random"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("fields.nope.kind") && e.contains("id, qty, name"),
            "{e}"
        );
        let e = DataGenSource::new(&table(&[
            ("connector", "datagen"),
            ("fields.id.kind", "zigzag"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("'random' or 'sequence'"), "{e}");
    }
}
