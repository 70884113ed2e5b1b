//! The view: draws an [`App`] and nothing else. It reads state, never changes it, and
//! costs what is visible: the message pane wraps entries from the newest back only until
//! the pane is full, however long the scrollback.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::app::{App, ConnState, Entry, EntryKind};

/// Smallest terminal the layout fits in.
pub const MIN_WIDTH: u16 = 30;
/// Smallest terminal the layout fits in.
pub const MIN_HEIGHT: u16 = 6;
/// Width of the who-is-online panel, shown when the terminal is wide enough.
const ROSTER_WIDTH: u16 = 22;
const ROSTER_MIN_TERMINAL_WIDTH: u16 = 60;
/// Width of `HH:MM `, and the indent of wrapped rows.
const TIME_WIDTH: usize = 6;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// The status bar, top row.
    pub status: Rect,
    /// The message pane.
    pub messages: Rect,
    /// Who is online, when there is room.
    pub roster: Option<Rect>,
    /// The input line, with a rule above it.
    pub input: Rect,
}

/// Lays out a screen of `area`; `None` if it is too small for the layout.
pub fn layout(area: Rect) -> Option<Panes> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let [status, body, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(area);
    let (messages, roster) = if area.width >= ROSTER_MIN_TERMINAL_WIDTH {
        let [messages, roster] =
            Layout::horizontal([Constraint::Min(1), Constraint::Length(ROSTER_WIDTH)]).areas(body);
        (messages, Some(roster))
    } else {
        (body, None)
    };
    Some(Panes {
        status,
        messages,
        roster,
        input,
    })
}

/// Draws `app` over the whole frame and places the cursor in the input line.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    frame.render_widget(app, area);
    if let Some(position) = cursor_position(app, area) {
        frame.set_cursor_position(position);
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Some(panes) = layout(area) else {
            Paragraph::new(format!(
                "Terminal too small ({}×{}); chat needs at least {MIN_WIDTH}×{MIN_HEIGHT}.",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true })
            .render(area, buf);
            return;
        };
        render_status(self, panes.status, buf);
        render_messages(self, panes.messages, buf);
        if let Some(roster) = panes.roster {
            render_roster(self, roster, buf);
        }
        render_input(self, panes.input, buf);
        if self.show_help() {
            render_help(area, buf);
        }
    }
}

fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let (state, color) = match app.state() {
        ConnState::Connecting { attempt: 1 } => ("connecting…".to_owned(), Color::Yellow),
        ConnState::Connecting { attempt } => {
            (format!("connecting (attempt {attempt})…"), Color::Yellow)
        }
        ConnState::Connected => ("● connected".to_owned(), Color::Green),
        ConnState::Disconnected { reason, retry_at } => {
            let secs = retry_at
                .saturating_duration_since(app.now())
                .as_secs_f64()
                .ceil();
            (
                format!("disconnected: {reason} · reconnecting in {secs} s"),
                Color::Red,
            )
        }
    };
    let online = match app.state() {
        ConnState::Connected => format!(" · {} online", app.roster().len()),
        _ => String::new(),
    };
    // The state first: on a narrow terminal it is what must stay visible.
    let line = Line::from(vec![
        Span::raw(" "),
        Span::styled(state, Style::new().fg(color).bold()),
        Span::raw(" · "),
        Span::styled(app.name().to_string(), Style::new().bold()),
        Span::raw(format!(" @ {}", app.addr())),
        Span::raw(online),
    ]);
    let help = Span::raw(" F1 help ");
    let bar = Style::new().bg(Color::DarkGray).fg(Color::White);
    buf.set_style(area, bar);
    let help_width = help.width() as u16;
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(help_width)]).areas(area);
    line.render(left, buf);
    help.render(right, buf);
}

fn render_messages(app: &App, area: Rect, buf: &mut Buffer) {
    let width = usize::from(area.width);
    let height = usize::from(area.height);
    let wanted = height + app.scroll();
    // Newest entries first, wrapped only until the pane (plus the scrolled-away rows) is full.
    let mut rows: Vec<Line<'static>> = Vec::with_capacity(wanted);
    for entry in app.entries().iter().rev() {
        let mut lines = entry_lines(entry, width, app);
        lines.reverse();
        rows.extend(lines);
        if rows.len() >= wanted {
            break;
        }
    }
    let skip = app.scroll().min(rows.len().saturating_sub(height));
    for (i, row) in rows.iter().skip(skip).take(height).enumerate() {
        let y = area.bottom() - 1 - i as u16;
        row.render(Rect::new(area.x, y, area.width, 1), buf);
    }
    if app.scroll() > 0 {
        let marker = match app.unseen() {
            0 => " ↑ scrolled · PgDn ".to_owned(),
            n => format!(" ↓ {n} new · PgDn "),
        };
        let w = (marker.width() as u16).min(area.width);
        let spot = Rect::new(area.right() - w, area.bottom() - 1, w, 1);
        Span::styled(
            marker,
            Style::new().bg(Color::Yellow).fg(Color::Black).bold(),
        )
        .render(spot, buf);
    }
}

/// How many rows `entry` takes at `width`.
pub fn entry_height(entry: &Entry, width: usize) -> usize {
    wrap(&entry_spans(entry, None), width).len()
}

fn entry_lines(entry: &Entry, width: usize, app: &App) -> Vec<Line<'static>> {
    wrap(&entry_spans(entry, Some(app)), width)
}

/// The styled pieces of one entry, before wrapping.
fn entry_spans(entry: &Entry, app: Option<&App>) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(
        entry.time.format("%H:%M ").to_string(),
        Style::new().dark_gray(),
    )];
    match &entry.kind {
        EntryKind::Message { from, text } => {
            spans.push(Span::styled(from.to_string(), name_style(from.as_str())));
            spans.push(Span::raw(": "));
            spans.push(Span::raw(text.clone()));
        }
        EntryKind::Own { to, text } => {
            let me = app.map_or("", |app| app.name().as_str());
            spans.push(Span::styled(me.to_owned(), name_style(me)));
            spans.push(Span::styled(format!(" → {to}"), Style::new().dark_gray()));
            spans.push(Span::raw(": "));
            spans.push(Span::raw(text.clone()));
        }
        EntryKind::Notice { text, error } => {
            let style = if *error {
                Style::new().red().italic()
            } else {
                Style::new().dark_gray().italic()
            };
            spans.push(Span::styled(format!("— {text}"), style));
        }
    }
    spans
}

/// Word-wraps styled text to `width` cells; rows after the first are indented past the
/// timestamp. A word longer than a row is split where it must be.
pub fn wrap(spans: &[Span<'_>], width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if width > TIME_WIDTH * 3 {
        TIME_WIDTH
    } else {
        0
    };
    let mut rows: Vec<Vec<(&str, Style)>> = vec![Vec::new()];
    let mut row_width = 0;
    for span in spans {
        for grapheme in span.content.graphemes(true) {
            let w = grapheme.width();
            if row_width + w > width && row_width > indent {
                let row = rows.last_mut().expect("rows is never empty");
                // Break after the last space, if the row has one past the indent.
                let carry = match row.iter().rposition(|(g, _)| *g == " ") {
                    Some(space) if space + 1 > indent && space + 1 < row.len() => {
                        row.split_off(space + 1)
                    }
                    _ => Vec::new(),
                };
                let mut next: Vec<(&str, Style)> = vec![(" ", Style::new()); indent];
                row_width = indent + carry.iter().map(|(g, _)| g.width()).sum::<usize>();
                next.extend(carry);
                rows.push(next);
            }
            if grapheme == " " && row_width == indent && rows.len() > 1 {
                // A space that would start a wrapped row is the break itself.
                continue;
            }
            rows.last_mut()
                .expect("rows is never empty")
                .push((grapheme, span.style));
            row_width += w;
        }
    }
    rows.into_iter().map(to_line).collect()
}

fn to_line(row: Vec<(&str, Style)>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    for (grapheme, style) in row {
        match spans.last_mut() {
            Some(last) if last.style == style => last.content.to_mut().push_str(grapheme),
            _ => spans.push(Span::styled(grapheme.to_owned(), style)),
        }
    }
    Line::from(spans)
}

/// A stable colour per name, so each person is recognisable at a glance.
pub fn name_color(name: &str) -> Color {
    const PALETTE: [Color; 10] = [
        Color::Cyan,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::LightCyan,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
    ];
    // FNV-1a: stable across runs and machines, unlike the std hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

fn name_style(name: &str) -> Style {
    Style::new()
        .fg(name_color(name))
        .add_modifier(Modifier::BOLD)
}

fn render_roster(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::new()
        .borders(Borders::LEFT)
        .border_style(Style::new().dark_gray())
        .title(format!(" online ({}) ", app.roster().len()));
    let lines: Vec<Line> = app
        .roster()
        .iter()
        .map(|name| {
            let mut line = Line::from(Span::styled(format!(" {name}"), name_style(name.as_str())));
            if name == app.name() {
                line.push_span(Span::styled(" (you)", Style::new().dark_gray()));
            }
            line
        })
        .collect();
    Paragraph::new(lines).block(block).render(area, buf);
}

/// The prompt, the visible part of the input, and the cursor's column within `width`.
fn input_view(app: &App, width: usize) -> (String, &str, usize) {
    let prompt = format!("[{}] ", app.target_label());
    let prompt_width = prompt.width();
    let room = width.saturating_sub(prompt_width + 1).max(1);
    let input = app.input();
    let text = input.as_str();
    // Scroll the line sideways so the cursor is always visible.
    let mut start = 0;
    let mut skipped = 0;
    for (i, grapheme) in text.grapheme_indices(true) {
        if input.cursor_width() - skipped <= room || i >= input.cursor() {
            break;
        }
        skipped += grapheme.width();
        start = i + grapheme.len();
    }
    (
        prompt,
        &text[start..],
        prompt_width + input.cursor_width() - skipped,
    )
}

fn render_input(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().dark_gray());
    let inner = block.inner(area);
    block.render(area, buf);
    let (prompt, visible, _) = input_view(app, usize::from(inner.width));
    let start = app.input().as_str().len() - visible.len();
    Line::from(vec![
        Span::styled(prompt, Style::new().bold()),
        Span::raw(masked(app.input().as_str(), start)),
    ])
    .render(inner, buf);
}

/// The input from byte `start` on, with a password after `/register ` or `/password `
/// shown as `*`s of the same width, so nobody reads it over the user's shoulder.
fn masked(text: &str, start: usize) -> String {
    let secret_from = ["/register ", "/password "]
        .iter()
        .find(|command| text.starts_with(*command))
        .map_or(usize::MAX, |command| command.len());
    text.grapheme_indices(true)
        .filter(|(i, _)| *i >= start)
        .map(|(i, grapheme)| {
            if i >= secret_from {
                "*".repeat(grapheme.width())
            } else {
                grapheme.to_owned()
            }
        })
        .collect()
}

fn cursor_position(app: &App, area: Rect) -> Option<Position> {
    if app.show_help() {
        return None;
    }
    let panes = layout(area)?;
    let inner = Block::new().borders(Borders::TOP).inner(panes.input);
    let (_, _, column) = input_view(app, usize::from(inner.width));
    Some(Position::new(inner.x + column as u16, inner.y))
}

/// The keys and commands, also printed by `chat-client --help`.
pub const HELP: &str = "\
Enter          send the line
bob,carol: hi  send to bob and carol
*: hi          send to everyone
#rust: hi      send to a room you joined
/join #rust    join a room (/part, /names, /rooms, /history)
/register PASS register your name (/password NEW changes it)
/to bob,carol  plain lines go to bob and carol (/to * for everyone)
/who           refresh who is online
/clear         clear the messages
/quit          leave (also Ctrl-C, or Ctrl-D on an empty line)
←/→ Home/End   move; Ctrl-A/E start/end
Ctrl-W/U/K     delete word / to start / to end
↑/↓            history
Tab            complete a name
PgUp/PgDn      scroll; Ctrl-End back to the newest
F1 or /help    this help (Esc closes)";

fn render_help(area: Rect, buf: &mut Buffer) {
    let width =
        (HELP.lines().map(UnicodeWidthStr::width).max().unwrap_or(0) as u16 + 4).min(area.width);
    let height = (HELP.lines().count() as u16 + 2).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    Clear.render(popup, buf);
    Paragraph::new(HELP)
        .block(
            Block::bordered()
                .title(" help · Esc closes ")
                .border_style(Style::new().cyan()),
        )
        .render(popup, buf);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use chat_proto::UserName;
    use chrono::NaiveTime;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::layout::Size;

    use super::*;
    use crate::app::Settings;
    use crate::event::{Clock, Msg, NetEvent};

    fn clock(now: Instant) -> Clock {
        Clock {
            now,
            local: NaiveTime::from_hms_opt(9, 5, 0).expect("a valid time"),
        }
    }

    fn app(width: u16, height: u16, now: Instant) -> App {
        let settings = Settings {
            name: UserName::parse("alice").expect("a valid name"),
            addr: "127.0.0.1:8080".into(),
            max_line_bytes: 4096,
            scrollback: 1000,
        };
        App::new(settings, Size::new(width, height), now)
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

    fn type_line(app: &mut App, now: Instant, text: &str) {
        for c in text.chars() {
            app.update(
                Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
                clock(now),
            );
        }
    }

    fn screen(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
        terminal.draw(|frame| draw(frame, app)).expect("drawing");
        terminal
    }

    fn conversation(width: u16, height: u16) -> (App, Instant) {
        let now = Instant::now();
        let mut app = app(width, height, now);
        app.update(Msg::Net(NetEvent::Connected), clock(now));
        feed(
            &mut app,
            now,
            &[
                "users alice,bob,张三",
                "from bob: hi alice, this is a longer message that has to wrap onto a second row",
                "from 张三: 你好！",
                "joined carol",
                "from bob: \x1b]0;PWNED\x07\x1b[2J",
            ],
        );
        type_line(&mut app, now, "bob,张三: 好的 see you");
        app.update(
            Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            clock(now),
        );
        type_line(&mut app, now, "张三你好");
        (app, now)
    }

    #[test]
    fn whole_screen() {
        let (app, _) = conversation(80, 14);
        let terminal = screen(&app, 80, 14);
        insta::assert_snapshot!(terminal.backend());
        assert_eq!(
            terminal.backend().cursor_position(),
            Position::new(4 + 8, 13),
            "after [*] and 张三你好"
        );
    }

    #[test]
    fn narrow_screen_hides_the_roster_and_wraps_more() {
        let (app, _) = conversation(40, 12);
        insta::assert_snapshot!(screen(&app, 40, 12).backend());
    }

    #[test]
    fn disconnected_status_counts_down() {
        let now = Instant::now();
        let mut app = app(100, 8, now);
        app.update(Msg::Net(NetEvent::Connected), clock(now));
        app.update(
            Msg::Net(NetEvent::Disconnected("server shutting down".into())),
            clock(now),
        );
        app.update(Msg::Tick, clock(now + Duration::from_millis(10)));
        let terminal = screen(&app, 100, 8);
        let top: String = (0..100)
            .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_owned())
            .collect();
        assert!(
            top.starts_with(" disconnected: server shutting down · reconnecting in 1 s · alice @ 127.0.0.1:8080 "),
            "{top:?}"
        );
        assert!(top.trim_end().ends_with("F1 help"), "{top:?}");
    }

    #[test]
    fn too_small_a_terminal_says_so() {
        let now = Instant::now();
        let app = app(20, 4, now);
        insta::assert_snapshot!(screen(&app, 20, 4).backend());
    }

    #[test]
    fn help_overlay() {
        let (mut app, now) = conversation(80, 18);
        app.update(
            Msg::Key(KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE)),
            clock(now),
        );
        insta::assert_snapshot!(screen(&app, 80, 18).backend());
    }

    #[test]
    fn scrolled_up_shows_how_many_are_new() {
        let (mut app, now) = conversation(60, 10);
        for i in 0..20 {
            feed(&mut app, now, &[&format!("from bob: older {i}")]);
        }
        app.update(
            Msg::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)),
            clock(now),
        );
        feed(&mut app, now, &["from bob: newer 1", "from bob: newer 2"]);
        insta::assert_snapshot!(screen(&app, 60, 10).backend());
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
        let last: String = (0..40)
            .map(|x| terminal.backend().buffer()[(x, 7)].symbol().to_owned())
            .collect();
        assert!(last.starts_with("[*] 字"), "{last:?}");
    }

    fn text_of(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn wrap_breaks_at_spaces_and_indents_continuations() {
        let spans = [
            Span::raw("09:05 "),
            Span::raw("bob: "),
            Span::raw("one two three four five six"),
        ];
        assert_eq!(
            text_of(&wrap(&spans, 20)),
            ["09:05 bob: one two ", "      three four ", "      five six"]
        );
    }

    #[test]
    fn wrap_splits_long_words_and_counts_wide_characters() {
        let spans = [Span::raw("09:05 "), Span::raw("好".repeat(12))];
        let rows = text_of(&wrap(&spans, 20));
        assert_eq!(
            rows,
            [
                format!("09:05 {}", "好".repeat(7)),
                format!("      {}", "好".repeat(5))
            ]
        );
        assert!(rows.iter().all(|r| r.width() <= 20));
    }

    #[test]
    fn wrap_keeps_styles() {
        let spans = [Span::styled("ab", Style::new().red()), Span::raw("cd")];
        let lines = wrap(&spans, 10);
        assert_eq!(
            lines[0].spans,
            [Span::styled("ab", Style::new().red()), Span::raw("cd")]
        );
    }

    #[test]
    fn name_colours_are_stable() {
        assert_eq!(name_color("alice"), name_color("alice"));
        let distinct: std::collections::HashSet<_> =
            ["alice", "bob", "carol", "dave", "eve", "张三"]
                .iter()
                .map(|n| format!("{:?}", name_color(n)))
                .collect();
        assert!(distinct.len() > 3);
    }

    #[test]
    fn a_password_being_typed_is_masked_width_for_width() {
        assert_eq!(masked("/register héllo 世界", 0), "/register **********");
        assert_eq!(masked("/password abc", 3), "ssword ***");
        assert_eq!(masked("/who", 0), "/who");
        assert_eq!(masked("bob: /register x", 0), "bob: /register x");
    }
}
