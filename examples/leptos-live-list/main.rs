//! The smallest Leptos app that uses ddp-live for what most apps need: the
//! connection's status, one subscription's live list, and a method call.
//! A size probe (issue 23), built exactly as the Leptos example app and the
//! counter are (`scripts/size-leptos.sh`), with no optional cargo feature:
//! its size minus the counter's is what ddp-live's core costs a Leptos app,
//! apart from the example app's own UI and its offline features.

use ddp_live::leptos::*;
use ddp_live::{connect, Options};
use leptos::prelude::*;
use serde_json::json;

fn main() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
    leptos::mount::mount_to_body(|| {
        let host = window().location().host().unwrap_or_default();
        match connect(&format!("ws://{host}/t/live-list/websocket"), Options::default()) {
            Ok(conn) => {
                provide_connection(conn);
                view! { <LiveList/> }.into_any()
            }
            Err(e) => view! { <p>{format!("cannot connect: {e}")}</p> }.into_any(),
        }
    });
}

#[component]
fn LiveList() -> impl IntoView {
    let UseStatus { status, .. } = use_status();
    let sub = use_subscription("docs", ("items",));
    let items = use_collection("items");
    let insert = use_call::<String>("insertDoc");
    view! {
        <p>{move || status.get().status.to_string()} {move || if sub.ready.get() { " (live)" } else { "" }}</p>
        <button on:click=move |_| insert.call(("items", json!({"text": "new"})))>"Add"</button>
        <ul>
            <For each=move || items.docs.get() key=|d| d.id().to_owned() let:item>
                <li>{move || item.field("text").as_str().map(str::to_owned).unwrap_or_default()}</li>
            </For>
        </ul>
        <p>{move || format!("{} items", items.len.get())}</p>
    }
}
