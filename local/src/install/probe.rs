//! Finding out what a host has: the one-exec launcher (run the installed stub when its stamp
//! matches, otherwise print a probe), and the probe on its own.

use super::{BootstrapError, ROOT_PRELUDE, stubs};
use crate::ssh::Connection;
use crate::ssh::quote;

/// Marks the start of probe output (anything before it is login-script noise).
pub const PROBE_MARKER: &str = "OPENCODE-REMOTE-PROBE v1";

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
    fn parse_probe_should_reject_garbage() {
        assert!(parse_probe("nothing").is_err());
        assert!(parse_probe("uname=Linux\n").is_err());
    }
}
