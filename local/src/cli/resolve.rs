//! `opencode-remote resolve`: resolve a provider/host (or alias, or labels) from the options
//! and print it as JSON for the plugin; or only validate the options.

use std::io::Write;

use clap::Args;

use super::{HostArgs, home, resolve};
use crate::config;

#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    host: HostArgs,

    /// Read the plugin options object as JSON from stdin instead of a config file.
    #[arg(long)]
    options_stdin: bool,

    /// Only check the options (print `{"valid":true,…}`), without resolving a host.
    #[arg(long)]
    validate_only: bool,
}

/// Runs `resolve`.
///
/// # Errors
///
/// Invalid options, or a host that cannot be resolved (the message names the problem).
pub fn run(args: ResolveArgs) -> anyhow::Result<()> {
    let inline = if args.options_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        Some(config::from_json(&text)?)
    } else {
        None
    };
    if args.validate_only {
        let loaded = match inline {
            Some(loaded) => loaded,
            None => config::load(args.host.config.as_deref(), &home()?)?,
        };
        let out =
            serde_json::json!({ "valid": true, "providers": loaded.options.provider_names() });
        writeln!(std::io::stdout(), "{out}")?;
        return Ok(());
    }
    let lease_mode = inline
        .as_ref()
        .and_then(|l| l.options.defaults.as_ref().and_then(|d| d.lease_mode))
        .unwrap_or_default();
    let resolved = resolve(&args.host, "", "", inline)?;
    let target = &resolved.connector.target;
    let out = serde_json::json!({
        "provider": resolved.host.provider,
        "host": resolved.host.name,
        "labels": resolved.host.labels,
        "directory": resolved.connector.directory,
        "leaseMode": lease_mode,
        "ssh": {
            "host": target.host,
            "port": target.port,
            "user": target.user,
            "jumps": target.jumps.iter().map(|j| format!("{}@{}:{}", j.user, j.host, j.port)).collect::<Vec<_>>(),
        },
    });
    writeln!(std::io::stdout(), "{out}")?;
    Ok(())
}
