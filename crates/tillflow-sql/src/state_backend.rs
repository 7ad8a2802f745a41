//! The job's state backend, read from its `SET 'state.backend.*'` keys: `'hashmap'` (the
//! default) keeps keyed state in memory; `'disk'` (or Flink's `'rocksdb'`) keeps what does not
//! fit a memory budget of `state.backend.rocksdb.memory.fixed-per-slot` per worker on local disk
//! under `state.backend.rocksdb.localdir` (see `tillflow_runtime::state::disk`).

use crate::error::{Result, SqlError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tillflow_runtime::state::disk::{
    BackendKind, DiskConfig, DiskStore, DEFAULT_MEMORY_PER_WORKER,
};

/// The backend the settings ask for, for a job on `parallelism` workers.
pub fn backend_kind(config: &BTreeMap<String, String>, parallelism: usize) -> BackendKind {
    let kind = config
        .get("state.backend.type")
        .map(|v| v.trim().to_ascii_lowercase());
    match kind.as_deref() {
        Some("disk" | "rocksdb") => {
            let per_worker = config
                .get("state.backend.rocksdb.memory.fixed-per-slot")
                .and_then(|v| tillflow_types::units::parse_memory_size(v))
                .unwrap_or(DEFAULT_MEMORY_PER_WORKER);
            BackendKind::Disk(DiskConfig {
                dir: config
                    .get("state.backend.rocksdb.localdir")
                    .map(|d| PathBuf::from(d.trim())),
                memory: per_worker.saturating_mul(parallelism.max(1) as u64),
            })
        }
        _ => BackendKind::Heap,
    }
}

/// True when the job's checkpoints are incremental: `execution.checkpointing.incremental`, on
/// by default with the on-disk backend (as Flink's RocksDB backend is mostly run) and off with
/// the heap.
pub fn incremental(config: &BTreeMap<String, String>) -> bool {
    match config
        .get("execution.checkpointing.incremental")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("true") => true,
        Some("false") => false,
        _ => matches!(backend_kind(config, 1), BackendKind::Disk(_)),
    }
}

/// Opens the job's on-disk store when the settings ask for one.
pub fn open_store(
    config: &BTreeMap<String, String>,
    parallelism: usize,
) -> Result<Option<Arc<DiskStore>>> {
    match backend_kind(config, parallelism) {
        BackendKind::Heap => Ok(None),
        BackendKind::Disk(c) => DiskStore::open(&c)
            .map(Some)
            .map_err(|e| SqlError::Plan(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_heap_is_the_default_and_rocksdb_means_the_disk_backend() {
        assert_eq!(backend_kind(&config(&[]), 2), BackendKind::Heap);
        assert_eq!(
            backend_kind(&config(&[("state.backend.type", "hashmap")]), 2),
            BackendKind::Heap
        );
        let disk = backend_kind(
            &config(&[
                ("state.backend.type", "RocksDB"),
                ("state.backend.rocksdb.memory.fixed-per-slot", "64 mb"),
                ("state.backend.rocksdb.localdir", "/var/tmp/x"),
            ]),
            3,
        );
        assert_eq!(
            disk,
            BackendKind::Disk(DiskConfig {
                dir: Some(PathBuf::from("/var/tmp/x")),
                memory: 3 * (64 << 20),
            })
        );
    }
}
