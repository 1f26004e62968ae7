//! Queries over a collection's local documents (minimongo's `find`):
//! [`Collection::query`] → [`Query`] with one-shot reads ([`Query::fetch`],
//! [`Query::count`], [`Query::first`]) and live results
//! ([`Query::signal_vec`], [`Query::signal_count`], [`Query::observe`])
//! that follow every change in O(log n), never re-running the query.
//!
//! ```no_run
//! # fn f(conn: ddp_live::Connection) -> Result<(), ddp_live::QueryError> {
//! use futures_signals::signal_vec::SignalVecExt;
//! use serde_json::json;
//! let todos = conn.collection("todos");
//! let open = todos.query(json!({"done": false}), json!({"sort": {"createdAt": -1}, "limit": 20}))?;
//! let _now = open.fetch(); // the documents (fields plus _id), in order
//! // Live: a futures-signals SignalVec whose VecDiffs map onto keyed DOM updates.
//! let watch = open.signal_vec().for_each(|diff| {
//!     println!("{diff:?}");
//!     async {}
//! });
//! wasm_bindgen_futures::spawn_local(watch);
//! # Ok(()) }
//! ```

use crate::data::{document, Collection, WeakCollection};
use crate::protocol::query::live::{Diff, LiveResults};
use crate::protocol::query::{self as engine, Fields, QueryError, RegexEngine};
use crate::protocol::store::Change;
use crate::reactive::ListenerHandle;
use futures_signals::signal::{Mutable, Signal};
use futures_signals::signal_vec::{MutableVec, SignalVec, VecDiff};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// JavaScript's `RegExp` (what minimongo uses), with its `SyntaxError`
/// caught.
#[cfg(target_arch = "wasm32")]
mod js_regex {
    use crate::protocol::query::{Regex, RegexEngine};

    struct Compiled(js_sys::RegExp);

    impl Regex for Compiled {
        fn is_match(&self, text: &str) -> bool {
            self.0.test(text)
        }
    }

    pub(crate) struct JsRegex;

    impl RegexEngine for JsRegex {
        fn compile(&self, pattern: &str, flags: &str) -> Result<Box<dyn Regex>, String> {
            crate::browser::regexp(pattern, flags).map(|r| Box::new(Compiled(r)) as Box<dyn Regex>)
        }
    }
}

/// The `regex` crate, natively: JavaScript's flags `i`, `m`, `s` map onto
/// its inline flags; a pattern it cannot compile (a lookaround, a
/// backreference) is a `bad-regex` error.
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
pub(crate) mod native_regex {
    use crate::protocol::query::{Regex, RegexEngine};

    pub(crate) struct NativeRegex;

    struct Compiled(regex::Regex);

    impl Regex for Compiled {
        fn is_match(&self, text: &str) -> bool {
            self.0.is_match(text)
        }
    }

    impl RegexEngine for NativeRegex {
        fn compile(&self, pattern: &str, flags: &str) -> Result<Box<dyn Regex>, String> {
            let inline: String = flags.chars().filter(|c| matches!(c, 'i' | 'm' | 's')).collect();
            let full = if inline.is_empty() { pattern.to_owned() } else { format!("(?{inline}){pattern}") };
            regex::Regex::new(&full).map(|r| Box::new(Compiled(r)) as Box<dyn Regex>).map_err(|e| e.to_string())
        }
    }
}

/// The regular expression engine of this build: JavaScript's `RegExp` in
/// the browser; the `regex` crate natively with the `native` feature; else
/// none (a `$regex` is then a `bad-regex` error).
pub(crate) fn regex_engine() -> &'static dyn RegexEngine {
    #[cfg(target_arch = "wasm32")]
    return &js_regex::JsRegex;
    #[cfg(all(not(target_arch = "wasm32"), feature = "native"))]
    return &native_regex::NativeRegex;
    #[cfg(all(not(target_arch = "wasm32"), not(feature = "native")))]
    return &engine::NoRegex;
}

/// A query over one collection. Cheap to clone; reads the collection's
/// documents when asked (one-shot) or follows them (live).
#[derive(Clone)]
pub struct Query {
    coll: Collection,
    query: Rc<engine::Query>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").field("collection", &self.coll.name()).field("query", &self.query).finish()
    }
}

impl Collection {
    /// A query with a Mongo `selector` (`json!({})`: every document; a
    /// string: that `_id`; `null`: none, as minimongo) and `options`
    /// (`json!({"sort": {...}, "skip": n, "limit": n, "fields": {...}})`,
    /// or `Value::Null`). An unsupported operator or a malformed selector
    /// or option is an error now, never a silent mismatch later.
    pub fn query(&self, selector: Value, options: Value) -> Result<Query, QueryError> {
        self.query_with(Some(&selector), Some(&options))
    }

    /// [`Collection::query`] with an optional selector (`None`: all).
    pub(crate) fn query_with(&self, selector: Option<&Value>, options: Option<&Value>) -> Result<Query, QueryError> {
        let query = engine::Query::compile(selector, options, regex_engine())?;
        Ok(Query { coll: self.clone(), query: Rc::new(query) })
    }
}

/// A result as apps see it: `_id` (unless `fields` drops it) and the
/// projected fields.
pub(crate) fn result_doc(q: &engine::Query, id: &str, fields: &Fields) -> Value {
    let projected = q.project(fields);
    if q.keeps_id() {
        document(id, &projected)
    } else {
        Value::Object(Map::clone(&projected))
    }
}

/// Follows a collection for a live query: the results, kept up to date.
pub(crate) struct Live {
    pub(crate) results: RefCell<LiveResults>,
    coll: WeakCollection,
}

impl Live {
    /// Applies one change of the collection; the diffs it made to the results.
    pub(crate) fn apply(&self, change: &Change) -> Vec<Diff> {
        let mut out = Vec::new();
        let id = match change {
            Change::Added { id, .. } | Change::Changed { id, .. } | Change::Removed { id, .. } => id,
        };
        let Some(coll) = self.coll.upgrade() else { return out };
        // The store already holds the change: read the document as it is
        // now, decoding first only the fields the query reads (a document
        // that does not match is not decoded whole, and counts as absent).
        let matched = coll.with_doc_ref(id, |d| d.fields_if(id, self.results.borrow().query()).map(std::borrow::Cow::into_owned)).flatten();
        self.results.borrow_mut().update(id, matched.as_ref(), &mut out);
        out
    }
}

#[cfg(feature = "js-full")]
impl Query {
    /// The compiled query.
    pub(crate) fn engine(&self) -> &Rc<engine::Query> {
        &self.query
    }

    /// The same query with `limit` set (`findOne`).
    pub(crate) fn limited(self, limit: usize) -> Query {
        let query = match Rc::try_unwrap(self.query) {
            Ok(q) => q.with_limit(limit),
            Err(shared) => return Query { coll: self.coll, query: shared },
        };
        Query { coll: self.coll, query: Rc::new(query) }
    }
}

impl Query {
    /// The matching documents (fields plus `_id`, projected), sorted,
    /// skipped and limited. With no `sort`, in `_id` order.
    pub fn fetch(&self) -> Vec<Value> {
        self.coll.with_docs_unordered(|docs| {
            let hits = self.query.fetch(docs.iter().filter_map(|(id, d)| Some((*id, d.fields_if(id, &self.query)?))));
            hits.iter().map(|(id, f)| result_doc(&self.query, id, f)).collect()
        })
    }

    /// Runs `f` on the results (not projected; decoded, the others not kept).
    pub(crate) fn with_results<R: Default>(&self, f: impl FnOnce(&[(&str, Cow<'_, Fields>)]) -> R) -> R {
        self.coll
            .with_docs_unordered(|docs| f(&self.query.fetch(docs.iter().filter_map(|(id, d)| Some((*id, d.fields_if(id, &self.query)?))))))
    }

    /// How many results (skip and limit applied, as Meteor's `count()`).
    pub fn count(&self) -> usize {
        self.with_results(|r| r.len())
    }

    /// The first result.
    pub fn first(&self) -> Option<Value> {
        self.with_results(|r| r.first().map(|(id, f)| result_doc(&self.query, id, f)))
    }

    /// The live results now, following the collection from here on.
    pub(crate) fn live(&self) -> Rc<Live> {
        let results = self.coll.with_docs_unordered(|docs| {
            Some(LiveResults::new(self.query.clone(), docs.iter().filter_map(|(id, d)| Some((*id, d.fields_if(id, &self.query)?)))))
        });
        let results = results.unwrap_or_else(|| LiveResults::new(self.query.clone(), std::iter::empty::<(&str, &Fields)>()));
        Rc::new(Live { results: RefCell::new(results), coll: self.coll.downgrade() })
    }

    /// Calls `f` with the results' diffs: at once with the current results
    /// (`AddedAt`, in order), then after every change that moves them,
    /// until the handle is dropped. `f` gets the stored fields; project
    /// them with [`Query::document`].
    pub fn observe(&self, f: impl Fn(&[Diff]) + 'static) -> ListenerHandle {
        let live = self.live();
        let initial = live.results.borrow().initial();
        f(&initial);
        self.coll.on_change(move |c| {
            let diffs = live.apply(c);
            if !diffs.is_empty() {
                f(&diffs);
            }
        })
    }

    /// A result document as [`Query::fetch`] gives it (projected).
    pub fn document(&self, id: &str, fields: &Fields) -> Value {
        result_doc(&self.query, id, fields)
    }

    /// The results as a futures-signals `SignalVec` of documents: the
    /// current results first, then one `VecDiff` per change of the results
    /// (`InsertAt`, `RemoveAt`, `UpdateAt`, `Move`), in O(log n) per change
    /// of the collection. It follows the collection while it lives.
    pub fn signal_vec(&self) -> impl SignalVec<Item = Value> {
        let vec: MutableVec<Value> = MutableVec::new();
        let target = vec.clone();
        let q = self.query.clone();
        let handle = self.observe(move |diffs| {
            let mut lock = target.lock_mut();
            for d in diffs {
                match d {
                    Diff::AddedAt { id, doc, index, .. } => lock.insert_cloned(*index, result_doc(&q, id, doc)),
                    Diff::ChangedAt { id, doc, index, .. } => lock.set_cloned(*index, result_doc(&q, id, doc)),
                    Diff::RemovedAt { index, .. } => {
                        lock.remove(*index);
                    }
                    Diff::MovedTo { from, to, .. } => lock.move_from_to(*from, *to),
                }
            }
        });
        Following { inner: vec.signal_vec_cloned(), _handle: handle }
    }

    /// How many results there are, as a signal (changes only when the
    /// count does).
    pub fn signal_count(&self) -> impl Signal<Item = usize> {
        let count = Mutable::new(0usize);
        let target = count.clone();
        let live = self.live();
        let results = live.clone();
        count.set(live.results.borrow().len());
        let handle = self.coll.on_change(move |c| {
            if !results.apply(c).is_empty() {
                target.set_neq(results.results.borrow().len());
            }
        });
        Following { inner: count.signal(), _handle: handle }
    }
}

/// A signal (or signal vec) that keeps the listener feeding it.
struct Following<S> {
    inner: S,
    _handle: ListenerHandle,
}

impl<S: SignalVec + Unpin> SignalVec for Following<S> {
    type Item = S::Item;

    fn poll_vec_change(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<VecDiff<Self::Item>>> {
        Pin::new(&mut self.get_mut().inner).poll_vec_change(cx)
    }
}

impl<S: Signal + Unpin> Signal for Following<S> {
    type Item = S::Item;

    fn poll_change(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().inner).poll_change(cx)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::data::Mirror;
    use crate::protocol::store::Store;
    use futures_signals::signal_vec::SignalVecExt;
    use serde_json::json;
    use std::task::Waker;

    struct Fixture {
        store: Rc<RefCell<Store>>,
        mirror: Rc<Mirror>,
        coll: Collection,
    }

    fn fixture() -> Fixture {
        let store = Rc::new(RefCell::new(Store::default()));
        let s = store.clone();
        let mirror = Rc::new(Mirror::new("c", Box::new(move |f| f(&s.borrow()))));
        let coll = Collection::new("c".into(), mirror.clone());
        Fixture { store, mirror, coll }
    }

    impl Fixture {
        /// As the connection's pump: the store is written, then (no borrow
        /// held) the mirror's listeners hear the change.
        fn set(&self, id: &str, v: Value) {
            let fields = v.as_object().cloned().unwrap_or_default();
            let change = self.store.borrow_mut().added("c".into(), id.into(), fields);
            if let Some(c) = change {
                self.mirror.apply(&c);
            }
        }
        fn remove(&self, id: &str) {
            let change = self.store.borrow_mut().removed("c".into(), id.into());
            if let Some(c) = change {
                self.mirror.apply(&c);
            }
        }
    }

    fn ids(docs: &[Value]) -> Vec<&str> {
        docs.iter().map(|d| d["_id"].as_str().unwrap_or("?")).collect()
    }

    #[test]
    fn fetch_count_first_and_projection() {
        let f = fixture();
        for (id, n, s) in [("a", 3, "open"), ("b", 1, "open"), ("c", 2, "closed"), ("d", 5, "open")] {
            f.set(id, json!({"n": n, "status": s}));
        }
        let q = f.coll.query(json!({"status": "open"}), json!({"sort": {"n": -1}, "limit": 2, "fields": {"n": 1}})).unwrap();
        assert_eq!(q.fetch(), vec![json!({"_id": "d", "n": 5}), json!({"_id": "a", "n": 3})]);
        assert_eq!(q.count(), 2);
        assert_eq!(q.first(), Some(json!({"_id": "d", "n": 5})));
        let none = f.coll.query(json!({"n": {"$gt": 10}}), Value::Null).unwrap();
        assert_eq!((none.count(), none.first()), (0, None));
        assert_eq!(f.coll.query(json!({"n": {"$where": 1}}), Value::Null).unwrap_err().code(), "unsupported-operator");
        // Natively without the `native` feature there is no regex engine: a
        // typed error, not a mismatch; with it, the regex crate.
        let by_regex = f.coll.query(json!({"s": {"$regex": "o"}}), Value::Null);
        if cfg!(feature = "native") {
            assert!(by_regex.is_ok());
        } else {
            assert_eq!(by_regex.unwrap_err().code(), "bad-regex");
        }
    }

    #[test]
    fn signal_vec_and_count_follow_changes_and_stop_when_dropped() {
        let f = fixture();
        f.set("a", json!({"n": 1, "status": "open"}));
        f.set("b", json!({"n": 2, "status": "open"}));
        let q = f.coll.query(json!({"status": "open"}), json!({"sort": {"n": 1}, "limit": 2})).unwrap();
        let mut vec = Box::pin(q.signal_vec().to_signal_cloned());
        let mut count = Box::pin(q.signal_count());
        let mut cx = Context::from_waker(Waker::noop());
        let mut now = |cx: &mut Context<'_>| match vec.as_mut().poll_change(cx) {
            Poll::Ready(Some(v)) => Some(v),
            _ => None,
        };
        let mut count_now = |cx: &mut Context<'_>| match count.as_mut().poll_change(cx) {
            Poll::Ready(Some(n)) => Some(n),
            _ => None,
        };
        assert_eq!(ids(&now(&mut cx).unwrap()), ["a", "b"]);
        assert_eq!(count_now(&mut cx), Some(2));
        f.set("c", json!({"n": 0, "status": "open"})); // enters first, pushes b out
        assert_eq!(ids(&now(&mut cx).unwrap()), ["c", "a"]);
        f.set("a", json!({"n": 9, "status": "open"})); // leaves the window, b comes back
        assert_eq!(ids(&now(&mut cx).unwrap()), ["c", "b"]);
        f.remove("c");
        f.set("b", json!({"n": 2, "status": "closed"}));
        assert_eq!(ids(&now(&mut cx).unwrap()), ["a"]);
        assert_eq!(count_now(&mut cx), Some(1));
        // The observer's handle removes its listener.
        let calls = Rc::new(std::cell::Cell::new(0));
        let c = calls.clone();
        let handle = q.observe(move |d| c.set(c.get() + d.len()));
        assert_eq!(calls.get(), 1); // the initial AddedAt
        f.set("z", json!({"n": -1, "status": "open"}));
        assert_eq!(calls.get(), 2);
        drop(handle);
        f.set("y", json!({"n": -2, "status": "open"}));
        assert_eq!(calls.get(), 2);
    }
}
