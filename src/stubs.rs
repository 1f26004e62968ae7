//! Client stubs (latency compensation): a function run locally when a
//! method is called, before the server answers. It may make random ids the
//! server will reproduce (through the call's `randomSeed`) and write
//! documents, which show at once and give way to the server's version when
//! the call completes.

use crate::connection::{Connection, Inner};
use crate::data::document;
use crate::protocol::hash::NameMap;
use crate::protocol::machine::StubWrite;
use crate::protocol::random::{new_seed, RandomStream};
use crate::protocol::store::Fields;
use serde_json::Value;
use std::rc::Rc;

/// What a stub sees and does: its call's random streams and document writes.
pub struct StubContext {
    inner: Rc<Inner>,
    name: String,
    seed: Option<String>,
    streams: NameMap<RandomStream>,
    writes: Vec<StubWrite>,
}

/// A client stub: gets the call's (EJSON wire) arguments, returns its value.
pub type Stub = Rc<dyn Fn(&mut StubContext, &[Value]) -> Result<Value, String>>;

impl StubContext {
    pub(crate) fn new(inner: Rc<Inner>, name: &str) -> Self {
        StubContext { inner, name: name.to_owned(), seed: None, streams: NameMap::default(), writes: Vec::new() }
    }

    /// The method's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Always true: this is a simulation of the server's method.
    pub fn is_simulation(&self) -> bool {
        true
    }

    /// The call's random seed; asking for it makes the call send it.
    pub fn random_seed(&mut self) -> String {
        let host = &self.inner.host;
        self.seed.get_or_insert_with(|| new_seed(|| host.random())).clone()
    }

    /// The next id of stream `scope` of the call's seed, exactly as
    /// Meteor's `DDP.randomStream(scope).id()` makes it on the server from
    /// the same `randomSeed` (an empty scope is Meteor's `"default"`). A
    /// Meteor collection's insert uses scope `"/collection/<name>"`.
    pub fn random_id(&mut self, scope: &str) -> String {
        let scope = if scope.is_empty() { "default" } else { scope };
        let seed = self.random_seed();
        self.streams.get_or_insert_with(scope, || RandomStream::new(&seed, scope)).next_id()
    }

    /// The document as the app sees it now (this stub's writes included).
    pub fn find_one(&self, collection: &str, id: &str) -> Option<Value> {
        if let Some(w) = self.writes.iter().rev().find(|w| w.collection == collection && w.id == id) {
            return w.doc.as_ref().map(|f| document(id, f));
        }
        let machine = self.inner.machine.borrow();
        machine.store().get(collection, id).map(|f| document(id, &f))
    }

    /// Inserts a document (its `_id`, or the next id of stream
    /// `"/collection/<collection>"`, the id a Meteor server's
    /// `collection.insert` gives it); returns the id.
    pub fn insert(&mut self, collection: &str, doc: Value) -> String {
        let mut fields: Fields = match doc {
            Value::Object(m) => m,
            _ => Fields::new(),
        };
        let id = match fields.shift_remove("_id") {
            Some(Value::String(id)) => id,
            _ => self.random_id(&format!("/collection/{collection}")),
        };
        self.writes.push(StubWrite { collection: collection.to_owned(), id: id.clone(), doc: Some(fields) });
        id
    }

    /// Sets fields of a document (`null` clears a field); false if there is
    /// no such document.
    pub fn update(&mut self, collection: &str, id: &str, set: Fields) -> bool {
        let Some(Value::Object(mut doc)) = self.find_one(collection, id) else { return false };
        doc.shift_remove("_id");
        for (k, v) in set {
            if v.is_null() {
                doc.remove(&k);
            } else {
                doc.insert(k, v);
            }
        }
        self.writes.push(StubWrite { collection: collection.to_owned(), id: id.to_owned(), doc: Some(doc) });
        true
    }

    /// Removes a document.
    pub fn remove(&mut self, collection: &str, id: &str) {
        self.writes.push(StubWrite { collection: collection.to_owned(), id: id.to_owned(), doc: None });
    }

    pub(crate) fn finish(self) -> (Option<String>, Vec<StubWrite>) {
        (self.seed, self.writes)
    }
}

impl Connection {
    /// Defines the client stub of method `name` (Meteor's `methods`): it
    /// runs locally at call time, before the server answers.
    ///
    /// ```no_run
    /// # fn f(conn: ddp_live::Connection) {
    /// conn.define_stub("addNote", |ctx, args| {
    ///     let text = args.first().cloned().unwrap_or_default();
    ///     let id = ctx.insert("notes", serde_json::json!({ "text": text }));
    ///     Ok(serde_json::Value::String(id))
    /// });
    /// # }
    /// ```
    pub fn define_stub(&self, name: &str, stub: impl Fn(&mut StubContext, &[Value]) -> Result<Value, String> + 'static) {
        self.inner().stubs.borrow_mut().insert(name.to_owned(), Rc::new(stub));
    }
}
