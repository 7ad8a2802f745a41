//! JSON functions as Flink 2.3 evaluates them (Calcite's `JsonFunctions` over Jayway JSONPath
//! and Jackson): `JSON_VALUE`, `JSON_QUERY`, `JSON_EXISTS`, `IS JSON`.
//!
//! What the oracle showed, and this module follows:
//! - numbers keep their text as Jackson reads them: integers as written, others as Java's
//!   `BigDecimal.toString` (`1.50` stays `1.50`, `1e2` is `1E+2`, `-0.0` is `0.0`, `1e-7` is `1E-7`);
//! - `JSON_QUERY` writes compact JSON with object keys sorted (Jackson's `ORDER_MAP_ENTRIES_BY_KEYS`);
//! - a missing path, a JSON `null`, a non-scalar for `JSON_VALUE` or a scalar for `JSON_QUERY`
//!   without wrapper are all *errors* (the `ON ERROR` behaviour applies; `ON EMPTY` never does);
//! - a path with a wildcard gives the list of its matches (a JSON array; no match is an error);
//! - text after the first JSON value is ignored (Jackson stops reading there).
//!
//! Documents are parsed into a per-thread node arena that is reused, so evaluating a function
//! does not allocate once the arena has grown (only `JSON_QUERY`'s key sorting does).

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::functions::Func;
use std::cell::RefCell;
use std::fmt::Write as _;
use tillflow_types::value::push_str;
use tillflow_types::{DataType, Value};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUM: u8 = 3;
const STR: u8 = 4;
const STR_ESC: u8 = 5;
const ARR: u8 = 6;
const OBJ: u8 = 7;

/// One node of a parsed document: scalars hold their text range, containers their child
/// count and the index after their subtree (an object's children alternate key, value).
#[derive(Clone, Copy, Debug)]
struct Node {
    kind: u8,
    a: u32,
    b: u32,
    end: u32,
}

/// A parsed document over its text.
#[derive(Default)]
struct Doc {
    nodes: Vec<Node>,
}

struct Parser<'t> {
    t: &'t [u8],
    at: usize,
    depth: u32,
}

impl Doc {
    /// Parses the first JSON value of `text` (None: not JSON).
    fn parse(&mut self, text: &str) -> Option<()> {
        self.nodes.clear();
        let mut p = Parser {
            t: text.as_bytes(),
            at: 0,
            depth: 0,
        };
        p.ws();
        p.value(&mut self.nodes)
    }

    fn node(&self, i: u32) -> Node {
        self.nodes[i as usize]
    }

    /// Children of container `i`: their indexes (for objects, the keys' indexes; a key's value
    /// follows it).
    fn children(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        let n = self.node(i);
        let obj = n.kind == OBJ;
        let mut next = i + 1;
        let mut left = if matches!(n.kind, ARR | OBJ) { n.a } else { 0 };
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let me = next;
            let after = self.node(next).end;
            next = if obj { self.node(after).end } else { after };
            Some(me)
        })
    }
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.t.get(self.at) {
            self.at += 1;
        }
    }

    fn lit(&mut self, word: &[u8]) -> Option<()> {
        if self.t.get(self.at..self.at + word.len())? == word {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self, out: &mut Vec<Node>) -> Option<()> {
        self.depth += 1;
        if self.depth > 1000 {
            return None;
        }
        let me = out.len();
        let start = self.at as u32;
        let c = *self.t.get(self.at)?;
        let mut node = Node {
            kind: NULL,
            a: start,
            b: start,
            end: 0,
        };
        match c {
            b'n' => self.lit(b"null")?,
            b't' => {
                self.lit(b"true")?;
                node.kind = TRUE;
            }
            b'f' => {
                self.lit(b"false")?;
                node.kind = FALSE;
            }
            b'"' => {
                let (a, b, esc) = self.string()?;
                node = Node {
                    kind: if esc { STR_ESC } else { STR },
                    a,
                    b,
                    end: 0,
                };
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                node.kind = NUM;
                node.b = self.at as u32;
            }
            b'[' | b'{' => {
                let obj = c == b'{';
                node.kind = if obj { OBJ } else { ARR };
                out.push(node);
                self.at += 1;
                self.ws();
                let close = if obj { b'}' } else { b']' };
                let mut count = 0u32;
                if self.t.get(self.at) == Some(&close) {
                    self.at += 1;
                } else {
                    loop {
                        if obj {
                            if self.t.get(self.at) != Some(&b'"') {
                                return None;
                            }
                            let (a, b, esc) = self.string()?;
                            let k = out.len() as u32;
                            out.push(Node {
                                kind: if esc { STR_ESC } else { STR },
                                a,
                                b,
                                end: k + 1,
                            });
                            self.ws();
                            if self.t.get(self.at) != Some(&b':') {
                                return None;
                            }
                            self.at += 1;
                            self.ws();
                        }
                        self.value(out)?;
                        count += 1;
                        self.ws();
                        match self.t.get(self.at)? {
                            b',' => {
                                self.at += 1;
                                self.ws();
                            }
                            x if *x == close => {
                                self.at += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                out[me].a = count;
                out[me].end = out.len() as u32;
                self.depth -= 1;
                return Some(());
            }
            _ => return None,
        }
        node.end = me as u32 + 1;
        out.push(node);
        self.depth -= 1;
        Some(())
    }

    /// A string at `self.at` (the opening quote): its content range and whether it has escapes.
    fn string(&mut self) -> Option<(u32, u32, bool)> {
        self.at += 1;
        let a = self.at as u32;
        let mut esc = false;
        loop {
            match *self.t.get(self.at)? {
                b'"' => break,
                b'\\' => {
                    esc = true;
                    match *self.t.get(self.at + 1)? {
                        b'u' => {
                            let h = self.t.get(self.at + 2..self.at + 6)?;
                            if !h.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 6;
                        }
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let b = self.at as u32;
        self.at += 1;
        Some((a, b, esc))
    }

    fn number(&mut self) -> Option<()> {
        let t = self.t;
        if t.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.at;
            while t.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - s
        };
        let int_start = self.at;
        let n = digits(self);
        if n == 0 || (n > 1 && t[int_start] == b'0') {
            return None;
        }
        if t.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = t.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = t.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }
}

/// Appends the unescaped text of a JSON string's content to `out`.
fn unescape(raw: &str, out: &mut String) {
    let mut chars = raw.chars();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().unwrap_or('\\');
        let ch = match e {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let cp = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                if (0xd800..0xdc00).contains(&cp) {
                    pending_high = Some(cp);
                    continue;
                }
                if let (Some(h), true) = (pending_high.take(), (0xdc00..0xe000).contains(&cp)) {
                    let full = 0x10000 + ((h - 0xd800) << 10) + (cp - 0xdc00);
                    char::from_u32(full).unwrap_or('\u{fffd}')
                } else {
                    char::from_u32(cp).unwrap_or('\u{fffd}')
                }
            }
            other => other,
        };
        out.push(ch);
    }
}

/// Appends Java's `BigDecimal.toString` of the JSON number `text` (integers as Jackson's
/// Integer/Long/BigInteger print them).
pub fn number_text(text: &str, out: &mut String) {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    let is_float = body.contains(['.', 'e', 'E']);
    let digits: String = int.chars().chain(frac.chars()).collect();
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if !is_float {
        if neg && digits != "0" {
            out.push('-');
        }
        out.push_str(digits);
        return;
    }
    let scale = frac.len() as i64 - exp;
    if neg && digits != "0" {
        out.push('-');
    }
    let n = digits.len() as i64;
    let adjusted = -scale + (n - 1);
    if scale >= 0 && adjusted >= -6 {
        if scale == 0 {
            out.push_str(digits);
        } else if n > scale {
            let p = (n - scale) as usize;
            out.push_str(&digits[..p]);
            out.push('.');
            out.push_str(&digits[p..]);
        } else {
            out.push_str("0.");
            for _ in 0..(scale - n) {
                out.push('0');
            }
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        if adjusted >= 0 {
            out.push('+');
        }
        let _ = write!(out, "{adjusted}");
    }
}

/// Appends `s` as a JSON string the way Jackson writes it.
pub fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One step of a JSONPath.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    /// `.*` or `[*]`
    Wildcard,
}

/// A compiled JSONPath (`lax`/`strict` mode, `$`, `.key`, `['key']`, `[n]`, `[-n]`, `.*`, `[*]`).
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
    strict: bool,
}

impl JsonPath {
    /// Compiles a path; the error names what is not supported or wrong.
    pub fn compile(text: &str) -> std::result::Result<JsonPath, String> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        let (strict, rest) = if lower.starts_with("strict ") {
            (true, t[7..].trim_start())
        } else if lower.starts_with("lax ") {
            (false, t[4..].trim_start())
        } else {
            (false, t)
        };
        let b = rest.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(format!("JSONPath `{text}` must start with `$`"));
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    if b.get(i + 1) == Some(&b'.') {
                        return Err(format!(
                            "JSONPath `{text}`: deep scan `..` is not supported"
                        ));
                    }
                    if b.get(i + 1) == Some(&b'*') {
                        steps.push(Step::Wildcard);
                        i += 2;
                        continue;
                    }
                    let s = i + 1;
                    let mut e = s;
                    while e < b.len() && b[e] != b'.' && b[e] != b'[' {
                        e += 1;
                    }
                    if e == s {
                        return Err(format!("JSONPath `{text}`: empty name after `.`"));
                    }
                    let name = &rest[s..e];
                    if name.contains(['(', ')', '?', '@', ' ']) {
                        return Err(format!(
                            "JSONPath `{text}`: functions and filters are not supported"
                        ));
                    }
                    steps.push(Step::Key(name.to_owned()));
                    i = e;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|c| c + i)
                        .ok_or_else(|| format!("JSONPath `{text}`: missing `]`"))?;
                    let inner = rest[i + 1..close].trim();
                    if inner == "*" {
                        steps.push(Step::Wildcard);
                    } else if let Some(q) = inner
                        .strip_prefix('\'')
                        .and_then(|x| x.strip_suffix('\''))
                        .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
                    {
                        if q.contains(['\'', '"']) {
                            return Err(format!(
                                "JSONPath `{text}`: several names in one bracket are not supported"
                            ));
                        }
                        steps.push(Step::Key(q.to_owned()));
                    } else if let Ok(n) = inner.parse::<i64>() {
                        steps.push(Step::Index(n));
                    } else {
                        return Err(format!(
                            "JSONPath `{text}`: `[{inner}]` (slices, lists, filters) is not supported"
                        ));
                    }
                    i = close + 1;
                }
                b' ' | b'\t' => i += 1,
                _ => {
                    return Err(format!(
                        "JSONPath `{text}` does not parse at `{}`",
                        &rest[i..]
                    ))
                }
            }
        }
        Ok(JsonPath { steps, strict })
    }

    fn definite(&self) -> bool {
        !self.steps.contains(&Step::Wildcard)
    }
}

/// `RETURNING` types Flink 2.3's JSON_VALUE supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returning {
    /// STRING / VARCHAR (the default)
    String,
    /// INT: a JSON integer in INT range, else the job fails (Flink: ClassCastException)
    Int,
    /// DOUBLE: a JSON number with a fraction or exponent, else the job fails
    Double,
    /// BOOLEAN: a JSON boolean, else the job fails
    Boolean,
}

/// What `ON EMPTY` / `ON ERROR` gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// NULL
    Null,
    /// the job fails
    Error,
    /// the value of argument `n`
    Default(usize),
    /// `EMPTY ARRAY` (JSON_QUERY)
    EmptyArray,
    /// `EMPTY OBJECT` (JSON_QUERY)
    EmptyObject,
    /// TRUE (JSON_EXISTS)
    True,
    /// FALSE (JSON_EXISTS)
    False,
    /// UNKNOWN (JSON_EXISTS)
    Unknown,
}

/// JSON_QUERY's wrapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapper {
    /// `WITHOUT [ARRAY] WRAPPER` (the default)
    Without,
    /// `WITH CONDITIONAL [ARRAY] WRAPPER`: scalars are wrapped
    Conditional,
    /// `WITH [UNCONDITIONAL] [ARRAY] WRAPPER`: everything is wrapped
    Unconditional,
}

/// Which JSON function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonFn {
    /// JSON_VALUE
    Value,
    /// JSON_QUERY
    Query,
    /// JSON_EXISTS
    Exists,
}

/// A JSON function's plan-time state: its compiled constant path and clauses.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSpec {
    /// Which function.
    pub func: JsonFn,
    /// The path when constant (compiled once), else None.
    pub path: Option<std::result::Result<JsonPath, String>>,
    /// JSON_VALUE's RETURNING type.
    pub returning: Returning,
    /// ON ERROR (Flink 2.3 applies it to missing paths and JSON nulls too).
    pub on_error: Behavior,
    /// JSON_QUERY's wrapper.
    pub wrapper: Wrapper,
}

#[derive(Default)]
struct Scratch {
    doc: Doc,
    cur: Vec<u32>,
    next: Vec<u32>,
    text: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What the path selects.
enum Found {
    /// Nothing (missing, or not JSON).
    Missing,
    /// One node (a definite path).
    One(u32),
    /// The matches of a path with wildcards (in `cur`).
    List,
}

fn key_is(doc: &Doc, src: &str, k: Node, name: &str, tmp: &mut String) -> bool {
    let raw = src.get(k.a as usize..k.b as usize).unwrap_or("");
    if k.kind == STR {
        raw == name
    } else {
        tmp.clear();
        unescape(raw, tmp);
        let _ = doc;
        tmp == name
    }
}

fn step_into(doc: &Doc, src: &str, n: u32, step: &Step, out: &mut Vec<u32>, tmp: &mut String) {
    let node = doc.node(n);
    match step {
        Step::Key(name) if node.kind == OBJ => {
            let mut found = None;
            for k in doc.children(n) {
                if key_is(doc, src, doc.node(k), name, tmp) {
                    found = Some(k + 1); // the last one wins, as in a Java map
                }
            }
            out.extend(found);
        }
        Step::Index(i) if node.kind == ARR => {
            let len = node.a as i64;
            let i = if *i < 0 { len + i } else { *i };
            if (0..len).contains(&i) {
                out.extend(doc.children(n).nth(i as usize));
            }
        }
        Step::Wildcard if node.kind == ARR => out.extend(doc.children(n)),
        Step::Wildcard if node.kind == OBJ => out.extend(doc.children(n).map(|k| k + 1)),
        _ => {}
    }
}

fn select(s: &mut Scratch, src: &str, path: &JsonPath) -> Found {
    s.cur.clear();
    s.cur.push(0);
    for step in &path.steps {
        s.next.clear();
        for i in 0..s.cur.len() {
            let n = s.cur[i];
            step_into(&s.doc, src, n, step, &mut s.next, &mut s.text);
        }
        std::mem::swap(&mut s.cur, &mut s.next);
    }
    if path.definite() {
        match s.cur.first() {
            Some(&n) => Found::One(n),
            None => Found::Missing,
        }
    } else {
        Found::List
    }
}

fn write_node(doc: &Doc, src: &str, n: u32, out: &mut String) {
    let node = doc.node(n);
    let raw = || src.get(node.a as usize..node.b as usize).unwrap_or("");
    match node.kind {
        NULL => out.push_str("null"),
        TRUE => out.push_str("true"),
        FALSE => out.push_str("false"),
        NUM => number_text(raw(), out),
        STR => quote(raw(), out),
        STR_ESC => {
            let mut t = String::new();
            unescape(raw(), &mut t);
            quote(&t, out);
        }
        ARR => {
            out.push('[');
            for (i, c) in doc.children(n).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_node(doc, src, c, out);
            }
            out.push(']');
        }
        _ => {
            // keys sorted, as Flink's Jackson mapper writes maps; a repeated key keeps its last value
            let mut entries: Vec<(std::borrow::Cow<'_, str>, u32)> =
                Vec::with_capacity(node.a as usize);
            for k in doc.children(n) {
                let kn = doc.node(k);
                let raw = src.get(kn.a as usize..kn.b as usize).unwrap_or("");
                let key = if kn.kind == STR {
                    std::borrow::Cow::Borrowed(raw)
                } else {
                    let mut t = String::new();
                    unescape(raw, &mut t);
                    std::borrow::Cow::Owned(t)
                };
                match entries.iter_mut().find(|(x, _)| *x == key) {
                    Some(e) => e.1 = k + 1,
                    None => entries.push((key, k + 1)),
                }
            }
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(k, out);
                out.push(':');
                write_node(doc, src, *v, out);
            }
            out.push('}');
        }
    }
}

fn write_list(doc: &Doc, src: &str, list: &[u32], out: &mut String) {
    out.push('[');
    for (i, &c) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_node(doc, src, c, out);
    }
    out.push(']');
}

fn fail(func: &str, what: &str) -> RuntimeError {
    RuntimeError::Eval(format!("{func}: {what}"))
}

/// The error behaviour's value (`defaults` are the evaluated arguments).
fn on_error(spec: &JsonSpec, defaults: &[Value], why: &str) -> Result<Value> {
    Ok(match spec.on_error {
        Behavior::Null | Behavior::Unknown => Value::Null,
        Behavior::Error => return Err(fail(name(spec.func), why)),
        Behavior::Default(i) => defaults.get(i).copied().unwrap_or(Value::Null),
        Behavior::True => Value::Bool(true),
        Behavior::False => Value::Bool(false),
        Behavior::EmptyArray | Behavior::EmptyObject => Value::Null, // written by the caller
    })
}

fn name(f: JsonFn) -> &'static str {
    match f {
        JsonFn::Value => "JSON_VALUE",
        JsonFn::Query => "JSON_QUERY",
        JsonFn::Exists => "JSON_EXISTS",
    }
}

/// JSON_OBJECT, JSON_ARRAY and JSON_STRING, which build JSON text from SQL values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonBuild {
    /// `JSON_OBJECT(k VALUE v, …)`: keys sorted, the last of equal keys kept (as Flink 2.3).
    Object {
        /// `ABSENT ON NULL` (the key is left out) rather than `NULL ON NULL` (the default).
        absent_on_null: bool,
    },
    /// `JSON_ARRAY(v, …)`.
    Array {
        /// `ABSENT ON NULL` (the default) rather than `NULL ON NULL`.
        absent_on_null: bool,
    },
    /// `JSON_STRING(v)`: one value as JSON text (NULL for NULL).
    String,
}

impl JsonBuild {
    /// The SQL name.
    pub fn sql_name(self) -> &'static str {
        match self {
            JsonBuild::Object { .. } => "JSON_OBJECT",
            JsonBuild::Array { .. } => "JSON_ARRAY",
            JsonBuild::String => "JSON_STRING",
        }
    }
}

/// True for the argument types JSON_OBJECT / JSON_ARRAY / JSON_STRING write (those whose
/// printing was checked against Flink 2.3; Flink itself refuses DATE: "Type 'DATE' is not
/// scalar or cannot be converted into JSON").
pub fn build_accepts(ty: DataType) -> bool {
    match ty {
        DataType::Array(et) => return build_accepts(*et),
        DataType::Row(rt) => return rt.fields.iter().all(|(_, t)| build_accepts(*t)),
        DataType::Map(kt, vt) => return kt.is_string() && build_accepts(*vt),
        _ => {}
    }
    matches!(
        ty,
        DataType::Boolean
            | DataType::TinyInt
            | DataType::SmallInt
            | DataType::Int
            | DataType::BigInt
            | DataType::Float
            | DataType::Double
            | DataType::Decimal(..)
            | DataType::String(_)
            | DataType::Timestamp(_)
            | DataType::TimestampLtz(_)
            | DataType::Null
    )
}

/// True when `e` is a JSON_OBJECT or JSON_ARRAY call, whose text nests as JSON (not as a string).
fn is_nested_json(e: Option<&Expr>) -> bool {
    matches!(
        e,
        Some(Expr::Call {
            func: Func::JsonBuild(JsonBuild::Object { .. } | JsonBuild::Array { .. }),
            ..
        })
    )
}

/// Reused buffers of [`build`]: the text, a number's text, and the object's entries
/// (key start, key end, value start, value end in `text`).
#[derive(Default)]
struct BuildScratch {
    text: String,
    num: String,
    entries: Vec<(usize, usize, usize, usize)>,
}

thread_local! {
    static BUILD: RefCell<BuildScratch> = RefCell::new(BuildScratch::default());
}

/// Appends the JSON of one SQL value as Flink 2.3 writes it: numbers as Java's `BigDecimal`
/// prints them (a DOUBLE or FLOAT through `Double.toString`: `1.0E+8`, `0.000010`), DECIMAL
/// with its scale (`1.50`, `1.0E-7`), TIMESTAMP as ISO text without trailing fraction zeros, JSON_OBJECT / JSON_ARRAY
/// results (`raw`) as they are.
fn write_value(v: Value, ty: DataType, raw: bool, heap: &[u8], num: &mut String, out: &mut String) {
    num.clear();
    if let (Value::Str(span), DataType::Array(_) | DataType::Row(_) | DataType::Map(..)) = (v, ty) {
        write_nested(span, ty, heap, num, out);
        return;
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Str(r) if raw => out.push_str(tillflow_types::value::heap_str(heap, r)),
        Value::Str(r) => quote(tillflow_types::value::heap_str(heap, r), out),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            // a FLOAT too goes through Double.toString (0.1 as FLOAT is 0.10000000149011612)
            tillflow_types::javafmt::write_double(num, f);
            if f.is_finite() {
                number_text(num, out);
            } else {
                quote(num, out);
            }
        }
        Value::Decimal(d) => {
            let scale = match ty {
                DataType::Decimal(_, s) => s,
                _ => 0,
            };
            crate::cast::write_decimal(num, d, scale);
            number_text(num, out);
        }
        Value::Timestamp(t) => {
            out.push('"');
            let ltz = matches!(ty, DataType::TimestampLtz(_));
            tillflow_types::temporal::write_timestamp_json(out, t, true, ltz);
            out.push('"');
        }
        Value::Date(d) => {
            out.push('"');
            tillflow_types::temporal::write_date_sql(out, d);
            out.push('"');
        }
        // refused at plan time ([`build_accepts`])
        Value::Time(_) | Value::Interval(_) | Value::Months(_) => out.push_str("null"),
    }
}

/// Appends an ARRAY (a JSON array), ROW (an object of its fields, in order) or MAP (an object
/// of its entries, in order; string keys) value `span` as JSON, as Flink 2.3 writes them.
fn write_nested(
    span: tillflow_types::StrRef,
    ty: DataType,
    heap: &[u8],
    num: &mut String,
    out: &mut String,
) {
    use tillflow_types::nested;
    match ty {
        DataType::Array(et) => {
            out.push('[');
            for (i, e) in nested::elements(heap, span, *et).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(e, *et, false, heap, num, out);
            }
            out.push(']');
        }
        DataType::Row(rt) => {
            out.push('{');
            for (i, (name, fty)) in rt.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(name, out);
                out.push(':');
                write_value(
                    nested::row_field(heap, span, rt, i),
                    *fty,
                    false,
                    heap,
                    num,
                    out,
                );
            }
            out.push('}');
        }
        DataType::Map(kt, vt) => {
            out.push('{');
            for (i, (k, x)) in nested::map_entries(heap, span, *kt, *vt).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match k {
                    Value::Str(r) => quote(tillflow_types::value::heap_str(heap, r), out),
                    _ => out.push_str("\"null\""),
                }
                out.push(':');
                write_value(x, *vt, false, heap, num, out);
            }
            out.push('}');
        }
        _ => out.push_str("null"),
    }
}

/// Evaluates JSON_OBJECT (`v` alternating keys and values), JSON_ARRAY or JSON_STRING over the
/// argument values `v` of the expressions `args`; the text is appended to `out`.
pub fn build(kind: JsonBuild, v: &[Value], args: &[Expr], out: &mut Vec<u8>) -> Result<Value> {
    BUILD.with(|cell| {
        let Ok(mut s) = cell.try_borrow_mut() else {
            return Err(fail(kind.sql_name(), "re-entered"));
        };
        let BuildScratch { text, num, entries } = &mut *s;
        text.clear();
        let ty = |i: usize| args.get(i).map(Expr::data_type).unwrap_or(DataType::Null);
        let raw = |i: usize| is_nested_json(args.get(i));
        match kind {
            JsonBuild::String => {
                let Some(&x) = v.first() else {
                    return Ok(Value::Null);
                };
                if x.is_null() {
                    return Ok(Value::Null);
                }
                write_value(x, ty(0), raw(0), out, num, text);
            }
            JsonBuild::Array { absent_on_null } => {
                text.push('[');
                let mut first = true;
                for (i, &x) in v.iter().enumerate() {
                    if x.is_null() && absent_on_null {
                        continue;
                    }
                    if !first {
                        text.push(',');
                    }
                    first = false;
                    write_value(x, ty(i), raw(i), out, num, text);
                }
                text.push(']');
            }
            JsonBuild::Object { absent_on_null } => {
                entries.clear();
                for (i, pair) in v.chunks(2).enumerate() {
                    let (Some(&Value::Str(k)), Some(&x)) = (pair.first(), pair.get(1)) else {
                        return Err(fail("JSON_OBJECT", "a key is NULL"));
                    };
                    if x.is_null() && absent_on_null {
                        continue;
                    }
                    let k0 = text.len();
                    text.push_str(tillflow_types::value::heap_str(out, k));
                    let v0 = text.len();
                    write_value(x, ty(2 * i + 1), raw(2 * i + 1), out, num, text);
                    entries.push((k0, v0, v0, text.len()));
                }
                // sorted by key, the last of equal keys kept: a stable sort, then skip an
                // entry when the next has the same key
                entries.sort_by(|a, b| text[a.0..a.1].cmp(&text[b.0..b.1]));
                num.clear();
                let mut first = true;
                for (j, e) in entries.iter().enumerate() {
                    let key = &text[e.0..e.1];
                    if entries.get(j + 1).is_some_and(|n| &text[n.0..n.1] == key) {
                        continue;
                    }
                    if !first {
                        num.push(',');
                    }
                    first = false;
                    quote(key, num);
                    num.push(':');
                    num.push_str(&text[e.2..e.3]);
                }
                text.clear();
                text.push('{');
                text.push_str(num);
                text.push('}');
            }
        }
        Ok(Value::Str(push_str(out, text)))
    })
}

/// Evaluates a JSON function: `v[0]` the document, `v[1]` the path, the rest the DEFAULT values;
/// strings live in `out`. NULL document or path: NULL.
pub fn eval(spec: &JsonSpec, v: &[Value], out: &mut Vec<u8>) -> Result<Value> {
    let (Some(Value::Str(d)), Some(p)) = (v.first(), v.get(1)) else {
        return Ok(Value::Null);
    };
    let compiled;
    let path = match &spec.path {
        Some(p) => p,
        None => {
            let Value::Str(p) = p else {
                return Ok(Value::Null);
            };
            compiled = JsonPath::compile(tillflow_types::value::heap_str(out, *p));
            &compiled
        }
    };
    let path = match path {
        Ok(p) => p,
        Err(m) => return error_value(spec, v, out, m),
    };
    // the document's text is copied out of `out`, which grows below
    let src_range = d.off as usize..(d.off + d.len) as usize;
    SCRATCH.with(|cell| {
        let Ok(mut s) = cell.try_borrow_mut() else {
            return Err(fail(name(spec.func), "re-entered"));
        };
        let s = &mut *s;
        let src_bytes = out.get(src_range.clone()).unwrap_or(&[]);
        let src = std::str::from_utf8(src_bytes).unwrap_or("");
        // parse over a private copy of the text: results are appended to `out`
        let mut text = std::mem::take(&mut s.text);
        text.clear();
        text.push_str(src);
        let r = eval_in(spec, path, s, &text, v, out);
        s.text = text;
        r
    })
}

fn error_value(spec: &JsonSpec, v: &[Value], out: &mut Vec<u8>, why: &str) -> Result<Value> {
    match spec.on_error {
        Behavior::EmptyArray => Ok(Value::Str(push_str(out, "[]"))),
        Behavior::EmptyObject => Ok(Value::Str(push_str(out, "{}"))),
        _ => on_error(spec, v.get(2..).unwrap_or(&[]), why),
    }
}

fn eval_in(
    spec: &JsonSpec,
    path: &JsonPath,
    s: &mut Scratch,
    src: &str,
    v: &[Value],
    out: &mut Vec<u8>,
) -> Result<Value> {
    if s.doc.parse(src).is_none() {
        return error_value(spec, v, out, "the input is not valid JSON");
    }
    let found = select(s, src, path);
    let doc = &s.doc;
    match spec.func {
        JsonFn::Exists => Ok(Value::Bool(match found {
            Found::Missing => false,
            Found::One(n) => doc.node(n).kind != NULL,
            Found::List => !s.cur.is_empty(),
        })),
        JsonFn::Value => {
            let Found::One(n) = found else {
                return error_value(spec, v, out, "no scalar value at the path");
            };
            let node = doc.node(n);
            let raw = if matches!(node.kind, ARR | OBJ) {
                ""
            } else {
                src.get(node.a as usize..node.b as usize).unwrap_or("")
            };
            let mismatch = |what: &str| {
                Err(fail(
                    "JSON_VALUE",
                    &format!("RETURNING {what}: the value `{raw}` is not one (Flink fails with a ClassCastException)"),
                ))
            };
            match (node.kind, spec.returning) {
                (NULL | ARR | OBJ, _) => error_value(spec, v, out, "no scalar value at the path"),
                (TRUE | FALSE, Returning::Boolean) => Ok(Value::Bool(node.kind == TRUE)),
                (_, Returning::Boolean) => mismatch("BOOLEAN"),
                (NUM, Returning::Int) if !raw.contains(['.', 'e', 'E']) => match raw.parse::<i32>()
                {
                    Ok(i) => Ok(Value::Int(i as i64)),
                    Err(_) => mismatch("INT"),
                },
                (_, Returning::Int) => mismatch("INT"),
                (NUM, Returning::Double) if raw.contains(['.', 'e', 'E']) => {
                    Ok(Value::Float(raw.parse::<f64>().unwrap_or(f64::NAN)))
                }
                (_, Returning::Double) => mismatch("DOUBLE"),
                (kind, Returning::String) => {
                    let start = out.len();
                    let mut t = String::new();
                    match kind {
                        TRUE => t.push_str("true"),
                        FALSE => t.push_str("false"),
                        NUM => number_text(raw, &mut t),
                        STR => t.push_str(raw),
                        _ => unescape(raw, &mut t),
                    }
                    out.extend_from_slice(t.as_bytes());
                    Ok(Value::Str(tillflow_types::nested::span_from(out, start)))
                }
            }
        }
        JsonFn::Query => {
            let mut t = String::new();
            match found {
                Found::Missing => return error_value(spec, v, out, "nothing at the path"),
                Found::One(n) => {
                    let kind = doc.node(n).kind;
                    let container = kind == ARR || kind == OBJ;
                    match spec.wrapper {
                        Wrapper::Without if !container => {
                            return error_value(spec, v, out, "the value at the path is a scalar")
                        }
                        Wrapper::Without => write_node(doc, src, n, &mut t),
                        Wrapper::Conditional if container => write_node(doc, src, n, &mut t),
                        _ => write_list(doc, src, &[n], &mut t),
                    }
                }
                // a wildcard that matches nothing is an error too (Flink 2.3)
                Found::List if s.cur.is_empty() => {
                    return error_value(spec, v, out, "nothing at the path")
                }
                Found::List => match spec.wrapper {
                    Wrapper::Unconditional => {
                        t.push('[');
                        write_list(doc, src, &s.cur, &mut t);
                        t.push(']');
                    }
                    _ => write_list(doc, src, &s.cur, &mut t),
                },
            }
            Ok(Value::Str(push_str(out, &t)))
        }
    }
}

/// `s IS JSON [VALUE|SCALAR|ARRAY|OBJECT]` (kind 0: VALUE); FALSE for NULL, as Flink.
pub fn is_json(text: Option<&str>, kind: u8) -> bool {
    let Some(text) = text else {
        return false;
    };
    SCRATCH.with(|cell| {
        let Ok(mut s) = cell.try_borrow_mut() else {
            return false;
        };
        if s.doc.parse(text).is_none() {
            return false;
        }
        let k = s.doc.node(0).kind;
        match kind {
            1 => !matches!(k, ARR | OBJ),
            2 => k == ARR,
            3 => k == OBJ,
            _ => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bd(s: &str) -> String {
        let mut o = String::new();
        number_text(s, &mut o);
        o
    }

    #[test]
    fn numbers_print_as_java_bigdecimal() {
        assert_eq!(bd("1.50"), "1.50");
        assert_eq!(bd("1e2"), "1E+2");
        assert_eq!(bd("-0.0"), "0.0");
        assert_eq!(bd("0.0000001"), "1E-7");
        assert_eq!(bd("0.000001"), "0.000001");
        assert_eq!(bd("-0"), "0");
        assert_eq!(bd("123456789012345678901234"), "123456789012345678901234");
        assert_eq!(bd("1.5E3"), "1.5E+3");
        assert_eq!(bd("-12.25e1"), "-122.5");
    }

    fn query(doc: &str, path: &str, wrapper: Wrapper) -> Option<String> {
        let spec = JsonSpec {
            func: JsonFn::Query,
            path: Some(JsonPath::compile(path)),
            returning: Returning::String,
            on_error: Behavior::Null,
            wrapper,
        };
        let mut heap = vec![];
        let d = push_str(&mut heap, doc);
        let p = push_str(&mut heap, path);
        match eval(&spec, &[Value::Str(d), Value::Str(p)], &mut heap).unwrap() {
            Value::Str(r) => Some(tillflow_types::value::heap_str(&heap, r).to_owned()),
            _ => None,
        }
    }

    #[test]
    fn query_sorts_keys_and_wraps() {
        let d = r#"{"b":1,"a":{"y":[1,"x\n"],"x":null},"c":"s"}"#;
        assert_eq!(
            query(d, "$", Wrapper::Without).as_deref(),
            Some(r#"{"a":{"x":null,"y":[1,"x\n"]},"b":1,"c":"s"}"#)
        );
        assert_eq!(query(d, "$.c", Wrapper::Without), None);
        assert_eq!(
            query(d, "$.c", Wrapper::Conditional).as_deref(),
            Some(r#"["s"]"#)
        );
        assert_eq!(
            query(d, "$.a.y[*]", Wrapper::Without).as_deref(),
            Some(r#"[1,"x\n"]"#)
        );
        assert_eq!(
            query(d, "$['a'].y[-1]", Wrapper::Unconditional).as_deref(),
            Some(r#"["x\n"]"#)
        );
        assert_eq!(
            query("[1, 2] trailing", "$", Wrapper::Without).as_deref(),
            Some("[1,2]")
        );
        assert_eq!(query("{\"a\":01}", "$", Wrapper::Without), None);
    }

    #[test]
    fn paths_refuse_what_is_not_supported() {
        assert!(JsonPath::compile("$..a").is_err());
        assert!(JsonPath::compile("$[0:2]").is_err());
        assert!(JsonPath::compile("a.b").is_err());
        assert!(JsonPath::compile("strict $.a[0]['k e']").is_ok());
        assert!(is_json(Some(" {\"a\": [true, null]} "), 3));
        assert!(!is_json(Some(""), 0));
        assert!(is_json(Some("\"s\""), 1));
        assert!(!is_json(None, 0));
    }
}
