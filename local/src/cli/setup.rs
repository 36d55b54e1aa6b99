//! `opencode-remote setup`: prepare a host once, as a person at a terminal (binary install only:
//! nothing keeps running on the host afterwards; the plugin starts the stub per connection).
//!
//! 1. SSH, verifying the host key: an unknown key is shown with its `SHA256:` fingerprint and
//!    recorded only after the person confirms (or with `--accept-new`); a changed key is always
//!    refused.
//! 2. If no key works but the host takes passwords: with a person at the terminal (or `sshpass`
//!    answering the prompt), log in with the password and install a dedicated key
//!    (`~/.ssh/opencode-remote-<host>`); without one, print the exact manual steps.
//! 3. Probe the platform, install or upgrade the stub, run its `--version`.
//! 4. Say how to test it by hand.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::io::Write;

use super::{HostArgs, home, make_interactive, resolve};
use crate::bridge::connector::Connector;
use crate::install::stubs;
use crate::install::{self, Installed, Probe};
use crate::ssh::quote;
use crate::ssh::{self, SshError, Target};

/// What setup did.
#[derive(Debug)]
pub struct Outcome {
    /// Platform.
    pub probe: Probe,
    /// Install result.
    pub installed: Installed,
    /// `opencode-remote-stub --version` on the host.
    pub version: String,
    /// The key installed for a password-only host.
    pub key_installed: Option<PathBuf>,
    /// How SSH authentication succeeded.
    pub auth_method: String,
    /// Host key fingerprint.
    pub fingerprint: String,
}

/// Setup failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// SSH failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// Installing failed.
    #[error(transparent)]
    Bootstrap(#[from] install::BootstrapError),
    /// Password-only host and nobody to type the password.
    #[error("{0}")]
    NeedsManualKey(String),
    /// Key generation or installation failed.
    #[error("{0}")]
    Key(String),
}

/// Generates an ed25519 key pair at `path` (with `ssh-keygen`) unless it exists; returns the
/// public key line.
///
/// # Errors
///
/// When `ssh-keygen` is missing or fails.
pub fn ensure_key(path: &Path) -> Result<String, SetupError> {
    let public = PathBuf::from(format!("{}.pub", path.display()));
    if !path.exists() {
        if let Some(dir) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|err| {
                    SetupError::Key(format!("cannot create {}: {err}", dir.display()))
                })?;
        }
        let output = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "opencode-remote",
                "-f",
            ])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|err| {
                SetupError::Key(format!(
                    "cannot run ssh-keygen to create {}: {err}",
                    path.display()
                ))
            })?;
        if !output.status.success() {
            return Err(SetupError::Key(format!(
                "ssh-keygen failed for {}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    let line = std::fs::read_to_string(&public)
        .map_err(|err| SetupError::Key(format!("cannot read {}: {err}", public.display())))?;
    Ok(line.trim().to_owned())
}

/// The manual steps for a password-only host when nobody can type the password here.
pub fn manual_steps(target: &Target, key: &Path, public: &str) -> String {
    let mut port = if target.port == 22 {
        String::new()
    } else {
        format!("-p {} ", target.port)
    };
    if !target.jumps.is_empty() {
        let hops: Vec<String> = target
            .jumps
            .iter()
            .map(|j| format!("{}@{}:{}", j.user, j.host, j.port))
            .collect();
        port.push_str(&format!("-J {} ", hops.join(",")));
    }
    format!(
        "no key is accepted by {user}@{host} and no password can be asked here (no terminal; for \
         unattended runs set SSHPASS and install sshpass). Install this key on the host by hand:\n\
         \x20 1. log in with your password:  ssh {port}{user}@{host}\n\
         \x20 2. on the host, run:  umask 077; mkdir -p ~/.ssh && printf '%s\\n' {line} >> ~/.ssh/authorized_keys\n\
         \x20 3. then again:  scripts/setup-host.sh {host} {user} {p} {key}",
        user = target.user,
        host = target.alias,
        p = target.port,
        line = quote::sh(public),
        key = key.display(),
    )
}

/// Prepares the host. `step` receives one human-readable line per step.
///
/// # Errors
///
/// See [`SetupError`]; every message says what to do.
pub async fn prepare(
    connector: &Connector,
    home: &Path,
    step: &mut (dyn FnMut(&str) + Send),
) -> Result<Outcome, SetupError> {
    let target = &connector.target;
    let started = Instant::now();
    step(&format!(
        "connecting to {}@{}:{}",
        target.user, target.host, target.port
    ));
    let mut key_installed = None;
    let connection = match ssh::connect(target).await {
        Ok(connection) => connection,
        Err(SshError::Auth {
            password_possible: true,
            ..
        }) if !target.interactive => {
            let key = ssh::dedicated_key_path(home, &target.host);
            let public = ensure_key(&key)?;
            return Err(SetupError::NeedsManualKey(manual_steps(
                target, &key, &public,
            )));
        }
        Err(err) => return Err(err.into()),
    };
    step(&format!(
        "host key {} verified; logged in with {} ({} ms)",
        connection.fingerprint,
        connection.auth_method,
        started.elapsed().as_millis()
    ));
    let mut connection = connection;
    let first_login = connection.auth_method.clone();
    if matches!(
        connection.auth_method.as_str(),
        "password" | "keyboard-interactive"
    ) {
        let key = ssh::dedicated_key_path(home, &target.host);
        let public = ensure_key(&key)?;
        step(&format!(
            "installing key {} for {}@{}",
            key.display(),
            target.user,
            target.host
        ));
        let script = "umask 077; mkdir -p \"$HOME/.ssh\" && touch \"$HOME/.ssh/authorized_keys\" && \
                      { grep -qxF \"$1\" \"$HOME/.ssh/authorized_keys\" || printf '%s\\n' \"$1\" >> \"$HOME/.ssh/authorized_keys\"; }";
        let command = format!(
            "exec /bin/sh -c {} sh {}",
            quote::sh(script),
            quote::sh(&public)
        );
        let output = connection.run(&command, None).await?;
        if output.status != Some(0) {
            return Err(SetupError::Key(format!(
                "installing the key on the host failed: {}",
                output.diagnostic()
            )));
        }
        // Prove the key works on its own before relying on it.
        let mut keyed = target.clone();
        keyed.identity_files = vec![key.clone()];
        keyed.explicit_identity = true;
        keyed.identities_only = true;
        keyed.agent = None;
        keyed.interactive = false;
        connection.close().await;
        connection = ssh::connect(&keyed).await?;
        step(&format!(
            "the key works: logged in with {}",
            connection.auth_method
        ));
        key_installed = Some(key);
    }
    step("probing the host");
    let probe = install::probe(&connection, &connector.root).await?;
    step(&format!(
        "{} {} (kernel {}), home {}",
        probe.os, probe.arch, probe.kernel, probe.home
    ));
    let stub = stubs::for_arch(&probe.arch).map_err(install::BootstrapError::from)?;
    let mut report = install::upload_reporter(|line: &str| tracing::info!("{line}"));
    if !install::is_current(&probe, &stub) {
        step(&format!(
            "installing opencode-remote-stub ({} bytes) into {}/bin",
            stub.bytes.len(),
            connector.root
        ));
    }
    let installed = install::install(
        &connection,
        &connector.root,
        &probe,
        &stub,
        false,
        &mut report,
    )
    .await?;
    let stub_path = format!(
        "{}/bin/opencode-remote-stub",
        install::expand_root(&connector.root, &probe.home)
    );
    let version = install::version(&connection, &connector.root, &probe).await?;
    step(&format!("{stub_path} --version: {version}"));
    let fingerprint = connection.fingerprint.clone();
    let auth_method = if first_login == connection.auth_method {
        first_login
    } else {
        format!("{first_login}, then {}", connection.auth_method)
    };
    connection.close().await;
    Ok(Outcome {
        probe,
        installed,
        version,
        key_installed,
        auth_method,
        fingerprint,
    })
}

/// Runs `setup` for a person at a terminal: steps on stderr, a summary and how to test the
/// stub by hand on stdout.
///
/// # Errors
///
/// See [`SetupError`]; every message says what to do.
pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    let mut resolved = resolve(&args, "", "", None)?;
    make_interactive(&mut resolved, true);
    let home = home()?;
    let mut step = |line: &str| {
        let _ignored = writeln!(std::io::stderr(), "==> {line}");
    };
    let outcome = prepare(&resolved.connector, &home, &mut step).await?;
    let target = &resolved.connector.target;
    let what = outcome.installed.to_string();
    let ssh_port = if target.port == 22 {
        String::new()
    } else {
        format!("-p {} ", target.port)
    };
    let root = install::expand_root(&resolved.connector.root, &outcome.probe.home);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Host {}@{}:{} ({} {}, kernel {})",
        target.user,
        target.host,
        target.port,
        outcome.probe.os,
        outcome.probe.arch,
        outcome.probe.kernel
    )?;
    writeln!(out, "  host key   {}", outcome.fingerprint)?;
    writeln!(out, "  login      {}", outcome.auth_method)?;
    if let Some(key) = &outcome.key_installed {
        writeln!(
            out,
            "  new key    {} (installed in ~/.ssh/authorized_keys on the host)",
            key.display()
        )?;
        writeln!(
            out,
            "             record it: scripts/opencode-remote-cli.sh add <provider> {} {} {} {}",
            target.host,
            target.user,
            target.port,
            key.display()
        )?;
    }
    writeln!(
        out,
        "  stub       {root}/bin/opencode-remote-stub: {what}; {}",
        outcome.version
    )?;
    writeln!(
        out,
        "Nothing was started on the host: OpenCode starts the stub per connection."
    )?;
    writeln!(out, "Test it by hand:")?;
    writeln!(
        out,
        "  socat TCP-LISTEN:9000,bind=127.0.0.1,reuseaddr EXEC:\"ssh {ssh_port}{}@{} {root}/bin/opencode-remote-stub --stdio\" &",
        target.user, target.host
    )?;
    writeln!(
        out,
        "  curl --http2-prior-knowledge http://127.0.0.1:9000/global/health"
    )?;
    Ok(())
}
