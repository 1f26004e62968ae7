//! The durable outbox ([`Options::persist`](crate::Options::persist)): calls
//! made offline, and calls in flight, survive a reload, a crash and a
//! closed tab.
//!
//! A plug-in of the driver. Every call that enters the outbox is written to
//! a durable store of the host (IndexedDB in the browser, one database per
//! store name and server URL) as a [`CallRecord`]: its method id, name,
//! parameters, `randomSeed`, flags and the user it was made as. Its record
//! goes when the server has run it (its `result` arrived) or it failed; a
//! connection closed by the app keeps them for the next start.
//!
//! On the next start, the outbox holds every call until the store is read,
//! then puts the earlier page's calls back first, in the order they were
//! made, with their ids and seeds: a re-sent insert makes the same ids on
//! the server as its stub did, so it is a duplicate key, never a second
//! document. A call made as a user waits until that user is logged in
//! again (a queue written as A is never sent as B). Their promises are gone
//! with the page: how each settles is a [`PersistEvent::Settled`].
//!
//! Only the app's calls are kept: the client's own (logins, which carry
//! credentials, logouts, room joins and messages) are
//! [`transient`](crate::CallOptions::transient). A page restores only the
//! records of pages that are gone: each page holds a lock on its own mark
//! while it lives (a Web Lock in the browser), so a second tab never sends
//! the first one's queue.
//!
//! Storage failures are [`StorageError`]s in a [`PersistEvent`], never a
//! lost call: a call the store refused still goes out from memory.

use crate::connection::{Connection, Plugin, WeakConnection};
use crate::host::store::{DurableStore, StorageError};
use crate::host::Guard;
use crate::protocol::durable::{CallRecord, RestorePlan, SessionRecord, SESSION_KEY};
use crate::protocol::hash::FastMap;
use crate::protocol::machine::{Completion, MethodError};
use crate::reactive::{ListenerHandle, Observable, Registry};
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// A call the durable outbox keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedCall {
    /// Its key in the store: unique across pages (what
    /// [`PersistedCalls::cancel`] and [`PersistEvent::Settled`] name).
    pub key: String,
    /// Its method id on this page: as [`MethodCall::id`](crate::MethodCall::id)
    /// for a call made here; for an earlier page's call, once it is back in
    /// the outbox (`None` while it waits for its user).
    pub id: Option<u64>,
    pub name: String,
    /// The user it was made as.
    pub user: Option<String>,
    /// Made by an earlier page (no promise waits for it here).
    pub from_earlier_page: bool,
    /// Waiting for its user to log in again before it is sent.
    pub waiting_for_user: bool,
    /// The store confirmed it keeps the call (a reload now loses nothing).
    pub durable: bool,
}

/// What the durable outbox tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum PersistEvent {
    /// The calls an earlier page left were read: `count` of them are back in
    /// the outbox, `waiting` wait for their user.
    Restored { count: usize, waiting: usize },
    /// A call an earlier page made has settled: its result (`None` when the
    /// method returned nothing), or why it failed.
    Settled { key: String, name: String, outcome: Result<Option<Value>, MethodError> },
    /// Another user is logged in than the one these calls were made as:
    /// they are kept, and go out when `user` logs in again (or the app
    /// cancels them).
    WaitingForUser { user: String, keys: Vec<String> },
    /// The store failed: it cannot be opened (the calls then live in memory
    /// only), or it refused to keep the call of `key` (which still goes out).
    StorageFailed { key: Option<String>, error: StorageError },
    /// A stored record could not be read (damaged) and was removed.
    Discarded { key: String, reason: String },
    /// A stored record was written by a newer version of the client: a
    /// call's is left for that version to send; a cached document's is
    /// removed (a cache is only a copy).
    Skipped { key: String, reason: String },
    /// The durable cache was read: `documents` of `user`'s (`None`:
    /// nobody logged in) show now, stale until the subscriptions are ready
    /// (0: none kept, or the first session was already reconciled).
    CacheRestored { documents: usize, user: Option<String> },
    /// A batch of the cache's changes was kept; it now holds `documents`.
    CacheWritten { documents: usize },
    /// The cache reached its bound: documents past it are not kept (those
    /// it holds still follow their changes). Told once per connection.
    CacheFull { documents: usize, bytes: usize },
    /// The durable cache failed (it cannot be opened, or refused a batch):
    /// the documents are not kept across reloads. The outbox, apart, is
    /// not affected.
    CacheFailed { error: StorageError },
}

enum Store {
    /// Being opened: the calls queued meanwhile (by id) are written once it is.
    Opening(Vec<u64>),
    /// Shared so that no borrow is held while it works (its callbacks may
    /// run app code that calls back in).
    Open(Rc<dyn DurableStore>),
    /// No durable store: calls live in memory only.
    Unavailable,
}

/// The durable outbox of one connection.
pub(crate) struct Persist {
    conn: WeakConnection,
    /// Itself, weakly (for the store's callbacks).
    me: std::rc::Weak<Persist>,
    /// This page's mark in its records' keys (random), so that no two pages'
    /// keys meet whatever their method ids.
    page: String,
    store: RefCell<Store>,
    calls: Observable<Vec<PersistedCall>>,
    /// The earlier pages' calls back in the outbox: call id → key.
    restored: RefCell<FastMap<u64, String>>,
    /// An earlier page's calls made as a user not logged in now, by key.
    waiting: RefCell<Vec<(String, CallRecord)>>,
    events: Rc<Registry<dyn Fn(&PersistEvent)>>,
    /// The accounts' listeners while calls wait for their user.
    user_watch: RefCell<Vec<ListenerHandle>>,
    /// The session is kept for the next page (`Config::adopt_sessions`).
    sessions: bool,
    /// While the handshake waits for the store: lets it go at the latest
    /// when this fires (a store slow to open costs the earlier page's
    /// session, never the connection).
    connect_wait: RefCell<Option<Guard>>,
    /// The handshake still waits for the store.
    connect_held: std::cell::Cell<bool>,
    /// A write of the session record is due (at most a second late).
    session_due: RefCell<Option<Guard>>,
    /// That write is still to come (its timer is not dropped from inside
    /// its own callback).
    session_pending: std::cell::Cell<bool>,
}

/// How long the handshake waits for the store (ms).
const CONNECT_WAIT_MS: u32 = 1_500;
/// How late a write of the session record may be (ms): its count of
/// received messages only lags (the server then replays more).
const SESSION_LAG_MS: u32 = 1_000;

impl Plugin for Persist {
    fn completion(&self, done: &Completion) {
        match done {
            Completion::CallQueued { id } => self.queued(*id),
            Completion::CallSent { id } => {
                if let Some(conn) = self.conn.upgrade() {
                    self.write(&conn, *id, true);
                }
            }
            Completion::SessionChanged => self.write_session(),
            Completion::MethodResult { id, .. } => {
                self.forget(*id);
                self.session_later();
            }
            // Anything else received moves the session's count: kept at
            // most a second late.
            Completion::Data(_) | Completion::SubReady { .. } | Completion::SubStopped { .. } => self.session_later(),
            // A call the app's `close()` ended is kept for the next start,
            // where it settles.
            Completion::MethodDone { outcome: Err(MethodError::Closed), .. } => {}
            Completion::MethodDone { id, outcome } => {
                self.forget(*id);
                let key = self.key_of(*id);
                let name = self.calls.with(|c| c.iter().find(|c| c.key == key).map(|c| c.name.clone()));
                self.remove_listed(&key);
                let restored = self.restored.borrow_mut().remove(id).is_some();
                if let (true, Some(name)) = (restored, name) {
                    self.emit(&PersistEvent::Settled { key, name, outcome: outcome.clone() });
                }
            }
            // (Every variant is matched above in a build without the
            // variants that only `persist`, `leptos` or a native build have.)
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// The store goes with the connection (its page lock too): its calls,
    /// kept, are the next connection's to take, on this page or another.
    fn closed(&self) {
        // A closed connection ended its session (`disconnect`).
        if let (true, Some(store)) = (self.sessions, self.open_store()) {
            store.delete(&self.session_key());
        }
        self.session_due.borrow_mut().take();
        self.connect_held.set(false);
        self.connect_wait.borrow_mut().take();
        let store = std::mem::replace(&mut *self.store.borrow_mut(), Store::Unavailable);
        drop(store);
        self.user_watch.borrow_mut().clear();
    }
}

/// Turns on the durable outbox of `conn`, kept in store `name`.
pub(crate) fn install(conn: &Connection, name: &str, cache: bool) {
    let persist = conn.plugin(|conn| {
        let random = conn.host().clone();
        let page: String = (0..8).map(|_| char::from(b'a' + (random.random() * 26.0) as u8 % 26)).collect();
        Rc::new_cyclic(|me| Persist {
            conn: conn.downgrade(),
            me: me.clone(),
            page,
            store: RefCell::new(Store::Opening(Vec::new())),
            calls: Observable::new(Vec::new()),
            restored: RefCell::default(),
            waiting: RefCell::default(),
            events: Rc::default(),
            user_watch: RefCell::default(),
            sessions: conn.with_machine(|m| m.config().adopt_sessions),
            connect_wait: RefCell::default(),
            connect_held: std::cell::Cell::new(false),
            session_due: RefCell::default(),
            session_pending: std::cell::Cell::new(false),
        })
    });
    if persist.sessions {
        let weak = Rc::downgrade(&persist);
        let timer = conn.host().timer(
            CONNECT_WAIT_MS,
            Box::new(move || {
                let Some(persist) = weak.upgrade() else { return };
                if let (true, Some(conn)) = (persist.connect_held.replace(false), persist.conn.upgrade()) {
                    conn.drive(|m| m.release_connect(None, conn.now()));
                }
            }),
        );
        persist.connect_held.set(true);
        *persist.connect_wait.borrow_mut() = Some(timer);
    }
    // The documents too, in a store of their own: a failing cache never
    // touches a call.
    #[cfg(any(feature = "persist", not(target_arch = "wasm32")))]
    if cache {
        crate::cache::install(conn, name, persist.events.clone());
    }
    #[cfg(not(any(feature = "persist", not(target_arch = "wasm32"))))]
    let _ = cache;
    let weak = Rc::downgrade(&persist);
    let store_name = format!("ddp-live/{name}/{}", conn.url());
    let host = conn.host().clone();
    conn.host().open_store(
        &store_name,
        crate::host::store::Access::Page(&persist.page),
        Box::new(move |opened| {
            // Never from inside `connect` (a host whose store opens at once):
            // the app listens for the events first.
            host.later(Box::new(move || {
                if let Some(persist) = weak.upgrade() {
                    persist.opened(opened);
                }
            }));
        }),
    );
}

/// The user logged in now (settled), if the connection's accounts are in use.
fn settled_user(conn: &Connection) -> Option<String> {
    let accounts = crate::accounts::existing(conn)?;
    if accounts.logging_in() {
        return None;
    }
    accounts.user_id()
}

impl Persist {
    /// Changes the list of kept calls (its observers hear the new one).
    fn edit_calls(&self, f: impl FnOnce(&mut Vec<PersistedCall>)) {
        let mut list = self.calls.get();
        f(&mut list);
        self.calls.set(list);
    }

    /// The store, if it is open (shared: no borrow is held while it works).
    fn open_store(&self) -> Option<Rc<dyn DurableStore>> {
        match &*self.store.borrow() {
            Store::Open(store) => Some(store.clone()),
            _ => None,
        }
    }

    fn emit(&self, event: &PersistEvent) {
        for l in self.events.snapshot() {
            l(event);
        }
    }

    fn opened(self: &Rc<Self>, opened: Result<(Box<dyn DurableStore>, Vec<(String, String)>), StorageError>) {
        let Some(conn) = self.conn.upgrade() else { return };
        if conn.is_closed() {
            return;
        }
        let (store, stored) = match opened {
            Ok((store, stored)) => (Rc::<dyn DurableStore>::from(store), stored),
            Err(error) => {
                *self.store.borrow_mut() = Store::Unavailable;
                self.emit(&PersistEvent::StorageFailed { key: None, error });
                self.connect_held.set(false);
                self.connect_wait.borrow_mut().take();
                conn.drive(|m| {
                    m.release_connect(None, conn.now());
                    m.release_calls(conn.now())
                });
                return;
            }
        };
        let (adopt, stored) = self.take_sessions(&store, stored);
        let user = settled_user(&conn);
        let RestorePlan { ready, waiting, failed, discarded, skipped } = RestorePlan::new(stored, user.as_deref());
        let early = match std::mem::replace(&mut *self.store.borrow_mut(), Store::Open(store.clone())) {
            Store::Opening(ids) => ids,
            _ => Vec::new(),
        };
        for (key, e) in skipped {
            self.emit(&PersistEvent::Skipped { key, reason: e.to_string() });
        }
        for (key, e) in discarded {
            store.delete(&key);
            self.emit(&PersistEvent::Discarded { key, reason: e.to_string() });
        }
        // The calls this page made while the store opened.
        for id in early {
            self.write(&conn, id, false);
        }
        for (key, r) in failed {
            store.delete(&key);
            self.emit(&PersistEvent::Settled { key, name: r.name, outcome: Err(MethodError::InvocationFailed) });
        }
        let count = ready.len();
        self.list_earlier(&ready, false);
        self.list_earlier(&waiting, true);
        *self.waiting.borrow_mut() = waiting;
        // Taking a session over, the earlier pages' calls keep their ids
        // (that session's server may know them: the dead page's own, and
        // those it had taken from pages before it; no two pages share an
        // id); the handshake may then begin.
        let held = self.connect_held.replace(false);
        self.connect_wait.borrow_mut().take();
        let adopting = held && adopt.is_some();
        self.restore_of(&conn, ready, adopting);
        conn.drive(|m| {
            if held {
                m.release_connect(adopt, conn.now());
            }
            m.release_calls(conn.now())
        });
        // The session asked for is this page's to hand on from now on (the
        // earlier page's record is gone): kept before the handshake, so a
        // page that dies before it still leaves it.
        if adopting {
            self.write_session();
        }
        let waiting = self.waiting.borrow().len();
        self.emit(&PersistEvent::Restored { count, waiting });
        if waiting > 0 {
            self.watch_user(&conn);
        }
    }

    /// Puts records back in the outbox (ahead of this page's calls while
    /// they are held; behind them afterwards).
    /// `adopted`: into a session taken over (the records keep their ids).
    fn restore_of(&self, conn: &Connection, records: Vec<(String, CallRecord)>, adopted: bool) {
        // Never into a closed machine (app code may have closed it since the
        // store was read): the records stay for the next connection.
        if records.is_empty() || conn.is_closed() {
            return;
        }
        let now = conn.now();
        let (keys, records): (Vec<String>, Vec<(CallRecord, bool)>) = records.into_iter().map(|(key, r)| (key, (r, adopted))).unzip();
        let kept: Vec<CallRecord> = records.iter().map(|(r, _)| r.clone()).collect();
        let ids = conn.with_machine_mut(|m| m.restore_calls_of(records, now));
        // A call that goes out under another id than its record's: the
        // record says so (a page taking this one's session over must send
        // it with the id that session knows it by).
        if let Some(store) = self.open_store() {
            for ((key, mut record), (_, id)) in keys.iter().zip(kept).zip(&ids) {
                if record.id != *id {
                    record.id = *id;
                    let (this, k) = (self.me.clone(), key.clone());
                    store.put(
                        key,
                        &record.to_text(),
                        Box::new(move |kept| {
                            if let (Err(error), Some(this)) = (kept, this.upgrade()) {
                                this.emit(&PersistEvent::StorageFailed { key: Some(k), error });
                            }
                        }),
                    );
                }
            }
        }
        self.edit_calls(|list| {
            for (key, (_, call)) in keys.into_iter().zip(ids) {
                if let Some(c) = list.iter_mut().find(|c| c.key == key) {
                    c.id = Some(call);
                    c.waiting_for_user = false;
                }
                self.restored.borrow_mut().insert(call, key);
            }
        });
        conn.drive(|_| ());
    }

    /// This page's session record's key.
    fn session_key(&self) -> String {
        format!("{}-{SESSION_KEY}", self.page)
    }

    /// Takes the earlier pages' session records out of `stored`: the
    /// newest readable one is returned, to be resumed; every one is removed
    /// (a session is taken over once, or never).
    fn take_sessions(&self, store: &Rc<dyn DurableStore>, stored: Vec<(String, String)>) -> (Option<SessionRecord>, Vec<(String, String)>) {
        let suffix = format!("-{SESSION_KEY}");
        let (sessions, calls): (Vec<(String, String)>, Vec<(String, String)>) = stored.into_iter().partition(|(k, _)| k.ends_with(&suffix));
        let mut newest: Option<SessionRecord> = None;
        for (key, text) in sessions {
            store.delete(&key);
            let Ok(record) = SessionRecord::from_text(&text) else { continue };
            if newest.as_ref().is_none_or(|n| record.at > n.at) {
                newest = Some(record);
            }
        }
        (newest.filter(|_| self.sessions), calls)
    }

    /// Keeps the session for the next page now (or forgets it, when there
    /// is none a next page could resume).
    fn write_session(&self) {
        self.session_pending.set(false);
        let (Some(conn), Some(store)) = (self.conn.upgrade(), self.open_store()) else { return };
        if !self.sessions || conn.is_closed() {
            return;
        }
        match conn.with_machine(|m| m.session_record()) {
            Some(mut record) => {
                record.at = conn.now();
                store.put(&self.session_key(), &record.to_text(), Box::new(|_| ()));
            }
            None => store.delete(&self.session_key()),
        }
    }

    /// Keeps the session's count of received messages, a second late at most.
    fn session_later(&self) {
        if !self.sessions || self.session_pending.get() {
            return;
        }
        let Some(conn) = self.conn.upgrade() else { return };
        let this = self.me.clone();
        let timer = conn.host().timer(
            SESSION_LAG_MS,
            Box::new(move || {
                if let Some(this) = this.upgrade() {
                    this.write_session();
                }
            }),
        );
        self.session_pending.set(true);
        *self.session_due.borrow_mut() = Some(timer);
    }

    fn list_earlier(&self, records: &[(String, CallRecord)], waiting: bool) {
        if records.is_empty() {
            return;
        }
        self.edit_calls(|list| {
            list.extend(records.iter().map(|(key, r)| PersistedCall {
                key: key.clone(),
                id: None,
                name: r.name.clone(),
                user: r.user.clone(),
                from_earlier_page: true,
                waiting_for_user: waiting,
                durable: true,
            }))
        });
    }

    /// While calls wait for their user: sends them when that user is logged
    /// in, and says so when another one is.
    fn watch_user(self: &Rc<Self>, conn: &Connection) {
        let accounts = conn.accounts();
        let weak = Rc::downgrade(self);
        let check = move || {
            if let Some(persist) = weak.upgrade() {
                persist.check_waiting();
            }
        };
        let again = check.clone();
        let handles =
            vec![accounts.user_id_observable().subscribe(move |_| check()), accounts.logging_in_observable().subscribe(move |_| again())];
        *self.user_watch.borrow_mut() = handles;
        self.check_waiting();
    }

    fn check_waiting(&self) {
        let Some(conn) = self.conn.upgrade() else { return };
        let Some(user) = settled_user(&conn) else { return };
        let (ready, still): (Vec<(String, CallRecord)>, Vec<(String, CallRecord)>) =
            std::mem::take(&mut *self.waiting.borrow_mut()).into_iter().partition(|(_, r)| r.user.as_deref() == Some(user.as_str()));
        // One report per user whose calls wait.
        let mut reports: Vec<(String, Vec<String>)> = Vec::new();
        for (key, r) in &still {
            let owner = r.user.clone().unwrap_or_default();
            match reports.iter_mut().find(|(u, _)| *u == owner) {
                Some((_, keys)) => keys.push(key.clone()),
                None => reports.push((owner, vec![key.clone()])),
            }
        }
        *self.waiting.borrow_mut() = still;
        // Into the session an earlier page had (if it still is): with their
        // ids, which that session's server may know.
        let took_over = conn.with_machine(|m| m.took_over());
        self.restore_of(&conn, ready, took_over);
        if self.waiting.borrow().is_empty() {
            self.user_watch.borrow_mut().clear();
        }
        for (user, keys) in reports {
            self.emit(&PersistEvent::WaitingForUser { user, keys });
        }
    }

    /// The key of this page's call `id`, or of the earlier page's call
    /// back in the outbox as `id`.
    fn key_of(&self, id: u64) -> String {
        match self.restored.borrow().get(&id) {
            Some(key) => key.clone(),
            None => format!("{}-{}", self.page, CallRecord::key(id)),
        }
    }

    /// A call entered the outbox: it is listed, and written once the store is open.
    fn queued(&self, id: u64) {
        let Some(conn) = self.conn.upgrade() else { return };
        let Some(name) = conn.with_machine(|m| m.call_record(id).map(|r| r.name)) else { return };
        let user = crate::accounts::existing(&conn).and_then(|a| a.user_id());
        let key = self.key_of(id);
        self.edit_calls(|list| {
            list.push(PersistedCall { key, id: Some(id), name, user, from_earlier_page: false, waiting_for_user: false, durable: false })
        });
        let opening = match &mut *self.store.borrow_mut() {
            Store::Opening(ids) => {
                ids.push(id);
                true
            }
            _ => false,
        };
        if !opening {
            self.write(&conn, id, false);
        }
    }

    /// Writes call `id`'s record (if the call is still in the outbox);
    /// `sent`: a `noRetry` call went out.
    fn write(&self, conn: &Connection, id: u64, sent: bool) {
        let Some(mut record) = conn.with_machine(|m| m.call_record(id)) else { return };
        let key = self.key_of(id);
        record.user = self.calls.with(|c| c.iter().find(|c| c.key == key).and_then(|c| c.user.clone()));
        record.at = conn.now();
        record.sent = sent;
        let Some(store) = self.open_store() else { return };
        let this = self.me.clone();
        store.put(
            &key.clone(),
            &record.to_text(),
            Box::new(move |kept| {
                let Some(this) = this.upgrade() else { return };
                match kept {
                    Ok(()) => this.mark_durable(&key),
                    Err(error) => this.emit(&PersistEvent::StorageFailed { key: Some(key), error }),
                }
            }),
        );
    }

    fn mark_durable(&self, key: &str) {
        if self.calls.with(|c| c.iter().any(|c| c.key == key && !c.durable)) {
            self.edit_calls(|list| list.iter_mut().filter(|c| c.key == key).for_each(|c| c.durable = true));
        }
    }

    /// The server has run call `id`, or it failed: its record goes.
    fn forget(&self, id: u64) {
        let key = self.key_of(id);
        // Only a call this outbox keeps (a transient one was never written).
        if !self.restored.borrow().contains_key(&id) && !self.calls.with(|c| c.iter().any(|c| c.key == key)) {
            return;
        }
        let store = match &mut *self.store.borrow_mut() {
            Store::Open(store) => store.clone(),
            Store::Opening(ids) => {
                ids.retain(|i| *i != id);
                return;
            }
            Store::Unavailable => return,
        };
        store.delete(&key);
    }

    fn remove_listed(&self, key: &str) {
        if self.calls.with(|c| c.iter().any(|c| c.key == key)) {
            self.edit_calls(|list| list.retain(|c| c.key != key));
        }
    }

    /// Cancels the kept call of `key` if it has not been sent: a call in
    /// the outbox (this page's or an earlier one's), or one waiting for its
    /// user.
    fn cancel(&self, conn: &Connection, key: &str) -> bool {
        let waiting = {
            let mut w = self.waiting.borrow_mut();
            let before = w.len();
            w.retain(|(k, _)| k != key);
            w.len() != before
        };
        if waiting {
            if let Some(store) = self.open_store() {
                store.delete(key);
            }
            self.remove_listed(key);
            return true;
        }
        match self.calls.with(|c| c.iter().find(|c| c.key == key).and_then(|c| c.id)) {
            Some(id) => conn.cancel_call(id),
            None => false,
        }
    }
}

/// A connection's durable outbox: what it keeps, its events, cancelling.
/// Cheap to clone.
#[derive(Clone)]
pub struct PersistedCalls {
    conn: WeakConnection,
    inner: Rc<Persist>,
}

impl std::fmt::Debug for PersistedCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistedCalls").field("calls", &self.list()).finish()
    }
}

impl PersistedCalls {
    /// The calls kept now, oldest first.
    pub fn list(&self) -> Vec<PersistedCall> {
        self.inner.calls.get()
    }

    /// The list as an [`Observable`] (its length is "N changes waiting").
    pub fn observable(&self) -> &Observable<Vec<PersistedCall>> {
        &self.inner.calls
    }

    /// Calls `f` with every [`PersistEvent`] while the handle lives.
    pub fn on_event(&self, f: impl Fn(&PersistEvent) + 'static) -> ListenerHandle {
        self.inner.events.add(Rc::new(f))
    }

    /// Cancels the kept call of `key` ([`PersistedCall::key`]) if it has
    /// not been sent: it is forgotten (a call of this page fails with
    /// `cancelled`; an earlier page's in the outbox settles as `cancelled`;
    /// one waiting for its user goes). Returns whether it was.
    pub fn cancel(&self, key: &str) -> bool {
        match self.conn.upgrade() {
            Some(conn) => self.inner.cancel(&conn, key),
            None => false,
        }
    }
}

impl Connection {
    /// The durable outbox, when the connection was made with
    /// [`Options::persist`](crate::Options::persist).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ddp_live::Error> {
    /// use ddp_live::{connect, Options, PersistEvent};
    /// let conn = connect("wss://app.example.com", Options { persist: Some("todos".into()), ..Options::default() })?;
    /// let kept = conn.persisted_calls().expect("made with persist");
    /// // How the calls an earlier page left end (their futures went with it).
    /// let _handle = kept.on_event(|e| match e {
    ///     PersistEvent::Settled { name, outcome, .. } => println!("{name}: {outcome:?}"),
    ///     PersistEvent::StorageFailed { error, .. } => eprintln!("not kept across reloads: {error}"),
    ///     _ => {}
    /// });
    /// // "3 changes waiting", and forgetting one not sent yet.
    /// let waiting = kept.list();
    /// if let Some(first) = waiting.first() {
    ///     kept.cancel(&first.key);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn persisted_calls(&self) -> Option<PersistedCalls> {
        Some(PersistedCalls { conn: self.downgrade(), inner: self.find_plugin::<Persist>()? })
    }
}
