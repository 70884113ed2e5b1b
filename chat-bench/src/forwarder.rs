//! The loopback baseline: a minimal forwarder with the same wire format but none of the
//! server's work. No validation, no broker task, no presence lines, no ids, no history, no
//! limits: each reader splits the line at `:` and hands the formatted line straight to
//! the recipients' writer queues. `/join #room` makes a member (answered with a bare
//! `names #room`, which is what the bench waits for), and `#room: text` goes to the
//! room's other members. What it reaches is what this machine's loopback and a tokio writer can do, the
//! denominator of every ratio in docs/performance.md. Never expose it: it trusts its input.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::client::LineReader;

type Peers = Arc<RwLock<HashMap<Vec<u8>, mpsc::UnboundedSender<Bytes>>>>;
type Rooms = Arc<RwLock<HashMap<Vec<u8>, Vec<Vec<u8>>>>>;

/// Serves forever on `listener`.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let peers: Peers = Arc::default();
    let rooms: Rooms = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let peers = peers.clone();
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let (read_half, write_half) = stream.into_split();
            let mut reader = LineReader::new(read_half);
            let Ok(Some(name)) = reader.next_line().await else {
                return;
            };
            let name = name.to_vec();
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(Bytes::from(format!(
                "welcome {}\n",
                String::from_utf8_lossy(&name)
            )));
            peers
                .write()
                .expect("no panics while holding the lock")
                .insert(name.clone(), tx);
            tokio::spawn(write(write_half, rx));
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(room) = line.strip_prefix(b"/join ") {
                    rooms
                        .write()
                        .expect("no panics while holding the lock")
                        .entry(room.to_vec())
                        .or_default()
                        .push(name.clone());
                    let mut names = b"names ".to_vec();
                    names.extend_from_slice(room);
                    names.push(b'\n');
                    if let Some(tx) = peers.read().expect("no panics").get(&name) {
                        let _ = tx.send(Bytes::from(names));
                    }
                    continue;
                }
                route(&peers, &rooms, &name, line);
            }
            peers
                .write()
                .expect("no panics while holding the lock")
                .remove(&name);
        });
    }
}

fn route(peers: &Peers, rooms: &Rooms, sender: &[u8], line: &[u8]) {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return;
    };
    let (dests, text) = (&line[..colon], &line[colon + 1..]);
    let room = dests.starts_with(b"#");
    let mut out = Vec::with_capacity(8 + sender.len() + dests.len() + text.len());
    out.extend_from_slice(b"from ");
    out.extend_from_slice(sender);
    if room {
        out.push(b' ');
        out.extend_from_slice(dests);
    }
    out.push(b':');
    out.extend_from_slice(text);
    out.push(b'\n');
    let out = Bytes::from(out);
    let peers = peers.read().expect("no panics while holding the lock");
    if room {
        let rooms = rooms.read().expect("no panics while holding the lock");
        for member in rooms.get(dests).into_iter().flatten() {
            if member.as_slice() != sender {
                if let Some(tx) = peers.get(member) {
                    let _ = tx.send(out.clone());
                }
            }
        }
    } else if dests == b"*" {
        for (name, tx) in peers.iter() {
            if name.as_slice() != sender {
                let _ = tx.send(out.clone());
            }
        }
    } else {
        for dest in dests.split(|&b| b == b',') {
            if let Some(tx) = peers.get(dest) {
                let _ = tx.send(out.clone());
            }
        }
    }
}

async fn write(write_half: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut out = BufWriter::with_capacity(64 * 1024, write_half);
    while let Some(line) = rx.recv().await {
        if out.write_all(&line).await.is_err() {
            return;
        }
        while let Ok(line) = rx.try_recv() {
            if out.write_all(&line).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
}
