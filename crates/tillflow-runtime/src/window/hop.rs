//! HOP: windows of `size` starting every `slide`; a record belongs to `size / slide` of them.

/// Appends every window containing `ts`, latest start first.
#[inline]
pub fn assign(ts: i64, slide: i64, size: i64, offset: i64, out: &mut Vec<(i64, i64)>) {
    let mut start = super::window_start(ts, slide, offset);
    while start > ts - size {
        out.push((start, start + size));
        start -= slide;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn five_windows_for_size_five_slide_one() {
        let mut w = Vec::new();
        super::assign(125, 10, 50, 0, &mut w);
        assert_eq!(
            w,
            vec![(120, 170), (110, 160), (100, 150), (90, 140), (80, 130)]
        );
    }
}
