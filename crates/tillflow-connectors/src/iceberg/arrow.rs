//! Flink types as Iceberg's, and rows as the arrow batches the `iceberg` crate's writers take.
//!
//! The mapping is Flink's Iceberg connector's (`FlinkSchemaUtil`): TINYINT/SMALLINT/INT as
//! `int`, BIGINT `long`, FLOAT `float`, DOUBLE `double`, DECIMAL(p, s) `decimal(p, s)`,
//! STRING/VARCHAR/CHAR `string`, BYTES `binary`, DATE `date`, TIME `time` (microseconds),
//! TIMESTAMP `timestamp`, TIMESTAMP_LTZ `timestamptz`; NOT NULL columns and the PRIMARY KEY
//! (the identifier fields) are required; ROW is a struct, ARRAY a list, MAP a map (their
//! fields, elements and values optional). Field ids are the columns' positions from 1, then the
//! nested fields' in order. Intervals and MULTISET are refused by name. [`BatchBuilder`] keeps
//! one arrow builder per column across batches ([`crate::arrow_rows`]), so building a batch
//! allocates per batch, not per row.

use crate::arrow_rows::ColumnBuilder;
use ::iceberg::spec::{
    ListType, Literal, MapType, NestedField, PrimitiveType, Schema as IcebergSchema, StructType,
    Type,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef as ArrowSchemaRef;
use std::sync::Arc;
use tillflow_types::{DataType, Row, Schema, Value};

/// The Iceberg type of a Flink scalar column type, or why there is none.
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
                "{other} columns are not supported in Iceberg tables"
            ))
        }
    })
}

/// The Iceberg type of any Flink column type: ROW as struct, ARRAY as list, MAP as map, their
/// fields, elements, keys and values numbered from `next_id` on.
fn full_type(ty: DataType, next_id: &mut i32) -> Result<Type, String> {
    let mut id = || {
        let i = *next_id;
        *next_id += 1;
        i
    };
    Ok(match ty {
        DataType::Row(rt) => {
            let ids: Vec<i32> = rt.fields.iter().map(|_| id()).collect();
            let mut fields = Vec::with_capacity(ids.len());
            for ((name, t), fid) in rt.fields.iter().zip(ids) {
                fields.push(Arc::new(NestedField::optional(
                    fid,
                    name,
                    full_type(*t, next_id)?,
                )));
            }
            Type::Struct(StructType::new(fields))
        }
        DataType::Array(e) => {
            let eid = id();
            Type::List(ListType::new(Arc::new(NestedField::list_element(
                eid,
                full_type(*e, next_id)?,
                false,
            ))))
        }
        DataType::Map(k, v) => {
            let (kid, vid) = (id(), id());
            Type::Map(MapType::new(
                Arc::new(NestedField::map_key_element(kid, full_type(*k, next_id)?)),
                Arc::new(NestedField::map_value_element(
                    vid,
                    full_type(*v, next_id)?,
                    false,
                )),
            ))
        }
        other => Type::Primitive(iceberg_type(other)?),
    })
}

/// The Iceberg schema of a table's columns (field ids 1, 2, … for the columns, then their
/// nested fields'), with `primary_key` as its identifier fields.
pub fn iceberg_schema(schema: &Schema, primary_key: &[String]) -> Result<IcebergSchema, String> {
    let mut fields = Vec::with_capacity(schema.fields.len());
    let mut ids = Vec::new();
    let mut next_id = schema.fields.len() as i32 + 1;
    for (i, f) in schema.fields.iter().enumerate() {
        let id = i as i32 + 1;
        let ty = full_type(f.data_type, &mut next_id)
            .map_err(|m| format!("column `{}`: {m}", f.name))?;
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

/// The identity-partition value of column `col` of `row` (`None` for NULL); the column's type
/// must be one a partition path holds plainly (INT, BIGINT, STRING, DATE, BOOLEAN).
pub fn partition_literal(row: &Row, col: usize, ty: DataType) -> Result<Option<Literal>, String> {
    let v = row.values.get(col).copied().unwrap_or(Value::Null);
    Ok(match (ty, v) {
        (
            DataType::TinyInt
            | DataType::SmallInt
            | DataType::Int
            | DataType::BigInt
            | DataType::String(_)
            | DataType::Date
            | DataType::Boolean,
            Value::Null,
        ) => None,
        (DataType::TinyInt | DataType::SmallInt | DataType::Int, Value::Int(x)) => {
            Some(Literal::int(x as i32))
        }
        (DataType::BigInt, Value::Int(x)) => Some(Literal::long(x)),
        (DataType::String(_), Value::Str(s)) => Some(Literal::string(row.str(s))),
        (DataType::Date, Value::Date(d)) => Some(Literal::date(d)),
        (DataType::Boolean, Value::Bool(b)) => Some(Literal::bool(b)),
        (ty, _) => return Err(format!("a {ty} value cannot be an identity partition")),
    })
}

/// Rows into arrow batches of a table's schema (the arrow schema carries the Iceberg field ids
/// the Parquet writer needs).
pub struct BatchBuilder {
    schema: ArrowSchemaRef,
    /// Per table column: the row's column it takes.
    source: Vec<usize>,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

/// Whether Iceberg type `want` is what Flink type `have` maps to.
fn same_type(want: &Type, have: DataType) -> bool {
    match (want, have) {
        (Type::Primitive(p), t) => iceberg_type(t).is_ok_and(|q| &q == p),
        (Type::Struct(s), DataType::Row(rt)) => {
            s.fields().len() == rt.fields.len()
                && s.fields()
                    .iter()
                    .zip(&rt.fields)
                    .all(|(f, (n, t))| &f.name == n && same_type(&f.field_type, *t))
        }
        (Type::List(l), DataType::Array(e)) => same_type(&l.element_field.field_type, *e),
        (Type::Map(m), DataType::Map(k, v)) => {
            same_type(&m.key_field.field_type, *k) && same_type(&m.value_field.field_type, *v)
        }
        _ => false,
    }
}

impl BatchBuilder {
    /// Builds batches of `table` (an Iceberg schema) from rows whose columns are `row_schema`'s,
    /// matched by name. A column the rows lack, or of another type, is an error naming it.
    pub fn new(table: &IcebergSchema, row_schema: &Schema) -> Result<Self, String> {
        let b = BatchBuilder::of_columns(table, row_schema)?;
        if row_schema.fields.len() > b.columns.len() {
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
        Ok(b)
    }

    /// As [`BatchBuilder::new`], for batches of some of the rows' columns (`table`'s: the key
    /// columns of equality deletes).
    pub fn of_columns(table: &IcebergSchema, row_schema: &Schema) -> Result<Self, String> {
        let arrow = ::iceberg::arrow::schema_to_arrow_schema(table).map_err(|e| e.to_string())?;
        let mut source = Vec::new();
        let mut columns = Vec::new();
        for (f, af) in table.as_struct().fields().iter().zip(arrow.fields()) {
            let Some(i) = row_schema.fields.iter().position(|r| r.name == f.name) else {
                return Err(format!(
                    "the Iceberg table has a column `{}` the Flink table lacks",
                    f.name
                ));
            };
            let ty = row_schema.fields[i].data_type;
            if !same_type(&f.field_type, ty) {
                return Err(format!(
                    "column `{}` is {} in the Iceberg table but {ty} in the Flink table",
                    f.name, f.field_type
                ));
            }
            source.push(i);
            columns.push(
                ColumnBuilder::new(ty, af.data_type())
                    .map_err(|m| format!("column `{}`: {m}", f.name))?,
            );
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
            c.push(&row.heap, row.values.get(i).copied().unwrap_or(Value::Null));
        }
        self.rows += 1;
    }

    /// The rows added since the last batch, as one batch (the builders are reset).
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let arrays = self
            .columns
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
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
