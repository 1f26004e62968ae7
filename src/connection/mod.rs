//! The public Rust API: [`connect`](crate::connect) and [`Connection`], a handle on one
//! connection's [`driver`] (which runs the pure
//! [`Machine`](crate::protocol::machine::Machine) on a
//! [`Host`](crate::host::Host)).
//!
//! What features need of a connection is here too, crate-internal: the
//! machine to read or drive, calls to place, and their plug-in
//! ([`Connection::plugin`]). The driver's fields are private to this module.

mod driver;

pub use driver::ResultHook;
pub(crate) use driver::{Done, DoneHook, Plugin};

use crate::error::Error;
use crate::host::Host;
use crate::protocol::machine::{CallOptions, Config, Event, Machine, MethodError, Outbox, StubWrite};
use crate::protocol::retry::RetryPolicy;
use crate::protocol::status::Status;
use crate::protocol::url::websocket_url;
use crate::reactive::{ListenerHandle, Observable};
use driver::{Driver, PendingCall, GLOBAL_RECONNECT_HOOKS};
use futures_signals::signal::Signal;
use serde_json::Value;
use std::rc::{Rc, Weak};

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
    /// Keep the outbox in durable storage under this name (IndexedDB in
    /// the browser, scoped to the server URL too; natively the process's
    /// memory): calls made offline or in flight survive a reload, and go
    /// out at the next start (see [`PersistedCalls`](crate::PersistedCalls)).
    /// The subscriptions' documents are kept too, per user: the next start
    /// shows them at once, [stale](Connection::stale) until the
    /// subscriptions are ready again. Off by default.
    pub persist: Option<String>,
    /// Share one socket with every other tab of this browser connected to
    /// the same URL (natively: with the other connections of this thread).
    /// One tab leads and holds the socket; the others' calls,
    /// subscriptions and data go through it, and another takes over when
    /// it goes (see the README's "One socket for every tab"). In the
    /// browser it needs the cargo feature `tabs`. Off by default.
    pub share_across_tabs: bool,
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
            persist: None,
            share_across_tabs: false,
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
            journal_calls: self.persist.is_some(),
            hold_calls: self.persist.is_some(),
            // The session kept for the next page, for a server that resumes
            // it; not with a shared socket (each tab's session is with the
            // leading tab, which goes with its page).
            adopt_sessions: self.persist.is_some() && self.resume_sessions && !self.share_across_tabs,
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

/// Registers `f` to run on every reconnect of every connection (like
/// Meteor's `DDP.onReconnect`), after the connection's own hooks. Method
/// calls made inside go ahead of everything queued.
pub fn on_reconnect(f: impl Fn(&Connection) + 'static) -> ListenerHandle {
    GLOBAL_RECONNECT_HOOKS.with(|h| h.add(Rc::new(f)))
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
    driver: Rc<Driver>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("url", &self.driver.url).field("status", &self.status()).finish()
    }
}

/// A connection on `host` with no plug-in yet (the crate's `connect_on`
/// adds those its options ask for).
pub(crate) fn open(host: Rc<dyn Host>, url: &str, options: &Options) -> Result<Connection, Error> {
    let raw_url = url.to_owned();
    let url = websocket_url(url)?;
    let config = options.to_config()?;
    let random = host.clone();
    let machine = Machine::new(config, Box::new(move || random.random()));
    let driver = Driver::new(host, url, raw_url, machine);
    driver.start(options.watch_page);
    Ok(Connection { driver })
}

/// A connection that does not keep it open: what a listener, a handle or
/// a plug-in holds so that no cycle keeps a dropped connection alive.
#[derive(Clone, Default)]
pub struct WeakConnection(Weak<Driver>);

impl WeakConnection {
    /// The connection, if some [`Connection`] still holds it.
    pub fn upgrade(&self) -> Option<Connection> {
        self.0.upgrade().map(|driver| Connection { driver })
    }
}

impl Connection {
    /// A handle that does not keep the connection open.
    pub fn downgrade(&self) -> WeakConnection {
        WeakConnection(Rc::downgrade(&self.driver))
    }

    /// The connection's plug-in of type `P`, made by `make` on first use
    /// (one per connection, kept as long as the connection lives).
    pub(crate) fn plugin<P: Plugin>(&self, make: impl FnOnce(&Connection) -> Rc<P>) -> Rc<P> {
        match self.driver.find_plugin::<P>() {
            Some(p) => p,
            // `make` runs with no borrow held (it may register listeners,
            // or ask for other plug-ins).
            None => self.driver.add_plugin(make(self)),
        }
    }

    /// The connection's plug-in of type `P`, if it has one yet.
    pub(crate) fn find_plugin<P: Plugin>(&self) -> Option<Rc<P>> {
        self.driver.find_plugin::<P>()
    }

    /// Queues a call whose stub (if any) already ran; `done` hears its
    /// final outcome exactly once. Returns the call id, or the refusal.
    pub(crate) fn place_call(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
        writes: Vec<StubWrite>,
        done: Done,
    ) -> Result<u64, MethodError> {
        let now = self.driver.now();
        let id = self.driver.machine.borrow_mut().call_with_writes(name, params, options, writes, now)?;
        self.driver.calls.borrow_mut().insert(id, PendingCall { on_result, done: Some(done) });
        self.driver.pump();
        Ok(id)
    }

    /// Cancels call `id` if it has not been sent yet.
    pub fn cancel_call(&self, id: u64) -> bool {
        let cancelled = self.driver.machine.borrow_mut().cancel(id);
        self.driver.pump();
        cancelled
    }

    /// Cancels call `id` if it has not been sent yet, without settling it
    /// (its future is going away). Returns whether it was cancelled.
    pub(crate) fn forget_unsent_call(&self, id: u64) -> bool {
        let cancelled = self.driver.machine.borrow_mut().cancel(id);
        if cancelled {
            self.driver.calls.borrow_mut().remove(&id);
            self.driver.pump();
        }
        cancelled
    }

    /// The wall clock as the driver reads it (moved back with the machine's
    /// deadlines when it was set back).
    pub(crate) fn now(&self) -> f64 {
        self.driver.now()
    }

    /// Where the driver runs (timers, randomness).
    pub(crate) fn host(&self) -> &Rc<dyn Host> {
        &self.driver.host
    }

    /// How many bytes of arguments the outbox has room for (or why no call
    /// can be placed now).
    #[cfg(feature = "js")]
    pub(crate) fn room_for_call(&self) -> Result<usize, MethodError> {
        self.with_machine(|m| m.room_for_call())
    }

    /// Reads the protocol state machine.
    pub(crate) fn with_machine<R>(&self, f: impl FnOnce(&Machine) -> R) -> R {
        f(&self.driver.machine.borrow())
    }

    /// Changes the protocol state machine without carrying its output out
    /// yet (the caller registers what the output will reach, then calls
    /// [`Connection::drive`]).
    pub(crate) fn with_machine_mut<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        f(&mut self.driver.machine.borrow_mut())
    }

    /// Changes the protocol state machine, then carries its output out.
    pub(crate) fn drive<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        let r = f(&mut self.driver.machine.borrow_mut());
        self.driver.pump();
        r
    }

    /// The WebSocket URL in use.
    pub fn url(&self) -> &str {
        &self.driver.url
    }

    /// The URL as given to [`connect`](crate::connect).
    pub fn raw_url(&self) -> &str {
        &self.driver.raw_url
    }

    /// The current status (Meteor's fields).
    pub fn status(&self) -> Status {
        self.driver.status.get()
    }

    /// The status as a futures-signals signal.
    pub fn status_signal(&self) -> impl Signal<Item = Status> {
        self.driver.status.signal()
    }

    /// The status as an [`Observable`] (the source the signal, the Leptos
    /// bridge and the JS callbacks all read).
    pub fn status_observable(&self) -> &Observable<Status> {
        &self.driver.status
    }

    /// Calls `f` on every status change while the returned handle lives (dropping it removes the listener).
    pub fn on_status_change(&self, f: impl Fn(&Status) + 'static) -> ListenerHandle {
        self.driver.status.subscribe(f)
    }

    /// True while the DDP session is up.
    pub fn connected(&self) -> bool {
        self.status().connected
    }

    /// The session id given by the server; `None` while not connected, new
    /// after every reconnect.
    pub fn id(&self) -> Option<String> {
        self.driver.session.get()
    }

    /// The session id as a signal.
    pub fn id_signal(&self) -> impl Signal<Item = Option<String>> {
        self.driver.session.signal()
    }

    /// Retry now (does nothing while connected; not counted as a retry).
    pub fn reconnect(&self) {
        if self.driver.closed.get() {
            return;
        }
        let now = self.driver.now();
        self.driver.machine.borrow_mut().reconnect(now);
        self.driver.pump();
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
        let now = self.driver.now();
        self.driver.machine.borrow_mut().disconnect(now);
        self.driver.pump();
    }

    /// Disconnects for good and removes every browser listener; `reconnect`
    /// does nothing afterwards.
    pub fn close(&self) {
        let now = self.driver.now();
        self.driver.machine.borrow_mut().close(now);
        self.driver.pump();
        self.driver.closed.set(true);
        self.driver.page.borrow_mut().take();
        self.driver.timer.borrow_mut().take();
        self.driver.close_plugins();
        self.driver.host.release();
    }

    /// True after [`Connection::close`].
    pub fn is_closed(&self) -> bool {
        self.driver.closed.get()
    }

    /// Calls `f` for every lifecycle [`Event`] while the returned handle lives (dropping it removes the listener).
    pub fn on_event(&self, f: impl Fn(&Event) + 'static) -> ListenerHandle {
        self.driver.listeners.add(Rc::new(f))
    }

    /// How many calls are queued and in flight, now.
    pub fn outbox(&self) -> Outbox {
        self.driver.outbox.get()
    }

    /// The outbox counts as a signal (for "3 changes waiting").
    pub fn outbox_signal(&self) -> impl Signal<Item = Outbox> {
        self.driver.outbox.signal()
    }

    /// The outbox counts as an [`Observable`].
    pub fn outbox_observable(&self) -> &Observable<Outbox> {
        &self.driver.outbox
    }

    /// Registers `f` to run when a new session replaces a lost one (not on
    /// the first connection, not when the server resumed the session).
    /// Calls made inside go ahead of everything queued (e.g. a login).
    pub fn on_reconnect(&self, f: impl Fn(&Connection) + 'static) -> ListenerHandle {
        self.driver.reconnect_hooks.add(Rc::new(f))
    }

    /// The server's id of the session while connected (Meteor's
    /// `_lastSessionId`).
    pub fn session_id(&self) -> Option<String> {
        self.driver.machine.borrow().session().map(str::to_owned)
    }

    /// Whether the last `connected` resumed the previous session (this
    /// connection's, or, with [`Options::persist`], an earlier page's).
    pub fn resumed(&self) -> bool {
        self.driver.machine.borrow().resumed()
    }

    /// How many browser event listeners this connection holds on the page
    /// (4 while watching the page, 0 after `close()`): for leak checks.
    pub fn page_listener_count(&self) -> usize {
        self.driver.page.borrow().as_ref().map_or(0, |(_, n)| *n)
    }
}
