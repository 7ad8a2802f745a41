//! Joins: `JOIN … ON` (and `FROM a, b WHERE`) between two planned queries — a regular `Join`,
//! or an `IntervalJoin` when the `interval_join` rule finds time bounds — event-time temporal
//! joins (`FOR SYSTEM_TIME AS OF` the left side's event-time attribute against a versioned
//! table, the `temporal_join` rule) and lookup joins (`FOR SYSTEM_TIME AS OF` a
//! processing-time attribute) against a jdbc/postgres table.

use super::*;

/// Splits a join's `ON` condition over `[left (nl columns)..., right...]` into the equalities
/// between a left and a right column (the key: left columns, right columns counted from 0) and
/// the rest, ANDed (checked per joined row).
pub(super) fn split_join_condition(
    on: Option<&sql::Expr>,
    scope: &Scope,
    nl: usize,
) -> Result<(Vec<usize>, Vec<usize>, Option<Expr>)> {
    let (mut left, mut right, mut residual) = (Vec::new(), Vec::new(), None);
    let Some(on) = on else {
        return Ok((left, right, residual));
    };
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    let conv = Converter::new(scope);
    for p in parts {
        let e = conv.convert(&p)?;
        if e.data_type() != DataType::Boolean && e.data_type() != DataType::Null {
            return plan_err(format!("the join condition `{p}` is not a boolean"));
        }
        if let Some((a, b)) = equi_columns(&e, nl) {
            left.push(a);
            right.push(b - nl);
            continue;
        }
        residual = Some(match residual.take() {
            None => e,
            Some(r) => Expr::Binary {
                op: tillflow_runtime::expr::BinOp::And,
                left: Box::new(r),
                right: Box::new(e),
                ty: DataType::Boolean,
            },
        });
    }
    Ok((left, right, residual))
}

/// `a = b` between a column of the left input (`< nl`) and one of the right, of types whose
/// values encode alike (so equal values give equal keys).
pub(super) fn equi_columns(e: &Expr, nl: usize) -> Option<(usize, usize)> {
    let Expr::Binary {
        op, left, right, ..
    } = e
    else {
        return None;
    };
    if *op != tillflow_runtime::expr::BinOp::Eq {
        return None;
    }
    let (Expr::Column { index: a, ty: ta }, Expr::Column { index: b, ty: tb }) =
        (left.as_ref(), right.as_ref())
    else {
        return None;
    };
    let same =
        ta == tb || (ta.is_integer() && tb.is_integer()) || (ta.is_string() && tb.is_string());
    if !same {
        return None;
    }
    match (*a < nl, *b < nl) {
        (true, false) => Some((*a, *b)),
        (false, true) => Some((*b, *a)),
        _ => None,
    }
}

impl Planner<'_> {
    /// `JOIN t FOR SYSTEM_TIME AS OF left.time …`: an event-time temporal join when `time` is
    /// the left side's event-time attribute, a lookup join otherwise.
    pub(super) fn join_as_of(
        &mut self,
        left: Rel,
        name: &sql::ObjectName,
        alias: Option<&sql::TableAlias>,
        version: &sql::TableVersion,
        kind: JoinType,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        if let sql::TableVersion::ForSystemTimeAsOf(at) = version {
            left.finish()?;
            let at = Converter::new(&left.scope).convert(at)?;
            if let Some(time) = temporal_join::event_time_attribute(&at, left.schema()) {
                return self.temporal_join(left, name, alias, time, kind, on);
            }
        }
        self.lookup_join(left, name, alias, version, kind, on)
    }

    /// An event-time temporal join of `left` (its event-time attribute `left_time`) with the
    /// versioned table or view `name`, as Flink's `TemporalJoin`.
    fn temporal_join(
        &mut self,
        left: Rel,
        name: &sql::ObjectName,
        alias: Option<&sql::TableAlias>,
        left_time: usize,
        kind: JoinType,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        let table_name = name.to_string().replace(['`', '"'], "");
        let left_outer = match kind {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return plan_err(format!(
                    "event-time temporal join with `{table_name}`: only INNER and LEFT joins are supported (as in Flink), not {other:?}"
                ))
            }
        };
        if left.updating() {
            return plan_err(format!(
                "event-time temporal join with `{table_name}`: the left side is an updating result ({}); tillflow joins only an append-only left side with a versioned table — join before aggregating",
                left.changelog.flink()
            ));
        }
        let right = self.named_relation(&table_name, alias)?;
        right.finish()?;
        let source_key = match &right.input {
            RelInput::Table(t) => self.catalog.table(t).map(|def| {
                def.spec
                    .primary_key
                    .iter()
                    .filter_map(|k| def.schema.index_of(k))
                    .collect::<Vec<usize>>()
            }),
            RelInput::Join(_) | RelInput::Values(_) => None,
        };
        let key = temporal_join::primary_key(source_key, &right.ops).or(right.upsert_key.clone());
        // over an append-only source, retractions can only come from a keep-last view
        // replacing a version, never from a delete
        let deletes = match &right.input {
            RelInput::Table(t) => self
                .catalog
                .table(t)
                .is_none_or(|def| def.connector.source_is_changelog(&def.spec)),
            RelInput::Join(_) => true,
            RelInput::Values(_) => false,
        };
        let nl = left.schema().len();
        let mut fields = left.scope.schema.fields.clone();
        // the left side's time attributes stay (windows may follow); the version's do not
        fields.extend(right.scope.schema.fields.iter().cloned().map(|mut f| {
            f.time = TimeAttribute::None;
            f
        }));
        let mut qualifiers = left.scope.qualifiers.clone();
        qualifiers.extend(right.scope.qualifiers.iter().cloned());
        let scope = Scope {
            schema: Schema::new(fields),
            qualifiers,
        };
        let (left_keys, right_keys, residual) = split_join_condition(on, &scope, nl)?;
        if right_keys.is_empty() {
            return plan_err(format!(
                "event-time temporal join with `{table_name}`: the ON clause needs an equality between a column of the left side and the primary key of `{table_name}`"
            ));
        }
        let versioned =
            temporal_join::versioned(&table_name, right.schema(), key, &right.ops, &right_keys)
                .map_err(SqlError::Plan)?;
        let widths = [nl, right.schema().len()];
        let op = TwoInputOp::TemporalJoin {
            left_outer,
            keys: [left_keys, right_keys],
            widths,
            times: [left_time, versioned.time],
            primary_key: versioned.primary_key,
            deletes,
            residual,
            ttl: self.state_ttl(),
        };
        Ok(Rel::two_input(left, right, op, scope, Changelog::Insert))
    }

    /// A regular join of `left` and `right`: the equalities of `on` between a column of each side
    /// become the join key, the rest is checked on each joined row.
    pub(super) fn join(
        &mut self,
        left: Rel,
        right: Rel,
        kind: JoinType,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        left.finish()?;
        right.finish()?;
        let nl = left.schema().len();
        let mut fields = left.scope.schema.fields.clone();
        fields.extend(right.scope.schema.fields.iter().cloned());
        // a regular join's output has no time attributes (as in Flink): no windows after it
        for f in &mut fields {
            f.time = TimeAttribute::None;
        }
        let mut qualifiers = left.scope.qualifiers.clone();
        qualifiers.extend(right.scope.qualifiers.iter().cloned());
        let scope = Scope {
            schema: Schema::new(fields),
            qualifiers,
        };
        let (left_keys, right_keys, residual) = split_join_condition(on, &scope, nl)?;
        let rowtime = |rel: &Rel, offset: usize| -> Vec<usize> {
            (0..rel.schema().len())
                .filter(|&i| rel.schema().fields[i].time == TimeAttribute::Rowtime)
                .map(|i| i + offset)
                .collect()
        };
        let (left_times, right_times) = (rowtime(&left, 0), rowtime(&right, nl));
        let bounds = residual
            .as_ref()
            .and_then(|r| interval_bounds(r, &left_times, &right_times));
        let keys = [left_keys, right_keys];
        let widths = [nl, right.schema().len()];
        let interval = bounds.filter(|_| {
            kind == JoinType::Inner && !left.updating() && !right.updating() && !keys[0].is_empty()
        });
        let changelog = if left.updating() || right.updating() || kind != JoinType::Inner {
            Changelog::All
        } else {
            Changelog::Insert
        };
        let op = match interval {
            Some(b) => TwoInputOp::IntervalJoin {
                keys,
                widths,
                times: [b.left_time, b.right_time - nl],
                // how far a left row may precede / follow a matching right row (ms)
                left_before: -b.lower_ms,
                left_after: b.upper_ms,
                residual,
            },
            None => {
                if bounds.is_some()
                    || residual
                        .as_ref()
                        .is_some_and(|r| bounds_time(r, &left_times, &right_times))
                {
                    self.notices.push(format!(
                        "the join condition `{}` bounds one side's event time by the other's, but only an inner join of append-only inputs on equal keys with a lower and an upper bound runs as an interval join; this one runs as a regular join: both sides stay in state for good, and a row that arrives behind the watermark still joins",
                        on.map(|e| e.to_string()).unwrap_or_default()
                    ));
                }
                TwoInputOp::Join {
                    kind,
                    keys,
                    widths,
                    residual,
                    ttl: [self.input_state_ttl(&left), self.input_state_ttl(&right)],
                }
            }
        };
        Ok(Rel::two_input(left, right, op, scope, changelog))
    }

    /// `JOIN dim FOR SYSTEM_TIME AS OF left.proc [AS d] ON left.k = d.k ...`: the left rows
    /// enriched by looking `dim` up (a jdbc/postgres table), as Flink's lookup join.
    pub(super) fn lookup_join(
        &mut self,
        mut left: Rel,
        name: &sql::ObjectName,
        alias: Option<&sql::TableAlias>,
        version: &sql::TableVersion,
        kind: JoinType,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        let table_name = name.to_string().replace(['`', '"'], "");
        let Some(dim) = self.catalog.table(&table_name) else {
            return plan_err(format!(
                "lookup join: table `{table_name}` not found (known: {})",
                self.catalog.names()
            ));
        };
        let dim = dim.clone();
        let sql::TableVersion::ForSystemTimeAsOf(at) = version else {
            return plan_err(format!(
                "lookup join on `{table_name}`: use FOR SYSTEM_TIME AS OF"
            ));
        };
        if !dim.connector.lookup_source() {
            // Flink 2.3 refuses these too: a table that is not a lookup source can only be
            // joined as a versioned table, on event time
            let flink = if dim.spec.primary_key.is_empty() {
                "Temporal Table Join requires primary key in versioned table, but no primary key can be found"
            } else {
                "Processing-time temporal join is not supported yet"
            };
            return plan_err(format!(
                "processing-time temporal join with `{table_name}`: a '{}' table is not a lookup table, and Flink 2.3 refuses this join too (\"{flink}\"); look up a 'jdbc', 'postgres' or 'redis' table instead, or join `{table_name}` FOR SYSTEM_TIME AS OF an event-time attribute (it then needs a PRIMARY KEY and a WATERMARK), or use a regular join",
                dim.connector.name()
            ));
        }
        left.finish()?;
        // FOR SYSTEM_TIME AS OF must name the left side's processing-time attribute
        let at = Converter::new(&left.scope).convert(at)?;
        let proctime = matches!(&at, Expr::Column { index, .. } if left.scope.schema.fields[*index].time == TimeAttribute::Proctime);
        if !proctime {
            return plan_err(format!(
                "lookup join on `{table_name}`: FOR SYSTEM_TIME AS OF must name a processing-time column of the stream (e.g. `proc AS PROCTIME()`) for a lookup, or the stream's event-time attribute for an event-time temporal join against a versioned table"
            ));
        }
        let left_outer = match kind {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return plan_err(format!(
                    "lookup join on `{table_name}`: only INNER and LEFT joins, not {other:?}"
                ))
            }
        };
        let nl = left.schema().len();
        let qualifier = alias.map(|a| a.name.value.clone()).unwrap_or_else(|| {
            table_name
                .rsplit('.')
                .next()
                .unwrap_or(&table_name)
                .to_owned()
        });
        let dim_fields = dim.spec.schema.fields.clone();
        let mut fields = left.scope.schema.fields.clone();
        fields.extend(dim_fields.iter().cloned().map(|mut f| {
            f.time = TimeAttribute::None;
            f
        }));
        let mut qualifiers = left.scope.qualifiers.clone();
        qualifiers.extend(std::iter::repeat_n(Some(qualifier), dim_fields.len()));
        let scope = Scope {
            schema: Schema::new(fields),
            qualifiers,
        };
        let (left_keys, dim_keys, residual) = split_join_condition(on, &scope, nl)?;
        if dim_keys.is_empty() {
            return plan_err(format!(
                "lookup join on `{table_name}`: the ON clause needs an equality between a column of the stream and a column of `{table_name}` (the lookup key)"
            ));
        }
        // checks the table's lookup options now; it is opened when the job starts
        dim.connector.lookup(&dim.spec, &dim_keys)?;
        let changelog = left.changelog;
        left.ops.push(PlanNode::new(
            PlanOp::LookupJoin {
                target: LookupTarget {
                    spec: dim.spec.clone(),
                    connector: dim.connector,
                    keys: dim_keys,
                },
                left_keys,
                left_outer,
                residual,
            },
            &scope.schema,
            changelog,
        ));
        left.upsert_key = None;
        left.scope = scope;
        left.window_cols = None;
        Ok(left)
    }
}
