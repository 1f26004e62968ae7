//! Meteor's server on the wire, for what the test server implements: each
//! case as Meteor 3.0.4's ddp-server answers it (livedata_server.js, and
//! observed against the Meteor fixture in ../shared/meteor-server).

mod common;

use common::*;
use ddp_test_server::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The next frame, text as it came (not re-serialised).
async fn recv_text(c: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), c.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Nothing arrives within `ms`.
async fn quiet(c: &mut Ws, ms: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), c.next()).await.is_err()
}

#[tokio::test]
async fn a_client_close_frame_is_answered() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    c.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await.unwrap();
    // Meteor echoes the client's close frame (observed: 1000 "bye").
    assert_eq!(close_frame(&mut c).await, Some((1000, "bye".to_owned())));
}

#[tokio::test]
async fn failed_closes_with_a_status_code() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"2","support":["2"]})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"failed","version":"1"}));
    assert_eq!(close_frame(&mut c).await, Some((1000, "Normal closure".to_owned())));
    // A malformed connect (version not in support) fails the same way.
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["pre1", 5]})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"failed","version":"1"}));
    assert_eq!(close_frame(&mut c).await, Some((1000, "Normal closure".to_owned())));
}

#[tokio::test]
async fn messages_are_handled_in_order_behind_a_blocking_method() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    call(&mut c, "a", "sleep", json!([300])).await;
    send(&mut c, json!({"msg":"sub","id":"s","name":"items","params":[1]})).await;
    send(&mut c, json!({"msg":"unsub","id":"s"})).await;
    send(&mut c, json!({"msg":"sub","id":5})).await;
    send(&mut c, json!({"msg":"bogus"})).await;
    send(&mut c, json!({"msg":"ping","id":"p"})).await;
    // Pings are answered at once; everything else waits for the method.
    assert_eq!(recv(&mut c).await, json!({"msg":"pong","id":"p"}));
    let mut seen = Vec::new();
    while seen.last() != Some(&"error bogus".to_owned()) {
        let m = recv(&mut c).await;
        seen.push(match m["msg"].as_str().unwrap() {
            "error" => format!("error {}", m["offendingMessage"]["msg"].as_str().unwrap()),
            "result" | "nosub" => format!("{} {}", m["msg"].as_str().unwrap(), m["id"]),
            other => other.to_owned(),
        });
    }
    assert_eq!(
        seen,
        ["result \"a\"", "updated", "added", "ready", "removed", "nosub \"s\"", "error sub", "error bogus"],
        "in the order sent, the subscription after the method's end"
    );
    // A method that unblocks lets the next messages go ahead.
    call(&mut c, "b", "sleepUnblocked", json!([300])).await;
    send(&mut c, json!({"msg":"sub","id":"t","name":"items","params":[1]})).await;
    assert_eq!(recv(&mut c).await["msg"], "added");
    assert_eq!(recv(&mut c).await, json!({"msg":"ready","subs":["t"]}));
    assert_eq!(answer(&mut c, "b").await["result"], 300);
}

#[tokio::test]
async fn numbers_go_out_as_javascript_writes_them() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    let cases = [
        (json!([2, 3]), "5"),
        (json!([2.5, 2.5]), "5"),
        (json!([-0.0, -0.0]), "0"),
        (json!([0.5, 0.25]), "0.75"),
        (json!([1e15, 1]), "1000000000000001"),
        (json!([1e308, 1e308]), r#"{"$InfNaN":1}"#),
        (json!([-1e308, -1e308]), r#"{"$InfNaN":-1}"#),
    ];
    for (i, (params, want)) in cases.iter().enumerate() {
        call(&mut c, &i.to_string(), "add", params.clone()).await;
        let text = recv_text(&mut c).await;
        assert_eq!(text, format!(r#"{{"msg":"result","id":"{i}","result":{want}}}"#), "add{params}");
        assert_eq!(recv(&mut c).await["msg"], "updated");
    }
    call(&mut c, "s", "sleep", json!([1])).await;
    assert_eq!(recv_text(&mut c).await, r#"{"msg":"result","id":"s","result":1}"#);
}

#[tokio::test]
async fn bad_frames_get_meteors_replies() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    // Not JSON, or JSON but not an object: no offending message.
    for text in ["{nope", "5", "null", "\"x\""] {
        c.send(Message::Text(text.into())).await.unwrap();
        assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request"}), "{text}");
    }
    c.send(Message::Text("[1,2]".into())).await.unwrap();
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request","offendingMessage":[1,2]}));
    send(&mut c, json!({"msg":""})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request","offendingMessage":{"msg":""}}));
    // A truthy `msg` that is not a string: before connect, "Must connect first".
    send(&mut c, json!({"msg":5})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Must connect first","offendingMessage":{"msg":5}}));
    handshake(&mut c).await;
    send(&mut c, json!({"msg":5})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request","offendingMessage":{"msg":5}}));
    let bad_seed = json!({"msg":"method","id":"a","method":"newId","params":["x"],"randomSeed":5});
    send(&mut c, bad_seed.clone()).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Malformed method invocation","offendingMessage":bad_seed}));
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"]})).await;
    assert_eq!(recv(&mut c).await["reason"], "Already connected");
}

#[tokio::test]
async fn binary_frames_are_read_as_text() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    let connect = json!({"msg":"connect","version":"1","support":["1"]}).to_string();
    c.send(Message::Binary(connect.into_bytes().into())).await.unwrap();
    assert_eq!(recv(&mut c).await["msg"], "connected");
    c.send(Message::Binary(b"garbage\xff".to_vec().into())).await.unwrap();
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request"}));
}

#[tokio::test]
async fn disconnect_is_a_bad_request_and_ends_the_session_with_its_socket() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/t/dc/websocket").await;
    let session = handshake(&mut c).await;
    send(&mut c, json!({"msg":"disconnect"})).await;
    call(&mut c, "1", "add", json!([1, 1])).await;
    // Meteor does not know the message: "Bad request", in order, and the
    // socket stays open.
    assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request","offendingMessage":{"msg":"disconnect"}}));
    assert_eq!(answer(&mut c, "1").await["result"], 2);
    // The client said it was leaving: when its socket goes, the session
    // ends (it is not held for resumption).
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = control(addr, "/control/dc/stats").await;
    assert_eq!(stats["sessions"], json!([]));
    let mut c = ws(addr, "/t/dc/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"],"session":session,"receivedCount":4})).await;
    let r = recv(&mut c).await;
    assert_eq!(r["msg"], "connected");
    assert_ne!(r["session"], session.as_str());
}

#[tokio::test]
async fn pre1_has_no_pings() {
    let (_s, addr) = start(heartbeat(100)).await;
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"pre1","support":["pre1"]})).await;
    assert_eq!(recv(&mut c).await["msg"], "connected");
    // pre1 knew no ping or pong: they are unknown messages.
    for m in [json!({"msg":"ping","id":"x"}), json!({"msg":"pong"})] {
        send(&mut c, m.clone()).await;
        assert_eq!(recv(&mut c).await, json!({"msg":"error","reason":"Bad request","offendingMessage":m}));
    }
    // And the server sends no heartbeat.
    assert!(quiet(&mut c, 500).await, "no ping, no close");
    call(&mut c, "1", "echo", json!(["still here"])).await;
    assert_eq!(answer(&mut c, "1").await["result"], "still here");
}

#[tokio::test]
async fn without_a_heartbeat_a_socket_with_no_traffic_is_cut() {
    let idle = Duration::from_millis(300);
    let (_s, addr) = start(Config { idle_timeout: idle, ..Config::default() }).await;
    // Never says `connect`: cut (no close frame), after the idle timeout.
    let mut c = ws(addr, "/websocket").await;
    let t = std::time::Instant::now();
    assert_eq!(close_frame(&mut c).await, None);
    assert!(t.elapsed() >= idle && t.elapsed() < idle * 3, "cut after {:?}", t.elapsed());
    // A pre1 session that receives data is not idle...
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"pre1","support":["pre1"]})).await;
    assert_eq!(recv(&mut c).await["msg"], "connected");
    send(&mut c, json!({"msg":"sub","id":"c","name":"counter","params":[50]})).await;
    let t = std::time::Instant::now();
    while t.elapsed() < idle * 3 {
        recv(&mut c).await;
    }
    send(&mut c, json!({"msg":"unsub","id":"c"})).await;
    // ...and once nothing moves either way, it is cut.
    let t = std::time::Instant::now();
    assert_eq!(close_frame(&mut c).await, None);
    assert!(t.elapsed() >= idle && t.elapsed() < idle * 3, "cut after {:?}", t.elapsed());
}

#[tokio::test]
async fn unsub_of_an_unknown_id_and_a_duplicate_sub_of_an_unknown_name() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    send(&mut c, json!({"msg":"unsub","id":"zzz"})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"nosub","id":"zzz"}));
    send(&mut c, json!({"msg":"sub","id":"s","name":"items","params":[0]})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"ready","subs":["s"]}));
    // Meteor looks the name up before the id: an unknown name is a 404
    // even under an id in use.
    send(&mut c, json!({"msg":"sub","id":"s","name":"nothing"})).await;
    let m: Value = recv(&mut c).await;
    assert_eq!((m["msg"].as_str(), m["error"]["error"].as_i64()), (Some("nosub"), Some(404)));
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_closed_with_1009() {
    // Meteor's WebSocket driver (faye's) closes with 1009 "WebSocket frame
    // length too large" past its maxLength; the client reads the code to
    // fail the message instead of re-sending it after every reconnect.
    let (_s, addr) = start(Config { max_message_bytes: 4096, ..Config::default() }).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    send(&mut c, json!({"msg":"method","id":"1","method":"echo","params":["x".repeat(3000)]})).await;
    assert_eq!(recv(&mut c).await["msg"], "result", "under the limit: answered");
    send(&mut c, json!({"msg":"method","id":"2","method":"echo","params":["x".repeat(5000)]})).await;
    assert_eq!(close_frame(&mut c).await, Some((1009, "WebSocket frame length too large".to_owned())));
}
