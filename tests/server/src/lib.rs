//! `ddp-test-server`: a small native DDP server for ddp-live's end-to-end
//! tests and demo.
//!
//! - Speaks DDP as Meteor's server does: version negotiation (configurable
//!   versions), heartbeats (configurable), 17-character session ids, the
//!   top-level `error` replies for bad frames, 404s for unknown methods and
//!   publications.
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
//!   `disconnect` (close every socket cleanly, code 1000), `reset`, and
//!   `stats` (connection counts; live subscriptions and the `sub` and
//!   `unsub` messages received).

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::SinkExt;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

mod methods;
mod publications;
pub mod rooms;
pub use rooms::{JoinRequest, RoomConnection, RoomHooks};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The versions a Meteor server speaks, preferred first.
pub const DEFAULT_VERSIONS: [&str; 3] = ["1", "pre2", "pre1"];

/// The alphabet of Meteor's `Random.id()`.
const ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

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
    /// `HTTP_FORWARDED_COUNT`: proxies in front of the server.
    pub forwarded_count: usize,
    /// Static directories: (URL prefix, directory). A prefix of "/" serves
    /// everything no other route takes.
    pub mounts: Vec<(String, PathBuf)>,
    /// The largest frame accepted from a client.
    pub max_message_bytes: usize,
    /// How long a dropped session waits for its client to resume it.
    pub grace: Duration,
    /// Room hooks and middleware (default: [`RoomHooks::chat`]).
    pub rooms: RoomHooks,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            versions: DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect(),
            heartbeat_interval: Duration::from_millis(15_000),
            heartbeat_timeout: Duration::from_millis(15_000),
            forwarded_count: 0,
            mounts: Vec::new(),
            max_message_bytes: 1 << 20,
            grace: Duration::from_secs(15),
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

#[derive(Debug)]
enum Out {
    Text(String),
    Close(u16, String),
    Drop,
}

type CloseHook = Box<dyn FnOnce() + Send>;

/// Messages kept for replay after a resumption.
const HISTORY: usize = 10_000;

/// Where a session's messages go: the socket it is attached to (none during
/// the grace period after a drop), and what it sent, for replay.
struct Link {
    tx: Option<mpsc::UnboundedSender<Out>>,
    /// Socket generation, so a stale socket cannot detach a newer one.
    generation: u64,
    history: VecDeque<String>,
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
    /// Ended on purpose (client `disconnect`, server `close()`): not resumable.
    graceful: AtomicBool,
    closed: AtomicBool,
    on_close: Mutex<Vec<CloseHook>>,
    /// Method ids this session has seen: a re-send is never run twice.
    seen: Mutex<HashSet<String>>,
    /// The session's method worker (methods run one at a time, as in Meteor).
    worker: mpsc::UnboundedSender<methods::Invocation>,
    /// The version negotiated for the session.
    version: String,
    /// Its subscriptions and merge box.
    subs: publications::SessionSubs,
}

/// A client's session, as server code sees it (like Meteor's
/// `Meteor.onConnection` argument). It outlives a dropped socket for the
/// grace period, so a resuming client gets it back. Cheap to clone.
#[derive(Clone)]
pub struct ServerConnection {
    inner: Arc<ConnInner>,
}

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

    /// Closes the connection (cleanly, code 1000; not resumable).
    pub fn close(&self) {
        self.inner.graceful.store(true, Ordering::SeqCst);
        if let Some(tx) = &lock(&self.inner.link).tx {
            let _ = tx.send(Out::Close(1000, "server disconnect".into()));
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
        link.history.push_back(text.clone());
        if link.history.len() > HISTORY {
            link.history.pop_front();
            link.base += 1;
        }
        if let Some(tx) = &link.tx {
            let _ = tx.send(Out::Text(text));
        }
    }

    /// Attaches a new socket after a resumption: replays what the client
    /// has not received. False if that cannot be done (too old a count).
    fn resume(&self, received: u64, tx: mpsc::UnboundedSender<Out>, generation: u64) -> bool {
        let mut link = lock(&self.inner.link);
        if received < link.base || received > link.sent {
            return false;
        }
        let _ = tx.send(Out::Text(json!({"msg":"connected","session":self.id()}).to_string()));
        let skip = (received - link.base) as usize;
        for m in link.history.iter().skip(skip) {
            let _ = tx.send(Out::Text(m.clone()));
        }
        // A socket the client already gave up on (the server may not have
        // noticed yet) is cut.
        if let Some(old) = link.tx.replace(tx) {
            let _ = old.send(Out::Drop);
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

    fn attached_generation(&self) -> Option<u64> {
        let link = lock(&self.inner.link);
        link.tx.as_ref().map(|_| link.generation)
    }

    fn finish(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
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
    /// Open sockets (handshake done or not), for faults and stats.
    sockets: Mutex<HashMap<u64, mpsc::UnboundedSender<Out>>>,
    /// Live sessions, attached or within their grace period.
    sessions: Mutex<HashMap<String, ServerConnection>>,
    accepted: AtomicU64,
    /// `sub` and `unsub` messages received, for stats.
    sub_requests: AtomicU64,
    unsub_requests: AtomicU64,
    state: methods::State,
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
            sockets: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            sub_requests: AtomicU64::new(0),
            unsub_requests: AtomicU64::new(0),
            state: methods::State::default(),
            docs: publications::Docs::default(),
            rooms: rooms::Rooms::default(),
            room_hooks,
        }
    }
}

type ConnectionHook = Arc<dyn Fn(ServerConnection) + Send + Sync>;

struct Shared {
    config: Config,
    scenarios: Mutex<HashMap<String, Arc<Scenario>>>,
    hooks: Mutex<Vec<(u64, ConnectionHook)>>,
    next_hook: AtomicU64,
    next_socket: AtomicU64,
}

impl Shared {
    fn scenario(&self, name: &str) -> Arc<Scenario> {
        lock(&self.scenarios).entry(name.to_owned()).or_insert_with(|| Arc::new(Scenario::new(self.config.grace, self.config.rooms.clone())))
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
    ws.max_message_size(config.max_message_bytes)
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
    let each = |out: fn() -> Out| {
        for tx in lock(&sc.sockets).values() {
            let _ = tx.send(out());
        }
    };
    match action.as_str() {
        "drop" => each(|| Out::Drop),
        "disconnect" => each(|| Out::Close(1000, "server disconnect".into())),
        "frame" => {
            // A raw text frame to every socket of the scenario, as given
            // (`text`, with `$PAD` replaced by `pad` x's): hostile-server tests.
            let pad = q.get("pad").and_then(|v| v.parse().ok()).unwrap_or(0usize).min(256 << 20);
            let text = q.get("text").cloned().unwrap_or_default().replace("$PAD", &"x".repeat(pad));
            for tx in lock(&sc.sockets).values() {
                let _ = tx.send(Out::Text(text.clone()));
            }
        }
        "refuse" => sc.refuse.store(on, Ordering::SeqCst),
        "resume" => sc.resume.store(on, Ordering::SeqCst),
        "grace" => {
            let ms = q.get("ms").and_then(|v| v.parse().ok()).unwrap_or(15_000);
            sc.grace_ms.store(ms, Ordering::SeqCst);
        }
        "executions" => return control_response(StatusCode::OK, sc.state.report()),
        "silent" => sc.silent.store(on, Ordering::SeqCst),
        "versions" => {
            let v: Vec<String> = q.get("v").map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
            *lock(&sc.versions) = if v.is_empty() { None } else { Some(v) };
        }
        "reset" => {
            sc.refuse.store(false, Ordering::SeqCst);
            sc.silent.store(false, Ordering::SeqCst);
            sc.resume.store(true, Ordering::SeqCst);
            *lock(&sc.versions) = None;
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

/// Writes `first` and what else is queued already (up to [`BATCH_FRAMES`]),
/// then flushes once: a burst (a publication's documents) leaves in a few
/// writes, not one syscall and one TCP segment per frame. False when the
/// socket is done (closed on request, dropped, or broken).
async fn write_queued(
    socket: &mut WebSocket,
    rx: &mut mpsc::UnboundedReceiver<Out>,
    first: Out,
    session: Option<&ServerConnection>,
    silent: &AtomicBool,
) -> bool {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(out) = next.take() {
        match out {
            Out::Text(t) => {
                if !silent.load(Ordering::SeqCst) && socket.feed(Message::Text(t.into())).await.is_err() {
                    return false;
                }
                written += 1;
                if written < BATCH_FRAMES {
                    next = rx.try_recv().ok();
                }
            }
            Out::Close(code, reason) => {
                let _ = socket.flush().await;
                if let Some(s) = session {
                    s.inner.graceful.store(true, Ordering::SeqCst);
                }
                let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                return false;
            }
            Out::Drop => {
                let _ = socket.flush().await;
                return false;
            }
        }
    }
    socket.flush().await.is_ok()
}

/// One socket's handler.
async fn run_connection(
    server: Server,
    sc: Arc<Scenario>,
    mut socket: WebSocket,
    address: Option<String>,
    http_headers: BTreeMap<String, String>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let generation = server.shared.next_socket.fetch_add(1, Ordering::SeqCst);
    lock(&sc.sockets).insert(generation, tx.clone());
    let config = server.shared.config.clone();
    let mut ctx = SocketCtx { server: &server, sc: &sc, tx, generation, address, http_headers, session: None };
    let hb_on = !config.heartbeat_interval.is_zero();
    let mut last_received = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    loop {
        let deadline = match ping_sent {
            Some(t) => t + config.heartbeat_timeout,
            None => last_received + config.heartbeat_interval,
        };
        let heartbeat_active = hb_on && ctx.session.as_ref().is_some_and(|s| s.inner.version != "pre1");
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                if sc.silent.load(Ordering::SeqCst) {
                    continue;
                }
                last_received = Instant::now();
                ping_sent = None;
                match message {
                    Message::Text(text)
                        if !ctx.handle_text(text.as_str()) => {
                            // Flush what the handler queued (e.g. `failed`), then close.
                            while let Ok(Out::Text(t)) = rx.try_recv() {
                                let _ = socket.send(Message::Text(t.into())).await;
                            }
                            let _ = socket.send(Message::Close(None)).await;
                            break;
                        }
                    Message::Binary(_) => ctx.reply(error_reply("Bad request", None)),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            out = rx.recv() => {
                let Some(first) = out else { break };
                if !write_queued(&mut socket, &mut rx, first, ctx.session.as_ref(), &sc.silent).await {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if heartbeat_active => {
                if sc.silent.load(Ordering::SeqCst) {
                    last_received = Instant::now();
                    continue;
                }
                if ping_sent.is_some() {
                    break; // the client did not answer: drop it
                }
                ping_sent = Some(Instant::now());
                let id = random_id();
                if socket.send(Message::Text(json!({"msg":"ping","id":id}).to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    lock(&sc.sockets).remove(&generation);
    if let Some(session) = ctx.session.take() {
        end_or_hold(sc.clone(), session, generation);
    }
}

/// After a socket ends: a graceful end (or no resumption) ends the session
/// now; otherwise it waits the grace period for its client to come back.
fn end_or_hold(sc: Arc<Scenario>, session: ServerConnection, generation: u64) {
    if !session.detach(generation) {
        return; // a newer socket has it
    }
    let graceful = session.inner.graceful.load(Ordering::SeqCst);
    if graceful || !sc.resume.load(Ordering::SeqCst) {
        lock(&sc.sessions).remove(session.id());
        rooms::session_ended(&sc, &sc.room_hooks, &session);
        session.finish();
        return;
    }
    let grace = Duration::from_millis(sc.grace_ms.load(Ordering::SeqCst));
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        if session.attached_generation().is_none() {
            lock(&sc.sessions).remove(session.id());
            rooms::session_ended(&sc, &sc.room_hooks, &session);
            session.finish();
        }
    });
}

struct SocketCtx<'a> {
    server: &'a Server,
    sc: &'a Arc<Scenario>,
    tx: mpsc::UnboundedSender<Out>,
    generation: u64,
    address: Option<String>,
    http_headers: BTreeMap<String, String>,
    session: Option<ServerConnection>,
}

impl SocketCtx<'_> {
    /// A reply outside the session's numbered stream (errors before the
    /// handshake, pongs).
    fn reply(&self, v: Value) {
        match &self.session {
            Some(s) if !matches!(v.get("msg").and_then(Value::as_str), Some("pong")) => s.send(v),
            _ => {
                let _ = self.tx.send(Out::Text(v.to_string()));
            }
        }
    }

    fn new_session(&mut self, version: String) -> ServerConnection {
        let (worker_tx, worker_rx) = mpsc::unbounded_channel();
        let conn = ServerConnection {
            inner: Arc::new(ConnInner {
                id: random_id(),
                client_address: self.address.clone(),
                http_headers: self.http_headers.clone(),
                link: Mutex::new(Link {
                    tx: Some(self.tx.clone()),
                    generation: self.generation,
                    history: VecDeque::new(),
                    base: 0,
                    sent: 0,
                }),
                graceful: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                on_close: Mutex::new(Vec::new()),
                seen: Mutex::new(HashSet::new()),
                worker: worker_tx,
                version,
                subs: publications::SessionSubs::default(),
            }),
        };
        tokio::spawn(methods::worker(self.sc.clone(), conn.clone(), worker_rx));
        lock(&self.sc.sessions).insert(conn.id().to_owned(), conn.clone());
        conn
    }

    /// Handles one text frame; false means "close the socket now".
    fn handle_text(&mut self, text: &str) -> bool {
        let parsed: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                self.reply(error_reply("Bad request", Some(Value::String(text.to_owned()))));
                return true;
            }
        };
        let Some(msg) = parsed.get("msg").and_then(Value::as_str).map(str::to_owned) else {
            self.reply(error_reply("Bad request", Some(parsed)));
            return true;
        };
        if msg == "connect" {
            return self.handle_connect(parsed);
        }
        let Some(session) = self.session.clone() else {
            self.reply(error_reply("Must connect first", Some(parsed)));
            return true;
        };
        match msg.as_str() {
            "ping" => {
                let mut pong = json!({"msg":"pong"});
                if let Some(id) = parsed.get("id") {
                    pong["id"] = id.clone();
                }
                let _ = self.tx.send(Out::Text(pong.to_string()));
            }
            "pong" => {}
            "disconnect" => {
                // The client ends the session on purpose: not resumable.
                session.inner.graceful.store(true, Ordering::SeqCst);
                return false;
            }
            "method" => {
                let Some((name, id, params)) = request_parts(&parsed, "method") else {
                    session.send(error_reply("Malformed method invocation", Some(parsed)));
                    return true;
                };
                // A re-send of an id this session saw is never run twice: its
                // answer was sent (and replayed) or is on its way.
                if !lock(&session.inner.seen).insert(id.to_owned()) {
                    return true;
                }
                let seed = parsed.get("randomSeed").and_then(Value::as_str).map(str::to_owned);
                let _ = session.inner.worker.send(methods::Invocation { id: id.to_owned(), name: name.to_owned(), params, seed });
            }
            "sub" => {
                let Some((name, id, params)) = request_parts(&parsed, "name") else {
                    session.send(error_reply("Malformed subscription", Some(parsed)));
                    return true;
                };
                self.sc.sub_requests.fetch_add(1, Ordering::SeqCst);
                publications::subscribe(self.sc, &session, id, name, params);
            }
            "unsub" => {
                if let Some(id) = parsed.get("id").and_then(Value::as_str) {
                    self.sc.unsub_requests.fetch_add(1, Ordering::SeqCst);
                    publications::unsubscribe(&session, id);
                }
            }
            _ => session.send(error_reply("Bad request", Some(parsed))),
        }
        true
    }

    fn handle_connect(&mut self, parsed: Value) -> bool {
        if self.session.is_some() {
            self.reply(error_reply("Already connected", Some(parsed)));
            return true;
        }
        let server_versions =
            lock(&self.sc.versions).clone().unwrap_or_else(|| self.server.shared.config.versions.clone());
        let support: Option<Vec<String>> = parsed
            .get("support")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
        let asked = parsed.get("version").and_then(Value::as_str);
        let chosen = choose_version(&support.clone().unwrap_or_default(), &server_versions);
        let ok = support.is_some() && asked == Some(chosen.as_str()) && server_versions.contains(&chosen);
        if !ok {
            let _ = self.tx.send(Out::Text(json!({"msg":"failed","version":chosen}).to_string()));
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
        let _ = self.tx.send(Out::Text(json!({"msg":"connected","session":conn.id()}).to_string()));
        self.session = Some(conn.clone());
        let hooks: Vec<ConnectionHook> = lock(&self.server.shared.hooks).iter().map(|(_, h)| h.clone()).collect();
        for h in hooks {
            h(conn.clone());
        }
        true
    }
}
