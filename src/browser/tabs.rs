//! Groups of tabs in the browser (for `Options::share_across_tabs`): a
//! `BroadcastChannel` carries the messages between the pages of this origin,
//! and a Web Lock of the same name elects the one that leads (the browser
//! gives it to the next page asking when its holder leaves or dies).
//!
//! Built with the cargo feature `tabs` only: an app that shares no socket
//! carries none of it.

use crate::host::{TabEvent, TabHandler, TabLink};
use wasm_bindgen::prelude::*;

// The group's lock is asked for at once and held until the member leaves;
// leaving before it is granted withdraws the request. Each member also
// holds the lock "<name>|member|<member>" while it lives (its posts wait
// until it holds it), which another member asks for to learn when it is
// gone. Messages are [head, body] pairs; anything else on the channel is
// ignored. Null where the page has no BroadcastChannel or no Web Locks (an
// insecure origin, a sandboxed frame).
#[wasm_bindgen(inline_js = r#"
export function tabs_join(name, member, message, leader, gone, deposed) {
  if (typeof BroadcastChannel !== "function" || !globalThis.navigator || !navigator.locks) return null;
  let channel;
  try {
    channel = new BroadcastChannel(name);
  } catch (_) {
    return null;
  }
  const abort = new AbortController();
  const releases = [];
  let left = false;
  let held = false;
  const queue = [];
  const hold = (lock, then) =>
    navigator.locks
      .request(lock, { signal: abort.signal }, () => {
        if (left) return;
        then();
        return new Promise((r) => releases.push(r));
      })
      .catch(() => {});
  channel.onmessage = (e) => {
    const d = e.data;
    if (!left && Array.isArray(d) && d.length === 2 && typeof d[0] === "string" && typeof d[1] === "string") message(d[0], d[1]);
  };
  hold(name + "|member|" + member, () => {
    held = true;
    for (const m of queue.splice(0)) channel.postMessage(m);
  });
  // The group's lock: asked for in line, or taken from a holder that does
  // not answer (steal: no signal allowed). A holder whose lock was taken
  // hears it when its page runs again, and gets in line again.
  let inLine = new AbortController();
  let leading = false;
  const lead = (steal) =>
    navigator.locks
      .request(name, steal ? { steal: true } : { signal: inLine.signal }, () => {
        if (left) return;
        leading = true;
        leader();
        return new Promise((r) => releases.push(r));
      })
      .catch(() => {
        if (left || !leading) return;
        leading = false;
        deposed();
        inLine = new AbortController();
        lead(false);
      });
  lead(false);
  return {
    post(head, body) {
      if (left) return;
      if (held) channel.postMessage([head, body]);
      else queue.push([head, body]);
    },
    watch(other) {
      navigator.locks
        .request(name + "|member|" + other, { signal: abort.signal }, () => {
          if (!left) gone(other);
        })
        .catch(() => {});
    },
    takeOver() {
      if (left || leading) return;
      inLine.abort();
      lead(true);
    },
    leave() {
      left = true;
      channel.onmessage = null;
      channel.close();
      abort.abort();
      inLine.abort();
      releases.forEach((r) => r());
    },
  };
}
export function tabs_post(link, head, body) { link.post(head, body); }
export function tabs_watch(link, member) { link.watch(member); }
export function tabs_leave(link) { link.leave(); }
export function tabs_take_over(link) { link.takeOver(); }
"#)]
extern "C" {
    fn tabs_join(name: &str, member: &str, message: &JsValue, leader: &JsValue, gone: &JsValue, deposed: &JsValue) -> JsValue;
    fn tabs_take_over(link: &JsValue);
    fn tabs_post(link: &JsValue, head: &str, body: &str);
    fn tabs_watch(link: &JsValue, member: &str);
    fn tabs_leave(link: &JsValue);
}

type Watchers = std::rc::Rc<std::cell::RefCell<Vec<(String, Box<dyn FnOnce()>)>>>;

struct Link {
    link: JsValue,
    watchers: Watchers,
    // Held while the member is in the group; dropped after it left.
    _message: Closure<dyn Fn(String, String)>,
    _leader: Closure<dyn Fn()>,
    _gone: Closure<dyn Fn(String)>,
    _deposed: Closure<dyn Fn()>,
}

impl TabLink for Link {
    fn post(&self, head: &str, body: &str) {
        tabs_post(&self.link, head, body);
    }

    fn watch(&self, member: &str, gone: Box<dyn FnOnce()>) {
        self.watchers.borrow_mut().push((member.to_owned(), gone));
        tabs_watch(&self.link, member);
    }

    fn take_over(&self) {
        tabs_take_over(&self.link);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        tabs_leave(&self.link);
    }
}

pub(crate) fn join(name: &str, member: &str, handler: TabHandler) -> Option<Box<dyn TabLink>> {
    let handler = std::rc::Rc::new(handler);
    let h = handler.clone();
    let message = Closure::<dyn Fn(String, String)>::new(move |head: String, body: String| h(TabEvent::Message(&head, &body)));
    // The lock's grant runs inside the Web Locks callback: the handler
    // runs on a task of its own, as every delivery of the seam.
    let h = handler.clone();
    let leader = Closure::<dyn Fn()>::new(move || {
        let h = h.clone();
        crate::browser::later(move || h(TabEvent::Leader));
    });
    let deposed = Closure::<dyn Fn()>::new(move || {
        let h = handler.clone();
        crate::browser::later(move || h(TabEvent::Deposed));
    });
    let watchers: Watchers = Default::default();
    let w = std::rc::Rc::downgrade(&watchers);
    let gone = Closure::<dyn Fn(String)>::new(move |member: String| {
        let Some(w) = w.upgrade() else { return };
        let due: Vec<Box<dyn FnOnce()>> = {
            let mut all = w.borrow_mut();
            let (due, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(m, _)| *m == member);
            *all = rest;
            due.into_iter().map(|(_, f)| f).collect()
        };
        crate::browser::later(move || due.into_iter().for_each(|f| f()));
    });
    let link = tabs_join(name, member, message.as_ref(), leader.as_ref(), gone.as_ref(), deposed.as_ref());
    if link.is_null() {
        return None;
    }
    Some(Box::new(Link { link, watchers, _message: message, _leader: leader, _gone: gone, _deposed: deposed }))
}
