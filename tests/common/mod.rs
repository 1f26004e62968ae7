//! Helpers shared by the browser tests (each test file is its own crate
//! and uses some of them).
#![allow(dead_code)]

use ddp_live::{Connection, Event, Options, RetryPolicy, Status};
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

/// Polls `probe` every 10 ms until it gives a value, or fails after `ms`
/// with "timed out after {ms} ms waiting for {what()}".
pub async fn poll<T>(ms: u32, what: impl Fn() -> String, mut probe: impl FnMut() -> Option<T>) -> T {
    let mut waited = 0;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(waited < ms, "timed out after {ms} ms waiting for {}", what());
        TimeoutFuture::new(10).await;
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

/// A fresh element in the page to mount into.
pub fn container() -> web_sys::HtmlElement {
    let doc = web_sys::window().expect("a window").document().expect("a document");
    let div: web_sys::HtmlElement = doc.create_element("div").expect("a div").dyn_into().expect("an HtmlElement");
    doc.body().expect("a body").append_child(&div).expect("appended");
    div
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

pub async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Waits until the recorder saw an event matching `pred` (events, unlike
/// polled status, cannot be missed when a link goes down and up quickly).
pub async fn wait_event(rec: &Recorder, ms: u32, what: &str, pred: impl Fn(&Event) -> bool) {
    wait_until(ms, what, || rec.events.borrow().iter().any(&pred)).await
}
