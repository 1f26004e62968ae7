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
// strict durability: a call confirmed kept survives a crash.
#[wasm_bindgen(inline_js = r#"
const code = (e) => {
  const n = e && e.name;
  return n === "QuotaExceededError" ? 2 : n === "VersionError" ? 3 : n === "InvalidStateError" ? 4 : n === "SecurityError" || n === "TypeError" || n === "ReferenceError" ? 1 : 5;
};
const text = (e) => String((e && e.message) || e || "IndexedDB failed");
export function idb_open(name, done) {
  let req;
  try { req = indexedDB.open(name, 1); } catch (e) { return done(code(e) === 5 ? 1 : code(e), text(e), null, null, null); }
  req.onupgradeneeded = () => req.result.createObjectStore("records");
  req.onerror = () => done(code(req.error), text(req.error), null, null, null);
  req.onblocked = () => {};
  req.onsuccess = () => {
    const db = req.result;
    db.onversionchange = () => db.close();
    try {
      const tx = db.transaction("records", "readonly");
      const store = tx.objectStore("records");
      const keys = store.getAllKeys(), values = store.getAll();
      tx.oncomplete = () => done(0, "", db, keys.result, values.result);
      tx.onerror = () => done(code(tx.error), text(tx.error), null, null, null);
    } catch (e) { done(code(e), text(e), null, null, null); }
  };
}
export function idb_put(db, key, value, done) {
  let settled = false;
  const end = (c, m) => { if (!settled) { settled = true; done(c, m); } };
  try {
    const tx = db.transaction("records", "readwrite", { durability: "strict" });
    tx.objectStore("records").put(value, key);
    tx.oncomplete = () => end(0, "");
    tx.onerror = tx.onabort = () => end(code(tx.error), text(tx.error));
  } catch (e) { end(code(e), text(e)); }
}
export function idb_delete(db, key) {
  try { db.transaction("records", "readwrite").objectStore("records").delete(key); } catch (_) {}
}
export function idb_close(db) { db.close(); }
"#)]
extern "C" {
    fn idb_open(name: &str, done: JsValue);
    fn idb_put(db: &JsValue, key: &str, value: &str, done: JsValue);
    fn idb_delete(db: &JsValue, key: &str);
    fn idb_close(db: &JsValue);
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

/// Opens IndexedDB store `name` (its database, made on first use).
pub(crate) fn open(name: &str, opened: Opened) {
    let done = Closure::once_into_js(move |code: u32, message: String, db: JsValue, keys: JsValue, values: JsValue| {
        if code != 0 {
            return opened(Err(error(code, message)));
        }
        let (keys, values) = (js_sys::Array::from(&keys), js_sys::Array::from(&values));
        let records = keys.iter().zip(values.iter()).filter_map(|(k, v)| Some((k.as_string()?, v.as_string()?))).collect();
        opened(Ok((Box::new(IdbStore { db }), records)));
    });
    idb_open(name, done);
}

struct IdbStore {
    db: JsValue,
}

impl DurableStore for IdbStore {
    fn put(&self, key: &str, value: &str, done: Written) {
        let done =
            Closure::once_into_js(move |code: u32, message: String| done(if code == 0 { Ok(()) } else { Err(error(code, message)) }));
        idb_put(&self.db, key, value, done);
    }

    fn delete(&self, key: &str) {
        idb_delete(&self.db, key);
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        idb_close(&self.db);
    }
}
