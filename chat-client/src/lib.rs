//! The chat client. Data flows one way:
//!
//! ```text
//! terminal events, network lines, ticks, signals ──> event::Msg
//!     ──> app::App::update ──> app::Command ──> tui (runtime) ──> net (socket)
//!                        └──> ui (draws the App after each batch of messages)
//! ```
//!
//! - [`app`]: all state and the `update` step; no I/O.
//! - [`event`]: [`event::Msg`], everything that can happen.
//! - [`input`]: the edit buffer, cursor by grapheme and display width.
//! - [`net`]: one connection: login, then socket ↔ channels through `chat_proto::LineCodec`.
//! - [`plain`]: line mode for when stdin is not a terminal.
//! - [`sanitize`]: untrusted text made safe to draw.
//! - [`tui`]: the runtime: terminal setup and restore, the event loop, running commands.
//! - [`ui`]: the view, a pure function of the `App`.

pub mod app;
pub mod event;
pub mod input;
pub mod net;
pub mod plain;
pub mod sanitize;
pub mod tui;
pub mod ui;
