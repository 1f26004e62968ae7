//! End-to-end tests of method calls against the real test server, in
//! headless Chromium and natively (tests/common says how each host finds
//! the server); natively also against Meteor's own server (the fixture).
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, CallOptions, Ejson, MethodError, Options, Outbox};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn runs(sc: &str, method: &str) -> u64 {
    control(sc, "executions").await["runs"][method].as_u64().unwrap_or(0)
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn typed_call_and_result() {
    let (_, conn) = open("m-typed");
    let sum: f64 = conn.call("add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5.0);
    let echoed: Vec<String> = conn.call("echoAll", ("a", "b")).await.unwrap();
    assert_eq!(echoed, vec!["a", "b"]);
    let nothing: Option<i32> = conn.call("noResult", ()).await.unwrap();
    assert_eq!(nothing, None);
    // EJSON travels as such.
    let date = Ejson::Date(1_700_000_000_000.0);
    let back: Ejson = conn.call("echo", vec![date.clone()]).await.unwrap();
    assert_eq!(back, date);
    let wrong: Result<String, _> = conn.call("add", (1, 1)).await;
    assert!(matches!(wrong, Err(MethodError::BadResult(_))));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn server_errors_carry_error_reason_and_details() {
    let (_, conn) = open("m-errors");
    let e = conn.call::<Value>("fail", ("not-allowed", "No way", json!({"field": "x"}))).await.unwrap_err();
    assert_eq!(e.error(), json!("not-allowed"));
    assert_eq!(e.reason(), "No way");
    assert_eq!(e.details(), Some(&json!({"field": "x"})));
    let e = conn.call::<Value>("nope", ()).await.unwrap_err();
    assert_eq!(e.error(), json!(404));
    assert_eq!(e.reason(), "Method 'nope' not found");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn two_hundred_offline_calls_resolve_in_order_after_reconnect() {
    let (sc, conn) = connected("m-offline").await;
    conn.disconnect();
    let order = Rc::new(RefCell::new(Vec::new()));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let call = conn.call::<i64>("echo", (i,));
            let order = order.clone();
            async move {
                let v = call.await.unwrap();
                order.borrow_mut().push(v);
            }
        })
        .collect();
    assert_eq!(conn.outbox(), Outbox { queued: 200, in_flight: 0 });
    sleep(100).await;
    assert_eq!(runs(&sc, "echo").await, 0, "nothing went out while offline");
    conn.reconnect();
    join_all(calls).await;
    assert_eq!(*order.borrow(), (0..200).collect::<Vec<i64>>());
    assert_eq!(conn.outbox(), Outbox::default());
    assert_eq!(runs(&sc, "echo").await, 200);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_drop_with_calls_in_flight_runs_each_exactly_once_with_resumption() {
    let (sc, conn) = connected("m-resume").await;
    let first = conn.id().unwrap();
    let slow = conn.call::<f64>("sleep", (300,));
    let incs: Vec<_> = (0..20).map(|_| conn.call::<i64>("inc", ("k",))).collect();
    sleep(50).await;
    control(&sc, "drop").await;
    let slept = slow.await.unwrap();
    assert_eq!(slept, 300.0);
    let mut values: Vec<i64> = join_all(incs).await.into_iter().map(Result::unwrap).collect();
    values.sort();
    assert_eq!(values, (1..=20).collect::<Vec<_>>());
    assert!(conn.resumed(), "the server resumed the session");
    assert_eq!(conn.id().unwrap(), first, "same session id after resumption");
    let ex = control(&sc, "executions").await;
    assert_eq!(ex["runs"]["sleep"], 1);
    assert_eq!(ex["runs"]["inc"], 20, "one execution per call");
    assert_eq!(ex["counters"]["k"], 20);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn without_resumption_in_flight_calls_are_resent_and_resolve() {
    let sc = scenario("m-noresume");
    control(&sc, "resume?on=false").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    wait_connected(&conn).await;
    let slow = conn.call::<f64>("sleep", (300,));
    sleep(50).await;
    control(&sc, "drop").await;
    assert_eq!(slow.await.unwrap(), 300.0);
    assert!(!conn.resumed());
    // The documented at-least-once risk: the server ran it again.
    assert_eq!(runs(&sc, "sleep").await, 2);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn no_retry_fails_with_invocation_failed_after_a_drop() {
    let sc = scenario("m-noretry");
    control(&sc, "resume?on=false").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    wait_connected(&conn).await;
    let call = conn.apply::<f64>("sleep", (300,), CallOptions { no_retry: true, ..CallOptions::default() });
    sleep(50).await;
    control(&sc, "drop").await;
    assert_eq!(call.await.unwrap_err(), MethodError::InvocationFailed);
    sleep(400).await;
    assert_eq!(runs(&sc, "sleep").await, 1, "not re-sent");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn wait_calls_hold_back_later_calls() {
    let (_, conn) = connected("m-wait").await;
    let w = conn.apply::<f64>("sleep", (200,), CallOptions { wait: true, ..CallOptions::default() });
    let later = conn.call::<String>("echo", ("after",));
    assert_eq!(conn.outbox(), Outbox { queued: 1, in_flight: 1 }, "the later call waits unsent");
    w.await.unwrap();
    assert_eq!(later.await.unwrap(), "after");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn on_reconnect_calls_run_before_everything_queued() {
    let sc = scenario("m-hooks");
    control(&sc, "resume?on=false").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    wait_connected(&conn).await;
    let order = Rc::new(RefCell::new(Vec::<String>::new()));
    let o = order.clone();
    let _hook = conn.on_reconnect(move |c| {
        let o = o.clone();
        let login = c.apply::<String>("echo", ("login",), CallOptions { wait: true, ..CallOptions::default() });
        spawn_local(async move {
            let v = login.await.unwrap();
            o.borrow_mut().push(v);
        });
    });
    control(&sc, "refuse?on=true").await;
    control(&sc, "drop").await;
    wait_status(&conn, 5_000, "lost", |s| !s.connected).await;
    let calls: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            let call = conn.call::<String>("echo", (*n,));
            let o = order.clone();
            async move {
                let v = call.await.unwrap();
                o.borrow_mut().push(v);
            }
        })
        .collect();
    control(&sc, "refuse?on=false").await;
    join_all(calls).await;
    assert_eq!(*order.borrow(), vec!["login", "a", "b"]);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_timeout_fails_the_call() {
    let (_, conn) = connected("m-timeout").await;
    let r = conn.apply::<f64>("sleep", (2000,), CallOptions { timeout_ms: Some(200.0), ..CallOptions::default() }).await;
    assert_eq!(r.unwrap_err(), MethodError::Timeout);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn cancelling_or_dropping_an_unsent_call_means_it_never_runs() {
    let (sc, conn) = connected("m-cancel").await;
    conn.disconnect();
    let cancelled = conn.call::<i64>("inc", ("c",));
    assert!(cancelled.cancel());
    assert_eq!(cancelled.await.unwrap_err(), MethodError::Cancelled);
    drop(conn.call::<i64>("inc", ("c",)));
    conn.call::<i64>("inc", ("d",)).detach();
    assert_eq!(conn.outbox(), Outbox { queued: 1, in_flight: 0 }, "only the detached call is left");
    conn.reconnect();
    let kept: i64 = conn.call("inc", ("d",)).await.unwrap();
    assert_eq!(kept, 2, "the detached call ran, then this one");
    assert_eq!(control(&sc, "executions").await["counters"]["c"], Value::Null, "never ran");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_full_outbox_rejects_the_new_call_at_once() {
    let sc = scenario("m-full");
    let conn = connect(&ws_url(&sc), Options { max_pending_calls: 5, ..fast() }).unwrap();
    conn.disconnect();
    let calls: Vec<_> = (0..5).map(|i| conn.call::<i64>("echo", (i,))).collect();
    let e = conn.call::<i64>("echo", (5,)).await.unwrap_err();
    assert_eq!(e, MethodError::QueueFull { limit: "maxPendingCalls" });
    assert_eq!(e.error(), json!("queue-full"));
    conn.reconnect();
    let got: Vec<i64> = join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4], "the queued ones were not harmed");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn close_fails_pending_calls_with_closed() {
    let (_, conn) = open("m-close");
    conn.disconnect();
    let call = conn.call::<i64>("echo", (1,));
    conn.close();
    assert_eq!(call.await.unwrap_err(), MethodError::Closed);
    assert_eq!(conn.call::<i64>("echo", (1,)).await.unwrap_err(), MethodError::Closed);
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_rust_stub_writes_at_once_and_gives_way_to_the_server_version() {
    use ddp_live::Change;
    let (_, conn) = open("m-stub");
    let notes = conn.collection("notes");
    conn.subscribe("docs", ("notes",)).wait_ready().await.unwrap();
    conn.define_stub("insertDoc", |ctx, args| {
        let collection = args.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
        let mut doc = args.get(1).cloned().unwrap_or(json!({}));
        doc["pending"] = json!(true);
        Ok(Value::String(ctx.insert(&collection, doc)))
    });
    let changes: Rc<RefCell<Vec<Change>>> = Rc::default();
    let c = changes.clone();
    let _w = notes.on_change(move |ch| c.borrow_mut().push(ch.clone()));
    let call = conn.call::<String>("insertDoc", ("notes", json!({"text": "hi"})));
    // The stub's document shows before the server answers.
    let local = notes.find();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0]["pending"], true);
    let stub_id = local[0]["_id"].as_str().unwrap().to_owned();
    let server_id = call.await.unwrap();
    assert_eq!(server_id, stub_id, "the randomSeed made the server use the stub's id");
    let doc = notes.find_one(&server_id).unwrap();
    assert_eq!(doc["text"], "hi");
    assert!(doc.get("pending").is_none(), "the server's version replaced the stub's");
    let seen = changes.borrow().clone();
    assert!(matches!(&seen[0], Change::Added { id, .. } if *id == stub_id));
    assert!(matches!(&seen[1], Change::Changed { cleared, .. } if cleared == &vec!["pending".to_string()]));
    assert_eq!(seen.len(), 2, "no removal and re-add: {seen:?}");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_failed_call_takes_its_stub_writes_back() {
    let (_, conn) = open("m-stubfail");
    let tmp = conn.collection("tmp");
    conn.define_stub("fail", |ctx, _| {
        ctx.insert("tmp", json!({"_id": "t1"}));
        Ok(Value::Null)
    });
    let call = conn.call::<Value>("fail", ("no", "No"));
    assert_eq!(tmp.len(), 1);
    assert!(call.await.is_err());
    assert!(tmp.is_empty());
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn stub_value_and_stub_exceptions() {
    let (_, conn) = open("m-stubopts");
    conn.define_stub("add", |_, args| Ok(json!(args.iter().filter_map(Value::as_f64).sum::<f64>() + 1000.0)));
    conn.define_stub("inc", |_, _| Err("the stub refuses".into()));
    let v: f64 = conn.apply("add", (1, 2), CallOptions { return_stub_value: true, ..CallOptions::default() }).await.unwrap();
    assert_eq!(v, 1003.0);
    let server: f64 = conn.call("add", (1, 2)).await.unwrap();
    assert_eq!(server, 3.0);
    let e = conn.apply::<i64>("inc", ("k",), CallOptions { throw_stub_exceptions: true, ..CallOptions::default() }).await.unwrap_err();
    assert_eq!(e, MethodError::StubFailed("the stub refuses".into()));
    let n: i64 = conn.call("inc", ("k",)).await.unwrap();
    assert_eq!(n, 1, "without throwStubExceptions the server is called (once: the refused call never was)");
    conn.close();
}

// Natively only (as in every file here): Meteor's server is a Node process
// the test starts; the browser meets it in tests/js/meteor*.test.mjs.
#[cfg(not(target_arch = "wasm32"))]
#[tokio::test(crate = "common::local_set")]
async fn against_meteor_a_stubs_ids_are_the_ids_meteor_derives_from_the_seed() {
    let Some((_meteor, conn)) = Meteor::open(Fixture::Server) else { return };
    // Meteor's `newId(scope)` returns `DDP.randomStream(scope).id()`: the id
    // an insert into collection "todos" gets for scope "/collection/todos".
    let stub_ids: Rc<RefCell<Vec<String>>> = Rc::default();
    let s = stub_ids.clone();
    conn.define_stub("newId", move |ctx, args| {
        let id = ctx.random_id(args[0].as_str().unwrap_or_default());
        s.borrow_mut().push(id.clone());
        Ok(Value::String(id))
    });
    let scopes = ["/collection/todos", "/collection/messages", "default", "scope ünïcödé 🎉"];
    let mut server_ids = Vec::new();
    for _ in 0..5 {
        for scope in scopes {
            server_ids.push(conn.call::<String>("newId", (scope,)).await.unwrap());
        }
    }
    assert_eq!(server_ids.iter().collect::<std::collections::HashSet<_>>().len(), 20, "a fresh seed per call");
    assert_eq!(*stub_ids.borrow(), server_ids);
    conn.close();
}

#[cfg(not(target_arch = "wasm32"))]
#[tokio::test(crate = "common::local_set")]
async fn against_meteor_results_errors_and_offline_calls_in_order_in_a_new_session() {
    let Some((_meteor, conn)) = Meteor::open(Fixture::Server) else { return };
    assert_eq!(conn.call::<i64>("add", (2, 3)).await, Ok(5));
    assert_eq!(conn.call::<Option<i64>>("nothing", ()).await, Ok(None), "a result without `result`");
    let e = conn.call::<Value>("fail", ("not-allowed", "No way", json!({"field": "x"}))).await.unwrap_err();
    assert_eq!((e.error(), e.reason(), e.details()), (json!("not-allowed"), "No way".to_owned(), Some(&json!({"field": "x"}))));
    let e = conn.call::<Value>("failPlain", ("secret",)).await.unwrap_err();
    assert_eq!((e.error(), e.reason()), (json!(500), "Internal server error".to_owned()), "sanitised by Meteor");
    let e = conn.call::<Value>("nope", ()).await.unwrap_err();
    assert_eq!((e.error(), e.reason()), (json!(404), "Method 'nope' not found".to_owned()));
    let first = conn.id().unwrap();
    conn.disconnect();
    let calls: Vec<_> = (0..20).map(|i| conn.call::<i64>("echo", (i,))).collect();
    assert_eq!(conn.outbox(), Outbox { queued: 20, in_flight: 0 });
    conn.reconnect();
    let got: Vec<i64> = join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "each its own answer, in order");
    assert_ne!(conn.id().unwrap(), first);
    conn.close();
}
