//! Rules the user answered `always` to (a `bash` prefix, `read` of `.env` files, an `edit`
//! pattern…), kept per workspace in `<state dir>/approvals/<workspace>.rules.json` so they
//! outlive the connection, like the directory approvals beside them:
//!
//! ```json
//! {"version":1,"workspace":"wrk_…","rules":[{"permission":"bash","pattern":"git *","action":"allow"}]}
//! ```
//!
//! Written atomically (a 0600 temp file in the same directory, fsync, rename, fsync of the
//! directory); the file is re-read and merged before each write, so approvals another stub of
//! the same workspace saved are kept. A file that cannot be read is reported and ignored.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::rules::Rule;

/// The format version written.
const VERSION: u64 = 1;
/// Files larger than this are not read.
const MAX_LEN: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct File {
    version: u64,
    workspace: String,
    rules: Vec<Rule>,
}

/// The approved rules of one workspace.
#[derive(Debug, Default)]
pub struct Approved {
    path: Option<PathBuf>,
    workspace: String,
    rules: Mutex<Vec<Rule>>,
}

impl Approved {
    /// Loads the rules of `workspace_id` (nothing kept on disk for an id that is not a plain
    /// name).
    pub fn load(state_dir: &Path, workspace_id: &str) -> Approved {
        let stem = if workspace_id.is_empty() {
            "_manual"
        } else {
            workspace_id
        };
        let plain = stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && stem.len() <= 128;
        let path = plain.then(|| {
            state_dir
                .join("approvals")
                .join(format!("{stem}.rules.json"))
        });
        let rules = path.as_deref().map(read).unwrap_or_default();
        Approved {
            path,
            workspace: workspace_id.to_owned(),
            rules: Mutex::new(rules),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rules now.
    pub fn rules(&self) -> Vec<Rule> {
        self.lock().clone()
    }

    /// Adds `rules` and saves them. Blocking (one small write).
    ///
    /// # Errors
    ///
    /// When the file cannot be written; the rules still apply while this stub runs.
    pub fn add(&self, rules: Vec<Rule>) -> io::Result<()> {
        let mut held = self.lock();
        let on_disk = self.path.as_deref().map(read).unwrap_or_default();
        for rule in on_disk.into_iter().chain(rules) {
            if !held.contains(&rule) {
                held.push(rule);
            }
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = File {
            version: VERSION,
            workspace: self.workspace.clone(),
            rules: held.clone(),
        };
        write_atomically(path, &serde_json::to_vec(&file)?)
    }
}

fn read(path: &Path) -> Vec<Rule> {
    let text = match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_LEN => {
            tracing::warn!(path = %path.display(), "approved rules file too large; ignored");
            return Vec::new();
        }
        Ok(_) => std::fs::read(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => Err(err),
    };
    match text.map(|bytes| serde_json::from_slice::<File>(&bytes)) {
        Ok(Ok(file)) if file.version == VERSION => file.rules,
        Ok(Ok(file)) => {
            tracing::warn!(path = %path.display(), version = file.version, "approved rules file of another version; ignored");
            Vec::new()
        }
        Ok(Err(err)) => {
            tracing::warn!(path = %path.display(), %err, "approved rules file unreadable; ignored");
            Vec::new()
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "approved rules file unreadable; ignored");
            Vec::new()
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("rules"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::rules::Action;

    fn rule(pattern: &str) -> Rule {
        Rule {
            permission: "bash".into(),
            pattern: pattern.into(),
            action: Action::Allow,
        }
    }

    #[test]
    fn approvals_should_outlive_the_stub_and_merge_with_other_stubs() {
        let dir = tempfile::tempdir().unwrap();
        let first = Approved::load(dir.path(), "wrk_1");
        let second = Approved::load(dir.path(), "wrk_1");
        first.add(vec![rule("git *")]).unwrap();
        second.add(vec![rule("make *")]).unwrap();
        let reloaded = Approved::load(dir.path(), "wrk_1");
        assert_eq!(reloaded.rules(), [rule("git *"), rule("make *")]);
        let path = dir.path().join("approvals/wrk_1.rules.json");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(Approved::load(dir.path(), "wrk_2").rules().is_empty());
        std::fs::write(&path, "not json").unwrap();
        assert!(
            Approved::load(dir.path(), "wrk_1").rules().is_empty(),
            "a bad file is ignored"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("approvals"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }
}
