//! Server-side rendering (cargo feature `ssr`): the hooks render on the
//! server with live data fetched through the native client.
//!
//! The server process makes one [`SsrClient`] (it runs the native client
//! on a thread of its own), and each request gets an [`SsrRequest`] from
//! it, put in the request's Leptos context (with leptos_axum, in the
//! context closure of `leptos_routes_with_context`):
//!
//! ```no_run
//! use ddp_live::leptos::ssr::SsrClient;
//! use std::time::Duration;
//!
//! let ddp = SsrClient::new("ws://127.0.0.1:3000/websocket", Default::default(), Duration::from_millis(1500)).unwrap();
//! // Per request (the token from the cookie the app set at login, if any):
//! let provide = move |token: Option<String>| leptos::prelude::provide_context(ddp.request(token));
//! # let _ = provide;
//! ```
//!
//! - **A connection per request**, opened on the first hook that needs
//!   data, logged in with the request's token when there is one, and
//!   closed when the request's render is done. Each request sees exactly
//!   what its subscriptions publish to its user: nothing is shared between
//!   users, and nothing outlives the request.
//! - **A bounded wait.** Everything a request waits for (the connection,
//!   the login, each subscription's `ready`) ends at one deadline, the
//!   client's timeout after the request's first need. A subscription not
//!   ready by then renders as loading (`ready` false), and the browser
//!   loads it as it would without a server render.
//! - **What the hooks render on the server:**
//!   - `use_subscription`: `ready` once the subscription was ready in time;
//!     its documents travel with the page as the value of a Leptos
//!     resource;
//!   - `use_collection`, `use_doc`, `use_query`: the documents of the
//!     request's subscriptions (read them inside `<Suspense>`, so the
//!     server waits for them);
//!   - `use_status`: `connecting`, the status every browser connection has
//!     from its creation until its handshake, so the browser's first
//!     render (before its socket opens) is the same;
//!   - `use_user_id`, `use_user`: the user the request's token logged in
//!     (`None` without one);
//!   - `use_outbox`, `use_logging_in`, `use_call`, `use_room`: their
//!     initial values (nothing is called or joined on the server);
//!   - `use_connection`: a connection that never connects (what event
//!     handlers capture; they never run on the server).

use super::live::Snapshot;
use crate::host::{Guard, Host, HostSocket, PageEvent, SocketHandler};
use crate::protocol::hash::FastMap;
use crate::{Connection, Error, Options, SubscriptionEnd};
use futures_signals::signal::{Mutable, SignalExt};
use leptos::prelude::*;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// The requests' connections, on the client's thread.
type Requests = Rc<RefCell<FastMap<u64, Request>>>;

/// A job for the client's thread.
type Job = Box<dyn FnOnce(&Requests) + Send>;

/// One request's connection, on the client's thread.
struct Request {
    conn: Connection,
    deadline: tokio::time::Instant,
    /// Set once the login (if any) settled or gave up: the user it logged in.
    login: Mutable<Option<Option<String>>>,
}

/// The native client of a server that renders Leptos pages: `Send + Sync`,
/// cheap to clone; one per process. See the [module](self) docs.
#[derive(Clone)]
pub struct SsrClient {
    shared: Arc<ClientShared>,
}

struct ClientShared {
    jobs: mpsc::UnboundedSender<Job>,
    next: AtomicU64,
    timeout: Duration,
    url: String,
    options: Options,
    /// Request connections open now.
    open: Arc<AtomicUsize>,
}

impl std::fmt::Debug for SsrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsrClient").field("url", &self.shared.url).field("timeout", &self.shared.timeout).finish()
    }
}

impl SsrClient {
    /// A client for the DDP server at `url` (Meteor's URL rules, as
    /// [`connect`](crate::connect)); each request's connection uses
    /// `options` (its `headers` too; never `persist`, which is for a
    /// browser's or a process's own calls, not a render's, nor
    /// `share_across_tabs`: each request has a session of its own, logged
    /// in as its own user) and waits at
    /// most `timeout` for its data. An invalid URL or option is an error
    /// here.
    pub fn new(url: &str, options: Options, timeout: Duration) -> Result<SsrClient, Error> {
        let url = crate::websocket_url(url)?;
        options.to_config()?;
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Browser(e.to_string()))?;
        let open = Arc::new(AtomicUsize::new(0));
        let open2 = open.clone();
        std::thread::Builder::new()
            .name("ddp-live-ssr".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let requests: Requests = Rc::default();
                    while let Some(job) = rx.recv().await {
                        job(&requests);
                        open2.store(requests.borrow().len(), Ordering::Relaxed);
                    }
                    for (_, r) in requests.borrow_mut().drain() {
                        r.conn.close();
                    }
                });
            })
            .map_err(|e| Error::Browser(format!("cannot start the SSR client's thread: {e}")))?;
        // A request's connection lives for one render: a durable outbox
        // would carry one request's calls (and its user's) into the next,
        // and a shared socket would put every request on one session (one
        // user's login for all of them).
        let options = Options { watch_page: false, persist: None, share_across_tabs: false, ..options };
        Ok(SsrClient { shared: Arc::new(ClientShared { jobs, next: AtomicU64::new(1), timeout, url, options, open }) })
    }

    /// The WebSocket URL the requests connect to.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// How many request connections are open now (each closes when its
    /// request's render is done).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// A request's handle: put it in the request's Leptos context
    /// (`provide_context(client.request(token))`). `login_token` is the
    /// user's resume token, from the cookie the app set when the user
    /// logged in (`None`: render logged out).
    pub fn request(&self, login_token: Option<String>) -> SsrRequest {
        self.request_at(self.shared.url.clone(), login_token)
    }

    /// [`SsrClient::request`] for a request whose data comes from another
    /// DDP URL than the client's (another app, a tenant's server).
    pub fn request_to(&self, url: &str, login_token: Option<String>) -> Result<SsrRequest, Error> {
        Ok(self.request_at(crate::websocket_url(url)?, login_token))
    }

    fn request_at(&self, url: String, token: Option<String>) -> SsrRequest {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(RequestConn { client: self.shared.clone(), id, url, token });
        SsrRequest { conn: Some(conn), subs: Arc::default(), login: Arc::default() }
    }
}

/// What the request's resources hold: its connection on the client's
/// thread, closed when the last of them lets go.
struct RequestConn {
    client: Arc<ClientShared>,
    id: u64,
    url: String,
    token: Option<String>,
}

impl RequestConn {
    /// Runs `job` with this request's connection (opened on first use) on
    /// the client's thread; `None` there if it could not be opened. Each
    /// job opens it if it is not there yet: render threads send their jobs
    /// in any order, and the first to arrive opens it.
    fn with(&self, job: impl FnOnce(Option<&Request>) + Send + 'static) {
        let (id, token, timeout) = (self.id, self.token.clone(), self.client.timeout);
        let (url, options) = (self.url.clone(), self.client.options.clone());
        let _ = self.client.jobs.send(Box::new(move |requests| {
            if !requests.borrow().contains_key(&id) {
                if let Ok(conn) = crate::connect(&url, options) {
                    let deadline = tokio::time::Instant::now() + timeout;
                    let login = Mutable::new(None);
                    match token {
                        Some(token) => {
                            let (accounts, settled) = (conn.accounts(), login.clone());
                            drop(tokio::task::spawn_local(async move {
                                let user = tokio::time::timeout_at(deadline, accounts.login_with_token(&token)).await;
                                settled.set(Some(user.ok().and_then(Result::ok)));
                            }));
                        }
                        None => login.set(Some(None)),
                    }
                    requests.borrow_mut().insert(id, Request { conn, deadline, login });
                }
            }
            job(requests.borrow().get(&id));
        }));
    }

    /// Subscribes to `name`, waits until it is ready (or the deadline),
    /// and resolves to what the connection then holds.
    fn snapshot(&self, name: String, params: Vec<Value>) -> impl std::future::Future<Output = Snapshot> + Send + 'static {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.with(move |request| {
            let Some(r) = request else { return drop(tx.send(Snapshot::default())) };
            let (conn, deadline, login) = (r.conn.clone(), r.deadline, r.login.clone());
            drop(tokio::task::spawn_local(async move {
                // Subscribed as the request's user: after the login settled.
                let _ = tokio::time::timeout_at(deadline, login.signal_ref(Option::is_some).wait_for(true)).await;
                let sub = conn.subscribe_raw(&name, params);
                let snapshot = match tokio::time::timeout_at(deadline, sub.wait_ready()).await {
                    Ok(Ok(())) => Snapshot { ready: true, error: None, docs: conn.snapshot() },
                    Ok(Err(SubscriptionEnd::Failed(e))) => Snapshot { error: Some(e), ..Snapshot::default() },
                    _ => Snapshot::default(),
                };
                let _ = tx.send(snapshot);
            }));
        });
        async move { rx.await.unwrap_or_default() }
    }

    /// The user the request's token logged in (`None` without a token, or
    /// when the login failed or took past the deadline).
    fn user_id(&self) -> impl std::future::Future<Output = Option<String>> + Send + 'static {
        if self.token.is_none() {
            return futures_util::future::Either::Left(std::future::ready(None));
        }
        let (tx, rx) = futures_channel::oneshot::channel();
        self.with(move |request| {
            let Some(r) = request else { return drop(tx.send(None)) };
            let (deadline, login) = (r.deadline, r.login.clone());
            drop(tokio::task::spawn_local(async move {
                let _ = tokio::time::timeout_at(deadline, login.signal_ref(Option::is_some).wait_for(true)).await;
                let _ = tx.send(login.get_cloned().flatten());
            }));
        });
        futures_util::future::Either::Right(async move { rx.await.ok().flatten() })
    }
}

impl Drop for RequestConn {
    fn drop(&mut self) {
        // After every job of this request (one channel, in order).
        let id = self.id;
        let _ = self.client.jobs.send(Box::new(move |requests| {
            let gone = requests.borrow_mut().remove(&id);
            if let Some(r) = gone {
                r.conn.close();
            }
        }));
    }
}

/// One request's live data on the server: what the hooks read. Put it in
/// the request's context (`provide_context(client.request(token))`);
/// without one, [`provide_ddp`](super::provide_ddp) renders every
/// subscription as loading.
#[derive(Clone)]
pub struct SsrRequest {
    conn: Option<Arc<RequestConn>>,
    /// The resources of the request's subscriptions, in the order made.
    subs: Arc<RwLock<Vec<ArcResource<Snapshot>>>>,
    /// The login's resource (made by `provide_ddp`).
    login: Arc<OnceLock<ArcResource<Option<String>>>>,
}

impl std::fmt::Debug for SsrRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsrRequest").field("logged_in", &self.conn.as_ref().is_some_and(|c| c.token.is_some())).finish()
    }
}

/// The request of the current render, if it is a server render.
pub(crate) fn request() -> Option<SsrRequest> {
    use_context::<SsrRequest>()
}

/// The request the app provided, or (none provided) one with no client,
/// provided now: the server renders loading rather than fail.
pub(super) fn provide_request() -> Option<SsrRequest> {
    Some(request().unwrap_or_else(|| {
        let r = SsrRequest { conn: None, subs: Arc::default(), login: Arc::default() };
        provide_context(r.clone());
        r
    }))
}

impl SsrRequest {
    /// Makes the login's resource (once; `provide_ddp` calls it, where the
    /// browser makes its counterpart).
    pub(super) fn login_resource(&self) {
        let conn = self.conn.clone();
        self.login.get_or_init(|| {
            ArcResource::new(
                || (),
                move |_| {
                    let user = conn.as_ref().map(|c| c.user_id());
                    async move {
                        match user {
                            Some(u) => u.await,
                            None => None,
                        }
                    }
                },
            )
        });
    }

    /// A subscription's resource: its snapshot once ready or timed out.
    pub(crate) fn subscribe(&self, name: &str, params: Vec<Value>) -> ArcResource<Snapshot> {
        let (conn, name) = (self.conn.clone(), name.to_owned());
        let resource = ArcResource::new(
            || (),
            move |_| {
                let snapshot = conn.as_ref().map(|c| c.snapshot(name.clone(), params.clone()));
                async move {
                    match snapshot {
                        Some(s) => s.await,
                        None => Snapshot::default(),
                    }
                }
            },
        );
        self.subs.write().unwrap_or_else(|e| e.into_inner()).push(resource.clone());
        resource
    }

    /// The documents of `collection` in the request's ready subscriptions
    /// (tracked: read under `<Suspense>`, the server waits for them), by
    /// `_id`; a later snapshot's version of a document wins, as the
    /// browser's cache takes them.
    pub(crate) fn documents(&self, collection: &str) -> Vec<(String, crate::protocol::store::Fields)> {
        let subs = self.subs.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut by_id: FastMap<String, crate::protocol::store::Fields> = FastMap::default();
        for resource in subs {
            resource.with(|s| {
                for (c, id, fields) in s.iter().filter(|s| s.ready).flat_map(|s| s.docs.iter()) {
                    if c == collection {
                        by_id.insert(id.clone(), fields.clone());
                    }
                }
            });
        }
        let mut docs: Vec<(String, crate::protocol::store::Fields)> = by_id.into_iter().collect();
        crate::protocol::order::sort_by(&mut docs, |a, b| a.0.cmp(&b.0));
        docs
    }

    /// One document of `collection` (tracked, as [`SsrRequest::documents`]).
    pub(crate) fn document(&self, collection: &str, id: &str) -> Option<Value> {
        self.documents(collection).into_iter().find(|(i, _)| i == id).map(|(i, f)| crate::data::document(&i, &f))
    }

    /// The user the request's token logged in (tracked).
    pub(crate) fn user_id(&self) -> Option<String> {
        self.login.get().and_then(|r| r.get().flatten())
    }
}

/// A connection that never connects: what `use_connection` gives on the
/// server, where event handlers (the only code that would use it) never
/// run. Its status stays `connecting`.
pub(crate) fn inert_connection() -> Connection {
    let options = Options { watch_page: false, ..Options::default() };
    crate::connect_on(Rc::new(Inert), "ws://ssr.invalid/websocket", options)
        .unwrap_or_else(|_| unreachable!("a constant, valid URL and the default options"))
}

/// The host of [`inert_connection`]: no socket opens, no timer fires.
struct Inert;

struct NeverOpen;

impl HostSocket for NeverOpen {
    fn send(&self, _text: &str) -> Result<(), String> {
        Err("a server render's connection never connects".into())
    }
}

impl Host for Inert {
    fn clocks(&self) -> (f64, f64) {
        (crate::browser::now(), f64::NAN)
    }
    fn random(&self) -> f64 {
        crate::host::os_random()
    }
    fn later(&self, _f: Box<dyn FnOnce()>) {}
    fn timer(&self, _ms: u32, _f: Box<dyn FnOnce()>) -> Guard {
        Box::new(())
    }
    fn open_socket(&self, _url: &str, _max_len: usize, _handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        Ok(Box::new(NeverOpen))
    }
    fn watch_page(&self, _handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
        None
    }
    fn log_error(&self, message: &str) {
        eprintln!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leptos::*;
    use crate::{ConnectionState, Outbox, Status};
    use serde_json::json;

    #[test]
    fn every_hook_renders_its_server_value_and_the_render_may_end_on_another_thread() {
        let _ = any_spawner::Executor::init_futures_executor();
        let owner = Owner::new();
        let rendered = owner.with(|| {
            // A request with no client: every subscription renders as loading.
            provide_ddp(|| unreachable!("the URL is the browser's"), Options::default()).expect("never an error on the server");
            let status = use_status();
            let sub = use_subscription("docs", ("todos",));
            let todos = use_collection("todos");
            let doc = use_doc("todos", "a".to_string());
            let user = use_user_id();
            let call = use_call::<Value>("insertDoc");
            let room = use_room("lobby");
            let conn = use_connection();
            let query = use_query(&conn.collection("todos"), json!({}), Value::Null).expect("a valid query");
            assert!(
                use_query(&conn.collection("todos"), json!({"a": {"$near": 1}}), Value::Null).is_err(),
                "a bad query is an error here too"
            );
            call.call(("todos", json!({"text": "x"})));
            (status, sub, todos, doc, user, call, room, use_outbox(), use_logging_in(), query, conn.status())
        });
        let (status, sub, todos, doc, user, call, room, outbox, logging_in, query, conn_status) = rendered;
        assert_eq!(status.status.get_untracked(), Status::initial());
        assert_eq!(status.state.get_untracked(), ConnectionState::Connecting);
        assert_eq!(conn_status, Status::initial(), "use_connection gives a connection that never connects");
        assert!(!sub.ready.get_untracked());
        assert!(sub.subscription().is_none());
        assert!(todos.docs.get_untracked().is_empty());
        assert_eq!(doc.get_untracked(), None);
        assert_eq!(user.get_untracked(), None);
        assert!(!call.pending.get_untracked(), "nothing is called on the server");
        assert!(!room.connected.get_untracked() && room.room().is_none());
        assert_eq!(outbox.get_untracked(), Outbox::default());
        assert!(!logging_in.get_untracked());
        assert!(query.get_untracked().is_empty());
        // The render's owner goes on another thread (a multi-threaded
        // runtime may end a render anywhere): nothing the hooks hold there
        // is tied to the thread that made it.
        std::thread::spawn(move || drop(owner)).join().expect("no panic when the owner is dropped on another thread");
    }

    #[test]
    fn a_request_resolves_to_loading_within_its_timeout_when_the_server_is_down() {
        // A port nothing listens on: the connection is refused and retried
        // until the deadline; the snapshot then says loading.
        let client = SsrClient::new("ws://127.0.0.1:9/websocket", Options::default(), Duration::from_millis(300)).unwrap();
        let request = client.request(Some("a token".into()));
        let conn = request.conn.clone().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (snapshot, user) = runtime.block_on(async { (conn.snapshot("docs".into(), vec![json!("todos")]).await, conn.user_id().await) });
        assert_eq!(snapshot, Snapshot::default(), "not ready, no documents");
        assert_eq!(user, None);
        assert_eq!(client.open_connections(), 1, "open while the request lives");
        drop((conn, request));
        // The close job ran once a later job is through.
        let after = client.request(None);
        runtime.block_on(after.conn.clone().unwrap().user_id());
        let probe = after.conn.clone().unwrap();
        let _ = runtime.block_on(probe.snapshot("x".into(), vec![]));
        assert_eq!(client.open_connections(), 1, "the first request's connection closed; only the probe's is open");
        assert!(SsrClient::new("not a url at all://", Options::default(), Duration::from_millis(1)).is_err());
    }

    #[test]
    fn every_request_has_a_socket_of_its_own_even_when_the_options_share_one() {
        // A listener that counts the sockets the client opens (and never
        // answers, so no request is ready and nothing is retried in time).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        let options = Options { share_across_tabs: true, ..Options::default() };
        let client = SsrClient::new(&format!("ws://127.0.0.1:{port}/websocket"), options, Duration::from_millis(500)).unwrap();
        let (a, b) = (client.request(Some("user A".into())), client.request(Some("user B".into())));
        let (ca, cb) = (a.conn.clone().unwrap(), b.conn.clone().unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (ua, ub) = runtime.block_on(async { tokio::join!(ca.user_id(), cb.user_id()) });
        assert_eq!((ua, ub), (None, None), "nobody answered the logins");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "two requests (two users): two sockets, never one shared session");
    }
}
