//! EJSON, Meteor's extension of JSON, as typed Rust values.
//!
//! On the wire EJSON is plain JSON in which some one- or two-key objects
//! whose keys all start with `$` stand for other types: `{"$date": ms}`,
//! `{"$binary": base64}`, `{"$InfNaN": 1|-1|0}`, `{"$regexp": src,
//! "$flags": f}`, `{"$type": name, "$value": v}` (custom types), and
//! `{"$escape": obj}` (an ordinary object whose keys merely look like the
//! above). [`Ejson::from_json`] decodes, [`Ejson::to_json`] encodes; the two
//! are inverse for every value.
//!
//! ```
//! use ddp_live::protocol::ejson::Ejson;
//! use serde_json::json;
//! let wire = json!({"when": {"$date": 1700000000000i64}, "n": {"$InfNaN": -1}});
//! let v = Ejson::from_json(wire.clone());
//! assert_eq!(v.get("when"), Some(&Ejson::Date(1700000000000.0)));
//! assert_eq!(v.get("n"), Some(&Ejson::Number(f64::NEG_INFINITY)));
//! assert_eq!(v.to_json(), wire);
//! ```

use serde_json::{Map, Number, Value};

/// An EJSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Ejson {
    Null,
    Bool(bool),
    /// Any number, including NaN and ±Infinity (sent as `$InfNaN`).
    Number(f64),
    String(String),
    Array(Vec<Ejson>),
    /// Keys in insertion order.
    Object(Vec<(String, Ejson)>),
    /// Milliseconds since the Unix epoch.
    Date(f64),
    Binary(Vec<u8>),
    Regexp {
        source: String,
        flags: String,
    },
    /// A custom type registered by the app (`$type` / `$value`).
    Custom {
        type_name: String,
        value: Box<Ejson>,
    },
}

impl Ejson {
    /// Decodes wire JSON.
    pub fn from_json(v: Value) -> Ejson {
        match v {
            Value::Null => Ejson::Null,
            Value::Bool(b) => Ejson::Bool(b),
            Value::Number(n) => Ejson::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Ejson::String(s),
            Value::Array(a) => Ejson::Array(a.into_iter().map(Ejson::from_json).collect()),
            Value::Object(m) => decode_object(m),
        }
    }

    /// Encodes to wire JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Ejson::Null => Value::Null,
            Ejson::Bool(b) => Value::Bool(*b),
            Ejson::Number(n) => number_to_json(*n),
            Ejson::String(s) => Value::String(s.clone()),
            Ejson::Array(a) => Value::Array(a.iter().map(Ejson::to_json).collect()),
            Ejson::Object(fields) => {
                let m: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                if looks_special(&m) {
                    one("$escape", Value::Object(m))
                } else {
                    Value::Object(m)
                }
            }
            Ejson::Date(ms) => one("$date", number_to_json(*ms)),
            Ejson::Binary(b) => one("$binary", Value::String(base64_encode(b))),
            Ejson::Regexp { source, flags } => {
                let mut m = Map::new();
                m.insert("$regexp".into(), Value::String(source.clone()));
                m.insert("$flags".into(), Value::String(flags.clone()));
                Value::Object(m)
            }
            Ejson::Custom { type_name, value } => {
                let mut m = Map::new();
                m.insert("$type".into(), Value::String(type_name.clone()));
                m.insert("$value".into(), value.to_json());
                Value::Object(m)
            }
        }
    }

    /// A field of an object.
    pub fn get(&self, key: &str) -> Option<&Ejson> {
        match self {
            Ejson::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl serde::Serialize for Ejson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Ejson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Ejson::from_json)
    }
}

fn one(key: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), v);
    Value::Object(m)
}

fn number_to_json(n: f64) -> Value {
    if n.is_nan() {
        return one("$InfNaN", Value::from(0));
    }
    if n.is_infinite() {
        return one("$InfNaN", Value::from(if n > 0.0 { 1 } else { -1 }));
    }
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// An object that EJSON would read as a special type: 1–2 keys, all `$…`.
fn looks_special(m: &Map<String, Value>) -> bool {
    (1..=2).contains(&m.len()) && m.keys().all(|k| k.starts_with('$'))
}

fn decode_object(mut m: Map<String, Value>) -> Ejson {
    if looks_special(&m) {
        if m.len() == 1 {
            let (k, v) = m.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
            match (k.as_str(), v) {
                ("$date", Value::Number(n)) => return Ejson::Date(n.as_f64().unwrap_or(f64::NAN)),
                ("$binary", Value::String(s)) => {
                    if let Some(bytes) = base64_decode(&s) {
                        return Ejson::Binary(bytes);
                    }
                }
                ("$InfNaN", Value::Number(n)) => {
                    let x = n.as_f64().unwrap_or(0.0);
                    return Ejson::Number(if x > 0.0 {
                        f64::INFINITY
                    } else if x < 0.0 {
                        f64::NEG_INFINITY
                    } else {
                        f64::NAN
                    });
                }
                ("$escape", Value::Object(inner)) => {
                    return Ejson::Object(inner.into_iter().map(|(k, v)| (k, Ejson::from_json(v))).collect());
                }
                _ => {}
            }
        } else if let (Some(Value::String(_)), true) = (m.get("$type"), m.contains_key("$value")) {
            let type_name = match m.remove("$type") {
                Some(Value::String(s)) => s,
                _ => String::new(),
            };
            let value = m.remove("$value").unwrap_or(Value::Null);
            return Ejson::Custom { type_name, value: Box::new(Ejson::from_json(value)) };
        } else if let (Some(Value::String(_)), Some(Value::String(_))) = (m.get("$regexp"), m.get("$flags")) {
            let s = |v: Option<Value>| match v {
                Some(Value::String(s)) => s,
                _ => String::new(),
            };
            let source = s(m.remove("$regexp"));
            let flags = s(m.remove("$flags"));
            return Ejson::Regexp { source, flags };
        }
    }
    // Not a special form (or a malformed one): an ordinary object.
    Ejson::Object(m.into_iter().map(|(k, v)| (k, Ejson::from_json(v))).collect())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` if it is not base64.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None; // a lone sextet cannot end valid base64
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_every_special_form() {
        let v = Ejson::from_json(json!({
            "d": {"$date": 5},
            "b": {"$binary": "AQID"},
            "inf": {"$InfNaN": 1}, "ninf": {"$InfNaN": -1}, "nan": {"$InfNaN": 0},
            "re": {"$regexp": "a+b", "$flags": "gi"},
            "t": {"$type": "point", "$value": {"x": 1}},
            "e": {"$escape": {"$date": "not a date"}},
        }));
        assert_eq!(v.get("d"), Some(&Ejson::Date(5.0)));
        assert_eq!(v.get("b"), Some(&Ejson::Binary(vec![1, 2, 3])));
        assert_eq!(v.get("inf"), Some(&Ejson::Number(f64::INFINITY)));
        assert_eq!(v.get("ninf"), Some(&Ejson::Number(f64::NEG_INFINITY)));
        assert!(matches!(v.get("nan"), Some(Ejson::Number(n)) if n.is_nan()));
        assert_eq!(v.get("re"), Some(&Ejson::Regexp { source: "a+b".into(), flags: "gi".into() }));
        assert_eq!(
            v.get("t"),
            Some(&Ejson::Custom { type_name: "point".into(), value: Box::new(Ejson::Object(vec![("x".into(), Ejson::Number(1.0))])) })
        );
        assert_eq!(v.get("e"), Some(&Ejson::Object(vec![("$date".into(), Ejson::String("not a date".into()))])));
    }

    #[test]
    fn only_one_or_two_dollar_keys_are_special() {
        let three = json!({"$date": 1, "$x": 2, "$y": 3});
        assert!(matches!(Ejson::from_json(three.clone()), Ejson::Object(f) if f.len() == 3));
        let mixed = json!({"$date": 1, "x": 2});
        assert!(matches!(Ejson::from_json(mixed), Ejson::Object(_)));
    }

    #[test]
    fn encoding_escapes_lookalike_objects() {
        let v = Ejson::Object(vec![("$date".into(), Ejson::Number(1.0))]);
        assert_eq!(v.to_json(), json!({"$escape": {"$date": 1}}));
        assert_eq!(Ejson::from_json(v.to_json()), v);
    }

    #[test]
    fn round_trips() {
        let samples = vec![
            Ejson::Null,
            Ejson::Bool(true),
            Ejson::Number(1.5),
            Ejson::Number(-3.0),
            Ejson::Number(f64::INFINITY),
            Ejson::String("$date".into()),
            Ejson::Date(1_700_000_000_123.0),
            Ejson::Binary((0..=255).collect()),
            Ejson::Binary(vec![]),
            Ejson::Regexp { source: "^x$".into(), flags: "m".into() },
            Ejson::Custom { type_name: "money".into(), value: Box::new(Ejson::String("1.00 EUR".into())) },
            Ejson::Array(vec![Ejson::Date(0.0), Ejson::Object(vec![("$escape".into(), Ejson::Null)])]),
            Ejson::Object(vec![("a".into(), Ejson::Object(vec![("$binary".into(), Ejson::String("zz".into()))]))]),
        ];
        for s in samples {
            assert_eq!(Ejson::from_json(s.to_json()), s, "{s:?}");
            // And through text.
            let text = serde_json::to_string(&s.to_json()).unwrap();
            assert_eq!(Ejson::from_json(serde_json::from_str(&text).unwrap()), s);
        }
    }

    #[test]
    fn base64_matches_the_standard() {
        for (raw, enc) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw.as_bytes());
        }
        assert_eq!(base64_decode("not base64!"), None);
        assert_eq!(base64_decode("A"), None);
        // Malformed $binary stays an ordinary object.
        assert!(matches!(Ejson::from_json(json!({"$binary": "%%"})), Ejson::Object(_)));
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn arb() -> impl Strategy<Value = Ejson> {
            let leaf = prop_oneof![
                Just(Ejson::Null),
                any::<bool>().prop_map(Ejson::Bool),
                prop_oneof![any::<i32>().prop_map(f64::from), -1e9f64..1e9, Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
                    .prop_map(Ejson::Number),
                ".{0,6}".prop_map(Ejson::String),
                (0i64..4_000_000_000_000).prop_map(|n| Ejson::Date(n as f64)),
                proptest::collection::vec(any::<u8>(), 0..20).prop_map(Ejson::Binary),
                ("[a-z]{0,4}", "[gimsuy]{0,2}").prop_map(|(source, flags)| Ejson::Regexp { source, flags }),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Ejson::Array),
                    proptest::collection::btree_map(prop_oneof!["[a-z]{1,3}", "\\$[a-z]{1,5}"], inner.clone(), 0..3)
                        .prop_map(|m| Ejson::Object(m.into_iter().collect())),
                    ("[a-z]{1,5}", inner).prop_map(|(t, v)| Ejson::Custom { type_name: t, value: Box::new(v) }),
                ]
            })
        }

        proptest! {
            #[test]
            fn every_value_round_trips(v in arb()) {
                let text = serde_json::to_string(&v.to_json()).unwrap();
                prop_assert_eq!(Ejson::from_json(serde_json::from_str(&text).unwrap()), v);
            }

            #[test]
            fn base64_round_trips(b in proptest::collection::vec(any::<u8>(), 0..100)) {
                prop_assert_eq!(base64_decode(&base64_encode(&b)), Some(b));
            }
        }
    }
}
