//! The four streams' schemas, and generated events as rows, NDJSON lines (Flink's JSON layout) or CSV.

use crate::generator::{Event, Kind};
use crate::model::Catalog;
use std::fmt::Write;
use tillflow_types::javafmt::write_double;
use tillflow_types::temporal::write_timestamp_json;
use tillflow_types::{DataType, Field, Row, Schema, Value};

/// A generated stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// One row per receipt line.
    PosSales,
    /// E-commerce clickstream.
    Clickstream,
    /// Inventory movements.
    Inventory,
    /// Promotions.
    Promotions,
}

impl Stream {
    /// Every stream.
    pub const ALL: [Stream; 4] = [
        Stream::PosSales,
        Stream::Clickstream,
        Stream::Inventory,
        Stream::Promotions,
    ];

    /// The stream's name (`pos_sales`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Stream::PosSales => "pos_sales",
            Stream::Clickstream => "clickstream",
            Stream::Inventory => "inventory",
            Stream::Promotions => "promotions",
        }
    }

    /// The stream named `name`.
    pub fn by_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Its columns.
    pub fn schema(self) -> Schema {
        use DataType as T;
        let s = T::String(None);
        let f = |n: &str, t: T| Field::new(n, t);
        Schema::new(match self {
            Stream::PosSales => vec![
                f("event_time", T::Timestamp(3)),
                f("receipt_id", s),
                f("store_id", T::Int),
                f("register_id", T::Int),
                f("sku", s),
                f("category", s),
                f("qty", T::Int),
                f("unit_price", T::Double),
                f("discount", T::Double),
                f("customer_id", s),
                f("channel", s),
                f("payment", s),
            ],
            Stream::Clickstream => vec![
                f("event_time", T::Timestamp(3)),
                f("session_id", s),
                f("customer_id", s),
                f("channel", s),
                f("event_type", s),
                f("sku", s),
                f("price", T::Double),
            ],
            Stream::Inventory => vec![
                f("event_time", T::Timestamp(3)),
                f("store_id", T::Int),
                f("sku", s),
                f("kind", s),
                f("qty_delta", T::Int),
            ],
            Stream::Promotions => vec![
                f("event_time", T::Timestamp(3)),
                f("promo_id", s),
                f("sku", s),
                f("category", s),
                f("discount_pct", T::Double),
                f("start_time", T::Timestamp(3)),
                f("end_time", T::Timestamp(3)),
            ],
        })
    }

    /// Whether `e` belongs to this stream.
    pub fn contains(self, e: &Event) -> bool {
        matches!(
            (self, &e.kind),
            (Stream::PosSales, Kind::Sale(_))
                | (Stream::Clickstream, Kind::Click(_))
                | (Stream::Inventory, Kind::Inventory(_))
                | (Stream::Promotions, Kind::Promotion(_))
        )
    }
}

/// Appends `prefix` and `n` zero-padded to `width` digits, without the formatting machinery:
/// the text is assembled in a stack buffer two digits at a time and copied once.
#[inline]
fn code(heap: &mut Vec<u8>, prefix: &str, n: u64, width: usize) -> Value {
    let off = heap.len() as u32;
    push_code(heap, prefix, n, width);
    Value::Str(tillflow_types::StrRef {
        off,
        len: heap.len() as u32 - off,
    })
}

/// Two-digit pairs "00".."99".
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

#[inline]
fn push_code(heap: &mut Vec<u8>, prefix: &str, n: u64, width: usize) {
    const CAP: usize = 48;
    let mut buf = [b'0'; CAP];
    let mut i = CAP;
    let mut v = n;
    while v >= 100 {
        let p = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    }
    if v >= 10 {
        let p = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    // zero padding (the buffer is pre-filled with '0'; at most 20 digits), then the prefix
    let digits_start = i.min(CAP - width.min(20));
    let p = &prefix.as_bytes()[..prefix.len().min(CAP - 20)];
    let start = digits_start - p.len();
    buf[start..digits_start].copy_from_slice(p);
    heap.extend_from_slice(&buf[start..]);
}

fn sku_code(heap: &mut Vec<u8>, sku: u32) -> Value {
    code(heap, "SKU-", sku as u64, 5)
}

fn lit(heap: &mut Vec<u8>, s: &str) -> Value {
    Value::Str(tillflow_types::value::push_str(heap, s))
}

/// Column `col` of `e` (in its stream's column order); strings go to `h`.
#[inline]
pub fn column_value(e: &Event, catalog: &Catalog, col: usize, h: &mut Vec<u8>) -> Value {
    if col == 0 {
        return Value::Timestamp(e.time);
    }
    match &e.kind {
        Kind::Sale(s) => match col {
            1 => {
                let off = h.len() as u32;
                code(h, "R", s.store as u64, 3);
                code(h, "-", s.receipt, 8);
                Value::Str(tillflow_types::StrRef {
                    off,
                    len: h.len() as u32 - off,
                })
            }
            2 => Value::Int(s.store as i64),
            3 => s
                .register
                .map(|r| Value::Int(r as i64))
                .unwrap_or(Value::Null),
            4 => sku_code(h, s.sku),
            5 => {
                let cat = catalog.skus[(s.sku - 1) as usize].category as usize;
                lit(h, &catalog.categories[cat])
            }
            6 => Value::Int(s.qty as i64),
            7 => Value::Float(s.unit_price),
            8 => Value::Float(s.discount),
            9 => s
                .customer
                .map(|c| code(h, "C", c as u64, 6))
                .unwrap_or(Value::Null),
            10 => lit(h, s.channel.name()),
            11 => lit(h, s.payment),
            _ => Value::Null,
        },
        Kind::Click(c) => match col {
            1 => code(h, "S", c.session, 9),
            2 => c
                .customer
                .map(|c| code(h, "C", c as u64, 6))
                .unwrap_or(Value::Null),
            3 => lit(h, c.channel.name()),
            4 => lit(h, c.kind.name()),
            5 => c.sku.map(|k| sku_code(h, k)).unwrap_or(Value::Null),
            6 => c.price.map(Value::Float).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Kind::Inventory(m) => match col {
            1 => Value::Int(m.store as i64),
            2 => sku_code(h, m.sku),
            3 => lit(h, m.kind.name()),
            4 => Value::Int(m.delta as i64),
            _ => Value::Null,
        },
        Kind::Promotion(p) => match col {
            1 => code(h, "P", p.id as u64, 5),
            2 => p.sku.map(|k| sku_code(h, k)).unwrap_or(Value::Null),
            3 => p
                .category
                .map(|c| lit(h, &catalog.categories[c as usize]))
                .unwrap_or(Value::Null),
            4 => Value::Float(p.discount),
            5 => Value::Timestamp(p.start),
            6 => Value::Timestamp(p.end),
            _ => Value::Null,
        },
    }
}

/// Writes the columns `cols` (positions in the stream's schema) of `e` into `row`.
pub fn fill_columns(e: &Event, catalog: &Catalog, cols: &[usize], row: &mut Row) {
    row.clear();
    for &c in cols {
        let v = column_value(e, catalog, c, &mut row.heap);
        row.values.push(v);
    }
}

/// Writes every column of `e` into `row` in its stream's column order.
pub fn fill_row(e: &Event, catalog: &Catalog, row: &mut Row) {
    let n = match &e.kind {
        Kind::Sale(_) => 12,
        Kind::Click(_) | Kind::Promotion(_) => 7,
        Kind::Inventory(_) => 5,
    };
    row.clear();
    for c in 0..n {
        let v = column_value(e, catalog, c, &mut row.heap);
        row.values.push(v);
    }
}

fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    tillflow_types::javafmt::push_uint(out, n.unsigned_abs());
}

/// Appends `row` (of `schema`) as one NDJSON line in Flink's JSON layout; a malformed event is
/// written damaged (cut short), as a broken producer would.
pub fn write_json(row: &Row, schema: &Schema, malformed: bool, out: &mut String) {
    let start = out.len();
    out.push('{');
    for (i, f) in schema.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&f.name);
        out.push_str("\":");
        match row.values.get(i).copied().unwrap_or(Value::Null) {
            Value::Null => out.push_str("null"),
            Value::Int(n) => push_int(out, n),
            Value::Float(x) => write_double(out, x),
            Value::Timestamp(t) => {
                out.push('"');
                write_timestamp_json(out, t, false, false);
                out.push('"');
            }
            Value::Str(s) => {
                out.push('"');
                out.push_str(row.str(s));
                out.push('"');
            }
            other => {
                let _ = write!(out, "\"{other:?}\"");
            }
        }
    }
    out.push('}');
    if malformed {
        let cut = start + (out.len() - start) * 2 / 3;
        out.truncate(cut);
    }
    out.push('\n');
}

/// Appends `row` as one CSV line (no quoting is needed: generated text has no commas or quotes).
pub fn write_csv(row: &Row, malformed: bool, out: &mut String) {
    for (i, v) in row.values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match *v {
            Value::Null => {}
            Value::Int(n) => {
                push_int(out, n);
            }
            Value::Float(x) => write_double(out, x),
            Value::Timestamp(t) => write_timestamp_json(out, t, false, false),
            Value::Str(s) => out.push_str(row.str(s)),
            other => {
                let _ = write!(out, "{other:?}");
            }
        }
    }
    if malformed {
        out.push_str(",??");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::code;
    use tillflow_types::Value;

    #[test]
    fn codes_equal_the_formatted_text() {
        let cases: &[(&str, u64, usize)] = &[
            ("R", 7, 3),
            ("-", 12_345_678, 8),
            ("-", 123_456_789, 8),
            ("SKU-", 0, 5),
            ("C", 50_000, 6),
            ("S", 9, 9),
            ("", u64::MAX, 3),
            ("x", 100, 0),
        ];
        for &(prefix, n, width) in cases {
            let mut heap = b"before".to_vec();
            let Value::Str(s) = code(&mut heap, prefix, n, width) else {
                panic!("not a string");
            };
            let text = &heap[s.off as usize..(s.off + s.len) as usize];
            assert_eq!(
                std::str::from_utf8(text).ok(),
                Some(format!("{prefix}{n:0width$}").as_str())
            );
            assert_eq!(&heap[..6], b"before");
        }
    }
}
