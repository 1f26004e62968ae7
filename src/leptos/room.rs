//! `use_room`: a room membership for as long as its owner lives.

use super::{keep_until_cleanup, signal_from, use_rooms_client};
use crate::rooms::{JoinOptions, Room, RoomNotice};
use crate::MethodCall;
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use serde::Serialize;
use serde_json::Value;

/// A message received in a room.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomMessage {
    /// What the sender sent.
    pub data: Value,
    /// Its type, if the sender gave one.
    pub kind: Option<String>,
}

/// What [`use_room`] returns (`Copy`).
#[derive(Clone, Copy)]
pub struct UseRoom {
    /// True while joined.
    pub connected: Signal<bool>,
    /// The connection id the server assigned (`None` while not joined).
    pub id: Signal<Option<String>>,
    /// The messages received since the hook was called, oldest first.
    pub messages: Signal<Vec<RoomMessage>>,
    /// (`None` in a server render: no room is joined there.)
    room: StoredValue<Option<SendWrapper<Room>>>,
    log: RwSignal<Vec<RoomMessage>>,
}

impl UseRoom {
    /// Sends `data` with an optional type through the outbox (queued while
    /// offline, delivered in order after the rejoin). The returned future
    /// resolves when the server acknowledged it; `.detach()` it to fire and
    /// forget.
    pub fn send(&self, data: impl Serialize, kind: Option<&str>) -> MethodCall<Value> {
        match self.room.try_with_value(|r| r.as_ref().map(|r| (**r).clone())).flatten() {
            Some(room) => room.send(data, kind),
            // The owner is gone, and the room was left with it.
            None => MethodCall::failed(crate::MethodError::Closed),
        }
    }

    /// Forgets the messages received so far.
    pub fn clear_messages(&self) {
        self.log.try_set(Vec::new());
    }

    /// The room membership underneath (`None` once the owner is gone).
    pub fn room(&self) -> Option<Room> {
        self.room.try_with_value(|r| r.as_ref().map(|r| (**r).clone())).flatten()
    }
}

/// Joins room `room_id` over the provided connection (one rooms client per
/// provided connection, made on first use) until the current owner is
/// cleaned up, then leaves it. Two live `use_room` calls for the same room
/// share one membership slot: the later join replaces the earlier.
pub fn use_room(room_id: &str) -> UseRoom {
    use_room_with(room_id, JoinOptions::default())
}

/// [`use_room`] with join options (auth, payload).
pub fn use_room_with(room_id: &str, options: JoinOptions) -> UseRoom {
    on_server!(_ => {
        let log = RwSignal::new(Vec::new());
        UseRoom { connected: Signal::stored(false), id: Signal::stored(None), messages: log.into(), room: StoredValue::new(None), log }
    });
    let room = use_rooms_client().connect(room_id, options);
    let log = RwSignal::new(Vec::new());
    let writer = log;
    let on_notice = room.on_notice(move |n| {
        if let RoomNotice::Message { data, kind } = n {
            writer.try_update(|l| l.push(RoomMessage { data: data.clone(), kind: kind.clone() }));
        }
    });
    let leave = room.clone();
    keep_until_cleanup(on_notice);
    let leave = SendWrapper::new(leave);
    on_cleanup(move || leave.close());
    UseRoom {
        connected: signal_from(room.connected_observable()),
        id: signal_from(room.id_observable()),
        messages: log.into(),
        room: StoredValue::new(Some(SendWrapper::new(room))),
        log,
    }
}
