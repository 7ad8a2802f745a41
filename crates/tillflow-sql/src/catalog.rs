//! The catalog: tables (with their connector, physical and full schemas, time attributes and
//! watermark) and views, as `CREATE TABLE` / `CREATE VIEW` define them.

use crate::error::{plan_err, Result, SqlError};
use crate::expr::{Converter, Scope};
use crate::script::{ColumnDef, CreateTable};
use sqlparser::ast::Query;
use std::collections::BTreeMap;
use tillflow_connectors::{Connector, TableSpec};
use tillflow_runtime::expr::Expr;
use tillflow_types::{DataType, Field, Schema, TimeAttribute};

/// A table of the catalog.
#[derive(Clone)]
pub struct TableDef {
    /// Name.
    pub name: String,
    /// What the connector reads and writes (physical columns).
    pub spec: TableSpec,
    /// Its connector.
    pub connector: &'static dyn Connector,
    /// Every column in declared order (physical and computed), with time attributes.
    pub schema: Schema,
    /// For each column of `schema`: how to compute it from the physical row.
    pub column_exprs: Vec<Expr>,
    /// The watermark expression over `schema`, and the rowtime column's name.
    pub watermark: Option<(String, Expr)>,
    /// The `CREATE TABLE` it was made from (without a CTAS query), for `DESCRIBE` and
    /// `SHOW CREATE TABLE`.
    pub ddl: Option<Box<CreateTable>>,
}

impl TableDef {
    /// True when the full schema is the physical schema unchanged (no scan-time computation).
    pub fn is_plain_scan(&self) -> bool {
        self.column_exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e, Expr::Column { index, .. } if *index == i))
            && self.column_exprs.len() == self.spec.schema.len()
    }
}

/// A view: a named query.
#[derive(Clone)]
pub struct ViewDef {
    /// The query.
    pub query: Box<Query>,
    /// Column names given in `CREATE VIEW v (a, b)`.
    pub columns: Vec<String>,
}

/// Tables, views and `SET` options of a session.
#[derive(Default)]
pub struct Catalog {
    tables: BTreeMap<String, TableDef>,
    views: BTreeMap<String, ViewDef>,
    /// User-defined functions by upper-case name.
    functions: BTreeMap<String, crate::udf::FunctionDef>,
    /// Models by upper-case name.
    models: BTreeMap<String, std::sync::Arc<crate::model::ModelDef>>,
    /// `SET` options.
    pub config: BTreeMap<String, String>,
}

fn find<'a, T>(map: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

impl Catalog {
    /// A table by name (exact, then case-insensitive).
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        find(&self.tables, name)
    }

    /// Whether the script runs in batch mode (`SET 'execution.runtime-mode' = 'batch'`).
    pub fn batch(&self) -> bool {
        self.config
            .get("execution.runtime-mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("batch"))
    }

    /// A view by name.
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        find(&self.views, name)
    }

    /// The tables' names (without the hidden tables of OPTIONS hints), sorted.
    pub fn table_names(&self) -> Vec<&str> {
        self.tables
            .keys()
            .map(String::as_str)
            .filter(|n| !n.contains("/*+"))
            .collect()
    }

    /// The views' names, sorted.
    pub fn view_names(&self) -> Vec<&str> {
        self.views.keys().map(String::as_str).collect()
    }

    /// Every table and view name, for messages.
    pub fn names(&self) -> String {
        let mut v: Vec<&str> = self
            .tables
            .keys()
            .chain(self.views.keys())
            .map(String::as_str)
            .filter(|n| !n.contains("/*+")) // hidden tables of OPTIONS hints
            .collect();
        v.sort_unstable();
        if v.is_empty() {
            "none defined".into()
        } else {
            v.join(", ")
        }
    }

    /// The functions and Python settings queries are planned with.
    pub fn functions(&self) -> crate::udf::Functions {
        crate::udf::Functions::new(&self.functions, &self.config)
    }

    /// The user-defined functions, by name.
    pub fn function_defs(&self) -> impl Iterator<Item = &crate::udf::FunctionDef> {
        self.functions.values()
    }

    /// Adds a function (`CREATE FUNCTION`).
    pub fn add_function(
        &mut self,
        def: crate::udf::FunctionDef,
        if_not_exists: bool,
    ) -> Result<()> {
        let key = def.name.to_ascii_uppercase();
        if self.functions.contains_key(&key) {
            if if_not_exists {
                return Ok(());
            }
            return plan_err(format!(
                "function {} already exists (DROP FUNCTION {} first, or CREATE FUNCTION IF NOT EXISTS)",
                def.name, def.name
            ));
        }
        self.functions.insert(key, def);
        Ok(())
    }

    /// Drops a function (`DROP FUNCTION`).
    pub fn drop_function(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if self.functions.remove(&name.to_ascii_uppercase()).is_none() && !if_exists {
            return plan_err(format!(
                "function {name} does not exist (DROP FUNCTION IF EXISTS drops it only if it does)"
            ));
        }
        Ok(())
    }

    /// A model by name (`[default_catalog.][default_database.]name`, any case).
    pub fn model(&self, name: &str) -> Option<&std::sync::Arc<crate::model::ModelDef>> {
        self.models
            .get(&crate::statements::local_name(name).to_ascii_uppercase())
    }

    /// The models, by name.
    pub fn models(&self) -> impl Iterator<Item = &std::sync::Arc<crate::model::ModelDef>> {
        self.models.values()
    }

    /// Adds a model (`CREATE MODEL`).
    pub fn add_model(&mut self, def: crate::model::ModelDef, if_not_exists: bool) -> Result<()> {
        let key = def.name.to_ascii_uppercase();
        if self.models.contains_key(&key) {
            if if_not_exists {
                return Ok(());
            }
            return plan_err(format!(
                "Could not execute CreateModel in path `{}`: model {} already exists (DROP MODEL {} first, or CREATE MODEL IF NOT EXISTS)",
                def.qualified(),
                def.name,
                def.name
            ));
        }
        self.models.insert(key, std::sync::Arc::new(def));
        Ok(())
    }

    /// Drops a model (`DROP MODEL`).
    pub fn drop_model(&mut self, name: &str, if_exists: bool) -> Result<()> {
        let key = crate::statements::local_name(name).to_ascii_uppercase();
        if self.models.remove(&key).is_none() && !if_exists {
            return plan_err(format!(
                "Model with the identifier '{}.{}.{}' doesn't exist.",
                crate::statements::CATALOG,
                crate::statements::DATABASE,
                crate::statements::local_name(name)
            ));
        }
        Ok(())
    }

    /// Adds a view.
    pub fn add_view(&mut self, name: &str, view: ViewDef, if_not_exists: bool) -> Result<()> {
        if self.table(name).is_some() || self.view(name).is_some() {
            if if_not_exists {
                return Ok(());
            }
            return plan_err(format!("`{name}` already exists"));
        }
        self.views.insert(name.to_owned(), view);
        Ok(())
    }

    /// Removes a table or view.
    pub fn drop(&mut self, name: &str, if_exists: bool) -> Result<()> {
        let key = self
            .tables
            .keys()
            .chain(self.views.keys())
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned();
        match key {
            Some(k) => {
                self.tables.remove(&k);
                self.views.remove(&k);
                Ok(())
            }
            None if if_exists => Ok(()),
            None => plan_err(format!("cannot drop `{name}`: no such table or view")),
        }
    }

    /// Adds the hidden table a `/*+ OPTIONS(…) */` hint names: a copy of the base table with the
    /// hint's options merged over its own, validated as DDL options are (errors name the base
    /// table); returns what the user should be told about the options.
    pub fn add_hinted(&mut self, hint: &crate::script::TableHint) -> Result<Vec<String>> {
        let Some(base) = self.table(&hint.base) else {
            return plan_err(if self.view(&hint.base).is_some() {
                format!(
                    "OPTIONS hint on `{}`: it is a view; only tables take dynamic options",
                    hint.base
                )
            } else {
                format!(
                    "OPTIONS hint on `{}`: no such table (known: {})",
                    hint.base,
                    self.names()
                )
            });
        };
        let mut def = base.clone();
        def.name = hint.derived.clone();
        for (k, v) in &hint.options {
            def.spec.options.insert(k.clone(), v.clone());
        }
        let (connector, notices) = tillflow_connectors::validate_noting(&def.spec)?;
        def.connector = connector;
        self.tables.insert(hint.derived.clone(), def);
        Ok(notices)
    }

    /// Adds a table from `CREATE TABLE` (its columns already known); returns what the user
    /// should be told about its options.
    pub fn add_table(
        &mut self,
        ct: &CreateTable,
        default_options: Option<BTreeMap<String, String>>,
    ) -> Result<Vec<String>> {
        if self.table(&ct.name).is_some() || self.view(&ct.name).is_some() {
            if ct.if_not_exists {
                return Ok(vec![]);
            }
            return plan_err(format!("table `{}` already exists", ct.name));
        }
        let (def, notices) = build_table(ct, default_options)?;
        self.tables.insert(ct.name.clone(), def);
        Ok(notices)
    }
}

fn build_table(
    ct: &CreateTable,
    default_options: Option<BTreeMap<String, String>>,
) -> Result<(TableDef, Vec<String>)> {
    let ctx = |m: String| SqlError::Plan(format!("table `{}`: {m}", ct.name));
    let mut seen = std::collections::HashSet::new();
    for c in &ct.columns {
        if !seen.insert(c.name().to_ascii_lowercase()) {
            return Err(ctx(format!("column `{}` is declared twice", c.name())));
        }
    }
    let mut physical = Vec::new();
    let mut metadata = Vec::new();
    for c in &ct.columns {
        match c {
            ColumnDef::Physical {
                name,
                data_type,
                nullable,
            } => physical.push(Field {
                name: name.clone(),
                data_type: *data_type,
                nullable: *nullable,
                time: TimeAttribute::None,
            }),
            ColumnDef::Metadata {
                name,
                key,
                data_type,
                ..
            } => {
                let offered = ct
                    .options
                    .get("connector")
                    .and_then(|c| tillflow_connectors::connector(c))
                    .map(|c| c.metadata())
                    .unwrap_or(&[]);
                let Some((_, ty)) = offered.iter().find(|(k, _)| k == key) else {
                    return Err(ctx(format!(
                        "metadata column `{name}`: key '{key}' is not available from this connector{}",
                        if offered.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (available: {})",
                                offered.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                            )
                        }
                    )));
                };
                metadata.push((name.clone(), key.clone(), *ty, *data_type));
            }
            ColumnDef::Computed { .. } => {}
        }
    }
    let physical = Schema::new(physical);
    let mut meta_index = 0;
    let phys_scope = Scope::new(physical.clone(), Some(ct.name.clone()));
    let conv = Converter::new(&phys_scope);
    let mut fields = Vec::new();
    let mut exprs = Vec::new();
    let mut p = 0;
    for c in &ct.columns {
        match c {
            ColumnDef::Physical { .. } => {
                let f = physical.fields[p].clone();
                exprs.push(Expr::col(p, f.data_type));
                fields.push(f);
                p += 1;
            }
            ColumnDef::Computed { name, expr } => {
                let e = conv
                    .convert(expr)
                    .map_err(|err| ctx(format!("computed column `{name}`: {err}")))?;
                let is_proctime = matches!(expr.as_ref(), sqlparser::ast::Expr::Function(f) if crate::expr::function_name(f) == "PROCTIME");
                fields.push(Field {
                    name: name.clone(),
                    data_type: e.data_type(),
                    nullable: true,
                    time: if is_proctime {
                        TimeAttribute::Proctime
                    } else {
                        TimeAttribute::None
                    },
                });
                exprs.push(e);
            }
            ColumnDef::Metadata { name, .. } => {
                let (_, _, offered, declared) = &metadata[meta_index];
                let col = Expr::col(physical.len() + meta_index, *offered);
                exprs.push(crate::expr::cast_to(col, *declared));
                fields.push(Field {
                    name: name.clone(),
                    data_type: *declared,
                    nullable: true,
                    time: TimeAttribute::None,
                });
                meta_index += 1;
            }
        }
    }
    let mut schema = Schema::new(fields);
    let watermark = match &ct.watermark {
        None => None,
        Some((col, wexpr)) => {
            let Some(i) = schema.index_of(col) else {
                return Err(ctx(format!(
                    "WATERMARK FOR `{col}`: no such column (columns: {})",
                    schema.names()
                )));
            };
            let ty = schema.fields[i].data_type;
            if !matches!(ty, DataType::Timestamp(p) | DataType::TimestampLtz(p) if p <= 3) {
                return Err(ctx(format!(
                    "WATERMARK FOR `{col}`: the rowtime column must be TIMESTAMP(p) or TIMESTAMP_LTZ(p) with p <= 3, not {ty}"
                )));
            }
            let full_scope = Scope::new(schema.clone(), Some(ct.name.clone()));
            let e = Converter::new(&full_scope)
                .convert(wexpr)
                .map_err(|err| ctx(format!("WATERMARK FOR `{col}`: {err}")))?;
            if !e.data_type().is_timestamp() {
                return Err(ctx(format!(
                    "WATERMARK FOR `{col}`: the watermark expression must be a timestamp, not {}",
                    e.data_type()
                )));
            }
            schema.fields[i].time = TimeAttribute::Rowtime;
            Some((col.clone(), e))
        }
    };
    let options = if ct.has_with {
        ct.options.clone()
    } else {
        default_options.unwrap_or_default()
    };
    let spec = TableSpec {
        name: ct.name.clone(),
        schema: physical,
        options,
        primary_key: ct.primary_key.clone(),
        metadata: metadata
            .iter()
            .map(|(n, k, _, _)| (n.clone(), k.clone()))
            .collect(),
        partition_keys: ct.partition_keys.clone(),
    };
    for k in &ct.primary_key {
        if spec.schema.index_of(k).is_none() {
            return Err(ctx(format!(
                "PRIMARY KEY column `{k}` is not a physical column"
            )));
        }
    }
    let (connector, notices) = tillflow_connectors::validate_noting(&spec)?;
    Ok((
        TableDef {
            name: ct.name.clone(),
            spec,
            connector,
            schema,
            column_exprs: exprs,
            watermark,
            ddl: Some(Box::new(CreateTable {
                query: None,
                ..ct.clone()
            })),
        },
        notices,
    ))
}
