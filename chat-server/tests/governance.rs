//! Rooms people govern (protocol v3, "Room roles", "Registered rooms", "Server
//! operators"): every row of the contract's tables, each refusal, in process and in both
//! modes. Members sit on different nodes in a cluster.
//!
//! Barriers: a `/who` reply orders the asker's own lines; a line from another node is
//! awaited with `expect`, or found before a later line of the same sender.

mod common;

use chat_proto::ServerLine;
use chat_server::Config;
use common::{Chat, Mode, both_modes};

/// Asserts `line` is an `error:` line.
#[track_caller]
fn assert_error(line: &str) {
    assert!(
        line.starts_with("error: "),
        "expected an error, got {line:?}"
    );
}

/// A client of `chat` on `node` registered as `name` (password `secret-password`),
/// logged in again with the password so it counts as its account.
async fn account(chat: &Chat, node: usize, name: &str) -> chat_tests::LineClient {
    let mut first = chat.login_on(node, name).await;
    first.send("/register secret-password").await;
    first.expect(&format!("registered {name}")).await;
    drop(first);
    session(chat, node, name).await
}

/// A client of `chat` on `node` logged in to the account `name`.
async fn session(chat: &Chat, node: usize, name: &str) -> chat_tests::LineClient {
    let mut client = chat.connect_on(node).await;
    loop {
        client.send(&format!("{name} secret-password")).await;
        let line = client.recv().await;
        if line == format!("welcome {name}") {
            break;
        }
        // The first session may not be gone yet.
        assert!(line.contains("in use"), "{line}");
        client = chat.connect_on(node).await;
    }
    client.sync().await;
    client
}

both_modes!(the_creator_is_op_and_joiners_see_roles_then_topic);
async fn the_creator_is_op_and_joiners_see_roles_then_topic(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    alice.send("/join #rust").await;
    alice.expect("joined #rust alice").await;
    alice.expect("names #rust alice").await;
    alice.expect("roles #rust @alice").await;
    alice.send("/topic #rust").await;
    alice.expect("topic #rust").await;
    alice.send("/mode #rust").await;
    alice.expect("mode #rust +t").await;
    alice.send("/topic #rust Rust: fast and safe").await;
    let topic = alice.expect_prefix("topic #rust alice ").await;
    assert!(topic.ends_with(": Rust: fast and safe"), "{topic}");
    assert!(matches!(
        topic.parse::<ServerLine>(),
        Ok(ServerLine::Topic { topic: Some(_), .. })
    ));
    let mut bob = chat.login_on(1, "bob").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    bob.expect("names #rust alice,bob").await;
    bob.expect("roles #rust @alice").await;
    bob.expect(&topic).await;
    bob.send("/names #rust").await;
    bob.expect("names #rust alice,bob").await;
    bob.expect("roles #rust @alice").await;
    bob.send("/topic #rust").await;
    bob.expect(&topic).await;
    chat.shutdown().await;
}

both_modes!(roles_are_given_and_taken_by_ops_only);
async fn roles_are_given_and_taken_by_ops_only(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    bob.send("/op #rust bob").await;
    assert_error(&bob.recv().await);
    bob.send("/voice #rust bob").await;
    assert_error(&bob.recv().await);
    alice.send("/voice #rust bob").await;
    alice.expect("mode #rust alice +v bob").await;
    bob.expect("mode #rust alice +v bob").await;
    alice.send("/op #rust bob").await;
    alice.expect("mode #rust alice +o bob").await;
    bob.expect("mode #rust alice +o bob").await;
    bob.send("/names #rust").await;
    bob.expect("names #rust alice,bob").await;
    bob.expect("roles #rust @alice,@bob").await;
    bob.send("/deop #rust alice").await;
    bob.expect("mode #rust bob -o alice").await;
    alice.expect("mode #rust bob -o alice").await;
    alice.send("/op #rust alice").await;
    assert_error(&alice.recv().await);
    alice.send("/op #rust carol").await;
    assert_error(&alice.recv().await);
    bob.send("/devoice #rust bob").await;
    bob.expect("mode #rust bob -v bob").await;
    bob.send("/op #nowhere alice").await;
    assert_error(&bob.recv().await);
    chat.shutdown().await;
}

both_modes!(a_role_ends_when_its_holder_leaves);
async fn a_role_ends_when_its_holder_leaves(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    alice.send("/op #rust bob").await;
    alice.expect("mode #rust alice +o bob").await;
    bob.expect("mode #rust alice +o bob").await;
    bob.send("/part #rust").await;
    bob.expect("left #rust bob").await;
    alice.expect("left #rust bob").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    bob.expect("names #rust alice,bob").await;
    bob.expect("roles #rust @alice").await;
    chat.shutdown().await;
}

both_modes!(topic_under_plus_t_needs_op_and_without_it_any_member);
async fn topic_under_plus_t_needs_op_and_without_it_any_member(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    bob.send("/topic #rust mine now").await;
    assert_error(&bob.recv().await);
    alice.send("/mode #rust -t").await;
    alice.expect("mode #rust alice -t").await;
    bob.expect("mode #rust alice -t").await;
    bob.send("/topic #rust mine now").await;
    let line = bob.expect_prefix("topic #rust bob ").await;
    assert!(line.ends_with(": mine now"), "{line}");
    alice.expect(&line).await;
    let mut carol = chat.login_on(0, "carol").await;
    carol.send("/topic #rust not a member").await;
    assert_error(&carol.recv().await);
    carol.send("/topic #rust").await;
    carol.expect(&line).await;
    bob.sync().await;
    let long = "x".repeat(391);
    bob.send(&format!("/topic #rust {long}")).await;
    assert_error(&bob.recv().await);
    chat.shutdown().await;
}

both_modes!(modes_change_one_line_per_flag_in_imst_order);
async fn modes_change_one_line_per_flag_in_imst_order(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    bob.send("/mode #rust +m").await;
    assert_error(&bob.recv().await);
    alice.send("/mode #rust +smi").await;
    for line in [
        "mode #rust alice +i",
        "mode #rust alice +m",
        "mode #rust alice +s",
    ] {
        alice.expect(line).await;
        bob.expect(line).await;
    }
    alice.send("/mode #rust +mi-t").await;
    alice.expect("mode #rust alice -t").await;
    bob.send("/mode #rust").await;
    bob.skip_until("mode #rust +ims").await;
    chat.shutdown().await;
}

both_modes!(a_moderated_room_hears_only_ops_and_voiced);
async fn a_moderated_room_hears_only_ops_and_voiced(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    alice.send("/mode #rust +m").await;
    alice.expect("mode #rust alice +m").await;
    bob.expect("mode #rust alice +m").await;
    bob.send("#rust: can anyone hear me").await;
    assert_error(&bob.recv().await);
    alice.send("/voice #rust bob").await;
    alice.expect("mode #rust alice +v bob").await;
    bob.expect("mode #rust alice +v bob").await;
    bob.send("#rust: now you can").await;
    let line = alice.expect_prefix("from bob #rust ").await;
    assert!(line.ends_with(": now you can"), "{line}");
    alice.send("#rust: ops always can").await;
    bob.expect_prefix("from alice #rust ").await;
    chat.shutdown().await;
}

both_modes!(kick_removes_the_member_and_tells_everyone);
async fn kick_removes_the_member_and_tells_everyone(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    bob.send("/kick #rust alice").await;
    assert_error(&bob.recv().await);
    alice.send("/kick #rust bob spamming links").await;
    alice.expect("kicked #rust bob alice: spamming links").await;
    bob.expect("kicked #rust bob alice: spamming links").await;
    bob.send("#rust: still here?").await;
    bob.expect("error: not a member of #rust").await;
    alice.send("/names #rust").await;
    alice.expect("names #rust alice").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    bob.skip_until_prefix("roles #rust").await;
    alice.skip_until("joined #rust bob").await;
    alice.send("/kick #rust bob").await;
    alice.expect("kicked #rust bob alice:").await;
    bob.expect("kicked #rust bob alice:").await;
    alice.send("/kick #rust bob").await;
    assert_error(&alice.recv().await);
    chat.shutdown().await;
}

both_modes!(a_ban_kicks_the_member_and_refuses_the_join);
async fn a_ban_kicks_the_member_and_refuses_the_join(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.member_on(1, "bob", "#rust").await;
    alice.skip_until("joined #rust bob").await;
    bob.send("/ban #rust alice").await;
    assert_error(&bob.recv().await);
    alice.send("/ban #rust Bob").await;
    for client in [&mut alice, &mut bob] {
        client.expect("mode #rust alice +b Bob").await;
        client.expect("kicked #rust bob *: banned").await;
    }
    bob.send("/join #rust").await;
    assert_error(&bob.recv().await);
    alice.send("/ban #rust eve").await;
    alice.expect("mode #rust alice +b eve").await;
    alice.send("/bans #rust").await;
    alice.expect("bans #rust Bob,eve").await;
    bob.send("/bans #rust").await;
    bob.expect("bans #rust Bob,eve").await;
    alice.send("/unban #rust bob").await;
    alice.expect("mode #rust alice -b Bob").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    chat.shutdown().await;
}

both_modes!(invite_only_needs_an_invite_used_once);
async fn invite_only_needs_an_invite_used_once(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.skip_until("joined bob").await;
    alice.send("/mode #rust +i").await;
    alice.expect("mode #rust alice +i").await;
    bob.send("/join #rust").await;
    assert_error(&bob.recv().await);
    alice.send("/invite bob #rust").await;
    bob.expect("invited #rust alice").await;
    alice.expect("invite sent bob #rust").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    bob.skip_until_prefix("roles #rust").await;
    bob.send("/invite carol #rust").await;
    assert_error(&bob.recv().await);
    bob.send("/part #rust").await;
    bob.expect("left #rust bob").await;
    bob.send("/join #rust").await;
    assert_error(&bob.recv().await);
    alice.sync().await;
    alice.send("/invite nobody #rust").await;
    assert_error(&alice.recv().await);
    chat.shutdown().await;
}

both_modes!(a_secret_room_is_hidden_from_rooms_for_non_members);
async fn a_secret_room_is_hidden_from_rooms_for_non_members(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#hidden").await;
    let _open = chat.member_on(0, "dave", "#open").await;
    alice.sync().await;
    alice.send("/mode #hidden +s").await;
    alice.expect("mode #hidden alice +s").await;
    let mut bob = chat.login_on(1, "bob").await;
    bob.send("/rooms").await;
    bob.expect("rooms #open=1").await;
    alice.send("/rooms").await;
    alice.skip_until("rooms #hidden=1,#open=1").await;
    chat.shutdown().await;
}

both_modes!(a_registered_room_keeps_its_founder_topic_modes_bans_and_grants);
async fn a_registered_room_keeps_its_founder_topic_modes_bans_and_grants(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut alice = account(&chat, 0, "alice").await;
    let mut bob = account(&chat, 1, "bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    carol.send("/join #rust").await;
    carol.skip_until("roles #rust @carol").await;
    carol.send("/register-room #rust").await;
    assert_error(&carol.recv().await);
    carol.send("/part #rust").await;
    carol.expect("left #rust carol").await;
    alice.send("/join #rust").await;
    alice.skip_until("roles #rust @alice").await;
    bob.send("/join #rust").await;
    bob.skip_until_prefix("roles #rust").await;
    alice.skip_until("joined #rust bob").await;
    bob.send("/register-room #rust").await;
    assert_error(&bob.recv().await);
    alice.send("/op #rust bob").await;
    alice.expect("mode #rust alice +o bob").await;
    alice.send("/register-room #rust").await;
    alice.expect("room-registered #rust alice").await;
    bob.skip_until("room-registered #rust alice").await;
    alice.send("/topic #rust kept").await;
    let topic = alice.expect_prefix("topic #rust alice ").await;
    alice.send("/mode #rust +m").await;
    alice.expect("mode #rust alice +m").await;
    alice.send("/ban #rust eve").await;
    alice.expect("mode #rust alice +b eve").await;
    bob.sync().await;
    bob.send("/deop #rust alice").await;
    assert_error(&bob.recv().await);
    bob.send("/kick #rust alice").await;
    assert_error(&bob.recv().await);
    bob.send("/ban #rust alice").await;
    assert_error(&bob.recv().await);
    // Everyone leaves; the room is kept but not listed while empty.
    alice.send("/part #rust").await;
    alice.expect("left #rust alice").await;
    bob.send("/part #rust").await;
    bob.skip_until("left #rust bob").await;
    carol.send("/rooms").await;
    carol.skip_until("rooms").await;
    drop((alice, bob));
    let chat = chat.restart().await;
    let mut carol = chat.login_on(1, "carol").await;
    carol.send("/topic #rust").await;
    carol.expect(&topic).await;
    carol.send("/bans #rust").await;
    carol.expect("bans #rust eve").await;
    carol.send("/join #rust").await;
    carol.expect("joined #rust carol").await;
    carol.expect("names #rust carol").await;
    carol.expect("roles #rust").await;
    carol.expect(&topic).await;
    carol.send("/mode #rust").await;
    carol.expect("mode #rust +mt").await;
    let mut bob = session(&chat, 0, "bob").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    bob.expect("names #rust bob,carol").await;
    bob.expect("roles #rust @bob").await;
    carol.skip_until("joined #rust bob").await;
    carol.expect("mode #rust * +o bob").await;
    chat.shutdown().await;
}

both_modes!(only_the_founder_unregisters);
async fn only_the_founder_unregisters(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut alice = account(&chat, 0, "alice").await;
    let mut bob = account(&chat, 1, "bob").await;
    alice.send("/join #rust").await;
    alice.skip_until("roles #rust @alice").await;
    alice.send("/register-room #rust").await;
    alice.expect("room-registered #rust alice").await;
    bob.send("/unregister-room #rust").await;
    assert_error(&bob.recv().await);
    alice.send("/unregister-room #rust").await;
    alice.send("/part #rust").await;
    alice.expect("left #rust alice").await;
    bob.send("/join #rust").await;
    bob.expect("joined #rust bob").await;
    bob.expect("names #rust bob").await;
    bob.expect("roles #rust @bob").await;
    chat.shutdown().await;
}

both_modes!(an_operator_governs_every_room_and_kills_and_suspends);
async fn an_operator_governs_every_room_and_kills_and_suspends(mode: Mode) {
    let config = Config {
        opers: vec!["root".parse().expect("a name")],
        ..Config::default()
    };
    let chat = Chat::start_with_accounts(mode, config).await;
    let mut alice = account(&chat, 0, "alice").await;
    alice.send("/join #rust").await;
    alice.skip_until("roles #rust @alice").await;
    alice.send("/register-room #rust").await;
    alice.expect("room-registered #rust alice").await;
    let mut eve = account(&chat, 1, "eve").await;
    eve.send("/kill alice").await;
    assert_error(&eve.recv().await);
    eve.send("/suspend alice").await;
    assert_error(&eve.recv().await);
    let mut root = account(&chat, 1, "root").await;
    root.send("/join #rust").await;
    root.expect("joined #rust root").await;
    root.expect("names #rust alice,root").await;
    root.expect("roles #rust @alice").await;
    alice.skip_until("joined #rust root").await;
    root.send("/deop #rust alice").await;
    root.expect("mode #rust root -o alice").await;
    alice.expect("mode #rust root -o alice").await;
    root.send("/kick #rust alice bye").await;
    root.expect("kicked #rust alice root: bye").await;
    alice.expect("kicked #rust alice root: bye").await;
    root.send("/kill eve flooding").await;
    eve.skip_until("error: killed by root: flooding").await;
    eve.expect_eof().await;
    root.send("/suspend alice").await;
    let rest = alice.recv_until_eof().await;
    assert!(
        rest.last().is_some_and(|l| l.starts_with("error: ")),
        "{rest:?}"
    );
    let mut again = chat.connect_on(0).await;
    again.send("alice secret-password").await;
    assert_error(&again.recv().await);
    root.send("/unsuspend alice").await;
    root.sync().await;
    let mut back = chat.connect_on(1).await;
    back.send("alice secret-password").await;
    back.expect("welcome alice").await;
    chat.shutdown().await;
}
