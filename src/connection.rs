//! The public Rust API: [`connect`] and [`Connection`].
//!
//! A `Connection` is the browser driver around the pure
//! [`Machine`](crate::protocol::machine::Machine): it moves socket events,
//! page events and time into the machine and carries its output out to the
//! socket, the status signal and event listeners.

use crate::error::Error;
use crate::host::{self, Clock, Guard, Host, HostSocket, PageEvent, SocketEvent};
use crate::protocol::hash::{FastMap, NameMap};
use crate::protocol::machine::{CallOptions, Completion, Config, Event, Input, Machine, MethodError, Outbox, Output};
use crate::protocol::retry::RetryPolicy;
use crate::protocol::status::Status;
use crate::protocol::url::websocket_url;
use crate::reactive::{ListenerHandle, Observable, Registry};
use futures_channel::oneshot;
use futures_signals::signal::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

/// Settings of a connection. Times are in milliseconds; the defaults are
/// Meteor's.
///
/// ```
/// use ddp_live::{Options, RetryPolicy};
/// let options = Options {
///     heartbeat_interval_ms: 5_000.0,
///     max_retries: Some(10),
///     retry: RetryPolicy { base_timeout_ms: 500.0, ..RetryPolicy::default() },
///     ..Options::default()
/// };
/// assert_eq!(options.connect_timeout_ms, 10_000.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Idle time before the client pings (default 17500; 0 disables the heartbeat).
    pub heartbeat_interval_ms: f64,
    /// How long a ping may go unanswered (default 15000).
    pub heartbeat_timeout_ms: f64,
    /// From opening the socket to the server's `connected` (default 10000; 0: no limit).
    pub connect_timeout_ms: f64,
    /// The retry schedule (default: Meteor's).
    pub retry: RetryPolicy,
    /// Give up after this many automatic retries in a row (default: never).
    pub max_retries: Option<u32>,
    /// DDP versions to offer, most preferred first (default "1", "pre2", "pre1").
    pub versions: Vec<String>,
    /// The largest frame accepted, in bytes (default 16 MiB).
    pub max_frame_bytes: usize,
    /// Listen to the page's `online`, `offline`, `visibilitychange` and
    /// `pageshow` events (default true).
    pub watch_page: bool,
    /// Most method calls outstanding at once, queued or in flight (default
    /// 10000); beyond it a call fails at once with `queue-full`.
    pub max_pending_calls: usize,
    /// Most bytes of method arguments outstanding at once (default 16 MiB).
    pub max_pending_bytes: usize,
    /// Ask the server to resume the session after a drop (default true).
    pub resume_sessions: bool,
    /// HTTP headers for the WebSocket upgrade, natively (`Origin`,
    /// `User-Agent`, a cookie, an authorization header: for deployments
    /// that check them; Meteor checks none). A browser sends its own and
    /// lets no page choose, so there any header is an `invalid-options` error.
    pub headers: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        let c = Config::default();
        Options {
            heartbeat_interval_ms: c.heartbeat_interval_ms,
            heartbeat_timeout_ms: c.heartbeat_timeout_ms,
            connect_timeout_ms: c.connect_timeout_ms,
            retry: c.retry,
            max_retries: c.max_retries,
            versions: c.versions,
            max_frame_bytes: c.max_frame_bytes,
            watch_page: true,
            max_pending_calls: c.max_pending_calls,
            max_pending_bytes: c.max_pending_bytes,
            resume_sessions: c.resume_sessions,
            headers: Vec::new(),
        }
    }
}

impl Options {
    /// The protocol settings these options describe, validated.
    pub fn to_config(&self) -> Result<Config, Error> {
        let config = Config {
            versions: self.versions.clone(),
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            heartbeat_timeout_ms: self.heartbeat_timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            retry: self.retry.clone(),
            max_retries: self.max_retries,
            max_frame_bytes: self.max_frame_bytes,
            max_pending_calls: self.max_pending_calls,
            max_pending_bytes: self.max_pending_bytes,
            resume_sessions: self.resume_sessions,
            ..Config::default()
        };
        config.validate().map_err(Error::InvalidOptions)?;
        #[cfg(target_arch = "wasm32")]
        if !self.headers.is_empty() {
            return Err(Error::InvalidOptions("headers: a browser sets the WebSocket's headers itself".into()));
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some((name, _)) = self.headers.iter().find(|(n, v)| !header_ok(n, v)) {
            return Err(Error::InvalidOptions(format!("headers: {name:?} is not a valid HTTP header (name or value)")));
        }
        Ok(config)
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// An HTTP header a WebSocket upgrade can carry: a token for its name, and
/// a value without control characters (no CR or LF to split the request).
fn header_ok(name: &str, value: &str) -> bool {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    !name.is_empty() && name.bytes().all(token) && value.bytes().all(|c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

type Outcome = Result<Option<Value>, MethodError>;
/// Called with a call's outcome as soon as its `result` arrives.
pub type ResultHook = Box<dyn FnOnce(&Result<Option<Value>, MethodError>)>;

/// Called once with a call's final outcome (`Closed` if the connection
/// goes away first).
pub(crate) type DoneHook = Box<dyn FnOnce(Outcome)>;

/// Where a call's final outcome goes.
pub(crate) enum Done {
    /// A Rust [`MethodCall`] future.
    Future(oneshot::Sender<Outcome>),
    /// A callback (the JS layer settles its Promise here directly, with no
    /// executor or channel in between).
    Hook(DoneHook),
}

/// What the driver keeps for a call until it ends.
struct PendingCall {
    on_result: Option<ResultHook>,
    done: Option<Done>,
}

impl PendingCall {
    fn finish(mut self, outcome: Outcome) {
        match self.done.take() {
            Some(Done::Future(tx)) => {
                let _ = tx.send(outcome);
            }
            Some(Done::Hook(f)) => f(outcome),
            None => {}
        }
    }
}

impl Drop for PendingCall {
    /// A call dropped unfinished (the connection itself went away) still
    /// settles: a hook hears `Closed`; a future sees its channel close.
    fn drop(&mut self) {
        if let Some(Done::Hook(f)) = self.done.take() {
            f(Err(MethodError::Closed));
        }
    }
}

thread_local! {
    static GLOBAL_RECONNECT_HOOKS: Rc<Registry<dyn Fn(&Connection)>> = Rc::default();
}

/// Registers `f` to run on every reconnect of every connection (like
/// Meteor's `DDP.onReconnect`), after the connection's own hooks. Method
/// calls made inside go ahead of everything queued.
pub fn on_reconnect(f: impl Fn(&Connection) + 'static) -> ListenerHandle {
    GLOBAL_RECONNECT_HOOKS.with(|h| h.add(Rc::new(f)))
}

pub(crate) struct Inner {
    url: String,
    /// The URL as given to `connect` (Meteor's `rawUrl`: accounts' storage keys).
    raw_url: String,
    pub(crate) machine: RefCell<Machine>,
    /// Where the driver runs: sockets, timers, clocks, randomness.
    pub(crate) host: Rc<dyn Host>,
    socket: RefCell<Option<(u64, Box<dyn HostSocket>)>>,
    /// The pending timer and the time it fires at.
    timer: RefCell<Option<(f64, Guard)>>,
    /// The page listeners while they are held, and how many there are.
    page: RefCell<Option<(Guard, usize)>>,
    status: Observable<Status>,
    session: Observable<Option<String>>,
    listeners: Rc<Registry<dyn Fn(&Event)>>,
    closed: Cell<bool>,
    clock: Clock,
    /// True while [`Inner::pump`] runs: a pump asked for from inside it (a
    /// listener that calls back into the connection) leaves the work to the
    /// running loop instead of nesting, so the stack never grows with
    /// re-entrant app code and listeners hear events in order.
    pumping: Cell<bool>,
    calls: RefCell<FastMap<u64, PendingCall>>,
    reconnect_hooks: Rc<Registry<dyn Fn(&Connection)>>,
    outbox: Observable<Outbox>,
    pub(crate) subs: RefCell<FastMap<String, crate::data::SubState>>,
    pub(crate) stubs: RefCell<NameMap<crate::stubs::Stub>>,
    pub(crate) mirrors: RefCell<NameMap<Rc<crate::data::Mirror>>>,
    /// The connection's accounts, made on first use.
    pub(crate) accounts: std::cell::OnceCell<Rc<crate::accounts::AccountsInner>>,
}

/// A DDP connection in the browser. Cheap to clone (all clones are the same
/// connection); when the last clone is dropped the socket is closed and
/// every browser listener removed.
///
/// ```no_run
/// # fn main() -> Result<(), ddp_live::Error> {
/// use ddp_live::{connect, ConnectionState, Options};
/// let conn = connect("https://chat.example.com", Options::default())?;
/// let handle = conn.on_status_change(|s| {
///     if s.status == ConnectionState::Waiting {
///         println!("retry {} at {:?}", s.retry_count, s.retry_time);
///     }
/// });
/// # handle.stop();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("url", &self.inner.url).field("status", &self.status()).finish()
    }
}

/// Opens a DDP connection to `url` and starts connecting at once.
///
/// `url` follows Meteor's rules: `http`/`https`/bare host are turned into
/// `ws`/`wss`, and `/websocket` is appended unless the path already ends
/// with it. An invalid URL or option is an error here, never later.
///
/// Natively (cargo feature `native`), call it inside a tokio `LocalSet`
/// (the driver spawns its socket and timer tasks there); from a
/// multi-threaded runtime, use `SharedConnection`.
///
/// ```no_run
/// # fn main() -> Result<(), ddp_live::Error> {
/// let conn = ddp_live::connect("localhost:3000", ddp_live::Options::default())?;
/// assert_eq!(conn.url(), "ws://localhost:3000/websocket");
/// # Ok(()) }
/// ```
pub fn connect(url: &str, options: Options) -> Result<Connection, Error> {
    connect_on(host::default_host(&options), url, options)
}

/// [`connect`] on a given host (the tests' simulated one).
pub(crate) fn connect_on(host: Rc<dyn Host>, url: &str, options: Options) -> Result<Connection, Error> {
    let raw_url = url.to_owned();
    let url = websocket_url(url)?;
    let config = options.to_config()?;
    let random = host.clone();
    let machine = Machine::new(config, Box::new(move || random.random()));
    let status = Observable::new(machine.status());
    let inner = Rc::new(Inner {
        url,
        raw_url,
        machine: RefCell::new(machine),
        host,
        socket: RefCell::new(None),
        timer: RefCell::new(None),
        page: RefCell::new(None),
        status,
        session: Observable::new(None),
        listeners: Rc::default(),
        closed: Cell::new(false),
        clock: Clock::default(),
        pumping: Cell::new(false),
        calls: RefCell::new(FastMap::default()),
        reconnect_hooks: Rc::default(),
        outbox: Observable::new(Outbox::default()),
        subs: RefCell::new(FastMap::default()),
        stubs: RefCell::new(NameMap::default()),
        mirrors: RefCell::new(NameMap::default()),
        accounts: std::cell::OnceCell::new(),
    });
    if options.watch_page {
        let weak = Rc::downgrade(&inner);
        let watch = inner.host.watch_page(Box::new(move |e| {
            if let Some(inner) = weak.upgrade() {
                inner.page_event(e);
            }
        }));
        *inner.page.borrow_mut() = watch;
    }
    let now = inner.now();
    inner.machine.borrow_mut().start(now);
    inner.pump();
    Ok(Connection { inner })
}

/// A connection that does not keep it open: what a listener, a handle or
/// a plug-in holds so that no cycle keeps a dropped connection alive.
#[derive(Clone, Default)]
pub struct WeakConnection(Weak<Inner>);

impl WeakConnection {
    /// The connection, if some [`Connection`] still holds it.
    pub fn upgrade(&self) -> Option<Connection> {
        self.0.upgrade().map(|inner| Connection { inner })
    }
}

impl Connection {
    /// A handle that does not keep the connection open.
    pub fn downgrade(&self) -> WeakConnection {
        WeakConnection(Rc::downgrade(&self.inner))
    }

    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }

    /// The wall clock as the driver reads it (moved back with the machine's
    /// deadlines when it was set back).
    pub(crate) fn now(&self) -> f64 {
        self.inner.now()
    }

    /// Where the driver runs (timers, randomness).
    pub(crate) fn host(&self) -> &Rc<dyn Host> {
        &self.inner.host
    }

    /// How many bytes of arguments the outbox has room for (or why no call
    /// can be placed now).
    #[cfg(feature = "js")]
    pub(crate) fn room_for_call(&self) -> Result<usize, MethodError> {
        self.with_machine(|m| m.room_for_call())
    }

    /// Reads the protocol state machine.
    pub(crate) fn with_machine<R>(&self, f: impl FnOnce(&Machine) -> R) -> R {
        f(&self.inner.machine.borrow())
    }

    /// Changes the protocol state machine without carrying its output out
    /// yet (the caller registers what the output will reach, then calls
    /// [`Connection::drive`]).
    pub(crate) fn with_machine_mut<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        f(&mut self.inner.machine.borrow_mut())
    }

    /// Changes the protocol state machine, then carries its output out.
    pub(crate) fn drive<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        let r = f(&mut self.inner.machine.borrow_mut());
        self.inner.pump();
        r
    }

    /// The WebSocket URL in use.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The URL as given to [`connect`].
    pub fn raw_url(&self) -> &str {
        &self.inner.raw_url
    }

    /// The current status (Meteor's fields).
    pub fn status(&self) -> Status {
        self.inner.status.get()
    }

    /// The status as a futures-signals signal.
    pub fn status_signal(&self) -> impl Signal<Item = Status> {
        self.inner.status.signal()
    }

    /// The status as an [`Observable`] (the source the signal, the Leptos
    /// bridge and the JS callbacks all read).
    pub fn status_observable(&self) -> &Observable<Status> {
        &self.inner.status
    }

    /// Calls `f` on every status change while the returned handle lives (dropping it removes the listener).
    pub fn on_status_change(&self, f: impl Fn(&Status) + 'static) -> ListenerHandle {
        self.inner.status.subscribe(f)
    }

    /// True while the DDP session is up.
    pub fn connected(&self) -> bool {
        self.status().connected
    }

    /// The session id given by the server; `None` while not connected, new
    /// after every reconnect.
    pub fn id(&self) -> Option<String> {
        self.inner.session.get()
    }

    /// The session id as a signal.
    pub fn id_signal(&self) -> impl Signal<Item = Option<String>> {
        self.inner.session.signal()
    }

    /// Retry now (does nothing while connected; not counted as a retry).
    pub fn reconnect(&self) {
        if self.inner.closed.get() {
            return;
        }
        let now = self.inner.now();
        self.inner.machine.borrow_mut().reconnect(now);
        self.inner.pump();
    }

    /// Closes the link and stays `offline` until [`Connection::reconnect`].
    ///
    /// It first sends `{"msg":"disconnect"}`, to every server: a server that
    /// resumes sessions (Meteor 3.5+, the test server) then ends the session
    /// at once instead of holding it for its grace period (presence,
    /// `onClose` hooks and buffered messages wait otherwise). Whether a
    /// server resumes cannot be known before a reconnect shows it, and a
    /// server that does not (Meteor ≤ 3.4) only answers an `error` "Bad
    /// request" to a socket already dropped: the client never reads it, and
    /// the session ends with the socket (checked against Meteor 3.0.4).
    pub fn disconnect(&self) {
        let now = self.inner.now();
        self.inner.machine.borrow_mut().disconnect(now);
        self.inner.pump();
    }

    /// Disconnects for good and removes every browser listener; `reconnect`
    /// does nothing afterwards.
    pub fn close(&self) {
        let now = self.inner.now();
        self.inner.machine.borrow_mut().close(now);
        self.inner.pump();
        self.inner.closed.set(true);
        self.inner.page.borrow_mut().take();
        self.inner.timer.borrow_mut().take();
    }

    /// True after [`Connection::close`].
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Calls `f` for every lifecycle [`Event`] while the returned handle lives (dropping it removes the listener).
    pub fn on_event(&self, f: impl Fn(&Event) + 'static) -> ListenerHandle {
        self.inner.listeners.add(Rc::new(f))
    }

    /// Calls server method `name` with `args` (a tuple or `Vec` is the
    /// argument list; any other value is the single argument) and decodes
    /// the result into `R`. The call is queued at once — while offline it
    /// waits in the outbox — and the future resolves when the server's
    /// `result` and `updated` both arrived.
    ///
    /// Dropping the future before the call was sent cancels it; use
    /// [`MethodCall::detach`] to fire and forget.
    ///
    /// ```no_run
    /// # async fn f(conn: ddp_live::Connection) -> Result<(), ddp_live::MethodError> {
    /// let sum: i64 = conn.call("add", (2, 3)).await?;
    /// assert_eq!(sum, 5);
    /// # Ok(()) }
    /// ```
    pub fn call<R: DeserializeOwned>(&self, name: &str, args: impl Serialize) -> MethodCall<R> {
        self.apply(name, args, CallOptions::default())
    }

    /// [`Connection::call`] with options (`wait`, `no_retry`, `timeout_ms`).
    pub fn apply<R: DeserializeOwned>(&self, name: &str, args: impl Serialize, options: CallOptions) -> MethodCall<R> {
        let params = match serde_json::to_value(args) {
            Ok(Value::Array(a)) => a,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => vec![other],
            Err(e) => return MethodCall::failed(MethodError::BadArguments(e.to_string())),
        };
        self.apply_raw(name, params, options, None)
    }

    /// The untyped form: `params` are EJSON-encoded JSON values, and
    /// `on_result` runs as soon as the `result` arrives (before `updated`).
    /// The method's Rust stub, if one is defined, runs first.
    pub fn apply_raw<R: DeserializeOwned>(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
    ) -> MethodCall<R> {
        self.apply_decoded(name, params, options, on_result, decode_result::<R>)
    }

    /// [`Connection::apply_raw`] resolving to the JSON result as it came
    /// (`null` when there was none), without serde's decoding.
    pub(crate) fn apply_value(&self, name: &str, params: Vec<Value>, options: CallOptions) -> MethodCall<Value> {
        self.apply_decoded(name, params, options, None, |v| Ok(v.unwrap_or(Value::Null)))
    }

    fn apply_decoded<R>(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
        decode: fn(Option<Value>) -> Result<R, MethodError>,
    ) -> MethodCall<R> {
        let stub = self.inner.stubs.borrow().get(name).cloned();
        let mut options = options;
        let (mut writes, mut stub_value) = (Vec::new(), None);
        if let Some(stub) = stub {
            let mut ctx = crate::stubs::StubContext::new(self, name);
            let result = stub(&mut ctx, &params);
            let (seed, w) = ctx.finish();
            match result {
                Err(e) if options.throw_stub_exceptions => return MethodCall::failed(MethodError::StubFailed(e)),
                Err(e) => self.inner.host.log_error(&format!("ddp-live: the stub of \"{name}\" failed: {e}")),
                Ok(v) => {
                    writes = w;
                    stub_value = Some(v);
                }
            }
            options.random_seed = options.random_seed.or(seed);
        }
        let return_stub = options.return_stub_value;
        let (tx, rx) = oneshot::channel();
        let mut call = match self.place_call(name, params, options, on_result, writes, Done::Future(tx)) {
            Ok(id) => MethodCall { conn: Rc::downgrade(&self.inner), id: Some(id), rx: Some(rx), early: None, early_value: None, decode },
            Err(e) => return MethodCall::failed(e),
        };
        if let (true, Some(v)) = (return_stub, stub_value) {
            // The server call goes on (detached); the caller gets the stub's value.
            call.early_value = Some(v);
        }
        call
    }

    /// Queues a call whose stub (if any) already ran; `done` hears its
    /// final outcome exactly once. Returns the call id, or the refusal.
    pub(crate) fn place_call(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
        writes: Vec<crate::protocol::machine::StubWrite>,
        done: Done,
    ) -> Result<u64, MethodError> {
        let now = self.inner.now();
        let id = self.inner.machine.borrow_mut().call_with_writes(name, params, options, writes, now)?;
        self.inner.calls.borrow_mut().insert(id, PendingCall { on_result, done: Some(done) });
        self.inner.pump();
        Ok(id)
    }

    /// Like [`Connection::apply_raw`], resolving to the raw result: `None`
    /// when the server sent no `result` field (a method that returned
    /// nothing), as opposed to `Some(Value::Null)`.
    pub fn apply_raw_outcome(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
    ) -> MethodCall<Option<Value>> {
        self.apply_decoded(name, params, options, on_result, Ok)
    }

    /// Cancels call `id` if it has not been sent yet.
    pub fn cancel_call(&self, id: u64) -> bool {
        let cancelled = self.inner.machine.borrow_mut().cancel(id);
        self.inner.pump();
        cancelled
    }

    /// How many calls are queued and in flight, now.
    pub fn outbox(&self) -> Outbox {
        self.inner.outbox.get()
    }

    /// The outbox counts as a signal (for "3 changes waiting").
    pub fn outbox_signal(&self) -> impl Signal<Item = Outbox> {
        self.inner.outbox.signal()
    }

    /// The outbox counts as an [`Observable`].
    pub fn outbox_observable(&self) -> &Observable<Outbox> {
        &self.inner.outbox
    }

    /// Registers `f` to run when a new session replaces a lost one (not on
    /// the first connection, not when the server resumed the session).
    /// Calls made inside go ahead of everything queued (e.g. a login).
    pub fn on_reconnect(&self, f: impl Fn(&Connection) + 'static) -> ListenerHandle {
        self.inner.reconnect_hooks.add(Rc::new(f))
    }

    /// Whether the last `connected` resumed the previous session.
    pub fn resumed(&self) -> bool {
        self.inner.machine.borrow().resumed()
    }

    /// How many browser event listeners this connection holds on the page
    /// (4 while watching the page, 0 after `close()`): for leak checks.
    pub fn page_listener_count(&self) -> usize {
        self.inner.page.borrow().as_ref().map_or(0, |(_, n)| *n)
    }
}

impl Inner {
    /// The wall clock; when it was set back, the machine's deadlines move
    /// back with it first (the browser's monotonic clock tells by how much).
    pub(crate) fn now(&self) -> f64 {
        let (wall, mono) = self.host.clocks();
        self.now_at(wall, mono)
    }

    /// [`Inner::now`] with the clocks already read (by the socket's handler).
    fn now_at(&self, wall: f64, mono: f64) -> f64 {
        self.clock_read(self.clock.at(wall, mono))
    }

    fn clock_read(&self, (now, set_back): (f64, Option<f64>)) -> f64 {
        if let Some(by) = set_back {
            self.machine.borrow_mut().handle_clock_jump(by);
        }
        now
    }

    /// Carries the machine's output out, until there is none. No borrow is
    /// held while app code runs, so listeners may call back into the
    /// connection; what they cause is handled by this same loop after they
    /// return (one event loop per connection), never by a nested pump.
    pub(crate) fn pump(self: &Rc<Self>) {
        if self.pumping.replace(true) {
            return;
        }
        loop {
            let next = self.machine.borrow_mut().poll_output();
            let Some(output) = next else {
                // Observers of the status, session and outbox may call back
                // in (a call from `onOutboxChange`): go round again until
                // nothing new is queued.
                self.publish();
                if self.machine.borrow().has_output() {
                    continue;
                }
                break;
            };
            match output {
                Output::OpenSocket { socket } => self.open_socket(socket),
                Output::Send { socket, text } => {
                    let result = match self.socket.borrow().as_ref() {
                        Some((id, s)) if *id == socket => s.send(&text),
                        _ => Ok(()),
                    };
                    if result.is_err() {
                        let now = self.now();
                        self.machine.borrow_mut().handle(Input::Socket(socket, SocketEvent::Error), now);
                    }
                }
                Output::CloseSocket { socket } => {
                    let old = {
                        let mut slot = self.socket.borrow_mut();
                        if slot.as_ref().is_some_and(|(id, _)| *id == socket) {
                            slot.take()
                        } else {
                            None
                        }
                    };
                    drop(old);
                }
                Output::Done(Completion::MethodResult { id, outcome }) => {
                    let hook = self.calls.borrow_mut().get_mut(&id).and_then(|c| c.on_result.take());
                    if let Some(hook) = hook {
                        hook(&outcome);
                    }
                }
                Output::Done(Completion::MethodDone { id, outcome }) => {
                    let pending = self.calls.borrow_mut().remove(&id);
                    if let Some(p) = pending {
                        p.finish(outcome);
                    }
                }
                Output::Done(Completion::Data(change)) => {
                    let mirror = self.mirrors.borrow().get(change.collection()).cloned();
                    if let Some(m) = mirror {
                        m.apply(&change);
                    }
                }
                Output::Done(Completion::SubReady { id }) => {
                    let state = self.subs.borrow().get(&id).cloned();
                    if let Some(s) = state {
                        s.ready.set(true);
                    }
                }
                Output::Done(Completion::SubStopped { id, error }) => {
                    let state = self.subs.borrow_mut().remove(&id);
                    if let Some(s) = state {
                        let end = match error {
                            Some(e) => crate::data::SubscriptionEnd::Failed(e),
                            None => crate::data::SubscriptionEnd::Stopped,
                        };
                        s.ended.set(Some(end));
                    }
                }
                Output::Event(event) => {
                    // The status is current before any listener hears of the event.
                    self.publish();
                    self.dispatch(&event);
                }
                Output::RunReconnectHooks => {
                    let conn = Connection { inner: self.clone() };
                    let own = self.reconnect_hooks.snapshot();
                    let global = GLOBAL_RECONNECT_HOOKS.with(|g| g.snapshot());
                    for hook in own.iter().chain(global.iter()) {
                        hook(&conn);
                    }
                    self.machine.borrow_mut().reconnect_hooks_done();
                }
            }
        }
        self.pumping.set(false);
        self.reschedule();
    }

    /// Carries status, session id and outbox counts to their observables.
    /// Runs after every frame, so it allocates nothing unless something changed.
    fn publish(&self) {
        let (status, session, outbox) = {
            let m = self.machine.borrow();
            let same_session = self.session.with(|s| s.as_deref() == m.session());
            (m.status(), (!same_session).then(|| m.session().map(str::to_owned)), m.outbox())
        };
        if let Some(session) = session {
            self.session.set(session);
        }
        self.status.set(status);
        self.outbox.set(outbox);
    }

    fn dispatch(&self, event: &Event) {
        for l in self.listeners.snapshot() {
            l(event);
        }
    }

    fn open_socket(self: &Rc<Self>, socket: u64) {
        let weak: Weak<Inner> = Rc::downgrade(self);
        let max_len = self.machine.borrow().config().max_frame_bytes;
        let opened = self.host.open_socket(
            &self.url,
            max_len,
            Box::new(move |e, clocks| {
                if let Some(inner) = weak.upgrade() {
                    inner.socket_event(socket, e, clocks);
                }
            }),
        );
        match opened {
            Ok(s) => *self.socket.borrow_mut() = Some((socket, s)),
            // Reported from a microtask: the socket of the first attempt is
            // opened inside `connect()`, before the app could listen for errors.
            Err(reason) => {
                let weak = Rc::downgrade(self);
                self.host.later(Box::new(move || {
                    if let Some(inner) = weak.upgrade() {
                        let now = inner.now();
                        inner.machine.borrow_mut().handle(Input::Socket(socket, SocketEvent::Refused(&reason)), now);
                        inner.pump();
                    }
                }));
            }
        }
    }

    fn socket_event(self: &Rc<Self>, socket: u64, event: SocketEvent<'_>, (wall, mono): (f64, f64)) {
        let now = self.now_at(wall, mono);
        self.machine.borrow_mut().handle(Input::Socket(socket, event), now);
        self.pump();
    }

    fn page_event(self: &Rc<Self>, event: PageEvent) {
        let now = self.now();
        self.machine.borrow_mut().handle(Input::Page(event), now);
        self.pump();
    }

    /// Keeps one timer armed no later than the machine's next deadline. A
    /// deadline that moves later (the heartbeat, on every frame) leaves the
    /// armed timer alone: it fires early, the machine does nothing, and the
    /// timer is re-armed. So the hot path never touches timers.
    fn reschedule(self: &Rc<Self>) {
        if self.closed.get() {
            return;
        }
        // A timer that fires by the next deadline stays. Firing early is
        // harmless: it reads the clock and looks again.
        let covered = |deadline: Option<f64>| deadline.is_some_and(|at| self.timer.borrow().as_ref().is_some_and(|(t, _)| *t <= at));
        // The common case, after most frames: nothing to do, no clock to read.
        if covered(self.machine.borrow().poll_timeout()) {
            return;
        }
        // The clock first: a wall clock set back moves the deadlines, which
        // are read after it.
        let now = self.now();
        let deadline = self.machine.borrow().poll_timeout();
        if covered(deadline) {
            return;
        }
        let mut timer = self.timer.borrow_mut();
        match deadline {
            None => *timer = None,
            Some(at) => {
                // Rounded up: a timer that fires before the deadline wakes for nothing.
                let delay = (at - now).ceil().clamp(0.0, i32::MAX as f64) as u32;
                let weak = Rc::downgrade(self);
                let guard = self.host.timer(
                    delay,
                    Box::new(move || {
                        if let Some(inner) = weak.upgrade() {
                            inner.timer.borrow_mut().take();
                            let now = inner.now();
                            inner.machine.borrow_mut().handle(Input::Timeout, now);
                            inner.pump();
                        }
                    }),
                );
                *timer = Some((at, guard));
            }
        }
    }
}

/// A method call in progress: a future of its decoded result.
///
/// Dropping it before the call was sent cancels the call; once sent, the
/// call runs and dropping only discards the answer.
#[must_use = "a call is cancelled when its future is dropped before it is sent; use .detach() to fire and forget"]
pub struct MethodCall<R> {
    conn: Weak<Inner>,
    id: Option<u64>,
    rx: Option<oneshot::Receiver<Outcome>>,
    early: Option<MethodError>,
    /// With `return_stub_value`: the stub's value, resolved at once.
    early_value: Option<Value>,
    decode: fn(Option<Value>) -> Result<R, MethodError>,
}

fn decode_result<R: DeserializeOwned>(v: Option<Value>) -> Result<R, MethodError> {
    serde_json::from_value(v.unwrap_or(Value::Null)).map_err(|e| MethodError::BadResult(e.to_string()))
}

impl<R> MethodCall<R> {
    pub(crate) fn failed(e: MethodError) -> Self {
        MethodCall { conn: Weak::new(), id: None, rx: None, early: Some(e), early_value: None, decode: |_| Err(MethodError::Closed) }
    }

    /// The call's id (its DDP method id), or `None` if it was refused at once.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// Cancels the call if it has not been sent; the future then resolves
    /// to `cancelled`. Returns whether it was cancelled.
    pub fn cancel(&self) -> bool {
        match (self.id, self.conn.upgrade()) {
            (Some(id), Some(inner)) => Connection { inner }.cancel_call(id),
            _ => false,
        }
    }

    /// Lets the call go on without waiting for (or cancelling) it.
    pub fn detach(mut self) {
        self.id = None;
    }
}

impl<R> Unpin for MethodCall<R> {}

impl<R> Future for MethodCall<R> {
    type Output = Result<R, MethodError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(e) = this.early.take() {
            return Poll::Ready(Err(e));
        }
        if let Some(v) = this.early_value.take() {
            this.id = None; // the server call goes on: never cancel it on drop
            return Poll::Ready((this.decode)(Some(v)));
        }
        let Some(rx) = this.rx.as_mut() else {
            return Poll::Ready(Err(MethodError::Closed));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                this.id = None; // finished: nothing to cancel on drop
                this.rx = None;
                let outcome = outcome.unwrap_or(Err(MethodError::Closed))?;
                Poll::Ready((this.decode)(outcome))
            }
        }
    }
}

impl<R> Drop for MethodCall<R> {
    fn drop(&mut self) {
        if let (Some(id), Some(inner)) = (self.id, self.conn.upgrade()) {
            // Only an unsent call is cancelled; a sent one runs on.
            if inner.machine.borrow_mut().cancel(id) {
                inner.calls.borrow_mut().remove(&id);
                inner.pump();
            }
        }
    }
}
