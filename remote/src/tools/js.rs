//! JavaScript string and path semantics that OpenCode's tool outputs depend on.
//!
//! OpenCode is TypeScript, and the texts its tools produce follow JavaScript's rules, not
//! Rust's: `trim()` and `\s` treat U+FEFF as whitespace but not U+0085, `.length` and
//! `substring` count UTF-16 code units, and `path.resolve`/`path.relative` are Node's. The
//! tool ports (`edit`, `patch`, `read`, `grep`, `truncate`) must match those texts byte for
//! byte, so they share these helpers instead of the nearest Rust equivalents.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

/// Whether JavaScript counts `c` as whitespace (`WhiteSpace` and `LineTerminator`: what
/// `String.prototype.trim` strips and what `\s` matches).
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `text.trim()`.
pub fn trim(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// `text.trimEnd()`.
pub fn trim_end(text: &str) -> &str {
    text.trim_end_matches(is_space)
}

/// `text.length`: the number of UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// `text.substring(0, units)`. A cut through a surrogate pair leaves a lone surrogate in
/// JavaScript, which becomes U+FFFD once encoded as UTF-8; that is what this returns there.
pub fn utf16_prefix(text: &str, units: usize) -> Cow<'_, str> {
    let mut seen = 0;
    for (index, c) in text.char_indices() {
        let width = c.len_utf16();
        if seen + width > units {
            let head = &text[..index];
            return if seen < units {
                Cow::Owned(format!("{head}\u{fffd}"))
            } else {
                Cow::Borrowed(head)
            };
        }
        seen += width;
    }
    Cow::Borrowed(text)
}

/// `text.slice(-units)` (the last `units` UTF-16 code units); a split surrogate pair becomes
/// U+FFFD as in [`utf16_prefix`].
pub fn utf16_suffix(text: &str, units: usize) -> Cow<'_, str> {
    let mut seen = 0;
    for (index, c) in text.char_indices().rev() {
        let width = c.len_utf16();
        if seen + width > units {
            let tail = &text[index + c.len_utf8()..];
            return if seen < units {
                Cow::Owned(format!("\u{fffd}{tail}"))
            } else {
                Cow::Borrowed(tail)
            };
        }
        seen += width;
    }
    Cow::Borrowed(text)
}

/// Node's `path.resolve(base, path)` on POSIX: `path` if absolute, else joined to `base`,
/// then `.` and `..` resolved lexically (symlinks are not consulted; `..` at `/` stays at `/`).
pub fn resolve(base: &Path, path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut normalized = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                normalized.pop();
            }
            Component::Normal(part) => normalized.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    normalized
}

/// Node's `path.relative(from, to)` on POSIX, with `/` separators: `""` for the same path,
/// `..` segments to climb out of `from`. Both paths are [`resolve`]d against `/` first.
pub fn relative(from: &Path, to: &Path) -> String {
    let root = Path::new("/");
    let from = resolve(root, from);
    let to = resolve(root, to);
    let from: Vec<_> = from.components().skip(1).collect();
    let to: Vec<_> = to.components().skip(1).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_should_follow_javascript_whitespace() {
        assert_eq!(trim("\u{feff} a\u{a0}\u{3000}\r\n"), "a");
        // U+0085 is whitespace to Rust, not to JavaScript.
        assert_eq!(trim("\u{85}a"), "\u{85}a");
        assert_eq!(trim_end("  a \t"), "  a");
    }

    #[test]
    fn utf16_cuts_should_count_code_units() {
        assert_eq!(utf16_len("a😀é"), 4);
        assert_eq!(utf16_prefix("a😀é", 3), "a😀");
        assert_eq!(utf16_prefix("a😀é", 2), "a\u{fffd}");
        assert_eq!(utf16_prefix("abc", 10), "abc");
        assert_eq!(utf16_suffix("a😀é", 3), "😀é");
        assert_eq!(utf16_suffix("a😀é", 2), "\u{fffd}é");
        assert_eq!(utf16_suffix("abc", 10), "abc");
    }

    #[test]
    fn resolve_and_relative_should_behave_like_node() {
        let base = Path::new("/home/dev/project");
        assert_eq!(
            resolve(base, "a/../b/./c"),
            Path::new("/home/dev/project/b/c")
        );
        assert_eq!(resolve(base, "/etc/../tmp/x"), Path::new("/tmp/x"));
        assert_eq!(resolve(base, "../../../../.."), Path::new("/"));
        assert_eq!(relative(base, Path::new("/home/dev/project")), "");
        assert_eq!(
            relative(base, Path::new("/home/dev/project/src/a.rs")),
            "src/a.rs"
        );
        assert_eq!(
            relative(base, Path::new("/home/dev/outside/x")),
            "../outside/x"
        );
    }
}
