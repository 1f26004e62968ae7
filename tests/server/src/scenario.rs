//! Scenarios and their control endpoint: the per-scenario state that
//! fault injection steers (`POST /control/<scenario>/<action>`).

use super::*;

pub(crate) struct Scenario {
    pub(crate) refuse: AtomicBool,
    pub(crate) silent: AtomicBool,
    pub(crate) resume: AtomicBool,
    pub(crate) grace_ms: AtomicU64,
    pub(crate) versions: Mutex<Option<Vec<String>>>,
    /// `drop-on`: the kind of client frame whose arrival cuts the socket.
    pub(crate) drop_on: Mutex<Option<String>>,
    /// Open sockets (handshake done or not), for faults and stats.
    pub(crate) sockets: Mutex<HashMap<u64, Arc<Outbox>>>,
    /// Live sessions, attached or within their grace period.
    pub(crate) sessions: Mutex<HashMap<String, ServerConnection>>,
    pub(crate) accepted: AtomicU64,
    /// `sub` and `unsub` messages received, for stats.
    pub(crate) sub_requests: AtomicU64,
    pub(crate) unsub_requests: AtomicU64,
    pub(crate) state: methods::State,
    pub(crate) accounts: Arc<accounts::Accounts>,
    pub(crate) docs: publications::Docs,
    pub(crate) rooms: rooms::Rooms,
    pub(crate) room_hooks: RoomHooks,
}

impl Scenario {
    pub(crate) fn new(grace: Duration, room_hooks: RoomHooks) -> Self {
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
    pub(crate) fn take_drop_on(&self, frame: &str) -> bool {
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

pub(crate) fn control_response(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

pub(crate) async fn control(
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
