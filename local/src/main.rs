//! `opencode-remote`: command-line entry point. Parses arguments, sets up logging (stderr only:
//! stdout carries machine-readable output), calls into the library, maps errors to exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use local::bridge::{self, Secret};
use local::config::{self, HostKeyChecking};
use local::connector::Connector;
use local::provider::{self, ResolvedHost};
use local::ssh::{self, Tuning};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "opencode-remote",
    version,
    about = "Run OpenCode workspaces on hosts that cannot run OpenCode"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to a host, install/update the stub if needed, and serve a loopback URL for
    /// OpenCode until stdin closes or SIGTERM.
    Bridge(BridgeArgs),
    /// Install or upgrade the stub on a host (binary install only; starts nothing).
    Install(InstallArgs),
    /// Connect through the stub and print its health JSON.
    Health(HostArgs),
}

/// How to pick the host: `--provider P --host H [--config F]`, or an ssh-style destination.
#[derive(Debug, Args)]
struct HostArgs {
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

#[derive(Debug, Args)]
struct BridgeArgs {
    #[command(flatten)]
    host: HostArgs,

    /// OpenCode workspace id (`wrk_…`).
    #[arg(long, default_value = "")]
    workspace_id: String,

    /// Local OpenCode project id that sessions on the host must carry.
    #[arg(long, default_value = "")]
    project_id: String,

    /// Loopback address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,

    /// Read one JSON line from stdin first: {"secret": "..."} (keeps a workspace URL stable
    /// across bridge restarts without putting the secret in argv).
    #[arg(long)]
    stdin_config: bool,
}

#[derive(Debug, Args)]
struct InstallArgs {
    #[command(flatten)]
    host: HostArgs,

    /// Reinstall even when the same build is already installed.
    #[arg(long)]
    force: bool,
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set")
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("OPENCODE_REMOTE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

struct Resolved {
    host: ResolvedHost,
    connector: Connector,
}

fn resolve(args: &HostArgs, workspace_id: &str, project_id: &str) -> anyhow::Result<Resolved> {
    let home = home()?;
    let (host, options) = match &args.destination {
        Some(destination) => (
            provider::parse_destination(destination, args.identity.as_deref())?,
            None,
        ),
        None => {
            let loaded = config::load(args.config.as_deref(), &home)?;
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
    tuning.host_key_checking = if args.accept_new {
        HostKeyChecking::AcceptNew
    } else {
        tunnel.host_key_checking.unwrap_or_default()
    };
    let target = ssh::target_for(&host, &home, &tuning)?;
    let root = options
        .as_ref()
        .and_then(|o| o.install_root.clone())
        .unwrap_or_else(|| local::bootstrap::DEFAULT_ROOT.to_owned());
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

fn progress(step: &str) {
    tracing::info!("{step}");
}

async fn health(args: HostArgs) -> anyhow::Result<()> {
    let resolved = resolve(&args, "", "")?;
    let upstream = resolved.connector.connect(&mut progress).await?;
    let json = serde_json::to_string_pretty(&upstream.health)?;
    upstream.connection.close().await;
    writeln!(std::io::stdout(), "{json}")?;
    Ok(())
}

async fn install(args: InstallArgs) -> anyhow::Result<()> {
    let resolved = resolve(&args.host, "", "")?;
    let (probe, installed, version) = resolved
        .connector
        .install(args.force, &mut progress)
        .await?;
    let what = match installed {
        local::bootstrap::Installed::AlreadyCurrent => "already up to date".to_owned(),
        local::bootstrap::Installed::Fresh => "installed".to_owned(),
        local::bootstrap::Installed::Upgraded(previous) => format!("upgraded (was {previous})"),
        local::bootstrap::Installed::Reinstalled => "reinstalled".to_owned(),
    };
    let summary = serde_json::json!({
        "host": resolved.host.name,
        "result": what,
        "stub": version,
        "os": probe.os,
        "arch": probe.arch,
        "kernel": probe.kernel,
        "home": probe.home,
        "root": resolved.connector.root,
    });
    writeln!(std::io::stdout(), "{summary}")?;
    Ok(())
}

async fn run_bridge(args: BridgeArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen must be a loopback address (127.0.0.1 or ::1), got {}",
            args.listen
        );
    }
    let mut stdin_lines = None;
    let secret = if args.stdin_config {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let line = lines
            .next_line()
            .await?
            .context("stdin closed before the configuration line")?;
        let value: serde_json::Value =
            serde_json::from_str(&line).context("invalid configuration line on stdin")?;
        let secret = value
            .get("secret")
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        stdin_lines = Some(lines);
        match secret {
            Some(secret) => Secret::from_string(secret)
                .context("the secret must be at least 32 characters of [A-Za-z0-9_-]")?,
            None => Secret::generate()?,
        }
    } else {
        Secret::generate()?
    };
    let resolved = resolve(&args.host, &args.workspace_id, &args.project_id)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let port = listener.local_addr()?.port();
    let upstream = resolved.connector.connect(&mut progress).await?;
    let line = serde_json::json!({
        "url": format!("http://127.0.0.1:{port}/{}", secret.expose()),
        "pid": std::process::id(),
        "host": {
            "name": resolved.host.name,
            "provider": resolved.host.provider,
            "address": resolved.connector.target.host,
            "port": resolved.connector.target.port,
            "user": resolved.connector.target.user,
            "fingerprint": upstream.fingerprint,
            "cipher": upstream.cipher,
        },
        "stub": {
            "version": upstream.welcome.stub_version,
            "pid": upstream.welcome.pid,
            "os": upstream.welcome.os,
            "arch": upstream.welcome.arch,
            "kernel": upstream.welcome.kernel,
            "home": upstream.welcome.home,
            "directory": upstream.welcome.directory,
            "installed": !matches!(upstream.installed, local::bootstrap::Installed::AlreadyCurrent),
        },
        "connectMs": upstream.elapsed.as_millis(),
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    let shutdown = CancellationToken::new();
    watch_lifetime(shutdown.clone(), stdin_lines);
    bridge::run(listener, secret, resolved.connector, upstream, shutdown).await?;
    Ok(())
}

/// Ends the bridge when stdin closes (the parent went away) or on SIGTERM/SIGINT/SIGHUP.
fn watch_lifetime(
    shutdown: CancellationToken,
    lines: Option<tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>>,
) {
    let on_eof = shutdown.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        match lines {
            Some(mut lines) => while let Ok(Some(_)) = lines.next_line().await {},
            None => {
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 256];
                while let Ok(n) = stdin.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
        tracing::info!("stdin closed; shutting down");
        on_eof.cancel();
    });
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
        tracing::info!("signal received; shutting down");
        shutdown.cancel();
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ignored = writeln!(std::io::stderr(), "error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Bridge(args) => run_bridge(args).await,
            Command::Install(args) => install(args).await,
            Command::Health(args) => health(args).await,
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ignored = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    };
    // Blocking stdin reads cannot be cancelled; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}
