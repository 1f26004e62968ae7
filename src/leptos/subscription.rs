//! `use_subscription`: a subscription that lives as long as its owner and
//! follows reactive arguments (Meteor's Tracker semantics).

use super::live::{self, Snapshot};
use super::use_connection;
use crate::reactive::ListenerHandle;
use crate::{Connection, Subscription, SubscriptionEnd};
use leptos::prelude::*;
use leptos::reactive::effect::ImmediateEffect;
use send_wrapper::SendWrapper;
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// What [`use_subscription`] returns (`Copy`).
#[derive(Clone, Copy)]
pub struct UseSubscription {
    /// True once the server said `ready` for the current subscription
    /// (false again while a replacement, made for new arguments, loads).
    pub ready: Signal<bool>,
    /// How the current subscription ended, if it has (`Failed` carries the
    /// server's error).
    pub ended: Signal<Option<SubscriptionEnd>>,
    /// The current DDP subscription id (`None` once stopped).
    pub id: Signal<Option<String>>,
    /// True while its documents may be an earlier session's, not confirmed
    /// by the server yet (the connection's [`use_stale`](super::use_stale)
    /// while this subscription is not ready); always false once ready.
    pub stale: Signal<bool>,
    /// (`None` in a server render: no connection there.)
    state: StoredValue<Option<SendWrapper<Rc<State>>>>,
}

impl std::fmt::Debug for UseSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseSubscription").field("id", &self.id.get_untracked()).finish()
    }
}

impl UseSubscription {
    /// The current subscription handle.
    pub fn subscription(&self) -> Option<Subscription> {
        self.state.try_with_value(|s| s.as_ref().and_then(|s| s.current.borrow().as_ref().map(|c| c.sub.clone()))).flatten()
    }

    /// Stops the subscription now, before its owner goes (new reactive
    /// arguments subscribe again).
    pub fn stop(&self) {
        self.state.try_with_value(|s| s.as_ref().map(|s| s.stop()));
    }
}

struct Current {
    args: Value,
    sub: Subscription,
    _ready: ListenerHandle,
    _ended: ListenerHandle,
}

struct State {
    conn: Connection,
    name: String,
    current: RefCell<Option<Current>>,
    ready: ArcRwSignal<bool>,
    ended: ArcRwSignal<Option<SubscriptionEnd>>,
    id: ArcRwSignal<Option<String>>,
    /// What the server rendered with, for the first subscription (taken by it).
    seed: RefCell<Option<Snapshot>>,
}

/// A subscription's argument list from its arguments: a tuple or `Vec` is
/// the list, nothing (`null`) none, any other value the single argument.
fn params_of(args: Value) -> Vec<Value> {
    match args {
        Value::Array(list) => list,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

impl State {
    /// Subscribes with `args` unless the current subscription has the same
    /// arguments; the old subscription stops after the new one is sent, so
    /// documents both publish never flicker.
    fn follow(&self, args: Value) {
        if self.current.borrow().as_ref().is_some_and(|c| c.args == args) {
            return;
        }
        let seed = self.seed.borrow_mut().take();
        let sub = live::subscribe(&self.conn, &self.name, params_of(args.clone()), seed);
        let ready = self.ready.clone();
        let on_ready = sub.ready_observable().subscribe(move |r| ready.set(*r));
        let ended = self.ended.clone();
        let on_end = sub.ended_observable().subscribe(move |e| ended.set(e.clone()));
        self.ready.set(sub.ready());
        self.ended.set(sub.ended());
        self.id.set(Some(sub.id().to_owned()));
        let old = self.current.replace(Some(Current { args, sub, _ready: on_ready, _ended: on_end }));
        if let Some(Current { sub, _ready, _ended, .. }) = old {
            // Its listeners go first: its end is not the hook's.
            drop((_ready, _ended));
            sub.stop();
        }
    }

    fn stop(&self) {
        let old = self.current.borrow_mut().take();
        if let Some(old) = old {
            old.sub.stop();
            self.ready.set(false);
            self.id.set(None);
        }
    }
}

/// Subscribes to publication `name` on the provided connection for as long
/// as the current owner (component) lives; `unsub` goes out when it is
/// cleaned up.
///
/// `args` is the argument list (a tuple or `Vec`; any other value is the
/// single argument). It may hold signals: Leptos's signals serialize as
/// their current value, and reading them here is tracked, so
/// `(room, limit)` with `room: RwSignal<String>` follows `room`, as does a
/// `Signal::derive(move || ...)` or a `Memo`. When they change, the
/// subscription is replaced: the new one is sent, then the old one
/// stopped. Arguments equal to the current ones (as JSON) send nothing, as
/// in Meteor's Tracker.
///
/// In a server render (feature `ssr`) the subscription is made by the
/// request's connection on the server: `ready` turns true (read it inside
/// `<Suspense>`) once it was ready there within the timeout, and its
/// documents travel with the page; the hydrating browser takes them as
/// its cache and its subscription as ready, so its first render is the
/// server's. Once the browser's own subscription is ready, what changed
/// meanwhile is applied (and only that).
///
/// ```no_run
/// # use leptos::prelude::*;
/// # use ddp_live::leptos::use_subscription;
/// # fn messages() -> impl IntoView {
/// let room = RwSignal::new("general".to_string());
/// let sub = use_subscription("messages", (room,));
/// view! { <Show when=move || sub.ready.get()>"loaded"</Show> }
/// # }
/// ```
pub fn use_subscription<A>(name: &str, args: A) -> UseSubscription
where
    A: Serialize + Send + Sync + 'static,
{
    on_server!(request => {
        let params = params_of(untrack(|| serde_json::to_value(&args)).unwrap_or(Value::Null));
        let resource = request.subscribe(name, params);
        let (r1, r2) = (resource.clone(), resource);
        UseSubscription {
            ready: Signal::derive(move || r1.with(|s| s.as_ref().is_some_and(|s| s.ready))),
            ended: Signal::derive(move || r2.with(|s| s.as_ref().and_then(|s| s.error.clone()).map(SubscriptionEnd::Failed))),
            id: Signal::stored(None),
            stale: Signal::stored(false),
            state: StoredValue::new(None),
        }
    });
    let conn = use_connection();
    let seed = if live::rendering_with_server() { live::seed_of_subscription() } else { None };
    subscribe_on(&conn, name, args, seed)
}

/// [`use_subscription`] on a given connection.
pub fn subscription_on<A>(conn: &Connection, name: &str, args: A) -> UseSubscription
where
    A: Serialize + Send + Sync + 'static,
{
    subscribe_on(conn, name, args, None)
}

fn subscribe_on<A>(conn: &Connection, name: &str, args: A, seed: Option<Snapshot>) -> UseSubscription
where
    A: Serialize + Send + Sync + 'static,
{
    let state = Rc::new(State {
        conn: conn.clone(),
        name: name.to_owned(),
        current: RefCell::new(None),
        ready: ArcRwSignal::new(false),
        ended: ArcRwSignal::new(None),
        id: ArcRwSignal::new(None),
        seed: RefCell::new(seed),
    });
    let in_effect = SendWrapper::new(state.clone());
    let effect = ImmediateEffect::new_isomorphic(move || {
        // The signals the arguments hold are the effect's only dependencies.
        let value = serde_json::to_value(&args).unwrap_or(Value::Null);
        untrack(|| in_effect.follow(value));
    });
    if Owner::current().is_some() {
        let on_cleanup_state = SendWrapper::new(state.clone());
        on_cleanup(move || {
            drop(effect);
            on_cleanup_state.stop();
        });
    } else {
        // No owner to live in: stopped at once, as the module docs say
        // (Leptos drops an owner-less cleanup without running it).
        drop(effect);
        state.stop();
    }
    let ready = Signal::from(state.ready.read_only());
    let stale = super::stale_signal(conn);
    UseSubscription {
        ready,
        ended: Signal::from(state.ended.read_only()),
        id: Signal::from(state.id.read_only()),
        stale: Signal::derive(move || stale.get() && !ready.get()),
        state: StoredValue::new(Some(SendWrapper::new(state))),
    }
}
