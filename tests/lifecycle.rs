//! End-to-end tests of the connection lifecycle against the real test
//! server (`ddp-test-server`), on both hosts: in headless Chromium
//! (`wasm-pack test`) and natively on tokio (`cargo test --features
//! native`; tests/common says how each finds the server). Each test uses
//! its own server *scenario* so that fault injection in one cannot disturb
//! another.
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, ConnectionState, DisconnectReason, Error, Event, Options};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn connects_and_gets_the_servers_session_id() {
    let (sc, conn) = open("connect");
    assert_eq!(conn.status().status, ConnectionState::Connecting);
    assert_eq!(conn.id(), None);
    let st = wait_connected(&conn).await;
    assert!(st.connected);
    assert_eq!(st.retry_count, 0);
    let id = conn.id().expect("a session id while connected");
    assert_eq!(id.len(), 17);
    let stats = control(&sc, "stats").await;
    assert_eq!(stats["sessions"][0], id.as_str(), "the server knows the same id");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn server_drop_waits_then_reconnects_with_a_new_id() {
    let sc = scenario("drop");
    // A server without session resumption: the reconnect gets a new session.
    control(&sc, "resume?on=false").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    wait_connected(&conn).await;
    let first = conn.id().unwrap();
    let rec = record(&conn);
    control(&sc, "drop").await;
    // The drop reaches the client a moment after the control call returns.
    wait_event(&rec, 10_000, "the drop", |e| matches!(e, Event::Disconnected { .. })).await;
    wait_status(&conn, 10_000, "connected again", |s| s.connected).await;
    let second = conn.id().unwrap();
    assert_ne!(first, second, "a new session after the reconnect");
    conn.close();
    let statuses = rec.statuses.borrow();
    let waiting = statuses.iter().find(|s| s.status == ConnectionState::Waiting).expect("went through waiting");
    assert!(waiting.retry_time.is_some_and(|t| t > 0.0), "waiting has a retryTime");
    assert!(!waiting.connected);
    assert!(
        statuses.iter().any(|s| s.status == ConnectionState::Connecting && s.retry_count >= 1),
        "then connecting with the retry counted: {statuses:?}"
    );
    assert_eq!(conn.status().retry_count, 0, "reset once connected");
    let events = rec.events.borrow();
    assert_eq!(events[0], Event::Disconnected { reason: DisconnectReason::TransportClose });
    assert!(events.contains(&Event::ReconnectAttempt { attempt: 1 }));
    let reconnected = events.iter().position(|e| matches!(e, Event::Reconnected { attempts } if *attempts >= 1));
    assert!(reconnected.is_some(), "{events:?}");
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn clean_server_close_is_a_server_disconnect() {
    let (sc, conn) = connected("srvclose").await;
    let rec = record(&conn);
    control(&sc, "disconnect").await;
    wait_status(&conn, 5_000, "not connected", |s| !s.connected).await;
    assert_eq!(rec.events.borrow()[0], Event::Disconnected { reason: DisconnectReason::ServerDisconnect });
    wait_connected(&conn).await;
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn disconnect_goes_offline_without_retries_and_reconnect_comes_back() {
    let (sc, conn) = connected("offline").await;
    let first = conn.id().unwrap();
    let rec = record(&conn);
    conn.disconnect();
    let st = conn.status();
    assert_eq!(st.status, ConnectionState::Offline);
    assert_eq!(st.retry_count, 0);
    assert_eq!(conn.id(), None);
    assert_eq!(rec.events.borrow()[0], Event::Disconnected { reason: DisconnectReason::ClientDisconnect });
    // Long enough for many fast retries: none happens.
    sleep(500).await;
    assert_eq!(conn.status().status, ConnectionState::Offline);
    assert_eq!(control(&sc, "stats").await["connections"], 0, "the server saw the socket close");
    assert!(!rec.events.borrow().iter().any(|e| matches!(e, Event::ReconnectAttempt { .. })));
    conn.reconnect();
    let st = wait_connected(&conn).await;
    assert_eq!(st.retry_count, 0, "a manual reconnect is not a retry");
    assert_ne!(conn.id().unwrap(), first);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn reconnect_while_connected_does_nothing() {
    let (sc, conn) = connected("noop").await;
    let id = conn.id();
    conn.reconnect();
    sleep(200).await;
    assert_eq!(conn.id(), id);
    assert_eq!(control(&sc, "stats").await["accepted"], 1);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn silent_server_is_caught_by_the_ping_timeout() {
    let sc = scenario("silent");
    let options = Options { heartbeat_interval_ms: 200.0, heartbeat_timeout_ms: 300.0, ..fast() };
    let conn = connect(&ws_url(&sc), options).unwrap();
    wait_connected(&conn).await;
    let rec = record(&conn);
    control(&sc, "silent?on=true").await;
    wait_status(&conn, 5_000, "the dead link noticed", |s| !s.connected).await;
    assert_eq!(rec.events.borrow()[0], Event::Disconnected { reason: DisconnectReason::PingTimeout });
    control(&sc, "silent?on=false").await;
    wait_connected(&conn).await;
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_proposed_supported_version_is_adopted() {
    let sc = scenario("pre2");
    control(&sc, "versions?v=pre2").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let st = wait_connected(&conn).await;
    assert_eq!(st.retry_count, 0, "negotiation is not a retry");
    assert_eq!(control(&sc, "stats").await["accepted"], 2, "one socket refused by version, one accepted");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn version_mismatch_fails_for_good_with_the_reason() {
    let sc = scenario("mismatch");
    control(&sc, "versions?v=2").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let st = wait_status(&conn, 5_000, "failed", |s| s.status == ConnectionState::Failed).await;
    assert_eq!(st.reason.as_deref(), Some("DDP version negotiation failed; server requested version 2"));
    assert!(!st.connected);
    assert_eq!(st.retry_time, None);
    sleep(300).await;
    assert_eq!(control(&sc, "stats").await["accepted"], 1, "no retry after a permanent failure");
    // Once the server speaks our language, a manual reconnect works.
    control(&sc, "reset").await;
    conn.reconnect();
    let st = wait_connected(&conn).await;
    assert_eq!(st.reason, None);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn unreachable_server_counts_retries_and_gives_up_at_the_limit() {
    // Nothing listens on port 3399 here.
    let options = Options { max_retries: Some(4), ..fast() };
    let conn = connect("ws://127.0.0.1:3399/websocket", options).unwrap();
    let rec = record(&conn);
    let st = wait_status(&conn, 10_000, "failed after 4 retries", |s| s.status == ConnectionState::Failed).await;
    assert_eq!(st.reason.as_deref(), Some("gave up after 4 reconnect attempts"));
    assert_eq!(st.retry_count, 4);
    let events = rec.events.borrow();
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::ReconnectAttempt { attempt } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    assert_eq!(events.last(), Some(&Event::ReconnectFailed));
    assert!(!events.iter().any(|e| matches!(e, Event::Disconnected { .. })), "never connected, so never disconnected");
    drop(events);
    let waits: Vec<u32> = rec.statuses.borrow().iter().filter(|s| s.status == ConnectionState::Waiting).map(|s| s.retry_count).collect();
    assert_eq!(waits, vec![0, 1, 2, 3], "each failed attempt waited, with the count growing");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn refused_connections_are_retried_until_the_server_accepts() {
    let sc = scenario("refuse");
    control(&sc, "refuse?on=true").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    wait_status(&conn, 5_000, "two retries", |s| s.retry_count >= 2).await;
    assert!(!conn.connected());
    control(&sc, "refuse?on=false").await;
    wait_connected(&conn).await;
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn bad_url_and_bad_options_are_typed_errors() {
    match connect("ftp://example.com", Options::default()) {
        Err(Error::InvalidUrl(e)) => assert!(e.to_string().contains("scheme"), "{e}"),
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
    assert!(matches!(connect("ws://host:99999", Options::default()), Err(Error::InvalidUrl(_))));
    let bad = Options { heartbeat_timeout_ms: f64::NAN, ..Options::default() };
    match connect("ws://127.0.0.1:3000", bad) {
        Err(Error::InvalidOptions(s)) => assert!(s.contains("heartbeatTimeout"), "{s}"),
        other => panic!("expected InvalidOptions, got {other:?}"),
    }
}

// Browser-only: the page's `offline` and `online` events, dispatched on `window`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
async fn browser_offline_and_online_events_act_at_once() {
    use ddp_live::RetryPolicy;
    let sc = scenario("online");
    // Retries so slow that only the `online` event can explain a quick return.
    let options =
        Options { retry: RetryPolicy { min_count: 0, base_timeout_ms: 60_000.0, ..RetryPolicy::default() }, ..Options::default() };
    let conn = connect(&ws_url(&sc), options).unwrap();
    wait_connected(&conn).await;
    let rec = record(&conn);
    let window = web_sys::window().unwrap();
    window.dispatch_event(&web_sys::Event::new("offline").unwrap()).unwrap();
    let st = conn.status();
    assert_eq!(st.status, ConnectionState::Waiting);
    assert!(st.retry_time.unwrap() - js_sys::Date::now() > 30_000.0);
    assert_eq!(rec.events.borrow()[0], Event::Disconnected { reason: DisconnectReason::TransportClose });
    window.dispatch_event(&web_sys::Event::new("online").unwrap()).unwrap();
    wait_status(&conn, 3_000, "connected soon after online", |s| s.connected).await;
    conn.close();
}

// Browser-only: the listeners on the page's `window` and `document`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
async fn close_removes_every_page_listener() {
    let sc = scenario("close-page");
    let conn = connect(&ws_url(&sc), Options { watch_page: true, ..fast() }).unwrap();
    assert_eq!(conn.page_listener_count(), 4);
    let without = connect(&ws_url(&sc), fast()).unwrap();
    assert_eq!(without.page_listener_count(), 0, "watch_page: false adds none");
    without.close();
    conn.close();
    assert_eq!(conn.page_listener_count(), 0);
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn close_stays_closed() {
    let (sc, conn) = connected("close").await;
    conn.close();
    assert!(conn.is_closed());
    assert_eq!(conn.status().status, ConnectionState::Offline);
    conn.reconnect();
    sleep(300).await;
    assert_eq!(conn.status().status, ConnectionState::Offline);
    assert_eq!(control(&sc, "stats").await["connections"], 0, "no socket left open");
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn status_signal_delivers_the_same_values() {
    use futures_signals::signal::SignalExt;
    use futures_util::StreamExt;
    let (_, conn) = open("signal");
    let mut stream = conn.status_signal().to_stream();
    let first = stream.next().await.unwrap();
    assert_eq!(first.status, ConnectionState::Connecting);
    let mut last = first;
    while !last.connected {
        last = stream.next().await.unwrap();
    }
    assert_eq!(last, conn.status());
    conn.close();
}

// Natively only (as in every file here): Meteor's server is a Node process
// the test starts; the browser meets it in tests/js/meteor*.test.mjs.
#[cfg(not(target_arch = "wasm32"))]
#[tokio::test(crate = "common::local_set")]
async fn against_meteor_a_drop_or_a_clean_close_brings_a_new_session() {
    let Some((meteor, conn)) = Meteor::open(Fixture::Server) else { return };
    wait_connected(&conn).await;
    let first = conn.id().unwrap();
    assert_eq!(first.len(), 17);
    assert_eq!(meteor.control("stats").await["sessionIds"], serde_json::json!([first]), "Meteor knows the same id");
    let rec = record(&conn);
    meteor.control("drop").await;
    wait_status(&conn, 10_000, "a new session", |s| s.connected && conn.id().is_some_and(|id| id != first)).await;
    assert!(!conn.resumed(), "Meteor 3.0.4 does not resume sessions");
    assert_eq!(rec.events.borrow()[0], Event::Disconnected { reason: DisconnectReason::TransportClose });
    let second = conn.id().unwrap();
    rec.events.borrow_mut().clear();
    meteor.control("drop?mode=close").await;
    wait_status(&conn, 10_000, "a third session", |s| s.connected && conn.id().is_some_and(|id| id != second)).await;
    assert_eq!(rec.events.borrow()[0], Event::Disconnected { reason: DisconnectReason::ServerDisconnect });
    conn.close();
}
