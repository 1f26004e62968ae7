//! A document's fields in compact form: the JSON text of its fields object,
//! decoded on read.
//!
//! The store keeps every document the server sent for as long as it is
//! subscribed, and most are never read field by field (a page shows some,
//! a query tests some). A map of `serde_json` values costs a hash table, an
//! allocation per key and per string, and room for growth: about 2.5 times
//! the text for a typical 200-byte document. The text itself is the
//! smallest faithful form: it keeps the sender's field order and every
//! number exactly as written, and decoding it with the frame reader
//! ([`super::json`]) gives exactly the map the reader would have built from
//! the frame. An `added` frame's fields are checked and kept as text
//! without building a single value ([`super::json::Reader::skip_value`]);
//! a `changed` frame's are spliced in ([`Doc::merge`]): a value's text is
//! always the text the server sent for it, never a rewriting of it.

use super::json::{self, JsonError, Reader};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::ops::Deref;

/// A document's fields (without `_id`), as apps read them.
pub type Fields = Map<String, Value>;

/// A document's fields kept as the JSON text of an object (always a valid
/// one: made only from text the reader checked, or by writing a map).
#[derive(Clone, Eq)]
pub struct Doc(Box<str>);

impl Doc {
    /// The empty document (`{}`).
    pub fn empty() -> Doc {
        Doc("{}".into())
    }

    /// Reads the object at `r` (checked as the reader would read it, value
    /// by value, but none built) and keeps its text. A value that is not an
    /// object is an error at its place.
    pub fn read(r: &mut Reader<'_>) -> Result<Doc, JsonError> {
        if r.peek() != Some(b'{') {
            return Err(JsonError { what: "expected an object", at: r.offset() });
        }
        Ok(Doc(r.skip_value()?.into()))
    }

    /// Writes `fields` (as `JSON.stringify` would: a float with no
    /// fraction, such as `1.0`, reads back as the integer `1`).
    pub fn from_fields(fields: &Fields) -> Doc {
        let mut out = String::new();
        json::write_object(fields.iter(), &mut out);
        Doc(out.into())
    }

    /// The top-level fields: each key (decoded) with its value's text, a
    /// repeated key where it first was with its last value (as a map reads
    /// them). O(k log k) in the number of fields.
    fn entries(&self) -> Vec<(Cow<'_, str>, &str)> {
        let mut raw: Vec<(Cow<'_, str>, &str)> = Vec::new();
        let _ = Reader::new(&self.0).object(|r, key| {
            let text = r.skip_value()?;
            raw.push((key, text));
            Ok(())
        });
        if raw.len() <= SMALL {
            let mut out: Vec<(Cow<'_, str>, &str)> = Vec::with_capacity(raw.len());
            for (key, text) in raw {
                match out.iter_mut().find(|(k, _)| *k == key) {
                    Some(e) => e.1 = text,
                    None => out.push((key, text)),
                }
            }
            return out;
        }
        // Sorted by key (stably: a repeated key's positions stay in order),
        // each run of a repeated key is kept at its first position with its
        // last value.
        let index = key_index(&raw);
        let mut keep = vec![true; raw.len()];
        let mut i = 0;
        while i < index.len() {
            let mut j = i + 1;
            while j < index.len() && raw[index[j]].0 == raw[index[i]].0 {
                keep[index[j]] = false;
                j += 1;
            }
            raw[index[i]].1 = raw[index[j - 1]].1;
            i = j;
        }
        raw.into_iter().zip(keep).filter_map(|(e, k)| k.then_some(e)).collect()
    }

    /// Applies a `changed`: the fields of `set` (another document) set in
    /// place or appended, then `cleared` removed. Fields left alone keep
    /// their text. Returns the fields whose value changed and the cleared
    /// fields that were there (both empty: nothing changed, and the
    /// document is not rewritten). O((k + m) log k) for k fields and m
    /// changed ones.
    pub fn merge(&mut self, set: &Doc, cleared: &[String]) -> (Fields, Vec<String>) {
        let mut entries = self.entries();
        let known = entries.len();
        let index = if known > SMALL { key_index(&entries) } else { Vec::new() };
        // Where `key` is: among the fields the document had (by the index
        // when there are many), else among those this change appended.
        let find = |entries: &[(Cow<'_, str>, &str)], key: &str| -> Option<usize> {
            let old = if known > SMALL {
                let i = index.partition_point(|&p| entries[p].0.as_ref() < key);
                index.get(i).copied().filter(|&p| entries[p].0 == key)
            } else {
                entries[..known].iter().position(|(k, _)| k == key)
            };
            old.or_else(|| entries[known..].iter().position(|(k, _)| k == key).map(|i| known + i))
        };
        let mut changed = Fields::new();
        for (key, text) in set.entries() {
            let value = |t: &str| json::parse(t).unwrap_or(Value::Null);
            match find(&entries, &key) {
                Some(p) if entries[p].1 == text || value(entries[p].1) == value(text) => {}
                Some(p) => {
                    entries[p].1 = text;
                    changed.insert(key.into_owned(), value(text));
                }
                None => {
                    changed.insert(key.to_string(), value(text));
                    entries.push((key, text));
                }
            }
        }
        let mut gone = Vec::new();
        let mut removed = vec![false; entries.len()];
        for c in cleared {
            if let Some(p) = find(&entries, c).filter(|&p| !removed[p]) {
                removed[p] = true;
                gone.push(c.clone());
            }
        }
        if changed.is_empty() && gone.is_empty() {
            return (changed, gone);
        }
        let mut out = String::with_capacity(self.0.len() + set.0.len());
        out.push('{');
        let mut first = true;
        for ((k, text), _) in entries.iter().zip(&removed).filter(|(_, r)| !**r) {
            if !first {
                out.push(',');
            }
            first = false;
            json::write_str(k, &mut out);
            out.push(':');
            out.push_str(text);
        }
        out.push('}');
        *self = Doc(out.into());
        (changed, gone)
    }

    /// The fields, decoded.
    pub fn fields(&self) -> Fields {
        // The text is a checked object: reading it cannot fail.
        match Reader::new(&self.0).exact_object() {
            Ok(Value::Object(m)) => m,
            _ => Fields::new(),
        }
    }

    /// Only the fields named in `keys`, decoded (the others are skipped
    /// over, not built): enough to test a query that reads only these.
    pub fn fields_of(&self, keys: &[&str]) -> Fields {
        let mut out = Fields::new();
        let _ = Reader::new(&self.0).object(|r, key| {
            if keys.contains(&&*key) {
                out.insert(key.into_owned(), r.value()?);
            } else {
                r.skip_value()?;
            }
            Ok(())
        });
        out
    }

    /// The JSON text of the fields object.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// Whether the document has no field.
    pub fn is_empty(&self) -> bool {
        self.fields_len() == 0
    }

    fn fields_len(&self) -> usize {
        let mut n = 0;
        let _ = Reader::new(&self.0).object(|r, _| {
            n += 1;
            r.skip_value().map(drop)
        });
        n
    }
}

impl From<Fields> for Doc {
    fn from(fields: Fields) -> Doc {
        Doc::from_fields(&fields)
    }
}

impl From<&Fields> for Doc {
    fn from(fields: &Fields) -> Doc {
        Doc::from_fields(fields)
    }
}

/// Two documents are equal when their fields are (the same fields written
/// twice may differ in white space or number spelling).
impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        self.0 == other.0 || self.fields() == other.fields()
    }
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.fields(), f)
    }
}

/// A document's fields as a [`crate::Change`] carries them: the compact
/// text, decoded on first use and then kept (a change is short-lived; a
/// document nobody reads is never decoded). Reads as a [`Fields`] map
/// (`Deref`).
#[derive(Clone)]
pub struct LazyFields {
    doc: Option<Doc>,
    decoded: OnceCell<Fields>,
}

impl LazyFields {
    /// The JSON text of the fields object, while they are kept as text
    /// (not yet decoded, nor made from a map).
    pub fn text(&self) -> Option<&str> {
        self.doc.as_ref().filter(|_| self.decoded.get().is_none()).map(Doc::text)
    }

    /// The decoded map, owned.
    pub fn into_fields(self) -> Fields {
        match (self.decoded.into_inner(), self.doc) {
            (Some(f), _) => f,
            (None, Some(d)) => d.fields(),
            (None, None) => Fields::new(),
        }
    }
}

impl Deref for LazyFields {
    type Target = Fields;
    fn deref(&self) -> &Fields {
        self.decoded.get_or_init(|| self.doc.as_ref().map(Doc::fields).unwrap_or_default())
    }
}

impl From<Doc> for LazyFields {
    fn from(doc: Doc) -> Self {
        LazyFields { doc: Some(doc), decoded: OnceCell::new() }
    }
}

impl From<Fields> for LazyFields {
    fn from(fields: Fields) -> Self {
        LazyFields { doc: None, decoded: OnceCell::from(fields) }
    }
}

impl PartialEq for LazyFields {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for LazyFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Up to this many fields, finding a key by scanning beats sorting.
const SMALL: usize = 16;

/// The positions of `entries` ordered by key (stably).
fn key_index(entries: &[(Cow<'_, str>, &str)]) -> Vec<usize> {
    let mut index: Vec<usize> = (0..entries.len()).collect();
    crate::protocol::order::sort_by(&mut index, |a, b| entries[*a].0.cmp(&entries[*b].0));
    index
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn read(text: &str) -> Result<Doc, JsonError> {
        Doc::read(&mut Reader::new(text))
    }

    #[test]
    fn keeps_the_text_and_decodes_what_the_reader_reads() {
        let text = r#"{"z":1,"a":[1.5,{"b":null}],"n":12345678901234567890,"f":0.1,"s":"\ud83d\ude00\udc00"}"#;
        let doc = read(text).unwrap();
        assert_eq!(doc.text(), text, "kept as sent");
        assert_eq!(Value::Object(doc.fields()), super::super::json::parse(text).unwrap());
        let keys: Vec<String> = doc.fields().keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "n", "f", "s"], "the sender's order");
        assert_eq!(doc.fields()["s"], "😀\u{fffd}");
        assert!(!doc.is_empty());
        assert!(Doc::empty().is_empty());
    }

    #[test]
    fn bad_text_is_refused_as_the_reader_refuses_it() {
        for bad in [r#"{"a":01}"#, r#"{"a":"\x"}"#, r#"{"a":[1,]}"#, r#"{"a":tru}"#, r#"{"a":1"#, "[1]", "3", r#"{"a":1e999}"#] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(super::super::json::MAX_DEPTH + 1), "]".repeat(super::super::json::MAX_DEPTH + 1));
        assert!(read(&format!(r#"{{"a":{deep}}}"#)).is_err(), "too deep");
    }

    #[test]
    fn lazy_fields_decode_once_and_compare_by_value() {
        let doc = read(r#"{ "a" : 1 }"#).unwrap();
        let lazy = LazyFields::from(doc.clone());
        assert_eq!(lazy["a"], 1);
        let map: Fields = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_eq!(lazy, LazyFields::from(map.clone()));
        assert_eq!(doc, Doc::from_fields(&map), "white space aside");
        assert_eq!(lazy.into_fields(), map);
    }

    #[test]
    fn a_merge_keeps_untouched_text_and_the_order() {
        let mut doc = read(r#"{"z":1.0,"a":2,"m":[3],"b":4}"#).unwrap();
        let (set, gone) = doc.merge(&read(r#"{"y":5,"a":2,"b":4.5}"#).unwrap(), &["m".into(), "nope".into()]);
        assert_eq!(doc.text(), r#"{"z":1.0,"a":2,"b":4.5,"y":5}"#, "1.0 stays a float's text");
        assert_eq!(Value::Object(set), serde_json::json!({"b":4.5,"y":5}));
        assert_eq!(gone, ["m"]);
        let before = doc.clone();
        let (set, gone) = doc.merge(&read(r#"{"a":2.0e0,"b":4.5}"#).unwrap(), &["m".into()]);
        assert!(set.keys().eq(["a"]), "2.0e0 is a float, not the integer 2: {set:?}");
        assert!(gone.is_empty());
        let (set, gone) = doc.merge(&read(r#"{"a":2.0e0}"#).unwrap(), &[]);
        assert!(set.is_empty() && gone.is_empty(), "no change");
        let (set, _) = doc.merge(&read(r#"{"a": 2.0E0 , "y" : 5}"#).unwrap(), &[]);
        assert!(set.is_empty(), "the same values written otherwise: no change");
        assert_ne!(doc.text(), before.text());
        let mut dup = read(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        dup.merge(&read(r#"{"c":4}"#).unwrap(), &[]);
        assert_eq!(dup.text(), r#"{"a":3,"b":2,"c":4}"#, "a repeated key read as a map reads it");
    }

    // proptest is a native dev-dependency.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) mod properties {
        use super::*;
        use crate::protocol::json::tests::properties::json_value;
        use proptest::prelude::*;
        use serde_json::json;

        pub(crate) fn fields() -> impl Strategy<Value = Fields> {
            // A few common values too, so that a change often sets a field
            // to the value it has (maybe written otherwise: compact, pretty).
            let common = prop::sample::select(vec![json!(1), json!(1.5), json!([1, [2]]), json!({"x": {"y": 1}})]);
            let value = prop_oneof![json_value(), common];
            prop::collection::vec(("[a-c]{1,2}", value), 0..6).prop_map(|kv| kv.into_iter().collect())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]
            /// A document written compact or pretty, read as text and
            /// decoded, is exactly the map the reader builds from that text
            /// (order and numbers included); and writing a map and decoding
            /// it gives the map back.
            #[test]
            fn decodes_to_exactly_what_the_reader_builds(f in fields()) {
                for text in [serde_json::to_string(&f).unwrap(), serde_json::to_string_pretty(&f).unwrap()] {
                    let doc = read(&text).unwrap();
                    let built = match super::super::super::json::parse(&text).unwrap() { Value::Object(m) => m, _ => unreachable!() };
                    prop_assert_eq!(doc.fields(), built.clone());
                    prop_assert!(doc.fields().keys().eq(built.keys()));
                    prop_assert_eq!(doc.is_empty(), built.is_empty());
                }
                // Written as JSON.stringify writes it (1.0 as 1).
                let written = Doc::from_fields(&f);
                let js = |m: &Fields| { let mut s = String::new(); json::write_object(m.iter(), &mut s); s };
                prop_assert_eq!(js(&written.fields()), js(&f));
            }

            /// A merge into a document of many fields (past the size where
            /// keys are found by sorting), repeated keys in both texts,
            /// equals the same change made to an ordered map: values,
            /// order, the fields reported changed and those cleared.
            #[test]
            fn a_merge_into_many_fields_is_an_ordered_map_update(
                old in prop::collection::vec(("k[0-9]{1,2}", 0u8..4), 0..60),
                set in prop::collection::vec(("k[0-9]{1,2}", 0u8..4), 0..30),
                cleared in prop::collection::vec("k[0-9]{1,2}", 0..10),
            ) {
                let text = |kv: &[(String, u8)]| {
                    let parts: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                    format!("{{{}}}", parts.join(", "))
                };
                let mut doc = read(&text(&old)).unwrap();
                let mut model = Fields::new();
                for (k, v) in &old {
                    model.insert(k.clone(), json!(v));
                }
                let mut expect_changed = Fields::new();
                let mut set_map = Fields::new();
                for (k, v) in &set {
                    set_map.insert(k.clone(), json!(v));
                }
                for (k, v) in &set_map {
                    if model.get(k) != Some(v) {
                        expect_changed.insert(k.clone(), v.clone());
                    }
                    model.insert(k.clone(), v.clone());
                }
                let mut expect_gone = Vec::new();
                for c in &cleared {
                    if model.shift_remove(c).is_some() {
                        expect_gone.push(c.clone());
                    }
                }
                let (changed, gone) = doc.merge(&read(&text(&set)).unwrap(), &cleared);
                prop_assert!(changed.iter().eq(expect_changed.iter()));
                prop_assert_eq!(gone, expect_gone);
                prop_assert!(doc.fields().iter().eq(model.iter()));
            }
        }
    }
}
