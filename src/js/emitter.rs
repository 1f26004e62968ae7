//! `on` / `once` / `off` for the JS classes, with the event names each knows.

use super::{call_js, js_error};
use js_sys::{Function, Object};
use std::cell::RefCell;
use std::rc::Rc;

struct JsListener {
    event: &'static str,
    callback: Function,
    once: bool,
}

/// Listeners by event name; aliases map to one canonical name.
#[derive(Clone)]
pub(crate) struct Emitter {
    /// (name accepted, canonical name) this class knows beyond the
    /// connection events every class has.
    extra: &'static [(&'static str, &'static str)],
    listeners: Rc<RefCell<Vec<JsListener>>>,
}

impl Emitter {
    pub(crate) fn new(extra: &'static [(&'static str, &'static str)]) -> Self {
        Emitter { extra, listeners: Rc::default() }
    }

    fn names(&self) -> impl Iterator<Item = &(&'static str, &'static str)> {
        CONNECTION_EVENTS.iter().chain(self.extra)
    }

    fn canonical(&self, event: &str) -> Option<&'static str> {
        self.names().find(|(n, _)| *n == event).map(|(_, c)| *c)
    }

    pub(crate) fn add(&self, event: &str, callback: Function, once: bool) -> Result<(), wasm_bindgen::JsValue> {
        let Some(event) = self.canonical(event) else {
            let known: Vec<&str> = self.names().map(|(n, _)| *n).collect();
            return Err(js_error(
                "unknown-event",
                &format!("unknown event \"{event}\"; known events: {}", crate::protocol::join(&known, ", ")),
            ));
        };
        self.listeners.borrow_mut().push(JsListener { event, callback, once });
        Ok(())
    }

    /// Removes `callback` from `event`, or every listener of `event`.
    pub(crate) fn off(&self, event: &str, callback: Option<Function>) {
        let Some(event) = self.canonical(event) else { return };
        self.listeners.borrow_mut().retain(|x| x.event != event || callback.as_ref().is_some_and(|f| !Object::is(f, &x.callback)));
    }

    pub(crate) fn clear(&self) {
        self.listeners.borrow_mut().clear();
    }

    /// Calls the listeners of canonical event `name`; once-listeners are
    /// removed before they run, and no borrow is held while they run.
    pub(crate) fn emit(&self, name: &str, args: &[wasm_bindgen::JsValue]) {
        let callbacks: Vec<Function> = {
            let mut all = self.listeners.borrow_mut();
            let cbs = all.iter().filter(|x| x.event == name).map(|x| x.callback.clone()).collect();
            all.retain(|x| !(x.once && x.event == name));
            cbs
        };
        for cb in callbacks {
            call_js(&cb, args);
        }
    }
}

/// The events of a DDP connection (and their js-collaboration spellings),
/// which a room connection has too.
const CONNECTION_EVENTS: &[(&str, &str)] = &[
    ("connect", "connect"),
    ("disconnect", "disconnect"),
    ("error", "error"),
    ("reconnect_attempt", "reconnect_attempt"),
    ("reconnectAttempts", "reconnect_attempt"),
    ("reconnect", "reconnect"),
    ("reconnect_failed", "reconnect_failed"),
    ("reconnectFailed", "reconnect_failed"),
];

/// The events a room connection adds.
pub(crate) const ROOM_EVENTS: &[(&str, &str)] = &[("message", "message")];
