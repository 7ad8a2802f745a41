//! The `parquet` file format, with Flink's options and type mapping, through the `parquet`
//! crate's column writers and readers (no Arrow layer between the rows and the columns of a
//! flat table).
//!
//! Writing: rows are appended to one buffer per column (values and definition levels; strings'
//! bytes in one growing buffer), so no row allocates; a row group is encoded once its buffered
//! bytes reach `'parquet.block.size'` (Flink's row-group size, 128 MB) and at the end of the part
//! file. Types are written as Flink's Parquet format writes them: STRING as UTF8 binary, TINYINT
//! and SMALLINT as annotated INT32, DECIMAL as a fixed-length big-endian byte array of the fewest
//! bytes its precision needs, DATE as INT32 days, TIME as INT32 millis, and TIMESTAMP /
//! TIMESTAMP_LTZ as INT96 (Hive's layout: nanoseconds of the day and the Julian day) unless
//! `'parquet.write.int64.timestamp'` asks for INT64 in `'parquet.timestamp.time.unit'`
//! (millis by default). Compression is `'parquet.compression'` (SNAPPY by default, as Flink).
//! tillflow's session time zone is UTC, so `'parquet.utc-timezone'` true and false both write
//! the wall-clock value as a UTC instant — what Flink writes on a machine whose zone is UTC.
//! Nested columns are written in Flink's layout: a ROW as a group, an ARRAY as a `LIST` group
//! with a repeated `list` group holding an optional `element`, a MAP as a `MAP` group with a
//! repeated `key_value` group (required `key`, optional `value`); a [`Shape`] per column shreds
//! each value into its leaf columns' values and definition / repetition levels.
//!
//! Reading: a file's columns are matched to the table's by name (exactly, else ignoring case);
//! a table column the file lacks reads as NULL. Each row group is decoded column by column and
//! handed out row by row. Every physical and logical type a writer of the ecosystem uses for the
//! table's types is read (INT96, INT64 millis / micros / nanos timestamps, INT32/INT64/binary/
//! fixed decimals rescaled to the table's scale); a column whose type cannot become the
//! table's is refused when the file is opened, naming both types. A table with nested columns
//! is read by [`NestedReader`] through the crate's arrow reader, which assembles the levels of
//! any writer's lists, maps and structs.

use super::{DecodeError, FileFormat, Format, PartReader, PartWriter};
use crate::{opt, ConnectorError, OptionSpec, TableSpec};
use parquet::basic::{
    Compression, ConvertedType, GzipLevel, LogicalType, Repetition, TimeUnit, Type as Physical,
    ZstdLevel,
};
use parquet::column::reader::{get_typed_column_reader, ColumnReader};
use parquet::column::writer::{get_typed_column_writer_mut, ColumnWriter};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type, Int96, Int96Type,
};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, Type as SchemaType};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use tillflow_runtime::expr::{narrow, rescale};
use tillflow_types::value::heap_bytes;
use tillflow_types::{DataType, Row, Value};

const OPTIONS: &[OptionSpec] = &[
    opt("parquet.compression"),
    opt("parquet.block.size"),
    opt("parquet.page.size"),
    opt("parquet.enable.dictionary"),
    opt("parquet.writer.version"),
    opt("parquet.utc-timezone"),
    opt("parquet.write.int64.timestamp"),
    opt("parquet.timestamp.time.unit"),
];

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;
/// The Julian day of 1970-01-01.
const JULIAN_EPOCH: i64 = 2_440_588;

/// The `parquet` format in the registry.
pub struct ParquetFormat;

/// The registry's `parquet`.
pub static PARQUET: ParquetFormat = ParquetFormat;

impl Format for ParquetFormat {
    fn name(&self) -> &'static str {
        "parquet"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn check(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        let config = ParquetConfig::from_table(table)?;
        schema(table, &config).map(drop)
    }
    fn decoder(&self, table: &TableSpec) -> Result<Box<dyn super::Decoder>, ConnectorError> {
        Err(not_a_record_format(table))
    }
    fn encoder(&self, table: &TableSpec) -> Result<Box<dyn super::Encoder>, ConnectorError> {
        Err(not_a_record_format(table))
    }
    fn file_format(&self) -> Option<&dyn FileFormat> {
        Some(self)
    }
}

fn not_a_record_format(table: &TableSpec) -> ConnectorError {
    table.error(format!(
        "format 'parquet' is a file format: the filesystem connector reads and writes it; a message or a line takes one of {}",
        super::record_format_names()
    ))
}

/// How TIMESTAMP columns are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampLayout {
    /// Hive's INT96 (Flink's default).
    Int96,
    /// INT64 in the unit.
    Int64(TimeUnitName),
}

/// A time unit of INT64 timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnitName {
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

/// The `parquet.*` options of a table, checked without I/O.
#[derive(Clone, Debug)]
pub struct ParquetConfig {
    /// `parquet.compression`.
    pub compression: Compression,
    /// `parquet.block.size`: the buffered bytes that close a row group.
    pub block_size: usize,
    /// `parquet.page.size`.
    pub page_size: usize,
    /// `parquet.enable.dictionary`.
    pub dictionary: bool,
    /// `parquet.writer.version`.
    pub writer_version: WriterVersion,
    /// `parquet.write.int64.timestamp` and `parquet.timestamp.time.unit`.
    pub timestamps: TimestampLayout,
}

impl ParquetConfig {
    /// Parses the table's `parquet.*` options.
    pub fn from_table(table: &TableSpec) -> Result<Self, ConnectorError> {
        let compression = match table
            .option("parquet.compression")
            .map(|c| c.trim().to_ascii_uppercase())
            .as_deref()
        {
            None | Some("SNAPPY") => Compression::SNAPPY,
            Some("UNCOMPRESSED" | "NONE") => Compression::UNCOMPRESSED,
            Some("GZIP") => Compression::GZIP(GzipLevel::default()),
            Some("ZSTD") => Compression::ZSTD(ZstdLevel::default()),
            Some("LZ4") => Compression::LZ4,
            Some("LZ4_RAW") => Compression::LZ4_RAW,
            Some(other @ ("LZO" | "BROTLI")) => {
                return Err(table.error(format!(
                    "option 'parquet.compression': {other} is not built into tillflow; use SNAPPY, ZSTD, GZIP, LZ4 or UNCOMPRESSED"
                )))
            }
            Some(other) => {
                return Err(table.error(format!(
                    "option 'parquet.compression' must be one of UNCOMPRESSED, SNAPPY, GZIP, ZSTD, LZ4, LZ4_RAW, got '{}'",
                    super::clip(other)
                )))
            }
        };
        let size = |key: &str, default: u64| -> Result<usize, ConnectorError> {
            match table.option(key) {
                None => Ok(default as usize),
                Some(v) => tillflow_types::units::parse_memory_size(v)
                    .filter(|n| *n > 0 && *n <= (1 << 40))
                    .map(|n| n as usize)
                    .ok_or_else(|| {
                        table.error(format!(
                            "option '{key}' must be a positive size in bytes (e.g. '134217728' or '128mb'), got '{}'",
                            super::clip(v)
                        ))
                    }),
            }
        };
        let writer_version = match table
            .option("parquet.writer.version")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("v1" | "parquet_1_0" | "1.0") => WriterVersion::PARQUET_1_0,
            Some("v2" | "parquet_2_0" | "2.0") => WriterVersion::PARQUET_2_0,
            Some(other) => {
                return Err(table.error(format!(
                    "option 'parquet.writer.version' must be 'v1' or 'v2', got '{}'",
                    super::clip(other)
                )))
            }
        };
        table.bool_option("parquet.utc-timezone", false)?;
        let unit = match table
            .option("parquet.timestamp.time.unit")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("millis") => TimeUnitName::Millis,
            Some("micros") => TimeUnitName::Micros,
            Some("nanos") => TimeUnitName::Nanos,
            Some(other) => {
                return Err(table.error(format!(
                    "option 'parquet.timestamp.time.unit' must be 'millis', 'micros' or 'nanos', got '{}'",
                    super::clip(other)
                )))
            }
        };
        let timestamps = if table.bool_option("parquet.write.int64.timestamp", false)? {
            TimestampLayout::Int64(unit)
        } else {
            TimestampLayout::Int96
        };
        Ok(ParquetConfig {
            compression,
            block_size: size("parquet.block.size", 128 << 20)?,
            page_size: size("parquet.page.size", 1 << 20)?,
            dictionary: table.bool_option("parquet.enable.dictionary", true)?,
            writer_version,
            timestamps,
        })
    }
}

/// The fewest bytes whose two's complement holds every unscaled value of `precision` digits.
fn decimal_bytes(precision: u8) -> usize {
    let max = 10f64.powi(precision as i32);
    (1..=16)
        .find(|n| 2f64.powi(8 * *n as i32 - 1) >= max)
        .unwrap_or(16)
}

/// How one column is laid out in the file.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Bool,
    Int32,
    Int64,
    Float,
    Double,
    /// Microseconds to INT96.
    Int96,
    /// Microseconds to INT64 in a unit.
    TimestampInt64(TimeUnitName),
    /// TIME microseconds to INT32 millis.
    TimeMillis,
    /// DATE days.
    Date,
    Binary,
    /// DECIMAL as big-endian bytes of this width.
    Fixed(usize),
}

fn layout_of(ty: DataType, config: &ParquetConfig) -> Result<Layout, String> {
    Ok(match ty {
        DataType::Boolean => Layout::Bool,
        DataType::TinyInt | DataType::SmallInt | DataType::Int => Layout::Int32,
        DataType::BigInt => Layout::Int64,
        DataType::Float => Layout::Float,
        DataType::Double => Layout::Double,
        DataType::Decimal(p, _) => Layout::Fixed(decimal_bytes(p)),
        DataType::String(_) | DataType::Bytes => Layout::Binary,
        DataType::Date => Layout::Date,
        DataType::Time(_) => Layout::TimeMillis,
        DataType::Timestamp(_) | DataType::TimestampLtz(_) => match config.timestamps {
            TimestampLayout::Int96 => Layout::Int96,
            TimestampLayout::Int64(u) => Layout::TimestampInt64(u),
        },
        other => {
            return Err(format!("the parquet format does not hold {other} values"));
        }
    })
}

/// Where a column's values go: a leaf column, or a group of them (Flink's nested layout: a ROW
/// is a group, an ARRAY `LIST` with a repeated `list` group of `element`, a MAP `MAP` with a
/// repeated `key_value` group of a required `key` and a `value`).
enum Shape {
    /// Leaf column `col` (an index into the writer's columns).
    Leaf(usize),
    /// A ROW's fields.
    Group {
        nullable: bool,
        row: &'static tillflow_types::RowType,
        fields: Vec<Shape>,
    },
    /// An ARRAY: its element, and the repetition level of its `list` group.
    List {
        nullable: bool,
        element: DataType,
        child: Box<Shape>,
        rep: i16,
    },
    /// A MAP: key and value, and the repetition level of its `key_value` group.
    Map {
        nullable: bool,
        kv: (DataType, DataType),
        key: Box<Shape>,
        value: Box<Shape>,
        rep: i16,
    },
}

/// A leaf column of the file: its layout, type, and levels.
struct Leaf {
    layout: Layout,
    data_type: DataType,
    max_def: i16,
    max_rep: i16,
}

impl Shape {
    /// Every leaf under this shape gets a NULL at `def`/`rep`.
    fn nulls(&self, def: i16, rep: i16, cols: &mut [Column]) -> usize {
        match self {
            Shape::Leaf(c) => cols[*c].push_null(def, rep),
            Shape::Group { fields, .. } => fields.iter().map(|f| f.nulls(def, rep, cols)).sum(),
            Shape::List { child, .. } => child.nulls(def, rep, cols),
            Shape::Map { key, value, .. } => {
                key.nulls(def, rep, cols) + value.nulls(def, rep, cols)
            }
        }
    }

    /// Shreds `v` into the leaves' values and levels (Dremel): `def` counts the optional and
    /// repeated fields present above, `rep` is the repetition level of this value.
    fn shred(
        &self,
        v: Value,
        heap: &[u8],
        def: i16,
        rep: i16,
        cols: &mut [Column],
    ) -> Result<usize, String> {
        match self {
            Shape::Leaf(c) => cols[*c].push(v, heap, def, rep),
            Shape::Group {
                nullable,
                row,
                fields,
            } => {
                let Value::Str(span) = v else {
                    return self.null(*nullable, def, rep, cols);
                };
                let d = def + i16::from(*nullable);
                let mut n = 0;
                for (i, f) in fields.iter().enumerate() {
                    n += f.shred(
                        tillflow_types::nested::row_field(heap, span, row, i),
                        heap,
                        d,
                        rep,
                        cols,
                    )?;
                }
                Ok(n)
            }
            Shape::List {
                nullable,
                element,
                child,
                rep: r,
            } => {
                let Value::Str(span) = v else {
                    return self.null(*nullable, def, rep, cols);
                };
                let d = def + i16::from(*nullable);
                let mut n = 0;
                let mut first = true;
                for e in tillflow_types::nested::elements(heap, span, *element) {
                    n += child.shred(e, heap, d + 1, if first { rep } else { *r }, cols)?;
                    first = false;
                }
                if first {
                    n += child.nulls(d, rep, cols);
                }
                Ok(n)
            }
            Shape::Map {
                nullable,
                kv,
                key,
                value,
                rep: r,
            } => {
                let Value::Str(span) = v else {
                    return self.null(*nullable, def, rep, cols);
                };
                let d = def + i16::from(*nullable);
                let mut n = 0;
                let mut first = true;
                for (k, x) in tillflow_types::nested::map_entries(heap, span, kv.0, kv.1) {
                    let at = if first { rep } else { *r };
                    n += key.shred(k, heap, d + 1, at, cols)?;
                    n += value.shred(x, heap, d + 1, at, cols)?;
                    first = false;
                }
                if first {
                    n += key.nulls(d, rep, cols) + value.nulls(d, rep, cols);
                }
                Ok(n)
            }
        }
    }

    fn null(
        &self,
        nullable: bool,
        def: i16,
        rep: i16,
        cols: &mut [Column],
    ) -> Result<usize, String> {
        if !nullable {
            return Err("NULL in a NOT NULL column".into());
        }
        Ok(self.nulls(def, rep, cols))
    }
}

/// The Parquet type of a column (or nested field) `name` of type `ty`, its shape, and its leaves
/// (appended to `leaves`); `def`/`rep` are the levels of its parent.
fn parquet_type(
    name: &str,
    ty: DataType,
    repetition: Repetition,
    def: i16,
    rep: i16,
    config: &ParquetConfig,
    leaves: &mut Vec<Leaf>,
) -> Result<(Arc<SchemaType>, Shape), String> {
    let nullable = repetition == Repetition::OPTIONAL;
    let d = def + i16::from(nullable);
    let group = |fields: Vec<Arc<SchemaType>>, logical: Option<LogicalType>, name: &str, rep| {
        SchemaType::group_type_builder(name)
            .with_repetition(rep)
            .with_logical_type(logical)
            .with_fields(fields)
            .build()
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    match ty {
        DataType::Row(rt) => {
            let mut fields = Vec::new();
            let mut shapes = Vec::new();
            for (n, t) in &rt.fields {
                let (f, sh) = parquet_type(n, *t, Repetition::OPTIONAL, d, rep, config, leaves)?;
                fields.push(f);
                shapes.push(sh);
            }
            Ok((
                group(fields, None, name, repetition)?,
                Shape::Group {
                    nullable,
                    row: rt,
                    fields: shapes,
                },
            ))
        }
        DataType::Array(e) => {
            let (elem, child) = parquet_type(
                "element",
                *e,
                Repetition::OPTIONAL,
                d + 1,
                rep + 1,
                config,
                leaves,
            )?;
            let list = group(vec![elem], None, "list", Repetition::REPEATED)?;
            Ok((
                group(vec![list], Some(LogicalType::List), name, repetition)?,
                Shape::List {
                    nullable,
                    element: *e,
                    child: Box::new(child),
                    rep: rep + 1,
                },
            ))
        }
        DataType::Map(k, v) => {
            let (kf, ks) = parquet_type(
                "key",
                *k,
                Repetition::REQUIRED,
                d + 1,
                rep + 1,
                config,
                leaves,
            )?;
            let (vf, vs) = parquet_type(
                "value",
                *v,
                Repetition::OPTIONAL,
                d + 1,
                rep + 1,
                config,
                leaves,
            )?;
            let kv = group(vec![kf, vf], None, "key_value", Repetition::REPEATED)?;
            Ok((
                group(vec![kv], Some(LogicalType::Map), name, repetition)?,
                Shape::Map {
                    nullable,
                    kv: (*k, *v),
                    key: Box::new(ks),
                    value: Box::new(vs),
                    rep: rep + 1,
                },
            ))
        }
        _ => {
            let (t, layout) = primitive(name, ty, repetition, config)?;
            leaves.push(Leaf {
                layout,
                data_type: ty,
                max_def: d,
                max_rep: rep,
            });
            Ok((t, Shape::Leaf(leaves.len() - 1)))
        }
    }
}

/// A scalar column's Parquet type and layout, as Flink's Parquet format writes it.
fn primitive(
    name: &str,
    ty: DataType,
    repetition: Repetition,
    config: &ParquetConfig,
) -> Result<(Arc<SchemaType>, Layout), String> {
    let layout = layout_of(ty, config)?;
    let (physical, logical): (Physical, Option<LogicalType>) = match (layout, ty) {
        (Layout::Bool, _) => (Physical::BOOLEAN, None),
        (Layout::Int32, DataType::TinyInt) => (
            Physical::INT32,
            Some(LogicalType::Integer {
                bit_width: 8,
                is_signed: true,
            }),
        ),
        (Layout::Int32, DataType::SmallInt) => (
            Physical::INT32,
            Some(LogicalType::Integer {
                bit_width: 16,
                is_signed: true,
            }),
        ),
        (Layout::Int32, _) => (Physical::INT32, None),
        (Layout::Int64, _) => (Physical::INT64, None),
        (Layout::Float, _) => (Physical::FLOAT, None),
        (Layout::Double, _) => (Physical::DOUBLE, None),
        (Layout::Fixed(_), DataType::Decimal(p, s)) => (
            Physical::FIXED_LEN_BYTE_ARRAY,
            Some(LogicalType::Decimal {
                scale: s as i32,
                precision: p as i32,
            }),
        ),
        (Layout::Fixed(_), _) => (Physical::FIXED_LEN_BYTE_ARRAY, None),
        (Layout::Binary, DataType::String(_)) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        (Layout::Binary, _) => (Physical::BYTE_ARRAY, None),
        (Layout::Date, _) => (Physical::INT32, Some(LogicalType::Date)),
        (Layout::TimeMillis, _) => (
            Physical::INT32,
            Some(LogicalType::Time {
                is_adjusted_to_u_t_c: true,
                unit: TimeUnit::MILLIS,
            }),
        ),
        (Layout::Int96, _) => (Physical::INT96, None),
        (Layout::TimestampInt64(u), ty) => (
            Physical::INT64,
            Some(LogicalType::Timestamp {
                is_adjusted_to_u_t_c: matches!(ty, DataType::TimestampLtz(_)),
                unit: match u {
                    TimeUnitName::Millis => TimeUnit::MILLIS,
                    TimeUnitName::Micros => TimeUnit::MICROS,
                    TimeUnitName::Nanos => TimeUnit::NANOS,
                },
            }),
        ),
    };
    let mut b = SchemaType::primitive_type_builder(name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical);
    if let (Layout::Fixed(n), DataType::Decimal(p, s)) = (layout, ty) {
        b = b
            .with_length(n as i32)
            .with_precision(p as i32)
            .with_scale(s as i32);
    }
    let t = b.build().map_err(|e| e.to_string())?;
    Ok((Arc::new(t), layout))
}

/// The file schema, the table columns' shapes and the file's leaf columns.
type FileSchema = (Arc<SchemaType>, Vec<Shape>, Vec<Leaf>);

/// The file schema of the table's columns, its columns' shapes and its leaf columns.
fn schema(table: &TableSpec, config: &ParquetConfig) -> Result<FileSchema, ConnectorError> {
    let mut fields = Vec::with_capacity(table.schema.fields.len());
    let mut shapes = Vec::with_capacity(table.schema.fields.len());
    let mut leaves = Vec::with_capacity(table.schema.fields.len());
    for f in &table.schema.fields {
        let repetition = if f.nullable {
            Repetition::OPTIONAL
        } else {
            Repetition::REQUIRED
        };
        let (t, shape) = parquet_type(&f.name, f.data_type, repetition, 0, 0, config, &mut leaves)
            .map_err(|m| table.error(format!("column `{}`: {m}", f.name)))?;
        fields.push(t);
        shapes.push(shape);
    }
    let root = SchemaType::group_type_builder("flink_schema")
        .with_fields(fields)
        .build()
        .map_err(|e| table.error(e.to_string()))?;
    Ok((Arc::new(root), shapes, leaves))
}

/// One column's buffered values of the row group being filled.
enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I96(Vec<Int96>),
    /// The bytes of every value and where each ends (binary and fixed-width columns).
    Bytes(Vec<u8>, Vec<usize>),
}

struct Column {
    layout: Layout,
    data_type: DataType,
    /// Definition and repetition levels of a present value (0: the column is required, or not
    /// in a list).
    max_def: i16,
    max_rep: i16,
    values: Values,
    defs: Vec<i16>,
    reps: Vec<i16>,
}

impl Column {
    /// How much the buffers hold (to take back a row that failed half-way).
    fn mark(&self) -> [usize; 4] {
        let (a, b) = match &self.values {
            Values::Bool(v) => (v.len(), 0),
            Values::I32(v) => (v.len(), 0),
            Values::I64(v) => (v.len(), 0),
            Values::F32(v) => (v.len(), 0),
            Values::F64(v) => (v.len(), 0),
            Values::I96(v) => (v.len(), 0),
            Values::Bytes(d, e) => (e.len(), d.len()),
        };
        [a, b, self.defs.len(), self.reps.len()]
    }

    /// Drops what was buffered after `mark`.
    fn rollback(&mut self, [a, b, d, r]: [usize; 4]) {
        match &mut self.values {
            Values::Bool(v) => v.truncate(a),
            Values::I32(v) => v.truncate(a),
            Values::I64(v) => v.truncate(a),
            Values::F32(v) => v.truncate(a),
            Values::F64(v) => v.truncate(a),
            Values::I96(v) => v.truncate(a),
            Values::Bytes(data, ends) => {
                ends.truncate(a);
                data.truncate(b);
            }
        }
        self.defs.truncate(d);
        self.reps.truncate(r);
    }

    /// Records a NULL (or a missing nested value) at definition level `def`.
    fn push_null(&mut self, def: i16, rep: i16) -> usize {
        let mut n = 0;
        if self.max_def > 0 {
            self.defs.push(def);
            n += 2;
        }
        if self.max_rep > 0 {
            self.reps.push(rep);
            n += 2;
        }
        n
    }

    /// Appends `v` at repetition level `rep`; `def` is the level of its parent (a NULL is
    /// recorded there; a present value at the column's full level).
    fn push(&mut self, v: Value, heap: &[u8], def: i16, rep: i16) -> Result<usize, String> {
        if v.is_null() {
            if def >= self.max_def {
                return Err("NULL in a NOT NULL column".into());
            }
            return Ok(self.push_null(def, rep));
        }
        // what the buffers hold: the value, its end offset (binary), its levels
        let level = self.push_null(self.max_def, rep);
        let mismatch = || format!("value {v:?} does not fit the column's {}", self.data_type);
        Ok(level
            + match (&mut self.values, v) {
                (Values::Bool(b), Value::Bool(x)) => {
                    b.push(x);
                    1
                }
                (Values::I32(b), Value::Int(i)) => {
                    b.push(narrow(i, self.data_type) as i32);
                    4
                }
                (Values::I32(b), Value::Date(d)) => {
                    b.push(d);
                    4
                }
                (Values::I32(b), Value::Time(t)) => {
                    b.push(t.div_euclid(1000) as i32);
                    4
                }
                (Values::I64(b), Value::Int(i)) => {
                    b.push(i);
                    8
                }
                (Values::I64(b), Value::Timestamp(us)) => {
                    b.push(match self.layout {
                        Layout::TimestampInt64(TimeUnitName::Millis) => us.div_euclid(1000),
                        Layout::TimestampInt64(TimeUnitName::Nanos) => us.saturating_mul(1000),
                        _ => us,
                    });
                    8
                }
                (Values::F32(b), Value::Float(f)) => {
                    b.push(f as f32);
                    4
                }
                (Values::F64(b), Value::Float(f)) => {
                    b.push(f);
                    8
                }
                (Values::I96(b), Value::Timestamp(us)) => {
                    let days = us.div_euclid(DAY_MICROS);
                    let nanos = (us.rem_euclid(DAY_MICROS) as u64) * 1000;
                    let mut x = Int96::new();
                    x.set_data(
                        nanos as u32,
                        (nanos >> 32) as u32,
                        (days + JULIAN_EPOCH) as u32,
                    );
                    b.push(x);
                    12
                }
                (Values::Bytes(data, ends), Value::Str(s)) => {
                    data.extend_from_slice(heap_bytes(heap, s));
                    ends.push(data.len());
                    s.len as usize + 8
                }
                (Values::Bytes(data, ends), Value::Decimal(d)) => {
                    let Layout::Fixed(n) = self.layout else {
                        return Err(mismatch());
                    };
                    data.extend_from_slice(&d.to_be_bytes()[16 - n..]);
                    ends.push(data.len());
                    n + 8
                }
                _ => return Err(mismatch()),
            })
    }

    fn clear(&mut self) {
        self.defs.clear();
        self.reps.clear();
        match &mut self.values {
            Values::Bool(b) => b.clear(),
            Values::I32(b) => b.clear(),
            Values::I64(b) => b.clear(),
            Values::F32(b) => b.clear(),
            Values::F64(b) => b.clear(),
            Values::I96(b) => b.clear(),
            Values::Bytes(d, e) => {
                d.clear();
                e.clear();
            }
        }
    }

    /// Writes the buffered values into the row group's column writer.
    fn write_to(&mut self, w: &mut ColumnWriter<'_>) -> parquet::errors::Result<()> {
        let defs = (self.max_def > 0).then_some(self.defs.as_slice());
        let reps = (self.max_rep > 0).then_some(self.reps.as_slice());
        match &mut self.values {
            Values::Bool(b) => get_typed_column_writer_mut::<BoolType>(w)
                .write_batch(b.as_slice(), defs, reps)
                .map(drop),
            Values::I32(b) => get_typed_column_writer_mut::<Int32Type>(w)
                .write_batch(b.as_slice(), defs, reps)
                .map(drop),
            Values::I64(b) => get_typed_column_writer_mut::<Int64Type>(w)
                .write_batch(b.as_slice(), defs, reps)
                .map(drop),
            Values::F32(b) => get_typed_column_writer_mut::<FloatType>(w)
                .write_batch(b.as_slice(), defs, reps)
                .map(drop),
            Values::F64(b) => get_typed_column_writer_mut::<DoubleType>(w)
                .write_batch(b.as_slice(), defs, reps)
                .map(drop),
            Values::I96(b) => get_typed_column_writer_mut::<Int96Type>(w)
                .write_batch(b.as_slice(), defs, reps)
                .map(drop),
            Values::Bytes(data, ends) => {
                // the row group's bytes become one shared buffer (moved, not copied); each value
                // a slice of it, handed over a few thousand rows at a time
                let shared = bytes::Bytes::from(std::mem::take(data));
                let fixed = matches!(self.layout, Layout::Fixed(_));
                let rows = if self.max_def > 0 {
                    self.defs.len()
                } else {
                    ends.len()
                };
                // levels of a repeated column go in one batch (a chunk must not split a record)
                let chunk = if self.max_rep > 0 {
                    rows.max(1)
                } else {
                    CHUNK_ROWS
                };
                let (mut row, mut value, mut start) = (0, 0, 0);
                let mut bins: Vec<ByteArray> = Vec::with_capacity(chunk.min(CHUNK_ROWS));
                let mut fixeds: Vec<FixedLenByteArray> = Vec::new();
                while row < rows {
                    let upto = (row + chunk).min(rows);
                    let defs = (self.max_def > 0).then(|| &self.defs[row..upto]);
                    let reps = (self.max_rep > 0).then(|| &self.reps[row..upto]);
                    let max_def = self.max_def;
                    let present =
                        defs.map_or(upto - row, |d| d.iter().filter(|x| **x == max_def).count());
                    bins.clear();
                    for &e in &ends[value..value + present] {
                        bins.push(ByteArray::from(shared.slice(start..e)));
                        start = e;
                    }
                    value += present;
                    if fixed {
                        fixeds.clear();
                        fixeds.extend(bins.drain(..).map(FixedLenByteArray::from));
                        get_typed_column_writer_mut::<FixedLenByteArrayType>(w)
                            .write_batch(&fixeds, defs, reps)?;
                    } else {
                        get_typed_column_writer_mut::<ByteArrayType>(w)
                            .write_batch(&bins, defs, reps)?;
                    }
                    row = upto;
                }
                Ok(())
            }
        }
    }
}

/// Rows of a binary column handed to the column writer at a time.
const CHUNK_ROWS: usize = 8192;

/// Writes one Parquet part file.
pub struct ParquetWriter {
    table: String,
    writer: SerializedFileWriter<File>,
    /// Per table column: where its values go.
    shapes: Vec<Shape>,
    /// The file's leaf columns.
    columns: Vec<Column>,
    /// Each column's buffer lengths before the row being written (kept across rows).
    marks: Vec<[usize; 4]>,
    rows: usize,
    buffered: usize,
    block_size: usize,
}

impl FileFormat for ParquetFormat {
    fn writer(&self, table: &TableSpec, out: File) -> Result<Box<dyn PartWriter>, ConnectorError> {
        let config = ParquetConfig::from_table(table)?;
        let (root, shapes, leaves) = schema(table, &config)?;
        let props = WriterProperties::builder()
            .set_compression(config.compression)
            .set_dictionary_enabled(config.dictionary)
            .set_data_page_size_limit(config.page_size)
            .set_writer_version(config.writer_version)
            .set_created_by(format!("tillflow version {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, root, Arc::new(props))
            .map_err(|e| table.error(format!("parquet writer: {e}")))?;
        let columns = leaves
            .into_iter()
            .map(
                |Leaf {
                     layout,
                     data_type,
                     max_def,
                     max_rep,
                 }| Column {
                    layout,
                    data_type,
                    max_def,
                    max_rep,
                    values: match layout {
                        Layout::Bool => Values::Bool(Vec::new()),
                        Layout::Int32 | Layout::Date | Layout::TimeMillis => {
                            Values::I32(Vec::new())
                        }
                        Layout::Int64 | Layout::TimestampInt64(_) => Values::I64(Vec::new()),
                        Layout::Float => Values::F32(Vec::new()),
                        Layout::Double => Values::F64(Vec::new()),
                        Layout::Int96 => Values::I96(Vec::new()),
                        Layout::Binary | Layout::Fixed(_) => Values::Bytes(Vec::new(), Vec::new()),
                    },
                    defs: Vec::new(),
                    reps: Vec::new(),
                },
            )
            .collect();
        Ok(Box::new(ParquetWriter {
            table: table.name.clone(),
            writer,
            shapes,
            columns,
            marks: Vec::new(),
            rows: 0,
            buffered: 0,
            block_size: config.block_size,
        }))
    }

    fn reader(
        &self,
        table: &TableSpec,
        path: &Path,
    ) -> Result<Box<dyn PartReader>, ConnectorError> {
        let nested = table.schema.fields.iter().any(|f| {
            matches!(
                f.data_type,
                DataType::Row(_) | DataType::Array(_) | DataType::Map(..)
            )
        });
        if nested {
            Ok(Box::new(NestedReader::open(table, path)?))
        } else {
            Ok(Box::new(ParquetReader::open(table, path)?))
        }
    }
}

/// Reads a table with nested (ROW, ARRAY, MAP) columns: the parquet crate's arrow reader
/// assembles the nested values from the levels, [`crate::arrow_rows::read_value`] turns them
/// into the row's nested encoding. Columns by name; a missing one is NULL.
pub struct NestedReader {
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    batch: Option<arrow_array::RecordBatch>,
    at: usize,
    /// Per table column: its column in the batches.
    columns: Vec<Option<usize>>,
    types: Vec<DataType>,
    names: Vec<String>,
    position: u64,
}

impl NestedReader {
    /// Opens `path` and matches its top-level columns to the table's by name.
    pub fn open(table: &TableSpec, path: &Path) -> Result<Self, ConnectorError> {
        let shown = path.display().to_string();
        let bad = |m: String| table.error(format!("{shown}: {m}"));
        let f = File::open(path).map_err(|e| ConnectorError::Io {
            path: shown.clone(),
            source: e,
        })?;
        // the arrow types the Parquet schema implies, not a writer's stored arrow schema
        // (dictionary or view arrays would not convert)
        let options =
            parquet::arrow::arrow_reader::ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let builder = guarded(|| {
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new_with_options(
                f, options,
            )
            .map_err(|e| e.to_string())
        })
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let schema = builder.schema().clone();
        let mut columns = Vec::with_capacity(table.schema.fields.len());
        for f in &table.schema.fields {
            let found = schema.index_of(&f.name).ok().or_else(|| {
                schema
                    .fields()
                    .iter()
                    .position(|a| a.name().eq_ignore_ascii_case(&f.name))
            });
            if let Some(i) = found {
                // refused once, here, rather than on every row
                let have = schema.field(i).data_type();
                if !crate::arrow_rows::readable_as(have, f.data_type) {
                    return Err(bad(format!(
                        "column `{}` is {have} in the file and cannot be read as {}",
                        f.name, f.data_type
                    )));
                }
            }
            columns.push(found);
        }
        let reader = guarded(|| {
            builder
                .with_batch_size(4096)
                .build()
                .map_err(|e| e.to_string())
        })
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        Ok(NestedReader {
            reader,
            batch: None,
            at: 0,
            columns,
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            position: 0,
        })
    }
}

impl PartReader for NestedReader {
    fn next(&mut self, row: &mut Row) -> Result<bool, DecodeError> {
        while self.batch.as_ref().is_none_or(|b| self.at >= b.num_rows()) {
            let next = guarded(|| self.reader.next().transpose().map_err(|e| e.to_string()))
                .map_err(|m| DecodeError {
                    field: None,
                    message: m,
                })?;
            match next {
                None => return Ok(false),
                Some(b) => {
                    self.batch = Some(b);
                    self.at = 0;
                }
            }
        }
        let Some(batch) = &self.batch else {
            return Ok(false);
        };
        for ((c, ty), name) in self.columns.iter().zip(&self.types).zip(&self.names) {
            let v = match c {
                Some(c) => {
                    crate::arrow_rows::read_value(batch.column(*c).as_ref(), self.at, *ty, row)
                        .map_err(|m| DecodeError {
                            field: Some(name.clone()),
                            message: m,
                        })?
                }
                None => Value::Null,
            };
            row.values.push(v);
        }
        self.at += 1;
        self.position += 1;
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.position
    }
}

impl ParquetWriter {
    /// Encodes the buffered rows as one row group.
    fn write_row_group(&mut self) -> Result<(), String> {
        if self.rows == 0 {
            return Ok(());
        }
        let fail =
            |e: parquet::errors::ParquetError| format!("table `{}`: parquet: {e}", self.table);
        let mut rg = self.writer.next_row_group().map_err(fail)?;
        for c in &mut self.columns {
            let Some(mut col) = rg.next_column().map_err(fail)? else {
                return Err(format!(
                    "table `{}`: parquet: fewer columns than the schema",
                    self.table
                ));
            };
            c.write_to(col.untyped()).map_err(fail)?;
            col.close().map_err(fail)?;
            c.clear();
        }
        rg.close().map_err(fail)?;
        self.rows = 0;
        self.buffered = 0;
        Ok(())
    }
}

impl PartWriter for ParquetWriter {
    fn write(&mut self, row: &Row) -> Result<(), String> {
        if row.kind.is_addition() && row.kind != tillflow_types::RowKind::Insert {
            return Err(
                "the parquet format holds inserted rows only (an update reached it)".into(),
            );
        }
        let mut added = 0;
        self.marks.clear();
        self.marks.extend(self.columns.iter().map(Column::mark));
        for (i, shape) in self.shapes.iter().enumerate() {
            let v = row.values.get(i).copied().unwrap_or(Value::Null);
            match shape.shred(v, &row.heap, 0, 0, &mut self.columns) {
                Ok(n) => added += n,
                Err(m) => {
                    // the columns before it took the row: take it back from all of them
                    let marks = std::mem::take(&mut self.marks);
                    for (c, m) in self.columns.iter_mut().zip(&marks) {
                        c.rollback(*m);
                    }
                    self.marks = marks;
                    return Err(format!("column {}: {m}", i + 1));
                }
            }
        }
        self.buffered += added;
        self.rows += 1;
        if self.buffered >= self.block_size {
            self.write_row_group()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.buffered) as u64
    }

    fn finish(mut self: Box<Self>) -> Result<File, String> {
        self.write_row_group()?;
        let table = self.table.clone();
        self.writer
            .into_inner()
            .map_err(|e| format!("table `{table}`: parquet: {e}"))
    }
}

/// How a file column becomes a table column's values.
#[derive(Clone, Copy, Debug)]
enum Read {
    Bool,
    /// An integer (INT32/INT64) as the table's integer type.
    Int,
    /// INT32 days.
    Date,
    /// INT32 millis or INT64 micros / nanos of the day, to micros (the multiplier or divisor).
    TimeMillis,
    TimeMicros,
    TimeNanos,
    /// INT64 since the epoch in a unit, to micros.
    TsMillis,
    TsMicros,
    TsNanos,
    Int96,
    Float,
    /// A decimal stored with `scale` (integer, binary or fixed bytes) to the table's scale.
    Decimal(u8),
    Str,
    Bytes,
}

/// One column of the row group being handed out.
enum Decoded {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I96(Vec<Int96>),
    Bin(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

struct ReadColumn {
    /// The file's column index.
    index: usize,
    read: Read,
    ty: DataType,
    max_def: i16,
    defs: Vec<i16>,
    data: Decoded,
    /// The next row, and the next non-null value.
    next: usize,
    next_value: usize,
}

/// Reads the rows of one Parquet file.
pub struct ParquetReader {
    file: SerializedFileReader<File>,
    /// The table's column names (for errors).
    names: Vec<String>,
    /// Per table column: the file column it reads, or `None` (NULL).
    columns: Vec<Option<ReadColumn>>,
    row_group: usize,
    rows_in_group: usize,
    row_in_group: usize,
    position: u64,
}

fn describe(c: &ColumnDescPtr) -> String {
    match c.logical_type_ref() {
        Some(l) => format!("{:?} ({l:?})", c.physical_type()),
        None if c.converted_type() != ConvertedType::NONE => {
            format!("{:?} ({})", c.physical_type(), c.converted_type())
        }
        None => format!("{:?}", c.physical_type()),
    }
}

/// How a file column of `c`'s type is read as `ty`, if it can be.
fn read_as(c: &ColumnDescPtr, ty: DataType) -> Option<Read> {
    let logical = c.logical_type_ref();
    let unit = |u: &TimeUnit| match u {
        TimeUnit::MILLIS => 0,
        TimeUnit::MICROS => 1,
        _ => 2,
    };
    Some(match (c.physical_type(), ty) {
        (Physical::BOOLEAN, DataType::Boolean) => Read::Bool,
        (
            Physical::INT32 | Physical::INT64,
            DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt,
        ) if !matches!(
            logical,
            Some(
                LogicalType::Date
                    | LogicalType::Time { .. }
                    | LogicalType::Timestamp { .. }
                    | LogicalType::Decimal { .. }
            )
        ) =>
        {
            Read::Int
        }
        (Physical::INT32, DataType::Date) => Read::Date,
        (Physical::INT32, DataType::Time(_)) => Read::TimeMillis,
        (Physical::INT64, DataType::Time(_)) => match logical {
            Some(LogicalType::Time { unit: u, .. }) if unit(u) == 2 => Read::TimeNanos,
            _ => Read::TimeMicros,
        },
        (Physical::INT96, DataType::Timestamp(_) | DataType::TimestampLtz(_)) => Read::Int96,
        (Physical::INT64, DataType::Timestamp(_) | DataType::TimestampLtz(_)) => match logical {
            Some(LogicalType::Timestamp { unit: u, .. }) => {
                [Read::TsMillis, Read::TsMicros, Read::TsNanos][unit(u)]
            }
            _ => match c.converted_type() {
                ConvertedType::TIMESTAMP_MILLIS => Read::TsMillis,
                ConvertedType::TIMESTAMP_MICROS => Read::TsMicros,
                _ => return None,
            },
        },
        (Physical::FLOAT | Physical::DOUBLE, DataType::Float | DataType::Double) => Read::Float,
        (
            Physical::INT32
            | Physical::INT64
            | Physical::BYTE_ARRAY
            | Physical::FIXED_LEN_BYTE_ARRAY,
            DataType::Decimal(..),
        ) if matches!(logical, Some(LogicalType::Decimal { .. }))
            || c.converted_type() == ConvertedType::DECIMAL =>
        {
            Read::Decimal(c.type_scale().clamp(0, 38) as u8)
        }
        (Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY, DataType::String(_))
            if !matches!(logical, Some(LogicalType::Decimal { .. })) =>
        {
            Read::Str
        }
        (Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY, DataType::Bytes) => Read::Bytes,
        _ => return None,
    })
}

impl ParquetReader {
    /// Opens `path` and matches its columns to the table's.
    pub fn open(table: &TableSpec, path: &Path) -> Result<Self, ConnectorError> {
        let shown = path.display().to_string();
        let bad = |m: String| table.error(format!("{shown}: {m}"));
        let f = File::open(path).map_err(|e| ConnectorError::Io {
            path: shown.clone(),
            source: e,
        })?;
        let file = guarded(|| SerializedFileReader::new(f).map_err(|e| e.to_string()))
            .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let descr = file.metadata().file_metadata().schema_descr_ptr();
        let cols = descr.columns();
        let mut columns = Vec::with_capacity(table.schema.fields.len());
        for field in &table.schema.fields {
            let found = cols
                .iter()
                .position(|c| c.path().parts().len() == 1 && c.name() == field.name)
                .or_else(|| {
                    cols.iter().position(|c| {
                        c.path().parts().len() == 1 && c.name().eq_ignore_ascii_case(&field.name)
                    })
                });
            let Some(index) = found else {
                columns.push(None);
                continue;
            };
            let c = &cols[index];
            if c.max_rep_level() > 0 {
                return Err(bad(format!(
                    "column `{}` is repeated (a list); tillflow reads scalar Parquet columns only",
                    field.name
                )));
            }
            let read = read_as(c, field.data_type).ok_or_else(|| {
                bad(format!(
                    "column `{}` is {} in the file and cannot be read as {}",
                    field.name,
                    describe(c),
                    field.data_type
                ))
            })?;
            columns.push(Some(ReadColumn {
                index,
                read,
                ty: field.data_type,
                max_def: c.max_def_level(),
                defs: Vec::new(),
                data: Decoded::Bool(Vec::new()),
                next: 0,
                next_value: 0,
            }));
        }
        Ok(ParquetReader {
            file,
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            columns,
            row_group: 0,
            rows_in_group: 0,
            row_in_group: 0,
            position: 0,
        })
    }

    /// Decodes the next row group with rows; false when none is left.
    fn load_row_group(&mut self) -> Result<bool, DecodeError> {
        guarded(|| self.load_row_group_unguarded()).map_err(|m| DecodeError {
            field: None,
            message: m,
        })
    }

    fn load_row_group_unguarded(&mut self) -> Result<bool, String> {
        while self.row_group < self.file.num_row_groups() {
            let at = self.row_group;
            let fail = |e: parquet::errors::ParquetError| format!("row group {at}: {e}");
            let rg = self.file.get_row_group(at).map_err(fail)?;
            let rows = rg.metadata().num_rows().max(0) as usize;
            for c in self.columns.iter_mut().flatten() {
                let reader = rg.get_column_reader(c.index).map_err(fail)?;
                c.defs.clear();
                c.next = 0;
                c.next_value = 0;
                c.data = read_column(reader, rows, c.max_def, &mut c.defs).map_err(fail)?;
            }
            self.row_group += 1;
            if rows > 0 {
                self.rows_in_group = rows;
                self.row_in_group = 0;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Reads all `rows` records of one column chunk.
fn read_column(
    reader: ColumnReader,
    rows: usize,
    max_def: i16,
    defs: &mut Vec<i16>,
) -> parquet::errors::Result<Decoded> {
    fn all<T: parquet::data_type::DataType>(
        reader: ColumnReader,
        rows: usize,
        max_def: i16,
        defs: &mut Vec<i16>,
    ) -> parquet::errors::Result<Vec<T::T>> {
        let mut r = get_typed_column_reader::<T>(reader);
        let mut values = Vec::with_capacity(rows);
        let mut read = 0;
        while read < rows {
            let (n, _, _) = r.read_records(
                rows - read,
                (max_def > 0).then_some(&mut *defs),
                None,
                &mut values,
            )?;
            if n == 0 {
                break;
            }
            read += n;
        }
        Ok(values)
    }
    Ok(match reader {
        ColumnReader::BoolColumnReader(_) => {
            Decoded::Bool(all::<BoolType>(reader, rows, max_def, defs)?)
        }
        ColumnReader::Int32ColumnReader(_) => {
            Decoded::I32(all::<Int32Type>(reader, rows, max_def, defs)?)
        }
        ColumnReader::Int64ColumnReader(_) => {
            Decoded::I64(all::<Int64Type>(reader, rows, max_def, defs)?)
        }
        ColumnReader::Int96ColumnReader(_) => {
            Decoded::I96(all::<Int96Type>(reader, rows, max_def, defs)?)
        }
        ColumnReader::FloatColumnReader(_) => {
            Decoded::F32(all::<FloatType>(reader, rows, max_def, defs)?)
        }
        ColumnReader::DoubleColumnReader(_) => {
            Decoded::F64(all::<DoubleType>(reader, rows, max_def, defs)?)
        }
        ColumnReader::ByteArrayColumnReader(_) => {
            Decoded::Bin(all::<ByteArrayType>(reader, rows, max_def, defs)?)
        }
        ColumnReader::FixedLenByteArrayColumnReader(_) => {
            Decoded::Fixed(all::<FixedLenByteArrayType>(reader, rows, max_def, defs)?)
        }
    })
}

/// Runs `f`, turning a panic of the parquet crate (it asserts on some damaged metadata) into
/// an error naming the damage.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unreadable".into());
            Err(format!("the file is damaged ({why})"))
        }
    }
}

impl ReadColumn {
    /// The value of the next row, its bytes appended to `row`'s heap.
    fn take(&mut self, row: &mut Row) -> Result<Value, String> {
        let i = self.next;
        self.next += 1;
        if self.max_def > 0 {
            // every row of a flat column has one level; the values skip NULLs
            let def = self.defs.get(i).copied().unwrap_or(0);
            if def < self.max_def {
                return Ok(Value::Null);
            }
        }
        // the values skip NULLs: their own cursor
        let k = self.next_value;
        self.next_value += 1;
        let short = || "fewer values than rows in the column chunk".to_string();
        let int = |x: i64| Value::Int(narrow(x, self.ty));
        Ok(match (&self.data, self.read) {
            (Decoded::Bool(v), _) => Value::Bool(*v.get(k).ok_or_else(short)?),
            (Decoded::I32(v), r) => {
                let x = *v.get(k).ok_or_else(short)? as i64;
                match r {
                    Read::Date => Value::Date(x as i32),
                    Read::TimeMillis => Value::Time(x * 1000),
                    Read::Decimal(s) => self.decimal(x as i128, s),
                    _ => int(x),
                }
            }
            (Decoded::I64(v), r) => {
                let x = *v.get(k).ok_or_else(short)?;
                match r {
                    Read::TsMillis => Value::Timestamp(x.saturating_mul(1000)),
                    Read::TsMicros => Value::Timestamp(x),
                    Read::TsNanos => Value::Timestamp(x.div_euclid(1000)),
                    Read::TimeMillis => Value::Time(x.saturating_mul(1000)),
                    Read::TimeMicros => Value::Time(x),
                    Read::TimeNanos => Value::Time(x.div_euclid(1000)),
                    Read::Decimal(s) => self.decimal(x as i128, s),
                    _ => int(x),
                }
            }
            (Decoded::I96(v), _) => Value::Timestamp(v.get(k).ok_or_else(short)?.to_micros()),
            (Decoded::F32(v), _) => Value::Float(*v.get(k).ok_or_else(short)? as f64),
            (Decoded::F64(v), _) => Value::Float(*v.get(k).ok_or_else(short)?),
            (Decoded::Bin(v), r) => self.bytes(v.get(k).ok_or_else(short)?.data(), r, row)?,
            (Decoded::Fixed(v), r) => self.bytes(v.get(k).ok_or_else(short)?.data(), r, row)?,
        })
    }

    fn decimal(&self, unscaled: i128, scale: u8) -> Value {
        match self.ty {
            DataType::Decimal(_, s) => Value::Decimal(rescale(unscaled, scale, s)),
            _ => Value::Null,
        }
    }

    fn bytes(&self, b: &[u8], read: Read, row: &mut Row) -> Result<Value, String> {
        match read {
            Read::Decimal(s) => super::be_i128(b)
                .map(|u| self.decimal(u, s))
                .ok_or_else(|| format!("a decimal of {} bytes", b.len())),
            Read::Str => {
                let s =
                    std::str::from_utf8(b).map_err(|_| "a string that is not UTF-8".to_string())?;
                Ok(Value::Str(row.intern(s)))
            }
            _ => {
                let off = row.heap.len() as u32;
                row.heap.extend_from_slice(b);
                Ok(Value::Str(tillflow_types::value::StrRef {
                    off,
                    len: b.len() as u32,
                }))
            }
        }
    }
}

impl PartReader for ParquetReader {
    fn next(&mut self, row: &mut Row) -> Result<bool, DecodeError> {
        if self.row_in_group >= self.rows_in_group && !self.load_row_group()? {
            return Ok(false);
        }
        // the source names the file and the row
        for (c, name) in self.columns.iter_mut().zip(&self.names) {
            let v = match c {
                Some(c) => c.take(row).map_err(|m| DecodeError {
                    field: Some(name.clone()),
                    message: m,
                })?,
                None => Value::Null,
            };
            row.values.push(v);
        }
        self.row_in_group += 1;
        self.position += 1;
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    fn spec(fields: Vec<Field>, options: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Schema::new(fields),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("format".to_string(), "parquet".to_string())])
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn all_types() -> Vec<Field> {
        vec![
            Field::new("b", DataType::Boolean),
            Field::new("ti", DataType::TinyInt),
            Field::new("si", DataType::SmallInt),
            Field::new("i", DataType::Int),
            Field::new("bi", DataType::BigInt),
            Field::new("f", DataType::Float),
            Field::new("d", DataType::Double),
            Field::new("dec", DataType::Decimal(20, 3)),
            Field::new("s", DataType::String(None)),
            Field::new("by", DataType::Bytes),
            Field::new("dt", DataType::Date),
            Field::new("tm", DataType::Time(3)),
            Field::new("ts", DataType::Timestamp(3)),
            Field::new("ltz", DataType::TimestampLtz(6)),
        ]
    }

    /// Row `n` of the round-trip test: every type, NULLs in every column now and then,
    /// negative values and times before 1970.
    fn row(n: i64) -> Row {
        let mut r = Row::with_capacity(14);
        let null = |k: i64| (n + k) % 7 == 0;
        let push =
            |r: &mut Row, k: i64, v: Value| r.values.push(if null(k) { Value::Null } else { v });
        push(&mut r, 0, Value::Bool(n % 2 == 0));
        push(&mut r, 1, Value::Int(n % 100 - 50));
        push(&mut r, 2, Value::Int(n * 7 % 30000 - 15000));
        push(
            &mut r,
            3,
            Value::Int(n * 1_000_003 % 2_000_000_000 - 1_000_000_000),
        );
        push(&mut r, 4, Value::Int(n * 9_876_543_210 - 5_000_000_000_000));
        push(&mut r, 5, Value::Float(n as f32 as f64 / 4.0));
        push(&mut r, 6, Value::Float(n as f64 * -1.5e-3));
        push(
            &mut r,
            7,
            Value::Decimal(n as i128 * 123_456_789_012 - 999_999_999_999_999),
        );
        let s = r.intern(&format!("sku-{n}-é"));
        push(&mut r, 8, Value::Str(s));
        let b = r.intern(&format!("{n:x}"));
        push(&mut r, 9, Value::Str(b));
        push(&mut r, 10, Value::Date((n * 37 % 40_000 - 20_000) as i32));
        push(&mut r, 11, Value::Time(n * 1_000 % 86_400_000 * 1_000));
        push(
            &mut r,
            12,
            Value::Timestamp((n - 500) * 86_400_000_123 * 1_000 / 1_000 / 1000 * 1000),
        );
        push(&mut r, 13, Value::Timestamp((n - 500) * 3_600_000_000 + n));
        r
    }

    fn round_trip(options: &[(&str, &str)], rows: i64) -> (Vec<Row>, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let path = dir.join("part-0");
        let t = spec(all_types(), options);
        let mut w = PARQUET
            .writer(&t, File::create(&path).expect("create"))
            .expect("writer");
        for n in 0..rows {
            w.write(&row(n)).expect("write");
        }
        w.finish().expect("finish");
        let mut r = PARQUET.reader(&t, &path).expect("reader");
        let mut out = Vec::new();
        let mut got = Row::default();
        while r.next(&mut got).expect("next") {
            out.push(got.detached());
            got.clear();
        }
        (out, path)
    }

    fn same(a: &Row, b: &Row) -> bool {
        a.values.len() == b.values.len()
            && a.values.iter().zip(&b.values).all(|(x, y)| match (x, y) {
                (Value::Str(p), Value::Str(q)) => a.bytes(*p) == b.bytes(*q),
                _ => x == y,
            })
    }

    /// Every type comes back as it was written, NULLs included, across several row groups
    /// (a 16 KiB block size), with INT96 and with INT64 timestamps in each unit.
    #[test]
    fn every_type_round_trips_across_row_groups() {
        for opts in [
            vec![("parquet.block.size", "16384")],
            vec![
                ("parquet.block.size", "16384"),
                ("parquet.write.int64.timestamp", "true"),
                ("parquet.timestamp.time.unit", "micros"),
                ("parquet.compression", "ZSTD"),
            ],
            vec![
                ("parquet.write.int64.timestamp", "true"),
                ("parquet.timestamp.time.unit", "nanos"),
                ("parquet.compression", "gzip"),
                ("parquet.writer.version", "v2"),
            ],
            vec![
                ("parquet.write.int64.timestamp", "true"),
                ("parquet.compression", "uncompressed"),
                ("parquet.enable.dictionary", "false"),
            ],
        ] {
            let (rows, path) = round_trip(&opts, 3000);
            assert_eq!(rows.len(), 3000, "{opts:?}");
            let millis = opts.contains(&("parquet.write.int64.timestamp", "true"))
                && !opts
                    .iter()
                    .any(|(k, _)| *k == "parquet.timestamp.time.unit");
            for (n, got) in rows.iter().enumerate() {
                let mut want = row(n as i64);
                if millis {
                    // TIMESTAMP_LTZ(6) in a millisecond column loses its microseconds
                    if let Value::Timestamp(us) = &mut want.values[13] {
                        *us = us.div_euclid(1000) * 1000;
                    }
                }
                assert!(same(got, &want), "{opts:?} row {n}: {got:?} vs {want:?}");
            }
            let file = SerializedFileReader::new(File::open(&path).expect("open")).expect("read");
            if opts[0].1 == "16384" {
                assert!(file.num_row_groups() > 1, "{opts:?}: one row group");
            }
        }
    }

    #[test]
    fn decimal_width_is_the_fewest_bytes_of_its_precision() {
        assert_eq!(decimal_bytes(1), 1);
        assert_eq!(decimal_bytes(2), 1);
        assert_eq!(decimal_bytes(3), 2);
        assert_eq!(decimal_bytes(9), 4);
        assert_eq!(decimal_bytes(10), 5);
        assert_eq!(decimal_bytes(18), 8);
        assert_eq!(decimal_bytes(38), 16);
    }

    #[test]
    fn bad_options_and_types_are_refused_naming_them() {
        let err = |opts: &[(&str, &str)], fields: Vec<Field>| {
            PARQUET
                .check(&spec(fields, opts))
                .expect_err("refused")
                .to_string()
        };
        let one = || vec![Field::new("a", DataType::Int)];
        assert!(err(&[("parquet.compression", "lzma")], one()).contains("'parquet.compression'"));
        assert!(err(&[("parquet.compression", "LZO")], one()).contains("LZO is not built"));
        assert!(err(&[("parquet.block.size", "-1")], one()).contains("'parquet.block.size'"));
        assert!(err(&[("parquet.timestamp.time.unit", "days")], one()).contains("'millis'"));
        assert!(
            err(&[("parquet.write.int64.timestamp", "yes")], one()).contains("'true' or 'false'")
        );
        assert!(err(&[("parquet.writer.version", "v3")], one()).contains("'v1' or 'v2'"));
        assert!(err(&[], vec![Field::new("iv", DataType::IntervalDayTime)]).contains("column `iv`"));
        assert!(PARQUET
            .check(&spec(all_types(), &[("parquet.block.size", "64mb")]))
            .is_ok());
        // not a record format
        assert!(PARQUET
            .decoder(&spec(one(), &[]))
            .err()
            .is_some_and(|e| e.to_string().contains("file format")));
    }

    /// A file column of a type the table's cannot take is refused when the file opens, naming
    /// the column and both types; a missing column reads as NULL.
    #[test]
    fn a_column_of_another_type_is_refused_and_a_missing_one_is_null() {
        let (_, path) = round_trip(&[], 10);
        let t = spec(vec![Field::new("s", DataType::Date)], &[]);
        let e = PARQUET
            .reader(&t, &path)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("column `s`") && e.contains("DATE"), "{e}");
        let t = spec(
            vec![
                Field::new("nope", DataType::Int),
                Field::new("I", DataType::Int),
            ],
            &[],
        );
        let mut r = PARQUET.reader(&t, &path).expect("reader");
        let mut row = Row::default();
        assert!(r.next(&mut row).expect("row"));
        assert_eq!(row.values[0], Value::Null);
        assert_eq!(
            row.values[1],
            Value::Int(-1_000_000_000),
            "matched ignoring case"
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.json");
        std::fs::write(&p, "{\"a\": 1}\n").expect("write");
        let e = PARQUET
            .reader(&spec(vec![Field::new("a", DataType::Int)], &[]), &p)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("x.json") && e.contains("not a readable Parquet file"),
            "{e}"
        );
    }

    /// A damaged file (bytes overwritten anywhere, or cut short) is an error, never a crash.
    #[test]
    fn a_damaged_file_is_an_error_not_a_crash() {
        let (_, path) = round_trip(&[("parquet.block.size", "8192")], 400);
        let good = std::fs::read(&path).expect("read");
        let t = spec(all_types(), &[]);
        for bad in crate::format::damaged_copies(&good, 7, 300) {
            std::fs::write(&path, &bad).expect("write");
            if let Ok(mut r) = PARQUET.reader(&t, &path) {
                let mut row = Row::default();
                while let Ok(true) = r.next(&mut row) {
                    row.clear();
                }
            }
        }
    }
}
