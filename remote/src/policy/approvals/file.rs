//! The approvals file on disk: opened relative to directory descriptors (a path swapped after
//! the checks is not followed), owner and mode checked, locked for read-modify-write, written
//! atomically (temp file, fsync, rename, fsync the directory).

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

impl Approvals {
    /// Opens `approvals/` below the state directory without following a symlink, creating it
    /// (0700) when `create`; `None` when it does not exist and `create` is false.
    pub(super) fn open_dir(&self, state: &OwnedFd, create: bool) -> Result<Option<OwnedFd>> {
        let path = self.dir_path();
        if create {
            match rustix::fs::mkdirat(state, DIR_NAME, Mode::from_raw_mode(0o700)) {
                // A new directory entry must be durable before files in it are.
                Ok(()) => rustix::fs::fsync(state)
                    .map_err(|errno| io_error("fsync", &self.state_dir, errno))?,
                Err(Errno::EXIST) => {}
                Err(errno) => return Err(io_error("create", &path, errno)),
            }
        }
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        let dir = match rustix::fs::openat(state, DIR_NAME, flags, Mode::empty()) {
            Ok(dir) => dir,
            Err(Errno::NOENT) if !create => return Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(insecure(&path, describe_non_dir(state, DIR_NAME)));
            }
            Err(errno) => return Err(io_error("open", &path, errno)),
        };
        check_owner_and_mode(&dir, &path, FileType::Directory)?;
        Ok(Some(dir))
    }

    /// Takes the exclusive lock of this workspace's file; released when the fd is dropped.
    pub(super) fn lock(&self, dir: &OwnedFd) -> Result<OwnedFd> {
        let name = format!("{}.lock", self.stem);
        let path = self.dir_path().join(&name);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let lock = rustix::fs::openat(dir, name.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(|errno| match errno {
                Errno::LOOP => insecure(&path, "is a symbolic link".to_owned()),
                errno => io_error("open", &path, errno),
            })?;
        check_owner_and_mode(&lock, &path, FileType::RegularFile)?;
        loop {
            match rustix::fs::flock(&lock, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(lock),
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(io_error("lock", &path, errno)),
            }
        }
    }

    /// Removes temp files a crashed writer left; called under the lock, so none is live.
    pub(super) fn remove_temp_files(&self, dir: &OwnedFd) -> Result<()> {
        let prefix = self.temp_prefix();
        let mut stale = Vec::new();
        let entries = rustix::fs::Dir::read_from(dir)
            .map_err(|errno| io_error("list", &self.dir_path(), errno))?;
        for entry in entries {
            let entry = entry.map_err(|errno| io_error("list", &self.dir_path(), errno))?;
            if entry.file_name().to_bytes().starts_with(prefix.as_bytes()) {
                stale.push(entry.file_name().to_owned());
            }
        }
        for name in stale {
            remove_temp(dir, name.as_c_str(), &self.dir_path());
        }
        Ok(())
    }

    /// The entries on disk; empty when the file does not exist.
    pub(super) fn read(&self, dir: &OwnedFd) -> Result<Vec<Entry>> {
        let path = self.file_path();
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(dir, self.file_name().as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Vec::new()),
            Err(Errno::LOOP) => return Err(insecure(&path, "is a symbolic link".to_owned())),
            Err(errno) => return Err(io_error("open", &path, errno)),
        };
        let stat = check_owner_and_mode(&fd, &path, FileType::RegularFile)?;
        let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
        if size > MAX_FILE_LEN {
            return Err(ApprovalsError::TooLarge {
                path,
                size,
                limit: MAX_FILE_LEN,
            });
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ApprovalsError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(ApprovalsError::TooLarge {
                path,
                size: bytes.len() as u64,
                limit: MAX_FILE_LEN,
            });
        }
        self.parse(&path, &bytes)
    }

    pub(super) fn parse(&self, path: &Path, bytes: &[u8]) -> Result<Vec<Entry>> {
        let corrupt = |source| ApprovalsError::Corrupt {
            path: path.to_path_buf(),
            source,
        };
        let header: Header = serde_json::from_slice(bytes).map_err(corrupt)?;
        if header.version > FORMAT_VERSION {
            return Err(ApprovalsError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: header.version,
                supported: FORMAT_VERSION,
            });
        }
        if header.version != FORMAT_VERSION {
            return Err(ApprovalsError::Invalid {
                path: path.to_path_buf(),
                reason: format!("unknown format version {}", header.version),
            });
        }
        let file: FileV1 = serde_json::from_slice(bytes).map_err(corrupt)?;
        if file.workspace != self.workspace {
            return Err(ApprovalsError::WorkspaceMismatch {
                path: path.to_path_buf(),
                found: file.workspace,
                expected: self.workspace.clone(),
            });
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(file.roots.len());
        for root in file.roots {
            let root_path = PathBuf::from(&root.path);
            if let Err(ApprovalsError::InvalidRoot { reason, .. }) = validate_root(&root_path) {
                return Err(ApprovalsError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("root {:?} {reason}", root.path),
                });
            }
            if !entries.iter().any(|entry| entry.path == root_path) {
                entries.push(Entry {
                    path: root_path,
                    approved_at: root.approved_at,
                });
            }
        }
        Ok(entries)
    }

    /// Replaces the file atomically: temp file (0600), write, fsync, rename, fsync the
    /// directory. On failure the temp file is removed and the old file is untouched.
    pub(super) fn write(&self, dir: &OwnedFd, entries: &[Entry]) -> Result<()> {
        let path = self.file_path();
        let file = FileV1 {
            version: FORMAT_VERSION,
            workspace: self.workspace.clone(),
            roots: entries
                .iter()
                .map(|entry| RootV1 {
                    // validate_root guarantees UTF-8 for every entry.
                    path: entry.path.to_string_lossy().into_owned(),
                    approved_at: entry.approved_at,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec(&file).map_err(|source| ApprovalsError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(source),
        })?;
        bytes.push(b'\n');
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(ApprovalsError::TooLarge {
                path,
                size: bytes.len() as u64,
                limit: MAX_FILE_LEN,
            });
        }

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp_name = format!(
            "{}{}-{}",
            self.temp_prefix(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let temp_path = self.dir_path().join(&temp_name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, temp_name.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(|errno| io_error("create", &temp_path, errno))?;
        let written = (|| {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
                .map_err(|errno| io_error("chmod", &temp_path, errno))?;
            let mut file = File::from(fd);
            file.write_all(&bytes)
                .map_err(|source| ApprovalsError::Io {
                    action: "write",
                    path: temp_path.clone(),
                    source,
                })?;
            rustix::fs::fsync(&file).map_err(|errno| io_error("fsync", &temp_path, errno))?;
            drop(file);
            rustix::fs::renameat(dir, temp_name.as_str(), dir, self.file_name().as_str())
                .map_err(|errno| io_error("rename", &temp_path, errno))
        })();
        if let Err(err) = written {
            remove_temp(dir, temp_name.as_str(), &self.dir_path());
            return Err(err);
        }
        rustix::fs::fsync(dir).map_err(|errno| io_error("fsync", &self.dir_path(), errno))
    }
}

/// Opens the state directory (following symlinks: it is the configured path), creating it
/// (0700) when `create`, and checks it is ours and not writable by others.
pub(super) fn open_state_dir(state_dir: &Path, create: bool) -> Result<Option<OwnedFd>> {
    if create && !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| ApprovalsError::Io {
                action: "create",
                path: state_dir.to_path_buf(),
                source,
            })?;
        if let Some(parent) = state_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            let parent_fd = rustix::fs::open(
                parent,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| io_error("open", parent, errno))?;
            rustix::fs::fsync(&parent_fd).map_err(|errno| io_error("fsync", parent, errno))?;
        }
    }
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let dir = match rustix::fs::open(state_dir, flags, Mode::empty()) {
        Ok(dir) => dir,
        Err(Errno::NOENT) if !create => return Ok(None),
        Err(errno) => return Err(io_error("open", state_dir, errno)),
    };
    check_owner_and_mode(&dir, state_dir, FileType::Directory)?;
    Ok(Some(dir))
}

/// Refuses a file of the wrong type, owned by someone else, or writable by group or others.
pub(super) fn check_owner_and_mode(
    fd: &OwnedFd,
    path: &Path,
    expected: FileType,
) -> Result<rustix::fs::Stat> {
    let stat = rustix::fs::fstat(fd).map_err(|errno| io_error("stat", path, errno))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != expected {
        let what = if expected == FileType::Directory {
            "is not a directory"
        } else {
            "is not a regular file"
        };
        return Err(insecure(path, what.to_owned()));
    }
    let me = rustix::process::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(insecure(
            path,
            format!(
                "it is owned by uid {}, not by the current user (uid {me})",
                stat.st_uid
            ),
        ));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(insecure(
            path,
            format!("it is writable by group or others (mode {mode:04o}); run `chmod go-w` on it"),
        ));
    }
    Ok(stat)
}

/// Says whether `name` (which failed to open as a directory) is a symlink or something else.
pub(super) fn describe_non_dir(dir: &OwnedFd, name: &str) -> String {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
            "it is a symbolic link".to_owned()
        }
        _ => "it is not a directory".to_owned(),
    }
}

pub(super) fn remove_temp(
    dir: &OwnedFd,
    name: impl rustix::path::Arg + Copy + std::fmt::Debug,
    in_dir: &Path,
) {
    if let Err(errno) = rustix::fs::unlinkat(dir.as_fd(), name, AtFlags::empty())
        && errno != Errno::NOENT
    {
        // Not fatal: the next load under the lock retries.
        tracing::warn!(dir = %in_dir.display(), file = ?name, %errno, "cannot remove temp file");
    }
}

pub(super) fn insecure(path: &Path, reason: String) -> ApprovalsError {
    ApprovalsError::Insecure {
        path: path.to_path_buf(),
        reason,
    }
}

pub(super) fn io_error(action: &'static str, path: &Path, errno: Errno) -> ApprovalsError {
    ApprovalsError::Io {
        action,
        path: path.to_path_buf(),
        source: errno.into(),
    }
}
