//! `chat-bench`: load, latency, memory and shutdown benchmarks for `chat-server`, and the
//! loopback baseline they are measured against (docs/performance.md).
//!
//! - [`client`]: logging in many clients, natively or over IRC; a line reader that
//!   allocates nothing per line.
//! - [`load`]: `run`/`raw`: senders, windows, receivers that check every delivery.
//! - [`scenarios`]: `idle`, `logins`, `drain`.
//! - [`forwarder`]: the minimal forwarder behind `raw`.
//! - [`procstat`]: CPU time and memory from `/proc`.
//! - [`report`]: one JSON line and a human summary.
//! - [`render`]: the client's time per frame with a full scrollback.

pub mod client;
pub mod forwarder;
pub mod load;
pub mod procstat;
pub mod render;
pub mod report;
pub mod scenarios;
