//! Native tests of the hooks that need no socket (the browser tests in
//! tests/leptos.rs mount components against the test server).

use super::*;
use crate::data::Mirror;
use crate::protocol::store::Store;
use crate::{Collection, ConnectionState};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;

#[test]
fn the_signal_follows_the_observable_until_its_owner_goes() {
    let o = Observable::new(Status::initial());
    let owner = Owner::new();
    let s = owner.with(|| signal_from(&o));
    assert_eq!(o.listener_count(), 1);
    assert_eq!(s.get_untracked().status, ConnectionState::Connecting);
    o.set(Status { connected: true, status: ConnectionState::Connected, ..Status::initial() });
    assert!(s.get_untracked().connected);
    owner.cleanup();
    assert_eq!(o.listener_count(), 0, "the listener goes with its owner");
}

#[test]
fn with_no_owner_nothing_is_left_behind() {
    let o = Observable::new(1);
    let _s = signal_from(&o);
    assert_eq!(o.listener_count(), 0);
}

#[test]
fn the_retry_countdown_rounds_up_and_exists_only_while_waiting() {
    let waiting = Status { status: ConnectionState::Waiting, retry_time: Some(10_000.0), ..Status::initial() };
    assert_eq!(seconds_until(&waiting, 7_500.0), Some(3));
    assert_eq!(seconds_until(&waiting, 9_000.0), Some(1));
    assert_eq!(seconds_until(&waiting, 10_000.0), Some(0));
    assert_eq!(seconds_until(&waiting, 20_000.0), Some(0));
    assert_eq!(seconds_until(&Status { retry_time: Some(f64::NAN), ..waiting.clone() }, 0.0), Some(0));
    assert_eq!(seconds_until(&Status::initial(), 0.0), None);
    let connected = Status { connected: true, status: ConnectionState::Connected, ..Status::initial() };
    assert_eq!(seconds_until(&connected, 0.0), None);
}

/// A collection over a store fed as the connection's pump feeds it.
struct Fixture {
    store: Rc<RefCell<Store>>,
    mirror: Rc<Mirror>,
    coll: Collection,
}

impl Fixture {
    fn new() -> Fixture {
        let store = Rc::new(RefCell::new(Store::default()));
        let s = store.clone();
        let mirror = Rc::new(Mirror::new("c", Box::new(move |f| f(&s.borrow()))));
        let coll = Collection::new("c".into(), mirror.clone());
        Fixture { store, mirror, coll }
    }

    /// Writes as the machine does, then tells the listeners with no borrow
    /// of the store held.
    fn apply(&self, write: impl FnOnce(&mut Store) -> Option<crate::Change>) {
        let change = write(&mut self.store.borrow_mut()).expect("a change");
        self.mirror.apply(&change);
    }

    fn add(&self, id: &str, v: Value) {
        self.apply(|s| s.added("c".into(), id.into(), v.as_object().cloned().unwrap_or_default()));
    }
}

#[test]
fn a_changed_document_sets_its_own_signal_and_leaves_the_list_alone() {
    let f = Fixture::new();
    f.add("a", json!({"x": 1}));
    let owner = Owner::new();
    let docs = owner.with(|| collection_docs(&f.coll));
    assert_eq!(f.coll.listener_count(), 1);
    f.add("b", json!({"x": 2}));
    let list = docs.docs.get_untracked();
    assert_eq!(list.iter().map(LiveDoc::id).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(docs.len.get_untracked(), 2);
    let (a, b) = (list[0].clone(), list[1].clone());
    // A change of "a": its signal has the new value; the list is not built
    // again (the same per-document signals), and "b" is untouched.
    let builds = super::collection::LIST_BUILDS.with(|n| n.get());
    f.apply(|s| s.changed("c".into(), "a".into(), json!({"x": 5}).as_object().cloned().unwrap_or_default(), vec![]));
    assert_eq!(a.get(), json!({"_id": "a", "x": 5}));
    assert_eq!(a.field("x"), 5);
    assert_eq!(docs.docs.get_untracked(), list);
    assert_eq!(super::collection::LIST_BUILDS.with(|n| n.get()), builds, "a change is not a membership change: no rebuild");
    assert_eq!(b.get(), json!({"_id": "b", "x": 2}));
    // A removal changes the membership.
    f.apply(|s| s.removed("c".into(), "a".into()));
    assert_eq!(docs.docs.get_untracked().iter().map(LiveDoc::id).collect::<Vec<_>>(), ["b"]);
    owner.cleanup();
    assert_eq!(f.coll.listener_count(), 0, "the listener goes with its owner");
}

#[test]
fn the_list_is_rebuilt_only_when_read_after_a_membership_change() {
    let f = Fixture::new();
    let owner = Owner::new();
    let docs = owner.with(|| collection_docs(&f.coll));
    let first = docs.docs.get_untracked();
    assert!(first.is_empty());
    for i in 0..100 {
        f.add(&format!("d{i:03}"), json!({"i": i}));
    }
    let builds = super::collection::LIST_BUILDS.with(|n| n.get());
    let after = docs.docs.get_untracked();
    assert_eq!(after.len(), 100);
    assert_eq!(after[42].field("i"), 42);
    assert_eq!(super::collection::LIST_BUILDS.with(|n| n.get()), builds + 1, "100 additions, one rebuild when read");
    // Reading again without a change gives the very same documents, unbuilt.
    assert_eq!(docs.docs.get_untracked(), after);
    assert_eq!(super::collection::LIST_BUILDS.with(|n| n.get()), builds + 1);
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn pending_calls_follow_the_durable_outbox_and_go_with_their_owner() {
    // On the simulated host (no socket opens; its durable store is memory).
    let host = Rc::new(crate::host::sim::SimHost::default());
    let options = crate::Options { persist: Some("leptos-test".into()), ..crate::Options::default() };
    let conn = crate::connect_on(host.clone(), "ws://example.test/websocket", options).unwrap();
    host.run_later();
    let kept = conn.persisted_calls().unwrap();
    let owner = Owner::new();
    let pending = owner.with(|| {
        provide_connection(conn.clone());
        use_pending_calls()
    });
    assert!(pending.get_untracked().is_empty());
    conn.call::<Value>("todos.add", ("milk",)).detach();
    let listed = pending.get_untracked();
    assert_eq!(listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["todos.add"]);
    assert!(!listed[0].from_earlier_page && listed[0].durable, "kept by the store: {listed:?}");
    assert_eq!(kept.observable().listener_count(), 1);
    owner.cleanup();
    assert_eq!(kept.observable().listener_count(), 0, "the listener goes with its owner");
    // Without `persist`, nothing is listed.
    let plain = crate::connect_on(host, "ws://example.test/websocket", crate::Options::default()).unwrap();
    let other = Owner::new();
    let empty = other.with(|| {
        provide_connection(plain.clone());
        use_pending_calls()
    });
    plain.call::<Value>("todos.add", ("eggs",)).detach();
    assert!(empty.get_untracked().is_empty());
}
