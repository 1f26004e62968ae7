//! A benchmark, not a test (it prints figures and asserts nothing): a live
//! list of 10k documents rendered by Leptos under 100 server-side changes,
//! with `use_collection` (keyed `<For>`, one signal per document) against
//! rebuilding the list (a `Vec<Value>` of every document, rebuilt on every
//! change, rendered as a plain list). Run by `scripts/bench-leptos.sh`
//! (from `scripts/bench.sh`), optimised; it prints table rows prefixed
//! `BENCH|`.
#![cfg(target_arch = "wasm32")]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::leptos::*;
use ddp_live::{connect, Collection, Connection};
use leptos::prelude::*;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const DOCS: usize = 10_000;
const CHANGES: usize = 100;

fn now() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now()
}

/// What one run measured.
struct Figures {
    per_change_ms: Vec<f64>,
    nodes_touched: Vec<u32>,
    initial_render_ms: f64,
}

/// Renders with `view`, then changes one document at a time on the server
/// and times each from the change's arrival (the collection's listener) to
/// the DOM mutation that shows it (the MutationObserver's callback),
/// counting the DOM nodes each mutation batch touched.
async fn run<N: IntoView + 'static>(
    label: &str,
    writer: &Connection,
    conn: &Connection,
    view: impl FnOnce(Collection) -> N + 'static,
) -> Figures {
    let el = container();
    let coll = conn.collection("bench");
    let c = coll.clone();
    let t0 = now();
    let app = leptos::mount::mount_to(el.clone(), move || view(c));
    while el.query_selector_all("li").unwrap().length() < DOCS as u32 {
        sleep(5).await;
    }
    let initial_render_ms = now() - t0;
    let ul = el.query_selector("ul").unwrap().unwrap();
    // When the current change arrived, and what the observer saw after it.
    let arrived = Rc::new(RefCell::new(0.0));
    let a = arrived.clone();
    let _listen = coll.on_change(move |_| *a.borrow_mut() = now());
    let seen: Rc<RefCell<Option<(f64, u32)>>> = Rc::default();
    let s = seen.clone();
    let callback = Closure::<dyn FnMut(js_sys::Array)>::new(move |batch: js_sys::Array| {
        let mut touched = 0u32;
        for m in batch.iter() {
            let m: web_sys::MutationRecord = m.unchecked_into();
            touched += 1 + m.added_nodes().length() + m.removed_nodes().length();
        }
        let mut seen = s.borrow_mut();
        let prev = seen.map_or(0, |(_, n)| n);
        *seen = Some((now(), prev + touched));
    });
    let observer = web_sys::MutationObserver::new(callback.as_ref().unchecked_ref()).unwrap();
    let init = web_sys::MutationObserverInit::new();
    init.set_subtree(true);
    init.set_child_list(true);
    init.set_character_data(true);
    init.set_attributes(true);
    observer.observe_with_options(&ul, &init).unwrap();
    let mut figures = Figures { per_change_ms: Vec::new(), nodes_touched: Vec::new(), initial_render_ms };
    for k in 0..CHANGES {
        *seen.borrow_mut() = None;
        let id = format!("d{:05}", (k * 97) % DOCS);
        // (A text no earlier run wrote: an update that changes nothing
        // sends nothing.)
        let text = format!("{label} {k}");
        let _: Value = writer.call("updateDoc", ("bench", id.as_str(), json!({"text": text}))).await.unwrap();
        let selector = format!("li[data-id={id}]");
        while el.query_selector(&selector).unwrap().and_then(|e| e.text_content()).as_deref() != Some(text.as_str()) {
            sleep(1).await;
        }
        sleep(5).await; // the observer's callback for the last batch
        let (at, touched) = seen.borrow().unwrap_or((now(), 0));
        figures.per_change_ms.push(at - *arrived.borrow());
        figures.nodes_touched.push(touched);
    }
    observer.disconnect();
    drop(app);
    el.remove();
    figures
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[wasm_bindgen_test]
async fn live_keyed_list_of_10k_under_100_changes() {
    let (sc, writer) = open("bench-leptos");
    for chunk in (0..DOCS).collect::<Vec<_>>().chunks(1000) {
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
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let sub = conn.subscribe("docs", ("bench",));
    sub.wait_ready().await.unwrap();

    let keyed = run("keyed", &writer, &conn, |coll| {
        let rows = collection_docs(&coll);
        view! {
            <ul>
                <For each=move || rows.docs.get() key=|d| d.id().to_owned() let:row>
                    {
                        let id = row.id().to_owned();
                        view! { <li data-id=id>{move || row.field("text").as_str().unwrap_or("").to_owned()}</li> }
                    }
                </For>
            </ul>
        }
    })
    .await;

    // The list rebuilt on every change (what `collection_signal` did): every
    // document copied into a new Vec, every row's view rebuilt.
    let rebuilt = run("rebuilt", &writer, &conn, |coll| {
        let version = ArcRwSignal::new(0u64);
        let bump = version.clone();
        let listener = coll.on_change(move |_| bump.update(|v| *v += 1));
        let kept = send_wrapper::SendWrapper::new(listener);
        on_cleanup(move || drop(kept));
        let docs = Signal::derive_local(move || {
            version.track();
            coll.find()
        });
        view! {
            <ul>
                {move || docs.get().into_iter().map(|d| {
                    let id = d["_id"].as_str().unwrap_or("").to_owned();
                    let text = d["text"].as_str().unwrap_or("").to_owned();
                    view! { <li data-id=id>{text}</li> }
                }).collect_view()}
            </ul>
        }
    })
    .await;

    let row = |name: &str, f: &Figures| {
        let touched: Vec<f64> = f.nodes_touched.iter().map(|&n| n as f64).collect();
        format!(
            "BENCH|| {name} | {:.2} ms | {:.2} ms | {:.0} | {:.0} ms |",
            median(f.per_change_ms.clone()),
            f.per_change_ms.iter().cloned().fold(0.0, f64::max),
            median(touched),
            f.initial_render_ms,
        )
    };
    web_sys::console::log_1(&row("`use_collection`: keyed `<For>`, a signal per document", &keyed).into());
    web_sys::console::log_1(&row("the list rebuilt on every change (`Vec<Value>`, plain list)", &rebuilt).into());
    sub.stop();
    writer.close();
    conn.close();
}
