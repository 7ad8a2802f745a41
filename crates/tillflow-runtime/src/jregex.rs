//! Java regular expressions (`java.util.regex.Pattern`, which Flink's REGEXP functions use) on the
//! Rust `regex` crate.
//!
//! A Java pattern is translated to the Rust syntax with Java's meaning: `\d`, `\w`, `\s` and the
//! POSIX classes are ASCII as in Java, `.` stops at every Java line terminator, `\Q…\E` quotes,
//! `\uXXXX` and octal escapes become `\x{…}`. What the `regex` crate cannot do — backreferences,
//! lookaround, atomic groups, possessive quantifiers, `\G`, `\Z`, Unicode blocks, `java…` classes —
//! is refused with [`RegexError::Unsupported`] naming the feature, never matched differently.
//! A pattern neither engine accepts is [`RegexError::Invalid`]: Flink then returns NULL (FALSE for
//! REGEXP), and so does tillflow.

use std::sync::{Arc, Mutex};

/// Why a Java pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    /// A Java regex feature the Rust engine does not have.
    #[error("regular expression '{pattern}' uses {feature}, which tillflow's regex engine does not support (Flink's Java regex does)")]
    Unsupported {
        /// The pattern.
        pattern: String,
        /// The feature, in words.
        feature: &'static str,
    },
    /// Not a valid regular expression.
    #[error("invalid regular expression '{pattern}': {message}")]
    Invalid {
        /// The pattern.
        pattern: String,
        /// The parser's message.
        message: String,
    },
}

/// A compiled Java pattern.
#[derive(Debug)]
pub struct JavaRegex {
    /// The Java source.
    pub source: String,
    /// The translated Rust regex.
    pub re: regex::Regex,
    /// The pattern has a `$` outside a class: Java's `$` also matches before a final line
    /// terminator, so an input ending in one cannot be answered as Java would.
    pub dollar: bool,
}

impl JavaRegex {
    /// Translates and compiles a Java pattern.
    pub fn new(pattern: &str) -> Result<JavaRegex, RegexError> {
        let (rust, dollar) = translate(pattern)?;
        let re = regex::Regex::new(&rust).map_err(|e| RegexError::Invalid {
            pattern: pattern.to_owned(),
            message: e.to_string().lines().last().unwrap_or("").trim().to_owned(),
        })?;
        Ok(JavaRegex {
            source: pattern.to_owned(),
            re,
            dollar,
        })
    }

    /// Checks the input is one this pattern answers as Java does (see [`JavaRegex::dollar`]).
    pub fn check_input(&self, s: &str) -> Result<(), RegexError> {
        if self.dollar && s.ends_with(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
            return Err(RegexError::Unsupported {
                pattern: self.source.clone(),
                feature: "`$` on a string ending in a line break (Java's `$` also matches before a final line terminator)",
            });
        }
        Ok(())
    }
}

/// The pattern of a REGEXP function: compiled at plan time when constant, else compiled on first
/// use and kept in a small cache.
#[derive(Debug, Default)]
pub struct RegexCache {
    entries: Mutex<Vec<(Box<str>, Compiled)>>,
}

/// A pattern compiled, or why it cannot be.
pub type Compiled = Arc<Result<JavaRegex, RegexError>>;

/// Most distinct patterns a non-constant pattern argument keeps compiled.
const CACHE_SIZE: usize = 32;

impl RegexCache {
    /// The compiled pattern for `pattern` (compiled now if not cached).
    pub fn get(&self, pattern: &str) -> Compiled {
        let mut e = match self.entries.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        if let Some(pos) = e.iter().position(|(p, _)| &**p == pattern) {
            return e[pos].1.clone();
        }
        let r = Arc::new(JavaRegex::new(pattern));
        if e.len() >= CACHE_SIZE {
            e.remove(0);
        }
        e.push((pattern.into(), r.clone()));
        r
    }
}

fn unsupported(pattern: &str, feature: &'static str) -> RegexError {
    RegexError::Unsupported {
        pattern: pattern.to_owned(),
        feature,
    }
}

const LINE_END: &str = r"\n\r\x{85}\x{2028}\x{2029}";

/// Translates a Java pattern into the Rust `regex` syntax; also says whether it has a `$`.
pub fn translate(p: &str) -> Result<(String, bool), RegexError> {
    let c: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut class_depth = 0usize;
    let mut dollar = false;
    let mut dotall = false;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            '\\' => {
                let Some(&e) = c.get(i + 1) else {
                    return Err(RegexError::Invalid {
                        pattern: p.to_owned(),
                        message: "trailing backslash".into(),
                    });
                };
                i += 2;
                let inside = class_depth > 0;
                match e {
                    'd' => out.push_str(if inside { "0-9" } else { "[0-9]" }),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str(if inside { "0-9A-Za-z_" } else { "[0-9A-Za-z_]" }),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str(if inside {
                        r"\t\n\x0B\f\r "
                    } else {
                        r"[\t\n\x0B\f\r ]"
                    }),
                    'S' => out.push_str(r"[^\t\n\x0B\f\r ]"),
                    'h' => out.push_str(
                        r"[ \t\xA0\x{1680}\x{180e}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]",
                    ),
                    'H' => out.push_str(
                        r"[^ \t\xA0\x{1680}\x{180e}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]",
                    ),
                    'v' => out.push_str(r"[\n\x0B\f\r\x{85}\x{2028}\x{2029}]"),
                    'V' => out.push_str(r"[^\n\x0B\f\r\x{85}\x{2028}\x{2029}]"),
                    'e' => out.push_str(r"\x1B"),
                    'R' if !inside => out.push_str(r"(?:\r\n|[\n\x0B\f\r\x{85}\x{2028}\x{2029}])"),
                    't' | 'n' | 'r' | 'f' | 'a' | 'A' | 'z' | 'b' | 'B' => {
                        out.push('\\');
                        out.push(e);
                    }
                    '1'..='9' | 'k' => return Err(unsupported(p, "backreferences")),
                    'G' => return Err(unsupported(p, "\\G (end of the previous match)")),
                    'Z' => return Err(unsupported(p, "\\Z (end before a final line terminator)")),
                    'X' => return Err(unsupported(p, "\\X (grapheme clusters)")),
                    'N' => return Err(unsupported(p, "\\N{name} (named characters)")),
                    'c' => return Err(unsupported(p, "\\c control characters")),
                    'u' => {
                        let hex: String = c.iter().skip(i).take(4).collect();
                        if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                            return Err(RegexError::Invalid {
                                pattern: p.to_owned(),
                                message: "bad \\u escape".into(),
                            });
                        }
                        out.push_str(&format!("\\x{{{hex}}}"));
                        i += 4;
                    }
                    'x' => out.push_str("\\x"),
                    '0' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 3 && i < c.len() && ('0'..='7').contains(&c[i]) {
                            let nv = v * 8 + c[i].to_digit(8).unwrap_or(0);
                            if nv > 0o377 {
                                break;
                            }
                            v = nv;
                            i += 1;
                            n += 1;
                        }
                        if n == 0 {
                            return Err(RegexError::Invalid {
                                pattern: p.to_owned(),
                                message: "bad octal escape".into(),
                            });
                        }
                        out.push_str(&format!("\\x{{{v:x}}}"));
                    }
                    'Q' => {
                        let mut lit = String::new();
                        while i < c.len() && !(c[i] == '\\' && c.get(i + 1) == Some(&'E')) {
                            lit.push(c[i]);
                            i += 1;
                        }
                        i += 2;
                        out.push_str(&regex::escape(&lit));
                    }
                    'p' | 'P' => {
                        let (name, used) = if c.get(i) == Some(&'{') {
                            let end = c[i..].iter().position(|&x| x == '}').ok_or_else(|| {
                                RegexError::Invalid {
                                    pattern: p.to_owned(),
                                    message: "unclosed \\p{".into(),
                                }
                            })?;
                            (c[i + 1..i + end].iter().collect::<String>(), end + 1)
                        } else {
                            (c.get(i).map(|x| x.to_string()).unwrap_or_default(), 1)
                        };
                        i += used;
                        let neg = e == 'P';
                        let posix = match name.as_str() {
                            "Lower" => Some("a-z"),
                            "Upper" => Some("A-Z"),
                            "ASCII" => Some(r"\x00-\x7F"),
                            "Alpha" => Some("a-zA-Z"),
                            "Digit" => Some("0-9"),
                            "Alnum" => Some("a-zA-Z0-9"),
                            "Punct" => Some(r"!-/:-@\[-`{-~"),
                            "Print" => Some(r"\x20-\x7E"),
                            "Graph" => Some(r"!-~"),
                            "Blank" => Some(r" \t"),
                            "Cntrl" => Some(r"\x00-\x1F\x7F"),
                            "XDigit" => Some("0-9a-fA-F"),
                            "Space" => Some(r"\t\n\x0B\f\r "),
                            _ => None,
                        };
                        if let Some(set) = posix {
                            out.push_str(if neg { "[^" } else { "[" });
                            out.push_str(set);
                            out.push(']');
                        } else if name.starts_with("In") || name.starts_with("java") {
                            return Err(unsupported(
                                p,
                                "\\p{In…} Unicode blocks or \\p{java…} classes",
                            ));
                        } else {
                            let n = name
                                .strip_prefix("Is")
                                .or_else(|| name.strip_prefix("general_category="))
                                .or_else(|| name.strip_prefix("gc="))
                                .or_else(|| name.strip_prefix("script="))
                                .or_else(|| name.strip_prefix("sc="))
                                .unwrap_or(&name);
                            out.push_str(if neg { "\\P{" } else { "\\p{" });
                            out.push_str(n);
                            out.push('}');
                        }
                    }
                    other if other.is_ascii_alphanumeric() => {
                        return Err(RegexError::Invalid {
                            pattern: p.to_owned(),
                            message: format!("illegal escape \\{other}"),
                        })
                    }
                    // `\<` and `\>` are word boundaries in Rust, plain characters in Java
                    other => out.push_str(&regex::escape(&other.to_string())),
                }
                continue;
            }
            '[' => {
                class_depth += 1;
                out.push('[');
                if c.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            '.' if class_depth == 0 => {
                if dotall {
                    out.push('.');
                } else {
                    out.push_str(&format!("[^{LINE_END}]"));
                }
            }
            '$' if class_depth == 0 => {
                dollar = true;
                out.push('$');
            }
            '(' if class_depth == 0 && c.get(i + 1) == Some(&'?') => {
                let rest: String = c[i + 2..].iter().take(3).collect();
                if rest.starts_with('=') || rest.starts_with('!') {
                    return Err(unsupported(p, "lookahead (?= / (?!"));
                }
                if rest.starts_with("<=") || rest.starts_with("<!") {
                    return Err(unsupported(p, "lookbehind (?<= / (?<!"));
                }
                if rest.starts_with('>') {
                    return Err(unsupported(p, "atomic groups (?>"));
                }
                if rest.starts_with('<') || rest.starts_with(':') {
                    out.push_str("(?");
                    i += 2;
                    continue;
                }
                // inline flags (?idmsux-idmsux) or (?flags:
                let mut j = i + 2;
                let mut flags = String::new();
                while j < c.len() && c[j] != ')' && c[j] != ':' {
                    flags.push(c[j]);
                    j += 1;
                }
                let mut rust_flags = String::new();
                for f in flags.chars() {
                    match f {
                        'i' | 'm' | 's' | 'x' | '-' => rust_flags.push(f),
                        'u' => {}
                        'U' => return Err(unsupported(p, "the UNICODE_CHARACTER_CLASS flag (?U)")),
                        'd' => return Err(unsupported(p, "the UNIX_LINES flag (?d)")),
                        _ => {
                            return Err(RegexError::Invalid {
                                pattern: p.to_owned(),
                                message: format!("unknown inline flag {f}"),
                            })
                        }
                    }
                }
                if flags.contains('s') && !flags.starts_with('-') {
                    dotall = true;
                }
                if flags.contains('i') && !flags.contains('u') {
                    // Java's (?i) without (?u) folds ASCII letters only
                    if !p.is_ascii() {
                        return Err(unsupported(
                            p,
                            "ASCII-only case-insensitive matching (?i) next to non-ASCII characters",
                        ));
                    }
                }
                out.push_str("(?");
                out.push_str(&rust_flags);
                i = j;
                continue;
            }
            '*' | '+' | '?' | '}' if class_depth == 0 && c.get(i + 1) == Some(&'+') => {
                return Err(unsupported(p, "possessive quantifiers (*+, ++, ?+)"));
            }
            _ => out.push(ch),
        }
        i += 1;
    }
    Ok((out, dollar))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(p: &str, s: &'a str) -> Option<&'a str> {
        JavaRegex::new(p).unwrap().re.find(s).map(|m| m.as_str())
    }

    #[test]
    fn java_classes_are_ascii() {
        assert_eq!(find(r"\d+", "٣42"), Some("42"));
        assert_eq!(find(r"\w+", "héllo"), Some("h"));
        assert_eq!(find(r"[\w-]+", "a-b c"), Some("a-b"));
        assert_eq!(find(r"\p{Alpha}+", "ab1"), Some("ab"));
        assert_eq!(find(r"\p{Lu}+", "xÀB"), Some("ÀB"));
        assert_eq!(find(r"a.b", "a\rb"), None);
        assert_eq!(find(r"(?s)a.b", "a\rb"), Some("a\rb"));
        assert_eq!(find(r"\Q.*\E", "x.*"), Some(".*"));
        assert_eq!(find(r"\u00e9", "é"), Some("é"));
        assert_eq!(find(r"\<a\>", "<a>"), Some("<a>"));
    }

    #[test]
    fn unsupported_features_are_named() {
        for (p, what) in [
            (r"(a)\1", "backreferences"),
            (r"a(?=b)", "lookahead"),
            (r"(?<!a)b", "lookbehind"),
            (r"(?>a)", "atomic"),
            (r"a*+", "possessive"),
            (r"\p{InGreek}", "blocks"),
            (r"(?i)é", "ASCII-only"),
        ] {
            match JavaRegex::new(p) {
                Err(RegexError::Unsupported { feature, .. }) => {
                    assert!(feature.contains(what), "{p}: {feature}")
                }
                other => panic!("{p}: {other:?}"),
            }
        }
        assert!(matches!(
            JavaRegex::new("("),
            Err(RegexError::Invalid { .. })
        ));
    }

    #[test]
    fn dollar_before_final_newline_is_refused() {
        let r = JavaRegex::new("a$").unwrap();
        assert!(r.check_input("ba").is_ok());
        assert!(r.check_input("ba\n").is_err());
    }
}
