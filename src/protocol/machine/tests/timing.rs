//! Time: the retry schedule and its jitter, connect timeouts, the
//! heartbeat, sleep and wake, and a wall clock that goes back.

use super::*;

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
        h.done.iter().any(|e| matches!(e, Completion::MethodDone { id: i, outcome: Err(MethodError::Timeout) } if *i == id)),
        "the call timed out on time: {:?}",
        h.events
    );
    h.advance(15_000.0);
    assert_eq!(h.state(), ConnectionState::Waiting, "the unanswered ping timed out on time");
}
