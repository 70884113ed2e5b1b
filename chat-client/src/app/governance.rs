//! Room governance (protocol v3): the room commands, and the `roles`, `topic`, `mode`,
//! `kicked`, `bans`, `invited`, `invite sent` and `room-registered` lines.

use chat_proto::{
    MessageText, ModeChange, Role, RoomMode, RoomModes, RoomName, Setter, TopicInfo, UserName,
};

use super::{App, Command, join_names};
use crate::buffers::BufferId;
use crate::commands::RoomAction;
use crate::event::Clock;
use crate::sanitize::SafeText;

/// Which `topic` lines answer a question rather than report a change; the line is the
/// same either way.
#[derive(Debug, Default)]
pub(super) struct TopicReplies {
    /// Rooms whose topic the user asked for, oldest first.
    asked: Vec<RoomName>,
    /// The room whose `roles` line came last, if it was the line just before: a `topic`
    /// line right after it is the topic the room had when we joined or logged in.
    after_roles: Option<RoomName>,
}

impl App {
    /// A room command, for the room named or the current buffer's.
    pub(super) fn run_room(&mut self, room: Option<RoomName>, action: RoomAction) -> bool {
        let Some(room) = room.or_else(|| self.current_room()) else {
            let command = action.command();
            self.error_hint(format!(
                "/{command}: this is not a room; name one: /{command} #room …"
            ));
            return false;
        };
        let asks_topic = action == RoomAction::Topic(None);
        if !self.send_now(action.line(room.clone())) {
            return false;
        }
        if asks_topic {
            self.topic_replies.asked.push(room);
        }
        true
    }

    /// Called for every server line: the room of the line before, if that was a `roles`
    /// line.
    pub(super) fn take_after_roles(&mut self) -> Option<RoomName> {
        self.topic_replies.after_roles.take()
    }

    /// Forgets the questions in flight: a new connection answers none of them.
    pub(super) fn forget_questions(&mut self) {
        self.topic_replies = TopicReplies::default();
    }

    /// The open buffer of `room`.
    fn room_index(&self, room: &RoomName) -> Option<usize> {
        self.view.buffers().find(&BufferId::Room(room.clone()))
    }

    /// Where news of `room` goes: its buffer, or the server buffer if it has none.
    fn room_or_server(&self, room: &RoomName) -> usize {
        self.room_index(room).unwrap_or(0)
    }

    /// Where a reply about `room` goes: its buffer, or the one the user is looking at.
    fn room_or_current(&self, room: &RoomName) -> usize {
        self.room_index(room)
            .unwrap_or_else(|| self.view.buffers().current_index())
    }

    pub(super) fn on_roles(&mut self, room: RoomName, members: &[(Role, UserName)]) {
        if let Some(index) = self.room_index(&room) {
            self.view
                .buffers_mut()
                .get_mut(index)
                .room
                .set_roles(members);
        }
        self.topic_replies.after_roles = Some(room);
    }

    /// Whether a `topic` line for `room` answers the user's `/topic`; if so it is
    /// answered now.
    fn settle_topic_question(&mut self, room: &RoomName) -> bool {
        let asked = &mut self.topic_replies.asked;
        match asked.iter().position(|r| r == room) {
            Some(at) => {
                asked.remove(at);
                true
            }
            None => false,
        }
    }

    pub(super) fn on_topic(
        &mut self,
        room: RoomName,
        topic: Option<TopicInfo>,
        after_roles: bool,
        clock: Clock,
    ) {
        let asked = self.settle_topic_question(&room);
        let index = if asked {
            self.room_or_current(&room)
        } else {
            self.room_or_server(&room)
        };
        if let Some(buffer) = self.room_index(&room) {
            let text = topic.as_ref().map(|t| SafeText::new(t.text.as_str()));
            self.view.buffers_mut().get_mut(buffer).room.set_topic(text);
        }
        let note = match topic {
            None if asked || after_roles => format!("{room} has no topic"),
            // Not asked: someone cleared it (`/topic <#room> -delete`).
            None => format!("the topic of {room} was cleared"),
            Some(TopicInfo { setter, time, text }) if asked || after_roles => {
                format!(
                    "topic of {room}: {text} (set by {} on {})",
                    setter_text(&setter),
                    local_time(time.unix_millis())
                )
            }
            Some(TopicInfo { setter, text, .. }) => {
                format!("{} set the topic: {text}", setter_text(&setter))
            }
        };
        self.note_in(index, note, false, clock);
    }

    pub(super) fn on_modes(&mut self, room: RoomName, modes: RoomModes, clock: Clock) {
        if let Some(index) = self.room_index(&room) {
            self.view.buffers_mut().get_mut(index).room.set_modes(modes);
        }
        let described = if modes.iter().next().is_none() {
            "none".to_owned()
        } else {
            let meanings: Vec<&str> = modes.iter().map(|m| flag_meaning(m, true)).collect();
            format!("{modes} ({})", meanings.join(", "))
        };
        let index = self.room_or_current(&room);
        self.note_in(index, format!("modes of {room}: {described}"), false, clock);
    }

    pub(super) fn on_mode(
        &mut self,
        room: RoomName,
        setter: Setter,
        change: ModeChange,
        clock: Clock,
    ) {
        let index = self.room_or_server(&room);
        if index != 0 {
            self.view.buffers_mut().get_mut(index).room.apply(&change);
        }
        self.note_in(index, mode_text(&setter, &change), false, clock);
    }

    pub(super) fn on_kicked(
        &mut self,
        room: RoomName,
        name: UserName,
        setter: Setter,
        reason: Option<MessageText>,
        clock: Clock,
    ) {
        // The server's kick of a member just banned, as the contract words it.
        let banned =
            setter == Setter::Server && reason.as_ref().is_some_and(|r| r.as_str() == "banned");
        if name.folded() == self.folded_name {
            self.kicked_me(&room, &setter, reason, banned, clock);
            return;
        }
        let index = self.room_or_server(&room);
        if index != 0 {
            self.view.buffers_mut().get_mut(index).room.left(&name);
        }
        let note = match reason {
            _ if banned => format!("{name} was banned from {room}"),
            Some(reason) => format!("{name} was kicked by {} ({reason})", setter_text(&setter)),
            None => format!("{name} was kicked by {}", setter_text(&setter)),
        };
        self.note_in(index, note, false, clock);
    }

    /// We were kicked or banned: said loudly where we will see it, and the buffer is kept
    /// as after a part, so what was said stays readable and nothing rejoins by itself.
    fn kicked_me(
        &mut self,
        room: &RoomName,
        setter: &Setter,
        reason: Option<MessageText>,
        banned: bool,
        clock: Clock,
    ) {
        let note = match reason {
            _ if banned => format!("you were banned from {room}"),
            Some(reason) => format!(
                "you were kicked from {room} by {}: {reason}",
                setter_text(setter)
            ),
            None => format!("you were kicked from {room} by {}", setter_text(setter)),
        };
        let index = self.room_or_server(room);
        if index != 0 {
            let buffer = self.view.buffers_mut().get_mut(index);
            buffer.member = false;
            buffer.wanted = false;
            buffer.room.clear();
        }
        self.note_in(index, note.clone(), true, clock);
        let current = self.view.buffers().current_index();
        if index != current {
            self.view.buffers_mut().get_mut(index).mentioned = true;
            self.note_in(current, note, true, clock);
        } else if index != 0 {
            self.note_in(index, "/close closes this buffer".to_owned(), false, clock);
        }
        if self.settings.bell {
            self.out.push(Command::Bell);
        }
    }

    pub(super) fn on_bans(&mut self, room: RoomName, names: &[UserName], clock: Clock) {
        let note = if names.is_empty() {
            format!("no bans in {room}")
        } else {
            format!("bans in {room}: {}", join_names(names))
        };
        let index = self.room_or_current(&room);
        self.note_in(index, note, false, clock);
    }

    pub(super) fn on_invited(&mut self, room: RoomName, by: UserName, clock: Clock) {
        let note = format!("{by} invites you to {room}: /join {room} to accept");
        self.hint = Some((SafeText::new(&note), true));
        self.note_in(0, note, false, clock);
        self.known_rooms.insert(room);
    }

    pub(super) fn on_invite_sent(&mut self, name: UserName, room: RoomName, clock: Clock) {
        let index = self.view.buffers().current_index();
        self.note_in(index, format!("{name} is invited to {room}"), false, clock);
    }

    pub(super) fn on_room_registered(&mut self, room: RoomName, founder: UserName, clock: Clock) {
        let index = self.room_or_server(&room);
        let note = format!("{room} is registered, with {founder} as its founder");
        self.note_in(index, note, false, clock);
    }
}

/// A `mode` line in words: `alice sets +m (moderated)`, `alice gives op to bob`,
/// `alice bans eve`.
fn mode_text(setter: &Setter, change: &ModeChange) -> String {
    let setter = setter_text(setter);
    match change {
        ModeChange::Flag { on, mode } => format!(
            "{setter} sets {}{} ({})",
            if *on { '+' } else { '-' },
            mode.letter(),
            flag_meaning(*mode, *on)
        ),
        ModeChange::Role { on, role, name } => {
            let role = match role {
                Role::Op => "op",
                Role::Voiced => "voice",
            };
            if *on {
                format!("{setter} gives {role} to {name}")
            } else {
                format!("{setter} takes {role} from {name}")
            }
        }
        ModeChange::Ban { on: true, name } => format!("{setter} bans {name}"),
        ModeChange::Ban { on: false, name } => format!("{setter} unbans {name}"),
    }
}

/// Who made a change, as a line says it.
fn setter_text(setter: &Setter) -> String {
    match setter {
        Setter::Server => "the server".to_owned(),
        Setter::User(name) => name.to_string(),
    }
}

/// What a flag set (or cleared) means, in words.
fn flag_meaning(mode: RoomMode, on: bool) -> &'static str {
    match (mode, on) {
        (RoomMode::InviteOnly, true) => "invite only",
        (RoomMode::InviteOnly, false) => "open to all",
        (RoomMode::Moderated, true) => "moderated",
        (RoomMode::Moderated, false) => "not moderated",
        (RoomMode::Secret, true) => "secret",
        (RoomMode::Secret, false) => "listed",
        (RoomMode::TopicLocked, true) => "only ops set the topic",
        (RoomMode::TopicLocked, false) => "members set the topic",
    }
}

/// A server time as local date and time.
fn local_time(unix_millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_millis).map_or_else(
        || "an unknown date".to_owned(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        },
    )
}
