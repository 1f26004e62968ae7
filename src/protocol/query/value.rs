//! Mongo's ordering and equality of values, on EJSON wire JSON (the form
//! the store keeps): `{"$date"}`, `{"$binary"}`, `{"$InfNaN"}`,
//! `{"$regexp"}`, `{"$type": "oid"}` and `{"$escape"}` are read as the
//! types they stand for.
//!
//! Type order (lowest first), as minimongo's `_f._typeorder` and MongoDB's
//! BSON order: missing/null, numbers, strings, objects, arrays, binary,
//! ObjectID, booleans, dates, regular expressions.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A value's type, in sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Null,
    Number,
    String,
    Object,
    Array,
    Binary,
    ObjectId,
    Bool,
    Date,
    Regexp,
}

/// The one EJSON special of a wire object, if it is one.
fn special(m: &Map<String, Value>) -> Option<(&str, &Value)> {
    match m.len() {
        1 => {
            let (k, v) = m.iter().next()?;
            matches!(k.as_str(), "$date" | "$binary" | "$InfNaN" | "$escape").then_some((k.as_str(), v))
        }
        2 => {
            if let (Some(t), Some(v)) = (m.get("$type"), m.get("$value")) {
                if t.as_str() == Some("oid") {
                    return Some(("oid", v));
                }
            }
            m.get("$regexp").filter(|_| m.contains_key("$flags")).map(|v| ("$regexp", v))
        }
        _ => None,
    }
}

/// The type of a value (`None`, a missing field, sorts as null).
pub(crate) fn kind(v: Option<&Value>) -> Kind {
    match v {
        None | Some(Value::Null) => Kind::Null,
        Some(Value::Bool(_)) => Kind::Bool,
        Some(Value::Number(_)) => Kind::Number,
        Some(Value::String(_)) => Kind::String,
        Some(Value::Array(_)) => Kind::Array,
        Some(Value::Object(m)) => match special(m) {
            Some(("$date", _)) => Kind::Date,
            Some(("$binary", _)) => Kind::Binary,
            Some(("$InfNaN", _)) => Kind::Number,
            Some(("oid", _)) => Kind::ObjectId,
            Some(("$regexp", _)) => Kind::Regexp,
            _ => Kind::Object,
        },
    }
}

/// A number (plain or `$InfNaN`), a date's milliseconds, or NaN.
pub(crate) fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::Object(m) => match special(m) {
            Some(("$InfNaN", s)) => match s.as_f64() {
                Some(s) if s > 0.0 => f64::INFINITY,
                Some(s) if s < 0.0 => f64::NEG_INFINITY,
                _ => f64::NAN,
            },
            Some(("$date", ms)) => number(ms),
            _ => f64::NAN,
        },
        _ => f64::NAN,
    }
}

/// NaN sorts below every other number (as in MongoDB).
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Strings compare by UTF-16 code units, as JavaScript's `<` (minimongo).
pub(crate) fn cmp_str(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// An object's own fields (an `$escape`d object's inner fields).
pub(crate) fn plain(m: &Map<String, Value>) -> &Map<String, Value> {
    match special(m) {
        Some(("$escape", Value::Object(inner))) => inner,
        _ => m,
    }
}

/// Mongo's total order of values (minimongo's `_f._cmp`); a missing value
/// compares as null.
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (ka, kb) = (kind(a), kind(b));
    if ka != kb {
        return ka.cmp(&kb);
    }
    let (Some(a), Some(b)) = (a, b) else { return Ordering::Equal };
    match ka {
        Kind::Null => Ordering::Equal,
        Kind::Number | Kind::Date => cmp_f64(number(a), number(b)),
        Kind::String => cmp_str(a.as_str().unwrap_or(""), b.as_str().unwrap_or("")),
        Kind::Bool => a.as_bool().cmp(&b.as_bool()),
        Kind::Array => {
            let (x, y) = (a.as_array().map_or(&[][..], Vec::as_slice), b.as_array().map_or(&[][..], Vec::as_slice));
            cmp_seq(x.iter().map(Some), y.iter().map(Some))
        }
        Kind::Object => {
            // As minimongo: the objects as [k1, v1, k2, v2, …], compared as arrays.
            let (Value::Object(x), Value::Object(y)) = (a, b) else { return Ordering::Equal };
            let flat = |m: &Map<String, Value>| -> Vec<Value> {
                plain(m).iter().flat_map(|(k, v)| [Value::String(k.clone()), v.clone()]).collect()
            };
            let (fx, fy) = (flat(x), flat(y));
            cmp_seq(fx.iter().map(Some), fy.iter().map(Some))
        }
        Kind::Binary => {
            let bytes =
                |v: &Value| v.get("$binary").and_then(Value::as_str).and_then(crate::protocol::ejson::base64_decode).unwrap_or_default();
            let (x, y) = (bytes(a), bytes(b));
            x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
        }
        Kind::ObjectId => {
            let hex = |v: &Value| v.get("$value").and_then(Value::as_str).unwrap_or("").to_owned();
            hex(a).cmp(&hex(b))
        }
        Kind::Regexp => {
            let part = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            part(a, "$regexp").cmp(&part(b, "$regexp")).then_with(|| part(a, "$flags").cmp(&part(b, "$flags")))
        }
    }
}

fn cmp_seq<'a>(mut x: impl Iterator<Item = Option<&'a Value>>, mut y: impl Iterator<Item = Option<&'a Value>>) -> Ordering {
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => match compare(a, b) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

/// EJSON equality, key-order sensitive (minimongo's `_f._equal`): numbers
/// by value (`1` equals `1.0`; NaN equals NaN), objects field by field in
/// order.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            let (x, y) = (number(a), number(b));
            x == y || (x.is_nan() && y.is_nan())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            let (x, y) = (plain(x), plain(y));
            x.len() == y.len() && x.iter().zip(y).all(|((ka, va), (kb, vb))| ka == kb && equal(va, vb))
        }
        (Value::Number(_), Value::Object(_)) | (Value::Object(_), Value::Number(_)) => {
            kind(Some(a)) == Kind::Number && kind(Some(b)) == Kind::Number && {
                let (x, y) = (number(a), number(b));
                x == y || (x.is_nan() && y.is_nan())
            }
        }
        _ => a == b,
    }
}
