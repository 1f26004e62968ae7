//! Subscriptions and data messages, with Meteor's reconnect rules and two
//! improvements.
//!
//! - `sub` ids are random 17-character ids, re-sent unchanged after every
//!   reconnect (the server ignores a duplicate id, so re-sending is safe).
//! - `stop()` is immediate for the app (its stop event fires at once). While
//!   offline it is remembered: the subscription is never re-sent, and if
//!   the server resumes the session the `unsub` goes out then (Meteor loses
//!   such an unsub).
//! - After a reconnect with a **new** session, data is held until every
//!   subscription that was ready is ready again and every re-sent method has
//!   its `updated`; then the held data replaces the old in one step,
//!   reporting only real differences: a document never disappears and comes
//!   back, documents the server did not send again go. A subscription that
//!   was ready stays ready throughout.
//! - With a **resumed** session nothing is held: the server only replays
//!   what was missed.
//!
//! # What is re-sent after a reconnect, by message kind
//!
//! `receivedCount` tells a resuming server what the client received; nothing
//! tells the client what the server received. A frame written just before a
//! drop may have died with the socket, so after a **resumed** `connected`
//! the client re-sends every message whose answer has not arrived, and
//! relies on the server to ignore what it already has:
//!
//! | client message | after a resumed session | after a new session |
//! |---|---|---|
//! | `connect` | sent first, with `session` + `receivedCount` | sent first |
//! | `sub` | re-sent while its `ready` (or `nosub`) has not arrived; a server ignores a duplicate sub id (Meteor 3.5 and ours), and a `ready` that arrived proves the server has it, so ready ones are not re-sent | every live subscription is re-sent; data is held until the ready ones are ready again |
//! | `unsub` | re-sent while its `nosub` has not arrived (a server answers an unknown id with another `nosub`, which is ignored); an `unsub` made offline goes out (only for a subscription written in this session) | nothing: a new session has no subscriptions |
//! | `method` (and so login, logout and the rooms' `join`/`send`/`leave`) | every call without a `result` is re-sent with the same id; the server runs an id once per session ([`methods`](super::methods)) | re-sent with the same id after the `onReconnect` hooks; `noRetry` calls fail with `invocation-failed` |
//! | `ping` | not re-sent: the heartbeat starts over on the new socket | the same |
//! | `pong` | not re-sent: the server's ping died with its socket | the same |
//! | `disconnect` | only written by `disconnect()`/`close()`, which end the session: there is no next one | the same |
//!
//! The rooms inbox is a subscription (`rooms.inbox`), so the `sub` rule
//! covers it.
//!
//! A server remembers no ended subscription: a `sub` re-sent for one the
//! server ended (its `nosub` lost in the drop) runs again. Its `ready` then
//! arrives for an id the client no longer has, and the client sends `unsub`
//! for it, so its documents go.

use super::{Completion, Event, Machine, Output, Phase};
use crate::protocol::hash::FastSet;
use crate::protocol::message::{ClientMessage, ServerMessage};
use crate::protocol::random::ID_ALPHABET;
use crate::protocol::store::Store;
use serde_json::Value;

/// Whether this build can seed the store ([`Machine::seed`]: a server
/// render, feature `leptos`; a durable cache, feature `persist` in the
/// browser, always natively). The npm package cannot, so the code of the
/// seeded sessions' hold is left out of it.
const SEEDS: bool = cfg!(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")));

/// A flag of the seeded sessions: a `bool` where this build can seed,
/// nothing (always false) in the npm package.
#[derive(Debug, Default, Clone, Copy)]
struct Flag(#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] bool);

impl Flag {
    fn get(self) -> bool {
        #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
        return self.0;
        #[cfg(not(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32"))))]
        false
    }

    fn set(&mut self, on: bool) {
        #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
        {
            self.0 = on;
        }
        let _ = on;
    }
}

#[derive(Debug)]
pub(super) struct Sub {
    id: String,
    name: String,
    params: Vec<Value>,
    ready: bool,
    /// Sent in the current session (and not due to be sent again).
    sent: bool,
    /// Written at least once in the current session: the server may have it.
    known: bool,
    /// The length of its `sub` frame when last sent.
    frame: usize,
}

/// Data held back while a new session catches up.
#[derive(Debug, Default)]
pub(super) struct Quiesce {
    held: Vec<ServerMessage>,
    subs: FastSet<String>,
    methods: FastSet<String>,
    /// Subscriptions whose `ready` arrived while holding (announced after).
    newly_ready: Vec<String>,
    /// Calls that ended while holding: their stubs' writes give way to the
    /// server's version when the held data is applied, not before (else a
    /// document a stub wrote would vanish until then).
    pub(super) released: Vec<u64>,
    /// The first session after a seed (a server render, a durable cache):
    /// it waits for every subscription, those made while it holds too, and
    /// ends the documents' staleness.
    first: Flag,
}

#[derive(Debug, Default)]
pub(super) struct Subs {
    list: Vec<Sub>,
    /// Stopped, and the server may not know yet: stopped while the link was
    /// down, or an `unsub` written whose `nosub` has not arrived. Sent (again)
    /// if the session resumes; forgotten with a new session.
    unsent_unsubs: Vec<String>,
    /// `unsub`s written in this session whose `nosub` has not arrived.
    unanswered_unsubs: Vec<String>,
    pub(super) store: Store,
    pub(super) quiesce: Option<Quiesce>,
    /// The store holds (or is about to hold: [`Machine::expect_seed`])
    /// documents of an earlier session ([`Machine::seed`]): the sessions
    /// are held back until one has every subscription ready.
    seeded: bool,
    /// The store holds seeded documents the server has not confirmed yet.
    stale: Flag,
    /// A seed was announced ([`Machine::expect_seed`]) and has not come:
    /// the first session holds its data until it does.
    awaiting_seed: Flag,
    /// An earlier page's subscriptions, stopped in the session this page
    /// took over ([`Machine::release_connect`]), whose `nosub` has not
    /// come: until then every document message is theirs, and dropped.
    adopted: Vec<String>,
}

impl Machine {
    /// Subscribes to publication `name`; returns the subscription id. Sent
    /// at once when connected, else when the link is back. `params` must
    /// already be EJSON-encoded.
    pub fn subscribe(&mut self, name: &str, params: Vec<Value>) -> String {
        let id: String = (0..17).map(|_| ID_ALPHABET[(((self.random)() * 55.0) as usize).min(54)] as char).collect();
        self.subs.list.push(Sub { id: id.clone(), name: name.to_owned(), params, ready: false, sent: false, known: false, frame: 0 });
        // The first session after a seed also waits for the subscriptions
        // made while it holds (an app subscribes as it renders).
        if let Some(q) = self.subs.quiesce.as_mut().filter(|q| q.first.get()) {
            q.subs.insert(id.clone());
        }
        self.send_subs();
        id
    }

    /// Stops a subscription. Its stop event fires at once.
    pub fn unsubscribe(&mut self, id: &str) {
        let Some(pos) = self.subs.list.iter().position(|s| s.id == id) else { return };
        let sub = self.subs.list.remove(pos);
        let mut unanswered = sub.sent && !sub.ready;
        if let Some(q) = &mut self.subs.quiesce {
            unanswered |= q.subs.remove(id) && sub.sent;
        }
        if unanswered {
            self.methods.abandoned = self.methods.abandoned.max(sub.frame);
        }
        if self.phase == Phase::Connected && sub.sent {
            self.send(ClientMessage::Unsub { id: sub.id.clone() });
            self.subs.unanswered_unsubs.push(sub.id.clone());
        } else if sub.known {
            self.subs.unsent_unsubs.push(sub.id.clone());
        }
        self.complete(Completion::SubStopped { id: sub.id, error: None });
        self.maybe_flush();
    }

    /// Whether subscription `id` is ready.
    pub fn sub_ready(&self, id: &str) -> Option<bool> {
        self.subs.list.iter().find(|s| s.id == id).map(|s| s.ready)
    }

    /// The local documents.
    pub fn store(&self) -> &Store {
        &self.subs.store
    }

    /// Takes `docs` (collection, id, fields as EJSON wire values) as the
    /// documents of a previous session, and subscription `ready_sub` (when
    /// given) as ready: what a page rendered on a server carries, or what a
    /// durable cache kept, so the client's first render shows it with no
    /// request. The documents are stale ([`Completion::Stale`]) until the
    /// server confirmed them.
    ///
    /// The sessions are then held back as after a reconnect (see the module
    /// doc), but waiting for **every** subscription: those live when the
    /// session begins and those made while it holds (an app subscribes as
    /// it renders), and for the calls outstanding when it began (a resumed
    /// login). Once all are ready, the documents the server sent replace
    /// these in one step, reporting only real differences: an unchanged
    /// document is not touched, a changed one changes once, one that no
    /// ready subscription sent goes (so a seeded document no subscription
    /// claims does not outlive the hold; with no subscription at all when
    /// the session begins, they go at once).
    ///
    /// Taken before the first session, or while it holds (a cache read
    /// after the socket opened, [`Machine::expect_seed`]); refused (returns
    /// false, nothing done) once data was applied: nothing would reconcile
    /// a late seed.
    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    pub fn seed(&mut self, docs: Vec<(String, String, crate::protocol::store::Fields)>, ready_sub: Option<&str>) -> bool {
        self.seed_any(docs, ready_sub)
    }

    /// [`Machine::seed`] with the documents' fields as text (a durable
    /// cache's: nothing decoded). A document the store already holds (a
    /// server render's, newer) is left as it is.
    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    pub fn seed_docs(&mut self, docs: Vec<(String, String, crate::protocol::doc::Doc)>) -> bool {
        let store = &self.subs.store;
        let docs: Vec<_> = docs.into_iter().filter(|(c, id, _)| !store.has_server_doc(c, id)).collect();
        self.seed_any(docs, None)
    }

    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    fn seed_any<F: Into<crate::protocol::doc::Doc>>(&mut self, docs: Vec<(String, String, F)>, ready_sub: Option<&str>) -> bool {
        let first_hold = self.subs.quiesce.as_ref().is_some_and(|q| q.first.get());
        if !first_hold && (self.was_connected || self.phase == Phase::Connected) {
            return false;
        }
        let any = !docs.is_empty();
        for (collection, id, fields) in docs {
            if let Some(change) = self.subs.store.added(collection, id, fields) {
                self.complete(Completion::Data(change));
            }
        }
        let list = &mut self.subs.list;
        if let Some(sub) = ready_sub.and_then(|id| list.iter_mut().find(|s| s.id == id && !s.ready)) {
            sub.ready = true;
            let id = sub.id.clone();
            self.complete(Completion::SubReady { id });
        }
        self.subs.seeded = true;
        self.subs.awaiting_seed.set(false);
        if any && !self.subs.stale.get() {
            self.stale_now(true);
        }
        if first_hold {
            self.maybe_flush();
        }
        true
    }

    /// A seed is on its way (a durable cache being read): the first session
    /// is held as for a seed (see [`Machine::seed`]), and does not end
    /// before it came, so that one read after the socket opened still
    /// counts. [`Machine::seed_none`] if it brings nothing.
    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    pub fn expect_seed(&mut self) {
        if !self.was_connected && self.phase != Phase::Connected {
            self.subs.seeded = true;
            self.subs.awaiting_seed.set(true);
        }
    }

    /// The seed [`Machine::expect_seed`] announced brings nothing (an empty
    /// or unreadable cache): with nothing seeded, no session is held.
    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    pub fn seed_none(&mut self) {
        self.subs.awaiting_seed.set(false);
        if self.subs.stale.get() || !self.subs.store.is_empty() {
            self.maybe_flush();
            return;
        }
        self.subs.seeded = false;
        // Nothing to reconcile: what the first session holds applies now.
        if let Some(q) = self.subs.quiesce.as_mut().filter(|q| q.first.get()) {
            q.subs.clear();
            q.methods.clear();
        }
        self.maybe_flush();
    }

    /// Whether the store holds seeded documents the server has not
    /// confirmed yet (see [`Machine::seed`]).
    pub fn stale(&self) -> bool {
        self.subs.stale.get()
    }

    /// The store began (true) or ceased to hold unconfirmed seeded documents.
    #[cfg_attr(not(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32"))), allow(dead_code))]
    fn stale_now(&mut self, stale: bool) {
        self.subs.stale.set(stale);
        #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
        self.complete(Completion::Stale(stale));
    }

    /// The hold of a session after a seed (see [`Machine::seed`]): it also
    /// waits for the subscriptions not ready yet and the calls outstanding,
    /// and the store stays seeded until it ends.
    fn seeded_hold(&mut self) {
        self.subs.seeded = true;
        let calls: Vec<String> = self.outstanding_calls().map(|id| id.to_string()).collect();
        if let Some(q) = &mut self.subs.quiesce {
            q.first.set(true);
            q.subs.extend(self.subs.list.iter().map(|s| s.id.clone()));
            q.methods.extend(calls);
        }
    }

    /// Sends every subscription not yet sent in this session.
    pub(super) fn send_subs(&mut self) {
        if self.phase != Phase::Connected || self.methods_held() {
            return;
        }
        let Some(socket) = self.socket else { return };
        for id in std::mem::take(&mut self.subs.unsent_unsubs) {
            self.out.push_back(Output::Send { socket, text: ClientMessage::Unsub { id: id.clone() }.encode() });
            self.subs.unanswered_unsubs.push(id);
        }
        let mut changed = false;
        for s in self.subs.list.iter_mut().filter(|s| !s.sent) {
            changed |= !s.known;
            s.sent = true;
            s.known = true;
            let msg = ClientMessage::Sub { id: s.id.clone(), name: s.name.clone(), params: s.params.clone() };
            let text = msg.encode();
            s.frame = text.len();
            self.out.push_back(Output::Send { socket, text });
        }
        if super::ADOPTS && changed && self.config.adopt_sessions {
            self.complete(Completion::SessionChanged);
        }
    }

    /// Ends subscription `id` from this side of the wire (the server's
    /// `nosub`, or a refusal): it leaves the list, and its error, if any, is
    /// reported.
    fn end_sub(&mut self, id: String, error: Option<Value>) {
        let Some(pos) = self.subs.list.iter().position(|s| s.id == id) else { return };
        self.subs.list.remove(pos);
        if let Some(q) = &mut self.subs.quiesce {
            q.subs.remove(&id);
            q.newly_ready.retain(|x| *x != id);
        }
        if let Some(e) = &error {
            let failure = super::ProtocolError::SubscriptionFailed { id: id.clone(), error: e.clone() };
            self.emit(Event::Error(failure));
        }
        self.complete(Completion::SubStopped { id, error });
        self.maybe_flush();
    }

    /// The sent subscription not yet answered (not ready, or re-sent in a
    /// new session whose `ready` has not come) whose `sub` frame was
    /// longest: (frame length, its index in the list).
    pub(super) fn largest_unanswered_sub(&self) -> Option<(usize, usize)> {
        let waiting = |id: &String| self.subs.quiesce.as_ref().is_some_and(|q| q.subs.contains(id));
        let mut best: Option<(usize, usize)> = None;
        for (i, s) in self.subs.list.iter().enumerate() {
            if s.sent && (!s.ready || waiting(&s.id)) && best.is_none_or(|(len, _)| s.frame > len) {
                best = Some((s.frame, i));
            }
        }
        best
    }

    /// The server refused the subscription at `index` as too large (see
    /// `refuse_largest`): it ends with a Meteor.Error `message-too-big`.
    pub(super) fn refuse_sub(&mut self, index: usize) {
        let Some(id) = self.subs.list.get(index).map(|s| s.id.clone()) else { return };
        let error = crate::protocol::json::parse(
            r#"{"isClientSafe":true,"error":"message-too-big","reason":"The server refused the subscription's message as too large (WebSocket close 1009)","message":"The server refused the subscription's message as too large (WebSocket close 1009) [message-too-big]","errorType":"Meteor.Error"}"#,
        );
        self.end_sub(id, error.ok());
    }

    /// A `connected` arrived: plan the subscriptions' return.
    /// The ids of the subscriptions the server has or may have: sent, or
    /// stopped without its `nosub` yet.
    pub(super) fn server_sub_ids(&self) -> Vec<String> {
        let sent = self.subs.list.iter().filter(|s| s.sent || s.known).map(|s| s.id.clone());
        let stopping = self.subs.unsent_unsubs.iter().chain(&self.subs.unanswered_unsubs).cloned();
        sent.chain(stopping).collect()
    }

    /// A new session: nothing of an earlier page's is left to stop.
    pub(super) fn forget_adopted_subs(&mut self) {
        self.subs.adopted.clear();
    }

    /// An earlier page's session was taken over: its subscriptions stop
    /// (this page makes its own), and their documents are dropped until
    /// the server says each has stopped.
    pub(super) fn drop_adopted_subs(&mut self, subs: Vec<String>) {
        let Some(socket) = self.socket else { return };
        for id in &subs {
            self.out.push_back(Output::Send { socket, text: ClientMessage::Unsub { id: id.clone() }.encode() });
        }
        // Sent again if this session is resumed before their `nosub`s.
        self.subs.unanswered_unsubs.extend(subs.iter().cloned());
        self.subs.adopted = subs;
    }

    /// `fresh_data`: the server sends the documents anew (a new session, or
    /// an earlier page's taken over), as opposed to resuming this machine's.
    pub(super) fn subs_on_connected(&mut self, reconnect: bool, resent_methods: Vec<String>, fresh_data: bool) {
        if !fresh_data {
            // The server has what it read; what it may not have read goes
            // out again (see the table in the module doc).
            let unanswered = std::mem::take(&mut self.subs.unanswered_unsubs);
            self.subs.unsent_unsubs.extend(unanswered);
            let quiesce = self.subs.quiesce.as_ref();
            for s in &mut self.subs.list {
                if !s.ready || quiesce.is_some_and(|q| q.subs.contains(&s.id)) {
                    s.sent = false;
                }
            }
            self.send_subs();
            return;
        }
        self.subs.unsent_unsubs.clear();
        // (But the `unsub`s of an earlier page's subscriptions, just sent.)
        let adopted = &self.subs.adopted;
        self.subs.unanswered_unsubs.retain(|id| adopted.contains(id));
        for s in &mut self.subs.list {
            s.sent = false;
            s.known = false;
        }
        // A hold cut short by this new session still owes its released writes.
        let released = self.subs.quiesce.take().map(|q| q.released).unwrap_or_default();
        let first = SEEDS && self.subs.seeded;
        if reconnect || std::mem::take(&mut self.subs.seeded) {
            let subs = self.subs.list.iter().filter(|s| s.ready).map(|s| s.id.clone()).collect();
            let methods = resent_methods.into_iter().collect();
            self.subs.quiesce = Some(Quiesce { subs, methods, released, ..Quiesce::default() });
            if first {
                self.seeded_hold();
            }
        } else {
            for id in released {
                self.release_writes(id);
            }
        }
        self.send_subs();
        self.maybe_flush();
    }

    /// Call `id` ended: its stub's writes give way to the server's version,
    /// at once, or when a hold in progress is over.
    pub(super) fn release_writes(&mut self, id: u64) {
        if let Some(q) = &mut self.subs.quiesce {
            q.released.push(id);
            return;
        }
        for change in self.subs.store.method_done(id) {
            self.complete(Completion::Data(change));
        }
    }

    /// A method's `updated` arrived (for the hold after a reconnect).
    pub(super) fn subs_method_updated(&mut self, id: &str) {
        if let Some(q) = &mut self.subs.quiesce {
            if q.methods.remove(id) {
                self.maybe_flush();
            }
        }
    }

    /// A method given up on (failed, timed out) no longer holds data back.
    pub(super) fn subs_method_gone(&mut self, id: u64) {
        self.subs_method_updated(&id.to_string());
    }

    pub(super) fn handle_data(&mut self, message: ServerMessage) {
        if super::ADOPTS && !self.subs.adopted.is_empty() && self.adopted_data(&message) {
            return;
        }
        match message {
            ServerMessage::Ready { subs } => {
                for id in subs {
                    self.sub_ready_arrived(&id);
                }
                self.maybe_flush();
            }
            // (A nosub for a subscription we stopped ourselves does
            // nothing: its stop was already reported.)
            ServerMessage::NoSub { id, error } => {
                if let Some(i) = self.subs.unanswered_unsubs.iter().position(|x| *x == id) {
                    self.subs.unanswered_unsubs.swap_remove(i);
                }
                self.end_sub(id, error)
            }
            ServerMessage::Added { collection, id, fields } | ServerMessage::AddedBefore { collection, id, fields, .. }
                if self.config.stream_collections.contains(&collection) =>
            {
                self.emit(Event::Stream { collection, id, fields: fields.fields() });
            }
            ServerMessage::Changed { collection, .. } | ServerMessage::Removed { collection, .. }
                if self.config.stream_collections.contains(&collection) => {}
            data => {
                if let Some(q) = &mut self.subs.quiesce {
                    q.held.push(data);
                } else {
                    let mut store = std::mem::take(&mut self.subs.store);
                    apply(&mut store, data, &mut |c| {
                        self.out.push_back(match c {
                            Ok(c) => Output::Done(Completion::Data(c)),
                            Err(e) => Output::Event(Event::Error(e)),
                        })
                    });
                    self.subs.store = store;
                }
            }
        }
    }

    /// While an earlier page's subscriptions stop: whether `message` is
    /// theirs (dropped); see [`Stopping`](crate::protocol::durable::Stopping).
    fn adopted_data(&mut self, message: &ServerMessage) -> bool {
        use crate::protocol::durable::{while_stopping, Stopping};
        match while_stopping(&mut self.subs.adopted, message) {
            Stopping::Theirs => true,
            Stopping::Stopped(id) => {
                self.subs.unanswered_unsubs.retain(|x| *x != id);
                if self.subs.adopted.is_empty() && self.config.adopt_sessions {
                    self.complete(Completion::SessionChanged);
                }
                true
            }
            // (Nothing to re-send for a `nosub` that will not come.)
            Stopping::Over(missing) => {
                self.subs.unanswered_unsubs.retain(|id| !missing.contains(id));
                false
            }
            Stopping::Other => false,
        }
    }

    fn sub_ready_arrived(&mut self, id: &str) {
        let Some(sub) = self.subs.list.iter_mut().find(|s| s.id == id) else {
            // A subscription this client no longer has, and has not stopped:
            // the server ended it, its `nosub` was lost in a drop, and the
            // `sub` re-sent after the resumption ran it again. Stop it, so its
            // documents go.
            if !self.subs.unanswered_unsubs.iter().any(|x| x == id) {
                self.send(ClientMessage::Unsub { id: id.to_owned() });
                self.subs.unanswered_unsubs.push(id.to_owned());
            }
            return;
        };
        match &mut self.subs.quiesce {
            Some(q) => {
                // A seeded session's hold waits for subscriptions not ready
                // yet too; a reconnect's only for those that were ready.
                let waited = q.subs.remove(id);
                if (SEEDS || !waited) && !sub.ready {
                    q.newly_ready.push(id.to_owned());
                }
            }
            None => {
                if !sub.ready {
                    sub.ready = true;
                    self.complete(Completion::SubReady { id: id.to_owned() });
                }
            }
        }
    }

    /// Applies the held data in one step once nothing is awaited.
    fn maybe_flush(&mut self) {
        let done = self
            .subs
            .quiesce
            .as_ref()
            .is_some_and(|q| q.subs.is_empty() && q.methods.is_empty() && !(q.first.get() && self.subs.awaiting_seed.get()));
        if !done {
            return;
        }
        let Some(q) = self.subs.quiesce.take() else { return };
        let mut next = Store::default();
        let mut errors = Vec::new();
        for m in q.held {
            apply(&mut next, m, &mut |c| {
                if let Err(e) = c {
                    errors.push(e);
                }
            });
        }
        for e in errors {
            self.emit(Event::Error(e));
        }
        for change in self.subs.store.reconcile(next) {
            self.complete(Completion::Data(change));
        }
        for id in q.released {
            self.release_writes(id);
        }
        for id in q.newly_ready {
            if let Some(s) = self.subs.list.iter_mut().find(|s| s.id == id) {
                s.ready = true;
                self.out.push_back(Output::Done(Completion::SubReady { id }));
            }
        }
        if q.first.get() {
            self.subs.seeded = false;
            if self.subs.stale.get() {
                self.stale_now(false);
            }
        }
        #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
        self.complete(Completion::HoldEnded);
    }
}

/// Applies one data message to a store.
/// Applies one data message. A message that contradicts the store (an
/// `added` for a document the server already sent, a `changed` or `removed`
/// for one it never sent) is applied all the same, so the store converges
/// on what the server says, and is reported: Meteor's client throws there.
fn apply(store: &mut Store, m: ServerMessage, emit: &mut dyn FnMut(Result<crate::protocol::store::Change, super::ProtocolError>)) {
    let inconsistent = match &m {
        ServerMessage::Added { collection, id, .. } | ServerMessage::AddedBefore { collection, id, .. } => {
            store.has_server_doc(collection, id).then_some(("added", collection, id))
        }
        ServerMessage::Changed { collection, id, .. } => (!store.has_server_doc(collection, id)).then_some(("changed", collection, id)),
        ServerMessage::Removed { collection, id } => (!store.has_server_doc(collection, id)).then_some(("removed", collection, id)),
        _ => None,
    };
    if let Some((msg, collection, id)) = inconsistent {
        emit(Err(super::ProtocolError::Inconsistent { msg, collection: collection.clone(), id: id.clone() }));
    }
    let change = match m {
        ServerMessage::Added { collection, id, fields } | ServerMessage::AddedBefore { collection, id, fields, .. } => {
            store.added(collection, id, fields)
        }
        ServerMessage::Changed { collection, id, fields, cleared } => store.changed(collection, id, fields, cleared),
        ServerMessage::Removed { collection, id } => store.removed(collection, id),
        // This store is unordered: a move changes nothing in it.
        _ => None,
    };
    if let Some(c) = change {
        emit(Ok(c));
    }
}
