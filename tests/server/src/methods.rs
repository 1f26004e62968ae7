//! The methods the test server offers, for tests and the demo.
//!
//! | method | does |
//! |---|---|
//! | `echo(x)` | returns `x` (EJSON passes through untouched) |
//! | `echoAll(...args)` | returns the argument list |
//! | `add(a, b)` | returns `a + b` |
//! | `sleep(ms)` | waits `ms` (at most 60 s), returns `ms` |
//! | `fail(error, reason, details)` | throws that Meteor.Error |
//! | `inc(key)` | increments the scenario's counter `key`, returns its value |
//! | `updatedFirst(x)` | returns `x`, sending `updated` before `result` |
//! | `noResult()` | returns nothing (no `result` field) |
//! | `newId(scope)` | the first id of the `randomSeed` stream `scope` (what a stub made) |
//! | `executions()` | how many times each method ran, and the counters |
//! | `insertDoc(collection, fields)` | inserts a document (id from `fields._id`, the `randomSeed` stream `/collection/<collection>`, or random), returns its id |
//! | `updateDoc(collection, id, fields)` | sets fields (`null` clears one) |
//! | `removeDoc(collection, id)` | removes a document |
//!
//! Methods of one session run one at a time, in order, as in Meteor.

use super::{lock, meteor_error, Scenario, ServerConnection};
use ddp_live::protocol::random::RandomStream;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

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

/// Runs a session's methods one after another.
pub(crate) async fn worker(sc: Arc<Scenario>, session: ServerConnection, mut rx: mpsc::UnboundedReceiver<Invocation>) {
    while let Some(call) = rx.recv().await {
        *lock(&sc.state.runs).entry(call.name.clone()).or_default() += 1;
        let outcome = match call.name.as_str() {
            "insertDoc" | "updateDoc" | "removeDoc" => edit_docs(&sc, &call),
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
        if call.name == "updatedFirst" {
            session.send(updated);
            session.send(Value::Object(result));
        } else {
            session.send(Value::Object(result));
            session.send(updated);
        }
        if session.is_closed() {
            break;
        }
    }
}

fn num(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

async fn run(state: &State, call: &Invocation) -> Result<Option<Value>, Value> {
    let p = &call.params;
    match call.name.as_str() {
        "echo" => Ok(Some(p.first().cloned().unwrap_or(Value::Null))),
        "echoAll" => Ok(Some(Value::Array(p.clone()))),
        "add" => Ok(Some(json!(num(p.first()) + num(p.get(1))))),
        "sleep" => {
            let ms = num(p.first()).clamp(0.0, 60_000.0);
            tokio::time::sleep(Duration::from_millis(ms as u64)).await;
            Ok(Some(json!(ms)))
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
                let scope = p.first().and_then(Value::as_str).unwrap_or_default();
                Ok(Some(json!(RandomStream::new(seed, scope).next_id())))
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
                (_, Some(seed)) => RandomStream::new(seed, &format!("/collection/{collection}")).next_id(),
                _ => super::random_id(),
            };
            sc.docs.insert(&collection, id.clone(), fields);
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
