//! The host's git state as OpenCode's review panel reads it: `GET /vcs` (branch and default
//! branch), `/vcs/status` (changed files with line counts) and `/vcs/diff` (the same with a
//! unified patch per file, against `HEAD` or against where the branch left the default branch).
//!
//! Everything comes from the `git` on the host, run with the limits of [`files`]; without
//! `git`, outside a work tree or when a command fails, the answers are empty, never an error.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use serde::Serialize;

use crate::tools::git::{self, Change};
use crate::tools::procs::Procs;

/// Patch bytes `/vcs/diff` returns in total; files beyond it come without `patch` (their counts
/// stay), so a huge change cannot make an answer the TUI chokes on. (A diff whose whole `git`
/// output exceeds the 64 MiB every `git` call may return gives no patches at all.)
pub const MAX_PATCH_BYTES: usize = 10_000_000;
/// Untracked files larger than this get no patch.
const MAX_UNTRACKED_PATCH_FILE: u64 = 1 << 20;
/// Context lines when the request gives none: the whole file, as OpenCode shows it.
const WHOLE_FILE_CONTEXT: u32 = i32::MAX as u32;

/// `GET /vcs` (OpenCode's `VcsInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Info {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
}

/// One entry of `GET /vcs/status` (`VcsFileStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    pub file: String,
    pub additions: u64,
    pub deletions: u64,
    pub status: Change,
}

/// One entry of `GET /vcs/diff` (`VcsFileDiff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub status: Change,
}

/// What `/vcs/diff` compares the working tree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `HEAD` (uncommitted changes).
    Git,
    /// The merge base with the default branch (the whole branch's work); empty on the default
    /// branch itself.
    Branch,
}

/// The default branch: `origin/HEAD`'s target, else a local `main` or `master`. Returns the
/// name to show and the ref to compare with.
async fn default_branch(dir: &Path, procs: &Procs) -> Option<(String, String)> {
    let remote_head = [
        "symbolic-ref",
        "--quiet",
        "--short",
        "refs/remotes/origin/HEAD",
    ];
    if let Some(out) = git::git(dir, procs, &remote_head).await {
        let reference = String::from_utf8_lossy(&out).trim().to_owned();
        if !reference.is_empty() {
            let name = reference
                .strip_prefix("origin/")
                .unwrap_or(&reference)
                .to_owned();
            return Some((name, reference));
        }
    }
    for candidate in ["main", "master"] {
        let verify = format!("refs/heads/{candidate}");
        let args = ["rev-parse", "--verify", "--quiet", verify.as_str()];
        if git::git(dir, procs, &args).await.is_some() {
            return Some((candidate.to_owned(), candidate.to_owned()));
        }
    }
    None
}

async fn current_branch(dir: &Path, procs: &Procs) -> Option<String> {
    let out = git::git(dir, procs, &["rev-parse", "--abbrev-ref", "HEAD"]).await?;
    let branch = String::from_utf8_lossy(&out).trim().to_owned();
    (!branch.is_empty()).then_some(branch)
}

/// `GET /vcs`: empty outside a git work tree.
pub async fn info(dir: &Path, procs: &Procs) -> Info {
    if git::head_or_empty_tree(dir, procs).await.is_none() {
        return Info::default();
    }
    let (branch, default) = tokio::join!(current_branch(dir, procs), default_branch(dir, procs));
    Info {
        branch,
        default_branch: default.map(|(name, _)| name),
    }
}

/// `GET /vcs/status`: uncommitted changes, sorted by path.
pub async fn status(dir: &Path, procs: &Procs) -> Vec<FileStatus> {
    let mut changes = git::status(dir, procs).await;
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
        .into_iter()
        .map(|change| FileStatus {
            file: change.path,
            additions: change.added,
            deletions: change.removed,
            status: change.status,
        })
        .collect()
}

/// `GET /vcs/diff`: the changes of `mode` with a patch per file (`context` lines around each
/// change; the whole file by default), sorted by path.
pub async fn diff(dir: &Path, procs: &Procs, mode: Mode, context: Option<u32>) -> Vec<FileDiff> {
    let Some(base) = diff_base(dir, procs, mode).await else {
        return Vec::new();
    };
    let Some(mut changes) = git::changes_since(dir, procs, &base).await else {
        return Vec::new();
    };
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    // git misprints hunk headers beyond i32::MAX lines of context.
    let unified = format!(
        "-U{}",
        context
            .unwrap_or(WHOLE_FILE_CONTEXT)
            .min(WHOLE_FILE_CONTEXT)
    );
    let args = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--no-color",
        // Whatever the user's diff.noprefix / diff.mnemonicPrefix say.
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--relative",
        unified.as_str(),
        base.as_str(),
        "--",
    ];
    let tracked = git::git(dir, procs, &args)
        .await
        .map(|out| split_patches(&String::from_utf8_lossy(&out)))
        .unwrap_or_default();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut total = 0usize;
        changes
            .into_iter()
            .map(|change| {
                let patch = tracked.get(&change.path).cloned().or_else(|| {
                    (change.status == Change::Added)
                        .then(|| untracked_patch(&dir, &change.path))
                        .flatten()
                });
                let patch = patch.filter(|patch| {
                    total += patch.len();
                    total <= MAX_PATCH_BYTES
                });
                FileDiff {
                    file: change.path,
                    patch,
                    additions: change.added,
                    deletions: change.removed,
                    status: change.status,
                }
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

async fn diff_base(dir: &Path, procs: &Procs, mode: Mode) -> Option<String> {
    let head = git::head_or_empty_tree(dir, procs).await?;
    match mode {
        Mode::Git => Some(head),
        Mode::Branch => {
            let (name, reference) = default_branch(dir, procs).await?;
            if current_branch(dir, procs).await.as_deref() == Some(name.as_str()) {
                return None;
            }
            let out = git::git(dir, procs, &["merge-base", "HEAD", reference.as_str()]).await?;
            let base = String::from_utf8_lossy(&out).trim().to_owned();
            (!base.is_empty()).then_some(base)
        }
    }
}

/// Splits `git diff` output into one patch per file, keyed by the file's path (the new path,
/// or the old one for deletions).
fn split_patches(output: &str) -> std::collections::HashMap<String, String> {
    let mut patches = std::collections::HashMap::new();
    let mut starts: Vec<usize> = output
        .match_indices("diff --git ")
        .filter(|(at, _)| *at == 0 || output.as_bytes().get(at - 1) == Some(&b'\n'))
        .map(|(at, _)| at)
        .collect();
    starts.push(output.len());
    for window in starts.windows(2) {
        let chunk = output.get(window[0]..window[1]).unwrap_or_default();
        if let Some(file) = patch_file(chunk) {
            patches.insert(file, chunk.to_owned());
        }
    }
    patches
}

/// The path a `diff --git` chunk is about.
fn patch_file(chunk: &str) -> Option<String> {
    let line = |prefix: &str| {
        chunk
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::to_owned)
    };
    let side = |value: Option<String>, strip: &str| -> Option<String> {
        let value = value?;
        // git ends these lines with a tab when the name contains a space.
        let value = value.strip_suffix('\t').map(str::to_owned).unwrap_or(value);
        if value == "/dev/null" {
            return None;
        }
        let value = if value.starts_with('"') {
            unquote(&value)?
        } else {
            value
        };
        value.strip_prefix(strip).map(str::to_owned)
    };
    if let Some(file) = side(line("+++ "), "b/").or_else(|| side(line("--- "), "a/")) {
        return Some(file);
    }
    // Binary and mode-only changes have no ---/+++ lines: `diff --git a/X b/X` with X twice.
    let header = chunk.lines().next()?.strip_prefix("diff --git ")?;
    let n = header.len().checked_sub(5)? / 2;
    let (old, new) = (header.get(2..2 + n)?, header.get(5 + n..)?);
    (header.starts_with("a/") && header.get(2 + n..5 + n) == Some(" b/") && old == new)
        .then(|| old.to_owned())
}

/// Undoes git's C-style quoting of a path (`"a\tb"`, octal escapes for other bytes).
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut bytes = Vec::with_capacity(inner.len());
    let mut rest = inner.bytes().peekable();
    while let Some(byte) = rest.next() {
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        let escaped = rest.next()?;
        bytes.push(match escaped {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'0'..=b'7' => {
                let mut value = u32::from(escaped - b'0');
                for _ in 0..2 {
                    let digit = rest.next_if(|d| (b'0'..=b'7').contains(d))?;
                    value = value * 8 + u32::from(digit - b'0');
                }
                u8::try_from(value).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

/// A `git diff`-style patch adding the untracked file `path` (relative to `dir`); `None` for
/// files too large, unreadable or not regular.
fn untracked_patch(dir: &Path, path: &str) -> Option<String> {
    let full = dir.join(path);
    let metadata = std::fs::symlink_metadata(&full).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_UNTRACKED_PATCH_FILE {
        return None;
    }
    let mut content = Vec::new();
    std::fs::File::open(&full)
        .ok()?
        .take(MAX_UNTRACKED_PATCH_FILE)
        .read_to_end(&mut content)
        .ok()?;
    let mode = if std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o111 != 0 {
        "100755"
    } else {
        "100644"
    };
    let mut patch = format!("diff --git a/{path} b/{path}\nnew file mode {mode}\n");
    if content.is_empty() {
        return Some(patch);
    }
    let Ok(text) = std::str::from_utf8(&content) else {
        let _ = writeln!(patch, "Binary files /dev/null and b/{path} differ");
        return Some(patch);
    };
    if content.contains(&0) {
        let _ = writeln!(patch, "Binary files /dev/null and b/{path} differ");
        return Some(patch);
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let _ = writeln!(patch, "--- /dev/null\n+++ b/{path}");
    if lines.len() == 1 {
        patch.push_str("@@ -0,0 +1 @@\n");
    } else {
        let _ = writeln!(patch, "@@ -0,0 +1,{} @@", lines.len());
    }
    for line in lines {
        patch.push('+');
        patch.push_str(line);
    }
    if !text.ends_with('\n') {
        patch.push_str("\n\\ No newline at end of file\n");
    }
    Some(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn quoted_and_binary_paths_should_be_recovered_from_patch_headers() {
        assert_eq!(
            unquote(r#""a\tb\303\251.txt""#).as_deref(),
            Some("a\tbé.txt")
        );
        let binary = "diff --git a/img one.png b/img one.png\nindex 1..2\nBinary files a/img one.png and b/img one.png differ\n";
        assert_eq!(patch_file(binary).as_deref(), Some("img one.png"));
        let deleted = "diff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n";
        assert_eq!(patch_file(deleted).as_deref(), Some("gone"));
        let split = split_patches(&format!("{deleted}{binary}"));
        assert_eq!(split.len(), 2);
        assert_eq!(split["gone"], deleted);
    }

    #[tokio::test]
    async fn diff_should_give_each_changed_file_its_patch_against_head_or_the_branch_point() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let procs = Procs::default();
        // Not a repository: empty answers, no error.
        assert_eq!(info(root, &procs).await, Info::default());
        assert!(diff(root, &procs, Mode::Git, None).await.is_empty());

        git(root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join("kept.txt"), "one\ntwo\nthree\n").unwrap();
        std::fs::write(root.join("gone.txt"), "bye\n").unwrap();
        std::fs::write(root.join("with space.txt"), "a\n").unwrap();
        // A user setting that changes git's patch headers must not matter.
        git(root, &["config", "diff.noprefix", "true"]);
        git(root, &["add", "."]);
        git(root, &["commit", "-q", "-m", "init"]);
        git(root, &["checkout", "-q", "-b", "feature"]);
        std::fs::write(root.join("kept.txt"), "one\nTWO\nthree\n").unwrap();
        git(root, &["commit", "-q", "-am", "feature work"]);
        std::fs::write(root.join("kept.txt"), "one\nTWO\nthree\nfour\n").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::write(root.join("new file.txt"), "fresh").unwrap();
        std::fs::write(root.join("with space.txt"), "a\nb\n").unwrap();

        assert_eq!(
            info(root, &procs).await,
            Info {
                branch: Some("feature".into()),
                default_branch: Some("main".into())
            }
        );
        let status = status(root, &procs).await;
        let files: Vec<(&str, u64, u64, Change)> = status
            .iter()
            .map(|s| (s.file.as_str(), s.additions, s.deletions, s.status))
            .collect();
        assert_eq!(
            files,
            [
                ("gone.txt", 0, 1, Change::Deleted),
                ("kept.txt", 1, 0, Change::Modified),
                ("new file.txt", 1, 0, Change::Added),
                ("with space.txt", 1, 0, Change::Modified),
            ]
        );

        let against_head = diff(root, &procs, Mode::Git, Some(0)).await;
        assert_eq!(against_head.len(), 4);
        let spaced = against_head[3].patch.as_deref().unwrap_or_default();
        assert!(spaced.contains("\n+b\n"), "{against_head:?}");
        let kept = against_head[1].patch.as_deref().unwrap();
        assert!(
            kept.starts_with("diff --git a/kept.txt b/kept.txt\n"),
            "{kept}"
        );
        assert!(
            kept.contains("\n+four\n") && !kept.contains("+TWO"),
            "{kept}"
        );
        let gone = against_head[0].patch.as_deref().unwrap();
        assert!(gone.contains("\n-bye\n"), "{gone}");
        let fresh = against_head[2].patch.as_deref().unwrap();
        assert!(
            fresh.ends_with("@@ -0,0 +1 @@\n+fresh\n\\ No newline at end of file\n"),
            "{fresh}"
        );

        // The whole branch: the committed change too, with whole-file context by default.
        let branch = diff(root, &procs, Mode::Branch, None).await;
        let kept = branch.iter().find(|d| d.file == "kept.txt").unwrap();
        let patch = kept.patch.as_deref().unwrap();
        assert!(
            patch.contains("-two\n+TWO\n") && patch.contains(" one\n"),
            "{patch}"
        );
        assert_eq!((kept.additions, kept.deletions), (2, 1));

        // On the default branch itself there is no branch work.
        git(root, &["checkout", "-q", "-f", "main"]);
        assert!(diff(root, &procs, Mode::Branch, None).await.is_empty());
    }
}
