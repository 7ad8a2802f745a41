//! Flink's memory sizes as option values take them: a number and an optional unit.

/// Parses a Flink memory size (`200b`, `1 kb`, `2m`, `256 mb`, `1g`, `512`: bytes), with
/// Flink's unit names (case-insensitive); None for anything else or an overflow.
pub fn parse_memory_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let mult: u64 = match v[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_flink_writes_them() {
        assert_eq!(parse_memory_size("512"), Some(512));
        assert_eq!(parse_memory_size("2 kb"), Some(2048));
        assert_eq!(parse_memory_size("256mb"), Some(256 << 20));
        assert_eq!(parse_memory_size("1G"), Some(1 << 30));
        assert_eq!(parse_memory_size("1 tebibytes"), Some(1 << 40));
        assert_eq!(parse_memory_size("lots"), None);
        assert_eq!(parse_memory_size("1.5g"), None);
        assert_eq!(parse_memory_size("99999999999999999999 tb"), None);
        assert_eq!(parse_memory_size("20000000 tb"), None);
    }
}
