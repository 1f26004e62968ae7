//! Subscriptions, the store, and reconnects that never flicker.

use super::*;
use crate::protocol::store::Change;
use serde_json::{json, Value};

fn sent_of(h: &Harness, msg: &str) -> Vec<Value> {
    h.sent.iter().filter_map(|t| serde_json::from_str::<Value>(t).ok()).filter(|v| v["msg"] == msg).collect()
}

fn ids_sent(h: &Harness, msg: &str) -> Vec<String> {
    sent_of(h, msg).iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
}

fn data(h: &Harness) -> Vec<Change> {
    h.done
        .iter()
        .filter_map(|e| match e {
            Completion::Data(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn added(h: &mut Harness, id: &str, v: i64) {
    h.frame(&json!({"msg":"added","collection":"c","id":id,"fields":{"v":v}}).to_string());
}

fn ready(h: &mut Harness, sub: &str) {
    h.frame(&json!({"msg":"ready","subs":[sub]}).to_string());
}

#[test]
fn subscribe_sends_sub_with_a_random_17_char_id() {
    let mut h = connected();
    let id = h.m.subscribe("items", vec![json!(10)]);
    h.drain();
    assert_eq!(id.len(), 17);
    assert_eq!(sent_of(&h, "sub"), vec![json!({"msg":"sub","id":id,"name":"items","params":[10]})]);
    assert_eq!(h.m.sub_ready(&id), Some(false));
    let other = h.m.subscribe("items", vec![]);
    assert_ne!(id, other);
}

#[test]
fn subscriptions_made_offline_go_out_on_connect() {
    let mut h = Harness::new(Config::default());
    h.start();
    let id = h.m.subscribe("items", vec![]);
    h.drain();
    assert!(sent_of(&h, "sub").is_empty());
    h.open_and_connect("S");
    assert_eq!(sent_of(&h, "sub")[0]["id"], id.as_str());
}

#[test]
fn data_and_ready_flow_into_the_store() {
    let mut h = connected();
    let id = h.m.subscribe("items", vec![]);
    h.drain();
    added(&mut h, "a", 1);
    h.frame(r#"{"msg":"changed","collection":"c","id":"a","fields":{"v":2,"w":1}}"#);
    ready(&mut h, &id);
    assert_eq!(h.m.sub_ready(&id), Some(true));
    assert!(h.done.contains(&Completion::SubReady { id: id.clone() }));
    assert_eq!(h.m.store().get("c", "a").unwrap()["v"], 2);
    assert_eq!(data(&h).len(), 2);
    h.frame(r#"{"msg":"removed","collection":"c","id":"a"}"#);
    assert!(h.m.store().is_empty());
}

#[test]
fn nosub_with_an_error_stops_it_and_reports_the_error() {
    let mut h = connected();
    let id = h.m.subscribe("bad", vec![]);
    h.drain();
    h.frame(&json!({"msg":"nosub","id":id,"error":{"error":404,"reason":"Subscription 'bad' not found"}}).to_string());
    assert!(h.events.iter().any(|e| matches!(e, Event::Error(ProtocolError::SubscriptionFailed { .. }))));
    assert!(h.done.iter().any(|e| matches!(e, Completion::SubStopped { id: i, error: Some(_) } if *i == id)));
    assert_eq!(h.m.sub_ready(&id), None);
}

#[test]
fn stop_while_connected_sends_unsub_and_reports_at_once() {
    let mut h = connected();
    let id = h.m.subscribe("items", vec![]);
    h.drain();
    h.m.unsubscribe(&id);
    h.drain();
    assert_eq!(sent_of(&h, "unsub"), vec![json!({"msg":"unsub","id":id})]);
    assert!(h.done.contains(&Completion::SubStopped { id: id.clone(), error: None }));
    // The server's nosub for it is quiet.
    let n = h.events.len();
    h.frame(&json!({"msg":"nosub","id":id}).to_string());
    assert_eq!(h.events.len(), n);
}

#[test]
fn reconnect_resends_subs_with_the_same_id_but_not_stopped_ones() {
    let mut h = connected();
    let keep = h.m.subscribe("keep", vec![]);
    let gone = h.m.subscribe("gone", vec![]);
    h.drain();
    h.close(1006);
    h.m.unsubscribe(&gone); // while offline
    h.drain();
    h.fire();
    h.sent.clear();
    h.open_and_connect("S2");
    let subs: Vec<String> = sent_of(&h, "sub").iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(subs, vec![keep]);
    assert!(sent_of(&h, "unsub").is_empty(), "a new session knows nothing of it");
}

#[test]
fn a_resumed_session_gets_the_unsub_that_was_made_offline() {
    let mut h = connected();
    let gone = h.m.subscribe("gone", vec![]);
    h.drain();
    h.close(1006);
    h.m.unsubscribe(&gone);
    h.drain();
    h.fire();
    h.sent.clear();
    h.open_and_connect("S1"); // resumed
    assert!(h.m.resumed());
    assert_eq!(sent_of(&h, "unsub"), vec![json!({"msg":"unsub","id":gone})]);
    assert!(sent_of(&h, "sub").is_empty(), "the server still has the others");
}

#[test]
fn a_resumed_session_gets_again_what_the_server_may_not_have_read() {
    let mut h = connected();
    let ready_one = h.m.subscribe("ready", vec![]);
    let waiting = h.m.subscribe("waiting", vec![]);
    let stopped = h.m.subscribe("stopped", vec![]);
    let answered = h.m.subscribe("answered", vec![]);
    h.drain();
    ready(&mut h, &ready_one);
    h.m.unsubscribe(&stopped);
    h.m.unsubscribe(&answered);
    h.frame(&json!({"msg":"nosub","id":answered}).to_string());
    h.drain();
    h.close(1006);
    h.drain();
    h.fire();
    h.sent.clear();
    h.open_and_connect("S1"); // resumed
    assert!(h.m.resumed());
    assert_eq!(ids_sent(&h, "sub"), vec![waiting.clone()], "a sub without its ready may have died with the socket");
    assert_eq!(ids_sent(&h, "unsub"), vec![stopped.clone()], "an unsub without its nosub may have died with the socket");
    // Its nosub ends the re-sending; a second resumption sends nothing more.
    h.frame(&json!({"msg":"nosub","id":stopped}).to_string());
    ready(&mut h, &waiting);
    h.close(1006);
    h.drain();
    h.fire();
    h.sent.clear();
    h.open_and_connect("S1");
    assert!(ids_sent(&h, "sub").is_empty() && ids_sent(&h, "unsub").is_empty(), "{:?}", h.sent);
}

#[test]
fn a_new_session_sends_no_unsub_for_an_unanswered_one() {
    let mut h = connected();
    let id = h.m.subscribe("s", vec![]);
    h.drain();
    h.m.unsubscribe(&id);
    h.drain();
    h.close(1006);
    h.drain();
    h.fire();
    h.sent.clear();
    h.open_and_connect("S2");
    assert!(!h.m.resumed());
    assert!(sent_of(&h, "unsub").is_empty() && sent_of(&h, "sub").is_empty(), "{:?}", h.sent);
}

#[test]
fn reconnect_holds_data_until_ready_then_applies_only_differences() {
    let mut h = connected();
    let id = h.m.subscribe("items", vec![]);
    h.drain();
    added(&mut h, "same", 1);
    added(&mut h, "edit", 1);
    added(&mut h, "gone", 1);
    ready(&mut h, &id);
    h.drop_and_reconnect("S2");
    // While the server re-sends, nothing changes locally.
    added(&mut h, "same", 1);
    added(&mut h, "edit", 2);
    added(&mut h, "new", 1);
    assert!(data(&h).is_empty(), "held back");
    assert_eq!(h.m.store().len(), 3);
    assert_eq!(h.m.sub_ready(&id), Some(true), "a ready handle stays ready");
    ready(&mut h, &id);
    let mut changes = data(&h);
    changes.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes.contains(&Change::Removed { collection: "c".into(), id: "gone".into() }));
    assert!(changes.iter().any(|c| matches!(c, Change::Changed { id, .. } if id == "edit")));
    assert!(changes.iter().any(|c| matches!(c, Change::Added { id, .. } if id == "new")));
    assert!(!changes.iter().any(|c| matches!(c, Change::Removed { id, .. } if id == "same")), "no flicker");
    assert!(!h.done.iter().any(|e| matches!(e, Completion::SubReady { .. })), "no second ready");
}

#[test]
fn the_hold_also_waits_for_resent_methods() {
    let mut h = connected();
    let id = h.m.subscribe("items", vec![]);
    h.drain();
    ready(&mut h, &id);
    h.m.call("write", vec![], Default::default(), h.now).unwrap();
    h.drain();
    h.drop_and_reconnect("S2");
    added(&mut h, "x", 1);
    ready(&mut h, &id);
    assert!(data(&h).is_empty(), "the re-sent method's writes are not visible yet");
    h.frame(r#"{"msg":"result","id":"1"}"#);
    h.frame(r#"{"msg":"updated","methods":["1"]}"#);
    assert_eq!(data(&h).len(), 1);
}

#[test]
fn no_hold_with_a_resumed_session() {
    let mut h = connected();
    let id = h.m.subscribe("items", vec![]);
    h.drain();
    ready(&mut h, &id);
    added(&mut h, "a", 1);
    h.drop_and_reconnect("S1");
    added(&mut h, "b", 1);
    assert_eq!(data(&h).len(), 1, "applied at once");
    assert_eq!(h.m.store().len(), 2);
}

#[test]
fn a_new_subscription_during_the_hold_becomes_ready_after_it() {
    let mut h = connected();
    let old = h.m.subscribe("old", vec![]);
    h.drain();
    ready(&mut h, &old);
    h.drop_and_reconnect("S2");
    let new = h.m.subscribe("new", vec![]);
    h.drain();
    ready(&mut h, &new);
    assert_eq!(h.m.sub_ready(&new), Some(false), "announced after the hold");
    ready(&mut h, &old);
    assert_eq!(h.m.sub_ready(&new), Some(true));
    assert!(h.done.contains(&Completion::SubReady { id: new }));
}

#[cfg(not(target_arch = "wasm32"))]
mod random_interleavings {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Add(u8, i64),
        Change(u8, i64),
        Remove(u8),
        Drop,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..20, any::<i64>()).prop_map(|(i, v)| Step::Add(i, v)),
            3 => (0u8..20, any::<i64>()).prop_map(|(i, v)| Step::Change(i, v)),
            2 => (0u8..20).prop_map(Step::Remove),
            1 => Just(Step::Drop),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Whatever the interleaving of data and drops, once the server has
        /// re-sent its set and said ready, the store equals the server's
        /// set, and the changes observers saw replay to the same set.
        #[test]
        fn the_store_converges_to_the_server_and_observers_agree(steps in proptest::collection::vec(step(), 1..60)) {
            let mut h = connected();
            let sub = h.m.subscribe("s", vec![]);
            h.drain();
            let mut server: std::collections::BTreeMap<String, i64> = Default::default();
            ready(&mut h, &sub);
            let mut session = 1;
            for st in steps {
                match st {
                    Step::Add(i, v) | Step::Change(i, v) => {
                        let id = format!("d{i}");
                        if server.insert(id.clone(), v).is_some() {
                            h.frame(&json!({"msg":"changed","collection":"c","id":id,"fields":{"v":v}}).to_string());
                        } else {
                            h.frame(&json!({"msg":"added","collection":"c","id":id,"fields":{"v":v}}).to_string());
                        }
                    }
                    Step::Remove(i) => {
                        let id = format!("d{i}");
                        if server.remove(&id).is_some() {
                            h.frame(&json!({"msg":"removed","collection":"c","id":id}).to_string());
                        }
                    }
                    Step::Drop => {
                        session += 1;
                        h.close(1006);
                        h.fire();
                        h.open_and_connect(&format!("S{session}"));
                        for (id, v) in &server {
                            h.frame(&json!({"msg":"added","collection":"c","id":id,"fields":{"v":v}}).to_string());
                        }
                        ready(&mut h, &sub);
                    }
                }
            }
            let local: std::collections::BTreeMap<String, i64> = h.m.store().collection("c")
                .map(|docs| docs.iter().map(|(k, f)| (k.clone(), f.fields()["v"].as_i64().unwrap())).collect())
                .unwrap_or_default();
            prop_assert_eq!(&local, &server);
            // Replaying what observers were told gives the same set.
            let mut seen: std::collections::BTreeMap<String, i64> = Default::default();
            for c in data(&h) {
                match c {
                    Change::Added { id, fields, .. } => { seen.insert(id, fields["v"].as_i64().unwrap()); }
                    Change::Changed { id, fields, .. } => { if let Some(v) = fields.get("v") { seen.insert(id, v.as_i64().unwrap()); } }
                    Change::Removed { id, .. } => { seen.remove(&id); }
                }
            }
            prop_assert_eq!(seen, server);
        }
    }
}

#[test]
fn a_stub_write_stays_until_the_hold_of_a_new_session_brings_the_servers_copy() {
    use crate::protocol::machine::StubWrite;
    let mut h = connected();
    let sub = h.m.subscribe("docs", vec![]);
    h.drain();
    ready(&mut h, &sub);
    h.close(1006);
    h.drain();
    // Offline: a stub writes t1; its call waits in the outbox.
    let mut fields = serde_json::Map::new();
    fields.insert("v".into(), json!(1));
    let w = StubWrite { collection: "c".into(), id: "t1".into(), doc: Some(fields) };
    let id = h.m.call_with_writes("insert", vec![], Default::default(), vec![w], h.now).unwrap();
    h.drain();
    h.fire();
    h.open_and_connect("S2"); // a new session: data held until the sub is ready again
                              // The call runs and completes before the re-sent subscription is ready.
    added(&mut h, "t1", 1);
    h.frame(&json!({"msg":"updated","methods":[id.to_string()]}).to_string());
    h.frame(&json!({"msg":"result","id":id.to_string(),"result":"t1"}).to_string());
    assert!(h.done.iter().any(|c| matches!(c, Completion::MethodDone { .. })));
    assert!(h.m.store().get("c", "t1").is_some(), "the stub's copy stays while the server's is held");
    ready(&mut h, &sub);
    assert!(h.m.store().get("c", "t1").is_some());
    assert!(!data(&h).iter().any(|c| matches!(c, Change::Removed { .. })), "t1 never vanished: {:?}", data(&h));
}

#[test]
fn stub_writes_show_until_the_call_completes() {
    use crate::protocol::machine::StubWrite;
    let mut h = connected();
    let w = StubWrite { collection: "c".into(), id: "x".into(), doc: Some(serde_json::Map::new()) };
    let id = h.m.call_with_writes("m", vec![], Default::default(), vec![w], h.now).unwrap();
    h.drain();
    assert!(h.m.store().get("c", "x").is_some());
    assert!(matches!(data(&h).as_slice(), [Change::Added { .. }]));
    h.frame(&json!({"msg":"result","id":id.to_string()}).to_string());
    h.frame(&json!({"msg":"updated","methods":[id.to_string()]}).to_string());
    assert!(h.m.store().get("c", "x").is_none(), "the server never confirmed it");
    assert!(matches!(data(&h).last(), Some(Change::Removed { .. })));
    // A call refused at once leaves no write behind.
    let mut h = Harness::new(Config { max_pending_calls: 1, ..Config::default() });
    h.start();
    h.m.call("a", vec![], Default::default(), h.now).unwrap();
    let w = StubWrite { collection: "c".into(), id: "y".into(), doc: Some(serde_json::Map::new()) };
    assert!(h.m.call_with_writes("b", vec![], Default::default(), vec![w], h.now).is_err());
    assert!(h.m.store().get("c", "y").is_none());
}

#[test]
fn stream_collections_deliver_at_once_and_are_never_stored_or_held() {
    let mut h = connected();
    h.m.add_stream_collection("rooms.inbox");
    let id = h.m.subscribe("rooms.inbox", vec![]);
    h.drain();
    ready(&mut h, &id);
    h.frame(r#"{"msg":"added","collection":"rooms.inbox","id":"m1","fields":{"room":"r","data":1}}"#);
    h.frame(r#"{"msg":"removed","collection":"rooms.inbox","id":"m1"}"#);
    assert!(h.m.store().is_empty());
    assert!(h.events.iter().any(|e| matches!(e, Event::Stream { id, .. } if id == "m1")));
    assert!(data(&h).is_empty());
    // After a reconnect with a new session, messages are not held.
    h.drop_and_reconnect("S2");
    h.frame(r#"{"msg":"added","collection":"rooms.inbox","id":"m2","fields":{"room":"r","data":2}}"#);
    assert!(h.events.iter().any(|e| matches!(e, Event::Stream { id, .. } if id == "m2")));
}

#[test]
fn inconsistent_data_is_reported_and_still_converges() {
    let mut h = connected();
    let errors = |h: &mut Harness| -> Vec<&'static str> {
        h.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Error(e) => Some(e.code()),
                _ => None,
            })
            .collect()
    };
    added(&mut h, "a", 1);
    assert_eq!(errors(&mut h), Vec::<&str>::new());
    added(&mut h, "a", 2);
    assert_eq!(errors(&mut h), vec!["duplicate-document"]);
    assert_eq!(h.m.store().get("c", "a").as_deref(), json!({"v": 2}).as_object(), "the second add wins, as the server says");
    h.frame(&json!({"msg":"changed","collection":"c","id":"zz","fields":{"v":7}}).to_string());
    assert_eq!(errors(&mut h), vec!["unknown-document"]);
    assert_eq!(h.m.store().get("c", "zz").as_deref(), json!({"v": 7}).as_object(), "a change of an unknown document adds it");
    h.frame(&json!({"msg":"removed","collection":"c","id":"nope"}).to_string());
    assert_eq!(errors(&mut h), vec!["unknown-document"]);
    h.frame(&json!({"msg":"removed","collection":"c","id":"zz"}).to_string());
    assert_eq!(errors(&mut h), Vec::<&str>::new());
    assert_eq!(h.m.store().get("c", "zz"), None);
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
fn fields(v: Value) -> crate::protocol::store::Fields {
    v.as_object().cloned().unwrap_or_default()
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn a_seeded_store_is_reconciled_with_the_first_session_once_the_seeded_subscription_is_ready() {
    let mut h = Harness::new(Config::default());
    h.start();
    let id = h.m.subscribe("items", vec![]);
    let seed = vec![
        ("c".to_owned(), "a".to_owned(), fields(json!({"v": 1}))),
        ("c".to_owned(), "b".to_owned(), fields(json!({"v": 2}))),
        ("c".to_owned(), "gone".to_owned(), fields(json!({"v": 3}))),
    ];
    assert!(h.m.seed(seed, Some(&id)));
    h.drain();
    // The page's documents and readiness at once, before any socket opened.
    assert_eq!(h.m.sub_ready(&id), Some(true));
    assert!(h.done.contains(&Completion::SubReady { id: id.clone() }));
    assert_eq!(data(&h).len(), 3);
    assert_eq!(h.m.store().snapshot().len(), 3);
    h.done.clear();
    h.open_and_connect("S");
    assert_eq!(ids_sent(&h, "sub"), std::slice::from_ref(&id));
    // The first session's data is held until the subscription is ready again.
    added(&mut h, "a", 1);
    added(&mut h, "b", 20);
    added(&mut h, "new", 4);
    assert!(data(&h).is_empty(), "nothing shows before the subscription is ready again: {:?}", data(&h));
    ready(&mut h, &id);
    // Then only the differences: "a" untouched, "b" changed, "gone" removed, "new" added.
    let mut changes: Vec<(String, &str)> = data(&h)
        .iter()
        .map(|c| {
            let kind = match c {
                Change::Added { .. } => "added",
                Change::Changed { .. } => "changed",
                Change::Removed { .. } => "removed",
            };
            (c.id().to_owned(), kind)
        })
        .collect();
    changes.sort();
    assert_eq!(changes, [("b".to_owned(), "changed"), ("gone".to_owned(), "removed"), ("new".to_owned(), "added")]);
    assert!(!h.done.iter().any(|d| matches!(d, Completion::SubReady { .. })), "ready was already announced");
    assert_eq!(h.m.store().get("c", "b").unwrap()["v"], 20);
    // A seed after a session began is refused: nothing would reconcile it.
    assert!(!h.m.seed(vec![("c".to_owned(), "late".to_owned(), fields(json!({})))], None));
    assert!(h.m.store().get("c", "late").is_none());
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn a_seeded_subscription_stopped_before_the_first_session_leaves_none_of_its_documents() {
    let mut h = Harness::new(Config::default());
    h.start();
    let id = h.m.subscribe("items", vec![]);
    assert!(h.m.seed(vec![("c".to_owned(), "a".to_owned(), fields(json!({"v": 1})))], Some(&id)));
    h.m.unsubscribe(&id);
    h.drain();
    h.done.clear();
    h.open_and_connect("S");
    assert!(sent_of(&h, "sub").is_empty());
    assert_eq!(data(&h), vec![Change::Removed { collection: "c".into(), id: "a".into() }]);
    assert!(h.m.store().is_empty());
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
fn kinds(h: &Harness) -> Vec<(String, &'static str)> {
    let mut changes: Vec<(String, &'static str)> = data(h)
        .iter()
        .map(|c| {
            let kind = match c {
                Change::Added { .. } => "added",
                Change::Changed { .. } => "changed",
                Change::Removed { .. } => "removed",
            };
            (c.id().to_owned(), kind)
        })
        .collect();
    changes.sort();
    changes
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn a_cache_read_after_the_socket_opened_is_reconciled_once_every_subscription_is_ready() {
    let mut h = Harness::new(Config::default());
    h.start();
    // A durable cache is being read: the first session will be held.
    h.m.expect_seed();
    let early = h.m.subscribe("items", vec![]);
    h.open_and_connect("S");
    // Subscribed as the app renders, after the session began: waited for too.
    let late = h.m.subscribe("more", vec![]);
    h.drain();
    assert_eq!(ids_sent(&h, "sub"), vec![early.clone(), late.clone()]);
    // A subscription ready before the cache came: still held for it.
    let other = h.m.subscribe("other", vec![]);
    h.drain();
    added(&mut h, "o", 1);
    h.frame(&json!({"msg":"ready","subs":[other.clone()]}).to_string());
    assert!(data(&h).is_empty(), "{:?}", data(&h));
    // The cache arrives while the session holds: shown at once, stale.
    let cached = vec![
        ("c".to_owned(), "same".to_owned(), fields(json!({"v": 1}))),
        ("c".to_owned(), "changed".to_owned(), fields(json!({"v": 2}))),
        ("c".to_owned(), "gone".to_owned(), fields(json!({"v": 3}))),
    ];
    assert!(h.m.seed(cached, None));
    h.drain();
    assert!(h.m.stale());
    assert!(h.done.contains(&Completion::Stale(true)));
    assert_eq!(kinds(&h).len(), 3);
    h.done.clear();
    added(&mut h, "same", 1);
    added(&mut h, "changed", 20);
    added(&mut h, "new", 4);
    ready(&mut h, &early);
    assert!(data(&h).is_empty(), "held until every subscription is ready: {:?}", data(&h));
    assert_eq!(h.m.sub_ready(&early), Some(false));
    ready(&mut h, &late);
    assert_eq!(
        kinds(&h),
        [("changed".to_owned(), "changed"), ("gone".to_owned(), "removed"), ("new".to_owned(), "added"), ("o".to_owned(), "added")]
    );
    assert_eq!((h.m.sub_ready(&early), h.m.sub_ready(&late), h.m.sub_ready(&other)), (Some(true), Some(true), Some(true)));
    assert_eq!(h.done[h.done.len() - 2..], [Completion::Stale(false), Completion::HoldEnded], "fresh once reconciled: {:?}", h.done);
    assert!(!h.m.stale());
    // Later data applies at once; a late seed is refused.
    h.done.clear();
    added(&mut h, "later", 5);
    assert_eq!(kinds(&h), [("later".to_owned(), "added")]);
    assert!(!h.m.seed(vec![("c".to_owned(), "x".to_owned(), fields(json!({})))], None));
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn an_empty_cache_holds_nothing_back() {
    let mut h = Harness::new(Config::default());
    h.start();
    h.m.expect_seed();
    let id = h.m.subscribe("items", vec![]);
    h.open_and_connect("S");
    added(&mut h, "a", 1);
    assert!(data(&h).is_empty());
    h.m.seed_none();
    h.drain();
    assert_eq!(kinds(&h), [("a".to_owned(), "added")], "what was held shows");
    added(&mut h, "b", 1);
    ready(&mut h, &id);
    assert_eq!(h.m.sub_ready(&id), Some(true));
    assert!(!h.done.iter().any(|d| matches!(d, Completion::Stale(_))));
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn cached_documents_no_subscription_claims_go_when_the_first_session_begins_with_none() {
    let mut h = Harness::new(Config::default());
    h.start();
    assert!(h.m.seed(vec![("c".to_owned(), "a".to_owned(), fields(json!({"v": 1})))], None));
    h.drain();
    h.done.clear();
    h.open_and_connect("S");
    assert_eq!(kinds(&h), [("a".to_owned(), "removed")]);
    assert!(!h.m.stale());
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn a_drop_during_the_first_hold_keeps_the_cache_and_waits_again() {
    let mut h = Harness::new(Config::default());
    h.start();
    let id = h.m.subscribe("items", vec![]);
    assert!(h.m.seed(vec![("c".to_owned(), "a".to_owned(), fields(json!({"v": 1})))], None));
    h.open_and_connect("S");
    added(&mut h, "b", 1);
    h.drain();
    h.done.clear();
    // The socket dies before the subscription is ready: nothing changes.
    let s = h.socket();
    h.m.handle_close(s, 1006, h.now);
    h.drain();
    h.advance(60_000.0);
    h.open_and_connect("S2");
    assert!(data(&h).is_empty(), "{:?}", data(&h));
    assert!(h.m.stale());
    added(&mut h, "a", 1);
    ready(&mut h, &id);
    assert!(data(&h).is_empty(), "the cached document was unchanged: {:?}", data(&h));
    assert!(!h.m.stale());
}

#[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))] // Machine::seed
#[test]
fn a_cache_read_after_a_server_render_leaves_the_rendered_documents_alone() {
    let mut h = Harness::new(Config::default());
    h.start();
    let id = h.m.subscribe("items", vec![]);
    assert!(h.m.seed(vec![("c".to_owned(), "a".to_owned(), fields(json!({"v": 2})))], Some(&id)));
    let doc = |v: Value| crate::protocol::doc::Doc::from_fields(v.as_object().unwrap());
    assert!(h
        .m
        .seed_docs(vec![("c".to_owned(), "a".to_owned(), doc(json!({"v": 1}))), ("c".to_owned(), "b".to_owned(), doc(json!({"v": 3})))]));
    assert_eq!(h.m.store().get("c", "a").unwrap()["v"], 2, "the render's copy is newer than the cache's");
    assert_eq!(h.m.store().get("c", "b").unwrap()["v"], 3);
}
