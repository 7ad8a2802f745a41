//! Python user-defined functions end to end (`CREATE FUNCTION … LANGUAGE PYTHON`): each query
//! runs through the real binary, its Python worker and the functions of `tests/python/udfs.py`;
//! what it should give comes from `tests/python/reference.py`, which calls the same functions
//! in plain Python over the same input (no bundles, no wire format, no SQL).

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pydir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

fn reference(args: &[&str]) -> Vec<String> {
    let o = Command::new("python3")
        .arg(pydir().join("reference.py"))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "reference.py {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A directory with `n` events of the reference's input.
fn input(n: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.ndjson");
    reference(&["gen", &path.to_string_lossy(), &n.to_string()]);
    (dir, path)
}

/// The script's head: Python's path, the functions, the input table.
fn head(input: &Path) -> String {
    let mut s = format!(
        "SET 'python.files' = '{}';\n",
        pydir().join("udfs.py").display()
    );
    for f in [
        "with_tax",
        "norm_sku",
        "is_bulk",
        "add_one",
        "discounted",
        "family",
        "day_of",
        "hour_of",
        "name_len",
        "scaled",
        "dec_half",
        "pyflink_style",
        "words",
        "letters",
        "ratio",
        "wrong_type",
        "untyped",
        "dies_once",
        "always_dies",
        "chatty",
        "weighted_avg",
        "top_skus",
        "py_sum",
        "py_sum_m",
        "fragile_sum",
        "fragile_sum_m",
        "unpicklable_sum",
        "pandas_mean",
    ] {
        s.push_str(&format!(
            "CREATE TEMPORARY FUNCTION {f} AS 'udfs.{f}' LANGUAGE PYTHON;\n"
        ));
    }
    s.push_str(&format!(
        "CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, \
         unit_price DOUBLE, customer_id STRING, channel STRING, note STRING, \
         WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
        input.display()
    ));
    s
}

/// Each query of `cases`, after the table and functions of `head`, is refused with an error that
/// says the text given beside it.
fn refused(dir: &tempfile::TempDir, input: &Path, cases: &[(&str, &str)]) {
    for (sql, want) in cases {
        let script = format!("{}{sql}\n", head(input));
        let (ok, err) = common::tillflow(&script, dir.path());
        assert!(!ok, "{sql} ran");
        assert!(err.contains(want), "`{want}` missing for {sql}: {err}");
    }
}

/// A row as canonical text: keys sorted, numbers to 6 decimals.
fn canon(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let Value::Object(m) = v else {
        panic!("not an object: {line}")
    };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let v = match &m[*k] {
                Value::Number(n) => format!("{:.6}", n.as_f64().unwrap_or(f64::NAN)),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn same_rows(got: &[String], want: &[String]) {
    let mut g: Vec<String> = got.iter().map(|l| canon(l)).collect();
    let mut w: Vec<String> = want.iter().map(|l| canon(l)).collect();
    g.sort();
    w.sort();
    assert!(!w.is_empty(), "the reference gives no rows");
    assert_eq!(g.len(), w.len(), "row counts differ");
    for (a, b) in g.iter().zip(&w) {
        assert_eq!(a, b);
    }
}

/// Runs `body` after the head, writing to `out` (declared with `columns`), and returns the
/// rows written.
fn run(
    dir: &Path,
    input: &Path,
    columns: &str,
    body: &str,
    extra: &str,
) -> (bool, String, Vec<String>) {
    let out = dir.join("out");
    let script = format!(
        "{extra}{}CREATE TABLE out ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\nINSERT INTO out {body};\n",
        head(input),
        out.display()
    );
    let (ok, err) = common::tillflow(&script, dir);
    (ok, err, common::lines(&out))
}

#[test]
fn scalar_functions_of_every_type_give_pythons_answers() {
    let (dir, input) = input(3000);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "sku STRING, taxed DOUBLE, ns STRING, q1 BIGINT, d DECIMAL(12, 2), fam STRING, d0 DATE, \
         h TIMESTAMP(3), nl INT, s10 DOUBLE, half DOUBLE, dh DECIMAL(10, 2)",
        "SELECT sku, with_tax(unit_price), norm_sku(sku), add_one(qty), discounted(unit_price, 10), \
         family(sku), day_of(event_time), hour_of(event_time), name_len(customer_id), \
         scaled(unit_price), pyflink_style(unit_price), dec_half(CAST(unit_price AS DECIMAL(10, 2))) \
         FROM events WHERE is_bulk(qty) AND store_id <> 3",
        // bundles of 7 rows: many round trips, partial last bundle
        "SET 'python.fn-execution.bundle.size' = '7';\n",
    );
    assert!(ok, "{err}");
    same_rows(&got, &reference(&["scalar", &input.to_string_lossy()]));
}

#[test]
fn nested_calls_and_a_filter_on_a_python_result() {
    let (dir, input) = input(3000);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "x STRING, y BIGINT, z BIGINT",
        "SELECT norm_sku(family(sku)), add_one(add_one(qty)), add_one(qty) FROM events \
         WHERE add_one(add_one(qty)) > 3",
        "",
    );
    assert!(ok, "{err}");
    same_rows(&got, &reference(&["nested", &input.to_string_lossy()]));
}

#[test]
fn a_window_over_python_results_closes_as_the_watermark_passes() {
    // the bundle goes out before each watermark, so no row reaches its window late
    let (dir, input) = input(20_000);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "window_start TIMESTAMP(3), fam STRING, n BIGINT, total DOUBLE",
        "SELECT window_start, family(sku), COUNT(*), SUM(with_tax(unit_price)) \
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' HOUR)) \
         GROUP BY window_start, window_end, family(sku)",
        "SET 'python.fn-execution.bundle.size' = '1000';\n",
    );
    assert!(ok, "{err}");
    assert!(!err.contains("late"), "{err}");
    same_rows(&got, &reference(&["window", &input.to_string_lossy()]));
}

#[test]
fn lateral_table_joins_each_row_with_the_rows_its_function_yields() {
    let (dir, input) = input(3000);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "customer_id STRING, w STRING, pos INT",
        "SELECT customer_id, w, pos FROM events, LATERAL TABLE(words(note)) AS T(w, pos)",
        "",
    );
    assert!(ok, "{err}");
    same_rows(&got, &reference(&["table", &input.to_string_lossy()]));
}

#[test]
fn left_join_lateral_table_keeps_rows_without_output() {
    let (dir, input) = input(3000);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "store_id INT, c STRING",
        "SELECT store_id, f0 FROM events LEFT JOIN LATERAL TABLE(letters(\
         CASE WHEN store_id = 1 THEN sku END)) ON TRUE",
        "",
    );
    assert!(ok, "{err}");
    same_rows(&got, &reference(&["left_table", &input.to_string_lossy()]));
}

#[test]
fn a_python_exception_fails_the_job_naming_function_row_and_traceback() {
    let (dir, input) = input(200);
    let (ok, err, _) = run(
        dir.path(),
        &input,
        "r DOUBLE",
        "SELECT ratio(CAST(qty AS DOUBLE), CAST(store_id - 4 AS DOUBLE)) FROM events WHERE qty IS NOT NULL",
        "",
    );
    assert!(!ok);
    for want in [
        "Python function ratio failed",
        "ZeroDivisionError",
        "on the row (",
        "Python traceback",
        "line ",
        "return a / b",
    ] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}

#[test]
fn a_result_of_the_wrong_type_is_an_error_naming_the_value() {
    let (dir, input) = input(50);
    let (ok, err, _) = run(
        dir.path(),
        &input,
        "x BIGINT",
        "SELECT wrong_type(qty) FROM events",
        "",
    );
    assert!(!ok);
    assert!(
        err.contains("wrong_type") && err.contains("'not a number'") && err.contains("BIGINT"),
        "{err}"
    );
}

#[test]
fn a_worker_that_dies_is_started_again_and_the_job_loses_nothing() {
    let (dir, input) = input(500);
    let marker = dir.path().join("died-once");
    let out = dir.path().join("out");
    let script = format!(
        "{}CREATE TABLE out (x BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
         INSERT INTO out SELECT dies_once(store_id) FROM events;\n",
        head(&input),
        out.display()
    );
    std::fs::write(dir.path().join("q.sql"), &script).expect("script");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "q.sql"])
        .current_dir(dir.path())
        .env("TILLFLOW_TEST_MARKER", &marker)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(marker.exists(), "the worker never died");
    assert_eq!(common::lines(&out).len(), 500);
}

#[test]
fn a_worker_that_keeps_dying_fails_the_job_with_its_exit_status() {
    let (dir, input) = input(20);
    let (ok, err, _) = run(
        dir.path(),
        &input,
        "x BIGINT",
        "SELECT always_dies(qty) FROM events",
        "",
    );
    assert!(!ok);
    assert!(
        err.contains("always_dies") && err.contains("exit status: 4") && err.contains("once more"),
        "{err}"
    );
}

#[test]
fn what_a_function_prints_does_not_break_the_worker() {
    let (dir, input) = input(100);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "x BIGINT",
        "SELECT chatty(store_id) FROM events",
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(got.len(), 100);
}

#[test]
fn functions_are_refused_clearly_at_plan_time() {
    let (dir, input) = input(10);
    let cases = [
        (
            "CREATE FUNCTION j AS 'com.acme.udf.Upper';\nSELECT j(sku) FROM events;",
            "tillflow runs no JVM code",
        ),
        (
            "CREATE FUNCTION j AS 'com.acme.Upper' LANGUAGE JAVA USING JAR '/x.jar';\n",
            "USING JAR",
        ),
        ("SELECT untyped(sku) FROM events;", "has no result_type attribute"),
        (
            "CREATE TEMPORARY FUNCTION nope AS 'no_such_module.f' LANGUAGE PYTHON;\nSELECT nope(sku) FROM events;",
            "No module named 'no_such_module'",
        ),
        (
            "SELECT * FROM events, LATERAL TABLE(with_tax(unit_price));",
            "has no result_types attribute",
        ),
        (
            "SELECT words(note) FROM events;",
            "has no result_type attribute",
        ),
        (
            "SELECT * FROM events, LATERAL TABLE(upper(sku));",
            "is not a table function",
        ),
    ];
    refused(&dir, &input, &cases);
}

#[test]
fn create_function_as_a_builtin_gives_it_another_name() {
    let (dir, input) = input(500);
    let out = |name: &str| dir.path().join(name);
    let script = format!(
        "{}CREATE FUNCTION shout AS 'UPPER';\nCREATE TEMPORARY SYSTEM FUNCTION smooth AS 'EWMA';\n\
         CREATE TABLE a (s STRING, e DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
         CREATE TABLE b (s STRING, e DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
         INSERT INTO a SELECT shout(sku), smooth(CAST(qty AS DOUBLE), 0.5) OVER (PARTITION BY store_id ORDER BY event_time) FROM events;\n\
         INSERT INTO b SELECT UPPER(sku), EWMA(CAST(qty AS DOUBLE), 0.5) OVER (PARTITION BY store_id ORDER BY event_time) FROM events;\n",
        head(&input),
        out("a").display(),
        out("b").display()
    );
    let (ok, err) = common::tillflow(&script, dir.path());
    assert!(ok, "{err}");
    let a = common::lines(&out("a"));
    assert_eq!(a.len(), 500);
    assert_eq!(a, common::lines(&out("b")));
}

#[test]
fn explain_shows_the_python_calc_and_correlate() {
    let (dir, input) = input(10);
    let script = format!(
        "{}EXPLAIN SELECT add_one(add_one(qty)) AS y, w FROM events, LATERAL TABLE(words(note)) AS T(w, p) WHERE is_bulk(qty) AND store_id > 2;\n",
        head(&input)
    );
    let path = dir.path().join("e.sql");
    std::fs::write(&path, script).expect("script");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in [
        "PythonCorrelate(invocation=[words(note)], joinType=[INNER], changelogMode=[I])",
        "is_bulk(qty) AS f10, add_one(qty) AS f11]",
        "add_one(f11) AS f12]",
        "Calc(select=[f12 AS y, w], where=[f10]",
        "where=[(store_id > 2)]",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
}

/// Rows of a SQLite table as sorted JSON lines (`select` gives one JSON object per row).
fn sqlite_rows(db: &Path, select: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut st = conn.prepare(select).expect("select");
    let mut v: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    v.sort();
    v
}

/// Weighted average and top SKUs per TUMBLE window, beside COUNT(*): with the default bundle
/// size (each window's rows go to Python when it fires) and with bundles of 13 rows (the open
/// windows' rows go to Python every 13 rows, their accumulators pickled in between).
#[test]
fn python_aggregates_over_tumble_windows_give_pythons_answers() {
    let (dir, input) = input(3000);
    let want = reference(&["udaf_window", &input.to_string_lossy()]);
    for extra in ["", "SET 'python.fn-execution.bundle.size' = '13';\n"] {
        let (ok, err, got) = run(
            dir.path(),
            &input,
            "window_start TIMESTAMP(3), store_id INT, wa DOUBLE, top STRING, n BIGINT",
            "SELECT window_start, store_id, weighted_avg(unit_price, qty), top_skus(sku), COUNT(*) \
             FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE)) \
             GROUP BY window_start, window_end, store_id",
            extra,
        );
        assert!(ok, "{err}");
        assert!(got.len() > 30, "{} windows", got.len());
        same_rows(&got, &want);
        std::fs::remove_dir_all(dir.path().join("out")).expect("clean");
    }
}

/// A running GROUP BY over an updating input (a per-SKU aggregate's -U/+U) retracts rows from
/// its Python accumulators; its final rows are Python's over the final input, in one bundle
/// per chunk and in bundles of 5 rows (accumulators pickled and unpickled between bundles).
#[test]
fn a_python_aggregate_over_an_updating_input_retracts() {
    let (dir, input) = input(3000);
    let want = reference(&["udaf_updating", &input.to_string_lossy()]);
    for (i, extra) in ["", "SET 'python.fn-execution.bundle.size' = '5';\n"]
        .iter()
        .enumerate()
    {
        let db = dir.path().join(format!("out{i}.db"));
        let script = format!(
            "{extra}{}CREATE TABLE out (store_id INT, wa DOUBLE, skus BIGINT, PRIMARY KEY (store_id) NOT ENFORCED) \
             WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'out');\n\
             INSERT INTO out SELECT store_id, weighted_avg(CAST(units AS DOUBLE), n), COUNT(*) FROM \
             (SELECT store_id, sku, SUM(qty) AS units, COUNT(*) AS n FROM events GROUP BY store_id, sku) \
             GROUP BY store_id;\n",
            head(&input),
            db.display()
        );
        let (ok, err) = common::tillflow(&script, dir.path());
        assert!(ok, "{err}");
        let got = sqlite_rows(
            &db,
            "SELECT json_object('store_id', store_id, 'wa', wa, 'skus', skus) FROM out",
        );
        same_rows(&got, &want);
    }
}

#[test]
fn a_python_aggregate_without_retract_over_an_updating_input_is_refused() {
    let (dir, input) = input(10);
    let script = format!(
        "{}SELECT store_id, top_skus(sku) FROM \
         (SELECT store_id, sku, COUNT(*) AS n FROM events GROUP BY store_id, sku) GROUP BY store_id;\n",
        head(&input)
    );
    let (ok, err) = common::tillflow(&script, dir.path());
    assert!(!ok, "it ran");
    for want in [
        "top_skus",
        "'udfs.top_skus'",
        "has no retract method",
        "updating",
    ] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}

#[test]
fn python_aggregates_are_refused_clearly_where_they_cannot_run() {
    let (dir, input) = input(10);
    let cases = [
        (
            "SELECT store_id, py_sum(DISTINCT qty) FROM events GROUP BY store_id;",
            "Python aggregate function py_sum does not take DISTINCT",
        ),
        (
            "SELECT py_sum(qty) OVER (PARTITION BY store_id ORDER BY event_time) FROM events;",
            "Python aggregate function PY_SUM over an OVER window is not supported",
        ),
        (
            "SELECT store_id, py_sum(qty) FROM TABLE(COUNT_WINDOW(TABLE events PARTITION BY store_id, DESCRIPTOR(event_time), 10)) \
             GROUP BY window_start, window_end, store_id;",
            "in a COUNT_WINDOW is not supported",
        ),
        (
            "SELECT * FROM events, LATERAL TABLE(py_sum(qty));",
            "is an aggregate function",
        ),
        (
            "SELECT sku FROM events WHERE py_sum(qty) > 3;",
            "not allowed here",
        ),
        (
            "SELECT store_id, pandas_mean(unit_price) FROM events GROUP BY store_id;",
            "is a vectorized (pandas) function",
        ),
    ];
    refused(&dir, &input, &cases);
}

#[test]
fn a_python_exception_in_accumulate_fails_the_job_naming_function_key_and_traceback() {
    let (dir, input) = input(300);
    let (ok, err, _) = run(
        dir.path(),
        &input,
        "store_id INT, s BIGINT",
        "SELECT store_id, fragile_sum(qty) \
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE)) \
         GROUP BY window_start, window_end, store_id",
        "",
    );
    assert!(!ok);
    for want in [
        "Python function fragile_sum failed",
        "accumulate(acc, 7)",
        "ValueError: seven is unlucky",
        "for the group by key (",
        "2024-03-01 08:00:00",
        "Python traceback",
        "raise ValueError",
    ] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}

/// In a SESSION window, a failure names the group's key and its session's bounds: when the
/// session fires (a function without `merge`), and when its rows go to Python early (with it).
#[test]
fn a_python_exception_in_a_session_window_names_the_session() {
    let (dir, input) = input(300);
    for (f, extra) in [
        ("fragile_sum", ""),
        (
            "fragile_sum_m",
            "SET 'python.fn-execution.bundle.size' = '7';\n",
        ),
    ] {
        let (ok, err, _) = run(
            dir.path(),
            &input,
            "store_id INT, s BIGINT",
            &format!(
                "SELECT store_id, {f}(qty) \
                 FROM TABLE(SESSION(TABLE events PARTITION BY store_id, DESCRIPTOR(event_time), \
                 INTERVAL '4' SECOND)) GROUP BY window_start, window_end, store_id"
            ),
            extra,
        );
        assert!(!ok, "{f}");
        for want in [
            &format!("Python function {f} failed"),
            "accumulate(acc, 7)",
            "ValueError: seven is unlucky",
            "for the group by key (",
            " of the window [2024-03-01 ",
        ] {
            assert!(err.contains(want), "{f}: `{want}` missing from: {err}");
        }
    }
}

/// An accumulator that pickle cannot save fails the job clearly, naming the function, even in
/// a window that fires before any of its rows would go to Python early (nothing pickled yet).
#[test]
fn an_accumulator_that_cannot_be_pickled_fails_at_once_naming_the_function() {
    let (dir, input) = input(300);
    let (ok, err, got) = run(
        dir.path(),
        &input,
        "store_id INT, s BIGINT",
        "SELECT store_id, unpicklable_sum(qty) \
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE)) \
         GROUP BY window_start, window_end, store_id",
        "",
    );
    assert!(!ok, "{got:?}");
    for want in [
        "Python function unpicklable_sum could not be loaded",
        "the accumulator of udfs.unpicklable_sum cannot be pickled",
    ] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
}

/// HOP (panes), CUMULATE (a running aggregate per period) and SESSION (merged sessions) windows
/// give a Python SUM the rows the built-in SUM gets: every window's sums are equal, for a
/// function without `merge` (its rows wait until their windows fire) and one with it (given to
/// Python every 7 rows, then merged).
#[test]
fn python_aggregates_in_hop_cumulate_and_session_windows_equal_the_builtins() {
    let (dir, input) = input(2000);
    for (window, merges) in [
        (
            "HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' MINUTE, INTERVAL '15' MINUTE)",
            true,
        ),
        (
            "CUMULATE(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' MINUTE, INTERVAL '20' MINUTE)",
            true,
        ),
        // in-order rows only extend sessions: none merge
        (
            "SESSION(TABLE events PARTITION BY store_id, DESCRIPTOR(event_time), INTERVAL '4' SECOND)",
            false,
        ),
    ] {
        for f in ["py_sum", "py_sum_m"] {
            let (ok, err, got) = run(
                dir.path(),
                &input,
                "store_id INT, window_end TIMESTAMP(3), a BIGINT, b BIGINT, n BIGINT",
                &format!(
                    "SELECT store_id, window_end, {f}(qty), SUM(qty), COUNT(*) \
                     FROM TABLE({window}) GROUP BY window_start, window_end, store_id"
                ),
                "SET 'python.fn-execution.bundle.size' = '7';\n",
            );
            assert!(ok, "{window}: {err}");
            assert!(got.len() > 40, "{window}: {} rows", got.len());
            let mut total = 0;
            for line in &got {
                let v: Value = serde_json::from_str(line).expect("json");
                assert_eq!(v["a"], v["b"], "{window}, {f}: {line}");
                total += v["n"].as_i64().unwrap_or(0);
            }
            assert!(total >= 2000, "{window}: {total} rows counted");
            assert_eq!(
                err.contains("py_sum_m merged accumulators"),
                merges && f == "py_sum_m",
                "{window}, {f}: {err}"
            );
            std::fs::remove_dir_all(dir.path().join("out")).expect("clean");
        }
    }
}

/// A job with Python aggregates (a TUMBLE window's and a running GROUP BY's) on two workers,
/// aborted right after its second checkpoint and run again from it on three, ends with the rows
/// of a run never interrupted: the accumulators (pickled, and rows not yet given to Python) are
/// in the checkpoint, in their groups' key groups.
#[test]
fn python_aggregates_resume_from_a_checkpoint_as_if_never_stopped() {
    let (dir, input) = input(20_000);
    let d = dir.path();
    let script = |db: &str, checkpoints: bool| {
        let mut s = String::new();
        if checkpoints {
            s.push_str(&format!(
                "SET 'execution.checkpointing.interval' = '5 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                d.join("checkpoints").display()
            ));
        }
        s.push_str(&head(&input));
        let db = d.join(db).display().to_string();
        s.push_str(&format!(
            "CREATE TABLE w (window_start TIMESTAMP(3), store_id INT, wa DOUBLE, top STRING, \
             PRIMARY KEY (window_start, store_id) NOT ENFORCED) \
             WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'w');\n\
             CREATE TABLE g (channel STRING, s BIGINT, wa DOUBLE, PRIMARY KEY (channel) NOT ENFORCED) \
             WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'g');\n\
             EXECUTE STATEMENT SET BEGIN\n\
             INSERT INTO w SELECT window_start, store_id, weighted_avg(unit_price, qty), top_skus(sku) \
             FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE)) \
             GROUP BY window_start, window_end, store_id;\n\
             INSERT INTO g SELECT channel, py_sum(qty), weighted_avg(unit_price, qty) FROM events GROUP BY channel;\n\
             END;\n"
        ));
        s
    };
    let rows = |db: &str| {
        let db = d.join(db);
        let mut v = sqlite_rows(
            &db,
            "SELECT window_start || '|' || store_id || '|' || printf('%.9f', wa) || '|' || top FROM w",
        );
        v.extend(sqlite_rows(
            &db,
            "SELECT channel || '|' || s || '|' || printf('%.9f', wa) FROM g",
        ));
        v
    };
    let file = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let run = |path: &Path, crash: Option<u32>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tillflow"));
        let workers = if crash.is_some() { "2" } else { "3" };
        c.args(["run", "--quiet", "--no-http", "--parallelism", workers])
            .arg(path)
            .current_dir(d);
        if let Some(n) = crash {
            c.env("TILLFLOW_CRASH_AFTER_CHECKPOINT", n.to_string());
        }
        c.output().expect("run")
    };
    let o = run(&file("reference.sql", script("reference.db", false)), None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = file("job.sql", script("out.db", true));
    let o = run(&path, Some(2));
    assert!(
        !o.status.success(),
        "the hook should have aborted the run after checkpoint 2"
    );
    let o = run(&path, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (got, want) = (rows("out.db"), rows("reference.db"));
    assert!(want.len() > 100, "{} rows", want.len());
    assert!(
        got == want,
        "rows after the restore differ from an uninterrupted run's"
    );
}

#[test]
fn explain_shows_the_python_group_and_window_aggregates() {
    let (dir, input) = input(10);
    let script = format!(
        "{}EXPLAIN SELECT store_id, py_sum(qty), COUNT(*) FROM events GROUP BY store_id;\n\
         EXPLAIN SELECT window_start, store_id, weighted_avg(unit_price, qty) \
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE)) \
         GROUP BY window_start, window_end, store_id;\n",
        head(&input)
    );
    let path = dir.path().join("e.sql");
    std::fs::write(&path, script).expect("script");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in [
        "PythonGroupAggregate(groupBy=[store_id], select=[store_id, py_sum(qty), COUNT(*)",
        "PythonGroupWindowAggregate(groupBy=[store_id]",
        "weighted_avg(unit_price, qty)",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
}
