//! Logging in and accounts: the throttle, admission through the backend, the welcome
//! with offline mail, `/register` and `/password`.

use std::net::IpAddr;

use bytes::BytesMut;
use chat_proto::{Conv, HistoryLine, RoomName, ServerLine, UserName, encode_line};
use tokio::sync::oneshot;
use tracing::info;

use super::{Admitting, Broker, MAX_JOIN_BATCH};
use crate::accounts::Account;
use crate::backend::{Attempt, Auth};
use crate::config::Presence;
use crate::history::Message;
use crate::roster::ConnId;
use crate::sendq::Outbox;

/// Why `/register` and `/password` are refused by a server without a store.
const NO_ACCOUNTS: &str = "accounts need a server started with --db, so they survive a restart";

impl Broker {
    /// Answers a login line on `reply`: open, refused, or (counted against the
    /// throttle by the backend, across the chat) a hash to check the password against.
    pub(super) fn authenticate(
        &mut self,
        name: UserName,
        addr: IpAddr,
        with_password: bool,
        reply: oneshot::Sender<Auth>,
    ) {
        let account = self.accounts.as_ref().and_then(|a| a.get(&name));
        let auth = match (account, with_password) {
            (None, false) => Auth::Open,
            (None, true) => Auth::Refused(format!(
                "{name} is not registered; log in with the name alone"
            )),
            (Some(account), _) if account.suspended => {
                Auth::Refused(format!("account {} is suspended", account.name))
            }
            (Some(account), false) => Auth::Refused(format!(
                "name is registered; log in with \"{} <password>\"",
                account.name
            )),
            (Some(account), true) => {
                let phc = account.phc.clone();
                let attempt = Attempt {
                    name,
                    addr,
                    phc,
                    reply,
                };
                return self.backend.attempt(attempt, &mut self.answers);
            }
        };
        let _ = reply.send(auth);
    }

    /// Checks what this node knows (registered, in use here, look-alikes), then asks the
    /// backend to hold the name everywhere; the login goes on in [`Broker::admitted`].
    pub(super) fn join(
        &mut self,
        id: ConnId,
        name: UserName,
        authenticated: bool,
        outbox: Outbox,
        accepted: oneshot::Sender<bool>,
    ) {
        let registered = self
            .accounts
            .as_ref()
            .is_some_and(|a| a.is_registered(&name));
        let refusal = if registered && !authenticated {
            // Registered between this client's authentication and now.
            Some(format!(
                "name is registered; log in with \"{name} <password>\""
            ))
        } else {
            self.login_refusal(&name, authenticated)
        };
        if let Some(reason) = refusal {
            outbox.send_last(&encode_line(ServerLine::Error(reason)));
            let _ = accepted.send(false);
            return;
        }
        let another = self.roster.find(&name).is_some();
        self.admitting.insert(
            id,
            Admitting {
                name: name.clone(),
                outbox,
                accepted,
                authenticated,
            },
        );
        if another {
            // One more session of an account online here: the name is held already,
            // and its mail went to the first session.
            self.admitted(id, &[], None);
        } else {
            let account = authenticated && self.is_registered(&name);
            self.backend.admit(id, &name, account, &mut self.answers);
        }
    }

    /// Why `name` may not log in now: in use (unless this is one more session of a
    /// registered account, `authenticated`, within `--max-sessions`), or too similar.
    fn login_refusal(&self, name: &UserName, authenticated: bool) -> Option<String> {
        let Some(user) = self.roster.find(name) else {
            return self.roster.refusal(name);
        };
        if !(authenticated && self.is_registered(name)) {
            return self.roster.refusal(name);
        }
        let max = self.max_sessions;
        (user.sessions.len() >= max).then(|| {
            format!(
                "{} is logged in on {max} connections, the most this server allows (--max-sessions)",
                user.name
            )
        })
    }

    /// The backend holds the name for `conn`: welcome it, hand it its mail, and announce
    /// it (soon, with others; see [`Broker::flush_joins`]).
    pub(super) fn admitted(
        &mut self,
        conn: ConnId,
        mail: &[Message],
        shared: Option<(usize, Vec<RoomName>)>,
    ) {
        let Some(Admitting {
            name,
            outbox,
            accepted,
            authenticated,
        }) = self.admitting.remove(&conn)
        else {
            return;
        };
        let another = self.roster.find(&name).is_some();
        // Another connection may have taken the name here while the backend was asked.
        if let Some(reason) = self.login_refusal(&name, authenticated) {
            if !another {
                self.backend.withdraw(conn, &name);
            }
            outbox.send_last(&encode_line(ServerLine::Error(reason)));
            let _ = accepted.send(false);
            return;
        }
        // The reader only goes on if it hears yes; if it is gone, nobody has seen this
        // login yet and there is nothing to announce or take back.
        if accepted.send(true).is_err() {
            if !another {
                self.backend.withdraw(conn, &name);
            }
            return;
        }
        // A fresh queue has room: the welcome is always this client's first line, and
        // the mail (up to 100 lines) fits but on a tiny --sendq.
        let welcome = encode_line(ServerLine::Welcome(name.clone()));
        if mail.is_empty() {
            let _ = outbox.send(&welcome);
        } else {
            let mut all = BytesMut::from(&welcome[..]);
            for m in mail {
                all.extend_from_slice(&encode_line(HistoryLine {
                    conv: &Conv::Direct(m.sender.clone()),
                    id: m.id,
                    time: m.time,
                    sender: &m.sender,
                    text: &m.text,
                }));
            }
            all.extend_from_slice(&encode_line(ServerLine::Missed(mail.len())));
            outbox.send_last(&all.freeze());
        }
        if !self.roster.insert(conn, name.clone(), outbox) {
            return self.catch_up(conn);
        }
        if let Some((nodes, rooms)) = shared {
            // Online elsewhere already: announced there; its rooms are carried here too.
            if let Some(user) = self.roster.user_of_mut(conn) {
                user.nodes = nodes;
            }
            for room in rooms {
                if self.roster.join_room(conn, &room) {
                    self.backend.join_quietly(&room, &name);
                }
            }
            return self.catch_up(conn);
        }
        if self.presence == Presence::All {
            self.pending_joins.push((conn, name));
            if self.pending_joins.len() >= MAX_JOIN_BATCH {
                self.flush_joins();
            }
        }
    }

    /// The backend would not hold the name for `conn`.
    pub(super) fn refused(&mut self, conn: ConnId, reason: String) {
        if let Some(admitting) = self.admitting.remove(&conn) {
            admitting
                .outbox
                .send_last(&encode_line(ServerLine::Error(reason)));
            let _ = admitting.accepted.send(false);
        }
    }

    pub(super) fn register(&mut self, id: ConnId, phc: String) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        let reply = match &mut self.accounts {
            None => ServerLine::Error(NO_ACCOUNTS.to_owned()),
            Some(accounts) if accounts.is_registered(&name) => {
                ServerLine::Error(format!("{name} is already registered"))
            }
            Some(accounts) => {
                let account = Account {
                    name: name.clone(),
                    phc,
                    suspended: false,
                };
                accounts.put(account.clone());
                self.backend.put_account(account);
                info!(%name, "registered");
                ServerLine::Registered(name)
            }
        };
        // Behind the account's way to every node: once its owner reads the answer, any
        // node that answers a `/who` afterwards knows the account.
        self.backend
            .reply_after(id, encode_line(reply), &mut self.answers);
    }

    pub(super) fn set_password(&mut self, id: ConnId, phc: String) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        let reply = match &mut self.accounts {
            None => ServerLine::Error(NO_ACCOUNTS.to_owned()),
            Some(accounts) => match accounts.get(&name).cloned() {
                None => ServerLine::Error(format!("{name} is not registered; /register first")),
                Some(mut account) => {
                    account.phc = phc;
                    accounts.put(account.clone());
                    self.backend.put_account(account);
                    info!(%name, "password changed");
                    ServerLine::PasswordChanged
                }
            },
        };
        // Behind the account's way to every node: once its owner reads the answer, any
        // node that answers a `/who` afterwards knows the account.
        self.backend
            .reply_after(id, encode_line(reply), &mut self.answers);
    }
}
