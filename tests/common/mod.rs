//! Helpers shared by the end-to-end tests (each test file is its own crate
//! and uses some of them). The same tests run on both hosts:
//!
//! - in the browser (`wasm-pack test --headless --chrome`), against the
//!   test server whose address `DDP_TEST_SERVER` gave at compile time;
//! - natively on tokio (`cargo test --features native`), against the test
//!   server at `DDP_TEST_SERVER` read at run time, or, without it, one
//!   started in-process for the test binary.
//!
//! A test is an `async fn` marked
//! `#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]`:
//! `wasm_bindgen_test` in the browser, natively tokio's test attribute on a
//! current-thread runtime inside a `LocalSet` (see [`local_set`]). What
//! differs between the hosts (the control endpoint's HTTP call, sleeping,
//! randomness, spawning) is in `browser.rs` and `native.rs`, with the same
//! names.
#![allow(dead_code)]

use ddp_live::{Connection, Event, Options, RetryPolicy, Status};
use std::cell::RefCell;
use std::rc::Rc;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub use browser::*;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

pub fn scenario(name: &str) -> String {
    // Unique per run too, so a rerun against a long-lived server starts clean.
    format!("{name}-{}", random_below(1_000_000_000))
}

pub fn ws_url(scenario: &str) -> String {
    format!("ws://{}/t/{scenario}/websocket", server())
}

/// Fast retries for tests (the defaults wait up to minutes).
pub fn fast() -> Options {
    Options {
        retry: RetryPolicy { min_count: 1, min_timeout_ms: 20.0, base_timeout_ms: 50.0, exponent: 1.5, max_timeout_ms: 200.0, fuzz: 0.5 },
        // Tests run side by side in one page: only the test about page
        // events listens to them (it dispatches `offline` on the window).
        watch_page: false,
        ..Options::default()
    }
}

/// Polls `probe` every 10 ms until it gives a value, or fails after `ms`
/// with "timed out after {ms} ms waiting for {what()}".
pub async fn poll<T>(ms: u32, what: impl Fn() -> String, mut probe: impl FnMut() -> Option<T>) -> T {
    let mut waited = 0;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(waited < ms, "timed out after {ms} ms waiting for {}", what());
        sleep(10).await;
        waited += 10;
    }
}

/// Waits until `pred` holds, or fails after `ms`.
pub async fn wait_until(ms: u32, what: &str, pred: impl Fn() -> bool) {
    poll(ms, || what.to_owned(), || pred().then_some(())).await
}

/// Waits until `pred` holds for the status, or fails after `ms`.
pub async fn wait_status(conn: &Connection, ms: u32, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
    poll(
        ms,
        || format!("{what}; status is {:?}", conn.status()),
        || {
            let s = conn.status();
            pred(&s).then_some(s)
        },
    )
    .await
}

pub async fn wait_connected(conn: &Connection) -> Status {
    wait_status(conn, 10_000, "connected", |s| s.connected).await
}

/// A fresh scenario and a connection to it (fast retries), not yet connected.
pub fn open(name: &str) -> (String, Connection) {
    let sc = scenario(name);
    let conn = ddp_live::connect(&ws_url(&sc), fast()).expect("valid URL");
    (sc, conn)
}

/// [`open`], then waits until the connection is up.
pub async fn connected(name: &str) -> (String, Connection) {
    let (sc, conn) = open(name);
    wait_connected(&conn).await;
    (sc, conn)
}

/// Records every event and status change of a connection.
#[derive(Default)]
pub struct Recorder {
    pub events: RefCell<Vec<Event>>,
    pub statuses: RefCell<Vec<Status>>,
}

pub fn record(conn: &Connection) -> Rc<Recorder> {
    let r = Rc::new(Recorder::default());
    let r1 = r.clone();
    conn.on_event(move |e| r1.events.borrow_mut().push(e.clone())).forget();
    let r2 = r.clone();
    conn.on_status_change(move |s| r2.statuses.borrow_mut().push(s.clone())).forget();
    r
}

impl Recorder {
    /// The texts of the `Error` events seen.
    pub fn error_texts(&self) -> Vec<String> {
        self.events
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Event::Error(err) => Some(err.to_string()),
                _ => None,
            })
            .collect()
    }
}

/// Waits until the recorder saw an event matching `pred` (events, unlike
/// polled status, cannot be missed when a link goes down and up quickly).
pub async fn wait_event(rec: &Recorder, ms: u32, what: &str, pred: impl Fn(&Event) -> bool) {
    wait_until(ms, what, || rec.events.borrow().iter().any(&pred)).await
}
