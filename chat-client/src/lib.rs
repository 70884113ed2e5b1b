//! The chat client. Data flows one way:
//!
//! ```text
//! terminal events, network lines, ticks, signals ──> event::Msg
//!     ──> app::App::update ──> app::Command ──> tui (runtime) ──> net (socket), logger
//!                        └──> ui (draws the App after each batch of messages)
//! ```
//!
//! - [`app`]: the state and the `update` step; no I/O. It is made of:
//!   [`conn`] (connection state, reconnect policy), [`keepalive`] (`/ping` and the dead
//!   connection), [`account`] (our sessions and away, across devices), [`scroll_view`]
//!   (a component: the [`buffers`], each a scrollback per room and conversation with
//!   unread, mentions and read markers, a room's members, roles, topic and modes in
//!   [`room`]; scrolling, `/search`, the size they are laid out in), [`input_bar`] (a component with its
//!   own key handling: the [`input`] line, its [`history`] and Ctrl-R, Tab [`complete`]ion),
//!   [`modes`] (the help overlay and the one-key questions, with their own keys),
//!   [`outbox`].
//! - [`commands`] and [`keys`]: the command table and the key tables (one per mode), from
//!   which the help is generated.
//! - [`entry`]: one line of a buffer, before layout; [`layout`] draws and measures entries,
//!   [`buffers`] keeps them, so data flows entry → layout → buffers → app → ui.
//! - [`layout`]: pure text layout (panes, entry spans, wrapping) used by `app` and `ui`.
//! - [`sanitize`]: [`sanitize::SafeText`], the only text that is drawn.
//! - [`event`]: [`event::Msg`], everything that can happen.
//! - [`net`]: one connection: login, then socket ↔ channels through `chat_proto::LineCodec`.
//! - [`plain`]: line mode for when stdin is not a terminal.
//! - [`config`]: the config file, merged under the command line.
//! - [`logger`]: `--log-dir`, written off the UI thread.
//! - [`tui`]: the runtime: terminal setup and restore, the event loop, running commands.
//! - [`ui`]: the view, a pure function of the `App`.

pub mod account;
pub mod app;
pub mod buffers;
pub mod commands;
pub mod complete;
pub mod config;
pub mod conn;
pub mod entry;
pub mod event;
pub mod history;
pub mod input;
pub mod input_bar;
pub mod keepalive;
pub mod keys;
pub mod layout;
pub mod logger;
pub mod modes;
pub mod net;
pub mod outbox;
pub mod plain;
pub mod room;
pub mod sanitize;
pub mod scroll_view;
pub mod tui;
pub mod ui;
