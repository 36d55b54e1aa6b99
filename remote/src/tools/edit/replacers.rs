//! OpenCode's nine replacers, in the order its edit tool tries them. Each one proposes
//! candidate spans for `find`; [`super::replace`] takes the first candidate that occurs in the
//! content and is unique there (or any, with `replaceAll`).
//!
//! Candidates are either spans of the content (line windows, always whole lines joined by `\n`,
//! without the final newline) or transformed forms of `find` itself. Lines are the content split
//! on `\n`, so a CRLF file's lines keep their `\r` (which `trim` then ignores, as in OpenCode).
//! "Trim" and "whitespace" are JavaScript's ([`js::trim`]); lengths that matter for scores are
//! UTF-16 lengths.

use crate::tools::js;

/// Similarity a lone block-anchor candidate needs.
const SINGLE_CANDIDATE_SIMILARITY: f64 = 0.65;
/// Similarity the best of several block-anchor candidates needs.
const MULTIPLE_CANDIDATES_SIMILARITY: f64 = 0.65;

/// A replacer: the candidates it proposes for `find` in `content`, in order.
pub(super) type Replacer = fn(&str, &str) -> Vec<String>;

/// The chain, in OpenCode's order.
pub(super) const CHAIN: [Replacer; 9] = [
    simple,
    line_trimmed,
    block_anchor,
    whitespace_normalized,
    indentation_flexible,
    escape_normalized,
    trimmed_boundary,
    context_aware,
    multi_occurrence,
];

/// The content's lines and where each starts, for turning line windows back into spans.
struct Lines<'a> {
    content: &'a str,
    lines: Vec<&'a str>,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(content: &'a str) -> Lines<'a> {
        let lines: Vec<&str> = content.split('\n').collect();
        let mut starts = Vec::with_capacity(lines.len());
        let mut at = 0;
        for line in &lines {
            starts.push(at);
            at += line.len() + 1;
        }
        Lines {
            content,
            lines,
            starts,
        }
    }

    /// Lines `first..=last` as they are in the content, joined by their `\n`s.
    fn span(&self, first: usize, last: usize) -> String {
        self.content[self.starts[first]..self.starts[last] + self.lines[last].len()].to_owned()
    }

    /// Every window of `size` lines, as (first line, span).
    fn windows(&self, size: usize) -> impl Iterator<Item = (usize, String)> + '_ {
        let count = (self.lines.len() + 1).saturating_sub(size.max(1));
        (0..count).map(move |first| (first, self.span(first, first + size.max(1) - 1)))
    }
}

/// `find.split("\n")` without a trailing empty line.
fn search_lines(find: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = find.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
}

fn simple(_content: &str, find: &str) -> Vec<String> {
    vec![find.to_owned()]
}

/// Windows whose lines equal `find`'s lines once both are trimmed.
fn line_trimmed(content: &str, find: &str) -> Vec<String> {
    let lines = Lines::new(content);
    let search = search_lines(find);
    if search.is_empty() {
        // Every position matches an empty block; OpenCode yields empty spans then.
        return vec![String::new(); lines.lines.len() + 1];
    }
    lines
        .windows(search.len())
        .filter(|(first, _)| {
            search
                .iter()
                .enumerate()
                .all(|(j, line)| js::trim(lines.lines[first + j]) == js::trim(line))
        })
        .map(|(_, span)| span)
        .collect()
}

/// Levenshtein distance over UTF-16 code units, as OpenCode computes it.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<u16> = a.encode_utf16().collect();
    let b: Vec<u16> = b.encode_utf16().collect();
    if a.is_empty() || b.is_empty() {
        return a.len().max(b.len());
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current[j + 1] = (previous[j + 1] + 1)
                .min(current[j] + 1)
                .min(previous[j] + cost);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Blocks whose first and last lines equal `find`'s (trimmed), with the middle lines scored by
/// Levenshtein similarity. The block ends at the first matching last line at least two lines
/// down, and its size may differ from `find`'s by at most a quarter (at least one line).
fn block_anchor(content: &str, find: &str) -> Vec<String> {
    // OpenCode checks the length before dropping the trailing empty line.
    if find.split('\n').count() < 3 {
        return Vec::new();
    }
    let search = search_lines(find);
    let lines = Lines::new(content);
    let first = js::trim(search[0]);
    let last = js::trim(search[search.len() - 1]);
    let size = search.len();
    let max_delta = (size / 4).max(1);
    let mut candidates = Vec::new();
    for start in 0..lines.lines.len() {
        if js::trim(lines.lines[start]) != first {
            continue;
        }
        let end = (start + 2..lines.lines.len()).find(|&end| js::trim(lines.lines[end]) == last);
        if let Some(end) = end
            && (end - start + 1).abs_diff(size) <= max_delta
        {
            candidates.push((start, end));
        }
    }
    // Pairs of trimmed middle lines and their similarity, or `None` when both are empty.
    let (lines, search) = (&lines, &search);
    let scores = |start: usize, end: usize| {
        let block = end - start + 1;
        (1..(size - 1).min(block - 1)).map(move |j| {
            let original = js::trim(lines.lines[start + j]);
            let searched = js::trim(search[j]);
            let longest = js::utf16_len(original).max(js::utf16_len(searched));
            (longest > 0).then(|| 1.0 - levenshtein(original, searched) as f64 / longest as f64)
        })
    };
    let checked = |start: usize, end: usize| (size as isize - 2).min((end - start) as isize - 1);
    match candidates[..] {
        [] => Vec::new(),
        [(start, end)] => {
            let to_check = checked(start, end);
            let mut similarity = 1.0;
            if to_check > 0 {
                similarity = 0.0;
                for score in scores(start, end).flatten() {
                    similarity += score / to_check as f64;
                    if similarity >= SINGLE_CANDIDATE_SIMILARITY {
                        break;
                    }
                }
            }
            if similarity >= SINGLE_CANDIDATE_SIMILARITY {
                vec![lines.span(start, end)]
            } else {
                Vec::new()
            }
        }
        _ => {
            let mut best = None;
            let mut best_similarity = -1.0;
            for &(start, end) in &candidates {
                let to_check = checked(start, end);
                let similarity = if to_check > 0 {
                    scores(start, end).flatten().sum::<f64>() / to_check as f64
                } else {
                    1.0
                };
                if similarity > best_similarity {
                    best_similarity = similarity;
                    best = Some((start, end));
                }
            }
            match best {
                Some((start, end)) if best_similarity >= MULTIPLE_CANDIDATES_SIMILARITY => {
                    vec![lines.span(start, end)]
                }
                _ => Vec::new(),
            }
        }
    }
}

/// `text.replace(/\s+/g, " ").trim()`.
fn normalize_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if js::is_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out.trim_matches(' ').to_owned()
}

/// The leftmost match in `line` of `find`'s words separated by runs of whitespace (the
/// regular expression `word1\s+word2…` OpenCode builds).
fn words_match<'a>(line: &'a str, find: &str) -> Option<&'a str> {
    let words: Vec<&str> = js::trim(find).split(js::is_space).collect();
    let words: Vec<&str> = if words.iter().all(|w| w.is_empty()) {
        vec![""]
    } else {
        words.into_iter().filter(|w| !w.is_empty()).collect()
    };
    line.char_indices()
        .map(|(index, _)| index)
        .chain(std::iter::once(line.len()))
        .find_map(|start| {
            let mut at = start;
            for (n, word) in words.iter().enumerate() {
                if n > 0 {
                    let gap = line[at..]
                        .char_indices()
                        .find(|(_, c)| !js::is_space(*c))
                        .map_or(line.len() - at, |(index, _)| index);
                    if gap == 0 {
                        return None;
                    }
                    at += gap;
                }
                if !line[at..].starts_with(word) {
                    return None;
                }
                at += word.len();
            }
            Some(&line[start..at])
        })
}

/// Lines (or windows) equal to `find` once whitespace runs collapse to one space; inside a
/// longer line, the words of `find` separated by any whitespace.
fn whitespace_normalized(content: &str, find: &str) -> Vec<String> {
    let normalized_find = normalize_whitespace(find);
    let lines = Lines::new(content);
    let mut found = Vec::new();
    for line in &lines.lines {
        let normalized = normalize_whitespace(line);
        if normalized == normalized_find {
            found.push((*line).to_owned());
        } else if normalized.contains(&normalized_find)
            && let Some(hit) = words_match(line, find)
        {
            found.push(hit.to_owned());
        }
    }
    let size = find.split('\n').count();
    if size > 1 {
        found.extend(
            lines
                .windows(size)
                .map(|(_, span)| span)
                .filter(|span| normalize_whitespace(span) == normalized_find),
        );
    }
    found
}

/// `text` without the indentation its non-blank lines share.
fn remove_indentation(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let indent = lines
        .iter()
        .filter(|line| !js::trim(line).is_empty())
        .map(|line| line.chars().take_while(|c| js::is_space(*c)).count())
        .min();
    let Some(indent) = indent else {
        return text.to_owned();
    };
    lines
        .iter()
        .map(|line| {
            if js::trim(line).is_empty() {
                (*line).to_owned()
            } else {
                line.chars().skip(indent).collect()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Windows equal to `find` once both lose their common indentation.
fn indentation_flexible(content: &str, find: &str) -> Vec<String> {
    let normalized_find = remove_indentation(find);
    let lines = Lines::new(content);
    lines
        .windows(find.split('\n').count())
        .map(|(_, span)| span)
        .filter(|span| remove_indentation(span) == normalized_find)
        .collect()
}

/// `find` with `\n \t \r \' \" \` \\ \<newline> \$` unescaped.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let replacement = match chars.peek() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some(&other @ ('\'' | '"' | '`' | '\\' | '\n' | '$')) => other,
            _ => {
                out.push('\\');
                continue;
            }
        };
        chars.next();
        out.push(replacement);
    }
    out
}

/// `find` unescaped if the content holds it, and windows that unescape to the same text.
fn escape_normalized(content: &str, find: &str) -> Vec<String> {
    let unescaped = unescape(find);
    let mut found = Vec::new();
    if content.contains(&unescaped) {
        found.push(unescaped.clone());
    }
    let lines = Lines::new(content);
    found.extend(
        lines
            .windows(unescaped.split('\n').count())
            .map(|(_, span)| span)
            .filter(|span| unescape(span) == unescaped),
    );
    found
}

/// For a `find` with surrounding whitespace: the trimmed text, and windows that trim to it.
fn trimmed_boundary(content: &str, find: &str) -> Vec<String> {
    let trimmed = js::trim(find);
    if trimmed == find {
        return Vec::new();
    }
    let mut found = Vec::new();
    if content.contains(trimmed) {
        found.push(trimmed.to_owned());
    }
    let lines = Lines::new(content);
    found.extend(
        lines
            .windows(find.split('\n').count())
            .map(|(_, span)| span)
            .filter(|span| js::trim(span) == trimmed),
    );
    found
}

/// Blocks of `find`'s size between its first and last lines (trimmed) where at least half of
/// the non-empty middle lines match. After a block is found the search goes on from the next
/// first-line match, as OpenCode's loop does.
fn context_aware(content: &str, find: &str) -> Vec<String> {
    if find.split('\n').count() < 3 {
        return Vec::new();
    }
    let search = search_lines(find);
    let lines = Lines::new(content);
    let first = js::trim(search[0]);
    let last = js::trim(search[search.len() - 1]);
    let mut found = Vec::new();
    for start in 0..lines.lines.len() {
        if js::trim(lines.lines[start]) != first {
            continue;
        }
        let Some(end) =
            (start + 2..lines.lines.len()).find(|&end| js::trim(lines.lines[end]) == last)
        else {
            continue;
        };
        if end - start + 1 != search.len() {
            continue;
        }
        let (mut matching, mut total) = (0, 0);
        let middle = &search[1..search.len() - 1];
        for (k, find_line) in middle.iter().enumerate() {
            let block_line = js::trim(lines.lines[start + 1 + k]);
            let find_line = js::trim(find_line);
            if !block_line.is_empty() || !find_line.is_empty() {
                total += 1;
                matching += usize::from(block_line == find_line);
            }
        }
        if total == 0 || matching as f64 / total as f64 >= 0.5 {
            found.push(lines.span(start, end));
        }
    }
    found
}

/// `find` once per occurrence; by the time the chain gets here the same candidate has been
/// tried by [`simple`], so this only completes OpenCode's list.
fn multi_occurrence(content: &str, find: &str) -> Vec<String> {
    content
        .match_indices(find)
        .map(|_| find.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_should_count_utf16_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("😀", ""), 2);
    }

    #[test]
    fn line_trimmed_should_yield_original_spans() {
        let content = "fn a() {\n    x();\n}\n";
        assert_eq!(line_trimmed(content, "x();\n}"), ["    x();\n}"]);
        assert_eq!(line_trimmed(content, "  x();\n"), ["    x();"]);
    }

    #[test]
    fn block_anchor_should_accept_similar_middles_and_reject_far_blocks() {
        let content = "start\n  alpha\n  beta\nend\nother";
        assert_eq!(
            block_anchor(content, "start\n  alpha\n  betta\nend"),
            ["start\n  alpha\n  beta\nend"]
        );
        assert!(block_anchor(content, "start\n  zzzzz\n  yyyy\nend").is_empty());
        // The first `end` after `start` is ten lines down: too far from a 4-line find.
        let long = format!("start\n{}end", "x\n".repeat(9));
        assert!(block_anchor(&long, "start\na\nb\nend").is_empty());
    }

    #[test]
    fn whitespace_normalized_should_find_words_inside_a_line() {
        assert_eq!(
            whitespace_normalized("let  x =   1; // note", "x = 1;"),
            ["x =   1;"]
        );
        assert_eq!(whitespace_normalized("a\n  b   c\nd", "b c"), ["  b   c"]);
        assert_eq!(words_match("ab", "  "), Some(""));
    }

    #[test]
    fn indentation_flexible_should_ignore_shared_indent() {
        let content = "    if x {\n        y();\n    }";
        assert_eq!(
            indentation_flexible(content, "if x {\n    y();\n}"),
            [content]
        );
    }

    #[test]
    fn unescape_should_follow_opencodes_list() {
        assert_eq!(unescape(r#"a\nb\t\"c\"\\n\q\$"#), "a\nb\t\"c\"\\n\\q$");
        // Found as a whole and again as a line window.
        assert_eq!(
            escape_normalized("say \"hi\"\n", r#"say \"hi\""#),
            ["say \"hi\"", "say \"hi\""]
        );
    }

    #[test]
    fn trimmed_boundary_should_only_run_for_padded_finds() {
        assert!(trimmed_boundary("abc", "abc").is_empty());
        assert_eq!(trimmed_boundary("x abc y", "  abc\n"), ["abc"]);
    }

    #[test]
    fn context_aware_should_need_half_of_the_middle_and_keep_searching() {
        let content = "begin\nsame\nnew\nend\nbegin\nother\nthing\nend";
        assert_eq!(
            context_aware(content, "begin\nsame\nold\nend"),
            ["begin\nsame\nnew\nend"]
        );
        let twice = "begin\nsame\nx\nend\nbegin\nsame\ny\nend";
        assert_eq!(context_aware(twice, "begin\nsame\nz\nend").len(), 2);
    }
}
