//! MAP values: a map is one span of its row's heap holding its entries in order, each a key and
//! a value (or NULL) of bytes — `u32` count, then per entry `u32` key length, the key, a `u8`
//! NULL flag and, unless NULL, `u32` value length and the value. Keys may repeat (Kafka headers
//! do); a lookup takes the last, as Flink's map of headers keeps the last value of a key.

use crate::value::{heap_bytes, StrRef};

/// Appends a map of `entries` to `heap` and returns its span.
pub fn push_map<'a>(
    heap: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> StrRef {
    let off = heap.len();
    heap.extend_from_slice(&0u32.to_le_bytes());
    let mut n = 0u32;
    for (k, v) in entries {
        n += 1;
        heap.extend_from_slice(&(k.len() as u32).to_le_bytes());
        heap.extend_from_slice(k);
        match v {
            Some(v) => {
                heap.push(1);
                heap.extend_from_slice(&(v.len() as u32).to_le_bytes());
                heap.extend_from_slice(v);
            }
            None => heap.push(0),
        }
    }
    heap[off..off + 4].copy_from_slice(&n.to_le_bytes());
    StrRef {
        off: off as u32,
        len: (heap.len() - off) as u32,
    }
}

/// The entries of the map `s` in `heap`, in order (a damaged map yields what could be read).
pub fn entries(heap: &[u8], s: StrRef) -> Entries<'_> {
    let b = heap_bytes(heap, s);
    let n = b
        .get(..4)
        .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    Entries { b, at: 4, left: n }
}

/// The value of `key` in the map `s` (the last entry with that key): `None` when absent,
/// `Some(None)` when its value is NULL.
pub fn get<'a>(heap: &'a [u8], s: StrRef, key: &[u8]) -> Option<Option<&'a [u8]>> {
    entries(heap, s)
        .filter(|(k, _)| *k == key)
        .last()
        .map(|(_, v)| v)
}

/// An iterator over a map's entries.
pub struct Entries<'a> {
    b: &'a [u8],
    at: usize,
    left: u32,
}

impl<'a> Entries<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }

    fn len(&mut self) -> Option<usize> {
        let x = self.take(4)?;
        Some(u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let kl = self.len()?;
        let k = self.take(kl)?;
        let flag = self.take(1)?[0];
        let v = if flag == 1 {
            let vl = self.len()?;
            Some(self.take(vl)?)
        } else {
            None
        };
        Some((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_the_last_key_wins() {
        let mut heap = b"prefix".to_vec();
        let m = push_map(
            &mut heap,
            [
                (&b"trace"[..], Some(&b"a1"[..])),
                (&b"empty"[..], None),
                (&b"trace"[..], Some(&b"b2"[..])),
            ],
        );
        let all: Vec<_> = entries(&heap, m).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(get(&heap, m, b"trace"), Some(Some(&b"b2"[..])));
        assert_eq!(get(&heap, m, b"empty"), Some(None));
        assert_eq!(get(&heap, m, b"none"), None);
        let empty = push_map(&mut heap, []);
        assert_eq!(entries(&heap, empty).count(), 0);
    }
}
