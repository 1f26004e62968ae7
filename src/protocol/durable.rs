//! What a durable outbox keeps of a call, and how it is written: one
//! record per call, as JSON text with a format version.
//!
//! A record holds what sending the call again needs: its method id, name,
//! EJSON parameters, `randomSeed` (so a re-sent insert makes the same ids
//! on the server as its stub made here: a duplicate key, never a second
//! document), its `wait`/`noRetry` flags, and the user it was made as (a
//! queue written as one user is never sent as another). Pure: storing the
//! text is the host's business.

use crate::protocol::json;
use serde_json::Value;

/// The record format written now. A store holding another version is
/// read as far as it can be (older versions are migrated here); records
/// of a newer version are reported, not guessed at.
pub const RECORD_VERSION: u64 = 1;

/// A call as a durable outbox keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// The DDP method id it was (and will again be) sent with.
    pub id: u64,
    pub name: String,
    /// EJSON-encoded parameters.
    pub params: Vec<Value>,
    pub random_seed: Option<String>,
    pub wait: bool,
    pub no_retry: bool,
    /// The user logged in when it was made (`None`: nobody).
    pub user: Option<String>,
    /// When it was made (ms since the epoch).
    pub at: f64,
    /// A `noRetry` call that was sent: it may have run, so it is never sent
    /// again (it fails as `invocation-failed`, as after a drop).
    pub sent: bool,
}

/// A session a page had with the server, as its durable outbox keeps it
/// (next to the page's calls, under the page's mark), so that the next page
/// can take the session over on a server that resumes sessions: the calls
/// the server read then run exactly once, their results replayed.
///
/// Written whenever the session or its subscriptions change, and at most a
/// second late otherwise. A late record is safe: `received` is then lower
/// (the server replays more), and the record is written in order with the
/// call records (a call answered before it was written has no record
/// left). Pages never share method ids (each numbers its calls from a
/// random base, [`Config::adopt_sessions`](crate::protocol::machine::Config::adopt_sessions)),
/// so no page's call passes for another's re-send.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub session: String,
    /// Messages received in it (not counting ping/pong).
    pub received: u64,
    /// The subscriptions the server has (or may have) for it: the next page
    /// stops them, since it makes its own.
    pub subs: Vec<String>,
    /// When it was written (ms since the epoch).
    pub at: f64,
}

/// What a server message means while the subscriptions of a session taken
/// over (an earlier page's, an earlier hub's) stop: every document message
/// until their `nosub`s is theirs, and dropped. An answer to a subscription
/// of the new owner's (sent after the `unsub`s) ends the wait too: a
/// `nosub` still missing then will never come.
#[derive(Debug, PartialEq)]
pub enum Stopping {
    /// Theirs: dropped.
    Theirs,
    /// The `nosub` of one of them (taken off `stopping`): dropped.
    Stopped(String),
    /// The wait is over (`stopping` emptied; these never had their
    /// `nosub`): the message is the new owner's.
    Over(Vec<String>),
    /// Not about them.
    Other,
}

/// Reads `message` while `stopping` (not empty) stop; see [`Stopping`].
pub fn while_stopping(stopping: &mut Vec<String>, message: &crate::protocol::message::ServerMessage) -> Stopping {
    use crate::protocol::message::ServerMessage as M;
    match message {
        M::NoSub { id, .. } if stopping.contains(id) => {
            stopping.retain(|x| x != id);
            Stopping::Stopped(id.clone())
        }
        M::Ready { subs } if subs.iter().all(|id| stopping.contains(id)) => Stopping::Theirs,
        M::Ready { .. } | M::NoSub { .. } => Stopping::Over(std::mem::take(stopping)),
        M::Added { .. } | M::AddedBefore { .. } | M::Changed { .. } | M::Removed { .. } | M::MovedBefore { .. } => Stopping::Theirs,
        _ => Stopping::Other,
    }
}

/// The key suffix of a page's session record (`<page>-session`; a call's
/// is its zero-padded id).
pub const SESSION_KEY: &str = "session";

impl SessionRecord {
    pub fn to_text(&self) -> String {
        let mut out = String::from("{\"v\":");
        json::write_u64(RECORD_VERSION, &mut out);
        out.push_str(",\"session\":");
        json::write_str(&self.session, &mut out);
        out.push_str(",\"received\":");
        json::write_u64(self.received, &mut out);
        out.push_str(",\"subs\":");
        let subs: Vec<Value> = self.subs.iter().map(|s| Value::String(s.clone())).collect();
        json::write_array(&subs, &mut out);
        out.push_str(",\"at\":");
        json::write_value(&Value::from(self.at), &mut out);
        out.push('}');
        out
    }

    pub fn from_text(text: &str) -> Result<SessionRecord, RecordError> {
        let bad = |why: &str| RecordError::Malformed(why.to_owned());
        let o = versioned(text)?;
        let count =
            |k: &str| o.get(k).and_then(Value::as_u64).filter(|n| *n < 1 << 53).ok_or_else(|| RecordError::Malformed(format!("no {k}")));
        let subs = match o.get("subs") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| bad("a subscription id is not a string")))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("no subs")),
        };
        Ok(SessionRecord {
            session: o.get("session").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| bad("no session"))?.to_owned(),
            received: count("received")?,
            subs,
            at: o.get("at").and_then(Value::as_f64).unwrap_or(0.0),
        })
    }
}

/// A stored record's object, once its format version is one this client reads.
fn versioned(text: &str) -> Result<serde_json::Map<String, Value>, RecordError> {
    let value = json::parse(text).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let Value::Object(o) = value else { return Err(RecordError::Malformed("not an object".into())) };
    let version = o.get("v").and_then(Value::as_u64).ok_or_else(|| RecordError::Malformed("no format version".into()))?;
    if version > RECORD_VERSION {
        return Err(RecordError::Newer(version));
    }
    Ok(o)
}

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordError {
    /// Not a record this client can read (not JSON, a field missing or of
    /// the wrong type).
    Malformed(String),
    /// Written by a newer version of the client (its format version).
    Newer(u64),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Malformed(why) => write!(f, "unreadable record: {why}"),
            RecordError::Newer(v) => write!(f, "a record of format {v}, newer than this client's ({RECORD_VERSION})"),
        }
    }
}

impl CallRecord {
    /// The record as stored.
    pub fn to_text(&self) -> String {
        let mut out = String::from("{\"v\":");
        json::write_u64(RECORD_VERSION, &mut out);
        out.push_str(",\"id\":");
        json::write_u64(self.id, &mut out);
        out.push_str(",\"name\":");
        json::write_str(&self.name, &mut out);
        out.push_str(",\"params\":");
        json::write_array(&self.params, &mut out);
        if let Some(seed) = &self.random_seed {
            out.push_str(",\"seed\":");
            json::write_str(seed, &mut out);
        }
        if self.wait {
            out.push_str(",\"wait\":true");
        }
        if self.no_retry {
            out.push_str(",\"noRetry\":true");
        }
        if self.sent {
            out.push_str(",\"sent\":true");
        }
        if let Some(user) = &self.user {
            out.push_str(",\"user\":");
            json::write_str(user, &mut out);
        }
        out.push_str(",\"at\":");
        json::write_value(&Value::from(self.at), &mut out);
        out.push('}');
        out
    }

    /// Reads a stored record.
    pub fn from_text(text: &str) -> Result<CallRecord, RecordError> {
        let bad = |why: &str| RecordError::Malformed(why.to_owned());
        let o = versioned(text)?;
        let text_field = |k: &str| match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(RecordError::Malformed(format!("{k} is not a string"))),
        };
        let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(CallRecord {
            id: o.get("id").and_then(Value::as_u64).filter(|id| *id > 0).ok_or_else(|| bad("no id"))?,
            name: text_field("name")?.ok_or_else(|| bad("no name"))?,
            params: match o.get("params") {
                Some(Value::Array(a)) => a.clone(),
                _ => return Err(bad("no params")),
            },
            random_seed: text_field("seed")?,
            wait: flag("wait"),
            no_retry: flag("noRetry"),
            user: text_field("user")?,
            at: o.get("at").and_then(Value::as_f64).unwrap_or(0.0),
            sent: flag("sent"),
        })
    }

    /// The key it is stored under: its id, zero-padded so that keys sort
    /// as the calls were made.
    pub fn key(id: u64) -> String {
        format!("{id:020}")
    }
}

/// What a page does with the records it found (key and text each): which
/// go back in the outbox, which wait for their user, which fail, which are
/// unreadable. Every decision, none of the doing.
#[derive(Debug, Default, PartialEq)]
pub struct RestorePlan {
    /// Back in the outbox now, in the order they were made (by time, then
    /// key: a page's keys sort by id).
    pub ready: Vec<(String, CallRecord)>,
    /// Made as a user other than the one logged in now: they wait for theirs.
    pub waiting: Vec<(String, CallRecord)>,
    /// `noRetry` calls that were sent: they may have run, so they fail
    /// (`invocation-failed`), as after a drop, and are not sent again.
    pub failed: Vec<(String, CallRecord)>,
    /// Damaged records: to be removed.
    pub discarded: Vec<(String, RecordError)>,
    /// Records of a newer client: left for it.
    pub skipped: Vec<(String, RecordError)>,
}

impl RestorePlan {
    /// Sorts out `stored` for a page where `user` is logged in (`None`:
    /// nobody). A call made while nobody was logged in goes out as whoever is.
    pub fn new(stored: Vec<(String, String)>, user: Option<&str>) -> RestorePlan {
        let mut plan = RestorePlan::default();
        let mut records = Vec::with_capacity(stored.len());
        for (key, text) in stored {
            match CallRecord::from_text(&text) {
                Ok(r) => records.push((key, r)),
                Err(e @ RecordError::Newer(_)) => plan.skipped.push((key, e)),
                Err(e @ RecordError::Malformed(_)) => plan.discarded.push((key, e)),
            }
        }
        crate::protocol::order::sort_by(&mut records, |a, b| a.1.at.total_cmp(&b.1.at).then_with(|| a.0.cmp(&b.0)));
        for (key, r) in records {
            if r.no_retry && r.sent {
                plan.failed.push((key, r));
            } else if r.user.is_none() || r.user.as_deref() == user {
                plan.ready.push((key, r));
            } else {
                plan.waiting.push((key, r));
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> CallRecord {
        CallRecord {
            id: 42,
            name: "todos.insert".into(),
            params: vec![json!({"text": "milk \"2\" ✓", "n": 1.5, "d": {"$date": 1}})],
            random_seed: Some("a1b2".into()),
            wait: true,
            no_retry: false,
            user: Some("u1".into()),
            at: 1_764_000_000_123.0,
            sent: true,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let r = record();
        assert_eq!(CallRecord::from_text(&r.to_text()), Ok(r.clone()));
        let bare = CallRecord { random_seed: None, wait: false, user: None, no_retry: true, params: vec![], sent: false, ..r };
        assert_eq!(CallRecord::from_text(&bare.to_text()), Ok(bare));
    }

    #[test]
    fn a_newer_format_is_reported_not_guessed() {
        let text = record().to_text().replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(CallRecord::from_text(&text), Err(RecordError::Newer(2)));
    }

    #[test]
    fn broken_records_are_errors() {
        for text in ["", "[]", "{\"v\":1}", "{\"id\":3,\"name\":\"m\",\"params\":[]}", "{\"v\":1,\"id\":0,\"name\":\"m\",\"params\":[]}"] {
            assert!(matches!(CallRecord::from_text(text), Err(RecordError::Malformed(_))), "{text}");
        }
        let text = "{\"v\":1,\"id\":3,\"name\":7,\"params\":[]}";
        assert_eq!(CallRecord::from_text(text), Err(RecordError::Malformed("name is not a string".into())));
    }

    #[test]
    fn a_plan_sorts_records_by_time_and_by_what_becomes_of_them() {
        let rec = |id: u64, at: f64, user: Option<&str>, no_retry: bool, sent: bool| CallRecord {
            id,
            name: format!("m{id}"),
            params: vec![],
            random_seed: None,
            wait: false,
            no_retry,
            user: user.map(str::to_owned),
            at,
            sent,
        };
        let stored = vec![
            ("b-2".to_owned(), rec(2, 20.0, Some("ada"), false, false).to_text()),
            ("a-1".to_owned(), rec(1, 10.0, None, false, false).to_text()),
            ("a-3".to_owned(), rec(3, 10.0, Some("bob"), false, false).to_text()),
            ("a-4".to_owned(), rec(4, 30.0, Some("ada"), true, true).to_text()),
            ("a-5".to_owned(), rec(5, 30.0, Some("ada"), true, false).to_text()),
            ("c-1".to_owned(), "not json".to_owned()),
            ("c-2".to_owned(), record().to_text().replacen("\"v\":1", "\"v\":7", 1)),
        ];
        let plan = RestorePlan::new(stored, Some("ada"));
        let keys = |v: &[(String, CallRecord)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&plan.ready), ["a-1", "b-2", "a-5"], "by time, then key; nobody's and ada's");
        assert_eq!(keys(&plan.waiting), ["a-3"], "bob's waits for bob");
        assert_eq!(keys(&plan.failed), ["a-4"], "a sent noRetry call is not sent again");
        assert_eq!(plan.discarded.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["c-1"]);
        assert_eq!(plan.skipped, vec![("c-2".to_owned(), RecordError::Newer(7))]);
    }

    #[test]
    fn a_session_record_reads_back_as_written_and_a_broken_one_is_an_error() {
        let r = SessionRecord { session: "s1".into(), received: 41, subs: vec!["a".into(), "b\"c".into()], at: 5.0 };
        assert_eq!(SessionRecord::from_text(&r.to_text()), Ok(r.clone()));
        assert_eq!(SessionRecord::from_text(&r.to_text().replacen("\"v\":1", "\"v\":3", 1)), Err(RecordError::Newer(3)));
        for text in
            ["{}", "{\"v\":1,\"session\":\"\",\"received\":1,\"subs\":[]}", "{\"v\":1,\"session\":\"s\",\"received\":1,\"subs\":[1]}"]
        {
            assert!(matches!(SessionRecord::from_text(text), Err(RecordError::Malformed(_))), "{text}");
        }
    }

    #[test]
    fn keys_sort_as_the_calls_were_made() {
        let mut keys = [CallRecord::key(10), CallRecord::key(9), CallRecord::key(100)];
        keys.sort();
        assert_eq!(keys, [CallRecord::key(9), CallRecord::key(10), CallRecord::key(100)]);
    }
}
