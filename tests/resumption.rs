//! End-to-end tests, in the browser and natively: a frame the client wrote
//! just before a drop, which the server never read, is sent again on the
//! resumed session. The test server's `drop-on?msg=K` fault cuts the socket
//! when the next client frame of kind `K` arrives, before reading it.
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::rooms::{Client, JoinOptions};
use ddp_live::{connect, Connection};
use futures_util::future::{select, Either};
use serde_json::{json, Value};
use std::future::Future;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `fut`'s output, or a failure naming `what` after `ms` (the bug these
/// tests guard against makes things wait forever).
async fn within<T>(ms: u32, what: &str, fut: impl Future<Output = T>) -> T {
    match select(Box::pin(fut), Box::pin(sleep(ms))).await {
        Either::Left((v, _)) => v,
        Either::Right(_) => panic!("timed out after {ms} ms waiting for {what}"),
    }
}

/// Connects, arms `drop-on?msg=kind`, and returns the connection.
async fn armed(sc: &str, kind: &str) -> Connection {
    let conn = connect(&ws_url(sc), fast()).unwrap();
    wait_connected(&conn).await;
    assert_eq!(control(sc, &format!("drop-on?msg={kind}")).await["dropOn"], kind);
    conn
}

/// The frame died with its socket (the link dropped), and the session
/// was resumed.
async fn resumed(sc: &str, conn: &Connection, session: &str, rec: &Recorder) {
    wait_event(rec, 10_000, "the drop", |e| matches!(e, ddp_live::Event::Disconnected { .. })).await;
    wait_status(conn, 10_000, "the resumed session", |s| s.connected && conn.id().as_deref() == Some(session)).await;
    assert!(conn.resumed());
    assert!(control(sc, "stats").await["dropOn"].is_null(), "the fault fired");
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_sub_lost_in_the_drop_becomes_ready() {
    let sc = scenario("res-sub");
    let conn = armed(&sc, "sub").await;
    let (session, rec) = (conn.id().unwrap(), record(&conn));
    let sub = conn.subscribe("items", (5, 0));
    within(10_000, "the subscription's ready", sub.wait_ready()).await.unwrap();
    resumed(&sc, &conn, &session, &rec).await;
    assert_eq!(conn.collection("items").len(), 5);
    assert_eq!(control(&sc, "stats").await["subRequests"], 1, "the one sub the server read is the re-sent one");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn an_unsub_lost_in_the_drop_is_honoured() {
    let (sc, conn) = open("res-unsub");
    let items = conn.collection("items");
    let sub = conn.subscribe("items", (3, 0));
    sub.wait_ready().await.unwrap();
    assert_eq!(control(&sc, "stats").await["subscriptions"], 1);
    let (session, rec) = (conn.id().unwrap(), record(&conn));
    control(&sc, "drop-on?msg=unsub").await;
    sub.stop();
    resumed(&sc, &conn, &session, &rec).await;
    let mut waited = 0;
    loop {
        let stats = control(&sc, "stats").await;
        if stats["unsubRequests"] == 1 && stats["subscriptions"] == 0 && items.is_empty() {
            break;
        }
        assert!(waited < 10_000, "the server never honoured the unsub: {stats}, {} documents left", items.len());
        sleep(20).await;
        waited += 20;
    }
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_method_lost_in_the_drop_runs_once() {
    let sc = scenario("res-method");
    let conn = armed(&sc, "method").await;
    let (session, rec) = (conn.id().unwrap(), record(&conn));
    let n: i64 = within(10_000, "the call", conn.call("inc", ("x",))).await.unwrap();
    assert_eq!(n, 1);
    resumed(&sc, &conn, &session, &rec).await;
    assert_eq!(control(&sc, "executions").await["counters"]["x"], 1);
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_login_lost_in_the_drop_holds() {
    let sc = scenario("res-login");
    let r = control(&sc, "accounts?op=create&username=ada&email=ada@example.com&password=pw").await;
    let id = r["id"].as_str().unwrap().to_owned();
    let conn = armed(&sc, "login").await;
    let (session, rec) = (conn.id().unwrap(), record(&conn));
    let accounts = conn.accounts();
    assert_eq!(within(10_000, "the login", accounts.login_with_password("ada", "pw")).await, Ok(id.clone()));
    resumed(&sc, &conn, &session, &rec).await;
    assert_eq!(accounts.user_id(), Some(id.clone()));
    assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(Some(id)), "the session is the user's");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_room_join_lost_in_the_drop_joins() {
    let sc = scenario("res-join");
    let client = Client::new(&ws_url(&sc), fast()).unwrap();
    let conn = client.connection().clone();
    wait_connected(&conn).await;
    let (session, rec) = (conn.id().unwrap(), record(&conn));
    control(&sc, "drop-on?msg=rooms.join").await;
    let room = client.connect("lobby", JoinOptions::default());
    within(10_000, "the join", async {
        while !room.connected() {
            sleep(10).await;
        }
    })
    .await;
    resumed(&sc, &conn, &session, &rec).await;
    let members = control(&sc, "stats?room=lobby").await["members"].clone();
    assert_eq!(members.as_array().map(Vec::len), Some(1), "{members}");
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn the_rooms_inbox_sub_lost_in_the_drop_still_delivers() {
    let sc = scenario("res-inbox");
    // The inbox `sub` is the rooms client's first frame after `connect`.
    control(&sc, "drop-on?msg=sub").await;
    let a = Client::new(&ws_url(&sc), fast()).unwrap();
    let rec = record(a.connection());
    wait_event(&rec, 10_000, "the first session", |e| matches!(e, ddp_live::Event::Connected { .. })).await;
    // (From the event: the socket may be gone already.)
    let session = rec
        .events
        .borrow()
        .iter()
        .find_map(|e| match e {
            ddp_live::Event::Connected { session } => Some(session.clone()),
            _ => None,
        })
        .unwrap();
    resumed(&sc, a.connection(), &session, &rec).await;
    // The server holds the inbox subscription (the test server delivers room
    // messages to members whatever they subscribe; a Meteor app's
    // `rooms.inbox` publication does not).
    within(10_000, "the inbox subscription on the server", async {
        while control(&sc, "stats").await["subscriptions"] != 1 {
            sleep(20).await;
        }
    })
    .await;
    let ra = a.connect("lobby", JoinOptions::default());
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Value>::new()));
    let s = seen.clone();
    ra.on_notice(move |n| {
        if let ddp_live::rooms::RoomNotice::Message { data, .. } = n {
            s.borrow_mut().push(data.clone());
        }
    })
    .forget();
    within(10_000, "the join", async {
        while !ra.connected() {
            sleep(10).await;
        }
    })
    .await;
    let b = Client::new(&ws_url(&sc), fast()).unwrap();
    let rb = b.connect("lobby", JoinOptions::default());
    within(10_000, "the second join", async {
        while !rb.connected() {
            sleep(10).await;
        }
    })
    .await;
    within(10_000, "the send", rb.send(json!("hello"), None)).await.unwrap();
    within(10_000, "the message in the inbox", async {
        while seen.borrow().is_empty() {
            sleep(10).await;
        }
    })
    .await;
    assert_eq!(*seen.borrow(), vec![json!("hello")]);
}
