//! Decoding a checkpoint's state, and keyed state inside it, never panics nor allocates what
//! the bytes only claim: it decodes, or says the checkpoint is corrupt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tillflow_runtime::checkpoint::Snapshot;
use tillflow_runtime::state::KeyedState;
use tillflow_types::Row;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = Snapshot::decode(data) {
        for op in &snap.operators {
            let mut s: KeyedState<Row> = KeyedState::default();
            let _ = s.restore(op, &mut 0);
        }
    }
    let mut s: KeyedState<Vec<Row>> = KeyedState::default();
    let _ = s.restore(data, &mut 0);
});
