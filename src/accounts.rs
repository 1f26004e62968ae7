//! Accounts: log in, stay logged in across reconnects and page reloads, log
//! out — as Meteor's `accounts-base` / `accounts-password` clients do.
//!
//! [`Connection::accounts`] gives the connection's one [`Accounts`]: the
//! user id, `logging_in` and the event listeners live there once, read by
//! the Rust signals, the Leptos hooks and the JavaScript surface alike. The
//! rules (ordering, expiry, when a failure logs out) are the pure
//! [`LoginState`]; this file carries
//! its effects out: method calls, `localStorage`, observables, events.
//!
//! # When a login settles
//!
//! A login (password, token, `create_user`, and the re-login of a new
//! session) settles once its `result` and `updated` are in **and** the
//! user's document is in the `users` collection. A Meteor server sends that
//! document after the `result` (Meteor 3.0.4: `updated`, `result`, then the
//! `added`; later still with a real MongoDB), and Meteor's own client runs
//! its login callbacks only once `Meteor.user()` has it. So when the future
//! resolves, [`Accounts::user`] is the user's document. The wait is bounded
//! ([`Accounts::set_user_wait`], 5 s by default): past it the login settles
//! logged in, and the document follows when it comes.
//!
//! Everything moves at once when a login settles: the user id (the
//! [`Accounts::user_id_signal`], JavaScript's `onUserIdChange`, the Leptos
//! `use_user_id`), `logging_in` (true until then), the `LoggedIn` event and
//! the future. The user id is never set before the document is in (unlike
//! Meteor's, set at the `result`), so whoever sees it can read the user —
//! with two exceptions: a login whose wait ran out, and the user id
//! restored from storage at start-up, shown at once as Meteor shows it. A
//! login as another user keeps the previous user id until it settles: the
//! id goes from one user to the other, never through `None`.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = ddp_live::connect("https://app.example.com", ddp_live::Options::default())?;
//! let accounts = conn.accounts();
//! accounts.persist_login(ddp_live::PersistLogin::ConnectUrl); // opt-in: survive reloads
//! let user_id = accounts.login_with_password("ada", "secret").await?;
//! println!("logged in as {user_id}: {:?}", accounts.user());
//! accounts.logout().await?;
//! # Ok(()) }
//! ```

use crate::connection::{Connection, Done, Plugin, WeakConnection};
use crate::data::Collection;
use crate::protocol::accounts::{password_login_params, resume_login_params, AttemptKind, Effect, LoginState, StorageKeys, StoredLogin};
use crate::protocol::machine::{CallOptions, MethodError};
use crate::reactive::{ListenerHandle, Observable, Registry};
use futures_channel::oneshot;
use futures_signals::signal::{Signal, SignalExt};
use serde_json::Value;
use std::cell::RefCell;
use std::future::Future;
use std::rc::{Rc, Weak};

pub use crate::protocol::accounts::{AccountsEvent, UserSelector};

/// Called once with a login's outcome: the user id, or why it failed.
pub(crate) type Waiter = Box<dyn FnOnce(Result<String, MethodError>)>;
/// Called once with the outcome of `logout` / `logoutOtherClients`.
pub(crate) type VoidWaiter = Box<dyn FnOnce(Result<(), MethodError>)>;
/// Called once with a plain call's outcome.
type CallDone = Box<dyn FnOnce(Result<Option<Value>, MethodError>)>;
type EventListeners = Rc<Registry<dyn Fn(&AccountsEvent)>>;

/// Which `localStorage` keys a persisted login uses (Meteor's
/// `Meteor.loginToken`, `Meteor.loginTokenExpires`, `Meteor.userId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistLogin {
    /// The keys suffixed with `:<url>`, `url` as given to `connect`: what
    /// Meteor uses for a `DDP.connect` connection to another app.
    ConnectUrl,
    /// The bare keys: what the page's own Meteor app (`Meteor.connection`)
    /// uses, for a page that shares its login with a Meteor client.
    OwnApp,
}

/// The state one connection's accounts share (owned by the connection).
pub(crate) struct AccountsInner {
    state: RefCell<LoginState>,
    user_id: Observable<Option<String>>,
    logging_in: Observable<bool>,
    events: EventListeners,
    /// The app's waiters, by attempt (a handful at most: a plain list).
    waiters: RefCell<Vec<(u64, Waiter)>>,
    storage: RefCell<Option<StorageKeys>>,
    /// The connection's `onReconnect` registration (removed with this).
    hook: RefCell<Option<ListenerHandle>>,
    /// The `users` collection's listener: a login waiting for its user's
    /// document settles when it comes (removed with this).
    watch: RefCell<Option<ListenerHandle>>,
    /// The timer of the bound on that wait, and when it fires.
    timer: RefCell<Option<(f64, crate::host::Guard)>>,
}

/// The accounts are a plug-in of the connection's driver: one per
/// connection, kept while it lives. They hear no completion of their own:
/// their calls settle through their hooks, the user's document through the
/// `users` collection.
impl Plugin for AccountsInner {}

impl AccountsInner {
    fn new() -> Rc<Self> {
        Rc::new(AccountsInner {
            state: RefCell::default(),
            user_id: Observable::new(None),
            logging_in: Observable::new(false),
            events: Rc::default(),
            waiters: RefCell::default(),
            storage: RefCell::default(),
            hook: RefCell::default(),
            watch: RefCell::default(),
            timer: RefCell::default(),
        })
    }
}

/// A connection's accounts: cheap to clone; every clone is the same state.
/// It holds the connection weakly (an app may keep it anywhere without
/// keeping the connection open); once the connection is gone, logins fail
/// with `closed`.
#[derive(Clone)]
pub struct Accounts {
    conn: WeakConnection,
    inner: Rc<AccountsInner>,
    users: Collection,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("user_id", &self.user_id()).field("logging_in", &self.logging_in()).finish()
    }
}

/// What `create_user` sends (Meteor's `Accounts.createUser` options).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    pub username: Option<String>,
    pub email: Option<String>,
    /// Sent hashed, never in clear.
    pub password: String,
    /// Any JSON object (`profile` of the user document).
    pub profile: Option<Value>,
}

/// The `params` of `createUser`: the options, with the password hashed.
pub(crate) fn create_user_params(user: NewUser) -> Vec<Value> {
    let mut o = serde_json::Map::new();
    if let Some(u) = user.username {
        o.insert("username".into(), Value::String(u));
    }
    if let Some(e) = user.email {
        o.insert("email".into(), Value::String(e));
    }
    o.insert("password".into(), crate::protocol::accounts::hashed_password(&user.password));
    if let Some(p) = user.profile {
        o.insert("profile".into(), p);
    }
    vec![Value::Object(o)]
}

impl Connection {
    /// The connection's accounts (made on first use; one per connection).
    pub fn accounts(&self) -> Accounts {
        let state = self.plugin(|conn| {
            let state = AccountsInner::new();
            let weak = Rc::downgrade(&state);
            let hook = conn.on_reconnect(move |conn| {
                if let Some(state) = weak.upgrade() {
                    Accounts::from_parts(conn, state).reconnected();
                }
            });
            *state.hook.borrow_mut() = Some(hook);
            let (weak, users) = (Rc::downgrade(&state), conn.collection("users"));
            let conn = conn.downgrade();
            let watch = users.on_change(move |change| {
                let (Some(state), Some(conn)) = (weak.upgrade(), conn.upgrade()) else { return };
                let awaited = state.state.borrow().awaiting_user() == Some(change.id());
                if awaited {
                    Accounts::from_parts(&conn, state).run_effects();
                }
            });
            *state.watch.borrow_mut() = Some(watch);
            state
        });
        Accounts::from_parts(self, state)
    }
}

/// The connection's accounts if they are in use (made by no one else).
pub(crate) fn existing(conn: &Connection) -> Option<Accounts> {
    Some(Accounts::from_parts(conn, conn.find_plugin::<AccountsInner>()?))
}

impl Accounts {
    fn from_parts(conn: &Connection, inner: Rc<AccountsInner>) -> Self {
        Accounts { conn: conn.downgrade(), inner, users: conn.collection("users") }
    }

    /// Accounts with no connection, over a given `users` collection (tests).
    #[cfg(all(test, feature = "leptos"))]
    pub(crate) fn detached(users: Collection) -> Self {
        Accounts { conn: WeakConnection::default(), inner: AccountsInner::new(), users }
    }

    fn connection(&self) -> Option<Connection> {
        self.conn.upgrade()
    }

    /// The logged-in user's id (`None` while logged out).
    pub fn user_id(&self) -> Option<String> {
        self.inner.user_id.get()
    }

    /// The user id as a futures-signals signal.
    pub fn user_id_signal(&self) -> impl Signal<Item = Option<String>> {
        self.inner.user_id.signal()
    }

    /// The user id as an [`Observable`] (what every surface reads).
    pub fn user_id_observable(&self) -> &Observable<Option<String>> {
        &self.inner.user_id
    }

    /// True while a login the app asked for runs (not the silent re-login
    /// after a reconnect).
    pub fn logging_in(&self) -> bool {
        self.inner.logging_in.get()
    }

    /// `logging_in` as a signal.
    pub fn logging_in_signal(&self) -> impl Signal<Item = bool> {
        self.inner.logging_in.signal()
    }

    /// `logging_in` as an [`Observable`].
    pub fn logging_in_observable(&self) -> &Observable<bool> {
        &self.inner.logging_in
    }

    /// The current user's document from the `users` collection (as the
    /// server publishes it to a logged-in client: `_id`, `username`,
    /// `emails`, `profile`), once it arrived.
    pub fn user(&self) -> Option<Value> {
        self.users.find_one(&self.user_id()?)
    }

    /// The current user's document as a signal: follows logins, logouts
    /// and changes to the document.
    pub fn user_signal(&self) -> impl Signal<Item = Option<Value>> {
        let users = self.users.clone();
        self.inner
            .user_id
            .signal()
            .switch(move |id| {
                let logged_in = id.is_some();
                users.doc_signal(id.as_deref().unwrap_or_default()).map(move |doc| doc.filter(|_| logged_in))
            })
            .dedupe_cloned()
    }

    /// The `users` collection the user document is read from.
    pub fn users(&self) -> &Collection {
        &self.users
    }

    /// The resume token of the current login (Meteor's stored token).
    pub fn token(&self) -> Option<String> {
        self.inner.state.borrow().stored().map(|s| s.token.clone())
    }

    /// Calls `f` with every [`AccountsEvent`] while the returned handle lives.
    pub fn on_event(&self, f: impl Fn(&AccountsEvent) + 'static) -> ListenerHandle {
        self.inner.events.add(Rc::new(f))
    }

    /// Logs in with a password (a username, `"…@…"` as an email, or a
    /// [`UserSelector`]). The password is sent as its SHA-256 digest.
    /// Resolves to the user id once the user's document is in
    /// ([when a login settles](self#when-a-login-settles)); fails with the
    /// server's error (403; Meteor's text is "Something went wrong. Please
    /// check your credentials." for an unknown user and a wrong password
    /// alike, unless the server turns `ambiguousErrorMessages` off).
    pub fn login_with_password(&self, user: impl Into<UserSelector>, password: &str) -> impl Future<Output = Result<String, MethodError>> {
        let params = password_login_params(&user.into(), password);
        self.login_future("login", params)
    }

    /// Logs in with a resume token; settles as
    /// [`login_with_password`](Self::login_with_password).
    pub fn login_with_token(&self, token: &str) -> impl Future<Output = Result<String, MethodError>> {
        self.login_future("login", resume_login_params(token))
    }

    /// Creates a user and logs in as it (Meteor's `Accounts.createUser`);
    /// settles as [`login_with_password`](Self::login_with_password).
    pub fn create_user(&self, user: NewUser) -> impl Future<Output = Result<String, MethodError>> {
        self.login_future("createUser", create_user_params(user))
    }

    fn login_future(&self, method: &str, params: Vec<Value>) -> impl Future<Output = Result<String, MethodError>> {
        let (tx, rx) = oneshot::channel();
        self.login(method, params, Box::new(move |r| drop(tx.send(r))));
        async move { rx.await.unwrap_or(Err(MethodError::Closed)) }
    }

    /// Starts a login (a `wait` method); `waiter` hears its outcome.
    pub(crate) fn login(&self, method: &str, params: Vec<Value>, waiter: Waiter) {
        let attempt = self.inner.state.borrow_mut().begin(AttemptKind::App, None);
        self.inner.waiters.borrow_mut().push((attempt, waiter));
        self.call_login(method, params, attempt);
        self.run_effects();
    }

    /// Sends login attempt `attempt` as a `wait` call, wired to the state.
    fn call_login(&self, method: &str, params: Vec<Value>, attempt: u64) {
        let Some(conn) = self.connection() else {
            self.inner.state.borrow_mut().refused(attempt, MethodError::Closed);
            return;
        };
        let weak = Rc::downgrade(&self.inner);
        let on_result = Box::new(move |outcome: &Result<Option<Value>, MethodError>| {
            if let Some(inner) = weak.upgrade() {
                inner.state.borrow_mut().result_received(attempt, outcome);
            }
        });
        let this = self.weak();
        let done = Done::Hook(Box::new(move |outcome| {
            if let Some(this) = this.upgrade() {
                let now = this.now();
                this.inner.state.borrow_mut().done(attempt, outcome, now);
                this.run_effects();
            }
        }));
        let options = CallOptions { wait: true, transient: true, ..CallOptions::default() };
        if let Err(e) = conn.place_call(method, params, options, Some(on_result), Vec::new(), done) {
            self.inner.state.borrow_mut().refused(attempt, e);
        }
    }

    /// The connection's clock (the same as its host's timers), or the
    /// wall clock once the connection is gone.
    fn now(&self) -> f64 {
        self.connection().map_or_else(crate::browser::now, |c| c.now())
    }

    fn weak(&self) -> WeakAccounts {
        WeakAccounts { conn: self.conn.clone(), inner: Rc::downgrade(&self.inner), users: self.users.clone() }
    }

    /// A new session replaced a lost one (from the connection's hooks).
    fn reconnected(&self) {
        let now = self.now();
        self.inner.state.borrow_mut().reconnected(now);
        self.run_effects();
    }

    /// Logs out (Meteor's `logout`): the server forgets the token, the user
    /// id becomes `None`, the stored token is removed, the user document
    /// goes. A `wait` method: calls made meanwhile run after it.
    pub fn logout(&self) -> impl Future<Output = Result<(), MethodError>> {
        let (tx, rx) = oneshot::channel();
        self.logout_with(Box::new(move |r| drop(tx.send(r))));
        async move { rx.await.unwrap_or(Err(MethodError::Closed)) }
    }

    pub(crate) fn logout_with(&self, waiter: VoidWaiter) {
        let this = self.weak();
        self.call(
            "logout",
            Box::new(move |outcome: Result<Option<Value>, MethodError>| {
                if let (Ok(_), Some(this)) = (&outcome, this.upgrade()) {
                    this.inner.state.borrow_mut().logged_out();
                    this.run_effects();
                }
                waiter(outcome.map(drop));
            }),
        );
    }

    /// Logs out every other client of this user (Meteor's
    /// `logoutOtherClients`): a new token for this client, then every other
    /// token removed; their connections are closed by the server.
    pub fn logout_other_clients(&self) -> impl Future<Output = Result<(), MethodError>> {
        let (tx, rx) = oneshot::channel();
        self.logout_other_clients_with(Box::new(move |r| drop(tx.send(r))));
        async move { rx.await.unwrap_or(Err(MethodError::Closed)) }
    }

    pub(crate) fn logout_other_clients_with(&self, waiter: VoidWaiter) {
        let this = self.weak();
        // Both are wait methods, queued back to back: nothing runs between.
        self.call(
            "getNewToken",
            Box::new(move |outcome: Result<Option<Value>, MethodError>| {
                if let (Ok(v), Some(this)) = (outcome, this.upgrade()) {
                    let now = this.now();
                    this.inner.state.borrow_mut().new_token(v.as_ref(), now);
                    this.run_effects();
                }
            }),
        );
        self.call("removeOtherTokens", Box::new(move |outcome: Result<Option<Value>, MethodError>| waiter(outcome.map(drop))));
    }

    /// A `wait` call with no arguments whose outcome goes to `done`.
    fn call(&self, method: &str, done: CallDone) {
        let Some(conn) = self.connection() else { return done(Err(MethodError::Closed)) };
        let options = CallOptions { wait: true, transient: true, ..CallOptions::default() };
        // A refused call drops its hook uncalled: `done` then hears the
        // refusal from here.
        let slot: Rc<RefCell<Option<CallDone>>> = Rc::new(RefCell::new(Some(done)));
        let s = slot.clone();
        let hook = Done::Hook(Box::new(move |outcome| {
            if let Some(f) = s.borrow_mut().take() {
                f(outcome);
            }
        }));
        if let Err(e) = conn.place_call(method, Vec::new(), options, None, Vec::new(), hook) {
            let f = slot.borrow_mut().take();
            if let Some(f) = f {
                f(Err(e));
            }
        }
    }

    /// Turns on persistence in `localStorage` under Meteor's keys, and logs
    /// in with the login stored there (if it is not about to expire: an
    /// expiring token is removed, never sent). The user id shows at once,
    /// as in Meteor, while that login runs; if the server rejects the
    /// token, the client is logged out (with the events). Returns whether a
    /// stored login is being resumed. Off by default.
    pub fn persist_login(&self, keys: PersistLogin) -> bool {
        let Some(conn) = self.connection() else { return false };
        let keys = StorageKeys::new(match keys {
            PersistLogin::OwnApp => None,
            PersistLogin::ConnectUrl => Some(conn.raw_url()),
        });
        *self.inner.storage.borrow_mut() = Some(keys.clone());
        // Already logged in: store the current login.
        let current = self.inner.state.borrow().stored().cloned();
        if let Some(stored) = current {
            storage::write(&**conn.host(), &keys, &stored);
            return false;
        }
        let Some(stored) = storage::read(&**conn.host(), &keys) else { return false };
        let now = self.now();
        let restored = self.inner.state.borrow_mut().restore(stored, now);
        let resumed = restored.is_some();
        if let Some((attempt, token)) = restored {
            self.call_login("login", resume_login_params(&token), attempt);
        }
        self.run_effects();
        resumed
    }

    /// How long a successful login waits for the user's `users` document
    /// before it settles without it (ms; default
    /// [`DEFAULT_USER_WAIT_MS`](crate::protocol::accounts::DEFAULT_USER_WAIT_MS),
    /// 5 s; 0 settles with the `result` and `updated`). For the logins
    /// that begin from now on.
    pub fn set_user_wait(&self, ms: f64) {
        self.inner.state.borrow_mut().set_user_wait(ms);
    }

    /// A login waiting for its user's document settles once the document
    /// is in the store, or once the wait is over.
    fn check_user(&self) {
        let (awaited, deadline) = {
            let s = self.inner.state.borrow();
            (s.awaiting_user().map(str::to_owned), s.poll_timeout())
        };
        let Some(id) = awaited else { return };
        if self.users.find_one(&id).is_some() {
            self.inner.state.borrow_mut().user_arrived(&id);
        } else {
            let now = self.now();
            if deadline.is_some_and(|at| now >= at) {
                self.inner.state.borrow_mut().handle_timeout(now);
            }
        }
    }

    /// Keeps the timer armed for the bound on the wait (none without one).
    fn arm_timer(&self) {
        let deadline = self.inner.state.borrow().poll_timeout();
        let mut timer = self.inner.timer.borrow_mut();
        match deadline {
            None => *timer = None,
            Some(at) if timer.as_ref().is_some_and(|(t, _)| *t == at) => {}
            Some(at) => {
                let Some(conn) = self.conn.upgrade() else { return };
                let delay = (at - conn.now()).ceil().clamp(0.0, i32::MAX as f64) as u32;
                let this = self.weak();
                let guard = conn.host().timer(
                    delay,
                    Box::new(move || {
                        if let Some(this) = this.upgrade() {
                            this.inner.timer.borrow_mut().take();
                            this.run_effects();
                        }
                    }),
                );
                *timer = Some((at, guard));
            }
        }
    }

    /// Carries out what the login state asks for, with no borrow held
    /// while app code (listeners, waiters) runs.
    fn run_effects(&self) {
        loop {
            self.check_user();
            self.sync();
            let effect = self.inner.state.borrow_mut().poll_effect();
            let Some(effect) = effect else { break };
            match effect {
                Effect::ResumeLogin { attempt, token } => self.call_login("login", resume_login_params(&token), attempt),
                Effect::Store(stored) => {
                    if let (Some(keys), Some(conn)) = (self.inner.storage.borrow().as_ref(), self.connection()) {
                        storage::write(&**conn.host(), keys, &stored);
                    }
                }
                Effect::Unstore => {
                    if let (Some(keys), Some(conn)) = (self.inner.storage.borrow().as_ref(), self.connection()) {
                        storage::remove(&**conn.host(), keys);
                    }
                }
                Effect::Emit(event) => {
                    for l in self.inner.events.snapshot() {
                        l(&event);
                    }
                }
                Effect::Settle { attempts, outcome } => {
                    let waiters: Vec<Waiter> = {
                        let mut all = self.inner.waiters.borrow_mut();
                        let (settled, rest) = std::mem::take(&mut *all).into_iter().partition(|(a, _)| attempts.contains(a));
                        *all = rest;
                        settled.into_iter().map(|(_, w)| w).collect()
                    };
                    for w in waiters {
                        w(outcome.clone());
                    }
                }
            }
        }
        self.arm_timer();
    }

    /// Carries the state's user id and `logging_in` to their observables.
    fn sync(&self) {
        let (user_id, logging_in) = {
            let s = self.inner.state.borrow();
            (s.user_id().map(str::to_owned), s.logging_in())
        };
        self.inner.user_id.set(user_id);
        self.inner.logging_in.set(logging_in);
    }
}

/// An [`Accounts`] that does not keep its state alive (for call hooks).
struct WeakAccounts {
    conn: WeakConnection,
    inner: Weak<AccountsInner>,
    users: Collection,
}

impl WeakAccounts {
    fn upgrade(&self) -> Option<Accounts> {
        Some(Accounts { conn: self.conn.clone(), inner: self.inner.upgrade()?, users: self.users.clone() })
    }
}

/// The stored login in the host's storage (the page's `localStorage`), as
/// Meteor writes it (the expiry as `Date.toString()` in the browser). Any
/// failure (no storage, a private window, a full quota) is ignored: the
/// login then simply does not survive a reload.
mod storage {
    use super::{StorageKeys, StoredLogin};
    use crate::host::Host;

    pub(super) fn read(host: &dyn Host, keys: &StorageKeys) -> Option<StoredLogin> {
        let token = host.storage_get(&keys.token)?;
        let user_id = host.storage_get(&keys.user_id)?;
        // Unreadable: NaN, an unknown expiry (the token is tried, as Meteor does).
        let expires = host.storage_get(&keys.expires).map(|e| host.date_parse(&e));
        Some(StoredLogin { user_id, token, expires })
    }

    pub(super) fn write(host: &dyn Host, keys: &StorageKeys, login: &StoredLogin) {
        host.storage_set(&keys.user_id, &login.user_id);
        host.storage_set(&keys.token, &login.token);
        if let Some(ms) = login.expires {
            host.storage_set(&keys.expires, &host.date_string(ms));
        }
    }

    pub(super) fn remove(host: &dyn Host, keys: &StorageKeys) {
        for k in [&keys.user_id, &keys.token, &keys.expires] {
            host.storage_remove(k);
        }
    }
}

#[cfg(all(test, feature = "leptos"))]
impl Accounts {
    /// Sets the user id as a login would (for the Leptos hooks' test).
    pub(crate) fn set_user_id_for_test(&self, id: Option<&str>) {
        self.inner.user_id.set(id.map(str::to_owned));
    }
}
