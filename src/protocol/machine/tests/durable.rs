//! What a durable outbox needs of the machine: calls journaled as they are
//! queued, held until the earlier page's calls are restored, and those
//! restored ahead of the new ones (which wait for them to complete) with
//! their ids and seeds.

use super::*;
use crate::protocol::durable::CallRecord;
use crate::protocol::machine::CallOptions;
use serde_json::{json, Value};

fn held() -> Harness {
    let mut h = Harness::new(Config { journal_calls: true, hold_calls: true, ..Config::default() });
    h.start();
    h.open_and_connect("S1");
    h.take_events();
    h.sent.clear();
    h
}

fn record(id: u64, name: &str, seed: Option<&str>, wait: bool) -> CallRecord {
    CallRecord {
        id,
        name: name.into(),
        params: vec![json!(name)],
        random_seed: seed.map(str::to_owned),
        wait,
        no_retry: false,
        user: None,
        at: 0.0,
        sent: false,
    }
}

/// The `method` messages sent, as (name, id, randomSeed).
fn sent(h: &Harness) -> Vec<(String, String, Option<String>)> {
    h.sent
        .iter()
        .filter_map(|t| {
            let v: Value = serde_json::from_str(t).ok()?;
            (v["msg"] == "method").then(|| {
                (
                    v["method"].as_str().unwrap().to_owned(),
                    v["id"].as_str().unwrap().to_owned(),
                    v["randomSeed"].as_str().map(str::to_owned),
                )
            })
        })
        .collect()
}

#[test]
fn held_calls_wait_for_release_and_restored_ones_go_first_with_their_ids_and_seeds() {
    let mut h = held();
    let new = h.m.call("new", vec![], CallOptions::default(), h.now).unwrap();
    h.drain();
    assert!(sent(&h).is_empty(), "nothing is sent while held");
    assert_eq!(h.done, vec![Completion::CallQueued { id: new }], "a queued call is journaled");
    let ids = h.m.restore_calls(vec![record(7, "old1", Some("seed7"), false), record(9, "old2", None, false)], h.now);
    assert_eq!(ids, vec![(7, 7), (9, 9)]);
    assert_eq!(h.m.outbox().queued, 3);
    h.m.release_calls(h.now);
    h.drain();
    assert_eq!(sent(&h), vec![("old1".into(), "7".into(), Some("seed7".into())), ("old2".into(), "9".into(), None)]);
    // This page's calls go out once the earlier page's have completed.
    h.sent.clear();
    for id in ["7", "9"] {
        h.frame(&format!(r#"{{"msg":"result","id":"{id}"}}"#));
        h.frame(&format!(r#"{{"msg":"updated","methods":["{id}"]}}"#));
    }
    assert_eq!(sent(&h), vec![("new".into(), new.to_string(), None)]);
    // New calls take ids past the restored ones.
    let next = h.m.call("next", vec![], CallOptions::default(), h.now).unwrap();
    assert_eq!(next, 10);
}

#[test]
fn a_restored_id_taken_by_a_new_call_gets_a_fresh_one() {
    let mut h = held();
    let new = h.m.call("new", vec![], CallOptions::default(), h.now).unwrap();
    let ids = h.m.restore_calls(vec![record(new, "old", Some("s"), false)], h.now);
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0].1, new);
    h.m.release_calls(h.now);
    h.drain();
    assert_eq!(sent(&h), vec![("old".into(), ids[0].1.to_string(), Some("s".into()))]);
}

#[test]
fn a_restored_wait_call_keeps_its_block_and_the_new_calls_wait_behind_it() {
    let mut h = held();
    let new = h.m.call("new", vec![], CallOptions::default(), h.now).unwrap();
    h.m.restore_calls(vec![record(3, "w", None, true)], h.now);
    h.m.release_calls(h.now);
    h.drain();
    assert_eq!(sent(&h), vec![("w".into(), "3".into(), None)], "a wait call goes alone");
    h.sent.clear();
    h.frame(r#"{"msg":"result","id":"3","result":1}"#);
    h.frame(r#"{"msg":"updated","methods":["3"]}"#);
    assert_eq!(sent(&h), vec![("new".into(), new.to_string(), None)]);
}

#[test]
fn a_call_record_is_what_the_call_sends() {
    let mut h = held();
    let opts = CallOptions { wait: true, no_retry: true, random_seed: Some("abc".into()), ..CallOptions::default() };
    let id = h.m.call("m", vec![json!({"a": 1})], opts, h.now).unwrap();
    let r = h.m.call_record(id).expect("a record");
    assert_eq!((r.id, r.name.as_str(), r.params.clone()), (id, "m", vec![json!({"a": 1})]));
    assert_eq!((r.random_seed.as_deref(), r.wait, r.no_retry), (Some("abc"), true, true));
    assert!(h.m.call_record(id + 1).is_none());
}

#[test]
fn without_the_journal_no_call_is_reported_and_nothing_is_held() {
    let mut h = connected();
    h.m.call("m", vec![], CallOptions::default(), h.now).unwrap();
    h.drain();
    assert!(h.done.is_empty());
    assert_eq!(sent(&h).len(), 1);
}

#[test]
fn calls_restored_once_calls_flow_go_behind_those_on_the_wire() {
    let mut h = held();
    h.m.release_calls(h.now);
    let w = h.m.call("w", vec![], CallOptions { wait: true, ..CallOptions::default() }, h.now).unwrap();
    h.drain();
    assert_eq!(sent(&h), vec![("w".into(), w.to_string(), None)]);
    h.sent.clear();
    h.m.restore_calls(vec![record(40, "late", Some("s40"), false)], h.now);
    h.drain();
    assert!(sent(&h).is_empty(), "nothing passes a wait call on the wire");
    h.frame(&format!(r#"{{"msg":"result","id":"{w}"}}"#));
    h.frame(&format!(r#"{{"msg":"updated","methods":["{w}"]}}"#));
    assert_eq!(sent(&h), vec![("late".into(), "40".into(), Some("s40".into()))]);
}

#[test]
fn transient_calls_are_never_journaled_and_a_sent_no_retry_call_is_reported() {
    let mut h = held();
    h.m.release_calls(h.now);
    h.drain();
    h.clear();
    h.m.call("login", vec![], CallOptions { transient: true, ..CallOptions::default() }, h.now).unwrap();
    h.drain();
    assert!(h.done.is_empty(), "a login is not journaled: {:?}", h.done);
    let once = h.m.call("pay", vec![], CallOptions { no_retry: true, ..CallOptions::default() }, h.now).unwrap();
    h.drain();
    assert_eq!(h.done, vec![Completion::CallQueued { id: once }, Completion::CallSent { id: once }]);
}

#[test]
fn a_restored_id_past_what_javascript_holds_exactly_gets_a_fresh_one() {
    let mut h = held();
    let ids = h.m.restore_calls(vec![record(u64::MAX, "huge", None, false)], h.now);
    assert_eq!(ids, vec![(u64::MAX, 1)]);
    assert_eq!(h.m.call("next", vec![], CallOptions::default(), h.now).unwrap(), 2);
}

/// A page whose durable outbox keeps its session for the next page.
fn adopting() -> Harness {
    let mut h = Harness::new(Config { journal_calls: true, hold_calls: true, adopt_sessions: true, ..Config::default() });
    h.start();
    h
}

/// The messages sent, as their `msg` and id (`method`/`sub`/`unsub`), in order.
fn wire(h: &Harness) -> Vec<(String, String)> {
    h.sent
        .iter()
        .filter_map(|t| {
            let v: Value = serde_json::from_str(t).ok()?;
            let msg = v["msg"].as_str()?.to_owned();
            let id = v["id"].as_str().or(v["session"].as_str()).unwrap_or("").to_owned();
            Some((msg, id))
        })
        .collect()
}

#[test]
fn the_handshake_waits_for_the_store_and_a_page_keeps_what_the_next_one_needs_of_its_session() {
    let mut h = adopting();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    assert!(h.sent.is_empty(), "no connect before the store was read");
    h.m.release_connect(None, h.now);
    h.drain();
    assert_eq!(wire(&h), vec![("connect".into(), String::new())], "a plain connect: nothing to resume");
    assert_eq!(h.m.session_record(), None, "no session yet");
    h.frame(r#"{"msg":"connected","session":"S1"}"#);
    assert!(h.done.contains(&Completion::SessionChanged));
    h.m.release_calls(h.now);
    let sub = h.m.subscribe("docs", vec![]);
    h.drain();
    let call = h.m.call("m", vec![], CallOptions::default(), h.now).unwrap();
    h.drain();
    h.frame(r#"{"msg":"added","collection":"c","id":"a","fields":{}}"#);
    h.frame(&format!(r#"{{"msg":"ready","subs":["{sub}"]}}"#));
    let record = h.m.session_record().expect("a session to keep");
    assert_eq!((record.session.as_str(), record.received, record.subs.clone()), ("S1", 2, vec![sub.clone()]));
    assert!((1 << 20..1 << 53).contains(&call), "method ids from a random base: {call}");
    // Lost, it is still what a next page could resume.
    h.close(1006);
    assert_eq!(h.m.session_record().map(|r| (r.session, r.received)), Some(("S1".into(), 2)));
    // Ended by the app: nothing to resume.
    h.m.disconnect(h.now);
    h.drain();
    assert_eq!(h.m.session_record(), None);
}

#[test]
fn an_earlier_pages_session_is_taken_over_its_calls_answered_once_and_its_documents_never_shown() {
    let earlier = crate::protocol::durable::SessionRecord { session: "S1".into(), received: 5, subs: vec!["old".into()], at: 0.0 };
    let mut h = adopting();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    let mine = h.m.subscribe("docs", vec![]);
    let new = h.m.call("new", vec![], CallOptions::default(), h.now).unwrap();
    h.drain();
    // Restored before the handshake: the earlier page's call keeps its id,
    // another page's takes a fresh one.
    let ids = h.m.restore_calls_of(vec![(record(3, "inflight", Some("s3"), false), true), (record(2, "other", None, false), false)], h.now);
    h.m.release_connect(Some(earlier), h.now);
    h.m.release_calls(h.now);
    h.drain();
    let connect: Value = serde_json::from_str(&h.sent[0]).unwrap();
    assert_eq!((connect["session"].clone(), connect["receivedCount"].clone()), (json!("S1"), json!(5)));
    assert_eq!(ids[0], (3, 3), "the adopted page's call keeps its id");
    assert!(
        new >= 1 << 20 && ids[1].1 == new + 1,
        "this page's ids, from its random base, and another page's call takes one: {new} {ids:?}"
    );
    h.sent.clear();
    h.frame(r#"{"msg":"connected","session":"S1"}"#);
    assert!(h.m.resumed());
    let order = wire(&h);
    assert_eq!(order[0], ("unsub".into(), "old".into()), "the earlier page's subscription stops before anything else: {order:?}");
    assert!(order.contains(&("method".into(), "3".into())), "the restored call is re-sent with its id: {order:?}");
    assert!(order.contains(&("sub".into(), mine.clone())), "this page's subscription goes out: {order:?}");
    // The replay: the earlier page's documents and its call's result; then
    // the stop; then this page's data.
    h.clear();
    h.frame(r#"{"msg":"added","collection":"c","id":"theirs","fields":{"n":1}}"#);
    h.frame(r#"{"msg":"result","id":"3","result":"once"}"#);
    h.frame(r#"{"msg":"updated","methods":["3"]}"#);
    // An answer the earlier page had already (its record gone since).
    h.frame(&format!(r#"{{"msg":"result","id":"{}","result":1}}"#, u64::MAX >> 12));
    h.frame(r#"{"msg":"removed","collection":"c","id":"theirs"}"#);
    h.frame(r#"{"msg":"nosub","id":"old"}"#);
    h.frame(r#"{"msg":"added","collection":"c","id":"mine","fields":{"n":2}}"#);
    h.frame(&format!(r#"{{"msg":"ready","subs":["{mine}"]}}"#));
    assert!(h.done.contains(&Completion::MethodDone { id: 3, outcome: Ok(Some(json!("once"))) }), "{:?}", h.done);
    let ids_in_store: Vec<&str> = h.m.store().collection("c").map(|c| c.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(ids_in_store, vec!["mine"]);
    let stopped = h.done.iter().any(|d| matches!(d, Completion::SubStopped { .. }));
    assert!(!stopped, "the earlier page's nosub is not this page's business");
    assert!(h.events.iter().all(|e| !matches!(e, Event::Error(_))), "no errors: {:?}", h.events);
}

#[test]
fn a_server_that_does_not_resume_the_earlier_pages_session_starts_a_plain_new_one() {
    let earlier = crate::protocol::durable::SessionRecord { session: "S1".into(), received: 5, subs: vec!["old".into()], at: 0.0 };
    let mut h = adopting();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.m.restore_calls_of(vec![(record(3, "inflight", Some("s3"), false), true)], h.now);
    h.m.release_connect(Some(earlier), h.now);
    h.m.release_calls(h.now);
    h.drain();
    h.sent.clear();
    h.frame(r#"{"msg":"connected","session":"S2"}"#);
    assert!(!h.m.resumed());
    assert_eq!(wire(&h), vec![("method".into(), "3".into())], "no unsub on a new session; the call is sent with its seed");
    h.frame(r#"{"msg":"added","collection":"c","id":"x","fields":{}}"#);
    assert!(h.m.store().collection("c").is_some_and(|c| c.len() == 1), "data flows at once");
    assert_eq!(h.m.session_record().map(|r| r.session), Some("S2".into()));
}
