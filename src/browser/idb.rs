//! IndexedDB as a durable store (for the durable outbox): one database per
//! store name, one object store of text records. The work is in a small
//! JS function per operation; Rust is entered once per result.
//!
//! Built with the cargo feature `persist` only: the npm package, which
//! has no durable outbox yet, carries none of it.

use crate::host::store::{Batch, DurableStore, Opened, StorageError, StorageErrorKind, Written};
use wasm_bindgen::prelude::*;

// Results are (code, message): 0 ok, 1 unavailable, 2 quota exceeded,
// 3 incompatible version, 4 closing, 5 any other failure. Writes ask for
// strict durability: a call confirmed kept survives a crash. Every result
// comes from a task of its own, never from inside the call that asked.
//
// Pages: each open store holds the Web Lock "ddp-live:<name>:<page>" while
// it is open (released by idb_close, or when the page goes), taken before
// it reads or writes anything. After reading, it claims the locks of the
// pages whose records it found (ifAvailable: a page alive, or another store
// that claimed them first, keeps them) and keeps only the records of the
// pages it could claim, holding those locks until it closes: two pages
// never take the same records. Without Web Locks every record is read.
// An open that does not finish within 5 s is "unavailable"; a failed open
// lets go of what it took.
#[wasm_bindgen(inline_js = r#"
const code = (e) => {
  const n = e && e.name;
  return n === "QuotaExceededError" ? 2 : n === "VersionError" ? 3 : n === "InvalidStateError" ? 4 : n === "SecurityError" || n === "TypeError" || n === "ReferenceError" ? 1 : 5;
};
const text = (e) => String((e && e.message) || e || "IndexedDB failed");
const later = (f) => setTimeout(f, 0);
// The locks this page let go: their release is not seen at once by another
// request, which then waits for it (briefly) instead of giving up.
const closedHere = new Set();
// Holds lock `name` until the handle closes; resolves whether it got it.
function hold(locks, handle, name, wait) {
  return new Promise((got) => {
    const options = wait ? { signal: AbortSignal.timeout(1000) } : { ifAvailable: true };
    locks
      .request(name, options, (lock) => {
        if (!lock) return got(false);
        closedHere.delete(name);
        handle.locks.push(name);
        got(true);
        return new Promise((r) => handle.releases.push(r));
      })
      .catch(() => got(false));
  });
}
function release(handle) {
  try { handle.db && handle.db.close(); } catch (_) {}
  handle.locks.forEach((l) => closedHere.add(l));
  handle.releases.forEach((r) => r());
  handle.locks = [];
  handle.releases = [];
}
export function idb_open(name, page, done) {
  const prefix = "ddp-live:" + name + ":";
  const handle = { db: null, locks: [], releases: [] };
  let finished = false;
  const end = (c, m, k, v) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (c !== 0) release(handle);
    later(() => done(c, m, c === 0 ? handle : null, k, v));
  };
  const timer = setTimeout(() => end(1, "IndexedDB did not open within 5 s", null, null), 5000);
  const locks = globalThis.navigator && navigator.locks;
  const own = locks ? hold(locks, handle, prefix + page, false) : Promise.resolve(true);
  own.then(() => {
    if (finished) return release(handle);
    let req;
    try { req = indexedDB.open(name, 1); } catch (e) { return end(code(e) === 5 ? 1 : code(e), text(e), null, null); }
    req.onupgradeneeded = () => req.result.createObjectStore("records");
    req.onerror = () => end(code(req.error), text(req.error), null, null);
    req.onsuccess = () => {
      const db = (handle.db = req.result);
      db.onversionchange = () => db.close();
      if (finished) return release(handle);
      try {
        const tx = db.transaction("records", "readonly");
        const store = tx.objectStore("records");
        const keys = store.getAllKeys(), values = store.getAll();
        tx.onerror = () => end(code(tx.error), text(tx.error), null, null);
        tx.oncomplete = () => {
          const pageOf = (k) => String(k).split("-")[0];
          const marks = [...new Set(keys.result.map(pageOf))].filter((m) => m !== page);
          const claims = marks.map((m) => (locks ? hold(locks, handle, prefix + m, closedHere.has(prefix + m)) : Promise.resolve(true)));
          Promise.all(claims).then((got) => {
            const mine = new Set(marks.filter((_, i) => got[i]));
            const ks = [], vs = [];
            keys.result.forEach((k, i) => { if (mine.has(pageOf(k))) { ks.push(k); vs.push(values.result[i]); } });
            end(0, "", ks, vs);
          });
        };
      } catch (e) { end(code(e), text(e), null, null); }
    };
  });
}
export function idb_put(handle, key, value, done) {
  let settled = false;
  const end = (c, m) => { if (!settled) { settled = true; later(() => done(c, m)); } };
  try {
    const tx = handle.db.transaction("records", "readwrite", { durability: "strict" });
    tx.objectStore("records").put(value, key);
    tx.oncomplete = () => end(0, "");
    tx.onerror = tx.onabort = () => end(code(tx.error), text(tx.error));
  } catch (e) {
    // All or none: what was queued before the throw must not commit.
    try { tx && tx.abort(); } catch (_) {}
    end(code(e), text(e));
  }
}
export function idb_delete(handle, key) {
  try { handle.db.transaction("records", "readwrite").objectStore("records").delete(key); } catch (_) {}
}
export function idb_close(handle) {
  release(handle);
}
// The cache: one database shared by every page (no locks), its records of
// one key range read at open, written in batches of one transaction each
// ("relaxed": a cache may lose its last writes in a crash, never a call).
const range = (p) => IDBKeyRange.bound(p, p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1), false, true);
export function idb_cache_open(name, prefix, done) {
  const handle = { db: null, locks: [], releases: [] };
  let finished = false;
  const end = (c, m, k, v) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (c !== 0) release(handle);
    later(() => done(c, m, c === 0 ? handle : null, k, v));
  };
  const timer = setTimeout(() => end(1, "IndexedDB did not open within 5 s", null, null), 5000);
  let req;
  try { req = indexedDB.open(name, 1); } catch (e) { return end(code(e) === 5 ? 1 : code(e), text(e), null, null); }
  req.onupgradeneeded = () => req.result.createObjectStore("records");
  req.onerror = () => end(code(req.error), text(req.error), null, null);
  req.onsuccess = () => {
    const db = (handle.db = req.result);
    db.onversionchange = () => db.close();
    if (finished) return release(handle);
    try {
      const tx = db.transaction("records", "readonly");
      const store = tx.objectStore("records");
      const keys = store.getAllKeys(range(prefix)), values = store.getAll(range(prefix));
      tx.onerror = () => end(code(tx.error), text(tx.error), null, null);
      tx.oncomplete = () => end(0, "", keys.result, values.result);
    } catch (e) { end(code(e), text(e), null, null); }
  };
}
export function idb_batch(handle, clear, dels, keys, values, done) {
  let settled = false;
  let tx = null;
  const end = (c, m) => { if (!settled) { settled = true; later(() => done(c, m)); } };
  try {
    tx = handle.db.transaction("records", "readwrite", { durability: "relaxed" });
    const store = tx.objectStore("records");
    clear.forEach((p) => store.delete(range(p)));
    dels.forEach((k) => store.delete(k));
    keys.forEach((k, i) => store.put(values[i], k));
    tx.oncomplete = () => end(0, "");
    tx.onerror = tx.onabort = () => end(code(tx.error), text(tx.error));
  } catch (e) { end(code(e), text(e)); }
}
"#)]
extern "C" {
    fn idb_open(name: &str, page: &str, done: JsValue);
    fn idb_put(handle: &JsValue, key: &str, value: &str, done: JsValue);
    fn idb_delete(handle: &JsValue, key: &str);
    fn idb_close(handle: &JsValue);
    fn idb_cache_open(name: &str, prefix: &str, done: JsValue);
    fn idb_batch(handle: &JsValue, clear: js_sys::Array, dels: js_sys::Array, keys: js_sys::Array, values: js_sys::Array, done: JsValue);
}

fn error(code: u32, message: String) -> StorageError {
    let kind = match code {
        1 => StorageErrorKind::Unavailable,
        2 => StorageErrorKind::QuotaExceeded,
        3 => StorageErrorKind::Incompatible,
        4 => StorageErrorKind::Closing,
        _ => StorageErrorKind::Failed,
    };
    StorageError::new(kind, message)
}

/// What an open hands to Rust: the store and its records, or why not.
fn on_open(opened: Opened) -> JsValue {
    Closure::once_into_js(move |code: u32, message: String, db: JsValue, keys: JsValue, values: JsValue| {
        if code != 0 {
            return opened(Err(error(code, message)));
        }
        let (keys, values) = (js_sys::Array::from(&keys), js_sys::Array::from(&values));
        let records = keys.iter().zip(values.iter()).filter_map(|(k, v)| Some((k.as_string()?, v.as_string()?))).collect();
        opened(Ok((Box::new(IdbStore { handle: db }), records)));
    })
}

/// Opens IndexedDB store `name` (its database, made on first use) for page
/// `page`: the records of pages still alive are left out.
pub(crate) fn open(name: &str, page: &str, opened: Opened) {
    idb_open(name, page, on_open(opened));
}

/// Opens IndexedDB cache store `name` (shared by every page) with its
/// records whose keys start with `prefix`.
pub(crate) fn open_cache(name: &str, prefix: &str, opened: Opened) {
    idb_cache_open(name, prefix, on_open(opened));
}

fn strings(items: impl IntoIterator<Item = String>) -> js_sys::Array {
    items.into_iter().map(JsValue::from).collect()
}

struct IdbStore {
    /// `{ db, release }`: the database and the page's lock.
    handle: JsValue,
}

impl DurableStore for IdbStore {
    fn put(&self, key: &str, value: &str, done: Written) {
        let done =
            Closure::once_into_js(move |code: u32, message: String| done(if code == 0 { Ok(()) } else { Err(error(code, message)) }));
        idb_put(&self.handle, key, value, done);
    }

    fn delete(&self, key: &str) {
        idb_delete(&self.handle, key);
    }

    fn batch(&self, batch: Batch, done: Written) {
        let done =
            Closure::once_into_js(move |code: u32, message: String| done(if code == 0 { Ok(()) } else { Err(error(code, message)) }));
        let (keys, values): (Vec<String>, Vec<String>) = batch.put.into_iter().unzip();
        idb_batch(&self.handle, strings(batch.clear), strings(batch.delete), strings(keys), strings(values), done);
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        idb_close(&self.handle);
    }
}
