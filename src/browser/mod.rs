//! The thin browser layer: a WebSocket, page events, the clock and random
//! numbers. It only moves bytes and time; it knows nothing of DDP.
//!
//! Every JS event handler created here is owned by a Rust value and removed
//! when that value is dropped, so nothing leaks per reconnect attempt.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, WebSocket};

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

/// `performance.now()`, NaN where there is none.
pub fn monotonic() -> f64 {
    performance_now().unwrap_or(f64::NAN)
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

pub use crate::host::{PageEvent, SocketEvent};

#[cfg(all(target_arch = "wasm32", feature = "persist"))]
pub(crate) mod idb;
#[cfg(all(target_arch = "wasm32", feature = "tabs"))]
pub(crate) mod tabs;

/// How many UTF-16 code units of each end of an oversized frame are copied
/// (enough to find a `result`'s id).
const ENDS: u32 = 256;

/// An intake buffer larger than this is released after its frame (a rare
/// large frame does not pin its size for the socket's life).
const KEEP_BYTES: usize = 1 << 20;

// The socket's handlers in one small JS function: a text frame is encoded by
// the browser's TextEncoder straight into a buffer in wasm memory that is
// reused from frame to frame, and Rust is entered once per event (no
// per-frame allocation or string object crossing the boundary). `handle`
// is called as handle(kind, a, b, wall, mono): 0 open; 1 text of `a` bytes;
// 2 too large (`a` bytes of its ends, `b` its length); 3 binary of `a`
// bytes; 4 close with code `a`; 5 error; 6 grow the buffer to `b` bytes
// keeping its first `a`, returning where it now is. For 1 and 2 it returns 1
// when it released the buffer. `wall` and `mono` are Date.now() and
// performance.now() when the event came (see host::Clock::at).
#[wasm_bindgen(inline_js = r#"
const utf8 = new TextEncoder();
export function attach(ws, memory, maxLen, ends, handle) {
  let ptr = 0, cap = 0;
  // ASCII (nearly every DDP frame) by a loop, which beats encodeInto on
  // short strings; from the first other character on, encodeInto.
  const copy = (text) => {
    const n = text.length;
    if (cap < n) (ptr = handle(6, 0, n, 0, 0)), (cap = n);
    const mem = new Uint8Array(memory.buffer, ptr, cap);
    let at = 0;
    for (; at < n; at++) {
      const c = text.charCodeAt(at);
      if (c > 127) break;
      mem[at] = c;
    }
    if (at === n) return n;
    let rest = text.slice(at);
    for (;;) {
      const need = at + rest.length * 3;
      if (cap < need) (ptr = handle(6, at, need, 0, 0)), (cap = need);
      const r = utf8.encodeInto(rest, new Uint8Array(memory.buffer, ptr + at, cap - at));
      at += r.written;
      if (r.read === rest.length) return at;
      rest = rest.slice(r.read);
    }
  };
  // An event, with the clocks read when it came.
  const event = (kind, a, b) => handle(kind, a, b, Date.now(), performance.now());
  ws.binaryType = "arraybuffer";
  ws.onopen = () => event(0, 0, 0);
  ws.onmessage = (e) => {
    const d = e.data;
    if (typeof d !== "string") return void event(3, d.byteLength >>> 0, 0);
    const n = d.length;
    const len = n > maxLen ? copy(d.slice(0, ends) + "\u2026" + d.slice(n - ends)) : copy(d);
    const released = event(n > maxLen ? 2 : 1, len, n);
    if (released) cap = 0;
  };
  ws.onclose = (e) => event(4, e.code, 0);
  ws.onerror = () => event(5, 0, 0);
}
export function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  // CONNECTING or OPEN: close it (closing a socket still connecting aborts
  // the handshake).
  if (ws.readyState <= 1) try { ws.close(1000, "client disconnect"); } catch (_) {}
}
"#)]
extern "C" {
    fn attach(ws: &WebSocket, memory: &JsValue, max_len: f64, ends: u32, handle: &Closure<dyn FnMut(u32, u32, u32, f64, f64) -> u32>);
    fn detach(ws: &WebSocket);
}

/// A browser WebSocket whose handlers live exactly as long as this value.
pub struct Socket {
    ws: WebSocket,
    _handle: Closure<dyn FnMut(u32, u32, u32, f64, f64) -> u32>,
}

impl Socket {
    /// Opens a WebSocket to `url`; `handler` hears everything it does. A
    /// text frame longer than `max_len` UTF-16 code units is never copied
    /// into wasm memory (its UTF-8 form is at least that many bytes): the
    /// handler gets [`SocketEvent::TooLarge`]. The handler also gets the
    /// wall and monotonic clocks read when the event came.
    pub fn open(url: &str, max_len: usize, handler: impl Fn(SocketEvent<'_>, (f64, f64)) + 'static) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(describe)?;
        // The intake buffer: JS writes each text frame into its first bytes.
        let mut buf: Vec<u8> = Vec::new();
        let handle =
            Closure::<dyn FnMut(u32, u32, u32, f64, f64) -> u32>::new(move |kind: u32, a: u32, b: u32, wall: f64, mono: f64| -> u32 {
                match kind {
                    0 => handler(SocketEvent::Open, (wall, mono)),
                    1 | 2 => {
                        let bytes = buf.get(..a as usize).unwrap_or_default();
                        // SAFETY: `from_utf8_unchecked` needs `bytes` to be UTF-8 for
                        // as long as `frame` lives. Two things make that so.
                        //
                        // 1. They are UTF-8 when the call comes: they are what the
                        //    snippet above wrote for this frame, ASCII by its loop, then
                        //    `TextEncoder.encodeInto`, which writes well-formed UTF-8 only
                        //    (lone surrogates become U+FFFD; a character that does not
                        //    fit is not written). The same trust wasm-bindgen places in
                        //    TextEncoder for every string it passes in (its `String`
                        //    from JS is unchecked too).
                        //
                        // 2. Nothing frees or rewrites them while `frame` lives, even
                        //    though `handler` can drop the `Closure` that owns `buf`
                        //    (it can close the connection, which drops this `Socket`).
                        //    Dropping a `Closure` only releases Rust's reference to the
                        //    JS function (`_wbg_cb_unref`): wasm-bindgen's glue counts
                        //    the call under way as a reference too (`makeMutClosure`
                        //    raises the count before calling into wasm and lowers it in
                        //    a `finally`), so the closure's captures, `buf` among them,
                        //    are freed only after this call has returned. While it runs,
                        //    the glue also holds the closure's pointer at 0, so a nested
                        //    call into `handle` (the growth request, kind 6, is the only
                        //    other writer of `buf`) throws ("closure invoked recursively
                        //    or after being dropped") instead of reaching `buf`; and JS
                        //    writes a frame's bytes only before the call that announces
                        //    it (in `onmessage`), never during one. (Checked against
                        //    wasm-bindgen 0.2.130: `ScopedClosure`'s `Drop`, and
                        //    cli-support's `makeMutClosure`, as in our built glue.)
                        #[allow(unsafe_code)]
                        let frame = unsafe { std::str::from_utf8_unchecked(bytes) };
                        if kind == 1 {
                            handler(SocketEvent::Text(frame), (wall, mono));
                        } else {
                            handler(SocketEvent::TooLarge { len: b as usize, ends: frame }, (wall, mono));
                        }
                        if buf.len() > KEEP_BYTES {
                            buf = Vec::new();
                            return 1;
                        }
                    }
                    3 => handler(SocketEvent::Binary(a as usize), (wall, mono)),
                    4 => handler(SocketEvent::Close(a as u16), (wall, mono)),
                    5 => handler(SocketEvent::Error, (wall, mono)),
                    _ => {
                        // Grow to `b` bytes, keeping the first `a` (resize keeps
                        // the contents; the rest is written over by JS).
                        buf.truncate(a as usize);
                        buf.resize(b as usize, 0);
                        return buf.as_ptr() as u32;
                    }
                }
                0
            });
        attach(&ws, &wasm_bindgen::memory(), max_len as f64, ENDS, &handle);
        Ok(Socket { ws, _handle: handle })
    }

    /// Sends a text frame.
    pub fn send(&self, text: &str) -> Result<(), String> {
        self.ws.send_with_str(text).map_err(describe)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        detach(&self.ws);
    }
}

/// Listeners for the page's `online`, `offline`, `visibilitychange` and
/// `pageshow` events, removed when this value is dropped.
type PageListener = (web_sys::EventTarget, &'static str, Closure<dyn FnMut(Event)>);

pub struct PageWatch {
    listeners: Vec<PageListener>,
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
