//! Queries for JavaScript: `find(selector, options)`, `findOne`,
//! `observe` and `observeChanges` on a collection, with Meteor's callback
//! meanings (minimongo's semantics; the engine is `protocol::query`).

use super::data::JsCollection;
use super::{call_js, ejson, get, js_error, tojs, StopHandle};
use crate::protocol::ejson::Ejson;
use crate::protocol::query::live::Diff;
use crate::protocol::query::{Fields, QueryError};
use crate::query::Query;
use js_sys::{Array, Function, Object};
use serde_json::{Map, Value};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_QUERY: &'static str = r#"
/**
 * A Mongo selector, as minimongo reads it: `{field: value}` (an array field
 * matches when it contains the value), dotted paths (`"a.b"`), RegExp
 * values, and `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor
 * $not $regex $options $size $all $elemMatch $comment`. A string is an `_id`.
 * Any other operator throws a DDPError with code `unsupported-operator`.
 */
export type DDPSelector = Record<string, unknown> | string;

/** Options of `find`, `findOne`, `observe` and `observeChanges`. */
export interface DDPFindOptions {
  /** `{field: 1 | -1}` (in key order), or `[["field", "asc" | "desc"], …]`. Ties sort by `_id`. */
  sort?: Record<string, 1 | -1 | "asc" | "desc"> | Array<string | [string, "asc" | "desc"]>;
  skip?: number;
  /** At most this many results (0: no limit). */
  limit?: number;
  /** Include (`{a: 1}`) or exclude (`{a: 0}`) fields; `_id` stays unless `_id: 0`. */
  fields?: Record<string, 0 | 1 | boolean>;
  /** The same as `fields`. */
  projection?: Record<string, 0 | 1 | boolean>;
}

/** Callbacks of `observe` (Meteor's): documents, with positions for ordered results. */
export interface DDPObserveCallbacks {
  /** A document came in at `atIndex`, before the document with `_id` `before` (`null`: last). The initial results arrive this way, in order. */
  addedAt?(document: DDPDocument, atIndex: number, before: string | null): void;
  /** The document at `atIndex` changed. */
  changedAt?(newDocument: DDPDocument, oldDocument: DDPDocument, atIndex: number): void;
  /** The document at `atIndex` left the results. */
  removedAt?(oldDocument: DDPDocument, atIndex: number): void;
  /** A document moved from `fromIndex` to `toIndex`, now before `before`. */
  movedTo?(document: DDPDocument, fromIndex: number, toIndex: number, before: string | null): void;
  /** Unordered forms, used when the `…At` form is not given. */
  added?(document: DDPDocument): void;
  changed?(newDocument: DDPDocument, oldDocument: DDPDocument): void;
  removed?(oldDocument: DDPDocument): void;
}

/** Callbacks of `observeChanges` (Meteor's): ids and changed fields. */
export interface DDPObserveChangesCallbacks {
  added?(id: string, fields: Record<string, unknown>): void;
  /** Ordered form of `added` (used when given): `before` is the next result's `_id`, or `null`. */
  addedBefore?(id: string, fields: Record<string, unknown>, before: string | null): void;
  /** The fields that changed; a removed field is `undefined`. */
  changed?(id: string, fields: Record<string, unknown>): void;
  removed?(id: string): void;
  /** The document moved before `before` (`null`: to the end). */
  movedBefore?(id: string, before: string | null): void;
}

export interface DDPCollection {
  /** Every document (by `_id`), or those matching `selector`, sorted, skipped, limited and projected by `options`. Throws a DDPError (`unsupported-operator`, `bad-selector`, `bad-regex`, `bad-options`) for a query it cannot run. */
  find(selector?: DDPSelector, options?: DDPFindOptions): DDPDocument[];
  /** The document with this `_id`, or the first matching `selector`; `undefined` when none. */
  findOne(idOrSelector?: DDPSelector, options?: DDPFindOptions): DDPDocument | undefined;
  /** A live query: the callbacks hear the initial results (in order) at once, then every change of the results, until `stop()`. */
  observe(selector: DDPSelector | undefined, options: DDPFindOptions | undefined, callbacks: DDPObserveCallbacks): StopHandle;
  /** A live query reporting ids and changed fields (ordered when `addedBefore` or `movedBefore` is given). */
  observeChanges(selector: DDPSelector | undefined, options: DDPFindOptions | undefined, callbacks: DDPObserveChangesCallbacks): StopHandle;
}
"#;

/// A selector or options as wire JSON: EJSON values (Date, RegExp,
/// Uint8Array…) encoded, but an object of operators (`{$gt: 1}`) never
/// escaped.
fn plain_json(e: &Ejson) -> Value {
    match e {
        Ejson::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect()),
        Ejson::Array(items) => Value::Array(items.iter().map(plain_json).collect()),
        other => other.to_json(),
    }
}

fn read(v: &JsValue, what: &str) -> Result<Option<Value>, JsValue> {
    if v.is_undefined() {
        return Ok(None);
    }
    let e = ejson::from_js(v).map_err(|e| js_error("bad-options", &format!("{what}: {e}")))?;
    Ok(Some(plain_json(&e)))
}

fn query_error(e: QueryError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// A result document as JS: projected, with `_id` unless dropped.
fn doc_js(q: &crate::protocol::query::Query, id: &str, fields: &Fields) -> JsValue {
    let projected = q.project(fields);
    if q.keeps_id() {
        tojs::document(id, &projected)
    } else {
        tojs::fields(&projected)
    }
}

/// The callbacks `names` of `what`'s object of callbacks, in that order
/// (`None` where the app gave none).
fn read_callbacks(callbacks: &JsValue, what: &str, names: &[&str]) -> Result<Vec<Option<Function>>, JsValue> {
    if !callbacks.is_object() {
        return Err(js_error("invalid-argument", &format!("{what} needs an object of callbacks")));
    }
    names
        .iter()
        .map(|name| {
            let f = get(callbacks, name);
            if f.is_undefined() || f.is_null() {
                return Ok(None);
            }
            f.dyn_into().map(Some).map_err(|_| js_error("invalid-argument", &format!("callback {name} must be a function")))
        })
        .collect()
}

fn before_js(before: &Option<Rc<str>>) -> JsValue {
    before.as_deref().map_or(JsValue::NULL, JsValue::from_str)
}

impl JsCollection {
    fn compile(&self, selector: &JsValue, options: &JsValue) -> Result<Query, JsValue> {
        let (selector, options) = (read(selector, "selector")?, read(options, "options")?);
        self.coll.query_with(selector.as_ref(), options.as_ref()).map_err(query_error)
    }

    pub(super) fn find_impl(&self, selector: &JsValue, options: &JsValue) -> Result<super::data::JsDocs, JsValue> {
        let q = self.compile(selector, options)?;
        let e = q.engine().clone();
        let out = q.with_results(|docs| docs.iter().map(|(id, f)| doc_js(&e, id, f)).collect::<Array>());
        Ok(JsValue::from(out).unchecked_into())
    }

    pub(super) fn find_one_impl(&self, selector: &JsValue, options: &JsValue) -> Result<super::data::JsDoc, JsValue> {
        let q = self.compile(selector, options)?.limited(1);
        let e = q.engine().clone();
        let one = q.with_results(|docs| docs.first().map(|(id, f)| doc_js(&e, id, f)));
        Ok(one.unwrap_or(JsValue::UNDEFINED).unchecked_into())
    }
}

#[wasm_bindgen(js_class = DDPCollection)]
impl JsCollection {
    /// A live query with Meteor's `observe` callbacks (see the TypeScript
    /// types); the initial results arrive at once as `addedAt` calls.
    #[wasm_bindgen(skip_typescript)]
    pub fn observe(&self, selector: JsValue, options: JsValue, callbacks: JsValue) -> Result<StopHandle, JsValue> {
        let q = self.compile(&selector, &options)?;
        let cb = read_callbacks(&callbacks, "observe", &["addedAt", "changedAt", "removedAt", "movedTo", "added", "changed", "removed"])?;
        let e = q.engine().clone();
        let handle = q.observe(move |diffs| {
            for d in diffs {
                match d {
                    Diff::AddedAt { id, doc, index, before } => {
                        let js = doc_js(&e, id, doc);
                        if let Some(f) = &cb[0] {
                            call_js(f, &[js, (*index as f64).into(), before_js(before)]);
                        } else if let Some(f) = &cb[4] {
                            call_js(f, &[js]);
                        }
                    }
                    Diff::ChangedAt { id, doc, old, index } => {
                        if e.project(doc) == e.project(old) {
                            continue;
                        }
                        let (new_js, old_js) = (doc_js(&e, id, doc), doc_js(&e, id, old));
                        if let Some(f) = &cb[1] {
                            call_js(f, &[new_js, old_js, (*index as f64).into()]);
                        } else if let Some(f) = &cb[5] {
                            call_js(f, &[new_js, old_js]);
                        }
                    }
                    Diff::RemovedAt { id, old, index } => {
                        let js = doc_js(&e, id, old);
                        if let Some(f) = &cb[2] {
                            call_js(f, &[js, (*index as f64).into()]);
                        } else if let Some(f) = &cb[6] {
                            call_js(f, &[js]);
                        }
                    }
                    Diff::MovedTo { id, doc, from, to, before } => {
                        if let Some(f) = &cb[3] {
                            call_js(f, &[doc_js(&e, id, doc), (*from as f64).into(), (*to as f64).into(), before_js(before)]);
                        }
                    }
                }
            }
        });
        Ok(StopHandle::new(handle))
    }

    /// A live query with Meteor's `observeChanges` callbacks (see the
    /// TypeScript types).
    #[wasm_bindgen(js_name = observeChanges, skip_typescript)]
    pub fn observe_changes(&self, selector: JsValue, options: JsValue, callbacks: JsValue) -> Result<StopHandle, JsValue> {
        let q = self.compile(&selector, &options)?;
        let cb = read_callbacks(&callbacks, "observeChanges", &["added", "addedBefore", "changed", "removed", "movedBefore"])?;
        let e = q.engine().clone();
        let handle = q.observe(move |diffs| {
            for d in diffs {
                match d {
                    Diff::AddedAt { id, doc, before, .. } => {
                        let fields = tojs::fields(&e.project(doc));
                        if let Some(f) = &cb[1] {
                            call_js(f, &[JsValue::from_str(id), fields, before_js(before)]);
                        } else if let Some(f) = &cb[0] {
                            call_js(f, &[JsValue::from_str(id), fields]);
                        }
                    }
                    Diff::ChangedAt { id, doc, old, .. } => {
                        let Some(f) = &cb[2] else { continue };
                        let (new, old) = (e.project(doc), e.project(old));
                        if let Some(changed) = changed_fields(&new, &old) {
                            call_js(f, &[JsValue::from_str(id), changed]);
                        }
                    }
                    Diff::RemovedAt { id, .. } => {
                        if let Some(f) = &cb[3] {
                            call_js(f, &[JsValue::from_str(id)]);
                        }
                    }
                    Diff::MovedTo { id, before, .. } => {
                        if let Some(f) = &cb[4] {
                            call_js(f, &[JsValue::from_str(id), before_js(before)]);
                        }
                    }
                }
            }
        });
        Ok(StopHandle::new(handle))
    }
}

/// The fields that differ (new values; a removed field as `undefined`),
/// or `None` when none does.
fn changed_fields(new: &Map<String, Value>, old: &Map<String, Value>) -> Option<JsValue> {
    let mut set = Map::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            set.insert(k.clone(), v.clone());
        }
    }
    let cleared: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    if set.is_empty() && cleared.is_empty() {
        return None;
    }
    let o: Object = tojs::fields(&set).unchecked_into();
    for k in cleared {
        ejson::set_own(&o, k, &JsValue::UNDEFINED);
    }
    Some(o.into())
}
