//! A benchmark of the durable cache (scripts/bench-cache.sh; it prints
//! figures and asserts little): the time from `connect()` on a fresh page
//! to the first documents in the collection, and to the subscription ready
//! and reconciled, with a cold cache (nothing kept) and a warm one (the
//! previous page's documents); and what IndexedDB holds per document.
#![cfg(all(target_arch = "wasm32", feature = "persist"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Connection, Options, PersistEvent};
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now()
}

/// Runs JavaScript returning a Promise of a number.
async fn js_number(source: &str, arg: &str) -> f64 {
    let f = js_sys::Function::new_with_args("arg", source);
    let promise: js_sys::Promise = f.call1(&wasm_bindgen::JsValue::NULL, &arg.into()).unwrap().unchecked_into();
    JsFuture::from(promise).await.unwrap().as_f64().unwrap_or(f64::NAN)
}

/// The origin's storage use, as the browser estimates it (bytes).
async fn usage() -> f64 {
    js_number("return navigator.storage.estimate().then((e) => e.usage)", "").await
}

/// The UTF-8 bytes of every key and value in IndexedDB database `arg`.
async fn record_bytes(db: &str) -> f64 {
    js_number(
        "return new Promise((ok, fail) => { const r = indexedDB.open(arg); r.onerror = fail; r.onsuccess = () => {
           const tx = r.result.transaction('records', 'readonly'); const s = tx.objectStore('records');
           const k = s.getAllKeys(), v = s.getAll();
           tx.oncomplete = () => { const n = (x) => new TextEncoder().encode(String(x)).length;
             ok(k.result.reduce((a, x) => a + n(x), 0) + v.result.reduce((a, x) => a + n(x), 0)); r.result.close(); };
         }; })",
        db,
    )
    .await
}

struct Load {
    /// The first document in the collection.
    first_ms: f64,
    /// All of them.
    all_ms: f64,
    /// The subscription ready, nothing stale.
    ready_ms: f64,
}

/// A page's start: `connect()` to the first documents, and to the
/// subscription ready with nothing stale.
async fn load(sc: &str, store: &str, n: usize) -> (Connection, Load) {
    let t0 = now();
    let conn = connect(&ws_url(sc), Options { persist: Some(store.into()), ..fast() }).unwrap();
    let docs = conn.collection("bench");
    let sub = conn.subscribe("docs", ("bench",));
    let first = Rc::new(Cell::new(f64::NAN));
    let all = Rc::new(Cell::new(f64::NAN));
    let (f, a, d) = (first.clone(), all.clone(), docs.clone());
    let _h = docs.on_change(move |_| {
        if f.get().is_nan() {
            f.set(now());
        }
        if a.get().is_nan() && d.len() == n {
            a.set(now());
        }
    });
    wait_until(120_000, "ready and fresh", || sub.ready() && !conn.stale() && docs.len() == n).await;
    let ready_ms = now() - t0;
    (conn, Load { first_ms: first.get() - t0, all_ms: all.get() - t0, ready_ms })
}

/// Waits until the cache holds `n` documents.
async fn cached(conn: &Connection, n: usize) {
    let held = Rc::new(Cell::new(0));
    let h = held.clone();
    let _l = conn.persisted_calls().unwrap().on_event(move |e| {
        if let PersistEvent::CacheWritten { documents } = e {
            h.set(*documents);
        }
    });
    wait_until(60_000, "the cache written", || held.get() == n).await;
}

#[wasm_bindgen_test]
async fn reload_with_a_warm_cache_against_a_cold_one() {
    for n in [1_000usize, 10_000] {
        let (sc, writer) = open("bench-cache");
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let calls: Vec<_> = chunk
                .iter()
                .map(|i| {
                    writer.call::<String>(
                        "insertDoc",
                        ("bench", json!({"_id": format!("d{i:05}"), "text": format!("row {i}"), "pad": "x".repeat(150)})),
                    )
                })
                .collect();
            for r in futures_util::future::join_all(calls).await {
                r.unwrap();
            }
        }
        writer.close();
        let store = format!("bench-{sc}");
        let before = usage().await;
        let (conn, cold) = load(&sc, &store, n).await;
        cached(&conn, n).await;
        let url = conn.url().to_owned();
        conn.close();
        sleep(500).await;
        let on_disk = (usage().await - before) / n as f64;
        let records = record_bytes(&format!("ddp-live-cache/{store}/{url}")).await / n as f64;
        // Warm, three times (the median).
        let mut warm = Vec::new();
        for _ in 0..3 {
            let (conn, l) = load(&sc, &store, n).await;
            conn.close();
            warm.push(l);
            sleep(200).await;
        }
        warm.sort_by(|a, b| a.all_ms.total_cmp(&b.all_ms));
        let w = &warm[1];
        web_sys::console::log_1(
            &format!(
                "BENCH|| {n} of ~200 B | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {records:.0} / {on_disk:.0} B |",
                cold.first_ms, cold.all_ms, w.first_ms, w.all_ms, cold.ready_ms, w.ready_ms
            )
            .into(),
        );
    }
}
