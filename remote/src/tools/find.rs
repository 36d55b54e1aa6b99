//! The fuzzy file finder (`GET /find/file`, the TUI's `@` completion): files from the same walk
//! as `rg --files --hidden`, their parent directories, ranked like OpenCode's finder.

use std::sync::atomic::AtomicBool;

use crate::tools::fs::{Kind, Workspace};

/// Results of `/find/file` without a `limit` (OpenCode's default).
pub const DEFAULT_FIND_LIMIT: usize = 10;
/// Largest `limit` `/find/file` accepts (OpenCode's schema).
pub const MAX_FIND_LIMIT: usize = 200;

/// What `GET /find/file` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindQuery {
    /// Fuzzy query; whitespace separates terms that must all match.
    pub query: String,
    /// Only files, only directories, or both (`None`).
    pub kind: Option<Kind>,
    /// Results returned at most.
    pub limit: usize,
}

impl Workspace {
    /// Finds files and directories whose paths fuzzily match the query, best first, the way
    /// OpenCode's file finder does: files come from the same walk as `rg --files --hidden`,
    /// directories are their parents (with a trailing `/`), and hidden directories sort last
    /// unless the query asks for them. An empty query lists files in path order, or directories
    /// (also when both kinds are asked for, as OpenCode does).
    pub fn find_files(&self, query: &FindQuery, cancel: &AtomicBool) -> Vec<String> {
        let files = self.walk_files(cancel);
        let dirs = parent_dirs(&files);
        let text = query.query.trim().replace('\\', "/");
        let prefer_hidden = text.starts_with('.') || text.contains("/.");
        if text.is_empty() {
            if query.kind == Some(Kind::File) {
                return files.into_iter().take(query.limit).collect();
            }
            let mut dirs = dirs;
            dirs.sort();
            return hidden_last(dirs, prefer_hidden)
                .into_iter()
                .take(query.limit)
                .collect();
        }
        let items: Vec<String> = match query.kind {
            Some(Kind::File) => files,
            Some(Kind::Directory) => dirs,
            None => files.into_iter().chain(dirs).collect(),
        };
        let sorted = fuzzy_sort(&text, items);
        if query.kind == Some(Kind::Directory) {
            return hidden_last(sorted, prefer_hidden)
                .into_iter()
                .take(query.limit)
                .collect();
        }
        sorted.into_iter().take(query.limit).collect()
    }
}

/// The parent directories of `files`, each once with a trailing `/`, in first-seen order.
fn parent_dirs(files: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dirs = Vec::new();
    for file in files {
        let mut end = file.len();
        while let Some(slash) = file.get(..end).and_then(|head| head.rfind('/')) {
            let dir = &file[..=slash];
            if !seen.insert(dir.to_owned()) {
                break;
            }
            dirs.push(dir.to_owned());
            end = slash;
        }
    }
    dirs
}

/// Whether a path has a hidden component (`.name`).
fn is_hidden(item: &str) -> bool {
    item.trim_end_matches('/')
        .split('/')
        .any(|part| part.starts_with('.') && part.len() > 1)
}

fn hidden_last(items: Vec<String>, prefer_hidden: bool) -> Vec<String> {
    if prefer_hidden {
        return items;
    }
    let (hidden, visible): (Vec<_>, Vec<_>) = items.into_iter().partition(|item| is_hidden(item));
    visible.into_iter().chain(hidden).collect()
}

/// Items that contain every whitespace-separated term of `query` as a case-insensitive
/// subsequence, best match first; equal scores keep their input order.
fn fuzzy_sort(query: &str, items: Vec<String>) -> Vec<String> {
    let terms: Vec<Vec<char>> = query
        .split_whitespace()
        .map(|term| term.chars().flat_map(char::to_lowercase).collect())
        .collect();
    let mut scored: Vec<(i64, usize, String)> = items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| Some((fuzzy_score(&terms, &item)?, index, item)))
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, _, item)| item).collect()
}

const SCORE_MATCH: i64 = 16;
const SCORE_CONSECUTIVE: i64 = 8;
const BONUS_SEGMENT: i64 = 12;
const BONUS_WORD: i64 = 9;
const BONUS_CAMEL: i64 = 8;
const PENALTY_GAP_OPEN: i64 = 5;
const PENALTY_GAP_EXTEND: i64 = 1;

/// The sum of each term's best alignment in `target`, less a small penalty for long targets;
/// `None` when a term does not match.
fn fuzzy_score(terms: &[Vec<char>], target: &str) -> Option<i64> {
    let original: Vec<char> = target.chars().collect();
    let lower: Vec<char> = original
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let bonus: Vec<i64> = (0..original.len())
        .map(|index| {
            let Some(previous) = index.checked_sub(1).and_then(|i| original.get(i)) else {
                return BONUS_SEGMENT;
            };
            let current = original.get(index).copied().unwrap_or_default();
            match previous {
                '/' => BONUS_SEGMENT,
                '_' | '-' | '.' | ' ' => BONUS_WORD,
                p if p.is_lowercase() && current.is_uppercase() => BONUS_CAMEL,
                _ => 0,
            }
        })
        .collect();
    let mut total = 0;
    for term in terms {
        total += term_score(term, &lower, &bonus)?;
    }
    Some(total - original.len() as i64 / 4)
}

/// Best alignment of `term` as a subsequence of `target`: every matched char scores, more at
/// word starts and in runs; gaps cost. Linear in `term.len() * target.len()`.
fn term_score(term: &[char], target: &[char], bonus: &[i64]) -> Option<i64> {
    let mut chars = target.iter();
    if !term.iter().all(|c| chars.any(|t| t == c)) {
        return None;
    }
    let width = target.len();
    // previous[j]: best score with the term so far ending in a match at j.
    let mut previous: Vec<Option<i64>> = target
        .iter()
        .zip(bonus)
        .map(|(t, b)| term.first().filter(|c| *c == t).map(|_| SCORE_MATCH + b))
        .collect();
    for c in term.iter().skip(1) {
        let mut current = vec![None; width];
        // Best of previous[k] for k <= j - 2, less the cost of the gap up to j.
        let mut gap: Option<i64> = None;
        for j in 1..width {
            if j >= 2 {
                let opened = previous[j - 2].map(|score| score - PENALTY_GAP_OPEN);
                gap = gap.map(|score| score - PENALTY_GAP_EXTEND).max(opened);
            }
            if target[j] != *c {
                continue;
            }
            let run = previous[j - 1].map(|score| score + SCORE_CONSECUTIVE);
            current[j] = run.max(gap).map(|score| score + SCORE_MATCH + bonus[j]);
        }
        previous = current;
    }
    previous.into_iter().flatten().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::fs::Kind;
    use crate::tools::fs::testing::{workspace, write};

    fn find(workspace: &Workspace, query: &str, kind: Option<Kind>) -> Vec<String> {
        let query = FindQuery {
            query: query.to_owned(),
            kind,
            limit: DEFAULT_FIND_LIMIT,
        };
        workspace.find_files(&query, &AtomicBool::new(false))
    }

    #[test]
    fn find_files_should_rank_word_starts_and_short_paths_first() {
        let (_dir, workspace) = workspace();
        for file in [
            "README.md",
            "agent.txt",
            "opencode.json",
            "src/main.rs",
            "src/domain_info.rs",
            "docs/guide/readme-old.md",
            "src/fabric.rs",
            "src/foo_bar.rs",
        ] {
            write(&workspace, file, "x");
        }
        assert_eq!(
            find(&workspace, "READ", None),
            ["README.md", "docs/guide/readme-old.md"]
        );
        assert_eq!(
            find(&workspace, "main", None),
            ["src/main.rs", "src/domain_info.rs"]
        );
        assert_eq!(
            find(&workspace, "fb", Some(Kind::File))[..2],
            ["src/foo_bar.rs", "src/fabric.rs"]
        );
        assert_eq!(find(&workspace, "src", Some(Kind::Directory)), ["src/"]);
        assert_eq!(
            find(&workspace, "src main", Some(Kind::File)),
            ["src/main.rs", "src/domain_info.rs"]
        );
        assert!(find(&workspace, "zzz", None).is_empty());
    }

    #[test]
    fn find_files_should_list_without_a_query_and_put_hidden_dirs_last() {
        let (_dir, workspace) = workspace();
        for file in [".config/x", "b/y", "a/z", "top.txt", "ignored/file"] {
            write(&workspace, file, "x");
        }
        write(&workspace, ".ignore", "ignored/\n");
        assert_eq!(find(&workspace, "", None), ["a/", "b/", ".config/"]);
        assert_eq!(
            find(&workspace, " ", Some(Kind::File)),
            [".config/x", ".ignore", "a/z", "b/y", "top.txt"]
        );
        assert_eq!(find(&workspace, "c", Some(Kind::Directory)), [".config/"]);
        assert_eq!(find(&workspace, ".c", Some(Kind::Directory)), [".config/"]);
        let limited = FindQuery {
            query: String::new(),
            kind: Some(Kind::File),
            limit: 2,
        };
        assert_eq!(
            workspace.find_files(&limited, &AtomicBool::new(false)),
            [".config/x", ".ignore"]
        );
    }

    #[test]
    fn parent_dirs_should_list_each_directory_once() {
        let files = ["a/b/c.txt", "a/b/d.txt", "a/e.txt", "f.txt"].map(str::to_owned);
        assert_eq!(parent_dirs(&files), ["a/b/", "a/"]);
    }
}
