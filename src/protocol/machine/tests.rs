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
        self.events.clear();
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

/// The calls failed since the events were last cleared, as (id, code).
fn failed(h: &Harness) -> Vec<(u64, serde_json::Value)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::MethodDone { id, outcome: Err(err) } => Some((*id, err.error())),
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

#[test]
fn initial_status_is_connecting_with_no_retries() {
    let h = Harness::new(Config::default());
    assert_eq!(h.m.status(), Status::initial());
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn handshake_sends_connect_then_connected_sets_session() {
    let mut h = Harness::new(Config::default());
    h.start();
    assert_eq!(h.sockets, vec![1]);
    assert_eq!(h.state(), ConnectionState::Connecting);
    h.m.handle_open(1, h.now);
    h.drain();
    assert_eq!(h.sent, vec![r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#]);
    // Socket open is not "connected": only DDP's `connected` is.
    assert!(!h.m.status().connected);
    h.frame(r#"{"msg":"connected","session":"abc"}"#);
    let st = h.m.status();
    assert!(st.connected);
    assert_eq!(st.status, ConnectionState::Connected);
    assert_eq!(h.m.session(), Some("abc"));
    assert_eq!(h.take_events(), vec![Event::Connected { session: "abc".into() }]);
}

#[test]
fn server_id_greeting_is_ignored() {
    let mut h = Harness::new(Config::default());
    h.start();
    h.m.handle_open(1, h.now);
    h.drain();
    h.frame(r#"{"server_id":"0"}"#);
    assert!(h.events.is_empty());
}

#[test]
fn drop_goes_waiting_then_retries_and_gets_a_new_session() {
    let mut h = connected();
    h.close(1006);
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Waiting);
    assert_eq!(st.retry_count, 0);
    assert_eq!(st.retry_time, Some(h.now + 10.0));
    assert_eq!(h.m.session(), None);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::TransportClose }]);
    h.fire();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().retry_count, 1);
    assert_eq!(h.m.status().retry_time, None);
    assert_eq!(h.take_events(), vec![Event::ReconnectAttempt { attempt: 1 }]);
    h.open_and_connect("S2");
    assert_eq!(h.m.session(), Some("S2"));
    assert_eq!(h.m.status().retry_count, 0);
    assert_eq!(h.take_events(), vec![Event::Connected { session: "S2".into() }, Event::Reconnected { attempts: 1 }]);
}

#[test]
fn clean_close_from_server_is_a_server_disconnect() {
    let mut h = connected();
    h.close(1000);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::ServerDisconnect }]);
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn transport_error_reason_and_late_close_is_ignored() {
    let mut h = connected();
    let s = h.socket();
    h.m.handle_transport_error(s, h.now);
    h.drain();
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::TransportError }]);
    // The browser's close after the error is about a socket already given up.
    h.m.handle_close(s, 1006, h.now);
    h.drain();
    assert!(h.events.is_empty());
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn stale_socket_input_is_ignored() {
    let mut h = connected();
    let old = h.socket();
    h.close(1006);
    h.fire();
    h.take_events();
    let new = h.socket();
    assert_ne!(old, new);
    h.m.handle_frame(old, r#"{"msg":"connected","session":"ghost"}"#, h.now);
    h.m.handle_close(old, 1006, h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert!(h.take_events().is_empty());
}

#[test]
fn retry_schedule_follows_meteor_with_seeded_jitter() {
    let mut h = Harness::new(Config::default());
    let mut rng = seeded(42);
    h.start();
    for count in 0..12u32 {
        // The attempt fails before the handshake.
        let s = h.socket();
        h.m.handle_close(s, 1006, h.now);
        h.drain();
        let st = h.m.status();
        assert_eq!(st.status, ConnectionState::Waiting);
        assert_eq!(st.retry_count, count);
        let expected = RetryPolicy::default().delay_ms(count, rng());
        assert_eq!(st.retry_time, Some(h.now + expected), "retry {count}");
        if count >= 2 {
            let base = (1000.0 * 2.2f64.powi(count as i32)).min(300_000.0);
            assert!(expected >= base * 0.75 && expected < base * 1.25, "jitter within ±25% at {count}");
        } else {
            assert_eq!(expected, 10.0);
        }
        h.fire();
        assert_eq!(h.m.status().retry_count, count + 1);
    }
}

#[test]
fn jitter_is_fresh_on_every_attempt() {
    let mut h = Harness::new(Config::default());
    h.start();
    let mut factors = vec![];
    for count in 0..8u32 {
        let s = h.socket();
        h.m.handle_close(s, 1006, h.now);
        h.drain();
        if count >= 2 {
            let base = (1000.0 * 2.2f64.powi(count as i32)).min(300_000.0);
            factors.push(((h.m.status().retry_time.unwrap() - h.now) / base * 1e6).round());
        }
        h.fire();
    }
    let mut distinct = factors.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), factors.len(), "jitter repeated: {factors:?}");
}

#[test]
fn retry_limit_gives_up_with_reconnect_failed() {
    let mut h = Harness::new(Config { max_retries: Some(3), ..Config::default() });
    h.start();
    h.open_and_connect("S1");
    h.take_events();
    h.close(1006);
    for _ in 0..3 {
        h.fire();
        h.close(1006);
    }
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Failed);
    assert_eq!(st.reason.as_deref(), Some("gave up after 3 reconnect attempts"));
    assert_eq!(h.m.poll_timeout(), None, "no more retries once failed");
    let events = h.take_events();
    assert_eq!(events.last(), Some(&Event::ReconnectFailed));
    assert_eq!(events.iter().filter(|e| matches!(e, Event::ReconnectAttempt { .. })).count(), 3);
    // The network coming back is a fresh start after a retry-limit failure.
    h.m.handle_online(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().retry_count, 0);
}

#[test]
fn connect_timeout_fails_the_attempt_without_a_disconnect_event() {
    let mut h = Harness::new(Config { connect_timeout_ms: 5000.0, ..Config::default() });
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.advance(4999.0);
    assert_eq!(h.state(), ConnectionState::Connecting);
    h.advance(1.0);
    assert_eq!(h.state(), ConnectionState::Waiting);
    assert!(h.take_events().is_empty());
    assert_eq!(h.open, None, "the timed-out socket was closed");
}

#[test]
fn heartbeat_pings_when_idle_and_times_out() {
    let mut h = connected();
    h.advance(17_499.0);
    assert!(h.sent.is_empty());
    h.advance(1.0);
    assert_eq!(h.sent, vec![r#"{"msg":"ping"}"#]);
    assert_eq!(h.m.poll_timeout(), Some(h.now + 15_000.0));
    h.advance(14_999.0);
    assert_eq!(h.state(), ConnectionState::Connected);
    h.advance(1.0);
    assert_eq!(h.state(), ConnectionState::Waiting);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::PingTimeout }]);
}

#[test]
fn any_message_counts_as_a_pong_and_delays_the_next_ping() {
    let mut h = connected();
    h.advance(17_500.0);
    assert_eq!(h.sent.len(), 1);
    h.advance(14_000.0);
    // Not a pong, but data: the link is alive.
    h.frame(r#"{"msg":"added","collection":"c","id":"x"}"#);
    h.advance(14_000.0);
    assert_eq!(h.state(), ConnectionState::Connected);
    assert_eq!(h.m.poll_timeout(), Some(h.now - 14_000.0 + 17_500.0));
    // Even garbage proves liveness.
    h.advance(3_000.0);
    h.frame("garbage");
    h.advance(17_000.0);
    assert_eq!(h.state(), ConnectionState::Connected);
    assert_eq!(h.sent.len(), 1);
}

#[test]
fn server_ping_is_answered_at_once_with_the_same_id() {
    let mut h = connected();
    h.frame(r#"{"msg":"ping","id":"xyz"}"#);
    h.frame(r#"{"msg":"ping"}"#);
    assert_eq!(h.sent, vec![r#"{"msg":"pong","id":"xyz"}"#, r#"{"msg":"pong"}"#]);
}

#[test]
fn heartbeat_zero_disables_it_and_pre1_has_none() {
    let mut h = Harness::new(Config { heartbeat_interval_ms: 0.0, ..Config::default() });
    h.start();
    h.open_and_connect("S");
    assert_eq!(h.m.poll_timeout(), None);
    h.advance(1e9);
    assert_eq!(h.state(), ConnectionState::Connected);

    let mut h = Harness::new(Config { versions: vec!["pre1".into()], ..Config::default() });
    h.start();
    h.open_and_connect("S");
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn wall_clock_catches_a_deadline_missed_during_sleep() {
    let mut h = connected();
    h.advance(17_500.0); // ping sent
                         // The laptop sleeps for an hour; the first timer to run sees the truth.
    h.advance(3_600_000.0);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::PingTimeout }]);
}

#[test]
fn wake_checks_liveness_at_once() {
    let mut h = connected();
    h.now += 1000.0;
    h.m.handle_wake(h.now);
    h.drain();
    assert_eq!(h.sent, vec![r#"{"msg":"ping"}"#]);
    // A second wake does not stack pings.
    h.m.handle_wake(h.now);
    h.drain();
    assert_eq!(h.sent.len(), 1);
    h.advance(15_000.0);
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn version_negotiation_adopts_a_supported_suggestion() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.frame(r#"{"msg":"failed","version":"pre2"}"#);
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.sockets.len(), 2, "reconnected at once");
    assert_eq!(h.m.status().retry_count, 0, "negotiation is not a retry");
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    assert_eq!(h.sent.last().unwrap(), r#"{"msg":"connect","version":"pre2","support":["1","pre2","pre1"]}"#);
    h.frame(r#"{"msg":"connected","session":"S"}"#);
    assert!(h.m.status().connected);
    assert_eq!(h.m.version(), "pre2");
}

#[test]
fn version_negotiation_fails_permanently_on_an_unsupported_version() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.frame(r#"{"msg":"failed","version":"2"}"#);
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Failed);
    assert_eq!(st.reason.as_deref(), Some("DDP version negotiation failed; server requested version 2"));
    assert!(!st.connected);
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.open, None);
    // `online` does not undo a version failure; reconnect() does.
    h.m.handle_online(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Failed);
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().reason, None);
}

#[test]
fn a_server_that_flip_flops_versions_cannot_loop_forever() {
    let mut h = Harness::new(Config::default());
    h.start();
    for v in ["pre2", "1"] {
        let s = h.socket();
        h.m.handle_open(s, h.now);
        h.drain();
        h.frame(&format!(r#"{{"msg":"failed","version":"{v}"}}"#));
    }
    assert_eq!(h.state(), ConnectionState::Failed);
}

#[test]
fn disconnect_goes_offline_and_stops_retrying() {
    let mut h = connected();
    h.m.disconnect(h.now);
    h.drain();
    let st = h.m.status();
    assert_eq!(st.status, ConnectionState::Offline);
    assert_eq!(st.retry_count, 0);
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.open, None);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::ClientDisconnect }]);
    // Neither `online` nor time brings it back.
    h.m.handle_online(h.now);
    h.advance(1e9);
    assert_eq!(h.state(), ConnectionState::Offline);
    // reconnect() does, without counting a retry.
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    h.open_and_connect("S2");
    assert_eq!(h.m.status().retry_count, 0);
    assert_eq!(
        h.take_events(),
        vec![Event::ReconnectAttempt { attempt: 1 }, Event::Connected { session: "S2".into() }, Event::Reconnected { attempts: 1 }]
    );
}

#[test]
fn disconnect_while_waiting_cancels_the_retry() {
    let mut h = connected();
    h.close(1006);
    h.m.disconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Offline);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn reconnect_while_connected_does_nothing() {
    let mut h = connected();
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.sockets.len(), 1);
    assert!(h.events.is_empty());
}

#[test]
fn reconnect_while_waiting_retries_now_without_counting() {
    let mut h = connected();
    h.close(1006);
    h.fire();
    h.close(1006); // retry_count 1, waiting
    assert_eq!(h.m.status().retry_count, 1);
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
    assert_eq!(h.m.status().retry_count, 1);
}

#[test]
fn reconnect_while_connecting_replaces_the_socket() {
    let mut h = Harness::new(Config::default());
    h.start();
    h.m.reconnect(h.now);
    h.drain();
    assert_eq!(h.sockets, vec![1, 2]);
    assert_eq!(h.open, Some(2));
}

#[test]
fn online_retries_at_once_when_waiting() {
    let mut h = connected();
    h.close(1006);
    h.fire();
    h.close(1006);
    h.fire();
    h.close(1006); // now waiting ~4.8 s
    assert_eq!(h.state(), ConnectionState::Waiting);
    h.m.handle_online(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Connecting);
}

#[test]
fn offline_event_loses_the_link() {
    let mut h = connected();
    h.m.handle_offline(h.now);
    h.drain();
    assert_eq!(h.state(), ConnectionState::Waiting);
    assert_eq!(h.take_events(), vec![Event::Disconnected { reason: DisconnectReason::TransportClose }]);
}

#[test]
fn bad_frames_are_reported_and_the_connection_survives() {
    let mut h = connected();
    for bad in ["nope", "[]", "{}", r#"{"msg":"nonsense"}"#, r#"{"msg":"connected"}"#, "\u{0}"] {
        h.frame(bad);
    }
    let events = h.take_events();
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| matches!(e, Event::Error(ProtocolError::Frame(_)))));
    assert_eq!(h.state(), ConnectionState::Connected);
}

#[test]
fn oversized_frame_is_a_typed_error() {
    let mut h = Harness::new(Config { max_frame_bytes: 64, ..Config::default() });
    h.start();
    h.open_and_connect("S");
    h.take_events();
    h.frame(&format!(r#"{{"msg":"added","collection":"c","id":"{}"}}"#, "x".repeat(100)));
    assert!(matches!(h.take_events().as_slice(), [Event::Error(ProtocolError::Frame(FrameError::TooLarge { .. }))]));
    assert!(h.m.status().connected);
}

#[test]
fn server_error_message_is_an_error_event() {
    let mut h = connected();
    h.frame(r#"{"msg":"error","reason":"Bad request","offendingMessage":{"x":1}}"#);
    assert_eq!(
        h.take_events(),
        vec![Event::Error(ProtocolError::Server { reason: "Bad request".into(), offending_message: Some(serde_json::json!({"x":1})) })]
    );
}

#[test]
fn second_connected_is_unexpected_not_a_new_session() {
    let mut h = connected();
    h.frame(r#"{"msg":"connected","session":"other"}"#);
    assert_eq!(h.m.session(), Some("S1"));
    assert!(matches!(h.take_events().as_slice(), [Event::Error(ProtocolError::Unexpected(_))]));
}

#[test]
fn data_before_connected_is_reported_not_applied() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open(s, h.now);
    h.drain();
    h.frame(r#"{"msg":"added","collection":"c","id":"x"}"#);
    assert!(matches!(h.take_events().as_slice(), [Event::Error(ProtocolError::Unexpected(_))]));
    assert!(h.m.store().is_empty());
}

#[test]
fn config_validation_names_the_option() {
    assert!(Config::default().validate().is_ok());
    let e = Config { versions: vec!["2".into()], ..Config::default() }.validate().unwrap_err();
    assert!(e.contains("\"2\""), "{e}");
    let e = Config { heartbeat_interval_ms: f64::NAN, ..Config::default() }.validate().unwrap_err();
    assert!(e.contains("heartbeatInterval"), "{e}");
    assert!(Config { versions: vec![], ..Config::default() }.validate().is_err());
}

#[cfg(not(target_arch = "wasm32"))]
mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Open,
        Frame(String),
        Garbage(Vec<u8>),
        Close(u16),
        Error,
        Advance(f64),
        Reconnect,
        Disconnect,
        Online,
        Offline,
        Wake,
        Stale,
    }

    fn frame() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#"{"msg":"connected","session":"S"}"#.to_string()),
            Just(r#"{"msg":"failed","version":"pre2"}"#.to_string()),
            Just(r#"{"msg":"failed","version":"9"}"#.to_string()),
            Just(r#"{"msg":"ping","id":"1"}"#.to_string()),
            Just(r#"{"msg":"pong"}"#.to_string()),
            Just(r#"{"server_id":"0"}"#.to_string()),
            Just(r#"{"msg":"added","collection":"c","id":"1","fields":{"a":[1,{"$date":5}]}}"#.to_string()),
            Just(r#"{"msg":"result","id":"1","error":{"error":404}}"#.to_string()),
            ".{0,40}",
            // Random JSON-ish objects with a msg.
            ("[a-z]{0,10}", ".{0,20}").prop_map(|(m, v)| format!(r#"{{"msg":"{m}","id":{v:?}}}"#)),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Open),
            4 => frame().prop_map(Step::Frame),
            1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Step::Garbage),
            2 => prop_oneof![Just(1000u16), Just(1006u16), any::<u16>()].prop_map(Step::Close),
            1 => Just(Step::Error),
            3 => (0.0f64..400_000.0).prop_map(Step::Advance),
            1 => Just(Step::Reconnect),
            1 => Just(Step::Disconnect),
            1 => Just(Step::Online),
            1 => Just(Step::Offline),
            1 => Just(Step::Wake),
            1 => Just(Step::Stale),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever happens, in any order: no panic, and the status always
        /// tells the truth about itself.
        #[test]
        fn random_histories_keep_the_invariants(steps in proptest::collection::vec(step(), 1..60), seed in 1u64..u64::MAX) {
            let mut m = Machine::new(Config { max_retries: Some(5), ..Config::default() }, seeded(seed));
            let mut now = 0.0;
            let mut open: Option<u64> = None;
            let mut last_socket = 0;
            m.start(now);
            for st in steps {
                match st {
                    Step::Open => if let Some(s) = open { m.handle_open(s, now) },
                    Step::Frame(f) => if let Some(s) = open { m.handle_frame(s, &f, now) },
                    Step::Garbage(b) => if let Some(s) = open { m.handle_frame(s, &String::from_utf8_lossy(&b), now) },
                    Step::Close(c) => if let Some(s) = open { m.handle_close(s, c, now) },
                    Step::Error => if let Some(s) = open { m.handle_transport_error(s, now) },
                    Step::Advance(ms) => { now += ms; m.handle_timeout(now) },
                    Step::Reconnect => m.reconnect(now),
                    Step::Disconnect => m.disconnect(now),
                    Step::Online => m.handle_online(now),
                    Step::Offline => m.handle_offline(now),
                    Step::Wake => m.handle_wake(now),
                    Step::Stale => { m.handle_frame(0, r#"{"msg":"connected","session":"X"}"#, now); m.handle_close(0, 1006, now) },
                }
                while let Some(o) = m.poll_output() {
                    match o {
                        Output::OpenSocket { socket } => { prop_assert!(socket > last_socket); last_socket = socket; open = Some(socket) }
                        Output::CloseSocket { socket } => if open == Some(socket) { open = None },
                        Output::Send { socket, .. } => prop_assert_eq!(Some(socket), open),
                        Output::Event(_) => {}
                        Output::RunReconnectHooks => m.reconnect_hooks_done(),
                    }
                }
                let s = m.status();
                prop_assert_eq!(s.connected, s.status == ConnectionState::Connected);
                prop_assert_eq!(s.retry_time.is_some(), s.status == ConnectionState::Waiting);
                prop_assert_eq!(s.reason.is_some(), s.status == ConnectionState::Failed);
                prop_assert_eq!(m.session().is_some(), s.connected);
                prop_assert!(s.retry_count <= 5);
                if s.connected { prop_assert_eq!(s.retry_count, 0) }
                if let Some(t) = m.poll_timeout() { prop_assert!(t.is_finite()) }
                if matches!(s.status, ConnectionState::Offline | ConnectionState::Failed) {
                    prop_assert_eq!(open, None);
                    prop_assert_eq!(m.poll_timeout(), None);
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(s in ".*") {
            let _ = crate::protocol::message::parse_frame(&s, 1 << 20);
        }

        #[test]
        fn arbitrary_json_never_panics_the_parser(v in arb_json()) {
            let _ = crate::protocol::message::parse_value(v);
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("connected"),
                Just("ready"),
                Just("added"),
                Just("changed"),
                Just("result"),
                Just("updated"),
                Just("nosub"),
                Just("x")
            ]
            .prop_map(|s| Value::String(s.into())),
            ".{0,8}".prop_map(Value::String),
        ];
        let key = prop_oneof![
            Just("msg".to_string()),
            Just("id".to_string()),
            Just("subs".to_string()),
            Just("fields".to_string()),
            Just("collection".to_string()),
            Just("session".to_string()),
            "[a-z]{1,6}"
        ];
        crate::protocol::arb::arb_json(leaf.boxed(), key.boxed(), 4, 6)
    }
}

mod methods;
#[cfg(not(target_arch = "wasm32"))]
mod simulated;
mod subs;
mod too_big;

#[test]
fn closed_lives_in_the_machine_nothing_reopens_it() {
    let mut h = connected();
    h.m.close(h.now);
    h.drain();
    assert_eq!(h.open, None);
    let opened = h.sockets.len();
    h.m.reconnect(h.now);
    h.m.handle_online(h.now);
    h.m.handle_wake(h.now);
    h.m.start(h.now);
    h.advance(1_000_000.0);
    assert_eq!(h.sockets.len(), opened, "no socket after close()");
    assert_eq!(h.state(), ConnectionState::Offline);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn a_retry_is_not_stalled_by_the_clock_going_back() {
    let mut h = connected();
    h.close(1006);
    h.fire(); // retry 1 (10 ms) fails
    h.close(1006);
    h.fire(); // retry 2 (10 ms) fails
    h.close(1006);
    let until = h.m.poll_timeout().expect("waiting");
    let delay = until - h.now;
    assert!(delay > 3000.0, "the third retry waits seconds: {delay}");
    let opened = h.sockets.len();
    // The wall clock is set back an hour right after the drop.
    h.now -= 3_600_000.0;
    h.m.handle_timeout(h.now);
    h.drain();
    let moved = h.m.poll_timeout().expect("still waiting");
    assert!((moved - h.now - delay).abs() < 1.0, "the retry keeps its delay: {}", moved - h.now);
    h.advance(delay);
    assert_eq!(h.sockets.len(), opened + 1, "retried after its delay, not an hour later");
}

#[test]
fn heartbeat_and_call_timeouts_survive_the_clock_going_back() {
    let mut h = connected();
    let id = h.m.call("slow", vec![], CallOptions { timeout_ms: Some(5000.0), ..CallOptions::default() }, h.now).expect("queued");
    h.drain();
    // The driver's monotonic clock saw the wall clock set back 15 minutes.
    h.now -= 900_000.0;
    h.m.handle_clock_jump(900_000.0);
    h.advance(17_500.0);
    assert!(h.sent.iter().any(|s| s.contains(r#""msg":"ping""#)), "the idle ping went out on time: {:?}", h.sent);
    assert!(
        h.events.iter().any(|e| matches!(e, Event::MethodDone { id: i, outcome: Err(MethodError::Timeout) } if *i == id)),
        "the call timed out on time: {:?}",
        h.events
    );
    h.advance(15_000.0);
    assert_eq!(h.state(), ConnectionState::Waiting, "the unanswered ping timed out on time");
}

#[test]
fn an_unreadable_result_fails_its_call_instead_of_stranding_it() {
    let mut h = connected();
    let id = h.m.call("echo", vec![], CallOptions::default(), h.now).expect("queued");
    let other = h.m.call("echo", vec![], CallOptions::default(), h.now).expect("queued");
    h.drain();
    h.frame(&format!(r#"{{"msg":"result","id":"{id}","result":[1,2"#));
    let done = h.events.iter().filter(|e| matches!(e, Event::MethodDone { .. })).count();
    assert_eq!(done, 1, "only the call named fails: {:?}", h.events);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::MethodDone { id: i, outcome: Err(MethodError::BadFrame(FrameError::NotJson(_))) } if *i == id)));
    assert!(h.events.iter().any(|e| matches!(e, Event::Error(ProtocolError::Frame(FrameError::NotJson(_))))));
    h.events.clear();
    // An oversized result, of which only the ends were copied.
    let ends = format!(r#"{{"msg":"result","id":"{other}","result":"xxxx…xxxx"}}"#);
    let s = h.socket();
    h.m.handle_oversized_frame(s, 50_000_000, &ends, h.now);
    h.drain();
    assert!(h.events.iter().any(|e| matches!(e, Event::MethodDone { id: i, outcome: Err(MethodError::BadFrame(FrameError::TooLarge { len: 50_000_000, .. })) } if *i == other)));
    assert_eq!(h.m.outbox(), Outbox::default(), "nothing left waiting");
    // A frame naming no pending call fails nothing.
    let third = h.m.call("echo", vec![], CallOptions::default(), h.now).expect("queued");
    h.drain();
    h.events.clear();
    h.frame(r#"{"msg":"result","id":"999","result":[1,2"#);
    assert!(!h.events.iter().any(|e| matches!(e, Event::MethodDone { .. })));
    assert_eq!(h.m.outbox().in_flight, 1, "call {third} still waits");
}

#[test]
fn a_refused_socket_reports_the_browsers_reason_and_retries() {
    let mut h = Harness::new(Config::default());
    h.start();
    let s = h.socket();
    h.m.handle_open_failed(s, "The URL's scheme must be either 'ws' or 'wss'".into(), h.now);
    h.drain();
    assert!(h.events.iter().any(|e| matches!(e, Event::Error(ProtocolError::SocketRefused(r)) if r.contains("scheme"))), "{:?}", h.events);
    assert_eq!(h.state(), ConnectionState::Waiting);
}

#[test]
fn a_session_that_lost_a_frame_is_not_resumed() {
    let connect_of = |h: &Harness| -> Value {
        h.sent.iter().filter_map(|t| serde_json::from_str::<Value>(t).ok()).find(|v| v["msg"] == "connect").expect("a connect")
    };
    // A readable session is resumed after a drop.
    let mut h2 = connected();
    h2.frame(r#"{"msg":"added","collection":"c","id":"a","fields":{}}"#);
    h2.close(1006);
    h2.fire();
    let s = h2.socket();
    h2.m.handle_open(s, h2.now);
    h2.drain();
    assert_eq!(connect_of(&h2)["session"], "S1", "a readable session is resumed");
    // One that lost a frame (an `added` too large to read) is not: the new
    // session re-sends the documents and the store is reconciled.
    let mut h3 = connected();
    let s = h3.socket();
    h3.m.handle_oversized_frame(s, 99_999_999, r#"{"msg":"added","collection":"c","id":"big"…"#, h3.now);
    h3.drain();
    h3.close(1006);
    h3.fire();
    let s = h3.socket();
    h3.m.handle_open(s, h3.now);
    h3.drain();
    assert!(connect_of(&h3).get("session").is_none(), "{:?}", connect_of(&h3));
}
