//! A simulated DDP server for the property tests (machine and driver):
//! methods that run once per session id, publications with a merge box,
//! `nosub` for every `unsub`, and Meteor 3.5's session resumption (what the
//! client missed is replayed from `receivedCount`). Frames travel through
//! `down`; what the server has not read is the test's to keep (and lose).

use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Publications `p0`, `p1`, `p2` publish collections `c0`, `c1`, `c2`.
pub(crate) const PUBS: usize = 3;

/// A session as the server keeps it.
#[derive(Default)]
pub(crate) struct Session {
    /// Every message sent in it (but `connected`), for replay.
    history: Vec<String>,
    /// Method ids seen: a re-sent id never runs twice.
    seen: HashSet<String>,
    /// Its subscriptions: id → publication.
    pub subs: BTreeMap<String, usize>,
    /// What the client was told: (publication, document) → value.
    pub view: BTreeMap<(usize, String), i64>,
}

pub(crate) struct SimServer {
    sessions: HashMap<String, Session>,
    /// The session attached to the socket, if one is.
    pub current: Option<String>,
    next_session: u32,
    resume: bool,
    /// The publications' documents.
    data: [BTreeMap<String, i64>; PUBS],
    /// How many times each method token ran.
    pub runs: HashMap<String, u32>,
    /// The `randomSeed`s of the methods that ran: one sent again (by a new
    /// session, after a reload) fails with a duplicate key, as a re-sent
    /// insert does on a Meteor server (the same seed makes the same ids).
    seeds: HashSet<String>,
    /// Server → client frames not read yet.
    pub down: VecDeque<String>,
}

impl SimServer {
    pub fn new(resume: bool) -> Self {
        SimServer {
            sessions: HashMap::new(),
            current: None,
            next_session: 0,
            resume,
            data: Default::default(),
            runs: HashMap::new(),
            seeds: HashSet::new(),
            down: VecDeque::new(),
        }
    }

    /// The socket is gone: its session waits to be resumed, and what was on
    /// its way to the client is lost.
    pub fn socket_gone(&mut self) {
        self.current = None;
        self.down.clear();
    }

    /// The attached session.
    pub fn session(&self) -> &Session {
        &self.sessions[self.current.as_deref().expect("a session")]
    }

    /// The subscription ids the attached session holds.
    pub fn held_subs(&self) -> BTreeSet<String> {
        self.session().subs.keys().cloned().collect()
    }

    /// Sends to session `s`: into its history, and down the socket if it
    /// is attached.
    fn send_to(&mut self, s: &str, v: Value) {
        let text = v.to_string();
        if let Some(session) = self.sessions.get_mut(s) {
            session.history.push(text.clone());
        }
        if self.current.as_deref() == Some(s) {
            self.down.push_back(text);
        }
    }

    /// Tells session `s` what changed between what it was told and what its
    /// subscriptions publish now (a merge box).
    fn publish(&mut self, s: &str) {
        let Some(session) = self.sessions.get(s) else { return };
        let mut want: BTreeMap<(usize, String), i64> = BTreeMap::new();
        for &p in session.subs.values() {
            for (id, v) in &self.data[p] {
                want.insert((p, id.clone()), *v);
            }
        }
        let mut out = Vec::new();
        for ((p, id), _) in session.view.iter().filter(|(k, _)| !want.contains_key(*k)) {
            out.push(json!({"msg":"removed","collection":format!("c{p}"),"id":id}));
        }
        for ((p, id), v) in &want {
            match session.view.get(&(*p, id.clone())) {
                None => out.push(json!({"msg":"added","collection":format!("c{p}"),"id":id,"fields":{"v":v}})),
                Some(old) if old != v => out.push(json!({"msg":"changed","collection":format!("c{p}"),"id":id,"fields":{"v":v}})),
                Some(_) => {}
            }
        }
        if let Some(session) = self.sessions.get_mut(s) {
            session.view = want;
        }
        for v in out {
            self.send_to(s, v);
        }
    }

    /// The server writes document `d{d}` of publication `p` (None removes it).
    pub fn write(&mut self, p: usize, d: u8, v: Option<i64>) {
        let id = format!("d{d}");
        match v {
            Some(v) => self.data[p].insert(id, v),
            None => self.data[p].remove(&id),
        };
        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for s in names {
            self.publish(&s);
        }
    }

    /// The server ends subscription number `i` (modulo their count) of its
    /// session itself, as a publication's `this.stop()` or error does: its
    /// documents go, then `nosub`. It remembers nothing of it afterwards.
    pub fn end_sub(&mut self, i: usize) {
        let Some(s) = self.sessions.keys().next().cloned() else { return };
        let ids: Vec<String> = self.sessions[&s].subs.keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[i % ids.len()].clone();
        if let Some(session) = self.sessions.get_mut(&s) {
            session.subs.remove(&id);
        }
        self.publish(&s);
        self.send_to(&s, json!({"msg":"nosub","id":id}));
    }

    /// Reads one client frame. A method's first parameter is its token,
    /// counted in `runs` and returned as its result.
    pub fn receive(&mut self, text: &str) {
        let v: Value = serde_json::from_str(text).unwrap();
        let current = self.current.clone();
        match v["msg"].as_str().unwrap() {
            "connect" => {
                let asked = v["session"].as_str().map(str::to_owned);
                let count = v["receivedCount"].as_u64().unwrap_or(0) as usize;
                match asked.filter(|s| self.resume && self.sessions.contains_key(s)) {
                    Some(s) => {
                        self.current = Some(s.clone());
                        self.down.push_back(json!({"msg":"connected","session":s}).to_string());
                        let missed: Vec<String> = self.sessions[&s].history[count..].to_vec();
                        self.down.extend(missed);
                    }
                    None => {
                        // A new session; the old ones can no longer be resumed.
                        self.next_session += 1;
                        let s = format!("S{}", self.next_session);
                        self.sessions.clear();
                        self.sessions.insert(s.clone(), Session::default());
                        self.current = Some(s.clone());
                        self.down.push_back(json!({"msg":"connected","session":s}).to_string());
                    }
                }
            }
            "method" => {
                let id = v["id"].as_str().unwrap().to_owned();
                let session = current.unwrap();
                if !self.sessions.get_mut(&session).unwrap().seen.insert(id.clone()) {
                    return; // a re-send within the same session: never run twice
                }
                let token = v["params"][0].as_str().unwrap().to_owned();
                if let Some(seed) = v["randomSeed"].as_str() {
                    if !self.seeds.insert(seed.to_owned()) {
                        let error = json!({"error": 11000, "reason": "E11000 duplicate key error"});
                        self.send_to(&session, json!({"msg":"result","id":id,"error":error}));
                        self.send_to(&session, json!({"msg":"updated","methods":[id]}));
                        return;
                    }
                }
                *self.runs.entry(token.clone()).or_default() += 1;
                // Alternate the order of result and updated.
                if id.len() % 2 == 0 {
                    self.send_to(&session, json!({"msg":"updated","methods":[id]}));
                    self.send_to(&session, json!({"msg":"result","id":id,"result":token}));
                } else {
                    self.send_to(&session, json!({"msg":"result","id":id,"result":token}));
                    self.send_to(&session, json!({"msg":"updated","methods":[id]}));
                }
            }
            "sub" => {
                let session = current.unwrap();
                let id = v["id"].as_str().unwrap().to_owned();
                let p: usize = v["name"].as_str().unwrap()[1..].parse().unwrap();
                let subs = &mut self.sessions.get_mut(&session).unwrap().subs;
                if subs.contains_key(&id) {
                    return; // a duplicate id is ignored, as Meteor's server does
                }
                subs.insert(id.clone(), p);
                self.publish(&session);
                self.send_to(&session, json!({"msg":"ready","subs":[id]}));
            }
            "unsub" => {
                // An unknown id gets its nosub all the same, as in Meteor.
                let session = current.unwrap();
                let id = v["id"].as_str().unwrap().to_owned();
                self.sessions.get_mut(&session).unwrap().subs.remove(&id);
                self.publish(&session);
                self.send_to(&session, json!({"msg":"nosub","id":id}));
            }
            _ => {}
        }
    }
}

/// One step of a random history, for the property tests that drive the
/// machine or the whole driver against [`SimServer`].
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// A call (`wait`: alone in its block).
    Call { wait: bool },
    /// A subscription to publication `p{0}`.
    Subscribe(usize),
    /// Stops the live subscription at this index (modulo their count).
    Unsubscribe(usize),
    /// The server writes document `d{1}` of publication `{0}` (None removes it).
    Write(usize, u8, Option<i64>),
    /// The server ends one of its subscriptions (modulo their count).
    ServerEnd(usize),
    /// The server reads one frame (or the socket opens).
    ToServer,
    /// The client reads one frame.
    ToClient,
    /// The socket drops, losing what is in flight both ways.
    Drop,
    /// Time passes to the next deadline.
    Time,
}

/// A random step, weighted towards delivering frames.
pub(crate) fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Call { wait: false }),
        1 => Just(Step::Call { wait: true }),
        2 => (0..PUBS).prop_map(Step::Subscribe),
        1 => any::<usize>().prop_map(Step::Unsubscribe),
        2 => (0..PUBS, 0u8..5, proptest::option::weighted(0.8, -3i64..3)).prop_map(|(p, d, v)| Step::Write(p, d, v)),
        1 => any::<usize>().prop_map(Step::ServerEnd),
        5 => Just(Step::ToServer),
        5 => Just(Step::ToClient),
        1 => Just(Step::Drop),
        1 => Just(Step::Time),
    ]
}
