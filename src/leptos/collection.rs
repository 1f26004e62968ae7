//! `use_collection` and `use_doc`: documents as per-document signals, for
//! `<For>` lists that re-render one row per changed document.

use super::{keep_until_cleanup, use_connection};
use crate::{Change, Collection};
use leptos::prelude::*;
use leptos::reactive::effect::ImmediateEffect;
use send_wrapper::SendWrapper;
use serde_json::Value;
use std::cell::RefCell;
// An ordered map on purpose: the list is read in `_id` order. The Leptos
// surface is not in the npm package, which carries no B-tree code.
#[allow(clippy::disallowed_types)]
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, RwLock};

/// One document of a [`UseCollection`]: its `_id` (fixed) and its value (a
/// signal of its own, set when this document changes and only then).
#[derive(Clone)]
pub struct LiveDoc {
    id: Arc<str>,
    value: ArcReadSignal<Value>,
}

impl LiveDoc {
    /// The document's `_id`: the key for `<For>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The document (fields plus `_id`), tracked.
    pub fn get(&self) -> Value {
        self.value.get()
    }

    /// Runs `f` on the document without cloning it, tracked.
    pub fn with<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        self.value.with(f)
    }

    /// One field (`Value::Null` when absent), tracked.
    pub fn field(&self, name: &str) -> Value {
        self.value.with(|d| d.get(name).cloned().unwrap_or(Value::Null))
    }

    /// One field, untracked (for what never changes, e.g. a sort key set
    /// at creation).
    pub fn field_untracked(&self, name: &str) -> Value {
        self.value.with_untracked(|d| d.get(name).cloned().unwrap_or(Value::Null))
    }

    /// The document as a signal.
    pub fn signal(&self) -> Signal<Value> {
        Signal::from(self.value.clone())
    }
}

impl PartialEq for LiveDoc {
    fn eq(&self, other: &Self) -> bool {
        // One id, one signal: the same `Arc` is the same row.
        Arc::ptr_eq(&self.id, &other.id)
    }
}

impl std::fmt::Debug for LiveDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDoc").field("id", &self.id).field("value", &self.value.get_untracked()).finish()
    }
}

/// What [`use_collection`] returns.
#[derive(Clone, Copy, Debug)]
pub struct UseCollection {
    /// The documents, by `_id`, each with its own signal. The list itself
    /// changes only when a document is added or removed; a changed
    /// document sets its own signal, so in
    /// `<For each=move || docs.get() key=|d| d.id().to_owned() ...>` one
    /// changed document re-renders what reads it, in its own row.
    pub docs: Signal<Vec<LiveDoc>>,
    /// How many documents.
    pub len: Signal<usize>,
}

/// The rows: the live documents, and those removed since the list was
/// last read (a document removed and added again before that gets its old
/// signal back, so a keyed `<For>` that never saw the removal shows the
/// new value).
#[derive(Default)]
#[allow(clippy::disallowed_types, reason = "read in `_id` order (see the import)")]
struct Rows {
    live: BTreeMap<Arc<str>, (ArcRwSignal<Value>, LiveDoc)>,
    removed: BTreeMap<Arc<str>, (ArcRwSignal<Value>, LiveDoc)>,
}

impl Rows {
    /// Applies a change; returns whether the membership changed, and the
    /// signal to set (set by the caller once the rows are unlocked, so what
    /// it wakes may read them).
    fn apply(&mut self, id: &str, doc: Option<Value>) -> (bool, Option<(ArcRwSignal<Value>, Value)>) {
        match (self.live.get(id), doc) {
            (Some((writer, _)), Some(doc)) => (false, Some((writer.clone(), doc))),
            (None, Some(doc)) => match self.removed.remove(id) {
                Some(row) => {
                    let writer = row.0.clone();
                    self.live.insert(row.1.id.clone(), row);
                    (true, Some((writer, doc)))
                }
                None => {
                    let row = new_row(id.into(), doc);
                    self.live.insert(row.1.id.clone(), row);
                    (true, None)
                }
            },
            (Some(_), None) => {
                if let Some((id, row)) = self.live.remove_entry(id) {
                    self.removed.insert(id, row);
                }
                (true, None)
            }
            (None, None) => (false, None),
        }
    }

    fn list(&mut self) -> Vec<LiveDoc> {
        #[cfg(test)]
        LIST_BUILDS.with(|n| n.set(n.get() + 1));
        self.removed.clear();
        self.live.values().map(|(_, d)| d.clone()).collect()
    }
}

#[cfg(test)]
thread_local! {
    /// How many times a list was built (the tests check it is not rebuilt
    /// for a change that keeps the membership).
    pub(super) static LIST_BUILDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The live documents of collection `name` of the provided connection
/// (what the connection's subscriptions put there), until the current
/// owner is cleaned up.
///
/// In a server render (feature `ssr`): the documents of the request's
/// subscriptions in this collection, read tracked (under `<Suspense>` the
/// server waits for them).
pub fn use_collection(name: &str) -> UseCollection {
    on_server!(request => {
        let name = name.to_owned();
        let docs = Signal::derive(move || {
            let docs = request.documents(&name);
            docs.into_iter().map(|(id, fields)| new_row(id.as_str().into(), crate::data::document(&id, &fields)).1).collect::<Vec<_>>()
        });
        UseCollection { docs, len: Signal::derive(move || docs.with(Vec::len)) }
    });
    collection_docs(&use_connection().collection(name))
}

/// [`use_collection`] for a given collection.
pub fn collection_docs(collection: &Collection) -> UseCollection {
    let rows: Arc<RwLock<Rows>> = Arc::default();
    {
        let mut rows = rows.write().unwrap_or_else(|e| e.into_inner());
        for doc in collection.find() {
            let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let _ = rows.apply(&id, Some(doc));
        }
    }
    // Adds and removals bump `membership`; the list is rebuilt when next
    // read (once per render, not once per incoming document). A changed
    // document sets its own signal only.
    let membership = ArcTrigger::new();
    let listener = {
        let (rows, membership, coll) = (rows.clone(), membership.clone(), collection.clone());
        move |change: &Change| {
            let (id, doc) = match change {
                Change::Added { id, .. } | Change::Changed { id, .. } => (id, coll.find_one(id)),
                Change::Removed { id, .. } => (id, None),
            };
            let (membership_changed, set) = rows.write().unwrap_or_else(|e| e.into_inner()).apply(id, doc);
            if let Some((writer, doc)) = set {
                writer.set(doc);
            }
            if membership_changed {
                membership.notify();
            }
        }
    };
    keep_until_cleanup(collection.on_change(listener));
    let docs = ArcMemo::new(move |_| {
        membership.track();
        rows.write().unwrap_or_else(|e| e.into_inner()).list()
    });
    let docs = Signal::from(docs);
    UseCollection { docs, len: Signal::derive(move || docs.with(Vec::len)) }
}

fn new_row(id: Arc<str>, doc: Value) -> (ArcRwSignal<Value>, LiveDoc) {
    let writer = ArcRwSignal::new(doc);
    let value = writer.read_only();
    (writer, LiveDoc { id, value })
}

/// One document of collection `collection` of the provided connection
/// (`None` while absent), following `id` when it is reactive. Only changes
/// of that document notify.
pub fn use_doc(collection: &str, id: impl Into<Signal<String>>) -> Signal<Option<Value>> {
    let id: Signal<String> = id.into();
    on_server!(request => {
        let collection = collection.to_owned();
        Signal::derive(move || request.document(&collection, &id.get()))
    });
    let coll = use_connection().collection(collection);
    let value = ArcRwSignal::new(None);
    let wanted: Rc<RefCell<String>> = Rc::default();
    let listener = {
        let (value, wanted, coll) = (value.clone(), wanted.clone(), coll.clone());
        move |change: &Change| {
            let changed = match change {
                Change::Added { id, .. } | Change::Changed { id, .. } | Change::Removed { id, .. } => id,
            };
            if *changed == *wanted.borrow() {
                value.set(coll.find_one(changed));
            }
        }
    };
    let handle = coll.on_change(listener);
    let follow = SendWrapper::new((coll, wanted, value.clone()));
    let effect = ImmediateEffect::new_isomorphic(move || {
        let id = id.get();
        let (coll, wanted, value) = &*follow;
        let doc = coll.find_one(&id);
        *wanted.borrow_mut() = id;
        untrack(|| {
            if value.with_untracked(|v| *v != doc) {
                value.set(doc);
            }
        });
    });
    keep_until_cleanup((handle, effect));
    Signal::from(value.read_only())
}
