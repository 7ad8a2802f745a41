//! Models of the catalog: `CREATE MODEL`'s definition checked as Flink 2.x checks it (a
//! non-empty `WITH`, INPUT and OUTPUT both or neither, no duplicate column), with the options
//! parsed into [`tillflow_ml::ModelSpec`] at once, so a bad option fails at the statement that
//! gives it; and what `SHOW MODELS`, `SHOW CREATE MODEL` and `DESCRIBE MODEL` print. A model's
//! columns say what `ML_PREDICT` reads (INPUT, in the order of its DESCRIPTOR) and what it adds
//! (OUTPUT); each provider also checks the types it can take.

use std::collections::BTreeMap;
use tillflow_ml::{ModelSpec, Provider};
use tillflow_types::DataType;

/// A column of a model's INPUT or OUTPUT.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelColumn {
    /// Name.
    pub name: String,
    /// Type.
    pub data_type: DataType,
    /// False with NOT NULL.
    pub nullable: bool,
    /// `COMMENT '…'`
    pub comment: Option<String>,
}

/// `CREATE MODEL`: a checked definition.
#[derive(Debug, Clone)]
pub struct ModelDef {
    /// Name (without catalog and database).
    pub name: String,
    /// The columns `ML_PREDICT` reads.
    pub input: Vec<ModelColumn>,
    /// The columns it adds.
    pub output: Vec<ModelColumn>,
    /// The model's `COMMENT`.
    pub comment: Option<String>,
    /// `WITH` options as given.
    pub options: BTreeMap<String, String>,
    /// The options, typed.
    pub spec: ModelSpec,
    /// `CREATE TEMPORARY MODEL`.
    pub temporary: bool,
}

fn numeric(t: DataType) -> bool {
    matches!(
        t,
        DataType::TinyInt
            | DataType::SmallInt
            | DataType::Int
            | DataType::BigInt
            | DataType::Float
            | DataType::Double
            | DataType::Decimal(..)
    )
}

impl ModelDef {
    /// Checks a definition (the error is the statement's message).
    pub fn new(
        name: String,
        input: Vec<ModelColumn>,
        output: Vec<ModelColumn>,
        comment: Option<String>,
        options: BTreeMap<String, String>,
        temporary: bool,
    ) -> Result<ModelDef, String> {
        if options.is_empty() {
            return Err("Model property list can not be empty.".into());
        }
        if !input.is_empty() && output.is_empty() {
            return Err(
                "Output column list can not be empty with non-empty input column list.".into(),
            );
        }
        if input.is_empty() && !output.is_empty() {
            return Err(
                "Input column list can not be empty with non-empty output column list.".into(),
            );
        }
        for (what, cols) in [("input", &input), ("output", &output)] {
            for (i, c) in cols.iter().enumerate() {
                if cols[..i]
                    .iter()
                    .any(|d| d.name.eq_ignore_ascii_case(&c.name))
                {
                    return Err(format!("Duplicate {what} column name: '{}'.", c.name));
                }
            }
        }
        let spec =
            ModelSpec::from_options(&options).map_err(|e| format!("CREATE MODEL {name}: {e}"))?;
        if input.is_empty() {
            return Err(format!(
                "CREATE MODEL {name}: tillflow needs the model's INPUT (…) and OUTPUT (…) columns: they say which columns ML_PREDICT reads and what it adds"
            ));
        }
        if let Provider::Online(o) = &spec.provider {
            if !o.algorithm.is_linear() {
                if let Some(c) = input
                    .iter()
                    .find(|c| matches!(c.data_type, DataType::String(_)))
                {
                    return Err(format!(
                        "CREATE MODEL {name}: INPUT column `{}` is {}: algorithm '{}' reads numbers and BOOLEAN (as 0 or 1) only; STRING features are read (hashed) by 'linear_regression' and 'logistic_regression'",
                        c.name,
                        c.data_type,
                        o.algorithm.name()
                    ));
                }
            }
            for c in &input {
                if !numeric(c.data_type)
                    && !matches!(c.data_type, DataType::Boolean | DataType::String(_))
                {
                    return Err(format!(
                        "CREATE MODEL {name}: INPUT column `{}` is {}: an online model reads numbers, BOOLEAN (as 0 or 1) and STRING (hashed, as river's FeatureHasher)",
                        c.name, c.data_type
                    ));
                }
            }
            let types: Vec<DataType> = output.iter().map(|c| c.data_type).collect();
            let fits = if o.algorithm.classifies() {
                matches!(
                    types.as_slice(),
                    [DataType::Boolean] | [DataType::Boolean, DataType::Double]
                )
            } else {
                matches!(types.as_slice(), [DataType::Double])
            };
            if !fits {
                let want = if o.algorithm.classifies() {
                    "(prediction BOOLEAN[, probability DOUBLE])"
                } else {
                    "(prediction DOUBLE)"
                };
                return Err(format!(
                    "CREATE MODEL {name}: the OUTPUT of algorithm '{}' is {want}, not ({})",
                    o.algorithm.name(),
                    output
                        .iter()
                        .map(|c| format!("{} {}", c.name, c.data_type))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(ModelDef {
            name,
            input,
            output,
            comment,
            options,
            spec,
            temporary,
        })
    }

    /// Flink's qualified name.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}.{}",
            crate::statements::CATALOG,
            crate::statements::DATABASE,
            self.name
        )
    }
}

fn column_ddl(c: &ModelColumn) -> String {
    let mut s = format!(
        "`{}` {}{}",
        c.name.replace('`', "``"),
        c.data_type,
        if c.nullable { "" } else { " NOT NULL" }
    );
    if let Some(cm) = &c.comment {
        s.push_str(&format!(" COMMENT '{}'", cm.replace('\'', "''")));
    }
    s
}

/// `SHOW CREATE MODEL m`.
pub fn show_create_model(m: &ModelDef) -> String {
    let cols = |cs: &[ModelColumn]| {
        cs.iter()
            .map(|c| format!("  {}", column_ddl(c)))
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let mut out = format!(
        "CREATE {}MODEL `{}`.`{}`.`{}`\nINPUT (\n{}\n)\nOUTPUT (\n{}\n)\n",
        if m.temporary { "TEMPORARY " } else { "" },
        crate::statements::CATALOG,
        crate::statements::DATABASE,
        m.name.replace('`', "``"),
        cols(&m.input),
        cols(&m.output)
    );
    if let Some(c) = &m.comment {
        out.push_str(&format!("COMMENT '{}'\n", c.replace('\'', "''")));
    }
    out.push_str("WITH (\n");
    out.push_str(
        &m.options
            .iter()
            .map(|(k, v)| {
                format!(
                    "  '{}' = '{}'",
                    k.replace('\'', "''"),
                    v.replace('\'', "''")
                )
            })
            .collect::<Vec<_>>()
            .join(",\n"),
    );
    out.push_str("\n)\n");
    out
}

/// `DESCRIBE MODEL m`: one row per INPUT column, then per OUTPUT column (Flink's columns:
/// name, type, null, is input, and comment when a column has one).
pub fn describe_model(m: &ModelDef) -> String {
    let comments = m.input.iter().chain(&m.output).any(|c| c.comment.is_some());
    let mut rows = Vec::new();
    for (cols, is_input) in [(&m.input, true), (&m.output, false)] {
        for c in cols {
            let mut row = vec![
                c.name.clone(),
                c.data_type.to_string(),
                if c.nullable { "TRUE" } else { "FALSE" }.to_owned(),
                if is_input { "TRUE" } else { "FALSE" }.to_owned(),
            ];
            if comments {
                row.push(c.comment.clone().unwrap_or_default());
            }
            rows.push(row);
        }
    }
    let headers: &[&str] = if comments {
        &["name", "type", "null", "is input", "comment"]
    } else {
        &["name", "type", "null", "is input"]
    };
    crate::statements::tableau(headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: DataType) -> ModelColumn {
        ModelColumn {
            name: name.into(),
            data_type,
            nullable: true,
            comment: None,
        }
    }

    fn define(algorithm: &str, input: Vec<ModelColumn>) -> Result<ModelDef, String> {
        let options = [
            ("provider", "online"),
            ("algorithm", algorithm),
            ("label", "units"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        ModelDef::new(
            "m".into(),
            input,
            vec![col("units_hat", DataType::Double)],
            None,
            options,
            false,
        )
    }

    #[test]
    fn the_hoeffding_tree_refuses_string_features_the_linear_models_hash_them() {
        let input = || {
            vec![
                col("price", DataType::Double),
                col("promo", DataType::Boolean),
                col("store", DataType::String(None)),
            ]
        };
        let e = define("hoeffding_tree_regressor", input()).unwrap_err();
        assert!(
            e.contains("INPUT column `store` is STRING")
                && e.contains("'hoeffding_tree_regressor' reads numbers and BOOLEAN"),
            "{e}"
        );
        assert!(define("linear_regression", input()).is_ok());
        let mut numeric = input();
        numeric.pop();
        assert!(define("hoeffding_tree_regressor", numeric).is_ok());
    }
}
