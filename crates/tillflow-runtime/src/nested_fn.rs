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
    /// `SPLIT(s, delimiter)` → ARRAY<STRING> (an empty delimiter splits into characters, an
    /// empty string gives an empty array)
    Split,
    /// `ARRAY_CONTAINS(array, x)` (x may be NULL: is there a NULL element)
    ArrayContains,
    /// `ARRAY_POSITION(array, x)`: 1-based position of the first equal element, 0 if none
    ArrayPosition,
    /// `ARRAY_JOIN(array, delimiter [, null_replacement])`: NULL elements skipped or replaced
    ArrayJoin,
    /// `ARRAY_DISTINCT(array)`: first occurrences in order (one NULL kept)
    ArrayDistinct,
    /// `ELEMENT(array)`: the only element (NULL if empty; more than one fails the job)
    Element1,
}

impl NestedFn {
    /// Whether the function is defined on NULL arguments (the constructors keep NULL fields and
    /// elements); the others are NULL when an argument is.
    pub fn takes_nulls(self) -> bool {
        matches!(
            self,
            NestedFn::Row
                | NestedFn::Array
                | NestedFn::ArrayContains
                | NestedFn::ArrayPosition
                | NestedFn::ArrayJoin
        )
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
            NestedFn::Split => Ok(DataType::array(DataType::String(None))),
            NestedFn::ArrayContains => Ok(DataType::Boolean),
            NestedFn::ArrayPosition => Ok(DataType::Int),
            NestedFn::ArrayJoin => Ok(DataType::String(None)),
            NestedFn::ArrayDistinct => Ok(first),
            NestedFn::Element1 => match first {
                DataType::Array(t) => Ok(*t),
                other => Err(format!("ELEMENT needs an ARRAY, not {other}")),
            },
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
            NestedFn::Split => match (v[0], v[1]) {
                (Value::Str(s), Value::Str(d)) => Value::Str(split(out, s, d)),
                _ => Value::Null,
            },
            NestedFn::ArrayContains | NestedFn::ArrayPosition => {
                let (Value::Str(a), DataType::Array(t)) = (v[0], arg_ty(0)) else {
                    return Ok(Value::Null);
                };
                let needle = v[1];
                let pos = nested::elements(out, a, *t).position(|e| match (e, needle) {
                    (Value::Null, Value::Null) => true,
                    (Value::Null, _) | (_, Value::Null) => false,
                    (e, n) => crate::expr::compare(e, n, out) == Some(std::cmp::Ordering::Equal),
                });
                if self == NestedFn::ArrayContains {
                    Value::Bool(pos.is_some())
                } else {
                    Value::Int(pos.map_or(0, |p| p as i64 + 1))
                }
            }
            NestedFn::ArrayJoin => {
                let (Value::Str(a), Value::Str(d), DataType::Array(t)) = (v[0], v[1], arg_ty(0))
                else {
                    return Ok(Value::Null);
                };
                let repl = match v.get(2) {
                    Some(Value::Str(r)) => Some(*r),
                    _ => None,
                };
                let start = out.len();
                let mut first = true;
                let n = nested::len(out, a);
                for i in 0..n {
                    let piece = match nested::element(out, a, *t, i) {
                        Value::Str(r) => r,
                        _ => match repl {
                            Some(r) => r,
                            None => continue,
                        },
                    };
                    if !first {
                        out.extend_from_within(d.off as usize..(d.off + d.len) as usize);
                    }
                    first = false;
                    out.extend_from_within(piece.off as usize..(piece.off + piece.len) as usize);
                }
                Value::Str(nested::span_from(out, start))
            }
            NestedFn::ArrayDistinct => {
                let (Value::Str(a), DataType::Array(t)) = (v[0], arg_ty(0)) else {
                    return Ok(Value::Null);
                };
                let n = nested::len(out, a);
                let start = out.len();
                out.extend_from_slice(&0u32.to_le_bytes());
                let mut kept = 0u32;
                for i in 0..n {
                    let e = nested::element(out, a, *t, i);
                    let earlier = (0..i).any(|j| {
                        let p = nested::element(out, a, *t, j);
                        match (p, e) {
                            (Value::Null, Value::Null) => true,
                            (Value::Null, _) | (_, Value::Null) => false,
                            (p, e) => {
                                crate::expr::compare(p, e, out) == Some(std::cmp::Ordering::Equal)
                            }
                        }
                    });
                    if !earlier {
                        nested::push_slot(out, e, *t);
                        kept += 1;
                    }
                }
                out[start..start + 4].copy_from_slice(&kept.to_le_bytes());
                Value::Str(nested::span_from(out, start))
            }
            NestedFn::Element1 => {
                let (Value::Str(a), DataType::Array(t)) = (v[0], arg_ty(0)) else {
                    return Ok(Value::Null);
                };
                match nested::len(out, a) {
                    0 => Value::Null,
                    1 => nested::element(out, a, *t, 0),
                    _ => {
                        return Err(crate::error::RuntimeError::Eval(
                            "ELEMENT: the array has more than one element".into(),
                        ))
                    }
                }
            }
        })
    }
}

/// `SPLIT(s, d)` as Flink: pieces between occurrences of `d` (empty pieces kept), each character
/// for an empty `d`, an empty array for an empty `s`; written as an ARRAY<STRING> into `out`.
fn split(
    out: &mut Vec<u8>,
    s: tillflow_types::StrRef,
    d: tillflow_types::StrRef,
) -> tillflow_types::StrRef {
    let (s0, s1) = (s.off as usize, (s.off + s.len) as usize);
    let (d0, dl) = (d.off as usize, d.len as usize);
    let start = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut count = 0u32;
    let mut piece = |out: &mut Vec<u8>, a: usize, b: usize| {
        out.push(1);
        out.extend_from_slice(&((b - a) as u32).to_le_bytes());
        out.extend_from_within(a..b);
        count += 1;
    };
    if s1 > s0 {
        if dl == 0 {
            let mut i = s0;
            while i < s1 {
                let w = match out[i] {
                    0..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                let e = (i + w).min(s1);
                piece(out, i, e);
                i = e;
            }
        } else {
            let mut a = s0;
            let mut i = s0;
            while i + dl <= s1 {
                if out[i..i + dl] == out[d0..d0 + dl] {
                    piece(out, a, i);
                    i += dl;
                    a = i;
                } else {
                    i += 1;
                }
            }
            piece(out, a, s1);
        }
    }
    out[start..start + 4].copy_from_slice(&count.to_le_bytes());
    nested::span_from(out, start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::value::{heap_str, push_str};

    fn pieces(s: &str, d: &str) -> Vec<String> {
        let mut heap = vec![];
        let (s, d) = (push_str(&mut heap, s), push_str(&mut heap, d));
        let a = split(&mut heap, s, d);
        nested::elements(&heap, a, DataType::String(None))
            .map(|v| match v {
                Value::Str(r) => heap_str(&heap, r).to_owned(),
                _ => "<null>".into(),
            })
            .collect()
    }

    #[test]
    fn split_as_flink() {
        assert_eq!(pieces("a,,b,", ","), ["a", "", "b", ""]);
        assert_eq!(pieces("", ","), Vec::<String>::new());
        assert_eq!(pieces("日本", ""), ["日", "本"]);
        assert_eq!(pieces("a::b", "::"), ["a", "b"]);
    }
}
