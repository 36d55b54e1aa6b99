//! `opencode-remote doctor`: checks, step by step and timed, everything a workspace needs, and
//! prints the exact fix for each failure. It changes nothing (except recording a host key the
//! person confirmed at the terminal).

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use std::io::Write;

use anyhow::bail;

use super::{HostArgs, home, make_interactive, resolve};
use crate::bridge::connector::{self, Connector};
use crate::config;
use crate::install;
use crate::install::stubs;
use crate::ssh::quote;
use crate::ssh::{self, SshError};

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Passed with something worth knowing.
    Warn,
    /// Failed; the fix says what to do.
    Fail,
    /// Not run because an earlier step failed.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Result.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.status {
            Status::Ok => " ok ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        write!(
            f,
            "[{label}] {:<12} {:>6} ms  {}",
            self.name,
            self.elapsed.as_millis(),
            self.detail
        )?;
        if let Some(fix) = &self.fix {
            for (index, line) in fix.lines().enumerate() {
                let lead = if index == 0 { "fix:" } else { "    " };
                write!(f, "\n       {lead} {line}")?;
            }
        }
        Ok(())
    }
}

/// Runs every check against `connector`'s host, calling `report` as each one finishes.
/// `again` is the host arguments as the user typed them, repeated in suggested commands.
/// Returns `true` when every check ran and none failed (warnings pass).
pub async fn check(
    connector: &Connector,
    config_line: Option<String>,
    again: &str,
    report: &mut dyn FnMut(&Check),
) -> bool {
    let mut ok = true;
    let mut emit = |check: Check| {
        // A check that could not run has not passed either.
        ok &= !matches!(check.status, Status::Fail | Status::Skipped);
        report(&check);
        check.status
    };
    if let Some(line) = config_line {
        emit(Check {
            name: "config",
            status: Status::Ok,
            detail: line,
            fix: None,
            elapsed: Duration::ZERO,
        });
    }
    let target = &connector.target;
    let first_hop = target.jumps.first().unwrap_or(target);
    let via = if target.jumps.is_empty() {
        String::new()
    } else {
        format!(
            " via {}",
            target
                .jumps
                .iter()
                .map(|j| format!("{}@{}:{}", j.user, j.host, j.port))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    emit(Check {
        name: "host",
        status: Status::Ok,
        detail: format!(
            "{} → {}@{}:{}{via}",
            target.alias, target.user, target.host, target.port
        ),
        fix: None,
        elapsed: Duration::ZERO,
    });

    // DNS and TCP to the first hop.
    let started = Instant::now();
    let host = first_hop.host.clone();
    let port = first_hop.port;
    let resolved = tokio::task::spawn_blocking(move || {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect::<Vec<_>>)
    })
    .await
    .unwrap_or_else(|err| Err(std::io::Error::other(err)));
    let addresses = match resolved {
        Ok(addresses) if !addresses.is_empty() => {
            let shown: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            emit(Check {
                name: "dns",
                status: Status::Ok,
                detail: format!("{} → {}", first_hop.host, shown.join(", ")),
                fix: None,
                elapsed: started.elapsed(),
            });
            addresses
        }
        other => {
            let why = other
                .err()
                .map_or_else(|| "no addresses".to_owned(), |e| e.to_string());
            emit(Check {
                name: "dns",
                status: Status::Fail,
                detail: format!("cannot resolve {}: {why}", first_hop.host),
                fix: Some(format!(
                    "check the host name in your config (ssh.host) or ~/.ssh/config HostName, or use the address; `getent hosts {}` should print it",
                    first_hop.host
                )),
                elapsed: started.elapsed(),
            });
            return false;
        }
    };
    let started = Instant::now();
    let mut reached = None;
    let mut last_error = String::new();
    for address in &addresses {
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(_stream)) => {
                reached = Some(*address);
                break;
            }
            Ok(Err(err)) => last_error = err.to_string(),
            Err(_) => last_error = "no answer within 5 s".into(),
        }
    }
    match reached {
        Some(address) => {
            emit(Check {
                name: "tcp",
                status: Status::Ok,
                detail: format!("{address} accepts connections"),
                fix: None,
                elapsed: started.elapsed(),
            });
        }
        None => {
            emit(Check {
                name: "tcp",
                status: Status::Fail,
                detail: format!(
                    "cannot connect to {}:{}: {last_error}",
                    first_hop.host, first_hop.port
                ),
                fix: Some(format!(
                    "is sshd running and listening on port {}? is a firewall or VPN in the way? `nc -vz {} {}`",
                    first_hop.port, first_hop.host, first_hop.port
                )),
                elapsed: started.elapsed(),
            });
            return false;
        }
    }

    // Host key and authentication.
    let started = Instant::now();
    let connection = match ssh::connect(target).await {
        Ok(connection) => {
            emit(Check {
                name: "host key",
                status: Status::Ok,
                detail: format!("{} is in known_hosts", connection.fingerprint),
                fix: None,
                elapsed: started.elapsed(),
            });
            emit(Check {
                name: "auth",
                status: Status::Ok,
                detail: format!(
                    "logged in as {} with {}; cipher {}",
                    target.user, connection.auth_method, connection.cipher
                ),
                fix: None,
                elapsed: Duration::ZERO,
            });
            connection
        }
        Err(err) => {
            let (name, fix) = match innermost(&err) {
                SshError::HostKeyUnknown { entry, .. } => ("host key", format!(
                    "check the fingerprint with the host's administrator, then run\nopencode-remote setup {again} --accept-new   (what scripts/setup-host.sh runs)\n(or `ssh` to {entry} once and answer yes)"
                )),
                SshError::HostKeyChanged { entry, file, line, .. } => ("host key", format!(
                    "if the change is expected (host reinstalled), remove the old key: ssh-keygen -R '{entry}' -f {}  (line {line}), then trust the new one",
                    file.display()
                )),
                SshError::HostKeyRevoked { .. } => ("host key", "the key is revoked in known_hosts: talk to the host's administrator".to_owned()),
                SshError::Auth { .. } => ("auth", format!(
                    "load your key into ssh-agent (`ssh-add`), set ssh.identityFile for the host, or install a key (password-only hosts) with\nopencode-remote setup {again}   (what scripts/setup-host.sh runs)"
                )),
                SshError::Timeout { .. } => ("ssh", "the SSH handshake did not finish: check for a slow or filtering network, or raise tunnel.connectTimeout".to_owned()),
                _ => ("ssh", "see the error above".to_owned()),
            };
            emit(Check {
                name,
                status: Status::Fail,
                detail: format!("{err:#}"),
                fix: Some(fix),
                elapsed: started.elapsed(),
            });
            return false;
        }
    };

    // The login shell.
    let started = Instant::now();
    const MARKER: &str = "OPENCODE-REMOTE-DOCTOR";
    match connection
        .run(
            &format!("echo {MARKER}; echo \"$SHELL\"; echo \"$HOME\""),
            None,
        )
        .await
    {
        Ok(output) if output.status == Some(0) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let (noise, rest) = stdout.split_once(MARKER).unwrap_or(("", &stdout));
            let mut lines = rest.lines().skip(1);
            let shell = lines.next().unwrap_or_default().to_owned();
            let home = lines.next().unwrap_or_default().to_owned();
            if noise.trim().is_empty() {
                emit(Check {
                    name: "shell",
                    status: Status::Ok,
                    detail: format!("{shell}, home {home}, quiet login"),
                    fix: None,
                    elapsed: started.elapsed(),
                });
            } else {
                emit(Check {
                    name: "shell",
                    status: Status::Warn,
                    detail: format!("{shell}, home {home}; login scripts print {} bytes before commands: {:?}", noise.len(), noise.chars().take(80).collect::<String>()),
                    fix: Some("harmless (skipped by opencode-remote), but costs time; make ~/.bashrc or ~/.profile print only for interactive shells, e.g. `[ -t 1 ] || return` or `case $- in *i*) ;; *) return;; esac` at the top".into()),
                    elapsed: started.elapsed(),
                });
            }
        }
        Ok(output) => {
            emit(Check {
                name: "shell",
                status: Status::Fail,
                detail: format!("a trivial command failed: {}", output.diagnostic()),
                fix: Some(format!(
                    "the server does not run commands for {}: check the account's login shell (`getent passwd {}` on the host; it must run `sh -c` commands, not /bin/false or nologin), a ForceCommand or Match block in sshd_config, and rc files that exit",
                    target.user, target.user
                )),
                elapsed: started.elapsed(),
            });
            return false;
        }
        Err(err) => {
            emit(Check {
                name: "shell",
                status: Status::Fail,
                detail: format!("{err:#}"),
                fix: Some(
                    "the server refuses to run commands for this user: check for a ForceCommand or a restricted login shell"
                        .into(),
                ),
                elapsed: started.elapsed(),
            });
            return false;
        }
    }

    // The install root: executable, with room for the stub.
    let started = Instant::now();
    let stub_size =
        stubs::for_arch(std::env::consts::ARCH).map_or(8 << 20, |s| s.bytes.len() as u64);
    let script = r#"r=$1; case $r in "~") r=$HOME ;; "~/"*) r=$HOME/${r#??} ;; esac; umask 077; mkdir -p "$r/bin" || exit 10; t="$r/bin/.doctor.$$"; printf '#!/bin/sh\necho exec-ok\n' > "$t" && chmod 700 "$t" || exit 11; out=$("$t" 2>&1); rm -f "$t"; [ "$out" = exec-ok ] || exit 12; df -Pk "$r" | awk 'NR==2 {print $4}'"#;
    let command = format!(
        "exec /bin/sh -c {} sh {}",
        quote::sh(script),
        quote::sh(&connector.root)
    );
    match connection.run(&command, None).await {
        Ok(output) if output.status == Some(0) => {
            let free_kib: u64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            if free_kib * 1024 < stub_size * 2 {
                emit(Check {
                    name: "disk",
                    status: Status::Fail,
                    detail: format!("only {free_kib} KiB free under {}", connector.root),
                    fix: Some(format!(
                        "free at least {} KiB there, or set installRoot to a directory with space",
                        stub_size * 2 / 1024
                    )),
                    elapsed: started.elapsed(),
                });
                return false;
            }
            emit(Check {
                name: "install root",
                status: Status::Ok,
                detail: format!(
                    "{} is writable and executable, {} MiB free",
                    connector.root,
                    free_kib / 1024
                ),
                fix: None,
                elapsed: started.elapsed(),
            });
        }
        Ok(output) => {
            let (detail, fix) = match output.status {
                Some(10) | Some(11) => (format!("cannot write to {}", connector.root), "check permissions and quota of the remote home, or set installRoot to a writable directory".to_owned()),
                Some(12) => (format!("programs cannot run from {} (noexec mount?)", connector.root), "set installRoot in the plugin options to a directory on an exec-able file system".to_owned()),
                _ => (output.diagnostic(), "check the remote user's shell".to_owned()),
            };
            emit(Check {
                name: "install root",
                status: Status::Fail,
                detail,
                fix: Some(fix),
                elapsed: started.elapsed(),
            });
            return false;
        }
        Err(err) => {
            emit(Check {
                name: "install root",
                status: Status::Fail,
                detail: format!("{err:#}"),
                fix: None,
                elapsed: started.elapsed(),
            });
            return false;
        }
    }

    // The stub.
    let started = Instant::now();
    let probe = match install::probe(&connection, &connector.root).await {
        Ok(probe) => probe,
        Err(err) => {
            emit(Check {
                name: "stub",
                status: Status::Fail,
                detail: format!("{err:#}"),
                fix: None,
                elapsed: started.elapsed(),
            });
            return false;
        }
    };
    connection.close().await;
    let ours = stubs::for_arch(&probe.arch);
    let current = match &ours {
        Ok(stub) if probe.installed == stub.identity && probe.installed_version.is_empty() => {
            emit(Check {
                name: "stub",
                status: Status::Fail,
                detail: format!(
                    "{}/bin/opencode-remote-stub is stamped current but does not run (damaged file?): {}",
                    connector.root,
                    if probe.version_error.is_empty() {
                        "no output"
                    } else {
                        &probe.version_error
                    }
                ),
                fix: Some(broken_stub_fix(again, &connector.root)),
                elapsed: started.elapsed(),
            });
            false
        }
        Ok(stub) if probe.installed == stub.identity => {
            emit(Check {
                name: "stub",
                status: Status::Ok,
                detail: format!("installed and current: {}", probe.installed_version),
                fix: None,
                elapsed: started.elapsed(),
            });
            true
        }
        Ok(_) if probe.installed.is_empty() => {
            emit(Check {
                name: "stub",
                status: Status::Fail,
                detail: format!("not installed on this {} {} host", probe.os, probe.arch),
                fix: Some(format!(
                    "opencode-remote install {again}   (or scripts/setup-host.sh)"
                )),
                elapsed: started.elapsed(),
            });
            false
        }
        Ok(_) => {
            emit(Check {
                name: "stub",
                status: Status::Warn,
                detail: format!(
                    "another build is installed ({}, stamp `{}`); it is replaced on the next connection",
                    probe.installed_version, probe.installed
                ),
                fix: Some(format!("opencode-remote install {again}")),
                elapsed: started.elapsed(),
            });
            false
        }
        Err(err) => {
            emit(Check {
                name: "stub",
                status: Status::Fail,
                detail: err.to_string(),
                fix: None,
                elapsed: started.elapsed(),
            });
            return false;
        }
    };

    // Handshake and health through the real path.
    let started = Instant::now();
    if !current {
        emit(Check {
            name: "handshake",
            status: Status::Skipped,
            detail: "needs the current stub".into(),
            fix: None,
            elapsed: Duration::ZERO,
        });
        return ok;
    }
    let mut quiet = |_: &str| {};
    match connector.connect(&mut quiet).await {
        Ok(upstream) => {
            let mut sender = upstream.sender.clone();
            let health = connector::health(&mut sender).await;
            upstream.connection.close().await;
            match health {
                Ok(health) => emit(Check {
                    name: "handshake",
                    status: Status::Ok,
                    detail: format!(
                        "stub {} (protocol {}) healthy, pid {}, serving {}",
                        health.version,
                        health.stub.protocol,
                        health.stub.pid,
                        health.stub.directory
                    ),
                    fix: None,
                    elapsed: started.elapsed(),
                }),
                Err(err) => emit(Check {
                    name: "handshake",
                    status: Status::Fail,
                    detail: err,
                    fix: Some(broken_stub_fix(again, &connector.root)),
                    elapsed: started.elapsed(),
                }),
            };
        }
        Err(err) => {
            emit(Check {
                name: "handshake",
                status: Status::Fail,
                detail: format!("{err:#}"),
                fix: Some(broken_stub_fix(again, &connector.root)),
                elapsed: started.elapsed(),
            });
        }
    }
    ok
}

/// What to do when the installed stub does not come up.
fn broken_stub_fix(again: &str, root: &str) -> String {
    format!(
        "reinstall it: opencode-remote install --force {again}\n(the bridge also reinstalls a stub that no longer runs by itself); if it still fails, the stub's log on the host says why: {root}/log/stub.log"
    )
}

/// The error behind `Jump` wrappers.
fn innermost(err: &SshError) -> &SshError {
    match err {
        SshError::Jump { source, .. } => innermost(source),
        other => other,
    }
}

/// Runs `doctor`: one line per check on stdout, with the fix for each failure.
///
/// # Errors
///
/// When a check failed or could not run.
pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let fail = |name: &'static str, detail: String, fix: &str| Check {
        name,
        status: Status::Fail,
        detail,
        fix: Some(fix.to_owned()),
        elapsed: Duration::ZERO,
    };
    // Configuration problems are checks too: shown with a fix, not as a bare error.
    let config_line = match (&args.destination, &args.config) {
        (Some(_), _) => None,
        (None, explicit) => match config::load(explicit.as_deref(), &home()?) {
            Ok(loaded) => Some(format!(
                "{} is valid (providers: {})",
                loaded.source,
                loaded.options.provider_names().join(", ")
            )),
            Err(err) => {
                let fix = "fix the file as the message says (`opencode-remote config list` shows what is there), or create one with `opencode-remote config init`";
                writeln!(out, "{}", fail("config", err.to_string(), fix))?;
                bail!("some checks failed (see the fixes above)");
            }
        },
    };
    let mut resolved = match resolve(&args, "", "", None) {
        Ok(resolved) => resolved,
        Err(err) => {
            let fix = "use a provider and host (or alias) from the list above, or add the host with `opencode-remote config add`";
            writeln!(out, "{}", fail("host", format!("{err:#}"), fix))?;
            bail!("some checks failed (see the fixes above)");
        }
    };
    make_interactive(&mut resolved, false);
    let again = args.command_line();
    let ok = check(&resolved.connector, config_line, &again, &mut |check| {
        let _ignored = writeln!(out, "{check}");
    })
    .await;
    if ok {
        writeln!(std::io::stdout(), "All checks passed.")?;
        Ok(())
    } else {
        bail!("some checks failed or could not run (see the fixes above)")
    }
}
