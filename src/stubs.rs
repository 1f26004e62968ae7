//! Client stubs (latency compensation): a function run locally when a
//! method is called, before the server answers. It may make random ids the
//! server will reproduce (through the call's `randomSeed`) and write
//! documents, which show at once and give way to the server's version when
//! the call completes.
//!
//! A connection has one stub registry ([`Stubs`], a plug-in of its
//! driver): Rust's [`Connection::define_stub`] and JavaScript's
//! `methods()` define there, and every call, made from Rust or from
//! JavaScript, runs what is defined ([`simulate`]).

use crate::connection::{Connection, Plugin};
use crate::data::document;
use crate::protocol::hash::NameMap;
use crate::protocol::machine::StubWrite;
use crate::protocol::random::{new_seed, RandomStream};
use crate::protocol::store::Fields;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// A stub's failure: its message (a stub written in JavaScript keeps what
/// it threw on that side, for the caller there to hand back).
pub(crate) struct StubError {
    pub(crate) message: String,
}

/// A stub as the registry keeps it, whichever language defined it: gets
/// the call's (EJSON wire) arguments, returns its value.
pub(crate) type StubFn = Rc<dyn Fn(&mut StubContext, &[Value]) -> Result<Value, StubError>>;

/// A connection's stubs, by method name.
#[derive(Default)]
pub(crate) struct Stubs(RefCell<NameMap<StubFn>>);

impl Plugin for Stubs {}

/// What a method's stub did, for the call about to be placed.
#[derive(Default)]
pub(crate) struct Simulation {
    /// The stub's value (`None` without a stub, or when it failed).
    pub(crate) value: Option<Value>,
    /// The call's `randomSeed`, if the stub asked for one.
    pub(crate) seed: Option<String>,
    /// The documents it wrote (none when it failed).
    pub(crate) writes: Vec<StubWrite>,
}

/// Defines (or replaces) the stub of method `name`.
pub(crate) fn define(conn: &Connection, name: &str, stub: StubFn) {
    conn.plugin(|_| Rc::<Stubs>::default()).0.borrow_mut().insert(name.to_owned(), stub);
}

/// Runs the stub of method `name`, if one is defined, on the call's wire
/// arguments. A stub that fails is the error when `throw`; otherwise it is
/// reported through the host, its writes are dropped, and the call goes on
/// to the server.
pub(crate) fn simulate(conn: &Connection, name: &str, params: &[Value], throw: bool) -> Result<Simulation, StubError> {
    let stub = conn.find_plugin::<Stubs>().and_then(|s| s.0.borrow().get(name).cloned());
    let Some(stub) = stub else { return Ok(Simulation::default()) };
    let mut ctx = StubContext::new(conn, name);
    let result = stub(&mut ctx, params);
    let StubContext { seed, writes, .. } = ctx;
    match result {
        Ok(value) => Ok(Simulation { value: Some(value), seed, writes }),
        Err(e) if throw => Err(e),
        Err(e) => {
            conn.host().log_error(&format!("ddp-live: the stub of \"{name}\" failed: {}", e.message));
            Ok(Simulation { seed, ..Simulation::default() })
        }
    }
}

/// What a stub sees and does: its call's random streams and document writes.
pub struct StubContext {
    conn: Connection,
    name: String,
    seed: Option<String>,
    streams: NameMap<RandomStream>,
    writes: Vec<StubWrite>,
}

/// A client stub: gets the call's (EJSON wire) arguments, returns its value.
pub type Stub = Rc<dyn Fn(&mut StubContext, &[Value]) -> Result<Value, String>>;

impl StubContext {
    pub(crate) fn new(conn: &Connection, name: &str) -> Self {
        StubContext { conn: conn.clone(), name: name.to_owned(), seed: None, streams: NameMap::default(), writes: Vec::new() }
    }

    /// Takes this context's state, leaving a fresh one (a stub in another
    /// language works on it for the time of its run, then puts it back).
    #[cfg(feature = "js")]
    pub(crate) fn take(&mut self) -> StubContext {
        let fresh = StubContext::new(&self.conn, &self.name);
        std::mem::replace(self, fresh)
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
        let host = self.conn.host();
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
        self.conn.with_machine(|m| m.store().get(collection, id).map(|f| document(id, &f)))
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
        let stub: StubFn = Rc::new(move |ctx, args| stub(ctx, args).map_err(|message| StubError { message }));
        define(self, name, stub);
    }
}
