use super::*;
use crate::protocol::machine::{CallOptions, Completion, Config, Machine, Output};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};

const NOW: f64 = 1_700_000_000_000.0;

fn ok(id: &str, token: &str) -> Result<Option<Value>, MethodError> {
    Ok(Some(json!({"id": id, "token": token, "tokenExpires": {"$date": NOW + TOKEN_LIFETIME_MS}})))
}

fn forbidden(reason: &str) -> MethodError {
    MethodError::Server { error: json!(403), reason: Some(reason.into()), details: None, raw: json!({}) }
}

fn effects(s: &mut LoginState) -> Vec<Effect> {
    std::iter::from_fn(|| s.poll_effect()).collect()
}

/// An app login as user u1 with token T1, completed, its effects drained.
fn log_in(s: &mut LoginState) {
    let a = s.begin(AttemptKind::App, None);
    s.result_received(a, &ok("u1", "T1"));
    s.done(a, ok("u1", "T1"), NOW);
    s.user_arrived("u1");
    effects(s);
}

#[test]
fn expiry_follows_meteor_a_tenth_of_the_lifetime_capped_at_an_hour() {
    let expires = token_expiration(NOW);
    assert_eq!(expires, NOW + 90.0 * 86_400_000.0);
    assert!(!token_expires_soon(expires, NOW));
    assert!(!token_expires_soon(expires, expires - 3_600_000.0));
    assert!(token_expires_soon(expires, expires - 3_599_999.0));
    assert!(token_expires_soon(NOW - 1.0, NOW));
    assert!(token_expires_soon(f64::NAN, NOW), "an unreadable expiry is never sent");
}

#[test]
fn passwords_are_sent_hashed_and_strings_with_at_are_emails() {
    assert_eq!(
        hashed_password("abc"),
        json!({"digest": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "algorithm": "sha-256"})
    );
    assert_eq!(UserSelector::from("ada").to_json(), json!({"username": "ada"}));
    assert_eq!(UserSelector::from("ada@example.com").to_json(), json!({"email": "ada@example.com"}));
    assert_eq!(UserSelector::Id("x".into()).to_json(), json!({"id": "x"}));
    let params = password_login_params(&UserSelector::from("ada"), "secret");
    assert!(!params[0].to_string().contains("\"secret\""), "never in clear");
    assert_eq!(resume_login_params("T"), vec![json!({"resume": "T"})]);
}

#[test]
fn storage_keys_are_meteors_with_the_url_suffix_for_another_app() {
    let own = StorageKeys::new(None);
    assert_eq!(
        (own.token.as_str(), own.expires.as_str(), own.user_id.as_str()),
        ("Meteor.loginToken", "Meteor.loginTokenExpires", "Meteor.userId")
    );
    let other = StorageKeys::new(Some("https://other.example.com"));
    assert_eq!(other.token, "Meteor.loginToken:https://other.example.com");
    assert_eq!(other.expires, "Meteor.loginTokenExpires:https://other.example.com");
    assert_eq!(other.user_id, "Meteor.userId:https://other.example.com");
}

#[test]
fn login_results_are_read_with_their_ejson_date() {
    let r = parse_login_result(ok("u", "t").unwrap().as_ref()).expect("a login result");
    assert_eq!(r, LoginResult { id: "u".into(), token: "t".into(), token_expires: Some(NOW + TOKEN_LIFETIME_MS) });
    assert_eq!(parse_login_result(Some(&json!({"id": "u"}))), None);
    assert_eq!(parse_login_result(Some(&json!([1]))), None);
    assert_eq!(parse_login_result(None), None);
}

#[test]
fn a_login_sets_the_user_stores_the_token_and_settles() {
    let mut s = LoginState::default();
    let a = s.begin(AttemptKind::App, None);
    assert!(s.logging_in());
    s.result_received(a, &ok("u1", "T1"));
    assert_eq!(s.user_id(), None, "logged in only when the data is there (updated)");
    s.done(a, ok("u1", "T1"), NOW);
    // Meteor publishes the user's document after the result: the login
    // waits for it, still logging in, the user id not yet set.
    assert_eq!(s.user_id(), None);
    assert!(s.logging_in());
    assert_eq!(s.awaiting_user(), Some("u1"));
    let stored = StoredLogin { user_id: "u1".into(), token: "T1".into(), expires: Some(NOW + TOKEN_LIFETIME_MS) };
    assert_eq!(effects(&mut s), vec![Effect::Store(stored)], "the token is stored at once (a reload resumes it)");
    s.user_arrived("u2");
    assert!(effects(&mut s).is_empty(), "another user's document settles nothing");
    s.user_arrived("u1");
    assert_eq!(s.user_id(), Some("u1"));
    assert!(!s.logging_in());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(
        effects(&mut s),
        vec![
            Effect::Emit(AccountsEvent::LoggedIn { user_id: "u1".into() }),
            Effect::Settle { attempts: vec![a], outcome: Ok("u1".into()) }
        ]
    );
    s.user_arrived("u1");
    assert!(effects(&mut s).is_empty(), "settled once");
}

#[test]
fn the_wait_for_the_user_document_is_bounded() {
    let mut s = LoginState::default();
    assert_eq!(s.user_wait(), DEFAULT_USER_WAIT_MS);
    let a = s.begin(AttemptKind::App, None);
    s.done(a, ok("u1", "T1"), NOW);
    effects(&mut s);
    assert_eq!(s.poll_timeout(), Some(NOW + DEFAULT_USER_WAIT_MS));
    s.handle_timeout(NOW + DEFAULT_USER_WAIT_MS - 1.0);
    assert!(effects(&mut s).is_empty() && s.user_id().is_none(), "not yet");
    s.handle_timeout(NOW + DEFAULT_USER_WAIT_MS);
    assert_eq!(s.user_id(), Some("u1"), "past the bound: logged in without the document");
    assert!(!s.logging_in());
    assert_eq!(effects(&mut s).last(), Some(&Effect::Settle { attempts: vec![a], outcome: Ok("u1".into()) }));
    assert_eq!(s.poll_timeout(), None);
    s.user_arrived("u1");
    assert!(effects(&mut s).is_empty(), "the late document settles nothing again");
    // A wait of 0 settles with the result, as before.
    let mut s = LoginState::default();
    s.set_user_wait(0.0);
    let a = s.begin(AttemptKind::App, None);
    s.done(a, ok("u1", "T1"), NOW);
    assert_eq!(s.user_id(), Some("u1"));
    assert!(effects(&mut s).contains(&Effect::Settle { attempts: vec![a], outcome: Ok("u1".into()) }));
    s.set_user_wait(f64::NAN);
    assert_eq!(s.user_wait(), 0.0);
    s.set_user_wait(-5.0);
    assert_eq!(s.user_wait(), 0.0);
}

#[test]
fn a_login_waiting_for_its_document_shows_no_flicker_and_hands_over() {
    // Logged in as u1, a new login as u2 waits: u1 stays until u2 settles.
    let mut s = LoginState::default();
    log_in(&mut s);
    let b = s.begin(AttemptKind::App, None);
    s.done(b, ok("u2", "T2"), NOW);
    assert_eq!(s.user_id(), Some("u1"), "no logged-out gap while u2's document is on its way");
    s.user_arrived("u2");
    assert_eq!(s.user_id(), Some("u2"));
    effects(&mut s);
    // A login overtaken by the next one as the same user settles with it…
    let c = s.begin(AttemptKind::App, None);
    s.done(c, ok("u2", "T3"), NOW);
    let d = s.begin(AttemptKind::App, None);
    s.done(d, ok("u2", "T4"), NOW);
    assert!(!effects(&mut s).iter().any(|e| matches!(e, Effect::Settle { .. })));
    s.user_arrived("u2");
    assert_eq!(effects(&mut s).last(), Some(&Effect::Settle { attempts: vec![d, c], outcome: Ok("u2".into()) }));
    // …and as another user, when the next one ends.
    let c = s.begin(AttemptKind::App, None);
    s.done(c, ok("u3", "T3"), NOW);
    let d = s.begin(AttemptKind::App, None);
    s.done(d, ok("u4", "T4"), NOW);
    assert!(effects(&mut s).contains(&Effect::Settle { attempts: vec![c], outcome: Ok("u3".into()) }));
    assert_eq!(s.awaiting_user(), Some("u4"));
    assert!(s.logging_in());
    // A failed login meanwhile leaves the waiting one waiting (and logging in).
    let e = s.begin(AttemptKind::App, None);
    s.done(e, Err(forbidden("Something went wrong. Please check your credentials.")), NOW);
    assert!(s.logging_in());
    assert_eq!(s.awaiting_user(), Some("u4"));
    // Logged out while waiting: the login settles first, then the logout.
    s.logged_out();
    let e = effects(&mut s);
    let at = |x: &Effect| e.iter().position(|y| y == x);
    let settled = at(&Effect::Settle { attempts: vec![d], outcome: Ok("u4".into()) }).expect("settled");
    let out = at(&Effect::Emit(AccountsEvent::LoggedOut)).expect("logged out");
    assert!(settled < out, "{e:?}");
    assert_eq!((s.user_id(), s.logging_in(), s.pending()), (None, false, false));
}

#[test]
fn a_new_session_during_the_wait_hands_the_login_to_the_resume_login() {
    let mut s = LoginState::default();
    let a = s.begin(AttemptKind::App, None);
    s.result_received(a, &ok("u1", "T1"));
    s.done(a, ok("u1", "T1"), NOW);
    effects(&mut s);
    s.reconnected(NOW);
    let r = match &effects(&mut s)[..] {
        [Effect::ResumeLogin { attempt, token }] if token == "T1" => *attempt,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.awaiting_user(), None, "the resume login took over");
    assert!(s.logging_in());
    s.done(r, ok("u1", "T1"), NOW);
    assert!(!effects(&mut s).iter().any(|e| matches!(e, Effect::Settle { .. })));
    s.user_arrived("u1");
    assert_eq!(effects(&mut s).last(), Some(&Effect::Settle { attempts: vec![r, a], outcome: Ok("u1".into()) }));
    // And if the resume login is refused, the waiting login fails with it.
    let mut s = LoginState::default();
    let a = s.begin(AttemptKind::App, None);
    s.result_received(a, &ok("u1", "T1"));
    s.done(a, ok("u1", "T1"), NOW);
    s.reconnected(NOW);
    let r = match &effects(&mut s)[..] {
        [.., Effect::ResumeLogin { attempt, .. }] => *attempt,
        other => panic!("{other:?}"),
    };
    let gone = forbidden("You've been logged out by the server. Please log in again.");
    s.done(r, Err(gone.clone()), NOW);
    assert_eq!(effects(&mut s).last(), Some(&Effect::Settle { attempts: vec![r, a], outcome: Err(gone) }));
    assert_eq!((s.user_id(), s.logging_in()), (None, false));
}

#[test]
fn a_wrong_password_rejects_and_leaves_the_user_alone() {
    let mut s = LoginState::default();
    log_in(&mut s);
    let b = s.begin(AttemptKind::App, None);
    s.done(b, Err(forbidden("Incorrect password")), NOW);
    assert_eq!(s.user_id(), Some("u1"), "a failed login does not log out");
    assert_eq!(
        effects(&mut s),
        vec![
            Effect::Emit(AccountsEvent::LoginFailed { error: forbidden("Incorrect password") }),
            Effect::Settle { attempts: vec![b], outcome: Err(forbidden("Incorrect password")) },
        ]
    );
    // The reconnect hook still logs in with the good token.
    s.reconnected(NOW);
    assert!(matches!(effects(&mut s)[..], [Effect::ResumeLogin { ref token, .. }] if token == "T1"));
}

#[test]
fn a_new_session_logs_in_again_and_a_rejected_token_logs_out() {
    let mut s = LoginState::default();
    s.reconnected(NOW);
    assert!(effects(&mut s).is_empty(), "never logged in: nothing to resume");
    log_in(&mut s);
    s.reconnected(NOW + 1000.0);
    let r = match &effects(&mut s)[..] {
        [Effect::ResumeLogin { attempt, token }] if token == "T1" => *attempt,
        other => panic!("expected a resume login, got {other:?}"),
    };
    assert!(!s.logging_in(), "a reconnect login shows no loggingIn");
    s.done(r, Err(forbidden("You've been logged out by the server. Please log in again.")), NOW);
    assert_eq!(s.user_id(), None);
    assert_eq!(s.stored(), None);
    let e = effects(&mut s);
    assert!(matches!(e[0], Effect::Emit(AccountsEvent::LoginFailed { .. })));
    assert_eq!(e[1..3], [Effect::Unstore, Effect::Emit(AccountsEvent::LoggedOut)]);
    s.reconnected(NOW);
    assert!(effects(&mut s).is_empty(), "logged out: no more resume logins (nothing retried in a loop)");
}

#[test]
fn an_expiring_token_is_never_sent() {
    let mut s = LoginState::default();
    let a = s.begin(AttemptKind::App, None);
    let soon = json!({"id": "u1", "token": "T1", "tokenExpires": {"$date": NOW + 60_000.0}});
    s.result_received(a, &Ok(Some(soon.clone())));
    s.done(a, Ok(Some(soon)), NOW);
    s.user_arrived("u1");
    effects(&mut s);
    s.reconnected(NOW);
    let e = effects(&mut s);
    assert!(!e.iter().any(|x| matches!(x, Effect::ResumeLogin { .. })), "{e:?}");
    assert_eq!(e, vec![Effect::Unstore, Effect::Emit(AccountsEvent::LoggedOut)]);
    // At start-up too.
    let mut s = LoginState::default();
    let old = StoredLogin { user_id: "u".into(), token: "T".into(), expires: Some(NOW - 1.0) };
    assert_eq!(s.restore(old, NOW), None);
    assert_eq!(effects(&mut s), vec![Effect::Unstore]);
    // An expiry that is unknown (missing, unreadable) is no reason not to
    // try the token, as in Meteor's client.
    let unknown = StoredLogin { user_id: "u".into(), token: "T".into(), expires: None };
    assert!(s.restore(unknown, NOW).is_some());
    let mut s = LoginState::default();
    let nan = StoredLogin { user_id: "u".into(), token: "T".into(), expires: Some(f64::NAN) };
    assert!(s.restore(nan, NOW).is_some());
}

#[test]
fn a_login_that_failed_here_keeps_the_stored_login() {
    // Closed, queue-full, timeout, cancelled: the client gave up, the server
    // never refused the token. The login stays stored and the user stays.
    for local in [MethodError::Closed, MethodError::QueueFull { limit: "maxPendingCalls" }, MethodError::Timeout, MethodError::Cancelled] {
        let mut s = LoginState::default();
        let good = StoredLogin { user_id: "u1".into(), token: "T1".into(), expires: Some(NOW + 1e9) };
        let (a, _) = s.restore(good.clone(), NOW).expect("a restore login");
        s.done(a, Err(local.clone()), NOW);
        let e = effects(&mut s);
        assert!(!e.contains(&Effect::Unstore) && !e.contains(&Effect::Emit(AccountsEvent::LoggedOut)), "{local:?}: {e:?}");
        assert_eq!(s.stored(), Some(&good));
        // And a reconnect login that failed here.
        let mut s = LoginState::default();
        log_in(&mut s);
        s.reconnected(NOW + 1000.0);
        let r = match &effects(&mut s)[..] {
            [Effect::ResumeLogin { attempt, .. }] => *attempt,
            other => panic!("expected a resume login, got {other:?}"),
        };
        s.done(r, Err(local.clone()), NOW);
        let e = effects(&mut s);
        assert!(!e.contains(&Effect::Unstore) && !e.contains(&Effect::Emit(AccountsEvent::LoggedOut)), "{local:?}: {e:?}");
        assert_eq!(s.user_id(), Some("u1"));
    }
}

#[test]
fn a_restored_login_shows_the_user_at_once_and_its_failure_logs_out() {
    let mut s = LoginState::default();
    let good = StoredLogin { user_id: "u1".into(), token: "T1".into(), expires: Some(NOW + 1e9) };
    let (a, token) = s.restore(good, NOW).expect("a login with the stored token");
    assert_eq!(token, "T1");
    assert_eq!(s.user_id(), Some("u1"));
    assert!(s.logging_in());
    s.done(a, Err(forbidden("Your session has expired. Please log in again.")), NOW);
    assert_eq!(s.user_id(), None);
    let e = effects(&mut s);
    assert!(e.contains(&Effect::Unstore) && e.contains(&Effect::Emit(AccountsEvent::LoggedOut)), "{e:?}");
}

#[test]
fn a_login_replaced_by_a_new_session_settles_with_the_resume_login() {
    let mut s = LoginState::default();
    let a = s.begin(AttemptKind::App, None);
    s.result_received(a, &ok("u1", "T1"));
    // The link drops before `updated`: the new session's hook takes over.
    s.reconnected(NOW);
    let r = match &effects(&mut s)[..] {
        [Effect::ResumeLogin { attempt, .. }] => *attempt,
        other => panic!("{other:?}"),
    };
    s.done(a, ok("u1", "T1"), NOW);
    assert!(effects(&mut s).is_empty(), "the replaced login waits for the resume login");
    s.done(r, ok("u1", "T1"), NOW);
    s.user_arrived("u1");
    let e = effects(&mut s);
    assert_eq!(e.last(), Some(&Effect::Settle { attempts: vec![r, a], outcome: Ok("u1".into()) }));
    assert!(!s.logging_in());
}

#[test]
fn logout_and_new_tokens() {
    let mut s = LoginState::default();
    log_in(&mut s);
    s.new_token(ok("u1", "T2").unwrap().as_ref(), NOW);
    assert_eq!(s.stored().map(|x| x.token.as_str()), Some("T2"));
    s.reconnected(NOW);
    assert!(matches!(&effects(&mut s)[..], [Effect::Store(_), Effect::ResumeLogin { token, .. }] if token == "T2"));
    s.logged_out();
    assert_eq!(s.user_id(), None);
    assert_eq!(effects(&mut s), vec![Effect::Unstore, Effect::Emit(AccountsEvent::LoggedOut)]);
    s.logged_out();
    assert_eq!(effects(&mut s), vec![Effect::Unstore], "no second loggedOut event");
}

// ---------------------------------------------------------------------------
// The ordering, against the real method queue and a simulated server,
// across random drops: the login goes first, then the queued calls, and a
// new session logs in again before any of them.

/// A server that runs methods as the session's user.
#[derive(Default)]
struct Server {
    session: Option<String>,
    user: Option<String>,
    sessions: u32,
    seen: std::collections::HashSet<String>,
    /// From the client, not yet handled.
    inbox: VecDeque<Value>,
    /// To the client, not yet delivered (replayed on resumption).
    outbox: VecDeque<String>,
    /// (method, user it ran as, session).
    log: Vec<(String, Option<String>, String)>,
}

impl Server {
    fn handle(&mut self) {
        let Some(m) = self.inbox.pop_front() else { return };
        let id = m["id"].as_str().unwrap_or_default().to_owned();
        if !self.seen.insert(id.clone()) {
            return;
        }
        let name = m["method"].as_str().unwrap_or_default().to_owned();
        let session = self.session.clone().unwrap_or_default();
        self.log.push((name.clone(), self.user.clone(), session));
        let p = &m["params"][0];
        let mut published = None;
        let result = match name.as_str() {
            "login" if p.get("password").is_some() || p["resume"] == "T1" => {
                if self.user.replace("u1".into()).is_some() {
                    self.outbox.push_back(json!({"msg": "removed", "collection": "users", "id": "u1"}).to_string());
                }
                published = Some(json!({"msg": "added", "collection": "users", "id": "u1", "fields": {"username": "ada"}}));
                json!({"result": {"id": "u1", "token": "T1", "tokenExpires": {"$date": NOW + TOKEN_LIFETIME_MS}}})
            }
            "login" => json!({"error": {"error": 403, "reason": "You've been logged out by the server. Please log in again."}}),
            _ => json!({ "result": self.user }),
        };
        let mut r = json!({"msg": "result", "id": id});
        for (k, v) in result.as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        // As Meteor 3.0.4: `updated`, `result`, then the user's document.
        self.outbox.push_back(json!({"msg": "updated", "methods": [id]}).to_string());
        self.outbox.push_back(r.to_string());
        self.outbox.extend(published.map(|p| p.to_string()));
    }
}

/// The client: the method queue and the login state, glued as the
/// driver glues them.
struct Client {
    m: Machine,
    login: LoginState,
    now: f64,
    socket: Option<u64>,
    /// Call id → login attempt.
    logins: BTreeMap<u64, u64>,
    /// whoami call id → its answer.
    answers: BTreeMap<u64, Option<Value>>,
    events: Vec<AccountsEvent>,
    /// The user id after every step (it must never flicker).
    seen_ids: Vec<Option<String>>,
    /// Settled logins: (attempts, outcome, whether the user's document was in the store).
    settled: Vec<(Vec<u64>, Result<String, MethodError>, bool)>,
}

impl Client {
    fn pump(&mut self, server: &mut Server) {
        while let Some(o) = self.m.poll_output() {
            match o {
                Output::OpenSocket { socket } => self.socket = Some(socket),
                Output::CloseSocket { .. } => {}
                Output::Send { text, .. } => {
                    let v: Value = serde_json::from_str(&text).expect("JSON");
                    match v["msg"].as_str() {
                        Some("connect") => {
                            let resume = v["session"].as_str().filter(|s| Some(*s) == server.session.as_deref());
                            if resume.is_none() {
                                server.sessions += 1;
                                server.session = Some(format!("S{}", server.sessions));
                                server.user = None;
                                server.seen.clear();
                                server.inbox.clear();
                                server.outbox.clear();
                            }
                            let s = server.session.clone().unwrap_or_default();
                            server.outbox.push_front(json!({"msg": "connected", "session": s}).to_string());
                        }
                        Some("method") => server.inbox.push_back(v),
                        _ => {}
                    }
                }
                Output::Done(Completion::MethodResult { id, outcome }) => {
                    if let Some(a) = self.logins.get(&id) {
                        self.login.result_received(*a, &outcome);
                    }
                }
                Output::Done(Completion::MethodDone { id, outcome }) => {
                    if let Some(a) = self.logins.remove(&id) {
                        self.login.done(a, outcome, self.now);
                    } else if let Ok(v) = outcome {
                        self.answers.insert(id, v);
                    }
                }
                Output::Event(_) | Output::Done(_) => {}
                Output::RunReconnectHooks => {
                    self.login.reconnected(self.now);
                    self.effects();
                    self.m.reconnect_hooks_done();
                }
            }
            // As the driver: the awaited document is in the store.
            if let Some(u) = self.login.awaiting_user().map(str::to_owned) {
                if self.m.store().get("users", &u).is_some() {
                    self.login.user_arrived(&u);
                }
            }
            self.effects();
        }
        self.seen_ids.push(self.login.user_id().map(str::to_owned));
    }

    fn effects(&mut self) {
        while let Some(e) = self.login.poll_effect() {
            match e {
                Effect::ResumeLogin { attempt, token } => {
                    let opts = CallOptions { wait: true, ..CallOptions::default() };
                    let id = self.m.call("login", resume_login_params(&token), opts, self.now).expect("queued");
                    self.logins.insert(id, attempt);
                }
                Effect::Emit(ev) => self.events.push(ev),
                Effect::Settle { attempts, outcome } => {
                    let doc = outcome.as_ref().is_ok_and(|u| self.m.store().get("users", u).is_some());
                    self.settled.push((attempts, outcome, doc));
                }
                _ => {}
            }
        }
    }

    fn deliver(&mut self, server: &mut Server) {
        if let (Some(s), Some(text)) = (self.socket, server.outbox.pop_front()) {
            self.m.handle_frame(s, &text, self.now);
            self.pump(server);
        }
    }

    fn drop_link(&mut self, server: &mut Server, resume: bool) {
        if let Some(s) = self.socket.take() {
            self.m.handle_close(s, 1006, self.now);
            self.pump(server);
        }
        server.inbox.clear();
        if !resume {
            server.session = None; // the server ends it: a new session next time
        }
        // The retry.
        let t = self.m.poll_timeout().expect("a retry is scheduled");
        self.now = self.now.max(t);
        self.m.handle_timeout(self.now);
        self.pump(server);
        if let Some(s) = self.socket {
            self.m.handle_open(s, self.now);
            self.pump(server);
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Call,
    Serve,
    Deliver,
    Drop { resume: bool },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        2 => Just(Step::Call),
        4 => Just(Step::Serve),
        5 => Just(Step::Deliver),
        1 => any::<bool>().prop_map(|resume| Step::Drop { resume }),
    ]
}

type Log = Vec<(String, Option<String>, String)>;

fn run(steps: Vec<Step>, resumable: bool) -> Result<Log, proptest::test_runner::TestCaseError> {
    use proptest::prelude::*;
    let config = Config { heartbeat_interval_ms: 0.0, resume_sessions: resumable, ..Config::default() };
    let mut seed = 7u64;
    let random = Box::new(move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    });
    let mut c = Client {
        m: Machine::new(config, random),
        login: LoginState::default(),
        now: NOW,
        socket: None,
        logins: BTreeMap::new(),
        answers: BTreeMap::new(),
        events: Vec::new(),
        seen_ids: Vec::new(),
        settled: Vec::new(),
    };
    let mut server = Server::default();
    c.m.start(c.now);
    c.pump(&mut server);
    // The login is made first (perhaps before the link is even up)…
    let attempt = c.login.begin(AttemptKind::App, None);
    let wait = CallOptions { wait: true, ..CallOptions::default() };
    let id = c.m.call("login", password_login_params(&"ada".into(), "pw"), wait, c.now).expect("queued");
    c.logins.insert(id, attempt);
    if let Some(s) = c.socket {
        c.m.handle_open(s, c.now);
        c.pump(&mut server);
    }
    let mut calls = Vec::new();
    for st in steps {
        match st {
            // …and calls made afterwards, at any time.
            Step::Call => calls.push(c.m.call("whoami", vec![], CallOptions::default(), c.now).expect("queued")),
            Step::Serve => server.handle(),
            Step::Deliver => c.deliver(&mut server),
            Step::Drop { resume } => c.drop_link(&mut server, resume && resumable),
        }
        c.pump(&mut server);
    }
    // Then the link stays up until everything is answered.
    for _ in 0..10_000 {
        if server.inbox.is_empty() && server.outbox.is_empty() && c.m.outbox().queued + c.m.outbox().in_flight == 0 {
            break;
        }
        server.handle();
        c.deliver(&mut server);
        c.pump(&mut server);
    }
    // Every call ran as the user, and answered so.
    for (name, user, session) in &server.log {
        if name != "login" {
            prop_assert_eq!(user.as_deref(), Some("u1"), "{} ran logged out in session {}: {:?}", name, session, server.log);
        }
    }
    for id in &calls {
        prop_assert_eq!(c.answers.get(id), Some(&Some(json!("u1"))), "call {} answered {:?}", id, c.answers.get(id));
    }
    // In every session that ran anything, a login ran first.
    let mut first_in_session: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, _, session) in &server.log {
        first_in_session.entry(session.as_str()).or_insert(name.as_str());
    }
    for (session, first) in &first_in_session {
        prop_assert_eq!(*first, "login", "session {} began with {}", session, first);
    }
    prop_assert_eq!(c.login.user_id(), Some("u1"));
    prop_assert!(!c.login.logging_in());
    // The app's login settled once, logged in, and every login (the
    // re-logins of new sessions too) settled with the user's document in the store.
    prop_assert_eq!(c.settled.iter().filter(|(a, ..)| a.contains(&attempt)).count(), 1, "{:?}", c.settled);
    prop_assert!(c.settled.iter().all(|(_, o, doc)| o.as_deref() == Ok("u1") && *doc), "{:?}", c.settled);
    // The user id never went back to none once set (no flicker).
    let first = c.seen_ids.iter().position(Option::is_some).unwrap_or(c.seen_ids.len());
    prop_assert!(c.seen_ids[first..].iter().all(|u| u.as_deref() == Some("u1")), "{:?}", c.seen_ids);
    prop_assert!(!c.events.iter().any(|e| matches!(e, AccountsEvent::LoginFailed { .. } | AccountsEvent::LoggedOut)), "{:?}", c.events);
    Ok(server.log)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Against a server without resumption: every drop is a new session.
    #[test]
    fn login_goes_first_then_queued_calls_across_new_sessions(steps in proptest::collection::vec(step(), 1..80)) {
        run(steps, false)?;
    }

    /// With resumption (and some drops that the server does not resume).
    #[test]
    fn login_goes_first_then_queued_calls_across_resumed_and_new_sessions(steps in proptest::collection::vec(step(), 1..80)) {
        run(steps, true)?;
    }
}

#[test]
fn a_resumed_session_sends_no_login_again() {
    // Logged in, a call, a resumed drop, another call: one login in all.
    let steps = vec![Step::Deliver, Step::Serve, Step::Deliver, Step::Deliver, Step::Call, Step::Drop { resume: true }, Step::Call];
    let log = run(steps.clone(), true).expect("ordering holds");
    let names: Vec<&str> = log.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, ["login", "whoami", "whoami"]);
    // The same history without resumption logs in again in the new session,
    // before the re-sent call (which S1 never ran).
    let log = run(steps, false).expect("ordering holds");
    let names: Vec<&str> = log.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, ["login", "login", "whoami", "whoami"]);
}
