//! Rooms and history: `/join`, `/part` and `/history`. Membership here is this node's;
//! the backend tells every member, here and elsewhere.

use chat_proto::{Conv, HistoryRange, RoomName, UserName};

use super::Broker;
use crate::backend::HistoryAsk;
use crate::history::ConvKey;
use crate::roster::ConnId;

impl Broker {
    pub(super) fn join_room(&mut self, id: ConnId, room: RoomName) {
        if !self.roster.join_room(id, &room) {
            return self.error(id, format!("already a member of {room}"));
        }
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        self.backend
            .join_room(id, &room, &name, &self.roster, &mut self.answers);
    }

    pub(super) fn part_room(&mut self, id: ConnId, room: RoomName) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        if !self.roster.part_room(id, &room) {
            return self.error(id, format!("not a member of {room}"));
        }
        // No longer a member, so the backend names the one parting to hear it too.
        self.backend
            .part_room(Some(id), &room, &name, &self.roster, &mut self.answers);
    }

    pub(super) fn history(&mut self, id: ConnId, conv: Conv, range: HistoryRange) {
        let Some(limit) = self.roster.get(id).map(|p| p.outbox.limit()) else {
            return;
        };
        let key = match &conv {
            Conv::Room(room) => Ok(ConvKey::Room(room.clone())),
            Conv::Direct(other) => self.direct_key(id, other),
        };
        match key {
            Ok(key) => {
                let ask = HistoryAsk {
                    from: id,
                    conv,
                    key,
                    range,
                    max_bytes: limit / 2,
                };
                self.backend.history(ask, &mut self.answers);
            }
            Err(reason) => self.error(id, reason),
        }
    }

    /// The conversation between `id` and `other`, if both are accounts: only its two
    /// members can name it, since the asker is always one of them.
    fn direct_key(&self, id: ConnId, other: &UserName) -> Result<ConvKey, String> {
        match self.roster.get(id).map(|p| &p.name) {
            Some(me) if self.is_registered(me) && self.is_registered(other) => {
                Ok(ConvKey::pair(me, other))
            }
            _ => Err(format!(
                "no history is kept for @{other}: direct messages are kept only between two registered accounts"
            )),
        }
    }
}
