//! The methods the test server offers, for tests and the demo.
//!
//! | method | does |
//! |---|---|
//! | `echo(x)` | returns `x` (EJSON passes through untouched) |
//! | `echoAll(...args)` | returns the argument list |
//! | `add(a, b)` | returns `a + b` |
//! | `sleep(ms)` | waits `ms` (at most 60 s), returns `ms`; the session's later messages wait (as in Meteor) |
//! | `sleepUnblocked(ms)` | the same, but unblocks first (Meteor's `this.unblock()`): later messages go ahead |
//! | `fail(error, reason, details)` | throws that Meteor.Error |
//! | `inc(key)` | increments the scenario's counter `key`, returns its value |
//! | `updatedFirst(x)` | returns `x`, sending `updated` before `result` |
//! | `noResult()` | returns nothing (no `result` field) |
//! | `newId(scope)` | Meteor's `DDP.randomStream(scope \|\| '/collection/docs').id()` for the call's `randomSeed` (what a stub made); as the Meteor fixture's `newId` |
//! | `executions()` | how many times each method ran, and the counters |
//! | `connection()` | Meteor's `this.connection`: `{id, clientAddress, httpHeaders}` (the whitelisted headers of the socket's HTTP upgrade) |
//! | `insertDoc(collection, fields)` | inserts a document (id from `fields._id`, else the first id of the `randomSeed` stream `/collection/<collection>`, as a Meteor collection's insert, else random), returns its id; an id already there fails with `duplicate-key` (as MongoDB's unique `_id`) |
//! | `updateDoc(collection, id, fields)` | sets fields (`null` clears one) |
//! | `removeDoc(collection, id)` | removes a document |
//! | `login`, `logout`, `createUser`, `getNewToken`, `removeOtherTokens`, `whoami` | Meteor's accounts, in Meteor's order (`updated`, `result`, then the user document): see `accounts.rs` |
//!
//! Numbers go out as JavaScript writes them (`5`, not `5.0`). Methods of one
//! session run one at a time, in order with its subscriptions, as in Meteor
//! (see the session's worker in `lib.rs`); ids come from [`super::random`],
//! Meteor's Alea streams.

use super::{lock, meteor_error, random, request_parts, Scenario, ServerConnection};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A method call to run.
pub(crate) struct Invocation {
    pub id: String,
    pub name: String,
    pub params: Vec<Value>,
    pub seed: Option<String>,
}

/// Per-scenario state the methods share.
#[derive(Default)]
pub(crate) struct State {
    counters: Mutex<HashMap<String, i64>>,
    runs: Mutex<HashMap<String, u64>>,
}

impl State {
    pub(crate) fn report(&self) -> Value {
        json!({
            "runs": *lock(&self.runs),
            "counters": *lock(&self.counters),
        })
    }
}

/// Methods that call `this.unblock()` first: the session's next messages
/// do not wait for them.
const UNBLOCKING: [&str; 1] = ["sleepUnblocked"];

/// Handles a `method` message (from the session's worker, in order): checks
/// it as Meteor does, never runs an id the session saw, and runs it — to
/// the end before the next message, unless the method unblocks.
pub(crate) async fn handle(sc: &Arc<Scenario>, session: &ServerConnection, msg: Value) {
    let well_formed = msg.get("randomSeed").is_none_or(Value::is_string);
    let Some((name, id, params)) = request_parts(&msg, "method").filter(|_| well_formed) else {
        session.send(super::error_reply("Malformed method invocation", Some(msg)));
        return;
    };
    // A re-send of an id this session saw is never run twice: its answer
    // was sent (and replayed) or is on its way.
    if !lock(&session.inner.seen).insert(id.to_owned()) {
        return;
    }
    let seed = msg.get("randomSeed").and_then(Value::as_str).map(str::to_owned);
    let call = Invocation { id: id.to_owned(), name: name.to_owned(), params, seed };
    if UNBLOCKING.contains(&name) {
        tokio::spawn(invoke(sc.clone(), session.clone(), call));
    } else {
        invoke(sc.clone(), session.clone(), call).await;
    }
}

/// Runs a call and sends its `result` and `updated`.
async fn invoke(sc: Arc<Scenario>, session: ServerConnection, call: Invocation) {
    *lock(&sc.state.runs).entry(call.name.clone()).or_default() += 1;
    sc.accounts.record(&session, &call.name);
    let outcome = match call.name.as_str() {
        "insertDoc" | "updateDoc" | "removeDoc" => edit_docs(&sc, &call),
        "connection" => Ok(Some(json!({
            "id": session.id(),
            "clientAddress": session.client_address(),
            "httpHeaders": session.http_headers(),
        }))),
        name if super::accounts::METHODS.contains(&name) => super::accounts::method(&sc, &session, name, &call.params).await,
        name if name.starts_with("rooms.") => {
            let hooks = sc.room_hooks.clone();
            super::rooms::method(&sc, &hooks, &session, name, &call.params)
                .unwrap_or_else(|| Err(meteor_error(json!(404), &format!("Method '{name}' not found"))))
        }
        _ => run(&sc.state, &call).await,
    };
    let mut result = Map::new();
    result.insert("msg".into(), "result".into());
    result.insert("id".into(), call.id.clone().into());
    match outcome {
        Ok(Some(v)) => {
            result.insert("result".into(), v);
        }
        Ok(None) => {}
        Err(e) => {
            result.insert("error".into(), e);
        }
    }
    let updated = json!({"msg":"updated","methods":[call.id]});
    if call.name == "updatedFirst" || super::accounts::meteor_ordered(&call.name) {
        session.send(updated);
        session.send(Value::Object(result));
        // Accounts, as Meteor: the user's document after the result.
        sc.accounts.publish_user(&session);
    } else {
        session.send(Value::Object(result));
        session.send(updated);
    }
}

/// A number as JavaScript writes it in JSON: an integral value as an
/// integer (`5`, not `5.0`; `-0` as `0`), infinities and NaN as EJSON's
/// `{"$InfNaN": sign}` (as Meteor's EJSON sends them).
pub(crate) fn js_number(x: f64) -> Value {
    if x.is_nan() {
        return json!({"$InfNaN": 0});
    }
    if x.is_infinite() {
        return json!({"$InfNaN": if x > 0.0 { 1 } else { -1 }});
    }
    if x.fract() == 0.0 {
        if x.abs() < 9.2e18 {
            return json!(x as i64);
        }
        if x > 0.0 && x < 1.8e19 {
            return json!(x as u64);
        }
    }
    json!(x)
}

fn num(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

async fn run(state: &State, call: &Invocation) -> Result<Option<Value>, Value> {
    let p = &call.params;
    match call.name.as_str() {
        "echo" => Ok(Some(p.first().cloned().unwrap_or(Value::Null))),
        "echoAll" => Ok(Some(Value::Array(p.clone()))),
        "add" => Ok(Some(js_number(num(p.first()) + num(p.get(1))))),
        "sleep" | "sleepUnblocked" => {
            let ms = num(p.first()).clamp(0.0, 60_000.0);
            tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
            Ok(Some(js_number(ms)))
        }
        "fail" => {
            let error = p.first().cloned().unwrap_or_else(|| json!("failed"));
            let reason = p.get(1).and_then(Value::as_str).unwrap_or("Failed on purpose");
            let mut e = meteor_error(error, reason);
            if let Some(d) = p.get(2) {
                e["details"] = d.clone();
            }
            Err(e)
        }
        "inc" => {
            let key = p.first().and_then(Value::as_str).unwrap_or("default").to_owned();
            let mut counters = lock(&state.counters);
            let c = counters.entry(key).or_default();
            *c += 1;
            Ok(Some(json!(*c)))
        }
        "updatedFirst" => Ok(Some(p.first().cloned().unwrap_or(Value::Null))),
        "noResult" => Ok(None),
        "newId" => match &call.seed {
            Some(seed) => {
                let scope = p.first().and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("/collection/docs");
                Ok(Some(json!(random::stream(seed, scope).id())))
            }
            None => Err(meteor_error(json!("no-seed"), "newId needs a randomSeed")),
        },
        "executions" => Ok(Some(state.report())),
        "insertDoc" | "updateDoc" | "removeDoc" => Err(meteor_error(json!(500), "document methods run in the worker")),
        other => Err(meteor_error(json!(404), &format!("Method '{other}' not found"))),
    }
}

/// The document methods: edits visible to every `docs` subscription before
/// this method's `updated` is sent (writes are done when the worker sends it).
fn edit_docs(sc: &Scenario, call: &Invocation) -> Result<Option<Value>, Value> {
    let p = &call.params;
    let collection = p.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
    match call.name.as_str() {
        "insertDoc" => {
            let mut fields = p.get(1).and_then(Value::as_object).cloned().unwrap_or_default();
            let id = match (fields.shift_remove("_id"), &call.seed) {
                (Some(Value::String(id)), _) => id,
                // As a Meteor collection's insert: scope "/collection/<name>".
                (_, Some(seed)) => random::stream(seed, &format!("/collection/{collection}")).id(),
                _ => super::random_id(),
            };
            // A second insert of an id (a call re-sent with its randomSeed
            // by a new session) is refused, as MongoDB's unique `_id` index
            // does (Meteor then sends a sanitized 500; here the code says why).
            if !sc.docs.insert_new(&collection, id.clone(), fields) {
                return Err(meteor_error(json!("duplicate-key"), &format!("E11000 duplicate key error: {collection} _id {id}")));
            }
            Ok(Some(json!(id)))
        }
        "updateDoc" => {
            let id = p.get(1).and_then(Value::as_str).unwrap_or_default();
            let fields = p.get(2).and_then(Value::as_object).cloned().unwrap_or_default();
            if sc.docs.update(&collection, id, fields) {
                Ok(None)
            } else {
                Err(meteor_error(json!(404), "No such document"))
            }
        }
        _ => {
            let id = p.get(1).and_then(Value::as_str).unwrap_or_default();
            Ok(Some(json!(sc.docs.remove(&collection, id))))
        }
    }
}
