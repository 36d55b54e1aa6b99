//! `opencode-remote`: the local side of OpenCode remote workspaces.
//!
//! # Layout
//!
//! Arrows point down only: `cli → {bridge, install, ssh, config}`, `bridge → {install, ssh}`,
//! `install → ssh`, and [`fsutil`] sits below everything (`tests/layout.rs` checks this).
//!
//! - [`cli`]: one file per subcommand (`bridge`, `install`, `health`, `resolve`, `setup`,
//!   `doctor`, `config`) and what they share: host arguments, resolving them, logging.
//!   `main.rs` only parses the command line and dispatches here.
//! - [`bridge`]: the secret-guarded loopback listener OpenCode talks to, forwarding each request
//!   as an HTTP/2 stream to the stub; [`bridge::connector`] brings up a healthy upstream over
//!   [`bridge::transport`] (the exec channel as a byte stream, and the handshake); the
//!   supervisor reconnects, WebSockets are relayed, and the local OpenCode is asked for the
//!   user-level answers.
//! - [`install`]: putting the stub on a host: the one-exec launcher and probe, uploads, and
//!   [`install::stubs`], the binaries we carry (embedded at build time).
//! - [`ssh`]: russh connections: targets from the options and `~/.ssh/config`
//!   ([`ssh::ssh_config`]), host keys ([`ssh::known_hosts`]), authentication, ProxyJump, exec
//!   channels; [`ssh::quote`] for every remote argument and [`ssh::terminal`] for prompts.
//! - [`config`]: plugin options (providers, hosts) from OpenCode configs or bare options files;
//!   [`config::provider`] resolves provider + host/alias, [`config::edit`] edits the plugin
//!   entry keeping comments.
//! - [`fsutil`]: the one durable way to write a file (temporary file, fsync, rename, fsync).

// Errors carry structured fields (paths, lines, fingerprints) for their messages; they are on
// cold paths, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod bridge;
pub mod cli;
pub mod config;
pub mod fsutil;
pub mod install;
pub mod ssh;
