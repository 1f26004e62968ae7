//! The socket loop: one socket's handler (reads, heartbeat, the DDP
//! handshake and resumption) and how it ends.

use super::*;

/// How a socket's handler loop ended.
pub(crate) enum Ending {
    /// The client went away, or the socket broke.
    Gone,
    /// The client sent a close frame: answer it.
    ClientClosed,
    /// Closing cleanly: the writer sends what is queued, then a close frame.
    Closing,
    /// The writer finished (after a close frame, or a broken socket).
    WriterDone,
    /// Cut without a close frame (overflow, fault injection).
    Cut,
}

/// Whether a read failed because the client's message was over the size
/// limit (tungstenite's capacity error, which axum wraps; told by its text,
/// "Message too long: N > M", as its type is not reachable through axum).
pub(crate) fn message_too_long(e: &axum::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("Message too long") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// One socket's handler: reads frames, runs the heartbeat, and leaves the
/// writing to a task of its own, so a client that stops reading cannot
/// stall the heartbeat or the reads.
pub(crate) async fn run_connection(
    server: Server,
    sc: Arc<Scenario>,
    socket: WebSocket,
    address: Option<String>,
    http_headers: BTreeMap<String, String>,
) {
    let config = server.shared.config.clone();
    let (outbox, rx) = Outbox::new(config.max_queued_bytes);
    let generation = server.shared.next_socket.fetch_add(1, Ordering::SeqCst);
    lock(&sc.sockets).insert(generation, outbox.clone());
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(sink, rx, outbox.clone(), sc.clone()));
    let mut ctx = SocketCtx { server: &server, sc: &sc, tx: outbox.clone(), generation, address, http_headers, session: None };
    let hb_on = !config.heartbeat_interval.is_zero();
    let mut last_received = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let ending = loop {
        let deadline = match ping_sent {
            Some(t) => t + config.heartbeat_timeout,
            None => last_received + config.heartbeat_interval,
        };
        let heartbeat_active = hb_on && ctx.session.as_ref().is_some_and(|s| s.inner.version != "pre1");
        let idle_active = !heartbeat_active && !config.idle_timeout.is_zero();
        let idle_deadline = last_received.max(*lock(&outbox.last_write)) + config.idle_timeout;
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    // Over the hard cap: closed with 1009 (Message Too Big), as
                    // Meteor's WebSocket driver (faye's) does past its maxLength.
                    Some(Err(e)) if message_too_long(&e) => {
                        outbox.close(1009, "WebSocket frame length too large");
                        break Ending::Closing;
                    }
                    _ => break Ending::Gone,
                };
                if sc.silent.load(Ordering::SeqCst) {
                    continue;
                }
                // Any message counts as the answer to a ping.
                last_received = Instant::now();
                ping_sent = None;
                // Over the limit: read whole (the hard cap, far above it, is
                // tungstenite's), so the socket can still take the closing
                // handshake. A socket dropped with data unread is reset, and a
                // reset can lose the close frame on the way.
                if matches!(&message, Message::Text(t) if t.len() > config.max_message_bytes)
                    || matches!(&message, Message::Binary(b) if b.len() > config.max_message_bytes)
                {
                    outbox.close(1009, "WebSocket frame length too large");
                    break Ending::Closing;
                }
                // `drop-on`: the frame dies with its socket, unread.
                if matches!(&message, Message::Text(t) if sc.take_drop_on(t.as_str())) {
                    break Ending::Cut;
                }
                match message {
                    Message::Text(text) if !ctx.handle_text(text.as_str()) => break Ending::Closing,
                    // Meteor reads a binary frame as UTF-8 text.
                    Message::Binary(bytes) if !ctx.handle_text(&String::from_utf8_lossy(&bytes)) => {
                        break Ending::Closing
                    }
                    Message::Close(_) => break Ending::ClientClosed,
                    _ => {}
                }
            }
            _ = outbox.cut.notified() => break Ending::Cut,
            _ = tokio::time::sleep_until(idle_deadline), if idle_active => {
                if sc.silent.load(Ordering::SeqCst) {
                    last_received = Instant::now();
                    continue;
                }
                // Written to since? Then the deadline moved on.
                if Instant::now() >= last_received.max(*lock(&outbox.last_write)) + config.idle_timeout {
                    break Ending::Cut;
                }
            }
            _ = &mut writer => break Ending::WriterDone,
            _ = tokio::time::sleep_until(deadline), if heartbeat_active => {
                if sc.silent.load(Ordering::SeqCst) {
                    last_received = Instant::now();
                    continue;
                }
                if ping_sent.is_some() {
                    // No answer in time: Meteor closes the socket (1000).
                    // A socket that cannot take the close frame now (its
                    // queue is not empty: the client does not read) is cut.
                    if outbox.idle() {
                        outbox.close(1000, NORMAL_CLOSURE);
                        break Ending::Closing;
                    }
                    break Ending::Cut;
                }
                ping_sent = Some(Instant::now());
                outbox.text(json!({"msg":"ping"}).to_string());
            }
        }
    };
    match ending {
        Ending::ClientClosed => {
            // The reply to the client's close frame goes out on the next
            // read; the stream then ends.
            let _ = tokio::time::timeout(CLOSE_WRITE, stream.next()).await;
        }
        Ending::Closing => {
            let _ = tokio::time::timeout(CLOSE_WRITE, &mut writer).await;
            // The closing handshake: read on (and drop what comes) until the
            // client answers the close frame, so the socket is not dropped
            // with data unread (which resets it).
            let _ = tokio::time::timeout(CLOSE_WRITE, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        Ending::Gone | Ending::WriterDone | Ending::Cut => {}
    }
    outbox.end();
    writer.abort();
    lock(&sc.sockets).remove(&generation);
    if let Some(session) = ctx.session.take() {
        end_or_hold(sc.clone(), session, generation);
    }
}

pub(crate) struct SocketCtx<'a> {
    pub(crate) server: &'a Server,
    pub(crate) sc: &'a Arc<Scenario>,
    pub(crate) tx: Arc<Outbox>,
    pub(crate) generation: u64,
    pub(crate) address: Option<String>,
    pub(crate) http_headers: BTreeMap<String, String>,
    pub(crate) session: Option<ServerConnection>,
}

/// JavaScript truthiness, as Meteor tests `msg.msg`.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

impl SocketCtx<'_> {
    /// A reply outside the session's numbered stream (errors before the
    /// handshake, pongs).
    pub(crate) fn reply(&self, v: Value) {
        match &self.session {
            Some(s) if !matches!(v.get("msg").and_then(Value::as_str), Some("pong")) => s.send(v),
            _ => self.tx.text(v.to_string()),
        }
    }

    pub(crate) fn new_session(&mut self, version: String) -> ServerConnection {
        let (worker_tx, worker_rx) = mpsc::unbounded_channel();
        let shared = &self.server.shared;
        shared.live_sessions.fetch_add(1, Ordering::SeqCst);
        let conn = ServerConnection {
            inner: Arc::new(ConnInner {
                id: random_id(),
                client_address: self.address.clone(),
                http_headers: self.http_headers.clone(),
                link: Mutex::new(Link {
                    tx: Some(self.tx.clone()),
                    generation: self.generation,
                    history: VecDeque::new(),
                    history_bytes: 0,
                    base: 0,
                    sent: 0,
                    ended: false,
                }),
                history_limit: shared.config.history_bytes,
                graceful: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                on_close: Mutex::new(Vec::new()),
                seen: Mutex::new(HashSet::new()),
                worker: Mutex::new(Some(worker_tx)),
                version,
                subs: publications::SessionSubs::default(),
                live: shared.live_sessions.clone(),
            }),
        };
        tokio::spawn(worker(self.sc.clone(), conn.clone(), worker_rx));
        lock(&self.sc.sessions).insert(conn.id().to_owned(), conn.clone());
        conn
    }

    /// Handles one text frame as Meteor's server does; false means "close
    /// the socket now" (a failed negotiation).
    pub(crate) fn handle_text(&mut self, text: &str) -> bool {
        // Not JSON, or JSON but not an object: "Bad request", without the
        // offending message (Meteor's parser gives up on it).
        let parsed = match serde_json::from_str::<Value>(text) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => {
                self.reply(error_reply("Bad request", None));
                return true;
            }
        };
        if !truthy(parsed.get("msg")) {
            self.reply(error_reply("Bad request", Some(parsed)));
            return true;
        }
        let msg = parsed.get("msg").and_then(Value::as_str).unwrap_or_default().to_owned();
        if msg == "connect" {
            return self.handle_connect(parsed);
        }
        let Some(session) = self.session.clone() else {
            self.reply(error_reply("Must connect first", Some(parsed)));
            return true;
        };
        // Pings and pongs are answered at once, outside the queue — except
        // in `pre1`, which had none: there they are unknown messages.
        let pings = session.inner.version != "pre1";
        match msg.as_str() {
            "ping" if pings => {
                let mut pong = json!({"msg":"pong"});
                if let Some(id) = parsed.get("id") {
                    pong["id"] = id.clone();
                }
                self.tx.text(pong.to_string());
            }
            "pong" if pings => {}
            _ => {
                if msg == "disconnect" {
                    // Not a message Meteor knows ("Bad request", below), but
                    // a client that says it is leaving does not get its
                    // session held for resumption after the socket closes.
                    session.inner.graceful.store(true, Ordering::SeqCst);
                }
                session.enqueue(parsed);
            }
        }
        true
    }

    pub(crate) fn handle_connect(&mut self, parsed: Value) -> bool {
        if self.session.is_some() {
            self.reply(error_reply("Already connected", Some(parsed)));
            return true;
        }
        let server_versions = lock(&self.sc.versions).clone().unwrap_or_else(|| self.server.shared.config.versions.clone());
        let support: Option<Vec<String>> = parsed
            .get("support")
            .and_then(Value::as_array)
            .filter(|a| a.iter().all(Value::is_string))
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
        let asked = parsed.get("version").and_then(Value::as_str);
        let well_formed = support.as_ref().is_some_and(|s| asked.is_some_and(|a| s.iter().any(|v| v == a)));
        let chosen = if well_formed {
            choose_version(support.as_deref().unwrap_or_default(), &server_versions)
        } else {
            server_versions.first().cloned().unwrap_or_else(|| DEFAULT_VERSIONS[0].to_owned())
        };
        if !well_formed || asked != Some(chosen.as_str()) || !server_versions.contains(&chosen) {
            self.tx.text(json!({"msg":"failed","version":chosen}).to_string());
            self.tx.close(1000, NORMAL_CLOSURE);
            return false;
        }
        // Resumption: the previous session, if it is still held and the
        // count of what the client received is one we can replay from.
        let previous = parsed.get("session").and_then(Value::as_str);
        let received = parsed.get("receivedCount").and_then(Value::as_u64);
        if let (Some(prev), Some(received), true) = (previous, received, self.sc.resume.load(Ordering::SeqCst)) {
            let held = lock(&self.sc.sessions).get(prev).cloned();
            // (`resume` refuses a session that is ending, closed or
            // closed cleanly, checked under its link's lock.)
            if let Some(s) = held {
                if s.resume(received, self.tx.clone(), self.generation) {
                    self.session = Some(s);
                    return true;
                }
            }
        }
        let conn = self.new_session(chosen);
        self.tx.text(json!({"msg":"connected","session":conn.id()}).to_string());
        self.session = Some(conn.clone());
        let hooks: Vec<ConnectionHook> = lock(&self.server.shared.hooks).iter().map(|(_, h)| h.clone()).collect();
        for h in hooks {
            h(conn.clone());
        }
        true
    }
}
