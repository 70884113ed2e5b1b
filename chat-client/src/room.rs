//! [`Room`]: what the client knows of a room from the server's lines: its members and
//! their roles (protocol v3), its topic and its modes. Pure state, kept per buffer.

use std::collections::{BTreeSet, HashSet};

use chat_proto::{ModeChange, Role, RoomModes, UserName};

use crate::sanitize::SafeText;

/// One room as far as the client knows it.
#[derive(Debug, Clone, Default)]
pub struct Room {
    members: BTreeSet<UserName>,
    /// Roles by folded name: a `mode` line may spell a name as the op typed it, not as its
    /// owner does. A set, not a map, because IRC users may hold op and voice at once.
    roles: HashSet<(String, Role)>,
    /// The topic, made safe to draw.
    topic: Option<SafeText>,
    /// The modes, once the server has said them.
    modes: Option<RoomModes>,
}

impl Room {
    /// The members, sorted as names sort.
    pub fn members(&self) -> &BTreeSet<UserName> {
        &self.members
    }

    /// A `names` line: these are the members now; roles of those gone go with them.
    pub fn set_members(&mut self, names: impl IntoIterator<Item = UserName>) {
        self.members = names.into_iter().collect();
        let present: HashSet<String> = self.members.iter().map(UserName::folded).collect();
        self.roles.retain(|(name, _)| present.contains(name));
    }

    /// A `roles` line: these are all the roles now.
    pub fn set_roles(&mut self, roles: &[(Role, UserName)]) {
        self.roles = roles
            .iter()
            .map(|(role, name)| (name.folded(), *role))
            .collect();
    }

    /// Someone joined.
    pub fn joined(&mut self, name: UserName) {
        self.members.insert(name);
    }

    /// Someone left or was kicked: their roles end with their membership.
    pub fn left(&mut self, name: &UserName) {
        self.members.remove(name);
        let folded = name.folded();
        self.roles.retain(|(held, _)| *held != folded);
    }

    /// We are no longer in the room: nobody is known to be in it.
    pub fn clear(&mut self) {
        self.members.clear();
        self.roles.clear();
    }

    /// We joined the room again: the server sends its topic and modes anew, and a topic
    /// cleared meanwhile is not sent at all.
    pub fn rejoined(&mut self) {
        self.topic = None;
        self.modes = None;
    }

    /// The highest role `name` holds.
    pub fn role(&self, name: &UserName) -> Option<Role> {
        let folded = name.folded();
        [Role::Op, Role::Voiced]
            .into_iter()
            .find(|role| self.roles.contains(&(folded.clone(), *role)))
    }

    /// A `mode` line's change: roles and flags are kept; bans are not listed here.
    pub fn apply(&mut self, change: &ModeChange) {
        match change {
            ModeChange::Role {
                on: true,
                role,
                name,
            } => {
                self.roles.insert((name.folded(), *role));
            }
            ModeChange::Role {
                on: false,
                role,
                name,
            } => {
                self.roles.remove(&(name.folded(), *role));
            }
            ModeChange::Flag { on, mode } => {
                // Unknown modes stay unknown: one flag says nothing of the others.
                if let Some(modes) = &mut self.modes {
                    modes.set(*mode, *on);
                }
            }
            ModeChange::Ban { .. } => {}
        }
    }

    /// The topic, if one is set.
    pub fn topic(&self) -> Option<&SafeText> {
        self.topic.as_ref()
    }

    /// Sets (or clears) the topic.
    pub fn set_topic(&mut self, topic: Option<SafeText>) {
        self.topic = topic;
    }

    /// The modes, once known.
    pub fn modes(&self) -> Option<RoomModes> {
        self.modes
    }

    /// A `mode <#room> +<flags>` reply: the modes now.
    pub fn set_modes(&mut self, modes: RoomModes) {
        self.modes = Some(modes);
    }

    /// The user list: ops first, then voiced members, then the rest, each group in name
    /// order (as in WeeChat), with each member's role.
    pub fn nick_list(&self) -> Vec<(Option<Role>, &UserName)> {
        let mut list: Vec<(Option<Role>, &UserName)> = self
            .members
            .iter()
            .map(|name| (self.role(name), name))
            .collect();
        // Stable: each group keeps the members' name order.
        list.sort_by_key(|(role, _)| match role {
            Some(Role::Op) => 0,
            Some(Role::Voiced) => 1,
            None => 2,
        });
        list
    }

    /// Whether anyone holds a role, so the list needs a column for prefixes.
    pub fn has_roles(&self) -> bool {
        !self.roles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::RoomMode;

    use super::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a valid name")
    }

    fn room(members: &[&str]) -> Room {
        let mut room = Room::default();
        room.set_members(members.iter().map(|m| name(m)));
        room
    }

    fn listed(room: &Room) -> Vec<String> {
        room.nick_list()
            .into_iter()
            .map(|(role, name)| {
                format!(
                    "{}{name}",
                    role.map_or(String::new(), |r| r.prefix().to_string())
                )
            })
            .collect()
    }

    #[test]
    fn ops_come_first_then_voiced_then_the_rest_each_in_name_order() {
        let mut room = room(&["dave", "alice", "carol", "bob", "eve"]);
        room.set_roles(&[
            (Role::Voiced, name("dave")),
            (Role::Op, name("eve")),
            (Role::Voiced, name("bob")),
            (Role::Op, name("carol")),
        ]);
        assert_eq!(listed(&room), ["@carol", "@eve", "+bob", "+dave", "alice"]);
        assert!(room.has_roles());
    }

    #[test]
    fn mode_lines_give_and_take_roles_whatever_the_spelling() {
        let mut room = room(&["Alice", "bob"]);
        let change = |on, role, who: &str| ModeChange::Role {
            on,
            role,
            name: name(who),
        };
        room.apply(&change(true, Role::Op, "ALICE"));
        room.apply(&change(true, Role::Voiced, "bob"));
        assert_eq!(listed(&room), ["@Alice", "+bob"]);
        room.apply(&change(true, Role::Voiced, "alice"));
        room.apply(&change(false, Role::Op, "alice"));
        assert_eq!(listed(&room), ["+Alice", "+bob"]);
        room.apply(&change(false, Role::Voiced, "bob"));
        room.apply(&ModeChange::Ban {
            on: true,
            name: name("bob"),
        });
        assert_eq!(listed(&room), ["+Alice", "bob"]);
    }

    #[test]
    fn a_role_ends_with_its_membership() {
        let mut room = room(&["alice", "bob"]);
        room.set_roles(&[(Role::Op, name("alice")), (Role::Voiced, name("bob"))]);
        room.left(&name("bob"));
        room.joined(name("bob"));
        assert_eq!(listed(&room), ["@alice", "bob"]);
        room.set_members([name("bob")]);
        room.joined(name("alice"));
        assert_eq!(listed(&room), ["alice", "bob"]);
        assert!(!room.has_roles());
        room.set_roles(&[(Role::Op, name("bob"))]);
        room.clear();
        assert!(room.members().is_empty() && !room.has_roles());
    }

    #[test]
    fn flags_change_known_modes_only() {
        let mut room = Room::default();
        let moderated = ModeChange::Flag {
            on: true,
            mode: RoomMode::Moderated,
        };
        room.apply(&moderated);
        assert_eq!(room.modes(), None);
        room.set_modes(RoomModes::NEW_ROOM);
        room.apply(&moderated);
        assert_eq!(room.modes().map(|m| m.to_string()), Some("+mt".into()));
        room.set_topic(Some(SafeText::new("hi")));
        room.rejoined();
        assert_eq!((room.modes(), room.topic()), (None, None));
    }
}
