//! Starting the stub on a host: launch it if the right build is installed, otherwise probe the
//! platform, upload the stub over the same SSH connection and launch again.
//!
//! The common case costs one exec: a small POSIX `sh` script checks the install stamp
//! (`bin/opencode-remote-stub.id`, holding `<version> <cksum> <size>` of the installed build)
//! with shell builtins only and `exec`s the stub. When the stamp does not match, the same script
//! prints a probe (platform, home, existing stamp) instead, and we install.
//!
//! Installing is: `mkdir -p` the layout, stream the bytes into a temp file on the channel's
//! stdin (no scp/sftp needed), check size and POSIX `cksum`, run it once (`--version`, which
//! also catches a `noexec` home), `chmod` and `mv` it into place (atomic), then write the stamp
//! the same way.
//!
//! Every value interpolated into a remote command goes through [`crate::ssh::quote::sh`]; the
//! scripts themselves take their inputs as positional parameters (`sh -c SCRIPT sh ARGS…`).

pub mod cksum;
mod probe;
pub mod stubs;
mod upload;

use crate::ssh::{self, Connection, SshError, Target};

pub use probe::{PROBE_MARKER, Probe, launch_command, parse_probe, probe};
pub use upload::{Installed, install, is_current, upload_reporter};

/// Default install root on hosts.
pub const DEFAULT_ROOT: &str = "~/.opencode-remote";

/// Resolves `$1` (which may start with `~`) against `$HOME`. Shared by all scripts.
const ROOT_PRELUDE: &str = r#"r=$1; case $r in "~") r=$HOME ;; "~/"*) r=$HOME/${r#??} ;; esac"#;

/// Bootstrap failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// SSH failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The host is not Linux.
    #[error("the host runs {os} ({arch}); opencode-remote-stub supports Linux only")]
    UnsupportedOs {
        /// `uname -s`.
        os: String,
        /// `uname -m`.
        arch: String,
    },
    /// No stub for the host's architecture.
    #[error(transparent)]
    NoStub(#[from] stubs::NoStub),
    /// The probe printed something we cannot read.
    #[error("unexpected probe output from the host: {0}")]
    BadProbe(String),
    /// The install script failed.
    #[error("installing the stub to {root} failed (exit {status}): {output}")]
    Install {
        /// Install root.
        root: String,
        /// Exit status.
        status: String,
        /// What the host printed.
        output: String,
    },
}

/// Connects and installs or upgrades the stub without launching it (`opencode-remote install`).
/// Returns what the host looks like, what was done, and the installed stub's `--version`
/// (empty when it does not run).
///
/// # Errors
///
/// SSH or install failures.
pub async fn run(
    target: &Target,
    root: &str,
    force: bool,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(Probe, Installed, String), BootstrapError> {
    progress(&format!(
        "connecting to {}@{}:{}",
        target.user, target.host, target.port
    ));
    let connection = ssh::connect(target).await?;
    progress(&format!(
        "host key {} verified; probing the host",
        connection.fingerprint
    ));
    let probe = probe(&connection, root).await?;
    let stub = stubs::for_arch(&probe.arch)?;
    if !is_current(&probe, &stub) || force {
        progress(&format!(
            "uploading opencode-remote-stub ({} bytes) to {root}/bin",
            stub.bytes.len(),
        ));
    }
    let mut report = upload_reporter(&mut *progress);
    let installed = install(&connection, root, &probe, &stub, force, &mut report).await?;
    let version = version(&connection, root, &probe)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!("cannot run the installed stub: {err}");
            String::new()
        });
    connection.close().await;
    Ok((probe, installed, version))
}

/// The installed stub's `--version` output (empty when it printed nothing).
///
/// # Errors
///
/// When the command cannot be run.
pub async fn version(
    connection: &Connection,
    root: &str,
    probe: &Probe,
) -> Result<String, SshError> {
    let path = format!(
        "{}/bin/opencode-remote-stub",
        expand_root(root, &probe.home)
    );
    let out = connection
        .run(&format!("exec {} --version", ssh::quote::sh(&path)), None)
        .await?;
    tracing::debug!(status = ?out.status, stderr = %String::from_utf8_lossy(&out.stderr), "stub --version");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Expands a leading `~` of an install root with the remote home.
pub fn expand_root(root: &str, home: &str) -> String {
    match root.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{home}{rest}"),
        _ => root.to_owned(),
    }
}
