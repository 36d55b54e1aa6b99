//! The connection target for one host: the plugin options first, then `~/.ssh/config`
//! (through [`ssh_config`]), then OpenSSH's defaults; ProxyJump chains become a
//! list of hops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SshError;
use super::ssh_config::{self, HostSettings};

/// Everything needed to reach one SSH server (one hop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name the user gave (config alias or host name), for messages.
    pub alias: String,
    /// Address to connect to (after `HostName`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Identity files to try after the agent, in order.
    pub identity_files: Vec<PathBuf>,
    /// Whether an identity file was given explicitly (then default keys are not tried).
    pub explicit_identity: bool,
    /// Only offer agent keys that match `identity_files`.
    pub identities_only: bool,
    /// known_hosts files: user files first, then global ones.
    pub known_hosts: Vec<PathBuf>,
    /// Host key policy.
    pub host_key_checking: HostKeyPolicy,
    /// Jump hosts to go through, first hop first.
    pub jumps: Vec<Target>,
    /// Connect + handshake + auth deadline.
    pub connect_timeout: Duration,
    /// Keepalive interval.
    pub keepalive_interval: Duration,
    /// Unanswered keepalives before giving up.
    pub keepalive_max: usize,
    /// `SSH_AUTH_SOCK` (or `IdentityAgent`) to use; `None` disables the agent.
    pub agent: Option<PathBuf>,
    /// Whether a person may be asked for passwords and passphrases at the terminal.
    pub interactive: bool,
}

/// Tunables that do not come from `~/.ssh/config`.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Host key policy.
    pub host_key_checking: HostKeyPolicy,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Keepalive interval.
    pub keepalive_interval: Duration,
    /// Keepalives before giving up.
    pub keepalive_max: usize,
    /// Whether prompts at the terminal are allowed.
    pub interactive: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            host_key_checking: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(15),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            interactive: false,
        }
    }
}

/// Host key policy, like OpenSSH's `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Unknown and changed keys are refused.
    #[default]
    Strict,
    /// Unknown keys are recorded and accepted; changed keys are refused.
    AcceptNew,
    /// Unknown keys are shown to the person at the terminal, who may accept them (set-up
    /// commands only).
    Ask,
}

/// What the plugin options say about a host; `~/.ssh/config` fills what they leave unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    /// Name or address SSH is asked to reach (before `~/.ssh/config` `HostName`).
    pub host: String,
    /// Login user.
    pub user: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Private key file (`~/` is the local home).
    pub identity_file: Option<String>,
    /// Jump host(s), `[user@]host[:port][,…]`.
    pub proxy_jump: Option<String>,
}

fn home_path(home: &Path, path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if path == "~" => home.to_owned(),
        None => PathBuf::from(path),
    }
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_owned())
}

/// Builds the connection target for a destination: the options win, `~/.ssh/config` fills
/// what they leave unset, OpenSSH defaults fill the rest.
///
/// # Errors
///
/// [`SshError::Config`] when `~/.ssh/config` is invalid.
pub fn target_for(
    destination: &Destination,
    home: &Path,
    tuning: &Tuning,
) -> Result<Target, SshError> {
    let alias = destination.host.clone();
    let settings = ssh_config::resolve(&alias, home).map_err(SshError::Config)?;
    let mut target = target_from_settings(&alias, &settings, home, tuning);
    if let Some(user) = &destination.user {
        target.user = user.clone();
    }
    if let Some(port) = destination.port {
        target.port = port;
    }
    if let Some(identity) = &destination.identity_file {
        target.identity_files.insert(0, home_path(home, identity));
        target.explicit_identity = true;
    }
    let jump_spec = destination
        .proxy_jump
        .clone()
        .or(settings.proxy_jump.clone());
    target.jumps = jumps(jump_spec.as_deref(), home, tuning)?;
    // The key scripts/setup-host.sh installs on password-only hosts is used from then on.
    let dedicated = dedicated_key_path(home, &target.host);
    if dedicated.is_file() && !target.identity_files.contains(&dedicated) {
        target.identity_files.push(dedicated);
    }
    Ok(target)
}

fn target_from_settings(
    alias: &str,
    settings: &HostSettings,
    home: &Path,
    tuning: &Tuning,
) -> Target {
    let mut known_hosts = settings.user_known_hosts_files.clone();
    if known_hosts.is_empty() {
        known_hosts.push(home.join(".ssh/known_hosts"));
        known_hosts.push(home.join(".ssh/known_hosts2"));
    }
    if settings.global_known_hosts_files.is_empty() {
        known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
        known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts2"));
    } else {
        known_hosts.extend(settings.global_known_hosts_files.iter().cloned());
    }
    let explicit_identity = !settings.identity_files.is_empty();
    let identity_files = if explicit_identity {
        settings.identity_files.clone()
    } else {
        ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|f| home.join(".ssh").join(f))
            .collect()
    };
    let host_key_checking = match settings.strict_host_key_checking {
        Some(ssh_config::StrictHostKeyChecking::AcceptNew) => HostKeyPolicy::AcceptNew,
        // `no` and `ask` are not honoured: there is nobody to ask, and we never turn
        // verification off.
        _ => tuning.host_key_checking,
    };
    let agent = match settings.identity_agent.as_deref() {
        Some("none") => None,
        Some("SSH_AUTH_SOCK") | None => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        Some(path) => Some(home_path(home, path)),
    };
    Target {
        alias: alias.to_owned(),
        // As OpenSSH, which connects to (and records in known_hosts) the lower-cased name.
        host: settings
            .hostname
            .clone()
            .unwrap_or_else(|| alias.to_ascii_lowercase()),
        port: settings.port.unwrap_or(22),
        user: settings.user.clone().unwrap_or_else(local_user),
        identity_files,
        explicit_identity,
        identities_only: settings.identities_only.unwrap_or(false),
        known_hosts,
        host_key_checking,
        jumps: Vec::new(),
        connect_timeout: settings.connect_timeout.unwrap_or(tuning.connect_timeout),
        keepalive_interval: settings
            .server_alive_interval
            .unwrap_or(tuning.keepalive_interval),
        keepalive_max: settings
            .server_alive_count_max
            .map_or(tuning.keepalive_max, |n| n as usize),
        agent,
        interactive: tuning.interactive,
    }
}

/// How deeply jump hosts' own ProxyJump settings may nest (a guard against loops).
const MAX_JUMP_NESTING: usize = 16;

fn jumps(spec: Option<&str>, home: &Path, tuning: &Tuning) -> Result<Vec<Target>, SshError> {
    let mut targets = Vec::new();
    add_jumps(spec, home, tuning, 0, &mut targets)?;
    Ok(targets)
}

/// Appends the hops of `spec`, first hop first. As in OpenSSH, which reaches the first hop with
/// a plain `ssh` and every later hop with `-J <the hops before it>`, the first hop's own
/// ProxyJump is followed (recursively), while later hops' own ProxyJump is replaced by the
/// chain.
fn add_jumps(
    spec: Option<&str>,
    home: &Path,
    tuning: &Tuning,
    nesting: usize,
    targets: &mut Vec<Target>,
) -> Result<(), SshError> {
    let Some(spec) = spec.filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("none")) else {
        return Ok(());
    };
    if nesting > MAX_JUMP_NESTING {
        return Err(SshError::Config(
            ssh_config::SshConfigError::InvalidJumpSpec {
                spec: spec.to_owned(),
                reason: format!(
                    "jump hosts' own ProxyJump settings nest more than {MAX_JUMP_NESTING} levels \
                 (a loop in ~/.ssh/config?)"
                ),
            },
        ));
    }
    let hops = ssh_config::parse_jump_spec(spec).map_err(SshError::Config)?;
    for (index, hop) in hops.into_iter().enumerate() {
        let settings = ssh_config::resolve(&hop.host, home).map_err(SshError::Config)?;
        if index == 0 {
            add_jumps(
                settings.proxy_jump.as_deref(),
                home,
                tuning,
                nesting + 1,
                targets,
            )?;
        }
        let mut target = target_from_settings(&hop.host, &settings, home, tuning);
        if let Some(user) = hop.user {
            target.user = user;
        }
        if let Some(port) = hop.port {
            target.port = port;
        }
        targets.push(target);
    }
    Ok(())
}

/// `user@host:port` (`user@[v6]:port`), as in a ProxyJump value.
pub(super) fn hop_name(target: &Target) -> String {
    if target.host.contains(':') {
        format!("{}@[{}]:{}", target.user, target.host, target.port)
    } else {
        format!("{}@{}:{}", target.user, target.host, target.port)
    }
}

/// Where the dedicated key for `host` lives: `setup` installs it on password-only hosts, and
/// every later connection to the host offers it.
pub fn dedicated_key_path(home: &Path, host: &str) -> PathBuf {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    home.join(".ssh").join(format!("opencode-remote-{safe}"))
}
