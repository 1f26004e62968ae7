//! The durable outbox (`Options::persist`), end to end against the test
//! server, in Chromium over IndexedDB (cargo feature `persist`) and
//! natively over the process's memory, from the same tests: calls queued
//! offline outlive their connection (a page that goes away) and run exactly
//! once from the next one, with the ids their stubs made; a login is never
//! kept; an insert in flight when its page dies makes one document; a
//! queue written as one user waits for that user; a second live
//! connection (a second tab) leaves the first one's queue alone. In
//! Chromium also: IndexedDB missing, or full, is a typed error and no call
//! is lost. (`tests/js/leptos-example.test.mjs` reloads a real page.)
#![cfg(any(all(target_arch = "wasm32", feature = "persist"), feature = "native"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Connection, Options, PersistEvent};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Fast retries, and the outbox kept in store `store`.
fn persisted(store: &str) -> Options {
    Options { persist: Some(store.into()), ..fast() }
}

/// Whether an event is the durable cache's.
fn of_cache(e: &PersistEvent) -> bool {
    matches!(
        e,
        PersistEvent::CacheRestored { .. }
            | PersistEvent::CacheWritten { .. }
            | PersistEvent::CacheFull { .. }
            | PersistEvent::CacheFailed { .. }
    )
}

/// Records the durable outbox's events (`cache`: the durable cache's).
fn events_of(conn: &Connection, cache: bool) -> (Rc<RefCell<Vec<PersistEvent>>>, ddp_live::ListenerHandle) {
    let seen: Rc<RefCell<Vec<PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let handle = conn.persisted_calls().expect("a durable outbox").on_event(move |e| {
        if of_cache(e) == cache {
            s.borrow_mut().push(e.clone())
        }
    });
    (seen, handle)
}

/// Records the durable outbox's events.
fn events(conn: &Connection) -> (Rc<RefCell<Vec<PersistEvent>>>, ddp_live::ListenerHandle) {
    events_of(conn, false)
}

/// Records the durable cache's events.
fn cache_events(conn: &Connection) -> (Rc<RefCell<Vec<PersistEvent>>>, ddp_live::ListenerHandle) {
    events_of(conn, true)
}

/// Waits for the store to be read; returns its first event.
async fn restored(seen: &Rc<RefCell<Vec<PersistEvent>>>) -> PersistEvent {
    wait_until(5_000, "the store read", || !seen.borrow().is_empty()).await;
    let first = seen.borrow()[0].clone();
    first
}

fn settled(seen: &Rc<RefCell<Vec<PersistEvent>>>) -> Vec<(String, Result<Option<Value>, ddp_live::MethodError>)> {
    seen.borrow()
        .iter()
        .filter_map(|e| match e {
            PersistEvent::Settled { name, outcome, .. } => Some((name.clone(), outcome.clone())),
            _ => None,
        })
        .collect()
}

/// Waits until every call the outbox lists is kept by the store.
async fn all_kept(conn: &Connection, n: usize) {
    wait_until(5_000, "every call kept", || {
        let kept = conn.persisted_calls().unwrap().list();
        kept.len() == n && kept.iter().all(|c| c.durable)
    })
    .await;
}

/// Waits until `n` calls of `page` are on the wire and kept by its store;
/// then the page dies (dropped, never closed: its session is left to
/// resume).
async fn dies_with_calls_in_flight(page: Connection, n: usize) {
    wait_until(5_000, "the calls sent and kept", || {
        page.outbox().in_flight == n && page.persisted_calls().unwrap().list().iter().all(|c| c.durable)
    })
    .await;
    drop(page);
}

/// A client stub of `insertDoc`, as an app's: the document shows at once,
/// with the id the server's insert makes from the call's randomSeed.
fn insert_stub(conn: &Connection) {
    conn.define_stub("insertDoc", |ctx, args| {
        let collection = args.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
        Ok(Value::String(ctx.insert(&collection, args.get(1).cloned().unwrap_or(json!({})))))
    });
}

/// A connection to scenario `sc` that is offline: the server refuses it.
async fn offline(sc: &str, store: &str) -> Connection {
    let conn = connect(&ws_url(sc), persisted(store)).unwrap();
    wait_connected(&conn).await;
    control(sc, "refuse?on=true").await;
    control(sc, "drop").await;
    wait_until(5_000, "the drop", || !conn.connected()).await;
    conn
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn calls_queued_offline_outlive_their_connection_and_run_once_with_their_stub_ids() {
    let sc = scenario("p-outlive");
    let first = offline(&sc, &sc).await;
    insert_stub(&first);
    first.call::<Value>("insertDoc", ("todos", json!({"text": "milk"}))).detach();
    first.call::<Value>("inc", ("k",)).detach();
    let stub_id = first.collection("todos").find()[0]["_id"].as_str().unwrap().to_owned();
    let kept = first.persisted_calls().unwrap().list();
    assert_eq!(kept.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["insertDoc", "inc"]);
    assert!(kept.iter().all(|c| !c.from_earlier_page && !c.waiting_for_user));
    // The page goes once the store confirmed both.
    all_kept(&first, 2).await;
    drop(first);
    control(&sc, "refuse?on=false").await;

    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&next);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 2, waiting: 0 });
    assert!(next.persisted_calls().unwrap().list().iter().all(|c| c.from_earlier_page && c.durable));
    wait_until(5_000, "both settled", || settled(&seen).len() == 2).await;
    assert_eq!(
        settled(&seen),
        vec![("insertDoc".into(), Ok(Some(json!(stub_id)))), ("inc".into(), Ok(Some(json!(1))))],
        "in the order made; the server's id is the stub's"
    );
    let runs = control(&sc, "executions").await;
    assert_eq!((runs["runs"]["insertDoc"].as_u64(), runs["counters"]["k"].as_u64()), (Some(1), Some(1)), "{runs}");
    assert!(next.persisted_calls().unwrap().list().is_empty());
    drop(next);
    // Nothing is left for a third start.
    let third = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&third);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 0, waiting: 0 });
    third.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_queue_written_as_one_user_is_sent_only_as_that_user() {
    let sc = scenario("p-user");
    let ada = control(&sc, "accounts?op=create&username=ada&password=pw").await["id"].as_str().unwrap().to_owned();
    control(&sc, "accounts?op=create&username=bob&password=pw").await;
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    first.accounts().login_with_password("ada", "pw").await.unwrap();
    control(&sc, "refuse?on=true").await;
    control(&sc, "drop").await;
    wait_until(5_000, "the drop", || !first.connected()).await;
    first.call::<Value>("whoami", ()).detach();
    let kept = first.persisted_calls().unwrap().list();
    assert_eq!(kept.len(), 1, "the login (its credentials) is never kept: {kept:?}");
    assert_eq!((kept[0].name.as_str(), kept[0].user.as_deref()), ("whoami", Some(ada.as_str())));
    all_kept(&first, 1).await;
    drop(first);
    control(&sc, "refuse?on=false").await;

    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&next);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 0, waiting: 1 }, "nobody is logged in: it waits");
    assert!(next.persisted_calls().unwrap().list()[0].waiting_for_user);
    let accounts = next.accounts();
    accounts.login_with_password("bob", "pw").await.unwrap();
    wait_until(2_000, "the report", || {
        seen.borrow().iter().any(|e| matches!(e, PersistEvent::WaitingForUser { user, .. } if *user == ada))
    })
    .await;
    assert_ne!(next.call::<Option<String>>("whoami", ()).await.unwrap(), Some(ada.clone()));
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["runs"]["whoami"], 1, "only bob's own call ran: {runs}");
    accounts.logout().await.unwrap();
    accounts.login_with_password("ada", "pw").await.unwrap();
    wait_until(5_000, "ada's call settled", || !settled(&seen).is_empty()).await;
    assert_eq!(settled(&seen), vec![("whoami".into(), Ok(Some(json!(ada))))], "sent as ada");
    assert!(next.persisted_calls().unwrap().list().is_empty());
    next.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_second_connection_leaves_a_live_ones_queue_alone() {
    let sc = scenario("p-tabs");
    let first = offline(&sc, &sc).await;
    first.call::<Value>("inc", ("k",)).detach();
    all_kept(&first, 1).await;
    // A second tab while the first lives (its page lock held): it takes
    // none of its calls.
    let second = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&second);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 0, waiting: 0 });
    // The first tab goes: the next one to start takes its call.
    drop(first);
    control(&sc, "refuse?on=false").await;
    let third = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&third);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 1, waiting: 0 });
    wait_until(5_000, "the call settled", || !settled(&seen).is_empty()).await;
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["counters"]["k"], 1, "{runs}");
    second.close();
    third.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn an_insert_in_flight_when_its_page_dies_makes_one_document_with_its_stub_id() {
    let sc = scenario("p-inflight");
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    insert_stub(&first);
    wait_connected(&first).await;
    // The insert is on the wire behind a slow call when the page dies: the
    // server may run it before or after the next page sends it again.
    first.call::<Value>("sleep", (300,)).detach();
    first.call::<Value>("insertDoc", ("todos", json!({"text": "milk"}))).detach();
    let stub_id = first.collection("todos").find()[0]["_id"].as_str().unwrap().to_owned();
    dies_with_calls_in_flight(first, 2).await;

    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&next);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 2, waiting: 0 });
    wait_until(5_000, "both settled", || settled(&seen).len() == 2).await;
    let insert = settled(&seen).into_iter().find(|(name, _)| name == "insertDoc").unwrap().1;
    match insert {
        Ok(id) => assert_eq!(id, Some(json!(stub_id)), "sent again before the first copy ran: the server's id is the stub's"),
        Err(e) => assert_eq!(e.error(), json!("duplicate-key"), "the first copy ran: the second is refused, {e}"),
    }
    let todos = next.collection("todos");
    next.subscribe("docs", ("todos",)).wait_ready().await.unwrap();
    let ids: Vec<String> = todos.find().iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, vec![stub_id], "one document, the stub's");
    next.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_page_that_dies_with_calls_in_flight_hands_its_session_over_and_each_call_runs_once() {
    let sc = scenario("p-takeover");
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    insert_stub(&first);
    wait_connected(&first).await;
    let session = first.session_id().expect("a session");
    first.subscribe("docs", ("todos",)).wait_ready().await.unwrap();
    // Both on the wire when the page dies: the server is still running the
    // first (methods run one at a time), and runs the second after it.
    first.call::<Value>("sleep", (400,)).detach();
    first.call::<Value>("inc", ("k",)).detach();
    first.call::<Value>("insertDoc", ("todos", json!({"text": "milk"}))).detach();
    let stub_id = first.collection("todos").find()[0]["_id"].as_str().unwrap().to_owned();
    dies_with_calls_in_flight(first, 3).await;

    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&next);
    let todos = next.collection("todos");
    let sub = next.subscribe("docs", ("todos",));
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 3, waiting: 0 });
    wait_until(5_000, "all settled", || settled(&seen).len() == 3).await;
    assert_eq!(next.session_id(), Some(session), "the earlier page's session, resumed");
    assert_eq!(
        settled(&seen),
        vec![
            ("sleep".into(), Ok(Some(json!(400)))),
            ("inc".into(), Ok(Some(json!(1)))),
            ("insertDoc".into(), Ok(Some(json!(stub_id.clone()))))
        ],
        "each call's own result, replayed: none ran again"
    );
    let runs = control(&sc, "executions").await;
    assert_eq!((runs["runs"]["insertDoc"].as_u64(), runs["counters"]["k"].as_u64()), (Some(1), Some(1)), "{runs}");
    sub.wait_ready().await.unwrap();
    let ids: Vec<String> = todos.find().iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, vec![stub_id], "one document, the stub's, from this page's subscription");
    let stats = control(&sc, "stats").await;
    assert_eq!(stats["subscriptions"], json!(1), "the earlier page's subscription was stopped: {stats}");
    next.close();
    // A closed connection ended its session: the next start has none to take.
    let third = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&third);
    restored(&seen).await;
    wait_connected(&third).await;
    assert_ne!(third.session_id(), next.session_id());
    third.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn calls_in_flight_of_a_logged_in_page_wait_for_their_user_in_the_session_taken_over_and_run_once() {
    let sc = scenario("p-takeover-user");
    control(&sc, "accounts?op=create&username=ada&password=pw").await;
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    first.accounts().login_with_password("ada", "pw").await.unwrap();
    first.call::<Value>("sleep", (400,)).detach();
    first.call::<Value>("inc", ("k",)).detach();
    dies_with_calls_in_flight(first, 2).await;

    // The next page takes the session over; its results are replayed
    // while the calls still wait for ada (nobody is logged in here yet).
    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&next);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 0, waiting: 2 });
    wait_connected(&next).await;
    assert!(next.resumed(), "the earlier page's session, taken over");
    sleep(600).await;
    next.accounts().login_with_password("ada", "pw").await.unwrap();
    wait_until(5_000, "both settled", || settled(&seen).len() == 2).await;
    assert_eq!(settled(&seen), vec![("sleep".into(), Ok(Some(json!(400)))), ("inc".into(), Ok(Some(json!(1))))]);
    let runs = control(&sc, "executions").await;
    assert_eq!((runs["runs"]["sleep"].as_u64(), runs["counters"]["k"].as_u64()), (Some(1), Some(1)), "none ran again: {runs}");
    next.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn an_earlier_pages_calls_are_taken_by_one_page_only() {
    let sc = scenario("p-claim");
    let first = offline(&sc, &sc).await;
    first.call::<Value>("inc", ("k",)).detach();
    all_kept(&first, 1).await;
    drop(first);
    // Two pages open after it, while the server is still away: the first to
    // read takes the call, the other leaves it (it is the first's now).
    let second = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen2, _h2) = events(&second);
    assert_eq!(restored(&seen2).await, PersistEvent::Restored { count: 1, waiting: 0 });
    let third = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen3, _h3) = events(&third);
    assert_eq!(restored(&seen3).await, PersistEvent::Restored { count: 0, waiting: 0 });
    control(&sc, "refuse?on=false").await;
    wait_until(5_000, "the call settled", || !settled(&seen2).is_empty()).await;
    wait_connected(&third).await;
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["counters"]["k"], 1, "{runs}");
    assert!(settled(&seen3).is_empty());
    // Closed, the second lets go of it all: a fourth page finds nothing left.
    second.close();
    third.close();
    let fourth = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen4, _h4) = events(&fourth);
    assert_eq!(restored(&seen4).await, PersistEvent::Restored { count: 0, waiting: 0 });
    fourth.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_closed_connections_calls_are_taken_by_the_next_one_on_the_same_page() {
    let sc = scenario("p-close");
    let first = offline(&sc, &sc).await;
    first.call::<Value>("inc", ("k",)).detach();
    all_kept(&first, 1).await;
    // Closed but still held by the app: its store and page lock go.
    first.close();
    control(&sc, "refuse?on=false").await;
    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&next);
    assert_eq!(restored(&seen).await, PersistEvent::Restored { count: 1, waiting: 0 });
    wait_until(5_000, "the call settled", || !settled(&seen).is_empty()).await;
    assert_eq!(settled(&seen), vec![("inc".into(), Ok(Some(json!(1))))]);
    drop(first);
    next.close();
}

/// Runs JavaScript in the page (to take IndexedDB away, or fill it).
#[cfg(target_arch = "wasm32")]
fn page_js(source: &str) {
    js_sys::Function::new_no_args(source).call0(&wasm_bindgen::JsValue::NULL).expect("the page's script ran");
}

// Browser only: IndexedDB taken away from the page.
#[cfg(target_arch = "wasm32")]
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
    let first = restored(&seen).await;
    page_js("Object.defineProperty(globalThis, 'indexedDB', globalThis.__idb);");
    match first {
        PersistEvent::StorageFailed { key: None, error } => assert_eq!(error.kind, ddp_live::StorageErrorKind::Unavailable, "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(call.await, Ok(5), "the call went out from memory");
    conn.close();
}

// Browser only: IndexedDB's quota made full.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
async fn a_full_quota_is_a_typed_error_and_the_call_still_runs() {
    let sc = scenario("p-quota");
    let conn = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = events(&conn);
    restored(&seen).await;
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
            assert_eq!((error.kind, error.code()), (ddp_live::StorageErrorKind::QuotaExceeded, "storage-quota-exceeded"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(call.await, Ok(9));
    conn.close();
}

// The durable cache of documents.

/// Waits until the cache was read; returns (documents shown, user).
async fn cache_restored(seen: &Rc<RefCell<Vec<PersistEvent>>>) -> (usize, Option<String>) {
    poll(
        5_000,
        || format!("the cache read: {:?}", seen.borrow()),
        || {
            seen.borrow().iter().find_map(|e| match e {
                PersistEvent::CacheRestored { documents, user } => Some((*documents, user.clone())),
                _ => None,
            })
        },
    )
    .await
}

/// Waits until the cache holds `n` documents (a batch written after `from` events).
async fn cache_holds(seen: &Rc<RefCell<Vec<PersistEvent>>>, n: usize) {
    wait_until(5_000, &format!("the cache holds {n} documents"), || {
        seen.borrow().iter().rev().find_map(|e| match e {
            PersistEvent::CacheWritten { documents } => Some(*documents == n),
            _ => None,
        }) == Some(true)
    })
    .await
}

/// The changes a collection reports, as (id, kind).
fn changes_of(c: &ddp_live::Collection) -> (Rc<RefCell<Vec<(String, &'static str)>>>, ddp_live::ListenerHandle) {
    let seen: Rc<RefCell<Vec<(String, &'static str)>>> = Rc::default();
    let s = seen.clone();
    let handle = c.on_change(move |change| {
        let kind = match change {
            ddp_live::Change::Added { .. } => "added",
            ddp_live::Change::Changed { .. } => "changed",
            ddp_live::Change::Removed { .. } => "removed",
        };
        s.borrow_mut().push((change.id().to_owned(), kind));
    });
    (seen, handle)
}

fn texts(c: &ddp_live::Collection) -> Vec<(String, String)> {
    c.find().iter().map(|d| (d["_id"].as_str().unwrap().to_owned(), d["text"].as_str().unwrap_or_default().to_owned())).collect()
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_document_its_stub_showed_first_is_cached_even_when_the_server_s_copy_is_the_same() {
    let sc = scenario("p-stubbed");
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    insert_stub(&first);
    let (seen, _h) = cache_events(&first);
    first.subscribe("docs", ("todos",)).wait_ready().await.unwrap();
    // The stub shows it at once; the server's `added` then changes nothing
    // visible (the same fields), and no change is reported.
    let id: Value = first.call("insertDoc", ("todos", json!({"text": "milk"}))).await.unwrap();
    cache_holds(&seen, 1).await;
    drop(first);
    control(&sc, "refuse?on=true").await;
    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&next);
    assert_eq!(cache_restored(&seen).await, (1, None));
    assert_eq!(next.collection("todos").find()[0]["_id"], id, "shown from the cache, offline");
    next.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn cached_documents_show_before_the_server_is_reachable_stale_then_reconcile_without_flicker() {
    let sc = scenario("p-cache");
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&first);
    let sub = first.subscribe("docs", ("todos",));
    for (id, text) in [("a", "milk"), ("b", "eggs"), ("c", "tea")] {
        first.call::<Value>("insertDoc", ("todos", json!({"_id": id, "text": text}))).await.unwrap();
    }
    sub.wait_ready().await.unwrap();
    assert!(!first.stale() && !sub.stale());
    cache_holds(&seen, 3).await;
    drop(first);
    // Meanwhile, on the server: one removed, one changed, one added.
    let other = connect(&ws_url(&sc), fast()).unwrap();
    other.call::<Value>("removeDoc", ("todos", "b")).await.unwrap();
    other.call::<Value>("updateDoc", ("todos", "c", json!({"text": "green tea"}))).await.unwrap();
    other.call::<Value>("insertDoc", ("todos", json!({"_id": "d", "text": "jam"}))).await.unwrap();
    other.close();
    control(&sc, "refuse?on=true").await;

    // The reload, offline: the last known todos show, stale.
    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&next);
    let todos = next.collection("todos");
    let (changes, _c) = changes_of(&todos);
    let sub = next.subscribe("docs", ("todos",));
    assert_eq!(cache_restored(&seen).await, (3, None));
    assert_eq!(texts(&todos), [("a".into(), "milk".into()), ("b".into(), "eggs".into()), ("c".into(), "tea".into())]);
    assert!(next.stale() && sub.stale() && !sub.ready() && !next.connected());
    let stale_seen: Rc<RefCell<Vec<bool>>> = Rc::default();
    let s = stale_seen.clone();
    let _o = next.stale_observable().subscribe(move |v| s.borrow_mut().push(*v));
    sleep(300).await;
    assert!(next.stale(), "stale while offline");
    changes.borrow_mut().clear();
    // The server is back: once the subscription is ready, only the differences.
    control(&sc, "refuse?on=false").await;
    sub.wait_ready().await.unwrap();
    assert!(!next.stale() && !sub.stale());
    assert_eq!(*stale_seen.borrow(), [false]);
    let mut got = changes.borrow().clone();
    got.sort();
    assert_eq!(got, [("b".into(), "removed"), ("c".into(), "changed"), ("d".into(), "added")], "no flicker: a untouched");
    assert_eq!(texts(&todos), [("a".into(), "milk".into()), ("c".into(), "green tea".into()), ("d".into(), "jam".into())]);
    // And the cache follows: a third start shows the new state.
    cache_holds(&seen, 3).await;
    next.close();
    control(&sc, "refuse?on=true").await;
    let third = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&third);
    let todos = third.collection("todos");
    assert_eq!(cache_restored(&seen).await, (3, None));
    assert_eq!(texts(&todos), [("a".into(), "milk".into()), ("c".into(), "green tea".into()), ("d".into(), "jam".into())]);
    third.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn cached_documents_no_subscription_claims_go_once_the_subscriptions_are_ready() {
    let sc = scenario("p-cache-unclaimed");
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&first);
    first.call::<Value>("insertDoc", ("todos", json!({"_id": "t", "text": "milk"}))).await.unwrap();
    first.call::<Value>("insertDoc", ("notes", json!({"_id": "n", "text": "hi"}))).await.unwrap();
    let a = first.subscribe("docs", ("todos",));
    let b = first.subscribe("docs", ("notes",));
    a.wait_ready().await.unwrap();
    b.wait_ready().await.unwrap();
    cache_holds(&seen, 2).await;
    first.close();
    // The next page subscribes to the todos only: the cached notes show
    // until it is ready, then go.
    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&next);
    let sub = next.subscribe("docs", ("todos",));
    let notes = next.collection("notes");
    let (changes, _c) = changes_of(&next.collection("todos"));
    assert_eq!(cache_restored(&seen).await.0, 2);
    assert_eq!(*changes.borrow(), [("t".to_owned(), "added")], "shown from the cache");
    changes.borrow_mut().clear();
    sub.wait_ready().await.unwrap();
    wait_until(2_000, "the unclaimed note gone", || notes.is_empty()).await;
    assert!(changes.borrow().is_empty(), "the todo was untouched: {:?}", changes.borrow());
    assert!(!next.stale());
    cache_holds(&seen, 1).await;
    next.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_users_cached_documents_are_shown_to_that_user_only() {
    let sc = scenario("p-cache-user");
    let ada = control(&sc, "accounts?op=create&username=ada&password=pw").await["id"].as_str().unwrap().to_owned();
    let bob = control(&sc, "accounts?op=create&username=bob&password=pw").await["id"].as_str().unwrap().to_owned();
    let first = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&first);
    first.accounts().persist_login(ddp_live::PersistLogin::ConnectUrl);
    first.accounts().login_with_password("ada", "pw").await.unwrap();
    first.call::<Value>("insertDoc", ("todos", json!({"_id": "t", "text": "ada's"}))).await.unwrap();
    first.subscribe("docs", ("todos",)).wait_ready().await.unwrap();
    // Ada's user document and the todo.
    cache_holds(&seen, 2).await;
    drop(first);
    control(&sc, "refuse?on=true").await;

    // A page where nobody is logged in sees none of ada's documents.
    let anonymous = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&anonymous);
    assert_eq!(cache_restored(&seen).await, (0, None));
    assert!(anonymous.collection("users").is_empty() && anonymous.collection("todos").is_empty());
    assert!(!anonymous.stale());
    anonymous.close();

    // A page restoring ada's login shows hers at once, offline.
    let next = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&next);
    assert!(next.accounts().persist_login(ddp_live::PersistLogin::ConnectUrl));
    let sub = next.subscribe("docs", ("todos",));
    assert_eq!(cache_restored(&seen).await, (2, Some(ada.clone())));
    assert!(next.collection("users").find_one(&ada).is_some() && next.stale());
    control(&sc, "refuse?on=false").await;
    sub.wait_ready().await.unwrap();
    wait_until(5_000, "logged in again", || next.accounts().user_id().as_deref() == Some(ada.as_str()) && !next.stale()).await;
    // She logs out, bob logs in: her documents leave the cache.
    next.accounts().logout().await.unwrap();
    next.accounts().login_with_password("bob", "pw").await.unwrap();
    let before = seen.borrow().len();
    wait_until(5_000, "bob's cache written", || seen.borrow()[before..].iter().any(|e| matches!(e, PersistEvent::CacheWritten { .. })))
        .await;
    next.close();
    control(&sc, "refuse?on=true").await;
    let third = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (seen, _h) = cache_events(&third);
    assert!(third.accounts().persist_login(ddp_live::PersistLogin::ConnectUrl));
    let (_, user) = cache_restored(&seen).await;
    assert_eq!(user.as_deref(), Some(bob.as_str()));
    let users = third.collection("users");
    assert!(users.find_one(&ada).is_none(), "never ada's: {:?}", users.find());
    assert!(users.find_one(&bob).is_some());
    third.close();
}

// Browser only: the cache's database refuses writes (a full quota for it alone).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
async fn a_cache_that_cannot_write_is_a_typed_error_and_the_outbox_keeps_its_calls() {
    let sc = scenario("p-cache-quota");
    page_js(
        "globalThis.__tx = IDBDatabase.prototype.transaction;
         IDBDatabase.prototype.transaction = function (stores, mode, options) {
           if (mode === 'readwrite' && this.name.startsWith('ddp-live-cache/')) throw new DOMException('full', 'QuotaExceededError');
           return globalThis.__tx.call(this, stores, mode, options);
         };",
    );
    let conn = connect(&ws_url(&sc), persisted(&sc)).unwrap();
    let (cache, _c) = cache_events(&conn);
    let (outbox, _o) = events(&conn);
    let sub = conn.subscribe("docs", ("todos",));
    conn.call::<Value>("insertDoc", ("todos", json!({"_id": "a", "text": "milk"}))).await.unwrap();
    sub.wait_ready().await.unwrap();
    let failed = poll(
        5_000,
        || format!("the cache's report: {:?}", cache.borrow()),
        || {
            cache.borrow().iter().find_map(|e| match e {
                PersistEvent::CacheFailed { error } => Some(error.clone()),
                _ => None,
            })
        },
    )
    .await;
    assert_eq!(failed.kind, ddp_live::StorageErrorKind::QuotaExceeded, "{failed}");
    // The outbox, apart, still keeps a call made offline.
    control(&sc, "refuse?on=true").await;
    control(&sc, "drop").await;
    wait_until(5_000, "the drop", || !conn.connected()).await;
    conn.call::<Value>("inc", ("k",)).detach();
    all_kept(&conn, 1).await;
    page_js("IDBDatabase.prototype.transaction = globalThis.__tx;");
    assert!(!outbox.borrow().iter().any(|e| matches!(e, PersistEvent::StorageFailed { .. })), "{:?}", outbox.borrow());
    assert_eq!(conn.collection("todos").len(), 1, "the documents are there, only not kept");
    conn.close();
}
