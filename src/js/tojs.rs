//! Documents, changes and results handed to JavaScript.
//!
//! A plain JSON value (no `$`-key inside) is built straight from the stored
//! value, with no intermediate copy: field names are turned into JS strings
//! once and kept in a small cache (documents repeat their field names), so a
//! small document costs a handful of boundary crossings. (Measured against
//! writing JSON text for one `JSON.parse` per document: that was slower for
//! 200-byte documents.) A value holding a `$`-key (a `$date`, a `$binary`,
//! an escaped look-alike…) takes the EJSON path. Either way a field named
//! `__proto__` becomes an own property, never the prototype.

use super::ejson;
use crate::protocol::ejson::Ejson;
use crate::protocol::hash::FastMap;
use crate::protocol::store::{Change, DocRef, Fields};
use js_sys::{Array, Object, Reflect};
use serde_json::Value;
use std::cell::RefCell;
use wasm_bindgen::JsValue;

/// Field names already made into JS strings (bounded: cleared when full).
const KEY_CACHE: usize = 512;

thread_local! {
    static KEYS: RefCell<FastMap<String, JsValue>> = RefCell::new(FastMap::default());
}

/// Sets `key` on `o`, with the key's JS string from the cache.
fn set(o: &Object, key: &str, value: &JsValue) {
    if key == "__proto__" {
        ejson::set_own(o, key, value);
        return;
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(k) = keys.get(key) {
            let _ = Reflect::set(o, k, value);
            return;
        }
        if keys.len() >= KEY_CACHE {
            keys.clear();
        }
        let k = JsValue::from_str(key);
        let _ = Reflect::set(o, &k, value);
        keys.insert(key.to_owned(), k);
    });
}

/// Whether `m` has no `$`-key at its own level (so it is no EJSON type;
/// deeper levels are checked as they are built).
fn plain_level(m: &Fields) -> bool {
    !m.keys().any(|k| k.starts_with('$'))
}

/// Any JSON value as JS (EJSON-decoded).
pub(crate) fn value(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(a) => a.iter().map(value).collect::<Array>().into(),
        Value::Object(m) if plain_level(m) => object(None, m).into(),
        Value::Object(_) => ejson::to_js(&Ejson::from_json(v.clone())),
    }
}

/// An object of `fields` (with `_id` first when given).
fn object(id: Option<&str>, fields: &Fields) -> Object {
    let o = Object::new();
    if let Some(id) = id {
        set(&o, "_id", &JsValue::from_str(id));
    }
    for (k, v) in fields {
        if id.is_some() && k == "_id" {
            continue;
        }
        set(&o, k, &value(v));
    }
    o
}

/// A document: `_id` plus its fields. A field's name is only a name, at
/// any level of `fields`; its value is EJSON.
pub(crate) fn document(id: &str, fields: &Fields) -> JsValue {
    object(Some(id), fields).into()
}

/// Fields (no `_id`) as a JS object.
pub(crate) fn fields(fields: &Fields) -> JsValue {
    object(None, fields).into()
}

/// Documents as a JS array.
/// The documents, each decoded in turn (never all at once).
pub(crate) fn documents(docs: &[(&str, DocRef<'_>)]) -> JsValue {
    docs.iter().map(|(id, d)| document(id, &d.fields())).collect::<Array>().into()
}

/// A change as `{type, id, fields?, cleared?}`.
pub(crate) fn change(c: &Change) -> JsValue {
    let o = Object::new();
    let (kind, id) = match c {
        Change::Added { id, .. } => ("added", id),
        Change::Changed { id, .. } => ("changed", id),
        Change::Removed { id, .. } => ("removed", id),
    };
    set(&o, "type", &JsValue::from_str(kind));
    set(&o, "id", &JsValue::from_str(id));
    let fields = match c {
        Change::Added { fields, .. } => Some(&**fields),
        Change::Changed { fields, .. } => Some(fields),
        Change::Removed { .. } => None,
    };
    if let Some(f) = fields {
        set(&o, "fields", &object(None, f).into());
    }
    if let Change::Changed { cleared, .. } = c {
        set(&o, "cleared", &cleared.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into());
    }
    o.into()
}
