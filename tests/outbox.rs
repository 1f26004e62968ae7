//! The durable outbox (`Options::persist`) natively, end to end against the
//! test server started in-process: calls queued offline outlive their
//! connection (a page that goes away) and run exactly once from the next
//! one, with the ids their stubs made; a queue written as one user waits
//! for that user. (In the browser, `tests/persist.rs` runs the same over
//! IndexedDB.)
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "server/tests/common/mod.rs"]
mod server;

use ddp_live::{connect, Connection, Options, PersistEvent, RetryPolicy};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::task::LocalSet;

fn options(store: &str) -> Options {
    Options {
        retry: RetryPolicy { min_count: 1, min_timeout_ms: 20.0, base_timeout_ms: 50.0, exponent: 1.5, max_timeout_ms: 200.0, fuzz: 0.5 },
        persist: Some(store.into()),
        ..Options::default()
    }
}

fn url(addr: SocketAddr, scenario: &str) -> String {
    format!("ws://{addr}/t/{scenario}/websocket")
}

async fn until(ms: u64, what: &str, pred: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while !pred() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {ms} ms waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Records the durable outbox's events.
fn events(conn: &Connection) -> (Rc<RefCell<Vec<PersistEvent>>>, ddp_live::ListenerHandle) {
    let seen: Rc<RefCell<Vec<PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let handle = conn.persisted_calls().expect("a durable outbox").on_event(move |e| s.borrow_mut().push(e.clone()));
    (seen, handle)
}

/// A client stub of `insertDoc`, as an app's: the document shows at once,
/// with the id the server's insert makes from the call's randomSeed.
fn insert_stub(conn: &Connection) {
    conn.define_stub("insertDoc", |ctx, args| {
        let collection = args.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
        let id = ctx.insert(&collection, args.get(1).cloned().unwrap_or(json!({})));
        Ok(Value::String(id))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_queued_offline_outlive_their_connection_and_run_once_with_their_stub_ids() {
    let (_server, addr) = server::start(Default::default()).await;
    LocalSet::new()
        .run_until(async move {
            let sc = "n-persist";
            let first = connect(&url(addr, sc), options("n-persist")).unwrap();
            insert_stub(&first);
            until(5_000, "connected", || first.connected()).await;
            server::control(addr, &format!("/control/{sc}/refuse?on=true")).await;
            server::control(addr, &format!("/control/{sc}/drop")).await;
            until(5_000, "the drop", || !first.connected()).await;
            // Offline: two inserts (their stubs show the documents at once) and a counter.
            first.call::<Value>("insertDoc", ("todos", json!({"text": "milk"}))).detach();
            first.call::<Value>("insertDoc", ("todos", json!({"text": "eggs"}))).detach();
            first.call::<Value>("inc", ("k",)).detach();
            let mut stub_ids: Vec<String> =
                first.collection("todos").find().iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
            stub_ids.sort();
            assert_eq!(stub_ids.len(), 2);
            let kept = first.persisted_calls().unwrap().list();
            assert_eq!(kept.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["insertDoc", "insertDoc", "inc"]);
            assert!(kept.iter().all(|c| !c.from_earlier_page && !c.waiting_for_user));
            // The page goes away with its calls unsent.
            drop(first);
            server::control(addr, &format!("/control/{sc}/refuse?on=false")).await;

            let next = connect(&url(addr, sc), options("n-persist")).unwrap();
            let (seen, _handle) = events(&next);
            until(2_000, "the store read", || !seen.borrow().is_empty()).await;
            assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 3, waiting: 0 });
            assert!(next.persisted_calls().unwrap().list().iter().all(|c| c.from_earlier_page));
            until(5_000, "the three calls settled", || {
                seen.borrow().iter().filter(|e| matches!(e, PersistEvent::Settled { .. })).count() == 3
            })
            .await;
            let settled: Vec<(String, Value)> = seen
                .borrow()
                .iter()
                .filter_map(|e| match e {
                    PersistEvent::Settled { name, outcome, .. } => Some((name.clone(), outcome.clone().unwrap().unwrap_or(Value::Null))),
                    _ => None,
                })
                .collect();
            assert_eq!(settled.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["insertDoc", "insertDoc", "inc"], "in the order made");
            let mut server_ids: Vec<String> = settled[..2].iter().map(|(_, id)| id.as_str().unwrap().to_owned()).collect();
            server_ids.sort();
            assert_eq!(server_ids, stub_ids, "the server's ids are the stubs' ids");
            assert_eq!(settled[2].1, json!(1));
            let runs = server::control(addr, &format!("/control/{sc}/executions")).await;
            assert_eq!(runs["runs"]["insertDoc"], 2, "each insert ran once: {runs}");
            assert_eq!(runs["counters"]["k"], 1, "the counter ran once: {runs}");
            assert!(next.persisted_calls().unwrap().list().is_empty());
            // Nothing is left to restore.
            drop(next);
            let again = connect(&url(addr, sc), options("n-persist")).unwrap();
            let (seen, _handle) = events(&again);
            until(5_000, "connected", || again.connected()).await;
            assert_eq!(seen.borrow().first(), Some(&PersistEvent::Restored { count: 0, waiting: 0 }));
            again.close();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_written_as_one_user_is_sent_only_as_that_user() {
    let (_server, addr) = server::start(Default::default()).await;
    let sc = "n-persist-user";
    let ada = server::control(addr, &format!("/control/{sc}/accounts?op=create&username=ada&password=pw")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server::control(addr, &format!("/control/{sc}/accounts?op=create&username=bob&password=pw")).await;
    LocalSet::new()
        .run_until(async move {
            let first = connect(&url(addr, sc), options("n-persist-user")).unwrap();
            first.accounts().login_with_password("ada", "pw").await.unwrap();
            server::control(addr, &format!("/control/{sc}/refuse?on=true")).await;
            server::control(addr, &format!("/control/{sc}/drop")).await;
            until(5_000, "the drop", || !first.connected()).await;
            first.call::<Value>("whoami", ()).detach();
            let kept = first.persisted_calls().unwrap().list();
            assert_eq!(kept.len(), 1, "the login (its credentials) is never kept: {kept:?}");
            assert_eq!((kept[0].name.as_str(), kept[0].user.as_deref()), ("whoami", Some(ada.as_str())));
            drop(first);
            server::control(addr, &format!("/control/{sc}/refuse?on=false")).await;

            let next = connect(&url(addr, sc), options("n-persist-user")).unwrap();
            let (seen, _handle) = events(&next);
            until(2_000, "the store read", || !seen.borrow().is_empty()).await;
            assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 0, waiting: 1 }, "nobody is logged in: it waits");
            assert!(next.persisted_calls().unwrap().list()[0].waiting_for_user);
            let accounts = next.accounts();
            accounts.login_with_password("bob", "pw").await.unwrap();
            until(2_000, "the report", || {
                seen.borrow().iter().any(|e| matches!(e, PersistEvent::WaitingForUser { user, .. } if *user == ada))
            })
            .await;
            assert_eq!(next.call::<Option<String>>("whoami", ()).await.unwrap().as_deref().map(|u| u != ada), Some(true));
            let runs = server::control(addr, &format!("/control/{sc}/executions")).await;
            assert_eq!(runs["runs"]["whoami"], 1, "only bob's own call ran: {runs}");
            accounts.logout().await.unwrap();
            accounts.login_with_password("ada", "pw").await.unwrap();
            until(5_000, "ada's call settled", || seen.borrow().iter().any(|e| matches!(e, PersistEvent::Settled { .. }))).await;
            let outcome = seen.borrow().iter().find_map(|e| match e {
                PersistEvent::Settled { outcome, .. } => Some(outcome.clone()),
                _ => None,
            });
            assert_eq!(outcome, Some(Ok(Some(json!(ada)))), "sent as ada");
            assert!(next.persisted_calls().unwrap().list().is_empty());
            next.close();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_leaves_a_live_ones_queue_alone() {
    let (_server, addr) = server::start(Default::default()).await;
    LocalSet::new()
        .run_until(async move {
            let sc = "n-persist-tabs";
            let first = connect(&url(addr, sc), options("n-persist-tabs")).unwrap();
            until(5_000, "connected", || first.connected()).await;
            server::control(addr, &format!("/control/{sc}/refuse?on=true")).await;
            server::control(addr, &format!("/control/{sc}/drop")).await;
            until(5_000, "the drop", || !first.connected()).await;
            first.call::<Value>("inc", ("k",)).detach();
            until(2_000, "kept", || first.persisted_calls().unwrap().list().iter().all(|c| c.durable)).await;
            // A second tab while the first lives: it takes none of its calls.
            let second = connect(&url(addr, sc), options("n-persist-tabs")).unwrap();
            let (seen, _h) = events(&second);
            until(2_000, "the store read", || !seen.borrow().is_empty()).await;
            assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 0, waiting: 0 });
            // The first tab goes: the next one to start takes its call.
            drop(first);
            server::control(addr, &format!("/control/{sc}/refuse?on=false")).await;
            let third = connect(&url(addr, sc), options("n-persist-tabs")).unwrap();
            let (seen, _h) = events(&third);
            until(5_000, "the call settled", || seen.borrow().iter().any(|e| matches!(e, PersistEvent::Settled { .. }))).await;
            assert_eq!(seen.borrow()[0], PersistEvent::Restored { count: 1, waiting: 0 });
            let runs = server::control(addr, &format!("/control/{sc}/executions")).await;
            assert_eq!(runs["counters"]["k"], 1, "{runs}");
            second.close();
            third.close();
        })
        .await;
}
