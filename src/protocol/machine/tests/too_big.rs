//! The 1009 (Message Too Big) handling when the refused message is not one
//! the client still tracks as unanswered: when the app gave up on it locally
//! before the close arrived (a call that timed out, a subscription it
//! stopped), "the largest unanswered message" may be an innocent one the
//! server accepted, which must not fail; and a ready subscription re-sent in
//! a new session counts as unanswered until its `ready`.

use super::*;
use crate::protocol::machine::CallOptions;
use serde_json::json;

/// The server closes with 1009: call `small`, which it accepted, does not
/// fail, and a later call of a few hundred bytes is still taken.
fn closed_with_1009_blames_nothing(h: &mut Harness, small: u64) {
    h.clear();
    h.close(1009);
    assert_eq!(failed(h), vec![], "the server accepted call {small}: it must not fail as too large");
    let later = h.m.call("later", vec![json!("y".repeat(300))], CallOptions::default(), h.now);
    assert!(later.is_ok(), "a 300-byte call refused after a 5 kB frame was: {later:?}");
}

/// A big call with a short timeout times out while its frame is on the
/// wire; the server then closes with 1009 for it. The small call the
/// server accepted (a slow method, still running) must not fail with
/// `message-too-big`, and a later call of a few hundred bytes must still go
/// out (the client must not learn a limit of the small call's size).
#[test]
fn a_call_that_timed_out_before_the_1009_does_not_get_an_innocent_call_failed() {
    let mut h = connected();
    let small = h.m.call("slow", vec![json!("s")], CallOptions::default(), h.now).expect("queued");
    let big = h.m.call("big", vec![json!("x".repeat(5000))], CallOptions { timeout_ms: Some(10.0), ..CallOptions::default() }, h.now);
    let big = big.expect("queued");
    h.drain();
    h.advance(20.0);
    assert_eq!(failed(&h), vec![(big, json!("timeout"))]);
    closed_with_1009_blames_nothing(&mut h, small);
}

/// The same with a subscription the app stopped (an autorun re-running)
/// before the server's 1009 for its `sub` arrived.
#[test]
fn a_subscription_stopped_before_the_1009_does_not_get_an_innocent_call_failed() {
    let mut h = connected();
    let small = h.m.call("slow", vec![json!("s")], CallOptions::default(), h.now).expect("queued");
    let sub = h.m.subscribe("huge", vec![json!("z".repeat(5000))]);
    h.drain();
    h.m.unsubscribe(&sub);
    h.drain();
    closed_with_1009_blames_nothing(&mut h, small);
}

/// In a new session every subscription is re-sent, the ready ones too (they
/// stay ready for the app while the data is held). If the server refuses
/// such a `sub` (a limit that changed across the reconnect: a redeploy, or
/// another server behind the balancer), it is the largest message the new
/// session has not answered, yet `largest_unanswered_sub` skips it as
/// `ready`: the small call fails in its place, and the subscription is
/// re-sent after every reconnect.
#[test]
fn a_ready_subscription_re_sent_in_a_new_session_is_the_one_refused_not_a_small_call() {
    let mut h = connected();
    let sub = h.m.subscribe("huge", vec![json!("z".repeat(5000))]);
    h.drain();
    h.frame(&format!(r#"{{"msg":"ready","subs":["{sub}"]}}"#));
    let small = h.m.call("slow", vec![json!("s")], CallOptions::default(), h.now).expect("queued");
    h.drain();
    h.drop_and_reconnect("S2");
    assert!(h.sent.iter().any(|t| t.contains(r#""msg":"sub""#) && t.contains("zzzz")), "re-sent: {:?}", h.sent);
    h.clear();
    h.close(1009);
    assert_eq!(failed(&h), vec![], "call {small} (a few bytes) was not what the server refused");
    let ended = h.done.iter().any(|e| matches!(e, Completion::SubStopped { id, error: Some(_) } if *id == sub));
    assert!(ended, "the 5 kB subscription is the one refused: {:?}", h.events);
}
