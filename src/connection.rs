//! The public Rust API: [`connect`] and [`Connection`].
//!
//! A `Connection` is the browser driver around the pure
//! [`Machine`](crate::protocol::machine::Machine): it moves socket events,
//! page events and time into the machine and carries its output out to the
//! socket, the status signal and event listeners.

use crate::browser::{self, PageEvent, PageWatch, Socket, SocketEvent};
use crate::error::Error;
use crate::protocol::machine::{Config, Event, Machine, Output};
use crate::protocol::retry::RetryPolicy;
use crate::protocol::status::Status;
use crate::protocol::url::websocket_url;
use crate::reactive::{ListenerHandle, Observable};
use futures_signals::signal::Signal;
use gloo_timers::callback::Timeout;
use std::cell::{Cell, RefCell};
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
        };
        config.validate().map_err(Error::InvalidOptions)?;
        Ok(config)
    }
}

type EventListener = Rc<dyn Fn(&Event)>;

struct Inner {
    url: String,
    machine: RefCell<Machine>,
    socket: RefCell<Option<(u64, Socket)>>,
    /// The pending timer and the time it fires at.
    timer: RefCell<Option<(f64, Timeout)>>,
    page: RefCell<Option<PageWatch>>,
    status: Observable<Status>,
    session: Observable<Option<String>>,
    listeners: RefCell<Vec<(u64, EventListener)>>,
    next_listener: Cell<u64>,
    closed: Cell<bool>,
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
/// ```no_run
/// # fn main() -> Result<(), ddp_live::Error> {
/// let conn = ddp_live::connect("localhost:3000", ddp_live::Options::default())?;
/// assert_eq!(conn.url(), "ws://localhost:3000/websocket");
/// # Ok(()) }
/// ```
pub fn connect(url: &str, options: Options) -> Result<Connection, Error> {
    let url = websocket_url(url)?;
    let config = options.to_config()?;
    let machine = Machine::new(config, Box::new(browser::random));
    let status = Observable::new(machine.status());
    let inner = Rc::new(Inner {
        url,
        machine: RefCell::new(machine),
        socket: RefCell::new(None),
        timer: RefCell::new(None),
        page: RefCell::new(None),
        status,
        session: Observable::new(None),
        listeners: RefCell::new(Vec::new()),
        next_listener: Cell::new(0),
        closed: Cell::new(false),
    });
    if options.watch_page {
        let weak = Rc::downgrade(&inner);
        *inner.page.borrow_mut() = Some(PageWatch::new(move |e| {
            if let Some(inner) = weak.upgrade() {
                inner.page_event(e);
            }
        }));
    }
    inner.machine.borrow_mut().start(browser::now());
    inner.pump();
    Ok(Connection { inner })
}

impl Connection {
    /// The WebSocket URL in use.
    pub fn url(&self) -> &str {
        &self.inner.url
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

    /// Calls `f` on every status change until the handle is stopped.
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
        self.inner.machine.borrow_mut().reconnect(browser::now());
        self.inner.pump();
    }

    /// Closes the link and stays `offline` until [`Connection::reconnect`].
    pub fn disconnect(&self) {
        self.inner.machine.borrow_mut().disconnect(browser::now());
        self.inner.pump();
    }

    /// Disconnects for good and removes every browser listener; `reconnect`
    /// does nothing afterwards.
    pub fn close(&self) {
        self.disconnect();
        self.inner.closed.set(true);
        self.inner.page.borrow_mut().take();
        self.inner.timer.borrow_mut().take();
    }

    /// True after [`Connection::close`].
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Calls `f` for every lifecycle [`Event`] until the handle is stopped.
    pub fn on_event(&self, f: impl Fn(&Event) + 'static) -> ListenerHandle {
        let id = self.inner.next_listener.get();
        self.inner.next_listener.set(id + 1);
        self.inner.listeners.borrow_mut().push((id, Rc::new(f)));
        let weak = Rc::downgrade(&self.inner);
        ListenerHandle::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.listeners.borrow_mut().retain(|(i, _)| *i != id);
            }
        })
    }

    /// How many browser event listeners this connection holds on the page
    /// (4 while watching the page, 0 after `close()`): for leak checks.
    pub fn page_listener_count(&self) -> usize {
        self.inner.page.borrow().as_ref().map_or(0, PageWatch::len)
    }
}

impl Inner {
    /// Carries the machine's output out, until there is none. No borrow is
    /// held while app code runs, so listeners may call back into the
    /// connection.
    fn pump(self: &Rc<Self>) {
        loop {
            let next = self.machine.borrow_mut().poll_output();
            let Some(output) = next else { break };
            match output {
                Output::OpenSocket { socket } => self.open_socket(socket),
                Output::Send { socket, text } => {
                    let result = match self.socket.borrow().as_ref() {
                        Some((id, s)) if *id == socket => s.send(&text),
                        _ => Ok(()),
                    };
                    if result.is_err() {
                        self.machine.borrow_mut().handle_transport_error(socket, browser::now());
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
                Output::Event(event) => {
                    // The status is current before any listener hears of the event.
                    self.publish();
                    self.dispatch(&event);
                }
            }
        }
        self.publish();
        self.reschedule();
    }

    fn publish(&self) {
        let (status, session) = {
            let m = self.machine.borrow();
            (m.status(), m.session().map(str::to_owned))
        };
        self.session.set(session);
        self.status.set(status);
    }

    fn dispatch(&self, event: &Event) {
        let listeners: Vec<EventListener> = self.listeners.borrow().iter().map(|(_, l)| l.clone()).collect();
        for l in listeners {
            l(event);
        }
    }

    fn open_socket(self: &Rc<Self>, socket: u64) {
        let weak: Weak<Inner> = Rc::downgrade(self);
        let opened = Socket::open(&self.url, move |e| {
            if let Some(inner) = weak.upgrade() {
                inner.socket_event(socket, e);
            }
        });
        match opened {
            Ok(s) => *self.socket.borrow_mut() = Some((socket, s)),
            Err(_) => self.machine.borrow_mut().handle_open_failed(socket, browser::now()),
        }
    }

    fn socket_event(self: &Rc<Self>, socket: u64, event: SocketEvent) {
        let now = browser::now();
        {
            let mut m = self.machine.borrow_mut();
            match event {
                SocketEvent::Open => m.handle_open(socket, now),
                SocketEvent::Text(text) => m.handle_frame(socket, &text, now),
                SocketEvent::Binary(len) => m.handle_binary(socket, len, now),
                SocketEvent::Close(code) => m.handle_close(socket, code, now),
                SocketEvent::Error => m.handle_transport_error(socket, now),
            }
        }
        self.pump();
    }

    fn page_event(self: &Rc<Self>, event: PageEvent) {
        let now = browser::now();
        {
            let mut m = self.machine.borrow_mut();
            match event {
                PageEvent::Online => m.handle_online(now),
                PageEvent::Offline => m.handle_offline(now),
                PageEvent::Wake => m.handle_wake(now),
            }
        }
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
        let deadline = self.machine.borrow().poll_timeout();
        let mut timer = self.timer.borrow_mut();
        match deadline {
            None => *timer = None,
            Some(at) => {
                if timer.as_ref().is_some_and(|(t, _)| *t <= at) {
                    return;
                }
                let delay = (at - browser::now()).clamp(0.0, i32::MAX as f64) as u32;
                let weak = Rc::downgrade(self);
                *timer = Some((
                    at,
                    Timeout::new(delay, move || {
                        if let Some(inner) = weak.upgrade() {
                            inner.timer.borrow_mut().take();
                            inner.machine.borrow_mut().handle_timeout(browser::now());
                            inner.pump();
                        }
                    }),
                ));
            }
        }
    }
}
