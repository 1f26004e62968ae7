//! What a durable cache keeps of the documents, and how: one record per
//! server document, under a key scoped to the user it was received as,
//! with a format version. Pure: the keys, the record text, reading a
//! store's records back, and the bound on what is kept; storing is the
//! host's business, when to write the plug-in's.
//!
//! A key is `<scope>␁<collection>␁<id>` (␁ is U+0001): the scope is `u`
//! and the user id, or `-` for nobody logged in, so one user's documents
//! are one key range, read alone ([`scope`]) and cleared alone. A document
//! whose collection or id (or a user whose id) holds U+0001 is not kept.
//! The record is `{"v":1,"f":<fields>}`: the fields' text as the store
//! keeps it ([`Doc`]), so a cached document costs its text and about 30
//! bytes besides its key.

use crate::protocol::doc::Doc;
use crate::protocol::durable::RecordError;
use crate::protocol::hash::FastMap;
use crate::protocol::json::{self, Reader};

/// The cache record format written now.
pub const CACHE_VERSION: u64 = 1;

const SEP: char = '\u{1}';

/// The key prefix of the documents received as `user` (`None`: nobody
/// logged in); `None` for a user id no key can hold.
pub fn scope(user: Option<&str>) -> Option<String> {
    match user {
        Some(u) if u.contains(SEP) => None,
        Some(u) => Some(format!("u{u}{SEP}")),
        None => Some(format!("-{SEP}")),
    }
}

/// The key of document `id` of `collection` in `scope` (`None`: not kept).
pub fn key(scope: &str, collection: &str, id: &str) -> Option<String> {
    if collection.contains(SEP) || id.contains(SEP) {
        return None;
    }
    let mut k = String::with_capacity(scope.len() + collection.len() + id.len() + 1);
    k.push_str(scope);
    k.push_str(collection);
    k.push(SEP);
    k.push_str(id);
    Some(k)
}

/// The record of a document whose fields are `doc`.
pub fn record(doc: &Doc) -> String {
    let mut out = String::with_capacity(doc.text().len() + 12);
    out.push_str("{\"v\":");
    json::write_u64(CACHE_VERSION, &mut out);
    out.push_str(",\"f\":");
    out.push_str(doc.text());
    out.push('}');
    out
}

/// Reads the record stored under `key` in `scope`: (collection, id, fields).
pub fn read(scope: &str, key: &str, text: &str) -> Result<(String, String, Doc), RecordError> {
    let bad = |why: &str| RecordError::Malformed(why.to_owned());
    let (collection, id) = key.strip_prefix(scope).and_then(|rest| rest.split_once(SEP)).ok_or_else(|| bad("not a key of this scope"))?;
    let mut r = Reader::new(text);
    let mut version = None;
    let mut fields = None;
    r.object(|r, k| {
        match &*k {
            "v" => version = r.value()?.as_u64(),
            "f" => fields = Some(Doc::read(r)?),
            _ => {
                r.skip_value()?;
            }
        }
        Ok(())
    })
    .and_then(|()| r.end())
    .map_err(|e| RecordError::Malformed(e.to_string()))?;
    match version {
        None => Err(bad("no format version")),
        Some(v) if v > CACHE_VERSION => Err(RecordError::Newer(v)),
        Some(_) => Ok((collection.to_owned(), id.to_owned(), fields.ok_or_else(|| bad("no fields"))?)),
    }
}

/// What a page does with the cache records it read for one scope: the
/// documents to show, and the records to remove (unreadable, or of a
/// newer client: a cache is only a copy, so they are replaced, not kept).
#[derive(Debug, Default)]
pub struct CacheRead {
    pub docs: Vec<(String, String, Doc)>,
    /// The key and size of each document's record (for the [`Bound`]).
    pub kept: Vec<(String, usize)>,
    pub discarded: Vec<(String, RecordError)>,
    pub skipped: Vec<(String, RecordError)>,
}

impl CacheRead {
    /// Sorts out the records of `scope` (key and text each).
    pub fn new(scope: &str, records: Vec<(String, String)>) -> CacheRead {
        let mut out = CacheRead::default();
        for (key, text) in records {
            match read(scope, &key, &text) {
                Ok(doc) => {
                    out.kept.push((key.clone(), key.len() + text.len()));
                    out.docs.push(doc);
                }
                Err(e @ RecordError::Newer(_)) => out.skipped.push((key, e)),
                Err(e) => out.discarded.push((key, e)),
            }
        }
        out
    }
}

/// What one scope of the cache holds, and its bound: at most `max_docs`
/// records of at most `max_bytes` (keys and texts). A document that would
/// pass the bound is not kept (those already kept still follow their
/// changes).
#[derive(Debug)]
pub struct Bound {
    sizes: FastMap<String, usize>,
    bytes: usize,
    pub max_docs: usize,
    pub max_bytes: usize,
}

/// The default bound: 20,000 documents, 16 MiB.
pub const MAX_DOCS: usize = 20_000;
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

impl Default for Bound {
    fn default() -> Self {
        Bound { sizes: FastMap::default(), bytes: 0, max_docs: MAX_DOCS, max_bytes: MAX_BYTES }
    }
}

impl Bound {
    /// Whether record `key` of `size` bytes may be written (it is then
    /// counted).
    pub fn put(&mut self, key: &str, size: usize) -> bool {
        let old = self.sizes.get(key).copied();
        let bytes = self.bytes - old.unwrap_or(0) + size;
        let docs = self.sizes.len() + usize::from(old.is_none());
        if docs > self.max_docs || bytes > self.max_bytes {
            return false;
        }
        self.bytes = bytes;
        self.sizes.insert(key.to_owned(), size);
        true
    }

    /// Record `key` is gone; whether it was kept.
    pub fn delete(&mut self, key: &str) -> bool {
        match self.sizes.remove(key) {
            Some(size) => {
                self.bytes -= size;
                true
            }
            None => false,
        }
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        self.sizes.clear();
        self.bytes = 0;
    }

    /// How many records, and bytes, are kept.
    pub fn len(&self) -> (usize, usize) {
        (self.sizes.len(), self.bytes)
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
}

/// A record value for tests: the version and fields given.
#[cfg(test)]
fn record_of(v: u64, fields: serde_json::Value) -> String {
    format!("{{\"v\":{v},\"f\":{}}}", json::to_text(&fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_reads_back_as_written_and_keys_are_scoped_by_user() {
        let ada = scope(Some("ada")).unwrap();
        let nobody = scope(None).unwrap();
        assert_ne!(ada, nobody);
        assert!(scope(Some("a\u{1}b")).is_none());
        let k = key(&ada, "todos", "x1").unwrap();
        assert!(k.starts_with(&ada) && !k.starts_with(&nobody));
        assert!(key(&ada, "to\u{1}dos", "x").is_none());
        let doc = Doc::from_fields(json!({"text": "milk", "n": 1.5}).as_object().unwrap());
        let text = record(&doc);
        let (c, id, back) = read(&ada, &k, &text).unwrap();
        assert_eq!((c.as_str(), id.as_str(), back.text()), ("todos", "x1", doc.text()));
        // Another scope's key is not this scope's record.
        assert!(read(&nobody, &k, &text).is_err());
    }

    #[test]
    fn damaged_and_newer_records_are_sorted_out_never_a_panic() {
        let s = scope(None).unwrap();
        let k = |id: &str| key(&s, "c", id).unwrap();
        let read = CacheRead::new(
            &s,
            vec![
                (k("ok"), record_of(1, json!({"a": 1}))),
                (k("newer"), record_of(2, json!({"a": 1}))),
                (k("json"), "not json".into()),
                (k("noversion"), "{\"f\":{}}".into()),
                (k("nofields"), "{\"v\":1}".into()),
                (k("array"), "{\"v\":1,\"f\":[1]}".into()),
                (k("trailing"), "{\"v\":1,\"f\":{}} x".into()),
                ("no separator".into(), record_of(1, json!({}))),
            ],
        );
        assert_eq!(read.docs.len(), 1);
        assert_eq!(read.docs[0].1, "ok");
        assert_eq!(read.skipped.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), [k("newer")]);
        assert_eq!(read.discarded.len(), 6);
        assert_eq!(read.kept.len(), 1);
    }

    #[test]
    fn the_bound_counts_documents_and_bytes() {
        let mut b = Bound { max_docs: 2, max_bytes: 100, ..Bound::default() };
        assert!(b.put("a", 40));
        assert!(b.put("b", 40));
        assert!(!b.put("c", 1), "a third document");
        assert!(!b.put("a", 61), "past the bytes");
        assert!(b.put("a", 60), "a document kept may grow within the bound");
        assert_eq!(b.len(), (2, 100));
        assert!(b.delete("b"));
        assert!(!b.delete("b"));
        assert!(b.put("c", 40));
        b.clear();
        assert!(b.is_empty());
    }
}
