//! `use_status`: the connection status and a countdown to the next retry.

use super::{keep_until_cleanup, use_connection};
use crate::{Connection, ConnectionState, Status};
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

/// What [`use_status`] returns.
#[derive(Clone, Copy, Debug)]
pub struct UseStatus {
    /// Meteor's `status()`: `connected`, `status`, `retry_count`,
    /// `retry_time`, `reason`.
    pub status: Signal<Status>,
    /// True while connected (the DDP handshake is done).
    pub connected: Signal<bool>,
    /// Which of the five states the connection is in.
    pub state: Signal<ConnectionState>,
    /// Whole seconds until the next automatic attempt, counting down once a
    /// second (rounded up, so `Some(0)` only as the attempt starts); `None`
    /// unless the status is `waiting`. Its timer runs only while waiting.
    pub retry_in: Signal<Option<u32>>,
}

/// Whole seconds from `now` to `status.retry_time` (both in ms since the
/// epoch), rounded up and never negative; `None` when not waiting.
pub fn seconds_until(status: &Status, now: f64) -> Option<u32> {
    if status.status != ConnectionState::Waiting {
        return None;
    }
    let left = (status.retry_time? - now) / 1000.0;
    Some(if left.is_finite() && left > 0.0 { left.ceil().min(u32::MAX as f64) as u32 } else { 0 })
}

/// The status of the connection from [`provide_connection`](super::provide_connection).
///
/// In a server render (feature `ssr`) it is `connecting` with no retry:
/// the status every browser connection has from its creation until its
/// handshake, which is what the browser's first render shows (its socket
/// opens after hydration), so hydration finds the same HTML.
pub fn use_status() -> UseStatus {
    on_server!(_ => {
        let status = Signal::stored(Status::initial());
        UseStatus {
            status,
            connected: Signal::stored(false),
            state: Signal::stored(Status::initial().status),
            retry_in: Signal::stored(None),
        }
    });
    status_of(&use_connection())
}

/// [`use_status`] for a given connection.
pub fn status_of(conn: &Connection) -> UseStatus {
    let source = conn.status_observable();
    let status = ArcRwSignal::new(source.get());
    let retry_in = ArcRwSignal::new(seconds_until(&source.get(), now()));
    // The countdown's timer: present only while waiting. It captures the
    // deadline and the signal, never the connection (no cycle through the
    // listener that owns it).
    let ticker: Rc<RefCell<Option<Ticker>>> = Rc::default();
    let follow = {
        let (status, retry_in, ticker) = (status.clone(), retry_in.clone(), ticker.clone());
        move |s: &Status| {
            status.set(s.clone());
            set_if_changed(&retry_in, seconds_until(s, now()));
            let mut t = ticker.borrow_mut();
            match (s.status == ConnectionState::Waiting, s.retry_time) {
                (true, Some(deadline)) if t.as_ref().is_none_or(|t| t.deadline != deadline) => {
                    *t = Some(Ticker::start(deadline, retry_in.clone()));
                }
                (true, Some(_)) => {}
                _ => *t = None,
            }
        }
    };
    follow(&source.get());
    keep_until_cleanup((source.subscribe(follow), ticker));
    let s = Signal::from(status.read_only());
    UseStatus {
        status: s,
        connected: Signal::derive(move || s.with(|s| s.connected)),
        state: Signal::derive(move || s.with(|s| s.status)),
        retry_in: Signal::from(retry_in.read_only()),
    }
}

/// Sets `signal` only when the value differs (a tick that leaves the
/// whole seconds unchanged re-renders nothing).
fn set_if_changed<T: PartialEq + Send + Sync + 'static>(signal: &ArcRwSignal<T>, value: T) {
    if signal.with_untracked(|v| *v != value) {
        signal.set(value);
    }
}

use crate::browser::now;

/// Sets the countdown four times a second until dropped (in the browser;
/// natively the countdown moves with status changes only).
struct Ticker {
    deadline: f64,
    #[cfg(target_arch = "wasm32")]
    _interval: gloo_timers::callback::Interval,
}

impl Ticker {
    fn start(deadline: f64, retry_in: ArcRwSignal<Option<u32>>) -> Ticker {
        #[cfg(target_arch = "wasm32")]
        {
            let waiting = Status { status: ConnectionState::Waiting, retry_time: Some(deadline), ..Status::initial() };
            let interval = gloo_timers::callback::Interval::new(250, move || {
                set_if_changed(&retry_in, seconds_until(&waiting, now()));
            });
            Ticker { deadline, _interval: interval }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = retry_in;
            Ticker { deadline }
        }
    }
}
