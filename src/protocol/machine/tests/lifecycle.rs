//! The connection lifecycle: handshake, drops and retries, closes,
//! `disconnect`/`reconnect`, the browser's online and offline events.

use super::*;

#[test]
fn initial_status_is_connecting_with_no_retries() {
    let h = Harness::new(Config::default());
    assert_eq!(h.m.status(), Status::initial());
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn handshake_sends_connect_then_connected_sets_session() {
    let mut h = Harness::new(Config::default());
    h.start();
    assert_eq!(h.sockets, vec![1]);
    assert_eq!(h.state(), ConnectionState::Connecting);
    h.m.handle_open(1, h.now);
    h.drain();
    assert_eq!(h.sent, vec![r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#]);
    // Socket open is not "connected": only DDP's `connected` is.
    assert!(!h.m.status().connected);
    h.frame(r#"{"msg":"connected","session":"abc"}"#);
    let st = h.m.status();
    assert!(st.connected);
    assert_eq!(st.status, ConnectionState::Connected);
    assert_eq!(h.m.session(), Some("abc"));
    assert_eq!(h.take_events(), vec![Event::Connected { session: "abc".into() }]);
}

#[test]
fn server_id_greeting_is_ignored() {
    let mut h = Harness::new(Config::default());
    h.start();
    h.m.handle_open(1, h.now);
    h.drain();
    h.frame(r#"{"server_id":"0"}"#);
    assert!(h.events.is_empty());
}

#[test]
fn drop_goes_waiting_then_retries_and_gets_a_new_session() {
    let mut h = connected();
    h.close(1006);
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Waiting);
    assert_eq!(st.retry_count, 0);
    assert_eq!(st.retry_time, Some(h.now + 10.0));
    assert_eq!(h.m.session(), None);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::TransportClose }]);
    h.fire();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().retry_count, 1);
    assert_eq!(h.m.status().retry_time, None);
    assert_eq!(h.take_events(), vec![Event::ReconnectAttempt { attempt: 1 }]);
    h.open_and_connect("S2");
    assert_eq!(h.m.session(), Some("S2"));
    assert_eq!(h.m.status().retry_count, 0);
    assert_eq!(h.take_events(), vec![Event::Connected { session: "S2".into() }, Event::Reconnected { attempts: 1 }]);
}

#[test]
fn clean_close_from_server_is_a_server_disconnect() {
    let mut h = connected();
    h.close(1000);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::ServerDisconnect }]);
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn transport_error_reason_and_late_close_is_ignored() {
    let mut h = connected();
    let s = h.socket();
    h.m.handle_transport_error(s, h.now);
    h.drain();
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::TransportError }]);
    // The browser's close after the error is about a socket already given up.
    h.m.handle_close(s, 1006, h.now);
    h.drain();
    assert!(h.events.is_empty());
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn stale_socket_input_is_ignored() {
    let mut h = connected();
    let old = h.socket();
    h.close(1006);
    h.fire();
    h.take_events();
    let new = h.socket();
    assert_ne!(old, new);
    h.m.handle_frame(old, r#"{"msg":"connected","session":"ghost"}"#, h.now);
    h.m.handle_close(old, 1006, h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert!(h.take_events().is_empty());
}

#[test]
fn disconnect_goes_offline_and_stops_retrying() {
    let mut h = connected();
    h.m.disconnect(h.now);
    h.drain();
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Offline);
    assert_eq!(st.retry_count, 0);
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.open, None);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::ClientDisconnect }]);
    // Neither `online` nor time brings it back.
    h.m.handle_online(h.now);
    h.advance(1e9);
    assert_eq!(h.state(), ConnectionState::Offline);
    // reconnect() does, without counting a retry.
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    h.open_and_connect("S2");
    assert_eq!(h.m.status().retry_count, 0);
    assert_eq!(
        h.take_events(),
        vec![Event::ReconnectAttempt { attempt: 1 }, Event::Connected { session: "S2".into() }, Event::Reconnected { attempts: 1 }]
    );
}

#[test]
fn disconnect_while_waiting_cancels_the_retry() {
    let mut h = connected();
    h.close(1006);
    h.m.disconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Offline);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn reconnect_while_connected_does_nothing() {
    let mut h = connected();
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.sockets.len(), 1);
    assert!(h.events.is_empty());
}

#[test]
fn reconnect_while_waiting_retries_now_without_counting() {
    let mut h = connected();
    h.close(1006);
    h.fire();
    h.close(1006); // retry_count 1, waiting
    assert_eq!(h.m.status().retry_count, 1);
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().retry_count, 1);
}

#[test]
fn reconnect_while_connecting_replaces_the_socket() {
    let mut h = Harness::new(Config::default());
    h.start();
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.sockets, vec![1, 2]);
    assert_eq!(h.open, Some(2));
}

#[test]
fn online_retries_at_once_when_waiting() {
    let mut h = connected();
    h.close(1006);
    h.fire();
    h.close(1006);
    h.fire();
    h.close(1006); // now waiting ~4.8 s
    assert_eq!(h.state(), ConnectionState::Waiting);
    h.m.handle_online(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
}

#[test]
fn offline_event_loses_the_link() {
    let mut h = connected();
    h.m.handle_offline(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Waiting);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::TransportClose }]);
}

#[test]
fn closed_lives_in_the_machine_nothing_reopens_it() {
    let mut h = connected();
    h.m.close(h.now);
    h.drain();
    assert_eq!(h.open, None);
    let opened = h.sockets.len();
    h.m.reconnect(h.now);
    h.m.handle_online(h.now);
    h.m.handle_wake(h.now);
    h.m.start(h.now);
    h.advance(1_000_000.0);
    assert_eq!(h.sockets.len(), opened, "no socket after close()");
    assert_eq!(h.state(), ConnectionState::Offline);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn a_refused_socket_reports_the_browsers_reason_and_retries() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open_failed(s, "The URL's scheme must be either 'ws' or 'wss'".into(), h.now);
    h.drain();
    assert!(h.events.iter().any(|e| matches!(e, Event::Error(ProtocolError::SocketRefused(r)) if r.contains("scheme"))), "{:?}", h.events);
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn a_session_that_lost_a_frame_is_not_resumed() {
    let connect_of = |h: &Harness| -> Value {
        h.sent.iter().filter_map(|t| serde_json::from_str::<Value>(t).ok()).find(|v| v["msg"] == "connect").expect("a connect")
    };
    // A readable session is resumed after a drop.
    let mut h2 = connected();
    h2.frame(r#"{"msg":"added","collection":"c","id":"a","fields":{}}"#);
    h2.close(1006);
    h2.fire();
    let s = h2.socket();
    h2.m.handle_open(s, h2.now);
    h2.drain();
    assert_eq!(connect_of(&h2)["session"], "S1", "a readable session is resumed");
    // One that lost a frame (an `added` too large to read) is not: the new
    // session re-sends the documents and the store is reconciled.
    let mut h3 = connected();
    let s = h3.socket();
    h3.m.handle_oversized_frame(s, 99_999_999, r#"{"msg":"added","collection":"c","id":"big"…"#, h3.now);
    h3.drain();
    h3.close(1006);
    h3.fire();
    let s = h3.socket();
    h3.m.handle_open(s, h3.now);
    h3.drain();
    assert!(connect_of(&h3).get("session").is_none(), "{:?}", connect_of(&h3));
}
