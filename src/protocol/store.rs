//! The local copy of the server's documents: one map per collection, fed by
//! `added`, `changed` and `removed`, and the reconciliation after a
//! reconnect that never empties a list to fill it again.
//!
//! Values are kept as EJSON wire JSON (decoded at the edges): a server
//! document as the JSON text of its fields ([`Doc`], decoded on read: the
//! store costs little more than the text the server sent). Finding a
//! document is O(1) (hash maps), so N `added` messages cost O(N) overall in
//! the size of their text, and a reconciliation is one pass over both
//! snapshots; a `changed` rewrites its document's text (O(k log k) in its
//! k fields).
//!
//! Client stubs write to a **local layer** over the server's documents: a
//! document a stub wrote shows the stub's version until every method that
//! wrote it has completed; then the server's version shows again (only the
//! difference is reported). Server messages for such a document update the
//! server layer silently meanwhile.

use crate::protocol::hash::FastMap;
use std::borrow::Cow;

pub use super::doc::{Doc, Fields, LazyFields};

/// One change to one document, as observers see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new document with all its fields (kept as text, decoded on first
    /// read: an `added` nobody looks at costs no decoding).
    Added { collection: String, id: String, fields: LazyFields },
    /// Fields set (`fields`) or removed (`cleared`).
    Changed { collection: String, id: String, fields: Fields, cleared: Vec<String> },
    /// The document is gone.
    Removed { collection: String, id: String },
}

impl Change {
    /// The collection the change is in.
    pub fn collection(&self) -> &str {
        match self {
            Change::Added { collection, .. } | Change::Changed { collection, .. } | Change::Removed { collection, .. } => collection,
        }
    }

    /// The id of the document it changes.
    pub fn id(&self) -> &str {
        match self {
            Change::Added { id, .. } | Change::Changed { id, .. } | Change::Removed { id, .. } => id,
        }
    }
}

/// A document as a client stub left it, and the calls that wrote it.
#[derive(Debug, Clone, PartialEq)]
struct Local {
    doc: Option<Fields>,
    /// The calls that wrote it (a handful at most).
    writers: Vec<u64>,
}

/// A document as [`Store::visible`] lists it: a server document (compact
/// text) or a stub's version of one (a map).
#[derive(Debug, Clone, Copy)]
pub enum DocRef<'a> {
    Server(&'a Doc),
    Local(&'a Fields),
}

impl<'a> DocRef<'a> {
    /// The fields (a server document is decoded).
    pub fn fields(self) -> Cow<'a, Fields> {
        match self {
            DocRef::Server(d) => Cow::Owned(d.fields()),
            DocRef::Local(f) => Cow::Borrowed(f),
        }
    }

    /// The fields if the document matches `query` (a server document is
    /// tested on the fields the query reads, and decoded whole only if it
    /// matches).
    pub fn fields_if(self, id: &str, query: &crate::protocol::query::Query) -> Option<Cow<'a, Fields>> {
        if let DocRef::Server(d) = self {
            if !query.matches(id, &d.fields_of(&query.reads())) {
                return None;
            }
        }
        Some(self.fields()).filter(|f| query.matches(id, f))
    }
}

/// All collections.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Store {
    collections: FastMap<String, FastMap<String, Doc>>,
    local: FastMap<(String, String), Local>,
}

/// The change that takes `before` to `after`, if any.
fn diff(collection: &str, id: &str, before: Option<&Fields>, after: Option<&Fields>) -> Option<Change> {
    let (collection, id) = (collection.to_owned(), id.to_owned());
    match (before, after) {
        (None, None) => None,
        (None, Some(f)) => Some(Change::Added { collection, id, fields: f.clone().into() }),
        (Some(_), None) => Some(Change::Removed { collection, id }),
        (Some(old), Some(new)) => {
            let (fields, cleared) = difference(old, new);
            (!fields.is_empty() || !cleared.is_empty()).then_some(Change::Changed { collection, id, fields, cleared })
        }
    }
}

/// What takes `old` to `new`: the fields set (new or different), and the
/// fields cleared.
fn difference(old: &Fields, new: &Fields) -> (Fields, Vec<String>) {
    let mut set = Fields::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            set.insert(k.clone(), v.clone());
        }
    }
    let cleared: Vec<String> = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    (set, cleared)
}

impl Store {
    /// The server's documents of `collection` (without stub writes).
    pub fn collection(&self, collection: &str) -> Option<&FastMap<String, Doc>> {
        self.collections.get(collection)
    }

    /// Every server document (stub writes left out) as (collection, id,
    /// fields), in collection then id order: what a server-rendered page
    /// carries to the browser ([`Machine::seed`](crate::protocol::machine::Machine::seed)).
    pub fn snapshot(&self) -> Vec<(String, String, Fields)> {
        let mut out: Vec<(String, String, Fields)> = Vec::with_capacity(self.len());
        for (collection, docs) in &self.collections {
            out.extend(docs.iter().map(|(id, d)| (collection.clone(), id.clone(), d.fields())));
        }
        crate::protocol::order::sort_by(&mut out, |a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Every server document (stub writes left out), not decoded, in no
    /// particular order: (collection, id, fields).
    pub fn server_docs(&self) -> impl Iterator<Item = (&str, &str, &Doc)> + '_ {
        self.collections.iter().flat_map(|(c, docs)| docs.iter().map(move |(id, d)| (c.as_str(), id.as_str(), d)))
    }

    /// One server document (stub writes left out), not decoded.
    pub fn server_doc_ref(&self, collection: &str, id: &str) -> Option<&Doc> {
        self.server_doc(collection, id)
    }

    /// The documents of `collection` as the app sees them (stub writes
    /// included), in no particular order.
    /// Nothing is decoded: read each with [`DocRef::fields`].
    pub fn visible(&self, collection: &str) -> Vec<(&str, DocRef<'_>)> {
        let mut out: Vec<(&str, DocRef<'_>)> = match self.collections.get(collection) {
            Some(docs) => {
                docs.iter().filter(|(id, _)| !self.shadowed(collection, id)).map(|(id, d)| (id.as_str(), DocRef::Server(d))).collect()
            }
            None => Vec::new(),
        };
        for ((c, id), l) in &self.local {
            if c == collection {
                if let Some(doc) = &l.doc {
                    out.push((id.as_str(), DocRef::Local(doc)));
                }
            }
        }
        out
    }

    /// How many documents of `collection` the app sees (stub writes
    /// included), without copying any.
    pub fn visible_len(&self, collection: &str) -> usize {
        let server = self.collections.get(collection);
        let mut n = server.map_or(0, FastMap::len);
        for ((c, id), l) in &self.local {
            if c == collection {
                let on_server = server.is_some_and(|d| d.contains_key(id));
                match (on_server, l.doc.is_some()) {
                    (true, false) => n -= 1,
                    (false, true) => n += 1,
                    _ => {}
                }
            }
        }
        n
    }

    /// One document as the app sees it (a server document is decoded).
    pub fn get(&self, collection: &str, id: &str) -> Option<Cow<'_, Fields>> {
        self.get_ref(collection, id).map(DocRef::fields)
    }

    /// One document as the app sees it, not decoded.
    pub fn get_ref(&self, collection: &str, id: &str) -> Option<DocRef<'_>> {
        if !self.local.is_empty() {
            if let Some(l) = self.local.get(&(collection.to_owned(), id.to_owned())) {
                return l.doc.as_ref().map(DocRef::Local);
            }
        }
        self.server_doc(collection, id).map(DocRef::Server)
    }

    /// Whether the server sent document `id` of `collection` (stub writes
    /// aside).
    pub fn has_server_doc(&self, collection: &str, id: &str) -> bool {
        self.server_doc(collection, id).is_some()
    }

    fn server_doc(&self, collection: &str, id: &str) -> Option<&Doc> {
        self.collections.get(collection)?.get(id)
    }

    /// Whether a client stub's version of document `id` shows over the
    /// server's (the server's changes to it show once the stub's calls end).
    pub fn shadowed(&self, collection: &str, id: &str) -> bool {
        !self.local.is_empty() && self.local.contains_key(&(collection.to_owned(), id.to_owned()))
    }

    /// Makes `collection`'s map if missing (a name is copied once, not on
    /// every message).
    fn ensure(&mut self, collection: &str) {
        if !self.collections.contains_key(collection) {
            self.collections.insert(collection.to_owned(), FastMap::default());
        }
    }

    /// A client stub of call `method` sets the document (`None`: removes it).
    pub fn stub_write(&mut self, method: u64, collection: &str, id: &str, doc: Option<Fields>) -> Option<Change> {
        let before = self.get(collection, id).map(Cow::into_owned);
        let entry = self.local.entry((collection.to_owned(), id.to_owned())).or_insert_with(|| Local { doc: None, writers: Vec::new() });
        entry.doc = doc;
        if !entry.writers.contains(&method) {
            entry.writers.push(method);
        }
        let after = entry.doc.clone();
        diff(collection, id, before.as_ref(), after.as_ref())
    }

    /// Call `method` completed: documents only it had written show the
    /// server's version again. Returns the visible changes.
    pub fn method_done(&mut self, method: u64) -> Vec<Change> {
        if self.local.is_empty() {
            return Vec::new();
        }
        let mut released = Vec::new();
        self.local.retain(|key, l| {
            let before = l.writers.len();
            l.writers.retain(|w| *w != method);
            if l.writers.len() < before && l.writers.is_empty() {
                released.push((key.clone(), l.doc.take()));
                false
            } else {
                true
            }
        });
        released
            .into_iter()
            .filter_map(|((c, id), local)| diff(&c, &id, local.as_ref(), self.server_doc(&c, &id).map(Doc::fields).as_ref()))
            .collect()
    }

    /// Number of server documents in all collections.
    pub fn len(&self) -> usize {
        self.collections.values().map(FastMap::len).sum()
    }

    /// True when no collection holds a document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `added`: returns the change observers should see. An `added`
    /// for a document already present is applied as a change (servers may
    /// re-send after a reconnect).
    pub fn added(&mut self, collection: String, id: String, fields: impl Into<Doc>) -> Option<Change> {
        let fields = fields.into();
        let shadowed = self.shadowed(&collection, &id);
        let change = self.added_server(collection, id, fields);
        change.filter(|_| !shadowed)
    }

    fn added_server(&mut self, collection: String, id: String, fields: Doc) -> Option<Change> {
        self.ensure(&collection);
        let docs = self.collections.get_mut(&collection)?;
        match docs.get_mut(&id) {
            None => {
                docs.insert(id.clone(), fields.clone());
                Some(Change::Added { collection, id, fields: fields.into() })
            }
            Some(doc) => {
                let (set, cleared) = difference(&doc.fields(), &fields.fields());
                *doc = fields;
                (!set.is_empty() || !cleared.is_empty()).then_some(Change::Changed { collection, id, fields: set, cleared })
            }
        }
    }

    /// Applies `changed`. A change for an unknown document adds it (and is
    /// reported as an addition), so nothing the server says is lost.
    pub fn changed(&mut self, collection: String, id: String, fields: impl Into<Doc>, cleared: Vec<String>) -> Option<Change> {
        let fields = fields.into();
        let shadowed = self.shadowed(&collection, &id);
        let change = self.changed_server(collection, id, fields, cleared);
        change.filter(|_| !shadowed)
    }

    fn changed_server(&mut self, collection: String, id: String, fields: Doc, cleared: Vec<String>) -> Option<Change> {
        self.ensure(&collection);
        let docs = self.collections.get_mut(&collection)?;
        let Some(stored) = docs.get_mut(&id) else {
            docs.insert(id.clone(), fields.clone());
            return Some(Change::Added { collection, id, fields: fields.into() });
        };
        let (set, cleared) = stored.merge(&fields, &cleared);
        (!set.is_empty() || !cleared.is_empty()).then_some(Change::Changed { collection, id, fields: set, cleared })
    }

    /// Applies `removed`.
    pub fn removed(&mut self, collection: String, id: String) -> Option<Change> {
        let shadowed = self.shadowed(&collection, &id);
        let docs = self.collections.get_mut(&collection)?;
        docs.remove(&id)?;
        if docs.is_empty() {
            self.collections.remove(&collection);
        }
        (!shadowed).then_some(Change::Removed { collection, id })
    }

    /// Replaces this store with `next` and returns the changes that take
    /// one to the other: documents in both are compared field by field, so
    /// an unchanged document produces nothing (no flicker).
    pub fn reconcile(&mut self, mut next: Store) -> Vec<Change> {
        // Stub writes stay; only the server layer is replaced.
        next.local = std::mem::take(&mut self.local);
        let mut out = Vec::new();
        for (collection, docs) in &self.collections {
            let new_docs = next.collections.get_mut(collection);
            for (id, old) in docs {
                match new_docs.as_ref().and_then(|n| n.get(id)) {
                    None => out.push(Change::Removed { collection: collection.clone(), id: id.clone() }),
                    // The same text is the same document; only others are decoded.
                    Some(new) if new.text() == old.text() => {}
                    Some(new) => {
                        let (set, cleared) = difference(&old.fields(), &new.fields());
                        if !set.is_empty() || !cleared.is_empty() {
                            out.push(Change::Changed { collection: collection.clone(), id: id.clone(), fields: set, cleared });
                        }
                    }
                }
            }
        }
        for (collection, docs) in &next.collections {
            let old_docs = self.collections.get(collection);
            for (id, fields) in docs {
                if old_docs.is_none_or(|o| !o.contains_key(id)) {
                    out.push(Change::Added { collection: collection.clone(), id: id.clone(), fields: fields.clone().into() });
                }
            }
        }
        *self = next;
        out.retain(|c| {
            let id = match c {
                Change::Added { id, .. } | Change::Changed { id, .. } | Change::Removed { id, .. } => id,
            };
            !self.shadowed(c.collection(), id)
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn f(v: Value) -> Fields {
        match v {
            Value::Object(m) => m,
            _ => Fields::new(),
        }
    }

    #[test]
    fn added_changed_removed() {
        let mut s = Store::default();
        assert_eq!(
            s.added("c".into(), "1".into(), f(json!({"a":1,"b":2}))),
            Some(Change::Added { collection: "c".into(), id: "1".into(), fields: f(json!({"a":1,"b":2})).into() })
        );
        assert_eq!(
            s.changed("c".into(), "1".into(), f(json!({"a":5,"b":2})), vec!["b".into(), "zz".into()]),
            Some(Change::Changed { collection: "c".into(), id: "1".into(), fields: f(json!({"a":5})), cleared: vec!["b".into()] })
        );
        assert_eq!(s.get("c", "1").as_deref(), Some(&f(json!({"a":5}))));
        assert_eq!(s.changed("c".into(), "1".into(), f(json!({"a":5})), vec![]), None, "no-op change is silent");
        assert_eq!(s.removed("c".into(), "1".into()), Some(Change::Removed { collection: "c".into(), id: "1".into() }));
        assert_eq!(s.removed("c".into(), "1".into()), None);
        assert!(s.is_empty());
    }

    #[test]
    fn stub_writes_show_until_the_method_completes_then_the_server_version() {
        let mut s = Store::default();
        s.added("c".into(), "a".into(), f(json!({"v":1})));
        // A stub edits a and inserts b.
        assert!(matches!(s.stub_write(7, "c", "a", Some(f(json!({"v":2})))), Some(Change::Changed { .. })));
        assert!(matches!(s.stub_write(7, "c", "b", Some(f(json!({"v":9})))), Some(Change::Added { .. })));
        assert_eq!(s.get("c", "a").unwrap()["v"], 2);
        // The server's own messages for those documents are silent meanwhile.
        assert_eq!(s.changed("c".into(), "a".into(), f(json!({"v":3})), vec![]), None);
        assert_eq!(s.added("c".into(), "b".into(), f(json!({"v":10}))), None);
        assert_eq!(s.visible("c").len(), 2);
        assert_eq!(s.visible_len("c"), 2);
        // Another call unrelated to them finishing changes nothing.
        assert!(s.method_done(8).is_empty());
        // The method completes: the server's version shows, as a difference.
        let mut changes = s.method_done(7);
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(changes.len(), 2);
        assert_eq!(s.get("c", "a").unwrap()["v"], 3);
        assert_eq!(s.get("c", "b").unwrap()["v"], 10);
        // A stub insert the server never confirmed goes away.
        s.stub_write(9, "c", "ghost", Some(f(json!({}))));
        assert_eq!(s.method_done(9), vec![Change::Removed { collection: "c".into(), id: "ghost".into() }]);
    }

    #[test]
    fn fields_keep_the_order_the_server_gave_them() {
        let mut s = Store::default();
        let fields: Fields = serde_json::from_str(r#"{"z":1,"a":2,"m":3,"b":4}"#).unwrap();
        s.added("c".into(), "1".into(), fields);
        s.changed("c".into(), "1".into(), f(json!({"y": 5})), vec!["a".into()]);
        s.changed("c".into(), "1".into(), f(json!({"z": 9})), vec![]);
        let keys: Vec<String> = s.get("c", "1").unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "m", "b", "y"], "a cleared field leaves the others in place; a set one stays where it was");
    }

    #[test]
    fn changed_for_an_unknown_document_adds_it() {
        let mut s = Store::default();
        assert!(matches!(s.changed("c".into(), "x".into(), f(json!({"a":1})), vec![]), Some(Change::Added { .. })));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn added_twice_is_a_change() {
        let mut s = Store::default();
        s.added("c".into(), "1".into(), f(json!({"a":1,"b":1})));
        assert_eq!(
            s.added("c".into(), "1".into(), f(json!({"a":2}))),
            Some(Change::Changed { collection: "c".into(), id: "1".into(), fields: f(json!({"a":2})), cleared: vec!["b".into()] })
        );
    }

    #[test]
    fn reconcile_reports_only_real_differences() {
        let mut s = Store::default();
        s.added("c".into(), "same".into(), f(json!({"a":1})));
        s.added("c".into(), "gone".into(), f(json!({"a":1})));
        s.added("c".into(), "edit".into(), f(json!({"a":1,"b":1})));
        let mut next = Store::default();
        next.added("c".into(), "same".into(), f(json!({"a":1})));
        next.added("c".into(), "edit".into(), f(json!({"a":2})));
        next.added("d".into(), "new".into(), f(json!({"z":0})));
        let mut changes = s.reconcile(next.clone());
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(changes.len(), 3);
        assert!(changes.contains(&Change::Removed { collection: "c".into(), id: "gone".into() }));
        assert!(changes.contains(&Change::Changed {
            collection: "c".into(),
            id: "edit".into(),
            fields: f(json!({"a":2})),
            cleared: vec!["b".into()]
        }));
        assert!(changes.contains(&Change::Added { collection: "d".into(), id: "new".into(), fields: f(json!({"z":0})).into() }));
        assert_eq!(s, next);
    }
}

// proptest is a native dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use crate::protocol::doc::tests::properties::fields;
    use crate::protocol::json;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Added(u8, Fields),
        Changed(u8, Fields, Vec<String>),
        Removed(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let cleared = prop::collection::vec("[a-c]{1,2}", 0..3);
        prop_oneof![
            (0..4u8, fields()).prop_map(|(i, f)| Op::Added(i, f)),
            (0..4u8, fields(), cleared).prop_map(|(i, f, c)| Op::Changed(i, f, c)),
            (0..4u8).prop_map(Op::Removed),
        ]
    }

    /// The fields as the frame reader reads them from the text a server
    /// sends (compact or pretty): what the store held as a map before.
    fn wire(f: &Fields, pretty: bool) -> (String, Fields) {
        let text = if pretty { serde_json::to_string_pretty(f) } else { serde_json::to_string(f) }.unwrap();
        let Ok(serde_json::Value::Object(m)) = json::parse(&text) else { unreachable!() };
        (text, m)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// For random documents and sequences of added/changed/removed,
        /// the compact store holds exactly what a store of maps held
        /// (values, field order) and reports the same changes.
        #[test]
        fn the_compact_store_reads_as_the_map_store(ops in prop::collection::vec((op(), any::<bool>()), 1..24)) {
            let mut store = Store::default();
            let mut model: BTreeMap<String, Fields> = BTreeMap::new();
            for (op, pretty) in ops {
                let (got, want) = match op {
                    Op::Added(i, f) => {
                        let (id, (text, f)) = (i.to_string(), wire(&f, pretty));
                        let doc = Doc::read(&mut json::Reader::new(&text)).unwrap();
                        let got = store.added("c".into(), id.clone(), doc);
                        let want = match model.insert(id.clone(), f.clone()) {
                            None => Some(Change::Added { collection: "c".into(), id, fields: f.into() }),
                            Some(old) => {
                                let (set, cleared) = difference(&old, &f);
                                (!set.is_empty() || !cleared.is_empty()).then_some(Change::Changed { collection: "c".into(), id, fields: set, cleared })
                            }
                        };
                        (got, want)
                    }
                    Op::Changed(i, f, cleared) => {
                        let (id, (text, f)) = (i.to_string(), wire(&f, pretty));
                        let doc = Doc::read(&mut json::Reader::new(&text)).unwrap();
                        let got = store.changed("c".into(), id.clone(), doc, cleared.clone());
                        let want = match model.get_mut(&id) {
                            None => {
                                model.insert(id.clone(), f.clone());
                                Some(Change::Added { collection: "c".into(), id, fields: f.into() })
                            }
                            Some(m) => {
                                let mut set = Fields::new();
                                for (k, v) in f {
                                    if m.get(&k) != Some(&v) {
                                        m.insert(k.clone(), v.clone());
                                        set.insert(k, v);
                                    }
                                }
                                let cleared: Vec<String> = cleared.into_iter().filter(|k| m.shift_remove(k).is_some()).collect();
                                (!set.is_empty() || !cleared.is_empty()).then_some(Change::Changed { collection: "c".into(), id, fields: set, cleared })
                            }
                        };
                        (got, want)
                    }
                    Op::Removed(i) => {
                        let id = i.to_string();
                        let want = model.remove(&id).map(|_| Change::Removed { collection: "c".into(), id: id.clone() });
                        (store.removed("c".into(), id), want)
                    }
                };
                prop_assert_eq!(&got, &want);
                if let (Some(Change::Changed { fields: a, .. }), Some(Change::Changed { fields: b, .. })) = (&got, &want) {
                    prop_assert!(a.keys().eq(b.keys()), "changed fields in order");
                }
                prop_assert_eq!(store.len(), model.len());
                for (id, f) in &model {
                    let held = store.get("c", id).map(Cow::into_owned);
                    prop_assert_eq!(held.as_ref(), Some(f));
                    prop_assert!(held.is_some_and(|h| h.keys().eq(f.keys())), "field order of {}", id);
                }
            }
        }
    }
}
