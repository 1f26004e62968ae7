//! A room membership (the js-collaboration "Connection") as a pure state
//! machine: it turns what happens to the DDP link and to its join call into
//! the room's actions and events. No I/O; the driver (`crate::rooms`) makes
//! the calls.

/// What the driver must do for the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// Call `rooms.join` (as a `wait` call, ahead of the room's sends).
    Join,
    /// Call `rooms.leave`.
    Leave,
}

/// What the room tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// Joined (again): the room has a connection id.
    Connect,
    /// The membership is down, with the link's reason ("client disconnect",
    /// "server disconnect", "ping timeout", "transport close", "transport error").
    Disconnect(String),
    /// The server rejected the join (its reason); the room gives up.
    Rejected(String),
    /// Attempt `n` to get back.
    ReconnectAttempt(u32),
    /// Back after `n` attempts.
    Reconnect(u32),
    /// The connection gave up retrying.
    ReconnectFailed,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The join call is out (or queued).
    Joining,
    Joined {
        id: String,
    },
    /// The link is down; the last id, for a resumed session.
    Down {
        last_id: Option<String>,
    },
    Rejected,
    Closed,
}

/// One room's state.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomState {
    phase: Phase,
    attempts: u32,
    was_joined: bool,
    /// A join call is in the outbox (re-sent by the outbox after drops).
    join_pending: bool,
}

impl RoomState {
    /// A new room: join at once.
    pub fn new() -> (Self, RoomAction) {
        (RoomState { phase: Phase::Joining, attempts: 0, was_joined: false, join_pending: true }, RoomAction::Join)
    }

    /// The connection id while joined.
    pub fn id(&self) -> Option<&str> {
        match &self.phase {
            Phase::Joined { id } => Some(id),
            _ => None,
        }
    }

    /// True while joined.
    pub fn connected(&self) -> bool {
        matches!(self.phase, Phase::Joined { .. })
    }

    /// True once closed or rejected: nothing more happens.
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Rejected)
    }

    /// The join call answered with this connection id.
    pub fn joined(&mut self, id: String) -> Vec<RoomEvent> {
        self.join_pending = false;
        if self.finished() {
            return Vec::new();
        }
        self.phase = Phase::Joined { id };
        let mut events = vec![RoomEvent::Connect];
        if self.was_joined {
            events.push(RoomEvent::Reconnect(self.attempts.max(1)));
        }
        self.was_joined = true;
        self.attempts = 0;
        events
    }

    /// The server rejected the join: no retry loop.
    pub fn join_rejected(&mut self, reason: String) -> Vec<RoomEvent> {
        self.join_pending = false;
        if self.finished() {
            return Vec::new();
        }
        self.phase = Phase::Rejected;
        vec![RoomEvent::Rejected(reason)]
    }

    /// The DDP link went down.
    pub fn link_down(&mut self, reason: &str) -> Vec<RoomEvent> {
        match std::mem::replace(&mut self.phase, Phase::Down { last_id: None }) {
            Phase::Joined { id } => {
                self.phase = Phase::Down { last_id: Some(id) };
                vec![RoomEvent::Disconnect(reason.to_owned())]
            }
            Phase::Joining | Phase::Down { .. } => Vec::new(),
            other => {
                self.phase = other;
                Vec::new()
            }
        }
    }

    /// The link is back. With a resumed session the membership survived;
    /// with a new one the room joins again (unless its join is still in
    /// the outbox, which re-sends it).
    pub fn link_up(&mut self, resumed: bool) -> (Option<RoomAction>, Vec<RoomEvent>) {
        match &self.phase {
            Phase::Down { last_id: Some(id) } if resumed => {
                let id = id.clone();
                (None, self.joined(id))
            }
            Phase::Down { .. } | Phase::Joining if !self.join_pending => {
                self.phase = Phase::Joining;
                self.join_pending = true;
                (Some(RoomAction::Join), Vec::new())
            }
            Phase::Down { .. } => {
                self.phase = Phase::Joining;
                (None, Vec::new())
            }
            _ => (None, Vec::new()),
        }
    }

    /// The connection starts attempt `n`.
    pub fn reconnect_attempt(&mut self, n: u32) -> Vec<RoomEvent> {
        if self.finished() || !self.was_joined || self.connected() {
            return Vec::new();
        }
        self.attempts = n;
        vec![RoomEvent::ReconnectAttempt(n)]
    }

    /// The connection gave up.
    pub fn reconnect_failed(&mut self) -> Vec<RoomEvent> {
        if self.finished() || !self.was_joined {
            return Vec::new();
        }
        vec![RoomEvent::ReconnectFailed]
    }

    /// Whether a message for the room should reach the app.
    pub fn accepts_messages(&self) -> bool {
        !self.finished()
    }

    /// The app leaves the room.
    pub fn close(&mut self) -> (Option<RoomAction>, Vec<RoomEvent>) {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Joined { .. } => (Some(RoomAction::Leave), vec![RoomEvent::Disconnect("client disconnect".into())]),
            Phase::Joining | Phase::Down { .. } => (Some(RoomAction::Leave), Vec::new()),
            _ => (None, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_connect_drop_rejoin_with_a_new_id() {
        let (mut r, action) = RoomState::new();
        assert_eq!(action, RoomAction::Join);
        assert!(!r.connected());
        assert_eq!(r.joined("A".into()), vec![RoomEvent::Connect]);
        assert_eq!(r.id(), Some("A"));
        assert_eq!(r.link_down("transport close"), vec![RoomEvent::Disconnect("transport close".into())]);
        assert_eq!(r.id(), None);
        assert_eq!(r.reconnect_attempt(1), vec![RoomEvent::ReconnectAttempt(1)]);
        assert_eq!(r.link_up(false), (Some(RoomAction::Join), vec![]));
        assert_eq!(r.joined("B".into()), vec![RoomEvent::Connect, RoomEvent::Reconnect(1)]);
        assert_eq!(r.id(), Some("B"));
    }

    #[test]
    fn a_resumed_session_keeps_the_id_without_a_join() {
        let (mut r, _) = RoomState::new();
        r.joined("A".into());
        r.link_down("transport close");
        r.reconnect_attempt(2);
        assert_eq!(r.link_up(true), (None, vec![RoomEvent::Connect, RoomEvent::Reconnect(2)]));
        assert_eq!(r.id(), Some("A"));
    }

    #[test]
    fn a_join_still_in_the_outbox_is_not_doubled() {
        let (mut r, _) = RoomState::new();
        r.link_down("transport close");
        assert_eq!(r.link_up(false), (None, vec![]), "the queued join is re-sent by the outbox");
        assert_eq!(r.joined("A".into()), vec![RoomEvent::Connect]);
    }

    #[test]
    fn a_rejected_join_gives_up() {
        let (mut r, _) = RoomState::new();
        assert_eq!(r.join_rejected("invalid token".into()), vec![RoomEvent::Rejected("invalid token".into())]);
        assert!(r.finished());
        assert_eq!(r.link_down("transport close"), vec![]);
        assert_eq!(r.link_up(false), (None, vec![]), "no retry loop");
        assert!(!r.accepts_messages());
    }

    #[test]
    fn close_leaves_and_reports_a_client_disconnect() {
        let (mut r, _) = RoomState::new();
        r.joined("A".into());
        assert_eq!(r.close(), (Some(RoomAction::Leave), vec![RoomEvent::Disconnect("client disconnect".into())]));
        assert_eq!(r.close(), (None, vec![]));
        assert_eq!(r.joined("late".into()), vec![], "a late join answer changes nothing");
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// After any history of drops, attempts and answers, the room
            /// is connected exactly when its last join answer came after the
            /// last drop, and it never asks to join twice without an answer.
            #[test]
            fn random_drops_keep_the_room_consistent(steps in proptest::collection::vec(0u8..5, 1..80)) {
                let (mut r, _) = RoomState::new();
                let mut outstanding = 1u32;
                let mut n = 0;
                for s in steps {
                    match s {
                        0 => { r.link_down("transport close"); }
                        1 => {
                            let (a, _) = r.link_up(false);
                            if a == Some(RoomAction::Join) { outstanding += 1; }
                        }
                        2 => if outstanding > 0 {
                            outstanding -= 1;
                            n += 1;
                            r.joined(format!("id{n}"));
                        },
                        3 => { r.reconnect_attempt(n as u32); }
                        _ => { let (_, ev) = r.link_up(true); prop_assert!(ev.iter().all(|e| matches!(e, RoomEvent::Connect | RoomEvent::Reconnect(_)))); }
                    }
                    prop_assert!(outstanding <= 1, "never two joins in flight");
                    prop_assert_eq!(r.connected(), r.id().is_some());
                }
            }
        }
    }
}
