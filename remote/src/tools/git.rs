//! The one way the stub runs `git` (bounded in time and output, in its own process group,
//! never seeing the wire, with `core.fsmonitor` off), and the working tree's changes as
//! `GET /file/status` reports them.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt as _;

use crate::tools::procs::Procs;

/// Time one `git` command may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Output of one `git` command kept at most; more means the status is not computed.
const MAX_GIT_OUTPUT: u64 = 64 << 20;
/// Entries `/file/status` reports at most.
pub const MAX_STATUS_ENTRIES: usize = 100_000;
/// Untracked files whose lines `/file/status` counts; the rest report 0 added lines.
const MAX_UNTRACKED_COUNTED: usize = 10_000;
/// Bytes read in total to count the lines of untracked files.
const MAX_UNTRACKED_BYTES: u64 = 64 << 20;

/// How a file differs from `HEAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// New (staged or untracked).
    Added,
    /// Removed.
    Deleted,
    /// Anything else (content, mode, type).
    Modified,
}

/// One entry of `GET /file/status` (OpenCode's `File`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    /// Path relative to the workspace.
    pub path: String,
    /// Lines added (0 for binary files).
    pub added: u64,
    /// Lines removed (0 for binary files).
    pub removed: u64,
    /// The kind of change.
    pub status: Change,
}

/// `git status` of the workspace as OpenCode reports it: changes against `HEAD` (staged or
/// not; renames as a deletion plus an addition) with their line counts, then untracked files
/// as added with their line count; at most [`MAX_STATUS_ENTRIES`]. Empty when the directory is not in a git work tree, `git`
/// is missing, or a `git` command fails or exceeds [`GIT_TIMEOUT`].
pub async fn status(dir: &Path, procs: &Procs) -> Vec<FileStatus> {
    match head_or_empty_tree(dir, procs).await {
        Some(base) => changes_since(dir, procs, &base).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// `HEAD`, or the empty tree when the repository has no commit yet (everything staged is
/// new); `None` outside a git work tree or without `git`.
pub(crate) async fn head_or_empty_tree(dir: &Path, procs: &Procs) -> Option<String> {
    let inside = git(dir, procs, &["rev-parse", "--is-inside-work-tree"]).await?;
    if inside.trim_ascii() != b"true" {
        return None;
    }
    let head = ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"];
    match git(dir, procs, &head).await {
        Some(_) => Some("HEAD".to_owned()),
        None => {
            let tree = git(dir, procs, &["hash-object", "-t", "tree", "/dev/null"]).await?;
            Some(String::from_utf8(tree).ok()?.trim().to_owned())
        }
    }
}

/// The working tree's changes against the commit or tree `base` (staged or not, renames as a
/// deletion plus an addition), then untracked files as added; at most
/// [`MAX_STATUS_ENTRIES`]. `None` when a `git` command fails.
pub(crate) async fn changes_since(
    dir: &Path,
    procs: &Procs,
    base: &str,
) -> Option<Vec<FileStatus>> {
    let diff = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--relative",
        "-z",
    ];
    let numstat_args: Vec<&str> = diff
        .iter()
        .copied()
        .chain(["--numstat", base, "--"])
        .collect();
    let names_args: Vec<&str> = diff
        .iter()
        .copied()
        .chain(["--name-status", base, "--"])
        .collect();
    let (numstat, names, untracked) = tokio::join!(
        git(dir, procs, &numstat_args),
        git(dir, procs, &names_args),
        git(
            dir,
            procs,
            &["ls-files", "--others", "--exclude-standard", "-z"]
        ),
    );
    let mut changes = tracked_changes(&numstat?, &names?);
    let untracked: Vec<String> = untracked?
        .split(|byte| *byte == 0)
        .filter(|path| !path.is_empty())
        .map(|path| String::from_utf8_lossy(path).into_owned())
        .collect();
    let dir = dir.to_path_buf();
    let added = tokio::task::spawn_blocking(move || count_untracked(&dir, untracked))
        .await
        .ok()?;
    changes.extend(added);
    if changes.len() > MAX_STATUS_ENTRIES {
        tracing::warn!(
            changes = changes.len(),
            "git status truncated to {MAX_STATUS_ENTRIES}"
        );
        changes.truncate(MAX_STATUS_ENTRIES);
    }
    Some(changes)
}

/// Joins `git diff --numstat -z` and `git diff --name-status -z` output (without renames).
fn tracked_changes(numstat: &[u8], names: &[u8]) -> Vec<FileStatus> {
    let mut counts = std::collections::HashMap::new();
    for record in numstat.split(|byte| *byte == 0) {
        let mut fields = record.splitn(3, |byte| *byte == b'\t');
        let (Some(added), Some(removed), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // Binary files show `-`.
        let count = |field: &[u8]| {
            std::str::from_utf8(field)
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        counts.insert(path.to_vec(), (count(added), count(removed)));
    }
    let mut tokens = names
        .split(|byte| *byte == 0)
        .filter(|token| !token.is_empty());
    let mut changes = Vec::new();
    while let (Some(letter), Some(path)) = (tokens.next(), tokens.next()) {
        let status = match letter.first() {
            Some(b'A') => Change::Added,
            Some(b'D') => Change::Deleted,
            _ => Change::Modified,
        };
        let (added, removed) = counts.get(path).copied().unwrap_or((0, 0));
        changes.push(FileStatus {
            path: String::from_utf8_lossy(path).into_owned(),
            added,
            removed,
            status,
        });
    }
    changes
}

/// Untracked files as added, with their line counts (0 for binary files, non-regular files and
/// beyond the counting budget).
fn count_untracked(dir: &Path, paths: Vec<String>) -> Vec<FileStatus> {
    let mut budget = MAX_UNTRACKED_BYTES;
    paths
        .into_iter()
        .enumerate()
        .map(|(index, path)| {
            let added = if index < MAX_UNTRACKED_COUNTED && budget > 0 {
                count_lines(&dir.join(&path), &mut budget)
            } else {
                0
            };
            FileStatus {
                path,
                added,
                removed: 0,
                status: Change::Added,
            }
        })
        .collect()
}

/// Lines in a regular file as git counts them (a last line without newline counts); 0 for
/// binary files and anything unreadable. Reads at most `budget` bytes and deducts them.
fn count_lines(path: &Path, budget: &mut u64) -> u64 {
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !metadata.is_file() {
        return 0;
    }
    let Ok(file) = fs::File::open(path) else {
        return 0;
    };
    let mut reader = file.take(*budget);
    let mut buffer = vec![0u8; 64 << 10];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        };
        *budget = budget.saturating_sub(read as u64);
        let chunk = buffer.get(..read).unwrap_or_default();
        if chunk.contains(&0) {
            return 0;
        }
        lines += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
        last = chunk.last().copied().unwrap_or(last);
    }
    lines + u64::from(last != b'\n')
}

/// Runs `git` in `dir` and returns its stdout when it succeeds within [`GIT_TIMEOUT`] and
/// [`MAX_GIT_OUTPUT`]. The child never sees the stub's stdio (the wire).
pub(crate) async fn git(dir: &Path, procs: &Procs, args: &[&str]) -> Option<Vec<u8>> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(["-c", "core.quotepath=false", "-c", "core.fsmonitor=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // stdin from /dev/null, own process group, killed with the stub or when dropped.
    Procs::prepare(&mut command);
    let (mut child, _registration) = match procs.spawn(&mut command) {
        Ok(spawned) => spawned,
        Err(err) => {
            tracing::debug!(%err, "cannot run git");
            return None;
        }
    };
    let mut stdout = child.stdout.take()?;
    let run = async {
        let mut output = Vec::new();
        (&mut stdout)
            .take(MAX_GIT_OUTPUT + 1)
            .read_to_end(&mut output)
            .await
            .ok()?;
        if output.len() as u64 > MAX_GIT_OUTPUT {
            tracing::warn!(?args, "git output exceeds {MAX_GIT_OUTPUT} bytes; ignored");
            return None;
        }
        let status = child.wait().await.ok()?;
        status.success().then_some(output)
    };
    match tokio::time::timeout(GIT_TIMEOUT, run).await {
        Ok(output) => output,
        Err(_elapsed) => {
            tracing::warn!(?args, "git took longer than {GIT_TIMEOUT:?}; killed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::fs::testing::{workspace, write};
    use std::fs;

    fn git_available() -> bool {
        std::process::Command::new("git")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn run_git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[tokio::test]
    async fn status_should_report_changes_against_head_and_untracked_files() {
        if !git_available() {
            eprintln!("skipped: git is not installed");
            return;
        }
        let (_dir, workspace) = workspace();
        let root = workspace.root();
        run_git(root, &["init", "-q"]);
        let procs = Procs::default();
        // A repository without commits: staged files are new.
        write(&workspace, "staged.txt", "one\ntwo\n");
        run_git(root, &["add", "staged.txt"]);
        assert_eq!(
            status(root, &procs).await,
            [FileStatus {
                path: "staged.txt".to_owned(),
                added: 2,
                removed: 0,
                status: Change::Added
            }]
        );
        write(&workspace, "edit.txt", "a\nb\nc\n");
        write(&workspace, "gone.txt", "x\ny\n");
        write(&workspace, "sub/old name.txt", "same\n");
        write(&workspace, ".gitignore", "*.log\n");
        run_git(root, &["add", "."]);
        run_git(root, &["commit", "-q", "-m", "init"]);

        write(&workspace, "edit.txt", "a\nB\nc\nd\n");
        fs::remove_file(root.join("gone.txt")).unwrap();
        run_git(root, &["mv", "sub/old name.txt", "sub/new name.txt"]);
        write(&workspace, "new.txt", "1\n2\n3");
        write(&workspace, "bin.dat", b"\0\x01");
        write(&workspace, "debug.log", "ignored\n");
        let mut changes = status(root, &procs).await;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        let entry = |path: &str, added, removed, status| FileStatus {
            path: path.to_owned(),
            added,
            removed,
            status,
        };
        assert_eq!(
            changes,
            [
                entry("bin.dat", 0, 0, Change::Added),
                entry("edit.txt", 2, 1, Change::Modified),
                entry("gone.txt", 0, 2, Change::Deleted),
                entry("new.txt", 3, 0, Change::Added),
                entry("sub/new name.txt", 1, 0, Change::Added),
                entry("sub/old name.txt", 0, 1, Change::Deleted),
            ]
        );
        // From a subdirectory, paths are relative to it and limited to it.
        let sub = status(&root.join("sub"), &procs).await;
        let paths: Vec<&str> = sub.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["new name.txt", "old name.txt"]);
    }

    #[tokio::test]
    async fn status_should_be_empty_outside_a_git_repository() {
        let (_dir, workspace) = workspace();
        write(&workspace, "a.txt", "x\n");
        assert!(status(workspace.root(), &Procs::default()).await.is_empty());
    }
}
