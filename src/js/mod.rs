//! The wasm side of the npm package's JavaScript API: a narrow ABI under
//! the hand-written TypeScript layer (`ts/ddp_live.ts`, which is the API
//! apps see, with its `.d.ts`).
//!
//! Only numbers and strings cross: objects the TypeScript layer holds are
//! handles (`u32`) into a table here, values are JSON text (EJSON on the
//! wire's terms: the TypeScript layer encodes and revives `Date`,
//! `Uint8Array`, … with `JSON.stringify` / `JSON.parse`), and everything
//! this side tells JavaScript goes through one function, the sink:
//! `sink(callback id, kind, text)`. A callback id names a JavaScript
//! function the TypeScript layer keeps; when the Rust closure holding the
//! id goes, the sink hears kind 0 (`RELEASE`) and forgets the function,
//! so nothing JavaScript keeps outlives what Rust keeps (and the reverse:
//! the TypeScript objects free their handles when collected).
//!
//! No protocol logic lives here: it is a thin layer over
//! [`crate::Connection`] and its plug-ins. Nothing here panics on what
//! JavaScript passes: a stale handle does nothing, bad JSON is an error.

#[cfg(feature = "js-full")]
use crate::accounts::{AccountsEvent, NewUser, PersistLogin};
use crate::connection::{Connection, Done, Options};
use crate::data::{Collection, Subscription, SubscriptionEnd};
use crate::error::Error;
#[cfg(feature = "js-full")]
use crate::protocol::accounts::UserSelector;
use crate::protocol::json::{self, quoted, write_str, write_u64, write_value};
#[cfg(feature = "js-full")]
use crate::protocol::query::live::Diff;
use crate::protocol::retry::RetryPolicy;
use crate::protocol::store::{Change, DocRef, Fields};
use crate::reactive::{ListenerHandle, Observable, Stopper};
#[cfg(feature = "js-full")]
use crate::rooms::{Client, JoinOptions, Room, RoomNotice};
use crate::stubs::{StubContext, StubError};
use crate::{CallOptions, Event, MethodError, ProtocolError};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The TypeScript layer's one entry point, called as
    /// `Function.prototype.call` (typed: no conversion of JS values).
    type Sink;
    #[wasm_bindgen(method, js_name = call)]
    fn send(this: &Sink, this_arg: &JsValue, id: u32, kind: u32, text: &str) -> Option<String>;
}

/// Kinds the sink hears (the TypeScript layer has the same numbers).
/// The function is no longer called: forget it.
const RELEASE: u32 = 0;
/// A value (JSON text; empty for none).
const VALUE: u32 = 1;
/// An error (JSON text of its fields).
const ERROR: u32 = 2;
/// Events: 10 + the index in the TypeScript layer's event list; the text
/// is the JSON array of the listeners' arguments.
const EV_CONNECT: u32 = 10;
const EV_DISCONNECT: u32 = 11;
const EV_ERROR: u32 = 12;
const EV_ATTEMPT: u32 = 13;
const EV_RECONNECT: u32 = 14;
const EV_FAILED: u32 = 15;
#[cfg(feature = "js-full")]
const EV_LOGIN: u32 = 16;
#[cfg(feature = "js-full")]
const EV_LOGIN_FAILED: u32 = 17;
#[cfg(feature = "js-full")]
const EV_LOGGED_OUT: u32 = 18;
#[cfg(feature = "js-full")]
const EV_MESSAGE: u32 = 19;
/// observe: 20 + diff kind; observeChanges: 30 + diff kind.
#[cfg(feature = "js-full")]
const OBSERVE: u32 = 20;
#[cfg(feature = "js-full")]
const OBSERVE_CHANGES: u32 = 30;
/// Run a client stub: the text is its arguments; it returns its value's
/// JSON text, or `!` and what it threw.
const RUN_STUB: u32 = 40;
/// The offline part's event (`persist`): the next in the TypeScript
/// layer's event list (its function hears no observe kinds).
#[cfg(feature = "persist")]
const EV_PERSIST: u32 = 20;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
    /// The last error of an export that failed (JSON text), for `err()`.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    /// The contexts of the client stubs running now, innermost last.
    static STUBS: RefCell<Vec<StubContext>> = const { RefCell::new(Vec::new()) };
}

fn emit(id: u32, kind: u32, text: &str) -> Option<String> {
    SINK.with(|s| s.borrow().as_ref().and_then(|s| s.send(&JsValue::UNDEFINED, id, kind, text)))
}

/// A JavaScript function the TypeScript layer keeps under this id.
struct JsFn(u32);

impl JsFn {
    fn call(&self, kind: u32, text: &str) {
        emit(self.0, kind, text);
    }

    /// Calls a function registered to be called once (the TypeScript
    /// layer forgets it then: no release follows).
    fn once(self, kind: u32, text: &str) {
        emit(self.0, kind, text);
        std::mem::forget(self);
    }
}

impl Drop for JsFn {
    fn drop(&mut self) {
        emit(self.0, RELEASE, "");
    }
}

/// `id` as a function, 0 for none.
fn js_fn(id: u32) -> Option<JsFn> {
    (id != 0).then_some(JsFn(id))
}

/// What a handle names.
enum Obj {
    /// A connection and its listeners forwarding events to its object:
    /// its own, its accounts' (`js-full`) and, with the offline part, its
    /// durable outbox's when it has one.
    Conn(Connection, #[allow(dead_code)] Vec<ListenerHandle>),
    Sub(Subscription),
    Coll(Collection),
    Stop(Stopper),
    #[cfg(feature = "js-full")]
    Client(Client),
    #[cfg(feature = "js-full")]
    Room(Room, #[allow(dead_code)] ListenerHandle),
}

/// Handles: the slot's index in the low 20 bits, its generation above (a
/// stale handle names nothing, even after its slot is reused).
#[derive(Default)]
struct Table {
    slots: Vec<(u32, Option<Rc<Obj>>)>,
    free: Vec<u32>,
}

const INDEX_BITS: u32 = 20;

fn put(obj: Obj) -> u32 {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let index = match t.free.pop() {
            Some(i) => i,
            None => {
                t.slots.push((0, None));
                t.slots.len() as u32 - 1
            }
        };
        let slot = &mut t.slots[index as usize];
        slot.0 = (slot.0 + 1) & ((1 << (32 - INDEX_BITS)) - 1);
        slot.1 = Some(Rc::new(obj));
        (slot.0 << INDEX_BITS) | index
    })
}

fn slot_of(t: &Table, h: u32) -> Option<usize> {
    let index = (h & ((1 << INDEX_BITS) - 1)) as usize;
    t.slots.get(index).filter(|s| s.0 == h >> INDEX_BITS && s.1.is_some()).map(|_| index)
}

/// The object of handle `h` (a clone: no borrow is held while it runs).
fn obj(h: u32) -> Option<Rc<Obj>> {
    TABLE.with(|t| {
        let t = t.borrow();
        slot_of(&t, h).and_then(|i| t.slots[i].1.clone())
    })
}

fn conn(h: u32) -> Option<Connection> {
    match obj(h).as_deref() {
        Some(Obj::Conn(c, ..)) => Some(c.clone()),
        _ => None,
    }
}

fn coll(h: u32) -> Option<Collection> {
    match obj(h).as_deref() {
        Some(Obj::Coll(c)) => Some(c.clone()),
        _ => None,
    }
}

/// Keeps `message` for `err()`; returns `T`'s failure value.
fn fail<T: Default>(error: String) -> T {
    LAST_ERROR.with(|e| *e.borrow_mut() = error);
    T::default()
}

/// A JSON object written field by field.
struct Obj2(String);

impl Obj2 {
    fn new() -> Self {
        Obj2(String::from("{"))
    }
    fn key(mut self, k: &str) -> Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        write_str(k, &mut self.0);
        self.0.push(':');
        self
    }
    fn raw(self, k: &str, v: &str) -> Self {
        let mut s = self.key(k);
        s.0.push_str(v);
        s
    }
    fn str(self, k: &str, v: &str) -> Self {
        let mut s = self.key(k);
        write_str(v, &mut s.0);
        s
    }
    fn value(self, k: &str, v: &Value) -> Self {
        let mut s = self.key(k);
        write_value(v, &mut s.0);
        s
    }
    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn num(x: f64) -> String {
    let mut s = String::new();
    if x.is_finite() {
        crate::platform::write_f64(x, &mut s);
    } else {
        s.push_str("null");
    }
    s
}

fn uint(n: u64) -> String {
    let mut s = String::new();
    write_u64(n, &mut s);
    s
}

/// A `DDPError`'s fields.
fn error_json(code: &str, message: &str) -> String {
    Obj2::new().str("name", "DDPError").str("code", code).str("message", message).end()
}

fn to_error_json(e: &Error) -> String {
    error_json(e.code(), &e.to_string())
}

/// A `DDPMethodError`'s fields (Meteor.Error's shape).
fn method_error_json(e: &MethodError) -> String {
    let o = Obj2::new()
        .str("name", "DDPMethodError")
        .str("message", &e.to_string())
        .str("errorType", "Meteor.Error")
        .value("error", &e.error())
        .str("reason", &e.reason());
    match e.details() {
        Some(d) => o.value("details", d),
        None => o,
    }
    .end()
}

fn protocol_error_json(e: &ProtocolError) -> String {
    let o = Obj2::new().str("name", "DDPError").str("code", e.code()).str("message", &e.to_string());
    match e {
        ProtocolError::Server { offending_message: Some(m), .. } => o.value("offendingMessage", m),
        _ => o,
    }
    .end()
}

fn args(parts: &[&str]) -> String {
    let mut s = String::from("[");
    s.push_str(&crate::protocol::join(parts, ","));
    s.push(']');
    s
}

fn parse(text: &str) -> Option<Value> {
    json::parse(text).ok()
}

/// Settles a call's Promise (a function registered to be called once).
fn settle(f: JsFn, outcome: &Result<Option<Value>, MethodError>) {
    match outcome {
        Ok(v) => f.once(VALUE, &v.as_ref().map(json::to_text).unwrap_or_default()),
        Err(e) => f.once(ERROR, &method_error_json(e)),
    }
}

// ---- set-up, errors, handles ------------------------------------------

/// Sets the function everything this side says goes to.
#[wasm_bindgen]
pub fn sink(f: JsValue) {
    // (Called again from inside a listener, by a second `initSync`, it is
    // the same function: nothing to change while the sink runs.)
    SINK.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            *s = Some(f.unchecked_into());
        }
    });
}

/// The error of the last export that failed (JSON text of its fields).
#[wasm_bindgen]
pub fn err() -> String {
    LAST_ERROR.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

/// Lets go of handle `h` (its object is dropped unless shared elsewhere).
#[wasm_bindgen]
pub fn free(h: u32) {
    let gone = TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let i = slot_of(&t, h)?;
        t.free.push(i as u32);
        t.slots[i].1.take()
    });
    drop(gone); // after the borrow: dropping may call JavaScript
}

// ---- connections ---------------------------------------------------------

/// The options from the TypeScript layer's checked numbers (NaN: the
/// default) and versions ("": the default).
fn options(o: &[f64], versions: &str) -> Options {
    let d = Options::default();
    let dr = RetryPolicy::default();
    let n = |i: usize| o.get(i).copied().filter(|x| !x.is_nan());
    Options {
        heartbeat_interval_ms: n(0).unwrap_or(d.heartbeat_interval_ms),
        heartbeat_timeout_ms: n(1).unwrap_or(d.heartbeat_timeout_ms),
        connect_timeout_ms: n(2).unwrap_or(d.connect_timeout_ms),
        retry: RetryPolicy {
            min_count: n(3).map_or(dr.min_count, |x| x as u32),
            min_timeout_ms: n(4).unwrap_or(dr.min_timeout_ms),
            base_timeout_ms: n(5).unwrap_or(dr.base_timeout_ms),
            exponent: n(6).unwrap_or(dr.exponent),
            max_timeout_ms: n(7).unwrap_or(dr.max_timeout_ms),
            fuzz: n(8).unwrap_or(dr.fuzz),
        },
        max_retries: n(9).map(|x| x as u32),
        max_frame_bytes: n(10).map_or(d.max_frame_bytes, |x| x as usize),
        watch_page: n(11).map_or(d.watch_page, |x| x != 0.0),
        max_pending_calls: n(12).map_or(d.max_pending_calls, |x| x as usize),
        max_pending_bytes: n(13).map_or(d.max_pending_bytes, |x| x as usize),
        resume_sessions: n(14).map_or(d.resume_sessions, |x| x != 0.0),
        versions: if versions.is_empty() { d.versions } else { versions.split('\n').map(str::to_owned).collect() },
        headers: Vec::new(),
        persist: None,
        share_across_tabs: false,
    }
}

/// A connection for the JavaScript API. The core package opens it
/// without the durable outbox and the tab group, so it carries neither:
/// only the offline part (cargo features `persist` and `tabs`) installs
/// what its options ask for.
fn open(url: &str, o: &[f64], versions: &str) -> Result<Connection, Error> {
    let options = options(o, versions);
    #[cfg(any(feature = "persist", feature = "tabs"))]
    return crate::connect_on(crate::host::default_host(&options), url, options);
    #[cfg(not(any(feature = "persist", feature = "tabs")))]
    crate::connection::open(crate::host::default_host(&options), url, &options)
}

// ---- the offline part (cargo features `persist` and `tabs`) ----------------
//
// The npm package's second wasm (`ddp-live/offline`) is this same module
// built with the features `js,persist,tabs`; what follows exists only in
// it, so the core package carries none of it.

/// The offline part's options, passed beside the core's (the TypeScript
/// layer checked them): the durable outbox's store name (`persist`; none
/// when absent) and whether the tabs share one socket (`share`).
#[cfg(any(feature = "persist", feature = "tabs"))]
fn offline_options(o: &[f64], versions: &str, persist: Option<String>, share: bool) -> Options {
    Options { persist, share_across_tabs: share, ..options(o, versions) }
}

/// `DDP.connect(url, options)` with the offline part's options (see
/// [`connect`]).
#[cfg(any(feature = "persist", feature = "tabs"))]
#[wasm_bindgen]
pub fn connect_offline(url: &str, o: &[f64], versions: &str, persist: Option<String>, share: bool, f: u32) -> u32 {
    let f = JsFn(f);
    let options = offline_options(o, versions, persist, share);
    match crate::connect_on(crate::host::default_host(&options), url, options) {
        Ok(c) => conn_handle(c, f),
        Err(e) => fail(to_error_json(&e)),
    }
}

/// `new Client(url, options)` with the offline part's options (see
/// [`client`]).
#[cfg(all(feature = "js-full", any(feature = "persist", feature = "tabs")))]
#[wasm_bindgen]
pub fn client_offline(url: &str, o: &[f64], versions: &str, persist: Option<String>, share: bool) -> u32 {
    let options = offline_options(o, versions, persist, share);
    match crate::connect_on(crate::host::default_host(&options), url, options) {
        Ok(c) => put(Obj::Client(Client::with_connection(c))),
        Err(e) => fail(to_error_json(&e)),
    }
}

/// Cancels the kept call of `key` of connection `h` if it has not been
/// sent ([`crate::PersistedCalls::cancel`]): whether it was.
#[cfg(feature = "persist")]
#[wasm_bindgen]
pub fn cancel_kept(h: u32, key: &str) -> bool {
    conn(h).and_then(|c| c.persisted_calls()).is_some_and(|p| p.cancel(key))
}

/// The calls a durable outbox keeps, as the JSON array of
/// `DDPPersistedCall`s.
#[cfg(feature = "persist")]
#[allow(clippy::ptr_arg, reason = "the type `watch_value` takes (the observable holds a Vec)")]
fn kept_json(calls: &Vec<crate::PersistedCall>) -> String {
    let b = |x: bool| if x { "true" } else { "false" };
    let parts: Vec<String> = calls
        .iter()
        .map(|c| {
            Obj2::new()
                .str("key", &c.key)
                .raw("id", &c.id.map_or_else(|| "null".into(), uint))
                .str("name", &c.name)
                .raw("user", &json_opt_string(&c.user))
                .raw("fromEarlierPage", b(c.from_earlier_page))
                .raw("waitingForUser", b(c.waiting_for_user))
                .raw("durable", b(c.durable))
                .end()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    args(&parts)
}

/// A storage failure as a `DDPError` (its code says its kind).
#[cfg(feature = "persist")]
fn storage_error_json(e: &crate::StorageError) -> String {
    error_json(e.code(), if e.message.is_empty() { e.code() } else { &e.message })
}

/// A [`crate::PersistEvent`] as the TypeScript layer's `DDPPersistEvent`.
#[cfg(feature = "persist")]
fn persist_event_json(e: &crate::PersistEvent) -> String {
    use crate::PersistEvent as P;
    let n = |x: &usize| uint(*x as u64);
    let o = Obj2::new();
    match e {
        P::Restored { count, waiting } => o.str("type", "restored").raw("count", &n(count)).raw("waiting", &n(waiting)),
        P::Settled { key, name, outcome } => {
            let o = o.str("type", "settled").str("key", key).str("name", name);
            match outcome {
                Ok(Some(v)) => o.value("result", v),
                Ok(None) => o,
                Err(e) => o.raw("error", &method_error_json(e)),
            }
        }
        P::WaitingForUser { user, keys } => {
            let keys: Vec<String> = keys.iter().map(|k| quoted(k)).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            o.str("type", "waitingForUser").str("user", user).raw("keys", &args(&keys))
        }
        P::StorageFailed { key, error } => {
            o.str("type", "storageFailed").raw("key", &json_opt_string(key)).raw("error", &storage_error_json(error))
        }
        P::Discarded { key, reason } => o.str("type", "discarded").str("key", key).str("reason", reason),
        P::Skipped { key, reason } => o.str("type", "skipped").str("key", key).str("reason", reason),
        P::CacheRestored { documents, user } => {
            o.str("type", "cacheRestored").raw("documents", &n(documents)).raw("user", &json_opt_string(user))
        }
        P::CacheWritten { documents } => o.str("type", "cacheWritten").raw("documents", &n(documents)),
        P::CacheFull { documents, bytes } => o.str("type", "cacheFull").raw("documents", &n(documents)).raw("bytes", &n(bytes)),
        P::CacheFailed { error } => o.str("type", "cacheFailed").raw("error", &storage_error_json(error)),
    }
    .end()
}

/// A connection's handle, its events (and its accounts') going to `f`.
fn conn_handle(conn: Connection, f: JsFn) -> u32 {
    let f = Rc::new(f);
    let g = f.clone();
    let events = conn.on_event(move |event| {
        let (kind, text) = match event {
            Event::Connected { .. } => (EV_CONNECT, String::new()),
            Event::Disconnected { reason } => (EV_DISCONNECT, quoted(reason.as_str())),
            Event::Error(e) => (EV_ERROR, protocol_error_json(e)),
            Event::ReconnectAttempt { attempt } => (EV_ATTEMPT, uint((*attempt).into())),
            Event::Reconnected { attempts } => (EV_RECONNECT, uint((*attempts).into())),
            Event::ReconnectFailed => (EV_FAILED, String::new()),
            // The rooms' messages, for `rooms::Client`.
            Event::Stream { .. } => return,
        };
        g.call(kind, &args(&[&text]));
    });
    #[allow(unused_mut)]
    let mut listeners = vec![events];
    #[cfg(feature = "persist")]
    if let Some(p) = conn.persisted_calls() {
        let f = f.clone();
        listeners.push(p.on_event(move |e| f.call(EV_PERSIST, &args(&[&persist_event_json(e)]))));
    }
    // (Without the accounts part, nothing here asks for the accounts: they
    // are never made, and their code is not in the core's wasm.)
    #[cfg(feature = "js-full")]
    listeners.push(conn.accounts().on_event(move |e| match e {
        AccountsEvent::LoggedIn { user_id } => f.call(EV_LOGIN, &args(&[&quoted(user_id)])),
        AccountsEvent::LoginFailed { error } => f.call(EV_LOGIN_FAILED, &args(&[&method_error_json(error)])),
        AccountsEvent::LoggedOut => f.call(EV_LOGGED_OUT, "[]"),
    }));
    #[cfg(not(feature = "js-full"))]
    drop(f);
    put(Obj::Conn(conn, listeners))
}

/// `DDP.connect(url, options)`: a connection's handle, or 0 (see `err()`).
/// `o` and `versions` are the options as the TypeScript layer checked
/// them; `f` hears the connection's events.
#[wasm_bindgen]
pub fn connect(url: &str, o: &[f64], versions: &str, f: u32) -> u32 {
    let f = JsFn(f);
    match open(url, o, versions) {
        Ok(c) => conn_handle(c, f),
        Err(e) => fail(to_error_json(&e)),
    }
}

/// A reading of handle `h` as JSON text (`what`: see the TypeScript layer).
#[wasm_bindgen]
pub fn get(h: u32, what: u32) -> String {
    let Some(o) = obj(h) else { return "null".into() };
    let b = |x: bool| if x { "true" } else { "false" }.to_owned();
    let s = |x: Option<String>| x.as_deref().map_or_else(|| "null".into(), quoted);
    match (&*o, what) {
        (Obj::Conn(c, ..), 0) => status_json(&c.status()),
        (Obj::Conn(c, ..), 1) => outbox_json(&c.outbox()),
        (Obj::Conn(c, ..), 2) => b(c.resumed()),
        (Obj::Conn(c, ..), 3) => s(c.id()),
        (Obj::Conn(c, ..), 4) => b(c.connected()),
        (Obj::Conn(c, ..), 5) => quoted(c.url()),
        #[cfg(feature = "js-full")]
        (Obj::Conn(c, ..), 6) => s(c.accounts().user_id()),
        #[cfg(feature = "js-full")]
        (Obj::Conn(c, ..), 7) => b(c.accounts().logging_in()),
        #[cfg(feature = "js-full")]
        (Obj::Conn(c, ..), 8) => c.accounts().user().as_ref().map_or_else(|| "null".into(), json::to_text),
        #[cfg(feature = "js-full")]
        (Obj::Conn(c, ..), 9) => s(c.accounts().token()),
        #[cfg(feature = "persist")]
        (Obj::Conn(c, ..), 10) => b(c.stale()),
        #[cfg(feature = "persist")]
        (Obj::Conn(c, ..), 11) => c.persisted_calls().map_or_else(|| "[]".into(), |p| kept_json(&p.list())),
        (Obj::Sub(x), 0) => quoted(x.id()),
        (Obj::Sub(x), _) => b(x.ready()),
        (Obj::Coll(x), 0) => quoted(x.name()),
        (Obj::Coll(x), _) => uint(x.len() as u64),
        #[cfg(feature = "js-full")]
        (Obj::Room(r, _), 0) => s(r.id()),
        #[cfg(feature = "js-full")]
        (Obj::Room(r, _), 1) => quoted(r.room_id()),
        #[cfg(feature = "js-full")]
        (Obj::Room(r, _), _) => b(r.connected()),
        _ => "null".into(),
    }
}

/// An action on handle `h`: a connection's `reconnect()` (0),
/// `disconnect()` (1), `close()` (2); the `stop()` or `close()` of the
/// others.
#[wasm_bindgen]
pub fn act(h: u32, what: u32) {
    let Some(o) = obj(h) else { return };
    match &*o {
        Obj::Conn(c, ..) => match what {
            0 => c.reconnect(),
            1 => c.disconnect(),
            _ => c.close(),
        },
        Obj::Sub(s) => s.stop(),
        Obj::Coll(_) => {}
        Obj::Stop(s) => s.stop(),
        #[cfg(feature = "js-full")]
        Obj::Client(c) => c.close(),
        #[cfg(feature = "js-full")]
        Obj::Room(r, _) => r.close(),
    }
}

fn status_json(s: &crate::Status) -> String {
    let o = Obj2::new()
        .raw("connected", if s.connected { "true" } else { "false" })
        .str("status", s.status.as_str())
        .raw("retryCount", &uint(s.retry_count.into()));
    let o = match s.retry_time {
        Some(t) => o.raw("retryTime", &num(t)),
        None => o,
    };
    match &s.reason {
        Some(r) => o.str("reason", r),
        None => o,
    }
    .end()
}

fn outbox_json(o: &crate::Outbox) -> String {
    Obj2::new().raw("queued", &uint(o.queued as u64)).raw("inFlight", &uint(o.in_flight as u64)).end()
}

fn watch_value<T: Clone + PartialEq + 'static>(source: &Observable<T>, f: JsFn, to_json: fn(&T) -> String) -> u32 {
    // A copy, not a borrow: the callback may change the value itself.
    f.call(VALUE, &to_json(&source.get()));
    let handle = source.subscribe(move |v| f.call(VALUE, &to_json(v)));
    put(Obj::Stop(handle.into_stopper()))
}

fn json_bool(b: &bool) -> String {
    if *b { "true" } else { "false" }.into()
}

#[cfg(feature = "js-full")]
fn json_opt_string(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "null".into(), quoted)
}

/// Calls `f` at once with a value of handle `h`, then on every change (a
/// connection's status (0), outbox (1), user id (2), `loggingIn` (3); with
/// the offline part also `stale` (4) and the kept calls (5); a
/// subscription's readiness): the stop handle, or 0.
#[wasm_bindgen]
pub fn watch(h: u32, what: u32, f: u32) -> u32 {
    let f = JsFn(f);
    match (obj(h).as_deref(), what) {
        (Some(Obj::Conn(c, ..)), 0) => watch_value(c.status_observable(), f, status_json),
        (Some(Obj::Conn(c, ..)), 1) => watch_value(c.outbox_observable(), f, outbox_json),
        #[cfg(feature = "js-full")]
        (Some(Obj::Conn(c, ..)), 2) => watch_value(c.accounts().user_id_observable(), f, json_opt_string),
        #[cfg(feature = "persist")]
        (Some(Obj::Conn(c, ..)), 4) => watch_value(&c.stale_observable(), f, json_bool),
        #[cfg(feature = "persist")]
        (Some(Obj::Conn(c, ..)), 5) => match c.persisted_calls() {
            Some(p) => watch_value(p.observable(), f, kept_json),
            // No durable outbox: none, ever (the value goes with this call).
            None => watch_value(&Observable::new(Vec::new()), f, kept_json),
        },
        #[cfg(feature = "js-full")]
        (Some(Obj::Conn(c, ..)), _) => watch_value(c.accounts().logging_in_observable(), f, json_bool),
        (Some(Obj::Sub(s)), _) => watch_value(s.ready_observable(), f, json_bool),
        _ => 0,
    }
}

/// `onReconnect`: of connection `h`, or of every connection when `h` is 0.
#[wasm_bindgen]
pub fn hook(h: u32, f: u32) -> u32 {
    let f = JsFn(f);
    let handle = if h == 0 {
        crate::connection::on_reconnect(move |_| f.call(VALUE, ""))
    } else {
        match conn(h) {
            Some(c) => c.on_reconnect(move |_| f.call(VALUE, "")),
            None => return 0,
        }
    };
    put(Obj::Stop(handle.into_stopper()))
}

// ---- method calls and stubs -----------------------------------------------

/// How many bytes of arguments the outbox of `h` has room for, or -1 when
/// it takes no call now (see `err()`).
#[wasm_bindgen]
pub fn room(h: u32) -> f64 {
    let Some(c) = conn(h) else { return fail::<f64>(method_error_json(&MethodError::Closed)) - 1.0 };
    match c.room_for_call() {
        Ok(n) => n as f64,
        Err(e) => fail::<f64>(method_error_json(&e)) - 1.0,
    }
}

/// Calls method `name` with `params` (the JSON text of the arguments'
/// array). `flags`: 1 wait, 2 noRetry, 4 returnStubValue, 8
/// throwStubExceptions; `timeout` NaN for none. `done` (called once)
/// settles the call; `on_result` (once, 0: none) hears the result when it
/// arrives. Returns `c<id>` (placed), `s<id>` (placed, and the stub's
/// value is the answer), `t<message>` (the stub threw) or `!<error>`.
#[wasm_bindgen]
pub fn apply(h: u32, name: &str, params: &str, flags: u32, timeout: f64, done: u32, on_result: u32) -> String {
    let done = JsFn(done);
    let on_result = js_fn(on_result);
    let refused = |e: &MethodError| format!("!{}", method_error_json(e));
    let Some(conn) = conn(h) else { return refused(&MethodError::Closed) };
    let params = match parse(params) {
        Some(Value::Array(a)) => a,
        _ => return refused(&MethodError::BadArguments("not a JSON array".into())),
    };
    let simulation = match crate::stubs::simulate(&conn, name, &params, flags & 8 != 0) {
        Ok(s) => s,
        Err(StubError { message }) => return format!("t{message}"),
    };
    let options = CallOptions {
        wait: flags & 1 != 0,
        no_retry: flags & 2 != 0,
        timeout_ms: (!timeout.is_nan()).then_some(timeout),
        random_seed: simulation.seed,
        return_stub_value: false,
        throw_stub_exceptions: false,
        transient: false,
    };
    let hook = on_result
        .map(|f| Box::new(move |outcome: &Result<Option<Value>, MethodError>| settle(f, outcome)) as crate::connection::ResultHook);
    let return_stub = flags & 4 != 0 && simulation.value.is_some();
    let done = Done::Hook(Box::new(move |outcome| settle(done, &outcome)));
    match conn.place_call(name, params, options, hook, simulation.writes, done) {
        Ok(id) => format!("{}{}", if return_stub { 's' } else { 'c' }, uint(id)),
        Err(e) => refused(&e),
    }
}

/// Cancels call `id` of connection `h` if it has not been sent yet.
#[wasm_bindgen]
pub fn cancel(h: u32, id: f64) {
    if let Some(c) = conn(h) {
        c.cancel_call(id as u64);
    }
}

/// Defines the client stub `name` of connection `h`: `f` runs it.
#[wasm_bindgen]
pub fn stub(h: u32, name: &str, f: u32) {
    let f = JsFn(f);
    if let Some(c) = conn(h) {
        crate::stubs::define(&c, name, Rc::new(move |ctx, args| run_stub(&f, ctx, args)));
    }
}

/// Runs a JavaScript stub; its helpers (`st`) work on `ctx` meanwhile.
fn run_stub(f: &JsFn, ctx: &mut StubContext, params: &[Value]) -> Result<Value, StubError> {
    let mut text = String::new();
    json::write_array(params, &mut text);
    STUBS.with(|s| s.borrow_mut().push(ctx.take()));
    let out = emit(f.0, RUN_STUB, &text);
    if let Some(c) = STUBS.with(|s| s.borrow_mut().pop()) {
        *ctx = c;
    }
    match out {
        Some(t) => match t.strip_prefix('!') {
            Some(message) => Err(StubError { message: message.to_owned() }),
            None => Ok(parse(&t).unwrap_or(Value::Null)),
        },
        None => Ok(Value::Null),
    }
}

/// The helpers of a running stub's `this`: `randomSeed()` (0),
/// `randomId(a)` (1), `insert(a, c)` (2), `update(a, b, c)` (3),
/// `remove(a, b)` (4), `findOne(a, b)` (5). `None`: no stub runs, or (3)
/// the fields are no object.
#[wasm_bindgen]
pub fn st(op: u32, a: &str, b: &str, c: &str) -> Option<String> {
    // Taken out for the call: the helper may run JavaScript (none does now).
    let mut ctx = STUBS.with(|s| s.borrow_mut().pop())?;
    let out = match op {
        0 => Some(ctx.random_seed()),
        1 => Some(ctx.random_id(a)),
        2 => Some(ctx.insert(a, parse(c).unwrap_or(Value::Null))),
        3 => match parse(c) {
            Some(Value::Object(m)) => Some(json_bool(&ctx.update(a, b, m))),
            _ => None,
        },
        4 => {
            ctx.remove(a, b);
            Some(String::new())
        }
        _ => ctx.find_one(a, b).as_ref().map(json::to_text),
    };
    STUBS.with(|s| s.borrow_mut().push(ctx));
    out
}

// ---- subscriptions and collections ---------------------------------------

/// Subscribes connection `h` to `name` with `params` (JSON array text);
/// `ready` (0: none) hears the first readiness, `stop` (0: none) the end.
#[wasm_bindgen]
pub fn subscribe(h: u32, name: &str, params: &str, ready: u32, stop: u32) -> u32 {
    let (ready, stop) = (js_fn(ready), js_fn(stop));
    let Some(c) = conn(h) else { return 0 };
    let params = match parse(params) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let sub = c.subscribe_raw(name, params);
    if let Some(f) = ready {
        let fired = Cell::new(false);
        // Lives with the subscription.
        sub.ready_observable()
            .subscribe(move |r| {
                if *r && !fired.replace(true) {
                    f.call(VALUE, "");
                }
            })
            .forget();
    }
    if let Some(f) = stop {
        sub.ended_observable()
            .subscribe(move |e| match e {
                Some(SubscriptionEnd::Stopped) => f.call(VALUE, ""),
                Some(SubscriptionEnd::Failed(e)) => {
                    let err = MethodError::Server {
                        error: e.get("error").cloned().unwrap_or(Value::Null),
                        reason: e.get("reason").and_then(Value::as_str).map(str::to_owned),
                        details: e.get("details").cloned(),
                        raw: e.clone(),
                    };
                    f.call(ERROR, &method_error_json(&err));
                }
                None => {}
            })
            .forget();
    }
    put(Obj::Sub(sub))
}

/// The live collection `name` of connection `h`.
#[wasm_bindgen]
pub fn collection(h: u32, name: &str) -> u32 {
    conn(h).map_or(0, |c| put(Obj::Coll(c.collection(name))))
}

/// Writes `{"_id": id, ...fields}` (or the fields alone).
fn write_doc(id: Option<&str>, fields: &Fields, out: &mut String) {
    out.push('{');
    if let Some(id) = id {
        out.push_str("\"_id\":");
        write_str(id, out);
    }
    for (k, v) in fields {
        if id.is_some() && k == "_id" {
            continue;
        }
        if !out.ends_with('{') {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        write_value(v, out);
    }
    out.push('}');
}

/// A stored document: a server document as the text it is kept in (when
/// it has no `_id` of its own and no `\u` escape, which JSON.parse would
/// read differently than the store did), else decoded.
fn write_ref(id: &str, d: DocRef<'_>, out: &mut String) {
    if let DocRef::Server(doc) = d {
        let t = doc.text();
        if let Some(rest) = t.strip_prefix('{').filter(|_| !has(t, b"\"_id\"") && !has(t, b"\\u")) {
            out.push_str("{\"_id\":");
            write_str(id, out);
            if rest.trim_start() != "}" {
                out.push(',');
            }
            out.push_str(rest);
            return;
        }
    }
    write_doc(Some(id), &d.fields(), out);
}

/// Whether `text` holds `pattern` (a plain scan: no string searcher).
fn has(text: &str, pattern: &[u8]) -> bool {
    text.as_bytes().windows(pattern.len()).any(|w| w == pattern)
}

#[cfg(feature = "js-full")]
fn query_of(c: &Collection, selector: Option<String>, options: Option<String>) -> Option<crate::query::Query> {
    let read = |t: Option<String>| t.map(|t| parse(&t).unwrap_or(Value::Null));
    match c.query_with(read(selector).as_ref(), read(options).as_ref()) {
        Ok(q) => Some(q),
        Err(e) => fail(error_json(e.code(), &e.to_string())),
    }
}

/// A result document: projected, with `_id` unless dropped.
#[cfg(feature = "js-full")]
fn write_result(q: &crate::protocol::query::Query, id: &str, fields: &Fields, out: &mut String) {
    write_doc(q.keeps_id().then_some(id), &q.project(fields), out);
}

/// `find(selector, options)` (`one`: `findOne`) of collection `h`: the JSON
/// array of the documents, or `None` for a query that cannot run (see
/// `err()`). Without selector and options: every document; `findOne` of a
/// string alone: the document with that `_id`.
#[wasm_bindgen]
pub fn find(h: u32, selector: Option<String>, options: Option<String>, one: bool) -> Option<String> {
    let c = coll(h)?;
    let mut out = String::from("[");
    if selector.is_none() && options.is_none() && !one {
        c.with_docs(|docs| {
            for (id, d) in docs {
                if out.len() > 1 {
                    out.push(',');
                }
                write_ref(id, *d, &mut out);
            }
        });
    } else if let (true, None, Some(Value::String(id))) = (one, &options, selector.as_deref().and_then(parse)) {
        c.with_doc_ref(&id, |d| write_ref(&id, d, &mut out));
    } else {
        #[cfg(not(feature = "js-full"))]
        return fail(error_json(
            "part-not-loaded",
            "live queries (find with a selector or options): import from \"ddp-live\" (the complete package) instead of \"ddp-live/core\"",
        ));
        #[cfg(feature = "js-full")]
        {
            let mut q = query_of(&c, selector, options)?;
            if one {
                q = q.limited(1);
            }
            let e = q.engine().clone();
            q.with_results(|docs| {
                for (id, f) in docs {
                    if out.len() > 1 {
                        out.push(',');
                    }
                    write_result(&e, id, f, &mut out);
                }
            });
        }
    }
    out.push(']');
    Some(out)
}

fn change_json(c: &Change) -> String {
    let (kind, id) = match c {
        Change::Added { id, .. } => ("added", id),
        Change::Changed { id, .. } => ("changed", id),
        Change::Removed { id, .. } => ("removed", id),
    };
    let o = Obj2::new().str("type", kind).str("id", id);
    let mut fields = String::new();
    match c {
        Change::Added { fields: f, .. } => {
            // As the server sent them when nobody decoded them yet (and no
            // `\u` escape: JSON.parse would read a lone surrogate otherwise).
            match f.text().filter(|t| !has(t, b"\\u")) {
                Some(t) => fields.push_str(t),
                None => write_doc(None, f, &mut fields),
            }
            o.raw("fields", &fields).end()
        }
        Change::Changed { fields: f, cleared, .. } => {
            write_doc(None, f, &mut fields);
            let cleared: Vec<String> = cleared.iter().map(|s| quoted(s)).collect();
            let cleared: Vec<&str> = cleared.iter().map(String::as_str).collect();
            o.raw("fields", &fields).raw("cleared", &args(&cleared)).end()
        }
        Change::Removed { .. } => o.end(),
    }
}

/// Calls `f` with every change of collection `h`: the stop handle.
#[wasm_bindgen]
pub fn on_change(h: u32, f: u32) -> u32 {
    let f = JsFn(f);
    let Some(c) = coll(h) else { return 0 };
    put(Obj::Stop(c.on_change(move |c| f.call(VALUE, &change_json(c))).into_stopper()))
}

#[cfg(feature = "js-full")]
fn before_json(before: &Option<Rc<str>>) -> String {
    before.as_deref().map_or_else(|| "null".into(), quoted)
}

/// A live query of collection `h`: `f` hears its diffs, as `observe`'s
/// (`changes` false) or `observeChanges`' (true) arguments, the kinds in
/// `mask` only (bit 0: added, 1: changed, 2: removed, 3: moved). The stop
/// handle, or 0 for a query that cannot run (see `err()`).
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn observe(h: u32, selector: Option<String>, options: Option<String>, changes: bool, mask: u32, f: u32) -> u32 {
    let f = JsFn(f);
    let Some(c) = coll(h) else { return 0 };
    let Some(q) = query_of(&c, selector, options) else { return 0 };
    let e = q.engine().clone();
    let doc = move |id: &str, fields: &Fields| {
        let mut s = String::new();
        write_result(&e, id, fields, &mut s);
        s
    };
    let e = q.engine().clone();
    let handle = q.observe(move |diffs| {
        for d in diffs {
            let (k, text) = match d {
                Diff::AddedAt { .. } if mask & 1 == 0 => continue,
                Diff::ChangedAt { .. } if mask & 2 == 0 => continue,
                Diff::RemovedAt { .. } if mask & 4 == 0 => continue,
                Diff::MovedTo { .. } if mask & 8 == 0 => continue,
                Diff::AddedAt { id, doc: d, before, .. } if changes => {
                    let mut s = String::new();
                    write_doc(None, &e.project(d), &mut s);
                    (0, args(&[&quoted(id), &s, &before_json(before)]))
                }
                Diff::AddedAt { id, doc: d, index, before } => (0, args(&[&doc(id, d), &uint(*index as u64), &before_json(before)])),
                Diff::ChangedAt { id, doc: d, old, index } => {
                    let (new, old_p) = (e.project(d), e.project(old));
                    if new == old_p {
                        continue;
                    }
                    if changes {
                        let mut set = Fields::new();
                        for (k, v) in new.iter() {
                            if old_p.get(k) != Some(v) {
                                set.insert(k.clone(), v.clone());
                            }
                        }
                        let cleared: Vec<String> = old_p.keys().filter(|k| !new.contains_key(*k)).map(|k| quoted(k)).collect();
                        let cleared: Vec<&str> = cleared.iter().map(String::as_str).collect();
                        let mut s = String::new();
                        write_doc(None, &set, &mut s);
                        (1, args(&[&quoted(id), &s, &args(&cleared)]))
                    } else {
                        (1, args(&[&doc(id, d), &doc(id, old), &uint(*index as u64)]))
                    }
                }
                Diff::RemovedAt { id, .. } if changes => (2, args(&[&quoted(id)])),
                Diff::RemovedAt { id, old, index } => (2, args(&[&doc(id, old), &uint(*index as u64)])),
                Diff::MovedTo { id, before, .. } if changes => (3, args(&[&quoted(id), &before_json(before)])),
                Diff::MovedTo { id, doc: d, from, to, before } => {
                    (3, args(&[&doc(id, d), &uint(*from as u64), &uint(*to as u64), &before_json(before)]))
                }
            };
            f.call(if changes { OBSERVE_CHANGES } else { OBSERVE } + k, &text);
        }
    });
    put(Obj::Stop(handle.into_stopper()))
}

// ---- accounts ----------------------------------------------------------------

/// Logs connection `h` in: with a password (`how` 0: user `a` read as
/// Meteor reads a name, 1: username, 2: email, 3: id; password `b`), a
/// resume token `a` (4), or by creating the user (5: `a` the JSON of
/// `{username?, email?, profile?}`, `b` the password). `f` (once) hears
/// the user id or the error.
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn login(h: u32, how: u32, a: &str, b: &str, f: u32) {
    let f = JsFn(f);
    let Some(c) = conn(h) else {
        return settle(f, &Err(MethodError::Closed));
    };
    let waiter = Box::new(move |r: Result<String, MethodError>| settle(f, &r.map(|id| Some(Value::String(id)))));
    let accounts = c.accounts();
    let user = match how {
        0 => UserSelector::from_name(a),
        1 => UserSelector::Username(a.into()),
        2 => UserSelector::Email(a.into()),
        3 => UserSelector::Id(a.into()),
        4 => return accounts.login("login", crate::protocol::accounts::resume_login_params(a), waiter),
        _ => {
            let o = parse(a).unwrap_or(Value::Null);
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            let user = NewUser { username: text("username"), email: text("email"), password: b.into(), profile: o.get("profile").cloned() };
            return accounts.login("createUser", crate::accounts::create_user_params(user), waiter);
        }
    };
    accounts.login("login", crate::protocol::accounts::password_login_params(&user, b), waiter);
}

/// Logs connection `h` out (`others`: every other client of the user
/// instead); `f` (once) hears the outcome.
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn logout(h: u32, others: bool, f: u32) {
    let f = JsFn(f);
    let Some(c) = conn(h) else {
        return settle(f, &Err(MethodError::Closed));
    };
    let waiter = Box::new(move |r: Result<(), MethodError>| settle(f, &r.map(|_| None)));
    if others {
        c.accounts().logout_other_clients_with(waiter);
    } else {
        c.accounts().logout_with(waiter);
    }
}

/// `setLoginUserWait(ms)` of connection `h`.
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn user_wait(h: u32, ms: f64) {
    if let Some(c) = conn(h) {
        c.accounts().set_user_wait(ms);
    }
}

/// `persistLogin` of connection `h`: whether a stored login is resumed.
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn persist_login(h: u32, own_app: bool) -> bool {
    conn(h).is_some_and(|c| c.accounts().persist_login(if own_app { PersistLogin::OwnApp } else { PersistLogin::ConnectUrl }))
}

// ---- rooms -----------------------------------------------------------------

/// `new Client(url, options)`: a rooms client's handle, or 0 (see `err()`).
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn client(url: &str, o: &[f64], versions: &str) -> u32 {
    match open(url, o, versions) {
        Ok(c) => put(Obj::Client(Client::with_connection(c))),
        Err(e) => fail(to_error_json(&e)),
    }
}

/// The connection of rooms client `h` (a handle of its own; `f` hears its
/// events).
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn client_connection(h: u32, f: u32) -> u32 {
    let f = JsFn(f);
    match obj(h).as_deref() {
        Some(Obj::Client(c)) => conn_handle(c.connection().clone(), f),
        _ => 0,
    }
}

/// Joins room `room_id` through client `h` (`auth` and `query`: JSON text);
/// `f` hears the room's events.
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn join(h: u32, room_id: &str, auth: &str, query: &str, f: u32) -> u32 {
    let f = JsFn(f);
    let Some(o) = obj(h) else { return 0 };
    let Obj::Client(client) = &*o else { return 0 };
    let join = JoinOptions { auth: parse(auth).unwrap_or(Value::Null), query: parse(query).unwrap_or(Value::Null) };
    let room = client.connect(room_id, join);
    let handle = room.on_notice(move |n| {
        let (kind, text) = match n {
            RoomNotice::Connect => (EV_CONNECT, String::new()),
            RoomNotice::Message { data, kind } => {
                let kind = kind.as_deref().map_or_else(|| "null".into(), quoted);
                (EV_MESSAGE, format!("{},{kind}", json::to_text(data)))
            }
            RoomNotice::Disconnect(reason) => (EV_DISCONNECT, quoted(reason)),
            RoomNotice::Error { code, reason } => (EV_ERROR, error_json(code, reason)),
            RoomNotice::ReconnectAttempt(n) => (EV_ATTEMPT, uint((*n).into())),
            RoomNotice::Reconnect(n) => (EV_RECONNECT, uint((*n).into())),
            RoomNotice::ReconnectFailed => (EV_FAILED, String::new()),
        };
        f.call(kind, &args(&[&text]));
    });
    put(Obj::Room(room, handle))
}

/// Sends `data` (JSON text) with an optional type in room `h`; `f` (once)
/// hears the acknowledgement. "" or `!<error>`.
#[cfg(feature = "js-full")]
#[wasm_bindgen]
pub fn send(h: u32, data: &str, kind: Option<String>, f: u32) -> String {
    let f = JsFn(f);
    let Some(o) = obj(h) else { return format!("!{}", method_error_json(&MethodError::Closed)) };
    let Obj::Room(room, _) = &*o else { return String::new() };
    let settle = Box::new(move |outcome| settle(f, &outcome));
    match room.send_with(parse(data).unwrap_or(Value::Null), kind.as_deref(), settle) {
        Ok(_) => String::new(),
        Err(e) => format!("!{}", method_error_json(&e)),
    }
}
