//! Expressions over nested values (ROW, ARRAY, MULTISET): field access `r.f`, element access
//! `a[i]` (1-based; NULL out of range, as Flink), `CARDINALITY(a)`, and the constructors
//! `ROW(x, …)` and `ARRAY[x, …]`. Values are encoded spans ([`tillflow_types::nested`]); reading
//! returns spans inside the evaluation heap, so only constructors write bytes.

use crate::error::Result;
use crate::expr::Expr;
use tillflow_types::{nested, DataType, Value};

/// A function over nested values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NestedFn {
    /// Field `i` of a ROW.
    Field(u16),
    /// `array[index]` (1-based).
    Element,
    /// `CARDINALITY(array)`.
    Cardinality,
    /// `ROW(x, …)`: the result type names the fields.
    Row,
    /// `ARRAY[x, …]`: the elements already cast to the element type.
    Array,
}

impl NestedFn {
    /// Whether the function is defined on NULL arguments (the constructors keep NULL fields and
    /// elements); the others are NULL when an argument is.
    pub fn takes_nulls(self) -> bool {
        matches!(self, NestedFn::Row | NestedFn::Array)
    }

    /// The result type for arguments of types `args` (constructors: the type the planner gave).
    pub fn return_type(self, args: &[DataType]) -> std::result::Result<DataType, String> {
        let first = args.first().copied().unwrap_or(DataType::Null);
        match self {
            NestedFn::Field(i) => match first {
                DataType::Row(r) => r
                    .fields
                    .get(i as usize)
                    .map(|(_, t)| *t)
                    .ok_or_else(|| format!("{first} has no field {}", i + 1)),
                other => Err(format!("a field needs a ROW, not {other}")),
            },
            NestedFn::Element => match first {
                DataType::Array(t) => Ok(*t),
                other => Err(format!("[index] needs an ARRAY or a MAP, not {other}")),
            },
            NestedFn::Cardinality => match first {
                DataType::Array(_) | DataType::Multiset(_) | DataType::Map(..) => Ok(DataType::Int),
                other => Err(format!(
                    "CARDINALITY needs an ARRAY, a MULTISET or a MAP, not {other}"
                )),
            },
            NestedFn::Row => Ok(DataType::row(
                args.iter()
                    .enumerate()
                    .map(|(i, t)| (format!("EXPR${i}"), *t))
                    .collect(),
            )),
            NestedFn::Array => Ok(DataType::array(first)),
        }
    }

    /// Evaluates the function on `v` (the evaluated `args`, their strings in `out`).
    pub fn call(
        self,
        v: &[Value],
        args: &[Expr],
        ty: DataType,
        out: &mut Vec<u8>,
    ) -> Result<Value> {
        if !self.takes_nulls() && v.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        let arg_ty = |i: usize| args.get(i).map(Expr::data_type).unwrap_or(DataType::Null);
        Ok(match self {
            NestedFn::Field(i) => match (v[0], arg_ty(0)) {
                (Value::Str(s), DataType::Row(r)) => nested::row_field(out, s, r, i as usize),
                _ => Value::Null,
            },
            NestedFn::Element => match (v[0], v[1], arg_ty(0)) {
                (Value::Str(s), Value::Int(i), DataType::Array(t)) if i >= 1 => {
                    nested::element(out, s, *t, (i - 1) as usize)
                }
                _ => Value::Null,
            },
            NestedFn::Cardinality => match (v[0], arg_ty(0)) {
                (Value::Str(s), DataType::Map(k, v)) => {
                    Value::Int(nested::map_entries(out, s, *k, *v).count() as i64)
                }
                (Value::Str(s), _) => Value::Int(nested::len(out, s) as i64),
                _ => Value::Null,
            },
            NestedFn::Row => match ty {
                DataType::Row(r) => Value::Str(nested::push_row(out, v, r)),
                _ => Value::Null,
            },
            NestedFn::Array => match ty {
                DataType::Array(t) => Value::Str(nested::push_array(out, v, *t)),
                _ => Value::Null,
            },
        })
    }
}
