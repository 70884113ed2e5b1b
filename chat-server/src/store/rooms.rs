//! Registered rooms in SQLite: one row per room, and its bans and grants in tables of
//! their own, so an operator can read them with `sqlite3`. A room is saved whole at each
//! change that it keeps; changes are rare, and a whole row cannot half-apply.

use chat_proto::{Role, RoomModes, RoomName, Setter, TopicInfo, TopicText, UserName};
use rusqlite::{Connection, Transaction, params};

use crate::governance::RoomState;

/// Every registered room. A row this version cannot read is skipped.
pub fn load(conn: &Connection) -> rusqlite::Result<Vec<(RoomName, RoomState)>> {
    let mut rooms = Vec::new();
    let mut rows = conn.prepare(
        "SELECT name, founder, modes, topic, topic_setter, topic_time FROM rooms ORDER BY name",
    )?;
    let rows = rows.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<i64>>(5)?,
        ))
    })?;
    for row in rows {
        let (name, founder, modes, topic, setter, time) = row?;
        let (Ok(room), Ok(founder), Ok(modes)) = (
            RoomName::parse(&name),
            UserName::parse(&founder),
            modes.parse::<RoomModes>(),
        ) else {
            continue;
        };
        let topic = match (topic, setter, time) {
            (Some(text), Some(setter), Some(time)) => (|| {
                Some(TopicInfo {
                    setter: setter.parse::<Setter>().ok()?,
                    time: chat_proto::Timestamp::from_unix_millis(time)?,
                    text: TopicText::parse(&text).ok()?,
                })
            })(),
            _ => None,
        };
        let mut state = RoomState {
            founder: Some(founder),
            topic,
            modes,
            ..RoomState::default()
        };
        for (folded, name) in names(
            conn,
            "SELECT folded, name, '' FROM room_bans WHERE room = ?1",
            &name,
        )? {
            state.bans.insert(folded, name.0);
        }
        for (folded, (name, role)) in names(
            conn,
            "SELECT folded, name, role FROM room_grants WHERE room = ?1",
            &name,
        )? {
            let role = if role == "op" { Role::Op } else { Role::Voiced };
            state.grants.insert(folded, (name, role));
        }
        rooms.push((room, state));
    }
    Ok(rooms)
}

/// `(folded, (name, third column))` rows of `sql` for `room`, valid names only.
fn names(
    conn: &Connection,
    sql: &str,
    room: &str,
) -> rusqlite::Result<Vec<(String, (UserName, String))>> {
    let mut rows = conn.prepare(sql)?;
    let rows = rows.query_map([room], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (folded, name, extra) = row?;
        if let Ok(name) = UserName::parse(&name) {
            out.push((folded, (name, extra)));
        }
    }
    Ok(out)
}

/// Forgets `room`: no longer registered.
pub fn forget(tx: &Transaction<'_>, room: &RoomName) -> rusqlite::Result<usize> {
    for table in ["rooms", "room_bans", "room_grants"] {
        let column = if table == "rooms" { "name" } else { "room" };
        tx.execute(
            &format!("DELETE FROM {table} WHERE {column} = ?1"),
            [room.as_str()],
        )?;
    }
    Ok(1)
}

/// Saves `room` as `state` says, replacing what was kept.
pub fn save(tx: &Transaction<'_>, room: &RoomName, state: &RoomState) -> rusqlite::Result<usize> {
    forget(tx, room)?;
    let Some(founder) = &state.founder else {
        return Ok(0);
    };
    let topic = state.topic.as_ref();
    tx.execute(
        "INSERT INTO rooms (name, founder, modes, topic, topic_setter, topic_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            room.as_str(),
            founder.as_str(),
            state.modes.to_string(),
            topic.map(|t| t.text.as_str()),
            topic.map(|t| t.setter.to_string()),
            topic.map(|t| t.time.unix_millis()),
        ],
    )?;
    let mut ban =
        tx.prepare_cached("INSERT INTO room_bans (room, folded, name) VALUES (?1, ?2, ?3)")?;
    for (folded, name) in &state.bans {
        ban.execute(params![room.as_str(), folded, name.as_str()])?;
    }
    let mut grant = tx.prepare_cached(
        "INSERT INTO room_grants (room, folded, name, role) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (folded, (name, role)) in &state.grants {
        let role = match role {
            Role::Op => "op",
            Role::Voiced => "voice",
        };
        grant.execute(params![room.as_str(), folded, name.as_str(), role])?;
    }
    Ok(1)
}
