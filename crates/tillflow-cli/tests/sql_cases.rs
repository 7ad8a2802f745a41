//! SQL golden tests: every case directory holds a `query.sql` (with `${INPUT}`, `${OUTPUT}`, `${DLQ}`),
//! its input and its expected result, and is run through the real `tillflow run` binary.
//!
//! - `tests/flink/<case>/`: expected output produced by Apache Flink 2.3 itself on
//!   `tests/flink/events20k.ndjson`; `late_dropped.ndjson` lists the records Flink dropped as late.
//! - `tests/nexmark/<case>/`: Flink's Nexmark queries, expected output produced by Flink 2.3 on
//!   `tests/nexmark/events.ndjson` (the `nexmark` connector's events; its README); a case
//!   whose result depends on the wall clock (q12, processing time) has `expected_shape.json`
//!   instead: the output columns and the sum a column must add up to.
//! - `tests/golden/<case>/`: tillflow's own cases. `input.*` is the input; the expected result is
//!   `expected.ndjson` (rows in the output directory), `expected_stdout.txt` (printed rows),
//!   `expected_dead_letter.ndjson` / `expected_late.ndjson` (fields that must appear in each record
//!   of the dead-letter / late-data file, `${DLQ}` / `${LATE}`)
//!   and/or `expected_error.txt` (text the failing run must print), and
//!   `expected_stderr.txt` (lines a successful run must print on standard error: notices);
//!   `forbidden_output.txt` lists text that must appear nowhere in the output (secrets);
//!   `single_worker.txt` says why a case's rows depend on the order in which several workers'
//!   rows arrive (order-dependent aggregates over a re-keyed stream), and runs it on one worker.
//!
//! - `plan.txt` (required for the Flink cases): the snapshot of `tillflow explain` for the query;
//!   rewrite the snapshots with `TILLFLOW_BLESS=1 cargo test --test sql_cases` after an intended
//!   change of plan.
//!
//! Each case is a test of its own (`cargo test --test sql_cases flink::q5_topn_10m`), run at
//! parallelism 1, 2 and 4 (`tillflow run --parallelism N`), which must give the same rows; the
//! run at parallelism 2 keeps its state on disk (`state.backend.type` = `disk` with the smallest
//! memory budget), so every case also checks the on-disk backend.
//! Rows are compared as multisets; DOUBLE values to a relative 1e-9, everything else exactly.
//! A `debezium-json` output is replayed to its final rows first.

use serde_json::Value as J;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_rows(path: &Path) -> Vec<J> {
    let mut files = vec![];
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        v.sort();
        files.extend(v);
    } else if path.exists() {
        files.push(path.to_path_buf());
    }
    let mut rows = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            rows.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}:{}: {e}: {line}", f.display(), i + 1)),
            );
        }
    }
    rows
}

fn replay_debezium(rows: Vec<J>) -> Result<Vec<J>, String> {
    let mut live: Vec<J> = vec![];
    for r in rows {
        match r.get("op").and_then(J::as_str) {
            Some("c") | Some("r") | Some("u") => live.push(r["after"].clone()),
            Some("d") => {
                let pos = live.iter().position(|x| *x == r["before"]).ok_or_else(|| {
                    format!("changelog deletes a row that is not there: {}", r["before"])
                })?;
                live.swap_remove(pos);
            }
            _ => return Err(format!("not a debezium-json change: {r}")),
        }
    }
    Ok(live)
}

/// The parts of a row that must match exactly (every field but doubles).
fn exact_key(r: &J) -> String {
    match r {
        J::Object(m) => {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| match v {
                    J::Number(n) if n.is_f64() => format!("{k}=<f64>"),
                    other => format!("{k}={other}"),
                })
                .collect();
            parts.sort();
            parts.join(",")
        }
        other => other.to_string(),
    }
}

fn close(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (J::Number(x), J::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (x, y) => x == y,
    }
}

/// Compares two multisets of rows; returns a description of the differences.
fn diff_rows(expected: &[J], got: &[J]) -> Option<String> {
    let mut pool: HashMap<String, Vec<&J>> = HashMap::new();
    for g in got {
        pool.entry(exact_key(g)).or_default().push(g);
    }
    let mut missing = vec![];
    for e in expected {
        let cands = pool.entry(exact_key(e)).or_default();
        match cands.iter().position(|g| close(e, g)) {
            Some(p) => {
                cands.swap_remove(p);
            }
            None => missing.push(e.to_string()),
        }
    }
    let extra: Vec<String> = pool.values().flatten().map(|g| g.to_string()).collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    Some(format!(
        "expected {} rows, got {}; {} missing, {} unexpected\n  missing e.g.: {}\n  unexpected e.g.: {}",
        expected.len(),
        got.len(),
        missing.len(),
        extra.len(),
        missing.iter().take(3).cloned().collect::<Vec<_>>().join("\n    "),
        extra.iter().take(3).cloned().collect::<Vec<_>>().join("\n    ")
    ))
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(
    query: &Path,
    input: &Path,
    out: &Path,
    dlq: &Path,
    late: &Path,
    parallelism: usize,
) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tillflow"));
    cmd.arg("run")
        .arg(query)
        .arg("--parallelism")
        .arg(parallelism.to_string());
    if parallelism == 2 {
        // the on-disk state backend with the smallest budget: nearly every entry of every
        // keyed state goes to disk and back, and the rows must not change
        cmd.args(["--set", "state.backend.type=disk"])
            .args(["--set", "state.backend.rocksdb.memory.fixed-per-slot=1mb"]);
    }
    let o = cmd
        .arg("--var")
        .arg(format!("INPUT={}", input.display()))
        .arg("--var")
        .arg(format!("OUTPUT={}", out.display()))
        .arg("--var")
        .arg(format!("DLQ={}", dlq.display()))
        .arg("--var")
        .arg(format!("LATE={}", late.display()))
        .output()
        .expect("run tillflow");
    Outcome {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Compares `tillflow explain` of the case's query with its `plan.txt` (required for the Flink
/// conformance cases: a plan snapshot, so a change of plan shows in review). With
/// `TILLFLOW_BLESS=1` the snapshot is (re)written instead.
fn check_plan(dir: &Path, input: &Path, required: bool) -> Result<(), String> {
    let want = dir.join("plan.txt");
    let bless = std::env::var_os("TILLFLOW_BLESS").is_some() && (required || want.exists());
    if !want.exists() && !bless {
        return if required {
            Err("no plan.txt (write it with TILLFLOW_BLESS=1)".into())
        } else {
            Ok(())
        };
    }
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .arg("explain")
        .arg(dir.join("query.sql"))
        .arg("--var")
        .arg(format!("INPUT={}", input.display()))
        .args([
            "--var",
            "OUTPUT=/out",
            "--var",
            "DLQ=/dlq",
            "--var",
            "LATE=/late",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "explain failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let got = String::from_utf8_lossy(&o.stdout);
    if bless {
        return std::fs::write(&want, got.as_bytes()).map_err(|e| e.to_string());
    }
    let want = std::fs::read_to_string(&want).map_err(|e| e.to_string())?;
    if want != got {
        return Err(format!(
            "the plan differs from plan.txt (if the change is intended, rewrite it with TILLFLOW_BLESS=1):\n--- plan.txt\n{want}\n--- explain\n{got}"
        ));
    }
    Ok(())
}

fn late_count(stderr: &str) -> usize {
    stderr
        .split("dropped ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn check_case(dir: &Path, default_input: Option<&Path>, parallelism: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = tmp.path().join("out");
    let dlq = tmp.path().join("dlq.ndjson");
    let late_file = tmp.path().join("late.ndjson");
    let input = match default_input {
        Some(p) => p.to_path_buf(),
        None => std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.file_stem().is_some_and(|s| s == "input"))
            .unwrap_or_else(|| dir.join("input.ndjson")),
    };
    let query = dir.join("query.sql");
    if parallelism == 1 {
        check_plan(dir, &input, default_input.is_some())?;
    }
    let o = run(&query, &input, &out, &dlq, &late_file, parallelism);
    let forbidden = dir.join("forbidden_output.txt");
    if forbidden.exists() {
        let text = std::fs::read_to_string(&forbidden).map_err(|e| e.to_string())?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if o.stdout.contains(line) || o.stderr.contains(line) {
                return Err(format!(
                    "the output shows {line:?}:\n{}\n{}",
                    o.stdout, o.stderr
                ));
            }
        }
    }
    let expected_error = dir.join("expected_error.txt");
    if expected_error.exists() {
        let want = std::fs::read_to_string(&expected_error).map_err(|e| e.to_string())?;
        if o.ok {
            return Err(format!(
                "expected the run to fail with {want:?}, but it succeeded"
            ));
        }
        for line in want.lines().filter(|l| !l.trim().is_empty()) {
            if !o.stderr.contains(line.trim()) {
                return Err(format!(
                    "error output lacks {:?}:\n{}",
                    line.trim(),
                    o.stderr
                ));
            }
        }
        return Ok(());
    }
    if !o.ok {
        return Err(format!("run failed:\n{}", o.stderr));
    }
    let mut checked = false;
    let expected_stderr = dir.join("expected_stderr.txt");
    if expected_stderr.exists() {
        checked = true;
        let want = std::fs::read_to_string(&expected_stderr).map_err(|e| e.to_string())?;
        for line in want.lines().filter(|l| !l.trim().is_empty()) {
            if !o.stderr.contains(line.trim()) {
                return Err(format!(
                    "standard error lacks {:?}:\n{}",
                    line.trim(),
                    o.stderr
                ));
            }
        }
    }
    let expected = dir.join("expected.ndjson");
    if expected.exists() {
        checked = true;
        let want = read_rows(&expected);
        let sql = std::fs::read_to_string(&query).map_err(|e| e.to_string())?;
        let mut got = read_rows(&out);
        if sql.contains("debezium-json") {
            got = replay_debezium(got)?;
        }
        if let Some(d) = diff_rows(&want, &got) {
            return Err(d);
        }
    }
    let shape = dir.join("expected_shape.json");
    if shape.exists() {
        checked = true;
        check_shape(&shape, &out)?;
    }
    let late = dir.join("late_dropped.ndjson");
    if late.exists() {
        let fully = read_rows(&late)
            .iter()
            .filter(|r| r["fully_dropped"] == J::Bool(true))
            .count();
        let got = late_count(&o.stderr);
        if fully != got {
            return Err(format!(
                "Flink dropped {fully} records as late, tillflow {got}:\n{}",
                o.stderr
            ));
        }
    }
    let stdout = dir.join("expected_stdout.txt");
    if stdout.exists() {
        checked = true;
        let want = std::fs::read_to_string(&stdout).map_err(|e| e.to_string())?;
        let mut w: Vec<&str> = want.lines().filter(|l| !l.is_empty()).collect();
        let mut g: Vec<&str> = o.stdout.lines().filter(|l| !l.is_empty()).collect();
        w.sort_unstable();
        g.sort_unstable();
        if w != g {
            return Err(format!("printed rows differ\n  want: {w:?}\n  got:  {g:?}"));
        }
    }
    for (want, got) in [
        ("expected_dead_letter.ndjson", &dlq),
        ("expected_late.ndjson", &late_file),
    ] {
        let want = dir.join(want);
        if want.exists() {
            checked = true;
            check_fields(&want, got)?;
        }
    }
    if !checked {
        return Err("the case has no expected_* file".into());
    }
    Ok(())
}

/// For results that depend on the wall clock (processing time): every written row has exactly
/// the `columns` of `expected_shape.json`, and each column of `sum_at_most` adds up to at most
/// its value (a count cannot exceed the input's).
fn check_shape(shape: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(shape).map_err(|e| e.to_string())?;
    let shape: J = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let columns: Vec<&str> = shape["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(J::as_str)
        .collect();
    let rows = read_rows(out);
    for r in &rows {
        let mut keys: Vec<&str> = r
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        let mut want = columns.clone();
        keys.sort_unstable();
        want.sort_unstable();
        if keys != want {
            return Err(format!("row {r} does not have the columns {columns:?}"));
        }
    }
    for (col, max) in shape["sum_at_most"].as_object().into_iter().flatten() {
        let sum: f64 = rows.iter().filter_map(|r| r[col].as_f64()).sum();
        if sum > max.as_f64().unwrap_or(0.0) {
            return Err(format!("`{col}` adds up to {sum}, more than {max}"));
        }
    }
    Ok(())
}

/// Each expected record's fields must appear in the corresponding written record (strings as
/// substrings, other values exactly).
fn check_fields(want: &Path, got: &Path) -> Result<(), String> {
    let want = read_rows(want);
    let got = read_rows(got);
    if want.len() != got.len() {
        return Err(format!(
            "the written file has {} records, expected {}: {got:?}",
            got.len(),
            want.len()
        ));
    }
    for (w, g) in want.iter().zip(&got) {
        for (k, v) in w.as_object().into_iter().flatten() {
            let gv = &g[k];
            let ok = match (v, gv) {
                (J::String(a), J::String(b)) => b.contains(a.as_str()),
                (a, b) => close(a, b),
            };
            if !ok {
                return Err(format!("field {k}: expected {v}, got {gv} in {g}"));
            }
        }
    }
    Ok(())
}

/// The case directories under `dir` (those with a `query.sql`), sorted.
fn case_dirs(dir: &Path) -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("query.sql").exists())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    cases.sort();
    cases
}

/// Runs one Flink conformance case (on the shared input), Nexmark case (on the Nexmark
/// generator's dump) or golden case.
fn case(kind: &str, name: &str) {
    let dir = root().join("tests").join(kind);
    let input = dir.join(if kind == "nexmark" {
        "events.ndjson"
    } else {
        "events20k.ndjson"
    });
    let default_input = (kind == "flink" || kind == "nexmark").then_some(input.as_path());
    // the same rows (and late-drop counts) on one worker and on several, unless the case says
    // why its rows depend on the order in which several workers' rows arrive
    let single = dir.join(name).join("single_worker.txt");
    let levels: &[usize] = if single.exists() {
        let why = std::fs::read_to_string(&single).unwrap_or_default();
        assert!(!why.trim().is_empty(), "{}: say why", single.display());
        &[1]
    } else {
        &[1, 2, 4]
    };
    for &parallelism in levels {
        if let Err(e) = check_case(&dir.join(name), default_input, parallelism) {
            panic!("{kind} case {name} at parallelism {parallelism}: {e}");
        }
    }
}

/// One test per case, so a case runs alone (`cargo test --test sql_cases flink_q5`) and the
/// cases run in parallel; `every_case_has_a_test` keeps this list and the directories in step.
macro_rules! cases {
    ($kind:literal, $prefix:ident: $($name:ident,)*) => {
        mod $prefix {
            $(
                #[test]
                fn $name() {
                    super::case($kind, stringify!($name));
                }
            )*
            /// The cases this module runs.
            pub const NAMES: &[&str] = &[$(stringify!($name)),*];
        }
    };
}

cases!("flink", flink:
    q10_temporal_functions,
    q11_dedup_first_per_customer,
    q12_topn_skus_per_store,
    q13_hop_distinct_per_channel,
    q14_tumble_offset_hourly,
    q15_distinct_and_having,
    q16_join_web_and_store,
    q17_left_join_customer_totals,
    q19_session_per_customer,
    q1_tumble_1m,
    q21_window_topn_per_channel,
    q22_dedup_last_per_store,
    q23_casts_and_nulls,
    q25_union_all,
    q26_window_join,
    q27_cumulate_having,
    q2_hop_5m_1m,
    q3_cumulate_1d_1h,
    q4_session_30s,
    q4b_session_legacy,
    q5_topn_10m,
    q6_filter_web,
    q7_groupby_store,
    q8_string_functions,
    q9_numeric_functions,
);

// Flink's Nexmark queries (nexmark/nexmark), verbatim but for the source's and sink's WITH
// clauses, over the `nexmark` connector's events (tests/nexmark/README.md); q6 is excluded as
// Flink excludes it, q14 needs a user-defined function.
cases!("nexmark", nexmark:
    q0,
    q1,
    q10,
    q11,
    q12,
    q15,
    q16,
    q17,
    q18,
    q19,
    q2,
    q20,
    q21,
    q22,
    q3,
    q4,
    q5,
    q7,
    q8,
    q9,
);

cases!("golden", golden:
    bad_records_dead_letter,
    bad_records_fail,
    bad_records_skip,
    batch_dedup_keep_last,
    batch_group_by_final_rows,
    batch_windows_order_by_limit,
    cascaded_windows,
    case_nested_100_deep,
    count_window,
    csv_escape_character_as_flink,
    csv_quoted_newlines_as_flink,
    csv_unclosed_quote_dead_letter,
    dedup_last_ties,
    dedup_proctime_first,
    dedup_rowtime_last,
    distinct_changelog,
    error_approx_count_distinct,
    error_column_without_input,
    error_create_catalog,
    error_csv_text_after_closing_quote,
    error_cte_reads_itself,
    error_cumulate_too_many_steps,
    error_datagen_length,
    error_date_format_letter,
    error_dead_letter_is_the_input,
    error_dead_letter_unwritable,
    error_deep_boolean_chain,
    error_deep_expression_chain,
    error_deep_parentheses,
    error_function_arity,
    error_hint_bad_option,
    error_hint_state_ttl_unknown_input,
    error_hop_too_many_slides,
    error_insert_into_source,
    error_json_map_int_key,
    error_json_multiset_count,
    error_json_multiset_int,
    error_json_object_date,
    error_json_value_returning_bigint,
    error_json_value_returning_mismatch,
    error_lead_streaming,
    error_long_field_clipped,
    error_lpad_too_long,
    error_mod_decimal_by_zero,
    error_nested_in_csv,
    error_parse_line,
    error_partitioned_by,
    error_path_scheme,
    error_regex_backreference,
    error_sink_is_the_input,
    error_sink_type_mismatch,
    error_table_subquery,
    error_temporal_join_proctime_bounded,
    error_temporal_join_right_filter,
    error_timestamp_out_of_range,
    error_union_all_branches,
    error_unknown_column,
    error_unknown_option,
    error_updating_into_append_sink,
    error_use_other_database,
    error_window_needs_time_attribute,
    file_uri_paths,
    functions,
    functions_agg_collect,
    functions_agg_collect_distinct,
    functions_agg_minmax_dedup,
    functions_agg_minmax_retract,
    functions_agg_retract,
    functions_agg_variance_decimal,
    functions_agg_window,
    functions_array,
    functions_array_split,
    functions_json,
    functions_json_build,
    functions_json_build_nested,
    functions_json_build_numbers,
    functions_json_paths,
    functions_over_lag,
    functions_over_lag_offsets,
    functions_string,
    functions_string_edges,
    functions_temporal,
    hint_join_strategy_noted,
    hint_options,
    hop_over_subquery,
    insert_values,
    interval_join,
    join_full_outer,
    join_inner_residual,
    join_left_outer,
    join_then_aggregate,
    kafka_java_properties_mapped,
    kafka_java_property_refused,
    kafka_password_never_printed,
    late_data_output,
    legacy_hop,
    legacy_tumble,
    mod_decimal_exact,
    nested_csv_read,
    nested_json,
    nested_json_multiset,
    nested_maps,
    nested_print,
    nested_print_multiset,
    numbers_at_the_edges_as_flink,
    over_no_partition,
    over_range_bounded,
    over_range_unbounded,
    over_rows_bounded,
    over_rows_unbounded,
    session_over_subquery,
    session_partition_mismatch,
    set_flink_keys_noted,
    set_refused_automatic_mode,
    set_unknown_key,
    single_file_try_cast,
    state_ttl_group_by_watermark_clock,
    state_ttl_hint_group_by_alias,
    state_ttl_hint_per_join_side,
    state_ttl_join_watermark_clock,
    state_ttl_over_watermark_clock,
    statements_explain,
    statements_show_describe,
    temporal_join_dedup_view,
    temporal_join_event_time,
    temporal_join_left,
    topn_rank_changes_in_flink_order,
    topn_with_rank,
    tumble_distinct_filter,
    unnest_cross_ordinality,
    unnest_left_on_true,
    unnest_then_window,
    values_bounded,
    view_cte_subquery,
    views_and_ctes_800_deep,
    window_of_window_renamed,
    window_tvf_without_aggregation,
);

#[test]
fn every_case_has_a_test() {
    for (kind, listed) in [
        ("flink", flink::NAMES),
        ("golden", golden::NAMES),
        ("nexmark", nexmark::NAMES),
    ] {
        let on_disk = case_dirs(&root().join("tests").join(kind));
        let listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            on_disk, listed,
            "tests/{kind}: every case directory needs its line in the cases! list of sql_cases.rs"
        );
    }
    assert!(
        flink::NAMES.len() >= 25,
        "the Flink conformance cases are missing"
    );
}

#[test]
fn diff_detects_changes() {
    let a: Vec<J> = vec![
        serde_json::json!({"k": 1, "v": 0.1}),
        serde_json::json!({"k": 2, "v": 0.2}),
    ];
    let b: Vec<J> = vec![
        serde_json::json!({"k": 2, "v": 0.2 + 1e-12}),
        serde_json::json!({"k": 1, "v": 0.1}),
    ];
    assert!(diff_rows(&a, &b).is_none());
    let c: Vec<J> = vec![
        serde_json::json!({"k": 1, "v": 0.1}),
        serde_json::json!({"k": 2, "v": 0.3}),
    ];
    assert!(diff_rows(&a, &c).is_some());
    let d: Vec<J> = vec![serde_json::json!({"k": 1, "v": 0.1})];
    assert!(diff_rows(&a, &d).is_some());
}
