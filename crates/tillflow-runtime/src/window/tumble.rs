//! TUMBLE: fixed-size, non-overlapping windows aligned to the epoch (plus an optional offset).

/// Appends the one window containing `ts`.
#[inline]
pub fn assign(ts: i64, size: i64, offset: i64, out: &mut Vec<(i64, i64)>) {
    let start = super::window_start(ts, size, offset);
    out.push((start, start + size));
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned_to_epoch() {
        let mut w = Vec::new();
        super::assign(61_500, 60_000, 0, &mut w);
        assert_eq!(w, vec![(60_000, 120_000)]);
        w.clear();
        super::assign(-1, 60_000, 0, &mut w);
        assert_eq!(w, vec![(-60_000, 0)]);
        w.clear();
        super::assign(61_500, 60_000, 5_000, &mut w);
        assert_eq!(w, vec![(5_000, 65_000)]);
    }
}
