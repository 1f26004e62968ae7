//! Subscriptions and collections for JavaScript.

use super::{as_function, call_js, ejson, get, js_error, DdpConnection, StopHandle};
use crate::data::{Collection, Subscription, SubscriptionEnd};
use js_sys::{Array, Function, Object};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_DATA: &'static str = r#"
/** Callbacks of `subscribe` (Meteor's shape). */
export interface DDPSubscribeCallbacks {
  onReady?: () => void;
  /** Called once when the subscription ends: with the server's error, or without when stopped. */
  onStop?: (error?: DDPMethodError) => void;
}

/** A document: its fields (EJSON-decoded) and `_id`. */
export type DDPDocument = { _id: string } & Record<string, unknown>;

/** One change to a collection. */
export type DDPChange =
  | { type: "added"; id: string; fields: Record<string, unknown> }
  | { type: "changed"; id: string; fields: Record<string, unknown>; cleared: string[] }
  | { type: "removed"; id: string };
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "unknown[]")]
    pub type JsSubArgs;
    #[wasm_bindgen(typescript_type = "DDPDocument[]")]
    pub type JsDocs;
    #[wasm_bindgen(typescript_type = "DDPDocument | undefined")]
    pub type JsDoc;
    #[wasm_bindgen(typescript_type = "(change: DDPChange) => void")]
    pub type JsChangeCallback;
    #[wasm_bindgen(typescript_type = "(ready: boolean) => void")]
    pub type JsReadyCallback;
}

fn end_to_js(end: &SubscriptionEnd) -> Vec<JsValue> {
    match end {
        SubscriptionEnd::Stopped => vec![],
        SubscriptionEnd::Failed(e) => {
            let err = crate::MethodError::Server {
                error: e.get("error").cloned().unwrap_or(Value::Null),
                reason: e.get("reason").and_then(Value::as_str).map(str::to_owned),
                details: e.get("details").cloned(),
                raw: e.clone(),
            };
            vec![super::method_error_to_js(&err)]
        }
    }
}

/// A subscription (JavaScript API).
#[wasm_bindgen(js_name = DDPSubscription)]
pub struct JsSubscription {
    sub: Subscription,
}

#[wasm_bindgen(js_class = DDPSubscription)]
impl JsSubscription {
    /// The DDP subscription id.
    #[wasm_bindgen(getter, js_name = subscriptionId)]
    pub fn subscription_id(&self) -> String {
        self.sub.id().to_owned()
    }

    /// True once the server said `ready`; stays true across reconnects.
    pub fn ready(&self) -> bool {
        self.sub.ready()
    }

    /// Calls `callback` at once with the readiness, then on every change.
    #[wasm_bindgen(js_name = onReadyChange)]
    pub fn on_ready_change(&self, callback: JsReadyCallback) -> Result<StopHandle, JsValue> {
        super::watch(callback.into(), "onReadyChange", self.sub.ready_observable(), |r| JsValue::from_bool(*r))
    }

    /// Stops the subscription (not re-sent after reconnects; its documents go).
    pub fn stop(&self) {
        self.sub.stop();
    }
}

/// A live collection (JavaScript API).
#[wasm_bindgen(js_name = DDPCollection)]
pub struct JsCollection {
    pub(super) coll: Collection,
}

#[wasm_bindgen(js_class = DDPCollection)]
impl JsCollection {
    /// The collection's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.coll.name().to_owned()
    }

    /// The documents matching a Mongo `selector` (all without one), with
    /// `options` (`sort`, `skip`, `limit`, `fields`), as minimongo's
    /// `find(selector, options).fetch()`; see `src/js/query.rs`.
    #[wasm_bindgen(skip_typescript)]
    pub fn find(&self, selector: JsValue, options: JsValue) -> Result<JsDocs, JsValue> {
        if selector.is_undefined() && options.is_undefined() {
            return Ok(self.coll.with_docs(super::tojs::documents).unchecked_into());
        }
        self.find_impl(&selector, &options)
    }

    /// One document by `_id` or the first matching `selector`, or `undefined`.
    #[wasm_bindgen(js_name = findOne, skip_typescript)]
    pub fn find_one(&self, id_or_selector: JsValue, options: JsValue) -> Result<JsDoc, JsValue> {
        if let (Some(id), true) = (id_or_selector.as_string(), options.is_undefined()) {
            return Ok(self.coll.with_doc(&id, |f| super::tojs::document(&id, f)).unwrap_or(JsValue::UNDEFINED).unchecked_into());
        }
        self.find_one_impl(&id_or_selector, &options)
    }

    /// How many documents.
    pub fn count(&self) -> usize {
        self.coll.len()
    }

    /// Calls `callback` with every change (`added`, `changed`, `removed`)
    /// until `stop()` is called on the returned handle.
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, callback: JsChangeCallback) -> Result<StopHandle, JsValue> {
        let f = as_function(callback.into(), "onChange")?;
        let handle = self.coll.on_change(move |c| call_js(&f, &[super::tojs::change(c)]));
        Ok(StopHandle::new(handle))
    }
}

impl DdpConnection {
    pub(super) fn subscribe_impl(&self, name: &str, args: Array) -> Result<JsSubscription, JsValue> {
        // Meteor's rule: a last argument that is a function is onReady; an
        // object whose keys are all callbacks holds onReady / onStop.
        let mut on_ready: Option<Function> = None;
        let mut on_stop: Option<Function> = None;
        let n = args.length();
        if n > 0 {
            let last = args.get(n - 1);
            if let Some(f) = last.dyn_ref::<Function>() {
                on_ready = Some(f.clone());
                args.pop();
            } else if is_callbacks(&last) {
                on_ready = get(&last, "onReady").dyn_into().ok();
                on_stop = get(&last, "onStop").dyn_into().ok().or_else(|| get(&last, "onError").dyn_into().ok());
                args.pop();
            }
        }
        let params = args
            .iter()
            .map(|a| ejson::from_js(&a).map(|e| e.to_json()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| js_error("bad-arguments", &format!("subscribe(): {e}")))?;
        let sub = self.conn.subscribe_raw(name, params);
        if let Some(f) = on_ready {
            let fired = std::cell::Cell::new(false);
            let h = sub.ready_observable().subscribe(move |r| {
                if *r && !fired.replace(true) {
                    call_js(&f, &[]);
                }
            });
            h.forget(); // lives with the subscription
        }
        if let Some(f) = on_stop {
            let h = sub.ended_observable().subscribe(move |e| {
                if let Some(end) = e {
                    call_js(&f, &end_to_js(end));
                }
            });
            h.forget();
        }
        Ok(JsSubscription { sub })
    }

    pub(super) fn collection_impl(&self, name: &str) -> JsCollection {
        JsCollection { coll: self.conn.collection(name) }
    }
}

fn is_callbacks(v: &JsValue) -> bool {
    let Some(obj) = v.dyn_ref::<Object>() else { return false };
    if Array::is_array(v) || v.is_function() {
        return false;
    }
    let keys = Object::keys(obj);
    keys.length() > 0
        && keys.iter().all(|k| {
            let k = k.as_string().unwrap_or_default();
            matches!(k.as_str(), "onReady" | "onStop" | "onError") && get(v, &k).is_function()
        })
}
