//! Server-rendered documents (cargo feature `leptos`, for `ssr` and
//! `hydrate`): the documents a request's connection held on the server,
//! and the same documents taken by the browser's connection as its cache.
//! The rules (what is held back, what is reconciled) are the machine's
//! ([`Machine::seed`](crate::protocol::machine::Machine::seed)).

use crate::data::Subscription;
use crate::protocol::store::Fields;
use crate::Connection;
use serde_json::Value;

/// One document: collection, `_id`, fields (EJSON wire values).
pub(crate) type SeedDoc = (String, String, Fields);

impl Connection {
    /// Every server document this connection holds.
    #[cfg_attr(not(all(feature = "ssr", not(target_arch = "wasm32"))), allow(dead_code))]
    pub(crate) fn snapshot(&self) -> Vec<SeedDoc> {
        self.with_machine(|m| m.store().snapshot())
    }

    /// Subscribes to `name` as [`Connection::subscribe_raw`] does, taking
    /// `docs` as documents already received and the subscription as ready
    /// (what a server-rendered page says). Before the first session only;
    /// later (the page was not hydrated from a server render) it is a
    /// plain subscription.
    pub(crate) fn subscribe_seeded(&self, name: &str, params: Vec<Value>, docs: Vec<SeedDoc>) -> Subscription {
        let sub = self.subscribe_raw(name, params);
        self.drive(|m| m.seed(docs, Some(sub.id())));
        sub
    }
}
