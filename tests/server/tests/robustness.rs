//! The test server under faults: stale grace timers, clients that stop
//! reading, and waves of connections (what each leaves behind).

mod common;

use common::*;
use ddp_test_server::Config;
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

fn connect_resuming(session: &str, received: u64) -> serde_json::Value {
    json!({"msg":"connect","version":"1","support":["1"],"session":session,"receivedCount":received})
}

/// Drop, resume, drop again: the first drop's grace timer must not end the
/// resumed session, or the re-sent calls run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_grace_timer_does_not_end_a_resumed_session() {
    let grace = Duration::from_millis(1000);
    let (_s, addr) = start(Config { grace, ..Config::default() }).await;
    let mut c = ws(addr, "/t/stale/websocket").await;
    let session = handshake(&mut c).await;
    let t0 = Instant::now();
    control(addr, "/control/stale/drop").await; // grace timer 1: ends at t0 + 1000
    drop(c);
    let mut c = ws(addr, "/t/stale/websocket").await;
    send(&mut c, connect_resuming(&session, 0)).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"connected","session":session}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The client, waiting to reconnect, is refused for a while.
    control(addr, "/control/stale/refuse?on=true").await;
    call(&mut c, "a", "sleep", json!([300])).await;
    call(&mut c, "b", "inc", json!(["n"])).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    control(addr, "/control/stale/drop").await; // grace timer 2: ends at ~t0 + 1450
    drop(c);
    // Between the two timers' ends.
    tokio::time::sleep((t0 + Duration::from_millis(1200)).saturating_duration_since(Instant::now())).await;
    control(addr, "/control/stale/refuse?on=false").await;
    let mut c = ws(addr, "/t/stale/websocket").await;
    send(&mut c, connect_resuming(&session, 0)).await;
    assert_eq!(recv(&mut c).await, json!({"msg":"connected","session":session}), "resumed");
    assert!(t0.elapsed() < Duration::from_millis(1400), "the test ran within the second grace period");
    // The client re-sends what got no answer; each runs once.
    call(&mut c, "a", "sleep", json!([300])).await;
    call(&mut c, "b", "inc", json!(["n"])).await;
    assert_eq!(answer(&mut c, "b").await["result"], 1);
    let stats = control(addr, "/control/stale/executions").await;
    assert_eq!(stats["runs"]["inc"], 1, "inc ran once");
    assert_eq!(stats["runs"]["sleep"], 1);
}

/// Resident memory of this process (the test and the server in it).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// A client that stops reading while a publication floods it: its socket
/// is closed within heartbeat interval + timeout, and the server holds a
/// bounded amount for it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_costs_bounded_memory() {
    let (interval, timeout) = (Duration::from_millis(300), Duration::from_millis(300));
    let (server, addr) = start(Config {
        heartbeat_interval: interval,
        heartbeat_timeout: timeout,
        max_queued_bytes: 1 << 20,
        history_bytes: 1 << 20,
        ..Config::default()
    })
    .await;
    let before = rss_bytes();
    let mut c = ws(addr, "/t/stuck/websocket").await;
    handshake(&mut c).await;
    // 2,000 documents of 50 kB: 100 MB the client will never read.
    send(&mut c, json!({"msg":"sub","id":"flood","name":"items","params":[2000, 50_000]})).await;
    let sent = Instant::now();
    let mut peak = before;
    while server.connection_count("stuck") > 0 && sent.elapsed() < Duration::from_secs(10) {
        peak = peak.max(rss_bytes());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closed_after = sent.elapsed();
    assert_eq!(server.connection_count("stuck"), 0, "the stuck socket was closed");
    assert!(
        closed_after < interval + timeout + Duration::from_millis(300),
        "closed {closed_after:?} after the client's last message (heartbeat {interval:?} + {timeout:?})"
    );
    let grew = peak.saturating_sub(before);
    eprintln!("stuck client: closed {closed_after:?} after its last message; RSS grew {} kB at most", grew >> 10);
    assert!(grew < 40 << 20, "the server held {} MB for a client that read nothing", grew >> 20);
    // The client's end: what the kernel buffered, then the end of the stream.
    let ended = tokio::time::timeout(Duration::from_secs(10), async { while let Some(Ok(_)) = c.next().await {} }).await;
    assert!(ended.is_ok(), "the client sees its socket end");
}

/// A wave of connections — subscriptions with timers, calls, rooms, some
/// leaving cleanly and some dropped — leaves no session and no task behind
/// once the grace period is over, as the control endpoint reports
/// (`liveSessions` counts sessions not yet freed, `tasks` the runtime's
/// live tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_connections_leaves_no_session_or_task_behind() {
    let (_s, addr) = start(Config { grace: Duration::from_millis(200), ..Config::default() }).await;
    let baseline = control(addr, "/control/wave/stats").await;
    assert_eq!(baseline["liveSessions"], 0);
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut c = ws(addr, "/t/wave/websocket").await;
        handshake(&mut c).await;
        send(&mut c, json!({"msg":"sub","id":"c","name":"counter","params":[20]})).await;
        send(&mut c, json!({"msg":"sub","id":"d","name":"docs","params":["wave"]})).await;
        call(&mut c, "1", "inc", json!(["wave"])).await;
        call(&mut c, "2", "rooms.join", json!(["r", {}])).await;
        answer(&mut c, "2").await;
        clients.push((i, c));
    }
    let during = control(addr, "/control/wave/stats").await;
    assert_eq!(during["liveSessions"], 200);
    assert!(during["tasks"].as_u64().unwrap() > baseline["tasks"].as_u64().unwrap() + 200);
    for (i, mut c) in clients {
        if i % 2 == 0 {
            send(&mut c, json!({"msg":"disconnect"})).await;
        }
        drop(c); // closed without a close frame: held for the grace period
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = control(addr, "/control/wave/stats?room=r").await;
        let done = after["liveSessions"] == 0 && after["tasks"].as_u64() <= baseline["tasks"].as_u64();
        if done || Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(after["sessions"], json!([]), "no session held");
    assert_eq!(after["connections"], 0);
    assert_eq!(after["liveSessions"], 0, "every session freed");
    assert_eq!(after["members"], json!([]));
    assert!(
        after["tasks"].as_u64() <= baseline["tasks"].as_u64(),
        "tasks back to the baseline: {} then {}",
        baseline["tasks"],
        after["tasks"]
    );
}
