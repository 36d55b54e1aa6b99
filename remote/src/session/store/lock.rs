//! One stub owns a workspace's log at a time: the newest connection takes the lock over,
//! terminating a stub left behind by a dead connection.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{StoreError, io_error};

/// Takes the workspace lock, terminating the previous owner if it still runs.
pub(super) fn take_over(dir: &Path, workspace_id: &str) -> Result<File, StoreError> {
    use rustix::fs::{FlockOperation, flock};
    let lock_path = dir.join(".lock");
    let owner_path = dir.join(".owner");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    let started = Instant::now();
    let mut signalled = None;
    loop {
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(err) if err == rustix::io::Errno::WOULDBLOCK || err == rustix::io::Errno::INTR => {}
            Err(err) => {
                return Err(StoreError::Io {
                    path: lock_path,
                    source: err.into(),
                });
            }
        }
        let pid: i32 = std::fs::read_to_string(&owner_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let elapsed = started.elapsed();
        if pid == std::process::id() as i32 {
            // Another handle of this very process holds it: never signal ourselves.
            return Err(StoreError::Busy {
                workspace: workspace_id.to_owned(),
                pid,
            });
        }
        match (signalled, rustix::process::Pid::from_raw(pid)) {
            (None, Some(owner)) => {
                tracing::warn!(
                    pid,
                    workspace = workspace_id,
                    "another stub serves this workspace; taking over"
                );
                let _gone = rustix::process::kill_process(owner, rustix::process::Signal::TERM);
                signalled = Some(Instant::now());
            }
            (Some(at), Some(owner)) if at.elapsed() > Duration::from_secs(2) => {
                let _gone = rustix::process::kill_process(owner, rustix::process::Signal::KILL);
            }
            _ => {}
        }
        if elapsed > Duration::from_secs(5) {
            return Err(StoreError::Busy {
                workspace: workspace_id.to_owned(),
                pid,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut owner = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&owner_path)
        .map_err(io_error(&owner_path))?;
    owner
        .write_all(std::process::id().to_string().as_bytes())
        .map_err(io_error(&owner_path))?;
    Ok(lock)
}
