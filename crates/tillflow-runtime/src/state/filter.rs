//! A filter of the keys one keyed state has on disk, kept in memory, so that looking for a key
//! that was never moved out (a new join key, a new distinct value) does not search the disk.
//!
//! It is a blocked Bloom filter over the 64-bit hashes the state already keeps per entry (four
//! bits per key in one cache line, at least twelve bits of filter per key), grown
//! in stages: when a stage holds as many keys as it was made for, a stage four times its size
//! follows, and a key may be in any of them. A key read back from disk stays in the filter (a false positive costs one
//! disk lookup, as without the filter), so when the keys put in are four times those on disk,
//! the state builds the filter again from its keys on disk ([`super::KeyedState`]). The filter
//! never says "absent" for a key on disk.

/// Filter bits per key a stage is made for.
const BITS_PER_KEY: u64 = 12;

/// Keys the first stage is made for.
const FIRST_STAGE: u64 = 4096;

/// One Bloom filter of a fixed size.
struct Stage {
    words: Vec<u64>,
    /// Bits - 1 (a power of two).
    mask: u64,
    /// Keys it is made for, and keys put in.
    capacity: u64,
    keys: u64,
}

impl Stage {
    fn new(capacity: u64) -> Stage {
        let bits = (capacity * BITS_PER_KEY).next_power_of_two().max(512);
        Stage {
            words: vec![0; (bits / 64) as usize],
            mask: bits - 1,
            capacity,
            keys: 0,
        }
    }

    /// The four bit positions of `hash`, all in one 512-bit block (one cache line to read),
    /// from a mix of all 64 bits (the entries of a state routed by a prefix share their high
    /// 32).
    #[inline]
    fn bits(&self, hash: u64) -> [u64; 4] {
        let mut x = (hash ^ (hash >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        let block = (x & self.mask) & !511;
        [0, 8, 16, 23].map(|shift| block | ((x >> (32 + shift)) & 511))
    }

    #[inline]
    fn insert(&mut self, hash: u64) {
        for b in self.bits(hash) {
            self.words[(b >> 6) as usize] |= 1 << (b & 63);
        }
        self.keys += 1;
    }

    #[inline]
    fn may_hold(&self, hash: u64) -> bool {
        self.bits(hash)
            .iter()
            .all(|b| self.words[(b >> 6) as usize] & (1 << (b & 63)) != 0)
    }
}

/// The keys a state has on disk, approximately (see the module comment).
#[derive(Default)]
pub(super) struct KeyFilter {
    stages: Vec<Stage>,
}

impl KeyFilter {
    /// Adds the key of `hash`.
    #[inline]
    pub fn insert(&mut self, hash: u64) {
        let full = self.stages.last().is_none_or(|s| s.keys >= s.capacity);
        if full {
            let capacity = self.stages.last().map_or(FIRST_STAGE, |s| s.capacity * 4);
            self.stages.push(Stage::new(capacity));
        }
        if let Some(s) = self.stages.last_mut() {
            s.insert(hash);
        }
    }

    /// False only when no key of `hash` was put in since the filter was last cleared.
    #[inline]
    pub fn may_hold(&self, hash: u64) -> bool {
        self.stages.iter().rev().any(|s| s.may_hold(hash))
    }

    /// Keys put in since the filter was last cleared.
    pub fn keys(&self) -> u64 {
        self.stages.iter().map(|s| s.keys).sum()
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.stages.clear();
    }

    /// Bytes the filter takes.
    pub fn bytes(&self) -> usize {
        self.stages.iter().map(|s| s.words.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::hash_key;

    /// Every key put in is found; keys never put in are mostly not (under 3 % here, with the
    /// filter grown through four stages); clearing forgets them.
    #[test]
    fn holds_every_key_put_in_and_few_others() {
        let mut f = KeyFilter::default();
        let hash = |i: u64| hash_key(&i.to_le_bytes());
        for i in 0..100_000 {
            f.insert(hash(i));
        }
        assert_eq!(f.stages.len(), 4, "grown in stages");
        assert_eq!(f.keys(), 100_000);
        assert!((0..100_000).all(|i| f.may_hold(hash(i))));
        let false_positives = (100_000..200_000).filter(|i| f.may_hold(hash(*i))).count();
        assert!(false_positives < 3_000, "{false_positives} false positives");
        assert!(f.bytes() < 100_000 * 8, "{} bytes", f.bytes());
        f.clear();
        assert!(!f.may_hold(hash(1)));
    }
}
