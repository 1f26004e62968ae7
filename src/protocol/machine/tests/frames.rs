//! What the server sends that is wrong: bad, oversized and unreadable
//! frames, error messages, messages out of place; config validation.

use super::*;

#[test]
fn bad_frames_are_reported_and_the_connection_survives() {
    let mut h = connected();
    for bad in ["nope", "[]", "{}", r#"{"msg":"nonsense"}"#, r#"{"msg":"connected"}"#, "\u{0}"] {
        h.frame(bad);
    }
    let events = h.take_events();
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| matches!(e, Event::Error(ProtocolError::Frame(_)))));
    assert_eq!(h.state(), ConnectionState::Connected);
}

#[test]
fn oversized_frame_is_a_typed_error() {
    let mut h = Harness::new(Config { max_frame_bytes: 64, ..Config::default() });
    h.start();
    h.open_and_connect("S");
    h.take_events();
    h.frame(&format!(r#"{{"msg":"added","collection":"c","id":"{}"}}"#, "x".repeat(100)));
    assert!(matches!(h.take_events().as_slice(), [Event::Error(ProtocolError::Frame(FrameError::TooLarge { .. }))]));
    assert!(h.m.status().connected);
}

#[test]
fn server_error_message_is_an_error_event() {
    let mut h = connected();
    h.frame(r#"{"msg":"error","reason":"Bad request","offendingMessage":{"x":1}}"#);
    assert_eq!(
        h.take_events(),
        vec![Event::Error(ProtocolError::Server { reason: "Bad request".into(), offending_message: Some(serde_json::json!({"x":1})) })]
    );
}

#[test]
fn second_connected_is_unexpected_not_a_new_session() {
    let mut h = connected();
    h.frame(r#"{"msg":"connected","session":"other"}"#);
    assert_eq!(h.m.session(), Some("S1"));
    assert!(matches!(h.take_events().as_slice(), [Event::Error(ProtocolError::Unexpected(_))]));
}

#[test]
fn data_before_connected_is_reported_not_applied() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.frame(r#"{"msg":"added","collection":"c","id":"x"}"#);
    assert!(matches!(h.take_events().as_slice(), [Event::Error(ProtocolError::Unexpected(_))]));
    assert!(h.m.store().is_empty());
}

#[test]
fn config_validation_names_the_option() {
    assert!(Config::default().validate().is_ok());
    let e = Config { versions: vec!["2".into()], ..Config::default() }.validate().unwrap_err();
    assert!(e.contains("\"2\""), "{e}");
    let e = Config { heartbeat_interval_ms: f64::NAN, ..Config::default() }.validate().unwrap_err();
    assert!(e.contains("heartbeatInterval"), "{e}");
    assert!(Config { versions: vec![], ..Config::default() }.validate().is_err());
}

#[test]
fn an_unreadable_result_fails_its_call_instead_of_stranding_it() {
    let mut h = connected();
    let id = h.m.call("echo", vec![], CallOptions::default(), h.now).expect("queued");
    let other = h.m.call("echo", vec![], CallOptions::default(), h.now).expect("queued");
    h.drain();
    h.frame(&format!(r#"{{"msg":"result","id":"{id}","result":[1,2"#));
    let done = h.done.iter().filter(|e| matches!(e, Completion::MethodDone { .. })).count();
    assert_eq!(done, 1, "only the call named fails: {:?}", h.events);
    assert!(h
        .done
        .iter()
        .any(|e| matches!(e, Completion::MethodDone { id: i, outcome: Err(MethodError::BadFrame(FrameError::NotJson(_))) } if *i == id)));
    assert!(h.events.iter().any(|e| matches!(e, Event::Error(ProtocolError::Frame(FrameError::NotJson(_))))));
    h.clear();
    // An oversized result, of which only the ends were copied.
    let ends = format!(r#"{{"msg":"result","id":"{other}","result":"xxxx…xxxx"}}"#);
    let s = h.socket();
    h.m.handle_oversized_frame(s, 50_000_000, &ends, h.now);
    h.drain();
    assert!(h.done.iter().any(|e| matches!(e, Completion::MethodDone { id: i, outcome: Err(MethodError::BadFrame(FrameError::TooLarge { len: 50_000_000, .. })) } if *i == other)));
    assert_eq!(h.m.outbox(), Outbox::default(), "nothing left waiting");
    // A frame naming no pending call fails nothing.
    let third = h.m.call("echo", vec![], CallOptions::default(), h.now).expect("queued");
    h.drain();
    h.clear();
    h.frame(r#"{"msg":"result","id":"999","result":[1,2"#);
    assert!(!h.done.iter().any(|e| matches!(e, Completion::MethodDone { .. })));
    assert_eq!(h.m.outbox().in_flight, 1, "call {third} still waits");
}
