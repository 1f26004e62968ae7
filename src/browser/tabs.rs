//! Groups of tabs in the browser (for `Options::share_across_tabs`): a
//! `BroadcastChannel` carries the messages between the pages of this origin,
//! and a Web Lock of the same name elects the one that leads (the browser
//! gives it to the next page asking when its holder leaves or dies).
//!
//! Built with the cargo feature `tabs` only: an app that shares no socket
//! carries none of it.

use crate::host::{TabEvent, TabHandler, TabLink};
use wasm_bindgen::prelude::*;

// The lock is asked for at once and held until the member leaves; leaving
// before it is granted withdraws the request. Messages are [head, body]
// pairs; anything else on the channel is ignored. Null where the page has
// no BroadcastChannel or no Web Locks (an insecure origin).
#[wasm_bindgen(inline_js = r#"
export function tabs_join(name, message, leader) {
  if (typeof BroadcastChannel !== "function" || !globalThis.navigator || !navigator.locks) return null;
  let channel;
  try {
    channel = new BroadcastChannel(name);
  } catch (_) {
    return null; // an opaque origin, a sandboxed frame
  }
  const abort = new AbortController();
  let release = null;
  let left = false;
  channel.onmessage = (e) => {
    const d = e.data;
    if (!left && Array.isArray(d) && d.length === 2 && typeof d[0] === "string" && typeof d[1] === "string") message(d[0], d[1]);
  };
  navigator.locks
    .request(name, { signal: abort.signal }, () => {
      if (left) return;
      return new Promise((r) => {
        release = r;
        leader();
      });
    })
    .catch(() => {});
  return {
    post(head, body) {
      if (!left) channel.postMessage([head, body]);
    },
    leave() {
      left = true;
      channel.onmessage = null;
      channel.close();
      abort.abort();
      if (release) release();
    },
  };
}
export function tabs_post(link, head, body) { link.post(head, body); }
export function tabs_leave(link) { link.leave(); }
"#)]
extern "C" {
    fn tabs_join(name: &str, message: &JsValue, leader: &JsValue) -> JsValue;
    fn tabs_post(link: &JsValue, head: &str, body: &str);
    fn tabs_leave(link: &JsValue);
}

struct Link {
    link: JsValue,
    // Held while the member is in the group; dropped after it left.
    _message: Closure<dyn Fn(String, String)>,
    _leader: Closure<dyn Fn()>,
}

impl TabLink for Link {
    fn post(&self, head: &str, body: &str) {
        tabs_post(&self.link, head, body);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        tabs_leave(&self.link);
    }
}

pub(crate) fn join(name: &str, handler: TabHandler) -> Option<Box<dyn TabLink>> {
    let handler = std::rc::Rc::new(handler);
    let h = handler.clone();
    let message = Closure::<dyn Fn(String, String)>::new(move |head: String, body: String| h(TabEvent::Message(&head, &body)));
    // The lock's grant runs inside the Web Locks callback: the handler
    // runs on a task of its own, as every delivery of the seam.
    let leader = Closure::<dyn Fn()>::new(move || {
        let h = handler.clone();
        crate::browser::later(move || h(TabEvent::Leader));
    });
    let link = tabs_join(name, message.as_ref(), leader.as_ref());
    if link.is_null() {
        return None;
    }
    Some(Box::new(Link { link, _message: message, _leader: leader }))
}
