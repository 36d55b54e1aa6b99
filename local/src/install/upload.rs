//! Uploading a stub: stream it into a temporary file over the exec channel, check it, run it
//! once, move it into place and write its stamp.

use super::stubs::{self, Stub};
use super::{BootstrapError, Probe, ROOT_PRELUDE};
use crate::ssh::Connection;
use crate::ssh::quote;

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The right build was already there.
    AlreadyCurrent,
    /// Installed fresh.
    Fresh,
    /// Replaced another build (its stamp).
    Upgraded(String),
    /// Replaced the same build (forced).
    Reinstalled,
    /// Replaced the same build because the installed file did not run (damaged).
    Repaired,
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Installed::AlreadyCurrent => f.write_str("already up to date"),
            Installed::Fresh => f.write_str("installed"),
            Installed::Upgraded(previous) => write!(f, "upgraded (was {previous})"),
            Installed::Reinstalled => f.write_str("reinstalled"),
            Installed::Repaired => f.write_str("repaired (the installed file did not run)"),
        }
    }
}

/// An upload progress callback for [`install`] that reports `sent/total bytes (n%)` through
/// `say` at 0, 25, 50, 75 and 100 %.
pub fn upload_reporter(mut say: impl FnMut(&str) + Send) -> impl FnMut(u64, u64) + Send {
    let mut last_quarter = None;
    move |sent, total| {
        let percent = (sent * 100).checked_div(total).unwrap_or(100);
        if last_quarter != Some(percent / 25) {
            last_quarter = Some(percent / 25);
            say(&format!(
                "uploading the stub: {sent}/{total} bytes ({percent}%)"
            ));
        }
    }
}

/// Whether `probe` shows `stub` installed and working (its stamp matches and `--version` ran).
pub fn is_current(probe: &Probe, stub: &Stub) -> bool {
    probe.installed == stub.identity && !probe.installed_version.is_empty()
}

/// Installs `stub` under `root` unless the stamp already matches. `progress` is called with
/// (bytes sent, total).
///
/// # Errors
///
/// [`BootstrapError::Install`] with the host's output.
pub async fn install(
    connection: &Connection,
    root: &str,
    probe: &Probe,
    stub: &Stub,
    force: bool,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Installed, BootstrapError> {
    if probe.os != "Linux" {
        return Err(BootstrapError::UnsupportedOs {
            os: probe.os.clone(),
            arch: probe.arch.clone(),
        });
    }
    // The stamp says which build is there; `--version` (run by the probe) says it still runs.
    let damaged = probe.installed == stub.identity && probe.installed_version.is_empty();
    if is_current(probe, stub) && !force {
        return Ok(Installed::AlreadyCurrent);
    }
    let crc = stubs::cksum(&stub.bytes);
    let size = stub.bytes.len();
    let script = format!(
        "{ROOT_PRELUDE}; set -e; umask 077; \
         mkdir -p \"$r/bin\" \"$r/log\" \"$r/state/workspaces\" \"$r/state/sessions\" \"$r/state/approvals\"; \
         f=$r/bin/opencode-remote-stub; t=$r/bin/.opencode-remote-stub.$$.tmp; \
         trap 'rm -f \"$t\" \"$t.id\"' EXIT; \
         cat > \"$t\"; \
         got=$(cksum < \"$t\"); set -- $got; \
         if [ \"$1 $2\" != \"{crc} {size}\" ]; then echo \"upload corrupted: cksum $1, size $2, expected {crc} {size}\" >&2; exit 3; fi; \
         chmod 755 \"$t\"; \
         if ! \"$t\" --version >/dev/null 2>&1 </dev/null; then \
         echo \"the uploaded stub cannot run in $r/bin (is the file system mounted noexec? set installRoot to an exec-able directory)\" >&2; exit 4; fi; \
         mv -f \"$t\" \"$f\"; \
         printf '%s\\n' {identity} > \"$t.id\"; mv -f \"$t.id\" \"$f.id\"; \
         trap - EXIT; \"$f\" --version",
        identity = quote::sh(&stub.identity),
    );
    let command = format!(
        "exec /bin/sh -c {} sh {}",
        quote::sh(&script),
        quote::sh(root)
    );
    progress(0, size as u64);
    let output = connection
        .run_with_progress(&command, Some(&stub.bytes), progress)
        .await?;
    if output.status != Some(0) {
        return Err(BootstrapError::Install {
            root: root.to_owned(),
            status: output
                .status
                .map_or_else(|| "unknown".into(), |s| s.to_string()),
            output: output.diagnostic(),
        });
    }
    Ok(if probe.installed.is_empty() {
        Installed::Fresh
    } else if damaged {
        Installed::Repaired
    } else if probe.installed == stub.identity {
        Installed::Reinstalled
    } else {
        Installed::Upgraded(probe.installed.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_reporter_should_report_each_quarter_once() {
        let mut lines = Vec::new();
        {
            let mut report = upload_reporter(|line: &str| lines.push(line.to_owned()));
            for sent in (0..=1000).step_by(50) {
                report(sent, 1000);
            }
        }
        assert_eq!(
            lines,
            [
                "uploading the stub: 0/1000 bytes (0%)",
                "uploading the stub: 250/1000 bytes (25%)",
                "uploading the stub: 500/1000 bytes (50%)",
                "uploading the stub: 750/1000 bytes (75%)",
                "uploading the stub: 1000/1000 bytes (100%)",
            ]
        );
    }
}
