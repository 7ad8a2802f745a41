//! The `print` connector: every row to standard output (or error) as Flink prints it, `+I[a, b]`,
//! optionally prefixed by `'print-identifier'`. Values are written as Flink's print sink writes
//! them, which is Java's `toString` of each field: `null`, `true`, `2024-03-01T20:00:00.500`
//! (`LocalDateTime`), `2024-03-01T20:00:01Z` (`Instant`), `1.0E10`, `12.30`.

use crate::{opt, Connector, ConnectorError, OptionSpec, TableSpec};
use std::fmt::Write as _;
use std::io::Write;
use tillflow_runtime::cast::write_text;
use tillflow_runtime::operator::{Sink, Source};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::nested;
use tillflow_types::temporal::{split_micros, write_date_sql, MICROS_PER_SECOND};
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

/// Appends the fraction of a time of day as `java.time` prints it: nothing for whole seconds,
/// else 3, 6 or 9 digits.
fn java_fraction(out: &mut String, micros: i64) {
    if micros == 0 {
        return;
    }
    if micros % 1000 == 0 {
        let _ = write!(out, ".{:03}", micros / 1000);
    } else {
        let _ = write!(out, ".{micros:06}");
    }
}

/// Appends a time of day as `LocalTime.toString` does (`HH:mm`, `HH:mm:ss`, `HH:mm:ss.SSS`...).
fn java_time(out: &mut String, tod: i64, force_seconds: bool) {
    let secs = tod / MICROS_PER_SECOND;
    let micros = tod % MICROS_PER_SECOND;
    let _ = write!(out, "{:02}:{:02}", secs / 3600, (secs / 60) % 60);
    if force_seconds || secs % 60 != 0 || micros != 0 {
        let _ = write!(out, ":{:02}", secs % 60);
        java_fraction(out, micros);
    }
}

/// Appends a value as Java's `toString` of Flink's external type writes it.
pub fn write_java_text(out: &mut String, v: Value, ty: DataType, heap: &[u8]) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Timestamp(t) => {
            let (days, tod) = split_micros(t);
            write_date_sql(out, days as i32);
            out.push('T');
            // Instant.toString always shows seconds; LocalDateTime.toString drops zero seconds
            let ltz = matches!(ty, DataType::TimestampLtz(_));
            java_time(out, tod, ltz);
            if ltz {
                out.push('Z');
            }
        }
        Value::Time(t) => java_time(out, t, false),
        // nested values as Flink's print writes them: a ROW as +I[…], an ARRAY as […], a MAP as
        // {k=v}, a MULTISET as {element=count}, NULL inside them as null
        Value::Str(s) if ty.is_nested() => match ty {
            DataType::Row(r) => {
                out.push_str("+I[");
                for (i, (_, t)) in r.fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_java_text(out, nested::row_field(heap, s, r, i), *t, heap);
                }
                out.push(']');
            }
            DataType::Multiset(t) => {
                // Flink 2.3 prints a MULTISET as its map of element → count, `{x=2, y=1}`
                // (here in order of first appearance)
                out.push('{');
                let mut first = true;
                for (i, e) in nested::elements(heap, s, *t).enumerate() {
                    let same = |w: Value| match (e, w) {
                        (Value::Str(a), Value::Str(b)) => {
                            tillflow_types::value::heap_bytes(heap, a)
                                == tillflow_types::value::heap_bytes(heap, b)
                        }
                        (a, b) => a == b,
                    };
                    if nested::elements(heap, s, *t).take(i).any(same) {
                        continue;
                    }
                    let count = nested::elements(heap, s, *t)
                        .skip(i)
                        .filter(|w| same(*w))
                        .count();
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    write_java_text(out, e, *t, heap);
                    let _ = write!(out, "={count}");
                }
                out.push('}');
            }
            DataType::Array(t) => {
                out.push('[');
                for (i, e) in nested::elements(heap, s, *t).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_java_text(out, e, *t, heap);
                }
                out.push(']');
            }
            DataType::Map(kt, vt) => {
                out.push('{');
                for (i, (k, v)) in nested::map_entries(heap, s, *kt, *vt).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_java_text(out, k, *kt, heap);
                    out.push('=');
                    write_java_text(out, v, *vt, heap);
                }
                out.push('}');
            }
            _ => write_text(out, Value::Str(s), ty, heap),
        },
        v => write_text(out, v, ty, heap),
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
            write_java_text(
                &mut self.line,
                row.values.get(i).copied().unwrap_or(Value::Null),
                *ty,
                &row.heap,
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::temporal::parse_timestamp;
    use tillflow_types::{Field, Schema};

    /// The expected lines were printed by Flink 2.3's print connector for the same rows.
    #[test]
    fn prints_like_flink() {
        let spec = TableSpec {
            name: "p".into(),
            schema: Schema::new(vec![
                Field::new("a", DataType::Int),
                Field::new("s", DataType::String(None)),
                Field::new("d", DataType::Double),
                Field::new("ts", DataType::Timestamp(3)),
                Field::new("amount", DataType::Decimal(10, 2)),
                Field::new("b", DataType::Boolean),
                Field::new("ltz", DataType::TimestampLtz(3)),
            ]),
            options: [("print-identifier".to_string(), "id".to_string())]
                .into_iter()
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        };
        let mut sink = PrintSink {
            table: "p".into(),
            prefix: "id> ".into(),
            stderr: false,
            types: spec.schema.fields.iter().map(|f| f.data_type).collect(),
            line: String::new(),
            rows: 0,
        };
        let ts = |s: &str| Value::Timestamp(parse_timestamp(s).unwrap());
        let mut row = Row::default();
        let x = row.intern("x y");
        row.values = vec![
            Value::Int(1),
            Value::Str(x),
            Value::Float(1.5),
            ts("2024-03-01 20:00:00.5"),
            Value::Decimal(1230),
            Value::Bool(true),
            ts("2024-03-01 20:00:01"),
        ];
        assert_eq!(
            sink.format_row(&row),
            "id> +I[1, x y, 1.5, 2024-03-01T20:00:00.500, 12.30, true, 2024-03-01T20:00:01Z]\n"
        );
        row.values = vec![
            Value::Null,
            Value::Null,
            Value::Float(1e10),
            ts("2024-03-01 20:00:00"),
            Value::Null,
            Value::Bool(false),
            Value::Null,
        ];
        assert_eq!(
            sink.format_row(&row),
            "id> +I[null, null, 1.0E10, 2024-03-01T20:00, null, false, null]\n"
        );
    }
}
