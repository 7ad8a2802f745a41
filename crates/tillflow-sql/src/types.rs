//! Flink type names (`INT`, `STRING`, `TIMESTAMP(3)`, `TIMESTAMP_LTZ(3)`, `DECIMAL(10, 2)`, ...) to
//! [`DataType`]. The sqlparser type is rendered back to text and read here, so every spelling
//! sqlparser accepts maps the same way.

use crate::error::{plan_err, Result};
use tillflow_types::DataType;

/// Converts a parsed SQL type to a tillflow type.
pub fn convert(dt: &sqlparser::ast::DataType) -> Result<DataType> {
    parse_type_name(&dt.to_string())
}

/// Splits `text` at its top-level commas (those outside `<>`, `()` and quotes).
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut quote) = (0i32, 0, None::<char>);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '`' | '"') => quote = Some(c),
            (None, '<' | '(') => depth += 1,
            (None, '>' | ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The text inside `KEYWORD<…>` (or `KEYWORD(…)` where `parens`), if `text` is one.
fn inside<'t>(text: &'t str, keyword: &str, parens: bool) -> Option<&'t str> {
    let head = text.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = text[keyword.len()..].trim();
    rest.strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .or_else(|| {
            parens
                .then(|| rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')))
                .flatten()
        })
}

/// A ROW field: `name TYPE [NOT NULL] [COMMENT '…']`.
fn row_field(text: &str, whole: &str) -> Result<(String, DataType)> {
    let text = text.trim();
    let (name, rest) = if let Some(r) = text.strip_prefix('`') {
        match r.find('`') {
            Some(end) => (r[..end].to_owned(), &r[end + 1..]),
            None => return plan_err(format!("unsupported type {whole}: unclosed `")),
        }
    } else {
        match text.split_once(char::is_whitespace) {
            Some((n, r)) => (n.to_owned(), r),
            None => {
                return plan_err(format!(
                    "unsupported type {whole}: field `{text}` has no type"
                ))
            }
        }
    };
    let mut ty = rest.trim();
    if let Some(i) = ty.to_ascii_uppercase().find(" COMMENT ") {
        ty = ty[..i].trim();
    }
    for suffix in [" NOT NULL", " NULL"] {
        if ty.len() > suffix.len() && ty[ty.len() - suffix.len()..].eq_ignore_ascii_case(suffix) {
            ty = ty[..ty.len() - suffix.len()].trim();
        }
    }
    Ok((name, parse_type_name(ty)?))
}

/// Reads a type name such as `TIMESTAMP(3)`, `VARCHAR(10)`, `ROW<id BIGINT, name STRING>`,
/// `ARRAY<ROW<sku STRING, qty INT>>` or `MULTISET<STRING>`.
pub fn parse_type_name(text: &str) -> Result<DataType> {
    let trimmed = text.trim();
    if let Some(inner) = inside(trimmed, "ROW", true) {
        let mut fields = Vec::new();
        for part in split_top(inner) {
            let (name, ty) = row_field(part, trimmed)?;
            if fields
                .iter()
                .any(|(n, _): &(String, DataType)| n.eq_ignore_ascii_case(&name))
            {
                return plan_err(format!(
                    "unsupported type {trimmed}: field `{name}` appears twice"
                ));
            }
            fields.push((name, ty));
        }
        return Ok(DataType::row(fields));
    }
    if let Some(inner) = inside(trimmed, "ARRAY", false) {
        return Ok(DataType::array(parse_type_name(inner)?));
    }
    if let Some(inner) = inside(trimmed, "MULTISET", false) {
        return Ok(DataType::multiset(parse_type_name(inner)?));
    }
    // `T ARRAY` and `T MULTISET`, Flink's postfix forms
    let upper = trimmed.to_ascii_uppercase();
    if let Some(elem) = upper.strip_suffix(" ARRAY") {
        return Ok(DataType::array(parse_type_name(&trimmed[..elem.len()])?));
    }
    if let Some(elem) = upper.strip_suffix(" MULTISET") {
        return Ok(DataType::multiset(parse_type_name(&trimmed[..elem.len()])?));
    }
    let t = upper;
    if let Some(inner) = inside(trimmed, "MAP", true) {
        let parts = split_top(inner);
        let Some((k, v)) = (parts.len() == 2).then(|| (parts[0], parts[1])) else {
            return plan_err(format!(
                "unsupported type {text}: MAP<K, V> needs two types"
            ));
        };
        let key = parse_type_name(k)?;
        if key.is_nested() {
            return plan_err(format!(
                "unsupported type {text}: MAP keys of type {key} are not supported yet"
            ));
        }
        return Ok(DataType::map(key, parse_type_name(v)?));
    }
    let (base, args) = match t.find('(') {
        Some(p) => {
            // the last `)` after the `(` (a `)` before it is not a closing one)
            let close = t.rfind(')').filter(|&c| c > p).unwrap_or(t.len());
            let args: Vec<u32> = t[p + 1..close]
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect();
            let rest = t[close.min(t.len())..]
                .trim_start_matches(')')
                .trim()
                .to_owned();
            (
                format!("{} {}", t[..p].trim(), rest).trim().to_owned(),
                args,
            )
        }
        None => (t.clone(), vec![]),
    };
    let a0 = args.first().copied();
    Ok(match base.as_str() {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::TinyInt,
        "SMALLINT" => DataType::SmallInt,
        "INT" | "INTEGER" => DataType::Int,
        "BIGINT" => DataType::BigInt,
        "FLOAT" | "REAL" => DataType::Float,
        "DOUBLE" | "DOUBLE PRECISION" => DataType::Double,
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let p = a0.unwrap_or(10).clamp(1, 38) as u8;
            let s = args.get(1).copied().unwrap_or(0).min(p as u32) as u8;
            DataType::Decimal(p, s)
        }
        "STRING" | "TEXT" => DataType::String(None),
        "VARCHAR" | "CHARACTER VARYING" | "CHAR VARYING" => DataType::String(Some(a0.unwrap_or(1))),
        "CHAR" | "CHARACTER" => DataType::String(Some(a0.unwrap_or(1))),
        "BYTES" | "VARBINARY" | "BINARY" | "BINARY VARYING" => DataType::Bytes,
        "DATE" => DataType::Date,
        "TIME" | "TIME WITHOUT TIME ZONE" => DataType::Time(a0.unwrap_or(0).min(9) as u8),
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => DataType::Timestamp(a0.unwrap_or(6).min(9) as u8),
        "TIMESTAMP_LTZ" | "TIMESTAMP WITH LOCAL TIME ZONE" | "TIMESTAMP WITH TIME ZONE" => {
            DataType::TimestampLtz(a0.unwrap_or(6).min(9) as u8)
        }
        _ => {
            return plan_err(format!(
                "unsupported type {text} (supported: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), STRING, VARCHAR(n), CHAR(n), DATE, TIME(p), TIMESTAMP(p), TIMESTAMP_LTZ(p), BYTES, VARBINARY(n), MAP<K, V>, ROW<name TYPE, …>, ARRAY<T>, MULTISET<T>)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {

    /// Found by fuzzing (scripts/fuzz.sh, sql_plan): a `)` before the `(` panicked on a
    /// reversed slice.
    #[test]
    fn a_closing_parenthesis_before_the_opening_one_is_an_error_not_a_panic() {
        for t in [
            ")(",
            "INT)(",
            "DECIMAL)(10",
            "VARCHAR ) ( 3",
            "MULTISET<INT)(>",
        ] {
            let _ = parse_type_name(t);
        }
    }

    use super::*;

    #[test]
    fn nested_types() {
        let t = parse_type_name(
            "ROW<id BIGINT, `name` VARCHAR, items ARRAY<ROW<sku STRING NOT NULL, qty INT>>, tags MULTISET<STRING>, h MAP<STRING, BYTES>>",
        )
        .unwrap();
        assert_eq!(
            t.to_string(),
            "ROW<`id` BIGINT, `name` VARCHAR(1), `items` ARRAY<ROW<`sku` STRING, `qty` INT>>, `tags` MULTISET<STRING>, `h` MAP<STRING, BYTES>>"
        );
        assert_eq!(
            parse_type_name("INT ARRAY").unwrap(),
            DataType::array(DataType::Int)
        );
        assert_eq!(
            parse_type_name("row(a INT, b STRING)").unwrap(),
            parse_type_name("ROW<a INT, b STRING>").unwrap()
        );
        assert!(parse_type_name("ROW<a INT, a STRING>").is_err());
        assert!(parse_type_name("ROW<a>").is_err());
    }

    #[test]
    fn bytes_and_maps() {
        assert_eq!(parse_type_name("BYTES").unwrap(), DataType::Bytes);
        assert_eq!(parse_type_name("VARBINARY(20)").unwrap(), DataType::Bytes);
        assert_eq!(
            parse_type_name("MAP<STRING, BYTES>").unwrap(),
            DataType::map(DataType::String(None), DataType::Bytes)
        );
        assert_eq!(
            parse_type_name("Map(STRING, STRING)").unwrap(),
            DataType::map(DataType::String(None), DataType::String(None))
        );
        assert_eq!(
            parse_type_name("MAP<STRING, INT>").unwrap(),
            DataType::map(DataType::String(None), DataType::Int)
        );
        assert!(parse_type_name("MAP<ROW<a INT>, INT>").is_err());
    }

    #[test]
    fn flink_type_names() {
        assert_eq!(
            parse_type_name("TIMESTAMP(3)").unwrap(),
            DataType::Timestamp(3)
        );
        assert_eq!(
            parse_type_name("timestamp").unwrap(),
            DataType::Timestamp(6)
        );
        assert_eq!(
            parse_type_name("TIMESTAMP_LTZ(3)").unwrap(),
            DataType::TimestampLtz(3)
        );
        assert_eq!(
            parse_type_name("TIMESTAMP(3) WITH LOCAL TIME ZONE").unwrap(),
            DataType::TimestampLtz(3)
        );
        assert_eq!(
            parse_type_name("DECIMAL(10, 2)").unwrap(),
            DataType::Decimal(10, 2)
        );
        assert_eq!(
            parse_type_name("VARCHAR(20)").unwrap(),
            DataType::String(Some(20))
        );
        assert_eq!(
            parse_type_name("MAP<STRING, INT>").unwrap(),
            DataType::map(DataType::String(None), DataType::Int)
        );
        assert!(parse_type_name("MAP<ROW<a INT>, INT>").is_err());
    }
}
