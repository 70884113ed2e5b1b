//! The v3 client in a pseudo-terminal against the real server: room governance as a user
//! sees it. The creator of a room listed as `@` op in the user list, a topic in the
//! room's title row and as a line, a kick and a ban shown to both sides.

use chat_tests::pty::row;
use chat_tests::{PtyClient, ServerProcess};

const COLUMNS: u16 = 100;

fn client(server: &ServerProcess, name: &str) -> PtyClient {
    let addr = server.addr.to_string();
    let client = PtyClient::spawn(&["--name", name, "--addr", &addr], COLUMNS, 24);
    client.wait_for("● connected");
    client
}

/// The names in the user list, as drawn (`@alice (you)`, ` bob`): the list is the last
/// 20 columns, its title on row 2 and the names below it.
fn user_list(screen: &vt100::Screen) -> Vec<String> {
    screen
        .rows(COLUMNS - 19, 19)
        .skip(3)
        .map(|r| r.trim_end().to_owned())
        .take_while(|r| !r.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_of_a_room_is_its_op_in_the_user_list() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice");
    alice.type_keys("/join #gov\r");
    alice.wait_until("alice as the room's op", |s| {
        user_list(s) == [" @alice (you)"]
    });
    // Someone who joins later is listed after the ops, in the prefix column.
    let mut bob = server.login("bob").await;
    bob.send("/join #gov").await;
    bob.expect("joined #gov bob").await;
    alice.wait_until("bob listed after the op", |s| {
        user_list(s) == [" @alice (you)", "  bob"]
    });
    alice.type_keys("/voice bob\r");
    bob.skip_until("mode #gov alice +v bob").await;
    alice.wait_for("alice gives voice to bob");
    alice.wait_until("bob voiced", |s| user_list(s) == [" @alice (you)", " +bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_shows_in_the_rooms_title_and_as_a_line() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice");
    alice.type_keys("/join #gov\r");
    alice.wait_until("the room's title", |s| row(s, 2).starts_with(" #gov"));
    alice.type_keys("/topic Governance: be kind\r");
    alice.wait_for("alice set the topic: Governance: be kind");
    // The client asked for the modes at join: a new room is +t.
    alice.wait_until("the topic in the title", |s| {
        row(s, 2).starts_with(" #gov +t · Governance: be kind")
    });
    // Someone joining later sees it at once, as the topic the room has.
    let mut bob = client(&server, "bob");
    bob.type_keys("/join #gov\r");
    bob.wait_for("topic of #gov: Governance: be kind (set by alice on ");
    bob.wait_until("the topic in bob's title", |s| {
        row(s, 2).starts_with(" #gov +t · Governance: be kind")
    });
    alice.type_keys("/topic again, kinder\r");
    bob.wait_for("alice set the topic: again, kinder");
    bob.wait_until("the new topic in the title", |s| {
        row(s, 2).starts_with(" #gov +t · again, kinder")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_and_a_ban_are_shown_and_the_kicked_keeps_the_buffer() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice");
    alice.type_keys("/join #gov\r");
    alice.wait_until("alice as op", |s| user_list(s) == [" @alice (you)"]);
    let mut bob = client(&server, "bob");
    bob.type_keys("/join #gov\r");
    bob.wait_until("both in bob's user list", |s| {
        user_list(s) == [" @alice", "  bob (you)"]
    });

    alice.type_keys("/kick bob flooding\r");
    alice.wait_for("bob was kicked by alice (flooding)");
    alice.wait_until("bob gone from the list", |s| {
        user_list(s) == [" @alice (you)"]
    });
    bob.wait_for("you were kicked from #gov by alice: flooding");
    // Kept as after a part: shown as not a member, the user list empty.
    bob.wait_for("3:(#gov)");
    bob.wait_until("bob's user list emptied", |s| {
        row(s, 2).ends_with("│ #gov (0)") && user_list(s).is_empty()
    });

    bob.type_keys("/join #gov\r");
    alice.wait_until("bob back", |s| user_list(s) == [" @alice (you)", "  bob"]);
    alice.type_keys("/ban bob\r");
    alice.wait_for("alice bans bob");
    alice.wait_for("bob was banned from #gov");
    bob.wait_for("you were banned from #gov");
    alice.type_keys("/bans\r");
    alice.wait_for("bans in #gov: bob");
}
