//! End-to-end tests of queries over the local cache (the Rust surface), in
//! the browser and natively: one-shot reads, live
//! `signal_vec`/`signal_count`, and a live query through a drop.
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Diff};
use futures_signals::signal::SignalExt;
use futures_signals::signal_vec::SignalVecExt;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn ids(docs: &[Value]) -> Vec<String> {
    docs.iter().map(|d| d["_id"].as_str().unwrap_or("?").to_owned()).collect()
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn query_fetch_count_first_with_each_hosts_regexps() {
    let (_, conn) = open("q-fetch");
    let todos = conn.collection("todos");
    conn.subscribe("docs", ("todos",)).wait_ready().await.unwrap();
    for (id, title, n) in [("a", "Apples", 3), ("b", "bread", 1), ("c", "Cake", 2), ("d", "dishes", 5)] {
        let _: String = conn.call("insertDoc", ("todos", json!({"_id": id, "title": title, "n": n}))).await.unwrap();
    }
    let q = todos.query(json!({"title": {"$regex": "^[a-c]", "$options": "i"}}), json!({"sort": {"n": -1}, "fields": {"n": 1}})).unwrap();
    assert_eq!(q.fetch(), vec![json!({"_id": "a", "n": 3}), json!({"_id": "c", "n": 2}), json!({"_id": "b", "n": 1})]);
    assert_eq!(q.count(), 3);
    assert_eq!(q.first(), Some(json!({"_id": "a", "n": 3})));
    // A lookahead: the browser's RegExp has it; natively the `regex` crate
    // has not, and says so rather than matching nothing.
    let lookahead = todos.query(json!({"title": {"$regex": "^(?=[a-c])", "$options": "i"}}), Value::Null);
    #[cfg(target_arch = "wasm32")]
    assert_eq!(lookahead.unwrap().count(), 3);
    #[cfg(not(target_arch = "wasm32"))]
    assert_eq!(lookahead.unwrap_err().code(), "bad-regex");
    let err = todos.query(json!({"title": {"$regex": "("}}), Value::Null).unwrap_err();
    assert_eq!(err.code(), "bad-regex");
    assert_eq!(todos.query(json!({"$where": "x"}), Value::Null).unwrap_err().code(), "unsupported-operator");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn signal_vec_and_signal_count_follow_server_changes() {
    let (_, conn) = open("q-signal");
    let tasks = conn.collection("tasks");
    conn.subscribe("docs", ("tasks",)).wait_ready().await.unwrap();
    for (id, n) in [("a", 1), ("b", 2), ("c", 3)] {
        let _: String = conn.call("insertDoc", ("tasks", json!({"_id": id, "n": n, "status": "open"}))).await.unwrap();
    }
    let q = tasks.query(json!({"status": "open"}), json!({"sort": {"n": 1}, "limit": 2})).unwrap();
    let mut list = q.signal_vec().to_signal_cloned().to_stream();
    let mut count = q.signal_count().to_stream();
    assert_eq!(ids(&list.next().await.unwrap()), ["a", "b"]);
    assert_eq!(count.next().await, Some(2));
    let _: Value = conn.call("updateDoc", ("tasks", "c", json!({"n": 0}))).await.unwrap();
    assert_eq!(ids(&list.next().await.unwrap()), ["c", "a"]);
    let _: bool = conn.call("removeDoc", ("tasks", "a")).await.unwrap();
    assert_eq!(ids(&list.next().await.unwrap()), ["c", "b"]);
    let _: Value = conn.call("updateDoc", ("tasks", "c", json!({"status": "done"}))).await.unwrap();
    assert_eq!(ids(&list.next().await.unwrap()), ["b"]);
    assert_eq!(count.next().await, Some(1));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_live_query_through_a_drop_sees_only_the_real_differences() {
    let sc = scenario("q-drop");
    control(&sc, "resume?on=false").await;
    let writer = connect(&ws_url(&sc), fast()).unwrap();
    for i in 0..6 {
        let doc = json!({"_id": format!("d{i}"), "n": i, "status": if i % 2 == 1 { "closed" } else { "open" }});
        let _: String = writer.call("insertDoc", ("q", doc)).await.unwrap();
    }
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let docs = conn.collection("q");
    conn.subscribe("docs", ("q",)).wait_ready().await.unwrap();
    let q = docs.query(json!({"status": "open"}), json!({"sort": {"n": -1}})).unwrap();
    let seen: Rc<RefCell<Vec<Diff>>> = Rc::default();
    let min = Rc::new(RefCell::new(usize::MAX));
    let (s, m, q2) = (seen.clone(), min.clone(), q.clone());
    let _watch = q.observe(move |diffs| {
        s.borrow_mut().extend(diffs.iter().cloned());
        let n = q2.count();
        let mut min = m.borrow_mut();
        *min = (*min).min(n);
    });
    assert_eq!(seen.borrow().len(), 3, "the initial results");
    seen.borrow_mut().clear();
    let first = conn.id();
    let rec = record(&conn);
    control(&sc, "drop").await;
    wait_event(&rec, 5_000, "the drop", |e| matches!(e, ddp_live::Event::Disconnected { .. })).await;
    let _: bool = writer.call("removeDoc", ("q", "d4")).await.unwrap();
    let _: Value = writer.call("updateDoc", ("q", "d1", json!({"status": "open"}))).await.unwrap();
    wait_status(&conn, 10_000, "back", |s| s.connected && conn.id() != first).await;
    let mut tries = 0;
    // Both server-side changes in (the client may be back before they ran).
    while (docs.find_one("d4").is_some() || docs.find_one("d1").is_some_and(|d| d["status"] != "open")) && tries < 1000 {
        sleep(10).await;
        tries += 1;
    }
    assert_eq!(ids(&q.fetch()), ["d2", "d1", "d0"]);
    let seen = seen.borrow().clone();
    assert_eq!(seen.len(), 2, "only the real differences: {seen:?}");
    assert!(seen.iter().any(|d| matches!(d, Diff::RemovedAt { id, index: 0, .. } if &**id == "d4")));
    assert!(seen.iter().any(|d| matches!(d, Diff::AddedAt { id, index: 1, .. } if &**id == "d1")));
    // d2 and d0 stayed: a flicker (emptied, then refilled) would go below 2.
    assert!(*min.borrow() >= 2, "the results never lost a document that stayed: min {}", min.borrow());
    conn.close();
    writer.close();
}
