//! One DDP session shared by many clients: the multiplexer that lets every
//! tab of a browser (or every connection of a thread) talk to a server
//! through one socket. Pure: no I/O, no clock of its own (time comes in
//! with each input), no randomness.
//!
//! Each client is a whole DDP client (a [`Machine`](super::machine::Machine)
//! over a virtual socket), known by a key that stays the same across its
//! sockets. The hub speaks DDP to both sides:
//!
//! - **Upstream** it is one DDP client: it opens the socket, sends
//!   `connect`, answers the server's pings and sends its own (a heartbeat),
//!   counts what it received, and resumes the session after a drop.
//! - **To each client** it is a server that resumes sessions: it answers
//!   `connect` with a session of the client's own, counts and keeps (up to
//!   a bound) every message it sends the client, and when the client comes
//!   back with that session and its `receivedCount`, it resumes it,
//!   replaying what the client missed. A client it cannot resume gets a new
//!   session and the session's documents as `added` messages.
//!
//! Between the two it rewrites ids: a client's `sub`, `unsub` and `method`
//! ids become `<client>~<id>` upstream, so the clients' ids never collide,
//! and `ready`, `nosub`, `result` and `updated` go back to the client they
//! belong to with its own ids. Everything else a client sends (its
//! `randomSeed`, params) goes through byte for byte. Data messages (`added`,
//! `changed`, `removed`, …) go to every client: the session's documents are
//! the union of every client's subscriptions, as in one Meteor client with
//! several subscriptions. What a client sends again after it resumed (a
//! `sub` the hub has, a call still running upstream or already answered)
//! is not sent upstream again: each call runs once.
//!
//! # Drops
//!
//! - **The upstream socket drops** (or its heartbeat fails, or its
//!   handshake does not finish in time): every client's socket closes, so
//!   each shows the truth and reconnects. The hub opens the upstream again
//!   at once, then with a growing delay, asking the server to resume the
//!   session with its count of received messages, for a bounded window. A
//!   resumed session goes on: the server replays what the hub missed, the
//!   hub re-sends what the server may not have read (every `sub` without
//!   its `ready`, every `unsub` without its `nosub`, every `method` without
//!   its `result`), as one client does, and the clients resume theirs. If
//!   the server starts a new session instead, or the window passes, the
//!   clients get new sessions too and apply their own new-session rules
//!   (re-sent calls with the same ids and seeds, data held until ready).
//! - **A client's socket closes** (its page went offline, its heartbeat
//!   failed): its subscriptions and calls stay, for it to resume. When no
//!   client has a socket for a while, the session ends.
//! - **A client leaves** (`disconnect`, or [`Hub::client_gone`]: its tab
//!   closed): its subscriptions are stopped upstream (`unsub`), and results
//!   of its calls are dropped. When the last one leaves, the session ends.
//! - **The hub itself goes** (the leading tab died): the next hub takes the
//!   session over ([`Hub::adopt`], from the [`Hub::session_record`] the
//!   last one published). If the server resumes it, the earlier hub's
//!   subscriptions are stopped before anything else is sent and their
//!   documents dropped (the clients, on new sessions, make theirs again,
//!   under new upstream ids), the results of calls the server already read
//!   are replayed and kept for their clients until they come back (a call
//!   keeps its upstream id, `<client>~<id>`, so its re-send is known to the
//!   server and not run again).

use super::doc::Doc;
use super::hash::FastMap;
use super::json::{self, Reader};
use super::message::{parse_frame, ClientMessage, Frame, ServerMessage};
use std::collections::VecDeque;
use std::rc::Rc;

/// What separates a client's key from its own id upstream.
const SEP: char = '~';

/// The hub's timing, in milliseconds, and its bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubConfig {
    /// Upstream silence after which the hub sends a `ping` (0: no heartbeat).
    pub heartbeat_interval_ms: f64,
    /// How long the `ping` may go unanswered before the socket counts as dead.
    pub heartbeat_timeout_ms: f64,
    /// From asking for the socket to the server's `connected` (0: no limit).
    pub connect_timeout_ms: f64,
    /// How long after a drop the hub tries to resume the session.
    pub resume_window_ms: f64,
    /// How long the session outlives the last client's socket.
    pub idle_ms: f64,
    /// Messages kept per client for it to resume (beyond them it gets a
    /// new session).
    pub replay_frames: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            heartbeat_interval_ms: 17_500.0,
            heartbeat_timeout_ms: 15_000.0,
            connect_timeout_ms: 10_000.0,
            resume_window_ms: 60_000.0,
            idle_ms: 30_000.0,
            replay_frames: 5_000,
        }
    }
}

/// What the hub asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOutput {
    /// Tell the client its socket is open.
    Accept(String),
    /// Send this frame to one client.
    ToClient(String, String),
    /// Send this frame to every client that has had its `connected` on its
    /// current socket before this output, and to no other (in-order
    /// delivery makes that the clients whose last `connected` came first
    /// and whose socket is still open).
    Broadcast(String),
    /// Tell the client a frame of this length was too large to read, with
    /// its two ends.
    TooLarge(String, usize, String),
    /// Close the client's socket (it reconnects as after any drop).
    CloseClient(String),
    /// Close the client's socket with 1009 (Message Too Big): the server
    /// refused the largest message it had not answered, this client's, and
    /// the client fails that call (or ends that subscription) rather than
    /// send it again.
    RefuseClient(String),
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

/// A message kept for a client to resume: its number, its text, and the
/// call it answers (a `result`).
#[derive(Debug)]
struct Kept {
    seq: u64,
    text: Rc<str>,
    answers: Option<String>,
}

#[derive(Debug, Default)]
struct Client {
    /// Its socket is open.
    attached: bool,
    /// Its `connected` went out on its current socket.
    connected: bool,
    /// It sent `connect` before the upstream session was there: the session
    /// and count it asked to resume.
    waiting: Option<(Option<String>, Option<u64>)>,
    /// Its current session (`<upstream>~<key>~<n>`), and sessions made.
    session: Option<String>,
    sessions: u32,
    /// Messages counted in its session, and the last ones kept.
    sent: u64,
    kept: VecDeque<Kept>,
}

#[derive(Debug)]
struct Sub {
    /// The `sub` frame as sent upstream (re-sent after a resumption).
    frame: String,
    /// The frame without its id: clients whose `sub` reads the same share
    /// this one (one subscription on the server, however many tabs).
    same: String,
    /// The clients' subscriptions it serves (`<client>~<id>`).
    holders: Vec<String>,
    /// The last holder, when it stopped it: its `nosub` goes to it.
    last: Option<String>,
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
    /// After a drop: when it happened, attempts since, the next attempt.
    dropped_at: Option<f64>,
    attempts: u32,
    retry_at: Option<f64>,
    /// Since when no client has a socket.
    idle_since: Option<f64>,
    /// A frame could not be read: the session cannot be resumed (a
    /// document may be missing).
    missed: bool,
    /// Client frames held while the upstream session is not there.
    held: Vec<String>,
    clients: Keyed<Client>,
    /// Subscriptions and calls by upstream id, and which subscription
    /// serves each client's.
    subs: Keyed<Sub>,
    served_by: Keyed<String>,
    calls: Keyed<String>,
    /// The session's documents, by collection and id.
    docs: FastMap<String, FastMap<String, Doc>>,
    out: VecDeque<HubOutput>,
    /// Added to this hub's upstream subscription ids (`<client>~<id>~<tag>`)
    /// when it took a session over, so that none is an earlier hub's.
    tag: String,
    /// An earlier hub's session is asked for: its subscriptions, stopped if
    /// the server resumes it.
    adopting: Option<Vec<String>>,
    /// Those stopped, their `nosub`s not yet here: every document message
    /// until then is theirs, and dropped.
    dropping: Vec<String>,
    /// The session was an earlier hub's: answers for clients not back yet
    /// are kept for them (`result` frames by upstream id, `updated` ids).
    took_over: bool,
    orphans: Keyed<String>,
    orphans_updated: Vec<String>,
    /// The session or its subscriptions changed since [`Hub::record_changed`].
    changed: bool,
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
            dropped_at: None,
            attempts: 0,
            retry_at: None,
            idle_since: None,
            missed: false,
            held: Vec::new(),
            clients: Keyed::default(),
            subs: Keyed::default(),
            served_by: Keyed::default(),
            calls: Keyed::default(),
            docs: FastMap::default(),
            out: VecDeque::new(),
            tag: String::new(),
            adopting: None,
            dropping: Vec::new(),
            took_over: false,
            orphans: Keyed::default(),
            orphans_updated: Vec::new(),
            changed: false,
        }
    }

    /// Asks the server, on the first upstream socket, to resume `record`, a
    /// session an earlier hub had (see the module documentation). `tag`
    /// (unique to this hub: the leading tab's id) marks its own upstream
    /// subscription ids. Only before the hub has a session of its own.
    pub fn adopt(&mut self, record: super::durable::SessionRecord, tag: &str) {
        if self.session.is_some() || self.up != Up::Down || tag.is_empty() {
            return;
        }
        self.session = Some(record.session);
        self.received = record.received;
        self.adopting = Some(record.subs);
        self.tag = tag.to_owned();
    }

    /// What the next hub needs to take the session over (`at` left 0):
    /// `None` when there is nothing it could resume.
    pub fn session_record(&self) -> Option<super::durable::SessionRecord> {
        let session = self.session.clone().filter(|_| !self.missed)?;
        let subs = self.subs.keys().chain(&self.dropping).chain(self.adopting.iter().flatten()).cloned().collect();
        Some(super::durable::SessionRecord { session, received: self.received, subs, at: 0.0 })
    }

    /// Whether the session or its subscriptions changed since last asked
    /// (the record is then worth publishing at once; otherwise only its
    /// count moved).
    pub fn record_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Messages received in the upstream session.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    /// How many clients the hub knows (with a socket or due back).
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Whether the upstream session is there.
    pub fn connected(&self) -> bool {
        self.up == Up::Connected
    }

    /// When [`Hub::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<f64> {
        let idle = self.idle_since.map(|t| t + self.config.idle_ms);
        let own = match self.up {
            Up::Opening | Up::Handshaking if self.config.connect_timeout_ms > 0.0 => Some(self.opened_at + self.config.connect_timeout_ms),
            Up::Connected if self.config.heartbeat_interval_ms > 0.0 => Some(match self.ping_sent {
                Some(at) => at + self.config.heartbeat_timeout_ms,
                None => self.last_heard + self.config.heartbeat_interval_ms,
            }),
            Up::Down => self.retry_at,
            _ => None,
        };
        match (own, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: ping; give up on a silent socket or a handshake that
    /// does not finish; try to resume again; end an idle session.
    pub fn handle_timeout(&mut self, now: f64) {
        self.clock = now;
        if self.idle_since.is_some_and(|t| now >= t + self.config.idle_ms) {
            self.end();
            return;
        }
        match self.up {
            Up::Opening | Up::Handshaking
                if self.config.connect_timeout_ms > 0.0 && now >= self.opened_at + self.config.connect_timeout_ms =>
            {
                self.out.push_back(HubOutput::CloseUpstream);
                self.upstream_closed(now);
            }
            Up::Connected if self.config.heartbeat_interval_ms > 0.0 => match self.ping_sent {
                Some(at) if now >= at + self.config.heartbeat_timeout_ms => {
                    self.out.push_back(HubOutput::CloseUpstream);
                    self.upstream_closed(now);
                }
                None if now >= self.last_heard + self.config.heartbeat_interval_ms => {
                    self.ping_sent = Some(now);
                    self.out.push_back(HubOutput::Send(ClientMessage::Ping { id: None }.encode()));
                }
                _ => {}
            },
            Up::Down if self.retry_at.is_some_and(|t| now >= t) => {
                self.retry_at = None;
                self.open_upstream();
            }
            _ => {}
        }
    }

    /// A client's socket opened.
    pub fn client_open(&mut self, key: &str, now: f64) {
        self.clock = now;
        if key.contains(SEP) {
            self.out.push_back(HubOutput::CloseClient(key.to_owned()));
            return;
        }
        if self.clients.get(key).is_some_and(|c| c.attached) {
            // Opened already (a repeated request): nothing changes.
            return;
        }
        if !self.clients.contains_key(key) {
            self.clients.insert(key.to_owned(), Client::default());
        }
        if let Some(c) = self.clients.get_mut(key) {
            c.attached = true;
            c.connected = false;
            c.waiting = None;
        }
        self.idle_since = None;
        self.out.push_back(HubOutput::Accept(key.to_owned()));
        if self.up == Up::Down {
            self.retry_at = None;
            self.open_upstream();
        }
    }

    /// A client's socket closed: it may come back and resume.
    pub fn client_close(&mut self, key: &str, now: f64) {
        self.clock = now;
        let Some(c) = self.clients.get_mut(key) else { return };
        c.attached = false;
        c.connected = false;
        c.waiting = None;
        self.check_idle();
    }

    /// A client left for good (its tab is gone): its subscriptions stop.
    pub fn client_gone(&mut self, key: &str, now: f64) {
        self.clock = now;
        if self.clients.remove(key).is_none() {
            return;
        }
        if self.clients.is_empty() {
            self.end();
            return;
        }
        self.forget_subs_of(key);
        let prefix = format!("{key}{SEP}");
        self.calls.retain(|id| !id.starts_with(&prefix));
        self.held.retain(|frame| !frame_id_of(frame).is_some_and(|id| id.starts_with(&prefix) && !frame.contains("\"unsub\"")));
        self.check_idle();
    }

    /// A frame from a client.
    pub fn client_frame(&mut self, key: &str, text: &str, now: f64) {
        self.clock = now;
        if !self.clients.get(key).is_some_and(|c| c.attached) {
            return;
        }
        let Some(head) = Head::read(text) else {
            self.bad_request(key, text);
            return;
        };
        match head.msg.as_str() {
            "connect" => {
                if self.up == Up::Connected {
                    self.welcome(key, head.session, head.received);
                } else {
                    if let Some(c) = self.clients.get_mut(key) {
                        c.waiting = Some((head.session, head.received));
                    }
                    if self.up == Up::Down {
                        self.retry_at = None;
                        self.open_upstream();
                    }
                }
            }
            "ping" => {
                let pong = ClientMessage::Pong { id: head.id.clone() }.encode();
                self.out.push_back(HubOutput::ToClient(key.to_owned(), pong));
            }
            "pong" => {}
            // A client ending its session ends only its part of the shared
            // one: a `disconnect` upstream would end every client's (a
            // resuming server drops the session at once).
            "disconnect" => {
                self.client_gone(key, now);
                self.out.push_back(HubOutput::CloseClient(key.to_owned()));
            }
            "sub" | "unsub" | "method" => {
                let Some((id, at)) = head.id.as_ref().zip(head.id_at) else {
                    self.bad_request(key, text);
                    return;
                };
                let upstream_id = format!("{key}{SEP}{id}");
                match head.msg.as_str() {
                    "sub" => {
                        // Sent again after a resumption: the hub has it
                        // (a server ignores a duplicate sub id too).
                        if self.served_by.contains_key(&upstream_id) {
                            return;
                        }
                        let same = splice(text, at, "");
                        let shared = self.subs.iter().find(|(_, s)| !s.stopping && s.same == same).map(|(u, s)| (u.clone(), s.ready));
                        match shared {
                            // Another client's, the same: shared.
                            Some((upstream, ready)) => {
                                if let Some(sub) = self.subs.get_mut(&upstream) {
                                    sub.holders.push(upstream_id.clone());
                                }
                                self.served_by.insert(upstream_id, upstream);
                                if ready {
                                    self.tell(key, id_list_frame("ready", "subs", vec![id.clone()]), None);
                                }
                            }
                            None => {
                                let upstream_id = if self.tag.is_empty() { upstream_id } else { format!("{upstream_id}{SEP}{}", self.tag) };
                                let frame = splice(text, at, &upstream_id);
                                self.changed = true;
                                let holder = format!("{key}{SEP}{id}");
                                let sub = Sub {
                                    frame: frame.clone(),
                                    same,
                                    holders: vec![holder.clone()],
                                    last: None,
                                    ready: false,
                                    stopping: false,
                                };
                                self.subs.insert(upstream_id.clone(), sub);
                                self.served_by.insert(holder, upstream_id);
                                self.upstream(frame);
                            }
                        }
                    }
                    "unsub" => {
                        let stopping = self.subs.iter().any(|(_, s)| s.last.as_deref() == Some(upstream_id.as_str()));
                        if !self.release_sub(&upstream_id) && !stopping {
                            // Not known upstream (or still held by other
                            // clients): answered as a server would.
                            let mut nosub = String::from("{\"msg\":\"nosub\",\"id\":");
                            json::write_str(id, &mut nosub);
                            nosub.push('}');
                            self.tell(key, nosub, None);
                        }
                    }
                    _ => {
                        // Still running upstream, or answered and kept for
                        // the client to resume: it runs once.
                        let answered =
                            self.clients.get(key).is_some_and(|c| c.kept.iter().any(|k| k.answers.as_deref() == Some(id.as_str())));
                        if self.calls.contains_key(&upstream_id) || answered {
                            return;
                        }
                        let frame = splice(text, at, &upstream_id);
                        self.calls.insert(upstream_id, frame.clone());
                        self.upstream(frame);
                    }
                }
            }
            // Nothing else is a client message: what a server answers.
            _ => self.bad_request(key, text),
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
        let resume = self.session.is_some() && !self.missed;
        let connect = ClientMessage::Connect {
            session: if resume { self.session.clone() } else { None },
            version: "1".into(),
            support: vec!["1".into(), "pre2".into(), "pre1".into()],
            received_count: resume.then_some(self.received),
        };
        self.out.push_back(HubOutput::Send(connect.encode()));
    }

    /// The upstream socket closed (or could not open).
    pub fn upstream_closed(&mut self, now: f64) {
        self.clock = now;
        if self.up == Up::Down {
            return;
        }
        self.up = Up::Down;
        self.ping_sent = None;
        // Every client sees the drop (its status tells the truth) and
        // comes back to resume.
        let attached: Vec<String> = self.clients.iter().filter(|(_, c)| c.attached).map(|(k, _)| k.clone()).collect();
        for key in attached {
            if let Some(c) = self.clients.get_mut(&key) {
                c.attached = false;
                c.connected = false;
                c.waiting = None;
            }
            self.out.push_back(HubOutput::CloseClient(key));
        }
        if self.clients.is_empty() {
            self.end();
            return;
        }
        self.check_idle();
        if self.session.is_none() {
            // No session yet: the clients' own retries open the next socket.
            return;
        }
        let dropped_at = *self.dropped_at.get_or_insert(now);
        if self.missed || now >= dropped_at + self.config.resume_window_ms {
            self.start_over();
            return;
        }
        // At once, then after 1, 2, 4… s (at most 10 s).
        let delay = if self.attempts == 0 { 0.0 } else { (1000.0 * 2f64.powi(self.attempts as i32 - 1)).min(10_000.0) };
        self.attempts += 1;
        if delay == 0.0 {
            self.open_upstream();
        } else {
            self.retry_at = Some(now + delay);
        }
    }

    /// The upstream socket closed with this code: with 1009 (Message Too
    /// Big) the largest message the server had not answered is what it
    /// refused, and would refuse again: it is not re-sent, and its client
    /// is told (as one client's machine blames it); then as any close.
    pub fn upstream_closed_with(&mut self, code: u16, now: f64) {
        if code == 1009 && self.up == Up::Connected {
            self.refuse_largest();
        }
        self.upstream_closed(now);
    }

    fn refuse_largest(&mut self) {
        let call = self.calls.iter().map(|(id, f)| (f.len(), id.clone(), true));
        let subs = self.subs.iter().filter(|(_, s)| !s.ready && !s.stopping).map(|(id, s)| (s.frame.len(), id.clone(), false));
        let Some((_, id, is_call)) = call.chain(subs).max_by_key(|(len, _, _)| *len) else { return };
        let owners: Vec<String> = if is_call {
            self.calls.remove(&id);
            id.split_once(SEP).map(|(k, _)| k.to_owned()).into_iter().collect()
        } else {
            let holders = self.subs.remove(&id).map(|s| s.holders).unwrap_or_default();
            for h in &holders {
                self.served_by.remove(h);
            }
            holders.iter().filter_map(|h| h.split_once(SEP).map(|(k, _)| k.to_owned())).collect()
        };
        for key in owners {
            if let Some(c) = self.clients.get_mut(&key).filter(|c| c.attached) {
                c.attached = false;
                c.connected = false;
                c.waiting = None;
                self.out.push_back(HubOutput::RefuseClient(key));
            }
        }
    }

    /// A frame from the server.
    pub fn upstream_frame(&mut self, text: &str, now: f64) {
        self.clock = now;
        self.last_heard = now;
        self.ping_sent = None;
        let message = match parse_frame(text, usize::MAX) {
            Ok(Frame::Message(m)) => m,
            // The greeting of old servers.
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
        if !self.dropping.is_empty() && self.adopted_data(&message) {
            return;
        }
        match message {
            ServerMessage::Connected { session } => self.connected_upstream(session, now),
            // The hub proposes version 1, which every DDP server speaks; a
            // server that will not is as good as gone.
            ServerMessage::Failed { .. } => {
                self.out.push_back(HubOutput::CloseUpstream);
                self.session = None;
                self.upstream_closed(now);
            }
            ServerMessage::Ping { id } => {
                self.out.push_back(HubOutput::Send(ClientMessage::Pong { id }.encode()));
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::Added { collection, id, fields } | ServerMessage::AddedBefore { collection, id, fields, .. } => {
                self.docs.entry(collection).or_default().insert(id, fields);
                self.broadcast(text);
            }
            ServerMessage::Changed { collection, id, fields, cleared } => {
                if let Some(doc) = self.docs.get_mut(&collection).and_then(|c| c.get_mut(&id)) {
                    doc.merge(&fields, &cleared);
                }
                self.broadcast(text);
            }
            ServerMessage::Removed { collection, id } => {
                if let Some(c) = self.docs.get_mut(&collection) {
                    c.remove(&id);
                    if c.is_empty() {
                        self.docs.remove(&collection);
                    }
                }
                self.broadcast(text);
            }
            ServerMessage::MovedBefore { .. } => self.broadcast(text),
            ServerMessage::Ready { subs } => {
                let mut by_client: Keyed<Vec<String>> = Keyed::default();
                for id in subs {
                    let Some(sub) = self.subs.get_mut(&id) else {
                        // A subscription the server had ended (its nosub
                        // lost in a drop) and ran again when it was sent
                        // again: stopped, as one client does.
                        self.upstream(ClientMessage::Unsub { id }.encode());
                        continue;
                    };
                    sub.ready = true;
                    for holder in &sub.holders {
                        if let Some((key, own)) = holder.split_once(SEP) {
                            by_client.entry(key).push(own.to_owned());
                        }
                    }
                }
                for (key, ids) in by_client {
                    self.tell(&key, id_list_frame("ready", "subs", ids), None);
                }
            }
            ServerMessage::Updated { methods } => {
                let mut by_client: Keyed<Vec<String>> = Keyed::default();
                for id in methods {
                    if self.keep_for_later(&id) {
                        self.orphans_updated.push(id);
                        if self.orphans_updated.len() > self.config.replay_frames {
                            self.orphans_updated.remove(0);
                        }
                        continue;
                    }
                    if let Some((key, own)) = id.split_once(SEP) {
                        by_client.entry(key).push(own.to_owned());
                    }
                }
                for (key, ids) in by_client {
                    self.tell(&key, id_list_frame("updated", "methods", ids), None);
                }
            }
            // Ended by the server (with an error), or after the last
            // holder's `unsub`: to every client it served.
            ServerMessage::NoSub { id, .. } => {
                let Some(sub) = self.subs.remove(&id) else { return };
                self.changed = true;
                for holder in sub.holders.iter().chain(sub.last.iter()) {
                    self.served_by.remove(holder);
                    self.route(text, holder, false);
                }
            }
            ServerMessage::Result { id, .. } => {
                self.calls.remove(&id);
                if self.keep_for_later(&id) {
                    self.orphans.insert(id, text.to_owned());
                    while self.orphans.len() > self.config.replay_frames {
                        self.orphans.0.pop_front();
                    }
                } else {
                    self.route(text, &id, true);
                }
            }
            // An error names a client's frame: to that client, or to all.
            ServerMessage::Error { .. } => self.unreadable(text, None),
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
        self.missed = true;
        self.unreadable(ends, Some(len));
    }

    /// A frame the hub cannot read (or an `error`) goes to every client as
    /// it would reach it alone, with that client's ids as its own: each
    /// reports it, and fails the one call it names (a call never waits
    /// forever on a result that arrived unreadable).
    fn unreadable(&mut self, text: &str, too_large: Option<usize>) {
        let keys: Vec<String> = self.clients.iter().filter(|(_, c)| c.connected).map(|(k, _)| k.clone()).collect();
        for key in keys {
            let own = text.replace(&format!("{key}{SEP}"), "");
            match too_large {
                Some(len) => {
                    self.count(&key, Rc::from(own.as_str()), None);
                    self.out.push_back(HubOutput::TooLarge(key, len, own));
                }
                None => self.tell(&key, own, None),
            }
        }
    }

    /// While an earlier hub's subscriptions stop: whether `message` is
    /// theirs (dropped); see [`Stopping`](super::durable::Stopping).
    fn adopted_data(&mut self, message: &ServerMessage) -> bool {
        use super::durable::{while_stopping, Stopping};
        let stopping = while_stopping(&mut self.dropping, message);
        self.changed |= matches!(stopping, Stopping::Stopped(_) | Stopping::Over(_));
        matches!(stopping, Stopping::Theirs | Stopping::Stopped(_))
    }

    /// An answer (upstream method id) for a client not back on this hub
    /// yet, in a session taken over: kept for it.
    fn keep_for_later(&self, id: &str) -> bool {
        self.took_over && id.split_once(SEP).is_some_and(|(key, _)| self.clients.get(key).is_none_or(|c| c.session.is_none()))
    }

    /// A client is back with a new session: the answers kept for it.
    fn hand_kept_answers(&mut self, key: &str) {
        if self.orphans.is_empty() && self.orphans_updated.is_empty() {
            return;
        }
        let prefix = format!("{key}{SEP}");
        let mine: Vec<(String, String)> =
            self.orphans.iter().filter(|(id, _)| id.starts_with(&prefix)).map(|(i, t)| (i.clone(), t.clone())).collect();
        self.orphans.retain(|id| !id.starts_with(&prefix));
        for (id, text) in mine {
            self.route(&text, &id, true);
        }
        let (updated, rest): (Vec<String>, Vec<String>) =
            std::mem::take(&mut self.orphans_updated).into_iter().partition(|id| id.starts_with(&prefix));
        self.orphans_updated = rest;
        let own: Vec<String> = updated.iter().filter_map(|id| id.split_once(SEP).map(|(_, own)| own.to_owned())).collect();
        if !own.is_empty() {
            self.tell(key, id_list_frame("updated", "methods", own), None);
        }
    }

    /// A client no longer needs its subscription `holder`: it stops on the
    /// server when no other client shares it (its `nosub` then goes to
    /// this client). False when the hub does not know it, or other clients
    /// still hold it.
    fn release_sub(&mut self, holder: &str) -> bool {
        let Some(upstream) = self.served_by.get(holder).cloned() else { return false };
        let Some(sub) = self.subs.get_mut(&upstream) else { return false };
        sub.holders.retain(|h| h != holder);
        if !sub.holders.is_empty() {
            self.served_by.remove(holder);
            return false;
        }
        sub.stopping = true;
        self.changed = true;
        sub.last = Some(holder.to_owned());
        self.upstream(ClientMessage::Unsub { id: upstream }.encode());
        true
    }

    /// A frame whose `id` names a client's sub or call: to that client,
    /// with its own id.
    fn route(&mut self, text: &str, upstream_id: &str, result: bool) {
        let Some((key, own)) = upstream_id.split_once(SEP) else { return };
        let Some(at) = Head::read(text).and_then(|h| h.id_at) else { return };
        let frame = splice(text, at, own);
        self.tell(key, frame, result.then(|| own.to_owned()));
    }

    fn bad_request(&mut self, key: &str, text: &str) {
        let reply = format!("{{\"msg\":\"error\",\"reason\":\"Bad request\",\"offendingMessage\":{}}}", json::quoted(text));
        self.tell(key, reply, None);
    }

    /// A message for one client: counted and kept for it to resume, and
    /// sent if its socket is open.
    fn tell(&mut self, key: &str, frame: String, answers: Option<String>) {
        let Some(c) = self.clients.get(key) else { return };
        let open = c.connected;
        if c.session.is_some() {
            self.count(key, Rc::from(frame.as_str()), answers);
        }
        if open {
            self.out.push_back(HubOutput::ToClient(key.to_owned(), frame));
        }
    }

    /// A data message for every client (its socket open or not: kept for
    /// those due back).
    fn broadcast(&mut self, text: &str) {
        let shared: Rc<str> = Rc::from(text);
        let keys: Vec<String> = self.clients.iter().filter(|(_, c)| c.session.is_some()).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.count(&key, shared.clone(), None);
        }
        self.out.push_back(HubOutput::Broadcast(text.to_owned()));
    }

    fn count(&mut self, key: &str, text: Rc<str>, answers: Option<String>) {
        let bound = self.config.replay_frames;
        let Some(c) = self.clients.get_mut(key) else { return };
        c.sent += 1;
        c.kept.push_back(Kept { seq: c.sent, text, answers });
        while c.kept.len() > bound {
            c.kept.pop_front();
        }
    }

    fn upstream(&mut self, frame: String) {
        if self.up == Up::Connected {
            self.out.push_back(HubOutput::Send(frame));
        } else {
            self.held.push(frame);
            if self.up == Up::Down && self.retry_at.is_none() {
                self.open_upstream();
            }
        }
    }

    fn open_upstream(&mut self) {
        self.up = Up::Opening;
        self.opened_at = self.clock;
        self.out.push_back(HubOutput::OpenUpstream);
    }

    /// The client's `connected`: its session resumed (what it missed
    /// replayed), or a new one (the session's documents handed over).
    fn welcome(&mut self, key: &str, asked: Option<String>, received: Option<u64>) {
        let Some(c) = self.clients.get_mut(key) else { return };
        c.waiting = None;
        c.connected = true;
        let first_kept = c.kept.front().map_or(c.sent + 1, |k| k.seq);
        let resumable = asked.is_some() && asked == c.session && received.is_some_and(|n| n <= c.sent && n + 1 >= first_kept);
        if resumable {
            let n = received.unwrap_or(0);
            let mut frame = String::from("{\"msg\":\"connected\",\"session\":");
            json::write_str(c.session.as_deref().unwrap_or(""), &mut frame);
            frame.push('}');
            self.out.push_back(HubOutput::ToClient(key.to_owned(), frame));
            let replay: Vec<String> = c.kept.iter().filter(|k| k.seq > n).map(|k| k.text.to_string()).collect();
            for text in replay {
                self.out.push_back(HubOutput::ToClient(key.to_owned(), text));
            }
            return;
        }
        // A new session: as a server's, without the client's earlier
        // subscriptions (it makes them again); its calls still running
        // upstream stay, and their results come to it.
        c.sessions += 1;
        // (With this hub's tag: a session taken over has the earlier hub's
        // id, and a client must never mistake its new session for its old.)
        let session = format!("{}{SEP}{key}{SEP}{}{}", self.session.as_deref().unwrap_or(""), self.tag, c.sessions);
        c.session = Some(session.clone());
        c.sent = 0;
        c.kept.clear();
        self.forget_subs_of(key);
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
            self.tell(key, frame, None);
        }
        self.hand_kept_answers(key);
    }

    /// Lets go of a client's subscriptions (each stops upstream unless
    /// another client shares it); their `nosub`s go to no one.
    fn forget_subs_of(&mut self, key: &str) {
        let prefix = format!("{key}{SEP}");
        let mine: Vec<String> = self.served_by.keys().filter(|id| id.starts_with(&prefix)).cloned().collect();
        for holder in mine {
            self.release_sub(&holder);
            self.served_by.remove(&holder);
            for (_, sub) in self.subs.iter_mut() {
                if sub.last.as_deref() == Some(holder.as_str()) {
                    sub.last = None;
                }
            }
        }
    }

    fn connected_upstream(&mut self, session: String, now: f64) {
        if self.up != Up::Handshaking {
            return;
        }
        let resumed = self.session.as_deref() == Some(session.as_str());
        let adopting = self.adopting.take();
        self.changed = true;
        self.up = Up::Connected;
        self.last_heard = now;
        self.ping_sent = None;
        self.dropped_at = None;
        self.attempts = 0;
        if resumed {
            // An earlier hub's session: its subscriptions stop first.
            if let Some(subs) = adopting {
                self.took_over = true;
                for id in &subs {
                    self.out.push_back(HubOutput::Send(ClientMessage::Unsub { id: id.clone() }.encode()));
                }
                self.dropping = subs;
            }
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
        } else {
            if self.session.is_some() && adopting.is_none() {
                // The server starts over: so does every client (a new
                // session each, and its own new-session rules).
                self.reset_session();
            }
            self.session = Some(session);
            self.received = 0;
            for frame in std::mem::take(&mut self.held) {
                self.out.push_back(HubOutput::Send(frame));
            }
        }
        let waiting: Vec<(String, (Option<String>, Option<u64>))> =
            self.clients.iter().filter_map(|(k, c)| c.waiting.clone().map(|w| (k.clone(), w))).collect();
        for (key, (asked, received)) in waiting {
            self.welcome(&key, asked, received);
        }
    }

    /// The session cannot be resumed: forget what belonged to it; every
    /// client gets a new session when it comes back.
    fn start_over(&mut self) {
        self.reset_session();
        self.session = None;
        self.received = 0;
    }

    fn reset_session(&mut self) {
        self.changed = true;
        self.adopting = None;
        self.dropping.clear();
        self.took_over = false;
        self.orphans.clear();
        self.orphans_updated.clear();
        self.subs.clear();
        self.served_by.clear();
        self.calls.clear();
        self.docs.clear();
        self.held.retain(|f| Head::read(f).is_some_and(|h| h.msg != "unsub"));
        self.missed = false;
        self.dropped_at = None;
        self.attempts = 0;
        self.retry_at = None;
        for (_, c) in self.clients.iter_mut() {
            c.session = None;
            c.sent = 0;
            c.kept.clear();
        }
    }

    /// No one needs the session: it ends (as a lone client's would).
    fn end(&mut self) {
        if self.up == Up::Connected {
            self.out.push_back(HubOutput::Send(ClientMessage::Disconnect.encode()));
        }
        if self.up != Up::Down {
            self.out.push_back(HubOutput::CloseUpstream);
        }
        self.up = Up::Down;
        self.ping_sent = None;
        self.idle_since = None;
        self.held.clear();
        self.start_over();
        for key in std::mem::take(&mut self.clients).into_keys() {
            self.out.push_back(HubOutput::CloseClient(key));
        }
    }

    /// Starts the idle clock when no client has a socket.
    fn check_idle(&mut self) {
        if self.clients.iter().any(|(_, c)| c.attached) {
            self.idle_since = None;
        } else if self.idle_since.is_none() {
            self.idle_since = Some(self.clock);
        }
    }
}

fn id_list_frame(msg: &str, field: &str, ids: Vec<String>) -> String {
    let mut frame = format!("{{\"msg\":\"{msg}\",\"{field}\":");
    json::write_array(&ids.into_iter().map(serde_json::Value::String).collect::<Vec<_>>(), &mut frame);
    frame.push('}');
    frame
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
    fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
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
    /// `connect`'s session and received count.
    session: Option<String>,
    received: Option<u64>,
}

impl Head {
    fn read(text: &str) -> Option<Head> {
        let mut r = Reader::new(text);
        let mut msg = None;
        let mut id = None;
        let mut id_at = None;
        let mut session = None;
        let mut received = None;
        r.object(|r, key| {
            let value = r.skip_value()?;
            let at = value.as_ptr() as usize - text.as_ptr() as usize;
            match key.as_ref() {
                "msg" => msg = json::parse(value).ok().and_then(|v| v.as_str().map(str::to_owned)),
                "session" => session = json::parse(value).ok().and_then(|v| v.as_str().map(str::to_owned)),
                "receivedCount" => received = json::parse(value).ok().and_then(|v| v.as_u64()),
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
        Some(Head { msg: msg?, id, id_at, session, received })
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

#[cfg(all(test, not(target_arch = "wasm32")))]
mod simulated;
#[cfg(test)]
mod tests;
