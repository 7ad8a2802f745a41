//! Grouping keys: their byte encoding, their hash and the key group they belong to.
//!
//! Every keyed operator encodes a record's key columns into a reusable byte buffer, hashes it once
//! with a fixed-seed hash (the same in every process), and derives the key group from that hash.
//! Key groups (as in Flink, [`MAX_KEY_GROUPS`] of them) are the unit in which keyed state can later
//! be split between processes.

use std::hash::BuildHasher;
use tillflow_types::value::{heap_bytes, StrRef};
use tillflow_types::{Row, Value};

/// Number of key groups keyed state is partitioned into (Flink's default max parallelism).
pub const MAX_KEY_GROUPS: u32 = 128;

const TAG_NULL: u8 = 0;
const TAG_BOOL: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_DECIMAL: u8 = 4;
const TAG_STR: u8 = 5;
const TAG_TS: u8 = 6;
const TAG_DATE: u8 = 7;
const TAG_TIME: u8 = 8;
const TAG_INTERVAL: u8 = 9;
const TAG_MONTHS: u8 = 10;

/// Appends the encoding of `v` (strings read from `heap`) to `out`.
#[inline]
pub fn encode_value(out: &mut Vec<u8>, v: Value, heap: &[u8]) {
    match v {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(b as u8);
        }
        Value::Int(i) => {
            out.push(TAG_INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(TAG_FLOAT);
            // -0.0 and 0.0 are one key; every NaN is one key.
            let f = if f == 0.0 {
                0.0
            } else if f.is_nan() {
                f64::NAN
            } else {
                f
            };
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(d) => {
            out.push(TAG_DECIMAL);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(TAG_STR);
            out.extend_from_slice(&s.len.to_le_bytes());
            out.extend_from_slice(heap_bytes(heap, s));
        }
        Value::Timestamp(t) => {
            out.push(TAG_TS);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Date(d) => {
            out.push(TAG_DATE);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Time(t) => {
            out.push(TAG_TIME);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Interval(t) => {
            out.push(TAG_INTERVAL);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Months(m) => {
            out.push(TAG_MONTHS);
            out.extend_from_slice(&m.to_le_bytes());
        }
    }
}

/// Clears `out` and encodes the columns `cols` of `row` into it.
#[inline]
pub fn encode_key(out: &mut Vec<u8>, row: &Row, cols: &[usize]) {
    out.clear();
    for &c in cols {
        encode_value(
            out,
            row.values.get(c).copied().unwrap_or(Value::Null),
            &row.heap,
        );
    }
}

fn take<const N: usize>(b: &[u8], i: &mut usize) -> Option<[u8; N]> {
    let s = b.get(*i..*i + N)?;
    *i += N;
    s.try_into().ok()
}

/// Decodes one value at `*i` of `b`, appending string bytes to `row`'s heap and the value to its values.
pub fn decode_value_into(b: &[u8], i: &mut usize, row: &mut Row) -> Option<()> {
    let tag = *b.get(*i)?;
    *i += 1;
    let v = match tag {
        TAG_NULL => Value::Null,
        TAG_BOOL => Value::Bool(take::<1>(b, i)?[0] != 0),
        TAG_INT => Value::Int(i64::from_le_bytes(take(b, i)?)),
        TAG_FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(take(b, i)?))),
        TAG_DECIMAL => Value::Decimal(i128::from_le_bytes(take(b, i)?)),
        TAG_STR => {
            let len = u32::from_le_bytes(take(b, i)?);
            let bytes = b.get(*i..*i + len as usize)?;
            *i += len as usize;
            let off = row.heap.len() as u32;
            row.heap.extend_from_slice(bytes);
            Value::Str(StrRef { off, len })
        }
        TAG_TS => Value::Timestamp(i64::from_le_bytes(take(b, i)?)),
        TAG_DATE => Value::Date(i32::from_le_bytes(take(b, i)?)),
        TAG_TIME => Value::Time(i64::from_le_bytes(take(b, i)?)),
        TAG_INTERVAL => Value::Interval(i64::from_le_bytes(take(b, i)?)),
        TAG_MONTHS => Value::Months(i32::from_le_bytes(take(b, i)?)),
        _ => return None,
    };
    row.values.push(v);
    Some(())
}

/// Decodes one value at `*i` of `b` without copying: a string's (or nested value's) span points
/// into `b` itself, so `b` serves as its heap. `None` on a damaged encoding.
pub fn decode_value_ref(b: &[u8], i: &mut usize) -> Option<Value> {
    let tag = *b.get(*i)?;
    if tag == TAG_STR {
        *i += 1;
        let len = u32::from_le_bytes(take(b, i)?);
        let off = *i as u32;
        b.get(*i..*i + len as usize)?;
        *i += len as usize;
        return Some(Value::Str(StrRef { off, len }));
    }
    *i += 1;
    decode_fixed(tag, b, i)
}

/// A value of a fixed-width tag (anything but a string) at `*i`.
fn decode_fixed(tag: u8, b: &[u8], i: &mut usize) -> Option<Value> {
    Some(match tag {
        TAG_NULL => Value::Null,
        TAG_BOOL => Value::Bool(take::<1>(b, i)?[0] != 0),
        TAG_INT => Value::Int(i64::from_le_bytes(take(b, i)?)),
        TAG_FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(take(b, i)?))),
        TAG_DECIMAL => Value::Decimal(i128::from_le_bytes(take(b, i)?)),
        TAG_TS => Value::Timestamp(i64::from_le_bytes(take(b, i)?)),
        TAG_DATE => Value::Date(i32::from_le_bytes(take(b, i)?)),
        TAG_TIME => Value::Time(i64::from_le_bytes(take(b, i)?)),
        TAG_INTERVAL => Value::Interval(i64::from_le_bytes(take(b, i)?)),
        TAG_MONTHS => Value::Months(i32::from_le_bytes(take(b, i)?)),
        _ => return None,
    })
}

/// Decodes every value of an encoded key into `row`. Returns `None` on a corrupt key.
pub fn decode_key_into(key: &[u8], row: &mut Row) -> Option<()> {
    let mut i = 0;
    while i < key.len() {
        decode_value_into(key, &mut i, row)?;
    }
    Some(())
}

/// Byte-slice equality for the short keys and names of the hot path: compares 8 bytes at a time
/// inline instead of calling `memcmp`.
#[inline]
pub fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    #[inline(always)]
    fn word(s: &[u8], i: usize) -> u64 {
        match s.get(i..i + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => 0,
        }
    }
    if n < 8 {
        return a == b;
    }
    let mut i = 0;
    while i + 8 <= n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    i == n || word(a, n - 8) == word(b, n - 8)
}

/// The fixed-seed hash of an encoded key; identical in every process of the same build.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x0711_1f10_u64).hash_one(key)
}

/// The worker (of `workers`) that owns a key hash when keys are spread over `max_parallelism`
/// key groups: Flink's `KeyGroupRangeAssignment` — key group = the hash scaled to
/// `max_parallelism`, worker = key group × workers / `max_parallelism`, so each worker owns a
/// contiguous range of key groups. Exchanges route rows by it, and a restore at another
/// parallelism hands restored keys to their new owners by it.
#[inline]
pub fn instance_of(hash: u64, max_parallelism: u64, workers: usize) -> usize {
    let group = ((hash >> 32) * max_parallelism) >> 32;
    (group * workers as u64 / max_parallelism.max(1)) as usize
}

/// The key group of a key hash, in `0..MAX_KEY_GROUPS`.
#[inline]
pub fn key_group(hash: u64) -> u32 {
    (((hash >> 32) * MAX_KEY_GROUPS as u64) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let mut row = Row::with_capacity(4);
        let s = row.intern("SKU-1");
        row.values.extend([
            Value::Int(7),
            Value::Str(s),
            Value::Null,
            Value::Float(-0.0),
        ]);
        let mut key = Vec::new();
        encode_key(&mut key, &row, &[0, 1, 2, 3]);
        let mut back = Row::with_capacity(4);
        decode_key_into(&key, &mut back).unwrap();
        assert_eq!(back.values[0], Value::Int(7));
        match back.values[1] {
            Value::Str(r) => assert_eq!(back.str(r), "SKU-1"),
            _ => panic!("expected string"),
        }
        assert_eq!(back.values[2], Value::Null);
        assert_eq!(back.values[3], Value::Float(0.0));
        assert!(key_group(hash_key(&key)) < MAX_KEY_GROUPS);
        assert!(decode_key_into(&[99], &mut back).is_none());
        for (a, b, eq) in [
            (&b"SKU-0001"[..], &b"SKU-0001"[..], true),
            (b"SKU-0001", b"SKU-0002", false),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"0123456789abcdefXYZ", b"0123456789abcdefXYZ", true),
            (b"0123456789abcdefXYZ", b"0123456789abcdefXYz", false),
            (b"0123456789abcdefXYZ", b"0123456789abcdefXY", false),
        ] {
            assert_eq!(eq_bytes(a, b), eq, "{a:?} {b:?}");
        }
    }
}
