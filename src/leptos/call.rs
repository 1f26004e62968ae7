//! `use_call`: a method call in the shape of Leptos's `Action`, with
//! pending, value and error signals.

use super::use_connection;
use crate::{CallOptions, Connection, MethodCall, MethodError};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// What [`use_call`] returns: call it with [`UseCall::call`], read its
/// signals. `Copy`, like Leptos's `Action`.
pub struct UseCall<R: Send + Sync + 'static> {
    /// True while a call made through this hook is under way (queued
    /// offline counts).
    pub pending: Signal<bool>,
    /// The result of the latest call, once it succeeded (kept until the
    /// next call succeeds).
    pub value: Signal<Option<R>>,
    /// The error of the latest call, if it failed (cleared when a new call
    /// starts).
    pub error: Signal<Option<MethodError>>,
    /// (`None` in a server render: nothing is called there.)
    state: StoredValue<Option<SendWrapper<Rc<State<R>>>>>,
    _r: PhantomData<fn() -> R>,
}

impl<R: Send + Sync + 'static> Clone for UseCall<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: Send + Sync + 'static> Copy for UseCall<R> {}

/// A call being awaited: the task polls it until it ends or the owner goes
/// (the call is then detached: it still runs, nobody waits for it).
struct Slot<R> {
    call: RefCell<Option<MethodCall<R>>>,
    waker: RefCell<Option<Waker>>,
}

struct State<R: Send + Sync + 'static> {
    conn: Connection,
    name: String,
    pending: ArcRwSignal<bool>,
    value: ArcRwSignal<Option<R>>,
    error: ArcRwSignal<Option<MethodError>>,
    /// Which call is the latest (its outcome is the one shown).
    latest: Cell<u64>,
    under_way: Cell<usize>,
    slots: RefCell<Vec<Weak<Slot<R>>>>,
}

impl<R: DeserializeOwned + Clone + Send + Sync + 'static> UseCall<R> {
    /// Calls the method with `args` (a tuple or `Vec` is the argument list;
    /// any other value the single argument). Its client stub, if defined,
    /// runs now; offline, the call waits in the outbox.
    pub fn call(&self, args: impl Serialize) {
        self.apply(args, CallOptions::default());
    }

    /// [`UseCall::call`] with options. Does nothing once the owner is
    /// gone.
    pub fn apply(&self, args: impl Serialize, options: CallOptions) {
        let Some(state) = self.state.try_with_value(|s| s.as_deref().cloned()).flatten() else { return };
        let call = state.conn.apply::<R>(&state.name, args, options);
        let n = state.latest.get() + 1;
        state.latest.set(n);
        state.under_way.set(state.under_way.get() + 1);
        state.pending.set(true);
        state.error.set(None);
        let slot = Rc::new(Slot { call: RefCell::new(Some(call)), waker: RefCell::new(None) });
        {
            let mut slots = state.slots.borrow_mut();
            slots.retain(|s| s.strong_count() > 0);
            slots.push(Rc::downgrade(&slot));
        }
        leptos::task::spawn_local(async move {
            let outcome = wait(&slot).await;
            drop(slot);
            state.under_way.set(state.under_way.get().saturating_sub(1));
            if state.under_way.get() == 0 {
                state.pending.set(false);
            }
            match outcome {
                Some(outcome) if state.latest.get() == n => match outcome {
                    Ok(v) => state.value.set(Some(v)),
                    Err(e) => state.error.set(Some(e)),
                },
                _ => {}
            }
        });
    }
}

/// The call's outcome, or `None` once the slot was emptied (the owner went).
fn wait<R>(slot: &Slot<R>) -> impl Future<Output = Option<Result<R, MethodError>>> + '_ {
    poll_fn(move |cx| {
        let mut call = slot.call.borrow_mut();
        let Some(c) = call.as_mut() else { return Poll::Ready(None) };
        match Pin::new(c).poll(cx) {
            Poll::Ready(outcome) => {
                *call = None;
                Poll::Ready(Some(outcome))
            }
            Poll::Pending => {
                *slot.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
}

impl<R: Send + Sync + 'static> State<R> {
    /// The owner went: every call goes on unwatched, and its task ends.
    fn release(&self) {
        for slot in self.slots.borrow_mut().drain(..).filter_map(|s| s.upgrade()) {
            let call = slot.call.borrow_mut().take();
            if let Some(call) = call {
                call.detach();
            }
            let waker = slot.waker.borrow_mut().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// Method `name` of the provided connection as an action: `call(args)`
/// starts a call; `pending`, `value` and `error` follow the latest one.
/// When the owner is cleaned up, calls under way go on (a write made
/// offline is not lost) but nothing waits for them any more.
///
/// ```no_run
/// # use leptos::prelude::*;
/// # use ddp_live::leptos::use_call;
/// # fn adder() -> impl IntoView {
/// let add = use_call::<i64>("add");
/// view! {
///     <button on:click=move |_| add.call((2, 3)) disabled=move || add.pending.get()>"2 + 3"</button>
///     {move || add.value.get().map(|v| v.to_string())}
///     {move || add.error.get().map(|e| e.to_string())}
/// }
/// # }
/// ```
pub fn use_call<R>(name: &str) -> UseCall<R>
where
    R: DeserializeOwned + Clone + Send + Sync + 'static,
{
    on_server!(_ => UseCall {
        pending: Signal::stored(false),
        value: Signal::stored(None),
        error: Signal::stored(None),
        state: StoredValue::new(None),
        _r: PhantomData,
    });
    use_call_on(&use_connection(), name)
}

/// [`use_call`] on a given connection.
pub fn use_call_on<R>(conn: &Connection, name: &str) -> UseCall<R>
where
    R: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let state = Rc::new(State {
        conn: conn.clone(),
        name: name.to_owned(),
        pending: ArcRwSignal::new(false),
        value: ArcRwSignal::new(None),
        error: ArcRwSignal::new(None),
        latest: Cell::new(0),
        under_way: Cell::new(0),
        slots: RefCell::default(),
    });
    let release = SendWrapper::new(state.clone());
    on_cleanup(move || release.release());
    UseCall {
        pending: Signal::from(state.pending.read_only()),
        value: Signal::from(state.value.read_only()),
        error: Signal::from(state.error.read_only()),
        state: StoredValue::new(Some(SendWrapper::new(state))),
        _r: PhantomData,
    }
}
