//! Text layout, pure and shared: where each pane goes, how an entry looks as styled spans,
//! and how it wraps into rows. The app measures heights (for scrolling) and the view draws
//! rows with the same functions, so the two never disagree by a row.

use chat_proto::UserName;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::entry::{Entry, EntryKind};

/// Smallest terminal the layout fits in.
pub const MIN_WIDTH: u16 = 30;
/// Smallest terminal the layout fits in.
pub const MIN_HEIGHT: u16 = 7;
/// Width of the user list, shown when the terminal is wide enough.
const NICKS_WIDTH: u16 = 20;
const NICKS_MIN_TERMINAL_WIDTH: u16 = 60;
/// The unread marker, drawn where you last left a buffer.
pub const NEW_MARKER: &str = "── new ──";
/// The date on a day-change line (chrono): `── Monday 7 December 2026 ──`.
const DAY_CHANGE_FORMAT: &str = "%A %-d %B %Y";

/// The widths rows are laid out in: the message pane's, and the screen's, which a row
/// holding only a piece of a URL wider than the pane takes. The user list makes way on
/// such a row, so that selecting the URL across rows picks up nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// The message pane's width.
    pub pane: usize,
    /// The screen's width, at least the pane's.
    pub screen: usize,
}

impl Widths {
    /// The same width for both: nothing beside the pane.
    pub fn same(width: usize) -> Self {
        Self {
            pane: width,
            screen: width,
        }
    }
}

/// One row as drawn: its text, and the URLs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The text.
    pub line: Line<'static>,
    /// Where URLs (or pieces of them) run on the row.
    pub links: Vec<Link>,
}

impl From<Line<'static>> for Row {
    fn from(line: Line<'static>) -> Self {
        Self {
            line,
            links: Vec::new(),
        }
    }
}

/// A URL, or the piece of it on one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its first column on the row.
    pub start: usize,
    /// The column after its last.
    pub end: usize,
    /// The whole URL, though the row may hold only a piece of it.
    pub url: String,
}

/// How entries are drawn: whose messages are ours, and the timestamp format.
#[derive(Debug, Clone)]
pub struct Look {
    /// Our name, drawn in its own style.
    pub me: UserName,
    /// A chrono format for timestamps, already checked (see `config`).
    pub time_format: String,
}

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// The status bar, top row.
    pub status: Rect,
    /// The buffer bar, second row.
    pub bar: Rect,
    /// The buffer's title (a room's topic), one row over the message pane.
    pub title: Rect,
    /// The message pane.
    pub messages: Rect,
    /// The user list, when there is room.
    pub nicks: Option<Rect>,
    /// The input line, with a rule above it.
    pub input: Rect,
}

/// Lays out a screen of `area`; `None` if it is too small for the layout.
pub fn panes(area: Rect) -> Option<Panes> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let [status, bar, body, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(area);
    let (main, nicks) = if area.width >= NICKS_MIN_TERMINAL_WIDTH {
        let [main, nicks] =
            Layout::horizontal([Constraint::Min(1), Constraint::Length(NICKS_WIDTH)]).areas(body);
        (main, Some(nicks))
    } else {
        (body, None)
    };
    let [title, messages] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(main);
    Some(Panes {
        status,
        bar,
        title,
        messages,
        nicks,
        input,
    })
}

/// Where the help overlay goes on a screen of `size`: as wide as its longest line allows.
pub fn help_popup(area: Rect) -> Rect {
    let widest = crate::keys::help_lines()
        .iter()
        .map(|l| l.width())
        .max()
        .unwrap_or(0);
    let width = (widest as u16 + 2).min(area.width);
    let rows = help_rows(usize::from(width.saturating_sub(2))).len();
    let height = (rows as u16 + 2).min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

/// The help wrapped to `width`, continuation rows indented.
pub fn help_rows(width: usize) -> Vec<Line<'static>> {
    crate::keys::help_lines()
        .into_iter()
        .flat_map(|line| {
            let style = if line.starts_with(' ') || line.is_empty() {
                Style::new()
            } else {
                Style::new().add_modifier(Modifier::BOLD)
            };
            wrap(&[Span::styled(line, style)], Widths::same(width), 4)
                .into_iter()
                .map(|row| row.line)
        })
        .collect()
}

/// How far the help can scroll on a screen of `size`.
pub fn help_max_scroll(size: ratatui::layout::Size) -> usize {
    let popup = help_popup(Rect::from((ratatui::layout::Position::ORIGIN, size)));
    let rows = help_rows(usize::from(popup.width.saturating_sub(2))).len();
    rows.saturating_sub(usize::from(popup.height.saturating_sub(2)))
}

/// The styled pieces of one entry, before wrapping; `highlight` marks search matches.
pub fn spans(entry: &Entry, look: &Look, highlight: Option<&str>) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(
        format!("{} ", entry.time.format(&look.time_format)),
        Style::new().dark_gray(),
    )];
    let mut text = |spans: &mut Vec<Span<'static>>, text: &str, style: Style| {
        push_highlighted(spans, text, style, highlight);
    };
    match &entry.kind {
        EntryKind::Message {
            from,
            text: body,
            mention,
            ..
        } => {
            let style = if *mention {
                Style::new().fg(Color::Yellow).bold()
            } else {
                Style::new()
            };
            said(
                &mut spans,
                from,
                body.as_str(),
                name_style(from, &look.me),
                style,
                &mut text,
            );
        }
        EntryKind::Own {
            text: body,
            pending,
            ..
        } => {
            let style = if *pending {
                Style::new().dark_gray()
            } else {
                Style::new()
            };
            said(
                &mut spans,
                &look.me,
                body.as_str(),
                name_style(&look.me, &look.me),
                style,
                &mut text,
            );
            if *pending {
                spans.push(Span::styled(
                    " (pending)",
                    Style::new().dark_gray().italic(),
                ));
            }
        }
        EntryKind::Notice { text: body, error } => {
            let style = if *error {
                Style::new().red().italic()
            } else {
                Style::new().dark_gray().italic()
            };
            spans.push(Span::styled("— ", style));
            text(&mut spans, body.as_str(), style);
        }
        EntryKind::Presence {
            joined,
            names,
            room,
        } => {
            let style = Style::new().dark_gray();
            let verb = if *joined { "joined" } else { "left" };
            let room = room.as_ref().map_or(String::new(), |r| format!(" {r}"));
            spans.push(Span::styled(
                format!("{} {verb}{room}", list_names(names)),
                style,
            ));
        }
        EntryKind::Marker(label) => {
            spans.push(Span::styled(format!("── {label} ──"), Style::new().cyan()));
        }
    }
    spans
}

/// `name: text`, or `* name text` for an action (`/me text`).
fn said(
    spans: &mut Vec<Span<'static>>,
    name: &UserName,
    body: &str,
    name_style: Style,
    style: Style,
    text: &mut impl FnMut(&mut Vec<Span<'static>>, &str, Style),
) {
    match body.strip_prefix("/me ") {
        Some(action) => {
            spans.push(Span::styled("* ", style));
            spans.push(Span::styled(name.to_string(), name_style));
            spans.push(Span::styled(" ", style));
            text(spans, action, style.italic());
        }
        None => {
            spans.push(Span::styled(name.to_string(), name_style));
            spans.push(Span::raw(": "));
            text(spans, body, style);
        }
    }
}

/// `text` in `style`, with case-insensitive matches of `highlight` reversed.
fn push_highlighted(
    spans: &mut Vec<Span<'static>>,
    text: &str,
    style: Style,
    highlight: Option<&str>,
) {
    let Some(needle) = highlight.filter(|h| !h.is_empty()) else {
        spans.push(Span::styled(text.to_owned(), style));
        return;
    };
    let mut rest = text;
    while let Some((start, end)) = find_ignoring_case(rest, needle) {
        if start > 0 {
            spans.push(Span::styled(rest[..start].to_owned(), style));
        }
        spans.push(Span::styled(
            rest[start..end].to_owned(),
            style.add_modifier(Modifier::REVERSED),
        ));
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        spans.push(Span::styled(rest.to_owned(), style));
    }
}

/// The byte range of the first case-insensitive match of `needle` in `haystack`.
pub fn find_ignoring_case(haystack: &str, needle: &str) -> Option<(usize, usize)> {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    haystack.char_indices().find_map(|(start, _)| {
        let mut lowered = haystack[start..]
            .char_indices()
            .flat_map(|(i, c)| c.to_lowercase().map(move |l| (i + c.len_utf8(), l)));
        let mut end = start;
        for want in &needle {
            let (after, got) = lowered.next()?;
            if got != *want {
                return None;
            }
            end = start + after;
        }
        Some((start, end))
    })
}

/// `alice`, `alice and bob`, `alice, bob and carol`, `alice, bob and 33 others`.
fn list_names(names: &[UserName]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} others", rest.len()),
    }
}

/// The rows `entry` takes at `widths`.
pub fn rows(entry: &Entry, look: &Look, widths: Widths, highlight: Option<&str>) -> Vec<Row> {
    let indent = entry.time.format(&look.time_format).to_string().width() + 1;
    let mut rows = if entry.day_change {
        let date = entry.time.format(DAY_CHANGE_FORMAT);
        let line = Span::styled(format!("── {date} ──"), Style::new().cyan().bold());
        wrap(&[line], widths, 0)
    } else {
        Vec::new()
    };
    rows.extend(wrap(&spans(entry, look, highlight), widths, indent));
    rows
}

/// How many rows `entry` takes at `widths`.
pub fn height(entry: &Entry, look: &Look, widths: Widths) -> usize {
    rows(entry, look, widths, None).len()
}

/// The unread marker row.
pub fn marker_row(width: usize) -> Row {
    let fill = width.saturating_sub(NEW_MARKER.width());
    Row::from(Line::styled(
        format!("{NEW_MARKER}{}", "─".repeat(fill)),
        Style::new().red(),
    ))
}

/// Punctuation that must not open a row (the usual Japanese and Chinese line-breaking
/// rule, kinsoku): closing marks and stops.
const NO_ROW_START: &[&str] = &[
    "。", "，", "、", "．", "：", "；", "！", "？", "）", "」", "』", "】", "〉", "》", "…", "!",
    "?", ".", ",", ")",
];

/// Word-wraps styled text to `widths.pane` cells; rows after the first are indented by
/// `indent` (past the timestamp) when the width allows. A word longer than a row is split
/// where it must be. A URL is never split by an indent: one that does not fit after what
/// is on its row starts a row of its own, and one wider than the pane goes on whole rows
/// of the screen's width, unindented, so that the rows it spans hold nothing else.
pub fn wrap(spans: &[Span<'_>], widths: Widths, indent: usize) -> Vec<Row> {
    let width = widths.pane.max(1);
    let screen = widths.screen.max(width);
    let indent = if width > indent * 3 { indent } else { 0 };
    let cells: Vec<(&str, Style)> = spans
        .iter()
        .flat_map(|span| span.content.graphemes(true).map(|g| (g, span.style)))
        .collect();
    let urls = find_urls(&cells);
    // Each row's cells, with the URL (an index into `urls`) each is part of.
    let mut rows: Vec<Vec<Cell<'_>>> = vec![Vec::new()];
    let mut row_width = 0;
    // How much of the row is its indent: nothing is on it yet while `row_width` is this.
    let mut row_indent = 0;
    // The end of the URL being laid on rows of the screen's width, if one is.
    let mut wide_until: Option<usize> = None;
    for (i, &(grapheme, style)) in cells.iter().enumerate() {
        let url = urls.iter().position(|range| range.contains(&i));
        if wide_until == Some(i) {
            wide_until = None;
            rows.push(vec![(" ", Style::new(), None); indent]);
            (row_width, row_indent) = (indent, indent);
        }
        if let Some(range) = url.map(|u| &urls[u]).filter(|range| range.start == i) {
            let url_width: usize = cells[range.clone()].iter().map(|(g, _)| g.width()).sum();
            if row_width + url_width > width && row_width > row_indent {
                let own_indent = if indent + url_width <= width {
                    indent
                } else {
                    0
                };
                rows.push(vec![(" ", Style::new(), None); own_indent]);
                (row_width, row_indent) = (own_indent, own_indent);
            } else if url_width > width && row_width > 0 {
                // A bare indent before a URL that needs whole rows goes.
                rows.last_mut().expect("rows is never empty").clear();
                (row_width, row_indent) = (0, 0);
            }
            if url_width > width {
                wide_until = Some(range.end);
            }
        }
        let w = grapheme.width();
        if wide_until.is_some() {
            if row_width + w > screen && row_width > 0 {
                rows.push(Vec::new());
                (row_width, row_indent) = (0, 0);
            }
        } else if row_width + w > width && row_width > indent {
            let row = rows.last_mut().expect("rows is never empty");
            // Break after the last space, if the row has one past the indent, unless
            // what follows it is CJK, which breaks between any two characters: then
            // the row is filled (no `bob:` left alone on its row). A closing mark
            // (`。`, `，`) never opens a row: the character before it comes along,
            // unless that is the end of a URL.
            let space = row.iter().rposition(|(g, _, _)| *g == " ");
            let carry = match space {
                Some(space)
                    if space + 1 > indent
                        && space + 1 < row.len()
                        && !row[space + 1..].iter().any(|(g, _, _)| g.width() > 1) =>
                {
                    row.split_off(space + 1)
                }
                _ if NO_ROW_START.contains(&grapheme)
                    && row.len() > indent + 1
                    && row.last().is_some_and(|(_, _, url)| url.is_none()) =>
                {
                    row.split_off(row.len() - 1)
                }
                _ => Vec::new(),
            };
            let mut next: Vec<Cell<'_>> = vec![(" ", Style::new(), None); indent];
            row_indent = indent;
            row_width = indent + carry.iter().map(|(g, _, _)| g.width()).sum::<usize>();
            next.extend(carry);
            rows.push(next);
        }
        if grapheme == " " && row_width == indent && rows.len() > 1 {
            // A space that would start a wrapped row is the break itself.
            continue;
        }
        rows.last_mut()
            .expect("rows is never empty")
            .push((grapheme, style, url));
        row_width += w;
    }
    let texts: Vec<String> = urls
        .iter()
        .map(|range| cells[range.clone()].iter().map(|(g, _)| *g).collect())
        .collect();
    rows.into_iter().map(|row| to_row(row, &texts)).collect()
}

/// A grapheme on a row, its style, and the URL it is part of (an index).
type Cell<'a> = (&'a str, Style, Option<usize>);

/// The schemes a URL starts with, as terminals recognise them.
const URL_SCHEMES: [&str; 2] = ["https://", "http://"];

/// The URLs in `cells`, as ranges of cells: `http://` or `https://` at the start of a
/// word, up to the next space, less the punctuation that ends a sentence around it
/// (`see https://x.org/a.`) or a `)` it does not open.
fn find_urls(cells: &[(&str, Style)]) -> Vec<std::ops::Range<usize>> {
    let mut urls = Vec::new();
    let mut i = 0;
    while i < cells.len() {
        let word_start = i == 0 || matches!(cells[i - 1].0, " " | "(" | "<" | "[" | "\"" | "'");
        // Every row of every entry drawn passes here: look further only at a word's `h`.
        let scheme = (word_start && cells[i].0.eq_ignore_ascii_case("h"))
            .then(|| {
                let head: String = cells[i..].iter().take(8).map(|(g, _)| *g).collect();
                URL_SCHEMES.iter().find(|scheme| {
                    head.get(..scheme.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(scheme))
                })
            })
            .flatten();
        let Some(scheme) = scheme else {
            i += 1;
            continue;
        };
        let mut end = cells[i..]
            .iter()
            .position(|(g, _)| g.chars().all(char::is_whitespace))
            .map_or(cells.len(), |n| i + n);
        loop {
            let opened = cells[i..end].iter().filter(|(g, _)| *g == "(").count();
            let closed = cells[i..end].iter().filter(|(g, _)| *g == ")").count();
            match cells[end - 1].0 {
                ")" if closed > opened => end -= 1,
                ")" => break,
                g if NO_ROW_START.contains(&g)
                    || matches!(g, ";" | ":" | "'" | "\"" | ">" | "]") =>
                {
                    end -= 1
                }
                _ => break,
            }
        }
        if end > i + scheme.len() {
            urls.push(i..end);
        }
        i = end.max(i + 1);
    }
    urls
}

fn to_row(row: Vec<Cell<'_>>, urls: &[String]) -> Row {
    let mut links: Vec<(usize, Link)> = Vec::new();
    let mut column = 0;
    for &(grapheme, _, url) in &row {
        let w = grapheme.width();
        if let Some(url) = url {
            match links.last_mut() {
                Some((last, link)) if *last == url && link.end == column => link.end += w,
                _ => links.push((
                    url,
                    Link {
                        start: column,
                        end: column + w,
                        url: urls[url].clone(),
                    },
                )),
            }
        }
        column += w;
    }
    Row {
        line: to_line(row.into_iter().map(|(g, style, _)| (g, style)).collect()),
        links: links.into_iter().map(|(_, link)| link).collect(),
    }
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

/// A stable colour per name from the 256-colour cube: about 170 readable colours, so
/// twenty people rarely share one. Greys, the darkest and the palest are left out; our own
/// name is bright white, which no one else gets.
pub fn name_color(name: &str) -> Color {
    // Over the folded name: the same for `Bob` and `bob`, who are the same person.
    let hash = fnv1a(chat_proto::name::fold(name).as_bytes());
    let palette = palette();
    palette[(hash % palette.len() as u64) as usize]
}

/// FNV-1a: a hash that is stable across runs and machines, unlike std's.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn palette() -> &'static [Color] {
    use std::sync::OnceLock;
    static PALETTE: OnceLock<Vec<Color>> = OnceLock::new();
    PALETTE.get_or_init(|| {
        (0u8..216)
            .filter(|i| {
                let (r, g, b) = (i / 36, i / 6 % 6, i % 6);
                let (max, min) = (r.max(g).max(b), r.min(g).min(b));
                max >= 3 && min <= 3 && !(r == g && g == b)
            })
            .map(|i| Color::Indexed(16 + i))
            .collect()
    })
}

/// How a name is drawn: bold in its colour, or ours bold bright white.
pub fn name_style(name: &UserName, me: &UserName) -> Style {
    let color = if name.folded() == me.folded() {
        Color::Indexed(15)
    } else {
        name_color(name.as_str())
    };
    Style::new().fg(color).add_modifier(Modifier::BOLD)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn text_of(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| r.line.spans.iter().map(|s| s.content.as_ref()).collect())
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
            text_of(&wrap(&spans, Widths::same(20), 6)),
            ["09:05 bob: one two ", "      three four ", "      five six"]
        );
    }

    #[test]
    fn wrap_splits_long_words_and_counts_wide_characters() {
        let spans = [Span::raw("09:05 "), Span::raw("好".repeat(12))];
        let rows = text_of(&wrap(&spans, Widths::same(20), 6));
        assert_eq!(
            rows,
            [
                format!("09:05 {}", "好".repeat(7)),
                format!("      {}", "好".repeat(5))
            ]
        );
        assert!(rows.iter().all(|r| r.width() <= 20));
    }

    /// Issue 21, defect 16: a long CJK line left `bob:` alone on its first row and could
    /// start a row with `。`.
    #[test]
    fn cjk_fills_its_rows_and_no_row_starts_with_a_stop() {
        let spans = [
            Span::raw("09:05 "),
            Span::raw("bob: "),
            Span::raw("这是一个很长的中文句子用来测试换行"),
        ];
        let rows = text_of(&wrap(&spans, Widths::same(20), 6));
        assert_eq!(rows[0], "09:05 bob: 这是一个");
        let spans = [Span::raw("09:05 "), Span::raw("一二三四五六七。八九")];
        let rows = text_of(&wrap(&spans, Widths::same(20), 6));
        assert_eq!(rows, ["09:05 一二三四五六", "      七。八九"]);
        assert!(rows.iter().all(|r| r.width() <= 20));
    }

    /// Issue 21, feature: a URL is never broken by the indent, so a terminal can select
    /// it; one wider than the pane takes whole rows of the screen's width.
    #[test]
    fn a_url_starts_a_row_of_its_own_and_goes_on_unindented() {
        let url = "https://example.org/a/long/path/to/somewhere?q=1";
        assert_eq!(url.len(), 48);
        let spans = [
            Span::raw("09:05 "),
            Span::raw("bob: "),
            Span::raw(format!("see {url}. ok")),
        ];
        let widths = Widths {
            pane: 30,
            screen: 40,
        };
        let rows = wrap(&spans, widths, 6);
        assert_eq!(
            text_of(&rows),
            ["09:05 bob: see ", &url[..40], &url[40..], "      . ok"]
        );
        let links: Vec<Vec<Link>> = rows.iter().map(|r| r.links.clone()).collect();
        let link = |start, end| Link {
            start,
            end,
            url: url.to_owned(),
        };
        assert_eq!(links, [vec![], vec![link(0, 40)], vec![link(0, 8)], vec![]]);

        // One that fits in an indented row starts one, rather than be cut.
        let spans = [
            Span::raw("09:05 "),
            Span::raw("bob: a b "),
            Span::raw("http://x.org/abcdef"),
        ];
        assert_eq!(
            text_of(&wrap(&spans, Widths::same(30), 6)),
            ["09:05 bob: a b ", "      http://x.org/abcdef"]
        );
        // A closing mark after a URL does not take its last character along.
        let spans = [Span::raw("09:05 "), Span::raw("https://x.org/abc。")];
        let rows = wrap(&spans, Widths::same(24), 6);
        assert_eq!(text_of(&rows), ["09:05 https://x.org/abc", "      。"]);
        assert_eq!(rows[0].links[0].url, "https://x.org/abc");
    }

    #[test]
    fn urls_are_found_at_word_starts_without_closing_punctuation() {
        let found = |text: &str| -> Vec<String> {
            let cells: Vec<(&str, Style)> =
                text.graphemes(true).map(|g| (g, Style::new())).collect();
            find_urls(&cells)
                .into_iter()
                .map(|r| cells[r].iter().map(|(g, _)| *g).collect())
                .collect()
        };
        assert_eq!(
            found("see https://en.wikipedia.org/wiki/Rust_(language), or HTTP://X.ORG."),
            [
                "https://en.wikipedia.org/wiki/Rust_(language)",
                "HTTP://X.ORG"
            ]
        );
        assert_eq!(found("<http://a.b/c>"), ["http://a.b/c"]);
        assert!(found("xhttp://a.b https:// ftp://a.b").is_empty());
    }

    #[test]
    fn wrap_keeps_styles() {
        let spans = [Span::styled("ab", Style::new().red()), Span::raw("cd")];
        let rows = wrap(&spans, Widths::same(10), 6);
        assert_eq!(
            rows[0].line.spans,
            [Span::styled("ab", Style::new().red()), Span::raw("cd")]
        );
    }

    #[test]
    fn twenty_names_rarely_share_a_colour() {
        assert!(palette().len() >= 150, "{}", palette().len());
        let names: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
        let colours: HashSet<_> = names
            .iter()
            .map(|n| format!("{:?}", name_color(n)))
            .collect();
        assert!(
            colours.len() >= 18,
            "{} colours for 20 names",
            colours.len()
        );
        assert_eq!(name_color("Bob"), name_color("bob"));
        let me = UserName::parse("alice").unwrap();
        assert_eq!(name_style(&me, &me).fg, Some(Color::Indexed(15)));
        assert!(!palette().contains(&Color::Indexed(15)));
    }

    #[test]
    fn search_matches_ignore_case() {
        assert_eq!(find_ignoring_case("Hello World", "world"), Some((6, 11)));
        assert_eq!(find_ignoring_case("ÄBC", "äb"), Some((0, 3)));
        assert_eq!(find_ignoring_case("abc", "x"), None);
    }

    #[test]
    fn names_fold_into_one_line_per_burst() {
        let n = |s: &str| UserName::parse(s).unwrap();
        assert_eq!(list_names(&[n("a")]), "a");
        assert_eq!(list_names(&[n("a"), n("b")]), "a and b");
        assert_eq!(list_names(&[n("a"), n("b"), n("c")]), "a, b and c");
        let many: Vec<UserName> = (0..35).map(|i| n(&format!("u{i}"))).collect();
        assert_eq!(list_names(&many), "u0, u1 and 33 others");
    }
}
