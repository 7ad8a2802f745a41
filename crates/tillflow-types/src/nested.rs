//! Nested values: ROW, ARRAY and MULTISET (and the MAP layout of [`crate::map`]) as one encoded
//! span of their row's heap, held in a [`Value::Str`] like a string, so rows keep their flat,
//! `Copy` values and copying, hashing, comparing and checkpointing a row need nothing new.
//!
//! The encoding is directed by the type (it stores no type tags):
//! - a *slot* is a `u8` (0 = NULL, 1 = present) followed, when present, by the *payload*;
//! - payloads: BOOLEAN one byte; integer, date, time, timestamp and interval types an `i64`,
//!   FLOAT/DOUBLE an `f64`, DECIMAL an `i128` (all little-endian); STRING and BYTES a `u32`
//!   length and the bytes; a nested value a `u32` length and its encoding;
//! - a ROW's encoding is its fields' slots in order; an ARRAY's or MULTISET's a `u32` count and
//!   its elements' slots; a MAP's a `u32` count and per entry the key's payload and the value's
//!   slot (which is exactly [`crate::map`]'s layout for string and byte maps).
//!
//! Reading a field or an element walks the encoding and returns a [`Value`] whose strings and
//! nested values are spans inside the same heap — no copy, no allocation. Equal values have
//! equal encodings, so grouping and joining on a nested column compare bytes.

use crate::datatype::RowType;
use crate::value::{heap_bytes, StrRef, Value};
use crate::DataType;

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The byte length of a payload of type `ty` starting at `at` in `b`.
fn payload_len(b: &[u8], at: usize, ty: DataType) -> Option<usize> {
    Some(match ty {
        DataType::Null => 0,
        DataType::Boolean => 1,
        DataType::Decimal(..) => 16,
        DataType::String(_)
        | DataType::Bytes
        | DataType::Row(_)
        | DataType::Array(_)
        | DataType::Multiset(_)
        | DataType::Map(..) => 4 + read_u32(b, at)? as usize,
        _ => 8,
    })
}

/// The position after the slot of type `ty` at `at`.
fn skip_slot(b: &[u8], at: usize, ty: DataType) -> Option<usize> {
    match b.get(at)? {
        0 => Some(at + 1),
        _ => Some(at + 1 + payload_len(b, at + 1, ty)?),
    }
}

/// The value of the payload of type `ty` at `at` of `b`, whose first byte is at heap offset
/// `base`.
fn read_payload(b: &[u8], base: u32, at: usize, ty: DataType) -> Option<Value> {
    Some(match ty {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(*b.get(at)? != 0),
        DataType::Decimal(..) => {
            Value::Decimal(i128::from_le_bytes(b.get(at..at + 16)?.try_into().ok()?))
        }
        DataType::Float | DataType::Double => Value::Float(f64::from_bits(read_i64(b, at)? as u64)),
        DataType::String(_)
        | DataType::Bytes
        | DataType::Row(_)
        | DataType::Array(_)
        | DataType::Multiset(_)
        | DataType::Map(..) => {
            let len = read_u32(b, at)?;
            b.get(at + 4..at + 4 + len as usize)?;
            Value::Str(StrRef {
                off: base + at as u32 + 4,
                len,
            })
        }
        DataType::Date => Value::Date(read_i64(b, at)? as i32),
        DataType::IntervalYearMonth => Value::Months(read_i64(b, at)? as i32),
        DataType::Time(_) => Value::Time(read_i64(b, at)?),
        DataType::Timestamp(_) | DataType::TimestampLtz(_) => Value::Timestamp(read_i64(b, at)?),
        DataType::IntervalDayTime => Value::Interval(read_i64(b, at)?),
        _ => Value::Int(read_i64(b, at)?),
    })
}

/// The value of the slot at `at`.
fn read_slot(b: &[u8], base: u32, at: usize, ty: DataType) -> Option<Value> {
    match b.get(at)? {
        0 => Some(Value::Null),
        _ => read_payload(b, base, at + 1, ty),
    }
}

/// Field `i` of the ROW value `span` of type `row` (NULL when damaged or out of range).
pub fn row_field(heap: &[u8], span: StrRef, row: &RowType, i: usize) -> Value {
    let b = heap_bytes(heap, span);
    let mut at = 0;
    for (_, ty) in row.fields.iter().take(i) {
        match skip_slot(b, at, *ty) {
            Some(next) => at = next,
            None => return Value::Null,
        }
    }
    row.fields
        .get(i)
        .and_then(|(_, ty)| read_slot(b, span.off, at, *ty))
        .unwrap_or(Value::Null)
}

/// The number of elements of the ARRAY or MULTISET value `span` (0 when damaged).
pub fn len(heap: &[u8], span: StrRef) -> usize {
    read_u32(heap_bytes(heap, span), 0).unwrap_or(0) as usize
}

/// The elements of the ARRAY or MULTISET value `span` whose elements are of type `element`.
pub fn elements(heap: &[u8], span: StrRef, element: DataType) -> Elements<'_> {
    let b = heap_bytes(heap, span);
    Elements {
        b,
        base: span.off,
        at: 4,
        left: read_u32(b, 0).unwrap_or(0),
        ty: element,
    }
}

/// Element `i` (0-based) of an ARRAY value (NULL when out of range).
pub fn element(heap: &[u8], span: StrRef, ty: DataType, i: usize) -> Value {
    elements(heap, span, ty).nth(i).unwrap_or(Value::Null)
}

/// The elements of an ARRAY or MULTISET, in order (a damaged encoding ends early).
pub struct Elements<'h> {
    b: &'h [u8],
    base: u32,
    at: usize,
    left: u32,
    ty: DataType,
}

impl Iterator for Elements<'_> {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let v = read_slot(self.b, self.base, self.at, self.ty);
        match (v, skip_slot(self.b, self.at, self.ty)) {
            (Some(v), Some(next)) => {
                self.at = next;
                Some(v)
            }
            _ => {
                self.left = 0;
                None
            }
        }
    }
}

/// The entries of the MAP value `span` with keys of type `key` and values of type `value`, in
/// order, as (key, value) (a damaged encoding ends early).
pub fn map_entries(heap: &[u8], span: StrRef, key: DataType, value: DataType) -> MapEntries<'_> {
    let b = heap_bytes(heap, span);
    MapEntries {
        b,
        base: span.off,
        at: 4,
        left: read_u32(b, 0).unwrap_or(0),
        key,
        value,
    }
}

/// The entries of a MAP, in order.
pub struct MapEntries<'h> {
    b: &'h [u8],
    base: u32,
    at: usize,
    left: u32,
    key: DataType,
    value: DataType,
}

impl MapEntries<'_> {
    /// The next entry with the raw bytes of its key's payload (for comparing keys).
    fn next_raw(&mut self) -> Option<(std::ops::Range<usize>, Value, Value)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let klen = payload_len(self.b, self.at, self.key);
        let entry = klen.and_then(|klen| {
            let k = read_payload(self.b, self.base, self.at, self.key)?;
            let vat = self.at + klen;
            let v = read_slot(self.b, self.base, vat, self.value)?;
            let next = skip_slot(self.b, vat, self.value)?;
            Some((self.at..self.at + klen, k, v, next))
        });
        match entry {
            Some((raw, k, v, next)) => {
                self.at = next;
                Some((raw, k, v))
            }
            None => {
                self.left = 0;
                None
            }
        }
    }
}

impl Iterator for MapEntries<'_> {
    type Item = (Value, Value);

    fn next(&mut self) -> Option<(Value, Value)> {
        self.next_raw().map(|(_, k, v)| (k, v))
    }
}

/// The value of `key` (of the map's key type, its string in `heap`) in the MAP value `span`:
/// the last entry with an equal key, NULL when there is none.
pub fn map_get(
    heap: &mut Vec<u8>,
    span: StrRef,
    ktype: DataType,
    vtype: DataType,
    key: Value,
) -> Value {
    if key.is_null() {
        return Value::Null;
    }
    // the key's payload, written after everything else and removed again
    let mark = heap.len();
    push_payload(heap, key, ktype);
    let found = {
        let (head, probe) = heap.split_at(mark);
        let mut it = map_entries(head, span, ktype, vtype);
        let mut found = None;
        while let Some((raw, _, v)) = it.next_raw() {
            if it.b.get(raw) == Some(probe) {
                found = Some(v);
            }
        }
        found
    };
    heap.truncate(mark);
    found.unwrap_or(Value::Null)
}

/// Keeps only the last entry of each key of the MAP encoded at `heap[off..]` (a map read from a
/// JSON object keeps the last value of a repeated key, as Flink's does). Maps are small: the
/// check compares entries pairwise and copies only when a key repeats.
pub fn dedupe_map_keys(heap: &mut Vec<u8>, off: usize, ktype: DataType, vtype: DataType) {
    let entry = |b: &[u8], at: usize| -> Option<(usize, usize)> {
        let klen = payload_len(b, at, ktype)?;
        Some((at + klen, skip_slot(b, at + klen, vtype)?))
    };
    let b = &heap[off..];
    let n = read_u32(b, 0).unwrap_or(0);
    let mut repeated = false;
    let mut at = 4;
    'outer: for _ in 0..n {
        let Some((kend, next)) = entry(b, at) else {
            return;
        };
        let mut j = next;
        while j < b.len() {
            let Some((kend2, next2)) = entry(b, j) else {
                return;
            };
            if b[at..kend] == b[j..kend2] {
                repeated = true;
                break 'outer;
            }
            j = next2;
        }
        at = next;
    }
    if !repeated {
        return;
    }
    let mut kept: Vec<u8> = Vec::with_capacity(b.len());
    kept.extend_from_slice(&0u32.to_le_bytes());
    let mut count = 0u32;
    let mut at = 4;
    for _ in 0..n {
        let Some((kend, next)) = entry(b, at) else {
            break;
        };
        let mut later = false;
        let mut j = next;
        while j < b.len() {
            let Some((kend2, next2)) = entry(b, j) else {
                break;
            };
            later |= b[at..kend] == b[j..kend2];
            j = next2;
        }
        if !later {
            kept.extend_from_slice(&b[at..next]);
            count += 1;
        }
        at = next;
    }
    kept[..4].copy_from_slice(&count.to_le_bytes());
    heap.truncate(off);
    heap.extend_from_slice(&kept);
}

/// Appends the payload of `v` (of type `ty`, not NULL) to `heap`; its strings and nested values
/// are spans of `heap` itself.
fn push_payload(heap: &mut Vec<u8>, v: Value, ty: DataType) {
    match v {
        Value::Null => {}
        Value::Bool(x) => heap.push(x as u8),
        Value::Int(x) | Value::Timestamp(x) | Value::Time(x) | Value::Interval(x) => {
            heap.extend_from_slice(&x.to_le_bytes())
        }
        Value::Date(x) | Value::Months(x) => heap.extend_from_slice(&(x as i64).to_le_bytes()),
        Value::Float(x) => {
            let x = if matches!(ty, DataType::Float) {
                x as f32 as f64
            } else {
                x
            };
            heap.extend_from_slice(&x.to_bits().to_le_bytes())
        }
        Value::Decimal(x) => heap.extend_from_slice(&x.to_le_bytes()),
        Value::Str(s) => {
            heap.extend_from_slice(&s.len.to_le_bytes());
            let start = s.off as usize;
            let end = start + s.len as usize;
            if end <= heap.len() {
                heap.extend_from_within(start..end);
            }
        }
    }
}

/// Appends a slot holding `v` (of type `ty`; its strings live in `heap`) to `heap`.
pub fn push_slot(heap: &mut Vec<u8>, v: Value, ty: DataType) {
    if v.is_null() {
        heap.push(0);
    } else {
        heap.push(1);
        push_payload(heap, v, ty);
    }
}

/// Appends the encoding of a ROW of `values` (types `row`, strings in `heap`) to `heap`.
pub fn push_row(heap: &mut Vec<u8>, values: &[Value], row: &RowType) -> StrRef {
    let off = heap.len();
    for (v, (_, ty)) in values.iter().zip(&row.fields) {
        push_slot(heap, *v, *ty);
    }
    for (_, _) in row.fields.iter().skip(values.len()) {
        heap.push(0);
    }
    span_from(heap, off)
}

/// Appends the encoding of an ARRAY of `values` (of type `element`, strings in `heap`).
pub fn push_array(heap: &mut Vec<u8>, values: &[Value], element: DataType) -> StrRef {
    let off = heap.len();
    heap.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        push_slot(heap, *v, element);
    }
    span_from(heap, off)
}

/// The span from `off` to the end of `heap`.
pub fn span_from(heap: &[u8], off: usize) -> StrRef {
    StrRef {
        off: off as u32,
        len: (heap.len() - off) as u32,
    }
}

/// Writes nested values piece by piece (a decoder filling them from its input): begin a ROW or
/// an ARRAY, add slots, end it; a nested value inside another is length-prefixed.
pub struct Writer {
    /// Open containers: (start of the length prefix or the value, whether it is a payload with a
    /// length prefix, element count position for arrays).
    open: Vec<(usize, bool, Option<usize>)>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            open: Vec::with_capacity(4),
        }
    }
}

impl Writer {
    /// Starts a top-level value or a nested payload (after its slot flag).
    pub fn begin(&mut self, heap: &mut Vec<u8>, nested: bool, array: bool) {
        let start = heap.len();
        if nested {
            heap.extend_from_slice(&0u32.to_le_bytes());
        }
        let count = if array {
            let at = heap.len();
            heap.extend_from_slice(&0u32.to_le_bytes());
            Some(at)
        } else {
            None
        };
        self.open.push((start, nested, count));
    }

    /// Counts one element of the innermost open array.
    pub fn count(&mut self, heap: &mut [u8]) {
        if let Some(&(_, _, Some(at))) = self.open.last() {
            if let Some(b) = heap.get_mut(at..at + 4) {
                let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) + 1;
                b.copy_from_slice(&n.to_le_bytes());
            }
        }
    }

    /// Ends the innermost open value; returns its span when it was a top-level one.
    pub fn end(&mut self, heap: &mut [u8]) -> Option<StrRef> {
        let (start, nested, _) = self.open.pop()?;
        if nested {
            let len = (heap.len() - start - 4) as u32;
            heap.get_mut(start..start + 4)?
                .copy_from_slice(&len.to_le_bytes());
            None
        } else {
            Some(span_from(heap, start))
        }
    }
}

/// Appends a string (or bytes) payload.
pub fn push_bytes_payload(heap: &mut Vec<u8>, b: &[u8]) {
    heap.extend_from_slice(&(b.len() as u32).to_le_bytes());
    heap.extend_from_slice(b);
}

/// Appends a present scalar payload (not a string or nested value).
pub fn push_scalar_payload(heap: &mut Vec<u8>, v: Value, ty: DataType) {
    push_payload(heap, v, ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{heap_str, push_str};

    #[test]
    fn rows_and_arrays_read_back_without_copies() {
        let item = DataType::row(vec![
            ("sku".into(), DataType::String(None)),
            ("qty".into(), DataType::Int),
            ("price".into(), DataType::Decimal(10, 2)),
        ]);
        let DataType::Row(item_type) = item else {
            panic!("not a row")
        };
        let mut heap = Vec::new();
        let a = push_str(&mut heap, "A-1");
        let first = push_row(
            &mut heap,
            &[Value::Str(a), Value::Int(2), Value::Decimal(1999)],
            item_type,
        );
        let second = push_row(&mut heap, &[Value::Null, Value::Int(5)], item_type);
        let items = push_array(
            &mut heap,
            &[Value::Str(first), Value::Null, Value::Str(second)],
            item,
        );
        assert_eq!(len(&heap, items), 3);
        let got: Vec<Value> = elements(&heap, items, item).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], Value::Null);
        let Value::Str(r0) = got[0] else {
            panic!("not a row")
        };
        match row_field(&heap, r0, item_type, 0) {
            Value::Str(s) => assert_eq!(heap_str(&heap, s), "A-1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(row_field(&heap, r0, item_type, 1), Value::Int(2));
        assert_eq!(row_field(&heap, r0, item_type, 2), Value::Decimal(1999));
        let Value::Str(r2) = got[2] else {
            panic!("not a row")
        };
        assert_eq!(row_field(&heap, r2, item_type, 0), Value::Null);
        assert_eq!(row_field(&heap, r2, item_type, 2), Value::Null);
        assert_eq!(row_field(&heap, r2, item_type, 9), Value::Null);
        assert_eq!(element(&heap, items, item, 7), Value::Null);
    }

    #[test]
    fn equal_values_encode_equally_and_damage_reads_as_null() {
        let t = DataType::array(DataType::BigInt);
        let mut h1 = Vec::new();
        let s1 = push_array(&mut h1, &[Value::Int(1), Value::Int(2)], DataType::BigInt);
        let mut h2 = vec![9, 9, 9];
        let s2 = push_array(&mut h2, &[Value::Int(1), Value::Int(2)], DataType::BigInt);
        assert_eq!(heap_bytes(&h1, s1), heap_bytes(&h2, s2));
        assert_eq!(t.to_string(), "ARRAY<BIGINT>");
        // a truncated encoding yields what it can, never panics
        let cut = StrRef {
            off: s1.off,
            len: s1.len - 3,
        };
        assert_eq!(elements(&h1, cut, DataType::BigInt).count(), 1);
    }

    #[test]
    fn maps_of_any_types() {
        let mut heap = Vec::new();
        // MAP<INT, STRING>: {1: "a", 2: NULL, 1: "c"}
        let off = heap.len();
        heap.extend_from_slice(&3u32.to_le_bytes());
        for (k, v) in [(1i64, Some("a")), (2, None), (1, Some("c"))] {
            push_scalar_payload(&mut heap, Value::Int(k), DataType::Int);
            match v {
                Some(v) => {
                    heap.push(1);
                    push_bytes_payload(&mut heap, v.as_bytes());
                }
                None => heap.push(0),
            }
        }
        let m = span_from(&heap, off);
        let s = DataType::String(None);
        let got: Vec<(Value, bool)> = map_entries(&heap, m, DataType::Int, s)
            .map(|(k, v)| (k, v.is_null()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Value::Int(1), false),
                (Value::Int(2), true),
                (Value::Int(1), false)
            ]
        );
        match map_get(&mut heap, m, DataType::Int, s, Value::Int(1)) {
            Value::Str(x) => assert_eq!(crate::value::heap_str(&heap, x), "c"),
            other => panic!("{other:?}"),
        }
        let len = heap.len();
        assert_eq!(
            map_get(&mut heap, m, DataType::Int, s, Value::Int(2)),
            Value::Null
        );
        assert_eq!(
            map_get(&mut heap, m, DataType::Int, s, Value::Int(9)),
            Value::Null
        );
        assert_eq!(heap.len(), len, "the probe is removed");
        // a map of strings reads the same through crate::map
        let mut h2 = Vec::new();
        let sm = crate::map::push_map(&mut h2, [(&b"k"[..], Some(&b"v"[..]))]);
        let k = crate::value::push_str(&mut h2, "k");
        match map_get(&mut h2, sm, s, s, Value::Str(k)) {
            Value::Str(x) => assert_eq!(crate::value::heap_str(&h2, x), "v"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            DataType::map(DataType::Int, s).to_string(),
            "MAP<INT, STRING>"
        );
        // a repeated key keeps its last value
        let mut h3 = vec![7u8];
        let dm = crate::map::push_map(
            &mut h3,
            [
                (&b"a"[..], Some(&b"1"[..])),
                (&b"b"[..], None),
                (&b"a"[..], Some(&b"3"[..])),
            ],
        );
        dedupe_map_keys(&mut h3, dm.off as usize, s, s);
        let dm = span_from(&h3, dm.off as usize);
        let got: Vec<(&[u8], Option<&[u8]>)> = crate::map::entries(&h3, dm).collect();
        assert_eq!(got, vec![(&b"b"[..], None), (&b"a"[..], Some(&b"3"[..]))]);
    }

    #[test]
    fn the_writer_builds_nested_values() {
        let inner = DataType::array(DataType::String(None));
        let outer = DataType::row(vec![("tags".into(), inner), ("n".into(), DataType::Int)]);
        let DataType::Row(rt) = outer else { panic!() };
        let mut heap = Vec::new();
        let mut w = Writer::default();
        w.begin(&mut heap, false, false);
        heap.push(1);
        w.begin(&mut heap, true, true);
        for t in ["a", "bc"] {
            heap.push(1);
            push_bytes_payload(&mut heap, t.as_bytes());
            w.count(&mut heap);
        }
        w.end(&mut heap);
        heap.push(1);
        push_scalar_payload(&mut heap, Value::Int(7), DataType::Int);
        let span = w.end(&mut heap).expect("top-level span");
        assert_eq!(row_field(&heap, span, rt, 1), Value::Int(7));
        let Value::Str(tags) = row_field(&heap, span, rt, 0) else {
            panic!()
        };
        let got: Vec<String> = elements(&heap, tags, DataType::String(None))
            .map(|v| match v {
                Value::Str(s) => heap_str(&heap, s).to_owned(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(got, ["a", "bc"]);
        assert_eq!(outer.to_string(), "ROW<`tags` ARRAY<STRING>, `n` INT>");
    }
}
