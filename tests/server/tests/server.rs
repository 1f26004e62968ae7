//! The test server's own tests: the pure rules, then the server over a real
//! socket (tokio-tungstenite as the client).

mod common;

use axum::http::HeaderMap;
use common::*;
use ddp_test_server::{choose_version, client_address, random_id, whitelisted_headers, Config};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[test]
fn client_address_follows_meteor() {
    let peer: SocketAddr = "10.0.0.9:5555".parse().unwrap();
    assert_eq!(client_address(Some(peer), Some("1.1.1.1"), 0).as_deref(), Some("10.0.0.9"));
    assert_eq!(client_address(Some(peer), Some("1.1.1.1, 2.2.2.2, 3.3.3.3"), 1).as_deref(), Some("3.3.3.3"));
    assert_eq!(client_address(Some(peer), Some("1.1.1.1, 2.2.2.2, 3.3.3.3"), 2).as_deref(), Some("2.2.2.2"));
    assert_eq!(client_address(Some(peer), Some("1.1.1.1,2.2.2.2,3.3.3.3"), 3).as_deref(), Some("1.1.1.1"));
    assert_eq!(client_address(Some(peer), Some("1.1.1.1, 2.2.2.2"), 3), None, "more proxies than entries");
    assert_eq!(client_address(Some(peer), None, 1), None, "no header behind a proxy");
}

#[test]
fn headers_are_whitelisted_and_cookies_never_pass() {
    let mut h = HeaderMap::new();
    h.insert("cookie", "secret=1".parse().unwrap());
    h.insert("authorization", "Bearer x".parse().unwrap());
    h.insert("user-agent", "test".parse().unwrap());
    h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
    h.insert("accept-language", "fr".parse().unwrap());
    let w = whitelisted_headers(&h);
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["accept-language", "user-agent", "x-forwarded-for"]);
    assert!(!w.contains_key("cookie"));
}

#[test]
fn session_ids_are_17_meteor_characters() {
    let alphabet = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
    let a = random_id();
    assert_eq!(a.len(), 17);
    assert!(a.chars().all(|c| alphabet.contains(c)));
    assert_ne!(a, random_id());
}

#[test]
fn version_choice_follows_meteor() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(choose_version(&s(&["1", "pre2"]), &s(&["pre2", "1"])), "1");
    assert_eq!(choose_version(&s(&["pre1"]), &s(&["1", "pre2", "pre1"])), "pre1");
    assert_eq!(choose_version(&s(&["pre1"]), &s(&["2"])), "2");
}

#[tokio::test]
async fn handshake_gives_a_fresh_17_char_session_each_time() {
    let (_s, addr) = start(Config::default()).await;
    let mut a = ws(addr, "/websocket").await;
    let mut b = ws(addr, "/websocket").await;
    let sa = handshake(&mut a).await;
    let sb = handshake(&mut b).await;
    assert_eq!(sa.len(), 17);
    assert_ne!(sa, sb);
}

#[tokio::test]
async fn negotiation_proposes_a_version_and_closes() {
    let (_s, addr) = start(Config { versions: vec!["pre2".into()], ..Config::default() }).await;
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["1","pre2"]})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"failed","version":"pre2"}));
    let end = tokio::time::timeout(Duration::from_secs(5), c.next()).await.unwrap();
    assert!(matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))));
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"pre2","support":["1","pre2"]})).await;
    assert_eq!(recv(&mut c).await["msg"], "connected");
}

#[tokio::test]
async fn bad_frames_get_meteors_error_replies_and_the_socket_stays() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    send(&mut c, json!({"msg":"ping"})).await;
    assert_eq!(recv(&mut c).await["reason"], "Must connect first");
    handshake(&mut c).await;
    c.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(recv(&mut c).await["reason"], "Bad request");
    send(&mut c, json!({"nomsg":1})).await;
    assert_eq!(recv(&mut c).await["reason"], "Bad request");
    send(&mut c, json!({"msg":"whatever"})).await;
    assert_eq!(recv(&mut c).await["reason"], "Bad request");
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"]})).await;
    assert_eq!(recv(&mut c).await["reason"], "Already connected");
    send(&mut c, json!({"msg":"sub","id":5})).await;
    assert_eq!(recv(&mut c).await["reason"], "Malformed subscription");
    send(&mut c, json!({"msg":"method","method":"m"})).await;
    assert_eq!(recv(&mut c).await["reason"], "Malformed method invocation");
    // Still alive:
    send(&mut c, json!({"msg":"ping","id":"z"})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"pong","id":"z"}));
}

#[tokio::test]
async fn unknown_method_and_publication_are_404s() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    send(&mut c, json!({"msg":"method","method":"nope","params":[],"id":"1"})).await;
    let r = recv(&mut c).await;
    assert_eq!(r["msg"], "result");
    assert_eq!(r["error"]["error"], 404);
    assert_eq!(r["error"]["reason"], "Method 'nope' not found");
    assert_eq!(r["error"]["errorType"], "Meteor.Error");
    assert_eq!(recv(&mut c).await, json!({"msg":"updated","methods":["1"]}));
    send(&mut c, json!({"msg":"sub","id":"s","name":"nothing"})).await;
    let r = recv(&mut c).await;
    assert_eq!(r["msg"], "nosub");
    assert_eq!(r["error"]["message"], "Subscription 'nothing' not found [404]");
}

#[tokio::test]
async fn server_heartbeat_pings_and_drops_a_silent_client() {
    let (_s, addr) = start(heartbeat(100)).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    // Meteor's server ping has no id.
    assert_eq!(recv(&mut c).await, json!({"msg":"ping"}));
    // Not answering: the server closes the socket as Meteor does (1000).
    assert_eq!(close_frame(&mut c).await, Some((1000, "Normal closure".to_owned())));
}

#[tokio::test]
async fn on_connection_gives_id_address_headers_close_and_on_close() {
    let (server, addr) = start(Config::default()).await;
    let seen: Arc<Mutex<Vec<ddp_test_server::ServerConnection>>> = Arc::default();
    let s2 = seen.clone();
    let reg = server.on_connection(move |c| s2.lock().unwrap().push(c));
    let mut c = ws(addr, "/websocket").await;
    let session = handshake(&mut c).await;
    let conn = seen.lock().unwrap()[0].clone();
    assert_eq!(conn.id(), session);
    assert_eq!(conn.client_address(), Some("127.0.0.1"));
    assert!(conn.http_headers().contains_key("host"));
    let closed = Arc::new(AtomicUsize::new(0));
    let c2 = closed.clone();
    conn.on_close(move || {
        c2.fetch_add(1, Ordering::SeqCst);
    });
    conn.close();
    let end = tokio::time::timeout(Duration::from_secs(5), c.next()).await.unwrap();
    match end {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected a clean close, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(closed.load(Ordering::SeqCst), 1);
    // on_close after the end runs at once.
    let c3 = closed.clone();
    conn.on_close(move || {
        c3.fetch_add(10, Ordering::SeqCst);
    });
    assert_eq!(closed.load(Ordering::SeqCst), 11);
    // stop(): later connections are not reported.
    reg.stop();
    let mut d = ws(addr, "/websocket").await;
    handshake(&mut d).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn forwarded_count_picks_the_proxy_entry() {
    let (server, addr) = start(Config { forwarded_count: 1, ..Config::default() }).await;
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let s2 = seen.clone();
    let _reg = server.on_connection(move |c| s2.lock().unwrap().push(c.client_address().map(str::to_owned)));
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/websocket").into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-for", "9.9.9.9, 8.8.8.8".parse().unwrap());
    req.headers_mut().insert("cookie", "a=b".parse().unwrap());
    let (mut c, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    handshake(&mut c).await;
    assert_eq!(seen.lock().unwrap()[0].as_deref(), Some("8.8.8.8"));
}

#[tokio::test]
async fn fault_injection_is_per_scenario() {
    let (server, addr) = start(Config::default()).await;
    let mut a = ws(addr, "/t/a/websocket").await;
    let mut b = ws(addr, "/t/b/websocket").await;
    handshake(&mut a).await;
    handshake(&mut b).await;
    let stats = control(addr, "/control/a/drop").await;
    assert_eq!(stats["scenario"], "a");
    // a is cut without a close frame; b is untouched.
    let end = tokio::time::timeout(Duration::from_secs(5), a.next()).await.unwrap();
    assert!(matches!(end, None | Some(Err(_))), "dropped, not closed: {end:?}");
    send(&mut b, json!({"msg":"ping","id":"b"})).await;
    assert_eq!(recv(&mut b).await["id"], "b");
    assert_eq!(server.connection_count("b"), 1);

    control(addr, "/control/a/refuse?on=true").await;
    assert!(tokio_tungstenite::connect_async(format!("ws://{addr}/t/a/websocket")).await.is_err());
    control(addr, "/control/a/refuse?on=false").await;
    let mut a = ws(addr, "/t/a/websocket").await;
    handshake(&mut a).await;

    control(addr, "/control/a/silent?on=true").await;
    send(&mut a, json!({"msg":"ping","id":"q"})).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), a.next()).await.is_err(), "silent: no answer");
    control(addr, "/control/a/silent?on=false").await;

    control(addr, "/control/a/disconnect").await;
    let mut clean = false;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), a.next()).await {
        if let Ok(Message::Close(Some(f))) = m {
            clean = u16::from(f.code) == 1000;
            break;
        }
    }
    assert!(clean, "a clean close with code 1000");

    control(addr, "/control/a/versions?v=2").await;
    let mut a = ws(addr, "/t/a/websocket").await;
    send(&mut a, json!({"msg":"connect","version":"1","support":["1","pre2","pre1"]})).await;
    assert_eq!(recv(&mut a).await, json!({"msg":"failed","version":"2"}));
    let stats = control(addr, "/control/a/reset").await;
    assert_eq!(stats["refuse"], false);
}

#[tokio::test]
async fn test_methods_answer_in_order() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/t/m/websocket").await;
    handshake(&mut c).await;
    call(&mut c, "1", "add", json!([2, 3])).await;
    assert_eq!(answer(&mut c, "1").await["result"], 5.0);
    call(&mut c, "2", "echo", json!([{"$date": 5}])).await;
    assert_eq!(answer(&mut c, "2").await["result"], json!({"$date": 5}));
    call(&mut c, "3", "fail", json!(["nope", "Not allowed", {"k": 1}])).await;
    let e = answer(&mut c, "3").await;
    assert_eq!(e["error"]["error"], "nope");
    assert_eq!(e["error"]["reason"], "Not allowed");
    assert_eq!(e["error"]["details"], json!({"k": 1}));
    call(&mut c, "4", "updatedFirst", json!([1])).await;
    assert_eq!(recv(&mut c).await["msg"], "updated");
    assert_eq!(recv(&mut c).await["msg"], "result");
    call(&mut c, "5", "noResult", json!([])).await;
    assert!(answer(&mut c, "5").await.get("result").is_none());
    // Methods of a session run one at a time: a slow one delays the next.
    call(&mut c, "6", "sleep", json!([100])).await;
    call(&mut c, "7", "inc", json!(["k"])).await;
    let first = recv(&mut c).await;
    assert_eq!((first["msg"].as_str(), first["id"].as_str()), (Some("result"), Some("6")));
    assert_eq!(answer(&mut c, "7").await["result"], 1);
    let stats = control(addr, "/control/m/executions").await;
    assert_eq!(stats["runs"]["add"], 1);
    assert_eq!(stats["counters"]["k"], 1);
}

#[tokio::test]
async fn new_id_follows_the_random_seed() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/websocket").await;
    handshake(&mut c).await;
    send(&mut c, json!({"msg":"method","id":"1","method":"newId","params":["items"],"randomSeed":"SEED"})).await;
    assert_eq!(answer(&mut c, "1").await["result"], ddp_test_server::random::stream("SEED", "items").id());
    // Meteor's own answer (its random package, run by the fixture's shim:
    // `Random.createWithSeeds("SEED", "items")`): two ids, then a fraction.
    let mut alea = ddp_test_server::random::stream("SEED", "items");
    assert_eq!(alea.id(), "gyx6u2y5AyBBSDNon");
    assert_eq!(alea.id(), "Bsq9jL88vSkNZtbNy");
    assert_eq!(alea.fraction(), 0.8209822599310428);
}

#[tokio::test]
async fn resumption_replays_missed_messages_and_never_runs_an_id_twice() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/t/r/websocket").await;
    let session = handshake(&mut c).await;
    call(&mut c, "1", "inc", json!(["x"])).await;
    answer(&mut c, "1").await; // 2 messages received
                               // Send a call and drop before reading its answer.
    call(&mut c, "2", "inc", json!(["x"])).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    control(addr, "/control/r/drop").await;
    drop(c);
    let mut c = ws(addr, "/t/r/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"],"session":session,"receivedCount":2})).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"connected","session":session}));
    // The re-sent call is not run again; its answer is replayed.
    call(&mut c, "2", "inc", json!(["x"])).await;
    assert_eq!(answer(&mut c, "2").await["result"], 2);
    let stats = control(addr, "/control/r/executions").await;
    assert_eq!(stats["runs"]["inc"], 2);
    assert_eq!(stats["counters"]["x"], 2);
}

#[tokio::test]
async fn no_resumption_after_a_graceful_end_or_the_grace_period() {
    let (_s, addr) = start(Config { grace: Duration::from_millis(200), ..Config::default() }).await;
    // A client `disconnect` ends the session at once.
    let mut c = ws(addr, "/t/g/websocket").await;
    let s1 = handshake(&mut c).await;
    send(&mut c, json!({"msg":"disconnect"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = ws(addr, "/t/g/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"],"session":s1,"receivedCount":0})).await;
    let r = recv(&mut c).await;
    assert_ne!(r["session"], s1.as_str());
    // After a drop, the session waits only for the grace period.
    let s2 = r["session"].as_str().unwrap().to_owned();
    control(addr, "/control/g/drop").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut c = ws(addr, "/t/g/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"],"session":s2,"receivedCount":0})).await;
    assert_ne!(recv(&mut c).await["session"], s2.as_str());
    // Resumption can be turned off per scenario: a drop then ends the session at once.
    control(addr, "/control/g/resume?on=false").await;
    let mut c = ws(addr, "/t/g/websocket").await;
    let s3 = handshake(&mut c).await;
    control(addr, "/control/g/drop").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = ws(addr, "/t/g/websocket").await;
    send(&mut c, json!({"msg":"connect","version":"1","support":["1"],"session":s3,"receivedCount":0})).await;
    assert_ne!(recv(&mut c).await["session"], s3.as_str());
}

#[tokio::test]
async fn publications_send_documents_then_ready_and_unsub_removes_them() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/t/p/websocket").await;
    handshake(&mut c).await;
    send(&mut c, json!({"msg":"sub","id":"s1","name":"items","params":[3, 5]})).await;
    for i in 0..3 {
        let m = recv(&mut c).await;
        assert_eq!(m["msg"], "added");
        assert_eq!(m["id"], format!("item-{i}"));
        assert_eq!(m["fields"]["pad"], "xxxxx");
    }
    assert_eq!(recv(&mut c).await, json!({"msg":"ready","subs":["s1"]}));
    // A duplicate id is ignored.
    send(&mut c, json!({"msg":"sub","id":"s1","name":"items","params":[3]})).await;
    send(&mut c, json!({"msg":"unsub","id":"s1"})).await;
    let mut removed = 0;
    loop {
        let m = recv(&mut c).await;
        if m["msg"] == "removed" {
            removed += 1;
        } else {
            assert_eq!(m, json!({"msg":"nosub","id":"s1"}));
            break;
        }
    }
    assert_eq!(removed, 3);
    send(&mut c, json!({"msg":"sub","id":"f","name":"failing"})).await;
    let m = recv(&mut c).await;
    assert_eq!(m["msg"], "nosub");
    assert_eq!(m["error"]["error"], "sub-failed");
}

#[tokio::test]
async fn document_methods_reach_docs_subscribers_before_updated() {
    let (_s, addr) = start(Config::default()).await;
    let mut watcher = ws(addr, "/t/d/websocket").await;
    handshake(&mut watcher).await;
    send(&mut watcher, json!({"msg":"sub","id":"w","name":"docs","params":["notes"]})).await;
    assert_eq!(recv(&mut watcher).await["msg"], "ready");
    let mut c = ws(addr, "/t/d/websocket").await;
    handshake(&mut c).await;
    send(&mut c, json!({"msg":"sub","id":"s","name":"docs","params":["notes"]})).await;
    assert_eq!(recv(&mut c).await["msg"], "ready");
    call(&mut c, "1", "insertDoc", json!(["notes", {"_id": "n1", "text": "hi"}])).await;
    let added = recv(&mut c).await;
    assert_eq!(added, json!({"msg":"added","collection":"notes","id":"n1","fields":{"text":"hi"}}));
    assert_eq!(answer(&mut c, "1").await["result"], "n1");
    assert_eq!(recv(&mut watcher).await["id"], "n1", "other sessions see it too");
    call(&mut c, "2", "updateDoc", json!(["notes", "n1", {"text": null, "n": 1}])).await;
    let changed = recv(&mut c).await;
    assert_eq!(changed, json!({"msg":"changed","collection":"notes","id":"n1","fields":{"n":1},"cleared":["text"]}));
    answer(&mut c, "2").await;
    call(&mut c, "3", "removeDoc", json!(["notes", "n1"])).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"removed","collection":"notes","id":"n1"}));
    assert_eq!(answer(&mut c, "3").await["result"], true);
}

#[tokio::test]
async fn rooms_hooks_middleware_tags_send_and_broadcast() {
    use ddp_test_server::RoomHooks;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let hooks = RoomHooks::default()
        .use_connect(|req| if req.auth == json!("ok") { Ok(()) } else { Err("who are you?".into()) })
        .use_message(|_, data, _| if data == &json!("forbidden") { Err("not that".into()) } else { Ok(()) })
        .on_connect(move |c| {
            c.tags().insert("joined".into(), json!(true));
            l1.lock().unwrap().push(format!("connect {}", c.room_id()));
        })
        .on_message(move |c, data, kind| {
            assert_eq!(c.tags().get("joined"), Some(&json!(true)));
            l2.lock().unwrap().push(format!("message {data} {kind:?}"));
            c.send(json!({"echo": data}), Some("echo"));
            c.broadcast(data.clone(), kind, false);
        })
        .on_disconnect(move |c, reason| l3.lock().unwrap().push(format!("disconnect {} {reason}", c.id().len())));
    let (_s, addr) = start(Config { rooms: hooks, ..Config::default() }).await;
    let mut a = ws(addr, "/t/rm/websocket").await;
    let mut b = ws(addr, "/t/rm/websocket").await;
    handshake(&mut a).await;
    handshake(&mut b).await;
    call(&mut a, "1", "rooms.join", json!(["r", {"auth": "nope"}])).await;
    let e = answer(&mut a, "1").await;
    assert_eq!(e["error"]["error"], "join-rejected");
    assert_eq!(e["error"]["reason"], "who are you?");
    call(&mut a, "2", "rooms.join", json!(["r", {"auth": "ok"}])).await;
    let id = answer(&mut a, "2").await["result"]["connectionId"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 20);
    call(&mut b, "1", "rooms.join", json!(["r", {"auth": "ok"}])).await;
    answer(&mut b, "1").await;
    call(&mut a, "3", "rooms.send", json!(["r", "forbidden"])).await;
    assert_eq!(answer(&mut a, "3").await["error"]["error"], "message-rejected");
    call(&mut a, "4", "rooms.send", json!(["r", {"x": 1}, "t"])).await;
    // The sender gets its echo (send), not the broadcast.
    let echo = recv(&mut a).await;
    assert_eq!(echo["collection"], "rooms.inbox");
    assert_eq!(echo["fields"], json!({"room": "r", "data": {"echo": {"x": 1}}, "type": "echo"}));
    assert_eq!(recv(&mut a).await["msg"], "removed");
    assert_eq!(answer(&mut a, "4").await["result"], true);
    let got = recv(&mut b).await;
    assert_eq!(got["fields"], json!({"room": "r", "data": {"x": 1}, "type": "t"}));
    call(&mut b, "2", "rooms.leave", json!(["r"])).await;
    answer(&mut b, "2").await;
    call(&mut b, "3", "rooms.send", json!(["r", 1])).await;
    assert_eq!(answer(&mut b, "3").await["error"]["error"], "not-joined");
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0], "connect r");
    assert!(log.iter().any(|l| l == "message {\"x\":1} Some(\"t\")"));
    assert!(log.iter().any(|l| l == "disconnect 20 client disconnect"));
}

#[tokio::test]
async fn drop_on_cuts_the_socket_at_the_named_frame_unread_and_once() {
    let (_s, addr) = start(Config::default()).await;
    let mut c = ws(addr, "/t/d/websocket").await;
    let session = handshake(&mut c).await;
    assert_eq!(control(addr, "/control/d/drop-on?msg=sub").await["dropOn"], "sub");
    // Other kinds pass.
    call(&mut c, "1", "inc", json!(["x"])).await;
    answer(&mut c, "1").await;
    send(&mut c, json!({"msg":"sub","id":"s1","name":"items","params":[1]})).await;
    assert_eq!(close_frame(&mut c).await, None, "cut, no close frame");
    let stats = control(addr, "/control/d/stats").await;
    assert_eq!(stats["subRequests"], 0, "the sub was never read");
    assert!(stats["dropOn"].is_null(), "disarmed");
    assert_eq!(stats["sessions"], json!([session]), "held for resumption");
    // A method by name: the call is not run.
    let mut c = ws(addr, "/t/d/websocket").await;
    handshake(&mut c).await;
    control(addr, "/control/d/drop-on?msg=inc").await;
    call(&mut c, "2", "echo", json!([1])).await;
    answer(&mut c, "2").await;
    call(&mut c, "3", "inc", json!(["x"])).await;
    assert_eq!(close_frame(&mut c).await, None);
    assert_eq!(control(addr, "/control/d/executions").await["counters"]["x"], 1);
}
