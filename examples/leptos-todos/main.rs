//! A Leptos app (client-side rendering) over ddp-live, against the test
//! server: a status badge with the retry countdown, the outbox, a live todo
//! list whose writes go through client stubs (they show at once, offline
//! too, survive reconnects and reloads; the last known list shows at once
//! after a reload, marked stale), and a chat room.
//!
//! Built by `scripts/build-example.sh` into `target/leptos-example/`,
//! served by the test server at `/leptos/` (`scripts/demo.sh`). The page
//! talks to scenario `leptos-demo`, or to `?scenario=NAME`.

use ddp_live::leptos::*;
use ddp_live::{connect, Options, StubContext};
use leptos::prelude::*;
use serde_json::{json, Map, Value};

fn main() {
    console_error_panic_hook();
    leptos::mount::mount_to_body(App);
}

/// Panics show in the console (the page has no other way to say it died).
fn console_error_panic_hook() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
}

/// `?tabs=1`: the tabs of the app share one socket.
fn share_tabs() -> bool {
    window().location().search().unwrap_or_default().trim_start_matches('?').split('&').any(|kv| kv == "tabs=1")
}

/// The WebSocket URL of the page's own server, scenario from `?scenario=`.
fn server_url() -> String {
    let location = window().location();
    let host = location.host().unwrap_or_default();
    let scheme = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
    let search = location.search().unwrap_or_default();
    let scenario = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("scenario="))
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or("leptos-demo")
        .to_owned();
    format!("{scheme}://{host}/t/{scenario}/websocket")
}

/// The client stubs of the test server's document methods: the write shows
/// at once and gives way to the server's when the call completes.
fn define_stubs(conn: &ddp_live::Connection) {
    fn collection(args: &[Value]) -> String {
        args.first().and_then(Value::as_str).unwrap_or("docs").to_owned()
    }
    conn.define_stub("insertDoc", |ctx: &mut StubContext, args| {
        let doc = args.get(1).cloned().unwrap_or_else(|| json!({}));
        Ok(Value::String(ctx.insert(&collection(args), doc)))
    });
    conn.define_stub("updateDoc", |ctx, args| {
        let id = args.get(1).and_then(Value::as_str).unwrap_or_default();
        let set: Map<String, Value> = args.get(2).and_then(Value::as_object).cloned().unwrap_or_default();
        Ok(Value::Bool(ctx.update(&collection(args), id, set)))
    });
    conn.define_stub("removeDoc", |ctx, args| {
        let id = args.get(1).and_then(Value::as_str).unwrap_or_default();
        ctx.remove(&collection(args), id);
        Ok(Value::Bool(true))
    });
}

#[component]
fn App() -> impl IntoView {
    // `persist`: the outbox is kept in IndexedDB, so a todo added while the
    // server is away survives a reload and is sent by the next page; and
    // the todos are too, so a reload shows the last known ones at once,
    // offline as well, marked stale until the subscription is ready.
    // `share_across_tabs` (with `?tabs=1`): every tab of the app shares one
    // socket (the test server's stats show one connection however many
    // tabs are open); tabs that share a session keep no cache of
    // documents (each does not know who is logged in on it).
    let options = Options {
        heartbeat_interval_ms: 5000.0,
        heartbeat_timeout_ms: 5000.0,
        persist: Some("leptos-todos".into()),
        share_across_tabs: share_tabs(),
        ..Options::default()
    };
    match connect(&server_url(), options) {
        Ok(conn) => {
            define_stubs(&conn);
            provide_connection(conn);
            view! {
                <h1>"ddp-live · Leptos"</h1>
                <p class="muted">"A Leptos app over ddp-live: status, outbox, live todos (client stubs) and a chat room."</p>
                <StatusCard/>
                <Todos/>
                <Chat/>
            }
            .into_any()
        }
        Err(e) => view! { <p class="error">{format!("cannot connect: {e}")}</p> }.into_any(),
    }
}

#[component]
fn StatusCard() -> impl IntoView {
    let UseStatus { status, retry_in, .. } = use_status();
    let outbox = use_outbox();
    let pending = use_pending_calls();
    let conn = use_connection();
    let (reconnect, disconnect) = (conn.clone(), conn);
    view! {
        <div class="card">
            <span id="badge" class=move || format!("badge {}", status.get().status.as_str())>
                {move || status.get().status.to_string()}
            </span>
            <span id="retry" class="muted">
                {move || retry_in.get().map(|s| format!(" next attempt in {s} s")).unwrap_or_default()}
            </span>
            <p>
                <button id="reconnect" on:click=move |_| reconnect.reconnect()>"Reconnect"</button>
                <button id="disconnect" on:click=move |_| disconnect.disconnect()>"Disconnect"</button>
            </p>
            <p>"Outbox: " <code id="outbox">{move || {
                let o = outbox.get();
                format!("{} queued, {} in flight", o.queued, o.in_flight)
            }}</code></p>
            <p>"Kept across reloads: " <code id="pending">{move || {
                let p = pending.get();
                format!("{} kept, {} saved", p.len(), p.iter().filter(|c| c.durable).count())
            }}</code></p>
        </div>
    }
}

#[component]
fn Todos() -> impl IntoView {
    let sub = use_subscription("docs", ("todos",));
    let todos = use_collection("todos");
    // The last known todos, from the durable cache, until the server confirms them.
    let stale = use_stale();
    let insert = use_call::<String>("insertDoc");
    let update = use_call::<Value>("updateDoc");
    let remove = use_call::<Value>("removeDoc");
    // Oldest first: `at` is set once, at creation, so the order is read
    // untracked (a toggle re-renders its row only).
    let ordered = Memo::new(move |_| {
        let mut docs = todos.docs.get();
        #[allow(clippy::disallowed_methods, reason = "app code: the library's size rules are the library's")]
        docs.sort_by(|a, b| {
            let at = |d: &LiveDoc| d.field_untracked("at").as_f64().unwrap_or(0.0);
            at(a).total_cmp(&at(b)).then_with(|| a.id().cmp(b.id()))
        });
        docs
    });
    let text = RwSignal::new(String::new());
    let add = move || {
        let t = text.get_untracked().trim().to_owned();
        if !t.is_empty() {
            insert.call(("todos", json!({"text": t, "done": false, "at": js_sys::Date::now()})));
            text.set(String::new());
        }
    };
    view! {
        <div class="card">
            <strong>"Todos"</strong>
            <span id="todos-ready" class="muted">{move || {
                if stale.get() { " (last known, not live yet)" } else if sub.ready.get() { " (live)" } else { " (loading…)" }
            }}</span>
            <form on:submit=move |ev| { ev.prevent_default(); add(); }>
                <input id="new-todo" type="text" placeholder="What needs doing?" bind:value=text/>
                <button id="add-todo" type="submit">"Add"</button>
            </form>
            <ul id="todos" class:stale=stale>
                <For each=move || ordered.get() key=|d| d.id().to_owned() let:todo>
                    {
                        let (id, id2, id3) = (todo.id().to_owned(), todo.id().to_owned(), todo.id().to_owned());
                        let done = Signal::derive({
                            let todo = todo.clone();
                            move || todo.field("done").as_bool().unwrap_or(false)
                        });
                        view! {
                            <li class:done=done data-id=id3>
                                <input type="checkbox" class="toggle" prop:checked=done
                                    on:change=move |_| update.call(("todos", id.clone(), json!({"done": !done.get_untracked()})))/>
                                <span class="text">{move || todo.field("text").as_str().unwrap_or("").to_owned()}</span>
                                <button class="remove" on:click=move |_| remove.call(("todos", id2.clone()))>"×"</button>
                            </li>
                        }
                    }
                </For>
            </ul>
            <p class="muted" id="todo-count">{move || format!("{} todos", todos.len.get())}</p>
        </div>
    }
}

#[component]
fn Chat() -> impl IntoView {
    let room = use_room("lobby");
    let text = RwSignal::new(String::new());
    let send = move || {
        let t = text.get_untracked().trim().to_owned();
        if !t.is_empty() {
            // Type "all": the test server sends it to everybody, us included.
            room.send(json!({"from": "leptos", "text": t}), Some("all")).detach();
            text.set(String::new());
        }
    };
    view! {
        <div class="card">
            <strong>"Chat room “lobby”"</strong>
            <span id="room-state" class="muted">{move || if room.connected.get() { " joined" } else { " not joined" }}</span>
            <form on:submit=move |ev| { ev.prevent_default(); send(); }>
                <input id="chat-text" type="text" placeholder="Say something" bind:value=text/>
                <button id="chat-send" type="submit">"Send"</button>
            </form>
            <ul id="chat">
                {move || room.messages.get().into_iter().map(|m| {
                    let from = m.data["from"].as_str().unwrap_or("?").to_owned();
                    let text = m.data["text"].as_str().map(str::to_owned).unwrap_or_else(|| m.data.to_string());
                    view! { <li><b>{from}</b>": " {text}</li> }
                }).collect_view()}
            </ul>
        </div>
    }
}
