use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use chat_proto::MessageId;

use crate::buffers::Buffer;
use crate::entry::Entry;
use crate::event::NetEvent;
use crate::layout::Widths;

fn clock() -> Clock {
    Clock {
        now: start(),
        local: chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
            .and_then(|d| d.and_hms_opt(12, 34, 0))
            .expect("a valid time"),
    }
}

fn start() -> Instant {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("a valid name")
}

fn settings() -> Settings {
    Settings {
        name: name("alice"),
        addr: "127.0.0.1:8080".into(),
        tls: false,
        max_line_bytes: 64,
        scrollback: 100,
        rooms: Vec::new(),
        bell: true,
        highlights: Vec::new(),
        time_format: "%H:%M".into(),
        join_part: JoinPart::Fold,
        smart_filter: false,
        hyperlinks: false,
        mouse: false,
        log: false,
    }
}

fn app() -> App {
    with(settings())
}

/// An app of 80×24 with `settings`.
fn with(settings: Settings) -> App {
    App::new(settings, Size::new(80, 24), start())
}

/// Logged in and in #rust, with the smart filter on.
fn smart_filtered() -> App {
    let mut app = with(Settings {
        smart_filter: true,
        ..settings()
    });
    login(&mut app);
    in_room(&mut app, "#rust");
    app
}

fn connected() -> App {
    let mut app = app();
    assert_eq!(login(&mut app), [vec![send("/who")], vec![]]);
    app
}

/// Logs in: what the app sends at `welcome`, and once the answer to its `/who` settles
/// the login.
fn login(app: &mut App) -> [Vec<Command>; 2] {
    let at_welcome = app.update(Msg::Net(NetEvent::Connected), clock());
    [at_welcome, server(app, "users alice")]
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn alt(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::ALT))
}

fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        assert_eq!(app.update(key(KeyCode::Char(c)), clock()), []);
    }
}

fn enter(app: &mut App, s: &str) -> Vec<Command> {
    type_str(app, s);
    app.update(key(KeyCode::Enter), clock())
}

fn send(line: &str) -> Command {
    Command::Send(line.parse().expect("a valid client line"))
}

fn server(app: &mut App, line: &str) -> Vec<Command> {
    app.update(
        Msg::Net(NetEvent::Line(line.parse().expect("a server line"))),
        clock(),
    )
}

fn disconnect(app: &mut App, unsent: Vec<ClientLine>) {
    app.update(
        Msg::Net(NetEvent::Disconnected {
            reason: "server shutting down".into(),
            unsent,
        }),
        clock(),
    );
}

fn current(app: &App) -> &Buffer {
    app.buffers().current()
}

fn label(app: &App) -> String {
    current(app).id.label()
}

fn last(app: &App) -> &Entry {
    current(app).entries().back().expect("an entry")
}

fn last_notice(app: &App) -> String {
    match &last(app).kind {
        EntryKind::Notice { text, .. } => text.to_string(),
        other => panic!("expected a notice, got {other:?}"),
    }
}

fn hint(app: &App) -> String {
    app.hint().map(|(h, _)| h.to_string()).unwrap_or_default()
}

/// Joins `room` and has the server confirm it (with an empty history).
fn in_room(app: &mut App, room: &str) {
    assert_eq!(
        enter(app, &format!("/join {room}")),
        [
            send(&format!("/join {room}")),
            send(&format!("/history {room} 50")),
            send(&format!("/mode {room}"))
        ]
    );
    server(app, &format!("joined {room} alice"));
    server(app, &format!("names {room} alice,bob"));
    server(app, &format!("history-end {room} complete"));
    assert_eq!(label(app), room);
}

#[test]
fn typed_text_goes_to_the_current_buffer_whatever_colons_it_has() {
    let mut app = connected();
    assert_eq!(label(&app), "*");
    assert_eq!(
        enter(&mut app, "http://example.com is cool"),
        [send("*: http://example.com is cool")]
    );
    assert_eq!(
        enter(&mut app, "10:30 works for me"),
        [send("*: 10:30 works for me")]
    );
    in_room(&mut app, "#rust");
    assert_eq!(enter(&mut app, "bob: one"), [send("#rust: bob: one")]);
    enter(&mut app, "/query bob");
    assert_eq!(label(&app), "bob");
    assert_eq!(enter(&mut app, "hi: there"), [send("bob: hi: there")]);
    assert_eq!(
        enter(&mut app, "//etc is a path"),
        [send("bob: /etc is a path")]
    );
    assert_eq!(enter(&mut app, "/me waves"), [send("bob: /me waves")]);
    assert_eq!(
        enter(&mut app, "/msg #rust back in a bit"),
        [send("#rust: back in a bit")]
    );
    assert_eq!(label(&app), "bob", "/msg does not switch");
    assert!(app.input().is_empty());
}

/// Issue 21, defect 8: `/msg #go text` to a room we are not in opened `(#go)` with the
/// text shown (and logged) as if sent, besides the server's error.
#[test]
fn msg_to_a_room_we_are_not_in_is_refused_here() {
    let mut app = connected();
    let buffers = app.buffers().all().len();
    assert_eq!(enter(&mut app, "/msg #go hello"), []);
    assert_eq!(
        hint(&app),
        "/msg: you are not in #go; /join #go first; ↑ brings the line back"
    );
    assert_eq!(app.buffers().all().len(), buffers, "no (#go) buffer");
    in_room(&mut app, "#go");
    enter(&mut app, "/part");
    server(&mut app, "left #go alice");
    let entries = current(&app).entries().len();
    assert_eq!(enter(&mut app, "/msg #go hello"), [], "left: not in it");
    assert_eq!(current(&app).entries().len(), entries);
    // A room being rejoined after a drop takes it, to send once back in.
    in_room(&mut app, "#rust");
    disconnect(&mut app, Vec::new());
    assert_eq!(enter(&mut app, "/msg #rust later"), []);
    assert!(matches!(
        &last(&app).kind,
        EntryKind::Own { pending: true, .. }
    ));
}

#[test]
fn the_server_buffer_takes_commands_only() {
    let mut app = connected();
    app.update(alt(KeyCode::Char('1')), clock());
    assert_eq!(label(&app), "server");
    assert_eq!(enter(&mut app, "hello"), []);
    assert!(hint(&app).starts_with("the server buffer takes /commands only"));
    assert!(app.input().is_empty(), "the line leaves the input");
    app.update(key(KeyCode::Up), clock());
    assert_eq!(app.input().as_str(), "hello", "↑ brings it back to fix");
}

#[test]
fn commands_are_case_insensitive_and_errors_are_hints() {
    let mut app = connected();
    assert_eq!(enter(&mut app, "/WHO"), [Command::Send(ClientLine::Who)]);
    assert_eq!(enter(&mut app, "/frobnicate"), []);
    assert!(hint(&app).starts_with("unknown command /frobnicate"));
    assert!(app.input().is_empty(), "the line leaves the input");
    app.update(key(KeyCode::Up), clock());
    assert_eq!(
        app.input().as_str(),
        "/frobnicate",
        "↑ brings it back to fix"
    );
    app.update(ctrl('u'), clock());
    assert!(app.hint().is_none(), "a key clears the hint");
    let before = current(&app).entries().len();
    assert_eq!(enter(&mut app, "/join #"), []);
    assert_eq!(
        hint(&app),
        "/join: invalid room \"#\"; ↑ brings the line back"
    );
    assert_eq!(
        current(&app).entries().len(),
        before,
        "nothing written to the log"
    );
    app.update(ctrl('u'), clock());
    assert_eq!(enter(&mut app, "/QUIT"), [Command::Quit]);
    assert_eq!(app.exit(), Some(&Exit::Clean));
}

#[test]
fn a_password_goes_out_but_never_into_the_history() {
    let mut app = connected();
    enter(&mut app, "hello");
    assert_eq!(
        enter(&mut app, "/register my secret pw"),
        [send("/register my secret pw")]
    );
    app.update(key(KeyCode::Up), clock());
    assert_eq!(app.input().as_str(), "hello");
    app.update(ctrl('u'), clock());
    assert_eq!(enter(&mut app, "/password short"), []);
    assert_eq!(
        hint(&app),
        "/password: password too weak: use at least 8 bytes"
    );
}

/// Issue 21, defect 1: a refused `/password abc` stayed in the input, masked, and the
/// next `/password erinpass2` was appended to it, setting `abc/password erinpass2`.
#[test]
fn a_refused_password_leaves_an_empty_input_and_nothing_is_appended_to_it() {
    let mut app = connected();
    assert_eq!(enter(&mut app, "/password abc"), []);
    assert!(hint(&app).contains("too weak"), "{}", hint(&app));
    assert!(app.input().is_empty(), "the refused secret is gone");
    assert_eq!(
        enter(&mut app, "/password erinpass2"),
        [send("/password erinpass2")]
    );
    app.update(key(KeyCode::Up), clock());
    assert!(app.input().is_empty(), "neither password is in the history");
    // Any refused line leaves the input too, so the next one typed starts clean.
    assert_eq!(enter(&mut app, "/join #"), []);
    assert_eq!(
        enter(&mut app, "/join #rust"),
        [
            send("/join #rust"),
            send("/history #rust 50"),
            send("/mode #rust")
        ]
    );
}

#[test]
fn query_with_someone_offline_says_so() {
    let mut app = connected();
    server(&mut app, "users alice,bob");
    enter(&mut app, "/to nobody");
    assert_eq!(label(&app), "nobody");
    assert!(
        last_notice(&app).starts_with("nobody is not online"),
        "{}",
        last_notice(&app)
    );
    enter(&mut app, "/query Bob");
    assert_eq!(label(&app), "Bob");
    assert!(
        current(&app).entries().is_empty(),
        "Bob is bob, who is online"
    );
}

#[test]
fn messages_land_in_their_buffers_and_count_as_unread() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "from bob: psst");
    server(&mut app, "from carol *: hello all");
    server(&mut app, "from bob #rust 7: in the room");
    let unread: Vec<(String, usize)> = app
        .buffers()
        .all()
        .iter()
        .map(|b| (b.id.label(), b.unread))
        .collect();
    assert_eq!(
        unread,
        [
            ("server".into(), 0),
            ("*".into(), 1),
            ("#rust".into(), 0),
            ("bob".into(), 1)
        ]
    );
    assert_eq!(current(&app).last_id().map(MessageId::get), Some(7));
    server(&mut app, "from bob #rust 7: in the room");
    assert_eq!(
        current(&app).entries().len(),
        3,
        "the same id twice is shown once"
    );
    app.update(ctrl('n'), clock());
    assert_eq!((label(&app), current(&app).unread), ("bob".into(), 0));
    app.update(alt(KeyCode::Right), clock());
    assert_eq!(label(&app), "server", "wraps around");
    app.update(alt(KeyCode::Left), clock());
    app.update(ctrl('p'), clock());
    assert_eq!(label(&app), "#rust");
    enter(&mut app, "/buffer 2");
    assert_eq!(label(&app), "*");
}

#[test]
fn a_mention_marks_its_buffer_and_rings_the_bell() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    app.update(alt(KeyCode::Char('2')), clock());
    let commands = server(&mut app, "from bob #rust 1: hey ALICE, look");
    assert_eq!(commands[0], Command::Bell);
    assert!(
        matches!(&commands[1], Command::Title(Some(t)) if t.contains("bob mentioned you in #rust"))
    );
    let rust = &app.buffers().all()[2];
    assert!(rust.mentioned);
    assert!(matches!(
        rust.entries().back().map(|e| &e.kind),
        Some(EntryKind::Message { mention: true, .. })
    ));
    for text in ["alice_b is not me", "malice", "alice-ish"] {
        assert_eq!(
            server(&mut app, &format!("from bob #rust 2: {text}")),
            [],
            "{text}"
        );
    }
    assert_eq!(
        server(&mut app, "from bob #rust 3: ｂｙｅ ａｌｉｃｅ."),
        [
            Command::Bell,
            Command::Title(Some("chat-client: bob mentioned you in #rust".into()))
        ]
    );
    assert_eq!(
        app.update(alt(KeyCode::Char('3')), clock()),
        [Command::Title(None)],
        "the title goes back"
    );
    assert!(!current(&app).mentioned, "seen");
    assert_eq!(app.update(alt(KeyCode::Char('2')), clock()), [], "once");

    let mut quiet = with(Settings {
        bell: false,
        ..settings()
    });
    quiet.update(Msg::Net(NetEvent::Connected), clock());
    assert_eq!(server(&mut quiet, "from bob *: alice?"), [], "--no-bell");
}

/// Issue 21, defect 10: a direct message neither rang nor marked its buffer `!`, and one
/// that named us set the title to "mentioned you in ...".
#[test]
fn a_direct_message_is_a_highlight() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    assert_eq!(
        server(&mut app, "from bob: are you there?"),
        [
            Command::Bell,
            Command::Title(Some("chat-client: bob wrote to you".into()))
        ]
    );
    let bob = app
        .buffers()
        .find(&BufferId::Query(name("bob")))
        .expect("bob's buffer");
    assert!(app.buffers().all()[bob].mentioned, "marked !");
    assert!(matches!(
        app.buffers().all()[bob].entries().back().map(|e| &e.kind),
        Some(EntryKind::Message { mention: false, .. })
    ));
    assert_eq!(
        server(&mut app, "from carol: alice, you there?"),
        [
            Command::Bell,
            Command::Title(Some("chat-client: carol wrote to you".into()))
        ]
    );
}

/// Issue 21, defect 9: a mention in the buffer being read set the title (and rang) and
/// it stayed until switching away and back. Read as it arrives, it is seen; scrolled up,
/// it is not, until the view is back at the bottom.
#[test]
fn a_mention_in_the_buffer_being_read_is_seen_at_once() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    assert_eq!(server(&mut app, "from bob #rust 1: alice, look"), []);
    assert!(!current(&app).mentioned);
    for id in 2..60 {
        server(&mut app, &format!("from bob #rust {id}: line {id}"));
    }
    app.update(key(KeyCode::PageUp), clock());
    assert!(current(&app).scroll > 0);
    assert_eq!(
        server(&mut app, "from bob #rust 60: alice, below"),
        [
            Command::Bell,
            Command::Title(Some("chat-client: bob mentioned you in #rust".into()))
        ]
    );
    let mut commands = Vec::new();
    while current(&app).scroll > 0 {
        commands.extend(app.update(key(KeyCode::PageDown), clock()));
    }
    assert_eq!(commands, [Command::Title(None)], "seen at the bottom");
    assert!(!current(&app).mentioned);
}

/// Issue 21, features: extra highlight words (`highlight = ["rust", "deploy"]`).
#[test]
fn highlight_words_are_mentions_too() {
    let mut app = App::new(
        Settings {
            highlights: vec!["rust".into(), "Deploy".into()],
            ..settings()
        },
        Size::new(80, 24),
        start(),
    );
    login(&mut app);
    // Not reading `*`, where they arrive.
    app.update(alt(KeyCode::Char('1')), clock());
    let rang = |commands: Vec<Command>| commands.contains(&Command::Bell);
    assert!(rang(server(&mut app, "from bob *: time to DEPLOY.")));
    assert!(rang(server(&mut app, "from bob *: rust 1.90 is out")));
    assert!(
        !rang(server(&mut app, "from bob *: rusty deployment")),
        "whole words"
    );
    assert!(
        rang(server(&mut app, "from bob *: alice?")),
        "the name still counts"
    );
}

/// Issue 21, features: Alt-A goes to the next buffer with activity, mentions first.
#[test]
fn alt_a_jumps_to_activity_mentions_first() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    in_room(&mut app, "#go");
    app.update(alt(KeyCode::Char('1')), clock());
    server(&mut app, "from bob #rust 1: plain news");
    server(&mut app, "from bob #go 2: alice, look");
    app.update(alt(KeyCode::Char('a')), clock());
    assert_eq!(label(&app), "#go", "the mention first");
    app.update(alt(KeyCode::Char('a')), clock());
    assert_eq!(label(&app), "#rust", "then unread");
    app.update(alt(KeyCode::Char('a')), clock());
    assert_eq!(label(&app), "#rust", "nothing left");
    assert_eq!(hint(&app), "no buffer with activity");
}

/// Issue 21, features: Ctrl-R searches the lines sent, newest first.
#[test]
fn ctrl_r_finds_lines_sent_before() {
    let mut app = connected();
    for line in ["help me", "hello world", "bye"] {
        enter(&mut app, line);
    }
    type_str(&mut app, "draft");
    app.update(ctrl('r'), clock());
    type_str(&mut app, "HEL");
    assert_eq!(app.input().as_str(), "hello world");
    assert!(hint(&app).starts_with("(reverse search) \"HEL\""));
    app.update(ctrl('r'), clock());
    assert_eq!(app.input().as_str(), "help me", "Ctrl-R again goes older");
    app.update(ctrl('r'), clock());
    assert_eq!(hint(&app), "(reverse search) no line with \"HEL\"");
    assert_eq!(
        app.update(key(KeyCode::Enter), clock()),
        [],
        "taken, not sent"
    );
    assert_eq!(app.input().as_str(), "help me");
    app.update(ctrl('r'), clock());
    type_str(&mut app, "by");
    assert_eq!(app.input().as_str(), "bye");
    app.update(key(KeyCode::Esc), clock());
    assert_eq!(
        app.input().as_str(),
        "help me",
        "Esc puts back what was typed"
    );
}

/// Issue 21, features: the smart filter shows joins and parts of those who spoke lately.
#[test]
fn the_smart_filter_shows_only_those_who_spoke_lately() {
    let mut app = smart_filtered();
    let before = current(&app).entries().len();
    server(&mut app, "joined #rust carol");
    assert_eq!(current(&app).entries().len(), before, "carol never spoke");
    server(&mut app, "from carol #rust 1: hi");
    server(&mut app, "left #rust carol");
    assert!(matches!(
        &last(&app).kind,
        EntryKind::Presence { joined: false, .. }
    ));
    // Five minutes later her words are old news.
    let mut later = clock();
    later.now += crate::app::SMART_FILTER_DELAY;
    let before = current(&app).entries().len();
    app.update(
        Msg::Net(NetEvent::Line(
            "joined #rust carol".parse().expect("a line"),
        )),
        later,
    );
    assert_eq!(current(&app).entries().len(), before);
}

/// Issue 21, features: as WeeChat's `smart_filter_join_unmask`, a join the smart filter
/// hid shows after all, where it came, when its author speaks within 30 minutes.
#[test]
fn a_hidden_join_shows_when_its_author_speaks_soon_after() {
    let mut app = smart_filtered();
    server(&mut app, "joined #rust carol");
    server(&mut app, "joined #rust dave");
    server(&mut app, "from bob #rust 1: meanwhile");
    let before = current(&app).entries().len();
    server(&mut app, "from carol #rust 2: hi");
    let kinds: Vec<&EntryKind> = current(&app).entries().iter().map(|e| &e.kind).collect();
    assert_eq!(kinds.len(), before + 2, "her join and her line");
    assert!(
        matches!(
            &kinds[before - 1],
            EntryKind::Presence { joined: true, names, .. } if names == &[name("carol")]
        ),
        "her join, where it came: before bob's line; {kinds:?}"
    );
    assert!(matches!(&kinds[before], EntryKind::Message { from, .. } if *from == name("bob")));

    // Dave speaks too late: his join stays hidden.
    let mut later = clock();
    later.now += crate::buffers::JOIN_UNMASK;
    let before = current(&app).entries().len();
    let line = "from dave #rust 3: late".parse().expect("a line");
    app.update(Msg::Net(NetEvent::Line(line)), later);
    assert_eq!(current(&app).entries().len(), before + 1, "his line only");

    // One who left and came back is unmasked from the last join only.
    server(&mut app, "joined #rust erin");
    server(&mut app, "left #rust erin");
    let before = current(&app).entries().len();
    server(&mut app, "from erin #rust 4: hello?");
    assert_eq!(
        current(&app).entries().len(),
        before + 1,
        "her part forgot her join"
    );
}

#[test]
fn the_unread_marker_goes_where_a_buffer_was_left() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "from bob #rust 1: read this");
    let read = last(&app).seq;
    app.update(alt(KeyCode::Char('1')), clock());
    server(&mut app, "from bob #rust 2: new one");
    app.update(alt(KeyCode::Char('3')), clock());
    assert_eq!(current(&app).marker, Some(read));
    let rows = current(&app).visible_rows(app.look(), Widths::same(60), 0, 10, None);
    let text: Vec<String> = rows.iter().map(|r| r.line.to_string()).collect();
    let marker = text
        .iter()
        .position(|r| r.starts_with(layout::NEW_MARKER))
        .expect("a marker row");
    assert!(text[marker - 1].ends_with("bob: read this"), "{text:?}");
    assert!(text[marker + 1].ends_with("bob: new one"), "{text:?}");
}

#[test]
fn join_and_part_bursts_fold_into_one_line() {
    let mut app = connected();
    for n in ["bob", "carol", "dave", "erin"] {
        server(&mut app, &format!("joined {n}"));
    }
    server(&mut app, "left bob");
    let shown: Vec<String> = current(&app)
        .visible_rows(app.look(), Widths::same(80), 0, 10, None)
        .iter()
        .map(|r| r.line.to_string())
        .collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown[0].ends_with("connected to 127.0.0.1:8080 as alice"),
        "{shown:?}"
    );
    assert!(
        shown[1].ends_with("bob, carol and 2 others joined"),
        "{shown:?}"
    );
    assert!(shown[2].ends_with("bob left"), "{shown:?}");

    let mut all = App::new(
        Settings {
            join_part: JoinPart::All,
            ..settings()
        },
        Size::new(80, 24),
        start(),
    );
    all.update(Msg::Net(NetEvent::Connected), clock());
    server(&mut all, "joined bob");
    server(&mut all, "joined carol");
    assert_eq!(
        all.buffers().current().entries().len(),
        3,
        "connected, and one line each"
    );
    let mut hide = App::new(
        Settings {
            join_part: JoinPart::Hide,
            ..settings()
        },
        Size::new(80, 24),
        start(),
    );
    hide.update(Msg::Net(NetEvent::Connected), clock());
    server(&mut hide, "joined bob");
    assert_eq!(
        hide.buffers().current().entries().len(),
        1,
        "only the connected notice"
    );
    assert_eq!(hide.roster().len(), 1, "the roster still knows");
}

#[test]
fn history_is_merged_in_place_without_duplicates() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "from bob #rust 10: ten");
    enter(&mut app, "mine");
    disconnect(&mut app, Vec::new());
    assert!(!current(&app).member);
    // Rejoined, asking for what was missed after the last id seen, in the same write.
    assert_eq!(
        login(&mut app),
        [
            vec![send("/who")],
            vec![
                send("/join #rust"),
                send("/history #rust after 10"),
                send("/mode #rust")
            ]
        ]
    );
    server(&mut app, "joined #rust alice");
    // A live message that arrived between the join and the history reply.
    server(&mut app, "from carol #rust 13: live");
    for line in [
        "history #rust 11 2026-11-29T11:00:00.000Z alice: mine",
        "history #rust 12 2026-11-29T11:00:01.000Z bob: missed",
        "history #rust 13 2026-11-29T11:00:02.000Z carol: live",
        "history-end #rust complete",
    ] {
        server(&mut app, line);
    }
    let texts = texts_and_markers(current(&app));
    assert_eq!(
        texts,
        ["ten", "mine", "[history of #rust: 1]", "missed", "live"]
    );
    assert_eq!(current(&app).last_id().map(MessageId::get), Some(13));
}

/// A buffer's message texts (ours and others') and its markers, `[in brackets]`.
fn texts_and_markers(buffer: &Buffer) -> Vec<String> {
    buffer
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { text, .. } | EntryKind::Own { text, .. } => Some(text.to_string()),
            EntryKind::Marker(m) => Some(format!("[{m}]")),
            _ => None,
        })
        .collect()
}

/// Issue 21, defect 16: lines typed offline were drawn before the messages others had
/// sent meanwhile, which the server routed first.
#[test]
fn the_catch_up_goes_above_lines_sent_from_the_outbox() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "from bob #rust 10: ten");
    disconnect(&mut app, Vec::new());
    enter(&mut app, "typed offline");
    login(&mut app);
    server(&mut app, "joined #rust alice");
    for line in [
        "history #rust 11 2026-11-29T11:00:00.000Z bob: said meanwhile",
        "history-end #rust complete",
    ] {
        server(&mut app, line);
    }
    let texts = texts_and_markers(current(&app));
    assert_eq!(
        texts,
        [
            "ten",
            "[history of #rust: 1]",
            "said meanwhile",
            "typed offline"
        ]
    );
}

#[test]
fn reconnecting_rejoins_rooms_and_asks_for_what_was_missed() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "from bob #rust 41: hi");
    disconnect(&mut app, Vec::new());
    // After the answer to the login's /who: by then the server has said which rooms the
    // account is in already (none here).
    assert_eq!(
        login(&mut app),
        [
            vec![send("/who")],
            vec![
                send("/join #rust"),
                send("/history #rust after 41"),
                send("/mode #rust")
            ]
        ]
    );
    enter(&mut app, "/part");
    server(&mut app, "left #rust alice");
    disconnect(&mut app, Vec::new());
    assert_eq!(
        login(&mut app),
        [vec![send("/who")], vec![]],
        "not after /part"
    );
}

#[test]
fn lines_typed_while_disconnected_wait_and_go_once_in_order() {
    let mut app = connected();
    assert_eq!(enter(&mut app, "sent"), [send("*: sent")]);
    // The connection drops with that line still in its queue, unsent.
    disconnect(&mut app, vec!["*: sent".parse().expect("a line")]);
    assert_eq!(enter(&mut app, "first"), []);
    assert_eq!(enter(&mut app, "second"), []);
    assert!(app.input().is_empty(), "taken into the outbox");
    assert_eq!(app.outbox_len(), 3);
    let pending: Vec<bool> = current(&app)
        .entries()
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::Own { pending, .. } => Some(pending),
            _ => None,
        })
        .collect();
    assert_eq!(pending, [true, true, true]);
    assert_eq!(
        login(&mut app),
        [
            vec![send("/who")],
            vec![send("*: sent"), send("*: first"), send("*: second")]
        ]
    );
    assert_eq!(app.outbox_len(), 0);
    assert!(
        current(&app)
            .entries()
            .iter()
            .all(|e| !matches!(e.kind, EntryKind::Own { pending: true, .. }))
    );
    disconnect(&mut app, Vec::new());
    assert_eq!(login(&mut app), [vec![send("/who")], vec![]], "not twice");
    // A line the runtime could not hand over comes back the same way.
    enter(&mut app, "racing");
    app.update(
        Msg::SendFailed("*: racing".parse().expect("a line")),
        clock(),
    );
    assert_eq!(app.outbox_len(), 1);
}

#[test]
fn a_multi_line_paste_is_split_on_any_line_break_and_waits_for_a_yes() {
    let mut app = connected();
    enter(&mut app, "/query bob");
    assert_eq!(app.update(Msg::Paste("one\tline".into()), clock()), []);
    assert_eq!(app.input().as_str(), "one\tline", "a tab survives");
    app.update(ctrl('u'), clock());
    assert_eq!(
        app.update(Msg::Paste("bob: alpha\rbeta\r\ngamma\n\n".into()), clock()),
        []
    );
    assert!(
        hint(&app).starts_with("paste 3 lines to bob?"),
        "{}",
        hint(&app)
    );
    assert_eq!(
        app.update(key(KeyCode::Char('x')), clock()),
        [],
        "other keys wait"
    );
    assert_eq!(
        app.update(key(KeyCode::Char('y')), clock()),
        [
            send("bob: bob: alpha"),
            send("bob: beta"),
            send("bob: gamma")
        ]
    );
    assert!(app.hint().is_none(), "the question is gone once answered");
    app.update(Msg::Paste("a\nb".into()), clock());
    assert_eq!(app.update(key(KeyCode::Esc), clock()), []);
    assert_eq!(hint(&app), "paste cancelled");
    app.update(Msg::Paste("/quit\nsecond".into()), clock());
    assert_eq!(
        app.update(key(KeyCode::Enter), clock()),
        [send("bob: /quit"), send("bob: second")],
        "never a command"
    );
    let too_many = "x\n".repeat(MAX_PASTE_LINES + 1);
    app.update(Msg::Paste(too_many), clock());
    assert!(hint(&app).starts_with("paste of 101 lines refused"));
}

#[test]
fn a_tab_looks_the_same_to_sender_and_receiver() {
    let mut app = connected();
    app.update(Msg::Paste("a\tb".into()), clock());
    app.update(key(KeyCode::Enter), clock());
    server(&mut app, "from bob *: a\tb");
    let texts: Vec<&str> = current(&app)
        .entries()
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Own { .. } | EntryKind::Message { .. }))
        .filter_map(|e| e.kind.text())
        .collect();
    assert_eq!(texts, ["a    b", "a    b"]);
}

#[test]
fn sending_while_scrolled_up_returns_to_the_bottom_and_end_does_too() {
    let mut app = connected();
    for i in 0..60 {
        server(&mut app, &format!("from bob *: message {i}"));
    }
    app.update(key(KeyCode::PageUp), clock());
    assert!(current(&app).scroll > 0);
    enter(&mut app, "back");
    assert_eq!(current(&app).scroll, 0);
    app.update(key(KeyCode::PageUp), clock());
    app.update(key(KeyCode::End), clock());
    assert_eq!(current(&app).scroll, 0, "End on an empty line");
}

#[test]
fn scrolling_up_holds_the_view_and_counts_new_entries() {
    let mut app = connected();
    for i in 0..60 {
        server(&mut app, &format!("from bob *: message {i}"));
    }
    app.update(key(KeyCode::PageUp), clock());
    let scrolled = current(&app).scroll;
    server(&mut app, "from bob *: while away");
    assert_eq!(current(&app).unseen, 1);
    assert_eq!(
        current(&app).scroll,
        scrolled + 1,
        "the rows being read stay put"
    );
    for _ in 0..10 {
        app.update(key(KeyCode::PageUp), clock());
    }
    let top = current(&app).scroll;
    assert_eq!(top, 62 - 18, "62 rows, 18 on screen with the indicator");
    app.update(Msg::Wheel(false), clock());
    assert_eq!(current(&app).scroll, top - 3);
    for _ in 0..10 {
        app.update(key(KeyCode::PageDown), clock());
    }
    assert_eq!((current(&app).scroll, current(&app).unseen), (0, 0));
}

#[test]
fn ctrl_c_with_a_typed_line_asks_first() {
    let mut app = connected();
    type_str(&mut app, "half a tho");
    assert_eq!(app.update(ctrl('c'), clock()), []);
    assert!(hint(&app).starts_with("Ctrl-C again quits"));
    type_str(&mut app, "ught");
    assert_eq!(
        app.input().as_str(),
        "half a thought",
        "any other key goes on"
    );
    app.update(ctrl('c'), clock());
    assert_eq!(app.update(ctrl('c'), clock()), [Command::Quit]);

    let mut app = connected();
    assert_eq!(
        app.update(ctrl('c'), clock()),
        [Command::Quit],
        "nothing to lose"
    );
    let mut app = connected();
    type_str(&mut app, "draft");
    app.update(key(KeyCode::Home), clock());
    assert_eq!(app.update(ctrl('d'), clock()), []);
    assert_eq!(app.input().as_str(), "raft");
    app.update(ctrl('k'), clock());
    assert_eq!(app.update(ctrl('d'), clock()), [Command::Quit]);
    assert_eq!(connected().update(Msg::Quit, clock()), [Command::Quit]);
}

#[test]
fn readline_keys_edit_words() {
    let mut app = connected();
    type_str(&mut app, "one two three");
    app.update(alt(KeyCode::Char('b')), clock());
    app.update(alt(KeyCode::Backspace), clock());
    assert_eq!(app.input().as_str(), "one three");
    app.update(
        Msg::Key(KeyEvent::new(KeyCode::Left, KeyModifiers::CONTROL)),
        clock(),
    );
    app.update(alt(KeyCode::Char('d')), clock());
    assert_eq!(app.input().as_str(), " three");
    app.update(ctrl('y'), clock());
    assert_eq!(app.input().as_str(), "one three");
    app.update(
        Msg::Key(KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL)),
        clock(),
    );
    app.update(alt(KeyCode::Char('f')), clock());
    assert_eq!(app.input().cursor(), app.input().as_str().len());
}

#[test]
fn tab_completes_anywhere_and_cycles_without_writing_to_the_log() {
    let mut app = connected();
    server(&mut app, "users alice,bob,carol,caroline,张三");
    server(&mut app, "rooms #rust=2,#rustaceans=1");
    let entries = current(&app).entries().len();
    type_str(&mut app, "b");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "bob: ");
    type_str(&mut app, "ask ca");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "bob: ask carol ");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "bob: ask caroline ");
    app.update(key(KeyCode::BackTab), clock());
    assert_eq!(app.input().as_str(), "bob: ask carol ");
    type_str(&mut app, "in #rusta");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "bob: ask carol in #rustaceans ");
    app.update(ctrl('u'), clock());
    type_str(&mut app, "/qu");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "/query ");
    type_str(&mut app, "张");
    app.update(key(KeyCode::Tab), clock());
    assert_eq!(app.input().as_str(), "/query 张三 ");
    assert_eq!(
        current(&app).entries().len(),
        entries,
        "nothing written to the log"
    );
}

#[test]
fn search_jumps_between_matches() {
    let mut app = App::new(settings(), Size::new(80, 12), start());
    app.update(Msg::Net(NetEvent::Connected), clock());
    for i in 0..40 {
        let text = if i % 10 == 3 {
            format!("Needle {i}")
        } else {
            format!("hay {i}")
        };
        server(&mut app, &format!("from bob *: {text}"));
    }
    enter(&mut app, "/search needle");
    let at = |app: &App| {
        let seq = app.search().and_then(|s| s.at).expect("a match");
        current(app)
            .entries()
            .iter()
            .find(|e| e.seq == seq)
            .and_then(|e| e.kind.text())
            .map(str::to_owned)
    };
    assert_eq!(at(&app).as_deref(), Some("Needle 33"));
    app.update(key(KeyCode::F(3)), clock());
    assert_eq!(at(&app).as_deref(), Some("Needle 23"));
    assert!(current(&app).scroll > 0, "scrolled to it");
    app.update(key(KeyCode::F(3)), clock());
    app.update(key(KeyCode::F(3)), clock());
    app.update(key(KeyCode::F(3)), clock());
    assert_eq!(at(&app).as_deref(), Some("Needle 3"));
    assert_eq!(hint(&app), "no older match for \"needle\"");
    app.update(
        Msg::Key(KeyEvent::new(KeyCode::F(3), KeyModifiers::SHIFT)),
        clock(),
    );
    assert_eq!(at(&app).as_deref(), Some("Needle 13"));
    app.update(key(KeyCode::Esc), clock());
    assert!(app.search().is_none());
    enter(&mut app, "/search nothing here");
    assert_eq!(hint(&app), "no match for \"nothing here\"");
}

fn password(s: &str) -> Command {
    Command::UsePassword(Password::parse(s).expect("a valid password"))
}

/// Issue 21, defect 2: a password set during the session was never used, so the next
/// reconnect was refused three times and tripped the server's login throttle.
#[test]
fn a_password_set_during_the_session_is_used_for_the_next_login() {
    let mut app = connected();
    assert_eq!(
        enter(&mut app, "/register erinpass1"),
        [send("/register erinpass1")]
    );
    // Used once the server confirms it, not before: it may refuse it.
    assert_eq!(
        server(&mut app, "registered alice"),
        [password("erinpass1")]
    );
    assert_eq!(
        enter(&mut app, "/password erinpass2"),
        [send("/password erinpass2")]
    );
    assert_eq!(server(&mut app, "error: not now"), []);
    assert_eq!(
        server(&mut app, "password changed"),
        [password("erinpass2")]
    );
    assert_eq!(server(&mut app, "password changed"), [], "used once");
}

#[test]
fn a_login_refused_for_a_password_stops_and_offers_login() {
    let mut app = connected();
    enter(&mut app, "hello");
    disconnect(&mut app, Vec::new());
    enter(&mut app, "typed while away");
    let mut now = clock();
    now.now += Duration::from_secs(60);
    assert_eq!(app.update(Msg::Tick, now), [Command::Connect]);
    let reason = "name is registered; log in with \"alice <password>\"";
    app.update(Msg::Net(NetEvent::LoginRefused(reason.into())), now);
    assert!(
        matches!(app.state(), ConnState::Stopped { .. }),
        "no retry with the same login: {:?}",
        app.state()
    );
    let note = last_notice(&app);
    for words in ["/login <password>", "--password-file", "CHAT_PASSWORD"] {
        assert!(note.contains(words), "{note}");
    }
    now.now += Duration::from_secs(600);
    assert_eq!(app.update(Msg::Tick, now), [], "not retrying by itself");
    type_str(&mut app, "/login erin");
    assert_eq!(
        crate::ui::masked(app.input().as_str(), 0),
        "/login ****",
        "masked while typed"
    );
    assert_eq!(
        app.update(key(KeyCode::Enter), clock()),
        [password("erin"), Command::Connect]
    );
    assert!(app.input().is_empty());
    app.update(key(KeyCode::Up), clock());
    assert_eq!(
        app.input().as_str(),
        "typed while away",
        "the password is not kept"
    );
}

/// Issue 21, defect 2: quitting lost the lines waiting for a connection without a word.
#[test]
fn quitting_with_pending_lines_asks_first() {
    let mut app = connected();
    disconnect(&mut app, Vec::new());
    enter(&mut app, "one");
    enter(&mut app, "two");
    assert_eq!(enter(&mut app, "/quit"), []);
    assert!(
        hint(&app).starts_with("2 lines not sent yet would be lost"),
        "{}",
        hint(&app)
    );
    assert_eq!(enter(&mut app, "/quit"), [Command::Quit]);
    let mut app = connected();
    disconnect(&mut app, Vec::new());
    enter(&mut app, "one");
    assert_eq!(app.update(ctrl('d'), clock()), []);
    assert!(hint(&app).starts_with("1 line not sent yet"));
    assert_eq!(app.update(ctrl('c'), clock()), [Command::Quit]);
    // Without pending lines, quitting is at once as before.
    assert_eq!(connected().update(ctrl('c'), clock()), [Command::Quit]);
}

/// Issue 21, feature (habits): `/quit [message]` quits, with or without lines waiting;
/// the message is sent nowhere (the protocol has no quit reason), only logged.
#[test]
fn quit_takes_a_message_that_only_the_log_keeps() {
    assert_eq!(
        enter(&mut connected(), "/quit gone fishing"),
        [Command::Quit]
    );
    let mut app = with(Settings {
        log: true,
        ..settings()
    });
    login(&mut app);
    disconnect(&mut app, Vec::new());
    enter(&mut app, "one");
    assert_eq!(enter(&mut app, "/exit gone fishing"), []);
    assert!(
        hint(&app).starts_with("1 line not sent yet"),
        "{}",
        hint(&app)
    );
    let commands = enter(&mut app, "/quit gone fishing");
    assert_eq!(
        commands,
        [
            Command::Log {
                buffer: "server".into(),
                line: "2026-11-29 12:34:00 you quit: gone fishing".into()
            },
            Command::Quit
        ]
    );
}

#[test]
fn a_refused_first_login_ends_the_program() {
    let mut app = app();
    let commands = app.update(
        Msg::Net(NetEvent::LoginRefused("name already in use: alice".into())),
        clock(),
    );
    assert_eq!(commands, [Command::Quit]);
    assert_eq!(
        app.exit(),
        Some(&Exit::Refused("name already in use: alice".into()))
    );
}

/// Issue 21, defect 15: a first connection that cannot work (an untrusted certificate)
/// was retried for ever; it ends the program. After a login, the same stops the retries.
#[test]
fn a_connection_that_cannot_work_is_not_retried() {
    let reason = "the server's certificate is not trusted: it has expired";
    let unreachable = || {
        Msg::Net(NetEvent::Unreachable {
            reason: reason.into(),
            unsent: Vec::new(),
        })
    };
    let mut app = app();
    assert_eq!(app.update(unreachable(), clock()), [Command::Quit]);
    assert_eq!(app.exit(), Some(&Exit::Unreachable(reason.into())));

    let mut app = connected();
    disconnect(&mut app, Vec::new());
    let mut now = clock();
    now.now += Duration::from_secs(60);
    assert_eq!(app.update(Msg::Tick, now), [Command::Connect]);
    assert_eq!(app.update(unreachable(), now), []);
    assert!(matches!(app.state(), ConnState::Stopped { .. }));
    assert_eq!(
        last_notice(&app),
        format!("cannot connect: {reason}; not retrying: /reconnect tries again")
    );
    now.now += Duration::from_secs(600);
    assert_eq!(app.update(Msg::Tick, now), [], "not retrying by itself");
    assert_eq!(enter(&mut app, "/reconnect"), [Command::Connect]);
}

#[test]
fn a_name_taken_while_away_stops_the_retries_until_reconnect() {
    let mut app = connected();
    let mut now = clock();
    disconnect(&mut app, Vec::new());
    for attempt in 1..=crate::conn::MAX_REFUSALS {
        now.now += Duration::from_secs(60);
        assert_eq!(
            app.update(Msg::Tick, now),
            [Command::Connect],
            "attempt {attempt}"
        );
        app.update(
            Msg::Net(NetEvent::LoginRefused("name already in use: alice".into())),
            now,
        );
    }
    assert!(matches!(app.state(), ConnState::Stopped { .. }));
    assert!(
        last_notice(&app).ends_with("not retrying: /reconnect tries again"),
        "{}",
        last_notice(&app)
    );
    now.now += Duration::from_secs(3600);
    assert_eq!(app.update(Msg::Tick, now), [], "no more retries");
    assert_eq!(app.exit(), None);
    assert_eq!(enter(&mut app, "/reconnect"), [Command::Connect]);
    assert!(matches!(app.state(), ConnState::Connecting { .. }));
}

#[test]
fn disconnects_reconnect_with_growing_backoff() {
    let mut app = connected();
    let mut now = clock();
    for delay in [1, 2, 4, 8, 16, 30, 30] {
        app.update(
            Msg::Net(NetEvent::Disconnected {
                reason: "gone".into(),
                unsent: Vec::new(),
            }),
            now,
        );
        assert!(app.roster().is_empty());
        now.now += Duration::from_secs(delay) - Duration::from_millis(1);
        assert_eq!(app.update(Msg::Tick, now), [], "too early after {delay} s");
        now.now += Duration::from_millis(1);
        assert_eq!(app.update(Msg::Tick, now), [Command::Connect]);
    }
    app.update(Msg::Net(NetEvent::Connected), now);
    app.update(
        Msg::Net(NetEvent::Disconnected {
            reason: "gone".into(),
            unsent: Vec::new(),
        }),
        now,
    );
    now.now += Duration::from_secs(1);
    assert_eq!(
        app.update(Msg::Tick, now),
        [Command::Connect],
        "backoff restarts after a success"
    );
}

/// Issue 21, defect 6: mentions in history filled in after a reconnect, and messages
/// that waited for our login, were drawn highlighted but neither marked nor rang.
#[test]
fn mentions_in_filled_in_history_and_mail_at_login_are_highlights() {
    let mut app = connected();
    in_room(&mut app, "#rust");
    server(&mut app, "from bob #rust 10: before the drop");
    app.update(alt(KeyCode::Char('1')), clock());
    disconnect(&mut app, Vec::new());
    login(&mut app);
    server(&mut app, "joined #rust alice");
    server(
        &mut app,
        "history #rust 11 2026-11-29T11:00:00.000Z bob: alice, you there?",
    );
    assert_eq!(
        server(&mut app, "history-end #rust complete"),
        [
            Command::Bell,
            Command::Title(Some("chat-client: bob mentioned you in #rust".into()))
        ]
    );
    assert!(app.buffers().all()[2].mentioned);

    // Messages that waited for the login: each conversation is a highlight.
    server(
        &mut app,
        "history @carol 12 2026-11-29T10:00:00.000Z carol: call me",
    );
    assert_eq!(
        server(&mut app, "history-end missed 1"),
        [
            Command::Bell,
            Command::Title(Some("chat-client: carol wrote to you".into()))
        ]
    );

    // The latest messages shown at a join were written before we came: no bell.
    let mut app = connected();
    enter(&mut app, "/join #go");
    server(&mut app, "joined #go alice");
    server(
        &mut app,
        "history #go 3 2026-11-29T09:00:00.000Z bob: old news, alice",
    );
    assert_eq!(server(&mut app, "history-end #go complete"), []);
}

/// The `Command::Log` lines among `commands`, as `buffer| line` without the date.
fn logged(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Log { buffer, line } => Some(format!("{buffer}| {}", line.split_at(20).1)),
            _ => None,
        })
        .collect()
}

/// Issue 21, defect 7: `--log-dir` missed history filled in after a reconnect, mail
/// delivered at login (lost for good then), and joins and parts; and a pending line
/// stayed logged with `(pending)` after it was sent.
#[test]
fn the_log_has_every_line_shown_and_pending_lines_once_sent() {
    let mut app = with(Settings {
        log: true,
        ..settings()
    });
    login(&mut app);
    in_room(&mut app, "#rust");
    assert_eq!(
        logged(&server(&mut app, "joined #rust bob")),
        ["#rust| bob joined #rust"]
    );
    assert_eq!(
        logged(&server(&mut app, "joined #rust carol")),
        ["#rust| carol joined #rust"],
        "each one, though folded on screen"
    );
    server(&mut app, "from bob #rust 10: before");
    disconnect(&mut app, Vec::new());
    assert_eq!(
        logged(&enter(&mut app, "typed offline")),
        Vec::<String>::new()
    );
    let [at_welcome, settled] = login(&mut app);
    let lines: Vec<String> = logged(&at_welcome)
        .into_iter()
        .chain(logged(&settled))
        .filter(|l| l.contains("typed offline"))
        .collect();
    assert_eq!(lines, ["#rust| alice: typed offline"], "once, when sent");
    server(&mut app, "joined #rust alice");
    server(
        &mut app,
        "history #rust 11 2026-11-29T11:00:00.000Z bob: missed",
    );
    assert_eq!(
        logged(&server(&mut app, "history-end #rust complete")),
        ["#rust| bob: missed"]
    );
    server(
        &mut app,
        "history @carol 12 2026-11-29T10:00:00.000Z carol: mail",
    );
    let commands = server(&mut app, "history-end missed 1");
    assert_eq!(logged(&commands)[0], "@carol| carol: mail");
}

/// Issue 21, defect 16: the latest messages loaded at a join counted as unread
/// (`#rust 50` at login); only what came after what we had is unread.
#[test]
fn loaded_history_is_not_unread_but_a_catch_up_is() {
    let mut app = connected();
    enter(&mut app, "/join #go");
    server(&mut app, "joined #go alice");
    app.update(alt(KeyCode::Char('1')), clock());
    for line in [
        "history #go 1 2026-11-29T09:00:00.000Z bob: one",
        "history #go 2 2026-11-29T09:00:01.000Z bob: two",
        "history-end #go complete",
    ] {
        server(&mut app, line);
    }
    assert_eq!(app.buffers().all()[2].unread, 0, "loaded, not unread");
    disconnect(&mut app, Vec::new());
    login(&mut app);
    server(&mut app, "joined #go alice");
    server(
        &mut app,
        "history #go 3 2026-11-29T10:00:00.000Z bob: missed",
    );
    server(&mut app, "history-end #go complete");
    assert_eq!(app.buffers().all()[2].unread, 1, "missed while away");
}

#[test]
fn mail_replayed_after_login_lands_in_its_conversations() {
    let mut app = connected();
    server(
        &mut app,
        "history @bob 7 2026-11-28T18:00:00.123Z bob: are you there?",
    );
    server(
        &mut app,
        "history @carol 8 2026-11-28T18:00:01.000Z carol: ping alice",
    );
    server(&mut app, "history-end missed 2");
    let bob = app
        .buffers()
        .find(&BufferId::Query(name("bob")))
        .expect("a bob buffer");
    let bob = &app.buffers().all()[bob];
    assert_eq!(bob.unread, 1);
    assert!(
        bob.entries()
            .iter()
            .any(|e| e.kind.text() == Some("are you there?"))
    );
    let server_buffer = &app.buffers().all()[0];
    assert_eq!(
        server_buffer.entries().back().and_then(|e| e.kind.text()),
        Some("2 message(s) arrived while you were away")
    );
}

#[test]
fn untrusted_text_is_stored_escaped() {
    let mut app = connected();
    app.update(
        Msg::Net(NetEvent::Unrecognised(
            "from bob: \x1b]0;PWNED\x07\x1b[2J".into(),
        )),
        clock(),
    );
    let server_buffer = &app.buffers().all()[0];
    assert_eq!(
        server_buffer.entries().back().and_then(|e| e.kind.text()),
        Some("unrecognised line from the server: from bob: \\u{1b}]0;PWNED\\u{7}\\u{1b}[2J")
    );
    server(&mut app, "error: bad \u{202e}thing");
    assert_eq!(last_notice(&app), "error: bad \\u{202e}thing");
}

#[test]
fn scrollback_is_bounded_per_buffer() {
    let mut app = connected();
    for i in 0..250 {
        server(&mut app, &format!("from bob *: {i}"));
    }
    assert_eq!(current(&app).entries().len(), 100);
    assert_eq!(last(&app).kind.text(), Some("249"));
}

#[test]
fn logs_carry_the_date_and_the_line_as_shown() {
    let mut app = with(Settings {
        log: true,
        ..settings()
    });
    app.update(Msg::Net(NetEvent::Connected), clock());
    let commands = server(&mut app, "from bob *: hello");
    assert_eq!(
        commands,
        [Command::Log {
            buffer: "everyone".into(),
            line: "2026-11-29 12:34:00 bob: hello".into()
        }]
    );
}

#[test]
fn help_scrolls_and_closes() {
    let mut app = App::new(settings(), Size::new(40, 12), start());
    app.update(key(KeyCode::F(1)), clock());
    assert_eq!(app.help(), Some(0));
    app.update(key(KeyCode::PageDown), clock());
    assert_eq!(app.help(), Some(8));
    for _ in 0..1000 {
        app.update(key(KeyCode::Down), clock());
    }
    let last = layout::help_max_scroll(Size::new(40, 12));
    assert!(
        last > crate::keys::help_lines().len(),
        "wrapped rows: {last}"
    );
    assert_eq!(app.help(), Some(last));
    app.update(key(KeyCode::Esc), clock());
    assert_eq!(app.help(), None);
}

#[test]
fn the_mouse_is_captured_only_when_asked() {
    let mut app = app();
    assert_eq!(app.start(), [Command::Connect]);
    assert_eq!(
        app.update(key(KeyCode::F(2)), clock()),
        [Command::Mouse(true)]
    );
    assert_eq!(enter(&mut app, "/mouse"), [Command::Mouse(false)]);
    let app = with(Settings {
        mouse: true,
        ..settings()
    });
    assert_eq!(app.start(), [Command::Connect, Command::Mouse(true)]);
}

#[test]
fn key_releases_are_ignored_and_ctrl_l_redraws() {
    let mut app = connected();
    let mut release = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    app.update(Msg::Key(release), clock());
    assert!(app.input().is_empty());
    assert_eq!(app.update(ctrl('l'), clock()), [Command::Redraw]);
}

#[test]
fn a_resize_measures_only_what_is_on_screen_until_more_is_needed() {
    let mut app = App::new(settings(), Size::new(80, 24), start());
    app.update(Msg::Net(NetEvent::Connected), clock());
    let long = "word ".repeat(30);
    for i in 0..100 {
        server(&mut app, &format!("from bob *: {i} {long}"));
    }
    // At 40 columns (20 for messages with the user list gone, 40 without) each wraps more.
    app.update(Msg::Resize(40, 24), clock());
    let narrow = current(&app).visible_rows(app.look(), Widths::same(40), 0, 19, None);
    assert!(
        narrow
            .last()
            .is_some_and(|r| r.line.to_string().contains("word"))
    );
    for _ in 0..100 {
        app.update(key(KeyCode::PageUp), clock());
    }
    let top = current(&app).scroll;
    let rows = current(&app).visible_rows(app.look(), Widths::same(40), top, 18, None);
    assert!(
        rows[0].line.to_string().contains(" 0 word"),
        "the oldest entry is reachable: {:?}",
        rows[0]
    );
    // Every height measured at the new width: the scroll range is exact.
    let heights: usize = current(&app)
        .entries()
        .iter()
        .map(|e| layout::height(e, app.look(), Widths::same(40)))
        .sum();
    assert_eq!(
        top,
        heights - 18,
        "{heights} rows, 18 shown with the indicator"
    );
}

mod governance;
mod sessions;
