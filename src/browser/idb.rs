//! IndexedDB as a durable store (for the durable outbox): one database per
//! store name, one object store of text records. The work is in a small
//! JS function per operation; Rust is entered once per result.
//!
//! Built with the cargo feature `persist` only: the npm package, which
//! has no durable outbox yet, carries none of it.

use crate::host::store::{DurableStore, Opened, StorageError, StorageErrorKind, Written};
use wasm_bindgen::prelude::*;

// Results are (code, message): 0 ok, 1 unavailable, 2 quota exceeded,
// 3 incompatible version, 4 closing, 5 any other failure. Writes ask for
// strict durability: a call confirmed kept survives a crash. Every result
// comes from a task of its own, never from inside the call that asked.
//
// Pages: each open store holds the Web Lock "ddp-live:<name>:<page>" while
// it is open (released by idb_close, or when the page goes), and the
// records of pages whose lock is held are left out: a tab never takes
// another live tab's calls. Without Web Locks every record is read.
// An open that does not finish within 5 s is "unavailable".
#[wasm_bindgen(inline_js = r#"
const code = (e) => {
  const n = e && e.name;
  return n === "QuotaExceededError" ? 2 : n === "VersionError" ? 3 : n === "InvalidStateError" ? 4 : n === "SecurityError" || n === "TypeError" || n === "ReferenceError" ? 1 : 5;
};
const text = (e) => String((e && e.message) || e || "IndexedDB failed");
const later = (f) => setTimeout(f, 0);
// The locks this page let go: their release is not seen at once by a query.
const closedHere = new Set();
export function idb_open(name, page, done) {
  let finished = false;
  const end = (c, m, h, k, v) => { if (!finished) { finished = true; later(() => done(c, m, h, k, v)); } };
  const timer = setTimeout(() => end(1, "IndexedDB did not open within 5 s", null, null, null), 5000);
  const prefix = "ddp-live:" + name + ":";
  const handle = { db: null, release: null, lock: prefix + page };
  const locks = globalThis.navigator && navigator.locks;
  if (locks) locks.request(handle.lock, () => new Promise((r) => { handle.release = r; })).catch(() => {});
  const held = locks ? locks.query().then((s) => s.held.map((l) => l.name), () => []) : Promise.resolve([]);
  held.then((held) => {
    let req;
    try { req = indexedDB.open(name, 1); } catch (e) { clearTimeout(timer); return end(code(e) === 5 ? 1 : code(e), text(e), null, null, null); }
    req.onupgradeneeded = () => req.result.createObjectStore("records");
    req.onerror = () => { clearTimeout(timer); end(code(req.error), text(req.error), null, null, null); };
    req.onsuccess = () => {
      const db = (handle.db = req.result);
      db.onversionchange = () => db.close();
      if (finished) return void db.close();
      try {
        const tx = db.transaction("records", "readonly");
        const store = tx.objectStore("records");
        const keys = store.getAllKeys(), values = store.getAll();
        tx.oncomplete = () => {
          clearTimeout(timer);
          const live = (k) => {
            const lock = prefix + String(k).split("-")[0];
            return held.includes(lock) && !closedHere.has(lock);
          };
          const ks = [], vs = [];
          keys.result.forEach((k, i) => { if (!live(k)) { ks.push(k); vs.push(values.result[i]); } });
          end(0, "", handle, ks, vs);
        };
        tx.onerror = () => { clearTimeout(timer); end(code(tx.error), text(tx.error), null, null, null); };
      } catch (e) { clearTimeout(timer); end(code(e), text(e), null, null, null); }
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
  } catch (e) { end(code(e), text(e)); }
}
export function idb_delete(handle, key) {
  try { handle.db.transaction("records", "readwrite").objectStore("records").delete(key); } catch (_) {}
}
export function idb_close(handle) {
  try { handle.db && handle.db.close(); } catch (_) {}
  closedHere.add(handle.lock);
  if (handle.release) handle.release();
}
"#)]
extern "C" {
    fn idb_open(name: &str, page: &str, done: JsValue);
    fn idb_put(handle: &JsValue, key: &str, value: &str, done: JsValue);
    fn idb_delete(handle: &JsValue, key: &str);
    fn idb_close(handle: &JsValue);
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

/// Opens IndexedDB store `name` (its database, made on first use) for page
/// `page`: the records of pages still alive are left out.
pub(crate) fn open(name: &str, page: &str, opened: Opened) {
    let done = Closure::once_into_js(move |code: u32, message: String, db: JsValue, keys: JsValue, values: JsValue| {
        if code != 0 {
            return opened(Err(error(code, message)));
        }
        let (keys, values) = (js_sys::Array::from(&keys), js_sys::Array::from(&values));
        let records = keys.iter().zip(values.iter()).filter_map(|(k, v)| Some((k.as_string()?, v.as_string()?))).collect();
        opened(Ok((Box::new(IdbStore { handle: db }), records)));
    });
    idb_open(name, page, done);
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
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        idb_close(&self.handle);
    }
}
