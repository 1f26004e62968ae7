//! Accounts hooks: [`use_user_id`], [`use_user`] and [`use_logging_in`],
//! reactive like Meteor's `Meteor.userId()` / `Meteor.user()` /
//! `Meteor.loggingIn()`, for the provided connection (or, with the `*_of`
//! forms, for given [`Accounts`]).
//!
//! ```no_run
//! use leptos::prelude::*;
//! use ddp_live::leptos::{use_user, use_user_id};
//!
//! #[component]
//! fn Greeting() -> impl IntoView {
//!     let user_id = use_user_id();
//!     let user = use_user();
//!     view! {
//!         <Show when=move || user_id.get().is_some() fallback=|| "Not logged in">
//!             "Hello, " {move || user.get().and_then(|u| u["username"].as_str().map(str::to_owned))}
//!         </Show>
//!     }
//! }
//! ```
//!
//! The signals follow the connection's one user id (the same observable the
//! futures-signals signal and the JavaScript `onUserIdChange` read); their
//! listeners go when the owner that made them is cleaned up.

use super::{keep_until_cleanup, signal_from, use_connection};
use crate::Accounts;
use leptos::prelude::*;
use serde_json::Value;

/// The logged-in user's id of the provided connection (`None` while logged out).
///
/// In a server render (feature `ssr`): the user the request's login token
/// logged in (the token comes from a cookie the app sets; see
/// [`SsrClient::request`](super::ssr::SsrClient::request)).
///
/// In a page hydrated from a server render, the user the server rendered
/// for stands in until the browser's own login settles (its first login
/// or logout event, or a user id of its own), so the first render is the
/// server's; resume the same login in the browser (`persist_login`, or
/// `login_with_token` with the cookie's token).
pub fn use_user_id() -> Signal<Option<String>> {
    on_server!(request => Signal::derive(move || request.user_id()));
    let accounts = use_connection().accounts();
    let live = user_id_of(&accounts);
    match rendered_user(&accounts) {
        Some((rendered, settled)) => {
            Signal::derive(move || if settled.get() { live.get() } else { live.get().or_else(|| Some(rendered.clone())) })
        }
        None => live,
    }
}

/// The user the server rendered for, and a signal that turns true once
/// the browser's accounts settled: a login or logout event, or a user id
/// of their own (when there is such a user).
fn rendered_user(accounts: &Accounts) -> Option<(String, ArcRwSignal<bool>)> {
    let rendered = use_context::<super::live::RenderedUser>()?.0;
    let settled = ArcRwSignal::new(accounts.user_id().is_some());
    let (s1, s2) = (settled.clone(), settled.clone());
    let on_event = accounts.on_event(move |_| s1.set(true));
    let on_change = accounts.user_id_observable().subscribe(move |_| s2.set(true));
    keep_until_cleanup((on_event, on_change));
    Some((rendered, settled))
}

/// True while a login the app asked for runs (provided connection).
pub fn use_logging_in() -> Signal<bool> {
    on_server!(_ => Signal::stored(false));
    logging_in_of(&use_connection().accounts())
}

/// The current user's document of the provided connection (see [`user_of`]).
pub fn use_user() -> Signal<Option<Value>> {
    on_server!(request => Signal::derive(move || request.user_id().and_then(|id| request.document("users", &id))));
    let accounts = use_connection().accounts();
    let live = user_of(&accounts);
    match rendered_user(&accounts) {
        Some((rendered, settled)) => {
            // The rendered user's document is in the cache the page seeded.
            let seeded = super::use_doc("users", rendered);
            Signal::derive(move || if settled.get() { live.get() } else { live.get().or_else(|| seeded.get()) })
        }
        None => live,
    }
}

/// The logged-in user's id (`None` while logged out).
pub fn user_id_of(accounts: &Accounts) -> Signal<Option<String>> {
    signal_from(accounts.user_id_observable())
}

/// True while a login the app asked for runs.
pub fn logging_in_of(accounts: &Accounts) -> Signal<bool> {
    signal_from(accounts.logging_in_observable())
}

/// The current user's document (`_id`, `username`, `emails`, `profile`),
/// `None` while logged out or until it arrived; follows logins, logouts and
/// changes to the document.
pub fn user_of(accounts: &Accounts) -> Signal<Option<Value>> {
    let signal = ArcRwSignal::new(accounts.user());
    let (w1, a1) = (signal.clone(), accounts.clone());
    let on_login = accounts.user_id_observable().subscribe(move |_| w1.set(a1.user()));
    let (w2, a2) = (signal.clone(), accounts.clone());
    let on_change = accounts.users().on_change(move |change| {
        if a2.user_id().as_deref() == Some(change.id()) {
            w2.set(a2.user());
        }
    });
    keep_until_cleanup((on_login, on_change));
    Signal::from(signal.read_only())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Collection, Mirror};
    use crate::protocol::store::Store;
    use serde_json::json;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn the_hooks_follow_login_logout_and_the_document_and_go_with_their_owner() {
        let store = Rc::new(RefCell::new(Store::default()));
        let s = store.clone();
        let mirror = Rc::new(Mirror::new("users", Box::new(move |f| f(&s.borrow()))));
        let accounts = Accounts::detached(Collection::new("users".into(), mirror.clone()));
        let apply = |write: &dyn Fn(&mut Store) -> Option<crate::Change>| {
            let change = write(&mut store.borrow_mut()).expect("a change");
            mirror.apply(&change);
        };
        let fields = |v: Value| v.as_object().cloned().unwrap_or_default();

        let owner = Owner::new();
        let (user_id, user) = owner.with(|| (user_id_of(&accounts), user_of(&accounts)));
        assert_eq!(user_id.get_untracked(), None);
        assert_eq!(user.get_untracked(), None);
        assert_eq!(accounts.user_id_observable().listener_count(), 2);

        // Logged in: the id at once, the document when it arrives.
        accounts.set_user_id_for_test(Some("u1"));
        assert_eq!(user_id.get_untracked(), Some("u1".into()));
        assert_eq!(user.get_untracked(), None);
        apply(&|s| s.added("users".into(), "u1".into(), fields(json!({"username": "ada"}))));
        assert_eq!(user.get_untracked(), Some(json!({"_id": "u1", "username": "ada"})));
        apply(&|s| s.changed("users".into(), "u1".into(), fields(json!({"profile": {"a": 1}})), vec![]));
        assert_eq!(user.get_untracked().unwrap()["profile"], json!({"a": 1}));
        // Another user's document is not the user.
        apply(&|s| s.added("users".into(), "u2".into(), fields(json!({"username": "bob"}))));
        assert_eq!(user.get_untracked().unwrap()["username"], "ada");
        // Logged out: both go, even before the document is removed.
        accounts.set_user_id_for_test(None);
        assert_eq!(user_id.get_untracked(), None);
        assert_eq!(user.get_untracked(), None);

        // The component goes: its listeners go with it.
        drop(owner);
        assert_eq!(accounts.user_id_observable().listener_count(), 0);
    }
}
