//! End-to-end tests of accounts against the real test server, which serves
//! Meteor's accounts methods and the current-user document: in headless
//! Chromium and natively; natively also against Meteor's own accounts
//! server (the fixture).
#![cfg(any(target_arch = "wasm32", feature = "native"))]
// The size rules of clippy.toml are for the shipped wasm, not its tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;
use ddp_live::{connect, AccountsEvent, Connection, NewUser};
use futures_signals::signal::SignalExt;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A user `name` with password "pw" in scenario `sc`; returns its id.
async fn user(sc: &str, name: &str) -> String {
    let r = control(sc, &format!("accounts?op=create&username={name}&email={name}@example.com&password=pw")).await;
    r["id"].as_str().expect("a user id").to_owned()
}

/// The server's method log: (method, user id it ran as, session).
async fn log(sc: &str) -> Vec<(String, Option<String>, String)> {
    let v = control(sc, "accounts?op=log").await;
    v.as_array()
        .expect("a log")
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap_or_default().to_owned(),
                e["userId"].as_str().map(str::to_owned),
                e["session"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn events(conn: &Connection) -> Rc<RefCell<Vec<AccountsEvent>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    conn.accounts().on_event(move |e| s.borrow_mut().push(e.clone())).forget();
    seen
}

#[cfg(target_arch = "wasm32")]
fn local_storage() -> web_sys::Storage {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten()).expect("localStorage")
}

// Browser-only: compares with the browser's own `crypto.subtle`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
async fn sha256_matches_the_browsers_crypto_subtle() {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let digest = js_sys::Function::new_with_args(
        "s",
        "return crypto.subtle.digest('SHA-256', new TextEncoder().encode(s))\
           .then(b => Array.from(new Uint8Array(b), x => x.toString(16).padStart(2, '0')).join(''))",
    );
    let long = "x".repeat(10_000);
    for s in ["", "abc", "pässwörd ✓ 🔑", &"a".repeat(55), &"a".repeat(56), &"a".repeat(64), &long] {
        let p: js_sys::Promise = digest.call1(&wasm_bindgen::JsValue::NULL, &s.into()).unwrap().unchecked_into();
        let browser = JsFuture::from(p).await.unwrap().as_string().unwrap();
        assert_eq!(ddp_live::protocol::sha256::hex(s.as_bytes()), browser, "for {s:?}");
    }
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn login_sets_the_user_id_and_the_user_document_arrives() {
    let sc = scenario("acc-login");
    let id = user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let accounts = conn.accounts();
    let seen = events(&conn);
    // Whoever sees the user id set finds the user's document (the server
    // sends it after the result, as Meteor does).
    let with_doc = Rc::new(RefCell::new(Vec::new()));
    let (w, a) = (with_doc.clone(), accounts.clone());
    let _watch = accounts.user_id_observable().subscribe(move |id| w.borrow_mut().push((id.clone(), a.user().is_some())));
    assert_eq!(accounts.user_id(), None);
    let login = accounts.login_with_password("ada", "pw");
    assert!(accounts.logging_in());
    assert_eq!(login.await, Ok(id.clone()));
    assert_eq!(*with_doc.borrow(), vec![(Some(id.clone()), true)], "set once, with the document in");
    assert!(!accounts.logging_in());
    assert_eq!(accounts.user_id(), Some(id.clone()));
    let doc = accounts.user().expect("the user document");
    assert_eq!(doc, json!({"_id": id, "username": "ada", "emails": [{"address": "ada@example.com", "verified": false}]}));
    assert_eq!(*seen.borrow(), vec![AccountsEvent::LoggedIn { user_id: id.clone() }]);
    // The same login by email, and by id; methods run as the user.
    assert_eq!(accounts.login_with_password("ada@example.com", "pw").await, Ok(id.clone()));
    let by_id = ddp_live::UserSelector::Id(id.clone());
    assert_eq!(accounts.login_with_password(by_id, "pw").await, Ok(id.clone()));
    assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(Some(id)));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_wrong_password_is_a_403_and_the_user_id_stays_null() {
    let sc = scenario("acc-wrong");
    user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let accounts = conn.accounts();
    let seen = events(&conn);
    // Meteor 3.0.4's default: one ambiguous text for both.
    let ambiguous = "Something went wrong. Please check your credentials.".to_string();
    let e = accounts.login_with_password("ada", "nope").await.unwrap_err();
    assert_eq!((e.error(), e.reason()), (json!(403), ambiguous.clone()));
    let e = accounts.login_with_password("bob", "pw").await.unwrap_err();
    assert_eq!((e.error(), e.reason()), (json!(403), ambiguous));
    assert_eq!(accounts.user_id(), None);
    assert!(!accounts.logging_in());
    assert!(conn.collection("users").is_empty());
    assert_eq!(seen.borrow().len(), 2);
    assert!(seen.borrow().iter().all(|e| matches!(e, AccountsEvent::LoginFailed { .. })));
    // The password never went out in clear: the server stored bcrypt of the digest.
    let users = control(&sc, "accounts?op=users").await;
    assert!(users[0]["bcrypt"].as_str().unwrap().starts_with("$2"));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn calls_made_while_login_is_in_flight_run_after_it() {
    let sc = scenario("acc-wait");
    let id = user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    wait_connected(&conn).await;
    let login = conn.accounts().login_with_password("ada", "pw");
    let who = conn.call::<Option<String>>("whoami", ());
    // The login is a wait method: the call is held back until it completes.
    assert_eq!(conn.outbox(), ddp_live::Outbox { queued: 1, in_flight: 1 });
    assert_eq!(who.await, Ok(Some(id.clone())));
    assert_eq!(login.await, Ok(id));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn after_a_drop_without_resumption_a_queued_call_runs_logged_in() {
    let sc = scenario("acc-drop");
    let id = user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let accounts = conn.accounts();
    accounts.login_with_password("ada", "pw").await.unwrap();
    let first = conn.id().expect("a session");
    control(&sc, "resume?on=false").await;
    control(&sc, "drop").await;
    wait_status(&conn, 5_000, "the drop noticed", |s| !s.connected).await;
    // Queued while offline: it goes out after the re-login.
    let who = conn.call::<Option<String>>("whoami", ());
    assert_eq!(who.await, Ok(Some(id.clone())));
    let second = conn.id().expect("a session");
    assert_ne!(first, second, "a new session");
    assert!(!conn.resumed());
    let in_second: Vec<(String, Option<String>)> =
        log(&sc).await.into_iter().filter(|(_, _, s)| *s == second).map(|(m, u, _)| (m, u)).collect();
    assert_eq!(in_second, vec![("login".into(), None), ("whoami".into(), Some(id.clone()))]);
    assert_eq!(accounts.user_id(), Some(id));
    assert!(accounts.user().is_some(), "the user document is back");
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_resumed_session_sends_nothing_again() {
    let sc = scenario("acc-resume");
    let id = user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    conn.accounts().login_with_password("ada", "pw").await.unwrap();
    let before = log(&sc).await.len();
    control(&sc, "drop").await;
    wait_status(&conn, 5_000, "the drop noticed", |s| !s.connected).await;
    assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(Some(id)));
    assert!(conn.resumed());
    let after: Vec<String> = log(&sc).await.into_iter().skip(before).map(|(m, ..)| m).collect();
    assert_eq!(after, vec!["whoami"], "no login re-sent in a resumed session");
    conn.close();
}

// Browser-only: the login persists in the page's `localStorage`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
async fn a_new_connection_logs_in_with_the_stored_token_and_an_expired_one_is_never_sent() {
    use ddp_live::PersistLogin;
    use serde_json::Value;
    let sc = scenario("acc-persist");
    let id = user(&sc, "ada").await;
    let url = ws_url(&sc);
    let storage = local_storage();
    let first = connect(&url, fast()).unwrap();
    assert!(!first.accounts().persist_login(PersistLogin::ConnectUrl), "nothing stored yet");
    first.accounts().login_with_password("ada", "pw").await.unwrap();
    // Meteor's keys, with Meteor's per-URL suffix.
    let token = storage.get_item(&format!("Meteor.loginToken:{url}")).unwrap().expect("the token is stored");
    assert_eq!(storage.get_item(&format!("Meteor.userId:{url}")).unwrap(), Some(id.clone()));
    let expires = storage.get_item(&format!("Meteor.loginTokenExpires:{url}")).unwrap().expect("its expiry");
    let in_90_days = js_sys::Date::now() + 90.0 * 86_400_000.0;
    assert!((js_sys::Date::parse(&expires) - in_90_days).abs() < 120_000.0, "{expires}");
    assert_eq!(storage.get_item("Meteor.loginToken").unwrap(), None, "not the page's own app's key");
    let hashed = control(&sc, "accounts?op=users").await[0]["hashedTokens"][0].clone();
    assert_ne!(hashed, json!(token), "the server keeps it hashed");

    // A new connection (a reloaded page): logged in without a password.
    let second = connect(&url, fast()).unwrap();
    let accounts = second.accounts();
    assert!(accounts.persist_login(PersistLogin::ConnectUrl));
    assert_eq!(accounts.user_id(), Some(id.clone()), "shown at once, as Meteor does");
    wait_until(5_000, "the resume login", || !accounts.logging_in()).await;
    assert_eq!(accounts.user_id(), Some(id.clone()));
    assert_eq!(second.call::<Option<String>>("whoami", ()).await, Ok(Some(id.clone())));
    assert_eq!(accounts.token(), Some(token.clone()));

    // An expired stored token is removed and never sent.
    storage.set_item(&format!("Meteor.loginTokenExpires:{url}"), "Thu Jan 01 2000 00:00:00 GMT+0000").unwrap();
    let logins = log(&sc).await.iter().filter(|(m, ..)| m == "login").count();
    let third = connect(&url, fast()).unwrap();
    assert!(!third.accounts().persist_login(PersistLogin::ConnectUrl));
    assert_eq!(third.accounts().user_id(), None);
    assert_eq!(storage.get_item(&format!("Meteor.loginToken:{url}")).unwrap(), None);
    wait_connected(&third).await;
    third.call::<Value>("echo", 1).await.unwrap();
    assert_eq!(log(&sc).await.iter().filter(|(m, ..)| m == "login").count(), logins);
    for c in [first, second, third] {
        c.close();
    }
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn a_token_revoked_on_the_server_logs_out_with_the_event() {
    let sc = scenario("acc-revoke");
    let id = user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let accounts = conn.accounts();
    let seen = events(&conn);
    accounts.login_with_password("ada", "pw").await.unwrap();
    control(&sc, "accounts?op=revoke&user=ada").await;
    wait_until(5_000, "logged out", || accounts.user_id().is_none()).await;
    wait_until(2_000, "the loggedOut event", || seen.borrow().contains(&AccountsEvent::LoggedOut)).await;
    let failed = seen.borrow().iter().find_map(|e| match e {
        AccountsEvent::LoginFailed { error } => Some(error.reason()),
        _ => None,
    });
    assert_eq!(failed.as_deref(), Some("You've been logged out by the server. Please log in again."));
    assert_eq!(seen.borrow()[0], AccountsEvent::LoggedIn { user_id: id });
    assert_eq!(accounts.token(), None);
    assert!(conn.collection("users").is_empty());
    // Nothing retried in a loop: no more logins.
    let logins = log(&sc).await.iter().filter(|(m, ..)| m == "login").count();
    sleep(300).await;
    assert_eq!(log(&sc).await.iter().filter(|(m, ..)| m == "login").count(), logins);
    assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(None));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn logout_clears_the_user_id_and_the_user_document() {
    let sc = scenario("acc-logout");
    user(&sc, "ada").await;
    let conn = connect(&ws_url(&sc), fast()).unwrap();
    let accounts = conn.accounts();
    let seen = events(&conn);
    let ids = Rc::new(RefCell::new(Vec::new()));
    let i = ids.clone();
    accounts.user_id_observable().subscribe(move |v| i.borrow_mut().push(v.clone())).forget();
    // The futures-signals signal of the user document.
    let docs = Rc::new(RefCell::new(Vec::new()));
    let d = docs.clone();
    spawn_local(accounts.user_signal().for_each(move |doc| {
        d.borrow_mut().push(doc.map(|u| u["username"].clone()));
        async {}
    }));
    let id = accounts.login_with_password("ada", "pw").await.unwrap();
    assert!(accounts.user().is_some());
    accounts.logout().await.unwrap();
    assert_eq!(accounts.user_id(), None);
    assert_eq!(accounts.user(), None);
    assert!(conn.collection("users").find_one(&id).is_none(), "the document is removed");
    assert_eq!(*ids.borrow(), vec![Some(id.clone()), None]);
    // The futures-signals signal is polled by its own task: wait for it.
    wait_until(2_000, "the user signal to see the logout", || docs.borrow().len() >= 3).await;
    assert_eq!(*docs.borrow(), vec![None, Some(json!("ada")), None]);
    assert_eq!(seen.borrow().last(), Some(&AccountsEvent::LoggedOut));
    assert_eq!(conn.call::<Option<String>>("whoami", ()).await, Ok(None));
    conn.close();
}

#[wasm_bindgen_test(unsupported = tokio::test(crate = "common::local_set"))]
async fn create_user_logs_in_and_logout_other_clients_closes_the_others() {
    let (sc, a) = open("acc-create");
    let new = NewUser { username: Some("cy".into()), password: "pw".into(), profile: Some(json!({"name": "Cy"})), ..NewUser::default() };
    let id = a.accounts().create_user(new).await.unwrap();
    assert_eq!(a.accounts().user().unwrap()["profile"], json!({"name": "Cy"}));
    let b = connect(&ws_url(&sc), fast()).unwrap();
    let b_events = events(&b);
    b.accounts().login_with_password("cy", "pw").await.unwrap();
    let old = a.accounts().token();
    a.accounts().logout_other_clients().await.unwrap();
    assert_ne!(a.accounts().token(), old, "a new token for this client");
    wait_until(5_000, "the other client logged out", || b.accounts().user_id().is_none()).await;
    assert!(b_events.borrow().contains(&AccountsEvent::LoggedOut));
    assert_eq!(a.accounts().user_id(), Some(id.clone()));
    // This client's new token still works after a new session.
    control(&sc, "resume?on=false").await;
    control(&sc, "drop").await;
    wait_status(&a, 5_000, "the drop noticed", |s| !s.connected).await;
    assert_eq!(a.call::<Option<String>>("whoami", ()).await, Ok(Some(id)));
    a.close();
    b.close();
}

// Natively only (as in every file here): Meteor's accounts server is a Node
// process the test starts; the browser meets it in
// tests/js/meteor-accounts.test.mjs.
#[cfg(not(target_arch = "wasm32"))]
#[tokio::test(crate = "common::local_set")]
async fn against_meteor_create_user_log_in_and_out_and_a_token_revoked() {
    let Some((meteor, a)) = Meteor::open(Fixture::Accounts) else { return };
    let new = NewUser { username: Some("ada".into()), password: "pw".into(), ..NewUser::default() };
    let id = a.accounts().create_user(new).await.unwrap();
    assert_eq!(a.accounts().user(), Some(json!({"_id": id, "username": "ada"})), "Meteor's document in when it settles");
    let b = connect(&meteor.ws, fast()).unwrap();
    let ambiguous = "Something went wrong. Please check your credentials.".to_owned();
    let e = b.accounts().login_with_password("ada", "nope").await.unwrap_err();
    assert_eq!((e.error(), e.reason()), (json!(403), ambiguous));
    assert_eq!(b.accounts().user_id(), None);
    assert_eq!(b.accounts().login_with_password("ada", "pw").await, Ok(id.clone()));
    let who: serde_json::Value = b.call("whoami", ()).await.unwrap();
    assert_eq!(who, json!({"connectionId": b.id().unwrap(), "userId": id}));
    b.accounts().logout().await.unwrap();
    assert_eq!(b.accounts().user(), None);
    assert_eq!(b.call::<serde_json::Value>("whoami", ()).await.unwrap()["userId"], json!(null));
    // Revoked: Meteor closes a's connection, and its resume login is refused.
    let seen = events(&a);
    meteor.control(&format!("revoke?user={id}")).await;
    wait_until(10_000, "logged out by the server", || seen.borrow().contains(&AccountsEvent::LoggedOut)).await;
    let failed = seen.borrow().iter().find_map(|e| match e {
        AccountsEvent::LoginFailed { error } => Some((error.error(), error.reason())),
        _ => None,
    });
    assert_eq!(failed, Some((json!(403), "You've been logged out by the server. Please log in again.".to_owned())));
    assert_eq!(a.accounts().user_id(), None);
    a.close();
    b.close();
}
