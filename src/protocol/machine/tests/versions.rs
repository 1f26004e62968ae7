//! Version negotiation: suggestions adopted, unsupported versions fail,
//! no loop between versions.

use super::*;

#[test]
fn version_negotiation_adopts_a_supported_suggestion() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.frame(r#"{"msg":"failed","version":"pre2"}"#);
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.sockets.len(), 2, "reconnected at once");
    assert_eq!(h.m.status().retry_count, 0, "negotiation is not a retry");
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    assert_eq!(h.sent.last().unwrap(), r#"{"msg":"connect","version":"pre2","support":["1","pre2","pre1"]}"#);
    h.frame(r#"{"msg":"connected","session":"S"}"#);
    assert!(h.m.status().connected);
    assert_eq!(h.m.version(), "pre2");
}

#[test]
fn version_negotiation_fails_permanently_on_an_unsupported_version() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.frame(r#"{"msg":"failed","version":"2"}"#);
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Failed);
    assert_eq!(st.reason.as_deref(), Some("DDP version negotiation failed; server requested version 2"));
    assert!(!st.connected);
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.open, None);
    // `online` does not undo a version failure; reconnect() does.
    h.m.handle_online(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Failed);
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().reason, None);
}

#[test]
fn a_server_that_flip_flops_versions_cannot_loop_forever() {
    let mut h = Harness::new(Config::default());
    h.start();
    for v in ["pre2", "1"] {
        let s = h.socket();
        h.m.handle_open(s, h.now);
        h.drain();
        h.frame(&format!(r#"{{"msg":"failed","version":"{v}"}}"#));
    }
    assert_eq!(h.state(), ConnectionState::Failed);
}
