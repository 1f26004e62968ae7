//! The JavaScript surface of the npm package (wasm-bindgen).
//!
//! It is a thin layer over [`crate::Connection`]: it converts options and
//! values between JS and Rust and keeps JS listeners. No protocol logic
//! lives here.

use crate::connection::{connect, Connection, Options};
use crate::error::Error;
use crate::protocol::machine::{Event, ProtocolError};
use crate::protocol::retry::RetryPolicy;
use crate::protocol::status::Status;
use crate::reactive::ListenerHandle;
use js_sys::{Function, Object, Reflect};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** The five states of Meteor's connection status. */
export type DDPStatusValue = "connected" | "connecting" | "failed" | "waiting" | "offline";

/** Exactly the fields of Meteor's `Meteor.status()`. */
export interface DDPStatus {
  /** True once the server's DDP `connected` message arrived (not merely when the socket opened). */
  connected: boolean;
  status: DDPStatusValue;
  /** Automatic retries since the connection was last up. */
  retryCount: number;
  /** Epoch ms of the next attempt; present only while `waiting`. */
  retryTime?: number;
  /** Why the connection failed; present only while `failed`. */
  reason?: string;
}

/** The retry schedule; defaults are Meteor's. */
export interface DDPRetryOptions {
  minCount?: number;
  minTimeout?: number;
  baseTimeout?: number;
  exponent?: number;
  maxTimeout?: number;
  fuzz?: number;
}

/** Options of `DDP.connect`; times in milliseconds. Unknown keys are an error. */
export interface DDPConnectOptions {
  /** Idle time before a ping (default 17500, 0 disables the heartbeat). */
  heartbeatInterval?: number;
  /** How long a ping may go unanswered (default 15000). */
  heartbeatTimeout?: number;
  /** From opening the socket to `connected` (default 10000, 0: no limit). */
  connectTimeout?: number;
  retry?: DDPRetryOptions;
  /** Give up after this many automatic retries in a row (default: never). */
  maxRetries?: number | null;
  /** DDP versions to offer, preferred first (default ["1", "pre2", "pre1"]). */
  versions?: Array<"1" | "pre2" | "pre1">;
  /** Largest frame accepted, in bytes (default 16 MiB). */
  maxFrameBytes?: number;
  /** Listen to online/offline/visibilitychange/pageshow (default true). */
  watchPage?: boolean;
}

export type DDPDisconnectReason =
  | "client disconnect" | "server disconnect" | "ping timeout" | "transport close" | "transport error";

/** Errors thrown or emitted by this package. */
export interface DDPError extends Error {
  name: "DDPError";
  /** A stable code, e.g. "invalid-url", "invalid-options", "frame-not-json", "server-error". */
  code: string;
}

/** Events of a DDP connection and their listeners' arguments. */
export interface DDPConnectionEvents {
  connect: () => void;
  disconnect: (reason: DDPDisconnectReason) => void;
  error: (error: DDPError) => void;
  reconnect_attempt: (attempt: number) => void;
  reconnectAttempts: (attempt: number) => void;
  reconnect: (attempts: number) => void;
  reconnect_failed: () => void;
  reconnectFailed: () => void;
}

export interface DDPConnection {
  /** Calls `listener` every time `event` happens. */
  on<E extends keyof DDPConnectionEvents>(event: E, listener: DDPConnectionEvents[E]): void;
  /** Calls `listener` the next time `event` happens, once. */
  once<E extends keyof DDPConnectionEvents>(event: E, listener: DDPConnectionEvents[E]): void;
  /** Removes `listener` (or every listener of `event` when omitted). */
  off<E extends keyof DDPConnectionEvents>(event: E, listener?: DDPConnectionEvents[E]): void;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "DDPStatus")]
    pub type JsStatus;
    #[wasm_bindgen(typescript_type = "DDPConnectOptions")]
    pub type JsConnectOptions;
    #[wasm_bindgen(typescript_type = "(status: DDPStatus) => void")]
    pub type JsStatusCallback;
}

/// Entry point of the JavaScript API, as in Meteor: `DDP.connect(url, options)`.
#[wasm_bindgen(js_name = DDP)]
pub struct Ddp {
    _private: (),
}

#[wasm_bindgen(js_class = DDP)]
impl Ddp {
    /// Opens a connection to `url` (Meteor's URL rules) and starts
    /// connecting at once. Throws a `DDPError` with code "invalid-url" or
    /// "invalid-options".
    pub fn connect(url: &str, options: Option<JsConnectOptions>) -> Result<DdpConnection, JsValue> {
        let options = parse_options(options.map(JsValue::from).unwrap_or(JsValue::UNDEFINED))?;
        let conn = connect(url, options).map_err(to_js_error)?;
        Ok(DdpConnection::new(conn))
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsOptions {
    heartbeat_interval: Option<f64>,
    heartbeat_timeout: Option<f64>,
    connect_timeout: Option<f64>,
    retry: Option<JsRetry>,
    max_retries: Option<u32>,
    versions: Option<Vec<String>>,
    max_frame_bytes: Option<usize>,
    watch_page: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsRetry {
    min_count: Option<u32>,
    min_timeout: Option<f64>,
    base_timeout: Option<f64>,
    exponent: Option<f64>,
    max_timeout: Option<f64>,
    fuzz: Option<f64>,
}

fn parse_options(value: JsValue) -> Result<Options, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Options::default());
    }
    // serde-wasm-bindgen reads a struct by looking up the known keys only,
    // so a misspelt option would pass silently: check the keys ourselves.
    reject_unknown_keys(&value, "", &OPTION_KEYS)?;
    if let Ok(retry) = Reflect::get(&value, &"retry".into()) {
        if retry.is_object() {
            reject_unknown_keys(&retry, "retry.", &RETRY_KEYS)?;
        }
    }
    let o: JsOptions = serde_wasm_bindgen::from_value(value)
        .map_err(|e| to_js_error(Error::InvalidOptions(e.to_string())))?;
    let d = Options::default();
    let r = o.retry.unwrap_or_default();
    let dr = RetryPolicy::default();
    Ok(Options {
        heartbeat_interval_ms: o.heartbeat_interval.unwrap_or(d.heartbeat_interval_ms),
        heartbeat_timeout_ms: o.heartbeat_timeout.unwrap_or(d.heartbeat_timeout_ms),
        connect_timeout_ms: o.connect_timeout.unwrap_or(d.connect_timeout_ms),
        retry: RetryPolicy {
            min_count: r.min_count.unwrap_or(dr.min_count),
            min_timeout_ms: r.min_timeout.unwrap_or(dr.min_timeout_ms),
            base_timeout_ms: r.base_timeout.unwrap_or(dr.base_timeout_ms),
            exponent: r.exponent.unwrap_or(dr.exponent),
            max_timeout_ms: r.max_timeout.unwrap_or(dr.max_timeout_ms),
            fuzz: r.fuzz.unwrap_or(dr.fuzz),
        },
        max_retries: o.max_retries,
        versions: o.versions.unwrap_or(d.versions),
        max_frame_bytes: o.max_frame_bytes.unwrap_or(d.max_frame_bytes),
        watch_page: o.watch_page.unwrap_or(d.watch_page),
    })
}

const OPTION_KEYS: [&str; 8] = [
    "heartbeatInterval",
    "heartbeatTimeout",
    "connectTimeout",
    "retry",
    "maxRetries",
    "versions",
    "maxFrameBytes",
    "watchPage",
];
const RETRY_KEYS: [&str; 6] = ["minCount", "minTimeout", "baseTimeout", "exponent", "maxTimeout", "fuzz"];

fn reject_unknown_keys(value: &JsValue, prefix: &str, known: &[&str]) -> Result<(), JsValue> {
    let Some(obj) = value.dyn_ref::<Object>() else {
        return Err(to_js_error(Error::InvalidOptions(format!("{}options must be an object", prefix))));
    };
    for key in Object::keys(obj).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(to_js_error(Error::InvalidOptions(format!(
                "unknown option {prefix}{key:?}; known options: {}",
                known.join(", ")
            ))));
        }
    }
    Ok(())
}

/// A `DDPError`: a JS `Error` with `name` "DDPError" and a `code`.
fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("DDPError");
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

fn to_js_error(e: Error) -> JsValue {
    js_error(e.code(), &e.to_string())
}

fn protocol_error_to_js(e: &ProtocolError) -> JsValue {
    let err = js_error(e.code(), &e.to_string());
    if let ProtocolError::Server { offending_message: Some(m), .. } = e {
        if let Ok(v) = serde_wasm_bindgen::to_value(m) {
            let _ = Reflect::set(&err, &"offendingMessage".into(), &v);
        }
    }
    err
}

/// The status as a plain object with exactly Meteor's fields.
fn status_to_js(s: &Status) -> JsValue {
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&o, &k.into(), &v);
    };
    set("connected", s.connected.into());
    set("status", s.status.as_str().into());
    set("retryCount", s.retry_count.into());
    if let Some(t) = s.retry_time {
        set("retryTime", t.into());
    }
    if let Some(r) = &s.reason {
        set("reason", r.as_str().into());
    }
    o.into()
}

struct JsListener {
    event: String,
    callback: Function,
    once: bool,
}

/// The event names a DDP connection emits, with their aliases.
const EVENT_NAMES: [&str; 8] = [
    "connect",
    "disconnect",
    "error",
    "reconnect_attempt",
    "reconnectAttempts",
    "reconnect",
    "reconnect_failed",
    "reconnectFailed",
];

fn canonical(event: &str) -> &str {
    match event {
        "reconnectAttempts" => "reconnect_attempt",
        "reconnectFailed" => "reconnect_failed",
        other => other,
    }
}

/// Calls a JS listener; an exception in it is reported on the console and
/// never breaks the connection or the other listeners.
fn call_js(f: &Function, args: &[JsValue]) {
    let result = match args {
        [] => f.call0(&JsValue::NULL),
        [a] => f.call1(&JsValue::NULL, a),
        [a, b, ..] => f.call2(&JsValue::NULL, a, b),
    };
    if let Err(e) = result {
        web_sys::console::error_2(&"ddp-live: a listener threw".into(), &e);
    }
}

/// A connection to a DDP server (JavaScript API). Create it with
/// `DDP.connect(url, options)`.
#[wasm_bindgen(js_name = DDPConnection)]
pub struct DdpConnection {
    conn: Connection,
    listeners: Rc<RefCell<Vec<JsListener>>>,
    _event_handle: ListenerHandle,
}

impl DdpConnection {
    fn new(conn: Connection) -> Self {
        let listeners: Rc<RefCell<Vec<JsListener>>> = Rc::new(RefCell::new(Vec::new()));
        let l = listeners.clone();
        let handle = conn.on_event(move |event| {
            let (name, args): (&str, Vec<JsValue>) = match event {
                Event::Connected { .. } => ("connect", vec![]),
                Event::Disconnected { reason } => ("disconnect", vec![reason.as_str().into()]),
                Event::Error(e) => ("error", vec![protocol_error_to_js(e)]),
                Event::ReconnectAttempt { attempt } => ("reconnect_attempt", vec![(*attempt).into()]),
                Event::Reconnected { attempts } => ("reconnect", vec![(*attempts).into()]),
                Event::ReconnectFailed => ("reconnect_failed", vec![]),
                Event::Message(_) => return,
            };
            // Take the matching listeners out first (once-listeners are
            // removed before they run), then call them with no borrow held.
            let callbacks: Vec<Function> = {
                let mut all = l.borrow_mut();
                let cbs = all.iter().filter(|x| x.event == name).map(|x| x.callback.clone()).collect();
                all.retain(|x| !(x.once && x.event == name));
                cbs
            };
            for cb in callbacks {
                call_js(&cb, &args);
            }
        });
        DdpConnection { conn, listeners, _event_handle: handle }
    }

    fn add_listener(&self, event: &str, callback: Function, once: bool) -> Result<(), JsValue> {
        if !EVENT_NAMES.contains(&event) {
            return Err(js_error(
                "unknown-event",
                &format!("unknown event {event:?}; known events: {}", EVENT_NAMES.join(", ")),
            ));
        }
        self.listeners.borrow_mut().push(JsListener { event: canonical(event).to_owned(), callback, once });
        Ok(())
    }
}

#[wasm_bindgen(js_class = DDPConnection)]
impl DdpConnection {
    /// The current status: a plain object with Meteor's fields.
    pub fn status(&self) -> JsStatus {
        status_to_js(&self.conn.status()).unchecked_into()
    }

    /// Calls `callback` at once with the current status, then on every
    /// change, until `stop()` is called on the returned handle.
    #[wasm_bindgen(js_name = onStatusChange)]
    pub fn on_status_change(&self, callback: JsStatusCallback) -> Result<StopHandle, JsValue> {
        let f: Function = JsValue::from(callback)
            .dyn_into()
            .map_err(|_| js_error("invalid-argument", "onStatusChange needs a function"))?;
        call_js(&f, &[status_to_js(&self.conn.status())]);
        let handle = self.conn.on_status_change(move |s| call_js(&f, &[status_to_js(s)]));
        Ok(StopHandle { handle })
    }

    /// Retry now (does nothing while connected; not counted in `retryCount`).
    pub fn reconnect(&self) {
        self.conn.reconnect();
    }

    /// Close the link and stay `offline` until `reconnect()`.
    pub fn disconnect(&self) {
        self.conn.disconnect();
    }

    /// Disconnect for good and release every browser listener.
    pub fn close(&self) {
        self.conn.close();
        self.listeners.borrow_mut().clear();
    }

    /// The session id from the server; `undefined` while not connected.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> Option<String> {
        self.conn.id()
    }

    /// True while the DDP session is up.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.conn.connected()
    }

    /// The WebSocket URL in use.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.conn.url().to_owned()
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, listener: Function) -> Result<(), JsValue> {
        self.add_listener(event, listener, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn once(&self, event: &str, listener: Function) -> Result<(), JsValue> {
        self.add_listener(event, listener, true)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, listener: Option<Function>) {
        let event = canonical(event);
        self.listeners.borrow_mut().retain(|x| {
            x.event != event || listener.as_ref().is_some_and(|f| !Object::is(f, &x.callback))
        });
    }
}

/// Returned by `onStatusChange`: call `stop()` to stop the callbacks.
#[wasm_bindgen]
pub struct StopHandle {
    handle: ListenerHandle,
}

#[wasm_bindgen]
impl StopHandle {
    /// Stops the callbacks; calling it again does nothing.
    pub fn stop(&self) {
        self.handle.stop();
    }
}
