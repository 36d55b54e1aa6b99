//! The unified diffs OpenCode attaches to `edit`, `write` and `apply_patch` (and to a user
//! message's summary), produced the way OpenCode's bundled jsdiff produces them.
//!
//! OpenCode calls jsdiff's `createTwoFilesPatch` and shows the text as is, so the hunks must
//! come out exactly as jsdiff makes them: the same line tokens (each line with its `\n`), the
//! same Myers search with the same tie-breaks (when two paths reach equally far, the removal
//! wins), 4 lines of context, hunks joined when at most 8 equal lines separate them, and
//! `\ No newline at end of file` after every line that lacks its `\n`. The tools then
//! de-indent the body ([`trim`]). [`stat`] counts added and removed lines as jsdiff's
//! `diffLines` change objects do.
//!
//! Lines are interned to integers before the search, and the search keeps its paths in
//! reference-counted lists (what the garbage collector does for jsdiff), so a large rewrite
//! costs time but not quadratic memory.

use std::collections::HashMap;
use std::rc::Rc;

use crate::tools::js;

/// Lines of context around changes (jsdiff's default).
pub const CONTEXT: usize = 4;

/// The rule between the file headers and the hunks.
const RULE: &str = "===================================================================";
const NO_NEWLINE: &str = "\\ No newline at end of file";

/// Whether a run of lines is shared, only in the new text, or only in the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In both texts.
    Equal,
    /// Only in the new text.
    Added,
    /// Only in the old text.
    Removed,
}

/// One change object of jsdiff's `diffLines`: `count` consecutive lines of one [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Shared, added or removed.
    pub kind: Kind,
    /// How many lines.
    pub count: usize,
}

/// Lines added and removed between two texts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// Lines only in the new text.
    pub additions: usize,
    /// Lines only in the old text.
    pub deletions: usize,
}

/// jsdiff's line tokens: every line with its `\n` (a `\r\n` ending stays whole), no empty
/// token after a final newline.
fn tokens(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// jsdiff's `diffLines(old, new)`.
pub fn lines(old: &str, new: &str) -> Vec<Run> {
    myers(&tokens(old), &tokens(new))
}

/// Added and removed line counts, summed over [`lines`] as OpenCode sums them.
pub fn stat(old: &str, new: &str) -> Stat {
    let mut stat = Stat::default();
    for run in lines(old, new) {
        match run.kind {
            Kind::Added => stat.additions += run.count,
            Kind::Removed => stat.deletions += run.count,
            Kind::Equal => {}
        }
    }
    stat
}

/// jsdiff's `createTwoFilesPatch(path, path, old, new)` as the edit, write and apply_patch
/// tools call it: 4 lines of context, no headers after the file names.
pub fn file_patch(path: &str, old: &str, new: &str) -> String {
    patch(path, path, old, new, None, CONTEXT)
}

/// The diff the edit, write and apply_patch tools show: [`file_patch`], then [`trim`].
pub fn tool_diff(path: &str, old: &str, new: &str) -> String {
    trim(&file_patch(path, old, new))
}

/// The patch of a user message's summary diffs: empty headers (so the file lines end in a
/// tab) and the whole file as context, as OpenCode's snapshot diff asks jsdiff for it.
pub fn summary_patch(file: &str, old: &str, new: &str) -> String {
    patch(file, file, old, new, Some(("", "")), usize::MAX)
}

/// jsdiff's `createTwoFilesPatch(old_name, new_name, old, new, headers…, {context})`.
/// `headers` are the texts after a tab on the `---`/`+++` lines; `None` leaves the tab out.
pub fn patch(
    old_name: &str,
    new_name: &str,
    old: &str,
    new: &str,
    headers: Option<(&str, &str)>,
    context: usize,
) -> String {
    let old_tokens = tokens(old);
    let new_tokens = tokens(new);
    let runs = myers(&old_tokens, &new_tokens);
    let mut out = Vec::new();
    if old_name == new_name {
        out.push(format!("Index: {old_name}"));
    }
    out.push(RULE.to_owned());
    let (old_header, new_header) = match headers {
        Some((old, new)) => (format!("\t{old}"), format!("\t{new}")),
        None => (String::new(), String::new()),
    };
    out.push(format!("--- {old_name}{old_header}"));
    out.push(format!("+++ {new_name}{new_header}"));
    for hunk in hunks(&old_tokens, &new_tokens, &runs, context) {
        // Unified diff quirk: an empty side starts one line lower.
        let old_start = hunk.old_start - usize::from(hunk.old_lines == 0);
        let new_start = hunk.new_start - usize::from(hunk.new_lines == 0);
        out.push(format!(
            "@@ -{old_start},{} +{new_start},{} @@",
            hunk.old_lines, hunk.new_lines
        ));
        for (marker, token) in hunk.lines {
            match token.strip_suffix('\n') {
                Some(line) => out.push(format!("{marker}{line}")),
                None => {
                    out.push(format!("{marker}{token}"));
                    out.push(NO_NEWLINE.to_owned());
                }
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// OpenCode's `trimDiff`: removes the indentation every non-blank body line shares (lines
/// starting `+`, `-` or a space, but not `---`/`+++`) from after the marker of each body line.
/// A diff whose body shares none comes back unchanged.
pub fn trim(diff: &str) -> String {
    let is_body = |line: &str| {
        (line.starts_with('+') || line.starts_with('-') || line.starts_with(' '))
            && !line.starts_with("---")
            && !line.starts_with("+++")
    };
    let min = diff
        .split('\n')
        .filter(|line| is_body(line))
        .map(|line| &line[1..])
        .filter(|content| !js::trim(content).is_empty())
        .map(|content| content.chars().take_while(|c| js::is_space(*c)).count())
        .min();
    let Some(min) = min.filter(|min| *min > 0) else {
        return diff.to_owned();
    };
    diff.split('\n')
        .map(|line| {
            if !is_body(line) {
                return line.to_owned();
            }
            let content = &line[1..];
            // Whitespace is BMP-only, so a character here is one UTF-16 unit, as in `slice`.
            let cut = content
                .char_indices()
                .nth(min)
                .map_or(content.len(), |(index, _)| index);
            format!("{}{}", &line[..1], &content[cut..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Hunk<'a> {
    old_start: usize,
    old_lines: usize,
    new_start: usize,
    new_lines: usize,
    lines: Vec<(char, &'a str)>,
}

/// jsdiff's `structuredPatch` hunk grouping over the runs of [`myers`].
fn hunks<'a>(old: &[&'a str], new: &[&'a str], runs: &[Run], context: usize) -> Vec<Hunk<'a>> {
    // Each run's tokens: added ones from the new text, the rest from the old one.
    let mut pieces: Vec<(Kind, &[&'a str])> = Vec::with_capacity(runs.len());
    let (mut old_pos, mut new_pos) = (0, 0);
    for run in runs {
        match run.kind {
            Kind::Added => {
                pieces.push((run.kind, &new[new_pos..new_pos + run.count]));
                new_pos += run.count;
            }
            Kind::Removed => {
                pieces.push((run.kind, &old[old_pos..old_pos + run.count]));
                old_pos += run.count;
            }
            Kind::Equal => {
                pieces.push((run.kind, &new[new_pos..new_pos + run.count]));
                old_pos += run.count;
                new_pos += run.count;
            }
        }
    }
    let mut hunks = Vec::new();
    let mut open: Option<(usize, usize)> = None;
    let mut current: Vec<(char, &'a str)> = Vec::new();
    let (mut old_line, mut new_line) = (1, 1);
    // The trailing empty piece closes the last hunk, as jsdiff's sentinel does.
    for index in 0..=pieces.len() {
        let (kind, lines) = pieces.get(index).copied().unwrap_or((Kind::Equal, &[]));
        if kind != Kind::Equal {
            if open.is_none() {
                let mut start = (old_line, new_line);
                if index > 0 && context > 0 {
                    let previous = pieces[index - 1].1;
                    let shown = &previous[previous.len().saturating_sub(context)..];
                    current = shown.iter().map(|line| (' ', *line)).collect();
                    start = (old_line - shown.len(), new_line - shown.len());
                }
                open = Some(start);
            }
            let marker = if kind == Kind::Added { '+' } else { '-' };
            current.extend(lines.iter().map(|line| (marker, *line)));
            if kind == Kind::Added {
                new_line += lines.len();
            } else {
                old_line += lines.len();
            }
            continue;
        }
        if let Some((old_start, new_start)) = open {
            let last_run = index + 1 >= pieces.len();
            if lines.len() <= context.saturating_mul(2) && !last_run {
                current.extend(lines.iter().map(|line| (' ', *line)));
            } else {
                let shown = lines.len().min(context);
                current.extend(lines[..shown].iter().map(|line| (' ', *line)));
                hunks.push(Hunk {
                    old_start,
                    old_lines: old_line - old_start + shown,
                    new_start,
                    new_lines: new_line - new_start + shown,
                    lines: std::mem::take(&mut current),
                });
                open = None;
            }
        }
        old_line += lines.len();
        new_line += lines.len();
    }
    hunks
}

/// A step of a search path; the path is the chain of `previous` links, newest first.
struct Step {
    kind: Kind,
    count: usize,
    previous: Option<Rc<Step>>,
}

impl Drop for Step {
    // Long chains would otherwise drop recursively, one stack frame per step.
    fn drop(&mut self) {
        let mut next = self.previous.take();
        while let Some(step) = next {
            match Rc::try_unwrap(step) {
                Ok(mut step) => next = step.previous.take(),
                Err(_) => break,
            }
        }
    }
}

#[derive(Clone)]
struct Frontier {
    /// Index of the last old token consumed; -1 before the first.
    old_pos: isize,
    last: Option<Rc<Step>>,
}

impl Frontier {
    /// The path one edit further: `kind` is Added or Removed.
    fn extend(&self, kind: Kind) -> Frontier {
        let step = match &self.last {
            Some(last) if last.kind == kind => Step {
                kind,
                count: last.count + 1,
                previous: last.previous.clone(),
            },
            _ => Step {
                kind,
                count: 1,
                previous: self.last.clone(),
            },
        };
        Frontier {
            old_pos: self.old_pos + isize::from(kind == Kind::Removed),
            last: Some(Rc::new(step)),
        }
    }

    /// Follows the diagonal `diagonal` (old − new position) over equal tokens; returns the
    /// new position reached.
    fn slide(&mut self, old: &[u32], new: &[u32], diagonal: isize) -> isize {
        let mut old_pos = self.old_pos;
        let mut new_pos = old_pos - diagonal;
        let mut common = 0;
        while let (Some(a), Some(b)) = (
            old.get((old_pos + 1) as usize),
            new.get((new_pos + 1) as usize),
        ) {
            if a != b {
                break;
            }
            old_pos += 1;
            new_pos += 1;
            common += 1;
        }
        if common > 0 {
            self.last = Some(Rc::new(Step {
                kind: Kind::Equal,
                count: common,
                previous: self.last.take(),
            }));
        }
        self.old_pos = old_pos;
        new_pos
    }

    fn runs(&self) -> Vec<Run> {
        let mut runs = Vec::new();
        let mut step = self.last.as_deref();
        while let Some(current) = step {
            runs.push(Run {
                kind: current.kind,
                count: current.count,
            });
            step = current.previous.as_deref();
        }
        runs.reverse();
        runs
    }
}

/// jsdiff's Myers search (`Diff.diff`), decision for decision.
fn myers<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Run> {
    let mut ids: HashMap<&'a str, u32> = HashMap::new();
    let mut intern = |line: &'a str| {
        let next = ids.len() as u32;
        *ids.entry(line).or_insert(next)
    };
    let old: Vec<u32> = old.iter().map(|line| intern(line)).collect();
    let new: Vec<u32> = new.iter().map(|line| intern(line)).collect();
    let (old_len, new_len) = (old.len() as isize, new.len() as isize);
    let max = old_len + new_len;
    // Diagonal d lives at index d + max + 1, so d − 1 and d + 1 are in range for |d| ≤ max.
    let slot = |diagonal: isize| (diagonal + max + 1) as usize;
    let mut best: Vec<Option<Frontier>> = vec![None; (2 * max + 3) as usize];
    let mut seed = Frontier {
        old_pos: -1,
        last: None,
    };
    let new_pos = seed.slide(&old, &new, 0);
    if seed.old_pos + 1 >= old_len && new_pos + 1 >= new_len {
        return seed.runs();
    }
    best[slot(0)] = Some(seed);
    let (mut min_diagonal, mut max_diagonal) = (isize::MIN, isize::MAX);
    for edits in 1..=max {
        let mut diagonal = min_diagonal.max(-edits);
        while diagonal <= max_diagonal.min(edits) {
            let remove = best[slot(diagonal - 1)].take();
            let add = best[slot(diagonal + 1)].clone();
            let can_add = add.as_ref().is_some_and(|path| {
                let new_pos = path.old_pos - diagonal;
                (0..new_len).contains(&new_pos)
            });
            let can_remove = remove
                .as_ref()
                .is_some_and(|path| path.old_pos + 1 < old_len);
            let mut path = match (add, remove) {
                (Some(add), _) if can_add && !can_remove => add.extend(Kind::Added),
                (Some(add), Some(remove)) if can_add && can_remove => {
                    // The path farther into the old text wins; on a tie, the removal.
                    if remove.old_pos < add.old_pos {
                        add.extend(Kind::Added)
                    } else {
                        remove.extend(Kind::Removed)
                    }
                }
                (_, Some(remove)) if can_remove => remove.extend(Kind::Removed),
                _ => {
                    best[slot(diagonal)] = None;
                    diagonal += 2;
                    continue;
                }
            };
            let new_pos = path.slide(&old, &new, diagonal);
            if path.old_pos + 1 >= old_len && new_pos + 1 >= new_len {
                return path.runs();
            }
            if path.old_pos + 1 >= old_len {
                max_diagonal = max_diagonal.min(diagonal - 1);
            }
            if new_pos + 1 >= new_len {
                min_diagonal = min_diagonal.max(diagonal + 1);
            }
            best[slot(diagonal)] = Some(path);
            diagonal += 2;
        }
    }
    // Unreachable: `old_len + new_len` edits always reach the end.
    vec![
        Run {
            kind: Kind::Removed,
            count: old.len(),
        },
        Run {
            kind: Kind::Added,
            count: new.len(),
        },
    ]
    .into_iter()
    .filter(|run| run.count > 0)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The edit tool's diff in T1 of `samples-agent.json` (`metadata.diff`).
    const T1_EDIT_DIFF: &str = "Index: /home/dev/project/hello.txt\n===================================================================\n--- /home/dev/project/hello.txt\n+++ /home/dev/project/hello.txt\n@@ -1,2 +1,2 @@\n-hello world\n+hello edited world\n second line\n";

    /// A user message's `summary.diffs[0].patch` in T1 of `samples-agent.json`.
    const T1_SUMMARY_PATCH: &str = "Index: hello.txt\n===================================================================\n--- hello.txt\t\n+++ hello.txt\t\n@@ -0,0 +1,2 @@\n+hello world\n+second line\n";

    #[test]
    fn tool_diff_should_reproduce_the_captured_edit_diff() {
        let old = "hello world\nsecond line\n";
        let new = "hello edited world\nsecond line\n";
        assert_eq!(
            tool_diff("/home/dev/project/hello.txt", old, new),
            T1_EDIT_DIFF
        );
        assert_eq!(
            stat(old, new),
            Stat {
                additions: 1,
                deletions: 1
            }
        );
    }

    #[test]
    fn summary_patch_should_reproduce_the_captured_summary_diff() {
        let new = "hello world\nsecond line\n";
        assert_eq!(summary_patch("hello.txt", "", new), T1_SUMMARY_PATCH);
        assert_eq!(
            stat("", new),
            Stat {
                additions: 2,
                deletions: 0
            }
        );
    }

    #[test]
    fn patch_should_mark_lines_without_a_final_newline() {
        assert_eq!(
            file_patch("f", "a\nb", "a\nc"),
            "Index: f\n===================================================================\n--- f\n+++ f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
        assert_eq!(
            file_patch("f", "a\n", "a\nb"),
            "Index: f\n===================================================================\n--- f\n+++ f\n@@ -1,1 +1,2 @@\n a\n+b\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn patch_should_join_hunks_up_to_eight_equal_lines_apart() {
        let old: String = (1..=30).map(|n| format!("{n}\n")).collect();
        let near = old
            .replace("\n3\n", "\nthree\n")
            .replace("\n11\n", "\neleven\n");
        let body = file_patch("f", &old, &near);
        assert_eq!(body.matches("@@ -").count(), 1, "{body}");
        assert!(body.contains("@@ -1,15 +1,15 @@"), "{body}");
        let eight = old
            .replace("\n3\n", "\nthree\n")
            .replace("\n12\n", "\ntwelve\n");
        let body = file_patch("f", &old, &eight);
        assert!(body.contains("@@ -1,16 +1,16 @@"), "{body}");
        let nine = old
            .replace("\n3\n", "\nthree\n")
            .replace("\n13\n", "\nthirteen\n");
        let body = file_patch("f", &old, &nine);
        assert!(body.contains("@@ -1,7 +1,7 @@"), "{body}");
        assert!(body.contains("@@ -9,9 +9,9 @@"), "{body}");
    }

    #[test]
    fn patch_of_identical_texts_should_have_headers_only() {
        assert_eq!(
            file_patch("f", "same\n", "same\n"),
            "Index: f\n===================================================================\n--- f\n+++ f\n"
        );
        assert_eq!(
            patch("a", "b", "x", "x", None, 4).lines().next(),
            Some(RULE)
        );
    }

    #[test]
    fn patch_should_remove_everything_from_line_zero() {
        assert_eq!(
            file_patch("f", "a\nb\n", ""),
            "Index: f\n===================================================================\n--- f\n+++ f\n@@ -1,2 +0,0 @@\n-a\n-b\n"
        );
    }

    #[test]
    fn trim_should_deindent_body_lines_only() {
        let diff = "Index: f\n===\n--- f\n+++ f\n@@ -1,3 +1,3 @@\n     fn a() {\n-        old();\n+        new();\n \n     }\n";
        assert_eq!(
            trim(diff),
            "Index: f\n===\n--- f\n+++ f\n@@ -1,3 +1,3 @@\n fn a() {\n-    old();\n+    new();\n \n }\n"
        );
        // Nothing shared: unchanged.
        let flat = "@@ -1 +1 @@\n-a\n+  b\n";
        assert_eq!(trim(flat), flat);
    }

    #[test]
    fn lines_should_prefer_removals_before_additions() {
        assert_eq!(
            lines("a\n", "b\n"),
            [
                Run {
                    kind: Kind::Removed,
                    count: 1
                },
                Run {
                    kind: Kind::Added,
                    count: 1
                }
            ]
        );
        assert_eq!(lines("", ""), []);
    }

    /// Cases generated with jsdiff 8 (`createTwoFilesPatch`, the summary variant with empty
    /// headers and whole-file context, and `diffLines` counts) from random line soups.
    #[test]
    fn patch_should_match_jsdiff_on_generated_cases() {
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("diff/jsdiff-cases.json")).unwrap();
        assert!(cases.len() >= 50);
        for case in cases {
            let old = case["old"].as_str().unwrap();
            let new = case["new"].as_str().unwrap();
            assert_eq!(
                file_patch("/p/f.txt", old, new),
                case["patch"].as_str().unwrap(),
                "{old:?} → {new:?}"
            );
            assert_eq!(
                summary_patch("f.txt", old, new),
                case["summary"].as_str().unwrap(),
                "{old:?} → {new:?}"
            );
            let counts = stat(old, new);
            assert_eq!(counts.additions as u64, case["additions"].as_u64().unwrap());
            assert_eq!(counts.deletions as u64, case["deletions"].as_u64().unwrap());
        }
    }
}
