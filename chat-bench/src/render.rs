//! `chat-bench render`: the client's cost per frame with a full scrollback. An `App` gets
//! N messages (mixed lengths, some wrapping, some CJK) in one buffer; then every frame is
//! timed, update and draw together, through ratatui's `TestBackend`: new lines arriving at
//! the bottom, then PgUp page by page to the oldest line and PgDn back. The view wraps only
//! what is on screen, so the cost should not grow with N.

use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::app::{App, JoinPart, Settings};
use chat_client::event::{Clock, Msg, NetEvent};
use chat_client::ui;
use chat_proto::UserName;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hdrhistogram::Histogram;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Size;
use serde_json::{Value, json};

/// Times frames over a scrollback of `lines` on a `width`×`height` terminal.
pub fn render(lines: usize, width: u16, height: u16) -> anyhow::Result<Value> {
    let settings = Settings {
        name: UserName::parse("alice").context("a name")?,
        addr: "127.0.0.1:8080".into(),
        tls: false,
        max_line_bytes: 4096,
        scrollback: lines,
        rooms: Vec::new(),
        bell: false,
        highlights: Vec::new(),
        time_format: "%H:%M".into(),
        join_part: JoinPart::Fold,
        smart_filter: false,
        hyperlinks: false,
        mouse: false,
        log: false,
    };
    let mut app = App::new(settings, Size::new(width, height), Instant::now());
    let mut terminal = Terminal::new(TestBackend::new(width, height)).context("a test terminal")?;
    app.update(Msg::Net(NetEvent::Connected), Clock::read());
    let fill_started = Instant::now();
    for i in 0..lines {
        app.update(line(i)?, Clock::read());
    }
    let fill = fill_started.elapsed();

    let mut arriving = Histogram::<u64>::new(3).context("a histogram")?;
    let mut scrolling = Histogram::<u64>::new(3).context("a histogram")?;
    let mut frame = |app: &mut App, msg: Msg, into: &mut Histogram<u64>| -> anyhow::Result<()> {
        let started = Instant::now();
        app.update(msg, Clock::read());
        terminal.draw(|f| ui::draw(f, app)).context("drawing")?;
        into.record(started.elapsed().as_micros() as u64)
            .context("recording")?;
        Ok(())
    };
    for i in 0..1_000 {
        frame(&mut app, line(lines + i)?, &mut arriving)?;
    }
    let key = |code| Msg::Key(KeyEvent::new(code, KeyModifiers::NONE));
    let mut pages = 0;
    loop {
        let before = app.buffers().current().scroll;
        frame(&mut app, key(KeyCode::PageUp), &mut scrolling)?;
        pages += 1;
        if app.buffers().current().scroll == before {
            break;
        }
    }
    while app.buffers().current().scroll > 0 {
        frame(&mut app, key(KeyCode::PageDown), &mut scrolling)?;
    }
    // A resize measures every entry again at the new width.
    let resized = Instant::now();
    app.update(Msg::Resize(width - 20, height), Clock::read());
    terminal
        .resize(ratatui::layout::Rect::new(0, 0, width - 20, height))
        .context("resizing")?;
    terminal.draw(|f| ui::draw(f, &app)).context("drawing")?;
    let resize = resized.elapsed();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "scenario": "render",
        "lines": lines,
        "terminal": format!("{width}x{height}"),
        "fill_ms": fill.as_secs_f64() * 1000.0,
        "pages_to_top": pages,
        "arrival_p50_ms": ms(&arriving, 0.5),
        "arrival_p99_ms": ms(&arriving, 0.99),
        "arrival_max_ms": arriving.max() as f64 / 1000.0,
        "scroll_frames": scrolling.len(),
        "scroll_p50_ms": ms(&scrolling, 0.5),
        "scroll_p99_ms": ms(&scrolling, 0.99),
        "scroll_max_ms": scrolling.max() as f64 / 1000.0,
        "resize_ms": resize.as_secs_f64() * 1000.0,
        "under_5ms": Duration::from_micros(arriving.max().max(scrolling.max())) < Duration::from_millis(5),
    }))
}

/// Message `i`: short, long enough to wrap, or CJK, in turn.
fn line(i: usize) -> anyhow::Result<Msg> {
    let text = match i % 3 {
        0 => format!("message {i}"),
        1 => format!(
            "message {i}: {}",
            "a fairly long line that wraps onto the next row ".repeat(3)
        ),
        _ => format!("消息 {i}：你好，世界"),
    };
    let line = format!("from bob *: {text}")
        .parse()
        .context("a server line")?;
    Ok(Msg::Net(NetEvent::Line(line)))
}
