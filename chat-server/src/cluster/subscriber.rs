//! The subscriber: reads `chat:all`, this node's channel, `chat:accounts` and the
//! channels of rooms with a member here, and turns what it reads into the broker's
//! [`Answer`]s. It reconnects with backoff (subscribing to everything again) while
//! Redis is away.
//!
//! Replies to this node's users (`/who`, `/names`, `/history`...) come through this
//! node's channel too, published after everything the publisher sent before them: so a
//! reply arrives after every line Redis handled earlier, and `/who` is a barrier across
//! nodes as it is in one process.

use std::collections::HashSet;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_proto::{MessageText, RoomName, Scope, UserName};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{ALL, governance, mail, node_channel, rooms, sessions};
use crate::backend::{Answer, Remote, from_line};
use crate::roster::ConnId;

/// What the publisher asks of the subscriber.
#[derive(Debug)]
pub(super) enum SubCmd {
    /// Subscribe to a room's channel (a member here joined it); answers once subscribed,
    /// so the node hears everything published after.
    Room(RoomName, oneshot::Sender<bool>),
    /// Unsubscribe from a room's channel (its last member here left).
    Leave(RoomName),
}

/// How a room's presence lines treat the connection that caused them, on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Every member gets them.
    All,
    /// Every member but the connection (a joiner, answered with its `names` after).
    Except,
    /// The connection gets them although no longer a member (it parted).
    Plus,
}

/// Presence on a room's channel: `p <node> <conn> <a|e|p>\n<lines>`, `-` for no origin.
pub(super) fn presence_payload(origin: Option<(&str, ConnId)>, mode: Mode, lines: &[u8]) -> Bytes {
    let (node, conn) = origin.unwrap_or(("-", 0));
    let mode = match mode {
        Mode::All => 'a',
        Mode::Except => 'e',
        Mode::Plus => 'p',
    };
    let mut payload = BytesMut::from(format!("p {node} {conn} {mode}\n").as_bytes());
    payload.extend_from_slice(lines);
    payload.freeze()
}

/// One record of a node channel's payload: `<kind> <length> <target>\n<bytes>`, where
/// the kind is `u` (for the user with that folded name), `r` (a reply to that
/// connection), `h` (its history reply), `i` (the answer to its `/whois`), `a` (that
/// connection is admitted; written by a script), `w` (someone elsewhere asks `/whois`;
/// the target says who, and of whom)
/// or `d` (the node is stopping and has now heard everything sent before). A payload
/// holds one or more. The target goes last: a folded name may hold a space (NFKC makes
/// one of `¨`).
pub(super) fn node_record(out: &mut BytesMut, kind: char, target: &str, lines: &[u8]) {
    out.extend_from_slice(format!("{kind} {} {target}\n", lines.len()).as_bytes());
    out.extend_from_slice(lines);
}

/// A pub/sub connection subscribed to `chat:all`, `node`'s channel and `chat:accounts`.
pub(super) async fn subscribe(
    client: &redis::Client,
    node: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(ALL).await?;
    pubsub.subscribe(node_channel(node)).await?;
    pubsub.subscribe(mail::ACCOUNTS_CHANNEL).await?;
    pubsub.subscribe(governance::TELL_CHANNEL).await?;
    pubsub.subscribe(sessions::AWAY).await?;
    Ok(pubsub)
}

/// Reads until `token` is cancelled; see the module docs. Answers wait for room in the
/// broker's answer queue: a node that cannot keep up falls behind on Redis's side, and
/// Redis's own output-buffer limit cuts it off.
pub(super) async fn subscriber(
    first: redis::aio::PubSub,
    client: redis::Client,
    node: String,
    answers: mpsc::Sender<Answer>,
    mut cmds: mpsc::Receiver<SubCmd>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut ready = Some(first);
    let mut rooms: HashSet<RoomName> = HashSet::new();
    loop {
        let session = async {
            let pubsub = match ready.take() {
                Some(pubsub) => pubsub,
                None => subscribe(&client, &node).await?,
            };
            backoff = Duration::from_millis(100);
            read(pubsub, &node, &answers, &mut cmds, &mut rooms).await
        };
        tokio::select! {
            () = token.cancelled() => return,
            ended = session => {
                if let Err(e) = ended {
                    warn!(%node, error = %e, "lost the cluster subscription; reconnecting");
                }
            }
        }
        if !away(backoff, &mut cmds, &mut rooms, &token).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One subscription: subscribes to `rooms` too, then hands the broker what arrives and
/// follows the publisher's room commands, until the connection or the broker goes.
async fn read(
    pubsub: redis::aio::PubSub,
    node: &str,
    answers: &mpsc::Sender<Answer>,
    cmds: &mut mpsc::Receiver<SubCmd>,
    rooms: &mut HashSet<RoomName>,
) -> redis::RedisResult<()> {
    let (mut sink, mut stream) = pubsub.split();
    for room in rooms.iter() {
        sink.subscribe(rooms::channel(room)).await?;
    }
    info!(%node, rooms = rooms.len(), "subscribed to the cluster");
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return Ok(()) };
                for answer in decode(&message, node) {
                    if answers.send(answer).await.is_err() {
                        return Ok(());
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                None => return Ok(()),
                Some(SubCmd::Room(room, done)) => {
                    let subscribed = sink.subscribe(rooms::channel(&room)).await;
                    rooms.insert(room);
                    let _ = done.send(subscribed.is_ok());
                    subscribed?;
                }
                Some(SubCmd::Leave(room)) => {
                    rooms.remove(&room);
                    sink.unsubscribe(rooms::channel(&room)).await?;
                }
            },
        }
    }
}

/// The pause before subscribing again. Room commands are answered at once meanwhile:
/// not subscribed, but remembered (or forgotten) for the next session. `false`: stop.
async fn away(
    pause: Duration,
    cmds: &mut mpsc::Receiver<SubCmd>,
    rooms: &mut HashSet<RoomName>,
    token: &CancellationToken,
) -> bool {
    let pause = tokio::time::sleep(pause);
    tokio::pin!(pause);
    loop {
        tokio::select! {
            () = token.cancelled() => return false,
            () = &mut pause => return true,
            cmd = cmds.recv() => match cmd {
                None => return false,
                Some(SubCmd::Room(room, done)) => {
                    rooms.insert(room);
                    let _ = done.send(false);
                }
                Some(SubCmd::Leave(room)) => {
                    rooms.remove(&room);
                }
            },
        }
    }
}

/// A published message as the broker's answers; none for our own or a malformed one.
fn decode(message: &redis::Msg, node: &str) -> Vec<Answer> {
    let payload = message.get_payload_bytes();
    let channel = message.get_channel_name();
    let decoded = if channel == mail::ACCOUNTS_CHANNEL {
        std::str::from_utf8(payload)
            .ok()
            .and_then(mail::decode_account)
            .map(|account| vec![Answer::Account(account)])
    } else if channel == sessions::AWAY {
        std::str::from_utf8(payload)
            .ok()
            .and_then(sessions::decode_away)
            .map(|(folded, text)| vec![Answer::Away { folded, text }])
    } else if channel == governance::TELL_CHANNEL {
        decode_tell(payload, node).map(|answer| vec![answer])
    } else if let Some(room) = channel.strip_prefix("chat:room:") {
        decode_room(room, payload, node).map(|answer| vec![answer])
    } else if channel == ALL {
        // `origin-node[ sender]\n<lines>`: a node skips its own.
        let split = payload.iter().position(|&b| b == b'\n');
        split.and_then(|split| {
            let head = std::str::from_utf8(&payload[..split]).ok()?;
            let (origin, except) = match head.split_once(' ') {
                Some((origin, sender)) => (origin, Some(sender.to_owned())),
                None => (head, None),
            };
            (origin != node).then(|| {
                vec![Answer::ToAll {
                    lines: Bytes::copy_from_slice(&payload[split + 1..]),
                    except,
                }]
            })
        })
    } else {
        Some(decode_records(payload))
    };
    decoded.unwrap_or_default()
}

/// A room channel's message (`m ...`) or presence (`p ...`).
fn decode_room(room: &str, payload: &[u8], node: &str) -> Option<Answer> {
    let room = RoomName::parse(room).ok()?;
    let payload = std::str::from_utf8(payload).ok()?;
    let here = |origin: &str, conn: &str| -> Option<ConnId> {
        (origin == node).then(|| conn.parse().ok()).flatten()
    };
    if let Some(record) = payload.strip_prefix("g ") {
        let (_node, changes) = record.split_once('\n')?;
        return Some(Answer::Governed {
            room,
            changes: governance::decode_changes(changes),
        });
    }
    if let Some(presence) = payload.strip_prefix("p ") {
        let (head, lines) = presence.split_once('\n')?;
        let mut parts = head.split(' ');
        let conn = here(parts.next()?, parts.next()?);
        let mode = parts.next()?;
        return Some(Answer::Room {
            room,
            lines: Bytes::copy_from_slice(lines.as_bytes()),
            except: conn.filter(|_| mode == "e"),
            plus: conn.filter(|_| mode == "p"),
            id: None,
        });
    }
    let (kind, message) = payload.split_at_checked(2)?;
    let notice = match kind {
        "m " => false,
        "n " => true,
        _ => return None,
    };
    let mut parts = message.splitn(3, ' ');
    let except = here(parts.next()?, parts.next()?);
    let message = rooms::RoomMessage::parse_row(parts.next()?)?;
    let sender = UserName::parse(&message.from).ok()?;
    let text = MessageText::parse(&message.text).ok()?;
    let scope = Scope::Room {
        room: room.clone(),
        id: message.id,
    };
    let lines = from_line(&sender, &scope, &text, notice);
    Some(Answer::Room {
        room,
        lines,
        except,
        plus: None,
        id: Some(message.id),
    })
}

/// A record on [`governance::TELL_CHANNEL`], `<kind> <target>\n<body>`: lines for one
/// user (`t`), a kill (`k`), a copy of what a session of the account on node `<node>`
/// sent (`e`, target `<node>/<folded>`; that node has it already), the account joined
/// (`J`) or left (`P`) the room in the body, or it is online on as many nodes as the
/// body says (`c`).
fn decode_tell(payload: &[u8], node: &str) -> Option<Answer> {
    let split = payload.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&payload[..split]).ok()?;
    let (kind, target) = head.split_once(' ')?;
    let body = &payload[split + 1..];
    let lines = Bytes::copy_from_slice(body);
    let folded = target.to_owned();
    match kind {
        "t" => Some(Answer::ToUser { folded, lines }),
        "k" => Some(Answer::Kill { folded, lines }),
        "e" => {
            let (origin, folded) = target.split_once('/')?;
            (origin != node).then(|| Answer::ToUser {
                folded: folded.to_owned(),
                lines,
            })
        }
        "J" | "P" => Some(Answer::AccountRoom {
            folded,
            room: RoomName::parse(std::str::from_utf8(body).ok()?).ok()?,
            joined: kind == "J",
        }),
        "c" => Some(Answer::AccountNodes {
            folded,
            nodes: std::str::from_utf8(body).ok()?.parse().ok()?,
        }),
        _ => None,
    }
}

/// The records of a node channel's payload; see [`node_record`].
fn decode_records(mut payload: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some(split) = payload.iter().position(|&b| b == b'\n') {
        let Ok(head) = std::str::from_utf8(&payload[..split]) else {
            break;
        };
        let mut parts = head.splitn(3, ' ');
        let (Some(kind), Some(Ok(len)), Some(target)) = (
            parts.next(),
            parts.next().map(str::parse::<usize>),
            parts.next(),
        ) else {
            break;
        };
        let body = &payload[split + 1..];
        let Some(lines) = body.get(..len) else { break };
        let lines = Bytes::copy_from_slice(lines);
        match kind {
            "u" => answers.push(Answer::ToUser {
                folded: target.to_owned(),
                lines,
            }),
            "r" => {
                if let Ok(to) = target.parse() {
                    answers.push(Answer::Reply { to, lines });
                }
            }
            "d" => answers.push(Answer::Drained),
            "h" => {
                if let Ok(to) = target.parse() {
                    answers.push(Answer::History { to, lines });
                }
            }
            "i" => {
                if let Ok(to) = target.parse() {
                    answers.push(Answer::Whois { to, lines });
                }
            }
            "a" => {
                if let Some(admitted) = decode_admission(target, &lines) {
                    answers.push(admitted);
                }
            }
            "w" => {
                if let Some((_, _, folded)) = sessions::parse_whois_target(target) {
                    answers.push(Answer::WhoisAsked {
                        from: Remote(target.to_owned()),
                        folded,
                    });
                }
            }
            _ => {}
        }
        payload = &body[len..];
    }
    answers
}

/// An admission record's body: the name, then the mail kept for it, a line each.
fn decode_admission(conn: &str, body: &[u8]) -> Option<Answer> {
    let conn = conn.parse().ok()?;
    let body = std::str::from_utf8(body).ok()?;
    let mut lines = body.lines();
    let name = UserName::parse(lines.next()?).ok()?;
    let mail = lines.filter_map(|m| mail::decode_mail(&name, m)).collect();
    Some(Answer::Admitted {
        conn,
        mail,
        shared: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_records_read_back_in_order() {
        let mut payload = BytesMut::new();
        node_record(&mut payload, 'u', "bob", b"from alice: hi\n");
        node_record(&mut payload, 'r', "7", b"users alice,bob\n");
        node_record(
            &mut payload,
            'u',
            "\u{5f20}\u{4e09}",
            b"from a: x\nfrom a: y\n",
        );
        let answers = decode_records(&payload);
        let got: Vec<String> = answers
            .iter()
            .map(|a| match a {
                Answer::ToUser { folded, lines } => format!("u {folded} {lines:?}"),
                Answer::Reply { to, lines } => format!("r {to} {lines:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "u bob b\"from alice: hi\\n\"",
                "r 7 b\"users alice,bob\\n\"",
                "u \u{5f20}\u{4e09} b\"from a: x\\nfrom a: y\\n\"",
            ]
        );
    }

    #[test]
    fn a_cut_record_is_dropped_not_misread() {
        let mut payload = BytesMut::new();
        node_record(&mut payload, 'u', "bob", b"from alice: hi\n");
        payload.truncate(payload.len() - 2);
        assert!(decode_records(&payload).is_empty());
    }
}
