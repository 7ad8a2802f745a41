//! Values and rows.
//!
//! A [`Value`] is a small `Copy` enum; strings are not stored inline but as a [`StrRef`] span into
//! the byte heap of the [`Row`] that holds the value. Clearing a row keeps the capacity of both its
//! value vector and its heap, so a decoder or an operator that reuses one output row per record does
//! not allocate on the hot path.

/// A span of UTF-8 bytes inside a row heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StrRef {
    /// Byte offset into the heap.
    pub off: u32,
    /// Length in bytes.
    pub len: u32,
}

/// One SQL value. Integers of every width are held as `i64` and narrowed by their [`crate::DataType`].
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// TINYINT, SMALLINT, INT, BIGINT.
    Int(i64),
    /// FLOAT, DOUBLE.
    Float(f64),
    /// DECIMAL, unscaled (the scale is in the type).
    Decimal(i128),
    /// STRING / VARCHAR / CHAR, as a span of the owning row's heap.
    Str(StrRef),
    /// TIMESTAMP / TIMESTAMP_LTZ, microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// DATE, days since 1970-01-01.
    Date(i32),
    /// TIME, microseconds of the day.
    Time(i64),
    /// Day-time interval, microseconds.
    Interval(i64),
    /// Year-month interval, months.
    Months(i32),
}

impl Value {
    /// True for SQL NULL.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// The change a row represents in a changelog stream, as in Flink's `RowKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum RowKind {
    /// `+I`: a new row.
    #[default]
    Insert,
    /// `-U`: the old version of an updated row.
    UpdateBefore,
    /// `+U`: the new version of an updated row.
    UpdateAfter,
    /// `-D`: a removed row.
    Delete,
}

impl RowKind {
    /// Flink's short string (`+I`, `-U`, `+U`, `-D`).
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// True for `+I` and `+U`.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// A record: its change kind, its values and the heap its strings live in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Change kind.
    pub kind: RowKind,
    /// Column values.
    pub values: Vec<Value>,
    /// Bytes of every string value of this row.
    pub heap: Vec<u8>,
    /// Which split of its source (a Kafka partition) the record came from, for per-split
    /// watermarks; 0 for single-split sources.
    pub split: u32,
}

impl Row {
    /// An empty row with room for `n` values.
    pub fn with_capacity(n: usize) -> Self {
        Row {
            kind: RowKind::Insert,
            values: Vec::with_capacity(n),
            heap: Vec::with_capacity(64),
            split: 0,
        }
    }

    /// Empties the row, keeping its buffers.
    #[inline]
    pub fn clear(&mut self) {
        self.kind = RowKind::Insert;
        self.values.clear();
        self.heap.clear();
        self.split = 0;
    }

    /// The bytes of a string stored in this row's heap.
    #[inline]
    pub fn bytes(&self, s: StrRef) -> &[u8] {
        heap_bytes(&self.heap, s)
    }

    /// The text of a string stored in this row's heap.
    #[inline]
    pub fn str(&self, s: StrRef) -> &str {
        heap_str(&self.heap, s)
    }

    /// Appends `s` to the heap and returns its span.
    #[inline]
    pub fn intern(&mut self, s: &str) -> StrRef {
        push_str(&mut self.heap, s)
    }

    /// A copy to keep (in state): the same kind and values, with a heap holding only this row's
    /// strings (a reused row's heap may hold more).
    pub fn detached(&self) -> Row {
        let mut owned = Row::with_capacity(self.values.len());
        owned.kind = self.kind;
        for v in &self.values {
            owned.push_from(*v, &self.heap);
        }
        owned
    }

    /// Copies `v` from another row (`from`'s heap) into this row's heap and pushes it.
    #[inline]
    pub fn push_from(&mut self, v: Value, from: &[u8]) {
        let v = copy_value(v, from, &mut self.heap);
        self.values.push(v);
    }
}

/// The bytes of `s` in `heap` (empty if the span is out of range, which cannot happen for spans
/// produced by this crate's functions).
#[inline]
pub fn heap_bytes(heap: &[u8], s: StrRef) -> &[u8] {
    let start = s.off as usize;
    heap.get(start..start + s.len as usize).unwrap_or(&[])
}

/// The text of `s` in `heap`. Heaps only ever receive UTF-8 text, so this does not fail.
#[inline]
pub fn heap_str(heap: &[u8], s: StrRef) -> &str {
    std::str::from_utf8(heap_bytes(heap, s)).unwrap_or("")
}

/// Appends `s` to `heap` and returns its span.
#[inline]
pub fn push_str(heap: &mut Vec<u8>, s: &str) -> StrRef {
    let off = heap.len() as u32;
    heap.extend_from_slice(s.as_bytes());
    StrRef {
        off,
        len: s.len() as u32,
    }
}

/// Copies a value whose strings live in `from` into `to`, returning the value re-pointed at `to`.
#[inline]
pub fn copy_value(v: Value, from: &[u8], to: &mut Vec<u8>) -> Value {
    match v {
        Value::Str(s) => {
            let off = to.len() as u32;
            to.extend_from_slice(heap_bytes(from, s));
            Value::Str(StrRef { off, len: s.len })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_live_in_the_row_heap() {
        let mut a = Row::with_capacity(2);
        let s = a.intern("hello");
        a.values.push(Value::Str(s));
        let mut b = Row::with_capacity(1);
        b.intern("xx");
        b.push_from(a.values[0], &a.heap);
        match b.values[0] {
            Value::Str(r) => assert_eq!(b.str(r), "hello"),
            _ => panic!("not a string"),
        }
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }
}
