//! `opencode-remote install`: install or upgrade the stub on a host (binary install only;
//! starts nothing) and print a JSON summary.

use std::io::Write;

use clap::Args;

use super::{HostArgs, make_interactive, progress, resolve};

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    host: HostArgs,

    /// Reinstall even when the same build is already installed.
    #[arg(long)]
    force: bool,
}

/// Runs `install`.
///
/// # Errors
///
/// SSH or install failures.
pub async fn run(args: InstallArgs) -> anyhow::Result<()> {
    let mut resolved = resolve(&args.host, "", "", None)?;
    make_interactive(&mut resolved, false);
    let (probe, installed, version) = crate::install::run(
        &resolved.connector.target,
        &resolved.connector.root,
        args.force,
        &mut progress,
    )
    .await?;
    let what = installed.to_string();
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
