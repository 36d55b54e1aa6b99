//! The walks over the workspace: their shared budget (entries, time, cancel), the ignore
//! rules of a directory, and the walk of `rg` itself for the agent's glob and grep.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::overrides::OverrideBuilder;
use ignore::{WalkBuilder, WalkState};

use super::MAX_WALK_ENTRIES;

/// The budget of one parallel walk, shared by its threads.
pub(crate) struct Walk<'a> {
    visited: AtomicUsize,
    deadline: Instant,
    cancel: &'a AtomicBool,
    started: Instant,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(budget: Duration, cancel: &'a AtomicBool) -> Walk<'a> {
        let started = Instant::now();
        Walk {
            visited: AtomicUsize::new(0),
            deadline: started + budget,
            cancel,
            started,
        }
    }

    /// Counts one entry; `Some(Quit)` when the walk must stop.
    pub(crate) fn step(&self) -> Option<WalkState> {
        use std::sync::atomic::Ordering::Relaxed;
        let visited = self.visited.fetch_add(1, Relaxed);
        let over = visited >= MAX_WALK_ENTRIES
            || self.cancel.load(Relaxed)
            || Instant::now() >= self.deadline;
        over.then_some(WalkState::Quit)
    }

    pub(crate) fn report(&self, what: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        let visited = self.visited.load(Relaxed);
        if self.cancel.load(Relaxed) {
            tracing::debug!(visited, "{what} cancelled");
        } else if visited > MAX_WALK_ENTRIES || Instant::now() >= self.deadline {
            tracing::warn!(
                visited,
                elapsed = ?self.started.elapsed(),
                "{what} stopped early; results are partial"
            );
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only plain pushes happen under these locks, so a poisoned one is still consistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `.gitignore` (inside a git repository), `.git/info/exclude` and `.ignore` files from the
/// repository root (or the workspace root outside one) down to one directory.
pub(crate) struct IgnoreRules {
    /// Lowest precedence first: shallower directories, and within one directory `exclude`,
    /// then `.gitignore`, then `.ignore` (as ripgrep orders them).
    levels: Vec<Gitignore>,
}

impl IgnoreRules {
    pub(crate) fn load(root: &Path, dir: &Path) -> IgnoreRules {
        let git_root = root
            .ancestors()
            .take(256)
            .find(|candidate| candidate.join(".git").exists());
        let base = git_root.unwrap_or(root);
        let mut chain: Vec<&Path> = dir
            .ancestors()
            .take_while(|ancestor| ancestor.starts_with(base))
            .collect();
        chain.reverse();
        let mut levels = Vec::new();
        let mut add = |dir: &Path, file: PathBuf| {
            if !file.is_file() {
                return;
            }
            let mut builder = GitignoreBuilder::new(dir);
            if let Some(err) = builder.add(&file) {
                // Valid lines still apply; the rest are reported once here.
                tracing::debug!(file = %file.display(), %err, "ignore file has invalid lines");
            }
            match builder.build() {
                Ok(rules) => levels.push(rules),
                Err(err) => tracing::debug!(file = %file.display(), %err, "ignore file unusable"),
            }
        };
        for dir in chain {
            if git_root == Some(dir) {
                add(dir, dir.join(".git").join("info").join("exclude"));
            }
            if git_root.is_some() {
                add(dir, dir.join(".gitignore"));
            }
            add(dir, dir.join(".ignore"));
        }
        IgnoreRules { levels }
    }

    /// Whether the most specific rule about `path` (absolute, under the loaded chain) ignores it.
    pub(crate) fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        for rules in self.levels.iter().rev() {
            if path == rules.path() || !path.starts_with(rules.path()) {
                continue;
            }
            let matched = rules.matched(path, is_dir);
            if matched.is_ignore() {
                return true;
            }
            if matched.is_whitelist() {
                return false;
            }
        }
        false
    }

    /// Whether `dir` or one of its ancestors below `root` is ignored, which ignores everything
    /// inside it (git cannot re-include files in an excluded directory).
    pub(crate) fn dir_ignored(&self, root: &Path, dir: &Path) -> bool {
        dir.ancestors()
            .take_while(|ancestor| *ancestor != root && ancestor.starts_with(root))
            .any(|ancestor| self.is_ignored(ancestor, true))
    }
}

/// The walk `rg --no-config` does from `dir` with `globs` as its `--glob` arguments (in order,
/// `!` for exclusions): `.gitignore` (inside git repositories), `.ignore`, `.rgignore`, the
/// global git excludes and the parents' ignore files honoured; hidden entries skipped unless
/// `hidden`; symlinks not followed. As in ripgrep, a file a positive glob names is listed even
/// when an ignore file or its dot would hide it. One thread, so the order is the directory
/// order and a caller can stop at a limit.
///
/// # Errors
///
/// The glob parser's message for an invalid glob.
pub(crate) fn ripgrep(dir: &Path, globs: &[&str], hidden: bool) -> Result<WalkBuilder, String> {
    let mut overrides = OverrideBuilder::new(dir);
    for glob in globs {
        overrides.add(glob).map_err(|err| err.to_string())?;
    }
    let overrides = overrides.build().map_err(|err| err.to_string())?;
    let mut builder = WalkBuilder::new(dir);
    builder
        .hidden(!hidden)
        .follow_links(false)
        .add_custom_ignore_filename(".rgignore")
        .overrides(overrides)
        .threads(1);
    Ok(builder)
}
