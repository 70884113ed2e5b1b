//! What the server is doing, for Prometheus (`--metrics-addr`): `GET /metrics` in the
//! OpenMetrics text format and `GET /healthz`.
//!
//! One set per process, as Prometheus clients usually keep ([`METRICS`]): counting is an
//! atomic add on a handle made once, so the hot paths take no lock. No label carries a
//! user or room name: the series stay few whatever the chat's size.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::broker::BrokerEvent;

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Listener {
    /// The native protocol, plain.
    Native,
    /// The native protocol over TLS.
    Tls,
    /// IRC, plain.
    Irc,
    /// IRC over TLS.
    IrcTls,
}

/// Label values in lower case, as Prometheus names go (`listener="irc_tls"`).
macro_rules! label_values {
    ($type:ty { $($variant:ident => $value:literal),* $(,)? }) => {
        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(match self {
                    $(Self::$variant => $value),*
                })
            }
        }
    };
}

label_values!(Listener { Native => "native", Tls => "tls", Irc => "irc", IrcTls => "irc_tls" });
label_values!(Refusal {
    Full => "full",
    Taken => "taken",
    Password => "password",
    Throttled => "throttled",
    Suspended => "suspended",
    Timeout => "timeout",
    Other => "other",
});
label_values!(Kind { Direct => "direct", Room => "room", Everyone => "everyone" });

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: Listener,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Refusal {
    /// No room: `--max-clients`, `--max-per-ip`.
    Full,
    /// The name is online already, or too like one that is.
    Taken,
    /// A wrong or missing password.
    Password,
    /// The login throttle.
    Throttled,
    /// A suspended account.
    Suspended,
    /// No login within the handshake timeout.
    Timeout,
    /// Anything else: an invalid name or line, too many sessions.
    Other,
}

impl Refusal {
    /// The kind of a refusal's reason, as the server words it.
    pub fn of(reason: &str) -> Self {
        if reason.contains("too many login") {
            Refusal::Throttled
        } else if reason.contains("password") || reason.contains("is registered") {
            Refusal::Password
        } else if reason.contains("suspended") {
            Refusal::Suspended
        } else if reason.contains("timed out") {
            Refusal::Timeout
        } else if reason.contains("in use") || reason.contains("too similar") {
            Refusal::Taken
        } else if reason.contains("full") || reason.contains("too many connections") {
            Refusal::Full
        } else {
            Refusal::Other
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Refusal,
}

/// What a message was addressed to.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Kind {
    /// A user by name.
    Direct = 0,
    /// A room.
    Room,
    /// `*`: everyone online.
    Everyone,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: Kind,
}

/// Counters per [`Kind`], made once.
#[derive(Debug)]
pub struct ByKind {
    direct: Counter,
    room: Counter,
    everyone: Counter,
}

impl ByKind {
    fn new(family: &Family<KindLabel, Counter>) -> Self {
        let of = |kind| family.get_or_create(&KindLabel { kind }).clone();
        Self {
            direct: of(Kind::Direct),
            room: of(Kind::Room),
            everyone: of(Kind::Everyone),
        }
    }

    /// The counter of `kind`.
    pub fn of(&self, kind: Kind) -> &Counter {
        match kind {
            Kind::Direct => &self.direct,
            Kind::Room => &self.room,
            Kind::Everyone => &self.everyone,
        }
    }
}

/// Counts the broker makes in one turn, added to [`METRICS`] at its end: one atomic add
/// per kind and turn rather than two per message (fanout 1 showed them).
#[derive(Debug, Default)]
pub struct Tally {
    messages: [u64; 3],
    deliveries: [u64; 3],
}

impl Tally {
    /// A message routed to a destination of `kind`.
    pub fn message(&mut self, kind: Kind) {
        self.messages[kind as usize] += 1;
    }

    /// `n` copies of a message of `kind` queued.
    pub fn delivered(&mut self, kind: Kind, n: u64) {
        self.deliveries[kind as usize] += n;
    }

    /// Adds what was counted to [`METRICS`], and starts again from zero.
    pub fn publish(&mut self) {
        for (i, kind) in [Kind::Direct, Kind::Room, Kind::Everyone]
            .into_iter()
            .enumerate()
        {
            let (messages, deliveries) = (
                std::mem::take(&mut self.messages[i]),
                std::mem::take(&mut self.deliveries[i]),
            );
            if messages > 0 {
                METRICS.messages.of(kind).inc_by(messages);
            }
            if deliveries > 0 {
                METRICS.deliveries.of(kind).inc_by(deliveries);
            }
        }
    }
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<ListenerLabel, Gauge>,
    /// Logins accepted.
    pub logins: Counter,
    refused: Family<ReasonLabel, Counter>,
    /// Messages routed, by what they were addressed to (a message to two rooms counts
    /// twice).
    pub messages: ByKind,
    /// Copies of messages queued for their readers.
    pub deliveries: ByKind,
    /// Bytes written to clients.
    pub bytes_written: Counter,
    /// Clients cut off for not reading (`--sendq`).
    pub sendq_cutoffs: Counter,
    broker_queue: Gauge,
    /// How long a batch of writes to the store (`--db`) took.
    pub store_write_seconds: Histogram,
    /// Commands and pipelines sent to Redis (cluster mode).
    pub redis_round_trips: Counter,
    /// Of those, the ones that failed or timed out.
    pub redis_errors: Counter,
    /// Whether Redis answered last time a cluster node asked (true outside a cluster).
    redis_up: AtomicBool,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("chat");
        let connections = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "connections",
            "Connections open, by listener",
            connections.clone(),
        );
        let logins = Counter::default();
        registry.register("logins", "Logins accepted", logins.clone());
        let refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "logins_refused",
            "Connections refused before or at login, by reason",
            refused.clone(),
        );
        let messages = Family::<KindLabel, Counter>::default();
        registry.register(
            "messages_routed",
            "Messages routed, by what they were addressed to",
            messages.clone(),
        );
        let deliveries = Family::<KindLabel, Counter>::default();
        registry.register(
            "deliveries",
            "Copies of messages queued for readers, by kind",
            deliveries.clone(),
        );
        let bytes_written = Counter::default();
        registry.register_with_unit(
            "written",
            "Bytes written to clients",
            prometheus_client::registry::Unit::Bytes,
            bytes_written.clone(),
        );
        let sendq_cutoffs = Counter::default();
        registry.register(
            "sendq_cutoffs",
            "Clients cut off for not reading (--sendq)",
            sendq_cutoffs.clone(),
        );
        let broker_queue = Gauge::default();
        registry.register(
            "broker_queue_depth",
            "Events waiting for the broker",
            broker_queue.clone(),
        );
        let store_write_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register_with_unit(
            "store_write",
            "Time to write one batch of history, accounts and mail to the database",
            prometheus_client::registry::Unit::Seconds,
            store_write_seconds.clone(),
        );
        let redis_round_trips = Counter::default();
        registry.register(
            "redis_round_trips",
            "Commands and pipelines sent to Redis (cluster mode)",
            redis_round_trips.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Redis commands that failed or timed out (cluster mode)",
            redis_errors.clone(),
        );
        registry.register(
            "build",
            "The server's version and the commit it was built from",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", crate::COMMIT),
            ]),
        );
        #[cfg(feature = "heap-stats")]
        registry.register_collector(Box::new(crate::heap::Heap));
        Self {
            messages: ByKind::new(&messages),
            deliveries: ByKind::new(&deliveries),
            registry,
            connections,
            logins,
            refused,
            bytes_written,
            sendq_cutoffs,
            broker_queue,
            store_write_seconds,
            redis_round_trips,
            redis_errors,
            redis_up: AtomicBool::new(true),
        }
    }

    /// The gauge of connections open on `listener`.
    pub fn connections(&self, listener: Listener) -> Gauge {
        self.connections
            .get_or_create(&ListenerLabel { listener })
            .clone()
    }

    /// Counts a refused login.
    pub fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Whether Redis answered the last time it was asked.
    pub fn set_redis_up(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        // Only a failure of `String` as a `fmt::Write`, which does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// A connection's place in the `connections` gauge: counted while this lives.
#[derive(Debug)]
pub struct Open(Gauge);

impl Open {
    /// Counts a connection on `listener` until dropped.
    pub fn new(listener: Listener) -> Self {
        let gauge = METRICS.connections(listener);
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `token` is cancelled. The
/// broker's queue is looked at through a weak sender, so that serving metrics never
/// keeps the broker from ending.
pub async fn serve(
    listener: TcpListener,
    broker: mpsc::WeakSender<BrokerEvent>,
    token: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "metrics: accept failed");
                    continue;
                }
            },
        };
        let broker = broker.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, broker.clone()));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = token.cancelled() => {}
                served = connection => if let Err(e) = served {
                    debug!(error = %e, "metrics: connection ended");
                },
            }
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    broker: mpsc::WeakSender<BrokerEvent>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            if let Some(tx) = broker.upgrade() {
                let depth = tx.max_capacity() - tx.capacity();
                METRICS
                    .broker_queue
                    .set(i64::try_from(depth).unwrap_or(i64::MAX));
            }
            let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            reply(StatusCode::OK, content_type, METRICS.encode())
        }
        (&Method::GET, "/healthz") if METRICS.redis_up.load(Ordering::Relaxed) => {
            reply(StatusCode::OK, "text/plain", "ok\n".to_owned())
        }
        (&Method::GET, "/healthz") => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "redis unreachable\n".to_owned(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /healthz\n".to_owned(),
        ),
    }
}
