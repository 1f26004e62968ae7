//! The connection status, exactly the fields of Meteor's `Meteor.status()`.

use std::fmt;

/// The five states of Meteor's connection status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The DDP handshake is complete (`connected` arrived).
    Connected,
    /// A socket is being opened or the handshake is under way.
    Connecting,
    /// Gave up for good: a protocol version the client cannot speak, or the
    /// retry limit was reached. Only `reconnect()` leaves this state.
    Failed,
    /// Lost; waiting until `retry_time` for the next attempt.
    Waiting,
    /// Disconnected on purpose with `disconnect()`; no automatic retry.
    Offline,
}

impl ConnectionState {
    /// The name Meteor uses: "connected", "connecting", "failed", "waiting", "offline".
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Failed => "failed",
            ConnectionState::Waiting => "waiting",
            ConnectionState::Offline => "offline",
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the connection status, with the fields of Meteor's
/// `Meteor.status()`.
///
/// One difference from Meteor, on purpose: `connected` turns true when the
/// server's DDP `connected` message arrives, not when the socket opens, so a
/// server that accepts the socket but never completes the handshake is never
/// shown as connected.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// True exactly when `status` is [`ConnectionState::Connected`].
    pub connected: bool,
    /// Which of the five states the connection is in.
    pub status: ConnectionState,
    /// Automatic retries since the connection was last up (0 when connected
    /// or after `disconnect()`; manual `reconnect()` calls do not count).
    pub retry_count: u32,
    /// When the next automatic attempt starts, in ms since the Unix epoch;
    /// only while `waiting`.
    pub retry_time: Option<f64>,
    /// Why the connection failed; only while `failed`.
    pub reason: Option<String>,
}

impl Status {
    /// The status of a connection that has just been created.
    pub fn initial() -> Self {
        Status { connected: false, status: ConnectionState::Connecting, retry_count: 0, retry_time: None, reason: None }
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::initial()
    }
}
