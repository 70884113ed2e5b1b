//! Rooms, in process and in both modes (one server; two cluster nodes sharing a Redis):
//! every row of the contract's "Rooms" table, mixed destinations, disconnects, shutdown,
//! the `*` form and folded names. Members of one room sit on different nodes.
//!
//! A `/who` reply is a barrier for its asker's own lines and for lines from the same
//! node; a line from another node is awaited (`expect`), or found before a later line of
//! the same sender (`lines_until`): one sender's lines keep their order in both modes.

mod common;

use chat_proto::{MessageId, Scope, ServerLine};
use chat_server::{Config, Presence};
use common::{Chat, Mode, both_modes};

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

both_modes!(join_tells_every_member_then_lists_the_names);
async fn join_tells_every_member_then_lists_the_names(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut bob = chat.member_on(0, "bob", "#rust").await;
    let mut alice = chat.login_on(1, "alice").await;
    alice.send("/join #rust").await;
    alice.expect("joined #rust alice").await;
    alice.expect("names #rust alice,bob").await;
    alice.expect("roles #rust @bob").await;
    bob.expect("joined alice").await;
    bob.expect("joined #rust alice").await;
    alice.send("/join #rust").await;
    alice.expect("error: already a member of #rust").await;
    alice.send("bob: done").await;
    assert_eq!(
        bob.lines_until("from alice: done").await,
        Vec::<String>::new(),
        "a refused /join tells nobody"
    );
    chat.shutdown().await;
}

both_modes!(part_tells_every_member_including_the_one_leaving);
async fn part_tells_every_member_including_the_one_leaving(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.expect("joined bob").await;
    alice.expect("joined #rust bob").await;
    alice.send("/part #rust").await;
    alice.expect("left #rust alice").await;
    alice.send("/part #rust").await;
    alice.expect("error: not a member of #rust").await;
    alice.send("#rust: still there?").await;
    alice.expect("error: not a member of #rust").await;
    alice.send("bob: done").await;
    assert_eq!(
        bob.lines_until("from alice: done").await,
        ["left #rust alice"],
        "told of the part once, and nothing relayed"
    );
    chat.shutdown().await;
}

both_modes!(names_and_rooms_are_sorted_bytewise);
async fn names_and_rooms_are_sorted_bytewise(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut carol = chat.login_on(0, "carol").await;
    carol.send("/rooms").await;
    carol.expect("rooms").await;
    carol.send("/names #rust").await;
    carol.expect("error: no such room: #rust").await;
    let _b = chat.member_on(1, "bob", "#rust").await;
    let _a = chat.member_on(0, "Zed", "#rust").await;
    let _c = chat.member_on(1, "alice", "#Go").await;
    // Alice's is the last login carol is told of.
    carol.skip_until("joined alice").await;
    carol.send("/names #rust").await;
    carol.expect("names #rust Zed,bob").await;
    carol.expect("roles #rust @bob").await;
    carol.send("/rooms").await;
    carol.expect("rooms #Go=1,#rust=2").await;
    chat.shutdown().await;
}

both_modes!(a_room_message_reaches_the_other_members_with_an_id);
async fn a_room_message_reaches_the_other_members_with_an_id(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.expect("joined bob").await;
    alice.expect("joined #rust bob").await;
    let mut carol = chat.login_on(1, "carol").await;
    alice.expect("joined carol").await;
    bob.expect("joined carol").await;
    alice.send("#rust: hello: rustaceans").await;
    let line = bob.recv().await;
    assert!(
        line.starts_with("from alice #rust ") && line.ends_with(": hello: rustaceans"),
        "{line:?}"
    );
    room_id(&line);
    // Bob answers once he has it: a copy for alice or carol would come before.
    bob.send("alice,carol: seen").await;
    assert_eq!(
        alice.lines_until("from bob: seen").await,
        Vec::<String>::new(),
        "the sender does not get its own room message"
    );
    assert_eq!(
        carol.lines_until("from bob: seen").await,
        Vec::<String>::new(),
        "not a member"
    );
    chat.shutdown().await;
}

both_modes!(mixed_destinations_are_each_served_once_and_errors_come_last);
async fn mixed_destinations_are_each_served_once_and_errors_come_last(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    alice.send("/join #rust").await;
    alice.send("/join #go").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    let mut gopher = chat.member_on(0, "gopher", "#go").await;
    alice.skip_until("joined #go gopher").await;
    alice.send("bob,#rust,#go,ghost,#rust,#elm,bob: hi").await;
    let (before, _) = alice.sync().await;
    assert_eq!(
        before,
        ["error: no such user: ghost", "error: not a member of #elm"]
    );
    // Alice's next line comes after every copy of this one.
    alice.send("bob,gopher: end").await;
    let messages = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.starts_with("from "))
            .collect()
    };
    let got = messages(bob.lines_until("from alice: end").await);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], "from alice: hi");
    assert!(got[1].starts_with("from alice #rust "), "{got:?}");
    let got = messages(gopher.lines_until("from alice: end").await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("from alice #go "), "{got:?}");
    assert!(room_id(&got[0]) > MessageId::new(0).expect("an id"));
    chat.shutdown().await;
}

both_modes!(a_disconnect_leaves_every_room_and_shutdown_sends_no_left);
async fn a_disconnect_leaves_every_room_and_shutdown_sends_no_left(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    alice.send("/join #go").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    bob.send("/join #go").await;
    alice.skip_until("joined #go bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    alice.expect("joined carol").await;
    bob.shutdown_write().await;
    bob.recv_until_eof().await;
    assert_eq!(
        alice.lines_until("left bob").await,
        ["left #go bob", "left #rust bob"]
    );
    assert_eq!(
        carol.lines_until("left bob").await,
        Vec::<String>::new(),
        "not in the rooms: only the v1 line"
    );
    chat.shutdown().await;
    alice.expect("bye: server shutting down").await;
    alice.expect_eof().await;
}

both_modes!(every_member_sees_one_room_in_one_order_with_increasing_ids);
async fn every_member_sees_one_room_in_one_order_with_increasing_ids(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut watchers = vec![
        chat.member_on(0, "w1", "#r").await,
        chat.member_on(1, "w2", "#r").await,
    ];
    let mut senders = Vec::new();
    for (node, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
        senders.push(chat.member_on(node % 2, name, "#r").await);
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
    let mut senders = Vec::new();
    for task in tasks {
        senders.push(task.await.expect("a sender"));
    }
    let mut seen = Vec::new();
    for watcher in &mut watchers {
        // Every message was accepted; a watcher on another node may still be reading.
        let mut messages = Vec::new();
        while messages.len() < 600 {
            let line = watcher.recv().await;
            if line.starts_with("from ") {
                messages.push(line);
            }
        }
        let ids: Vec<MessageId> = messages.iter().map(|l| room_id(l)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
        for n in 0..3 {
            let own: Vec<&String> = messages
                .iter()
                .filter(|l| l.contains(&format!(": {n} ")))
                .collect();
            assert_eq!(own.len(), 200);
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
    drop(senders);
    chat.shutdown().await;
}

both_modes!(star_messages_say_so_and_actions_are_relayed_as_text);
async fn star_messages_say_so_and_actions_are_relayed_as_text(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.send("*: hello all").await;
    alice.send("bob: /me waves").await;
    alice.sync().await;
    bob.expect("from alice *: hello all").await;
    bob.expect("from alice: /me waves").await;
    chat.shutdown().await;
}

both_modes!(names_are_unique_under_case_and_width_folding);
async fn names_are_unique_under_case_and_width_folding(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut bob = chat.login_on(0, "bob").await;
    for taken in ["Bob", "BOB", "\u{ff42}\u{ff4f}\u{ff42}"] {
        let mut twin = chat.connect_on(1).await;
        twin.send(taken).await;
        twin.expect(&format!("error: name already in use: {taken}"))
            .await;
        twin.expect_eof().await;
    }
    let mut alice = chat.login_on(1, "alice").await;
    alice.send("BOB: found you").await;
    alice.sync().await;
    bob.expect("joined alice").await;
    bob.expect("from alice: found you").await;
    bob.shutdown_write().await;
    bob.recv_until_eof().await;
    let (_, names) = alice.sync().await;
    assert_eq!(names, ["alice"]);
    let _big = chat.login_on(1, "Bob").await;
    chat.shutdown().await;
}

both_modes!(every_refused_v2_line_gets_its_reason_and_the_connection_stays);
async fn every_refused_v2_line_gets_its_reason_and_the_connection_stays(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member("alice", "#rust").await;
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
            "error: usage: /history <#room|@name> [<n> | after <id> | before <id> [n]]",
        ),
        (
            "/history #rust since 3",
            "error: usage: /history <#room|@name> [<n> | after <id> | before <id> [n]]",
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
    chat.shutdown().await;
}

both_modes!(with_presence_rooms_only_room_members_hear_of_arrivals_and_departures);
async fn with_presence_rooms_only_room_members_hear_of_arrivals_and_departures(mode: Mode) {
    let config = Config {
        presence: Presence::Rooms,
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut carol = chat.login_on(1, "carol").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    // A v1 `joined` for carol or bob would come first.
    alice.expect("joined #rust bob").await;
    let (before, users) = alice.sync().await;
    assert_eq!(before, Vec::<String>::new(), "no v1 joined line");
    assert_eq!(
        users,
        ["alice", "bob", "carol"],
        "/who still lists everyone"
    );
    bob.shutdown_write().await;
    bob.recv_until_eof().await;
    // Carol's server sends this after everything of bob's departure.
    carol.send("alice: done").await;
    assert_eq!(
        alice.lines_until("from carol: done").await,
        ["left #rust bob"],
        "no v1 left line"
    );
    let (_, users) = alice.sync().await;
    assert_eq!(users, ["alice", "carol"]);
    let (before, _) = carol.sync().await;
    assert!(before.is_empty(), "in no room: told nothing: {before:?}");
    chat.shutdown().await;
}
