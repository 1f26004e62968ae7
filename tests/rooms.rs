//! End-to-end tests of rooms (the js-collaboration Connection) over DDP,
//! against the test server's chat rooms, in the browser and natively.
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::rooms::{Client, JoinOptions, Room, RoomNotice};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn inbox(room: &Room) -> Rc<RefCell<Vec<RoomNotice>>> {
    let seen: Rc<RefCell<Vec<RoomNotice>>> = Rc::default();
    let s = seen.clone();
    room.on_notice(move |n| s.borrow_mut().push(n.clone())).forget();
    seen
}

fn messages(seen: &Rc<RefCell<Vec<RoomNotice>>>) -> Vec<(Value, Option<String>)> {
    seen.borrow()
        .iter()
        .filter_map(|n| match n {
            RoomNotice::Message { data, kind } => Some((data.clone(), kind.clone())),
            _ => None,
        })
        .collect()
}

async fn joined(room: &Room) {
    wait_until(5_000, "the join", || room.connected()).await;
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn two_clients_exchange_typed_messages_both_ways() {
    let sc = scenario("r-chat");
    let a = Client::new(&ws_url(&sc), fast()).unwrap();
    let b = Client::new(&ws_url(&sc), fast()).unwrap();
    let ra = a.connect("lobby", JoinOptions::default());
    let rb = b.connect("lobby", JoinOptions::default());
    assert_eq!(ra.room_id(), "lobby");
    assert_eq!(ra.id(), None);
    let (ia, ib) = (inbox(&ra), inbox(&rb));
    joined(&ra).await;
    joined(&rb).await;
    let ida = ra.id().unwrap();
    assert_eq!(ida.len(), 20);
    let members = control(&sc, "stats?room=lobby").await["members"].clone();
    assert!(members.as_array().unwrap().iter().any(|m| m == ida.as_str()), "the server knows the same id");
    ra.send(json!({"text": "hi"}), Some("chat")).await.unwrap();
    rb.send(json!([1, 2, 3]), None).await.unwrap();
    rb.send(42, Some("n")).await.unwrap();
    rb.send("plain", None).await.unwrap();
    wait_until(3_000, "b's message", || messages(&ib).len() == 1).await;
    wait_until(3_000, "a's messages", || messages(&ia).len() == 3).await;
    assert_eq!(messages(&ib), vec![(json!({"text": "hi"}), Some("chat".into()))]);
    assert_eq!(messages(&ia), vec![(json!([1, 2, 3]), None), (json!(42), Some("n".into())), (json!("plain"), None)]);
    assert!(matches!(ia.borrow()[0], RoomNotice::Connect));
    a.close();
    b.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn broadcast_excludes_the_sender_unless_include_self() {
    let sc = scenario("r-bcast");
    let a = Client::new(&ws_url(&sc), fast()).unwrap();
    let b = Client::new(&ws_url(&sc), fast()).unwrap();
    let (ra, rb) = (a.connect("r", JoinOptions::default()), b.connect("r", JoinOptions::default()));
    let (ia, ib) = (inbox(&ra), inbox(&rb));
    joined(&ra).await;
    joined(&rb).await;
    ra.send("others", None).await.unwrap(); // default: the others only
    ra.send("everyone", Some("all")).await.unwrap(); // includeSelf
    ra.send("me", Some("echo")).await.unwrap(); // back to the sender only
    wait_until(3_000, "a's two", || messages(&ia).len() == 2).await;
    wait_until(3_000, "b's two", || messages(&ib).len() == 2).await;
    sleep(100).await;
    let texts = |m: Vec<(Value, Option<String>)>| m.into_iter().map(|(d, _)| d).collect::<Vec<_>>();
    assert_eq!(texts(messages(&ia)), vec![json!("everyone"), json!("me")]);
    assert_eq!(texts(messages(&ib)), vec![json!("others"), json!("everyone")]);
    a.close();
    b.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn after_a_forced_drop_both_rejoin_with_new_ids_and_offline_sends_arrive_once_in_order() {
    let sc = scenario("r-drop");
    control(&sc, "resume?on=false").await;
    let a = Client::new(&ws_url(&sc), fast()).unwrap();
    let b = Client::new(&ws_url(&sc), fast()).unwrap();
    let (ra, rb) = (a.connect("r", JoinOptions::default()), b.connect("r", JoinOptions::default()));
    let (ia, ib) = (inbox(&ra), inbox(&rb));
    joined(&ra).await;
    joined(&rb).await;
    let (ida, idb) = (ra.id().unwrap(), rb.id().unwrap());
    // a stays offline after the drop (disconnect() right in the notice), so
    // its sends wait in the outbox while b comes back: rooms keep no
    // history, b must be in the room when they are delivered.
    let conn_a = a.connection().clone();
    let _offline = ra.on_notice(move |n| {
        if matches!(n, RoomNotice::Disconnect(r) if r == "transport close") {
            conn_a.disconnect();
        }
    });
    control(&sc, "drop").await;
    // The notices, unlike the polled flag, cannot miss a quick down-and-up.
    wait_until(3_000, "a down", || ia.borrow().iter().any(|n| matches!(n, RoomNotice::Disconnect(_)))).await;
    let sends: Vec<_> = (0..5).map(|i| ra.send(i, Some("seq"))).collect();
    wait_until(5_000, "b back", || rb.connected() && rb.id().as_deref() != Some(idb.as_str())).await;
    _offline.stop();
    a.connection().reconnect();
    wait_until(5_000, "a back", || ra.connected() && ra.id().as_deref() != Some(ida.as_str())).await;
    for s in sends {
        s.await.unwrap();
    }
    wait_until(3_000, "b's five", || messages(&ib).len() >= 5).await;
    sleep(200).await;
    let got: Vec<Value> = messages(&ib).into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, (0..5).map(Value::from).collect::<Vec<_>>(), "once, in order");
    let notices = ia.borrow().clone();
    assert!(notices.contains(&RoomNotice::Disconnect("transport close".into())));
    assert!(notices.iter().any(|n| matches!(n, RoomNotice::ReconnectAttempt(_))));
    assert!(notices.iter().any(|n| matches!(n, RoomNotice::Reconnect(_))));
    a.close();
    b.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_rejected_join_reports_the_reason_and_does_not_retry() {
    let sc = scenario("r-reject");
    let a = Client::new(&ws_url(&sc), fast()).unwrap();
    let room = a.connect("vault", JoinOptions { auth: json!({"reject": "invalid token"}), query: Value::Null });
    let seen = inbox(&room);
    wait_until(3_000, "the rejection", || !seen.borrow().is_empty()).await;
    assert_eq!(seen.borrow()[0], RoomNotice::Error { code: "join-rejected".into(), reason: "invalid token".into() });
    sleep(300).await;
    assert!(!room.connected());
    assert_eq!(control(&sc, "executions").await["runs"]["rooms.join"], 1, "no retry loop");
    assert!(room.send("x", None).await.is_err(), "a rejected room cannot send");
    a.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn three_rooms_share_one_socket_and_closing_one_leaves_the_others() {
    let sc = scenario("r-three");
    let a = Client::new(&ws_url(&sc), fast()).unwrap();
    let b = Client::new(&ws_url(&sc), fast()).unwrap();
    let rooms_a: Vec<Room> = ["x", "y", "z"].iter().map(|r| a.connect(r, JoinOptions::default())).collect();
    let rooms_b: Vec<Room> = ["x", "y", "z"].iter().map(|r| b.connect(r, JoinOptions::default())).collect();
    for r in rooms_a.iter().chain(&rooms_b) {
        joined(r).await;
    }
    assert_eq!(control(&sc, "stats").await["connections"], 2, "one socket per client, three rooms each");
    let inboxes: Vec<_> = rooms_b.iter().map(inbox).collect();
    let closed_seen = inbox(&rooms_a[0]);
    rooms_a[0].close();
    assert!(!rooms_a[0].connected());
    assert!(closed_seen.borrow().contains(&RoomNotice::Disconnect("client disconnect".into())));
    assert!(rooms_a[0].send("nope", None).await.is_err());
    rooms_a[1].send("to y", None).await.unwrap();
    rooms_a[2].send("to z", None).await.unwrap();
    wait_until(3_000, "y and z", || messages(&inboxes[1]).len() == 1 && messages(&inboxes[2]).len() == 1).await;
    assert_eq!(messages(&inboxes[1])[0].0, json!("to y"));
    assert_eq!(messages(&inboxes[2])[0].0, json!("to z"));
    let members = control(&sc, "stats?room=x").await["members"].as_array().unwrap().len();
    assert_eq!(members, 1, "a left room x on the server too");
    assert_eq!(control(&sc, "stats").await["connections"], 2);
    a.close();
    b.close();
}
