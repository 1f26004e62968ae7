//! DDP messages as typed Rust values: parsing of server frames and encoding
//! of client frames. Pure: no I/O, no clock.
//!
//! Parsing never panics, whatever the input: every way a frame can be wrong
//! is a [`FrameError`] variant, so the caller can report it and go on.

use super::doc::Doc;
use serde_json::Value;
use std::fmt;

/// A message from the server, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `connected`: the handshake succeeded; `session` is the session id.
    Connected { session: String },
    /// `failed`: the server proposes another protocol version.
    Failed { version: String },
    /// `ping`, to be answered at once with a `pong` carrying the same id.
    Ping { id: Option<String> },
    /// `pong`, the answer to one of our pings.
    Pong { id: Option<String> },
    /// `nosub`: a subscription ended (with an error, or after `unsub`).
    NoSub { id: String, error: Option<Value> },
    /// `added`: a document joined a collection.
    /// (`fields` kept as their JSON text, see [`Doc`].)
    Added { collection: String, id: String, fields: Doc },
    /// `changed`: fields of a document changed (`cleared` are removed).
    Changed { collection: String, id: String, fields: Doc, cleared: Vec<String> },
    /// `removed`: a document left a collection.
    Removed { collection: String, id: String },
    /// `ready`: these subscriptions have sent their initial documents.
    Ready { subs: Vec<String> },
    /// `addedBefore`: an ordered add (Meteor itself never sends it).
    AddedBefore { collection: String, id: String, fields: Doc, before: Option<String> },
    /// `movedBefore`: an ordered move (Meteor itself never sends it).
    MovedBefore { collection: String, id: String, before: Option<String> },
    /// `result` of a method call: `Ok(None)` when the method returned nothing.
    Result { id: String, outcome: Result<Option<Value>, Value> },
    /// `updated`: the writes of these methods are now visible.
    Updated { methods: Vec<String> },
    /// `error`: the server could not understand one of our messages.
    Error { reason: String, offending_message: Option<Value> },
}

/// A frame as read off the wire: either a message, or the `server_id`
/// greeting that Meteor 2.2 and older send first (to be ignored).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Message(ServerMessage),
    ServerId,
}

/// Why a frame could not be understood. The connection stays up: the frame
/// is reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Larger than the configured limit (checked before parsing).
    TooLarge { len: usize, max: usize },
    /// Not valid JSON (or nested deeper than the parser allows).
    NotJson(String),
    /// Valid JSON but not an object.
    NotObject,
    /// An object without a string `msg` field.
    MissingMsg,
    /// A `msg` this client does not know.
    UnknownMsg(String),
    /// A known `msg` whose fields are missing or of the wrong type.
    Malformed { msg: String, detail: String },
    /// A binary frame: DDP is text only.
    Binary { len: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::NotJson(e) => write!(f, "frame is not JSON: {e}"),
            FrameError::NotObject => f.write_str("frame is not a JSON object"),
            FrameError::MissingMsg => f.write_str("frame has no \"msg\" field"),
            FrameError::UnknownMsg(m) => write!(f, "unknown message type \"{m}\""),
            FrameError::Malformed { msg, detail } => write!(f, "malformed \"{msg}\" message: {detail}"),
            FrameError::Binary { len } => write!(f, "binary frame of {len} bytes (DDP is text only)"),
        }
    }
}

impl std::error::Error for FrameError {}

impl FrameError {
    /// A short stable code for the kind of error (used by the JS surface).
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "frame-too-large",
            FrameError::NotJson(_) => "frame-not-json",
            FrameError::NotObject => "frame-not-object",
            FrameError::MissingMsg => "frame-missing-msg",
            FrameError::UnknownMsg(_) => "frame-unknown-msg",
            FrameError::Malformed { .. } => "frame-malformed",
            FrameError::Binary { .. } => "frame-binary",
        }
    }
}

/// Parses one text frame. `max_len` is the largest frame accepted, in bytes.
///
/// The top-level object is read straight into its known fields (no map of
/// it is built, no key is copied); only field values become JSON values.
pub fn parse_frame(text: &str, max_len: usize) -> Result<Frame, FrameError> {
    if text.len() > max_len {
        return Err(FrameError::TooLarge { len: text.len(), max: max_len });
    }
    let wire = read_wire(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    parse_wire(wire.ok_or(FrameError::NotObject)?)
}

/// Reads a frame's top level straight into its known fields (no map of it
/// is built, no key of it kept); `None` for JSON that is not an object.
/// Lone surrogate escapes, which JavaScript's `JSON.stringify` writes for a
/// string cut in the middle of an emoji, are read as U+FFFD (see
/// [`super::json`]).
fn read_wire(text: &str) -> Result<Option<Wire>, super::json::JsonError> {
    let mut r = super::json::Reader::new(text);
    if r.peek() != Some(b'{') {
        r.value()?;
        r.end()?;
        return Ok(None);
    }
    let mut wire = Wire::default();
    r.object(|r, key| {
        let key = Key::of(&key); // borrowed from the text: no copy
                                 // A document's fields are kept as long as the document: as their
                                 // text, checked but not built (see `Doc`).
        if matches!(key, Some(Key::Fields)) && r.peek() == Some(b'{') {
            wire.put_doc(Doc::read(r)?);
        } else {
            let value = r.value()?;
            wire.put(key, value);
        }
        Ok(())
    })?;
    r.end()?;
    Ok(Some(wire))
}

/// The ids a frame that could not be read may carry for a method `result`:
/// the string values of top-level `"id"` keys in a frame whose top-level
/// `"msg"` is `"result"`, found by a scan of the text that follows strings
/// and nesting (the text may be cut, invalid, or only the two ends of a
/// frame too large to read). A document's own `msg`/`id` fields are nested,
/// so they never count. The caller fails only a pending call named by
/// exactly one of them, so a call never waits forever on a result that
/// arrived unreadable.
pub fn result_ids_in(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    // A string starting at `i` (its quote): its raw contents and the index
    // after its closing quote, if it closes.
    let string_at = |i: usize| -> Option<(&str, usize)> {
        let mut j = i + 1;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 2,
                b'"' => return Some((&text[i + 1..j], j + 1)),
                _ => j += 1,
            }
        }
        None
    };
    let skip_ws = |mut j: usize| {
        while b.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
            j += 1;
        }
        j
    };
    let (mut depth, mut i) = (0usize, 0usize);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let Some((key, after)) = string_at(i) else { break };
                i = after;
                let colon = skip_ws(after);
                if depth == 1 && b.get(colon) == Some(&b':') {
                    let v = skip_ws(colon + 1);
                    if b.get(v) == Some(&b'"') {
                        let Some((value, after)) = string_at(v) else { break };
                        pairs.push((key, value));
                        i = after;
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if !pairs.iter().any(|&(k, v)| k == "msg" && v == "result") {
        return Vec::new();
    }
    let mut ids: Vec<&str> = Vec::new();
    for (_, v) in pairs.into_iter().filter(|&(k, v)| k == "id" && !v.contains('\\')) {
        if !ids.contains(&v) {
            ids.push(v);
        }
    }
    ids
}

/// Parses a frame that is already a JSON value.
pub fn parse_value(value: Value) -> Result<Frame, FrameError> {
    let Value::Object(map) = value else {
        return Err(FrameError::NotObject);
    };
    let mut wire = Wire::default();
    for (k, v) in map {
        wire.put(Key::of(&k), v);
    }
    parse_wire(wire)
}

/// The top-level fields of a server message that this client reads.
#[derive(Clone, Copy)]
enum Key {
    Msg,
    Session,
    Version,
    Id,
    Error,
    Collection,
    Fields,
    Cleared,
    Subs,
    Before,
    Result,
    Methods,
    Reason,
    OffendingMessage,
    ServerId,
}

impl Key {
    const COUNT: usize = 15;

    fn of(name: &str) -> Option<Key> {
        Some(match name {
            "msg" => Key::Msg,
            "session" => Key::Session,
            "version" => Key::Version,
            "id" => Key::Id,
            "error" => Key::Error,
            "collection" => Key::Collection,
            "fields" => Key::Fields,
            "cleared" => Key::Cleared,
            "subs" => Key::Subs,
            "before" => Key::Before,
            "result" => Key::Result,
            "methods" => Key::Methods,
            "reason" => Key::Reason,
            "offendingMessage" => Key::OffendingMessage,
            "server_id" => Key::ServerId,
            _ => return None,
        })
    }
}

/// A frame object by field (a repeated key: the last one wins, as in a map).
#[derive(Default)]
struct Wire {
    slots: [Option<Value>; Key::COUNT],
    /// `fields` when it is an object: its text (then its slot is empty).
    doc: Option<Doc>,
    /// Fields this client does not read (skipped, only counted).
    others: usize,
}

impl Wire {
    fn put(&mut self, key: Option<Key>, value: Value) {
        match key {
            Some(k) => {
                if matches!(k, Key::Fields) {
                    self.doc = None;
                }
                self.slots[k as usize] = Some(value)
            }
            None => self.others += 1,
        }
    }

    fn put_doc(&mut self, doc: Doc) {
        self.slots[Key::Fields as usize] = None;
        self.doc = Some(doc);
    }

    fn take(&mut self, key: Key) -> Option<Value> {
        self.slots[key as usize].take()
    }

    fn take_named(&mut self, name: &str) -> Option<Value> {
        Key::of(name).and_then(|k| self.take(k))
    }

    fn len(&self) -> usize {
        self.others + usize::from(self.doc.is_some()) + self.slots.iter().filter(|s| s.is_some()).count()
    }
}

fn parse_wire(mut wire: Wire) -> Result<Frame, FrameError> {
    let msg = match wire.take(Key::Msg) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(FrameError::MissingMsg),
        None => {
            // Meteor ≤ 2.2 greets with {"server_id":"0"}: ignore it.
            return if wire.len() == 1 && wire.take(Key::ServerId).is_some() { Ok(Frame::ServerId) } else { Err(FrameError::MissingMsg) };
        }
    };
    let mut f = Fields { msg: &msg, map: wire };
    let message = match msg.as_str() {
        "connected" => ServerMessage::Connected { session: f.string("session")? },
        "failed" => ServerMessage::Failed { version: f.string("version")? },
        "ping" => ServerMessage::Ping { id: f.opt_string("id")? },
        "pong" => ServerMessage::Pong { id: f.opt_string("id")? },
        "nosub" => ServerMessage::NoSub { id: f.string("id")?, error: f.opt_value("error") },
        "added" => ServerMessage::Added { collection: f.string("collection")?, id: f.string("id")?, fields: f.doc()? },
        "changed" => ServerMessage::Changed {
            collection: f.string("collection")?,
            id: f.string("id")?,
            fields: f.doc()?,
            cleared: f.string_list("cleared", false)?,
        },
        "removed" => ServerMessage::Removed { collection: f.string("collection")?, id: f.string("id")? },
        "ready" => ServerMessage::Ready { subs: f.string_list("subs", true)? },
        "addedBefore" => ServerMessage::AddedBefore {
            collection: f.string("collection")?,
            id: f.string("id")?,
            fields: f.doc()?,
            before: f.opt_string("before")?,
        },
        "movedBefore" => {
            ServerMessage::MovedBefore { collection: f.string("collection")?, id: f.string("id")?, before: f.opt_string("before")? }
        }
        "result" => {
            let id = f.string("id")?;
            let outcome = match f.opt_value("error") {
                Some(err) => Err(err),
                None => Ok(f.opt_value("result")),
            };
            ServerMessage::Result { id, outcome }
        }
        "updated" => ServerMessage::Updated { methods: f.string_list("methods", true)? },
        "error" => {
            ServerMessage::Error { reason: f.opt_string("reason")?.unwrap_or_default(), offending_message: f.opt_value("offendingMessage") }
        }
        _ => return Err(FrameError::UnknownMsg(msg)),
    };
    Ok(Frame::Message(message))
}

/// Field extraction from a message object, with typed errors.
struct Fields<'a> {
    msg: &'a str,
    map: Wire,
}

impl Fields<'_> {
    fn malformed(&self, detail: String) -> FrameError {
        FrameError::Malformed { msg: self.msg.to_owned(), detail }
    }

    fn string(&mut self, key: &str) -> Result<String, FrameError> {
        match self.map.take_named(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(self.malformed(format!("\"{key}\" is not a string"))),
            None => Err(self.malformed(format!("\"{key}\" is missing"))),
        }
    }

    fn opt_string(&mut self, key: &str) -> Result<Option<String>, FrameError> {
        match self.map.take_named(key) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Null) | None => Ok(None),
            Some(_) => Err(self.malformed(format!("\"{key}\" is not a string"))),
        }
    }

    fn opt_value(&mut self, key: &str) -> Option<Value> {
        self.map.take_named(key)
    }

    /// `fields` as kept text (absent or `null`: no field).
    fn doc(&mut self) -> Result<Doc, FrameError> {
        match self.map.doc.take() {
            Some(doc) => Ok(doc),
            // An object is always kept as text: the slot holds anything else.
            None => match self.map.take(Key::Fields) {
                Some(Value::Null) | None => Ok(Doc::empty()),
                Some(_) => Err(self.malformed("\"fields\" is not an object".into())),
            },
        }
    }

    fn string_list(&mut self, key: &str, required: bool) -> Result<Vec<String>, FrameError> {
        match self.map.take_named(key) {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.malformed(format!("\"{key}\" holds a non-string"))),
                })
                .collect(),
            None if !required => Ok(Vec::new()),
            Some(Value::Null) if !required => Ok(Vec::new()),
            None => Err(self.malformed(format!("\"{key}\" is missing"))),
            Some(_) => Err(self.malformed(format!("\"{key}\" is not an array"))),
        }
    }
}

/// A message from the client, ready to be encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Connect {
        /// The previous session, to resume it (servers without resumption ignore it).
        session: Option<String>,
        version: String,
        support: Vec<String>,
        /// Messages received in the previous session (not counting ping/pong),
        /// so a resuming server can replay what was missed.
        received_count: Option<u64>,
    },
    /// Ends the session on purpose, so a resuming server drops it at once.
    Disconnect,
    Ping {
        id: Option<String>,
    },
    Pong {
        id: Option<String>,
    },
    Method {
        method: String,
        params: Vec<Value>,
        id: String,
        random_seed: Option<String>,
    },
    Sub {
        id: String,
        name: String,
        params: Vec<Value>,
    },
    Unsub {
        id: String,
    },
}

impl ClientMessage {
    /// The JSON text of this message (keys in the order DDP documents
    /// them, `msg` first; absent options left out).
    pub fn encode(&self) -> String {
        use super::json::{write_array, write_str, write_u64};
        let mut out = String::with_capacity(64);
        let field = |out: &mut String, key: &str| {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
        };
        let strings = |out: &mut String, items: &[String]| {
            out.push('[');
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(s, out);
            }
            out.push(']');
        };
        let msg = match self {
            ClientMessage::Connect { .. } => "connect",
            ClientMessage::Disconnect => "disconnect",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Pong { .. } => "pong",
            ClientMessage::Method { .. } => "method",
            ClientMessage::Sub { .. } => "sub",
            ClientMessage::Unsub { .. } => "unsub",
        };
        out.push_str("{\"msg\":\"");
        out.push_str(msg);
        out.push('"');
        match self {
            ClientMessage::Connect { session, version, support, received_count } => {
                if let Some(s) = session {
                    field(&mut out, "session");
                    write_str(s, &mut out);
                }
                field(&mut out, "version");
                write_str(version, &mut out);
                field(&mut out, "support");
                strings(&mut out, support);
                if let Some(n) = received_count {
                    field(&mut out, "receivedCount");
                    write_u64(*n, &mut out);
                }
            }
            ClientMessage::Disconnect => {}
            ClientMessage::Ping { id } | ClientMessage::Pong { id } => {
                if let Some(id) = id {
                    field(&mut out, "id");
                    write_str(id, &mut out);
                }
            }
            ClientMessage::Method { method, params, id, random_seed } => {
                field(&mut out, "method");
                write_str(method, &mut out);
                field(&mut out, "params");
                write_array(params, &mut out);
                field(&mut out, "id");
                write_str(id, &mut out);
                if let Some(seed) = random_seed {
                    field(&mut out, "randomSeed");
                    write_str(seed, &mut out);
                }
            }
            ClientMessage::Sub { id, name, params } => {
                field(&mut out, "id");
                write_str(id, &mut out);
                field(&mut out, "name");
                write_str(name, &mut out);
                field(&mut out, "params");
                write_array(params, &mut out);
            }
            ClientMessage::Unsub { id } => {
                field(&mut out, "id");
                write_str(id, &mut out);
            }
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Frame, FrameError> {
        parse_frame(s, 1 << 20)
    }

    #[test]
    fn lone_surrogates_are_read_as_javascript_reads_them_pairs_stay_whole() {
        // What JSON.stringify("😀".slice(0, 1)) writes, in a result and in a document.
        let Ok(Frame::Message(ServerMessage::Result { id, outcome: Ok(Some(v)) })) =
            parse(r#"{"msg":"result","id":"3","result":"cut \ud83d"}"#)
        else {
            panic!("a result with a lone surrogate is read")
        };
        assert_eq!((id.as_str(), v), ("3", Value::from("cut \u{fffd}")));
        let Ok(Frame::Message(ServerMessage::Added { fields, .. })) =
            parse(r#"{"msg":"added","collection":"c","id":"d","fields":{"a\uDC00":"x\udc00y","pair":"\ud83d\ude00","esc":"\\ud83d"}}"#)
        else {
            panic!("a document with lone surrogates is read")
        };
        assert_eq!(fields.fields().get("a\u{fffd}"), Some(&Value::from("x\u{fffd}y")));
        assert_eq!(fields.fields().get("pair"), Some(&Value::from("😀")), "a valid pair is one character");
        assert_eq!(fields.fields().get("esc"), Some(&Value::from("\\ud83d")), "an escaped backslash is not an escape");
        // High then high, and a surrogate at the very end of a string.
        let Ok(Frame::Message(ServerMessage::Result { outcome: Ok(Some(v)), .. })) =
            parse(r#"{"msg":"result","id":"4","result":["\ud83d\ud83d\ude00","\ud800"]}"#)
        else {
            panic!("read")
        };
        assert_eq!(v, serde_json::json!(["\u{fffd}😀", "\u{fffd}"]));
        // Still not JSON: still an error.
        assert!(matches!(parse(r#"{"msg":"result","id":"1","result":"\ud83d"#), Err(FrameError::NotJson(_))));
    }

    #[test]
    fn result_ids_are_found_in_frames_that_cannot_be_read() {
        assert_eq!(result_ids_in(r#"{"msg":"result","id":"12","result":[1,2"#), vec!["12"]);
        assert_eq!(result_ids_in(r#"{ "id" : "7" , "msg" : "result", "result": {"id":"x"} ..."#), vec!["7"], "nested ids do not count");
        // A document whose own fields look like a result is not one.
        assert_eq!(result_ids_in(r#"{"msg":"added","id":"d","fields":{"msg":"result","id":"3"},"pad":"#), Vec::<&str>::new());
        // The two ends of a frame too large to read: the cut string closes in the tail.
        assert_eq!(result_ids_in("{\"msg\":\"result\",\"id\":\"5\",\"result\":\"xxxx\u{2026}xxxx\"}"), vec!["5"]);
        assert_eq!(result_ids_in(r#"{"msg":"result","id":"a\"b"}"#), Vec::<&str>::new(), "an escaped id is no call id");
        assert_eq!(result_ids_in(r#"{"msg":"added","id":"12","fields":{"#), Vec::<&str>::new(), "not a result");
        assert_eq!(result_ids_in(r#"{"msg":"result","id":12}"#), Vec::<&str>::new(), "ids are strings");
        assert_eq!(result_ids_in("\"msg\":\"result\",\"id\":\"9"), Vec::<&str>::new(), "an id cut off is no id");
    }

    #[test]
    fn parses_every_message_type() {
        let cases: &[(&str, ServerMessage)] = &[
            (r#"{"msg":"connected","session":"abc"}"#, ServerMessage::Connected { session: "abc".into() }),
            (r#"{"msg":"failed","version":"pre2"}"#, ServerMessage::Failed { version: "pre2".into() }),
            (r#"{"msg":"ping","id":"7"}"#, ServerMessage::Ping { id: Some("7".into()) }),
            (r#"{"msg":"ping"}"#, ServerMessage::Ping { id: None }),
            (r#"{"msg":"pong"}"#, ServerMessage::Pong { id: None }),
            (r#"{"msg":"nosub","id":"s1"}"#, ServerMessage::NoSub { id: "s1".into(), error: None }),
            (
                r#"{"msg":"added","collection":"c","id":"d","fields":{"a":1}}"#,
                ServerMessage::Added {
                    collection: "c".into(),
                    id: "d".into(),
                    fields: Doc::from_fields(&serde_json::from_str(r#"{"a":1}"#).unwrap()),
                },
            ),
            (
                r#"{"msg":"changed","collection":"c","id":"d","cleared":["x"]}"#,
                ServerMessage::Changed { collection: "c".into(), id: "d".into(), fields: Doc::empty(), cleared: vec!["x".into()] },
            ),
            (r#"{"msg":"removed","collection":"c","id":"d"}"#, ServerMessage::Removed { collection: "c".into(), id: "d".into() }),
            (r#"{"msg":"ready","subs":["a","b"]}"#, ServerMessage::Ready { subs: vec!["a".into(), "b".into()] }),
            (
                r#"{"msg":"movedBefore","collection":"c","id":"d","before":null}"#,
                ServerMessage::MovedBefore { collection: "c".into(), id: "d".into(), before: None },
            ),
            (r#"{"msg":"result","id":"1"}"#, ServerMessage::Result { id: "1".into(), outcome: Ok(None) }),
            (r#"{"msg":"result","id":"1","result":5}"#, ServerMessage::Result { id: "1".into(), outcome: Ok(Some(Value::from(5))) }),
            (
                r#"{"msg":"result","id":"1","error":{"error":404}}"#,
                ServerMessage::Result { id: "1".into(), outcome: Err(serde_json::json!({"error":404})) },
            ),
            (r#"{"msg":"updated","methods":["1"]}"#, ServerMessage::Updated { methods: vec!["1".into()] }),
            (r#"{"msg":"error","reason":"Bad request"}"#, ServerMessage::Error { reason: "Bad request".into(), offending_message: None }),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(Frame::Message(expected.clone())), "{text}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            parse(r#"{"msg":"connected","session":"s","extra":[1,2]}"#),
            Ok(Frame::Message(ServerMessage::Connected { session: "s".into() }))
        );
    }

    #[test]
    fn server_id_greeting_is_ignored_but_other_msgless_frames_are_errors() {
        assert_eq!(parse(r#"{"server_id":"0"}"#), Ok(Frame::ServerId));
        assert_eq!(parse(r#"{"server_id":"0","x":1}"#), Err(FrameError::MissingMsg));
        assert_eq!(parse(r#"{"msg":5}"#), Err(FrameError::MissingMsg));
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert!(matches!(parse("not json"), Err(FrameError::NotJson(_))));
        assert_eq!(parse("[1,2]"), Err(FrameError::NotObject));
        assert_eq!(parse(r#"{"msg":"bogus"}"#), Err(FrameError::UnknownMsg("bogus".into())));
        assert!(matches!(parse(r#"{"msg":"connected"}"#), Err(FrameError::Malformed { .. })));
        assert!(matches!(parse(r#"{"msg":"ready","subs":[1]}"#), Err(FrameError::Malformed { .. })));
        assert!(matches!(parse(r#"{"msg":"added","collection":"c","id":"d","fields":3}"#), Err(FrameError::Malformed { .. })));
        assert_eq!(parse_frame("{}", 1), Err(FrameError::TooLarge { len: 2, max: 1 }));
    }

    #[test]
    fn scalars_and_arrays_are_not_objects() {
        for text in ["5", "-1", "1.5", "true", "null", r#""msg""#, "[]", r#"[{"msg":"ping"}]"#] {
            assert_eq!(parse(text), Err(FrameError::NotObject), "{text}");
        }
    }

    #[test]
    fn a_null_result_is_kept_apart_from_no_result_and_the_last_repeated_key_wins() {
        let null = parse(r#"{"msg":"result","id":"1","result":null}"#);
        assert_eq!(null, Ok(Frame::Message(ServerMessage::Result { id: "1".into(), outcome: Ok(Some(Value::Null)) })));
        let none = parse(r#"{"msg":"result","id":"1"}"#);
        assert_eq!(none, Ok(Frame::Message(ServerMessage::Result { id: "1".into(), outcome: Ok(None) })));
        let twice = parse(r#"{"msg":"connected","session":"a","session":"b"}"#);
        assert_eq!(twice, Ok(Frame::Message(ServerMessage::Connected { session: "b".into() })));
        // An escaped key is still that key.
        assert_eq!(parse(r#"{"ms\u0067":"ping"}"#), Ok(Frame::Message(ServerMessage::Ping { id: None })));
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod reading_text_equals_reading_a_value {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                "[a-z\\\\\"é]{0,6}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z]{1,3}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "msg",
                    "session",
                    "version",
                    "id",
                    "error",
                    "collection",
                    "fields",
                    "cleared",
                    "subs",
                    "before",
                    "result",
                    "methods",
                    "reason",
                    "offendingMessage",
                    "server_id",
                ])
                .prop_map(str::to_owned),
                "[a-z_]{1,8}",
            ]
        }

        fn msg() -> impl Strategy<Value = Value> {
            prop::sample::select(vec![
                "connected",
                "failed",
                "ping",
                "pong",
                "nosub",
                "added",
                "changed",
                "removed",
                "ready",
                "addedBefore",
                "movedBefore",
                "result",
                "updated",
                "error",
                "bogus",
            ])
            .prop_map(Value::from)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            /// The direct reader agrees with reading through a JSON value,
            /// for any object of known and unknown keys (repeated keys
            /// included: the last one wins in both).
            #[test]
            fn any_object(pairs in prop::collection::vec((key(), value()), 0..8), m in prop::option::of(msg())) {
                let mut text = String::from("{");
                let mut fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v)).collect();
                if let Some(m) = &m {
                    fields.insert(fields.len() / 2, format!("\"msg\":{m}"));
                }
                text.push_str(&fields.join(","));
                text.push('}');
                let via_value = serde_json::from_str::<Value>(&text).map_err(|e| FrameError::NotJson(e.to_string())).and_then(parse_value);
                prop_assert_eq!(parse(&text), via_value, "{}", text);
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(parse(&deep), Err(FrameError::NotJson(_))));
    }

    #[test]
    fn client_messages_encode_as_ddp() {
        let c =
            ClientMessage::Connect { session: None, version: "1".into(), support: vec!["1".into(), "pre2".into()], received_count: None };
        assert_eq!(c.encode(), r#"{"msg":"connect","version":"1","support":["1","pre2"]}"#);
        assert_eq!(ClientMessage::Pong { id: Some("x".into()) }.encode(), r#"{"msg":"pong","id":"x"}"#);
        assert_eq!(ClientMessage::Ping { id: None }.encode(), r#"{"msg":"ping"}"#);
        let resume =
            ClientMessage::Connect { session: Some("S".into()), version: "1".into(), support: vec!["1".into()], received_count: Some(7) };
        assert_eq!(resume.encode(), r#"{"msg":"connect","session":"S","version":"1","support":["1"],"receivedCount":7}"#);
        let m = ClientMessage::Method { method: "m".into(), params: vec![Value::from(1)], id: "3".into(), random_seed: None };
        assert_eq!(m.encode(), r#"{"msg":"method","method":"m","params":[1],"id":"3"}"#);
        assert_eq!(ClientMessage::Disconnect.encode(), r#"{"msg":"disconnect"}"#);
    }
}
