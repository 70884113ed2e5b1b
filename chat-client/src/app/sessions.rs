//! One account on several devices (protocol v3) as the user sees it: read markers sent for
//! what is viewed and taken from the other sessions, copies of what we sent elsewhere shown
//! as ours, `/away` and `/whois`, and the session count in the status bar. And the other
//! two v3 additions the client uses by itself: older history when scrolling back past the
//! top of a buffer, and the keepalive.

use std::time::{Duration, Instant};

use chat_proto::{ClientLine, Conv, HistoryRange, MessageId, MessageText, Recipient, UserName};

use super::{App, Command, HistoryAsk};
use crate::buffers::BufferId;
use crate::entry::EntryKind;
use crate::event::Clock;
use crate::keepalive::{Beat, PONG_TIMEOUT};
use crate::sanitize::SafeText;

/// Messages asked for at a time when scrolling back past the top.
const OLDER_LINES: u16 = 50;
/// At most one `/read` a second per buffer: a busy room watched for a minute sends sixty
/// markers at most, not one per line.
const READ_INTERVAL: Duration = Duration::from_secs(1);

impl App {
    // ---- sessions, away, whois ----

    /// Asks the server about our own account; the answer updates the status bar and is
    /// not shown.
    fn whois_me(&mut self) {
        let me = self.settings.name.clone();
        self.out.push(Command::Send(ClientLine::Whois(me)));
    }

    /// Right after a login: asks about our own account, if there is something to learn.
    pub(super) fn logged_in(&mut self, now: Instant) {
        if self.account.logged_in() && self.account.ask_self(now) {
            self.whois_me();
        }
    }

    /// A line showed another session of ours at work.
    pub(super) fn another_session(&mut self, now: Instant) {
        if self.account.another_session(now) {
            self.whois_me();
        }
    }

    /// `sent <dest>: <text>`: another session of ours sent this; shown as ours, in the
    /// buffer of its destination.
    pub(super) fn on_sent(&mut self, to: Recipient, text: MessageText, clock: Clock) {
        self.own_line_from_elsewhere(BufferId::of(&to), None, &text, clock);
    }

    /// Our own line, sent from another session: a `sent` copy, or `from <me> <#room> <id>`.
    /// Neither unread nor a mention; a room line already shown (by id) is not shown again.
    pub(super) fn own_line_from_elsewhere(
        &mut self,
        buffer: BufferId,
        id: Option<MessageId>,
        text: &MessageText,
        clock: Clock,
    ) {
        let index = self.view.buffers_mut().open(buffer);
        if !id.is_some_and(|id| self.view.buffers().all()[index].has_id(id)) {
            let kind = EntryKind::Own {
                text: SafeText::new(text.as_str()),
                id,
                pending: false,
            };
            self.push(index, kind, clock);
        }
        self.another_session(clock.now);
    }

    /// `/away [text]`: the server answers nothing, so the client says it.
    pub(super) fn set_away(&mut self, text: Option<MessageText>, clock: Clock) -> bool {
        if !self.send_now(ClientLine::Away(text.clone())) {
            return false;
        }
        let note = match &text {
            Some(text) => format!("you are marked away: {text}; /away alone when you are back"),
            None => "you are back".to_owned(),
        };
        self.account.set_away(text);
        self.note_in(self.view.buffers().current_index(), note, false, clock);
        true
    }

    /// `/whois name`: its answer is shown where the user is.
    pub(super) fn ask_whois(&mut self, name: UserName) -> bool {
        if !self.send_now(ClientLine::Whois(name.clone())) {
            return false;
        }
        self.account.asked_about(&name);
        true
    }

    /// `whois <name> <idle> <sessions>`: shown if the user asked; about ourselves, it is
    /// the session count (and not away, unless an `away` line follows).
    pub(super) fn on_whois(&mut self, name: UserName, idle: u64, sessions: usize, clock: Clock) {
        let asked = if name.folded() == self.folded_name {
            let (asked, restore) = self.account.answered_self(&name, sessions, clock.now);
            if let Some(text) = restore {
                self.out.push(Command::Send(ClientLine::Away(Some(text))));
            }
            asked
        } else {
            self.account.answered(&name)
        };
        let shown_in = asked.then(|| self.view.buffers().current_index());
        if let Some(index) = shown_in {
            let plural = if sessions == 1 { "" } else { "s" };
            let text = format!(
                "{name} is online ({sessions} session{plural}), idle {}",
                idle_text(idle)
            );
            self.note_in(index, text, false, clock);
        }
        self.after_whois = Some((name, shown_in));
    }

    /// `away <name>: <text>`: after a `whois` it belongs to that answer (and about
    /// ourselves, says we are away); otherwise it answers a direct message we sent, and
    /// shows in that conversation.
    pub(super) fn on_away(
        &mut self,
        name: UserName,
        text: MessageText,
        after_whois: Option<(UserName, Option<usize>)>,
        clock: Clock,
    ) {
        let note = format!("{name} is away: {text}");
        match after_whois {
            Some((asked, shown_in)) if asked.folded() == name.folded() => {
                if name.folded() == self.folded_name {
                    self.account.learned_away(text);
                }
                if let Some(index) = shown_in {
                    self.note_in(index, note, false, clock);
                }
            }
            _ => {
                let index = self
                    .view
                    .buffers()
                    .find(&BufferId::Query(name))
                    .unwrap_or_else(|| self.view.buffers().current_index());
                self.note_in(index, note, false, clock);
            }
        }
    }

    // ---- read markers ----

    /// `read <conv> [id]`: the account's read marker. One past what we knew was moved by
    /// another session: that buffer counts as read up to there and its `── new ──` line
    /// moves, unless it is the one shown, which the user is reading anyway.
    pub(super) fn on_read(&mut self, conv: &Conv, id: Option<MessageId>, now: Instant) {
        let of = BufferId::of_conv(conv);
        let asked = self.read_asks.iter().position(|b| b.same(&of));
        let answer = asked.map(|at| self.read_asks.remove(at)).is_some();
        let (Some(id), Some(index)) = (id, self.view.buffers().find(&of)) else {
            return;
        };
        let shown = index == self.view.buffers().current_index();
        let buffer = self.view.buffers_mut().get_mut(index);
        if buffer.read.is_some_and(|read| read >= id) {
            // Ours coming back, or older news.
            return;
        }
        buffer.read = Some(id);
        if !shown {
            buffer.read_up_to(id);
            // A mention read elsewhere has been seen.
            self.untitle_if_seen();
        }
        if !answer {
            self.another_session(now);
        }
    }

    /// Marks what the user has seen, and sends the read marker of every buffer seen
    /// further than the account's marker, at most one `/read` a second per buffer (a
    /// later tick sends what had to wait). Seen means shown at the bottom of the pane.
    /// Only accounts have markers: a guest's `/read` is an error.
    pub(super) fn send_read_markers(&mut self, now: Instant) {
        if !self.account.registered() {
            return;
        }
        let viewing = self.modes.help().is_none();
        let buffer = self.view.buffers_mut().current_mut();
        if viewing && buffer.scroll == 0 {
            buffer.seen = buffer.seen.max(buffer.last_id());
        }
        if !self.ready() {
            return;
        }
        let mut lines = Vec::new();
        for buffer in self.view.buffers_mut().all_mut() {
            let (Some(conv), Some(seen)) = (buffer.id.conv(), buffer.seen) else {
                continue;
            };
            let waiting = buffer
                .read_sent_at
                .is_some_and(|at| now.saturating_duration_since(at) < READ_INTERVAL);
            if buffer.read.is_some_and(|read| read >= seen) || waiting {
                continue;
            }
            buffer.read = Some(seen);
            buffer.read_sent_at = Some(now);
            lines.push(ClientLine::Read {
                conv,
                id: Some(seen),
            });
        }
        self.out.extend(lines.into_iter().map(Command::Send));
    }

    // ---- history ----

    /// Asks for history, remembering what for: replies come in the order asked.
    pub(super) fn ask_history(&mut self, conv: Conv, range: HistoryRange, why: HistoryAsk) {
        self.history_asks.push_back((BufferId::of_conv(&conv), why));
        self.out
            .push(Command::Send(ClientLine::History { conv, range }));
    }

    /// A `history-end` for `buffer`: why it was asked for.
    pub(super) fn take_history_ask(&mut self, buffer: &BufferId) -> HistoryAsk {
        let at = self.history_asks.iter().position(|(id, _)| id.same(buffer));
        at.and_then(|at| self.history_asks.remove(at))
            .map_or(HistoryAsk::Follow, |(_, why)| why)
    }

    /// After a PageUp: if the view is at the top of a room or conversation, asks for the
    /// messages before the oldest one it has. One request at a time; none once the server
    /// said there is nothing older (that is said again), or when a full scrollback would
    /// drop them at once.
    pub(super) fn fetch_older(&mut self) {
        let index = self.view.buffers().current_index();
        if !self.ready() || self.view.buffers().all()[index].scroll < self.view.max_scroll(index) {
            return;
        }
        let buffer = &self.view.buffers().all()[index];
        let Some(conv) = buffer.id.conv() else {
            return;
        };
        if buffer.at_start {
            let text = format!("no older messages in {conv}");
            self.hint = Some((SafeText::new(&text), false));
            return;
        }
        let asked = self
            .history_asks
            .iter()
            .any(|(id, why)| *why == HistoryAsk::Older && id.same(&buffer.id));
        if asked {
            return;
        }
        if buffer.entries().len() >= self.settings.scrollback {
            let text = format!(
                "the scrollback is full ({} entries): older messages would not be kept",
                self.settings.scrollback
            );
            self.hint = Some((SafeText::new(&text), false));
            return;
        }
        let range = match buffer.first_id() {
            Some(id) => HistoryRange::Before(id, OLDER_LINES),
            None => HistoryRange::Latest(OLDER_LINES),
        };
        let text = format!("asking for older messages of {conv}…");
        self.ask_history(conv, range, HistoryAsk::Older);
        self.hint = Some((SafeText::new(&text), false));
    }

    // ---- the keepalive ----

    /// Each second while connected: the keepalive, and for an account the session count
    /// once a minute (a session that comes or goes says nothing to the others).
    pub(super) fn beat(&mut self, now: Instant) {
        if !self.conn.is_connected() {
            return;
        }
        match self.keepalive.tick(now) {
            Some(Beat::Ping) => self.out.push(Command::Send(ClientLine::Ping(None))),
            Some(Beat::Dead) => self.out.push(Command::Abandon(format!(
                "no answer from the server in {} s",
                PONG_TIMEOUT.as_secs()
            ))),
            None => {}
        }
        if self.account.refresh_due(now) {
            self.whois_me();
        }
    }
}

/// Idle seconds as a person says them: `42 s`, `5 min`, `3 h 20 min`, `2 d 4 h`.
fn idle_text(secs: u64) -> String {
    let (min, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{min} min"),
        3600..86_400 => format!("{hours} h {} min", min % 60),
        _ => format!("{days} d {} h", hours % 24),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn idle_time_reads_like_speech() {
        for (secs, want) in [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (3599, "59 min"),
            (3600, "1 h 0 min"),
            (12_000, "3 h 20 min"),
            (187_200, "2 d 4 h"),
        ] {
            assert_eq!(super::idle_text(secs), want);
        }
    }
}
