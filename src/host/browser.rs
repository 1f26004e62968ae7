//! The browser as a [`Host`]: a thin adapter over [`crate::browser`].

use super::{Guard, Host, HostSocket, PageEvent, SocketHandler};
use crate::browser;

/// The page the wasm runs in.
pub(crate) struct Browser;

impl HostSocket for browser::Socket {
    fn send(&self, text: &str) -> Result<(), String> {
        browser::Socket::send(self, text)
    }
}

impl Host for Browser {
    fn clocks(&self) -> (f64, f64) {
        (browser::now(), browser::monotonic())
    }

    fn random(&self) -> f64 {
        browser::random()
    }

    fn later(&self, f: Box<dyn FnOnce()>) {
        browser::later(f);
    }

    fn timer(&self, ms: u32, f: Box<dyn FnOnce()>) -> Guard {
        Box::new(gloo_timers::callback::Timeout::new(ms, f))
    }

    fn open_socket(&self, url: &str, max_len: usize, handler: SocketHandler) -> Result<Box<dyn HostSocket>, String> {
        Ok(Box::new(browser::Socket::open(url, max_len, handler)?))
    }

    fn watch_page(&self, handler: Box<dyn Fn(PageEvent)>) -> Option<(Guard, usize)> {
        let watch = browser::PageWatch::new(handler);
        let n = watch.len();
        Some((Box::new(watch), n))
    }

    fn log_error(&self, message: &str) {
        web_sys::console::error_1(&message.into());
    }

    fn storage_get(&self, key: &str) -> Option<String> {
        browser::storage_get(key)
    }

    fn storage_set(&self, key: &str, value: &str) {
        browser::storage_set(key, value);
    }

    fn storage_remove(&self, key: &str) {
        browser::storage_remove(key);
    }

    fn date_string(&self, ms: f64) -> String {
        browser::date_string(ms)
    }

    fn date_parse(&self, text: &str) -> f64 {
        browser::date_parse(text)
    }

    #[cfg(feature = "persist")]
    fn open_store(&self, name: &str, access: super::store::Access<'_>, opened: super::store::Opened) {
        match access {
            super::store::Access::Page(page) => browser::idb::open(name, page, opened),
            super::store::Access::Shared(prefix) => browser::idb::open_cache(name, prefix, opened),
        }
    }

    // Without the feature no durable outbox can be asked for (`connect`
    // refuses the option), so nothing opens a store; this answers anyway.
    #[cfg(not(feature = "persist"))]
    fn open_store(&self, _name: &str, _access: super::store::Access<'_>, opened: super::store::Opened) {
        let kind = super::store::StorageErrorKind::Unavailable;
        opened(Err(super::store::StorageError { kind, message: String::new() }));
    }

    #[cfg(feature = "tabs")]
    fn join_tabs(&self, name: &str, member: &str, handler: super::TabHandler) -> Option<Box<dyn super::TabLink>> {
        browser::tabs::join(name, member, handler)
    }
}
