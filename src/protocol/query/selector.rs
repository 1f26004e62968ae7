//! Selectors: compiled once into a tree of matchers, then run against
//! documents with Mongo's path and array rules (minimongo's semantics).
//!
//! A dotted path is looked up into *branches*: walking `a.b` through an
//! array `a` looks into each element that is an object (and, for a numeric
//! part, at that index), so one path can reach several values. Element
//! operators (`$eq`, `$gt`, `$in`, `$regex`, …) then test each branch value
//! and, when it is an array, each of its elements; `$size` and
//! `$elemMatch` test the arrays themselves; `$ne`, `$nin`, `$not` and
//! `$exists: false` negate the whole branched match.

use super::value::{self, compare, equal, Kind};
use super::{QueryError, Regex, RegexEngine};
use crate::protocol::json::to_text;
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// One value a path reached (`None`: the path ends at nothing).
#[derive(Clone, Copy)]
pub(crate) struct Branch<'a> {
    pub(crate) value: Option<&'a Value>,
    /// An array reached by a numeric index into an array is tested as a
    /// whole, never element by element.
    pub(crate) dont_iterate: bool,
}

fn index(part: &str) -> Option<usize> {
    (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok()).flatten()
}

/// A plain (non-EJSON-special) object's fields.
pub(crate) fn as_object(v: &Value) -> Option<&Map<String, Value>> {
    match v {
        Value::Object(m) if value::kind(Some(v)) == Kind::Object => Some(value::plain(m)),
        _ => None,
    }
}

enum Container<'a> {
    Map(&'a Map<String, Value>, Option<&'a Value>),
    Array(&'a [Value]),
}

/// Every branch `parts` reaches from `root` (`id`: the document's `_id`
/// at the top level, which the fields do not hold).
pub(crate) fn lookup<'a>(root: &'a Map<String, Value>, id: Option<&'a Value>, parts: &[String], for_sort: bool, out: &mut Vec<Branch<'a>>) {
    walk(Container::Map(root, id), parts, for_sort, out);
}

fn walk<'a>(c: Container<'a>, parts: &[String], for_sort: bool, out: &mut Vec<Branch<'a>>) {
    let Some((first, rest)) = parts.split_first() else { return };
    let (here, in_array) = match c {
        Container::Map(m, id) => (if first == "_id" { id.or_else(|| m.get(first)) } else { m.get(first) }, false),
        Container::Array(a) => match index(first) {
            Some(i) if i < a.len() => (Some(&a[i]), true),
            _ => return,
        },
    };
    if rest.is_empty() {
        out.push(Branch { value: here, dont_iterate: in_array && matches!(here, Some(Value::Array(_))) });
        return;
    }
    match here {
        Some(Value::Array(a)) => {
            if index(&rest[0]).is_some() {
                walk(Container::Array(a), rest, for_sort, out);
            }
            if !(for_sort && index(&rest[0]).is_some()) {
                for el in a {
                    if let Some(m) = as_object(el) {
                        walk(Container::Map(m, None), rest, for_sort, out);
                    }
                }
            }
        }
        other => match other.and_then(as_object) {
            Some(m) => walk(Container::Map(m, None), rest, for_sort, out),
            None if !in_array => out.push(Branch { value: None, dont_iterate: false }),
            None => {}
        },
    }
}

/// A branch's value, then (for an array that may be iterated) its elements.
fn expanded<'a, 'b>(b: &'b Branch<'a>) -> impl Iterator<Item = Option<&'a Value>> + 'b {
    let elements: &'a [Value] = match b.value {
        Some(Value::Array(a)) if !b.dont_iterate => a,
        _ => &[],
    };
    std::iter::once(b.value).chain(elements.iter().map(Some))
}

/// A test of one value.
pub(crate) enum Element {
    Eq(Value),
    Regex {
        re: Box<dyn Regex>,
        source: String,
        flags: String,
    },
    /// Passes when `compare(value, operand)` is one of `accept`.
    Cmp {
        operand: Value,
        accept: [bool; 3],
    },
    In(Vec<Element>),
}

impl Element {
    fn test(&self, v: Option<&Value>) -> bool {
        match self {
            Element::Eq(Value::Null) => matches!(v, None | Some(Value::Null)),
            Element::Eq(x) => v.is_some_and(|v| equal(v, x)),
            Element::Regex { re, source, flags } => match v {
                Some(Value::String(s)) => re.is_match(s),
                Some(v) if value::kind(Some(v)) == Kind::Regexp => {
                    v.get("$regexp").and_then(Value::as_str) == Some(source) && v.get("$flags").and_then(Value::as_str) == Some(flags)
                }
                _ => false,
            },
            Element::Cmp { operand, accept } => match v {
                Some(v) if value::kind(Some(v)) == value::kind(Some(operand)) => {
                    let i = match compare(Some(v), Some(operand)) {
                        Ordering::Less => 0,
                        Ordering::Equal => 1,
                        Ordering::Greater => 2,
                    };
                    accept[i]
                }
                _ => false,
            },
            Element::In(items) => items.iter().any(|e| e.test(v)),
        }
    }
}

/// A test of the branches one path reached.
pub(crate) enum ValueMatcher {
    Never,
    Element(Element),
    Not(Box<ValueMatcher>),
    And(Vec<ValueMatcher>),
    Exists,
    Size(f64),
    ElemMatchValue(Box<ValueMatcher>),
    ElemMatchDoc(Box<DocMatcher>),
}

impl ValueMatcher {
    fn matches(&self, branches: &[Branch<'_>]) -> bool {
        match self {
            ValueMatcher::Never => false,
            ValueMatcher::Element(e) => branches.iter().any(|b| expanded(b).any(|v| e.test(v))),
            ValueMatcher::Not(m) => !m.matches(branches),
            ValueMatcher::And(ms) => ms.iter().all(|m| m.matches(branches)),
            ValueMatcher::Exists => branches.iter().any(|b| b.value.is_some()),
            ValueMatcher::Size(n) => branches.iter().any(|b| matches!(b.value, Some(Value::Array(a)) if a.len() as f64 == *n)),
            ValueMatcher::ElemMatchValue(m) => branches.iter().any(|b| match b.value {
                Some(Value::Array(a)) => a.iter().any(|el| m.matches(&[Branch { value: Some(el), dont_iterate: true }])),
                _ => false,
            }),
            ValueMatcher::ElemMatchDoc(d) => branches.iter().any(|b| match b.value {
                Some(Value::Array(a)) => a.iter().any(|el| as_object(el).is_some_and(|m| d.matches(m, None))),
                _ => false,
            }),
        }
    }
}

/// A test of a whole document (or of an object inside `$elemMatch`).
pub(crate) enum DocMatcher {
    All,
    Nothing,
    And(Vec<DocMatcher>),
    Or(Vec<DocMatcher>),
    Nor(Vec<DocMatcher>),
    Field { path: Vec<String>, matcher: ValueMatcher },
}

impl DocMatcher {
    pub(crate) fn matches(&self, root: &Map<String, Value>, id: Option<&Value>) -> bool {
        match self {
            DocMatcher::All => true,
            DocMatcher::Nothing => false,
            DocMatcher::And(ms) => ms.iter().all(|m| m.matches(root, id)),
            DocMatcher::Or(ms) => ms.iter().any(|m| m.matches(root, id)),
            DocMatcher::Nor(ms) => !ms.iter().any(|m| m.matches(root, id)),
            DocMatcher::Field { path, matcher } => {
                if let [field] = path.as_slice() {
                    // A top-level field reaches exactly one branch: no list to allocate.
                    let value = if field == "_id" { id.or_else(|| root.get(field)) } else { root.get(field) };
                    return matcher.matches(&[Branch { value, dont_iterate: false }]);
                }
                let mut branches = Vec::new();
                lookup(root, id, path, false, &mut branches);
                matcher.matches(&branches)
            }
        }
    }

    /// The top-level fields the test reads (the first part of each path;
    /// operators inside a field's test read only that field's value).
    pub(crate) fn top_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            DocMatcher::And(ms) | DocMatcher::Or(ms) | DocMatcher::Nor(ms) => ms.iter().for_each(|m| m.top_fields(out)),
            DocMatcher::Field { path, .. } => out.extend(path.first().map(String::as_str)),
            DocMatcher::All | DocMatcher::Nothing => {}
        }
    }

    /// Whether a top-level path starts at `_id` (the caller then builds
    /// the `_id` value once per document).
    pub(crate) fn reads_id(&self) -> bool {
        match self {
            DocMatcher::And(ms) | DocMatcher::Or(ms) | DocMatcher::Nor(ms) => ms.iter().any(DocMatcher::reads_id),
            DocMatcher::Field { path, .. } => path.first().is_some_and(|p| p == "_id"),
            DocMatcher::All | DocMatcher::Nothing => false,
        }
    }
}

fn bad(msg: impl Into<String>) -> QueryError {
    QueryError::BadSelector(msg.into())
}

/// A regular expression literal (EJSON `{$regexp, $flags}`): (source, flags).
pub(crate) fn regex_literal(v: &Value) -> Option<(&str, &str)> {
    if value::kind(Some(v)) != Kind::Regexp {
        return None;
    }
    Some((v.get("$regexp")?.as_str()?, v.get("$flags")?.as_str()?))
}

/// An object of operators (`{$gt: 1}`), as opposed to a literal object.
fn operator_object(v: &Value) -> Result<Option<&Map<String, Value>>, QueryError> {
    let Value::Object(m) = v else { return Ok(None) };
    if value::kind(Some(v)) != Kind::Object || m.is_empty() || (m.len() == 1 && m.contains_key("$escape")) {
        return Ok(None);
    }
    let ops = m.keys().filter(|k| k.starts_with('$')).count();
    match ops {
        0 => Ok(None),
        n if n == m.len() => Ok(Some(m)),
        _ => Err(bad(format!("inconsistent operator: {}", to_text(&Value::Object(m.clone()))))),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The flags `$options` may hold (JavaScript's meaning; `g` and `y` are
/// dropped, as they only make a `RegExp` stateful).
fn regex(engine: &dyn RegexEngine, source: &str, flags: &str) -> Result<Element, QueryError> {
    if let Some(c) = flags.chars().find(|c| !matches!(c, 'i' | 'm' | 's' | 'u' | 'g' | 'y')) {
        return Err(QueryError::BadRegex(format!("unsupported regular expression option '{c}' (i, m, s and u are)")));
    }
    let kept: String = flags.chars().filter(|c| !matches!(c, 'g' | 'y')).collect();
    let re = engine.compile(source, &kept).map_err(QueryError::BadRegex)?;
    Ok(Element::Regex { re, source: source.to_owned(), flags: flags.to_owned() })
}

/// An `$in`/`$all` member: a regular expression or an equality.
fn member(v: &Value, engine: &dyn RegexEngine, op: &str) -> Result<Element, QueryError> {
    if let Some((s, f)) = regex_literal(v) {
        return regex(engine, s, f);
    }
    if operator_object(v)?.is_some() {
        return Err(QueryError::UnsupportedOperator(format!("{op} with an operator inside")));
    }
    Ok(Element::Eq(v.clone()))
}

fn cmp(op: &str, operand: &Value) -> ValueMatcher {
    let accept = match op {
        "$lt" => [true, false, false],
        "$lte" => [true, true, false],
        "$gt" => [false, false, true],
        _ => [false, true, true],
    };
    if operand.is_null() {
        // Only null is comparable with null: $lte/$gte null mean "is null".
        return if accept[1] { ValueMatcher::Element(Element::Eq(Value::Null)) } else { ValueMatcher::Never };
    }
    ValueMatcher::Element(Element::Cmp { operand: operand.clone(), accept })
}

/// Compiles what a field is compared with: a literal, a regular expression
/// or an object of operators.
pub(crate) fn compile_value(v: &Value, engine: &dyn RegexEngine) -> Result<ValueMatcher, QueryError> {
    if let Some((s, f)) = regex_literal(v) {
        return Ok(ValueMatcher::Element(regex(engine, s, f)?));
    }
    let Some(ops) = operator_object(v)? else { return Ok(ValueMatcher::Element(Element::Eq(v.clone()))) };
    let mut all = Vec::with_capacity(ops.len());
    for (op, operand) in ops {
        let m = match op.as_str() {
            "$eq" => ValueMatcher::Element(Element::Eq(operand.clone())),
            "$ne" => ValueMatcher::Not(Box::new(ValueMatcher::Element(Element::Eq(operand.clone())))),
            "$lt" | "$lte" | "$gt" | "$gte" => cmp(op, operand),
            "$in" | "$nin" => {
                let Value::Array(items) = operand else { return Err(bad(format!("{op} needs an array"))) };
                let items = items.iter().map(|i| member(i, engine, op)).collect::<Result<Vec<_>, _>>()?;
                let m = ValueMatcher::Element(Element::In(items));
                if op == "$in" {
                    m
                } else {
                    ValueMatcher::Not(Box::new(m))
                }
            }
            "$exists" => {
                if truthy(operand) {
                    ValueMatcher::Exists
                } else {
                    ValueMatcher::Not(Box::new(ValueMatcher::Exists))
                }
            }
            "$not" => {
                if let Some((s, f)) = regex_literal(operand) {
                    ValueMatcher::Not(Box::new(ValueMatcher::Element(regex(engine, s, f)?)))
                } else if operator_object(operand)?.is_some() {
                    ValueMatcher::Not(Box::new(compile_value(operand, engine)?))
                } else {
                    return Err(bad("$not needs a regular expression or an object of operators"));
                }
            }
            "$regex" => {
                let options = ops.get("$options").map(|o| o.as_str().ok_or_else(|| bad("$options needs a string")));
                let options = options.transpose()?;
                let (source, flags) = match (operand, regex_literal(operand)) {
                    (_, Some((s, f))) => (s, options.unwrap_or(f)),
                    (Value::String(s), None) => (s.as_str(), options.unwrap_or("")),
                    _ => return Err(bad("$regex needs a string or a regular expression")),
                };
                ValueMatcher::Element(regex(engine, source, flags)?)
            }
            "$options" => {
                if !ops.contains_key("$regex") {
                    return Err(bad("$options needs a $regex"));
                }
                continue;
            }
            "$size" => match operand.as_f64() {
                Some(n) => ValueMatcher::Size(n),
                None => return Err(bad("$size needs a number")),
            },
            "$all" => {
                let Value::Array(items) = operand else { return Err(bad("$all needs an array")) };
                if items.is_empty() {
                    ValueMatcher::Never
                } else {
                    let items = items.iter().map(|i| member(i, engine, "$all").map(ValueMatcher::Element));
                    ValueMatcher::And(items.collect::<Result<Vec<_>, _>>()?)
                }
            }
            "$elemMatch" => {
                if operator_object(operand)?.is_some() {
                    ValueMatcher::ElemMatchValue(Box::new(compile_value(operand, engine)?))
                } else if as_object(operand).is_some() {
                    ValueMatcher::ElemMatchDoc(Box::new(compile_doc(operand, engine)?))
                } else {
                    return Err(bad("$elemMatch needs an object"));
                }
            }
            other => return Err(QueryError::UnsupportedOperator(other.to_owned())),
        };
        all.push(m);
    }
    Ok(if all.len() == 1 { all.pop().unwrap_or(ValueMatcher::Never) } else { ValueMatcher::And(all) })
}

/// Compiles a document selector (`{field: …, $and: […], …}`).
pub(crate) fn compile_doc(sel: &Value, engine: &dyn RegexEngine) -> Result<DocMatcher, QueryError> {
    let Some(m) = as_object(sel) else { return Err(bad(format!("a selector must be an object, not {}", to_text(sel)))) };
    let mut parts = Vec::with_capacity(m.len());
    for (k, v) in m {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                let Value::Array(items) = v else { return Err(bad(format!("{k} needs an array"))) };
                if items.is_empty() {
                    return Err(bad(format!("{k} needs a non-empty array")));
                }
                let subs = items.iter().map(|i| compile_doc(i, engine)).collect::<Result<Vec<_>, _>>()?;
                parts.push(match k.as_str() {
                    "$and" => DocMatcher::And(subs),
                    "$or" => DocMatcher::Or(subs),
                    _ => DocMatcher::Nor(subs),
                });
            }
            "$comment" => {}
            op if op.starts_with('$') => return Err(QueryError::UnsupportedOperator(op.to_owned())),
            path => {
                let path: Vec<String> = path.split('.').map(str::to_owned).collect();
                parts.push(DocMatcher::Field { path, matcher: compile_value(v, engine)? });
            }
        }
    }
    Ok(match parts.len() {
        0 => DocMatcher::All,
        1 => parts.pop().unwrap_or(DocMatcher::All),
        _ => DocMatcher::And(parts),
    })
}
