use std::time::{Duration, Instant};

use chat_proto::UserName;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Size;

use super::*;
use crate::app::{JoinPart, Settings};
use crate::event::{Clock, Msg, NetEvent};

fn clock(now: Instant) -> Clock {
    Clock {
        now,
        local: chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
            .and_then(|d| d.and_hms_opt(9, 5, 0))
            .expect("a valid time"),
    }
}

fn app(width: u16, height: u16, now: Instant) -> App {
    App::new(settings(), Size::new(width, height), now)
}

fn settings() -> Settings {
    Settings {
        name: UserName::parse("alice").expect("a valid name"),
        addr: "127.0.0.1:8080".into(),
        tls: false,
        max_line_bytes: 4096,
        scrollback: 1000,
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

fn feed(app: &mut App, now: Instant, lines: &[&str]) {
    for line in lines {
        let event = match line.parse() {
            Ok(line) => NetEvent::Line(line),
            Err(_) => NetEvent::Unrecognised((*line).to_owned()),
        };
        app.update(Msg::Net(event), clock(now));
    }
}

fn press(app: &mut App, now: Instant, code: KeyCode, mods: KeyModifiers) {
    app.update(Msg::Key(KeyEvent::new(code, mods)), clock(now));
}

fn type_line(app: &mut App, now: Instant, text: &str) {
    for c in text.chars() {
        press(app, now, KeyCode::Char(c), KeyModifiers::NONE);
    }
}

fn screen(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|frame| draw(frame, app)).expect("drawing");
    terminal
}

fn row(terminal: &Terminal<TestBackend>, y: u16) -> String {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol().to_owned())
        .collect()
}

/// Alice in #rust with bob and 张三, a few messages, a line being typed.
fn conversation(width: u16, height: u16) -> (App, Instant) {
    let now = Instant::now();
    let mut app = app(width, height, now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    feed(&mut app, now, &["users alice,bob,张三"]);
    type_line(&mut app, now, "/join #rust");
    press(&mut app, now, KeyCode::Enter, KeyModifiers::NONE);
    feed(
        &mut app,
        now,
        &[
            "joined #rust alice",
            "names #rust alice,bob,张三",
            "history #rust 1 2026-11-29T08:00:00.000Z bob: earlier, from history",
            "history-end #rust complete",
            "from bob #rust 2: hi alice, this is a longer message that has to wrap onto a second row",
            "from 张三 #rust 3: 你好！",
            "from bob #rust 4: \x1b]0;PWNED\x07\x1b[2J",
            "from carol: a direct message",
        ],
    );
    type_line(&mut app, now, "好的 see you");
    press(&mut app, now, KeyCode::Enter, KeyModifiers::NONE);
    type_line(&mut app, now, "/me waves");
    press(&mut app, now, KeyCode::Enter, KeyModifiers::NONE);
    type_line(&mut app, now, "张三你好");
    (app, now)
}

#[test]
fn whole_screen() {
    let (app, _) = conversation(80, 16);
    let terminal = screen(&app, 80, 16);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(
        terminal.backend().cursor_position(),
        Position::new(8 + 8, 15),
        "after [#rust] and 张三你好"
    );
}

#[test]
fn a_room_shows_its_topic_over_the_messages_and_roles_in_the_user_list() {
    let (mut app, now) = conversation(80, 12);
    feed(
        &mut app,
        now,
        &[
            "names #rust alice,bob,carol,张三",
            "roles #rust +bob,@carol",
            "mode #rust +mt",
            "topic #rust 张三 2026-11-29T09:05:00.000Z: Rust \u{202e}fast",
            "mode #rust 张三 +o alice",
        ],
    );
    let terminal = screen(&app, 80, 12);
    insta::assert_snapshot!(terminal.backend());
    assert!(
        row(&terminal, 2).starts_with(" #rust +mt · Rust \\u{202e}fast "),
        "{:?}",
        row(&terminal, 2)
    );
    let list: Vec<String> = (3..7)
        .map(|y| {
            row(&terminal, y)
                .chars()
                .skip(61)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    // Ops, then voiced members, then the rest, in one column.
    assert_eq!(list[..3], [" @alice (you)", " @carol", " +bob"]);
    assert!(list[3].starts_with("  张"), "{list:?}");
}

#[test]
fn narrow_screen_hides_the_user_list_and_wraps_more() {
    let (app, _) = conversation(40, 12);
    insta::assert_snapshot!(screen(&app, 40, 12).backend());
}

#[test]
fn the_status_bar_drops_whole_pieces_when_narrow() {
    let (app, _) = conversation(80, 12);
    for (width, want) in [
        (80, " ● connected · alice @ 127.0.0.1:8080 · 3 online"),
        (50, " ● connected · alice @ 127.0.0.1:8080 · 3 online"),
        (40, " ● connected · alice · :8080 · 3 online"),
        (30, " ● connected · 3 online"),
    ] {
        let top = row(&screen(&app, width, 12), 0);
        assert!(top.starts_with(want), "{width}: {top:?}");
        assert!(
            !top.trim_end().ends_with('·'),
            "{width}: a dangling separator in {top:?}"
        );
    }
    assert!(
        row(&screen(&app, 80, 12), 0)
            .trim_end()
            .ends_with("F1 help")
    );
}

/// Issue 21, defect 16: the status bar had no sign of TLS.
#[test]
fn the_status_bar_says_tls() {
    let now = Instant::now();
    let settings = Settings {
        tls: true,
        ..settings()
    };
    let mut app = App::new(settings, Size::new(80, 12), now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    feed(&mut app, now, &["users alice,bob"]);
    let top = row(&screen(&app, 80, 12), 0);
    assert!(
        top.starts_with(" ● connected (TLS) · alice @ 127.0.0.1:8080 · 2 online"),
        "{top:?}"
    );
}

#[test]
fn the_status_bar_counts_our_sessions_and_says_away() {
    let now = Instant::now();
    let mut app = app(80, 12, now).with_account(true);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    feed(&mut app, now, &["users alice,bob", "whois alice 0 1"]);
    let top = row(&screen(&app, 80, 12), 0);
    assert!(
        top.starts_with(" ● connected · alice @ 127.0.0.1:8080 · 2 online  "),
        "alone: no count, {top:?}"
    );
    feed(&mut app, now, &["whois alice 0 3", "away alice: lunch"]);
    for (width, want) in [
        (
            80,
            " ● connected · alice @ 127.0.0.1:8080 · 2 online · 3 sessions · away",
        ),
        (
            60,
            " ● connected · alice · :8080 · 2 online · 3 sessions · away",
        ),
        (50, " ● connected · 2 online · 3 sessions · away"),
    ] {
        let top = row(&screen(&app, width, 12), 0);
        assert!(top.starts_with(want), "{width}: {top:?}");
    }
}

#[test]
fn disconnected_status_counts_down() {
    let now = Instant::now();
    let mut app = app(100, 8, now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    app.update(
        Msg::Net(NetEvent::Disconnected {
            reason: "server shutting down".into(),
            unsent: Vec::new(),
        }),
        clock(now),
    );
    app.update(Msg::Tick, clock(now + Duration::from_millis(10)));
    let top = row(&screen(&app, 100, 8), 0);
    assert!(
        top.starts_with(
            " disconnected: server shutting down · reconnecting in 1 s · alice @ 127.0.0.1:8080"
        ),
        "{top:?}"
    );
}

#[test]
fn too_small_a_terminal_says_so() {
    let now = Instant::now();
    let app = app(20, 4, now);
    insta::assert_snapshot!(screen(&app, 20, 4).backend());
}

#[test]
fn help_overlay_fits_and_scrolls_at_40_by_12() {
    let (mut app, now) = conversation(40, 12);
    press(&mut app, now, KeyCode::F(1), KeyModifiers::NONE);
    let first = screen(&app, 40, 12);
    insta::assert_snapshot!("help_top", first.backend());
    assert!(
        row(&first, 0).contains("help 1-10 of"),
        "{:?}",
        row(&first, 0)
    );
    press(&mut app, now, KeyCode::PageDown, KeyModifiers::NONE);
    let second = screen(&app, 40, 12);
    assert!(
        row(&second, 0).contains("help 9-18 of"),
        "{:?}",
        row(&second, 0)
    );
    for _ in 0..100 {
        press(&mut app, now, KeyCode::PageDown, KeyModifiers::NONE);
    }
    let end = screen(&app, 40, 12);
    assert!(
        row(&end, 10).contains("starts with /"),
        "the last line is reachable: {:?}",
        row(&end, 10)
    );
    for y in 0..12 {
        assert_eq!(
            row(&second, y).chars().count(),
            40,
            "nothing drawn past the edge"
        );
    }
}

#[test]
fn a_wide_character_at_the_help_overlays_edge_does_not_hide_its_border() {
    let (mut app, now) = conversation(200, 40);
    // Both parities, so that some CJK character straddles the column left of the border.
    let lines: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "from bob #rust {}: {}{}",
                100 + i,
                "a".repeat(i % 2),
                "中".repeat(60)
            )
        })
        .collect();
    feed(
        &mut app,
        now,
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    press(&mut app, now, KeyCode::F(1), KeyModifiers::NONE);
    let terminal = screen(&app, 200, 40);
    let buffer = terminal.backend().buffer();
    let popup = layout::help_popup(Rect::new(0, 0, 200, 40));
    for y in popup.top()..popup.bottom() {
        let left = buffer[(popup.x - 1, y)].symbol();
        assert!(
            left.width() <= 1,
            "row {y}: {left:?} would cover the border"
        );
    }
    let bordered = (popup.top() + 1..popup.bottom() - 1)
        .filter(|&y| buffer[(popup.x, y)].symbol() == "│")
        .count();
    assert_eq!(bordered, usize::from(popup.height - 2));
}

#[test]
fn help_overlay_at_80_by_24() {
    let (mut app, now) = conversation(80, 24);
    press(&mut app, now, KeyCode::F(1), KeyModifiers::NONE);
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn help_overlay_lists_the_keys_of_every_mode() {
    let (mut app, now) = conversation(80, 32);
    press(&mut app, now, KeyCode::F(1), KeyModifiers::NONE);
    // The rows as the 78 columns inside the border wrap them.
    let modes = layout::help_rows(78)
        .iter()
        .position(|l| l.to_string() == crate::keys::SEARCH.title)
        .expect("the help has a /search section");
    for _ in 0..modes {
        press(&mut app, now, KeyCode::Down, KeyModifiers::NONE);
    }
    insta::assert_snapshot!(screen(&app, 80, 32).backend());
}

#[test]
fn the_scroll_indicator_has_a_row_of_its_own() {
    let (mut app, now) = conversation(60, 12);
    for i in 0..20 {
        feed(
            &mut app,
            now,
            &[&format!("from bob #rust {}: older {i}", 10 + i)],
        );
    }
    press(&mut app, now, KeyCode::PageUp, KeyModifiers::NONE);
    let before = screen(&app, 60, 12);
    feed(
        &mut app,
        now,
        &["from bob #rust 40: newer 1", "from bob #rust 41: newer 2"],
    );
    let terminal = screen(&app, 60, 12);
    insta::assert_snapshot!(terminal.backend());
    // The indicator is on the pane's last row, and the rows above it did not move.
    assert!(
        row(&terminal, 9).contains("↓ 2 new"),
        "{:?}",
        row(&terminal, 9)
    );
    for y in 2..9 {
        assert_eq!(row(&before, y), row(&terminal, y), "row {y} moved");
    }
    press(&mut app, now, KeyCode::PageUp, KeyModifiers::NONE);
    let up = screen(&app, 60, 12);
    let last_message_row = row(&up, 8);
    assert!(
        last_message_row.contains("older"),
        "a message's end is not hidden: {last_message_row:?}"
    );
}

#[test]
fn the_user_list_says_how_many_more_and_scrolls() {
    let now = Instant::now();
    let mut app = app(60, 10, now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    let names: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
    feed(
        &mut app,
        now,
        &[&format!("users alice,{}", names.join(","))],
    );
    let terminal = screen(&app, 60, 10);
    let list: Vec<String> = (2..8)
        .map(|y| {
            row(&terminal, y)
                .chars()
                .skip(41)
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(list[0], "online (21)");
    assert_eq!(list[1], "alice (you)");
    assert_eq!(
        list.last().map(String::as_str),
        Some("+17 more"),
        "{list:?}"
    );
    for _ in 0..3 {
        press(&mut app, now, KeyCode::Down, KeyModifiers::ALT);
    }
    let terminal = screen(&app, 60, 10);
    let list: Vec<String> = (2..8)
        .map(|y| {
            row(&terminal, y)
                .chars()
                .skip(41)
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(list[1], "↑ 3 more", "{list:?}");
    assert_eq!(list[2], "user02");
    assert_eq!(
        list.last().map(String::as_str),
        Some("+15 more"),
        "{list:?}"
    );
}

#[test]
fn wide_emoji_and_flags_keep_the_separator_in_place() {
    let now = Instant::now();
    let mut app = app(60, 8, now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    feed(
        &mut app,
        now,
        &["from bob *: family 👨\u{200d}👩\u{200d}👧 flag 🇨🇳 heart ❤\u{fe0f} end"],
    );
    let terminal = screen(&app, 60, 8);
    let cells = terminal.backend().buffer();
    // A terminal advances by the sum of the characters' widths; ratatui placed each cell
    // by the cluster's width. They must agree for every cell, or the cursor drifts.
    for cell in &cells.content {
        let symbol = cell.symbol();
        let by_char: usize = symbol
            .chars()
            .map(|c| unicode_width::UnicodeWidthChar::width(c).unwrap_or(0))
            .sum();
        assert_eq!(symbol.width(), by_char, "{symbol:?}");
    }
    let message_row = (0..8)
        .map(|y| row(&terminal, y))
        .find(|r| r.contains("family"))
        .expect("the message");
    // Drawn as its three people, each in its own two cells.
    assert!(
        message_row.contains("family 👨 👩 👧  flag 🇨🇳 "),
        "{message_row:?}"
    );
}

#[test]
fn a_long_input_scrolls_sideways_to_keep_the_cursor_visible() {
    let now = Instant::now();
    let mut app = app(40, 8, now);
    type_line(&mut app, now, &"字".repeat(30));
    let terminal = screen(&app, 40, 8);
    let cursor = terminal.backend().cursor_position();
    assert_eq!(cursor.y, 7);
    assert!(cursor.x < 40, "cursor at {cursor:?}");
    assert!(
        row(&terminal, 7).starts_with("[*] 字"),
        "{:?}",
        row(&terminal, 7)
    );
}

#[test]
fn a_password_being_typed_is_masked_width_for_width() {
    assert_eq!(masked("/register héllo 世界", 0), "/register **********");
    assert_eq!(masked("/PASSWORD abc", 3), "SSWORD ***");
    assert_eq!(masked("/who", 0), "/who");
    assert_eq!(masked("bob: /register x", 0), "bob: /register x");
    assert_eq!(masked("a\tb\x1b", 0), "a    b\\u{1b}");
}

#[test]
fn the_buffer_bar_shows_unread_and_mentions() {
    let (mut app, now) = conversation(80, 12);
    press(&mut app, now, KeyCode::Char('1'), KeyModifiers::ALT);
    feed(
        &mut app,
        now,
        &[
            "from bob #rust 50: alice, you there?",
            "from bob #rust 51: hello?",
        ],
    );
    let bar = row(&screen(&app, 80, 12), 1);
    assert!(bar.contains("1:server"), "{bar:?}");
    assert!(bar.contains("3:#rust 2!"), "{bar:?}");
    assert!(bar.contains("4:carol 1"), "{bar:?}");
}

/// Issue 21, defect 16: a buffer bar too long for the terminal was cut mid-name on
/// the right, with no `…` as on the left.
#[test]
fn a_bar_that_does_not_fit_says_so_on_both_sides() {
    let (mut app, now) = conversation(40, 12);
    for name in ["dave", "erin", "frank", "grace"] {
        type_line(&mut app, now, &format!("/query {name}"));
        press(&mut app, now, KeyCode::Enter, KeyModifiers::NONE);
    }
    press(&mut app, now, KeyCode::Char('2'), KeyModifiers::ALT);
    let bar = row(&screen(&app, 40, 12), 1);
    assert_eq!(
        bar.trim_end(),
        " 1:server  2:*  3:#rust  4:carol 1! …",
        "{bar:?}"
    );
    press(&mut app, now, KeyCode::Char('6'), KeyModifiers::ALT);
    let bar = row(&screen(&app, 40, 12), 1);
    assert!(
        bar.starts_with('…') && bar.trim_end().ends_with('…'),
        "{bar:?}"
    );
    assert!(bar.contains("6:frank"), "{bar:?}");
}

/// The message rows of the screen (without the user list), trimmed, top first.
fn message_rows(terminal: &Terminal<TestBackend>, width: u16, height: u16) -> Vec<String> {
    (3..height - 2)
        .map(|y| {
            row(terminal, y)
                .chars()
                .take(usize::from(width) - 21)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Issue 21, defect 4: history across days showed `23:10`, `22:10`, `00:10` with no word
/// of the day. Each change of date gets a line, in history too, and where older history
/// is merged in above today's lines.
#[test]
fn a_day_change_line_goes_wherever_the_date_changes() {
    let now = Instant::now();
    let mut app = app(80, 20, now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    feed(&mut app, now, &["users alice,bob"]);
    type_line(&mut app, now, "/join #rust");
    press(&mut app, now, KeyCode::Enter, KeyModifiers::NONE);
    feed(
        &mut app,
        now,
        &[
            "joined #rust alice",
            "names #rust alice,bob",
            "history #rust 1 2026-11-27T12:00:00.000Z bob: friday",
            "history #rust 3 2026-11-28T12:00:00.000Z bob: saturday",
            "history-end #rust complete",
            "from bob #rust 4: sunday",
        ],
    );
    // A message of the first day, merged in between: the day lines stay where they belong.
    feed(
        &mut app,
        now,
        &[
            "history #rust 2 2026-11-27T12:30:00.000Z bob: friday again",
            "history-end #rust complete",
        ],
    );
    let terminal = screen(&app, 80, 20);
    assert_eq!(
        message_rows(&terminal, 80, 20),
        [
            "09:05 — you joined #rust",
            "09:05 — #rust (2): alice, bob",
            "── Friday 27 November 2026 ──",
            "12:00 ── history of #rust: 2 ──",
            "12:00 bob: friday",
            "12:30 ── history of #rust: 1 ──",
            "12:30 bob: friday again",
            "── Saturday 28 November 2026 ──",
            "12:00 bob: saturday",
            "── Sunday 29 November 2026 ──",
            "09:05 bob: sunday",
        ]
    );
}

/// Issue 21, feature: a URL wider than the pane takes whole rows of the screen, over the
/// user list, unindented; each of its cells is an OSC 8 hyperlink to the whole URL, as
/// wide as its character, opened and closed in the cell.
#[test]
fn a_long_url_takes_whole_rows_and_is_a_hyperlink() {
    let now = Instant::now();
    let url =
        "https://example.org/a/long/path/that/goes/on/and/on/and/on/for/ever/and/ever/and/a/day";
    let mut app = App::new(
        Settings {
            hyperlinks: true,
            ..settings()
        },
        Size::new(80, 12),
        now,
    );
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    type_line(&mut app, now, "/join #rust");
    press(&mut app, now, KeyCode::Enter, KeyModifiers::NONE);
    let line = format!("from bob #rust 2: see {url} ok");
    feed(
        &mut app,
        now,
        &["joined #rust alice", "names #rust alice,bob", &line],
    );
    let terminal = screen(&app, 80, 12);
    let buffer = terminal.backend().buffer();
    let plain = |y: u16| -> String {
        (0..80)
            .map(|x| {
                let symbol = buffer[(x, y)].symbol();
                // The grapheme between the link's opening and closing escapes.
                symbol
                    .rsplit_once("\x1b]8;;\x1b\\")
                    .and_then(|(open, _)| open.rsplit_once("\x1b\\"))
                    .map_or(symbol, |(_, grapheme)| grapheme)
                    .to_owned()
            })
            .collect()
    };
    let rows: Vec<String> = (0..12).map(plain).collect();
    let first = rows
        .iter()
        .position(|r| r.starts_with("https://"))
        .expect("the URL starts a row");
    assert!(rows[first - 1].starts_with("09:05 bob: see "), "{rows:#?}");
    // Its last piece is no wider than the pane: the user list goes on beside it.
    let rest = rows[first + 1].split(' ').next().unwrap_or_default();
    assert_eq!(format!("{}{rest}", rows[first]), url);
    assert!(rows[first + 2].starts_with("      ok "), "{rows:#?}");
    assert!(
        !rows[first].contains('│'),
        "the user list makes way: {rows:#?}"
    );
    assert!(
        rows[first + 2].contains('│'),
        "and is back after: {rows:#?}"
    );

    let cell = &buffer[(0, first as u16)];
    assert_eq!(
        cell.symbol(),
        format!(
            "\x1b]8;id={:016x};{url}\x1b\\h\x1b]8;;\x1b\\",
            layout::fnv1a(url.as_bytes())
        )
    );
    assert_eq!(
        cell.diff_option,
        CellDiffOption::ForcedWidth(NonZeroU16::MIN)
    );
    assert_eq!(
        osc8_target("https://例え.jp/a b"),
        "https://%E4%BE%8B%E3%81%88.jp/a%20b"
    );
}

/// Issue 21, defect 16: `👍🏽` is drawn whole in one two-cell cell, in the messages and
/// the input, and the two cells after it are drawn again with it (so that a terminal
/// that draws the tone apart leaves no stray swatch).
#[test]
fn an_emoji_keeps_its_skin_tone_on_screen() {
    let now = Instant::now();
    let mut app = app(60, 10, now);
    app.update(Msg::Net(NetEvent::Connected), clock(now));
    feed(&mut app, now, &["from bob *: nice 👍🏽 work"]);
    type_line(&mut app, now, "👍🏽");
    let terminal = screen(&app, 60, 10);
    let buffer = terminal.backend().buffer();
    let message = (0..10)
        .find(|&y| row(&terminal, y).starts_with("09:05 bob: nice "))
        .expect("bob's line");
    let x = "09:05 bob: nice ".len() as u16;
    assert_eq!(buffer[(x, message)].symbol(), "👍🏽");
    assert_eq!(buffer[(x + 2, message)].symbol(), " ");
    assert_eq!(buffer[(x + 3, message)].symbol(), "w");
    for cell in [&buffer[(x + 2, message)], &buffer[(x + 3, message)]] {
        assert_eq!(cell.diff_option, CellDiffOption::AlwaysUpdate);
    }
    assert_eq!(buffer[(4, 9)].symbol(), "👍🏽", "in the input after [*]");
    assert_eq!(
        terminal.backend().cursor_position(),
        Position::new(4 + 2, 9)
    );
}
