//! `ddp-test-server`: a small native DDP server for ddp-live's end-to-end
//! tests and demo.
//!
//! - Speaks DDP as Meteor 3's server does (checked against Meteor's
//!   livedata_server.js and the Meteor fixture): version negotiation
//!   (configurable versions; `failed`, then a close 1000 "Normal closure"),
//!   heartbeats (configurable; pings without an id, any message counts as
//!   the pong, a silent client is closed with 1000; none in `pre1`, where
//!   `ping`/`pong` are unknown messages; without a heartbeat a socket with
//!   no traffic for 45 s is cut), 17-character session ids, a
//!   client's close frame answered, the top-level `error` replies for bad
//!   frames (no offending message for text that is not a JSON object),
//!   404s for unknown methods and publications, numbers as JavaScript
//!   writes them. A session's `method`, `sub`, `unsub` and unknown messages
//!   are handled one at a time in the order they came (a `sub` waits for a
//!   slow method unless it unblocks); pings are answered at once.
//! - Session resumption (Meteor 3.5's, an extension of Meteor 3.0): a
//!   dropped session is held for a grace period and a client that sends
//!   `connect` with `session` and `receivedCount` gets it back, with what
//!   it missed replayed and re-sent method ids never run twice. A client
//!   that sent `disconnect` (which Meteor answers "Bad request", as here)
//!   or a session closed by the server is not held.
//! - Bounded: each socket's outgoing queue ([`Config::max_queued_bytes`])
//!   and each session's replay history ([`Config::history_bytes`]); a
//!   client that stops reading is cut by the heartbeat (or when its queue
//!   overflows), and a session's worker and tasks end with it.
//! - A server-side API in the style of Meteor's `Meteor.onConnection`:
//!   [`Server::on_connection`] gives a [`ServerConnection`] with `id`,
//!   `close()`, `on_close()`, `client_address` and `http_headers`.
//! - Serves static files (the demo page, the built npm package).
//! - Fault injection through a control endpoint, per *scenario* so that
//!   tests running side by side cannot disturb each other: a client that
//!   connects to `/t/<scenario>/websocket` is steered by
//!   `POST /control/<scenario>/<action>` (the plain `/websocket` endpoint is
//!   scenario `default`). Actions: `drop` (cut every socket without a close
//!   frame), `refuse?on=true|false` (answer new sockets with HTTP 503),
//!   `silent?on=true|false` (keep sockets open but send and answer nothing),
//!   `versions?v=a,b` (the versions the server speaks; empty resets),
//!   `frame?text=T&pad=N` (a raw text frame to every socket, `$PAD` in `T`
//!   replaced by `N` x's), `drop-on?msg=K` (cut the socket, without a close
//!   frame, when the next client frame of kind `K` arrives, before it is
//!   read: `K` is a `msg` such as `sub`, `unsub`, `method`, or a method's
//!   name such as `login` or `rooms.join`; once, then disarmed; an empty
//!   `K` disarms),
//!   `disconnect` (close every socket cleanly, 1000 "Normal closure"; the
//!   sessions end), `resume?on=true|false` (hold dropped sessions for
//!   resumption, default on), `grace?ms=N` (how long), `reset`,
//!   `executions` (method runs and counters), and `stats`: `connections`
//!   (open sockets), `sessions` (ids held), `accepted`, `refuse`, `silent`,
//!   `liveSessions` (sessions of the whole server not yet freed),
//!   `tasks` (the runtime's live tasks), `members` (with `?room=r`),
//!   `subscriptions` (live in the scenario's sessions), `subRequests` and
//!   `unsubRequests` (the `sub` and `unsub` messages handled).

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

mod accounts;
mod methods;
mod publications;
pub mod random;
pub mod rooms;
pub use rooms::{JoinRequest, RoomConnection, RoomHooks};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// The versions a Meteor server speaks, preferred first.
pub const DEFAULT_VERSIONS: [&str; 3] = ["1", "pre2", "pre1"];

use random::UNMISTAKABLE as ID_ALPHABET;

/// Request headers a connection may see (Meteor's whitelist; never cookies).
pub const HEADER_WHITELIST: [&str; 14] = [
    "referer",
    "x-client-ip",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-cluster-client-ip",
    "via",
    "x-real-ip",
    "x-forwarded-proto",
    "x-ssl",
    "dnt",
    "host",
    "user-agent",
    "accept-language",
];

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Versions spoken, preferred first.
    pub versions: Vec<String>,
    /// Idle time before the server pings (zero disables its heartbeat).
    pub heartbeat_interval: Duration,
    /// How long a server ping may go unanswered.
    pub heartbeat_timeout: Duration,
    /// Without a heartbeat (before `connect`, in `pre1`, or with the
    /// heartbeat off), a socket with no traffic either way for this long
    /// is cut, as Meteor's 45 s socket timeout does (zero disables).
    pub idle_timeout: Duration,
    /// `HTTP_FORWARDED_COUNT`: proxies in front of the server.
    pub forwarded_count: usize,
    /// Static directories: (URL prefix, directory). A prefix of "/" serves
    /// everything no other route takes.
    pub mounts: Vec<(String, PathBuf)>,
    /// The largest message accepted from a client: a larger one closes the
    /// socket with 1009 (Message Too Big), as Meteor's driver does past its
    /// limit, after the closing handshake.
    pub max_message_bytes: usize,
    /// How long a dropped session waits for its client to resume it.
    pub grace: Duration,
    /// The most a socket's outgoing queue holds (bytes): a client that
    /// reads slower than the server writes is cut past it.
    pub max_queued_bytes: usize,
    /// The most a session keeps for replay after a resumption (bytes; also
    /// at most 10,000 messages).
    pub history_bytes: usize,
    /// Room hooks and middleware (default: [`RoomHooks::chat`]).
    pub rooms: RoomHooks,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            versions: DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect(),
            heartbeat_interval: Duration::from_millis(15_000),
            heartbeat_timeout: Duration::from_millis(15_000),
            idle_timeout: Duration::from_secs(45),
            forwarded_count: 0,
            mounts: Vec::new(),
            max_message_bytes: 1 << 20,
            grace: Duration::from_secs(15),
            max_queued_bytes: 16 << 20,
            history_bytes: 16 << 20,
            rooms: RoomHooks::chat(),
        }
    }
}

/// A random 17-character id, as Meteor's `Random.id()` makes.
pub fn random_id() -> String {
    let mut rng = rand::rng();
    (0..17).map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char).collect()
}

/// Meteor's rule for a connection's `clientAddress`: with
/// `forwarded_count = n > 0`, entry `len − n` of `x-forwarded-for` (none if
/// there are fewer than `n` entries or no header); with `n = 0`, the
/// socket's peer address.
pub fn client_address(peer: Option<SocketAddr>, forwarded_for: Option<&str>, forwarded_count: usize) -> Option<String> {
    if forwarded_count == 0 {
        return peer.map(|a| a.ip().to_string());
    }
    let entries: Vec<&str> = forwarded_for?.trim().split(',').map(str::trim).collect();
    if forwarded_count > entries.len() {
        return None;
    }
    Some(entries[entries.len() - forwarded_count].to_owned())
}

/// The whitelisted request headers, lower-case names (never cookies).
pub fn whitelisted_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    HEADER_WHITELIST
        .iter()
        .filter_map(|name| {
            let v = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), v.to_owned()))
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the test server down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a socket's writer sends, in order.
#[derive(Debug)]
enum Out {
    Text(String),
    /// A close frame (code, reason), after everything queued before it.
    Close(u16, String),
}

/// A socket's outgoing queue. Bounded in bytes: frames wait here for the
/// socket's writer task, and a client that stops reading can make the
/// server hold at most [`Config::max_queued_bytes`] for it: past that the
/// socket is cut (the session is then held for resumption like after any
/// drop). Bulk producers (a publication's initial documents) wait for room
/// instead ([`Outbox::room`]).
struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    /// Bytes queued and not yet flushed to the socket.
    queued: AtomicUsize,
    limit: usize,
    /// The writer made room, or the socket ended.
    room: Notify,
    /// Cut the socket now, ahead of the queue (overflow, fault injection).
    cut: Notify,
    /// The socket is cut or gone: nothing more is queued.
    ended: AtomicBool,
    /// When the writer last flushed frames to the socket.
    last_write: Mutex<Instant>,
}

impl Outbox {
    fn new(limit: usize) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            room: Notify::new(),
            cut: Notify::new(),
            ended: AtomicBool::new(false),
            last_write: Mutex::new(Instant::now()),
        };
        (Arc::new(outbox), rx)
    }

    /// Queues a text frame; a frame that would take the queue past its
    /// limit cuts the socket instead (one frame alone always goes).
    fn text(&self, text: String) {
        self.queue(text, true);
    }

    /// Queues a text frame whatever the queue holds (a resumption's replay,
    /// itself bounded by the history's limit).
    fn text_unbounded(&self, text: String) {
        self.queue(text, false);
    }

    fn queue(&self, text: String, bounded: bool) {
        if self.ended.load(Ordering::SeqCst) {
            return;
        }
        let len = text.len();
        let before = self.queued.fetch_add(len, Ordering::SeqCst);
        if bounded && before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            self.cut_now();
            return;
        }
        if self.tx.send(Out::Text(text)).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
        }
    }

    /// Queues a close frame after what is queued.
    fn close(&self, code: u16, reason: &str) {
        if !self.ended.load(Ordering::SeqCst) {
            let _ = self.tx.send(Out::Close(code, reason.to_owned()));
        }
    }

    /// Cuts the socket without a close frame, whatever is queued.
    fn cut_now(&self) {
        self.end();
        self.cut.notify_one();
    }

    /// Nothing more goes out; producers waiting for room go on.
    fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    /// Nothing is waiting to be written.
    fn idle(&self) -> bool {
        self.queued.load(Ordering::SeqCst) == 0
    }

    /// Waits until the queue is at most half full (or the socket ended).
    async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ended.load(Ordering::SeqCst) || self.queued.load(Ordering::SeqCst) <= self.limit / 2 {
                return;
            }
            notified.await;
        }
    }
}

type CloseHook = Box<dyn FnOnce() + Send>;

/// Messages kept for replay after a resumption (also bounded in bytes by
/// [`Config::history_bytes`]).
const HISTORY: usize = 10_000;

/// Where a session's messages go: the socket it is attached to (none during
/// the grace period after a drop), and what it sent, for replay.
struct Link {
    tx: Option<Arc<Outbox>>,
    /// The socket that has (or last had) the session. A detachment is
    /// identified by the socket that left: a stale socket cannot detach a
    /// newer one, and a grace timer cannot end a session that was resumed
    /// (and perhaps detached again) since.
    generation: u64,
    history: VecDeque<String>,
    history_bytes: usize,
    /// Sequence number of `history[0]`.
    base: u64,
    /// Messages sent in the session (ping/pong not counted).
    sent: u64,
}

struct ConnInner {
    id: String,
    client_address: Option<String>,
    http_headers: BTreeMap<String, String>,
    link: Mutex<Link>,
    history_limit: usize,
    /// Ended on purpose (client `disconnect`, server `close()`): not resumable.
    graceful: AtomicBool,
    closed: AtomicBool,
    on_close: Mutex<Vec<CloseHook>>,
    /// Method ids this session has seen: a re-send is never run twice.
    seen: Mutex<HashSet<String>>,
    /// The session's worker, which handles the client's messages one at a
    /// time, in order, as Meteor does. Taken when the session ends, which
    /// ends the worker (and the worker's hold on the session).
    worker: Mutex<Option<mpsc::UnboundedSender<Value>>>,
    /// The version negotiated for the session.
    version: String,
    /// Its subscriptions and merge box.
    subs: publications::SessionSubs,
    /// The server's count of sessions not yet freed.
    live: Arc<AtomicUsize>,
}

impl Drop for ConnInner {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A client's session, as server code sees it (like Meteor's
/// `Meteor.onConnection` argument). It outlives a dropped socket for the
/// grace period, so a resuming client gets it back. Cheap to clone.
#[derive(Clone)]
pub struct ServerConnection {
    inner: Arc<ConnInner>,
}

/// Meteor's reason when its server closes a socket.
const NORMAL_CLOSURE: &str = "Normal closure";

impl ServerConnection {
    /// The session id (17 characters; new unless the client resumed).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The client's address, honouring `HTTP_FORWARDED_COUNT`.
    pub fn client_address(&self) -> Option<&str> {
        self.inner.client_address.as_deref()
    }

    /// The whitelisted request headers (never cookies).
    pub fn http_headers(&self) -> &BTreeMap<String, String> {
        &self.inner.http_headers
    }

    /// Closes the connection (cleanly, code 1000 "Normal closure", as
    /// Meteor's `connection.close()`; not resumable).
    pub fn close(&self) {
        self.inner.graceful.store(true, Ordering::SeqCst);
        if let Some(tx) = &lock(&self.inner.link).tx {
            tx.close(1000, NORMAL_CLOSURE);
        }
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Runs `f` when the session ends; at once if it already has.
    pub fn on_close(&self, f: impl FnOnce() + Send + 'static) {
        let mut hooks = lock(&self.inner.on_close);
        if self.is_closed() {
            drop(hooks);
            f();
        } else {
            hooks.push(Box::new(f));
        }
    }

    /// Sends a DDP message in the session (kept for replay).
    pub fn send(&self, v: Value) {
        let text = v.to_string();
        let mut link = lock(&self.inner.link);
        link.sent += 1;
        link.history_bytes += text.len();
        link.history.push_back(text.clone());
        while link.history.len() > HISTORY || (link.history_bytes > self.inner.history_limit && link.history.len() > 1) {
            if let Some(old) = link.history.pop_front() {
                link.history_bytes -= old.len();
            }
            link.base += 1;
        }
        if let Some(tx) = &link.tx {
            tx.text(text);
        }
    }

    /// Waits until the attached socket's queue has room (at once when
    /// detached): for producers of many messages in a row.
    async fn room(&self) {
        let tx = lock(&self.inner.link).tx.clone();
        if let Some(tx) = tx {
            tx.room().await;
        }
    }

    /// Hands a client message to the session's worker.
    fn enqueue(&self, msg: Value) {
        if let Some(worker) = &*lock(&self.inner.worker) {
            let _ = worker.send(msg);
        }
    }

    /// Attaches a new socket after a resumption: replays what the client
    /// has not received. False if that cannot be done (too old a count).
    fn resume(&self, received: u64, tx: Arc<Outbox>, generation: u64) -> bool {
        let mut link = lock(&self.inner.link);
        if received < link.base || received > link.sent {
            return false;
        }
        tx.text_unbounded(json!({"msg":"connected","session":self.id()}).to_string());
        let skip = (received - link.base) as usize;
        for m in link.history.iter().skip(skip) {
            tx.text_unbounded(m.clone());
        }
        // A socket the client already gave up on (the server may not have
        // noticed yet) is cut.
        if let Some(old) = link.tx.replace(tx) {
            old.cut_now();
        }
        link.generation = generation;
        true
    }

    /// The socket went away. Returns whether the session is now detached
    /// (false if a newer socket already took it over).
    fn detach(&self, generation: u64) -> bool {
        let mut link = lock(&self.inner.link);
        if link.generation != generation {
            return false;
        }
        link.tx = None;
        true
    }

    /// Still detached since socket `generation` left (not resumed since).
    fn detached_since(&self, generation: u64) -> bool {
        let link = lock(&self.inner.link);
        link.tx.is_none() && link.generation == generation
    }

    fn finish(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        lock(&self.inner.worker).take();
        self.inner.subs.stop_all();
        let hooks = std::mem::take(&mut *lock(&self.inner.on_close));
        for h in hooks {
            h();
        }
    }
}

struct Scenario {
    refuse: AtomicBool,
    silent: AtomicBool,
    resume: AtomicBool,
    grace_ms: AtomicU64,
    versions: Mutex<Option<Vec<String>>>,
    /// `drop-on`: the kind of client frame whose arrival cuts the socket.
    drop_on: Mutex<Option<String>>,
    /// Open sockets (handshake done or not), for faults and stats.
    sockets: Mutex<HashMap<u64, Arc<Outbox>>>,
    /// Live sessions, attached or within their grace period.
    sessions: Mutex<HashMap<String, ServerConnection>>,
    accepted: AtomicU64,
    /// `sub` and `unsub` messages received, for stats.
    sub_requests: AtomicU64,
    unsub_requests: AtomicU64,
    state: methods::State,
    accounts: Arc<accounts::Accounts>,
    docs: publications::Docs,
    rooms: rooms::Rooms,
    room_hooks: RoomHooks,
}

impl Scenario {
    fn new(grace: Duration, room_hooks: RoomHooks) -> Self {
        Scenario {
            refuse: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            resume: AtomicBool::new(true),
            grace_ms: AtomicU64::new(grace.as_millis() as u64),
            versions: Mutex::new(None),
            drop_on: Mutex::new(None),
            sockets: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            sub_requests: AtomicU64::new(0),
            unsub_requests: AtomicU64::new(0),
            state: methods::State::default(),
            accounts: Arc::default(),
            docs: publications::Docs::default(),
            rooms: rooms::Rooms::default(),
            room_hooks,
        }
    }
}

impl Scenario {
    /// Whether `frame` is the one `drop-on` waits for (which disarms it).
    fn take_drop_on(&self, frame: &str) -> bool {
        let mut armed = lock(&self.drop_on);
        let Some(kind) = armed.as_deref() else { return false };
        let parsed: Option<Value> = serde_json::from_str(frame).ok();
        let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str);
        let hit = field("msg") == Some(kind) || (field("msg") == Some("method") && field("method") == Some(kind));
        if hit {
            *armed = None;
        }
        hit
    }
}

type ConnectionHook = Arc<dyn Fn(ServerConnection) + Send + Sync>;

struct Shared {
    config: Config,
    scenarios: Mutex<HashMap<String, Arc<Scenario>>>,
    hooks: Mutex<Vec<(u64, ConnectionHook)>>,
    next_hook: AtomicU64,
    next_socket: AtomicU64,
    /// Sessions not yet freed (counted where they are dropped).
    live_sessions: Arc<AtomicUsize>,
}

impl Shared {
    fn scenario(&self, name: &str) -> Arc<Scenario> {
        lock(&self.scenarios)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Scenario::new(self.config.grace, self.config.rooms.clone())))
            .clone()
    }
}

/// The server. Clone it freely; all clones are the same server.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

/// Returned by [`Server::on_connection`]; `stop()` ends the registration.
pub struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Registration {
    /// Stops calling the callback for new connections.
    pub fn stop(&self) {
        lock(&self.shared.hooks).retain(|(i, _)| *i != self.id);
    }
}

impl Server {
    /// A server with these settings.
    pub fn new(config: Config) -> Self {
        Server {
            shared: Arc::new(Shared {
                config,
                scenarios: Mutex::new(HashMap::new()),
                hooks: Mutex::new(Vec::new()),
                next_hook: AtomicU64::new(0),
                next_socket: AtomicU64::new(0),
                live_sessions: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Calls `f` with every new connection once its DDP session is up.
    pub fn on_connection(&self, f: impl Fn(ServerConnection) + Send + Sync + 'static) -> Registration {
        let id = self.shared.next_hook.fetch_add(1, Ordering::SeqCst);
        lock(&self.shared.hooks).push((id, Arc::new(f)));
        Registration { shared: self.shared.clone(), id }
    }

    /// Open sockets of a scenario.
    pub fn connection_count(&self, scenario: &str) -> usize {
        lock(&self.shared.scenario(scenario).sockets).len()
    }

    /// Sessions whose memory is not yet freed, in every scenario (a
    /// session is freed once it has ended and nothing holds it any more).
    pub fn live_sessions(&self) -> usize {
        self.shared.live_sessions.load(Ordering::SeqCst)
    }

    /// The axum router: WebSocket endpoints, control endpoint, static files.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/websocket", get(ws_default))
            .route("/t/{scenario}/websocket", get(ws_scenario))
            .route("/control/{scenario}/{action}", any(control))
            .with_state(self.clone());
        for (prefix, dir) in &self.shared.config.mounts {
            let service = tower_http::services::ServeDir::new(dir);
            if prefix == "/" || prefix.is_empty() {
                router = router.fallback_service(service);
            } else {
                router = router.nest_service(prefix, service);
            }
        }
        // Cross-origin isolated pages get 5 µs timers instead of 100 µs:
        // the benchmark page times each client's message handler. Every
        // resource here is same-origin, so nothing else changes.
        router.layer(axum::middleware::map_response(isolate))
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        // DDP sends small frames back to back (`result` then `updated`):
        // without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to a round trip.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = self.router().into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await
    }
}

async fn ws_default(
    State(server): State<Server>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(server, "default".into(), peer, headers, ws)
}

async fn ws_scenario(
    State(server): State<Server>,
    Path(scenario): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(server, scenario, peer, headers, ws)
}

fn upgrade(server: Server, scenario: String, peer: SocketAddr, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let sc = server.shared.scenario(&scenario);
    if sc.refuse.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "refusing connections (fault injection)").into_response();
    }
    sc.accepted.fetch_add(1, Ordering::SeqCst);
    let config = &server.shared.config;
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let address = client_address(Some(peer), forwarded, config.forwarded_count);
    let http_headers = whitelisted_headers(&headers);
    // `max_message_bytes` is enforced on whole messages (see run_connection);
    // tungstenite's own limit is a hard cap far above it.
    ws.max_message_size(config.max_message_bytes.saturating_mul(16))
        .on_upgrade(move |socket| run_connection(server, sc, socket, address, http_headers))
}

fn control_response(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

async fn control(
    State(server): State<Server>,
    Path((scenario, action)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sc = server.shared.scenario(&scenario);
    let on = q.get("on").is_none_or(|v| v != "false" && v != "0");
    let sockets = || lock(&sc.sockets).values().cloned().collect::<Vec<_>>();
    match action.as_str() {
        "drop" => sockets().iter().for_each(|s| s.cut_now()),
        "disconnect" => {
            // A clean close by the server: the sessions end with their sockets.
            for s in lock(&sc.sessions).values() {
                s.inner.graceful.store(true, Ordering::SeqCst);
            }
            sockets().iter().for_each(|s| s.close(1000, NORMAL_CLOSURE));
        }
        "frame" => {
            // A raw text frame to every socket of the scenario, as given
            // (`text`, with `$PAD` replaced by `pad` x's): hostile-server
            // tests. Not held to the queue's bound (it may be huge on purpose).
            let pad = q.get("pad").and_then(|v| v.parse().ok()).unwrap_or(0usize).min(256 << 20);
            let text = q.get("text").cloned().unwrap_or_default().replace("$PAD", &"x".repeat(pad));
            sockets().iter().for_each(|s| s.text_unbounded(text.clone()));
        }
        "refuse" => sc.refuse.store(on, Ordering::SeqCst),
        "drop-on" => *lock(&sc.drop_on) = q.get("msg").filter(|k| !k.is_empty()).cloned(),
        "resume" => sc.resume.store(on, Ordering::SeqCst),
        "grace" => {
            let ms = q.get("ms").and_then(|v| v.parse().ok()).unwrap_or(15_000);
            sc.grace_ms.store(ms, Ordering::SeqCst);
        }
        "executions" => return control_response(StatusCode::OK, sc.state.report()),
        "accounts" => {
            return match accounts::control(&sc, &q).await {
                Ok(v) => control_response(StatusCode::OK, v),
                Err(e) => control_response(StatusCode::BAD_REQUEST, e),
            }
        }
        "silent" => sc.silent.store(on, Ordering::SeqCst),
        "versions" => {
            let v: Vec<String> =
                q.get("v").map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
            *lock(&sc.versions) = if v.is_empty() { None } else { Some(v) };
        }
        "reset" => {
            sc.refuse.store(false, Ordering::SeqCst);
            sc.silent.store(false, Ordering::SeqCst);
            sc.resume.store(true, Ordering::SeqCst);
            *lock(&sc.versions) = None;
            *lock(&sc.drop_on) = None;
        }
        "stats" => {}
        _ => return control_response(StatusCode::NOT_FOUND, json!({"error": format!("unknown action {action:?}")})),
    }
    let sockets = lock(&sc.sockets).len();
    let sessions = lock(&sc.sessions);
    let ids: Vec<&String> = sessions.keys().collect();
    let subscriptions: usize = sessions.values().map(|s| s.inner.subs.len()).sum();
    control_response(
        StatusCode::OK,
        json!({
            "scenario": scenario,
            "connections": sockets,
            "sessions": ids,
            "accepted": sc.accepted.load(Ordering::SeqCst),
            "subscriptions": subscriptions,
            "subRequests": sc.sub_requests.load(Ordering::SeqCst),
            "unsubRequests": sc.unsub_requests.load(Ordering::SeqCst),
            "refuse": sc.refuse.load(Ordering::SeqCst),
            "silent": sc.silent.load(Ordering::SeqCst),
            "dropOn": lock(&sc.drop_on).clone(),
            "liveSessions": server.live_sessions(),
            "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            "members": q.get("room").map(|r| rooms::members(&sc, r)).unwrap_or_default(),
        }),
    )
}

fn error_reply(reason: &str, offending: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("msg".into(), "error".into());
    m.insert("reason".into(), reason.into());
    if let Some(o) = offending {
        m.insert("offendingMessage".into(), o);
    }
    Value::Object(m)
}

/// A Meteor.Error as it goes on the wire.
pub fn meteor_error(error: Value, reason: &str) -> Value {
    let code = match &error {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({
        "isClientSafe": true,
        "error": error,
        "reason": reason,
        "message": format!("{reason} [{code}]"),
        "errorType": "Meteor.Error",
    })
}

/// Meteor's version choice: the first of the client's `support` the server
/// speaks, else the server's own first.
pub fn choose_version(client_support: &[String], server_versions: &[String]) -> String {
    client_support
        .iter()
        .find(|v| server_versions.contains(v))
        .or_else(|| server_versions.first())
        .cloned()
        .unwrap_or_else(|| DEFAULT_VERSIONS[0].to_owned())
}

async fn isolate(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-embedder-policy", HeaderValue::from_static("require-corp"));
    response
}

/// The name (under `name_key`), id and params of a `method` or `sub`;
/// `None` when malformed (params absent are empty; not an array is wrong).
fn request_parts<'a>(parsed: &'a Value, name_key: &str) -> Option<(&'a str, &'a str, Vec<Value>)> {
    let name = parsed.get(name_key)?.as_str()?;
    let id = parsed.get("id")?.as_str()?;
    let params = match parsed.get("params") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return None,
    };
    Some((name, id, params))
}

/// Most frames written before a flush.
const BATCH_FRAMES: usize = 256;

/// How long a socket ending cleanly may take to write its close frame.
const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// A socket's writer: sends what the outbox queues, a burst (a
/// publication's documents) in a few writes — up to [`BATCH_FRAMES`] frames
/// fed, then one flush — not one syscall per frame. Ends after a close
/// frame or when the socket breaks.
async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::UnboundedReceiver<Out>, outbox: Arc<Outbox>, sc: Arc<Scenario>) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let (mut frames, mut bytes) = (0, 0);
        while let Some(out) = next.take() {
            match out {
                Out::Text(t) => {
                    bytes += t.len();
                    if !sc.silent.load(Ordering::SeqCst) && sink.feed(Message::Text(t.into())).await.is_err() {
                        return;
                    }
                    frames += 1;
                    if frames < BATCH_FRAMES {
                        next = rx.try_recv().ok();
                    }
                }
                Out::Close(code, reason) => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    return;
                }
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
        outbox.queued.fetch_sub(bytes, Ordering::SeqCst);
        *lock(&outbox.last_write) = Instant::now();
        outbox.room.notify_waiters();
    }
}

/// How a socket's handler loop ended.
enum Ending {
    /// The client went away, or the socket broke.
    Gone,
    /// The client sent a close frame: answer it.
    ClientClosed,
    /// Closing cleanly: the writer sends what is queued, then a close frame.
    Closing,
    /// The writer finished (after a close frame, or a broken socket).
    WriterDone,
    /// Cut without a close frame (overflow, fault injection).
    Cut,
}

/// Whether a read failed because the client's message was over the size
/// limit (tungstenite's capacity error, which axum wraps; told by its text,
/// "Message too long: N > M", as its type is not reachable through axum).
fn message_too_long(e: &axum::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("Message too long") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// One socket's handler: reads frames, runs the heartbeat, and leaves the
/// writing to a task of its own, so a client that stops reading cannot
/// stall the heartbeat or the reads.
async fn run_connection(
    server: Server,
    sc: Arc<Scenario>,
    socket: WebSocket,
    address: Option<String>,
    http_headers: BTreeMap<String, String>,
) {
    let config = server.shared.config.clone();
    let (outbox, rx) = Outbox::new(config.max_queued_bytes);
    let generation = server.shared.next_socket.fetch_add(1, Ordering::SeqCst);
    lock(&sc.sockets).insert(generation, outbox.clone());
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(sink, rx, outbox.clone(), sc.clone()));
    let mut ctx = SocketCtx { server: &server, sc: &sc, tx: outbox.clone(), generation, address, http_headers, session: None };
    let hb_on = !config.heartbeat_interval.is_zero();
    let mut last_received = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let ending = loop {
        let deadline = match ping_sent {
            Some(t) => t + config.heartbeat_timeout,
            None => last_received + config.heartbeat_interval,
        };
        let heartbeat_active = hb_on && ctx.session.as_ref().is_some_and(|s| s.inner.version != "pre1");
        let idle_active = !heartbeat_active && !config.idle_timeout.is_zero();
        let idle_deadline = last_received.max(*lock(&outbox.last_write)) + config.idle_timeout;
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    // Over the hard cap: closed with 1009 (Message Too Big), as
                    // Meteor's WebSocket driver (faye's) does past its maxLength.
                    Some(Err(e)) if message_too_long(&e) => {
                        outbox.close(1009, "WebSocket frame length too large");
                        break Ending::Closing;
                    }
                    _ => break Ending::Gone,
                };
                if sc.silent.load(Ordering::SeqCst) {
                    continue;
                }
                // Any message counts as the answer to a ping.
                last_received = Instant::now();
                ping_sent = None;
                // Over the limit: read whole (the hard cap, far above it, is
                // tungstenite's), so the socket can still take the closing
                // handshake. A socket dropped with data unread is reset, and a
                // reset can lose the close frame on the way.
                if matches!(&message, Message::Text(t) if t.len() > config.max_message_bytes)
                    || matches!(&message, Message::Binary(b) if b.len() > config.max_message_bytes)
                {
                    outbox.close(1009, "WebSocket frame length too large");
                    break Ending::Closing;
                }
                // `drop-on`: the frame dies with its socket, unread.
                if matches!(&message, Message::Text(t) if sc.take_drop_on(t.as_str())) {
                    break Ending::Cut;
                }
                match message {
                    Message::Text(text) if !ctx.handle_text(text.as_str()) => break Ending::Closing,
                    // Meteor reads a binary frame as UTF-8 text.
                    Message::Binary(bytes) if !ctx.handle_text(&String::from_utf8_lossy(&bytes)) => {
                        break Ending::Closing
                    }
                    Message::Close(_) => break Ending::ClientClosed,
                    _ => {}
                }
            }
            _ = outbox.cut.notified() => break Ending::Cut,
            _ = tokio::time::sleep_until(idle_deadline), if idle_active => {
                if sc.silent.load(Ordering::SeqCst) {
                    last_received = Instant::now();
                    continue;
                }
                // Written to since? Then the deadline moved on.
                if Instant::now() >= last_received.max(*lock(&outbox.last_write)) + config.idle_timeout {
                    break Ending::Cut;
                }
            }
            _ = &mut writer => break Ending::WriterDone,
            _ = tokio::time::sleep_until(deadline), if heartbeat_active => {
                if sc.silent.load(Ordering::SeqCst) {
                    last_received = Instant::now();
                    continue;
                }
                if ping_sent.is_some() {
                    // No answer in time: Meteor closes the socket (1000).
                    // A socket that cannot take the close frame now (its
                    // queue is not empty: the client does not read) is cut.
                    if outbox.idle() {
                        outbox.close(1000, NORMAL_CLOSURE);
                        break Ending::Closing;
                    }
                    break Ending::Cut;
                }
                ping_sent = Some(Instant::now());
                outbox.text(json!({"msg":"ping"}).to_string());
            }
        }
    };
    match ending {
        Ending::ClientClosed => {
            // The reply to the client's close frame goes out on the next
            // read; the stream then ends.
            let _ = tokio::time::timeout(CLOSE_WRITE, stream.next()).await;
        }
        Ending::Closing => {
            let _ = tokio::time::timeout(CLOSE_WRITE, &mut writer).await;
            // The closing handshake: read on (and drop what comes) until the
            // client answers the close frame, so the socket is not dropped
            // with data unread (which resets it).
            let _ = tokio::time::timeout(CLOSE_WRITE, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        Ending::Gone | Ending::WriterDone | Ending::Cut => {}
    }
    outbox.end();
    writer.abort();
    lock(&sc.sockets).remove(&generation);
    if let Some(session) = ctx.session.take() {
        end_or_hold(sc.clone(), session, generation);
    }
}

/// Ends a session now: it leaves the scenario, its rooms, and its
/// subscriptions, worker and tasks stop.
fn end_session(sc: &Scenario, session: &ServerConnection) {
    lock(&sc.sessions).remove(session.id());
    rooms::session_ended(sc, &sc.room_hooks, session);
    session.finish();
}

/// After a socket ends: a graceful end (or no resumption) ends the session
/// now; otherwise it waits the grace period for its client to come back.
fn end_or_hold(sc: Arc<Scenario>, session: ServerConnection, generation: u64) {
    if !session.detach(generation) {
        return; // a newer socket has it
    }
    let graceful = session.inner.graceful.load(Ordering::SeqCst);
    if graceful || !sc.resume.load(Ordering::SeqCst) {
        end_session(&sc, &session);
        return;
    }
    let grace = Duration::from_millis(sc.grace_ms.load(Ordering::SeqCst));
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        // Only this detachment's timer may end it: if the session was
        // resumed since (and perhaps dropped again), a newer timer decides.
        if session.detached_since(generation) {
            end_session(&sc, &session);
        }
    });
}

struct SocketCtx<'a> {
    server: &'a Server,
    sc: &'a Arc<Scenario>,
    tx: Arc<Outbox>,
    generation: u64,
    address: Option<String>,
    http_headers: BTreeMap<String, String>,
    session: Option<ServerConnection>,
}

/// JavaScript truthiness, as Meteor tests `msg.msg`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

impl SocketCtx<'_> {
    /// A reply outside the session's numbered stream (errors before the
    /// handshake, pongs).
    fn reply(&self, v: Value) {
        match &self.session {
            Some(s) if !matches!(v.get("msg").and_then(Value::as_str), Some("pong")) => s.send(v),
            _ => self.tx.text(v.to_string()),
        }
    }

    fn new_session(&mut self, version: String) -> ServerConnection {
        let (worker_tx, worker_rx) = mpsc::unbounded_channel();
        let shared = &self.server.shared;
        shared.live_sessions.fetch_add(1, Ordering::SeqCst);
        let conn = ServerConnection {
            inner: Arc::new(ConnInner {
                id: random_id(),
                client_address: self.address.clone(),
                http_headers: self.http_headers.clone(),
                link: Mutex::new(Link {
                    tx: Some(self.tx.clone()),
                    generation: self.generation,
                    history: VecDeque::new(),
                    history_bytes: 0,
                    base: 0,
                    sent: 0,
                }),
                history_limit: shared.config.history_bytes,
                graceful: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                on_close: Mutex::new(Vec::new()),
                seen: Mutex::new(HashSet::new()),
                worker: Mutex::new(Some(worker_tx)),
                version,
                subs: publications::SessionSubs::default(),
                live: shared.live_sessions.clone(),
            }),
        };
        tokio::spawn(worker(self.sc.clone(), conn.clone(), worker_rx));
        lock(&self.sc.sessions).insert(conn.id().to_owned(), conn.clone());
        conn
    }

    /// Handles one text frame as Meteor's server does; false means "close
    /// the socket now" (a failed negotiation).
    fn handle_text(&mut self, text: &str) -> bool {
        // Not JSON, or JSON but not an object: "Bad request", without the
        // offending message (Meteor's parser gives up on it).
        let parsed = match serde_json::from_str::<Value>(text) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => {
                self.reply(error_reply("Bad request", None));
                return true;
            }
        };
        if !truthy(parsed.get("msg")) {
            self.reply(error_reply("Bad request", Some(parsed)));
            return true;
        }
        let msg = parsed.get("msg").and_then(Value::as_str).unwrap_or_default().to_owned();
        if msg == "connect" {
            return self.handle_connect(parsed);
        }
        let Some(session) = self.session.clone() else {
            self.reply(error_reply("Must connect first", Some(parsed)));
            return true;
        };
        // Pings and pongs are answered at once, outside the queue — except
        // in `pre1`, which had none: there they are unknown messages.
        let pings = session.inner.version != "pre1";
        match msg.as_str() {
            "ping" if pings => {
                let mut pong = json!({"msg":"pong"});
                if let Some(id) = parsed.get("id") {
                    pong["id"] = id.clone();
                }
                self.tx.text(pong.to_string());
            }
            "pong" if pings => {}
            _ => {
                if msg == "disconnect" {
                    // Not a message Meteor knows ("Bad request", below), but
                    // a client that says it is leaving does not get its
                    // session held for resumption after the socket closes.
                    session.inner.graceful.store(true, Ordering::SeqCst);
                }
                session.enqueue(parsed);
            }
        }
        true
    }

    fn handle_connect(&mut self, parsed: Value) -> bool {
        if self.session.is_some() {
            self.reply(error_reply("Already connected", Some(parsed)));
            return true;
        }
        let server_versions = lock(&self.sc.versions).clone().unwrap_or_else(|| self.server.shared.config.versions.clone());
        let support: Option<Vec<String>> = parsed
            .get("support")
            .and_then(Value::as_array)
            .filter(|a| a.iter().all(Value::is_string))
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
        let asked = parsed.get("version").and_then(Value::as_str);
        let well_formed = support.as_ref().is_some_and(|s| asked.is_some_and(|a| s.iter().any(|v| v == a)));
        let chosen = if well_formed {
            choose_version(support.as_deref().unwrap_or_default(), &server_versions)
        } else {
            server_versions.first().cloned().unwrap_or_else(|| DEFAULT_VERSIONS[0].to_owned())
        };
        if !well_formed || asked != Some(chosen.as_str()) || !server_versions.contains(&chosen) {
            self.tx.text(json!({"msg":"failed","version":chosen}).to_string());
            self.tx.close(1000, NORMAL_CLOSURE);
            return false;
        }
        // Resumption: the previous session, if it is still held and the
        // count of what the client received is one we can replay from.
        let previous = parsed.get("session").and_then(Value::as_str);
        let received = parsed.get("receivedCount").and_then(Value::as_u64);
        if let (Some(prev), Some(received), true) = (previous, received, self.sc.resume.load(Ordering::SeqCst)) {
            let held = lock(&self.sc.sessions).get(prev).cloned();
            if let Some(s) = held.filter(|s| !s.is_closed() && !s.inner.graceful.load(Ordering::SeqCst)) {
                if s.resume(received, self.tx.clone(), self.generation) {
                    self.session = Some(s);
                    return true;
                }
            }
        }
        let conn = self.new_session(chosen);
        self.tx.text(json!({"msg":"connected","session":conn.id()}).to_string());
        self.session = Some(conn.clone());
        let hooks: Vec<ConnectionHook> = lock(&self.server.shared.hooks).iter().map(|(_, h)| h.clone()).collect();
        for h in hooks {
            h(conn.clone());
        }
        true
    }
}

/// A session's worker: the client's `method`, `sub`, `unsub` and unknown
/// messages are handled one at a time, in the order they came, as in
/// Meteor — a `sub` sent after a slow method waits for it, unless the
/// method unblocks (`sleepUnblocked`). Ends when the session does.
async fn worker(sc: Arc<Scenario>, session: ServerConnection, mut rx: mpsc::UnboundedReceiver<Value>) {
    while let Some(msg) = rx.recv().await {
        if session.is_closed() {
            break;
        }
        match msg.get("msg").and_then(Value::as_str) {
            Some("method") => methods::handle(&sc, &session, msg).await,
            Some("sub") => {
                sc.sub_requests.fetch_add(1, Ordering::SeqCst);
                publications::handle_sub(&sc, &session, msg).await
            }
            Some("unsub") => {
                sc.unsub_requests.fetch_add(1, Ordering::SeqCst);
                publications::handle_unsub(&session, &msg)
            }
            _ => session.send(error_reply("Bad request", Some(msg))),
        }
    }
}
