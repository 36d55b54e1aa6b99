//! `opencode-remote`: the local side of OpenCode remote workspaces.
//!
//! # Layout
//!
//! - [`config`]: plugin options (providers, hosts) from OpenCode configs or bare options files.
//! - [`config_edit`]: the `config` subcommands: comment-preserving edits of the plugin entry.
//! - [`doctor`]: step-by-step preflight checks with fixes.
//! - [`provider`]: resolving provider + host/alias (or a `user@host:port` destination).
//! - [`ssh_config`], [`known_hosts`]: OpenSSH's client config and host key database.
//! - [`ssh`]: russh connections: host key policy, auth, ProxyJump, exec channels.
//! - [`quote`]: POSIX quoting for every remote argument.
//! - [`stubs`]: the stub binaries we can install (embedded at build time).
//! - [`bootstrap`]: launching the stub, installing it when missing or outdated.
//! - [`transport`]: the exec channel as a byte stream, and the client side of the handshake.
//! - [`connector`]: from a host to a healthy HTTP/2 client on its stub.
//! - [`bridge`]: the secret-guarded loopback listener OpenCode talks to.

// Errors carry structured fields (paths, lines, fingerprints) for their messages; they are on
// cold paths, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod bootstrap;
pub mod bridge;
pub mod cksum;
pub mod config;
pub mod config_edit;
pub mod connector;
pub mod doctor;
pub mod known_hosts;
pub mod provider;
pub mod quote;
pub mod setup;
pub mod ssh;
pub mod ssh_config;
pub mod stubs;
pub mod terminal;
pub mod transport;
