//! Helpers shared by the browser tests.
#![allow(dead_code)]

use ddp_live::{Event, Options, RetryPolicy, Status};
use gloo_timers::future::TimeoutFuture;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// host:port of the test server, baked in at compile time.
pub const SERVER: &str = match option_env!("DDP_TEST_SERVER") {
    Some(s) => s,
    None => "127.0.0.1:3310",
};

pub fn scenario(name: &str) -> String {
    // Unique per run too, so a rerun against a long-lived server starts clean.
    format!("{name}-{}", (js_sys::Math::random() * 1e9) as u64)
}

pub fn ws_url(scenario: &str) -> String {
    format!("ws://{SERVER}/t/{scenario}/websocket")
}

/// Calls the server's control endpoint and returns its JSON answer.
pub async fn control(scenario: &str, action: &str) -> serde_json::Value {
    let window = web_sys::window().expect("a window");
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let url = format!("http://{SERVER}/control/{scenario}/{action}");
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await.expect("control request").dyn_into().expect("a Response");
    assert!(resp.ok(), "control {action} answered {}", resp.status());
    let text = JsFuture::from(resp.text().expect("text")).await.expect("body");
    serde_json::from_str(&text.as_string().unwrap_or_default()).expect("JSON")
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

/// Waits until `pred` holds for the status, or fails after `ms`.
pub async fn wait_status(conn: &ddp_live::Connection, ms: u32, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
    let mut waited = 0;
    loop {
        let s = conn.status();
        if pred(&s) {
            return s;
        }
        assert!(waited < ms, "timed out after {ms} ms waiting for {what}; status is {s:?}");
        TimeoutFuture::new(10).await;
        waited += 10;
    }
}

pub async fn wait_connected(conn: &ddp_live::Connection) -> Status {
    wait_status(conn, 10_000, "connected", |s| s.connected).await
}

/// Records every event and status change of a connection.
#[derive(Default)]
pub struct Recorder {
    pub events: RefCell<Vec<Event>>,
    pub statuses: RefCell<Vec<Status>>,
}

pub fn record(conn: &ddp_live::Connection) -> Rc<Recorder> {
    let r = Rc::new(Recorder::default());
    let r1 = r.clone();
    conn.on_event(move |e| r1.events.borrow_mut().push(e.clone())).forget();
    let r2 = r.clone();
    conn.on_status_change(move |s| r2.statuses.borrow_mut().push(s.clone())).forget();
    r
}

pub async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Waits until the recorder saw an event matching `pred` (events, unlike
/// polled status, cannot be missed when a link goes down and up quickly).
pub async fn wait_event(rec: &Recorder, ms: u32, what: &str, pred: impl Fn(&Event) -> bool) {
    let mut waited = 0;
    while !rec.events.borrow().iter().any(&pred) {
        assert!(waited < ms, "timed out after {ms} ms waiting for {what}");
        TimeoutFuture::new(10).await;
        waited += 10;
    }
}
