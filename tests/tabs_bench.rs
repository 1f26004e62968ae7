//! A benchmark, not a test (it prints figures and asserts nothing): the
//! latency a shared socket adds to a call (`Options::share_across_tabs`).
//! 300 sequential calls of the test server's `add` from a plain
//! connection, from the leader of a group (its calls go through the hub in
//! the same page) and from a follower (through a BroadcastChannel to the
//! leader and back; here both members live in one page, so the figure has
//! no cross-process hop between tabs). Run by `scripts/bench-tabs.sh`
//! (from `scripts/bench.sh`), optimised; it prints table rows prefixed
//! `BENCH|`.
#![cfg(all(target_arch = "wasm32", feature = "tabs"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, Connection, Options};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CALLS: usize = 300;

fn now() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now()
}

/// Each call's round trip, in ms, sorted.
async fn round_trips(conn: &Connection) -> Vec<f64> {
    // Warm up: the first calls pay for code and socket buffers.
    for i in 0..20 {
        let _: f64 = conn.call("add", (i, 1)).await.unwrap();
    }
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = now();
        let _: f64 = conn.call("add", (i, 1)).await.unwrap();
        times.push(now() - t);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn row(what: &str, times: &[f64], plain: f64) -> String {
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    format!("BENCH|| {what} | {median:.3} ms | {p95:.3} ms | {:+.3} ms |", median - plain)
}

#[wasm_bindgen_test]
async fn call_latency_through_a_shared_socket() {
    let sc = scenario("bench-tabs");
    let plain = connect(&ws_url(&sc), fast()).unwrap();
    wait_connected(&plain).await;
    let alone = round_trips(&plain).await;
    plain.close();
    let shared = Options { share_across_tabs: true, ..fast() };
    let leader = connect(&ws_url(&sc), shared.clone()).unwrap();
    wait_connected(&leader).await;
    let follower = connect(&ws_url(&sc), shared).unwrap();
    wait_connected(&follower).await;
    let from_leader = round_trips(&leader).await;
    let from_follower = round_trips(&follower).await;
    let base = alone[alone.len() / 2];
    for line in [
        row("a plain connection (its own socket)", &alone, base),
        row("the leader of a group (through the hub)", &from_leader, base),
        row("a follower (BroadcastChannel to the leader and back)", &from_follower, base),
    ] {
        web_sys::console::log_1(&line.into());
    }
    leader.close();
    follower.close();
}
