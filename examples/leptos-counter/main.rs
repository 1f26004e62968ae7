//! The baseline of the "what ddp-live adds to a Leptos app" size row
//! (issue 23): a Leptos counter, no ddp-live, built exactly as the Leptos
//! example app is (`scripts/size-leptos.sh`: release, wasm-bindgen, wasm-opt,
//! the same panic hook). The todos app's size minus this one's is what an
//! app pays for ddp-live (and for its own todo UI).

use leptos::prelude::*;

fn main() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
    leptos::mount::mount_to_body(|| {
        let (count, set_count) = signal(0);
        view! {
            <button on:click=move |_| set_count.update(|n| *n += 1)>"Clicked " {count} " times"</button>
        }
    });
}
