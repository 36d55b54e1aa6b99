//! Persisted `always` approvals: the directory roots each workspace approved.
//!
//! One JSON file per workspace, `<state dir>/approvals/<workspace id>.json`:
//!
//! ```json
//! {"version":1,"workspace":"wrk_…","roots":[{"path":"/abs","approved_at":1760000000000}]}
//! ```
//!
//! `approved_at` is in milliseconds since the Unix epoch. The manual mode (no workspace id) uses
//! the file `_manual.json`, like the session store.
//!
//! # Durability
//!
//! [`Approvals::approve`] writes a temp file in the same directory, fsyncs it, renames it over the
//! old file and fsyncs the directory, so a crash or a full disk leaves either the old or the new
//! file, never a mix. Temp files a crash left behind are ignored and removed on the next load.
//! A full disk surfaces as [`ApprovalsError::Io`] whose source is the `ENOSPC` [`io::Error`].
//!
//! # Concurrency
//!
//! Several stubs may serve the same workspace. Every read-modify-write holds an exclusive
//! `flock` on `<workspace id>.lock` and re-reads the file under it, so no approval is lost; the
//! lock is held for one small write. What is on disk wins: roots removed from the file by hand
//! stay removed.
//!
//! # Hostile files
//!
//! The approvals directory and files must belong to the current user and not be writable by
//! group or others; symlinks are refused rather than followed, files over 1 MiB are refused,
//! and a file from a newer format version is refused rather than rewritten (which would drop
//! what this version does not understand). Errors name the file and the reason. Everything
//! below the state directory is opened relative to a directory descriptor, so a path swapped
//! after the checks is not followed.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::policy;

mod file;

use file::*;

/// The format version this stub reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Approvals files larger than this are refused.
pub const MAX_FILE_LEN: u64 = 1024 * 1024;

/// Longest accepted workspace id.
pub const MAX_WORKSPACE_ID_LEN: usize = 128;

const DIR_NAME: &str = "approvals";
const MANUAL_STEM: &str = "_manual";

/// The approved roots of one workspace, as last read from or written to disk.
#[derive(Debug)]
pub struct Approvals {
    state_dir: PathBuf,
    workspace: String,
    /// File name without extension: the validated workspace id, or `_manual`.
    stem: String,
    entries: Vec<Entry>,
    /// The paths of `entries`, for [`Approvals::roots`].
    roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: PathBuf,
    approved_at: u64,
}

/// Why approvals could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalsError {
    /// The workspace id cannot be used as a file name.
    #[error(
        "invalid workspace id {id:?}: expected 1 to {MAX_WORKSPACE_ID_LEN} ASCII letters, digits, \
         '_' or '-'"
    )]
    InvalidWorkspaceId {
        /// The id as given.
        id: String,
    },
    /// A root to approve is not an absolute, normalised, UTF-8 path.
    #[error("invalid root {}: {reason}", path.display())]
    InvalidRoot {
        /// The root as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file system operation failed (`ENOSPC` included: see the source).
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Ownership, permissions or file type make the file untrustworthy.
    #[error("refusing {}: {reason}", path.display())]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// Why, and what to do about it.
        reason: String,
    },
    /// The file exceeds [`MAX_FILE_LEN`].
    #[error("refusing {}: {size} bytes exceeds the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least).
        size: u64,
        /// [`MAX_FILE_LEN`].
        limit: u64,
    },
    /// The file is not JSON of the expected shape.
    #[error("corrupted approvals file {}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The file parses but its content is not valid.
    #[error("corrupted approvals file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer stub.
    #[error(
        "approvals file {} has format version {found}, newer than the supported {supported}; \
         refusing to use it rather than lose approvals (upgrade the stub)",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// [`FORMAT_VERSION`].
        supported: u64,
    },
    /// The file belongs to another workspace.
    #[error("approvals file {} is for workspace {found:?}, not {expected:?}", path.display())]
    WorkspaceMismatch {
        /// The file.
        path: PathBuf,
        /// The workspace named in the file.
        found: String,
        /// The workspace being loaded.
        expected: String,
    },
}

type Result<T> = std::result::Result<T, ApprovalsError>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u64,
    workspace: String,
    roots: Vec<RootV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootV1 {
    path: String,
    approved_at: u64,
}

/// Read first, so a newer version is reported as such and not as a shape error.
#[derive(Deserialize)]
struct Header {
    version: u64,
}

impl Approvals {
    /// Loads the approvals of `workspace_id` from `state_dir/approvals/`. A missing directory
    /// or file means no approvals; nothing is created except the lock file when the directory
    /// exists. Leftover temp files from a crash are removed. Blocking.
    ///
    /// # Errors
    ///
    /// [`ApprovalsError::InvalidWorkspaceId`]; I/O errors; a hostile directory or file
    /// ([`ApprovalsError::Insecure`], [`ApprovalsError::TooLarge`]); a corrupted file, a newer
    /// format version or another workspace's file.
    pub fn load(state_dir: &Path, workspace_id: &str) -> Result<Approvals> {
        let stem = file_stem(workspace_id)?;
        let mut approvals = Approvals {
            state_dir: state_dir.to_path_buf(),
            workspace: workspace_id.to_owned(),
            stem,
            entries: Vec::new(),
            roots: Vec::new(),
        };
        let Some(state) = open_state_dir(state_dir, false)? else {
            return Ok(approvals);
        };
        let Some(dir) = approvals.open_dir(&state, false)? else {
            return Ok(approvals);
        };
        let _lock = approvals.lock(&dir)?;
        approvals.remove_temp_files(&dir)?;
        approvals.set_entries(approvals.read(&dir)?);
        Ok(approvals)
    }

    /// Re-reads the file, to see what other stubs approved since. Blocking.
    ///
    /// # Errors
    ///
    /// As [`Approvals::load`]; on error the roots in memory stay as they were.
    pub fn reload(&mut self) -> Result<()> {
        *self = Approvals::load(&self.state_dir, &self.workspace)?;
        Ok(())
    }

    /// Whether `path` (resolved, see [`policy::resolve`]) is within an approved root.
    pub fn is_approved(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| policy::is_within(path, root))
    }

    /// The approved roots, oldest first.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Adds `roots` and persists them atomically, merging with what other stubs saved
    /// meanwhile (under the lock). Blocking.
    ///
    /// # Errors
    ///
    /// [`ApprovalsError::InvalidRoot`] for a relative, non-normalised or non-UTF-8 root; I/O
    /// errors (a full disk leaves the old file in place); the load errors when re-reading.
    pub fn approve(&mut self, roots: &[PathBuf]) -> Result<()> {
        for root in roots {
            validate_root(root)?;
        }
        let state = open_state_dir(&self.state_dir, true)?.ok_or_else(|| ApprovalsError::Io {
            action: "open",
            path: self.state_dir.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        let dir = self
            .open_dir(&state, true)?
            .ok_or_else(|| ApprovalsError::Io {
                action: "open",
                path: self.dir_path(),
                source: io::ErrorKind::NotFound.into(),
            })?;
        let _lock = self.lock(&dir)?;
        self.remove_temp_files(&dir)?;
        let mut entries = self.read(&dir)?;
        let now = now_ms();
        let mut changed = false;
        for root in roots {
            if !entries.iter().any(|entry| entry.path == *root) {
                entries.push(Entry {
                    path: root.clone(),
                    approved_at: now,
                });
                changed = true;
            }
        }
        if changed {
            self.write(&dir, &entries)?;
        }
        self.set_entries(entries);
        Ok(())
    }

    fn set_entries(&mut self, entries: Vec<Entry>) {
        self.roots = entries.iter().map(|entry| entry.path.clone()).collect();
        self.entries = entries;
    }

    fn dir_path(&self) -> PathBuf {
        self.state_dir.join(DIR_NAME)
    }

    fn file_name(&self) -> String {
        format!("{}.json", self.stem)
    }

    fn file_path(&self) -> PathBuf {
        self.dir_path().join(self.file_name())
    }

    fn temp_prefix(&self) -> String {
        format!(".{}.json.tmp-", self.stem)
    }
}

/// The file name stem for a workspace id: the id itself, or `_manual` for the empty id of the
/// manual mode.
fn file_stem(workspace_id: &str) -> Result<String> {
    if workspace_id.is_empty() {
        return Ok(MANUAL_STEM.to_owned());
    }
    let valid = workspace_id.len() <= MAX_WORKSPACE_ID_LEN
        && workspace_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ApprovalsError::InvalidWorkspaceId {
            id: workspace_id.to_owned(),
        });
    }
    Ok(workspace_id.to_owned())
}

fn validate_root(root: &Path) -> Result<()> {
    let invalid = |reason| {
        Err(ApprovalsError::InvalidRoot {
            path: root.to_path_buf(),
            reason,
        })
    };
    if !root.is_absolute() {
        return invalid("is not absolute");
    }
    if root.to_str().is_none() {
        return invalid("is not valid UTF-8");
    }
    // `Path::components` drops `.` and repeated slashes; it keeps `..`.
    if root
        .components()
        .any(|component| matches!(component, Component::ParentDir))
        || root
            .to_str()
            .is_some_and(|text| text.contains("/./") || text.ends_with("/."))
    {
        return invalid("is not normalised");
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use rustix::io::Errno;
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, symlink};

    const WS: &str = "wrk_0123456789abcdefABCDEF";

    fn state_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        (dir, state)
    }

    fn file(state: &Path, stem: &str) -> PathBuf {
        state.join("approvals").join(format!("{stem}.json"))
    }

    fn write_file(state: &Path, stem: &str, content: &str) -> PathBuf {
        let path = file(state, stem);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path.parent().unwrap())
            .unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn load_should_treat_missing_state_as_empty_and_create_nothing() {
        let (_dir, state) = state_dir();
        let approvals = Approvals::load(&state, WS).unwrap();
        assert!(approvals.roots().is_empty());
        assert!(!approvals.is_approved(Path::new("/srv/app")));
        assert!(!state.exists());
        std::fs::create_dir(&state).unwrap();
        Approvals::load(&state, WS).unwrap();
        assert!(!state.join("approvals").exists());
    }

    #[test]
    fn approve_should_round_trip_through_the_file() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        let before = now_ms();
        approvals
            .approve(&[PathBuf::from("/srv/app"), PathBuf::from("/tmp/x")])
            .unwrap();
        approvals.approve(&[PathBuf::from("/srv/app")]).unwrap();
        assert_eq!(
            approvals.roots(),
            [PathBuf::from("/srv/app"), PathBuf::from("/tmp/x")]
        );

        let loaded = Approvals::load(&state, WS).unwrap();
        assert_eq!(loaded.roots(), approvals.roots());
        assert_eq!(loaded.entries, approvals.entries);
        assert!(loaded.is_approved(Path::new("/srv/app")));
        assert!(loaded.is_approved(Path::new("/srv/app/src/main.rs")));
        assert!(!loaded.is_approved(Path::new("/srv/app2")));
        assert!(!loaded.is_approved(Path::new("/srv")));

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file(&state, WS)).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["workspace"], WS);
        assert_eq!(json["roots"][0]["path"], "/srv/app");
        assert_eq!(json["roots"][1]["path"], "/tmp/x");
        let at = json["roots"][0]["approved_at"].as_u64().unwrap();
        assert!(at >= before && at <= now_ms());
        assert_eq!(json.as_object().unwrap().len(), 3);
    }

    #[test]
    fn approve_should_create_private_files_and_leave_no_temp_files() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        for i in 0..20 {
            approvals
                .approve(&[PathBuf::from(format!("/srv/{i}"))])
                .unwrap();
        }
        let dir = state.join("approvals");
        assert_eq!(names_in(&dir), [format!("{WS}.json"), format!("{WS}.lock")]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&file(&state, WS)), 0o600);
        assert_eq!(mode(&dir.join(format!("{WS}.lock"))), 0o600);
        assert_eq!(Approvals::load(&state, WS).unwrap().roots().len(), 20);
    }

    #[test]
    fn load_should_ignore_and_remove_temp_files_left_by_a_crash() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        approvals.approve(&[PathBuf::from("/srv/app")]).unwrap();
        let dir = state.join("approvals");
        // A writer killed before its rename: a partial and a complete temp file.
        std::fs::write(
            dir.join(format!(".{WS}.json.tmp-999-0")),
            "{\"version\":1,\"wor",
        )
        .unwrap();
        std::fs::write(
            dir.join(format!(".{WS}.json.tmp-999-1")),
            format!(r#"{{"version":1,"workspace":"{WS}","roots":[]}}"#),
        )
        .unwrap();
        // Another workspace's temp file is not ours to remove.
        std::fs::write(dir.join(".wrk_other.json.tmp-1-0"), "x").unwrap();

        let loaded = Approvals::load(&state, WS).unwrap();
        assert_eq!(loaded.roots(), [PathBuf::from("/srv/app")]);
        assert_eq!(
            names_in(&dir),
            [
                ".wrk_other.json.tmp-1-0".to_owned(),
                format!("{WS}.json"),
                format!("{WS}.lock")
            ]
        );
    }

    #[test]
    fn approve_should_not_lose_approvals_from_concurrent_threads() {
        let (_dir, state) = state_dir();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let state = state.clone();
                std::thread::spawn(move || {
                    // Each thread is its own "stub": its own load, its own lock descriptor.
                    let mut approvals = Approvals::load(&state, WS).unwrap();
                    for i in 0..25 {
                        approvals
                            .approve(&[PathBuf::from(format!("/t{t}/{i}"))])
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let loaded = Approvals::load(&state, WS).unwrap();
        assert_eq!(loaded.roots().len(), 100);
        for t in 0..4 {
            for i in 0..25 {
                assert!(
                    loaded.is_approved(Path::new(&format!("/t{t}/{i}"))),
                    "/t{t}/{i}"
                );
            }
        }
    }

    /// Worker for the multi-process test: approves `/p<TAG>/<i>` 50 times.
    #[test]
    #[ignore = "helper run by approve_should_not_lose_approvals_from_concurrent_processes"]
    fn approvals_worker_process() {
        let (Ok(state), Ok(tag)) = (
            std::env::var("APPROVALS_WORKER_STATE"),
            std::env::var("APPROVALS_WORKER_TAG"),
        ) else {
            return;
        };
        let mut approvals = Approvals::load(Path::new(&state), WS).unwrap();
        for i in 0..50 {
            approvals
                .approve(&[PathBuf::from(format!("/p{tag}/{i}"))])
                .unwrap();
        }
    }

    #[test]
    fn approve_should_not_lose_approvals_from_concurrent_processes() {
        let (_dir, state) = state_dir();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..3)
            .map(|tag| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "policy::approvals::tests::approvals_worker_process",
                        "--ignored",
                        "--quiet",
                    ])
                    .env("APPROVALS_WORKER_STATE", &state)
                    .env("APPROVALS_WORKER_TAG", tag.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let loaded = Approvals::load(&state, WS).unwrap();
        assert_eq!(loaded.roots().len(), 150);
        assert!(
            !names_in(&state.join("approvals"))
                .iter()
                .any(|n| n.contains(".tmp-"))
        );
    }

    #[test]
    fn approve_should_keep_what_another_stub_saved_meanwhile() {
        let (_dir, state) = state_dir();
        let mut first = Approvals::load(&state, WS).unwrap();
        let mut second = Approvals::load(&state, WS).unwrap();
        first.approve(&[PathBuf::from("/a")]).unwrap();
        second.approve(&[PathBuf::from("/b")]).unwrap();
        assert_eq!(second.roots(), [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(second.is_approved(Path::new("/a/x")));
        assert_eq!(Approvals::load(&state, WS).unwrap().roots().len(), 2);
    }

    #[test]
    fn reload_should_see_what_another_stub_approved() {
        let (_dir, state) = state_dir();
        let mut first = Approvals::load(&state, WS).unwrap();
        let mut second = Approvals::load(&state, WS).unwrap();
        first.approve(&[PathBuf::from("/a")]).unwrap();
        assert!(!second.is_approved(Path::new("/a")));
        second.reload().unwrap();
        assert!(second.is_approved(Path::new("/a/b")));
    }

    #[test]
    fn load_should_refuse_a_future_version_and_leave_it_alone() {
        let (_dir, state) = state_dir();
        let content = r#"{"version":2,"workspace":"x","roots":[],"new_field":{"a":1}}"#;
        let path = write_file(&state, WS, content);
        let err = Approvals::load(&state, WS).unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalsError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "approvals file {} has format version 2, newer than the supported 1; refusing to \
                 use it rather than lose approvals (upgrade the stub)",
                path.display()
            )
        );
        // An approval must not overwrite it either.
        let mut approvals = Approvals {
            state_dir: state.clone(),
            workspace: WS.to_owned(),
            stem: WS.to_owned(),
            entries: Vec::new(),
            roots: Vec::new(),
        };
        assert!(matches!(
            approvals.approve(&[PathBuf::from("/x")]),
            Err(ApprovalsError::UnsupportedVersion { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    }

    #[test]
    fn load_should_name_the_file_when_it_is_corrupted() {
        let (_dir, state) = state_dir();
        let cases = [
            ("{\"version\":1,\"workspace\":", "corrupted approvals file"),
            ("", "corrupted approvals file"),
            ("[]", "corrupted approvals file"),
            (
                r#"{"version":1,"workspace":"W","roots":[{"path":"/a"}]}"#,
                "corrupted approvals file",
            ),
            (
                r#"{"version":1,"workspace":"W","roots":[],"extra":1}"#,
                "corrupted approvals file",
            ),
            (
                r#"{"version":0,"workspace":"W","roots":[]}"#,
                "unknown format version 0",
            ),
            (
                r#"{"version":1,"workspace":"W","roots":[{"path":"rel","approved_at":1}]}"#,
                "root \"rel\" is not absolute",
            ),
            (
                r#"{"version":1,"workspace":"W","roots":[{"path":"/a/../b","approved_at":1}]}"#,
                "root \"/a/../b\" is not normalised",
            ),
            (
                r#"{"version":1,"workspace":"other","roots":[]}"#,
                "is for workspace \"other\"",
            ),
        ];
        for (content, expected) in cases {
            let path = write_file(&state, WS, &content.replace("\"W\"", &format!("\"{WS}\"")));
            let err = Approvals::load(&state, WS).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(expected), "{content}: {message}");
        }
        // The parse error (with its position) is the source.
        write_file(&state, WS, "{\"version\":1,\n\"workspace\":");
        let err = Approvals::load(&state, WS).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("line 2"), "{source}");
    }

    #[test]
    fn load_should_refuse_oversized_files() {
        let (_dir, state) = state_dir();
        let big = format!(
            r#"{{"version":1,"workspace":"{WS}","roots":[],"pad":"{}"}}"#,
            "x".repeat(MAX_FILE_LEN as usize)
        );
        write_file(&state, WS, &big);
        let err = Approvals::load(&state, WS).unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalsError::TooLarge {
                    limit: MAX_FILE_LEN,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn approve_should_refuse_to_grow_the_file_past_the_limit() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        let long = PathBuf::from(format!("/{}", "x".repeat(200)));
        let roots: Vec<PathBuf> = (0..6_000).map(|i| long.join(i.to_string())).collect();
        let err = approvals.approve(&roots).unwrap_err();
        assert!(matches!(err, ApprovalsError::TooLarge { .. }), "{err}");
        assert!(Approvals::load(&state, WS).unwrap().roots().is_empty());
    }

    #[test]
    fn load_should_refuse_hostile_permissions_and_say_why() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        approvals.approve(&[PathBuf::from("/srv/app")]).unwrap();
        let dir = state.join("approvals");
        let path = file(&state, WS);
        let set_mode = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let refused = |expected: &str| {
            let err = Approvals::load(&state, WS).unwrap_err();
            assert!(matches!(err, ApprovalsError::Insecure { .. }), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(expected), "{message}");
            message
        };

        set_mode(&path, 0o620);
        let message = refused("writable by group or others (mode 0620)");
        assert!(message.contains(&path.display().to_string()));
        set_mode(&path, 0o606);
        refused("mode 0606");
        set_mode(&path, 0o600);

        set_mode(&dir, 0o777);
        let message = refused("writable by group or others (mode 0777)");
        assert!(
            message.starts_with(&format!("refusing {}:", dir.display())),
            "{message}"
        );
        set_mode(&dir, 0o700);

        set_mode(&state, 0o757);
        refused("mode 0757");
        set_mode(&state, 0o700);

        // A symlinked file: refused, not followed (even to a valid file).
        let elsewhere = state.join("elsewhere.json");
        std::fs::rename(&path, &elsewhere).unwrap();
        symlink(&elsewhere, &path).unwrap();
        refused("is a symbolic link");
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&elsewhere, &path).unwrap();

        // A symlinked approvals directory.
        let real = state.join("real-approvals");
        std::fs::rename(&dir, &real).unwrap();
        symlink(&real, &dir).unwrap();
        refused("is a symbolic link");
        std::fs::remove_file(&dir).unwrap();
        std::fs::rename(&real, &dir).unwrap();

        // Not a regular file.
        std::fs::rename(&path, state.join("saved.json")).unwrap();
        std::fs::create_dir(&path).unwrap();
        refused("is not a regular file");
        std::fs::remove_dir(&path).unwrap();
        std::fs::rename(state.join("saved.json"), &path).unwrap();

        // Owned by another user (needs root to arrange).
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            refused("owned by uid 65534, not by the current user (uid 0)");
            std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            refused("owned by uid 65534");
            std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
        } else {
            eprintln!("skipped the other-owner cases: not root");
        }

        // All fixed: loads again, untouched.
        assert_eq!(
            Approvals::load(&state, WS).unwrap().roots(),
            [PathBuf::from("/srv/app")]
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().uid(),
            rustix::process::geteuid().as_raw()
        );
    }

    #[test]
    fn approve_should_refuse_hostile_permissions_without_writing() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        approvals.approve(&[PathBuf::from("/a")]).unwrap();
        let dir = state.join("approvals");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = approvals.approve(&[PathBuf::from("/b")]).unwrap_err();
        assert!(matches!(err, ApprovalsError::Insecure { .. }), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            Approvals::load(&state, WS).unwrap().roots(),
            [PathBuf::from("/a")]
        );
    }

    #[test]
    fn workspace_ids_should_be_validated_for_file_names() {
        let (_dir, state) = state_dir();
        for bad in [
            "../x",
            "a/b",
            "a.b",
            ".",
            "..",
            "wrk x",
            "wrk\0",
            "é",
            &"a".repeat(129),
        ] {
            let err = Approvals::load(&state, bad).unwrap_err();
            assert!(
                matches!(err, ApprovalsError::InvalidWorkspaceId { .. }),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            Approvals::load(&state, "a/b").unwrap_err().to_string(),
            "invalid workspace id \"a/b\": expected 1 to 128 ASCII letters, digits, '_' or '-'"
        );
        for good in ["wrk_1", "A-b_9", &"a".repeat(128)] {
            Approvals::load(&state, good).unwrap();
        }
        // Manual mode (no id) has its own file, like the session store.
        let mut manual = Approvals::load(&state, "").unwrap();
        manual.approve(&[PathBuf::from("/m")]).unwrap();
        assert!(file(&state, "_manual").exists());
        assert_eq!(
            Approvals::load(&state, "").unwrap().roots(),
            [PathBuf::from("/m")]
        );
        assert!(Approvals::load(&state, WS).unwrap().roots().is_empty());
    }

    #[test]
    fn approve_should_refuse_roots_that_are_not_absolute_and_normalised() {
        let (_dir, state) = state_dir();
        let mut approvals = Approvals::load(&state, WS).unwrap();
        for bad in ["relative", "", "/a/../b", "/a/./b", "/a/."] {
            let err = approvals.approve(&[PathBuf::from(bad)]).unwrap_err();
            assert!(
                matches!(err, ApprovalsError::InvalidRoot { .. }),
                "{bad}: {err}"
            );
        }
        let non_utf8 = PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/srv/\xff"),
        );
        let err = approvals.approve(&[non_utf8]).unwrap_err();
        assert!(err.to_string().ends_with("is not valid UTF-8"), "{err}");
        assert!(!state.join("approvals").exists());
    }

    /// Worker for the disk-full test; runs inside `unshare -m` with a tiny tmpfs.
    #[test]
    #[ignore = "helper run by approve_should_keep_the_old_file_when_the_disk_is_full"]
    fn approvals_worker_disk_full() {
        let Ok(state) = std::env::var("APPROVALS_WORKER_TMPFS") else {
            return;
        };
        let state = PathBuf::from(state);
        let mut approvals = Approvals::load(&state, WS).unwrap();
        approvals.approve(&[PathBuf::from("/before")]).unwrap();
        let before = std::fs::read(file(&state, WS)).unwrap();

        let filler = state.join("filler");
        let mut fill = File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while fill.write_all(&chunk).is_ok() {}
        drop(fill);

        let roots: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/full/{i}")))
            .collect();
        let err = approvals.approve(&roots).unwrap_err();
        let io = match &err {
            ApprovalsError::Io { source, .. } => source,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            io.raw_os_error(),
            Some(Errno::NOSPC.raw_os_error()),
            "{err}"
        );
        // Found through the source chain, as the HTTP layer looks for it.
        let chained = std::error::Error::source(&err)
            .and_then(|source| source.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error);
        assert_eq!(chained, Some(Errno::NOSPC.raw_os_error()));
        assert_eq!(std::fs::read(file(&state, WS)).unwrap(), before);
        assert!(
            !names_in(&state.join("approvals"))
                .iter()
                .any(|n| n.contains(".tmp-"))
        );
        assert_eq!(
            Approvals::load(&state, WS).unwrap().roots(),
            [PathBuf::from("/before")]
        );
        assert_eq!(approvals.roots(), [PathBuf::from("/before")]);

        std::fs::remove_file(&filler).unwrap();
        approvals.approve(&roots).unwrap();
        assert_eq!(Approvals::load(&state, WS).unwrap().roots().len(), 201);
        eprintln!("disk-full worker passed");
    }

    #[test]
    fn approve_should_keep_the_old_file_when_the_disk_is_full() {
        // Mounting a tmpfs in a private mount namespace needs root; elsewhere this is skipped.
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return;
        }
        let mount = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "mount -t tmpfs -o size=64k,mode=0700 tmpfs '{}' || exit 77; exec \"$0\" --exact \
             policy::approvals::tests::approvals_worker_disk_full --ignored --nocapture",
            mount.path().display()
        );
        let output = std::process::Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .arg(&exe)
            .env("APPROVALS_WORKER_TMPFS", mount.path())
            .output()
            .expect("unshare (util-linux) is needed for the disk-full test");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.contains("disk-full worker passed"),
            "{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    #[test]
    fn errors_should_read_well() {
        let io = ApprovalsError::Io {
            action: "write",
            path: PathBuf::from("/s/approvals/.w.json.tmp-1-0"),
            source: io::Error::from_raw_os_error(Errno::NOSPC.raw_os_error()),
        };
        assert_eq!(io.to_string(), "cannot write /s/approvals/.w.json.tmp-1-0");
        let insecure = insecure(
            Path::new("/s/approvals"),
            "it is a symbolic link".to_owned(),
        );
        assert_eq!(
            insecure.to_string(),
            "refusing /s/approvals: it is a symbolic link"
        );
        let root = ApprovalsError::InvalidRoot {
            path: PathBuf::from("x"),
            reason: "is not absolute",
        };
        assert_eq!(root.to_string(), "invalid root x: is not absolute");
    }
}
