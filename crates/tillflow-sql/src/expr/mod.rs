//! SQL expressions (sqlparser AST) to typed runtime expressions.
//!
//! Names resolve against a [`Scope`] (the columns of the input, with their table qualifiers).
//! Types follow Flink: the wider numeric type wins, integer arithmetic stays integral, a literal
//! `1.5` is a DECIMAL, and the implicit casts Flink inserts become explicit [`Expr::Cast`] nodes.
//! In an aggregate query, an [`AggScope`] maps grouped expressions, aggregate calls and window
//! properties to the columns of the aggregate's output.
//!
//! One file per kind of expression, as DataFusion's `sql/src/expr/`: `structural.rs` (the shape of
//! each expression: columns, CASE, CAST, IN, BETWEEN, LIKE, IS …, and the dispatch),
//! `literals.rs` (constants, intervals, implicit casts, constant folding), `operators.rs` (binary
//! and unary operators with Flink's result types) and `calls.rs` (function calls and aggregates);
//! `crate::nested` reads ROW fields and ARRAY elements.

use crate::error::{plan_err, Result};
use sqlparser::ast::{
    self as sql, BinaryOperator, CastKind, CeilFloorKind, DuplicateTreatment, FunctionArg,
    FunctionArgExpr, FunctionArguments, UnaryOperator, Value as SqlValue,
};
use tillflow_runtime::agg::AggKind;
use tillflow_runtime::expr::{BinOp, Expr, UnOp};
use tillflow_runtime::functions::{Func, TimeUnit};
use tillflow_types::temporal::{parse_date, parse_time, parse_timestamp, MICROS_PER_SECOND};
use tillflow_types::{DataType, Field, Schema, TimeAttribute, Value};

mod calls;
mod literals;
mod operators;
mod structural;

pub use calls::{
    collect_aggregates, collect_over_aggregates, function_args, function_name, is_aggregate,
    is_over_aggregate,
};
pub use literals::{cast_to, eval_const, interval_value};
pub use operators::binary;
// helpers the construct files share (`use super::*` in each)
use literals::*;

/// The columns an expression can name.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The columns.
    pub schema: Schema,
    /// The table (alias) each column comes from, for `t.col`.
    pub qualifiers: Vec<Option<String>>,
}

impl Scope {
    /// A scope whose columns all come from `qualifier`.
    pub fn new(schema: Schema, qualifier: Option<String>) -> Self {
        let n = schema.len();
        Scope {
            schema,
            qualifiers: vec![qualifier; n],
        }
    }

    /// Resolves a possibly qualified column name.
    pub fn resolve(&self, parts: &[String]) -> Result<usize> {
        let (qual, name) = match parts {
            [name] => (None, name),
            [.., q, name] => (Some(q), name),
            [] => return plan_err("empty column name"),
        };
        let matches: Vec<usize> = (0..self.schema.len())
            .filter(|&i| {
                let f = &self.schema.fields[i];
                (f.name == *name || f.name.eq_ignore_ascii_case(name))
                    && qual.is_none_or(|q| {
                        self.qualifiers[i]
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(q))
                    })
            })
            .collect();
        let exact: Vec<usize> = matches
            .iter()
            .copied()
            .filter(|&i| self.schema.fields[i].name == *name)
            .collect();
        match (exact.as_slice(), matches.as_slice()) {
            ([i], _) | ([], [i]) => Ok(*i),
            ([], []) if self.schema.fields.is_empty() => plan_err(format!(
                "column `{}` not found: there is no input to read columns from (a SELECT without FROM, or VALUES)",
                parts.join(".")
            )),
            ([], []) => plan_err(format!(
                "column `{}` not found; available columns: {}",
                parts.join("."),
                self.schema.names()
            )),
            _ => plan_err(format!("column `{}` is ambiguous", parts.join("."))),
        }
    }
}

/// Grouped expressions and aggregate calls of an aggregate query, and where they land in its output.
pub struct AggScope<'a> {
    /// The aggregate's input scope.
    pub input: &'a Scope,
    /// Group expressions over the input, with their output column.
    pub groups: Vec<(Expr, usize)>,
    /// Aggregate calls (AST) with their output column and type.
    pub aggs: Vec<(sql::Function, usize, DataType)>,
    /// Output columns of window_start, window_end, window_time, if windowed.
    pub window: Option<(usize, usize, usize)>,
    /// Type of the window columns.
    pub window_type: DataType,
}

/// Converts SQL expressions over a scope.
pub struct Converter<'a> {
    /// Names.
    pub scope: &'a Scope,
    /// Set when converting the SELECT list / HAVING of an aggregate query.
    pub agg: Option<&'a AggScope<'a>>,
}

pub(crate) fn ident_parts(e: &sql::Expr) -> Option<Vec<String>> {
    match e {
        sql::Expr::Identifier(i) => Some(vec![i.value.clone()]),
        sql::Expr::CompoundIdentifier(is) => Some(is.iter().map(|i| i.value.clone()).collect()),
        _ => None,
    }
}

/// The output name Flink gives a select item without an alias.
pub fn derive_name(e: &sql::Expr, position: usize) -> String {
    match ident_parts(e) {
        Some(parts) => parts.last().cloned().unwrap_or_default(),
        None => format!("EXPR${position}"),
    }
}

/// A field for an expression result.
pub fn field_for(name: String, e: &Expr, time: TimeAttribute) -> Field {
    Field {
        name,
        data_type: e.data_type(),
        nullable: true,
        time,
    }
}

impl<'a> Converter<'a> {
    /// A converter over `scope` (no aggregation).
    pub fn new(scope: &'a Scope) -> Self {
        Converter { scope, agg: None }
    }

    fn plain(&self) -> Option<Converter<'a>> {
        self.agg.map(|a| Converter {
            scope: a.input,
            agg: None,
        })
    }

    /// Converts one expression.
    pub fn convert(&self, e: &sql::Expr) -> Result<Expr> {
        let _level = crate::limits::Depth::enter(crate::limits::Nesting::Expression)?;
        if let Some(agg) = self.agg {
            if let sql::Expr::Function(f) = e {
                if let Some((_, col, ty)) = agg.aggs.iter().find(|(a, _, _)| a == f) {
                    return Ok(Expr::col(*col, *ty));
                }
                let name = function_name(f);
                if let Some((ws, we, wt)) = agg.window {
                    for (suffix, col) in [
                        ("_START", ws),
                        ("_END", we),
                        ("_ROWTIME", wt),
                        ("_PROCTIME", wt),
                    ] {
                        if ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
                            .iter()
                            .any(|k| name == format!("{k}{suffix}"))
                        {
                            return Ok(Expr::col(col, agg.window_type));
                        }
                    }
                }
            }
            if let Some(plain) = self.plain() {
                if let Ok(x) = plain.convert(e) {
                    if let Some((_, col)) = agg.groups.iter().find(|(g, _)| *g == x) {
                        return Ok(Expr::col(*col, x.data_type()));
                    }
                    if x.is_constant() {
                        return Ok(x);
                    }
                }
            }
            if let Some(parts) = ident_parts(e) {
                return plan_err(format!(
                    "column `{}` must appear in GROUP BY or be used in an aggregate function",
                    parts.join(".")
                ));
            }
        }
        self.structural(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn conv(sql_text: &str) -> Result<Expr> {
        let scope = Scope::new(
            Schema::new(vec![
                Field::new("qty", DataType::Int),
                Field::new("price", DataType::Double),
                Field::new("channel", DataType::String(None)),
                Field::new("ts", DataType::Timestamp(3)),
                Field::new("amount", DataType::Decimal(10, 2)),
            ]),
            Some("e".into()),
        );
        let e = Parser::new(&GenericDialect {})
            .try_with_sql(sql_text)
            .unwrap()
            .parse_expr()
            .unwrap();
        Converter::new(&scope).convert(&e)
    }

    #[test]
    fn types_follow_flink() {
        assert_eq!(conv("qty * price").unwrap().data_type(), DataType::Double);
        assert_eq!(conv("qty * 2").unwrap().data_type(), DataType::Int);
        assert_eq!(
            conv("qty * 1.5").unwrap().data_type(),
            DataType::Decimal(12, 1)
        );
        assert_eq!(
            conv("amount + amount").unwrap().data_type(),
            DataType::Decimal(11, 2)
        );
        assert_eq!(
            conv("e.ts - INTERVAL '5' SECOND").unwrap().data_type(),
            DataType::Timestamp(3)
        );
        assert_eq!(
            conv("COALESCE(channel, 'x')").unwrap().data_type(),
            DataType::String(None)
        );
        assert_eq!(
            conv("CAST(qty AS BIGINT)").unwrap().data_type(),
            DataType::BigInt
        );
        assert_eq!(
            conv("FLOOR(ts TO HOUR)").unwrap().data_type(),
            DataType::Timestamp(3)
        );
        assert_eq!(
            conv("EXTRACT(HOUR FROM ts)").unwrap().data_type(),
            DataType::BigInt
        );
        assert_eq!(
            conv("ts > '2024-03-01 00:00:00'").unwrap().data_type(),
            DataType::Boolean
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = conv("nope + 1").unwrap_err().to_string();
        assert!(e.contains("`nope` not found") && e.contains("qty"), "{e}");
        let e = conv("FROB(qty)").unwrap_err().to_string();
        assert!(e.contains("unknown function FROB"), "{e}");
        let e = conv("channel + 1").unwrap_err().to_string();
        assert!(e.contains("cannot apply +"), "{e}");
    }

    #[test]
    fn evaluates_constants() {
        let v = eval_const(&conv("INTERVAL '1' MINUTE").unwrap()).unwrap();
        assert_eq!(v, Value::Interval(60 * MICROS_PER_SECOND));
        let v = eval_const(&conv("UPPER('ab') || 'c'").unwrap()).unwrap();
        assert!(matches!(v, Value::Str(_)));
    }
}
