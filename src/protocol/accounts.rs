//! Accounts, pure: the login state of one connection as Meteor's
//! `accounts-base` client keeps it, with no I/O and no clock.
//!
//! The driver ([`crate::accounts`]) tells [`LoginState`] what happened (a
//! login attempt began, its `result` arrived, it ended, a new session
//! replaced a lost one, `logout` succeeded) and carries out the
//! [`Effect`]s it asks for (call `login` with the resume token, store or
//! remove the token, emit an event, settle the app's futures/Promises).
//!
//! Meteor's rules, kept here:
//! - A login is a `wait` method (`login` or `createUser`), so calls made
//!   while it is in flight go out after it. Once its `result` carries a
//!   token, a new session logs in again with that token from the
//!   connection's `onReconnect` hooks, ahead of every queued call (the
//!   stored token wins if one is stored, as Meteor's hook reads storage).
//! - A token that expires soon (within a tenth of its 90-day lifetime,
//!   at most one hour) is never sent: the client is logged out instead.
//! - A resume login that the server rejects logs the client out (and
//!   clears the stored token) when the token it tried is still the stored
//!   one; a password or user-given token that fails only rejects.
//! - A login whose session was replaced after its `result` settles with
//!   the outcome of the resume login that took over from it.
//! - A login settles (the user id is set, `LoggedIn` is emitted, the app's
//!   future resolves, `logging_in` ends) once its `result` and `updated`
//!   are in *and* the user's `users` document is in the store: a Meteor
//!   server publishes that document after the `result` (Meteor's client
//!   runs its login callbacks only once `Meteor.user()` has it). The wait
//!   is bounded ([`DEFAULT_USER_WAIT_MS`], [`LoginState::set_user_wait`]):
//!   past it the login settles anyway and the document follows when it
//!   comes. The user id is not set before the login settles, so whoever
//!   sees it set also finds the document (unless the bound passed, or the
//!   id was restored from storage at start-up, as Meteor shows it).

use super::machine::MethodError;
use serde_json::{Map, Value};

/// A JSON object from pairs, built by hand: `json!` would pull serde's
/// value serializer into the wasm.
pub(crate) fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<String, Value>>())
}

/// Meteor's default token lifetime (`DEFAULT_LOGIN_EXPIRATION_DAYS`, 90).
pub const TOKEN_LIFETIME_MS: f64 = 90.0 * 86_400_000.0;
/// Meteor's `MIN_TOKEN_LIFETIME_CAP_SECS` (one hour), in ms.
pub const MIN_TOKEN_LIFETIME_CAP_MS: f64 = 3_600_000.0;

/// How long a successful login waits for the user's `users` document
/// before it settles without it (ms).
pub const DEFAULT_USER_WAIT_MS: f64 = 5_000.0;

/// When a token made at `when_ms` expires (Meteor's `_tokenExpiration`).
pub fn token_expiration(when_ms: f64) -> f64 {
    when_ms + TOKEN_LIFETIME_MS
}

/// True when a token expiring at `expires_ms` must not be used at `now_ms`
/// (Meteor's `_tokenExpiresSoon`). A time that is not a number counts as
/// expired: such a token is never sent.
pub fn token_expires_soon(expires_ms: f64, now_ms: f64) -> bool {
    let margin = (0.1 * TOKEN_LIFETIME_MS).min(MIN_TOKEN_LIFETIME_CAP_MS);
    !expires_ms.is_finite() || now_ms > expires_ms - margin
}

/// The password as Meteor's client sends it: `{digest, algorithm}`, the
/// SHA-256 of its UTF-8 bytes in hex. The password itself never leaves.
pub fn hashed_password(password: &str) -> Value {
    object([("digest", Value::String(super::sha256::hex(password.as_bytes()))), ("algorithm", "sha-256".into())])
}

/// Who logs in with a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSelector {
    Username(String),
    Email(String),
    Id(String),
}

impl UserSelector {
    /// A plain string, as Meteor reads one: an email if it contains `@`,
    /// else a username.
    pub fn from_name(name: &str) -> Self {
        if name.contains('@') {
            UserSelector::Email(name.to_owned())
        } else {
            UserSelector::Username(name.to_owned())
        }
    }

    /// The `user` field of the login request.
    pub fn to_json(&self) -> Value {
        match self {
            UserSelector::Username(u) => object([("username", u.as_str().into())]),
            UserSelector::Email(e) => object([("email", e.as_str().into())]),
            UserSelector::Id(i) => object([("id", i.as_str().into())]),
        }
    }
}

impl From<&str> for UserSelector {
    fn from(name: &str) -> Self {
        UserSelector::from_name(name)
    }
}

/// The `params` of a password login.
pub fn password_login_params(user: &UserSelector, password: &str) -> Vec<Value> {
    vec![object([("user", user.to_json()), ("password", hashed_password(password))])]
}

/// The `params` of a token (resume) login.
pub fn resume_login_params(token: &str) -> Vec<Value> {
    vec![object([("resume", token.into())])]
}

/// What a login method returns: `{id, token, tokenExpires}`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginResult {
    pub id: String,
    pub token: String,
    /// Epoch ms (EJSON `{"$date": ms}` on the wire), if the server sent it.
    pub token_expires: Option<f64>,
}

/// Reads a login method's result; `None` if it is not one (no `id` or no
/// `token`).
pub fn parse_login_result(v: Option<&Value>) -> Option<LoginResult> {
    let v = v?;
    let id = v.get("id")?.as_str()?.to_owned();
    let token = v.get("token")?.as_str()?.to_owned();
    let token_expires = match v.get("tokenExpires") {
        Some(Value::Object(m)) => m.get("$date").and_then(Value::as_f64),
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    };
    Some(LoginResult { id, token, token_expires })
}

/// Meteor's storage keys: `Meteor.loginToken`, `Meteor.loginTokenExpires`
/// and `Meteor.userId`, with the suffix `:<url>` for a connection other than
/// the page's own Meteor app (`url` as given to `DDP.connect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageKeys {
    pub token: String,
    pub expires: String,
    pub user_id: String,
}

impl StorageKeys {
    /// `namespace` None: the keys of the page's own app (`Meteor.connection`);
    /// `Some(url)`: those of a `DDP.connect(url)` connection.
    pub fn new(namespace: Option<&str>) -> Self {
        let suffix = namespace.map(|n| format!(":{n}")).unwrap_or_default();
        StorageKeys {
            token: format!("Meteor.loginToken{suffix}"),
            expires: format!("Meteor.loginTokenExpires{suffix}"),
            user_id: format!("Meteor.userId{suffix}"),
        }
    }
}

/// The login as stored (in memory, and in `localStorage` when persistence
/// is on).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLogin {
    pub user_id: String,
    pub token: String,
    /// Epoch ms; `None` when storage held none.
    pub expires: Option<f64>,
}

/// What the app hears about its login.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountsEvent {
    /// Logged in as `user_id` (any login: password, token, resume).
    LoggedIn { user_id: String },
    /// A login failed (Meteor's `onLoginFailure`): a wrong password, or a
    /// token the server rejected.
    LoginFailed { error: MethodError },
    /// A logged-in client is logged out: `logout()`, or a token the server
    /// no longer accepts (Meteor's `onLogout`).
    LoggedOut,
}

/// How an attempt began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The app called a login (password, token, createUser).
    App,
    /// The resume login of the reconnect hook (no `loggingIn` flicker).
    Reconnect,
    /// The stored token at start-up (page load): its failure logs out.
    Restore,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call `login` with [`resume_login_params`]`(token)` as a `wait`
    /// method, now (from the reconnect hooks: ahead of queued calls), as
    /// attempt `attempt`.
    ResumeLogin { attempt: u64, token: String },
    /// Write this login to storage.
    Store(StoredLogin),
    /// Remove the stored login.
    Unstore,
    /// Tell the app.
    Emit(AccountsEvent),
    /// Settle the app's waiters of these attempts: `Ok(user id)` or the error.
    Settle { attempts: Vec<u64>, outcome: Result<String, MethodError> },
}

#[derive(Debug)]
struct Attempt {
    kind: AttemptKind,
    /// The token tried (resume attempts).
    token: Option<String>,
    /// A new session replaced the one it ran in after its result came:
    /// the reconnect hook's resume login took over (and settles it).
    reconnected: bool,
    /// Attempts that took over nothing but wait for this one's outcome.
    followers: Vec<u64>,
}

/// The reconnect hook's login (Meteor's `_reconnectStopper` and the
/// result it captured).
#[derive(Debug, Clone)]
struct ReconnectLogin {
    owner: u64,
    token: String,
    expires: Option<f64>,
}

/// A login that succeeded and waits for its user's document.
#[derive(Debug)]
struct AwaitingUser {
    user_id: String,
    /// The attempts it settles.
    attempts: Vec<u64>,
    /// When it settles without the document.
    deadline: f64,
}

/// The login state of one connection.
#[derive(Debug, Default)]
pub struct LoginState {
    user_id: Option<String>,
    /// A successful login waiting for its user's document.
    awaiting: Option<AwaitingUser>,
    /// The bound on that wait; `None`: [`DEFAULT_USER_WAIT_MS`].
    user_wait_ms: Option<f64>,
    logging_in: bool,
    stored: Option<StoredLogin>,
    reconnect: Option<ReconnectLogin>,
    /// Unfinished attempts, oldest first (a handful at most: a plain list
    /// keeps the wasm small).
    attempts: Vec<(u64, Attempt)>,
    next_attempt: u64,
    /// Effects not yet taken, in order.
    effects: Vec<Effect>,
}

impl LoginState {
    /// The logged-in user's id.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// True while a login the app asked for (or the start-up one) runs.
    pub fn logging_in(&self) -> bool {
        self.logging_in
    }

    /// The stored login (what Meteor keeps in `localStorage`).
    pub fn stored(&self) -> Option<&StoredLogin> {
        self.stored.as_ref()
    }

    /// True while some login attempt is unfinished (including one that
    /// waits for its user's document).
    pub fn pending(&self) -> bool {
        !self.attempts.is_empty() || self.awaiting.is_some()
    }

    /// Sets how long a successful login waits for its user's document
    /// (ms; a negative or non-finite value counts as 0: no wait).
    pub fn set_user_wait(&mut self, ms: f64) {
        self.user_wait_ms = Some(if ms.is_finite() { ms.max(0.0) } else { 0.0 });
    }

    /// How long a successful login waits for its user's document (ms).
    pub fn user_wait(&self) -> f64 {
        self.user_wait_ms.unwrap_or(DEFAULT_USER_WAIT_MS)
    }

    /// The user whose document a successful login waits for: the driver
    /// calls [`LoginState::user_arrived`] once it is in the store.
    pub fn awaiting_user(&self) -> Option<&str> {
        self.awaiting.as_ref().map(|a| a.user_id.as_str())
    }

    /// The user's document is in the store: a login waiting for it settles.
    pub fn user_arrived(&mut self, user_id: &str) {
        if self.awaiting_user() == Some(user_id) {
            self.settle_awaiting();
        }
    }

    /// When [`LoginState::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<f64> {
        self.awaiting.as_ref().map(|a| a.deadline)
    }

    /// The clock reached `now`: a login whose wait is over settles without
    /// its document (which follows when it comes).
    pub fn handle_timeout(&mut self, now: f64) {
        if self.awaiting.as_ref().is_some_and(|a| now >= a.deadline) {
            self.settle_awaiting();
        }
    }

    /// The waiting login settles as logged in.
    fn settle_awaiting(&mut self) {
        let Some(a) = self.awaiting.take() else { return };
        self.user_id = Some(a.user_id.clone());
        self.logging_in = false;
        self.effects.push(Effect::Emit(AccountsEvent::LoggedIn { user_id: a.user_id.clone() }));
        self.effects.push(Effect::Settle { attempts: a.attempts, outcome: Ok(a.user_id) });
    }

    /// The next thing to do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        (!self.effects.is_empty()).then(|| self.effects.remove(0))
    }

    fn attempt(&mut self, id: u64) -> Option<&mut Attempt> {
        self.attempts.iter_mut().find(|(i, _)| *i == id).map(|(_, a)| a)
    }

    fn take_attempt(&mut self, id: u64) -> Option<Attempt> {
        let at = self.attempts.iter().position(|(i, _)| *i == id)?;
        Some(self.attempts.remove(at).1)
    }

    /// A login attempt begins (the driver then calls the method); returns
    /// its id. `token` is the token a resume attempt tries.
    pub fn begin(&mut self, kind: AttemptKind, token: Option<String>) -> u64 {
        self.next_attempt += 1;
        let id = self.next_attempt;
        if kind != AttemptKind::Reconnect {
            self.logging_in = true;
        }
        self.attempts.push((id, Attempt { kind, token, reconnected: false, followers: Vec::new() }));
        id
    }

    /// The attempt could not even be queued (closed connection, full
    /// outbox): it ends with `error`.
    pub fn refused(&mut self, attempt: u64, error: MethodError) {
        self.done(attempt, Err(error), 0.0);
    }

    /// Attempt `attempt`'s `result` arrived (its data may not have yet):
    /// from now on a new session logs in again with its token.
    pub fn result_received(&mut self, attempt: u64, outcome: &Result<Option<Value>, MethodError>) {
        if self.attempt(attempt).is_none() {
            return;
        }
        if let Some(r) = outcome.as_ref().ok().and_then(|v| parse_login_result(v.as_ref())) {
            self.reconnect = Some(ReconnectLogin { owner: attempt, token: r.token, expires: r.token_expires });
        }
    }

    /// Attempt `attempt` ended (`result` and `updated` both came, or it failed).
    pub fn done(&mut self, attempt: u64, outcome: Result<Option<Value>, MethodError>, now: f64) {
        let Some(a) = self.take_attempt(attempt) else { return };
        if a.reconnected {
            // The reconnect hook's resume login took over and settles it.
            return;
        }
        let mut settled = vec![attempt];
        settled.extend(a.followers);
        let login = outcome
            .and_then(|v| parse_login_result(v.as_ref()).ok_or_else(|| MethodError::BadResult("no result from the login method".into())));
        match login {
            Ok(r) => {
                let stored = StoredLogin {
                    user_id: r.id.clone(),
                    token: r.token,
                    expires: Some(r.token_expires.unwrap_or_else(|| token_expiration(now))),
                };
                self.stored = Some(stored.clone());
                self.effects.push(Effect::Store(stored));
                // An earlier login still waiting: for the same user it
                // settles with this one; for another user it settles now
                // (this one still logs in).
                if let Some(earlier) = self.awaiting.as_mut().filter(|a| a.user_id == r.id) {
                    settled.append(&mut earlier.attempts);
                    self.awaiting = None;
                }
                let busy = self.logging_in;
                self.settle_awaiting();
                self.logging_in = busy;
                self.awaiting = Some(AwaitingUser { user_id: r.id, attempts: settled, deadline: now + self.user_wait() });
                if self.user_wait() <= 0.0 {
                    self.settle_awaiting();
                }
            }
            Err(error) => {
                self.logging_in = self.awaiting.is_some();
                // Only the server's refusal says the token is gone (as
                // Meteor's client): a call that failed here (closed, queue
                // full, cancelled, timed out, an unreadable answer) leaves
                // the stored login alone.
                let refused = matches!(error, MethodError::Server { .. });
                let token_gone = refused
                    && match a.kind {
                        AttemptKind::App => false,
                        AttemptKind::Restore => true,
                        AttemptKind::Reconnect => self.stored.as_ref().is_some_and(|s| Some(&s.token) == a.token.as_ref()),
                    };
                self.effects.push(Effect::Emit(AccountsEvent::LoginFailed { error: error.clone() }));
                if token_gone {
                    self.logged_out();
                }
                self.effects.push(Effect::Settle { attempts: settled, outcome: Err(error) });
            }
        }
    }

    /// A new session replaced a lost one (the connection's `onReconnect`
    /// hooks run now): log in again with the token, or log out if it
    /// expires soon. Does nothing if no login ever returned a token.
    pub fn reconnected(&mut self, now: f64) {
        let Some(hook) = self.reconnect.clone() else { return };
        let mut followers = Vec::new();
        if let Some(owner) = self.attempt(hook.owner) {
            owner.reconnected = true;
            followers.push(hook.owner);
            followers.append(&mut owner.followers);
        }
        // A login waiting for its user's document: the resume login takes
        // over (the new session publishes the document after it).
        if let Some(a) = self.awaiting.take() {
            followers.extend(a.attempts);
        }
        let (token, expires) = match &self.stored {
            Some(s) => (s.token.clone(), s.expires),
            None => (hook.token, hook.expires),
        };
        let expires = expires.unwrap_or_else(|| token_expiration(now));
        if token_expires_soon(expires, now) {
            self.logged_out();
            if !followers.is_empty() {
                self.logging_in = false;
                self.effects.push(Effect::Settle { attempts: followers, outcome: Err(expired()) });
            }
            return;
        }
        let id = self.begin(AttemptKind::Reconnect, Some(token.clone()));
        if let Some(a) = self.attempt(id) {
            a.followers = followers;
        }
        self.effects.push(Effect::ResumeLogin { attempt: id, token });
    }

    /// At start-up with persistence: the stored login, read from storage.
    /// Returns the token to log in with (and the attempt), or `None` if
    /// there is none usable (an expiring one is removed, never sent; one
    /// whose expiry is unknown is sent, as Meteor's client does).
    /// Meteor shows the stored user id at once, while the login runs.
    pub fn restore(&mut self, stored: StoredLogin, now: f64) -> Option<(u64, String)> {
        if self.user_id.is_some() || self.pending() {
            return None; // the app logged in already
        }
        if stored.expires.filter(|e| e.is_finite()).is_some_and(|e| token_expires_soon(e, now)) {
            self.effects.push(Effect::Unstore);
            return None;
        }
        let token = stored.token.clone();
        self.user_id = Some(stored.user_id.clone());
        self.stored = Some(stored);
        let id = self.begin(AttemptKind::Restore, Some(token.clone()));
        Some((id, token))
    }

    /// `getNewToken` answered (from `logoutOtherClients`): the new token is
    /// stored and used from now on.
    pub fn new_token(&mut self, result: Option<&Value>, now: f64) {
        let (Some(r), Some(user_id)) = (parse_login_result(result), self.user_id.clone()) else { return };
        let stored = StoredLogin { user_id, token: r.token, expires: Some(r.token_expires.unwrap_or_else(|| token_expiration(now))) };
        self.stored = Some(stored.clone());
        self.effects.push(Effect::Store(stored));
    }

    /// Logged out (`logout` succeeded, or the token is no longer good):
    /// the user id goes, the stored token is removed, and new sessions no
    /// longer log in (Meteor's `makeClientLoggedOut`).
    pub fn logged_out(&mut self) {
        // A login still waiting for its document did log in: it settles
        // first, so the app hears of the login before the logout.
        self.settle_awaiting();
        let was_in = self.user_id.take().is_some();
        self.stored = None;
        self.reconnect = None;
        self.effects.push(Effect::Unstore);
        if was_in {
            self.effects.push(Effect::Emit(AccountsEvent::LoggedOut));
        }
    }
}

const EXPIRED: &str = "Your session has expired. Please log in again.";

fn expired() -> MethodError {
    MethodError::Server {
        error: 403.into(),
        reason: Some(EXPIRED.into()),
        details: None,
        raw: object([("error", 403.into()), ("reason", EXPIRED.into())]),
    }
}

// Native only: the property tests use proptest (not built for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
