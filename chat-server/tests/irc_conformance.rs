//! Regression tests for what the public IRC conformance suite (irctest, run by
//! `tests/irctest/run.sh`) found wrong in the IRC listener: each test here is the
//! smallest case of one irctest failure, so it stays fixed without irctest.

mod common;

use base64::Engine as _;
use chat_server::Config;
use chat_tests::irc::{IrcClient, IrcLine};
use common::{Chat, Mode, both_modes};

const SERVER: &str = "My.Little.Server";

fn config() -> Config {
    Config {
        server_name: SERVER.to_owned(),
        ..Config::default()
    }
}

/// Every line of `lines` as it came, for assertion messages.
fn raw(lines: &[IrcLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

/// Replies the reader builds itself (here `PONG`) end in exactly one `\r\n`: irctest
/// refuses a line with a stray `\r` in it.
#[tokio::test]
async fn replies_made_by_the_reader_end_in_one_crlf() {
    let server = common::start(config()).await;
    let (mut client, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    client.send("PING abcdef").await;
    let pong = client.next("PONG").await;
    assert_eq!(pong.params, [SERVER, "abcdef"], "{}", pong.raw);
    assert!(!pong.raw.contains('\r'), "{:?}", pong.raw);
    client.send("FOOBAR").await;
    let lines = client.sync().await;
    assert!(
        lines.iter().all(|l| !l.raw.contains('\r')),
        "{:?}",
        raw(&lines)
    );
    server.shutdown().await;
}

/// Modern IRC: `USER` with an empty real name lacks a parameter (461), and registration
/// waits for a good one.
#[tokio::test]
async fn an_empty_real_name_is_a_missing_parameter() {
    let server = common::start(config()).await;
    let mut client = IrcClient::connect(server.irc_addr).await;
    client.send("NICK foo").await;
    client.send("USER username * * :").await;
    client.expect_reply("461", &["foo", "USER"]).await;
    client.send("USER username * * :Real Name").await;
    client.next("001").await;
    server.shutdown().await;
}

/// A client's own `WHOIS` shows the username and real name it registered with, whatever
/// characters they hold (irctest's non-ASCII username test looks for the real name).
#[tokio::test]
async fn own_whois_shows_the_username_and_real_name() {
    let server = common::start(config()).await;
    let mut client = IrcClient::connect(server.irc_addr).await;
    client.send("NICK foo").await;
    client.send("USER 😊😊 * * :my real name").await;
    client.until("422").await;
    client.send("WHOIS foo").await;
    let user = client.next("311").await;
    assert_eq!(
        user.params,
        ["foo", "foo", "😊😊", SERVER, "*", "my real name"],
        "{}",
        user.raw
    );
    server.shutdown().await;
}

/// `multi-prefix` and `userhost-in-names` are offered (irctest's `CAP REQ` tests ask for
/// both); with the latter, `353` names members as `nick!user@host`.
#[tokio::test]
async fn userhost_in_names_and_multi_prefix() {
    let server = common::start(config()).await;
    let (mut client, welcome) =
        IrcClient::register(server.irc_addr, "foo", &["multi-prefix userhost-in-names"]).await;
    let ack = welcome
        .iter()
        .find(|l| l.command == "CAP" && l.param(1) == "ACK");
    assert!(ack.is_some(), "{:?}", raw(&welcome));
    client.send("JOIN #chan").await;
    let names = client.next("353").await;
    assert_eq!(
        names.params,
        ["foo", "=", "#chan", "@foo!foo@My.Little.Server"],
        "{}",
        names.raw
    );
    client.next("366").await;
    server.shutdown().await;
}

/// A topic change that comes right after a member's own JOIN (no topic was set) reaches it
/// as `TOPIC`, not as the join's `332`/`333`.
#[tokio::test]
async fn a_topic_change_after_joining_is_a_topic_line() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    let (mut bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    bar.send("JOIN #chan").await;
    bar.until("366").await;
    bar.sync().await;
    foo.send("TOPIC #chan :T0P1C").await;
    let echo = foo.next("TOPIC").await;
    assert_eq!(echo.params, ["#chan", "T0P1C"], "{}", echo.raw);
    let seen = bar.recv().await;
    assert_eq!(seen.command, "TOPIC", "{}", seen.raw);
    assert_eq!(seen.params, ["#chan", "T0P1C"], "{}", seen.raw);
    server.shutdown().await;
}

/// `KICK`: without a comment the kicker's nick is the comment (RFC 2812); a channel
/// that does not exist is 403; `KICK #a,#b x,y` pairs channels and nicks.
#[tokio::test]
async fn kick_comment_nonexistent_channel_and_pairs() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    let mut others = Vec::new();
    for nick in ["bar", "baz", "qux"] {
        let (mut client, _) = IrcClient::register(server.irc_addr, nick, &[]).await;
        client.send("JOIN #chan").await;
        client.until("366").await;
        others.push(client);
    }
    foo.sync().await;
    foo.send("KICK #chan bar").await;
    let kick = foo.next("KICK").await;
    assert_eq!(kick.params, ["#chan", "bar", "foo"], "{}", kick.raw);

    foo.send("KICK #chan,#chan baz,qux :bye").await;
    let lines = foo.sync().await;
    let kicks: Vec<_> = lines.iter().filter(|l| l.command == "KICK").collect();
    assert_eq!(kicks.len(), 2, "{:?}", raw(&lines));
    assert_eq!(kicks[0].params, ["#chan", "baz", "bye"]);
    assert_eq!(kicks[1].params, ["#chan", "qux", "bye"]);

    foo.send("KICK #nonexistent bar").await;
    foo.expect_reply("403", &["foo", "#nonexistent"]).await;
    server.shutdown().await;
}

/// `INVITE` to a channel the inviter is not in is 442 (not 441, which is about the
/// target).
#[tokio::test]
async fn invite_from_outside_the_channel_is_442() {
    let server = common::start(config()).await;
    let (mut baz, _) = IrcClient::register(server.irc_addr, "baz", &[]).await;
    baz.send("JOIN #chan").await;
    baz.until("366").await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    let (_bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    foo.send("INVITE bar #chan").await;
    foo.expect_reply("442", &["foo", "#chan"]).await;
    server.shutdown().await;
}

/// `NAMES`: one `366` naming the list as given, after a `353` per existing channel; a
/// channel that does not exist, or an invalid name, gets only that `366`.
#[tokio::test]
async fn names_of_several_missing_and_invalid_channels() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    for channel in ["#chan1", "#chan2"] {
        foo.send(&format!("JOIN {channel}")).await;
        foo.until("366").await;
    }
    foo.send("NAMES #chan1,#chan2").await;
    let lines = foo.sync().await;
    let got: Vec<_> = lines.iter().map(|l| l.params.clone()).collect();
    assert_eq!(
        got,
        [
            vec!["foo", "=", "#chan1", "@foo"],
            vec!["foo", "=", "#chan2", "@foo"],
            vec!["foo", "#chan1,#chan2", "End of /NAMES list"],
        ],
        "{:?}",
        raw(&lines)
    );
    for name in ["invalid", "#nonexisting"] {
        foo.send(&format!("NAMES {name}")).await;
        let lines = foo.sync().await;
        assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
        assert_eq!(lines[0].command, "366", "{:?}", raw(&lines));
        assert_eq!(lines[0].param(1), name, "{:?}", raw(&lines));
    }
    server.shutdown().await;
}

/// A secret (`+s`) channel's `353` has the `@` symbol (RFC 2812), in `NAMES` and in the
/// names a joiner gets.
#[tokio::test]
async fn secret_channels_are_at_in_names() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    foo.send("MODE #chan +s").await;
    foo.sync().await;
    foo.send("NAMES #chan").await;
    let names = foo.next("353").await;
    assert_eq!(names.params, ["foo", "@", "#chan", "@foo"], "{}", names.raw);
    let (mut bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    bar.send("JOIN #chan").await;
    let names = bar.next("353").await;
    assert_eq!(names.param(1), "@", "{}", names.raw);
    server.shutdown().await;
}

/// `TOPIC #chan` of a channel that does not exist is 403, not 331 (Modern IRC).
#[tokio::test]
async fn topic_of_a_missing_channel_is_403() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    foo.send("TOPIC #nonexistent").await;
    let lines = foo.sync().await;
    assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
    assert_eq!(lines[0].command, "403", "{:?}", raw(&lines));
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    foo.send("TOPIC #chan").await;
    let lines = foo.sync().await;
    assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
    assert_eq!(lines[0].command, "331", "{:?}", raw(&lines));
    server.shutdown().await;
}

/// Registers the native account `name` with `password`.
async fn account(chat: &Chat, name: &str, password: &str) {
    let mut client = chat.login(name).await;
    client.send(&format!("/register {password}")).await;
    client.expect(&format!("registered {name}")).await;
}

/// SASL credentials longer than one `AUTHENTICATE` chunk come in chunks of 400 bytes; one
/// of exactly 400 is followed by `AUTHENTICATE +`; a chunk over 400 is 905.
#[tokio::test]
async fn sasl_credentials_in_chunks() {
    let chat = Chat::start_with_accounts(Mode::Local, config()).await;
    let long = "bar".repeat(100);
    account(&chat, "foo", &long).await;
    // 300 + 2 + 2 * 3 bytes: 412 of base64, in chunks of 400 and 12.
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("foo\0foo\0{long}"));
    assert!(blob.len() > 400 && blob.len() < 800);
    // 292 + 2 + 2 * 3 bytes: exactly 400 of base64, then `+`.
    let exact = "ba".repeat(146);
    account(&chat, "qux", &exact).await;
    let blob400 = base64::engine::general_purpose::STANDARD.encode(format!("qux\0qux\0{exact}"));
    assert_eq!(blob400.len(), 400);
    for (nick, chunks) in [
        ("foo", vec![&blob[..400], &blob[400..]]),
        ("qux", vec![blob400.as_str(), "+"]),
    ] {
        let mut client = IrcClient::connect(chat.irc_addr(0)).await;
        client.send("CAP REQ :sasl").await;
        client.next("CAP").await;
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        client.send("AUTHENTICATE PLAIN").await;
        client.next("AUTHENTICATE").await;
        for chunk in chunks {
            client.send(&format!("AUTHENTICATE {chunk}")).await;
        }
        client.expect_reply("900", &[]).await;
        client.expect_reply("903", &[]).await;
    }
    let mut client = IrcClient::connect(chat.irc_addr(0)).await;
    client.send("CAP REQ :sasl").await;
    client.next("CAP").await;
    client.send("AUTHENTICATE PLAIN").await;
    client.next("AUTHENTICATE").await;
    client
        .send(&format!("AUTHENTICATE {}", "A".repeat(404)))
        .await;
    client.expect_reply("905", &[]).await;
    chat.shutdown().await;
}

/// The `time` of a message as a `CHATHISTORY` bound excludes that message: a timestamp
/// stands for its whole millisecond of ids.
#[tokio::test]
async fn chathistory_timestamp_bounds_are_exclusive() {
    let server = common::start(config()).await;
    let caps = ["batch message-tags server-time echo-message draft/chathistory"];
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &caps).await;
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    let mut echoes = Vec::new();
    for i in 0..4 {
        foo.send(&format!("PRIVMSG #chan :message {i}")).await;
        echoes.push(foo.next("PRIVMSG").await);
        // Not a barrier: the bounds are timestamps in milliseconds, which must differ.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let time = |i: usize| echoes[i].tag("time").expect("a time tag").to_owned();
    let texts = |lines: Vec<IrcLine>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.command == "PRIVMSG")
            .map(|l| l.param(1).to_owned())
            .collect()
    };
    for (query, want) in [
        (format!("LATEST #chan timestamp={} 10", time(1)), vec![2, 3]),
        (format!("AFTER #chan timestamp={} 10", time(1)), vec![2, 3]),
        (format!("BEFORE #chan timestamp={} 10", time(2)), vec![0, 1]),
        (
            format!(
                "BETWEEN #chan timestamp={} timestamp={} 10",
                time(0),
                time(3)
            ),
            vec![1, 2],
        ),
    ] {
        foo.send(&format!("CHATHISTORY {query}")).await;
        let got = texts(foo.sync().await);
        let want: Vec<String> = want.iter().map(|i| format!("message {i}")).collect();
        assert_eq!(got, want, "{query}");
    }
    server.shutdown().await;
}

/// `CHATHISTORY` of a channel the client is not in, or that does not exist, is
/// `FAIL CHATHISTORY INVALID_TARGET`, not an empty batch.
#[tokio::test]
async fn chathistory_of_a_channel_one_is_not_in_fails() {
    let server = common::start(config()).await;
    let (mut qux, _) = IrcClient::register(server.irc_addr, "qux", &[]).await;
    qux.send("JOIN #real").await;
    qux.until("366").await;
    let caps = ["batch message-tags server-time draft/chathistory"];
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &caps).await;
    for target in ["#nonexistent", "#real"] {
        foo.send(&format!("CHATHISTORY LATEST {target} * 10")).await;
        let lines = foo.sync().await;
        assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
        assert_eq!(
            lines[0].params[..4],
            ["CHATHISTORY", "INVALID_TARGET", "LATEST", target],
            "{:?}",
            raw(&lines)
        );
        assert_eq!(lines[0].command, "FAIL");
    }
    server.shutdown().await;
}

/// `TIME` is `391` with the server's name; `WHOWAS` (no past nicks are kept) is `406`
/// then `369`, and without a nick `431`.
#[tokio::test]
async fn time_and_whowas() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    foo.send("TIME").await;
    let time = foo.recv().await;
    assert_eq!(time.command, "391", "{}", time.raw);
    assert_eq!(time.param(1), SERVER, "{}", time.raw);
    foo.send("WHOWAS bar").await;
    let lines = foo.sync().await;
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.command.as_str(), l.param(1)))
        .collect();
    assert_eq!(got, [("406", "bar"), ("369", "bar")], "{:?}", raw(&lines));
    foo.send("WHOWAS").await;
    assert_eq!(foo.recv().await.command, "431");
    server.shutdown().await;
}

/// Numerics about another user name that user before the channel: `443` for an
/// `INVITE` of a member, `441` for an op command on someone not in the channel.
#[tokio::test]
async fn user_numerics_name_the_user() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    let (mut bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    bar.send("JOIN #chan").await;
    bar.until("366").await;
    let (_baz, _) = IrcClient::register(server.irc_addr, "baz", &[]).await;
    foo.sync().await;
    foo.send("INVITE bar #chan").await;
    foo.expect_reply("443", &["foo", "bar", "#chan"]).await;
    foo.send("MODE #chan +o baz").await;
    foo.expect_reply("441", &["foo", "baz", "#chan"]).await;
    server.shutdown().await;
}

/// `WHOIS` sends only numerics Modern IRC defines for it, with their parameters: no
/// `320` (operator-configured text), no `317` (it needs a sign-on time the broker does
/// not keep); the idle time and sessions are in `312`'s text.
#[tokio::test]
async fn whois_sends_only_standard_numerics() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    let (_bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    foo.send("WHOIS bar").await;
    let lines = foo.until("318").await;
    let commands: Vec<_> = lines.iter().map(|l| l.command.as_str()).collect();
    assert_eq!(commands, ["311", "312", "318"], "{:?}", raw(&lines));
    assert_eq!(lines[1].params[..3], ["foo", "bar", SERVER]);
    assert!(lines[1].param(3).contains("idle"), "{}", lines[1].raw);
    server.shutdown().await;
}

/// A labeled `PRIVMSG` to oneself with echo-message: the echo is the labeled reply, the
/// delivery is not part of it (labeled-response: one labeled line, no batch).
#[tokio::test]
async fn a_labeled_message_to_oneself_labels_only_the_echo() {
    let server = common::start(config()).await;
    let caps = ["echo-message batch labeled-response"];
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &caps).await;
    foo.send("@label=12345 PRIVMSG foo :hi").await;
    let lines = foo.sync().await;
    assert_eq!(lines.len(), 2, "{:?}", raw(&lines));
    assert!(
        lines.iter().all(|l| l.command == "PRIVMSG"),
        "{:?}",
        raw(&lines)
    );
    let labeled: Vec<_> = lines.iter().filter_map(|l| l.tag("label")).collect();
    assert_eq!(labeled, ["12345"], "{:?}", raw(&lines));
    server.shutdown().await;
}

/// `LUSERS` counts the users online (`251`, `255`, `265`, `266`) instead of `421`.
#[tokio::test]
async fn lusers_counts_the_users_online() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    let _native = server.login("bar").await;
    foo.send("LUSERS").await;
    let lines = foo.sync().await;
    let commands: Vec<_> = lines.iter().map(|l| l.command.as_str()).collect();
    assert_eq!(commands, ["251", "255", "265", "266"], "{:?}", raw(&lines));
    assert_eq!(
        lines[0].params,
        ["foo", "There are 2 users and 0 invisible on 1 servers"]
    );
    server.shutdown().await;
}

/// `USERHOST` answers one `302`: `nick=+user@host` for each user online, `-` when away;
/// a nick nobody has is left out.
#[tokio::test]
async fn userhost_says_who_is_away() {
    let server = common::start(config()).await;
    let (mut bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    let (mut qux, _) = IrcClient::register(server.irc_addr, "qux", &[]).await;
    qux.send("USERHOST bar nobody").await;
    let reply = qux.recv().await;
    assert_eq!(reply.command, "302", "{}", reply.raw);
    assert_eq!(
        reply.params,
        ["qux", "bar=+bar@My.Little.Server"],
        "{}",
        reply.raw
    );
    bar.send("AWAY :not here").await;
    bar.next("306").await;
    qux.send("USERHOST bar").await;
    let reply = qux.recv().await;
    assert_eq!(
        reply.params,
        ["qux", "bar=-bar@My.Little.Server"],
        "{}",
        reply.raw
    );
    server.shutdown().await;
}

/// Another IRC user's `WHO` and `WHOIS` show the username and real name it registered
/// with; `WHO <mask>` lists only the matching nicks, and `G` for one who is away.
#[tokio::test]
async fn who_and_whois_show_users_as_they_registered() {
    let server = common::start(config()).await;
    let mut cool = IrcClient::connect(server.irc_addr).await;
    cool.send("NICK coolNick").await;
    cool.send("USER myusernam 0 * :My UniqueReal Name").await;
    cool.until("422").await;
    let (mut other, _) = IrcClient::register(server.irc_addr, "otherNick", &[]).await;
    let expected = [
        "otherNick",
        "*",
        "myusernam",
        SERVER,
        SERVER,
        "coolNick",
        "H",
        "0 My UniqueReal Name",
    ];
    for mask in ["coolNick", "coolnick", "coolni*"] {
        other.send(&format!("WHO {mask}")).await;
        let lines = other.sync().await;
        assert_eq!(lines.len(), 2, "{mask}: {:?}", raw(&lines));
        assert_eq!(lines[0].params, expected, "{mask}: {:?}", raw(&lines));
        assert_eq!(lines[1].command, "315");
        assert_eq!(lines[1].param(1), mask);
    }
    other.send("WHOIS coolNick").await;
    let user = other.next("311").await;
    assert_eq!(
        user.params,
        [
            "otherNick",
            "coolNick",
            "myusernam",
            SERVER,
            "*",
            "My UniqueReal Name"
        ]
    );
    other.until("318").await;
    cool.send("AWAY :be right back").await;
    cool.next("306").await;
    other.send("WHO coolNick").await;
    let lines = other.sync().await;
    assert_eq!(lines.len(), 2, "{:?}", raw(&lines));
    assert_eq!(lines[0].param(6), "G", "{:?}", raw(&lines));
    server.shutdown().await;
}

/// `005` says client-only tags are not relayed (`CLIENTTAGDENY=*`), as they are not:
/// a client that relies on them can tell before it tries.
#[tokio::test]
async fn isupport_denies_client_tags() {
    let server = common::start(config()).await;
    let (_client, welcome) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    let tokens: Vec<&str> = welcome
        .iter()
        .filter(|l| l.command == "005")
        .flat_map(|l| l.params[1..l.params.len() - 1].iter().map(String::as_str))
        .collect();
    assert!(tokens.contains(&"CLIENTTAGDENY=*"), "{tokens:?}");
    server.shutdown().await;
}

/// A user who disconnects is one `QUIT` for those sharing a channel with it (not a
/// `PART` per channel first), and nothing for the others; `PART #a,#b` is still two
/// `PART`s.
#[tokio::test]
async fn a_disconnect_is_one_quit_for_channel_members_only() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    let (mut bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    let (mut baz, _) = IrcClient::register(server.irc_addr, "baz", &[]).await;
    for client in [&mut foo, &mut bar] {
        for channel in ["#a", "#b"] {
            client.send(&format!("JOIN {channel}")).await;
            client.until("366").await;
        }
    }
    foo.sync().await;
    bar.send("PART #a,#b").await;
    bar.sync().await;
    let lines = foo.sync().await;
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.command.as_str(), l.param(0)))
        .collect();
    assert_eq!(got, [("PART", "#a"), ("PART", "#b")], "{:?}", raw(&lines));
    for channel in ["#a", "#b"] {
        bar.send(&format!("JOIN {channel}")).await;
        bar.until("366").await;
    }
    bar.sync().await;
    foo.sync().await;
    bar.send("QUIT :bye").await;
    bar.until_eof().await;
    let quit = foo.recv().await;
    assert_eq!(quit.command, "QUIT", "{}", quit.raw);
    assert_eq!(quit.nick(), Some("bar"), "{}", quit.raw);
    baz.send("QUIT").await;
    baz.until_eof().await;
    let lines = foo.sync().await;
    assert!(lines.is_empty(), "{:?}", raw(&lines));
    server.shutdown().await;
}

/// IRCv3 `MONITOR`: `+` answers `730`/`731` at once, then each login and departure of a
/// watched nick is `730`/`731`; `L` lists, `-` and `C` answer nothing; `S` says the
/// status of every watched nick.
#[tokio::test]
async fn monitor_watches_logins_and_departures() {
    let server = common::start(config()).await;
    let (mut foo, welcome) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    assert!(welcome.iter().any(|l| l.raw.contains(" MONITOR=100 ")));
    let (_bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    foo.send("MONITOR + bar,qux").await;
    let lines = foo.sync().await;
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.command.as_str(), l.param(1)))
        .collect();
    assert_eq!(
        got,
        [("730", "bar!bar@My.Little.Server"), ("731", "qux")],
        "{:?}",
        raw(&lines)
    );
    let (mut qux, _) = IrcClient::register(server.irc_addr, "qux", &[]).await;
    let online = foo.recv().await;
    assert_eq!(online.command, "730", "{}", online.raw);
    assert_eq!(online.param(1), "qux!qux@My.Little.Server");
    qux.send("QUIT").await;
    qux.until_eof().await;
    let offline = foo.recv().await;
    assert_eq!((offline.command.as_str(), offline.param(1)), ("731", "qux"));
    foo.send("MONITOR S").await;
    assert_eq!(foo.sync().await.len(), 2);
    foo.send("MONITOR - bar").await;
    foo.send("MONITOR L").await;
    let lines = foo.sync().await;
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.command.as_str(), l.param(1)))
        .collect();
    assert_eq!(got, [("732", "qux"), ("733", "End of MONITOR list")]);
    foo.send("MONITOR C").await;
    foo.send("MONITOR L").await;
    let lines = foo.sync().await;
    assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
    server.shutdown().await;
}

/// `HELP` (and `HELPOP`) answer `704`, `705`..., `706`, or `524` for an unknown subject;
/// `LINKS` shows no links (a cluster is one server to IRC), only `365`.
#[tokio::test]
async fn help_and_links() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    for command in ["HELP", "HELPOP"] {
        foo.send(&format!("{command} privmsg")).await;
        let lines = foo.sync().await;
        let commands: Vec<_> = lines.iter().map(|l| l.command.as_str()).collect();
        assert_eq!(commands, ["704", "705", "706"], "{:?}", raw(&lines));
        assert!(lines.iter().all(|l| l.param(1) == "privmsg"));
        foo.send(&format!("{command} THISISNOTACOMMAND")).await;
        let lines = foo.sync().await;
        assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
        assert_eq!(lines[0].command, "524");
        foo.send(command).await;
        let lines = foo.sync().await;
        assert_eq!(lines.first().map(|l| l.command.as_str()), Some("704"));
        assert_eq!(lines.last().map(|l| l.command.as_str()), Some("706"));
    }
    foo.send("LINKS").await;
    let lines = foo.sync().await;
    assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
    assert_eq!(lines[0].params[..2], ["foo", "*"]);
    assert_eq!(lines[0].command, "365");
    server.shutdown().await;
}

/// `LIST` takes ELIST `MNU` filters: masks, `!mask`, `<n` and `>n` members (and `005`
/// says so); a channel that does not exist is left out.
#[tokio::test]
async fn list_filters() {
    let server = common::start(config()).await;
    let (mut foo, welcome) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    assert!(welcome.iter().any(|l| l.raw.contains(" ELIST=MNU ")));
    let (mut bar, _) = IrcClient::register(server.irc_addr, "bar", &[]).await;
    for channel in ["#chan1", "#chan2"] {
        foo.send(&format!("JOIN {channel}")).await;
        foo.until("366").await;
    }
    bar.send("JOIN #chan2").await;
    bar.until("366").await;
    for (filters, want) in [
        ("", vec!["#chan1", "#chan2"]),
        ("*an1", vec!["#chan1"]),
        ("#c*n2", vec!["#chan2"]),
        ("!*an1", vec!["#chan2"]),
        (">1", vec!["#chan2"]),
        ("<2", vec!["#chan1"]),
        ("#nonexistent", vec![]),
    ] {
        foo.send(&format!("LIST {filters}")).await;
        let lines = foo.sync().await;
        let got: Vec<&str> = lines
            .iter()
            .filter(|l| l.command == "322")
            .map(|l| l.param(1))
            .collect();
        assert_eq!(got, want, "LIST {filters}: {:?}", raw(&lines));
        assert_eq!(lines.last().map(|l| l.command.as_str()), Some("323"));
    }
    server.shutdown().await;
}

/// draft/read-marker for a client not logged in to an account (the native protocol
/// keeps markers for accounts only): the connection keeps its own, which only move
/// forward; a JOIN says the channel's before `366`.
#[tokio::test]
async fn read_markers_without_an_account() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &["draft/read-marker"]).await;
    foo.send("JOIN #test").await;
    let lines = foo.until("366").await;
    let markread = lines.iter().find(|l| l.command == "MARKREAD");
    assert_eq!(
        markread.map(|l| l.params.clone()),
        Some(vec!["#test".to_owned(), "*".to_owned()]),
        "{:?}",
        raw(&lines)
    );
    let stamp = "timestamp=2019-01-04T14:33:26.123Z";
    for (sent, answer) in [
        (format!("MARKREAD #test {stamp}"), stamp),
        (
            "MARKREAD #test timestamp=2017-06-26T15:57:11.123Z".to_owned(),
            stamp,
        ),
        ("MARKREAD #test".to_owned(), stamp),
        ("MARKREAD bar".to_owned(), "*"),
    ] {
        foo.send(&sent).await;
        let lines = foo.sync().await;
        assert_eq!(lines.len(), 1, "{sent}: {:?}", raw(&lines));
        assert_eq!(lines[0].command, "MARKREAD", "{sent}: {:?}", raw(&lines));
        assert_eq!(lines[0].param(1), answer, "{sent}");
    }
    foo.send("PART #test").await;
    foo.sync().await;
    foo.send("JOIN #test").await;
    let lines = foo.until("366").await;
    let markread = lines.iter().find(|l| l.command == "MARKREAD");
    assert_eq!(
        markread.map(|l| l.param(1)),
        Some(stamp),
        "{:?}",
        raw(&lines)
    );
    server.shutdown().await;
}

/// A client logged in as the account `foo` (password `foo-password`) with SASL PLAIN,
/// with `draft/read-marker`, registered.
async fn foo_over_sasl(addr: std::net::SocketAddr) -> IrcClient {
    let mut client = IrcClient::connect(addr).await;
    client.send("CAP REQ :sasl draft/read-marker").await;
    client.next("CAP").await;
    client.send("NICK foo").await;
    client.send("USER foo 0 * :foo").await;
    client.send("AUTHENTICATE PLAIN").await;
    client.next("AUTHENTICATE").await;
    let blob = base64::engine::general_purpose::STANDARD.encode("foo\0foo\0foo-password");
    client.send(&format!("AUTHENTICATE {blob}")).await;
    client.next("903").await;
    client.send("CAP END").await;
    client.until("422").await;
    client
}

/// A registered account's JOIN says its stored read marker before `366`.
#[tokio::test]
async fn a_join_says_the_accounts_read_marker() {
    let chat = Chat::start_with_accounts(Mode::Local, config()).await;
    account(&chat, "foo", "foo-password").await;
    let mut client = foo_over_sasl(chat.irc_addr(0)).await;
    client.send("JOIN #test").await;
    client.until("366").await;
    let stamp = "timestamp=2019-01-04T14:33:26.123Z";
    client.send(&format!("MARKREAD #test {stamp}")).await;
    client.sync().await;
    client.send("PART #test").await;
    client.sync().await;
    client.send("JOIN #test").await;
    let lines = client.until("366").await;
    let markread = lines.iter().find(|l| l.command == "MARKREAD");
    assert!(
        markread.is_some_and(|l| l.param(1).starts_with("timestamp=2019-01-04T14:33:26.")),
        "{:?}",
        raw(&lines)
    );
    chat.shutdown().await;
}

/// `WHOWAS` remembers the IRC users of this server who left: `314` with the username
/// and real name they registered with, newest first, up to the count asked.
#[tokio::test]
async fn whowas_remembers_irc_users_who_left() {
    let server = common::start(config()).await;
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    for ident in ["ident2", "ident3"] {
        let mut bar = IrcClient::connect(server.irc_addr).await;
        bar.send("NICK bar").await;
        bar.send(&format!("USER {ident} 0 * :Real Name")).await;
        bar.until("422").await;
        bar.send("QUIT").await;
        bar.until_eof().await;
    }
    foo.send("WHOWAS bar").await;
    let lines = foo.sync().await;
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.command.as_str(), l.param(2)))
        .collect();
    assert_eq!(
        got,
        [
            ("314", "ident3"),
            ("312", SERVER),
            ("314", "ident2"),
            ("312", SERVER),
            ("369", "End of WHOWAS")
        ],
        "{:?}",
        raw(&lines)
    );
    assert_eq!(
        lines[0].params,
        ["foo", "bar", "ident3", SERVER, "*", "Real Name"]
    );
    foo.send("WHOWAS bar 1").await;
    assert_eq!(foo.sync().await.len(), 3);
    server.shutdown().await;
}

/// With echo-message, a NOTICE to a channel is echoed as a NOTICE (the room line comes
/// with a note that says so).
#[tokio::test]
async fn a_channel_notice_is_echoed_as_a_notice() {
    let server = common::start(config()).await;
    let caps = ["echo-message server-time"];
    let (mut foo, _) = IrcClient::register(server.irc_addr, "foo", &caps).await;
    foo.send("JOIN #chan").await;
    foo.until("366").await;
    foo.send("NOTICE #chan :hello everyone").await;
    let lines = foo.sync().await;
    assert_eq!(lines.len(), 1, "{:?}", raw(&lines));
    assert_eq!(lines[0].command, "NOTICE", "{:?}", raw(&lines));
    assert_eq!(lines[0].params, ["#chan", "hello everyone"]);
    assert!(lines[0].tag("time").is_some());
    foo.send("PRIVMSG #chan :hello again").await;
    let lines = foo.sync().await;
    assert_eq!(lines[0].command, "PRIVMSG", "{:?}", raw(&lines));
    server.shutdown().await;
}

/// The commands that ask the broker about another user (`USERHOST`, `MONITOR`, `WHO
/// <nick>`) answer about a user on the other node of a cluster as about one here, and
/// nothing more.
async fn questions_about_a_user_elsewhere(mode: Mode) {
    let chat = Chat::start(mode, config()).await;
    let (mut asker, _) = IrcClient::register(chat.irc_addr(0), "foo", &[]).await;
    let (_bar, _) = IrcClient::register(chat.irc_addr(1), "bar", &[]).await;
    asker.sync().await;
    // A late answer to one question comes from the other node the way the next
    // question's answer does, so it would show before that answer: each question is the
    // barrier for the one before, and a last USERHOST for WHOIS.
    for (command, want) in [
        ("USERHOST bar", vec!["302"]),
        ("MONITOR + bar", vec!["730"]),
        ("WHO bar", vec!["352", "315"]),
        ("WHOIS bar", vec!["311", "312", "318"]),
        ("USERHOST bar", vec!["302"]),
    ] {
        asker.send(command).await;
        let lines = asker.sync().await;
        let got: Vec<&str> = lines.iter().map(|l| l.command.as_str()).collect();
        assert_eq!(got, want, "{command}: {:?}", raw(&lines));
    }
    chat.shutdown().await;
}
both_modes!(questions_about_a_user_elsewhere);

/// A JOIN in a cluster: the probe before it (modes, names, the account's read marker)
/// answers nothing of its own; `353` has `@` for a secret channel.
async fn join_and_names_with_probes(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, config()).await;
    account(&chat, "foo", "foo-password").await;
    let (mut bar, _) = IrcClient::register(chat.irc_addr(1), "bar", &[]).await;
    bar.send("JOIN #chan").await;
    bar.until("366").await;
    bar.send("MODE #chan +s").await;
    bar.sync().await;
    let mut asker = foo_over_sasl(chat.irc_addr(0)).await;
    asker.send("JOIN #chan").await;
    let mut lines = asker.sync().await;
    // In a cluster the account's marker may come from Redis after the PONG.
    if !lines.iter().any(|l| l.command == "MARKREAD") {
        lines.extend(asker.until("MARKREAD").await);
    }
    lines.extend(asker.sync().await);
    let mut got: Vec<&str> = lines.iter().map(|l| l.command.as_str()).collect();
    if mode == Mode::Cluster {
        // The account's marker may come from Redis after the join's end.
        got.sort_unstable();
        assert_eq!(got, ["353", "366", "JOIN", "MARKREAD"], "{:?}", raw(&lines));
    } else {
        assert_eq!(got, ["JOIN", "353", "MARKREAD", "366"], "{:?}", raw(&lines));
    }
    let names = lines.iter().find(|l| l.command == "353").expect("353");
    assert_eq!(names.param(1), "@", "{:?}", raw(&lines));
    chat.shutdown().await;
}
both_modes!(join_and_names_with_probes);

/// `AUTHENTICATE` after registration is 462: SASL cannot change who a registered client
/// is (irctest then skips its post-registration SASL tests instead of failing them).
#[tokio::test]
async fn sasl_after_registration_is_462() {
    let server = common::start(config()).await;
    let (mut client, _) = IrcClient::register(server.irc_addr, "foo", &["sasl"]).await;
    client.send("AUTHENTICATE PLAIN").await;
    client.expect_reply("462", &[]).await;
    server.shutdown().await;
}
