//! The apply_patch grammar as OpenCode parses it: `*** Begin Patch` … `*** End Patch`, with
//! `*** Add File:`, `*** Delete File:` and `*** Update File:` (optionally `*** Move to:`)
//! sections, `@@` chunks, and an optional shell heredoc around the whole.
//!
//! Two of OpenCode's quirks are kept because they decide what gets applied:
//! - lines that fit no rule are skipped, so an Update section without `@@` has no chunks;
//! - `*** End of File` ends the chunk list of its section like any `***` line, but does not
//!   anchor the chunk to the end of the file (OpenCode's check for it sits behind a loop
//!   condition that already stops at `***`), and any `@@` chunks after it in the same section
//!   are skipped until the next header.

use super::{Chunk, Hunk, PatchError};
use crate::tools::js;

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File:";
const DELETE: &str = "*** Delete File:";
const UPDATE: &str = "*** Update File:";
const MOVE: &str = "*** Move to:";

/// The hunks of `text`.
///
/// # Errors
///
/// [`PatchError::MissingMarkers`] without a `*** Begin Patch` line before an `*** End Patch`
/// line (each compared trimmed).
pub fn parse(text: &str) -> Result<Vec<Hunk>, PatchError> {
    let cleaned = strip_heredoc(js::trim(text));
    let lines: Vec<&str> = cleaned.split('\n').collect();
    let begin = lines.iter().position(|line| js::trim(line) == BEGIN);
    let end = lines.iter().position(|line| js::trim(line) == END);
    let (Some(begin), Some(end)) = (begin, end) else {
        return Err(PatchError::MissingMarkers);
    };
    if begin >= end {
        return Err(PatchError::MissingMarkers);
    }
    let mut hunks = Vec::new();
    let mut i = begin + 1;
    while i < end {
        let line = lines[i];
        if let Some(path) = header_path(line, ADD) {
            let (contents, next) = add_contents(&lines, i + 1);
            hunks.push(Hunk::Add { path, contents });
            i = next;
        } else if let Some(path) = header_path(line, DELETE) {
            hunks.push(Hunk::Delete { path });
            i += 1;
        } else if let Some(path) = header_path(line, UPDATE) {
            let mut next = i + 1;
            let mut move_to = None;
            if let Some(target) = lines.get(next).and_then(|line| line.strip_prefix(MOVE)) {
                // An empty target is kept by OpenCode but then treated as no move.
                move_to = Some(js::trim(target).to_owned()).filter(|target| !target.is_empty());
                next += 1;
            }
            let (chunks, next) = chunks(&lines, next);
            hunks.push(Hunk::Update {
                path,
                move_to,
                chunks,
            });
            i = next;
        } else {
            i += 1;
        }
    }
    Ok(hunks)
}

/// The trimmed path after `prefix`, if the line is that header with a non-empty path.
fn header_path(line: &str, prefix: &str) -> Option<String> {
    let path = js::trim(line.strip_prefix(prefix)?);
    (!path.is_empty()).then(|| path.to_owned())
}

/// An added file: the `+` lines up to the next `***` line, without their `+`, joined by `\n`.
fn add_contents(lines: &[&str], start: usize) -> (String, usize) {
    let mut contents = String::new();
    let mut i = start;
    while i < lines.len() && !lines[i].starts_with("***") {
        if let Some(text) = lines[i].strip_prefix('+') {
            contents.push_str(text);
            contents.push('\n');
        }
        i += 1;
    }
    if contents.ends_with('\n') {
        contents.pop();
    }
    (contents, i)
}

/// The `@@` chunks of an Update section, up to the next `***` line.
fn chunks(lines: &[&str], start: usize) -> (Vec<Chunk>, usize) {
    let mut chunks = Vec::new();
    let mut i = start;
    while i < lines.len() && !lines[i].starts_with("***") {
        let Some(context) = lines[i].strip_prefix("@@") else {
            i += 1;
            continue;
        };
        let context = js::trim(context);
        let mut chunk = Chunk {
            context: (!context.is_empty()).then(|| context.to_owned()),
            old_lines: Vec::new(),
            new_lines: Vec::new(),
        };
        i += 1;
        while i < lines.len() && !lines[i].starts_with("@@") && !lines[i].starts_with("***") {
            let line = lines[i];
            if let Some(text) = line.strip_prefix(' ') {
                chunk.old_lines.push(text.to_owned());
                chunk.new_lines.push(text.to_owned());
            } else if let Some(text) = line.strip_prefix('-') {
                chunk.old_lines.push(text.to_owned());
            } else if let Some(text) = line.strip_prefix('+') {
                chunk.new_lines.push(text.to_owned());
            }
            i += 1;
        }
        chunks.push(chunk);
    }
    (chunks, i)
}

/// The body of a heredoc that is the whole text, as OpenCode's
/// `/^(?:cat\s+)?<<['"]?(\w+)['"]?\s*\n([\s\S]*?)\n\1\s*$/` extracts it; other text unchanged.
fn strip_heredoc(text: &str) -> &str {
    heredoc_body(text).unwrap_or(text)
}

fn heredoc_body(text: &str) -> Option<&str> {
    let mut rest = text;
    if let Some(after) = rest.strip_prefix("cat") {
        let spaces = after.len() - after.trim_start_matches(js::is_space).len();
        if spaces > 0 {
            rest = &after[spaces..];
        }
    }
    let rest = rest.strip_prefix("<<")?;
    let rest = rest
        .strip_prefix('\'')
        .or_else(|| rest.strip_prefix('"'))
        .unwrap_or(rest);
    let tag_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if tag_len == 0 {
        return None;
    }
    let tag = &rest[..tag_len];
    let rest = &rest[tag_len..];
    let rest = rest
        .strip_prefix('\'')
        .or_else(|| rest.strip_prefix('"'))
        .unwrap_or(rest);
    let base = text.len() - rest.len();
    // `\s*\n`: the greedy whitespace run gives back newlines one by one, last first.
    let run = rest.len() - rest.trim_start_matches(js::is_space).len();
    let starts = rest[..run]
        .match_indices('\n')
        .map(|(at, _)| base + at + 1)
        .collect::<Vec<_>>();
    let closing = format!("\n{tag}");
    for &start in starts.iter().rev() {
        // `([\s\S]*?)\n\1\s*$`: the shortest body followed by the tag and only whitespace.
        for (at, _) in text[start..].match_indices(&closing) {
            let end = start + at;
            let after = &text[end + closing.len()..];
            if after.chars().all(js::is_space) {
                return Some(&text[start..end]);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_should_be_unwrapped_like_opencodes_regex() {
        assert_eq!(strip_heredoc("cat <<'EOF'\nbody\nEOF"), "body");
        assert_eq!(strip_heredoc("<<EOF\na\nEOF\nb\nEOF  "), "a\nEOF\nb");
        assert_eq!(strip_heredoc("<<\"X\"  \n\nbody\nX"), "body");
        assert_eq!(strip_heredoc("<<EOF\nno end"), "<<EOF\nno end");
        assert_eq!(strip_heredoc("catty <<EOF\na\nEOF"), "catty <<EOF\na\nEOF");
        assert_eq!(strip_heredoc("<<EOF\n\nEOF"), "");
        // The newline after the tag cannot also open the closing line.
        assert_eq!(strip_heredoc("<<EOF\nEOF"), "<<EOF\nEOF");
    }

    #[test]
    fn parse_should_skip_unknown_lines_and_stop_chunks_at_end_of_file() {
        let hunks = parse(
            "*** Begin Patch\n*** Update File: a.txt\nstray\n@@ fn x\n ctx\n-old\n+new\nignored\n*** End of File\n@@\n-lost\n*** Add File:  b.txt \n+one\nnot added\n+two\n*** Delete File:\n*** Delete File: c.txt\n*** End Patch",
        )
        .unwrap();
        assert_eq!(
            hunks,
            [
                Hunk::Update {
                    path: "a.txt".into(),
                    move_to: None,
                    chunks: vec![Chunk {
                        context: Some("fn x".into()),
                        old_lines: vec!["ctx".into(), "old".into()],
                        new_lines: vec!["ctx".into(), "new".into()],
                    }],
                },
                Hunk::Add {
                    path: "b.txt".into(),
                    contents: "one\ntwo".into()
                },
                Hunk::Delete {
                    path: "c.txt".into()
                },
            ]
        );
    }

    #[test]
    fn parse_should_need_both_markers_in_order() {
        for text in [
            "*** Update File: a",
            "*** End Patch\n*** Begin Patch",
            "*** Begin Patch",
        ] {
            assert_eq!(parse(text).unwrap_err(), PatchError::MissingMarkers);
        }
        assert_eq!(parse("  *** Begin Patch  \n*** End Patch\n").unwrap(), []);
    }

    #[test]
    fn parse_should_read_a_move() {
        let hunks = parse(
            "*** Begin Patch\n*** Update File: a\n*** Move to: b/c\n@@\n-x\n+y\n*** End Patch",
        )
        .unwrap();
        assert!(matches!(&hunks[0], Hunk::Update { move_to: Some(to), .. } if to == "b/c"));
    }
}
