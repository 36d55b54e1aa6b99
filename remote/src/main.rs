//! `opencode-remote-stub`: see the library docs. This file wires real stdio, signals and the
//! runtime, and decides the exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use remote::handshake::{self, HostInfo};
use remote::tools::procs::Procs;
use remote::{App, Config, stdio};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// OpenCode-compatible API for one SSH exec channel, on stdin/stdout.
#[derive(Debug, Parser)]
#[command(name = "opencode-remote-stub", disable_version_flag = true)]
struct Cli {
    /// Serve HTTP/2 on stdin/stdout (after the opencode-remote handshake, or directly when the
    /// client starts with the HTTP/2 preface, e.g. `curl --http2-prior-knowledge` via socat).
    #[arg(long)]
    stdio: bool,

    /// Print the stub version and protocol version, then exit.
    #[arg(short = 'V', long)]
    version: bool,

    /// Persistent state (sessions, approvals).
    #[arg(long, value_name = "DIR", default_value = "~/.opencode-remote/state")]
    state_dir: String,

    /// Log file (stderr gets warnings too).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "~/.opencode-remote/log/stub.log"
    )]
    log_file: String,

    /// Directory to serve in manual mode (no handshake); defaults to the current directory.
    #[arg(long, value_name = "DIR")]
    directory: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        let line = format!(
            "opencode-remote-stub {} (protocol {})\n",
            env!("CARGO_PKG_VERSION"),
            protocol::PROTOCOL_VERSION
        );
        // EPIPE (e.g. `| head -c0`) counts as success.
        let _ignored = std::io::stdout().write_all(line.as_bytes());
        return ExitCode::SUCCESS;
    }
    if !cli.stdio {
        let _ignored = writeln!(
            std::io::stderr(),
            "opencode-remote-stub: nothing to do; run it with --stdio (see --help)"
        );
        return ExitCode::from(2);
    }
    // Never returns: the process exits explicitly once children are gone.
    run_stdio(cli)
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn expand(path: &str, home: &std::path::Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if path == "~" => home.to_owned(),
        None => PathBuf::from(path),
    }
}

fn run_stdio(cli: Cli) -> ExitCode {
    // First of all: nothing may reach the wire except the protocol.
    let taken = match stdio::take() {
        Ok(taken) => taken,
        Err(err) => {
            let _ignored = writeln!(
                std::io::stderr(),
                "opencode-remote-stub: cannot take stdio: {err}"
            );
            return ExitCode::from(1);
        }
    };
    let home = home();
    let log_path = expand(&cli.log_file, &home);
    let stderr = std::fs::File::from(taken.stderr);
    let log_file = match remote::logging::open_log_file(&log_path) {
        Ok(file) => Some(file),
        Err(err) => {
            let _ignored = writeln!(
                &stderr,
                "opencode-remote-stub: cannot open log {}: {err}",
                log_path.display()
            );
            None
        }
    };
    remote::logging::init(log_file, Some(stderr));
    std::panic::set_hook(Box::new(|info| tracing::error!("panic: {info}")));

    let state_dir = expand(&cli.state_dir, &home);
    let manual_directory = cli
        .directory
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| home.clone());
    // One thread: the HTTP/2 connection, its streams and the I/O driver stay on the same
    // core, with no cross-thread wake-ups per request (measured: half the CPU per request of a
    // 2-worker runtime). Blocking work (search, file walks, state writes) goes to
    // `spawn_blocking`. Children are spawned from this long-lived thread, which is what
    // `PR_SET_PDEATHSIG` ties them to.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let procs = Procs::default();
    let code = runtime.block_on(serve_stdio(
        taken.input,
        taken.output,
        home,
        state_dir,
        manual_directory,
        procs.clone(),
    ));
    let code = match code {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            1
        }
    };
    // Kill what is left before the runtime (and with it, any pipe readers) goes away.
    procs.kill_all(Duration::from_millis(300));
    tracing::info!(code, "exiting");
    // tokio's blocking-pool reads cannot be cancelled; exit explicitly rather than wait.
    std::process::exit(code)
}

async fn serve_stdio(
    input: std::os::fd::OwnedFd,
    output: std::os::fd::OwnedFd,
    home: PathBuf,
    state_dir: PathBuf,
    manual_directory: PathBuf,
    procs: Procs,
) -> anyhow::Result<i32> {
    let (mut reader, mut writer) = stdio::wire(input, output).context("cannot set up the wire")?;
    let host = HostInfo::current(home);
    tracing::info!(
        pid = host.pid,
        version = env!("CARGO_PKG_VERSION"),
        "stub started"
    );

    let accepted = match handshake::accept(&mut reader, &mut writer, &host, &manual_directory).await
    {
        Ok(accepted) => accepted,
        Err(handshake::Failure::Refused(message)) => {
            tracing::warn!(%message, "refused the client");
            return Ok(3);
        }
        Err(err) => return Err(anyhow::Error::new(err)),
    };

    let shutdown = CancellationToken::new();
    spawn_signal_watch(shutdown.clone());
    let (workspace_id, project_id) = accepted
        .hello
        .as_ref()
        .map(|h| (h.workspace_id.clone(), h.project_id.clone()))
        .unwrap_or_default();
    let config = Config {
        state_dir,
        directory: accepted.directory,
        manual: accepted.hello.is_none(),
        workspace_id,
        project_id,
    };
    let app = App::new(config, host, procs, shutdown.clone());
    let io = tokio::io::join(accepted.replay.chain(reader), writer);
    let result = remote::serve(io, app.clone()).await;
    // Commands still running cannot report anywhere now: stop them, give their last events a
    // moment to reach the log, and flush it.
    app.close(Duration::from_millis(500)).await;
    match result {
        Ok(()) => {
            tracing::info!("client closed the connection");
            Ok(0)
        }
        Err(err) => {
            tracing::warn!(%err, "connection ended with an error");
            Ok(0)
        }
    }
}

fn spawn_signal_watch(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = hup.recv() => tracing::info!("SIGHUP"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        shutdown.cancel();
    });
}
