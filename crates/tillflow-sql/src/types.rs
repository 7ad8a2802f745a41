//! Flink type names (`INT`, `STRING`, `TIMESTAMP(3)`, `TIMESTAMP_LTZ(3)`, `DECIMAL(10, 2)`, ...) to
//! [`DataType`]. The sqlparser type is rendered back to text and read here, so every spelling
//! sqlparser accepts maps the same way.

use crate::error::{plan_err, Result};
use tillflow_types::DataType;

/// Converts a parsed SQL type to a tillflow type.
pub fn convert(dt: &sqlparser::ast::DataType) -> Result<DataType> {
    parse_type_name(&dt.to_string())
}

/// Reads a type name such as `TIMESTAMP(3)` or `VARCHAR(10)`.
pub fn parse_type_name(text: &str) -> Result<DataType> {
    let t = text.trim().to_ascii_uppercase();
    if let Some(inner) = t.strip_prefix("MAP").map(str::trim).and_then(|r| {
        r.strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .or_else(|| r.strip_prefix('(').and_then(|r| r.strip_suffix(')')))
    }) {
        let elem = |part: &str| -> Result<tillflow_types::MapElem> {
            match parse_type_name(part)? {
                DataType::String(_) => Ok(tillflow_types::MapElem::String),
                DataType::Bytes => Ok(tillflow_types::MapElem::Bytes),
                other => plan_err(format!(
                    "unsupported type {text}: MAP keys and values can be STRING or BYTES so far, not {other}"
                )),
            }
        };
        let Some((k, v)) = inner.split_once(',') else {
            return plan_err(format!(
                "unsupported type {text}: MAP<K, V> needs two types"
            ));
        };
        return Ok(DataType::Map(elem(k)?, elem(v)?));
    }
    let (base, args) = match t.find('(') {
        Some(p) => {
            let close = t.rfind(')').unwrap_or(t.len());
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
                "unsupported type {text} (supported: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), STRING, VARCHAR(n), CHAR(n), DATE, TIME(p), TIMESTAMP(p), TIMESTAMP_LTZ(p), BYTES, VARBINARY(n), MAP<STRING|BYTES, STRING|BYTES>)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_maps() {
        use tillflow_types::MapElem;
        assert_eq!(parse_type_name("BYTES").unwrap(), DataType::Bytes);
        assert_eq!(parse_type_name("VARBINARY(20)").unwrap(), DataType::Bytes);
        assert_eq!(
            parse_type_name("MAP<STRING, BYTES>").unwrap(),
            DataType::Map(MapElem::String, MapElem::Bytes)
        );
        assert_eq!(
            parse_type_name("Map(STRING, STRING)").unwrap(),
            DataType::Map(MapElem::String, MapElem::String)
        );
        assert!(parse_type_name("MAP<STRING, INT>").is_err());
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
        assert!(parse_type_name("MAP<STRING, INT>").is_err());
    }
}
