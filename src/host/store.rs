//! Durable stores: what the host gives a durable outbox to keep its
//! records in (IndexedDB in the browser). Text keys and values; writes are
//! confirmed (or refused) by a callback, and every failure is a typed
//! [`StorageError`], never a panic and never a silent loss.

/// Why a durable store could not keep (or read) something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// What the storage said.
    pub message: String,
}

/// The kinds of [`StorageError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// There is no durable storage here (IndexedDB missing or refused: a
    /// private window, an opaque origin; natively without a store).
    Unavailable,
    /// The storage quota is full.
    QuotaExceeded,
    /// The store was written by another version of the client (its
    /// database version), and cannot be used here.
    Incompatible,
    /// The database is closing (the page is going away, or another tab
    /// upgraded it).
    Closing,
    /// Any other failure of the storage.
    Failed,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        StorageError { kind, message: message.into() }
    }

    /// The error's code: `storage-unavailable`, `storage-quota-exceeded`,
    /// `storage-incompatible`, `storage-closing`, `storage-failed`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            StorageErrorKind::Unavailable => "storage-unavailable",
            StorageErrorKind::QuotaExceeded => "storage-quota-exceeded",
            StorageErrorKind::Incompatible => "storage-incompatible",
            StorageErrorKind::Closing => "storage-closing",
            StorageErrorKind::Failed => "storage-failed",
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message, self.code())
    }
}

impl std::error::Error for StorageError {}

/// Which records an opened store reads, and who shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// A durable outbox's store, for page `.0`: the page is marked alive
    /// while the store stays open (a Web Lock in the browser), and the
    /// records of pages no longer alive (keys `<page>-…`) are read, whose
    /// marks the store then holds too (so no other page takes them).
    Page(&'a str),
    /// A cache shared by every page: the records whose keys start with
    /// `.0` are read.
    #[cfg_attr(all(target_arch = "wasm32", not(feature = "persist")), allow(dead_code))]
    Shared(&'a str),
}

/// Called once when a write is kept, or with why it was not.
pub type Written = Box<dyn FnOnce(Result<(), StorageError>)>;

/// Called once with an opened store and its records (by key order), or
/// with why there is none.
pub type Opened = Box<dyn FnOnce(Result<(Box<dyn DurableStore>, Vec<(String, String)>), StorageError>)>;

/// Writes applied together, in one transaction ([`DurableStore::batch`]):
/// first every key starting with one of `clear` goes, then each of
/// `delete`, then each of `put` is kept.
#[cfg_attr(all(target_arch = "wasm32", not(feature = "persist")), allow(dead_code))]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub clear: Vec<String>,
    pub delete: Vec<String>,
    pub put: Vec<(String, String)>,
}

#[cfg_attr(all(target_arch = "wasm32", not(feature = "persist")), allow(dead_code))]
impl Batch {
    /// True when it writes nothing.
    pub fn is_empty(&self) -> bool {
        self.clear.is_empty() && self.delete.is_empty() && self.put.is_empty()
    }
}

/// An open durable store of text records. Dropping it closes it (writes
/// already asked for are still done).
pub trait DurableStore {
    /// Keeps `value` under `key` (replacing what was there); `done` hears
    /// whether it was kept (possibly before `put` returns).
    fn put(&self, key: &str, value: &str, done: Written);
    /// Forgets `key`.
    fn delete(&self, key: &str);
    #[cfg_attr(all(target_arch = "wasm32", not(feature = "persist")), allow(dead_code))]
    /// Applies `batch` at once (all of it, or none when it fails); `done`
    /// hears whether it was kept.
    fn batch(&self, batch: Batch, done: Written);
}

/// Whether `key` starts with one of `prefixes`.
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
fn cleared(key: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

/// The page mark of a record's key (`<page>-…`).
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
fn page_of(key: &str) -> &str {
    key.split_once('-').map_or(key, |(page, _)| page)
}

/// Stores in memory (the process's natively; the simulated host's own):
/// records live as long as these do, shared by every store opened under
/// the same name, each page alive while its store is open.
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
#[derive(Default, Clone)]
pub(crate) struct MemoryStores(std::sync::Arc<std::sync::Mutex<MemoryState>>);

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
#[derive(Default)]
pub(crate) struct MemoryState {
    /// Each store's records, by name.
    records: Vec<(String, Vec<(String, String)>)>,
    /// The pages alive: (store, page).
    alive: Vec<(String, String)>,
}

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
impl MemoryStores {
    pub(crate) fn open(&self, name: &str, access: Access<'_>, opened: Opened) {
        let page = match access {
            Access::Page(page) => page,
            Access::Shared(prefix) => return self.open_cache(name, prefix, opened),
        };
        let (records, held) = {
            let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            state.alive.push((name.to_owned(), page.to_owned()));
            let alive: Vec<String> = state.alive.iter().filter(|(n, _)| n == name).map(|(_, p)| p.clone()).collect();
            let mut records: Vec<(String, String)> = match state.records.iter().find(|(n, _)| n == name) {
                Some((_, records)) => records.iter().filter(|(k, _)| !alive.iter().any(|p| p == page_of(k))).cloned().collect(),
                None => {
                    state.records.push((name.to_owned(), Vec::new()));
                    Vec::new()
                }
            };
            crate::protocol::order::sort_by(&mut records, |a, b| a.0.cmp(&b.0));
            // The gone pages whose records these are: this store holds
            // them now (under the same lock), so no other store takes them.
            let mut held = vec![page.to_owned()];
            for (key, _) in &records {
                let dead = page_of(key);
                if !held.iter().any(|p| p == dead) {
                    held.push(dead.to_owned());
                    state.alive.push((name.to_owned(), dead.to_owned()));
                }
            }
            (records, held)
        };
        opened(Ok((Box::new(MemoryStore { stores: self.clone(), name: name.to_owned(), pages: held }), records)));
    }

    /// Opens cache store `name` (no page marks: every page shares it) and
    /// reads its records whose keys start with `prefix`.
    fn open_cache(&self, name: &str, prefix: &str, opened: Opened) {
        let records = {
            let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match state.records.iter().find(|(n, _)| n == name) {
                Some((_, records)) => {
                    let mut mine: Vec<(String, String)> = records.iter().filter(|(k, _)| k.starts_with(prefix)).cloned().collect();
                    crate::protocol::order::sort_by(&mut mine, |a, b| a.0.cmp(&b.0));
                    mine
                }
                None => {
                    state.records.push((name.to_owned(), Vec::new()));
                    Vec::new()
                }
            }
        };
        opened(Ok((Box::new(MemoryStore { stores: self.clone(), name: name.to_owned(), pages: Vec::new() }), records)));
    }

    /// The records of store `name` (for tests).
    #[cfg(test)]
    pub(crate) fn records(&self, name: &str) -> Vec<(String, String)> {
        self.with(name, |r| r.clone()).unwrap_or_default()
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut Vec<(String, String)>) -> R) -> Option<R> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.records.iter_mut().find(|(n, _)| n == name).map(|(_, records)| f(records))
    }

    /// How many records store `name` holds (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self, name: &str) -> usize {
        self.with(name, |r| r.len()).unwrap_or(0)
    }

    /// How many calls store `name` keeps (for tests: a page's session
    /// record, `<page>-session`, is not one).
    #[cfg(test)]
    pub(crate) fn calls(&self, name: &str) -> usize {
        let session = format!("-{}", crate::protocol::durable::SESSION_KEY);
        self.with(name, |r| r.iter().filter(|(k, _)| !k.ends_with(&session)).count()).unwrap_or(0)
    }
}

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
struct MemoryStore {
    stores: MemoryStores,
    name: String,
    /// Its own page and the gone pages whose records it took.
    pages: Vec<String>,
}

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
impl DurableStore for MemoryStore {
    fn put(&self, key: &str, value: &str, done: Written) {
        self.stores.with(&self.name, |records| match records.iter_mut().find(|(k, _)| k == key) {
            Some(r) => r.1 = value.to_owned(),
            None => records.push((key.to_owned(), value.to_owned())),
        });
        done(Ok(()));
    }

    fn delete(&self, key: &str) {
        self.stores.with(&self.name, |records| records.retain(|(k, _)| k != key));
    }

    fn batch(&self, batch: Batch, done: Written) {
        self.stores.with(&self.name, |records| {
            records.retain(|(k, _)| !cleared(k, &batch.clear) && !batch.delete.contains(k));
            for (key, value) in batch.put {
                match records.iter_mut().find(|(k, _)| *k == key) {
                    Some(r) => r.1 = value,
                    None => records.push((key, value)),
                }
            }
        });
        done(Ok(()));
    }
}

#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "native")))]
impl Drop for MemoryStore {
    /// The page is gone: its records (and those it took) are the next
    /// page's to restore.
    fn drop(&mut self) {
        let mut state = self.stores.0.lock().unwrap_or_else(|e| e.into_inner());
        for page in &self.pages {
            if let Some(i) = state.alive.iter().position(|(n, p)| n == &self.name && p == page) {
                state.alive.swap_remove(i);
            }
        }
    }
}
