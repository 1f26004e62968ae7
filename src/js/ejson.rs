//! EJSON ↔ JavaScript values: `Date`, `Uint8Array`, `RegExp`, NaN/±Infinity
//! and registered custom types, like Meteor's `EJSON`.

use crate::protocol::ejson::Ejson;
use js_sys::{Array, Date, Function, Object, Reflect, RegExp, Uint8Array};
use std::cell::RefCell;
use crate::protocol::hash::FastMap;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = RegExp)]
    type CheckedRegExp;
    /// `new RegExp(source, flags)`, with its SyntaxError caught.
    #[wasm_bindgen(catch, constructor, js_class = "RegExp")]
    fn new(source: &str, flags: &str) -> Result<CheckedRegExp, JsValue>;
}

thread_local! {
    /// Custom types: name → factory turning the `$value` into an instance.
    static TYPES: RefCell<FastMap<String, Function>> = RefCell::new(FastMap::default());
}

/// Registers a custom EJSON type, as Meteor's `EJSON.addType(name, factory)`:
/// instances sent to the server must have `typeName()` returning `name` and
/// `toJSONValue()`; values of that type from the server are turned into
/// instances by `factory(jsonValue)`.
pub fn add_type(name: String, factory: Function) {
    TYPES.with(|t| t.borrow_mut().insert(name, factory));
}

const MAX_DEPTH: usize = 128;

/// A JS value as EJSON. Functions, symbols and bigints cannot be sent, nor
/// can values nested deeper than 128 levels (cycles).
pub fn from_js(v: &JsValue) -> Result<Ejson, String> {
    from_js_at(v, 0)
}

fn from_js_at(v: &JsValue, depth: usize) -> Result<Ejson, String> {
    if depth > MAX_DEPTH {
        return Err("the value is nested too deeply (a cycle?)".into());
    }
    if v.is_null() || v.is_undefined() {
        return Ok(Ejson::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Ejson::Bool(b));
    }
    if let Some(n) = v.as_f64() {
        return Ok(Ejson::Number(n));
    }
    if let Some(s) = v.as_string() {
        return Ok(Ejson::String(s));
    }
    if v.is_function() || v.is_symbol() || v.is_bigint() {
        return Err(format!("a {} cannot be sent", v.js_typeof().as_string().unwrap_or_default()));
    }
    if let Some(d) = v.dyn_ref::<Date>() {
        return Ok(Ejson::Date(d.get_time()));
    }
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Ok(Ejson::Binary(a.to_vec()));
    }
    if let Some(r) = v.dyn_ref::<RegExp>() {
        return Ok(Ejson::Regexp { source: r.source().into(), flags: r.flags().into() });
    }
    if Array::is_array(v) {
        let a: &Array = v.unchecked_ref();
        return a.iter().map(|x| from_js_at(&x, depth + 1)).collect::<Result<_, _>>().map(Ejson::Array);
    }
    // A custom type: typeName() + toJSONValue().
    let type_name = Reflect::get(v, &"typeName".into()).ok().filter(JsValue::is_function);
    let to_json = Reflect::get(v, &"toJSONValue".into()).ok().filter(JsValue::is_function);
    if let (Some(t), Some(j)) = (type_name, to_json) {
        let name = t.unchecked_ref::<Function>().call0(v).map_err(|_| "typeName() threw".to_string())?;
        let value = j.unchecked_ref::<Function>().call0(v).map_err(|_| "toJSONValue() threw".to_string())?;
        return Ok(Ejson::Custom {
            type_name: name.as_string().ok_or("typeName() must return a string")?,
            value: Box::new(from_js_at(&value, depth + 1)?),
        });
    }
    let obj: &Object = v.unchecked_ref();
    let mut fields = Vec::new();
    for entry in Object::entries(obj).iter() {
        let pair: Array = entry.unchecked_into();
        let value = pair.get(1);
        if value.is_undefined() {
            continue; // as JSON.stringify does
        }
        fields.push((pair.get(0).as_string().unwrap_or_default(), from_js_at(&value, depth + 1)?));
    }
    Ok(Ejson::Object(fields))
}

/// Sets `key` as an own data property, as `JSON.parse` does: a key named
/// `__proto__` from the server becomes a property, never the prototype.
pub(crate) fn set_own(o: &Object, key: &str, value: &JsValue) {
    if key == "__proto__" {
        let descriptor = Object::new();
        for (k, v) in [("value", value.clone()), ("writable", JsValue::TRUE), ("enumerable", JsValue::TRUE), ("configurable", JsValue::TRUE)] {
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
            match CheckedRegExp::new(source, flags) {
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
