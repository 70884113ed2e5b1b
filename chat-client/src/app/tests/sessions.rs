//! One account on several devices: copies of what we sent elsewhere, read markers both
//! ways, the session count, away and whois, the login that finds the account in rooms
//! already; and older history and the keepalive.

use super::*;

/// A client logged in with a password, alone on its account so far.
fn account() -> App {
    let mut app = app().with_account(true);
    assert_eq!(
        login(&mut app),
        [vec![send("/who"), send("/whois alice")], vec![]]
    );
    assert_eq!(server(&mut app, "whois alice 0 1"), []);
    assert_eq!(app.sessions(), 1);
    app
}

/// Joins `room` as an account (which also asks for the room's read marker), confirmed
/// with an empty history and no marker.
fn join_as_account(app: &mut App, room: &str) {
    assert_eq!(
        enter(app, &format!("/join {room}")),
        [
            send(&format!("/join {room}")),
            send(&format!("/history {room} 50")),
            send(&format!("/mode {room}")),
            send(&format!("/read {room}")),
        ]
    );
    for line in [
        format!("joined {room} alice"),
        format!("names {room} alice,bob"),
        format!("history-end {room} complete"),
        format!("read {room}"),
    ] {
        assert_eq!(server(app, &line), [], "{line}");
    }
    assert_eq!(label(app), room);
}

fn at(seconds: u64) -> Clock {
    let mut clock = clock();
    clock.now += Duration::from_secs(seconds);
    clock
}

fn server_at(app: &mut App, line: &str, clock: Clock) -> Vec<Command> {
    let line = line.parse().expect("a server line");
    app.update(Msg::Net(NetEvent::Line(line)), clock)
}

fn buffer<'a>(app: &'a App, id: &BufferId) -> &'a Buffer {
    let index = app.buffers().find(id).expect("the buffer is open");
    &app.buffers().all()[index]
}

fn rust() -> BufferId {
    BufferId::Room("#rust".parse().expect("a room"))
}

fn texts(buffer: &Buffer) -> Vec<String> {
    buffer
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { from, text, .. } => Some(format!("{from}: {text}")),
            EntryKind::Own { text, .. } => Some(format!("me: {text}")),
            EntryKind::Marker(m) => Some(format!("[{m}]")),
            _ => None,
        })
        .collect()
}

#[test]
fn what_we_sent_from_another_device_shows_as_ours_where_it_went() {
    let mut app = account();
    join_as_account(&mut app, "#rust");
    app.update(alt(KeyCode::Char('2')), clock());
    // The first sign of another session asks how many there are.
    assert_eq!(
        server(&mut app, "sent Bob: see you at 10"),
        [send("/whois alice")]
    );
    let bob = buffer(&app, &BufferId::Query(name("bob")));
    assert_eq!(texts(bob), ["me: see you at 10"]);
    assert_eq!(bob.unread, 0, "ours is never unread");
    assert_eq!(server(&mut app, "whois alice 4 2"), []);
    assert_eq!(app.sessions(), 2);
    assert_eq!(server(&mut app, "sent *: hello all"), [], "known already");
    assert_eq!(texts(current(&app)), ["me: hello all"]);

    // Our room line, with our name in it: no bell, no mention, not unread.
    assert_eq!(
        server(&mut app, "from alice #rust 5: alice here, on the phone"),
        []
    );
    let room = buffer(&app, &rust());
    assert!(matches!(
        &room.entries().back().map(|e| &e.kind),
        Some(EntryKind::Own { id: Some(id), pending: false, .. }) if id.get() == 5
    ));
    assert_eq!((room.unread, room.mentioned), (0, false));
    server(&mut app, "from alice #rust 5: alice here, on the phone");
    assert_eq!(
        texts(buffer(&app, &rust())),
        ["me: alice here, on the phone"],
        "once"
    );
}

#[test]
fn a_read_marker_from_another_device_clears_unread_and_moves_the_new_line() {
    let mut app = account();
    join_as_account(&mut app, "#rust");
    app.update(alt(KeyCode::Char('2')), at(5));
    for id in 1..=5 {
        server_at(&mut app, &format!("from bob #rust {id}: line {id}"), at(5));
    }
    let seq_of = |app: &App, text: &str| {
        buffer(app, &rust())
            .entries()
            .iter()
            .find(|e| e.kind.text() == Some(text))
            .map(|e| e.seq)
    };
    assert_eq!(buffer(&app, &rust()).unread, 5);
    // Read up to 3 on the laptop: two left here, the new line after line 3.
    assert_eq!(server(&mut app, "read #rust 3"), [send("/whois alice")]);
    let room = buffer(&app, &rust());
    assert_eq!(room.unread, 2);
    assert_eq!(room.marker, seq_of(&app, "line 3"));
    // Our own marker coming back, or an older one, changes nothing.
    assert_eq!(server(&mut app, "read #rust 2"), []);
    assert_eq!(buffer(&app, &rust()).unread, 2);
    // A mention read elsewhere is no longer one here.
    server(&mut app, "from bob #rust 6: alice?");
    assert!(buffer(&app, &rust()).mentioned);
    assert_eq!(
        server(&mut app, "read #rust 6"),
        [Command::Title(None)],
        "the title the mention set goes back"
    );
    let room = buffer(&app, &rust());
    assert_eq!((room.unread, room.mentioned), (0, false));
    assert_eq!(room.marker, seq_of(&app, "alice?"));

    // The buffer shown is the user's to read: its marker line stays where it was.
    app.update(alt(KeyCode::Char('3')), at(10));
    let before = current(&app).marker;
    server_at(&mut app, "from bob #rust 7: seven", at(10));
    server_at(&mut app, "read #rust 7", at(10));
    assert_eq!(current(&app).marker, before);
}

#[test]
fn viewing_a_buffer_sends_its_marker_at_most_once_a_second() {
    let mut app = account();
    join_as_account(&mut app, "#rust");
    assert_eq!(
        server_at(&mut app, "from bob #rust 1: one", at(10)),
        [send("/read #rust 1")]
    );
    assert_eq!(server_at(&mut app, "from bob #rust 2: two", at(10)), []);
    let mut almost = at(10);
    almost.now += Duration::from_millis(999);
    assert_eq!(app.update(Msg::Tick, almost), []);
    assert_eq!(app.update(Msg::Tick, at(11)), [send("/read #rust 2")]);
    // Ours coming back is not news.
    assert_eq!(server_at(&mut app, "read #rust 2", at(11)), []);
    // Unseen while another buffer is shown; sent on coming back.
    app.update(alt(KeyCode::Char('2')), at(20));
    assert_eq!(server_at(&mut app, "from bob #rust 3: three", at(20)), []);
    assert_eq!(app.update(Msg::Tick, at(30)), []);
    assert_eq!(
        app.update(alt(KeyCode::Char('3')), at(31)),
        [send("/read #rust 3")]
    );
    // A marker that had to wait goes once the second is up, even from another buffer.
    server_at(&mut app, "from bob #rust 4: four", at(31));
    app.update(alt(KeyCode::Char('2')), at(31));
    assert_eq!(app.update(Msg::Tick, at(32)), [send("/read #rust 4")]);

    // A name without an account has no markers: nothing is sent.
    let mut guest = connected();
    in_room(&mut guest, "#rust");
    assert_eq!(server(&mut guest, "from bob #rust 1: one"), []);
    assert_eq!(guest.update(Msg::Tick, at(5)), []);
}

#[test]
fn whois_and_away_are_shown_readably_where_they_belong() {
    let mut app = connected();
    assert_eq!(enter(&mut app, "/whois bob"), [send("/whois bob")]);
    server(&mut app, "whois bob 300 2");
    assert_eq!(last_notice(&app), "bob is online (2 sessions), idle 5 min");
    server(&mut app, "away bob: lunch, back at 2");
    assert_eq!(last_notice(&app), "bob is away: lunch, back at 2");
    // An answer nobody asked for is not shown.
    server(&mut app, "whois carol 1 1");
    assert_eq!(last_notice(&app), "bob is away: lunch, back at 2");

    // Told after writing to someone away: shown in that conversation.
    enter(&mut app, "/query bob");
    enter(&mut app, "are you there?");
    app.update(alt(KeyCode::Char('2')), clock());
    server(&mut app, "away bob: lunch, back at 2");
    let bob = buffer(&app, &BufferId::Query(name("bob")));
    assert_eq!(
        bob.entries().back().and_then(|e| e.kind.text()),
        Some("bob is away: lunch, back at 2")
    );

    assert_eq!(
        enter(&mut app, "/away gone fishing"),
        [send("/away gone fishing")]
    );
    assert_eq!(app.away().map(MessageText::as_str), Some("gone fishing"));
    assert_eq!(
        last_notice(&app),
        "you are marked away: gone fishing; /away alone when you are back"
    );
    assert_eq!(enter(&mut app, "/away"), [send("/away")]);
    assert_eq!(app.away(), None);
    assert_eq!(last_notice(&app), "you are back");
    disconnect(&mut app, Vec::new());
    enter(&mut app, "/whois bob");
    assert_eq!(
        hint(&app),
        "not connected; try again once connected; ↑ brings the line back"
    );
}

#[test]
fn away_is_the_accounts_and_ours_is_put_back_after_a_lone_reconnect() {
    let mut app = account();
    enter(&mut app, "/away in a meeting");
    // The connection drops; back alone, the server has forgotten it: set it again.
    disconnect(&mut app, Vec::new());
    assert_eq!(app.sessions(), 1);
    assert_eq!(
        login(&mut app),
        [vec![send("/who"), send("/whois alice")], vec![]]
    );
    assert_eq!(
        server(&mut app, "whois alice 0 1"),
        [send("/away in a meeting")]
    );
    assert_eq!(app.away().map(MessageText::as_str), Some("in a meeting"));

    // Back with company: theirs is the account's state (here, back).
    disconnect(&mut app, Vec::new());
    login(&mut app);
    assert_eq!(server(&mut app, "whois alice 0 2"), []);
    assert_eq!(app.away(), None);

    // Set on another device: learnt from the next answer about ourselves (asked once a
    // minute, with the keepalive's ping here), not shown.
    let shown = current(&app).entries().len();
    assert_eq!(
        app.update(Msg::Tick, at(60)),
        [send("/ping"), send("/whois alice")]
    );
    server(&mut app, "whois alice 0 2");
    server(&mut app, "away alice: at lunch");
    assert_eq!(app.away().map(MessageText::as_str), Some("at lunch"));
    assert_eq!(current(&app).entries().len(), shown, "not shown");
    // Not ours: a lone reconnect does not set it again (the other device may have
    // cleared it since).
    disconnect(&mut app, Vec::new());
    login(&mut app);
    assert_eq!(server(&mut app, "whois alice 0 1"), []);
    assert_eq!(app.away(), None);
}

#[test]
fn a_login_that_finds_the_account_in_rooms_catches_up_instead_of_joining() {
    let mut app = account();
    join_as_account(&mut app, "#rust");
    server(&mut app, "from bob #rust 7: seven");
    disconnect(&mut app, Vec::new());
    assert_eq!(
        app.update(Msg::Net(NetEvent::Connected), clock()),
        [send("/who"), send("/whois alice")]
    );
    // Before the answer to /who, the server says which rooms the account is in: #rust
    // (another device kept it), and #go, joined meanwhile on another device.
    for line in [
        "names #rust alice,bob",
        "roles #rust @bob",
        "names #go alice,carol",
    ] {
        assert_eq!(server(&mut app, line), [], "{line}");
    }
    assert_eq!(
        server(&mut app, "users alice,bob,carol"),
        [
            send("/history #rust after 7"),
            send("/mode #rust"),
            send("/read #rust"),
            send("/history #go 50"),
            send("/mode #go"),
            send("/read #go"),
        ]
    );
    let go = buffer(&app, &BufferId::Room("#go".parse().expect("a room")));
    assert!(go.member && go.wanted);
    assert!(
        go.entries()
            .iter()
            .any(|e| e.kind.text() == Some("you are in #go (joined from another session)"))
    );
    assert!(buffer(&app, &rust()).member);
}

#[test]
fn a_join_from_another_device_opens_the_room_without_switching_and_fills_it() {
    let mut app = account();
    assert_eq!(
        server(&mut app, "joined #new alice"),
        [
            send("/history #new 50"),
            send("/mode #new"),
            send("/read #new"),
            send("/whois alice"),
        ]
    );
    assert_eq!(label(&app), "*", "not switched to");
    let new = buffer(&app, &BufferId::Room("#new".parse().expect("a room")));
    assert!(new.member && new.wanted);
    assert_eq!(
        new.entries().back().and_then(|e| e.kind.text()),
        Some("you joined #new (from another session)")
    );
    // Our own /join is ours, as before.
    enter(&mut app, "/join #mine");
    server(&mut app, "joined #mine alice");
    assert_eq!(last_notice(&app), "you joined #mine");
}

#[test]
fn page_up_at_the_top_asks_for_older_messages_once_at_a_time() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    for id in 100..140 {
        server(&mut app, &format!("from bob #rust {id}: line {id}"));
    }
    // Up a page at a time; only the page that reaches the top asks.
    let mut pages = 0;
    let asked = loop {
        pages += 1;
        let asked = app.update(key(KeyCode::PageUp), clock());
        if !asked.is_empty() || pages > 10 {
            break asked;
        }
    };
    assert!(pages > 1, "the first pages scroll");
    assert_eq!(asked, [send("/history #rust before 100 50")]);
    assert_eq!(hint(&app), "asking for older messages of #rust…");
    assert_eq!(
        app.update(key(KeyCode::PageUp), clock()),
        [],
        "one at a time"
    );
    let scroll = current(&app).scroll;
    for line in [
        "history #rust 98 2026-11-29T11:00:00.000Z bob: ninety-eight",
        "history #rust 99 2026-11-29T11:00:01.000Z carol: ninety-nine",
        "history #rust 100 2026-11-29T11:00:02.000Z bob: line 100",
        "history-end #rust complete",
    ] {
        server(&mut app, line);
    }
    let shown = texts(current(&app));
    assert_eq!(
        shown[..4],
        [
            "[older messages of #rust: 2]",
            "bob: ninety-eight",
            "carol: ninety-nine",
            "bob: line 100"
        ]
    );
    assert_eq!(current(&app).scroll, scroll, "the view stays where it was");
    assert_eq!(
        app.update(key(KeyCode::PageUp), clock()),
        [send("/history #rust before 98 50")]
    );
    // Each batch under its own marker, the older one above.
    server(
        &mut app,
        "history #rust 97 2026-11-29T10:00:00.000Z bob: ninety-seven",
    );
    server(&mut app, "history-end #rust complete");
    assert_eq!(
        texts(current(&app))[..4],
        [
            "[older messages of #rust: 1]",
            "bob: ninety-seven",
            "[older messages of #rust: 2]",
            "bob: ninety-eight",
        ]
    );
    assert_eq!(
        app.update(key(KeyCode::PageUp), clock()),
        [send("/history #rust before 97 50")]
    );
    server(&mut app, "history-end #rust complete");
    assert_eq!(hint(&app), "no older messages in #rust");
    // Issue 21, features: the top says so, once.
    assert_eq!(
        texts(current(&app))[..2],
        ["[beginning of history]", "[older messages of #rust: 1]"]
    );
    assert_eq!(
        app.update(key(KeyCode::PageUp), clock()),
        [],
        "nothing older"
    );
    assert_eq!(hint(&app), "no older messages in #rust", "said again");
    let markers = texts(current(&app))
        .iter()
        .filter(|t| t.as_str() == "[beginning of history]")
        .count();
    assert_eq!(markers, 1);
}

#[test]
fn history_gives_ids_to_direct_messages_shown_as_they_came() {
    let mut app = connected();
    server(&mut app, "from bob: are you there?");
    enter(&mut app, "/query bob");
    enter(&mut app, "yes");
    assert_eq!(enter(&mut app, "/history"), [send("/history @bob 50")]);
    for line in [
        "history @bob 7 2026-11-29T11:00:00.000Z bob: earlier",
        "history @bob 8 2026-11-29T11:00:01.000Z bob: are you there?",
        "history @bob 9 2026-11-29T11:00:02.000Z alice: yes",
        "history-end @bob complete",
    ] {
        server(&mut app, line);
    }
    assert_eq!(
        texts(current(&app)),
        [
            "[history of @bob: 1]",
            "bob: earlier",
            "bob: are you there?",
            "me: yes"
        ]
    );
    assert_eq!(current(&app).first_id().map(MessageId::get), Some(7));
    assert_eq!(current(&app).last_id().map(MessageId::get), Some(9));
}

#[test]
fn a_silent_connection_is_pinged_and_given_up_when_nothing_answers() {
    let mut app = connected();
    assert_eq!(app.update(Msg::Tick, at(59)), []);
    assert_eq!(app.update(Msg::Tick, at(60)), [send("/ping")]);
    assert_eq!(server_at(&mut app, "pong", at(61)), []);
    // Quiet again: the next ping a minute after the last line we sent.
    assert_eq!(app.update(Msg::Tick, at(119)), []);
    assert_eq!(app.update(Msg::Tick, at(120)), [send("/ping")]);
    assert_eq!(app.update(Msg::Tick, at(149)), []);
    let dead = "no answer from the server in 30 s";
    assert_eq!(
        app.update(Msg::Tick, at(150)),
        [Command::Abandon(dead.to_owned())]
    );
    assert_eq!(app.update(Msg::Tick, at(151)), [], "once");
    // The session ends and reports the loss like any other.
    app.update(
        Msg::Net(NetEvent::Disconnected {
            reason: dead.to_owned(),
            unsent: Vec::new(),
        }),
        at(151),
    );
    assert!(matches!(app.state(), ConnState::Disconnected { .. }));
    assert_eq!(
        last_notice(&app),
        format!("disconnected: {dead}; reconnecting in 1 s")
    );
    assert_eq!(app.update(Msg::Tick, at(152)), [Command::Connect]);
}

/// Issue 21, defect 12: `/query bob` between two accounts did not load the `@bob`
/// history, and `/history` printed nothing when it was all on screen already.
#[test]
fn query_loads_the_conversation_and_history_always_answers() {
    let mut app = account();
    assert_eq!(enter(&mut app, "/query bob"), [send("/history @bob 50")]);
    let history = [
        "history @bob 7 2026-11-29T11:00:00.000Z bob: earlier",
        "history @bob 8 2026-11-29T11:00:01.000Z alice: mine",
        "history-end @bob complete",
    ];
    for line in history {
        server(&mut app, line);
    }
    assert_eq!(
        texts(current(&app)),
        ["[history of @bob: 2]", "bob: earlier", "me: mine"]
    );
    assert_eq!(enter(&mut app, "/query bob"), [], "loaded already");
    assert_eq!(enter(&mut app, "/history"), [send("/history @bob 50")]);
    for line in history {
        server(&mut app, line);
    }
    assert_eq!(
        last_notice(&app),
        "the latest 2 messages of @bob are all here already"
    );
    assert_eq!(
        enter(&mut app, "/query carol"),
        [send("/history @carol 50")]
    );
    server(&mut app, "history-end @carol complete");
    assert_eq!(enter(&mut app, "/history 10"), [send("/history @carol 10")]);
    server(&mut app, "history-end @carol complete");
    assert_eq!(last_notice(&app), "no messages in @carol yet");
}
