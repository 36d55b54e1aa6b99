//! `opencode-remote-stub`: an OpenCode-compatible HTTP/2 server on stdin/stdout.
//!
//! The stub is started per SSH exec channel (`opencode-remote-stub --stdio`). It never opens a
//! TCP or unix listener: the channel is the only way in.
//!
//! # Layout
//!
//! Arrows point down only: `server → api → {http, app} → {agent, session, policy, tools} →
//! opencode`, `agent → {policy, session, tools}`, `policy → session`; nothing imports
//! `server` or `api` (a test checks it, see `tests/layout.rs`).
//!
//! - [`stdio`], [`handshake`], [`logging`]: the wire (fds 0/1 taken from the rest of the
//!   process), the `protocol::handshake` server side, tracing that never touches stdout.
//! - [`server`]: the hyper HTTP/2 server, its settings and the route table.
//! - [`api`]: handlers per OpenCode area: decode the request, call a room, encode the answer.
//! - [`http`]: what handlers take and give (request, bodies, JSON, SSE, query strings).
//! - [`opencode`]: OpenCode's wire schema, typed; nothing else builds OpenCode JSON.
//! - [`app`]: the shared state handlers reach the rooms through.
//! - [`agent`]: runs on behalf of a session (today `!shell`).
//! - [`gateway`]: the reverse road to the laptop (model calls, web fetches, the user's setup).
//! - [`session`]: the durable event log OpenCode replicates from, the event bus, ids, session
//!   records and busy sessions.
//! - [`policy`]: which paths a command touches, approved roots, pending permission requests.
//! - [`terminal`]: terminals on the host (`/pty`): pseudo-terminals, their output and clients.
//! - [`tools`]: execution only: child processes, the file system, search and git.
//! - [`error`]: `ApiError`, the one place where failures become HTTP responses.

pub mod agent;
pub mod api;
pub mod app;
pub mod error;
pub mod gateway;
pub mod handshake;
pub mod http;
pub mod logging;
pub mod opencode;
pub mod policy;
pub mod server;
pub mod session;
pub mod stdio;
pub mod terminal;
pub mod tools;

pub use app::{App, Config};
pub use server::serve;
