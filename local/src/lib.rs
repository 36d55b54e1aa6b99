//! `opencode-remote`: the local side of OpenCode remote workspaces.
//!
//! # Layout
//!
//! - [`cli`]: the subcommands (`setup`, `doctor`, …).
//! - [`config`]: plugin options (providers, hosts) from OpenCode configs or bare options files;
//!   [`config::provider`] resolves provider + host/alias, [`config::edit`] edits the plugin entry
//!   keeping comments.
//! - [`ssh`]: russh connections: host key policy, auth, ProxyJump, exec channels; with
//!   [`ssh::ssh_config`], [`ssh::known_hosts`], [`ssh::quote`] and [`ssh::terminal`].
//! - [`install`]: launching the stub, installing it when missing or outdated; [`install::stubs`]
//!   holds the stub binaries we can install (embedded at build time).
//! - [`bridge`]: the secret-guarded loopback listener OpenCode talks to;
//!   [`bridge::connector`] gets a healthy HTTP/2 client on a host's stub over
//!   [`bridge::transport`], the exec channel as a byte stream.

// Errors carry structured fields (paths, lines, fingerprints) for their messages; they are on
// cold paths, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod bridge;
pub mod cli;
pub mod config;
pub mod fsutil;
pub mod install;
pub mod ssh;
