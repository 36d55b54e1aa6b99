//! The execution half of OpenCode's `edit` tool: the string replacement with its chain of
//! fuzzy replacers, and the whole-file decision (create, edit, or the exact error) around it.
//!
//! [`replace`] is OpenCode's `replace(content, oldString, newString, replaceAll)`: each replacer
//! of [`replacers`] proposes candidate spans, and the first candidate that occurs in the content
//! wins if it occurs once (or with `replace_all`, every occurrence is replaced). A candidate much
//! larger than `oldString` stops the chain with [`EditError::Oversize`] rather than rewriting
//! lines the model never quoted. [`plan`] wraps it the way the tool does: BOM stripped and kept,
//! the file's line ending applied to `oldString`/`newString`, the diff and line counts computed,
//! nothing written (the caller asks permission, then writes [`Edit::bytes`]).
//!
//! Files are decoded as UTF-8 with invalid sequences replaced by U+FFFD, as OpenCode's runtime
//! decodes them; an edit of a file that is not UTF-8 therefore rewrites those bytes too.

mod replacers;

use std::collections::HashSet;
use std::path::Path;

use crate::tools::{diff, js};

/// The byte order mark OpenCode strips from files and puts back when writing.
pub const BOM: char = '\u{feff}';

/// Why an edit was refused. `Display` is the exact text OpenCode's tool reports to the model,
/// so these messages keep OpenCode's capitals and periods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The tool was called without a path.
    #[error("filePath is required")]
    PathRequired,
    /// `oldString` equals `newString`.
    #[error("No changes to apply: oldString and newString are identical.")]
    NoChanges,
    /// An empty `oldString` for a path that exists.
    #[error(
        "oldString cannot be empty when editing an existing file. Provide the exact text to replace, or use write for an intentional full-file replacement."
    )]
    EmptyOldString,
    /// Nothing at the path.
    #[error("File {path} not found")]
    NotFound {
        /// The absolute path.
        path: String,
    },
    /// The path is a directory.
    #[error("Path is a directory, not a file: {path}")]
    Directory {
        /// The absolute path.
        path: String,
    },
    /// No replacer found `oldString`.
    #[error(
        "Could not find oldString in the file. It must match exactly, including whitespace, indentation, and line endings."
    )]
    NoMatch,
    /// Every candidate found occurs more than once.
    #[error(
        "Found multiple matches for oldString. Provide more surrounding context to make the match unique."
    )]
    Ambiguous,
    /// A fuzzy candidate spans far more than `oldString`.
    #[error(
        "Refusing replacement because the matched span is much larger than oldString. Re-read the file and provide the full exact oldString for the intended replacement."
    )]
    Oversize,
}

/// OpenCode's `replace`: `old` replaced by `new` in `content`, through the replacer chain.
///
/// # Errors
///
/// [`EditError::NoChanges`], [`EditError::EmptyOldString`], [`EditError::NoMatch`],
/// [`EditError::Ambiguous`] or [`EditError::Oversize`], as described on each.
pub fn replace(
    content: &str,
    old: &str,
    new: &str,
    replace_all: bool,
) -> Result<String, EditError> {
    if old == new {
        return Err(EditError::NoChanges);
    }
    if old.is_empty() {
        return Err(EditError::EmptyOldString);
    }
    let mut found = false;
    // A candidate tried before gets the same answer again, so each is tried once.
    let mut tried = HashSet::new();
    for replacer in replacers::CHAIN {
        for candidate in replacer(content, old) {
            if !tried.insert(candidate.clone()) {
                continue;
            }
            let Some(index) = content.find(&candidate) else {
                continue;
            };
            found = true;
            if is_oversize(&candidate, old) {
                return Err(EditError::Oversize);
            }
            if replace_all {
                return Ok(replace_every(content, &candidate, new));
            }
            if content.rfind(&candidate) != Some(index) {
                continue;
            }
            let mut out = String::with_capacity(content.len() + new.len());
            out.push_str(&content[..index]);
            out.push_str(new);
            out.push_str(&content[index + candidate.len()..]);
            return Ok(out);
        }
    }
    Err(if found {
        EditError::Ambiguous
    } else {
        EditError::NoMatch
    })
}

/// OpenCode's veto: a candidate with at least `max(n+3, 2n)` lines for an `n`-line `old`, or,
/// for a multi-line `old`, a trimmed candidate longer than `max(c+500, 4c)` UTF-16 units.
fn is_oversize(candidate: &str, old: &str) -> bool {
    let old_lines = old.split('\n').count();
    let candidate_lines = candidate.split('\n').count();
    if candidate_lines >= (old_lines + 3).max(old_lines * 2) {
        return true;
    }
    if old_lines == 1 {
        return false;
    }
    let old_len = js::utf16_len(js::trim(old));
    js::utf16_len(js::trim(candidate)) > (old_len + 500).max(old_len * 4)
}

/// JavaScript's `content.replaceAll(search, replacement)` with a string pattern: matches left to
/// right without overlap, and `$$`, `$&`, `` $` `` and `$'` in the replacement expanded (OpenCode
/// passes `newString` as that replacement, so a literal `$$` becomes `$` with `replaceAll`).
/// An empty `search` matches between characters.
fn replace_every(content: &str, search: &str, replacement: &str) -> String {
    let expand = |at: usize, matched: &str, out: &mut String| {
        if !replacement.contains('$') {
            out.push_str(replacement);
            return;
        }
        let mut chars = replacement.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            match chars.peek() {
                Some('$') => out.push('$'),
                Some('&') => out.push_str(matched),
                Some('`') => out.push_str(&content[..at]),
                Some('\'') => out.push_str(&content[at + matched.len()..]),
                _ => {
                    out.push('$');
                    continue;
                }
            }
            chars.next();
        }
    };
    let mut out = String::with_capacity(content.len());
    if search.is_empty() {
        for (at, c) in content.char_indices() {
            expand(at, "", &mut out);
            out.push(c);
        }
        expand(content.len(), "", &mut out);
        return out;
    }
    let mut last = 0;
    for (at, matched) in content.match_indices(search) {
        out.push_str(&content[last..at]);
        expand(at, matched, &mut out);
        last = at + matched.len();
    }
    out.push_str(&content[last..]);
    out
}

/// A file's line ending, as OpenCode's edit tool detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`.
    Lf,
    /// `\r\n`: the text contains at least one.
    Crlf,
}

impl LineEnding {
    /// CRLF if `text` contains `\r\n` anywhere, else LF.
    pub fn detect(text: &str) -> LineEnding {
        if text.contains("\r\n") {
            LineEnding::Crlf
        } else {
            LineEnding::Lf
        }
    }

    /// `text` (LF-normalised) with every `\n` written in this ending.
    pub fn apply(self, text: &str) -> String {
        match self {
            LineEnding::Lf => text.to_owned(),
            LineEnding::Crlf => text.replace('\n', "\r\n"),
        }
    }
}

/// `text` with every `\r\n` turned into `\n` (lone `\r`s stay).
pub fn normalize_line_endings(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// `text` without a leading BOM, and whether it had one.
pub fn split_bom(text: &str) -> (&str, bool) {
    match text.strip_prefix(BOM) {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

/// `text` with a BOM in front when `bom`.
pub fn join_bom(text: &str, bom: bool) -> String {
    if bom {
        format!("{BOM}{text}")
    } else {
        text.to_owned()
    }
}

/// A file's bytes as OpenCode reads them for editing: UTF-8 (invalid sequences become U+FFFD)
/// without its BOM, and whether it had one.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    let (text, bom) = split_bom(&text);
    (text.to_owned(), bom)
}

/// What is at the path being edited.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Nothing.
    Missing,
    /// A directory.
    Directory,
    /// A file with these bytes.
    File(&'a [u8]),
}

/// A decided edit, not yet written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The file does not exist yet (an empty `oldString`): OpenCode reports it as `add`.
    pub created: bool,
    /// The previous text without BOM (`""` when created).
    pub old: String,
    /// The new text without BOM.
    pub new: String,
    /// Whether the written file starts with a BOM (the old file or the new text had one).
    pub bom: bool,
    /// The diff for the permission request and the tool metadata (`diff`, `filediff.patch`).
    pub diff: String,
    /// `filediff.additions` and `filediff.deletions`.
    pub stat: diff::Stat,
}

impl Edit {
    /// The bytes to write.
    pub fn bytes(&self) -> Vec<u8> {
        join_bom(&self.new, self.bom).into_bytes()
    }
}

/// The edit tool's decision for `path` (absolute; it appears in errors and the diff), given
/// what is there now: create it (empty `old_string`, nothing there), edit it, or refuse.
///
/// # Errors
///
/// [`EditError::NoChanges`] first, then for an empty `old_string`
/// [`EditError::EmptyOldString`] when something exists; otherwise [`EditError::NotFound`],
/// [`EditError::Directory`], or an error of [`replace`].
pub fn plan(
    path: &Path,
    target: Target<'_>,
    old_string: &str,
    new_string: &str,
    replace_all: bool,
) -> Result<Edit, EditError> {
    let display = path.to_string_lossy();
    if old_string == new_string {
        return Err(EditError::NoChanges);
    }
    let (created, old, source_bom, new) = if old_string.is_empty() {
        if !matches!(target, Target::Missing) {
            return Err(EditError::EmptyOldString);
        }
        (true, String::new(), false, new_string.to_owned())
    } else {
        let bytes = match target {
            Target::Missing => {
                return Err(EditError::NotFound {
                    path: display.into_owned(),
                });
            }
            Target::Directory => {
                return Err(EditError::Directory {
                    path: display.into_owned(),
                });
            }
            Target::File(bytes) => bytes,
        };
        let (old, bom) = decode(bytes);
        let ending = LineEnding::detect(&old);
        let search = ending.apply(&normalize_line_endings(old_string));
        let replacement = ending.apply(&normalize_line_endings(new_string));
        let new = replace(&old, &search, &replacement, replace_all)?;
        (false, old, bom, new)
    };
    let (new, new_bom) = split_bom(&new);
    let diff = diff::tool_diff(
        &display,
        &normalize_line_endings(&old),
        &normalize_line_endings(new),
    );
    Ok(Edit {
        created,
        stat: diff::stat(&old, new),
        bom: source_bom || new_bom,
        new: new.to_owned(),
        old,
        diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T1 of `samples-agent.json`: the edit of hello.txt and its `metadata.diff`.
    #[test]
    fn plan_should_reproduce_the_captured_edit() {
        let path = Path::new("/home/dev/project/hello.txt");
        let edit = plan(
            path,
            Target::File(b"hello world\nsecond line\n"),
            "hello world",
            "hello edited world",
            false,
        )
        .unwrap();
        assert_eq!(edit.new, "hello edited world\nsecond line\n");
        assert_eq!(
            edit.diff,
            "Index: /home/dev/project/hello.txt\n===================================================================\n--- /home/dev/project/hello.txt\n+++ /home/dev/project/hello.txt\n@@ -1,2 +1,2 @@\n-hello world\n+hello edited world\n second line\n"
        );
        assert_eq!(
            edit.stat,
            diff::Stat {
                additions: 1,
                deletions: 1
            }
        );
        assert!(!edit.created && !edit.bom);
    }

    #[test]
    fn plan_should_create_refuse_and_report_exact_errors() {
        let path = Path::new("/p/new.txt");
        let created = plan(path, Target::Missing, "", "hi\n", false).unwrap();
        assert!(created.created);
        assert_eq!(created.bytes(), b"hi\n");
        assert!(created.diff.contains("@@ -0,0 +1,1 @@\n+hi\n"));
        let err = |target, old: &str, new: &str| plan(path, target, old, new, false).unwrap_err();
        assert_eq!(
            err(Target::File(b"x"), "", "y").to_string(),
            "oldString cannot be empty when editing an existing file. Provide the exact text to replace, or use write for an intentional full-file replacement."
        );
        assert_eq!(
            err(Target::Missing, "a", "b").to_string(),
            "File /p/new.txt not found"
        );
        assert_eq!(
            err(Target::Directory, "a", "b").to_string(),
            "Path is a directory, not a file: /p/new.txt"
        );
        assert_eq!(
            err(Target::Missing, "same", "same").to_string(),
            "No changes to apply: oldString and newString are identical."
        );
        assert_eq!(
            err(Target::File(b"abc"), "zzz", "y").to_string(),
            "Could not find oldString in the file. It must match exactly, including whitespace, indentation, and line endings."
        );
        assert_eq!(
            err(Target::File(b"ab ab"), "ab", "y").to_string(),
            "Found multiple matches for oldString. Provide more surrounding context to make the match unique."
        );
    }

    #[test]
    fn plan_should_keep_crlf_and_bom() {
        let path = Path::new("/p/win.txt");
        let bytes = "\u{feff}one\r\ntwo\r\nthree\r\n".as_bytes();
        let edit = plan(path, Target::File(bytes), "one\ntwo", "uno\ndos", false).unwrap();
        assert_eq!(edit.new, "uno\r\ndos\r\nthree\r\n");
        assert!(edit.bom);
        assert_eq!(edit.bytes(), "\u{feff}uno\r\ndos\r\nthree\r\n".as_bytes());
        // The diff is computed on LF text; the counts on the text as it is.
        assert!(
            edit.diff.contains("-one\n-two\n+uno\n+dos\n three\n"),
            "{}",
            edit.diff
        );
        assert_eq!(edit.stat.additions, 2);
    }

    #[test]
    fn replace_should_use_fuzzy_replacers_in_order() {
        let content = "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n";
        // Wrong indentation: LineTrimmed finds the original span (and `new` replaces it as
        // given, indentation and all).
        assert_eq!(
            replace(
                content,
                "let x = 1;\nprintln!(\"{x}\");",
                "    let x = 2;",
                false
            )
            .unwrap(),
            "fn main() {\n    let x = 2;\n}\n"
        );
        // Escaped newlines from a confused model: EscapeNormalized.
        assert_eq!(replace("a\nb\n", "a\\nb", "c", false).unwrap(), "c\n");
        assert_eq!(replace("x y x y", "x", "z", true).unwrap(), "z y z y");
    }

    #[test]
    fn replace_should_refuse_a_candidate_much_larger_than_old() {
        // LineTrimmed matches `a` against `a` followed by 600 spaces: the trimmed span is
        // over `max(3 + 500, 4·3)` units long.
        let content = format!("a{}\nb\n", " ".repeat(600));
        assert_eq!(
            replace(&content, "a\nb", "c", false).unwrap_err(),
            EditError::Oversize
        );
        assert!(is_oversize(&"a\n".repeat(5), "a\nb"));
        assert!(!is_oversize("a\nb\nc\nd", "a\nb"));
        assert!(!is_oversize(&"x".repeat(600), "abcd"));
    }

    #[test]
    fn replace_all_should_expand_dollar_patterns_like_javascript() {
        assert_eq!(replace_every("a-a", "a", "$$&"), "$&-$&");
        assert_eq!(replace_every("a-a", "a", "[$&]"), "[a]-[a]");
        assert_eq!(replace_every("xay", "a", "$`$'"), "xxyy");
        assert_eq!(replace_every("ab", "", "-"), "-a-b-");
        assert_eq!(replace_every("a", "a", "$1$"), "$1$");
    }

    /// Property: an `old` that occurs exactly once is replaced exactly, by the first replacer,
    /// whatever the surrounding text.
    #[test]
    fn replace_should_splice_a_unique_exact_match_on_random_inputs() {
        let mut seed = 0x9e37_79b9_u32;
        let mut next = move |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % n
        };
        let pieces = ["a", "b", " ", "\n", "\t", "é", "{", "}"];
        for _ in 0..500 {
            let text: String = (0..next(40)).map(|_| pieces[next(8) as usize]).collect();
            let start = next(text.len() as u32 + 1) as usize;
            let end = (start + 1 + next(6) as usize).min(text.len());
            if !text.is_char_boundary(start) || !text.is_char_boundary(end) || start >= end {
                continue;
            }
            let old = &text[start..end];
            if text.find(old) != text.rfind(old) {
                continue;
            }
            let new = format!("<{}>", next(100));
            let expected = format!("{}{new}{}", &text[..start], &text[end..]);
            assert_eq!(replace(&text, old, &new, false).unwrap(), expected);
        }
    }
}
