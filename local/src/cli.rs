//! The subcommands of `opencode-remote`, one file each, and what they share: the host
//! arguments, resolving them to a [`Connector`], and logging.
//!
//! Each command prints its result on stdout (JSON for the commands the plugin runs, text for
//! the ones people run) and its progress on stderr.

pub mod bridge;
pub mod config;
pub mod doctor;
pub mod health;
pub mod install;
pub mod resolve;
pub mod setup;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::bridge::connector::Connector;
use crate::config::provider::{self, ResolvedHost};
use crate::config::{self as options, HostKeyChecking};
use crate::install::DEFAULT_ROOT;
use crate::ssh::{self, HostKeyPolicy, Tuning, quote, terminal};

/// How to pick the host: `--provider P --host H [--config F]`, or an ssh-style destination.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// `[user@]host[:port]` (instead of --provider/--host).
    #[arg(value_name = "DESTINATION", conflicts_with_all = ["provider", "host"])]
    destination: Option<String>,

    /// Identity file for a DESTINATION.
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "FILE",
        requires = "destination"
    )]
    identity: Option<String>,

    /// OpenCode config (with the opencode-remote-provider plugin entry) or a bare options file.
    /// Default: $OPENCODE_CONFIG, then ~/.config/opencode/opencode.json[c].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Provider name.
    #[arg(long)]
    provider: Option<String>,

    /// Host name or alias within the provider.
    #[arg(long)]
    host: Option<String>,

    /// Pick the first host with all these labels (when --host is not given).
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,

    /// Working directory on the host.
    #[arg(long, value_name = "DIR")]
    directory: Option<String>,

    /// Record unknown host keys in known_hosts instead of refusing (changed keys are always
    /// refused).
    #[arg(long)]
    accept_new: bool,
}

impl HostArgs {
    /// These host arguments as the user would type them again, shell-quoted, for the fixes
    /// that doctor and errors suggest.
    fn command_line(&self) -> String {
        let mut words = Vec::new();
        if let Some(destination) = &self.destination {
            words.push(destination.clone());
            if let Some(identity) = &self.identity {
                words.extend(["-i".to_owned(), identity.clone()]);
            }
        }
        if let Some(config) = &self.config {
            words.extend(["--config".to_owned(), config.display().to_string()]);
        }
        if let Some(provider) = &self.provider {
            words.extend(["--provider".to_owned(), provider.clone()]);
        }
        if let Some(host) = &self.host {
            words.extend(["--host".to_owned(), host.clone()]);
        }
        for label in &self.labels {
            words.extend(["--label".to_owned(), label.clone()]);
        }
        quote::join(words.iter().map(String::as_str))
    }
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set")
}

/// Sends logs to stderr (stdout carries the commands' output) and, with `--log-file`, also to
/// that file (created 0600). `OPENCODE_REMOTE_LOG` sets the filter; the default is `info`.
pub fn init_logging(log_file: Option<&std::path::Path>) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = || {
        EnvFilter::try_from_env("OPENCODE_REMOTE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter());
    let file = log_file.and_then(|path| {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            // Best effort: a missing log directory must not stop the bridge.
            let _ignored = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .ok()?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_target(false)
                .with_filter(filter()),
        )
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
}

/// A host picked from the options (or a destination) and how to reach its stub.
struct Resolved {
    host: ResolvedHost,
    connector: Connector,
}

/// Resolves the host arguments (with options given inline, e.g. by the plugin, instead of a
/// config file): the options win, then `~/.ssh/config`, then OpenSSH's defaults.
fn resolve(
    args: &HostArgs,
    workspace_id: &str,
    project_id: &str,
    inline: Option<options::Loaded>,
) -> anyhow::Result<Resolved> {
    let home = home()?;
    let (host, options) = match &args.destination {
        Some(destination) => (
            provider::parse_destination(destination, args.identity.as_deref())?,
            None,
        ),
        None => {
            let loaded = match inline {
                Some(loaded) => loaded,
                None => options::load(args.config.as_deref(), &home)?,
            };
            let host = provider::resolve(
                &loaded,
                args.provider.as_deref(),
                args.host.as_deref(),
                &args.labels,
            )?;
            (host, Some(loaded.options))
        }
    };
    let tunnel = options
        .as_ref()
        .and_then(|o| o.tunnel.clone())
        .unwrap_or_default();
    let mut tuning = Tuning::default();
    if let Some(secs) = tunnel.keepalive_interval {
        tuning.keepalive_interval = Duration::from_secs(secs.max(1));
    }
    if let Some(max) = tunnel.keepalive_count_max {
        tuning.keepalive_max = max.max(1) as usize;
    }
    if let Some(secs) = tunnel.connect_timeout {
        tuning.connect_timeout = Duration::from_secs(secs.max(1));
    }
    tuning.host_key_checking = match tunnel.host_key_checking {
        _ if args.accept_new => HostKeyPolicy::AcceptNew,
        Some(HostKeyChecking::AcceptNew) => HostKeyPolicy::AcceptNew,
        Some(HostKeyChecking::Strict) | None => HostKeyPolicy::Strict,
    };
    let destination = ssh::Destination {
        host: host.ssh_target().to_owned(),
        user: host.ssh.user.clone(),
        port: host.ssh.port,
        identity_file: host.ssh.identity_file.clone(),
        proxy_jump: host.ssh.proxy_jump.clone(),
    };
    let target = ssh::target_for(&destination, &home, &tuning)?;
    let root = options
        .as_ref()
        .and_then(|o| o.install_root.clone())
        .unwrap_or_else(|| DEFAULT_ROOT.to_owned());
    let connector = Connector {
        target,
        root,
        workspace_id: workspace_id.to_owned(),
        project_id: project_id.to_owned(),
        directory: args.directory.clone().or_else(|| host.directory.clone()),
        ping_interval: Duration::from_secs(5),
    };
    Ok(Resolved { host, connector })
}

/// Progress of a connect or install, as log lines.
fn progress(step: &str) {
    tracing::info!("{step}");
}

/// Commands a person runs at a terminal may ask for passwords and passphrases, and `setup` may
/// ask about an unknown host key; the plugin's commands never ask.
fn make_interactive(resolved: &mut Resolved, ask_host_key: bool) {
    let interactive = terminal::is_interactive();
    let targets = std::iter::once(&mut resolved.connector.target);
    for target in targets {
        target.interactive = interactive;
        if ask_host_key && target.host_key_checking == HostKeyPolicy::Strict {
            target.host_key_checking = HostKeyPolicy::Ask;
        }
        for jump in &mut target.jumps {
            jump.interactive = interactive;
            if ask_host_key && jump.host_key_checking == HostKeyPolicy::Strict {
                jump.host_key_checking = HostKeyPolicy::Ask;
            }
        }
    }
}
