//! `opencode-remote-stub`: an OpenCode-compatible HTTP/2 server on stdin/stdout.
//!
//! The stub is started per SSH exec channel (`opencode-remote-stub --stdio`). It never opens a
//! TCP or unix listener: the channel is the only way in.
//!
//! # Layout
//!
//! - [`stdio`]: takes fds 0/1 away from the rest of the process (they become `/dev/null`) and
//!   wraps them as non-blocking async pipes.
//! - [`handshake`]: the server side of `protocol::handshake`, including the manual-mode bypass
//!   when the first bytes are the HTTP/2 preface.
//! - [`http`]: the hyper HTTP/2 server, its settings and the router.
//! - [`procs`]: every child process the stub starts, so they can all be killed on exit.
//! - [`ids`], [`bus`], [`store`]: OpenCode-format ids, the event bus behind the SSE streams, and
//!   the durable per-session event log OpenCode replicates from.
//! - [`sessions`], [`shell`]: session records and `!shell` commands.
//! - [`files`]: listing, reading, git status and searching the workspace (no external tools).
//! - [`policy`], [`approvals`], [`permissions`]: which paths a command touches, the roots a
//!   workspace approved, and the pending permission requests.
//! - [`logging`]: tracing to the log file and stderr, never stdout.
//! - [`error`]: `ApiError`, the one place where failures become HTTP responses.

pub mod approvals;
pub mod bus;
pub mod error;
pub mod files;
pub mod handshake;
pub mod http;
pub mod ids;
pub mod logging;
pub mod permissions;
pub mod policy;
pub mod procs;
pub mod sessions;
pub mod shell;
pub mod stdio;
pub mod store;
pub mod vcs;

pub use http::{App, Config, serve};
