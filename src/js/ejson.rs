//! EJSON ↔ JavaScript values: `Date`, `Uint8Array`, `RegExp`, NaN/±Infinity
//! and registered custom types, like Meteor's `EJSON`.

use crate::protocol::ejson::Ejson;
use crate::protocol::hash::NameMap;
use js_sys::{Array, Date, Function, Object, Reflect, Uint8Array};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    /// Custom types: name → factory turning the `$value` into an instance.
    static TYPES: RefCell<NameMap<Function>> = RefCell::new(NameMap::default());
}

/// Registers a custom EJSON type, as Meteor's `EJSON.addType(name, factory)`:
/// instances sent to the server must have `typeName()` returning `name` and
/// `toJSONValue()`; values of that type from the server are turned into
/// instances by `factory(jsonValue)`.
pub fn add_type(name: String, factory: Function) {
    TYPES.with(|t| t.borrow_mut().insert(name, factory));
}

const MAX_DEPTH: usize = 128;

#[wasm_bindgen(inline_js = r#"
// One look at a non-primitive value, inside try/catch: a throwing getter, a
// Proxy trap or a revoked Proxy must give an error, never throw through wasm.
export function classify(v) {
  try {
    if (v instanceof Date) return [1, v.getTime()];
    if (v instanceof Uint8Array) return [2, new Uint8Array(v)];
    if (v instanceof RegExp) return [3, v.source, v.flags];
    if (Array.isArray(v)) return [4, Array.from(v)];
    if (typeof v.typeName === "function" && typeof v.toJSONValue === "function") return [5, String(v.typeName()), v.toJSONValue()];
    return [6, Object.entries(v)];
  } catch (e) {
    let text = "an exception";
    try { text = String(e && e.message !== undefined ? e.message : e); } catch (_) {}
    return [0, text];
  }
}
"#)]
extern "C" {
    fn classify(v: &JsValue) -> Array;
}

/// A JS value as EJSON. Functions, symbols and bigints cannot be sent, nor
/// can values nested deeper than 128 levels (cycles), nor values whose
/// reading throws (a getter, a Proxy).
pub fn from_js(v: &JsValue) -> Result<Ejson, String> {
    from_js_bounded(v, usize::MAX).map_err(|e| match e {
        Refused::Bad(e) => e,
        Refused::TooLarge => "the value is too large".into(),
    })
}

/// Why a value was not converted.
pub enum Refused {
    /// It cannot be sent (the text says why).
    Bad(String),
    /// It holds more than `budget` bytes of text (a lower bound of its JSON
    /// size), so it is refused before all of it is read.
    TooLarge,
}

/// [`from_js`], giving up as soon as the value's strings and keys add up to
/// more than `budget` bytes.
pub fn from_js_bounded(v: &JsValue, budget: usize) -> Result<Ejson, Refused> {
    let mut left = budget;
    from_js_at(v, 0, &mut left)
}

fn spend(left: &mut usize, n: usize) -> Result<(), Refused> {
    *left = left.checked_sub(n).ok_or(Refused::TooLarge)?;
    Ok(())
}

fn from_js_at(v: &JsValue, depth: usize, left: &mut usize) -> Result<Ejson, Refused> {
    if depth > MAX_DEPTH {
        return Err(Refused::Bad("the value is nested too deeply (a cycle?)".into()));
    }
    spend(left, 1)?;
    if v.is_null() || v.is_undefined() {
        return Ok(Ejson::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Ejson::Bool(b));
    }
    if let Some(n) = v.as_f64() {
        return Ok(Ejson::Number(n));
    }
    if let Some(s) = v.dyn_ref::<js_sys::JsString>() {
        spend(left, s.length() as usize)?;
        return Ok(Ejson::String(String::from(s)));
    }
    if v.is_function() || v.is_symbol() || v.is_bigint() {
        return Err(Refused::Bad(format!("a {} cannot be sent", v.js_typeof().as_string().unwrap_or_default())));
    }
    let c = classify(v);
    let kind = c.get(0).as_f64().unwrap_or(0.0) as u8;
    match kind {
        1 => Ok(Ejson::Date(c.get(1).as_f64().unwrap_or(f64::NAN))),
        2 => {
            let a: Uint8Array = c.get(1).unchecked_into();
            spend(left, a.length() as usize)?;
            Ok(Ejson::Binary(a.to_vec()))
        }
        3 => Ok(Ejson::Regexp { source: c.get(1).as_string().unwrap_or_default(), flags: c.get(2).as_string().unwrap_or_default() }),
        4 => {
            let a: Array = c.get(1).unchecked_into();
            a.iter().map(|x| from_js_at(&x, depth + 1, left)).collect::<Result<_, _>>().map(Ejson::Array)
        }
        5 => Ok(Ejson::Custom {
            type_name: c.get(1).as_string().unwrap_or_default(),
            value: Box::new(from_js_at(&c.get(2), depth + 1, left)?),
        }),
        6 => {
            let entries: Array = c.get(1).unchecked_into();
            let mut fields = Vec::with_capacity(entries.length() as usize);
            for entry in entries.iter() {
                let pair: Array = entry.unchecked_into();
                let value = pair.get(1);
                if value.is_undefined() {
                    continue; // as JSON.stringify does
                }
                let key = pair.get(0).as_string().unwrap_or_default();
                spend(left, key.len())?;
                fields.push((key, from_js_at(&value, depth + 1, left)?));
            }
            Ok(Ejson::Object(fields))
        }
        _ => Err(Refused::Bad(format!("reading the value threw: {}", c.get(1).as_string().unwrap_or_default()))),
    }
}

/// Sets `key` as an own data property, as `JSON.parse` does: a key named
/// `__proto__` from the server becomes a property, never the prototype.
pub(crate) fn set_own(o: &Object, key: &str, value: &JsValue) {
    if key == "__proto__" {
        let descriptor = Object::new();
        for (k, v) in
            [("value", value.clone()), ("writable", JsValue::TRUE), ("enumerable", JsValue::TRUE), ("configurable", JsValue::TRUE)]
        {
            let _ = Reflect::set(&descriptor, &k.into(), &v);
        }
        let _ = Reflect::define_property(o, &key.into(), &descriptor);
    } else {
        let _ = Reflect::set(o, &JsValue::from_str(key), value);
    }
}

/// EJSON as a JS value. A custom type nobody registered stays a plain
/// `{ $type, $value }` object, so nothing is lost.
pub fn to_js(v: &Ejson) -> JsValue {
    match v {
        Ejson::Null => JsValue::NULL,
        Ejson::Bool(b) => JsValue::from_bool(*b),
        Ejson::Number(n) => JsValue::from_f64(*n),
        Ejson::String(s) => JsValue::from_str(s),
        Ejson::Array(a) => a.iter().map(to_js).collect::<Array>().into(),
        Ejson::Object(fields) => {
            let o = Object::new();
            for (k, val) in fields {
                set_own(&o, k, &to_js(val));
            }
            o.into()
        }
        Ejson::Date(ms) => Date::new(&JsValue::from_f64(*ms)).into(),
        Ejson::Binary(b) => Uint8Array::from(b.as_slice()).into(),
        Ejson::Regexp { source, flags } => {
            // An invalid pattern from the server must not throw here.
            match crate::browser::regexp(source, flags) {
                Ok(r) => r.into(),
                Err(_) => to_js(&Ejson::Object(vec![
                    ("$regexp".into(), Ejson::String(source.clone())),
                    ("$flags".into(), Ejson::String(flags.clone())),
                ])),
            }
        }
        Ejson::Custom { type_name, value } => {
            let factory = TYPES.with(|t| t.borrow().get(type_name).cloned());
            let json = to_js(value);
            if let Some(f) = factory {
                if let Ok(obj) = f.call1(&JsValue::NULL, &json) {
                    return obj;
                }
            }
            let o = Object::new();
            let _ = Reflect::set(&o, &"$type".into(), &JsValue::from_str(type_name));
            let _ = Reflect::set(&o, &"$value".into(), &json);
            o.into()
        }
    }
}
