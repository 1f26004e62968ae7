//! `use_query` for Leptos (cargo feature `leptos`): a live query as a
//! signal of documents that works with `<For>`.
//!
//! ```no_run
//! use leptos::prelude::*;
//! use serde_json::json;
//! # fn todos(conn: ddp_live::Connection) -> impl IntoView {
//! let todos = conn.collection("todos");
//! let open = ddp_live::leptos::use_query(&todos, json!({"done": false}), json!({"sort": {"createdAt": -1}, "limit": 20}))
//!     .expect("a query this engine runs");
//! view! {
//!     <ul>
//!         <For each=move || open.get() key=|d| d["_id"].as_str().unwrap_or("").to_string() let:doc>
//!             <li>{doc["title"].as_str().unwrap_or("").to_string()}</li>
//!         </For>
//!     </ul>
//! }
//! # }
//! ```

use super::keep_until_cleanup;
use crate::{Collection, Diff, QueryError};
use leptos::prelude::*;
use serde_json::Value;

/// The results of a query on `collection` (see [`Collection::query`]) as a
/// signal of documents in order, updated in O(log n) per change of the
/// collection (never by re-running the query). The live query stops when
/// the reactive owner it was made under (the component) is cleaned up
/// (made outside any owner, it stops at once, as every hook here).
///
/// In a server render (feature `ssr`): the query run on the documents of
/// the request's subscriptions (tracked, as `use_collection`).
pub fn use_query(collection: &Collection, selector: Value, options: Value) -> Result<Signal<Vec<Value>>, QueryError> {
    on_server!(request => {
        let compile = move || crate::protocol::query::Query::compile(Some(&selector), Some(&options), crate::query::regex_engine());
        compile()?;
        let name = collection.name().to_owned();
        Ok(Signal::derive(move || {
            let Ok(q) = compile() else { return Vec::new() };
            let docs = request.documents(&name);
            let found = q.fetch(docs.iter().map(|(id, fields)| (id.as_str(), fields)));
            found.into_iter().map(|(id, fields)| crate::query::result_doc(&q, id, fields)).collect()
        }))
    });
    let query = collection.query(selector, options)?;
    let list = ArcRwSignal::new(Vec::<Value>::new());
    let writer = list.clone();
    let q = query.clone();
    let handle = query.observe(move |diffs| {
        writer.update(|list| {
            for d in diffs {
                match d {
                    Diff::AddedAt { id, doc, index, .. } => list.insert((*index).min(list.len()), q.document(id, doc)),
                    Diff::ChangedAt { id, doc, index, .. } => {
                        if let Some(slot) = list.get_mut(*index) {
                            *slot = q.document(id, doc);
                        }
                    }
                    Diff::RemovedAt { index, .. } => {
                        if *index < list.len() {
                            list.remove(*index);
                        }
                    }
                    Diff::MovedTo { from, to, .. } => {
                        if *from < list.len() {
                            let doc = list.remove(*from);
                            list.insert((*to).min(list.len()), doc);
                        }
                    }
                }
            }
        })
    });
    keep_until_cleanup(handle);
    Ok(Signal::from(list.read_only()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Mirror;
    use crate::protocol::store::Store;
    use serde_json::json;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn leptos_use_query_follows_changes_and_stops_with_its_owner() {
        let store = Rc::new(RefCell::new(Store::default()));
        let s = store.clone();
        let mirror = Rc::new(Mirror::new("c", Box::new(move |f| f(&s.borrow()))));
        let coll = Collection::new("c".into(), mirror.clone());
        let set = |id: &str, v: Value| {
            let change = store.borrow_mut().added("c".into(), id.into(), v.as_object().cloned().unwrap_or_default());
            if let Some(c) = change {
                mirror.apply(&c);
            }
        };
        set("a", json!({"n": 2, "open": true}));
        set("b", json!({"n": 1, "open": true}));
        let ids = |v: Vec<Value>| v.iter().map(|d| d["_id"].as_str().unwrap_or("?").to_owned()).collect::<Vec<_>>();
        let live_before = coll.listener_count();
        let owner = Owner::new();
        let results = owner.with(|| use_query(&coll, json!({"open": true}), json!({"sort": {"n": -1}, "fields": {"n": 1}}))).unwrap();
        assert_eq!(results.get_untracked(), vec![json!({"_id": "a", "n": 2}), json!({"_id": "b", "n": 1})]);
        set("c", json!({"n": 3, "open": true}));
        set("a", json!({"n": 0, "open": true}));
        assert_eq!(ids(results.get_untracked()), ["c", "b", "a"]);
        set("b", json!({"n": 1, "open": false}));
        assert_eq!(ids(results.get_untracked()), ["c", "a"]);
        assert_eq!(coll.listener_count(), live_before + 1);
        owner.cleanup();
        assert_eq!(coll.listener_count(), live_before, "the owner's cleanup stopped the live query");
        // (The signal went with its owner; a later change reaches nobody.)
        set("d", json!({"n": 9, "open": true}));
        assert!(use_query(&coll, json!({"n": {"$near": 1}}), Value::Null).is_err());
    }
}
