//! A socket's outgoing side: the bounded queue ([`Outbox`]) and the
//! writer task that drains it ([`write_loop`]).

use super::*;

/// What a socket's writer sends, in order.
#[derive(Debug)]
pub(crate) enum Out {
    Text(String),
    /// A close frame (code, reason), after everything queued before it.
    Close(u16, String),
}

/// A socket's outgoing queue. Bounded in bytes: frames wait here for the
/// socket's writer task, and a client that stops reading can make the
/// server hold at most [`Config::max_queued_bytes`] for it: past that the
/// socket is cut (the session is then held for resumption like after any
/// drop). Bulk producers (a publication's initial documents) wait for room
/// instead ([`Outbox::room`]).
pub(crate) struct Outbox {
    pub(crate) tx: mpsc::UnboundedSender<Out>,
    /// Bytes queued and not yet flushed to the socket.
    pub(crate) queued: AtomicUsize,
    pub(crate) limit: usize,
    /// The writer made room, or the socket ended.
    pub(crate) room: Notify,
    /// Cut the socket now, ahead of the queue (overflow, fault injection).
    pub(crate) cut: Notify,
    /// The socket is cut or gone: nothing more is queued.
    pub(crate) ended: AtomicBool,
    /// When the writer last flushed frames to the socket.
    pub(crate) last_write: Mutex<Instant>,
}

impl Outbox {
    pub(crate) fn new(limit: usize) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            room: Notify::new(),
            cut: Notify::new(),
            ended: AtomicBool::new(false),
            last_write: Mutex::new(Instant::now()),
        };
        (Arc::new(outbox), rx)
    }

    /// Queues a text frame; a frame that would take the queue past its
    /// limit cuts the socket instead (one frame alone always goes).
    pub(crate) fn text(&self, text: String) {
        self.queue(text, true);
    }

    /// Queues a text frame whatever the queue holds (a resumption's replay,
    /// itself bounded by the history's limit).
    pub(crate) fn text_unbounded(&self, text: String) {
        self.queue(text, false);
    }

    pub(crate) fn queue(&self, text: String, bounded: bool) {
        if self.ended.load(Ordering::SeqCst) {
            return;
        }
        let len = text.len();
        let before = self.queued.fetch_add(len, Ordering::SeqCst);
        if bounded && before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            self.cut_now();
            return;
        }
        if self.tx.send(Out::Text(text)).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
        }
    }

    /// Queues a close frame after what is queued.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        if !self.ended.load(Ordering::SeqCst) {
            let _ = self.tx.send(Out::Close(code, reason.to_owned()));
        }
    }

    /// Cuts the socket without a close frame, whatever is queued.
    pub(crate) fn cut_now(&self) {
        self.end();
        self.cut.notify_one();
    }

    /// Nothing more goes out; producers waiting for room go on.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    /// Nothing is waiting to be written.
    pub(crate) fn idle(&self) -> bool {
        self.queued.load(Ordering::SeqCst) == 0
    }

    /// Waits until the queue is at most half full (or the socket ended).
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ended.load(Ordering::SeqCst) || self.queued.load(Ordering::SeqCst) <= self.limit / 2 {
                return;
            }
            notified.await;
        }
    }
}

/// Most frames written before a flush.
pub(crate) const BATCH_FRAMES: usize = 256;

/// How long a socket ending cleanly may take to write its close frame.
pub(crate) const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// A socket's writer: sends what the outbox queues, a burst (a
/// publication's documents) in a few writes — up to [`BATCH_FRAMES`] frames
/// fed, then one flush — not one syscall per frame. Ends after a close
/// frame or when the socket breaks.
pub(crate) async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    outbox: Arc<Outbox>,
    sc: Arc<Scenario>,
) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let (mut frames, mut bytes) = (0, 0);
        while let Some(out) = next.take() {
            match out {
                Out::Text(t) => {
                    bytes += t.len();
                    if !sc.silent.load(Ordering::SeqCst) && sink.feed(Message::Text(t.into())).await.is_err() {
                        return;
                    }
                    frames += 1;
                    if frames < BATCH_FRAMES {
                        next = rx.try_recv().ok();
                    }
                }
                Out::Close(code, reason) => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    return;
                }
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
        outbox.queued.fetch_sub(bytes, Ordering::SeqCst);
        *lock(&outbox.last_write) = Instant::now();
        outbox.room.notify_waiters();
    }
}
