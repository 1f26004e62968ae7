//! One socket for every tab (`Options::share_across_tabs`): a host piece
//! that wraps the connection's host and changes one thing, how its socket
//! opens. Everything else of the connection (its machine, its calls,
//! subscriptions, stubs, accounts, durable outbox) is the same as alone.
//!
//! The tabs of a browser that connect to the same URL form a group
//! ([`Host::join_tabs`]: a BroadcastChannel and a Web Lock). The tab holding
//! the lock leads: it runs a [`Hub`] over the only real socket. Every tab,
//! the leader's own included, connects through a virtual socket to the hub:
//! the leader's directly, the others' over the channel. So each tab is a
//! whole DDP client with a truthful status (a tab is connected when the hub
//! answered its `connect`), and its calls and subscriptions keep their own
//! rules across drops.
//!
//! When the leader goes (closed, crashed, its tab killed), the browser gives
//! the lock to the next tab waiting, which announces itself. Every other
//! tab then closes its virtual socket and reconnects through the new
//! leader, as after any drop: with a new session, unanswered calls re-sent
//! with their ids and seeds (`noRetry` ones failing), subscriptions
//! re-made, data held until ready (no flicker).
//!
//! Messages on the channel, `head` then `body`:
//!
//! | head | from | body |
//! |---|---|---|
//! | `o:<client>` | a tab | opens its virtual socket |
//! | `f:<client>` | a tab | a frame for the hub |
//! | `c:<client>` | a tab | closes its virtual socket |
//! | `A:<client>` | the leader | the socket is open; body: the leader's id |
//! | `F:<client>/<leader>` | the leader | a frame for that client |
//! | `X:<client>/<leader>` | the leader | its socket is closed (body `1009`: its largest message was too big for the server) |
//! | `T:<client>/<leader>` | the leader | a frame too large to read; body: `<length>:<its two ends>` |
//! | `B:<leader>` | the leader | a frame for every client (data) |
//! | `L:<leader>` | a new leader | announces itself |
//! | `S:<leader>` | the leader | its upstream session, for the next leader to take over (a [`SessionRecord`](crate::protocol::durable::SessionRecord); empty: none) |
//! | `P:<member>` | a tab | is the leader there? |
//! | `Q:<member>` | the leader | it is |
//!
//! **A leader that does not answer** (its page frozen, or hung in a long
//! task) keeps its lock. A tab that heard nothing from it for 2 s after
//! its last message to it asks whether it is there (`P:`); with no answer
//! within 2 s more, the tab takes the lock over ([`TabLink::take_over`]) and
//! leads, taking the session over as after any leader. The old leader,
//! when its page runs again, hears it lost the lock (or the new leader's
//! `L:`), stands down without ending the session, and reconnects through
//! the new leader. A leader answers at once whatever its socket does (a
//! hidden tab's timers are throttled, its messages are not), so only a
//! page that runs no code loses its lead.
//!
//! **The session, handed over.** The leader publishes what the next leader
//! needs to resume its upstream session (the session id, its count of
//! received messages, its upstream subscriptions): at once when the session
//! or its subscriptions change, and with its count at most a second late
//! otherwise (a late count only makes the server replay more). When it
//! dies, the next leader asks the server to resume that session
//! ([`Hub::adopt`]): on a server that resumes sessions, calls the dead
//! leader had sent run once (their results replayed to their tabs), and
//! the tabs' data comes anew through their own subscriptions. A leader
//! that leaves cleanly (its connection closed) ends the session instead.

use crate::host::{Guard, Host, HostSocket, SocketEvent, SocketHandler, TabEvent, TabLink};
use crate::protocol::durable::SessionRecord;
use crate::protocol::hub::{Hub, HubConfig, HubOutput};
use std::cell::RefCell;
use std::rc::{Rc, Weak};

/// How long a tab that sent the leader something waits to hear anything
/// from it before it asks whether it is there, and then for its answer
/// before it takes the lock over (ms).
const PROBE_MS: f64 = 2_000.0;

/// How late the leader may publish its session's count of received messages (ms).
const PUBLISH_LAG_MS: f64 = 1_000.0;

/// The frame the hub begins every client session with.
const CONNECTED: &str = "{\"msg\":\"connected\"";

/// `host`, with its sockets shared by the tabs.
pub(crate) fn wrap(host: Rc<dyn Host>, options: &crate::Options) -> Rc<dyn Host> {
    let me = format!("{:x}{:x}", (host.random() * 4_294_967_296.0) as u64, (host.random() * 4_294_967_296.0) as u64);
    let config = HubConfig {
        heartbeat_interval_ms: options.heartbeat_interval_ms,
        heartbeat_timeout_ms: options.heartbeat_timeout_ms,
        connect_timeout_ms: options.connect_timeout_ms,
        ..HubConfig::default()
    };
    Rc::new(TabsHost(Rc::new(Shared {
        inner: host,
        me,
        config,
        link: RefCell::new(None),
        leader: RefCell::new(None),
        own: RefCell::new(None),
        latest: RefCell::new(None),
        watched: RefCell::new(Vec::new()),
        upstream_url: RefCell::new(None),
        session: RefCell::new(None),
        heard_at: std::cell::Cell::new(f64::NEG_INFINITY),
        sent_at: std::cell::Cell::new(f64::NEG_INFINITY),
        probe: RefCell::new(None),
        probing: std::cell::Cell::new(false),
    })))
}

struct TabsHost(Rc<Shared>);

impl Host for TabsHost {
    crate::host::forward_host!(0.inner);

    // The connection closed: the tab leaves the group (a leader lets the
    // lock go to the next tab, and closes its socket).
    fn release(&self) {
        let leader = self.0.leader.borrow_mut().take();
        // No one resumes the session of a leader that leaves: it ends now
        // (a resuming server would otherwise hold it for its grace period).
        if let Some(Leader { hub, upstream: Some(socket), .. }) = &leader {
            if hub.connected() {
                let _ = socket.send(&crate::protocol::message::ClientMessage::Disconnect.encode());
            }
            // Nothing left to take over.
            self.0.post(&format!("S:{}", self.0.me), "");
        }
        let link = self.0.link.borrow_mut().take();
        drop((leader, link));
        self.0.inner.release();
    }

    fn open_socket(&self, url: &str, max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        let shared = &self.0;
        // The first socket joins the group (the URL is known from then on).
        if shared.upstream_url.borrow().is_none() {
            *shared.upstream_url.borrow_mut() = Some((url.to_owned(), max_len));
            let weak = Rc::downgrade(shared);
            let link = shared.inner.join_tabs(
                // (The format's version: tabs of builds that speak another
                // never meet.)
                &format!("ddp-live:tabs:2:{url}"),
                &shared.me,
                Box::new(move |event| {
                    if let Some(shared) = weak.upgrade() {
                        shared.tab_event(event);
                    }
                }),
            );
            match link {
                Some(link) => *shared.link.borrow_mut() = Some(link),
                // No groups here: the tab has its own socket.
                None => shared.inner.log_error(
                    "ddp-live: share_across_tabs: this page has no BroadcastChannel or Web Locks; the connection opens its own socket",
                ),
            }
        }
        if shared.link.borrow().is_none() {
            return shared.inner.open_socket(url, max_len, handler);
        }
        // One key for all of this member's sockets: the hub resumes its
        // session across them.
        let key = shared.me.clone();
        *shared.own.borrow_mut() = Some(Own { key: key.clone(), handler: Rc::new(handler), leader: None, connected: false });
        if shared.leader.borrow().is_some() {
            shared.leader_input(|hub, now| hub.client_open(&key, now));
        } else {
            shared.to_leader(&format!("o:{key}"), "");
        }
        Ok(Box::new(Virtual { shared: Rc::downgrade(shared), key }))
    }
}

/// The tab's own virtual socket.
struct Own {
    key: String,
    handler: Rc<SocketHandler>,
    /// The leader that accepted it.
    leader: Option<String>,
    /// Its `connected` arrived: data may follow.
    connected: bool,
}

struct Leader {
    hub: Hub,
    upstream: Option<Box<dyn HostSocket>>,
    /// Sockets opened upstream, so events of an old one are told apart.
    generation: u64,
    /// The count of received messages last published, and when.
    published: (u64, f64),
    /// The heartbeat's timer, and when it is due.
    heartbeat: Option<(f64, Guard)>,
}

struct Shared {
    inner: Rc<dyn Host>,
    /// This member's id in the group.
    me: String,
    config: HubConfig,
    link: RefCell<Option<Box<dyn TabLink>>>,
    leader: RefCell<Option<Leader>>,
    own: RefCell<Option<Own>>,
    /// The leader that announced itself last.
    latest: RefCell<Option<String>>,
    /// Members this leader watches.
    watched: RefCell<Vec<String>>,
    upstream_url: RefCell<Option<(String, usize)>>,
    /// The upstream session the leader published last (a follower's: it
    /// takes it over if it leads next).
    session: RefCell<Option<String>>,
    /// When a leader was last heard from; the timer checking it is there,
    /// while this tab waits to hear from it.
    heard_at: std::cell::Cell<f64>,
    /// When this tab last posted something for the leader.
    sent_at: std::cell::Cell<f64>,
    probe: RefCell<Option<Guard>>,
    /// A check is armed (or about to be).
    probing: std::cell::Cell<bool>,
}

impl Shared {
    fn now(&self) -> f64 {
        let (wall, mono) = self.inner.clocks();
        if mono.is_nan() {
            wall
        } else {
            mono
        }
    }

    fn post(&self, head: &str, body: &str) {
        if let Some(link) = &*self.link.borrow() {
            link.post(head, body);
        }
    }

    fn tab_event(self: &Rc<Self>, event: TabEvent<'_>) {
        match event {
            TabEvent::Leader => self.lead(),
            TabEvent::Deposed => self.stand_down(),
            TabEvent::Message(head, body) => {
                let Some((kind, rest)) = head.split_once(':') else { return };
                // Anything a leader says shows it is there.
                if matches!(kind, "A" | "F" | "X" | "T" | "B" | "L" | "S" | "Q") {
                    self.heard_at.set(self.now());
                }
                match kind {
                    "P" if self.leader.borrow().is_some() => self.post(&format!("Q:{rest}"), ""),
                    "o" => {
                        self.watch(rest);
                        self.leader_input(|hub, now| hub.client_open(rest, now));
                    }
                    "f" => self.leader_input(|hub, now| hub.client_frame(rest, body, now)),
                    "c" => self.leader_input(|hub, now| hub.client_close(rest, now)),
                    "A" => self.accepted(rest, body),
                    // (From the leader that accepted this tab's socket only:
                    // one deposed while it ran no code may still say things.)
                    "F" | "X" | "T" => {
                        let Some((key, leader)) = rest.split_once('/') else { return };
                        if !self.is_my_leader(leader) {
                            return;
                        }
                        match kind {
                            "F" => self.deliver(key, body),
                            "X" => self.closed(key, if body == "1009" { 1009 } else { 1001 }),
                            _ => {
                                if let Some((len, ends)) = body.split_once(':') {
                                    self.too_large(key, len.parse().unwrap_or(usize::MAX), ends);
                                }
                            }
                        }
                    }
                    "B" => self.broadcast(rest, body),
                    "L" => self.new_leader(rest),
                    "S" if self.latest.borrow().as_deref().is_none_or(|l| l == rest) => {
                        *self.session.borrow_mut() = (!body.is_empty()).then(|| body.to_owned())
                    }
                    _ => {}
                }
            }
        }
    }

    /// As leader, learns when the member behind client `key` is gone (its
    /// tab closed or died: no `c:` ever comes), so the hub stops its
    /// subscriptions. Once per member.
    fn watch(self: &Rc<Self>, key: &str) {
        if key == self.me || self.watched.borrow().iter().any(|k| k == key) {
            return;
        }
        self.watched.borrow_mut().push(key.to_owned());
        let weak = Rc::downgrade(self);
        let member = key.to_owned();
        if let Some(link) = &*self.link.borrow() {
            link.watch(
                key,
                Box::new(move || {
                    if let Some(s) = weak.upgrade() {
                        s.watched.borrow_mut().retain(|k| *k != member);
                        s.leader_input(|hub, now| hub.client_gone(&member, now));
                    }
                }),
            );
        }
    }

    /// Posts `head` for the leader (a tab's `o:`/`f:`), and makes sure it
    /// is there: if nothing comes from it within [`PROBE_MS`] of this tab's
    /// last post, this tab asks (`P:`), and with no answer within
    /// [`PROBE_MS`] more it takes the lock over.
    fn to_leader(self: &Rc<Self>, head: &str, body: &str) {
        self.post(head, body);
        self.sent_at.set(self.now());
        if !self.probing.get() {
            self.check_leader(PROBE_MS, None);
        }
    }

    /// In `ms`, checks that a leader was heard from since this tab's last
    /// post, or (`asked`) since it asked.
    fn check_leader(self: &Rc<Self>, ms: f64, asked: Option<f64>) {
        self.probing.set(true);
        let weak = Rc::downgrade(self);
        let timer = self.inner.timer(
            ms.max(0.0) as u32,
            Box::new(move || {
                let Some(s) = weak.upgrade() else { return };
                // (Each timer's guard is dropped outside its callback.)
                let now = s.now();
                let heard = s.heard_at.get();
                let next = if s.leader.borrow().is_some() || s.link.borrow().is_none() {
                    None
                } else if let Some(asked) = asked {
                    if heard < asked {
                        if let Some(link) = &*s.link.borrow() {
                            link.take_over();
                        }
                    }
                    None
                } else if heard >= s.sent_at.get() {
                    None
                } else if now < s.sent_at.get() + PROBE_MS {
                    Some((s.sent_at.get() + PROBE_MS - now, None))
                } else {
                    s.post(&format!("P:{}", s.me), "");
                    Some((PROBE_MS, Some(now)))
                };
                // Done: a message posted from now on arms a check of its own.
                s.probing.set(next.is_some());
                s.later(move |s| match next {
                    Some((ms, asked)) => s.check_leader(ms, asked),
                    None => {
                        if !s.probing.get() {
                            drop(s.probe.borrow_mut().take());
                        }
                    }
                });
            }),
        );
        *self.probe.borrow_mut() = Some(timer);
    }

    /// This tab leads no more (its lock was taken over while it did not
    /// answer, or another leader announced itself): its hub goes without
    /// ending the session (the new leader takes it over), and its own
    /// connection reconnects through the new leader.
    fn stand_down(self: &Rc<Self>) {
        let Some(old) = self.leader.borrow_mut().take() else { return };
        drop(old);
        self.watched.borrow_mut().clear();
        let me = self.me.clone();
        let key = match &*self.own.borrow() {
            Some(own) if own.leader.as_deref() == Some(me.as_str()) => Some(own.key.clone()),
            _ => None,
        };
        if let Some(key) = key {
            self.later(move |s| s.closed(&key, 1001));
        }
    }

    /// This tab got the lock: it runs the hub from now on.
    fn lead(self: &Rc<Self>) {
        let mut hub = Hub::new(self.config);
        // The session the last leader published: taken over.
        if let Some(record) = self.session.borrow_mut().take().and_then(|t| SessionRecord::from_text(&t).ok()) {
            hub.adopt(record, &self.me);
        }
        *self.leader.borrow_mut() = Some(Leader { hub, upstream: None, generation: 0, published: (0, f64::NEG_INFINITY), heartbeat: None });
        self.post(&format!("L:{}", self.me), "");
        self.new_leader(&self.me.clone());
    }

    /// A leader announced itself: a socket another leader accepted is
    /// gone (reconnect through this one); one still waiting asks again.
    fn new_leader(self: &Rc<Self>, leader: &str) {
        if leader != self.me {
            // Only one tab holds the lock: if another announces itself,
            // this one's was taken over.
            self.stand_down();
        }
        *self.latest.borrow_mut() = Some(leader.to_owned());
        let (key, accepted_by) = match &*self.own.borrow() {
            Some(own) => (own.key.clone(), own.leader.clone()),
            None => return,
        };
        match accepted_by {
            Some(l) if l != leader => self.closed(&key, 1001),
            Some(_) => {}
            None if leader == self.me => self.leader_input(|hub, now| hub.client_open(&key, now)),
            None => self.to_leader(&format!("o:{key}"), ""),
        }
    }

    fn accepted(&self, key: &str, leader: &str) {
        // An answer from a leader that was since replaced is stale.
        if self.latest.borrow().as_deref().is_some_and(|l| l != leader) {
            return;
        }
        let handler = match &mut *self.own.borrow_mut() {
            Some(own) if own.key == key && own.leader.is_none() => {
                own.leader = Some(leader.to_owned());
                own.handler.clone()
            }
            _ => return,
        };
        handler(SocketEvent::Open, self.inner.clocks());
    }

    /// Whether `leader` is the one this tab's socket goes through (or, not
    /// accepted yet, the one that announced itself last).
    fn is_my_leader(&self, leader: &str) -> bool {
        match self.own.borrow().as_ref().and_then(|o| o.leader.clone()) {
            Some(l) => l == leader,
            None => self.latest.borrow().as_deref() == Some(leader),
        }
    }

    fn deliver(&self, key: &str, text: &str) {
        let handler = match &mut *self.own.borrow_mut() {
            Some(own) if own.key == key && own.leader.is_some() => {
                own.connected |= text.starts_with(CONNECTED);
                own.handler.clone()
            }
            _ => return,
        };
        handler(SocketEvent::Text(text), self.inner.clocks());
    }

    fn too_large(&self, key: &str, len: usize, ends: &str) {
        let handler = match &*self.own.borrow() {
            Some(own) if own.key == key && own.connected => own.handler.clone(),
            _ => return,
        };
        handler(SocketEvent::TooLarge { len, ends }, self.inner.clocks());
    }

    fn broadcast(&self, leader: &str, text: &str) {
        let handler = match &*self.own.borrow() {
            Some(own) if own.connected && own.leader.as_deref() == Some(leader) => own.handler.clone(),
            _ => return,
        };
        handler(SocketEvent::Text(text), self.inner.clocks());
    }

    fn closed(&self, key: &str, code: u16) {
        let handler = match &*self.own.borrow() {
            Some(own) if own.key == key => own.handler.clone(),
            _ => return,
        };
        *self.own.borrow_mut() = None;
        // 1001, "going away": the leader went, or its session did; 1009:
        // the server refused this member's largest message.
        handler(SocketEvent::Close(code), self.inner.clocks());
    }

    /// Hands an input to the hub, if this tab leads, then does what it asks.
    fn leader_input(self: &Rc<Self>, input: impl FnOnce(&mut Hub, f64)) {
        let now = self.now();
        match &mut *self.leader.borrow_mut() {
            Some(leader) => input(&mut leader.hub, now),
            None => return,
        }
        self.pump();
    }

    fn pump(self: &Rc<Self>) {
        loop {
            let output = match &mut *self.leader.borrow_mut() {
                Some(leader) => leader.hub.poll_output(),
                None => return,
            };
            let Some(output) = output else { break };
            let own_key = self.own.borrow().as_ref().map(|o| o.key.clone());
            let mine = |key: &str| own_key.as_deref() == Some(key);
            match output {
                HubOutput::Accept(key) if mine(&key) => self.later(move |s| s.accepted(&key, &s.me.clone())),
                HubOutput::Accept(key) => self.post(&format!("A:{key}"), &self.me),
                HubOutput::ToClient(key, text) if mine(&key) => self.later(move |s| s.deliver(&key, &text)),
                HubOutput::ToClient(key, text) => self.post(&format!("F:{key}/{}", self.me), &text),
                HubOutput::TooLarge(key, len, ends) if mine(&key) => self.later(move |s| s.too_large(&key, len, &ends)),
                HubOutput::TooLarge(key, len, ends) => self.post(&format!("T:{key}/{}", self.me), &format!("{len}:{ends}")),
                HubOutput::CloseClient(key) if mine(&key) => self.later(move |s| s.closed(&key, 1001)),
                HubOutput::CloseClient(key) => self.post(&format!("X:{key}/{}", self.me), ""),
                HubOutput::RefuseClient(key) if mine(&key) => self.later(move |s| s.closed(&key, 1009)),
                HubOutput::RefuseClient(key) => self.post(&format!("X:{key}/{}", self.me), "1009"),
                HubOutput::Broadcast(text) => {
                    self.post(&format!("B:{}", self.me), &text);
                    self.later(move |s| s.broadcast(&s.me.clone(), &text));
                }
                HubOutput::OpenUpstream => self.open_upstream(),
                HubOutput::Send(text) => {
                    if let Some(Leader { upstream: Some(socket), .. }) = &*self.leader.borrow() {
                        // A failed send is followed by the socket's close.
                        let _ = socket.send(&text);
                    }
                }
                HubOutput::CloseUpstream => {
                    let socket = self.leader.borrow_mut().as_mut().and_then(|l| l.upstream.take());
                    drop(socket);
                }
            }
        }
        self.publish_session();
        self.arm_heartbeat();
    }

    /// As leader, tells the other tabs what taking the session over needs:
    /// at once when it changed, its count at most a second late.
    fn publish_session(&self) {
        let now = self.now();
        let body = {
            let mut leader = self.leader.borrow_mut();
            let Some(leader) = leader.as_mut() else { return };
            let changed = leader.hub.record_changed();
            let (count, at) = leader.published;
            if !changed && (leader.hub.received() == count || now < at + PUBLISH_LAG_MS) {
                return;
            }
            leader.published = (leader.hub.received(), now);
            leader.hub.session_record().map(|mut r| {
                r.at = now;
                r.to_text()
            })
        };
        self.post(&format!("S:{}", self.me), body.as_deref().unwrap_or(""));
    }

    /// Runs `f` on a task of its own (the seam's rule: a socket's events
    /// never arrive during a call into it).
    fn later(self: &Rc<Self>, f: impl FnOnce(&Rc<Self>) + 'static) {
        let weak = Rc::downgrade(self);
        self.inner.later(Box::new(move || {
            if let Some(s) = weak.upgrade() {
                f(&s);
            }
        }));
    }

    fn open_upstream(self: &Rc<Self>) {
        let Some((url, max_len)) = self.upstream_url.borrow().clone() else { return };
        let generation = {
            let mut leader = self.leader.borrow_mut();
            let Some(leader) = leader.as_mut() else { return };
            drop(leader.upstream.take());
            leader.generation += 1;
            leader.generation
        };
        let weak: Weak<Shared> = Rc::downgrade(self);
        let handler: SocketHandler = Box::new(move |event, _clocks| {
            let Some(s) = weak.upgrade() else { return };
            let current = s.leader.borrow().as_ref().is_some_and(|l| l.generation == generation);
            if !current {
                return;
            }
            match event {
                SocketEvent::Open => s.leader_input(|hub, now| hub.upstream_open(now)),
                SocketEvent::Text(text) => s.leader_input(|hub, now| hub.upstream_frame(text, now)),
                SocketEvent::Close(_) | SocketEvent::Error | SocketEvent::Refused(_) => {
                    if let Some(l) = s.leader.borrow_mut().as_mut() {
                        // Its events end here.
                        l.generation += 1;
                        drop(l.upstream.take());
                    }
                    let code = if let SocketEvent::Close(code) = event { code } else { 1006 };
                    s.leader_input(|hub, now| hub.upstream_closed_with(code, now));
                }
                SocketEvent::TooLarge { len, ends } => s.leader_input(|hub, now| hub.upstream_too_large(len, ends, now)),
                SocketEvent::Binary(_) => {}
            }
        });
        match self.inner.open_socket(&url, max_len, handler) {
            Ok(socket) => {
                if let Some(leader) = self.leader.borrow_mut().as_mut() {
                    leader.upstream = Some(socket);
                }
            }
            Err(reason) => {
                self.inner.log_error(&format!("ddp-live: the shared socket could not open: {reason}"));
                self.later(|s| s.leader_input(|hub, now| hub.upstream_closed(now)));
            }
        }
    }

    /// Keeps a timer for the hub's next timeout: one timer, set again only
    /// when the timeout comes earlier (a timer that fires early finds
    /// nothing due and sets the next).
    fn arm_heartbeat(self: &Rc<Self>) {
        let due = {
            let leader = self.leader.borrow();
            let Some(leader) = leader.as_ref() else { return };
            match (leader.hub.poll_timeout(), &leader.heartbeat) {
                (None, _) => None,
                (Some(due), Some((armed, _))) if *armed <= due => return,
                (Some(due), _) => Some(due),
            }
        };
        let guard = due.map(|due| {
            let ms = (due - self.now()).clamp(0.0, f64::from(u32::MAX)) as u32;
            let weak = Rc::downgrade(self);
            let timer = self.inner.timer(
                ms,
                Box::new(move || {
                    if let Some(s) = weak.upgrade() {
                        if let Some(l) = s.leader.borrow_mut().as_mut() {
                            l.heartbeat = None;
                        }
                        s.leader_input(|hub, now| hub.handle_timeout(now));
                    }
                }),
            );
            (due, timer)
        });
        if let Some(leader) = self.leader.borrow_mut().as_mut() {
            leader.heartbeat = guard;
        }
    }
}

/// The connection's virtual socket.
struct Virtual {
    shared: Weak<Shared>,
    key: String,
}

impl HostSocket for Virtual {
    fn send(&self, text: &str) -> Result<(), String> {
        let Some(s) = self.shared.upgrade() else { return Err("closed".into()) };
        if s.leader.borrow().is_some() {
            s.leader_input(|hub, now| hub.client_frame(&self.key, text, now));
        } else {
            s.to_leader(&format!("f:{}", self.key), text);
        }
        Ok(())
    }
}

impl Drop for Virtual {
    fn drop(&mut self) {
        let Some(s) = self.shared.upgrade() else { return };
        if s.own.borrow().as_ref().is_some_and(|o| o.key == self.key) {
            *s.own.borrow_mut() = None;
        }
        if s.leader.borrow().is_some() {
            s.leader_input(|hub, now| hub.client_close(&self.key, now));
        } else {
            s.post(&format!("c:{}", self.key), "");
        }
    }
}
