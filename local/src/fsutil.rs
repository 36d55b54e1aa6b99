//! Durable file writes, one way for every file we change on the laptop (OpenCode configs,
//! known_hosts): the new contents go to a temporary file in the same directory, which is
//! fsynced, renamed (or linked) into place, and then the directory is fsynced. A failure at any
//! point leaves the old file as it was, and no temporary file behind.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces (or creates) `target` with `contents` and `mode`, atomically and durably.
///
/// # Errors
///
/// When the temporary file cannot be written or renamed; `target` is then unchanged.
pub fn write_atomic(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    Staged::write(target, contents, mode, None)?.replace(target)
}

/// New contents for a file, written and synced next to it but not in place yet. Dropping it
/// removes the temporary file.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
}

impl Staged {
    /// Writes `contents` to a new temporary file in `target`'s directory, with `mode` and, when
    /// given, an owner (kept only where permitted: root editing someone else's file), and
    /// syncs it.
    ///
    /// # Errors
    ///
    /// When no temporary file can be created or written.
    pub fn write(
        target: &Path,
        contents: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Staged> {
        let pid = std::process::id();
        for attempt in 0u32..100 {
            let mut name = OsString::from(".");
            name.push(file_name(target));
            name.push(format!(".{pid}.{attempt}.tmp"));
            let path = parent_dir(target).join(name);
            match write_new(&path, contents, mode, owner) {
                Ok(()) => return Ok(Staged { path }),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary file name",
        ))
    }

    /// Renames the new contents over `target`, then syncs the directory.
    ///
    /// # Errors
    ///
    /// When the rename fails; `target` is then unchanged.
    pub fn replace(self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        sync_dir(parent_dir(target));
        Ok(())
    }

    /// Puts the new contents at `target` unless a file appeared there meanwhile (a hard link
    /// fails when the name exists, unlike a rename), then syncs the directory.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] when `target` exists; other errors when neither a link
    /// nor (on file systems without hard links) a rename works.
    pub fn create(self, target: &Path) -> io::Result<()> {
        match fs::hard_link(&self.path, target) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(err),
            // File systems without hard links.
            Err(_) => fs::rename(&self.path, target)?,
        }
        sync_dir(parent_dir(target));
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a rename the name is gone (NotFound); after a link only the temporary name goes.
        if let Err(err) = fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {err}", self.path.display());
        }
    }
}

/// Creates `path`, which must not exist, with `contents`, `mode` and optionally an owner, and
/// syncs it; removes it again on failure.
///
/// # Errors
///
/// [`io::ErrorKind::AlreadyExists`] when `path` exists; any error creating or writing it.
pub fn write_new(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let written = (|| {
        // The umask may have narrowed the mode given to open().
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            let created = file.metadata()?;
            if (created.uid(), created.gid()) != (uid, gid) {
                // Keep the owner when root edits someone else's file; as a normal user this
                // can only fail, and then the file is ours, as with any editor.
                if let Err(err) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid)) {
                    tracing::debug!("cannot keep the owner of {}: {err}", path.display());
                }
            }
        }
        file.write_all(contents)?;
        file.sync_all()
    })();
    if written.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ignored = fs::remove_file(path);
    }
    written
}

/// The directory of `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> &OsStr {
    path.file_name().unwrap_or(OsStr::new("file"))
}

fn sync_dir(dir: &Path) {
    if let Err(err) = fs::File::open(dir).and_then(|dir| dir.sync_all()) {
        // The rename is done; only its durability across a crash is in question.
        tracing::warn!("cannot sync directory {}: {err}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_should_replace_the_file_with_the_mode_and_leave_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(entries(dir.path()), ["f"]);
    }

    #[test]
    fn a_dropped_staged_file_should_leave_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        let staged = Staged::write(&path, b"new", 0o600, None).unwrap();
        assert_eq!(entries(dir.path()).len(), 2);
        drop(staged);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["f"]);
    }

    #[test]
    fn create_should_refuse_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        Staged::write(&path, b"first", 0o600, None)
            .unwrap()
            .create(&path)
            .unwrap();
        let err = Staged::write(&path, b"second", 0o600, None)
            .unwrap()
            .create(&path)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(entries(dir.path()), ["f"]);
    }

    #[test]
    fn a_failed_rename_should_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails.
        let target = dir.path().join("d");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "x").unwrap();
        assert!(write_atomic(&target, b"x", 0o600).is_err());
        assert_eq!(entries(dir.path()), ["d"]);
    }
}
