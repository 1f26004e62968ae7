//! Method calls: blocks, completion, the outbox, reconnects, resumption.

use super::*;
use crate::protocol::machine::{CallOptions, MethodError, Outbox};
use serde_json::{json, Value};

fn call(h: &mut Harness, name: &str, opts: CallOptions) -> u64 {
    let id = h.m.call(name, vec![json!(name)], opts, h.now).expect("queued");
    h.drain();
    id
}

/// The method messages sent since the last clear, as (name, id).
fn sent_methods(h: &Harness) -> Vec<(String, String)> {
    h.sent
        .iter()
        .filter_map(|t| {
            let v: Value = serde_json::from_str(t).ok()?;
            if v["msg"] != "method" {
                return None;
            }
            Some((v["method"].as_str()?.to_owned(), v["id"].as_str()?.to_owned()))
        })
        .collect()
}

fn done(h: &Harness) -> Vec<(u64, Result<Option<Value>, MethodError>)> {
    h.done
        .iter()
        .filter_map(|e| match e {
            Completion::MethodDone { id, outcome } => Some((*id, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn answer(h: &mut Harness, id: u64, result: Value) {
    h.frame(&json!({"msg":"result","id":id.to_string(),"result":result}).to_string());
    h.frame(&json!({"msg":"updated","methods":[id.to_string()]}).to_string());
}

fn wait() -> CallOptions {
    CallOptions { wait: true, ..CallOptions::default() }
}

#[test]
fn calls_go_out_at_once_when_connected_with_sequential_ids() {
    let mut h = connected();
    call(&mut h, "a", CallOptions::default());
    call(&mut h, "b", CallOptions::default());
    assert_eq!(sent_methods(&h), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!(h.sent[0], r#"{"msg":"method","method":"a","params":["a"],"id":"1"}"#);
    assert_eq!(h.m.outbox(), Outbox { queued: 0, in_flight: 2 });
}

#[test]
fn a_call_completes_only_with_both_result_and_updated_in_either_order() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions::default());
    let b = call(&mut h, "b", CallOptions::default());
    h.frame(r#"{"msg":"result","id":"1","result":42}"#);
    assert!(done(&h).is_empty());
    assert!(h.done.contains(&Completion::MethodResult { id: a, outcome: Ok(Some(json!(42))) }));
    h.frame(r#"{"msg":"updated","methods":["2"]}"#);
    assert!(done(&h).is_empty());
    h.frame(r#"{"msg":"updated","methods":["1"]}"#);
    assert_eq!(done(&h), vec![(a, Ok(Some(json!(42))))]);
    h.frame(r#"{"msg":"result","id":"2"}"#);
    assert_eq!(done(&h)[1], (b, Ok(None)));
    assert_eq!(h.m.outbox(), Outbox::default());
}

#[test]
fn server_errors_carry_error_reason_details() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions::default());
    h.frame(r#"{"msg":"result","id":"1","error":{"error":"not-allowed","reason":"No","details":{"x":1},"errorType":"Meteor.Error"}}"#);
    h.frame(r#"{"msg":"updated","methods":["1"]}"#);
    let (id, outcome) = done(&h).remove(0);
    assert_eq!(id, a);
    let e = outcome.unwrap_err();
    assert_eq!(e.error(), json!("not-allowed"));
    assert_eq!(e.reason(), "No");
    assert_eq!(e.details(), Some(&json!({"x":1})));
    assert_eq!(e.to_string(), "No [not-allowed]");
}

#[test]
fn calls_made_offline_wait_in_order_and_go_out_on_connect() {
    let mut h = Harness::new(Config::default());
    h.start();
    for i in 0..5 {
        call(&mut h, &format!("m{i}"), CallOptions::default());
    }
    assert!(sent_methods(&h).is_empty());
    assert_eq!(h.m.outbox(), Outbox { queued: 5, in_flight: 0 });
    h.open_and_connect("S");
    let names: Vec<String> = sent_methods(&h).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["m0", "m1", "m2", "m3", "m4"]);
}

#[test]
fn wait_calls_run_alone() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions::default());
    let w = call(&mut h, "w", wait());
    let b = call(&mut h, "b", CallOptions::default());
    let c = call(&mut h, "c", CallOptions::default());
    assert_eq!(sent_methods(&h), vec![("a".into(), "1".into())], "w waits for a");
    answer(&mut h, a, json!(1));
    assert_eq!(sent_methods(&h).last().unwrap().0, "w");
    assert_eq!(sent_methods(&h).len(), 2, "b and c wait for w");
    answer(&mut h, w, json!(2));
    let names: Vec<String> = sent_methods(&h).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["a", "w", "b", "c"]);
    answer(&mut h, b, json!(3));
    answer(&mut h, c, json!(4));
    assert_eq!(done(&h).len(), 4);
}

#[test]
fn new_session_resends_unanswered_calls_with_the_same_id() {
    let mut h = connected();
    call(&mut h, "a", CallOptions::default());
    call(&mut h, "b", CallOptions::default());
    h.drop_and_reconnect("S2");
    assert_eq!(h.hooks_run, 1);
    assert_eq!(sent_methods(&h), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
}

#[test]
fn no_retry_calls_fail_with_invocation_failed_after_a_drop() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions { no_retry: true, ..CallOptions::default() });
    call(&mut h, "b", CallOptions::default());
    h.drop_and_reconnect("S2");
    let d = done(&h);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, a);
    let e = d[0].1.clone().unwrap_err();
    assert_eq!(e, MethodError::InvocationFailed);
    assert_eq!(e.error(), json!("invocation-failed"));
    assert_eq!(sent_methods(&h), vec![("b".into(), "2".into())]);
}

#[test]
fn a_result_without_updated_completes_on_a_new_session() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions::default());
    h.frame(r#"{"msg":"result","id":"1","result":7}"#);
    h.drop_and_reconnect("S2");
    assert_eq!(done(&h), vec![(a, Ok(Some(json!(7))))]);
    assert!(sent_methods(&h).is_empty(), "not run again");
}

#[test]
fn reconnect_hook_calls_go_ahead_of_the_old_queue() {
    let mut h = connected();
    call(&mut h, "old1", CallOptions::default());
    call(&mut h, "old2", CallOptions::default());
    h.hook = Some(Box::new(|m, now| {
        m.call("login", vec![], CallOptions { wait: true, ..CallOptions::default() }, now).unwrap();
    }));
    h.drop_and_reconnect("S2");
    assert_eq!(sent_methods(&h), vec![("login".into(), "3".into())], "the old calls wait for the login");
    answer(&mut h, 3, json!("token"));
    let names: Vec<String> = sent_methods(&h).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["login", "old1", "old2"]);
}

#[test]
fn non_wait_hook_calls_merge_with_the_old_first_block() {
    let mut h = connected();
    call(&mut h, "old", CallOptions::default());
    h.hook = Some(Box::new(|m, now| {
        m.call("hello", vec![], CallOptions::default(), now).unwrap();
    }));
    h.drop_and_reconnect("S2");
    let names: Vec<String> = sent_methods(&h).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["hello", "old"]);
}

#[test]
fn no_hooks_on_the_first_connection() {
    let mut h = Harness::new(Config::default());
    h.start();
    h.open_and_connect("S");
    assert_eq!(h.hooks_run, 0);
}

#[test]
fn resumption_sends_the_session_and_count_and_resends_without_hooks() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions { no_retry: true, ..CallOptions::default() });
    let b = call(&mut h, "b", CallOptions::default());
    h.frame(r#"{"msg":"added","collection":"c","id":"x"}"#);
    h.frame(r#"{"msg":"ping"}"#); // heartbeats do not count
    h.frame(r#"{"msg":"result","id":"2","result":"B"}"#);
    h.close(1006);
    h.fire();
    h.sent.clear();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    assert_eq!(h.sent[0], r#"{"msg":"connect","session":"S1","version":"1","support":["1","pre2","pre1"],"receivedCount":2}"#);
    h.frame(r#"{"msg":"connected","session":"S1"}"#);
    assert!(h.m.resumed());
    assert_eq!(h.hooks_run, 0, "the session survived: no onReconnect");
    // The noRetry call is not failed: the server dedupes the re-send.
    assert_eq!(sent_methods(&h), vec![("a".into(), "1".into())]);
    // The replayed `updated` completes b.
    h.frame(r#"{"msg":"updated","methods":["2"]}"#);
    assert_eq!(done(&h), vec![(b, Ok(Some(json!("B"))))]);
    answer(&mut h, a, json!("A"));
    assert_eq!(done(&h)[1], (a, Ok(Some(json!("A")))));
}

#[test]
fn a_refused_resumption_is_a_new_session() {
    let mut h = connected();
    call(&mut h, "a", CallOptions::default());
    h.drop_and_reconnect("OTHER");
    assert!(!h.m.resumed());
    assert_eq!(h.hooks_run, 1);
    assert_eq!(sent_methods(&h), vec![("a".into(), "1".into())]);
}

#[test]
fn disconnect_ends_the_session_for_good() {
    let mut h = connected();
    h.m.disconnect(h.now);
    h.drain();
    assert_eq!(h.sent.last().unwrap(), r#"{"msg":"disconnect"}"#);
    h.m.reconnect(h.now);
    h.drain();
    h.sent.clear();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    assert!(!h.sent[0].contains("session"), "no resumption after disconnect(): {}", h.sent[0]);
}

#[test]
fn resumption_can_be_turned_off() {
    let mut h = Harness::new(Config { resume_sessions: false, ..Config::default() });
    h.start();
    h.open_and_connect("S1");
    h.close(1006);
    h.fire();
    h.sent.clear();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    assert!(!h.sent[0].contains("session"));
}

#[test]
fn timeouts_fail_the_call_and_free_the_block() {
    let mut h = connected();
    let a = call(&mut h, "slow", CallOptions { timeout_ms: Some(1000.0), ..CallOptions::default() });
    let w = call(&mut h, "w", wait());
    assert_eq!(h.m.poll_timeout(), Some(h.now + 1000.0));
    h.advance(999.0);
    assert!(done(&h).is_empty());
    h.advance(1.0);
    assert_eq!(done(&h), vec![(a, Err(MethodError::Timeout))]);
    assert_eq!(sent_methods(&h).last().unwrap().0, "w", "the next block goes");
    // A late answer to the timed-out call is ignored quietly.
    h.frame(r#"{"msg":"result","id":"1","result":1}"#);
    assert!(!h.events.iter().any(|e| matches!(e, Event::Error(_))));
    answer(&mut h, w, json!(0));
    assert_eq!(done(&h).len(), 2);
}

#[test]
fn timeouts_run_while_offline_too() {
    let mut h = Harness::new(Config::default());
    h.start();
    let a = call(&mut h, "a", CallOptions { timeout_ms: Some(50.0), ..CallOptions::default() });
    h.advance(50.0);
    assert_eq!(done(&h), vec![(a, Err(MethodError::Timeout))]);
}

#[test]
fn cancel_only_before_sending() {
    let mut h = Harness::new(Config::default());
    h.start();
    let a = call(&mut h, "a", CallOptions::default());
    let b = call(&mut h, "b", CallOptions::default());
    assert!(h.m.cancel(a));
    h.drain();
    assert_eq!(done(&h), vec![(a, Err(MethodError::Cancelled))]);
    h.open_and_connect("S");
    assert_eq!(sent_methods(&h), vec![("b".into(), "2".into())]);
    assert!(!h.m.cancel(b), "already sent");
    assert!(!h.m.cancel(99));
}

#[test]
fn a_full_outbox_rejects_at_once() {
    let mut h = Harness::new(Config { max_pending_calls: 3, max_pending_bytes: 100, ..Config::default() });
    h.start();
    for _ in 0..3 {
        call(&mut h, "m", CallOptions::default());
    }
    assert_eq!(h.m.call("m", vec![], CallOptions::default(), h.now), Err(MethodError::QueueFull { limit: "maxPendingCalls" }));
    let mut h = Harness::new(Config { max_pending_bytes: 100, ..Config::default() });
    h.start();
    let big = vec![json!("x".repeat(200))];
    assert_eq!(h.m.call("m", big, CallOptions::default(), h.now), Err(MethodError::QueueFull { limit: "maxPendingBytes" }));
    assert_eq!(h.m.outbox(), Outbox::default(), "nothing was queued");
}

#[test]
fn close_fails_everything_with_closed() {
    let mut h = connected();
    let a = call(&mut h, "a", CallOptions::default());
    h.m.close(h.now);
    h.drain();
    assert_eq!(done(&h), vec![(a, Err(MethodError::Closed))]);
    assert_eq!(h.m.call("b", vec![], CallOptions::default(), h.now), Err(MethodError::Closed));
}

#[test]
fn answers_for_ids_never_issued_are_reported() {
    let mut h = connected();
    h.frame(r#"{"msg":"result","id":"77","result":1}"#);
    h.frame(r#"{"msg":"updated","methods":["zz"]}"#);
    let errors = h.events.iter().filter(|e| matches!(e, Event::Error(ProtocolError::Unexpected(_)))).count();
    assert_eq!(errors, 2);
}

#[test]
fn random_seed_is_sent_when_given() {
    let mut h = connected();
    call(&mut h, "a", CallOptions { random_seed: Some("SEED".into()), ..CallOptions::default() });
    assert!(h.sent[0].contains(r#""randomSeed":"SEED""#));
}

/// A server that closes with 1009 (Message Too Big) refused the largest
/// message it had not answered, or one smaller: re-sending it after every
/// reconnect would loop forever. That call fails with `message-too-big`;
/// the others are re-sent and complete.
#[test]
fn a_call_the_server_refused_as_too_large_fails_instead_of_looping() {
    let mut h = connected();
    let small = call(&mut h, "small", CallOptions::default());
    let big = h.m.call("big", vec![json!("x".repeat(5000))], CallOptions::default(), h.now).expect("queued");
    let medium = h.m.call("medium", vec![json!("y".repeat(800))], CallOptions::default(), h.now).expect("queued");
    h.drain();
    h.clear();
    h.close(1009);
    assert_eq!(failed(&h), vec![(big, json!("message-too-big"))], "only the largest unanswered call fails: {:?}", h.events);
    // The others are re-sent on the next session and complete.
    h.fire();
    h.sent.clear();
    h.open_and_connect("S2");
    let resent: Vec<String> = sent_methods(&h).into_iter().map(|(name, _)| name).collect();
    assert_eq!(resent, vec!["small", "medium"]);
    for id in [small, medium] {
        h.frame(&format!(r#"{{"msg":"result","id":"{id}","result":1}}"#));
        h.frame(&format!(r#"{{"msg":"updated","methods":["{id}"]}}"#));
    }
    assert_eq!(h.m.outbox(), Outbox::default(), "nothing left waiting");
    // Nothing is learned from it: the server's limit may count compressed
    // bytes (permessage-deflate), so a later call as large still goes out.
    h.sent.clear();
    let again = h.m.call("big", vec![json!("x".repeat(6000))], CallOptions::default(), h.now).expect("queued");
    h.drain();
    assert_eq!(sent_methods(&h), vec![("big".to_owned(), again.to_string())]);
    // Refused too: it fails the same way.
    h.clear();
    h.close(1009);
    let code = h.done.iter().find_map(|e| match e {
        Completion::MethodDone { id, outcome: Err(err) } if *id == again => Some(err.error()),
        _ => None,
    });
    assert_eq!(code, Some(json!("message-too-big")));
}

/// A 1009 close with nothing unanswered (the frame refused was a `connect`
/// or a `pong`) fails nothing; any other close code fails nothing either.
#[test]
fn a_1009_close_with_nothing_unanswered_and_other_codes_fail_nothing() {
    let mut h = connected();
    let id = call(&mut h, "answered", CallOptions::default());
    h.frame(&format!(r#"{{"msg":"result","id":"{id}","result":1}}"#));
    h.clear();
    h.close(1009);
    assert!(!h.done.iter().any(|e| matches!(e, Completion::MethodDone { outcome: Err(_), .. })), "{:?}", h.done);
    let mut h = connected();
    call(&mut h, "pending", CallOptions::default());
    h.clear();
    h.close(1006);
    assert!(!h.done.iter().any(|e| matches!(e, Completion::MethodDone { .. })), "{:?}", h.done);
}

/// When the largest unanswered message is a subscription's, the
/// subscription ends with a Meteor.Error `message-too-big` and the calls are
/// re-sent.
#[test]
fn a_subscription_the_server_refused_as_too_large_ends_with_an_error() {
    let mut h = connected();
    let id = call(&mut h, "small", CallOptions::default());
    let sub = h.m.subscribe("huge", vec![json!("z".repeat(4000))]);
    h.drain();
    h.clear();
    h.close(1009);
    let stopped = h.done.iter().find_map(|e| match e {
        Completion::SubStopped { id, error: Some(error) } if *id == sub => Some(error.clone()),
        _ => None,
    });
    assert_eq!(stopped.as_ref().map(|e| e["error"].clone()), Some(json!("message-too-big")), "{:?}", h.events);
    assert!(!h.done.iter().any(|e| matches!(e, Completion::MethodDone { .. })), "the call is not failed: {:?}", h.done);
    assert_eq!(h.m.sub_ready(&sub), None, "the subscription is gone");
    h.fire();
    h.sent.clear();
    h.open_and_connect("S2");
    assert_eq!(sent_methods(&h).into_iter().map(|(_, i)| i).collect::<Vec<_>>(), vec![id.to_string()]);
    assert!(!h.sent.iter().any(|t| t.contains(r#""msg":"sub""#)), "not re-subscribed: {:?}", h.sent);
}
