//! A simulated host: virtual time, in-memory sockets, seeded randomness.
//! The property test below runs the whole driver ([`Connection`], its
//! pump, timers, subscriptions, collections and call futures) through it
//! against the simulated server, under random drops that lose frames in
//! flight both ways.

use super::{Guard, Host, HostSocket, PageEvent, SocketEvent, SocketHandler};
use crate::protocol::sim_server::{step, SimServer, Step, PUBS};
use crate::{CallOptions, Connection, MethodError, Options, RetryPolicy};
use proptest::prelude::*;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Timer {
    due: f64,
    cancelled: Rc<Cell<bool>>,
    f: Box<dyn FnOnce()>,
}

/// The socket the driver holds: sends go to `up`; dropping it tells the
/// host the driver let go.
struct SimSocket {
    up: Rc<RefCell<VecDeque<String>>>,
    alive: Rc<Cell<bool>>,
}

impl HostSocket for SimSocket {
    fn send(&self, text: &str) -> Result<(), String> {
        self.up.borrow_mut().push_back(text.to_owned());
        Ok(())
    }
}

impl Drop for SimSocket {
    fn drop(&mut self) {
        self.alive.set(false);
    }
}

/// The host's side of the current socket.
struct Wire {
    handler: Rc<SocketHandler>,
    up: Rc<RefCell<VecDeque<String>>>,
    alive: Rc<Cell<bool>>,
    open: bool,
}

#[derive(Default)]
pub(crate) struct SimHost {
    now: Cell<f64>,
    seed: Cell<u64>,
    timers: RefCell<Vec<Timer>>,
    later: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    wire: RefCell<Option<Wire>>,
    storage: super::MemoryStorage,
    pub(crate) stores: super::store::MemoryStores,
}

impl Host for SimHost {
    fn clocks(&self) -> (f64, f64) {
        (self.now.get(), self.now.get())
    }

    fn random(&self) -> f64 {
        // xorshift
        let mut s = self.seed.get().max(1);
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.seed.set(s);
        (s >> 11) as f64 / (1u64 << 53) as f64
    }

    fn later(&self, f: Box<dyn FnOnce()>) {
        self.later.borrow_mut().push_back(f);
    }

    fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> Guard {
        let cancelled = Rc::new(Cell::new(false));
        self.timers.borrow_mut().push(Timer { due: self.now.get() + f64::from(ms), cancelled: cancelled.clone(), f });
        struct Cancel(Rc<Cell<bool>>);
        impl Drop for Cancel {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        Box::new(Cancel(cancelled))
    }

    fn open_socket(&self, _url: &str, _max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        let up = Rc::new(RefCell::new(VecDeque::new()));
        let alive = Rc::new(Cell::new(true));
        *self.wire.borrow_mut() = Some(Wire { handler: Rc::new(handler), up: up.clone(), alive: alive.clone(), open: false });
        Ok(Box::new(SimSocket { up, alive }))
    }

    fn watch_page(&self, _handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
        None
    }

    fn log_error(&self, _message: &str) {}

    fn storage_get(&self, key: &str) -> Option<String> {
        self.storage.get(key)
    }

    fn storage_set(&self, key: &str, value: &str) {
        self.storage.set(key, value);
    }

    fn storage_remove(&self, key: &str) {
        self.storage.remove(key);
    }

    fn open_store(&self, name: &str, access: super::store::Access<'_>, opened: super::store::Opened) {
        self.stores.open(name, access, opened);
    }
}

impl SimHost {
    /// Runs what was queued with `later`.
    pub(crate) fn run_later(&self) {
        loop {
            let next = self.later.borrow_mut().pop_front();
            let Some(f) = next else { return };
            f();
        }
    }

    /// The current socket, if the driver still holds it.
    fn wire(&self) -> Option<(Rc<SocketHandler>, Rc<RefCell<VecDeque<String>>>, bool)> {
        let wire = self.wire.borrow();
        let w = wire.as_ref().filter(|w| w.alive.get())?;
        Some((w.handler.clone(), w.up.clone(), w.open))
    }

    /// Delivers a socket event (no host borrow held: the driver re-enters).
    fn deliver(&self, handler: &SocketHandler, event: SocketEvent<'_>) {
        let now = self.now.get();
        handler(event, (now, now));
        self.run_later();
    }

    /// Moves virtual time to the earliest live timer and fires it.
    fn advance(&self) {
        let next = {
            let mut timers = self.timers.borrow_mut();
            timers.retain(|t| !t.cancelled.get());
            let i = (0..timers.len()).min_by(|&a, &b| timers[a].due.total_cmp(&timers[b].due));
            i.map(|i| timers.swap_remove(i))
        };
        if let Some(t) = next {
            self.now.set(self.now.get().max(t.due));
            (t.f)();
            self.run_later();
        }
    }
}

type Call = Pin<Box<dyn Future<Output = Result<Value, MethodError>>>>;

struct World {
    host: Rc<SimHost>,
    conn: Connection,
    server: SimServer,
    calls: Vec<(String, Option<Call>, u32)>,
    subs: Vec<crate::Subscription>,
    /// Calls carry a `randomSeed` (as a stub's insert's does).
    seeded: bool,
    /// Calls whose page went away before they resolved.
    gone: Vec<String>,
}

/// Fast retries, no heartbeat or connect timeout (virtual time), and a
/// durable outbox in store `persist` if given.
fn sim_options(persist: Option<&str>) -> Options {
    Options {
        heartbeat_interval_ms: 0.0,
        connect_timeout_ms: 0.0,
        retry: RetryPolicy { min_count: 1, min_timeout_ms: 10.0, base_timeout_ms: 20.0, exponent: 1.5, max_timeout_ms: 100.0, fuzz: 0.5 },
        persist: persist.map(str::to_owned),
        ..Options::default()
    }
}

impl World {
    /// A connection with `options` on a simulated host seeded with `seed`,
    /// to a simulated server that resumes sessions. With a durable outbox,
    /// calls carry a `randomSeed`.
    fn new(seed: u64, options: &Options) -> World {
        let host = Rc::new(SimHost { now: Cell::new(1_000_000.0), seed: Cell::new(seed), ..SimHost::default() });
        let conn = crate::connect_on(host.clone(), "ws://sim/websocket", options.clone()).unwrap();
        host.run_later();
        let seeded = options.persist.is_some();
        World { host, conn, server: SimServer::new(true), calls: Vec::new(), subs: Vec::new(), seeded, gone: Vec::new() }
    }

    fn step(&mut self, st: &Step) {
        let host = self.host.clone();
        match st {
            Step::Call { wait } => {
                let token = format!("t{}", self.calls.len() + self.gone.len() + 1);
                let random_seed = self.seeded.then(|| format!("seed-{token}"));
                let call =
                    self.conn.apply::<Value>("m", (token.clone(),), CallOptions { wait: *wait, random_seed, ..CallOptions::default() });
                self.calls.push((token, Some(Box::pin(call)), 0));
            }
            Step::Subscribe(p) => self.subs.push(self.conn.subscribe(&format!("p{p}"), ())),
            Step::Unsubscribe(i) => {
                let live: Vec<&crate::Subscription> = self.subs.iter().filter(|s| s.ended().is_none()).collect();
                if !live.is_empty() {
                    live[i % live.len()].stop();
                }
            }
            Step::Write(p, d, v) => self.server.write(*p, *d, *v),
            Step::ServerEnd(i) => self.server.end_sub(*i),
            Step::ToServer => match host.wire() {
                Some((handler, _, false)) => {
                    if let Some(w) = host.wire.borrow_mut().as_mut() {
                        w.open = true;
                    }
                    self.server.socket_gone();
                    host.deliver(&handler, SocketEvent::Open);
                }
                Some((_, up, true)) => {
                    let text = up.borrow_mut().pop_front();
                    if let Some(text) = text {
                        self.server.receive(&text);
                    }
                }
                None => {}
            },
            Step::ToClient => {
                if let Some((handler, _, true)) = host.wire() {
                    if let Some(text) = self.server.down.pop_front() {
                        host.deliver(&handler, SocketEvent::Text(&text));
                    }
                }
            }
            Step::Drop => {
                if let Some((handler, up, _)) = host.wire() {
                    up.borrow_mut().clear();
                    self.server.socket_gone();
                    host.deliver(&handler, SocketEvent::Close(1006));
                }
            }
            Step::Time => host.advance(),
        }
        // A socket the driver let go: the server sees it end.
        if host.wire.borrow().as_ref().is_some_and(|w| !w.alive.get()) {
            host.wire.borrow_mut().take();
            self.server.socket_gone();
        }
        self.poll_calls();
    }

    fn poll_calls(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        for (_, call, done) in &mut self.calls {
            if let Some(fut) = call {
                if let Poll::Ready(outcome) = fut.as_mut().poll(&mut cx) {
                    *done += 1;
                    assert!(outcome.is_ok(), "{outcome:?}");
                    *call = None;
                }
            }
        }
    }

    /// The page reloads: its connection, call futures and subscriptions go
    /// (what it sent stays sent; the server sees its socket end), and a
    /// new page connects with `options`.
    fn reload(&mut self, options: &Options) {
        // The page goes first, all of it, as in a browser: its connection
        // (with its durable store, so its page is no longer alive), then
        // its futures (dropped first, an unsent call's future would cancel
        // it, as the app asked).
        let (unresolved, resolved): (Vec<_>, Vec<_>) = std::mem::take(&mut self.calls).into_iter().partition(|(_, call, _)| call.is_some());
        self.calls = resolved;
        self.subs.clear();
        let elsewhere = Rc::new(SimHost::default());
        let gone = std::mem::replace(&mut self.conn, crate::connect_on(elsewhere, "ws://elsewhere/websocket", Options::default()).unwrap());
        drop(gone);
        self.gone.extend(unresolved.into_iter().map(|(token, _, _)| token));
        if self.host.wire.borrow_mut().take().is_some() {
            self.server.socket_gone();
        }
        self.host.timers.borrow_mut().clear();
        self.host.later.borrow_mut().clear();
        // What the new page defers (reading its store) runs at the next
        // step that lets time pass: its listeners hear everything.
        self.conn = crate::connect_on(self.host.clone(), "ws://sim/websocket", options.clone()).unwrap();
    }

    fn settle(&mut self) {
        for _ in 0..100_000 {
            let wire = self.host.wire();
            let quiet = wire.as_ref().is_some_and(|(_, up, open)| *open && up.borrow().is_empty()) && self.server.down.is_empty();
            if quiet && self.conn.outbox() == crate::Outbox::default() && self.conn.connected() {
                return;
            }
            let st = match wire {
                None => Step::Time,
                Some((_, up, open)) if !open || !up.borrow().is_empty() => Step::ToServer,
                Some(_) if !self.server.down.is_empty() => Step::ToClient,
                Some(_) => Step::Time,
            };
            self.step(&st);
        }
        panic!("did not settle: {:?}", self.conn.status());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The whole driver under random drops with resumption: every call
    /// future resolves exactly once and every call ran once; every live
    /// subscription is ready and the server holds exactly those; the
    /// collections are what the server published.
    #[test]
    fn the_driver_on_a_simulated_host_settles_every_call_once_and_converges(
        steps in proptest::collection::vec(step(), 1..60),
        seed in 1u64..u64::MAX,
    ) {
        let mut w = World::new(seed, &sim_options(None));
        for st in &steps {
            w.step(st);
        }
        w.settle();
        for (token, call, done) in &w.calls {
            prop_assert!(call.is_none() && *done == 1, "{} resolved {} times", token, done);
            prop_assert_eq!(w.server.runs.get(token).copied(), Some(1), "{} ran once", token);
        }
        let live: BTreeSet<String> = w.subs.iter().filter(|s| s.ended().is_none()).map(|s| s.id().to_owned()).collect();
        for s in w.subs.iter().filter(|s| s.ended().is_none()) {
            prop_assert!(s.ready(), "live subscription {} is ready", s.id());
        }
        prop_assert_eq!(w.server.held_subs(), live);
        let mut store = BTreeMap::new();
        for p in 0..PUBS {
            for doc in w.conn.collection(&format!("c{p}")).find() {
                store.insert((p, doc["_id"].as_str().unwrap().to_owned()), doc["v"].as_i64().unwrap());
            }
        }
        prop_assert_eq!(&store, &w.server.session().view);
        w.conn.close();
        prop_assert!(w.host.wire().is_none(), "close() let the socket go");
    }
}

/// A step of the reload test: one of the shared steps, or a reload.
#[derive(Debug, Clone)]
enum PageStep {
    Step(Step),
    Reload,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The durable outbox across reloads, drops and lost frames: every call
    /// ever made runs exactly once on the server (a call re-sent by a new
    /// page's session carries its seed, and a seed seen twice is a
    /// duplicate key, never a second run); each call of the current page
    /// resolves once; each call an earlier page left settles through one
    /// event; and at the end the store keeps no call.
    #[test]
    fn calls_survive_reloads_and_run_once(
        steps in proptest::collection::vec(prop_oneof![12 => step().prop_map(PageStep::Step), 1 => Just(PageStep::Reload)], 1..80),
        seed in 1u64..u64::MAX,
    ) {
        let options = sim_options(Some("outbox"));
        let mut w = World::new(seed, &options);
        let settled: Rc<RefCell<Vec<String>>> = Rc::default();
        let listen = |w: &World| {
            let settled = settled.clone();
            w.conn.persisted_calls().expect("a durable outbox").on_event(move |e| {
                if let crate::PersistEvent::Settled { key, outcome, .. } = e {
                    assert!(outcome.is_ok() || outcome.as_ref().err().map(|e| e.error()) == Some(11000.into()), "{outcome:?}");
                    settled.borrow_mut().push(key.clone());
                }
            })
        };
        let mut handle = listen(&w);
        for st in &steps {
            match st {
                PageStep::Step(st) => w.step(st),
                PageStep::Reload => {
                    // The new page listens, then reads its store (before the
                    // app can call anything: a call made before the store
                    // is open is kept only once it opens, `durable` says when).
                    w.reload(&options);
                    handle = listen(&w);
                    w.host.run_later();
                }
            }
        }
        w.settle();
        drop(handle);
        for token in w.calls.iter().map(|(t, _, _)| t).chain(&w.gone) {
            prop_assert_eq!(w.server.runs.get(token).copied(), Some(1), "{} ran once", token);
        }
        for (token, call, done) in &w.calls {
            prop_assert!(call.is_none() && *done == 1, "{} resolved {} times", token, done);
        }
        let mut ids = settled.borrow().clone();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), n, "each earlier call settles once");
        prop_assert!(n <= w.gone.len());
        prop_assert_eq!(w.conn.persisted_calls().unwrap().list(), vec![]);
        prop_assert_eq!(w.host.stores.calls("ddp-live/outbox/ws://sim/websocket"), 0, "no call is left in the store");
    }
}

/// The durable outbox's events on `w`'s connection.
fn persist_events(w: &World) -> (Rc<RefCell<Vec<crate::PersistEvent>>>, crate::ListenerHandle) {
    let seen: Rc<RefCell<Vec<crate::PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let handle = w.conn.persisted_calls().unwrap().on_event(move |e| s.borrow_mut().push(e.clone()));
    (seen, handle)
}

#[test]
fn a_no_retry_call_sent_before_a_reload_settles_invocation_failed_and_is_not_sent_again() {
    let options = sim_options(Some("once"));
    let mut w = World::new(7, &options);
    // Connected: the socket opens and the handshake goes both ways.
    while !w.conn.connected() {
        let st = if w.server.down.is_empty() { Step::ToServer } else { Step::ToClient };
        w.step(&st);
    }
    let seed = Some("seed-pay".to_owned());
    w.conn.apply::<Value>("m", ("pay",), CallOptions { no_retry: true, random_seed: seed, ..CallOptions::default() }).detach();
    // The server reads it (and runs it); its answer never reaches the page.
    while !w.server.runs.contains_key("pay") {
        w.step(&Step::ToServer);
    }
    w.reload(&options);
    let (seen, _h) = persist_events(&w);
    w.host.run_later();
    w.settle();
    let settled: Vec<_> = seen.borrow().iter().filter(|e| matches!(e, crate::PersistEvent::Settled { .. })).cloned().collect();
    assert!(
        matches!(&settled[..], [crate::PersistEvent::Settled { outcome: Err(MethodError::InvocationFailed), .. }]),
        "{:?}",
        seen.borrow()
    );
    assert_eq!(w.server.runs.get("pay"), Some(&1), "not sent again");
    assert_eq!(w.host.stores.calls("ddp-live/once/ws://sim/websocket"), 0);
}

#[test]
fn damaged_records_are_removed_and_a_newer_clients_left_in_place() {
    let host = Rc::new(SimHost::default());
    let name = "ddp-live/mixed/ws://sim/websocket";
    // An earlier page's store: a damaged record and one of a newer format.
    let newer = r#"{"v":99,"id":1,"name":"m","params":[],"at":1}"#;
    host.stores.open(
        name,
        super::store::Access::Page("earlier"),
        Box::new(move |opened| {
            let (store, _) = opened.unwrap();
            store.put("earlier-1", "not json", Box::new(|r| r.unwrap()));
            store.put("earlier-2", newer, Box::new(|r| r.unwrap()));
        }),
    );
    let conn = crate::connect_on(host.clone(), "ws://sim/websocket", sim_options(Some("mixed"))).unwrap();
    let seen: Rc<RefCell<Vec<crate::PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let _h = conn.persisted_calls().unwrap().on_event(move |e| s.borrow_mut().push(e.clone()));
    host.run_later();
    let events = seen.borrow().clone();
    assert!(events.iter().any(|e| matches!(e, crate::PersistEvent::Discarded { key, .. } if key == "earlier-1")), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, crate::PersistEvent::Skipped { key, .. } if key == "earlier-2")), "{events:?}");
    assert!(events.contains(&crate::PersistEvent::Restored { count: 0, waiting: 0 }), "{events:?}");
    assert_eq!(host.stores.len(name), 1, "the newer record is left for its client");
}

/// The durable cache's records in `host`'s store `name` (nobody logged
/// in), decoded: (collection, id) → the field `v`.
fn cached_docs(host: &SimHost, name: &str) -> BTreeMap<(String, String), i64> {
    let scope = crate::protocol::cache::scope(None).unwrap_or_default();
    host.stores
        .records(name)
        .into_iter()
        .filter_map(|(k, v)| crate::protocol::cache::read(&scope, &k, &v).ok())
        .map(|(c, id, doc)| ((c, id), doc.fields()["v"].as_i64().unwrap_or_default()))
        .collect()
}

/// The documents `conn` shows: (collection, id) → the field `v`.
fn shown_docs(conn: &Connection) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for p in 0..PUBS {
        let c = format!("c{p}");
        for doc in conn.collection(&c).find() {
            out.insert((c.clone(), doc["_id"].as_str().unwrap_or_default().to_owned()), doc["v"].as_i64().unwrap_or_default());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// The durable cache across reloads, drops and lost frames: a new page
    /// shows at once exactly what the cache held (stale when it held
    /// anything), before any frame; once settled it shows the server's
    /// documents and is no longer stale; and the cache then follows them.
    #[test]
    fn cached_documents_show_at_once_after_a_reload_and_converge(
        steps in proptest::collection::vec(prop_oneof![12 => step().prop_map(PageStep::Step), 1 => Just(PageStep::Reload)], 1..80),
        seed in 1u64..u64::MAX,
    ) {
        let options = sim_options(Some("cache"));
        let name = "ddp-live-cache/cache/ws://sim/websocket";
        let mut w = World::new(seed, &options);
        for st in &steps {
            match st {
                PageStep::Step(st) => w.step(st),
                PageStep::Reload => {
                    w.reload(&options);
                    w.host.run_later();
                    let cached = cached_docs(&w.host, name);
                    prop_assert_eq!(shown_docs(&w.conn), cached.clone(), "the cache shows at once");
                    prop_assert_eq!(w.conn.stale(), !cached.is_empty());
                }
            }
        }
        w.settle();
        prop_assert!(!w.conn.stale(), "fresh once settled");
        let server: BTreeMap<(String, String), i64> = w.server.session().view.iter().map(|((p, id), v)| ((format!("c{p}"), id.clone()), *v)).collect();
        prop_assert_eq!(shown_docs(&w.conn), server.clone());
        // The batch due is written (the only timer left: no heartbeat).
        for _ in 0..3 {
            w.host.advance();
        }
        prop_assert_eq!(cached_docs(&w.host, name), server);
    }
}

#[test]
fn damaged_and_newer_cache_records_are_removed_with_an_event_and_the_rest_shown() {
    let host = Rc::new(SimHost::default());
    let name = "ddp-live-cache/mixed/ws://sim/websocket";
    let scope = crate::protocol::cache::scope(None).unwrap_or_default();
    let key = |id: &str| crate::protocol::cache::key(&scope, "c0", id).unwrap_or_default();
    let (ok, damaged, newer) = (key("ok"), key("damaged"), key("newer"));
    let records = [(ok.clone(), r#"{"v":1,"f":{"v":7}}"#), (damaged.clone(), "not json"), (newer.clone(), r#"{"v":99,"f":{"v":1}}"#)];
    host.stores.open(
        name,
        super::store::Access::Shared(&scope),
        Box::new(move |opened| {
            let (store, _) = opened.unwrap();
            let put = records.iter().map(|(k, v)| (k.clone(), (*v).to_owned())).collect();
            store.batch(super::store::Batch { put, ..Default::default() }, Box::new(|r| r.unwrap()));
        }),
    );
    let conn = crate::connect_on(host.clone(), "ws://sim/websocket", sim_options(Some("mixed"))).unwrap();
    let seen: Rc<RefCell<Vec<crate::PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let _h = conn.persisted_calls().unwrap().on_event(move |e| s.borrow_mut().push(e.clone()));
    host.run_later();
    let events = seen.borrow().clone();
    assert!(events.iter().any(|e| matches!(e, crate::PersistEvent::Discarded { key, .. } if *key == damaged)), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, crate::PersistEvent::Skipped { key, .. } if *key == newer)), "{events:?}");
    assert!(events.contains(&crate::PersistEvent::CacheRestored { documents: 1, user: None }), "{events:?}");
    assert_eq!(shown_docs(&conn), BTreeMap::from([(("c0".to_owned(), "ok".to_owned()), 7)]));
    assert!(conn.stale());
    assert_eq!(host.stores.records(name).into_iter().map(|(k, _)| k).collect::<Vec<_>>(), vec![ok], "a cache is only a copy: both removed");
}

#[test]
fn a_cache_that_cannot_open_is_a_typed_event_apart_from_the_outbox() {
    // A host with no durable store at all (the default: unavailable).
    struct NoStore(Rc<SimHost>);
    impl Host for NoStore {
        fn clocks(&self) -> (f64, f64) {
            self.0.clocks()
        }
        fn random(&self) -> f64 {
            self.0.random()
        }
        fn later(&self, f: Box<dyn FnOnce()>) {
            self.0.later(f)
        }
        fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> Guard {
            self.0.timer(ms, f)
        }
        fn open_socket(&self, url: &str, max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
            self.0.open_socket(url, max_len, handler)
        }
        fn watch_page(&self, handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
            self.0.watch_page(handler)
        }
        fn log_error(&self, message: &str) {
            self.0.log_error(message)
        }
    }
    let sim = Rc::new(SimHost::default());
    let conn = crate::connect_on(Rc::new(NoStore(sim.clone())), "ws://sim/websocket", sim_options(Some("none"))).unwrap();
    let seen: Rc<RefCell<Vec<crate::PersistEvent>>> = Rc::default();
    let s = seen.clone();
    let _h = conn.persisted_calls().unwrap().on_event(move |e| s.borrow_mut().push(e.clone()));
    sim.run_later();
    let events = seen.borrow().clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, crate::PersistEvent::CacheFailed { error } if error.kind == super::store::StorageErrorKind::Unavailable)),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, crate::PersistEvent::StorageFailed { key: None, .. })),
        "the outbox's own report: {events:?}"
    );
    assert!(!conn.stale());
}
