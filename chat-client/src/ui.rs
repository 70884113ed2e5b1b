//! The view: draws an [`App`] and nothing else. It reads state, never changes it, and
//! costs what is visible: the message pane wraps only the entries on screen, however long
//! the scrollback (`layout` and the buffers' stored heights make that possible).

use std::num::NonZeroU16;

use chat_proto::Role;
use ratatui::Frame;
use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::app::App;
use crate::buffers::BufferId;
use crate::commands;
use crate::conn::ConnState;
use crate::layout::{self, Link, MIN_HEIGHT, MIN_WIDTH, Widths, name_style};
use crate::sanitize::{SafeText, is_skin_tone_emoji};

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
        let Some(panes) = layout::panes(area) else {
            Paragraph::new(format!(
                "Terminal too small ({}×{}); chat needs at least {MIN_WIDTH}×{MIN_HEIGHT}.",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true })
            .render(area, buf);
            return;
        };
        render_status(self, panes.status, buf);
        render_bar(self, panes.bar, buf);
        render_title(self, panes.title, buf);
        // The user list first: a row of a long URL takes the screen's width over it.
        if let Some(nicks) = panes.nicks {
            render_nicks(self, nicks, buf);
        }
        render_messages(self, panes.messages, buf);
        render_input(self, panes.input, buf);
        if let Some(scroll) = self.help() {
            render_help(area, scroll, buf);
        }
        cover_skin_tones(buf);
    }
}

/// The two cells after an emoji with a skin tone are drawn again in every frame, right
/// after it. A terminal that draws the tone as a character of its own puts it there, over
/// cells ratatui takes for unchanged; drawn again, they cover it rather than leave a stray
/// swatch (behind the cursor, or after the emoji is deleted).
fn cover_skin_tones(buf: &mut Buffer) {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if !is_skin_tone_emoji(buf[(x, y)].symbol()) {
                continue;
            }
            for next in [x.saturating_add(2), x.saturating_add(3)] {
                // A cell of a link keeps its forced width: it is drawn whole anyway.
                if let Some(cell) = buf
                    .cell_mut((next, y))
                    .filter(|cell| cell.diff_option == CellDiffOption::None)
                {
                    cell.set_diff_option(CellDiffOption::AlwaysUpdate);
                }
            }
        }
    }
}

/// The status bar: the connection state first, then as much of the rest as fits, always
/// in whole pieces so nothing is cut mid-word and no separator dangles.
fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let (state, color) = match app.state() {
        ConnState::Connecting { attempt: 1 } => ("connecting…".to_owned(), Color::Yellow),
        ConnState::Connecting { attempt } => {
            (format!("connecting (attempt {attempt})…"), Color::Yellow)
        }
        ConnState::Connected if app.tls() => ("● connected (TLS)".to_owned(), Color::Green),
        ConnState::Connected => ("● connected".to_owned(), Color::Green),
        ConnState::Disconnected { reason, retry_at } => {
            let secs = retry_at
                .saturating_duration_since(app.now())
                .as_secs_f64()
                .ceil();
            (
                format!(
                    "disconnected: {} · reconnecting in {secs} s",
                    SafeText::new(reason)
                ),
                Color::Red,
            )
        }
        ConnState::Stopped { reason } => (
            format!("disconnected: {} · /reconnect", SafeText::new(reason)),
            Color::Red,
        ),
    };
    let connected = matches!(app.state(), ConnState::Connected);
    let who = format!("{} @ {}", app.name(), app.addr());
    let port = app
        .addr()
        .rsplit_once(':')
        .map(|(_, port)| format!(":{port}"));
    let online = connected.then(|| format!("{} online", app.roster().len()));
    // Our account's own sessions, this one included: worth a word only with company.
    let sessions =
        (connected && app.sessions() > 1).then(|| format!("{} sessions", app.sessions()));
    let away = app.away().map(|_| "away".to_owned());
    let pending = (app.outbox_len() > 0).then(|| format!("{} pending", app.outbox_len()));
    let news: Vec<&str> = [&online, &sessions, &away, &pending]
        .into_iter()
        .filter_map(|part| part.as_deref())
        .collect();
    let help = "F1 help";
    let mut full = vec![who.as_str()];
    full.extend(&news);
    let mut short = vec![app.name().as_str(), port.as_deref().unwrap_or("")];
    short.extend(&news);
    // From the fullest to the barest; the first that fits is drawn.
    let candidates: Vec<(Vec<&str>, bool)> = vec![
        (full.clone(), true),
        (full, false),
        (short, false),
        (news, false),
        (vec![pending.as_deref().unwrap_or("")], false),
        (vec![], false),
    ];
    let width = usize::from(area.width);
    let state_width = state.width() + 1;
    let bar = Style::new().bg(Color::DarkGray).fg(Color::White);
    buf.set_style(area, bar);
    for (parts, with_help) in candidates {
        let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let rest: String = parts.iter().map(|p| format!(" · {p}")).collect();
        let help_width = if with_help { help.len() + 2 } else { 0 };
        if state_width + rest.width() + help_width <= width || parts.is_empty() {
            let mut spans = vec![
                Span::raw(" "),
                Span::styled(state.clone(), Style::new().fg(color).bold()),
            ];
            spans.push(Span::raw(rest));
            Line::from(spans).render(area, buf);
            if with_help {
                let [_, right] =
                    Layout::horizontal([Constraint::Min(0), Constraint::Length(help_width as u16)])
                        .areas(area);
                Span::raw(format!(" {help} ")).render(right, buf);
            }
            return;
        }
    }
}

/// The buffer bar: `1:server 2:* 3:#rust 5 4:bob 2!`, the shown one highlighted, unread
/// counts after the names, mentions marked; scrolled so the shown one is always visible.
fn render_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let buffers = app.buffers();
    let current = buffers.current_index();
    let items: Vec<Vec<Span<'static>>> = buffers
        .all()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let base = if i == current {
                Style::new().bg(Color::Blue).fg(Color::White).bold()
            } else if b.mentioned {
                Style::new().fg(Color::Magenta).bold()
            } else if b.unread > 0 {
                Style::new().fg(Color::White).bold()
            } else {
                Style::new().dark_gray()
            };
            let mut label = format!("{}:{}", i + 1, b.id.label());
            if let BufferId::Room(_) = b.id {
                if !b.member {
                    label = format!("{}:({})", i + 1, b.id.label());
                }
            }
            let mut spans = vec![Span::styled(format!(" {label}"), base)];
            if b.unread > 0 {
                let mark = if b.mentioned { "!" } else { "" };
                spans.push(Span::styled(
                    format!(" {}{mark}", b.unread),
                    base.fg(if b.mentioned {
                        Color::Magenta
                    } else {
                        Color::Yellow
                    }),
                ));
            } else if b.mentioned {
                spans.push(Span::styled(" !", base.fg(Color::Magenta)));
            }
            spans.push(Span::styled(" ", base));
            spans
        })
        .collect();
    let widths: Vec<usize> = items
        .iter()
        .map(|spans| spans.iter().map(Span::width).sum())
        .collect();
    let width = usize::from(area.width);
    // Drop buffers from the left until the shown one fits.
    let mut first = 0;
    while first < current && widths[first..=current].iter().sum::<usize>() + 1 > width {
        first += 1;
    }
    let more = Span::styled("…", Style::new().dark_gray());
    let mut spans = Vec::new();
    let mut used = 0;
    if first > 0 {
        spans.push(more.clone());
        used += 1;
    }
    for (i, item) in items.iter().enumerate().skip(first) {
        let all_fit = used + widths[i..].iter().sum::<usize>() <= width;
        // The shown buffer always goes in; after it, one that does not fit with room for
        // the `…` that says more follow is not drawn cut.
        if i > current && !all_fit && used + widths[i] + 1 > width {
            spans.push(more);
            break;
        }
        spans.extend(item.iter().cloned());
        used += widths[i];
    }
    Line::from(spans).render(area, buf);
}

/// The title row over the messages, as WeeChat has one: a room's name, modes and topic
/// (peer text, so made safe), or what the other buffers hold.
fn render_title(app: &App, area: Rect, buf: &mut Buffer) {
    let buffer = app.buffers().current();
    let style = Style::new().bg(Color::Indexed(236)).fg(Color::White);
    let dim = style.fg(Color::Gray);
    buf.set_style(area, style);
    let mut spans = vec![Span::styled(
        format!(" {}", buffer.id.label()),
        style.bold(),
    )];
    if let Some(modes) = buffer.room.modes() {
        spans.push(Span::styled(format!(" {modes}"), dim));
    }
    spans.push(Span::styled(" · ", dim));
    spans.push(match &buffer.id {
        BufferId::Room(_) => match buffer.room.topic() {
            Some(topic) => Span::styled(topic.to_string(), style),
            None => Span::styled("no topic", dim.italic()),
        },
        BufferId::Server => Span::styled("notices, errors and replies", dim),
        BufferId::Everyone => Span::styled("messages to everyone online", dim),
        BufferId::Query(name) => Span::styled(format!("direct messages with {name}"), dim),
    });
    Line::from(spans).render(area, buf);
}

fn render_messages(app: &App, area: Rect, buf: &mut Buffer) {
    let buffer = app.buffers().current();
    let screen = buf.area.right().saturating_sub(area.x);
    let widths = Widths {
        pane: usize::from(area.width),
        screen: usize::from(screen.max(area.width)),
    };
    let scrolled = buffer.scroll > 0;
    let height = usize::from(area.height) - usize::from(scrolled && area.height > 1);
    let highlight = app.search().map(|s| s.query.as_str());
    let rows = buffer.visible_rows(app.look(), widths, buffer.scroll, height, highlight);
    // Bottom-aligned: the newest row sits just above the indicator (or the pane's edge).
    let top = area.y + (height - rows.len().min(height)) as u16;
    for (i, row) in rows.iter().enumerate() {
        let y = top + i as u16;
        let mut rect = Rect::new(area.x, y, area.width, 1);
        if row.line.width() > rect.width as usize {
            // A piece of a URL wider than the pane: the whole row is its own.
            rect.width = screen;
            Clear.render(rect, buf);
        }
        (&row.line).render(rect, buf);
        if app.hyperlinks() {
            for link in &row.links {
                hyperlink(buf, rect, link);
            }
        }
    }
    if scrolled {
        let text = match buffer.unseen {
            0 => format!(" ↑ scrolled {} rows · PgDn or End returns ", buffer.scroll),
            n => format!(" ↓ {n} new · PgDn or End returns "),
        };
        let row = Rect::new(area.x, area.bottom() - 1, area.width, 1);
        buf.set_style(row, Style::new().bg(Color::Yellow).fg(Color::Black));
        Span::styled(text, Style::new().bg(Color::Yellow).fg(Color::Black).bold()).render(row, buf);
    }
}

/// Makes the cells of `link` on the row `area` open its URL in terminals that know OSC 8
/// hyperlinks (others ignore the sequence, as the spec asks). Each cell carries a whole
/// link around its own grapheme, opened and closed, so however little of the screen
/// ratatui redraws, the terminal is never left inside a link; the `id` makes a terminal
/// treat the pieces on several rows as one link. `ForcedWidth` keeps the cell as wide as
/// its grapheme, where ratatui would count the escape's characters.
fn hyperlink(buf: &mut Buffer, area: Rect, link: &Link) {
    let target = osc8_target(&link.url);
    let id = link_id(&link.url);
    let mut column = link.start;
    while column < link.end {
        let Ok(x) = u16::try_from(column) else { break };
        let Some(cell) = buf.cell_mut((area.x.saturating_add(x), area.y)) else {
            break;
        };
        let grapheme = cell.symbol().to_owned();
        let width = grapheme.width().max(1);
        cell.set_symbol(&format!(
            "\x1b]8;id={id};{target}\x1b\\{grapheme}\x1b]8;;\x1b\\"
        ))
        .set_diff_option(CellDiffOption::ForcedWidth(
            NonZeroU16::new(u16::try_from(width).unwrap_or(1)).unwrap_or(NonZeroU16::MIN),
        ));
        column += width;
    }
}

/// The URL as an OSC 8 target: the spec allows only bytes 32 to 126 there, so anything
/// else (an IRI's letters, say) is percent-encoded, as a browser would send it.
fn osc8_target(url: &str) -> String {
    let mut target = String::with_capacity(url.len());
    for byte in url.bytes() {
        if (0x21..=0x7e).contains(&byte) {
            target.push(char::from(byte));
        } else {
            target.push_str(&format!("%{byte:02X}"));
        }
    }
    target
}

/// A stable `id` per URL, so its pieces on several rows are one link.
fn link_id(url: &str) -> String {
    format!("{:016x}", layout::fnv1a(url.as_bytes()))
}

/// The user list: the room's members in a room (`@` ops first, then `+` voiced members,
/// then the rest), everyone online elsewhere. What does not fit is counted (`+14 more`)
/// and reached with Alt-↑/Alt-↓.
fn render_nicks(app: &App, area: Rect, buf: &mut Buffer) {
    let buffer = app.buffers().current();
    let (title, names, prefixed) = match &buffer.id {
        BufferId::Room(room) => (
            format!(" {room} ({}) ", buffer.room.members().len()),
            buffer.room.nick_list(),
            buffer.room.has_roles(),
        ),
        _ => (
            format!(" online ({}) ", app.roster().len()),
            app.roster().iter().map(|name| (None, name)).collect(),
            false,
        ),
    };
    let block = Block::new()
        .borders(Borders::LEFT)
        .border_style(Style::new().dark_gray())
        .title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let rows = usize::from(inner.height);
    if rows == 0 {
        return;
    }
    let overflow = names.len() > rows;
    let skip = if overflow {
        app.nick_scroll().min(names.len() - (rows - 1))
    } else {
        0
    };
    let above = skip;
    let mut lines: Vec<Line> = Vec::new();
    let mut room = rows;
    if above > 0 {
        lines.push(Line::styled(
            format!(" ↑ {above} more"),
            Style::new().dark_gray(),
        ));
        room -= 1;
    }
    let below_fits = names.len() - skip <= room;
    let shown = if below_fits {
        room
    } else {
        room.saturating_sub(1)
    };
    for (role, name) in names.iter().skip(skip).take(shown) {
        let mut line = Line::from(" ");
        if prefixed {
            line.push_span(role_prefix(*role));
        }
        line.push_span(Span::styled(name.to_string(), name_style(name, app.name())));
        if name.folded() == app.name().folded() {
            line.push_span(Span::styled(" (you)", Style::new().dark_gray()));
        }
        lines.push(line);
    }
    if !below_fits {
        let more = names.len() - skip - shown;
        lines.push(Line::styled(
            format!(" +{more} more"),
            Style::new().dark_gray(),
        ));
    }
    Paragraph::new(lines).render(inner, buf);
}

/// `@` or `+` before a name in the user list; a space keeps the names in one column.
fn role_prefix(role: Option<Role>) -> Span<'static> {
    match role {
        Some(role @ Role::Op) => {
            Span::styled(role.prefix().to_string(), Style::new().green().bold())
        }
        Some(role @ Role::Voiced) => {
            Span::styled(role.prefix().to_string(), Style::new().yellow().bold())
        }
        None => Span::raw(" "),
    }
}

/// The prompt, the visible part of the input (masked and made safe), and the cursor's
/// column within `width`.
fn input_view(app: &App, width: usize) -> (String, String, usize) {
    let prompt = format!("[{}] ", app.buffers().current().id.label());
    let prompt_width = prompt.width();
    let room = width.saturating_sub(prompt_width + 1).max(1);
    let input = app.input();
    let text = input.as_str();
    let cursor_width = input.cursor_width();
    // Scroll the line sideways so the cursor is always visible.
    let mut start = 0;
    let mut skipped = 0;
    for (i, grapheme) in text.grapheme_indices(true) {
        if cursor_width - skipped <= room || i >= input.cursor() {
            break;
        }
        skipped += SafeText::new(grapheme).width();
        start = i + grapheme.len();
    }
    (
        prompt,
        masked(text, start),
        prompt_width + cursor_width - skipped,
    )
}

fn render_input(app: &App, area: Rect, buf: &mut Buffer) {
    let mut block = Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().dark_gray());
    if let Some((hint, loud)) = app.hint() {
        let style = if loud {
            Style::new().fg(Color::Black).bg(Color::Yellow).bold()
        } else {
            Style::new().fg(Color::Cyan)
        };
        block = block.title(Span::styled(format!(" {hint} "), style));
    } else if let Some(search) = app.search() {
        block = block.title(Span::styled(
            format!(
                " search: {} · F3 older · F4 newer · Esc ends ",
                SafeText::new(&search.query)
            ),
            Style::new().fg(Color::Cyan),
        ));
    }
    let inner = block.inner(area);
    block.render(area, buf);
    let (prompt, visible, _) = input_view(app, usize::from(inner.width));
    Line::from(vec![
        Span::styled(prompt, Style::new().bold()),
        Span::raw(visible),
    ])
    .render(inner, buf);
}

/// The input from byte `start` on, made safe to draw, with a password after `/register `
/// or `/password ` shown as `*`s of the same width, so nobody reads it over a shoulder.
pub fn masked(text: &str, start: usize) -> String {
    let secret_from = commands::secret_start(text).unwrap_or(usize::MAX);
    text.grapheme_indices(true)
        .filter(|(i, _)| *i >= start)
        .map(|(i, grapheme)| {
            let safe = SafeText::new(grapheme);
            if i >= secret_from {
                "*".repeat(safe.width())
            } else {
                safe.to_string()
            }
        })
        .collect()
}

fn cursor_position(app: &App, area: Rect) -> Option<Position> {
    if app.help().is_some() {
        return None;
    }
    let panes = layout::panes(area)?;
    let inner = Block::new().borders(Borders::TOP).inner(panes.input);
    let (_, _, column) = input_view(app, usize::from(inner.width));
    Some(Position::new(inner.x + column as u16, inner.y))
}

/// A wide character (CJK, emoji) in the column just left of `area` would be drawn over
/// `area`'s first column, its border, by the terminal, and ratatui, which skips the cell a
/// wide character covers, would never draw the border there: it becomes a space.
fn blank_wide_cells_left_of(area: Rect, buf: &mut Buffer) {
    let Some(x) = area.x.checked_sub(1) else {
        return;
    };
    for y in area.top()..area.bottom() {
        if let Some(cell) = buf.cell_mut((x, y))
            && !cell.symbol().starts_with('\x1b')
            && cell.symbol().width() > 1
        {
            cell.set_symbol(" ");
        }
    }
}

/// The help overlay, as large as the screen allows, scrolled to `scroll`.
fn render_help(area: Rect, scroll: usize, buf: &mut Buffer) {
    let popup = layout::help_popup(area);
    let rows = layout::help_rows(usize::from(popup.width.saturating_sub(2)));
    let visible = usize::from(popup.height.saturating_sub(2));
    let scroll = scroll.min(rows.len().saturating_sub(visible));
    let title = if visible < rows.len() {
        format!(
            " help {}-{} of {} · ↑↓ PgUp PgDn · Esc ",
            scroll + 1,
            (scroll + visible).min(rows.len()),
            rows.len()
        )
    } else {
        " help · Esc closes ".to_owned()
    };
    Clear.render(popup, buf);
    blank_wide_cells_left_of(popup, buf);
    let text: Vec<Line> = rows.into_iter().skip(scroll).take(visible).collect();
    Paragraph::new(text)
        .block(
            Block::bordered()
                .title(title)
                .border_style(Style::new().cyan()),
        )
        .render(popup, buf);
}

#[cfg(test)]
mod tests;
