//! `opencode-remote bridge`: connect to a host and serve a loopback URL for OpenCode until
//! stdin closes, the parent goes away, or a signal arrives.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{HostArgs, progress, resolve};
use crate::bridge::connector::Upstream;
use crate::bridge::{self, Secret};
use crate::config;
use crate::install::Installed;

#[derive(Debug, Args)]
pub struct BridgeArgs {
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

    /// Read one JSON line from stdin first: {"secret": "...", "options": {plugin options},
    /// "opencodeAuthorization": "..."} (keeps a workspace URL stable across bridge restarts
    /// without putting secrets in argv; options replace --config).
    #[arg(long)]
    stdin_config: bool,

    /// Print the URL at once and connect in the background, retrying until the host answers
    /// (requests wait or get 503 meanwhile). Used when restarting a workspace's bridge.
    #[arg(long)]
    keep_trying: bool,

    /// The local OpenCode server URL: user-level GETs (config, providers, agents, commands)
    /// are answered from it, and it is told to resume syncing after reconnects.
    #[arg(long, value_name = "URL")]
    opencode_url: Option<String>,

    /// Reach the local OpenCode through the plugin that started this bridge: calls go out as
    /// JSON lines on stdout, answers come back on stdin (implies --stdin-config).
    #[arg(long, conflicts_with = "opencode_url")]
    opencode_stdio: bool,

    /// The local project directory for calls to the local OpenCode.
    #[arg(long, value_name = "DIR")]
    opencode_directory: Option<String>,

    /// Seconds a request waits for a reconnect before getting 503.
    #[arg(long, default_value_t = 10)]
    reconnect_wait: u64,
}

/// Runs `bridge`: prints one JSON line (URL, pid, host, stub) on stdout, then serves.
///
/// # Errors
///
/// Invalid arguments, or (without `--keep-trying`) a failed first connection.
pub async fn run(args: BridgeArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen must be a loopback address (127.0.0.1 or ::1), got {}",
            args.listen
        );
    }
    let mut stdin_lines = None;
    let mut secret = None;
    let mut opencode_authorization = None;
    let mut inline = None;
    if args.stdin_config || args.opencode_stdio {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let line = lines
            .next_line()
            .await?
            .context("stdin closed before the configuration line")?;
        let value: serde_json::Value =
            serde_json::from_str(&line).context("invalid configuration line on stdin")?;
        if let Some(given) = value.get("secret").and_then(|s| s.as_str()) {
            secret = Some(
                Secret::from_string(given.to_owned())
                    .context("`secret` must be at least 32 characters of [A-Za-z0-9_-]")?,
            );
        }
        opencode_authorization = value
            .get("opencodeAuthorization")
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        if let Some(options) = value.get("options") {
            inline = Some(config::from_json(&options.to_string())?);
        }
        stdin_lines = Some(lines);
    }
    let secret = match secret {
        Some(secret) => secret,
        None => Secret::generate()?,
    };
    let resolved = resolve(&args.host, &args.workspace_id, &args.project_id, inline)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let port = listener.local_addr()?.port();
    let upstream = if args.keep_trying {
        None
    } else {
        Some(resolved.connector.connect(&mut progress).await?)
    };
    let mut line = serde_json::json!({
        "url": format!("http://127.0.0.1:{port}/{}", secret.expose()),
        "pid": std::process::id(),
        "connected": upstream.is_some(),
        "host": {
            "name": resolved.host.name,
            "provider": resolved.host.provider,
            "address": resolved.connector.target.host,
            "port": resolved.connector.target.port,
            "user": resolved.connector.target.user,
        },
    });
    if let Some(upstream) = &upstream {
        line["host"]["fingerprint"] = upstream.fingerprint.clone().into();
        line["host"]["cipher"] = upstream.cipher.clone().into();
        line["stub"] = serde_json::json!({
            "version": upstream.welcome.stub_version,
            "pid": upstream.welcome.pid,
            "os": upstream.welcome.os,
            "arch": upstream.welcome.arch,
            "kernel": upstream.welcome.kernel,
            "home": upstream.welcome.home,
            "directory": upstream.welcome.directory,
            "installed": !matches!(upstream.installed, Installed::AlreadyCurrent),
        });
        line["connectMs"] = (upstream.elapsed.as_millis() as u64).into();
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    let directory = args.opencode_directory.clone().unwrap_or_default();
    let calls = args
        .opencode_stdio
        .then(|| std::sync::Arc::new(bridge::StdioCalls::default()));
    let local = match (&args.opencode_url, &calls) {
        (Some(url), _) => Some(bridge::LocalOpenCode::http(
            url,
            directory,
            opencode_authorization,
        )),
        (None, Some(calls)) => Some(bridge::LocalOpenCode::stdio(calls.clone(), directory)),
        (None, None) => None,
    };
    let shutdown = CancellationToken::new();
    watch_lifetime(shutdown.clone(), stdin_lines, calls);
    let options = bridge::Options {
        secret,
        connector: resolved.connector,
        local,
        wait_for_upstream: Duration::from_secs(args.reconnect_wait),
    };
    bridge::run(
        listener,
        options,
        upstream.map(Upstream::into_link),
        shutdown,
    )
    .await?;
    Ok(())
}

/// Ends the bridge when stdin closes (the parent went away) or on SIGTERM/SIGINT/SIGHUP.
fn watch_lifetime(
    shutdown: CancellationToken,
    lines: Option<tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>>,
    calls: Option<std::sync::Arc<bridge::StdioCalls>>,
) {
    let on_eof = shutdown.clone();
    let on_parent_exit = shutdown.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        match lines {
            Some(mut lines) => {
                while let Ok(Some(line)) = lines.next_line().await {
                    let delivered = match (&calls, serde_json::from_str::<serde_json::Value>(&line))
                    {
                        (Some(calls), Ok(value)) => calls.deliver(&value),
                        _ => false,
                    };
                    if !delivered && !line.trim().is_empty() {
                        tracing::debug!("ignored a line on stdin");
                    }
                }
            }
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
    // The process that started us may die without closing our stdin (its descriptors can
    // leak into other children): notice being re-parented.
    let parent = rustix::process::getppid();
    let orphaned = on_parent_exit.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = orphaned.cancelled() => return,
            }
            if rustix::process::getppid() != parent {
                tracing::info!("the parent process went away; shutting down");
                orphaned.cancel();
                return;
            }
        }
    });
    // Whatever happens during shutdown, the process ends soon after it starts.
    tokio::spawn(async move {
        on_parent_exit.cancelled().await;
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(5));
            tracing::warn!("shutdown took more than 5 s; exiting anyway");
            std::process::exit(0);
        });
    });
}
