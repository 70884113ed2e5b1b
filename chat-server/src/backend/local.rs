//! [`Local`]: the backend of a single server, where this process is the whole chat.
//! History and offline mail live in memory, mirrored to SQLite with `--db` by the store
//! writer's thread; ids come from one [`IdClock`]. Every answer is given at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use anyhow::Context;
use chat_proto::{
    Conv, MessageId, MessageText, RoomName, Scope, ServerLine, Timestamp, UserName, encode_line,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tracing::error;

use super::{
    Answer, Answers, Attempt, Auth, Backend, Departure, Direct, HISTORY_OFF, HistoryAsk,
    MAX_OFFLINE_PER_RECIPIENT, Pending, Remote, from_line, left_room_line, users_line,
};
use crate::accounts::{Account, Throttle, too_many_attempts};
use crate::config::Config;
use crate::governance::{Change, RoomState};
use crate::history::{ConvKey, History, IdClock, Message, wall_clock};
use crate::roster::{ConnId, Roster};
use crate::sendq::Line;
use crate::store::sqlite::SqliteStore;
use crate::store::{self, Store, StoreWriter, Write};

/// This process as the whole chat.
#[derive(Debug)]
pub struct Local {
    /// `None` with `--history off`.
    history: Option<History>,
    /// With `--db`: mirrors history, accounts and mail to disk; the thread ends once the
    /// writer is dropped and has written everything handed to it.
    store: Option<(StoreWriter, tokio::task::JoinHandle<()>)>,
    ids: IdClock,
    /// Loaded at start, taken by the broker; `None` without a store.
    accounts: Option<Vec<Account>>,
    /// Registered rooms loaded at start, taken by the broker.
    rooms: Vec<(RoomName, RoomState)>,
    /// Read markers, by account's folded name and conversation.
    markers: HashMap<(String, String), MessageId>,
    /// Direct messages for offline registered users, by folded name, oldest first.
    offline: HashMap<String, VecDeque<Message>>,
    throttle: Throttle,
}

impl Local {
    /// Opens the store `config.db` names (if any) and loads what it kept. Fails, with a
    /// message fit for an operator, on a database that is in use, damaged or not ours.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let store = match (&config.db, &config.history) {
            (Some(path), Some(_)) => {
                Some(Box::new(SqliteStore::open(path, config.db_max_bytes)?) as Box<dyn Store>)
            }
            _ => None,
        };
        Self::with_store(config, store)
    }

    /// A backend whose history is kept in `store` (if any) instead of the one
    /// `config.db` names.
    pub fn with_store(config: &Config, store: Option<Box<dyn Store>>) -> anyhow::Result<Self> {
        let mut local = Self {
            history: config.history.clone().map(History::new),
            store: None,
            ids: IdClock::default(),
            accounts: None,
            rooms: Vec::new(),
            markers: HashMap::new(),
            offline: HashMap::new(),
            throttle: Throttle::default(),
        };
        // With `--history off` there is nothing to store.
        let (Some(mut store), Some(retention)) = (store, config.history.clone()) else {
            return Ok(local);
        };
        let now = wall_clock().0;
        let loaded = store
            .load(&retention, now)
            .with_context(|| format!("reading history from {}", store.location()))?;
        if let Some(history) = &mut local.history {
            for (conv, through) in loaded.dropped {
                history.mark_dropped(conv, through);
            }
            for message in loaded.messages {
                history.push(message, now);
            }
        }
        local.ids = IdClock::after(loaded.last_id);
        local.accounts = Some(loaded.accounts);
        local.rooms = loaded.rooms;
        local.markers = loaded
            .markers
            .into_iter()
            .map(|(account, conv, id)| ((account, conv), id))
            .collect();
        for (recipient, message) in loaded.offline {
            local
                .offline
                .entry(recipient)
                .or_default()
                .push_back(message);
        }
        local.store = Some(store::spawn(store, retention));
        Ok(local)
    }

    fn write(&mut self, write: Write) {
        if let Some((store, _)) = &mut self.store {
            store.push(write);
        }
    }

    /// Adds `message` to the history, and to the store's.
    fn keep(&mut self, message: Message, now: Timestamp) {
        if let Some(history) = &mut self.history {
            if let Some((store, _)) = &mut self.store {
                store.push(Write::Message(message.clone()));
            }
            history.push(message, now);
        }
    }

    /// A direct message with its id, kept in the `@` history of two accounts if `pair`.
    fn direct_message(
        &mut self,
        sender: &UserName,
        to: &UserName,
        text: &MessageText,
        pair: bool,
    ) -> Message {
        let (time, micros) = wall_clock();
        let message = Message {
            conv: ConvKey::pair(sender, to),
            id: self.ids.next(micros),
            time,
            sender: sender.clone(),
            text: text.clone(),
        };
        if pair {
            self.keep(message.clone(), time);
        }
        message
    }
}

impl Backend for Local {
    fn answers(&mut self) -> Option<tokio::sync::mpsc::Receiver<Answer>> {
        None
    }

    fn accounts(&mut self) -> Option<Vec<Account>> {
        self.accounts.take()
    }

    fn registered_rooms(&mut self) -> Vec<(RoomName, RoomState)> {
        std::mem::take(&mut self.rooms)
    }

    fn admit(&mut self, conn: ConnId, name: &UserName, _account: bool, out: &mut Answers) {
        let mail: Vec<Message> = self
            .offline
            .remove(&name.folded())
            .map(Vec::from)
            .unwrap_or_default();
        if !mail.is_empty() {
            self.write(Write::Delivered(mail.iter().map(|m| m.id).collect()));
        }
        out.push_back(Answer::Admitted {
            conn,
            mail,
            shared: None,
        });
    }

    fn attempt(&mut self, attempt: Attempt, out: &mut Answers) {
        let Attempt {
            name,
            addr,
            phc,
            reply,
        } = attempt;
        let auth = match self.throttle.attempt(&name, addr, Instant::now()) {
            Ok(()) => Auth::Verify(phc),
            Err(wait) => Auth::Refused(too_many_attempts(wait)),
        };
        out.push_back(Answer::Attempt { reply, auth });
    }

    fn forgive(&mut self, name: &UserName, addr: IpAddr) {
        self.throttle.forgive(name, addr);
    }

    fn withdraw(&mut self, _conn: ConnId, _name: &UserName) {}

    fn depart(&mut self, departure: Departure, _here: &Roster, out: &mut Answers) {
        let Departure {
            name,
            rooms,
            reason,
            farewell,
            ..
        } = departure;
        for room in rooms {
            let lines = left_room_line(&room, &name, reason.as_ref());
            out.push_back(Answer::Room {
                room,
                lines,
                except: None,
                plus: None,
                id: None,
            });
        }
        if let Some(lines) = farewell {
            out.push_back(Answer::ToAll {
                lines,
                except: None,
            });
        }
    }

    fn send_elsewhere(
        &mut self,
        _from: ConnId,
        _sender: &UserName,
        _lines: bytes::Bytes,
        _out: &mut Answers,
    ) {
    }

    fn direct(&mut self, direct: Direct, out: &mut Answers) {
        let Direct {
            from,
            sender,
            text,
            away,
            kept,
            ..
        } = direct;
        for to in &kept {
            self.direct_message(&sender, to, &text, true);
        }
        let (mut stored, mut full, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for to in away {
            if !to.registered {
                unknown.push(to.name);
                continue;
            }
            let recipient = to.folded;
            if self
                .offline
                .get(&recipient)
                .is_some_and(|m| m.len() >= MAX_OFFLINE_PER_RECIPIENT)
            {
                full.push(to.name);
                continue;
            }
            let message = self.direct_message(&sender, &to.name, &text, to.pair);
            self.offline
                .entry(recipient.clone())
                .or_default()
                .push_back(message.clone());
            self.write(Write::Offline { recipient, message });
            stored.push(to.name);
        }
        if !(stored.is_empty() && full.is_empty() && unknown.is_empty()) {
            out.push_back(Answer::Direct {
                to: from,
                stored,
                full,
                unknown,
            });
        }
    }

    fn say(
        &mut self,
        from: ConnId,
        room: &RoomName,
        sender: &UserName,
        text: &MessageText,
        notice: bool,
        out: &mut Answers,
    ) {
        let (time, micros) = wall_clock();
        let id = self.ids.next(micros);
        let scope = Scope::Room {
            room: room.clone(),
            id,
        };
        let lines = from_line(sender, &scope, text, notice);
        out.push_back(Answer::Room {
            room: room.clone(),
            lines,
            except: Some(from),
            plus: None,
            id: Some(id),
        });
        if self.history.is_some() {
            let message = Message {
                conv: ConvKey::Room(room.clone()),
                id,
                time,
                sender: sender.clone(),
                text: text.clone(),
            };
            self.keep(message, time);
        }
    }

    fn join_room(
        &mut self,
        from: ConnId,
        room: &RoomName,
        name: &UserName,
        here: &Roster,
        out: &mut Answers,
    ) {
        let joined = encode_line(ServerLine::JoinedRoom {
            room: room.clone(),
            name: name.clone(),
        });
        out.push_back(Answer::Room {
            room: room.clone(),
            lines: joined,
            except: None,
            plus: None,
            id: None,
        });
        if let Some(names) = here.member_names(room) {
            let lines = encode_line(ServerLine::Names {
                room: room.clone(),
                names,
            });
            out.push_back(Answer::Reply { to: from, lines });
        }
    }

    fn part_room(
        &mut self,
        from: Option<ConnId>,
        room: &RoomName,
        _name: &UserName,
        left: Line,
        _here: &Roster,
        out: &mut Answers,
    ) {
        out.push_back(Answer::Room {
            room: room.clone(),
            lines: left,
            except: None,
            plus: from,
            id: None,
        });
    }

    fn tell_room(
        &mut self,
        room: &RoomName,
        lines: Line,
        except: Option<ConnId>,
        out: &mut Answers,
    ) {
        out.push_back(Answer::Room {
            room: room.clone(),
            lines,
            except,
            plus: None,
            id: None,
        });
    }

    fn govern(
        &mut self,
        room: &RoomName,
        changes: Vec<Change>,
        after: &RoomState,
        out: &mut Answers,
    ) {
        if changes.iter().any(Change::is_kept) {
            self.write(match after.is_registered() {
                true => Write::Room(room.clone(), Box::new(after.clone())),
                false => Write::RoomGone(room.clone()),
            });
        }
        out.push_back(Answer::Governed {
            room: room.clone(),
            changes,
        });
    }

    fn leave_quietly(&mut self, _room: &RoomName, _name: &UserName, _here: &Roster) {}

    fn join_quietly(&mut self, _room: &RoomName, _name: &UserName) {}

    fn account_room(&mut self, _name: &UserName, _room: &RoomName, _joined: bool) {}

    fn echo(&mut self, _name: &UserName, _lines: Line) {}

    fn kill_elsewhere(&mut self, _name: &UserName, _lines: Line) {}

    fn fetch_room(&mut self, from: ConnId, room: &RoomName, line: Pending, out: &mut Answers) {
        out.push_back(Answer::Fetched {
            to: from,
            room: room.clone(),
            line,
            found: None,
        });
    }

    fn set_away(&mut self, _name: &UserName, _text: Option<&MessageText>) {}

    fn whois(&mut self, from: ConnId, name: &UserName, out: &mut Answers) {
        out.push_back(Answer::Whois {
            to: from,
            lines: not_online(name),
        });
    }

    fn reply_remote(&mut self, _to: Remote, _lines: Line) {}

    fn read_marker(
        &mut self,
        from: ConnId,
        account: &UserName,
        conv: Conv,
        key: String,
        id: Option<MessageId>,
        out: &mut Answers,
    ) {
        let folded = account.folded();
        let place = (folded.clone(), key);
        let Some(id) = id else {
            let id = self.markers.get(&place).copied();
            let lines = encode_line(ServerLine::Read { conv, id });
            return out.push_back(Answer::Reply { to: from, lines });
        };
        if self.markers.get(&place).is_some_and(|&old| old >= id) {
            return;
        }
        self.write(Write::Marker {
            account: place.0.clone(),
            conv: place.1.clone(),
            id,
        });
        self.markers.insert(place, id);
        let lines = encode_line(ServerLine::Read { conv, id: Some(id) });
        out.push_back(Answer::ToUser { folded, lines });
    }

    fn tell(
        &mut self,
        from: ConnId,
        name: &UserName,
        _lines: Line,
        _sent: Line,
        out: &mut Answers,
    ) {
        self.kill(from, name, Line::new(), out);
    }

    fn kill(&mut self, from: ConnId, name: &UserName, _lines: Line, out: &mut Answers) {
        out.push_back(Answer::Reply {
            to: from,
            lines: not_online(name),
        });
    }

    fn reply_after(&mut self, to: ConnId, lines: bytes::Bytes, out: &mut Answers) {
        out.push_back(Answer::Reply { to, lines });
    }

    fn who(&mut self, from: ConnId, away: Option<String>, here: &Roster, out: &mut Answers) {
        let names = here.names().into_iter().cloned().collect();
        let lines = users_line(names, away.as_deref());
        out.push_back(Answer::Reply { to: from, lines });
    }

    fn rooms(&mut self, from: ConnId, hidden: &[RoomName], here: &Roster, out: &mut Answers) {
        let rooms = here
            .rooms()
            .filter(|(room, _)| !hidden.contains(room))
            .map(|(r, n)| (r.clone(), n))
            .collect();
        let lines = encode_line(ServerLine::Rooms(rooms));
        out.push_back(Answer::Reply { to: from, lines });
    }

    fn history(&mut self, ask: HistoryAsk, out: &mut Answers) {
        let HistoryAsk {
            from,
            conv,
            key,
            range,
            max_bytes,
        } = ask;
        let failure = self.store.as_ref().and_then(|(s, _)| s.failure());
        let reply = match (&mut self.history, failure) {
            (None, _) => Err(HISTORY_OFF.to_owned()),
            (Some(_), Some(failure)) => Err(format!("history is unavailable: {failure}")),
            (Some(history), None) => Ok(history
                .reply(&key, &conv, range, wall_clock().0, max_bytes)
                .lines
                .freeze()),
        };
        let lines = reply.unwrap_or_else(|reason| encode_line(ServerLine::Error(reason)));
        out.push_back(Answer::History { to: from, lines });
    }

    fn put_account(&mut self, account: Account) {
        self.write(Write::Account(account));
    }

    fn is_busy(&self) -> bool {
        false
    }

    fn wake(&mut self) -> BoxFuture<'_, ()> {
        async move {
            match &mut self.store {
                Some((store, _)) if store.is_behind() => store.flush_when_ready().await,
                _ => std::future::pending().await,
            }
        }
        .boxed()
    }

    fn flush(&mut self) {
        if let Some((store, _)) = &mut self.store {
            store.flush();
        }
    }

    fn drain(&mut self, out: &mut Answers) {
        out.push_back(Answer::Drained);
    }

    fn node_stopping(&mut self, _here: &Roster) {}

    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        async move {
            // Every accepted message goes to the store before the writer is let go.
            let Some((mut store, thread)) = self.store else {
                return;
            };
            while store.is_behind() {
                store.flush_when_ready().await;
            }
            drop(store);
            if let Err(e) = thread.await {
                error!(error = %e, "the history store writer panicked");
            }
        }
        .boxed()
    }
}

/// `error: <name> is not online`.
fn not_online(name: &UserName) -> Line {
    encode_line(ServerLine::Error(format!("{name} is not online")))
}
