//! [`provide_ddp`]: the connection of a Leptos app that renders on the
//! server and hydrates in the browser (features `ssr` and `hydrate`), or
//! renders in the browser only.
//!
//! - **In the browser** it connects at once, but the WebSocket opens only
//!   when Leptos runs effects, that is after hydration (or after the first
//!   mount): the first render, the one hydration compares with the
//!   server's HTML, never depends on the socket.
//! - **On the server** (feature `ssr`) there is no browser connection: the
//!   hooks read the documents the request's [`SsrRequest`](super::ssr::SsrRequest)
//!   fetched through the native client, and render the status every
//!   browser connection starts with, `connecting`.
//!
//! The documents travel with the page as Leptos resources (one per
//! [`use_subscription`](super::use_subscription)): serialised into the
//! HTML on the server, read back before the browser's first render, and
//! taken there as the connection's cache ([`Connection::subscribe_seeded`]).

use crate::host::{Guard, Host, HostSocket, PageEvent, SocketEvent, SocketHandler};
use crate::{Connection, Error, Options};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// What a subscription had on the server when the page was rendered: the
/// value of its Leptos resource, serialised into the page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// The subscription was ready within the server's timeout.
    pub(crate) ready: bool,
    /// The server's error, when the subscription failed there.
    pub(crate) error: Option<Value>,
    /// The documents the request's connection held once it was ready:
    /// (collection, `_id`, fields as EJSON wire values).
    pub(crate) docs: Vec<(String, String, Map<String, Value>)>,
}

/// Whether a render shares data between the server and the browser (a
/// server render, or a hydration and what follows it): only then do the
/// hooks make resources, on both sides in the same order.
pub(crate) fn rendering_with_server() -> bool {
    Owner::current_shared_context().is_some()
}

/// Provides the app's connection (see [`provide_connection`](super::provide_connection))
/// in a way that renders on the server and hydrates in the browser: call
/// it where a client-side app calls `provide_connection(connect(..))`.
/// `url` is called in the browser only (it may read `window().location()`);
/// on the server, the [`SsrClient`](super::ssr::SsrClient) the app put in
/// the request's context knows where its DDP server is.
///
/// In the browser the connection is made at once, so hooks find it, but
/// its socket opens only once effects run, after hydration. An invalid
/// URL or option is an error, as with [`connect`](crate::connect); on the
/// server it is never one.
///
/// ```no_run
/// use leptos::prelude::*;
/// use ddp_live::leptos::*;
///
/// #[component]
/// fn App() -> impl IntoView {
///     let url = || format!("ws://{}/websocket", window().location().host().unwrap_or_default());
///     provide_ddp(url, Default::default()).expect("a valid URL");
///     // Live data read inside <Suspense>: the server waits for it (up to
///     // its timeout) and sends it with the page.
///     view! { <Suspense fallback=|| "loading…"><Todos/></Suspense> }
/// }
///
/// #[component]
/// fn Todos() -> impl IntoView {
///     let sub = use_subscription("todos", ());
///     let todos = use_collection("todos");
///     view! {
///         <Show when=move || sub.ready.get() fallback=|| "loading…">
///             <ul>
///                 <For each=move || todos.docs.get() key=|d| d.id().to_owned() let:todo>
///                     <li>{move || todo.field("text").as_str().unwrap_or("").to_owned()}</li>
///                 </For>
///             </ul>
///         </Show>
///     }
/// }
/// ```
pub fn provide_ddp(url: impl FnOnce() -> String, options: Options) -> Result<(), Error> {
    #[cfg(all(feature = "ssr", not(target_arch = "wasm32")))]
    if let Some(request) = super::ssr::provide_request() {
        let _ = (url, options);
        request.login_resource();
        return Ok(());
    }
    let gate = Rc::new(Gate { inner: crate::host::default_host(&options), open: Cell::new(false), waiting: RefCell::default() });
    let conn = crate::connect_on(Rc::new(GateHost(gate.clone())), &url(), options)?;
    super::provide_connection(conn);
    if rendering_with_server() {
        // The server made one for the request's login: the same resources
        // in the same order on both sides. Its value (the user the server
        // rendered for) stands in for the user id until the browser's own
        // login says otherwise (see `use_user_id`).
        let login: ArcResource<Option<String>> = ArcResource::new(|| (), |_| async { None });
        let value: &ArcAsyncDerived<Option<String>> = &login;
        if let Some(user) = value.get_untracked().flatten() {
            provide_context(RenderedUser(user));
        }
    }
    let gate = send_wrapper::SendWrapper::new(gate);
    Effect::new(move |_| gate.open());
    Ok(())
}

/// The user a hydrated page was rendered for on the server.
#[derive(Clone, Debug)]
pub(crate) struct RenderedUser(pub(crate) String);

/// A host whose sockets wait for [`Gate::open`]: until then an opened
/// socket is only a promise; the connection's machine sends nothing before
/// the socket says it is open, so it notices no difference.
struct Gate {
    inner: Rc<dyn Host>,
    open: Cell<bool>,
    waiting: RefCell<Vec<Weak<Deferred>>>,
}

/// A socket asked for before the gate opened.
struct Deferred {
    url: String,
    max_len: usize,
    handler: RefCell<Option<SocketHandler>>,
    socket: RefCell<Option<Box<dyn HostSocket>>>,
}

/// The driver's handle on a deferred socket: dropping it drops the real
/// socket, or the promise of one.
struct DeferredSocket(Rc<Deferred>);

impl HostSocket for DeferredSocket {
    fn send(&self, text: &str) -> Result<(), String> {
        match &*self.0.socket.borrow() {
            Some(socket) => socket.send(text),
            None => Err("the socket is not open yet".into()),
        }
    }
}

impl Gate {
    /// Opens every socket asked for so far (those still wanted), and lets
    /// later ones through at once.
    fn open(&self) {
        if self.open.replace(true) {
            return;
        }
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for deferred in waiting.iter().filter_map(Weak::upgrade) {
            let Some(handler) = deferred.handler.borrow_mut().take() else { continue };
            let handler: Rc<SocketHandler> = Rc::new(handler);
            let forward = handler.clone();
            match self.inner.open_socket(&deferred.url, deferred.max_len, Box::new(move |e, clocks| forward(e, clocks))) {
                Ok(socket) => *deferred.socket.borrow_mut() = Some(socket),
                Err(reason) => handler(SocketEvent::Refused(&reason), self.inner.clocks()),
            }
        }
    }
}

struct GateHost(Rc<Gate>);

impl Host for GateHost {
    fn clocks(&self) -> (f64, f64) {
        self.0.inner.clocks()
    }
    fn random(&self) -> f64 {
        self.0.inner.random()
    }
    fn later(&self, f: Box<dyn FnOnce()>) {
        self.0.inner.later(f)
    }
    fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> Guard {
        self.0.inner.timer(ms, f)
    }
    fn open_socket(&self, url: &str, max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        if self.0.open.get() {
            return self.0.inner.open_socket(url, max_len, handler);
        }
        let deferred = Rc::new(Deferred { url: url.to_owned(), max_len, handler: RefCell::new(Some(handler)), socket: RefCell::default() });
        let mut waiting = self.0.waiting.borrow_mut();
        waiting.retain(|w| w.strong_count() > 0);
        waiting.push(Rc::downgrade(&deferred));
        Ok(Box::new(DeferredSocket(deferred)))
    }
    fn watch_page(&self, handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
        self.0.inner.watch_page(handler)
    }
    fn log_error(&self, message: &str) {
        self.0.inner.log_error(message)
    }
    fn storage_get(&self, key: &str) -> Option<String> {
        self.0.inner.storage_get(key)
    }
    fn storage_set(&self, key: &str, value: &str) {
        self.0.inner.storage_set(key, value)
    }
    fn storage_remove(&self, key: &str) {
        self.0.inner.storage_remove(key)
    }
    fn date_string(&self, ms: f64) -> String {
        self.0.inner.date_string(ms)
    }
    fn date_parse(&self, text: &str) -> f64 {
        self.0.inner.date_parse(text)
    }
    fn open_store(&self, name: &str, access: crate::host::store::Access<'_>, opened: crate::host::store::Opened) {
        self.0.inner.open_store(name, access, opened)
    }
}

/// The server render's value of a subscription's resource, when this
/// browser render hydrates one (`None` otherwise: a resource made after
/// hydration). Called whenever the render shares data with a server
/// ([`rendering_with_server`]), so the two sides make the same resources
/// in the same order.
pub(crate) fn seed_of_subscription() -> Option<Snapshot> {
    let resource: ArcResource<Snapshot> = ArcResource::new(|| (), |_| async { Snapshot::default() });
    // Read through the value underneath: a read at hydration, outside
    // <Suspense>, is what this is for (the value is the server's, already
    // in the page), so Leptos's debug warning about such reads is moot.
    let value: &ArcAsyncDerived<Snapshot> = &resource;
    value.get_untracked().filter(|s| s.ready)
}

/// Subscribes on `conn`, taking `seed` (when given) as what the server
/// rendered with.
pub(crate) fn subscribe(conn: &Connection, name: &str, params: Vec<Value>, seed: Option<Snapshot>) -> crate::Subscription {
    match seed {
        Some(s) => conn.subscribe_seeded(name, params, s.docs),
        None => conn.subscribe_raw(name, params),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that counts the sockets it opened and never fires a timer.
    #[derive(Default)]
    struct Counting {
        opened: Cell<usize>,
    }

    struct Quiet;

    impl HostSocket for Quiet {
        fn send(&self, _text: &str) -> Result<(), String> {
            Ok(())
        }
    }

    impl Host for Counting {
        fn clocks(&self) -> (f64, f64) {
            (0.0, 0.0)
        }
        fn random(&self) -> f64 {
            0.5
        }
        fn later(&self, _f: Box<dyn FnOnce()>) {}
        fn timer(&self, _ms: u32, _f: Box<dyn FnOnce()>) -> Guard {
            Box::new(())
        }
        fn open_socket(&self, _url: &str, _max_len: usize, _handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
            self.opened.set(self.opened.get() + 1);
            Ok(Box::new(Quiet))
        }
        fn watch_page(&self, _handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
            None
        }
        fn log_error(&self, _message: &str) {}
    }

    fn gated() -> (Rc<Counting>, Rc<Gate>, Connection) {
        let host = Rc::new(Counting::default());
        let gate = Rc::new(Gate { inner: host.clone(), open: Cell::new(false), waiting: RefCell::default() });
        let options = Options { watch_page: false, ..Options::default() };
        let conn = crate::connect_on(Rc::new(GateHost(gate.clone())), "ws://example.test", options).unwrap();
        (host, gate, conn)
    }

    #[test]
    fn the_socket_opens_only_when_the_gate_opens() {
        let (host, gate, conn) = gated();
        assert_eq!(host.opened.get(), 0, "no socket before the gate opens");
        assert_eq!(conn.status(), crate::Status::initial(), "connecting, as every browser connection starts");
        gate.open();
        assert_eq!(host.opened.get(), 1);
        gate.open();
        assert_eq!(host.opened.get(), 1, "opening twice opens nothing more");
    }

    #[test]
    fn the_rendered_user_stands_in_until_the_browser_accounts_settle() {
        let (_host, _gate, conn) = gated();
        let accounts = conn.accounts();
        let owner = Owner::new();
        let (user_id, plain) = owner.with(|| {
            super::super::provide_connection(conn.clone());
            let plain = super::super::use_user_id();
            provide_context(RenderedUser("u1".into()));
            (super::super::use_user_id(), plain)
        });
        assert_eq!(plain.get_untracked(), None, "no rendered user: the connection's");
        assert_eq!(user_id.get_untracked(), Some("u1".into()), "the server's user until the browser's settles");
        accounts.set_user_id_for_test(Some("u2"));
        assert_eq!(user_id.get_untracked(), Some("u2".into()));
        accounts.set_user_id_for_test(None);
        assert_eq!(user_id.get_untracked(), None, "settled: the browser's own (logged out)");
        drop(owner);
        assert_eq!(accounts.user_id_observable().listener_count(), 0, "its listeners go with the owner");
    }

    #[test]
    fn a_socket_let_go_before_the_gate_opens_is_never_opened() {
        let (host, gate, conn) = gated();
        conn.disconnect();
        gate.open();
        assert_eq!(host.opened.get(), 0);
        conn.reconnect();
        assert_eq!(host.opened.get(), 1, "once open, the gate lets sockets through at once");
    }
}
