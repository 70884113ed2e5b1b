//! The IRC listener (protocol v3, "IRC listener"), in process: registration, each
//! command, each capability, and both directions between IRC and native users in the
//! same rooms, in both modes where a rule crosses nodes (the IRC user on node 1, the
//! native one on node 0).
//!
//! Barriers: `PING`/`PONG` ([`IrcClient::sync`]) orders an IRC client's own replies, the
//! `/who` reply a native one's; a line from someone else is awaited with `next` or
//! `expect`.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use chat_server::Config;
use chat_tests::LineClient;
use chat_tests::irc::{IrcClient, IrcLine};
use common::{Chat, Mode, both_modes};

const SERVER: &str = "irc.test";

fn config() -> Config {
    Config {
        server_name: SERVER.to_owned(),
        ..Config::default()
    }
}

/// An IRC client of `chat` on `node`, registered as `nick` with `caps`.
async fn irc(chat: &Chat, node: usize, nick: &str, caps: &[&str]) -> IrcClient {
    IrcClient::register(chat.irc_addr(node), nick, caps).await.0
}

/// Joins `channel` and reads up to the end of its names (`366`).
async fn join(client: &mut IrcClient, channel: &str) -> Vec<IrcLine> {
    client.send(&format!("JOIN {channel}")).await;
    client.until("366").await
}

/// The texts of the `PRIVMSG` lines of `lines`, in order.
fn privmsg_texts(lines: &[IrcLine]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.command == "PRIVMSG")
        .map(|l| l.param(1))
        .collect()
}

/// A native `alice` and an IRC `bob` (with `caps`) in `#rust` on one server, alice
/// having seen bob join.
async fn alice_and_irc_bob(chat: &Chat, caps: &[&str]) -> (LineClient, IrcClient) {
    let mut alice = chat.member("alice", "#rust").await;
    let mut bob = irc(chat, 0, "bob", caps).await;
    join(&mut bob, "#rust").await;
    alice.skip_until("joined #rust bob").await;
    (alice, bob)
}

/// In `room`: IRC `bob` (with `caps`) on node 1, then IRC `dave` on node 0, then the
/// native `native` on node 0, each having seen those who joined after it.
async fn two_irc_and_a_native(
    chat: &Chat,
    room: &str,
    caps: &[&str],
    native: &str,
) -> (IrcClient, IrcClient, LineClient) {
    let mut bob = irc(chat, 1, "bob", caps).await;
    join(&mut bob, room).await;
    let mut dave = irc(chat, 0, "dave", &[]).await;
    join(&mut dave, room).await;
    let native = chat.member_on(0, native, room).await;
    bob.next("JOIN").await;
    bob.next("JOIN").await;
    dave.next("JOIN").await;
    (bob, dave, native)
}

/// The commands of `lines`, in order.
fn commands(lines: &[IrcLine]) -> Vec<&str> {
    lines.iter().map(|l| l.command.as_str()).collect()
}

/// Registers the native account `name` with the password `secret-password`.
async fn account(chat: &Chat, name: &str) {
    let mut client = chat.login(name).await;
    client.send("/register secret-password").await;
    client.expect(&format!("registered {name}")).await;
}

/// `CAP LS 302`, `CAP REQ`, `NICK`, `USER` and SASL PLAIN as `account` with `password`;
/// returns the client and the replies to the credentials.
async fn sasl(
    addr: std::net::SocketAddr,
    account: &str,
    password: &str,
) -> (IrcClient, Vec<IrcLine>) {
    let mut client = IrcClient::connect(addr).await;
    client.send("CAP LS 302").await;
    client.next("CAP").await;
    client.send("CAP REQ :sasl server-time").await;
    let ack = client.next("CAP").await;
    assert_eq!(ack.params[1], "ACK", "{}", ack.raw);
    client.send(&format!("NICK {account}")).await;
    client.send(&format!("USER {account} 0 * :{account}")).await;
    client.send("AUTHENTICATE PLAIN").await;
    assert_eq!(client.recv().await.raw, "AUTHENTICATE +");
    let plain = base64::engine::general_purpose::STANDARD
        .encode(format!("{account}\0{account}\0{password}"));
    client.send(&format!("AUTHENTICATE {plain}")).await;
    let replies = client.sync().await;
    (client, replies)
}

#[tokio::test]
async fn registration_welcomes_with_an_honest_isupport_and_no_motd() {
    let chat = Chat::start(Mode::Local, config()).await;
    let (mut bob, welcome) = IrcClient::register(chat.irc_addr(0), "bob", &[]).await;
    let mut got = commands(&welcome);
    got.dedup();
    assert_eq!(
        got,
        ["001", "002", "003", "004", "005", "422"],
        "{welcome:#?}"
    );
    for line in &welcome {
        assert_eq!(line.source.as_deref(), Some(SERVER), "{}", line.raw);
        assert_eq!(line.param(0), "bob", "{}", line.raw);
        assert!(
            line.tags.is_empty(),
            "no tags without message-tags: {}",
            line.raw
        );
    }
    assert_eq!(welcome[3].param(1), SERVER);
    let isupport: Vec<&str> = welcome
        .iter()
        .filter(|l| l.command == "005")
        .flat_map(|l| &l.params[1..l.params.len() - 1])
        .map(String::as_str)
        .collect();
    for token in [
        "CASEMAPPING=rfc8265",
        "CHANTYPES=#",
        "PREFIX=(ov)@+",
        "CHANMODES=b,,,imst",
        "NICKLEN=32",
        "CHANNELLEN=33",
        "TOPICLEN=390",
        "UTF8ONLY",
        "CHATHISTORY=1000",
        "MSGREFTYPES=msgid,timestamp",
    ] {
        assert!(
            isupport.contains(&token),
            "{token} missing from {isupport:?}"
        );
    }
    assert!(
        isupport.iter().any(|t| t.starts_with("TARGMAX=")),
        "{isupport:?}"
    );

    bob.send("PING :are you there").await;
    assert_eq!(
        bob.recv().await.raw,
        format!(":{SERVER} PONG {SERVER} :are you there")
    );
    bob.send("FROBNICATE now").await;
    let unknown = bob.recv().await;
    assert_eq!(unknown.command, "421");
    assert_eq!(unknown.params[..2], ["bob", "FROBNICATE"]);
    // Registered once: a second USER is refused.
    bob.send("USER bob 0 * :bob").await;
    assert_eq!(bob.recv().await.command, "462");
    chat.shutdown().await;
}

#[tokio::test]
async fn registration_refuses_commands_bad_nicks_and_names_in_use() {
    let chat = Chat::start(Mode::Local, config()).await;
    let _alice = chat.login("alice").await;
    let mut client = IrcClient::connect(chat.irc_addr(0)).await;
    client.send("JOIN #rust").await;
    assert_eq!(client.recv().await.command, "451");
    client.send("NICK").await;
    assert_eq!(client.recv().await.command, "431");
    client.send("NICK bad,nick").await;
    let bad = client.recv().await;
    assert_eq!((bad.command.as_str(), bad.param(1)), ("432", "bad,nick"));
    client.send("USER alice 0 *").await;
    assert_eq!(client.recv().await.command, "461");
    // A native user holds the name: 433, and the client may pick another.
    client.send("NICK alice").await;
    client.send("USER alice 0 * :Alice").await;
    let busy = client.recv().await;
    assert_eq!(
        (busy.command.as_str(), busy.param(1)),
        ("433", "alice"),
        "{}",
        busy.raw
    );
    client.send("NICK alice2").await;
    let welcome = client.until("422").await;
    assert_eq!(
        welcome[0].raw,
        format!(":{SERVER} 001 alice2 :Welcome to the chat, alice2")
    );
    chat.shutdown().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let chat = Chat::start(
        Mode::Local,
        Config {
            handshake_timeout: Duration::from_millis(300),
            ..config()
        },
    )
    .await;
    let mut client = IrcClient::connect(chat.irc_addr(0)).await;
    client.send("NICK slow").await;
    let lines = client.until_eof().await;
    assert_eq!(
        lines.last().map(|l| l.raw.as_str()),
        Some("ERROR :Closing link: registration timed out")
    );
    chat.shutdown().await;
}

both_modes!(irc_and_native_users_talk_in_one_room_with_the_same_ids_in_order);
async fn irc_and_native_users_talk_in_one_room_with_the_same_ids_in_order(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    let mut bob = irc(&chat, 1, "bob", &["message-tags", "server-time"]).await;
    let joined = join(&mut bob, "#rust").await;
    assert_eq!(joined[0].raw, format!(":bob!bob@{SERVER} JOIN #rust"));
    let names = joined.iter().find(|l| l.command == "353").expect("a 353");
    assert_eq!(names.params[1..], ["=", "#rust", "@alice bob"]);
    assert_eq!(joined.last().map(|l| l.param(1)), Some("#rust"));
    alice.skip_until("joined #rust bob").await;

    for i in 0..20 {
        alice.send(&format!("#rust: native {i}")).await;
    }
    bob.send("PRIVMSG #rust :from irc").await;
    bob.send("NOTICE #rust :a notice").await;
    let from_irc = alice.expect_prefix("from bob #rust ").await;
    assert!(from_irc.ends_with(": from irc"), "{from_irc}");
    let notice = alice.expect_prefix("from bob #rust ").await;
    assert!(notice.ends_with(": a notice"), "{notice}");
    let mut ids = Vec::new();
    for i in 0..20 {
        let line = bob.next("PRIVMSG").await;
        assert_eq!(line.nick(), Some("alice"));
        assert_eq!(line.params, ["#rust", &format!("native {i}")]);
        assert!(
            line.tag("time").is_some_and(|t| t.ends_with('Z')),
            "{}",
            line.raw
        );
        ids.push(line.tag("msgid").expect("a msgid").to_owned());
    }
    // The msgid is the native id, the one history and native members see.
    alice.send("/history #rust 22").await;
    let history = alice.lines_until("history-end #rust complete").await;
    let native: Vec<&String> = history
        .iter()
        .filter(|l| l.contains(" alice: native "))
        .collect();
    assert_eq!(native.len(), ids.len(), "{history:#?}");
    for (i, (entry, id)) in native.iter().zip(&ids).enumerate() {
        assert!(
            entry.starts_with(&format!("history #rust {id} "))
                && entry.ends_with(&format!(" alice: native {i}")),
            "{entry} vs msgid {id}"
        );
    }
    chat.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_the_tags_it_asked_for_in_one_channel() {
    let chat = Chat::start(Mode::Local, config()).await;
    let mut alice = chat.member("alice", "#tags").await;
    let mut plain = irc(&chat, 0, "plain", &[]).await;
    let mut tagged = irc(&chat, 0, "tagged", &["message-tags"]).await;
    let mut timed = irc(&chat, 0, "timed", &["server-time"]).await;
    for client in [&mut plain, &mut tagged, &mut timed] {
        join(client, "#tags").await;
    }
    for i in 0..3 {
        alice.send(&format!("#tags: {i}")).await;
    }
    for i in 0..3 {
        let text = i.to_string();
        let line = plain.next("PRIVMSG").await;
        assert_eq!(
            line.raw,
            format!(":alice!alice@{SERVER} PRIVMSG #tags :{text}")
        );
        let line = tagged.next("PRIVMSG").await;
        assert_eq!(line.tags.len(), 1, "{}", line.raw);
        assert!(line.tag("msgid").is_some(), "{}", line.raw);
        let line = timed.next("PRIVMSG").await;
        assert_eq!(line.tags.len(), 1, "{}", line.raw);
        assert!(line.tag("time").is_some(), "{}", line.raw);
    }
    chat.shutdown().await;
}

both_modes!(direct_messages_everyone_messages_and_notices_cross_both_ways);
async fn direct_messages_everyone_messages_and_notices_cross_both_ways(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = irc(&chat, 1, "bob", &[]).await;
    alice.expect("joined bob").await;
    alice.send("bob: hello bob").await;
    assert_eq!(
        bob.next("PRIVMSG").await.raw,
        format!(":alice!alice@{SERVER} PRIVMSG bob :hello bob")
    );
    // A message to everyone has no IRC form: a private message that says so.
    alice.send("*: hello all").await;
    assert_eq!(
        bob.next("PRIVMSG").await.raw,
        format!(":alice!alice@{SERVER} PRIVMSG bob :[to everyone] hello all")
    );
    bob.send("PRIVMSG alice :\u{2}hi\u{2} alice").await;
    alice.expect("from bob: hi alice").await;
    bob.send("NOTICE alice :noticed").await;
    alice.expect("from bob: noticed").await;
    bob.send("PRIVMSG alice :\u{1}ACTION waves\u{1}").await;
    alice.expect("from bob: /me waves").await;
    alice.send("bob: /me waves back").await;
    assert_eq!(
        bob.next("PRIVMSG").await.param(1),
        "\u{1}ACTION waves back\u{1}"
    );
    bob.send("PRIVMSG $* :to all from irc").await;
    alice.expect("from bob *: to all from irc").await;
    chat.shutdown().await;
}

#[tokio::test]
async fn echo_message_and_labeled_response() {
    let chat = Chat::start(Mode::Local, config()).await;
    let caps = ["echo-message", "labeled-response", "message-tags", "batch"];
    let (mut alice, mut bob) = alice_and_irc_bob(&chat, &caps).await;

    bob.send("@label=m1 PRIVMSG #rust :echoed").await;
    let echo = bob.recv().await;
    assert_eq!(echo.command, "PRIVMSG", "{}", echo.raw);
    assert_eq!(echo.tag("label"), Some("m1"));
    assert_eq!(echo.nick(), Some("bob"));
    assert_eq!(echo.params, ["#rust", "echoed"]);
    let id = echo.tag("msgid").expect("a msgid");
    alice.expect(&format!("from bob #rust {id}: echoed")).await;

    bob.send("@label=p1 PING :token").await;
    let pong = bob.recv().await;
    assert_eq!(pong.tag("label"), Some("p1"));
    assert_eq!((pong.command.as_str(), pong.param(1)), ("PONG", "token"));

    // Several lines: one labeled batch.
    bob.send("@label=n1 NAMES #rust").await;
    let start = bob.recv().await;
    assert_eq!(start.command, "BATCH", "{}", start.raw);
    assert_eq!(start.tag("label"), Some("n1"));
    assert_eq!(start.param(1), "labeled-response");
    let reference = start
        .param(0)
        .strip_prefix('+')
        .expect("a batch start")
        .to_owned();
    let inner = bob.until("BATCH").await;
    assert_eq!(commands(&inner), ["353", "366", "BATCH"]);
    for line in &inner[..2] {
        assert_eq!(line.tag("batch"), Some(reference.as_str()), "{}", line.raw);
    }
    assert_eq!(inner[2].param(0), format!("-{reference}"));

    // Nothing was sent: no echo, only the refusal.
    bob.send("@label=m2 PRIVMSG nobody :lost?").await;
    let refused = bob.recv().await;
    assert_eq!(refused.command, "401", "{}", refused.raw);
    assert_eq!(refused.tag("label"), Some("m2"));

    // No reply at all: an ACK.
    let mut carol = irc(&chat, 0, "carol", &["labeled-response", "message-tags"]).await;
    join(&mut carol, "#rust").await;
    carol.send("@label=q PRIVMSG #rust :unechoed").await;
    assert_eq!(carol.recv().await.raw, format!("@label=q :{SERVER} ACK"));
    assert_eq!(bob.next("PRIVMSG").await.param(1), "unechoed");
    chat.shutdown().await;
}

both_modes!(sasl_logs_in_to_an_account_with_the_right_password_only);
async fn sasl_logs_in_to_an_account_with_the_right_password_only(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, config()).await;
    account(&chat, "alice").await;
    let (mut wrong, replies) = sasl(chat.irc_addr(1), "alice", "not-her-password").await;
    assert_eq!(commands(&replies), ["904"], "{replies:#?}");
    wrong.send("AUTHENTICATE *").await;
    assert_eq!(wrong.next("906").await.command, "906");
    drop(wrong);

    let (mut right, replies) = sasl(chat.irc_addr(1), "alice", "secret-password").await;
    assert_eq!(commands(&replies), ["900", "903"], "{replies:#?}");
    assert_eq!(replies[0].param(2), "alice");
    right.send("CAP END").await;
    let welcome = right.until("422").await;
    assert_eq!(welcome[0].param(0), "alice");
    // The account's session: it may hold a role the account holds, and the name's
    // native sessions share it.
    let mut native = chat.connect_on(1).await;
    native.send("alice secret-password").await;
    native.expect("welcome alice").await;
    native.sync().await;
    native.send("/whois alice").await;
    native.expect("whois alice 0 2").await;

    // A registered nick without SASL or PASS is refused; with PASS it logs in.
    let mut anon = IrcClient::connect(chat.irc_addr(0)).await;
    anon.send("NICK alice").await;
    anon.send("USER alice 0 * :alice").await;
    let refused = anon.recv().await;
    assert!(
        ["433", "464"].contains(&refused.command.as_str()),
        "{}",
        refused.raw
    );
    let mut pass = IrcClient::connect(chat.irc_addr(0)).await;
    pass.send("PASS secret-password").await;
    pass.send("NICK alice").await;
    pass.send("USER alice 0 * :alice").await;
    assert_eq!(pass.until("422").await[0].command, "001");
    chat.shutdown().await;
}

both_modes!(offline_mail_at_login_then_an_irc_and_a_native_session_share_the_account);
async fn offline_mail_at_login_then_an_irc_and_a_native_session_share_the_account(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, config()).await;
    let mut alice = chat.login_on(0, "alice").await;
    account(&chat, "bob").await;
    // Offline for sure: alice saw bob come and go.
    alice.skip_until("left bob").await;
    alice.send("bob: while you were out").await;
    alice.expect("stored bob").await;

    let (mut irc_bob, replies) = sasl(chat.irc_addr(1), "bob", "secret-password").await;
    assert_eq!(commands(&replies), ["900", "903"]);
    irc_bob.send("CAP END").await;
    irc_bob.until("422").await;
    let mail = irc_bob.next("PRIVMSG").await;
    assert_eq!(mail.nick(), Some("alice"));
    assert_eq!(mail.params, ["bob", "while you were out"]);
    assert!(mail.tag("time").is_some(), "{}", mail.raw);
    let notice = irc_bob.next("NOTICE").await;
    assert_eq!(notice.param(1), "1 message arrived while you were away");

    // A second device, native: no mail again, both get what is sent to bob, and each
    // hears what the other sent.
    let mut native_bob = chat.connect_on(0).await;
    native_bob.send("bob secret-password").await;
    native_bob.expect("welcome bob").await;
    let (before, _) = native_bob.sync().await;
    assert!(before.is_empty(), "{before:?}");
    alice.send("bob: to both").await;
    native_bob.expect("from alice: to both").await;
    assert_eq!(irc_bob.next("PRIVMSG").await.params, ["bob", "to both"]);
    irc_bob.send("PRIVMSG alice :from my irc client").await;
    alice.skip_until("from bob: from my irc client").await;
    native_bob.expect("sent alice: from my irc client").await;
    native_bob.send("alice: from my native client").await;
    alice.expect("from bob: from my native client").await;
    let copy = irc_bob.next("PRIVMSG").await;
    assert_eq!(copy.nick(), Some("bob"), "{}", copy.raw);
    assert_eq!(copy.params, ["alice", "from my native client"]);
    chat.shutdown().await;
}

both_modes!(bans_kicks_topics_and_moderation_hold_across_irc_and_native);
async fn bans_kicks_topics_and_moderation_hold_across_irc_and_native(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let mut bob = irc(&chat, 1, "bob", &[]).await;
    join(&mut bob, "#gov").await;
    let mut carol = chat.member_on(0, "carol", "#gov").await;
    bob.next("JOIN").await;

    bob.send("TOPIC #gov :rules apply").await;
    assert_eq!(
        bob.next("TOPIC").await.raw,
        format!(":bob!bob@{SERVER} TOPIC #gov :rules apply")
    );
    let topic = carol.expect_prefix("topic #gov bob ").await;
    assert!(topic.ends_with(": rules apply"), "{topic}");

    // An IRC op bans a native member: the ban and the kick reach both sides.
    bob.send("MODE #gov +b carol").await;
    assert_eq!(
        bob.next("MODE").await.raw,
        format!(":bob!bob@{SERVER} MODE #gov +b carol!*@*")
    );
    let kick = bob.next("KICK").await;
    assert_eq!(kick.params, ["#gov", "carol", "banned"]);
    carol.expect("mode #gov bob +b carol").await;
    carol.expect("kicked #gov carol *: banned").await;
    carol.send("/join #gov").await;
    carol.expect_prefix("error: ").await;
    bob.send("MODE #gov b").await;
    let bans = bob.until("368").await;
    assert_eq!(bans[0].command, "367");
    assert_eq!(bans[0].params[1..3], ["#gov", "carol!*@*"]);

    // A native op kicks an IRC member; a moderated room stops an unvoiced IRC member.
    let mut dave = irc(&chat, 1, "dave", &[]).await;
    join(&mut dave, "#gov").await;
    bob.send("MODE #gov +m").await;
    dave.next("MODE").await;
    dave.send("PRIVMSG #gov :may I?").await;
    let refused = dave.next("404").await;
    assert_eq!(refused.param(1), "#gov");
    bob.send("MODE #gov +v dave").await;
    let voiced = dave.next("MODE").await;
    assert_eq!(voiced.params, ["#gov", "+v", "dave"]);
    dave.send("PRIVMSG #gov :thanks").await;
    assert_eq!(bob.next("PRIVMSG").await.param(1), "thanks");
    bob.send("KICK #gov dave :enough").await;
    let kicked = dave.next("KICK").await;
    assert_eq!(kicked.nick(), Some("bob"));
    assert_eq!(kicked.params, ["#gov", "dave", "enough"]);
    dave.send("PRIVMSG #gov :still here?").await;
    assert_eq!(dave.next("404").await.param(1), "#gov");

    // Not an op: 482.
    join(&mut dave, "#gov").await;
    dave.send("KICK #gov bob").await;
    assert_eq!(dave.next("482").await.param(1), "#gov");
    chat.shutdown().await;
}

both_modes!(notices_reasons_and_cleared_topics_reach_irc_clients_and_natives_see_plain_lines);
async fn notices_reasons_and_cleared_topics_reach_irc_clients_and_natives_see_plain_lines(
    mode: Mode,
) {
    let chat = Chat::start(mode, config()).await;
    let (mut bob, mut dave, mut carol) =
        two_irc_and_a_native(&chat, "#n", &["echo-message"], "carol").await;

    // A NOTICE stays one for IRC clients, on both nodes, its sender's echo included; a
    // native member gets the message.
    bob.send("NOTICE #n :heads up").await;
    let echo = bob.recv().await;
    assert_eq!(
        (echo.command.as_str(), &echo.params[..]),
        ("NOTICE", &["#n".to_owned(), "heads up".to_owned()][..]),
        "{}",
        echo.raw
    );
    assert_eq!(
        dave.recv().await.raw,
        format!(":bob!bob@{SERVER} NOTICE #n :heads up")
    );
    let line = carol.expect_prefix("from bob #n ").await;
    assert!(line.ends_with(": heads up"), "{line}");
    bob.send("NOTICE dave :psst").await;
    assert_eq!(
        dave.recv().await.raw,
        format!(":bob!bob@{SERVER} NOTICE dave :psst")
    );
    bob.send("NOTICE carol :psst").await;
    carol.expect("from bob: psst").await;
    // A PRIVMSG after a notice is a PRIVMSG again.
    bob.send("PRIVMSG #n :plain").await;
    assert_eq!(
        dave.recv().await.raw,
        format!(":bob!bob@{SERVER} PRIVMSG #n :plain")
    );
    carol.expect_prefix("from bob #n ").await;

    // `TOPIC #n :` clears the topic, said by whoever cleared it; natives get `topic #n`.
    bob.send("TOPIC #n :for now").await;
    bob.next("TOPIC").await;
    dave.next("TOPIC").await;
    carol.expect_prefix("topic #n bob ").await;
    bob.send("TOPIC #n :").await;
    assert_eq!(
        bob.next("TOPIC").await.raw,
        format!(":bob!bob@{SERVER} TOPIC #n :")
    );
    assert_eq!(
        dave.recv().await.raw,
        format!(":bob!bob@{SERVER} TOPIC #n :")
    );
    carol.expect("topic #n").await;
    dave.send("TOPIC #n").await;
    dave.expect_reply("331", &["dave", "#n"]).await;
    // The native form of the same, `/topic <#room> -delete`, from an op.
    bob.send("MODE #n +o carol").await;
    carol.expect("mode #n bob +o carol").await;
    carol.send("/topic #n again").await;
    carol.expect_prefix("topic #n carol ").await;
    carol.send("/topic #n -delete").await;
    carol.expect("topic #n").await;
    dave.until("TOPIC").await;
    assert_eq!(
        dave.recv().await.raw,
        format!(":carol!carol@{SERVER} TOPIC #n :")
    );

    // A part's reason reaches IRC members and the one parting; natives get `left`.
    dave.send("PART #n :lunch").await;
    let own = dave.next("PART").await;
    assert_eq!(own.params, ["#n", "lunch"]);
    assert_eq!(
        bob.until("PART").await.last().map(|l| l.raw.clone()),
        Some(format!(":dave!dave@{SERVER} PART #n :lunch"))
    );
    carol.expect("left #n dave").await;

    // So does a quit's: one QUIT with it for IRC members, `left` lines for natives.
    join(&mut dave, "#n").await;
    bob.next("JOIN").await;
    carol.expect("joined #n dave").await;
    bob.send("QUIT :gone fishing").await;
    bob.until_eof().await;
    assert_eq!(
        dave.recv().await.raw,
        format!(":bob!bob@{SERVER} QUIT :Quit: gone fishing")
    );
    carol.expect("left #n bob").await;
    carol.expect("left bob").await;
    chat.shutdown().await;
}

both_modes!(away_notify_tells_irc_members_who_went_away_came_back_or_joined_away);
async fn away_notify_tells_irc_members_who_went_away_came_back_or_joined_away(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let (mut bob, mut dave, mut alice) =
        two_irc_and_a_native(&chat, "#a", &["away-notify"], "alice").await;

    alice.send("/away out for lunch").await;
    assert_eq!(
        bob.recv().await.raw,
        format!(":alice!alice@{SERVER} AWAY :out for lunch")
    );
    // `WHO #a` and `WHO <mask>` say who is away (`G`), on either node; WeeChat colours
    // nicks by it.
    for client in [&mut dave, &mut bob] {
        for (mask, ops) in [("#a", "H@"), ("*", "H")] {
            client.send(&format!("WHO {mask}")).await;
            let mut flags: Vec<(String, String)> = client
                .until("315")
                .await
                .iter()
                .filter(|l| l.command == "352")
                .map(|l| (l.param(5).to_owned(), l.param(6).to_owned()))
                .collect();
            flags.sort();
            let want = [("alice", "G"), ("bob", ops), ("dave", "H")];
            assert_eq!(flags, want.map(|(n, f)| (n.into(), f.into())), "WHO {mask}");
        }
    }
    alice.send("/away").await;
    assert_eq!(bob.recv().await.raw, format!(":alice!alice@{SERVER} AWAY"));
    // Without the capability, nothing: the next line is alice's message.
    alice.send("#a: back").await;
    assert_eq!(dave.recv().await.command, "PRIVMSG");
    assert_eq!(bob.recv().await.command, "PRIVMSG");

    // Someone already away who joins is said to be away, after the JOIN; natives see
    // only `joined`.
    let mut carol = chat.login_on(0, "carol").await;
    carol.send("/away zzz").await;
    carol.sync().await;
    carol.send("/join #a").await;
    carol.skip_until_prefix("roles #a").await;
    assert_eq!(bob.recv().await.command, "JOIN");
    assert_eq!(
        bob.recv().await.raw,
        format!(":carol!carol@{SERVER} AWAY :zzz")
    );
    alice.skip_until("joined #a carol").await;
    alice.send("#a: hi carol").await;
    assert_eq!(dave.recv().await.command, "JOIN");
    assert_eq!(dave.recv().await.command, "PRIVMSG");
    assert_eq!(bob.recv().await.command, "PRIVMSG");

    // One's own away is `306`, not an AWAY about oneself.
    bob.send("AWAY :brb").await;
    let replies = bob.sync().await;
    assert_eq!(commands(&replies), ["306"], "{replies:#?}");
    chat.shutdown().await;
}

#[tokio::test]
async fn refusals_are_numerics() {
    let chat = Chat::start(Mode::Local, config()).await;
    let mut alice = chat.member("alice", "#rust").await;
    let mut bob = irc(&chat, 0, "bob", &[]).await;
    for (command, numeric, about) in [
        ("PRIVMSG nobody :hello?", "401", "nobody"),
        ("PRIVMSG #rust :not a member", "404", "#rust"),
        ("PART #rust", "442", "#rust"),
        ("JOIN", "461", "JOIN"),
        ("JOIN nohash", "403", "nohash"),
    ] {
        bob.send(command).await;
        let line = bob.recv().await;
        assert_eq!(
            (line.command.as_str(), line.param(1)),
            (numeric, about),
            "{command}: {}",
            line.raw
        );
    }
    bob.send("PRIVMSG #rust").await;
    assert_eq!(bob.recv().await.command, "412");
    bob.send(&format!("PRIVMSG alice :{}", "x".repeat(600)))
        .await;
    assert_eq!(bob.recv().await.command, "417");
    // Nothing above reached anyone: alice hears only what follows.
    bob.send("PRIVMSG alice :only this").await;
    alice.expect("joined bob").await;
    alice.expect("from bob: only this").await;
    chat.shutdown().await;
}

both_modes!(chathistory_reads_what_native_users_said);
async fn chathistory_reads_what_native_users_said(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let mut alice = chat.member_on(0, "alice", "#hist").await;
    for i in 0..6 {
        alice.send(&format!("#hist: old {i}")).await;
    }
    alice.send("/history #hist").await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let entry = alice.recv().await;
        ids.push(entry.split(' ').nth(2).expect("an id").to_owned());
    }
    let caps = ["draft/chathistory", "batch", "server-time", "message-tags"];
    let mut bob = irc(&chat, 1, "bob", &caps).await;
    join(&mut bob, "#hist").await;

    bob.send("CHATHISTORY LATEST #hist * 3").await;
    let batch = bob.until("BATCH").await;
    let start = batch.last().expect("a batch");
    assert_eq!(start.params[1..], ["chathistory", "#hist"]);
    let reference = start.param(0).trim_start_matches('+').to_owned();
    let lines = bob.until("BATCH").await;
    assert_eq!(
        lines.last().map(|l| l.param(0)),
        Some(format!("-{reference}").as_str())
    );
    let got: Vec<(&str, &str)> = lines[..lines.len() - 1]
        .iter()
        .map(|l| (l.tag("msgid").unwrap_or(""), l.param(1)))
        .collect();
    assert_eq!(
        got,
        [
            (&*ids[3], "old 3"),
            (&*ids[4], "old 4"),
            (&*ids[5], "old 5")
        ]
    );

    bob.send(&format!("CHATHISTORY BEFORE #hist msgid={} 2", ids[3]))
        .await;
    let lines = bob.sync().await;
    let texts = privmsg_texts(&lines);
    assert_eq!(texts, ["old 1", "old 2"]);
    bob.send(&format!("CHATHISTORY AFTER #hist msgid={} 10", ids[4]))
        .await;
    let lines = bob.sync().await;
    let texts = privmsg_texts(&lines);
    assert_eq!(texts, ["old 5"]);
    chat.shutdown().await;
}

both_modes!(markread_and_read_move_the_same_marker);
async fn markread_and_read_move_the_same_marker(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, config()).await;
    account(&chat, "alice").await;
    let mut native = chat.connect_on(0).await;
    native.send("alice secret-password").await;
    native.expect("welcome alice").await;
    native.sync().await;
    native.send("/join #read").await;
    native.skip_until_prefix("roles #read").await;
    for i in 0..3 {
        native.send(&format!("#read: line {i}")).await;
    }
    native.send("/history #read").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let entry = native.recv().await;
        ids.push(
            entry
                .split(' ')
                .nth(2)
                .expect("an id")
                .parse::<u64>()
                .expect("a number"),
        );
    }
    native.expect("history-end #read complete").await;

    let (mut irc_alice, replies) = sasl(chat.irc_addr(1), "alice", "secret-password").await;
    assert_eq!(commands(&replies), ["900", "903"]);
    irc_alice.send("CAP REQ :draft/read-marker").await;
    irc_alice.send("CAP END").await;
    irc_alice.until("422").await;
    irc_alice.send("MARKREAD #read").await;
    let none = irc_alice.next("MARKREAD").await;
    assert_eq!(none.params, ["#read", "*"]);

    native.send(&format!("/read #read {}", ids[1])).await;
    native.expect(&format!("read #read {}", ids[1])).await;
    let moved = irc_alice.next("MARKREAD").await;
    assert_eq!(moved.param(0), "#read");
    let stamp = moved.param(1).to_owned();
    assert!(stamp.starts_with("timestamp=20"), "{stamp}");

    // Forward from IRC, with the timestamp of the last message: the native session hears.
    irc_alice.send("CHATHISTORY LATEST #read * 1").await;
    let last = irc_alice.next("PRIVMSG").await;
    let time = last.tag("time").expect("a time").to_owned();
    irc_alice
        .send(&format!("MARKREAD #read timestamp={time}"))
        .await;
    assert_eq!(
        irc_alice.next("MARKREAD").await.param(1),
        format!("timestamp={time}")
    );
    // Milliseconds on IRC: the marker covers the whole millisecond of the last message.
    let marker = native.expect_prefix("read #read ").await;
    let marker: u64 = marker["read #read ".len()..].parse().expect("an id");
    assert_eq!((marker / 1000, marker % 1000), (ids[2] / 1000, 999));
    // Backward: nothing moves, the answer is where it is.
    irc_alice.send(&format!("MARKREAD #read {stamp}")).await;
    assert_eq!(
        irc_alice.next("MARKREAD").await.param(1),
        format!("timestamp={time}")
    );
    chat.shutdown().await;
}

both_modes!(a_slow_irc_client_is_cut_off_with_an_error_and_others_go_on);
async fn a_slow_irc_client_is_cut_off_with_an_error_and_others_go_on(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let mut slow = LineClient::connect_with_recv_buffer(chat.irc_addr(1), 4096).await;
    slow.send_raw(b"NICK slow\r\nUSER slow 0 * :slow\r\n").await;
    slow.skip_until_prefix(&format!(":{SERVER} 422 ")).await;
    let mut flooder = chat.login_on(0, "flooder").await;
    let mut bystander = irc(&chat, 1, "bystander", &[]).await;
    let chunk = format!("slow: {}\n", "f".repeat(994)).repeat(1000);
    let mut cut_off = false;
    for _ in 0..50 {
        if flooder.try_send_raw(chunk.as_bytes()).await.is_err() {
            break;
        }
        bystander.send("WHOIS slow").await;
        let replies = bystander.sync().await;
        if replies.iter().any(|l| l.command == "401") {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "the IRC client that does not read was never cut off"
    );
    let lines = slow.recv_until_eof().await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("ERROR :send queue exceeded (1048576 bytes); you are not reading fast enough\r"),
    );
    let whole = format!(
        ":flooder!flooder@{SERVER} PRIVMSG slow :{}\r",
        "f".repeat(994)
    );
    for got in &lines[..lines.len() - 1] {
        assert!(
            got == &whole || got.contains(" QUIT ") || got.contains(" JOIN "),
            "every line before the error is whole: {got:?}"
        );
    }
    drop((slow, flooder, bystander));
    chat.shutdown().await;
}

#[tokio::test]
async fn flood_control_paces_an_irc_client_and_drops_nothing() {
    let chat = Chat::start(
        Mode::Local,
        Config {
            rate_limit: Some(10),
            ..config()
        },
    )
    .await;
    let mut alice = chat.login("alice").await;
    let mut bob = irc(&chat, 0, "bob", &[]).await;
    alice.expect("joined bob").await;
    let burst: String = (0..30).map(|i| format!("PRIVMSG alice :{i}\r\n")).collect();
    let sent = Instant::now();
    bob.send(burst.trim_end()).await;
    for i in 0..30 {
        alice.expect(&format!("from bob: {i}")).await;
    }
    // A second's worth at once, then ten a second: the last of 30 after two seconds.
    assert!(
        sent.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        sent.elapsed()
    );
    chat.shutdown().await;
}

#[tokio::test]
async fn quit_says_error_and_native_users_see_the_departure() {
    let chat = Chat::start(Mode::Local, config()).await;
    let (mut alice, mut bob) = alice_and_irc_bob(&chat, &[]).await;
    bob.send("QUIT :gone fishing").await;
    let lines = bob.until_eof().await;
    assert_eq!(
        lines.last().map(|l| l.raw.as_str()),
        Some("ERROR :Closing link: gone fishing")
    );
    alice.skip_until("left bob").await;
    chat.shutdown().await;
}

#[tokio::test]
async fn shutdown_delivers_every_routed_message_then_says_error() {
    let chat = Chat::start(Mode::Local, config()).await;
    let (mut alice, mut bob) = alice_and_irc_bob(&chat, &[]).await;
    for i in 0..500 {
        alice.send(&format!("#rust: {i}")).await;
    }
    alice.sync().await;
    chat.shutdown().await;
    let lines = bob.until_eof().await;
    let texts = privmsg_texts(&lines);
    let want: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    assert_eq!(texts, want);
    let last = lines.last().expect("lines");
    assert_eq!(last.command, "ERROR", "{}", last.raw);
}

#[tokio::test]
async fn away_whois_who_list_and_invite() {
    let chat = Chat::start(Mode::Local, config()).await;
    let (mut alice, mut bob) = alice_and_irc_bob(&chat, &[]).await;

    bob.send("AWAY :lunch").await;
    assert_eq!(bob.recv().await.command, "306");
    alice.send("bob: you there?").await;
    alice.expect("away bob: lunch").await;
    bob.send("AWAY").await;
    assert_eq!(bob.next("305").await.command, "305");

    bob.send("WHOIS alice").await;
    let whois = bob.until("318").await;
    assert_eq!(whois[0].command, "311");
    assert_eq!(whois[0].params[1..4], ["alice", "alice", SERVER]);
    bob.send("WHO #rust").await;
    let who = bob.until("315").await;
    let nicks: Vec<&str> = who
        .iter()
        .filter(|l| l.command == "352")
        .map(|l| l.param(5))
        .collect();
    assert_eq!(nicks, ["alice", "bob"]);
    bob.send("LIST").await;
    let list = bob.until("323").await;
    let rooms: Vec<(&str, &str)> = list
        .iter()
        .filter(|l| l.command == "322")
        .map(|l| (l.param(1), l.param(2)))
        .collect();
    assert_eq!(rooms, [("#rust", "2")]);

    alice.send("/mode #rust +i").await;
    alice.expect("mode #rust alice +i").await;
    let mut carol = irc(&chat, 0, "carol", &[]).await;
    carol.send("JOIN #rust").await;
    assert_eq!(carol.recv().await.command, "473");
    alice.send("/invite carol #rust").await;
    let invite = carol.next("INVITE").await;
    assert_eq!(invite.nick(), Some("alice"));
    assert_eq!(invite.params, ["carol", "#rust"]);
    assert_eq!(join(&mut carol, "#rust").await[0].command, "JOIN");
    bob.send("MODE #rust").await;
    let modes = bob.next("324").await;
    assert_eq!(modes.params[1..], ["#rust", "+it"]);
    chat.shutdown().await;
}

/// An IRC client someone else wrote: the `irc` crate joins a room and talks with a
/// native member.
#[tokio::test]
async fn the_irc_crate_joins_and_talks_with_a_native_member() {
    use futures::StreamExt;
    use irc::client::prelude::{Client, Command, Config as IrcConfig};

    let chat = Chat::start(Mode::Local, config()).await;
    let mut alice = chat.member("alice", "#rust").await;
    let addr = chat.irc_addr(0);
    let mut client = Client::from_config(IrcConfig {
        nickname: Some("crab".to_owned()),
        server: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        channels: vec!["#rust".to_owned()],
        ..IrcConfig::default()
    })
    .await
    .expect("a client");
    client.identify().expect("registration sent");
    // The stream also drives the crate's writes: a task polls it for the whole test.
    let mut stream = client.stream().expect("a stream");
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Command::PRIVMSG(target, text) = &message.command {
                let from = message.source_nickname().map(str::to_owned);
                let _ = heard_tx.send((from, target.clone(), text.clone()));
            }
        }
    });
    alice.skip_until("joined #rust crab").await;
    alice.send("#rust: hello crab").await;
    let got = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("a message within 10 s");
    assert_eq!(
        got,
        Some((
            Some("alice".to_owned()),
            "#rust".to_owned(),
            "hello crab".to_owned()
        ))
    );
    client.send_privmsg("#rust", "hello alice").expect("sent");
    alice.expect_prefix("from crab #rust ").await;
    client.send_quit("bye").expect("sent");
    alice.skip_until("left crab").await;
    chat.shutdown().await;
}
