//! Rooms (the js-collaboration model) on standard DDP, server side.
//! The wire protocol is in docs/rooms-protocol.md:
//! - method `rooms.join(roomId, {auth, query})` → `{connectionId}` (20 chars),
//!   or a Meteor.Error `join-rejected` with the middleware's reason;
//! - method `rooms.send(roomId, data, type)` → `true` (the acknowledgement);
//! - method `rooms.leave(roomId)` → `true`;
//! - publication `rooms.inbox`: each message to this session is an `added`
//!   in collection `rooms.inbox` with fields `{room, data, type}`, followed
//!   by `removed` of the same id.
//!
//! Server code sees [`RoomConnection`]s through hooks (`on_connect`,
//! `on_message`, `on_disconnect`) and middleware that may reject a join or
//! a message (`use_connect`, `use_message`).

use super::{lock, meteor_error, ServerConnection};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Arc<dyn Fn(&RoomConnection) + Send + Sync>;
type MessageHook = Arc<dyn Fn(&RoomConnection, &Value, Option<&str>) + Send + Sync>;
type DisconnectHook = Arc<dyn Fn(&RoomConnection, &str) + Send + Sync>;
type JoinMiddleware = Arc<dyn Fn(&JoinRequest) -> Result<(), String> + Send + Sync>;
type MessageMiddleware = Arc<dyn Fn(&RoomConnection, &Value, Option<&str>) -> Result<(), String> + Send + Sync>;

/// A join request, as middleware sees it.
pub struct JoinRequest {
    pub room_id: String,
    pub session_id: String,
    pub auth: Value,
    pub query: Value,
}

/// Hooks and middleware for every room of a server.
#[derive(Default, Clone)]
pub struct RoomHooks {
    connect: Vec<Hook>,
    message: Vec<MessageHook>,
    disconnect: Vec<DisconnectHook>,
    join_mw: Vec<JoinMiddleware>,
    message_mw: Vec<MessageMiddleware>,
}

impl RoomHooks {
    /// Observes joins.
    pub fn on_connect(mut self, f: impl Fn(&RoomConnection) + Send + Sync + 'static) -> Self {
        self.connect.push(Arc::new(f));
        self
    }
    /// Observes messages (after the middleware let them through).
    pub fn on_message(mut self, f: impl Fn(&RoomConnection, &Value, Option<&str>) + Send + Sync + 'static) -> Self {
        self.message.push(Arc::new(f));
        self
    }
    /// Observes leaves (reason: "client disconnect" or "transport close").
    pub fn on_disconnect(mut self, f: impl Fn(&RoomConnection, &str) + Send + Sync + 'static) -> Self {
        self.disconnect.push(Arc::new(f));
        self
    }
    /// Middleware that may reject a join (`Err(reason)`).
    pub fn use_connect(mut self, f: impl Fn(&JoinRequest) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.join_mw.push(Arc::new(f));
        self
    }
    /// Middleware that may reject a message (`Err(reason)`).
    pub fn use_message(mut self, f: impl Fn(&RoomConnection, &Value, Option<&str>) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.message_mw.push(Arc::new(f));
        self
    }

    /// The test server's rooms: a chat. A message goes to the others in the
    /// room; type "echo" goes back to the sender only; type "all" to
    /// everybody including the sender. A join whose auth is
    /// `{"reject": reason}` is rejected with that reason.
    pub fn chat() -> Self {
        RoomHooks::default()
            .use_connect(|req| match req.auth.get("reject").and_then(Value::as_str) {
                Some(reason) => Err(reason.to_owned()),
                None => Ok(()),
            })
            .on_message(|conn, data, kind| match kind {
                Some("echo") => conn.send(data.clone(), kind),
                Some("all") => conn.broadcast(data.clone(), kind, true),
                _ => conn.broadcast(data.clone(), kind, false),
            })
    }
}

struct Member {
    conn: RoomConnection,
}

/// All rooms of a scenario.
#[derive(Default)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, HashMap<String, Member>>>,
    next_message: AtomicU64,
}

/// One client's membership of one room.
#[derive(Clone)]
pub struct RoomConnection {
    id: String,
    room_id: String,
    session: ServerConnection,
    rooms: Arc<super::Scenario>,
    tags: Arc<Mutex<HashMap<String, Value>>>,
}

impl RoomConnection {
    /// The connection id (20 characters, also known to the client).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The room.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }
    /// The DDP session it belongs to.
    pub fn session(&self) -> &ServerConnection {
        &self.session
    }
    /// Per-connection data for server code.
    pub fn tags(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        lock(&self.tags)
    }
    /// Sends a message to this client only.
    pub fn send(&self, data: Value, kind: Option<&str>) {
        deliver(&self.rooms.rooms, &self.session, &self.room_id, data, kind);
    }
    /// Sends a message to everybody in the room, the sender only if `include_self`.
    pub fn broadcast(&self, data: Value, kind: Option<&str>, include_self: bool) {
        let targets: Vec<ServerConnection> = lock(&self.rooms.rooms.rooms)
            .get(&self.room_id)
            .map(|m| m.values().filter(|x| include_self || x.conn.id != self.id).map(|x| x.conn.session.clone()).collect())
            .unwrap_or_default();
        for s in targets {
            deliver(&self.rooms.rooms, &s, &self.room_id, data.clone(), kind);
        }
    }
}

fn deliver(rooms: &Rooms, session: &ServerConnection, room: &str, data: Value, kind: Option<&str>) {
    let n = rooms.next_message.fetch_add(1, Ordering::SeqCst);
    let id = format!("m{n}");
    let mut fields = json!({"room": room, "data": data});
    if let Some(k) = kind {
        fields["type"] = json!(k);
    }
    session.send(json!({"msg":"added","collection":"rooms.inbox","id":id,"fields":fields}));
    session.send(json!({"msg":"removed","collection":"rooms.inbox","id":id}));
}

fn connection_id() -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..20).map(|_| A[rng.random_range(0..A.len())] as char).collect()
}

/// Handles the `rooms.*` methods; `None` if `name` is not one of them.
pub(crate) fn method(
    sc: &Arc<super::Scenario>,
    hooks: &RoomHooks,
    session: &ServerConnection,
    name: &str,
    params: &[Value],
) -> Option<Result<Option<Value>, Value>> {
    let room = params.first().and_then(Value::as_str).unwrap_or_default().to_owned();
    let result = match name {
        "rooms.join" => {
            if room.is_empty() {
                return Some(Err(meteor_error(json!("bad-room"), "A room id is needed")));
            }
            let opts = params.get(1).cloned().unwrap_or(Value::Null);
            let req = JoinRequest {
                room_id: room.clone(),
                session_id: session.id().to_owned(),
                auth: opts.get("auth").cloned().unwrap_or(Value::Null),
                query: opts.get("query").cloned().unwrap_or(Value::Null),
            };
            for mw in &hooks.join_mw {
                if let Err(reason) = mw(&req) {
                    return Some(Err(meteor_error(json!("join-rejected"), &reason)));
                }
            }
            // A session joins a room once: a re-join replaces the old membership.
            leave(sc, hooks, session, &room, "client disconnect");
            let conn = RoomConnection {
                id: connection_id(),
                room_id: room.clone(),
                session: session.clone(),
                rooms: sc.clone(),
                tags: Arc::default(),
            };
            {
                let mut rooms = lock(&sc.rooms.rooms);
                // A session that is ending leaves its rooms (`session_ended`,
                // which reads them under this lock after the mark): a join
                // after that would leave a member behind for good.
                if session.is_ending() {
                    return Some(Err(meteor_error(json!("session-ended"), "The session has ended")));
                }
                rooms.entry(room).or_default().insert(session.id().to_owned(), Member { conn: conn.clone() });
            }
            for h in &hooks.connect {
                h(&conn);
            }
            Ok(Some(json!({"connectionId": conn.id})))
        }
        "rooms.send" => {
            let member = lock(&sc.rooms.rooms).get(&room).and_then(|m| m.get(session.id())).map(|m| m.conn.clone());
            let Some(conn) = member else {
                return Some(Err(meteor_error(json!("not-joined"), "Join the room first")));
            };
            let data = params.get(1).cloned().unwrap_or(Value::Null);
            let kind = params.get(2).and_then(Value::as_str);
            for mw in &hooks.message_mw {
                if let Err(reason) = mw(&conn, &data, kind) {
                    return Some(Err(meteor_error(json!("message-rejected"), &reason)));
                }
            }
            for h in &hooks.message {
                h(&conn, &data, kind);
            }
            Ok(Some(json!(true)))
        }
        "rooms.leave" => Ok(Some(json!(leave(sc, hooks, session, &room, "client disconnect")))),
        _ => return None,
    };
    Some(result)
}

/// Removes a session from a room; true if it was a member.
fn leave(sc: &super::Scenario, hooks: &RoomHooks, session: &ServerConnection, room: &str, reason: &str) -> bool {
    let member = lock(&sc.rooms.rooms).get_mut(room).and_then(|m| m.remove(session.id()));
    match member {
        Some(m) => {
            for h in &hooks.disconnect {
                h(&m.conn, reason);
            }
            true
        }
        None => false,
    }
}

/// The session ended: it leaves every room.
pub(crate) fn session_ended(sc: &super::Scenario, hooks: &RoomHooks, session: &ServerConnection) {
    let rooms: Vec<String> = lock(&sc.rooms.rooms).keys().cloned().collect();
    for room in rooms {
        leave(sc, hooks, session, &room, "transport close");
    }
}

/// Members of a room (for stats).
pub(crate) fn members(sc: &super::Scenario, room: &str) -> Vec<String> {
    lock(&sc.rooms.rooms).get(room).map(|m| m.values().map(|x| x.conn.id.clone()).collect()).unwrap_or_default()
}

impl std::fmt::Debug for RoomHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RoomHooks({} middleware, {} hooks)",
            self.join_mw.len() + self.message_mw.len(),
            self.connect.len() + self.message.len() + self.disconnect.len()
        )
    }
}
