//! Leptos signals for a connection (cargo feature `leptos`).
//!
//! ```ignore
//! use leptos::prelude::*;
//! use ddp_live::{connect, Options, ConnectionState};
//!
//! #[component]
//! fn ConnectionBadge() -> impl IntoView {
//!     let conn = connect("https://chat.example.com", Options::default()).expect("valid URL");
//!     let status = ddp_live::leptos::status_signal(&conn);
//!     view! {
//!         <span class=move || status.get().status.as_str()>
//!             {move || match status.get().status {
//!                 ConnectionState::Connected => "online".to_string(),
//!                 ConnectionState::Waiting => format!("retry #{} soon", status.get().retry_count),
//!                 other => other.to_string(),
//!             }}
//!         </span>
//!         <button on:click=move |_| conn.reconnect()>"Reconnect"</button>
//!     }
//! }
//! ```
//!
//! The bridge needs no async executor: the connection's own change
//! listener sets an `ArcRwSignal`, so it works in plain wasm-bindgen tests,
//! in CSR apps and natively. The signal lives as long as the connection.

use crate::reactive::Observable;
use crate::{Collection, Connection, Outbox, Status, Subscription};
use leptos::prelude::*;
use serde_json::Value;

/// A Leptos signal that follows an [`Observable`].
pub fn signal_from<T>(source: &Observable<T>) -> Signal<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    let signal = ArcRwSignal::new(source.get());
    let writer = signal.clone();
    // The listener keeps the signal alive as long as the source lives.
    source.subscribe(move |v| writer.set(v.clone())).forget();
    Signal::from(signal.read_only())
}

/// The connection's status as a Leptos signal.
pub fn status_signal(conn: &Connection) -> Signal<Status> {
    signal_from(conn.status_observable())
}

/// The connection's outbox counts ("3 changes waiting").
pub fn outbox_signal(conn: &Connection) -> Signal<Outbox> {
    signal_from(conn.outbox_observable())
}

/// Whether a subscription is ready.
pub fn ready_signal(sub: &Subscription) -> Signal<bool> {
    signal_from(sub.ready_observable())
}

/// All documents of a collection. The list is rebuilt only when read after
/// a change (at most once per render), never once per incoming message, so
/// a large initial sync stays O(N).
///
/// ```ignore
/// let messages = ddp_live::leptos::collection_signal(&conn.collection("messages"));
/// view! { <ul>{move || messages.get().into_iter().map(|m| view! { <li>{m["text"].as_str().unwrap_or("").to_string()}</li> }).collect_view()}</ul> }
/// ```
pub fn collection_signal(collection: &Collection) -> Signal<Vec<Value>, LocalStorage> {
    let version = ArcRwSignal::new(0u64);
    let bump = version.clone();
    collection.on_change(move |_| bump.update(|v| *v += 1)).forget();
    let coll = collection.clone();
    Signal::derive_local(move || {
        version.track();
        coll.find()
    })
}

/// One document of a collection (`None` while absent).
pub fn doc_signal(collection: &Collection, id: &str) -> Signal<Option<Value>> {
    let signal = ArcRwSignal::new(collection.find_one(id));
    let writer = signal.clone();
    let coll = collection.clone();
    let wanted = id.to_owned();
    collection
        .on_change(move |c| {
            let changed_id = match c {
                crate::Change::Added { id, .. } | crate::Change::Changed { id, .. } | crate::Change::Removed { id, .. } => id,
            };
            if *changed_id == wanted {
                writer.set(coll.find_one(&wanted));
            }
        })
        .forget();
    Signal::from(signal.read_only())
}

/// Whether a room is joined.
pub fn room_connected_signal(room: &crate::rooms::Room) -> Signal<bool> {
    signal_from(room.connected_observable())
}

/// A room's connection id (`None` while not joined).
pub fn room_id_signal(room: &crate::rooms::Room) -> Signal<Option<String>> {
    signal_from(room.id_observable())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectionState;

    #[test]
    fn the_signal_follows_the_observable() {
        let o = Observable::new(Status::initial());
        let s = signal_from(&o);
        assert_eq!(s.get_untracked().status, ConnectionState::Connecting);
        o.set(Status { connected: true, status: ConnectionState::Connected, ..Status::initial() });
        assert!(s.get_untracked().connected);
        o.set(Status { status: ConnectionState::Waiting, retry_time: Some(5.0), ..Status::initial() });
        assert_eq!(s.get_untracked().retry_time, Some(5.0));
    }

    #[test]
    fn collection_and_document_signals_follow_changes() {
        use crate::data::Mirror;
        use crate::protocol::store::Store;
        use serde_json::json;
        use std::cell::RefCell;
        use std::rc::Rc;
        // A store fed as the machine feeds it; the mirror reads it and
        // hears each change.
        let store = Rc::new(RefCell::new(Store::default()));
        let s = store.clone();
        let mirror = Rc::new(Mirror::new("c", Box::new(move |f| f(&s.borrow()))));
        let coll = Collection::new("c".into(), mirror.clone());
        let all = collection_signal(&coll);
        let one = doc_signal(&coll, "a");
        assert!(all.get_untracked().is_empty());
        assert_eq!(one.get_untracked(), None);
        let fields = |v: Value| v.as_object().cloned().unwrap_or_default();
        // As the connection's pump does: the store is not borrowed while
        // listeners run.
        let apply = |write: &dyn Fn(&mut Store) -> Option<crate::Change>| {
            let change = write(&mut store.borrow_mut()).expect("a change");
            mirror.apply(&change);
        };
        apply(&|s| s.added("c".into(), "a".into(), fields(json!({"x": 1}))));
        apply(&|s| s.added("c".into(), "b".into(), fields(json!({"x": 2}))));
        assert_eq!(all.get_untracked().len(), 2);
        assert_eq!(one.get_untracked(), Some(json!({"_id": "a", "x": 1})));
        apply(&|s| s.changed("c".into(), "a".into(), fields(json!({"x": 5})), vec![]));
        assert_eq!(one.get_untracked().unwrap()["x"], 5);
        apply(&|s| s.removed("c".into(), "a".into()));
        assert_eq!(one.get_untracked(), None);
        assert_eq!(all.get_untracked(), vec![json!({"_id": "b", "x": 2})]);
    }
}
