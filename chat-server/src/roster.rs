//! [`Roster`]: who is online and who is in which room, kept in one type so that its
//! indexes (by connection, by user, by name, by skeleton, by room) cannot drift.
//!
//! A [`User`] is a name online: an unregistered name on one connection, or a registered
//! account on up to `--max-sessions` connections ([`Peer`]s, its sessions). Rooms and
//! away are the user's; a line for a user goes to each of its sessions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chat_proto::{MessageText, RoomName, UserName};
use rustc_hash::FxHashMap;
use tokio::time::Instant;

use crate::sendq::Outbox;

/// Identifies one connection for its whole life, unlike a name, which a later
/// connection may reuse while the earlier one's last events are still on their way.
pub type ConnId = u64;

/// Identifies a user while it is online: the connection id of its first session, which
/// no later connection reuses.
type UserId = u64;

/// One logged-in connection.
#[derive(Debug)]
pub struct Peer {
    /// The name as its owner typed it (as registered, for an account).
    pub name: UserName,
    /// Its outgoing queue; the roster holds the only one, so removing the peer closes it.
    pub outbox: Outbox,
    /// When it last sent a message.
    pub active: Instant,
    /// Whether it gets the lines of its own messages too (IRC's `echo-message`).
    pub echo: bool,
    /// Its user.
    user: UserId,
}

/// A user's connections: one, the usual case, held inline rather than in an allocation
/// of its own (every idle client has one).
pub type Sessions = smallvec::SmallVec<[ConnId; 1]>;

/// One name online, with its sessions.
#[derive(Debug)]
pub struct User {
    /// The name as its owner typed it.
    pub name: UserName,
    /// Its connections, oldest first; never empty.
    pub sessions: Sessions,
    /// The rooms it is a member of.
    rooms: BTreeSet<RoomName>,
    /// Its away message, if away. Boxed: every user online has the field, few are away.
    pub away: Option<Box<MessageText>>,
    /// The session that logged the name in, for whom the backend holds it.
    pub holder: ConnId,
    /// How many nodes of a cluster have sessions of it, this one included.
    pub nodes: usize,
}

impl User {
    /// The rooms it is a member of, sorted bytewise.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomName> {
        self.rooms.iter()
    }
}

/// Everyone online and every room with members.
#[derive(Debug, Default)]
pub struct Roster {
    /// Looked up once per recipient of every room message: a connection id is a small
    /// counter nobody outside chooses, so the fast hash is safe and SipHash is waste.
    peers: FxHashMap<ConnId, Peer>,
    /// Every user, by an id nobody outside chooses (fast hash, as for peers).
    users: FxHashMap<UserId, User>,
    /// Looked up once per recipient of every direct message, so hashed (SipHash: names
    /// are chosen by clients) rather than a B-tree's dozen string compares; `/who`
    /// sorts. The exact spelling is the common case and needs no folding.
    by_name: HashMap<UserName, UserId>,
    /// Names are unique under NFKC and case folding.
    by_folded: HashMap<String, UserId>,
    /// With `--strict-names`: the confusable skeleton of each name online.
    skeletons: Option<HashMap<String, UserId>>,
    /// Members of each room by name, sorted bytewise, to their sessions; a room exists
    /// while it has members. Walked for every room message: the sessions are kept here,
    /// not looked up by name, so each recipient costs one id lookup, as with one
    /// session per name.
    rooms: BTreeMap<RoomName, BTreeMap<UserName, Sessions>>,
}

/// What [`Roster::remove`] took away.
#[derive(Debug)]
pub struct Removed {
    /// The connection.
    pub peer: Peer,
    /// If it was its user's last session, the rooms the user was in: the user is gone.
    pub last: Option<Vec<RoomName>>,
    /// The session that logged the name in, for whom the backend holds it.
    pub holder: ConnId,
}

impl Roster {
    /// An empty roster; `strict_names` also refuses confusable look-alikes.
    pub fn new(strict_names: bool) -> Self {
        Self {
            skeletons: strict_names.then(HashMap::new),
            ..Self::default()
        }
    }

    /// Why `name` cannot log in now as a new user, if it cannot.
    pub fn refusal(&self, name: &UserName) -> Option<String> {
        if self.find(name).is_some() {
            return Some(format!("name already in use: {name}"));
        }
        let skeletons = self.skeletons.as_ref()?;
        let similar = skeletons.get(&name.skeleton())?;
        let other = &self.users.get(similar)?.name;
        Some(format!("name too similar to {other}, who is online"))
    }

    /// Adds connection `id` as a session of `name`: a new user if the name is not
    /// online (it passed [`Roster::refusal`]), else one more session of that user.
    /// Whether it is the user's first.
    pub fn insert(&mut self, id: ConnId, name: UserName, outbox: Outbox) -> bool {
        let folded = name.folded();
        let existing = self.by_folded.get(&folded).copied();
        let first = existing.is_none();
        let uid = existing.unwrap_or(id);
        let user = self.users.entry(uid).or_insert_with(|| User {
            name: name.clone(),
            sessions: Sessions::new(),
            rooms: BTreeSet::new(),
            away: None,
            holder: id,
            nodes: 1,
        });
        user.sessions.push(id);
        let name = user.name.clone();
        for room in &user.rooms {
            if let Some(sessions) = self.rooms.get_mut(room).and_then(|m| m.get_mut(&name)) {
                sessions.push(id);
            }
        }
        if first {
            self.by_name.insert(name.clone(), uid);
            self.by_folded.insert(folded, uid);
            if let Some(skeletons) = &mut self.skeletons {
                skeletons.insert(name.skeleton(), uid);
            }
        }
        self.peers.insert(
            id,
            Peer {
                name,
                outbox,
                active: Instant::now(),
                echo: false,
                user: uid,
            },
        );
        first
    }

    /// Takes a connection off the roster; with its user's last session, the user and
    /// its memberships go too.
    pub fn remove(&mut self, id: ConnId) -> Option<Removed> {
        let peer = self.peers.remove(&id)?;
        let user = self.users.get_mut(&peer.user)?;
        user.sessions.retain(|s| *s != id);
        let holder = user.holder;
        if !user.sessions.is_empty() {
            for room in &user.rooms {
                if let Some(sessions) = self.rooms.get_mut(room).and_then(|m| m.get_mut(&user.name))
                {
                    sessions.retain(|s| *s != id);
                }
            }
            return Some(Removed {
                peer,
                last: None,
                holder,
            });
        }
        let user = self.users.remove(&peer.user)?;
        self.by_name.remove(&user.name);
        self.by_folded.remove(&user.name.folded());
        if let Some(skeletons) = &mut self.skeletons {
            skeletons.remove(&user.name.skeleton());
        }
        let rooms: Vec<RoomName> = user.rooms.into_iter().collect();
        for room in &rooms {
            self.leave_room_index(room, &user.name);
        }
        Some(Removed {
            peer,
            last: Some(rooms),
            holder,
        })
    }

    /// The peer on connection `id`.
    pub fn get(&self, id: ConnId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    /// Connection `id` sent a message at `now`.
    pub fn touch(&mut self, id: ConnId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.active = now;
        }
    }

    /// Sets whether connection `id` gets the lines of its own messages too.
    pub fn set_echo(&mut self, id: ConnId, on: bool) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.echo = on;
        }
    }

    /// Connection `id` and its user, in one lookup.
    pub fn peer_and_user(&self, id: ConnId) -> Option<(&Peer, &User)> {
        let peer = self.peers.get(&id)?;
        Some((peer, self.users.get(&peer.user)?))
    }

    /// The user connection `id` is a session of.
    pub fn user_of(&self, id: ConnId) -> Option<&User> {
        let peer = self.peers.get(&id)?;
        self.users.get(&peer.user)
    }

    /// The user connection `id` is a session of, to change.
    pub fn user_of_mut(&mut self, id: ConnId) -> Option<&mut User> {
        let peer = self.peers.get(&id)?;
        let user = peer.user;
        self.users.get_mut(&user)
    }

    /// The user whose name folds like `name`.
    pub fn find(&self, name: &UserName) -> Option<&User> {
        // The exact spelling is the common case and needs no folding.
        let uid = match self.by_name.get(name) {
            Some(uid) => uid,
            None => self.by_folded.get(&name.folded())?,
        };
        self.users.get(uid)
    }

    /// Like [`Roster::find`], but a name not found comes back folded, for whoever
    /// looks further.
    pub fn find_or_fold(&self, name: &UserName) -> Result<&User, String> {
        if let Some(user) = self.by_name.get(name).and_then(|uid| self.users.get(uid)) {
            return Ok(user);
        }
        let folded = name.folded();
        match self
            .by_folded
            .get(&folded)
            .and_then(|uid| self.users.get(uid))
        {
            Some(user) => Ok(user),
            None => Err(folded),
        }
    }

    /// The user whose folded name is `folded`.
    pub fn find_folded(&self, folded: &str) -> Option<&User> {
        self.users.get(self.by_folded.get(folded)?)
    }

    /// The user whose folded name is `folded`, to change.
    pub fn find_folded_mut(&mut self, folded: &str) -> Option<&mut User> {
        let uid = *self.by_folded.get(folded)?;
        self.users.get_mut(&uid)
    }

    /// The sessions of `user`.
    pub fn sessions<'a>(&'a self, user: &'a User) -> impl Iterator<Item = (ConnId, &'a Peer)> + 'a {
        user.sessions
            .iter()
            .filter_map(|id| Some((*id, self.peers.get(id)?)))
    }

    /// Every user, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Every connection, in no particular order.
    pub fn peers(&self) -> impl Iterator<Item = (ConnId, &Peer)> {
        self.peers.iter().map(|(&id, peer)| (id, peer))
    }

    /// Every name online, sorted bytewise.
    pub fn names(&self) -> Vec<&UserName> {
        let mut names: Vec<&UserName> = self.by_name.keys().collect();
        names.sort_unstable();
        names
    }

    /// How many connections are open.
    pub fn online(&self) -> usize {
        self.peers.len()
    }

    /// Makes the user of `id` a member of `room`; `false` if it already was (or is not
    /// online).
    pub fn join_room(&mut self, id: ConnId, room: &RoomName) -> bool {
        let Some(user) = self.user_of_mut(id) else {
            return false;
        };
        if !user.rooms.insert(room.clone()) {
            return false;
        }
        let (name, sessions) = (user.name.clone(), user.sessions.clone());
        self.rooms
            .entry(room.clone())
            .or_default()
            .insert(name, sessions);
        true
    }

    /// Ends the membership of `room` of the user of `id`; `false` if it was not a
    /// member.
    pub fn part_room(&mut self, id: ConnId, room: &RoomName) -> bool {
        let Some(user) = self.user_of_mut(id) else {
            return false;
        };
        if !user.rooms.remove(room) {
            return false;
        }
        let name = user.name.clone();
        self.leave_room_index(room, &name);
        true
    }

    fn leave_room_index(&mut self, room: &RoomName, name: &UserName) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(name);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Whether the user of `id` is a member of `room`.
    pub fn is_member(&self, id: ConnId, room: &RoomName) -> bool {
        self.user_of(id).is_some_and(|u| u.rooms.contains(room))
    }

    /// Every session of a room's members, members sorted bytewise; `None` if the room
    /// has none.
    pub fn members(&self, room: &RoomName) -> Option<impl Iterator<Item = (ConnId, &Peer)>> {
        let members = self.rooms.get(room)?;
        Some(
            members
                .values()
                .flatten()
                .filter_map(|id| Some((*id, self.peers.get(id)?))),
        )
    }

    /// A room's members' names, sorted bytewise; `None` if the room has none.
    pub fn member_names(&self, room: &RoomName) -> Option<Vec<UserName>> {
        Some(self.rooms.get(room)?.keys().cloned().collect())
    }

    /// Every room with members and how many, sorted bytewise.
    pub fn rooms(&self) -> impl Iterator<Item = (&RoomName, usize)> {
        self.rooms
            .iter()
            .map(|(room, members)| (room, members.len()))
    }

    /// The rooms the user of connection `id` is a member of.
    pub fn rooms_of(&self, id: ConnId) -> Vec<RoomName> {
        self.user_of(id)
            .map(|user| user.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sendq;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a valid name")
    }

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).expect("a valid room")
    }

    fn add(roster: &mut Roster, id: ConnId, who: &str) {
        let who = name(who);
        assert_eq!(roster.refusal(&who), None);
        roster.insert(id, who, sendq::channel(1024).0);
    }

    #[test]
    fn names_are_unique_under_folding_and_shown_as_typed() {
        let mut roster = Roster::new(false);
        add(&mut roster, 1, "Bob");
        for taken in ["bob", "BOB", "\u{ff42}\u{ff4f}\u{ff42}"] {
            assert_eq!(
                roster.refusal(&name(taken)),
                Some(format!("name already in use: {taken}"))
            );
        }
        assert_eq!(
            roster.find(&name("bOB")).map(|u| u.sessions.to_vec()),
            Some(vec![1])
        );
        assert_eq!(roster.names(), [&name("Bob")]);
    }

    #[test]
    fn names_are_listed_in_bytewise_order() {
        let mut roster = Roster::new(false);
        for (id, who) in [
            (1, "carol"),
            (2, "Bob"),
            (3, "alice"),
            (4, "\u{e9}mile"),
            (5, "Zed"),
        ] {
            add(&mut roster, id, who);
        }
        let names: Vec<&str> = roster.names().into_iter().map(UserName::as_str).collect();
        assert_eq!(names, ["Bob", "Zed", "alice", "carol", "\u{e9}mile"]);
    }

    #[test]
    fn removing_a_peer_leaves_no_trace_in_any_index() {
        let mut roster = Roster::new(true);
        add(&mut roster, 1, "alice");
        add(&mut roster, 2, "bob");
        assert!(roster.join_room(1, &room("#rust")));
        assert!(!roster.join_room(1, &room("#rust")), "already a member");
        assert!(roster.join_room(1, &room("#go")));
        assert!(roster.join_room(2, &room("#go")));
        let removed = roster.remove(1).expect("online");
        assert_eq!(removed.peer.name, name("alice"));
        assert_eq!(removed.last, Some(vec![room("#go"), room("#rust")]));
        assert_eq!(
            roster
                .rooms()
                .map(|(r, n)| (r.clone(), n))
                .collect::<Vec<_>>(),
            [(room("#go"), 1)],
            "#rust emptied and is gone"
        );
        assert!(roster.find(&name("alice")).is_none());
        add(&mut roster, 3, "\u{430}lice");
        assert_eq!(roster.online(), 2);
    }

    #[test]
    fn an_account_s_sessions_share_its_rooms_and_leave_with_the_last() {
        let mut roster = Roster::new(false);
        add(&mut roster, 1, "alice");
        assert!(
            !roster.insert(2, name("Alice"), sendq::channel(1024).0),
            "a second session"
        );
        assert_eq!(roster.get(2).map(|p| p.name.clone()), Some(name("alice")));
        assert!(roster.join_room(2, &room("#rust")));
        assert!(
            roster.is_member(1, &room("#rust")),
            "membership is the user's"
        );
        let sessions: Vec<ConnId> = roster
            .members(&room("#rust"))
            .into_iter()
            .flatten()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(sessions, [1, 2]);
        assert!(roster.remove(1).is_some_and(|r| r.last.is_none()));
        assert_eq!(roster.names(), [&name("alice")]);
        assert!(
            roster
                .remove(2)
                .is_some_and(|r| r.last == Some(vec![room("#rust")]))
        );
        assert!(roster.members(&room("#rust")).is_none());
        assert!(roster.names().is_empty());
    }

    #[test]
    fn parting_the_last_member_removes_the_room() {
        let mut roster = Roster::new(false);
        add(&mut roster, 1, "alice");
        assert!(!roster.part_room(1, &room("#rust")), "not a member");
        roster.join_room(1, &room("#rust"));
        assert!(roster.is_member(1, &room("#rust")));
        assert!(roster.part_room(1, &room("#rust")));
        assert!(roster.members(&room("#rust")).is_none());
        assert!(!roster.is_member(1, &room("#rust")));
    }
}
