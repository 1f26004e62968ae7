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

/// A hub with client `a` connected to upstream session `S`.
fn connected() -> Hub {
    let mut h = Hub::new(HubConfig::default());
    h.client_open("a", 0.0);
    assert_eq!(drain(&mut h), vec![HubOutput::Accept("a".into()), HubOutput::OpenUpstream]);
    h.client_frame("a", r#"{"msg":"connect","version":"1","support":["1"]}"#, 0.0);
    assert_eq!(drain(&mut h), vec![]);
    h.upstream_open(1.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#)]);
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 2.0);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"connected","session":"S~a~1"}"#)]);
    h
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

    // A second client: no second socket; its `connected`, then the
    // session's documents.
    h.client_open("b", 5.0);
    h.client_frame("b", r#"{"msg":"connect","version":"1","support":["1"]}"#, 5.0);
    h.upstream_frame(r#"{"msg":"changed","collection":"items","id":"i1","fields":{"m":2},"cleared":["n"]}"#, 5.0);
    h.client_open("c", 5.0);
    h.client_frame("c", r#"{"msg":"connect","version":"1","support":["1"]}"#, 5.0);
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
fn a_client_that_goes_stops_its_subscriptions_and_loses_its_results() {
    let mut h = connected();
    h.client_open("b", 3.0);
    h.client_frame("b", r#"{"msg":"connect","version":"1","support":["1"]}"#, 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.client_frame("b", r#"{"msg":"method","method":"slow","params":[],"id":"7"}"#, 3.0);
    h.client_frame("a", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    drain(&mut h);
    h.client_close("b", 4.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"unsub","id":"b~s"}"#)]);
    h.upstream_frame(r#"{"msg":"result","id":"b~7","result":1}"#, 5.0);
    h.upstream_frame(r#"{"msg":"nosub","id":"b~s"}"#, 5.0);
    assert_eq!(drain(&mut h), vec![]);
    // An unsub for what the hub never sent is answered at once.
    h.client_frame("a", r#"{"msg":"unsub","id":"zz"}"#, 6.0);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"nosub","id":"zz"}"#)]);
}

#[test]
fn a_resumed_upstream_session_is_unseen_by_clients_and_re_sends_what_may_be_unread() {
    let mut h = connected();
    h.client_frame("a", r#"{"msg":"sub","id":"r","name":"items","params":[]}"#, 3.0);
    h.client_frame("a", r#"{"msg":"sub","id":"u","name":"items","params":[]}"#, 3.0);
    h.client_frame("a", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 3.0);
    h.client_frame("a", r#"{"msg":"method","method":"m","params":[],"id":"2"}"#, 3.0);
    h.upstream_frame(r#"{"msg":"ready","subs":["a~r"]}"#, 4.0);
    h.upstream_frame(r#"{"msg":"result","id":"a~1","result":1}"#, 4.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d","fields":{}}"#, 4.0);
    drain(&mut h);
    h.upstream_closed(5.0);
    assert_eq!(drain(&mut h), vec![HubOutput::OpenUpstream]);
    // Sent while the socket is down: held.
    h.client_frame("a", r#"{"msg":"method","method":"m","params":[],"id":"3"}"#, 5.5);
    h.client_frame("a", r#"{"msg":"ping","id":"k"}"#, 5.5);
    assert_eq!(drain(&mut h), vec![to("a", r#"{"msg":"pong","id":"k"}"#)]);
    h.upstream_open(6.0);
    // Three messages counted: ready, result, added.
    assert_eq!(
        drain(&mut h),
        vec![send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":3}"#)]
    );
    h.upstream_frame(r#"{"msg":"connected","session":"S"}"#, 7.0);
    assert_eq!(
        drain(&mut h),
        vec![
            send(r#"{"msg":"sub","id":"a~u","name":"items","params":[]}"#),
            send(r#"{"msg":"method","method":"m","params":[],"id":"a~2"}"#),
            send(r#"{"msg":"method","method":"m","params":[],"id":"a~3"}"#),
        ]
    );
}

#[test]
fn a_new_upstream_session_where_one_was_to_be_resumed_closes_every_client() {
    let mut h = connected();
    h.client_open("b", 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d","fields":{}}"#, 4.0);
    drain(&mut h);
    h.upstream_closed(5.0);
    h.upstream_open(6.0);
    h.upstream_frame(r#"{"msg":"connected","session":"T"}"#, 7.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::OpenUpstream,
            send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":1}"#),
            HubOutput::CloseClient("a".into()),
            HubOutput::CloseClient("b".into())
        ]
    );
    assert_eq!(h.clients(), 0);
    // The clients come back to the new session, with no stale document.
    h.client_open("a2", 8.0);
    h.client_frame("a2", r#"{"msg":"connect","version":"1","support":["1"]}"#, 8.0);
    assert_eq!(drain(&mut h), vec![HubOutput::Accept("a2".into()), to("a2", r#"{"msg":"connected","session":"T~a2~1"}"#)]);
}

#[test]
fn a_resumption_that_cannot_open_closes_every_client_and_the_next_one_starts_fresh() {
    let mut h = connected();
    h.upstream_closed(5.0);
    assert_eq!(drain(&mut h), vec![HubOutput::OpenUpstream]);
    h.upstream_closed(6.0);
    assert_eq!(drain(&mut h), vec![HubOutput::CloseClient("a".into())]);
    h.client_open("a", 7.0);
    h.client_frame("a", r#"{"msg":"connect","version":"1","support":["1"]}"#, 7.0);
    h.upstream_open(8.0);
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Accept("a".into()),
            HubOutput::OpenUpstream,
            send(r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#)
        ]
    );
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
    assert_eq!(drain(&mut h), vec![HubOutput::CloseUpstream, HubOutput::OpenUpstream]);
    // An answer in time keeps it.
    let mut h = connected();
    h.handle_timeout(17_502.0);
    h.upstream_frame(r#"{"msg":"pong"}"#, 17_600.0);
    drain(&mut h);
    assert_eq!(h.poll_timeout(), Some(17_600.0 + 17_500.0));
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
    assert_eq!(drain(&mut h), vec![HubOutput::CloseClient("a~x".into())]);
    // Frames of unknown clients are ignored.
    h.client_frame("zz", r#"{"msg":"method","method":"m","params":[],"id":"1"}"#, 3.0);
    assert_eq!(drain(&mut h), vec![]);
}

#[test]
fn the_last_client_going_closes_the_socket_and_the_next_opens_a_new_one() {
    let mut h = connected();
    h.client_frame("a", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    h.upstream_frame(r#"{"msg":"added","collection":"c","id":"d","fields":{}}"#, 4.0);
    drain(&mut h);
    h.client_close("a", 5.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"disconnect"}"#), HubOutput::CloseUpstream]);
    assert!(!h.connected());
    h.client_open("b", 6.0);
    h.client_frame("b", r#"{"msg":"connect","version":"1","support":["1"]}"#, 6.0);
    h.upstream_open(7.0);
    h.upstream_frame(r#"{"msg":"connected","session":"T"}"#, 8.0);
    // A new session, and no document of the old one.
    assert_eq!(
        drain(&mut h),
        vec![
            HubOutput::Accept("b".into()),
            HubOutput::OpenUpstream,
            send(r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#),
            to("b", r#"{"msg":"connected","session":"T~b~1"}"#)
        ]
    );
}

#[test]
fn an_unreadable_result_reaches_its_caller_with_its_own_id_so_the_call_fails() {
    let mut h = connected();
    h.client_open("b", 3.0);
    h.client_frame("b", r#"{"msg":"connect","version":"1","support":["1"]}"#, 3.0);
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
    // Both counted, for a resumption.
    h.upstream_closed(5.0);
    h.upstream_open(6.0);
    assert_eq!(
        drain(&mut h).last(),
        Some(&send(r#"{"msg":"connect","session":"S","version":"1","support":["1","pre2","pre1"],"receivedCount":2}"#))
    );
}

#[test]
fn a_handshake_that_does_not_finish_in_time_gives_up_on_the_socket() {
    let mut h = Hub::new(HubConfig::default());
    h.client_open("a", 100.0);
    h.client_frame("a", r#"{"msg":"connect","version":"1","support":["1"]}"#, 100.0);
    assert_eq!(h.poll_timeout(), Some(10_100.0));
    h.upstream_open(200.0);
    drain(&mut h);
    h.handle_timeout(10_099.0);
    assert_eq!(drain(&mut h), vec![]);
    // No session yet: the client starts over (its own retry opens the next).
    h.handle_timeout(10_100.0);
    assert_eq!(drain(&mut h), vec![HubOutput::CloseUpstream, HubOutput::CloseClient("a".into())]);
    assert_eq!(h.poll_timeout(), None);
}

#[test]
fn a_client_disconnecting_ends_only_its_part_of_the_session() {
    let mut h = connected();
    h.client_open("b", 3.0);
    h.client_frame("b", r#"{"msg":"connect","version":"1","support":["1"]}"#, 3.0);
    h.client_frame("b", r#"{"msg":"sub","id":"s","name":"items","params":[]}"#, 3.0);
    drain(&mut h);
    h.client_frame("b", r#"{"msg":"disconnect"}"#, 4.0);
    assert_eq!(drain(&mut h), vec![send(r#"{"msg":"unsub","id":"b~s"}"#), HubOutput::CloseClient("b".into())]);
    assert_eq!(h.clients(), 1);
    // A repeated open of a known client changes nothing.
    h.client_open("a", 5.0);
    assert_eq!(drain(&mut h), vec![]);
}
