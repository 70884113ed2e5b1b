//! The runtime: puts the terminal in raw mode on the alternate screen, runs the event loop
//! (terminal events, network lines, a one-second tick, SIGTERM/SIGHUP) through
//! [`App::update`], carries out the [`Command`]s, and always puts the terminal back.

use std::io::{Write, stdout};
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyCode, KeyModifiers, MouseEventKind,
};
use crossterm::execute;
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::{App, Command, Exit, Settings};
use crate::event::{Clock, Msg};
use crate::logger::Logger;
use crate::net::{self, QUIT_DRAIN, Report, Session, Target};
use crate::ui;

/// Network events waiting for the loop; a full queue slows the socket, not the UI.
const NET_QUEUE_LEN: usize = 4096;
/// Messages handled between two redraws at most, so a flood still lets keys through.
const MAX_BATCH: usize = 2048;
/// xterm's title stack: save the user's title at start, put it back at exit.
const PUSH_TITLE: &str = "\x1b[22;0t";
const POP_TITLE: &str = "\x1b[23;0t";

/// Runs the terminal UI until the user leaves. The terminal is restored on every path:
/// here on return (error or not), and by the panic hook on a panic.
/// `inject_panic` panics after the first frame (the hidden `--test-panic` flag).
pub async fn run(
    settings: Settings,
    target: Target,
    logger: Option<Logger>,
    inject_panic: bool,
) -> anyhow::Result<Exit> {
    let mut terminal = init()?;
    let result = event_loop(
        &mut terminal,
        settings,
        &target,
        logger.as_ref(),
        inject_panic,
    )
    .await;
    restore();
    result
}

fn init() -> std::io::Result<DefaultTerminal> {
    // Raw mode, alternate screen, and a panic hook that restores both.
    let terminal = ratatui::try_init()?;
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        undo_modes();
        ratatui_hook(info);
    }));
    if let Err(e) = execute!(stdout(), EnableBracketedPaste) {
        restore();
        return Err(e);
    }
    let _ = write!(stdout(), "{PUSH_TITLE}");
    Ok(terminal)
}

/// Turns off what we turned on besides raw mode and the alternate screen.
fn undo_modes() {
    let _ = execute!(stdout(), DisableBracketedPaste, DisableMouseCapture);
    let _ = write!(stdout(), "{POP_TITLE}");
    let _ = stdout().flush();
}

fn restore() {
    undo_modes();
    ratatui::restore();
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    settings: Settings,
    target: &Target,
    logger: Option<&Logger>,
    inject_panic: bool,
) -> anyhow::Result<Exit> {
    let name = settings.name.clone();
    let mut app = App::new(settings, terminal.size()?, Instant::now())
        .with_account(target.password.is_some());
    // Sessions hold clones of `report_tx`; the loop owns the receiver until it returns.
    let (report_tx, mut report_rx) = mpsc::channel::<Report>(NET_QUEUE_LEN);
    let mut terminal_events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut session: Option<Session> = None;
    let mut session_id = 0;
    // Ours to change: a password set during the session is used from the next login on.
    let mut target = target.clone();
    let mut commands = app.start();
    // Events of a replaced session are dropped: the app only hears about the current one.
    let current =
        |(id, event): Report, session_id: u64| (id == session_id).then_some(Msg::Net(event));

    loop {
        let mut followups = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Connect => {
                    session_id += 1;
                    // Dropping the old session's sender makes it close cleanly by itself.
                    session = Some(net::spawn(
                        session_id,
                        target.clone(),
                        name.clone(),
                        report_tx.clone(),
                    ));
                }
                Command::Send(line) => match &session {
                    // Fails only if the session just ended or 256 lines are still unsent;
                    // the app keeps the line and sends it after the next login.
                    Some(session) => {
                        if let Err(e) = session.cmd_tx.try_send(line) {
                            let line = match e {
                                mpsc::error::TrySendError::Full(line)
                                | mpsc::error::TrySendError::Closed(line) => line,
                            };
                            followups.push(Msg::SendFailed(line));
                        }
                    }
                    None => followups.push(Msg::SendFailed(line)),
                },
                Command::Abandon(reason) => {
                    let abandon = session.as_mut().and_then(|s| s.abandon_tx.take());
                    if let Some(abandon_tx) = abandon {
                        let _ = abandon_tx.send(reason);
                    }
                }
                Command::UsePassword(password) => target.password = Some(password),
                Command::Bell => {
                    let _ = write!(stdout(), "\x07");
                }
                Command::Title(Some(title)) => {
                    let _ = write!(stdout(), "\x1b]2;{title}\x07");
                }
                // Back to the saved title, and saved again for the next time.
                Command::Title(None) => {
                    let _ = write!(stdout(), "{POP_TITLE}{PUSH_TITLE}");
                }
                Command::Mouse(true) => {
                    let _ = execute!(stdout(), EnableMouseCapture);
                }
                Command::Mouse(false) => {
                    let _ = execute!(stdout(), DisableMouseCapture);
                }
                Command::Redraw => terminal.clear()?,
                Command::Log { buffer, line } => {
                    if let Some(logger) = logger {
                        logger.log(buffer, line);
                    }
                }
                Command::Quit => {
                    leave(session, report_rx).await;
                    return Ok(app.exit().cloned().unwrap_or(Exit::Clean));
                }
            }
        }
        for msg in followups {
            commands.extend(app.update(msg, Clock::read()));
        }
        if !commands.is_empty() {
            continue;
        }
        terminal.draw(|frame| ui::draw(frame, &app))?;
        assert!(!inject_panic, "panic injected by --test-panic");

        // Every branch is cancel safe; losing the race loses nothing.
        let msgs = tokio::select! {
            event = terminal_events.next() => match event {
                Some(Ok(event)) => {
                    let mut events = vec![event];
                    // Without bracketed paste, a paste comes as keys, Enter included, all
                    // at once: what the terminal has ready with a key is read with it, so
                    // that several lines are one paste (WeeChat tells them by timing the
                    // same way) rather than lines sent, or commands run, one by one. A
                    // zero timeout polls the stream once, with this task's own waker.
                    while matches!(events.last(), Some(Event::Key(_))) {
                        match tokio::time::timeout(Duration::ZERO, terminal_events.next()).await {
                            Ok(Some(Ok(event))) => events.push(event),
                            Ok(Some(Err(e))) => return Err(e.into()),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    terminal_msgs(events)
                }
                Some(Err(e)) => return Err(e.into()),
                None => vec![Msg::Quit],
            },
            Some(report) = report_rx.recv() => current(report, session_id).into_iter().collect(),
            _ = tick.tick() => vec![Msg::Tick],
            _ = terminate.recv() => vec![Msg::Quit],
            _ = hangup.recv() => vec![Msg::Quit],
        };
        for msg in msgs {
            commands.extend(app.update(msg, Clock::read()));
        }
        // Take what else the network has ready before drawing again: a burst of lines
        // costs one redraw, not one each.
        for _ in 0..MAX_BATCH {
            let Ok(report) = report_rx.try_recv() else {
                break;
            };
            if let Some(msg) = current(report, session_id) {
                commands.extend(app.update(msg, Clock::read()));
            }
        }
    }
}

/// Terminal events read at once. A run of typed text in them that holds more than one
/// line is a paste: no one types Enter and a key after it faster than the terminal is
/// read. Everything else is a key as usual, in order.
fn terminal_msgs(events: Vec<Event>) -> Vec<Msg> {
    let mut msgs = Vec::new();
    let mut run: Vec<Event> = Vec::new();
    for event in events {
        if text_of(&event).is_some() {
            run.push(event);
        } else {
            flush_run(&mut run, &mut msgs);
            msgs.extend(translate(event));
        }
    }
    flush_run(&mut run, &mut msgs);
    msgs
}

/// Hands on a run of text keys: as one paste if it is several lines, else key by key.
fn flush_run(run: &mut Vec<Event>, msgs: &mut Vec<Msg>) {
    let text: String = run.iter().filter_map(text_of).collect();
    let several_lines = text.find('\n').is_some_and(|at| at + 1 < text.len());
    if several_lines {
        run.clear();
        msgs.push(Msg::Paste(text));
    } else {
        msgs.extend(run.drain(..).filter_map(translate));
    }
}

/// The character a key types into a paste, if it is plain text (Shift aside).
fn text_of(event: &Event) -> Option<char> {
    let Event::Key(key) = event else { return None };
    if !key.modifiers.difference(KeyModifiers::SHIFT).is_empty() {
        return None;
    }
    match key.code {
        KeyCode::Char(c) => Some(c),
        KeyCode::Tab => Some('\t'),
        KeyCode::Enter => Some('\n'),
        _ => None,
    }
}

fn translate(event: Event) -> Option<Msg> {
    match event {
        Event::Key(key) => Some(Msg::Key(key)),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Resize(width, height) => Some(Msg::Resize(width, height)),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Some(Msg::Wheel(true)),
            MouseEventKind::ScrollDown => Some(Msg::Wheel(false)),
            _ => None,
        },
        _ => None,
    }
}

/// Ends the session cleanly: dropping `cmd_tx` makes it flush, shut down its write half
/// and read until the server closes. Its events are drained meanwhile so it never blocks
/// on a full queue; the wait is bounded.
async fn leave(session: Option<Session>, mut report_rx: mpsc::Receiver<Report>) {
    let Some(Session {
        cmd_tx, mut task, ..
    }) = session
    else {
        return;
    };
    drop(cmd_tx);
    let deadline = tokio::time::sleep(QUIT_DRAIN + Duration::from_millis(500));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut task => return,
            () = &mut deadline => return,
            Some(_) = report_rx.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyEvent;

    use super::*;

    fn keys(text: &str) -> Vec<Event> {
        text.chars()
            .map(|c| {
                let code = if c == '\n' {
                    KeyCode::Enter
                } else {
                    KeyCode::Char(c)
                };
                Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
            })
            .collect()
    }

    /// Issue 21, defect 13: without bracketed paste a pasted `/who` line ran.
    #[test]
    fn keys_read_at_once_with_a_line_break_inside_are_a_paste() {
        assert_eq!(
            terminal_msgs(keys("hello\n/who\n")),
            [Msg::Paste("hello\n/who\n".into())]
        );
        assert_eq!(terminal_msgs(keys("x")).len(), 1, "a typed key");
        assert!(
            matches!(
                terminal_msgs(keys("hi\n")).as_slice(),
                [Msg::Key(_), Msg::Key(_), Msg::Key(_)]
            ),
            "one line and its Enter are typed as keys"
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        let alt_2 = KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT);
        let mut events = vec![Event::Key(alt_2)];
        events.extend(keys("a\nb"));
        events.push(Event::Key(ctrl_c));
        assert_eq!(
            terminal_msgs(events),
            [Msg::Key(alt_2), Msg::Paste("a\nb".into()), Msg::Key(ctrl_c)],
            "keys read with a paste stay keys, in order"
        );
    }
}
