//! Set operations: `UNION ALL` of two queries (columns matched by position, cast to their common
//! types) into a `Union` node; other set operations are refused naming the workaround.

use super::*;

impl Planner<'_> {
    /// A query body: a SELECT, a nested query, or a `UNION ALL` of two bodies.
    pub(super) fn plan_set(&mut self, body: &SetExpr) -> Result<Rel> {
        let _level = crate::limits::Depth::enter(crate::limits::Nesting::Query)?;
        match body {
            SetExpr::Select(s) => self.plan_select(s),
            SetExpr::Query(inner) => self.plan_query(inner),
            SetExpr::Values(v) => self.values(v),
            SetExpr::SetOperation {
                op: sql::SetOperator::Union,
                set_quantifier,
                left,
                right,
            } => {
                if *set_quantifier != sql::SetQuantifier::All {
                    return plan_err(format!(
                        "UNION without ALL is not supported yet; write UNION ALL (and SELECT DISTINCT over it): `{body}`"
                    ));
                }
                let left = self.plan_set(left)?;
                let right = self.plan_set(right)?;
                self.union_all(left, right, body)
            }
            other => plan_err(format!(
                "{} is not supported yet (SELECT and UNION ALL are)",
                other
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("this query")
            )),
        }
    }

    /// `left UNION ALL right`: the columns are matched by position, named as the left side's and
    /// cast to their common types; a column is a time attribute when it is one on both sides.
    pub(super) fn union_all(
        &mut self,
        mut left: Rel,
        mut right: Rel,
        body: &SetExpr,
    ) -> Result<Rel> {
        left.finish()?;
        right.finish()?;
        let (nl, nr) = (left.schema().len(), right.schema().len());
        if nl != nr {
            return plan_err(format!(
                "UNION ALL of {nl} and {nr} columns: both sides need the same number: `{body}`"
            ));
        }
        let mut fields = Vec::with_capacity(nl);
        for (i, (l, r)) in left
            .schema()
            .fields
            .iter()
            .zip(&right.schema().fields)
            .enumerate()
        {
            let Some(ty) = DataType::common(l.data_type, r.data_type) else {
                return plan_err(format!(
                    "UNION ALL column {} (`{}`): {} and {} have no common type: `{body}`",
                    i + 1,
                    l.name,
                    l.data_type,
                    r.data_type
                ));
            };
            let time = if l.time == r.time {
                l.time
            } else {
                TimeAttribute::None
            };
            fields.push(Field {
                name: l.name.clone(),
                data_type: ty,
                nullable: true,
                time,
            });
        }
        for side in [&mut left, &mut right] {
            let cast = side
                .schema()
                .fields
                .iter()
                .zip(&fields)
                .any(|(f, u)| f.data_type != u.data_type);
            if cast {
                let items = side
                    .schema()
                    .fields
                    .iter()
                    .zip(&fields)
                    .enumerate()
                    .map(|(i, (f, u))| {
                        (
                            crate::expr::cast_to(Expr::col(i, f.data_type), u.data_type),
                            u.name.clone(),
                            f.time,
                        )
                    })
                    .collect();
                push_calc(side, None, items);
            }
        }
        let changelog = left.changelog.union(right.changelog);
        let scope = Scope::new(Schema::new(fields), None);
        Ok(Rel::two_input(
            left,
            right,
            TwoInputOp::Union,
            scope,
            changelog,
        ))
    }
}
