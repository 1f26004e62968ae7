//! The publications the test server offers, and the per-scenario documents
//! that its `insertDoc` / `updateDoc` / `removeDoc` methods edit.
//!
//! | publication | sends |
//! |---|---|
//! | `items(n, size)` | `n` documents in `items` (`{i, pad}` with `size` bytes of padding), then ready; sent at the pace the client reads |
//! | `counter(intervalMs)` | one document `counters/counter` whose `value` ticks every `intervalMs` (default 1000) |
//! | `liveSet(rateMs, size)` | up to `size` documents in `live`, one added, changed or removed every `rateMs` |
//! | `docs(collection)` | every document of the scenario's `collection` (default `docs`), live |
//! | `failing()` | fails with `sub-failed` |
//!
//! `sub` and `unsub` are handled in order with the session's other messages
//! (after a slow method, as in Meteor): an unknown name gets `nosub` with a
//! 404 (even under an id in use), a duplicate id is ignored, and `unsub` of
//! an unknown id still gets its `nosub`.
//!
//! A session keeps a merge box (a reference count per document), so two
//! subscriptions that publish the same document send it once, and `unsub`
//! removes only what no other subscription still publishes.

use super::{lock, meteor_error, random_id, request_parts, Scenario, ServerConnection};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

type DocsData = HashMap<String, BTreeMap<String, Map<String, Value>>>;

/// The scenario's editable documents. Every change reaches the `docs`
/// subscriptions synchronously, so a method's writes are sent before its
/// `updated` (as Meteor guarantees).
#[derive(Default)]
pub(crate) struct Docs {
    data: Mutex<DocsData>,
    watchers: Mutex<HashMap<u64, (String, Publisher)>>,
    next_watcher: AtomicU64,
}

impl Docs {
    fn watchers_of(&self, collection: &str) -> Vec<Publisher> {
        lock(&self.watchers).values().filter(|(c, _)| c == collection).map(|(_, p)| p.clone()).collect()
    }

    fn unwatch(&self, id: u64) {
        lock(&self.watchers).remove(&id);
    }

    /// Inserts a document unless one has its id (then false, as MongoDB's
    /// unique `_id` index refuses it).
    pub(crate) fn insert_new(&self, collection: &str, id: String, fields: Map<String, Value>) -> bool {
        let mut data = lock(&self.data);
        let taken = data.get(collection).is_some_and(|c| c.contains_key(&id));
        if !taken {
            self.put(&mut data, collection, id, fields);
        }
        !taken
    }

    /// Stores a document and tells the watchers, under the data lock: a
    /// subscription's snapshot (also read under it) comes wholly before or
    /// wholly after each change.
    fn put(&self, data: &mut DocsData, collection: &str, id: String, fields: Map<String, Value>) {
        data.entry(collection.to_owned()).or_default().insert(id.clone(), fields.clone());
        for p in self.watchers_of(collection) {
            p.upsert(collection, &id, fields.clone());
        }
    }

    /// Sets fields (a `null` value clears the field); false if no such document.
    pub(crate) fn update(&self, collection: &str, id: &str, set: Map<String, Value>) -> bool {
        let mut data = lock(&self.data);
        let Some(doc) = data.get_mut(collection).and_then(|c| c.get_mut(id)) else { return false };
        for (k, v) in set {
            if v.is_null() {
                doc.shift_remove(&k);
            } else {
                doc.insert(k, v);
            }
        }
        let fields = doc.clone();
        for p in self.watchers_of(collection) {
            p.upsert(collection, id, fields.clone());
        }
        true
    }

    pub(crate) fn remove(&self, collection: &str, id: &str) -> bool {
        let mut data = lock(&self.data);
        let removed = data.get_mut(collection).and_then(|c| c.remove(id)).is_some();
        if removed {
            for p in self.watchers_of(collection) {
                p.remove(collection, id);
            }
        }
        removed
    }
}

/// A running subscription of a session.
pub(crate) struct SubEntry {
    docs: HashSet<(String, String)>,
    task: Option<JoinHandle<()>>,
    /// Its registration with the scenario's documents (`docs`).
    watcher: Option<(Arc<Scenario>, u64)>,
}

impl SubEntry {
    fn stop(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some((sc, w)) = self.watcher {
            sc.docs.unwatch(w);
        }
    }
}

/// A session's subscriptions and merge box.
#[derive(Default)]
pub(crate) struct SessionSubs {
    subs: Mutex<HashMap<String, SubEntry>>,
    /// (collection, id) → (how many subscriptions publish it, its fields).
    published: Mutex<HashMap<(String, String), (u32, Map<String, Value>)>>,
}

impl SessionSubs {
    /// How many subscriptions are live.
    pub(crate) fn len(&self) -> usize {
        lock(&self.subs).len()
    }

    /// Stops every subscription (the session ended).
    pub(crate) fn stop_all(&self) {
        let entries: Vec<SubEntry> = lock(&self.subs).drain().map(|(_, e)| e).collect();
        for e in entries {
            e.stop();
        }
    }
}

/// A subscription's view of the session: publishes through the merge box.
#[derive(Clone)]
struct Publisher {
    session: ServerConnection,
    sub: String,
}

impl Publisher {
    fn subs(&self) -> &SessionSubs {
        &self.session.inner.subs
    }

    /// Adds or replaces a document.
    fn upsert(&self, collection: &str, id: &str, fields: Map<String, Value>) {
        let key = (collection.to_owned(), id.to_owned());
        {
            let mut subs = lock(&self.subs().subs);
            let Some(entry) = subs.get_mut(&self.sub) else { return }; // stopped
            let first_for_sub = entry.docs.insert(key.clone());
            let mut published = lock(&self.subs().published);
            match published.get_mut(&key) {
                None => {
                    published.insert(key, (1, fields.clone()));
                    // Sent under the locks (as every message of the merge
                    // box is): an `unsub` or another change of the document
                    // cannot put its message on the wire before this one.
                    self.session.send(json!({"msg":"added","collection":collection,"id":id,"fields":fields}));
                }
                Some((count, old)) => {
                    if first_for_sub {
                        *count += 1;
                    }
                    let mut set = Map::new();
                    for (k, v) in &fields {
                        if old.get(k) != Some(v) {
                            set.insert(k.clone(), v.clone());
                        }
                    }
                    let cleared: Vec<&String> = old.keys().filter(|k| !fields.contains_key(*k)).collect();
                    let mut msg = json!({"msg":"changed","collection":collection,"id":id});
                    let changed = !set.is_empty() || !cleared.is_empty();
                    if !set.is_empty() {
                        msg["fields"] = Value::Object(set);
                    }
                    if !cleared.is_empty() {
                        msg["cleared"] = json!(cleared);
                    }
                    *old = fields;
                    if changed {
                        self.session.send(msg);
                    }
                }
            }
        }
    }

    fn remove(&self, collection: &str, id: &str) {
        let key = (collection.to_owned(), id.to_owned());
        let mut subs = lock(&self.subs().subs);
        let Some(entry) = subs.get_mut(&self.sub) else { return };
        if !entry.docs.remove(&key) {
            return;
        }
        drop(subs);
        release(&self.session, key);
    }

    fn ready(&self) {
        self.session.send(json!({"msg":"ready","subs":[self.sub]}));
    }
}

/// One subscription lets go of a document; removed when nobody publishes it.
fn release(session: &ServerConnection, key: (String, String)) {
    let mut published = lock(&session.inner.subs.published);
    let gone = match published.get_mut(&key) {
        Some((count, _)) if *count > 1 => {
            *count -= 1;
            false
        }
        Some(_) => {
            published.remove(&key);
            true
        }
        None => false,
    };
    // Under the lock, in the merge box's order (see `Publisher::upsert`).
    if gone {
        session.send(json!({"msg":"removed","collection":key.0,"id":key.1}));
    }
    drop(published);
}

fn num(v: Option<&Value>, default: f64) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(default)
}

/// The publications, for Meteor's 404 check.
const NAMES: [&str; 6] = ["items", "counter", "liveSet", "docs", "rooms.inbox", "failing"];

/// Handles a `sub` message (from the session's worker, in order), with
/// Meteor's checks in Meteor's order: malformed, unknown name, duplicate id.
pub(crate) async fn handle_sub(sc: &Arc<Scenario>, session: &ServerConnection, msg: Value) {
    let Some((name, id, params)) = request_parts(&msg, "name") else {
        session.send(super::error_reply("Malformed subscription", Some(msg)));
        return;
    };
    if !NAMES.contains(&name) {
        let err = meteor_error(json!(404), &format!("Subscription '{name}' not found"));
        session.send(json!({"msg":"nosub","id":id,"error":err}));
        return;
    }
    subscribe(sc, session, id, name, params).await;
}

/// Handles `unsub` (an unknown id still gets its `nosub`, as in Meteor).
pub(crate) fn handle_unsub(session: &ServerConnection, msg: &Value) {
    match msg.get("id") {
        Some(Value::String(id)) => unsubscribe(session, id),
        Some(other) => session.send(json!({"msg":"nosub","id":other})),
        None => session.send(json!({"msg":"nosub"})),
    }
}

/// Starts a subscription.
async fn subscribe(sc: &Arc<Scenario>, session: &ServerConnection, id: &str, name: &str, params: Vec<Value>) {
    {
        let mut subs = lock(&session.inner.subs.subs);
        // A session that ended meanwhile (`finish` marks it closed before it
        // drains the subscriptions under this lock) starts nothing more.
        if session.is_closed() {
            return;
        }
        if subs.contains_key(id) {
            return; // a duplicate id (a re-send after resumption) is ignored
        }
        subs.insert(id.to_owned(), SubEntry { docs: HashSet::new(), task: None, watcher: None });
    }
    let p = Publisher { session: session.clone(), sub: id.to_owned() };
    let mut watcher = None;
    let task = match name {
        "items" => {
            let n = num(params.first(), 10.0).clamp(0.0, 1_000_000.0) as usize;
            let size = num(params.get(1), 0.0).clamp(0.0, 1_000_000.0) as usize;
            let pad = "x".repeat(size);
            for i in 0..n {
                // Many documents: at the pace the client reads them.
                session.room().await;
                let mut f = Map::new();
                f.insert("i".into(), json!(i));
                f.insert("pad".into(), json!(pad));
                p.upsert("items", &format!("item-{i}"), f);
            }
            p.ready();
            None
        }
        "counter" => {
            let every = Duration::from_millis(num(params.first(), 1000.0).clamp(10.0, 3_600_000.0) as u64);
            let mut f = Map::new();
            f.insert("value".into(), json!(0));
            p.upsert("counters", "counter", f);
            p.ready();
            Some(tokio::spawn(async move {
                let mut value = 0u64;
                loop {
                    tokio::time::sleep(every).await;
                    value += 1;
                    let mut f = Map::new();
                    f.insert("value".into(), json!(value));
                    p.upsert("counters", "counter", f);
                }
            }))
        }
        "liveSet" => {
            let every = Duration::from_millis(num(params.first(), 200.0).clamp(1.0, 3_600_000.0) as u64);
            let size = num(params.get(1), 10.0).clamp(1.0, 10_000.0) as usize;
            p.ready();
            Some(tokio::spawn(async move {
                let mut ids: Vec<String> = Vec::new();
                let mut tick = 0u64;
                loop {
                    tokio::time::sleep(every).await;
                    tick += 1;
                    let pick = (tick as usize * 7919) % (size + 1);
                    if ids.len() < size && (ids.is_empty() || pick.is_multiple_of(3)) {
                        let id = random_id();
                        let mut f = Map::new();
                        f.insert("tick".into(), json!(tick));
                        p.upsert("live", &id, f);
                        ids.push(id);
                    } else if pick % 3 == 1 {
                        let id = ids[pick % ids.len()].clone();
                        let mut f = Map::new();
                        f.insert("tick".into(), json!(tick));
                        p.upsert("live", &id, f);
                    } else {
                        let id = ids.remove(pick % ids.len());
                        p.remove("live", &id);
                    }
                }
            }))
        }
        "docs" => {
            let collection = params.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
            // Watch and send the snapshot under the data lock, which every
            // change holds while it tells the watchers: each change is then
            // wholly in the snapshot or sent after it, never lost between
            // (a removal told before the snapshot's document was sent was).
            let data = lock(&sc.docs.data);
            let w = sc.docs.next_watcher.fetch_add(1, Ordering::SeqCst);
            lock(&sc.docs.watchers).insert(w, (collection.clone(), p.clone()));
            watcher = Some((sc.clone(), w));
            for (id, fields) in data.get(&collection).into_iter().flatten() {
                p.upsert(&collection, id, fields.clone());
            }
            drop(data);
            p.ready();
            None
        }
        "rooms.inbox" => {
            // Room messages are sent to the session directly (see rooms.rs);
            // this subscription only says the client is listening.
            p.ready();
            None
        }
        "failing" => {
            lock(&session.inner.subs.subs).remove(id);
            let err = meteor_error(json!("sub-failed"), "This publication always fails");
            session.send(json!({"msg":"nosub","id":id,"error":err}));
            return;
        }
        _ => {
            lock(&session.inner.subs.subs).remove(id);
            return;
        }
    };
    let mut subs = lock(&session.inner.subs.subs);
    match subs.get_mut(id) {
        Some(entry) => {
            entry.task = task;
            entry.watcher = watcher;
        }
        None => {
            // Stopped meanwhile: stop what was started.
            drop(subs);
            SubEntry { docs: HashSet::new(), task, watcher }.stop();
        }
    }
}

/// Sets what the session's universal publication `key` publishes (as
/// Meteor's `publish(null)`, rerun when the session's user changes): the
/// new documents are merged in before the old ones are let go, so a document
/// in both is changed, not removed and added. Sends no `ready`.
pub(crate) fn set_universal(session: &ServerConnection, key: &str, docs: Vec<(&str, String, Map<String, Value>)>) {
    let old = lock(&session.inner.subs.subs).insert(key.to_owned(), SubEntry { docs: HashSet::new(), task: None, watcher: None });
    let p = Publisher { session: session.clone(), sub: key.to_owned() };
    for (collection, id, fields) in docs {
        p.upsert(collection, &id, fields);
    }
    if let Some(mut entry) = old {
        let docs = std::mem::take(&mut entry.docs);
        entry.stop();
        for key in docs {
            release(session, key);
        }
    }
}

/// Handles `unsub`: its documents go (unless another subscription still
/// publishes them), then `nosub`.
pub(crate) fn unsubscribe(session: &ServerConnection, id: &str) {
    let entry = lock(&session.inner.subs.subs).remove(id);
    if let Some(mut entry) = entry {
        let docs = std::mem::take(&mut entry.docs);
        entry.stop();
        for key in docs {
            release(session, key);
        }
    }
    session.send(json!({"msg":"nosub","id":id}));
}
