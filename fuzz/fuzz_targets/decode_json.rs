//! The JSON decoder never panics, whatever the bytes of a record.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tillflow_types::Row;

fuzz_target!(|data: &[u8]| {
    for extra in [&[][..], &[("json.ignore-parse-errors", "true")][..]] {
        let Ok(mut d) = tillflow_connectors::format::decoder(&common::table("json", extra)) else {
            return;
        };
        let mut row = Row::default();
        let _ = d.decode(data, &mut row);
    }
});
