//! [`Roster`]: who is online and who is in which room, kept in one type so that its
//! indexes (by connection, by name, by folded name, by skeleton, by room) cannot drift.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chat_proto::{RoomName, UserName};
use rustc_hash::FxHashMap;

use crate::sendq::Outbox;

/// Identifies one connection for its whole life, unlike a name, which a later
/// connection may reuse while the earlier one's last events are still on their way.
pub type ConnId = u64;

/// One logged-in client.
#[derive(Debug)]
pub struct Peer {
    /// The name as its owner typed it.
    pub name: UserName,
    /// Its outgoing queue; the roster holds the only one, so removing the peer closes it.
    pub outbox: Outbox,
    /// The rooms it is a member of.
    rooms: BTreeSet<RoomName>,
}

/// Everyone online and every room with members.
#[derive(Debug, Default)]
pub struct Roster {
    /// Looked up once per recipient of every room message: a connection id is a small
    /// counter nobody outside chooses, so the fast hash is safe and SipHash is waste.
    peers: FxHashMap<ConnId, Peer>,
    /// Looked up once per recipient of every direct message, so hashed (SipHash: names
    /// are chosen by clients) rather than a B-tree's dozen string compares; `/who`
    /// sorts.
    by_name: HashMap<UserName, ConnId>,
    /// Names are unique under NFKC and case folding.
    by_folded: HashMap<String, ConnId>,
    /// With `--strict-names`: the confusable skeleton of each name online.
    skeletons: Option<HashMap<String, ConnId>>,
    /// Members of each room, sorted bytewise; a room exists while it has members.
    rooms: BTreeMap<RoomName, BTreeMap<UserName, ConnId>>,
}

impl Roster {
    /// An empty roster; `strict_names` also refuses confusable look-alikes.
    pub fn new(strict_names: bool) -> Self {
        Self {
            skeletons: strict_names.then(HashMap::new),
            ..Self::default()
        }
    }

    /// Why `name` cannot log in now, if it cannot.
    pub fn refusal(&self, name: &UserName) -> Option<String> {
        if self.find(name).is_some() {
            return Some(format!("name already in use: {name}"));
        }
        let skeletons = self.skeletons.as_ref()?;
        let similar = skeletons.get(&name.skeleton())?;
        let other = &self.peers[similar].name;
        Some(format!("name too similar to {other}, who is online"))
    }

    /// Adds a peer whose name passed [`Roster::refusal`].
    pub fn insert(&mut self, id: ConnId, name: UserName, outbox: Outbox) {
        self.by_name.insert(name.clone(), id);
        self.by_folded.insert(name.folded(), id);
        if let Some(skeletons) = &mut self.skeletons {
            skeletons.insert(name.skeleton(), id);
        }
        let rooms = BTreeSet::new();
        self.peers.insert(
            id,
            Peer {
                name,
                outbox,
                rooms,
            },
        );
    }

    /// Takes a peer off every index and out of every room; its rooms are returned with it.
    pub fn remove(&mut self, id: ConnId) -> Option<(Peer, Vec<RoomName>)> {
        let mut peer = self.peers.remove(&id)?;
        self.by_name.remove(&peer.name);
        self.by_folded.remove(&peer.name.folded());
        if let Some(skeletons) = &mut self.skeletons {
            skeletons.remove(&peer.name.skeleton());
        }
        let rooms: Vec<RoomName> = std::mem::take(&mut peer.rooms).into_iter().collect();
        for room in &rooms {
            self.leave_room_index(room, &peer.name);
        }
        Some((peer, rooms))
    }

    /// The peer on connection `id`.
    pub fn get(&self, id: ConnId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    /// The peer whose name folds like `name`.
    pub fn find(&self, name: &UserName) -> Option<(ConnId, &Peer)> {
        // The exact spelling is the common case and needs no folding.
        let id = match self.by_name.get(name) {
            Some(&id) => id,
            None => *self.by_folded.get(&name.folded())?,
        };
        Some((id, &self.peers[&id]))
    }

    /// Like [`Roster::find`], but a name not found comes back folded, for whoever
    /// looks further.
    pub fn find_or_fold(&self, name: &UserName) -> Result<(ConnId, &Peer), String> {
        if let Some(&id) = self.by_name.get(name) {
            return Ok((id, &self.peers[&id]));
        }
        let folded = name.folded();
        match self.by_folded.get(&folded) {
            Some(&id) => Ok((id, &self.peers[&id])),
            None => Err(folded),
        }
    }

    /// The peer whose folded name is `folded`.
    pub fn find_folded(&self, folded: &str) -> Option<(ConnId, &Peer)> {
        let id = *self.by_folded.get(folded)?;
        Some((id, &self.peers[&id]))
    }

    /// Every peer, in no particular order.
    pub fn peers(&self) -> impl Iterator<Item = (ConnId, &Peer)> {
        self.peers.iter().map(|(&id, peer)| (id, peer))
    }

    /// Every name online, sorted bytewise.
    pub fn names(&self) -> Vec<&UserName> {
        let mut names: Vec<&UserName> = self.by_name.keys().collect();
        names.sort_unstable();
        names
    }

    /// How many are online.
    pub fn online(&self) -> usize {
        self.peers.len()
    }

    /// Makes `id` a member of `room`; `false` if it already was (or is not online).
    pub fn join_room(&mut self, id: ConnId, room: &RoomName) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        if !peer.rooms.insert(room.clone()) {
            return false;
        }
        let members = self.rooms.entry(room.clone()).or_default();
        members.insert(peer.name.clone(), id);
        true
    }

    /// Ends `id`'s membership of `room`; `false` if it was not a member.
    pub fn part_room(&mut self, id: ConnId, room: &RoomName) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        if !peer.rooms.remove(room) {
            return false;
        }
        let name = peer.name.clone();
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

    /// Whether `id` is a member of `room`.
    pub fn is_member(&self, id: ConnId, room: &RoomName) -> bool {
        self.peers.get(&id).is_some_and(|p| p.rooms.contains(room))
    }

    /// A room's members, sorted bytewise; `None` if the room has none.
    pub fn members(&self, room: &RoomName) -> Option<impl Iterator<Item = (ConnId, &Peer)>> {
        let members = self.rooms.get(room)?;
        Some(members.values().map(|id| (*id, &self.peers[id])))
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

    /// The rooms connection `id` is a member of.
    pub fn rooms_of(&self, id: ConnId) -> Vec<RoomName> {
        self.peers
            .get(&id)
            .map(|peer| peer.rooms.iter().cloned().collect())
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
        assert_eq!(roster.find(&name("bOB")).map(|(id, _)| id), Some(1));
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
        let (peer, rooms) = roster.remove(1).expect("online");
        assert_eq!(peer.name, name("alice"));
        assert_eq!(rooms, [room("#go"), room("#rust")]);
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
