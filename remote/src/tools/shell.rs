//! Running a shell command on the host: spawn in its own process group, capture stdout and
//! stderr in arrival order (the tail, capped), report progress, abort (SIGTERM, then SIGKILL),
//! time out. Knows nothing of sessions, messages or events: `!shell`, the agent's `bash` tool
//! and terminals share it.
//!
//! The command runs as `$SHELL -l -c` (bash, zsh, ksh, mksh, dash or sh; anything else gets
//! `/bin/sh`), so the user's login profile applies as in a terminal on the host (their `PATH`).
//! Start-up files inherited from the environment (`BASH_ENV`, `ENV`), `CDPATH` and exported
//! shell functions (`BASH_FUNC_*`) are removed, and `HOME` is the one the path check used.
//! What the user's own profile defines (functions, a `cd` wrapper) still applies: the path
//! check reads the command as text and cannot see it (see [`crate::policy`]).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::tools::procs::Procs;

/// Most output kept (the tail).
pub const MAX_OUTPUT: usize = 64 << 10;

/// How often progress is reported while output arrives.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Grace between SIGTERM and SIGKILL on abort or timeout.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long output is still collected after the command exited: background jobs it left may
/// keep the pipes open; they stay in its process group and die with the stub.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    /// The command line.
    pub line: &'a str,
    /// Working directory.
    pub cwd: &'a Path,
    /// `HOME` for the shell (the one the path check resolved `~` with).
    pub home: &'a Path,
    /// Stop it after this long.
    pub timeout: Option<Duration>,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with a code.
    Code(i32),
    /// Killed by a signal (not ours).
    Signal(i32),
    /// Stopped by the caller's cancel token.
    Aborted,
    /// Stopped by the timeout.
    TimedOut,
    /// Its status could not be read.
    Unknown,
}

/// The finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Output (stdout and stderr in arrival order), at most [`MAX_OUTPUT`] bytes of the tail,
    /// with a note of what was omitted.
    pub output: String,
    /// Bytes dropped from the start.
    pub omitted: usize,
    /// How it ended.
    pub exit: Exit,
}

/// Captured output: the tail, capped.
#[derive(Debug, Default)]
struct Output {
    text: Vec<u8>,
    omitted: usize,
}

impl Output {
    fn push(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        if self.text.len() > MAX_OUTPUT {
            let excess = self.text.len() - MAX_OUTPUT;
            self.text.drain(..excess);
            self.omitted += excess;
        }
    }

    fn render(&self) -> String {
        let text = String::from_utf8_lossy(&self.text);
        // Do not start in the middle of a UTF-8 sequence after trimming.
        let text = text.trim_start_matches('\u{FFFD}');
        if self.omitted == 0 {
            text.to_owned()
        } else {
            format!("[… {} earlier bytes omitted …]\n{text}", self.omitted)
        }
    }
}

/// The login shell to run commands with, and its arguments before the command line.
pub fn program() -> (String, [&'static str; 2]) {
    let shell = std::env::var("SHELL").unwrap_or_default();
    let name = shell.rsplit('/').next().unwrap_or_default();
    match name {
        // Login shells give the user's PATH and environment, like a terminal on the host.
        "bash" | "zsh" | "ksh" | "mksh" | "dash" | "sh" => (shell, ["-l", "-c"]),
        // fish, csh, nu…: their syntax differs from what OpenCode users type; use sh.
        _ => ("/bin/sh".to_owned(), ["-l", "-c"]),
    }
}

/// The environment the path check assumes (see the module docs): no inherited start-up files,
/// no `CDPATH`, no exported functions, `HOME` as given.
fn clean_env(
    command: &mut tokio::process::Command,
    home: &Path,
    inherited: impl Iterator<Item = OsString>,
) {
    command
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .env_remove("CDPATH")
        .env("HOME", home);
    for key in inherited {
        if key.as_encoded_bytes().starts_with(b"BASH_FUNC_") {
            command.env_remove(key);
        }
    }
}

/// Runs `command` to the end (or until `cancel` or the timeout), calling `progress` with the
/// output so far at most every [`PROGRESS_EVERY`] while it runs.
///
/// # Errors
///
/// When the shell cannot be started (the message names it).
pub async fn run(
    procs: &Procs,
    command: Command<'_>,
    cancel: &CancellationToken,
    mut progress: impl FnMut(&str),
) -> Result<Run, String> {
    let (program, args) = program();
    let mut child_command = tokio::process::Command::new(&program);
    child_command
        .args(args)
        .arg(format!("unset CDPATH; {}", command.line))
        .current_dir(command.cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    clean_env(
        &mut child_command,
        command.home,
        std::env::vars_os().map(|(key, _)| key),
    );
    Procs::prepare(&mut child_command);
    let (mut child, _registration) = procs
        .spawn(&mut child_command)
        .map_err(|err| format!("cannot start {program}: {err}"))?;
    let pgid = child.id().map_or(0, |pid| pid as i32);
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("cannot capture the command's output".into());
    };
    let mut output = Output::default();
    let mut reported = String::new();
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut out_open, mut err_open) = (true, true);
    let mut out_buf = vec![0u8; 16 << 10];
    let mut err_buf = vec![0u8; 16 << 10];
    let mut stopped: Option<Exit> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let deadline = command.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut status = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if !out_open && !err_open && status.is_some() {
            break;
        }
        if drain_until.is_some_and(|at| tokio::time::Instant::now() >= at) {
            break;
        }
        tokio::select! {
            n = stdout.read(&mut out_buf), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => output.push(out_buf.get(..n).unwrap_or_default()),
            },
            n = stderr.read(&mut err_buf), if err_open => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => output.push(err_buf.get(..n).unwrap_or_default()),
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited.ok());
                drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            () = sleep_until(drain_until) => {}
            _ = ticker.tick() => {
                let rendered = output.render();
                if rendered != reported {
                    progress(&rendered);
                    reported = rendered;
                }
                if let Some(at) = kill_at && tokio::time::Instant::now() >= at {
                    procs.signal_group(pgid, rustix::process::Signal::KILL);
                    kill_at = None;
                }
            }
            () = sleep_until(deadline), if stopped.is_none() => {
                stopped = Some(Exit::TimedOut);
                procs.signal_group(pgid, rustix::process::Signal::TERM);
                kill_at = Some(tokio::time::Instant::now() + KILL_GRACE);
            }
            () = cancel.cancelled(), if stopped.is_none() => {
                stopped = Some(Exit::Aborted);
                procs.signal_group(pgid, rustix::process::Signal::TERM);
                kill_at = Some(tokio::time::Instant::now() + KILL_GRACE);
            }
        }
    }
    let rendered = output.render();
    if rendered != reported && !rendered.is_empty() {
        progress(&rendered);
    }
    let exit = match (stopped, status.flatten()) {
        (Some(stopped), _) => stopped,
        (None, Some(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            _ => Exit::Unknown,
        },
        (None, None) => Exit::Unknown,
    };
    Ok(Run {
        output: rendered,
        omitted: output.omitted,
        exit,
    })
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_should_keep_the_tail_and_say_what_was_omitted() {
        let mut output = Output::default();
        output.push(b"hello ");
        output.push(b"world");
        assert_eq!(output.render(), "hello world");
        output.push(&vec![b'x'; MAX_OUTPUT]);
        let rendered = output.render();
        assert!(
            rendered.starts_with("[… 11 earlier bytes omitted …]\n"),
            "{}",
            &rendered[..40]
        );
        assert!(rendered.ends_with('x'));
    }

    fn command<'a>(line: &'a str, dir: &'a Path) -> Command<'a> {
        Command {
            line,
            cwd: dir,
            home: dir,
            timeout: None,
        }
    }

    #[tokio::test]
    async fn run_should_capture_both_streams_and_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let procs = Procs::default();
        let run = run(
            &procs,
            command("echo out; echo err >&2; pwd; exit 3", dir.path()),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(run.exit, Exit::Code(3));
        assert!(run.output.contains("out\n") && run.output.contains("err\n"));
        let cwd = dir.path().canonicalize().unwrap();
        assert!(
            run.output.contains(&*cwd.to_string_lossy()),
            "{}",
            run.output
        );
    }

    #[tokio::test]
    async fn run_should_stop_on_cancel_and_on_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let procs = Procs::default();
        let cancel = CancellationToken::new();
        let aborting = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            aborting.cancel();
        });
        let started = std::time::Instant::now();
        let aborted = run(
            &procs,
            command("echo a; sleep 30", dir.path()),
            &cancel,
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(aborted.exit, Exit::Aborted);
        assert_eq!(aborted.output, "a\n");
        let mut timed = command("sleep 30", dir.path());
        timed.timeout = Some(Duration::from_millis(200));
        let timed_out = run(&procs, timed, &CancellationToken::new(), |_| {})
            .await
            .unwrap();
        assert_eq!(timed_out.exit, Exit::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn clean_env_should_drop_startup_files_cdpath_and_exported_functions() {
        let mut command = tokio::process::Command::new("sh");
        let inherited = ["PATH", "BASH_FUNC_cd%%", "BASH_FUNC_ls()", "LANG"].map(OsString::from);
        clean_env(&mut command, Path::new("/h"), inherited.into_iter());
        let removed: Vec<String> = command
            .as_std()
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        for name in [
            "BASH_ENV",
            "ENV",
            "CDPATH",
            "BASH_FUNC_cd%%",
            "BASH_FUNC_ls()",
        ] {
            assert!(
                removed.iter().any(|r| r == name),
                "{name} not removed: {removed:?}"
            );
        }
        assert!(!removed.iter().any(|r| r == "PATH" || r == "LANG"));
        let home = command
            .as_std()
            .get_envs()
            .find(|(key, _)| *key == "HOME")
            .and_then(|(_, value)| value);
        assert_eq!(home, Some(std::ffi::OsStr::new("/h")));
    }
}
