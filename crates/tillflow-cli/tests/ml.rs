//! Models in SQL: `CREATE MODEL` with a model that learns on the stream, and `ML_PREDICT`,
//! checked against river (pinned by scripts/setup.sh), which implements the same learners:
//! every prediction equals river's progressive validation (predict, then learn) on the same
//! rows in the same order, to 1e-9 relative (tests/ml/reference_online.py).

mod common;

use common::tillflow;
use std::collections::BTreeMap;
use std::process::Command;

/// Retail-like rows: a store, a promotion flag, a price (NULL now and then), a discount, the
/// units sold (the regression's label, NULL now and then: a label that comes later) and whether
/// the basket converted (the classifier's label).
fn rows(n: usize) -> String {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = String::new();
    for i in 0..n {
        let r = common::splitmix(&mut seed);
        let store = ["s1", "s2", "s3", "s4"][(r % 4) as usize];
        let promo = (r >> 8).is_multiple_of(5);
        let price = 1.0 + ((r >> 16) % 2000) as f64 / 100.0;
        let discount = ((r >> 32) % 40) as f64 / 100.0;
        let hour = (r >> 40) % 24;
        let noise = ((r >> 48) % 1000) as f64 / 1000.0 - 0.5;
        let units = 20.0 - 0.6 * price + 8.0 * discount + if promo { 5.0 } else { 0.0 } + noise;
        let bought = units + noise * 6.0 > 12.0;
        let price_json = if i % 13 == 5 {
            "null".to_owned()
        } else {
            price.to_string()
        };
        let units_json = if i % 7 == 3 {
            "null".to_owned()
        } else {
            units.to_string()
        };
        out.push_str(&format!(
            "{{\"id\": {i}, \"store\": \"{store}\", \"hour\": \"h{hour}\", \"promo\": {promo}, \"price\": {price_json}, \"discount\": {discount:.2}, \"units\": {units_json}, \"bought\": {bought}}}\n"
        ));
    }
    out
}

/// river's predictions by row id, and the hasher's murmur seed.
fn reference(
    dir: &std::path::Path,
    rows: &std::path::Path,
    cfg: &str,
) -> (u64, BTreeMap<i64, f64>) {
    let cfg_path = dir.join("cfg.json");
    std::fs::write(&cfg_path, cfg).expect("config");
    let o = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/ml/reference_online.py"
        ))
        .arg(rows)
        .arg(&cfg_path)
        .output()
        .expect("python3 (scripts/setup.sh installs river)");
    assert!(
        o.status.success(),
        "reference_online.py: {} (scripts/setup.sh test installs river==0.26.1)",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("reference json");
    let seed = v["seed"].as_u64().expect("seed");
    let preds = v["predictions"]
        .as_object()
        .expect("predictions")
        .iter()
        .map(|(k, p)| (k.parse().expect("id"), p.as_f64().expect("number")))
        .collect();
    (seed, preds)
}

/// Runs `model` (its CREATE MODEL's INPUT, OUTPUT and options) over the rows with
/// `ML_PREDICT(TABLE events {partition}, MODEL m, DESCRIPTOR({descriptor}))` and returns each
/// row's `column`.
fn run(
    dir: &std::path::Path,
    rows: &std::path::Path,
    model: &str,
    partition: &str,
    descriptor: &str,
    column: &str,
) -> BTreeMap<i64, f64> {
    let out = dir.join(format!("out-{column}"));
    let script = format!(
        "CREATE TABLE events (id BIGINT, store STRING, `hour` STRING, promo BOOLEAN, price DOUBLE,
  discount DECIMAL(4, 2), units DOUBLE, bought BOOLEAN)
WITH ('connector' = 'filesystem', 'path' = '{rows}', 'format' = 'json');
{model};
CREATE TABLE o (id BIGINT, v DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO o SELECT id, {column} FROM ML_PREDICT(TABLE events {partition}, MODEL m, DESCRIPTOR({descriptor}));",
        rows = rows.display(),
        out = out.display()
    );
    let (ok, err) = tillflow(&script, dir);
    assert!(ok, "{err}");
    common::lines(&out)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["id"].as_i64().expect("id"),
                v["v"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn assert_equal(got: &BTreeMap<i64, f64>, want: &BTreeMap<i64, f64>, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    let mut worst = 0f64;
    for (id, w) in want {
        let g = got.get(id).copied().unwrap_or(f64::NAN);
        let err = (g - w).abs() / w.abs().max(1e-12);
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "{what}: row {id}: tillflow {g} vs river {w}"
        );
        worst = worst.max(err);
    }
    eprintln!(
        "{what}: {} rows, worst relative difference {worst:e}",
        want.len()
    );
}

#[test]
fn online_linear_regression_predicts_as_river() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rows.ndjson");
    std::fs::write(&path, rows(3000)).expect("rows");
    let (seed, want) = reference(
        dir.path(),
        &path,
        r#"{"algorithm": "linear_regression", "optimizer": "sgd", "lr": 0.002, "intercept_lr": 0.05,
            "l2": 0.0, "clip": 1e12, "eps": 1e-8, "buckets": 64, "label": "units",
            "numeric": ["price", "discount", "promo"], "strings": ["store", "hour"], "partition": null}"#,
    );
    let model = format!(
        "CREATE MODEL m INPUT (price DOUBLE, discount DECIMAL(4, 2), promo BOOLEAN, store STRING, `hour` STRING)
OUTPUT (units_forecast DOUBLE)
WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'units',
  'learning-rate' = '0.002', 'intercept-learning-rate' = '0.05',
  'features.hash-buckets' = '64', 'features.hash-seed' = '{seed}')"
    );
    let got = run(
        dir.path(),
        &path,
        &model,
        "",
        "price, discount, promo, store, `hour`",
        "units_forecast",
    );
    assert_equal(&got, &want, "linear regression, SGD");
    // it learned: the last predictions are close to the rows' units
    let late: Vec<f64> = want.range(2900..).map(|(_, p)| *p).collect();
    assert!(late.iter().all(|p| p.is_finite()) && late.iter().any(|p| *p > 5.0));
}

#[test]
fn online_logistic_regression_per_store_predicts_as_river() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rows.ndjson");
    std::fs::write(&path, rows(3000)).expect("rows");
    let (seed, want) = reference(
        dir.path(),
        &path,
        r#"{"algorithm": "logistic_regression", "optimizer": "adagrad", "lr": 0.1, "intercept_lr": 0.01,
            "l2": 0.001, "clip": 5.0, "eps": 1e-8, "buckets": 1024, "label": "bought",
            "numeric": ["price", "discount", "promo"], "strings": ["hour"], "partition": "store"}"#,
    );
    let model = format!(
        "CREATE MODEL m INPUT (price DOUBLE, discount DECIMAL(4, 2), promo BOOLEAN, `hour` STRING)
OUTPUT (will_buy BOOLEAN, p_buy DOUBLE)
WITH ('provider' = 'online', 'algorithm' = 'logistic_regression', 'label' = 'bought',
  'optimizer' = 'adagrad', 'l2' = '0.001', 'clip-gradient' = '5',
  'features.hash-buckets' = '1024', 'features.hash-seed' = '{seed}')"
    );
    let got = run(
        dir.path(),
        &path,
        &model,
        "PARTITION BY store",
        "price, discount, promo, `hour`",
        "p_buy",
    );
    assert_equal(&got, &want, "logistic regression, AdaGrad, per store");
}

/// Rows for the ONNX models: numeric features only (a NULL price now and then).
fn numeric_rows(n: usize) -> String {
    let mut seed = 0x51_7cc1_b727_220au64;
    let mut out = String::new();
    for i in 0..n {
        let r = common::splitmix(&mut seed);
        let promo = (r >> 8).is_multiple_of(5);
        let price = 1.0 + ((r >> 16) % 2000) as f64 / 100.0;
        let discount = ((r >> 32) % 40) as f64 / 100.0;
        let hour = (r >> 40) % 24;
        let noise = ((r >> 48) % 1000) as f64 / 1000.0 - 0.5;
        let season = if (9..18).contains(&hour) { 3.0 } else { 0.0 };
        let units =
            20.0 - 0.6 * price + 8.0 * discount + if promo { 5.0 } else { 0.0 } + season + noise;
        let bought = units + noise * 6.0 > 14.0;
        let price_json = if i % 17 == 9 {
            "null".to_owned()
        } else {
            price.to_string()
        };
        out.push_str(&format!(
            "{{\"id\": {i}, \"price\": {price_json}, \"discount\": {discount}, \"promo\": {promo}, \"hour\": {hour}, \"units\": {units}, \"bought\": {bought}}}\n"
        ));
    }
    out
}

#[test]
fn onnx_models_exported_by_skl2onnx_predict_as_onnxruntime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rows.ndjson");
    let n = 1500;
    std::fs::write(&path, numeric_rows(n)).expect("rows");
    let o = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/ml/make_onnx.py"
        ))
        .arg(&path)
        .arg(dir.path())
        .output()
        .expect("python3 (scripts/setup.sh installs scikit-learn, skl2onnx, onnxruntime)");
    assert!(
        o.status.success(),
        "make_onnx.py: {} (scripts/setup.sh test installs scikit-learn, skl2onnx, onnxruntime)",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).expect("reference json");
    // (model, OUTPUT columns)
    let cases: [(&str, &[&str]); 7] = [
        ("linear", &["units_hat DOUBLE"]),
        ("gbr", &["units_hat DOUBLE"]),
        ("forest", &["units_hat DOUBLE"]),
        ("mlp", &["units_hat DOUBLE"]),
        ("scaled", &["units_hat DOUBLE"]),
        ("logistic", &["label BIGINT", "p_no DOUBLE", "p_yes DOUBLE"]),
        // one input per column, matched by name
        ("columns", &["y DOUBLE"]),
    ];
    for (name, outputs) in cases {
        let model_path = dir.path().join(format!("{name}.onnx"));
        let out = dir.path().join(format!("out-{name}"));
        let names: Vec<&str> = outputs
            .iter()
            .map(|c| c.split(' ').next().unwrap_or(c))
            .collect();
        let script = format!(
            "CREATE TABLE events (id BIGINT, price DOUBLE, discount DOUBLE, promo BOOLEAN, `hour` INT, units DOUBLE, bought BOOLEAN)
WITH ('connector' = 'filesystem', 'path' = '{rows}', 'format' = 'json');
CREATE MODEL m INPUT (price DOUBLE, discount DOUBLE, promo BOOLEAN, `hour` BIGINT) OUTPUT ({outputs})
WITH ('provider' = 'onnx', 'path' = '{model}');
CREATE TABLE o (id BIGINT, {outputs})
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO o SELECT id, {names} FROM ML_PREDICT(TABLE events, MODEL m, DESCRIPTOR(price, discount, promo, `hour`));",
            rows = path.display(),
            model = model_path.display(),
            out = out.display(),
            outputs = outputs.join(", "),
            names = names.join(", "),
        );
        let (ok, err) = tillflow(&script, dir.path());
        assert!(ok, "{name}: {err}");
        let got: BTreeMap<i64, serde_json::Value> = common::lines(&out)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                (v["id"].as_i64().expect("id"), v)
            })
            .collect();
        assert_eq!(got.len(), n, "{name}: rows");
        let (mut worst, mut nulls) = (0f64, 0);
        let trees = matches!(name, "gbr" | "forest");
        for (id, row) in &got {
            let reference = want[name][*id as usize].as_array().expect("row");
            // a NULL price: trees decide where a missing value goes (as onnxruntime); any
            // other model gives no prediction, where onnxruntime gives NaN for its numbers
            if id % 17 == 9 && !trees {
                assert!(
                    names.iter().all(|c| row[*c].is_null()),
                    "{name} row {id}: a NULL feature gives NULL outputs: {row}"
                );
                assert!(
                    reference.iter().any(|w| w.is_null()),
                    "{name} row {id}: onnxruntime gives NaN"
                );
                nulls += 1;
                continue;
            }
            for (c, col) in names.iter().enumerate() {
                let w = &reference[c];
                let g = &row[*col];
                if w.is_null() {
                    assert!(
                        g.is_null(),
                        "{name} row {id} {col}: tillflow {g}, onnxruntime NaN"
                    );
                    nulls += 1;
                    continue;
                }
                let (g, w) = (
                    g.as_f64().unwrap_or(f64::NAN),
                    w.as_f64().unwrap_or(f64::NAN),
                );
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{name} row {id} {col}: tillflow {g} vs onnxruntime {w}"
                );
                worst = worst.max((g - w).abs() / w.abs().max(1e-12));
            }
        }
        eprintln!("{name}: {n} rows, worst relative difference {worst:e}, {nulls} NULLs");
    }
    // a file that does not fit its model's INPUT or OUTPUT is refused when the query is planned
    let refused = |input: &str, output: &str, model: &str| {
        let script = format!(
            "CREATE TABLE events (id BIGINT, price DOUBLE, discount DOUBLE, promo BOOLEAN, `hour` INT, units DOUBLE, bought BOOLEAN)
WITH ('connector' = 'filesystem', 'path' = '{rows}', 'format' = 'json');
CREATE MODEL m INPUT ({input}) OUTPUT ({output}) WITH ('provider' = 'onnx', 'path' = '{model}');
SELECT * FROM ML_PREDICT(TABLE events, MODEL m, DESCRIPTOR(price, discount));",
            rows = path.display(),
            model = dir.path().join(model).display(),
        );
        let (ok, err) = tillflow(&script, dir.path());
        assert!(!ok, "{input} / {output} / {model}: refused");
        err
    };
    let e = refused("price DOUBLE, discount DOUBLE", "y DOUBLE", "gbr.onnx");
    assert!(
        e.contains("holds 4 columns per row, the model's INPUT has 2"),
        "{e}"
    );
    let e = refused("price DOUBLE, discount DOUBLE", "y DOUBLE", "nope.onnx");
    assert!(e.contains("nope.onnx: does not load"), "{e}");
}

/// The Hoeffding tree regressor, river's `tree.HoeffdingTreeRegressor`, on the numeric
/// features (a NULL price now and then: such a row goes down the busier side of a split on
/// price): the whole stream with river's defaults and mean leaves; per store with a short
/// grace period, no tie-breaking and a loose bound, so that leaves fail many split attempts
/// and drop split points (river's E-BST memory management: without it 260 of these
/// predictions would differ by more than 1e-9), under a depth cap that binds; and per store
/// with river's default adaptive leaves (a mean and a linear model, on the price in twenties so
/// the leaf models' SGD stays stable). Every prediction equals river's, and river's trees did
/// split, so the splits are checked too.
#[test]
fn online_hoeffding_tree_predicts_as_river() {
    // (what, options in SQL, river's options, PARTITION BY, price scale, depth cap)
    let cases = [
        (
            "Hoeffding tree, mean leaves, river's defaults",
            "'leaf-prediction' = 'mean'",
            r#""leaf_prediction": "mean""#,
            "",
            1.0,
            None,
        ),
        (
            "Hoeffding tree per store, mean leaves, grace 10, tau 0, delta 0.3, depth 6",
            "'leaf-prediction' = 'mean', 'grace-period' = '10', 'tau' = '0', 'delta' = '0.3',
  'max-depth' = '6'",
            r#""leaf_prediction": "mean", "grace_period": 10, "tau": 0.0, "delta": 0.3,
                "max_depth": 6"#,
            "store",
            1.0,
            Some(6),
        ),
        (
            "Hoeffding tree per store, adaptive leaves, grace 100",
            "'grace-period' = '100', 'model-selector-decay' = '0.9'",
            r#""grace_period": 100, "model_selector_decay": 0.9"#,
            "store",
            0.05,
            None,
        ),
    ];
    for (what, sql, river, partition, scale, cap) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rows.ndjson");
        let scaled: String = rows(3000)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("row");
                if let Some(p) = v["price"].as_f64() {
                    v["price"] = serde_json::json!(p * scale);
                }
                format!("{v}\n")
            })
            .collect();
        std::fs::write(&path, scaled).expect("rows");
        let summary = dir.path().join("summary.json");
        let partition_json = if partition.is_empty() {
            "null".to_owned()
        } else {
            format!("\"{partition}\"")
        };
        let (_, want) = reference(
            dir.path(),
            &path,
            &format!(
                r#"{{"algorithm": "hoeffding_tree_regressor", {river}, "label": "units",
                    "numeric": ["price", "discount", "promo"], "strings": [],
                    "partition": {partition_json}, "summary": "{}"}}"#,
                summary.display()
            ),
        );
        let model = format!(
            "CREATE MODEL m INPUT (price DOUBLE, discount DECIMAL(4, 2), promo BOOLEAN)
OUTPUT (units_hat DOUBLE)
WITH ('provider' = 'online', 'algorithm' = 'hoeffding_tree_regressor', 'label' = 'units', {sql})"
        );
        let got = run(
            dir.path(),
            &path,
            &model,
            &if partition.is_empty() {
                String::new()
            } else {
                format!("PARTITION BY {partition}")
            },
            "price, discount, promo",
            "units_hat",
        );
        assert_equal(&got, &want, what);
        // river's trees grew, so the splits were matched too
        let trees: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
        let trees = trees.as_object().expect("trees");
        assert_eq!(
            trees.len(),
            if partition.is_empty() { 1 } else { 4 },
            "{what}"
        );
        for (key, t) in trees {
            let leaves = t["leaves"].as_u64().expect("leaves");
            assert!(leaves >= 2, "{what}: {key}'s tree never split: {t}");
            assert_eq!(
                t["root"][0], "price",
                "{what}: {key}: price explains most: {t}"
            );
        }
        if let Some(cap) = cap {
            // river's height counts the leaves' level: depth d is height d + 1; the cap binds
            let heights: Vec<u64> = trees
                .values()
                .map(|t| t["height"].as_u64().expect("height"))
                .collect();
            assert!(heights.iter().all(|h| *h <= cap + 1), "{what}: {heights:?}");
            assert!(heights.contains(&(cap + 1)), "{what}: {heights:?}");
        }
        eprintln!("{what}: river's trees {trees:?}");
    }
    // STRING features are refused for the tree when the model is created
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, err) = tillflow(
        "CREATE MODEL m INPUT (price DOUBLE, store STRING) OUTPUT (y DOUBLE)
WITH ('provider' = 'online', 'algorithm' = 'hoeffding_tree_regressor', 'label' = 'units');",
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("INPUT column `store` is STRING")
            && err.contains("'hoeffding_tree_regressor' reads numbers and BOOLEAN"),
        "{err}"
    );
}
