//! The durable outbox in the browser (`Options::persist`, cargo feature
//! `persist`: IndexedDB), end to end in headless Chromium against the test
//! server: calls queued offline outlive their connection and run exactly
//! once from the next one with their stubs' ids; and when IndexedDB is
//! missing or full, the app hears a typed error and no call is lost.
//! (`tests/js/leptos-example.test.mjs` reloads a real page of the Leptos
//! example.)
#![cfg(all(target_arch = "wasm32", feature = "persist"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Connection, Options, PersistEvent, StorageErrorKind};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn persisted(store: &str) -> Options {
    Options { persist: Some(store.into()), ..fast() }
}

fn events(conn: &Connection) -> (Rc<RefCell<Vec<PersistEvent>>>, ddp_live::ListenerHandle) {
    let seen: Rc<RefCell<Vec<PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let handle = conn.persisted_calls().expect("a durable outbox").on_event(move |e| s.borrow_mut().push(e.clone()));
    (seen, handle)
}

fn insert_stub(conn: &Connection) {
    conn.define_stub("insertDoc", |ctx, args| {
        let collection = args.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
        Ok(Value::String(ctx.insert(&collection, args.get(1).cloned().unwrap_or(json!({})))))
    });
}

/// Runs JavaScript in the page (to take IndexedDB away, or fill it).
fn page_js(source: &str) {
    js_sys::Function::new_no_args(source).call0(&wasm_bindgen::JsValue::NULL).expect("the page's script ran");
}

#[wasm_bindgen_test]
async fn calls_queued_offline_survive_in_indexeddb_and_run_once_with_their_stub_ids() {
    let sc = scenario("p-idb");
    let store = sc.clone();
    let first = connect(&ws_url(&sc), persisted(&store)).unwrap();
    insert_stub(&first);
    let (seen, _h) = events(&first);
    wait_until(5_000, "the store opened", || !seen.borrow().is_empty()).await;
    assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 0, waiting: 0 });
    wait_connected(&first).await;
    control(&sc, "refuse?on=true").await;
    control(&sc, "drop").await;
    wait_until(5_000, "the drop", || !first.connected()).await;
    first.call::<Value>("insertDoc", ("todos", json!({"text": "milk"}))).detach();
    first.call::<Value>("inc", ("k",)).detach();
    let stub_id = first.collection("todos").find()[0]["_id"].as_str().unwrap().to_owned();
    // IndexedDB confirms writes asynchronously: the page goes once both are kept.
    wait_until(5_000, "both kept", || {
        let kept = first.persisted_calls().unwrap().list();
        kept.len() == 2 && kept.iter().all(|c| c.durable)
    })
    .await;
    drop(first);
    control(&sc, "refuse?on=false").await;

    let next = connect(&ws_url(&sc), persisted(&store)).unwrap();
    let (seen, _h) = events(&next);
    wait_until(5_000, "both settled", || seen.borrow().iter().filter(|e| matches!(e, PersistEvent::Settled { .. })).count() == 2).await;
    let outcomes: Vec<(String, Value)> = seen
        .borrow()
        .iter()
        .filter_map(|e| match e {
            PersistEvent::Settled { name, outcome, .. } => Some((name.clone(), outcome.clone().unwrap().unwrap_or(Value::Null))),
            _ => None,
        })
        .collect();
    assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 2, waiting: 0 });
    assert_eq!(outcomes, vec![("insertDoc".into(), json!(stub_id)), ("inc".into(), json!(1))], "in order, the server's id is the stub's");
    let runs = control(&sc, "executions").await;
    assert_eq!((runs["runs"]["insertDoc"].as_u64(), runs["counters"]["k"].as_u64()), (Some(1), Some(1)), "{runs}");
    next.close();
    // Nothing is left in IndexedDB for a third start.
    let third = connect(&ws_url(&sc), persisted(&store)).unwrap();
    let (seen, _h) = events(&third);
    wait_until(5_000, "the store read", || !seen.borrow().is_empty()).await;
    assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 0, waiting: 0 });
    third.close();
}

#[wasm_bindgen_test]
async fn without_indexeddb_the_app_is_told_and_calls_still_go_out() {
    let sc = scenario("p-noidb");
    page_js(
        "globalThis.__idb = Object.getOwnPropertyDescriptor(globalThis, 'indexedDB');
         Object.defineProperty(globalThis, 'indexedDB', { configurable: true, get() { throw new DOMException('blocked', 'SecurityError'); } });",
    );
    let conn = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&conn);
    let call = conn.call::<i64>("add", (2, 3));
    wait_until(5_000, "the report", || !seen.borrow().is_empty()).await;
    page_js("Object.defineProperty(globalThis, 'indexedDB', globalThis.__idb);");
    match &seen.borrow()[0] {
        PersistEvent::StorageFailed { key: None, error } => assert_eq!(error.kind, StorageErrorKind::Unavailable, "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(call.await, Ok(5), "the call went out from memory");
    conn.close();
}

#[wasm_bindgen_test]
async fn a_full_quota_is_a_typed_error_and_the_call_still_runs() {
    let sc = scenario("p-quota");
    let conn = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&conn);
    wait_until(5_000, "the store opened", || !seen.borrow().is_empty()).await;
    page_js(
        "globalThis.__put = IDBObjectStore.prototype.put;
         IDBObjectStore.prototype.put = function () { throw new DOMException('full', 'QuotaExceededError'); };",
    );
    let call = conn.call::<i64>("add", (4, 5));
    let key = conn.persisted_calls().unwrap().list()[0].key.clone();
    wait_until(5_000, "the report", || seen.borrow().len() > 1).await;
    page_js("IDBObjectStore.prototype.put = globalThis.__put;");
    match &seen.borrow()[1] {
        PersistEvent::StorageFailed { key: Some(k), error } => {
            assert_eq!(k, &key);
            assert_eq!((error.kind, error.code()), (StorageErrorKind::QuotaExceeded, "storage-quota-exceeded"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(call.await, Ok(9));
    conn.close();
}
