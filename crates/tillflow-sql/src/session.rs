//! Running a script: DDL updates the catalog as it is read, and every INSERT (standalone or in a
//! statement set) and bare SELECT of the script is planned into one [`JobPlan`], whose sources
//! are shared between the INSERTs that read the same table.

use crate::catalog::{Catalog, TableDef, ViewDef};
use crate::error::{plan_err, Result, SqlError};
use crate::plan::{Changelog, LateFiles, PlanNode, PlanOp, TwoInputOp};
use crate::planner::{Planner, Rel, RelInput, ValuesInput};
use crate::script::{parse_script, substitute, ColumnDef, CreateTable, Insert, Show, StmtKind};
use std::collections::BTreeMap;
use tillflow_connectors::TableSpec;
use tillflow_runtime::expr::Expr;
use tillflow_runtime::job::{Job, SourceTask};
use tillflow_runtime::operator::{
    NodeIdentity, Operator, Output, Pipeline, SharedNode, TwoInputNode,
};
use tillflow_types::{DataType, Schema};

/// A chain of operators of one INSERT (or SELECT) and where it ends.
pub struct Branch {
    /// Operators after the source's scan (or after a join).
    pub ops: Vec<PlanNode>,
    /// Where its rows go.
    pub end: BranchEnd,
    /// Script line of the statement.
    pub line: u64,
}

/// Where a [`Branch`] ends.
pub enum BranchEnd {
    /// A sink table.
    Sink {
        /// The sink table.
        spec: TableSpec,
        /// Its connector.
        connector: &'static dyn tillflow_connectors::Connector,
    },
    /// One side (0 = left, 1 = right) of the join `JobPlan::joins[id]`.
    Join {
        /// Index into [`JobPlan::joins`].
        id: usize,
        /// 0 = left, 1 = right.
        side: usize,
    },
}

/// A join: its operator and the branch its results go down.
pub struct JoinPlan {
    /// The join (or union).
    pub op: PlanNode<TwoInputOp>,
    /// What happens after the join (ends in a sink or another join with a smaller id).
    pub downstream: Branch,
}

/// What a task reads: a table, or literal rows.
pub enum TaskSource {
    /// A catalog table through its connector.
    Table(Box<TableDef>),
    /// The rows of a `VALUES` clause (or a SELECT without FROM).
    Values(ValuesInput),
}

/// All branches reading one source table (or one VALUES clause).
pub struct TaskPlan {
    /// The source.
    pub source: TaskSource,
    /// What every row read goes through first: computed columns, watermark, normalization.
    pub scan: Vec<PlanNode>,
    /// Its INSERTs.
    pub branches: Vec<Branch>,
    /// After how long (µs) without records a split stops holding the watermark back
    /// (`scan.watermark.idle-timeout`, else `table.exec.source.idle-timeout`).
    pub idle_timeout: Option<i64>,
}

/// The job a script describes, before any file or connection is opened.
#[derive(Default)]
pub struct JobPlan {
    /// One task per source table.
    pub tasks: Vec<TaskPlan>,
    /// Joins; a join's downstream only ends in joins planned before it (smaller index).
    pub joins: Vec<JoinPlan>,
    /// Things the user should know (where rows of a table without WITH go, ...).
    pub notices: Vec<String>,
    /// Keep the latest rows of every result table (for the HTTP API); off by default, as it
    /// copies each row once more.
    pub keep_recent_rows: bool,
    /// The script's `SET` options (checkpointing and other job settings).
    pub config: BTreeMap<String, String>,
    /// Batch mode: every source must be bounded, and only final results are written.
    pub batch: bool,
    /// What the script's `SHOW`, `DESCRIBE` and `EXPLAIN` statements print, in order, as
    /// Flink's SQL client prints it (`tillflow run` writes it to standard output).
    pub printed: Vec<String>,
    /// The parallelism `tillflow run --parallelism` asks for (over the script's
    /// `parallelism.default`).
    pub parallelism: Option<usize>,
}

/// A script session: catalog and the job being assembled.
#[derive(Default)]
pub struct Session {
    /// Tables, views and SET options.
    pub catalog: Catalog,
    plan: JobPlan,
    /// The SQLite file that tables without a WITH clause are written to (default `tillflow.db`).
    pub default_store: Option<String>,
    /// The sink options of a bare `SELECT`'s result table: `'connector' = 'print'` when unset
    /// (`tillflow run` prints the rows); the SQL client collects them for its result view.
    pub select_sink: Option<BTreeMap<String, String>>,
}

/// The embedded default store's file when none is configured.
pub const DEFAULT_STORE: &str = "tillflow.db";

/// The changelog a table's source reads: inserts, or (upsert-kafka, debezium-json …) changes.
pub fn source_changelog(t: &TableDef) -> Changelog {
    if !t.connector.source_is_changelog(&t.spec) {
        Changelog::Insert
    } else if t.connector.name() == "upsert-kafka" {
        Changelog::Upsert
    } else {
        Changelog::All
    }
}

/// What every row of table `t` goes through when read: its computed columns (a `Calc` over the
/// physical and metadata columns), its watermark, and the normalization of a changelog source.
fn scan_nodes(
    t: &TableDef,
    idle_timeout: Option<i64>,
    batch: bool,
    ttl: Option<tillflow_runtime::ttl::StateTtl>,
) -> Vec<PlanNode> {
    let mut nodes = Vec::new();
    let changelog = source_changelog(t);
    if !t.is_plain_scan() {
        nodes.push(PlanNode::new(
            PlanOp::Calc {
                filter: None,
                exprs: t.column_exprs.clone(),
                names: t.schema.fields.iter().map(|f| f.name.clone()).collect(),
            },
            &t.spec.schema,
            changelog,
        ));
    }
    // batch mode has no watermarks: every window and timer fires at the end of the input, and
    // no row is late
    if let Some((col, e)) = t.watermark.as_ref().filter(|_| !batch) {
        nodes.push(PlanNode::new(
            PlanOp::WatermarkAssigner {
                expr: e.clone(),
                rowtime: col.clone(),
                idle_timeout,
            },
            &t.schema,
            changelog,
        ));
    }
    if changelog.is_updating() {
        let keys: Vec<usize> = t
            .spec
            .primary_key
            .iter()
            .filter_map(|k| t.schema.index_of(k))
            .collect();
        nodes.push(
            PlanNode::new(
                PlanOp::ChangelogNormalize {
                    keys: keys.clone(),
                    ttl,
                },
                &t.schema,
                Changelog::All,
            )
            .with_upsert_key(keys),
        );
    }
    nodes
}

/// Whether a query column of type `from` may be written to a sink column of type `to` (Flink's
/// implicit, lossless conversions).
fn assignable(from: DataType, to: DataType) -> bool {
    use DataType as T;
    if from == to || from == T::Null || from.same_layout(to) {
        return true;
    }
    let rank = |t: T| match t {
        T::TinyInt => 1,
        T::SmallInt => 2,
        T::Int => 3,
        T::BigInt => 4,
        _ => 0,
    };
    match (from, to) {
        (a, b) if a.is_integer() && b.is_integer() => rank(a) <= rank(b),
        (a, T::Float | T::Double | T::Decimal(..)) if a.is_integer() => true,
        (T::Float, T::Double) => true,
        (T::Decimal(..), T::Decimal(..) | T::Double | T::Float) => true,
        (T::String(_), T::String(_)) => true,
        (T::Timestamp(_), T::Timestamp(_)) | (T::TimestampLtz(_), T::TimestampLtz(_)) => true,
        // as Flink 2.3 writes a processing-time window's bounds into TIMESTAMP(3) columns
        // (Nexmark's q12): in the session time zone
        (T::TimestampLtz(_), T::Timestamp(_)) => true,
        (T::Time(_), T::Time(_)) => true,
        _ => false,
    }
}

impl Session {
    /// A new session.
    pub fn new() -> Self {
        Session::default()
    }

    /// Sets a configuration key before a script runs (`tillflow run --set KEY=VALUE`, as
    /// Flink's `-D`): checked as `SET` checks it; the script's own `SET` overrides it. Returns
    /// the key's notice, if it has one.
    pub fn set(&mut self, key: &str, value: &str) -> Result<Option<String>> {
        let set = crate::config::check_set(key, value)
            .map_err(|err| SqlError::Plan(format!("--set {key}: {err}")))?;
        self.catalog.config.insert(set.key.to_owned(), set.value);
        Ok(set.notice)
    }

    /// Substitutes variables in, parses and executes a script; returns the job it describes.
    pub fn execute_script(
        &mut self,
        text: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<JobPlan> {
        // a statement that fails leaves nothing of the script's job behind (the SQL client goes
        // on with the next statement in the same session)
        let added = self.add_statements(text, vars);
        let plan = std::mem::take(&mut self.plan);
        added.map(|()| plan)
    }

    /// Runs a script's statements against the catalog, adding its queries to the job plan.
    fn add_statements(&mut self, text: &str, vars: &BTreeMap<String, String>) -> Result<()> {
        let text = substitute(text, vars)?;
        let stmts = parse_script(&text)?;
        for st in stmts {
            let at = |e: SqlError| match e {
                SqlError::Plan(m) => SqlError::Plan(format!("statement at line {}: {m}", st.line)),
                other => other,
            };
            self.plan.notices.extend(st.notices.iter().cloned());
            for h in &st.hints {
                let mut notices = self
                    .catalog
                    .add_hinted(h)
                    .map_err(|e| at(SqlError::Plan(e.to_string())))?;
                self.plan.notices.append(&mut notices);
            }
            match st.kind {
                StmtKind::Set { key, value } => {
                    let set = crate::config::check_set(&key, &value)
                        .map_err(|err| at(SqlError::Plan(err.to_string())))?;
                    if let Some(n) = set.notice {
                        self.plan.notices.push(format!("line {}: {n}", st.line));
                    }
                    self.catalog.config.insert(set.key.to_owned(), set.value);
                }
                StmtKind::SetList => {
                    let list = crate::config::listing(&self.catalog.config);
                    self.plan.notices.push(if list.is_empty() {
                        format!("line {}: SET: no keys are set", st.line)
                    } else {
                        format!("line {}: SET: {}", st.line, list.join(", "))
                    });
                }
                StmtKind::Reset { key: None } => self.catalog.config.clear(),
                StmtKind::Reset { key: Some(key) } => {
                    let key = crate::config::check_reset(&key)
                        .map_err(|err| at(SqlError::Plan(err.to_string())))?;
                    self.catalog.config.remove(key);
                }
                StmtKind::CreateTable(ct) => self.create_table(*ct, st.line).map_err(at)?,
                StmtKind::CreateView {
                    name,
                    columns,
                    query,
                    if_not_exists,
                } => {
                    // plan once now so errors surface at the CREATE VIEW
                    let view = ViewDef { query, columns };
                    // (its notices come with the queries that read it)
                    Planner::new(&self.catalog)
                        .plan_query(&view.query)
                        .map_err(at)?;
                    self.catalog
                        .add_view(&name, view, if_not_exists)
                        .map_err(at)?;
                }
                StmtKind::Insert(ins) => self.insert(&ins).map_err(at)?,
                StmtKind::StatementSet(list) => {
                    for ins in &list {
                        self.insert(ins).map_err(at)?;
                    }
                }
                StmtKind::Select(q) => self.select(&q, st.line).map_err(at)?,
                StmtKind::CreateFunction { def, if_not_exists } => {
                    self.catalog.add_function(def, if_not_exists).map_err(at)?
                }
                StmtKind::DropFunction { name, if_exists } => {
                    self.catalog.drop_function(&name, if_exists).map_err(at)?
                }
                StmtKind::CreateModel { def, if_not_exists } => {
                    self.catalog.add_model(*def, if_not_exists).map_err(at)?
                }
                StmtKind::DropModel { name, if_exists } => {
                    self.catalog.drop_model(&name, if_exists).map_err(at)?
                }
                StmtKind::Drop { name, if_exists } => {
                    self.catalog.drop(&name, if_exists).map_err(at)?
                }
                StmtKind::Show(show) => {
                    let text = self.show(&show).map_err(at)?;
                    self.plan.printed.push(text);
                }
                StmtKind::Describe { name, columns_only } => {
                    let text = self.describe(&name, columns_only).map_err(at)?;
                    self.plan.printed.push(text);
                }
                StmtKind::Explain(kind) => {
                    let text = self.explain_statement(*kind, st.line).map_err(at)?;
                    self.plan.printed.push(text);
                }
                StmtKind::Use { catalog, name } => use_statement(catalog, &name).map_err(at)?,
            }
        }
        self.plan.config = self.catalog.config.clone();
        self.plan.batch = self.catalog.batch();
        self.plan.number();
        crate::paths::check(&self.plan)?;
        Ok(())
    }

    /// A bare SELECT: its rows go to a print sink.
    /// What every planned query gets before it joins the job: checks that nothing is left
    /// half-planned, Python calls moved into their operators, and in batch mode the
    /// materialization of final results.
    fn complete(&self, rel: &mut Rel) -> Result<()> {
        rel.finish()?;
        let limits = self
            .catalog
            .functions()
            .limits
            .unwrap_or(crate::udf::DEFAULT_LIMITS);
        crate::plan::rules::python_calc::apply(rel, limits)?;
        if self.catalog.batch() {
            crate::planner::materialize(rel);
        }
        Ok(())
    }

    fn select(&mut self, q: &sqlparser::ast::Query, line: u64) -> Result<()> {
        let mut planner = Planner::new(&self.catalog);
        let mut rel = planner.plan_query(q)?;
        self.plan.notices.append(&mut planner.notices);
        self.complete(&mut rel)?;
        let spec = TableSpec {
            name: format!("select@line{line}"),
            schema: rel.scope.schema.clone(),
            options: self.select_sink.clone().unwrap_or_else(|| {
                [("connector".to_string(), "print".to_string())]
                    .into_iter()
                    .collect()
            }),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        };
        let connector = tillflow_connectors::validate(&spec)?;
        self.add_branch(rel, BranchEnd::Sink { spec, connector }, line);
        Ok(())
    }

    /// `EXPLAIN` of one query or INSERT: planned alone into a job plan of its own (nothing is
    /// added to the script's job), printed as `tillflow explain` prints a script's plan.
    fn explain_statement(&mut self, kind: StmtKind, line: u64) -> Result<String> {
        let outer = std::mem::take(&mut self.plan);
        let planned = match &kind {
            StmtKind::Select(q) => self.select(q, line),
            StmtKind::Insert(ins) => self.insert(ins),
            _ => plan_err("EXPLAIN takes a query or an INSERT"),
        };
        let mut inner = std::mem::replace(&mut self.plan, outer);
        self.plan.notices.append(&mut inner.notices);
        planned?;
        inner.number();
        Ok(inner.explain())
    }

    /// The schema of view `name` (planned), with the column names its definition gives.
    fn view_schema(&mut self, name: &str) -> Result<Option<(Schema, String)>> {
        let Some(v) = self.catalog.view(name).cloned() else {
            return Ok(None);
        };
        let mut planner = Planner::new(&self.catalog);
        let rel = planner.plan_query(&v.query)?;
        let mut schema = rel.scope.schema.clone();
        for (f, n) in schema.fields.iter_mut().zip(&v.columns) {
            f.name = n.clone();
        }
        Ok(Some((schema, v.query.to_string())))
    }

    /// What a `SHOW` statement prints.
    fn show(&mut self, show: &Show) -> Result<String> {
        use crate::statements as s;
        Ok(match show {
            Show::Tables => s::name_list("table name", &s::table_list(&self.catalog)),
            Show::Views => s::name_list("view name", &self.catalog.view_names()),
            Show::Functions { user } => {
                // user-defined functions by their normalized (lower-case) names, as Flink
                let mut names: Vec<String> = self
                    .catalog
                    .function_defs()
                    .map(|d| d.name.to_ascii_lowercase())
                    .collect();
                if !user {
                    names.extend(s::builtin_functions());
                }
                names.sort_unstable();
                names.dedup();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                s::name_list("function name", &names)
            }
            Show::Models => {
                let names: Vec<&str> = self.catalog.models().map(|m| m.name.as_str()).collect();
                s::name_list("model name", &names)
            }
            Show::CreateModel(name) | Show::DescribeModel(name) => {
                let Some(m) = self.catalog.model(name) else {
                    return plan_err(format!(
                        "Model with the identifier '{}.{}.{}' doesn't exist.",
                        s::CATALOG,
                        s::DATABASE,
                        s::local_name(name)
                    ));
                };
                if matches!(show, Show::CreateModel(_)) {
                    crate::model::show_create_model(m)
                } else {
                    crate::model::describe_model(m)
                }
            }
            Show::Catalogs => s::name_list("catalog name", &[s::CATALOG]),
            Show::Databases => s::name_list("database name", &[s::DATABASE]),
            Show::CurrentCatalog => s::name_list("current catalog name", &[s::CATALOG]),
            Show::CurrentDatabase => s::name_list("current database name", &[s::DATABASE]),
            Show::CreateTable(name) => {
                let local = s::local_name(name);
                match self.catalog.table(local) {
                    Some(t) => s::show_create_table(t),
                    None if self.catalog.view(local).is_some() => {
                        return plan_err(format!(
                            "SHOW CREATE TABLE {name}: `{local}` is a view; use SHOW CREATE VIEW"
                        ))
                    }
                    None => {
                        return plan_err(format!(
                            "SHOW CREATE TABLE {name}: no such table (known: {})",
                            self.catalog.names()
                        ))
                    }
                }
            }
            Show::CreateView(name) => {
                let local = s::local_name(name);
                match self.view_schema(local)? {
                    Some((schema, query)) => s::show_create_view(local, &schema, &query),
                    None if self.catalog.table(local).is_some() => {
                        return plan_err(format!(
                            "SHOW CREATE VIEW {name}: `{local}` is a table; use SHOW CREATE TABLE"
                        ))
                    }
                    None => {
                        return plan_err(format!(
                            "SHOW CREATE VIEW {name}: no such view (known: {})",
                            self.catalog.names()
                        ))
                    }
                }
            }
        })
    }

    /// What `DESCRIBE name` (or `SHOW COLUMNS FROM name`) prints.
    fn describe(&mut self, name: &str, columns_only: bool) -> Result<String> {
        let local = crate::statements::local_name(name);
        if let Some(t) = self.catalog.table(local) {
            return Ok(crate::statements::describe_table(t, columns_only));
        }
        match self.view_schema(local)? {
            Some((schema, _)) => Ok(crate::statements::describe_schema(&schema, columns_only)),
            None => plan_err(format!(
                "DESCRIBE {name}: no such table or view (known: {})",
                self.catalog.names()
            )),
        }
    }

    fn default_options(&mut self, table: &str) -> BTreeMap<String, String> {
        let path = self
            .catalog
            .config
            .get("tillflow.default-store.path")
            .cloned()
            .or_else(|| self.default_store.clone())
            .unwrap_or_else(|| DEFAULT_STORE.to_owned());
        self.plan.notices.push(format!(
            "table `{table}` has no WITH clause: its rows go to the embedded SQLite store {path}, table {table} (read it with: sqlite3 {path} 'SELECT * FROM {table}')"
        ));
        [
            ("connector".to_string(), "sqlite".to_string()),
            ("path".to_string(), path),
            ("table-name".to_string(), table.to_string()),
        ]
        .into_iter()
        .collect()
    }

    fn create_table(&mut self, mut ct: CreateTable, line: u64) -> Result<()> {
        let defaults = if ct.has_with {
            None
        } else {
            Some(self.default_options(&ct.name))
        };
        match ct.query.take() {
            None => {
                let mut notices = self.catalog.add_table(&ct, defaults)?;
                self.plan.notices.append(&mut notices);
                Ok(())
            }
            Some(q) => {
                let mut planner = Planner::new(&self.catalog);
                let mut rel = planner.plan_query(&q)?;
                self.plan.notices.append(&mut planner.notices);
                self.complete(&mut rel)?;
                if self.catalog.batch() {
                    crate::planner::materialize(&mut rel);
                }
                if !ct.columns.is_empty() {
                    return plan_err(format!(
                        "CREATE TABLE {} AS SELECT cannot also list columns",
                        ct.name
                    ));
                }
                ct.columns = rel
                    .scope
                    .schema
                    .fields
                    .iter()
                    .map(|f| ColumnDef::Physical {
                        name: f.name.clone(),
                        data_type: f.data_type,
                        nullable: true,
                    })
                    .collect();
                let mut notices = self.catalog.add_table(&ct, defaults)?;
                self.plan.notices.append(&mut notices);
                let Some(t) = self.catalog.table(&ct.name) else {
                    return plan_err(format!("table `{}` was not created", ct.name));
                };
                let (spec, connector) = (t.spec.clone(), t.connector);
                self.check_sink(&rel, &spec, connector)?;
                self.add_branch(rel, BranchEnd::Sink { spec, connector }, line);
                Ok(())
            }
        }
    }

    fn check_sink(
        &self,
        rel: &Rel,
        spec: &TableSpec,
        connector: &'static dyn tillflow_connectors::Connector,
    ) -> Result<()> {
        if rel.updating() && !connector.sink_accepts_changes(spec) {
            return plan_err(format!(
                "table sink `{}` (connector '{}', format '{}') doesn't support consuming update changes, which this query produces (it has a non-windowed GROUP BY or DISTINCT). Use 'format' = 'debezium-json', or a window aggregation",
                spec.name,
                connector.name(),
                spec.option("format").unwrap_or("-")
            ));
        }
        Ok(())
    }

    fn insert(&mut self, ins: &Insert) -> Result<()> {
        let Some(sink) = self.catalog.table(&ins.table) else {
            return plan_err(format!(
                "INSERT INTO `{}`: no such table (known: {})",
                ins.table,
                self.catalog.names()
            ));
        };
        let (spec, connector) = (sink.spec.clone(), sink.connector);
        let mut planner = Planner::new(&self.catalog);
        let mut rel = planner.plan_query(&ins.query)?;
        self.plan.notices.append(&mut planner.notices);
        self.complete(&mut rel)?;
        self.check_sink(&rel, &spec, connector)?;
        // map query columns onto the sink's physical columns
        let sink_schema: &Schema = &spec.schema;
        let targets: Vec<usize> = if ins.columns.is_empty() {
            (0..sink_schema.len()).collect()
        } else {
            ins.columns
                .iter()
                .map(|c| {
                    sink_schema.index_of(c).ok_or_else(|| {
                        SqlError::Plan(format!(
                            "INSERT INTO `{}`: unknown column `{c}` (columns: {})",
                            spec.name,
                            sink_schema.names()
                        ))
                    })
                })
                .collect::<Result<_>>()?
        };
        let q = &rel.scope.schema;
        if q.len() != targets.len() {
            return plan_err(format!(
                "INSERT INTO `{}`: the query has {} columns {} but the sink expects {} {}",
                spec.name,
                q.len(),
                q,
                targets.len(),
                sink_schema
            ));
        }
        let mut exprs: Vec<Expr> = sink_schema
            .fields
            .iter()
            .map(|f| Expr::Literal {
                value: tillflow_types::Value::Null,
                ty: f.data_type,
            })
            .collect();
        let mut changed = targets.len() != sink_schema.len();
        for (qi, &si) in targets.iter().enumerate() {
            let (from, to) = (q.fields[qi].data_type, sink_schema.fields[si].data_type);
            if !assignable(from, to) {
                return plan_err(format!(
                    "INSERT INTO `{}`: column {} `{}` has type {from}, which cannot be written to sink column `{}` of type {to} (add a CAST)",
                    spec.name,
                    qi + 1,
                    q.fields[qi].name,
                    sink_schema.fields[si].name
                ));
            }
            let col = Expr::col(qi, from);
            exprs[si] = if from == to || (from.is_nested() && from.same_layout(to)) {
                col
            } else {
                crate::expr::cast_to(col, to)
            };
            changed |= from != to || qi != si;
        }
        if changed {
            let names = sink_schema.fields.iter().map(|f| f.name.clone()).collect();
            let node = PlanNode::new(
                PlanOp::Calc {
                    filter: None,
                    exprs,
                    names,
                },
                &rel.scope.schema,
                rel.changelog,
            );
            rel.ops.push(node);
        }
        self.add_branch(rel, BranchEnd::Sink { spec, connector }, ins.line);
        Ok(())
    }

    fn add_branch(&mut self, rel: Rel, end: BranchEnd, line: u64) {
        let branch = Branch {
            ops: rel.ops,
            end,
            line,
        };
        match rel.input {
            // every VALUES clause is a source of its own
            RelInput::Values(v) => self.plan.tasks.push(TaskPlan {
                source: TaskSource::Values(*v),
                scan: Vec::new(),
                branches: vec![branch],
                idle_timeout: None,
            }),
            RelInput::Table(name) => {
                match self
                    .plan
                    .tasks
                    .iter_mut()
                    .find(|t| matches!(&t.source, TaskSource::Table(d) if d.name == name))
                {
                    Some(t) => t.branches.push(branch),
                    None => {
                        if let Some(table) = self.catalog.table(&name) {
                            let idle = table
                                .spec
                                .option("scan.watermark.idle-timeout")
                                .or(self
                                    .catalog
                                    .config
                                    .get("table.exec.source.idle-timeout")
                                    .map(String::as_str))
                                .and_then(tillflow_types::temporal::parse_duration_micros)
                                .filter(|d| *d > 0);
                            self.plan.tasks.push(TaskPlan {
                                scan: scan_nodes(
                                    table,
                                    idle,
                                    self.catalog.batch(),
                                    crate::planner::configured_ttl(&self.catalog.config),
                                ),
                                source: TaskSource::Table(Box::new(table.clone())),
                                branches: vec![branch],
                                idle_timeout: idle,
                            });
                        }
                    }
                }
            }
            RelInput::Join(j) => {
                let id = self.plan.joins.len();
                self.plan.joins.push(JoinPlan {
                    op: j.op,
                    downstream: branch,
                });
                self.add_branch(j.left, BranchEnd::Join { id, side: 0 }, line);
                self.add_branch(j.right, BranchEnd::Join { id, side: 1 }, line);
            }
        }
    }
}

/// `USE …`: tillflow's one catalog and database are accepted, anything else is refused naming it.
fn use_statement(catalog: bool, name: &str) -> Result<()> {
    use crate::statements::{CATALOG, DATABASE};
    let ok = if catalog {
        name == CATALOG
    } else {
        name == DATABASE || name == format!("{CATALOG}.{DATABASE}")
    };
    if ok {
        return Ok(());
    }
    plan_err(format!(
        "USE {}{name}: no such {} (tillflow has one catalog, {CATALOG}, with one database, {DATABASE})",
        if catalog { "CATALOG " } else { "" },
        if catalog { "catalog" } else { "database" }
    ))
}

/// Builds operators from plan nodes.
fn build_ops(
    nodes: &[PlanNode],
    splits: usize,
    late: &mut LateFiles,
) -> Result<Vec<Box<dyn Operator>>> {
    nodes.iter().map(|n| n.build(splits, late)).collect()
}

/// Builds a branch's pipeline: opens its sink, or connects it to an already built join node.
fn build_branch(
    b: Branch,
    nodes: &[SharedNode],
    recent: bool,
    late: &mut LateFiles,
) -> Result<Pipeline> {
    let output = match b.end {
        BranchEnd::Sink { spec, connector } => {
            let sink = connector.sink(&spec)?;
            Output::Sink(if recent {
                Box::new(tillflow_connectors::recent::Recent::new(sink, &spec)?)
            } else {
                sink
            })
        }
        BranchEnd::Join { id, side } => match nodes.get(id) {
            Some(n) => Output::Input(n.clone(), side),
            None => return plan_err(format!("internal: join #{id} is built after its input")),
        },
    };
    Ok(Pipeline {
        ops: build_ops(&b.ops, 1, late)?,
        ids: b.ops.iter().map(|n: &PlanNode| n.identity()).collect(),
        output,
    })
}

/// Opens a task's source for a job on `workers` workers (refusing an unbounded one in batch
/// mode).
fn open_source(
    source: &TaskSource,
    batch: bool,
    workers: usize,
) -> Result<Box<dyn tillflow_runtime::operator::Source>> {
    let source: Box<dyn tillflow_runtime::operator::Source> = match source {
        TaskSource::Table(table) => table.connector.source_for_workers(&table.spec, workers)?,
        TaskSource::Values(v) => Box::new(tillflow_runtime::ops::values::ValuesSource::new(
            v.rows.clone(),
            v.schema.clone(),
        )),
    };
    if batch && !source.bounded() {
        return plan_err(format!(
            "batch mode needs bounded inputs, but {} never ends; bound it (e.g. 'scan.bounded.mode' for Kafka) or run in streaming mode",
            source.describe()
        ));
    }
    Ok(source)
}

impl JobPlan {
    /// True when the script has nothing to run (only DDL).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Number of sinks written (one per INSERT or SELECT).
    pub fn sink_count(&self) -> usize {
        self.sink_tables().len()
    }

    /// The tables the job writes (one per INSERT or SELECT), in plan order.
    pub fn sink_tables(&self) -> Vec<&TableSpec> {
        let branches = self
            .joins
            .iter()
            .map(|j| &j.downstream)
            .chain(self.tasks.iter().flat_map(|t| &t.branches));
        branches
            .filter_map(|b| match &b.end {
                BranchEnd::Sink { spec, .. } => Some(spec),
                _ => None,
            })
            .collect()
    }

    /// The plan as text, as Flink's `EXPLAIN` prints it: one tree per sink, from the sink down
    /// to the sources, each node with its changelog mode.
    pub fn explain(&self) -> String {
        crate::plan::explain::explain(self)
    }

    /// Gives every node its id: its position in the plan (joins and what follows them first,
    /// then each source's scan and branches, in script order), the same on every run of a
    /// script.
    fn number(&mut self) {
        let mut next = 0u32;
        let mut id = || {
            next += 1;
            next
        };
        for j in &mut self.joins {
            j.op.id = id();
            for n in &mut j.downstream.ops {
                n.id = id();
            }
        }
        for t in &mut self.tasks {
            for n in &mut t.scan {
                n.id = id();
            }
            for b in &mut t.branches {
                for n in &mut b.ops {
                    n.id = id();
                }
            }
        }
    }

    /// Opens every source and sink and returns the runnable job: on one thread, or with the
    /// keyed part of each path on as many workers as the parallelism says
    /// (`crate::physical`).
    pub fn instantiate(self) -> Result<Job> {
        let (parallelism, max) = crate::physical::parallelism(&self, self.parallelism)?;
        let store = crate::state_backend::open_store(&self.config, parallelism)?;
        let incremental = crate::state_backend::incremental(&self.config);
        let mut job = tillflow_runtime::state::incremental::scoped_tracking(incremental, || {
            tillflow_runtime::state::disk::scoped(store.as_ref(), || self.build(parallelism, max))
        })?;
        job.set_state_store(store);
        job.set_incremental_checkpoints(incremental);
        Ok(job)
    }

    /// Builds the job's operators (with this thread's state store, see `instantiate`).
    fn build(self, parallelism: usize, max: u32) -> Result<Job> {
        if parallelism > 1 {
            let batch = self.batch;
            return crate::physical::instantiate(self, parallelism, max, &mut |s| {
                open_source(s, batch, parallelism)
            });
        }
        let mut late = LateFiles::default();
        let mut nodes: Vec<SharedNode> = Vec::new();
        for j in self.joins {
            let downstream = build_branch(j.downstream, &nodes, self.keep_recent_rows, &mut late)?;
            nodes.push(TwoInputNode::shared(
                j.op.identity(),
                j.op.build()?,
                downstream,
            ));
        }
        let mut tasks = Vec::new();
        for t in self.tasks {
            let source = open_source(&t.source, self.batch, 1)?;
            let mut pipelines = Vec::new();
            for b in t.branches {
                pipelines.push(build_branch(b, &nodes, self.keep_recent_rows, &mut late)?);
            }
            let scan = build_ops(&t.scan, source.splits(), &mut late)?;
            let scan_ids: Vec<NodeIdentity> =
                t.scan.iter().map(|n: &PlanNode| n.identity()).collect();
            let pipeline = if pipelines.len() == 1 {
                let mut p = pipelines.remove(0);
                let (mut ops, mut ids) = (scan, scan_ids);
                ops.append(&mut p.ops);
                ids.append(&mut p.ids);
                Pipeline {
                    ops,
                    ids,
                    output: p.output,
                }
            } else {
                Pipeline {
                    ops: scan,
                    ids: scan_ids,
                    output: Output::Fanout(pipelines),
                }
            };
            tasks.push(SourceTask::new(source, pipeline));
        }
        Ok(Job::new(tasks))
    }
}
