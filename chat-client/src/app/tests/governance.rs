//! Room governance: the room commands, and what each governing line does to the state and
//! shows.

use chat_proto::{Role, RoomModes};

use super::*;

fn notices(app: &App, index: usize) -> Vec<(String, bool)> {
    app.buffers().all()[index]
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Notice { text, error } => Some((text.to_string(), *error)),
            _ => None,
        })
        .collect()
}

fn last_notice_in(app: &App, index: usize) -> String {
    notices(app, index)
        .pop()
        .map(|(text, _)| text)
        .unwrap_or_default()
}

/// The user list of the shown buffer as drawn: `@alice`, `+bob`, `carol`.
fn nick_list(app: &App) -> Vec<String> {
    current(app)
        .room
        .nick_list()
        .into_iter()
        .map(|(role, name)| match role {
            Some(role) => format!("{}{name}", role.prefix()),
            None => name.to_string(),
        })
        .collect()
}

#[test]
fn room_commands_go_to_the_room_named_or_the_one_shown() {
    let mut app = connected();
    for typed in [
        "/op bob",
        "/topic",
        "/mode +m",
        "/kick eve",
        "/bans",
        "/invite bob",
    ] {
        assert_eq!(enter(&mut app, typed), [], "{typed}");
        let command = &typed[1..typed.find(' ').unwrap_or(typed.len())];
        assert_eq!(
            hint(&app),
            format!(
                "/{command}: this is not a room; name one: /{command} #room …; ↑ brings the line back"
            )
        );
        assert!(
            app.input().is_empty(),
            "never left for the next line to join"
        );
        app.update(key(KeyCode::Up), clock());
        assert_eq!(app.input().as_str(), typed, "↑ brings it back to fix");
        app.update(ctrl('u'), clock());
    }
    assert_eq!(enter(&mut app, "/op #rust bob"), [send("/op #rust bob")]);
    in_room(&mut app, "#rust");
    for (typed, line) in [
        ("/op bob", "/op #rust bob"),
        ("/deop bob", "/deop #rust bob"),
        ("/voice bob", "/voice #rust bob"),
        ("/devoice #other bob", "/devoice #other bob"),
        ("/topic", "/topic #rust"),
        ("/topic Rust: fast", "/topic #rust Rust: fast"),
        ("/mode", "/mode #rust"),
        ("/mode +mi", "/mode #rust +mi"),
        ("/kick eve", "/kick #rust eve"),
        ("/kick eve go away", "/kick #rust eve go away"),
        ("/ban eve", "/ban #rust eve"),
        ("/unban eve", "/unban #rust eve"),
        ("/bans", "/bans #rust"),
        ("/invite bob", "/invite bob #rust"),
        ("/invite bob #other", "/invite bob #other"),
        ("/register-room", "/register-room #rust"),
        ("/unregister-room", "/unregister-room #rust"),
        ("/kill eve", "/kill eve"),
        ("/kill eve spam", "/kill eve spam"),
        ("/suspend eve", "/suspend eve"),
        ("/unsuspend eve", "/unsuspend eve"),
    ] {
        assert_eq!(enter(&mut app, typed), [send(line)], "{typed}");
        assert!(app.input().is_empty(), "{typed}");
    }
}

#[test]
fn room_commands_need_a_connection_and_fit_the_line_limit() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    // The test settings allow 64 bytes a line.
    let long = format!("/kick eve {}", "x".repeat(60));
    assert_eq!(enter(&mut app, &long), []);
    assert!(hint(&app).starts_with("line too long"), "{}", hint(&app));
    app.update(ctrl('u'), clock());
    disconnect(&mut app, Vec::new());
    assert_eq!(enter(&mut app, "/op bob"), []);
    assert!(hint(&app).starts_with("not connected"));
}

#[test]
fn roles_mark_the_user_list_ops_first() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "names #rust alice,bob,carol,dave");
    server(&mut app, "roles #rust +bob,@carol");
    assert_eq!(nick_list(&app), ["@carol", "+bob", "alice", "dave"]);
    server(&mut app, "mode #rust carol +o dave");
    server(&mut app, "mode #rust carol -v bob");
    assert_eq!(nick_list(&app), ["@carol", "@dave", "alice", "bob"]);
    // A role ends when its holder leaves; a kick removes the member.
    server(&mut app, "left #rust dave");
    server(&mut app, "joined #rust dave");
    server(&mut app, "kicked #rust bob carol: bye");
    assert_eq!(nick_list(&app), ["@carol", "alice", "dave"]);
    // `/names` is answered with both lines again.
    server(&mut app, "names #rust alice,carol,dave");
    server(&mut app, "roles #rust @alice");
    assert_eq!(nick_list(&app), ["@alice", "carol", "dave"]);
    assert_eq!(
        current(&app).room.role(&name("ALICE")),
        Some(Role::Op),
        "roles go by folded name"
    );
}

#[test]
fn the_topic_at_join_a_reply_and_a_change_read_differently() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    let index = app.buffers().current_index();
    // At join: names, roles, then the topic the room already had.
    server(&mut app, "roles #rust @bob");
    server(
        &mut app,
        "topic #rust bob 2026-11-29T08:00:00.000Z: Rust: fast",
    );
    assert!(
        last_notice(&app).starts_with("topic of #rust: Rust: fast (set by bob on 2026-11-29"),
        "{}",
        last_notice(&app)
    );
    assert_eq!(
        current(&app).room.topic().map(|t| t.as_str()),
        Some("Rust: fast")
    );
    // A change.
    server(
        &mut app,
        "topic #rust bob 2026-11-29T09:00:00.000Z: \u{202e}new",
    );
    assert_eq!(last_notice(&app), "bob set the topic: \\u{202e}new");
    assert_eq!(
        current(&app).room.topic().map(|t| t.as_str()),
        Some("\\u{202e}new"),
        "peer text is kept made safe"
    );
    // Cleared by someone (WeeChat's `/topic -delete` sends `/topic #rust -delete`).
    assert_eq!(
        enter(&mut app, "/topic -delete"),
        [send("/topic #rust -delete")],
        "sent as the line the server reads as clearing"
    );
    server(&mut app, "topic #rust");
    assert_eq!(last_notice(&app), "the topic of #rust was cleared");
    assert_eq!(current(&app).room.topic(), None);
    server(
        &mut app,
        "topic #rust bob 2026-11-29T09:00:00.000Z: \u{202e}new",
    );
    // A reply to /topic, asked from another buffer: shown where it was asked.
    app.update(alt(KeyCode::Char('2')), clock());
    assert_eq!(enter(&mut app, "/topic #rust"), [send("/topic #rust")]);
    server(&mut app, "topic #rust bob 2026-11-29T09:00:00.000Z: new");
    assert!(last_notice_in(&app, index).starts_with("topic of #rust: new (set by bob on"));
    assert_eq!(
        enter(&mut app, "/topic #elsewhere"),
        [send("/topic #elsewhere")]
    );
    server(&mut app, "topic #elsewhere");
    assert_eq!(last_notice(&app), "#elsewhere has no topic");
    // A rejoin forgets the topic: one cleared meanwhile is not sent again.
    server(&mut app, "left #rust alice");
    server(&mut app, "joined #rust alice");
    assert_eq!(app.buffers().all()[index].room.topic(), None);
}

#[test]
fn mode_lines_show_in_the_room_and_keep_its_modes() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "mode #rust +t");
    assert_eq!(
        last_notice(&app),
        "modes of #rust: +t (only ops set the topic)"
    );
    assert_eq!(current(&app).room.modes(), Some(RoomModes::NEW_ROOM));
    for (line, shown) in [
        ("mode #rust bob +m", "bob sets +m (moderated)"),
        ("mode #rust bob +i", "bob sets +i (invite only)"),
        ("mode #rust bob -t", "bob sets -t (members set the topic)"),
        ("mode #rust bob +o carol", "bob gives op to carol"),
        ("mode #rust bob -o carol", "bob takes op from carol"),
        ("mode #rust bob +v carol", "bob gives voice to carol"),
        ("mode #rust bob -v carol", "bob takes voice from carol"),
        ("mode #rust bob +b eve", "bob bans eve"),
        ("mode #rust bob -b eve", "bob unbans eve"),
        ("mode #rust * +o alice", "the server gives op to alice"),
    ] {
        server(&mut app, line);
        assert_eq!(last_notice(&app), shown, "{line}");
    }
    assert_eq!(
        current(&app).room.modes().map(|m| m.to_string()),
        Some("+im".into())
    );
    server(&mut app, "mode #rust +");
    assert_eq!(last_notice(&app), "modes of #rust: none");
    // A reply about a room without a buffer goes to the one shown.
    app.update(alt(KeyCode::Char('2')), clock());
    server(&mut app, "mode #other +ms");
    assert_eq!(
        last_notice(&app),
        "modes of #other: +ms (moderated, secret)"
    );
}

#[test]
fn others_being_kicked_or_banned_is_one_line() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "names #rust alice,bob,carol,eve");
    server(&mut app, "kicked #rust bob alice: flooding, again");
    assert_eq!(
        last_notice(&app),
        "bob was kicked by alice (flooding, again)"
    );
    server(&mut app, "kicked #rust carol alice:");
    assert_eq!(last_notice(&app), "carol was kicked by alice");
    server(&mut app, "mode #rust alice +b eve");
    server(&mut app, "kicked #rust eve *: banned");
    assert_eq!(last_notice(&app), "eve was banned from #rust");
    assert_eq!(nick_list(&app), ["alice"]);
    assert!(current(&app).member);
}

#[test]
fn being_kicked_says_so_loudly_and_keeps_the_buffer_like_a_part() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    let index = app.buffers().current_index();
    server(&mut app, "roles #rust @bob");
    let commands = server(&mut app, "kicked #rust alice bob: off topic");
    assert_eq!(commands, [Command::Bell]);
    assert_eq!(
        notices(&app, index)[notices(&app, index).len() - 2..],
        [
            (
                "you were kicked from #rust by bob: off topic".to_owned(),
                true
            ),
            ("/close closes this buffer".to_owned(), false)
        ]
    );
    assert_eq!(label(&app), "#rust", "the buffer is kept");
    assert!(!current(&app).member && !current(&app).wanted);
    assert!(nick_list(&app).is_empty(), "the user list is cleared");
    // Not rejoined after a reconnect.
    disconnect(&mut app, Vec::new());
    assert_eq!(
        app.update(Msg::Net(NetEvent::Connected), clock()),
        [send("/who")]
    );
    // /close closes it without a /part.
    assert_eq!(enter(&mut app, "/close"), []);
    assert_eq!(label(&app), "*");
    assert_eq!(
        app.buffers()
            .find(&BufferId::Room("#rust".parse().unwrap())),
        None
    );
}

#[test]
fn being_banned_elsewhere_shows_where_we_are_and_marks_the_room() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    let index = app.buffers().current_index();
    app.update(alt(KeyCode::Char('2')), clock());
    server(&mut app, "mode #rust bob +b alice");
    server(&mut app, "kicked #rust alice *: banned");
    assert_eq!(last_notice_in(&app, index), "you were banned from #rust");
    assert_eq!(
        notices(&app, 1).pop(),
        Some(("you were banned from #rust".to_owned(), true)),
        "also in the buffer shown"
    );
    assert!(app.buffers().all()[index].mentioned);
    assert!(!app.buffers().all()[index].member);
}

#[test]
fn bans_invites_and_registration_are_told() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "bans #rust eve,mallory");
    assert_eq!(last_notice(&app), "bans in #rust: eve, mallory");
    server(&mut app, "bans #rust");
    assert_eq!(last_notice(&app), "no bans in #rust");
    server(&mut app, "room-registered #rust alice");
    assert_eq!(
        last_notice(&app),
        "#rust is registered, with alice as its founder"
    );
    server(&mut app, "invite sent bob #rust");
    assert_eq!(last_notice(&app), "bob is invited to #rust");
    server(&mut app, "invited #secret bob");
    let invited = "bob invites you to #secret: /join #secret to accept";
    assert_eq!(last_notice_in(&app, 0), invited);
    assert_eq!(hint(&app), invited);
    // The room completes, to accept.
    type_str(&mut app, "/join #se");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "/join #secret ");
}

#[test]
fn tab_completes_room_commands_and_offers_members_to_member_commands() {
    let mut app = connected();
    server(&mut app, "users alice,bob,carol,dave");
    in_room(&mut app, "#rust");
    let tab = |app: &mut App, typed: &str| {
        type_str(app, typed);
        app.update(key(KeyCode::Tab), clock());
        let line = app.input().as_str().to_owned();
        app.update(ctrl('u'), clock());
        line
    };
    assert_eq!(tab(&mut app, "/dev"), "/devoice ");
    assert_eq!(tab(&mut app, "/register-"), "/register-room ");
    assert_eq!(tab(&mut app, "/unsus"), "/unsuspend ");
    // #rust's members are alice (us) and bob.
    assert_eq!(tab(&mut app, "/kick "), "/kick bob ");
    assert_eq!(tab(&mut app, "/op d"), "/op d", "dave is not a member");
    assert_eq!(tab(&mut app, "/invite d"), "/invite dave ");
    assert_eq!(tab(&mut app, "/ban c"), "/ban carol ");
    // The room named, from another buffer.
    app.update(alt(KeyCode::Char('2')), clock());
    assert_eq!(tab(&mut app, "/voice #rust b"), "/voice #rust bob ");
    assert_eq!(tab(&mut app, "/voice #rust c"), "/voice #rust c");
    assert_eq!(
        tab(&mut app, "/voice c"),
        "/voice carol ",
        "no room: anyone online"
    );
}
