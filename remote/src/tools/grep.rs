//! The execution half of OpenCode's `grep` tool: the matching lines `rg --json --hidden
//! [--glob=<include>] --glob=!**/.git/** -- <pattern> .` finds, at most [`LIMIT`], in the
//! tool's output format.
//!
//! ripgrep's own crates search ([`crate::tools::fs::ripgrep`] for the walk, `grep-regex` and
//! `grep-searcher` for the lines), so the pattern is ripgrep's regex syntax, hidden files are
//! searched, ignore files are honoured (an `include` glob overrides them for the files it
//! names, as `--glob` does), `.git` is skipped, and a file stops being searched at its first
//! NUL byte. Files are searched one at a time in walk order, so the matches of a file stay
//! together, as rg prints them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};

use crate::tools::fs::ripgrep;
use crate::tools::js;

/// Matching lines one grep returns at most.
pub const LIMIT: usize = 100;
/// Longer lines are cut to this many UTF-16 units and end in `...`.
pub const MAX_LINE_LENGTH: usize = 2000;

/// Why a grep failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrepError {
    /// An empty pattern. `Display` is OpenCode's text.
    #[error("pattern is required")]
    EmptyPattern,
    /// The pattern does not parse; the message is the regex parser's, as rg prints it.
    #[error("{message}")]
    Pattern {
        /// What the regex parser said.
        message: String,
    },
    /// The `include` glob does not parse.
    #[error("invalid include glob: {message}")]
    Include {
        /// What the glob parser said.
        message: String,
    },
    /// The directory could not be read.
    #[error("cannot search {path}")]
    Io {
        /// The absolute path of the directory searched.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The file's absolute path.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// The line with its line terminator, cut after [`MAX_LINE_LENGTH`] units with `...`.
    pub text: String,
}

/// The lines found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grep {
    /// In walk order, a file's lines together and in order.
    pub matches: Vec<Match>,
    /// Whether the limit was reached (`metadata.truncated`; `metadata.matches` is the length
    /// of `matches`).
    pub truncated: bool,
}

impl Grep {
    /// The tool output: `Found N matches`, then per file its path and `  Line n: text` lines
    /// (the text keeps its newline), files separated by a blank line; `No files found` when
    /// nothing matched.
    pub fn output(&self) -> String {
        if self.matches.is_empty() {
            return "No files found".to_owned();
        }
        let more = if self.truncated {
            " (more matches available)"
        } else {
            ""
        };
        let mut lines = vec![format!("Found {} matches{more}", self.matches.len())];
        let mut current: Option<&Path> = None;
        for found in &self.matches {
            if current != Some(found.path.as_path()) {
                if current.is_some() {
                    lines.push(String::new());
                }
                current = Some(&found.path);
                lines.push(format!("{}:", found.path.display()));
            }
            lines.push(format!("  Line {}: {}", found.line, found.text));
        }
        if self.truncated {
            lines.push(String::new());
            lines.push(
                "(Results truncated. Consider using a more specific path or pattern.)".to_owned(),
            );
        }
        lines.join("\n")
    }
}

/// Searches for `pattern` under `target` (absolute): a directory itself, or for anything else
/// its parent directory, entirely, as OpenCode runs rg there. Stops at [`LIMIT`] lines or when
/// `cancel` is set; exactly [`LIMIT`] lines count as truncated, as OpenCode reports them.
///
/// # Errors
///
/// [`GrepError::EmptyPattern`], [`GrepError::Pattern`], [`GrepError::Include`], or
/// [`GrepError::Io`] when the directory cannot be read.
pub fn grep(
    target: &Path,
    pattern: &str,
    include: Option<&str>,
    cancel: &AtomicBool,
) -> Result<Grep, GrepError> {
    if pattern.is_empty() {
        return Err(GrepError::EmptyPattern);
    }
    let dir = if target.is_dir() {
        target
    } else {
        target.parent().unwrap_or(Path::new("/"))
    };
    std::fs::read_dir(dir).map_err(|source| GrepError::Io {
        path: dir.to_string_lossy().into_owned(),
        source,
    })?;
    let matcher = RegexMatcherBuilder::new()
        .line_terminator(Some(b'\n'))
        .build(pattern)
        .map_err(|err| GrepError::Pattern {
            message: err.to_string(),
        })?;
    let mut globs: Vec<&str> = include.into_iter().collect();
    globs.push("!**/.git/**");
    let walk = ripgrep(dir, &globs, true).map_err(|message| GrepError::Include { message })?;
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .build();
    let mut matches = Vec::new();
    for entry in walk.build() {
        if matches.len() >= LIMIT || cancel.load(Ordering::Relaxed) {
            break;
        }
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let mut sink = Collect {
            path: entry.path(),
            matches: &mut matches,
        };
        if let Err(err) = searcher.search_path(&matcher, entry.path(), &mut sink) {
            // Unreadable files are skipped, as `rg --no-messages` skips them.
            tracing::debug!(path = %entry.path().display(), %err, "grep skipped a file");
        }
    }
    matches.truncate(LIMIT);
    Ok(Grep {
        truncated: matches.len() >= LIMIT,
        matches,
    })
}

/// Collects a file's matching lines until the limit.
struct Collect<'a> {
    path: &'a Path,
    matches: &'a mut Vec<Match>,
}

impl Sink for Collect<'_> {
    type Error = io::Error;

    fn matched(&mut self, _searcher: &Searcher, found: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let text = String::from_utf8_lossy(found.bytes());
        let text = if js::utf16_len(&text) > MAX_LINE_LENGTH {
            format!("{}...", js::utf16_prefix(&text, MAX_LINE_LENGTH))
        } else {
            text.into_owned()
        };
        self.matches.push(Match {
            path: self.path.to_path_buf(),
            line: found.line_number().unwrap_or(0),
            text,
        });
        Ok(self.matches.len() < LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn search(target: &Path, pattern: &str, include: Option<&str>) -> Grep {
        grep(target, pattern, include, &AtomicBool::new(false)).unwrap()
    }

    /// T1 of `samples-agent.json`: `edited` in `*.txt` gives the captured output.
    #[test]
    fn grep_should_reproduce_the_captured_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hello.txt");
        fs::write(&file, "hello edited world\nsecond line\n").unwrap();
        fs::write(dir.path().join("other.md"), "edited too\n").unwrap();
        let found = search(dir.path(), "edited", Some("*.txt"));
        assert_eq!(
            found.output(),
            format!(
                "Found 1 matches\n{}:\n  Line 1: hello edited world\n",
                file.display()
            )
        );
        assert!(!found.truncated);
    }

    #[test]
    fn grep_should_group_by_file_and_search_a_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join(".git/config"), "needle\n").unwrap();
        fs::write(root.join(".hidden"), "needle here\n").unwrap();
        fs::write(root.join("a.txt"), "x\nneedle one\nneedle two").unwrap();
        fs::write(root.join("bin"), "needle\0\n").unwrap();
        let found = search(&root.join("a.txt"), "needle", None);
        let mut files: Vec<_> = found.matches.iter().map(|m| m.path.clone()).collect();
        files.dedup();
        files.sort();
        assert_eq!(files, [root.join(".hidden"), root.join("a.txt")]);
        let output = found.output();
        let a = root.join("a.txt").display().to_string();
        assert!(
            output.contains(&format!(
                "{a}:\n  Line 2: needle one\n\n  Line 3: needle two"
            )),
            "{output}"
        );
        assert!(output.starts_with("Found 3 matches\n"));
    }

    #[test]
    fn grep_should_cut_long_lines_and_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("long.txt"),
            format!("{}\n", "z".repeat(2500)),
        )
        .unwrap();
        let found = search(dir.path(), "z", None);
        assert_eq!(found.matches[0].text, format!("{}...", "z".repeat(2000)));
        fs::write(dir.path().join("many.txt"), "hit\n".repeat(150)).unwrap();
        let found = search(dir.path(), "hit", None);
        assert_eq!(found.matches.len(), LIMIT);
        let output = found.output();
        assert!(output.starts_with("Found 100 matches (more matches available)\n"));
        assert!(
            output.ends_with(
                "\n\n(Results truncated. Consider using a more specific path or pattern.)"
            )
        );
        assert_eq!(
            search(dir.path(), "absent", None).output(),
            "No files found"
        );
    }

    #[test]
    fn grep_should_report_bad_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let grep = |pattern| grep(dir.path(), pattern, None, &AtomicBool::new(false));
        assert_eq!(grep("").unwrap_err().to_string(), "pattern is required");
        let err = grep("fn (").unwrap_err();
        assert!(err.to_string().starts_with("regex parse error:"), "{err}");
    }
}
