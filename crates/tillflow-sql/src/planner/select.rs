//! A SELECT: FROM, WHERE, the ranking filter of an outer query, then GROUP BY (see
//! `aggregate.rs`), OVER aggregates, ROW_NUMBER, the projection and DISTINCT.

use super::rank::rank_limit;
use super::*;
use crate::plan::rules::rank::Ranking;

impl Planner<'_> {
    pub(super) fn projection_items(
        &self,
        rel: &Rel,
        items: &[SelectItem],
        conv: &Converter,
    ) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        for (pos, item) in items.iter().enumerate() {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let x = conv.convert(e)?;
                    let t = item_time(e, &x, &conv.scope.schema);
                    out.push((x, derive_name(e, pos), t));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let x = conv.convert(expr)?;
                    let t = item_time(expr, &x, &conv.scope.schema);
                    out.push((x, alias.value.clone(), t));
                }
                SelectItem::Wildcard(_) => {
                    for (i, f) in rel.schema().fields.iter().enumerate() {
                        out.push((Expr::col(i, f.data_type), f.name.clone(), f.time));
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let q = kind.to_string().trim_end_matches(".*").to_owned();
                    let mut any = false;
                    for (i, f) in rel.schema().fields.iter().enumerate() {
                        if rel.scope.qualifiers[i]
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(&q))
                        {
                            out.push((Expr::col(i, f.data_type), f.name.clone(), f.time));
                            any = true;
                        }
                    }
                    if !any {
                        return plan_err(format!("`{q}.*`: no table or alias `{q}` in FROM"));
                    }
                }
                other => return plan_err(format!("unsupported select item `{other}`")),
            }
        }
        Ok(out)
    }

    pub(super) fn plan_select(&mut self, s: &sql::Select) -> Result<Rel> {
        self.begin_ttl_hints(s)?;
        let rel = self.plan_select_block(s);
        let hints = self.end_ttl_hints();
        let rel = rel?;
        hints?;
        Ok(rel)
    }

    /// [`Planner::plan_select`] inside its STATE_TTL hint's scope.
    fn plan_select_block(&mut self, s: &sql::Select) -> Result<Rel> {
        let mut where_sql = s.selection.clone();
        let mut rel = self.plan_from(&s.from, &mut where_sql)?;
        if let Some(rank) = rel.pending_rank.take() {
            let mut parts = Vec::new();
            if let Some(w) = &where_sql {
                conjuncts(w, &mut parts);
            }
            let mut limit = None;
            let mut rest = Vec::new();
            for p in parts {
                match rank_limit(&p, &rel.scope, rank.rn_col) {
                    Some(n) => limit = Some(limit.map_or(n, |l: usize| l.min(n))),
                    None => rest.push(p),
                }
            }
            let Some(limit) = limit else {
                return plan_err(
                    "a ROW_NUMBER() query needs WHERE rn <= N (or rn = 1) in the outer query",
                );
            };
            // does the outer query read the row number? (if not, rank shifts need no updates)
            let conv = Converter::new(&rel.scope);
            let emits_rn = s.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => conv
                    .convert(e)
                    .map(|x| reads_column(&x, rank.rn_col))
                    .unwrap_or(true),
                _ => true,
            });
            let (op, changelog) = crate::plan::rules::rank::ranking(Ranking {
                partition: rank.partition,
                order: rank.order,
                order_time: rank.order_time,
                window_end: rank.window_end,
                window_proctime: rank.window_proctime,
                limit,
                emits_row_number: emits_rn,
                input: rel.changelog,
                ttl: self.state_ttl(),
            });
            let mut node = PlanNode::new(op, &rank.input, changelog);
            let mut ranked = rank.input.clone();
            let rn_name = rank.post.get(rank.rn_col).map(|p| p.1.clone());
            ranked.fields.push(Field::new(
                rn_name.unwrap_or_else(|| "$rn".into()),
                DataType::BigInt,
            ));
            if changelog.is_updating() && limit == 1 {
                node.upsert_key = Some(match &node.op {
                    PlanOp::Rank { partition, .. } | PlanOp::Deduplicate { partition, .. } => {
                        partition.clone()
                    }
                    _ => Vec::new(),
                });
            }
            let key = node.upsert_key.clone();
            rel.ops.push(node);
            rel.changelog = changelog;
            let (names, exprs): (Vec<String>, Vec<Expr>) = rank
                .post
                .iter()
                .map(|(e, n, _)| (n.clone(), e.clone()))
                .unzip();
            let post_key = key.and_then(|key| {
                key.iter()
                    .map(|&k| {
                        exprs
                            .iter()
                            .position(|e| matches!(e, Expr::Column { index, .. } if *index == k))
                    })
                    .collect::<Option<Vec<usize>>>()
            });
            let mut calc = PlanNode::new(
                PlanOp::Calc {
                    filter: None,
                    exprs,
                    names,
                },
                &Schema::new(ranked.fields),
                changelog,
            );
            calc.upsert_key = post_key.clone();
            rel.ops.push(calc);
            rel.upsert_key = post_key;
            where_sql = rest.into_iter().reduce(|a, b| sql::Expr::BinaryOp {
                left: Box::new(a),
                op: sql::BinaryOperator::And,
                right: Box::new(b),
            });
        }
        let group_sql: Vec<sql::Expr> = match &s.group_by {
            GroupByExpr::Expressions(v, mods) if mods.is_empty() => v.clone(),
            other => return plan_err(format!("unsupported `{other}`")),
        };
        let mut aggs = Vec::new();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_aggregates(e, &mut aggs);
            }
        }
        if let Some(h) = &s.having {
            collect_aggregates(h, &mut aggs);
        }
        if !group_sql.is_empty() || !aggs.is_empty() {
            return self.plan_aggregate(s, rel, where_sql.as_ref(), &group_sql, aggs);
        }
        if s.having.is_some() {
            return plan_err("HAVING needs GROUP BY or an aggregate");
        }
        if let Some(w) = rel.pending_window.take() {
            // a window table function without aggregation: assign windows to each row
            let WindowKind::Aligned(kind) = w.kind else {
                return plan_err(
                    "SESSION and COUNT_WINDOW need a GROUP BY window_start, window_end aggregation above them",
                );
            };
            let late = self.late_target(&rel);
            rel.push(
                PlanOp::WindowTableFunction {
                    window: kind,
                    mode: w.mode,
                    time_col: w.time_col,
                    late,
                },
                Changelog::Insert,
                None,
            );
            rel.window_cols = Some((w.base, w.base + 1));
        }
        let conv = Converter::new(&rel.scope);
        let filter = where_sql.as_ref().map(|w| conv.convert(w)).transpose()?;
        if let Some(f) = &filter {
            if f.data_type() != DataType::Boolean {
                return plan_err(format!("WHERE must be a condition, got {}", f.data_type()));
            }
        }
        // aggregates OVER a window of rows: an OVER aggregation
        let mut overs = Vec::new();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_over_aggregates(e, &mut overs);
            }
        }
        if !overs.is_empty() {
            return self.plan_over(s, rel, filter, overs);
        }
        // ROW_NUMBER() OVER (...) in the projection
        let rank_pos = s.projection.iter().position(|i| match i {
            SelectItem::UnnamedExpr(sql::Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: sql::Expr::Function(f),
                ..
            } => f.over.is_some(),
            _ => false,
        });
        if let Some(rp) = rank_pos {
            if let Some(f) = filter {
                let items: Vec<Item> = rel
                    .schema()
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, fl)| (Expr::col(i, fl.data_type), fl.name.clone(), fl.time))
                    .collect();
                push_calc(&mut rel, Some(f), items);
            }
            return self.plan_rank_projection(s, rel, rp);
        }
        let items = self.projection_items(&rel, &s.projection, &conv)?;
        let input_names = super::state_ttl::rel_names(&rel);
        push_calc(&mut rel, filter, items);
        if let Some(sql::Distinct::Distinct) = &s.distinct {
            let n = rel.schema().len();
            let changelog = rel.changelog.aggregated();
            rel.push(
                PlanOp::GroupAggregate {
                    keys: (0..n).collect(),
                    calls: vec![],
                    ttl: self.named_state_ttl(&input_names),
                },
                changelog,
                Some((0..n).collect()),
            );
            rel.window_cols = None;
            for f in rel.scope.schema.fields.iter_mut() {
                f.time = TimeAttribute::None;
            }
        }
        Ok(rel)
    }
}

/// The time attribute of a SELECT item: a column's own, or processing time for `PROCTIME()`, so
/// a view or subquery defining `PROCTIME() AS p` gives a column windows and joins can use, as
/// in Flink (Nexmark's q12: `CREATE VIEW B AS SELECT *, PROCTIME() AS p_time FROM bid`).
fn item_time(e: &sql::Expr, x: &Expr, schema: &Schema) -> TimeAttribute {
    match e {
        sql::Expr::Function(f) if crate::expr::function_name(f) == "PROCTIME" => {
            TimeAttribute::Proctime
        }
        sql::Expr::Nested(inner) => item_time(inner, x, schema),
        _ => time_of(x, schema),
    }
}
