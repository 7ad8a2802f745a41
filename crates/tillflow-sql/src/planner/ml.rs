//! `ML_PREDICT(TABLE t [PARTITION BY k], MODEL m, DESCRIPTOR(a, b, …) [, config])`, as Flink
//! 2.x plans it: the input's columns, then the model's OUTPUT columns (an OUTPUT name equal to
//! an input column's gets the suffix `0`, `1`, … until unique), for an insert-only input. The
//! DESCRIPTOR names the input columns the model's INPUT columns read, in order; each must be
//! assignable to its INPUT column's type (an implicit cast: a wider number, CHAR/VARCHAR to
//! STRING, NOT NULL to nullable). Flink's error texts are kept where it has one. Also as
//! `FROM TABLE(ML_PREDICT(…))` and with Flink's named arguments (INPUT, MODEL, ARGS, CONFIG).
//! A model that learns on the stream (`'provider' = 'online'`) also reads its `'label'` column
//! from the input and keeps one learner per PARTITION BY key.

use super::*;
use crate::script::MODEL_FN;
use tillflow_ml::Provider;

/// User SQL quoted in a message: at most 200 bytes.
fn cut(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    if text.len() <= 200 {
        return text;
    }
    let mut end = 200;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Whether a value of type `from` may be passed where the model takes `to` (Flink's implicit
/// casts, for the types models take).
fn assignable(from: DataType, to: DataType) -> bool {
    use DataType as T;
    let rank = |t: DataType| match t {
        T::TinyInt => Some(1),
        T::SmallInt => Some(2),
        T::Int => Some(3),
        T::BigInt => Some(4),
        T::Decimal(..) => Some(5),
        T::Float => Some(6),
        T::Double => Some(7),
        _ => None,
    };
    match (from, to) {
        _ if from == to => true,
        (T::String(_), T::String(_)) => true,
        (T::Decimal(p1, s1), T::Decimal(p2, s2)) => s2 >= s1 && p2 - s2 >= p1 - s1,
        _ => match (rank(from), rank(to)) {
            (Some(a), Some(b)) => a < b && !(matches!(from, T::Float | T::Double) && b == 5),
            _ => false,
        },
    }
}

impl Planner<'_> {
    /// `ML_PREDICT(…)`: the arguments of the call (see the module comment).
    pub(super) fn ml_predict(&mut self, args: &[sql::FunctionArg]) -> Result<Rel> {
        let mut named: BTreeMap<String, &sql::Expr> = BTreeMap::new();
        let mut positional: Vec<&sql::Expr> = Vec::new();
        let mut partition_sql: Vec<sql::Expr> = Vec::new();
        for a in args {
            match a {
                sql::FunctionArg::Named {
                    name,
                    arg: sql::FunctionArgExpr::Expr(e),
                    ..
                } => {
                    named.insert(name.value.to_ascii_uppercase(), e);
                }
                sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(sql::Expr::Function(pf)))
                    if function_name(pf) == PARTITION_BY_FN =>
                {
                    partition_sql = function_args(pf)?.into_iter().flatten().cloned().collect();
                }
                sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => positional.push(e),
                other => {
                    return plan_err(format!(
                        "unsupported argument `{}` of ML_PREDICT",
                        cut(other)
                    ))
                }
            }
        }
        const PARAMS: [&str; 4] = ["INPUT", "MODEL", "ARGS", "CONFIG"];
        let arg = |i: usize| -> Option<&sql::Expr> {
            named
                .get(PARAMS[i])
                .copied()
                .or_else(|| positional.get(i).copied())
        };
        if (0..3).any(|i| arg(i).is_none()) || positional.len() > 4 {
            return plan_err(
                "No match found for function signature ML_PREDICT (it takes TABLE t, MODEL m, DESCRIPTOR(columns…) and an optional config map)",
            );
        }
        let data = arg(0).ok_or_else(|| SqlError::Plan("ML_PREDICT: missing INPUT".into()))?;
        let (table, mut rel) = self.table_argument(data, "ML_PREDICT")?;
        rel.finish()?;
        let model_name = match arg(1) {
            Some(sql::Expr::Function(m)) if function_name(m) == MODEL_FN => {
                match function_args(m)?.as_slice() {
                    [Some(sql::Expr::Identifier(i))] => i.value.clone(),
                    [Some(sql::Expr::CompoundIdentifier(is))] => is
                        .iter()
                        .map(|i| i.value.clone())
                        .collect::<Vec<_>>()
                        .join("."),
                    _ => return plan_err(
                        "Invalid argument value. Argument 'MODEL' expects a model to be passed.",
                    ),
                }
            }
            Some(sql::Expr::Identifier(i)) if !partition_sql.is_empty() => {
                return plan_err(format!(
                    "Invalid argument value. Argument 'MODEL' expects a model to be passed, found `{}`: several PARTITION BY columns are written in parentheses, PARTITION BY (a, b)",
                    i.value
                ))
            }
            _ => {
                return plan_err(
                    "Invalid argument value. Argument 'MODEL' expects a model to be passed.",
                )
            }
        };
        let Some(model) = self.catalog.model(&model_name).cloned() else {
            let known: Vec<&str> = self.catalog.models().map(|m| m.name.as_str()).collect();
            return plan_err(format!(
                "Object '{model_name}' not found (models: {})",
                if known.is_empty() {
                    "none defined; CREATE MODEL first".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        };
        let columns: Vec<String> = match arg(2) {
            Some(sql::Expr::Function(d)) if function_name(d) == "DESCRIPTOR" => {
                let mut cols = Vec::new();
                for a in function_args(d)? {
                    match a {
                        Some(sql::Expr::Identifier(i)) => cols.push(i.value.clone()),
                        _ => return plan_err("Third argument must be a descriptor with simple column names for ML_PREDICT function."),
                    }
                }
                cols
            }
            _ => return plan_err("Third argument must be a descriptor with simple column names for ML_PREDICT function."),
        };
        if let Some(config) = arg(3) {
            return plan_err(format!(
                "ML_PREDICT's config `{}` is not supported: its options (async, timeout, max-concurrent-operations, output-mode) govern calls to remote model services; tillflow runs models in process, in order — leave the config out",
                cut(config)
            ));
        }
        if columns.len() != model.input.len() {
            return plan_err(format!(
                "Number of descriptor columns ({}) does not match model input size ({}).",
                columns.len(),
                model.input.len()
            ));
        }
        let available = || {
            rel.schema()
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = |name: &str| {
            rel.schema()
                .fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(name))
        };
        let mut features = Vec::with_capacity(columns.len());
        for (i, (c, input)) in columns.iter().zip(&model.input).enumerate() {
            let Some(col) = find(c) else {
                return plan_err(format!(
                    "Descriptor column '{c}' not found in table columns. Available columns: {}.",
                    available()
                ));
            };
            let f = &rel.schema().fields[col];
            if !assignable(f.data_type, input.data_type) || (f.nullable && !input.nullable) {
                let shown = |t: DataType, nullable: bool| {
                    format!("{t}{}", if nullable { "" } else { " NOT NULL" })
                };
                return plan_err(format!(
                    "Descriptor column type {} cannot be assigned to model input type {} at position {i}",
                    shown(f.data_type, f.nullable),
                    shown(input.data_type, input.nullable)
                ));
            }
            features.push(col);
        }
        if rel.updating() {
            return plan_err(format!(
                "StreamPhysicalMLPredictTableFunction doesn't support consuming update and delete changes which is produced by node {table}: ML_PREDICT only supports append-only tables"
            ));
        }
        let partition = partition_sql
            .iter()
            .map(|e| match e {
                sql::Expr::Identifier(i) => find(&i.value).ok_or_else(|| {
                    SqlError::Plan(format!(
                        "ML_PREDICT: PARTITION BY column `{}` is not a column of {table} ({})",
                        i.value,
                        available()
                    ))
                }),
                other => plan_err(format!(
                    "ML_PREDICT: PARTITION BY takes column names, not `{}`",
                    cut(other)
                )),
            })
            .collect::<Result<Vec<usize>>>()?;
        let mut onnx = None;
        let label = match &model.spec.provider {
            Provider::Online(o) => {
                let Some(col) = find(&o.label) else {
                    return plan_err(format!(
                        "ML_PREDICT: model {} learns from column `{}` ('label'), which {table} does not have (columns: {})",
                        model.name,
                        o.label,
                        available()
                    ));
                };
                let t = rel.schema().fields[col].data_type;
                let fits = if o.algorithm.classifies() {
                    matches!(t, DataType::Boolean) || t.is_numeric()
                } else {
                    t.is_numeric()
                };
                if !fits {
                    return plan_err(format!(
                        "ML_PREDICT: model {}'s label `{}` is {t}: algorithm '{}' learns from {}",
                        model.name,
                        o.label,
                        o.algorithm.name(),
                        if o.algorithm.classifies() {
                            "BOOLEAN (or a number: 0 is false)"
                        } else {
                            "a number"
                        }
                    ));
                }
                Some(col)
            }
            Provider::Onnx(o) => {
                if !partition.is_empty() {
                    return plan_err(format!(
                        "ML_PREDICT: PARTITION BY keeps a model per key for a model that learns on the stream; model {} is an ONNX file, the same for every row: leave PARTITION BY out",
                        model.name
                    ));
                }
                for c in &model.input {
                    if !c.data_type.is_numeric() && c.data_type != DataType::Boolean {
                        return plan_err(format!(
                            "ML_PREDICT: model {}'s INPUT column `{}` is {}: an ONNX model is passed numbers (BOOLEAN as 0 or 1); encode the column as a number first",
                            model.name, c.name, c.data_type
                        ));
                    }
                }
                for c in &model.output {
                    if !(c.data_type.is_numeric() || c.data_type == DataType::Boolean)
                        || matches!(c.data_type, DataType::Decimal(..))
                    {
                        return plan_err(format!(
                            "ML_PREDICT: model {}'s OUTPUT column `{}` is {}: an ONNX model's outputs are read as numbers (DOUBLE, FLOAT, an integer type or BOOLEAN)",
                            model.name, c.name, c.data_type
                        ));
                    }
                }
                let names: Vec<String> = model.input.iter().map(|c| c.name.clone()).collect();
                let loaded =
                    tillflow_ml::onnx::OnnxModel::load(&o.path, &names, model.output.len())
                        .map_err(|e| {
                            SqlError::Plan(format!("ML_PREDICT with model {}: {e}", model.name))
                        })?;
                onnx = Some(std::sync::Arc::new(loaded));
                None
            }
        };
        let input = rel.schema().clone();
        rel.ops.push(PlanNode::new(
            PlanOp::MlPredict {
                model: model.clone(),
                features,
                partition,
                label,
                onnx,
                ttl: self.state_ttl(),
            },
            &input,
            Changelog::Insert,
        ));
        for c in &model.output {
            let mut name = c.name.clone();
            let mut k = 0;
            while rel
                .scope
                .schema
                .fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(&name))
            {
                name = format!("{}{k}", c.name);
                k += 1;
            }
            let mut field = Field::new(name, c.data_type);
            field.nullable = true;
            rel.scope.schema.fields.push(field);
            rel.scope.qualifiers.push(None);
        }
        rel.upsert_key = None;
        Ok(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::assignable;
    use tillflow_types::DataType as T;

    #[test]
    fn implicit_casts_are_flinks_for_the_types_models_take() {
        assert!(assignable(T::Int, T::BigInt));
        assert!(assignable(T::TinyInt, T::SmallInt));
        assert!(assignable(T::Float, T::Double));
        assert!(assignable(T::Int, T::Double));
        assert!(assignable(T::String(Some(5)), T::String(None)));
        assert!(!assignable(T::BigInt, T::Int));
        assert!(!assignable(T::Double, T::Float));
        assert!(!assignable(T::String(None), T::Int));
        assert!(!assignable(T::Int, T::String(None)));
        assert!(!assignable(T::Double, T::Decimal(10, 2)));
    }
}

/// Model DDL and ML_PREDICT planned from scripts: Flink's messages, output naming, the plan.
#[cfg(test)]
mod script_tests {
    use crate::session::Session;
    use std::collections::BTreeMap;

    const TABLE: &str = "CREATE TABLE t (a INT, b STRING, c DOUBLE, y DOUBLE NOT NULL)
        WITH ('connector' = 'datagen', 'number-of-rows' = '1');";
    const MODEL: &str = "CREATE MODEL m INPUT (a BIGINT, b STRING) OUTPUT (y DOUBLE)
        WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'y');";

    fn run(script: &str) -> Result<String, String> {
        let mut s = Session::new();
        match s.execute_script(script, &BTreeMap::new()) {
            Ok(plan) => Ok(plan.printed.join("\n") + &plan.explain()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn err(script: &str) -> String {
        match run(script) {
            Ok(out) => panic!("expected an error, got {out}"),
            Err(e) => e,
        }
    }

    #[test]
    fn model_ddl_is_checked_as_flink_checks_it() {
        assert!(
            err("CREATE MODEL m INPUT (a INT) OUTPUT (p DOUBLE) WITH ();")
                .contains("Model property list can not be empty.")
        );
        assert!(
            err("CREATE MODEL m INPUT (a INT) WITH ('provider' = 'online');")
                .contains("Output column list can not be empty with non-empty input column list.")
        );
        assert!(err(
            "CREATE MODEL m INPUT (a INT, A DOUBLE) OUTPUT (p DOUBLE) WITH ('provider' = 'x');"
        )
        .contains("Duplicate input column name: 'A'."));
        assert!(err(
            "CREATE MODEL m INPUT (a INT) OUTPUT (p DOUBLE) WITH ('provider' = 'openai');"
        )
        .contains("'openai' is not supported"));
        assert!(err(&format!("{MODEL} {MODEL}")).contains("already exists"));
        assert!(run(&format!(
            "{MODEL} CREATE MODEL IF NOT EXISTS m INPUT (q INT) OUTPUT (r DOUBLE) WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'q');"
        ))
        .is_ok());
        assert!(
            err("CREATE MODEL m WITH ('provider' = 'online') AS SELECT 1;")
                .contains("AS SELECT is not supported")
        );
        assert!(
            err("DROP MODEL m;").contains("'default_catalog.default_database.m' doesn't exist.")
        );
        assert!(run(&format!("{MODEL} DROP MODEL m; DROP MODEL IF EXISTS m;")).is_ok());
        assert!(err(
            "CREATE MODEL m INPUT (a INT) OUTPUT (p STRING) WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'y');"
        )
        .contains("is (prediction DOUBLE)"));
        let shown = run(&format!("{MODEL} SHOW MODELS; DESCRIBE MODEL m;")).expect("shown");
        assert!(shown.contains("| model name |") && shown.contains("| is input |"));
    }

    #[test]
    fn ml_predict_appends_the_outputs_renaming_a_clash_and_says_where_it_runs() {
        let out = run(&format!(
            "{TABLE} {MODEL} EXPLAIN SELECT * FROM ML_PREDICT(TABLE t PARTITION BY b, MODEL m, DESCRIPTOR(a, b));"
        ))
        .expect("planned");
        assert!(out.contains("MLPredictTableFunction(invocation=[ML_PREDICT(TABLE(#0) PARTITION BY b, Model(MODEL default_catalog.default_database.m), DESCRIPTOR(_UTF-16LE'a', _UTF-16LE'b'), DEFAULT())]"), "{out}");
        assert!(out.contains("Exchange(distribution=[hash[b]])"), "{out}");
        assert!(out.contains("fields=[a, b, c, y, y0]"), "{out}");
        // the same as TABLE(ML_PREDICT(…)) with named arguments, a global model on one worker
        let out = run(&format!(
            "{TABLE} {MODEL} EXPLAIN SELECT y0 FROM TABLE(ML_PREDICT(INPUT => TABLE t, MODEL => MODEL m, ARGS => DESCRIPTOR(a, b)));"
        ))
        .expect("planned");
        assert!(out.contains("Exchange(distribution=[single])"), "{out}");
    }

    /// ML_PREDICT's rows keep the input's time attribute: a window can follow, and they join
    /// like any table's.
    #[test]
    fn ml_predict_feeds_windows_and_joins() {
        let tables = "CREATE TABLE s (a INT, b STRING, y DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
            WITH ('connector' = 'datagen', 'number-of-rows' = '1');
            CREATE TABLE names (a INT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');";
        let window = run(&format!(
            "{tables} {MODEL} EXPLAIN SELECT window_start, SUM(y0) FROM TABLE(TUMBLE(
               (SELECT * FROM ML_PREDICT(TABLE s, MODEL m, DESCRIPTOR(a, b))), DESCRIPTOR(ts), INTERVAL '1' MINUTE))
             GROUP BY window_start, window_end;"
        ))
        .expect("a window over ML_PREDICT");
        assert!(
            window.contains("WindowAggregate") && window.contains("MLPredictTableFunction"),
            "{window}"
        );
        let join = run(&format!(
            "{tables} {MODEL} EXPLAIN SELECT p.a, n.name, p.y0 FROM ML_PREDICT(TABLE s, MODEL m, DESCRIPTOR(a, b)) AS p
             JOIN names AS n ON p.a = n.a;"
        ))
        .expect("a join with ML_PREDICT");
        assert!(
            join.contains("Join") && join.contains("MLPredictTableFunction"),
            "{join}"
        );
    }

    /// `MODEL m` is read as a model only inside ML_PREDICT: a column named model elsewhere is a
    /// column.
    #[test]
    fn a_column_named_model_stays_a_column() {
        let out = run(
            "CREATE TABLE cars (id INT, make STRING, model STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
             EXPLAIN SELECT id, model, CAST(model AS STRING) AS m2 FROM cars WHERE make IN (model, 'x');",
        );
        assert!(out.is_ok(), "{out:?}");
    }

    #[test]
    fn ml_predict_errors_are_flinks() {
        let q = |args: &str| {
            err(&format!(
                "{TABLE} {MODEL} SELECT * FROM ML_PREDICT({args});"
            ))
        };
        assert!(q("TABLE t, MODEL m, DESCRIPTOR(a)")
            .contains("Number of descriptor columns (1) does not match model input size (2)."));
        assert!(q("TABLE t, MODEL m, DESCRIPTOR(a, nope)").contains(
            "Descriptor column 'nope' not found in table columns. Available columns: a, b, c, y."
        ));
        assert!(q("TABLE t, MODEL m, DESCRIPTOR(c, b)").contains(
            "Descriptor column type DOUBLE cannot be assigned to model input type BIGINT at position 0"
        ));
        assert!(q("TABLE t, MODEL other, DESCRIPTOR(a, b)").contains("Object 'other' not found"));
        assert!(q("TABLE t, m, DESCRIPTOR(a, b)")
            .contains("Argument 'MODEL' expects a model to be passed."));
        assert!(
            q("TABLE t, MODEL m, DESCRIPTOR(a, b), MAP['async', 'true']").contains("in process")
        );
        assert!(q("TABLE t, MODEL m").contains("No match found for function signature ML_PREDICT"));
        assert!(q("TABLE t PARTITION BY a, b, MODEL m, DESCRIPTOR(a, b)")
            .contains("PARTITION BY (a, b)"));
        let two = run(&format!(
            "{TABLE} {MODEL} EXPLAIN SELECT * FROM ML_PREDICT(TABLE t PARTITION BY (a, b), MODEL m, DESCRIPTOR(a, b));"
        ))
        .expect("planned");
        assert!(two.contains("hash[a, b]"), "{two}");
        let updating = err(&format!(
            "{TABLE} {MODEL} SELECT * FROM ML_PREDICT((SELECT CAST(COUNT(*) AS INT) AS a, b, SUM(y) AS y FROM t GROUP BY b), MODEL m, DESCRIPTOR(a, b));"
        ));
        assert!(
            updating.contains("only supports append-only tables"),
            "{updating}"
        );
        let label = err(&format!(
            "{TABLE} CREATE MODEL m INPUT (a BIGINT) OUTPUT (p DOUBLE) WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'units'); SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(a));"
        ));
        assert!(
            label.contains("learns from column `units` ('label')"),
            "{label}"
        );
    }
}
