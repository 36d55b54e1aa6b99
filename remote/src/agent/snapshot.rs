//! Snapshots of the work tree, as OpenCode takes them around every step: a git repository of
//! the stub's own (under its state directory, never the project's `.git`) holds the tree as a
//! step begins and ends, so a step that changed files gets a `patch` part naming them and the
//! prompt's user message a summary of the turn's changes (`summary.diffs`).
//!
//! Only for a workspace inside a git work tree with `git` on the host, as OpenCode does it;
//! elsewhere there are no snapshots, and nothing else changes. Snapshots of one work tree are
//! taken one at a time (git's index is one file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::opencode::session::FileDiff;
use crate::tools::diff;
use crate::tools::git::git;
use crate::tools::procs::Procs;

/// Where a workspace's snapshots are kept, and the lock that takes them one at a time.
#[derive(Debug, Clone)]
pub struct Snapshots {
    git_dir: PathBuf,
    worktree: PathBuf,
    procs: Procs,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Snapshots {
    /// Snapshots of `worktree` kept in `git_dir`, taken under `lock`.
    pub fn new(
        git_dir: PathBuf,
        worktree: PathBuf,
        procs: Procs,
        lock: Arc<tokio::sync::Mutex<()>>,
    ) -> Snapshots {
        Snapshots {
            git_dir,
            worktree,
            procs,
            lock,
        }
    }

    async fn git(&self, args: &[&str]) -> Option<Vec<u8>> {
        let git_dir = format!("--git-dir={}", self.git_dir.display());
        let worktree = format!("--work-tree={}", self.worktree.display());
        let mut all = vec![git_dir.as_str(), worktree.as_str()];
        all.extend_from_slice(args);
        git(&self.worktree, &self.procs, &all).await
    }

    /// The tree as it is now: its git tree hash (`None` when git fails).
    pub async fn track(&self) -> Option<String> {
        let _one_at_a_time = self.lock.lock().await;
        if !self.git_dir.join("HEAD").exists() {
            if let Some(parent) = self.git_dir.parent() {
                std::fs::create_dir_all(parent).ok()?;
            }
            self.git(&["init", "--quiet"]).await?;
            for (key, value) in [
                ("core.autocrlf", "false"),
                ("core.symlinks", "true"),
                ("gc.auto", "0"),
            ] {
                self.git(&["config", key, value]).await?;
            }
        }
        self.git(&["add", "--all", "."]).await?;
        let tree = self.git(&["write-tree"]).await?;
        let tree = String::from_utf8(tree).ok()?.trim().to_owned();
        (!tree.is_empty()).then_some(tree)
    }

    /// The files that differ between two snapshots, as absolute paths.
    pub async fn changed(&self, from: &str, to: &str) -> Vec<String> {
        self.differences(from, to)
            .await
            .into_iter()
            .map(|(_, path)| self.worktree.join(path).to_string_lossy().into_owned())
            .collect()
    }

    /// The changes between two snapshots, file by file, as OpenCode summarises a turn.
    pub async fn diffs(&self, from: &str, to: &str) -> Vec<FileDiff> {
        let mut diffs = Vec::new();
        for (status, path) in self.differences(from, to).await {
            let before = match status {
                Status::Added => String::new(),
                _ => self.content(from, &path).await,
            };
            let after = match status {
                Status::Deleted => String::new(),
                _ => self.content(to, &path).await,
            };
            let stat = diff::stat(&before, &after);
            diffs.push(FileDiff {
                patch: Some(diff::summary_patch(&path, &before, &after)),
                file: Some(path),
                additions: stat.additions as u64,
                deletions: stat.deletions as u64,
                status: Some(status.name().to_owned()),
            });
        }
        diffs
    }

    /// `(status, path relative to the work tree)` of every file that differs.
    async fn differences(&self, from: &str, to: &str) -> Vec<(Status, String)> {
        let Some(out) = self
            .git(&[
                "diff-tree",
                "-r",
                "-z",
                "--no-renames",
                "--name-status",
                from,
                to,
            ])
            .await
        else {
            return Vec::new();
        };
        let fields: Vec<&[u8]> = out.split(|b| *b == 0).filter(|f| !f.is_empty()).collect();
        fields
            .chunks(2)
            .filter_map(|pair| {
                let [status, path] = pair else { return None };
                let status = match status.first() {
                    Some(b'A') => Status::Added,
                    Some(b'D') => Status::Deleted,
                    _ => Status::Modified,
                };
                Some((status, String::from_utf8_lossy(path).into_owned()))
            })
            .collect()
    }

    async fn content(&self, tree: &str, path: &str) -> String {
        let object = format!("{tree}:{path}");
        self.git(&["cat-file", "blob", &object])
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Added,
    Deleted,
    Modified,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Deleted => "deleted",
            Status::Modified => "modified",
        }
    }
}

/// Where the snapshots of the workspace `key` live under the stub's `state_dir`.
pub fn git_dir(state_dir: &Path, key: &str) -> PathBuf {
    state_dir.join("snapshot").join(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_available() -> bool {
        std::process::Command::new("git")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    }

    #[tokio::test]
    async fn a_step_that_changes_files_should_show_them() {
        if !git_available() {
            eprintln!("SKIP: no git on this machine");
            return;
        }
        let state = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("kept.txt"), "same\n").unwrap();
        std::fs::write(tree.path().join("gone.txt"), "bye\n").unwrap();
        std::fs::write(tree.path().join("changed.txt"), "one\ntwo\n").unwrap();
        let snapshots = Snapshots::new(
            git_dir(state.path(), "wrk_test"),
            tree.path().to_path_buf(),
            Procs::default(),
            Arc::default(),
        );
        let before = snapshots.track().await.expect("a snapshot");
        assert_eq!(snapshots.track().await.as_deref(), Some(before.as_str()));
        std::fs::write(tree.path().join("new.txt"), "alpha\nbeta\n").unwrap();
        std::fs::remove_file(tree.path().join("gone.txt")).unwrap();
        std::fs::write(tree.path().join("changed.txt"), "one\n2\n").unwrap();
        let after = snapshots.track().await.expect("a snapshot");
        assert_ne!(before, after);

        let root = tree.path().to_string_lossy();
        assert_eq!(
            snapshots.changed(&before, &after).await,
            ["changed.txt", "gone.txt", "new.txt"].map(|f| format!("{root}/{f}"))
        );
        let diffs = snapshots.diffs(&before, &after).await;
        let summary: Vec<(&str, &str, u64, u64)> = diffs
            .iter()
            .map(|d| {
                (
                    d.file.as_deref().unwrap(),
                    d.status.as_deref().unwrap(),
                    d.additions,
                    d.deletions,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("changed.txt", "modified", 1, 1),
                ("gone.txt", "deleted", 0, 1),
                ("new.txt", "added", 2, 0),
            ]
        );
        assert_eq!(
            diffs[2].patch.as_deref(),
            Some(diff::summary_patch("new.txt", "", "alpha\nbeta\n").as_str())
        );
        // The project's own repository is left alone: the snapshots live in the state dir.
        assert!(!tree.path().join(".git").exists());
    }
}
