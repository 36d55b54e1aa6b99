//! Starting a program on a new pseudo-terminal: the master side stays with the stub, the child
//! becomes a session leader (`setsid`) with the terminal as its controlling tty, stdin, stdout
//! and stderr, and dies with the stub (`PR_SET_PDEATHSIG`).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

/// A started terminal program.
#[derive(Debug)]
pub struct Spawned {
    /// The master side, non-blocking.
    pub master: OwnedFd,
    /// The program (its pid is also its process group and session id).
    pub child: tokio::process::Child,
}

/// What to start.
#[derive(Debug)]
pub struct Program<'a> {
    /// The executable (looked up on `PATH` when it has no `/`).
    pub command: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Working directory.
    pub cwd: &'a Path,
    /// Variables set on top of the stub's environment.
    pub env: &'a BTreeMap<String, String>,
    /// Initial size.
    pub rows: u16,
    /// Initial size.
    pub cols: u16,
}

/// Opens a pseudo-terminal and starts `program` on it.
///
/// # Errors
///
/// When no terminal can be opened or the program cannot be started.
pub fn spawn(program: &Program<'_>) -> io::Result<Spawned> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    resize(&master, program.rows, program.cols)?;

    let mut command = tokio::process::Command::new(program.command);
    command
        .args(program.args)
        .current_dir(program.cwd)
        .envs(program.env)
        .stdin(std::process::Stdio::from(slave.try_clone()?))
        .stdout(std::process::Stdio::from(slave.try_clone()?))
        .stderr(std::process::Stdio::from(slave))
        .kill_on_drop(false);
    let parent = rustix::process::getpid();
    // SAFETY: the closure only makes async-signal-safe syscalls (setsid, ioctl, prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            rustix::process::setsid()?;
            // stdin is the terminal by now (std sets up stdio before these closures run).
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok(Spawned { master, child })
}

/// Sets the terminal's size; the kernel sends SIGWINCH to its foreground process group.
///
/// # Errors
///
/// When the ioctl fails (e.g. the terminal is gone).
pub fn resize(master: &impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        master,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// The user's shell for a new terminal, as OpenCode picks it: `$SHELL` when it exists, else
/// `bash` on `PATH`, else `/bin/sh`.
pub fn preferred_shell() -> String {
    if let Some(shell) = std::env::var_os("SHELL") {
        let shell = shell.to_string_lossy().into_owned();
        if resolve(&shell).is_some() {
            return shell;
        }
    }
    which("bash").unwrap_or_else(|| "/bin/sh".to_owned())
}

/// Whether OpenCode starts `command` as a login shell (`-l`).
pub fn is_login_shell(command: &str) -> bool {
    matches!(
        basename(command).to_ascii_lowercase().as_str(),
        "bash" | "dash" | "fish" | "ksh" | "sh" | "zsh"
    )
}

/// `GET /pty/shells` items: `/etc/shells` entries that exist (or bash, zsh, sh when the file is
/// missing), `name` their base name when that is on `PATH`, `acceptable` unless fish or nu.
pub fn shells() -> Vec<(String, String, bool)> {
    let listed = std::fs::read_to_string("/etc/shells").unwrap_or_default();
    let mut paths: Vec<String> = Vec::new();
    for line in listed.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if !paths.iter().any(|p| p == line) {
            paths.push(line.to_owned());
        }
    }
    if paths.is_empty() {
        paths = ["/bin/bash", "/bin/zsh", "/bin/sh"]
            .map(str::to_owned)
            .to_vec();
    }
    paths
        .into_iter()
        .filter(|path| resolve(path).is_some())
        .map(|path| {
            let base = basename(&path).to_owned();
            let name = if which(&base).is_some() {
                base.clone()
            } else {
                path.clone()
            };
            let acceptable = !matches!(base.to_ascii_lowercase().as_str(), "fish" | "nu");
            (path, name, acceptable)
        })
        .collect()
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// An absolute path that is a file, or a name found on `PATH`.
fn resolve(command: &str) -> Option<String> {
    if command.starts_with('/') {
        return Path::new(command).is_file().then(|| command.to_owned());
    }
    which(command)
}

fn which(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate.is_file()
                && rustix::fs::access(candidate.as_path(), rustix::fs::Access::EXEC_OK).is_ok()
        })
        .map(|p| p.to_string_lossy().into_owned())
}
