//! The seam between the driver ([`Connection`](crate::Connection)) and
//! whatever runs it: everything the driver needs from outside the pure
//! protocol core goes through one [`Host`]. Three implement it:
//!
//! - the browser ([`browser`]): `WebSocket`, timers, microtasks,
//!   `Date.now()` with `performance.now()`, `Math.random()`, page events,
//!   `console.error`;
//! - tokio ([`native`], cargo feature `native`): tokio-tungstenite sockets,
//!   tokio timers and tasks on the current `LocalSet`, the system clocks;
//! - a simulated host in the tests (virtual time, in-memory sockets).
//!
//! The driver holds its host as `Rc<dyn Host>`: one vtable, no generic
//! copies of the driver per host (the wasm carries only the browser's).

use std::any::Any;
use std::rc::Rc;

#[cfg(target_arch = "wasm32")]
pub(crate) mod browser;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod native;
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod sim;
pub mod store;
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
pub(crate) mod tabs;

use store::{Access, Opened, StorageError, StorageErrorKind};

pub use crate::protocol::machine::{PageEvent, SocketEvent};

/// The socket handler: an event and the (wall, monotonic) clocks read when
/// it happened.
pub type SocketHandler = Box<dyn Fn(SocketEvent<'_>, (f64, f64))>;

/// An open socket. Dropping it closes the socket and removes every handler
/// it holds; nothing reaches the handler afterwards.
pub trait HostSocket {
    /// Sends a text frame.
    fn send(&self, text: &str) -> Result<(), String>;
}

/// Something alive while it is held: a timer, a page watch. Dropping it
/// cancels the timer or removes the listeners.
pub type Guard = Box<dyn Any>;

/// What reaches a tab from the others of its group (see [`Host::join_tabs`]).
/// (Made only by hosts with groups: natively, and in the browser with the
/// cargo feature `tabs`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "native", feature = "tabs", test)), allow(dead_code))]
pub enum TabEvent<'a> {
    /// A message another member posted: its head and body.
    Message(&'a str, &'a str),
    /// This member now holds the group's lock: it leads.
    Leader,
    /// Another member took the lock over ([`TabLink::take_over`]: this one
    /// did not answer, its page frozen or hung): it leads no more, and
    /// waits in line for the lock again.
    Deposed,
}

/// A handler of [`TabEvent`]s.
pub type TabHandler = Box<dyn Fn(TabEvent<'_>)>;

/// Membership in a group of tabs. Dropping it leaves the group: the
/// channel closes, and the locks are let go (or no longer asked for).
pub trait TabLink {
    /// Posts a message to every other member (not to this one), in order.
    fn post(&self, head: &str, body: &str);
    /// Calls `gone` once member `member` has left the group or died (at
    /// once, later, if it is not in the group).
    fn watch(&self, member: &str, gone: Box<dyn FnOnce()>);
    /// Takes the group's lock from its holder, which does not answer (in
    /// the browser a Web Lock `steal`): this member gets
    /// [`TabEvent::Leader`], the holder [`TabEvent::Deposed`] (when it runs
    /// again). Nothing when this member leads already.
    fn take_over(&self);
}

/// Everything the driver needs from where it runs.
pub trait Host {
    /// The wall clock (ms since the Unix epoch) and a monotonic clock (ms
    /// from any origin; NaN where there is none).
    fn clocks(&self) -> (f64, f64);
    /// A random number in `[0, 1)`.
    fn random(&self) -> f64;
    /// Runs `f` once, soon, after the code running now returns.
    fn later(&self, f: Box<dyn FnOnce()>);
    /// Runs `f` once after `ms` milliseconds, unless the guard is dropped first.
    fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> Guard;
    /// Opens a WebSocket to `url`; frames longer than `max_len` are
    /// delivered as [`SocketEvent::TooLarge`].
    fn open_socket(&self, url: &str, max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String>;
    /// Listens to page and network events while the guard lives, and says
    /// how many listeners it holds (for leak checks); `None` where there
    /// are none.
    fn watch_page(&self, handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)>;
    /// Reports an app error that has no caller to go to (a failing stub).
    fn log_error(&self, message: &str);

    /// The value stored under `key` in the host's key-value storage, the
    /// one that outlives a connection (the page's `localStorage`): where a
    /// persisted login is kept. `None` when nothing is stored, or where
    /// there is no storage (the default).
    fn storage_get(&self, key: &str) -> Option<String> {
        let _ = key;
        None
    }
    /// Stores `value` under `key`; a store that refuses (none here, a full
    /// quota, a private window) only means the value is not kept.
    fn storage_set(&self, key: &str, value: &str) {
        let _ = (key, value);
    }
    /// Removes `key` from the storage.
    fn storage_remove(&self, key: &str) {
        let _ = key;
    }
    /// A time (ms since the epoch) as the host writes dates into its
    /// storage. The browser writes `Date.toString()`, as Meteor does, so a
    /// Meteor client on the same page reads it; the default writes the
    /// number.
    fn date_string(&self, ms: f64) -> String {
        ms.to_string()
    }
    /// A date written by [`Host::date_string`] (or by Meteor, in the
    /// browser), read back; NaN when unreadable.
    fn date_parse(&self, text: &str) -> f64 {
        text.parse().unwrap_or(f64::NAN)
    }

    /// Opens durable store `name` (the browser's IndexedDB; natively the
    /// process's memory) and reads the records `access` says (see
    /// [`Access`]); `opened` hears the store and those records, or why
    /// there is none (the default: `storage-unavailable`).
    fn open_store(&self, name: &str, access: Access<'_>, opened: Opened) {
        let _ = (name, access);
        opened(Err(StorageError::new(StorageErrorKind::Unavailable, "no durable store")));
    }

    /// Joins the group of tabs `name` (in the browser: a BroadcastChannel
    /// and a Web Lock of that name, for the pages of this origin; natively,
    /// the connections of this thread): messages posted by the other
    /// members reach `handler`, and the one member holding the lock hears
    /// [`TabEvent::Leader`] when it gets it (the lock goes to the next
    /// member when its holder leaves or its page dies). Always delivered
    /// later, never during the call. `None` where there are no groups (the
    /// default).
    /// `member` names this member for the others' [`TabLink::watch`] (in
    /// the browser, a Web Lock it holds while it lives; its posts wait
    /// until it holds it, so a member that posted is watched truly).
    fn join_tabs(&self, name: &str, member: &str, handler: TabHandler) -> Option<Box<dyn TabLink>> {
        let _ = (name, member, handler);
        None
    }

    /// The connection closed: let go of anything held for it (a host piece
    /// that wraps another; the hosts themselves hold nothing).
    fn release(&self) {}
}

/// Implements every [`Host`] method but `open_socket` and `release` by
/// handing it to the host at `self.<path>`: for hosts that wrap another and
/// change how sockets open (each also forwards `release`, after letting go
/// of what it holds itself).
macro_rules! forward_host {
    ($($field:tt).+) => {
        fn clocks(&self) -> (f64, f64) {
            self.$($field).+.clocks()
        }
        fn random(&self) -> f64 {
            self.$($field).+.random()
        }
        fn later(&self, f: Box<dyn FnOnce()>) {
            self.$($field).+.later(f)
        }
        fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> $crate::host::Guard {
            self.$($field).+.timer(ms, f)
        }
        fn watch_page(&self, handler: Box<dyn Fn($crate::host::PageEvent)>) -> Option<($crate::host::Guard, usize)> {
            self.$($field).+.watch_page(handler)
        }
        fn log_error(&self, message: &str) {
            self.$($field).+.log_error(message)
        }
        fn storage_get(&self, key: &str) -> Option<String> {
            self.$($field).+.storage_get(key)
        }
        fn storage_set(&self, key: &str, value: &str) {
            self.$($field).+.storage_set(key, value)
        }
        fn storage_remove(&self, key: &str) {
            self.$($field).+.storage_remove(key)
        }
        fn date_string(&self, ms: f64) -> String {
            self.$($field).+.date_string(ms)
        }
        fn date_parse(&self, text: &str) -> f64 {
            self.$($field).+.date_parse(text)
        }
        fn open_store(&self, name: &str, access: $crate::host::store::Access<'_>, opened: $crate::host::store::Opened) {
            self.$($field).+.open_store(name, access, opened)
        }
        fn join_tabs(&self, name: &str, member: &str, handler: $crate::host::TabHandler) -> Option<Box<dyn $crate::host::TabLink>> {
            self.$($field).+.join_tabs(name, member, handler)
        }
    };
}
pub(crate) use forward_host;

/// An in-memory key-value storage (natively, the process's; in the
/// simulated host, the test's).
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
#[derive(Default)]
pub(crate) struct MemoryStorage(std::sync::Mutex<Vec<(String, String)>>);

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
impl MemoryStorage {
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
    pub(crate) fn set(&self, key: &str, value: &str) {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => entries.push((key.to_owned(), value.to_owned())),
        }
    }
    pub(crate) fn remove(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).retain(|(k, _)| k != key);
    }
}

/// The host of this build: the browser in wasm, tokio natively with the
/// `native` feature, and otherwise a host that cannot open sockets (every
/// attempt fails with a message saying why, and is retried as any failure).
pub(crate) fn default_host(options: &crate::Options) -> Rc<dyn Host> {
    #[cfg(target_arch = "wasm32")]
    return {
        let _ = options;
        Rc::new(browser::Browser)
    };
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    return Rc::new(native::Tokio { headers: options.headers.clone() });
    #[cfg(all(not(feature = "native"), not(target_arch = "wasm32")))]
    return {
        let _ = options;
        Rc::new(NoHost)
    };
}

/// Natively without the `native` feature: the protocol and the data layers
/// work (as in the native tests), but there is no socket to open.
#[cfg(all(not(feature = "native"), not(target_arch = "wasm32")))]
struct NoHost;

#[cfg(all(not(feature = "native"), not(target_arch = "wasm32")))]
impl Host for NoHost {
    fn clocks(&self) -> (f64, f64) {
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0), f64::NAN)
    }
    fn random(&self) -> f64 {
        os_random()
    }
    fn later(&self, _f: Box<dyn FnOnce()>) {}
    fn timer(&self, _ms: u32, _f: Box<dyn FnOnce()>) -> Guard {
        Box::new(())
    }
    fn open_socket(&self, _url: &str, _max_len: usize, _handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        Err("no WebSocket here: natively, ddp-live opens sockets with its cargo feature `native` (tokio)".into())
    }
    fn watch_page(&self, _handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
        None
    }
    fn log_error(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// A random number in `[0, 1)` natively: SipHash, keyed at random by the
/// standard library (from the OS), over a counter.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn os_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The wall clock, watched by the monotonic one: [`Clock::at`] tells when
/// the wall clock was set back (by NTP, the user, a restored VM), and by how
/// much, so deadlines can move with it. (A forward jump looks like sleep and
/// needs nothing: deadlines simply fall due.)
#[derive(Default)]
pub(crate) struct Clock {
    last: std::cell::Cell<Option<(f64, f64)>>,
}

impl Clock {
    /// The wall clock, and how far it was set back since the last reading
    /// (beyond a second of tolerance). `mono` is NaN where there is no
    /// monotonic clock.
    pub(crate) fn at(&self, wall: f64, mono: f64) -> (f64, Option<f64>) {
        if mono.is_nan() {
            return (wall, None);
        }
        let set_back = self.last.get().and_then(|(last_wall, last_mono)| {
            let expected = last_wall + (mono - last_mono);
            (wall < expected - 1000.0).then_some(expected - wall)
        });
        self.last.set(Some((wall, mono)));
        (wall, set_back)
    }
}
