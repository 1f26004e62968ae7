//! Subscriptions and reactive collections (the driver side).

use crate::connection::{Connection, Plugin, WeakConnection};
use crate::protocol::hash::{FastMap, NameMap};
use crate::protocol::machine::Completion;
use crate::protocol::store::{Change, DocRef, Fields, Store};
use crate::reactive::{ListenerHandle, Observable, Registry};
use futures_signals::signal::Signal;
use futures_signals::signal_map::{MutableBTreeMap, SignalMapExt};
use serde::Serialize;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::rc::{Rc, Weak};

/// A connection's subscriptions and collections (a plug-in of its driver):
/// the state each subscription's handles share, by subscription id, and
/// each collection's mirror, by name.
#[derive(Default)]
struct Data {
    subs: RefCell<FastMap<String, SubState>>,
    mirrors: RefCell<NameMap<Rc<Mirror>>>,
}

/// Whether the store holds documents of an earlier session not confirmed
/// yet, as an observable: a plug-in of its own, made when first asked for
/// (from the machine's state then), so a build that never asks (the npm
/// package) carries none of it.
struct Stale(Observable<bool>);

impl Plugin for Stale {
    fn completion(&self, done: &Completion) {
        #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
        if let Completion::Stale(stale) = done {
            self.0.set(*stale);
        }
        let _ = done;
    }
}

fn stale(conn: &Connection) -> Observable<bool> {
    conn.plugin(|conn| Rc::new(Stale(Observable::new(conn.with_machine(|m| m.stale()))))).0.clone()
}

impl Plugin for Data {
    fn completion(&self, done: &Completion) {
        match done {
            Completion::Data(change) => {
                let mirror = self.mirrors.borrow().get(change.collection()).cloned();
                if let Some(m) = mirror {
                    m.apply(change);
                }
            }
            Completion::SubReady { id } => {
                let state = self.subs.borrow().get(id).cloned();
                if let Some(s) = state {
                    s.ready.set(true);
                }
            }
            Completion::SubStopped { id, error } => {
                let state = self.subs.borrow_mut().remove(id);
                if let Some(s) = state {
                    s.ended.set(Some(error.clone().map_or(SubscriptionEnd::Stopped, SubscriptionEnd::Failed)));
                }
            }
            _ => {}
        }
    }
}

fn data(conn: &Connection) -> Rc<Data> {
    conn.plugin(|_| Rc::default())
}

/// How a subscription ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEnd {
    /// `stop()` was called (or the connection closed).
    Stopped,
    /// The server ended it with this error (a Meteor.Error on the wire).
    Failed(Value),
}

/// A subscription's state, shared by its handles and the driver.
#[derive(Clone)]
pub(crate) struct SubState {
    pub(crate) ready: Observable<bool>,
    pub(crate) ended: Observable<Option<SubscriptionEnd>>,
}

/// A live subscription. `stop()` ends it; dropping the handle does not.
#[derive(Clone)]
pub struct Subscription {
    conn: WeakConnection,
    id: String,
    state: SubState,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("id", &self.id).field("ready", &self.ready()).finish()
    }
}

impl Subscription {
    /// The DDP subscription id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True once the server said `ready` (and stays true across reconnects).
    pub fn ready(&self) -> bool {
        self.state.ready.get()
    }

    /// Readiness as a signal.
    pub fn ready_signal(&self) -> impl Signal<Item = bool> {
        self.state.ready.signal()
    }

    /// Readiness as an [`Observable`].
    pub fn ready_observable(&self) -> &Observable<bool> {
        &self.state.ready
    }

    /// How it ended, if it has.
    pub fn ended(&self) -> Option<SubscriptionEnd> {
        self.state.ended.get()
    }

    /// The end as an [`Observable`] (for stop callbacks).
    pub fn ended_observable(&self) -> &Observable<Option<SubscriptionEnd>> {
        &self.state.ended
    }

    /// Resolves when the subscription is ready, or with how it ended first.
    pub async fn wait_ready(&self) -> Result<(), SubscriptionEnd> {
        use futures_signals::signal::SignalExt;
        let ready = self.state.ready.signal();
        let ended = self.state.ended.signal();
        let settled = futures_signals::map_ref! { let r = ready, let e = ended => *r || e.is_some() };
        settled.wait_for(true).await;
        match (self.ready(), self.ended()) {
            (true, _) => Ok(()),
            (_, Some(e)) => Err(e),
            _ => Err(SubscriptionEnd::Stopped),
        }
    }

    /// Whether the documents it shows may be an earlier session's, not
    /// confirmed by the server yet: the connection's
    /// [`stale`](Connection::stale) while this subscription is not ready
    /// in this session. Always false once it is ready.
    pub fn stale(&self) -> bool {
        self.conn.upgrade().is_some_and(|c| c.stale()) && !self.ready()
    }

    /// [`Subscription::stale`] as a signal.
    pub fn stale_signal(&self) -> impl Signal<Item = bool> {
        let stale = self.conn.upgrade().map_or_else(|| Observable::new(false), |c| stale(&c));
        futures_signals::map_ref! { let s = stale.signal(), let r = self.state.ready.signal() => *s && !*r }
    }

    /// Stops it: not re-sent after reconnects; its documents go (at once
    /// when connected; after the next reconciliation when offline).
    pub fn stop(&self) {
        if let Some(conn) = self.conn.upgrade() {
            conn.unsubscribe(&self.id);
        }
    }
}

/// Runs a closure with the store (the connection's, or a test's); does
/// nothing once the store is gone.
pub(crate) type StoreAccess = Box<dyn Fn(&mut dyn FnMut(&Store))>;

/// What a [`Collection`] reads and listens to. The documents themselves
/// live once, in the machine's store; a futures-signals map is kept only
/// after somebody asked for one (JavaScript and most Rust readers never
/// pay for that second copy).
pub(crate) struct Mirror {
    name: String,
    store: StoreAccess,
    map: std::cell::OnceCell<MutableBTreeMap<String, Value>>,
    /// Keeps `map` in step once it exists. Called through a pointer set by
    /// `map()`, so builds that never ask for a map (the npm package) carry
    /// no B-tree code.
    map_sink: std::cell::OnceCell<Box<dyn Fn(&Change)>>,
    listeners: Rc<Registry<dyn Fn(&Change)>>,
}

/// A document as apps see it: its fields plus `_id`, EJSON wire values.
pub(crate) fn document(id: &str, fields: &Fields) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), Value::String(id.to_owned()));
    for (k, v) in fields {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// One change, applied to a collection's futures-signals map.
fn apply_to_map(map: &MutableBTreeMap<String, Value>, change: &Change) {
    let mut lock = map.lock_mut();
    match change {
        Change::Added { id, fields, .. } => {
            lock.insert_cloned(id.clone(), document(id, fields));
        }
        Change::Changed { id, fields, cleared, .. } => {
            let mut doc = lock.get(id).cloned().unwrap_or_else(|| document(id, &Fields::new()));
            if let Value::Object(m) = &mut doc {
                for (k, v) in fields {
                    m.insert(k.clone(), v.clone());
                }
                for k in cleared {
                    m.shift_remove(k);
                }
            }
            lock.insert_cloned(id.clone(), doc);
        }
        Change::Removed { id, .. } => {
            lock.remove(id);
        }
    }
}

impl Mirror {
    pub(crate) fn new(name: &str, store: StoreAccess) -> Self {
        Mirror {
            name: name.to_owned(),
            store,
            map: std::cell::OnceCell::new(),
            map_sink: std::cell::OnceCell::new(),
            listeners: Rc::default(),
        }
    }

    fn read<R: Default>(&self, f: impl FnOnce(&Store, &str) -> R) -> R {
        let mut f = Some(f);
        let mut out = R::default();
        (self.store)(&mut |store| {
            if let Some(f) = f.take() {
                out = f(store, &self.name);
            }
        });
        out
    }

    /// The futures-signals map, filled from the store on first use.
    fn map(&self) -> &MutableBTreeMap<String, Value> {
        self.map.get_or_init(|| {
            let docs = self
                .read(|store, name| store.visible(name).into_iter().map(|(id, d)| (id.to_owned(), document(id, &d.fields()))).collect());
            let map = MutableBTreeMap::with_values(docs);
            let sink = map.clone();
            let _ = self.map_sink.set(Box::new(move |change| apply_to_map(&sink, change)));
            map
        })
    }

    pub(crate) fn apply(&self, change: &Change) {
        if let Some(sink) = self.map_sink.get() {
            sink(change);
        }
        if !self.listeners.is_empty() {
            for l in self.listeners.snapshot() {
                l(change);
            }
        }
    }
}

/// A live, reactive view of one collection's documents.
///
/// ```no_run
/// # fn f(conn: ddp_live::Connection) {
/// use futures_signals::signal_map::SignalMapExt;
/// let messages = conn.collection("messages");
/// let sub = conn.subscribe("messages", ("general",));
/// // All documents, as a futures-signals map keyed by _id:
/// let _map = messages.signal_map();
/// // One document, as a signal:
/// let _one = messages.doc_signal("abc");
/// # drop(sub); }
/// ```
#[derive(Clone)]
pub struct Collection {
    name: String,
    mirror: Rc<Mirror>,
}

impl Collection {
    pub(crate) fn new(name: String, mirror: Rc<Mirror>) -> Self {
        Collection { name, mirror }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All documents (fields plus `_id`, EJSON wire values), by `_id`.
    pub fn find(&self) -> Vec<Value> {
        self.with_docs(|docs| docs.iter().map(|(id, d)| document(id, &d.fields())).collect())
    }

    /// One document.
    pub fn find_one(&self, id: &str) -> Option<Value> {
        self.with_doc(id, |f| document(id, f))
    }

    /// Runs `f` on the documents as they are stored (by `_id`), decoding
    /// none (each is decoded when read: [`DocRef::fields`]).
    pub(crate) fn with_docs<R: Default>(&self, f: impl FnOnce(&[(&str, DocRef<'_>)]) -> R) -> R {
        self.mirror.read(|store, name| {
            let mut docs = store.visible(name);
            crate::protocol::order::sort_by(&mut docs, |a, b| a.0.cmp(b.0));
            f(&docs)
        })
    }

    /// Runs `f` on the documents as they are stored, in no particular
    /// order, decoding none (queries sort for themselves).
    pub(crate) fn with_docs_unordered<R: Default>(&self, f: impl FnOnce(&[(&str, DocRef<'_>)]) -> R) -> R {
        self.mirror.read(|store, name| f(&store.visible(name)))
    }

    /// Runs `f` on one stored document's fields (decoded), if it is there.
    pub(crate) fn with_doc<R>(&self, id: &str, f: impl FnOnce(&Fields) -> R) -> Option<R> {
        self.mirror.read(|store, name| store.get(name, id).map(|d| f(&d)))
    }

    /// Runs `f` on one stored document, not decoded, if it is there.
    pub(crate) fn with_doc_ref<R>(&self, id: &str, f: impl FnOnce(crate::protocol::store::DocRef<'_>) -> R) -> Option<R> {
        self.mirror.read(|store, name| store.get_ref(name, id).map(f))
    }

    /// How many documents.
    pub fn len(&self) -> usize {
        self.mirror.read(|store, name| store.visible_len(name))
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The documents as a futures-signals map, keyed by `_id`. (The first
    /// call makes the map; it is kept up to date from then on.)
    pub fn signal_map(&self) -> impl futures_signals::signal_map::SignalMap<Key = String, Value = Value> {
        self.mirror.map().signal_map_cloned()
    }

    /// One document as a signal (`None` while absent).
    pub fn doc_signal(&self, id: &str) -> impl Signal<Item = Option<Value>> {
        self.mirror.map().signal_map_cloned().key_cloned(id.to_owned())
    }

    /// A handle that does not keep the collection alive (for listeners the
    /// collection itself holds).
    pub(crate) fn downgrade(&self) -> WeakCollection {
        WeakCollection { name: self.name.clone(), mirror: Rc::downgrade(&self.mirror) }
    }

    /// Calls `f` with every change while the returned handle lives (dropping it removes the listener).
    pub fn on_change(&self, f: impl Fn(&Change) + 'static) -> ListenerHandle {
        self.mirror.listeners.add(Rc::new(f))
    }

    /// How many `on_change` listeners are registered (for leak checks).
    pub fn listener_count(&self) -> usize {
        self.mirror.listeners.len()
    }
}

/// A [`Collection`] that does not keep it alive.
pub(crate) struct WeakCollection {
    name: String,
    mirror: Weak<Mirror>,
}

impl WeakCollection {
    pub(crate) fn upgrade(&self) -> Option<Collection> {
        Some(Collection::new(self.name.clone(), self.mirror.upgrade()?))
    }
}

impl Connection {
    /// Subscribes to publication `name` with `args` (a tuple or `Vec` is the
    /// argument list; any other value the single argument). Re-sent with
    /// the same id after every reconnect until stopped.
    pub fn subscribe(&self, name: &str, args: impl Serialize) -> Subscription {
        let params = match serde_json::to_value(args) {
            Ok(Value::Array(a)) => a,
            Ok(Value::Null) | Err(_) => Vec::new(),
            Ok(other) => vec![other],
        };
        self.subscribe_raw(name, params)
    }

    /// [`Connection::subscribe`] with EJSON-encoded parameters.
    pub fn subscribe_raw(&self, name: &str, params: Vec<Value>) -> Subscription {
        let state = SubState { ready: Observable::new(false), ended: Observable::new(None) };
        // Registered before the pump runs: its ready may already be there.
        let id = self.with_machine_mut(|m| m.subscribe(name, params));
        data(self).subs.borrow_mut().insert(id.clone(), state.clone());
        self.drive(|_| ());
        Subscription { conn: self.downgrade(), id, state }
    }

    /// Whether the documents shown may be an earlier session's, not
    /// confirmed by the server yet: true from the moment documents kept by
    /// a durable cache ([`Options::persist`](crate::Options::persist)) or
    /// rendered on a server are shown, until the first session after them
    /// has every subscription ready and the server's documents replaced
    /// them (only the differences are applied). Stays true while offline.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ddp_live::Error> {
    /// use ddp_live::{connect, Options};
    /// let conn = connect("wss://app.example.com", Options { persist: Some("todos".into()), ..Options::default() })?;
    /// let todos = conn.collection("todos");
    /// let _sub = conn.subscribe("todos", ());
    /// // The last known todos, as soon as the cache is read (offline too).
    /// let _shown = conn.stale_observable().subscribe(move |stale| {
    ///     println!("{} todos{}", todos.len(), if *stale { " (offline copy)" } else { "" });
    /// });
    /// # Ok(()) }
    /// ```
    pub fn stale(&self) -> bool {
        self.with_machine(|m| m.stale())
    }

    /// [`Connection::stale`] as a signal.
    pub fn stale_signal(&self) -> impl Signal<Item = bool> {
        stale(self).signal()
    }

    /// [`Connection::stale`] as an [`Observable`].
    pub fn stale_observable(&self) -> Observable<bool> {
        stale(self)
    }

    pub(crate) fn unsubscribe(&self, id: &str) {
        self.drive(|m| m.unsubscribe(id));
    }

    /// The live view of collection `name` (created empty if no document
    /// arrived yet).
    pub fn collection(&self, name: &str) -> Collection {
        let data = data(self);
        let existing = data.mirrors.borrow().get(name).cloned();
        let mirror = existing.unwrap_or_else(|| {
            let weak = self.downgrade();
            let access: StoreAccess = Box::new(move |f| {
                if let Some(conn) = weak.upgrade() {
                    conn.with_machine(|m| f(m.store()));
                }
            });
            let m = Rc::new(Mirror::new(name, access));
            data.mirrors.borrow_mut().insert(name.to_owned(), m.clone());
            m
        });
        Collection::new(name.to_owned(), mirror)
    }
}
