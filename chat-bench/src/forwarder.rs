//! The loopback baseline: a minimal forwarder with the same wire format but none of the
//! server's work. No validation, no broker task, no presence lines, no limits: each reader
//! splits the line at `:` and hands the formatted line straight to the recipients' writer
//! queues. What it reaches is what this machine's loopback and a tokio writer can do, the
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

/// Serves forever on `listener`.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let peers: Peers = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let peers = peers.clone();
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
                route(&peers, &name, line);
            }
            peers
                .write()
                .expect("no panics while holding the lock")
                .remove(&name);
        });
    }
}

fn route(peers: &Peers, sender: &[u8], line: &[u8]) {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return;
    };
    let (dests, text) = (&line[..colon], &line[colon + 1..]);
    let mut out = Vec::with_capacity(8 + sender.len() + text.len());
    out.extend_from_slice(b"from ");
    out.extend_from_slice(sender);
    out.push(b':');
    out.extend_from_slice(text);
    out.push(b'\n');
    let out = Bytes::from(out);
    let peers = peers.read().expect("no panics while holding the lock");
    if dests == b"*" {
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
