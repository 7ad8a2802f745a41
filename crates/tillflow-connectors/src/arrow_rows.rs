//! Rows to arrow arrays and back, nested values included.
//!
//! [`ColumnBuilder`] appends a column's values (scalars, and ROW / ARRAY / MAP values in the
//! row heap's nested encoding, [`tillflow_types::nested`]) to arrow builders kept across
//! batches, following the arrow type it is given (so the Iceberg writer's field ids and names
//! survive). [`read_value`] reads one arrow value back into a row (strings and nested values
//! into its heap), whichever writer made the file: INT96 and INT64 timestamps of any unit,
//! decimals, lists, large lists, maps and structs.

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, LargeBinaryBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, LargeListArray, ListArray, MapArray,
    StructArray,
};
use arrow_schema::{DataType as ArrowType, FieldRef, Fields, TimeUnit};
use std::sync::Arc;
use tillflow_types::nested;
use tillflow_types::value::{heap_bytes, heap_str};
use tillflow_types::{DataType, Row, Value};

/// Appends one column's values to arrow builders.
pub enum ColumnBuilder {
    /// BOOLEAN.
    Bool(BooleanBuilder),
    /// TINYINT, SMALLINT, INT.
    Int(Int32Builder),
    /// BIGINT.
    Long(Int64Builder),
    /// FLOAT.
    Float(Float32Builder),
    /// DOUBLE.
    Double(Float64Builder),
    /// DECIMAL.
    Decimal(Decimal128Builder),
    /// STRING.
    Str(StringBuilder),
    /// BYTES.
    Bin(LargeBinaryBuilder),
    /// DATE.
    Date(Date32Builder),
    /// TIME (microseconds).
    Time(Time64MicrosecondBuilder),
    /// TIMESTAMP / TIMESTAMP_LTZ (microseconds).
    Ts(TimestampMicrosecondBuilder),
    /// ROW: a builder per field, and which rows are NULL.
    Struct {
        /// The arrow fields.
        fields: Fields,
        /// The tillflow row type.
        row: &'static tillflow_types::RowType,
        /// A builder per field.
        children: Vec<ColumnBuilder>,
        /// Validity.
        valid: Vec<bool>,
    },
    /// ARRAY: the elements' builder, offsets and validity.
    List {
        /// The element field.
        field: FieldRef,
        /// The element type.
        element: DataType,
        /// The elements.
        child: Box<ColumnBuilder>,
        /// Offsets (one more than rows).
        offsets: Vec<i32>,
        /// Validity.
        valid: Vec<bool>,
    },
    /// MAP: the entries' field, key and value builders, offsets and validity.
    Map {
        /// The entries field (a struct of key and value).
        field: FieldRef,
        /// Key and value types.
        kv: (DataType, DataType),
        /// Keys.
        keys: Box<ColumnBuilder>,
        /// Values.
        values: Box<ColumnBuilder>,
        /// Offsets.
        offsets: Vec<i32>,
        /// Validity.
        valid: Vec<bool>,
    },
}

impl ColumnBuilder {
    /// A builder for values of `ty` into arrays of `arrow`, or why they do not fit.
    pub fn new(ty: DataType, arrow: &ArrowType) -> Result<Self, String> {
        let mismatch = || format!("a {ty} column cannot be written as arrow {arrow}");
        Ok(match (ty, arrow) {
            (DataType::Boolean, ArrowType::Boolean) => ColumnBuilder::Bool(BooleanBuilder::new()),
            (DataType::TinyInt | DataType::SmallInt | DataType::Int, ArrowType::Int32) => {
                ColumnBuilder::Int(Int32Builder::new())
            }
            (DataType::BigInt, ArrowType::Int64) => ColumnBuilder::Long(Int64Builder::new()),
            (DataType::Float, ArrowType::Float32) => ColumnBuilder::Float(Float32Builder::new()),
            (DataType::Double, ArrowType::Float64) => ColumnBuilder::Double(Float64Builder::new()),
            (DataType::Decimal(p, s), ArrowType::Decimal128(..)) => ColumnBuilder::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(p, s as i8)
                    .map_err(|e| e.to_string())?,
            ),
            (DataType::String(_), ArrowType::Utf8) => ColumnBuilder::Str(StringBuilder::new()),
            (DataType::Bytes, ArrowType::LargeBinary) => {
                ColumnBuilder::Bin(LargeBinaryBuilder::new())
            }
            (DataType::Date, ArrowType::Date32) => ColumnBuilder::Date(Date32Builder::new()),
            (DataType::Time(_), ArrowType::Time64(TimeUnit::Microsecond)) => {
                ColumnBuilder::Time(Time64MicrosecondBuilder::new())
            }
            (
                DataType::Timestamp(_) | DataType::TimestampLtz(_),
                ArrowType::Timestamp(TimeUnit::Microsecond, tz),
            ) => ColumnBuilder::Ts(match tz {
                None => TimestampMicrosecondBuilder::new(),
                Some(tz) => TimestampMicrosecondBuilder::new().with_timezone(tz.clone()),
            }),
            (DataType::Row(rt), ArrowType::Struct(fields)) if fields.len() == rt.fields.len() => {
                let children = rt
                    .fields
                    .iter()
                    .zip(fields.iter())
                    .map(|((_, t), f)| ColumnBuilder::new(*t, f.data_type()))
                    .collect::<Result<_, _>>()?;
                ColumnBuilder::Struct {
                    fields: fields.clone(),
                    row: rt,
                    children,
                    valid: Vec::new(),
                }
            }
            (DataType::Array(e), ArrowType::List(field)) => ColumnBuilder::List {
                field: field.clone(),
                element: *e,
                child: Box::new(ColumnBuilder::new(*e, field.data_type())?),
                offsets: vec![0],
                valid: Vec::new(),
            },
            (DataType::Map(k, v), ArrowType::Map(field, _)) => {
                let ArrowType::Struct(kv) = field.data_type() else {
                    return Err(mismatch());
                };
                if kv.len() != 2 {
                    return Err(mismatch());
                }
                ColumnBuilder::Map {
                    field: field.clone(),
                    kv: (*k, *v),
                    keys: Box::new(ColumnBuilder::new(*k, kv[0].data_type())?),
                    values: Box::new(ColumnBuilder::new(*v, kv[1].data_type())?),
                    offsets: vec![0],
                    valid: Vec::new(),
                }
            }
            _ => return Err(mismatch()),
        })
    }

    /// Appends `v` (its strings and nested values in `heap`).
    pub fn push(&mut self, heap: &[u8], v: Value) {
        match (self, v) {
            (ColumnBuilder::Bool(b), Value::Bool(x)) => b.append_value(x),
            (ColumnBuilder::Int(b), Value::Int(x)) => b.append_value(x as i32),
            (ColumnBuilder::Long(b), Value::Int(x)) => b.append_value(x),
            (ColumnBuilder::Float(b), Value::Float(x)) => b.append_value(x as f32),
            (ColumnBuilder::Double(b), Value::Float(x)) => b.append_value(x),
            (ColumnBuilder::Decimal(b), Value::Decimal(x)) => b.append_value(x),
            (ColumnBuilder::Str(b), Value::Str(s)) => b.append_value(heap_str(heap, s)),
            (ColumnBuilder::Bin(b), Value::Str(s)) => b.append_value(heap_bytes(heap, s)),
            (ColumnBuilder::Date(b), Value::Date(x)) => b.append_value(x),
            (ColumnBuilder::Time(b), Value::Time(x)) => b.append_value(x),
            (ColumnBuilder::Ts(b), Value::Timestamp(x)) => b.append_value(x),
            (
                ColumnBuilder::Struct {
                    row,
                    children,
                    valid,
                    ..
                },
                Value::Str(span),
            ) => {
                for (i, c) in children.iter_mut().enumerate() {
                    c.push(heap, nested::row_field(heap, span, row, i));
                }
                valid.push(true);
            }
            (
                ColumnBuilder::List {
                    element,
                    child,
                    offsets,
                    valid,
                    ..
                },
                Value::Str(span),
            ) => {
                let mut n = 0;
                for e in nested::elements(heap, span, *element) {
                    child.push(heap, e);
                    n += 1;
                }
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + n);
                valid.push(true);
            }
            (
                ColumnBuilder::Map {
                    kv,
                    keys,
                    values,
                    offsets,
                    valid,
                    ..
                },
                Value::Str(span),
            ) => {
                let mut n = 0;
                for (k, v) in nested::map_entries(heap, span, kv.0, kv.1) {
                    keys.push(heap, k);
                    values.push(heap, v);
                    n += 1;
                }
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + n);
                valid.push(true);
            }
            (c, _) => c.push_null(),
        }
    }

    /// Appends a NULL.
    pub fn push_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Long(b) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Decimal(b) => b.append_null(),
            ColumnBuilder::Str(b) => b.append_null(),
            ColumnBuilder::Bin(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Ts(b) => b.append_null(),
            ColumnBuilder::Struct {
                children, valid, ..
            } => {
                // a NULL struct still has a (NULL) slot in each child
                for c in children.iter_mut() {
                    c.push_null();
                }
                valid.push(false);
            }
            ColumnBuilder::List { offsets, valid, .. }
            | ColumnBuilder::Map { offsets, valid, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                valid.push(false);
            }
        }
    }

    /// The values appended since the last call, as one array (the builder starts over).
    pub fn finish(&mut self) -> Result<ArrayRef, String> {
        let nulls = |valid: &mut Vec<bool>| {
            let v = std::mem::take(valid);
            if v.iter().all(|x| *x) {
                None
            } else {
                Some(arrow_buffer_nulls(v))
            }
        };
        Ok(match self {
            ColumnBuilder::Bool(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Int(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Long(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Float(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Double(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Decimal(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Str(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Bin(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Date(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Time(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Ts(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Struct {
                fields,
                children,
                valid,
                ..
            } => {
                let arrays = children
                    .iter_mut()
                    .map(ColumnBuilder::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                let n = valid.len();
                let nulls = nulls(valid);
                if fields.is_empty() {
                    Arc::new(StructArray::new_empty_fields(n, nulls))
                } else {
                    Arc::new(
                        StructArray::try_new(fields.clone(), arrays, nulls)
                            .map_err(|e| e.to_string())?,
                    )
                }
            }
            ColumnBuilder::List {
                field,
                child,
                offsets,
                valid,
                ..
            } => {
                let values = child.finish()?;
                let offs = std::mem::replace(offsets, vec![0]);
                let nulls = nulls(valid);
                Arc::new(
                    ListArray::try_new(field.clone(), offset_buffer(offs), values, nulls)
                        .map_err(|e| e.to_string())?,
                )
            }
            ColumnBuilder::Map {
                field,
                keys,
                values,
                offsets,
                valid,
                ..
            } => {
                let ArrowType::Struct(kv) = field.data_type() else {
                    return Err("a map's entries are not a struct".into());
                };
                let entries =
                    StructArray::try_new(kv.clone(), vec![keys.finish()?, values.finish()?], None)
                        .map_err(|e| e.to_string())?;
                let offs = std::mem::replace(offsets, vec![0]);
                let nulls = nulls(valid);
                Arc::new(
                    MapArray::try_new(field.clone(), offset_buffer(offs), entries, nulls, false)
                        .map_err(|e| e.to_string())?,
                )
            }
        })
    }
}

fn arrow_buffer_nulls(valid: Vec<bool>) -> arrow_buffer::NullBuffer {
    arrow_buffer::NullBuffer::from(valid)
}

/// The offsets buffer of a list or map array.
fn offset_buffer(v: Vec<i32>) -> arrow_buffer::OffsetBuffer<i32> {
    arrow_buffer::OffsetBuffer::new(arrow_buffer::ScalarBuffer::from(v))
}

/// Whether values of arrow type `have` can be read as `ty` (the same kind: a struct as a ROW
/// whose fields convert by name, a list as an ARRAY, a map as a MAP, and scalars of the kinds
/// [`read_value`] converts).
pub fn readable_as(have: &ArrowType, ty: DataType) -> bool {
    match (have, ty) {
        (ArrowType::Struct(fields), DataType::Row(rt)) => rt.fields.iter().all(|(n, t)| {
            fields
                .iter()
                .find(|f| f.name() == n)
                .is_none_or(|f| readable_as(f.data_type(), *t))
        }),
        (ArrowType::List(f) | ArrowType::LargeList(f), DataType::Array(e)) => {
            readable_as(f.data_type(), *e)
        }
        (ArrowType::Map(f, _), DataType::Map(k, v)) => match f.data_type() {
            ArrowType::Struct(kv) if kv.len() == 2 => {
                readable_as(kv[0].data_type(), *k) && readable_as(kv[1].data_type(), *v)
            }
            _ => false,
        },
        (_, DataType::Row(_) | DataType::Array(_) | DataType::Map(..)) => false,
        (
            ArrowType::Struct(_)
            | ArrowType::List(_)
            | ArrowType::LargeList(_)
            | ArrowType::Map(..),
            _,
        ) => false,
        (ArrowType::Boolean, DataType::Boolean) => true,
        (
            ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64,
            DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt,
        ) => true,
        (ArrowType::Float32 | ArrowType::Float64, DataType::Float | DataType::Double) => true,
        (ArrowType::Decimal128(..), DataType::Decimal(..)) => true,
        (
            ArrowType::Utf8
            | ArrowType::LargeUtf8
            | ArrowType::Binary
            | ArrowType::LargeBinary
            | ArrowType::FixedSizeBinary(_),
            DataType::String(_) | DataType::Bytes,
        ) => true,
        (ArrowType::Date32, DataType::Date) => true,
        (ArrowType::Time32(_) | ArrowType::Time64(_), DataType::Time(_)) => true,
        (ArrowType::Timestamp(..), DataType::Timestamp(_) | DataType::TimestampLtz(_)) => true,
        _ => false,
    }
}

/// Value `i` of `array` as a value of `ty` in `row` (its strings and nested values appended to
/// the row's heap), or why it does not convert.
pub fn read_value(
    array: &dyn Array,
    i: usize,
    ty: DataType,
    row: &mut Row,
) -> Result<Value, String> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    match ty {
        DataType::Row(_) | DataType::Array(_) | DataType::Map(..) => {
            let off = row.heap.len();
            let mut heap = std::mem::take(&mut row.heap);
            let done = write_nested(array, i, ty, &mut heap);
            row.heap = heap;
            done?;
            Ok(Value::Str(nested::span_from(&row.heap, off)))
        }
        _ => scalar(array, i, ty, &mut row.heap),
    }
}

/// A scalar value (strings appended to `heap`).
fn scalar(array: &dyn Array, i: usize, ty: DataType, heap: &mut Vec<u8>) -> Result<Value, String> {
    let bad = || {
        format!(
            "an arrow {} value does not convert to {ty}",
            array.data_type()
        )
    };
    let any = array.as_any();
    macro_rules! get {
        ($t:ty) => {
            any.downcast_ref::<$t>().map(|a| a.value(i))
        };
    }
    let int = || -> Option<i64> {
        get!(Int64Array)
            .or_else(|| get!(Int32Array).map(i64::from))
            .or_else(|| get!(Int16Array).map(i64::from))
            .or_else(|| get!(Int8Array).map(i64::from))
    };
    Ok(match ty {
        DataType::Boolean => Value::Bool(get!(BooleanArray).ok_or_else(bad)?),
        DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt => {
            Value::Int(tillflow_runtime::expr::narrow(int().ok_or_else(bad)?, ty))
        }
        DataType::Float | DataType::Double => Value::Float(
            get!(Float64Array)
                .or_else(|| get!(Float32Array).map(f64::from))
                .ok_or_else(bad)?,
        ),
        DataType::Decimal(_, s) => {
            let a = any.downcast_ref::<Decimal128Array>().ok_or_else(bad)?;
            Value::Decimal(tillflow_runtime::expr::rescale(
                a.value(i),
                a.scale().max(0) as u8,
                s,
            ))
        }
        DataType::String(_) | DataType::Bytes => {
            let b: &[u8] = if let Some(a) = any.downcast_ref::<arrow_array::StringArray>() {
                a.value(i).as_bytes()
            } else if let Some(a) = any.downcast_ref::<arrow_array::LargeStringArray>() {
                a.value(i).as_bytes()
            } else if let Some(a) = any.downcast_ref::<arrow_array::BinaryArray>() {
                a.value(i)
            } else if let Some(a) = any.downcast_ref::<arrow_array::LargeBinaryArray>() {
                a.value(i)
            } else if let Some(a) = any.downcast_ref::<arrow_array::FixedSizeBinaryArray>() {
                a.value(i)
            } else {
                return Err(bad());
            };
            let off = heap.len();
            heap.extend_from_slice(b);
            Value::Str(nested::span_from(heap, off))
        }
        DataType::Date => Value::Date(get!(Date32Array).ok_or_else(bad)?),
        DataType::Time(_) => match array.data_type() {
            ArrowType::Time32(TimeUnit::Millisecond) => Value::Time(
                i64::from(get!(arrow_array::Time32MillisecondArray).ok_or_else(bad)?) * 1000,
            ),
            ArrowType::Time64(TimeUnit::Microsecond) => {
                Value::Time(get!(arrow_array::Time64MicrosecondArray).ok_or_else(bad)?)
            }
            ArrowType::Time64(TimeUnit::Nanosecond) => {
                Value::Time(get!(arrow_array::Time64NanosecondArray).ok_or_else(bad)? / 1000)
            }
            _ => return Err(bad()),
        },
        DataType::Timestamp(_) | DataType::TimestampLtz(_) => {
            Value::Timestamp(match array.data_type() {
                ArrowType::Timestamp(TimeUnit::Second, _) => {
                    get!(arrow_array::TimestampSecondArray).ok_or_else(bad)? * 1_000_000
                }
                ArrowType::Timestamp(TimeUnit::Millisecond, _) => {
                    get!(arrow_array::TimestampMillisecondArray).ok_or_else(bad)? * 1000
                }
                ArrowType::Timestamp(TimeUnit::Microsecond, _) => {
                    get!(arrow_array::TimestampMicrosecondArray).ok_or_else(bad)?
                }
                ArrowType::Timestamp(TimeUnit::Nanosecond, _) => {
                    get!(arrow_array::TimestampNanosecondArray)
                        .ok_or_else(bad)?
                        .div_euclid(1000)
                }
                _ => return Err(bad()),
            })
        }
        _ => return Err(bad()),
    })
}

/// Appends the nested encoding of value `i` of `array` (of nested type `ty`) to `heap`.
fn write_nested(
    array: &dyn Array,
    i: usize,
    ty: DataType,
    heap: &mut Vec<u8>,
) -> Result<(), String> {
    let bad = || {
        format!(
            "an arrow {} value does not convert to {ty}",
            array.data_type()
        )
    };
    let any = array.as_any();
    match ty {
        DataType::Row(rt) => {
            let a = any.downcast_ref::<StructArray>().ok_or_else(bad)?;
            for (name, fty) in &rt.fields {
                // fields by name (another writer's order), missing ones NULL
                let child = a.column_by_name(name);
                match child {
                    Some(c) if !c.is_null(i) => {
                        heap.push(1);
                        payload(c.as_ref(), i, *fty, heap)?;
                    }
                    _ => heap.push(0),
                }
            }
        }
        DataType::Array(e) => {
            let (values, start, end) = if let Some(a) = any.downcast_ref::<ListArray>() {
                let o = a.value_offsets();
                (a.values().clone(), o[i] as usize, o[i + 1] as usize)
            } else if let Some(a) = any.downcast_ref::<LargeListArray>() {
                let o = a.value_offsets();
                (a.values().clone(), o[i] as usize, o[i + 1] as usize)
            } else {
                return Err(bad());
            };
            heap.extend_from_slice(&((end - start) as u32).to_le_bytes());
            for j in start..end {
                if values.is_null(j) {
                    heap.push(0);
                } else {
                    heap.push(1);
                    payload(values.as_ref(), j, *e, heap)?;
                }
            }
        }
        DataType::Map(k, v) => {
            let a = any.downcast_ref::<MapArray>().ok_or_else(bad)?;
            let o = a.value_offsets();
            let (start, end) = (o[i] as usize, o[i + 1] as usize);
            let (keys, values) = (a.keys(), a.values());
            heap.extend_from_slice(&((end - start) as u32).to_le_bytes());
            for j in start..end {
                if keys.is_null(j) {
                    return Err("a map key is NULL".into());
                }
                payload(keys.as_ref(), j, *k, heap)?;
                if values.is_null(j) {
                    heap.push(0);
                } else {
                    heap.push(1);
                    payload(values.as_ref(), j, *v, heap)?;
                }
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// Appends the payload of present value `i` of `array` as type `ty` (a nested one length-prefixed).
fn payload(array: &dyn Array, i: usize, ty: DataType, heap: &mut Vec<u8>) -> Result<(), String> {
    match ty {
        DataType::Row(_) | DataType::Array(_) | DataType::Map(..) => {
            let at = heap.len();
            heap.extend_from_slice(&0u32.to_le_bytes());
            write_nested(array, i, ty, heap)?;
            let len = (heap.len() - at - 4) as u32;
            heap[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        DataType::String(_) | DataType::Bytes => {
            // the bytes go after the heap's end, then move into place as a length-prefixed payload
            let mark = heap.len();
            let Value::Str(s) = scalar(array, i, ty, heap)? else {
                return Err(format!("{ty} value is not bytes"));
            };
            let bytes = heap.split_off(s.off as usize);
            heap.truncate(mark);
            nested::push_bytes_payload(heap, &bytes);
        }
        _ => {
            let v = scalar(array, i, ty, heap)?;
            nested::push_scalar_payload(heap, v, ty);
        }
    }
    Ok(())
}
