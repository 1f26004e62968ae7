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
//!   `stats` (connection counts).

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
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

enum Out {
    Text(String),
    Close(u16, String),
    Drop,
}

type CloseHook = Box<dyn FnOnce() + Send>;

struct ConnInner {
    id: String,
    client_address: Option<String>,
    http_headers: BTreeMap<String, String>,
    tx: mpsc::UnboundedSender<Out>,
    closed: AtomicBool,
    on_close: Mutex<Vec<CloseHook>>,
}

/// A client's connection, as server code sees it (like Meteor's
/// `Meteor.onConnection` argument). Cheap to clone.
#[derive(Clone)]
pub struct ServerConnection {
    inner: Arc<ConnInner>,
}

impl ServerConnection {
    /// The session id (17 characters; new on every connection).
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

    /// Closes the connection (cleanly, code 1000).
    pub fn close(&self) {
        let _ = self.inner.tx.send(Out::Close(1000, "server disconnect".into()));
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Runs `f` when the connection ends; at once if it already has.
    pub fn on_close(&self, f: impl FnOnce() + Send + 'static) {
        let mut hooks = lock(&self.inner.on_close);
        if self.is_closed() {
            drop(hooks);
            f();
        } else {
            hooks.push(Box::new(f));
        }
    }

    fn send(&self, v: Value) {
        let _ = self.inner.tx.send(Out::Text(v.to_string()));
    }

    fn finish(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let hooks = std::mem::take(&mut *lock(&self.inner.on_close));
        for h in hooks {
            h();
        }
    }
}

#[derive(Default)]
struct Scenario {
    refuse: AtomicBool,
    silent: AtomicBool,
    versions: Mutex<Option<Vec<String>>>,
    conns: Mutex<HashMap<String, ServerConnection>>,
    accepted: AtomicU64,
}

type ConnectionHook = Arc<dyn Fn(ServerConnection) + Send + Sync>;

struct Shared {
    config: Config,
    scenarios: Mutex<HashMap<String, Arc<Scenario>>>,
    hooks: Mutex<Vec<(u64, ConnectionHook)>>,
    next_hook: AtomicU64,
}

impl Shared {
    fn scenario(&self, name: &str) -> Arc<Scenario> {
        lock(&self.scenarios).entry(name.to_owned()).or_default().clone()
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
            }),
        }
    }

    /// Calls `f` with every new connection once its DDP session is up.
    pub fn on_connection(&self, f: impl Fn(ServerConnection) + Send + Sync + 'static) -> Registration {
        let id = self.shared.next_hook.fetch_add(1, Ordering::SeqCst);
        lock(&self.shared.hooks).push((id, Arc::new(f)));
        Registration { shared: self.shared.clone(), id }
    }

    /// Open connections of a scenario.
    pub fn connection_count(&self, scenario: &str) -> usize {
        lock(&self.shared.scenario(scenario).conns).len()
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
        router
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
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
    let on = q.get("on").map_or(true, |v| v != "false" && v != "0");
    let each = |out: fn() -> Out| {
        for c in lock(&sc.conns).values() {
            let _ = c.inner.tx.send(out());
        }
    };
    match action.as_str() {
        "drop" => each(|| Out::Drop),
        "disconnect" => each(|| Out::Close(1000, "server disconnect".into())),
        "refuse" => sc.refuse.store(on, Ordering::SeqCst),
        "silent" => sc.silent.store(on, Ordering::SeqCst),
        "versions" => {
            let v: Vec<String> = q.get("v").map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
            *lock(&sc.versions) = if v.is_empty() { None } else { Some(v) };
        }
        "reset" => {
            sc.refuse.store(false, Ordering::SeqCst);
            sc.silent.store(false, Ordering::SeqCst);
            *lock(&sc.versions) = None;
        }
        "stats" => {}
        _ => return control_response(StatusCode::NOT_FOUND, json!({"error": format!("unknown action {action:?}")})),
    }
    let conns = lock(&sc.conns);
    let ids: Vec<&String> = conns.keys().collect();
    control_response(
        StatusCode::OK,
        json!({
            "scenario": scenario,
            "connections": conns.len(),
            "sessions": ids,
            "accepted": sc.accepted.load(Ordering::SeqCst),
            "refuse": sc.refuse.load(Ordering::SeqCst),
            "silent": sc.silent.load(Ordering::SeqCst),
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

struct Session {
    conn: Option<ServerConnection>,
    version: String,
}

async fn run_connection(
    server: Server,
    sc: Arc<Scenario>,
    mut socket: WebSocket,
    address: Option<String>,
    http_headers: BTreeMap<String, String>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let config = server.shared.config.clone();
    let conn = ServerConnection {
        inner: Arc::new(ConnInner {
            id: random_id(),
            client_address: address,
            http_headers,
            tx,
            closed: AtomicBool::new(false),
            on_close: Mutex::new(Vec::new()),
        }),
    };
    let mut session = Session { conn: None, version: String::new() };
    let hb_on = !config.heartbeat_interval.is_zero();
    let mut last_received = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    // Registered before the handshake so that `drop`/`disconnect` reach
    // sockets that are still negotiating too.
    lock(&sc.conns).insert(conn.id().to_owned(), conn.clone());
    loop {
        let deadline = match ping_sent {
            Some(t) => t + config.heartbeat_timeout,
            None => last_received + config.heartbeat_interval,
        };
        let heartbeat_active = hb_on && session.conn.is_some() && session.version != "pre1";
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                if sc.silent.load(Ordering::SeqCst) {
                    continue;
                }
                last_received = Instant::now();
                ping_sent = None;
                match message {
                    Message::Text(text) => {
                        if !handle_text(&server, &sc, &conn, &mut session, text.as_str()) {
                            // Flush what the handler queued (the `failed`), then close.
                            while let Ok(Out::Text(t)) = rx.try_recv() {
                                let _ = socket.send(Message::Text(t.into())).await;
                            }
                            let _ = socket.send(Message::Close(None)).await;
                            break;
                        }
                    }
                    Message::Binary(_) => conn.send(error_reply("Bad request", None)),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            out = rx.recv() => {
                match out {
                    Some(Out::Text(t)) => {
                        if sc.silent.load(Ordering::SeqCst) { continue; }
                        if socket.send(Message::Text(t.into())).await.is_err() { break; }
                    }
                    Some(Out::Close(code, reason)) => {
                        let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                        break;
                    }
                    Some(Out::Drop) | None => break,
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
    lock(&sc.conns).remove(conn.id());
    conn.finish();
}

/// Handles one text frame; false means "close the socket now".
fn handle_text(server: &Server, sc: &Scenario, conn: &ServerConnection, session: &mut Session, text: &str) -> bool {
    let parsed: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            conn.send(error_reply("Bad request", Some(Value::String(text.to_owned()))));
            return true;
        }
    };
    let Some(msg) = parsed.get("msg").and_then(Value::as_str).map(str::to_owned) else {
        conn.send(error_reply("Bad request", Some(parsed)));
        return true;
    };
    if msg == "connect" {
        if session.conn.is_some() {
            conn.send(error_reply("Already connected", Some(parsed)));
            return true;
        }
        let server_versions = lock(&sc.versions).clone().unwrap_or_else(|| server.shared.config.versions.clone());
        let support: Option<Vec<String>> = parsed
            .get("support")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
        let asked = parsed.get("version").and_then(Value::as_str);
        let chosen = choose_version(&support.clone().unwrap_or_default(), &server_versions);
        let ok = support.is_some() && asked == Some(chosen.as_str()) && server_versions.contains(&chosen);
        if !ok {
            conn.send(json!({"msg":"failed","version":chosen}));
            return false;
        }
        session.version = chosen;
        session.conn = Some(conn.clone());
        conn.send(json!({"msg":"connected","session":conn.id()}));
        let hooks: Vec<ConnectionHook> = lock(&server.shared.hooks).iter().map(|(_, h)| h.clone()).collect();
        for h in hooks {
            h(conn.clone());
        }
        return true;
    }
    if session.conn.is_none() {
        conn.send(error_reply("Must connect first", Some(parsed)));
        return true;
    }
    match msg.as_str() {
        "ping" => {
            let mut pong = json!({"msg":"pong"});
            if let Some(id) = parsed.get("id") {
                pong["id"] = id.clone();
            }
            conn.send(pong);
        }
        "pong" => {}
        "method" => {
            let (Some(name), Some(id)) = (parsed.get("method").and_then(Value::as_str), parsed.get("id").and_then(Value::as_str))
            else {
                conn.send(error_reply("Malformed method invocation", Some(parsed)));
                return true;
            };
            if parsed.get("params").is_some_and(|p| !p.is_array()) {
                conn.send(error_reply("Malformed method invocation", Some(parsed)));
                return true;
            }
            let err = meteor_error(json!(404), &format!("Method '{name}' not found"));
            conn.send(json!({"msg":"result","id":id,"error":err}));
            conn.send(json!({"msg":"updated","methods":[id]}));
        }
        "sub" => {
            let (Some(name), Some(id)) = (parsed.get("name").and_then(Value::as_str), parsed.get("id").and_then(Value::as_str))
            else {
                conn.send(error_reply("Malformed subscription", Some(parsed)));
                return true;
            };
            if parsed.get("params").is_some_and(|p| !p.is_array()) {
                conn.send(error_reply("Malformed subscription", Some(parsed)));
                return true;
            }
            let err = meteor_error(json!(404), &format!("Subscription '{name}' not found"));
            conn.send(json!({"msg":"nosub","id":id,"error":err}));
        }
        "unsub" => {
            if let Some(id) = parsed.get("id").and_then(Value::as_str) {
                conn.send(json!({"msg":"nosub","id":id}));
            }
        }
        _ => conn.send(error_reply("Bad request", Some(parsed))),
    }
    true
}
