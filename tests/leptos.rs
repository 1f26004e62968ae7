//! Browser tests of the Leptos hooks: components mounted into the page's
//! DOM against the test server (`wasm-pack test --headless --chrome --
//! --features leptos,leptos/csr --test leptos`). What they check is read
//! off the DOM and off the server's stats.
#![cfg(target_arch = "wasm32")]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::leptos::*;
use ddp_live::{connect, Connection, ConnectionState, Options, RetryPolicy};
use leptos::prelude::*;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Mounts `f` under a component that provides `conn`; dropping the
/// returned handle unmounts it (and cleans up its owner).
fn mount<N: IntoView + 'static>(parent: &web_sys::HtmlElement, conn: &Connection, f: impl FnOnce() -> N + 'static) -> impl Sized {
    let conn = conn.clone();
    leptos::mount::mount_to(parent.clone(), move || {
        provide_connection(conn);
        f()
    })
}

/// The text of the first element matching `selector` ("" when none).
fn text(parent: &web_sys::HtmlElement, selector: &str) -> String {
    parent.query_selector(selector).unwrap().and_then(|e| e.text_content()).unwrap_or_default()
}

fn count(parent: &web_sys::HtmlElement, selector: &str) -> u32 {
    parent.query_selector_all(selector).unwrap().length()
}

/// The server's stats for the scenario once a round trip made sure it
/// read everything `conn` sent before.
async fn stats_after_round_trip(conn: &Connection, sc: &str) -> Value {
    let _: Value = conn.call("echo", (1,)).await.unwrap();
    control(sc, "stats").await
}

#[wasm_bindgen_test]
async fn the_badge_follows_a_drop_a_silent_server_and_counts_down_only_while_waiting() {
    let sc = scenario("l-badge");
    let options = Options {
        heartbeat_interval_ms: 200.0,
        heartbeat_timeout_ms: 300.0,
        connect_timeout_ms: 500.0,
        // The first retry at once, then 2.5 s: long enough to watch the
        // countdown tick.
        retry: RetryPolicy {
            min_count: 1,
            min_timeout_ms: 20.0,
            base_timeout_ms: 2500.0,
            exponent: 1.0,
            max_timeout_ms: 2500.0,
            fuzz: 0.0,
        },
        watch_page: false,
        ..Options::default()
    };
    let conn = connect(&ws_url(&sc), options).unwrap();
    let el = container();
    let _app = mount(&el, &conn, || {
        let UseStatus { status, retry_in, connected, .. } = use_status();
        view! {
            <span class="state">{move || status.get().status.to_string()}</span>
            <span class="connected">{move || connected.get().to_string()}</span>
            <span class="retry">{move || retry_in.get().map(|s| s.to_string()).unwrap_or_default()}</span>
        }
    });
    wait_until(5_000, "connected in the DOM", || text(&el, ".state") == "connected").await;
    assert_eq!(text(&el, ".connected"), "true");
    assert_eq!(text(&el, ".retry"), "", "no countdown while connected");

    // A drop with the server refusing: waiting, and the countdown ticks.
    control(&sc, "refuse?on=true").await;
    control(&sc, "drop").await;
    // (The first retry waits 20 ms, shown as 1 s; the second 2.5 s.)
    wait_until(5_000, "waiting 2.5 s", || text(&el, ".state") == "waiting" && text(&el, ".retry").parse::<u32>().is_ok_and(|s| s >= 2))
        .await;
    let first: u32 = text(&el, ".retry").parse().unwrap();
    assert!((2..=3).contains(&first), "2.5 s rounds up: {first}");
    wait_until(2_000, "the countdown to tick", || text(&el, ".retry").parse::<u32>().is_ok_and(|s| s < first)).await;
    assert_eq!(text(&el, ".state"), "waiting");
    control(&sc, "refuse?on=false").await;
    wait_until(5_000, "connected again", || text(&el, ".state") == "connected").await;
    assert_eq!(text(&el, ".retry"), "", "the countdown stops with waiting");

    // A silent server: the dead link shows, then the recovery.
    control(&sc, "silent?on=true").await;
    wait_until(5_000, "the dead link in the DOM", || text(&el, ".connected") == "false").await;
    assert_ne!(text(&el, ".state"), "connected");
    control(&sc, "silent?on=false").await;
    wait_until(8_000, "connected after the silence", || text(&el, ".state") == "connected").await;
    conn.close();
    wait_until(1_000, "offline after close", || text(&el, ".state") == ConnectionState::Offline.to_string()).await;
}

#[wasm_bindgen_test]
async fn a_todo_added_offline_shows_at_once_and_once_after_reconnecting() {
    let (sc, conn) = open("l-offline");
    conn.define_stub("insertDoc", |ctx, args| {
        let collection = args.first().and_then(Value::as_str).unwrap_or("docs").to_owned();
        Ok(Value::String(ctx.insert(&collection, args.get(1).cloned().unwrap_or_default())))
    });
    let el = container();
    let add: Rc<RefCell<Option<UseCall<String>>>> = Rc::default();
    let a = add.clone();
    let watched = RwSignal::new("none".to_string());
    let _app = mount(&el, &conn, move || {
        let sub = use_subscription("docs", ("todos",));
        let todos = use_collection("todos");
        let one = use_doc("todos", watched);
        let outbox = use_outbox();
        let insert = use_call::<String>("insertDoc");
        *a.borrow_mut() = Some(insert);
        view! {
            <span class="ready">{move || sub.ready.get().to_string()}</span>
            <span class="queued">{move || outbox.get().queued.to_string()}</span>
            <span class="pending">{move || insert.pending.get().to_string()}</span>
            <span class="value">{move || insert.value.get().unwrap_or_default()}</span>
            <span class="one">{move || one.get().map(|d| d["text"].to_string()).unwrap_or_else(|| "absent".into())}</span>
            <ul>
                <For each=move || todos.docs.get() key=|d| d.id().to_owned() let:todo>
                    <li>{move || todo.field("text").as_str().unwrap_or("").to_owned()}</li>
                </For>
            </ul>
        }
    });
    wait_until(5_000, "ready", || text(&el, ".ready") == "true").await;
    assert_eq!(count(&el, "li"), 0);

    conn.disconnect();
    let add = (*add.borrow()).unwrap();
    add.call(("todos", json!({"_id": "t1", "text": "written offline"})));
    wait_until(1_000, "the todo at once, from the stub", || text(&el, "li") == "written offline").await;
    assert_eq!(text(&el, ".one"), "absent", "use_doc watches another id");
    watched.set("t1".to_string());
    wait_until(1_000, "use_doc following its id", || text(&el, ".one") == "\"written offline\"").await;
    assert_eq!(text(&el, ".queued"), "1", "the call waits in the outbox");
    assert_eq!(text(&el, ".pending"), "true");

    conn.reconnect();
    wait_until(5_000, "the call done", || text(&el, ".pending") == "false").await;
    assert_eq!(text(&el, ".queued"), "0");
    assert_eq!(text(&el, ".value"), "t1", "the call's result");
    assert_eq!(text(&el, ".one"), "\"written offline\"");
    sleep(100).await;
    assert_eq!(count(&el, "li"), 1, "the server's copy replaced the stub's, once");
    assert_eq!(text(&el, "li"), "written offline");
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["runs"]["insertDoc"], 1, "it ran once on the server");
    conn.close();
}

#[wasm_bindgen_test]
async fn use_call_shows_the_error_of_a_failed_call() {
    let (_, conn) = open("l-call");
    let el = container();
    let hook: Rc<RefCell<Option<UseCall<Value>>>> = Rc::default();
    let h = hook.clone();
    let _app = mount(&el, &conn, move || {
        let call = use_call::<Value>("fail");
        *h.borrow_mut() = Some(call);
        view! {
            <span class="error">{move || call.error.get().map(|e| e.error().to_string()).unwrap_or_default()}</span>
            <span class="value">{move || call.value.get().map(|v| v.to_string()).unwrap_or_default()}</span>
        }
    });
    let call = (*hook.borrow()).unwrap();
    call.call(("not-allowed", "no"));
    wait_until(5_000, "the error", || text(&el, ".error") == "\"not-allowed\"").await;
    assert_eq!(text(&el, ".value"), "");
    conn.close();
}

#[wasm_bindgen_test]
async fn a_call_queued_offline_still_runs_after_its_component_is_gone() {
    let (sc, conn) = connected("l-call-gone").await;
    conn.disconnect();
    let el = container();
    let hook: Rc<RefCell<Option<UseCall<i64>>>> = Rc::default();
    let h = hook.clone();
    let app = mount(&el, &conn, move || {
        let inc = use_call::<i64>("inc");
        *h.borrow_mut() = Some(inc);
        view! { <span class="pending">{move || inc.pending.get().to_string()}</span> }
    });
    let inc = (*hook.borrow()).unwrap();
    inc.call(("k",));
    assert_eq!(conn.outbox().queued, 1);
    // The component goes while the call waits: nothing waits for it any
    // more, but it is not cancelled (a write made offline is not lost).
    drop(app);
    inc.call(("k",)); // a handle outliving its owner does nothing
    assert_eq!(conn.outbox().queued, 1);
    conn.reconnect();
    wait_connected(&conn).await;
    wait_until(5_000, "the outbox empty", || conn.outbox() == ddp_live::Outbox::default()).await;
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["counters"]["k"], 1, "the call ran, once: {runs}");
    conn.close();
}

#[wasm_bindgen_test]
async fn unmounting_sends_unsub_and_new_arguments_replace_the_subscription() {
    let (sc, conn) = connected("l-unsub").await;
    let el = container();
    let shown = RwSignal::new(true);
    let which = RwSignal::new("a".to_string());
    let _app = mount(&el, &conn, move || {
        view! {
            <Show when=move || shown.get()>
                {move || {
                    let sub = use_subscription("docs", (which,));
                    view! {
                        <span class="ready">{move || sub.ready.get().to_string()}</span>
                        <span class="ended">{move || format!("{:?}", sub.ended.get())}</span>
                    }
                }}
            </Show>
        }
    });
    wait_until(5_000, "ready", || text(&el, ".ready") == "true").await;
    let s = stats_after_round_trip(&conn, &sc).await;
    assert_eq!((s["subscriptions"].as_u64(), s["subRequests"].as_u64(), s["unsubRequests"].as_u64()), (Some(1), Some(1), Some(0)));

    // New arguments: the new subscription goes out, the old one stops.
    which.set("b".to_string());
    let s = stats_after_round_trip(&conn, &sc).await;
    assert_eq!((s["subscriptions"].as_u64(), s["subRequests"].as_u64(), s["unsubRequests"].as_u64()), (Some(1), Some(2), Some(1)));
    wait_until(5_000, "ready again", || text(&el, ".ready") == "true").await;
    assert_eq!(text(&el, ".ended"), "None", "the old subscription's end is not the hook's");

    // Equal arguments: nothing is sent.
    which.set("b".to_string());
    let s = stats_after_round_trip(&conn, &sc).await;
    assert_eq!((s["subscriptions"].as_u64(), s["subRequests"].as_u64(), s["unsubRequests"].as_u64()), (Some(1), Some(2), Some(1)));

    // The component goes: the server hears `unsub`.
    shown.set(false);
    wait_until(2_000, "unmounted", || count(&el, ".ready") == 0).await;
    let s = stats_after_round_trip(&conn, &sc).await;
    assert_eq!((s["subscriptions"].as_u64(), s["subRequests"].as_u64(), s["unsubRequests"].as_u64()), (Some(0), Some(2), Some(2)));

    // Called with no owner at all, the hook has nothing to live in: it is
    // stopped at once, and the server holds nothing.
    let _ = ddp_live::leptos::subscription_on(&conn, "docs", ("z",));
    let s = stats_after_round_trip(&conn, &sc).await;
    assert_eq!((s["subscriptions"].as_u64(), s["subRequests"].as_u64(), s["unsubRequests"].as_u64()), (Some(0), Some(3), Some(3)));
    conn.close();
}

/// The listeners the hooks register, as the library counts them.
fn listeners(conn: &Connection) -> [usize; 3] {
    [conn.status_observable().listener_count(), conn.outbox_observable().listener_count(), conn.collection("todos").listener_count()]
}

#[wasm_bindgen_test]
async fn a_thousand_mounts_and_unmounts_leave_nothing_behind() {
    let (sc, conn) = connected("l-leak").await;
    let before = listeners(&conn);
    let el = container();
    for i in 0..1000 {
        let app = mount(&el, &conn, || {
            let UseStatus { status, retry_in, .. } = use_status();
            let outbox = use_outbox();
            let sub = use_subscription("docs", ("todos",));
            let todos = use_collection("todos");
            let doc = use_doc("todos", "t1".to_string());
            let _call = use_call::<Value>("echo");
            view! {
                <p>{move || format!("{} {:?} {} {} {} {}", status.get().status, retry_in.get(), outbox.get().queued, sub.ready.get(), todos.len.get(), doc.get().is_some())}</p>
            }
        });
        if i == 0 {
            let during = listeners(&conn);
            assert!(during.iter().zip(before).all(|(d, b)| *d > b), "the hooks listen while mounted: {during:?} vs {before:?}");
            let s = stats_after_round_trip(&conn, &sc).await;
            assert_eq!(s["subscriptions"], 1, "the server sees the mounted component's subscription");
        }
        drop(app);
    }
    assert_eq!(listeners(&conn), before, "every listener went with its component");
    assert_eq!(count(&el, "p"), 0);
    // Seen from outside: the server got as many unsubs as subs, and holds none.
    let s = stats_after_round_trip(&conn, &sc).await;
    assert_eq!(s["subRequests"], 1000);
    assert_eq!(s["unsubRequests"], 1000);
    assert_eq!(s["subscriptions"], 0);
    conn.close();
}

#[wasm_bindgen_test]
async fn a_room_component_joins_hears_and_leaves_when_unmounted() {
    let (sc, conn) = open("l-room");
    let el = container();
    let hook: Rc<RefCell<Option<UseRoom>>> = Rc::default();
    let h = hook.clone();
    let app = mount(&el, &conn, move || {
        let room = use_room("lobby");
        *h.borrow_mut() = Some(room);
        view! {
            <span class="joined">{move || room.connected.get().to_string()}</span>
            <span class="id">{move || room.id.get().unwrap_or_default()}</span>
            <ul>{move || room.messages.get().into_iter().map(|m| view! { <li>{m.data.to_string()}</li> }).collect_view()}</ul>
        }
    });
    wait_until(5_000, "joined", || text(&el, ".joined") == "true").await;
    let id = text(&el, ".id");
    assert_eq!(id.len(), 20);
    let members = control(&sc, "stats?room=lobby").await["members"].clone();
    assert_eq!(members, json!([id]), "the server has the member the DOM shows");
    let room = hook.borrow_mut().take().unwrap();
    room.send(json!("hello"), Some("all")).await.unwrap();
    wait_until(5_000, "the message", || text(&el, "li") == "\"hello\"").await;
    drop(app);
    let _: Value = conn.call("echo", (1,)).await.unwrap();
    let members = control(&sc, "stats?room=lobby").await["members"].clone();
    assert_eq!(members, json!([]), "unmounting left the room");
    conn.close();
}

#[wasm_bindgen_test]
async fn a_change_to_one_document_of_a_thousand_touches_one_row() {
    let (sc, writer) = open("l-rows");
    let inserts: Vec<_> = (0..1000)
        .map(|i| writer.call::<String>("insertDoc", ("rows", json!({"_id": format!("r{i:04}"), "text": format!("row {i}")}))))
        .collect();
    for r in futures_util::future::join_all(inserts).await {
        r.unwrap();
    }
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let el = container();
    let _app = mount(&el, &conn, || {
        let sub = use_subscription("docs", ("rows",));
        let rows = use_collection("rows");
        view! {
            <span class="ready">{move || sub.ready.get().to_string()}</span>
            <ul>
                <For each=move || rows.docs.get() key=|d| d.id().to_owned() let:row>
                    {
                        let id = row.id().to_owned();
                        view! { <li data-id=id>{move || row.field("text").as_str().unwrap_or("").to_owned()}</li> }
                    }
                </For>
            </ul>
        }
    });
    wait_until(10_000, "1000 rows", || count(&el, "li") == 1000).await;
    let ul = el.query_selector("ul").unwrap().unwrap();
    let records: Rc<RefCell<Vec<web_sys::MutationRecord>>> = Rc::default();
    let r = records.clone();
    let callback = Closure::<dyn FnMut(js_sys::Array)>::new(move |batch: js_sys::Array| {
        r.borrow_mut().extend(batch.iter().map(|m| m.unchecked_into::<web_sys::MutationRecord>()));
    });
    let observer = web_sys::MutationObserver::new(callback.as_ref().unchecked_ref()).unwrap();
    let init = web_sys::MutationObserverInit::new();
    init.set_subtree(true);
    init.set_child_list(true);
    init.set_character_data(true);
    init.set_attributes(true);
    observer.observe_with_options(&ul, &init).unwrap();

    let _: Value = writer.call("updateDoc", ("rows", "r0500", json!({"text": "changed"}))).await.unwrap();
    wait_until(5_000, "the change in the DOM", || text(&el, "li[data-id=r0500]") == "changed").await;
    sleep(50).await;
    records.borrow_mut().extend(observer.take_records().iter().map(|m| m.unchecked_into::<web_sys::MutationRecord>()));
    observer.disconnect();
    let records = records.borrow();
    assert!(!records.is_empty());
    let mut rows_touched = BTreeSet::new();
    for m in records.iter() {
        let mut node = m.target().unwrap();
        // Walk up to the row (the li under the list).
        loop {
            let parent = node.parent_node().unwrap();
            if parent == ul.clone().unchecked_into::<web_sys::Node>() {
                break;
            }
            node = parent;
        }
        let row: web_sys::Element = node.dyn_into().expect("a row element");
        rows_touched.insert(row.get_attribute("data-id").unwrap_or_default());
    }
    assert_eq!(rows_touched, BTreeSet::from(["r0500".to_string()]), "{} mutation records", records.len());
    assert!(records.len() <= 2, "one text change: {} mutation records", records.len());
    writer.close();
    conn.close();
}
