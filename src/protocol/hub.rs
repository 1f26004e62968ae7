//! One DDP session shared by many clients: the multiplexer that lets every
//! tab of a browser (or every connection of a process) talk to a server
//! through one socket. Pure: no I/O, no clock of its own (time comes in
//! with each input), no randomness.
//!
//! Each client is a whole DDP client (a [`Machine`](super::machine::Machine)
//! over a virtual socket). The hub speaks DDP to both sides:
//!
//! - **Upstream** it is one DDP client: it opens the socket, sends
//!   `connect`, answers the server's pings and sends its own (a heartbeat),
//!   counts what it received, and resumes the session after a drop when the
//!   server allows it.
//! - **To each client** it is a server: it answers `connect` with a session
//!   of the client's own (a new one each time, so a client never mistakes
//!   the hub for the session it had), answers pings, and hands over the
//!   documents the upstream session already holds as `added` messages.
//!
//! Between the two it rewrites ids: a client's `sub`, `unsub` and `method`
//! ids become `<client>~<id>` upstream, so the clients' ids never collide,
//! and `ready`, `nosub`, `result` and `updated` go back to the client they
//! belong to with its own ids. Everything else a client sends (its
//! `randomSeed`, params) goes through byte for byte. Data messages (`added`,
//! `changed`, `removed`, …) go to every client: the session's documents are
//! the union of every client's subscriptions, as in one Meteor client with
//! several subscriptions.
//!
//! # Drops
//!
//! - **The upstream socket drops** (or its heartbeat fails): the hub opens
//!   it again at once and asks the server to resume the session, with its
//!   count of received messages. The clients are kept waiting meanwhile
//!   (what they send is held). A resumed session continues unseen by the
//!   clients: the server replays what the hub missed, and the hub re-sends
//!   what the server may not have read (every `sub` without its `ready`,
//!   every `unsub` without its `nosub`, every `method` without its
//!   `result`), as one client does after a resumed session. If the server
//!   starts a new session instead, or the socket cannot be opened again,
//!   every client's socket is closed: each client then reconnects through
//!   the hub and applies its own new-session rules (re-sent calls with the
//!   same ids and seeds, data held until ready, no flicker).
//! - **A client goes** (its tab closed): its subscriptions are stopped
//!   upstream (`unsub`), and results of its calls are dropped. When the
//!   last one goes, the upstream socket closes (and opens again for the
//!   next client).

use super::doc::Doc;
use super::hash::FastMap;
use super::json::{self, Reader};
use super::message::{parse_frame, ClientMessage, Frame, ServerMessage};
use std::collections::VecDeque;

/// What separates a client's key from its own id upstream.
const SEP: char = '~';

/// The hub's timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubConfig {
    /// Upstream silence after which the hub sends a `ping` (0: no heartbeat).
    pub heartbeat_interval_ms: f64,
    /// How long the `ping` may go unanswered before the socket counts as dead.
    pub heartbeat_timeout_ms: f64,
    /// From asking for the socket to the server's `connected` (0: no limit).
    pub connect_timeout_ms: f64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { heartbeat_interval_ms: 17_500.0, heartbeat_timeout_ms: 15_000.0, connect_timeout_ms: 10_000.0 }
    }
}

/// What the hub asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOutput {
    /// Tell the client its socket is open.
    Accept(String),
    /// Send this frame to one client.
    ToClient(String, String),
    /// Send this frame to every client that has had its `connected` before
    /// this output, and to no other (in-order delivery makes that the
    /// clients that saw a `connected` frame first).
    Broadcast(String),
    /// Tell the client a frame of this length was too large to read, with
    /// its two ends.
    TooLarge(String, usize, String),
    /// Close the client's socket (it reconnects as after any drop).
    CloseClient(String),
    /// Open the upstream socket (closing any earlier one).
    OpenUpstream,
    /// Send this frame upstream.
    Send(String),
    /// Close the upstream socket.
    CloseUpstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    /// No socket.
    Down,
    /// Asked for a socket (to resume the session when there is one).
    Opening,
    /// `connect` sent.
    Handshaking,
    /// `connected` arrived.
    Connected,
}

#[derive(Debug, Default)]
struct Client {
    /// Its `connected` went out.
    connected: bool,
    /// It sent `connect` before the upstream session was there.
    waiting: bool,
    /// Sessions handed to it, for fresh ids.
    sessions: u32,
}

#[derive(Debug)]
struct Sub {
    /// The `sub` frame as sent upstream (re-sent after a resumption).
    frame: String,
    ready: bool,
    /// `unsub` sent, its `nosub` not yet here.
    stopping: bool,
}

/// The hub (see the module documentation).
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    up: Up,
    /// The upstream session, and the count of messages received in it.
    session: Option<String>,
    received: u64,
    /// The time of the latest input.
    clock: f64,
    /// When the socket was asked for.
    opened_at: f64,
    /// When the upstream last sent anything, and when the hub pinged.
    last_heard: f64,
    ping_sent: Option<f64>,
    /// Client frames held while the upstream session is not there.
    held: Vec<String>,
    clients: Keyed<Client>,
    /// Subscriptions and calls by upstream id.
    subs: Keyed<Sub>,
    calls: Keyed<String>,
    /// The session's documents, by collection and id.
    docs: FastMap<String, FastMap<String, Doc>>,
    out: VecDeque<HubOutput>,
}

impl Hub {
    /// A hub with no client and no socket.
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            config,
            up: Up::Down,
            session: None,
            received: 0,
            clock: 0.0,
            opened_at: 0.0,
            last_heard: 0.0,
            ping_sent: None,
            held: Vec::new(),
            clients: Keyed::default(),
            subs: Keyed::default(),
            calls: Keyed::default(),
            docs: FastMap::default(),
            out: VecDeque::new(),
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    /// How many clients are attached.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Whether the upstream session is there.
    pub fn connected(&self) -> bool {
        self.up == Up::Connected
    }

    /// When [`Hub::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<f64> {
        if matches!(self.up, Up::Opening | Up::Handshaking) && self.config.connect_timeout_ms > 0.0 {
            return Some(self.opened_at + self.config.connect_timeout_ms);
        }
        if self.up != Up::Connected || self.config.heartbeat_interval_ms <= 0.0 {
            return None;
        }
        Some(match self.ping_sent {
            Some(at) => at + self.config.heartbeat_timeout_ms,
            None => self.last_heard + self.config.heartbeat_interval_ms,
        })
    }

    /// Time passed: ping, or give up on a silent socket or on a handshake
    /// that does not finish.
    pub fn handle_timeout(&mut self, now: f64) {
        self.clock = now;
        match self.poll_timeout() {
            Some(due) if now >= due => {}
            _ => return,
        }
        if self.up != Up::Connected || self.ping_sent.is_some() {
            self.out.push_back(HubOutput::CloseUpstream);
            self.upstream_closed(now);
        } else {
            self.ping_sent = Some(now);
            self.out.push_back(HubOutput::Send(ClientMessage::Ping { id: None }.encode()));
        }
    }

    /// A client's socket opened.
    pub fn client_open(&mut self, key: &str, now: f64) {
        self.clock = now;
        if key.contains(SEP) {
            self.out.push_back(HubOutput::CloseClient(key.to_owned()));
            return;
        }
        if self.clients.contains_key(key) {
            // Opened already (a repeated request): nothing changes.
            return;
        }
        self.clients.insert(key.to_owned(), Client::default());
        self.out.push_back(HubOutput::Accept(key.to_owned()));
        if self.up == Up::Down {
            self.open_upstream();
        }
    }

    /// A client's socket closed: its subscriptions stop.
    pub fn client_close(&mut self, key: &str, now: f64) {
        self.clock = now;
        if self.clients.remove(key).is_none() {
            return;
        }
        if self.clients.is_empty() {
            // The last client went: no one needs the session, which ends
            // as a lone client's would.
            if self.up == Up::Connected {
                self.out.push_back(HubOutput::Send(ClientMessage::Disconnect.encode()));
            }
            if self.up != Up::Down {
                self.out.push_back(HubOutput::CloseUpstream);
            }
            self.up = Up::Down;
            self.ping_sent = None;
            self.start_over(now);
            return;
        }
        let prefix = format!("{key}{SEP}");
        let mine: Vec<String> = self.subs.keys().filter(|id| id.starts_with(&prefix)).cloned().collect();
        for id in mine {
            if let Some(sub) = self.subs.get_mut(&id) {
                if !sub.stopping {
                    sub.stopping = true;
                    let frame = ClientMessage::Unsub { id: id.clone() }.encode();
                    self.upstream(frame);
                }
            }
        }
        self.calls.retain(|id| !id.starts_with(&prefix));
        self.held.retain(|frame| !frame_id_of(frame).is_some_and(|id| id.starts_with(&prefix)));
    }

    /// A frame from a client.
    pub fn client_frame(&mut self, key: &str, text: &str, now: f64) {
        self.clock = now;
        if !self.clients.contains_key(key) {
            return;
        }
        let Some(head) = Head::read(text) else {
            // Unreadable: what a server would answer.
            let reply = format!("{{\"msg\":\"error\",\"reason\":\"Bad request\",\"offendingMessage\":{}}}", json::quoted(text));
            self.tell(key, reply);
            return;
        };
        match head.msg.as_str() {
            "connect" => {
                if self.up == Up::Connected {
                    self.welcome(key);
                } else {
                    if let Some(c) = self.clients.get_mut(key) {
                        c.waiting = true;
                    }
                    if self.up == Up::Down {
                        self.open_upstream();
                    }
                }
            }
            "ping" => {
                let pong = ClientMessage::Pong { id: head.id.clone() }.encode();
                self.tell(key, pong);
            }
            "pong" => {}
            // A client ending its session ends only its part of the shared
            // one: a `disconnect` upstream would end every client's (a
            // resuming server drops the session at once).
            "disconnect" => {
                self.client_close(key, now);
                self.out.push_back(HubOutput::CloseClient(key.to_owned()));
                return;
            }
            "sub" | "unsub" | "method" => {
                let Some((id, at)) = head.id.as_ref().zip(head.id_at) else {
                    let reply = format!("{{\"msg\":\"error\",\"reason\":\"Bad request\",\"offendingMessage\":{}}}", json::quoted(text));
                    self.tell(key, reply);
                    return;
                };
                let upstream_id = format!("{key}{SEP}{id}");
                let frame = splice(text, at, &upstream_id);
                match head.msg.as_str() {
                    "sub" => {
                        if self.subs.get_mut(&upstream_id).is_none() {
                            self.subs.insert(upstream_id, Sub { frame: frame.clone(), ready: false, stopping: false });
                        }
                    }
                    "unsub" => match self.subs.get_mut(&upstream_id) {
                        Some(sub) => sub.stopping = true,
                        None => {
                            // Not known upstream: answer as a server would.
                            let mut nosub = String::from("{\"msg\":\"nosub\",\"id\":");
                            json::write_str(id, &mut nosub);
                            nosub.push('}');
                            self.tell(key, nosub);
                            return;
                        }
                    },
                    _ => {
                        self.calls.insert(upstream_id, frame.clone());
                    }
                }
                self.upstream(frame);
            }
            // Nothing else is a client message; pass it on (a server
            // answers with an `error`).
            _ => self.upstream(text.to_owned()),
        }
    }

    /// The upstream socket opened: the handshake starts, resuming the
    /// session if there is one.
    pub fn upstream_open(&mut self, now: f64) {
        self.clock = now;
        if self.up != Up::Opening {
            return;
        }
        self.up = Up::Handshaking;
        self.last_heard = now;
        let resume = self.session.is_some();
        let connect = ClientMessage::Connect {
            session: self.session.clone(),
            version: "1".into(),
            support: vec!["1".into(), "pre2".into(), "pre1".into()],
            received_count: resume.then_some(self.received),
        };
        self.out.push_back(HubOutput::Send(connect.encode()));
    }

    /// The upstream socket closed (or could not open).
    pub fn upstream_closed(&mut self, now: f64) {
        self.clock = now;
        let was = self.up;
        self.up = Up::Down;
        self.ping_sent = None;
        match was {
            Up::Down => {}
            // A connected session: try once to resume it, the clients
            // waiting.
            Up::Connected if self.session.is_some() && !self.clients.is_empty() => self.open_upstream(),
            // A resumption that failed, or a first session that never
            // came: every client starts over.
            _ => self.start_over(now),
        }
    }

    /// A frame from the server.
    pub fn upstream_frame(&mut self, text: &str, now: f64) {
        self.clock = now;
        self.last_heard = now;
        self.ping_sent = None;
        let message = match parse_frame(text, usize::MAX) {
            Ok(Frame::Message(m)) => m,
            // The greeting of old servers; unreadable frames go to every
            // client, whose own checks report them.
            Ok(Frame::ServerId) => return,
            Err(_) => {
                if self.up == Up::Connected {
                    self.received += 1;
                }
                self.unreadable(text, None);
                return;
            }
        };
        if self.up == Up::Connected && !matches!(message, ServerMessage::Ping { .. } | ServerMessage::Pong { .. }) {
            self.received += 1;
        }
        match message {
            ServerMessage::Connected { session } => self.connected_upstream(session, now),
            // The hub proposes version 1, which every DDP server speaks; a
            // server that will not is as good as gone.
            ServerMessage::Failed { .. } => {
                self.out.push_back(HubOutput::CloseUpstream);
                self.up = Up::Down;
                self.start_over(now);
            }
            ServerMessage::Ping { id } => {
                self.out.push_back(HubOutput::Send(ClientMessage::Pong { id }.encode()));
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::Added { collection, id, fields } | ServerMessage::AddedBefore { collection, id, fields, .. } => {
                self.docs.entry(collection).or_default().insert(id, fields);
                self.out.push_back(HubOutput::Broadcast(text.to_owned()));
            }
            ServerMessage::Changed { collection, id, fields, cleared } => {
                if let Some(doc) = self.docs.get_mut(&collection).and_then(|c| c.get_mut(&id)) {
                    doc.merge(&fields, &cleared);
                }
                self.out.push_back(HubOutput::Broadcast(text.to_owned()));
            }
            ServerMessage::Removed { collection, id } => {
                if let Some(c) = self.docs.get_mut(&collection) {
                    c.remove(&id);
                    if c.is_empty() {
                        self.docs.remove(&collection);
                    }
                }
                self.out.push_back(HubOutput::Broadcast(text.to_owned()));
            }
            ServerMessage::MovedBefore { .. } => self.out.push_back(HubOutput::Broadcast(text.to_owned())),
            ServerMessage::Ready { subs } => {
                let mut by_client: Keyed<Vec<String>> = Keyed::default();
                for id in subs {
                    match self.subs.get_mut(&id) {
                        Some(sub) => sub.ready = true,
                        None => continue,
                    }
                    if let Some((key, own)) = id.split_once(SEP) {
                        by_client.entry(key).push(own.to_owned());
                    }
                }
                for (key, ids) in by_client {
                    let mut frame = String::from("{\"msg\":\"ready\",\"subs\":");
                    json::write_array(&ids.into_iter().map(serde_json::Value::String).collect::<Vec<_>>(), &mut frame);
                    frame.push('}');
                    self.tell(&key, frame);
                }
            }
            ServerMessage::Updated { methods } => {
                let mut by_client: Keyed<Vec<String>> = Keyed::default();
                for id in methods {
                    if let Some((key, own)) = id.split_once(SEP) {
                        by_client.entry(key).push(own.to_owned());
                    }
                }
                for (key, ids) in by_client {
                    let mut frame = String::from("{\"msg\":\"updated\",\"methods\":");
                    json::write_array(&ids.into_iter().map(serde_json::Value::String).collect::<Vec<_>>(), &mut frame);
                    frame.push('}');
                    self.tell(&key, frame);
                }
            }
            ServerMessage::NoSub { id, .. } => {
                self.subs.remove(&id);
                self.route(text, &id);
            }
            ServerMessage::Result { id, .. } => {
                self.calls.remove(&id);
                self.route(text, &id);
            }
            ServerMessage::Error { .. } => self.out.push_back(HubOutput::Broadcast(text.to_owned())),
        }
    }

    /// A frame from the server over the size limit: its length, and its two
    /// ends (see [`SocketEvent::TooLarge`](super::machine::SocketEvent)).
    pub fn upstream_too_large(&mut self, len: usize, ends: &str, now: f64) {
        self.clock = now;
        self.last_heard = now;
        self.ping_sent = None;
        if self.up == Up::Connected {
            self.received += 1;
        }
        self.unreadable(ends, Some(len));
    }

    /// A frame the hub cannot read goes to every client as it would reach
    /// it alone, with that client's ids as its own: each reports it, and
    /// fails the one call it names (a call never waits forever on a result
    /// that arrived unreadable).
    fn unreadable(&mut self, text: &str, too_large: Option<usize>) {
        let keys: Vec<String> = self.clients.iter().filter(|(_, c)| c.connected).map(|(k, _)| k.clone()).collect();
        for key in keys {
            let own = text.replace(&format!("{key}{SEP}"), "");
            self.out.push_back(match too_large {
                Some(len) => HubOutput::TooLarge(key, len, own),
                None => HubOutput::ToClient(key, own),
            });
        }
    }

    /// A frame whose `id` names a client's sub or call: to that client,
    /// with its own id.
    fn route(&mut self, text: &str, upstream_id: &str) {
        let Some((key, own)) = upstream_id.split_once(SEP) else { return };
        let Some(at) = Head::read(text).and_then(|h| h.id_at) else { return };
        let frame = splice(text, at, own);
        self.tell(key, frame);
    }

    fn tell(&mut self, key: &str, frame: String) {
        if self.clients.contains_key(key) {
            self.out.push_back(HubOutput::ToClient(key.to_owned(), frame));
        }
    }

    fn upstream(&mut self, frame: String) {
        if self.up == Up::Connected {
            self.out.push_back(HubOutput::Send(frame));
        } else {
            self.held.push(frame);
            if self.up == Up::Down {
                self.open_upstream();
            }
        }
    }

    fn open_upstream(&mut self) {
        self.up = Up::Opening;
        self.opened_at = self.clock;
        self.out.push_back(HubOutput::OpenUpstream);
    }

    /// The client's `connected`, then the session's documents.
    fn welcome(&mut self, key: &str) {
        let Some(client) = self.clients.get_mut(key) else { return };
        client.sessions += 1;
        client.waiting = false;
        client.connected = true;
        let session = format!("{}{SEP}{key}{SEP}{}", self.session.as_deref().unwrap_or(""), client.sessions);
        let mut frame = String::from("{\"msg\":\"connected\",\"session\":");
        json::write_str(&session, &mut frame);
        frame.push('}');
        self.out.push_back(HubOutput::ToClient(key.to_owned(), frame));
        let mut added = Vec::new();
        for (collection, docs) in &self.docs {
            for (id, doc) in docs {
                let mut frame = String::from("{\"msg\":\"added\",\"collection\":");
                json::write_str(collection, &mut frame);
                frame.push_str(",\"id\":");
                json::write_str(id, &mut frame);
                frame.push_str(",\"fields\":");
                frame.push_str(doc.text());
                frame.push('}');
                added.push(frame);
            }
        }
        for frame in added {
            self.out.push_back(HubOutput::ToClient(key.to_owned(), frame));
        }
    }

    fn connected_upstream(&mut self, session: String, now: f64) {
        if self.up != Up::Handshaking {
            return;
        }
        let resumed = self.session.as_deref() == Some(session.as_str());
        self.up = Up::Connected;
        self.last_heard = now;
        self.ping_sent = None;
        if resumed {
            // What the server may not have read: every sub without its
            // ready, unsub without its nosub, call without its result.
            let mut again: Vec<String> = Vec::new();
            for (id, sub) in self.subs.iter() {
                if sub.stopping {
                    again.push(ClientMessage::Unsub { id: id.clone() }.encode());
                } else if !sub.ready {
                    again.push(sub.frame.clone());
                }
            }
            again.extend(self.calls.values().cloned());
            let held = std::mem::take(&mut self.held);
            for frame in again.into_iter().chain(held.into_iter().filter(|f| !is_resent(f, &self.subs, &self.calls))) {
                self.out.push_back(HubOutput::Send(frame));
            }
            self.welcome_waiting();
            return;
        }
        if self.session.is_some() {
            // A new session where one was to be resumed: the clients start
            // over (they re-send everything on their new sessions).
            self.session = Some(session);
            self.received = 0;
            self.start_clients_over();
            return;
        }
        self.session = Some(session);
        self.received = 0;
        self.welcome_waiting();
        for frame in std::mem::take(&mut self.held) {
            self.out.push_back(HubOutput::Send(frame));
        }
    }

    fn welcome_waiting(&mut self) {
        let waiting: Vec<String> = self.clients.iter().filter(|(_, c)| c.waiting).map(|(k, _)| k.clone()).collect();
        for key in waiting {
            self.welcome(&key);
        }
    }

    /// No session to go on with: forget it, and close every client.
    fn start_over(&mut self, _now: f64) {
        self.session = None;
        self.received = 0;
        self.start_clients_over();
    }

    fn start_clients_over(&mut self) {
        self.subs.clear();
        self.calls.clear();
        self.docs.clear();
        self.held.clear();
        for key in std::mem::take(&mut self.clients).into_keys() {
            self.out.push_back(HubOutput::CloseClient(key));
        }
    }
}

/// Entries by key, in the order they came (a few clients and
/// subscriptions; calls answered mostly in order, so mostly taken from the
/// front). No B-tree in the wasm, no hash table per value type.
#[derive(Debug)]
struct Keyed<V>(VecDeque<(String, V)>);

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed(VecDeque::new())
    }
}

impl<V> Keyed<V> {
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }
    fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }
    fn get(&self, key: &str) -> Option<&V> {
        self.position(key).map(|i| &self.0[i].1)
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.position(key).map(|i| &mut self.0[i].1)
    }
    fn insert(&mut self, key: String, value: V) {
        match self.position(&key) {
            Some(i) => self.0[i].1 = value,
            None => self.0.push_back((key, value)),
        }
    }
    fn remove(&mut self, key: &str) -> Option<V> {
        self.position(key).and_then(|i| self.0.remove(i)).map(|(_, v)| v)
    }
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }
    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
    fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn into_keys(self) -> impl Iterator<Item = String> {
        self.0.into_iter().map(|(k, _)| k)
    }
}

impl Keyed<Vec<String>> {
    fn entry(&mut self, key: &str) -> &mut Vec<String> {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.0.push_back((key.to_owned(), Vec::new()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

impl<V> IntoIterator for Keyed<V> {
    type Item = (String, V);
    type IntoIter = std::collections::vec_deque::IntoIter<(String, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Whether a held frame is one the resumption already re-sends.
fn is_resent(frame: &str, subs: &Keyed<Sub>, calls: &Keyed<String>) -> bool {
    frame_id_of(frame).is_some_and(|id| calls.contains_key(&id) || subs.get(&id).is_some_and(|s| !s.ready || s.stopping))
}

fn frame_id_of(frame: &str) -> Option<String> {
    Head::read(frame).and_then(|h| h.id)
}

/// A client frame's `msg` and `id` (with where the id's text is).
struct Head {
    msg: String,
    id: Option<String>,
    id_at: Option<(usize, usize)>,
}

impl Head {
    fn read(text: &str) -> Option<Head> {
        let mut r = Reader::new(text);
        let mut msg = None;
        let mut id = None;
        let mut id_at = None;
        r.object(|r, key| {
            let value = r.skip_value()?;
            let at = value.as_ptr() as usize - text.as_ptr() as usize;
            match key.as_ref() {
                "msg" => msg = json::parse(value).ok().and_then(|v| v.as_str().map(str::to_owned)),
                "id" => {
                    id = json::parse(value).ok().and_then(|v| v.as_str().map(str::to_owned));
                    id_at = id.is_some().then_some((at, at + value.len()));
                }
                _ => {}
            }
            Ok(())
        })
        .ok()?;
        r.end().ok()?;
        Some(Head { msg: msg?, id, id_at })
    }
}

/// `text` with the JSON string at `at` replaced by `id`.
fn splice(text: &str, (start, end): (usize, usize), id: &str) -> String {
    let mut out = String::with_capacity(text.len() + id.len());
    out.push_str(&text[..start]);
    json::write_str(id, &mut out);
    out.push_str(&text[end..]);
    out
}

#[cfg(test)]
mod tests;
