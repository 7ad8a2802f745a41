//! Flink SQL scripts: `${VAR}` substitution, splitting into statements, and parsing each one.
//!
//! Parsing uses sqlparser's tokenizer and parser, plus what no sqlparser dialect reads: Flink's
//! `CREATE TABLE` (computed columns, `WATERMARK FOR`, `METADATA`, `PRIMARY KEY ... NOT ENFORCED`,
//! `WITH ('k' = 'v')`), `SET 'k' = 'v'`, statement sets, and the `TABLE t` / `PARTITION BY` forms
//! inside window table functions (rewritten on tokens to `t, PARTITION_BY(k)` before parsing).

use crate::error::{Result, SqlError};
use sqlparser::ast::{Expr, Ident, ObjectName, Query};
use sqlparser::dialect::GenericDialect;

sqlparser::derive_dialect!(
    FlinkDialect,
    GenericDialect,
    preserve_type_id = true,
    overrides = { supports_table_versioning = true }
);
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace};
use std::collections::BTreeMap;
use tillflow_types::DataType;

/// The pseudo-function the token pass turns `PARTITION BY` inside a window TVF into.
pub const PARTITION_BY_FN: &str = "__PARTITION_BY";
/// What `MODEL m` in a function's arguments (`ML_PREDICT(TABLE t, MODEL m, …)`) is rewritten to:
/// `__MODEL(m)`, which sqlparser reads as a call.
pub const MODEL_FN: &str = "__MODEL";

/// One statement of a script, with the line it starts on.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// 1-based line of the statement's first token.
    pub line: u64,
    /// What it says.
    pub kind: StmtKind,
    /// `/*+ OPTIONS(…) */` table hints: the hidden tables the statement reads or writes instead.
    pub hints: Vec<TableHint>,
    /// What the user should know about the statement's hints (query hints without effect).
    pub notices: Vec<String>,
}

/// A table reference with `/*+ OPTIONS('k' = 'v') */`: the statement names `derived`, a copy of
/// table `base` whose options are `options` merged over its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHint {
    /// The hidden catalog name the reference was rewritten to.
    pub derived: String,
    /// The table the user named.
    pub base: String,
    /// The dynamic options.
    pub options: BTreeMap<String, String>,
}

/// Query hints that only steer Flink's join strategy: they cannot change results.
const STRATEGY_HINTS: &[&str] = &[
    "BROADCAST",
    "SHUFFLE_HASH",
    "SHUFFLE_MERGE",
    "NEST_LOOP",
    "LOOKUP",
];

/// The statements tillflow runs.
#[derive(Debug, Clone)]
pub enum StmtKind {
    /// `SET 'key' = 'value'`
    Set {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// `SET` alone: list the session's settings.
    SetList,
    /// `RESET 'key'`, or `RESET` alone (every key).
    Reset {
        /// The key; None resets every key.
        key: Option<String>,
    },
    /// `CREATE TABLE ...` (with or without `AS SELECT`)
    CreateTable(Box<CreateTable>),
    /// `CREATE [TEMPORARY] VIEW name AS query`
    CreateView {
        /// View name.
        name: String,
        /// Optional column names.
        columns: Vec<String>,
        /// The query.
        query: Box<Query>,
        /// `IF NOT EXISTS`
        if_not_exists: bool,
    },
    /// `INSERT INTO t SELECT ...`
    Insert(Insert),
    /// `EXECUTE STATEMENT SET BEGIN ... END`
    StatementSet(Vec<Insert>),
    /// A bare query: its rows are printed.
    Select(Box<Query>),
    /// `DROP [TEMPORARY] TABLE|VIEW [IF EXISTS] name`
    Drop {
        /// Name.
        name: String,
        /// `IF EXISTS`
        if_exists: bool,
    },
    /// `CREATE [TEMPORARY [SYSTEM]] FUNCTION [IF NOT EXISTS] name AS 'target' [LANGUAGE …]`
    CreateFunction {
        /// The definition.
        def: crate::udf::FunctionDef,
        /// `IF NOT EXISTS`
        if_not_exists: bool,
    },
    /// `DROP [TEMPORARY [SYSTEM]] FUNCTION [IF EXISTS] name`
    DropFunction {
        /// Name.
        name: String,
        /// `IF EXISTS`
        if_exists: bool,
    },
    /// `CREATE [TEMPORARY] MODEL [IF NOT EXISTS] name INPUT (…) OUTPUT (…) WITH (…)`
    CreateModel {
        /// The definition (checked).
        def: Box<crate::model::ModelDef>,
        /// `IF NOT EXISTS`
        if_not_exists: bool,
    },
    /// `DROP [TEMPORARY] MODEL [IF EXISTS] name`
    DropModel {
        /// Name.
        name: String,
        /// `IF EXISTS`
        if_exists: bool,
    },
    /// `SHOW …`: printed as Flink's SQL client prints it.
    Show(Show),
    /// `DESCRIBE t` / `DESC t` (and `SHOW COLUMNS FROM t`, without the comment column).
    Describe {
        /// The table or view.
        name: String,
        /// `SHOW COLUMNS`: Flink's six columns, without `comment`.
        columns_only: bool,
    },
    /// `EXPLAIN [PLAN FOR] <query or INSERT>`: the statement's plan, printed; nothing runs.
    Explain(Box<StmtKind>),
    /// `USE [CATALOG] name` / `USE catalog.database`: only tillflow's one catalog and database.
    Use {
        /// `USE CATALOG`.
        catalog: bool,
        /// The name as written.
        name: String,
    },
}

/// What a `SHOW` statement lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show {
    /// `SHOW TABLES`
    Tables,
    /// `SHOW VIEWS`
    Views,
    /// `SHOW [USER] FUNCTIONS`
    Functions {
        /// `USER`: only user-defined functions (tillflow has none).
        user: bool,
    },
    /// `SHOW CATALOGS`
    Catalogs,
    /// `SHOW DATABASES`
    Databases,
    /// `SHOW CURRENT CATALOG`
    CurrentCatalog,
    /// `SHOW CURRENT DATABASE`
    CurrentDatabase,
    /// `SHOW CREATE TABLE t`
    CreateTable(String),
    /// `SHOW CREATE VIEW v`
    CreateView(String),
    /// `SHOW MODELS`
    Models,
    /// `SHOW CREATE MODEL m`
    CreateModel(String),
    /// `DESCRIBE MODEL m`: its INPUT and OUTPUT columns.
    DescribeModel(String),
}

/// `INSERT INTO table [(cols)] query`.
#[derive(Debug, Clone)]
pub struct Insert {
    /// Target table.
    pub table: String,
    /// Target columns, if listed.
    pub columns: Vec<String>,
    /// The query.
    pub query: Box<Query>,
    /// Line of the INSERT.
    pub line: u64,
}

/// A column of `CREATE TABLE`.
#[derive(Debug, Clone)]
pub enum ColumnDef {
    /// `name TYPE [NOT NULL]`
    Physical {
        /// Name.
        name: String,
        /// Type.
        data_type: DataType,
        /// False with NOT NULL.
        nullable: bool,
    },
    /// `name AS expr`
    Computed {
        /// Name.
        name: String,
        /// Expression over the physical columns.
        expr: Box<Expr>,
    },
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`
    Metadata {
        /// Name.
        name: String,
        /// Type.
        data_type: DataType,
        /// Metadata key (defaults to the name).
        key: String,
        /// VIRTUAL: read-only.
        is_virtual: bool,
    },
}

impl ColumnDef {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            ColumnDef::Physical { name, .. }
            | ColumnDef::Computed { name, .. }
            | ColumnDef::Metadata { name, .. } => name,
        }
    }
}

/// `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// Name.
    pub name: String,
    /// Columns in order (empty for `CREATE TABLE t WITH (...) AS SELECT`).
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR col AS expr`
    pub watermark: Option<(String, Expr)>,
    /// `PRIMARY KEY (...) NOT ENFORCED`
    pub primary_key: Vec<String>,
    /// `WITH (...)` options in order.
    pub options: BTreeMap<String, String>,
    /// Whether a WITH clause was given.
    pub has_with: bool,
    /// `AS query` (CTAS).
    pub query: Option<Box<Query>>,
    /// `IF NOT EXISTS`
    pub if_not_exists: bool,
    /// `COMMENT '…'` of columns, by column name.
    pub column_comments: BTreeMap<String, String>,
    /// The table's `COMMENT '…'`.
    pub comment: Option<String>,
    /// `PARTITIONED BY (…)` columns.
    pub partition_keys: Vec<String>,
}

/// Replaces `${NAME}` with `vars[NAME]`, else the environment variable NAME.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find("${") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[p..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value = vars
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .ok_or_else(|| SqlError::MissingVariable(name.to_owned()))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn perr(line: u64, e: ParserError) -> SqlError {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => format!(
            "the statement nests deeper than {} levels (parentheses, subqueries, CASEs inside each other); compute parts of it in a view",
            crate::limits::MAX_EXPRESSION_DEPTH
        ),
    };
    SqlError::Parse { line, message }
}

fn is_ws(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

fn word_is(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// True when a statement's first words (up to four, blanks left out) open a statement set:
/// `EXECUTE STATEMENT SET BEGIN`, or the older `BEGIN STATEMENT SET`.
fn opens_statement_set(words: &[&Token]) -> bool {
    match words {
        [a, b, c, d, ..] if word_is(a, "EXECUTE") => {
            word_is(b, "STATEMENT") && word_is(c, "SET") && word_is(d, "BEGIN")
        }
        [a, b, c, ..] => word_is(a, "BEGIN") && word_is(b, "STATEMENT") && word_is(c, "SET"),
        _ => false,
    }
}

/// True when `text` ends with a whole statement, as the SQL client reads it: its last token is a
/// `;` outside quotes and comments and, for a statement set (`EXECUTE STATEMENT SET BEGIN …` or
/// `BEGIN STATEMENT SET; …`), after the set's `END`. Text the tokenizer cannot read for another
/// reason than an unclosed quote, quoted name or comment counts as complete, so its error is shown at once.
pub fn is_complete(text: &str) -> bool {
    let dialect = FlinkDialect::new();
    let tokens = match Tokenizer::new(&dialect, text).tokenize() {
        Ok(tokens) => tokens,
        Err(e) => {
            let m = e.message.to_ascii_lowercase();
            return !(m.contains("unterminated") || m.contains("eof"));
        }
    };
    let significant: Vec<&Token> = tokens
        .iter()
        .filter(|t| !is_ws(t) && **t != Token::EOF)
        .collect();
    let Some(last) = significant.last() else {
        return false;
    };
    if **last != Token::SemiColon {
        return false;
    }
    let words: Vec<&Token> = significant
        .iter()
        .copied()
        .filter(|t| **t != Token::SemiColon)
        .take(4)
        .collect();
    !opens_statement_set(&words)
        || significant
            .iter()
            .rev()
            .find(|t| ***t != Token::SemiColon)
            .is_some_and(|t| word_is(t, "END"))
}

/// Parses a whole script (after substitution).
pub fn parse_script(text: &str) -> Result<Vec<Stmt>> {
    let dialect = FlinkDialect::new();
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse {
            line: e.location.line,
            message: e.message,
        })?;
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| match &t.token {
            Token::Whitespace(Whitespace::SingleLineComment { .. }) => false,
            // `/*+ … */` hints stay for parse_statement; other comments go
            Token::Whitespace(Whitespace::MultiLineComment(c)) => c.starts_with('+'),
            _ => true,
        })
        .collect();
    let mut stmts = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        // skip separators
        while i < tokens.len() && (is_ws(&tokens[i].token) || tokens[i].token == Token::SemiColon) {
            i += 1;
        }
        if i >= tokens.len() || tokens[i].token == Token::EOF {
            break;
        }
        let line = tokens[i].span.start.line;
        let words: Vec<&Token> = tokens[i..]
            .iter()
            .map(|t| &t.token)
            .filter(|t| !is_ws(t))
            .take(4)
            .collect();
        if opens_statement_set(&words) {
            // skip the header up to BEGIN (or past `BEGIN STATEMENT SET;`)
            let legacy = word_is(words[0], "BEGIN");
            let mut seen = 0;
            while i < tokens.len() && seen < if legacy { 3 } else { 4 } {
                if !is_ws(&tokens[i].token) {
                    seen += 1;
                }
                i += 1;
            }
            let mut inserts = Vec::new();
            let mut hints = Vec::new();
            let mut notices = Vec::new();
            loop {
                while i < tokens.len()
                    && (is_ws(&tokens[i].token) || tokens[i].token == Token::SemiColon)
                {
                    i += 1;
                }
                if i >= tokens.len() || tokens[i].token == Token::EOF {
                    return Err(SqlError::Parse {
                        line,
                        message: "statement set is missing its END".into(),
                    });
                }
                if word_is(&tokens[i].token, "END") {
                    i += 1;
                    break;
                }
                let start = i;
                while i < tokens.len()
                    && tokens[i].token != Token::SemiColon
                    && tokens[i].token != Token::EOF
                {
                    i += 1;
                }
                let mut st = parse_statement(&tokens[start..i])?;
                hints.append(&mut st.hints);
                notices.append(&mut st.notices);
                match st.kind {
                    StmtKind::Insert(ins) => inserts.push(ins),
                    _ => {
                        return Err(SqlError::Parse {
                            line: st.line,
                            message: "a statement set holds only INSERT statements".into(),
                        })
                    }
                }
            }
            stmts.push(Stmt {
                line,
                kind: StmtKind::StatementSet(inserts),
                hints,
                notices,
            });
            continue;
        }
        let start = i;
        while i < tokens.len()
            && tokens[i].token != Token::SemiColon
            && tokens[i].token != Token::EOF
        {
            i += 1;
        }
        stmts.push(parse_statement(&tokens[start..i])?);
    }
    Ok(stmts)
}

/// One hint of a `/*+ … */` comment: its name and arguments (`'k' = 'v'` pairs or names).
pub(crate) struct Hint {
    pub(crate) name: String,
    pub(crate) pairs: Vec<(String, String)>,
}

fn hint_err(line: u64, message: String) -> SqlError {
    SqlError::Parse { line, message }
}

/// Parses the text of a hint comment (after the `+`): `NAME[(args)] [, NAME[(args)]]…`.
pub(crate) fn parse_hints(text: &str, line: u64) -> Result<Vec<Hint>> {
    let dialect = FlinkDialect::new();
    let toks: Vec<Token> = Tokenizer::new(&dialect, text)
        .tokenize()
        .map_err(|e| hint_err(line, format!("hint /*+{text}*/ does not parse: {e}")))?
        .into_iter()
        .filter(|t| !is_ws(t))
        .collect();
    let mut hints = Vec::new();
    let mut i = 0;
    let bad = |what: &str| {
        hint_err(
            line,
            format!(
                "hint /*+{}*/ does not parse: {what}",
                text.chars().take(200).collect::<String>()
            ),
        )
    };
    while i < toks.len() {
        let Token::Word(w) = &toks[i] else {
            return Err(bad("expected a hint name"));
        };
        let mut h = Hint {
            name: w.value.to_ascii_uppercase(),
            pairs: Vec::new(),
        };
        i += 1;
        if toks.get(i) == Some(&Token::LParen) {
            i += 1;
            while i < toks.len() && toks[i] != Token::RParen {
                match (&toks[i], toks.get(i + 1), toks.get(i + 2)) {
                    (
                        Token::SingleQuotedString(k),
                        Some(Token::Eq),
                        Some(Token::SingleQuotedString(v)),
                    ) => {
                        h.pairs.push((k.clone(), v.clone()));
                        i += 3;
                    }
                    (Token::Word(n), _, _) => {
                        h.pairs.push((n.value.clone(), String::new()));
                        i += 1;
                    }
                    (Token::Comma | Token::Period, _, _) => i += 1,
                    _ => return Err(bad("expected 'key' = 'value' or a name")),
                }
            }
            if toks.get(i) != Some(&Token::RParen) {
                return Err(bad("missing `)`"));
            }
            i += 1;
        }
        hints.push(h);
        if toks.get(i) == Some(&Token::Comma) {
            i += 1;
        }
    }
    Ok(hints)
}

/// Handles the `/*+ … */` comments of one statement: a table hint `OPTIONS('k' = 'v')` after a
/// table name rewrites the reference to a hidden derived table (aliased to the name the user
/// wrote, so `t.col` still resolves); a query hint after SELECT that only steers the join
/// strategy is noted; anything else is refused naming the hint.
#[allow(clippy::type_complexity)]
fn apply_hints(
    tokens: &[TokenWithSpan],
    line: u64,
) -> Result<(Vec<TokenWithSpan>, Vec<TableHint>, Vec<String>)> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut hints = Vec::new();
    let mut notices = Vec::new();
    let significant = |toks: &[TokenWithSpan], from_end: usize| {
        toks.iter()
            .rev()
            .filter(|t| !is_ws(&t.token))
            .nth(from_end)
            .map(|t| t.token.clone())
    };
    for (i, t) in tokens.iter().enumerate() {
        let Token::Whitespace(Whitespace::MultiLineComment(c)) = &t.token else {
            out.push(t.clone());
            continue;
        };
        let Some(text) = c.strip_prefix('+') else {
            continue;
        };
        let at = t.span.start.line.max(line);
        let parsed = parse_hints(text, at)?;
        let prev = significant(&out, 0);
        if matches!(&prev, Some(Token::Word(w)) if w.keyword == Keyword::SELECT && w.quote_style.is_none())
        {
            let mut keep = false;
            for h in parsed {
                if h.name == "STATE_TTL" {
                    // checked here, applied by the planner to this SELECT's join or aggregate
                    // (the comment stays for the parser, which attaches it to the SELECT)
                    if h.pairs.is_empty() {
                        return Err(hint_err(at, "STATE_TTL needs 'table or alias' = 'ttl' pairs, as STATE_TTL('orders' = '1d')".into()));
                    }
                    for (k, v) in &h.pairs {
                        if tillflow_types::temporal::parse_duration_micros(v).is_none() {
                            return Err(hint_err(at, format!(
                                "STATE_TTL('{}' = '{}'): not a duration (write '1 d', '12 h', '90 min' or '3600000 ms')",
                                k.chars().take(100).collect::<String>(),
                                v.chars().take(100).collect::<String>()
                            )));
                        }
                    }
                    keep = true;
                } else if STRATEGY_HINTS.contains(&h.name.as_str()) {
                    notices.push(format!(
                        "line {at}: query hint {} has no effect in tillflow: it steers Flink's join strategy, which cannot change results; tillflow plans joins its own way",
                        h.name
                    ));
                } else if h.name == "OPTIONS" {
                    return Err(hint_err(at, "OPTIONS is a table hint: write it after the table name (FROM t /*+ OPTIONS('k' = 'v') */)".into()));
                } else {
                    return Err(hint_err(at, format!(
                        "query hint {} is not supported (tillflow knows the query hints STATE_TTL, {} and the table hint OPTIONS)",
                        h.name.chars().take(100).collect::<String>(),
                        STRATEGY_HINTS.join(", ")
                    )));
                }
            }
            if keep {
                out.push(t.clone());
            }
            continue;
        }
        let Some(Token::Word(name)) = prev.filter(|_| significant(&out, 1) != Some(Token::Period))
        else {
            return Err(hint_err(
                at,
                "a hint /*+ … */ must follow SELECT (a query hint) or a table name (OPTIONS)"
                    .into(),
            ));
        };
        let mut options = BTreeMap::new();
        for h in parsed {
            if h.name != "OPTIONS" {
                return Err(hint_err(
                    at,
                    if STRATEGY_HINTS.contains(&h.name.as_str()) || h.name == "STATE_TTL" {
                        format!("{} is a query hint: write it after SELECT", h.name)
                    } else {
                        format!(
                            "table hint {} is not supported (tillflow knows the table hint OPTIONS)",
                            h.name.chars().take(100).collect::<String>()
                        )
                    },
                ));
            }
            for (k, v) in h.pairs {
                options.insert(k, v);
            }
        }
        // the reference becomes a hidden table; the user's name stays as its alias
        let derived = format!("{} /*+ OPTIONS #{} */", name.value, hints.len() + 1);
        let is_target = matches!(significant(&out, 1), Some(Token::Word(w)) if matches!(w.keyword, Keyword::INTO | Keyword::OVERWRITE | Keyword::TABLE));
        let Some(pos) = out.iter().rposition(|x| !is_ws(&x.token)) else {
            continue;
        };
        let span = out[pos].span;
        out[pos] = TokenWithSpan::new(Token::make_word(&derived, Some('`')), span);
        let next = tokens[i + 1..].iter().find(|x| !is_ws(&x.token));
        let has_alias = matches!(next.map(|x| &x.token), Some(Token::Word(w)) if w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword || w.quote_style.is_some());
        if !is_target && !has_alias {
            for tok in [
                Token::Whitespace(Whitespace::Space),
                Token::make_keyword("AS"),
                Token::Whitespace(Whitespace::Space),
                Token::Word(name.clone()),
                Token::Whitespace(Whitespace::Space),
            ] {
                out.push(TokenWithSpan::new(tok, span));
            }
        }
        hints.push(TableHint {
            derived,
            base: name.value.clone(),
            options,
        });
    }
    Ok((out, hints, notices))
}

/// Rewrites `TABLE t [PARTITION BY k | (k1, k2)]` inside function arguments to
/// `t[, __PARTITION_BY(k...)]`, and `(SELECT …) PARTITION BY k` to `(SELECT …), __PARTITION_BY(k)`;
/// `MODEL m` inside function arguments to `__MODEL(m)`, and Flink's `MAP[…]` to `MAP(…)`;
/// refuses `TABLE (SELECT …)`, which Flink does not parse.
fn flink_token_pass(tokens: &[TokenWithSpan]) -> Result<Vec<TokenWithSpan>> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&j| !is_ws(&tokens[j].token))
        .collect();
    let mut drop = vec![false; tokens.len()];
    let mut insert_after: BTreeMap<usize, Vec<Token>> = BTreeMap::new();
    for (k, &j) in sig.iter().enumerate() {
        if k == 0 || k + 1 >= sig.len() {
            continue;
        }
        let prev = &tokens[sig[k - 1]].token;
        let next = &tokens[sig[k + 1]].token;
        let after_next = sig.get(k + 2).map(|&x| &tokens[x].token);
        if !matches!(prev, Token::LParen | Token::Comma | Token::RArrow) {
            continue;
        }
        let is_query = |t: &Token| word_is(t, "SELECT") || word_is(t, "WITH");
        let mut t = k + 2;
        if tokens[j].token == Token::LParen && is_query(next) {
            // `(SELECT …)` as a table argument: PARTITION BY may follow its closing parenthesis
            let mut depth = 0usize;
            let mut m = k;
            while let Some(&x) = sig.get(m) {
                match tokens[x].token {
                    Token::LParen => depth += 1,
                    Token::RParen => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                m += 1;
            }
            t = m + 1;
        } else if word_is(&tokens[j].token, "MODEL")
            && matches!(next, Token::Word(_))
            && enclosing_call(tokens, &sig, k).is_some_and(|f| {
                f.eq_ignore_ascii_case("ML_PREDICT") || f.eq_ignore_ascii_case("ML_EVALUATE")
            })
        {
            // `MODEL m` (or `MODEL cat.db.m`) as a function argument: `__MODEL(m)`
            drop[j] = true;
            insert_after.insert(j, vec![Token::make_word(MODEL_FN, None), Token::LParen]);
            let mut end = k + 1;
            while matches!(
                sig.get(end + 1).map(|&x| &tokens[x].token),
                Some(Token::Period)
            ) {
                end += 2;
            }
            insert_after
                .entry(sig[end])
                .or_default()
                .push(Token::RParen);
            continue;
        } else if word_is(&tokens[j].token, "TABLE") {
            if *next == Token::LParen && after_next.is_some_and(is_query) {
                // Flink's parser refuses `TABLE (SELECT …)` too
                return Err(SqlError::Parse {
                    line: tokens[j].span.start.line,
                    message: "`TABLE (SELECT …)` is not Flink SQL (Flink 2.3 does not parse it either): pass the subquery without TABLE, as in HOP((SELECT …), DESCRIPTOR(ts), …)".into(),
                });
            }
            if !matches!(next, Token::Word(_)) || matches!(after_next, Some(Token::LParen)) {
                continue;
            }
            while matches!(sig.get(t).map(|&x| &tokens[x].token), Some(Token::Period)) {
                t += 2; // qualified name a.b.c
            }
            drop[j] = true;
        } else {
            continue;
        }
        // PARTITION BY after the table name
        if sig
            .get(t)
            .is_some_and(|&x| word_is(&tokens[x].token, "PARTITION"))
            && sig
                .get(t + 1)
                .is_some_and(|&x| word_is(&tokens[x].token, "BY"))
        {
            let (p, b) = (sig[t], sig[t + 1]);
            drop[p] = true;
            drop[b] = true;
            let mut repl = vec![
                Token::Comma,
                Token::Whitespace(Whitespace::Space),
                Token::make_word(PARTITION_BY_FN, None),
            ];
            let first = sig.get(t + 2).map(|&x| &tokens[x].token);
            if matches!(first, Some(Token::LParen)) {
                insert_after.insert(b, repl);
            } else if let Some(&key) = sig.get(t + 2) {
                repl.push(Token::LParen);
                insert_after.insert(b, repl);
                // close the parenthesis after the key (possibly qualified)
                let mut end = t + 2;
                while matches!(
                    sig.get(end + 1).map(|&x| &tokens[x].token),
                    Some(Token::Period)
                ) {
                    end += 2;
                }
                let _ = key;
                insert_after
                    .entry(sig[end])
                    .or_default()
                    .push(Token::RParen);
            }
        }
    }
    // Flink's value constructor `MAP[k, v, …]`, which sqlparser does not read: `MAP(k, v, …)`
    let mut replace: BTreeMap<usize, Token> = BTreeMap::new();
    for (k, &j) in sig.iter().enumerate() {
        if word_is(&tokens[j].token, "MAP")
            && sig.get(k + 1).map(|&x| &tokens[x].token) == Some(&Token::LBracket)
        {
            let mut depth = 0usize;
            for &x in &sig[k + 1..] {
                match tokens[x].token {
                    Token::LBracket => depth += 1,
                    Token::RBracket => {
                        depth -= 1;
                        if depth == 0 {
                            replace.insert(sig[k + 1], Token::LParen);
                            replace.insert(x, Token::RParen);
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut out = Vec::with_capacity(tokens.len() + 4);
    for (j, t) in tokens.iter().enumerate() {
        if let Some(r) = replace.get(&j) {
            out.push(TokenWithSpan::new(r.clone(), t.span));
        } else if !drop[j] {
            out.push(t.clone());
        }
        if let Some(extra) = insert_after.get(&j) {
            for tok in extra {
                out.push(TokenWithSpan::new(tok.clone(), t.span));
            }
        }
    }
    Ok(out)
}

/// The name of the call whose parentheses enclose significant token `k` (`sig` indexes the
/// significant tokens), if any.
fn enclosing_call<'a>(tokens: &'a [TokenWithSpan], sig: &[usize], k: usize) -> Option<&'a str> {
    let mut depth = 0usize;
    for m in (0..k).rev() {
        match &tokens[sig[m]].token {
            Token::RParen => depth += 1,
            Token::LParen if depth == 0 => {
                return match m.checked_sub(1).map(|p| &tokens[sig[p]].token) {
                    Some(Token::Word(w)) => Some(w.value.as_str()),
                    _ => None,
                };
            }
            Token::LParen => depth -= 1,
            _ => {}
        }
    }
    None
}

fn ident_text(i: &Ident) -> String {
    i.value.clone()
}

fn object_name(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| {
            p.as_ident()
                .map(ident_text)
                .unwrap_or_else(|| p.to_string())
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn peek_word(p: &Parser, w: &str) -> bool {
    word_is(&p.peek_token().token, w)
}

fn expect_end(p: &mut Parser, line: u64) -> Result<()> {
    let t = p.peek_token();
    if t.token != Token::EOF {
        return Err(SqlError::Parse {
            line: t.span.start.line.max(line),
            message: format!("unexpected `{}` at the end of the statement", t.token),
        });
    }
    Ok(())
}

/// `EXPLAIN` details Flink takes; tillflow always prints the changelog mode.
const EXPLAIN_DETAILS: &[&str] = &[
    "ESTIMATED_COST",
    "CHANGELOG_MODE",
    "JSON_EXECUTION_PLAN",
    "PLAN_ADVICE",
];

fn parse_statement(tokens: &[TokenWithSpan]) -> Result<Stmt> {
    let line = tokens
        .iter()
        .find(|t| !is_ws(&t.token))
        .map(|t| t.span.start.line)
        .unwrap_or(0);
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&j| !is_ws(&tokens[j].token))
        .collect();
    if sig
        .first()
        .is_some_and(|&j| word_is(&tokens[j].token, "EXPLAIN"))
    {
        // EXPLAIN [PLAN FOR | detail, …] statement
        let mut k = 1;
        let at = |k: usize| sig.get(k).map(|&j| &tokens[j].token);
        if at(k).is_some_and(|t| word_is(t, "PLAN")) && at(k + 1).is_some_and(|t| word_is(t, "FOR"))
        {
            k += 2;
        } else {
            while let Some(Token::Word(w)) = at(k) {
                let word = w.value.to_ascii_uppercase();
                if !EXPLAIN_DETAILS.contains(&word.as_str()) {
                    break;
                }
                if word != "CHANGELOG_MODE" {
                    return Err(SqlError::Parse {
                        line,
                        message: format!("EXPLAIN {word} is not supported: tillflow prints the optimized plan with each node's changelog mode (EXPLAIN, EXPLAIN PLAN FOR or EXPLAIN CHANGELOG_MODE)"),
                    });
                }
                k += 1;
                if at(k) == Some(&Token::Comma) {
                    k += 1;
                }
            }
        }
        let Some(&start) = sig.get(k) else {
            return Err(SqlError::Parse {
                line,
                message: "EXPLAIN needs a query or an INSERT to explain".into(),
            });
        };
        let inner = parse_statement(&tokens[start..])?;
        return match inner.kind {
            kind @ (StmtKind::Select(_) | StmtKind::Insert(_)) => Ok(Stmt {
                line,
                kind: StmtKind::Explain(Box::new(kind)),
                hints: inner.hints,
                notices: inner.notices,
            }),
            other => Err(SqlError::Parse {
                line,
                message: format!(
                    "EXPLAIN takes a query or an INSERT, not {}",
                    format!("{other:?}")
                        .split([' ', '(', '{'])
                        .next()
                        .unwrap_or("this statement")
                ),
            }),
        };
    }
    let (hinted, hints, notices) = apply_hints(tokens, line)?;
    let mut toks = crate::json::build_pass(&crate::json::clause_pass(&flink_token_pass(&hinted)?));
    let end = toks
        .last()
        .map(|t| t.span.end)
        .unwrap_or(Location::new(0, 0));
    toks.push(TokenWithSpan::new(Token::EOF, Span::new(end, end)));
    let dialect = FlinkDialect::new();
    // sqlparser grows its stack as it recurses; its own default limit (50) would refuse a
    // 60-deep CASE with a misleading "unexpected token"
    let mut p = Parser::new(&dialect)
        .with_recursion_limit(crate::limits::MAX_EXPRESSION_DEPTH as usize)
        .with_tokens_with_locations(toks);
    let e = |err| perr(line, err);
    let kind = if p.parse_keyword(Keyword::SET) {
        if p.peek_token().token == Token::EOF {
            StmtKind::SetList
        } else {
            // Flink's SQL client takes `SET 'k' = 'v'` and the legacy unquoted `SET k = v`
            let key = match p.peek_token().token {
                Token::SingleQuotedString(_) => p.parse_literal_string().map_err(e)?,
                _ => raw_words(&mut p, true),
            };
            p.expect_token(&Token::Eq).map_err(e)?;
            let value = match p.peek_token().token {
                Token::SingleQuotedString(_) => p.parse_literal_string().map_err(e)?,
                _ => raw_words(&mut p, false),
            };
            StmtKind::Set { key, value }
        }
    } else if peek_word(&p, "RESET") {
        p.next_token();
        let key = match p.peek_token().token {
            Token::EOF => None,
            Token::SingleQuotedString(_) => Some(p.parse_literal_string().map_err(e)?),
            _ => Some(raw_words(&mut p, true)),
        };
        StmtKind::Reset { key }
    } else if p.parse_keyword(Keyword::CREATE) {
        let temporary = p.parse_keyword(Keyword::TEMPORARY);
        let system = temporary && peek_word(&p, "SYSTEM") && {
            p.next_token();
            true
        };
        if system && !peek_word(&p, "FUNCTION") {
            return Err(SqlError::Parse {
                line,
                message: "CREATE TEMPORARY SYSTEM is followed by FUNCTION".into(),
            });
        }
        if peek_word(&p, "FUNCTION") {
            p.next_token();
            parse_create_function(&mut p, line, temporary, system)?
        } else if peek_word(&p, "MODEL") {
            p.next_token();
            parse_create_model(&mut p, line, temporary)?
        } else if p.parse_keyword(Keyword::TABLE) {
            StmtKind::CreateTable(Box::new(parse_create_table(&mut p, line)?))
        } else if p.parse_keyword(Keyword::VIEW) {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false).map_err(e)?);
            let mut columns = Vec::new();
            if p.consume_token(&Token::LParen) {
                columns = p
                    .parse_comma_separated(|p| p.parse_identifier())
                    .map_err(e)?
                    .iter()
                    .map(ident_text)
                    .collect();
                p.expect_token(&Token::RParen).map_err(e)?;
            }
            p.expect_keyword(Keyword::AS).map_err(e)?;
            let query = p.parse_query().map_err(e)?;
            StmtKind::CreateView {
                name,
                columns,
                query,
                if_not_exists,
            }
        } else if peek_word(&p, "CATALOG") || peek_word(&p, "DATABASE") {
            let what = p.next_token().to_string().to_ascii_uppercase();
            let name = p
                .parse_object_name(false)
                .map(|n| object_name(&n))
                .unwrap_or_default();
            return Err(SqlError::Parse {
                line,
                message: format!(
                    "CREATE {what} {name} is not supported: tillflow has one catalog, default_catalog, with one database, default_database"
                ),
            });
        } else {
            return Err(SqlError::Parse {
                line,
                message: format!("unsupported CREATE statement near `{}` (supported: CREATE TABLE, CREATE [TEMPORARY] VIEW, CREATE [TEMPORARY [SYSTEM]] FUNCTION, CREATE [TEMPORARY] MODEL)", p.peek_token().token),
            });
        }
    } else if p.parse_keyword(Keyword::INSERT) {
        if !p.parse_keyword(Keyword::INTO) && !p.parse_keyword(Keyword::OVERWRITE) {
            return Err(SqlError::Parse {
                line,
                message: "expected INTO or OVERWRITE after INSERT".into(),
            });
        }
        let _ = p.parse_keyword(Keyword::TABLE);
        let table = object_name(&p.parse_object_name(false).map_err(e)?);
        let mut columns = Vec::new();
        if p.peek_token().token == Token::LParen
            && !matches!(p.peek_nth_token(1).token, Token::Word(ref w) if w.keyword == Keyword::SELECT || w.keyword == Keyword::WITH)
        {
            p.expect_token(&Token::LParen).map_err(e)?;
            columns = p
                .parse_comma_separated(|p| p.parse_identifier())
                .map_err(e)?
                .iter()
                .map(ident_text)
                .collect();
            p.expect_token(&Token::RParen).map_err(e)?;
        }
        let query = p.parse_query().map_err(e)?;
        StmtKind::Insert(Insert {
            table,
            columns,
            query,
            line,
        })
    } else if p.parse_keyword(Keyword::DROP) {
        let temporary = p.parse_keyword(Keyword::TEMPORARY);
        if temporary && peek_word(&p, "SYSTEM") {
            p.next_token();
        }
        if peek_word(&p, "FUNCTION") {
            p.next_token();
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = function_object_name(&mut p, line)?;
            StmtKind::DropFunction { name, if_exists }
        } else if peek_word(&p, "MODEL") {
            p.next_token();
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = function_object_name(&mut p, line)?;
            StmtKind::DropModel { name, if_exists }
        } else {
            if !p.parse_keyword(Keyword::TABLE) && !p.parse_keyword(Keyword::VIEW) {
                return Err(SqlError::Parse {
                    line,
                    message: "expected TABLE, VIEW, FUNCTION or MODEL after DROP".into(),
                });
            }
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false).map_err(e)?);
            StmtKind::Drop { name, if_exists }
        }
    } else if peek_word(&p, "SHOW") {
        p.next_token();
        parse_show(&mut p, line)?
    } else if peek_word(&p, "DESCRIBE") || peek_word(&p, "DESC") {
        p.next_token();
        if peek_word(&p, "MODEL") {
            p.next_token();
            let name = function_object_name(&mut p, line)?;
            expect_end(&mut p, line)?;
            return Ok(Stmt {
                line,
                kind: StmtKind::Show(Show::DescribeModel(name)),
                hints,
                notices,
            });
        }
        if peek_word(&p, "CATALOG") || peek_word(&p, "FUNCTION") {
            return Err(SqlError::Parse {
                line,
                message: format!(
                    "DESCRIBE {} is not supported (tillflow describes tables and views)",
                    p.peek_token().token.to_string().to_ascii_uppercase()
                ),
            });
        }
        let _ = p.parse_keyword(Keyword::TABLE);
        let name = object_name(&p.parse_object_name(false).map_err(e)?);
        StmtKind::Describe {
            name,
            columns_only: false,
        }
    } else if peek_word(&p, "USE") {
        p.next_token();
        let catalog = peek_word(&p, "CATALOG")
            && !matches!(p.peek_nth_token(1).token, Token::EOF | Token::Period);
        if catalog {
            p.next_token();
        }
        if peek_word(&p, "MODULES") {
            return Err(SqlError::Parse {
                line,
                message: "USE MODULES is not supported: tillflow has only Flink's core functions"
                    .into(),
            });
        }
        let name = object_name(&p.parse_object_name(false).map_err(e)?);
        StmtKind::Use { catalog, name }
    } else if matches!(p.peek_token().token, Token::Word(ref w) if matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES))
        || p.peek_token().token == Token::LParen
    {
        StmtKind::Select(p.parse_query().map_err(e)?)
    } else {
        return Err(SqlError::Parse {
            line,
            message: format!(
                "unsupported statement starting with `{}` (supported: SET, RESET, CREATE TABLE, CREATE VIEW, CREATE FUNCTION, INSERT INTO, EXECUTE STATEMENT SET, SELECT, DROP, SHOW, DESCRIBE, EXPLAIN, USE)",
                p.peek_token().token
            ),
        });
    };
    expect_end(&mut p, line)?;
    Ok(Stmt {
        line,
        kind,
        hints,
        notices,
    })
}

/// A function's name, `[default_catalog.][default_database.]name` (tillflow's one catalog
/// and database).
fn function_object_name(p: &mut Parser, line: u64) -> Result<String> {
    let n = p.parse_object_name(false).map_err(|err| perr(line, err))?;
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| {
                p.as_ident()
                    .map(ident_text)
                    .unwrap_or_else(|| p.to_string())
            })
            .collect();
    let (last, prefix) = match parts.split_last() {
        Some(x) => x,
        None => {
            return Err(SqlError::Parse {
                line,
                message: "a function name is missing".into(),
            })
        }
    };
    let ok = match prefix {
        [] => true,
        [db] => db == "default_database",
        [cat, db] => cat == "default_catalog" && db == "default_database",
        _ => false,
    };
    if !ok {
        return Err(SqlError::Parse {
            line,
            message: format!(
                "function {}: no such catalog or database (tillflow has one catalog, default_catalog, with one database, default_database)",
                parts.join(".")
            ),
        });
    }
    Ok(last.clone())
}

/// The rest of `CREATE [TEMPORARY [SYSTEM]] FUNCTION` (after `FUNCTION`): `[IF NOT EXISTS]
/// name AS 'target' [LANGUAGE JAVA|SCALA|PYTHON] [USING JAR …]`.
fn parse_create_function(
    p: &mut Parser,
    line: u64,
    temporary: bool,
    system: bool,
) -> Result<StmtKind> {
    use crate::udf::{FunctionBody, FunctionDef};
    let e = |err| perr(line, err);
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = function_object_name(p, line)?;
    p.expect_keyword(Keyword::AS).map_err(e)?;
    let target = match p.next_token().token {
        Token::SingleQuotedString(s) => s,
        Token::Word(w) => {
            // an unquoted `AS a.b.c`
            let mut s = w.value;
            while p.consume_token(&Token::Period) {
                match p.next_token().token {
                    Token::Word(w) => {
                        s.push('.');
                        s.push_str(&w.value);
                    }
                    other => {
                        return Err(SqlError::Parse {
                            line,
                            message: format!("expected a name after `{s}.`, found `{other}`"),
                        })
                    }
                }
            }
            s
        }
        other => {
            return Err(SqlError::Parse {
                line,
                message: format!(
                    "CREATE FUNCTION {name} AS needs the function: 'module.function' (LANGUAGE PYTHON) or a built-in's name, found `{other}`"
                ),
            })
        }
    };
    let language = if peek_word(p, "LANGUAGE") {
        p.next_token();
        p.next_token().token.to_string().to_ascii_uppercase()
    } else {
        // Flink's default
        "JAVA".to_owned()
    };
    if peek_word(p, "USING") {
        return Err(SqlError::Parse {
            line,
            message: format!(
                "CREATE FUNCTION {name} … USING JAR is not supported: tillflow runs no JVM code (write the function in Python, LANGUAGE PYTHON)"
            ),
        });
    }
    let shown = crate::udf::short_text(&target);
    let body = match language.as_str() {
        "PYTHON" => {
            let (module, attr) = target.rsplit_once('.').unwrap_or(("", &target));
            if module.is_empty() || attr.is_empty() {
                return Err(SqlError::Parse {
                    line,
                    message: format!(
                        "CREATE FUNCTION {name} AS '{shown}' LANGUAGE PYTHON: name the function as 'module.function' (the module on 'python.files' or Python's path)"
                    ),
                });
            }
            FunctionBody::Python { target }
        }
        "JAVA" | "SCALA" => {
            let upper = target.to_ascii_uppercase();
            if !crate::statements::is_builtin(&upper) {
                return Err(SqlError::Parse {
                    line,
                    message: format!(
                        "CREATE FUNCTION {name} AS '{shown}' (LANGUAGE {language}): tillflow runs no JVM code; write the function in Python (AS 'module.function' LANGUAGE PYTHON), or give a built-in function another name (AS 'HOLT_WINTERS')"
                    ),
                });
            }
            FunctionBody::Alias { builtin: upper }
        }
        other => {
            return Err(SqlError::Parse {
                line,
                message: format!(
                    "CREATE FUNCTION {name}: LANGUAGE {other} is not supported (PYTHON; or JAVA, Flink's default, naming a built-in function)"
                ),
            })
        }
    };
    Ok(StmtKind::CreateFunction {
        def: FunctionDef::new(&name, body, temporary, system),
        if_not_exists,
    })
}

/// The rest of a `SHOW` statement (after `SHOW`).
fn parse_show(p: &mut Parser, line: u64) -> Result<StmtKind> {
    let e = |err| perr(line, err);
    let word = match p.next_token().token {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        other => {
            return Err(SqlError::Parse {
                line,
                message: format!("SHOW what? (found `{other}`)"),
            })
        }
    };
    let show = match word.as_str() {
        "TABLES" => Show::Tables,
        "VIEWS" => Show::Views,
        "FUNCTIONS" => Show::Functions { user: false },
        "USER" if peek_word(p, "FUNCTIONS") => {
            p.next_token();
            Show::Functions { user: true }
        }
        "CATALOGS" => Show::Catalogs,
        "DATABASES" => Show::Databases,
        "CURRENT" if peek_word(p, "CATALOG") => {
            p.next_token();
            Show::CurrentCatalog
        }
        "CURRENT" if peek_word(p, "DATABASE") => {
            p.next_token();
            Show::CurrentDatabase
        }
        "MODELS" => Show::Models,
        "CREATE" if peek_word(p, "MODEL") => {
            p.next_token();
            Show::CreateModel(function_object_name(p, line)?)
        }
        "CREATE" if peek_word(p, "TABLE") || peek_word(p, "VIEW") => {
            let view = peek_word(p, "VIEW");
            p.next_token();
            let name = object_name(&p.parse_object_name(false).map_err(e)?);
            if view {
                Show::CreateView(name)
            } else {
                Show::CreateTable(name)
            }
        }
        "COLUMNS" => {
            if !p.parse_keyword(Keyword::FROM) && !p.parse_keyword(Keyword::IN) {
                return Err(SqlError::Parse {
                    line,
                    message: "SHOW COLUMNS needs FROM table".into(),
                });
            }
            let name = object_name(&p.parse_object_name(false).map_err(e)?);
            if p.peek_token().token != Token::EOF {
                return Err(SqlError::Parse {
                    line,
                    message: format!(
                        "SHOW COLUMNS FROM {name} takes no `{}` clause in tillflow (LIKE filters are not supported yet)",
                        p.peek_token().token
                    ),
                });
            }
            return Ok(StmtKind::Describe {
                name,
                columns_only: true,
            });
        }
        other => {
            return Err(SqlError::Parse {
                line,
                message: format!(
                    "SHOW {other} is not supported (tillflow shows TABLES, VIEWS, FUNCTIONS, MODELS, CATALOGS, DATABASES, CURRENT CATALOG, CURRENT DATABASE, CREATE TABLE, CREATE VIEW, CREATE MODEL, COLUMNS)"
                ),
            })
        }
    };
    // `SHOW TABLES FROM db`, `… LIKE 'p'`: tillflow has one database; LIKE is not supported yet
    if matches!(show, Show::Tables | Show::Views | Show::Functions { .. })
        && (p.parse_keyword(Keyword::FROM) || p.parse_keyword(Keyword::IN))
    {
        let db = object_name(&p.parse_object_name(false).map_err(e)?);
        if !matches!(
            db.as_str(),
            "default_database" | "default_catalog.default_database"
        ) {
            return Err(SqlError::Parse {
                line,
                message: format!(
                    "SHOW {word} FROM {db}: no such database (tillflow has one catalog, default_catalog, with one database, default_database)"
                ),
            });
        }
    }
    if p.peek_token().token != Token::EOF {
        return Err(SqlError::Parse {
            line,
            message: format!(
                "SHOW {word}: `{}` is not supported here (LIKE filters are not supported yet)",
                p.peek_token().token
            ),
        });
    }
    Ok(StmtKind::Show(show))
}

/// The unquoted tokens up to `=` (when `stop_at_eq`) or the end, joined: a legacy
/// unquoted `SET` key (`table.exec.mini-batch.enabled`) or value (`5s`, `-1`).
fn raw_words(p: &mut Parser, stop_at_eq: bool) -> String {
    let mut parts = Vec::new();
    loop {
        let t = p.peek_token().token;
        if t == Token::EOF || (stop_at_eq && t == Token::Eq) {
            break;
        }
        p.next_token();
        parts.push(match t {
            Token::Word(w) => w.value,
            other => other.to_string(),
        });
    }
    parts.concat()
}

fn parse_options(p: &mut Parser, line: u64) -> Result<BTreeMap<String, String>> {
    let e = |err| perr(line, err);
    let mut options = BTreeMap::new();
    p.expect_token(&Token::LParen).map_err(e)?;
    if p.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let k = p.parse_literal_string().map_err(e)?;
        p.expect_token(&Token::Eq).map_err(e)?;
        let v = p.parse_literal_string().map_err(e)?;
        options.insert(k, v);
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen).map_err(e)?;
        break;
    }
    Ok(options)
}

/// The text of a nested type — `ROW<…>`, `ROW(…)`, `ARRAY<…>`, `MULTISET<…>`, `MAP<…>`, which
/// no sqlparser dialect reads as Flink writes them — taken token by token up to its closing
/// bracket (`>>` closes two), or None when the next type is not one.
fn nested_type_text(p: &mut Parser) -> Option<String> {
    use sqlparser::tokenizer::Token as T;
    let opens = match &p.peek_token().token {
        Token::Word(w) => match w.value.to_ascii_uppercase().as_str() {
            "ROW" => matches!(p.peek_nth_token(1).token, T::Lt | T::LParen),
            "ARRAY" | "MULTISET" | "MAP" => p.peek_nth_token(1).token == T::Lt,
            _ => false,
        },
        _ => false,
    };
    if !opens {
        return None;
    }
    let mut text = p.next_token().to_string();
    let mut depth = 0i32;
    loop {
        let t = p.next_token();
        match &t.token {
            T::Lt | T::LParen => depth += 1,
            T::Gt | T::RParen => depth -= 1,
            T::ShiftRight => depth -= 2,
            T::EOF => return Some(text),
            _ => {}
        }
        let piece = t.to_string();
        if !matches!(
            t.token,
            T::Comma | T::Lt | T::Gt | T::ShiftRight | T::LParen | T::RParen
        ) && !text.ends_with(['<', '('])
        {
            text.push(' ');
        }
        text.push_str(&piece);
        if depth <= 0 {
            return Some(text);
        }
    }
}

fn parse_create_table(p: &mut Parser, line: u64) -> Result<CreateTable> {
    let e = |err| perr(line, err);
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&p.parse_object_name(false).map_err(e)?);
    let mut t = CreateTable {
        name,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: BTreeMap::new(),
        has_with: false,
        query: None,
        if_not_exists,
        column_comments: BTreeMap::new(),
        comment: None,
        partition_keys: Vec::new(),
    };
    if p.consume_token(&Token::LParen) {
        loop {
            if peek_word(p, "WATERMARK") {
                p.next_token();
                p.expect_keyword(Keyword::FOR).map_err(e)?;
                let col = ident_text(&p.parse_identifier().map_err(e)?);
                p.expect_keyword(Keyword::AS).map_err(e)?;
                let expr = p.parse_expr().map_err(e)?;
                t.watermark = Some((col, expr));
            } else if p.parse_keyword(Keyword::CONSTRAINT) || peek_word(p, "PRIMARY") {
                if !peek_word(p, "PRIMARY") {
                    p.parse_identifier().map_err(e)?;
                }
                p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])
                    .map_err(e)?;
                p.expect_token(&Token::LParen).map_err(e)?;
                t.primary_key = p
                    .parse_comma_separated(|p| p.parse_identifier())
                    .map_err(e)?
                    .iter()
                    .map(ident_text)
                    .collect();
                p.expect_token(&Token::RParen).map_err(e)?;
                expect_not_enforced(p, line)?;
            } else {
                let col = ident_text(&p.parse_identifier().map_err(e)?);
                if p.parse_keyword(Keyword::AS) {
                    let expr = p.parse_expr().map_err(e)?;
                    if let Some(c) = parse_comment(p, line)? {
                        t.column_comments.insert(col.clone(), c);
                    }
                    t.columns.push(ColumnDef::Computed {
                        name: col,
                        expr: Box::new(expr),
                    });
                } else {
                    let data_type = parse_column_type(p, line, &col)?;
                    let mut nullable = true;
                    let mut metadata = None;
                    loop {
                        if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                            nullable = false;
                        } else if p.parse_keyword(Keyword::NULL) {
                        } else if peek_word(p, "METADATA") {
                            p.next_token();
                            let mut key = col.clone();
                            if p.parse_keyword(Keyword::FROM) {
                                key = p.parse_literal_string().map_err(e)?;
                            }
                            let is_virtual = if peek_word(p, "VIRTUAL") {
                                p.next_token();
                                true
                            } else {
                                false
                            };
                            metadata = Some((key, is_virtual));
                        } else if peek_word(p, "PRIMARY") {
                            p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])
                                .map_err(e)?;
                            expect_not_enforced(p, line)?;
                            t.primary_key = vec![col.clone()];
                        } else if peek_word(p, "COMMENT") {
                            if let Some(c) = parse_comment(p, line)? {
                                t.column_comments.insert(col.clone(), c);
                            }
                        } else {
                            break;
                        }
                    }
                    t.columns.push(match metadata {
                        Some((key, is_virtual)) => ColumnDef::Metadata {
                            name: col,
                            data_type,
                            key,
                            is_virtual,
                        },
                        None => ColumnDef::Physical {
                            name: col,
                            data_type,
                            nullable,
                        },
                    });
                }
            }
            if p.consume_token(&Token::Comma) {
                continue;
            }
            p.expect_token(&Token::RParen).map_err(e)?;
            break;
        }
    }
    t.comment = parse_comment(p, line)?;
    if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        p.expect_token(&Token::LParen).map_err(e)?;
        let cols: Vec<String> = p
            .parse_comma_separated(|p| p.parse_identifier())
            .map_err(e)?
            .iter()
            .map(ident_text)
            .collect();
        p.expect_token(&Token::RParen).map_err(e)?;
        t.partition_keys = cols;
    }
    if p.parse_keyword(Keyword::WITH) {
        t.options = parse_options(p, line)?;
        t.has_with = true;
    }
    if p.parse_keyword(Keyword::AS) {
        t.query = Some(p.parse_query().map_err(e)?);
    }
    if t.columns.is_empty() && t.query.is_none() {
        return Err(SqlError::Parse {
            line,
            message: format!("CREATE TABLE {} needs a column list or AS SELECT", t.name),
        });
    }
    Ok(t)
}

/// A column's type (`col` names it in errors), nested types and `WITH LOCAL TIME ZONE`
/// included.
fn parse_column_type(p: &mut Parser, line: u64, col: &str) -> Result<DataType> {
    let mut text = match nested_type_text(p) {
        Some(text) => text,
        None => p
            .parse_data_type()
            .map_err(|err| perr(line, err))?
            .to_string(),
    };
    // TIMESTAMP(3) WITH LOCAL TIME ZONE
    if peek_word(p, "WITH") && word_is(&p.peek_nth_token(1).token, "LOCAL") {
        for _ in 0..4 {
            p.next_token();
        }
        text.push_str(" WITH LOCAL TIME ZONE");
    }
    crate::types::parse_type_name(&text).map_err(|err| SqlError::Parse {
        line,
        message: format!("column `{col}`: {err}"),
    })
}

/// The rest of `CREATE [TEMPORARY] MODEL` (after `MODEL`): `[IF NOT EXISTS] name [INPUT (…)
/// OUTPUT (…)] [COMMENT '…'] WITH (…)`, as Flink 2.x parses it.
fn parse_create_model(p: &mut Parser, line: u64, temporary: bool) -> Result<StmtKind> {
    let e = |err| perr(line, err);
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = function_object_name(p, line)?;
    let columns = |p: &mut Parser, what: &str| -> Result<Vec<crate::model::ModelColumn>> {
        let mut cols = Vec::new();
        p.expect_token(&Token::LParen).map_err(e)?;
        loop {
            let col = ident_text(&p.parse_identifier().map_err(e)?);
            let data_type = parse_column_type(p, line, &col)?;
            let mut nullable = true;
            let mut comment = None;
            loop {
                if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    nullable = false;
                } else if p.parse_keyword(Keyword::NULL) {
                } else if peek_word(p, "COMMENT") {
                    comment = parse_comment(p, line)?;
                } else if p.parse_keyword(Keyword::AS) || peek_word(p, "METADATA") {
                    return Err(SqlError::Parse {
                        line,
                        message: format!(
                            "Column `{col}` of the model's {what} can only be a physical column."
                        ),
                    });
                } else {
                    break;
                }
            }
            cols.push(crate::model::ModelColumn {
                name: col,
                data_type,
                nullable,
                comment,
            });
            if p.consume_token(&Token::Comma) {
                continue;
            }
            p.expect_token(&Token::RParen).map_err(e)?;
            return Ok(cols);
        }
    };
    let input = if peek_word(p, "INPUT") {
        p.next_token();
        columns(p, "INPUT")?
    } else {
        Vec::new()
    };
    let output = if peek_word(p, "OUTPUT") {
        p.next_token();
        columns(p, "OUTPUT")?
    } else {
        Vec::new()
    };
    let comment = parse_comment(p, line)?;
    let options = if p.parse_keyword(Keyword::WITH) {
        parse_options(p, line)?
    } else {
        BTreeMap::new()
    };
    if p.parse_keyword(Keyword::AS) {
        return Err(SqlError::Parse {
            line,
            message: format!("CREATE MODEL {name} AS SELECT is not supported: Flink 2.x parses it but does not run it either; train the model offline (an ONNX file: 'provider' = 'onnx') or let it learn on the stream ('provider' = 'online')"),
        });
    }
    let def = crate::model::ModelDef::new(name, input, output, comment, options, temporary)
        .map_err(|message| SqlError::Parse { line, message })?;
    Ok(StmtKind::CreateModel {
        def: Box::new(def),
        if_not_exists,
    })
}

fn expect_not_enforced(p: &mut Parser, line: u64) -> Result<()> {
    if p.parse_keyword(Keyword::NOT) && peek_word(p, "ENFORCED") {
        p.next_token();
        Ok(())
    } else {
        Err(SqlError::Parse {
            line,
            message: "Flink requires PRIMARY KEY (...) NOT ENFORCED".into(),
        })
    }
}

/// `COMMENT '…'`, if it comes next.
fn parse_comment(p: &mut Parser, line: u64) -> Result<Option<String>> {
    if peek_word(p, "COMMENT") {
        p.next_token();
        return Ok(Some(p.parse_literal_string().map_err(|e| perr(line, e))?));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_complete_at_its_semicolon_outside_quotes_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- done\n"));
        assert!(is_complete("SELECT\n  a\nFROM t\n;"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 'a;b'"));
        assert!(is_complete("SELECT 'a;b';"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("   "));
        assert!(!is_complete(
            "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1;"
        ));
        assert!(is_complete(
            "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; END;"
        ));
        assert!(!is_complete("BEGIN STATEMENT SET; INSERT INTO a SELECT 1;"));
        assert!(is_complete(
            "BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nEND;"
        ));
    }

    #[test]
    fn parses_flink_ddl_and_tvfs() {
        let sql = "-- comment\nSET 'parallelism.default' = '1';\nCREATE TABLE events (\n  event_time TIMESTAMP(3),\n  `store_id` INT NOT NULL,\n  proc AS PROCTIME(),\n  ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,\n  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND,\n  PRIMARY KEY (store_id) NOT ENFORCED\n) WITH ('connector' = 'filesystem', 'path' = '/x');\nINSERT INTO s SELECT * FROM TABLE(SESSION(TABLE events PARTITION BY store_id, DESCRIPTOR(event_time), INTERVAL '30' SECOND));\nEXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END;";
        let stmts = parse_script(sql).unwrap();
        assert_eq!(stmts.len(), 4);
        match &stmts[1].kind {
            StmtKind::CreateTable(t) => {
                assert_eq!(t.columns.len(), 4);
                assert_eq!(t.watermark.as_ref().unwrap().0, "event_time");
                assert_eq!(t.primary_key, vec!["store_id"]);
                assert_eq!(t.options["connector"], "filesystem");
                assert!(matches!(
                    t.columns[1],
                    ColumnDef::Physical {
                        nullable: false,
                        ..
                    }
                ));
                assert!(matches!(
                    t.columns[3],
                    ColumnDef::Metadata {
                        is_virtual: true,
                        ..
                    }
                ));
            }
            other => panic!("{other:?}"),
        }
        match &stmts[2].kind {
            StmtKind::Insert(i) => {
                let q = i.query.to_string();
                assert!(
                    q.contains("SESSION(events, __PARTITION_BY(store_id), DESCRIPTOR(event_time)"),
                    "{q}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&stmts[3].kind, StmtKind::StatementSet(v) if v.len() == 2));
        assert_eq!(stmts[2].line, 11);
    }

    #[test]
    fn errors_carry_lines() {
        let e =
            parse_script("SET 'a' = 'b';\n\nCREATE TABLE t (a INT) WITH ('x' 'y');").unwrap_err();
        assert!(matches!(e, SqlError::Parse { line: 3, .. }), "{e}");
        let e = parse_script("FROBNICATE 1").unwrap_err();
        assert!(e.to_string().contains("unsupported statement"), "{e}");
    }

    #[test]
    fn parses_set_and_reset_as_flinks_sql_client() {
        let stmts = parse_script(
            "SET 'a.b' = 'x y';\nSET table.exec.mini-batch.size = -1;\nSET k = 10s;\nSET;\nRESET 'a.b';\nRESET;",
        )
        .unwrap();
        let kinds: Vec<String> = stmts.iter().map(|s| format!("{:?}", s.kind)).collect();
        assert_eq!(
            kinds,
            [
                r#"Set { key: "a.b", value: "x y" }"#,
                r#"Set { key: "table.exec.mini-batch.size", value: "-1" }"#,
                r#"Set { key: "k", value: "10s" }"#,
                "SetList",
                r#"Reset { key: Some("a.b") }"#,
                "Reset { key: None }",
            ]
        );
    }

    #[test]
    fn partitioned_by_keeps_its_columns() {
        let stmts = parse_script(
            "CREATE TABLE t (a INT, dt STRING, hr STRING) PARTITIONED BY (dt, `hr`) WITH ('connector' = 'filesystem');",
        )
        .expect("parses");
        let StmtKind::CreateTable(t) = &stmts[0].kind else {
            panic!("{:?}", stmts[0].kind);
        };
        assert_eq!(t.partition_keys, ["dt", "hr"]);
    }

    #[test]
    fn hints_rewrite_table_references_and_check_query_hints() {
        let stmts = parse_script(
            "SELECT /*+ SHUFFLE_HASH(t) */ t.a FROM t /*+ OPTIONS('scan.startup.mode' = 'earliest-offset') */ JOIN u /*+ OPTIONS('x' = 'y') */ AS v ON t.a = v.a",
        )
        .unwrap();
        let st = &stmts[0];
        assert_eq!(st.hints.len(), 2);
        assert_eq!(st.hints[0].base, "t");
        assert_eq!(st.hints[0].options["scan.startup.mode"], "earliest-offset");
        let StmtKind::Select(q) = &st.kind else {
            panic!("{:?}", st.kind)
        };
        let q = q.to_string();
        assert!(q.contains("FROM `t /*+ OPTIONS #1 */` AS t JOIN"), "{q}");
        assert!(q.contains("JOIN `u /*+ OPTIONS #2 */` AS v ON"), "{q}");
        assert!(st.notices[0].contains("query hint SHUFFLE_HASH has no effect"));
        let stmts = parse_script("INSERT INTO s /*+ OPTIONS('path' = '/o') */ SELECT 1").unwrap();
        let StmtKind::Insert(ins) = &stmts[0].kind else {
            panic!()
        };
        assert_eq!(ins.table, "s /*+ OPTIONS #1 */");
        for (sql, want) in [
            (
                "SELECT /*+ STATE_TTL('t' = 'a day') */ a FROM t",
                "STATE_TTL('t' = 'a day'): not a duration",
            ),
            ("SELECT /*+ STATE_TTL */ a FROM t", "STATE_TTL needs"),
            (
                "SELECT /*+ NO_SUCH_HINT */ a FROM t",
                "query hint NO_SUCH_HINT is not supported",
            ),
            (
                "SELECT a FROM t /*+ BROADCAST(t) */",
                "BROADCAST is a query hint",
            ),
            (
                "SELECT a FROM t /*+ WHATEVER('a' = 'b') */",
                "table hint WHATEVER is not supported",
            ),
            (
                "SELECT /*+ OPTIONS('a' = 'b') */ a FROM t",
                "OPTIONS is a table hint",
            ),
        ] {
            let e = parse_script(sql).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
        // ordinary comments are still ignored
        assert!(parse_script("SELECT /* a comment */ a FROM t /* another */").is_ok());
    }

    #[test]
    fn window_tvf_takes_a_subquery_as_flink_does() {
        let stmts = parse_script(
            "SELECT * FROM TABLE(SESSION(DATA => (SELECT a, ts FROM t WHERE (a > 1)) PARTITION BY a, TIMECOL => DESCRIPTOR(ts), GAP => INTERVAL '1' SECOND))",
        )
        .unwrap();
        let StmtKind::Select(q) = &stmts[0].kind else {
            panic!("{:?}", stmts[0].kind)
        };
        let q = q.to_string();
        assert!(
            q.contains("DATA => (SELECT a, ts FROM t WHERE (a > 1)), __PARTITION_BY(a), TIMECOL"),
            "{q}"
        );
        let e = parse_script("SELECT 1;\nSELECT * FROM TABLE(HOP(TABLE (SELECT * FROM t), DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND))")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 2: `TABLE (SELECT …)` is not Flink SQL"),
            "{e}"
        );
    }

    #[test]
    fn parses_show_describe_explain_and_use() {
        let stmts = parse_script(
            "SHOW TABLES; SHOW USER FUNCTIONS; SHOW CURRENT DATABASE; SHOW CREATE TABLE default_catalog.default_database.t;\nDESC t; SHOW COLUMNS IN t; USE CATALOG default_catalog; USE default_database;\nEXPLAIN PLAN FOR INSERT INTO s SELECT * FROM t; EXPLAIN CHANGELOG_MODE SELECT 1",
        )
        .unwrap();
        let kinds: Vec<String> = stmts.iter().map(|s| format!("{:?}", s.kind)).collect();
        assert_eq!(kinds[0], "Show(Tables)");
        assert_eq!(kinds[1], "Show(Functions { user: true })");
        assert_eq!(kinds[2], "Show(CurrentDatabase)");
        assert_eq!(
            kinds[3],
            r#"Show(CreateTable("default_catalog.default_database.t"))"#
        );
        assert_eq!(kinds[4], r#"Describe { name: "t", columns_only: false }"#);
        assert_eq!(kinds[5], r#"Describe { name: "t", columns_only: true }"#);
        assert_eq!(
            kinds[6],
            r#"Use { catalog: true, name: "default_catalog" }"#
        );
        assert_eq!(
            kinds[7],
            r#"Use { catalog: false, name: "default_database" }"#
        );
        assert!(kinds[8].starts_with("Explain(Insert("), "{}", kinds[8]);
        assert!(kinds[9].starts_with("Explain(Select("), "{}", kinds[9]);
        assert_eq!(stmts[8].line, 3);
        for (sql, want) in [
            ("SHOW JOBS", "line 1: SHOW JOBS is not supported"),
            (
                "SHOW TABLES LIKE '%a'",
                "LIKE filters are not supported yet",
            ),
            (
                "SHOW TABLES FROM other",
                "SHOW TABLES FROM other: no such database",
            ),
            (
                "\nCREATE DATABASE db1",
                "line 2: CREATE DATABASE db1 is not supported",
            ),
            (
                "EXPLAIN ESTIMATED_COST SELECT 1",
                "EXPLAIN ESTIMATED_COST is not supported",
            ),
            (
                "EXPLAIN SHOW TABLES",
                "EXPLAIN takes a query or an INSERT, not Show",
            ),
            ("DESCRIBE CATALOG c", "DESCRIBE CATALOG is not supported"),
        ] {
            let e = parse_script(sql).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
    }

    #[test]
    fn substitutes_variables() {
        let mut vars = BTreeMap::new();
        vars.insert("INPUT".to_string(), "/data".to_string());
        assert_eq!(substitute("'${INPUT}/x'", &vars).unwrap(), "'/data/x'");
        assert!(substitute("${NOPE_NOT_SET_ANYWHERE}", &vars).is_err());
    }
}
