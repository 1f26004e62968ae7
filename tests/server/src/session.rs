//! A client's session ([`ServerConnection`]): where its messages go, its
//! replay history, and how it ends or waits for its client to resume; its
//! worker, which handles its messages in order.

use super::*;

pub(crate) type CloseHook = Box<dyn FnOnce() + Send>;

/// Messages kept for replay after a resumption (also bounded in bytes by
/// [`Config::history_bytes`]).
pub(crate) const HISTORY: usize = 10_000;

/// Where a session's messages go: the socket it is attached to (none during
/// the grace period after a drop), and what it sent, for replay.
pub(crate) struct Link {
    pub(crate) tx: Option<Arc<Outbox>>,
    /// The socket that has (or last had) the session. A detachment is
    /// identified by the socket that left: a stale socket cannot detach a
    /// newer one, and a grace timer cannot end a session that was resumed
    /// (and perhaps detached again) since.
    pub(crate) generation: u64,
    pub(crate) history: VecDeque<String>,
    pub(crate) history_bytes: usize,
    /// Sequence number of `history[0]`.
    pub(crate) base: u64,
    /// Messages sent in the session (ping/pong not counted).
    pub(crate) sent: u64,
    /// The session is ending (its grace period ran out, or it ended
    /// otherwise): no socket may resume it any more. Set under this lock,
    /// where a resumption checks it.
    pub(crate) ended: bool,
}

pub(crate) struct ConnInner {
    pub(crate) id: String,
    pub(crate) client_address: Option<String>,
    pub(crate) http_headers: BTreeMap<String, String>,
    pub(crate) link: Mutex<Link>,
    pub(crate) history_limit: usize,
    /// Ended on purpose (client `disconnect`, server `close()`): not resumable.
    pub(crate) graceful: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) on_close: Mutex<Vec<CloseHook>>,
    /// Method ids this session has seen: a re-send is never run twice.
    pub(crate) seen: Mutex<HashSet<String>>,
    /// The session's worker, which handles the client's messages one at a
    /// time, in order, as Meteor does. Taken when the session ends, which
    /// ends the worker (and the worker's hold on the session).
    pub(crate) worker: Mutex<Option<mpsc::UnboundedSender<Value>>>,
    /// The version negotiated for the session.
    pub(crate) version: String,
    /// Its subscriptions and merge box.
    pub(crate) subs: publications::SessionSubs,
    /// The server's count of sessions not yet freed.
    pub(crate) live: Arc<AtomicUsize>,
}

impl Drop for ConnInner {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A client's session, as server code sees it (like Meteor's
/// `Meteor.onConnection` argument). It outlives a dropped socket for the
/// grace period, so a resuming client gets it back. Cheap to clone.
#[derive(Clone)]
pub struct ServerConnection {
    pub(crate) inner: Arc<ConnInner>,
}

/// Meteor's reason when its server closes a socket.
pub(crate) const NORMAL_CLOSURE: &str = "Normal closure";

impl ServerConnection {
    /// The session id (17 characters; new unless the client resumed).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The client's address, honouring `HTTP_FORWARDED_COUNT`.
    pub fn client_address(&self) -> Option<&str> {
        self.inner.client_address.as_deref()
    }

    /// The whitelisted request headers (never cookies).
    pub fn http_headers(&self) -> &BTreeMap<String, String> {
        &self.inner.http_headers
    }

    /// Closes the connection (cleanly, code 1000 "Normal closure", as
    /// Meteor's `connection.close()`; not resumable).
    pub fn close(&self) {
        // Under the link's lock, where a resumption checks it: a socket
        // resuming now either comes before (and is closed here) or sees it.
        let link = lock(&self.inner.link);
        self.inner.graceful.store(true, Ordering::SeqCst);
        if let Some(tx) = &link.tx {
            tx.close(1000, NORMAL_CLOSURE);
        }
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// True once the session is ending (see `Link::ended`): set before it
    /// leaves its rooms and its subscriptions stop.
    pub(crate) fn is_ending(&self) -> bool {
        lock(&self.inner.link).ended
    }

    /// Runs `f` when the session ends; at once if it already has.
    pub fn on_close(&self, f: impl FnOnce() + Send + 'static) {
        let mut hooks = lock(&self.inner.on_close);
        if self.is_closed() {
            drop(hooks);
            f();
        } else {
            hooks.push(Box::new(f));
        }
    }

    /// Sends a DDP message in the session (kept for replay).
    pub fn send(&self, v: Value) {
        let text = v.to_string();
        let mut link = lock(&self.inner.link);
        link.sent += 1;
        link.history_bytes += text.len();
        link.history.push_back(text.clone());
        while link.history.len() > HISTORY || (link.history_bytes > self.inner.history_limit && link.history.len() > 1) {
            if let Some(old) = link.history.pop_front() {
                link.history_bytes -= old.len();
            }
            link.base += 1;
        }
        if let Some(tx) = &link.tx {
            tx.text(text);
        }
    }

    /// Waits until the attached socket's queue has room (at once when
    /// detached): for producers of many messages in a row.
    pub(crate) async fn room(&self) {
        let tx = lock(&self.inner.link).tx.clone();
        if let Some(tx) = tx {
            tx.room().await;
        }
    }

    /// Hands a client message to the session's worker.
    pub(crate) fn enqueue(&self, msg: Value) {
        if let Some(worker) = &*lock(&self.inner.worker) {
            let _ = worker.send(msg);
        }
    }

    /// Attaches a new socket after a resumption: replays what the client
    /// has not received. False if that cannot be done (too old a count).
    pub(crate) fn resume(&self, received: u64, tx: Arc<Outbox>, generation: u64) -> bool {
        let mut link = lock(&self.inner.link);
        if link.ended || self.is_closed() || self.inner.graceful.load(Ordering::SeqCst) {
            return false;
        }
        if received < link.base || received > link.sent {
            return false;
        }
        tx.text_unbounded(json!({"msg":"connected","session":self.id()}).to_string());
        let skip = (received - link.base) as usize;
        for m in link.history.iter().skip(skip) {
            tx.text_unbounded(m.clone());
        }
        // A socket the client already gave up on (the server may not have
        // noticed yet) is cut.
        if let Some(old) = link.tx.replace(tx) {
            old.cut_now();
        }
        link.generation = generation;
        true
    }

    /// The socket went away. Returns whether the session is now detached
    /// (false if a newer socket already took it over).
    pub(crate) fn detach(&self, generation: u64) -> bool {
        let mut link = lock(&self.inner.link);
        if link.generation != generation {
            return false;
        }
        link.tx = None;
        true
    }

    /// Marks the session ended if it is still detached since socket
    /// `generation` left (not resumed since): whether it was. The check and
    /// the mark are one step under the link's lock, so a resumption comes
    /// wholly before (and the session lives on) or after (and is refused).
    pub(crate) fn end_if_detached_since(&self, generation: u64) -> bool {
        let mut link = lock(&self.inner.link);
        let detached = link.tx.is_none() && link.generation == generation;
        link.ended |= detached;
        detached
    }

    pub(crate) fn finish(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        lock(&self.inner.worker).take();
        self.inner.subs.stop_all();
        let hooks = std::mem::take(&mut *lock(&self.inner.on_close));
        for h in hooks {
            h();
        }
    }
}

/// Ends a session now: it leaves the scenario, its rooms, and its
/// subscriptions, worker and tasks stop.
pub(crate) fn end_session(sc: &Scenario, session: &ServerConnection) {
    lock(&session.inner.link).ended = true;
    lock(&sc.sessions).remove(session.id());
    rooms::session_ended(sc, &sc.room_hooks, session);
    session.finish();
}

/// After a socket ends: a graceful end (or no resumption) ends the session
/// now; otherwise it waits the grace period for its client to come back.
pub(crate) fn end_or_hold(sc: Arc<Scenario>, session: ServerConnection, generation: u64) {
    if !session.detach(generation) {
        return; // a newer socket has it
    }
    let graceful = session.inner.graceful.load(Ordering::SeqCst);
    if graceful || !sc.resume.load(Ordering::SeqCst) {
        end_session(&sc, &session);
        return;
    }
    let grace = Duration::from_millis(sc.grace_ms.load(Ordering::SeqCst));
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        // Only this detachment's timer may end it: if the session was
        // resumed since (and perhaps dropped again), a newer timer decides.
        if session.end_if_detached_since(generation) {
            end_session(&sc, &session);
        }
    });
}

/// A session's worker: the client's `method`, `sub`, `unsub` and unknown
/// messages are handled one at a time, in the order they came, as in
/// Meteor — a `sub` sent after a slow method waits for it, unless the
/// method unblocks (`sleepUnblocked`). Ends when the session does.
pub(crate) async fn worker(sc: Arc<Scenario>, session: ServerConnection, mut rx: mpsc::UnboundedReceiver<Value>) {
    while let Some(msg) = rx.recv().await {
        if session.is_closed() {
            break;
        }
        match msg.get("msg").and_then(Value::as_str) {
            Some("method") => methods::handle(&sc, &session, msg).await,
            Some("sub") => {
                sc.sub_requests.fetch_add(1, Ordering::SeqCst);
                publications::handle_sub(&sc, &session, msg).await
            }
            Some("unsub") => {
                sc.unsub_requests.fetch_add(1, Ordering::SeqCst);
                publications::handle_unsub(&session, &msg)
            }
            _ => session.send(error_reply("Bad request", Some(msg))),
        }
    }
}
