//! Accounts, as Meteor's `accounts-base` and `accounts-password` serve them.
//!
//! | method | does |
//! |---|---|
//! | `login({user, password})` | `user` is `{username}`, `{email}` or `{id}`; `password` is `{digest, algorithm: "sha-256"}` (or a plain string, hashed here). Errors (403): "User not found", "User has no password set", "Incorrect password" |
//! | `login({resume: token})` | logs in with a resume token. Errors (403): "You've been logged out by the server. Please log in again." (unknown token), "Your session has expired. Please log in again." |
//! | `createUser({username, email, password, profile})` | creates the user and logs in. Errors: 400 "Need to set a username or email", 403 "Username already exists." / "Email already exists." |
//! | `logout()` | forgets the session's token; the user document goes |
//! | `getNewToken()` | a new token for this session, expiring with the old one |
//! | `removeOtherTokens()` | removes every other token of the user; sessions logged in with them are closed |
//! | `whoami()` | the session's user id (Meteor's `this.userId`), or null |
//!
//! On the wire as Meteor 3.0.4's accounts-base 3.0.3 / accounts-password
//! 3.0.2 (checked against `../shared/meteor-accounts`):
//! - **Order.** An accounts method sends `updated` before `result` (Meteor's
//!   write fence fires before the result), and the user's document after
//!   it: a login sends `updated`, `result`, then the `added`; `logout` the
//!   `removed`, then `updated`, `result`; a login on a logged-in session and
//!   `getNewToken` `removed`, `updated`, `result`, `added`.
//! - **Ambiguous errors** by default, as Meteor 3.0.4: an unknown user, a
//!   wrong password, a user without password and a taken username or email
//!   all get 403 "Something went wrong. Please check your credentials."
//!   (`accounts?op=ambiguous&on=false` gives the precise texts, as
//!   Meteor's `ambiguousErrorMessages: false`).
//! - **Rate limit:** accounts' default DDP rule, 5 calls of `login` (and,
//!   counted apart, of `createUser`) per connection in a 10 s window; the
//!   6th gets `too-many-requests` with `details.timeToReset`.
//! - A login result carries `type` (`"password"`, `"resume"`), and there is
//!   no `logoutOtherClients` method (Meteor 3.0.4's client calls
//!   `getNewToken` then `removeOtherTokens`).
//!
//! A login returns `{id, token, tokenExpires}` (`tokenExpires` an EJSON
//! Date, 90 days after the token was made). Passwords are stored as
//! bcrypt (cost 10) of the SHA-256 hex digest; resume tokens are stored
//! hashed (SHA-256, base64), as Meteor stores them. A logged-in session
//! gets its user document in `users` (`username`, `emails`, `profile`),
//! as Meteor's universal current-user publication sends it.
//!
//! Control (`POST /control/<scenario>/accounts?op=…`): `log` (every method
//! run, in order, with the user id it ran as), `users` (the stored users,
//! hashed tokens included), `create&username=&email=&password=` (a user,
//! without logging in), `expire&user=<username>` (the user's tokens expire:
//! resuming fails), `revoke&user=<username>` (the user's tokens are
//! removed and the sessions logged in with them closed, as Meteor does),
//! `ambiguous&on=false|true` (the error texts, above).

use super::{lock, meteor_error, publications, random_id, Scenario, ServerConnection};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Meteor's default token lifetime, 90 days.
const TOKEN_LIFETIME_MS: f64 = 90.0 * 86_400_000.0;
/// Meteor's default bcrypt cost.
const BCRYPT_COST: u32 = 10;
/// The most log entries kept.
const LOG_LIMIT: usize = 10_000;
/// The methods this module answers.
pub(crate) const METHODS: [&str; 6] = ["login", "logout", "createUser", "getNewToken", "removeOtherTokens", "whoami"];
/// Meteor's text for every credentials error while `ambiguousErrorMessages` is on (its default).
const AMBIGUOUS: &str = "Something went wrong. Please check your credentials.";
/// Accounts' default DDP rate limit: this many calls per method and connection…
const RATE_LIMIT: u32 = 5;
/// …in a window of this many ms.
const RATE_WINDOW_MS: f64 = 10_000.0;
/// The session's universal current-user publication (Meteor's `publish(null)`).
const USER_PUBLICATION: &str = "\u{0}accounts.currentUser";

struct Token {
    hashed: String,
    /// Epoch ms it was made.
    when: f64,
}

struct User {
    username: Option<String>,
    emails: Vec<String>,
    profile: Option<Value>,
    bcrypt: Option<String>,
    tokens: Vec<Token>,
}

/// The session's login.
struct Login {
    user_id: String,
    hashed_token: String,
}

/// The rate limit's window: when it began (epoch ms), and the calls counted
/// in it by (session, method).
type RateWindow = (f64, HashMap<(String, String), u32>);

/// A scenario's users and logins.
#[derive(Default)]
pub(crate) struct Accounts {
    users: Mutex<HashMap<String, User>>,
    logins: Mutex<HashMap<String, Login>>,
    log: Mutex<Vec<Value>>,
    /// Meteor's `ambiguousErrorMessages: false` (off by default, as in Meteor).
    precise_errors: std::sync::atomic::AtomicBool,
    /// Sessions whose user document goes out after the method's `result`.
    to_publish: Mutex<std::collections::HashSet<String>>,
    /// The rate limit's window.
    rate: Mutex<RateWindow>,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}

/// Meteor's `_hashLoginToken`: SHA-256, base64.
pub fn hash_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes()))
}

/// A new resume token (43 characters, as Meteor's `Random.secret()`).
fn new_token() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..43).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

fn forbidden(reason: &str) -> Value {
    meteor_error(json!(403), reason)
}

/// The methods whose `updated` goes before their `result` and whose user
/// document goes after it (see the module's notes).
pub(crate) fn meteor_ordered(method: &str) -> bool {
    METHODS.contains(&method) && method != "whoami"
}

fn bad_request(reason: &str) -> Value {
    meteor_error(json!(400), reason)
}

/// The string bcrypt hashes: the client's SHA-256 digest, or the SHA-256 of
/// a plain password (Meteor's `getPasswordString`).
fn password_string(password: &Value) -> Result<String, Value> {
    match password {
        Value::String(s) => Ok(format!("{:x}", Sha256::digest(s.as_bytes()))),
        Value::Object(o) => match (o.get("digest").and_then(Value::as_str), o.get("algorithm").and_then(Value::as_str)) {
            (Some(d), Some("sha-256")) => Ok(d.to_owned()),
            _ => Err(bad_request("Invalid password hash algorithm. Only 'sha-256' is allowed.")),
        },
        _ => Err(bad_request("Match failed")),
    }
}

async fn bcrypt_hash(s: String) -> Result<String, Value> {
    tokio::task::spawn_blocking(move || bcrypt::hash(s, BCRYPT_COST))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| meteor_error(json!(500), "Internal server error"))
}

async fn bcrypt_verify(s: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || bcrypt::verify(s, &hash).unwrap_or(false)).await.unwrap_or(false)
}

impl Accounts {
    /// A credentials error: Meteor's `Accounts._handleError` (ambiguous by default).
    fn credentials_error(&self, reason: &str) -> Value {
        forbidden(if self.precise_errors.load(std::sync::atomic::Ordering::SeqCst) { reason } else { AMBIGUOUS })
    }

    /// Accounts' default rate limit (`DDPRateLimiter`'s fixed window): the
    /// error for a call over the limit. Every call counts, refused ones too.
    fn rate_limited(&self, session: &str, method: &str) -> Option<Value> {
        let now = now_ms();
        let mut rate = lock(&self.rate);
        if now - rate.0 > RATE_WINDOW_MS {
            *rate = (now, HashMap::new());
        }
        let count = rate.1.entry((session.to_owned(), method.to_owned())).or_default();
        *count += 1;
        if *count <= RATE_LIMIT {
            return None;
        }
        let reset = (RATE_WINDOW_MS - (now - rate.0)).max(0.0);
        let reason =
            format!("Error, too many requests. Please slow down. You must wait {} seconds before trying again.", (reset / 1000.0).ceil());
        let mut e = meteor_error(json!("too-many-requests"), &reason);
        e["details"] = json!({ "timeToReset": reset.round() as u64 });
        Some(e)
    }

    /// After an accounts method's `result`: the session's user document
    /// goes out (Meteor starts the current-user publication after the result).
    pub(crate) fn publish_user(&self, session: &ServerConnection) {
        if !lock(&self.to_publish).remove(session.id()) {
            return;
        }
        let user_id = self.user_id(session.id());
        let docs = user_id.and_then(|u| self.user_fields(&u).map(|f| vec![("users", u, f)])).unwrap_or_default();
        publications::set_universal(session, USER_PUBLICATION, docs);
    }

    /// The user id the session's methods run as (`this.userId`).
    pub(crate) fn user_id(&self, session: &str) -> Option<String> {
        lock(&self.logins).get(session).map(|l| l.user_id.clone())
    }

    /// Records a method run (name and the user it runs as).
    pub(crate) fn record(&self, session: &ServerConnection, method: &str) {
        let entry = json!({"method": method, "userId": self.user_id(session.id()), "session": session.id()});
        let mut log = lock(&self.log);
        if log.len() < LOG_LIMIT {
            log.push(entry);
        }
    }

    fn find(&self, selector: &Value) -> Result<Option<String>, Value> {
        let users = lock(&self.users);
        let s = selector.as_object().ok_or_else(|| bad_request("Match failed"))?;
        let found = match (s.get("username"), s.get("email"), s.get("id")) {
            (Some(Value::String(u)), None, None) => users.iter().find(|(_, x)| x.username.as_deref() == Some(u)),
            (None, Some(Value::String(e)), None) => users.iter().find(|(_, x)| x.emails.iter().any(|m| m.eq_ignore_ascii_case(e))),
            (None, None, Some(Value::String(i))) => users.get_key_value(i),
            _ => return Err(bad_request("Match failed")),
        };
        Ok(found.map(|(id, _)| id.clone()))
    }

    /// The user's document as the current-user publication sends it.
    fn user_fields(&self, user_id: &str) -> Option<Map<String, Value>> {
        let users = lock(&self.users);
        let u = users.get(user_id)?;
        let mut f = Map::new();
        if let Some(name) = &u.username {
            f.insert("username".into(), json!(name));
        }
        if !u.emails.is_empty() {
            let emails: Vec<Value> = u.emails.iter().map(|a| json!({"address": a, "verified": false})).collect();
            f.insert("emails".into(), Value::Array(emails));
        }
        if let Some(p) = &u.profile {
            f.insert("profile".into(), p.clone());
        }
        Some(f)
    }

    /// Sets the session's user (Meteor's `setUserId`): its current-user
    /// publication follows, as Meteor's does: the old document goes now,
    /// the new one after the method's `result` ([`Accounts::publish_user`]).
    fn set_login(self: &Arc<Self>, session: &ServerConnection, login: Option<Login>) {
        if login.is_some() {
            lock(&self.to_publish).insert(session.id().to_owned());
        }
        let first = match login {
            Some(l) => lock(&self.logins).insert(session.id().to_owned(), l).is_none(),
            None => {
                lock(&self.logins).remove(session.id());
                false
            }
        };
        if first {
            // Forget the login when the session ends (weakly: no cycle).
            let (weak, id) = (Arc::downgrade(self), session.id().to_owned());
            session.on_close(move || {
                if let Some(a) = weak.upgrade() {
                    lock(&a.logins).remove(&id);
                }
            });
        }
        publications::set_universal(session, USER_PUBLICATION, Vec::new());
    }

    /// Logs the session in as `user_id` with a new token made at `when`
    /// (now, or the old token's time) and returns the login result.
    fn login_new_token(self: &Arc<Self>, session: &ServerConnection, user_id: &str, when: f64) -> Value {
        let token = new_token();
        let hashed = hash_token(&token);
        if let Some(u) = lock(&self.users).get_mut(user_id) {
            u.tokens.push(Token { hashed: hashed.clone(), when });
        }
        self.set_login(session, Some(Login { user_id: user_id.to_owned(), hashed_token: hashed }));
        login_result(user_id, &token, when, "password")
    }

    /// Closes every other session of `user_id` whose token is gone (as
    /// Meteor closes connections whose login token was removed).
    fn close_sessions_without_token(&self, sc: &Scenario, user_id: &str, except: Option<&str>) {
        let valid: Vec<String> =
            lock(&self.users).get(user_id).map(|u| u.tokens.iter().map(|t| t.hashed.clone()).collect()).unwrap_or_default();
        let gone: Vec<String> = lock(&self.logins)
            .iter()
            .filter(|(s, l)| l.user_id == user_id && Some(s.as_str()) != except && !valid.contains(&l.hashed_token))
            .map(|(s, _)| s.clone())
            .collect();
        for s in gone {
            lock(&self.logins).remove(&s);
            let session = lock(&sc.sessions).get(&s).cloned();
            if let Some(session) = session {
                session.close();
            }
        }
    }

    async fn create(&self, options: &Value) -> Result<String, Value> {
        let o = options.as_object().ok_or_else(|| bad_request("Match failed"))?;
        let username = o.get("username").and_then(Value::as_str).map(str::to_owned);
        let email = o.get("email").and_then(Value::as_str).map(str::to_owned);
        if username.is_none() && email.is_none() {
            return Err(bad_request("Need to set a username or email"));
        }
        let bcrypt = match o.get("password") {
            Some(p) => Some(bcrypt_hash(password_string(p)?).await?),
            None => None,
        };
        let mut users = lock(&self.users);
        if let Some(u) = &username {
            if users.values().any(|x| x.username.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(u))) {
                return Err(self.credentials_error("Username already exists."));
            }
        }
        if let Some(e) = &email {
            if users.values().any(|x| x.emails.iter().any(|m| m.eq_ignore_ascii_case(e))) {
                return Err(self.credentials_error("Email already exists."));
            }
        }
        let id = random_id();
        let profile = o.get("profile").filter(|p| p.is_object()).cloned();
        users.insert(id.clone(), User { username, emails: email.into_iter().collect(), profile, bcrypt, tokens: Vec::new() });
        Ok(id)
    }
}

fn login_result(user_id: &str, token: &str, when: f64, kind: &str) -> Value {
    json!({"id": user_id, "token": token, "tokenExpires": {"$date": when + TOKEN_LIFETIME_MS}, "type": kind})
}

/// Runs an accounts method for `session`.
pub(crate) async fn method(sc: &Arc<Scenario>, session: &ServerConnection, name: &str, params: &[Value]) -> Result<Option<Value>, Value> {
    let a = &sc.accounts;
    let arg = params.first().cloned().unwrap_or(Value::Null);
    let current = lock(&a.logins).get(session.id()).map(|l| (l.user_id.clone(), l.hashed_token.clone()));
    if matches!(name, "login" | "createUser") {
        if let Some(e) = a.rate_limited(session.id(), name) {
            return Err(e);
        }
    }
    match name {
        "whoami" => Ok(Some(current.map_or(Value::Null, |(u, _)| json!(u)))),
        "login" => {
            if let Some(token) = arg.get("resume") {
                let token = token.as_str().ok_or_else(|| bad_request("Match failed"))?;
                let hashed = hash_token(token);
                let found =
                    lock(&a.users).iter().find_map(|(id, u)| u.tokens.iter().find(|t| t.hashed == hashed).map(|t| (id.clone(), t.when)));
                let Some((user_id, when)) = found else {
                    return Err(forbidden("You've been logged out by the server. Please log in again."));
                };
                if when + TOKEN_LIFETIME_MS < now_ms() {
                    return Err(forbidden("Your session has expired. Please log in again."));
                }
                a.set_login(session, Some(Login { user_id: user_id.clone(), hashed_token: hashed }));
                return Ok(Some(login_result(&user_id, token, when, "resume")));
            }
            let (Some(user), Some(password)) = (arg.get("user"), arg.get("password")) else {
                return Err(bad_request("Unrecognized options for login request"));
            };
            let Some(user_id) = a.find(user)? else { return Err(a.credentials_error("User not found")) };
            let Some(hash) = lock(&a.users).get(&user_id).and_then(|u| u.bcrypt.clone()) else {
                return Err(a.credentials_error("User has no password set"));
            };
            if !bcrypt_verify(password_string(password)?, hash).await {
                return Err(a.credentials_error("Incorrect password"));
            }
            Ok(Some(a.login_new_token(session, &user_id, now_ms())))
        }
        "createUser" => {
            let user_id = a.create(&arg).await?;
            Ok(Some(a.login_new_token(session, &user_id, now_ms())))
        }
        "logout" => {
            if let Some((user_id, hashed)) = current {
                if let Some(u) = lock(&a.users).get_mut(&user_id) {
                    u.tokens.retain(|t| t.hashed != hashed);
                }
            }
            a.set_login(session, None);
            Ok(None)
        }
        "getNewToken" | "removeOtherTokens" => {
            let Some((user_id, hashed)) = current else {
                return Err(meteor_error(json!("You are not logged in."), "You are not logged in."));
            };
            let mut result = None;
            if name == "getNewToken" {
                let when = lock(&a.users).get(&user_id).and_then(|u| u.tokens.iter().find(|t| t.hashed == hashed).map(|t| t.when));
                let Some(when) = when else { return Err(meteor_error(json!("Invalid login token"), "Invalid login token")) };
                result = Some(a.login_new_token(session, &user_id, when));
            }
            if name == "removeOtherTokens" {
                let keep = lock(&a.logins).get(session.id()).map(|l| l.hashed_token.clone());
                if let Some(u) = lock(&a.users).get_mut(&user_id) {
                    u.tokens.retain(|t| Some(&t.hashed) == keep.as_ref());
                }
                a.close_sessions_without_token(sc, &user_id, Some(session.id()));
            }
            Ok(result)
        }
        other => Err(meteor_error(json!(404), &format!("Method '{other}' not found"))),
    }
}

/// `POST /control/<scenario>/accounts?op=…`.
pub(crate) async fn control(sc: &Arc<Scenario>, q: &HashMap<String, String>) -> Result<Value, Value> {
    let a = &sc.accounts;
    let by_name = |name: &str| lock(&a.users).iter().find(|(_, u)| u.username.as_deref() == Some(name)).map(|(id, _)| id.clone());
    match q.get("op").map(String::as_str) {
        Some("log") => Ok(Value::Array(lock(&a.log).clone())),
        Some("users") => {
            let users = lock(&a.users);
            let list: Vec<Value> = users
                .iter()
                .map(|(id, u)| {
                    json!({
                        "_id": id, "username": u.username, "emails": u.emails, "bcrypt": u.bcrypt,
                        "hashedTokens": u.tokens.iter().map(|t| t.hashed.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok(Value::Array(list))
        }
        Some("create") => {
            let mut o = Map::new();
            for k in ["username", "email", "password"] {
                if let Some(v) = q.get(k) {
                    o.insert(k.into(), json!(v));
                }
            }
            let id = a.create(&Value::Object(o)).await?;
            Ok(json!({ "id": id }))
        }
        Some("ambiguous") => {
            let on = q.get("on").is_none_or(|v| v != "false" && v != "0");
            a.precise_errors.store(!on, std::sync::atomic::Ordering::SeqCst);
            Ok(json!({ "ambiguous": on }))
        }
        Some(op @ ("expire" | "revoke")) => {
            let name = q.get("user").cloned().unwrap_or_default();
            let Some(user_id) = by_name(&name) else { return Err(json!({"error": format!("no user {name:?}")})) };
            if let Some(u) = lock(&a.users).get_mut(&user_id) {
                if op == "expire" {
                    for t in &mut u.tokens {
                        t.when = now_ms() - TOKEN_LIFETIME_MS - 1000.0;
                    }
                } else {
                    u.tokens.clear();
                }
            }
            if op == "revoke" {
                a.close_sessions_without_token(sc, &user_id, None);
            }
            Ok(json!({ "id": user_id }))
        }
        other => Err(json!({"error": format!("unknown accounts op {other:?}; known: log, users, create, expire, revoke, ambiguous")})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hashed_as_meteor_hashes_them() {
        // SHA-256 of "abc", base64.
        assert_eq!(hash_token("abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        assert_eq!(new_token().len(), 43);
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn passwords_are_the_sha256_digest_either_way() {
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(password_string(&json!("abc")).unwrap(), digest);
        assert_eq!(password_string(&json!({"digest": digest, "algorithm": "sha-256"})).unwrap(), digest);
        assert!(password_string(&json!({"digest": digest, "algorithm": "md5"})).is_err());
        assert!(password_string(&json!(5)).is_err());
    }
}
