//! Leptos hooks for a connection (cargo feature `leptos`), in the style of
//! leptos-use: each `use_*` function returns signals (or a small struct of
//! them), and everything it registers is removed when the reactive owner
//! that called it (usually a component) is cleaned up.
//!
//! ```no_run
//! use leptos::prelude::*;
//! use ddp_live::leptos::*;
//!
//! #[component]
//! fn App() -> impl IntoView {
//!     provide_connection(ddp_live::connect("/", Default::default()).expect("valid URL"));
//!     view! { <Badge/> <Todos/> }
//! }
//!
//! #[component]
//! fn Badge() -> impl IntoView {
//!     let UseStatus { status, retry_in, .. } = use_status();
//!     let conn = use_connection();
//!     view! {
//!         <span class=move || status.get().status.as_str()>{move || status.get().status.to_string()}</span>
//!         {move || retry_in.get().map(|s| format!(" retry in {s} s"))}
//!         <button on:click=move |_| conn.reconnect()>"Reconnect"</button>
//!     }
//! }
//!
//! #[component]
//! fn Todos() -> impl IntoView {
//!     let sub = use_subscription("docs", ("todos",));
//!     let todos = use_collection("todos");
//!     view! {
//!         <Show when=move || sub.ready.get() fallback=|| "loading…">
//!             <ul>
//!                 <For each=move || todos.docs.get() key=|d| d.id().to_owned() let:todo>
//!                     <li>{move || todo.field("text").as_str().unwrap_or("").to_owned()}</li>
//!                 </For>
//!             </ul>
//!         </Show>
//!     }
//! }
//! ```
//!
//! ## Lifetimes
//!
//! A hook called inside a component (or any [`Owner`]) keeps its listeners,
//! subscriptions, timers and room memberships until that owner is cleaned
//! up, then removes them (`on_cleanup`): a component that mounts and
//! unmounts a thousand times leaves nothing behind, and a subscription made
//! in a component is stopped (`unsub`) when the component goes. A hook
//! called with no owner at all has nothing to live in: what it registers is
//! removed at once.
//!
//! The hooks need no async executor except [`use_call`], which awaits the
//! call on Leptos's executor (which `mount_to_body` starts): listeners of
//! the connection set `ArcRwSignal`s synchronously, and reactive arguments
//! are followed with an `ImmediateEffect`.

/// Returns `$value` from the hook when the current render is a server
/// render (an [`ssr::SsrRequest`] in the context), binding the request to
/// `$request`. Nothing after it runs there: the server branch of a hook
/// holds only `Send + Sync` state (a render may move between threads).
macro_rules! on_server {
    ($request:pat => $value:expr) => {
        #[cfg(all(feature = "ssr", not(target_arch = "wasm32")))]
        if let Some($request) = $crate::leptos::ssr::request() {
            return $value;
        }
    };
}

mod accounts;
mod call;
mod collection;
mod live;
mod query;
mod room;
#[cfg(all(feature = "ssr", not(target_arch = "wasm32")))]
pub mod ssr;
mod status;
mod subscription;

pub use accounts::{logging_in_of, use_logging_in, use_user, use_user_id, user_id_of, user_of};
pub use call::{use_call, use_call_on, UseCall};
pub use collection::{collection_docs, use_collection, use_doc, LiveDoc, UseCollection};
pub use live::provide_ddp;
pub use query::use_query;
pub use room::{use_room, use_room_with, RoomMessage, UseRoom};
pub use status::{seconds_until, status_of, use_status, UseStatus};
pub use subscription::{subscription_on, use_subscription, UseSubscription};

use crate::reactive::Observable;
use crate::{Connection, Outbox, Status, Subscription};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::cell::OnceCell;
use std::rc::Rc;

/// Keeps `value` alive until the current reactive owner is cleaned up,
/// then drops it (a [`ListenerHandle`](crate::ListenerHandle) dropped
/// removes its listener). With no current owner, `value` is dropped now.
pub(crate) fn keep_until_cleanup<T: 'static>(value: T) {
    let kept = SendWrapper::new(value);
    on_cleanup(move || drop(kept));
}

/// What [`provide_connection`] puts in the context.
struct Shared {
    conn: Connection,
    rooms: OnceCell<Rc<crate::rooms::Client>>,
}

#[derive(Clone)]
struct ConnectionContext(SendWrapper<Rc<Shared>>);

/// Makes `conn` the connection of this component and its descendants
/// (Leptos context): the `use_*` hooks below it find it there.
pub fn provide_connection(conn: Connection) {
    provide_context(ConnectionContext(SendWrapper::new(Rc::new(Shared { conn, rooms: OnceCell::new() }))));
}

/// The connection provided by an ancestor, if any. In a server render
/// (feature `ssr`), a connection that never connects: event handlers
/// capture it, and they never run on the server.
pub fn try_use_connection() -> Option<Connection> {
    on_server!(_ => Some(ssr::inert_connection()));
    use_context::<ConnectionContext>().map(|c| c.0.conn.clone())
}

/// The connection provided by an ancestor with [`provide_connection`].
///
/// # Panics
/// When no ancestor provided one (a programming error, as with
/// `expect_context`).
#[track_caller]
pub fn use_connection() -> Connection {
    try_use_connection().expect("ddp_live::leptos: no connection in the context; call provide_connection(conn) in an ancestor component")
}

/// The rooms client over the provided connection, made on first use and
/// kept as long as the context that holds the connection.
fn use_rooms_client() -> Rc<crate::rooms::Client> {
    // (Not on the server: `use_room` returns before it asks.)
    let ctx = use_context::<ConnectionContext>()
        .expect("ddp_live::leptos: no connection in the context; call provide_connection(conn) in an ancestor component");
    ctx.0.rooms.get_or_init(|| Rc::new(crate::rooms::Client::with_connection(ctx.0.conn.clone()))).clone()
}

/// A Leptos signal that follows an [`Observable`] until the current owner
/// is cleaned up.
pub fn signal_from<T>(source: &Observable<T>) -> Signal<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    let signal = ArcRwSignal::new(source.get());
    let writer = signal.clone();
    keep_until_cleanup(source.subscribe(move |v| writer.set(v.clone())));
    Signal::from(signal.read_only())
}

/// The status of the provided connection (see [`use_status`] for the
/// countdown to the next retry).
pub fn status_signal(conn: &Connection) -> Signal<Status> {
    signal_from(conn.status_observable())
}

/// The outbox counts of `conn` ("3 changes waiting").
pub fn outbox_signal(conn: &Connection) -> Signal<Outbox> {
    signal_from(conn.outbox_observable())
}

/// The outbox counts of the provided connection: calls `queued` (not sent
/// yet, e.g. while offline) and `in_flight` (sent, not yet complete).
pub fn use_outbox() -> Signal<Outbox> {
    on_server!(_ => Signal::stored(Outbox::default()));
    outbox_signal(&use_connection())
}

/// The calls the provided connection's durable outbox keeps
/// ([`Options::persist`](crate::Options::persist)): this page's and those an
/// earlier page left, oldest first, each with whether it waits for its user
/// and whether the store has it yet (`durable`). Empty without `persist`,
/// and on the server.
///
/// ```no_run
/// use leptos::prelude::*;
/// use ddp_live::leptos::use_pending_calls;
///
/// #[component]
/// fn Pending() -> impl IntoView {
///     let pending = use_pending_calls();
///     view! { <p>{move || format!("{} changes kept across reloads", pending.get().len())}</p> }
/// }
/// ```
pub fn use_pending_calls() -> Signal<Vec<crate::PersistedCall>> {
    on_server!(_ => Signal::stored(Vec::new()));
    match use_connection().persisted_calls() {
        Some(kept) => signal_from(kept.observable()),
        None => Signal::stored(Vec::new()),
    }
}

/// Whether the provided connection shows documents of an earlier session
/// that the server has not confirmed yet ([`Connection::stale`]): true
/// from the moment a durable cache ([`Options::persist`](crate::Options::persist))
/// or a server render filled the collections, offline too, until the first
/// session has every subscription ready and the server's documents replaced
/// them (only the differences are applied). False on the server.
///
/// ```no_run
/// use leptos::prelude::*;
/// use ddp_live::leptos::{use_collection, use_stale};
///
/// #[component]
/// fn Todos() -> impl IntoView {
///     let todos = use_collection("todos");
///     let stale = use_stale();
///     view! {
///         <ul class:stale=move || stale.get()>
///             {move || todos.len.get()} " todos"
///             <Show when=move || stale.get()>" (last known, reconnecting)"</Show>
///         </ul>
///     }
/// }
/// ```
pub fn use_stale() -> Signal<bool> {
    on_server!(_ => Signal::stored(false));
    stale_signal(&use_connection())
}

/// Whether `conn` shows documents of an earlier session (see [`use_stale`]).
pub fn stale_signal(conn: &Connection) -> Signal<bool> {
    signal_from(&conn.stale_observable())
}

/// Whether a subscription is ready.
pub fn ready_signal(sub: &Subscription) -> Signal<bool> {
    signal_from(sub.ready_observable())
}

#[cfg(test)]
mod tests;
