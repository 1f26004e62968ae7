//! The driver: one per connection. It owns the protocol
//! [`Machine`], the socket, the timer, the page watch, the observables
//! (status, session id, outbox counts), the pending calls' settlements and
//! the pump that carries the machine's output out.
//!
//! Features (collections and subscriptions, stubs, accounts) plug in
//! through [`Plugin`]: the driver holds them, hands them the completions it
//! does not settle itself, and knows nothing else of them. Its fields are
//! private to the `connection` module, so no feature reaches into them.

use super::Connection;
use crate::host::{Clock, Guard, Host, HostSocket, PageEvent, SocketEvent};
use crate::protocol::hash::FastMap;
use crate::protocol::machine::{Completion, Event, Input, Machine, MethodError, Outbox, Output};
use crate::protocol::status::Status;
use crate::reactive::{Observable, Registry};
use futures_channel::oneshot;
use serde_json::Value;
use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// A call's final outcome: the server's result (`None`: it sent none), or why it failed.
pub(crate) type Outcome = Result<Option<Value>, MethodError>;

/// Called with a call's outcome as soon as its `result` arrives.
pub type ResultHook = Box<dyn FnOnce(&Result<Option<Value>, MethodError>)>;

/// Called once with a call's final outcome (`Closed` if the connection
/// goes away first).
pub(crate) type DoneHook = Box<dyn FnOnce(Outcome)>;

/// Where a call's final outcome goes.
pub(crate) enum Done {
    /// A Rust [`MethodCall`](crate::MethodCall) future.
    Future(oneshot::Sender<Outcome>),
    /// A callback (the JS layer settles its Promise here directly, with no
    /// executor or channel in between).
    Hook(DoneHook),
}

/// What the driver keeps for a call until it ends.
pub(super) struct PendingCall {
    pub(super) on_result: Option<ResultHook>,
    pub(super) done: Option<Done>,
}

impl PendingCall {
    fn finish(mut self, outcome: Outcome) {
        match self.done.take() {
            Some(Done::Future(tx)) => {
                let _ = tx.send(outcome);
            }
            Some(Done::Hook(f)) => f(outcome),
            None => {}
        }
    }
}

impl Drop for PendingCall {
    /// A call dropped unfinished (the connection itself went away) still
    /// settles: a hook hears `Closed`; a future sees its channel close.
    fn drop(&mut self) {
        if let Some(Done::Hook(f)) = self.done.take() {
            f(Err(MethodError::Closed));
        }
    }
}

/// A feature plugged into a connection's driver: the collections and
/// subscriptions, the stubs, the accounts. The driver holds each for as
/// long as the connection lives (one per type, made on first use by
/// [`Connection::plugin`]) and hands it every completion: documents
/// changed, subscriptions ready or ended, calls queued, answered, ended
/// (the driver settles the calls' own hooks and futures after). A plug-in
/// holds the connection only weakly.
pub(crate) trait Plugin: Any {
    /// A completion of the machine's (called with no borrow held: the
    /// plug-in may run app code that calls back into the connection).
    fn completion(&self, _done: &Completion) {}

    /// The connection was closed for good: let go of what it holds outside
    /// (a durable store and its page lock).
    fn closed(&self) {}
}

thread_local! {
    pub(super) static GLOBAL_RECONNECT_HOOKS: Rc<Registry<dyn Fn(&Connection)>> = Rc::default();
}

pub(crate) struct Driver {
    pub(super) url: String,
    /// The URL as given to `connect` (Meteor's `rawUrl`: accounts' storage keys).
    pub(super) raw_url: String,
    pub(super) machine: RefCell<Machine>,
    /// Where the driver runs: sockets, timers, clocks, randomness.
    pub(super) host: Rc<dyn Host>,
    socket: RefCell<Option<(u64, Box<dyn HostSocket>)>>,
    /// The pending timer and the time it fires at.
    pub(super) timer: RefCell<Option<(f64, Guard)>>,
    /// The page listeners while they are held, and how many there are.
    pub(super) page: RefCell<Option<(Guard, usize)>>,
    pub(super) status: Observable<Status>,
    pub(super) session: Observable<Option<String>>,
    pub(super) listeners: Rc<Registry<dyn Fn(&Event)>>,
    pub(super) closed: Cell<bool>,
    clock: Clock,
    /// True while [`Driver::pump`] runs: a pump asked for from inside it (a
    /// listener that calls back into the connection) leaves the work to the
    /// running loop instead of nesting, so the stack never grows with
    /// re-entrant app code and listeners hear events in order.
    pumping: Cell<bool>,
    pub(super) calls: RefCell<FastMap<u64, PendingCall>>,
    pub(super) reconnect_hooks: Rc<Registry<dyn Fn(&Connection)>>,
    pub(super) outbox: Observable<Outbox>,
    /// The plug-ins, at most one of each type.
    plugins: RefCell<Vec<Rc<dyn Plugin>>>,
}

impl Driver {
    pub(super) fn new(host: Rc<dyn Host>, url: String, raw_url: String, machine: Machine) -> Rc<Self> {
        Rc::new(Driver {
            url,
            raw_url,
            status: Observable::new(machine.status()),
            machine: RefCell::new(machine),
            host,
            socket: RefCell::new(None),
            timer: RefCell::new(None),
            page: RefCell::new(None),
            session: Observable::new(None),
            listeners: Rc::default(),
            closed: Cell::new(false),
            clock: Clock::default(),
            pumping: Cell::new(false),
            calls: RefCell::new(FastMap::default()),
            reconnect_hooks: Rc::default(),
            outbox: Observable::new(Outbox::default()),
            plugins: RefCell::default(),
        })
    }

    /// Starts listening to the page (when asked to) and connecting.
    pub(super) fn start(self: &Rc<Self>, watch_page: bool) {
        if watch_page {
            let weak = Rc::downgrade(self);
            let watch = self.host.watch_page(Box::new(move |e| {
                if let Some(driver) = weak.upgrade() {
                    driver.page_event(e);
                }
            }));
            *self.page.borrow_mut() = watch;
        }
        let now = self.now();
        self.machine.borrow_mut().start(now);
        self.pump();
    }

    /// The plug-in of type `P`, if the connection has one.
    pub(super) fn find_plugin<P: Plugin>(&self) -> Option<Rc<P>> {
        let found = self.find(TypeId::of::<P>())?;
        #[allow(unsafe_code)]
        // SAFETY: `find` matched the value's own type id (read through its
        // vtable) against `P`'s, so the value behind this pointer is a `P`,
        // allocated by an `Rc<P>` (coerced to `Rc<dyn Plugin>` when added).
        // Dropping the vtable half of the pointer and rebuilding the `Rc`
        // from it is what `Rc::downcast` does after the same check.
        Some(unsafe { Rc::from_raw(Rc::into_raw(found).cast::<P>()) })
    }

    /// The plug-in whose type is `id` (one copy of the search, whatever the type).
    fn find(&self, id: TypeId) -> Option<Rc<dyn Plugin>> {
        self.plugins.borrow().iter().find(|p| (***p).type_id() == id).cloned()
    }

    /// Adds plug-in `p` (unless one of its type came first: that one stays)
    /// and returns the connection's plug-in of that type.
    pub(super) fn add_plugin<P: Plugin>(&self, p: Rc<P>) -> Rc<P> {
        if let Some(first) = self.find_plugin::<P>() {
            return first;
        }
        self.plugins.borrow_mut().push(p.clone());
        p
    }

    /// Tells every plug-in the connection was closed.
    pub(super) fn close_plugins(&self) {
        self.each_plugin(|p| p.closed());
    }

    /// Hands a completion to every plug-in.
    fn to_plugins(&self, done: &Completion) {
        self.each_plugin(|p| p.completion(done));
    }

    /// Runs `f` on every plug-in, holding no borrow while it runs (a
    /// plug-in may run app code that adds another: it is reached too).
    fn each_plugin(&self, f: impl Fn(&dyn Plugin)) {
        let mut i = 0;
        loop {
            let Some(p) = self.plugins.borrow().get(i).cloned() else { break };
            f(&*p);
            i += 1;
        }
    }

    /// The wall clock; when it was set back, the machine's deadlines move
    /// back with it first (the host's monotonic clock tells by how much).
    pub(super) fn now(&self) -> f64 {
        let (wall, mono) = self.host.clocks();
        self.now_at(wall, mono)
    }

    /// [`Driver::now`] with the clocks already read (by the socket's handler).
    fn now_at(&self, wall: f64, mono: f64) -> f64 {
        let (now, set_back) = self.clock.at(wall, mono);
        if let Some(by) = set_back {
            self.machine.borrow_mut().handle_clock_jump(by);
        }
        now
    }

    /// Carries the machine's output out, until there is none. No borrow is
    /// held while app code runs, so listeners may call back into the
    /// connection; what they cause is handled by this same loop after they
    /// return (one event loop per connection), never by a nested pump.
    pub(super) fn pump(self: &Rc<Self>) {
        if self.pumping.replace(true) {
            return;
        }
        loop {
            let next = self.machine.borrow_mut().poll_output();
            let Some(output) = next else {
                // Observers of the status, session and outbox may call back
                // in (a call from `onOutboxChange`): go round again until
                // nothing new is queued.
                self.publish();
                if self.machine.borrow().has_output() {
                    continue;
                }
                break;
            };
            match output {
                Output::OpenSocket { socket } => self.open_socket(socket),
                Output::Send { socket, text } => {
                    let result = match self.socket.borrow().as_ref() {
                        Some((id, s)) if *id == socket => s.send(&text),
                        _ => Ok(()),
                    };
                    if result.is_err() {
                        let now = self.now();
                        self.machine.borrow_mut().handle(Input::Socket(socket, SocketEvent::Error), now);
                    }
                }
                Output::CloseSocket { socket } => {
                    let old = {
                        let mut slot = self.socket.borrow_mut();
                        if slot.as_ref().is_some_and(|(id, _)| *id == socket) {
                            slot.take()
                        } else {
                            None
                        }
                    };
                    drop(old);
                }
                Output::Done(done) => {
                    // The plug-ins first (a durable outbox forgets a call the
                    // server ran), then the call's own hook or future.
                    self.to_plugins(&done);
                    match done {
                        Completion::MethodResult { id, outcome } => {
                            let hook = self.calls.borrow_mut().get_mut(&id).and_then(|c| c.on_result.take());
                            if let Some(hook) = hook {
                                hook(&outcome);
                            }
                        }
                        Completion::MethodDone { id, outcome } => {
                            let pending = self.calls.borrow_mut().remove(&id);
                            if let Some(p) = pending {
                                p.finish(outcome);
                            }
                        }
                        _ => {}
                    }
                }
                Output::Event(event) => {
                    // The status is current before any listener hears of the event.
                    self.publish();
                    for l in self.listeners.snapshot() {
                        l(&event);
                    }
                }
                Output::RunReconnectHooks => {
                    let conn = Connection { driver: self.clone() };
                    let own = self.reconnect_hooks.snapshot();
                    let global = GLOBAL_RECONNECT_HOOKS.with(|g| g.snapshot());
                    for hook in own.iter().chain(global.iter()) {
                        hook(&conn);
                    }
                    self.machine.borrow_mut().reconnect_hooks_done();
                }
            }
        }
        self.pumping.set(false);
        self.reschedule();
    }

    /// Carries status, session id and outbox counts to their observables.
    /// Runs after every frame, so it allocates nothing unless something changed.
    fn publish(&self) {
        let (status, session, outbox) = {
            let m = self.machine.borrow();
            let same_session = self.session.with(|s| s.as_deref() == m.session());
            (m.status(), (!same_session).then(|| m.session().map(str::to_owned)), m.outbox())
        };
        if let Some(session) = session {
            self.session.set(session);
        }
        self.status.set(status);
        self.outbox.set(outbox);
    }

    fn open_socket(self: &Rc<Self>, socket: u64) {
        let weak: Weak<Driver> = Rc::downgrade(self);
        let max_len = self.machine.borrow().config().max_frame_bytes;
        let opened = self.host.open_socket(
            &self.url,
            max_len,
            Box::new(move |e, clocks| {
                if let Some(driver) = weak.upgrade() {
                    driver.socket_event(socket, e, clocks);
                }
            }),
        );
        match opened {
            Ok(s) => *self.socket.borrow_mut() = Some((socket, s)),
            // Reported from a microtask: the socket of the first attempt is
            // opened inside `connect()`, before the app could listen for errors.
            Err(reason) => {
                let weak = Rc::downgrade(self);
                self.host.later(Box::new(move || {
                    if let Some(driver) = weak.upgrade() {
                        let now = driver.now();
                        driver.machine.borrow_mut().handle(Input::Socket(socket, SocketEvent::Refused(&reason)), now);
                        driver.pump();
                    }
                }));
            }
        }
    }

    fn socket_event(self: &Rc<Self>, socket: u64, event: SocketEvent<'_>, (wall, mono): (f64, f64)) {
        let now = self.now_at(wall, mono);
        self.machine.borrow_mut().handle(Input::Socket(socket, event), now);
        self.pump();
    }

    fn page_event(self: &Rc<Self>, event: PageEvent) {
        let now = self.now();
        self.machine.borrow_mut().handle(Input::Page(event), now);
        self.pump();
    }

    /// Keeps one timer armed no later than the machine's next deadline. A
    /// deadline that moves later (the heartbeat, on every frame) leaves the
    /// armed timer alone: it fires early, the machine does nothing, and the
    /// timer is re-armed. So the hot path never touches timers.
    fn reschedule(self: &Rc<Self>) {
        if self.closed.get() {
            return;
        }
        // A timer that fires by the next deadline stays. Firing early is
        // harmless: it reads the clock and looks again.
        let covered = |deadline: Option<f64>| deadline.is_some_and(|at| self.timer.borrow().as_ref().is_some_and(|(t, _)| *t <= at));
        // The common case, after most frames: nothing to do, no clock to read.
        if covered(self.machine.borrow().poll_timeout()) {
            return;
        }
        // The clock first: a wall clock set back moves the deadlines, which
        // are read after it.
        let now = self.now();
        let deadline = self.machine.borrow().poll_timeout();
        if covered(deadline) {
            return;
        }
        let mut timer = self.timer.borrow_mut();
        match deadline {
            None => *timer = None,
            Some(at) => {
                // Rounded up: a timer that fires before the deadline wakes for nothing.
                let delay = (at - now).ceil().clamp(0.0, i32::MAX as f64) as u32;
                let weak = Rc::downgrade(self);
                let guard = self.host.timer(
                    delay,
                    Box::new(move || {
                        if let Some(driver) = weak.upgrade() {
                            driver.timer.borrow_mut().take();
                            let now = driver.now();
                            driver.machine.borrow_mut().handle(Input::Timeout, now);
                            driver.pump();
                        }
                    }),
                );
                *timer = Some((at, guard));
            }
        }
    }
}
