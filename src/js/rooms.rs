//! Rooms for JavaScript: `new Client(url, options)`, `client.connect(roomId,
//! { auth, query })` → a room `Connection` in the style of js-collaboration.

use super::emitter::{Emitter, ROOM_EVENTS};
use super::{ejson, get, js_error, method_error_to_js, parse_options, to_js_error, DdpConnection, JsConnectOptions};
use crate::protocol::ejson::Ejson;
use crate::reactive::ListenerHandle;
use crate::rooms::{Client, JoinOptions, Room, RoomNotice};
use js_sys::Function;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_ROOMS: &'static str = r#"
/** Options of `client.connect(roomId, options)`: given to the server's middleware. */
export interface RoomJoinOptions {
  auth?: unknown;
  query?: Record<string, unknown>;
}

/** Events of a room connection: a DDP connection's, plus `message`. */
export interface RoomConnectionEvents extends DDPConnectionEvents {
  message: (data: unknown, type?: string) => void;
}

export interface Connection extends DDPEmitter<RoomConnectionEvents> {}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "RoomJoinOptions")]
    pub type JsJoinOptions;
    #[wasm_bindgen(typescript_type = "Promise<true>")]
    pub type JsAck;
    #[wasm_bindgen(typescript_type = "string | number | boolean | null | unknown[] | Record<string, unknown>")]
    pub type JsRoomData;
}

/// Rooms over one DDP connection (one socket for all rooms).
#[wasm_bindgen(js_name = Client)]
pub struct JsClient {
    client: Client,
    /// The one `DDPConnection` object of `client.connection`, made on first
    /// use: every read gives the same object, so listeners, `off()` and
    /// `methods()` all see one connection.
    connection: std::cell::OnceCell<JsValue>,
}

#[wasm_bindgen(js_class = Client)]
impl JsClient {
    /// Connects to the DDP server at `url`; `options` are `DDP.connect`'s.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: Option<JsConnectOptions>) -> Result<JsClient, JsValue> {
        let options = parse_options(options.map(JsValue::from).unwrap_or(JsValue::UNDEFINED))?;
        let client = Client::with_connection(super::open(url, &options).map_err(to_js_error)?);
        Ok(JsClient { client, connection: std::cell::OnceCell::new() })
    }

    /// Joins `roomId`; `auth` and `query` go to the server's middleware.
    #[allow(non_snake_case)]
    pub fn connect(&self, roomId: &str, options: Option<JsJoinOptions>) -> Result<JsRoom, JsValue> {
        let room_id = roomId;
        let options: JsValue = options.map(JsValue::from).unwrap_or(JsValue::UNDEFINED);
        let field = |k: &str| -> Result<serde_json::Value, JsValue> {
            let v = get(&options, k);
            if v.is_undefined() {
                return Ok(serde_json::Value::Null);
            }
            ejson::from_js(&v).map(|e| e.to_json()).map_err(|e| js_error("invalid-options", &format!("{k}: {e}")))
        };
        let join = JoinOptions { auth: field("auth")?, query: field("query")? };
        Ok(JsRoom::new(self.client.connect(room_id, join)))
    }

    /// The DDP connection underneath (status, calls, subscriptions).
    #[wasm_bindgen(getter, unchecked_return_type = "DDPConnection")]
    pub fn connection(&self) -> JsValue {
        self.connection.get_or_init(|| DdpConnection::new(self.client.connection().clone()).into()).clone()
    }

    /// Leaves every room and closes the socket.
    pub fn close(&self) {
        self.client.close();
    }
}

/// One room membership (js-collaboration's `Connection`).
#[wasm_bindgen(js_name = Connection)]
pub struct JsRoom {
    room: Room,
    listeners: Emitter,
    _handle: ListenerHandle,
}

impl JsRoom {
    fn new(room: Room) -> Self {
        let listeners = Emitter::new(ROOM_EVENTS);
        let l = listeners.clone();
        let handle = room.on_notice(move |n| match n {
            RoomNotice::Connect => l.emit("connect", &[]),
            RoomNotice::Message { data, kind } => {
                let data = ejson::to_js(&Ejson::from_json(data.clone()));
                let kind = kind.as_deref().map_or(JsValue::UNDEFINED, JsValue::from_str);
                l.emit("message", &[data, kind]);
            }
            RoomNotice::Disconnect(reason) => l.emit("disconnect", &[reason.as_str().into()]),
            RoomNotice::Error { code, reason } => l.emit("error", &[js_error(code, reason)]),
            RoomNotice::ReconnectAttempt(n) => l.emit("reconnect_attempt", &[(*n).into()]),
            RoomNotice::Reconnect(n) => l.emit("reconnect", &[(*n).into()]),
            RoomNotice::ReconnectFailed => l.emit("reconnect_failed", &[]),
        });
        JsRoom { room, listeners, _handle: handle }
    }
}

#[wasm_bindgen(js_class = Connection)]
impl JsRoom {
    /// The id the server assigned (20 characters); undefined while not joined.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> Option<String> {
        self.room.id()
    }

    /// The room's id.
    #[wasm_bindgen(getter, js_name = roomId)]
    pub fn room_id(&self) -> String {
        self.room.room_id().to_owned()
    }

    /// True while joined.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.room.connected()
    }

    /// Sends `data` (string, number, array, plain object) with an optional
    /// type. Queued while offline and delivered in order after the rejoin;
    /// the Promise resolves when the server acknowledged it.
    pub fn send(&self, data: JsRoomData, r#type: Option<String>) -> Result<JsAck, JsValue> {
        let value = match ejson::from_js(&data.into()) {
            Ok(e) => e.to_json(),
            Err(e) => return Err(js_error("bad-arguments", &format!("send(): {e}"))),
        };
        let (promise, settle) = super::call_promise(|_| JsValue::TRUE, || {});
        if let Err(e) = self.room.send_with(value, r#type.as_deref(), settle) {
            return Ok(JsValue::from(js_sys::Promise::reject(&method_error_to_js(&e))).unchecked_into());
        }
        Ok(JsValue::from(promise).unchecked_into())
    }

    /// Leaves the room; the socket stays for the client's other rooms.
    pub fn close(&self) {
        self.room.close();
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, listener: Function) -> Result<(), JsValue> {
        self.listeners.add(event, listener, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn once(&self, event: &str, listener: Function) -> Result<(), JsValue> {
        self.listeners.add(event, listener, true)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, listener: Option<Function>) {
        self.listeners.off(event, listener);
    }
}
