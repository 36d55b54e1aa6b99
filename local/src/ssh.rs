//! SSH connections with russh: `~/.ssh/config`, known_hosts verification, agent and key auth,
//! ProxyJump chains, and exec channels.
//!
//! Host keys are always verified (`StrictHostKeyChecking yes` by default). Nothing in this
//! module accepts a key that known_hosts does not list, except under the explicit
//! [`HostKeyPolicy::AcceptNew`] policy, and a changed key is refused under every policy.

mod auth;
mod client;
mod connect;
mod exec;
pub mod known_hosts;
pub mod quote;
pub mod ssh_config;
mod target;
pub mod terminal;

use std::path::PathBuf;

use russh::keys::HashAlg;

pub use connect::{Connection, connect};
pub use exec::Output;
pub use target::{Destination, HostKeyPolicy, Target, Tuning, dedicated_key_path, target_for};

/// Failures, each with what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// `~/.ssh/config` could not be used.
    #[error("cannot read ssh config")]
    Config(#[source] ssh_config::SshConfigError),
    /// DNS or TCP failed.
    #[error("cannot connect to {host}:{port}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Nothing within the deadline.
    #[error("connecting to {host}:{port} timed out after {secs} s")]
    Timeout {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Deadline.
        secs: u64,
    },
    /// The server's key is not in known_hosts.
    #[error(
        "host key for {entry} is not known: the server offered {key_type} key {fingerprint}.\n\
         To trust it, check this fingerprint with the host's administrator, then either connect \
         once with OpenSSH (`ssh {ssh_args}`) and answer yes, or run \
         `scripts/setup-host.sh --accept-new {setup_args}`; known_hosts files checked: {files}"
    )]
    HostKeyUnknown {
        /// `host` or `[host]:port`.
        entry: String,
        /// Key algorithm.
        key_type: String,
        /// `SHA256:…`.
        fingerprint: String,
        /// Arguments for an OpenSSH command line.
        ssh_args: String,
        /// Arguments for setup-host.sh.
        setup_args: String,
        /// Files checked.
        files: String,
    },
    /// The server's key differs from the recorded one.
    #[error(
        "REFUSING TO CONNECT: the host key for {entry} has changed. known_hosts has a \
         {known_type} key for it at {}:{line}, but the server offered {key_type} key \
         {fingerprint}. This may be an attack (man in the middle) or a reinstalled host. If \
         you are sure the change is legitimate, remove line {line} (`ssh-keygen -R '{entry}' \
         -f {}`) and trust the new key",
        file.display(),
        file.display()
    )]
    HostKeyChanged {
        /// `host` or `[host]:port`.
        entry: String,
        /// known_hosts file.
        file: PathBuf,
        /// Line number (1-based).
        line: usize,
        /// Type of the recorded key.
        known_type: String,
        /// Offered key algorithm.
        key_type: String,
        /// Offered key fingerprint.
        fingerprint: String,
    },
    /// The key is marked `@revoked`.
    #[error("REFUSING TO CONNECT: the host key {fingerprint} of {entry} is revoked at {}:{line}", file.display())]
    HostKeyRevoked {
        /// `host` or `[host]:port`.
        entry: String,
        /// known_hosts file.
        file: PathBuf,
        /// Line.
        line: usize,
        /// Fingerprint.
        fingerprint: String,
    },
    /// known_hosts could not be read or written.
    #[error("cannot use known_hosts")]
    KnownHosts(#[source] known_hosts::KnownHostsError),
    /// No method worked.
    #[error("authentication as {user}@{host}:{port} failed; tried: {tried}{hint}")]
    Auth {
        /// User.
        user: String,
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What was tried and how each attempt ended.
        tried: String,
        /// Advice.
        hint: String,
        /// The server would take a password (or keyboard-interactive answers) from a person.
        password_possible: bool,
    },
    /// Through which jump host a failure happened.
    #[error("via jump host {hop}")]
    Jump {
        /// The hop.
        hop: String,
        /// Cause.
        #[source]
        source: Box<SshError>,
    },
    /// The SSH protocol failed.
    #[error("ssh session with {host}:{port} failed")]
    Protocol {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Cause.
        #[source]
        source: russh::Error,
    },
    /// Opening a channel or running a command failed.
    #[error("remote command failed to start: {0}")]
    Exec(String),
}

/// Hash algorithm used for fingerprints everywhere.
pub const FINGERPRINT_HASH: HashAlg = HashAlg::Sha256;
