//! The `avro` format as Flink's: the Avro schema derived from the table (a record
//! `org.apache.flink.avro.generated.record`, a nullable column as the union `["null", T]`), rows
//! as Avro binary — a Kafka message holds one datum, a file is an Avro object container file
//! compressed with `'avro.codec'` (snappy by default; null, deflate, zstandard). Built on the
//! `apache-avro` crate (schemas, datum encoding, container files, schema resolution).
//!
//! Flink's type mapping: STRING → string, BOOLEAN → boolean, BYTES → bytes, DECIMAL → bytes with
//! the decimal logical type, TINYINT/SMALLINT/INT → int, BIGINT → long, FLOAT, DOUBLE, DATE →
//! int (date), TIME → int (time-millis), TIMESTAMP(p ≤ 3) → long (timestamp-millis; micros above
//! 3), TIMESTAMP_LTZ the same; with `'avro.timestamp_mapping.legacy' = 'false'` a TIMESTAMP is a
//! local-timestamp; ROW → a nested record named `record_<column>`, ARRAY → array, MAP with string
//! keys → map (fields, elements and values nullable unions). Reading resolves the writer's schema (a file's own, or the table's for a
//! message) against the table's, so files other tools wrote with more, fewer or reordered fields
//! read by name, and a missing nullable column is NULL.
//!
//! The writer keeps one Avro record value per table and updates it in place for every row, so a
//! row allocates only where Avro's value model needs it (a DECIMAL's bytes, a column turning
//! from NULL to a string); reading builds the crate's value per record.

use super::{DecodeError, Decoder, Encoder, FileFormat, Format, PartReader, PartWriter};
use crate::{opt, ConnectorError, OptionSpec, TableSpec};
use apache_avro::types::Value as Avro;
use apache_avro::{Codec, Schema};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use tillflow_runtime::expr::{narrow, rescale};
use tillflow_types::value::heap_bytes;
use tillflow_types::{DataType, Row, Value};

const OPTIONS: &[OptionSpec] = &[
    opt("avro.codec"),
    opt("avro.encoding"),
    opt("avro.timestamp_mapping.legacy"),
];

/// The `avro` format in the registry.
pub struct AvroFormat;

/// The registry's `avro`.
pub static AVRO: AvroFormat = AvroFormat;

/// The `avro.*` options of a table, checked without I/O.
#[derive(Clone, Debug)]
pub struct AvroConfig {
    /// `avro.codec` (files).
    pub codec: Codec,
    /// `avro.timestamp_mapping.legacy`.
    pub legacy_timestamps: bool,
}

impl AvroConfig {
    /// Parses the table's `avro.*` options.
    pub fn from_table(table: &TableSpec) -> Result<Self, ConnectorError> {
        let codec = match table
            .option("avro.codec")
            .map(|c| c.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("snappy") => Codec::Snappy,
            Some("null") => Codec::Null,
            Some("deflate") => Codec::Deflate(Default::default()),
            Some("zstandard" | "zstd") => Codec::Zstandard(Default::default()),
            Some(other @ ("bzip2" | "xz")) => {
                return Err(table.error(format!(
                    "option 'avro.codec': {other} is not built into tillflow; use snappy, deflate, zstandard or null"
                )))
            }
            Some(other) => {
                return Err(table.error(format!(
                    "option 'avro.codec' must be one of null, deflate, snappy, zstandard, got '{}'",
                    super::clip(other)
                )))
            }
        };
        match table
            .option("avro.encoding")
            .map(|e| e.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("binary") => {}
            Some("json") => {
                return Err(table.error(
                    "option 'avro.encoding' = 'json' is not supported: tillflow reads and writes Avro's binary encoding (for JSON text use 'format' = 'json')",
                ))
            }
            Some(other) => {
                return Err(table.error(format!(
                    "option 'avro.encoding' must be 'binary' or 'json', got '{}'",
                    super::clip(other)
                )))
            }
        }
        Ok(AvroConfig {
            codec,
            legacy_timestamps: table.bool_option("avro.timestamp_mapping.legacy", true)?,
        })
    }
}

/// The Avro type of a column, as JSON text.
fn avro_type(ty: DataType, legacy: bool, name: &str) -> Result<String, String> {
    let nullable = |t: String| format!(r#"["null",{t}]"#);
    let ts = |p: u8, local: bool| {
        let unit = if p <= 3 { "millis" } else { "micros" };
        let kind = if local {
            "local-timestamp"
        } else {
            "timestamp"
        };
        format!(r#"{{"type":"long","logicalType":"{kind}-{unit}"}}"#)
    };
    Ok(match ty {
        DataType::String(_) => r#""string""#.into(),
        DataType::Boolean => r#""boolean""#.into(),
        DataType::Bytes => r#""bytes""#.into(),
        DataType::Decimal(p, s) => {
            format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{s}}}"#)
        }
        DataType::TinyInt | DataType::SmallInt | DataType::Int => r#""int""#.into(),
        DataType::BigInt => r#""long""#.into(),
        DataType::Float => r#""float""#.into(),
        DataType::Double => r#""double""#.into(),
        DataType::Date => r#"{"type":"int","logicalType":"date"}"#.into(),
        DataType::Time(_) => r#"{"type":"int","logicalType":"time-millis"}"#.into(),
        DataType::Timestamp(p) => ts(p, !legacy),
        DataType::TimestampLtz(p) => ts(p, false),
        DataType::Row(r) => {
            let mut fields = Vec::new();
            for (f, t) in &r.fields {
                let inner = avro_type(*t, legacy, &format!("{name}_{f}"))?;
                let n = serde_json::to_string(f).unwrap_or_default();
                fields.push(format!(
                    r#"{{"name":{n},"type":{},"default":null}}"#,
                    nullable(inner)
                ));
            }
            format!(
                r#"{{"type":"record","name":"{name}","fields":[{}]}}"#,
                fields.join(",")
            )
        }
        DataType::Array(e) => format!(
            r#"{{"type":"array","items":{}}}"#,
            nullable(avro_type(*e, legacy, name)?)
        ),
        DataType::Map(DataType::String(_), v) => format!(
            r#"{{"type":"map","values":{}}}"#,
            nullable(avro_type(*v, legacy, name)?)
        ),
        other => {
            return Err(format!(
                "the avro format does not hold {other} columns (a MAP's keys must be strings; MULTISET and intervals are not supported)"
            ))
        }
    })
}

/// The table's Avro schema as Flink derives it, as JSON text.
pub fn schema_json(table: &TableSpec, legacy: bool) -> Result<String, ConnectorError> {
    let mut fields = Vec::new();
    for f in &table.schema.fields {
        let t = avro_type(f.data_type, legacy, &format!("record_{}", f.name))
            .map_err(|m| table.error(format!("column `{}`: {m}", f.name)))?;
        let name = serde_json::to_string(&f.name).unwrap_or_default();
        fields.push(if f.nullable {
            format!(r#"{{"name":{name},"type":["null",{t}],"default":null}}"#)
        } else {
            format!(r#"{{"name":{name},"type":{t}}}"#)
        });
    }
    Ok(format!(
        r#"{{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":[{}]}}"#,
        fields.join(",")
    ))
}

/// The parsed schema for `json`, kept for the process (a container writer and a datum writer
/// borrow their schema): one per distinct table schema, never per file or row.
fn interned(json: &str) -> Result<&'static Schema, String> {
    static SCHEMAS: OnceLock<Mutex<HashMap<String, &'static Schema>>> = OnceLock::new();
    let map = SCHEMAS.get_or_init(Default::default);
    let mut map = map
        .lock()
        .map_err(|_| "the Avro schema cache was poisoned".to_string())?;
    if let Some(s) = map.get(json) {
        return Ok(s);
    }
    let schema = Schema::parse_str(json).map_err(|e| format!("Avro schema: {e}"))?;
    let schema: &'static Schema = Box::leak(Box::new(schema));
    map.insert(json.to_owned(), schema);
    Ok(schema)
}

fn table_schema(table: &TableSpec) -> Result<(&'static Schema, AvroConfig), ConnectorError> {
    let config = AvroConfig::from_table(table)?;
    let json = schema_json(table, config.legacy_timestamps)?;
    let schema = interned(&json).map_err(|m| table.error(m))?;
    Ok((schema, config))
}

impl Format for AvroFormat {
    fn name(&self) -> &'static str {
        "avro"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn check(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        table_schema(table).map(drop)
    }
    fn decoder(&self, table: &TableSpec) -> Result<Box<dyn Decoder>, ConnectorError> {
        let (schema, _) = table_schema(table)?;
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .map_err(|e| table.error(format!("avro: {e}")))?;
        Ok(Box::new(AvroDecoder {
            reader,
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
        }))
    }
    fn encoder(&self, table: &TableSpec) -> Result<Box<dyn Encoder>, ConnectorError> {
        let (schema, config) = table_schema(table)?;
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .validate(false)
            .build()
            .map_err(|e| table.error(format!("avro: {e}")))?;
        Ok(Box::new(AvroEncoder {
            writer,
            record: Record::new(table, config.legacy_timestamps),
        }))
    }
    fn file_format(&self) -> Option<&dyn FileFormat> {
        Some(self)
    }
    fn records_too(&self) -> bool {
        true
    }
}

/// The reusable Avro record a row is written through.
struct Record {
    value: Avro,
    types: Vec<DataType>,
    nullable: Vec<bool>,
    /// Per column: a TIMESTAMP written as a local-timestamp (non-legacy mapping).
    local: Vec<bool>,
}

impl Record {
    fn new(table: &TableSpec, legacy: bool) -> Self {
        Record {
            local: table
                .schema
                .fields
                .iter()
                .map(|f| !legacy && matches!(f.data_type, DataType::Timestamp(_)))
                .collect(),
            value: Avro::Record(
                table
                    .schema
                    .fields
                    .iter()
                    .map(|f| {
                        let v = if f.nullable {
                            Avro::Union(0, Box::new(Avro::Null))
                        } else {
                            Avro::Null
                        };
                        (f.name.clone(), v)
                    })
                    .collect(),
            ),
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            nullable: table.schema.fields.iter().map(|f| f.nullable).collect(),
        }
    }

    /// Sets the record's fields from `row`.
    fn set(&mut self, row: &Row) -> Result<(), String> {
        let Avro::Record(fields) = &mut self.value else {
            return Err("internal: not a record".into());
        };
        for (i, (name, slot)) in fields.iter_mut().enumerate() {
            let v = row.values.get(i).copied().unwrap_or(Value::Null);
            let ty = self.types[i];
            let target: &mut Avro = if self.nullable[i] {
                let Avro::Union(branch, inner) = slot else {
                    return Err("internal: not a union".into());
                };
                *branch = u32::from(!v.is_null());
                inner
            } else {
                if v.is_null() {
                    return Err(format!("column `{name}`: NULL in a NOT NULL column"));
                }
                slot
            };
            set_value(target, v, ty, self.local[i], &row.heap)
                .map_err(|m| format!("column `{name}`: {m}"))?;
        }
        Ok(())
    }
}

/// Writes `v` (of type `ty`) into `out`, reusing a string or bytes buffer already there.
fn set_value(
    out: &mut Avro,
    v: Value,
    ty: DataType,
    local: bool,
    heap: &[u8],
) -> Result<(), String> {
    *out = match (v, ty) {
        (Value::Null, _) => Avro::Null,
        (Value::Bool(b), _) => Avro::Boolean(b),
        (Value::Int(i), DataType::BigInt) => Avro::Long(i),
        (Value::Int(i), _) => Avro::Int(narrow(i, ty) as i32),
        (Value::Float(f), DataType::Float) => Avro::Float(f as f32),
        (Value::Float(f), _) => Avro::Double(f),
        (Value::Str(s), DataType::Row(_) | DataType::Array(_) | DataType::Map(..)) => {
            nested_to_avro(Value::Str(s), ty, local, heap)?
        }
        (Value::Str(s), DataType::Bytes) => {
            if let Avro::Bytes(b) = out {
                b.clear();
                b.extend_from_slice(heap_bytes(heap, s));
                return Ok(());
            }
            Avro::Bytes(heap_bytes(heap, s).to_vec())
        }
        (Value::Str(s), _) => {
            let text = std::str::from_utf8(heap_bytes(heap, s)).unwrap_or_default();
            if let Avro::String(b) = out {
                b.clear();
                b.push_str(text);
                return Ok(());
            }
            Avro::String(text.to_owned())
        }
        (Value::Decimal(d), _) => {
            // the fewest big-endian two's complement bytes
            let bytes = d.to_be_bytes();
            let skip = bytes
                .windows(2)
                .take_while(|w| {
                    (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0)
                })
                .count();
            Avro::Decimal(apache_avro::Decimal::from(bytes[skip..].to_vec()))
        }
        (Value::Date(d), _) => Avro::Date(d),
        (Value::Time(t), _) => Avro::TimeMillis(t.div_euclid(1000) as i32),
        (Value::Timestamp(us), DataType::Timestamp(p) | DataType::TimestampLtz(p)) => {
            match (local, p <= 3) {
                (true, true) => Avro::LocalTimestampMillis(us.div_euclid(1000)),
                (true, false) => Avro::LocalTimestampMicros(us),
                (false, true) => Avro::TimestampMillis(us.div_euclid(1000)),
                (false, false) => Avro::TimestampMicros(us),
            }
        }
        (other, _) => return Err(format!("{other:?} does not fit {ty}")),
    };
    Ok(())
}

/// A nested value (ROW, ARRAY, MAP; its encoding in `heap`) as an Avro value, its fields and
/// elements as nullable unions.
fn nested_to_avro(v: Value, ty: DataType, local: bool, heap: &[u8]) -> Result<Avro, String> {
    let slot = |v: Value, t: DataType| -> Result<Avro, String> {
        if v.is_null() {
            return Ok(Avro::Union(0, Box::new(Avro::Null)));
        }
        let mut out = Avro::Null;
        set_value(&mut out, v, t, local, heap)?;
        Ok(Avro::Union(1, Box::new(out)))
    };
    let Value::Str(span) = v else {
        return Err(format!("{v:?} is not a {ty}"));
    };
    Ok(match ty {
        DataType::Row(r) => Avro::Record(
            r.fields
                .iter()
                .enumerate()
                .map(|(i, (name, t))| {
                    Ok((
                        name.clone(),
                        slot(tillflow_types::nested::row_field(heap, span, r, i), *t)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        DataType::Array(e) => Avro::Array(
            tillflow_types::nested::elements(heap, span, *e)
                .map(|x| slot(x, *e))
                .collect::<Result<_, String>>()?,
        ),
        DataType::Map(k, v) => Avro::Map(
            tillflow_types::nested::map_entries(heap, span, *k, *v)
                .map(|(key, val)| {
                    let key = match key {
                        Value::Str(s) => String::from_utf8_lossy(heap_bytes(heap, s)).into_owned(),
                        other => format!("{other:?}"),
                    };
                    Ok((key, slot(val, *v)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(format!("{ty} is not nested")),
    })
}

/// One Avro datum per message (Kafka).
pub struct AvroEncoder {
    writer: apache_avro::writer::datum::GenericDatumWriter<'static>,
    record: Record,
}

impl Encoder for AvroEncoder {
    fn encode(&mut self, row: &Row, out: &mut Vec<u8>) -> Result<(), String> {
        self.record.set(row)?;
        self.writer
            .write_value_ref(out, &self.record.value)
            .map(drop)
            .map_err(|e| format!("avro: {e}"))
    }
    fn accepts_changes(&self) -> bool {
        false
    }
    fn delimited(&self) -> bool {
        false
    }
}

/// Reads one Avro datum per message.
pub struct AvroDecoder {
    reader: apache_avro::reader::datum::GenericDatumReader<'static>,
    types: Vec<DataType>,
    names: Vec<String>,
}

impl Decoder for AvroDecoder {
    fn decode(&mut self, input: &[u8], row: &mut Row) -> Result<(), DecodeError> {
        let mut bytes = input;
        let value = self
            .reader
            .read_value(&mut bytes)
            .map_err(|e| DecodeError {
                field: None,
                message: format!("not an Avro datum of the table's schema: {e}"),
            })?;
        fill_row(value, &self.names, &self.types, None, row)
    }
    fn ignore_parse_errors(&self) -> bool {
        false
    }
}

/// Moves a decoded record's fields into `row`, by name (a field the record lacks is NULL).
fn fill_row(
    value: Avro,
    names: &[String],
    types: &[DataType],
    scales: Option<&[u8]>,
    row: &mut Row,
) -> Result<(), DecodeError> {
    let Avro::Record(fields) = value else {
        return Err(DecodeError {
            field: None,
            message: "the Avro value is not a record".into(),
        });
    };
    for (i, (name, ty)) in names.iter().zip(types).enumerate() {
        // a message is of the table's own schema; a file's decimal may have another scale
        let from = match (scales, ty) {
            (Some(s), _) => s.get(i).copied().unwrap_or(0),
            (None, DataType::Decimal(_, s)) => *s,
            (None, _) => 0,
        };
        let v = fields
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v);
        let v = match v {
            None => Value::Null,
            Some(v) => to_value(v, *ty, from, row).map_err(|m| DecodeError {
                field: Some(name.clone()),
                message: m,
            })?,
        };
        row.values.push(v);
    }
    Ok(())
}

fn to_value(v: &Avro, ty: DataType, scale: u8, row: &mut Row) -> Result<Value, String> {
    let bad = || format!("Avro {v:?} cannot be read as {ty}");
    Ok(match (v, ty) {
        (Avro::Union(_, inner), _) => return to_value(inner, ty, scale, row),
        (Avro::Null, _) => Value::Null,
        (Avro::Boolean(b), DataType::Boolean) => Value::Bool(*b),
        (
            Avro::Int(i),
            DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt,
        ) => Value::Int(narrow(*i as i64, ty)),
        (
            Avro::Long(i),
            DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt,
        ) => Value::Int(narrow(*i, ty)),
        (Avro::Float(f), DataType::Float | DataType::Double) => Value::Float(*f as f64),
        (Avro::Double(f), DataType::Float | DataType::Double) => Value::Float(*f),
        (Avro::Int(i), DataType::Float | DataType::Double) => Value::Float(*i as f64),
        (Avro::Long(i), DataType::Float | DataType::Double) => Value::Float(*i as f64),
        (Avro::String(s) | Avro::Enum(_, s), DataType::String(_)) => Value::Str(row.intern(s)),
        (Avro::Bytes(b) | Avro::Fixed(_, b), DataType::Bytes) => {
            let off = row.heap.len() as u32;
            row.heap.extend_from_slice(b);
            Value::Str(tillflow_types::value::StrRef {
                off,
                len: b.len() as u32,
            })
        }
        (Avro::Decimal(d), DataType::Decimal(_, s)) => {
            let bytes: Vec<u8> = d.try_into().map_err(|_| bad())?;
            Value::Decimal(rescale(super::be_i128(&bytes).ok_or_else(bad)?, scale, s))
        }
        (Avro::Date(d), DataType::Date) => Value::Date(*d),
        (Avro::TimeMillis(t), DataType::Time(_)) => Value::Time(*t as i64 * 1000),
        (Avro::TimeMicros(t), DataType::Time(_)) => Value::Time(*t),
        (
            Avro::TimestampMillis(t) | Avro::LocalTimestampMillis(t),
            DataType::Timestamp(_) | DataType::TimestampLtz(_),
        ) => Value::Timestamp(t.saturating_mul(1000)),
        (
            Avro::TimestampMicros(t) | Avro::LocalTimestampMicros(t),
            DataType::Timestamp(_) | DataType::TimestampLtz(_),
        ) => Value::Timestamp(*t),
        (
            Avro::TimestampNanos(t) | Avro::LocalTimestampNanos(t),
            DataType::Timestamp(_) | DataType::TimestampLtz(_),
        ) => Value::Timestamp(t.div_euclid(1000)),
        (Avro::Record(fields), DataType::Row(r)) => {
            // the fields first (their bytes go to the heap), then the ROW's encoding
            let mut values = Vec::with_capacity(r.fields.len());
            for (name, t) in &r.fields {
                let v = fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
                    .map(|(_, v)| v);
                values.push(match v {
                    None => Value::Null,
                    Some(v) => to_value(v, *t, own_scale(*t), row)?,
                });
            }
            Value::Str(tillflow_types::nested::push_row(&mut row.heap, &values, r))
        }
        (Avro::Array(items), DataType::Array(e)) => {
            let mut values = Vec::with_capacity(items.len());
            for x in items {
                values.push(to_value(x, *e, own_scale(*e), row)?);
            }
            Value::Str(tillflow_types::nested::push_array(
                &mut row.heap,
                &values,
                *e,
            ))
        }
        (Avro::Map(entries), DataType::Map(_, vt)) => {
            let mut pairs: Vec<(&String, Value)> = Vec::with_capacity(entries.len());
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for k in keys {
                pairs.push((k, to_value(&entries[k], *vt, own_scale(*vt), row)?));
            }
            let off = row.heap.len();
            row.heap
                .extend_from_slice(&(pairs.len() as u32).to_le_bytes());
            for (k, v) in pairs {
                tillflow_types::nested::push_bytes_payload(&mut row.heap, k.as_bytes());
                tillflow_types::nested::push_slot(&mut row.heap, v, *vt);
            }
            Value::Str(tillflow_types::nested::span_from(&row.heap, off))
        }
        _ => return Err(bad()),
    })
}

/// The scale a nested DECIMAL field is read with (its type's: a nested field's scale in the
/// file is not tracked).
fn own_scale(t: DataType) -> u8 {
    match t {
        DataType::Decimal(_, s) => s,
        _ => 0,
    }
}

/// Writes an Avro object container file.
pub struct AvroWriter {
    writer: apache_avro::Writer<'static, BufWriter<File>>,
    record: Record,
    written: u64,
}

impl FileFormat for AvroFormat {
    fn writer(&self, table: &TableSpec, out: File) -> Result<Box<dyn PartWriter>, ConnectorError> {
        let (schema, config) = table_schema(table)?;
        let writer = apache_avro::Writer::builder()
            .schema(schema)
            .writer(BufWriter::with_capacity(1 << 16, out))
            .codec(config.codec)
            .build()
            .map_err(|e| table.error(format!("avro writer: {e}")))?;
        Ok(Box::new(AvroWriter {
            writer,
            record: Record::new(table, config.legacy_timestamps),
            written: 0,
        }))
    }

    fn reader(
        &self,
        table: &TableSpec,
        path: &Path,
    ) -> Result<Box<dyn PartReader>, ConnectorError> {
        table_schema(table)?;
        let shown = path.display().to_string();
        let f = File::open(path).map_err(|e| ConnectorError::Io {
            path: shown.clone(),
            source: e,
        })?;
        // read under the file's own schema (apache-avro's resolution refuses minimal-length
        // decimal bytes that other writers use): fields are matched by name here
        let reader = apache_avro::Reader::builder(BufReader::with_capacity(1 << 16, f))
            .build()
            .map_err(|e| table.error(format!("{shown}: not an Avro container file: {e}")))?;
        let scales = file_scales(reader.writer_schema());
        let names: Vec<String> = table.schema.fields.iter().map(|f| f.name.clone()).collect();
        let scales = names
            .iter()
            .map(|n| {
                scales
                    .iter()
                    .find(|(f, _)| f == n)
                    .or_else(|| scales.iter().find(|(f, _)| f.eq_ignore_ascii_case(n)))
                    .map_or(0, |(_, s)| *s)
            })
            .collect();
        Ok(Box::new(AvroReader {
            reader,
            names,
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            scales,
            position: 0,
        }))
    }
}

impl PartWriter for AvroWriter {
    fn write(&mut self, row: &Row) -> Result<(), String> {
        if row.kind != tillflow_types::RowKind::Insert {
            return Err("the avro format holds inserted rows only (an update reached it)".into());
        }
        self.record.set(row)?;
        self.written += self
            .writer
            .unvalidated_append_value_ref(&self.record.value)
            .map_err(|e| format!("avro: {e}"))? as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn size(&self) -> u64 {
        self.written
    }

    fn finish(self: Box<Self>) -> Result<File, String> {
        let out = self.writer.into_inner().map_err(|e| format!("avro: {e}"))?;
        out.into_inner().map_err(|e| e.error().to_string())
    }
}

/// Reads the records of an Avro object container file, resolved to the table's schema.
pub struct AvroReader {
    reader: apache_avro::Reader<'static, BufReader<File>>,
    names: Vec<String>,
    types: Vec<DataType>,
    /// Per table column: the scale of the file's decimal field of that name.
    scales: Vec<u8>,
    position: u64,
}

/// The decimal scale of each field of a record schema (0 for other fields).
fn file_scales(schema: &Schema) -> Vec<(String, u8)> {
    fn scale(s: &Schema) -> u8 {
        match s {
            Schema::Decimal(d) => d.scale.min(38) as u8,
            Schema::Union(u) => u.variants().iter().map(scale).max().unwrap_or(0),
            _ => 0,
        }
    }
    match schema {
        Schema::Record(r) => r
            .fields
            .iter()
            .map(|f| (f.name.clone(), scale(&f.schema)))
            .collect(),
        _ => Vec::new(),
    }
}

impl PartReader for AvroReader {
    fn next(&mut self, row: &mut Row) -> Result<bool, DecodeError> {
        match self.reader.next() {
            None => Ok(false),
            Some(Err(e)) => Err(DecodeError {
                field: None,
                message: format!("avro: {e}"),
            }),
            Some(Ok(v)) => {
                fill_row(v, &self.names, &self.types, Some(&self.scales), row)?;
                self.position += 1;
                Ok(true)
            }
        }
    }

    fn position(&self) -> u64 {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema as TableSchema};

    fn table(fields: Vec<Field>, options: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: TableSchema::new(fields),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("format".to_string(), "avro".to_string())])
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn all() -> Vec<Field> {
        vec![
            Field::new("s", DataType::String(None)),
            Field::new("b", DataType::Boolean),
            Field::new("by", DataType::Bytes),
            Field::new("dec", DataType::Decimal(12, 3)),
            Field::new("ti", DataType::TinyInt),
            Field::new("bi", DataType::BigInt),
            Field::new("f", DataType::Float),
            Field::new("d", DataType::Double),
            Field::new("dt", DataType::Date),
            Field::new("tm", DataType::Time(3)),
            Field::new("ts", DataType::Timestamp(3)),
            Field::new("us", DataType::TimestampLtz(6)),
            Field::new("last", DataType::Int),
        ]
    }

    fn row(n: i64) -> Row {
        let mut r = Row::default();
        let s = r.intern(&format!("sku-{n}-ü"));
        let by = r.intern(&format!("{n:x}"));
        r.values = vec![
            Value::Str(s),
            Value::Bool(n % 2 == 0),
            Value::Str(by),
            Value::Decimal(n as i128 * 1_234_567 - 99_999_999),
            Value::Int(n % 100 - 50),
            Value::Int(n * 9_876_543_210),
            Value::Float(n as f32 as f64 / 8.0),
            Value::Float(-(n as f64) / 3.0),
            Value::Date((n * 13 - 9000) as i32),
            Value::Time(n * 1000 % 86_400_000 * 1000),
            Value::Timestamp((n - 100) * 86_400_123_000),
            Value::Timestamp((n - 100) * 3_600_000_001),
            // zigzag(5) is 0x0a: a datum may end with a newline byte
            if n % 3 == 0 {
                Value::Null
            } else {
                Value::Int(5)
            },
        ];
        r
    }

    fn same(a: &Row, b: &Row) -> bool {
        a.values.len() == b.values.len()
            && a.values.iter().zip(&b.values).all(|(x, y)| match (x, y) {
                (Value::Str(p), Value::Str(q)) => a.bytes(*p) == b.bytes(*q),
                _ => x == y,
            })
    }

    /// Every type through a datum (a message) and through a container file comes back as it
    /// went in, a datum ending in a newline byte included, for each codec.
    #[test]
    fn rows_round_trip_as_datums_and_files() {
        let t = table(all(), &[]);
        let mut enc = AVRO.encoder(&t).expect("encoder");
        let mut dec = AVRO.decoder(&t).expect("decoder");
        assert!(!enc.delimited());
        let mut newline_ended = 0;
        for n in 0..300 {
            let mut buf = Vec::new();
            enc.encode(&row(n), &mut buf).expect("encode");
            newline_ended += usize::from(buf.last() == Some(&b'\n'));
            let mut got = Row::default();
            dec.decode(&buf, &mut got).expect("decode");
            assert!(same(&got, &row(n)), "{n}: {got:?}");
        }
        assert!(newline_ended > 0);
        for codec in ["snappy", "deflate", "zstandard", "null"] {
            let t = table(all(), &[("avro.codec", codec)]);
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("part");
            let mut w = AVRO
                .writer(&t, File::create(&path).expect("create"))
                .expect("writer");
            for n in 0..3000 {
                w.write(&row(n)).expect("write");
            }
            w.finish().expect("finish");
            let mut r = AVRO.reader(&t, &path).expect("reader");
            let mut got = Row::default();
            let mut n = 0;
            while r.next(&mut got).expect("next") {
                assert!(same(&got, &row(n)), "{codec} {n}");
                got.clear();
                n += 1;
            }
            assert_eq!(n, 3000, "{codec}");
        }
    }

    #[test]
    fn bad_options_and_types_are_refused_naming_them() {
        let err = |opts: &[(&str, &str)], fields: Vec<Field>| {
            AVRO.check(&table(fields, opts))
                .expect_err("refused")
                .to_string()
        };
        let one = || vec![Field::new("a", DataType::Int)];
        assert!(err(&[("avro.codec", "lzma")], one()).contains("'avro.codec'"));
        assert!(err(&[("avro.codec", "xz")], one()).contains("xz is not built"));
        assert!(err(&[("avro.encoding", "json")], one()).contains("'avro.encoding' = 'json'"));
        assert!(
            err(&[("avro.timestamp_mapping.legacy", "maybe")], one()).contains("'true' or 'false'")
        );
        assert!(err(&[], vec![Field::new("iv", DataType::IntervalDayTime)]).contains("column `iv`"));
        // the derived schema: nullable as a union with null first, Flink's record name
        let json = schema_json(&table(one(), &[]), true).expect("schema");
        assert!(
            json.contains(r#""namespace":"org.apache.flink.avro.generated""#),
            "{json}"
        );
        assert!(
            json.contains(r#""type":["null","int"],"default":null"#),
            "{json}"
        );
        let local = schema_json(
            &table(vec![Field::new("ts", DataType::Timestamp(3))], &[]),
            false,
        )
        .expect("schema");
        assert!(local.contains("local-timestamp-millis"), "{local}");
    }

    /// A damaged file or message is an error, never a crash.
    #[test]
    fn damaged_files_and_messages_are_errors_not_crashes() {
        let t = table(all(), &[("avro.codec", "null")]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part");
        let mut w = AVRO
            .writer(&t, File::create(&path).expect("create"))
            .expect("writer");
        for n in 0..400 {
            w.write(&row(n)).expect("write");
        }
        w.finish().expect("finish");
        let good = std::fs::read(&path).expect("read");
        let mut enc = AVRO.encoder(&t).expect("encoder");
        let mut datum = Vec::new();
        enc.encode(&row(7), &mut datum).expect("encode");
        let mut dec = AVRO.decoder(&t).expect("decoder");
        let files = crate::format::damaged_copies(&good, 11, 300);
        let messages = crate::format::damaged_copies(&datum, 13, 300);
        for (bad, msg) in files.into_iter().zip(messages) {
            std::fs::write(&path, &bad).expect("write");
            if let Ok(mut r) = AVRO.reader(&t, &path) {
                let mut row = Row::default();
                while let Ok(true) = r.next(&mut row) {
                    row.clear();
                }
            }
            let mut row = Row::default();
            let _ = dec.decode(&msg, &mut row);
        }
    }

    /// ROW, ARRAY (of scalars and of rows) and MAP columns come back as they went in, through a
    /// datum and through a file; the derived schema names nested records as Flink does.
    #[test]
    fn nested_rows_arrays_and_maps_round_trip() {
        use tillflow_types::nested::{push_array, push_row, push_slot, span_from};
        let item = DataType::row(vec![
            ("sku".into(), DataType::String(None)),
            ("qty".into(), DataType::Int),
            ("price".into(), DataType::Decimal(10, 2)),
        ]);
        let DataType::Row(item_type) = item else {
            panic!("not a row")
        };
        let fields = vec![
            Field::new("item", item),
            Field::new("tags", DataType::array(DataType::String(None))),
            Field::new("lines", DataType::array(item)),
            Field::new(
                "stock",
                DataType::map(DataType::String(None), DataType::Int),
            ),
        ];
        let t = table(fields.clone(), &[]);
        let json = schema_json(&t, true).expect("schema");
        assert!(json.contains(r#""name":"record_item""#), "{json}");
        let make = |n: i64| {
            let mut r = Row::default();
            let a = r.intern(&format!("A-{n}"));
            let first = push_row(
                &mut r.heap,
                &[
                    Value::Str(a),
                    Value::Int(n),
                    Value::Decimal(n as i128 * 101),
                ],
                item_type,
            );
            let t1 = r.intern("x");
            let t2 = r.intern("yé");
            let tags = push_array(
                &mut r.heap,
                &[Value::Str(t1), Value::Null, Value::Str(t2)],
                DataType::String(None),
            );
            let b = r.intern("B");
            let second = push_row(
                &mut r.heap,
                &[Value::Str(b), Value::Null, Value::Null],
                item_type,
            );
            let lines = push_array(&mut r.heap, &[Value::Str(first), Value::Str(second)], item);
            let off = r.heap.len();
            r.heap.extend_from_slice(&2u32.to_le_bytes());
            for (k, v) in [("north", Value::Int(n)), ("south", Value::Null)] {
                tillflow_types::nested::push_bytes_payload(&mut r.heap, k.as_bytes());
                push_slot(&mut r.heap, v, DataType::Int);
            }
            let stock = span_from(&r.heap, off);
            r.values = vec![
                Value::Str(first),
                if n % 4 == 0 {
                    Value::Null
                } else {
                    Value::Str(tags)
                },
                Value::Str(lines),
                Value::Str(stock),
            ];
            r
        };
        let bytes = |r: &Row| -> Vec<Vec<u8>> {
            r.values
                .iter()
                .map(|v| match v {
                    Value::Str(s) => r.bytes(*s).to_vec(),
                    _ => Vec::new(),
                })
                .collect()
        };
        let mut enc = AVRO.encoder(&t).expect("encoder");
        let mut dec = AVRO.decoder(&t).expect("decoder");
        for n in 0..20 {
            let want = make(n);
            let mut buf = Vec::new();
            enc.encode(&want, &mut buf).expect("encode");
            let mut got = Row::default();
            dec.decode(&buf, &mut got).expect("decode");
            assert_eq!(bytes(&got), bytes(&want), "{n}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part");
        let mut w = AVRO
            .writer(&t, File::create(&path).expect("create"))
            .expect("writer");
        for n in 0..20 {
            w.write(&make(n)).expect("write");
        }
        w.finish().expect("finish");
        let mut r = AVRO.reader(&t, &path).expect("reader");
        let mut got = Row::default();
        for n in 0..20 {
            got.clear();
            assert!(r.next(&mut got).expect("next"));
            assert_eq!(bytes(&got), bytes(&make(n)), "file row {n}");
        }
    }
}
