//! One socket for every tab (`Options::share_across_tabs`), end to end
//! against the test server, in Chromium (cargo feature `tabs`: each
//! connection of the page is a member of the group, over a real
//! BroadcastChannel and real Web Locks, as tabs are) and natively (the
//! connections of one thread), from the same tests: the server sees one
//! socket; every member gets its data and its results; a member that goes
//! stops its subscriptions; the leader going hands over to the next, and
//! calls made during the failover run once; a dropped socket is resumed,
//! and so is each member's session. (`tests/js/leptos-example.test.mjs` opens real
//! tabs.)
#![cfg(any(all(target_arch = "wasm32", feature = "tabs"), feature = "native"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Connection, Event, Options};
use serde_json::{json, Value};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn shared() -> Options {
    Options { share_across_tabs: true, ..fast() }
}

async fn members(sc: &str, n: usize) -> Vec<Connection> {
    let conns: Vec<Connection> = (0..n).map(|_| connect(&ws_url(sc), shared()).unwrap()).collect();
    for c in &conns {
        wait_connected(c).await;
    }
    conns
}

async fn sockets(sc: &str) -> u64 {
    control(sc, "stats").await["connections"].as_u64().unwrap()
}

/// Waits until the server's stats for `sc` satisfy `pred`; returns them.
async fn wait_stats(sc: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let stats = control(sc, "stats").await;
        if pred(&stats) {
            return stats;
        }
        sleep(10).await;
    }
    panic!("timed out waiting for {what}: {}", control(sc, "stats").await);
}

async fn every_member_shares_one_socket_and_gets_its_own_data_and_results(n: usize) {
    let sc = scenario(&format!("tabs-{n}"));
    let conns = members(&sc, n).await;
    assert_eq!(sockets(&sc).await, 1, "{n} members, one socket");
    // Each member its own subscription, its own calls.
    let subs: Vec<_> = conns.iter().enumerate().map(|(i, c)| c.subscribe("items", (i + 2,))).collect();
    for s in &subs {
        s.wait_ready().await.unwrap();
    }
    for (i, c) in conns.iter().enumerate() {
        let items = c.collection("items");
        // The session's documents are the union of every member's.
        assert_eq!(items.len(), n + 1, "member {i}");
        assert!(items.find_one(&format!("item-{}", i + 1)).is_some());
        let sum: f64 = c.call("add", (i, 10)).await.unwrap();
        assert_eq!(sum, (i + 10) as f64);
    }
    let results = futures_util::future::join_all(conns.iter().map(|c| c.call::<Value>("inc", ("k",)))).await;
    let mut counts: Vec<u64> = results.into_iter().map(|r| r.unwrap().as_u64().unwrap()).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=n as u64).collect::<Vec<_>>(), "each call ran once, its result to its caller");
    let stats = control(&sc, "stats").await;
    assert_eq!((stats["connections"].as_u64(), stats["subscriptions"].as_u64()), (Some(1), Some(n as u64)), "{stats}");
    for c in &conns {
        c.close();
    }
    wait_stats(&sc, "no socket left", |s| s["connections"] == 0).await;
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn two_members_share_one_socket() {
    every_member_shares_one_socket_and_gets_its_own_data_and_results(2).await;
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn five_members_share_one_socket() {
    every_member_shares_one_socket_and_gets_its_own_data_and_results(5).await;
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_member_that_goes_stops_its_subscriptions_and_the_others_keep_theirs() {
    let sc = scenario("tabs-leave");
    let conns = members(&sc, 3).await;
    conns[0].subscribe("items", (2,)).wait_ready().await.unwrap();
    conns[2].subscribe("docs", ("notes",)).wait_ready().await.unwrap();
    assert_eq!(control(&sc, "stats").await["subscriptions"], 2);
    // A follower goes: its subscription stops on the server.
    conns[2].close();
    let stats = wait_stats(&sc, "the follower's subscription stopped", |s| s["subscriptions"] == 1).await;
    assert_eq!(stats["connections"], 1);
    assert_eq!(conns[1].collection("items").len(), 2, "the others keep the session's documents");
    assert!(conns[0].connected() && conns[1].connected());
    conns[0].close();
    conns[1].close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn the_leader_going_hands_over_and_calls_made_during_the_failover_run_once() {
    let sc = scenario("tabs-failover");
    let mut conns = members(&sc, 3).await;
    for c in &conns {
        c.subscribe("items", (3,)).wait_ready().await.unwrap();
    }
    let followers = conns.split_off(1);
    let recorders: Vec<_> = followers.iter().map(record).collect();
    // The leader (the first member: it asked for the lock first) goes,
    // and the followers call at once, while no one leads.
    conns[0].close();
    let calls: Vec<_> = followers.iter().flat_map(|c| (0..5).map(move |_| c.call::<Value>("inc", ("k",)))).collect();
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["counters"]["k"], 10, "every call ran exactly once: {runs}");
    for (c, rec) in followers.iter().zip(&recorders) {
        wait_connected(c).await;
        assert_eq!(c.collection("items").len(), 3, "the data is back through the new leader");
        assert!(rec.events.borrow().iter().any(|e| matches!(e, Event::Disconnected { .. })), "the status told the truth");
    }
    let stats = wait_stats(&sc, "one socket, from the new leader", |s| s["connections"] == 1).await;
    assert_eq!(stats["subscriptions"], 1, "the followers' alike subscriptions, shared: {stats}");
    for c in &followers {
        c.close();
    }
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn the_leader_dying_with_calls_in_flight_hands_its_session_over_and_each_runs_once() {
    let sc = scenario("tabs-takeover");
    let mut conns = members(&sc, 2).await;
    conns[1].subscribe("items", (3,)).wait_ready().await.unwrap();
    let session = control(&sc, "stats").await["sessions"][0].clone();
    // The follower's calls are on the wire when the leader's tab dies: the
    // server is running the first, the second waits behind it.
    let slow = conns[1].call::<Value>("sleep", (400,));
    let inc = conns[1].call::<Value>("inc", ("k",));
    for _ in 0..200 {
        if control(&sc, "executions").await["runs"]["sleep"] == 1 {
            break;
        }
        sleep(10).await;
    }
    // Dropped, never closed: no goodbye, the session is left to resume.
    drop(conns.remove(0));
    let (slow, inc) = futures_util::future::join(slow, inc).await;
    assert_eq!((slow.unwrap(), inc.unwrap()), (json!(400), json!(1)), "each call's own result, replayed to it");
    let runs = control(&sc, "executions").await;
    assert_eq!((runs["runs"]["sleep"].as_u64(), runs["counters"]["k"].as_u64()), (Some(1), Some(1)), "none ran again: {runs}");
    let stats = wait_stats(&sc, "one socket, from the new leader", |s| s["connections"] == 1).await;
    assert_eq!(stats["sessions"], json!([session]), "the same session, taken over: {stats}");
    let follower = &conns[0];
    wait_connected(follower).await;
    let items = follower.collection("items");
    wait_until(5_000, "the data back", || items.len() == 3).await;
    let stats = wait_stats(&sc, "the old subscription stopped, the new one live", |s| s["subscriptions"] == 1).await;
    assert_eq!(stats["subRequests"], 2, "made again under a new id: {stats}");
    follower.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_dropped_socket_is_resumed_and_every_member_resumes_its_session_and_its_unread_call_runs_once() {
    let sc = scenario("tabs-resume");
    let conns = members(&sc, 2).await;
    conns[1].subscribe("items", (2,)).wait_ready().await.unwrap();
    let recorders: Vec<_> = conns.iter().map(record).collect();
    // The server cuts the socket at the next call, before reading it.
    control(&sc, "drop-on?msg=method").await;
    let n: Value = conns[1].call("inc", ("k",)).await.unwrap();
    assert_eq!(n, 1);
    let runs = control(&sc, "executions").await;
    assert_eq!(runs["counters"]["k"], 1, "{runs}");
    for (i, c) in conns.iter().enumerate() {
        wait_connected(c).await;
        // Each saw the drop (a truthful status) and resumed its session.
        assert!(recorders[i].events.borrow().iter().any(|e| matches!(e, Event::Disconnected { .. })), "{:?}", recorders[i].events.borrow());
        assert!(c.resumed(), "member {i} resumed its session");
    }
    let stats = control(&sc, "stats").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["connections"].as_u64(), stats["sessions"].as_array().map(Vec::len)),
        (Some(2), Some(1), Some(1)),
        "a second socket, the same session: {stats}"
    );
    assert_eq!(conns[0].collection("items").len(), 2);
    conns[0].close();
    conns[1].close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn members_subscribing_alike_share_one_subscription_and_one_that_dies_lets_go_of_its_own() {
    let sc = scenario("tabs-alike");
    let mut conns = members(&sc, 3).await;
    for c in &conns {
        c.subscribe("items", (4,)).wait_ready().await.unwrap();
    }
    conns[2].subscribe("docs", ("notes",)).wait_ready().await.unwrap();
    let stats = control(&sc, "stats").await;
    assert_eq!((stats["subscriptions"].as_u64(), stats["subRequests"].as_u64()), (Some(2), Some(2)), "three alike, one shared: {stats}");
    assert!(conns.iter().all(|c| c.collection("items").len() == 4));
    // A member that dies (dropped, never closed: no goodbye reaches the
    // leader) is seen gone through its lock, and its own subscription stops.
    drop(conns.pop());
    wait_stats(&sc, "the dead member's subscription stopped", |s| s["subscriptions"] == 1).await;
    conns[1].close();
    let _: f64 = conns[0].call("add", (1, 1)).await.unwrap();
    assert_eq!(control(&sc, "stats").await["subscriptions"], 1, "still held by the first");
    conns[0].close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_lone_member_works_as_a_plain_connection() {
    let sc = scenario("tabs-alone");
    let conns = members(&sc, 1).await;
    let _: String = conns[0].call("insertDoc", ("notes", json!({"_id": "a"}))).await.unwrap();
    assert_eq!(sockets(&sc).await, 1);
    conns[0].close();
    wait_stats(&sc, "no socket left", |s| s["connections"] == 0).await;
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_result_too_large_to_read_fails_the_followers_call_with_a_typed_error() {
    let sc = scenario("tabs-too-large");
    let small = Options { max_frame_bytes: 10_000, ..shared() };
    let conns: Vec<Connection> = (0..2).map(|_| connect(&ws_url(&sc), small.clone()).unwrap()).collect();
    for c in &conns {
        wait_connected(c).await;
    }
    let err = conns[1].call::<Value>("echo", ("x".repeat(20_000),)).await.unwrap_err();
    assert_eq!(err.error(), "frame-too-large", "{err:?}");
    // Both members go on.
    let n: f64 = conns[1].call("add", (1, 2)).await.unwrap();
    assert_eq!(n, 3.0);
    let n: f64 = conns[0].call("add", (2, 2)).await.unwrap();
    assert_eq!(n, 4.0);
    assert_eq!(sockets(&sc).await, 1);
    for c in &conns {
        c.close();
    }
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_call_the_server_refuses_as_too_large_fails_in_its_member_instead_of_looping() {
    let sc = scenario("tabs-too-big");
    let conns = members(&sc, 2).await;
    // The test server takes messages of up to 1 MiB: this one is 1.2 MB,
    // from the follower; the calls around it, from both, are not lost.
    let before = conns[0].call::<Value>("echo", ("before",));
    let big = conns[1].call::<Value>("echo", ("x".repeat(1_200_000),));
    let after = conns[1].call::<Value>("echo", ("after",));
    let err = big.await.unwrap_err();
    assert_eq!(err.error(), "message-too-big", "{err:?}");
    assert_eq!((before.await.unwrap(), after.await.unwrap()), (json!("before"), json!("after")));
    for c in &conns {
        wait_connected(c).await;
    }
    let n: f64 = conns[1].call("add", (2, 3)).await.unwrap();
    assert_eq!(n, 5.0);
    let stats = control(&sc, "stats").await;
    assert_eq!((stats["accepted"].as_u64(), stats["connections"].as_u64()), (Some(2), Some(1)), "one refusal, one new socket: {stats}");
    for c in &conns {
        c.close();
    }
}
