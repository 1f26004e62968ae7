//! Property tests: random histories of frames, garbage, closes, time and
//! page events keep the machine's invariants, and no text or JSON panics
//! the message parser.

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
                    Output::Event(_) | Output::Done(_) => {}
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
