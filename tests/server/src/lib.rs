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
mod outbox;
mod publications;
pub mod random;
pub mod rooms;
mod scenario;
mod session;
mod socket;

use outbox::*;
pub use rooms::{JoinRequest, RoomConnection, RoomHooks};
use scenario::*;
pub use session::ServerConnection;
use session::*;
use socket::*;
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
