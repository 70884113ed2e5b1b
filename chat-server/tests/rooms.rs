//! Rooms, in process: every row of the contract's "Rooms" table, mixed destinations,
//! disconnects, shutdown, the `*` form and folded names.

mod common;

use chat_proto::{MessageId, Scope, ServerLine};
use chat_server::{Config, Presence};
use common::start;

/// The id of a room `from` line; panics on any other line.
fn room_id(line: &str) -> MessageId {
    match line.parse::<ServerLine>() {
        Ok(ServerLine::From {
            scope: Scope::Room { id, .. },
            ..
        }) => id,
        other => panic!("not a room message: {line:?} ({other:?})"),
    }
}

#[tokio::test]
async fn join_tells_every_member_then_lists_the_names() {
    let server = start(Config::default()).await;
    let mut bob = server.member("bob", "#rust").await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.expect("joined #rust alice").await;
    alice.expect("names #rust alice,bob").await;
    let (before, _) = bob.sync().await;
    assert_eq!(before, ["joined alice", "joined #rust alice"]);
    alice.send("/join #rust").await;
    alice.expect("error: already a member of #rust").await;
    server.shutdown().await;
}

#[tokio::test]
async fn part_tells_every_member_including_the_one_leaving() {
    let server = start(Config::default()).await;
    let mut alice = server.member("alice", "#rust").await;
    let mut bob = server.member("bob", "#rust").await;
    alice.send("/part #rust").await;
    alice.expect("joined bob").await;
    alice.expect("joined #rust bob").await;
    alice.expect("left #rust alice").await;
    let (before, _) = bob.sync().await;
    assert_eq!(before, ["left #rust alice"]);
    alice.send("/part #rust").await;
    alice.expect("error: not a member of #rust").await;
    alice.send("#rust: still there?").await;
    alice.expect("error: not a member of #rust").await;
    let (before, _) = bob.sync().await;
    assert!(before.is_empty(), "nothing relayed: {before:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn names_and_rooms_are_sorted_bytewise() {
    let server = start(Config::default()).await;
    let mut carol = server.login("carol").await;
    carol.send("/rooms").await;
    carol.expect("rooms").await;
    carol.send("/names #rust").await;
    carol.expect("error: no such room: #rust").await;
    let _b = server.member("bob", "#rust").await;
    let _a = server.member("Zed", "#rust").await;
    let _c = server.member("alice", "#Go").await;
    let (_, _) = carol.sync().await;
    carol.send("/names #rust").await;
    carol.expect("names #rust Zed,bob").await;
    carol.send("/rooms").await;
    carol.expect("rooms #Go=1,#rust=2").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_room_message_reaches_the_other_members_with_an_id() {
    let server = start(Config::default()).await;
    let mut alice = server.member("alice", "#rust").await;
    let mut bob = server.member("bob", "#rust").await;
    let mut carol = server.login("carol").await;
    alice.send("#rust: hello: rustaceans").await;
    let (before, _) = alice.sync().await;
    assert_eq!(
        before,
        ["joined bob", "joined #rust bob", "joined carol"],
        "the sender does not get its own room message"
    );
    bob.expect("joined carol").await;
    let line = bob.recv().await;
    assert!(
        line.starts_with("from alice #rust ") && line.ends_with(": hello: rustaceans"),
        "{line:?}"
    );
    room_id(&line);
    let (before, _) = carol.sync().await;
    assert!(before.is_empty(), "not a member: {before:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn mixed_destinations_are_each_served_once_and_errors_come_last() {
    let server = start(Config::default()).await;
    let mut alice = server.login("alice").await;
    alice.send("/join #rust").await;
    alice.send("/join #go").await;
    let mut bob = server.member("bob", "#rust").await;
    let mut gopher = server.member("gopher", "#go").await;
    alice.send("bob,#rust,#go,ghost,#rust,#elm,bob: hi").await;
    let (before, _) = alice.sync().await;
    let errors: Vec<_> = before.iter().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        errors,
        ["error: no such user: ghost", "error: not a member of #elm"]
    );
    assert_eq!(
        before.last().map(String::as_str),
        Some("error: not a member of #elm")
    );
    let messages = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.starts_with("from "))
            .collect()
    };
    let got = messages(bob.sync().await.0);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], "from alice: hi");
    assert!(got[1].starts_with("from alice #rust "), "{got:?}");
    let got = messages(gopher.sync().await.0);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("from alice #go "), "{got:?}");
    assert!(room_id(&got[0]) > MessageId::new(0).expect("an id"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_disconnect_leaves_every_room_and_shutdown_sends_no_left() {
    let server = start(Config::default()).await;
    let mut alice = server.member("alice", "#rust").await;
    alice.send("/join #go").await;
    let mut bob = server.member("bob", "#rust").await;
    bob.send("/join #go").await;
    let mut carol = server.login("carol").await;
    bob.shutdown_write().await;
    bob.recv_until_eof().await;
    let (before, _) = alice.sync().await;
    assert_eq!(
        before[before.len() - 3..],
        ["left #go bob", "left #rust bob", "left bob"]
    );
    let (before, _) = carol.sync().await;
    assert_eq!(before, ["left bob"], "not in the rooms: only the v1 line");
    server.shutdown().await;
    alice.expect("bye: server shutting down").await;
    alice.expect_eof().await;
}

#[tokio::test]
async fn every_member_sees_one_room_in_one_order_with_increasing_ids() {
    let server = start(Config::default()).await;
    let mut watchers = vec![
        server.member("w1", "#r").await,
        server.member("w2", "#r").await,
    ];
    let mut senders = Vec::new();
    for name in ["s1", "s2", "s3"] {
        senders.push(server.member(name, "#r").await);
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(n, mut sender)| {
            tokio::spawn(async move {
                for i in 0..200 {
                    sender.send(&format!("#r: {n} {i}")).await;
                }
                sender.sync().await;
                sender
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a sender");
    }
    let mut seen = Vec::new();
    for watcher in &mut watchers {
        let (before, _) = watcher.sync().await;
        let messages: Vec<String> = before
            .into_iter()
            .filter(|l| l.starts_with("from "))
            .collect();
        assert_eq!(messages.len(), 600);
        let ids: Vec<MessageId> = messages.iter().map(|l| room_id(l)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
        for n in 0..3 {
            let own: Vec<&String> = messages
                .iter()
                .filter(|l| l.contains(&format!(": {n} ")))
                .collect();
            let order: Vec<String> = (0..200).map(|i| format!(": {n} {i}")).collect();
            assert!(
                own.iter()
                    .zip(&order)
                    .all(|(l, want)| l.ends_with(want.as_str())),
                "one sender's lines arrive in order"
            );
        }
        seen.push(messages);
    }
    assert_eq!(seen[0], seen[1], "every member sees the same order and ids");
    server.shutdown().await;
}

#[tokio::test]
async fn star_messages_say_so_and_actions_are_relayed_as_text() {
    let server = start(Config::default()).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.send("*: hello all").await;
    alice.send("bob: /me waves").await;
    alice.sync().await;
    bob.expect("from alice *: hello all").await;
    bob.expect("from alice: /me waves").await;
    server.shutdown().await;
}

#[tokio::test]
async fn names_are_unique_under_case_and_width_folding() {
    let server = start(Config::default()).await;
    let mut bob = server.login("bob").await;
    for taken in ["Bob", "BOB", "\u{ff42}\u{ff4f}\u{ff42}"] {
        let mut twin = chat_tests::LineClient::connect(server.addr).await;
        twin.send(taken).await;
        twin.expect(&format!("error: name already in use: {taken}"))
            .await;
        twin.expect_eof().await;
    }
    let mut alice = server.login("alice").await;
    alice.send("BOB: found you").await;
    alice.sync().await;
    bob.expect("joined alice").await;
    bob.expect("from alice: found you").await;
    bob.shutdown_write().await;
    bob.recv_until_eof().await;
    let (_, names) = alice.sync().await;
    assert_eq!(names, ["alice"]);
    let _big = server.login("Bob").await;
    server.shutdown().await;
}

#[tokio::test]
async fn every_refused_v2_line_gets_its_reason_and_the_connection_stays() {
    let server = start(Config::default()).await;
    let mut alice = server.member("alice", "#rust").await;
    let cases = [
        ("/join", "error: usage: /join <#room>"),
        ("/join #a #b", "error: usage: /join <#room>"),
        ("/join rust", "error: invalid room \"rust\""),
        ("/join #rust", "error: already a member of #rust"),
        ("/part", "error: usage: /part <#room>"),
        ("/part #go", "error: not a member of #go"),
        ("/names", "error: usage: /names <#room>"),
        ("/names #go", "error: no such room: #go"),
        ("/rooms now", "error: usage: /rooms"),
        (
            "/history",
            "error: usage: /history <#room|@name> [<n> | after <id>]",
        ),
        (
            "/history #rust before 3",
            "error: usage: /history <#room|@name> [<n> | after <id>]",
        ),
        (
            "/history rust",
            "error: invalid conversation \"rust\" (expected #room or @name)",
        ),
        (
            "/history #rust 1001",
            "error: history count must be 1 to 1000, not \"1001\"",
        ),
        (
            "/history #rust after 12345678901234567890",
            "error: invalid message id \"12345678901234567890\"",
        ),
        ("#go: hi", "error: not a member of #go"),
        ("#go,#elm,#go: hi", "error: not a member of #go,#elm"),
        ("#a b: hi", "error: invalid destination \"#a b\""),
        ("/JOIN #rust", "error: unknown command \"/JOIN\""),
    ];
    for (line, reply) in cases {
        alice.send(line).await;
        assert_eq!(alice.recv().await, reply, "{line:?}");
    }
    let (before, names) = alice.sync().await;
    assert!(before.is_empty());
    assert_eq!(names, ["alice"]);
    server.shutdown().await;
}

#[tokio::test]
async fn with_presence_rooms_only_room_members_hear_of_arrivals_and_departures() {
    let server = start(Config {
        presence: Presence::Rooms,
        ..Config::default()
    })
    .await;
    let mut alice = server.member("alice", "#rust").await;
    let mut carol = server.login("carol").await;
    let mut bob = server.member("bob", "#rust").await;
    let (before, users) = alice.sync().await;
    assert_eq!(before, ["joined #rust bob"], "no v1 joined line");
    assert_eq!(
        users,
        ["alice", "bob", "carol"],
        "/who still lists everyone"
    );
    bob.shutdown_write().await;
    bob.recv_until_eof().await;
    let (before, users) = alice.sync().await;
    assert_eq!(before, ["left #rust bob"], "no v1 left line");
    assert_eq!(users, ["alice", "carol"]);
    let (before, _) = carol.sync().await;
    assert!(before.is_empty(), "in no room: told nothing: {before:?}");
    server.shutdown().await;
}
