//! Every child process the stub starts, so that all of them die with it.
//!
//! Each child runs in its own process group (so shell pipelines and background jobs of a
//! command can be killed together), gets `PR_SET_PDEATHSIG(SIGKILL)` (covers the stub being
//! SIGKILLed), and never inherits the wire (see `stdio`). On orderly shutdown [`Procs::kill_all`]
//! signals every group still alive.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Registry of live child process groups. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Procs {
    groups: Arc<Mutex<HashSet<i32>>>,
}

/// Removes a group from the registry when the child is done.
#[derive(Debug)]
pub struct Registration {
    procs: Procs,
    pgid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Background jobs may outlive the command's main process; keep the group registered
        // while any member lives, so they still die with the stub.
        let alive = Pid::from_raw(self.pgid)
            .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok());
        if !alive {
            self.procs.lock().remove(&self.pgid);
        }
    }
}

impl Procs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        // A panic while holding this lock cannot leave the set inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Prepares `command` to run as a well-behaved child: its own process group, killed if the
    /// stub dies, stdin from `/dev/null`, killed when its handle is dropped.
    pub fn prepare(command: &mut tokio::process::Command) {
        command
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let parent = rustix::process::getpid();
        // SAFETY: the closure only makes async-signal-safe syscalls (prctl, getppid).
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                // The parent may have died between fork and prctl.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
    }

    /// Spawns a command prepared with [`Procs::prepare`] and registers its process group.
    ///
    /// # Errors
    ///
    /// When the spawn fails.
    pub fn spawn(
        &self,
        command: &mut tokio::process::Command,
    ) -> std::io::Result<(tokio::process::Child, Registration)> {
        let child = command.spawn()?;
        let pgid = child.id().map_or(0, |pid| pid as i32);
        if pgid > 0 {
            self.lock().insert(pgid);
        }
        Ok((
            child,
            Registration {
                procs: self.clone(),
                pgid,
            },
        ))
    }

    /// Registers the process group of a child started elsewhere (a terminal's session leader),
    /// so it dies with the stub like the others.
    pub fn register(&self, pgid: i32) -> Registration {
        if pgid > 0 {
            self.lock().insert(pgid);
        }
        Registration {
            procs: self.clone(),
            pgid,
        }
    }

    /// Sends `signal` to one registered group (e.g. on abort).
    pub fn signal_group(&self, pgid: i32, signal: Signal) {
        if let Some(pid) = Pid::from_raw(pgid) {
            // ESRCH just means the group is gone already.
            if let Err(err) = rustix::process::kill_process_group(pid, signal) {
                tracing::debug!(pgid, %err, "signal to process group failed");
            }
        }
    }

    /// Number of registered groups.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no group is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SIGTERM every group, wait up to `grace` for them to go away, then SIGKILL the rest.
    /// Blocking; meant for the final moments of the process.
    pub fn kill_all(&self, grace: Duration) {
        let groups: Vec<i32> = self.lock().iter().copied().collect();
        if groups.is_empty() {
            return;
        }
        tracing::info!(count = groups.len(), "terminating child process groups");
        for &pgid in &groups {
            self.signal_group(pgid, Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        let alive = |pgid: i32| {
            Pid::from_raw(pgid)
                .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
        };
        while Instant::now() < deadline && groups.iter().any(|&pgid| alive(pgid)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for &pgid in &groups {
            if alive(pgid) {
                self.signal_group(pgid, Signal::KILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kill_all_should_end_whole_process_groups() {
        let procs = Procs::default();
        let mut command = tokio::process::Command::new("sh");
        // A background grandchild in the same group, plus a shell ignoring SIGTERM.
        command.args(["-c", "trap '' TERM; sleep 300 & echo $!; wait"]);
        command.stdout(std::process::Stdio::piped());
        Procs::prepare(&mut command);
        let (mut child, _registration) = procs.spawn(&mut command).unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 32];
        while !line.ends_with('\n') {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0);
            line.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        let grandchild: i32 = line.trim().parse().unwrap();
        assert_eq!(procs.len(), 1);

        let started = Instant::now();
        let killer = procs.clone();
        tokio::task::spawn_blocking(move || killer.kill_all(Duration::from_millis(200)))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        let status = child.wait().await.unwrap();
        assert!(!status.success());
        // The grandchild was in the same group; give the kernel a moment to reap it.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
            stat.map_or(true, |s| s.split(' ').nth(2) == Some("Z"))
        });
        assert!(gone, "grandchild {grandchild} survived");
    }
}
