//! Room governance in Redis: a room's [`RoomState`] kept as text under
//! `chat:room:<room>:gov` (so a node that has no member in the room yet reads it before
//! deciding), and [`Change`]s published on the room's channel (`g ...`), in the room's
//! order with its messages, for every node to apply. One item a line; names and texts
//! hold no newline.

use std::fmt::Write as _;

use chat_proto::{
    MessageText, ModeChange, Role, RoomModes, RoomName, Setter, Timestamp, TopicInfo, TopicText,
    UserName,
};

use crate::governance::{Change, RoomState};

/// Where a room's governance lives.
pub fn state_key(room: &RoomName) -> String {
    format!("chat:room:{room}:gov")
}

/// The channel of lines for one user wherever it is: `t <folded name>\n<lines>` (an
/// invite), or `k ...` (a kill: the lines, then the connection closes).
pub const TELL_CHANNEL: &str = "chat:tell";

/// Of `rooms`, those whose modes have `+s`.
pub async fn secret(
    redis: &mut redis::aio::ConnectionManager,
    rooms: &[(RoomName, usize)],
) -> redis::RedisResult<Vec<RoomName>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = rooms.iter().map(|(room, _)| state_key(room)).collect();
    let states: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(redis).await?;
    Ok(rooms
        .iter()
        .zip(states)
        .filter(|(_, state)| {
            state
                .as_deref()
                .is_some_and(|s| decode_state(s).modes.has(chat_proto::RoomMode::Secret))
        })
        .map(|((room, _), _)| room.clone())
        .collect())
}

/// `state` as text, a line per item.
pub fn encode_state(state: &RoomState) -> String {
    let mut out = String::new();
    if let Some(founder) = &state.founder {
        let _ = writeln!(out, "F {founder}");
    }
    let _ = writeln!(out, "M {}", state.modes);
    if let Some(topic) = &state.topic {
        let _ = writeln!(out, "T {}", encode_topic(topic));
    }
    for name in state.bans.values() {
        let _ = writeln!(out, "B {name}");
    }
    for name in state.ops.values() {
        let _ = writeln!(out, "O {name}");
    }
    for name in state.voiced.values() {
        let _ = writeln!(out, "V {name}");
    }
    for (name, role) in state.grants.values() {
        let _ = writeln!(out, "G {} {name}", role.letter());
    }
    for folded in &state.invites {
        let _ = writeln!(out, "I {folded}");
    }
    out
}

/// Reads [`encode_state`] back; a line this version cannot read is skipped.
pub fn decode_state(text: &str) -> RoomState {
    let mut state = RoomState::default();
    for line in text.lines() {
        let Some((kind, rest)) = line.split_once(' ') else {
            continue;
        };
        let name = || UserName::parse(rest).ok();
        match kind {
            "F" => state.founder = name(),
            "M" => state.modes = rest.parse::<RoomModes>().unwrap_or_default(),
            "T" => state.topic = decode_topic(rest),
            "B" | "O" | "V" => {
                let Some(name) = name() else { continue };
                let set = match kind {
                    "B" => &mut state.bans,
                    "O" => &mut state.ops,
                    _ => &mut state.voiced,
                };
                set.insert(name.folded(), name);
            }
            "G" => {
                let Some((letter, name)) = rest.split_once(' ') else {
                    continue;
                };
                let (Ok(name), Some(role)) = (UserName::parse(name), role(letter)) else {
                    continue;
                };
                state.grants.insert(name.folded(), (name, role));
            }
            "I" => {
                state.invites.insert(rest.to_owned());
            }
            _ => {}
        }
    }
    state
}

/// `changes` as text, a line each.
pub fn encode_changes(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        let _ = match change {
            Change::Joined {
                name,
                role,
                announced,
            } => {
                let role = role.map_or('-', Role::letter);
                writeln!(out, "J {role} {} {name}", u8::from(*announced))
            }
            Change::Left(name) => writeln!(out, "L {name}"),
            Change::Role {
                setter,
                name,
                role,
                on,
                account,
            } => writeln!(
                out,
                "R {setter} {} {}",
                u8::from(*account),
                ModeChange::Role {
                    on: *on,
                    role: *role,
                    name: name.clone()
                }
            ),
            Change::Flag { setter, mode, on } => writeln!(
                out,
                "M {setter} {}",
                ModeChange::Flag {
                    on: *on,
                    mode: *mode
                }
            ),
            Change::Ban { setter, name, on } => writeln!(
                out,
                "M {setter} {}",
                ModeChange::Ban {
                    on: *on,
                    name: name.clone()
                }
            ),
            Change::Topic(topic) => writeln!(out, "T {}", encode_topic(topic)),
            Change::TopicCleared(setter) => writeln!(out, "C {setter}"),
            Change::Kick {
                setter,
                name,
                reason,
            } => {
                let reason = reason.as_ref().map_or("", MessageText::as_str);
                writeln!(out, "K {setter} {name} {reason}")
            }
            Change::Invite(name) => writeln!(out, "I {name}"),
            Change::Registered { founder, grants } => {
                let grants: Vec<String> = grants
                    .iter()
                    .map(|(name, role)| format!("{}:{name}", role.letter()))
                    .collect();
                writeln!(out, "F {founder} {}", grants.join(","))
            }
            Change::Unregistered => writeln!(out, "U -"),
        };
    }
    out
}

/// Reads [`encode_changes`] back; a line this version cannot read is skipped.
pub fn decode_changes(text: &str) -> Vec<Change> {
    text.lines().filter_map(decode_change).collect()
}

fn decode_change(line: &str) -> Option<Change> {
    let (kind, rest) = line.split_once(' ')?;
    let name = || UserName::parse(rest).ok();
    Some(match kind {
        "J" => {
            let mut parts = rest.splitn(3, ' ');
            let role = role(parts.next()?);
            let announced = parts.next()? == "1";
            Change::Joined {
                name: UserName::parse(parts.next()?).ok()?,
                role,
                announced,
            }
        }
        "L" => Change::Left(name()?),
        "M" => {
            let (setter, change) = rest.split_once(' ')?;
            let setter = setter.parse::<Setter>().ok()?;
            match change.parse::<ModeChange>().ok()? {
                ModeChange::Flag { on, mode } => Change::Flag { setter, mode, on },
                ModeChange::Role { .. } => return None,
                ModeChange::Ban { on, name } => Change::Ban { setter, name, on },
            }
        }
        "R" => {
            let mut parts = rest.splitn(3, ' ');
            let setter = parts.next()?.parse::<Setter>().ok()?;
            let account = parts.next()? == "1";
            let ModeChange::Role { on, role, name } = parts.next()?.parse().ok()? else {
                return None;
            };
            Change::Role {
                setter,
                name,
                role,
                on,
                account,
            }
        }
        "T" => Change::Topic(decode_topic(rest)?),
        "C" => Change::TopicCleared(rest.parse::<Setter>().ok()?),
        "K" => {
            let mut parts = rest.splitn(3, ' ');
            let setter = parts.next()?.parse::<Setter>().ok()?;
            let name = UserName::parse(parts.next()?).ok()?;
            let reason = match parts.next().unwrap_or("") {
                "" => None,
                reason => Some(MessageText::parse(reason).ok()?),
            };
            Change::Kick {
                setter,
                name,
                reason,
            }
        }
        "I" => Change::Invite(name()?),
        "F" => {
            let (founder, grants) = rest.split_once(' ').unwrap_or((rest, ""));
            let grants = grants
                .split(',')
                .filter(|g| !g.is_empty())
                .map(|g| {
                    let (letter, name) = g.split_once(':')?;
                    Some((UserName::parse(name).ok()?, role(letter)?))
                })
                .collect::<Option<Vec<_>>>()?;
            Change::Registered {
                founder: UserName::parse(founder).ok()?,
                grants,
            }
        }
        "U" => Change::Unregistered,
        _ => return None,
    })
}

fn role(letter: &str) -> Option<Role> {
    match letter {
        "o" => Some(Role::Op),
        "v" => Some(Role::Voiced),
        _ => None,
    }
}

/// `<setter> <unix millis> <text>`.
fn encode_topic(topic: &TopicInfo) -> String {
    format!(
        "{} {} {}",
        topic.setter,
        topic.time.unix_millis(),
        topic.text
    )
}

fn decode_topic(text: &str) -> Option<TopicInfo> {
    let mut parts = text.splitn(3, ' ');
    Some(TopicInfo {
        setter: parts.next()?.parse().ok()?,
        time: Timestamp::from_unix_millis(parts.next()?.parse().ok()?)?,
        text: TopicText::parse(parts.next()?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use chat_proto::RoomMode;

    use super::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a name")
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let mut state = RoomState::new_room();
        state.founder = Some(name("Alice"));
        state.modes.set(RoomMode::Moderated, true);
        state.topic = Some(TopicInfo {
            setter: Setter::Server,
            time: Timestamp::from_unix_millis(5).expect("a time"),
            text: TopicText::parse("a: b").expect("a topic"),
        });
        for (set, who) in [(&mut state.bans, "Eve"), (&mut state.ops, "Alice")] {
            set.insert(name(who).folded(), name(who));
        }
        state.voiced.insert("bob".into(), name("bob"));
        state
            .grants
            .insert("bob".into(), (name("bob"), Role::Voiced));
        state.invites.insert("carol".into());
        assert_eq!(decode_state(&encode_state(&state)), state);
    }

    #[test]
    fn changes_read_back_as_written() {
        let changes = vec![
            Change::Joined {
                name: name("a"),
                role: Some(Role::Op),
                announced: false,
            },
            Change::Joined {
                name: name("b"),
                role: None,
                announced: false,
            },
            Change::Left(name("a")),
            Change::Role {
                setter: Setter::User(name("a")),
                name: name("b"),
                role: Role::Voiced,
                on: true,
                account: true,
            },
            Change::Flag {
                setter: Setter::User(name("a")),
                mode: RoomMode::Secret,
                on: false,
            },
            Change::Ban {
                setter: Setter::Server,
                name: name("Eve"),
                on: true,
            },
            Change::Kick {
                setter: Setter::Server,
                name: name("eve"),
                reason: MessageText::parse("banned: spam").ok(),
            },
            Change::Kick {
                setter: Setter::User(name("a")),
                name: name("eve"),
                reason: None,
            },
            Change::Invite(name("c")),
            Change::TopicCleared(Setter::User(name("Bob"))),
            Change::Registered {
                founder: name("a"),
                grants: vec![(name("a"), Role::Op), (name("b"), Role::Voiced)],
            },
            Change::Registered {
                founder: name("a"),
                grants: vec![],
            },
            Change::Unregistered,
        ];
        assert_eq!(decode_changes(&encode_changes(&changes)), changes);
    }
}
