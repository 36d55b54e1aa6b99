//! The execution half of OpenCode's `apply_patch` tool (offered to GPT models instead of
//! `edit`/`write`): the patch grammar, the fuzzy search for each chunk's lines, and the file
//! changes a patch makes, computed without touching the disk.
//!
//! The adapter runs it the way OpenCode does:
//! 1. [`check`] the text (`patchText is required` is the adapter's own check before it);
//! 2. for each hunk, resolve its path against the session directory ([`js::resolve`]), check
//!    the external directory, then build the change: [`add`], [`update`] with the file's bytes
//!    (a missing path or a directory is [`PatchError::UpdateTargetMissing`]; the move target is
//!    checked after) or [`delete`] with the file's bytes;
//! 3. ask the `edit` permission with the changes' diffs, then write [`FileChange::bytes`], move
//!    or remove, and answer with [`summary`].
//!
//! `Display` of [`PatchError`] is the inner message; [`PatchError::tool_message`] is the full
//! text OpenCode's tool reports, with its `apply_patch verification failed: ` wrappings.

mod parse;

use std::path::{Path, PathBuf};

use crate::tools::edit::{decode, join_bom, split_bom};
use crate::tools::{diff, js};

pub use parse::parse;

/// One file section of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hunk {
    /// `*** Add File: path` with its `+` lines.
    Add {
        /// The path as written in the patch.
        path: String,
        /// The file's text, without a final newline (see [`add`]).
        contents: String,
    },
    /// `*** Delete File: path`.
    Delete {
        /// The path as written in the patch.
        path: String,
    },
    /// `*** Update File: path`, maybe `*** Move to:`, and its chunks.
    Update {
        /// The path as written in the patch.
        path: String,
        /// The new path, if the file moves.
        move_to: Option<String>,
        /// The `@@` chunks, in order.
        chunks: Vec<Chunk>,
    },
}

/// One `@@` chunk of an Update section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The text after `@@`: a line to find first, from which the old lines are searched.
    pub context: Option<String>,
    /// Lines the chunk expects (` ` and `-` lines).
    pub old_lines: Vec<String>,
    /// Lines that replace them (` ` and `+` lines).
    pub new_lines: Vec<String>,
}

/// Why a patch cannot be applied. `Display` is OpenCode's inner message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// No `*** Begin Patch` line before an `*** End Patch` line.
    #[error("Invalid patch format: missing Begin/End markers")]
    MissingMarkers,
    /// Exactly the two marker lines.
    #[error("patch rejected: empty patch")]
    EmptyPatch,
    /// Markers but no file sections.
    #[error("no hunks found")]
    NoHunks,
    /// An Update of a path that is missing or a directory.
    #[error("Failed to read file to update: {path}")]
    UpdateTargetMissing {
        /// The absolute path.
        path: String,
    },
    /// A chunk's `@@` context line is not in the file.
    #[error("Failed to find context '{context}' in {path}")]
    ContextNotFound {
        /// The context line.
        context: String,
        /// The absolute path.
        path: String,
    },
    /// A chunk's old lines are not in the file.
    #[error("Failed to find expected lines in {path}:\n{lines}")]
    LinesNotFound {
        /// The absolute path.
        path: String,
        /// The chunk's old lines joined by `\n`.
        lines: String,
    },
}

impl PatchError {
    /// The error text of OpenCode's tool: parse and chunk errors are stringified `Error`s
    /// inside `apply_patch verification failed: `, the missing update target and the missing
    /// hunks are wrapped without `Error: `, the empty patch is not wrapped.
    pub fn tool_message(&self) -> String {
        match self {
            PatchError::EmptyPatch => self.to_string(),
            PatchError::NoHunks | PatchError::UpdateTargetMissing { .. } => {
                format!("apply_patch verification failed: {self}")
            }
            _ => format!("apply_patch verification failed: Error: {self}"),
        }
    }
}

/// [`parse`] plus the tool's rules for a patch without hunks.
///
/// # Errors
///
/// [`PatchError::MissingMarkers`]; with no hunks, [`PatchError::EmptyPatch`] when the text is
/// just the two markers (line endings normalised, trimmed), else [`PatchError::NoHunks`].
pub fn check(text: &str) -> Result<Vec<Hunk>, PatchError> {
    let hunks = parse(text)?;
    if !hunks.is_empty() {
        return Ok(hunks);
    }
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    if js::trim(&normalized) == "*** Begin Patch\n*** End Patch" {
        return Err(PatchError::EmptyPatch);
    }
    Err(PatchError::NoHunks)
}

/// What a change does to its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Creates (or overwrites) the file.
    Add,
    /// Rewrites the file in place.
    Update,
    /// Writes the new text at [`FileChange::move_path`] and removes the file.
    Move,
    /// Removes the file.
    Delete,
}

impl ChangeKind {
    /// The name in OpenCode's metadata (`files[].type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "add",
            ChangeKind::Update => "update",
            ChangeKind::Move => "move",
            ChangeKind::Delete => "delete",
        }
    }
}

/// One file's change, ready for the permission request and then for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Add, update, move or delete.
    pub kind: ChangeKind,
    /// The absolute path of the file the hunk names.
    pub path: PathBuf,
    /// Where a moved file goes (absolute).
    pub move_path: Option<PathBuf>,
    /// The text before, without BOM (`""` for an add).
    pub old: String,
    /// The text after, without BOM (`""` for a delete).
    pub new: String,
    /// Whether the written file starts with a BOM.
    pub bom: bool,
    /// The de-indented diff (`files[].patch`; the permission's `diff` joins them).
    pub diff: String,
    /// Lines added.
    pub additions: usize,
    /// Lines removed.
    pub deletions: usize,
}

impl FileChange {
    /// The bytes to write (at [`FileChange::move_path`] for a move); nothing for a delete.
    pub fn bytes(&self) -> Vec<u8> {
        join_bom(&self.new, self.bom).into_bytes()
    }

    /// The file the change leaves behind: the move target, or the path.
    pub fn target(&self) -> &Path {
        self.move_path.as_deref().unwrap_or(&self.path)
    }
}

/// An added file: `contents` gets a final `\n` unless it is empty or has one; a leading BOM
/// becomes the written BOM.
pub fn add(path: PathBuf, contents: &str) -> FileChange {
    let contents = if contents.is_empty() || contents.ends_with('\n') {
        contents.to_owned()
    } else {
        format!("{contents}\n")
    };
    let (text, bom) = split_bom(&contents);
    let stat = diff::stat("", text);
    FileChange {
        kind: ChangeKind::Add,
        diff: diff::tool_diff(&path.to_string_lossy(), "", text),
        path,
        move_path: None,
        old: String::new(),
        new: text.to_owned(),
        bom,
        additions: stat.additions,
        deletions: stat.deletions,
    }
}

/// A deleted file, given its bytes; its deletions count the old text's `\n`-separated pieces
/// (as OpenCode counts them, one more than the lines of a file ending in a newline).
pub fn delete(path: PathBuf, original: &[u8]) -> FileChange {
    let (old, bom) = decode(original);
    FileChange {
        kind: ChangeKind::Delete,
        diff: diff::tool_diff(&path.to_string_lossy(), &old, ""),
        path,
        move_path: None,
        deletions: old.split('\n').count(),
        additions: 0,
        new: String::new(),
        old,
        bom,
    }
}

/// An updated (or moved) file, given its current bytes and the hunk's chunks.
///
/// # Errors
///
/// [`PatchError::ContextNotFound`] or [`PatchError::LinesNotFound`] for the first chunk that
/// does not fit.
pub fn update(
    path: PathBuf,
    move_path: Option<PathBuf>,
    original: &[u8],
    chunks: &[Chunk],
) -> Result<FileChange, PatchError> {
    let (old, old_bom) = decode(original);
    let (new, new_bom) = apply(&path.to_string_lossy(), &old, chunks)?;
    let stat = diff::stat(&old, &new);
    Ok(FileChange {
        kind: if move_path.is_some() {
            ChangeKind::Move
        } else {
            ChangeKind::Update
        },
        diff: diff::tool_diff(&path.to_string_lossy(), &old, &new),
        path,
        move_path,
        bom: old_bom || new_bom,
        old,
        new,
        additions: stat.additions,
        deletions: stat.deletions,
    })
}

/// The chunks applied to `text` (without BOM): the new text without BOM and whether the
/// result began with one. The result always ends with `\n`.
///
/// # Errors
///
/// As [`update`]; `path` only appears in the messages.
pub fn apply(path: &str, text: &str, chunks: &[Chunk]) -> Result<(String, bool), PatchError> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut replacements: Vec<(usize, usize, Vec<&str>)> = Vec::new();
    let mut cursor = 0;
    for chunk in chunks {
        if let Some(context) = &chunk.context {
            let Some(at) = seek(&lines, &[context.as_str()], cursor) else {
                return Err(PatchError::ContextNotFound {
                    context: context.clone(),
                    path: path.to_owned(),
                });
            };
            cursor = at + 1;
        }
        let new_lines: Vec<&str> = chunk.new_lines.iter().map(String::as_str).collect();
        if chunk.old_lines.is_empty() {
            // Appended at the end, before a final blank line if the file has one.
            let at = if lines.last() == Some(&"") {
                lines.len() - 1
            } else {
                lines.len()
            };
            replacements.push((at, 0, new_lines));
            continue;
        }
        let mut pattern: Vec<&str> = chunk.old_lines.iter().map(String::as_str).collect();
        let mut replacement = new_lines;
        let mut found = seek(&lines, &pattern, cursor);
        if found.is_none() && pattern.last() == Some(&"") {
            pattern.pop();
            if replacement.last() == Some(&"") {
                replacement.pop();
            }
            found = seek(&lines, &pattern, cursor);
        }
        let Some(at) = found else {
            return Err(PatchError::LinesNotFound {
                path: path.to_owned(),
                lines: chunk.old_lines.join("\n"),
            });
        };
        replacements.push((at, pattern.len(), replacement));
        cursor = at + pattern.len();
    }
    replacements.sort_by_key(|(at, _, _)| *at);
    for (at, removed, inserted) in replacements.into_iter().rev() {
        let start = at.min(lines.len());
        let end = (at + removed).min(lines.len());
        lines.splice(start..end, inserted);
    }
    if lines.last() != Some(&"") {
        lines.push("");
    }
    let joined = lines.join("\n");
    let (new, bom) = split_bom(&joined);
    Ok((new.to_owned(), bom))
}

/// Where `pattern` starts in `lines` at or after `start`, trying exact lines, then without
/// trailing whitespace, then trimmed, then trimmed with typographic punctuation made ASCII.
fn seek(lines: &[&str], pattern: &[&str], start: usize) -> Option<usize> {
    if pattern.is_empty() || pattern.len() > lines.len() {
        return None;
    }
    let passes: [fn(&str, &str) -> bool; 4] = [
        |a, b| a == b,
        |a, b| js::trim_end(a) == js::trim_end(b),
        |a, b| js::trim(a) == js::trim(b),
        |a, b| ascii_punctuation(js::trim(a)) == ascii_punctuation(js::trim(b)),
    ];
    passes.iter().find_map(|same| {
        (start..=lines.len() - pattern.len()).find(|&at| {
            pattern
                .iter()
                .zip(&lines[at..])
                .all(|(expected, line)| same(line, expected))
        })
    })
}

/// Curly quotes, typographic dashes, the ellipsis and NBSP as ASCII.
fn ascii_punctuation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' => out.push('\''),
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' => out.push('"'),
            '\u{2010}'..='\u{2015}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{a0}' => out.push(' '),
            other => out.push(other),
        }
    }
    out
}

/// The diffs of all changes as the permission's `diff`: each followed by `\n`.
pub fn combined_diff(changes: &[FileChange]) -> String {
    changes
        .iter()
        .map(|change| format!("{}\n", change.diff))
        .collect()
}

/// The tool's output (and title): `Success. Updated the following files:` and a line per
/// change, `A`/`M`/`D` and the path relative to `worktree` (a move shows its target).
pub fn summary(changes: &[FileChange], worktree: &Path) -> String {
    let lines: Vec<String> = changes
        .iter()
        .map(|change| {
            let (letter, path) = match change.kind {
                ChangeKind::Add => ('A', change.path.as_path()),
                ChangeKind::Delete => ('D', change.path.as_path()),
                ChangeKind::Update | ChangeKind::Move => ('M', change.target()),
            };
            format!("{letter} {}", js::relative(worktree, path))
        })
        .collect();
    format!(
        "Success. Updated the following files:\n{}",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(context: Option<&str>, old: &[&str], new: &[&str]) -> Chunk {
        Chunk {
            context: context.map(str::to_owned),
            old_lines: old.iter().map(|s| (*s).to_owned()).collect(),
            new_lines: new.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn check_should_tell_empty_from_hunkless_patches() {
        let err = check("*** Begin Patch\r\n*** End Patch\r\n").unwrap_err();
        assert_eq!(err.tool_message(), "patch rejected: empty patch");
        let err = check("*** Begin Patch\nnothing here\n*** End Patch").unwrap_err();
        assert_eq!(
            err.tool_message(),
            "apply_patch verification failed: no hunks found"
        );
        let err = check("hello").unwrap_err();
        assert_eq!(
            err.tool_message(),
            "apply_patch verification failed: Error: Invalid patch format: missing Begin/End markers"
        );
    }

    #[test]
    fn apply_should_replace_bottom_up_and_end_with_a_newline() {
        let text = "a\nb\nc\nd";
        let chunks = [
            chunk(None, &["a", "b"], &["A", "B"]),
            chunk(None, &["d"], &["D", "E"]),
        ];
        assert_eq!(
            apply("/p/f", text, &chunks).unwrap(),
            ("A\nB\nc\nD\nE\n".to_owned(), false)
        );
    }

    #[test]
    fn apply_should_seek_context_and_fuzzy_lines() {
        let text = "fn a() {\n    x();\n}\nfn b() {\n    x();   \n}\n";
        let chunks = [chunk(Some("fn b() {"), &["x();"], &["y();"])];
        assert_eq!(
            apply("/p/f", text, &chunks).unwrap().0,
            "fn a() {\n    x();\n}\nfn b() {\ny();\n}\n"
        );
        let quotes = "say \u{201c}hi\u{201d} \u{2014} ok\u{2026}\n";
        let chunks = [chunk(None, &["say \"hi\" - ok..."], &["said"])];
        assert_eq!(apply("/p/f", quotes, &chunks).unwrap().0, "said\n");
    }

    #[test]
    fn apply_should_retry_without_a_trailing_blank_line_and_insert_at_the_end() {
        let chunks = [chunk(None, &["b", ""], &["B", ""])];
        assert_eq!(apply("/p/f", "a\nb", &chunks).unwrap().0, "a\nB\n");
        let chunks = [chunk(None, &[], &["z"])];
        // OpenCode keeps no trailing blank line here: it becomes the final newline.
        assert_eq!(apply("/p/f", "a\n\n", &chunks).unwrap().0, "a\nz\n");
    }

    #[test]
    fn apply_should_report_exact_errors() {
        let err = apply("/p/f", "a\n", &[chunk(Some("nope"), &["a"], &[])]).unwrap_err();
        assert_eq!(
            err.tool_message(),
            "apply_patch verification failed: Error: Failed to find context 'nope' in /p/f"
        );
        let err = apply("/p/f", "a\n", &[chunk(None, &["x", "y"], &[])]).unwrap_err();
        assert_eq!(
            err.tool_message(),
            "apply_patch verification failed: Error: Failed to find expected lines in /p/f:\nx\ny"
        );
        let err = PatchError::UpdateTargetMissing {
            path: "/p/gone".into(),
        };
        assert_eq!(
            err.tool_message(),
            "apply_patch verification failed: Failed to read file to update: /p/gone"
        );
    }

    #[test]
    fn changes_should_carry_diffs_counts_and_bom() {
        let added = add(PathBuf::from("/w/new.txt"), "\u{feff}hi");
        assert_eq!((added.new.as_str(), added.bom), ("hi\n", true));
        assert_eq!(added.bytes(), "\u{feff}hi\n".as_bytes());
        assert_eq!(added.additions, 1);
        assert!(
            added.diff.ends_with("@@ -0,0 +1,1 @@\n+hi\n"),
            "{}",
            added.diff
        );
        let deleted = delete(PathBuf::from("/w/old.txt"), b"a\nb\n");
        assert_eq!(deleted.deletions, 3);
        let moved = update(
            PathBuf::from("/w/a.txt"),
            Some(PathBuf::from("/w/sub/b.txt")),
            "\u{feff}x\ny\n".as_bytes(),
            &[chunk(None, &["y"], &["z"])],
        )
        .unwrap();
        assert_eq!(moved.kind, ChangeKind::Move);
        assert_eq!((moved.new.as_str(), moved.bom), ("x\nz\n", true));
        assert_eq!((moved.additions, moved.deletions), (1, 1));
        let changes = [added, moved, deleted];
        assert_eq!(
            summary(&changes, Path::new("/w")),
            "Success. Updated the following files:\nA new.txt\nM sub/b.txt\nD old.txt"
        );
        assert_eq!(combined_diff(&changes).matches("Index: ").count(), 3);
    }

    /// Property: a patch made of the file's own lines (a line replaced by chunks quoting a
    /// window around it) applies to the expected text on random files.
    #[test]
    fn apply_should_replace_the_quoted_window_on_random_files() {
        let mut seed = 0x2545_f491_u32;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for _ in 0..300 {
            let count = 1 + next(12);
            let lines: Vec<String> = (0..count).map(|n| format!("line {n}")).collect();
            let at = next(count);
            let from = at.saturating_sub(next(3));
            let to = (at + 1 + next(3)).min(count);
            let old: Vec<&str> = lines[from..to].iter().map(String::as_str).collect();
            let mut new = old.clone();
            new[at - from] = "changed";
            let text = format!("{}\n", lines.join("\n"));
            let (result, _) = apply("/p/f", &text, &[chunk(None, &old, &new)]).unwrap();
            let mut expected = lines.clone();
            expected[at] = "changed".into();
            assert_eq!(result, format!("{}\n", expected.join("\n")));
        }
    }
}
