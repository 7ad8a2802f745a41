//! SQL expressions over nested values, as Flink reads them: a ROW's field by name
//! (`o.customer.tier`, where the first names that are not a column qualify it), an element by
//! position (`items[1]`, 1-based) and chains of both (`o.items[1].sku`), a MAP's value
//! (`m['k']`), `CARDINALITY(a)`, and the constructors `ROW(x, …)` / `(x, y)` and
//! `ARRAY[x, …]` (elements cast to their common type).

use crate::error::{plan_err, Result};
use crate::expr::{cast_to, Converter};
use sqlparser::ast as sql;
use tillflow_runtime::expr::{Expr, MAX_ARGS};
use tillflow_runtime::functions::Func;
use tillflow_runtime::nested_fn::NestedFn;
use tillflow_types::DataType;

/// `base.name`: field `name` of the ROW `base` (`what` names it in errors).
pub fn field(base: Expr, name: &str, what: &str) -> Result<Expr> {
    let DataType::Row(r) = base.data_type() else {
        return plan_err(format!(
            "`{what}`: `.{name}` needs a ROW, but it is {}",
            base.data_type()
        ));
    };
    let Some(i) = r.index_of(name) else {
        return plan_err(format!(
            "`{what}`: {} has no field `{name}` (fields: {})",
            base.data_type(),
            r.fields
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    Ok(Expr::Call {
        func: Func::Nested(NestedFn::Field(i as u16)),
        args: vec![base],
        ty: r.fields[i].1,
    })
}

/// `a.b.c` where no column is named so: the longest prefix that names a column, then fields.
pub fn field_path(conv: &Converter<'_>, parts: &[String]) -> Option<Result<Expr>> {
    for k in (1..parts.len()).rev() {
        let Ok(i) = conv.scope.resolve(&parts[..k]) else {
            continue;
        };
        let f = &conv.scope.schema.fields[i];
        if !matches!(f.data_type, DataType::Row(_)) {
            continue;
        }
        let what = parts.join(".");
        let mut e = Expr::col(i, f.data_type);
        for name in &parts[k..] {
            e = match field(e, name, &what) {
                Ok(e) => e,
                Err(err) => return Some(Err(err)),
            };
        }
        return Some(Ok(e));
    }
    None
}

/// `base[index]`: an ARRAY's element (1-based) or a MAP's value.
pub fn subscript(conv: &Converter<'_>, base: Expr, index: &sql::Expr, what: &str) -> Result<Expr> {
    match base.data_type() {
        DataType::Map(k, v) => {
            let key = cast_to(conv.convert(index)?, *k);
            Ok(Expr::Call {
                func: Func::MapGet,
                args: vec![base, key],
                ty: *v,
            })
        }
        DataType::Array(t) => {
            let i = conv.convert(index)?;
            if !i.data_type().is_integer() {
                return plan_err(format!(
                    "`{what}`: an array index must be an integer, not {}",
                    i.data_type()
                ));
            }
            Ok(Expr::Call {
                func: Func::Nested(NestedFn::Element),
                args: vec![base, cast_to(i, DataType::BigInt)],
                ty: *t,
            })
        }
        other => plan_err(format!(
            "`{what}`: […] needs an ARRAY or a MAP, but it is {other}"
        )),
    }
}

/// `root` followed by `[i]` and `.field` accesses.
pub fn access_chain(
    conv: &Converter<'_>,
    root: &sql::Expr,
    chain: &[sql::AccessExpr],
    whole: &sql::Expr,
) -> Result<Expr> {
    let what = whole.to_string();
    // `o.items[1]` reads as root `o` with `.items` first: the leading names are one identifier
    let mut parts: Vec<sql::Ident> = match root {
        sql::Expr::Identifier(i) => vec![i.clone()],
        sql::Expr::CompoundIdentifier(is) => is.clone(),
        _ => Vec::new(),
    };
    let mut rest = chain;
    if !parts.is_empty() {
        while let Some((sql::AccessExpr::Dot(sql::Expr::Identifier(i)), tail)) = rest.split_first()
        {
            parts.push(i.clone());
            rest = tail;
        }
    }
    let mut e = if parts.len() > 1 {
        conv.convert(&sql::Expr::CompoundIdentifier(parts))?
    } else {
        conv.convert(root)?
    };
    for a in rest {
        e = match a {
            sql::AccessExpr::Subscript(sql::Subscript::Index { index }) => {
                subscript(conv, e, index, &what)?
            }
            sql::AccessExpr::Dot(sql::Expr::Identifier(name)) => field(e, &name.value, &what)?,
            sql::AccessExpr::Dot(sql::Expr::CompoundIdentifier(names)) => {
                for n in names {
                    e = field(e, &n.value, &what)?;
                }
                e
            }
            _ => {
                return plan_err(format!(
                    "unsupported access in `{what}` (slices are not supported)"
                ))
            }
        };
    }
    Ok(e)
}

/// `ROW(x, …)` (also `(x, y, …)`): a ROW whose fields are named `EXPR$0`, `EXPR$1` … as Flink
/// names them.
pub fn row(conv: &Converter<'_>, items: &[&sql::Expr], what: &str) -> Result<Expr> {
    if items.len() > MAX_ARGS {
        return plan_err(format!(
            "`{what}`: a ROW constructor takes at most {MAX_ARGS} fields"
        ));
    }
    let args = items
        .iter()
        .map(|x| conv.convert(x))
        .collect::<Result<Vec<_>>>()?;
    let types: Vec<DataType> = args.iter().map(Expr::data_type).collect();
    let ty = NestedFn::Row
        .return_type(&types)
        .map_err(crate::error::SqlError::Plan)?;
    Ok(Expr::Call {
        func: Func::Nested(NestedFn::Row),
        args,
        ty,
    })
}

/// `ARRAY[x, …]`: the elements cast to their common type.
pub fn array(conv: &Converter<'_>, items: &[sql::Expr], what: &str) -> Result<Expr> {
    if items.is_empty() {
        return plan_err(format!("`{what}`: an ARRAY constructor needs elements"));
    }
    if items.len() > MAX_ARGS {
        return plan_err(format!(
            "`{what}`: an ARRAY constructor takes at most {MAX_ARGS} elements"
        ));
    }
    let args = items
        .iter()
        .map(|x| conv.convert(x))
        .collect::<Result<Vec<_>>>()?;
    let mut elem = DataType::Null;
    for a in &args {
        elem = DataType::common(elem, a.data_type()).ok_or_else(|| {
            crate::error::SqlError::Plan(format!(
                "`{what}`: the elements have no common type ({elem} and {})",
                a.data_type()
            ))
        })?;
    }
    Ok(Expr::Call {
        func: Func::Nested(NestedFn::Array),
        args: args.into_iter().map(|a| cast_to(a, elem)).collect(),
        ty: DataType::array(elem),
    })
}

/// The nested-value functions by name (`CARDINALITY`, `ROW`), or None for other names.
pub fn function(conv: &Converter<'_>, name: &str, f: &sql::Function) -> Option<Result<Expr>> {
    let what = f.to_string();
    let args = || -> Result<Vec<&sql::Expr>> {
        crate::expr::function_args(f)?
            .into_iter()
            .map(|a| a.ok_or_else(|| crate::error::SqlError::Plan(format!("`*` in `{what}`"))))
            .collect()
    };
    match name {
        "ROW" => Some(args().and_then(|a| row(conv, &a, &what))),
        "CARDINALITY" => Some(args().and_then(|a| {
            let [x] = a.as_slice() else {
                return plan_err(format!("CARDINALITY takes one argument: `{what}`"));
            };
            let x = conv.convert(x)?;
            let ty = NestedFn::Cardinality
                .return_type(&[x.data_type()])
                .map_err(|m| crate::error::SqlError::Plan(format!("{m}: `{what}`")))?;
            Ok(Expr::Call {
                func: Func::Nested(NestedFn::Cardinality),
                args: vec![x],
                ty,
            })
        })),
        "SPLIT" | "ARRAY_CONTAINS" | "ARRAY_POSITION" | "ARRAY_JOIN" | "ARRAY_DISTINCT"
        | "ELEMENT" => Some(args().and_then(|a| collection(conv, name, &a, &what))),
        _ => None,
    }
}

/// The collection functions over ARRAYs (and SPLIT, which makes one).
fn collection(conv: &Converter<'_>, name: &str, a: &[&sql::Expr], what: &str) -> Result<Expr> {
    let (func, arity) = match name {
        "SPLIT" => (NestedFn::Split, 2..=2),
        "ARRAY_CONTAINS" => (NestedFn::ArrayContains, 2..=2),
        "ARRAY_POSITION" => (NestedFn::ArrayPosition, 2..=2),
        "ARRAY_JOIN" => (NestedFn::ArrayJoin, 2..=3),
        "ARRAY_DISTINCT" => (NestedFn::ArrayDistinct, 1..=1),
        _ => (NestedFn::Element1, 1..=1),
    };
    if !arity.contains(&a.len()) {
        let takes = if arity.start() == arity.end() {
            format!("{}", arity.start())
        } else {
            format!("{} to {}", arity.start(), arity.end())
        };
        let s = if *arity.end() == 1 { "" } else { "s" };
        return plan_err(format!("{name} takes {takes} argument{s}: `{what}`"));
    }
    let mut args: Vec<Expr> = a.iter().map(|x| conv.convert(x)).collect::<Result<_>>()?;
    let string = DataType::String(None);
    if func == NestedFn::Split {
        args = args.into_iter().map(|x| cast_to(x, string)).collect();
    } else {
        let elem = match args[0].data_type() {
            DataType::Array(t) => *t,
            other => return plan_err(format!("{name} needs an ARRAY, not {other}: `{what}`")),
        };
        if func == NestedFn::ArrayJoin && !elem.is_string() {
            return plan_err(format!(
                "ARRAY_JOIN needs an ARRAY of strings, not {}: `{what}`",
                args[0].data_type()
            ));
        }
        let rest: Vec<Expr> = args.drain(1..).collect();
        for x in rest {
            let to = if func == NestedFn::ArrayJoin {
                string
            } else {
                elem
            };
            let t = x.data_type();
            if func != NestedFn::ArrayJoin
                && t != DataType::Null
                && t != elem
                && DataType::common(t, elem) != Some(elem)
            {
                return plan_err(format!(
                    "{name}: {t} cannot be compared with the elements ({elem}): `{what}`"
                ));
            }
            args.push(cast_to(x, to));
        }
    }
    let types: Vec<DataType> = args.iter().map(Expr::data_type).collect();
    let ty = func
        .return_type(&types)
        .map_err(|m| crate::error::SqlError::Plan(format!("{m}: `{what}`")))?;
    Ok(Expr::Call {
        func: Func::Nested(func),
        args,
        ty,
    })
}
