//! Documents, changes and results handed to JavaScript.
//!
//! Most documents are plain JSON (no EJSON types inside). Those are written
//! as JSON text in wasm and built by one `JSON.parse` in JS, which is several
//! times cheaper than building the object key by key across the boundary
//! (and, like `JSON.parse`, it makes a key such as `__proto__` an own
//! property, never a prototype). A value holding any `$`-key (a `$date`, a
//! `$binary`, an escaped look-alike…) takes the EJSON path instead.

use super::ejson;
use crate::protocol::ejson::Ejson;
use crate::protocol::store::{Change, Fields};
use serde_json::Value;
use wasm_bindgen::JsValue;

/// Whether `v` is free of `$`-keys at every depth (so JSON means EJSON).
fn plain(v: &Value) -> bool {
    match v {
        Value::Object(m) => plain_fields(m),
        Value::Array(a) => a.iter().all(plain),
        _ => true,
    }
}

fn plain_fields(m: &Fields) -> bool {
    m.iter().all(|(k, v)| !k.starts_with('$') && plain(v))
}

/// JSON text written piece by piece.
struct Text(Vec<u8>);

impl Text {
    fn new() -> Self {
        Text(Vec::with_capacity(256))
    }

    fn raw(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// A JSON value (a string, an array of strings, a document's field…).
    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<&mut Self, ()> {
        serde_json::to_writer(&mut self.0, v).map_err(|_| ())?;
        Ok(self)
    }

    /// `{"_id":id,...fields}`.
    fn document(&mut self, id: &str, fields: &Fields) -> Result<&mut Self, ()> {
        self.raw("{\"_id\":").json(id)?;
        for (k, v) in fields {
            if k == "_id" {
                continue;
            }
            self.raw(",").json(k)?.raw(":").json(v)?;
        }
        Ok(self.raw("}"))
    }

    fn parse(self) -> Option<JsValue> {
        let text = String::from_utf8(self.0).ok()?;
        js_sys::JSON::parse(&text).ok()
    }
}

/// Any JSON value as JS (EJSON-decoded).
pub(crate) fn value(v: &Value) -> JsValue {
    // Scalars cross directly (a method's result is often one).
    match v {
        Value::Null => return JsValue::NULL,
        Value::Bool(b) => return JsValue::from_bool(*b),
        Value::Number(n) => return JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => return JsValue::from_str(s),
        Value::Array(_) | Value::Object(_) => {}
    }
    if plain(v) {
        let mut t = Text::new();
        if t.json(v).is_ok() {
            if let Some(js) = t.parse() {
                return js;
            }
        }
    }
    ejson::to_js(&Ejson::from_json(v.clone()))
}

/// A document: its fields plus `_id`.
pub(crate) fn document(id: &str, fields: &Fields) -> JsValue {
    if plain_fields(fields) {
        let mut t = Text::new();
        if t.document(id, fields).is_ok() {
            if let Some(js) = t.parse() {
                return js;
            }
        }
    }
    value(&crate::data::document(id, fields))
}

/// Documents as one JS array, built by one `JSON.parse` when all are plain.
pub(crate) fn documents(docs: &[(&str, &Fields)]) -> JsValue {
    if docs.iter().all(|(_, f)| plain_fields(f)) {
        let mut t = Text::new();
        t.raw("[");
        let mut ok = true;
        for (i, (id, fields)) in docs.iter().enumerate() {
            if i > 0 {
                t.raw(",");
            }
            ok &= t.document(id, fields).is_ok();
        }
        t.raw("]");
        if ok {
            if let Some(js) = t.parse() {
                return js;
            }
        }
    }
    docs.iter().map(|(id, f)| document(id, f)).collect::<js_sys::Array>().into()
}

/// A change as `{type, id, fields?, cleared?}`.
pub(crate) fn change(c: &Change) -> JsValue {
    let (kind, id, fields, cleared) = match c {
        Change::Added { id, fields, .. } => ("added", id, Some(&**fields), None),
        Change::Changed { id, fields, cleared, .. } => ("changed", id, Some(fields), Some(cleared)),
        Change::Removed { id, .. } => ("removed", id, None, None),
    };
    if fields.is_none_or(plain_fields) {
        let mut t = Text::new();
        let written = (|| -> Result<(), ()> {
            t.raw("{\"type\":\"").raw(kind).raw("\",\"id\":").json(id)?;
            if let Some(f) = fields {
                t.raw(",\"fields\":").json(f)?;
            }
            if let Some(c) = cleared {
                t.raw(",\"cleared\":").json(c)?;
            }
            t.raw("}");
            Ok(())
        })();
        if written.is_ok() {
            if let Some(js) = t.parse() {
                return js;
            }
        }
    }
    // The EJSON path, key by key.
    let o = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v);
    };
    set("type", kind.into());
    set("id", id.as_str().into());
    if let Some(f) = fields {
        let fo = js_sys::Object::new();
        for (k, v) in f {
            ejson::set_own(&fo, k, &value(v));
        }
        set("fields", fo.into());
    }
    if let Some(c) = cleared {
        set("cleared", c.iter().map(|s| JsValue::from_str(s)).collect::<js_sys::Array>().into());
    }
    o.into()
}
