//! Keyed state: the one place operators keep per-key data.
//!
//! A [`KeyedState`] maps encoded keys to values. Each entry remembers its key hash, so its key group
//! is known without re-hashing; [`KeyedState::snapshot`] writes entries key group by key group, so
//! that a later checkpoint can hand a range of key groups to another process. Values implement
//! [`StateValue`] to be written to and read from bytes.

use crate::error::{Result, RuntimeError};
use crate::keys::{eq_bytes, hash_key, key_group, MAX_KEY_GROUPS};
use hashbrown::HashTable;
use tillflow_types::{Row, RowKind};

/// A value that can be stored in a checkpoint.
pub trait StateValue: Sized {
    /// Appends this value's bytes.
    fn write(&self, out: &mut Vec<u8>);
    /// Reads a value written by [`StateValue::write`], advancing `at`.
    fn read(input: &[u8], at: &mut usize) -> Result<Self>;
}

struct Entry<V> {
    hash: u64,
    key: Box<[u8]>,
    value: V,
}

/// A hash map from encoded keys to `V`, partitioned by key group.
pub struct KeyedState<V> {
    table: HashTable<Entry<V>>,
}

impl<V> Default for KeyedState<V> {
    fn default() -> Self {
        KeyedState {
            table: HashTable::new(),
        }
    }
}

impl<V> KeyedState<V> {
    /// The value for `key`, created with `init` when absent. Allocates only for a new key.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: &[u8], init: impl FnOnce() -> V) -> &mut V {
        let hash = hash_key(key);
        let entry = self
            .table
            .entry(
                hash,
                |e| e.hash == hash && eq_bytes(&e.key, key),
                |e| e.hash,
            )
            .or_insert_with(|| Entry {
                hash,
                key: key.into(),
                value: init(),
            });
        &mut entry.into_mut().value
    }

    /// The value for `key`, if present.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let hash = hash_key(key);
        self.table
            .find_mut(hash, |e| e.hash == hash && eq_bytes(&e.key, key))
            .map(|e| &mut e.value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let hash = hash_key(key);
        self.table
            .find_entry(hash, |e| e.hash == hash && eq_bytes(&e.key, key))
            .ok()
            .map(|e| e.remove().0.value)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every (key, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.table.iter().map(|e| (&*e.key, &e.value))
    }

    /// Removes and yields every (key, value).
    pub fn drain(&mut self) -> impl Iterator<Item = (Box<[u8]>, V)> + '_ {
        self.table.drain().map(|e| (e.key, e.value))
    }

    /// The key group of every entry, for tests and rebalancing.
    pub fn key_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().map(|e| key_group(e.hash))
    }
}

impl<V: StateValue> KeyedState<V> {
    /// Writes the entries whose key group lies in `groups`, ordered by key group.
    pub fn snapshot(&self, groups: std::ops::Range<u32>, out: &mut Vec<u8>) {
        // a counting sort by key group: two passes over the table, no allocation per group
        let mut starts = vec![0usize; MAX_KEY_GROUPS as usize + 1];
        for e in self.table.iter() {
            let g = key_group(e.hash);
            if groups.contains(&g) {
                starts[g as usize + 1] += 1;
            }
        }
        for g in 0..MAX_KEY_GROUPS as usize {
            starts[g + 1] += starts[g];
        }
        let count = starts[MAX_KEY_GROUPS as usize];
        let mut ordered: Vec<Option<&Entry<V>>> = vec![None; count];
        for e in self.table.iter() {
            let g = key_group(e.hash);
            if groups.contains(&g) {
                ordered[starts[g as usize]] = Some(e);
                starts[g as usize] += 1;
            }
        }
        out.reserve(count * 64);
        out.extend_from_slice(&(count as u64).to_le_bytes());
        for e in ordered.into_iter().flatten() {
            out.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.key);
            e.value.write(out);
        }
    }

    /// Adds the entries of a snapshot written by [`KeyedState::snapshot`].
    pub fn restore(&mut self, input: &[u8], at: &mut usize) -> Result<()> {
        let count = read_u64(input, at)?;
        for _ in 0..count {
            let len = read_u32(input, at)? as usize;
            let key = input
                .get(*at..*at + len)
                .ok_or_else(|| RuntimeError::State("truncated key".into()))?;
            *at += len;
            let value = V::read(input, at)?;
            let hash = hash_key(key);
            self.table.insert_unique(
                hash,
                Entry {
                    hash,
                    key: key.into(),
                    value,
                },
                |e| e.hash,
            );
        }
        Ok(())
    }
}

/// Reads a little-endian u64 at `at`.
pub fn read_u64(input: &[u8], at: &mut usize) -> Result<u64> {
    let b = input
        .get(*at..*at + 8)
        .ok_or_else(|| RuntimeError::State("truncated state".into()))?;
    *at += 8;
    Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Reads a little-endian u32 at `at`.
pub fn read_u32(input: &[u8], at: &mut usize) -> Result<u32> {
    let b = input
        .get(*at..*at + 4)
        .ok_or_else(|| RuntimeError::State("truncated state".into()))?;
    *at += 4;
    Ok(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
}

impl StateValue for Row {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(match self.kind {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        });
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for v in &self.values {
            crate::keys::encode_value(out, *v, &self.heap);
        }
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let kind = match input.get(*at) {
            Some(0) => RowKind::Insert,
            Some(1) => RowKind::UpdateBefore,
            Some(2) => RowKind::UpdateAfter,
            Some(3) => RowKind::Delete,
            _ => return Err(RuntimeError::State("corrupt row kind".into())),
        };
        *at += 1;
        let n = read_u32(input, at)?;
        // a count read from the bytes never reserves more than the bytes could hold
        let mut row = Row::with_capacity((n as usize).min(input.len().saturating_sub(*at)));
        row.kind = kind;
        for _ in 0..n {
            crate::keys::decode_value_into(input, at, &mut row)
                .ok_or_else(|| RuntimeError::State("corrupt row value".into()))?;
        }
        Ok(row)
    }
}

impl<T: StateValue> StateValue for Vec<T> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for x in self {
            x.write(out);
        }
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let n = read_u32(input, at)? as usize;
        let mut v = Vec::with_capacity(n.min(input.len().saturating_sub(*at)));
        for _ in 0..n {
            v.push(T::read(input, at)?);
        }
        Ok(v)
    }
}

impl StateValue for i64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        Ok(read_u64(input, at)? as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_splits_by_key_group() {
        let mut s: KeyedState<i64> = KeyedState::default();
        for k in 0..1000i64 {
            *s.get_or_insert_with(&k.to_le_bytes(), || 0) += k;
        }
        let mut low = Vec::new();
        let mut high = Vec::new();
        s.snapshot(0..64, &mut low);
        s.snapshot(64..128, &mut high);
        let mut a: KeyedState<i64> = KeyedState::default();
        let mut b: KeyedState<i64> = KeyedState::default();
        a.restore(&low, &mut 0).unwrap();
        b.restore(&high, &mut 0).unwrap();
        assert_eq!(a.len() + b.len(), 1000);
        assert!(a.key_groups().all(|g| g < 64));
        assert!(b.key_groups().all(|g| g >= 64));
        assert_eq!(
            *b.get_mut(&999i64.to_le_bytes())
                .or(a.get_mut(&999i64.to_le_bytes()))
                .unwrap(),
            999
        );
        assert!(a.restore(&low[..low.len() - 1], &mut 0).is_err());
    }
}
