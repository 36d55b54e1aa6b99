//! Text search in the workspace (`GET /find`, the agent's `grep`): ripgrep's own crates, so
//! the host needs no `rg`; results in the shape of `rg --json` match records.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use grep_matcher::Matcher as _;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::WalkState;
use serde::Serialize;

use crate::tools::fs::{Error, Walk, Workspace, lock, slash_path};

/// Time a text search may take; it answers with the matches found by then.
pub const SEARCH_BUDGET: Duration = Duration::from_secs(10);
/// Matching lines one text search returns at most.
pub const MAX_SEARCH_RESULTS: usize = 1_000;
/// Matching lines per file (OpenCode runs `rg --max-count=10`).
pub const MAX_MATCHES_PER_FILE: u64 = 10;
/// Longer matching lines are cut to this many bytes and end in `...` (as OpenCode does).
pub const MAX_LINE_BYTES: usize = 2_000;
/// Submatches reported per line (as OpenCode).
pub const MAX_SUBMATCHES: usize = 100;
/// Buffer one search may grow to for a single line; files with longer lines are skipped.
const SEARCH_HEAP_LIMIT: usize = 16 << 20;

/// `{"text": …}`, as ripgrep's JSON output wraps strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Text {
    /// The string.
    pub text: String,
}

/// One match within a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submatch {
    /// The matched text.
    #[serde(rename = "match")]
    pub matched: Text,
    /// Byte offset of the match in the line.
    pub start: usize,
    /// Byte offset just past the match in the line.
    pub end: usize,
}

/// One matching line of `GET /find`, in the shape of ripgrep's `--json` `match` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// File path relative to the workspace.
    pub path: Text,
    /// The line, with its line terminator.
    pub lines: Text,
    /// 1-based line number.
    pub line_number: u64,
    /// Byte offset of the line in the file.
    pub absolute_offset: u64,
    /// The matches within the line.
    pub submatches: Vec<Submatch>,
}

impl Workspace {
    /// Searches every file for `pattern` (a Rust regex, as `rg` takes): at most
    /// [`MAX_MATCHES_PER_FILE`] lines per file and [`MAX_SEARCH_RESULTS`] in all, ordered by
    /// path and line. Binary files (a NUL byte) are skipped like `rg` skips them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`] when `pattern` does not parse.
    pub fn search(&self, pattern: &str, cancel: &AtomicBool) -> Result<Vec<Match>, Error> {
        let matcher = RegexMatcherBuilder::new()
            .line_terminator(Some(b'\n'))
            .build(pattern)
            .map_err(|err| Error::InvalidPattern {
                message: err.to_string(),
            })?;
        let found = Mutex::new(Vec::new());
        let walk = Walk::new(SEARCH_BUDGET, cancel);
        self.walker().build_parallel().run(|| {
            let matcher = matcher.clone();
            let mut searcher = SearcherBuilder::new()
                .binary_detection(BinaryDetection::quit(0))
                .line_number(true)
                .max_matches(Some(MAX_MATCHES_PER_FILE))
                .heap_limit(Some(SEARCH_HEAP_LIMIT))
                .build();
            let found = &found;
            let walk = &walk;
            Box::new(move |entry| {
                if let Some(stop) = walk.step() {
                    return stop;
                }
                let Ok(entry) = entry else {
                    return WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|kind| kind.is_file()) {
                    return WalkState::Continue;
                }
                let Ok(relative) = entry.path().strip_prefix(self.root()) else {
                    return WalkState::Continue;
                };
                let mut sink = Collect {
                    matcher: &matcher,
                    path: slash_path(relative),
                    found: Vec::new(),
                    binary: false,
                };
                if let Err(err) = searcher.search_path(&matcher, entry.path(), &mut sink) {
                    // Unreadable files and lines over the heap limit are skipped, as `rg` does.
                    tracing::debug!(path = %entry.path().display(), %err, "search skipped a file");
                }
                if sink.binary || sink.found.is_empty() {
                    return WalkState::Continue;
                }
                let mut found = lock(found);
                found.extend(sink.found);
                if found.len() >= MAX_SEARCH_RESULTS {
                    return WalkState::Quit;
                }
                WalkState::Continue
            })
        });
        walk.report("search");
        let mut found = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        found.sort_by(|a, b| {
            a.path
                .text
                .cmp(&b.path.text)
                .then(a.line_number.cmp(&b.line_number))
        });
        found.truncate(MAX_SEARCH_RESULTS);
        Ok(found)
    }
}

/// Collects the matching lines of one file.
struct Collect<'a> {
    matcher: &'a RegexMatcher,
    path: String,
    found: Vec<Match>,
    /// Set when a NUL byte showed up: the file is skipped, matches and all (as `rg` skips
    /// binary files it comes across in a walk).
    binary: bool,
}

impl Sink for Collect<'_> {
    type Error = io::Error;

    fn binary_data(&mut self, _searcher: &Searcher, _offset: u64) -> Result<bool, io::Error> {
        self.binary = true;
        Ok(false)
    }

    fn matched(&mut self, _searcher: &Searcher, found: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let line = found.bytes();
        // Submatches are found in the line without its terminator, as `rg --json` does, so
        // `$` and look-arounds see the end of the line.
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let mut submatches = Vec::new();
        // `RegexMatcher::Error` is `NoError`: finding within a line cannot fail.
        let _infallible = self.matcher.find_iter(content, |range| {
            if range.is_empty() && range.start() == content.len() && !content.is_empty() {
                return true;
            }
            submatches.push((range.start(), range.end()));
            submatches.len() < MAX_SUBMATCHES
        });
        let mut text = String::from_utf8_lossy(line).into_owned();
        let mut kept = text.len();
        if text.len() > MAX_LINE_BYTES {
            kept = MAX_LINE_BYTES;
            while !text.is_char_boundary(kept) {
                kept -= 1;
            }
            text.truncate(kept);
            text.push_str("...");
        }
        let submatches = submatches
            .into_iter()
            .filter(|&(_, end)| end <= kept)
            .filter_map(|(start, end)| {
                Some(Submatch {
                    matched: Text {
                        text: String::from_utf8_lossy(line.get(start..end)?).into_owned(),
                    },
                    start,
                    end,
                })
            })
            .collect();
        self.found.push(Match {
            path: Text {
                text: self.path.clone(),
            },
            lines: Text { text },
            line_number: found.line_number().unwrap_or(0),
            absolute_offset: found.absolute_byte_offset(),
            submatches,
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::fs::Error;
    use crate::tools::fs::testing::{workspace, write};
    use std::fs;

    fn search(workspace: &Workspace, pattern: &str) -> Result<Vec<Match>, Error> {
        workspace.search(pattern, &AtomicBool::new(false))
    }

    #[test]
    fn search_should_report_matches_like_rg_json() {
        let (_dir, workspace) = workspace();
        write(&workspace, "README.md", "hello from the REMOTE host\n");
        write(
            &workspace,
            "src/main.rs",
            "fn main() { println!(\"hello\"); }\n",
        );
        write(
            &workspace,
            "notes.txt",
            "first line\nsay hello, hello\nno newline hello",
        );
        let found = search(&workspace, "hello").unwrap();
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"path": {"text": "README.md"}, "lines": {"text": "hello from the REMOTE host\n"},
                 "line_number": 1, "absolute_offset": 0,
                 "submatches": [{"match": {"text": "hello"}, "start": 0, "end": 5}]},
                {"path": {"text": "notes.txt"}, "lines": {"text": "say hello, hello\n"},
                 "line_number": 2, "absolute_offset": 11,
                 "submatches": [{"match": {"text": "hello"}, "start": 4, "end": 9},
                                {"match": {"text": "hello"}, "start": 11, "end": 16}]},
                {"path": {"text": "notes.txt"}, "lines": {"text": "no newline hello"},
                 "line_number": 3, "absolute_offset": 28,
                 "submatches": [{"match": {"text": "hello"}, "start": 11, "end": 16}]},
                {"path": {"text": "src/main.rs"},
                 "lines": {"text": "fn main() { println!(\"hello\"); }\n"},
                 "line_number": 1, "absolute_offset": 0,
                 "submatches": [{"match": {"text": "hello"}, "start": 22, "end": 27}]},
            ])
        );
    }

    #[test]
    fn search_should_use_byte_offsets_in_multibyte_text() {
        let (_dir, workspace) = workspace();
        write(&workspace, "utf8.txt", "ça va\nhéllo wörld\n");
        let found = search(&workspace, "w.rld").unwrap();
        assert_eq!(found.len(), 1);
        let hit = &found[0];
        assert_eq!(hit.line_number, 2);
        assert_eq!(hit.absolute_offset, "ça va\n".len() as u64);
        assert_eq!(hit.lines.text, "héllo wörld\n");
        assert_eq!(
            hit.submatches,
            [Submatch {
                matched: Text {
                    text: "wörld".to_owned()
                },
                start: 7,
                end: 13
            }]
        );
    }

    #[test]
    fn search_should_skip_binary_ignored_and_git_files_but_not_hidden_ones() {
        let (_dir, workspace) = workspace();
        fs::create_dir_all(workspace.root().join(".git")).unwrap();
        write(&workspace, ".git/config", "needle\n");
        write(&workspace, ".gitignore", "ignored.txt\n");
        write(&workspace, "ignored.txt", "needle\n");
        write(&workspace, "binary.bin", b"needle\n\0\x01\x02");
        write(&workspace, ".hidden/file", "needle\n");
        write(&workspace, "plain.txt", "needle\n");
        let paths: Vec<String> = search(&workspace, "needle")
            .unwrap()
            .into_iter()
            .map(|hit| hit.path.text)
            .collect();
        assert_eq!(paths, [".hidden/file", "plain.txt"]);
    }

    #[test]
    fn search_should_cap_lines_per_file_and_line_length() {
        let (_dir, workspace) = workspace();
        write(&workspace, "many.txt", "x\n".repeat(50));
        let long = format!("{}needle{}needle\n", "é".repeat(990), "a".repeat(3000));
        write(&workspace, "long.txt", &long);
        let found = search(&workspace, "x|needle").unwrap();
        let many = found
            .iter()
            .filter(|hit| hit.path.text == "many.txt")
            .count();
        assert_eq!(many as u64, MAX_MATCHES_PER_FILE);
        let long = found
            .iter()
            .find(|hit| hit.path.text == "long.txt")
            .unwrap();
        assert!(long.lines.text.ends_with("..."));
        assert!(long.lines.text.len() <= MAX_LINE_BYTES + 3);
        // The first match fits within the kept text, the second does not.
        assert_eq!(long.submatches.len(), 1);
        assert_eq!(long.submatches[0].start, 1980);
    }

    #[test]
    fn search_should_reject_an_invalid_regex() {
        let (_dir, workspace) = workspace();
        let err = search(&workspace, "fn (").unwrap_err();
        assert!(matches!(err, Error::InvalidPattern { .. }), "{err:?}");
        assert!(err.to_string().contains("`pattern`"), "{err}");
    }

    #[test]
    fn search_should_stop_when_cancelled() {
        let (_dir, workspace) = workspace();
        write(&workspace, "a.txt", "needle\n");
        let found = workspace.search("needle", &AtomicBool::new(true)).unwrap();
        assert!(found.is_empty());
    }
}
