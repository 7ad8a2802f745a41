//! Checkpoints in an S3-compatible object store: `SET 'state.checkpoints.dir' =
//! 's3://bucket/prefix'`, through the `object_store` crate.
//!
//! Connection settings take Flink's option names from the script's `SET`s — `s3.endpoint`,
//! `s3.access-key`, `s3.secret-key`, `s3.region`, `s3.path.style.access` — and fall back to the
//! usual `AWS_*` environment variables. A checkpoint is `PREFIX/JOB/chk-NNNNNN/state.bin` and
//! `…/MANIFEST.json`; object stores have no rename, so the manifest is written last and a
//! checkpoint without one is incomplete (never listed, never loaded). Keys never appear in
//! messages.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::collections::BTreeMap;
use std::sync::Arc;
use tillflow_runtime::checkpoint::{checkpoint_name, CheckpointBackend, CheckpointError};

/// The checkpoint backend for `location` (`s3://bucket/prefix/…`, the job's own place).
pub fn backend(
    location: &str,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn CheckpointBackend>, String> {
    let rest = location
        .strip_prefix("s3://")
        .ok_or_else(|| format!("'{location}' is not an s3:// URI"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("'{location}' names no bucket"));
    }
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(e) = options.get("s3.endpoint") {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    if let Some(k) = options.get("s3.access-key") {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = options.get("s3.secret-key") {
        b = b.with_secret_access_key(k);
    }
    if let Some(r) = options.get("s3.region") {
        b = b.with_region(r);
    }
    if let Some(p) = options.get("s3.path.style.access") {
        b = b.with_virtual_hosted_style_request(!p.eq_ignore_ascii_case("true"));
    }
    let store = b
        .build()
        .map_err(|e| format!("S3 checkpoint store for '{location}': {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("S3 checkpoint store: {e}"))?;
    Ok(Arc::new(S3Backend {
        store: Arc::new(store),
        prefix: Path::from(prefix.trim_matches('/')),
        location: location.trim_end_matches('/').to_owned(),
        rt,
    }))
}

struct S3Backend {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    rt: tokio::runtime::Runtime,
}

impl S3Backend {
    fn path(&self, id: u64, file: &str) -> Path {
        self.prefix.child(checkpoint_name(id)).child(file)
    }

    fn err(&self, what: &str, e: object_store::Error) -> CheckpointError {
        CheckpointError::Io {
            path: format!("{}/{what}", self.location),
            source: std::io::Error::other(e),
        }
    }
}

impl CheckpointBackend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn ids(&self) -> Result<Vec<u64>, CheckpointError> {
        let listed = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&self.prefix)))
            .map_err(|e| self.err("", e))?;
        let mut out = Vec::new();
        for p in listed.common_prefixes {
            let Some(id) = p
                .filename()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            // complete only with its manifest (written last). A manifest is never empty: an
            // empty one is an upload cut off by a crash, on a store that shows a PUT before it
            // has all of it (S3 itself does not; some S3-compatible servers do)
            match self
                .rt
                .block_on(self.store.head(&self.path(id, "MANIFEST.json")))
            {
                Ok(meta) if meta.size > 0 => out.push(id),
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(&checkpoint_name(id), e)),
            }
        }
        Ok(out)
    }

    fn write(&self, id: u64, state: &[u8], manifest: &[u8]) -> Result<(), CheckpointError> {
        let name = checkpoint_name(id);
        for (file, bytes) in [("state.bin", state), ("MANIFEST.json", manifest)] {
            let payload = PutPayload::from(bytes.to_vec());
            self.rt
                .block_on(self.store.put(&self.path(id, file), payload))
                .map_err(|e| self.err(&format!("{name}/{file}"), e))?;
        }
        Ok(())
    }

    fn read(&self, id: u64) -> Result<(Vec<u8>, Vec<u8>), CheckpointError> {
        let name = checkpoint_name(id);
        let mut out = Vec::new();
        for file in ["MANIFEST.json", "state.bin"] {
            let path = self.path(id, file);
            let bytes = self
                .rt
                .block_on(async { self.store.get(&path).await?.bytes().await })
                .map_err(|e| self.err(&format!("{name}/{file}"), e))?;
            out.push(bytes.to_vec());
        }
        let state = out.pop().unwrap_or_default();
        let manifest = out.pop().unwrap_or_default();
        Ok((manifest, state))
    }

    fn read_manifest(&self, id: u64) -> Result<Vec<u8>, CheckpointError> {
        let path = self.path(id, "MANIFEST.json");
        self.rt
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| self.err(&format!("{}/MANIFEST.json", checkpoint_name(id)), e))
    }

    fn remove(&self, id: u64) -> Result<(), CheckpointError> {
        // the manifest first: a half-removed checkpoint is incomplete, not damaged
        for file in ["MANIFEST.json", "state.bin"] {
            match self.rt.block_on(self.store.delete(&self.path(id, file))) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(&checkpoint_name(id), e)),
            }
        }
        Ok(())
    }

    fn remove_all(&self) -> Result<(), CheckpointError> {
        let listed = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&self.prefix)))
            .map_err(|e| self.err("", e))?;
        for p in listed.common_prefixes {
            if let Some(id) = p
                .filename()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                self.remove(id)?;
            }
        }
        Ok(())
    }
}
