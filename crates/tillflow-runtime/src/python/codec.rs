//! The columns of a bundle as they travel to and from a Python worker: one column of `n`
//! values is a type byte, a NULL-flag byte (then, when set, `n` bytes: 1 for a value, 0 for
//! NULL), and the values packed by type — booleans as bytes, integers, timestamps and times as
//! little-endian `i64` (microseconds), doubles as `f64`, dates as `i32` days; strings and
//! decimals (as their text) as `n + 1` `u32` offsets counted in characters, a `u32` byte length
//! and the UTF-8 text (Python slices one decoded `str`); bytes as `n + 1` `u32` byte offsets
//! and the bytes. NULL slots hold zeros or empty spans.

use crate::cast::{parse_decimal, write_decimal};
use crate::expr::Expr;
use tillflow_types::value::heap_bytes;
use tillflow_types::{DataType, Row, StrRef, Value};

/// `BOOLEAN`.
pub const T_BOOL: u8 = 1;
/// The integer types.
pub const T_INT: u8 = 2;
/// `FLOAT` and `DOUBLE`.
pub const T_DOUBLE: u8 = 3;
/// Strings.
pub const T_STRING: u8 = 4;
/// `BYTES`.
pub const T_BYTES: u8 = 5;
/// `DECIMAL(p, s)` (as text; Python's `decimal.Decimal`).
pub const T_DECIMAL: u8 = 6;
/// `DATE` (`datetime.date`).
pub const T_DATE: u8 = 7;
/// `TIMESTAMP(p)` and `TIMESTAMP_LTZ(p)` (`datetime.datetime`, naive, UTC).
pub const T_TIMESTAMP: u8 = 8;
/// `TIME(p)` (`datetime.time`).
pub const T_TIME: u8 = 9;

/// The wire type of a SQL type, or `None` for types Python functions do not take or return
/// (intervals, arrays, maps, rows).
pub fn wire_tag(ty: DataType) -> Option<u8> {
    Some(match ty {
        DataType::Boolean => T_BOOL,
        DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt => T_INT,
        DataType::Float | DataType::Double => T_DOUBLE,
        DataType::String(_) => T_STRING,
        DataType::Bytes => T_BYTES,
        DataType::Decimal(..) => T_DECIMAL,
        DataType::Date => T_DATE,
        DataType::Timestamp(_) | DataType::TimestampLtz(_) => T_TIMESTAMP,
        DataType::Time(_) => T_TIME,
        _ => return None,
    })
}

/// Buffers reused from one bundle to the next.
#[derive(Default)]
pub struct Scratch {
    values: Vec<Value>,
    heap: Vec<u8>,
    text: String,
}

/// Appends the column of `expr` evaluated over each of `rows`.
pub fn write_arg(
    out: &mut Vec<u8>,
    rows: &[Row],
    expr: &Expr,
    s: &mut Scratch,
) -> crate::Result<()> {
    s.values.clear();
    s.heap.clear();
    for r in rows {
        let v = expr.eval(r, &mut s.heap)?;
        s.values.push(v);
    }
    write_values(out, expr.data_type(), &s.values, &s.heap, &mut s.text);
    Ok(())
}

/// Appends `values` (strings in `heap`) as a column of type `ty`.
pub fn write_values(
    out: &mut Vec<u8>,
    ty: DataType,
    values: &[Value],
    heap: &[u8],
    text: &mut String,
) {
    let tag = wire_tag(ty).unwrap_or(T_STRING);
    out.push(tag);
    let nulls = values.iter().any(Value::is_null);
    out.push(u8::from(nulls));
    if nulls {
        out.extend(values.iter().map(|v| u8::from(!v.is_null())));
    }
    match tag {
        T_BOOL => out.extend(values.iter().map(|v| u8::from(*v == Value::Bool(true)))),
        T_INT | T_TIMESTAMP | T_TIME => {
            for v in values {
                let x = match *v {
                    Value::Int(x) | Value::Timestamp(x) | Value::Time(x) => x,
                    _ => 0,
                };
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        T_DOUBLE => {
            for v in values {
                let x = match *v {
                    Value::Float(x) => x,
                    _ => 0.0,
                };
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        T_DATE => {
            for v in values {
                let x = match *v {
                    Value::Date(x) => x,
                    _ => 0,
                };
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        T_DECIMAL => {
            let scale = match ty {
                DataType::Decimal(_, s) => s,
                _ => 0,
            };
            text.clear();
            out.extend_from_slice(&0u32.to_le_bytes());
            for v in values {
                if let Value::Decimal(d) = *v {
                    write_decimal(text, d, scale);
                }
                // decimal text is ASCII: characters are bytes
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            }
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        _ => {
            // strings (offsets in characters) and bytes (in bytes)
            let chars = tag == T_STRING;
            let mut at = 0u32;
            let mut total = 0usize;
            out.extend_from_slice(&0u32.to_le_bytes());
            for v in values {
                if let Value::Str(s) = *v {
                    let b = heap_bytes(heap, s);
                    total += b.len();
                    at += if chars { char_count(b) } else { b.len() as u32 };
                }
                out.extend_from_slice(&at.to_le_bytes());
            }
            if chars {
                out.extend_from_slice(&(total as u32).to_le_bytes());
            }
            for v in values {
                if let Value::Str(s) = *v {
                    out.extend_from_slice(heap_bytes(heap, s));
                }
            }
        }
    }
}

/// Characters in UTF-8 text: the bytes that do not continue a character.
fn char_count(b: &[u8]) -> u32 {
    b.iter().filter(|&&c| (c as i8) >= -0x40).count() as u32
}

/// Reads the bytes of a worker's answer in order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(format!(
                "the answer ends early ({} bytes wanted at {} of {})",
                n,
                self.pos,
                self.buf.len()
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// True when everything has been read.
    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// A result value that does not fit its declared type: the row (of the column) and why.
pub type BadValue = (usize, String);

/// Reads a column of `n` values of type `ty` into `values` (strings into `heap`), checking
/// that each fits the type (integer widths, decimal precision; timestamps are truncated to
/// their precision, as Flink stores them).
pub fn read_column(
    r: &mut Reader<'_>,
    n: usize,
    ty: DataType,
    values: &mut Vec<Value>,
    heap: &mut Vec<u8>,
) -> Result<(), BadValue> {
    let at = |e: String| (usize::MAX, e);
    values.clear();
    heap.clear();
    let head = r.take(2).map_err(at)?;
    let (tag, has_nulls) = (head[0], head[1] != 0);
    if Some(tag) != wire_tag(ty) {
        return Err(at(format!("a column of wire type {tag} for a {ty} result")));
    }
    let mask = if has_nulls {
        Some(r.take(n).map_err(at)?)
    } else {
        None
    };
    let valid = |i: usize| mask.is_none_or(|m| m[i] != 0);
    match tag {
        T_BOOL => {
            let b = r.take(n).map_err(at)?;
            values.extend(b.iter().map(|&x| Value::Bool(x != 0)));
        }
        T_INT => {
            let (lo, hi) = match ty {
                DataType::TinyInt => (i8::MIN as i64, i8::MAX as i64),
                DataType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                DataType::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            let b = r.take(8 * n).map_err(at)?;
            for (i, c) in b.chunks_exact(8).enumerate() {
                let x = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                if valid(i) && !(lo..=hi).contains(&x) {
                    return Err((i, format!("returned {x}, out of the range of {ty}")));
                }
                values.push(Value::Int(x));
            }
        }
        T_TIMESTAMP | T_TIME => {
            let p = match ty {
                DataType::Timestamp(p) | DataType::TimestampLtz(p) | DataType::Time(p) => p,
                _ => 6,
            };
            let unit = 10i64.pow(6u32.saturating_sub(u32::from(p)));
            let b = r.take(8 * n).map_err(at)?;
            for c in b.chunks_exact(8) {
                let x = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                let x = x - x.rem_euclid(unit);
                values.push(if tag == T_TIME {
                    Value::Time(x)
                } else {
                    Value::Timestamp(x)
                });
            }
        }
        T_DOUBLE => {
            let b = r.take(8 * n).map_err(at)?;
            for c in b.chunks_exact(8) {
                let x = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                values.push(Value::Float(if ty == DataType::Float {
                    f64::from(x as f32)
                } else {
                    x
                }));
            }
        }
        T_DATE => {
            let b = r.take(4 * n).map_err(at)?;
            for c in b.chunks_exact(4) {
                values.push(Value::Date(i32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
        }
        T_BYTES => {
            let offs = r.take(4 * (n + 1)).map_err(at)?;
            let offs: Vec<u32> = offs
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let total = offs.last().copied().unwrap_or(0) as usize;
            let data = r.take(total).map_err(at)?;
            heap.extend_from_slice(data);
            for w in offs.windows(2) {
                if w[1] < w[0] || w[1] as usize > total {
                    return Err(at("bad offsets in a BYTES column".into()));
                }
                values.push(Value::Str(StrRef {
                    off: w[0],
                    len: w[1] - w[0],
                }));
            }
        }
        _ => {
            // strings and decimals: character offsets over one UTF-8 text
            let offs = r.take(4 * (n + 1)).map_err(at)?;
            let len = r.u32().map_err(at)? as usize;
            let data = r.take(len).map_err(at)?;
            let text = std::str::from_utf8(data)
                .map_err(|e| at(format!("a string column that is not UTF-8: {e}")))?;
            // character offsets to byte offsets (the same for ASCII text)
            let bounds: Option<Vec<usize>> = (!text.is_ascii()).then(|| {
                text.char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(len))
                    .collect()
            });
            let to_byte = |c: u32| -> Result<usize, String> {
                let b = match &bounds {
                    None => Some(c as usize).filter(|&c| c <= len),
                    Some(b) => b.get(c as usize).copied(),
                };
                b.ok_or_else(|| "offsets past the text".to_owned())
            };
            let mut prev = to_byte(0).map_err(at)?;
            let scale = match ty {
                DataType::Decimal(_, s) => Some(s),
                _ => None,
            };
            for (i, c) in offs.chunks_exact(4).skip(1).enumerate() {
                let end = to_byte(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).map_err(at)?;
                if end < prev {
                    return Err(at("offsets go backwards".into()));
                }
                let s = &text[prev..end];
                match (scale, valid(i)) {
                    (_, false) => values.push(Value::Null),
                    (Some(scale), true) => {
                        let Some(d) = parse_decimal(s, scale) else {
                            return Err((i, format!("returned {s:?}, which is not a {ty}")));
                        };
                        if let DataType::Decimal(p, _) = ty {
                            if d.unsigned_abs() >= 10u128.pow(u32::from(p)) {
                                return Err((i, format!("returned {s}, which does not fit {ty}")));
                            }
                        }
                        values.push(Value::Decimal(d));
                    }
                    (None, true) => {
                        let off = heap.len() as u32;
                        heap.extend_from_slice(s.as_bytes());
                        values.push(Value::Str(StrRef {
                            off,
                            len: s.len() as u32,
                        }));
                    }
                }
                prev = end;
            }
        }
    }
    if values.len() != n {
        return Err(at(format!("{} values for {n} rows", values.len())));
    }
    if let Some(m) = mask {
        for (v, &ok) in values.iter_mut().zip(m) {
            if ok == 0 {
                *v = Value::Null;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(tag: u8, nulls: Option<&[u8]>, data: &[u8]) -> Vec<u8> {
        let mut v = vec![tag, u8::from(nulls.is_some())];
        if let Some(m) = nulls {
            v.extend_from_slice(m);
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn strings_round_trip_with_character_offsets() {
        let mut row = Row::default();
        let a = row.intern("süß");
        let b = row.intern("tee");
        let values = [Value::Str(a), Value::Null, Value::Str(b)];
        let mut out = Vec::new();
        write_values(
            &mut out,
            DataType::String(None),
            &values,
            &row.heap,
            &mut String::new(),
        );
        // after the type, the NULL flag and 3 mask bytes, offsets count characters: 0, 3, 3, 6
        assert_eq!(&out[9..13], &3u32.to_le_bytes());
        let (mut vals, mut heap) = (Vec::new(), Vec::new());
        read_column(
            &mut Reader::new(&out),
            3,
            DataType::String(None),
            &mut vals,
            &mut heap,
        )
        .expect("read");
        assert_eq!(vals[1], Value::Null);
        let text = |v: Value| match v {
            Value::Str(s) => String::from_utf8(heap_bytes(&heap, s).to_vec()).expect("utf8"),
            _ => String::new(),
        };
        assert_eq!(
            (text(vals[0]), text(vals[2])),
            ("süß".to_owned(), "tee".to_owned())
        );
    }

    #[test]
    fn an_integer_too_wide_for_its_type_names_its_row() {
        let mut data = Vec::new();
        for x in [1i64, 300] {
            data.extend_from_slice(&x.to_le_bytes());
        }
        let col = column(T_INT, None, &data);
        let (mut vals, mut heap) = (Vec::new(), Vec::new());
        let err = read_column(
            &mut Reader::new(&col),
            2,
            DataType::TinyInt,
            &mut vals,
            &mut heap,
        )
        .expect_err("300 is no TINYINT");
        assert_eq!(err.0, 1);
        assert!(
            err.1.contains("300") && err.1.contains("TINYINT"),
            "{}",
            err.1
        );
        // a NULL slot's filler is not checked
        let col = column(T_INT, Some(&[1, 0]), &data);
        read_column(
            &mut Reader::new(&col),
            2,
            DataType::TinyInt,
            &mut vals,
            &mut heap,
        )
        .expect("NULL");
        assert_eq!(vals, [Value::Int(1), Value::Null]);
    }

    #[test]
    fn decimals_are_checked_against_precision_and_timestamps_truncated() {
        let (mut vals, mut heap) = (Vec::new(), Vec::new());
        let mut col = column(T_DECIMAL, None, &[]);
        for o in [0u32, 3, 12] {
            col.extend_from_slice(&o.to_le_bytes());
        }
        col.extend_from_slice(&12u32.to_le_bytes());
        col.extend_from_slice(b"1.5-123456.7");
        let err = read_column(
            &mut Reader::new(&col),
            2,
            DataType::Decimal(5, 2),
            &mut vals,
            &mut heap,
        )
        .expect_err("-123456.70 does not fit DECIMAL(5, 2)");
        assert_eq!(err.0, 1);
        read_column(
            &mut Reader::new(&col),
            2,
            DataType::Decimal(10, 2),
            &mut vals,
            &mut heap,
        )
        .expect("fits");
        assert_eq!(vals, [Value::Decimal(150), Value::Decimal(-12_345_670)]);
        let col = column(T_TIMESTAMP, None, &1_234_567i64.to_le_bytes());
        read_column(
            &mut Reader::new(&col),
            1,
            DataType::Timestamp(3),
            &mut vals,
            &mut heap,
        )
        .expect("ts");
        assert_eq!(vals, [Value::Timestamp(1_234_000)]);
    }

    #[test]
    fn a_short_answer_is_an_error_not_a_panic() {
        let col = column(T_DOUBLE, None, &[0; 12]);
        let (mut vals, mut heap) = (Vec::new(), Vec::new());
        assert!(read_column(
            &mut Reader::new(&col),
            2,
            DataType::Double,
            &mut vals,
            &mut heap
        )
        .is_err());
        assert!(read_column(
            &mut Reader::new(&[T_BYTES]),
            1,
            DataType::Bytes,
            &mut vals,
            &mut heap
        )
        .is_err());
    }
}
