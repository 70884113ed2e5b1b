//! Room governance: a room's [`RoomState`] (roles, topic, modes, bans, invites, its
//! founder if registered), the one place that decides who may do what in a room, and
//! the [`Change`]s those decisions make.
//!
//! Everything here is pure: the broker hands in the room's state, its members and who
//! asks ([`Actor`]), and gets back either the refusal for `error:` or the changes to
//! carry. Every node applies the same changes in the room's order with
//! [`RoomState::apply`], so one rule holds alike in one process and across a cluster.

use std::collections::{BTreeMap, BTreeSet};

use chat_proto::{
    MessageText, ModeChange, Role, RoomMode, RoomModes, RoomName, ServerLine, Setter, TopicInfo,
    TopicText, UserName,
};

use crate::history::wall_clock;
use crate::sendq::Note;

/// Who asks: their name, whether it is a registered account they logged in to, and
/// whether it is a server operator's (`--oper`).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The name.
    pub name: &'a UserName,
    /// Logged in to a registered account.
    pub account: bool,
    /// A server operator: counts as op in every room.
    pub oper: bool,
}

/// A room's governance. Names are kept by folded form (as names compare), with the
/// spelling to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomState {
    /// The founder's account, for a registered room.
    pub founder: Option<UserName>,
    /// The topic, if set.
    pub topic: Option<TopicInfo>,
    /// The modes.
    pub modes: RoomModes,
    /// Banned names.
    pub bans: BTreeMap<String, UserName>,
    /// Members who are ops now.
    pub ops: BTreeMap<String, UserName>,
    /// Members who are voiced now.
    pub voiced: BTreeMap<String, UserName>,
    /// In a registered room, the accounts given op or voice, which get it back at every
    /// join.
    pub grants: BTreeMap<String, (UserName, Role)>,
    /// Names invited, each for one join.
    pub invites: BTreeSet<String>,
}

/// One change to a room, as every member is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `name` joined, holding `role` (a new room's creator, or a registered room's
    /// grant), having used an invite if it had one.
    Joined {
        /// The joiner.
        name: UserName,
        /// The role it holds from the start.
        role: Option<Role>,
        /// Whether others are told of that role (`mode <#room> * +o <name>`): a grant
        /// in a registered room, not a new room's creator.
        announced: bool,
    },
    /// `name` left (part, disconnect): its role ends.
    Left(UserName),
    /// A role given or taken.
    Role {
        /// Who did it.
        setter: Setter,
        /// The member.
        name: UserName,
        /// The role.
        role: Role,
        /// Given or taken.
        on: bool,
        /// The member is a registered account: a registered room keeps its roles.
        account: bool,
    },
    /// A flag set or cleared.
    Flag {
        /// Who did it.
        setter: Setter,
        /// The flag.
        mode: RoomMode,
        /// Set or cleared.
        on: bool,
    },
    /// A ban made or lifted.
    Ban {
        /// Who did it.
        setter: Setter,
        /// The name.
        name: UserName,
        /// Made or lifted.
        on: bool,
    },
    /// The topic set.
    Topic(TopicInfo),
    /// The topic cleared, by this setter.
    TopicCleared(Setter),
    /// A member removed.
    Kick {
        /// Who did it.
        setter: Setter,
        /// The member.
        name: UserName,
        /// Why, if said.
        reason: Option<MessageText>,
    },
    /// Someone invited, for one join.
    Invite(UserName),
    /// The room registered, with this founder, keeping the roles these accounts hold.
    Registered {
        /// The founder's account.
        founder: UserName,
        /// The accounts among the members with a role, and their roles.
        grants: Vec<(UserName, Role)>,
    },
    /// The room no longer registered.
    Unregistered,
}

impl Change {
    /// The line members are told, if any.
    pub fn line(&self, room: &RoomName) -> Option<ServerLine> {
        let room = room.clone();
        let mode = |setter: &Setter, change| ServerLine::Mode {
            room: room.clone(),
            setter: setter.clone(),
            change,
        };
        match self {
            Self::Joined {
                name,
                role: Some(role),
                announced: true,
            } => Some(mode(
                &Setter::Server,
                ModeChange::Role {
                    on: true,
                    role: *role,
                    name: name.clone(),
                },
            )),
            Self::Joined { .. } | Self::Left(_) | Self::Invite(_) | Self::Unregistered => None,
            Self::Role {
                setter,
                name,
                role,
                on,
                ..
            } => Some(mode(
                setter,
                ModeChange::Role {
                    on: *on,
                    role: *role,
                    name: name.clone(),
                },
            )),
            Self::Flag {
                setter,
                mode: flag,
                on,
            } => Some(mode(
                setter,
                ModeChange::Flag {
                    on: *on,
                    mode: *flag,
                },
            )),
            Self::Ban { setter, name, on } => Some(mode(
                setter,
                ModeChange::Ban {
                    on: *on,
                    name: name.clone(),
                },
            )),
            Self::Topic(topic) => Some(ServerLine::Topic {
                room,
                topic: Some(topic.clone()),
            }),
            Self::TopicCleared(_) => Some(ServerLine::Topic { room, topic: None }),
            Self::Kick {
                setter,
                name,
                reason,
            } => Some(ServerLine::Kicked {
                room,
                name: name.clone(),
                setter: setter.clone(),
                reason: reason.clone(),
            }),
            Self::Registered { founder, .. } => Some(ServerLine::RoomRegistered {
                room,
                founder: founder.clone(),
            }),
        }
    }

    /// What IRC clients are told of this change that its native line does not say.
    pub fn note(&self) -> Option<Note<'_>> {
        match self {
            Self::TopicCleared(Setter::User(name)) => Some(Note::ClearedBy(name.as_str())),
            _ => None,
        }
    }

    /// Whether a registered room keeps what this change makes (its founder, topic,
    /// modes, bans and grants), as opposed to who is in it now.
    pub fn is_kept(&self) -> bool {
        !matches!(
            self,
            Self::Joined { .. } | Self::Left(_) | Self::Kick { .. } | Self::Invite(_)
        )
    }

    /// The member this change removes from the room, if any.
    pub fn removes(&self) -> Option<&UserName> {
        match self {
            Self::Kick { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl RoomState {
    /// A room just created by a join: `+t`.
    pub fn new_room() -> Self {
        Self {
            modes: RoomModes::NEW_ROOM,
            ..Self::default()
        }
    }

    /// Whether the room is registered.
    pub fn is_registered(&self) -> bool {
        self.founder.is_some()
    }

    /// The role `name` holds now, op first.
    pub fn role(&self, name: &UserName) -> Option<Role> {
        let folded = name.folded();
        if self.ops.contains_key(&folded) {
            Some(Role::Op)
        } else if self.voiced.contains_key(&folded) {
            Some(Role::Voiced)
        } else {
            None
        }
    }

    /// Whether `name` is this room's founder.
    pub fn is_founder(&self, name: &UserName) -> bool {
        self.founder
            .as_ref()
            .is_some_and(|founder| founder.folded() == name.folded())
    }

    /// The `roles <#room> ...` line: members with a role, sorted bytewise by name.
    pub fn roles_line(&self, room: &RoomName) -> ServerLine {
        let mut members: Vec<(Role, UserName)> = self
            .ops
            .values()
            .map(|name| (Role::Op, name.clone()))
            .chain(
                self.voiced
                    .iter()
                    .filter(|(folded, _)| !self.ops.contains_key(*folded))
                    .map(|(_, name)| (Role::Voiced, name.clone())),
            )
            .collect();
        members.sort_by(|a, b| a.1.as_str().cmp(b.1.as_str()));
        ServerLine::Roles {
            room: room.clone(),
            members,
        }
    }

    /// The `bans <#room> ...` line, sorted bytewise.
    pub fn bans_line(&self, room: &RoomName) -> ServerLine {
        let mut names: Vec<UserName> = self.bans.values().cloned().collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ServerLine::Bans {
            room: room.clone(),
            names,
        }
    }

    /// Applies `change`. Everything it needs is in the change, so every node (and the
    /// copy kept in Redis) comes to the same state from the same changes.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Joined { name, role, .. } => {
                let folded = name.folded();
                self.invites.remove(&folded);
                self.ops.remove(&folded);
                self.voiced.remove(&folded);
                match role {
                    Some(Role::Op) => self.ops.insert(folded, name.clone()),
                    Some(Role::Voiced) => self.voiced.insert(folded, name.clone()),
                    None => None,
                };
            }
            Change::Left(name) | Change::Kick { name, .. } => {
                let folded = name.folded();
                self.ops.remove(&folded);
                self.voiced.remove(&folded);
            }
            Change::Role {
                name,
                role,
                on,
                account,
                ..
            } => {
                let folded = name.folded();
                let held = match role {
                    Role::Op => &mut self.ops,
                    Role::Voiced => &mut self.voiced,
                };
                if *on {
                    held.insert(folded.clone(), name.clone());
                } else {
                    held.remove(&folded);
                }
                if self.is_registered() && *account {
                    self.regrant(&folded, name);
                }
            }
            Change::Flag { mode, on, .. } => {
                self.modes.set(*mode, *on);
            }
            Change::Ban { name, on, .. } => {
                if *on {
                    self.bans.insert(name.folded(), name.clone());
                } else {
                    self.bans.remove(&name.folded());
                }
            }
            Change::Topic(topic) => self.topic = Some(topic.clone()),
            Change::TopicCleared(_) => self.topic = None,
            Change::Invite(name) => {
                self.invites.insert(name.folded());
            }
            Change::Registered { founder, grants } => {
                self.founder = Some(founder.clone());
                self.grants = grants
                    .iter()
                    .map(|(name, role)| (name.folded(), (name.clone(), *role)))
                    .collect();
            }
            Change::Unregistered => {
                self.founder = None;
                self.grants.clear();
            }
        }
    }

    /// Records the role `name` holds now as its account's grant.
    fn regrant(&mut self, folded: &str, name: &UserName) {
        let role = if self.ops.contains_key(folded) {
            Some(Role::Op)
        } else if self.voiced.contains_key(folded) {
            Some(Role::Voiced)
        } else {
            None
        };
        match role {
            Some(role) => self.grants.insert(folded.to_owned(), (name.clone(), role)),
            None => self.grants.remove(folded),
        };
    }

    /// Whether `actor` counts as an op here.
    fn is_op(&self, actor: Actor<'_>) -> bool {
        actor.oper || self.ops.contains_key(&actor.name.folded())
    }

    /// Refuses unless `actor` is an op here.
    fn need_op(&self, room: &RoomName, actor: Actor<'_>) -> Result<(), String> {
        if self.is_op(actor) {
            Ok(())
        } else {
            Err(format!("you need op in {room} for that"))
        }
    }

    /// Whether `actor` may send to the room: not moderated, or an op or voiced.
    pub fn may_speak(&self, actor: Actor<'_>) -> Result<(), String> {
        if !self.modes.has(RoomMode::Moderated)
            || self.is_op(actor)
            || self.voiced.contains_key(&actor.name.folded())
        {
            return Ok(());
        }
        Err("the room is moderated (+m): you need voice (+v) or op to speak".to_owned())
    }
}

/// The members of a room, by folded name, as the deciding node knows them.
pub type Members = BTreeMap<String, UserName>;

/// The changes of a `/join` by `actor` into a room with `state` (none: no such room yet)
/// and `members`, or why it is refused.
pub fn join(
    room: &RoomName,
    state: Option<&RoomState>,
    members: &Members,
    actor: Actor<'_>,
) -> Result<Change, String> {
    let name = actor.name.clone();
    let Some(state) = state.filter(|state| state.is_registered() || !members.is_empty()) else {
        return Ok(Change::Joined {
            name,
            role: Some(Role::Op),
            announced: false,
        });
    };
    let folded = name.folded();
    let granted = if state.is_founder(&name) && actor.account {
        Some(Role::Op)
    } else if actor.account {
        state.grants.get(&folded).map(|(_, role)| *role)
    } else {
        None
    };
    if state.bans.contains_key(&folded) && !actor.oper {
        return Err(format!("you are banned from {room}"));
    }
    if state.modes.has(RoomMode::InviteOnly)
        && granted.is_none()
        && !actor.oper
        && !state.invites.contains(&folded)
    {
        return Err(format!(
            "{room} is invite only (+i): an op must /invite you first"
        ));
    }
    Ok(Change::Joined {
        name,
        role: granted,
        announced: granted.is_some(),
    })
}

/// `/op`, `/deop`, `/voice`, `/devoice`.
#[allow(clippy::too_many_arguments)] // The rule's inputs, each needed: no natural group.
pub fn set_role(
    room: &RoomName,
    state: &RoomState,
    members: &Members,
    actor: Actor<'_>,
    target: &UserName,
    role: Role,
    on: bool,
    is_account: impl Fn(&UserName) -> bool,
) -> Result<Vec<Change>, String> {
    state.need_op(room, actor)?;
    let member = member(room, members, target)?;
    if !on && role == Role::Op && state.is_founder(member) && !actor.oper {
        return Err(founder_protected(room, member));
    }
    let held = match role {
        Role::Op => &state.ops,
        Role::Voiced => &state.voiced,
    };
    if held.contains_key(&member.folded()) == on {
        return Ok(Vec::new());
    }
    Ok(vec![Change::Role {
        setter: Setter::User(actor.name.clone()),
        name: member.clone(),
        role,
        on,
        account: is_account(member),
    }])
}

/// `/topic <#room> <text>`, or `/topic <#room> -delete` (`text` is `None`).
pub fn set_topic(
    room: &RoomName,
    state: &RoomState,
    members: &Members,
    actor: Actor<'_>,
    text: Option<TopicText>,
) -> Result<Vec<Change>, String> {
    if !actor.oper && !members.contains_key(&actor.name.folded()) {
        return Err(format!("you are not in {room}"));
    }
    if state.modes.has(RoomMode::TopicLocked) && !state.is_op(actor) {
        return Err(format!(
            "{room} is +t: you need op in {room} to set its topic"
        ));
    }
    let setter = Setter::User(actor.name.clone());
    Ok(vec![match text {
        Some(text) => Change::Topic(TopicInfo {
            setter,
            time: wall_clock().0,
            text,
        }),
        None => Change::TopicCleared(setter),
    }])
}

/// `/mode <#room> <±flags>`: one change per flag that changes, in `imst` order.
pub fn set_flags(
    room: &RoomName,
    state: &RoomState,
    actor: Actor<'_>,
    asked: &[(bool, RoomMode)],
) -> Result<Vec<Change>, String> {
    state.need_op(room, actor)?;
    let mut wanted = state.modes;
    for &(on, mode) in asked {
        wanted.set(mode, on);
    }
    Ok(RoomMode::ALL
        .into_iter()
        .filter(|&mode| wanted.has(mode) != state.modes.has(mode))
        .map(|mode| Change::Flag {
            setter: Setter::User(actor.name.clone()),
            mode,
            on: wanted.has(mode),
        })
        .collect())
}

/// `/kick <#room> <name> [reason]`.
pub fn kick(
    room: &RoomName,
    state: &RoomState,
    members: &Members,
    actor: Actor<'_>,
    target: &UserName,
    reason: Option<MessageText>,
) -> Result<Vec<Change>, String> {
    state.need_op(room, actor)?;
    let member = member(room, members, target)?;
    if state.is_founder(member) && !actor.oper {
        return Err(founder_protected(room, member));
    }
    Ok(vec![Change::Kick {
        setter: Setter::User(actor.name.clone()),
        name: member.clone(),
        reason,
    }])
}

/// `/ban` and `/unban`: a banned member is kicked too.
pub fn ban(
    room: &RoomName,
    state: &RoomState,
    members: &Members,
    actor: Actor<'_>,
    target: &UserName,
    on: bool,
) -> Result<Vec<Change>, String> {
    state.need_op(room, actor)?;
    let folded = target.folded();
    if on && state.is_founder(target) && !actor.oper {
        return Err(founder_protected(room, target));
    }
    if state.bans.contains_key(&folded) == on {
        return Ok(Vec::new());
    }
    let name = match (on, state.bans.get(&folded)) {
        (false, Some(banned)) => banned.clone(),
        _ => target.clone(),
    };
    let mut changes = vec![Change::Ban {
        setter: Setter::User(actor.name.clone()),
        name,
        on,
    }];
    if let (true, Some(member)) = (on, members.get(&folded)) {
        changes.push(Change::Kick {
            setter: Setter::Server,
            name: member.clone(),
            reason: MessageText::parse("banned").ok(),
        });
    }
    Ok(changes)
}

/// `/invite <name> <#room>`; the caller checks `target` is online.
pub fn invite(
    room: &RoomName,
    state: &RoomState,
    members: &Members,
    actor: Actor<'_>,
    target: &UserName,
) -> Result<Vec<Change>, String> {
    if !actor.oper && !members.contains_key(&actor.name.folded()) {
        return Err(format!("you are not in {room}"));
    }
    if state.modes.has(RoomMode::InviteOnly) {
        state.need_op(room, actor)?;
    }
    if let Some(member) = members.get(&target.folded()) {
        return Err(format!("{member} is already in {room}"));
    }
    Ok(vec![Change::Invite(target.clone())])
}

/// `/register-room <#room>`.
pub fn register(
    room: &RoomName,
    state: &RoomState,
    actor: Actor<'_>,
    is_account: impl Fn(&UserName) -> bool,
) -> Result<Vec<Change>, String> {
    if let Some(founder) = &state.founder {
        return Err(format!("{room} is already registered, by {founder}"));
    }
    if !actor.account {
        return Err(format!(
            "only a registered account can register {room}: /register <password> first"
        ));
    }
    state.need_op(room, actor)?;
    let grants = state
        .voiced
        .values()
        .map(|name| (name, Role::Voiced))
        .chain(state.ops.values().map(|name| (name, Role::Op)))
        .filter(|(name, _)| is_account(name))
        .map(|(name, role)| (name.clone(), role))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    Ok(vec![Change::Registered {
        founder: actor.name.clone(),
        grants,
    }])
}

/// `/unregister-room <#room>`: its founder, or a server operator.
pub fn unregister(
    room: &RoomName,
    state: &RoomState,
    actor: Actor<'_>,
) -> Result<Vec<Change>, String> {
    let Some(founder) = &state.founder else {
        return Err(format!("{room} is not registered"));
    };
    let founder_here = actor.account && state.is_founder(actor.name);
    if !actor.oper && !founder_here {
        return Err(format!(
            "only {founder}, who founded {room}, can unregister it"
        ));
    }
    Ok(vec![Change::Unregistered])
}

/// `target` as a member of the room, or why not.
fn member<'a>(
    room: &RoomName,
    members: &'a Members,
    target: &UserName,
) -> Result<&'a UserName, String> {
    members
        .get(&target.folded())
        .ok_or_else(|| format!("{target} is not in {room}"))
}

fn founder_protected(room: &RoomName, founder: &UserName) -> String {
    format!("{founder} founded {room}: only a server operator can do that to them")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a name")
    }

    fn room() -> RoomName {
        RoomName::parse("#rust").expect("a room")
    }

    fn members(names: &[&str]) -> Members {
        names.iter().map(|n| (name(n).folded(), name(n))).collect()
    }

    fn actor(name: &UserName) -> Actor<'_> {
        Actor {
            name,
            account: true,
            oper: false,
        }
    }

    /// A room whose ops are `ops`, its other members `others`.
    fn state(ops: &[&str]) -> RoomState {
        let mut state = RoomState::new_room();
        for op in ops {
            state.ops.insert(name(op).folded(), name(op));
        }
        state
    }

    #[test]
    fn the_first_joiner_of_a_room_is_its_op_and_later_ones_are_not() {
        let alice = name("alice");
        let first = join(&room(), None, &Members::new(), actor(&alice));
        assert!(matches!(
            first,
            Ok(Change::Joined {
                role: Some(Role::Op),
                announced: false,
                ..
            })
        ));
        let bob = name("bob");
        let later = join(
            &room(),
            Some(&state(&["alice"])),
            &members(&["alice"]),
            actor(&bob),
        );
        assert!(matches!(later, Ok(Change::Joined { role: None, .. })));
    }

    #[test]
    fn bans_match_folded_names_and_invite_only_takes_an_invite_or_a_grant() {
        let mut s = state(&["alice"]);
        s.bans.insert(name("Eve").folded(), name("Eve"));
        let eve = name("EVE");
        assert!(join(&room(), Some(&s), &members(&["alice"]), actor(&eve)).is_err());
        s.modes.set(RoomMode::InviteOnly, true);
        let bob = name("bob");
        assert!(join(&room(), Some(&s), &members(&["alice"]), actor(&bob)).is_err());
        s.invites.insert(bob.folded());
        assert!(join(&room(), Some(&s), &members(&["alice"]), actor(&bob)).is_ok());
        s.invites.clear();
        s.founder = Some(name("alice"));
        s.grants.insert(bob.folded(), (bob.clone(), Role::Voiced));
        let joined = join(&room(), Some(&s), &members(&["alice"]), actor(&bob));
        assert!(matches!(
            joined,
            Ok(Change::Joined {
                role: Some(Role::Voiced),
                announced: true,
                ..
            })
        ));
    }

    #[test]
    fn a_topic_is_cleared_under_the_rules_that_set_it() {
        let mut s = state(&["alice"]);
        let m = members(&["alice", "bob"]);
        let (alice, bob) = (name("alice"), name("bob"));
        let topic = TopicText::parse("hello").expect("a topic");
        let set = set_topic(&room(), &s, &m, actor(&alice), Some(topic)).expect("an op sets");
        s.apply(&set[0]);
        assert!(s.topic.is_some());
        assert!(
            set_topic(&room(), &s, &m, actor(&bob), None).is_err(),
            "+t: not by a member without op"
        );
        let cleared = set_topic(&room(), &s, &m, actor(&alice), None).expect("an op clears");
        assert_eq!(cleared, [Change::TopicCleared(Setter::User(alice.clone()))]);
        assert_eq!(cleared[0].note(), Some(Note::ClearedBy("alice")));
        assert_eq!(
            cleared[0].line(&room()),
            Some(ServerLine::Topic {
                room: room(),
                topic: None
            })
        );
        s.apply(&cleared[0]);
        assert_eq!(s.topic, None);
    }

    #[test]
    fn only_an_operator_touches_the_founder() {
        let mut s = state(&["alice", "bob"]);
        s.founder = Some(name("alice"));
        let m = members(&["alice", "bob"]);
        let (alice, bob) = (name("alice"), name("bob"));
        assert!(kick(&room(), &s, &m, actor(&bob), &alice, None).is_err());
        assert!(ban(&room(), &s, &m, actor(&bob), &alice, true).is_err());
        assert!(
            set_role(
                &room(),
                &s,
                &m,
                actor(&bob),
                &alice,
                Role::Op,
                false,
                |_| true
            )
            .is_err()
        );
        let root = name("root");
        let oper = Actor {
            oper: true,
            ..actor(&root)
        };
        assert!(kick(&room(), &s, &m, oper, &alice, None).is_ok());
    }

    #[test]
    fn flags_change_in_imst_order_and_only_when_they_change() {
        let s = state(&["alice"]);
        let alice = name("alice");
        let asked = [
            (true, RoomMode::Secret),
            (true, RoomMode::InviteOnly),
            (true, RoomMode::TopicLocked),
        ];
        let changes = set_flags(&room(), &s, actor(&alice), &asked).expect("an op");
        let flags: Vec<RoomMode> = changes
            .iter()
            .map(|c| match c {
                Change::Flag { mode, .. } => *mode,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(flags, [RoomMode::InviteOnly, RoomMode::Secret]);
        let bob = name("bob");
        assert!(set_flags(&room(), &s, actor(&bob), &asked).is_err());
    }

    #[test]
    fn banning_a_member_kicks_it_as_the_server() {
        let s = state(&["alice"]);
        let (alice, eve) = (name("alice"), name("Eve"));
        let changes = ban(
            &room(),
            &s,
            &members(&["alice", "eve"]),
            actor(&alice),
            &eve,
            true,
        )
        .expect("an op");
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[1].line(&room()).map(|l| l.to_string()).as_deref(),
            Some("kicked #rust eve *: banned")
        );
    }

    #[test]
    fn registering_keeps_the_roles_that_accounts_hold() {
        let mut s = state(&["alice", "guest"]);
        s.voiced.insert("bob".into(), name("bob"));
        let alice = name("alice");
        let changes = register(&room(), &s, actor(&alice), |n| n.as_str() != "guest")
            .expect("alice is an op with an account");
        s.apply(&changes[0]);
        let kept: Vec<&str> = s.grants.values().map(|(n, _)| n.as_str()).collect();
        assert_eq!(kept, ["alice", "bob"]);
        assert_eq!(
            s.roles_line(&room()).to_string(),
            "roles #rust @alice,+bob,@guest"
        );
        s.apply(&Change::Left(name("guest")));
        assert_eq!(s.roles_line(&room()).to_string(), "roles #rust @alice,+bob");
    }
}
