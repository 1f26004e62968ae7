use super::*;

fn drain(h: &mut Hub) -> Vec<HubOutput> {
    std::iter::from_fn(|| h.poll_output()).collect()
}

fn to(key: &str, text: &str) -> HubOutput {
    HubOutput::ToClient(key.into(), text.into())
}

fn send(text: &str) -> HubOutput {
    HubOutput::Send(text.into())
}

fn close(key: &str) -> HubOutput {
    HubOutput::CloseClient(key.into())
}

const CONNECT: &str = r#"{"msg":"connect","version":"1","support":["1"]}"#;
const UPSTREAM_CONNECT: &str = r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#;

fn resume(session: &str, n: u64) -> String {
    format!(r#"{{"msg":"connect","session":"{session}","version":"1","support":["1"],"receivedCount":{n}}}"#)
}

/// A hub with client `a` connected to upstream session `S`.
fn connected() -> Hub {
    let mut h = Hub::new(HubConfig::default());
    h.client_open("a", 0.0);
    assert_eq!(drain(&mut h), vec![HubOutput::Accept("a".into()), HubOutput::OpenUpstream]);
    h.client_frame("a", CONNECT, 0.0);
    assert_eq!(drain(&mut h), vec![]);
    h.upstream_open(1.0);
    assert_eq!(drain(&mut h), vec![send(UPSTREAM_CONNECT)]);
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 2.0);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"connected","session":"S~a~1"}"#)]);
    h
}

/// Client `key` joins the connected hub (a new session).
fn join(h: &mut Hub, key: &str, now: f64) {
    h.client_open(key, now);
    h.client_frame(key, CONNECT, now);
    drain(h);
}

#[test]
fn clients_share_one_session_with_their_ids_rewritten_both_ways() {
    let mut h = connected();
    h.client_frame("a", r#"{"msg":"sub","id":"s1","name":"items","params":[{"$date":5}]}"#, 3.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"sub","id":"a~s1","name":"items","params":[{"$date":5}]}"#)]);
    h.upstream_frame(r#"{"msg":"added","collection":"items","id":"i1","fields":{"n":1}}"#, 4.0);
    h.upstream_frame(r#"{"msg":"ready","subs":["a~s1"]}"#, 4.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Broadcast(r#"{"msg":"added","collection":"items","id":"i1","fields":{"n":1}}"#.into()),
            to("a", r#"{"msg":"ready","subs":["s1"]}"#)
        ]
    );

    // More clients: no second socket; each its `connected`, then the
    // session's documents.
    h.client_open("b", 5.0);
    h.client_frame("b", CONNECT, 5.0);
    h.upstream_frame(r#"{"msg":"changed","collection":"items","id":"i1","fields":{"m":2},"cleared":["n"]}"#, 5.0);
    h.client_open("c", 5.0);
    h.client_frame("c", CONNECT, 5.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Accept("b".into()),
            to("b", r#"{"msg":"connected","session":"S~b~1"}"#),
            to("b", r#"{"msg":"added","collection":"items","id":"i1","fields":{"n":1}}"#),
            HubOutput::Broadcast(r#"{"msg":"changed","collection":"items","id":"i1","fields":{"m":2},"cleared":["n"]}"#.into()),
            HubOutput::Accept("c".into()),
            to("c", r#"{"msg":"connected","session":"S~c~1"}"#),
            to("c", r#"{"msg":"added","collection":"items","id":"i1","fields":{"m":2}}"#),
        ]
    );

    // Calls: the seed and params byte for byte, the id rewritten; the
    // result and `updated` to the caller only, with its own id.
    h.client_frame("b", r#"{"msg":"method","method":"add", "params":[1,2.50],"id":"1","randomSeed":"x"}"#, 6.0);
    h.client_frame("c", r#"{"msg":"method","method":"add","params":[],"id":"1"}"#, 6.0);
    assert_eq!(
        drain(&mut h),
        vec![
            send(r#"{"msg":"method","method":"add", "params":[1,2.50],"id":"b~1","randomSeed":"x"}"#),
            send(r#"{"msg":"method","method":"add","params":[],"id":"c~1"}"#)
        ]
    );
    h.upstream_frame(r#"{"msg":"result","id":"c~1","result":{"a":[1]}}"#, 7.0);
    h.upstream_frame(r#"{"msg":"updated","methods":["b~1","c~1"]}"#, 7.0);
    h.upstream_frame(r#"{"msg":"result","id":"b~1","error":{"error":500}}"#, 7.0);
    assert_eq!(
        drain(&mut h),
        vec![
            to("c", r#"{"msg":"result","id":"1","result":{"a":[1]}}"#),
            to("b", r#"{"msg":"updated","methods":["1"]}"#),
            to("c", r#"{"msg":"updated","methods":["1"]}"#),
            to("b", r#"{"msg":"result","id":"1","error":{"error":500}}"#),
        ]
    );

    // Pings are answered by the hub; the server's by the hub too.
    h.client_frame("b", r#"{"msg":"ping","id":"p"}"#, 8.0);
    h.upstream_frame(r#"{"msg":"ping","id":"q"}"#, 8.0);
    assert_eq!(drain(&mut h), vec![to("b", r#"{"msg":"pong","id":"p"}"#), send(r#"{"msg":"pong","id":"q"}"#)]);
    assert_eq!(h.clients(), 3);
}

#[test]
fn a_client_that_comes_back_resumes_its_session_with_what_it_missed_and_its_calls_run_once() {
    let mut h = connected();
    join(&mut h, "b", 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.client_frame("b", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 3.0);
    h.client_frame("b", r#"{"msg":"method","method":"m","params":[],"id":"2"}"#, 3.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d1","fields":{}}"#, 4.0);
    drain(&mut h);
    // b got one message (the added), then its socket closed (its page
    // went offline); meanwhile its sub became ready and a call answered.
    h.client_close("b", 5.0);
    h.upstream_frame(r#"{"msg":"ready","subs":["b~s"]}"#, 6.0);
    h.upstream_frame(r#"{"msg":"result","id":"b~1","result":7}"#, 6.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d2","fields":{}}"#, 6.0);
    assert_eq!(drain(&mut h), vec![HubOutput::Broadcast(r#"{"msg":"added","collection":"c","id":"d2","fields":{}}"#.into())]);
    // Back: resumed, with what it missed.
    h.client_open("b", 7.0);
    h.client_frame("b", &resume("S~b~1", 1), 7.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Accept("b".into()),
            to("b", r#"{"msg":"connected","session":"S~b~1"}"#),
            to("b", r#"{"msg":"ready","subs":["s"]}"#),
            to("b", r#"{"msg":"result","id":"1","result":7}"#),
            to("b", r#"{"msg":"added","collection":"c","id":"d2","fields":{}}"#),
        ]
    );
    // What it sends again (as after any resumed session) is not sent
    // upstream again: the sub is there, call 1 answered, call 2 running.
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 8.0);
    h.client_frame("b", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 8.0);
    h.client_frame("b", r#"{"msg":"method","method":"m","params":[],"id":"2"}"#, 8.0);
    assert_eq!(drain(&mut h), vec![]);
    h.upstream_frame(r#"{"msg":"result","id":"b~2","result":8}"#, 9.0);
    assert_eq!(drain(&mut h), vec![to("b", r#"{"msg":"result","id":"2","result":8}"#)]);
}

#[test]
fn a_client_that_cannot_resume_gets_a_new_session_without_its_old_subscriptions() {
    let mut h = Hub::new(HubConfig { replay_frames: 2, ..HubConfig::default() });
    h.client_open("a", 0.0);
    h.client_frame("a", CONNECT, 0.0);
    h.upstream_open(1.0);
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 2.0);
    join(&mut h, "b", 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.client_frame("b", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 3.0);
    drain(&mut h);
    h.client_close("b", 4.0);
    for i in 0..3 {
        h.upstream_frame(&format!(r#"{{"msg":"added","collection":"c","id":"d{i}","fields":{{}}}}"#), 5.0);
    }
    drain(&mut h);
    // Three missed, two kept: a new session, the documents handed over.
    h.client_open("b", 6.0);
    h.client_frame("b", &resume("S~b~1", 0), 6.0);
    let out = drain(&mut h);
    assert_eq!(
        out[..3],
        [HubOutput::Accept("b".into()), send(r#"{"msg":"unsub","id":"b~s"}"#), to("b", r#"{"msg":"connected","session":"S~b~2"}"#)]
    );
    assert_eq!(out.len(), 6, "three documents: {out:?}");
    // Its call still running upstream is not sent twice; its result comes.
    h.client_frame("b", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 7.0);
    assert_eq!(drain(&mut h), vec![]);
    h.upstream_frame(r#"{"msg":"result","id":"b~1","result":1}"#, 8.0);
    assert_eq!(drain(&mut h), vec![to("b", r#"{"msg":"result","id":"1","result":1}"#)]);
}

#[test]
fn a_client_that_leaves_stops_its_subscriptions_and_loses_its_results() {
    let mut h = connected();
    join(&mut h, "b", 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.client_frame("b", r#"{"msg":"method","method":"slow","params":[],"id":"7"}"#, 3.0);
    h.client_frame("a", r#"{"msg":"sub","id":"s","name":"items","params":[1]}"#, 3.0);
    drain(&mut h);
    h.client_gone("b", 4.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"unsub","id":"b~s"}"#)]);
    h.upstream_frame(r#"{"msg":"result","id":"b~7","result":1}"#, 5.0);
    h.upstream_frame(r#"{"msg":"nosub","id":"b~s"}"#, 5.0);
    assert_eq!(drain(&mut h), vec![]);
    // An unsub for what the hub never sent is answered at once.
    h.client_frame("a", r#"{"msg":"unsub","id":"zz"}"#, 6.0);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"nosub","id":"zz"}"#)]);
    // A `disconnect` is leaving: never sent upstream.
    join(&mut h, "c", 7.0);
    h.client_frame("c", r#"{"msg":"sub","id":"t","name":"items","params":[]}"#, 7.0);
    drain(&mut h);
    h.client_frame("c", r#"{"msg":"disconnect"}"#, 8.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"unsub","id":"c~t"}"#), close("c")]);
    // The last one leaving ends the session.
    h.client_gone("a", 9.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"disconnect"}"#), HubOutput::CloseUpstream]);
    assert_eq!(h.clients(), 0);
}

#[test]
fn an_upstream_drop_closes_every_client_and_a_resumed_session_resumes_theirs() {
    let mut h = connected();
    h.client_frame("a", r#"{"msg":"sub","id":"r","name":"items","params":[]}"#, 3.0);
    h.client_frame("a", r#"{"msg":"sub","id":"u","name":"items","params":[2]}"#, 3.0);
    h.client_frame("a", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 3.0);
    h.client_frame("a", r#"{"msg":"method","method":"m","params":[],"id":"2"}"#, 3.0);
    h.upstream_frame(r#"{"msg":"ready","subs":["a~r"]}"#, 4.0);
    h.upstream_frame(r#"{"msg":"result","id":"a~1","result":1}"#, 4.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d","fields":{}}"#, 4.0);
    drain(&mut h);
    h.upstream_closed(5.0);
    // The client sees the drop; the hub tries to resume at once.
    assert_eq!(drain(&mut h), vec![close("a"), HubOutput::OpenUpstream]);
    h.client_open("a", 5.5);
    h.client_frame("a", &resume("S~a~1", 3), 5.5);
    h.upstream_open(6.0);
    // Three messages counted: ready, result, added.
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Accept("a".into()),
            send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":3}"#)
        ]
    );
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 7.0);
    assert_eq!(
        drain(&mut h),
        vec![
            send(r#"{"msg":"sub","id":"a~u","name":"items","params":[2]}"#),
            send(r#"{"msg":"method","method":"m","params":[],"id":"a~2"}"#),
            to("a", r#"{"msg":"connected","session":"S~a~1"}"#),
        ]
    );
}

#[test]
fn a_new_upstream_session_gives_every_client_a_new_one() {
    let mut h = connected();
    join(&mut h, "b", 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d","fields":{}}"#, 4.0);
    drain(&mut h);
    h.upstream_closed(5.0);
    h.upstream_open(6.0);
    h.upstream_frame(r#"{"msg":"connected","session":"T"}"#, 7.0);
    assert_eq!(
        drain(&mut h),
        vec![
            close("a"),
            close("b"),
            HubOutput::OpenUpstream,
            send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":1}"#)
        ]
    );
    // Back, asking for its old session: a new one, with no stale document.
    h.client_open("a", 8.0);
    h.client_frame("a", &resume("S~a~1", 1), 8.0);
    assert_eq!(drain(&mut h), vec![HubOutput::Accept("a".into()), to("a", r#"{"msg":"connected","session":"T~a~2"}"#)]);
}

#[test]
fn resuming_is_tried_again_with_a_growing_delay_within_its_window() {
    let mut h = connected();
    h.upstream_closed(10.0);
    assert_eq!(drain(&mut h), vec![close("a"), HubOutput::OpenUpstream]);
    h.upstream_closed(20.0);
    assert_eq!(drain(&mut h), vec![]);
    assert_eq!(h.poll_timeout(), Some(1_020.0));
    h.handle_timeout(1_020.0);
    assert_eq!(drain(&mut h), vec![HubOutput::OpenUpstream]);
    h.upstream_closed(1_030.0);
    assert_eq!(h.poll_timeout(), Some(3_030.0));
    // A client coming back does not wait for the delay.
    h.client_open("a", 1_500.0);
    assert_eq!(drain(&mut h), vec![HubOutput::Accept("a".into()), HubOutput::OpenUpstream]);
    h.upstream_open(1_600.0);
    assert_eq!(
        drain(&mut h),
        vec![send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":0}"#)]
    );
    // Past the window: the session is given up.
    h.upstream_closed(60_011.0);
    h.client_open("a", 60_012.0);
    h.upstream_open(60_013.0);
    assert_eq!(drain(&mut h).last(), Some(&send(UPSTREAM_CONNECT)));
}

#[test]
fn a_1009_close_fails_the_largest_unanswered_call_instead_of_re_sending_it() {
    let mut h = connected();
    join(&mut h, "b", 3.0);
    h.client_frame("a", r#"{"msg":"method","method":"m","params":["small"],"id":"1"}"#, 4.0);
    let big = format!(r#"{{"msg":"method","method":"m","params":["{}"],"id":"1"}}"#, "x".repeat(1000));
    h.client_frame("b", &big, 4.0);
    drain(&mut h);
    h.upstream_closed_with(1009, 5.0);
    // b's call is refused (its client fails it); a is closed as in any drop.
    assert_eq!(drain(&mut h), vec![HubOutput::RefuseClient("b".into()), close("a"), HubOutput::OpenUpstream]);
    h.upstream_open(6.0);
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 7.0);
    // The resumption re-sends a's call only.
    assert_eq!(drain(&mut h)[1..], [send(r#"{"msg":"method","method":"m","params":["small"],"id":"a~1"}"#)]);
}

#[test]
fn the_heartbeat_pings_a_silent_server_and_gives_up_on_it() {
    let mut h = connected();
    assert_eq!(h.poll_timeout(), Some(2.0 + 17_500.0));
    h.handle_timeout(100.0);
    assert_eq!(drain(&mut h), vec![]);
    h.handle_timeout(17_502.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"ping"}"#)]);
    assert_eq!(h.poll_timeout(), Some(17_502.0 + 15_000.0));
    h.handle_timeout(32_502.0);
    assert_eq!(drain(&mut h), vec![HubOutput::CloseUpstream, close("a"), HubOutput::OpenUpstream]);
    // An answer in time keeps it.
    let mut h = connected();
    h.handle_timeout(17_502.0);
    h.upstream_frame(r#"{"msg":"pong"}"#, 17_600.0);
    drain(&mut h);
    assert_eq!(h.poll_timeout(), Some(17_600.0 + 17_500.0));
}

#[test]
fn a_handshake_that_does_not_finish_in_time_gives_up_on_the_socket() {
    let mut h = Hub::new(HubConfig::default());
    h.client_open("a", 100.0);
    h.client_frame("a", CONNECT, 100.0);
    assert_eq!(h.poll_timeout(), Some(10_100.0));
    h.upstream_open(200.0);
    drain(&mut h);
    h.handle_timeout(10_099.0);
    assert_eq!(drain(&mut h), vec![]);
    // No session yet: the client's own retry opens the next socket.
    h.handle_timeout(10_100.0);
    assert_eq!(drain(&mut h), vec![HubOutput::CloseUpstream, close("a")]);
    assert_eq!(h.poll_timeout(), Some(10_100.0 + 30_000.0), "only the idle clock is left");
}

#[test]
fn a_session_with_no_client_socket_for_a_while_ends() {
    let mut h = connected();
    h.client_close("a", 5.0);
    assert_eq!(drain(&mut h), vec![]);
    // Still there a moment before (pinging, as any idle session).
    h.handle_timeout(30_004.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"ping"}"#)]);
    assert_eq!(h.poll_timeout(), Some(30_005.0));
    h.handle_timeout(30_005.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"disconnect"}"#), HubOutput::CloseUpstream, close("a")]);
    assert_eq!(h.clients(), 0);
}

#[test]
fn hostile_client_frames_get_errors_and_keys_cannot_hijack_ids() {
    let mut h = connected();
    h.client_frame("a", "not json", 3.0);
    h.client_frame("a", r#"{"msg":"sub","id":5,"name":"x"}"#, 3.0);
    assert_eq!(
        drain(&mut h),
        vec![
            to("a", r#"{"msg":"error","reason":"Bad request","offendingMessage":"not json"}"#),
            to("a", r#"{"msg":"error","reason":"Bad request","offendingMessage":"{\"msg\":\"sub\",\"id\":5,\"name\":\"x\"}"}"#),
        ]
    );
    // A key with the separator would read other clients' results.
    h.client_open("a~x", 3.0);
    assert_eq!(drain(&mut h), vec![close("a~x")]);
    // Frames of unknown clients are ignored, and a repeated open changes nothing.
    h.client_frame("zz", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 3.0);
    h.client_open("a", 4.0);
    assert_eq!(drain(&mut h), vec![]);
}

#[test]
fn an_unreadable_result_reaches_its_caller_with_its_own_id_so_the_call_fails() {
    let mut h = connected();
    join(&mut h, "b", 3.0);
    h.client_frame("b", r#"{"msg":"method","method":"big","params":[],"id":"4"}"#, 3.0);
    drain(&mut h);
    h.upstream_too_large(99_999_999, r#"{"msg":"result","id":"b~4","result":"xx…xx"}"#, 4.0);
    h.upstream_frame(r#"{"msg":"result","id":"b~4","result":tru"#, 4.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::TooLarge("a".into(), 99_999_999, r#"{"msg":"result","id":"b~4","result":"xx…xx"}"#.into()),
            HubOutput::TooLarge("b".into(), 99_999_999, r#"{"msg":"result","id":"4","result":"xx…xx"}"#.into()),
            to("a", r#"{"msg":"result","id":"b~4","result":tru"#),
            to("b", r#"{"msg":"result","id":"4","result":tru"#),
        ]
    );
    // A document may be missing now: the next drop starts a new session
    // rather than resuming this one (as one client does).
    h.upstream_closed(5.0);
    drain(&mut h);
    h.client_open("a", 6.0);
    h.upstream_open(6.0);
    assert_eq!(drain(&mut h).last(), Some(&send(UPSTREAM_CONNECT)));
}

#[test]
fn clients_subscribing_alike_share_one_subscription_on_the_server() {
    let mut h = connected();
    join(&mut h, "b", 3.0);
    join(&mut h, "c", 3.0);
    h.client_frame("a", r#"{"msg":"sub","id":"x","name":"items","params":[5]}"#, 4.0);
    h.client_frame("b", r#"{"msg":"sub","id":"y","name":"items","params":[5]}"#, 4.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"sub","id":"a~x","name":"items","params":[5]}"#)]);
    h.upstream_frame(r#"{"msg":"ready","subs":["a~x"]}"#, 5.0);
    // Every holder hears its own ready; one joining later at once.
    h.client_frame("c", r#"{"msg":"sub","id":"z","name":"items","params":[5]}"#, 6.0);
    assert_eq!(
        drain(&mut h),
        vec![
            to("a", r#"{"msg":"ready","subs":["x"]}"#),
            to("b", r#"{"msg":"ready","subs":["y"]}"#),
            to("c", r#"{"msg":"ready","subs":["z"]}"#)
        ]
    );
    // Stopped by its first holder: still served to the others.
    h.client_frame("a", r#"{"msg":"unsub","id":"x"}"#, 7.0);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"nosub","id":"x"}"#)]);
    h.client_gone("b", 8.0);
    assert_eq!(drain(&mut h), vec![]);
    // The last holder stops it on the server, and hears its nosub.
    h.client_frame("c", r#"{"msg":"unsub","id":"z"}"#, 9.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"unsub","id":"a~x"}"#)]);
    h.upstream_frame(r#"{"msg":"nosub","id":"a~x"}"#, 10.0);
    assert_eq!(drain(&mut h), vec![to("c", r#"{"msg":"nosub","id":"z"}"#)]);
    // Ended by the server with an error: every holder hears it.
    h.client_frame("a", r#"{"msg":"sub","id":"p","name":"failing","params":[]}"#, 11.0);
    h.client_frame("c", r#"{"msg":"sub","id":"q","name":"failing","params":[]}"#, 11.0);
    drain(&mut h);
    h.upstream_frame(r#"{"msg":"nosub","id":"a~p","error":{"error":500}}"#, 12.0);
    assert_eq!(
        drain(&mut h),
        vec![to("a", r#"{"msg":"nosub","id":"p","error":{"error":500}}"#), to("c", r#"{"msg":"nosub","id":"q","error":{"error":500}}"#)]
    );
}

fn record(session: &str, received: u64, subs: &[&str]) -> crate::protocol::durable::SessionRecord {
    crate::protocol::durable::SessionRecord {
        session: session.into(),
        received,
        subs: subs.iter().map(|s| s.to_string()).collect(),
        at: 0.0,
    }
}

#[test]
fn a_hub_publishes_what_the_next_one_needs_and_the_next_takes_the_session_over() {
    // The first hub: client `a` subscribed and has a call running.
    let mut first = connected();
    assert!(first.record_changed(), "a new session is worth publishing");
    first.client_frame("a", r#"{"msg":"sub","id":"s1","name":"items","params":[]}"#, 3.0);
    first.client_frame("a", r#"{"msg":"method","id":"m1","method":"inc","params":["k"]}"#, 3.0);
    first.upstream_frame(r#"{"msg":"ready","subs":["a~s1"]}"#, 4.0);
    assert!(first.record_changed());
    let published = first.session_record().unwrap();
    assert_eq!((published.session.as_str(), published.received, published.subs.clone()), ("S", 1, vec!["a~s1".to_string()]));
    assert!(!first.record_changed(), "only the count moved since");

    // The first hub is gone with its tab. The next one (its tab: `b`)
    // takes the session over; `a` comes back to it.
    let mut h = Hub::new(HubConfig::default());
    h.adopt(published, "b");
    h.client_open("a", 10.0);
    h.client_frame("a", &resume("S~a~1", 3), 10.0);
    drain(&mut h);
    h.upstream_open(11.0);
    assert_eq!(
        drain(&mut h),
        vec![send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":1}"#)]
    );
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 12.0);
    let out = drain(&mut h);
    assert_eq!(out[0], send(r#"{"msg":"unsub","id":"a~s1"}"#), "the earlier hub's subscription stops first: {out:?}");
    assert!(
        out.iter()
            .any(|o| matches!(o, HubOutput::ToClient(k, t) if k == "a" && t.starts_with(r#"{"msg":"connected""#) && !t.contains("S~a~1"))),
        "a new session for `a`: {out:?}"
    );
    // The replay: the earlier subscription's data (dropped), then the
    // call's answers: `a` is back, so they go to it.
    h.upstream_frame(r#"{"msg":"changed","collection":"items","id":"i1","fields":{"n":2}}"#, 13.0);
    h.upstream_frame(r#"{"msg":"result","id":"a~m1","result":1}"#, 13.0);
    h.upstream_frame(r#"{"msg":"updated","methods":["a~m1"]}"#, 13.0);
    h.upstream_frame(r#"{"msg":"removed","collection":"items","id":"i1"}"#, 13.0);
    h.upstream_frame(r#"{"msg":"nosub","id":"a~s1"}"#, 13.0);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"result","id":"m1","result":1}"#), to("a", r#"{"msg":"updated","methods":["m1"]}"#)]);
    // Its re-sent call is not sent again; its subscription, made again, is
    // a new one upstream (its own id, tagged), and its data flows.
    h.client_frame("a", r#"{"msg":"method","id":"m1","method":"inc","params":["k"]}"#, 14.0);
    h.client_frame("a", r#"{"msg":"sub","id":"s1","name":"items","params":[]}"#, 14.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"sub","id":"a~s1~b","name":"items","params":[]}"#)]);
    h.upstream_frame(r#"{"msg":"added","collection":"items","id":"i2","fields":{}}"#, 15.0);
    h.upstream_frame(r#"{"msg":"ready","subs":["a~s1~b"]}"#, 15.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Broadcast(r#"{"msg":"added","collection":"items","id":"i2","fields":{}}"#.into()),
            to("a", r#"{"msg":"ready","subs":["s1"]}"#)
        ]
    );
}

#[test]
fn answers_for_a_client_not_back_yet_wait_for_it_in_a_session_taken_over() {
    let mut h = Hub::new(HubConfig::default());
    h.adopt(record("S", 7, &[]), "b");
    h.client_open("b", 0.0);
    h.client_frame("b", CONNECT, 0.0);
    h.upstream_open(1.0);
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 2.0);
    drain(&mut h);
    // `a`'s call, answered before `a` found the new hub.
    h.upstream_frame(r#"{"msg":"result","id":"a~m1","result":"r"}"#, 3.0);
    h.upstream_frame(r#"{"msg":"updated","methods":["a~m1"]}"#, 3.0);
    assert_eq!(drain(&mut h), vec![], "no one to tell yet");
    h.client_open("a", 4.0);
    h.client_frame("a", CONNECT, 4.0);
    let out = drain(&mut h);
    assert!(
        out.ends_with(&[to("a", r#"{"msg":"result","id":"m1","result":"r"}"#), to("a", r#"{"msg":"updated","methods":["m1"]}"#)]),
        "{out:?}"
    );
    // Its re-send, after its new session: answered already, never upstream.
    h.client_frame("a", r#"{"msg":"method","id":"m1","method":"inc","params":[]}"#, 5.0);
    assert_eq!(drain(&mut h), vec![]);
}

#[test]
fn a_server_that_does_not_resume_the_earlier_hubs_session_gives_a_plain_new_one() {
    let mut h = Hub::new(HubConfig::default());
    h.adopt(record("S", 7, &["a~s1"]), "b");
    h.client_open("a", 0.0);
    h.client_frame("a", CONNECT, 0.0);
    h.upstream_open(1.0);
    drain(&mut h);
    h.upstream_frame(r#"{"msg":"connected","session":"T"}"#, 2.0);
    h.client_frame("a", r#"{"msg":"sub","id":"s1","name":"items","params":[]}"#, 2.0);
    let out = drain(&mut h);
    assert!(!out.iter().any(|o| matches!(o, HubOutput::Send(t) if t.contains("unsub"))), "no unsub on a new session: {out:?}");
    assert_eq!(out.last(), Some(&send(r#"{"msg":"sub","id":"a~s1~b","name":"items","params":[]}"#)));
    h.upstream_frame(r#"{"msg":"added","collection":"items","id":"i1","fields":{}}"#, 3.0);
    h.upstream_frame(r#"{"msg":"ready","subs":["a~s1~b"]}"#, 3.0);
    assert_eq!(drain(&mut h).last(), Some(&to("a", r#"{"msg":"ready","subs":["s1"]}"#)));
    assert_eq!(h.session_record().map(|r| r.session), Some("T".into()));
}
