//! One row's features, as a learner reads them. Numeric columns keep a slot each, by position
//! (absent when NULL: river leaves a missing key out of the row's dict, so its weight neither
//! counts nor changes). A STRING column becomes the token `name=value` with value 1, hashed into
//! one of `buckets` slots as river's `preprocessing.FeatureHasher` does: MurmurHash3 (x86, 32
//! bits) of the token's UTF-8 bytes with the seed, the bucket the hash modulo `buckets`
//! (Euclidean), and the value negated when the signed hash is negative (`alternate_sign`).
//! Values hashed to one bucket add up. The buffers are reused from row to row.

/// A row's features: numeric slots and hashed (bucket, value) pairs.
#[derive(Debug, Default, Clone)]
pub struct Features {
    /// Numeric features by slot; None when the column is NULL.
    pub dense: Vec<Option<f64>>,
    /// Hashed features: (bucket, value), one pair per bucket.
    pub hashed: Vec<(u32, f64)>,
    token: String,
}

impl Features {
    /// Empty features with `slots` numeric slots.
    pub fn with_slots(slots: usize) -> Features {
        Features {
            dense: vec![None; slots],
            hashed: Vec::new(),
            token: String::new(),
        }
    }

    /// Clears the row (keeping the buffers).
    pub fn clear(&mut self) {
        self.dense.iter_mut().for_each(|d| *d = None);
        self.hashed.clear();
    }

    /// Sets numeric slot `slot` (None: absent).
    pub fn set(&mut self, slot: usize, value: Option<f64>) {
        if let Some(d) = self.dense.get_mut(slot) {
            *d = value.filter(|v| !v.is_nan());
        }
    }

    /// Adds the STRING feature `name` = `value`, hashed into `buckets` slots with `seed`.
    pub fn add_hashed(&mut self, name: &str, value: &str, buckets: u32, seed: u32) {
        self.token.clear();
        self.token.push_str(name);
        self.token.push('=');
        self.token.push_str(value);
        let h = murmur3_x86_32(self.token.as_bytes(), seed) as i32;
        let bucket = h.rem_euclid(buckets.max(1) as i32) as u32;
        let v = if h < 0 { -1.0 } else { 1.0 };
        match self.hashed.iter_mut().find(|(b, _)| *b == bucket) {
            Some((_, sum)) => *sum += v,
            None => self.hashed.push((bucket, v)),
        }
    }
}

/// MurmurHash3, x86 32-bit variant (river's and scikit-learn's feature hash).
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    let mut r: &[u8] = bytes;
    // reading a slice does not fail
    murmur3::murmur3_32(&mut r, seed).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_its_published_vectors() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }

    #[test]
    fn hashed_features_add_up_per_bucket_and_reuse_their_buffers() {
        let mut f = Features::with_slots(2);
        f.set(0, Some(2.5));
        f.set(1, Some(f64::NAN));
        f.add_hashed("store", "s1", 1, 0);
        f.add_hashed("category", "food", 1, 0);
        assert_eq!(f.dense, vec![Some(2.5), None]);
        assert_eq!(f.hashed.len(), 1, "one bucket");
        let sum = f.hashed[0].1;
        assert!(sum == 2.0 || sum == 0.0 || sum == -2.0);
        f.clear();
        assert!(f.hashed.is_empty() && f.dense.iter().all(Option::is_none));
    }
}
