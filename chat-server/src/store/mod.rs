//! Persistence: the [`Store`] trait (history, accounts, offline messages, registered
//! rooms), its backends,
//! and the [`StoreWriter`] that runs one on its own thread.
//!
//! The broker keeps everything it serves in memory (`crate::history`, `crate::accounts`)
//! and hands every change ([`Write`]) to the writer with a non-blocking send. The writer batches whatever
//! has arrived into one transaction, so a slow disk slows history writes, never
//! delivery. A backend error never stops chat: it is logged once per kind, and
//! `/history` answers `error:` until a write succeeds again.
//!
//! - [`sqlite`]: `--db PATH`, SQLite in WAL mode.

mod rooms;
pub mod sqlite;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_proto::{MessageId, RoomName, Timestamp};

use crate::accounts::Account;
use crate::governance::RoomState;
use crate::metrics::METRICS;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::history::{ConvKey, Message, Retention, wall_clock};

/// The largest id in `batch`, for the store's record of ids given out.
pub fn last_id(batch: &[Write]) -> Option<MessageId> {
    batch.iter().filter_map(Write::id).max()
}

/// Batches waiting for the writer thread before the broker keeps them itself.
const WRITER_QUEUE_LEN: usize = 64;
/// Most messages the broker holds back while the writer is behind; past this the oldest
/// are not written (they stay in memory) and that is logged.
const MAX_BACKLOG: usize = 100_000;
/// How often the writer drops what retention no longer keeps.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Why a store operation failed. The variant is the kind logged once; the text says more.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No room left on the device or under the database's size cap.
    #[error("disk full: {0}")]
    Full(String),
    /// Another process holds a lock.
    #[error("database is locked: {0}")]
    Locked(String),
    /// The file is damaged or not a database.
    #[error("database is corrupt: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Full(_) => "full",
            Self::Locked(_) => "locked",
            Self::Corrupt(_) => "corrupt",
            Self::Other(_) => "other",
        }
    }
}

/// What a store kept from earlier runs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every message still within retention, oldest first.
    pub messages: Vec<Message>,
    /// Per conversation, the largest id retention has dropped.
    pub dropped: Vec<(ConvKey, MessageId)>,
    /// The largest id ever given out, kept even when its message is gone.
    pub last_id: Option<MessageId>,
    /// Every registered name.
    pub accounts: Vec<Account>,
    /// Direct messages waiting for offline users, by recipient's folded name, oldest first.
    pub offline: Vec<(String, Message)>,
    /// Registered rooms.
    pub rooms: Vec<(RoomName, RoomState)>,
    /// Read markers: account's folded name, conversation, id.
    pub markers: Vec<(String, String, MessageId)>,
}

/// One change for the store to make durable.
#[derive(Debug, Clone)]
pub enum Write {
    /// A room message, for history.
    Message(Message),
    /// A new account, or a new hash for one.
    Account(Account),
    /// A direct message kept for an offline registered user (by folded name).
    Offline {
        /// The recipient's folded name.
        recipient: String,
        /// The message; its conversation is `@sender`.
        message: Message,
    },
    /// Offline messages that have been delivered.
    Delivered(Vec<MessageId>),
    /// A registered room as it is now (founder, topic, modes, bans, grants).
    Room(RoomName, Box<RoomState>),
    /// A room no longer registered.
    RoomGone(RoomName),
    /// An account's read marker of a conversation moved forward.
    Marker {
        /// The account's folded name.
        account: String,
        /// The conversation: a room, or `@` and the other's folded name.
        conv: String,
        /// The newest id read.
        id: MessageId,
    },
}

impl Write {
    fn id(&self) -> Option<MessageId> {
        match self {
            Self::Message(m) | Self::Offline { message: m, .. } => Some(m.id),
            Self::Account(_)
            | Self::Delivered(_)
            | Self::Room(..)
            | Self::RoomGone(_)
            | Self::Marker { .. } => None,
        }
    }
}

/// A place where history and accounts outlive the process. Runs on the writer's thread,
/// so it may block.
pub trait Store: Send + 'static {
    /// Where it lives, for log lines (a path, an address).
    fn location(&self) -> String;
    /// Drops what `retention` no longer keeps, then reads the rest back.
    fn load(&mut self, retention: &Retention, now: Timestamp) -> Result<Loaded, StoreError>;
    /// Applies `batch`, in order, all or nothing.
    fn apply(&mut self, batch: &[Write]) -> Result<(), StoreError>;
    /// Drops what `retention` no longer keeps.
    fn prune(&mut self, retention: &Retention, now: Timestamp) -> Result<(), StoreError>;
}

/// The broker's handle on the writer thread.
#[derive(Debug)]
pub struct StoreWriter {
    /// Closed by dropping: the writer then writes what is queued and ends.
    tx: mpsc::Sender<Vec<Write>>,
    /// Changes the writer has not taken yet, oldest first.
    backlog: Vec<Write>,
    /// The last write's error, if it failed; `None` while writes succeed.
    health: watch::Receiver<Option<String>>,
}

/// Starts the writer thread for `store`; awaiting the handle waits until everything
/// handed over is written, which happens once the [`StoreWriter`] is dropped.
pub fn spawn(
    mut store: Box<dyn Store>,
    retention: Retention,
) -> (StoreWriter, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<Write>>(WRITER_QUEUE_LEN);
    let (health_tx, health) = watch::channel(None);
    let thread = tokio::task::spawn_blocking(move || {
        let location = store.location();
        let mut logged = HashSet::new();
        let mut pruned_at = Instant::now();
        while let Some(mut batch) = rx.blocking_recv() {
            // One transaction for everything that queued up while the last one ran.
            while let Ok(more) = rx.try_recv() {
                batch.extend(more);
            }
            let started = Instant::now();
            let mut result = store.apply(&batch);
            METRICS
                .store_write_seconds
                .observe(started.elapsed().as_secs_f64());
            if result.is_ok() && pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = Instant::now();
                result = store.prune(&retention, wall_clock().0);
            }
            match result {
                Ok(()) => {
                    if health_tx.borrow().is_some() {
                        info!(store = %location, "history store writes again");
                    }
                    health_tx.send_replace(None);
                }
                Err(e) => {
                    if logged.insert(e.kind()) {
                        error!(store = %location, error = %e, "history store failed; chat goes on");
                    }
                    health_tx.send_replace(Some(e.to_string()));
                }
            }
        }
    });
    let writer = StoreWriter {
        tx,
        backlog: Vec::new(),
        health,
    };
    (writer, thread)
}

impl StoreWriter {
    /// Hands `write` over, or keeps it until the writer has room; never waits.
    pub fn push(&mut self, write: Write) {
        if self.backlog.len() >= MAX_BACKLOG {
            // Room messages can go (they stay in memory); the rest cannot.
            let before = self.backlog.len();
            self.backlog.retain(|w| !matches!(w, Write::Message(_)));
            warn!(
                dropped = before - self.backlog.len(),
                "history store is too far behind; skipping history writes (history stays in memory)"
            );
        }
        self.backlog.push(write);
    }

    /// Sends the backlog to the writer if it has room; never waits.
    pub fn flush(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(std::mem::take(&mut self.backlog)),
            Err(mpsc::error::TrySendError::Full(())) => {}
            Err(mpsc::error::TrySendError::Closed(())) => self.backlog.clear(),
        }
    }

    /// Whether messages are waiting for the writer to have room.
    pub fn is_behind(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Waits until the writer has room, then hands it the backlog. Cancel safe.
    pub async fn flush_when_ready(&mut self) {
        if let Ok(permit) = self.tx.reserve().await {
            permit.send(std::mem::take(&mut self.backlog));
        }
    }

    /// Why the store is failing, if it is.
    pub fn failure(&self) -> Option<String> {
        self.health.borrow().clone()
    }
}
