//! The `fields` option: include (`{a: 1, "b.c": 1}`) or exclude
//! (`{a: 0}`) fields, dotted paths included; `_id` is kept unless `_id: 0`.

use super::selector::as_object;
use super::QueryError;
use crate::protocol::json::to_text;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
struct Node {
    /// Field → `None` for the whole field, or the paths below it.
    children: Vec<(String, Option<Node>)>,
}

impl Node {
    fn add(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else { return };
        match self.children.iter_mut().find(|(k, _)| k == first) {
            Some((_, None)) => {}
            Some((_, child @ Some(_))) => {
                if rest.is_empty() {
                    *child = None;
                } else if let Some(c) = child {
                    c.add(rest);
                }
            }
            None => {
                let child = (!rest.is_empty()).then(|| {
                    let mut n = Node::default();
                    n.add(rest);
                    n
                });
                self.children.push(((*first).to_owned(), child));
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Option<Node>> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    fn include(&self, m: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in m {
            match self.get(k) {
                Some(None) => {
                    out.insert(k.clone(), v.clone());
                }
                Some(Some(sub)) => {
                    if let Some(v) = sub.include_value(v) {
                        out.insert(k.clone(), v);
                    }
                }
                None => {}
            }
        }
        out
    }

    fn include_value(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Array(a) => Some(Value::Array(a.iter().filter_map(|e| self.include_value(e)).collect())),
            v => as_object(v).map(|m| Value::Object(self.include(m))),
        }
    }

    fn exclude(&self, m: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in m {
            match self.get(k) {
                Some(None) => {}
                Some(Some(sub)) => {
                    out.insert(k.clone(), sub.exclude_value(v));
                }
                None => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    fn exclude_value(&self, v: &Value) -> Value {
        match v {
            Value::Array(a) => Value::Array(a.iter().map(|e| self.exclude_value(e)).collect()),
            v => as_object(v).map_or_else(|| v.clone(), |m| Value::Object(self.exclude(m))),
        }
    }
}

/// A compiled `fields` option.
#[derive(Debug, Clone)]
pub struct Projection {
    include: bool,
    tree: Node,
    id: bool,
}

impl Projection {
    /// Reads `{path: 1|0|true|false, …}`; `None` when it changes nothing.
    pub fn compile(spec: &Value) -> Result<Option<Projection>, QueryError> {
        let bad = |m: String| QueryError::BadOptions(m);
        let m = match spec {
            Value::Null => return Ok(None),
            Value::Object(m) => m,
            other => return Err(bad(format!("fields must be an object, not {}", to_text(other)))),
        };
        let mut id = true;
        let mut mode: Option<bool> = None;
        let mut tree = Node::default();
        for (k, v) in m {
            let on = match v {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::Object(_) => return Err(QueryError::UnsupportedOperator(format!("projection operator in fields.{k}"))),
                other => return Err(bad(format!("bad fields value {} for {k}", to_text(other)))),
            };
            if k == "_id" {
                id = on;
                continue;
            }
            if k.starts_with('$') || k.split('.').any(str::is_empty) {
                return Err(bad(format!("bad field name {} in fields", crate::protocol::json::quoted(k))));
            }
            if *mode.get_or_insert(on) != on {
                return Err(bad("fields cannot mix including and excluding (apart from _id)".into()));
            }
            tree.add(&k.split('.').collect::<Vec<_>>());
        }
        match mode {
            None if id => Ok(None),
            None => Ok(Some(Projection { include: false, tree, id })),
            Some(include) => Ok(Some(Projection { include, tree, id })),
        }
    }

    /// Whether `_id` is kept.
    pub fn keeps_id(&self) -> bool {
        self.id
    }

    /// The projected fields (without `_id`).
    pub fn apply(&self, fields: &Map<String, Value>) -> Map<String, Value> {
        if self.include {
            self.tree.include(fields)
        } else {
            self.tree.exclude(fields)
        }
    }
}
