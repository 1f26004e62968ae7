//! Method calls: the outbox, blocks, re-sends and completion.
//!
//! Meteor's rules, kept here as pure state:
//! - Calls are grouped in blocks. A `wait` call is a block of its own;
//!   other calls join the last block unless it is a `wait` block. Only the
//!   first block is on the wire; the next one goes out when every call of
//!   the first has completed.
//! - A call completes when both its `result` and its `updated` arrived, in
//!   either order.
//! - Calls made while the link is down wait in the outbox (bounded by count
//!   and bytes; a full outbox rejects the new call at once).
//! - After a drop, with a **new** session: calls whose `result` arrived
//!   complete (the old session can no longer send `updated`); sent
//!   `noRetry` calls of the first block fail with `invocation-failed`; every
//!   other call is re-sent with the same id after the app's `onReconnect`
//!   hooks, whose own calls go first.
//! - With a **resumed** session the server still knows every id it saw, so
//!   unanswered calls are re-sent with the same id and it never runs one
//!   twice; missed results are replayed by the server. No hooks run: the
//!   session (and its login) survived.

use super::{Completion, Event, Machine, Output, Phase};
use crate::protocol::durable::CallRecord;
use crate::protocol::hash::FastMap;
use crate::protocol::message::ClientMessage;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;

/// How a call is made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// Run alone: nothing after it is sent until it completes.
    pub wait: bool,
    /// Never re-send: if the link drops after sending, fail with
    /// `invocation-failed` (unless the session is resumed).
    pub no_retry: bool,
    /// Fail with `timeout` if not completed within this many ms.
    pub timeout_ms: Option<f64>,
    /// The `randomSeed` to send (for client stubs that made random ids).
    pub random_seed: Option<String>,
    /// Resolve with the client stub's value instead of the server's (the
    /// server call still runs). Used by the driver, not the machine.
    pub return_stub_value: bool,
    /// If the stub fails, fail the call without calling the server (by
    /// default the failure is logged and the server is called).
    pub throw_stub_exceptions: bool,
    /// Never kept by a durable outbox: a call that belongs to its session
    /// (what the client sends by itself: logins, which carry credentials,
    /// logouts, room joins and messages), not to the app's data.
    pub transient: bool,
}

/// A document write made by a client stub: `doc` None removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct StubWrite {
    pub collection: String,
    pub id: String,
    pub doc: Option<crate::protocol::store::Fields>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodError {
    /// The server's method threw (a Meteor.Error on the wire).
    Server { error: Value, reason: Option<String>, details: Option<Value>, raw: Value },
    /// Sent with `noRetry` and the link dropped before the result: it may or
    /// may not have run.
    InvocationFailed,
    /// Not completed in time (if it was sent, it may still run).
    Timeout,
    /// The outbox is full; the call was not queued.
    QueueFull { limit: &'static str },
    /// Cancelled before it was sent.
    Cancelled,
    /// The client stub failed and `throw_stub_exceptions` was set.
    StubFailed(String),
    /// The connection was closed.
    Closed,
    /// The arguments could not be encoded (Rust API).
    BadArguments(String),
    /// The result could not be decoded into the requested type (Rust API).
    BadResult(String),
    /// The server's `result` arrived but could not be read (too large, not
    /// JSON, malformed): the call fails with the frame's error code
    /// (`frame-too-large`, `frame-not-json`, `frame-malformed`…) instead of
    /// waiting forever.
    BadFrame(crate::protocol::message::FrameError),
    /// The server refused the call's message as too large: it closed the
    /// socket with 1009 (Message Too Big), and this was the largest message
    /// it had not answered (so at least as large as the one it refused).
    /// Re-sending it would only be refused again: the call fails instead of
    /// looping through reconnects. `frame_bytes`: its message's length.
    TooLarge { frame_bytes: usize },
}

impl MethodError {
    /// Meteor's `error` field: the server's code, or this client's own
    /// ("invocation-failed", "timeout", "queue-full", "cancelled", "closed").
    pub fn error(&self) -> Value {
        match self {
            MethodError::Server { error, .. } => error.clone(),
            MethodError::InvocationFailed => "invocation-failed".into(),
            MethodError::Timeout => "timeout".into(),
            MethodError::QueueFull { .. } => "queue-full".into(),
            MethodError::Cancelled => "cancelled".into(),
            MethodError::StubFailed(_) => "stub-failed".into(),
            MethodError::Closed => "closed".into(),
            MethodError::BadArguments(_) => "bad-arguments".into(),
            MethodError::BadResult(_) => "bad-result".into(),
            MethodError::BadFrame(e) => e.code().into(),
            MethodError::TooLarge { .. } => "message-too-big".into(),
        }
    }

    /// Meteor's `reason` field.
    pub fn reason(&self) -> String {
        match self {
            MethodError::Server { reason, error, .. } => reason.clone().unwrap_or_else(|| match error {
                Value::String(s) => s.clone(),
                other => crate::protocol::json::to_text(other),
            }),
            MethodError::InvocationFailed => {
                "Method invocation might have failed due to dropped connection. Failing because `noRetry` option was passed to Meteor.apply.".into()
            }
            MethodError::Timeout => "The method call timed out".into(),
            MethodError::QueueFull { limit } => format!("The outbox is full ({limit}); the call was not queued"),
            MethodError::Cancelled => "The call was cancelled before it was sent".into(),
            MethodError::StubFailed(e) => format!("The client stub failed: {e}"),
            MethodError::Closed => "The connection is closed".into(),
            MethodError::BadArguments(e) => format!("The arguments could not be encoded: {e}"),
            MethodError::BadResult(e) => format!("The result could not be decoded: {e}"),
            MethodError::BadFrame(e) => format!("The result could not be read: {e}"),
            MethodError::TooLarge { frame_bytes } => {
                format!("The server refused the call's message as too large (WebSocket close 1009; a message of {frame_bytes} bytes)")
            }
        }
    }

    /// The server's `details`, if any.
    pub fn details(&self) -> Option<&Value> {
        match self {
            MethodError::Server { details, .. } => details.as_ref(),
            _ => None,
        }
    }

    fn from_wire(raw: Value) -> MethodError {
        let error = raw.get("error").cloned().unwrap_or_else(|| "internal-error".into());
        let reason = raw.get("reason").and_then(Value::as_str).map(str::to_owned);
        let details = raw.get("details").cloned();
        MethodError::Server { error, reason, details, raw }
    }
}

impl fmt::Display for MethodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self.error() {
            Value::String(s) => s,
            other => crate::protocol::json::to_text(&other),
        };
        write!(f, "{} [{code}]", self.reason())
    }
}

impl std::error::Error for MethodError {}

/// How many calls are waiting: `queued` not yet sent, `in_flight` sent and
/// not yet complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outbox {
    pub queued: usize,
    pub in_flight: usize,
}

#[derive(Debug)]
struct Call {
    name: String,
    params: Vec<Value>,
    options: CallOptions,
    deadline: Option<f64>,
    sent: bool,
    result: Option<Result<Option<Value>, MethodError>>,
    updated: bool,
    bytes: usize,
    /// The length of its `method` frame when last sent.
    frame: usize,
}

/// A block of calls in send order. Pushing, removing and taking the unsent
/// calls are O(1) per call (amortised): blocks can hold thousands of
/// pipelined calls, and results mostly come back in order.
#[derive(Debug, Default)]
struct Block {
    wait: bool,
    /// Slot `p - base` holds the call at position `p` (`None` once it
    /// completed; completed slots at the front are dropped).
    slots: VecDeque<Option<u64>>,
    base: u64,
    /// Call id → position.
    pos: FastMap<u64, u64>,
    /// Positions pushed unsent, in order (the first block's are sent from
    /// here; a position whose call completed is skipped when taken).
    unsent: VecDeque<u64>,
    live: usize,
}

impl Block {
    fn new(wait: bool, id: u64) -> Self {
        let mut b = Block { wait, ..Block::default() };
        b.push(id, true);
        b
    }

    fn push(&mut self, id: u64, unsent: bool) {
        let p = self.base + self.slots.len() as u64;
        self.slots.push_back(Some(id));
        self.pos.insert(id, p);
        self.live += 1;
        if unsent {
            self.unsent.push_back(p);
        }
    }

    fn slot(&self, p: u64) -> Option<u64> {
        p.checked_sub(self.base).and_then(|i| self.slots.get(i as usize).copied().flatten())
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(p) = self.pos.remove(&id) else { return false };
        if let Some(slot) = p.checked_sub(self.base).and_then(|i| self.slots.get_mut(i as usize)) {
            *slot = None;
        }
        self.live -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        while self.unsent.front().is_some_and(|&p| self.slot(p).is_none()) {
            self.unsent.pop_front();
        }
        // Calls completed behind one still pending leave empty slots: once
        // they are most of the block, renumber (amortised O(1) per call).
        if self.slots.len() > 32 && self.live * 2 < self.slots.len() {
            self.compact();
        }
        true
    }

    /// Drops the empty slots, keeping the calls' order and which are unsent.
    fn compact(&mut self) {
        let unsent = self.take_unsent();
        let ids: Vec<u64> = self.ids().collect();
        let base = self.base + self.slots.len() as u64;
        *self = Block { wait: self.wait, base, ..Block::default() };
        let mut unsent = unsent.into_iter().peekable();
        for id in ids {
            let is_unsent = unsent.next_if_eq(&id).is_some();
            self.push(id, is_unsent);
        }
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().flatten().copied()
    }

    fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends `other`'s calls after this block's, keeping their order.
    fn append(&mut self, other: Block) {
        // `other.unsent` is in position order: walk it alongside the slots.
        let mut unsent = other.unsent.iter().copied().peekable();
        for (i, slot) in other.slots.iter().enumerate() {
            let p = other.base + i as u64;
            while unsent.next_if(|&u| u < p).is_some() {}
            if let Some(id) = slot {
                self.push(*id, unsent.peek() == Some(&p));
            }
        }
    }

    /// Takes the unsent ids, in order.
    fn take_unsent(&mut self) -> Vec<u64> {
        let unsent = std::mem::take(&mut self.unsent);
        unsent.into_iter().filter_map(|p| self.slot(p)).collect()
    }

    /// Marks unsent exactly the calls `still` keeps, in order.
    fn reset_unsent(&mut self, still: impl Fn(u64) -> bool) {
        let base = self.base;
        self.unsent = self.slots.iter().enumerate().filter(|(_, id)| id.is_some_and(&still)).map(|(i, _)| base + i as u64).collect();
    }
}

/// Call deadlines in time order (f64 bits of a non-negative time order like
/// the time), with the call id: a sorted deque (deadlines mostly arrive in
/// order and fall due from the front).
#[derive(Debug, Default)]
struct Deadlines(VecDeque<(u64, u64)>);

impl Deadlines {
    fn insert(&mut self, at: f64, id: u64) {
        let key = (at.max(0.0).to_bits(), id);
        let i = self.0.partition_point(|k| *k < key);
        self.0.insert(i, key);
    }

    fn remove(&mut self, at: f64, id: u64) {
        let key = (at.max(0.0).to_bits(), id);
        let i = self.0.partition_point(|k| *k < key);
        if self.0.get(i) == Some(&key) {
            self.0.remove(i);
        }
    }

    fn first(&self) -> Option<(f64, u64)> {
        self.0.front().map(|&(bits, id)| (f64::from_bits(bits), id))
    }
}

#[derive(Debug, Default)]
pub(super) struct Methods {
    pub(super) next_id: u64,
    /// By id (a hash map: lookups are O(1); the few walks that need id
    /// order sort first).
    calls: FastMap<u64, Call>,
    blocks: VecDeque<Block>,
    /// The old blocks while the app's `onReconnect` hooks run.
    held: Option<VecDeque<Block>>,
    /// No call is sent until [`Machine::release_calls`] (`Config::hold_calls`).
    paused: bool,
    /// Deadlines, ordered (f64 bits of a non-negative time order like the time).
    deadlines: Deadlines,
    bytes: usize,
    /// Calls sent and not complete (kept as a count: `outbox()` runs after
    /// every frame, so it must not scan the calls).
    in_flight: usize,
    /// The longest message (a call's or a subscription's) sent on this
    /// socket and given up by the client before its answer (a call timed
    /// out, a subscription stopped): the server may still refuse it, so a
    /// 1009 blames no smaller message (see `refuse_largest`). Reset when a
    /// session starts.
    pub(super) abandoned: usize,
    /// In a session taken over from an earlier page: results for ids this
    /// machine does not have yet (the earlier page's calls, replayed before
    /// their records are restored: a call waiting for its user to log in
    /// again), as many as the outbox holds calls; and the highest id
    /// restored as the earlier page's.
    orphans: VecDeque<(u64, Result<Option<Value>, Value>)>,
    kept_max: u64,
}

impl Methods {
    /// An empty outbox, sending (or not, with `paused`).
    pub(super) fn paused(paused: bool) -> Self {
        Methods { paused, ..Methods::default() }
    }

    /// Moves every call deadline `by` ms earlier (the wall clock jumped back).
    pub(super) fn shift_deadlines(&mut self, by: f64) {
        let ids: Vec<u64> = self.deadlines.0.iter().map(|&(_, id)| id).collect();
        self.deadlines.0.clear();
        for id in ids {
            if let Some(c) = self.calls.get_mut(&id) {
                if let Some(d) = c.deadline.as_mut() {
                    *d -= by;
                    self.deadlines.insert(*d, id);
                }
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<f64> {
        self.deadlines.first().map(|(at, _)| at)
    }

    fn push(blocks: &mut VecDeque<Block>, id: u64, wait: bool) {
        match blocks.back_mut() {
            Some(b) if !b.wait && !wait => b.push(id, true),
            _ => blocks.push_back(Block::new(wait, id)),
        }
    }

    /// O(blocks · log n): the hot path when calls complete.
    fn remove_from_blocks(&mut self, id: u64) {
        for list in [Some(&mut self.blocks), self.held.as_mut()].into_iter().flatten() {
            if let Some(i) = list.iter_mut().position(|b| b.remove(id)) {
                if list[i].is_empty() {
                    list.remove(i);
                }
                return;
            }
        }
    }

    /// After `sent` flags were reset: every call without a result is unsent again.
    fn mark_unsent(&mut self) {
        let calls = &self.calls;
        for list in [Some(&mut self.blocks), self.held.as_mut()].into_iter().flatten() {
            for b in list.iter_mut() {
                b.reset_unsent(|id| calls.get(&id).is_some_and(|c| !c.sent && c.result.is_none()));
            }
        }
    }
}

impl Machine {
    /// Calls method `name`. Returns the call's id (its `MethodResult` and
    /// `MethodDone` events carry it), or `queue-full` / `closed` at once.
    /// `params` must already be EJSON-encoded.
    pub fn call(&mut self, name: &str, params: Vec<Value>, options: CallOptions, now: f64) -> Result<u64, MethodError> {
        self.call_with_writes(name, params, options, Vec::new(), now)
    }

    /// Whether one more call fits in the outbox: `closed` or `queue-full`
    /// (`maxPendingCalls`) if not, else how many bytes of arguments it may
    /// carry. Asked before arguments are even converted, so a flood of calls
    /// into a full outbox is refused at the cost of a comparison.
    pub fn room_for_call(&self) -> Result<usize, MethodError> {
        if self.closed {
            return Err(MethodError::Closed);
        }
        if self.methods.calls.len() >= self.config.max_pending_calls {
            return Err(MethodError::QueueFull { limit: "maxPendingCalls" });
        }
        Ok(self.config.max_pending_bytes.saturating_sub(self.methods.bytes))
    }

    /// [`Machine::call`] with the document writes its client stub made:
    /// they show at once and give way to the server's version when the
    /// call completes (or fails).
    pub fn call_with_writes(
        &mut self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        writes: Vec<StubWrite>,
        now: f64,
    ) -> Result<u64, MethodError> {
        self.observe_clock(now);
        let bytes = name.len() + params.iter().map(|p| crate::protocol::json::to_text(p).len()).sum::<usize>();
        let left = self.room_for_call()?;
        if bytes > left {
            return Err(MethodError::QueueFull { limit: "maxPendingBytes" });
        }
        let m = &mut self.methods;
        m.next_id += 1;
        let id = m.next_id;
        let deadline = options.timeout_ms.filter(|t| t.is_finite() && *t >= 0.0).map(|t| now + t);
        if let Some(d) = deadline {
            m.deadlines.insert(d, id);
        }
        m.bytes += bytes;
        let (wait, transient) = (options.wait, options.transient);
        m.calls.insert(
            id,
            Call { name: name.to_owned(), params, options, deadline, sent: false, result: None, updated: false, bytes, frame: 0 },
        );
        Methods::push(&mut m.blocks, id, wait);
        if self.config.journal_calls && !transient {
            self.complete(Completion::CallQueued { id });
        }
        for w in writes {
            if let Some(change) = self.subs.store.stub_write(id, &w.collection, &w.id, w.doc) {
                self.complete(Completion::Data(change));
            }
        }
        self.send_first_block();
        Ok(id)
    }

    /// What a durable outbox keeps of call `id` (still in the outbox):
    /// everything but the user and the time, which its keeper adds.
    pub fn call_record(&self, id: u64) -> Option<CallRecord> {
        let c = self.methods.calls.get(&id)?;
        Some(CallRecord {
            id,
            name: c.name.clone(),
            params: c.params.clone(),
            random_seed: c.options.random_seed.clone(),
            wait: c.options.wait,
            no_retry: c.options.no_retry,
            user: None,
            at: 0.0,
            sent: false,
        })
    }

    /// Puts calls an earlier page left (a durable outbox's records, in the
    /// order they were made) back in the outbox: while calls are held
    /// ([`Config::hold_calls`](super::Config::hold_calls)), ahead of every call made since (which go
    /// out once they have completed), and sent from
    /// [`Machine::release_calls`] on; afterwards, behind the calls queued
    /// (the first block may be on the wire). Each
    /// keeps its method id unless this machine already gave that id (then
    /// it gets a new one: the `randomSeed`, kept, is what makes a re-sent
    /// call harmless on a new session). No outbox limit refuses them: they were
    /// accepted once. Returns `(record id, call id)` for each.
    pub fn restore_calls(&mut self, records: Vec<CallRecord>, now: f64) -> Vec<(u64, u64)> {
        self.restore_calls_of(records.into_iter().map(|r| (r, false)).collect(), now)
    }

    /// [`Machine::restore_calls`], where a record marked `true` is of the
    /// earlier page whose session was handed to
    /// [`Machine::release_connect`]: it keeps its id (below this page's,
    /// which start past the gap), so that a server resuming that session
    /// knows it for a re-send and replays its result instead of running it
    /// again.
    pub fn restore_calls_of(&mut self, records: Vec<(CallRecord, bool)>, now: f64) -> Vec<(u64, u64)> {
        self.observe_clock(now);
        let m = &mut self.methods;
        let mut restored = VecDeque::new();
        let mut ids = Vec::with_capacity(records.len());
        let mut answered = Vec::new();
        for (r, adopted) in records {
            // An id this machine has not given yet: ids never repeat in a
            // session (a server that resumes sessions would take a
            // repeated one for a re-send and ignore it); and one a
            // JavaScript number holds exactly.
            let keep = adopted && r.id >= 1 && !m.calls.contains_key(&r.id) && r.id < 1 << 53;
            let id = if keep || (r.id > m.next_id && r.id < 1 << 53) { r.id } else { m.next_id + 1 };
            // (An id kept for a session taken over is the earlier page's:
            // this page's own go on from its own base, never into the range
            // where that page's other calls, logins too, may have gone.)
            if !keep {
                m.next_id = m.next_id.max(id);
            }
            let bytes = r.name.len() + r.params.iter().map(|p| crate::protocol::json::to_text(p).len()).sum::<usize>();
            m.bytes += bytes;
            let options = CallOptions { wait: r.wait, no_retry: r.no_retry, random_seed: r.random_seed, ..CallOptions::default() };
            let call = Call {
                name: r.name,
                params: r.params,
                options,
                deadline: None,
                sent: false,
                result: None,
                // The earlier page may have had its `updated` (counted in
                // the session it hands over: never replayed), and this page
                // has no stub writes of it to release: its result ends it.
                updated: keep,
                bytes,
                frame: 0,
            };
            m.calls.insert(id, call);
            if keep {
                m.kept_max = m.kept_max.max(id);
            }
            // Answered already (replayed before it was restored): it ends
            // as soon as the restored calls are in place, never sent.
            if let Some(i) = m.orphans.iter().position(|(o, _)| keep && *o == id) {
                if let Some((_, outcome)) = m.orphans.remove(i) {
                    answered.push((id, outcome));
                }
            } else {
                Methods::push(&mut restored, id, r.wait);
            }
            ids.push((r.id, id));
        }
        // While calls are held nothing is on the wire: ahead of the blocks
        // of this page's calls (or, while reconnect hooks run, ahead of the
        // blocks they hold back). Two blocks of plain calls may then follow
        // each other: the second goes out when the first completes. Once
        // calls flow, behind everything (the first block may be on the wire).
        let list = match m.held.as_mut() {
            Some(held) => held,
            None => &mut m.blocks,
        };
        if m.paused {
            restored.append(list);
            *list = restored;
        } else {
            list.append(&mut restored);
            self.send_first_block();
        }
        for (id, outcome) in answered {
            self.method_result(&id.to_string(), outcome);
        }
        ids
    }

    pub(super) fn forget_orphans(&mut self) {
        self.methods.orphans.clear();
    }

    /// Whether the current session is one taken over from an earlier page
    /// ([`Machine::release_connect`]).
    pub fn took_over(&self) -> bool {
        self.took_over
    }

    /// Lets the outbox send again after [`Config::hold_calls`](super::Config::hold_calls).
    pub fn release_calls(&mut self, now: f64) {
        self.observe_clock(now);
        if std::mem::replace(&mut self.methods.paused, false) {
            self.send_first_block();
        }
    }

    /// Cancels a call that has not been sent yet (it fails with
    /// `cancelled`). Returns false if it was already sent or is unknown.
    pub fn cancel(&mut self, id: u64) -> bool {
        match self.methods.calls.get(&id) {
            Some(c) if !c.sent => {
                self.fail_call(id, MethodError::Cancelled);
                true
            }
            _ => false,
        }
    }

    /// Queued and in-flight call counts.
    pub fn outbox(&self) -> Outbox {
        let in_flight = self.methods.in_flight;
        Outbox { queued: self.methods.calls.len() - in_flight, in_flight }
    }

    /// The in-flight count by a full scan (tests check the kept count against it).
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn in_flight_by_scan(&self) -> usize {
        self.methods.calls.values().filter(|c| c.sent).count()
    }

    /// Recounts the in-flight calls after `sent` flags were reset (rare).
    fn recount_in_flight(&mut self) {
        self.methods.in_flight = self.methods.calls.values().filter(|c| c.sent).count();
    }

    /// Disconnects for good: every call still waiting fails with `closed`.
    pub fn close(&mut self, now: f64) {
        self.disconnect(now);
        self.closed = true;
        let mut ids: Vec<u64> = self.methods.calls.keys().copied().collect();
        crate::protocol::order::sort_by(&mut ids, u64::cmp);
        for id in ids {
            self.fail_call(id, MethodError::Closed);
        }
    }

    /// The app's `onReconnect` hooks have run: queue the old calls behind
    /// theirs and send.
    pub fn reconnect_hooks_done(&mut self) {
        let Some(mut old) = self.methods.held.take() else { return };
        let m = &mut self.methods;
        // Merge the last new block with the first old one when neither waits.
        if let (Some(last), Some(first)) = (m.blocks.back_mut(), old.front()) {
            if !last.wait && !first.wait {
                if let Some(first) = old.pop_front() {
                    last.append(first);
                }
            }
        }
        m.blocks.extend(old);
        self.send_first_block();
        self.send_subs();
    }

    pub(super) fn methods_held(&self) -> bool {
        self.methods.held.is_some()
    }

    fn send_first_block(&mut self) {
        if self.phase != Phase::Connected || self.methods.held.is_some() || self.methods.paused {
            return;
        }
        let Some(socket) = self.socket else { return };
        let Some(first) = self.methods.blocks.front_mut() else { return };
        for id in &first.take_unsent() {
            if let Some(c) = self.methods.calls.get_mut(id) {
                if !c.sent && c.result.is_none() {
                    c.sent = true;
                    self.methods.in_flight += 1;
                    let msg = ClientMessage::Method {
                        method: c.name.clone(),
                        params: c.params.clone(),
                        id: id.to_string(),
                        random_seed: c.options.random_seed.clone(),
                    };
                    let text = msg.encode();
                    c.frame = text.len();
                    self.out.push_back(Output::Send { socket, text });
                    // A durable outbox marks a `noRetry` call sent: after a
                    // reload it fails as `invocation-failed`, as after a drop.
                    if self.config.journal_calls && c.options.no_retry && !c.options.transient {
                        self.out.push_back(Output::Done(Completion::CallSent { id: *id }));
                    }
                }
            }
        }
    }

    /// The server closed the socket with 1009 (Message Too Big). The
    /// message it refused is one it had not answered, so the largest such
    /// message is at least as large and would be refused again: that call
    /// fails, or that subscription ends, instead of being re-sent after
    /// every reconnect. Unless the client gave up on a message at least as
    /// large on this socket (`abandoned`): that one may be what was refused,
    /// and nothing is blamed. (Called after the loss: nothing is sent from
    /// here.)
    pub(super) fn refuse_largest(&mut self) {
        let mut call: Option<(usize, u64)> = None;
        for (id, c) in self.methods.calls.iter() {
            if c.sent && c.result.is_none() && call.is_none_or(|(frame, _)| c.frame > frame) {
                call = Some((c.frame, *id));
            }
        }
        let abandoned = self.methods.abandoned;
        match (call, self.largest_unanswered_sub()) {
            (Some((frame, id)), sub) if frame > abandoned && sub.is_none_or(|(len, _)| frame >= len) => {
                self.fail_call(id, MethodError::TooLarge { frame_bytes: frame });
            }
            (_, Some((len, index))) if len > abandoned => self.refuse_sub(index),
            _ => {}
        }
    }

    pub(super) fn method_result(&mut self, id: &str, outcome: Result<Option<Value>, Value>) {
        let Some(n) = id.parse::<u64>().ok().filter(|n| self.methods.calls.contains_key(n)) else {
            // An earlier page's call, replayed before it is restored.
            if let (true, Ok(n)) = (super::ADOPTS && self.took_over, id.parse::<u64>()) {
                // (As many as the outbox holds calls: an earlier page's
                // were held by one as large.)
                let bound = self.config.max_pending_calls.max(1);
                let o = &mut self.methods.orphans;
                o.push_back((n, outcome));
                if o.len() > bound {
                    o.pop_front();
                }
            }
            self.unknown_method_id(id);
            return;
        };
        let outcome = outcome.map_err(MethodError::from_wire);
        let Some(c) = self.methods.calls.get_mut(&n) else { return };
        if c.result.is_some() {
            return; // a duplicate result (a replay): the first one counts
        }
        c.result = Some(outcome.clone());
        self.complete(Completion::MethodResult { id: n, outcome });
        self.maybe_complete(n);
    }

    /// A frame that could not be read may have been the `result` of a
    /// pending call: fail that call (when exactly one sent call is named)
    /// rather than leave it waiting forever.
    pub(super) fn salvage_result(&mut self, text: &str, error: &crate::protocol::message::FrameError) {
        let mut named = crate::protocol::message::result_ids_in(text)
            .into_iter()
            .filter_map(|id| id.parse::<u64>().ok())
            .filter(|n| self.methods.calls.get(n).is_some_and(|c| c.sent && c.result.is_none()));
        if let (Some(n), None) = (named.next(), named.next()) {
            self.fail_call(n, MethodError::BadFrame(error.clone()));
        }
    }

    pub(super) fn method_updated(&mut self, id: &str) {
        let Some(n) = id.parse::<u64>().ok().filter(|n| self.methods.calls.contains_key(n)) else {
            self.unknown_method_id(id);
            return;
        };
        if let Some(c) = self.methods.calls.get_mut(&n) {
            c.updated = true;
        }
        self.maybe_complete(n);
    }

    fn unknown_method_id(&mut self, id: &str) {
        // An id we issued and already finished (timed out, or a replayed
        // duplicate) is a late answer: ignored, as is any in a session an
        // earlier page had (its answers replayed). Anything else is reported.
        let last = if super::ADOPTS { self.methods.next_id.max(self.methods.kept_max) } else { self.methods.next_id };
        let known_late = id.parse::<u64>().is_ok_and(|n| n >= 1 && n <= last);
        let quiet = known_late || (super::ADOPTS && self.took_over);
        if !quiet {
            self.emit(Event::Error(super::ProtocolError::Unexpected(format!("an answer for unknown method id \"{id}\""))));
        }
    }

    fn maybe_complete(&mut self, id: u64) {
        let done = self.methods.calls.get(&id).is_some_and(|c| c.result.is_some() && c.updated);
        if !done {
            return;
        }
        if let Some(c) = self.take_call(id) {
            let outcome = c.result.unwrap_or(Ok(None));
            self.complete(Completion::MethodDone { id, outcome });
        }
        self.send_first_block();
    }

    fn take_call(&mut self, id: u64) -> Option<Call> {
        let c = self.methods.calls.remove(&id)?;
        if c.sent {
            self.methods.in_flight -= 1;
        }
        // Its stub's writes give way to the server's version.
        self.release_writes(id);
        self.methods.bytes -= c.bytes;
        if let Some(d) = c.deadline {
            self.methods.deadlines.remove(d, id);
        }
        self.methods.remove_from_blocks(id);
        Some(c)
    }

    fn fail_call(&mut self, id: u64, error: MethodError) {
        if let Some(c) = self.take_call(id) {
            if c.sent && c.result.is_none() {
                self.methods.abandoned = self.methods.abandoned.max(c.frame);
            }
            self.complete(Completion::MethodDone { id, outcome: Err(error) });
            self.send_first_block();
            self.subs_method_gone(id);
        }
    }

    pub(super) fn expire_methods(&mut self, now: f64) {
        while let Some((at, id)) = self.methods.deadlines.first() {
            if at > now {
                break;
            }
            self.methods.deadlines.0.pop_front();
            self.fail_call(id, MethodError::Timeout);
        }
    }

    /// The ids of the calls in the outbox (queued or in flight).
    pub(super) fn outstanding_calls(&self) -> impl Iterator<Item = u64> + '_ {
        // (Not a call whose `updated` is not to come: restored into a
        // session taken over, see `restore_calls_of`.)
        self.methods.calls.iter().filter(|(_, c)| !(super::ADOPTS && c.updated)).map(|(id, _)| *id)
    }

    /// A `connected` arrived: re-send, fail or hold calls as the module
    /// docs say. Returns the ids of calls re-sent in a new session (whose
    /// `updated` the data hold waits for).
    pub(super) fn methods_on_connected(&mut self, reconnect: bool) -> Vec<String> {
        if self.resumed {
            // The server knows every id it saw: re-send the unanswered ones.
            for c in self.methods.calls.values_mut() {
                if c.result.is_none() {
                    c.sent = false;
                }
            }
            self.recount_in_flight();
            self.methods.mark_unsent();
            self.send_first_block();
            return Vec::new();
        }
        // A new session. Nothing goes out until the calls are sorted out
        // (`held` set: `send_first_block` does nothing).
        self.methods.held = Some(VecDeque::new());
        // Results already here complete now.
        let mut answered: Vec<u64> = self.methods.calls.iter().filter(|(_, c)| c.result.is_some()).map(|(id, _)| *id).collect();
        crate::protocol::order::sort_by(&mut answered, u64::cmp);
        for id in answered {
            if let Some(c) = self.methods.calls.get_mut(&id) {
                c.updated = true;
            }
            self.maybe_complete(id);
        }
        let first: Vec<u64> = self.methods.blocks.front().map(|b| b.ids().collect()).unwrap_or_default();
        for id in first {
            if self.methods.calls.get(&id).is_some_and(|c| c.sent && c.options.no_retry) {
                self.fail_call(id, MethodError::InvocationFailed);
            }
        }
        let resent: Vec<String> =
            self.methods.calls.iter().filter(|(_, c)| c.sent && c.result.is_none()).map(|(id, _)| id.to_string()).collect();
        for c in self.methods.calls.values_mut() {
            c.sent = false;
        }
        self.methods.in_flight = 0;
        self.methods.mark_unsent();
        if reconnect {
            self.methods.held = Some(std::mem::take(&mut self.methods.blocks));
            self.out.push_back(Output::RunReconnectHooks);
        } else {
            self.methods.held = None;
            self.send_first_block();
        }
        resent
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    /// A block behaves as a plain ordered list of (call, unsent) under any
    /// pushes, removals and takes of the unsent calls (compactions
    /// included).
    #[cfg(not(target_arch = "wasm32"))]
    mod model {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn a_block_is_an_ordered_list(ops in prop::collection::vec((0u8..4, any::<u16>()), 0..600)) {
                let mut block = Block::new(false, 0);
                let mut model: Vec<(u64, bool)> = vec![(0, true)];
                let mut next = 1;
                for (op, n) in ops {
                    match op {
                        0 | 1 => {
                            block.push(next, op == 0);
                            model.push((next, op == 0));
                            next += 1;
                        }
                        2 if !model.is_empty() => {
                            let (id, _) = model.remove(usize::from(n) % model.len());
                            prop_assert!(block.remove(id));
                            prop_assert!(!block.remove(id));
                        }
                        _ => {
                            let taken = block.take_unsent();
                            let expected: Vec<u64> = model.iter().filter(|(_, u)| *u).map(|(id, _)| *id).collect();
                            prop_assert_eq!(taken, expected);
                            model.iter_mut().for_each(|e| e.1 = false);
                        }
                    }
                    prop_assert_eq!(block.ids().collect::<Vec<_>>(), model.iter().map(|(id, _)| *id).collect::<Vec<_>>());
                    prop_assert_eq!(block.is_empty(), model.is_empty());
                    prop_assert!(block.slots.len() <= 32 + 2 * model.len(), "{} slots for {} calls", block.slots.len(), model.len());
                }
            }
        }
    }

    /// A call that stays pending (a long-running method, no timeout) at the
    /// front of a block must not make the block keep a slot for every call
    /// completed after it: the B-tree it replaced dropped them. Here 100k
    /// calls complete behind one pending call; the block must hold a few
    /// slots, not 100k (16 bytes each for as long as the first call is
    /// pending: unbounded growth).
    #[test]
    fn a_pending_call_does_not_keep_the_slots_of_calls_completed_after_it() {
        let mut b = Block::new(false, 0);
        for id in 1..=100_000 {
            b.push(id, false);
            assert!(b.remove(id));
        }
        assert_eq!(b.ids().collect::<Vec<_>>(), [0]);
        assert!(b.slots.len() < 1_000, "{} slots kept for 1 pending call", b.slots.len());
    }
}
