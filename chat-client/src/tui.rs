//! The runtime: puts the terminal in raw mode on the alternate screen, runs the event loop
//! (terminal events, network lines, a one-second tick, SIGTERM/SIGHUP) through
//! [`App::update`], carries out the [`Command`]s, and always puts the terminal back.

use std::io::stdout;
use std::time::{Duration, Instant};

use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event, EventStream};
use crossterm::execute;
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::{App, Command, Exit, Settings};
use crate::event::{Clock, Msg};
use crate::net::{self, QUIT_DRAIN, Session, Target};
use crate::ui;

/// Network events waiting for the loop; a full queue slows the socket, not the UI.
const NET_QUEUE_LEN: usize = 4096;
/// Messages handled between two redraws at most, so a flood still lets keys through.
const MAX_BATCH: usize = 2048;

/// Runs the terminal UI until the user leaves. The terminal is restored on every path:
/// here on return (error or not), and by the panic hook on a panic.
/// `inject_panic` panics after the first frame (the hidden `--test-panic` flag).
pub async fn run(settings: Settings, target: Target, inject_panic: bool) -> anyhow::Result<Exit> {
    let mut terminal = init()?;
    let result = event_loop(&mut terminal, settings, &target, inject_panic).await;
    restore();
    result
}

fn init() -> std::io::Result<DefaultTerminal> {
    // Raw mode, alternate screen, and a panic hook that restores both.
    let terminal = ratatui::try_init()?;
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(stdout(), DisableBracketedPaste);
        ratatui_hook(info);
    }));
    if let Err(e) = execute!(stdout(), EnableBracketedPaste) {
        restore();
        return Err(e);
    }
    Ok(terminal)
}

fn restore() {
    let _ = execute!(stdout(), DisableBracketedPaste);
    ratatui::restore();
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    settings: Settings,
    target: &Target,
    inject_panic: bool,
) -> anyhow::Result<Exit> {
    let name = settings.name.clone();
    let mut app = App::new(settings, terminal.size()?, Instant::now());
    // Net sessions hold clones of `msg_tx`; the loop owns the receiver until it returns.
    let (msg_tx, mut msg_rx) = mpsc::channel(NET_QUEUE_LEN);
    let mut terminal_events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut session: Option<Session> = None;
    let mut commands = app.start();

    loop {
        for command in commands.drain(..) {
            match command {
                Command::Connect => {
                    session = Some(net::spawn(target.clone(), name.clone(), msg_tx.clone()))
                }
                Command::Send(line) => {
                    if let Some(session) = &session {
                        // Only fails if 256 typed lines are still unsent: the socket is stuck,
                        // and the session will report the disconnect.
                        let _ = session.cmd_tx.try_send(line);
                    }
                }
                Command::Quit => {
                    leave(session, msg_rx).await;
                    return Ok(app.exit().cloned().unwrap_or(Exit::Clean));
                }
            }
        }
        terminal.draw(|frame| ui::draw(frame, &app))?;
        assert!(!inject_panic, "panic injected by --test-panic");

        // Every branch is cancel safe; losing the race loses nothing.
        let msg = tokio::select! {
            event = terminal_events.next() => match event {
                Some(Ok(event)) => translate(event),
                Some(Err(e)) => return Err(e.into()),
                None => Some(Msg::Quit),
            },
            Some(msg) = msg_rx.recv() => Some(msg),
            _ = tick.tick() => Some(Msg::Tick),
            _ = terminate.recv() => Some(Msg::Quit),
            _ = hangup.recv() => Some(Msg::Quit),
        };
        if let Some(msg) = msg {
            commands.extend(app.update(msg, Clock::read()));
        }
        // Take what else the network has ready before drawing again: a burst of lines
        // costs one redraw, not one each.
        for _ in 0..MAX_BATCH {
            let Ok(msg) = msg_rx.try_recv() else { break };
            commands.extend(app.update(msg, Clock::read()));
        }
    }
}

fn translate(event: Event) -> Option<Msg> {
    match event {
        Event::Key(key) => Some(Msg::Key(key)),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Resize(width, height) => Some(Msg::Resize(width, height)),
        _ => None,
    }
}

/// Ends the session cleanly: dropping `cmd_tx` makes it flush, shut down its write half
/// and read until the server closes. Its events are drained meanwhile so it never blocks
/// on a full queue; the wait is bounded.
async fn leave(session: Option<Session>, mut msg_rx: mpsc::Receiver<Msg>) {
    let Some(Session { cmd_tx, mut task }) = session else {
        return;
    };
    drop(cmd_tx);
    let deadline = tokio::time::sleep(QUIT_DRAIN + Duration::from_millis(500));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut task => return,
            () = &mut deadline => return,
            Some(_) = msg_rx.recv() => {}
        }
    }
}
