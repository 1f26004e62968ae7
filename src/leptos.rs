//! Leptos signals for a connection (cargo feature `leptos`).
//!
//! ```ignore
//! use leptos::prelude::*;
//! use ddp_live::{connect, Options, ConnectionState};
//!
//! #[component]
//! fn ConnectionBadge() -> impl IntoView {
//!     let conn = connect("https://chat.example.com", Options::default()).expect("valid URL");
//!     let status = ddp_live::leptos::status_signal(&conn);
//!     view! {
//!         <span class=move || status.get().status.as_str()>
//!             {move || match status.get().status {
//!                 ConnectionState::Connected => "online".to_string(),
//!                 ConnectionState::Waiting => format!("retry #{} soon", status.get().retry_count),
//!                 other => other.to_string(),
//!             }}
//!         </span>
//!         <button on:click=move |_| conn.reconnect()>"Reconnect"</button>
//!     }
//! }
//! ```
//!
//! The bridge needs no async executor: the connection's own change
//! listener sets an `ArcRwSignal`, so it works in plain wasm-bindgen tests,
//! in CSR apps and natively. The signal lives as long as the connection.

use crate::reactive::Observable;
use crate::{Connection, Status};
use leptos::prelude::*;

/// A Leptos signal that follows an [`Observable`].
pub fn signal_from<T>(source: &Observable<T>) -> Signal<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    let signal = ArcRwSignal::new(source.get());
    let writer = signal.clone();
    // The listener keeps the signal alive as long as the source lives.
    let _handle = source.subscribe(move |v| writer.set(v.clone()));
    Signal::from(signal.read_only())
}

/// The connection's status as a Leptos signal.
pub fn status_signal(conn: &Connection) -> Signal<Status> {
    signal_from(conn.status_observable())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectionState;

    #[test]
    fn the_signal_follows_the_observable() {
        let o = Observable::new(Status::initial());
        let s = signal_from(&o);
        assert_eq!(s.get_untracked().status, ConnectionState::Connecting);
        o.set(Status { connected: true, status: ConnectionState::Connected, ..Status::initial() });
        assert!(s.get_untracked().connected);
        o.set(Status { status: ConnectionState::Waiting, retry_time: Some(5.0), ..Status::initial() });
        assert_eq!(s.get_untracked().retry_time, Some(5.0));
    }
}
