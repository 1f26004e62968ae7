//! The app, the same code on the server (feature `ssr`) and in the browser
//! (feature `hydrate`): a status badge, a login form and a live todo list
//! from the test server's `docs` publication.
//!
//! The server renders the todos (and the user the login cookie names) into
//! the HTML; the browser hydrates that HTML with the same documents as its
//! cache, then opens its socket and follows the live data.

use ddp_live::leptos::*;
use ddp_live::Options;
use leptos::prelude::*;
use serde_json::{json, Value};

/// The cookie that carries the user's login token to the server (the page
/// sets it when the user logs in, and clears it at logout).
pub const LOGIN_COOKIE: &str = "ddp_login";

/// The page around the app, rendered on the server only.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>"ddp-live · Leptos SSR"</title>
                <link rel="icon" href="data:,"/>
                // Where the browser's connection goes (the page's server knows).
                <meta name="ddp-server" content=crate::ddp_base()/>
                <style>{STYLE}</style>
                <HydrationScripts options/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[cfg(feature = "ssr")]
const STYLE: &str = "
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7fb; }
body { max-width: 760px; margin: 2rem auto; padding: 0 1rem; }
.card { background: #fff; border-radius: 10px; padding: 1rem 1.2rem; box-shadow: 0 1px 3px #0002; margin: 1rem 0; }
.badge { display: inline-block; padding: .25rem .7rem; border-radius: 99px; font-weight: 600; color: #fff; }
.connected { background: #1a9b52; } .connecting { background: #c98a00; } .waiting { background: #d2612c; }
.failed { background: #c0392b; } .offline { background: #6b7280; }
.hidden { display: none; }
li.done .text { text-decoration: line-through; color: #6b7280; }
.muted { color: #6b7280; font-size: .9rem; }
";

/// The browser's DDP URL: the server named in the page's `<meta>`, and the
/// test server's scenario from `?scenario=` (as the client-side example).
#[cfg(feature = "hydrate")]
fn browser_url() -> String {
    let document = window().document();
    let base = document
        .and_then(|d| d.query_selector("meta[name=ddp-server]").ok().flatten())
        .and_then(|m| m.get_attribute("content"))
        .unwrap_or_default();
    let search = window().location().search().unwrap_or_default();
    format!("{base}/t/{}/websocket", crate::scenario_of(&search))
}

#[cfg(not(feature = "hydrate"))]
fn browser_url() -> String {
    // (Never called on the server: provide_ddp calls it in the browser only.)
    String::new()
}

#[component]
pub fn App() -> impl IntoView {
    let options = Options { heartbeat_interval_ms: 5000.0, heartbeat_timeout_ms: 5000.0, ..Options::default() };
    if let Err(e) = provide_ddp(browser_url, options) {
        return view! { <p class="error">{format!("cannot connect: {e}")}</p> }.into_any();
    }
    #[cfg(feature = "hydrate")]
    {
        // The login survives reloads in localStorage (Meteor's keys) and
        // resumes at once; with none stored there, the cookie's token (the
        // one the server rendered with) logs this connection in.
        let accounts = use_connection().accounts();
        if !accounts.persist_login(ddp_live::PersistLogin::ConnectUrl) {
            if let Some(token) = login_cookie() {
                leptos::task::spawn_local(async move {
                    if accounts.login_with_token(&token).await.is_err() {
                        set_login_cookie(None);
                    }
                });
            }
        }
    }
    view! {
        <h1>"ddp-live · Leptos SSR"</h1>
        <p class="muted">"Rendered on the server with live data, hydrated in the browser."</p>
        <Status/>
        // The server waits (up to its timeout) for what is read in here.
        <Suspense fallback=|| view! { <p id="waiting">"loading…"</p> }>
            <Account/>
            <Todos/>
        </Suspense>
    }
    .into_any()
}

#[component]
fn Status() -> impl IntoView {
    let UseStatus { status, retry_in, .. } = use_status();
    view! {
        <div class="card">
            <span id="badge" class=move || format!("badge {}", status.get().status.as_str())>
                {move || status.get().status.to_string()}
            </span>
            <span class="muted">{move || retry_in.get().map(|s| format!(" next attempt in {s} s")).unwrap_or_default()}</span>
        </div>
    }
}

/// The login cookie's token, if the page has one.
#[cfg(feature = "hydrate")]
fn login_cookie() -> Option<String> {
    let document = window().document()?;
    let cookies = js_sys::Reflect::get(&document, &"cookie".into()).ok()?.as_string()?;
    cookies
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == LOGIN_COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// Sets (or, with `None`, clears) the login cookie.
#[cfg(feature = "hydrate")]
fn set_login_cookie(token: Option<String>) {
    let cookie = match token {
        Some(t) => format!("{LOGIN_COOKIE}={t}; path=/; SameSite=Lax"),
        None => format!("{LOGIN_COOKIE}=; path=/; max-age=0; SameSite=Lax"),
    };
    if let Some(document) = window().document() {
        let _ = js_sys::Reflect::set(&document, &"cookie".into(), &cookie.into());
    }
}

#[component]
fn Account() -> impl IntoView {
    let user_id = use_user_id();
    let user = use_user();
    let accounts = use_connection().accounts();
    let (username, password) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let error = RwSignal::new(String::new());
    let (login_with, logout_with) = (accounts.clone(), accounts);
    let login = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let _ = &login_with;
        #[cfg(feature = "hydrate")]
        {
            let accounts = login_with.clone();
            let (u, p) = (username.get_untracked(), password.get_untracked());
            leptos::task::spawn_local(async move {
                match accounts.login_with_password(u.as_str(), &p).await {
                    Ok(_) => {
                        set_login_cookie(accounts.token());
                        error.set(String::new());
                    }
                    Err(e) => error.set(e.to_string()),
                }
            });
        }
    };
    let logout = move |_| {
        let _ = &logout_with;
        #[cfg(feature = "hydrate")]
        {
            set_login_cookie(None);
            let accounts = logout_with.clone();
            leptos::task::spawn_local(async move {
                let _ = accounts.logout().await;
            });
        }
    };
    let name = move || user.get().and_then(|u| u["username"].as_str().map(str::to_owned)).unwrap_or_default();
    view! {
        <div class="card" id="account">
            <div class:hidden=move || user_id.get().is_none()>
                "Logged in as " <b id="whoami">{name}</b> " "
                <button id="logout" on:click=logout>"Log out"</button>
            </div>
            <form id="login-form" class:hidden=move || user_id.get().is_some() on:submit=login>
                <input id="username" type="text" placeholder="username" bind:value=username/>
                <input id="password" type="password" placeholder="password" bind:value=password/>
                <button id="login" type="submit">"Log in"</button>
                <span id="login-error" class="muted">{move || error.get()}</span>
            </form>
        </div>
    }
}

#[component]
fn Todos() -> impl IntoView {
    let sub = use_subscription("docs", ("todos",));
    let todos = use_collection("todos");
    let insert = use_call::<String>("insertDoc");
    let update = use_call::<Value>("updateDoc");
    // Oldest first: `at` is set once, at creation (read untracked: a
    // toggle re-renders its row only).
    let ordered = Memo::new(move |_| {
        let mut docs = todos.docs.get();
        docs.sort_by(|a, b| {
            let at = |d: &LiveDoc| d.field_untracked("at").as_f64().unwrap_or(0.0);
            at(a).total_cmp(&at(b)).then_with(|| a.id().cmp(b.id()))
        });
        docs
    });
    let text = RwSignal::new(String::new());
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = text.get_untracked().trim().to_owned();
        if !t.is_empty() {
            insert.call(("todos", json!({"text": t, "done": false, "at": now()})));
            text.set(String::new());
        }
    };
    view! {
        <div class="card">
            <strong>"Todos"</strong>
            <span id="todos-ready" class="muted">{move || if sub.ready.get() { " (ready)" } else { " (loading…)" }}</span>
            <form on:submit=add>
                <input id="new-todo" type="text" placeholder="What needs doing?" bind:value=text/>
                <button id="add-todo" type="submit">"Add"</button>
            </form>
            <ul id="todos">
                <For each=move || ordered.get() key=|d| d.id().to_owned() let:todo>
                    {
                        let (id, row_id) = (todo.id().to_owned(), todo.id().to_owned());
                        let done = Signal::derive({
                            let todo = todo.clone();
                            move || todo.field("done").as_bool().unwrap_or(false)
                        });
                        view! {
                            <li class:done=done data-id=row_id>
                                <input type="checkbox" class="toggle" prop:checked=done
                                    on:change=move |_| update.call(("todos", id.clone(), json!({"done": !done.get_untracked()})))/>
                                <span class="text">{move || todo.field("text").as_str().unwrap_or("").to_owned()}</span>
                            </li>
                        }
                    }
                </For>
            </ul>
            <p class="muted" id="todo-count">{move || format!("{} todos", todos.len.get())}</p>
        </div>
    }
}

/// Milliseconds since the epoch (the todos' `at`; only called in the
/// browser, from an event handler).
fn now() -> f64 {
    #[cfg(feature = "hydrate")]
    return js_sys::Date::now();
    #[cfg(not(feature = "hydrate"))]
    0.0
}
