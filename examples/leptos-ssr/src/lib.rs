//! ddp-live's Leptos SSR example: the app ([`app`]), its browser entry
//! (`hydrate`, feature `hydrate`) and what its server and browser share.

pub mod app;

/// The test server's scenario named by a query string (`?scenario=NAME`),
/// `leptos-ssr` by default: the server and the browser connect to the same.
pub fn scenario_of(query: &str) -> String {
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("scenario="))
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or("leptos-ssr")
        .to_owned()
}

/// The DDP server's base URL (`ws://host:port`), from `DDP_SERVER` (the
/// server's environment; default the test server on port 3325).
#[cfg(feature = "ssr")]
pub fn ddp_base() -> String {
    std::env::var("DDP_SERVER").unwrap_or_else(|_| "ws://127.0.0.1:3325".into())
}

/// The browser's entry: hydrates the server's HTML (called by the script
/// Leptos's `HydrationScripts` puts in the page).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
    leptos::mount::hydrate_body(app::App);
}
