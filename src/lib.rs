//! # ddp-live
//!
//! A DDP client for the browser, written in Rust and compiled to
//! WebAssembly: it speaks the protocol of Meteor apps (and Rocket.Chat and
//! other DDP servers) over the browser's WebSocket, and gives the app a
//! truthful, reactive connection status through server restarts, network
//! loss, silent servers and version mismatches.
//!
//! ```no_run
//! # fn main() -> Result<(), ddp_live::Error> {
//! use ddp_live::{connect, Options};
//! use futures_signals::signal::SignalExt;
//!
//! let conn = connect("https://chat.example.com", Options::default())?;
//! // futures-signals: react to every status change.
//! let watch = conn.status_signal().for_each(|s| {
//!     println!("{} (retry {})", s.status, s.retry_count);
//!     async {}
//! });
//! wasm_bindgen_futures::spawn_local(watch);
//! # Ok(()) }
//! ```
//!
//! Layers, one way: socket → [`browser`] driver → [`protocol`] state machine
//! → signals and events → app. The protocol layer is pure (no I/O, no clock)
//! and tested natively. The same status feeds the futures-signals signal,
//! the Leptos signal (feature `leptos`) and the JavaScript callbacks of the
//! npm package.
//!
//! ## Differences from Meteor, on purpose
//! - `connected` turns true when the server's DDP `connected` arrives, not
//!   when the socket opens.
//! - A manual `reconnect()` never changes `retry_count` (Meteor can drive it
//!   negative after a failure).
//! - The browser's `offline` event, a hidden tab becoming visible and a page
//!   restored from the back/forward cache are acted on at once, and the
//!   heartbeat deadlines use the wall clock, so a dead link is caught after
//!   sleep.

// Unsafe code only beside a SAFETY comment that says why it is sound
// (also the workspace's lint table; written here so the crate root says it).
#![deny(unsafe_code)]
// The size rules of clippy.toml are for what ships in the wasm; tests use
// std's sorts, maps and serde_json freely (often as the reference model).
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]

// The npm package's allocator: talc, smaller in the wasm than std's
// dlmalloc. Only with `js` (the package's own build): a Rust or Leptos app
// that depends on the crate chooses its own global allocator.
#[cfg(all(feature = "js", target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub mod accounts;
pub mod browser;
mod host;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub use host::native::SharedConnection;
// The durable cache: in the browser with the cargo feature `persist` only
// (the npm package carries none of it).
#[cfg(any(feature = "persist", not(target_arch = "wasm32")))]
mod cache;
mod calls;
mod connection;
mod data;
mod error;
#[cfg(feature = "js")]
pub mod js;
#[cfg(feature = "leptos")]
pub mod leptos;
mod persist;
mod platform;
pub mod protocol;
mod query;
mod reactive;
pub mod rooms;
#[cfg(feature = "leptos")]
mod seed;
mod stubs;
mod tabs;

pub use accounts::{Accounts, AccountsEvent, NewUser, PersistLogin, UserSelector};
pub use calls::MethodCall;
pub use connection::{on_reconnect, Connection, Options, WeakConnection};
pub use data::{Collection, Subscription, SubscriptionEnd};
pub use error::Error;
pub use host::store::{StorageError, StorageErrorKind};
pub use persist::{PersistEvent, PersistedCall, PersistedCalls};
pub use protocol::ejson::Ejson;
pub use protocol::machine::{CallOptions, MethodError, Outbox, StubWrite};
pub use protocol::machine::{Completion, DisconnectReason, Event, ProtocolError};
pub use protocol::message::FrameError;
pub use protocol::query::live::Diff;
pub use protocol::query::QueryError;
pub use protocol::retry::RetryPolicy;
pub use protocol::status::{ConnectionState, Status};
pub use protocol::store::Change;
pub use protocol::url::{websocket_url, UrlError};
pub use query::Query;
pub use reactive::{ListenerHandle, Observable};
pub use stubs::{Stub, StubContext};

/// Opens a DDP connection to `url` and starts connecting at once.
///
/// `url` follows Meteor's rules: `http`/`https`/bare host are turned into
/// `ws`/`wss`, and `/websocket` is appended unless the path already ends
/// with it. An invalid URL or option is an error here, never later.
///
/// Natively (cargo feature `native`), call it inside a tokio `LocalSet`
/// (the driver spawns its socket and timer tasks there); from a
/// multi-threaded runtime, use `SharedConnection`.
///
/// ```no_run
/// # fn main() -> Result<(), ddp_live::Error> {
/// let conn = ddp_live::connect("localhost:3000", ddp_live::Options::default())?;
/// assert_eq!(conn.url(), "ws://localhost:3000/websocket");
/// # Ok(()) }
/// ```
pub fn connect(url: &str, options: Options) -> Result<Connection, Error> {
    connect_on(host::default_host(&options), url, options)
}

/// [`connect`] on a given host (the tests' simulated one): the connection,
/// with the plug-ins its options ask for.
pub(crate) fn connect_on(host: std::rc::Rc<dyn host::Host>, url: &str, options: Options) -> Result<Connection, Error> {
    // The durable outbox's options are checked here, where it is
    // installed: the npm package, which does not offer it, carries neither.
    if options.persist.as_deref() == Some("") {
        return Err(Error::InvalidOptions("persist: the store needs a name".into()));
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "persist")))]
    if options.persist.is_some() {
        return Err(Error::InvalidOptions(
            "persist: the browser's durable store (IndexedDB) comes with the cargo feature `persist`".into(),
        ));
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "tabs")))]
    if options.share_across_tabs {
        return Err(Error::InvalidOptions(
            "share_across_tabs: one socket for every tab (BroadcastChannel and Web Locks) comes with the cargo feature `tabs`".into(),
        ));
    }
    let host = if options.share_across_tabs { tabs::wrap(host, &options) } else { host };
    let conn = connection::open(host, url, &options)?;
    if let Some(name) = &options.persist {
        // Tabs sharing one session do not each know who is logged in on it
        // (a login in one tab changes the session's user for all): the
        // cache of documents, kept per user, is off for them.
        persist::install(&conn, name, !options.share_across_tabs);
    }
    Ok(conn)
}
