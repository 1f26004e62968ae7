//! The query engine's native tests: minimongo's documented behaviour, and
//! property tests of the live results against fresh fetches.

use super::live::{replay, Diff, LiveResults};
use super::ostree::OsTree;
use super::{Fields, Query, QueryError};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::rc::Rc;

pub(crate) use crate::query::native_regex::NativeRegex;

fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Fields::new(),
    }
}

fn re(source: &str, flags: &str) -> Value {
    json!({"$regexp": source, "$flags": flags})
}

fn matches(sel: Value, doc: Value) -> bool {
    let mut doc = fields(doc);
    let id = match doc.shift_remove("_id") {
        Some(Value::String(s)) => s,
        _ => "x".to_owned(),
    };
    Query::compile(Some(&sel), None, &NativeRegex).unwrap_or_else(|e| panic!("{sel}: {e}")).matches(&id, &doc)
}

macro_rules! yes {
    ($sel:tt, $doc:tt) => {
        assert!(matches(json!($sel), json!($doc)), "{} should match {}", json!($sel), json!($doc))
    };
}
macro_rules! no {
    ($sel:tt, $doc:tt) => {
        assert!(!matches(json!($sel), json!($doc)), "{} should not match {}", json!($sel), json!($doc))
    };
}

#[test]
fn equality_and_arrays() {
    yes!({}, {"a": 12});
    yes!({"a": 12}, {"a": [11, 12, 13]});
    no!({"a": 12}, {"a": [11, 13]});
    yes!({"a": 12, "b": 13}, {"a": [11, 12, 13], "b": [13, 14]});
    no!({"a": 12, "b": 13}, {"a": 12, "b": [14]});
    yes!({"tags": "x"}, {"tags": ["y", "x"]});
    yes!({"a": [1, 2]}, {"a": [[3, 4], [1, 2]]});
    no!({"a": [1, 2]}, {"a": [[[1, 2]]]});
    no!({"a": [1, 2]}, {"a": [2, 1]});
    yes!({"a": {"b": 12}}, {"a": [{"b": 11}, {"b": 12}]});
    no!({"a": {"b": 12, "c": 13}}, {"a": {"c": 13, "b": 12}});
    no!({"a": {"b": 12}}, {"a": {"b": 12, "c": 13}});
    yes!({"a": 1}, {"a": 1.0});
    yes!({"d": {"$date": 5}}, {"d": {"$date": 5}});
    no!({"d": {"$date": 5}}, {"d": 5});
}

#[test]
fn null_and_missing() {
    yes!({"a": null}, {"b": 1});
    yes!({"a": null}, {"a": null});
    no!({"a": null}, {"a": 0});
    yes!({"a": null}, {"a": [1, null]});
    no!({"a": null}, {"a": [1, {}]});
    yes!({"a.b.c": null}, {"a": {"b": 4}});
    no!({"a.b": null}, {"a": [1]});
    yes!({"a.b": null}, {"a": [{"b": 1}, 2, {}]});
}

#[test]
fn dotted_paths_and_indices() {
    let big = json!({"a": [{"b": 1}, 2, {}, {"b": [3, 4]}]});
    for (sel, hit) in [(json!({"a.b": 1}), true), (json!({"a.b": 3}), true), (json!({"a.b": [3, 4]}), true), (json!({"a.b": 5}), false)] {
        assert_eq!(matches(sel.clone(), big.clone()), hit, "{sel}");
    }
    yes!({"a.1": 2}, {"a": [1, 2]});
    no!({"a.0": 2}, {"a": [1, 2]});
    yes!({"a.0.x": 1}, {"a": [{"x": 1}]});
    yes!({"_id": "k"}, {"_id": "k", "v": 1});
    no!({"_id": "k"}, {"_id": "j"});
}

#[test]
fn comparisons_follow_type_order() {
    yes!({"a": {"$lt": 10}}, {"a": [11, 9]});
    no!({"a": {"$lt": 10}}, {"a": "1"});
    no!({"a": {"$lt": "null"}}, {"a": null});
    no!({"a": {"$gt": [2, 3]}}, {"a": [1, 2]});
    yes!({"a": {"$lt": {"x": [2, 3, 4]}}}, {"a": {"x": [1, 3, 4]}});
    yes!({"a": {"$lt": 11, "$gt": 9}}, {"a": [8, 9, 11, 12]});
    no!({"a": {"$lt": 11, "$gt": 9}}, {"a": 11});
    yes!({"a": {"$gte": null}}, {});
    no!({"a": {"$gt": null}}, {"a": null});
    yes!({"d": {"$gt": {"$date": 1}}}, {"d": {"$date": 2}});
    no!({"d": {"$gt": {"$date": 1}}}, {"d": 2});
    yes!({"n": {"$gt": 5}}, {"n": {"$InfNaN": 1}});
}

#[test]
fn negations_see_all_branches() {
    yes!({"a": {"$ne": 3}}, {"a": [1, 2]});
    no!({"a": {"$ne": 1}}, {"a": [1, 2]});
    yes!({"a": {"$ne": 1}}, {});
    yes!({"a.b": {"$ne": 5, "$gt": 6}}, {"a": [{"b": 2}, {"b": 10}]});
    no!({"a.b": {"$ne": 5, "$gt": 6}}, {"a": [{"b": 10}, {"b": 5}]});
    yes!({"a": {"$nin": [1, 2]}}, {"a": [4]});
    no!({"a": {"$nin": [1, 2]}}, {"a": [4, 2]});
    no!({"a": {"$nin": [1, null]}}, {});
    yes!({"a": {"$not": {"$gt": 5}}}, {"a": 3});
    no!({"a": {"$not": {"$gt": 5}}}, {"a": [3, 7]});
    no!({"x": {"$not": re("a", "")}}, {"x": ["kitten", "cat"]});
}

#[test]
fn in_all_exists_size_elem_match() {
    yes!({"a": {"$in": [1, 2, 3]}}, {"a": [4, 2]});
    yes!({"a.b": {"$in": [1, null]}}, {"a": [{"b": 5}, {}]});
    no!({"a.b": {"$in": [1, null]}}, {"a": [{"b": 5}, 5]});
    yes!({"a": {"$in": ["x", re("foo", "i")]}}, {"a": ["f", "fOo"]});
    yes!({"a": {"$all": [1, 2]}}, {"a": [3, 2, 1]});
    no!({"a": {"$all": [1, 2]}}, {"a": [[1, 2]]});
    no!({"a": {"$all": []}}, {"a": []});
    yes!({"a": {"$all": [2, 2]}}, {"a": [2]});
    no!({"a": {"$all": [{"b": 3}]}}, {"a": [{"b": 3, "k": 4}]});
    yes!({"a": {"$exists": true}}, {"a": []});
    no!({"a": {"$exists": false}}, {"a": null});
    yes!({"a": {"$exists": 0}}, {"b": 5});
    no!({"a.x": {"$exists": false}}, {"a": [{}, {"x": 5}]});
    yes!({"a": {"$size": 2}}, {"a": [2, 2]});
    no!({"a": {"$size": 2}}, {"a": [[2, 2]]});
    no!({"a": {"$size": 1}}, {"a": "2"});
    yes!({"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1, "c": 3}, {"b": 1, "c": 2}]});
    no!({"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1, "c": 3}, {"b": 2, "c": 2}]});
    yes!({"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}}, {"a": [0, 2, 5]});
    no!({"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}}, {"a": [0, 5]});
    no!({"a": {"$elemMatch": {"$gt": 1}}}, {"a": 5});
}

#[test]
fn logical_operators() {
    yes!({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2});
    no!({"$or": [{"a": 1}, {"b": 2}]}, {"b": 3});
    yes!({"$and": [{"a": 1}, {"a": {"$size": 1}}]}, {"a": [1]});
    yes!({"$nor": [{"a": 1}, {"b": 2}]}, {"b": 3});
    no!({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 1});
    yes!({"$comment": "hi", "a": 1}, {"a": 1});
}

#[test]
fn regular_expressions() {
    yes!({"a": re("a", "")}, {"a": "cat"});
    no!({"a": re("a", "")}, {"a": "CAT"});
    yes!({"a": re("a", "i")}, {"a": "CAT"});
    no!({"a": re(",", "")}, {"a": ["foo", "bar"]});
    yes!({"a": {"$regex": "a", "$options": "i"}}, {"a": "CAT"});
    no!({"a": {"$regex": re("a", "i"), "$options": ""}}, {"a": "CAT"});
    no!({"a": {"$regex": ""}}, {"a": 5});
    no!({"a": {"$regex": "undefined"}}, {});
    yes!({"a": {"$regex": "^b", "$options": "m"}}, {"a": "a\nb"});
}

#[test]
fn safety_rules() {
    let q = |sel: Value| Query::compile(Some(&sel), None, &NativeRegex).map(|q| q.matches("foo", &Fields::new()));
    assert_eq!(q(json!(null)), Ok(false));
    assert_eq!(q(json!(false)), Ok(false));
    assert_eq!(q(json!({"_id": null})), Ok(false));
    assert_eq!(q(json!({"_id": ""})), Ok(false));
    assert_eq!(q(json!("foo")), Ok(true));
    assert_eq!(q(json!("bar")), Ok(false));
    assert!(Query::compile(None, None, &NativeRegex).is_ok_and(|q| q.matches("foo", &Fields::new())));
}

#[test]
fn unsupported_and_bad_input_are_typed_errors() {
    let err = |sel: Value, opts: Value| Query::compile(Some(&sel), Some(&opts), &NativeRegex).err().map(|e| e.code());
    assert_eq!(err(json!({"$where": "1"}), json!({})), Some("unsupported-operator"));
    assert_eq!(err(json!({"a": {"$near": [1, 2]}}), json!({})), Some("unsupported-operator"));
    assert_eq!(err(json!({"a": {"$type": 2}}), json!({})), Some("unsupported-operator"));
    assert_eq!(err(json!({"a": {"$all": [{"$gt": 4}]}}), json!({})), Some("unsupported-operator"));
    assert_eq!(err(json!({"a": {"$gt": 1, "b": 2}}), json!({})), Some("bad-selector"));
    assert_eq!(err(json!({"a": {"$in": 5}}), json!({})), Some("bad-selector"));
    assert_eq!(err(json!({"$or": []}), json!({})), Some("bad-selector"));
    assert_eq!(err(json!({"a": {"$size": "2"}}), json!({})), Some("bad-selector"));
    assert_eq!(err(json!({"a": {"$options": "i"}}), json!({})), Some("bad-selector"));
    assert_eq!(err(json!({"a": {"$regex": "("}}), json!({})), Some("bad-regex"));
    assert_eq!(err(json!({"a": {"$regex": "a", "$options": "x"}}), json!({})), Some("bad-regex"));
    assert_eq!(err(json!([1]), json!({})), Some("bad-selector"));
    assert_eq!(err(json!({}), json!({"limit": -1})), Some("bad-options"));
    assert_eq!(err(json!({}), json!({"limit": 1.5})), Some("bad-options"));
    assert_eq!(err(json!({}), json!({"sort": {"a": 2}})), Some("bad-options"));
    assert_eq!(err(json!({}), json!({"fields": {"a": 1, "b": 0}})), Some("bad-options"));
    assert_eq!(err(json!({}), json!({"transform": null})), Some("bad-options"));
    assert!(matches!(Query::compile(Some(&json!({"a": {"$regex": "a"}})), None, &super::NoRegex), Err(QueryError::BadRegex(_))));
}

fn ids(q: &Query, docs: &[(&str, Fields)]) -> Vec<String> {
    q.fetch(docs.iter().map(|(id, f)| (*id, f))).into_iter().map(|(id, _)| id.to_owned()).collect()
}

#[test]
fn sort_skip_limit() {
    let docs: Vec<(&str, Fields)> = vec![
        ("a", fields(json!({"x": 2, "y": "b"}))),
        ("b", fields(json!({"x": "s", "y": "a"}))),
        ("c", fields(json!({"y": "c"}))),
        ("d", fields(json!({"x": [5, 0], "y": "a"}))),
        ("e", fields(json!({"x": {"$date": 0}, "y": "b"}))),
        ("f", fields(json!({"x": true, "y": "a"}))),
    ];
    let q = |o: Value| Query::compile(None, Some(&o), &NativeRegex).unwrap();
    // Type order: missing < numbers < strings < … < booleans < dates; an
    // array sorts by its smallest element ascending, its largest descending.
    assert_eq!(ids(&q(json!({"sort": {"x": 1}})), &docs), ["c", "d", "a", "b", "f", "e"]);
    assert_eq!(ids(&q(json!({"sort": {"x": -1}})), &docs), ["e", "f", "b", "d", "a", "c"]);
    assert_eq!(ids(&q(json!({"sort": [["y", "asc"], ["x", "desc"]]})), &docs), ["f", "b", "d", "e", "a", "c"]);
    assert_eq!(ids(&q(json!({"sort": {"y": 1}, "skip": 1, "limit": 3})), &docs), ["d", "f", "a"]);
    assert_eq!(ids(&q(json!({"limit": 0})), &docs).len(), 6);
    assert_eq!(ids(&q(json!({"sort": {"_id": -1}, "limit": 2})), &docs), ["f", "e"]);
}

#[test]
fn strings_sort_as_javascript_does() {
    // UTF-16 order: U+FF5E is above U+1F600 (a surrogate pair) in JavaScript.
    let docs = vec![("a", fields(json!({"s": "\u{1F600}"}))), ("b", fields(json!({"s": "\u{FF5E}"})))];
    let q = Query::compile(None, Some(&json!({"sort": {"s": 1}})), &NativeRegex).unwrap();
    assert_eq!(ids(&q, &docs), ["a", "b"]);
}

#[test]
fn projections() {
    let doc = fields(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 1, "x": 2}, 5]}));
    let p = |o: Value| {
        let q = Query::compile(None, Some(&json!({ "fields": o })), &NativeRegex).unwrap();
        (Value::Object(q.project(&doc).into_owned()), q.keeps_id())
    };
    assert_eq!(p(json!({"a": 1})), (json!({"a": 1}), true));
    assert_eq!(p(json!({"b.c": 1, "_id": 0})), (json!({"b": {"c": 2}}), false));
    assert_eq!(p(json!({"e.c": 1})), (json!({"e": [{"c": 1}]}), true));
    assert_eq!(p(json!({"b.d": 0, "a": 0})), (json!({"b": {"c": 2}, "e": [{"c": 1, "x": 2}, 5]}), true));
    assert!(!p(json!({"_id": 0})).1);
    assert_eq!(p(json!({})).0, Value::Object(doc.clone()));
}

// ---- live results ----

fn live_ids(live: &LiveResults) -> Vec<(Rc<str>, Rc<Fields>)> {
    live.results().map(|(id, d)| (id.clone(), d.clone())).collect()
}

#[test]
fn a_limited_window_refills_from_outside() {
    let q = Rc::new(Query::compile(Some(&json!({"s": "open"})), Some(&json!({"sort": {"n": 1}, "limit": 2})), &NativeRegex).unwrap());
    let doc = |n: i64| Rc::new(fields(json!({"s": "open", "n": n})));
    let (a, b, c) = (doc(1), doc(2), doc(3));
    let mut live = LiveResults::new(q, [("a", &*a), ("b", &*b), ("c", &*c)]);
    assert_eq!(live.initial().iter().filter(|d| matches!(d, Diff::AddedAt { before: None, .. })).count(), 2);
    let mut out = Vec::new();
    live.update("a", None, &mut out);
    assert_eq!(
        out,
        vec![
            Diff::RemovedAt { id: "a".into(), old: doc(1), index: 0 },
            Diff::AddedAt { id: "c".into(), doc: doc(3), index: 1, before: None },
        ]
    );
    out.clear();
    // b moves behind c, inside the window: a change then a move.
    live.update("b", Some(&doc(4)), &mut out);
    assert_eq!(
        out,
        vec![
            Diff::ChangedAt { id: "b".into(), doc: doc(4), old: doc(2), index: 0 },
            Diff::MovedTo { id: "b".into(), doc: doc(4), from: 0, to: 1, before: None },
        ]
    );
    out.clear();
    // A document that stops matching leaves; nothing is left to come in.
    live.update("c", Some(&fields(json!({"s": "closed", "n": 3}))), &mut out);
    assert_eq!(out, vec![Diff::RemovedAt { id: "c".into(), old: doc(3), index: 0 }]);
    assert_eq!(live.len(), 1);
    assert_eq!(live.matching(), 1);
}

/// A random document: a few fields of mixed types, sometimes missing.
fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        (-3i64..4).prop_map(|n| json!(n)),
        (-3i64..4).prop_map(|n| json!(n as f64 + 0.5)),
        prop::sample::select(vec!["a", "b", "B", "ab", ""]).prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        (0i64..3).prop_map(|n| json!({"$date": n})),
        prop::collection::vec((-2i64..3).prop_map(|n| json!(n)), 0..3).prop_map(Value::Array),
        (-2i64..3).prop_map(|n| json!({"b": n})),
        prop::collection::vec((-2i64..3).prop_map(|n| json!({"b": n})), 0..3).prop_map(Value::Array),
    ]
}

fn arb_doc() -> impl Strategy<Value = Fields> {
    (prop::option::of(prop::sample::select(vec!["open", "closed"])), prop::option::of(arb_value()), prop::option::of(arb_value())).prop_map(
        |(s, n, o)| {
            let mut f = Fields::new();
            if let Some(s) = s {
                f.insert("status".into(), json!(s));
            }
            if let Some(n) = n {
                f.insert("n".into(), n);
            }
            if let Some(o) = o {
                f.insert("o".into(), o);
            }
            f
        },
    )
}

fn arb_selector() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({})),
        Just(json!({"status": "open"})),
        arb_value().prop_map(|v| json!({"n": v})),
        (-2i64..3).prop_map(|v| json!({"n": {"$gt": v}})),
        (-2i64..3).prop_map(|v| json!({"o.b": {"$lte": v}})),
        (-2i64..3).prop_map(|v| json!({"n": {"$ne": v}})),
        Just(json!({"n": {"$in": [1, "a", null]}})),
        Just(json!({"o": {"$nin": [1, 2]}})),
        any::<bool>().prop_map(|b| json!({"o": {"$exists": b}})),
        (0i64..3).prop_map(|v| json!({"n": {"$size": v}})),
        Just(json!({"n": {"$all": [1, 2]}})),
        Just(json!({"o": {"$elemMatch": {"b": {"$gte": 0}}}})),
        Just(json!({"n": {"$elemMatch": {"$lt": 1}}})),
        Just(json!({"n": {"$regex": "^a", "$options": "i"}})),
        Just(json!({"n": {"$not": {"$gte": 1}}})),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$or": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$and": v})),
            prop::collection::vec(inner, 1..3).prop_map(|v| json!({"$nor": v})),
        ]
    })
}

fn arb_options() -> impl Strategy<Value = Value> {
    (prop::collection::vec((prop::sample::select(vec!["n", "status", "o", "o.b", "_id"]), any::<bool>()), 0..3), 0usize..4, 0usize..5)
        .prop_map(|(keys, skip, limit)| {
            let sort: Vec<Value> = keys.into_iter().map(|(k, asc)| json!([k, if asc { "asc" } else { "desc" }])).collect();
            json!({"sort": sort, "skip": skip, "limit": limit})
        })
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, Fields),
    Remove(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, arb_doc()).prop_map(|(i, d)| Op::Set(i, d)),
        1 => (0u8..12).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// For random documents, selectors, sorts, skips and limits, after
    /// every change the live results equal a fresh fetch, and replaying the
    /// emitted diffs on the previous results rebuilds them.
    #[test]
    fn live_results_equal_fresh_fetch(
        initial in prop::collection::vec((0u8..12, arb_doc()), 0..10),
        selector in arb_selector(),
        options in arb_options(),
        ops in prop::collection::vec(arb_op(), 1..30),
    ) {
        let q = Rc::new(Query::compile(Some(&selector), Some(&options), &NativeRegex).unwrap());
        let mut store: std::collections::BTreeMap<String, Rc<Fields>> = std::collections::BTreeMap::new();
        for (i, d) in initial {
            store.insert(format!("d{i}"), Rc::new(d));
        }
        let fresh = |store: &std::collections::BTreeMap<String, Rc<Fields>>| -> Vec<(Rc<str>, Rc<Fields>)> {
            let by_id: Vec<(&str, &Fields)> = store.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
            q.fetch(by_id).into_iter().map(|(id, f)| (Rc::from(id), Rc::new(f.clone()))).collect()
        };
        let mut live = LiveResults::new(q.clone(), store.iter().map(|(k, v)| (k.as_str(), &**v)));
        let mut shown = Vec::new();
        for d in live.initial() {
            let appended = matches!(d, Diff::AddedAt { index, before: None, .. } if index == shown.len());
            prop_assert!(appended, "initial diffs append in order");
            replay(&mut shown, &d);
        }
        prop_assert_eq!(&shown, &fresh(&store));
        for op in ops {
            let (id, doc) = match op {
                Op::Set(i, d) => (format!("d{i}"), Some(Rc::new(d))),
                Op::Remove(i) => (format!("d{i}"), None),
            };
            match &doc {
                Some(d) => { store.insert(id.clone(), d.clone()); }
                None => { store.remove(&id); }
            }
            let mut diffs = Vec::new();
            live.update(&id, doc.as_deref(), &mut diffs);
            let want = fresh(&store);
            prop_assert_eq!(&live_ids(&live), &want);
            for d in &diffs {
                // `before` names the document that follows, already shown
                // (Meteor's meaning), or `None` at the end.
                let next_id = |list: &Vec<(Rc<str>, Rc<Fields>)>, i: usize| list.get(i).map(|(id, _)| id.clone());
                if let Diff::AddedAt { index, before, .. } = d {
                    prop_assert_eq!(&next_id(&shown, *index), before);
                }
                replay(&mut shown, d);
                if let Diff::MovedTo { to, before, .. } = d {
                    prop_assert_eq!(&next_id(&shown, to + 1), before);
                }
            }
            prop_assert_eq!(&shown, &want, "diffs {:?}", diffs);
            prop_assert_eq!(live.len(), want.len());
        }
    }

    /// The order-statistics tree agrees with a sorted vector.
    #[test]
    fn ostree_matches_a_sorted_vec(ops in prop::collection::vec((any::<bool>(), 0u16..200), 1..400)) {
        let mut tree = OsTree::default();
        let mut model: Vec<u16> = Vec::new();
        for (insert, k) in ops {
            match (insert, model.binary_search(&k)) {
                (true, Err(pos)) => {
                    prop_assert_eq!(tree.insert(k), pos);
                    model.insert(pos, k);
                }
                (false, Ok(pos)) => {
                    prop_assert_eq!(tree.remove(&k), Some(pos));
                    model.remove(pos);
                }
                (false, Err(_)) => prop_assert_eq!(tree.remove(&k), None),
                (true, Ok(pos)) => prop_assert_eq!(tree.rank(&k), Some(pos)),
            }
            prop_assert_eq!(tree.len(), model.len());
        }
        for (i, k) in model.iter().enumerate() {
            prop_assert_eq!(tree.nth(i), Some(k));
        }
        let from = model.len() / 3;
        prop_assert_eq!(tree.iter_from(from).copied().collect::<Vec<_>>(), model[from..].to_vec());
    }

    /// Any JSON as a selector or options never panics (it compiles or is a
    /// typed error), and a compiled query never panics on any document.
    #[test]
    fn bad_input_never_panics(sel in arb_json(), opts in arb_json(), doc in arb_doc()) {
        if let Ok(q) = Query::compile(Some(&sel), Some(&opts), &NativeRegex) {
            let _ = q.matches("x", &doc);
            let _ = q.fetch([("x", &doc)]);
            let _ = q.project(&doc);
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|n| json!(n)),
        prop::sample::select(vec!["a", "$gt", "$in", "$regex", "(", "n", "o.b", "$and", "$elemMatch", "$not", "sort", "limit", "fields"])
            .prop_map(|s| json!(s)),
    ];
    let key = prop::sample::select(vec![
        "n",
        "o",
        "o.b",
        "$gt",
        "$in",
        "$and",
        "$or",
        "$not",
        "$elemMatch",
        "$regex",
        "$options",
        "$size",
        "$all",
        "$exists",
        "sort",
        "limit",
        "skip",
        "fields",
    ])
    .prop_map(str::to_owned);
    crate::protocol::arb::arb_json(leaf.boxed(), key.boxed(), 3, 4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A compact document reduced to the fields a query reads
    /// (`Doc::fields_of(query.reads())`, what a scan decodes) matches and
    /// sorts exactly as the whole document does.
    #[test]
    fn the_fields_a_query_reads_decide_it(doc in arb_doc(), pad in "\\PC{0,8}", selector in arb_selector(), options in arb_options()) {
        let q = Query::compile(Some(&selector), Some(&options), &NativeRegex).unwrap();
        let mut whole = doc;
        whole.insert("pad".into(), json!(pad));
        let compact = crate::protocol::doc::Doc::from_fields(&whole);
        let part = compact.fields_of(&q.reads());
        prop_assert!(part.len() < whole.len(), "pad is never read");
        prop_assert_eq!(q.matches("d1", &part), q.matches("d1", &whole));
        prop_assert_eq!(q.sort_key("d1", &part), q.sort_key("d1", &whole));
    }
}
