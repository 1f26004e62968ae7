use super::*;

/// A deterministic random source: a xorshift generator with a seed.
fn seeded(seed: u64) -> Box<dyn FnMut() -> f64> {
    let mut s = seed.max(1);
    Box::new(move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    })
}

struct Harness {
    m: Machine,
    now: f64,
    sockets: Vec<u64>,
    open: Option<u64>,
    sent: Vec<String>,
    events: Vec<Event>,
    done: Vec<Completion>,
    hooks_run: usize,
    hook: Option<Box<dyn FnOnce(&mut Machine, f64)>>,
}

impl Harness {
    fn new(config: Config) -> Self {
        Harness {
            m: Machine::new(config, seeded(42)),
            now: 1_000_000.0,
            sockets: vec![],
            open: None,
            sent: vec![],
            events: vec![],
            done: vec![],
            hooks_run: 0,
            hook: None,
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.m.poll_output() {
            match o {
                Output::OpenSocket { socket } => {
                    self.sockets.push(socket);
                    self.open = Some(socket);
                }
                Output::CloseSocket { socket } => {
                    if self.open == Some(socket) {
                        self.open = None;
                    }
                }
                Output::Send { socket, text } => {
                    assert_eq!(Some(socket), self.open, "sent on a socket that is not open");
                    self.sent.push(text);
                }
                Output::Event(e) => self.events.push(e),
                Output::Done(c) => self.done.push(c),
                Output::RunReconnectHooks => {
                    self.hooks_run += 1;
                    if let Some(hook) = self.hook.take() {
                        hook(&mut self.m, self.now);
                    }
                    self.m.reconnect_hooks_done();
                }
            }
        }
    }

    fn start(&mut self) {
        self.m.start(self.now);
        self.drain();
    }

    /// Forgets the events and completions heard so far.
    fn clear(&mut self) {
        self.events.clear();
        self.done.clear();
    }

    fn socket(&self) -> u64 {
        self.open.expect("a socket is open")
    }

    fn open_and_connect(&mut self, session: &str) {
        let s = self.socket();
        self.m.handle_open(s, self.now);
        self.drain();
        self.frame(&format!(r#"{{"msg":"connected","session":"{session}"}}"#));
    }

    fn frame(&mut self, text: &str) {
        let s = self.socket();
        self.m.handle_frame(s, text, self.now);
        self.drain();
    }

    fn advance(&mut self, ms: f64) {
        self.now += ms;
        self.m.handle_timeout(self.now);
        self.drain();
    }

    /// Advances to the machine's next deadline.
    fn fire(&mut self) {
        let t = self.m.poll_timeout().expect("a deadline is set");
        let d = (t - self.now).max(0.0);
        self.advance(d);
    }

    fn close(&mut self, code: u16) {
        let s = self.socket();
        self.m.handle_close(s, code, self.now);
        self.drain();
    }

    /// The link drops and the first retry connects to `session` (events
    /// and sent frames from before are cleared).
    fn drop_and_reconnect(&mut self, session: &str) {
        self.close(1006);
        self.fire();
        self.clear();
        self.sent.clear();
        self.open_and_connect(session);
    }

    fn state(&self) -> ConnectionState {
        self.m.status().status
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// The calls failed since the harness was last cleared, as (id, code).
fn failed(h: &Harness) -> Vec<(u64, serde_json::Value)> {
    h.done
        .iter()
        .filter_map(|e| match e {
            Completion::MethodDone { id, outcome: Err(err) } => Some((*id, err.error())),
            _ => None,
        })
        .collect()
}

fn connected() -> Harness {
    let mut h = Harness::new(Config::default());
    h.start();
    h.open_and_connect("S1");
    h.take_events();
    h.sent.clear();
    h
}

mod durable;
mod frames;
mod lifecycle;
mod methods;
#[cfg(not(target_arch = "wasm32"))]
mod prop;
#[cfg(not(target_arch = "wasm32"))]
mod simulated;
mod subs;
mod timing;
mod too_big;
mod versions;
