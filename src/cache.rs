//! The durable cache of documents ([`Options::persist`](crate::Options::persist)):
//! a reload shows the last known documents at once, offline too, marked
//! stale until the subscriptions are ready again.
//!
//! A plug-in of the driver, beside the durable outbox and independent of
//! it (its own store: a failing cache never touches a call). It keeps the
//! server's documents (stub writes left out) in a durable store of the host
//! (IndexedDB in the browser, one database per store name and server URL,
//! shared by the pages), one record per document under a key scoped to the
//! user they were received as ([`crate::protocol::cache`]).
//!
//! - **Writing.** Changed documents are collected and written together,
//!   one transaction per batch ([`FLUSH_MS`] after the first change, and
//!   when the connection is closed), bounded ([`cache::MAX_DOCS`],
//!   [`cache::MAX_BYTES`]). Nothing is written while a login or logout is
//!   under way; once it settles as another user than the one the records
//!   are for, the records of the user who went are removed, and the new
//!   user's are written afresh from the documents held now.
//! - **Reading.** At start (once the app's code that made the connection
//!   has run, so a login restored from storage counts) the records of the
//!   user logged in (or restored), or of nobody, are read and taken as the
//!   documents of an earlier session ([`Machine::seed`](crate::protocol::machine::Machine::seed)):
//!   they show at once, and [`Connection::stale`] is true. The first
//!   session is held until every subscription is ready (those made while
//!   it holds too); then only real differences apply, and the documents
//!   are no longer stale. A cached document that no subscription ready by
//!   then sent goes.
//! - **Failures** are [`PersistEvent::CacheFailed`]: the documents are not
//!   kept, nothing else changes. Records of a newer client, or damaged, are
//!   removed ([`PersistEvent::Skipped`], [`PersistEvent::Discarded`]): a
//!   cache is only a copy.

use crate::connection::{Connection, Plugin, WeakConnection};
use crate::host::store::{Batch, DurableStore, StorageError};
use crate::host::Guard;
use crate::protocol::cache::{self, Bound, CacheRead};
use crate::protocol::hash::FastMap;
use crate::protocol::machine::Completion;
use crate::reactive::Registry;
use crate::PersistEvent;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// How long changes are collected before they are written (ms).
pub const FLUSH_MS: u32 = 200;

enum Store {
    Opening,
    Open(Rc<dyn DurableStore>),
    Unavailable,
}

/// The durable cache of one connection.
pub(crate) struct Cache {
    conn: WeakConnection,
    me: Weak<Cache>,
    name: String,
    store: RefCell<Store>,
    /// The user whose records the store holds (`None` inside: nobody), once read.
    user: RefCell<Option<Option<String>>>,
    bound: RefCell<Bound>,
    /// Changed documents not written yet: their record, `None` when gone.
    pending: RefCell<FastMap<(String, String), Option<String>>>,
    /// Documents a stub's version shows over: the server's changes to them
    /// make no visible change (none is reported), so their server version
    /// is read again when a call ends.
    stubbed: RefCell<Vec<(String, String)>>,
    timer: RefCell<Option<Guard>>,
    /// Taking the cached documents: their changes are not written back.
    seeding: Cell<bool>,
    full_reported: Cell<bool>,
    events: Rc<Registry<dyn Fn(&PersistEvent)>>,
}

impl Plugin for Cache {
    fn completion(&self, done: &Completion) {
        match done {
            Completion::Data(change) if !self.seeding.get() => {
                let Some(conn) = self.conn.upgrade() else { return };
                let (collection, id) = (change.collection(), change.id());
                let (record, stubbed) = conn
                    .with_machine(|m| (m.store().server_doc_ref(collection, id).map(cache::record), m.store().shadowed(collection, id)));
                let key = (collection.to_owned(), id.to_owned());
                if stubbed && !self.stubbed.borrow().contains(&key) {
                    self.stubbed.borrow_mut().push(key.clone());
                }
                self.pending.borrow_mut().insert(key, record);
                self.schedule(&conn);
            }
            Completion::SubReady { .. } | Completion::HoldEnded => {
                if let Some(conn) = self.conn.upgrade() {
                    self.unstubbed(&conn);
                }
            }
            Completion::MethodDone { .. } => {
                let Some(conn) = self.conn.upgrade() else { return };
                self.unstubbed(&conn);
                if self.user.borrow().is_none() {
                    return;
                }
                // A login or logout ended: the user may be another.
                {
                    // Another user now: the earlier one's documents go at
                    // once, not after the batch delay (the page may close).
                    let changed = settled_user(&conn).is_some_and(|u| self.user.borrow().as_ref() != Some(&u));
                    if changed {
                        self.timer.borrow_mut().take();
                        self.flush(&conn);
                    } else {
                        self.schedule(&conn);
                    }
                }
            }
            _ => {}
        }
    }

    /// What is pending is written now; the store goes with the connection.
    fn closed(&self) {
        if let Some(conn) = self.conn.upgrade() {
            self.flush(&conn);
        }
        self.timer.borrow_mut().take();
        let store = std::mem::replace(&mut *self.store.borrow_mut(), Store::Unavailable);
        drop(store);
    }
}

/// The user logged in, if settled (`None` inside: nobody); `None` while a
/// login or logout is under way.
fn settled_user(conn: &Connection) -> Option<Option<String>> {
    match crate::accounts::existing(conn) {
        Some(a) if a.logging_in() => None,
        Some(a) => Some(a.user_id()),
        None => Some(None),
    }
}

/// Turns on the durable cache of `conn`, kept in store `name`, telling
/// `events` what happens to it.
pub(crate) fn install(conn: &Connection, name: &str, events: Rc<Registry<dyn Fn(&PersistEvent)>>) {
    let plugin = conn.plugin(|conn| {
        Rc::new_cyclic(|me| Cache {
            conn: conn.downgrade(),
            me: me.clone(),
            name: format!("ddp-live-cache/{name}/{}", conn.url()),
            store: RefCell::new(Store::Opening),
            user: RefCell::new(None),
            bound: RefCell::default(),
            pending: RefCell::default(),
            stubbed: RefCell::default(),
            timer: RefCell::new(None),
            seeding: Cell::new(false),
            full_reported: Cell::new(false),
            events,
        })
    });
    // The first session waits for the cached documents.
    conn.with_machine_mut(|m| m.expect_seed());
    let weak = Rc::downgrade(&plugin);
    // After the code that made the connection: a login it restores from
    // storage tells whose documents to show.
    conn.host().later(Box::new(move || {
        if let Some(cache) = weak.upgrade() {
            cache.open();
        }
    }));
}

impl Cache {
    /// The stubs' documents whose calls all ended (or whose hold after a
    /// reconnect did): their server version now, which may equal the
    /// stub's (no change was reported).
    fn unstubbed(&self, conn: &Connection) {
        if self.stubbed.borrow().is_empty() {
            return;
        }
        let done: Vec<(String, String)> = {
            let mut all = self.stubbed.borrow_mut();
            let (still, done) = conn.with_machine(|m| all.drain(..).partition(|(c, id)| m.store().shadowed(c, id)));
            *all = still;
            done
        };
        if done.is_empty() {
            return;
        }
        for (c, id) in done {
            let record = conn.with_machine(|m| m.store().server_doc_ref(&c, &id).map(cache::record));
            self.pending.borrow_mut().insert((c, id), record);
        }
        self.schedule(conn);
    }

    fn emit(&self, event: &PersistEvent) {
        for l in self.events.snapshot() {
            l(event);
        }
    }

    fn open_store(&self) -> Option<Rc<dyn DurableStore>> {
        match &*self.store.borrow() {
            Store::Open(store) => Some(store.clone()),
            _ => None,
        }
    }

    /// Reads the records of the user logged in (or restored from storage).
    fn open(&self) {
        let Some(conn) = self.conn.upgrade() else { return };
        if conn.is_closed() {
            return;
        }
        let user = crate::accounts::existing(&conn).and_then(|a| a.user_id());
        let Some(scope) = cache::scope(user.as_deref()) else {
            *self.store.borrow_mut() = Store::Unavailable;
            conn.drive(|m| m.seed_none());
            return;
        };
        let this = self.me.clone();
        let prefix = scope.clone();
        conn.host().open_store(
            &self.name,
            crate::host::store::Access::Shared(&prefix),
            Box::new(move |opened| {
                if let Some(cache) = this.upgrade() {
                    cache.opened(&scope, user, opened);
                }
            }),
        );
    }

    #[allow(clippy::type_complexity)]
    fn opened(&self, scope: &str, user: Option<String>, opened: Result<(Box<dyn DurableStore>, Vec<(String, String)>), StorageError>) {
        let Some(conn) = self.conn.upgrade() else { return };
        if conn.is_closed() {
            return;
        }
        let (store, records) = match opened {
            Ok((store, records)) => (Rc::<dyn DurableStore>::from(store), records),
            Err(error) => {
                *self.store.borrow_mut() = Store::Unavailable;
                self.pending.borrow_mut().clear();
                conn.drive(|m| m.seed_none());
                self.emit(&PersistEvent::CacheFailed { error });
                return;
            }
        };
        *self.store.borrow_mut() = Store::Open(store.clone());
        let CacheRead { docs, kept, discarded, skipped } = CacheRead::new(scope, records);
        let mut batch = Batch::default();
        batch.delete.extend(discarded.iter().chain(&skipped).map(|(k, _)| k.clone()));
        for (key, e) in skipped {
            self.emit(&PersistEvent::Skipped { key, reason: e.to_string() });
        }
        for (key, e) in discarded {
            self.emit(&PersistEvent::Discarded { key, reason: e.to_string() });
        }
        if !batch.is_empty() {
            self.write(&store, batch);
        }
        {
            let mut bound = self.bound.borrow_mut();
            for (key, size) in kept {
                bound.put(&key, size);
            }
        }
        *self.user.borrow_mut() = Some(user.clone());
        // Shown only to the user they were read for: one who logged in as
        // someone else meanwhile sees none of them.
        let same_user = crate::accounts::existing(&conn).and_then(|a| a.user_id()) == user;
        let count = docs.len();
        let shown = if count > 0 && same_user {
            self.seeding.set(true);
            let taken = conn.drive(|m| m.seed_docs(docs));
            self.seeding.set(false);
            if taken {
                count
            } else {
                0
            }
        } else {
            0
        };
        if shown == 0 {
            conn.drive(|m| m.seed_none());
        }
        self.emit(&PersistEvent::CacheRestored { documents: shown, user });
        // Changes that came while the store opened.
        if !self.pending.borrow().is_empty() {
            self.schedule(&conn);
        }
    }

    /// Writes what is pending in [`FLUSH_MS`], unless a write is planned.
    fn schedule(&self, conn: &Connection) {
        if self.timer.borrow().is_some() || !matches!(*self.store.borrow(), Store::Open(_)) {
            if matches!(*self.store.borrow(), Store::Unavailable) {
                self.pending.borrow_mut().clear();
            }
            return;
        }
        let weak = self.me.clone();
        let guard = conn.host().timer(
            FLUSH_MS,
            Box::new(move || {
                let Some(cache) = weak.upgrade() else { return };
                cache.timer.borrow_mut().take();
                if let Some(conn) = cache.conn.upgrade() {
                    cache.flush(&conn);
                }
            }),
        );
        *self.timer.borrow_mut() = Some(guard);
    }

    /// Writes the pending changes in one batch, for the user logged in
    /// now; while a login or logout is under way, waits.
    fn flush(&self, conn: &Connection) {
        let Some(store) = self.open_store() else { return };
        let Some(written_for) = self.user.borrow().clone() else { return };
        let Some(user) = settled_user(conn) else {
            if !self.pending.borrow().is_empty() && !conn.is_closed() {
                self.schedule(conn);
            }
            return;
        };
        let mut batch = Batch::default();
        let mut bound = self.bound.borrow_mut();
        let mut full = false;
        if user != written_for {
            // Another user: the one who went keeps nothing here, and the
            // new one's records are written afresh from what is held now.
            batch.clear.extend(cache::scope(written_for.as_deref()));
            bound.clear();
            self.pending.borrow_mut().clear();
            *self.user.borrow_mut() = Some(user.clone());
            if let Some(scope) = cache::scope(user.as_deref()) {
                batch.clear.push(scope.clone());
                conn.with_machine(|m| {
                    for (collection, id, doc) in m.store().server_docs() {
                        let Some(key) = cache::key(&scope, collection, id) else { continue };
                        let record = cache::record(doc);
                        if bound.put(&key, key.len() + record.len()) {
                            batch.put.push((key, record));
                        } else {
                            full = true;
                        }
                    }
                });
            }
        } else {
            let Some(scope) = cache::scope(user.as_deref()) else { return };
            for ((collection, id), record) in self.pending.borrow_mut().drain() {
                let Some(key) = cache::key(&scope, &collection, &id) else { continue };
                match record {
                    Some(record) => {
                        if bound.put(&key, key.len() + record.len()) {
                            batch.put.push((key, record));
                        } else {
                            // Not kept: an older copy must not stay either.
                            full = true;
                            if bound.delete(&key) {
                                batch.delete.push(key);
                            }
                        }
                    }
                    None => {
                        if bound.delete(&key) {
                            batch.delete.push(key);
                        }
                    }
                }
            }
        }
        let (documents, bytes) = bound.len();
        drop(bound);
        if full && !self.full_reported.replace(true) {
            self.emit(&PersistEvent::CacheFull { documents, bytes });
        }
        if !batch.is_empty() {
            self.write(&store, batch);
        }
    }

    fn write(&self, store: &Rc<dyn DurableStore>, batch: Batch) {
        let this = self.me.clone();
        store.batch(
            batch,
            Box::new(move |kept| {
                let Some(this) = this.upgrade() else { return };
                match kept {
                    Ok(()) => {
                        let documents = this.bound.borrow().len().0;
                        this.emit(&PersistEvent::CacheWritten { documents });
                    }
                    Err(error) => this.emit(&PersistEvent::CacheFailed { error }),
                }
            }),
        );
    }
}
