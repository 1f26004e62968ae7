//! The connection lifecycle as a pure state machine.
//!
//! [`Machine`] does no I/O and never reads the clock: the driver hands it
//! input (a socket opened, a frame arrived, "it is now T") and pulls output
//! ([`Output`]: open a socket, send a frame, close a socket, an event for the
//! app) and the next deadline ([`Machine::poll_timeout`]). Every socket the
//! machine asks for carries a number; input about any other socket is stale
//! and ignored, so a late event from a socket already given up can never
//! disturb the current one.

use super::message::{parse_frame, ClientMessage, Frame, FrameError, ServerMessage};
use super::retry::RetryPolicy;
use super::status::{ConnectionState, Status};
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;

mod methods;
mod subs;
use methods::Methods;
pub use methods::{CallOptions, MethodError, Outbox, StubWrite};
use subs::Subs;

/// DDP versions this client speaks, most preferred first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["1", "pre2", "pre1"];

/// Settings of the lifecycle. Times are in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Versions offered in `support`, most preferred first; each must be one
    /// of [`SUPPORTED_VERSIONS`].
    pub versions: Vec<String>,
    /// Idle time after which a ping is sent (0 disables the heartbeat).
    pub heartbeat_interval_ms: f64,
    /// Time a ping may go unanswered before the link counts as dead.
    pub heartbeat_timeout_ms: f64,
    /// Time from opening a socket to the server's `connected` (0: no limit).
    pub connect_timeout_ms: f64,
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// Give up after this many automatic retries in a row (`None`: never).
    pub max_retries: Option<u32>,
    /// The largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Most method calls outstanding at once (queued or in flight).
    pub max_pending_calls: usize,
    /// Most bytes of method arguments outstanding at once.
    pub max_pending_bytes: usize,
    /// Ask the server to resume the previous session after a drop.
    pub resume_sessions: bool,
    /// Collections that carry a stream of messages, not documents: their
    /// `added` messages are delivered as [`Event::Stream`] at once (never
    /// stored, never held back after a reconnect); `changed` and `removed`
    /// in them are ignored. None by default; the rooms plug-in
    /// (`crate::rooms`) adds `rooms.inbox` ([`Machine::add_stream_collection`]).
    pub stream_collections: Vec<String>,
    /// Report every call as it enters the outbox ([`Completion::CallQueued`]),
    /// for a durable outbox to keep (off: no output per call).
    pub journal_calls: bool,
    /// Send no call until [`Machine::release_calls`]: a durable outbox
    /// reading what an earlier page left restores it first, so that it goes
    /// out ahead of the calls made since.
    pub hold_calls: bool,
    /// A durable outbox that keeps the session for the next page: the
    /// `connect` waits for [`Machine::release_connect`] (which may hand over
    /// an earlier page's session to resume),
    /// [`Completion::SessionChanged`] reports when the session or its
    /// subscriptions change ([`Machine::session_record`]), and method ids
    /// start from a random base (a multiple of 2^20 below 2^52), so that
    /// two pages in one session never give the same id (a server that
    /// resumes sessions would take the second for a re-send).
    pub adopt_sessions: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
            heartbeat_interval_ms: 17_500.0,
            heartbeat_timeout_ms: 15_000.0,
            connect_timeout_ms: 10_000.0,
            retry: RetryPolicy::default(),
            max_retries: None,
            max_frame_bytes: 16 * 1024 * 1024,
            max_pending_calls: 10_000,
            max_pending_bytes: 16 * 1024 * 1024,
            resume_sessions: true,
            stream_collections: Vec::new(),
            journal_calls: false,
            hold_calls: false,
            adopt_sessions: false,
        }
    }
}

impl Config {
    /// Checks the settings; the error names the offending option.
    pub fn validate(&self) -> Result<(), String> {
        if self.versions.is_empty() {
            return Err("versions must name at least one DDP version".into());
        }
        if let Some(v) = self.versions.iter().find(|v| !SUPPORTED_VERSIONS.contains(&v.as_str())) {
            return Err(format!("unsupported DDP version \"{v}\" (supported: 1, pre2, pre1)"));
        }
        for (name, v) in [
            ("heartbeatInterval", self.heartbeat_interval_ms),
            ("heartbeatTimeout", self.heartbeat_timeout_ms),
            ("connectTimeout", self.connect_timeout_ms),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a finite number ≥ 0, got {}", super::retry::show_number(v)));
            }
        }
        if self.heartbeat_interval_ms > 0.0 && self.heartbeat_timeout_ms <= 0.0 {
            return Err("heartbeatTimeout must be > 0 while the heartbeat is on".into());
        }
        if self.max_frame_bytes == 0 {
            return Err("maxFrameBytes must be > 0".into());
        }
        if self.max_pending_calls == 0 || self.max_pending_bytes == 0 {
            return Err("maxPendingCalls and maxPendingBytes must be > 0".into());
        }
        self.retry.validate()
    }
}

/// Why a live connection ended (the `disconnect` event's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// `disconnect()` or `close()` was called.
    ClientDisconnect,
    /// The server closed the socket cleanly (close code 1000).
    ServerDisconnect,
    /// The server did not answer a ping in time.
    PingTimeout,
    /// The socket closed without a clean close from the server (a dropped
    /// link, a restarting server, the browser going offline).
    TransportClose,
    /// The socket reported an error.
    TransportError,
}

impl DisconnectReason {
    /// The reason as a string: "client disconnect", "server disconnect",
    /// "ping timeout", "transport close", "transport error".
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientDisconnect => "client disconnect",
            DisconnectReason::ServerDisconnect => "server disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something went wrong that the connection survives (the `error` event).
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolError {
    /// A frame from the server could not be understood; it was skipped.
    Frame(FrameError),
    /// The server sent a top-level DDP `error` about one of our messages.
    Server { reason: String, offending_message: Option<Value> },
    /// A well-formed message that makes no sense now (e.g. a second `connected`).
    Unexpected(String),
    /// The server ended subscription `id` with an error (`nosub`).
    SubscriptionFailed { id: String, error: Value },
    /// A data message contradicts what the server sent before: `added` for
    /// a document it already sent (code `duplicate-document`), `changed` or
    /// `removed` for one it never sent (`unknown-document`). It is applied
    /// anyway, so the collection still ends as the server says.
    Inconsistent { msg: &'static str, collection: String, id: String },
    /// The host could not open a WebSocket (for example a URL it will
    /// not connect to); its reason. The attempt counts as a failed one.
    SocketRefused(String),
}

impl ProtocolError {
    /// A short stable code for the kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::Frame(e) => e.code(),
            ProtocolError::Server { .. } => "server-error",
            ProtocolError::Unexpected(_) => "unexpected-message",
            ProtocolError::SubscriptionFailed { .. } => "subscription-failed",
            ProtocolError::Inconsistent { msg: "added", .. } => "duplicate-document",
            ProtocolError::Inconsistent { .. } => "unknown-document",
            ProtocolError::SocketRefused(_) => "socket-refused",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(e) => e.fmt(f),
            ProtocolError::Server { reason, .. } => write!(f, "server error: {reason}"),
            ProtocolError::Unexpected(s) => write!(f, "unexpected message: {s}"),
            ProtocolError::SubscriptionFailed { error, .. } => {
                let reason =
                    error.get("reason").and_then(Value::as_str).map_or_else(|| crate::protocol::json::to_text(error), str::to_owned);
                write!(f, "subscription failed: {reason}")
            }
            ProtocolError::Inconsistent { msg: "added", collection, id } => {
                write!(f, "the server sent \"added\" for document {id} of {collection}, which it had already sent")
            }
            ProtocolError::Inconsistent { msg, collection, id } => {
                write!(f, "the server sent \"{msg}\" for document {id} of {collection}, which it never sent")
            }
            ProtocolError::SocketRefused(reason) => write!(f, "the WebSocket could not be opened: {reason}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// What happened, for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The DDP handshake completed; `session` is the connection's id.
    Connected { session: String },
    /// A connection that was up went down.
    Disconnected { reason: DisconnectReason },
    /// Attempt number `attempt` (1-based, since the link was last up) starts.
    ReconnectAttempt { attempt: u32 },
    /// Connected again after `attempts` attempts.
    Reconnected { attempts: u32 },
    /// The retry limit was reached: status is `failed`, no more retries.
    ReconnectFailed,
    /// A problem the connection survived.
    Error(ProtocolError),
    /// A message of a stream collection (see [`Config::stream_collections`]).
    Stream { collection: String, id: String, fields: serde_json::Map<String, Value> },
}

/// What the driver completes for the app's handles: a call's future, a
/// subscription's state, a collection's documents. Kept apart from
/// [`Event`] (what `on_event` listeners hear), so no layer has to list
/// which events to pass over.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// A subscription is ready (its initial documents are in the store).
    SubReady { id: String },
    /// A subscription ended: stopped by the app (`error` None) or by the
    /// server (`nosub`, with its error if any).
    SubStopped { id: String, error: Option<Value> },
    /// A document changed in the local store.
    Data(crate::protocol::store::Change),
    /// A method's `result` arrived (its writes may not be visible yet).
    MethodResult { id: u64, outcome: Result<Option<Value>, MethodError> },
    /// A method call ended: both `result` and `updated` arrived, or it failed.
    MethodDone { id: u64, outcome: Result<Option<Value>, MethodError> },
    /// A call entered the outbox (only with [`Config::journal_calls`], and
    /// not a [`CallOptions::transient`] one); [`Machine::call_record`] has
    /// what to keep of it.
    CallQueued { id: u64 },
    /// A journaled `noRetry` call was sent.
    CallSent { id: u64 },
    /// The store began (true) or ceased (false) to hold seeded documents
    /// the server has not confirmed ([`Machine::seed`]). (Not in the npm
    /// package, which cannot seed.)
    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    Stale(bool),
    /// A hold of the data (after a reconnect, or the first session after a
    /// seed) ended: what it held is applied, and the stubs' writes of the
    /// calls that ended meanwhile gave way (a durable cache reads again the
    /// documents they showed).
    #[cfg(any(feature = "leptos", feature = "persist", not(target_arch = "wasm32")))]
    HoldEnded,
    /// The session, or the subscriptions the server holds for it, changed
    /// (only with [`Config::adopt_sessions`]): [`Machine::session_record`]
    /// has what to keep now.
    SessionChanged,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a WebSocket; later input about it carries `socket`.
    OpenSocket { socket: u64 },
    /// Send a text frame on the current socket.
    Send { socket: u64, text: String },
    /// Close that socket and forget it (its later events are ignored anyway).
    CloseSocket { socket: u64 },
    /// Tell the app.
    Event(Event),
    /// Complete a call, a subscription's state, a collection's documents.
    Done(Completion),
    /// A new session replaced a lost one: run the app's `onReconnect` hooks
    /// now (method calls they make go ahead of everything queued), then
    /// call [`Machine::reconnect_hooks_done`].
    RunReconnectHooks,
}

/// What the machine is told: every input goes through [`Machine::handle`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input<'a> {
    /// Time passed (the timer the driver armed for [`Machine::poll_timeout`] fired).
    Timeout,
    /// An event of socket `.0` (from [`Output::OpenSocket`]); dropped if
    /// that socket is no longer the current one.
    Socket(u64, SocketEvent<'a>),
    /// A page or network event.
    Page(PageEvent),
}

/// What a socket delivers. A text frame is borrowed from the host's intake
/// buffer for the duration of the call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SocketEvent<'a> {
    /// The socket opened.
    Open,
    /// A text frame.
    Text(&'a str),
    /// A text frame of `len` UTF-16 code units, over the frame limit: only
    /// its first and last characters, joined by an ellipsis, were copied.
    TooLarge {
        /// The frame's length.
        len: usize,
        /// Its two ends.
        ends: &'a str,
    },
    /// A binary frame of this many bytes (DDP is text).
    Binary(usize),
    /// The socket closed with this code.
    Close(u16),
    /// A transport error (a close may follow).
    Error,
    /// The connection could not be made, and the host knows why (natively:
    /// DNS, TCP, TLS, the HTTP upgrade). Browsers never say why.
    Refused(&'a str),
}

/// Page and network events: the browser's `online`, `offline`, and a page
/// that became visible or was restored from the back/forward cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEvent {
    /// The network is back.
    Online,
    /// The network is gone.
    Offline,
    /// The page woke up: check the link now.
    Wake,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Created, not started.
    Idle,
    /// Socket requested; `deadline` is the connect timeout.
    Connecting {
        deadline: Option<f64>,
        open: bool,
    },
    Connected,
    Waiting {
        until: f64,
    },
    Offline,
    Failed {
        reason: String,
        by_retry_limit: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Heartbeat {
    interval: f64,
    timeout: f64,
    last_received: f64,
    ping_sent: Option<f64>,
}

impl Heartbeat {
    fn deadline(&self) -> f64 {
        match self.ping_sent {
            Some(t) => t + self.timeout,
            None => self.last_received + self.interval,
        }
    }
}

/// The connection lifecycle: handshake, version negotiation, heartbeat,
/// retry and status. See the module docs.
pub struct Machine {
    config: Config,
    random: Box<dyn FnMut() -> f64>,
    phase: Phase,
    /// The socket the machine is using, if any.
    socket: Option<u64>,
    next_socket: u64,
    /// The version to ask for in the next `connect`.
    version: String,
    /// Versions the server proposed during the current negotiation.
    proposed: Vec<String>,
    retry_count: u32,
    /// Attempts since the link was last up (for reconnect events).
    attempts: u32,
    /// Whether the link has been up at least once (then a new `connected`
    /// is a reconnect).
    was_connected: bool,
    session: Option<String>,
    /// The lost session to ask the server to resume, and how many
    /// messages of it arrived (not counting ping/pong).
    resume: Option<(String, u64)>,
    /// Messages received in the current session (not counting ping/pong).
    received_count: u64,
    /// Whether the last `connected` resumed the previous session.
    resumed: bool,
    /// A frame of this session could not be read: do not resume it.
    missed_data: bool,
    /// `connect` waits for [`Machine::release_connect`] ([`Config::adopt_sessions`]).
    connect_held: bool,
    /// An earlier page's session asked for, and its subscriptions (which
    /// this page stops if the server resumes it).
    adoption: Option<(String, Vec<String>)>,
    /// The current session was an earlier page's: answers to its calls
    /// (their ids from that page) may be replayed, and are not errors.
    took_over: bool,
    closed: bool,
    /// The latest time handed in: a time earlier than it means the wall
    /// clock was set back, and every deadline moves back with it.
    clock: f64,
    heartbeat: Option<Heartbeat>,
    methods: Methods,
    subs: Subs,
    out: VecDeque<Output>,
}

/// Whether this build can take over an earlier page's session (a durable
/// outbox exists in it): lets the npm core drop the code.
const ADOPTS: bool = cfg!(any(feature = "persist", not(target_arch = "wasm32")));

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("phase", &self.phase)
            .field("socket", &self.socket)
            .field("retry_count", &self.retry_count)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// A machine with these settings and a source of random numbers in
    /// `[0, 1)` (for retry jitter). Call [`Machine::start`] to begin.
    pub fn new(config: Config, random: Box<dyn FnMut() -> f64>) -> Self {
        let hold_calls = config.hold_calls;
        let connect_held = ADOPTS && config.adopt_sessions;
        let mut random = random;
        let mut methods = Methods::paused(hold_calls);
        if connect_held {
            methods.next_id = (((random)() * 4_294_967_296.0) as u64).min(u32::MAX.into()) << 20;
        }
        let version = config.versions.first().cloned().unwrap_or_else(|| SUPPORTED_VERSIONS[0].to_owned());
        Machine {
            config,
            random,
            phase: Phase::Idle,
            socket: None,
            next_socket: 0,
            version,
            proposed: Vec::new(),
            retry_count: 0,
            attempts: 0,
            was_connected: false,
            session: None,
            resume: None,
            received_count: 0,
            resumed: false,
            missed_data: false,
            connect_held,
            adoption: None,
            took_over: false,
            closed: false,
            clock: f64::NEG_INFINITY,
            heartbeat: None,
            methods,
            subs: Subs::default(),
            out: VecDeque::new(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current status.
    pub fn status(&self) -> Status {
        let (state, retry_time, reason) = match &self.phase {
            Phase::Idle | Phase::Connecting { .. } => (ConnectionState::Connecting, None, None),
            Phase::Connected => (ConnectionState::Connected, None, None),
            Phase::Waiting { until } => (ConnectionState::Waiting, Some(*until), None),
            Phase::Offline => (ConnectionState::Offline, None, None),
            Phase::Failed { reason, .. } => (ConnectionState::Failed, None, Some(reason.clone())),
        };
        Status { connected: state == ConnectionState::Connected, status: state, retry_count: self.retry_count, retry_time, reason }
    }

    /// The session id while connected.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The DDP version of the current (or next) handshake.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// True when [`Machine::poll_output`] has something to give.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// When [`Machine::handle_timeout`] must next be called (epoch ms).
    /// Calling it earlier, or more often, is harmless.
    pub fn poll_timeout(&self) -> Option<f64> {
        let link = match &self.phase {
            Phase::Connecting { deadline, .. } => *deadline,
            Phase::Waiting { until } => Some(*until),
            Phase::Connected => self.heartbeat.as_ref().map(Heartbeat::deadline),
            Phase::Idle | Phase::Offline | Phase::Failed { .. } => None,
        };
        match (link, self.methods.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the last `connected` resumed the previous session.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Takes note of the time. A time earlier than the last one means the
    /// wall clock was set back (NTP, the user, a restored VM) and nobody
    /// said by how much: every pending deadline moves back by the step seen,
    /// so a retry or a heartbeat is late by at most the time between two
    /// inputs, never by the size of the jump. A forward jump simply makes
    /// deadlines due, as after sleep.
    fn observe_clock(&mut self, now: f64) {
        if now < self.clock {
            self.shift_deadlines(self.clock - now);
        }
        self.clock = now;
    }

    /// The driver saw the wall clock set back by `by` ms (it keeps a
    /// monotonic clock beside it): every pending deadline moves back by as
    /// much, so timers keep their remaining time exactly.
    pub fn handle_clock_jump(&mut self, by: f64) {
        if by.is_finite() && by > 0.0 {
            self.shift_deadlines(by);
            self.clock -= by;
        }
    }

    fn shift_deadlines(&mut self, by: f64) {
        match &mut self.phase {
            Phase::Connecting { deadline: Some(d), .. } => *d -= by,
            Phase::Waiting { until } => *until -= by,
            _ => {}
        }
        if let Some(hb) = &mut self.heartbeat {
            hb.last_received -= by;
            if let Some(t) = hb.ping_sent.as_mut() {
                *t -= by;
            }
        }
        self.methods.shift_deadlines(by);
    }

    /// Begins the first connection attempt.
    pub fn start(&mut self, now: f64) {
        self.observe_clock(now);
        if self.phase == Phase::Idle && !self.closed {
            self.open_socket(now);
        }
    }

    /// Makes `collection` a stream collection (see
    /// [`Config::stream_collections`]) from now on; for plug-ins that need
    /// one on a connection already made.
    pub fn add_stream_collection(&mut self, collection: &str) {
        if !self.config.stream_collections.iter().any(|c| c == collection) {
            self.config.stream_collections.push(collection.to_owned());
        }
    }

    /// Takes one input: the clock is observed once, and an input about a
    /// socket that is no longer the current one is dropped here, so no
    /// handler below checks either.
    pub fn handle(&mut self, input: Input<'_>, now: f64) {
        self.observe_clock(now);
        match input {
            Input::Timeout => self.timeout(now),
            Input::Socket(socket, _) if self.socket != Some(socket) => {}
            Input::Socket(_, event) => self.socket_input(event, now),
            Input::Page(PageEvent::Online) => match self.phase {
                // Retry at once, unless the user chose to be offline or the
                // server speaks a version we cannot.
                Phase::Waiting { .. } | Phase::Failed { by_retry_limit: true, .. } => self.reconnect(now),
                Phase::Connected => self.check_liveness(now),
                _ => {}
            },
            Input::Page(PageEvent::Offline) => {
                if matches!(self.phase, Phase::Connected | Phase::Connecting { .. }) {
                    self.lose(now, Some(DisconnectReason::TransportClose));
                }
            }
            Input::Page(PageEvent::Wake) => {
                // Fire what is overdue, then make sure the link is alive.
                self.timeout(now);
                if self.phase == Phase::Connected {
                    self.check_liveness(now);
                }
            }
        }
    }

    /// Time has passed: fire whatever deadline is due.
    fn timeout(&mut self, now: f64) {
        self.expire_methods(now);
        match self.phase {
            Phase::Connecting { deadline: Some(d), .. } if now >= d => {
                // Never reached `connected`: not a disconnect, just a failed attempt.
                self.lose(now, None);
            }
            Phase::Waiting { until } if now >= until => {
                self.retry_count = self.retry_count.saturating_add(1);
                self.attempts = self.attempts.saturating_add(1);
                self.emit(Event::ReconnectAttempt { attempt: self.attempts });
                self.open_socket(now);
            }
            Phase::Connected => self.heartbeat_tick(now),
            _ => {}
        }
    }

    /// An event of the current socket.
    fn socket_input(&mut self, event: SocketEvent<'_>, now: f64) {
        match event {
            SocketEvent::Open => {
                // Start the DDP handshake.
                if let Phase::Connecting { open, .. } = &mut self.phase {
                    *open = true;
                    if !self.connect_held {
                        self.send_connect();
                    }
                }
            }
            SocketEvent::Text(text) => {
                self.frame_arrived(now);
                let parsed = parse_frame(text, self.config.max_frame_bytes);
                if self.phase == Phase::Connected
                    && !matches!(parsed, Ok(Frame::Message(ServerMessage::Ping { .. } | ServerMessage::Pong { .. })))
                {
                    // What a resuming server counts: every message it sent in the
                    // session but heartbeats.
                    self.received_count += 1;
                }
                match parsed {
                    Ok(Frame::ServerId) => {}
                    Ok(Frame::Message(m)) => self.handle_message(m, now),
                    Err(e) => self.unreadable_frame(text, e),
                }
            }
            // Too large to read: the host checked its length before copying
            // it, and hands over only its first and last few hundred
            // characters (`ends`), enough to tell which call a `result` was
            // for. It counts as a received message.
            SocketEvent::TooLarge { len, ends } => {
                self.frame_arrived(now);
                if self.phase == Phase::Connected {
                    self.received_count += 1;
                }
                self.unreadable_frame(ends, FrameError::TooLarge { len, max: self.config.max_frame_bytes });
            }
            // DDP is text only: reported, skipped.
            SocketEvent::Binary(len) => {
                self.frame_arrived(now);
                self.emit(Event::Error(ProtocolError::Frame(FrameError::Binary { len })));
            }
            // A close always follows an error in browsers; the machine does
            // not wait for it.
            SocketEvent::Error => self.lose(now, Some(DisconnectReason::TransportError)),
            SocketEvent::Close(code) => {
                let reason = if code == 1000 { DisconnectReason::ServerDisconnect } else { DisconnectReason::TransportClose };
                self.lose(now, Some(reason));
                // 1009, Message Too Big: what it refused would be refused again.
                if code == 1009 {
                    self.refuse_largest();
                }
            }
            // The socket could not even be opened: the app hears why, and the
            // attempt failed.
            SocketEvent::Refused(reason) => {
                self.emit(Event::Error(ProtocolError::SocketRefused(reason.to_owned())));
                self.lose(now, Some(DisconnectReason::TransportError));
            }
        }
    }

    fn send_connect(&mut self) {
        let (session, received_count) = match &self.resume {
            Some((s, n)) if self.config.resume_sessions => (Some(s.clone()), Some(*n)),
            _ => (None, None),
        };
        let connect =
            ClientMessage::Connect { session, version: self.version.clone(), support: self.config.versions.clone(), received_count };
        self.send(connect);
    }

    /// Lets the handshake begin ([`Config::adopt_sessions`]), asking the
    /// server to resume `adopt`, an earlier page's session, if this machine
    /// has none of its own to resume. If the server resumes it, the earlier page's subscriptions
    /// are stopped first and their documents, replayed or removed, never
    /// reach the store: the data starts as in a new session, while calls
    /// the server already read are not run again (their results are
    /// replayed to the calls restored with their ids,
    /// [`Machine::restore_calls`]).
    pub fn release_connect(&mut self, adopt: Option<crate::protocol::durable::SessionRecord>, now: f64) {
        self.observe_clock(now);
        if !std::mem::take(&mut self.connect_held) {
            return;
        }
        if let Some(a) = adopt.filter(|_| self.resume.is_none() && !self.was_connected && self.config.resume_sessions) {
            self.resume = Some((a.session.clone(), a.received));
            self.adoption = Some((a.session, a.subs));
        }
        if matches!(self.phase, Phase::Connecting { open: true, .. }) {
            self.send_connect();
        }
    }

    /// What a durable outbox keeps of the session for the next page (`at`
    /// left 0): the current session, or the lost one to resume; `None` when
    /// there is nothing a next page could resume.
    pub fn session_record(&self) -> Option<crate::protocol::durable::SessionRecord> {
        let (session, received) = match (&self.session, &self.resume) {
            (Some(s), _) if !self.missed_data => (s.clone(), self.received_count),
            (None, Some((s, n))) => (s.clone(), *n),
            _ => return None,
        };
        // (An earlier page's subscriptions not stopped yet are this
        // session's too: the next page stops them.)
        let mut subs = self.server_sub_ids();
        subs.extend(self.adoption.iter().flat_map(|(_, s)| s.iter().cloned()));
        Some(crate::protocol::durable::SessionRecord { session, received, subs, at: 0.0 })
    }

    /// A frame came: any frame at all, even one we cannot read, proves the
    /// link is alive.
    fn frame_arrived(&mut self, now: f64) {
        if let Some(hb) = &mut self.heartbeat {
            hb.last_received = now;
            hb.ping_sent = None;
        }
    }

    /// A frame of the session could not be read: the call whose `result` it
    /// was fails, the app hears of it, and, since it may have carried data
    /// the store now lacks, the session is not resumed after a drop (a new
    /// session re-sends every subscription's documents and the store is
    /// reconciled with them).
    fn unreadable_frame(&mut self, text: &str, error: FrameError) {
        if self.phase == Phase::Connected {
            self.salvage_result(text, &error);
            if ADOPTS && !self.missed_data && self.config.adopt_sessions {
                self.complete(Completion::SessionChanged);
            }
            self.missed_data = true;
        }
        self.emit(Event::Error(ProtocolError::Frame(error)));
    }

    /// Shorthand for [`Machine::handle`] with [`Input::Timeout`].
    pub fn handle_timeout(&mut self, now: f64) {
        self.handle(Input::Timeout, now);
    }

    /// Shorthand: socket `socket` opened.
    pub fn handle_open(&mut self, socket: u64, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::Open), now);
    }

    /// Shorthand: a text frame arrived.
    pub fn handle_frame(&mut self, socket: u64, text: &str, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::Text(text)), now);
    }

    /// Shorthand: a text frame of `len` UTF-16 code units, too large to read.
    pub fn handle_oversized_frame(&mut self, socket: u64, len: usize, ends: &str, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::TooLarge { len, ends }), now);
    }

    /// Shorthand: a binary frame arrived.
    pub fn handle_binary(&mut self, socket: u64, len: usize, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::Binary(len)), now);
    }

    /// Shorthand: the socket reported an error.
    pub fn handle_transport_error(&mut self, socket: u64, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::Error), now);
    }

    /// Shorthand: the socket closed with this close code.
    pub fn handle_close(&mut self, socket: u64, code: u16, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::Close(code)), now);
    }

    /// Shorthand: the socket could not be opened, for `reason`.
    pub fn handle_open_failed(&mut self, socket: u64, reason: String, now: f64) {
        self.handle(Input::Socket(socket, SocketEvent::Refused(&reason)), now);
    }

    /// Retry now. Does nothing while connected. A manual retry is not
    /// counted in `retry_count`; it leaves `failed` and `offline` too.
    pub fn reconnect(&mut self, now: f64) {
        self.observe_clock(now);
        if self.closed {
            return;
        }
        match self.phase {
            Phase::Connected => {}
            Phase::Connecting { .. } => {
                self.drop_socket();
                self.attempts = self.attempts.saturating_add(1);
                self.emit(Event::ReconnectAttempt { attempt: self.attempts });
                self.open_socket(now);
            }
            Phase::Idle => self.open_socket(now),
            Phase::Waiting { .. } | Phase::Offline | Phase::Failed { .. } => {
                if matches!(self.phase, Phase::Failed { .. }) {
                    // A fresh start: the retry budget and negotiation begin anew.
                    self.retry_count = 0;
                    self.proposed.clear();
                    if let Some(first) = self.config.versions.first() {
                        self.version = first.clone();
                    }
                }
                self.attempts = self.attempts.saturating_add(1);
                self.emit(Event::ReconnectAttempt { attempt: self.attempts });
                self.open_socket(now);
            }
        }
    }

    /// Close the link and stay offline until [`Machine::reconnect`].
    pub fn disconnect(&mut self, _now: f64) {
        self.observe_clock(_now);
        if self.phase == Phase::Connected {
            // Tell a resuming server to end the session now rather than
            // hold it for a grace period. Sent to every server: none says
            // in advance whether it resumes, and one that does not (Meteor
            // ≤ 3.4) answers "Bad request" to a socket dropped just below.
            self.send(ClientMessage::Disconnect);
            self.emit(Event::Disconnected { reason: DisconnectReason::ClientDisconnect });
        }
        self.drop_socket();
        self.session = None;
        self.resume = None;
        self.missed_data = false;
        self.heartbeat = None;
        self.retry_count = 0;
        self.phase = Phase::Offline;
    }

    /// Shorthand: the network is back.
    pub fn handle_online(&mut self, now: f64) {
        self.handle(Input::Page(PageEvent::Online), now);
    }

    /// Shorthand: the network is gone (the link is treated as lost).
    pub fn handle_offline(&mut self, now: f64) {
        self.handle(Input::Page(PageEvent::Offline), now);
    }

    /// Shorthand: the page woke (visible again, or restored from the
    /// back/forward cache).
    pub fn handle_wake(&mut self, now: f64) {
        self.handle(Input::Page(PageEvent::Wake), now);
    }

    fn check_liveness(&mut self, now: f64) {
        let Some(hb) = &mut self.heartbeat else { return };
        if hb.ping_sent.is_none() {
            hb.ping_sent = Some(now);
            self.send(ClientMessage::Ping { id: None });
        }
    }

    fn heartbeat_tick(&mut self, now: f64) {
        let Some(hb) = &mut self.heartbeat else { return };
        match hb.ping_sent {
            Some(sent) if now >= sent + hb.timeout => self.lose(now, Some(DisconnectReason::PingTimeout)),
            Some(_) => {}
            None if now >= hb.last_received + hb.interval => {
                hb.ping_sent = Some(now);
                self.send(ClientMessage::Ping { id: None });
            }
            None => {}
        }
    }

    fn handle_message(&mut self, message: ServerMessage, now: f64) {
        match message {
            ServerMessage::Connected { session } => {
                if !matches!(self.phase, Phase::Connecting { open: true, .. }) {
                    self.emit(Event::Error(ProtocolError::Unexpected("\"connected\" outside the handshake".into())));
                    return;
                }
                self.phase = Phase::Connected;
                self.proposed.clear();
                self.retry_count = 0;
                let previous = self.resume.take();
                self.resumed = previous.as_ref().is_some_and(|(p, _)| *p == session);
                if !self.resumed {
                    self.received_count = 0;
                }
                let adopted = if ADOPTS { self.adoption.take().filter(|(s, _)| self.resumed && *s == session) } else { None };
                self.session = Some(session.clone());
                self.heartbeat = (self.config.heartbeat_interval_ms > 0.0 && self.version != "pre1").then_some(Heartbeat {
                    interval: self.config.heartbeat_interval_ms,
                    timeout: self.config.heartbeat_timeout_ms,
                    last_received: now,
                    ping_sent: None,
                });
                self.emit(Event::Connected { session });
                if self.was_connected || self.attempts > 0 {
                    self.emit(Event::Reconnected { attempts: self.attempts });
                }
                let reconnect = self.was_connected;
                self.was_connected = true;
                self.attempts = 0;
                // An earlier page's session: its subscriptions stop before
                // anything of this page's is sent.
                let fresh_data = !self.resumed || adopted.is_some();
                self.took_over = adopted.is_some() || (self.took_over && self.resumed);
                if ADOPTS && !self.took_over {
                    self.forget_orphans();
                }
                if ADOPTS && !self.resumed {
                    self.forget_adopted_subs();
                }
                if let Some((_, subs)) = adopted {
                    self.drop_adopted_subs(subs);
                }
                let resent = self.methods_on_connected(reconnect);
                // What was given up on the old socket cannot be refused on this one.
                self.methods.abandoned = 0;
                self.subs_on_connected(reconnect, resent, fresh_data);
                if ADOPTS && self.config.adopt_sessions {
                    self.complete(Completion::SessionChanged);
                }
            }
            ServerMessage::Failed { version } => {
                if !matches!(self.phase, Phase::Connecting { .. }) {
                    self.emit(Event::Error(ProtocolError::Unexpected("\"failed\" outside the handshake".into())));
                    return;
                }
                let acceptable = self.config.versions.contains(&version) && !self.proposed.contains(&version) && version != self.version;
                if acceptable {
                    // Adopt the server's suggestion and try again at once
                    // (not a retry: nothing was lost).
                    // Remember both sides of the switch, so a server that
                    // flip-flops cannot keep us reconnecting forever.
                    let old = std::mem::replace(&mut self.version, version.clone());
                    self.proposed.push(old);
                    self.proposed.push(version);
                    self.drop_socket();
                    self.open_socket(now);
                } else {
                    self.drop_socket();
                    self.heartbeat = None;
                    self.phase = Phase::Failed {
                        reason: format!("DDP version negotiation failed; server requested version {version}"),
                        by_retry_limit: false,
                    };
                }
            }
            ServerMessage::Ping { id } => self.send(ClientMessage::Pong { id }),
            ServerMessage::Pong { .. } => {}
            ServerMessage::Error { reason, offending_message } => {
                self.emit(Event::Error(ProtocolError::Server { reason, offending_message }))
            }
            ServerMessage::Result { id, outcome } if self.phase == Phase::Connected => self.method_result(&id, outcome),
            ServerMessage::Updated { methods } if self.phase == Phase::Connected => {
                for id in &methods {
                    self.method_updated(id);
                    self.subs_method_updated(id);
                }
            }
            data @ (ServerMessage::Added { .. }
            | ServerMessage::Changed { .. }
            | ServerMessage::Removed { .. }
            | ServerMessage::AddedBefore { .. }
            | ServerMessage::MovedBefore { .. }
            | ServerMessage::Ready { .. }
            | ServerMessage::NoSub { .. })
                if self.phase == Phase::Connected =>
            {
                self.handle_data(data)
            }
            _ => self.emit(Event::Error(ProtocolError::Unexpected("data before \"connected\"".into()))),
        }
    }

    /// The link is gone (or an attempt failed): close the socket and plan
    /// the next attempt, or give up when the retry limit is reached.
    fn lose(&mut self, now: f64, reason: Option<DisconnectReason>) {
        if self.phase == Phase::Connected {
            if let Some(reason) = reason {
                self.emit(Event::Disconnected { reason });
            }
        }
        self.drop_socket();
        if let Some(s) = self.session.take() {
            if !std::mem::take(&mut self.missed_data) {
                self.resume = Some((s, self.received_count));
            } else if ADOPTS && self.config.adopt_sessions {
                // Not resumable: no next page may try.
                self.complete(Completion::SessionChanged);
            }
        }
        self.heartbeat = None;
        if let Some(max) = self.config.max_retries {
            if self.retry_count >= max {
                self.phase = Phase::Failed { reason: format!("gave up after {max} reconnect attempts"), by_retry_limit: true };
                self.emit(Event::ReconnectFailed);
                return;
            }
        }
        let delay = self.config.retry.delay_ms(self.retry_count, (self.random)());
        self.phase = Phase::Waiting { until: now + delay };
    }

    fn open_socket(&mut self, now: f64) {
        self.drop_socket();
        self.next_socket += 1;
        let socket = self.next_socket;
        self.socket = Some(socket);
        let deadline = (self.config.connect_timeout_ms > 0.0).then_some(now + self.config.connect_timeout_ms);
        self.phase = Phase::Connecting { deadline, open: false };
        self.out.push_back(Output::OpenSocket { socket });
    }

    fn drop_socket(&mut self) {
        if let Some(socket) = self.socket.take() {
            self.out.push_back(Output::CloseSocket { socket });
        }
    }

    fn send(&mut self, message: ClientMessage) {
        if let Some(socket) = self.socket {
            self.out.push_back(Output::Send { socket, text: message.encode() });
        }
    }

    fn emit(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    fn complete(&mut self, done: Completion) {
        self.out.push_back(Output::Done(done));
    }
}

#[cfg(test)]
mod tests;
