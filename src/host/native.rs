//! tokio as a [`Host`] (cargo feature `native`): sockets by
//! tokio-tungstenite, timers and tasks on the current thread's
//! [`LocalSet`](tokio::task::LocalSet), the system's wall clock watched by
//! its monotonic one (so sleep and clock changes are noticed as in the
//! browser).
//!
//! The driver is single-threaded, as in the browser: a [`Connection`]
//! (crate::Connection) and its handles live on the thread that made them,
//! inside a `LocalSet`. From a multi-threaded runtime, use
//! [`SharedConnection`](crate::SharedConnection), which runs a connection
//! on a thread of its own and is `Send + Sync`.

use super::{Guard, Host, HostSocket, PageEvent, SocketEvent, SocketHandler};
use futures_util::{SinkExt, StreamExt};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How many characters of each end of an oversized frame are kept (as the
/// browser host does).
const ENDS: usize = 256;

/// The tokio host.
pub(crate) struct Tokio {
    /// Headers for every WebSocket upgrade (checked by `Options::to_config`).
    pub(crate) headers: Vec<(String, String)>,
}

/// The TLS client configuration for `wss://`: ring as the crypto provider,
/// named here (with two providers in an app's tree, rustls cannot choose
/// one by itself), and the system's trust store (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` honoured), read once.
fn tls() -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(std::sync::Arc::new(config))
        })
        .clone()
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the driver asks of a socket's task.
enum Out {
    Text(String),
}

/// A socket: its task reads and writes; dropping this stops the handler at
/// once and closes the socket (1000) from the task.
struct Socket {
    tx: mpsc::UnboundedSender<Out>,
    /// Cleared on drop: the task calls the handler no more.
    live: Rc<Cell<bool>>,
}

impl HostSocket for Socket {
    fn send(&self, text: &str) -> Result<(), String> {
        self.tx.send(Out::Text(text.to_owned())).map_err(|_| "the socket is closed".to_owned())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.live.set(false);
    }
}

fn clocks() -> (f64, f64) {
    static START: OnceLock<Instant> = OnceLock::new();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    (wall, START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0)
}

/// A frame too long to read whole: its two ends, as the browser host keeps them.
fn ends(text: &str) -> String {
    let head: String = text.chars().take(ENDS).collect();
    let tail: Vec<char> = text.chars().rev().take(ENDS).collect();
    format!("{head}\u{2026}{}", tail.into_iter().rev().collect::<String>())
}

/// The upgrade request: the URL and the app's headers.
fn request(url: &str, headers: &[(String, String)]) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name:?}: {e}"))?;
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

async fn run_socket(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    max_len: usize,
    handler: SocketHandler,
    live: Rc<Cell<bool>>,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    let emit = |e: SocketEvent<'_>| {
        if live.get() {
            handler(e, clocks());
        }
    };
    let tls = match request.uri().scheme_str() {
        Some("wss") => match tls() {
            Ok(config) => Some(tokio_tungstenite::Connector::Rustls(config)),
            Err(e) => return emit(SocketEvent::Refused(&e)),
        },
        _ => None,
    };
    // A socket the driver drops while connecting (its connect timeout, a
    // reconnect, close) ends the attempt: nothing waits on a dead server.
    let connecting = tokio_tungstenite::connect_async_tls_with_config(request, None, false, tls);
    tokio::pin!(connecting);
    // (The machine writes nothing before `Open`; kept in order if it did.)
    let mut early = Vec::new();
    let ws = loop {
        tokio::select! {
            r = &mut connecting => match r {
                Ok((ws, _)) => break ws,
                Err(e) => return emit(SocketEvent::Refused(&e.to_string())),
            },
            out = rx.recv() => match out {
                Some(out) => early.push(out),
                None => return,
            },
        }
    };
    emit(SocketEvent::Open);
    let (mut sink, mut stream) = ws.split();
    for Out::Text(text) in early {
        if let Err(e) = sink.send(Message::Text(text.into())).await {
            return lost(&emit, &e);
        }
    }
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if let Err(e) = sink.send(Message::Text(text.into())).await {
                        return lost(&emit, &e);
                    }
                }
                // The driver dropped the socket: close it cleanly.
                None => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "client disconnect".into() };
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                    return;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) if text.len() > max_len => emit(SocketEvent::TooLarge { len: text.len(), ends: &ends(text.as_str()) }),
                Some(Ok(Message::Text(text))) => emit(SocketEvent::Text(text.as_str())),
                Some(Ok(Message::Binary(bytes))) => emit(SocketEvent::Binary(bytes.len())),
                Some(Ok(Message::Close(frame))) => {
                    emit(SocketEvent::Close(frame.map_or(1005, |f| u16::from(f.code))));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return lost(&emit, &e),
                None => return emit(SocketEvent::Close(1006)),
            },
        }
    }
}

/// An open socket that ended without a close frame, as browsers report it:
/// a link that went away (the connection reset or closed under it) is a
/// close (1006) alone; a protocol violation also an error first.
fn lost(emit: &impl Fn(SocketEvent<'_>), e: &tokio_tungstenite::tungstenite::Error) {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    if !matches!(
        e,
        Error::Io(_) | Error::ConnectionClosed | Error::AlreadyClosed | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    ) {
        emit(SocketEvent::Error);
    }
    emit(SocketEvent::Close(1006));
}

impl Host for Tokio {
    fn clocks(&self) -> (f64, f64) {
        clocks()
    }

    fn random(&self) -> f64 {
        super::os_random()
    }

    fn later(&self, f: Box<dyn FnOnce()>) {
        tokio::task::spawn_local(async move { f() });
    }

    fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> Guard {
        let task = tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_millis(ms.into())).await;
            f();
        });
        Box::new(AbortOnDrop(task.abort_handle()))
    }

    fn open_socket(&self, url: &str, max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        let request = request(url, &self.headers)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let live = Rc::new(Cell::new(true));
        // Dropping the socket closes the channel: the task then closes the
        // socket cleanly and ends.
        drop(tokio::task::spawn_local(run_socket(request, max_len, handler, live.clone(), rx)));
        Ok(Box::new(Socket { tx, live }))
    }

    fn watch_page(&self, _handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
        None
    }

    fn log_error(&self, message: &str) {
        eprintln!("{message}");
    }

    // The process's memory is the storage: a login persisted by one
    // connection is resumed by the next one to the same server in the same
    // process (a restarted process logs in again).
    fn storage_get(&self, key: &str) -> Option<String> {
        process_storage().get(key)
    }

    fn storage_set(&self, key: &str, value: &str) {
        process_storage().set(key, value);
    }

    fn storage_remove(&self, key: &str) {
        process_storage().remove(key);
    }

    fn open_store(&self, name: &str, access: super::store::Access<'_>, opened: super::store::Opened) {
        process_stores().open(name, access, opened);
    }

    // The connections of this thread (one `LocalSet`) are the tabs: those
    // sharing a socket reach each other through the thread's groups.
    fn join_tabs(&self, name: &str, member: &str, handler: super::TabHandler) -> Option<Box<dyn super::TabLink>> {
        thread_local! {
            static TABS: Rc<super::tabs::MemoryTabs> = Rc::default();
        }
        let schedule: super::tabs::Schedule = Rc::new(|f| drop(tokio::task::spawn_local(async move { f() })));
        Some(TABS.with(|tabs| tabs.join(name, member, handler, schedule)))
    }
}

/// The durable stores of the process (in memory: they outlive a
/// connection, not the process).
pub(crate) fn process_stores() -> &'static super::store::MemoryStores {
    static STORES: OnceLock<super::store::MemoryStores> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// The storage every native connection of the process shares.
fn process_storage() -> &'static super::MemoryStorage {
    static STORAGE: OnceLock<super::MemoryStorage> = OnceLock::new();
    STORAGE.get_or_init(Default::default)
}

/// A job for the connection's thread.
type Job = Box<dyn FnOnce(&crate::Connection) + Send>;

/// A DDP connection usable from any thread: `Send + Sync`, cheap to clone,
/// and every future it returns is `Send`, so an axum handler or a Leptos
/// server function on a multi-threaded tokio runtime can hold one in its
/// state and `.await` calls on it.
///
/// It runs a [`Connection`](crate::Connection) on a thread of its own (a
/// current-thread tokio runtime); [`SharedConnection::run`] runs any code
/// against that connection there, so the whole Rust API is reachable. The
/// thread ends, closing the connection, when the last clone is dropped;
/// [`SharedConnection::close`] closes the connection at once (later calls
/// fail with `closed`), and the thread still ends with the last clone.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = ddp_live::SharedConnection::connect("ws://localhost:3000", ddp_live::Options::default())?;
/// let handle = tokio::spawn({
///     let conn = conn.clone();
///     async move { conn.call::<i64>("add", (2, 3)).await }
/// });
/// assert_eq!(handle.await??, 5);
/// // Anything else, on the connection's own thread:
/// let ready = conn.run(|c| async move { c.subscribe("items", ()).wait_ready().await.is_ok() }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedConnection {
    jobs: mpsc::UnboundedSender<Job>,
    status: futures_signals::signal::Mutable<crate::Status>,
    url: std::sync::Arc<str>,
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnection").field("url", &self.url).field("status", &self.status()).finish()
    }
}

impl SharedConnection {
    /// Opens a connection on a thread of its own and starts connecting. An
    /// invalid URL or option is an error here, as with [`crate::connect`].
    pub fn connect(url: &str, options: crate::Options) -> Result<SharedConnection, crate::Error> {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let (made, result) = std::sync::mpsc::channel();
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("ddp-live".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => return drop(made.send(Err(crate::Error::Browser(format!("no tokio runtime: {e}"))))),
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let conn = match crate::connect(&url, options) {
                        Ok(c) => c,
                        Err(e) => return drop(made.send(Err(e))),
                    };
                    let status = futures_signals::signal::Mutable::new(conn.status());
                    let mirror = status.clone();
                    let _listener = conn.on_status_change(move |s| mirror.set(s.clone()));
                    if made.send(Ok((status, conn.url().to_owned()))).is_err() {
                        return conn.close();
                    }
                    while let Some(job) = rx.recv().await {
                        job(&conn);
                    }
                    conn.close();
                    // Let the socket's task send its close frame.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            })
            .map_err(|e| crate::Error::Browser(format!("cannot start the connection's thread: {e}")))?;
        let (status, url) = result.recv().map_err(|_| crate::Error::Closed)??;
        Ok(SharedConnection { jobs, status, url: url.into() })
    }

    /// The WebSocket URL in use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current status (Meteor's fields).
    pub fn status(&self) -> crate::Status {
        self.status.get_cloned()
    }

    /// The status as a futures-signals signal (`Send`).
    pub fn status_signal(&self) -> impl futures_signals::signal::Signal<Item = crate::Status> + Send + 'static {
        self.status.signal_cloned()
    }

    /// Runs `f` with the connection on its thread and resolves to what the
    /// future it returns resolves to; [`crate::Error::Closed`] if the
    /// connection's thread is gone.
    pub fn run<F, Fut, T>(&self, f: F) -> impl std::future::Future<Output = Result<T, crate::Error>> + Send + 'static
    where
        F: FnOnce(crate::Connection) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = futures_channel::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let fut = f(conn.clone());
            drop(tokio::task::spawn_local(async move {
                let _ = tx.send(fut.await);
            }));
        });
        let sent = self.jobs.send(job).is_ok();
        async move {
            if !sent {
                return Err(crate::Error::Closed);
            }
            rx.await.map_err(|_| crate::Error::Closed)
        }
    }

    /// [`Connection::call`](crate::Connection::call), from any thread.
    pub fn call<R>(
        &self,
        name: &str,
        args: impl serde::Serialize,
    ) -> impl std::future::Future<Output = Result<R, crate::MethodError>> + Send + 'static
    where
        R: serde::de::DeserializeOwned + Send + 'static,
    {
        self.apply(name, args, crate::CallOptions::default())
    }

    /// [`Connection::apply`](crate::Connection::apply), from any thread.
    pub fn apply<R>(
        &self,
        name: &str,
        args: impl serde::Serialize,
        options: crate::CallOptions,
    ) -> impl std::future::Future<Output = Result<R, crate::MethodError>> + Send + 'static
    where
        R: serde::de::DeserializeOwned + Send + 'static,
    {
        // The arguments are read here, on the caller's thread.
        let args = serde_json::to_value(args).map_err(|e| crate::MethodError::BadArguments(e.to_string()));
        let name = name.to_owned();
        let run = self.run(move |c| {
            let call = args.map(|args| c.apply::<R>(&name, args, options));
            async move { call?.await }
        });
        async move { run.await.unwrap_or(Err(crate::MethodError::Closed)) }
    }

    /// Closes the connection for good; every later call fails with `closed`.
    pub fn close(&self) {
        let _ = self.jobs.send(Box::new(|c| c.close()));
    }
}
