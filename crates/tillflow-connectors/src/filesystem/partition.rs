//! Partitioned filesystem tables, laid out as Flink's filesystem connector lays them out:
//! `PARTITIONED BY (dt, hr)` writes each row, without its partition columns, under
//! `dt=2024-03-09/hr=10/` (Hive-style directories; values escaped as Hive escapes path names, a
//! NULL or empty value as `'partition.default-name'`), and the source reads the partition columns
//! back from the path. When a partition is complete the sink may commit it
//! (`'sink.partition-commit.policy.kind' = 'success-file'`: an empty `_SUCCESS` file): with
//! `'sink.partition-commit.trigger' = 'partition-time'` once the watermark passes the time
//! extracted from the partition's values (`'partition.time-extractor.timestamp-pattern'`, e.g.
//! `'$dt $hr:00:00'`) plus `'sink.partition-commit.delay'`; with `process-time` (the default)
//! once the delay has passed since the partition got its first file. Options are parsed here
//! into typed configs without I/O, so `validate` refuses bad values.

use crate::{ConnectorError, TableSpec};
use std::fmt::Write;
use tillflow_types::temporal::{parse_date, parse_duration_micros, parse_timestamp};
use tillflow_types::value::heap_bytes;
use tillflow_types::{DataType, Row, Schema, Value};

/// Flink's name for the partition of a NULL or empty value.
pub const DEFAULT_PARTITION: &str = "__DEFAULT_PARTITION__";

/// The partition columns of a table and where its other columns go.
#[derive(Clone, Debug)]
pub struct PartitionSpec {
    /// Per partition key (in `PARTITIONED BY` order): its name, column and type.
    pub keys: Vec<(String, usize, DataType)>,
    /// The table's other columns, in order: what the files hold.
    pub data_cols: Vec<usize>,
    /// `'partition.default-name'`.
    pub default_name: String,
}

impl PartitionSpec {
    /// The table's partitioning, if it has `PARTITIONED BY` columns.
    pub fn from_table(table: &TableSpec) -> Result<Option<Self>, ConnectorError> {
        if table.partition_keys.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for k in &table.partition_keys {
            let Some(i) = table.schema.fields.iter().position(|f| f.name == *k) else {
                return Err(table.error(format!(
                    "PARTITIONED BY column `{k}` is not a physical column (columns: {})",
                    table.schema.names()
                )));
            };
            let ty = table.schema.fields[i].data_type;
            if !matches!(
                ty,
                DataType::String(_)
                    | DataType::TinyInt
                    | DataType::SmallInt
                    | DataType::Int
                    | DataType::BigInt
                    | DataType::Date
                    | DataType::Boolean
            ) {
                return Err(table.error(format!(
                    "PARTITIONED BY column `{k}` is {ty}: a partition column is STRING, an integer, DATE or BOOLEAN (derive it, e.g. DATE_FORMAT(ts, 'yyyy-MM-dd'))"
                )));
            }
            if keys.iter().any(|(n, _, _)| n == k) {
                return Err(table.error(format!("PARTITIONED BY names `{k}` twice")));
            }
            keys.push((k.clone(), i, ty));
        }
        if keys.len() == table.schema.fields.len() {
            return Err(table.error(
                "every column is a partition column: the files would hold nothing (Flink refuses it too)",
            ));
        }
        let data_cols = (0..table.schema.fields.len())
            .filter(|i| !keys.iter().any(|(_, k, _)| k == i))
            .collect();
        let default_name = table
            .option("partition.default-name")
            .unwrap_or(DEFAULT_PARTITION)
            .to_owned();
        if default_name.is_empty() || default_name.contains('/') {
            return Err(table.error(format!(
                "option 'partition.default-name' must be a non-empty name without '/', got '{}'",
                crate::format::clip(&default_name)
            )));
        }
        Ok(Some(PartitionSpec {
            keys,
            data_cols,
            default_name,
        }))
    }

    /// The table as its files see it: the columns other than the partition keys.
    pub fn data_table(&self, table: &TableSpec) -> TableSpec {
        let mut t = table.clone();
        t.schema = Schema::new(
            self.data_cols
                .iter()
                .map(|&i| table.schema.fields[i].clone())
                .collect(),
        );
        t.partition_keys.clear();
        t
    }

    /// Writes `row`'s partition directory (`dt=2024-03-09/hr=10`) into `out`.
    pub fn path_of(&self, row: &Row, out: &mut String) {
        out.clear();
        for (n, (name, col, _)) in self.keys.iter().enumerate() {
            if n > 0 {
                out.push('/');
            }
            escape_into(name, out);
            out.push('=');
            let start = out.len();
            match row.values.get(*col).copied().unwrap_or(Value::Null) {
                Value::Null => {}
                Value::Str(s) => {
                    escape_into(&String::from_utf8_lossy(heap_bytes(&row.heap, s)), out)
                }
                Value::Int(i) => {
                    let _ = write!(out, "{i}");
                }
                Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                Value::Date(d) => tillflow_types::temporal::write_date_sql(out, d),
                // the partition column types are checked: nothing else reaches here
                _ => {}
            }
            if out.len() == start {
                out.push_str(&self.default_name);
            }
        }
    }

    /// Copies `row`'s data columns (the file's) into `out`.
    pub fn project(&self, row: &Row, out: &mut Row) {
        out.clear();
        out.kind = row.kind;
        for &c in &self.data_cols {
            out.push_from(row.values.get(c).copied().unwrap_or(Value::Null), &row.heap);
        }
    }

    /// The partition values of a file at `relative` (its path under the table's directory),
    /// typed as the columns: `None` for a column whose directory is not in the path.
    pub fn values_of(&self, relative: &std::path::Path) -> Result<PartitionValues, String> {
        let mut found: Vec<Option<String>> = vec![None; self.keys.len()];
        if let Some(parent) = relative.parent() {
            for part in parent.components() {
                let text = part.as_os_str().to_string_lossy();
                let Some((k, v)) = text.split_once('=') else {
                    continue;
                };
                let k = unescape(k);
                if let Some(i) = self.keys.iter().position(|(n, _, _)| *n == k) {
                    found[i] = Some(unescape(v));
                }
            }
        }
        let mut values = PartitionValues::default();
        for ((name, _, ty), v) in self.keys.iter().zip(found) {
            let value = match v {
                None => Value::Null,
                Some(v) if v == self.default_name => Value::Null,
                Some(v) => {
                    let bad = || {
                        format!(
                            "partition `{name}` = '{}' is not a {ty}",
                            crate::format::clip(&v)
                        )
                    };
                    match ty {
                        DataType::String(_) => {
                            let off = values.heap.len() as u32;
                            values.heap.extend_from_slice(v.as_bytes());
                            Value::Str(tillflow_types::value::StrRef {
                                off,
                                len: v.len() as u32,
                            })
                        }
                        DataType::Date => Value::Date(parse_date(&v).ok_or_else(bad)?),
                        DataType::Boolean => match v.to_ascii_lowercase().as_str() {
                            "true" => Value::Bool(true),
                            "false" => Value::Bool(false),
                            _ => return Err(bad()),
                        },
                        _ => Value::Int(tillflow_runtime::expr::narrow(
                            v.trim().parse().map_err(|_| bad())?,
                            *ty,
                        )),
                    }
                }
            };
            values.values.push(value);
        }
        Ok(values)
    }

    /// Completes a row decoded from a file (its data columns, in order) into the table's row:
    /// the partition values added at their columns.
    pub fn fill(&self, values: &PartitionValues, row: &mut Row, scratch: &mut Vec<Value>) {
        let base = row.heap.len() as u32;
        let shifted = |v: Value| match v {
            Value::Str(s) => Value::Str(tillflow_types::value::StrRef {
                off: s.off + base,
                len: s.len,
            }),
            other => other,
        };
        row.heap.extend_from_slice(&values.heap);
        scratch.clear();
        let mut data = 0;
        let total = self.data_cols.len() + self.keys.len();
        for c in 0..total {
            match self.keys.iter().position(|(_, k, _)| *k == c) {
                Some(p) => scratch.push(shifted(values.values[p])),
                None => {
                    scratch.push(row.values.get(data).copied().unwrap_or(Value::Null));
                    data += 1;
                }
            }
        }
        std::mem::swap(&mut row.values, scratch);
    }
}

/// The typed partition values of one file.
#[derive(Clone, Debug, Default)]
pub struct PartitionValues {
    values: Vec<Value>,
    heap: Vec<u8>,
}

/// Hive's escaping of a path name: the characters a path or a `k=v` pair cannot hold as `%XX`.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        let escaped = (c as u32) < 0x20
            || matches!(
                c,
                '\u{7f}'
                    | '"'
                    | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '{'
                    | '['
                    | ']'
                    | '^'
            );
        if escaped {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// The inverse of [`escape_into`].
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// When a partition is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The delay after the partition got its first file (processing time).
    ProcessTime,
    /// The watermark passes the partition's time plus the delay.
    PartitionTime,
}

/// How a partitioned sink commits its partitions.
#[derive(Clone, Debug)]
pub struct CommitPolicy {
    /// `'sink.partition-commit.trigger'`.
    pub trigger: Trigger,
    /// `'sink.partition-commit.delay'`, microseconds.
    pub delay: i64,
    /// `'sink.partition-commit.success-file.name'` when the policy kinds include
    /// `success-file` (none: partitions are not marked).
    pub success_file: Option<String>,
    /// `'partition.time-extractor.timestamp-pattern'` (`$dt $hr:00:00`); none: the first
    /// partition value is the time.
    pub pattern: Option<String>,
}

impl CommitPolicy {
    /// Parses the table's commit options.
    pub fn from_table(
        table: &TableSpec,
        spec: Option<&PartitionSpec>,
    ) -> Result<Self, ConnectorError> {
        let trigger = match table.option("sink.partition-commit.trigger") {
            None | Some("process-time") => Trigger::ProcessTime,
            Some("partition-time") => Trigger::PartitionTime,
            Some(other) => {
                return Err(table.error(format!(
                    "option 'sink.partition-commit.trigger' must be 'process-time' or 'partition-time', got '{}'",
                    crate::format::clip(other)
                )))
            }
        };
        let delay = match table.option("sink.partition-commit.delay") {
            None => 0,
            Some(v) => parse_duration_micros(v).filter(|d| *d >= 0).ok_or_else(|| {
                table.error(format!(
                    "option 'sink.partition-commit.delay' must be a duration such as '1 h' or '0 s', got '{}'",
                    crate::format::clip(v)
                ))
            })?,
        };
        let mut success_file = None;
        if let Some(kinds) = table.option("sink.partition-commit.policy.kind") {
            for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                match kind {
                    "success-file" => {
                        success_file = Some(
                            table
                                .option("sink.partition-commit.success-file.name")
                                .unwrap_or("_SUCCESS")
                                .to_owned(),
                        )
                    }
                    "metastore" => return Err(table.error(
                        "'sink.partition-commit.policy.kind' = 'metastore' needs a Hive metastore, which tillflow does not talk to; use 'success-file' (readers such as Spark and Trino discover Hive-style directories by path)",
                    )),
                    "custom" => return Err(table.error(
                        "'sink.partition-commit.policy.kind' = 'custom' runs a Java class; tillflow has none to run: use 'success-file'",
                    )),
                    other => {
                        return Err(table.error(format!(
                            "option 'sink.partition-commit.policy.kind': unknown kind '{}' (success-file, metastore, custom)",
                            crate::format::clip(other)
                        )))
                    }
                }
            }
        }
        if let Some(name) = &success_file {
            if name.is_empty() || name.contains('/') {
                return Err(table.error(
                    "option 'sink.partition-commit.success-file.name' must be a file name",
                ));
            }
        }
        match table.option("partition.time-extractor.kind") {
            None | Some("default") => {}
            Some(_) => {
                return Err(table.error(
                    "option 'partition.time-extractor.kind': only 'default' (a timestamp pattern over the partition values) is supported; 'custom' runs a Java class",
                ))
            }
        }
        match table.option("partition.time-extractor.timestamp-formatter") {
            None | Some("yyyy-MM-dd HH:mm:ss") => {}
            Some(other) => {
                return Err(table.error(format!(
                    "option 'partition.time-extractor.timestamp-formatter' = '{}': tillflow reads the extracted time as 'yyyy-MM-dd HH:mm:ss' (or 'yyyy-MM-dd'), Flink's default; write the pattern to produce that form",
                    crate::format::clip(other)
                )))
            }
        }
        match table.option("sink.partition-commit.watermark-time-zone") {
            None | Some("UTC") => {}
            Some(other) => {
                return Err(table.error(format!(
                    "option 'sink.partition-commit.watermark-time-zone' = '{}': tillflow's watermarks are UTC",
                    crate::format::clip(other)
                )))
            }
        }
        let pattern = table
            .option("partition.time-extractor.timestamp-pattern")
            .map(str::to_owned);
        if let (Some(p), Some(spec)) = (&pattern, spec) {
            // every `$name` must be a partition key
            let mut rest = p.as_str();
            while let Some(i) = rest.find('$') {
                let name: String = rest[i + 1..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !spec.keys.iter().any(|(k, _, _)| *k == name) {
                    return Err(table.error(format!(
                        "option 'partition.time-extractor.timestamp-pattern': `${name}` is not a partition column"
                    )));
                }
                rest = &rest[i + 1 + name.len()..];
            }
        }
        Ok(CommitPolicy {
            trigger,
            delay,
            success_file,
            pattern,
        })
    }

    /// The time of a partition (its path, `dt=…/hr=…`), microseconds: the pattern with each
    /// `$key` replaced by the key's value, read as `yyyy-MM-dd[ HH:mm:ss]`.
    pub fn partition_time(&self, spec: &PartitionSpec, path: &str) -> Option<i64> {
        let values: Vec<(String, String)> = path
            .split('/')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (unescape(k), unescape(v)))
            .collect();
        let text = match &self.pattern {
            None => values.first()?.1.clone(),
            Some(p) => {
                let mut out = p.clone();
                // longest names first, so `$d` does not eat `$dt`
                let mut keys: Vec<&(String, usize, DataType)> = spec.keys.iter().collect();
                keys.sort_by_key(|k| std::cmp::Reverse(k.0.len()));
                for (k, _, _) in keys {
                    let v = values
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())?;
                    out = out.replace(&format!("${k}"), v);
                }
                out
            }
        };
        parse_timestamp(text.trim())
            .or_else(|| parse_date(text.trim()).map(|d| d as i64 * 86_400_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Field;

    fn table(keys: &[&str], options: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![
                Field::new("dt", DataType::String(None)),
                Field::new("v", DataType::BigInt),
                Field::new("hr", DataType::Int),
                Field::new("s", DataType::String(None)),
            ]),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn rows_go_under_escaped_hive_directories_and_come_back_from_them() {
        let t = table(&["dt", "hr"], &[]);
        let spec = PartitionSpec::from_table(&t)
            .expect("ok")
            .expect("partitioned");
        let mut row = Row::default();
        let dt = row.intern("2024/03:09 %x");
        row.values = vec![Value::Str(dt), Value::Int(7), Value::Int(10), Value::Null];
        let mut path = String::new();
        spec.path_of(&row, &mut path);
        assert_eq!(path, "dt=2024%2F03%3A09 %25x/hr=10");
        row.values[2] = Value::Null;
        spec.path_of(&row, &mut path);
        assert_eq!(path, "dt=2024%2F03%3A09 %25x/hr=__DEFAULT_PARTITION__");
        // read back: the row's data columns (v, s) and the values of its path
        let values = spec
            .values_of(std::path::Path::new("dt=2024%2F03%3A09 %25x/hr=11/part-0"))
            .expect("values");
        let mut file_row = Row::default();
        let s = file_row.intern("abc");
        file_row.values = vec![Value::Int(7), Value::Str(s)];
        let mut scratch = Vec::new();
        spec.fill(&values, &mut file_row, &mut scratch);
        assert_eq!(file_row.values.len(), 4);
        match file_row.values[0] {
            Value::Str(s) => assert_eq!(file_row.str(s), "2024/03:09 %x"),
            ref v => panic!("{v:?}"),
        }
        assert_eq!(file_row.values[1], Value::Int(7));
        assert_eq!(file_row.values[2], Value::Int(11));
        match file_row.values[3] {
            Value::Str(s) => assert_eq!(file_row.str(s), "abc"),
            ref v => panic!("{v:?}"),
        }
        let default = spec
            .values_of(std::path::Path::new("dt=x/hr=__DEFAULT_PARTITION__/part-0"))
            .expect("values");
        assert_eq!(default.values[1], Value::Null);
        let bad = spec
            .values_of(std::path::Path::new("dt=x/hr=ten/part-0"))
            .expect_err("not an INT");
        assert!(bad.contains("partition `hr` = 'ten'"), "{bad}");
    }

    #[test]
    fn partition_time_comes_from_the_pattern_or_the_first_value() {
        let t = table(
            &["dt", "hr"],
            &[(
                "partition.time-extractor.timestamp-pattern",
                "$dt $hr:00:00",
            )],
        );
        let spec = PartitionSpec::from_table(&t)
            .expect("ok")
            .expect("partitioned");
        let policy = CommitPolicy::from_table(&t, Some(&spec)).expect("policy");
        let at = policy.partition_time(&spec, "dt=2024-03-09/hr=10");
        assert_eq!(at, parse_timestamp("2024-03-09 10:00:00"));
        let plain = CommitPolicy::from_table(&table(&["dt"], &[]), Some(&spec)).expect("policy");
        assert_eq!(
            plain.partition_time(&spec, "dt=2024-03-09"),
            parse_timestamp("2024-03-09 00:00:00")
        );
    }

    #[test]
    fn bad_partitioning_and_commit_options_are_refused_naming_them() {
        let e = |keys: &[&str], opts: &[(&str, &str)]| {
            let t = table(keys, opts);
            PartitionSpec::from_table(&t)
                .and_then(|s| CommitPolicy::from_table(&t, s.as_ref()).map(drop))
                .expect_err("refused")
                .to_string()
        };
        assert!(e(&["nope"], &[]).contains("`nope` is not a physical column"));
        assert!(e(&["dt", "dt"], &[]).contains("twice"));
        assert!(e(&["dt", "v", "hr", "s"], &[]).contains("every column"));
        assert!(
            e(&["dt"], &[("sink.partition-commit.trigger", "eventually")])
                .contains("'partition-time'")
        );
        assert!(e(&["dt"], &[("sink.partition-commit.delay", "soon")]).contains("duration"));
        assert!(e(
            &["dt"],
            &[("sink.partition-commit.policy.kind", "metastore")]
        )
        .contains("metastore"));
        assert!(e(
            &["dt"],
            &[("partition.time-extractor.timestamp-pattern", "$day")]
        )
        .contains("`$day`"));
        assert!(
            e(&["dt"], &[("partition.default-name", "a/b")]).contains("'partition.default-name'")
        );
        let t = TableSpec {
            schema: Schema::new(vec![
                Field::new("ts", DataType::Timestamp(3)),
                Field::new("v", DataType::Int),
            ]),
            ..table(&["ts"], &[])
        };
        assert!(PartitionSpec::from_table(&t)
            .expect_err("refused")
            .to_string()
            .contains("DATE_FORMAT"));
    }
}
