//! The catalogs an Iceberg sink can commit through without a catalog server.
//!
//! A catalog keeps one pointer per table: which metadata file is current. A commit writes the
//! next metadata file, then swaps the pointer only if it still names the file the commit was
//! built on, so two writers never both win. The `hadoop` catalog's pointer is the highest
//! `metadata/vN.metadata.json` (created with a hard link, which fails if the file exists) and
//! `version-hint.text` (a hint, as Java's HadoopCatalog writes it). The JDBC catalog's is the
//! `metadata_location` column of `iceberg_tables`, swapped by a conditional `UPDATE` (the tables
//! and columns of Java's JdbcCatalog and pyiceberg's SqlCatalog, so either reads what tillflow
//! commits). Metadata files are JSON written with the `iceberg` crate's types; applying a
//! commit's updates is the crate's `TableMetadataBuilder`.

use super::{CatalogKind, IcebergConfig};
use ::iceberg::spec::{TableMetadata, TableMetadataBuilder};
use ::iceberg::{TableCreation, TableRequirement, TableUpdate};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A table's current metadata and the file it was read from.
pub struct Loaded {
    /// The metadata.
    pub metadata: TableMetadata,
    /// Its file (`file:///…/metadata/…metadata.json`).
    pub location: String,
}

/// Why a commit did not happen.
pub enum CommitError {
    /// Another writer committed first: reload and try again.
    Conflict,
    /// Anything else, with the reason.
    Failed(String),
}

enum Pointer {
    Hadoop,
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// One table's catalog, open.
pub struct LakeCatalog {
    pointer: Pointer,
    catalog: String,
    namespace: String,
    table: String,
    warehouse: Option<PathBuf>,
    /// Where the catalog is, for messages (never a password).
    pub display: String,
}

const CREATE_TABLES: &str = "CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    PRIMARY KEY (catalog_name, table_namespace, table_name))";
const CREATE_NAMESPACES: &str = "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255) NOT NULL,
    property_value VARCHAR(1000),
    PRIMARY KEY (catalog_name, namespace, property_key))";

/// A local path as the `file:` URI Iceberg metadata holds.
pub fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn local(uri: &str) -> PathBuf {
    crate::local_path(uri).unwrap_or_else(|_| PathBuf::from(uri))
}

fn io(what: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", what.display())
}

/// Writes `bytes` to `path` durably: a temporary file, synced, then linked (hard link, failing
/// if `path` exists, when `exclusive`) or renamed into place.
fn write_file(path: &Path, bytes: &[u8], exclusive: bool) -> Result<bool, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    drop(f);
    let placed = if exclusive {
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(path, e)),
        }
    } else {
        std::fs::rename(&tmp, path)
            .map(|_| true)
            .map_err(|e| io(path, e))
    };
    let _ = std::fs::remove_file(&tmp);
    let placed = placed?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    Ok(placed)
}

fn read_metadata(location: &str) -> Result<TableMetadata, String> {
    let path = local(location);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| io(&path, format!("not Iceberg table metadata: {e}")))
}

fn json(m: &TableMetadata) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(m).map_err(|e| format!("writing table metadata: {e}"))
}

impl LakeCatalog {
    /// Opens the catalog the options name (connecting to its database, creating the catalog's
    /// tables there if missing).
    pub fn open(cfg: &IcebergConfig) -> Result<Self, String> {
        let (pointer, display) = match &cfg.kind {
            CatalogKind::Hadoop => (
                Pointer::Hadoop,
                format!(
                    "hadoop catalog at {}",
                    cfg.warehouse.as_deref().unwrap_or(Path::new("?")).display()
                ),
            ),
            CatalogKind::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                }
                let c = rusqlite::Connection::open(path).map_err(|e| io(path, e))?;
                c.busy_timeout(std::time::Duration::from_secs(10))
                    .and_then(|_| {
                        c.execute_batch(&format!("{CREATE_TABLES}; {CREATE_NAMESPACES};"))
                    })
                    .map_err(|e| io(path, e))?;
                (
                    Pointer::Sqlite(c),
                    format!("jdbc catalog in {}", path.display()),
                )
            }
            CatalogKind::Postgres {
                url,
                user,
                password,
            } => {
                let mut spec = crate::TableSpec {
                    name: cfg.table.clone(),
                    schema: tillflow_types::Schema::new(vec![]),
                    options: Default::default(),
                    primary_key: vec![],
                    metadata: vec![],
                    partition_keys: vec![],
                };
                spec.options.insert("url".into(), url.clone());
                if let Some(u) = user {
                    spec.options.insert("username".into(), u.clone());
                }
                if let Some(p) = password {
                    spec.options.insert("password".into(), p.clone());
                }
                let target = crate::postgres::target(&spec).map_err(|e| e.to_string())?;
                let mut client = crate::postgres::connect(&target)?;
                // two jobs starting at once both create: the loser's error is harmless
                for ddl in [CREATE_TABLES, CREATE_NAMESPACES] {
                    if let Err(e) = client.batch_execute(ddl) {
                        let dup = e.as_db_error().is_some_and(|d| {
                            d.code().code() == "23505" || d.code().code() == "42P07"
                        });
                        if !dup {
                            return Err(format!(
                                "creating the Iceberg catalog's tables in {}: {}",
                                target.display,
                                crate::postgres::pg_err(&e)
                            ));
                        }
                    }
                }
                (
                    Pointer::Postgres(Box::new(client)),
                    format!("jdbc catalog at {}", target.display),
                )
            }
        };
        Ok(LakeCatalog {
            pointer,
            catalog: cfg.catalog_name.clone(),
            namespace: cfg.database.clone(),
            table: cfg.table_name.clone(),
            warehouse: cfg.warehouse.clone(),
            display,
        })
    }

    fn hadoop_dir(&self) -> Result<PathBuf, String> {
        let w = self
            .warehouse
            .as_ref()
            .ok_or("a hadoop catalog needs 'warehouse'")?;
        Ok(w.join(&self.namespace).join(&self.table))
    }

    /// The highest `vN.metadata.json` of a hadoop table, from its hint and what follows it.
    fn hadoop_version(&self) -> Result<Option<u64>, String> {
        let meta = self.hadoop_dir()?.join("metadata");
        let hint = meta.join("version-hint.text");
        let mut v = match std::fs::read_to_string(&hint) {
            Ok(s) => s.trim().parse::<u64>().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&hint, e)),
        };
        if v.is_none() {
            // no hint: the highest version listed
            let entries = match std::fs::read_dir(&meta) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(&meta, e)),
            };
            v = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix('v')?
                        .strip_suffix(".metadata.json")?
                        .parse::<u64>()
                        .ok()
                })
                .max();
        }
        let Some(mut v) = v else { return Ok(None) };
        // the hint is written after the version: a newer version may exist
        while meta.join(format!("v{}.metadata.json", v + 1)).exists() {
            v += 1;
        }
        Ok(Some(v))
    }

    /// The table's current metadata, if the table exists.
    pub fn load(&mut self) -> Result<Option<Loaded>, String> {
        let location = match &mut self.pointer {
            Pointer::Hadoop => match self.hadoop_version()? {
                None => return Ok(None),
                Some(v) => file_uri(
                    &self
                        .hadoop_dir()?
                        .join("metadata")
                        .join(format!("v{v}.metadata.json")),
                ),
            },
            Pointer::Sqlite(c) => {
                let found: Option<Option<String>> = c
                    .query_row(
                        "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2 AND table_name = ?3",
                        [&self.catalog, &self.namespace, &self.table],
                        |r| r.get(0),
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })
                    .map_err(|e| format!("{}: {e}", self.display))?;
                match found.flatten() {
                    None => return Ok(None),
                    Some(l) => l,
                }
            }
            Pointer::Postgres(c) => {
                let rows = c
                    .query(
                        "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3",
                        &[&self.catalog, &self.namespace, &self.table],
                    )
                    .map_err(|e| format!("{}: {}", self.display, crate::postgres::pg_err(&e)))?;
                match rows.first().and_then(|r| r.get::<_, Option<String>>(0)) {
                    None => return Ok(None),
                    Some(l) => l,
                }
            }
        };
        Ok(Some(Loaded {
            metadata: read_metadata(&location)?,
            location,
        }))
    }

    /// Creates the table (and its namespace); when another writer created it first, loads it.
    pub fn create(&mut self, creation: TableCreation) -> Result<Loaded, String> {
        let location = match &creation.location {
            Some(l) => l.clone(),
            None => {
                let w = self.warehouse.as_ref().ok_or_else(|| {
                    format!(
                        "table {}.{} is not in {} and 'warehouse' is not set, so there is nowhere to create it",
                        self.namespace, self.table, self.display
                    )
                })?;
                file_uri(&w.join(&self.namespace).join(&self.table))
            }
        };
        let creation = TableCreation {
            location: Some(location.clone()),
            ..creation
        };
        let metadata = TableMetadataBuilder::from_table_creation(creation)
            .and_then(|b| b.build())
            .map_err(|e| format!("creating table {}.{}: {e}", self.namespace, self.table))?
            .metadata;
        let bytes = json(&metadata)?;
        let meta_dir = local(&location).join("metadata");
        let file = match &self.pointer {
            Pointer::Hadoop => meta_dir.join("v1.metadata.json"),
            _ => meta_dir.join(format!("00000-{}.metadata.json", uuid::Uuid::new_v4())),
        };
        let placed = write_file(&file, &bytes, true)?;
        let file_loc = file_uri(&file);
        let created = match &mut self.pointer {
            Pointer::Hadoop => {
                if placed {
                    write_file(&meta_dir.join("version-hint.text"), b"1", false)?;
                }
                placed
            }
            Pointer::Sqlite(c) => {
                let _ = c.execute(
                    "INSERT OR IGNORE INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value) VALUES (?1, ?2, 'exists', 'true')",
                    [&self.catalog, &self.namespace],
                );
                c.execute(
                    "INSERT OR IGNORE INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location) VALUES (?1, ?2, ?3, ?4, NULL)",
                    [&self.catalog, &self.namespace, &self.table, &file_loc],
                )
                .map_err(|e| format!("{}: {e}", self.display))?
                    == 1
            }
            Pointer::Postgres(c) => {
                let _ = c.execute(
                    "INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value) VALUES ($1, $2, 'exists', 'true') ON CONFLICT DO NOTHING",
                    &[&self.catalog, &self.namespace],
                );
                c.execute(
                    "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location) VALUES ($1, $2, $3, $4, NULL) ON CONFLICT DO NOTHING",
                    &[&self.catalog, &self.namespace, &self.table, &file_loc],
                )
                .map_err(|e| format!("{}: {}", self.display, crate::postgres::pg_err(&e)))?
                    == 1
            }
        };
        if created {
            return Ok(Loaded {
                metadata,
                location: file_loc,
            });
        }
        if placed && !matches!(self.pointer, Pointer::Hadoop) {
            let _ = std::fs::remove_file(&file);
        }
        self.load()?.ok_or_else(|| {
            format!(
                "table {}.{} was being created by another writer in {}; try again",
                self.namespace, self.table, self.display
            )
        })
    }

    /// Applies `updates` to `base` if `requirements` hold, writes the next metadata file and
    /// swaps the catalog's pointer to it unless another writer moved it since `base`.
    pub fn commit(
        &mut self,
        base: &Loaded,
        requirements: &[TableRequirement],
        updates: Vec<TableUpdate>,
    ) -> Result<Loaded, CommitError> {
        let fail = CommitError::Failed;
        for r in requirements {
            if r.check(Some(&base.metadata)).is_err() {
                return Err(CommitError::Conflict);
            }
        }
        let mut builder = base
            .metadata
            .clone()
            .into_builder(Some(base.location.clone()));
        for u in updates {
            builder = u
                .apply(builder)
                .map_err(|e| fail(format!("updating table metadata: {e}")))?;
        }
        let metadata = builder
            .build()
            .map_err(|e| fail(format!("updating table metadata: {e}")))?
            .metadata;
        let bytes = json(&metadata).map_err(fail)?;
        let base_file = local(&base.location);
        let meta_dir = base_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        match &mut self.pointer {
            Pointer::Hadoop => {
                let v = base_file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix('v')?.strip_suffix(".metadata.json"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| {
                        fail(format!("{}: not a vN.metadata.json file", base.location))
                    })?;
                let file = meta_dir.join(format!("v{}.metadata.json", v + 1));
                if !write_file(&file, &bytes, true).map_err(fail)? {
                    return Err(CommitError::Conflict);
                }
                write_file(
                    &meta_dir.join("version-hint.text"),
                    (v + 1).to_string().as_bytes(),
                    false,
                )
                .map_err(fail)?;
                Ok(Loaded {
                    metadata,
                    location: file_uri(&file),
                })
            }
            Pointer::Sqlite(_) | Pointer::Postgres(_) => {
                let next = base_file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .map_or(1, |v| v + 1);
                let file =
                    meta_dir.join(format!("{next:05}-{}.metadata.json", uuid::Uuid::new_v4()));
                write_file(&file, &bytes, true).map_err(fail)?;
                let new_loc = file_uri(&file);
                let swapped = match &mut self.pointer {
                    Pointer::Sqlite(c) => c
                        .execute(
                            "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2 WHERE catalog_name = ?3 AND table_namespace = ?4 AND table_name = ?5 AND metadata_location = ?2",
                            [&new_loc, &base.location, &self.catalog, &self.namespace, &self.table],
                        )
                        .map_err(|e| fail(format!("{}: {e}", self.display)))?,
                    Pointer::Postgres(c) => c
                        .execute(
                            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 AND metadata_location = $2",
                            &[&new_loc, &base.location, &self.catalog, &self.namespace, &self.table],
                        )
                        .map_err(|e| fail(format!("{}: {}", self.display, crate::postgres::pg_err(&e))))?
                        as usize,
                    Pointer::Hadoop => 0,
                };
                if swapped != 1 {
                    let _ = std::fs::remove_file(&file);
                    return Err(CommitError::Conflict);
                }
                Ok(Loaded {
                    metadata,
                    location: new_loc,
                })
            }
        }
    }
}
