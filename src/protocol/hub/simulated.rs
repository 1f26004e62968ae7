//! Random histories of clients sharing one session through the hub: two
//! whole client machines, each over a virtual link to the hub, the hub over
//! one link to a simulated server that resumes sessions. Calls,
//! subscriptions, unsubscriptions, server-side writes and ends, and drops of
//! any link, each losing what is in flight both ways. Whatever the history,
//! once the links are quiet:
//!
//! - every call resolved exactly once, with its own result, and ran on the
//!   server exactly once;
//! - every live subscription of every client is ready, and the server
//!   holds one subscription per publication some client lives on (alike
//!   subscriptions shared, every `unsub` honoured);
//! - every client's store is what the server published to the session.

use super::*;
use crate::protocol::machine::{CallOptions, Completion, Config, Machine, Output};
use crate::protocol::sim_server::{SimServer, PUBS};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const CLIENTS: usize = 2;

#[derive(Debug, Clone)]
enum Step {
    Call(usize, bool),
    Subscribe(usize, usize),
    Unsubscribe(usize, usize),
    Write(usize, u8, Option<i64>),
    ServerEnd(usize),
    /// The server reads one frame of the hub's (or the socket opens).
    ToServer,
    /// The hub reads one frame of the server's.
    ToHub,
    /// The hub reads one frame of a client's (or its socket opens).
    ClientToHub(usize),
    /// A client reads one frame of the hub's.
    HubToClient(usize),
    DropUpstream,
    DropClient(usize),
    Time,
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => (c.clone(), proptest::bool::weighted(0.25)).prop_map(|(c, w)| Step::Call(c, w)),
        2 => (c.clone(), 0..PUBS).prop_map(|(c, p)| Step::Subscribe(c, p)),
        1 => (c.clone(), any::<usize>()).prop_map(|(c, i)| Step::Unsubscribe(c, i)),
        2 => (0..PUBS, 0u8..5, proptest::option::weighted(0.8, -3i64..3)).prop_map(|(p, d, v)| Step::Write(p, d, v)),
        1 => any::<usize>().prop_map(Step::ServerEnd),
        4 => Just(Step::ToServer),
        4 => Just(Step::ToHub),
        4 => c.clone().prop_map(Step::ClientToHub),
        4 => c.clone().prop_map(Step::HubToClient),
        1 => Just(Step::DropUpstream),
        1 => c.clone().prop_map(Step::DropClient),
        1 => Just(Step::Time),
    ]
}

struct Link {
    socket: u64,
    /// The hub accepted it (the client heard `Open`).
    accepted: bool,
    /// Its `connected` is on its way: broadcasts follow it.
    connected: bool,
    to_hub: VecDeque<String>,
    to_client: VecDeque<String>,
}

struct Client {
    m: Machine,
    link: Option<Link>,
    done: HashMap<u64, u32>,
    results: HashMap<u64, Value>,
    tokens: HashMap<u64, String>,
    /// Live subscriptions: id and publication.
    live: Vec<(String, usize)>,
}

struct World {
    now: f64,
    hub: Hub,
    /// The upstream socket: open, and the hub's frames not read yet.
    upstream: Option<(bool, VecDeque<String>)>,
    server: SimServer,
    clients: Vec<Client>,
    calls: u32,
}

fn key(i: usize) -> String {
    format!("c{i}")
}

impl World {
    fn new() -> World {
        let config = Config { heartbeat_interval_ms: 0.0, connect_timeout_ms: 0.0, resume_sessions: true, ..Config::default() };
        let clients = (0..CLIENTS)
            .map(|i| {
                let mut seed = 7 + i as u64;
                let random = Box::new(move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 11) as f64 / (1u64 << 53) as f64
                });
                Client {
                    m: Machine::new(config.clone(), random),
                    link: None,
                    done: HashMap::new(),
                    results: HashMap::new(),
                    tokens: HashMap::new(),
                    live: Vec::new(),
                }
            })
            .collect();
        let hub = Hub::new(HubConfig { heartbeat_interval_ms: 0.0, connect_timeout_ms: 0.0, ..HubConfig::default() });
        let mut w = World { now: 0.0, hub, upstream: None, server: SimServer::new(true), clients, calls: 0 };
        for i in 0..CLIENTS {
            w.clients[i].m.start(0.0);
        }
        w.pump();
        w
    }

    /// Runs every output of the machines and the hub until none is left.
    fn pump(&mut self) {
        loop {
            let mut any = false;
            for i in 0..CLIENTS {
                while let Some(o) = self.clients[i].m.poll_output() {
                    any = true;
                    self.client_output(i, o);
                }
            }
            while let Some(o) = self.hub.poll_output() {
                any = true;
                self.hub_output(o);
            }
            if !any {
                break;
            }
        }
    }

    fn client_output(&mut self, i: usize, o: Output) {
        let c = &mut self.clients[i];
        match o {
            Output::OpenSocket { socket } => {
                if c.link.take().is_some_and(|l| l.accepted) {
                    self.hub.client_close(&key(i), self.now);
                }
                self.clients[i].link =
                    Some(Link { socket, accepted: false, connected: false, to_hub: VecDeque::new(), to_client: VecDeque::new() });
            }
            Output::CloseSocket { socket } => {
                if c.link.as_ref().is_some_and(|l| l.socket == socket) {
                    let was = c.link.take().is_some_and(|l| l.accepted);
                    if was {
                        self.hub.client_close(&key(i), self.now);
                    }
                }
            }
            Output::Send { text, .. } => {
                if let Some(l) = &mut c.link {
                    l.to_hub.push_back(text);
                }
            }
            Output::Done(Completion::MethodDone { id, outcome }) => {
                *c.done.entry(id).or_default() += 1;
                if let Ok(Some(v)) = outcome {
                    c.results.insert(id, v);
                }
            }
            Output::Done(Completion::SubStopped { id, .. }) => c.live.retain(|(x, _)| *x != id),
            Output::RunReconnectHooks => c.m.reconnect_hooks_done(),
            Output::Event(_) | Output::Done(_) => {}
        }
    }

    fn link_of(&mut self, k: &str) -> Option<(usize, &mut Link)> {
        let i: usize = k[1..].parse().ok()?;
        self.clients[i].link.as_mut().filter(|l| l.accepted).map(|l| (i, l))
    }

    fn hub_output(&mut self, o: HubOutput) {
        let now = self.now;
        match o {
            HubOutput::Accept(k) => {
                let i: usize = k[1..].parse().unwrap();
                let c = &mut self.clients[i];
                if let Some(l) = &mut c.link {
                    l.accepted = true;
                    let s = l.socket;
                    c.m.handle_open(s, now);
                }
            }
            HubOutput::ToClient(k, text) => {
                if let Some((_, l)) = self.link_of(&k) {
                    l.connected |= text.starts_with("{\"msg\":\"connected\"");
                    l.to_client.push_back(text);
                }
            }
            HubOutput::Broadcast(text) => {
                for c in &mut self.clients {
                    if let Some(l) = c.link.as_mut().filter(|l| l.connected) {
                        l.to_client.push_back(text.clone());
                    }
                }
            }
            HubOutput::TooLarge(..) => unreachable!("no frame is too large here"),
            HubOutput::RefuseClient(_) => unreachable!("no close 1009 here"),
            HubOutput::CloseClient(k) => {
                if let Some((i, l)) = self.link_of(&k) {
                    let s = l.socket;
                    self.clients[i].link = None;
                    self.clients[i].m.handle_close(s, 1001, now);
                }
            }
            HubOutput::OpenUpstream => {
                self.server.socket_gone();
                self.upstream = Some((false, VecDeque::new()));
            }
            HubOutput::Send(text) => {
                if let Some((_, q)) = &mut self.upstream {
                    q.push_back(text);
                }
            }
            HubOutput::CloseUpstream => {
                self.server.socket_gone();
                self.upstream = None;
            }
        }
    }

    fn step(&mut self, st: &Step) {
        let now = self.now;
        match *st {
            Step::Call(i, wait) => {
                self.calls += 1;
                let token = format!("t{}", self.calls);
                let id = self.clients[i].m.call("m", vec![json!(token)], CallOptions { wait, ..CallOptions::default() }, now).unwrap();
                self.clients[i].tokens.insert(id, token);
            }
            Step::Subscribe(i, p) => {
                let id = self.clients[i].m.subscribe(&format!("p{p}"), vec![]);
                self.clients[i].live.push((id, p));
            }
            Step::Unsubscribe(i, n) => {
                let c = &mut self.clients[i];
                if !c.live.is_empty() {
                    let id = c.live[n % c.live.len()].0.clone();
                    c.m.unsubscribe(&id);
                }
            }
            Step::Write(p, d, v) => self.server.write(p, d, v),
            Step::ServerEnd(n) => self.server.end_sub(n),
            Step::ToServer => match &mut self.upstream {
                Some((open @ false, _)) => {
                    *open = true;
                    self.hub.upstream_open(now);
                }
                Some((true, q)) => {
                    if let Some(text) = q.pop_front() {
                        self.server.receive(&text);
                    }
                }
                None => {}
            },
            Step::ToHub => {
                if self.upstream.as_ref().is_some_and(|(open, _)| *open) {
                    if let Some(text) = self.server.down.pop_front() {
                        self.hub.upstream_frame(&text, now);
                    }
                }
            }
            Step::ClientToHub(i) => {
                if let Some(l) = &mut self.clients[i].link {
                    if !l.accepted {
                        self.hub.client_open(&key(i), now);
                    } else if let Some(text) = l.to_hub.pop_front() {
                        self.hub.client_frame(&key(i), &text, now);
                    }
                }
            }
            Step::HubToClient(i) => {
                let c = &mut self.clients[i];
                if let Some(l) = &mut c.link {
                    if let Some(text) = l.to_client.pop_front() {
                        let s = l.socket;
                        c.m.handle_frame(s, &text, now);
                    }
                }
            }
            Step::DropUpstream => {
                if self.upstream.take().is_some() {
                    self.server.socket_gone();
                    self.hub.upstream_closed(now);
                }
            }
            Step::DropClient(i) => {
                if let Some(s) = self.clients[i].link.as_ref().map(|l| l.socket) {
                    self.clients[i].m.handle_close(s, 1006, now);
                }
            }
            Step::Time => {
                self.now += 100.0;
                self.hub.handle_timeout(self.now);
                for c in &mut self.clients {
                    c.m.handle_timeout(self.now);
                }
            }
        }
        self.pump();
    }

    fn quiet(&self) -> bool {
        let up = self.upstream.as_ref().is_some_and(|(open, q)| *open && q.is_empty()) && self.server.down.is_empty();
        up && self.clients.iter().all(|c| {
            c.link.as_ref().is_some_and(|l| l.accepted && l.to_hub.is_empty() && l.to_client.is_empty())
                && c.m.status().connected
                && c.m.outbox() == Default::default()
        })
    }

    /// Delivers everything, without drops, until nothing is left.
    fn settle(&mut self) {
        for _ in 0..200_000 {
            if self.quiet() {
                return;
            }
            let st = if self.upstream.as_ref().is_some_and(|(open, q)| !*open || !q.is_empty()) {
                Step::ToServer
            } else if self.upstream.is_some() && !self.server.down.is_empty() {
                Step::ToHub
            } else if let Some(i) =
                (0..CLIENTS).find(|&i| self.clients[i].link.as_ref().is_some_and(|l| !l.accepted || !l.to_hub.is_empty()))
            {
                Step::ClientToHub(i)
            } else if let Some(i) = (0..CLIENTS).find(|&i| self.clients[i].link.as_ref().is_some_and(|l| !l.to_client.is_empty())) {
                Step::HubToClient(i)
            } else {
                Step::Time
            };
            self.step(&st);
        }
        panic!("did not settle");
    }

    fn store(&self, i: usize) -> BTreeMap<(usize, String), i64> {
        let mut out = BTreeMap::new();
        for p in 0..PUBS {
            if let Some(docs) = self.clients[i].m.store().collection(&format!("c{p}")) {
                for (id, f) in docs.iter() {
                    out.insert((p, id.clone()), f.fields()["v"].as_i64().unwrap());
                }
            }
        }
        out
    }
}

fn run(steps: &[Step]) -> Result<World, TestCaseError> {
    let mut w = World::new();
    for st in steps {
        w.step(st);
    }
    w.settle();
    for (i, c) in w.clients.iter().enumerate() {
        prop_assert_eq!(c.done.len(), c.tokens.len(), "client {}: every call resolved", i);
        prop_assert!(c.done.values().all(|n| *n == 1), "client {}: each once", i);
        for (id, token) in &c.tokens {
            prop_assert_eq!(c.results.get(id), Some(&json!(token)), "client {}: call {} got its own result", i, id);
        }
        for (id, _) in &c.live {
            prop_assert_eq!(c.m.sub_ready(id), Some(true), "client {}: live subscription {} is ready", i, id);
        }
        prop_assert_eq!(&w.store(i), &w.server.session().view, "client {}: the store is what the server published", i);
    }
    prop_assert!(w.server.runs.values().all(|r| *r == 1), "ran twice: {:?}", w.server.runs);
    prop_assert_eq!(w.server.runs.len(), w.calls as usize, "every call ran");
    let wanted: BTreeSet<usize> = w.clients.iter().flat_map(|c| c.live.iter().map(|(_, p)| *p)).collect();
    prop_assert_eq!(w.server.held_subs().len(), wanted.len(), "one subscription per publication some client lives on");
    Ok(w)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn clients_sharing_a_session_through_drops_of_any_link_run_every_call_once_and_converge(
        steps in proptest::collection::vec(step(), 1..100)
    ) {
        run(&steps)?;
    }
}
