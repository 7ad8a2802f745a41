//! `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` in a projection: held as a pending rank until
//! the outer query's `rn <= N` gives the limit, then planned by the `rank` rule.

use super::*;

/// Recognizes `rn <= N`, `rn < N`, `rn = 1` (and the mirrored forms) on the rank column.
pub(super) fn rank_limit(e: &sql::Expr, scope: &Scope, rn_col: usize) -> Option<usize> {
    let sql::Expr::BinaryOp { left, op, right } = e else {
        return None;
    };
    let is_rn = |x: &sql::Expr| -> bool {
        let parts = match x {
            sql::Expr::Identifier(i) => vec![i.value.clone()],
            sql::Expr::CompoundIdentifier(is) => is.iter().map(|i| i.value.clone()).collect(),
            _ => return false,
        };
        scope.resolve(&parts).ok() == Some(rn_col)
    };
    let num = |x: &sql::Expr| -> Option<i64> {
        match x {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::Number(n, _) => n.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    };
    use sql::BinaryOperator as B;
    let (op, n) = if is_rn(left) {
        (op.clone(), num(right)?)
    } else if is_rn(right) {
        let flipped = match op {
            B::Gt => B::Lt,
            B::GtEq => B::LtEq,
            B::Eq => B::Eq,
            _ => return None,
        };
        (flipped, num(left)?)
    } else {
        return None;
    };
    match op {
        B::LtEq if n >= 1 => Some(n as usize),
        B::Lt if n >= 2 => Some(n as usize - 1),
        B::Eq if n == 1 => Some(1),
        _ => None,
    }
}

impl Planner<'_> {
    pub(super) fn plan_rank_projection(
        &mut self,
        s: &sql::Select,
        mut rel: Rel,
        rank_pos: usize,
    ) -> Result<Rel> {
        let (f, rn_name) = match &s.projection[rank_pos] {
            SelectItem::UnnamedExpr(sql::Expr::Function(f)) => (f, format!("EXPR${rank_pos}")),
            SelectItem::ExprWithAlias {
                expr: sql::Expr::Function(f),
                alias,
            } => (f, alias.value.clone()),
            _ => return plan_err("unsupported ranking item"),
        };
        let name = function_name(f);
        if name == "LEAD" {
            return plan_err(format!(
                "LEAD is not supported in streaming mode, as in Flink 2.3 (\"LEAD Function is not supported in stream mode\"); use LAG: `{f}`"
            ));
        }
        if crate::udf::is_python_aggregate(&name) {
            return plan_err(format!(
                "Python aggregate function {name} over an OVER window is not supported yet (use it in a GROUP BY or a window aggregation): `{f}`"
            ));
        }
        if name != "ROW_NUMBER" {
            return plan_err(format!(
                "{name}() OVER is not supported yet (ROW_NUMBER() is)"
            ));
        }
        let Some(sql::WindowType::WindowSpec(spec)) = &f.over else {
            return plan_err("named windows are not supported");
        };
        let conv = Converter::new(&rel.scope);
        let col_of = |e: &sql::Expr| -> Result<usize> {
            match conv.convert(e)? {
                Expr::Column { index, .. } => Ok(index),
                _ => plan_err(format!(
                    "PARTITION BY / ORDER BY of ROW_NUMBER() must name columns: `{e}`"
                )),
            }
        };
        let partition = spec
            .partition_by
            .iter()
            .map(col_of)
            .collect::<Result<Vec<_>>>()?;
        let mut order = Vec::new();
        for o in &spec.order_by {
            let descending = matches!(o.options.sort, Some(sql::OrderBySort::Desc));
            order.push(SortKey {
                col: col_of(&o.expr)?,
                descending,
                nulls_first: o.options.nulls_first.unwrap_or(!descending),
            });
        }
        if order.is_empty() {
            return plan_err("ROW_NUMBER() needs ORDER BY");
        }
        let window_end = rel
            .window_cols
            .filter(|(ws, we)| partition.contains(ws) && partition.contains(we))
            .map(|(_, we)| we);
        let order_time = match order.as_slice() {
            [k] => Some(rel.schema().fields[k.col].time).filter(|t| *t != TimeAttribute::None),
            _ => None,
        };
        // projection over [input..., rn]
        let n = rel.schema().len();
        let mut ext = rel.scope.clone();
        ext.schema
            .fields
            .push(Field::new(rn_name.clone(), DataType::BigInt));
        ext.qualifiers.push(None);
        let conv_ext = Converter::new(&ext);
        let mut post = Vec::new();
        for (pos, item) in s.projection.iter().enumerate() {
            if pos == rank_pos {
                post.push((
                    Expr::col(n, DataType::BigInt),
                    rn_name.clone(),
                    TimeAttribute::None,
                ));
                continue;
            }
            let mut one = self.projection_items(&rel, std::slice::from_ref(item), &conv_ext)?;
            post.append(&mut one);
        }
        let rn_col = post
            .iter()
            .position(|(e, _, _)| matches!(e, Expr::Column { index, .. } if *index == n))
            .unwrap_or(0);
        let window_cols = rel.window_cols.and_then(|(ws, we)| {
            let pos = |c: usize| {
                post.iter()
                    .position(|(e, _, _)| matches!(e, Expr::Column { index, .. } if *index == c))
            };
            Some((pos(ws)?, pos(we)?))
        });
        let fields = post
            .iter()
            .map(|(e, nm, t)| Field {
                name: nm.clone(),
                data_type: e.data_type(),
                nullable: true,
                time: *t,
            })
            .collect();
        rel.window_cols = window_cols;
        let input = std::mem::replace(&mut rel.scope.schema, Schema::new(Vec::new()));
        rel.scope = Scope {
            schema: Schema::new(fields),
            qualifiers: vec![None; post.len()],
        };
        let window_proctime = window_end.is_some() && rel.window_proctime();
        rel.pending_rank = Some(PendingRank {
            partition,
            order,
            order_time,
            input,
            window_end,
            window_proctime,
            post,
            rn_col,
        });
        Ok(rel)
    }
}
