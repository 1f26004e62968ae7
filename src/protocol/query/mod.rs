//! Queries over the local cache, as minimongo runs them: Mongo selectors,
//! `sort`, `skip`, `limit` and `fields`, one-shot ([`Query::fetch`]) or
//! live ([`live::LiveResults`]). Pure: no I/O; a regular expression engine
//! is injected ([`RegexEngine`]: JavaScript's `RegExp` in the browser, so
//! `$regex` means what it means to minimongo).
//!
//! ```
//! use ddp_live::protocol::query::{NoRegex, Query};
//! use serde_json::{json, Map, Value};
//! let q = Query::compile(
//!     Some(&json!({"done": false, "tags": "home"})),
//!     Some(&json!({"sort": {"createdAt": -1}, "limit": 20})),
//!     &NoRegex,
//! ).unwrap();
//! let doc = |v: Value| match v { Value::Object(m) => m, _ => Map::new() };
//! let (a, b) = (doc(json!({"done": false, "tags": ["home", "x"], "createdAt": 1})),
//!               doc(json!({"done": false, "tags": "home", "createdAt": 2})));
//! let ids: Vec<&str> = q.fetch([("a", &a), ("b", &b)]).iter().map(|(id, _)| *id).collect();
//! assert_eq!(ids, ["b", "a"]);
//! ```
//!
//! Where this differs from minimongo, on purpose: documents with equal
//! sort keys (and every document when there is no `sort`) are ordered by
//! `_id`, so every order is total and stable; an unsupported operator or
//! option is an error at compile time, never a silent mismatch.
//!
//! The engine reads documents only as `(&str id, &Fields)` (see
//! [`Query::matches`] and [`Query::sort_key`]).

pub mod live;
mod ostree;
pub mod projection;
pub mod selector;
pub mod sort;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
pub mod value;

use crate::protocol::json;
pub use crate::protocol::store::Fields;
use serde_json::Value;
use std::borrow::{Borrow, Cow};

/// Why a query cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// An operator this engine does not have (`$where`, `$near`, `$type`…).
    UnsupportedOperator(String),
    /// A selector that is not well formed.
    BadSelector(String),
    /// A `$regex` that does not compile, or has an unsupported option.
    BadRegex(String),
    /// Bad `sort`, `skip`, `limit` or `fields`, or an unknown option.
    BadOptions(String),
}

impl QueryError {
    /// The error's code: `unsupported-operator`, `bad-selector`,
    /// `bad-regex` or `bad-options`.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::UnsupportedOperator(_) => "unsupported-operator",
            QueryError::BadSelector(_) => "bad-selector",
            QueryError::BadRegex(_) => "bad-regex",
            QueryError::BadOptions(_) => "bad-options",
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::UnsupportedOperator(op) => write!(f, "unsupported operator {op}"),
            QueryError::BadSelector(m) | QueryError::BadRegex(m) | QueryError::BadOptions(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for QueryError {}

/// A compiled regular expression.
pub trait Regex {
    /// Whether it matches somewhere in `text`.
    fn is_match(&self, text: &str) -> bool;
}

/// Compiles regular expressions (`flags`: JavaScript's `i`, `m`, `s`, `u`).
pub trait RegexEngine {
    /// The compiled pattern, or why it does not compile.
    fn compile(&self, pattern: &str, flags: &str) -> Result<Box<dyn Regex>, String>;
}

/// No regular expressions: every `$regex` is a `bad-regex` error.
pub struct NoRegex;

impl RegexEngine for NoRegex {
    fn compile(&self, _: &str, _: &str) -> Result<Box<dyn Regex>, String> {
        Err("no regular expression engine here".into())
    }
}

/// A compiled query: selector, sort, skip, limit, projection.
pub struct Query {
    selector: selector::DocMatcher,
    reads_id: bool,
    sort: sort::Sort,
    skip: usize,
    limit: Option<usize>,
    projection: Option<projection::Projection>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").field("sort", &self.sort).field("skip", &self.skip).field("limit", &self.limit).finish()
    }
}

fn falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn count(options: &serde_json::Map<String, Value>, key: &str) -> Result<Option<usize>, QueryError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9.0e15 => Ok(Some(f as usize)),
            _ => Err(QueryError::BadOptions(format!("{key} must be a whole number ≥ 0, not {}", json::to_text(&Value::Number(n.clone()))))),
        },
        Some(other) => Err(QueryError::BadOptions(format!("{key} must be a number, not {}", json::to_text(other)))),
    }
}

impl Query {
    /// Compiles `selector` (`None`: every document; a string: that `_id`;
    /// `null`, `false`, `""`, `0` and `{_id: <one of those>}`: no document,
    /// as minimongo's safety rule) and `options` (`sort`, `skip`, `limit`
    /// with 0 meaning none, `fields` or its alias `projection`).
    pub fn compile(selector: Option<&Value>, options: Option<&Value>, regex: &dyn RegexEngine) -> Result<Query, QueryError> {
        let matcher = match selector {
            None => selector::DocMatcher::All,
            Some(Value::String(id)) => selector::DocMatcher::Field {
                path: vec!["_id".into()],
                matcher: selector::ValueMatcher::Element(selector::Element::Eq(Value::String(id.clone()))),
            },
            Some(v) if falsy(v) => selector::DocMatcher::Nothing,
            Some(v @ Value::Object(m)) => {
                if m.get("_id").is_some_and(falsy) {
                    selector::DocMatcher::Nothing
                } else {
                    selector::compile_doc(v, regex)?
                }
            }
            Some(other) => {
                return Err(QueryError::BadSelector(format!("a selector must be an object or an _id, not {}", json::to_text(other))))
            }
        };
        let mut q =
            Query { reads_id: matcher.reads_id(), selector: matcher, sort: sort::Sort::default(), skip: 0, limit: None, projection: None };
        match options {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                for k in o.keys() {
                    if !matches!(k.as_str(), "sort" | "skip" | "limit" | "fields" | "projection") {
                        let k = crate::protocol::json::quoted(k);
                        return Err(QueryError::BadOptions(format!("unknown option {k} (sort, skip, limit, fields)")));
                    }
                }
                if let Some(s) = o.get("sort") {
                    q.sort = sort::Sort::compile(s)?;
                }
                q.skip = count(o, "skip")?.unwrap_or(0);
                q.limit = count(o, "limit")?.filter(|l| *l > 0);
                if let Some(f) = o.get("fields").or_else(|| o.get("projection")) {
                    q.projection = projection::Projection::compile(f)?;
                }
            }
            Some(other) => return Err(QueryError::BadOptions(format!("options must be an object, not {}", json::to_text(other)))),
        }
        Ok(q)
    }

    /// The same query with `limit` set (for `findOne`).
    pub fn with_limit(mut self, limit: usize) -> Query {
        self.limit = Some(limit).filter(|l| *l > 0);
        self
    }

    /// The top-level fields the selector and the sort read: a document
    /// holding only these (of its fields) matches and sorts as the whole
    /// one does (so a compact document need not be decoded whole to be
    /// tested: [`crate::protocol::doc::Doc::fields_of`]).
    pub fn reads(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.selector.top_fields(&mut out);
        self.sort.top_fields(&mut out);
        out
    }

    /// Whether document `id` with `fields` matches the selector.
    pub fn matches(&self, id: &str, fields: &Fields) -> bool {
        let id_value = self.reads_id.then(|| Value::String(id.to_owned()));
        self.selector.matches(fields, id_value.as_ref())
    }

    /// Where document `id` sorts.
    pub fn sort_key(&self, id: &str, fields: &Fields) -> sort::SortKey {
        self.sort.key(id, fields)
    }

    /// How many matching documents are skipped.
    pub fn skip(&self) -> usize {
        self.skip
    }

    /// At most this many results (`None`: no limit).
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// The matching documents, sorted, skipped and limited (not projected).
    /// (`docs` as references, or as decoded copies: only matches are kept.)
    pub fn fetch<'a, D: Borrow<Fields>>(&self, docs: impl IntoIterator<Item = (&'a str, D)>) -> Vec<(&'a str, D)> {
        let mut hits: Vec<(sort::SortKey, &'a str, D)> =
            docs.into_iter().filter(|(id, f)| self.matches(id, f.borrow())).map(|(id, f)| (self.sort_key(id, f.borrow()), id, f)).collect();
        crate::protocol::order::sort_by(&mut hits, |a, b| a.0.cmp(&b.0));
        let take = self.limit.unwrap_or(usize::MAX);
        hits.into_iter().skip(self.skip).take(take).map(|(_, id, f)| (id, f)).collect()
    }

    /// Whether the results keep `_id`.
    pub fn keeps_id(&self) -> bool {
        self.projection.as_ref().is_none_or(projection::Projection::keeps_id)
    }

    /// A document's fields as the results show them (projected).
    pub fn project<'a>(&self, fields: &'a Fields) -> Cow<'a, Fields> {
        match &self.projection {
            None => Cow::Borrowed(fields),
            Some(p) => Cow::Owned(p.apply(fields)),
        }
    }
}
