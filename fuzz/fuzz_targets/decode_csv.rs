//! The CSV decoder and record framing never panic, whatever the bytes: the records cut from the
//! whole input end where a scan fed the same bytes in two pieces says, and each decodes or fails.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tillflow_connectors::format::framing::{record_end, RecordScan};
use tillflow_types::Row;

fuzz_target!(|data: &[u8]| {
    for extra in [
        &[][..],
        &[("csv.ignore-parse-errors", "true")][..],
        &[("csv.escape-character", "\\")][..],
        &[("csv.allow-comments", "true"), ("csv.escape-character", "\\")][..],
    ] {
        let Ok(mut d) = tillflow_connectors::format::decoder(&common::table("csv", extra)) else {
            return;
        };
        let framing = d.framing();
        let mut row = Row::default();
        let mut at = 0;
        while at < data.len() {
            let end = record_end(&framing, data, at, 0..0);
            assert!(end > at && end <= data.len());
            let mid = at + (end - at) / 2;
            let mut scan = RecordScan::default();
            let pieces = scan
                .feed(&framing, &data[at..mid])
                .map(|e| at + e)
                .or_else(|| scan.feed(&framing, &data[mid..]).map(|e| mid + e))
                .unwrap_or(data.len());
            assert_eq!(pieces, end);
            row.clear();
            let _ = d.decode(&data[at..end], &mut row);
            at = end;
        }
    }
});
