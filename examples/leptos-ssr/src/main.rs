//! The example's server (feature `ssr`): axum + leptos_axum, rendering the
//! app with live data from the DDP server at `DDP_SERVER`.
//!
//! ```text
//! DDP_SERVER=ws://127.0.0.1:3325 SSR_ADDR=127.0.0.1:3400 SSR_TIMEOUT_MS=1500 \
//!   target/debug/leptos-ssr-example   (serving target/leptos-ssr/pkg)
//! ```
//!
//! - one [`SsrClient`](ddp_live::leptos::ssr::SsrClient) for the process;
//! - per request, an `SsrRequest` for the scenario the query names, logged
//!   in with the token of the login cookie (`app::LOGIN_COOKIE`) if any;
//! - `GET /ssr-stats`: how many request connections are open (for the
//!   tests: none once the renders are done).

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() {
    use axum::routing::get;
    use ddp_live::leptos::ssr::SsrClient;
    use leptos::prelude::*;
    use leptos_ssr_example::app::{shell, LOGIN_COOKIE};
    use std::time::Duration;

    // Resources run on tokio (leptos_axum's `leptos_routes` does this
    // itself; this server routes its one page by hand).
    let _ = any_spawner::Executor::init_tokio();
    let addr: std::net::SocketAddr = std::env::var("SSR_ADDR").unwrap_or_else(|_| "127.0.0.1:3400".into()).parse().expect("SSR_ADDR");
    let timeout = std::env::var("SSR_TIMEOUT_MS").ok().and_then(|t| t.parse().ok()).unwrap_or(1500);
    let site_root = std::env::var("SSR_SITE_ROOT").unwrap_or_else(|_| "target/leptos-ssr".into());
    let options = LeptosOptions::builder().output_name("leptos_ssr").site_root(site_root).site_pkg_dir("pkg").site_addr(addr).build();
    let base = leptos_ssr_example::ddp_base();
    let ddp = SsrClient::new(&base, Default::default(), Duration::from_millis(timeout)).expect("a valid DDP_SERVER");

    // Per request: the scenario's server, and the login cookie's token.
    let context = {
        let ddp = ddp.clone();
        move || {
            let parts = use_context::<axum::http::request::Parts>();
            let query = parts.as_ref().and_then(|p| p.uri.query()).unwrap_or_default().to_owned();
            let token = parts.as_ref().and_then(|p| cookie(&p.headers, LOGIN_COOKIE));
            let url = format!("{}/t/{}/websocket", leptos_ssr_example::ddp_base(), leptos_ssr_example::scenario_of(&query));
            match ddp.request_to(&url, token) {
                Ok(request) => provide_context(request),
                Err(e) => eprintln!("ddp: {e}"),
            }
        }
    };
    let page = {
        let options = options.clone();
        leptos_axum::render_app_async_with_context(context, move || shell(options.clone()))
    };
    let stats = move || {
        let open = ddp.open_connections();
        async move { format!("{{\"open\":{open}}}") }
    };
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/ssr-stats", get(stats))
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("SSR_ADDR free");
    let addr = listener.local_addr().expect("a bound address");
    println!("leptos-ssr example on http://{addr}/ (DDP server {base})");
    axum::serve(listener, app.into_make_service()).await.expect("server");
}

/// The value of cookie `name` in a request's headers.
#[cfg(feature = "ssr")]
fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser's entry is the lib's `hydrate`; this binary needs `ssr`.
}
