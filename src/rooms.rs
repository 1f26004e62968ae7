//! Rooms in the style of MESCIUS js-collaboration, on plain DDP (see
//! `docs/rooms-protocol.md`): a [`Client`] owns one DDP connection (one
//! socket); [`Client::connect`] joins a room and gives a [`Room`] with its
//! server-assigned `id`, `connected`, `send`, `close` and events. Rooms
//! rejoin after reconnects on their own, before anything they queued, and
//! their sends travel in the connection's outbox (acknowledged, exactly once
//! with a resuming server).

use crate::connect;
use crate::connection::{Connection, Done, DoneHook};

/// Rooms' calls belong to their session: no durable outbox keeps them.
const TRANSIENT: CallOptions = CallOptions {
    wait: false,
    no_retry: false,
    timeout_ms: None,
    random_seed: None,
    return_stub_value: false,
    throw_stub_exceptions: false,
    transient: true,
};
use crate::data::Subscription;
use crate::error::Error;
use crate::protocol::hash::{FastSet, NameMap};
use crate::protocol::machine::{CallOptions, Event, MethodError};

/// The stream collection the rooms' messages come in (the `rooms.inbox`
/// publication's; see docs/rooms-protocol.md).
const STREAM_ROOMS: &str = "rooms.inbox";
use crate::protocol::room::{RoomAction, RoomEvent, RoomState};
use crate::reactive::{ListenerHandle, Observable, Registry};
use crate::{MethodCall, Options};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

/// What a room tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomNotice {
    /// Joined (again); `id` is set.
    Connect,
    /// A message: its data and optional type.
    Message { data: Value, kind: Option<String> },
    /// The membership is down, with the reason.
    Disconnect(String),
    /// Something went wrong (a rejected join: `code` "join-rejected").
    Error { code: String, reason: String },
    /// The connection starts attempt `n`.
    ReconnectAttempt(u32),
    /// Back after `n` attempts.
    Reconnect(u32),
    /// The connection gave up.
    ReconnectFailed,
}

/// Join options: `auth` and `query` go to the server's middleware.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinOptions {
    pub auth: Value,
    pub query: Value,
}

pub(crate) struct RoomInner {
    room_id: String,
    options: JoinOptions,
    conn: Connection,
    state: RefCell<RoomState>,
    id: Observable<Option<String>>,
    connected: Observable<bool>,
    listeners: Rc<Registry<dyn Fn(&RoomNotice)>>,
    /// Recent message ids, so a message is never delivered twice.
    seen: RefCell<(FastSet<String>, VecDeque<String>)>,
    rooms: Weak<RefCell<NameMap<Rc<RoomInner>>>>,
}

const SEEN: usize = 1024;

impl RoomInner {
    fn publish(&self) {
        let (id, connected) = {
            let s = self.state.borrow();
            (s.id().map(str::to_owned), s.connected())
        };
        self.id.set(id);
        self.connected.set(connected);
    }

    fn emit(&self, notices: Vec<RoomNotice>) {
        self.publish();
        for n in notices {
            for l in self.listeners.snapshot() {
                l(&n);
            }
        }
    }

    fn events(&self, events: Vec<RoomEvent>) {
        let notices = events
            .into_iter()
            .map(|e| match e {
                RoomEvent::Connect => RoomNotice::Connect,
                RoomEvent::Disconnect(r) => RoomNotice::Disconnect(r),
                RoomEvent::Rejected(reason) => RoomNotice::Error { code: "join-rejected".into(), reason },
                RoomEvent::ReconnectAttempt(n) => RoomNotice::ReconnectAttempt(n),
                RoomEvent::Reconnect(n) => RoomNotice::Reconnect(n),
                RoomEvent::ReconnectFailed => RoomNotice::ReconnectFailed,
            })
            .collect();
        self.emit(notices);
    }

    fn act(self: &Rc<Self>, action: Option<RoomAction>) {
        match action {
            Some(RoomAction::Join) => {
                let mut opts = serde_json::Map::new();
                opts.insert("auth".into(), self.options.auth.clone());
                opts.insert("query".into(), self.options.query.clone());
                let opts = Value::Object(opts);
                let params = vec![Value::from(self.room_id.as_str()), opts];
                let weak = Rc::downgrade(self);
                // The outcome is handled straight from the connection's pump
                // (no executor: the npm package carries none).
                let done: DoneHook = Box::new(move |outcome| {
                    let Some(room) = weak.upgrade() else { return };
                    let events = match outcome {
                        Ok(v) => {
                            let id = v.as_ref().and_then(|v| v.get("connectionId")).and_then(Value::as_str).unwrap_or_default().to_owned();
                            room.state.borrow_mut().joined(id)
                        }
                        Err(MethodError::Server { reason, error, .. }) => {
                            let reason = reason.unwrap_or_else(|| crate::protocol::json::to_text(&error));
                            room.state.borrow_mut().join_rejected(reason)
                        }
                        // Closed or cancelled: the room is going away anyway.
                        Err(_) => Vec::new(),
                    };
                    room.events(events);
                });
                let options = CallOptions { wait: true, transient: true, ..CallOptions::default() };
                // Refused at once (queue full, closed): as before, the room
                // stays unjoined and the connection's own error says why.
                let _ = self.conn.place_call("rooms.join", params, options, None, Vec::new(), Done::Hook(done));
            }
            Some(RoomAction::Leave) => self.conn.apply_value("rooms.leave", vec![Value::from(self.room_id.as_str())], TRANSIENT).detach(),
            None => {}
        }
    }

    fn message(&self, id: &str, data: Value, kind: Option<String>) {
        if !self.state.borrow().accepts_messages() {
            return;
        }
        {
            let mut seen = self.seen.borrow_mut();
            if !seen.0.insert(id.to_owned()) {
                return;
            }
            seen.1.push_back(id.to_owned());
            if seen.1.len() > SEEN {
                if let Some(old) = seen.1.pop_front() {
                    seen.0.remove(&old);
                }
            }
        }
        self.emit(vec![RoomNotice::Message { data, kind }]);
    }
}

type RoomMap = Rc<RefCell<NameMap<Rc<RoomInner>>>>;

/// Rooms over one DDP connection.
///
/// ```no_run
/// # fn f() -> Result<(), ddp_live::Error> {
/// use ddp_live::rooms::{Client, JoinOptions, RoomNotice};
/// let client = Client::new("https://collab.example.com", ddp_live::Options::default())?;
/// let room = client.connect("doc-42", JoinOptions::default());
/// let _h = room.on_notice(|n| if let RoomNotice::Message { data, kind } = n {
///     println!("{kind:?}: {data}");
/// });
/// room.send(serde_json::json!({"op": "insert", "at": 3}), Some("op")).detach();
/// # Ok(()) }
/// ```
pub struct Client {
    conn: Connection,
    rooms: RoomMap,
    _inbox: Subscription,
    _handles: Vec<ListenerHandle>,
}

impl Client {
    /// Connects to the DDP server at `url` (Meteor's URL rules).
    pub fn new(url: &str, options: Options) -> Result<Client, Error> {
        let conn = connect(url, options)?;
        Ok(Client::with_connection(conn))
    }

    /// Rooms over an existing connection.
    pub fn with_connection(conn: Connection) -> Client {
        let rooms: RoomMap = Rc::default();
        // Its messages are a stream, never documents in the store.
        conn.drive(|m| m.add_stream_collection(STREAM_ROOMS));
        let inbox = conn.subscribe_raw(STREAM_ROOMS, Vec::new());
        let weak = Rc::downgrade(&rooms);
        // Weak: the connection's own listener list must not hold it.
        let c = conn.downgrade();
        let events = conn.on_event(move |e| {
            let Some(rooms) = weak.upgrade() else { return };
            let all: Vec<Rc<RoomInner>> = rooms.borrow().values().cloned().collect();
            match e {
                Event::Disconnected { reason } => {
                    for r in all {
                        let ev = r.state.borrow_mut().link_down(reason.as_str());
                        r.events(ev);
                    }
                }
                Event::Connected { .. } if c.upgrade().is_some_and(|c| c.resumed()) => {
                    for r in all {
                        let (a, ev) = r.state.borrow_mut().link_up(true);
                        r.events(ev);
                        r.act(a);
                    }
                }
                Event::ReconnectAttempt { attempt } => {
                    for r in all {
                        let ev = r.state.borrow_mut().reconnect_attempt(*attempt);
                        r.events(ev);
                    }
                }
                Event::ReconnectFailed => {
                    for r in all {
                        let ev = r.state.borrow_mut().reconnect_failed();
                        r.events(ev);
                    }
                }
                Event::Stream { collection, id, fields } if collection == STREAM_ROOMS => {
                    let room = fields.get("room").and_then(Value::as_str).unwrap_or_default();
                    let target = rooms.borrow().get(room).cloned();
                    if let Some(r) = target {
                        let data = fields.get("data").cloned().unwrap_or(Value::Null);
                        let kind = fields.get("type").and_then(Value::as_str).map(str::to_owned);
                        r.message(id, data, kind);
                    }
                }
                _ => {}
            }
        });
        // A new session: every room joins again, ahead of its queued sends.
        let weak = Rc::downgrade(&rooms);
        let hook = conn.on_reconnect(move |_| {
            let Some(rooms) = weak.upgrade() else { return };
            let all: Vec<Rc<RoomInner>> = rooms.borrow().values().cloned().collect();
            for r in all {
                let (a, ev) = r.state.borrow_mut().link_up(false);
                r.events(ev);
                r.act(a);
            }
        });
        Client { conn, rooms, _inbox: inbox, _handles: vec![events, hook] }
    }

    /// The DDP connection underneath.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Joins room `room_id` (leaving an earlier membership of the same room
    /// made by this client).
    pub fn connect(&self, room_id: &str, options: JoinOptions) -> Room {
        let old = self.rooms.borrow_mut().remove(room_id);
        if let Some(old) = old {
            Room { inner: old }.close();
        }
        let (state, action) = RoomState::new();
        let inner = Rc::new(RoomInner {
            room_id: room_id.to_owned(),
            options,
            conn: self.conn.clone(),
            state: RefCell::new(state),
            id: Observable::new(None),
            connected: Observable::new(false),
            listeners: Rc::default(),
            seen: RefCell::default(),
            rooms: Rc::downgrade(&self.rooms),
        });
        self.rooms.borrow_mut().insert(room_id.to_owned(), inner.clone());
        inner.act(Some(action));
        Room { inner }
    }

    /// Leaves every room and closes the connection.
    pub fn close(&self) {
        let all: Vec<Rc<RoomInner>> = self.rooms.borrow().values().cloned().collect();
        for r in all {
            Room { inner: r }.close();
        }
        self.conn.close();
    }
}

/// One membership of one room (js-collaboration's `Connection`). Cheap to
/// clone.
#[derive(Clone)]
pub struct Room {
    pub(crate) inner: Rc<RoomInner>,
}

impl Room {
    /// The connection id the server assigned (20 characters); `None` while
    /// not joined; new after every rejoin with a new session.
    pub fn id(&self) -> Option<String> {
        self.inner.id.get()
    }

    /// The id as an observable.
    pub fn id_observable(&self) -> &Observable<Option<String>> {
        &self.inner.id
    }

    /// The room's id.
    pub fn room_id(&self) -> &str {
        &self.inner.room_id
    }

    /// True while joined.
    pub fn connected(&self) -> bool {
        self.inner.connected.get()
    }

    /// The connected flag as a signal.
    pub fn connected_signal(&self) -> impl futures_signals::signal::Signal<Item = bool> {
        self.inner.connected.signal()
    }

    /// The connected flag as an observable.
    pub fn connected_observable(&self) -> &Observable<bool> {
        &self.inner.connected
    }

    /// Calls `f` with every notice while the returned handle lives (dropping it removes the listener).
    pub fn on_notice(&self, f: impl Fn(&RoomNotice) + 'static) -> ListenerHandle {
        self.inner.listeners.add(Rc::new(f))
    }

    /// The incoming messages as a stream of `(data, type)`.
    pub fn messages(&self) -> futures_channel::mpsc::UnboundedReceiver<(Value, Option<String>)> {
        let (tx, rx) = futures_channel::mpsc::unbounded();
        let h = self.on_notice(move |n| {
            if let RoomNotice::Message { data, kind } = n {
                let _ = tx.unbounded_send((data.clone(), kind.clone()));
            }
        });
        h.forget(); // lives as long as the room
        rx
    }

    /// Sends `data` (string, number, array or plain object) with an
    /// optional type. Goes through the outbox: queued while offline,
    /// delivered in order after the rejoin; resolves when the server
    /// acknowledged it.
    pub fn send(&self, data: impl Serialize, kind: Option<&str>) -> MethodCall<Value> {
        let params =
            serde_json::to_value(data).map_err(|e| MethodError::BadArguments(e.to_string())).and_then(|data| self.send_params(data, kind));
        match params {
            Ok(params) => self.inner.conn.apply_value("rooms.send", params, TRANSIENT),
            Err(e) => MethodCall::failed(e),
        }
    }

    /// [`Room::send`] whose outcome goes to `done` (for the JS layer).
    #[cfg(feature = "js-full")]
    pub(crate) fn send_with(&self, data: Value, kind: Option<&str>, done: DoneHook) -> Result<u64, MethodError> {
        let params = self.send_params(data, kind)?;
        self.inner.conn.place_call("rooms.send", params, TRANSIENT, None, Vec::new(), Done::Hook(done))
    }

    /// The arguments of `rooms.send`, or `closed` once the room is closed.
    fn send_params(&self, data: Value, kind: Option<&str>) -> Result<Vec<Value>, MethodError> {
        if self.inner.state.borrow().finished() {
            return Err(MethodError::Closed);
        }
        Ok(vec![Value::from(self.inner.room_id.as_str()), data, kind.map_or(Value::Null, Value::from)])
    }

    /// Leaves the room (the socket stays for the client's other rooms).
    pub fn close(&self) {
        let (action, events) = self.inner.state.borrow_mut().close();
        if let Some(rooms) = self.inner.rooms.upgrade() {
            let mine = rooms.borrow().get(&self.inner.room_id).is_some_and(|r| Rc::ptr_eq(r, &self.inner));
            if mine {
                rooms.borrow_mut().remove(&self.inner.room_id);
            }
        }
        self.inner.events(events);
        self.inner.act(action);
    }
}
