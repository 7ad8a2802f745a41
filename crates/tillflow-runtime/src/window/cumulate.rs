//! CUMULATE: windows that start together every `size` and grow by `step` until they reach `size`.

/// Appends every window `[start, start + k·step)` of the cumulating period that contains `ts`.
#[inline]
pub fn assign(ts: i64, step: i64, size: i64, offset: i64, out: &mut Vec<(i64, i64)>) {
    let start = super::window_start(ts, size, offset);
    let mut end = super::window_start(ts, step, offset) + step;
    while end <= start + size {
        out.push((start, end));
        end += step;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn grows_until_size() {
        let mut w = Vec::new();
        super::assign(25, 10, 40, 0, &mut w);
        assert_eq!(w, vec![(0, 30), (0, 40)]);
        w.clear();
        super::assign(40, 10, 40, 0, &mut w);
        assert_eq!(w, vec![(40, 50), (40, 60), (40, 70), (40, 80)]);
    }
}
