//! The thin browser layer: a WebSocket, page events, the clock and random
//! numbers. It only moves bytes and time; it knows nothing of DDP.
//!
//! Every JS event handler created here is owned by a Rust value and removed
//! when that value is dropped, so nothing leaks per reconnect attempt.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

/// Milliseconds since the Unix epoch: the wall clock, so deadlines stay
/// truthful across throttled timers and sleep.
/// (Natively, for tests of the layers above: the system clock.)
pub fn now() -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Date::now();
    #[cfg(not(target_arch = "wasm32"))]
    return std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: monotonic milliseconds (absent outside browsers).
    #[wasm_bindgen(catch, js_namespace = performance, js_name = now)]
    fn performance_now() -> Result<f64, JsValue>;
}

/// The wall clock, watched by the monotonic one: [`Clock::read`] tells when
/// the wall clock was set back (by NTP, the user, a restored VM), and by how
/// much, so deadlines can move with it. (A forward jump looks like sleep and
/// needs nothing: deadlines simply fall due.)
#[derive(Default)]
pub struct Clock {
    last: std::cell::Cell<Option<(f64, f64)>>,
}

impl Clock {
    /// The wall clock now, and how far it was set back since the last read
    /// (beyond a second of tolerance).
    pub fn read(&self) -> (f64, Option<f64>) {
        let wall = now();
        let Ok(mono) = performance_now() else { return (wall, None) };
        let set_back = self.last.get().and_then(|(last_wall, last_mono)| {
            let expected = last_wall + (mono - last_mono);
            (wall < expected - 1000.0).then_some(expected - wall)
        });
        self.last.set(Some((wall, mono)));
        (wall, set_back)
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(f: &js_sys::Function);
}

/// Runs `f` once, from a microtask: after the code running now returns,
/// before anything else happens.
pub fn later(f: impl FnOnce() + 'static) {
    // A microtask always runs, so the closure is always called (and freed).
    queue_microtask(Closure::once_into_js(f).unchecked_ref());
}

/// The page's `localStorage`, if it has one (not in a worker or an opaque
/// origin, not natively). Every failure reads as "nothing stored".
#[cfg(target_arch = "wasm32")]
fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// `localStorage.getItem(key)`.
pub fn storage_get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return local_storage()?.get_item(key).ok()?;
    #[cfg(not(target_arch = "wasm32"))]
    return {
        let _ = key;
        None
    };
}

/// `localStorage.setItem(key, value)` (a full quota is ignored).
pub fn storage_set(key: &str, value: &str) {
    #[cfg(target_arch = "wasm32")]
    if let Some(s) = local_storage() {
        let _ = s.set_item(key, value);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (key, value);
}

/// `localStorage.removeItem(key)`.
pub fn storage_remove(key: &str) {
    #[cfg(target_arch = "wasm32")]
    if let Some(s) = local_storage() {
        let _ = s.remove_item(key);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = key;
}

/// `Date.parse(text)` (NaN when unreadable, and natively).
pub fn date_parse(text: &str) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Date::parse(text);
    #[cfg(not(target_arch = "wasm32"))]
    return {
        let _ = text;
        f64::NAN
    };
}

/// `new Date(ms).toString()`, as Meteor stores a token's expiry.
pub fn date_string(ms: f64) -> String {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Date::new(&ms.into()).to_string().into();
    #[cfg(not(target_arch = "wasm32"))]
    return ms.to_string();
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = RegExp)]
    type CheckedRegExp;
    #[wasm_bindgen(catch, constructor, js_class = "RegExp")]
    fn new(source: &str, flags: &str) -> Result<CheckedRegExp, JsValue>;
}

/// `new RegExp(source, flags)`; an invalid pattern or flag is an error
/// with the browser's message, never a throw.
pub fn regexp(source: &str, flags: &str) -> Result<js_sys::RegExp, String> {
    CheckedRegExp::new(source, flags).map(JsCast::unchecked_into).map_err(describe)
}

/// A random number in `[0, 1)`.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// What a socket delivers.
pub enum SocketEvent {
    Open,
    Text(String),
    /// A text frame longer than the limit, in UTF-16 code units, left in JS
    /// memory: only its first and last `ENDS` code units were copied.
    TooLarge { len: usize, ends: String },
    Binary(usize),
    Close(u16),
    Error,
}

/// How many UTF-16 code units of each end of an oversized frame are copied
/// (enough to find a `result`'s id).
const ENDS: u32 = 256;

/// A browser WebSocket whose handlers live exactly as long as this value.
pub struct Socket {
    ws: WebSocket,
    _onopen: Closure<dyn FnMut(Event)>,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
    _onclose: Closure<dyn FnMut(CloseEvent)>,
    _onerror: Closure<dyn FnMut(Event)>,
}

impl Socket {
    /// Opens a WebSocket to `url`; `handler` hears everything it does. A
    /// text frame longer than `max_len` UTF-16 code units is never copied
    /// into wasm memory (its UTF-8 form is at least that many bytes): the
    /// handler gets [`SocketEvent::TooLarge`].
    pub fn open(url: &str, max_len: usize, handler: impl Fn(SocketEvent) + 'static) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(describe)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let handler = std::rc::Rc::new(handler);
        let h = handler.clone();
        let onopen = Closure::<dyn FnMut(Event)>::new(move |_: Event| h(SocketEvent::Open));
        let h = handler.clone();
        let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            match data.dyn_ref::<js_sys::JsString>() {
                Some(text) if text.length() as usize > max_len => {
                    let len = text.length();
                    let ends = String::from(text.slice(0, ENDS)) + "\u{2026}" + &String::from(text.slice(len.saturating_sub(ENDS), len));
                    h(SocketEvent::TooLarge { len: len as usize, ends })
                }
                Some(text) => h(SocketEvent::Text(String::from(text))),
                None => {
                    let len = data.dyn_ref::<js_sys::ArrayBuffer>().map_or(0, |b| b.byte_length() as usize);
                    h(SocketEvent::Binary(len))
                }
            }
        });
        let h = handler.clone();
        let onclose = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| h(SocketEvent::Close(e.code())));
        let h = handler;
        let onerror = Closure::<dyn FnMut(Event)>::new(move |_: Event| h(SocketEvent::Error));
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        ws.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        Ok(Socket { ws, _onopen: onopen, _onmessage: onmessage, _onclose: onclose, _onerror: onerror })
    }

    /// Sends a text frame.
    pub fn send(&self, text: &str) -> Result<(), String> {
        self.ws.send_with_str(text).map_err(describe)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        // CONNECTING or OPEN: close it. A close of a socket that is still
        // connecting is allowed (it aborts the handshake).
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code_and_reason(1000, "client disconnect");
        }
    }
}

/// Listeners for the page's `online`, `offline`, `visibilitychange` and
/// `pageshow` events, removed when this value is dropped.
type PageListener = (web_sys::EventTarget, &'static str, Closure<dyn FnMut(Event)>);

pub struct PageWatch {
    listeners: Vec<PageListener>,
}

/// What the page says about the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEvent {
    Online,
    Offline,
    /// Visible again, or restored from the back/forward cache.
    Wake,
}

impl PageWatch {
    /// Starts listening; outside a window (a worker) it listens to nothing.
    pub fn new(handler: impl Fn(PageEvent) + 'static) -> PageWatch {
        let mut listeners = Vec::new();
        let Some(window) = web_sys::window() else {
            return PageWatch { listeners };
        };
        let handler = std::rc::Rc::new(handler);
        let mut add = |target: web_sys::EventTarget, name: &'static str, f: Box<dyn Fn()>| {
            let closure = Closure::<dyn FnMut(Event)>::new(move |_: Event| f());
            if target.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref()).is_ok() {
                listeners.push((target, name, closure));
            }
        };
        let h = handler.clone();
        add(window.clone().into(), "online", Box::new(move || h(PageEvent::Online)));
        let h = handler.clone();
        add(window.clone().into(), "offline", Box::new(move || h(PageEvent::Offline)));
        let h = handler.clone();
        add(window.clone().into(), "pageshow", Box::new(move || h(PageEvent::Wake)));
        if let Some(document) = window.document() {
            let h = handler;
            let d = document.clone();
            add(
                document.into(),
                "visibilitychange",
                Box::new(move || {
                    if d.visibility_state() == web_sys::VisibilityState::Visible {
                        h(PageEvent::Wake)
                    }
                }),
            );
        }
        PageWatch { listeners }
    }

    /// How many listeners are registered (for leak tests).
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    /// True when none is registered.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }
}

impl Drop for PageWatch {
    fn drop(&mut self) {
        for (target, name, closure) in self.listeners.drain(..) {
            let _ = target.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        }
    }
}

/// A readable text for a JS exception.
pub fn describe(e: JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| String::from("a JavaScript exception"))
}
