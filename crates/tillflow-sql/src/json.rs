//! The JSON functions' SQL side: Flink's clauses (`RETURNING type`, `… ON EMPTY`, `… ON ERROR`,
//! `WITH [CONDITIONAL|UNCONDITIONAL] [ARRAY] WRAPPER`), which no sqlparser dialect reads, are
//! rewritten on tokens into one extra string argument (and the DEFAULT expressions after it);
//! [`function`] plans the call with its constant path compiled once.

use crate::error::{plan_err, Result};
use crate::expr::{cast_to, function_args, Converter};
use sqlparser::ast as sql;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};
use tillflow_runtime::expr::MAX_ARGS;
use tillflow_runtime::expr::{Expr, PatternArg, Prepared};
use tillflow_runtime::functions::Func;
use tillflow_runtime::json::{Behavior, JsonBuild, JsonFn, JsonPath, JsonSpec, Returning, Wrapper};
use tillflow_types::DataType;

/// Marks the argument the token pass writes the clauses into.
const MARK: &str = "__tillflow_json_clauses:";

fn is_ws(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

const CLAUSE_WORDS: [&str; 10] = [
    "RETURNING",
    "WITH",
    "WITHOUT",
    "NULL",
    "ERROR",
    "DEFAULT",
    "EMPTY",
    "TRUE",
    "FALSE",
    "UNKNOWN",
];

/// Rewrites the clauses of every JSON_VALUE / JSON_QUERY / JSON_EXISTS call into arguments.
pub fn clause_pass(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let is_fn = word(&t.token)
            .is_some_and(|w| matches!(w.as_str(), "JSON_VALUE" | "JSON_QUERY" | "JSON_EXISTS"));
        if is_fn {
            let l = (i + 1..tokens.len()).find(|&j| !is_ws(&tokens[j].token));
            if let Some(l) = l.filter(|&l| tokens[l].token == Token::LParen) {
                if let Some((rewritten, r)) = rewrite_call(tokens, l) {
                    out.extend(tokens[i..=l].iter().cloned());
                    out.extend(rewritten);
                    i = r;
                    continue;
                }
            }
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// The call whose `(` is at `l`: its rewritten argument tokens up to and including `)`, and the
/// index after it. None when there are no clauses or they do not parse (sqlparser then reports).
fn rewrite_call(tokens: &[TokenWithSpan], l: usize) -> Option<(Vec<TokenWithSpan>, usize)> {
    let mut depth = 0i32;
    let mut r = None;
    let mut commas = 0;
    let mut path_seen = false;
    let mut clause = None;
    for (j, t) in tokens.iter().enumerate().skip(l) {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    r = Some(j);
                    break;
                }
            }
            Token::Comma if depth == 1 => commas += 1,
            tok if depth == 1 && commas == 1 && !is_ws(tok) => {
                if path_seen
                    && clause.is_none()
                    && word(tok).is_some_and(|w| CLAUSE_WORDS.contains(&w.as_str()))
                {
                    clause = Some(j);
                } else {
                    path_seen = true;
                }
            }
            _ => {}
        }
    }
    let (r, c) = (r?, clause?);
    let sig: Vec<usize> = (c..r).filter(|&j| !is_ws(&tokens[j].token)).collect();
    let w = |k: usize| sig.get(k).and_then(|&j| word(&tokens[j].token));
    let mut opts: Vec<String> = Vec::new();
    let mut defaults: Vec<Vec<TokenWithSpan>> = Vec::new();
    let mut k = 0;
    while k < sig.len() {
        let head = w(k)?;
        match head.as_str() {
            "RETURNING" => {
                let mut ty = String::new();
                k += 1;
                let mut d = 0;
                while k < sig.len() {
                    let tok = &tokens[sig[k]].token;
                    if d == 0 && w(k).is_some_and(|x| CLAUSE_WORDS[1..].contains(&x.as_str())) {
                        break;
                    }
                    match tok {
                        Token::LParen => d += 1,
                        Token::RParen => d -= 1,
                        _ => {}
                    }
                    ty.push_str(&tok.to_string());
                    ty.push(' ');
                    k += 1;
                }
                opts.push(format!("RETURNING={}", ty.trim()));
            }
            "WITH" | "WITHOUT" => {
                let mut kind = if head == "WITH" {
                    "UNCONDITIONAL"
                } else {
                    "WITHOUT"
                };
                k += 1;
                if head == "WITH" && w(k).as_deref() == Some("CONDITIONAL") {
                    kind = "CONDITIONAL";
                    k += 1;
                } else if head == "WITH" && w(k).as_deref() == Some("UNCONDITIONAL") {
                    k += 1;
                }
                if w(k).as_deref() == Some("ARRAY") {
                    k += 1;
                }
                if w(k).as_deref() != Some("WRAPPER") {
                    return None;
                }
                k += 1;
                opts.push(format!("WRAPPER={kind}"));
            }
            "DEFAULT" => {
                let start = k + 1;
                let mut d = 0;
                k += 1;
                while k < sig.len() {
                    match &tokens[sig[k]].token {
                        Token::LParen => d += 1,
                        Token::RParen => d -= 1,
                        _ => {}
                    }
                    if d == 0
                        && w(k).as_deref() == Some("ON")
                        && matches!(w(k + 1).as_deref(), Some("EMPTY" | "ERROR"))
                    {
                        break;
                    }
                    k += 1;
                }
                let on = w(k + 1)?;
                if k == start || k >= sig.len() {
                    return None;
                }
                defaults.push(tokens[sig[start]..sig[k]].to_vec());
                opts.push(format!("{on}=DEFAULT:{}", defaults.len() - 1));
                k += 2;
            }
            "EMPTY" => {
                let what = w(k + 1)?;
                if !matches!(what.as_str(), "ARRAY" | "OBJECT") || w(k + 2).as_deref() != Some("ON")
                {
                    return None;
                }
                let on = w(k + 3)?;
                opts.push(format!("{on}=EMPTY_{what}"));
                k += 4;
            }
            "NULL" | "ERROR" | "TRUE" | "FALSE" | "UNKNOWN" => {
                if w(k + 1).as_deref() != Some("ON") {
                    return None;
                }
                let on = w(k + 2)?;
                if !matches!(on.as_str(), "EMPTY" | "ERROR") {
                    return None;
                }
                opts.push(format!("{on}={head}"));
                k += 3;
            }
            _ => return None,
        }
    }
    let span = tokens[c].span;
    let at = |t: Token| TokenWithSpan::new(t, span);
    let mut out: Vec<TokenWithSpan> = clause_pass(&tokens[l + 1..c]);
    out.push(at(Token::Comma));
    out.push(at(Token::Whitespace(Whitespace::Space)));
    out.push(at(Token::SingleQuotedString(format!(
        "{MARK}{}",
        opts.join(";")
    ))));
    for d in defaults {
        out.push(at(Token::Comma));
        out.push(at(Token::Whitespace(Whitespace::Space)));
        out.extend(clause_pass(&d));
    }
    out.push(tokens[r].clone());
    Some((out, r + 1))
}

/// Marks the argument [`build_pass`] writes the `… ON NULL` clause of JSON_OBJECT / JSON_ARRAY into.
const BUILD_MARK: &str = "__tillflow_json_on_null:";

/// Rewrites `JSON_OBJECT([KEY] k VALUE v, … [NULL|ABSENT ON NULL])` into
/// `JSON_OBJECT(k, v, …, '<mark>NULL|ABSENT')`, and the `ON NULL` clause of JSON_ARRAY alike.
pub fn build_pass(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    /// An open JSON_OBJECT (true) or JSON_ARRAY (false) call: whether it has an argument yet
    /// and its ON NULL clause.
    struct Frame {
        object: bool,
        has_arg: bool,
        on_null: Option<String>,
        /// The current `k VALUE v` pair has had its VALUE (a later `value` is a name).
        value_seen: bool,
    }
    let mut out = Vec::with_capacity(tokens.len());
    let mut stack: Vec<Option<Frame>> = Vec::new();
    // the last significant token seen (of the input)
    let mut prev: Option<&Token> = None;
    let comma = Token::Comma;
    let sig_after = |from: usize, n: usize| -> Option<&Token> {
        tokens[from..]
            .iter()
            .map(|t| &t.token)
            .filter(|t| !is_ws(t))
            .nth(n)
    };
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let tok = &t.token;
        if is_ws(tok) {
            out.push(t.clone());
            i += 1;
            continue;
        }
        let w = word(tok);
        match tok {
            Token::LParen => {
                let kind = prev.and_then(word);
                stack.push(match kind.as_deref() {
                    Some("JSON_OBJECT") => Some(Frame {
                        object: true,
                        has_arg: false,
                        on_null: None,
                        value_seen: false,
                    }),
                    Some("JSON_ARRAY") => Some(Frame {
                        object: false,
                        has_arg: false,
                        on_null: None,
                        value_seen: false,
                    }),
                    _ => None,
                });
                out.push(t.clone());
            }
            Token::RParen => {
                if let Some(Some(f)) = stack.pop() {
                    if let Some(mode) = f.on_null {
                        if f.has_arg {
                            out.push(TokenWithSpan::new(Token::Comma, t.span));
                        }
                        out.push(TokenWithSpan::new(
                            Token::SingleQuotedString(format!("{BUILD_MARK}{mode}")),
                            t.span,
                        ));
                    }
                }
                out.push(t.clone());
            }
            _ => {
                let in_json = matches!(stack.last(), Some(Some(_)));
                let at_arg_start = matches!(prev, Some(Token::LParen | Token::Comma));
                let next = sig_after(i + 1, 0);
                if in_json
                    && matches!(w.as_deref(), Some("NULL" | "ABSENT"))
                    && sig_after(i + 1, 0).and_then(word).as_deref() == Some("ON")
                    && sig_after(i + 1, 1).and_then(word).as_deref() == Some("NULL")
                    && sig_after(i + 1, 2) == Some(&Token::RParen)
                {
                    if let Some(Some(f)) = stack.last_mut() {
                        f.on_null = w;
                    }
                    // skip the clause up to the `)`
                    let mut seen = 0;
                    i += 1;
                    while i < tokens.len() && seen < 2 {
                        if !is_ws(&tokens[i].token) {
                            seen += 1;
                        }
                        i += 1;
                    }
                    prev = Some(&comma);
                    continue;
                }
                let is_object = matches!(stack.last(), Some(Some(f)) if f.object);
                if is_object
                    && at_arg_start
                    && w.as_deref() == Some("KEY")
                    && !matches!(next, Some(Token::Comma | Token::RParen))
                    && next.and_then(word).as_deref() != Some("VALUE")
                {
                    // `KEY k`: the keyword is dropped; `prev` stays an argument start for the key
                    i += 1;
                    continue;
                }
                let value_seen = matches!(stack.last(), Some(Some(f)) if f.value_seen);
                if tok == &Token::Comma {
                    if let Some(Some(f)) = stack.last_mut() {
                        f.value_seen = false;
                    }
                }
                if is_object && w.as_deref() == Some("VALUE") && !at_arg_start && !value_seen {
                    out.push(TokenWithSpan::new(Token::Comma, t.span));
                    if let Some(Some(f)) = stack.last_mut() {
                        f.value_seen = true;
                    }
                } else {
                    out.push(t.clone());
                }
                if let Some(Some(f)) = stack.last_mut() {
                    f.has_arg = true;
                }
            }
        }
        prev = Some(tok);
        i += 1;
    }
    out
}

/// Plans JSON_OBJECT, JSON_ARRAY or JSON_STRING.
pub fn build_function(conv: &Converter<'_>, name: &str, f: &sql::Function) -> Result<Expr> {
    let args = function_args(f)?;
    let mut exprs = Vec::with_capacity(args.len());
    let mut on_null: Option<String> = None;
    for (i, a) in args.iter().enumerate() {
        let Some(a) = a else {
            return plan_err(format!("`*` is not an argument of {name}: `{f}`"));
        };
        if i + 1 == args.len() {
            if let sql::Expr::Value(v) = a {
                if let sql::Value::SingleQuotedString(s) = &v.value {
                    if let Some(o) = s.strip_prefix(BUILD_MARK) {
                        on_null = Some(o.to_owned());
                        continue;
                    }
                }
            }
        }
        exprs.push(conv.convert(a)?);
    }
    let kind = match name {
        "JSON_OBJECT" => {
            if exprs.len() % 2 != 0 {
                return plan_err(format!("JSON_OBJECT takes `KEY k VALUE v` pairs: `{f}`"));
            }
            for k in exprs.iter().step_by(2) {
                if !k.data_type().is_string() {
                    return plan_err(format!("JSON_OBJECT: a key must be a string: `{f}`"));
                }
            }
            JsonBuild::Object {
                absent_on_null: on_null.as_deref() == Some("ABSENT"),
            }
        }
        "JSON_ARRAY" => JsonBuild::Array {
            absent_on_null: on_null.as_deref() != Some("NULL"),
        },
        _ => {
            if on_null.is_some() {
                return plan_err(format!("JSON_STRING does not take `ON NULL`: `{f}`"));
            }
            JsonBuild::String
        }
    };
    if exprs.len() > MAX_ARGS {
        return plan_err(format!(
            "{name} takes at most {MAX_ARGS} arguments here: `{f}`"
        ));
    }
    let func = Func::JsonBuild(kind);
    let types: Vec<DataType> = exprs.iter().map(Expr::data_type).collect();
    let ty = func
        .return_type(&types)
        .or_else(|m| plan_err(format!("{m}: `{f}`")))?;
    Ok(Expr::Call {
        func,
        args: exprs,
        ty,
    })
}

fn behavior(text: &str, func: &str, whole: &sql::Function) -> Result<Behavior> {
    Ok(match text {
        "NULL" => Behavior::Null,
        "ERROR" => Behavior::Error,
        "EMPTY_ARRAY" if func == "JSON_QUERY" => Behavior::EmptyArray,
        "EMPTY_OBJECT" if func == "JSON_QUERY" => Behavior::EmptyObject,
        "TRUE" if func == "JSON_EXISTS" => Behavior::True,
        "FALSE" if func == "JSON_EXISTS" => Behavior::False,
        "UNKNOWN" if func == "JSON_EXISTS" => Behavior::Unknown,
        d if d.starts_with("DEFAULT:") && func == "JSON_VALUE" => {
            Behavior::Default(d[8..].parse().unwrap_or(0))
        }
        other => {
            return plan_err(format!(
                "{func} does not take `{} ON …`: `{whole}`",
                other.replace('_', " ").split(':').next().unwrap_or(other)
            ))
        }
    })
}

/// Plans JSON_VALUE, JSON_QUERY or JSON_EXISTS.
pub fn function(conv: &Converter<'_>, name: &str, f: &sql::Function) -> Result<Expr> {
    let args = function_args(f)?;
    let mut exprs = Vec::with_capacity(args.len());
    let mut opts = String::new();
    for (i, a) in args.iter().enumerate() {
        let Some(a) = a else {
            return plan_err(format!("`*` is not an argument of {name}: `{f}`"));
        };
        if i == 2 {
            if let sql::Expr::Value(v) = a {
                if let sql::Value::SingleQuotedString(s) = &v.value {
                    if let Some(o) = s.strip_prefix(MARK) {
                        opts = o.to_owned();
                        continue;
                    }
                }
            }
        }
        exprs.push(conv.convert(a)?);
    }
    if exprs.len() < 2 || (opts.is_empty() && exprs.len() != 2) {
        return plan_err(format!("{name} takes a JSON text and a path: `{f}`"));
    }
    let func = match name {
        "JSON_VALUE" => JsonFn::Value,
        "JSON_QUERY" => JsonFn::Query,
        _ => JsonFn::Exists,
    };
    let mut returning = Returning::String;
    let mut on_error = match func {
        JsonFn::Exists => Behavior::False,
        _ => Behavior::Null,
    };
    let mut wrapper = Wrapper::Without;
    for o in opts.split(';').filter(|o| !o.is_empty()) {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match k {
            "RETURNING" if func == JsonFn::Value => {
                let up = v.to_ascii_uppercase();
                let base = up.split(['(', ' ']).next().unwrap_or("");
                returning = match base {
                    "STRING" | "VARCHAR" | "CHAR" => Returning::String,
                    "INT" | "INTEGER" => Returning::Int,
                    "DOUBLE" => Returning::Double,
                    "BOOLEAN" => Returning::Boolean,
                    _ => {
                        return plan_err(format!(
                            "Unsupported type '{v}' for RETURNING in JSON_VALUE() (Flink 2.3 takes STRING, BOOLEAN, INT and DOUBLE): `{f}`"
                        ))
                    }
                };
            }
            "WRAPPER" if func == JsonFn::Query => {
                wrapper = match v {
                    "CONDITIONAL" => Wrapper::Conditional,
                    "UNCONDITIONAL" => Wrapper::Unconditional,
                    _ => Wrapper::Without,
                };
            }
            // Flink 2.3 treats a missing path and a JSON null as errors, so ON EMPTY never
            // applies; it is still checked
            "EMPTY" => {
                behavior(v, name, f)?;
            }
            "ERROR" => on_error = behavior(v, name, f)?,
            _ => {
                return plan_err(format!(
                    "{name} does not take `{}`: `{f}`",
                    k.replace('_', " ")
                ))
            }
        }
    }
    let ty = match (func, returning) {
        (JsonFn::Exists, _) | (_, Returning::Boolean) => DataType::Boolean,
        (_, Returning::Int) => DataType::Int,
        (_, Returning::Double) => DataType::Double,
        _ => DataType::String(None),
    };
    let mut it = exprs.into_iter();
    let (Some(doc), Some(path)) = (it.next(), it.next()) else {
        return plan_err(format!("{name} takes a JSON text and a path: `{f}`"));
    };
    let doc = cast_to(doc, DataType::String(None));
    if !path.data_type().is_string() && path.data_type() != DataType::Null {
        return plan_err(format!("{name}: the path must be a string: `{f}`"));
    }
    let path = cast_to(path, DataType::String(None));
    let compiled = if path.is_constant() {
        let mut heap = vec![];
        match path.eval(&tillflow_types::Row::default(), &mut heap) {
            Ok(tillflow_types::Value::Str(r)) => {
                let text = tillflow_types::value::heap_str(&heap, r);
                let c = JsonPath::compile(text);
                if let Err(m) = &c {
                    if m.contains("not supported") {
                        return plan_err(format!("{m}: `{f}`"));
                    }
                }
                Some(c)
            }
            _ => None,
        }
    } else {
        None
    };
    let mut args = vec![doc, path];
    args.extend(it.map(|d| cast_to(d, ty)));
    let spec = JsonSpec {
        func,
        path: compiled,
        returning,
        on_error,
        wrapper,
    };
    Ok(Expr::Prepared {
        func: Func::Json(func),
        args,
        state: std::sync::Arc::new(Prepared {
            pattern: PatternArg::Cached(Default::default()),
            kv: None,
            positions: (None, None),
            json: Some(spec),
        }),
        ty,
    })
}

/// `x IS [NOT] JSON [VALUE|SCALAR|ARRAY|OBJECT]`.
pub fn is_json(
    conv: &Converter<'_>,
    x: &sql::Expr,
    kind: Option<sql::JsonPredicateType>,
    unique: bool,
    negated: bool,
    whole: &sql::Expr,
) -> Result<Expr> {
    if unique {
        return plan_err(format!(
            "IS JSON … WITH/WITHOUT UNIQUE KEYS is not supported: `{whole}`"
        ));
    }
    let k = match kind {
        None | Some(sql::JsonPredicateType::Value) => 0,
        Some(sql::JsonPredicateType::Scalar) => 1,
        Some(sql::JsonPredicateType::Array) => 2,
        Some(sql::JsonPredicateType::Object) => 3,
    };
    let e = Expr::Call {
        func: Func::IsJson(k),
        args: vec![cast_to(conv.convert(x)?, DataType::String(None))],
        ty: DataType::Boolean,
    };
    Ok(if negated {
        Expr::Unary {
            op: tillflow_runtime::expr::UnOp::Not,
            arg: Box::new(e),
            ty: DataType::Boolean,
        }
    } else {
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::Tokenizer;

    fn pass(sql: &str) -> String {
        let toks = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        clause_pass(&toks)
            .iter()
            .map(|t| t.token.to_string())
            .collect::<String>()
            .replace(' ', "")
    }

    fn same(sql: &str, want: &str) {
        assert_eq!(pass(sql), want.replace(' ', ""));
    }

    #[test]
    fn clauses_become_arguments() {
        same(
            "JSON_VALUE(j, '$.a' RETURNING INT DEFAULT f(1, 2) ON EMPTY ERROR ON ERROR)",
            &format!(
                "JSON_VALUE(j, '$.a', '{MARK}RETURNING=INT;EMPTY=DEFAULT:0;ERROR=ERROR', f(1, 2))"
            ),
        );
        same(
            "JSON_QUERY(JSON_QUERY(j, '$' WITH WRAPPER), '$[0]' WITH CONDITIONAL ARRAY WRAPPER EMPTY OBJECT ON ERROR)",
            &format!("JSON_QUERY(JSON_QUERY(j, '$', '{MARK}WRAPPER=UNCONDITIONAL'), '$[0]', '{MARK}WRAPPER=CONDITIONAL;ERROR=EMPTY_OBJECT')"),
        );
        // no clauses, or clauses that do not parse: untouched
        same("JSON_VALUE(j, p)", "JSON_VALUE(j, p)");
        same("JSON_EXISTS(j, '$' NULL ON)", "JSON_EXISTS(j, '$' NULL ON)");
    }
}

#[cfg(test)]
mod build_tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::Tokenizer;

    fn pass(sql: &str) -> String {
        let toks = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        build_pass(&toks)
            .iter()
            .map(|t| t.token.to_string())
            .collect::<String>()
            .replace(' ', "")
    }

    #[test]
    fn key_value_pairs_and_on_null_become_arguments() {
        assert_eq!(
            pass("JSON_OBJECT(KEY 'a' VALUE x, 'b' VALUE JSON_ARRAY(y, key NULL ON NULL) ABSENT ON NULL)"),
            format!("JSON_OBJECT('a',x,'b',JSON_ARRAY(y,key,'{BUILD_MARK}NULL'),'{BUILD_MARK}ABSENT')")
        );
        assert_eq!(
            pass("JSON_ARRAY(ABSENT ON NULL)"),
            format!("JSON_ARRAY('{BUILD_MARK}ABSENT')")
        );
        assert_eq!(pass("JSON_OBJECT()"), "JSON_OBJECT()");
        assert_eq!(pass("f(a, (b)) VALUE"), "f(a,(b))VALUE");
        assert_eq!(
            pass("JSON_OBJECT('k' VALUE f(value))"),
            "JSON_OBJECT('k',f(value))"
        );
        // a column named `value` or `key`
        assert_eq!(
            pass("JSON_OBJECT('k' VALUE value, value VALUE key, KEY key VALUE value)"),
            "JSON_OBJECT('k',value,value,key,key,value)"
        );
    }
}
