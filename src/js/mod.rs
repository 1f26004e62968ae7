//! The JavaScript surface of the npm package (wasm-bindgen).
//!
//! It is a thin layer over [`crate::Connection`]: it converts options and
//! values between JS and Rust and keeps JS listeners. No protocol logic
//! lives here.

mod accounts;
mod data;
mod ejson;
mod emitter;
mod query;
mod rooms;
mod tojs;
use emitter::Emitter;

use crate::connection::{Connection, Options};
use crate::error::Error;
use crate::protocol::ejson::Ejson;
use crate::protocol::retry::RetryPolicy;
use crate::protocol::status::Status;
use crate::reactive::ListenerHandle;
use crate::stubs::{StubContext, StubError};
use crate::{CallOptions, Event, MethodError, Outbox, ProtocolError};
use js_sys::{Array, Function, Object, Promise, Reflect};
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
  /** Most method calls outstanding at once (default 10000); beyond it calls fail with "queue-full". */
  maxPendingCalls?: number;
  /** Most bytes of method arguments outstanding at once (default 16 MiB). */
  maxPendingBytes?: number;
  /** Ask the server to resume the session after a drop (default true). */
  resumeSessions?: boolean;
}

/** Options of `conn.apply`. */
export interface DDPApplyOptions {
  /** Run alone: nothing after it is sent until it completes. */
  wait?: boolean;
  /** Never re-send after a drop: fail with "invocation-failed" instead (unless the session is resumed). */
  noRetry?: boolean;
  /** Called as soon as the server's `result` arrives (before its writes are visible). */
  onResultReceived?: (error: DDPMethodError | undefined, result: unknown) => void;
  /** Fail with "timeout" if not completed in this many ms. */
  timeoutMs?: number;
  /** Cancels the call if it has not been sent yet (it fails with "cancelled"). */
  signal?: AbortSignal;
  /** Resolve with the client stub's return value instead of the server's. */
  returnStubValue?: boolean;
  /** If the stub throws, reject and do not call the server (default: log and call the server). */
  throwStubExceptions?: boolean;
}

/** A failed method call, shaped like Meteor.Error. */
export interface DDPMethodError extends Error {
  errorType: "Meteor.Error";
  /** The server's error code, or one of this client's: "invocation-failed", "timeout", "queue-full", "cancelled", "closed", "bad-arguments", "stub-failed", "message-too-big", or a "frame-*" code (see the README's Errors). */
  error: string | number;
  reason?: string;
  details?: unknown;
}

/** `this` inside a client stub. */
export interface DDPMethodInvocation {
  isSimulation: true;
  name: string;
  /** The call's randomSeed (asking for it makes the call send it). */
  randomSeed(): string;
  /** The next id of the stream `scope` of this call's seed; the test server generates the same. */
  randomId(scope?: string): string;
  /** Inserts a document locally (id: its `_id`, else the next id of stream `collection`); returns the id. */
  insert(collection: string, doc: Record<string, unknown>): string;
  /** Sets fields locally (`null` clears one); false if there is no such document. */
  update(collection: string, id: string, fields: Record<string, unknown>): boolean;
  /** Removes a document locally. */
  remove(collection: string, id: string): void;
  /** The document as the app sees it now. */
  findOne(collection: string, id: string): DDPDocument | undefined;
}

/** Queued (not yet sent) and in-flight method calls. */
export interface DDPOutbox { queued: number; inFlight: number; }

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

/** `on` / `once` / `off` over an event map. */
export interface DDPEmitter<Events> {
  /** Calls `listener` every time `event` happens. */
  on<E extends keyof Events>(event: E, listener: Events[E]): void;
  /** Calls `listener` the next time `event` happens, once. */
  once<E extends keyof Events>(event: E, listener: Events[E]): void;
  /** Removes `listener` (or every listener of `event` when omitted). */
  off<E extends keyof Events>(event: E, listener?: Events[E]): void;
}

export interface DDPConnection extends DDPEmitter<DDPConnectionEvents> {
  /**
   * Subscribes to publication `name` with `params`; a last argument that is
   * a function is `onReady`, an object of callbacks gives `onReady` and
   * `onStop(error?)`. Re-sent after reconnects until `stop()`.
   */
  subscribe(name: string, ...args: [...params: unknown[], callbacks: DDPSubscribeCallbacks | (() => void)]): DDPSubscription;
  subscribe(name: string, ...params: unknown[]): DDPSubscription;
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
    #[wasm_bindgen(typescript_type = "DDPApplyOptions")]
    pub type JsApplyOptions;
    #[wasm_bindgen(typescript_type = "Promise<unknown>")]
    pub type JsCallPromise;
    #[wasm_bindgen(typescript_type = "DDPOutbox")]
    pub type JsOutbox;
    #[wasm_bindgen(typescript_type = "(outbox: DDPOutbox) => void")]
    pub type JsOutboxCallback;
    #[wasm_bindgen(typescript_type = "Record<string, (this: DDPMethodInvocation, ...args: unknown[]) => unknown>")]
    pub type JsStubs;
    #[wasm_bindgen(typescript_type = "() => void")]
    pub type JsHook;
    #[wasm_bindgen(typescript_type = "(jsonValue: unknown) => unknown")]
    pub type JsTypeFactory;
    #[wasm_bindgen(typescript_type = "unknown[]")]
    pub type JsArgs;
}

thread_local! {
    static GLOBAL_JS_HOOKS: RefCell<Vec<Function>> = const { RefCell::new(Vec::new()) };
}

/// Entry point of the JavaScript API, as in Meteor: `DDP.connect(url, options)`.
#[wasm_bindgen(js_name = DDP)]
pub struct Ddp {
    _private: (),
}

/// A connection for the JavaScript API: without the durable outbox, which
/// it does not offer yet (so the package carries none of it).
pub(crate) fn open(url: &str, options: &Options) -> Result<Connection, Error> {
    crate::connection::open(crate::host::default_host(options), url, options)
}

#[wasm_bindgen(js_class = DDP)]
impl Ddp {
    /// Opens a connection to `url` (Meteor's URL rules) and starts
    /// connecting at once. Throws a `DDPError` with code "invalid-url" or
    /// "invalid-options".
    pub fn connect(url: &str, options: Option<JsConnectOptions>) -> Result<DdpConnection, JsValue> {
        let options = parse_options(options.map(JsValue::from).unwrap_or(JsValue::UNDEFINED))?;
        Ok(DdpConnection::new(open(url, &options).map_err(to_js_error)?))
    }

    /// Runs `callback` on every reconnect (new session) of every connection,
    /// after the connection's own hooks. Calls made inside go ahead of
    /// everything queued.
    #[wasm_bindgen(js_name = onReconnect)]
    pub fn on_reconnect(callback: JsHook) -> Result<StopHandle, JsValue> {
        let f = as_function(callback.into(), "DDP.onReconnect")?;
        let handle = crate::connection::on_reconnect(move |_| call_js(&f, &[]));
        Ok(StopHandle::new(handle))
    }
}

/// Meteor's `EJSON`, for custom types.
#[wasm_bindgen(js_name = EJSON)]
pub struct JsEjson {
    _private: (),
}

#[wasm_bindgen(js_class = EJSON)]
impl JsEjson {
    /// Registers a custom type: instances need `typeName()` and
    /// `toJSONValue()`; `factory(jsonValue)` rebuilds them from the server.
    #[wasm_bindgen(js_name = addType)]
    pub fn add_type(name: String, factory: JsTypeFactory) -> Result<(), JsValue> {
        ejson::add_type(name, as_function(factory.into(), "EJSON.addType")?);
        Ok(())
    }
}

pub(crate) fn as_function(v: JsValue, what: &str) -> Result<Function, JsValue> {
    v.dyn_into().map_err(|_| js_error("invalid-argument", &format!("{what} needs a function")))
}

/// Reads the options object by hand: every key is checked (a misspelt
/// option is an error, not silently ignored) and every value's type too.
pub(crate) fn parse_options(value: JsValue) -> Result<Options, JsValue> {
    let d = Options::default();
    if value.is_undefined() || value.is_null() {
        return Ok(d);
    }
    reject_unknown_keys(&value, "", &OPTION_KEYS)?;
    let retry = get(&value, "retry");
    let dr = RetryPolicy::default();
    let retry = if retry.is_undefined() || retry.is_null() {
        dr
    } else {
        reject_unknown_keys(&retry, "retry.", &RETRY_KEYS)?;
        RetryPolicy {
            min_count: opt_count(&retry, "retry.minCount")?.map_or(dr.min_count, |n| n.min(u32::MAX as usize) as u32),
            min_timeout_ms: opt_number(&retry, "retry.minTimeout")?.unwrap_or(dr.min_timeout_ms),
            base_timeout_ms: opt_number(&retry, "retry.baseTimeout")?.unwrap_or(dr.base_timeout_ms),
            exponent: opt_number(&retry, "retry.exponent")?.unwrap_or(dr.exponent),
            max_timeout_ms: opt_number(&retry, "retry.maxTimeout")?.unwrap_or(dr.max_timeout_ms),
            fuzz: opt_number(&retry, "retry.fuzz")?.unwrap_or(dr.fuzz),
        }
    };
    let versions = match get(&value, "versions") {
        v if v.is_undefined() || v.is_null() => d.versions,
        v => {
            let list: Array = v.dyn_into().map_err(|_| invalid_option("versions must be an array of strings"))?;
            list.iter()
                .map(|x| x.as_string().ok_or_else(|| invalid_option("versions must be an array of strings")))
                .collect::<Result<_, _>>()?
        }
    };
    Ok(Options {
        heartbeat_interval_ms: opt_number(&value, "heartbeatInterval")?.unwrap_or(d.heartbeat_interval_ms),
        heartbeat_timeout_ms: opt_number(&value, "heartbeatTimeout")?.unwrap_or(d.heartbeat_timeout_ms),
        connect_timeout_ms: opt_number(&value, "connectTimeout")?.unwrap_or(d.connect_timeout_ms),
        retry,
        max_retries: opt_count(&value, "maxRetries")?.map(|n| n.min(u32::MAX as usize) as u32),
        versions,
        max_frame_bytes: opt_count(&value, "maxFrameBytes")?.unwrap_or(d.max_frame_bytes),
        watch_page: opt_bool(&value, "watchPage")?.unwrap_or(d.watch_page),
        max_pending_calls: opt_count(&value, "maxPendingCalls")?.unwrap_or(d.max_pending_calls),
        max_pending_bytes: opt_count(&value, "maxPendingBytes")?.unwrap_or(d.max_pending_bytes),
        resume_sessions: opt_bool(&value, "resumeSessions")?.unwrap_or(d.resume_sessions),
        headers: Vec::new(),
        persist: None,
        share_across_tabs: false,
    })
}

fn invalid_option(message: &str) -> JsValue {
    to_js_error(Error::InvalidOptions(message.to_owned()))
}

/// The key's last path segment is what the object holds.
fn field(obj: &JsValue, path: &str) -> JsValue {
    get(obj, path.rsplit('.').next().unwrap_or(path))
}

fn opt_number(obj: &JsValue, path: &str) -> Result<Option<f64>, JsValue> {
    match field(obj, path) {
        v if v.is_undefined() || v.is_null() => Ok(None),
        v => v.as_f64().map(Some).ok_or_else(|| invalid_option(&format!("{path} must be a number"))),
    }
}

fn opt_count(obj: &JsValue, path: &str) -> Result<Option<usize>, JsValue> {
    match opt_number(obj, path)? {
        None => Ok(None),
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => Ok(Some(n as usize)),
        Some(_) => Err(invalid_option(&format!("{path} must be a whole number ≥ 0"))),
    }
}

fn opt_bool(obj: &JsValue, path: &str) -> Result<Option<bool>, JsValue> {
    match field(obj, path) {
        v if v.is_undefined() || v.is_null() => Ok(None),
        v => v.as_bool().map(Some).ok_or_else(|| invalid_option(&format!("{path} must be true or false"))),
    }
}

const OPTION_KEYS: [&str; 11] = [
    "heartbeatInterval",
    "heartbeatTimeout",
    "connectTimeout",
    "retry",
    "maxRetries",
    "versions",
    "maxFrameBytes",
    "watchPage",
    "maxPendingCalls",
    "maxPendingBytes",
    "resumeSessions",
];
const APPLY_KEYS: [&str; 7] = ["wait", "noRetry", "onResultReceived", "timeoutMs", "signal", "returnStubValue", "throwStubExceptions"];
const RETRY_KEYS: [&str; 6] = ["minCount", "minTimeout", "baseTimeout", "exponent", "maxTimeout", "fuzz"];

fn reject_unknown_keys(value: &JsValue, prefix: &str, known: &[&str]) -> Result<(), JsValue> {
    let Some(obj) = value.dyn_ref::<Object>() else {
        return Err(to_js_error(Error::InvalidOptions(format!("{}options must be an object", prefix))));
    };
    for key in Object::keys(obj).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(to_js_error(Error::InvalidOptions(format!(
                "unknown option \"{prefix}{key}\"; known options: {}",
                crate::protocol::join(known, ", ")
            ))));
        }
    }
    Ok(())
}

/// A `DDPError`: a JS `Error` with `name` "DDPError" and a `code`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("DDPError");
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

pub(crate) fn to_js_error(e: Error) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// A failed call as a JS `Error` shaped like `Meteor.Error`.
pub(crate) fn method_error_to_js(e: &MethodError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name("DDPMethodError");
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&err, &k.into(), &v);
    };
    set("errorType", "Meteor.Error".into());
    set("error", ejson::to_js(&Ejson::from_json(e.error())));
    set("reason", e.reason().into());
    if let Some(d) = e.details() {
        set("details", ejson::to_js(&Ejson::from_json(d.clone())));
    }
    err.into()
}

fn outbox_to_js(o: &Outbox) -> JsValue {
    let obj = Object::new();
    let _ = Reflect::set(&obj, &"queued".into(), &(o.queued as f64).into());
    let _ = Reflect::set(&obj, &"inFlight".into(), &(o.in_flight as f64).into());
    obj.into()
}

pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    // Reflect.get throws on a primitive (undefined options, say), and a
    // thrown and caught TypeError costs ~80 µs: never let it happen.
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn protocol_error_to_js(e: &ProtocolError) -> JsValue {
    let err = js_error(e.code(), &e.to_string());
    if let ProtocolError::Server { offending_message: Some(m), .. } = e {
        let _ = Reflect::set(&err, &"offendingMessage".into(), &ejson::to_js(&Ejson::from_json(m.clone())));
    }
    err
}

/// Calls `callback` at once with `source`'s value, then on every change,
/// until `stop()` is called on the returned handle.
pub(crate) fn watch<T: Clone + PartialEq + 'static>(
    callback: JsValue,
    what: &str,
    source: &crate::reactive::Observable<T>,
    to_js: fn(&T) -> JsValue,
) -> Result<StopHandle, JsValue> {
    let f = as_function(callback, what)?;
    // A copy, not a borrow: the callback may change the value itself.
    call_js(&f, &[to_js(&source.get())]);
    let handle = source.subscribe(move |v| call_js(&f, &[to_js(v)]));
    Ok(StopHandle::new(handle))
}

/// A Promise and the hook that settles it with a call's outcome: straight
/// from the connection's pump, with no executor, channel or extra microtask
/// per call. `ok` makes the resolved value; `finally` runs first either way.
pub(crate) fn call_promise(
    ok: impl FnOnce(Option<serde_json::Value>) -> JsValue + 'static,
    finally: impl FnOnce() + 'static,
) -> (Promise, crate::connection::DoneHook) {
    let mut functions: Option<(Function, Function)> = None;
    let promise = Promise::new(&mut |resolve, reject| functions = Some((resolve, reject)));
    let settle = Box::new(move |outcome: Result<Option<serde_json::Value>, MethodError>| {
        finally();
        // The executor always runs synchronously, so the functions are there.
        if let Some((resolve, reject)) = functions {
            let _ = match outcome {
                Ok(v) => resolve.call1(&JsValue::UNDEFINED, &ok(v)),
                Err(e) => reject.call1(&JsValue::UNDEFINED, &method_error_to_js(&e)),
            };
        }
    });
    (promise, settle)
}

fn result_to_js(v: Option<serde_json::Value>) -> JsValue {
    v.as_ref().map_or(JsValue::UNDEFINED, tojs::value)
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

/// Calls a JS listener; an exception in it is reported on the console and
/// never breaks the connection or the other listeners.
pub(crate) fn call_js(f: &Function, args: &[JsValue]) {
    let result = match args {
        [] => f.call0(&JsValue::NULL),
        [a] => f.call1(&JsValue::NULL, a),
        [a, b] => f.call2(&JsValue::NULL, a, b),
        [a, b, c] => f.call3(&JsValue::NULL, a, b, c),
        more => f.apply(&JsValue::NULL, &more.iter().collect::<Array>()),
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
    listeners: Emitter,
    _event_handle: ListenerHandle,
    _accounts_handle: ListenerHandle,
}

impl DdpConnection {
    pub(crate) fn new(conn: Connection) -> Self {
        let listeners = Emitter::new(accounts::EVENTS);
        let accounts_handle = accounts::forward_events(&conn, &listeners);
        let l = listeners.clone();
        let handle = conn.on_event(move |event| {
            let (name, args): (&str, Vec<JsValue>) = match event {
                Event::Connected { .. } => ("connect", vec![]),
                Event::Disconnected { reason } => ("disconnect", vec![reason.as_str().into()]),
                Event::Error(e) => ("error", vec![protocol_error_to_js(e)]),
                Event::ReconnectAttempt { attempt } => ("reconnect_attempt", vec![(*attempt).into()]),
                Event::Reconnected { attempts } => ("reconnect", vec![(*attempts).into()]),
                Event::ReconnectFailed => ("reconnect_failed", vec![]),
                // The rooms' messages, for `rooms::Client`.
                Event::Stream { .. } => return,
            };
            l.emit(name, &args);
        });
        DdpConnection { conn, listeners, _event_handle: handle, _accounts_handle: accounts_handle }
    }

    fn apply_impl(&self, name: &str, args: Array, options: JsValue) -> Result<Promise, JsValue> {
        if !options.is_undefined() && !options.is_null() {
            reject_unknown_keys(&options, "apply options: ", &APPLY_KEYS)?;
        }
        let flag = |k: &str| get(&options, k).is_truthy();
        let timeout_ms = get(&options, "timeoutMs").as_f64();
        let on_result = get(&options, "onResultReceived").dyn_into::<Function>().ok();
        let signal = get(&options, "signal");
        if !signal.is_undefined() && get(&signal, "aborted").is_truthy() {
            return Ok(Promise::reject(&method_error_to_js(&MethodError::Cancelled)));
        }
        let params = match self.call_params(&args) {
            Ok(p) => p,
            Err(e) => return Ok(Promise::reject(&method_error_to_js(&e))),
        };
        let simulation = match crate::stubs::simulate(&self.conn, name, &params, flag("throwStubExceptions")) {
            Ok(s) => s,
            Err(StubError { message, foreign }) => {
                let thrown = foreign.and_then(|f| f.downcast::<JsValue>().ok()).map_or_else(|| js_error("stub-failed", &message), |b| *b);
                return Ok(Promise::reject(&thrown));
            }
        };
        let call_options = CallOptions {
            wait: flag("wait"),
            no_retry: flag("noRetry"),
            timeout_ms,
            random_seed: simulation.seed,
            return_stub_value: false,
            throw_stub_exceptions: false,
            transient: false,
        };
        let hook = on_result.map(result_hook);
        let return_stub = flag("returnStubValue") && simulation.value.is_some();
        // The stub's value as it returned it (a JavaScript stub's own value).
        let stub_value = simulation
            .foreign
            .and_then(|f| f.downcast::<JsValue>().ok())
            .map(|b| *b)
            .or_else(|| simulation.value.as_ref().map(tojs::value));
        // An AbortSignal cancels the call while it is unsent; its listener
        // goes when the call ends.
        let abort: Rc<RefCell<Option<Closure<dyn Fn()>>>> = Rc::default();
        let (promise, settle) = settlement(return_stub, abort_cleanup(abort.clone(), signal.clone()));
        let id = match self.conn.place_call(name, params, call_options, hook, simulation.writes, crate::connection::Done::Hook(settle)) {
            Ok(id) => id,
            Err(e) => return Ok(Promise::reject(&method_error_to_js(&e))),
        };
        if !signal.is_undefined() {
            *abort.borrow_mut() = Some(self.cancel_on_abort(&signal, id));
        }
        Ok(promise.unwrap_or_else(|| Promise::resolve(&stub_value.unwrap_or(JsValue::UNDEFINED))))
    }

    /// A call's parameters, encoded before anything runs: a full outbox
    /// refuses the call before its arguments are read; a value that cannot
    /// be sent (or whose reading throws) fails the call, and one larger than
    /// the room left is refused as soon as that is known.
    fn call_params(&self, args: &Array) -> Result<Vec<serde_json::Value>, MethodError> {
        let budget = self.conn.room_for_call()?;
        let params = ejson::from_js_bounded(args, budget).map(|e| match e.to_json() {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        });
        match params {
            Ok(p) => Ok(p),
            Err(ejson::Refused::Bad(e)) => Err(MethodError::BadArguments(e)),
            Err(ejson::Refused::TooLarge) => Err(MethodError::QueueFull { limit: "maxPendingBytes" }),
        }
    }

    /// Listens for `signal`'s `abort`, which cancels call `id`; the returned
    /// closure is the listener, kept until the call ends.
    fn cancel_on_abort(&self, signal: &JsValue, id: u64) -> Closure<dyn Fn()> {
        // Weak: a signal the app keeps must not keep the connection.
        let conn = self.conn.downgrade();
        let closure = Closure::<dyn Fn()>::new(move || {
            if let Some(conn) = conn.upgrade() {
                conn.cancel_call(id);
            }
        });
        if let Ok(add) = get(signal, "addEventListener").dyn_into::<Function>() {
            let _ = add.call2(signal, &"abort".into(), closure.as_ref());
        }
        closure
    }
}

/// Runs a JavaScript stub, `this` being Meteor's method invocation
/// (`isSimulation`, `name`, `randomSeed()`, `randomId(scope)`, `insert`,
/// `update`, `remove`, `findOne`). It gets the call's arguments decoded
/// from the wire: a copy, as Meteor's stubs get `EJSON.clone`d arguments.
fn run_js_stub(stub: &Function, ctx: &mut StubContext, args: &[serde_json::Value]) -> Result<serde_json::Value, StubError> {
    // The helpers outlive this borrow in JavaScript's eyes: they share the
    // context for the stub's run, and it comes back afterwards.
    let shared = Rc::new(RefCell::new(ctx.take()));
    let invocation = Object::new();
    let set = |k: &str, v: &JsValue| {
        let _ = Reflect::set(&invocation, &k.into(), v);
    };
    set("isSimulation", &true.into());
    set("name", &shared.borrow().name().into());
    let c = shared.clone();
    let random_seed = Closure::<dyn Fn() -> String>::new(move || c.borrow_mut().random_seed());
    let c = shared.clone();
    let random_id =
        Closure::<dyn Fn(Option<String>) -> String>::new(move |scope: Option<String>| c.borrow_mut().random_id(&scope.unwrap_or_default()));
    let c = shared.clone();
    let insert = Closure::<dyn Fn(String, JsValue) -> Result<String, JsValue>>::new(move |coll: String, doc: JsValue| {
        let doc = ejson::from_js(&doc).map_err(|e| js_error("bad-arguments", &e))?.to_json();
        Ok(c.borrow_mut().insert(&coll, doc))
    });
    let c = shared.clone();
    let update =
        Closure::<dyn Fn(String, String, JsValue) -> Result<bool, JsValue>>::new(move |coll: String, id: String, fields: JsValue| {
            let fields = match ejson::from_js(&fields).map_err(|e| js_error("bad-arguments", &e))?.to_json() {
                serde_json::Value::Object(m) => m,
                _ => return Err(js_error("bad-arguments", "update() takes an object of fields")),
            };
            Ok(c.borrow_mut().update(&coll, &id, fields))
        });
    let c = shared.clone();
    let remove = Closure::<dyn Fn(String, String)>::new(move |coll: String, id: String| c.borrow_mut().remove(&coll, &id));
    let c = shared.clone();
    let find_one = Closure::<dyn Fn(String, String) -> JsValue>::new(move |coll: String, id: String| {
        c.borrow().find_one(&coll, &id).map_or(JsValue::UNDEFINED, |d| result_to_js(Some(d)))
    });
    set("randomSeed", random_seed.as_ref());
    set("randomId", random_id.as_ref());
    set("insert", insert.as_ref());
    set("update", update.as_ref());
    set("remove", remove.as_ref());
    set("findOne", find_one.as_ref());
    let result = stub.apply(&invocation, &args.iter().map(tojs::value).collect::<Array>());
    // The stub ran synchronously; its helpers may go now (a helper it kept
    // and calls later finds a context no call reads).
    drop((random_seed, random_id, insert, update, remove, find_one));
    *ctx = match Rc::try_unwrap(shared) {
        Ok(cell) => cell.into_inner(),
        Err(kept) => kept.borrow_mut().take(),
    };
    match result {
        Ok(value) => {
            let json = ejson::from_js(&value).map_or(serde_json::Value::Null, |e| e.to_json());
            ctx.set_foreign(Box::new(value));
            Ok(json)
        }
        Err(thrown) => Err(StubError { message: crate::browser::describe(thrown.clone()), foreign: Some(Box::new(thrown)) }),
    }
}

/// `onResultReceived` as the call's result hook.
fn result_hook(f: Function) -> crate::connection::ResultHook {
    Box::new(move |outcome: &Result<Option<serde_json::Value>, MethodError>| match outcome {
        Ok(v) => call_js(&f, &[JsValue::UNDEFINED, result_to_js(v.clone())]),
        Err(e) => call_js(&f, &[method_error_to_js(e)]),
    }) as Box<dyn FnOnce(&_)>
}

/// Removes the call's `abort` listener from `signal` (once the call ends).
fn abort_cleanup(abort: Rc<RefCell<Option<Closure<dyn Fn()>>>>, signal: JsValue) -> impl FnOnce() + 'static {
    move || {
        if let Some(closure) = abort.borrow_mut().take() {
            if let Ok(remove) = get(&signal, "removeEventListener").dyn_into::<Function>() {
                let _ = remove.call2(&signal, &"abort".into(), closure.as_ref());
            }
        }
    }
}

/// How a call settles: a Promise and its settling hook; or, with
/// `returnStubValue` (`return_stub`), no Promise (the caller gets the
/// stub's value now and the server call goes on): a failure is reported,
/// with no handler closure left behind.
fn settlement(return_stub: bool, cleanup: impl FnOnce() + 'static) -> (Option<Promise>, crate::connection::DoneHook) {
    if return_stub {
        let report = Box::new(move |outcome: Result<Option<serde_json::Value>, MethodError>| {
            cleanup();
            if let Err(e) = outcome {
                web_sys::console::error_2(
                    &"ddp-live: a call whose stub value was returned failed on the server".into(),
                    &method_error_to_js(&e),
                );
            }
        });
        (None, report)
    } else {
        let (p, settle) = call_promise(result_to_js, cleanup);
        (Some(p), settle)
    }
}

#[wasm_bindgen(js_class = DDPConnection)]
impl DdpConnection {
    /// Calls server method `name` with `args` (EJSON: Date, Uint8Array,
    /// RegExp, NaN/Infinity and registered custom types travel as such).
    /// Returns a Promise of the result; it rejects with a
    /// `DDPMethodError` (shaped like Meteor.Error). A trailing function is a
    /// usage error: this API returns a Promise instead of taking a callback.
    #[wasm_bindgen(variadic)]
    pub fn call(&self, name: &str, args: JsArgs) -> Result<JsCallPromise, JsValue> {
        let args: Array = JsValue::from(args).dyn_into().unwrap_or_default();
        if args.length() > 0 && args.get(args.length() - 1).is_function() {
            return Err(js_error(
                "invalid-argument",
                "call() returns a Promise and takes no callback (as Meteor.callAsync); use await or .then()",
            ));
        }
        self.apply_impl(name, args, JsValue::UNDEFINED).map(JsCast::unchecked_into)
    }

    /// Calls server method `name` with the array `args` and options
    /// (`wait`, `noRetry`, `onResultReceived`, `timeoutMs`, `signal`,
    /// `returnStubValue`, `throwStubExceptions`).
    pub fn apply(&self, name: &str, args: Option<JsArgs>, options: Option<JsApplyOptions>) -> Result<JsCallPromise, JsValue> {
        let args = match args.map(JsValue::from) {
            None => Array::new(),
            Some(a) if a.is_undefined() || a.is_null() => Array::new(),
            Some(a) => a.dyn_into().map_err(|_| js_error("invalid-argument", "apply() takes the arguments as an array"))?,
        };
        let options = options.map(JsValue::from).unwrap_or(JsValue::UNDEFINED);
        if let Some(f) = ["onResultReceived"].iter().find(|k| !get(&options, k).is_undefined() && !get(&options, k).is_function()) {
            return Err(js_error("invalid-options", &format!("{f} must be a function")));
        }
        self.apply_impl(name, args, options).map(JsCast::unchecked_into)
    }

    /// Defines client stubs: `methods({ name(...args) { ... } })`. A stub runs
    /// locally at call time (with `this.isSimulation`, `this.randomSeed()`,
    /// `this.randomId(scope)`), before the server answers.
    pub fn methods(&self, stubs: JsStubs) -> Result<(), JsValue> {
        let obj: JsValue = stubs.into();
        let obj: Object = obj.dyn_into().map_err(|_| js_error("invalid-argument", "methods() takes an object of functions"))?;
        for entry in Object::entries(&obj).iter() {
            let pair: Array = entry.unchecked_into();
            let name = pair.get(0).as_string().unwrap_or_default();
            let f = as_function(pair.get(1), &format!("methods(): \"{name}\""))?;
            crate::stubs::define(&self.conn, &name, Rc::new(move |ctx, args| run_js_stub(&f, ctx, args)));
        }
        Ok(())
    }

    /// Runs `callback` when a new session replaces a lost one (not when the
    /// server resumed the session). Calls made inside go ahead of
    /// everything queued (e.g. a login).
    #[wasm_bindgen(js_name = onReconnect)]
    pub fn on_reconnect(&self, callback: JsHook) -> Result<StopHandle, JsValue> {
        let f = as_function(callback.into(), "onReconnect")?;
        let handle = self.conn.on_reconnect(move |_| call_js(&f, &[]));
        Ok(StopHandle::new(handle))
    }

    /// Queued and in-flight method calls now.
    pub fn outbox(&self) -> JsOutbox {
        outbox_to_js(&self.conn.outbox()).unchecked_into()
    }

    /// Calls `callback` at once with the outbox counts, then on every change.
    #[wasm_bindgen(js_name = onOutboxChange)]
    pub fn on_outbox_change(&self, callback: JsOutboxCallback) -> Result<StopHandle, JsValue> {
        watch(callback.into(), "onOutboxChange", self.conn.outbox_observable(), outbox_to_js)
    }

    /// Subscribes to publication `name` with `params`; a last argument that
    /// is a function is `onReady`, an object of callbacks gives `onReady`
    /// and `onStop(error?)`. The subscription is re-sent after reconnects
    /// until `stop()`.
    #[wasm_bindgen(variadic, skip_typescript)]
    pub fn subscribe(&self, name: &str, args: data::JsSubArgs) -> Result<data::JsSubscription, JsValue> {
        let args: Array = JsValue::from(args).dyn_into().unwrap_or_default();
        self.subscribe_impl(name, args)
    }

    /// The live collection `name`.
    pub fn collection(&self, name: &str) -> data::JsCollection {
        self.collection_impl(name)
    }

    /// Whether the last `connected` resumed the previous session.
    #[wasm_bindgen(getter)]
    pub fn resumed(&self) -> bool {
        self.conn.resumed()
    }

    /// The current status: a plain object with Meteor's fields.
    pub fn status(&self) -> JsStatus {
        status_to_js(&self.conn.status()).unchecked_into()
    }

    /// Calls `callback` at once with the current status, then on every
    /// change, until `stop()` is called on the returned handle.
    #[wasm_bindgen(js_name = onStatusChange)]
    pub fn on_status_change(&self, callback: JsStatusCallback) -> Result<StopHandle, JsValue> {
        watch(callback.into(), "onStatusChange", self.conn.status_observable(), status_to_js)
    }

    /// Retry now (does nothing while connected; not counted in `retryCount`).
    pub fn reconnect(&self) {
        self.conn.reconnect();
    }

    /// Close the link and stay `offline` until `reconnect()`. Sends
    /// `{"msg":"disconnect"}` first (see the Rust `Connection::disconnect`).
    pub fn disconnect(&self) {
        self.conn.disconnect();
    }

    /// Disconnect for good and release every browser listener.
    pub fn close(&self) {
        self.conn.close();
        self.listeners.clear();
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
        self.listeners.add(event, listener, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn once(&self, event: &str, listener: Function) -> Result<(), JsValue> {
        self.listeners.add(event, listener, true)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, listener: Option<Function>) {
        self.listeners.off(event, listener);
    }
}

/// Returned by `onStatusChange`: call `stop()` to stop the callbacks.
#[wasm_bindgen]
pub struct StopHandle {
    stopper: crate::reactive::Stopper,
}

impl StopHandle {
    /// The callback stays until `stop()`: a handle the app drops (and the
    /// garbage collector frees) does not silence it.
    pub(crate) fn new(handle: ListenerHandle) -> Self {
        StopHandle { stopper: handle.into_stopper() }
    }
}

#[wasm_bindgen]
impl StopHandle {
    /// Stops the callbacks; calling it again does nothing.
    pub fn stop(&self) {
        self.stopper.stop();
    }
}
