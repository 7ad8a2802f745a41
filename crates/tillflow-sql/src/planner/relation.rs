//! FROM items: tables, views and CTEs by name (with aliases and column aliases), subqueries,
//! window table functions, and the joins between them.

use super::*;

impl Planner<'_> {
    pub(super) fn named_relation(
        &mut self,
        name: &str,
        alias: Option<&sql::TableAlias>,
    ) -> Result<Rel> {
        let qualifier = alias
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| name.rsplit('.').next().unwrap_or(name).to_owned());
        let cte = self.ctes.iter().rposition(|(n, _)| n == name);
        let mut rel = if let Some(i) = cte {
            // the CTE's query sees the CTEs defined before it, not itself nor later ones
            let q = self.ctes[i].1.clone();
            let later = self.ctes.split_off(i);
            let planned = self.plan_query(&q);
            self.ctes.extend(later);
            planned?
        } else if let Some(v) = self.catalog.view(name) {
            let v = v.clone();
            let mut inner = Planner::new(self.catalog);
            let mut rel = inner.plan_query(&v.query)?;
            self.notices.append(&mut inner.notices);
            if !v.columns.is_empty() {
                if v.columns.len() != rel.schema().len() {
                    return plan_err(format!(
                        "view `{name}` names {} columns but its query has {}",
                        v.columns.len(),
                        rel.schema().len()
                    ));
                }
                for (f, n) in rel.scope.schema.fields.iter_mut().zip(&v.columns) {
                    f.name = n.clone();
                }
            }
            rel
        } else if let Some(t) = self.catalog.table(name) {
            Rel {
                input: RelInput::Table(t.name.clone()),
                ops: Vec::new(),
                scope: Scope::new(t.schema.clone(), None),
                changelog: if t.connector.source_is_changelog(&t.spec) {
                    Changelog::All
                } else {
                    Changelog::Insert
                },
                upsert_key: None,
                window_cols: None,
                window_kind: None,
                pending_window: None,
                pending_rank: None,
            }
        } else {
            return plan_err(format!(
                "table or view `{name}` not found (known: {})",
                self.catalog.names()
            ));
        };
        rel.scope.qualifiers = vec![Some(qualifier); rel.schema().len()];
        if let Some(a) = alias {
            if !a.columns.is_empty() {
                if a.columns.len() != rel.schema().len() {
                    return plan_err(format!(
                        "alias `{}` names {} columns but `{name}` has {}",
                        a.name,
                        a.columns.len(),
                        rel.schema().len()
                    ));
                }
                for (f, c) in rel.scope.schema.fields.iter_mut().zip(&a.columns) {
                    f.name = c.name.value.clone();
                }
            }
        }
        Ok(rel)
    }

    pub(super) fn plan_from(
        &mut self,
        from: &[sql::TableWithJoins],
        selection: &mut Option<sql::Expr>,
    ) -> Result<Rel> {
        let Some((first, more)) = from.split_first() else {
            // `SELECT expr, …` without FROM reads one row of no columns
            return Ok(Rel::values(ValuesInput {
                rows: vec![Vec::new()],
                schema: Schema::new(Vec::new()),
            }));
        };
        let mut rel = self.plan_table_with_joins(first)?;
        // `FROM a, b WHERE ...` is an inner join on the WHERE condition
        for twj in more {
            // `FROM t, UNNEST(t.items) AS i(…)`
            if matches!(twj.relation, TableFactor::UNNEST { .. }) && twj.joins.is_empty() {
                rel = self.unnest(rel, &twj.relation, false, None)?;
                continue;
            }
            if lateral_table(&twj.relation).is_some() && twj.joins.is_empty() {
                rel = self.python_table(rel, &twj.relation, false, None)?;
                continue;
            }
            let right = self.plan_table_with_joins(twj)?;
            let on = selection.take();
            rel = self.join(rel, right, JoinType::Inner, on.as_ref())?;
        }
        Ok(rel)
    }

    pub(super) fn plan_table_with_joins(&mut self, twj: &sql::TableWithJoins) -> Result<Rel> {
        let mut rel = self.plan_factor(&twj.relation)?;
        for j in &twj.joins {
            use sql::{JoinConstraint as C, JoinOperator as J};
            let (kind, constraint) = match &j.join_operator {
                J::Join(c) | J::Inner(c) => (JoinType::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinType::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinType::Right, Some(c)),
                J::FullOuter(c) => (JoinType::Full, Some(c)),
                J::CrossJoin(_) => (JoinType::Inner, None),
                other => {
                    return plan_err(format!(
                        "this kind of join is not supported yet: `{j}` ({})",
                        format!("{other:?}").split('(').next().unwrap_or("?")
                    ))
                }
            };
            let on = match constraint {
                None | Some(C::None) => None,
                Some(C::On(e)) => Some(e.clone()),
                Some(_) => {
                    return plan_err(format!(
                        "JOIN ... USING and NATURAL JOIN are not supported yet; write ON a.col = b.col: `{j}`"
                    ))
                }
            };
            if let TableFactor::Table {
                name,
                alias,
                version: Some(version),
                ..
            } = &j.relation
            {
                rel = self.join_as_of(rel, name, alias.as_ref(), version, kind, on.as_ref())?;
                continue;
            }
            // a row joined with what its own columns give: UNNEST, or a Python table function
            let unnest = matches!(j.relation, TableFactor::UNNEST { .. });
            if unnest || lateral_table(&j.relation).is_some() {
                let left_outer = match kind {
                    JoinType::Inner => false,
                    JoinType::Left => true,
                    other if unnest => {
                        return plan_err(format!(
                            "{other:?} JOIN UNNEST is not supported (Flink allows CROSS JOIN and LEFT JOIN … ON TRUE): `{j}`"
                        ))
                    }
                    other => {
                        return plan_err(format!(
                            "{other:?} JOIN LATERAL TABLE is not supported (Flink allows CROSS JOIN, JOIN … ON TRUE and LEFT JOIN … ON TRUE): `{j}`"
                        ))
                    }
                };
                rel = if unnest {
                    self.unnest(rel, &j.relation, left_outer, on.as_ref())?
                } else {
                    self.python_table(rel, &j.relation, left_outer, on.as_ref())?
                };
                continue;
            }
            let right = self.plan_factor(&j.relation)?;
            rel = self.join(rel, right, kind, on.as_ref())?;
        }
        Ok(rel)
    }

    /// A table function's table argument (window functions, ML_PREDICT): `TABLE t` (the token
    /// pass leaves `t`) or a `(SELECT …)` subquery, as Flink takes it, planned; with the name
    /// messages give it.
    pub(super) fn table_argument(
        &mut self,
        data: &sql::Expr,
        function: &str,
    ) -> Result<(String, Rel)> {
        match data {
            sql::Expr::Identifier(i) => Ok((i.value.clone(), self.named_relation(&i.value, None)?)),
            sql::Expr::CompoundIdentifier(is) => {
                let table = is
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join(".");
                let rel = self.named_relation(&table, None)?;
                Ok((table, rel))
            }
            sql::Expr::Subquery(q) => {
                let rel = self.plan_query(q)?;
                rel.finish()?;
                Ok(("(subquery)".to_owned(), rel))
            }
            other => {
                let mut text = other.to_string();
                if text.len() > 200 {
                    let mut end = 200;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                    text.push('…');
                }
                plan_err(format!(
                    "{function}: the first argument must be TABLE name or a (SELECT …) subquery, got `{text}`"
                ))
            }
        }
    }

    pub(super) fn plan_factor(&mut self, relation: &TableFactor) -> Result<Rel> {
        match relation {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => self.named_relation(&name.to_string().replace(['`', '"'], ""), alias.as_ref()),
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut rel = self.plan_query(subquery)?;
                if let Some(a) = alias {
                    if !a.columns.is_empty() && a.columns.len() != rel.schema().len() {
                        return plan_err(format!(
                            "alias `{}` names {} columns but the subquery has {}",
                            a.name,
                            a.columns.len(),
                            rel.schema().len()
                        ));
                    }
                    rel.scope.qualifiers = vec![Some(a.name.value.clone()); rel.schema().len()];
                    for (f, c) in rel.scope.schema.fields.iter_mut().zip(&a.columns) {
                        f.name = c.name.value.clone();
                    }
                    // the VALUES source itself takes the alias' names (its node prints them)
                    if let RelInput::Values(v) = &mut rel.input {
                        if rel.ops.is_empty() {
                            v.schema = rel.scope.schema.clone();
                        }
                    }
                }
                Ok(rel)
            }
            TableFactor::Table {
                name,
                alias,
                args: Some(args),
                ..
            } if name.to_string().eq_ignore_ascii_case("ML_PREDICT") => {
                let mut rel = self.ml_predict(&args.args)?;
                if let Some(a) = alias {
                    rel.scope.qualifiers = vec![Some(a.name.value.clone()); rel.schema().len()];
                }
                Ok(rel)
            }
            TableFactor::TableFunction {
                expr: sql::Expr::Function(f),
                alias,
            } if function_name(f) == "ML_PREDICT" => {
                let args = match &f.args {
                    FunctionArguments::List(l) => l.args.clone(),
                    _ => Vec::new(),
                };
                let mut rel = self.ml_predict(&args)?;
                if let Some(a) = alias {
                    rel.scope.qualifiers = vec![Some(a.name.value.clone()); rel.schema().len()];
                }
                Ok(rel)
            }
            TableFactor::TableFunction { expr, alias } => {
                let mut rel = self.window_tvf(expr)?;
                if let Some(a) = alias {
                    rel.scope.qualifiers = vec![Some(a.name.value.clone()); rel.schema().len()];
                }
                Ok(rel)
            }
            TableFactor::UNNEST { .. } => plan_err(format!(
                "`{relation}` must follow the table whose array it reads: FROM t CROSS JOIN {relation}"
            )),
            other => plan_err(format!("unsupported FROM item `{other}`")),
        }
    }

    /// `VALUES (…), (…)`: literal rows, each column cast to the rows' common type (as Flink
    /// types a VALUES clause), named `EXPR$0`, `EXPR$1` …
    pub(super) fn values(&mut self, v: &sql::Values) -> Result<Rel> {
        let scope = Scope::default();
        let conv = Converter::new(&scope);
        let mut rows: Vec<Vec<Expr>> = Vec::with_capacity(v.rows.len());
        for (r, row) in v.rows.iter().enumerate() {
            let exprs = row
                .iter()
                .map(|e| conv.convert(e))
                .collect::<Result<Vec<Expr>>>()?;
            if let Some(first) = rows.first() {
                if first.len() != exprs.len() {
                    return plan_err(format!(
                        "VALUES row {} has {} columns, the first row {}",
                        r + 1,
                        exprs.len(),
                        first.len()
                    ));
                }
            }
            rows.push(exprs);
        }
        let width = rows.first().map_or(0, Vec::len);
        let mut fields = Vec::with_capacity(width);
        for c in 0..width {
            let mut ty = DataType::Null;
            for (r, row) in rows.iter().enumerate() {
                let t = row[c].data_type();
                ty = DataType::common(ty, t).ok_or_else(|| {
                    SqlError::Plan(format!(
                        "VALUES column {}: row {} is {t}, which has no common type with {ty} of the rows before",
                        c + 1,
                        r + 1
                    ))
                })?;
            }
            fields.push(Field::new(format!("EXPR${c}"), ty));
        }
        for row in &mut rows {
            for (e, f) in row.iter_mut().zip(&fields) {
                if e.data_type() != f.data_type {
                    *e = crate::expr::cast_to(e.clone(), f.data_type);
                }
            }
        }
        Ok(Rel::values(ValuesInput {
            rows,
            schema: Schema::new(fields),
        }))
    }

    /// `left, LATERAL TABLE(f(args)) [AS t(c, …)]` (or `CROSS JOIN …`, `[LEFT] JOIN … ON TRUE`)
    /// with a Python table function `f`: each left row once per row `f` gives for it, with
    /// that row's columns (`f0`, `f1` … unless the alias names them).
    pub(super) fn python_table(
        &mut self,
        mut left: Rel,
        factor: &TableFactor,
        left_outer: bool,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        use tillflow_runtime::python::{codec::wire_tag, PyKind};
        let Some((call, alias)) = lateral_table(factor) else {
            return plan_err(format!("not a LATERAL TABLE: `{factor}`"));
        };
        only_on_true(on, left_outer, factor, "LATERAL TABLE")?;
        left.finish()?;
        let name = crate::expr::function_name(call);
        let Some((functions, def)) = crate::udf::python(&name) else {
            return plan_err(format!(
                "{name} is not a table function: LATERAL TABLE calls a Python table function (CREATE FUNCTION {} AS 'module.function' LANGUAGE PYTHON, its result_types set): `{factor}`",
                call.name
            ));
        };
        let func = crate::udf::resolve(&functions, &def, PyKind::Table)?;
        let conv = Converter::new(&left.scope);
        let mut args = Vec::new();
        for (i, a) in crate::expr::function_args(call)?.into_iter().enumerate() {
            let Some(a) = a else {
                return plan_err(format!(
                    "`*` is not an argument of {}: `{factor}`",
                    def.name
                ));
            };
            let x = conv.convert(a)?;
            if wire_tag(x.data_type()).is_none() {
                return plan_err(format!(
                    "argument {} of Python function {} is {}, which Python functions do not take yet: `{factor}`",
                    i + 1,
                    def.name,
                    x.data_type()
                ));
            }
            args.push(x);
        }
        let mut cols: Vec<(String, DataType)> = func
            .results
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("f{i}"), *t))
            .collect();
        let qualifier = alias.map(|a| a.name.value.clone());
        if let Some(a) = alias {
            if !a.columns.is_empty() {
                if a.columns.len() != cols.len() {
                    return plan_err(format!(
                        "`{factor}` gives {} columns, but the alias names {}",
                        cols.len(),
                        a.columns.len()
                    ));
                }
                for (c, name) in cols.iter_mut().zip(&a.columns) {
                    c.0 = name.name.value.clone();
                }
            }
        }
        let changelog = left.changelog;
        let limits = functions.limits.unwrap_or(crate::udf::DEFAULT_LIMITS);
        left.ops.push(PlanNode::new(
            PlanOp::PythonCorrelate {
                call: crate::plan::PyPlanCall {
                    function: func,
                    args,
                },
                left_outer,
                limits,
            },
            left.schema(),
            changelog,
        ));
        for (name, ty) in cols {
            left.scope.schema.fields.push(Field::new(name, ty));
            left.scope.qualifiers.push(qualifier.clone());
        }
        left.upsert_key = None;
        Ok(left)
    }

    /// `left CROSS JOIN UNNEST(arr) [WITH ORDINALITY] [AS t(c, …)]` (or `LEFT JOIN … ON TRUE`):
    /// the left rows, each once per element of its array, with the element's columns.
    pub(super) fn unnest(
        &mut self,
        mut left: Rel,
        factor: &TableFactor,
        left_outer: bool,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset,
            with_ordinality,
            ..
        } = factor
        else {
            return plan_err(format!("not an UNNEST: `{factor}`"));
        };
        if *with_offset {
            return plan_err(format!(
                "WITH OFFSET is not Flink SQL; write WITH ORDINALITY: `{factor}`"
            ));
        }
        only_on_true(on, left_outer, factor, "UNNEST")?;
        let [arr] = array_exprs.as_slice() else {
            return plan_err(format!(
                "UNNEST of several arrays at once is not supported yet: `{factor}`"
            ));
        };
        left.finish()?;
        let x = Converter::new(&left.scope).convert(arr)?;
        let element = match x.data_type() {
            DataType::Array(t) | DataType::Multiset(t) => *t,
            DataType::Map(..) => {
                return plan_err(format!("UNNEST of a MAP is not supported yet: `{factor}`"))
            }
            other => {
                return plan_err(format!(
                    "UNNEST needs an ARRAY or a MULTISET, but `{arr}` is {other}"
                ))
            }
        };
        let mut cols: Vec<(String, DataType)> = match element {
            DataType::Row(r) => r.fields.clone(),
            t => vec![("f0".to_owned(), t)],
        };
        if *with_ordinality {
            cols.push(("ORDINALITY".to_owned(), DataType::Int));
        }
        let qualifier = alias.as_ref().map(|a| a.name.value.clone());
        if let Some(a) = alias {
            if !a.columns.is_empty() {
                if a.columns.len() != cols.len() {
                    return plan_err(format!(
                        "`{factor}` gives {} columns ({}), but the alias names {}",
                        cols.len(),
                        cols.iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        a.columns.len()
                    ));
                }
                for (c, name) in cols.iter_mut().zip(&a.columns) {
                    c.0 = name.name.value.clone();
                }
            }
        }
        let changelog = left.changelog;
        left.ops.push(PlanNode::new(
            PlanOp::Correlate {
                array: x,
                element,
                left_outer,
                ordinality: *with_ordinality,
            },
            left.schema(),
            changelog,
        ));
        for (name, ty) in cols {
            left.scope.schema.fields.push(Field::new(name, ty));
            left.scope.qualifiers.push(qualifier.clone());
        }
        left.upsert_key = None;
        Ok(left)
    }
}

/// `LATERAL TABLE(f(args)) [AS alias]`: the call and the alias.
fn lateral_table(factor: &TableFactor) -> Option<(&sql::Function, Option<&sql::TableAlias>)> {
    let TableFactor::Function {
        lateral: true,
        name,
        args,
        alias,
        ..
    } = factor
    else {
        return None;
    };
    if !name.to_string().eq_ignore_ascii_case("TABLE") {
        return None;
    }
    match args.as_slice() {
        [sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(sql::Expr::Function(f)))] => {
            Some((f, alias.as_ref()))
        }
        _ => None,
    }
}

/// A join with UNNEST or LATERAL TABLE (`what`) takes no condition but `ON TRUE`, which LEFT
/// JOIN needs.
fn only_on_true(
    on: Option<&sql::Expr>,
    left_outer: bool,
    factor: &TableFactor,
    what: &str,
) -> Result<()> {
    let is_true = |e: &sql::Expr| matches!(e, sql::Expr::Value(v) if matches!(v.value, sql::Value::Boolean(true)));
    match on {
        None if left_outer => plan_err(format!("LEFT JOIN {factor} needs ON TRUE")),
        None => Ok(()),
        Some(e) if is_true(e) => Ok(()),
        Some(e) => plan_err(format!(
            "a join with {what} takes no condition but ON TRUE (filter in WHERE): `ON {e}`"
        )),
    }
}
