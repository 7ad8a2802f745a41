//! What `SHOW`, `DESCRIBE` and `SHOW CREATE` statements print, the way Flink's SQL client prints
//! them: a result table in the client's tableau style (`+----+` borders, cells right-aligned,
//! `N rows in set`, or `Empty set`), or for `SHOW CREATE TABLE|VIEW` (and `EXPLAIN`) the text
//! alone, as the client prints those raw.
//!
//! The built-in functions `SHOW FUNCTIONS` lists come from `docs/functions.md` (the rows marked
//! supported), the one list of what tillflow implements.

use crate::catalog::{Catalog, TableDef};
use crate::script::{ColumnDef, CreateTable};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use tillflow_types::{DataType, Schema, TimeAttribute};

/// tillflow's one catalog.
pub const CATALOG: &str = "default_catalog";
/// tillflow's one database.
pub const DATABASE: &str = "default_database";

/// `rows` under `headers` as Flink's SQL client prints a result: borders, right-aligned cells,
/// then `1 row in set` / `N rows in set`; `Empty set` when there are no rows.
pub fn tableau(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "Empty set\n".to_owned();
    }
    let width = |s: &str| s.chars().count();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| width(c))
                .chain([width(h)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (c, w) in cells.zip(&widths) {
            s.push_str(&format!("| {}{} ", " ".repeat(w - width(c).min(*w)), c));
        }
        s.push_str("|\n");
        s
    };
    let mut out = border.clone();
    out.push_str(&line(&mut headers.iter().copied()));
    out.push_str(&border);
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out.push_str(&border);
    out.push_str(&if rows.len() == 1 {
        "1 row in set\n".to_owned()
    } else {
        format!("{} rows in set\n", rows.len())
    });
    out
}

/// One column of names under `header`.
pub fn name_list(header: &str, names: &[&str]) -> String {
    let rows: Vec<Vec<String>> = names.iter().map(|n| vec![n.to_string()]).collect();
    tableau(&[header], &rows)
}

/// A table name without tillflow's catalog and database in front
/// (`default_catalog.default_database.t` → `t`).
pub fn local_name(name: &str) -> &str {
    name.strip_prefix("default_catalog.default_database.")
        .or_else(|| name.strip_prefix("default_database."))
        .unwrap_or(name)
}

/// The built-in functions tillflow supports, as `docs/functions.md` names them in its rows
/// marked `yes`: sorted, each once.
/// True when `upper` (upper case) names a built-in function.
pub fn is_builtin(upper: &str) -> bool {
    static NAMES: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| builtin_functions().into_iter().collect())
        .contains(upper)
}

pub fn builtin_functions() -> Vec<String> {
    const DOC: &str = include_str!("../../../docs/functions.md");
    const KEYWORDS: &[&str] = &[
        "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "IN", "FROM", "TO", "AS", "BY", "ON",
        "WHEN", "THEN", "ELSE", "END", "DISTINCT", "ALL", "FOR", "WITH", "UNKNOWN",
    ];
    let ident = |w: &str| {
        w.len() > 1
            && w.starts_with(|c: char| c.is_ascii_uppercase())
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    let mut out: Vec<String> = Vec::new();
    for row in DOC.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if !cells.get(2).is_some_and(|c| c.starts_with("yes")) {
            continue;
        }
        let first = cells.get(1).copied().unwrap_or("");
        for span in first.split('`').skip(1).step_by(2) {
            for part in span.split('/') {
                let part = part.trim();
                // `NAME` or `NAME(args…)`
                let head = part.split('(').next().unwrap_or("");
                if ident(head) && (head.len() == part.len() || part.ends_with(')')) {
                    out.push(head.to_owned());
                } else if part.split_whitespace().all(ident) {
                    out.extend(part.split_whitespace().map(str::to_owned));
                }
            }
        }
    }
    out.retain(|n| !KEYWORDS.contains(&n.as_str()));
    out.sort();
    out.dedup();
    out
}

/// `name` in backquotes, as Flink quotes identifiers (a backquote doubled).
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A SQL expression of the DDL as Flink prints it expanded: the table's columns in backquotes.
fn expr_sql(e: &sqlparser::ast::Expr, columns: &[String]) -> String {
    let text = e.to_string();
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, &text).tokenize() else {
        return text;
    };
    let mut out = String::with_capacity(text.len() + 8);
    let sig = |i: usize| {
        tokens[i + 1..]
            .iter()
            .find(|t| !matches!(t, Token::Whitespace(_)))
    };
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Word(w)
                if w.quote_style.is_none()
                    && columns.iter().any(|c| c.eq_ignore_ascii_case(&w.value))
                    && sig(i) != Some(&Token::LParen) =>
            {
                out.push_str(&quote(&w.value))
            }
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// A type as Flink's `DESCRIBE` prints it (the summary form), with the time attribute marker.
fn summary_type(ty: DataType, time: TimeAttribute) -> String {
    match time {
        TimeAttribute::Rowtime => format!("{ty} *ROWTIME*"),
        TimeAttribute::Proctime => format!("{ty} *PROCTIME*"),
        _ => ty.to_string(),
    }
}

/// A type as Flink's `SHOW CREATE TABLE` prints it (the serializable form: `STRING` is
/// `VARCHAR(2147483647)`, `TIMESTAMP_LTZ(p)` is `TIMESTAMP(p) WITH LOCAL TIME ZONE`).
fn serializable_type(ty: DataType) -> String {
    match ty {
        DataType::String(None) => "VARCHAR(2147483647)".to_owned(),
        DataType::TimestampLtz(p) => format!("TIMESTAMP({p}) WITH LOCAL TIME ZONE"),
        DataType::Bytes => "VARBINARY(2147483647)".to_owned(),
        other => other.to_string(),
    }
}

/// The name Flink gives an unnamed primary key: `PK_` and the Java hash code of the list of
/// its column names.
fn primary_key_name(cols: &[String]) -> String {
    let mut h: i32 = 1;
    for c in cols {
        let mut s: i32 = 0;
        for u in c.encode_utf16() {
            s = s.wrapping_mul(31).wrapping_add(i32::from(u));
        }
        h = h.wrapping_mul(31).wrapping_add(s);
    }
    format!("PK_{h}")
}

/// `DESCRIBE t`: name, type, null, key, extras, watermark (and comment unless `columns_only`,
/// Flink's `SHOW COLUMNS`).
pub fn describe_table(t: &TableDef, columns_only: bool) -> String {
    let pk = &t.spec.primary_key;
    let key = format!("PRI({})", pk.join(", "));
    let names: Vec<String> = t.schema.fields.iter().map(|f| f.name.clone()).collect();
    let ddl: Option<&CreateTable> = t.ddl.as_deref();
    let mut rows = Vec::new();
    for (i, f) in t.schema.fields.iter().enumerate() {
        let column = ddl.and_then(|d| d.columns.get(i));
        let in_pk = pk.iter().any(|k| k.eq_ignore_ascii_case(&f.name));
        let nullable = match column {
            Some(ColumnDef::Physical { nullable, .. }) => *nullable && !in_pk,
            _ => f.nullable && f.time != TimeAttribute::Proctime,
        };
        let extras = match column {
            Some(ColumnDef::Computed { expr, .. }) => format!("AS {}", expr_sql(expr, &names)),
            Some(ColumnDef::Metadata {
                name,
                key,
                is_virtual,
                ..
            }) => format!(
                "METADATA{}{}",
                if key == name {
                    String::new()
                } else {
                    format!(" FROM '{}'", key.replace('\'', "''"))
                },
                if *is_virtual { " VIRTUAL" } else { "" }
            ),
            _ => String::new(),
        };
        let watermark = ddl
            .and_then(|d| d.watermark.as_ref())
            .filter(|(col, _)| col.eq_ignore_ascii_case(&f.name))
            .map(|(_, e)| expr_sql(e, &names))
            .unwrap_or_default();
        let mut row = vec![
            f.name.clone(),
            summary_type(f.data_type, f.time),
            if nullable { "TRUE" } else { "FALSE" }.to_owned(),
            if in_pk { key.clone() } else { String::new() },
            extras,
            watermark,
        ];
        if !columns_only {
            row.push(
                ddl.and_then(|d| d.column_comments.get(&f.name))
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        rows.push(row);
    }
    tableau(describe_headers(columns_only), &rows)
}

fn describe_headers(columns_only: bool) -> &'static [&'static str] {
    let all: &'static [&'static str] = &[
        "name",
        "type",
        "null",
        "key",
        "extras",
        "watermark",
        "comment",
    ];
    if columns_only {
        &all[..6]
    } else {
        all
    }
}

/// `DESCRIBE v` of a view (or a table without its DDL): its columns and their types.
pub fn describe_schema(schema: &Schema, columns_only: bool) -> String {
    let rows: Vec<Vec<String>> = schema
        .fields
        .iter()
        .map(|f| {
            let mut row = vec![
                f.name.clone(),
                summary_type(f.data_type, f.time),
                if f.nullable && f.time != TimeAttribute::Proctime {
                    "TRUE"
                } else {
                    "FALSE"
                }
                .to_owned(),
                String::new(),
                String::new(),
                String::new(),
            ];
            if !columns_only {
                row.push(String::new());
            }
            row
        })
        .collect();
    tableau(describe_headers(columns_only), &rows)
}

/// `SHOW CREATE TABLE t`: the DDL as Flink prints it, with the table's effective options.
pub fn show_create_table(t: &TableDef) -> String {
    let qualified = format!("{}.{}.{}", quote(CATALOG), quote(DATABASE), quote(&t.name));
    let names: Vec<String> = t.schema.fields.iter().map(|f| f.name.clone()).collect();
    let pk = &t.spec.primary_key;
    let mut lines: Vec<String> = Vec::new();
    let ddl = t.ddl.as_deref();
    let sql_string = |s: &str| format!("'{}'", s.replace('\'', "''"));
    for (i, f) in t.schema.fields.iter().enumerate() {
        let in_pk = pk.iter().any(|k| k.eq_ignore_ascii_case(&f.name));
        let comment = ddl
            .and_then(|d| d.column_comments.get(&f.name))
            .map(|c| format!(" COMMENT {}", sql_string(c)))
            .unwrap_or_default();
        lines.push(
            match ddl.and_then(|d| d.columns.get(i)) {
                Some(ColumnDef::Computed { expr, .. }) => {
                    format!("  {} AS {}", quote(&f.name), expr_sql(expr, &names))
                }
                Some(ColumnDef::Metadata {
                    name,
                    key,
                    is_virtual,
                    data_type,
                }) => format!(
                    "  {} {} METADATA{}{}",
                    quote(name),
                    serializable_type(*data_type),
                    if key == name {
                        String::new()
                    } else {
                        format!(" FROM '{}'", key.replace('\'', "''"))
                    },
                    if *is_virtual { " VIRTUAL" } else { "" }
                ),
                Some(ColumnDef::Physical { nullable, .. }) => format!(
                    "  {} {}{}",
                    quote(&f.name),
                    serializable_type(f.data_type),
                    if *nullable && !in_pk { "" } else { " NOT NULL" }
                ),
                None => format!("  {} {}", quote(&f.name), serializable_type(f.data_type)),
            } + &comment,
        );
    }
    if let Some((col, e)) = ddl.and_then(|d| d.watermark.as_ref()) {
        lines.push(format!(
            "  WATERMARK FOR {} AS {}",
            quote(col),
            expr_sql(e, &names)
        ));
    }
    if !pk.is_empty() {
        lines.push(format!(
            "  CONSTRAINT {} PRIMARY KEY ({}) NOT ENFORCED",
            quote(&primary_key_name(pk)),
            pk.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
        ));
    }
    let options: Vec<String> = t
        .spec
        .options
        .iter()
        .map(|(k, v)| {
            format!(
                "  '{}' = '{}'",
                k.replace('\'', "''"),
                v.replace('\'', "''")
            )
        })
        .collect();
    let comment = ddl
        .and_then(|d| d.comment.as_deref())
        .map(|c| format!("\nCOMMENT {}\n", sql_string(c)))
        .unwrap_or_else(|| " ".to_owned());
    format!(
        "CREATE TABLE {qualified} (\n{}\n){comment}WITH (\n{}\n)\n",
        lines.join(",\n"),
        options.join(",\n")
    )
}

/// `SHOW CREATE VIEW v`: Flink's form, the view's columns listed, then its query.
pub fn show_create_view(name: &str, columns: &Schema, query: &str) -> String {
    format!(
        "CREATE VIEW {}.{}.{}({}) as\n{query}\n",
        quote(CATALOG),
        quote(DATABASE),
        quote(name),
        columns
            .fields
            .iter()
            .map(|f| quote(&f.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The names `SHOW TABLES` lists: tables and views, as Flink's catalog lists both.
pub fn table_list(catalog: &Catalog) -> Vec<&str> {
    let mut v: Vec<&str> = catalog
        .table_names()
        .into_iter()
        .chain(catalog.view_names())
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tableau_as_flinks_sql_client() {
        let t = tableau(
            &["table name"],
            &[vec!["orders".into()], vec!["my_table".into()]],
        );
        assert_eq!(
            t,
            "+------------+\n| table name |\n+------------+\n|     orders |\n|   my_table |\n+------------+\n2 rows in set\n"
        );
        assert_eq!(tableau(&["x"], &[]), "Empty set\n");
    }

    #[test]
    fn primary_key_names_as_flink() {
        // FLINK-35206's example: PRIMARY KEY (user) is named PK_3599338
        assert_eq!(primary_key_name(&["user".to_owned()]), "PK_3599338");
    }

    #[test]
    fn functions_come_from_the_docs() {
        let f = builtin_functions();
        for name in [
            "ABS",
            "UPPER",
            "REGEXP_EXTRACT",
            "TUMBLE",
            "COUNT",
            "ROW_NUMBER",
        ] {
            assert!(f.iter().any(|n| n == name), "{name} missing from {f:?}");
        }
        for not in ["AND", "NULL", "SIN", "DATE"] {
            assert!(!f.iter().any(|n| n == not), "{not} listed: {f:?}");
        }
    }
}
