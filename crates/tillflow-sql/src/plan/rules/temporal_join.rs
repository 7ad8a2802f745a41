//! Rule: `JOIN t FOR SYSTEM_TIME AS OF l.time` where `l.time` is the left input's event-time
//! attribute is Flink's event-time temporal join against a *versioned table*: a right input with
//! a primary key (a table's `PRIMARY KEY`, or the partition key of a keep-last deduplication
//! view) and an event-time attribute (its version time), with no filter on top of it (Flink
//! refuses one: it would corrupt the versions), joined on equalities that cover its primary
//! key. What does not fit is refused with the reason, as Flink refuses it.

use crate::plan::{PlanNode, PlanOp};
use tillflow_runtime::expr::Expr;
use tillflow_types::{Schema, TimeAttribute};

/// What makes the right input a versioned table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Versioned {
    /// The version-time column (the right input's rowtime).
    pub(crate) time: usize,
    /// The primary-key columns.
    pub(crate) primary_key: Vec<usize>,
}

/// The left column `FOR SYSTEM_TIME AS OF` names when it is an event-time attribute (an
/// event-time temporal join); `None` otherwise (a processing-time lookup).
pub(crate) fn event_time_attribute(at: &Expr, left: &Schema) -> Option<usize> {
    match at {
        Expr::Column { index, .. }
            if left.fields.get(*index).map(|f| f.time) == Some(TimeAttribute::Rowtime) =>
        {
            Some(*index)
        }
        _ => None,
    }
}

/// The primary key of a right input planned as `ops` over a source whose primary key is
/// `source_key` (or whose last node declares an upsert key): followed through projections.
pub(crate) fn primary_key(source_key: Option<Vec<usize>>, ops: &[PlanNode]) -> Option<Vec<usize>> {
    let mut key = source_key;
    for node in ops {
        key = match &node.op {
            PlanOp::Calc { exprs, .. } => key
                .and_then(|k| {
                    k.iter()
                        .map(|&c| {
                            exprs.iter().position(
                                |e| matches!(e, Expr::Column { index, .. } if *index == c),
                            )
                        })
                        .collect()
                })
                .or_else(|| node.upsert_key.clone()),
            PlanOp::WatermarkAssigner { .. } | PlanOp::ChangelogNormalize { .. } => key,
            _ => node.upsert_key.clone(),
        };
    }
    key.filter(|k| !k.is_empty())
}

/// Checks that the right input (`schema`, planned as `ops`, with primary key `key`) is a
/// versioned table joined on `right_keys`; the error says what is missing and what to do.
pub(crate) fn versioned(
    table: &str,
    schema: &Schema,
    key: Option<Vec<usize>>,
    ops: &[PlanNode],
    right_keys: &[usize],
) -> Result<Versioned, String> {
    let times: Vec<usize> = (0..schema.len())
        .filter(|&i| schema.fields[i].time == TimeAttribute::Rowtime)
        .collect();
    let [time] = times[..] else {
        return Err(format!(
            "event-time temporal join: `{table}` is not a versioned table — it has no event-time attribute (as Flink says: an event-time temporal table join requires both a primary key and a row time attribute in the versioned table); declare `WATERMARK FOR <column> AS …` on it, or join FOR SYSTEM_TIME AS OF a processing-time column for a lookup"
        ));
    };
    let Some(primary_key) = key else {
        return Err(format!(
            "event-time temporal join: `{table}` is not a versioned table — it has no primary key (as Flink says: a temporal table join requires a primary key in the versioned table); declare `PRIMARY KEY (…) NOT ENFORCED` on it, or make it a view keeping each key's last row (`ROW_NUMBER() OVER (PARTITION BY k ORDER BY {} DESC) = 1`)",
            schema.fields[time].name
        ));
    };
    for node in ops.iter().rev() {
        match &node.op {
            PlanOp::Calc { filter: Some(_), .. } => {
                return Err(format!(
                    "event-time temporal join: `{table}` filters the versioned table (as Flink says: a filter is not allowed for the right changelog input of an event-time temporal join, it would corrupt the versioning of data); move the condition into the join's ON clause or remove it"
                ))
            }
            PlanOp::Calc { .. } => {}
            _ => break,
        }
    }
    if let Some(&missing) = primary_key.iter().find(|k| !right_keys.contains(k)) {
        return Err(format!(
            "event-time temporal join: the ON clause must compare every primary-key column of the versioned table `{table}` with the left side (as Flink requires), but `{}` is not compared; add `AND <left column> = {}.{}`",
            schema.fields[missing].name, table, schema.fields[missing].name
        ));
    }
    Ok(Versioned { time, primary_key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Changelog;
    use tillflow_types::{DataType, Field};

    fn schema(time: bool) -> Schema {
        let mut t = Field::new("t", DataType::Timestamp(3));
        if time {
            t.time = TimeAttribute::Rowtime;
        }
        Schema::new(vec![Field::new("k", DataType::String(None)), t])
    }

    /// A table with a primary key and a rowtime is versioned when joined on its key; without a
    /// rowtime, a key, or with a filter on top, or joined on other columns, it is refused.
    #[test]
    fn decides_what_is_a_versioned_table() {
        let s = schema(true);
        assert_eq!(
            versioned("r", &s, Some(vec![0]), &[], &[0]),
            Ok(Versioned {
                time: 1,
                primary_key: vec![0]
            })
        );
        assert!(versioned("r", &schema(false), Some(vec![0]), &[], &[0])
            .is_err_and(|e| e.contains("no event-time attribute")));
        assert!(versioned("r", &s, None, &[], &[0]).is_err_and(|e| e.contains("no primary key")));
        assert!(versioned("r", &s, Some(vec![0]), &[], &[1])
            .is_err_and(|e| e.contains("`k` is not compared")));
        let filter = PlanNode::new(
            PlanOp::Calc {
                filter: Some(Expr::col(0, DataType::Boolean)),
                exprs: vec![],
                names: vec![],
            },
            &s,
            Changelog::Insert,
        );
        assert!(versioned("r", &s, Some(vec![0]), &[filter], &[0])
            .is_err_and(|e| e.contains("filter is not allowed")));
    }
}
