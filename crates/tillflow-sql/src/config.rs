//! The `SET` keys tillflow knows: one registry that says, for every key, what kind of value it
//! takes and what tillflow does with it — *applied* (the value is checked here, at `SET` time, and
//! used), *noted* (a Flink key that cannot change results in tillflow: accepted with a notice
//! saying why it has no effect), or *refused* (a Flink key whose effect tillflow does not implement
//! and which would change results: an error naming the key). A key that is none of these is an
//! error listing the closest known keys. Values of secret keys never appear in messages.

use std::collections::BTreeMap;
use thiserror::Error;

/// What a key's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A duration as Flink writes it: `10 s`, `1 min`, `500 ms`, `2h` (a bare number is ms).
    Duration,
    /// A whole number of at least `min`.
    Int {
        /// The smallest value allowed.
        min: i64,
    },
    /// `true` or `false`.
    Bool,
    /// A memory size as Flink writes it: `256 mb`, `1g`, `512kb` (a bare number is bytes), of
    /// at least `min` bytes.
    MemorySize {
        /// The smallest size allowed.
        min: u64,
    },
    /// One of these words (case-insensitive).
    Enum(&'static [&'static str]),
    /// Any text.
    Text,
    /// Any text that is never shown (keys, passwords).
    Secret,
}

/// What tillflow does with a key.
#[derive(Debug, Clone, Copy)]
pub enum Effect {
    /// tillflow applies the value.
    Applied,
    /// A Flink key with no effect on tillflow's results: accepted with this explanation.
    Noted(&'static str),
    /// A Flink key tillflow does not implement: refused, saying this.
    Refused(&'static str),
    /// Accepted (it is what tillflow does) when `ok(value)` holds, otherwise refused, saying this.
    AcceptedIf(fn(&str) -> bool, &'static str),
}

/// A key of the registry.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// The key as Flink spells it.
    pub key: &'static str,
    /// Its values.
    pub kind: ValueKind,
    /// What tillflow does with it.
    pub effect: Effect,
    /// For an alternative name (Flink's older or newer spelling): the key it is stored under.
    pub alias_of: Option<&'static str>,
}

const fn key(key: &'static str, kind: ValueKind, effect: Effect) -> KeyDef {
    KeyDef {
        key,
        kind,
        effect,
        alias_of: None,
    }
}

const fn alias(key: &'static str, of: &'static str, kind: ValueKind) -> KeyDef {
    KeyDef {
        key,
        kind,
        effect: Effect::Applied,
        alias_of: Some(of),
    }
}

use Effect::{AcceptedIf, Applied, Noted, Refused};
use ValueKind::{Bool, Duration, Enum, Int, MemorySize, Secret, Text};

const OPTIMIZER: &str =
    "it steers how Flink's optimizer plans a query, which cannot change its results; tillflow plans queries its own way";
const MINI_BATCH: &str =
    "tillflow processes row by row; mini-batching only changes how often Flink emits intermediate updates, not the final results";
const CHECKPOINT_TUNING: &str =
    "tillflow takes one checkpoint at a time between two records (always aligned, never concurrent); this tuning does not change results";
const STATE_BACKEND: &str =
    "tillflow writes checkpoints to 'state.checkpoints.dir' on either state backend; where checkpoints go does not change results";
const RESTART: &str =
    "tillflow does not restart a failed job itself: run it again and it resumes from its latest checkpoint";
const CLIENT_DISPLAY: &str =
    "it configures Flink's SQL client display; tillflow prints a bare SELECT's rows as Flink's print sink does";

fn is_not_automatic(v: &str) -> bool {
    !v.eq_ignore_ascii_case("automatic")
}

fn is_process(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("process")
}

fn is_utc(v: &str) -> bool {
    ["UTC", "GMT", "Z", "Etc/UTC", "UTC+0", "GMT+0", "+00:00"]
        .iter()
        .any(|z| v.trim().eq_ignore_ascii_case(z))
}

fn is_default_dialect(v: &str) -> bool {
    v.eq_ignore_ascii_case("default")
}

fn is_false(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("false")
}

/// Every key tillflow knows.
pub const KEYS: &[KeyDef] = &[
    // ---- applied
    key("execution.checkpointing.interval", Duration, Applied),
    key("state.checkpoints.dir", Text, Applied),
    alias("execution.checkpointing.dir", "state.checkpoints.dir", Text),
    key("state.checkpoints.num-retained", Int { min: 1 }, Applied),
    alias(
        "execution.checkpointing.num-retained",
        "state.checkpoints.num-retained",
        Int { min: 1 },
    ),
    key("table.exec.source.idle-timeout", Duration, Applied),
    key("tillflow.default-store.path", Text, Applied),
    key("s3.endpoint", Text, Applied),
    key("s3.access-key", Secret, Applied),
    alias("s3.access.key", "s3.access-key", Secret),
    key("s3.secret-key", Secret, Applied),
    alias("s3.secret.key", "s3.secret-key", Secret),
    key("s3.region", Text, Applied),
    key("s3.path.style.access", Bool, Applied),
    key(
        "execution.runtime-mode",
        Enum(&["streaming", "batch", "automatic"]),
        AcceptedIf(
            is_not_automatic,
            "'automatic' picks the mode from the sources' boundedness, which tillflow does not decide for you yet: write 'streaming' or 'batch'",
        ),
    ),
    // regular joins, GROUP BY, deduplication and Top-N forget state not written for this long
    // (0: never), on the clock below (crate::ttl in the runtime)
    key("table.exec.state.ttl", Duration, Applied),
    key(
        "tillflow.state.ttl.clock",
        Enum(&["processing-time", "watermark"]),
        Applied,
    ),
    key(
        "table.local-time-zone",
        Text,
        AcceptedIf(
            is_utc,
            "tillflow computes TIMESTAMP_LTZ and PROCTIME() values in UTC; other session time zones are not supported",
        ),
    ),
    key(
        "table.sql-dialect",
        Enum(&["default", "hive"]),
        AcceptedIf(is_default_dialect, "tillflow reads Flink's default SQL dialect only"),
    ),
    key(
        "table.exec.source.cdc-events-duplicate",
        Bool,
        AcceptedIf(
            is_false,
            "tillflow does not deduplicate CDC events (it would need a primary-key normalization of every CDC source)",
        ),
    ),
    // ---- Python functions (crate::udf, tillflow_runtime::python)
    key("python.executable", Text, Applied),
    key("python.client.executable", Text, Applied),
    key("python.files", Text, Applied),
    key("python.fn-execution.bundle.size", Int { min: 1 }, Applied),
    key("python.fn-execution.bundle.time", Duration, Applied),
    key(
        "python.fn-execution.arrow.batch.size",
        Int { min: 1 },
        Noted("tillflow sends a bundle to the Python worker whole ('python.fn-execution.bundle.size')"),
    ),
    key(
        "python.execution-mode",
        Enum(&["process", "thread"]),
        AcceptedIf(
            is_process,
            "tillflow runs Python functions in a worker process ('process'); 'thread' (embedded Python) is not supported",
        ),
    ),
    key(
        "python.requirements",
        Text,
        Refused("tillflow does not install Python packages: install them into the interpreter 'python.executable' names"),
    ),
    key(
        "python.archives",
        Text,
        Refused("tillflow does not unpack archives for Python: put the files on 'python.files' or install them"),
    ),
    key("python.metric.enabled", Bool, Noted("tillflow's Python functions report no metrics of their own")),
    key("python.profile.enabled", Bool, Noted("tillflow does not profile Python functions")),
    // ---- Flink keys with no effect here
    key("parallelism.default", Int { min: -1 }, Applied),
    key("table.exec.resource.default-parallelism", Int { min: -1 }, Applied),
    key("pipeline.max-parallelism", Int { min: -1 }, Applied),
    key(
        "table.exec.sink.keyed-shuffle",
        Enum(&["NONE", "AUTO", "FORCE"]),
        Applied,
    ),
    // names the job of `tillflow run` (and so its checkpoints) unless --job-name does
    key("pipeline.name", Text, Applied),
    key("pipeline.object-reuse", Bool, Noted("tillflow always reuses rows; this cannot change results")),
    key("pipeline.operator-chaining.enabled", Bool, Noted("tillflow always calls a job's operators directly, one after another")),
    key(
        "pipeline.auto-watermark-interval",
        Duration,
        Noted("tillflow emits a watermark after every record that raises it, as Flink's results are defined"),
    ),
    key("table.exec.mini-batch.enabled", Bool, Noted(MINI_BATCH)),
    key("table.exec.mini-batch.allow-latency", Duration, Noted(MINI_BATCH)),
    key("table.exec.mini-batch.size", Int { min: -1 }, Noted(MINI_BATCH)),
    // window aggregates after a source run in two phases on several workers (rules::two_phase)
    key(
        "table.optimizer.agg-phase-strategy",
        Enum(&["AUTO", "ONE_PHASE", "TWO_PHASE"]),
        Applied,
    ),
    key("table.optimizer.distinct-agg.split.enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.distinct-agg.split.bucket-num", Int { min: 1 }, Noted(OPTIMIZER)),
    key("table.optimizer.join-reorder-enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.reuse-sub-plan-enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.reuse-source-enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.source.predicate-pushdown-enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.multiple-input-enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.join.broadcast-threshold", Int { min: -1 }, Noted(OPTIMIZER)),
    key("table.optimizer.dynamic-filtering.enabled", Bool, Noted(OPTIMIZER)),
    key("table.optimizer.incremental-agg-enabled", Bool, Noted(OPTIMIZER)),
    key(
        "table.optimizer.non-deterministic-update.strategy",
        Enum(&["TRY_RESOLVE", "IGNORE"]),
        Noted(OPTIMIZER),
    ),
    key(
        "table.exec.async-lookup.buffer-capacity",
        Int { min: 1 },
        Noted("tillflow looks keys up in batches of up to 256 waiting rows, in input order"),
    ),
    key(
        "table.exec.async-lookup.timeout",
        Duration,
        Noted("tillflow's lookups retry per 'lookup.max-retries' and wait as long as the database takes"),
    ),
    key(
        "table.exec.async-lookup.output-mode",
        Enum(&["ORDERED", "ALLOW_UNORDERED"]),
        Noted("tillflow's lookup joins always keep input order"),
    ),
    key(
        "execution.checkpointing.mode",
        Enum(&["EXACTLY_ONCE", "AT_LEAST_ONCE"]),
        Noted("tillflow's checkpoints are always consistent cuts (exactly-once state); AT_LEAST_ONCE allows only more duplicates, never fewer"),
    ),
    key("execution.checkpointing.timeout", Duration, Noted(CHECKPOINT_TUNING)),
    key("execution.checkpointing.min-pause", Duration, Noted(CHECKPOINT_TUNING)),
    key("execution.checkpointing.max-concurrent-checkpoints", Int { min: 1 }, Noted(CHECKPOINT_TUNING)),
    key("execution.checkpointing.tolerable-failed-checkpoints", Int { min: 0 }, Noted(CHECKPOINT_TUNING)),
    key("execution.checkpointing.unaligned", Bool, Noted(CHECKPOINT_TUNING)),
    key("execution.checkpointing.unaligned.enabled", Bool, Noted(CHECKPOINT_TUNING)),
    key("execution.checkpointing.aligned-checkpoint-timeout", Duration, Noted(CHECKPOINT_TUNING)),
    key(
        "execution.checkpointing.externalized-checkpoint-retention",
        Enum(&["DELETE_ON_CANCELLATION", "RETAIN_ON_CANCELLATION", "NO_EXTERNALIZED_CHECKPOINTS"]),
        Noted("tillflow keeps a job's latest 'state.checkpoints.num-retained' checkpoints until `--fresh`"),
    ),
    // checkpoints write what keyed state changed since the previous one (on by default with
    // the on-disk backend), see tillflow_runtime::state::incremental
    key("execution.checkpointing.incremental", Bool, Applied),
    alias("state.backend.incremental", "execution.checkpointing.incremental", Bool),
    // where keyed state lives: 'hashmap' (memory) or on local disk within a memory budget
    // ('disk'; Flink's 'rocksdb' selects it), see tillflow_runtime::state::disk
    key("state.backend.type", Enum(&["hashmap", "rocksdb", "disk"]), Applied),
    alias("state.backend", "state.backend.type", Enum(&["hashmap", "rocksdb", "disk"])),
    key(
        "state.backend.rocksdb.memory.fixed-per-slot",
        MemorySize { min: tillflow_runtime::state::disk::MIN_MEMORY },
        Applied,
    ),
    alias(
        "tillflow.state.memory-per-worker",
        "state.backend.rocksdb.memory.fixed-per-slot",
        MemorySize { min: tillflow_runtime::state::disk::MIN_MEMORY },
    ),
    key("state.backend.rocksdb.localdir", Text, Applied),
    // the checkpoint or savepoint a job starts from (Flink 2's name; `tillflow run
    // --from-checkpoint` overrides it; the SQL client's INSERTs start from it)
    key("execution.state-recovery.path", Text, Applied),
    alias("execution.savepoint.path", "execution.state-recovery.path", Text),
    key("state.checkpoint-storage", Text, Noted(STATE_BACKEND)),
    key("execution.checkpointing.storage", Text, Noted(STATE_BACKEND)),
    key(
        "state.savepoints.dir",
        Text,
        Noted("tillflow writes a savepoint (`tillflow stop --savepoint`) as the job's latest checkpoint, in 'state.checkpoints.dir'"),
    ),
    key(
        "execution.checkpointing.savepoint-dir",
        Text,
        Noted("tillflow writes a savepoint (`tillflow stop --savepoint`) as the job's latest checkpoint, in 'state.checkpoints.dir'"),
    ),
    key("restart-strategy.type", Text, Noted(RESTART)),
    key("restart-strategy", Text, Noted(RESTART)),
    key("restart-strategy.fixed-delay.attempts", Int { min: 0 }, Noted(RESTART)),
    key("restart-strategy.fixed-delay.delay", Duration, Noted(RESTART)),
    key(
        "table.dml-sync",
        Bool,
        Noted("`tillflow run` always runs the script's job in the foreground until it ends"),
    ),
    key("sql-client.execution.result-mode", Enum(&["TABLE", "CHANGELOG", "TABLEAU"]), Noted(CLIENT_DISPLAY)),
    key("sql-client.verbose", Bool, Noted(CLIENT_DISPLAY)),
    key("sql-client.display.max-column-width", Int { min: 1 }, Noted(CLIENT_DISPLAY)),
    key("table.display.max-column-width", Int { min: 1 }, Noted(CLIENT_DISPLAY)),
    // ---- Flink keys tillflow refuses: they would change results
    key(
        "table.exec.sink.upsert-materialize",
        Enum(&["NONE", "AUTO", "FORCE"]),
        Refused("tillflow writes a sink's changes as they come and has no upsert materialization of out-of-order changes"),
    ),
    key(
        "table.exec.sink.not-null-enforcer",
        Enum(&["ERROR", "DROP"]),
        Refused("tillflow does not check NOT NULL sink columns"),
    ),
    key(
        "table.exec.sink.type-length-enforcer",
        Enum(&["IGNORE", "TRIM_PAD"]),
        Refused("tillflow does not trim or pad CHAR(n)/VARCHAR(n) values written to a sink"),
    ),
    key(
        "table.exec.legacy-cast-behaviour",
        Enum(&["ENABLED", "DISABLED"]),
        Refused("tillflow casts as Flink 2 does; the legacy cast behaviour is not supported"),
    ),
    key(
        "table.exec.emit.early-fire.enabled",
        Bool,
        Refused("early firing of windows (emitting before the watermark passes the end) is not supported"),
    ),
    key(
        "table.exec.emit.early-fire.delay",
        Duration,
        Refused("early firing of windows (emitting before the watermark passes the end) is not supported"),
    ),
    key(
        "table.exec.emit.late-fire.enabled",
        Bool,
        Refused("late firing of windows (updating fired windows with late rows) is not supported"),
    ),
    key(
        "table.exec.emit.late-fire.delay",
        Duration,
        Refused("late firing of windows (updating fired windows with late rows) is not supported"),
    ),
    key(
        "table.exec.emit.allow-lateness",
        Duration,
        Refused("allowed lateness of windows (updating fired windows with late rows) is not supported"),
    ),
    key(
        "pipeline.jars",
        Text,
        Refused("Java user-defined functions and connector jars cannot be loaded"),
    ),
    key(
        "pipeline.classpaths",
        Text,
        Refused("Java user-defined functions and connector jars cannot be loaded"),
    ),
];

/// The registry entry of `key` (exact spelling).
pub fn lookup(key: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.key == key)
}

/// A `SET` or `RESET` that tillflow does not accept.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No such key.
    #[error("unknown SET key '{key}'{}", suggest(.close))]
    Unknown {
        /// The key (shortened if long).
        key: String,
        /// Known keys close to it.
        close: Vec<&'static str>,
    },
    /// The value does not fit the key.
    #[error("SET '{key}': {value} is not {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value, quoted (or a placeholder for a secret).
        value: String,
        /// What the key takes.
        expected: String,
    },
    /// A Flink key whose effect tillflow does not implement.
    #[error("SET '{key}'{value} is not supported: {why}")]
    Refused {
        /// The key.
        key: &'static str,
        /// ` = 'value'` when the refusal depends on the value, else empty.
        value: String,
        /// What is not supported.
        why: &'static str,
    },
}

fn suggest(close: &[&str]) -> String {
    if close.is_empty() {
        ". The keys tillflow knows are listed in docs/config.md".into()
    } else {
        format!(
            ". Did you mean {}? (known keys: docs/config.md)",
            close
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    }
}

/// User input quoted for a message: at most 200 bytes, cut at a character boundary.
pub fn quote(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return format!("'{text}'");
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("'{}…' ({} bytes)", &text[..end], text.len())
}

/// Levenshtein distance between two strings (by characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to three known keys close to `key`: within a few edits, or ending with what was written.
pub fn close_matches(key: &str) -> Vec<&'static str> {
    let lower = key.to_ascii_lowercase();
    let limit = (lower.chars().count() / 5).clamp(2, 4);
    let mut scored: Vec<(usize, &'static str)> = KEYS
        .iter()
        .filter_map(|k| {
            let d = edit_distance(&lower, k.key);
            if d <= limit {
                Some((d, k.key))
            } else if lower.len() >= 6
                && (k.key.ends_with(&format!(".{lower}"))
                    || lower.ends_with(&format!(".{}", k.key)))
            {
                Some((limit + 1, k.key))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

fn unknown(key: &str) -> ConfigError {
    let shown = if key.len() > 200 {
        quote(key).trim_matches('\'').to_owned()
    } else {
        key.to_owned()
    };
    ConfigError::Unknown {
        key: shown,
        close: close_matches(key),
    }
}

fn check_value(def: &KeyDef, value: &str) -> Result<(), ConfigError> {
    let v = value.trim();
    let bad = |expected: String| ConfigError::BadValue {
        key: def.key,
        value: if def.kind == Secret {
            "the value".into()
        } else {
            quote(value)
        },
        expected,
    };
    match def.kind {
        Duration => {
            if tillflow_types::temporal::parse_duration_micros(v).is_none() {
                return Err(bad(
                    "a duration (e.g. '10 s', '1 min', '500 ms', '2 h'; a bare number is milliseconds)"
                        .into(),
                ));
            }
        }
        Int { min } => {
            if !v.parse::<i64>().is_ok_and(|n| n >= min) {
                return Err(bad(format!("a whole number ≥ {min}")));
            }
        }
        Bool => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(bad("'true' or 'false'".into()));
            }
        }
        MemorySize { min } => {
            if tillflow_types::units::parse_memory_size(v).is_none_or(|n| n < min) {
                return Err(bad(format!(
                    "a memory size of at least {} MiB (e.g. '256 mb', '1 gb')",
                    min >> 20
                )));
            }
        }
        Enum(words) => {
            if !words.iter().any(|w| w.eq_ignore_ascii_case(v)) {
                return Err(bad(format!("one of {}", words.join(", "))));
            }
        }
        Text | Secret => {}
    }
    Ok(())
}

/// What a checked `SET` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key the value is stored under (an alias's canonical key).
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// A notice to show the user (a Flink key with no effect here, an alias used).
    pub notice: Option<String>,
}

/// Checks `SET 'key' = 'value'` against the registry.
pub fn check_set(key: &str, value: &str) -> Result<Setting, ConfigError> {
    let def = lookup(key).ok_or_else(|| unknown(key))?;
    check_value(def, value)?;
    let notice = match def.effect {
        Applied => None,
        Noted(why) => Some(format!(
            "SET '{}' has no effect in tillflow: {why}",
            def.key
        )),
        Refused(why) => {
            return Err(ConfigError::Refused {
                key: def.key,
                value: String::new(),
                why,
            })
        }
        AcceptedIf(ok, why) => {
            if !ok(value) {
                return Err(ConfigError::Refused {
                    key: def.key,
                    value: format!(" = {}", quote(value)),
                    why,
                });
            }
            None
        }
    };
    Ok(Setting {
        key: def.alias_of.unwrap_or(def.key),
        value: value.to_owned(),
        notice,
    })
}

/// Checks `RESET 'key'`: the key must be known; returns the key its value is stored under.
pub fn check_reset(key: &str) -> Result<&'static str, ConfigError> {
    let def = lookup(key).ok_or_else(|| unknown(key))?;
    Ok(def.alias_of.unwrap_or(def.key))
}

/// The session's settings as Flink's SQL client lists them (`SET;`), secrets masked.
pub fn listing(config: &BTreeMap<String, String>) -> Vec<String> {
    config
        .iter()
        .map(|(k, v)| {
            let secret = lookup(k).is_some_and(|d| d.kind == Secret);
            format!(
                "'{k}' = {}",
                if secret { "'******'".into() } else { quote(v) }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_keys_check_their_values() {
        let s = check_set("execution.checkpointing.interval", "10 s").unwrap();
        assert_eq!(s.key, "execution.checkpointing.interval");
        assert_eq!(s.notice, None);
        for v in ["1 min", "500 ms", "10s", "2h", "1000"] {
            assert!(
                check_set("execution.checkpointing.interval", v).is_ok(),
                "{v}"
            );
        }
        let e = check_set("execution.checkpointing.interval", "soon").unwrap_err();
        assert!(
            e.to_string()
                .contains("'execution.checkpointing.interval': 'soon' is not a duration"),
            "{e}"
        );
        assert!(check_set("state.checkpoints.num-retained", "0").is_err());
        assert!(check_set("state.checkpoints.num-retained", "3").is_ok());
        assert!(check_set("s3.path.style.access", "yes").is_err());
        assert!(check_set("s3.path.style.access", "TRUE").is_ok());
    }

    #[test]
    fn aliases_store_under_the_canonical_key() {
        let s = check_set("execution.checkpointing.dir", "/tmp/x").unwrap();
        assert_eq!(s.key, "state.checkpoints.dir");
        assert_eq!(check_reset("s3.access.key").unwrap(), "s3.access-key");
    }

    #[test]
    fn flink_keys_without_effect_are_noted() {
        for (k, v) in [
            ("pipeline.object-reuse", "true"),
            ("table.exec.mini-batch.enabled", "true"),
            ("table.exec.mini-batch.allow-latency", "5 s"),
            ("execution.checkpointing.mode", "EXACTLY_ONCE"),
        ] {
            let s = check_set(k, v).unwrap();
            let n = s.notice.unwrap_or_default();
            assert!(n.contains(k) && n.contains("has no effect"), "{n}");
        }
        // their values are still checked
        assert!(check_set("parallelism.default", "many").is_err());
        // parallelism and the aggregation phases are applied: no notice
        assert!(check_set("parallelism.default", "4")
            .unwrap()
            .notice
            .is_none());
        assert!(check_set("table.optimizer.agg-phase-strategy", "TWO_PHASE")
            .unwrap()
            .notice
            .is_none());
        assert!(check_set("table.optimizer.agg-phase-strategy", "THREE_PHASE").is_err());
        assert!(check_set("execution.checkpointing.mode", "SOMETIMES").is_err());
    }

    #[test]
    fn keys_that_would_change_results_are_refused() {
        let e = check_set("execution.runtime-mode", "automatic").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("SET 'execution.runtime-mode' = 'automatic' is not supported: "),
            "{e}"
        );
        assert!(check_set("execution.runtime-mode", "STREAMING").is_ok());
        assert!(check_set("execution.runtime-mode", "batch").is_ok());
        assert!(check_set("table.exec.state.ttl", "0").is_ok());
        assert!(check_set("table.exec.state.ttl", "1 h").is_ok());
        assert!(check_set("table.exec.state.ttl", "soon").is_err());
        assert!(check_set("tillflow.state.ttl.clock", "watermark").is_ok());
        assert!(check_set("tillflow.state.ttl.clock", "event-time").is_err());
        assert!(check_set("state.backend.type", "rocksdb").is_ok());
        assert!(check_set("state.backend.type", "forst").is_err());
        assert_eq!(
            check_set("state.backend", "disk").map(|s| s.key),
            Ok("state.backend.type")
        );
        assert!(check_set("state.backend.rocksdb.memory.fixed-per-slot", "256 mb").is_ok());
        assert!(check_set("state.backend.rocksdb.memory.fixed-per-slot", "1 kb").is_err());
        assert!(check_set("tillflow.state.memory-per-worker", "lots").is_err());
        let e = check_set("table.exec.sink.upsert-materialize", "FORCE").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("SET 'table.exec.sink.upsert-materialize' is not supported"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_list_close_matches() {
        let e = check_set("execution.checkpointing.intervall", "10 s").unwrap_err();
        assert_eq!(
            e,
            ConfigError::Unknown {
                key: "execution.checkpointing.intervall".into(),
                close: vec!["execution.checkpointing.interval"],
            }
        );
        assert!(e
            .to_string()
            .contains("Did you mean 'execution.checkpointing.interval'?"));
        let e = check_set("no.such.option", "1").unwrap_err();
        assert!(
            e.to_string().contains("unknown SET key 'no.such.option'"),
            "{e}"
        );
        assert!(
            close_matches("checkpointing.interval").contains(&"execution.checkpointing.interval")
        );
        assert!(check_reset("pipline.name").is_err());
    }

    #[test]
    fn secrets_never_appear() {
        let s = check_set("s3.secret-key", "hunter2").unwrap();
        assert_eq!(s.value, "hunter2");
        let mut cfg = BTreeMap::new();
        cfg.insert(s.key.to_owned(), s.value);
        let list = listing(&cfg).join("\n");
        assert!(!list.contains("hunter2"), "{list}");
        assert!(list.contains("'s3.secret-key' = '******'"));
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../docs/config.md");
        for k in KEYS {
            assert!(
                doc.contains(&format!("`{}`", k.key)),
                "docs/config.md lacks {}",
                k.key
            );
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn long_input_is_shortened() {
        let long = "x".repeat(1000);
        let q = quote(&long);
        assert!(q.len() < 260, "{}", q.len());
        let e = check_set(&long, "v").unwrap_err().to_string();
        assert!(e.len() < 400, "{}", e.len());
    }
}
