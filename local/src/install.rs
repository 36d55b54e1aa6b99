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
pub mod stubs;

use crate::ssh::quote;
use crate::ssh::{Connection, SshError};
use stubs::Stub;

/// Default install root on hosts.
pub const DEFAULT_ROOT: &str = "~/.opencode-remote";

/// Marks the start of probe output (anything before it is login-script noise).
pub const PROBE_MARKER: &str = "OPENCODE-REMOTE-PROBE v1";

/// Resolves `$1` (which may start with `~`) against `$HOME`. Shared by all scripts.
const ROOT_PRELUDE: &str = r#"r=$1; case $r in "~") r=$HOME ;; "~/"*) r=$HOME/${r#??} ;; esac"#;

/// What the probe found on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// `uname -s`, e.g. `Linux`.
    pub os: String,
    /// Normalised `uname -m`, e.g. `x86_64`.
    pub arch: String,
    /// `uname -r`.
    pub kernel: String,
    /// Remote `$HOME`.
    pub home: String,
    /// Stamp of the installed stub, empty when none.
    pub installed: String,
    /// Output of the installed stub's `--version`, empty when none or broken.
    pub installed_version: String,
    /// What a failing `--version` printed (first 300 bytes, one line), empty otherwise.
    pub version_error: String,
}

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

/// The one-exec launcher: runs the installed stub when its stamp matches one of `identities`,
/// otherwise prints the probe.
pub fn launch_command(root: &str, identities: &[String]) -> String {
    let script = format!(
        "{ROOT_PRELUDE}; shift; f=$r/bin/opencode-remote-stub; \
         if [ -x \"$f\" ] && [ -r \"$f.id\" ]; then IFS= read -r id < \"$f.id\"; \
         for want in \"$@\"; do if [ \"$id\" = \"$want\" ]; then \
         exec \"$f\" --stdio --state-dir \"$r/state\" --log-file \"$r/log/stub.log\"; fi; done; fi; \
         {PROBE}",
        PROBE = probe_script()
    );
    let mut command = format!(
        "exec /bin/sh -c {} sh {}",
        quote::sh(&script),
        quote::sh(root)
    );
    for identity in identities {
        command.push(' ');
        command.push_str(&quote::sh(identity));
    }
    command
}

fn probe_script() -> String {
    format!(
        "printf '%s\\n' '{PROBE_MARKER}'; \
         printf 'uname=%s\\n' \"$(uname -s -r -m 2>/dev/null)\"; \
         printf 'home=%s\\n' \"$HOME\"; \
         f=$r/bin/opencode-remote-stub; id=; v=; \
         if [ -r \"$f.id\" ]; then IFS= read -r id < \"$f.id\"; fi; \
         if [ -x \"$f\" ]; then if ! v=$(\"$f\" --version 2>&1 </dev/null); then \
         printf 'version_error=%s\\n' \"$(printf '%s' \"$v\" | head -c 300 | tr '\\n' ' ')\"; v=; fi; fi; \
         printf 'installed=%s\\n' \"$id\"; printf 'version=%s\\n' \"$v\"; exit 0"
    )
}

/// Parses probe output (everything after [`PROBE_MARKER`]).
///
/// # Errors
///
/// [`BootstrapError::BadProbe`] when fields are missing.
pub fn parse_probe(text: &str) -> Result<Probe, BootstrapError> {
    let mut probe = Probe::default();
    let mut uname = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "uname" => uname = Some(value.to_owned()),
            "home" => probe.home = value.to_owned(),
            "installed" => probe.installed = value.to_owned(),
            "version" => probe.installed_version = value.to_owned(),
            "version_error" => probe.version_error = value.trim().to_owned(),
            _ => {}
        }
    }
    let uname = uname.ok_or_else(|| BootstrapError::BadProbe(text.chars().take(500).collect()))?;
    // `uname -s -r -m` prints "<os> <release> <machine>"; the release has no spaces.
    let mut parts = uname.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(os), Some(kernel), Some(machine)) => {
            probe.os = os.to_owned();
            probe.kernel = kernel.to_owned();
            probe.arch = stubs::normalize_arch(machine);
        }
        _ => return Err(BootstrapError::BadProbe(format!("uname printed `{uname}`"))),
    }
    Ok(probe)
}

/// Runs the probe on its own (for `install`, `doctor`).
///
/// # Errors
///
/// SSH failures or unreadable output.
pub async fn probe(connection: &Connection, root: &str) -> Result<Probe, BootstrapError> {
    let script = format!("{ROOT_PRELUDE}; {}", probe_script());
    let command = format!(
        "exec /bin/sh -c {} sh {}",
        quote::sh(&script),
        quote::sh(root)
    );
    let output = connection.run(&command, None).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.split_once(PROBE_MARKER) {
        Some((_noise, rest)) => parse_probe(rest),
        None => Err(BootstrapError::BadProbe(output.diagnostic())),
    }
}

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

    fn run_sh(command: &str, home: &std::path::Path) -> std::process::Output {
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env("HOME", home)
            .output()
            .unwrap()
    }

    #[test]
    fn launch_command_should_probe_when_nothing_is_installed() {
        let home = tempfile::tempdir().unwrap();
        let out = run_sh(
            &launch_command("~/.opencode-remote", &["0.1.0 1 2".into()]),
            home.path(),
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let (_, rest) = stdout.split_once(PROBE_MARKER).unwrap();
        let probe = parse_probe(rest).unwrap();
        assert_eq!(probe.os, "Linux");
        assert_eq!(probe.arch, std::env::consts::ARCH);
        assert_eq!(probe.home, home.path().to_str().unwrap());
        assert!(probe.installed.is_empty());
    }

    #[test]
    fn launch_command_should_exec_the_stub_when_the_stamp_matches() {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join("my root/bin");
        std::fs::create_dir_all(&bin).unwrap();
        // A fake stub that prints its arguments.
        let stub = bin.join("opencode-remote-stub");
        std::fs::write(&stub, "#!/bin/sh\nprintf 'ran:%s|' \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bin.join("opencode-remote-stub.id"), "0.1.0 9 9\n").unwrap();

        let out = run_sh(
            &launch_command("~/my root", &["x".into(), "0.1.0 9 9".into()]),
            home.path(),
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let root = home.path().join("my root");
        assert_eq!(
            stdout,
            format!(
                "ran:--stdio|ran:--state-dir|ran:{0}/state|ran:--log-file|ran:{0}/log/stub.log|",
                root.display()
            )
        );

        // A different stamp probes instead and reports what is installed.
        let out = run_sh(
            &launch_command("~/my root", &["0.2.0 1 1".into()]),
            home.path(),
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let probe = parse_probe(stdout.split_once(PROBE_MARKER).unwrap().1).unwrap();
        assert_eq!(probe.installed, "0.1.0 9 9");
        assert_eq!(probe.installed_version, "ran:--version|");
    }

    #[test]
    fn probe_should_report_why_an_installed_stub_does_not_run() {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join(".opencode-remote/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let stub = bin.join("opencode-remote-stub");
        std::fs::write(
            &stub,
            "#!/bin/sh\necho 'line one' >&2\necho 'line two' >&2\nexit 3\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bin.join("opencode-remote-stub.id"), "0.1.0 9 9\n").unwrap();
        let out = run_sh(
            &launch_command("~/.opencode-remote", &["other".into()]),
            home.path(),
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let probe = parse_probe(stdout.split_once(PROBE_MARKER).unwrap().1).unwrap();
        assert_eq!(probe.installed, "0.1.0 9 9");
        assert_eq!(probe.installed_version, "");
        assert_eq!(probe.version_error, "line one line two");
    }

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

    #[test]
    fn parse_probe_should_reject_garbage() {
        assert!(parse_probe("nothing").is_err());
        assert!(parse_probe("uname=Linux\n").is_err());
    }
}
