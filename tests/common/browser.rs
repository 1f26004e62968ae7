//! The browser's side of the test helpers (see `native.rs` for the same
//! names natively): `fetch` for the control endpoint, gloo timers, the
//! page's `Math.random`.

use gloo_timers::future::TimeoutFuture;
use std::future::Future;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// host:port of the test server, baked in at compile time.
pub fn server() -> &'static str {
    option_env!("DDP_TEST_SERVER").unwrap_or("127.0.0.1:3310")
}

/// A random number in `0..n`.
pub fn random_below(n: u64) -> u64 {
    (js_sys::Math::random() * n as f64) as u64
}

/// Calls the server's control endpoint and returns its JSON answer.
pub async fn control(scenario: &str, action: &str) -> serde_json::Value {
    let window = web_sys::window().expect("a window");
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let url = format!("http://{}/control/{scenario}/{action}", server());
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await.expect("control request").dyn_into().expect("a Response");
    assert!(resp.ok(), "control {action} answered {}", resp.status());
    let text = JsFuture::from(resp.text().expect("text")).await.expect("body");
    serde_json::from_str(&text.as_string().unwrap_or_default()).expect("JSON")
}

pub async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Runs `fut` on the page's event loop.
pub fn spawn_local(fut: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(fut);
}

/// A fresh element in the page to mount into.
pub fn container() -> web_sys::HtmlElement {
    let doc = web_sys::window().expect("a window").document().expect("a document");
    let div: web_sys::HtmlElement = doc.create_element("div").expect("a div").dyn_into().expect("an HtmlElement");
    doc.body().expect("a body").append_child(&div).expect("appended");
    div
}
