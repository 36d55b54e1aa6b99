//! `opencode-remote health`: connect through the stub and print its health JSON.

use std::io::Write;

use super::{HostArgs, make_interactive, progress, resolve};

/// Runs `health`.
///
/// # Errors
///
/// When the host cannot be reached or the stub does not answer.
pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    let mut resolved = resolve(&args, "", "", None)?;
    make_interactive(&mut resolved, false);
    let upstream = resolved.connector.connect(&mut progress).await?;
    let json = serde_json::to_string_pretty(&upstream.health)?;
    upstream.connection.close().await;
    writeln!(std::io::stdout(), "{json}")?;
    Ok(())
}
