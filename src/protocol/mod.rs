//! The DDP protocol, pure: no I/O, no clock, no browser. Everything here
//! compiles and is tested natively.
//!
//! - [`ejson`]: EJSON values, decoding and encoding.
//! - [`json`]: the JSON reader of frames (lone surrogates as JavaScript reads them).
//! - [`message`]: typed server and client messages, parsing that never panics.
//! - [`machine`]: the connection lifecycle as a state machine (handshake,
//!   version negotiation, heartbeat, retry, status).
//! - [`query`]: Mongo selectors, sort, skip, limit, projection and live
//!   ordered results over the local cache (minimongo's semantics).
//! - [`retry`]: the retry schedule.
//! - [`status`]: Meteor's status fields.
//! - [`url`]: Meteor's URL rules.

pub mod accounts;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod arb;
#[cfg(any(feature = "persist", not(target_arch = "wasm32")))]
pub mod cache;
pub mod doc;
pub mod durable;
pub mod ejson;
pub mod hash;
pub mod hub;
pub mod json;
pub mod machine;
pub mod message;
pub mod order;
pub mod query;
pub mod random;
pub mod retry;
pub mod room;
pub mod sha256;
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod sim_server;
pub mod status;
pub mod store;
pub mod url;

/// `parts` joined by `sep`: one plain loop (std's `join` is unrolled per
/// separator length, 1.2 KB of wasm for a few error messages).
pub fn join(parts: &[&str], sep: &str) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(p);
    }
    out
}
