//! The execution half of OpenCode's `glob` tool: the files `rg --files --glob=<pattern>
//! --glob=!**/.git/**` lists in a directory, as absolute paths, at most [`LIMIT`].
//!
//! ripgrep's crates do the walk ([`crate::tools::fs::ripgrep`]), so the glob means what it
//! means to `rg`: a pattern without `/` matches a name at any depth, one with `/` is anchored at
//! the directory; hidden files and ignored files are skipped unless the pattern names them.
//! The order is the walk's (directory order, not sorted), as OpenCode leaves rg's order alone.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::tools::fs::ripgrep;

/// Files one glob returns at most.
pub const LIMIT: usize = 100;

/// Why a glob failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// The path is a file. `Display` is OpenCode's text.
    #[error("glob path must be a directory: {path}")]
    NotADirectory {
        /// The absolute path.
        path: String,
    },
    /// The pattern is not a valid glob.
    #[error("invalid glob pattern: {message}")]
    Pattern {
        /// What the glob parser said.
        message: String,
    },
    /// The directory could not be read.
    #[error("cannot search {path}")]
    Io {
        /// The absolute path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// Absolute paths, in walk order.
    pub files: Vec<PathBuf>,
    /// Whether the limit was reached (`metadata.truncated`; `metadata.count` is the length of
    /// `files`).
    pub truncated: bool,
}

impl Glob {
    /// The tool output: the paths, one per line, the truncation note when the limit was
    /// reached, or `No files found`.
    pub fn output(&self) -> String {
        if self.files.is_empty() {
            return "No files found".to_owned();
        }
        let mut lines: Vec<String> = self
            .files
            .iter()
            .map(|file| file.to_string_lossy().into_owned())
            .collect();
        if self.truncated {
            lines.push(String::new());
            lines.push(format!(
                "(Results are truncated: showing first {LIMIT} results. Consider using a more specific path or pattern.)"
            ));
        }
        lines.join("\n")
    }
}

/// The files under `dir` (absolute) that `pattern` matches, stopping at [`LIMIT`] or when
/// `cancel` is set. Exactly [`LIMIT`] files count as truncated, as OpenCode reports them.
///
/// # Errors
///
/// [`GlobError::NotADirectory`] for a file, [`GlobError::Io`] for a missing or unreadable
/// directory, [`GlobError::Pattern`] for an invalid glob.
pub fn glob(dir: &Path, pattern: &str, cancel: &AtomicBool) -> Result<Glob, GlobError> {
    let display = || dir.to_string_lossy().into_owned();
    let meta = std::fs::metadata(dir).map_err(|source| GlobError::Io {
        path: display(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(GlobError::NotADirectory { path: display() });
    }
    let walk = ripgrep(dir, &[pattern, "!**/.git/**"], false)
        .map_err(|message| GlobError::Pattern { message })?;
    let mut files = Vec::new();
    for entry in walk.build() {
        if files.len() >= LIMIT || cancel.load(Ordering::Relaxed) {
            break;
        }
        // Unreadable entries are skipped, as `rg --files` skips them.
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_some_and(|kind| kind.is_file()) {
            files.push(entry.into_path());
        }
    }
    Ok(Glob {
        truncated: files.len() >= LIMIT,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(dir: &Path, pattern: &str) -> Vec<String> {
        let mut found: Vec<String> = glob(dir, pattern, &AtomicBool::new(false))
            .unwrap()
            .files
            .iter()
            .map(|file| {
                file.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        found.sort();
        found
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            (".git/HEAD", "ref\n"),
            (".git/x.txt", ""),
            (".gitignore", "ignored.txt\nbuild/\n"),
            ("hello.txt", "hi\n"),
            ("ignored.txt", ""),
            ("build/out.txt", ""),
            (".hidden.txt", ""),
            (".config/deep.txt", ""),
            ("src/a.rs", ""),
            ("src/notes.txt", ""),
        ] {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    /// T1 of `samples-agent.json`: `*.txt` in the project gives the absolute path, one line.
    #[test]
    fn glob_should_reproduce_the_captured_output_shape() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hello.txt"), "x").unwrap();
        let found = glob(dir.path(), "*.txt", &AtomicBool::new(false)).unwrap();
        assert_eq!(
            found.output(),
            dir.path().join("hello.txt").to_string_lossy()
        );
        assert!(!found.truncated);
    }

    #[test]
    fn glob_should_match_like_rg() {
        let dir = tree();
        // Basename globs match at any depth; a positive glob overrides ignore rules and dots
        // for the files it names, but not for directories it does not name.
        assert_eq!(
            names(dir.path(), "*.txt"),
            [".hidden.txt", "hello.txt", "ignored.txt", "src/notes.txt"]
        );
        assert_eq!(names(dir.path(), "src/*.rs"), ["src/a.rs"]);
        assert_eq!(names(dir.path(), "**/*.rs"), ["src/a.rs"]);
        assert!(names(dir.path(), "*.none").is_empty());
    }

    #[test]
    fn glob_should_stop_at_the_limit_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..LIMIT + 5 {
            fs::write(dir.path().join(format!("f{n}.txt")), "").unwrap();
        }
        let found = glob(dir.path(), "*.txt", &AtomicBool::new(false)).unwrap();
        assert_eq!(found.files.len(), LIMIT);
        assert!(found.truncated);
        assert!(found.output().ends_with(
            "\n\n(Results are truncated: showing first 100 results. Consider using a more specific path or pattern.)"
        ));
        let empty = glob(dir.path(), "*.rs", &AtomicBool::new(false)).unwrap();
        assert_eq!(empty.output(), "No files found");
    }

    #[test]
    fn glob_should_refuse_files_and_bad_patterns() {
        let dir = tree();
        let file = dir.path().join("hello.txt");
        let err = glob(&file, "*", &AtomicBool::new(false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("glob path must be a directory: {}", file.display())
        );
        assert!(matches!(
            glob(dir.path(), "a[", &AtomicBool::new(false)),
            Err(GlobError::Pattern { .. })
        ));
    }
}
