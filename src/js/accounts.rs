//! Accounts on the JavaScript surface: `conn.loginWithPassword(...)` and
//! friends, over the connection's one [`crate::Accounts`].

use super::emitter::Emitter;
use super::{call_promise, get, js_error, method_error_to_js, tojs, watch, DdpConnection, StopHandle};
use crate::accounts::{AccountsEvent, NewUser, PersistLogin, UserSelector};
use crate::protocol::machine::MethodError;
use crate::reactive::ListenerHandle;
use crate::Connection;
use js_sys::{Object, Promise};
use serde_json::Value;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Who logs in with a password: a username (an email if it contains "@"), or one of these. */
export type DDPUserSelector = string | { username: string } | { email: string } | { id: string };

/** Options of `createUser` (Meteor's `Accounts.createUser`); the password is sent hashed. */
export interface DDPCreateUserOptions {
  username?: string;
  email?: string;
  password: string;
  profile?: Record<string, unknown>;
}

/** Options of `persistLogin`. */
export interface DDPPersistLoginOptions {
  /** Use Meteor's bare keys (those of the page's own Meteor app) instead of the `:<url>`-suffixed ones of a `DDP.connect` connection (default false). */
  ownApp?: boolean;
}

export interface DDPConnectionEvents {
  /** Logged in (any login: password, token, the re-login after a reconnect). */
  login: (userId: string) => void;
  /** A login failed: a wrong password, or a token the server rejected. */
  login_failed: (error: DDPMethodError) => void;
  loginFailed: (error: DDPMethodError) => void;
  /** A logged-in client was logged out: `logout()`, or its token is no longer accepted. */
  loggedOut: () => void;
  logout: () => void;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "DDPUserSelector")]
    pub type JsUserSelector;
    #[wasm_bindgen(typescript_type = "DDPCreateUserOptions")]
    pub type JsCreateUserOptions;
    #[wasm_bindgen(typescript_type = "DDPPersistLoginOptions")]
    pub type JsPersistLoginOptions;
    #[wasm_bindgen(typescript_type = "Promise<string>")]
    pub type JsLoginPromise;
    #[wasm_bindgen(typescript_type = "Promise<void>")]
    pub type JsVoidPromise;
    #[wasm_bindgen(typescript_type = "(userId: string | null) => void")]
    pub type JsUserIdCallback;
    #[wasm_bindgen(typescript_type = "(loggingIn: boolean) => void")]
    pub type JsLoggingInCallback;
    #[wasm_bindgen(typescript_type = "DDPDocument | null")]
    pub type JsUser;
    #[wasm_bindgen(typescript_type = "string | null")]
    pub type JsNullableString;
    #[wasm_bindgen(typescript_type = "string")]
    pub type JsPassword;
}

/// The accounts events a connection's emitter knows (name, canonical name).
pub(crate) const EVENTS: &[(&str, &str)] = &[
    ("login", "login"),
    ("login_failed", "login_failed"),
    ("loginFailed", "login_failed"),
    ("loggedOut", "loggedOut"),
    ("logout", "loggedOut"),
];

/// Carries the accounts events to the connection's JS listeners.
pub(crate) fn forward_events(conn: &Connection, listeners: &Emitter) -> ListenerHandle {
    let l = listeners.clone();
    conn.accounts().on_event(move |e| match e {
        AccountsEvent::LoggedIn { user_id } => l.emit("login", &[user_id.as_str().into()]),
        AccountsEvent::LoginFailed { error } => l.emit("login_failed", &[method_error_to_js(error)]),
        AccountsEvent::LoggedOut => l.emit("loggedOut", &[]),
    })
}

fn selector(user: JsValue) -> Result<UserSelector, JsValue> {
    if let Some(s) = user.as_string() {
        return Ok(UserSelector::from_name(&s));
    }
    let field = |k: &str| get(&user, k).as_string();
    let keys = user.dyn_ref::<Object>().map_or(0, |o| Object::keys(o).length());
    match (field("username"), field("email"), field("id"), keys) {
        (Some(u), None, None, 1) => Ok(UserSelector::Username(u)),
        (None, Some(e), None, 1) => Ok(UserSelector::Email(e)),
        (None, None, Some(i), 1) => Ok(UserSelector::Id(i)),
        _ => Err(js_error("invalid-argument", "the user is a string, or one of {username}, {email}, {id}")),
    }
}

fn password(v: &JsValue, what: &str) -> Result<String, JsValue> {
    v.as_string().ok_or_else(|| js_error("invalid-argument", &format!("{what}: the password must be a string")))
}

/// A string, or null (as Meteor's `userId()`), not undefined.
fn nullable(s: Option<String>) -> JsNullableString {
    s.map_or(JsValue::NULL, JsValue::from).unchecked_into()
}

/// A Promise of a login: the user id, or the error.
fn login_promise() -> (Promise, crate::accounts::Waiter) {
    let (promise, settle) = call_promise(|v| v.and_then(|v| v.as_str().map(JsValue::from)).unwrap_or(JsValue::NULL), || {});
    (promise, Box::new(move |r: Result<String, MethodError>| settle(r.map(|id| Some(Value::String(id))))))
}

/// A Promise of nothing, settled by a call's outcome.
fn void_promise() -> (Promise, crate::accounts::VoidWaiter) {
    let (promise, settle) = call_promise(|_| JsValue::UNDEFINED, || {});
    (promise, Box::new(move |r: Result<(), MethodError>| settle(r.map(|_| None))))
}

#[wasm_bindgen(js_class = DDPConnection)]
impl DdpConnection {
    /// Logs in with a password (Meteor's `loginWithPassword`): sent as its
    /// SHA-256 digest, never in clear. A `wait` method: calls made meanwhile
    /// go out after it. Resolves to the user id once the user's document is
    /// in (`user()` returns it; the wait is bounded: `setLoginUserWait`);
    /// rejects with the server's error (403).
    #[wasm_bindgen(js_name = loginWithPassword)]
    pub fn login_with_password(&self, user: JsUserSelector, password: JsPassword) -> Result<JsLoginPromise, JsValue> {
        let user = selector(user.into())?;
        let password = self::password(&password.into(), "loginWithPassword")?;
        let (promise, waiter) = login_promise();
        let params = crate::protocol::accounts::password_login_params(&user, &password);
        self.conn.accounts().login("login", params, waiter);
        Ok(promise.unchecked_into())
    }

    /// Logs in with a resume token (Meteor's `loginWithToken`); settles as
    /// `loginWithPassword`.
    #[wasm_bindgen(js_name = loginWithToken)]
    pub fn login_with_token(&self, token: &str) -> JsLoginPromise {
        let (promise, waiter) = login_promise();
        self.conn.accounts().login("login", crate::protocol::accounts::resume_login_params(token), waiter);
        promise.unchecked_into()
    }

    /// Creates a user and logs in as it (Meteor's `Accounts.createUser`);
    /// settles as `loginWithPassword`.
    #[wasm_bindgen(js_name = createUser)]
    pub fn create_user(&self, options: JsCreateUserOptions) -> Result<JsLoginPromise, JsValue> {
        let o: JsValue = options.into();
        let text = |k: &str| -> Result<Option<String>, JsValue> {
            match get(&o, k) {
                v if v.is_undefined() || v.is_null() => Ok(None),
                v => v.as_string().map(Some).ok_or_else(|| js_error("invalid-argument", &format!("createUser: {k} must be a string"))),
            }
        };
        let profile = match get(&o, "profile") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(super::ejson::from_js(&v).map_err(|e| js_error("invalid-argument", &e))?.to_json()),
        };
        let user = NewUser {
            username: text("username")?,
            email: text("email")?,
            password: password(&get(&o, "password"), "createUser")?,
            profile,
        };
        let (promise, waiter) = login_promise();
        self.conn.accounts().login("createUser", crate::accounts::create_user_params(user), waiter);
        Ok(promise.unchecked_into())
    }

    /// Logs out (Meteor's `logout`): `userId()` becomes null, the stored
    /// token is removed and the user document goes.
    pub fn logout(&self) -> JsVoidPromise {
        let (promise, settle) = void_promise();
        self.conn.accounts().logout_with(settle);
        promise.unchecked_into()
    }

    /// Logs out every other client of this user (Meteor's `logoutOtherClients`).
    #[wasm_bindgen(js_name = logoutOtherClients)]
    pub fn logout_other_clients(&self) -> JsVoidPromise {
        let (promise, settle) = void_promise();
        self.conn.accounts().logout_other_clients_with(settle);
        promise.unchecked_into()
    }

    /// How long a successful login waits for the user's document before it
    /// settles without it (ms; default 5000; 0: settle with the result).
    #[wasm_bindgen(js_name = setLoginUserWait)]
    pub fn set_login_user_wait(&self, ms: f64) {
        self.conn.accounts().set_user_wait(ms);
    }

    /// The logged-in user's id, or null.
    #[wasm_bindgen(js_name = userId)]
    pub fn user_id(&self) -> JsNullableString {
        nullable(self.conn.accounts().user_id())
    }

    /// True while a login the app asked for runs.
    #[wasm_bindgen(js_name = loggingIn)]
    pub fn logging_in(&self) -> bool {
        self.conn.accounts().logging_in()
    }

    /// The current user's document (from the `users` collection the
    /// server publishes to a logged-in client), or null.
    pub fn user(&self) -> JsUser {
        self.conn.accounts().user().map_or(JsValue::NULL, |d| tojs::value(&d)).unchecked_into()
    }

    /// The resume token of the current login, or null.
    #[wasm_bindgen(js_name = loginToken)]
    pub fn login_token(&self) -> JsNullableString {
        nullable(self.conn.accounts().token())
    }

    /// Calls `callback` at once with the user id, then on every change,
    /// until `stop()`.
    #[wasm_bindgen(js_name = onUserIdChange)]
    pub fn on_user_id_change(&self, callback: JsUserIdCallback) -> Result<StopHandle, JsValue> {
        watch(callback.into(), "onUserIdChange", self.conn.accounts().user_id_observable(), |id| {
            id.as_deref().map_or(JsValue::NULL, JsValue::from)
        })
    }

    /// Calls `callback` at once with `loggingIn()`, then on every change.
    #[wasm_bindgen(js_name = onLoggingInChange)]
    pub fn on_logging_in_change(&self, callback: JsLoggingInCallback) -> Result<StopHandle, JsValue> {
        watch(callback.into(), "onLoggingInChange", self.conn.accounts().logging_in_observable(), |b| (*b).into())
    }

    /// Keeps the login in `localStorage` under Meteor's keys
    /// (`Meteor.loginToken`, `Meteor.loginTokenExpires`, `Meteor.userId`,
    /// suffixed `:<url>` unless `ownApp`), and logs in with the login stored
    /// there, if any that is not about to expire (an expiring one is
    /// removed, never sent). Returns whether a stored login is resumed.
    #[wasm_bindgen(js_name = persistLogin)]
    pub fn persist_login(&self, options: Option<JsPersistLoginOptions>) -> Result<bool, JsValue> {
        let o: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        if !o.is_undefined() && !o.is_null() {
            super::reject_unknown_keys(&o, "persistLogin: ", &["ownApp"])?;
        }
        let keys = if get(&o, "ownApp").is_truthy() { PersistLogin::OwnApp } else { PersistLogin::ConnectUrl };
        Ok(self.conn.accounts().persist_login(keys))
    }
}
