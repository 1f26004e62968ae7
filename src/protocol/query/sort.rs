//! Sort specifications and sort keys (minimongo's sorter): several keys,
//! each ascending or descending, Mongo's type order; an array field sorts
//! by its smallest element ascending and its largest descending; a missing
//! field sorts as null. Ties are broken by `_id`, so every order is total
//! and the same on every run.

use super::selector::{lookup, Branch};
use super::value::compare;
use super::QueryError;
use crate::protocol::json::to_text;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::rc::Rc;

/// A compiled `sort` option.
#[derive(Debug, Clone, Default)]
pub struct Sort {
    keys: Vec<(Vec<String>, bool)>,
}

/// One part of a document's sort key.
#[derive(Debug, Clone)]
pub struct KeyPart {
    value: Option<Value>,
    descending: bool,
}

impl PartialEq for KeyPart {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for KeyPart {}
impl PartialOrd for KeyPart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyPart {
    fn cmp(&self, other: &Self) -> Ordering {
        let o = compare(self.value.as_ref(), other.value.as_ref());
        if self.descending {
            o.reverse()
        } else {
            o
        }
    }
}

/// Where a document sorts: its key parts, then its `_id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    parts: Vec<KeyPart>,
    id: Rc<str>,
}

impl SortKey {
    /// The document's `_id`.
    pub fn id(&self) -> &Rc<str> {
        &self.id
    }
}

fn direction(v: &Value) -> Result<bool, QueryError> {
    match v {
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(false),
        Value::Number(n) if n.as_f64() == Some(-1.0) => Ok(true),
        Value::String(s) if s == "asc" || s == "ascending" => Ok(false),
        Value::String(s) if s == "desc" || s == "descending" => Ok(true),
        Value::Bool(b) => Ok(!*b),
        other => Err(QueryError::BadOptions(format!("bad sort direction {}", to_text(other)))),
    }
}

impl Sort {
    /// Reads `{a: 1, b: -1}`, `[["a", "asc"], ["b", "desc"]]` or `["a", "b"]`.
    pub fn compile(spec: &Value) -> Result<Sort, QueryError> {
        let path = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        let mut keys = Vec::new();
        match spec {
            Value::Object(m) => {
                for (k, v) in m {
                    keys.push((path(k), direction(v)?));
                }
            }
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(k) => keys.push((path(k), false)),
                        Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
                            keys.push((path(pair[0].as_str().unwrap_or_default()), direction(&pair[1])?))
                        }
                        other => return Err(QueryError::BadOptions(format!("bad sort key {}", to_text(other)))),
                    }
                }
            }
            Value::Null => {}
            other => return Err(QueryError::BadOptions(format!("bad sort specification {}", to_text(other)))),
        }
        Ok(Sort { keys })
    }

    /// True when no key was given (the order is by `_id`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The top-level fields the keys read.
    pub(crate) fn top_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        out.extend(self.keys.iter().filter_map(|(path, _)| path.first().map(String::as_str)));
    }

    /// A document's sort key.
    pub fn key(&self, id: &str, fields: &Map<String, Value>) -> SortKey {
        let reads_id = self.keys.iter().any(|(path, _)| path.first().is_some_and(|p| p == "_id"));
        let id_value = reads_id.then(|| Value::String(id.to_owned()));
        let mut branches: Vec<Branch<'_>> = Vec::new();
        let parts = self
            .keys
            .iter()
            .map(|(path, descending)| {
                branches.clear();
                lookup(fields, id_value.as_ref(), path, true, &mut branches);
                let mut best: Option<Option<&Value>> = None;
                for b in &branches {
                    let candidates: Box<dyn Iterator<Item = Option<&Value>>> = match b.value {
                        Some(Value::Array(a)) if !a.is_empty() => Box::new(a.iter().map(Some)),
                        Some(Value::Array(_)) => Box::new(std::iter::once(None)),
                        v => Box::new(std::iter::once(v)),
                    };
                    for c in candidates {
                        let better = match best {
                            None => true,
                            Some(cur) => {
                                let o = compare(c, cur);
                                if *descending {
                                    o == Ordering::Greater
                                } else {
                                    o == Ordering::Less
                                }
                            }
                        };
                        if better {
                            best = Some(c);
                        }
                    }
                }
                KeyPart { value: best.flatten().cloned(), descending: *descending }
            })
            .collect();
        SortKey { parts, id: Rc::from(id) }
    }
}
