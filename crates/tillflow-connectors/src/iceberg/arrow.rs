//! Flink types as Iceberg's, and rows as the arrow batches the `iceberg` crate's writers take.
//!
//! The mapping is Flink's Iceberg connector's (`FlinkSchemaUtil`): TINYINT/SMALLINT/INT as
//! `int`, BIGINT `long`, FLOAT `float`, DOUBLE `double`, DECIMAL(p, s) `decimal(p, s)`,
//! STRING/VARCHAR/CHAR `string`, BYTES `binary`, DATE `date`, TIME `time` (microseconds),
//! TIMESTAMP `timestamp`, TIMESTAMP_LTZ `timestamptz`; NOT NULL columns and the PRIMARY KEY
//! (the identifier fields) are required. Field ids are the columns' positions from 1. Nested
//! types and intervals are refused by name. [`BatchBuilder`] keeps one arrow builder per column
//! across batches, so building a batch allocates per batch, not per row.

use ::iceberg::spec::{NestedField, PrimitiveType, Schema as IcebergSchema, Type};
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, LargeBinaryBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef as ArrowSchemaRef;
use std::sync::Arc;
use tillflow_types::{DataType, Row, Schema, Value};

/// The Iceberg type of a Flink column type, or why there is none.
pub fn iceberg_type(ty: DataType) -> Result<PrimitiveType, String> {
    Ok(match ty {
        DataType::Boolean => PrimitiveType::Boolean,
        DataType::TinyInt | DataType::SmallInt | DataType::Int => PrimitiveType::Int,
        DataType::BigInt => PrimitiveType::Long,
        DataType::Float => PrimitiveType::Float,
        DataType::Double => PrimitiveType::Double,
        DataType::Decimal(p, s) => PrimitiveType::Decimal {
            precision: u32::from(p),
            scale: u32::from(s),
        },
        DataType::String(_) => PrimitiveType::String,
        DataType::Bytes => PrimitiveType::Binary,
        DataType::Date => PrimitiveType::Date,
        DataType::Time(_) => PrimitiveType::Time,
        DataType::Timestamp(_) => PrimitiveType::Timestamp,
        DataType::TimestampLtz(_) => PrimitiveType::Timestamptz,
        other => {
            return Err(format!(
                "{other} columns are not supported in Iceberg tables yet (scalar types only)"
            ))
        }
    })
}

/// The Iceberg schema of a table's columns (field ids 1, 2, …), with `primary_key` as its
/// identifier fields.
pub fn iceberg_schema(schema: &Schema, primary_key: &[String]) -> Result<IcebergSchema, String> {
    let mut fields = Vec::with_capacity(schema.fields.len());
    let mut ids = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        let id = i as i32 + 1;
        let ty = Type::Primitive(
            iceberg_type(f.data_type).map_err(|m| format!("column `{}`: {m}", f.name))?,
        );
        let key = primary_key.iter().any(|k| k == &f.name);
        if key {
            ids.push(id);
        }
        fields.push(Arc::new(if key || !f.nullable {
            NestedField::required(id, &f.name, ty)
        } else {
            NestedField::optional(id, &f.name, ty)
        }));
    }
    IcebergSchema::builder()
        .with_schema_id(0)
        .with_identifier_field_ids(ids)
        .with_fields(fields)
        .build()
        .map_err(|e| e.to_string())
}

enum Column {
    Bool(BooleanBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Float(Float32Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder),
    Str(StringBuilder),
    Bin(LargeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder),
}

/// Rows into arrow batches of a table's schema (the arrow schema carries the Iceberg field ids
/// the Parquet writer needs).
pub struct BatchBuilder {
    schema: ArrowSchemaRef,
    /// Per table column: the row's column it takes.
    source: Vec<usize>,
    columns: Vec<Column>,
    rows: usize,
}

impl BatchBuilder {
    /// Builds batches of `table` (an Iceberg schema) from rows whose columns are `row_schema`'s,
    /// matched by name. A column the rows lack, or of another type, is an error naming it.
    pub fn new(table: &IcebergSchema, row_schema: &Schema) -> Result<Self, String> {
        let arrow = ::iceberg::arrow::schema_to_arrow_schema(table).map_err(|e| e.to_string())?;
        let mut source = Vec::new();
        let mut columns = Vec::new();
        for f in table.as_struct().fields() {
            let Some(i) = row_schema.fields.iter().position(|r| r.name == f.name) else {
                return Err(format!(
                    "the Iceberg table has a column `{}` the Flink table lacks",
                    f.name
                ));
            };
            let ty = row_schema.fields[i].data_type;
            let want = f.field_type.as_primitive_type();
            let have = iceberg_type(ty).ok();
            if want.is_none() || want != have.as_ref() {
                return Err(format!(
                    "column `{}` is {} in the Iceberg table but {ty} in the Flink table",
                    f.name, f.field_type
                ));
            }
            source.push(i);
            columns.push(match ty {
                DataType::Boolean => Column::Bool(BooleanBuilder::new()),
                DataType::TinyInt | DataType::SmallInt | DataType::Int => {
                    Column::Int(Int32Builder::new())
                }
                DataType::BigInt => Column::Long(Int64Builder::new()),
                DataType::Float => Column::Float(Float32Builder::new()),
                DataType::Double => Column::Double(Float64Builder::new()),
                DataType::Decimal(p, s) => Column::Decimal(
                    Decimal128Builder::new()
                        .with_precision_and_scale(p, s as i8)
                        .map_err(|e| e.to_string())?,
                ),
                DataType::String(_) => Column::Str(StringBuilder::new()),
                DataType::Bytes => Column::Bin(LargeBinaryBuilder::new()),
                DataType::Date => Column::Date(Date32Builder::new()),
                DataType::Time(_) => Column::Time(Time64MicrosecondBuilder::new()),
                DataType::Timestamp(_) => Column::Ts(TimestampMicrosecondBuilder::new()),
                DataType::TimestampLtz(_) => {
                    Column::Ts(TimestampMicrosecondBuilder::new().with_timezone("+00:00"))
                }
                other => return Err(format!("column `{}`: {other} is not supported", f.name)),
            });
        }
        if row_schema.fields.len() > columns.len() {
            let extra: Vec<&str> = row_schema
                .fields
                .iter()
                .filter(|r| !table.as_struct().fields().iter().any(|f| f.name == r.name))
                .map(|r| r.name.as_str())
                .collect();
            if !extra.is_empty() {
                return Err(format!(
                    "the Flink table's column(s) {} are not in the Iceberg table",
                    extra.join(", ")
                ));
            }
        }
        Ok(BatchBuilder {
            schema: Arc::new(arrow),
            source,
            columns,
            rows: 0,
        })
    }

    /// Rows added since the last batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was added since the last batch.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds a row (its kind is not looked at).
    pub fn push(&mut self, row: &Row) {
        for (c, &i) in self.columns.iter_mut().zip(&self.source) {
            let v = row.values.get(i).copied().unwrap_or(Value::Null);
            match (c, v) {
                (Column::Bool(b), Value::Bool(x)) => b.append_value(x),
                (Column::Int(b), Value::Int(x)) => b.append_value(x as i32),
                (Column::Long(b), Value::Int(x)) => b.append_value(x),
                (Column::Float(b), Value::Float(x)) => b.append_value(x as f32),
                (Column::Double(b), Value::Float(x)) => b.append_value(x),
                (Column::Decimal(b), Value::Decimal(x)) => b.append_value(x),
                (Column::Str(b), Value::Str(s)) => b.append_value(row.str(s)),
                (Column::Bin(b), Value::Str(s)) => b.append_value(row.bytes(s)),
                (Column::Date(b), Value::Date(x)) => b.append_value(x),
                (Column::Time(b), Value::Time(x)) => b.append_value(x),
                (Column::Ts(b), Value::Timestamp(x)) => b.append_value(x),
                (c, _) => c.append_null(),
            }
        }
        self.rows += 1;
    }

    /// The rows added since the last batch, as one batch (the builders are reset).
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

impl Column {
    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int(b) => b.append_null(),
            Column::Long(b) => b.append_null(),
            Column::Float(b) => b.append_null(),
            Column::Double(b) => b.append_null(),
            Column::Decimal(b) => b.append_null(),
            Column::Str(b) => b.append_null(),
            Column::Bin(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Time(b) => b.append_null(),
            Column::Ts(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => ArrayBuilder::finish(b),
            Column::Int(b) => ArrayBuilder::finish(b),
            Column::Long(b) => ArrayBuilder::finish(b),
            Column::Float(b) => ArrayBuilder::finish(b),
            Column::Double(b) => ArrayBuilder::finish(b),
            Column::Decimal(b) => ArrayBuilder::finish(b),
            Column::Str(b) => ArrayBuilder::finish(b),
            Column::Bin(b) => ArrayBuilder::finish(b),
            Column::Date(b) => ArrayBuilder::finish(b),
            Column::Time(b) => ArrayBuilder::finish(b),
            Column::Ts(b) => ArrayBuilder::finish(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Field;

    #[test]
    fn rows_become_a_batch_with_field_ids() {
        let mut ts = Field::new("ts", DataType::Timestamp(3));
        ts.nullable = false;
        let schema = Schema::new(vec![
            Field::new("store_id", DataType::Int),
            Field::new("name", DataType::String(None)),
            Field::new("revenue", DataType::Decimal(12, 2)),
            ts,
        ]);
        let ice = iceberg_schema(&schema, &["store_id".into()]).unwrap();
        assert_eq!(ice.identifier_field_ids().collect::<Vec<_>>(), vec![1]);
        assert!(ice.field_by_name("store_id").unwrap().required);
        assert!(!ice.field_by_name("name").unwrap().required);
        assert!(ice.field_by_name("ts").unwrap().required);
        let mut b = BatchBuilder::new(&ice, &schema).unwrap();
        let mut row = Row::default();
        row.values.push(Value::Int(7));
        let s = row.intern("Leeds");
        row.values.push(Value::Str(s));
        row.values.push(Value::Decimal(12345));
        row.values.push(Value::Timestamp(1_700_000_000_000_000));
        b.push(&row);
        row.values[1] = Value::Null;
        b.push(&row);
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).null_count(), 1);
        assert_eq!(
            batch.schema().field(2).metadata().get("PARQUET:field_id"),
            Some(&"3".to_string())
        );
        assert!(b.is_empty());
        let wrong = Schema::new(vec![Field::new("store_id", DataType::BigInt)]);
        match BatchBuilder::new(&ice, &wrong) {
            Err(m) => assert!(m.contains("column `store_id` is int"), "{m}"),
            Ok(_) => panic!("a BIGINT column was taken for an int one"),
        }
        assert!(iceberg_schema(
            &Schema::new(vec![Field::new("i", DataType::IntervalDayTime)]),
            &[]
        )
        .is_err());
    }
}
