//! End-to-end tests of subscriptions and live collections, in the browser
//! and natively; natively also against Meteor's own server (the fixture).
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Change, SubscriptionEnd};
use futures_signals::signal::SignalExt;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn subscribe_ready_documents_present() {
    let (_, conn) = open("s-items");
    let items = conn.collection("items");
    let sub = conn.subscribe("items", (50, 10));
    assert!(!sub.ready());
    assert_eq!(sub.id().len(), 17);
    sub.wait_ready().await.unwrap();
    assert!(sub.ready());
    assert_eq!(items.len(), 50);
    let doc = items.find_one("item-3").unwrap();
    assert_eq!(doc["_id"], "item-3");
    assert_eq!(doc["i"], 3);
    assert_eq!(doc["pad"], "x".repeat(10));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_server_side_change_reaches_a_document_signal() {
    let (_, conn) = open("s-signal");
    let notes = conn.collection("notes");
    conn.subscribe("docs", ("notes",)).wait_ready().await.unwrap();
    let mut doc = notes.doc_signal("n1").to_stream();
    assert_eq!(doc.next().await.unwrap(), None);
    let _: String = conn.call("insertDoc", ("notes", json!({"_id": "n1", "text": "hello"}))).await.unwrap();
    let v = doc.next().await.unwrap().unwrap();
    assert_eq!(v["text"], "hello");
    let _: Value = conn.call("updateDoc", ("notes", "n1", json!({"text": "edited"}))).await.unwrap();
    assert_eq!(doc.next().await.unwrap().unwrap()["text"], "edited");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn reconnect_never_empties_the_collection_and_drops_what_the_server_removed() {
    let sc = scenario("s-flicker");
    control(&sc, "resume?on=false").await;
    let writer = connect(&ws_url(&sc), fast()).unwrap();
    for i in 0..5 {
        let _: String = writer.call("insertDoc", ("r", json!({"_id": format!("d{i}"), "v": i}))).await.unwrap();
    }
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let docs = conn.collection("r");
    let sub = conn.subscribe("docs", ("r",));
    sub.wait_ready().await.unwrap();
    assert_eq!(docs.len(), 5);
    let changes: Rc<RefCell<Vec<Change>>> = Rc::default();
    let min_len = Rc::new(RefCell::new(usize::MAX));
    let (c, m, d) = (changes.clone(), min_len.clone(), docs.clone());
    let _watch = docs.on_change(move |ch| {
        c.borrow_mut().push(ch.clone());
        let n = d.len();
        let mut min = m.borrow_mut();
        *min = (*min).min(n);
    });
    // Take this client away, change the server meanwhile, bring it back.
    let first = conn.id();
    let rec = record(&conn);
    control(&sc, "drop").await;
    wait_event(&rec, 5_000, "the drop", |e| matches!(e, ddp_live::Event::Disconnected { .. })).await;
    let _: bool = writer.call("removeDoc", ("r", "d0")).await.unwrap();
    let _: Value = writer.call("updateDoc", ("r", "d1", json!({"v": 100}))).await.unwrap();
    wait_status(&conn, 10_000, "back", |s| s.connected && conn.id() != first).await;
    // Wait until both server changes are in: the drop took the writer away
    // too, so its calls may run before or after this client's re-subscribe
    // (seen in the reconciliation, or as live changes after it).
    let mut tries = 0;
    while (docs.find_one("d0").is_some() || docs.find_one("d1").is_some_and(|d| d["v"] != 100)) && tries < 300 {
        sleep(10).await;
        tries += 1;
    }
    assert_eq!(docs.len(), 4);
    assert!(docs.find_one("d0").is_none(), "removed on the server while away");
    assert_eq!(docs.find_one("d1").unwrap()["v"], 100);
    assert!(sub.ready(), "the handle stayed ready");
    let seen = changes.borrow().clone();
    assert_eq!(seen.len(), 2, "only the real differences: {seen:?}");
    assert!(seen.contains(&Change::Removed { collection: "r".into(), id: "d0".into() }));
    assert!(*min_len.borrow() >= 4, "never emptied: min {}", min_len.borrow());
    conn.close();
    writer.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_resumed_session_changes_nothing() {
    let (sc, conn) = open("s-resume");
    let items = conn.collection("items");
    conn.subscribe("items", (20,)).wait_ready().await.unwrap();
    let count = Rc::new(RefCell::new(0));
    let c = count.clone();
    let _w = items.on_change(move |_| *c.borrow_mut() += 1);
    let id = conn.id();
    let rec = record(&conn);
    control(&sc, "drop").await;
    wait_event(&rec, 5_000, "the reconnect", |e| matches!(e, ddp_live::Event::Reconnected { .. })).await;
    sleep(200).await;
    assert!(conn.resumed());
    assert_eq!(conn.id(), id);
    assert_eq!(*count.borrow(), 0, "no data replayed twice, no document changed");
    assert_eq!(items.len(), 20);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn stop_removes_the_documents() {
    let (_, conn) = open("s-stop");
    let items = conn.collection("items");
    let sub = conn.subscribe("items", (5,));
    sub.wait_ready().await.unwrap();
    assert_eq!(items.len(), 5);
    sub.stop();
    assert_eq!(sub.ended(), Some(SubscriptionEnd::Stopped));
    let mut tries = 0;
    while !items.is_empty() && tries < 200 {
        sleep(10).await;
        tries += 1;
    }
    assert!(items.is_empty());
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn stop_while_offline_is_honoured() {
    let sc = scenario("s-offstop");
    control(&sc, "resume?on=false").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let items = conn.collection("items");
    let sub = conn.subscribe("items", (5,));
    sub.wait_ready().await.unwrap();
    conn.disconnect();
    sub.stop();
    assert_eq!(items.len(), 5, "kept while offline");
    conn.reconnect();
    wait_connected(&conn).await;
    let mut tries = 0;
    while !items.is_empty() && tries < 300 {
        sleep(10).await;
        tries += 1;
    }
    assert!(items.is_empty(), "not re-sent, and its documents went after the reconnect");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_failing_publication_surfaces_its_error() {
    let (_, conn) = open("s-fail");
    let errors = record(&conn);
    let sub = conn.subscribe("failing", ());
    match sub.wait_ready().await {
        Err(SubscriptionEnd::Failed(e)) => {
            assert_eq!(e["error"], "sub-failed");
            assert_eq!(e["reason"], "This publication always fails");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(errors.events.borrow().iter().any(|e| matches!(e, ddp_live::Event::Error(ddp_live::ProtocolError::SubscriptionFailed { .. }))));
    match conn.subscribe("nothing-here", ()).wait_ready().await {
        Err(SubscriptionEnd::Failed(e)) => assert_eq!(e["error"], 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    conn.close();
}

// Natively only (as in every file here): Meteor's server is a Node process
// the test starts; the browser meets it in tests/js/meteor*.test.mjs.
#[cfg(not(target_arch = "wasm32"))]
#[tokio::test(crate = "common::local_set")]
async fn against_meteor_live_data_and_a_new_session_without_a_flicker() {
    let Some((meteor, conn)) = Meteor::open(Fixture::Server) else { return };
    let items = conn.collection("items");
    conn.subscribe("items", (3,)).wait_ready().await.unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.find_one("item2").unwrap()["at"], json!({"$date": 0}), "an EJSON date, as Meteor sent it");
    let docs = conn.collection("docs");
    conn.subscribe("docs", ()).wait_ready().await.unwrap();
    let id: String = conn.call("insertDoc", (json!({"text": "hello", "n": 1}),)).await.unwrap();
    wait_until(5_000, "the inserted document", || docs.find_one(&id).is_some()).await;
    let _: Value = conn.call("updateDoc", (&id, json!({"text": "edited"}), ["n"])).await.unwrap();
    wait_until(5_000, "the update", || docs.find_one(&id).is_some_and(|d| d["text"] == "edited" && d.get("n").is_none())).await;
    match conn.subscribe("failing", ()).wait_ready().await {
        Err(SubscriptionEnd::Failed(e)) => assert_eq!((&e["error"], &e["reason"]), (&json!("not-allowed"), &json!("nope"))),
        other => panic!("expected a failure, got {other:?}"),
    }
    // Meteor 3.0.4 does not resume sessions: a new one, whose re-sent
    // subscriptions bring the same documents, changing nothing.
    let session = conn.id().unwrap();
    let changes: Rc<RefCell<Vec<Change>>> = Rc::default();
    let c = changes.clone();
    let _watch = items.on_change(move |ch| c.borrow_mut().push(ch.clone()));
    meteor.control("drop").await;
    wait_status(&conn, 10_000, "a new session", |s| s.connected && conn.id().is_some_and(|s| s != session)).await;
    assert!(!conn.resumed());
    assert_eq!(conn.call::<i64>("add", (1, 1)).await, Ok(2));
    assert_eq!(items.len(), 3);
    assert_eq!(*changes.borrow(), vec![], "no change at all");
    assert_eq!(docs.find_one(&id).unwrap()["text"], "edited");
    let _: bool = conn.call("removeDoc", (&id,)).await.unwrap();
    wait_until(5_000, "the removal", || docs.find_one(&id).is_none()).await;
    conn.close();
}
